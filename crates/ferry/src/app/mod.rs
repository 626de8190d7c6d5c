//! Running a checked pipeline and answering signals.
//!
//! | signal | what ferry does |
//! |---|---|
//! | SIGTERM, SIGINT | stop: inputs stop accepting, then their connections end; buffers flush as `flush_at_shutdown` says within the grace period, file buffers keep the rest on disk, memory buffers write the rest to `<root>/spill/<@id>` for the next start ([`crate::output::handoff`]); what did not finish is logged by name |
//! | SIGHUP, SIGUSR2 | reload: the file is read and checked again; a broken file is refused with every error and the running pipeline kept; a good one is applied as a difference ([`apply`]): what did not change keeps running untouched |
//! | SIGUSR1 | flush: every staged chunk is queued for flushing now |
//! | SIGCONT | dump: every task, its state and since when, written to `<dump_dir>/ferry-dump-<pid>.json` |

mod apply;
mod spill;

use crate::admin::{self, AdminState, dump};
use crate::input::{InputConfig, InputHandle, InputTasks};
use crate::metrics::Registry;
use crate::output::Output;
use crate::pipeline::{self, PipelineConfig};
use crate::router::{Router, RoutesConfig, Routing};
use crate::task::{TaskInfo, Tasks};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

/// How long shutdown waits for tasks before it reports them and exits.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A running output and the task group of its flushers.
#[derive(Debug)]
struct RunningOutput {
    id: String,
    fingerprint: String,
    output: Arc<Output>,
    tasks: Tasks,
}

/// A running input.
#[derive(Debug)]
struct RunningInput {
    id: String,
    fingerprint: String,
    config: InputConfig,
    handle: InputHandle,
    tasks: InputTasks,
    /// Its token as the holder of listening sockets.
    owner: u64,
}

/// What a reload took out of the running pipeline and that still has work to finish.
#[derive(Debug)]
enum Retired {
    /// Out of the routes, still flushing what its buffer holds (removed at a reload, or
    /// replaced by an output without a buffer); stops once the buffer is empty.
    Draining(RunningOutput),
    /// Its buffer went to its successor: its flushers finish the chunk they hold.
    HandedOver(RunningOutput),
    /// The connections of an input whose sockets went to its successor, served to their end.
    Connections(Tasks),
}

/// A started pipeline.
#[derive(Debug)]
pub struct App {
    /// Every task of the pipeline (each plugin has a group of its own under it).
    pub tasks: Tasks,
    /// What inputs emit into; a reload swaps the router inside.
    pub routing: Arc<Routing>,
    sockets: crate::input::net::listen::Sockets,
    outputs: Vec<RunningOutput>,
    inputs: Vec<RunningInput>,
    retired: Vec<Retired>,
    /// The `@log_level` of each plugin of the configuration being applied, by id.
    log_levels: std::collections::BTreeMap<String, &'static str>,
}

impl App {
    /// Builds outputs (opening their buffers, taking back what the last stop spilled), binds
    /// inputs and registers every collector.
    pub async fn start(config: &PipelineConfig, registry: &Registry) -> anyhow::Result<Self> {
        let empty = Router::new(&RoutesConfig::default(), Vec::new());
        let mut app = Self {
            tasks: Tasks::new(),
            routing: Arc::new(Routing::new(Arc::new(empty))),
            sockets: Default::default(),
            outputs: Vec::new(),
            inputs: Vec::new(),
            retired: Vec::new(),
            log_levels: Default::default(),
        };
        app.apply(config, true).await?;
        app.register(registry);
        Ok(app)
    }

    /// Applies a new configuration as a difference (see [`apply`]); on an error the running
    /// pipeline is as it was.
    pub async fn reload(
        &mut self,
        config: &PipelineConfig,
        registry: &Registry,
    ) -> anyhow::Result<()> {
        let result = self.apply(config, false).await;
        if result.is_ok() {
            crate::logging::set_plugin_levels(config.log_levels.values().copied());
        }
        self.register(registry);
        result
    }

    /// The buffer and spill directories the running outputs read.
    fn claimed_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for o in &self.outputs {
            if let Some(b) = &o.output.buffered {
                if let ferry_buffer::BufferType::File { path } = &b.setup.config.buffer_type {
                    dirs.push(path.clone());
                }
                dirs.push(b.setup.spill_dir.clone());
            }
        }
        dirs
    }

    /// The running router.
    pub fn router(&self) -> Arc<Router> {
        self.routing.current()
    }

    fn register(&self, registry: &Registry) {
        registry.clear();
        registry.register(Arc::clone(&self.routing) as Arc<dyn crate::metrics::Collector>);
        let draining = self.retired.iter().filter_map(|r| match r {
            Retired::Draining(o) => Some(o),
            _ => None,
        });
        for o in self.outputs.iter().chain(draining) {
            registry.register(Arc::clone(&o.output) as Arc<dyn crate::metrics::Collector>);
        }
        for i in &self.inputs {
            registry.register(Arc::new(crate::input::InputCollector {
                id: i.id.clone(),
                handle: i.handle.clone(),
            }));
        }
    }

    /// Queues every staged chunk for flushing now (SIGUSR1).
    pub async fn flush_now(&self) {
        for o in &self.outputs {
            if let Some(b) = &o.output.buffered {
                let buffer = Arc::clone(&b.buffer);
                let _ = tokio::task::spawn_blocking(move || buffer.flush_all()).await;
                b.notify.notify_one();
            }
        }
    }

    /// Stops the inputs (accept loops, then connections), then the outputs, each step waiting
    /// up to `grace`; reports what did not stop, keeps file buffers on disk and writes what
    /// memory buffers still hold under the root directory.
    pub async fn stop(self, grace: Duration) {
        let mut listen = Vec::new();
        let mut work = Vec::new();
        for i in &self.inputs {
            listen.push(i.tasks.listen.clone());
            work.push(i.tasks.work.clone());
        }
        let mut outputs = Vec::new();
        for r in self.retired {
            match r {
                Retired::Connections(tasks) => work.push(tasks),
                Retired::Draining(o) => outputs.push(o),
                Retired::HandedOver(o) => work.push(o.tasks),
            }
        }
        outputs.extend(self.outputs);
        report(shutdown_all(&listen, grace).await, grace);
        report(shutdown_all(&work, grace).await, grace);
        let groups: Vec<Tasks> = outputs.iter().map(|o| o.tasks.clone()).collect();
        report(shutdown_all(&groups, grace).await, grace);
        for o in &outputs {
            spill::at_stop(&o.output).await;
        }
        self.sockets.release_all();
        report(self.tasks.shutdown(grace).await, grace);
    }
}

/// Cancels every group, then waits for each (the grace runs once for all of them).
async fn shutdown_all(groups: &[Tasks], grace: Duration) -> Vec<TaskInfo> {
    for g in groups {
        g.cancel_token().cancel();
    }
    let deadline = tokio::time::Instant::now() + grace;
    let mut left = Vec::new();
    for g in groups {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        left.extend(g.shutdown(remaining).await);
    }
    left
}

fn report(left: Vec<TaskInfo>, grace: Duration) {
    for t in &left {
        tracing::warn!(
            "task '{}' did not stop within {:?} (state: {} {})",
            t.name,
            grace,
            t.state,
            t.detail
        );
    }
}

/// `<system> process_name`: the name `ps` and `top` show (the first 15 bytes).
pub fn set_process_name(name: &str) {
    let bytes: Vec<u8> = name.bytes().filter(|b| *b != 0).take(15).collect();
    match std::ffi::CString::new(bytes) {
        Ok(c) => {
            if let Err(e) = rustix::thread::set_name(&c) {
                tracing::warn!("<system> process_name {name:?} could not be set: {e}");
            }
        }
        Err(e) => tracing::warn!("<system> process_name {name:?} could not be set: {e}"),
    }
}

/// The next RPC call, if an endpoint is configured (else never).
async fn next_call(
    rpc: &mut Option<tokio::sync::mpsc::Receiver<admin::rpc::Call>>,
) -> Option<admin::rpc::Call> {
    match rpc {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Reads the configuration again and applies it; `Err` says why it was refused (the running
/// configuration is kept).
async fn reload(
    app: &mut App,
    running: &mut PipelineConfig,
    path: Option<&std::path::Path>,
    options: &pipeline::LoadOptions,
    registry: &Registry,
) -> Result<(), String> {
    let next = match pipeline::load(path, options) {
        Ok(next) => next,
        Err(errors) => {
            for e in &errors.0 {
                tracing::error!("config reload refused: {e}");
            }
            let why = format!(
                "config reload refused ({} errors); the running configuration is kept",
                errors.0.len()
            );
            tracing::error!("{why}");
            let first = errors
                .0
                .first()
                .map(ToString::to_string)
                .unwrap_or_default();
            return Err(format!("{why}: {first}"));
        }
    };
    for note in &next.notes {
        tracing::warn!("{note}");
    }
    for warning in next.durability_warnings() {
        tracing::warn!("{warning}");
    }
    if next.admin != running.admin || next.system.rpc_endpoint != running.system.rpc_endpoint {
        tracing::warn!(
            "changes to prometheus and monitor_agent sources and to rpc_endpoint take effect at the next start"
        );
    }
    match app.reload(&next, registry).await {
        Ok(()) => {
            *running = next;
            tracing::info!("configuration reloaded");
            Ok(())
        }
        Err(e) => {
            let why = format!(
                "the new configuration did not start ({e:#}); the running configuration is kept"
            );
            tracing::error!("{why}");
            Err(why)
        }
    }
}

/// Runs `config` (read from `path`, or the embedded default) until SIGTERM or SIGINT.
pub async fn run(
    config: PipelineConfig,
    path: Option<PathBuf>,
    options: pipeline::LoadOptions,
) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    let mut cont = signal(SignalKind::from_raw(18))?;
    let registry = Registry::default();
    let dump_dir = config
        .system
        .dump_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let admin_state = AdminState::new(registry.clone(), dump_dir.clone());
    admin::start(&config.admin, Arc::clone(&admin_state))?;
    let mut rpc = match &config.system.rpc_endpoint {
        Some(endpoint) => Some(admin::rpc::start(endpoint)?),
        None => None,
    };
    tracing::info!("root directory {}", config.root.describe());
    if config.system.without_source {
        tracing::warn!("<system> without_source: no <source> is started");
    }
    for warning in config.durability_warnings() {
        tracing::warn!("{warning}");
    }
    let mut running = config;
    let mut app = App::start(&running, &registry).await?;
    for dir in spill::unclaimed(&running.root, &app.claimed_dirs()) {
        tracing::warn!(
            "{} holds buffered events that no output of this configuration reads (an output renamed or removed, or a generated @id that moved); give the output that owned it its @id back, or inspect it with `ferry buffer ls {}`",
            dir.display(),
            dir.display()
        );
    }
    admin_state.set_tasks(Some(app.tasks.clone()));
    tracing::info!(
        "ferry {} started (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
    loop {
        let reload_by = tokio::select! {
            _ = term.recv() => { tracing::info!("received SIGTERM, shutting down"); break; }
            _ = int.recv() => { tracing::info!("received SIGINT, shutting down"); break; }
            _ = usr1.recv() => {
                tracing::info!("received SIGUSR1, flushing buffers");
                app.flush_now().await;
                continue;
            }
            Some((cmd, reply)) = next_call(&mut rpc) => {
                use admin::rpc::Command;
                tracing::info!("rpc: {cmd:?}");
                if matches!(cmd, Command::Flush | Command::FlushAndStop) {
                    app.flush_now().await;
                }
                match cmd {
                    Command::Reload => {
                        let outcome = reload(&mut app, &mut running, path.as_deref(), &options, &registry).await;
                        let _ = reply.send(outcome);
                    }
                    Command::Flush => { let _ = reply.send(Ok(())); }
                    Command::Stop | Command::FlushAndStop => {
                        let _ = reply.send(Ok(()));
                        break;
                    }
                }
                continue;
            }
            _ = cont.recv() => {
                let text = serde_json::to_string_pretty(&admin_state.dump()).unwrap_or_default();
                match dump::write_file(&dump_dir, &text) {
                    Ok(p) => tracing::info!("received SIGCONT, state dump written to {}", p.display()),
                    Err(e) => tracing::error!("received SIGCONT, state dump could not be written to {}: {e}", dump_dir.display()),
                }
                continue;
            }
            _ = hup.recv() => "SIGHUP",
            // Fluentd's graceful reload signal: the same reload here.
            _ = usr2.recv() => "SIGUSR2",
        };
        tracing::info!("received {reload_by}, reloading configuration");
        let _ = reload(&mut app, &mut running, path.as_deref(), &options, &registry).await;
    }
    admin_state.set_tasks(None);
    app.stop(SHUTDOWN_GRACE).await;
    tracing::info!("ferry stopped");
    Ok(())
}
