//! Named tasks and their states.
//!
//! Every long-lived task is spawned through [`Tasks::spawn`], which names it and registers it,
//! so a state dump can list every task with what it waits on and since when (the thread dump
//! operators use to find a flush stuck in a DNS lookup). A task reports its state through the
//! [`TaskHandle`] it is given: `handle.set("accepting")` costs one short uncontended lock.
//!
//! Shutdown is cancel → wait with a deadline → report what did not finish.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One registered task as shown in a state dump.
#[derive(Debug, Clone)]
pub struct TaskInfo {
    pub id: u64,
    pub name: String,
    pub state: &'static str,
    pub detail: String,
    pub since: SystemTime,
    pub started: SystemTime,
}

#[derive(Debug, Default)]
struct Registry {
    tasks: BTreeMap<u64, TaskInfo>,
}

/// The set of running tasks and the token that cancels them all.
#[derive(Debug, Clone)]
pub struct Tasks {
    registry: Arc<Mutex<Registry>>,
    next_id: Arc<AtomicU64>,
    tracker: TaskTracker,
    cancel: CancellationToken,
    /// The span every task of this set runs in: a plugin's, for its `@log_level`
    /// ([`crate::logging::plugin_span`]).
    span: tracing::Span,
}

/// Given to each task so it can say what it is doing.
#[derive(Debug, Clone)]
pub struct TaskHandle {
    id: u64,
    registry: Arc<Mutex<Registry>>,
    cancel: CancellationToken,
}

fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    // A panic while holding this lock cannot leave the map inconsistent (single inserts and
    // field stores), so a poisoned lock is still usable.
    registry.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Default for Tasks {
    fn default() -> Self {
        Self::new()
    }
}

impl Tasks {
    pub fn new() -> Self {
        Self {
            registry: Arc::default(),
            next_id: Arc::new(AtomicU64::new(1)),
            tracker: TaskTracker::new(),
            cancel: CancellationToken::new(),
            span: tracing::Span::none(),
        }
    }

    /// A group of its own for one plugin: listed in the same state dump, cancelled with this
    /// set, but also on its own ([`Self::shutdown`] of the group stops only its tasks), so a
    /// reload can stop one plugin and leave the others running.
    pub fn group(&self) -> Tasks {
        Self {
            registry: Arc::clone(&self.registry),
            next_id: Arc::clone(&self.next_id),
            tracker: TaskTracker::new(),
            cancel: self.cancel.child_token(),
            span: self.span.clone(),
        }
    }

    /// A group ([`Self::group`]) whose tasks run in `span`.
    pub fn group_in(&self, span: tracing::Span) -> Tasks {
        Self {
            span,
            ..self.group()
        }
    }

    /// The span the tasks of this set run in.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Whether every task of this set has finished.
    pub fn is_idle(&self) -> bool {
        self.tracker.is_empty()
    }

    /// The token every task selects on; cancelled at shutdown.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Spawns `make(handle)` as a named task on the current runtime.
    pub fn spawn<F, Fut>(&self, name: impl Into<String>, make: F)
    where
        F: FnOnce(TaskHandle) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now();
        lock(&self.registry).tasks.insert(
            id,
            TaskInfo {
                id,
                name: name.into(),
                state: "starting",
                detail: String::new(),
                since: now,
                started: now,
            },
        );
        let handle = TaskHandle {
            id,
            registry: Arc::clone(&self.registry),
            cancel: self.cancel.clone(),
        };
        let registry = Arc::clone(&self.registry);
        let fut = make(handle);
        let task = async move {
            fut.await;
            lock(&registry).tasks.remove(&id);
        };
        self.tracker
            .spawn(tracing::Instrument::instrument(task, self.span.clone()));
    }

    /// A snapshot of every running task, oldest first.
    pub fn snapshot(&self) -> Vec<TaskInfo> {
        lock(&self.registry).tasks.values().cloned().collect()
    }

    /// Cancels every task and waits up to `grace` for them to finish. Returns the tasks still
    /// running when the grace period ended.
    pub async fn shutdown(&self, grace: Duration) -> Vec<TaskInfo> {
        self.cancel.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_ok()
        {
            Vec::new()
        } else {
            self.snapshot()
        }
    }
}

impl TaskHandle {
    /// Records what the task is doing now (`"accepting"`, `"reading"`, `"waiting for commit"`).
    pub fn set(&self, state: &'static str) {
        self.set_detail(state, String::new());
    }

    /// Like [`set`](Self::set) with a detail such as a peer address or a chunk id.
    pub fn set_detail(&self, state: &'static str, detail: String) {
        if let Some(info) = lock(&self.registry).tasks.get_mut(&self.id) {
            info.state = state;
            info.detail = detail;
            info.since = SystemTime::now();
        }
    }

    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spawned_tasks_are_listed_with_their_state_and_removed_when_done() {
        let tasks = Tasks::new();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn("worker 1", |h| async move {
            h.set_detail("waiting", "for the test".into());
            let _ = rx.await;
        });
        tokio::task::yield_now().await;
        let snap = tasks.snapshot();
        assert_eq!(snap.len(), 1);
        assert_eq!(snap[0].name, "worker 1");
        tx.send(()).unwrap();
        assert!(tasks.shutdown(Duration::from_secs(5)).await.is_empty());
        assert!(tasks.snapshot().is_empty());
    }

    #[tokio::test]
    async fn shutdown_reports_tasks_that_ignore_cancellation() {
        let tasks = Tasks::new();
        tasks.spawn("stubborn", |h| async move {
            h.set("sleeping");
            tokio::time::sleep(Duration::from_secs(3600)).await;
        });
        let left = tasks.shutdown(Duration::from_millis(50)).await;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].state, "sleeping");
    }
}
