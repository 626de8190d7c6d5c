//! The route's `concat` filter, run where the lines are read ([`crate::filter::concat`]).

use super::{Built, LineDecoder};
use crate::filter::concat::{Concat, ConcatRule, Joined};
use ferry_proto::time::EventTime;
use std::sync::Arc;

impl LineDecoder {
    /// Emits the messages the concat filter held `flush_interval` or longer (all with `all`).
    pub fn expire_concat(&mut self, all: bool, now: EventTime, out: &mut Built) {
        let Some(c) = &mut self.concat else {
            return;
        };
        if c.is_empty() {
            return;
        }
        let mut joined = std::mem::take(&mut self.joined);
        c.expire(all, &mut joined);
        for j in joined.drain(..) {
            self.write_joined(j, now, out);
        }
        self.joined = joined;
    }

    /// Runs `rule` from now on (the route's first concat filter, which a reload may change).
    /// The messages held under the rule before are emitted first.
    pub fn use_concat(&mut self, rule: Option<&Arc<ConcatRule>>, now: EventTime, out: &mut Built) {
        let same = match (&self.concat, rule) {
            (Some(c), Some(r)) => Arc::ptr_eq(c.rule(), r),
            (None, None) => true,
            _ => false,
        };
        if same {
            return;
        }
        self.expire_concat(true, now, out);
        self.concat = rule.map(|r| Concat::new(Arc::clone(r), self.max_event));
    }

    /// Whether the route's concat filter runs here.
    pub fn joins_messages(&self) -> bool {
        self.concat.is_some()
    }

    /// Writes an event the concat filter joined: to `timeout_label`'s entries when it timed out
    /// and the filter names one.
    pub(super) fn write_joined(&mut self, mut j: Joined, now: EventTime, out: &mut Built) {
        if let Some((key, path)) = &self.path_field {
            j.rec.str(key, path);
        }
        out.concat_joined += 1;
        out.concat_cut += u64::from(j.cut);
        out.concat_timed_out += u64::from(j.timed_out);
        let to_label = j.timed_out
            && self
                .concat
                .as_ref()
                .is_some_and(|c| c.rule().timeout_label.is_some());
        if to_label {
            j.rec
                .write_entry(&mut out.timeout_entries, j.time.unwrap_or(now));
            out.timeout_records += 1;
        } else {
            j.rec.write_entry(&mut out.entries, j.time.unwrap_or(now));
            out.records += 1;
        }
    }
}
