//! Metrics: plugins keep their counters in atomics; at scrape time the [`Registry`] asks every
//! registered [`Collector`] to write its samples into an [`Exposition`], which renders the
//! Prometheus text format. The hot path never touches the registry.
//!
//! This module knows no plugin: each plugin exports its own metrics next to where they are
//! defined (`input/forward/metrics.rs`, `input/tail/metrics.rs`, `output/metrics.rs`,
//! `output/forward/metrics.rs`, `output/kafka/metrics.rs`, the router) and registers a
//! [`Collector`]. A new plugin touches only [`names`] here.

pub mod names;

use names::Family;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// A counter's value at scrape time.
pub fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Counter or gauge, as Prometheus types them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

#[derive(Debug, Default)]
struct FamilySamples {
    help: &'static str,
    kind: Option<Kind>,
    samples: Vec<(String, f64)>,
}

/// The samples of one scrape, grouped by family.
#[derive(Debug, Default)]
pub struct Exposition {
    families: BTreeMap<&'static str, FamilySamples>,
}

impl Exposition {
    fn push(&mut self, family: Family, kind: Kind, labels: &[(&str, &str)], value: f64) {
        let entry = self.families.entry(family.0).or_default();
        entry.help = family.1;
        entry.kind = Some(kind);
        let mut rendered = String::new();
        if !labels.is_empty() {
            rendered.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    rendered.push(',');
                }
                let _ = write!(rendered, "{k}=\"");
                for c in v.chars() {
                    match c {
                        '\\' => rendered.push_str("\\\\"),
                        '"' => rendered.push_str("\\\""),
                        '\n' => rendered.push_str("\\n"),
                        c => rendered.push(c),
                    }
                }
                rendered.push('"');
            }
            rendered.push('}');
        }
        entry.samples.push((rendered, value));
    }

    pub fn counter(&mut self, family: Family, labels: &[(&str, &str)], value: u64) {
        self.push(family, Kind::Counter, labels, value as f64);
    }

    /// A counter of seconds kept in milliseconds.
    pub fn counter_seconds(&mut self, family: Family, labels: &[(&str, &str)], millis: u64) {
        self.push(family, Kind::Counter, labels, millis as f64 / 1000.0);
    }

    /// One sample of `ferry_events_dropped_total` ([`names::dropped`] holds the reasons).
    pub fn dropped(&mut self, plugin_id: &str, type_name: &str, reason: &str, n: u64) {
        let labels: [(&str, &str); 3] = [
            ("plugin_id", plugin_id),
            ("type", type_name),
            ("reason", reason),
        ];
        self.counter(names::FERRY_DROPPED_RECORDS, &labels, n);
    }

    pub fn gauge(&mut self, family: Family, labels: &[(&str, &str)], value: f64) {
        self.push(family, Kind::Gauge, labels, value);
    }

    /// The Prometheus text format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, fam) in &self.families {
            let kind = match fam.kind {
                Some(Kind::Counter) => "counter",
                _ => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {}", fam.help);
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in &fam.samples {
                // The text format's names for the values that are not numbers.
                if value.is_nan() {
                    let _ = writeln!(out, "{name}{labels} NaN");
                } else if value.is_infinite() {
                    let sign = if *value > 0.0 { '+' } else { '-' };
                    let _ = writeln!(out, "{name}{labels} {sign}Inf");
                } else {
                    let _ = writeln!(out, "{name}{labels} {value}");
                }
            }
        }
        out
    }

    /// Whether a family has at least one sample (for tests and `ferry status`).
    pub fn has(&self, name: &str) -> bool {
        self.families
            .get(name)
            .is_some_and(|f| !f.samples.is_empty())
    }
}

/// A plugin as monitor_agent's `/api/plugins.json` shows it.
#[derive(Debug, Clone)]
pub struct PluginInfo {
    pub plugin_id: String,
    pub category: &'static str,
    pub type_name: &'static str,
    pub output_plugin: bool,
    /// Extra fields (numbers) such as `buffer_queue_length`, `emit_records`, `retry_count`.
    pub fields: Vec<(&'static str, serde_json::Value)>,
}

/// Something that has metrics: an input, an output, the router.
pub trait Collector: Send + Sync {
    fn collect(&self, out: &mut Exposition);
    /// How monitor_agent lists it (`None`: not a plugin).
    fn plugin_info(&self) -> Option<PluginInfo> {
        None
    }
}

/// Every collector of the running pipeline.
#[derive(Default, Clone)]
pub struct Registry {
    collectors: Arc<Mutex<Vec<Arc<dyn Collector>>>>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

impl Registry {
    pub fn register(&self, c: Arc<dyn Collector>) {
        self.collectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(c);
    }

    /// Drops every collector (on reload, before the new pipeline registers its own).
    pub fn clear(&self) {
        self.collectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    fn snapshot(&self) -> Vec<Arc<dyn Collector>> {
        self.collectors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn gather(&self) -> Exposition {
        let mut out = Exposition::default();
        for c in self.snapshot() {
            c.collect(&mut out);
        }
        out
    }

    pub fn plugins(&self) -> Vec<PluginInfo> {
        self.snapshot()
            .iter()
            .filter_map(|c| c.plugin_info())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_render_once_with_every_sample_and_escaped_labels() {
        let mut e = Exposition::default();
        e.counter(
            names::OUTPUT_EMIT_RECORDS,
            &[("plugin_id", "a"), ("type", "null")],
            3,
        );
        e.counter(
            names::OUTPUT_EMIT_RECORDS,
            &[("plugin_id", "b\"x"), ("type", "null")],
            4,
        );
        e.gauge(names::OUTPUT_BUFFER_AVAILABLE_SPACE_RATIO, &[], 99.5);
        let text = e.render();
        assert_eq!(
            text.matches("# TYPE fluentd_output_status_emit_records counter")
                .count(),
            1
        );
        assert!(
            text.contains("fluentd_output_status_emit_records{plugin_id=\"a\",type=\"null\"} 3\n")
        );
        assert!(text.contains("plugin_id=\"b\\\"x\""));
        assert!(text.contains("fluentd_output_status_buffer_available_space_ratio 99.5\n"));
    }

    #[test]
    fn values_that_are_not_numbers_render_as_the_text_format_names_them() {
        let mut e = Exposition::default();
        e.gauge(
            names::OUTPUT_BUFFER_AVAILABLE_SPACE_RATIO,
            &[("p", "up")],
            f64::INFINITY,
        );
        e.gauge(
            names::OUTPUT_BUFFER_AVAILABLE_SPACE_RATIO,
            &[("p", "down")],
            f64::NEG_INFINITY,
        );
        e.gauge(
            names::OUTPUT_BUFFER_AVAILABLE_SPACE_RATIO,
            &[("p", "none")],
            f64::NAN,
        );
        let text = e.render();
        assert!(text.contains("{p=\"up\"} +Inf\n"), "{text}");
        assert!(text.contains("{p=\"down\"} -Inf\n"), "{text}");
        assert!(text.contains("{p=\"none\"} NaN\n"), "{text}");
    }
}
