//! The runtime tables: compiled patterns, resolved targets, and the per-tag route cache.

use super::config::{FilterRule, MatchConfig, StoreTarget as StoreTargetConfig, TargetConfig};
use super::pattern::MatchPattern;
use crate::filter::Filter;
use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

/// Distinct tags cached per table before the cache is cleared.
const ROUTE_CACHE_LIMIT: usize = 16_384;

/// Where a `<match>` sends events (indices into the router's outputs and tables).
#[derive(Debug)]
pub(super) enum Target {
    Output(usize),
    Copy(Vec<Store>),
    RoundRobin(RoundRobin),
    Relabel(usize),
}

/// roundrobin's stores and their turns: `schedule` lists store indices, each as many times as
/// its weight, spread out; `next` walks it.
#[derive(Debug)]
pub(super) struct RoundRobin {
    pub stores: Vec<Store>,
    pub schedule: Vec<usize>,
    pub next: std::sync::atomic::AtomicUsize,
}

#[cfg(test)]
pub(super) fn schedule_for_tests(weights: &[u32]) -> Vec<usize> {
    schedule(weights)
}

/// Interleaves the turns of stores with `weights` (smooth weighted round robin, as nginx
/// spreads them): weights 3 and 1 give 0, 0, 1, 0.
fn schedule(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::new();
    for _ in 0..total {
        for (c, w) in current.iter_mut().zip(weights) {
            *c += i64::from(*w);
        }
        let Some((best, _)) = current
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (**c, -(*i as i64)))
        else {
            break;
        };
        current[best] -= total;
        out.push(best);
    }
    out
}

#[derive(Debug)]
pub(super) struct Store {
    pub id: String,
    pub ignore_error: bool,
    pub target: StoreTarget,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum StoreTarget {
    Output(usize),
    Relabel(usize),
}

/// The decision for one tag in one table.
#[derive(Debug, Default)]
pub(super) struct Route {
    /// The filters to run, in order.
    pub filters: Vec<Arc<Filter>>,
    /// The index of the `<match>` that takes the tag.
    pub target: Option<usize>,
}

#[derive(Debug)]
pub(super) struct Table {
    pub name: String,
    filters: Vec<(MatchPattern, Arc<Filter>, usize)>,
    pub rules: Vec<(MatchPattern, Target)>,
    cache: RwLock<HashMap<Arc<str>, Arc<Route>>>,
}

impl Table {
    /// Builds a table; `next_output` walks the outputs in [`super::RoutesConfig::outputs`]
    /// order. Labels that do not exist were reported by the pipeline; here they route nowhere
    /// (table index past the end, refused at emit).
    pub fn build(
        name: &str,
        filters: &[FilterRule],
        matches: &[MatchConfig],
        labels: &HashMap<String, usize>,
        next_output: &mut usize,
    ) -> Self {
        let label = |l: &str| labels.get(l).copied().unwrap_or(usize::MAX);
        let mut take = || {
            *next_output += 1;
            *next_output - 1
        };
        let rules = matches
            .iter()
            .map(|m| {
                let target = match &m.target {
                    TargetConfig::Output(_) => Target::Output(take()),
                    TargetConfig::Relabel(l) => Target::Relabel(label(l)),
                    TargetConfig::Copy(c) => {
                        let stores: Vec<Store> = c
                            .stores
                            .iter()
                            .map(|s| Store {
                                id: s.id.clone(),
                                ignore_error: s.ignore_error,
                                target: match &s.target {
                                    StoreTargetConfig::Output(_) => StoreTarget::Output(take()),
                                    StoreTargetConfig::Relabel(l) => StoreTarget::Relabel(label(l)),
                                },
                            })
                            .collect();
                        if c.round_robin {
                            let weights: Vec<u32> = c.stores.iter().map(|s| s.weight).collect();
                            Target::RoundRobin(RoundRobin {
                                stores,
                                schedule: schedule(&weights),
                                next: Default::default(),
                            })
                        } else {
                            Target::Copy(stores)
                        }
                    }
                };
                (m.pattern.clone(), target)
            })
            .collect();
        Self {
            name: name.to_string(),
            filters: filters
                .iter()
                .map(|f| (f.pattern.clone(), Arc::clone(&f.filter), f.before_match))
                .collect(),
            rules,
            cache: RwLock::default(),
        }
    }

    /// The route of `tag`: cached after the first lookup.
    pub fn lookup(&self, tag: &Arc<str>) -> Arc<Route> {
        if let Some(hit) = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(tag)
        {
            return Arc::clone(hit);
        }
        let route = Arc::new(self.decide(tag));
        let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= ROUTE_CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(Arc::clone(tag), Arc::clone(&route));
        route
    }

    fn decide(&self, tag: &str) -> Route {
        let Some(target) = self.rules.iter().position(|(p, _)| p.matches(tag)) else {
            return Route::default();
        };
        let filters = self
            .filters
            .iter()
            .filter(|(p, _, before)| *before <= target && p.matches(tag))
            .map(|(_, f, _)| Arc::clone(f))
            .collect();
        Route {
            filters,
            target: Some(target),
        }
    }
}
