//! The router: from a tag to the filters and the output that take it, with Fluentd's rules.
//!
//! - A table is the top level (`@ROOT`) or a `<label @NAME>`. Inputs emit into the top level,
//!   or into their `@label`'s table.
//! - In a table, `<match>` directives are tried in file order and the first whose pattern
//!   matches wins. The `<filter>` directives whose pattern matches and that come before that
//!   `<match>` run first, in file order. Events no `<match>` takes are counted and logged once
//!   per tag (filters do not run on them).
//! - A `<match>` sends the events to one output, to every store of a `copy`, or (`relabel`)
//!   into another label's table.
//! - The `@ERROR` label, when defined, receives (1) events a filter reports as errors (as that
//!   filter received them), and (2) batches an output refuses with a non-retryable error
//!   (a record larger than a chunk, a broken chunk). Those events count as committed once
//!   `@ERROR` committed them. Without `@ERROR`, (1) is dropped, counted and logged
//!   (rate-limited), and (2) fails the emit, so the input does not acknowledge. Errors that
//!   arise inside `@ERROR` are not sent to it again.
//!
//! Each table caches the route of every tag it has seen (bounded), so per batch the decision
//! costs one hash lookup; a batch with no matching filter goes to its output as the same bytes.

pub mod config;
pub mod pattern;
mod route;
mod routing;

pub use routing::Routing;

pub use config::{
    CopyConfig, FilterRule, Ids, LabelConfig, MatchConfig, RoutesConfig, StoreConfig, StoreTarget,
    TargetConfig,
};

use crate::event::Batch;
use crate::filter::chain;
use crate::output::{EmitError, Output};
use route::{Route, Store, Table, Target};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Distinct unmatched tags logged before further ones are only counted.
const UNMATCHED_LOG_LIMIT: usize = 1_024;
/// Labels an event may pass through (`relabel`, `@ERROR`) before it is refused as a loop.
const MAX_HOPS: u8 = 8;
/// Batches at least this large are filtered on a blocking thread, off the async workers.
/// Smaller ones (a usual Forward request, a tail step) are filtered on the calling task: the
/// hand-off to a blocking thread and back cost more than filtering them (measured with grep on
/// 256 KiB requests: 30 % more CPU per GB through the blocking pool).
const BLOCKING_FILTER_BYTES: usize = 1024 * 1024;
/// Shortest time between two "error events dropped" log lines.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Which table an input emits into: the top level or a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteId(usize);

/// What happened to a batch the router was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// Committed by the outputs it was routed to (or dropped by a filter, which is final).
    Committed,
    /// No directive matched its tag: counted and dropped, as Fluentd does.
    Unmatched,
}

/// Counters of the router (exported as `ferry_router_*`).
#[derive(Debug, Default)]
pub struct RouterMetrics {
    pub unmatched_records: AtomicU64,
    /// Events a filter dropped.
    pub filtered_records: AtomicU64,
    /// Events sent to `@ERROR` (or dropped for lack of it).
    pub error_records: AtomicU64,
    /// Error events dropped because there is no `@ERROR` label.
    pub dropped_error_records: AtomicU64,
    /// Store refusals ignored by `<store ignore_error>`.
    pub ignored_store_errors: AtomicU64,
    /// Events a `concat` filter passed on unjoined ([`crate::filter::concat`]).
    pub concat_not_applied: AtomicU64,
}

#[derive(Debug)]
pub struct Router {
    tables: Vec<Table>,
    labels: HashMap<String, usize>,
    error_table: Option<usize>,
    outputs: Vec<Arc<Output>>,
    hostname: Arc<str>,
    /// Shared with the routers before and after a reload: counters continue.
    pub metrics: Arc<RouterMetrics>,
    unmatched_logged: Mutex<HashSet<Arc<str>>>,
    error_logged: Mutex<Option<Instant>>,
}

/// Where a batch is in its journey through labels.
#[derive(Debug, Clone, Copy, Default)]
struct Hops {
    count: u8,
    in_error: bool,
}

impl Hops {
    fn next(self) -> Self {
        Self {
            count: self.count.saturating_add(1),
            ..self
        }
    }
}

type EmitFuture<'a> = Pin<Box<dyn Future<Output = Result<Routed, EmitError>> + Send + 'a>>;

impl Router {
    /// Builds the routing tables over `outputs`, which hold one output per entry of
    /// [`RoutesConfig::outputs`], in that order.
    pub fn new(config: &RoutesConfig, outputs: Vec<Arc<Output>>) -> Self {
        Self::with_metrics(config, outputs, Arc::default())
    }

    /// [`Self::new`] counting into `metrics` (those of the router it replaces).
    pub fn with_metrics(
        config: &RoutesConfig,
        outputs: Vec<Arc<Output>>,
        metrics: Arc<RouterMetrics>,
    ) -> Self {
        let mut labels = HashMap::from([("@ROOT".to_string(), 0)]);
        for (i, label) in config.labels.iter().enumerate() {
            labels.insert(label.name.clone(), i + 1);
        }
        let mut next_output = 0;
        let mut tables = vec![Table::build(
            "@ROOT",
            &config.root_filters,
            &config.root,
            &labels,
            &mut next_output,
        )];
        for label in &config.labels {
            tables.push(Table::build(
                &label.name,
                &label.filters,
                &label.matches,
                &labels,
                &mut next_output,
            ));
        }
        Self {
            tables,
            error_table: labels.get("@ERROR").copied(),
            labels,
            outputs,
            hostname: Arc::from(crate::plugin::hostname()),
            metrics,
            unmatched_logged: Mutex::default(),
            error_logged: Mutex::default(),
        }
    }

    /// The table for an input's `@label` (`None` or `@ROOT`: the top level).
    pub fn route_for(&self, label: Option<&str>) -> Option<RouteId> {
        match label {
            None => Some(RouteId(0)),
            Some(name) => self.labels.get(name).copied().map(RouteId),
        }
    }

    /// The first `concat` filter on the route of `tag` in `label`'s table: the tail input runs
    /// it where it reads the lines ([`crate::filter::concat`]).
    pub fn concat_for(
        &self,
        label: Option<&str>,
        tag: &Arc<str>,
    ) -> Option<Arc<crate::filter::concat::ConcatRule>> {
        let table = self.tables.get(self.route_for(label)?.0)?;
        table.lookup(tag).filters.iter().find_map(|f| match &**f {
            crate::filter::Filter::Concat(c) => Some(Arc::clone(c)),
            _ => None,
        })
    }

    pub fn outputs(&self) -> &[Arc<Output>] {
        &self.outputs
    }

    pub fn unmatched_records(&self) -> u64 {
        self.metrics.unmatched_records.load(Ordering::Relaxed)
    }

    /// Routes `batch` and returns once it is committed (or counted as unmatched).
    pub async fn emit(&self, route: RouteId, batch: &Batch) -> Result<Routed, EmitError> {
        self.emit_in(route.0, batch.clone(), Hops::default()).await
    }

    fn emit_in(&self, table: usize, batch: Batch, hops: Hops) -> EmitFuture<'_> {
        Box::pin(async move {
            let Some(t) = self.tables.get(table) else {
                return Err(EmitError::ShuttingDown);
            };
            if hops.count > MAX_HOPS {
                return Err(EmitError::LabelLoop {
                    label: t.name.clone(),
                    hops: MAX_HOPS,
                });
            }
            let route = t.lookup(&batch.tag);
            let Some(rule) = route.target else {
                self.unmatched(t, &batch);
                return Ok(Routed::Unmatched);
            };
            let batch = if route.filters.is_empty() {
                batch
            } else {
                let filtered = self.filter(&route, batch).await?;
                self.metrics
                    .filtered_records
                    .fetch_add(filtered.dropped, Ordering::Relaxed);
                self.metrics
                    .concat_not_applied
                    .fetch_add(filtered.concat_not_applied, Ordering::Relaxed);
                if let Some(errors) = filtered.errors {
                    let reason = filtered.first_error.unwrap_or_default();
                    self.to_error(errors, &reason, hops).await?;
                }
                match filtered.kept {
                    Some(b) => b,
                    None => return Ok(Routed::Committed),
                }
            };
            match t.rules.get(rule).map(|(_, target)| target) {
                Some(Target::Output(i)) => self.to_output(*i, batch, hops).await,
                Some(Target::Relabel(next)) => self.emit_in(*next, batch, hops.next()).await,
                Some(Target::Copy(stores)) => self.to_copy(stores, batch, hops).await,
                Some(Target::RoundRobin(rr)) => self.to_round_robin(rr, batch, hops).await,
                None => Err(EmitError::ShuttingDown),
            }
        })
    }

    async fn filter(&self, route: &Arc<Route>, batch: Batch) -> Result<chain::Filtered, EmitError> {
        if batch.entries.len() < BLOCKING_FILTER_BYTES {
            return Ok(chain::run(&route.filters, &batch, &self.hostname));
        }
        let route = Arc::clone(route);
        let hostname = Arc::clone(&self.hostname);
        tokio::task::spawn_blocking(move || chain::run(&route.filters, &batch, &hostname))
            .await
            .map_err(|_| EmitError::ShuttingDown)
    }

    async fn to_output(&self, index: usize, batch: Batch, hops: Hops) -> Result<Routed, EmitError> {
        let output = self.outputs.get(index).ok_or(EmitError::ShuttingDown)?;
        match output.emit(&batch).await {
            Ok(()) => Ok(Routed::Committed),
            Err(e) if !e.is_retryable() && self.error_table.is_some() && !hops.in_error => {
                tracing::warn!(
                    "output {} refused {} events of tag=\"{}\" ({e}); routing them to @ERROR",
                    output.id,
                    batch.records,
                    batch.tag
                );
                self.to_error(batch, &e.to_string(), hops).await
            }
            Err(e) => Err(e),
        }
    }

    /// Every store gets the batch at once; the copy commits when every store without
    /// `ignore_error` committed.
    async fn to_copy(
        &self,
        stores: &[Store],
        batch: Batch,
        hops: Hops,
    ) -> Result<Routed, EmitError> {
        let sends = stores.iter().map(|store| {
            let batch = batch.clone();
            async move {
                let result = match store.target {
                    route::StoreTarget::Output(i) => self.to_output(i, batch, hops).await,
                    route::StoreTarget::Relabel(t) => self.emit_in(t, batch, hops.next()).await,
                };
                (store, result)
            }
        });
        let mut first_error = None;
        for (store, result) in futures_util::future::join_all(sends).await {
            match result {
                Ok(_) => {}
                Err(e) if store.ignore_error => {
                    self.metrics
                        .ignored_store_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        "copy store {} refused {} events of tag=\"{}\" (ignore_error): {e}",
                        store.id,
                        batch.records,
                        batch.tag
                    );
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(Routed::Committed), Err)
    }

    /// The batch goes to the store whose turn it is; a store that refuses it with a retryable
    /// error (full, down) passes it to the next store, so one store down does not stop the
    /// others taking traffic. Every store refusing fails the emit (no ack).
    async fn to_round_robin(
        &self,
        rr: &route::RoundRobin,
        batch: Batch,
        hops: Hops,
    ) -> Result<Routed, EmitError> {
        let turn = rr.next.fetch_add(1, Ordering::Relaxed);
        let first = rr
            .schedule
            .get(turn % rr.schedule.len().max(1))
            .copied()
            .unwrap_or(0);
        let mut last_error = None;
        for k in 0..rr.stores.len() {
            let store = &rr.stores[(first + k) % rr.stores.len()];
            let result = match store.target {
                route::StoreTarget::Output(i) => self.to_output(i, batch.clone(), hops).await,
                route::StoreTarget::Relabel(t) => self.emit_in(t, batch.clone(), hops.next()).await,
            };
            match result {
                Ok(routed) => return Ok(routed),
                Err(e) if e.is_retryable() => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or(EmitError::ShuttingDown))
    }

    async fn to_error(&self, batch: Batch, reason: &str, hops: Hops) -> Result<Routed, EmitError> {
        self.metrics
            .error_records
            .fetch_add(batch.records, Ordering::Relaxed);
        if let Some(table) = self.error_table
            && !hops.in_error
        {
            let hops = Hops {
                count: hops.count.saturating_add(1),
                in_error: true,
            };
            return self.emit_in(table, batch, hops).await;
        }
        self.metrics
            .dropped_error_records
            .fetch_add(batch.records, Ordering::Relaxed);
        let mut last = self
            .error_logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= ERROR_LOG_INTERVAL) {
            *last = Some(Instant::now());
            tracing::warn!(
                "dump an error event: error=\"{reason}\" tag=\"{}\" count={} (no <label @ERROR>; \
                 counted in ferry_router_dropped_error_records_total, logged at most every {}s)",
                batch.tag,
                batch.records,
                ERROR_LOG_INTERVAL.as_secs()
            );
        }
        Ok(Routed::Committed)
    }

    fn unmatched(&self, table: &Table, batch: &Batch) {
        self.metrics
            .unmatched_records
            .fetch_add(batch.records, Ordering::Relaxed);
        let mut logged = self
            .unmatched_logged
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if logged.len() < UNMATCHED_LOG_LIMIT && logged.insert(Arc::clone(&batch.tag)) {
            tracing::warn!(
                "no patterns matched tag=\"{}\" label={} (events are counted in ferry_router_unmatched_records_total)",
                batch.tag,
                table.name
            );
        }
    }
}

impl crate::metrics::Collector for Router {
    fn collect(&self, out: &mut crate::metrics::Exposition) {
        use crate::metrics::names::dropped;
        out.counter(
            crate::metrics::names::FERRY_ROUTER_UNMATCHED,
            &[],
            self.unmatched_records(),
        );
        let m = &self.metrics;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        out.counter(
            crate::metrics::names::FERRY_FILTER_CONCAT_NOT_APPLIED,
            &[],
            n(&m.concat_not_applied),
        );
        out.dropped(
            "router",
            "router",
            dropped::UNMATCHED,
            n(&m.unmatched_records),
        );
        out.dropped(
            "router",
            "router",
            dropped::FILTER_ERROR,
            n(&m.dropped_error_records),
        );
    }
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
