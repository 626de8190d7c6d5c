//! Reverse DNS of peers, for `source_hostname_key` (every network input that has it).
//!
//! Fluentd resolves a peer's name on accept, inside its event loop, so one slow DNS server
//! stalls every connection. Here a lookup runs on the blocking pool (at most
//! [`MAX_CONCURRENT_LOOKUPS`] at once), is started when a connection is accepted, and is
//! shared by every connection from the same address. A request that needs the name waits for
//! it at most `resolve_timeout` (measured from when the lookup started, so usually not at
//! all: the handshake and the first read happen meanwhile); after that, or when the lookup
//! fails, the name is the address itself, as Fluentd reports an unresolvable peer.
//!
//! Cache: names are kept [`FOUND_TTL`], failures [`FAILED_TTL`]; at most [`MAX_ENTRIES`]
//! addresses (the cache is cleared when full).

use crate::task::Tasks;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, watch};

/// Lookups started and those that failed or timed out (the address stood for the name).
#[derive(Debug, Default)]
pub struct LookupCounters {
    pub lookups: AtomicU64,
    pub failures: AtomicU64,
}

pub(super) const MAX_CONCURRENT_LOOKUPS: usize = 16;
pub(super) const FOUND_TTL: Duration = Duration::from_secs(600);
pub(super) const FAILED_TTL: Duration = Duration::from_secs(60);
pub(super) const MAX_ENTRIES: usize = 65_536;

#[derive(Debug, Clone)]
enum Slot {
    Ready { name: Arc<str>, expires: Instant },
    Pending(watch::Receiver<Option<Arc<str>>>),
}

#[derive(Debug)]
pub struct Resolver {
    cache: Mutex<HashMap<IpAddr, Slot>>,
    timeout: Duration,
    lookups: Arc<Semaphore>,
    metrics: Arc<LookupCounters>,
    /// Where lookups run: named tasks of the input (`forward input ID reverse lookup IP`).
    tasks: Tasks,
    name: String,
}

impl Resolver {
    pub fn new(
        timeout: Duration,
        metrics: Arc<LookupCounters>,
        tasks: Tasks,
        name: String,
    ) -> Self {
        Self {
            cache: Mutex::default(),
            timeout,
            lookups: Arc::new(Semaphore::new(MAX_CONCURRENT_LOOKUPS)),
            metrics,
            tasks,
            name,
        }
    }

    /// The cached slot for `ip`, starting a lookup when there is none (or it expired).
    fn slot(self: &Arc<Self>, ip: IpAddr) -> Slot {
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = cache.get(&ip) {
            match slot {
                Slot::Ready { expires, .. } if *expires <= Instant::now() => {}
                other => return other.clone(),
            }
        }
        if cache.len() >= MAX_ENTRIES {
            cache.clear();
        }
        let (tx, rx) = watch::channel(None);
        cache.insert(ip, Slot::Pending(rx.clone()));
        drop(cache);
        let me = Arc::clone(self);
        self.tasks.spawn(
            format!("{} reverse lookup {ip}", self.name),
            move |h| async move {
                tokio::select! {
                    () = me.lookup(ip, tx) => {}
                    () = h.cancelled() => {}
                }
            },
        );
        Slot::Pending(rx)
    }

    async fn lookup(self: Arc<Self>, ip: IpAddr, tx: watch::Sender<Option<Arc<str>>>) {
        self.metrics.lookups.fetch_add(1, Ordering::Relaxed);
        let lookups = Arc::clone(&self.lookups);
        let found = tokio::time::timeout(self.timeout, async move {
            let _permit = lookups.acquire_owned().await.ok()?;
            tokio::task::spawn_blocking(move || dns_lookup::lookup_addr(&ip).ok())
                .await
                .ok()
                .flatten()
        })
        .await
        .ok()
        .flatten();
        let (name, ttl): (Arc<str>, _) = match found {
            Some(name) => (name.into(), FOUND_TTL),
            None => {
                self.metrics.failures.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(
                    "reverse DNS lookup of {ip} failed or timed out; using the address"
                );
                (ip.to_string().into(), FAILED_TTL)
            }
        };
        self.cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                ip,
                Slot::Ready {
                    name: Arc::clone(&name),
                    expires: Instant::now() + ttl,
                },
            );
        let _ = tx.send(Some(name));
    }

    /// Starts the lookup of `ip` if it is not cached (called on accept).
    pub fn prefetch(self: &Arc<Self>, ip: IpAddr) {
        let _ = self.slot(ip);
    }

    /// The name of `ip`; see the module doc for how long this can wait.
    pub async fn name(self: &Arc<Self>, ip: IpAddr) -> Arc<str> {
        match self.slot(ip) {
            Slot::Ready { name, .. } => name,
            Slot::Pending(mut rx) => {
                // The lookup task publishes within `timeout`; the margin covers scheduling.
                let waited = tokio::time::timeout(
                    self.timeout + Duration::from_millis(100),
                    rx.wait_for(Option::is_some),
                )
                .await;
                match waited {
                    Ok(Ok(v)) => v.clone().unwrap_or_else(|| ip.to_string().into()),
                    _ => ip.to_string().into(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_resolves_once_and_is_cached() {
        let metrics = Arc::new(LookupCounters::default());
        let r = Arc::new(Resolver::new(
            Duration::from_secs(5),
            Arc::clone(&metrics),
            Tasks::new(),
            "forward input t".into(),
        ));
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        r.prefetch(ip);
        let first = r.name(ip).await;
        let second = r.name(ip).await;
        assert_eq!(first, second);
        assert!(!first.is_empty());
        assert_eq!(metrics.lookups.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn a_lookup_that_cannot_finish_gives_the_address_after_resolve_timeout() {
        // The forward input's `resolve_timeout`, as its reading test reads it into the field.
        let resolver = |resolve_timeout: Duration| {
            let metrics = Arc::new(LookupCounters::default());
            let r = Arc::new(Resolver::new(
                resolve_timeout,
                Arc::clone(&metrics),
                Tasks::new(),
                "forward input t".into(),
            ));
            (r, metrics)
        };
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let (r, metrics) = resolver(Duration::from_millis(200));
        // Every lookup slot is taken, so no lookup can run.
        let _busy = Arc::clone(&r.lookups)
            .acquire_many_owned(MAX_CONCURRENT_LOOKUPS as u32)
            .await
            .unwrap();
        let started = Instant::now();
        assert_eq!(&*r.name(ip).await, "127.0.0.1");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        assert_eq!(metrics.failures.load(Ordering::Relaxed), 1);
        let (r, _) = resolver(Duration::from_secs(5));
        let _busy = Arc::clone(&r.lookups)
            .acquire_many_owned(MAX_CONCURRENT_LOOKUPS as u32)
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_secs(1), r.name(ip))
                .await
                .is_err(),
            "a longer resolve_timeout waits longer"
        );
    }

    #[tokio::test]
    async fn an_address_without_a_name_is_its_own_name() {
        // TEST-NET-1: no reverse name anywhere; the lookup fails, times out, or returns the
        // numeric form, and the address is used in every case.
        let metrics = Arc::new(LookupCounters::default());
        let r = Arc::new(Resolver::new(
            Duration::from_millis(200),
            metrics,
            Tasks::new(),
            "forward input t".into(),
        ));
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(&*r.name(ip).await, "192.0.2.1");
    }
}
