//! Model-based property test: random interleavings of append, seal, take, ack, nack, rollback,
//! crash (drop without close, sometimes leaving a torn tail) and reopen, checked against a
//! simple model of which records must be in the buffer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime};

use common::*;
use ferry_buffer::{Buffer, BufferConfig, Chunk, ChunkKey, RetryDecision};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Torn {
    PayloadGarbage(Vec<u8>),
    PartialRecord(Vec<u8>),
}

#[derive(Clone, Debug)]
enum Op {
    Append { key: u8, n: u8, size: u16 },
    EnqueueDue { advance_secs: u16 },
    FlushAll,
    Take,
    Ack(u8),
    Nack(u8),
    Rollback(u8),
    Crash { torn: Option<(u8, Torn)> },
    Reopen,
}

fn op_strategy(file: bool) -> impl Strategy<Value = Op> {
    let torn = prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..300).prop_map(Torn::PayloadGarbage),
        proptest::collection::vec(any::<u8>(), 1..40).prop_map(Torn::PartialRecord),
    ];
    let crash_weight = if file { 2 } else { 0 };
    prop_oneof![
        10 => (0u8..3, 1u8..4, 30u16..3000).prop_map(|(key, n, size)| Op::Append { key, n, size }),
        2 => (0u16..120).prop_map(|advance_secs| Op::EnqueueDue { advance_secs }),
        1 => Just(Op::FlushAll),
        4 => Just(Op::Take),
        3 => any::<u8>().prop_map(Op::Ack),
        2 => any::<u8>().prop_map(Op::Nack),
        2 => any::<u8>().prop_map(Op::Rollback),
        crash_weight => proptest::option::of((any::<u8>(), torn)).prop_map(|torn| Op::Crash { torn }),
        crash_weight => Just(Op::Reopen),
    ]
}

fn key(k: u8) -> ChunkKey {
    tag(&format!("app.{k}"))
}

struct Harness {
    config: BufferConfig,
    buffer: Option<Buffer>,
    /// Records appended (acknowledged by append) and not yet acknowledged by the output:
    /// id -> (key, entry size).
    live: BTreeMap<u64, (u8, u64)>,
    in_flight: Vec<(Chunk, Vec<u64>)>,
    next_id: u64,
    now: SystemTime,
}

impl Harness {
    fn buffer(&self) -> &Buffer {
        self.buffer.as_ref().expect("buffer open")
    }

    fn check_stats(&self) -> Result<(), TestCaseError> {
        let stats = self.buffer().stats();
        let bytes: u64 = self.live.values().map(|(_, s)| s).sum();
        prop_assert_eq!(stats.total_bytes, bytes, "stats.total_bytes vs model");
        prop_assert_eq!(stats.total_records, self.live.len() as u64);
        prop_assert_eq!(
            stats.stage_byte_size + stats.queue_byte_size,
            stats.total_bytes
        );
        prop_assert_eq!(stats.in_flight_length, self.in_flight.len() as u64);
        Ok(())
    }

    fn check_chunk(&self, chunk: &Chunk, payload: &[u8]) -> Result<Vec<u64>, TestCaseError> {
        prop_assert_eq!(payload.len() as u64, chunk.bytes());
        let ids = parse_ids(payload);
        prop_assert_eq!(ids.len() as u64, chunk.records());
        let mut at = 0u64;
        let mut recs = 0u64;
        for seg in chunk.segments() {
            prop_assert_eq!(seg.offset, at, "segments are contiguous");
            let slice = &payload[seg.offset as usize..(seg.offset + seg.len) as usize];
            prop_assert_eq!(
                parse_ids(slice).len() as u64,
                seg.records,
                "segment on entry boundaries"
            );
            at += seg.len;
            recs += seg.records;
        }
        prop_assert_eq!(at, chunk.bytes());
        prop_assert_eq!(recs, chunk.records());
        for id in &ids {
            let Some((k, _)) = self.live.get(id) else {
                return Err(TestCaseError::fail(format!(
                    "id {id} in a chunk but not live"
                )));
            };
            prop_assert_eq!(&key(*k), chunk.key());
        }
        Ok(ids)
    }

    /// Everything live is in the buffer exactly once, and each key's records come out in
    /// append order.
    fn check_contents(&mut self) -> Result<(), TestCaseError> {
        let drained = drain_ids(self.buffer());
        let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
        let mut last_per_key: BTreeMap<u8, u64> = BTreeMap::new();
        for (_, ids) in &drained {
            for id in ids {
                *seen.entry(*id).or_default() += 1;
                let Some((k, _)) = self.live.get(id) else {
                    return Err(TestCaseError::fail(format!(
                        "id {id} present but acked or never appended"
                    )));
                };
                if let Some(prev) = last_per_key.insert(*k, *id) {
                    prop_assert!(prev < *id, "key {} out of order: {} before {}", k, prev, id);
                }
            }
        }
        for id in self.live.keys() {
            prop_assert_eq!(
                seen.get(id).copied(),
                Some(1),
                "id {} missing or duplicated",
                id
            );
        }
        Ok(())
    }

    fn pick(&mut self, i: u8) -> Option<(Chunk, Vec<u64>)> {
        if self.in_flight.is_empty() {
            return None;
        }
        let idx = usize::from(i) % self.in_flight.len();
        Some(self.in_flight.remove(idx))
    }

    fn crash(&mut self, torn: Option<(u8, Torn)>, dir: &Path) -> Result<(), TestCaseError> {
        self.in_flight.clear();
        self.buffer = None;
        let mut injected = false;
        if let Some((which, torn)) = torn {
            let payloads = files_with_suffix(dir, ".payload");
            if !payloads.is_empty() {
                let p = &payloads[usize::from(which) % payloads.len()];
                let (path, bytes) = match torn {
                    Torn::PayloadGarbage(b) => (p.clone(), b),
                    Torn::PartialRecord(b) => (p.with_extension("journal"), b),
                };
                let mut f = OpenOptions::new().append(true).open(path).unwrap();
                f.write_all(&bytes).unwrap();
                injected = true;
            }
        }
        let (buffer, report) = Buffer::open(self.config.clone(), "model").unwrap();
        prop_assert!(
            report.quarantined.is_empty(),
            "nothing is corrupt: {:?}",
            report
        );
        prop_assert_eq!(injected, !report.torn_tails.is_empty());
        self.buffer = Some(buffer);
        self.check_stats()?;
        self.check_contents()
    }

    fn run(&mut self, op: Op, dir: Option<&Path>) -> Result<(), TestCaseError> {
        match op {
            Op::Append { key: k, n, size } => {
                let ids: Vec<u64> = (0..u64::from(n)).map(|i| self.next_id + i).collect();
                self.next_id += u64::from(n);
                let data = entries(&ids, usize::from(size));
                let each = data.len() as u64 / u64::from(n);
                self.buffer().append(&key(k), &data, u64::from(n)).unwrap();
                for id in ids {
                    self.live.insert(id, (k, each));
                }
            }
            Op::EnqueueDue { advance_secs } => {
                self.now += Duration::from_secs(u64::from(advance_secs));
                self.buffer().enqueue_due(self.now);
            }
            Op::FlushAll => self.buffer().flush_all(),
            Op::Take => {
                if let Some(c) = self.buffer().take(self.now) {
                    let payload = read_all(&c);
                    let ids = self.check_chunk(&c, &payload)?;
                    self.in_flight.push((c, ids));
                }
            }
            Op::Ack(i) => {
                if let Some((c, ids)) = self.pick(i) {
                    self.buffer().ack(c).unwrap();
                    for id in ids {
                        self.live.remove(&id);
                    }
                }
            }
            Op::Nack(i) => {
                if let Some((c, _)) = self.pick(i) {
                    match self.buffer().nack(c, self.now) {
                        RetryDecision::RetryAt(t) => prop_assert!(t >= self.now),
                        other => {
                            return Err(TestCaseError::fail(format!(
                                "retry_forever gave {other:?}"
                            )));
                        }
                    }
                }
            }
            Op::Rollback(i) => {
                if let Some((c, _)) = self.pick(i) {
                    self.buffer().rollback(c);
                }
            }
            Op::Crash { torn } => {
                if let Some(dir) = dir {
                    self.crash(torn, dir)?;
                }
            }
            Op::Reopen => {
                if dir.is_some() {
                    self.in_flight.clear();
                    self.buffer().close();
                    self.buffer = None;
                    let (buffer, report) = Buffer::open(self.config.clone(), "model").unwrap();
                    prop_assert!(
                        report.is_clean(),
                        "clean close leaves a clean buffer: {:?}",
                        report
                    );
                    self.buffer = Some(buffer);
                    self.check_contents()?;
                }
            }
        }
        self.check_stats()
    }
}

fn run_model(config: BufferConfig, dir: Option<&Path>, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let (buffer, _) = Buffer::open(config.clone(), "model").unwrap();
    let mut h = Harness {
        config,
        buffer: Some(buffer),
        live: BTreeMap::new(),
        in_flight: Vec::new(),
        next_id: 1,
        now: SystemTime::now(),
    };
    for op in ops {
        h.run(op, dir)?;
    }
    h.in_flight.clear();
    h.check_stats()?;
    h.check_contents()
}

fn model_config(mut c: BufferConfig) -> BufferConfig {
    c.chunk_limit_size = 16 * 1024;
    c.total_limit_size = 64 * 1024 * 1024;
    c.segment_target_size = 4096;
    c.retry.retry_forever = true;
    c
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn file_buffer_keeps_every_unacked_record_across_crashes(
        ops in proptest::collection::vec(op_strategy(true), 1..60),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = model_config(small_file_config(dir.path()));
        run_model(config, Some(dir.path()), ops)?;
    }

    #[test]
    fn memory_buffer_matches_the_model(ops in proptest::collection::vec(op_strategy(false), 1..80)) {
        let config = model_config(BufferConfig::memory());
        run_model(config, None, ops)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    #[test]
    fn fsync_file_buffer_keeps_every_unacked_record_across_crashes(
        ops in proptest::collection::vec(op_strategy(true), 1..25),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut config = model_config(BufferConfig::file(dir.path()));
        config.durability = ferry_buffer::Durability::Fsync;
        run_model(config, Some(dir.path()), ops)?;
    }
}
