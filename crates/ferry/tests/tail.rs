//! The tail input as a real process: rotations of every kind, symlinks, deletion, restarts,
//! long lines, multiline, parsers, and the polling fallback. Lines are numbered so each test
//! checks exactly which arrived, how often, and in which order.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod kubelet_support;

use common::{Ferry, collect, signal};
use kubelet_support::gzip;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

fn conf(pattern: &str, pos: &Path, extra: &str, parse: &str) -> String {
    format!(
        "<source>\n  @type tail\n  path {pattern}\n  pos_file {}\n  tag t.*\n  read_from_head true\n  rotate_wait 1s\n  refresh_interval 1s\n{extra}\n  <parse>\n{parse}\n  </parse>\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n",
        pos.display()
    )
}

const NONE: &str = "    @type none";

/// Appends lines `L<n>` for `seqs` to `path` (one write).
fn append(path: &Path, seqs: std::ops::Range<u64>) {
    let mut text = String::new();
    for n in seqs {
        text.push_str(&format!("L{n}\n"));
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn records(ferry: &Ferry, n: usize) -> Vec<serde_json::Value> {
    collect(&ferry.stdout, n, Duration::from_secs(20), "stdout")
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The numbers of `n` `L<n>` messages.
fn seqs(ferry: &Ferry, n: usize) -> Vec<u64> {
    records(ferry, n)
        .iter()
        .map(|r| {
            let m = r["message"].as_str().unwrap();
            m.trim_start_matches('L').parse().unwrap()
        })
        .collect()
}

/// Fails if any stdout line arrives within `wait`.
fn assert_quiet(ferry: &Ferry, wait: Duration) {
    thread::sleep(wait);
    let extra: Vec<String> = ferry.stdout.try_iter().collect();
    assert!(extra.is_empty(), "unexpected extra events: {extra:?}");
}

fn wait_log(ferry: &Ferry, needle: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        seen.extend(ferry.stderr_so_far());
        if seen.iter().any(|l| l.contains(needle)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no log line with {needle:?}: {seen:#?}"
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn range(a: u64, b: u64) -> Vec<u64> {
    (a..b).collect()
}

/// Starts ferry on `config`, waits for `L0`..`L<n>` and SIGKILLs it once their position is
/// written.
fn read_then_kill(config: &str, n: u64) {
    let ferry = Ferry::start_logged(config, &[]);
    assert_eq!(seqs(&ferry, n as usize), range(0, n));
    thread::sleep(Duration::from_millis(300)); // let the position be written
    signal(ferry.child.id(), "KILL");
}

struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Self {
        Self {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn p(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }
}

#[test]
fn rename_rotation_finishes_the_old_file_then_reads_the_new_one() {
    let d = Dir::new();
    let log = d.p("app.log");
    append(&log, 0..100);
    let ferry = Ferry::start_logged(
        &conf(&log.display().to_string(), &d.p("pos"), "", NONE),
        &[],
    );
    assert_eq!(seqs(&ferry, 100), range(0, 100));
    std::fs::rename(&log, d.p("app.log.1")).unwrap();
    append(&d.p("app.log.1"), 100..150); // the writer has not reopened yet
    append(&log, 150..250);
    assert_eq!(seqs(&ferry, 150), range(100, 250));
    assert_quiet(&ferry, Duration::from_millis(1500));
}

#[test]
fn copytruncate_restarts_at_zero_even_when_the_file_regrew_past_the_old_offset() {
    let d = Dir::new();
    let log = d.p("app.log");
    append(&log, 0..100);
    let ferry = Ferry::start_logged(
        &conf(&log.display().to_string(), &d.p("pos"), "", NONE),
        &[],
    );
    assert_eq!(seqs(&ferry, 100), range(0, 100));
    std::fs::copy(&log, d.p("app.log.1")).unwrap();
    // Truncate and refill beyond the old offset before ferry looks again.
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(0).unwrap();
    drop(f);
    append(&log, 1000..1300);
    assert_eq!(seqs(&ferry, 300), range(1000, 1300));
    assert_quiet(&ferry, Duration::from_millis(1000));
    let mut logs = Vec::new();
    wait_log(&ferry, "was truncated", &mut logs);
}

/// Writes a ferry position line for `path` with the given inode, offset and fingerprint.
fn pos_line(path: &Path, offset: u64, fp_len: u16, fp_hash: u64) -> String {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap();
    format!(
        "{}\t{offset:016x}\t{:016x}\t{:016x}\t{fp_len:04x}\t{fp_hash:016x}\n",
        path.display(),
        m.ino(),
        m.dev()
    )
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

#[test]
fn a_recorded_inode_with_other_first_bytes_is_a_new_file_read_from_the_start() {
    let d = Dir::new();
    let log = d.p("app.log");
    append(&log, 0..50);
    // The position of a former file that had this inode: other content, offset mid-file.
    std::fs::write(
        d.p("pos"),
        pos_line(&log, 100, 20, fnv(b"a different file.....")),
    )
    .unwrap();
    let mut config = conf(&log.display().to_string(), &d.p("pos"), "", NONE);
    config = config.replace("read_from_head true", "read_from_head false");
    let ferry = Ferry::start_logged(&config, &[]);
    assert_eq!(seqs(&ferry, 50), range(0, 50));
    let mut logs = Vec::new();
    wait_log(&ferry, "reused inode", &mut logs);
}

#[test]
fn a_recorded_position_with_the_same_first_bytes_is_resumed() {
    let d = Dir::new();
    let log = d.p("app.log");
    append(&log, 0..50);
    let content = std::fs::read(&log).unwrap();
    let offset = content.len() as u64;
    let head = &content[..content.len().min(256)];
    let tenth = content
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(9)
        .unwrap()
        .0 as u64
        + 1;
    assert!(offset > tenth);
    std::fs::write(
        d.p("pos"),
        pos_line(&log, tenth, head.len() as u16, fnv(head)),
    )
    .unwrap();
    let ferry = Ferry::start_logged(
        &conf(&log.display().to_string(), &d.p("pos"), "", NONE),
        &[],
    );
    assert_eq!(seqs(&ferry, 40), range(10, 50));
    assert_quiet(&ferry, Duration::from_millis(800));
}

#[test]
fn fluentd_position_files_are_migrated() {
    use std::os::unix::fs::MetadataExt;
    let d = Dir::new();
    let log = d.p("app.log");
    append(&log, 0..30);
    let ino = std::fs::metadata(&log).unwrap().ino();
    // L0..L9 are 3 bytes each, with their newline.
    std::fs::write(
        d.p("pos"),
        format!("{}\t{:016x}\t{ino:016x}\n", log.display(), 30),
    )
    .unwrap();
    let ferry = Ferry::start_logged(
        &conf(&log.display().to_string(), &d.p("pos"), "", NONE),
        &[],
    );
    assert_eq!(seqs(&ferry, 20), range(10, 30));
    let mut logs = Vec::new();
    wait_log(&ferry, "Fluentd's format", &mut logs);
}

#[test]
fn symlinked_container_logs_follow_the_runtime_rotation_and_removal() {
    let d = Dir::new();
    std::fs::create_dir(d.p("pods")).unwrap();
    std::fs::create_dir(d.p("containers")).unwrap();
    let target = d.p("pods/0.log");
    append(&target, 0..20);
    let link = d.p("containers/web_ns_app-abc.log");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let pattern = format!("{}/*.log", d.p("containers").display());
    let ferry = Ferry::start_logged(&conf(&pattern, &d.p("pos"), "", NONE), &[]);
    let first = records(&ferry, 20);
    assert_eq!(
        first[0]["message"], "L0",
        "records carry the line: {first:?}"
    );
    // kubelet's rotation: rename the target, create a new one under the same name.
    std::fs::rename(&target, d.p("pods/0.log.20240101-000000")).unwrap();
    append(&d.p("pods/0.log.20240101-000000"), 20..30);
    append(&target, 30..60);
    assert_eq!(seqs(&ferry, 40), range(20, 60));
    // The pod goes away: the link is removed, then the file; what was written is still read.
    append(&target, 60..70);
    std::fs::remove_file(&link).unwrap();
    assert_eq!(seqs(&ferry, 10), range(60, 70));
    assert_quiet(&ferry, Duration::from_millis(1500));
}

#[test]
fn container_logs_get_their_pods_metadata_from_the_tag_and_the_link() {
    // A directory whose path a tag can spell: no name starting with a dot.
    let d = tempfile::Builder::new().prefix("k8s").tempdir().unwrap();
    let p = |name: &str| d.path().join(name);
    let (id, uid) = ("ab12".repeat(16), "0c9e64ab-5f3d-4e21-9a7b-6d8c2e1f0a3b");
    let pod_dir = p(&format!("var/log/pods/shop_web-7f9c_{uid}/app"));
    std::fs::create_dir_all(&pod_dir).unwrap();
    std::fs::create_dir_all(p("var/log/containers")).unwrap();
    append(&pod_dir.join("0.log"), 0..2);
    std::os::unix::fs::symlink(
        pod_dir.join("0.log"),
        p(&format!("var/log/containers/web-7f9c_shop_app-{id}.log")),
    )
    .unwrap();
    let pattern = format!("{}/*.log", p("var/log/containers").display());
    let config = conf(&pattern, &p("pos"), "", NONE)
        .replace("tag t.*", "tag kubernetes.*")
        .replace(
            "<match **>",
            "<filter kubernetes.**>\n  @type kubernetes_metadata\n</filter>\n<match **>",
        );
    let ferry = Ferry::start_logged(&config, &[]);
    for (n, r) in records(&ferry, 2).iter().enumerate() {
        assert_eq!(r["message"], format!("L{n}"), "{r}");
        assert_eq!(
            r["docker"],
            serde_json::json!({ "container_id": id }),
            "{r}"
        );
        assert_eq!(
            r["kubernetes"],
            serde_json::json!({
                "container_name": "app",
                "namespace_name": "shop",
                "pod_name": "web-7f9c",
                "pod_id": uid,
            }),
            "{r}"
        );
    }
}

#[test]
fn the_tag_star_is_the_path_with_dots() {
    let d = Dir::new();
    let log = d.p("app.log");
    append(&log, 0..1);
    let config = conf(&log.display().to_string(), &d.p("pos"), "", NONE).replace(
        "<format>\n    @type json\n  </format>",
        "<format>\n    @type stdout\n  </format>",
    );
    let ferry = Ferry::start_logged(&config, &[]);
    let line = collect(&ferry.stdout, 1, Duration::from_secs(20), "stdout").remove(0);
    // Fluentd's rule: `/` becomes `.`, runs of dots collapse, no leading dot.
    let mut flat = log.display().to_string().replace('/', ".");
    while flat.contains("..") {
        flat = flat.replace("..", ".");
    }
    let tag = format!("t.{}", flat.trim_start_matches('.'));
    assert!(
        line.contains(&format!(" {tag}: {{\"message\":\"L0\"}}")),
        "{line}"
    );
}

#[test]
fn a_file_deleted_while_a_writer_holds_it_is_read_to_its_end_then_closed() {
    let d = Dir::new();
    let log = d.p("app.log");
    let mut writer = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    writer.write_all(b"L0\nL1\n").unwrap();
    let ferry = Ferry::start_logged(
        &conf(&log.display().to_string(), &d.p("pos"), "", NONE),
        &[],
    );
    assert_eq!(seqs(&ferry, 2), vec![0, 1]);
    std::fs::remove_file(&log).unwrap();
    writer.write_all(b"L2\nL3\n").unwrap();
    assert_eq!(seqs(&ferry, 2), vec![2, 3]);
    let mut logs = Vec::new();
    wait_log(&ferry, "(deleted)", &mut logs);
    // The position table is written after the close is logged: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut pos = std::fs::read_to_string(d.p("pos")).unwrap_or_default();
    while pos.contains("app.log") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        pos = std::fs::read_to_string(d.p("pos")).unwrap_or_default();
    }
    assert!(
        !pos.contains("app.log"),
        "a deleted file leaves no position: {pos}"
    );
}

#[test]
fn rotations_while_stopped_are_finished_oldest_first_then_the_new_file() {
    let d = Dir::new();
    let log = d.p("app.log");
    append(&log, 0..100);
    let pattern = format!("{}*", log.display());
    let config = conf(&pattern, &d.p("pos"), "", NONE);
    read_then_kill(&config, 100);
    // Two rotations while ferry is down, each leaving lines behind.
    append(&log, 100..150);
    std::fs::rename(&log, d.p("app.log.1")).unwrap();
    // Rotations are apart in time: file times have a coarse clock.
    thread::sleep(Duration::from_millis(50));
    append(&log, 150..200);
    thread::sleep(Duration::from_millis(50));
    std::fs::rename(d.p("app.log.1"), d.p("app.log.2")).unwrap();
    std::fs::rename(&log, d.p("app.log.1")).unwrap();
    thread::sleep(Duration::from_millis(50));
    append(&log, 200..260);
    let ferry = Ferry::start_logged(&config, &[]);
    assert_eq!(seqs(&ferry, 160), range(100, 260), "in order, exactly once");
    assert_quiet(&ferry, Duration::from_millis(2500));
}

#[test]
fn a_file_rotated_and_compressed_while_stopped_is_finished_from_its_gzip_copy() {
    let d = Dir::new();
    let log = d.p("app.log");
    append(&log, 0..100);
    let config = conf(&log.display().to_string(), &d.p("pos"), "", NONE);
    read_then_kill(&config, 100);
    // While ferry is down: lines it has not read, two rotations, and the older copy
    // compressed and removed.
    append(&log, 100..150);
    std::fs::rename(&log, d.p("app.log.1")).unwrap();
    thread::sleep(Duration::from_millis(50));
    append(&log, 150..200);
    thread::sleep(Duration::from_millis(50));
    gzip(&d.p("app.log.1"));
    std::fs::rename(&log, d.p("app.log.2")).unwrap();
    thread::sleep(Duration::from_millis(50));
    append(&log, 200..260);
    let ferry = Ferry::start_logged(&config, &[]);
    assert_eq!(seqs(&ferry, 160), range(100, 260), "in order, exactly once");
    let mut logs = Vec::new();
    wait_log(
        &ferry,
        "was rotated and compressed while ferry was stopped; finishing",
        &mut logs,
    );
    // Killed again: the compressed copy is not read a second time.
    thread::sleep(Duration::from_millis(300));
    signal(ferry.child.id(), "KILL");
    drop(ferry);
    append(&log, 260..270);
    let ferry = Ferry::start_logged(&config, &[]);
    assert_eq!(seqs(&ferry, 10), range(260, 270));
    assert_quiet(&ferry, Duration::from_millis(2500));
    let left: Vec<_> = std::fs::read_dir(d.tmp.path())
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("unpacked"))
        .collect();
    assert!(left.is_empty(), "scratch files left behind: {left:?}");
}

#[test]
fn a_file_created_and_rotated_between_two_looks_at_its_path_is_read() {
    let d = Dir::new();
    let log = d.p("app.log");
    append(&log, 0..100);
    let config = conf(&log.display().to_string(), &d.p("pos"), "", NONE);
    let ferry = Ferry::start_logged(&config, &[]);
    assert_eq!(seqs(&ferry, 100), range(0, 100));
    // Stopped, ferry cannot look: two rotations meanwhile, the file between them never seen.
    signal(ferry.child.id(), "STOP");
    append(&log, 100..150);
    std::fs::rename(&log, d.p("app.log.1")).unwrap();
    thread::sleep(Duration::from_millis(50));
    append(&log, 150..200);
    thread::sleep(Duration::from_millis(50));
    std::fs::rename(d.p("app.log.1"), d.p("app.log.2")).unwrap();
    std::fs::rename(&log, d.p("app.log.1")).unwrap();
    append(&log, 200..260);
    signal(ferry.child.id(), "CONT");
    assert_eq!(seqs(&ferry, 160), range(100, 260), "in order, exactly once");
    let mut logs = Vec::new();
    wait_log(&ferry, "was rotated before ferry saw it", &mut logs);
    // The rotated files are let go; the oldest is written to afterwards (a writer that still
    // held it), then the path rotates again: the files ferry let go are not read again.
    thread::sleep(Duration::from_millis(2500));
    append(&d.p("app.log.2"), 1000..1001);
    thread::sleep(Duration::from_millis(50));
    std::fs::rename(d.p("app.log.2"), d.p("app.log.3")).unwrap();
    std::fs::rename(d.p("app.log.1"), d.p("app.log.2")).unwrap();
    std::fs::rename(&log, d.p("app.log.1")).unwrap();
    append(&log, 260..270);
    assert_eq!(seqs(&ferry, 10), range(260, 270));
    assert_quiet(&ferry, Duration::from_millis(2500));
}

#[test]
fn sigterm_writes_the_final_positions_so_a_restart_repeats_nothing() {
    let d = Dir::new();
    let log = d.p("app.log");
    append(&log, 0..500);
    let config = conf(&log.display().to_string(), &d.p("pos"), "", NONE);
    let ferry = Ferry::start_logged(&config, &[]);
    assert_eq!(seqs(&ferry, 500), range(0, 500));
    signal(ferry.child.id(), "TERM");
    let mut logs = Vec::new();
    wait_log(&ferry, "ferry stopped", &mut logs);
    drop(ferry);
    append(&log, 500..550);
    let ferry = Ferry::start_logged(&config, &[]);
    assert_eq!(seqs(&ferry, 50), range(500, 550));
    assert_quiet(&ferry, Duration::from_millis(1000));
}

#[test]
fn a_rotation_while_stopped_with_a_narrow_path_finishes_the_renamed_file() {
    let d = Dir::new();
    let log = d.p("app.log");
    append(&log, 0..10);
    let config = conf(&log.display().to_string(), &d.p("pos"), "", NONE);
    let ferry = Ferry::start_logged(&config, &[]);
    assert_eq!(seqs(&ferry, 10), range(0, 10));
    thread::sleep(Duration::from_millis(300));
    signal(ferry.child.id(), "KILL");
    drop(ferry);
    append(&log, 10..20);
    std::fs::rename(&log, d.p("app.log.1")).unwrap();
    append(&log, 20..30);
    let ferry = Ferry::start_logged(&config, &[]);
    assert_eq!(seqs(&ferry, 20), range(10, 30));
    assert_quiet(&ferry, Duration::from_millis(1500));
}

#[test]
fn lines_longer_than_max_line_size_are_skipped_logged_and_the_rest_delivered() {
    let d = Dir::new();
    let log = d.p("app.log");
    let mut content = b"L0\n".to_vec();
    content.extend(std::iter::repeat_n(b'x', 5_000_000));
    content.extend_from_slice(b"\nL1\n");
    content.extend(std::iter::repeat_n(b'y', 2000));
    content.extend_from_slice(b"\nL2\n");
    std::fs::write(&log, &content).unwrap();
    let ferry = Ferry::start_logged(
        &conf(
            &log.display().to_string(),
            &d.p("pos"),
            "  max_line_size 1k",
            NONE,
        ),
        &[],
    );
    assert_eq!(seqs(&ferry, 3), vec![0, 1, 2]);
    let mut logs = Vec::new();
    wait_log(&ferry, "longer than max_line_size", &mut logs);
}

#[test]
fn read_bytes_limit_per_second_paces_reading_without_dropping_lines() {
    let d = Dir::new();
    let log = d.p("app.log");
    append(&log, 1000..5000); // 4000 lines of 6 bytes: 24 kB
    let started = Instant::now();
    let ferry = Ferry::start_logged(
        &conf(
            &log.display().to_string(),
            &d.p("pos"),
            "  read_bytes_limit_per_second 8k\n  read_lines_limit 100",
            NONE,
        ),
        &[],
    );
    assert_eq!(seqs(&ferry, 4000), range(1000, 5000));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "24 kB at 8 kB/s took only {took:?}"
    );
}

#[test]
fn multiline_stack_traces_become_one_event_and_the_last_is_flushed_on_time() {
    let d = Dir::new();
    let log = d.p("app.log");
    std::fs::write(
        &log,
        "2024-01-01 00:00:00 ERROR boom\n  at A.b(A.java:1)\n  at C.d(C.java:2)\n2024-01-01 00:00:01 INFO fine\n",
    )
    .unwrap();
    let parse = "    @type multiline\n    format_firstline /^\\d{4}-\\d{2}-\\d{2}/\n    format1 /^(?<time>\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2}) (?<level>\\w+) (?<message>.*)/\n    time_format %Y-%m-%d %H:%M:%S";
    let ferry = Ferry::start_logged(
        &conf(
            &log.display().to_string(),
            &d.p("pos"),
            "  multiline_flush_interval 1s",
            parse,
        ),
        &[],
    );
    let got = records(&ferry, 2);
    assert_eq!(
        got[0],
        serde_json::json!({"level":"ERROR","message":"boom\n  at A.b(A.java:1)\n  at C.d(C.java:2)"})
    );
    assert_eq!(got[1], serde_json::json!({"level":"INFO","message":"fine"}));
}

#[test]
fn docker_json_lines_with_path_key_and_unmatched_lines() {
    let d = Dir::new();
    let log = d.p("c.log");
    std::fs::write(
        &log,
        "{\"log\":\"hello\\n\",\"stream\":\"stdout\",\"time\":\"2019-05-29T16:58:49.123456789Z\"}\nnot json\n",
    )
    .unwrap();
    let ferry = Ferry::start_logged(
        &conf(
            &log.display().to_string(),
            &d.p("pos"),
            "  path_key path\n  emit_unmatched_lines true",
            "    @type json",
        ),
        &[],
    );
    let got = records(&ferry, 2);
    let path = log.display().to_string();
    assert_eq!(
        got[0],
        serde_json::json!({"log":"hello\n","stream":"stdout","path": path})
    );
    assert_eq!(
        got[1],
        serde_json::json!({"unmatched_line":"not json","path": path})
    );
}

fn polling_fallback(hook: &str, needle: &str) {
    let d = Dir::new();
    let log = d.p("app.log");
    append(&log, 0..10);
    let ferry = Ferry::start_logged(
        &conf(&log.display().to_string(), &d.p("pos"), "", NONE),
        &[("FERRY_TAIL_INOTIFY_FAIL", hook)],
    );
    assert_eq!(seqs(&ferry, 10), range(0, 10));
    let mut logs = Vec::new();
    wait_log(&ferry, needle, &mut logs);
    // Growth and a rotation are still followed, by polling.
    append(&log, 10..20);
    assert_eq!(seqs(&ferry, 10), range(10, 20));
    std::fs::rename(&log, d.p("app.log.1")).unwrap();
    append(&log, 20..30);
    assert_eq!(seqs(&ferry, 10), range(20, 30));
}

#[test]
fn polling_takes_over_when_no_inotify_instance_can_be_had() {
    polling_fallback("init", "fs.inotify.max_user_instances");
}

#[test]
fn polling_takes_over_when_no_inotify_watch_can_be_added() {
    polling_fallback("watch", "fs.inotify.max_user_watches");
}

#[test]
fn a_refusing_output_holds_the_file_back_and_nothing_is_skipped() {
    use std::io::{BufRead, Read};
    use std::process::{Command, Stdio};
    let d = Dir::new();
    let log = d.p("app.log");
    append(&log, 0..30_000);
    let buffer = d.p("buffer");
    let out = |limit: &str| {
        conf(&log.display().to_string(), &d.p("pos"), "  read_lines_limit 100", NONE).replace(
            "  <format>\n    @type json\n  </format>\n",
            &format!(
                "  <format>\n    @type json\n  </format>\n  <buffer>\n    @type file\n    path {}\n    flush_interval 100ms\n    chunk_limit_size 4k\n    total_limit_size {limit}\n    overflow_action throw_exception\n  </buffer>\n",
                buffer.display()
            ),
        )
    };
    // Run 1: nobody reads ferry's stdout, so the output stalls, the buffer fills, and the tail
    // input waits for room.
    std::fs::write(d.p("stalled.conf"), out("16k")).unwrap();
    let mut child = Command::new(common::ferry_bin())
        .arg("-c")
        .arg(d.p("stalled.conf"))
        .env("FERRY_ROOT_DIR", d.p("root"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Nobody reads stdout: once the pipe is full the flusher blocks, and the buffer fills.
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            if line.contains("inputs that can wait (forward, tail) are held") {
                let _ = tx.send(line);
            }
        }
    });
    let refused = rx.recv_timeout(Duration::from_secs(30));
    if refused.is_err() {
        signal(child.id(), "KILL");
    }
    assert!(refused.is_ok(), "the buffer never filled");
    thread::sleep(Duration::from_millis(500));
    signal(child.id(), "KILL");
    let _ = child.wait();
    let mut printed = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut printed)
        .unwrap();
    let mut got: Vec<u64> = printed
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["message"].as_str()?.trim_start_matches('L').parse().ok())
        .collect();
    let pos = std::fs::read_to_string(d.p("pos")).unwrap();
    let offset = u64::from_str_radix(pos.split('\t').nth(1).unwrap(), 16).unwrap();
    assert!(
        offset < std::fs::metadata(&log).unwrap().len(),
        "the position stops at what the buffer took: {pos}"
    );
    // Run 2: with room, what was buffered and the rest of the file all arrive.
    let ferry = Ferry::start_logged(&out("64m"), &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        got.extend(
            ferry
                .stdout
                .try_iter()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
                .filter_map(|v| {
                    v["message"]
                        .as_str()?
                        .trim_start_matches('L')
                        .parse::<u64>()
                        .ok()
                }),
        );
        let mut unique = got.clone();
        unique.sort();
        unique.dedup();
        if unique == range(0, 30_000) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} of 30000 lines arrived",
            unique.len()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_new_file_is_found_while_a_backlog_is_being_read() {
    let d = Dir::new();
    let big = d.p("big.log");
    append(&big, 0..100_000);
    // Ten lines a read: the big file keeps the tail busy for thousands of reads.
    let ferry = Ferry::start_logged(
        &conf(
            &d.p("*.log").display().to_string(),
            &d.p("pos"),
            "  read_lines_limit 10",
            NONE,
        ),
        &[],
    );
    let first = seqs(&ferry, 1);
    assert_eq!(first, vec![0]);
    append(&d.p("new.log"), 1_000_000..1_000_001);
    let rest = seqs(&ferry, 100_000);
    let at = rest
        .iter()
        .position(|s| *s == 1_000_000)
        .expect("the new file's line arrives");
    assert!(
        at < 90_000,
        "at start-up, the new file was found only after {at} lines of the backlog"
    );
    // The same with a backlog that comes while running.
    append(&big, 100_000..200_000);
    assert_eq!(seqs(&ferry, 1), vec![100_000]);
    append(&d.p("newer.log"), 2_000_000..2_000_001);
    let rest = seqs(&ferry, 100_000);
    let at = rest
        .iter()
        .position(|s| *s == 2_000_000)
        .expect("the newer file's line arrives");
    assert!(
        at < 90_000,
        "while running, the new file was found only after {at} lines of the backlog"
    );
}
