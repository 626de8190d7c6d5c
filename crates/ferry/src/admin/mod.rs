//! The operator's interfaces: `/metrics` (Prometheus), `/api/plugins.json` (Fluentd's
//! monitor_agent), `/api/health`, `/api/dump` (every task, what it waits on, since when).
//!
//! Configured as Fluentd users write it: `<source> @type prometheus` (bind 0.0.0.0, port 24231,
//! metrics_path /metrics) and `<source> @type monitor_agent` (bind 0.0.0.0, port 24220). Every
//! admin listener answers every endpoint; they differ only in defaults. The sources
//! `prometheus_monitor`, `prometheus_output_monitor` and `prometheus_tail_monitor` are accepted
//! for compatibility and change nothing: ferry always exports those metrics.
//!
//! The server runs on its own OS thread with its own runtime
//! ([`crate::http::server::serve_on_thread`]).

pub mod dump;
pub mod rpc;

use crate::http::server::{Handler, Response, response, serve_on_thread};
use crate::metrics::Registry;
use crate::task::Tasks;
use ferry_config::Section;
use serde_json::json;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// Source types handled here rather than as event inputs.
pub const ADMIN_TYPES: &[&str] = &[
    "prometheus",
    "monitor_agent",
    "prometheus_monitor",
    "prometheus_output_monitor",
    "prometheus_tail_monitor",
];

/// One admin listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminConfig {
    pub type_name: &'static str,
    pub bind: String,
    pub port: u16,
    pub metrics_path: String,
}

impl AdminConfig {
    /// Reads an admin `<source>`; `None` for the monitor types that only tune what is exported.
    pub fn from_section(section: &Section<'_>, type_name: &'static str) -> Option<Self> {
        match type_name {
            "prometheus" | "monitor_agent" => {
                let default_port = if type_name == "prometheus" {
                    24231
                } else {
                    24220
                };
                let port = section.u64_or("port", default_port);
                let port = u16::try_from(port).unwrap_or_else(|_| {
                    section.error(Some("port"), format!("port {port} is out of range"));
                    0
                });
                let cfg = Self {
                    type_name,
                    bind: section.str_or("bind", "0.0.0.0"),
                    port,
                    metrics_path: section.str_or("metrics_path", "/metrics"),
                };
                // monitor_agent's emit options and prometheus's aggregation path: accepted so
                // that configurations load, each noted.
                let _ = section.str("tag");
                let _ = section.opt_duration("emit_interval");
                let _ = section.opt_bool("include_config");
                let _ = section.opt_bool("include_retry");
                let _ = section.str("aggregated_metrics_path");
                section.no_effect(
                    "tag",
                    "ferry does not emit its metrics as events; scrape /metrics or /api/plugins.json",
                );
                section.no_effect("emit_interval", "ferry does not emit its metrics as events");
                section.no_effect("include_config", "/api/config.json is not served");
                section.no_effect(
                    "include_retry",
                    "retry state is in the state dump and ferry status",
                );
                section.no_effect(
                    "aggregated_metrics_path",
                    "one ferry process serves all its metrics at metrics_path",
                );
                Some(cfg)
            }
            _ => {
                let _ = section.opt_duration("interval");
                let _ = section.hash("labels");
                section.no_effect(
                    "interval",
                    "ferry computes every metric when /metrics is scraped",
                );
                section.no_effect(
                    "labels",
                    "samples carry plugin_id and type (and their own labels); extra labels are not added",
                );
                let _ = section.child("labels").map(|l| {
                    let _ = l.params();
                    l.finish();
                });
                None
            }
        }
    }
}

/// What the admin endpoints read. The pipeline's tasks change on reload.
#[derive(Debug)]
pub struct AdminState {
    pub registry: Registry,
    pub tasks: Mutex<Option<Tasks>>,
    pub started: SystemTime,
    pub dump_dir: PathBuf,
}

impl AdminState {
    pub fn new(registry: Registry, dump_dir: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            registry,
            tasks: Mutex::new(None),
            started: SystemTime::now(),
            dump_dir,
        })
    }

    pub fn set_tasks(&self, tasks: Option<Tasks>) {
        *self.tasks.lock().unwrap_or_else(PoisonError::into_inner) = tasks;
    }

    pub fn dump(&self) -> serde_json::Value {
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        dump::state(tasks.as_ref(), &self.registry, self.started)
    }

    fn handle(&self, metrics_path: &str, path: &str) -> Response {
        match path {
            p if p == metrics_path || p == "/metrics" || p == "/aggregated_metrics" => {
                let mut e = self.registry.gather();
                let tasks = self
                    .tasks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                e.gauge(
                    crate::metrics::names::FERRY_TASKS,
                    &[],
                    tasks.map_or(0, |t| t.snapshot().len()) as f64,
                );
                let start = self
                    .started
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                e.gauge(crate::metrics::names::FERRY_START_TIME, &[], start);
                response(200, "text/plain; version=0.0.4", e.render())
            }
            "/api/plugins.json" => {
                let plugins: Vec<_> = self
                    .registry
                    .plugins()
                    .into_iter()
                    .map(plugin_json)
                    .collect();
                response(
                    200,
                    "application/json",
                    json!({ "plugins": plugins }).to_string(),
                )
            }
            "/api/plugins" => {
                let mut out = String::new();
                for p in self.registry.plugins() {
                    out.push_str(&format!(
                        "plugin_id:{}\tplugin_category:{}\ttype:{}\toutput_plugin:{}",
                        p.plugin_id, p.category, p.type_name, p.output_plugin
                    ));
                    for (k, v) in &p.fields {
                        out.push_str(&format!("\t{k}:{v}"));
                    }
                    out.push('\n');
                }
                response(200, "text/plain", out)
            }
            "/api/health" => {
                let running = self
                    .tasks
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some();
                if running {
                    response(200, "application/json", json!({"status": "ok"}).to_string())
                } else {
                    response(
                        503,
                        "application/json",
                        json!({"status": "starting"}).to_string(),
                    )
                }
            }
            "/api/dump" => {
                let state = self.dump();
                let text = serde_json::to_string_pretty(&state).unwrap_or_default();
                if let Err(e) = dump::write_file(&self.dump_dir, &text) {
                    tracing::warn!(
                        "state dump could not be written to {}: {e}",
                        self.dump_dir.display()
                    );
                }
                response(200, "application/json", text)
            }
            _ => response(404, "text/plain", "not found\n"),
        }
    }
}

fn plugin_json(p: crate::metrics::PluginInfo) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    obj.insert("plugin_id".into(), json!(p.plugin_id));
    obj.insert("plugin_category".into(), json!(p.category));
    obj.insert("type".into(), json!(p.type_name));
    obj.insert("output_plugin".into(), json!(p.output_plugin));
    for (k, v) in p.fields {
        obj.insert(k.into(), v);
    }
    serde_json::Value::Object(obj)
}

/// Binds every admin listener (errors surface at start-up) and serves them on a dedicated
/// thread for the life of the process.
pub fn start(configs: &[AdminConfig], state: Arc<AdminState>) -> anyhow::Result<()> {
    if configs.is_empty() {
        return Ok(());
    }
    let mut listeners = Vec::new();
    for c in configs {
        let addr = format!("{}:{}", c.bind, c.port);
        let l = std::net::TcpListener::bind(&addr)
            .map_err(|e| anyhow::anyhow!("{} source: cannot listen on {addr}: {e}", c.type_name))?;
        l.set_nonblocking(true)?;
        tracing::info!(
            "{} endpoint listening on http://{}",
            c.type_name,
            l.local_addr()?
        );
        listeners.push((l, c.metrics_path.clone()));
    }
    let served = listeners
        .into_iter()
        .map(|(l, metrics_path)| {
            let st = Arc::clone(&state);
            let handler: Handler = Arc::new(move |path, _query| st.handle(&metrics_path, path));
            (l, handler)
        })
        .collect();
    serve_on_thread("ferry-admin", served)?;
    Ok(())
}
