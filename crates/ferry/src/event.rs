//! What travels from inputs through the router to outputs.

use bytes::Bytes;
use std::sync::Arc;

/// Events of one tag, kept as msgpack bytes: a PackedForward entry stream (`[time, record]`
/// arrays back to back). Inputs validate entries before they build a batch; routers and
/// outputs that do not change records pass the bytes on untouched.
#[derive(Debug, Clone)]
pub struct Batch {
    pub tag: Arc<str>,
    pub entries: Bytes,
    pub records: u64,
}

impl Batch {
    pub fn new(tag: impl Into<Arc<str>>, entries: Bytes, records: u64) -> Self {
        Self {
            tag: tag.into(),
            entries,
            records,
        }
    }
}
