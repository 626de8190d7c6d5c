//! One `<server>`: its health (Fluentd's `Node#tick` / `Node#heartbeat` over the
//! [`PhiDetector`]), its DNS cache and its idle kept-alive connections.
//!
//! States: **healthy** (takes load) and **detached** (skipped by the load balancer). A healthy
//! server is detached when, at a heartbeat tick, no heartbeat came for `hard_timeout` or phi is
//! above `phi_threshold`; and at once when a connection to it is refused or reset or an ack is
//! lost. Detaching clears the detector's window and the DNS cache. A detached server becomes
//! healthy again once its window holds more than `recover_wait / heartbeat_interval` samples,
//! i.e. after `recover_wait` of good heartbeats (the window is cleared again whenever
//! `hard_timeout` passes without one). With `heartbeat_type none` a server is always healthy.
//!
//! Log lines are Fluentd's, so runbooks carry over:
//! `detached forwarding server 'NAME' host="H" port=P phi=X phi_threshold=T`,
//! `detached forwarding server 'NAME' host="H" port=P hard_timeout=true`,
//! `recovered forwarding server 'NAME' host="H" port=P`.

use super::config::{ForwardConfig, HeartbeatType, ServerConfig};
use super::conn::Connection;
use super::dns::DnsCache;
use super::metrics::{NodeMetrics, STATE_DETACHED, STATE_HEALTHY};
use super::phi::PhiDetector;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use tokio::time::Instant;

/// Seconds since a fixed origin, from tokio's clock (so tests can pause time).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self {
            base: Instant::now(),
        }
    }
}

impl Clock {
    pub fn secs(&self) -> f64 {
        self.base.elapsed().as_secs_f64()
    }
}

/// Why a server was detached.
#[derive(Debug)]
pub enum DetachReason<'a> {
    Phi {
        phi: f64,
        threshold: f64,
    },
    HardTimeout,
    /// A refused or reset connection, or a lost ack.
    Error {
        class: &'static str,
        message: &'a str,
    },
}

#[derive(Debug)]
struct Health {
    available: bool,
    detector: PhiDetector,
}

/// An idle kept-alive connection.
#[derive(Debug)]
pub struct Idle {
    pub conn: Connection,
    pub since: Instant,
}

#[derive(Debug)]
pub struct Node {
    /// Unique within the output for its lifetime (never reused): the load balancer's rotation
    /// names servers by it, so a rotation built before a change of the server set never points
    /// at another server.
    pub id: usize,
    /// Where the server comes from: 0 for `<server>` and `@type static`, `k` for the `k`-th
    /// changing `<service_discovery>` (see [`super::discovery`]).
    pub source: usize,
    pub server: ServerConfig,
    pub metrics: NodeMetrics,
    pub dns: DnsCache,
    /// The PING salt: made once per server and reused, as out_forward does.
    pub salt: String,
    health: Mutex<Health>,
    idle: Mutex<Vec<Idle>>,
    /// A transport heartbeat probe is running (at most one per server).
    pub probing: AtomicBool,
    /// When the last UDP heartbeat was sent (for the round-trip time).
    pub udp_sent: Mutex<Option<Instant>>,
    /// When a request to this server last completed (acknowledged, or written without acks).
    last_ok: Mutex<Option<Instant>>,
    /// Bumped at every detach: requests in flight to the server stop waiting for it.
    detached: tokio::sync::watch::Sender<u64>,
    /// Why the server was last detached (for `ferry status` and the monitor API).
    last_detach: Mutex<String>,
    /// The failures of connections and requests since the last success: each kind is logged
    /// once at warn, its repeats at debug.
    pub failures: crate::logging::Episode,
    /// Left the server set (service discovery): never picked again; requests in flight to it
    /// finish, and their connections are closed instead of kept.
    retired: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section is a few field stores: a panic cannot leave them half-done.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Node {
    pub fn new(
        id: usize,
        source: usize,
        server: ServerConfig,
        cfg: &ForwardConfig,
        now: f64,
    ) -> Self {
        let detector = PhiDetector::new(
            cfg.heartbeat_interval.as_secs_f64(),
            cfg.hard_timeout.as_secs_f64(),
            now,
        );
        Self {
            id,
            source,
            dns: DnsCache::default(),
            salt: ferry_proto::handshake::random_salt_hex(),
            server,
            metrics: NodeMetrics::default(),
            health: Mutex::new(Health {
                available: true,
                detector,
            }),
            idle: Mutex::new(Vec::new()),
            probing: AtomicBool::new(false),
            udp_sent: Mutex::new(None),
            last_ok: Mutex::new(None),
            detached: tokio::sync::watch::Sender::new(0),
            last_detach: Mutex::new(String::new()),
            failures: crate::logging::Episode::default(),
            retired: AtomicBool::new(false),
        }
    }

    /// The server left the set: its idle connections are closed; what is in flight finishes.
    pub fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.drop_idle();
    }

    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Why the server was last detached; empty when it never was.
    pub fn last_detach(&self) -> String {
        lock(&self.last_detach).clone()
    }

    pub fn name(&self) -> &str {
        &self.server.name
    }

    pub fn is_available(&self) -> bool {
        self.metrics.is_healthy()
    }

    fn set_available(&self, health: &mut Health, available: bool) {
        health.available = available;
        let state = if available {
            STATE_HEALTHY
        } else {
            STATE_DETACHED
        };
        self.metrics.state.store(state, Ordering::Relaxed);
    }

    /// The heartbeat timer's check. Returns true when the server was detached.
    pub fn tick(&self, now: f64, cfg: &ForwardConfig) -> bool {
        if cfg.heartbeat_type == HeartbeatType::None {
            return false;
        }
        let mut h = lock(&self.health);
        if !h.available {
            if h.detector.hard_timeout(now) {
                h.detector.clear();
            }
            self.metrics.set_phi(h.detector.phi(now));
            return false;
        }
        let reason = if h.detector.hard_timeout(now) {
            Some(DetachReason::HardTimeout)
        } else {
            let phi = h.detector.phi(now);
            self.metrics.set_phi(phi);
            (cfg.phi_failure_detector && phi > cfg.phi_threshold).then_some(DetachReason::Phi {
                phi,
                threshold: cfg.phi_threshold,
            })
        };
        match reason {
            Some(reason) => {
                self.detach_locked(&mut h, &reason);
                true
            }
            None => false,
        }
    }

    /// A heartbeat arrived (or a request went through). With `detect`, a detached server
    /// that has had enough good heartbeats recovers. Returns true when it recovered.
    pub fn heartbeat(&self, now: f64, detect: bool, cfg: &ForwardConfig) -> bool {
        let mut h = lock(&self.health);
        h.detector.add(now);
        let needed = cfg.recover_wait.as_secs_f64() / cfg.heartbeat_interval.as_secs_f64();
        if detect && !h.available && h.detector.sample_size() as f64 > needed {
            self.set_available(&mut h, true);
            tracing::warn!(
                "recovered forwarding server '{}' host=\"{}\" port={}",
                self.server.name,
                self.server.host,
                self.server.port
            );
            return true;
        }
        false
    }

    /// Takes the server out of rotation now. Returns true when it was healthy.
    pub fn detach(&self, reason: &DetachReason<'_>, cfg: &ForwardConfig) -> bool {
        if cfg.heartbeat_type == HeartbeatType::None {
            return false; // nothing would ever bring it back
        }
        let mut h = lock(&self.health);
        if !h.available {
            return false;
        }
        self.detach_locked(&mut h, reason);
        true
    }

    fn detach_locked(&self, h: &mut Health, reason: &DetachReason<'_>) {
        self.set_available(h, false);
        self.detached.send_modify(|n| *n += 1);
        h.detector.clear();
        self.dns.invalidate();
        self.drop_idle();
        let (name, host, port) = (&self.server.name, &self.server.host, self.server.port);
        *lock(&self.last_detach) = match reason {
            DetachReason::Phi { phi, threshold } => format!("phi {phi:.1} over {threshold}"),
            DetachReason::HardTimeout => "no heartbeat within hard_timeout".to_string(),
            DetachReason::Error { class, message } => format!("{class}: {message}"),
        };
        match reason {
            DetachReason::Phi { phi, threshold } => tracing::warn!(
                "detached forwarding server '{name}' host=\"{host}\" port={port} phi={phi} phi_threshold={threshold}"
            ),
            DetachReason::HardTimeout => tracing::warn!(
                "detached forwarding server '{name}' host=\"{host}\" port={port} hard_timeout=true"
            ),
            DetachReason::Error { class, message } => tracing::warn!(
                "detached forwarding server '{name}' host=\"{host}\" port={port} error_class={class} error=\"{message}\""
            ),
        }
    }

    /// `failback_now`: a detached server that answered a heartbeat since it was detached is
    /// healthy again at once, without waiting out `recover_wait`. Returns true when it was.
    pub fn failback(&self) -> bool {
        let mut h = lock(&self.health);
        if h.available || h.detector.sample_size() == 0 {
            return false;
        }
        self.set_available(&mut h, true);
        tracing::warn!(
            "recovered forwarding server '{}' host=\"{}\" port={} (failback requested)",
            self.server.name,
            self.server.host,
            self.server.port
        );
        true
    }

    /// Resolves when the server is detached after this call.
    pub fn detach_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.detached.subscribe();
        async move {
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// A request to this server completed.
    pub fn request_succeeded(&self) {
        *lock(&self.last_ok) = Some(Instant::now());
    }

    /// A request completed within the last `within`.
    pub fn succeeded_within(&self, within: std::time::Duration) -> bool {
        lock(&self.last_ok).is_some_and(|t| t.elapsed() <= within)
    }

    /// Samples in the detector's window (for tests and the state dump).
    pub fn sample_size(&self) -> usize {
        lock(&self.health).detector.sample_size()
    }

    /// An idle connection younger than `max_idle`, most recent first; older ones are closed.
    pub fn checkout(&self, max_idle: Option<std::time::Duration>) -> Option<Connection> {
        let mut idle = lock(&self.idle);
        while let Some(i) = idle.pop() {
            if max_idle.is_some_and(|m| i.since.elapsed() > m) {
                continue;
            }
            return Some(i.conn);
        }
        None
    }

    /// Keeps `conn` for reuse.
    pub fn checkin(&self, conn: Connection) {
        lock(&self.idle).push(Idle {
            conn,
            since: Instant::now(),
        });
    }

    /// Closes idle connections older than `max_idle`.
    pub fn purge_idle(&self, max_idle: std::time::Duration) {
        lock(&self.idle).retain(|i| i.since.elapsed() <= max_idle);
    }

    pub fn drop_idle(&self) {
        lock(&self.idle).clear();
    }

    pub fn idle_count(&self) -> usize {
        lock(&self.idle).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(cfg: &ForwardConfig) -> Node {
        let server = ServerConfig {
            host: "127.0.0.1".into(),
            port: 24224,
            name: "agg".into(),
            weight: 60,
            standby: false,
            shared_key: None,
            username: String::new(),
            password: Default::default(),
            tls: None,
        };
        Node::new(0, 0, server, cfg, 0.0)
    }

    #[test]
    fn with_fluentds_defaults_silence_detaches_at_the_first_tick_after_36_8_seconds() {
        let cfg = ForwardConfig::with_servers(Vec::new());
        let n = node(&cfg);
        for t in 1..=30 {
            n.heartbeat(f64::from(t), true, &cfg);
            assert!(!n.tick(f64::from(t) + 0.5, &cfg));
        }
        // Heartbeats stop after t = 30; the timer ticks every second.
        let detached_at = (31..120).find(|&t| n.tick(f64::from(t), &cfg)).unwrap();
        assert_eq!(
            detached_at, 67,
            "30 + 36.84 s of silence, seen at the next tick"
        );
        assert!(!n.is_available());
        assert_eq!(n.sample_size(), 0, "detaching clears the window");
    }

    #[test]
    fn a_detached_server_recovers_after_recover_wait_of_heartbeats() {
        let cfg = ForwardConfig::with_servers(Vec::new());
        let n = node(&cfg);
        n.detach(&DetachReason::HardTimeout, &cfg);
        let mut recovered_after = None;
        for k in 1..=20 {
            let t = 100.0 + f64::from(k);
            if n.heartbeat(t, true, &cfg) {
                recovered_after = Some(k);
                break;
            }
            n.tick(t + 0.5, &cfg);
        }
        // recover_wait 10 s / interval 1 s: more than 10 samples, the 11th heartbeat.
        assert_eq!(recovered_after, Some(11));
        assert!(n.is_available());
    }

    #[test]
    fn a_detached_server_that_goes_quiet_for_hard_timeout_starts_recovery_over() {
        let cfg = ForwardConfig::with_servers(Vec::new());
        let n = node(&cfg);
        n.detach(&DetachReason::HardTimeout, &cfg);
        for k in 1..=5 {
            n.heartbeat(f64::from(k), true, &cfg);
        }
        assert_eq!(n.sample_size(), 5);
        n.tick(5.0 + 61.0, &cfg);
        assert_eq!(n.sample_size(), 0);
    }

    #[test]
    fn without_the_phi_failure_detector_silence_detaches_only_at_hard_timeout() {
        let mut cfg = ForwardConfig::with_servers(Vec::new());
        cfg.phi_failure_detector = false;
        cfg.hard_timeout = std::time::Duration::from_secs(90);
        let n = node(&cfg);
        for t in 1..=30 {
            n.heartbeat(f64::from(t), true, &cfg);
        }
        // With phi, the silence would detach at t = 67 (see above); without, at the first tick
        // more than hard_timeout after the last heartbeat.
        let detached_at = (31..200).find(|&t| n.tick(f64::from(t), &cfg)).unwrap();
        assert_eq!(detached_at, 121);
        cfg.hard_timeout = std::time::Duration::from_secs(45);
        let n = node(&cfg);
        for t in 1..=30 {
            n.heartbeat(f64::from(t), true, &cfg);
        }
        assert_eq!((31..200).find(|&t| n.tick(f64::from(t), &cfg)), Some(76));
    }

    #[test]
    fn heartbeat_none_keeps_every_server_healthy() {
        let mut cfg = ForwardConfig::with_servers(Vec::new());
        cfg.heartbeat_type = HeartbeatType::None;
        let n = node(&cfg);
        assert!(!n.tick(1000.0, &cfg));
        assert!(!n.detach(&DetachReason::HardTimeout, &cfg));
        assert!(n.is_available());
    }

    #[test]
    fn failback_brings_back_a_server_that_answered_since_it_was_detached() {
        let cfg = ForwardConfig::with_servers(Vec::new());
        let n = node(&cfg);
        n.detach(&DetachReason::HardTimeout, &cfg);
        assert!(!n.failback(), "no heartbeat since the detach");
        n.heartbeat(1.0, true, &cfg);
        assert!(n.failback());
        assert!(n.is_available());
    }
}
