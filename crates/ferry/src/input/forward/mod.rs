//! `@type forward`: the Forward protocol server (Fluentd's in_forward).
//!
//! TCP on `bind:port` carries requests; UDP on the same port answers heartbeats with `0x00`.
//! Each connection is its own task ([`conn`]): it decodes requests incrementally, validates
//! entries without building records, routes the batch and writes the ack only after every
//! output committed the events.

mod conn;
mod listener;

use crate::router::{RouteId, Router};
use ferry_config::{ByteSize, Section};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

pub use listener::start;

/// The largest request accepted when `chunk_size_limit` is not set: Fluentd's largest default
/// chunk (a file buffer's `chunk_limit_size`), so default forwarders are never refused.
pub const DEFAULT_MAX_REQUEST: u64 = 256 * 1024 * 1024;

/// `<source> @type forward`.
#[derive(Debug, Clone, PartialEq)]
pub struct ForwardInputConfig {
    pub bind: String,
    pub port: u16,
    pub label: Option<String>,
    /// `tag`: replaces every incoming tag.
    pub tag: Option<String>,
    /// `add_tag_prefix`: `prefix.` + incoming tag.
    pub add_tag_prefix: Option<String>,
    pub chunk_size_limit: Option<ByteSize>,
    pub chunk_size_warn_limit: Option<ByteSize>,
    pub decompression_size_limit: ByteSize,
    pub skip_invalid_event: bool,
}

impl ForwardInputConfig {
    pub fn from_section(section: &Section<'_>) -> Self {
        let port = section.u64_or("port", 24224);
        let port = u16::try_from(port).unwrap_or_else(|_| {
            section.error(
                Some("port"),
                format!("port {port} is out of range (1-65535)"),
            );
            24224
        });
        let cfg = Self {
            bind: section.str_or("bind", "0.0.0.0"),
            port,
            label: section.label().map(str::to_string),
            tag: section.str("tag"),
            add_tag_prefix: section.str("add_tag_prefix"),
            chunk_size_limit: section.opt_size("chunk_size_limit"),
            chunk_size_warn_limit: section.opt_size("chunk_size_warn_limit"),
            decompression_size_limit: section
                .size_or("decompression_size_limit", ByteSize(256 * 1024 * 1024)),
            skip_invalid_event: section.bool_or("skip_invalid_event", true),
        };
        for name in ["security", "transport", "user", "client"] {
            if section.element().children.iter().any(|c| c.name == name) {
                section.error(
                    None,
                    format!("<{name}> in a forward input is not available in this ferry build"),
                );
            }
        }
        cfg
    }

    /// The largest request a peer may send before the connection is refused.
    pub fn max_request(&self) -> u64 {
        self.chunk_size_limit.map_or(DEFAULT_MAX_REQUEST, |s| s.0)
    }
}

/// Counters of one forward input (exported as metrics).
#[derive(Debug, Default)]
pub struct ForwardInputMetrics {
    pub connections_accepted: AtomicU64,
    pub connections_active: AtomicU64,
    pub requests: AtomicU64,
    pub emit_records: AtomicU64,
    pub emit_size: AtomicU64,
    pub acks: AtomicU64,
    pub invalid_events: AtomicU64,
    pub broken_requests: AtomicU64,
    pub oversize_requests: AtomicU64,
    pub commit_failures: AtomicU64,
    pub accept_errors: AtomicU64,
    pub heartbeats: AtomicU64,
}

/// What every connection task of one input shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub id: String,
    pub config: ForwardInputConfig,
    pub router: Arc<Router>,
    pub route: RouteId,
    pub metrics: Arc<ForwardInputMetrics>,
    pub local: SocketAddr,
}
