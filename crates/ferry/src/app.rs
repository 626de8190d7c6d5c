//! Running a checked pipeline: build outputs and the router, bind every input, then wait for
//! a signal. SIGTERM and SIGINT stop ferry: inputs stop accepting, in-flight requests finish
//! within the grace period, and anything that did not finish is logged by name.

use crate::input;
use crate::output::Output;
use crate::pipeline::PipelineConfig;
use crate::router::Router;
use crate::task::Tasks;
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
    /// Builds outputs and binds inputs. Fails if any input cannot bind.
    pub async fn start(config: &PipelineConfig) -> anyhow::Result<Self> {
        let tasks = Tasks::new();
        let mut outputs = Vec::new();
        for (id, output) in config.routes.outputs() {
            let output = Output::build(id.to_string(), output).await?;
            output.start(&tasks);
            outputs.push(Arc::new(output));
        }
        let router = Arc::new(Router::new(&config.routes, outputs));
        for source in &config.sources {
            input::start(
                source.id.clone(),
                &source.input,
                Arc::clone(&router),
                &tasks,
            )
            .await?;
        }
        Ok(Self { tasks, router })
    }

    /// Stops every task, waiting up to `grace`.
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
    }
}

/// Runs `config` until SIGTERM or SIGINT.
pub async fn run(config: PipelineConfig) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let app = App::start(&config).await?;
    tracing::info!("ferry {} started", env!("CARGO_PKG_VERSION"));
    let which = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("received {which}, shutting down");
    app.stop(SHUTDOWN_GRACE).await;
    tracing::info!("ferry stopped");
    Ok(())
}
