//! Chunks handed one after the other to a sink that keeps several in flight (the forward
//! output with acks): the flusher gives the next ready chunk as soon as the sink has room for
//! it, and settles each one as soon as the sink says it was delivered, while the later ones are
//! still on their way.

use ferry_buffer::Chunk;
use std::future::Future;
use std::pin::Pin;

/// The next chunk ready now, or `None`.
pub type NextChunk = Pin<Box<dyn Future<Output = Option<Chunk>> + Send>>;

/// Resolves when a chunk may have become ready (the wake-up can be spurious).
pub type Ready = Pin<Box<dyn Future<Output = ()> + Send>>;

pub trait ChunkFeed: Send {
    /// The next chunk ready to go now, or `None` when none is (it does not wait for one to
    /// become ready, and gives none once the flusher is stopping).
    fn next(&mut self) -> NextChunk;

    /// Resolves when a chunk may have become ready since the last `next` found none (when
    /// the next staged chunk is due).
    fn ready(&self) -> Ready;

    /// Every event of `chunk` was delivered: it is acknowledged to the buffer (deleted).
    fn done(&mut self, chunk: Chunk);
}
