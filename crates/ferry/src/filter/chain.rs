//! Running the filters of one route over a batch.
//!
//! Each entry's record is loaded into a raw view ([`super::raw`]: read where it lies, nothing
//! decoded; the walk `entries::iter` made stands for its check), passed through every filter in
//! order, and spliced back only if a filter changed it. Kept entries no filter changed are not
//! copied one by one: a run of them is one copy, and when every entry is kept unchanged the
//! batch itself is returned (no copy). Events a filter sends to `@ERROR` are collected, as they
//! were when that filter received them, into a second batch of the same tag.

use super::{Event, Filter, TagContext, Verdict};
use crate::event::Batch;
use bytes::{BufMut, Bytes, BytesMut};
use ferry_proto::entries::{self, EntryRef};
use ferry_proto::msgpack;
#[cfg(test)]
use ferry_proto::msgpack::Value;
use ferry_proto::time::EventTime;
use std::ops::Range;
use std::sync::Arc;

/// What a chain made of a batch.
#[derive(Debug, Default)]
pub struct Filtered {
    /// The events that go on (`None` when every event was dropped).
    pub kept: Option<Batch>,
    /// Events for the `@ERROR` label.
    pub errors: Option<Batch>,
    /// Why the first error event was sent, for the log line.
    pub first_error: Option<String>,
    /// Events dropped by a filter's verdict.
    pub dropped: u64,
    /// Events a `concat` filter passed on unjoined (no tail input ran it for them).
    pub concat_not_applied: u64,
}

/// Runs `filters` (in order) over `batch`.
pub fn run(filters: &[Arc<Filter>], batch: &Batch, hostname: &Arc<str>) -> Filtered {
    let mut ctx = TagContext::new(Arc::clone(&batch.tag), Arc::clone(hostname));
    ctx.joined_by_input = batch.joined_by_input;
    let mut out = Filtered::default();
    let mut kept = Kept::new(&batch.entries);
    let mut errors = BytesMut::new();
    let mut error_records = 0u64;
    let mut untouched = true;
    let mut event = Event::default();
    for entry in entries::iter(&batch.entries) {
        let Ok(entry) = entry else {
            // Inputs validate entries; anything else is a bug upstream. Keep what is left
            // of the stream out of the filters rather than guess, and count it.
            untouched = false;
            out.dropped += 1;
            continue;
        };
        if event.load_entry(&entry).is_err() {
            untouched = false;
            errors.extend_from_slice(entry.raw);
            error_records += 1;
            out.first_error
                .get_or_insert_with(|| "record could not be decoded".to_string());
            continue;
        }
        let mut modified = false;
        let mut keep = true;
        for filter in filters {
            if !ctx.joined_by_input && matches!(**filter, Filter::Concat(_)) {
                out.concat_not_applied += 1;
            }
            let outcome = filter.apply(&ctx, &mut event);
            if let Some(reason) = outcome.error {
                if modified {
                    write_entry(&mut errors, &entry, &event);
                } else {
                    errors.extend_from_slice(entry.raw);
                }
                error_records += 1;
                out.first_error.get_or_insert(reason);
            }
            modified |= outcome.modified;
            if outcome.verdict == Verdict::Drop {
                keep = false;
                break;
            }
        }
        if !keep {
            untouched = false;
            out.dropped += 1;
            continue;
        }
        if modified {
            untouched = false;
            kept.write(&entry, &event);
        } else {
            kept.pass(entry.raw);
        }
    }
    out.kept = if untouched {
        Some(batch.clone())
    } else {
        kept.finish()
            .map(|(entries, records)| Batch::new(Arc::clone(&batch.tag), entries, records))
    };
    out.errors = (error_records > 0)
        .then(|| Batch::new(Arc::clone(&batch.tag), errors.freeze(), error_records));
    out
}

/// The kept entries of a batch: entries passed unchanged are held as a run of the batch's own
/// bytes until something else has to follow them.
struct Kept<'b> {
    entries: &'b Bytes,
    out: BytesMut,
    run: Range<usize>,
    records: u64,
}

impl<'b> Kept<'b> {
    fn new(entries: &'b Bytes) -> Self {
        Self {
            entries,
            out: BytesMut::new(),
            run: 0..0,
            records: 0,
        }
    }

    /// Keeps `raw`, an entry of the batch, as it is.
    fn pass(&mut self, raw: &[u8]) {
        let start = raw.as_ptr() as usize - self.entries.as_ptr() as usize;
        debug_assert_eq!(self.entries.get(start..start + raw.len()), Some(raw));
        if self.run.end != start {
            self.flush_run();
            self.run = start..start;
        }
        self.run.end = start + raw.len();
        self.records += 1;
    }

    /// Keeps a changed entry.
    fn write(&mut self, entry: &EntryRef<'_>, event: &Event<'_>) {
        self.flush_run();
        self.reserve();
        write_entry(&mut self.out, entry, event);
        self.records += 1;
    }

    fn flush_run(&mut self) {
        let run = std::mem::replace(&mut self.run, 0..0);
        if !run.is_empty() {
            self.reserve();
            self.out.put_slice(&self.entries[run]);
        }
    }

    /// Room for what is kept, once: at most the batch, give or take what the filters add.
    fn reserve(&mut self) {
        if self.out.capacity() == 0 {
            self.out
                .reserve(self.entries.len() + self.entries.len() / 8);
        }
    }

    /// The kept entries and their count; a single run is a slice of the batch (no copy).
    fn finish(mut self) -> Option<(Bytes, u64)> {
        if self.records == 0 {
            return None;
        }
        if self.out.is_empty() {
            return Some((self.entries.slice(self.run.clone()), self.records));
        }
        self.flush_run();
        Some((self.out.freeze(), self.records))
    }
}

/// Writes `[time, record]` (or Fluent Bit's `[[time, metadata], record]` when the entry came
/// with metadata). The time keeps its integer form when the filters left it as it was.
fn write_entry(out: &mut BytesMut, entry: &EntryRef<'_>, event: &Event<'_>) {
    out.put_u8(0x92);
    if let Some(meta) = entry.metadata {
        out.put_u8(0x92);
        write_time(out, entry, event.time);
        out.put_slice(meta);
    } else {
        write_time(out, entry, event.time);
    }
    event.record.write_map(out);
}

fn write_time(out: &mut BytesMut, entry: &EntryRef<'_>, time: EventTime) {
    if entry.int_time && time == entry.time {
        msgpack::write_uint(out, u64::from(time.sec));
    } else {
        time.encode(out);
    }
}

/// A batch made of the given entries, for tests.
#[cfg(test)]
pub fn batch_of(tag: &str, events: &[(u32, Value)]) -> Batch {
    let mut out = BytesMut::new();
    for (sec, record) in events {
        let t = EventTime { sec: *sec, nsec: 0 };
        ferry_proto::encode::write_entry(&mut out, t, false, &record.to_bytes());
    }
    Batch::new(tag, out.freeze(), events.len() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::read_section;
    use crate::record::str_value;

    fn filter(conf: &str) -> Arc<Filter> {
        Arc::new(read_section(conf, Filter::from_section).unwrap().unwrap())
    }

    fn rec(level: &str, log: &str) -> Value {
        Value::Map(vec![
            (str_value("level"), str_value(level)),
            (str_value("log"), str_value(log)),
        ])
    }

    fn records(b: &Batch) -> Vec<String> {
        entries::iter(&b.entries)
            .map(|e| Value::decode(e.unwrap().record).unwrap().0.to_json_string())
            .collect()
    }

    #[test]
    fn a_batch_every_filter_keeps_unchanged_is_passed_through_without_copy() {
        let grep =
            filter("<filter>\n@type grep\n<regexp>\nkey level\npattern .\n</regexp>\n</filter>");
        let batch = batch_of("t", &[(1, rec("info", "a")), (2, rec("warn", "b"))]);
        let out = run(&[grep], &batch, &Arc::from("h"));
        let kept = out.kept.unwrap();
        assert_eq!(kept.entries.as_ptr(), batch.entries.as_ptr());
        assert_eq!(kept.records, 2);
        assert!(out.errors.is_none());
    }

    #[test]
    fn filters_run_in_order_and_dropped_and_errored_events_are_counted() {
        let grep = filter(
            "<filter>\n@type grep\n<exclude>\nkey level\npattern debug\n</exclude>\n</filter>",
        );
        let parse = filter(
            "<filter>\n@type parser\nkey_name log\nreserve_data true\n<parse>\n@type json\n</parse>\n</filter>",
        );
        let add =
            filter("<filter>\n@type record_transformer\n<record>\nt ${tag}\n</record>\n</filter>");
        let batch = batch_of(
            "app",
            &[
                (1, rec("debug", "{}")),
                (2, rec("info", r#"{"x":1}"#)),
                (3, rec("warn", "oops")),
            ],
        );
        let out = run(&[grep, parse, add], &batch, &Arc::from("h"));
        assert_eq!(
            out.dropped, 2,
            "debug by grep, unparseable text by the parser"
        );
        let kept = out.kept.unwrap();
        assert_eq!(kept.records, 1);
        assert_eq!(
            records(&kept),
            vec![r#"{"level":"info","log":"{\"x\":1}","x":1,"t":"app"}"#]
        );
        let errors = out.errors.unwrap();
        assert_eq!((errors.records, errors.tag.as_ref()), (1, "app"));
        assert_eq!(records(&errors), vec![r#"{"level":"warn","log":"oops"}"#]);
        assert!(out.first_error.unwrap().starts_with("parse failed"));
    }

    #[test]
    fn kept_entries_are_copied_as_runs_around_dropped_and_changed_ones() {
        let grep = filter(
            "<filter>\n@type grep\n<exclude>\nkey level\npattern debug\n</exclude>\n</filter>",
        );
        let batch = batch_of(
            "t",
            &[
                (1, rec("debug", "a")),
                (2, rec("info", "b")),
                (3, rec("warn", "c")),
            ],
        );
        let out = run(&[Arc::clone(&grep)], &batch, &Arc::from("h"));
        let kept = out.kept.unwrap();
        assert_eq!(kept.records, 2);
        assert_eq!(
            kept.entries.as_ptr(),
            batch.entries[batch.entries.len() - kept.entries.len()..].as_ptr(),
            "one run at the end of the batch: a slice of it"
        );
        // Text that does not match is kept unchanged (and copied to @ERROR); a number is parsed.
        let parse = filter(
            "<filter>\n@type parser\nkey_name log\nreserve_data true\n<parse>\n@type regexp\n\
             expression /^(?<n>\\d+)$/\n</parse>\n</filter>",
        );
        let logs = ["x", "1", "y", "z", "2"];
        let events: Vec<_> = (1..).zip(logs.map(|l| rec("info", l))).collect();
        let out = run(&[grep, parse], &batch_of("t", &events), &Arc::from("h"));
        assert_eq!(out.errors.unwrap().records, 3);
        assert_eq!(
            records(&out.kept.unwrap()),
            vec![
                r#"{"level":"info","log":"x"}"#,
                r#"{"level":"info","log":"1","n":"1"}"#,
                r#"{"level":"info","log":"y"}"#,
                r#"{"level":"info","log":"z"}"#,
                r#"{"level":"info","log":"2","n":"2"}"#,
            ]
        );
    }

    #[test]
    fn an_all_dropped_batch_has_nothing_left() {
        let grep = filter(
            "<filter>\n@type grep\n<regexp>\nkey level\npattern never\n</regexp>\n</filter>",
        );
        let out = run(
            &[grep],
            &batch_of("t", &[(1, rec("info", "a"))]),
            &Arc::from("h"),
        );
        assert!(out.kept.is_none());
        assert_eq!(out.dropped, 1);
    }
}
