//! Resolving server names, off the flush path.
//!
//! A server given by IP address never touches the resolver. For a name, each server has a
//! cache ([`DnsCache`]) and at most one lookup in flight: the lookup runs in its own task, and
//! callers wait for it at most `resolve_timeout`. A resolver that never answers therefore
//! costs each flush of *that* server `resolve_timeout`, then the request goes to the next
//! server; servers with known addresses are never held up, and no more than one blocked
//! lookup per server is ever outstanding (the system resolver runs `getaddrinfo` on a blocking
//! thread, which cannot be cancelled).
//!
//! Caching (`expire_dns_cache`): unset keeps addresses until a connect fails or the server is
//! detached (then the next connect resolves again); `0` resolves before every connect; `N`
//! keeps them for N seconds. With `dns_round_robin`, successive connections go to successive
//! addresses of the answer, so load spreads over every address a name has.
//!
//! The resolver is a trait ([`Resolve`]) so tests can inject one that hangs or fails.

use super::config::{ForwardConfig, ServerConfig};
use super::error::ForwardError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;
use tokio::time::Instant;

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Turns a host name into addresses.
pub trait Resolve: Send + Sync + fmt::Debug + 'static {
    fn lookup(&self, host: String, port: u16) -> BoxFuture<io::Result<Vec<SocketAddr>>>;
}

/// The system resolver (`getaddrinfo` on a blocking thread).
#[derive(Debug, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn lookup(&self, host: String, port: u16) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), port))
                .await?
                .collect())
        })
    }
}

type Answer = Option<Result<Arc<[SocketAddr]>, String>>;

#[derive(Debug, Default)]
struct DnsState {
    addrs: Option<(Arc<[SocketAddr]>, Instant)>,
    next: usize,
    pending: Option<watch::Receiver<Answer>>,
}

/// One server's addresses.
#[derive(Debug, Default, Clone)]
pub struct DnsCache {
    state: Arc<Mutex<DnsState>>,
}

fn lock(m: &Mutex<DnsState>) -> MutexGuard<'_, DnsState> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Starts tasks (a registered, named task when the output is running).
pub type Spawn<'a> = &'a (dyn Fn(String, BoxFuture<()>) + Send + Sync);

impl DnsCache {
    /// Forgets the cached addresses (the next connect resolves again).
    pub fn invalidate(&self) {
        lock(&self.state).addrs = None;
    }

    /// Cached addresses that are still fresh, without resolving.
    pub fn cached(&self, cfg: &ForwardConfig) -> Option<Arc<[SocketAddr]>> {
        let st = lock(&self.state);
        let (addrs, at) = st.addrs.as_ref()?;
        fresh(*at, cfg).then(|| Arc::clone(addrs))
    }

    /// The last addresses resolved, fresh or not (for UDP heartbeats and matching replies).
    pub fn last_known(&self) -> Option<Arc<[SocketAddr]>> {
        lock(&self.state).addrs.as_ref().map(|(a, _)| Arc::clone(a))
    }

    /// The addresses of `server`, from the cache or a lookup bounded by `resolve_timeout`.
    pub async fn addresses(
        &self,
        server: &ServerConfig,
        resolver: &Arc<dyn Resolve>,
        cfg: &ForwardConfig,
        spawn: Spawn<'_>,
    ) -> Result<Arc<[SocketAddr]>, ForwardError> {
        if let Some(ip) = server.ip() {
            return Ok(Arc::from([SocketAddr::new(ip, server.port)]));
        }
        let mut rx = {
            let mut st = lock(&self.state);
            if let Some((addrs, at)) = &st.addrs
                && fresh(*at, cfg)
            {
                return Ok(Arc::clone(addrs));
            }
            match &st.pending {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    st.pending = Some(rx.clone());
                    let lookup = resolver.lookup(server.host.clone(), server.port);
                    let state = Arc::clone(&self.state);
                    spawn(
                        format!("dns lookup {}", server.host),
                        Box::pin(async move {
                            let answer = match lookup.await {
                                Ok(v) if v.is_empty() => Err("no addresses".to_string()),
                                Ok(v) => Ok(Arc::from(v)),
                                Err(e) => Err(e.to_string()),
                            };
                            let mut st = lock(&state);
                            st.pending = None;
                            if let Ok(addrs) = &answer {
                                st.addrs = Some((Arc::clone(addrs), Instant::now()));
                            }
                            drop(st);
                            let _ = tx.send(Some(answer));
                        }),
                    );
                    rx
                }
            }
        };
        let waited = tokio::time::timeout(cfg.resolve_timeout, rx.wait_for(Option::is_some)).await;
        let answer = match waited {
            Err(_) => {
                return Err(ForwardError::DnsTimeout {
                    node: server.name.clone(),
                    host: server.host.clone(),
                    after: cfg.resolve_timeout,
                });
            }
            Ok(Err(_)) => Some(Err("the lookup task ended without an answer".to_string())),
            Ok(Ok(v)) => v.clone(),
        };
        match answer {
            Some(Ok(addrs)) => Ok(addrs),
            Some(Err(e)) => Err(ForwardError::Dns {
                node: server.name.clone(),
                host: server.host.clone(),
                source: io::Error::other(e),
            }),
            None => Err(ForwardError::Dns {
                node: server.name.clone(),
                host: server.host.clone(),
                source: io::Error::other("no answer"),
            }),
        }
    }

    /// The address to connect to: the first, or with round robin the next one in turn.
    pub fn pick(&self, addrs: &[SocketAddr], round_robin: bool) -> Option<SocketAddr> {
        if !round_robin {
            return addrs.first().copied();
        }
        let mut st = lock(&self.state);
        let i = st.next;
        st.next = st.next.wrapping_add(1);
        addrs.get(i % addrs.len().max(1)).copied()
    }
}

fn fresh(at: Instant, cfg: &ForwardConfig) -> bool {
    match cfg.expire_dns_cache {
        None => true,
        Some(ttl) => !ttl.is_zero() && at.elapsed() < ttl,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[derive(Debug, Default)]
    struct Counting {
        calls: AtomicUsize,
    }

    impl Resolve for Counting {
        fn lookup(&self, _host: String, port: u16) -> BoxFuture<io::Result<Vec<SocketAddr>>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) as u8;
            Box::pin(async move {
                Ok(vec![
                    SocketAddr::from(([10, 0, 0, n], port)),
                    SocketAddr::from(([10, 0, 1, n], port)),
                ])
            })
        }
    }

    fn server() -> ServerConfig {
        ServerConfig {
            host: "agg.example".into(),
            port: 24224,
            name: "agg".into(),
            weight: 60,
            standby: false,
            shared_key: None,
            username: String::new(),
            password: Default::default(),
            tls: None,
        }
    }

    fn spawn(_name: String, fut: BoxFuture<()>) {
        tokio::spawn(fut);
    }

    #[tokio::test(start_paused = true)]
    async fn addresses_are_cached_until_invalidated_or_expired() {
        let resolver: Arc<dyn Resolve> = Arc::new(Counting::default());
        let mut cfg = ForwardConfig::with_servers(Vec::new());
        let cache = DnsCache::default();
        let s = server();
        let first = cache.addresses(&s, &resolver, &cfg, &spawn).await.unwrap();
        let again = cache.addresses(&s, &resolver, &cfg, &spawn).await.unwrap();
        assert_eq!(first, again, "expire_dns_cache unset: cached");
        cache.invalidate();
        let fresh = cache.addresses(&s, &resolver, &cfg, &spawn).await.unwrap();
        assert_ne!(first, fresh, "resolved again after a connect failure");

        cfg.expire_dns_cache = Some(Duration::from_secs(30));
        let a = cache.addresses(&s, &resolver, &cfg, &spawn).await.unwrap();
        tokio::time::advance(Duration::from_secs(31)).await;
        let b = cache.addresses(&s, &resolver, &cfg, &spawn).await.unwrap();
        assert_ne!(a, b, "expired after 30 s");
        cfg.expire_dns_cache = Some(Duration::ZERO);
        let c = cache.addresses(&s, &resolver, &cfg, &spawn).await.unwrap();
        let d = cache.addresses(&s, &resolver, &cfg, &spawn).await.unwrap();
        assert_ne!(c, d, "0: resolved before every connect");
    }

    #[tokio::test]
    async fn round_robin_spreads_connections_over_every_address() {
        let resolver: Arc<dyn Resolve> = Arc::new(Counting::default());
        let cfg = ForwardConfig::with_servers(Vec::new());
        let cache = DnsCache::default();
        let addrs = cache
            .addresses(&server(), &resolver, &cfg, &spawn)
            .await
            .unwrap();
        let picks: Vec<_> = (0..4).map(|_| cache.pick(&addrs, true).unwrap()).collect();
        assert_eq!(picks, vec![addrs[0], addrs[1], addrs[0], addrs[1]]);
        assert_eq!(cache.pick(&addrs, false), Some(addrs[0]));
    }
}
