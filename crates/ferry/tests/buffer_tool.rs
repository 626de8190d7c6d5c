//! `ferry buffer ls|verify|salvage` on buffers written by a real ferry: a forward input, a
//! forward output to a port where nothing listens, a file buffer that keeps every chunk; events
//! sent by a real Forward client with acks; ferry stopped with SIGTERM. Then copies of the
//! directory are damaged and the tools are run as an operator runs them.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{AckedSender, Ferry, ferry_bin, free_port, seqs_of, signal};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::thread;
use std::time::{Duration, Instant};

/// Events of tag `tool.a`: 8 requests of 25 (one append each), seqs 0..200.
const A_BATCHES: u64 = 8;
const A_BATCH: u64 = 25;
/// `tool.b`: 3 requests of 10, seqs 1000..1030. `tool.q`: 20 events, seqs 5000..5020, in a
/// chunk flushed (SIGUSR1) and failed against the closed port before the stop.
const B_FIRST: u64 = 1000;
const Q_FIRST: u64 = 5000;
const PAD: usize = 50;

/// A buffer directory left by a stopped ferry, and where its chunks came from.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn buf(&self) -> PathBuf {
        self.dir.path().join("buf")
    }

    /// A copy of the buffer directory to damage.
    fn copy(&self, name: &str) -> PathBuf {
        let to = self.dir.path().join(name);
        copy_dir(&self.buf(), &to);
        to
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn forwarder_config(port: u16, closed: u16, buf: &Path, compress: &str) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match **>\n  @type forward\n  <server>\n    host 127.0.0.1\n    port {closed}\n  </server>\n\
         \x20 <buffer>\n    @type file\n    path {}\n    flush_interval 1h\n    compress {compress}\n  </buffer>\n</match>\n",
        buf.display()
    )
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Stops ferry with SIGTERM and waits for it to exit cleanly.
fn stop(mut ferry: Ferry) {
    signal(ferry.child.id(), "TERM");
    let mut status = None;
    wait_for(
        "ferry to exit after SIGTERM",
        Duration::from_secs(20),
        || {
            status = ferry.child.try_wait().unwrap();
            status.is_some()
        },
    );
    assert!(status.unwrap().success(), "ferry exits cleanly: {status:?}");
}

/// Runs ferry with a forward output that cannot deliver and a file buffer, sends events and
/// stops it: chunk `tool.q` queued with a failed flush, `tool.a` and `tool.b` staged.
fn fixture() -> Fixture {
    fixture_compressed("text")
}

/// [`fixture`] with the buffer's `compress` parameter.
fn fixture_compressed(compress: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let fx = Fixture { dir };
    let (port, closed) = (free_port(), free_port());
    let ferry = Ferry::start(&forwarder_config(port, closed, &fx.buf(), compress), port);
    let mut sender = AckedSender::connect(port).unwrap();
    sender.send("tool.q", Q_FIRST..Q_FIRST + 20, PAD).unwrap();
    // Flush now: the chunk is queued, sent to the closed port and its failure recorded.
    signal(ferry.child.id(), "USR1");
    let mut log = Vec::new();
    wait_for("a failed flush", Duration::from_secs(20), || {
        log.extend(ferry.stderr_so_far());
        log.iter().any(|l| l.contains("failed to flush the buffer"))
    });
    for k in 0..A_BATCHES {
        sender
            .send("tool.a", k * A_BATCH..(k + 1) * A_BATCH, PAD)
            .unwrap();
    }
    for k in 0..3 {
        let first = B_FIRST + k * 10;
        sender.send("tool.b", first..first + 10, PAD).unwrap();
    }
    drop(sender);
    stop(ferry);
    fx
}

fn ferry_buffer(args: &[&str], dir: &Path) -> Output {
    let mut cmd = Command::new(ferry_bin());
    cmd.arg("buffer").arg(args[0]).arg(dir).args(&args[1..]);
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `ls --json`: the chunks by tag.
fn chunks_by_tag(dir: &Path) -> Vec<(String, Value)> {
    let out = ferry_buffer(&["ls", "--json"], dir);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut chunks: Vec<(String, Value)> = doc["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["tag"].as_str().unwrap_or("-").to_string(), c.clone()))
        .collect();
    chunks.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(a.1["state"].as_str().cmp(&b.1["state"].as_str()))
    });
    chunks
}

fn chunk_of(dir: &Path, tag: &str) -> Value {
    chunks_by_tag(dir)
        .into_iter()
        .find(|(t, c)| t == tag && c["location"] == "live")
        .unwrap_or_else(|| panic!("no live chunk {tag}"))
        .1
}

/// Flips one byte in the middle of the `tool.a` chunk's payload; returns (payload, offset).
fn flip_a_byte(dir: &Path) -> (PathBuf, u64) {
    let a = chunk_of(dir, "tool.a");
    let payload = PathBuf::from(a["payload"].as_str().unwrap());
    let mut bytes = std::fs::read(&payload).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&payload, &bytes).unwrap();
    (payload, at as u64)
}

/// The number in `text` right after `prefix`.
fn number_after(text: &str, prefix: &str) -> u64 {
    let rest = &text[text
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix:?} in {text}"))
        + prefix.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap()
}

#[test]
fn ls_lists_each_chunk_of_a_stopped_ferry_with_its_state_counts_and_failed_flushes_and_verify_finds_it_clean()
 {
    let fx = fixture();
    let dir = fx.buf();
    let verify = ferry_buffer(&["verify"], &dir);
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify.stdout));
    assert!(
        text(&verify.stdout).contains("3 live chunks"),
        "{}",
        text(&verify.stdout)
    );

    let chunks = chunks_by_tag(&dir);
    let summary: Vec<(String, String, u64, u64)> = chunks
        .iter()
        .map(|(tag, c)| {
            (
                tag.clone(),
                c["state"].as_str().unwrap().to_string(),
                c["records"].as_u64().unwrap(),
                c["appends"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "tool.a".into(),
                "staged".into(),
                A_BATCHES * A_BATCH,
                A_BATCHES
            ),
            ("tool.b".into(), "staged".into(), 30, 3),
            ("tool.q".into(), "queued".into(), 20, 1),
        ]
    );
    let q = &chunks[2].1;
    assert!(q["failed_flushes"].as_u64().unwrap() >= 1, "{q}");
    assert!(chunks[0].1["failed_flushes"].is_null());
    for (_, c) in &chunks {
        assert!(c["problems"].as_array().unwrap().is_empty(), "{c}");
        assert!(c["age_seconds"].as_f64().unwrap() < 600.0);
        let payload = std::fs::metadata(c["payload"].as_str().unwrap())
            .unwrap()
            .len();
        assert_eq!(c["payload_bytes"].as_u64().unwrap(), payload);
    }

    // The table: one line per chunk with its id, state, tag and records, then the totals.
    let ls = ferry_buffer(&["ls"], &dir);
    assert_eq!(ls.status.code(), Some(0));
    let table = text(&ls.stdout);
    for (tag, c) in &chunks {
        let line = table
            .lines()
            .find(|l| l.starts_with(c["id"].as_str().unwrap()))
            .unwrap_or_else(|| panic!("no line for {tag}: {table}"));
        assert!(line.contains(c["state"].as_str().unwrap()), "{line}");
        assert!(line.contains(&format!("tag={tag}")), "{line}");
        assert!(line.contains(&format!(" {} ", c["records"])), "{line}");
    }
    assert!(
        table.contains("3 chunks (2 staged, 1 queued, 0 quarantined, 0 damaged)")
            && table.contains(&format!("{} records", A_BATCHES * A_BATCH + 30 + 20)),
        "{table}"
    );
}

#[test]
fn verify_names_the_chunk_file_and_the_append_offset_of_a_flipped_payload_byte() {
    let fx = fixture();
    let dir = fx.copy("flipped");
    let (payload, at) = flip_a_byte(&dir);
    let out = ferry_buffer(&["verify"], &dir);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let line = report
        .lines()
        .find(|l| l.contains("crc32c mismatch"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(
        line.starts_with(&format!("{}: offset ", payload.display())),
        "{line}"
    );
    assert!(line.contains("damage"), "{line}");
    let start = number_after(line, "offset ");
    let end = number_after(line, &format!("payload bytes {start}.."));
    assert!(start <= at && at < end, "byte {at} outside {line}");
    assert!(line.contains(&format!("{A_BATCH} records")), "{line}");
    assert_eq!(report.matches("crc32c mismatch").count(), 1, "{report}");
    // ls reads journals only: the chunk still looks whole there.
    assert_eq!(chunk_of(&dir, "tool.a")["state"], "staged");
}

#[test]
fn verify_reports_a_torn_journal_tail_with_the_journal_file_and_offset() {
    let fx = fixture();
    let dir = fx.copy("torn");
    let b = chunk_of(&dir, "tool.b");
    let journal = PathBuf::from(b["journal"].as_str().unwrap());
    let len = std::fs::metadata(&journal).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&journal)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    let out = ferry_buffer(&["verify"], &dir);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    let expected = format!(
        "{}: offset {}: torn tail: torn journal tail: a partial record of 27 bytes",
        journal.display(),
        len - 32
    );
    assert!(report.contains(&expected), "{expected:?} not in:\n{report}");
    assert!(
        report.contains("payload bytes past the last append"),
        "{report}"
    );
    // Only that chunk has problems; it lost only its last (never committed) append.
    let payload = b["payload"].as_str().unwrap();
    for line in report.lines().filter(|l| l.contains(": offset ")) {
        assert!(
            line.starts_with(&journal.display().to_string()) || line.starts_with(payload),
            "{line}"
        );
    }
    let b = chunk_of(&dir, "tool.b");
    assert_eq!(
        (b["records"].as_u64(), b["state"].as_str()),
        (Some(20), Some("staged"))
    );
}

#[test]
fn salvage_to_json_lines_recovers_every_event_but_those_of_the_damaged_append() {
    salvage_to_json_lines(&fixture());
}

#[test]
fn salvage_of_a_gzip_chunk_decompresses_every_intact_append() {
    let fx = fixture_compressed("gzip");
    assert_eq!(chunk_of(&fx.buf(), "tool.a")["gzip"], true);
    salvage_to_json_lines(&fx);
}

/// Flips a byte of `tool.a`, salvages it as JSON lines and checks every event against what
/// was sent.
fn salvage_to_json_lines(fx: &Fixture) {
    let dir = fx.copy("flipped");
    flip_a_byte(&dir);
    let verify = text(&ferry_buffer(&["verify"], &dir).stdout);
    let damaged = number_after(&verify, "append ");
    let id = chunk_of(&dir, "tool.a")["id"].as_str().unwrap().to_string();
    let out_file = fx.dir.path().join("a.jsonl");
    let out = ferry_buffer(
        &["salvage", &id, "--json-lines", out_file.to_str().unwrap()],
        &dir,
    );
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}{}", text(&out.stderr));
    assert!(
        report.contains(&format!(
            "appends: {} recovered ({} records), 1 skipped ({A_BATCH} records)",
            A_BATCHES - 1,
            (A_BATCHES - 1) * A_BATCH
        )),
        "{report}"
    );
    assert!(report.contains("crc32c mismatch"), "{report}");

    let lines = std::fs::read_to_string(&out_file).unwrap();
    let mut seqs = BTreeSet::new();
    for line in lines.lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["tag"], "tool.a", "{line}");
        let seq = v["record"]["seq"].as_u64().unwrap();
        assert_eq!(v["record"]["pad"], "x".repeat(PAD), "{line}");
        assert_eq!(v["record"].as_object().unwrap().len(), 2, "{line}");
        assert_eq!(
            v["time"].as_f64().unwrap(),
            1_700_000_000.0 + seq as f64,
            "{line}"
        );
        assert!(seqs.insert(seq), "seq {seq} twice");
    }
    let lost: BTreeSet<u64> = (damaged * A_BATCH..(damaged + 1) * A_BATCH).collect();
    let expected: BTreeSet<u64> = (0..A_BATCHES * A_BATCH)
        .filter(|s| !lost.contains(s))
        .collect();
    assert_eq!(seqs, expected, "every event but those of append {damaged}");

    // The output file is never overwritten.
    let again = ferry_buffer(
        &["salvage", &id, "--json-lines", out_file.to_str().unwrap()],
        &dir,
    );
    assert_eq!(again.status.code(), Some(2));
    assert!(
        text(&again.stderr).contains("exists already"),
        "{}",
        text(&again.stderr)
    );
}

#[test]
fn salvage_into_the_buffer_is_delivered_by_the_next_ferry_exactly_once() {
    let fx = fixture();
    let dir = fx.copy("flipped");
    flip_a_byte(&dir);
    let verify = text(&ferry_buffer(&["verify"], &dir).stdout);
    let damaged = number_after(&verify, "append ");
    let id = chunk_of(&dir, "tool.a")["id"].as_str().unwrap().to_string();
    // An intact live chunk is refused: ferry sends it anyway.
    let b = chunk_of(&dir, "tool.b")["id"].as_str().unwrap().to_string();
    let refused = ferry_buffer(&["salvage", &b, "--into", dir.to_str().unwrap()], &dir);
    assert_eq!(refused.status.code(), Some(2));
    assert!(text(&refused.stderr).contains("is live and not damaged"));

    let out = ferry_buffer(&["salvage", &id, "--into", dir.to_str().unwrap()], &dir);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}{}", text(&out.stderr));
    let salvaged_events = (A_BATCHES - 1) * A_BATCH;
    assert!(
        report.contains(&format!("wrote {salvaged_events} events into")),
        "{report}"
    );
    let after = chunks_by_tag(&dir);
    let a_chunks: Vec<&str> = after
        .iter()
        .filter(|(t, _)| t == "tool.a")
        .map(|(_, c)| c["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        a_chunks,
        vec!["queued", "queued"],
        "the damaged chunk and the salvaged one"
    );

    // A ferry that can deliver (stdout) starts on the directory.
    let port = free_port();
    let conf = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n\
         \x20 <buffer>\n    @type file\n    path {}\n    flush_interval 1s\n    retry_wait 1s\n  </buffer>\n</match>\n",
        dir.display()
    );
    let ferry = Ferry::start(&conf, port);
    let expected: Vec<u64> = (0..A_BATCHES * A_BATCH)
        .filter(|s| s / A_BATCH != damaged)
        .chain(B_FIRST..B_FIRST + 30)
        .chain(Q_FIRST..Q_FIRST + 20)
        .collect();
    let lines = ferry.stdout_lines(expected.len(), Duration::from_secs(60));
    let mut delivered = seqs_of(&lines);
    thread::sleep(Duration::from_secs(2));
    delivered.extend(seqs_of(&ferry.stdout.try_iter().collect::<Vec<_>>()));
    delivered.sort();
    assert_eq!(
        delivered, expected,
        "each intact event once, none of the damaged append"
    );
    let mut log = Vec::new();
    ferry.wait_stderr("quarantine", Duration::from_secs(10), &mut log);
    drop(ferry);
    let quarantined: Vec<String> = chunks_by_tag(&dir)
        .into_iter()
        .filter(|(_, c)| c["state"] == "quarantined")
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        quarantined,
        vec!["tool.a".to_string()],
        "the damaged original"
    );
}

#[test]
fn every_command_refuses_a_directory_in_use_and_ls_and_verify_create_no_file() {
    let fx = fixture();
    let dir = fx.copy("busy");
    let id = chunk_of(&dir, "tool.a")["id"].as_str().unwrap().to_string();
    let port = free_port();
    let ferry = Ferry::start(&forwarder_config(port, free_port(), &dir, "text"), port);
    let busy = format!(
        "{} is in use by a running ferry (lock buffer.lock held); stop it first",
        dir.display()
    );
    let out_file = fx.dir.path().join("never.jsonl");
    for args in [
        vec!["ls"],
        vec!["verify"],
        vec!["salvage", &id, "--json-lines", out_file.to_str().unwrap()],
        vec!["salvage", &id, "--into", dir.to_str().unwrap()],
    ] {
        let out = ferry_buffer(&args, &dir);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            text(&out.stderr).contains(&busy),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(!out_file.exists());
    stop(ferry);

    // Without a lock file (it is removed), ls and verify read and write nothing.
    let dir = fx.copy("untouched");
    std::fs::remove_file(dir.join("buffer.lock")).unwrap();
    let before = snapshot(&dir);
    for cmd in ["ls", "verify"] {
        let out = ferry_buffer(&[cmd], &dir);
        assert_eq!(out.status.code(), Some(0), "{cmd}: {}", text(&out.stderr));
    }
    assert_eq!(before, snapshot(&dir), "files changed or created");
    assert!(!dir.join("buffer.lock").exists());
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}
