//! `@type null`: accepts and discards every event (counted).

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
    pub records: AtomicU64,
}

impl Null {
    pub fn new(id: String) -> Self {
        Self {
            id,
            records: AtomicU64::new(0),
        }
    }

    pub fn take(&self, records: u64) {
        self.records.fetch_add(records, Ordering::Relaxed);
    }
}
