//! Routing directives as configured: `<filter>` and `<match>` per table (the top level and
//! each `<label>`), and what a `<match>` does: one output, `copy` to several stores,
//! `roundrobin` to one of several stores in turn, or `relabel` into another label.

use super::pattern::MatchPattern;
use crate::filter::Filter;
use crate::output::OutputConfig;
use crate::root_dir::RootDir;
use ferry_config::{Section, Span};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

/// A parsed `<match>` directive.
#[derive(Debug, Clone)]
pub struct MatchConfig {
    pub pattern: MatchPattern,
    pub id: String,
    pub target: TargetConfig,
    pub span: Span,
}

/// What a `<match>` does with the events it takes.
#[derive(Debug, Clone)]
pub enum TargetConfig {
    Output(Box<OutputConfig>),
    Copy(CopyConfig),
    /// `@type relabel` with `@label @NAME`: the events go on in that label.
    Relabel(String),
}

/// `@type copy`. Its `copy_mode` and `deep_copy` are accepted with a note: ferry's batches are
/// immutable bytes shared between stores, so no store can change what another receives, which
/// is what every mode is for.
#[derive(Debug, Clone)]
pub struct CopyConfig {
    pub stores: Vec<StoreConfig>,
    /// `@type roundrobin`: each batch goes to one store, in turn by `weight`, instead of all.
    pub round_robin: bool,
}

/// One `<store>` of a copy.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    pub id: String,
    /// `<store ignore_error>`: a refusal by this store does not fail the copy.
    pub ignore_error: bool,
    /// roundrobin's `weight` (1 by default): a store of weight 2 takes two batches in turn.
    pub weight: u32,
    pub target: StoreTarget,
    pub span: Span,
}

#[derive(Debug, Clone)]
pub enum StoreTarget {
    Output(Box<OutputConfig>),
    Relabel(String),
}

/// A parsed `<filter>` directive.
#[derive(Debug, Clone)]
pub struct FilterRule {
    pub pattern: MatchPattern,
    pub id: String,
    pub filter: Arc<Filter>,
    /// How many `<match>` directives of the same table come before it: the filter applies to
    /// events taken by match number `before_match` or later.
    pub before_match: usize,
    pub span: Span,
}

/// A parsed `<label @NAME>` section.
#[derive(Debug, Clone)]
pub struct LabelConfig {
    pub name: String,
    pub filters: Vec<FilterRule>,
    pub matches: Vec<MatchConfig>,
    pub span: Span,
}

/// All routing directives of a configuration.
#[derive(Debug, Clone, Default)]
pub struct RoutesConfig {
    pub root: Vec<MatchConfig>,
    pub root_filters: Vec<FilterRule>,
    pub labels: Vec<LabelConfig>,
}

impl RoutesConfig {
    /// Every `<match>` in configuration order: the top level, then each label's.
    pub fn matches(&self) -> impl Iterator<Item = &MatchConfig> {
        self.root
            .iter()
            .chain(self.labels.iter().flat_map(|l| l.matches.iter()))
    }

    /// Every output to build, as `(id, config)`, in the order [`super::Router::new`] expects
    /// them: each `<match>` in [`Self::matches`] order, a copy's stores in order.
    pub fn outputs(&self) -> Vec<(&str, &OutputConfig)> {
        let mut out = Vec::new();
        for m in self.matches() {
            match &m.target {
                TargetConfig::Output(o) => out.push((m.id.as_str(), &**o)),
                TargetConfig::Copy(c) => {
                    for s in &c.stores {
                        if let StoreTarget::Output(o) = &s.target {
                            out.push((s.id.as_str(), &**o));
                        }
                    }
                }
                TargetConfig::Relabel(_) => {}
            }
        }
        out
    }

    /// Every label a `relabel` names, with where it is named.
    pub fn relabels(&self) -> Vec<(&str, &Span)> {
        let mut out = Vec::new();
        for m in self.matches() {
            match &m.target {
                TargetConfig::Relabel(l) => out.push((l.as_str(), &m.span)),
                TargetConfig::Copy(c) => {
                    for s in &c.stores {
                        if let StoreTarget::Relabel(l) = &s.target {
                            out.push((l.as_str(), &s.span));
                        }
                    }
                }
                TargetConfig::Output(_) => {}
            }
        }
        out
    }
}

/// Plugin ids: `@id` when given (must be unique), else `<type>_<n>`; and each plugin's
/// `@log_level` ([`crate::logging`] applies it to the plugin's own log lines).
#[derive(Debug, Default)]
pub struct Ids {
    seen: HashSet<String>,
    next: usize,
    levels: BTreeMap<String, &'static str>,
}

impl Ids {
    pub fn assign(&mut self, section: &Section<'_>, kind: &str) -> String {
        let id = match section.id() {
            Some(id) => id.to_string(),
            None => {
                self.next += 1;
                format!("{kind}_{}", self.next - 1)
            }
        };
        if !self.seen.insert(id.clone()) {
            section.error(Some("@id"), format!("@id {id} is used twice"));
        }
        if let Some(level) = section.opt_enum("@log_level", crate::LOG_LEVELS) {
            self.levels.insert(id.clone(), level);
        }
        id
    }

    /// The `@log_level` of each plugin that has one, by id.
    pub fn into_log_levels(self) -> BTreeMap<String, &'static str> {
        self.levels
    }
}

/// Reads one `<match>`; finishes (or abandons) the section.
pub fn read_match(section: Section<'_>, ids: &mut Ids, root: &RootDir) -> Option<MatchConfig> {
    let pattern = MatchPattern::parse(section.arg())
        .map_err(|e| section.error(None, e.to_string()))
        .ok();
    let id = ids.assign(&section, section.plugin_type().unwrap_or("output"));
    let target = match section.plugin_type() {
        Some("relabel") => relabel(&section).map(TargetConfig::Relabel),
        Some("copy") => read_copy(&section, ids, root, false).map(TargetConfig::Copy),
        Some("roundrobin") => read_copy(&section, ids, root, true).map(TargetConfig::Copy),
        _ => OutputConfig::from_section(&section, &id, root)
            .map(|o| TargetConfig::Output(Box::new(o))),
    };
    let Some(target) = target else {
        section.abandon();
        return None;
    };
    let span = section.span().clone();
    section.finish();
    Some(MatchConfig {
        pattern: pattern?,
        id,
        target,
        span,
    })
}

fn relabel(section: &Section<'_>) -> Option<String> {
    match section.label() {
        Some(l) => Some(l.to_string()),
        None => {
            section.error(None, "relabel needs '@label @NAME'");
            None
        }
    }
}

fn read_copy(
    section: &Section<'_>,
    ids: &mut Ids,
    root: &RootDir,
    round_robin: bool,
) -> Option<CopyConfig> {
    if !round_robin {
        let _ = section.opt_enum("copy_mode", &["no_copy", "shallow", "deep", "marshal"]);
        let _ = section.opt_bool("deep_copy");
        let shared = "every store reads the same immutable event bytes: no store can change what another receives, whatever the mode";
        section.no_effect("copy_mode", shared);
        section.no_effect("deep_copy", shared);
    }
    let kind = if round_robin { "roundrobin" } else { "copy" };
    let mut stores = Vec::new();
    let mut ok = true;
    for store in section.children("store") {
        let mut ignore_error = false;
        let weight = if round_robin {
            let w = store.u64_or("weight", 1);
            if w == 0 || w > 1000 {
                store.error(Some("weight"), "weight must be 1 to 1000");
                ok = false;
            }
            u32::try_from(w.clamp(1, 1000)).unwrap_or(1)
        } else {
            1
        };
        for word in store.arg().split_whitespace() {
            match word {
                "ignore_error" if !round_robin => ignore_error = true,
                other => {
                    store.error(
                        None,
                        format!("<store {other}> is not supported (only <store ignore_error>)"),
                    );
                    ok = false;
                }
            }
        }
        let kind = store.plugin_type().unwrap_or("output");
        let id = ids.assign(&store, kind);
        let target = match store.plugin_type() {
            Some("relabel") => relabel(&store).map(StoreTarget::Relabel),
            Some(inner @ ("copy" | "roundrobin")) => {
                store.error(
                    Some("@type"),
                    format!("a {inner} inside a {kind} is not supported; list the stores in one"),
                );
                None
            }
            _ => OutputConfig::from_section(&store, &id, root)
                .map(|o| StoreTarget::Output(Box::new(o))),
        };
        let span = store.span().clone();
        match target {
            Some(target) => {
                store.finish();
                stores.push(StoreConfig {
                    id,
                    ignore_error,
                    weight,
                    target,
                    span,
                });
            }
            None => {
                store.abandon();
                ok = false;
            }
        }
    }
    if stores.is_empty() && ok {
        section.error(None, format!("{kind} needs at least one <store>"));
        ok = false;
    }
    ok.then_some(CopyConfig {
        stores,
        round_robin,
    })
}
