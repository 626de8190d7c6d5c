//! The file output end to end: real clients into a real ferry process, events landing in the
//! right hourly files, every file complete and parseable, every event counted; and a copy
//! whose second store cannot write keeping the first store's files up to date.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{AckedSender, Ferry, free_port, metric, metrics, python, run_python, signal};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

/// Every file under `dir` whose name does not start with `.` (temporary files do).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else if !e.file_name().to_string_lossy().starts_with('.') {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn hidden_files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(hidden_files_under(&p));
        } else if e.file_name().to_string_lossy().starts_with('.') {
            out.push(p);
        }
    }
    out
}

/// `YYYYMMDDHH` of a unix time.
fn hour_of(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    // Civil date from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}{:02}", secs % 86_400 / 3600)
}

/// One event read back from a file.
#[derive(Debug)]
struct Event {
    file: PathBuf,
    tag: String,
    time: u64,
    seq: u64,
}

fn text_of(path: &Path) -> Result<String, String> {
    let mut text = String::new();
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    if path.extension().is_some_and(|e| e == "gz") {
        flate2::read::MultiGzDecoder::new(file)
            .read_to_string(&mut text)
            .map_err(|e| format!("{}: {e}", path.display()))?;
    } else {
        std::io::BufReader::new(file)
            .read_to_string(&mut text)
            .map_err(|e| e.to_string())?;
    }
    Ok(text)
}

/// Parses an out_file line: `2023-11-14T22:13:20+0000<TAB>tag<TAB>{json}`.
fn out_file_line(file: &Path, line: &str) -> Result<Event, String> {
    let mut cols = line.splitn(3, '\t');
    let (Some(time), Some(tag), Some(json)) = (cols.next(), cols.next(), cols.next()) else {
        return Err(format!("{}: not three columns: {line}", file.display()));
    };
    let v: serde_json::Value = serde_json::from_str(json).map_err(|e| format!("{e}: {line}"))?;
    let hour = time.get(..13).unwrap_or("").replace(['-', 'T'], "");
    let base: u64 = v["t"].as_u64().ok_or("no t")?;
    if hour != hour_of(base) || !time.ends_with("+0000") {
        return Err(format!("time column {time} is not the event time {base}"));
    }
    Ok(Event {
        file: file.to_path_buf(),
        tag: tag.to_string(),
        time: base,
        seq: v["seq"].as_u64().ok_or("no seq")?,
    })
}

/// Parses a json line with injected `tag` and `time`.
fn json_line(file: &Path, line: &str) -> Result<Event, String> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
    Ok(Event {
        file: file.to_path_buf(),
        tag: v["tag"].as_str().ok_or("no tag")?.to_string(),
        time: v["time"].as_u64().ok_or("no time")?,
        seq: v["seq"].as_u64().ok_or("no seq")?,
    })
}

fn read_all(
    dir: &Path,
    parse: fn(&Path, &str) -> Result<Event, String>,
) -> Result<Vec<Event>, String> {
    let mut out = Vec::new();
    for f in files_under(dir) {
        for line in text_of(&f)?.lines() {
            out.push(parse(&f, line)?);
        }
    }
    Ok(out)
}

fn wait_for(what: &str, timeout: Duration, ferry: &Ferry, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}; stderr: {:?}",
            ferry.stderr_so_far()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

const SLICE_START: u64 = 1_700_000_000 - 1_700_000_000 % 3600;
const HOURS: u64 = 5;
const PER_TAG: u64 = 250;

#[test]
fn python_client_events_land_in_complete_hourly_files_plain_and_gzip() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let buf = dir.path().join("buf");
    let port = free_port();
    let conf = format!(
        "<source>\n@type forward\nbind 127.0.0.1\nport {port}\n</source>\n\
         <match plain.**>\n@type file\npath {out}/plain/${{tag}}/events\n\
         <buffer tag,time>\n@type file\npath {buf}/plain\ntimekey 1h\nflush_mode interval\n\
         flush_interval 1s\n</buffer>\n</match>\n\
         <match gz.**>\n@type file\npath {out}/gz/events.*.jsonl\ncompress gzip\nappend true\n\
         <format>\n@type json\n</format>\n<inject>\ntag_key tag\ntime_key time\ntime_type unixtime\n</inject>\n\
         <buffer time>\n@type file\npath {buf}/gz\ntimekey 1h\ntimekey_wait 0s\n</buffer>\n</match>\n",
        out = out.display(),
        buf = buf.display()
    );
    let ferry = Ferry::start(&conf, port);
    let script = format!(
        r#"
import sys
from fluent import sender
port = int(sys.argv[1])
senders = {{p: sender.FluentSender(p, host='127.0.0.1', port=port) for p in ('plain', 'gz')}}
seq = 0
for i in range({PER_TAG}):
    for prefix in ('plain', 'gz'):
        for label in ('a', 'b'):
            t = {SLICE_START} + (seq * 7919) % ({HOURS} * 3600)
            ok = senders[prefix].emit_with_time(label, t, {{'seq': seq, 't': t, 'pad': 'x' * (seq % 50)}})
            assert ok, senders[prefix].last_error
            seq += 1
for s in senders.values():
    s.close()
print(seq)
"#
    );
    let sent: u64 = run_python(&py, &script, &[&port.to_string()])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(sent, PER_TAG * 4);

    // Wait until both outputs hold every event (files may be mid-append while this polls).
    let plain_dir = out.join("plain");
    let gz_dir = out.join("gz");
    wait_for(
        "all events in files",
        Duration::from_secs(60),
        &ferry,
        || {
            let p = read_all(&plain_dir, out_file_line).map_or(0, |v| v.len());
            let g = read_all(&gz_dir, json_line).map_or(0, |v| v.len());
            p + g >= sent as usize
        },
    );
    signal(ferry.child.id(), "TERM");
    let mut ferry = ferry;
    ferry.child.wait().unwrap();

    // Now strictly: every file parses, every line is in the file of its hour and tag.
    let plain = read_all(&plain_dir, out_file_line).unwrap();
    let gz = read_all(&gz_dir, json_line).unwrap();
    let mut seen = BTreeMap::new();
    for e in plain.iter().chain(&gz) {
        *seen.entry(e.seq).or_insert(0) += 1;
        let name = e.file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.contains(&hour_of(e.time)),
            "{name} holds an event of {}",
            e.time
        );
    }
    for e in &plain {
        let tag_dir = e
            .file
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy();
        assert_eq!(tag_dir, e.tag);
        assert!(e.tag.starts_with("plain."));
        let name = e.file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("events.") && name.ends_with(".log"),
            "{name}"
        );
    }
    for e in &gz {
        assert!(e.tag.starts_with("gz."));
        let name = e.file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.ends_with(".jsonl.gz") && !name.contains('_'),
            "append: one file per hour: {name}"
        );
    }
    assert_eq!(seen.len() as u64, sent, "every event is in a file");
    assert!(seen.values().all(|n| *n == 1), "no event is written twice");
    let gz_files = files_under(&gz_dir);
    assert_eq!(gz_files.len() as u64, HOURS, "{gz_files:?}");
    assert!(files_under(&plain_dir).len() as u64 >= 2 * HOURS);
    assert!(
        hidden_files_under(&out).is_empty(),
        "no temporary file is left"
    );
    eprintln!(
        "{sent} events from fluent-logger: {} plain files, {} gzip files, none lost, none twice",
        files_under(&plain_dir).len(),
        gz_files.len()
    );
}

#[test]
fn a_copy_store_that_cannot_write_does_not_hold_back_the_other_store() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("good");
    let buf = dir.path().join("buf");
    // A regular file where the broken store wants a directory: no process, root included,
    // can create files under it.
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let port = free_port();
    let conf = format!(
        "<source>\n@type forward\nbind 127.0.0.1\nport {port}\n</source>\n\
         <match **>\n@type copy\n\
         <store>\n@type file\n@id good\npath {out}/events\n<format>\n@type json\n</format>\n\
         <buffer time>\n@type file\npath {buf}/good\ntimekey 1h\ntimekey_wait 0s\n</buffer>\n</store>\n\
         <store>\n@type file\n@id broken\npath {blocker}/sub/events\n\
         <buffer time>\n@type file\npath {buf}/broken\ntimekey 1h\ntimekey_wait 0s\nretry_wait 1s\n\
         retry_max_interval 2s\n</buffer>\n</store>\n</match>\n",
        out = out.display(),
        buf = buf.display(),
        blocker = blocker.display()
    );
    let mut ferry = Ferry::start(&conf, port);
    let mut sender = AckedSender::connect(port).unwrap();
    let count_good = || {
        files_under(&out)
            .iter()
            .map(|f| text_of(f).map_or(0, |t| t.lines().count()))
            .sum::<usize>()
    };
    // Three rounds, each acknowledged, each in its own hours; the good store's files follow.
    for round in 0..3u64 {
        let first = round * 20_000;
        for i in 0..10 {
            let seqs = first + i * 100..first + (i + 1) * 100;
            if let Err(e) = sender.send("copy.test", seqs, 100) {
                panic!("send failed: {e}; {}", ferry.report(port));
            }
        }
        let expected = ((round + 1) * 1000) as usize;
        wait_for(
            "the good store's files to catch up",
            Duration::from_secs(30),
            &ferry,
            || count_good() >= expected,
        );
    }
    assert_eq!(count_good(), 3000);
    let mut stderr = Vec::new();
    wait_for(
        "the broken store to report its retries",
        Duration::from_secs(20),
        &ferry,
        || {
            stderr.extend(ferry.stderr_so_far());
            stderr
                .iter()
                .any(|l| l.contains("temporarily failed to flush") && l.contains("broken"))
        },
    );
    assert!(
        !stderr
            .iter()
            .any(|l| l.contains("temporarily failed") && l.contains("\"good\"")),
        "{stderr:?}"
    );
}

#[test]
fn chunks_the_file_output_cannot_write_end_in_the_secondary_file() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-directory");
    std::fs::write(&blocker, b"").unwrap();
    let dump = dir.path().join("dump");
    let port = free_port();
    let conf = format!(
        "<source>\n@type forward\nbind 127.0.0.1\nport {port}\n</source>\n\
         <match **>\n@type file\n@id archive\npath {blocker}/events\n\
         <buffer time>\n@type file\npath {buf}\ntimekey 1h\ntimekey_wait 0s\nretry_wait 200ms\n\
         retry_max_times 2\nretry_randomize false\n</buffer>\n\
         <secondary>\n@type secondary_file\ndirectory {dump}/${{tag}}\n</secondary>\n</match>\n",
        blocker = blocker.display(),
        buf = dir.path().join("buf").display(),
        dump = dump.display()
    );
    let ferry = Ferry::start(&conf, port);
    let mut sender = AckedSender::connect(port).unwrap();
    sender.send("to.secondary", 0..200, 50).unwrap();
    wait_for(
        "the secondary file",
        Duration::from_secs(30),
        &ferry,
        || !files_under(&dump).is_empty(),
    );
    let files = files_under(&dump);
    assert!(
        files
            .iter()
            .all(|f| f.starts_with(dump.join("to.secondary"))),
        "{files:?}"
    );
    assert!(
        files[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("dump.bin.")
    );
    let mut seqs = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        for entry in ferry_proto::entries::iter(&bytes) {
            let record = entry.unwrap().record;
            let (v, _) = ferry_proto::msgpack::Value::decode(record).unwrap();
            match v.get("seq") {
                Some(ferry_proto::msgpack::Value::UInt(s)) => seqs.push(*s),
                other => panic!("no seq: {other:?}"),
            }
        }
    }
    seqs.sort();
    assert_eq!(
        seqs,
        (0..200).collect::<Vec<_>>(),
        "the dump holds every event, as msgpack"
    );
}

#[test]
fn a_configuration_with_every_routing_feature_passes_dry_run() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("ferry.conf");
    let text = format!(
        r#"
<source>
  @type forward
  port 24224
</source>
<source>
  @type forward
  port 24225
  @label @INGEST
</source>
<filter app.**>
  @type grep
  <exclude>
    key level
    pattern /^debug$/i
  </exclude>
</filter>
<match app.**>
  @type copy
  copy_mode deep
  <store>
    @type file
    path {d}/archive/${{tag}}/app
    compress gzip
    max_file_size 1g
    <buffer tag,time>
      @type file
      path {d}/buf/archive
      timekey 1h
    </buffer>
    <secondary>
      @type secondary_file
      directory {d}/failed/${{tag}}
    </secondary>
  </store>
  <store ignore_error>
    @type relabel
    @label @INGEST
  </store>
</match>
<label @INGEST>
  <filter **>
    @type parser
    key_name log
    reserve_data true
    <parse>
      @type regexp
      expression /^(?<host>\S+) (?<code>\d+)$/
      types code:integer
    </parse>
  </filter>
  <filter **>
    @type record_transformer
    <record>
      host ${{hostname}}
      service ${{tag_parts[-1]}}
    </record>
  </filter>
  <match **>
    @type stdout
  </match>
</label>
<label @ERROR>
  <match **>
    @type file
    path {d}/errors/app
    append true
    <format>
      @type json
    </format>
    <buffer time>
      @type memory
      timekey 1d
    </buffer>
  </match>
</label>
"#,
        d = dir.path().display()
    );
    std::fs::write(&conf, text).unwrap();
    let out = std::process::Command::new(common::ferry_bin())
        .arg("--dry-run")
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("is valid"));
}

#[test]
fn chunks_queued_for_one_file_are_archived_together_with_one_sync() {
    const TAGS: u64 = 64;
    const PER: u64 = 50;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let port = free_port();
    let admin = free_port();
    // A chunk per tag, all bound for one file; nothing is due before SIGUSR1 queues them all.
    let conf = format!(
        "<source>\n@type forward\nbind 127.0.0.1\nport {port}\n</source>\n\
         <source>\n@type prometheus\nbind 127.0.0.1\nport {admin}\n</source>\n\
         <match app.**>\n@type file\n@id archive\npath {out}/events\nappend true\n\
         <format>\n@type json\n</format>\n<inject>\ntag_key tag\n</inject>\n\
         <buffer tag>\n@type memory\nflush_mode interval\nflush_interval 1h\n</buffer>\n</match>\n",
        out = out.display()
    );
    let ferry = Ferry::start(&conf, port);
    let mut client = AckedSender::connect(port).unwrap();
    for t in 0..TAGS {
        client
            .send(&format!("app.t{t}"), t * PER..(t + 1) * PER, 20)
            .unwrap();
    }
    signal(ferry.child.id(), "USR1");
    let events = || {
        let text = files_under(&out)
            .iter()
            .map(|f| text_of(f).unwrap_or_default())
            .collect::<String>();
        text.lines().map(String::from).collect::<Vec<_>>()
    };
    wait_for(
        "every event in the archive",
        Duration::from_secs(30),
        &ferry,
        || events().len() as u64 >= TAGS * PER,
    );
    let m = metrics(admin);
    let written = metric(&m, "fluentd_output_status_write_count{");
    let syncs = metric(&m, "ferry_file_output_syncs_total{");
    let mut seqs: Vec<u64> = events()
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let tag = v["tag"].as_str().unwrap();
            let seq = v["seq"].as_u64().unwrap();
            assert_eq!(tag, format!("app.t{}", seq / PER), "{l}");
            seq
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..TAGS * PER).collect::<Vec<_>>(), "each event once");
    assert_eq!(files_under(&out).len(), 1, "one file");
    assert_eq!(written, TAGS as f64, "a chunk per tag");
    // 16 chunks to a group: 4 syncs of the file and one of its new directory entry, where
    // chunks written one by one cost 64.
    assert!(
        syncs <= (TAGS / 8) as f64,
        "{syncs} syncs for {written} chunks"
    );
    eprintln!("{written} chunks archived with {syncs} syncs");
}
