//! Counters and gauges of a forward output (atomics only; exported by the metrics endpoint
//! under Fluentd's names where Fluentd has them: `fluentd_output_healthy_nodes_count`,
//! `fluentd_output_registered_nodes_count`).

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

/// The output as a whole.
#[derive(Debug, Default)]
pub struct ForwardMetrics {
    /// `fluentd_output_healthy_nodes_count`: servers taking load now.
    pub healthy_nodes_count: AtomicU64,
    /// `fluentd_output_registered_nodes_count`.
    pub registered_nodes_count: AtomicU64,
    /// Requests written, and their bytes (header and options included).
    pub requests_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub records_sent: AtomicU64,
    /// Acks received that matched their request.
    pub acks_received: AtomicU64,
    /// Requests written whose ack never came (timeout or connection lost).
    pub acks_lost: AtomicU64,
    /// Acks that named another chunk, and replies that were not acks.
    pub acks_mismatched: AtomicU64,
    /// Requests sent again after their ack was lost: the events may arrive twice.
    pub duplicates_resent: AtomicU64,
    pub duplicate_records_resent: AtomicU64,
    /// Chunks cut into several requests by `max_request_size`.
    pub chunks_split: AtomicU64,
    /// Single entries larger than `max_request_size`, sent alone.
    pub oversize_entries: AtomicU64,
    pub connections_opened: AtomicU64,
    pub connections_reused: AtomicU64,
    pub connect_failures: AtomicU64,
    pub tls_failures: AtomicU64,
    pub handshake_failures: AtomicU64,
    pub dns_failures: AtomicU64,
    pub no_nodes_available: AtomicU64,
    pub detach_count: AtomicU64,
    pub recover_count: AtomicU64,
    /// Heartbeat ticks or probes that failed unexpectedly (the timer keeps running).
    pub heartbeat_errors: AtomicU64,
    /// Chunks rolled back without counting a retry.
    pub rollbacks: AtomicU64,
}

/// Server state as exported (`0` healthy, `1` detached).
pub const STATE_HEALTHY: u8 = 0;
pub const STATE_DETACHED: u8 = 1;

/// One `<server>`.
#[derive(Debug, Default)]
pub struct NodeMetrics {
    pub state: AtomicU8,
    /// phi at the last heartbeat tick, as `f64` bits.
    pub phi_bits: AtomicU64,
    /// Round trip of the last successful heartbeat, microseconds.
    pub heartbeat_rtt_us: AtomicU64,
    pub heartbeats_ok: AtomicU64,
    pub heartbeats_failed: AtomicU64,
    /// Requests written to this server whose ack has not come yet.
    pub acks_pending: AtomicU64,
    pub requests_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub errors: AtomicU64,
}

impl NodeMetrics {
    pub fn phi(&self) -> f64 {
        f64::from_bits(self.phi_bits.load(Ordering::Relaxed))
    }

    pub fn set_phi(&self, phi: f64) {
        self.phi_bits.store(phi.to_bits(), Ordering::Relaxed);
    }

    pub fn is_healthy(&self) -> bool {
        self.state.load(Ordering::Relaxed) == STATE_HEALTHY
    }
}

pub fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}
