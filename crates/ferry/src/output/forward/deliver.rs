//! Delivering a chunk: its requests one after the other, each to the next healthy server in
//! rotation, failing over within the same flush.
//!
//! Per request: pick a healthy server not yet tried for it → connection (kept-alive or new) →
//! write → wait for the ack → keep or close the connection. On failure the server may be
//! detached ([`ForwardError::detaches_node`]) and the request goes to the next server
//! ([`ForwardError::tries_next_node`]) until every healthy server was tried.
//!
//! **Pipelining**: see [`super::pipeline`], tried first for every chunk sent with acks.
//!
//! **Progress within a chunk** is kept as notes with the chunk ([`crate::output::progress`]):
//! each request is noted when written and when acknowledged. The next attempt (after a
//! failure, or after a crash for a file buffer) sends only the requests with no ack note. A
//! request a crash interrupted (written by an earlier run, no ack note) may have reached the
//! server: sending it again may duplicate its events, counted in
//! `ferry_forward_output_resent_after_restart_records_total`. A request whose ack was lost is
//! sent again to the next server: the events may arrive twice, counted in
//! `duplicates_resent`. A span larger than `max_request_size` (one huge append) is cut into
//! pieces whose progress is kept in memory only.

use super::Shared;
use super::conn::Connection;
use super::error::ForwardError;
use super::metrics::bump;
use super::node::{DetachReason, Node};
use super::pool::{checkin, checkout, connect};
use super::send::{
    Payload, Request, Span, SplitOptions, ack_id, await_ack, plan, split, write_request,
};
use crate::event::Batch;
use crate::output::progress::{self, Code, Ranges, run_id};
use ferry_buffer::Chunk;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

/// Chunks with remembered progress beyond which the memory is reset (chunks that failed for
/// good leave entries behind; forgetting them only costs possible duplicates).
const MAX_PROGRESS_ENTRIES: usize = 4096;

/// The spans of a chunk still to send, from the progress notes of earlier attempts (also
/// before a restart, for a file buffer): a span the server acknowledged is not sent again.
#[derive(Default)]
pub(super) struct Todo {
    pub(super) done: Vec<bool>,
    /// Spans written by an earlier run of the process and not acknowledged: a crash
    /// interrupted them, so the server may have them already.
    pub(super) interrupted: Vec<bool>,
}

impl Todo {
    /// `run` is this run's [`run_id`].
    pub(super) fn new(chunk: &Chunk, spans: &[Span], run: u32) -> Self {
        let notes = chunk.notes();
        let acked = Ranges::of(&notes, Code::RequestAcked, |_| true);
        let earlier = Ranges::of(&notes, Code::RequestSent, |n| n.small != run);
        let done: Vec<bool> = spans
            .iter()
            .map(|s| acked.covers(s.offset, s.len))
            .collect();
        let interrupted = spans
            .iter()
            .zip(&done)
            .map(|(s, d)| !d && earlier.touches(s.offset, s.len))
            .collect();
        Self { done, interrupted }
    }

    /// Notes that `span` is being written.
    pub(super) fn sending(&self, chunk: &Chunk, span: &Span) {
        progress::keep(
            chunk,
            Code::RequestSent.note(run_id(), span.offset, span.len),
        );
    }

    /// Notes that span `i` was acknowledged (or written, without acks), counting it if a
    /// crash had interrupted it before.
    pub(super) fn acked(&mut self, shared: &Shared, chunk: &Chunk, i: usize, span: &Span) {
        self.done[i] = true;
        // Without acks a written request counts as delivered, as the chunk would be.
        progress::keep(
            chunk,
            Code::RequestAcked.note(run_id(), span.offset, span.len),
        );
        if std::mem::take(&mut self.interrupted[i]) {
            bump(&shared.metrics.resent_after_restart, 1);
            bump(&shared.metrics.records_resent_after_restart, span.records);
        }
    }
}

/// How far a chunk got.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    /// Requests acknowledged: every sub-piece of spans before `span`, and `sub` of `span`.
    span: usize,
    sub: usize,
    /// A request written whose ack was lost: sending it again may duplicate its events.
    suspect: Option<(usize, usize)>,
    /// Rollbacks without a counted retry in a row.
    free_rollbacks: usize,
}

impl Shared {
    /// The piece of a cut span the next attempt starts from (0: none of it was sent).
    pub(super) fn progress_sub(&self, uid: &[u8; 16]) -> usize {
        self.progress(uid).sub
    }

    fn progress(&self, uid: &[u8; 16]) -> Progress {
        let map = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(uid).cloned().unwrap_or_default()
    }

    /// Records that every request before sub-piece `sub` of span `span` was acknowledged.
    pub(super) fn acked_before(&self, uid: [u8; 16], span: usize, sub: usize) {
        self.update_progress(uid, |p| (p.span, p.sub) = (span, sub));
    }

    /// Records that the ack of sub-piece `sub` of span `span` was lost: sent again, its events
    /// may arrive twice.
    pub(super) fn ack_lost_for(&self, uid: [u8; 16], span: usize, sub: usize) {
        self.update_progress(uid, |p| p.suspect = Some((span, sub)));
    }

    fn update_progress(&self, uid: [u8; 16], f: impl FnOnce(&mut Progress)) {
        let mut map = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= MAX_PROGRESS_ENTRIES && !map.contains_key(&uid) {
            map.clear();
        }
        f(map.entry(uid).or_default());
    }

    pub(super) fn forget_progress(&self, uid: &[u8; 16]) {
        let mut map = self.progress.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(uid);
    }

    /// What is left to send of `chunk`, from its notes; logs the requests a crash
    /// interrupted.
    pub(super) fn todo_for(&self, chunk: &Chunk, spans: &[Span]) -> Todo {
        let todo = Todo::new(chunk, spans, run_id());
        let interrupted = todo.interrupted.iter().filter(|i| **i).count();
        if interrupted > 0 {
            let done = todo.done.iter().filter(|d| **d).count();
            let records: u64 = spans
                .iter()
                .zip(&todo.interrupted)
                .filter(|(_, i)| **i)
                .map(|(s, _)| s.records)
                .sum();
            tracing::info!(
                "output {}: chunk {}: {done} of {} requests were acknowledged before a restart and are not sent again; {interrupted} a crash interrupted are sent again ({records} events may arrive twice)",
                self.id,
                chunk.id(),
                spans.len()
            );
        }
        todo
    }

    pub(super) async fn write_chunk(&self, chunk: &Chunk) -> Result<(), ForwardError> {
        let uid = chunk.unique_id();
        let result = self.send_chunk(chunk, uid).await;
        match result {
            Ok(()) => {
                self.forget_progress(&uid);
                Ok(())
            }
            Err(e) => Err(self.chunk_failed(uid, e)),
        }
    }

    /// What a chunk that failed with `e` gets: a lost ack rolls it back to the queue without
    /// counting a retry, at most once per registered server in a row; anything else is `e`.
    pub(super) fn chunk_failed(&self, uid: [u8; 16], e: ForwardError) -> ForwardError {
        let free = self.progress(&uid).free_rollbacks;
        if e.ack_lost() && free < self.nodes().len() {
            self.update_progress(uid, |p| p.free_rollbacks += 1);
            bump(&self.metrics.rollbacks, 1);
            ForwardError::RolledBack(Box::new(e))
        } else {
            self.update_progress(uid, |p| p.free_rollbacks = 0);
            e
        }
    }

    async fn send_chunk(&self, chunk: &Chunk, uid: [u8; 16]) -> Result<(), ForwardError> {
        let Some(tag) = chunk.key().tag.as_deref() else {
            return Err(ForwardError::BrokenChunk(
                "the chunk has no tag (the forward output needs the 'tag' chunk key)".into(),
            ));
        };
        let cfg = &self.config;
        let max = cfg.max_request_size;
        let spans = plan(chunk.segments(), max);
        if spans.len() > 1 {
            bump(&self.metrics.chunks_split, 1);
        }
        let mut todo = self.todo_for(chunk, &spans);
        let start = self.progress(&uid);
        if cfg.require_ack_response && start.sub == 0 {
            self.pipeline(chunk, tag, uid, &spans, &mut todo).await;
        }
        let ack = |span, sub| cfg.require_ack_response.then(|| ack_id(&uid, span, sub));
        for (si, span) in spans.iter().enumerate() {
            if todo.done[si] {
                continue;
            }
            let skip_sub = if si == start.span { start.sub } else { 0 };
            // Noted as written only once it was: a request no server took (none available,
            // connection refused) cannot arrive twice.
            let written = |r: Result<(), ForwardError>| {
                if let Err(e) = &r
                    && e.ack_lost()
                {
                    todo.sending(chunk, span);
                }
                r
            };
            if self.sent_as_stored(span) {
                let req = Request::span(tag, chunk, span, ack(si, 0));
                written(self.deliver(&req, Some((uid, si, 0))).await)?;
            } else {
                let opts = SplitOptions {
                    max: usize::try_from(max).unwrap_or(usize::MAX),
                    time_as_integer: cfg.time_as_integer,
                    gzip: chunk.compressed(),
                };
                let mut pieces = split(chunk, *span, opts)?;
                let mut sub = 0;
                while let Some(piece) = pieces.recv().await {
                    let piece = piece?;
                    if sub >= skip_sub {
                        if piece.oversize {
                            bump(&self.metrics.oversize_entries, 1);
                        }
                        let req = Request {
                            tag,
                            payload: Payload::Bytes(piece.bytes),
                            records: piece.records,
                            compressed: chunk.compressed(),
                            ack: ack(si, sub),
                        };
                        written(self.deliver(&req, Some((uid, si, sub))).await)?;
                        self.acked_before(uid, si, sub + 1);
                    }
                    sub += 1;
                }
            }
            self.acked_before(uid, si + 1, 0);
            todo.acked(self, chunk, si, span);
        }
        Ok(())
    }

    pub(super) async fn write_batch(&self, batch: &Batch) -> Result<(), ForwardError> {
        let uid: [u8; 16] = rand::random();
        let req = Request {
            tag: &batch.tag,
            payload: Payload::Bytes(batch.entries.clone()),
            records: batch.records,
            compressed: false,
            ack: self.config.require_ack_response.then(|| ack_id(&uid, 0, 0)),
        };
        self.deliver(&req, None).await
    }

    /// Sends one request to the next healthy servers until one takes it.
    async fn deliver(
        &self,
        req: &Request<'_>,
        piece: Option<([u8; 16], usize, usize)>,
    ) -> Result<(), ForwardError> {
        let mut tried: Vec<usize> = Vec::new();
        let mut last: Option<ForwardError> = None;
        loop {
            let Some(node) = self.pick(|id| !tried.contains(&id)) else {
                bump(&self.metrics.no_nodes_available, u64::from(last.is_none()));
                return Err(last.unwrap_or(ForwardError::NoNodesAvailable));
            };
            let node = &node;
            match self.send_to(node, req).await {
                Ok(()) => {
                    if let Some((uid, span, sub)) = piece
                        && self.progress(&uid).suspect == Some((span, sub))
                    {
                        bump(&self.metrics.duplicates_resent, 1);
                        bump(&self.metrics.duplicate_records_resent, req.records);
                        self.update_progress(uid, |p| p.suspect = None);
                    }
                    return Ok(());
                }
                Err(e) => {
                    self.failed_on(node, &e);
                    if let Some((uid, span, sub)) = piece
                        && e.ack_lost()
                    {
                        self.ack_lost_for(uid, span, sub);
                    }
                    if !e.tries_next_node() {
                        return Err(e);
                    }
                    tried.push(node.id);
                    last = Some(e);
                }
            }
        }
    }

    async fn send_to(&self, node: &Node, req: &Request<'_>) -> Result<(), ForwardError> {
        // A server detached meanwhile (phi, another flusher's failure) is given up on at once:
        // its ack may never come, and the request can go elsewhere now.
        let detached = node.detach_signal();
        tokio::select! {
            r = self.exchange(node, req) => r,
            () = detached => Err(ForwardError::DetachedInFlight {
                node: node.name().to_string(),
            }),
        }
    }

    async fn exchange(&self, node: &Node, req: &Request<'_>) -> Result<(), ForwardError> {
        let (conn, reused) = checkout(self, node).await?;
        match self.request(node, req, conn).await {
            // A kept-alive connection the server closed just as it was reused (an idle
            // timeout on its side) says nothing about the server: once more on a new one.
            Err(e)
                if reused
                    && matches!(
                        e,
                        ForwardError::Send { .. } | ForwardError::AckClosed { .. }
                    ) =>
            {
                tracing::debug!(
                    "output {}: reused connection failed ({e}); reconnecting",
                    self.id
                );
                if e.ack_lost() {
                    bump(&self.metrics.duplicates_resent, 1);
                    bump(&self.metrics.duplicate_records_resent, req.records);
                }
                let conn = connect(self, node).await?;
                self.request(node, req, conn).await
            }
            other => other,
        }
    }

    async fn request(
        &self,
        node: &Node,
        req: &Request<'_>,
        mut conn: Connection,
    ) -> Result<(), ForwardError> {
        let cfg = &self.config;
        let written = write_request(&mut conn.stream, node.name(), req, cfg.send_timeout).await?;
        self.count_written(node, written);
        if let Some(id) = &req.ack {
            let _pending = Pending::new(&node.metrics.acks_pending);
            await_ack(&mut conn, node.name(), id, cfg.ack_response_timeout).await?;
            bump(&self.metrics.acks_received, 1);
        }
        self.count_delivered(node, req.records);
        checkin(self, node, conn);
        Ok(())
    }

    /// Whether a span goes out as it is stored (not cut further, times not rewritten).
    pub(super) fn sent_as_stored(&self, span: &super::send::Span) -> bool {
        span.len <= self.config.max_request_size && !self.config.time_as_integer
    }

    /// Counts a request written to `node`.
    pub(super) fn count_written(&self, node: &Node, bytes: u64) {
        bump(&self.metrics.requests_sent, 1);
        bump(&self.metrics.bytes_sent, bytes);
        bump(&node.metrics.requests_sent, 1);
        bump(&node.metrics.bytes_sent, bytes);
    }

    /// Counts a request `node` took (acked, or written when no ack is asked for).
    pub(super) fn count_delivered(&self, node: &Node, records: u64) {
        bump(&self.metrics.records_sent, records);
        node.request_succeeded();
        self.works_again(node);
    }

    /// Logs, counts and detaches after a failed request.
    pub(super) fn failed_on(&self, node: &Node, e: &ForwardError) {
        bump(&node.metrics.errors, 1);
        let m = &self.metrics;
        match e {
            ForwardError::AckMismatch { .. } | ForwardError::AckInvalid { .. } => {
                bump(&m.acks_mismatched, 1);
            }
            ForwardError::AckTimeout { .. }
            | ForwardError::AckClosed { .. }
            | ForwardError::DetachedInFlight { .. } => {
                bump(&m.acks_lost, 1);
                tracing::warn!(
                    "no response from node. regard it as unavailable. host=\"{}\" port={} server=\"{}\" error=\"{e}\"",
                    node.server.host,
                    node.server.port,
                    node.name()
                );
            }
            _ => {}
        }
        if !e.ack_lost() {
            if node.failures.failed(&e.to_string()) {
                tracing::warn!("output {}: {e} error_class={}", self.id, e.class());
            } else {
                tracing::debug!("output {}: {e} error_class={} (again)", self.id, e.class());
            }
        }
        if e.detaches_node() {
            let message = e.to_string();
            self.detach(
                node,
                &DetachReason::Error {
                    class: e.class(),
                    message: &message,
                },
            );
        }
    }
}

/// Counts a request waiting for its ack for as long as it lives (also when the wait is
/// abandoned).
struct Pending<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> Pending<'a> {
    fn new(gauge: &'a std::sync::atomic::AtomicU64) -> Self {
        gauge.fetch_add(1, Ordering::Relaxed);
        Self(gauge)
    }
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
#[path = "deliver_tests.rs"]
mod tests;
