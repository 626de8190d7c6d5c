//! Pipelining: with acks, requests go out on one connection ahead of their acks, each settled
//! by its own ack (matched by id, in any order) and noted acknowledged at once. The receiver
//! works on one request while the next is on the wire, so a chunk costs one round trip, not
//! one per request.
//!
//! **The window.** Requests of up to twice `max_request_size` bytes in all (and at most
//! [`MAX_REQUESTS_AHEAD`] of them) wait for their acks at once; the first request always
//! goes. With full requests that is two ahead, which bounds what a crash of the forwarder can
//! send twice; small requests (the chunks of many quiet tags) fill it many at a time.
//!
//! **Two uses.**
//! - One chunk ([`Shared::pipeline`], from [`super::deliver`]): the requests of a chunk that go
//!   out as stored; the rest goes through deliver's one-request-at-a-time path.
//! - A stream of chunks ([`Shared::stream`], from the flusher): when the window has room and
//!   the chunks taken so far are all written, the flusher's [`ChunkFeed`] gives the next ready
//!   chunk, so one flush thread keeps several chunks in flight on one connection, written in
//!   the order they were taken. Each chunk is handed back to the feed (acknowledged to the
//!   buffer) as soon as its own last ack arrives. A chunk joins a stream only if each of its
//!   requests still to send goes out as stored; the first one that does not ends the pulling,
//!   and is returned with the rest. Each chunk taken takes its turn in the balancer's rotation,
//!   as a chunk sent alone does: when the turn falls to another server, the stream takes no
//!   more and that chunk is returned, to go to that server. With one aggregator (or one address in front
//!   of several) a stream runs as long as chunks are ready; with several, the chunks are
//!   spread by weight as before, one stream per turn.
//!
//! The first failure ends the pipeline: what was acked stays acked (noted with the chunk), and
//! the chunks not finished go through [`super::deliver`]'s path one by one, which fails over
//! to the next server and sends only the requests without an ack note.

use super::Shared;
use super::conn::WriteHalf;
use super::deliver::Todo;
use super::error::ForwardError;
use super::metrics::bump;
use super::node::Node;
use super::pool::{checkin, checkout};
use super::send::{Request, Span, ack_id, plan, read_ack_half, write_request};
use crate::output::feed::{ChunkFeed, NextChunk, Ready};
use ferry_buffer::Chunk;
use ferry_proto::options::ChunkId;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A request being written on the writing half it owns and gives back.
type WriteFuture<'a> = dyn Future<Output = (WriteHalf<'a>, Result<u64, ForwardError>)> + Send + 'a;

/// Requests waiting for their acks on one connection at most (with small requests; the byte
/// window bounds large ones).
pub const MAX_REQUESTS_AHEAD: usize = 64;

/// A chunk in a pipeline: lent by the caller (one chunk), or taken from the feed (a stream).
#[derive(Clone)]
enum Held<'c> {
    Lent(&'c Chunk),
    Owned(Arc<Chunk>),
}

impl Held<'_> {
    fn chunk(&self) -> &Chunk {
        match self {
            Self::Lent(c) => c,
            Self::Owned(c) => c,
        }
    }
}

/// One chunk's state in a pipeline.
struct Piped<'c> {
    /// Distinguishes the chunks of one pipeline (an index would move as chunks finish).
    seq: u64,
    held: Held<'c>,
    tag: Arc<str>,
    uid: [u8; 16],
    spans: Vec<Span>,
    todo: Todo,
    /// Spans from here on are not pipelined.
    end: usize,
    /// The next span to consider.
    next: usize,
    /// Requests written or being written whose ack has not come.
    open: usize,
}

impl Piped<'_> {
    /// The next span to write, skipping those acknowledged before.
    fn peek(&mut self) -> Option<usize> {
        while self.next < self.end && self.todo.done[self.next] {
            self.next += 1;
        }
        (self.next < self.end).then_some(self.next)
    }

    fn finished(&mut self) -> bool {
        self.open == 0 && self.peek().is_none()
    }
}

/// How a pipeline ended.
struct Ended<'c> {
    failure: Option<ForwardError>,
    /// Chunks not finished, in order (a lent one too, to give its notes back).
    unfinished: VecDeque<Piped<'c>>,
    /// A chunk taken from the feed that cannot be pipelined, or whose turn fell to another
    /// server.
    refused: Option<Chunk>,
}

impl Shared {
    /// Sends the spans still to do that go out as stored (up to the first that does not),
    /// pipelined on one connection to one server (see the module docs), marking each
    /// acknowledged one done in `todo`. Any failure ends it early (counted and logged as the
    /// sequential path does); the caller sends what is left.
    pub(super) async fn pipeline(
        &self,
        chunk: &Chunk,
        tag: &str,
        uid: [u8; 16],
        spans: &[Span],
        todo: &mut Todo,
    ) {
        let end = (0..spans.len())
            .find(|&i| !todo.done[i] && !self.sent_as_stored(&spans[i]))
            .unwrap_or(spans.len());
        if (0..end).filter(|&i| !todo.done[i]).count() < 2 {
            return;
        }
        let piped = Piped {
            seq: 0,
            held: Held::Lent(chunk),
            tag: Arc::from(tag),
            uid,
            spans: spans.to_vec(),
            todo: std::mem::take(todo),
            end,
            next: 0,
            open: 0,
        };
        let mut pipes = VecDeque::from([piped]);
        if let Some(ended) = self.run_pipeline(&mut pipes, None).await {
            pipes = ended.unfinished;
        }
        if let Some(p) = pipes.pop_front() {
            *todo = p.todo;
        }
    }

    /// Sends `first` and the chunks `feed` gives while the window has room, pipelined on one
    /// connection (see the module docs). Chunks all of whose events were acknowledged are
    /// handed to `feed.done` as their last ack arrives. Returns the chunks not delivered, in
    /// the order they were taken: with the error to settle them with when their acks were lost
    /// (a rollback, as for a chunk sent alone), else `None`, for the one-by-one path.
    pub(super) async fn stream(
        &self,
        first: Chunk,
        feed: &mut dyn ChunkFeed,
    ) -> Vec<(Chunk, Option<ForwardError>)> {
        let piped = match self.join_stream(first, 0) {
            Ok(p) => p,
            Err(chunk) => return vec![(*chunk, None)],
        };
        let mut pipes = VecDeque::from([piped]);
        let Some(ended) = self.run_pipeline(&mut pipes, Some(feed)).await else {
            return pipes
                .into_iter()
                .filter_map(|p| owned(p.held))
                .map(|c| (c, None))
                .collect();
        };
        let mut left: Vec<(Chunk, Option<ForwardError>)> = Vec::new();
        for p in ended.unfinished {
            let lost = match &ended.failure {
                Some(e) if p.open > 0 => e.lost_ack_again(),
                _ => None,
            };
            let uid = p.uid;
            if let Some(chunk) = owned(p.held) {
                left.push((chunk, lost.map(|e| self.chunk_failed(uid, e))));
            }
        }
        left.extend(ended.refused.map(|c| (c, None)));
        left
    }

    /// A chunk taken from the feed as a pipeline member, or back if it cannot be one (no tag,
    /// a request that does not go out as stored, a piece already sent of a cut span).
    fn join_stream(&self, chunk: Chunk, seq: u64) -> Result<Piped<'static>, Box<Chunk>> {
        let Some(tag) = chunk.key().tag.as_deref().map(Arc::<str>::from) else {
            return Err(Box::new(chunk));
        };
        let uid = chunk.unique_id();
        let spans = plan(chunk.segments(), self.config.max_request_size);
        let todo = self.todo_for(&chunk, &spans);
        let all_stored = spans
            .iter()
            .zip(&todo.done)
            .all(|(s, done)| *done || self.sent_as_stored(s));
        if !all_stored || self.progress_sub(&uid) != 0 {
            return Err(Box::new(chunk));
        }
        if spans.len() > 1 {
            bump(&self.metrics.chunks_split, 1);
        }
        Ok(Piped {
            seq,
            held: Held::Owned(Arc::new(chunk)),
            tag,
            uid,
            end: spans.len(),
            spans,
            todo,
            next: 0,
            open: 0,
        })
    }

    /// Runs a pipeline over `pipes` (and what `feed` gives) until nothing is left to write or
    /// wait for. `None` when no connection could be had (nothing was written); the caller
    /// sends everything the usual way.
    async fn run_pipeline<'c>(
        &self,
        pipes: &mut VecDeque<Piped<'c>>,
        mut feed: Option<&mut dyn ChunkFeed>,
    ) -> Option<Ended<'c>> {
        let cfg = &self.config;
        let node = self.pick(|_| true)?;
        let node = &node;
        let detached = node.detach_signal();
        tokio::pin!(detached);
        // A connection that fails, or a server detached while connecting (a connect to a
        // silent server waits for connect_timeout): the sequential path connects again,
        // elsewhere if need be, and reports the failure.
        let (mut conn, _) = tokio::select! {
            r = checkout(self, node) => r.ok()?,
            () = &mut detached => return None,
        };
        let window = cfg.max_request_size.saturating_mul(2);
        let mut in_flight = InFlight::new(&node.metrics.acks_pending);
        let mut refused: Option<Chunk> = None;
        let mut pull: Option<NextChunk> = None;
        let mut next_seq = pipes.back().map_or(0, |p| p.seq + 1);
        // The chunk whose request is being written, if any.
        let mut writing: Option<u64> = None;
        let mut pulling = feed.is_some();
        // The balancer chose another server for the next chunk: this stream takes no more.
        let mut moved = false;
        let failure = {
            let (wr, mut rd) = conn.halves();
            let mut wr = Some(wr);
            // The request being written, written while acks are read: an ack is noted as it
            // arrives, not after the next request went out, so a crash sends again only what
            // the server had not acknowledged yet. The future owns the writing half and gives
            // it back.
            let mut write: Option<Pin<Box<WriteFuture<'_>>>> = None;
            loop {
                if let Some(f) = feed.as_deref_mut() {
                    self.hand_finished(pipes, writing, f);
                }
                let candidate = pipes.back_mut().and_then(|p| {
                    let si = p.peek()?;
                    Some((p.seq, si, p.spans[si]))
                });
                if write.is_none()
                    && let Some((seq, si, span)) = candidate
                    && in_flight.admits(span.len, window)
                    && let Some(p) = pipes.back_mut()
                    && let Some(mut w) = wr.take()
                {
                    writing = Some(seq);
                    p.next = si + 1;
                    p.open += 1;
                    p.todo.sending(p.held.chunk(), &span);
                    let id = ack_id(&p.uid, si, 0);
                    in_flight.push(seq, si, id.clone(), span);
                    let (held, tag) = (p.held.clone(), Arc::clone(&p.tag));
                    let (name, limit) = (node.name(), cfg.send_timeout);
                    write = Some(Box::pin(async move {
                        let req = Request::span(&tag, held.chunk(), &span, Some(id));
                        let r = write_request(&mut w, name, &req, limit).await;
                        (w, r)
                    }));
                }
                if pulling
                    && candidate.is_none()
                    && write.is_none()
                    && pull.is_none()
                    && refused.is_none()
                    && in_flight.admits(1, window)
                    && let Some(f) = feed.as_deref_mut()
                {
                    pull = Some(f.next());
                }
                if write.is_none() && in_flight.is_empty() && pull.is_none() {
                    break None;
                }
                // Nothing was ready at the last look: a chunk queued since wakes the stream.
                let woken: Ready = match feed.as_deref() {
                    Some(f) if !pulling && !moved && pull.is_none() && refused.is_none() => {
                        f.ready()
                    }
                    _ => Box::pin(std::future::pending()),
                };
                let written = async {
                    match write.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                };
                let taking = async {
                    match pull.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = woken => pulling = true,
                    (w, r) = written => {
                        write = None;
                        writing = None;
                        wr = Some(w);
                        match r {
                            Ok(n) => self.count_written(node, n),
                            Err(e) => break Some(e),
                        }
                    }
                    taken = taking => {
                        pull = None;
                        match taken {
                            Some(chunk) if !self.stays_on(node) => {
                                moved = true;
                                pulling = false;
                                refused = Some(chunk);
                            }
                            Some(chunk) => match self.join_stream(chunk, next_seq) {
                                Ok(p) => {
                                    next_seq += 1;
                                    pipes.push_back(p);
                                }
                                Err(chunk) => refused = Some(*chunk),
                            },
                            // Nothing ready: finish what is in flight.
                            None => pulling = false,
                        }
                    }
                    reply = read_ack_half(&mut rd, node.name(), cfg.ack_response_timeout),
                        if !in_flight.is_empty() =>
                    {
                        let settled = reply.and_then(|got| {
                            in_flight.settle(&got).ok_or_else(|| ForwardError::AckMismatch {
                                node: node.name().to_string(),
                                sent: in_flight.expected(),
                                got: String::from_utf8_lossy(&got.bytes).into_owned(),
                            })
                        });
                        match settled {
                            Ok((seq, si, records)) => {
                                bump(&self.metrics.acks_received, 1);
                                self.count_delivered(node, records);
                                self.acked(pipes, seq, si);
                                // Room again: more may be ready by now.
                                pulling = feed.is_some() && !moved;
                            }
                            Err(e) => break Some(e),
                        }
                    }
                    () = &mut detached => {
                        break Some(ForwardError::DetachedInFlight {
                            node: node.name().to_string(),
                        });
                    }
                }
            }
        };
        if let Some(f) = feed {
            self.hand_finished(pipes, None, f);
        }
        match &failure {
            Some(e) => {
                self.failed_on(node, e);
                // The first request of each chunk written whose ack did not come may arrive
                // twice when sent again.
                for p in pipes.iter() {
                    if let Some(si) = in_flight.first_of(p.seq) {
                        self.ack_lost_for(p.uid, si, 0);
                    }
                }
            }
            None => checkin(self, node, conn),
        }
        Some(Ended {
            failure,
            unfinished: std::mem::take(pipes),
            refused,
        })
    }

    /// Whether a chunk just taken goes to `node` too: it takes its turn in the balancer's
    /// rotation, as a chunk sent alone does (a turn is drawn only for a chunk in hand, so the
    /// weights hold however often the stream finds nothing ready). When the turn falls to
    /// another server the stream takes no more, and that server is kept for the chunk's pick.
    fn stays_on(&self, node: &Node) -> bool {
        match self.next_in_rotation(&self.nodes(), |_| true) {
            Some(next) if next.id == node.id => true,
            Some(next) => {
                *self
                    .handoff
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(next.id);
                false
            }
            None => false,
        }
    }

    /// Notes span `si` of chunk `seq` acknowledged.
    fn acked(&self, pipes: &mut VecDeque<Piped<'_>>, seq: u64, si: usize) {
        if let Some(p) = pipes.iter_mut().find(|p| p.seq == seq) {
            p.open = p.open.saturating_sub(1);
            let span = p.spans[si];
            p.todo.acked(self, p.held.chunk(), si, &span);
        }
    }

    /// Hands every chunk of the stream with nothing left to write or wait for (and no request
    /// being written: the writing future holds it) to the feed.
    fn hand_finished(
        &self,
        pipes: &mut VecDeque<Piped<'_>>,
        writing: Option<u64>,
        feed: &mut dyn ChunkFeed,
    ) {
        let mut i = 0;
        while i < pipes.len() {
            let p = &mut pipes[i];
            if !matches!(p.held, Held::Owned(_)) || Some(p.seq) == writing || !p.finished() {
                i += 1;
                continue;
            }
            let Some(p) = pipes.remove(i) else {
                break;
            };
            self.forget_progress(&p.uid);
            match p.held {
                Held::Owned(arc) => match Arc::try_unwrap(arc) {
                    Ok(chunk) => feed.done(chunk),
                    // Unreachable (no future holds it); kept, it is settled the usual way.
                    Err(arc) => {
                        pipes.insert(
                            i,
                            Piped {
                                held: Held::Owned(arc),
                                ..p
                            },
                        );
                        i += 1;
                    }
                },
                Held::Lent(_) => {}
            }
        }
    }
}

/// The chunk of a stream member, once no request future holds it any more.
fn owned(held: Held<'_>) -> Option<Chunk> {
    match held {
        Held::Owned(c) => Arc::try_unwrap(c).ok(),
        Held::Lent(_) => None,
    }
}

/// The requests of a pipeline waiting for their acks, counted in the server's pending gauge
/// while they wait (also when the pipeline is abandoned).
struct InFlight<'a> {
    gauge: &'a std::sync::atomic::AtomicU64,
    /// (chunk, span, ack id, records, bytes)
    open: VecDeque<(u64, usize, ChunkId, u64, u64)>,
    bytes: u64,
}

impl<'a> InFlight<'a> {
    fn new(gauge: &'a std::sync::atomic::AtomicU64) -> Self {
        Self {
            gauge,
            open: VecDeque::new(),
            bytes: 0,
        }
    }

    fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Whether a request of `len` bytes may go now: the first always does.
    fn admits(&self, len: u64, window: u64) -> bool {
        self.open.is_empty()
            || (self.open.len() < MAX_REQUESTS_AHEAD && self.bytes.saturating_add(len) <= window)
    }

    fn push(&mut self, seq: u64, span: usize, id: ChunkId, s: Span) {
        self.gauge.fetch_add(1, Ordering::Relaxed);
        self.bytes += s.len;
        self.open.push_back((seq, span, id, s.records, s.len));
    }

    /// The first span of chunk `seq` still waiting.
    fn first_of(&self, seq: u64) -> Option<usize> {
        self.open.iter().filter(|o| o.0 == seq).map(|o| o.1).min()
    }

    /// Settles the request `got` acknowledges: its chunk, span and records, or `None` if no
    /// request waits for that ack.
    fn settle(&mut self, got: &ChunkId) -> Option<(u64, usize, u64)> {
        let at = self.open.iter().position(|o| o.2.bytes == got.bytes)?;
        let (seq, span, _, records, len) = self.open.remove(at)?;
        self.gauge.fetch_sub(1, Ordering::Relaxed);
        self.bytes -= len;
        Some((seq, span, records))
    }

    fn expected(&self) -> String {
        self.open
            .front()
            .map(|o| String::from_utf8_lossy(&o.2.bytes).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.gauge
            .fetch_sub(self.open.len() as u64, Ordering::Relaxed);
    }
}
