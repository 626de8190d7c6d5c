//! Applying a configuration to the running pipeline as a difference: the start is a reload
//! from nothing.
//!
//! Plugins are matched by id (`@id`, or the generated one) and compared by
//! [`crate::plugin::fingerprint`] (the section's content and the files it names):
//!
//! | plugin | unchanged | changed | removed | added |
//! |---|---|---|---|---|
//! | output | keeps running untouched (buffer, flushers, connections, counters) | the successor is built first; a buffer of the same type and path is handed over as it is (chunks stay, new parameters apply); another buffer is moved into the successor's, in order; counters continue | leaves the routes and flushes what it holds, then stops | built and started |
//! | input | keeps running untouched | the successor takes the listening sockets (same address: never closed, so no client is refused); established connections are served to their end; a tail input stops (saving its positions) before its successor starts; counters continue | stops | started |
//! | routes, filters | | rebuilt and swapped in whole ([`crate::router::Routing`]) | | |
//!
//! Nothing running changes until every new and changed output is built, so an output that
//! cannot start (a buffer locked by another process, a bad certificate) leaves the pipeline
//! as it was. An input whose successor does not start keeps running as it was.

use super::{App, Retired, RunningInput, RunningOutput, spill};
use crate::input::{self, InputConfig, InputTasks, Start};
use crate::output::{Output, handoff};
use crate::pipeline::PipelineConfig;
use crate::router::Router;
use crate::task::Tasks;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tracing::Instrument;

/// How long a reload waits for a stopping tail input or accept loop.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// A new or changed output, built but not started.
struct Built {
    output: Arc<Output>,
    fingerprint: String,
    replaces: Option<RunningOutput>,
}

enum Plan {
    Keep(RunningOutput),
    Start(Built),
}

impl App {
    /// Applies `config`. `strict` (the start): any input that does not start is an error.
    pub(super) async fn apply(
        &mut self,
        config: &PipelineConfig,
        strict: bool,
    ) -> anyhow::Result<()> {
        self.log_levels = config.log_levels.clone();
        let order: Vec<String> = self.outputs.iter().map(|o| o.id.clone()).collect();
        let mut previous: HashMap<String, RunningOutput> =
            self.outputs.drain(..).map(|o| (o.id.clone(), o)).collect();
        let mut plans = Vec::new();
        for (id, oc) in config.routes.outputs() {
            let prev = previous.remove(id);
            if let Some(p) = prev {
                if p.fingerprint == oc.fingerprint {
                    plans.push(Plan::Keep(p));
                    continue;
                }
                let build = Output::build_after(id.to_string(), oc, Some(&p.output));
                match build.instrument(self.plugin_span(id)).await {
                    Ok(o) => plans.push(Plan::Start(Built {
                        output: Arc::new(o),
                        fingerprint: oc.fingerprint.clone(),
                        replaces: Some(p),
                    })),
                    Err(e) => {
                        previous.insert(p.id.clone(), p);
                        self.restore(order, previous, plans);
                        return Err(e);
                    }
                }
                continue;
            }
            let build = Output::build(id.to_string(), oc);
            match build.instrument(self.plugin_span(id)).await {
                Ok(o) => plans.push(Plan::Start(Built {
                    output: Arc::new(o),
                    fingerprint: oc.fingerprint.clone(),
                    replaces: None,
                })),
                Err(e) => {
                    self.restore(order, previous, plans);
                    return Err(e);
                }
            }
        }
        // Every output is built: from here on the new configuration is applied.
        let mut outputs = Vec::new();
        let mut successions = Vec::new();
        for plan in plans {
            match plan {
                Plan::Keep(running) => outputs.push(running),
                Plan::Start(b) => {
                    if let Err(e) = b.output.take_over() {
                        tracing::error!("output {}: {e}", b.output.id);
                    }
                    let group = self.tasks.group_in(self.plugin_span(&b.output.id));
                    b.output.start(&group);
                    spill::take_back_spill(&b.output).await;
                    if let Some(old) = b.replaces {
                        successions.push((old, Arc::clone(&b.output), group.clone()));
                    }
                    outputs.push(RunningOutput {
                        id: b.output.id.clone(),
                        fingerprint: b.fingerprint,
                        output: b.output,
                        tasks: group,
                    });
                }
            }
        }
        let metrics = Arc::clone(&self.routing.current().metrics);
        let live = outputs.iter().map(|o| Arc::clone(&o.output)).collect();
        let router = Router::with_metrics(&config.routes, live, metrics);
        self.routing.replace(Arc::new(router));
        for (old, successor, group) in successions {
            self.succeed(old, successor, &group);
        }
        for (_, old) in previous {
            tracing::info!("output {}: removed from the configuration", old.id);
            self.retire(old);
        }
        self.outputs = outputs;
        let result = self.apply_inputs(config, strict).await;
        self.retired.retain(|r| match r {
            Retired::Draining(o) | Retired::HandedOver(o) => !o.tasks.is_idle(),
            Retired::Connections(tasks) => !tasks.is_idle(),
        });
        result
    }

    /// The span a plugin's tasks run in: its `@log_level`'s, or none.
    fn plugin_span(&self, id: &str) -> tracing::Span {
        match self.log_levels.get(id) {
            Some(level) => crate::logging::plugin_span(id, level),
            None => tracing::Span::none(),
        }
    }

    /// Puts the outputs back as they ran (a reload failed before anything changed).
    fn restore(
        &mut self,
        order: Vec<String>,
        mut previous: HashMap<String, RunningOutput>,
        plans: Vec<Plan>,
    ) {
        for plan in plans {
            match plan {
                Plan::Keep(r) => {
                    previous.insert(r.id.clone(), r);
                }
                Plan::Start(b) => {
                    if let Some(r) = b.replaces {
                        previous.insert(r.id.clone(), r);
                    }
                }
            }
        }
        self.outputs = order.iter().filter_map(|id| previous.remove(id)).collect();
    }

    /// `old` is replaced by `successor` (which runs in `group`).
    fn succeed(&mut self, old: RunningOutput, successor: Arc<Output>, group: &Tasks) {
        let Some(from) = old.output.buffered.clone() else {
            // Nothing buffered: the old sink's tasks (heartbeats, connections) end.
            old.tasks.cancel_token().cancel();
            self.retired.push(Retired::HandedOver(old));
            return;
        };
        if successor.adopted() {
            // The same buffer: the successor's flushers take its chunks from now on.
            old.output.handed_over.store(true, Ordering::SeqCst);
            old.tasks.cancel_token().cancel();
            self.retired.push(Retired::HandedOver(old));
            return;
        }
        let Some(into) = successor.buffered.clone() else {
            // The successor does not buffer: the old output delivers what it holds itself.
            self.retire(old);
            return;
        };
        // Another buffer (memory ↔ file, another path): once the old flushers have settled
        // the chunks they hold, every chunk moves into the successor's buffer, in order.
        old.output.handed_over.store(true, Ordering::SeqCst);
        old.tasks.cancel_token().cancel();
        let id = successor.id.clone();
        group.spawn(format!("output {id} taking over its predecessor's buffer"), move |h| async move {
            h.set("waiting for the previous flushers");
            let _ = old.tasks.shutdown(STOP_WAIT).await;
            h.set("moving chunks");
            let buffer = Arc::clone(&from.buffer);
            let who = id.clone();
            let moved = tokio::task::spawn_blocking(move || {
                let deadline = Instant::now() + Duration::from_secs(3600);
                handoff::drain(&buffer, &mut |key, entries, records| {
                    handoff::put_into(&into, &who, key, entries, records, deadline)
                })
            })
            .await;
            match moved {
                Ok(Ok(m)) => tracing::info!(
                    "output {id}: took over {} events ({} chunks) from the buffer it had before the reload",
                    m.records,
                    m.chunks
                ),
                Ok(Err(e)) => tracing::error!(
                    "output {id}: could not take over all of its previous buffer ({e}); what is left is written at the stop"
                ),
                Err(e) => tracing::error!("output {id}: taking over its previous buffer: {e}"),
            }
            if from.buffer.stats().total_records == 0 {
                from.buffer.close();
            } else {
                // What could not move is handled as any stopping output's.
                old.output.handed_over.store(false, Ordering::SeqCst);
                spill::at_stop(&old.output).await;
            }
        });
    }

    /// `old` leaves the routes: it flushes what it holds, then stops.
    fn retire(&mut self, old: RunningOutput) {
        let Some(b) = old.output.buffered.clone() else {
            old.tasks.cancel_token().cancel();
            self.retired.push(Retired::HandedOver(old));
            return;
        };
        b.buffer.flush_all();
        b.notify.notify_one();
        let group = old.tasks.clone();
        let id = old.id.clone();
        old.tasks
            .spawn(format!("output {id} draining"), move |h| async move {
                h.set("waiting for the buffer to empty");
                loop {
                    if b.buffer.stats().total_records == 0 {
                        tracing::info!("output {id}: delivered what it held and stopped");
                        group.cancel_token().cancel();
                        return;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(200)) => {}
                        () = h.cancelled() => return,
                    }
                }
            });
        self.retired.push(Retired::Draining(old));
    }

    async fn apply_inputs(&mut self, config: &PipelineConfig, strict: bool) -> anyhow::Result<()> {
        let mut previous: HashMap<String, RunningInput> =
            self.inputs.drain(..).map(|i| (i.id.clone(), i)).collect();
        let mut inputs = Vec::new();
        let mut failed = None;
        // `<system> without_source`: nothing new comes in; the outputs drain what they hold.
        let sources = if config.system.without_source {
            &[][..]
        } else {
            &config.sources[..]
        };
        for source in sources {
            let prev = previous.remove(&source.id);
            if let Some(p) = prev {
                if p.fingerprint == source.fingerprint {
                    inputs.push(p);
                    continue;
                }
                match self.replace_input(p, source).await {
                    Ok(running) => inputs.push(running),
                    Err((kept, e)) => {
                        tracing::error!(
                            "input {}: the new configuration did not start ({e:#}); the previous one keeps running",
                            source.id
                        );
                        inputs.extend(kept);
                        failed.get_or_insert(e);
                    }
                }
                continue;
            }
            match self.start_input(source, None).await {
                Ok(running) => inputs.push(running),
                Err(e) if strict => return Err(e),
                Err(e) => {
                    tracing::error!("input {}: did not start: {e:#}", source.id);
                    failed.get_or_insert(e);
                }
            }
        }
        for (_, old) in previous {
            tracing::info!("input {}: removed from the configuration", old.id);
            stop_input(&old).await;
        }
        let owners: HashSet<u64> = inputs.iter().map(|i| i.owner).collect();
        self.sockets.retain_owners(&owners);
        self.inputs = inputs;
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    async fn start_input(
        &self,
        source: &crate::pipeline::SourceConfig,
        previous: Option<&RunningInput>,
    ) -> anyhow::Result<RunningInput> {
        let tasks = InputTasks::new(&self.tasks.group_in(self.plugin_span(&source.id)));
        let owner = self.sockets.owner();
        let start = Start {
            routing: &self.routing,
            tasks: &tasks,
            sockets: &self.sockets,
            owner,
            previous: previous.map(|p| &p.handle),
        };
        let started = input::start(source.id.clone(), &source.input, start);
        match started.instrument(tasks.work.span().clone()).await {
            Ok(handle) => Ok(RunningInput {
                id: source.id.clone(),
                fingerprint: source.fingerprint.clone(),
                config: source.input.clone(),
                handle,
                tasks,
                owner,
            }),
            Err(e) => {
                // Whatever it spawned before failing stops.
                tasks.listen.cancel_token().cancel();
                tasks.work.cancel_token().cancel();
                Err(e)
            }
        }
    }

    /// Starts `source` in place of `old`. On failure, returns what keeps running.
    async fn replace_input(
        &mut self,
        old: RunningInput,
        source: &crate::pipeline::SourceConfig,
    ) -> Result<RunningInput, (Option<RunningInput>, anyhow::Error)> {
        if matches!(old.config, InputConfig::Tail(_)) {
            // Two tail inputs on the same files would read lines twice: the old one stops
            // first, writing its positions, and the successor starts from them.
            stop_input(&old).await;
            return match self.start_input(source, Some(&old)).await {
                Ok(running) => Ok(running),
                Err(e) => {
                    let again = crate::pipeline::SourceConfig {
                        id: old.id.clone(),
                        input: old.config.clone(),
                        span: source.span.clone(),
                        fingerprint: old.fingerprint.clone(),
                    };
                    let restarted = self.start_input(&again, Some(&old)).await.ok();
                    Err((restarted, e))
                }
            };
        }
        match self.start_input(source, Some(&old)).await {
            Ok(running) => {
                // The successor accepts on the same sockets already; the old accept loops
                // end, its connections are served to their end.
                let _ = old.tasks.listen.shutdown(STOP_WAIT).await;
                self.retired
                    .push(Retired::Connections(old.tasks.work.clone()));
                Ok(running)
            }
            Err(e) => Err((Some(old), e)),
        }
    }
}

/// Stops an input: its accept loops, then its connections and file watchers.
async fn stop_input(input: &RunningInput) {
    for t in input.tasks.listen.shutdown(STOP_WAIT).await {
        tracing::warn!("input {}: task '{}' did not stop", input.id, t.name);
    }
    for t in input.tasks.work.shutdown(STOP_WAIT).await {
        tracing::warn!("input {}: task '{}' did not stop", input.id, t.name);
    }
}
