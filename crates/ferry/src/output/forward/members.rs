//! The forward output's server set, and how it changes under service discovery.
//!
//! The set is a list of [`Node`]s, grouped by source (0: `<server>` and `@type static`; `k`:
//! the `k`-th `<service_discovery>` whose list changes, in configuration order). It is
//! replaced whole at each change (copy on write): a flusher, a heartbeat tick or the status
//! page works on the snapshot it took, and the rotation names servers by id, so nothing ever
//! reaches a server through a stale position.
//!
//! A change of one source's list ([`Shared::apply`]) keeps every server that is still listed
//! with the same parameters as the very same `Node`: its health, detector window, DNS cache,
//! idle connections and counters carry on. Only servers that join or leave are touched:
//!
//! - **joining**: a new `Node`, healthy as at start, in rotation with its weight at once; the
//!   next heartbeat tick probes it and phi detection starts from its first heartbeat. A new
//!   server that refuses connections is detached at its first refused request, which goes to
//!   the next server within the same flush.
//! - **leaving**: the `Node` is retired and leaves the rotation: no request is sent to it any
//!   more. Requests already on their way to it finish as they would have: acknowledged (the
//!   chunk's progress notes record it, it is not sent again), or failed (connection refused,
//!   reset, lost ack, ack timeout), in which case the normal path sends the request to the next
//!   server, or rolls the chunk back for the buffer's retry. Its idle connections are closed and
//!   the connections of requests in flight are closed when those finish. The `Node` is freed
//!   when the last request holding it ends.
//!
//! So a change neither loses an acknowledged event (a chunk leaves the buffer only when every
//! request was acknowledged by some server) nor sends one twice (a request acknowledged by the
//! leaving server is never sent again; one in flight is re-sent only after it failed, exactly as
//! without discovery). Parameters that change (a weight, a shared key) make a new server: the
//! old one leaves as above and the new one joins, as Fluentd treats them.

use super::Shared;
use super::config::{ForwardConfig, ServerConfig};
use super::node::Node;
use std::sync::{Arc, PoisonError};

/// What changing the set needs besides the set: the next id.
#[derive(Debug)]
pub struct Members {
    next_id: usize,
}

/// The servers that joined and left at one change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Change {
    pub joined: Vec<String>,
    pub left: Vec<String>,
}

impl Change {
    pub fn is_empty(&self) -> bool {
        self.joined.is_empty() && self.left.is_empty()
    }
}

impl Members {
    /// The set at start: `<server>`s and static services (source 0), then each file
    /// discovery's list as read with the configuration; SRV discoveries start empty.
    pub fn initial(config: &ForwardConfig, now: f64) -> (Self, Vec<Arc<Node>>) {
        let mut members = Self { next_id: 0 };
        let mut nodes = Vec::new();
        let lists = std::iter::once(config.servers.as_slice())
            .chain(config.discovery.iter().map(|d| d.initial()));
        for (source, list) in lists.enumerate() {
            for server in dedup(list) {
                nodes.push(Arc::new(members.node(source, server.clone(), config, now)));
            }
        }
        (members, nodes)
    }

    fn node(&mut self, source: usize, server: ServerConfig, cfg: &ForwardConfig, now: f64) -> Node {
        let id = self.next_id;
        self.next_id += 1;
        Node::new(id, source, server, cfg, now)
    }
}

/// The list without repeats (Fluentd keys services by their whole content).
fn dedup(list: &[ServerConfig]) -> Vec<&ServerConfig> {
    let mut out: Vec<&ServerConfig> = Vec::new();
    for s in list {
        if !out.iter().any(|o| o.same_server(s)) {
            out.push(s);
        }
    }
    out
}

impl Shared {
    /// Makes `servers` the list of source `source` (see the module docs). Logs each server
    /// that joins or leaves, rebuilds the rotation and returns what changed.
    pub fn apply(&self, source: usize, servers: &[ServerConfig]) -> Change {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        let old = self.nodes();
        let now = self.clock.secs();
        let mut change = Change::default();
        let mut kept: Vec<usize> = Vec::new();
        let mut fresh: Vec<Arc<Node>> = Vec::new();
        for server in dedup(servers) {
            let same = old
                .iter()
                .find(|n| n.source == source && n.server.same_server(server));
            match same {
                Some(n) => {
                    kept.push(n.id);
                    fresh.push(Arc::clone(n));
                }
                None => {
                    let node = members.node(source, server.clone(), &self.config, now);
                    tracing::info!(
                        "adding forwarding server '{}' host=\"{}\" port={} weight={} plugin_id=\"{}\"",
                        server.name,
                        server.host,
                        server.port,
                        server.weight,
                        self.id
                    );
                    change.joined.push(server.name.clone());
                    fresh.push(Arc::new(node));
                }
            }
        }
        for n in old.iter().filter(|n| n.source == source) {
            if !kept.contains(&n.id) {
                let pending = n
                    .metrics
                    .acks_pending
                    .load(std::sync::atomic::Ordering::Relaxed);
                tracing::info!(
                    "removing forwarding server '{}' host=\"{}\" port={} plugin_id=\"{}\" (requests awaiting an ack: {pending}; they finish or go to another server)",
                    n.server.name,
                    n.server.host,
                    n.server.port,
                    self.id
                );
                n.retire();
                change.left.push(n.server.name.clone());
            }
        }
        if change.is_empty() {
            return change;
        }
        let mut next: Vec<Arc<Node>> = Vec::with_capacity(old.len() + fresh.len());
        next.extend(old.iter().filter(|n| n.source < source).cloned());
        next.extend(fresh);
        next.extend(old.iter().filter(|n| n.source > source).cloned());
        *self.nodes.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(next);
        self.rebuild_locked();
        super::metrics::bump(
            &self.metrics.discovery_changes,
            (change.joined.len() + change.left.len()) as u64,
        );
        change
    }
}
