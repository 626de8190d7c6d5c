//! What every part of the tail input shares: the input's context and the stop signal.

use super::config::TailInputConfig;
use super::metrics::TailMetrics;
use super::table::PositionTable;
use crate::router::Routing;
use std::sync::Arc;

/// The task was cancelled (or the pipeline is shutting down).
#[derive(Debug)]
pub struct Stop;

/// What every file operation needs.
#[derive(Debug)]
pub struct Ctx {
    pub id: String,
    pub cfg: Arc<TailInputConfig>,
    pub routing: Arc<Routing>,
    /// The `@label` events go to (`None`: the top level).
    pub label: Option<String>,
    pub metrics: Arc<TailMetrics>,
    pub table: PositionTable,
    /// When a per-line warning was last logged (unix seconds).
    pub last_warn: std::sync::atomic::AtomicU64,
}
