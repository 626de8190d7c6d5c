//! [`Routing`]: what inputs emit into, the running [`Router`], swapped whole at a reload.

use super::{Routed, Router};
use crate::event::Batch;
use crate::output::EmitError;
use std::sync::{Arc, PoisonError};

/// What inputs emit into: the running [`Router`]. A reload builds a new router (new filters,
/// new `<match>` rules, outputs kept, replaced or added) and swaps it in whole; inputs keep
/// running and their next batch takes the new routes. A batch already on its way finishes on
/// the router it started on.
#[derive(Debug)]
pub struct Routing {
    current: std::sync::RwLock<Arc<Router>>,
}

impl Routing {
    pub fn new(router: Arc<Router>) -> Self {
        Self {
            current: std::sync::RwLock::new(router),
        }
    }

    /// The router new batches take.
    pub fn current(&self) -> Arc<Router> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Makes `next` the router of every batch from now on; returns the one it replaces.
    pub fn replace(&self, next: Arc<Router>) -> Arc<Router> {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *current, next)
    }

    /// Routes `batch` into the table of `label` (`None`: the top level) of the current router
    /// and returns once it is committed.
    pub async fn emit(&self, label: Option<&str>, batch: &Batch) -> Result<Routed, EmitError> {
        let router = self.current();
        let route = router.route_for(label).ok_or_else(|| EmitError::NoLabel {
            label: label.unwrap_or("@ROOT").to_string(),
        })?;
        router.emit(route, batch).await
    }

    /// [`Self::emit`] for an input that can hold its sender (the TCP connection, the file):
    /// an output whose buffer is full makes the emit wait until a flush freed room, for up to
    /// `hold` in all ([`crate::output::buffered::holding`]), instead of refusing at once. The
    /// wait is woken by the flush that frees the room, so ingest follows the drain rate
    /// instead of a retry timer. When `cancel` fires (the input stops) a wait ends at once with
    /// the refusal. Returns the time spent waiting for room beside the outcome.
    pub async fn emit_holding(
        &self,
        label: Option<&str>,
        batch: &Batch,
        hold: std::time::Duration,
        cancel: tokio_util::sync::CancellationToken,
    ) -> (std::time::Duration, Result<Routed, EmitError>) {
        let hold = Arc::new(crate::output::buffered::Hold::new(hold, cancel));
        let result =
            crate::output::buffered::holding(Arc::clone(&hold), self.emit(label, batch)).await;
        (hold.held(), result)
    }
}

impl crate::metrics::Collector for Routing {
    fn collect(&self, out: &mut crate::metrics::Exposition) {
        self.current().collect(out);
    }
}
