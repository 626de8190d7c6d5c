//! Pipelining: with acks, the requests of a chunk that go out as stored (every span not
//! larger than `max_request_size`) are written on one connection up to [`PIPELINE_DEPTH`]
//! ahead of their acks, each settled by its own ack (matched by id, in any order) and noted
//! acknowledged at once. The receiver
//! works on one request while the next is on the wire, so a chunk costs one round trip, not
//! one per request. The first failure ends the pipeline: what was acked stays acked, and the
//! rest goes through [`super::deliver`]'s one-request-at-a-time path, which fails over to the
//! next server.

use super::Shared;
use super::conn::WriteHalf;
use super::deliver::Todo;
use super::error::ForwardError;
use super::metrics::bump;
use super::node::Node;
use super::pool::{checkin, checkout};
use super::send::{Request, Span, ack_id, read_ack_half, write_request};
use ferry_buffer::Chunk;
use ferry_proto::options::ChunkId;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;

/// A request being written on the writing half it owns and gives back.
type WriteFuture<'a> = dyn Future<Output = (WriteHalf<'a>, Result<u64, ForwardError>)> + Send + 'a;

/// Requests of a chunk written ahead of their acks on one connection.
pub const PIPELINE_DEPTH: usize = 2;

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
        let cfg = &self.config;
        let run: Vec<usize> = (0..spans.len())
            .filter(|&i| !todo.done[i])
            .take_while(|&i| self.sent_as_stored(&spans[i]))
            .collect();
        if run.len() < 2 {
            return;
        }
        let Some(node) = self.pick(|_| true) else {
            return;
        };
        let node = &node;
        let Ok((mut conn, _)) = checkout(self, node).await else {
            // The sequential path connects again and reports the failure.
            return;
        };
        let detached = node.detach_signal();
        tokio::pin!(detached);
        let mut in_flight = InFlight::new(&node.metrics.acks_pending);
        let mut queue = run.into_iter();
        let failure = {
            let (wr, mut rd) = conn.halves();
            let mut wr = Some(wr);
            // The request being written, written while acks are read: an ack is noted as it
            // arrives, not after the next request went out, so a crash sends again only what
            // the server had not acknowledged yet. The future owns the writing half and gives
            // it back.
            let mut write: Option<Pin<Box<WriteFuture<'_>>>> = None;
            loop {
                if write.is_none()
                    && in_flight.len() < PIPELINE_DEPTH
                    && let Some(si) = queue.next()
                    && let Some(mut w) = wr.take()
                {
                    let span = &spans[si];
                    todo.sending(chunk, span);
                    in_flight.push(si, ack_id(&uid, si, 0), span.records);
                    let req = Request::span(tag, chunk, span, Some(ack_id(&uid, si, 0)));
                    let (name, limit) = (node.name(), cfg.send_timeout);
                    write = Some(Box::pin(async move {
                        let r = write_request(&mut w, name, &req, limit).await;
                        (w, r)
                    }));
                }
                if write.is_none() && in_flight.is_empty() {
                    break None;
                }
                let writing = async {
                    match write.as_mut() {
                        Some(f) => f.await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    (w, r) = writing => {
                        write = None;
                        wr = Some(w);
                        match r {
                            Ok(n) => self.count_written(node, n),
                            Err(e) => break Some(e),
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
                            Ok((si, records)) => {
                                bump(&self.metrics.acks_received, 1);
                                self.count_delivered(node, records);
                                todo.acked(self, chunk, si, &spans[si]);
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
        match failure {
            Some(e) => self.pipeline_failed(node, &e, uid, &in_flight),
            None => checkin(self, node, conn),
        }
    }

    /// A pipelined send failed: count and log it as a request failure; the first request
    /// written whose ack did not come may arrive twice when sent again.
    fn pipeline_failed(&self, node: &Node, e: &ForwardError, uid: [u8; 16], open: &InFlight<'_>) {
        self.failed_on(node, e);
        if let Some(span) = open.first() {
            self.ack_lost_for(uid, span, 0);
        }
    }
}

/// The requests of a pipeline waiting for their acks, counted in the server's pending gauge
/// while they wait (also when the pipeline is abandoned).
struct InFlight<'a> {
    gauge: &'a std::sync::atomic::AtomicU64,
    open: std::collections::VecDeque<(usize, ChunkId, u64)>,
}

impl<'a> InFlight<'a> {
    fn new(gauge: &'a std::sync::atomic::AtomicU64) -> Self {
        Self {
            gauge,
            open: std::collections::VecDeque::new(),
        }
    }

    fn len(&self) -> usize {
        self.open.len()
    }

    fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    fn push(&mut self, span: usize, id: ChunkId, records: u64) {
        self.gauge.fetch_add(1, Ordering::Relaxed);
        self.open.push_back((span, id, records));
    }

    /// The first span still waiting.
    fn first(&self) -> Option<usize> {
        self.open.iter().map(|(s, _, _)| *s).min()
    }

    /// Settles the request `got` acknowledges: its span and records, or `None` if no request
    /// waits for that ack.
    fn settle(&mut self, got: &ChunkId) -> Option<(usize, u64)> {
        let at = self
            .open
            .iter()
            .position(|(_, id, _)| id.bytes == got.bytes)?;
        let (span, _, records) = self.open.remove(at)?;
        self.gauge.fetch_sub(1, Ordering::Relaxed);
        Some((span, records))
    }

    fn expected(&self) -> String {
        self.open
            .front()
            .map(|(_, id, _)| String::from_utf8_lossy(&id.bytes).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.gauge
            .fetch_sub(self.open.len() as u64, Ordering::Relaxed);
    }
}
