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
    /// Seconds of the earliest and the latest event, where the producer already knows them
    /// (every event's time lies in this range); lets the buffer place a batch of one time
    /// slice without walking its entries again.
    pub time_range: Option<(u32, u32)>,
    /// The input already joined multi-line messages with the first `concat` filter of this
    /// tag's route ([`crate::filter::concat`]); that filter passes the batch on.
    pub joined_by_input: bool,
}

impl Batch {
    pub fn new(tag: impl Into<Arc<str>>, entries: Bytes, records: u64) -> Self {
        Self {
            tag: tag.into(),
            entries,
            records,
            time_range: None,
            joined_by_input: false,
        }
    }

    /// Records that every event's time lies within `min..=max` (seconds).
    pub fn with_time_range(mut self, min: u32, max: u32) -> Self {
        self.time_range = Some((min, max));
        self
    }
}
