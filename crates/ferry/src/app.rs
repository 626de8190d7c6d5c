//! Running a checked pipeline and answering signals.
//!
//! | signal | what ferry does |
//! |---|---|
//! | SIGTERM, SIGINT | stop: inputs stop accepting, buffers flush as `flush_at_shutdown` says within the grace period, file buffers keep the rest on disk, memory buffers write the rest to `<root>/spill/<@id>` for the next start ([`handoff`]); what did not finish is logged by name |
//! | SIGHUP | reload: the file is read and checked again; a broken file is refused with every error and the running pipeline kept; a good one replaces the pipeline (buffers reopen, forward outputs start with every server healthy again: failback) |
//! | SIGUSR1 | flush: every staged chunk is queued for flushing now |
//! | SIGCONT | dump: every task, its state and since when, written to `<dump_dir>/ferry-dump-<pid>.json` |

use crate::admin::{self, AdminState, dump};
use crate::input;
use crate::metrics::Registry;
use crate::output::{Output, handoff};
use crate::pipeline::{self, PipelineConfig};
use crate::router::Router;
use crate::task::Tasks;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::signal::unix::{SignalKind, signal};

/// How long shutdown waits for tasks before it reports them and exits.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// A started pipeline.
#[derive(Debug)]
pub struct App {
    pub tasks: Tasks,
    pub router: Arc<Router>,
}

impl App {
    /// Builds outputs (opening their buffers), binds inputs and registers every collector.
    pub async fn start(config: &PipelineConfig, registry: &Registry) -> anyhow::Result<Self> {
        let tasks = Tasks::new();
        let mut outputs = Vec::new();
        for (id, output) in config.routes.outputs() {
            let output = Arc::new(Output::build(id.to_string(), output).await?);
            output.start(&tasks);
            take_back_spill(&output).await;
            registry.register(Arc::clone(&output) as Arc<dyn crate::metrics::Collector>);
            outputs.push(output);
        }
        let router = Arc::new(Router::new(&config.routes, outputs));
        registry.register(Arc::clone(&router) as Arc<dyn crate::metrics::Collector>);
        for source in &config.sources {
            let handle = input::start(
                source.id.clone(),
                &source.input,
                Arc::clone(&router),
                &tasks,
            )
            .await?;
            registry.register(Arc::new(crate::input::InputCollector {
                id: source.id.clone(),
                handle,
            }));
        }
        Ok(Self { tasks, router })
    }

    /// Queues every staged chunk for flushing now (SIGUSR1).
    pub async fn flush_now(&self) {
        for output in self.router.outputs() {
            if let Some(b) = &output.buffered {
                let buffer = Arc::clone(&b.buffer);
                let _ = tokio::task::spawn_blocking(move || buffer.flush_all()).await;
                b.notify.notify_one();
            }
        }
    }

    /// Stops every task, waiting up to `grace`, and reports what did not stop and any events
    /// still held by memory buffers (lost with the process).
    pub async fn stop(self, grace: Duration) {
        let left = self.tasks.shutdown(grace).await;
        for t in &left {
            tracing::warn!(
                "task '{}' did not stop within {:?} (state: {} {})",
                t.name,
                grace,
                t.state,
                t.detail
            );
        }
        for output in self.router.outputs() {
            let Some(b) = &output.buffered else { continue };
            let stats = b.buffer.stats();
            if b.setup.is_file() {
                if stats.total_records > 0 {
                    tracing::info!(
                        "output {}: {} events stay in the file buffer for the next start",
                        output.id,
                        stats.total_records
                    );
                }
            } else if stats.total_records > 0 {
                spill(&output.id, b).await;
            }
            b.buffer.close();
        }
    }
}

/// Writes what a memory buffer could not flush before a planned stop under the root directory.
async fn spill(id: &str, b: &Arc<crate::output::buffered::Buffered>) {
    let buffer = Arc::clone(&b.buffer);
    let dir = b.setup.spill_dir.clone();
    let to = dir.clone();
    let records = b.buffer.stats().total_records;
    match tokio::task::spawn_blocking(move || handoff::spill(&buffer, &to)).await {
        Ok(Ok(moved)) => tracing::info!(
            "output {id}: {} events ({} chunks) its memory buffer could not flush before stopping were written to {}; the next start with an output of this @id sends them",
            moved.records,
            moved.chunks,
            dir.display()
        ),
        Ok(Err(e)) => tracing::error!(
            "output {id}: {records} events in its memory buffer could not be flushed before stopping nor written to {}, and are lost: {e}",
            dir.display()
        ),
        Err(e) => tracing::error!(
            "output {id}: {records} events in its memory buffer are lost: writing them to {} failed: {e}",
            dir.display()
        ),
    }
}

/// How long a start waits for a full buffer while taking back a spill; the rest waits for
/// the next start.
const TAKE_BACK_PATIENCE: Duration = Duration::from_secs(30);

/// Takes back what an earlier planned stop wrote from this output's memory buffer.
async fn take_back_spill(output: &Arc<Output>) {
    let Some(b) = &output.buffered else { return };
    let dir = b.setup.spill_dir.clone();
    if !handoff::has_spill(&dir) {
        return;
    }
    let into = Arc::clone(b);
    let id = output.id.clone();
    let from = dir.clone();
    let deadline = std::time::Instant::now() + TAKE_BACK_PATIENCE;
    let result =
        tokio::task::spawn_blocking(move || handoff::take_back(&from, &into, &id, deadline)).await;
    match result {
        Ok(Ok(moved)) => tracing::info!(
            "output {}: took back {} events ({} chunks) written to {} at the last stop",
            output.id,
            moved.records,
            moved.chunks,
            dir.display()
        ),
        Ok(Err(e)) => tracing::error!(
            "output {}: could not take back all events written to {} at the last stop ({e}); what is left stays there for the next start",
            output.id,
            dir.display()
        ),
        Err(e) => tracing::error!("output {}: taking back {}: {e}", output.id, dir.display()),
    }
}

/// Runs `config` (read from `path`, or the embedded default) until SIGTERM or SIGINT.
pub async fn run(
    mut config: PipelineConfig,
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
    tracing::info!("root directory {}", config.root.describe());
    for warning in config.durability_warnings() {
        tracing::warn!("{warning}");
    }
    let mut app = App::start(&config, &registry).await?;
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
        match pipeline::load(path.as_deref(), &options) {
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!("config reload refused: {e}");
                }
                tracing::error!(
                    "config reload refused ({} errors); the running configuration is kept",
                    errors.0.len()
                );
            }
            Ok(new_config) => {
                for note in &new_config.notes {
                    tracing::warn!("{note}");
                }
                for warning in new_config.durability_warnings() {
                    tracing::warn!("{warning}");
                }
                if new_config.admin != config.admin {
                    tracing::warn!(
                        "changes to prometheus and monitor_agent sources take effect at the next start"
                    );
                }
                admin_state.set_tasks(None);
                app.stop(SHUTDOWN_GRACE).await;
                registry.clear();
                app = match App::start(&new_config, &registry).await {
                    Ok(a) => {
                        config = new_config;
                        tracing::info!("configuration reloaded");
                        a
                    }
                    Err(e) => {
                        tracing::error!(
                            "the new configuration did not start ({e:#}); restarting the previous one"
                        );
                        registry.clear();
                        App::start(&config, &registry).await?
                    }
                };
                admin_state.set_tasks(Some(app.tasks.clone()));
            }
        }
    }
    admin_state.set_tasks(None);
    app.stop(SHUTDOWN_GRACE).await;
    tracing::info!("ferry stopped");
    Ok(())
}
