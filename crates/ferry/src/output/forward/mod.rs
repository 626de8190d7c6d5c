//! `<match> @type forward`: the forwarder's way to its aggregators (Fluentd's out_forward).
//!
//! Always buffered (default `<buffer tag>`). A flusher hands a chunk to
//! [`Forward::write_chunk`], which sends it as one or more PackedForward requests to healthy
//! servers chosen by weight, and returns `Ok` only when every request was acknowledged (with
//! `require_ack_response`) or written: the buffer deletes the chunk then, and only then.
//!
//! | module | job |
//! |---|---|
//! | [`config`] | parameters (Fluentd's names and defaults, plus ferry's) |
//! | [`server`] | one server's parameters (`<server>`, `<service>`, a discovered entry) |
//! | [`node`] | one server: health (detached / healthy), idle connections, log lines |
//! | [`phi`] | Fluentd's phi accrual failure detector |
//! | [`balancer`] | weighted round robin over healthy servers, standby servers |
//! | [`heartbeat`] | the heartbeat timer (transport, udp, none): feeds the detector |
//! | [`conn`] | one connection: stream, reply buffer, bounded writes, graceful close |
//! | [`pool`] | DNS → TCP → TLS → handshake; kept-alive connections reused or closed |
//! | [`handshake`] | the shared-key handshake as the client |
//! | [`dns`] | resolving off the flush path, cache, injectable resolver |
//! | [`discovery`] | `<service_discovery>`: static, file and DNS SRV server lists |
//! | [`members`] | the server set: changes applied without losing or duplicating a request |
//! | [`send`] | chunk → requests (pieces, ack ids, streaming), waiting for acks |
//! | [`deliver`] | choosing servers, failing over, settling a chunk |
//! | [`error`] | [`ForwardError`] and its classification |
//! | [`metrics`] | counters and gauges |
//!
//! Failure handling in one place:
//! - refused or reset connection, lost ack: the server is detached at once and the request
//!   goes to the next healthy server within the same flush;
//! - lost ack on every server tried: the chunk goes back to the queue without counting a retry
//!   (at most once per registered server in a row, so it can never spin);
//! - everything else (TLS, handshake, DNS, timeouts, wrong acks, no server healthy): a
//!   retryable error; the buffer retries with backoff, then `<secondary>`, then quarantine.

pub mod balancer;
pub mod config;
pub mod conn;
pub mod deliver;
pub mod discovery;
pub mod dns;
pub mod error;
pub mod handshake;
pub mod heartbeat;
pub mod members;
pub mod metrics;
pub mod node;
pub mod phi;
pub mod pipeline;
pub mod pool;
pub mod send;
pub mod server;

pub use config::ForwardConfig;
pub use error::ForwardError;
pub use metrics::{ForwardMetrics, NodeMetrics};

use crate::event::Batch;
use crate::task::Tasks;
use balancer::{Balancer, Candidate};
use dns::{BoxFuture, Resolve, SystemResolver};
use ferry_buffer::Chunk;
use metrics::bump;
use node::{Clock, DetachReason, Node};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

/// A test seam: called for each server at each heartbeat tick; an `Err` counts as a failed
/// heartbeat, a panic is caught like any other fault of the timer.
pub type HeartbeatFault = Arc<dyn Fn(usize) -> Result<(), String> + Send + Sync>;

/// The running output.
#[derive(Debug)]
pub struct Forward {
    shared: Arc<Shared>,
}

/// What the flushers, the heartbeat timer and lookups share.
pub struct Shared {
    pub id: String,
    pub config: ForwardConfig,
    /// The servers now (replaced whole when the set changes; see [`members`]).
    nodes: RwLock<Arc<Vec<Arc<Node>>>>,
    /// Serialises changes of the server set, and rotation rebuilds with them.
    members: Mutex<members::Members>,
    pub balancer: Balancer,
    pub resolver: Arc<dyn Resolve>,
    pub clock: Clock,
    pub metrics: ForwardMetrics,
    progress: Mutex<HashMap<[u8; 16], deliver::Progress>>,
    /// The server the balancer chose for a chunk a stream of chunks to another one took and
    /// gave back ([`pipeline`]): the next pick returns it.
    handoff: Mutex<Option<usize>>,
    tasks: OnceLock<Tasks>,
    fault: RwLock<Option<HeartbeatFault>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("id", &self.id)
            .field("nodes", &self.nodes().len())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Spawns a helper task (a registered, named task once the output is started).
    pub fn spawn(&self, name: String, fut: BoxFuture<()>) {
        match self.tasks.get() {
            Some(tasks) => tasks.spawn(format!("output {} {name}", self.id), move |h| async move {
                tokio::select! {
                    () = fut => {}
                    () = h.cancelled() => {}
                }
            }),
            None => {
                tokio::spawn(fut);
            }
        }
    }

    /// The servers now: a snapshot, unchanged by later changes of the set.
    pub fn nodes(&self) -> Arc<Vec<Arc<Node>>> {
        Arc::clone(&self.nodes.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The next healthy server in rotation, still in the set, that `usable` accepts (by id).
    /// A turn a stream of chunks already drew for the next chunk ([`pipeline`]) comes first.
    pub fn pick(&self, usable: impl Fn(usize) -> bool) -> Option<Arc<Node>> {
        let nodes = self.nodes();
        let handed = self
            .handoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .filter(|id| usable(*id) && self.balancer.in_rotation().contains(id))
            .and_then(|id| nodes.iter().find(|n| n.id == id && n.is_available()));
        if let Some(n) = handed {
            return Some(Arc::clone(n));
        }
        self.next_in_rotation(&nodes, usable)
    }

    /// The balancer's next turn: a healthy server in the set that `usable` accepts.
    fn next_in_rotation(
        &self,
        nodes: &[Arc<Node>],
        usable: impl Fn(usize) -> bool,
    ) -> Option<Arc<Node>> {
        self.balancer.pick(|id| {
            if !usable(id) {
                return None;
            }
            nodes
                .iter()
                .find(|n| n.id == id && n.is_available())
                .cloned()
        })
    }

    /// Rebuilds the rotation after a server changed state.
    pub fn rebuild(&self) {
        let _members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        self.rebuild_locked();
    }

    /// [`Self::rebuild`] with the set's lock held: the rotation is built from the set that is
    /// current, never from one a concurrent change has replaced.
    fn rebuild_locked(&self) {
        let nodes = self.nodes();
        let candidates: Vec<Candidate> = nodes
            .iter()
            .map(|n| Candidate {
                id: n.id,
                weight: n.server.weight,
                standby: n.server.standby,
                available: n.is_available(),
            })
            .collect();
        self.balancer.rebuild(&candidates);
        let healthy = nodes.iter().filter(|n| n.is_available()).count();
        self.metrics
            .healthy_nodes_count
            .store(healthy as u64, std::sync::atomic::Ordering::Relaxed);
        self.metrics
            .registered_nodes_count
            .store(nodes.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    /// Takes `node` out of rotation now.
    pub fn detach(&self, node: &Node, reason: &DetachReason<'_>) {
        if node.detach(reason, &self.config) {
            bump(&self.metrics.detach_count, 1);
            self.rebuild();
        }
    }

    /// A connection to `node` or a request to it succeeded: a failure episode under way ends
    /// with one line saying how long it was.
    pub fn works_again(&self, node: &Node) {
        if let Some(end) = node.failures.ended() {
            tracing::info!(
                "output {}: server '{}' answers again after {} failed attempts (the last: {})",
                self.id,
                node.name(),
                end.failures,
                end.last
            );
        }
    }

    /// A heartbeat from `node` arrived.
    pub fn heartbeat_from(&self, node: &Node) {
        bump(&node.metrics.heartbeats_ok, 1);
        if node.heartbeat(self.clock.secs(), true, &self.config) {
            bump(&self.metrics.recover_count, 1);
            self.rebuild();
        }
    }

    fn fault(&self) -> Option<HeartbeatFault> {
        self.fault
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Forward {
    /// The output with the system resolver.
    pub fn new(id: &str, config: ForwardConfig) -> Self {
        Self::with_resolver(id, config, Arc::new(SystemResolver))
    }

    /// The output with another resolver (tests inject one that hangs or fails).
    pub fn with_resolver(id: &str, config: ForwardConfig, resolver: Arc<dyn Resolve>) -> Self {
        let clock = Clock::default();
        let now = clock.secs();
        let (members, nodes) = members::Members::initial(&config, now);
        let shared = Arc::new(Shared {
            id: id.to_string(),
            balancer: Balancer::new(config.standby_policy),
            nodes: RwLock::new(Arc::new(nodes)),
            members: Mutex::new(members),
            config,
            resolver,
            clock,
            metrics: ForwardMetrics::default(),
            progress: Mutex::new(HashMap::new()),
            handoff: Mutex::new(None),
            tasks: OnceLock::new(),
            fault: RwLock::new(None),
        });
        shared.rebuild();
        Self { shared }
    }

    /// Start-up checks, as Fluentd makes them: every server name resolves, and with
    /// `verify_connection_at_startup` every server accepts a connection (and the handshake).
    /// With `ignore_network_errors_at_startup` failures are logged instead.
    pub async fn prepare(&self) -> Result<(), ForwardError> {
        let s = &self.shared;
        discovery::watch::first_lookups(s).await?;
        for node in s.nodes().iter() {
            let check = async {
                let spawn = |name: String, fut| s.spawn(name, fut);
                node.dns
                    .addresses(&node.server, &s.resolver, &s.config, &spawn)
                    .await?;
                if s.config.verify_connection_at_startup {
                    let conn = pool::connect(s, node).await?;
                    pool::checkin(s, node, conn);
                }
                Ok::<(), ForwardError>(())
            };
            if let Err(e) = check.await {
                if !s.config.ignore_network_errors_at_startup {
                    return Err(e);
                }
                tracing::warn!("output {}: {e} (ignore_network_errors_at_startup)", s.id);
            }
        }
        Ok(())
    }

    /// Spawns the heartbeat timer (and the UDP heartbeat receiver).
    pub fn start(&self, tasks: &Tasks) {
        let _ = self.shared.tasks.set(tasks.clone());
        heartbeat::start(&self.shared, tasks);
        discovery::watch::start(&self.shared, tasks);
    }

    /// Sends one buffered chunk; `Ok` once every piece was acknowledged (or written, without
    /// `require_ack_response`).
    pub async fn write_chunk(&self, chunk: &Chunk) -> Result<(), ForwardError> {
        self.shared.write_chunk(chunk).await
    }

    /// Whether chunks go out as a stream (several in flight on one connection): with acks.
    pub fn streams(&self) -> bool {
        self.shared.config.require_ack_response
    }

    /// Sends `first` and the chunks `feed` gives while there is room, several in flight on
    /// one connection ([`pipeline`]); each delivered chunk goes to `feed.done` as its last ack
    /// arrives. Returns the chunks not delivered, in order: with the error to settle them with
    /// when their acks were lost (a rollback), else `None`, for [`Self::write_chunk`].
    pub async fn stream(
        &self,
        first: ferry_buffer::Chunk,
        feed: &mut dyn crate::output::feed::ChunkFeed,
    ) -> Vec<(ferry_buffer::Chunk, Option<ForwardError>)> {
        self.shared.stream(first, feed).await
    }

    /// Sends one batch as it arrives (the forward output is always buffered; this serves
    /// programmatic use).
    pub async fn write_batch(&self, batch: &Batch) -> Result<(), ForwardError> {
        self.shared.write_batch(batch).await
    }

    /// Brings traffic back to recovered servers now: every detached server that has answered
    /// a heartbeat since it was detached is healthy again at once, without waiting out
    /// `recover_wait`; standby servers leave the rotation as soon as a regular server is
    /// healthy. SIGHUP calls this. Returns how many servers came back.
    pub fn failback_now(&self) -> usize {
        let s = &self.shared;
        let back = s.nodes().iter().filter(|n| n.failback()).count();
        if back > 0 {
            bump(&s.metrics.recover_count, back as u64);
        }
        s.rebuild();
        back
    }

    pub fn metrics(&self) -> &ForwardMetrics {
        &self.shared.metrics
    }

    pub fn config(&self) -> &ForwardConfig {
        &self.shared.config
    }

    /// The servers now (a snapshot).
    pub fn nodes(&self) -> Arc<Vec<Arc<Node>>> {
        self.shared.nodes()
    }

    /// Servers (by id) in the load-balancing rotation now.
    pub fn in_rotation(&self) -> Vec<usize> {
        self.shared.balancer.in_rotation()
    }

    /// Test seam: see [`HeartbeatFault`].
    #[doc(hidden)]
    pub fn inject_heartbeat_fault(&self, fault: Option<HeartbeatFault>) {
        *self
            .shared
            .fault
            .write()
            .unwrap_or_else(PoisonError::into_inner) = fault;
    }
}
