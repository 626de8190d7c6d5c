//! `@type null`: accepts and discards every event (counted).

use crate::event::Batch;
use ferry_config::Section;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NullConfig {}

impl NullConfig {
    pub fn from_section(_section: &Section<'_>) -> Self {
        Self {}
    }
}

#[derive(Debug)]
pub struct Null {
    pub id: String,
    pub emit_records: AtomicU64,
    pub emit_count: AtomicU64,
}

impl Null {
    pub fn new(id: String) -> Self {
        Self {
            id,
            emit_records: AtomicU64::new(0),
            emit_count: AtomicU64::new(0),
        }
    }

    pub fn emit(&self, batch: &Batch) {
        self.emit_records
            .fetch_add(batch.records, Ordering::Relaxed);
        self.emit_count.fetch_add(1, Ordering::Relaxed);
    }
}
