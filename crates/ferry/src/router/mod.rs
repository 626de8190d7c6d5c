//! The router: from a tag to the output that takes it, with Fluentd's rules.
//!
//! `<match>` directives are tried in file order and the first whose pattern matches wins.
//! Inputs with `@label @NAME` emit into that label's directives instead of the top level.
//! Each table caches the route of every tag it has seen (bounded), so per batch the cost is
//! one hash lookup. Events that no directive matches are counted and logged once per tag.

pub mod pattern;

use crate::event::Batch;
use crate::output::{EmitError, Output, OutputConfig};

use ferry_config::Span;
use pattern::MatchPattern;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

/// Distinct tags cached per table before the cache is cleared.
const ROUTE_CACHE_LIMIT: usize = 16_384;
/// Distinct unmatched tags logged before further ones are only counted.
const UNMATCHED_LOG_LIMIT: usize = 1_024;

/// A parsed `<match>` directive.
#[derive(Debug, Clone)]
pub struct MatchConfig {
    pub pattern: MatchPattern,
    pub id: String,
    pub output: OutputConfig,
    pub span: Span,
}

/// A parsed `<label @NAME>` section.
#[derive(Debug, Clone)]
pub struct LabelConfig {
    pub name: String,
    pub matches: Vec<MatchConfig>,
    pub span: Span,
}

/// All routing directives of a configuration.
#[derive(Debug, Clone, Default)]
pub struct RoutesConfig {
    pub root: Vec<MatchConfig>,
    pub labels: Vec<LabelConfig>,
}

impl RoutesConfig {
    /// Every `<match>` in configuration order: the top level, then each label's.
    pub fn matches(&self) -> impl Iterator<Item = &MatchConfig> {
        self.root
            .iter()
            .chain(self.labels.iter().flat_map(|l| l.matches.iter()))
    }
}

/// Which table an input emits into: the top level or a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteId(usize);

#[derive(Debug)]
struct Table {
    name: String,
    rules: Vec<(MatchPattern, usize)>,
    cache: RwLock<HashMap<Arc<str>, Option<usize>>>,
}

/// What happened to a batch the router was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// Committed by the output it was routed to.
    Committed,
    /// No directive matched its tag: counted and dropped, as Fluentd does.
    Unmatched,
}

#[derive(Debug)]
pub struct Router {
    tables: Vec<Table>,
    labels: HashMap<String, usize>,
    outputs: Vec<Arc<Output>>,
    unmatched_records: AtomicU64,
    unmatched_logged: Mutex<HashSet<Arc<str>>>,
}

impl Router {
    /// Builds the routing tables over `outputs`, which hold one output per `<match>` in
    /// configuration order: the top level first, then each label's (see [`RoutesConfig::matches`]).
    pub fn new(config: &RoutesConfig, outputs: Vec<Arc<Output>>) -> Self {
        let mut next = 0;
        let mut make_table = |name: &str, matches: &[MatchConfig]| {
            let rules = matches
                .iter()
                .map(|m| {
                    next += 1;
                    (m.pattern.clone(), next - 1)
                })
                .collect();
            Table {
                name: name.to_string(),
                rules,
                cache: RwLock::default(),
            }
        };
        let mut tables = vec![make_table("@ROOT", &config.root)];
        let mut labels = HashMap::new();
        for label in &config.labels {
            tables.push(make_table(&label.name, &label.matches));
            labels.insert(label.name.clone(), tables.len() - 1);
        }
        Self {
            tables,
            labels,
            outputs,
            unmatched_records: AtomicU64::new(0),
            unmatched_logged: Mutex::default(),
        }
    }

    /// The table for an input's `@label` (`None` or `@ROOT`: the top level).
    pub fn route_for(&self, label: Option<&str>) -> Option<RouteId> {
        match label {
            None | Some("@ROOT") => Some(RouteId(0)),
            Some(name) => self.labels.get(name).copied().map(RouteId),
        }
    }

    pub fn outputs(&self) -> &[Arc<Output>] {
        &self.outputs
    }

    pub fn unmatched_records(&self) -> u64 {
        self.unmatched_records.load(Ordering::Relaxed)
    }

    fn lookup(&self, route: RouteId, tag: &Arc<str>) -> Option<usize> {
        let table = self.tables.get(route.0)?;
        if let Some(hit) = table
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tag)
        {
            return *hit;
        }
        let found = table
            .rules
            .iter()
            .find(|(p, _)| p.matches(tag))
            .map(|(_, o)| *o);
        let mut cache = table.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= ROUTE_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(Arc::clone(tag), found);
        found
    }

    /// Routes `batch` and returns once it is committed (or counted as unmatched).
    pub async fn emit(&self, route: RouteId, batch: &Batch) -> Result<Routed, EmitError> {
        match self.lookup(route, &batch.tag) {
            Some(index) => {
                let output = self.outputs.get(index).ok_or(EmitError::ShuttingDown)?;
                output.emit(batch).await?;
                Ok(Routed::Committed)
            }
            None => {
                self.unmatched_records
                    .fetch_add(batch.records, Ordering::Relaxed);
                let mut logged = self
                    .unmatched_logged
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                if logged.len() < UNMATCHED_LOG_LIMIT && logged.insert(Arc::clone(&batch.tag)) {
                    let table = self.tables.get(route.0).map_or("", |t| t.name.as_str());
                    tracing::warn!(
                        "no patterns matched tag=\"{}\" label={} (events are counted in ferry_router_unmatched_records_total)",
                        batch.tag,
                        table
                    );
                }
                Ok(Routed::Unmatched)
            }
        }
    }
}
