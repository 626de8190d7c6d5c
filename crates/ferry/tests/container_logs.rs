//! Container logs on a node laid out by a kubelet simulator (`kubelet_support`): lines the
//! runtime split are joined per stream, stack traces become one event each across parts and
//! across a rotation, `.gz` files are left alone, and a held message survives a SIGKILL.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod kubelet_support;

use common::{Ferry, signal};
use kubelet_support::{Container, Format, agent_sources, check, message, stack_traces};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// A node agent: one tail per runtime format, the route's concat filter with the built-in
/// rules, events printed as JSON lines (with their tag).
fn agent_config(root: &Path, pos: &Path, extra: &str) -> String {
    format!(
        "{}{extra}\n<match kubernetes.**>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    tag_key tag\n  </inject>\n</match>\n",
        agent_sources(root, pos)
    )
}

/// Events printed so far: `(tag, stream, text)`, text without a trailing newline.
fn take(ferry: &Ferry, into: &mut Vec<(String, String, String)>) {
    for line in ferry.stdout.try_iter() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let text = v["message"].as_str().or(v["log"].as_str()).unwrap_or("");
        into.push((
            v["tag"].as_str().unwrap_or("").to_string(),
            v["stream"].as_str().unwrap_or("").to_string(),
            text.strip_suffix('\n').unwrap_or(text).to_string(),
        ));
    }
}

fn wait_for(ferry: &Ferry, got: &mut Vec<(String, String, String)>, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(40);
    while got.len() < n {
        take(ferry, got);
        assert!(
            Instant::now() < deadline,
            "{what}: {} of {n} events arrived: {:#?}\nferry's log:\n{}",
            got.len(),
            got.iter()
                .map(|g| &g.2[..g.2.len().min(120)])
                .collect::<Vec<_>>(),
            ferry.stderr.try_iter().collect::<Vec<_>>().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until every message of `want` arrived (once or more), or fails naming the missing
/// ones with ferry's log.
fn wait_for_all(
    ferry: &Ferry,
    got: &mut Vec<(String, String, String)>,
    want: &[String],
    what: &str,
) -> Vec<String> {
    let mut log = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        take(ferry, got);
        log.extend(ferry.stderr.try_iter());
        let texts: std::collections::BTreeSet<&String> = got.iter().map(|g| &g.2).collect();
        let missing: Vec<&str> = want
            .iter()
            .filter(|w| !texts.contains(w))
            .map(|m| &m[..m.len().min(30)])
            .collect();
        if missing.is_empty() {
            return log;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: missing {missing:?}\n{}",
            log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until ferry follows `n` files (lines written before would be lost to a rotation that
/// came before ferry first saw the file, for any tail).
fn wait_following(ferry: &Ferry, n: usize, log: &mut Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while log
        .iter()
        .filter(|l| l.contains("following tail of"))
        .count()
        < n
    {
        log.extend(ferry.stderr.try_iter());
        assert!(
            Instant::now() < deadline,
            "ferry follows {n} files: {log:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn node(dir: &Path) -> (Container, Container) {
    (
        Container::new(dir, 1, Format::Cri),
        Container::new(dir, 2, Format::Docker),
    )
}

#[test]
fn split_lines_and_stack_traces_arrive_whole_per_stream_across_parts_and_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cri, mut dkr) = node(dir.path());
    let pos = dir.path().join("pos");
    let ferry = Ferry::start_logged(&agent_config(dir.path(), &pos, ""), &[]);
    let mut log = Vec::new();
    wait_following(&ferry, 2, &mut log);
    let mut want: Vec<(String, String, String)> = Vec::new();
    for c in [&mut cri, &mut dkr] {
        let (n, prefix) = if c.format == Format::Cri {
            (1, "kubernetes.cri")
        } else {
            (2, "kubernetes.dkr")
        };
        // A 100 KiB stdout line whose parts interleave with short stderr lines.
        let long = message(n, "stdout", 1, 100 * 1024);
        let parts = c.lines("stdout", &long);
        assert!(parts.len() >= 7, "split into 16 KiB parts");
        for (i, part) in parts.iter().enumerate() {
            c.put(part);
            if i % 2 == 0 {
                let short = message(n, "stderr", 100 + i as u64, 80);
                c.write("stderr", &short);
                want.push((c.tag(prefix), "stderr".into(), short));
            }
        }
        want.push((c.tag(prefix), "stdout".into(), long));
        // Java on stderr with a 20 KiB exception message (split into parts inside the trace),
        // while stdout goes on.
        for (lang, trace) in stack_traces(&format!("c{n}")) {
            let trace = if lang == "java" {
                trace.replacen(
                    &format!("c{n}\n"),
                    &format!("c{n} {}\n", "j".repeat(20 * 1024)),
                    1,
                )
            } else {
                trace
            };
            for (i, line) in trace.lines().enumerate() {
                c.write("stderr", line);
                if i == 1 {
                    let m = message(n, "stdout", 200, 90);
                    c.write("stdout", &m);
                    want.push((c.tag(prefix), "stdout".into(), m));
                }
                // The Python trace is cut by a rotation after its third line.
                if lang == "python" && i == 2 {
                    c.rotate();
                }
            }
            want.push((c.tag(prefix), "stderr".into(), trace));
        }
        let end = message(n, "stderr", 999, 70);
        c.write("stderr", &end);
        want.push((c.tag(prefix), "stderr".into(), end));
    }
    let mut got = Vec::new();
    wait_for(&ferry, &mut got, want.len(), "every event");
    std::thread::sleep(Duration::from_millis(500));
    take(&ferry, &mut got);
    let mut got_sorted = got.clone();
    got_sorted.sort();
    want.sort();
    assert_eq!(
        got_sorted.len(),
        want.len(),
        "no event split in two or given twice: {:#?}\nferry's log:\n{}",
        got.iter()
            .map(|g| &g.2[..g.2.len().min(100)])
            .collect::<Vec<_>>(),
        ferry.stderr.try_iter().collect::<Vec<_>>().join("\n")
    );
    for (g, w) in got_sorted.iter().zip(&want) {
        assert_eq!(
            (g.0.as_str(), g.1.as_str(), g.2.len()),
            (w.0.as_str(), w.1.as_str(), w.2.len()),
            "{}",
            &g.2[..g.2.len().min(200)]
        );
        assert_eq!(g.2, w.2);
    }
    log.extend(ferry.stderr.try_iter());
    assert!(
        !log.iter()
            .any(|l| l.contains("concat") && l.contains("not joined")),
        "the tails ran the concat filters:\n{}",
        log.join("\n")
    );
}

#[test]
fn a_message_held_when_ferry_is_killed_is_read_again_and_arrives_once_whole() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cri, _dkr) = node(dir.path());
    let pos = dir.path().join("pos");
    let config = agent_config(dir.path(), &pos, "");
    let mut ferry = Ferry::start_logged(&config, &[]);
    wait_following(&ferry, 2, &mut Vec::new());
    let mut got = Vec::new();
    let first = message(1, "stdout", 1, 100);
    cri.write("stdout", &first);
    wait_for(&ferry, &mut got, 1, "the first line");
    // Half of a 64 KiB line and the start of a Java trace are held when ferry dies.
    let long = message(1, "stdout", 2, 64 * 1024);
    let parts = cri.lines("stdout", &long);
    for p in &parts[..2] {
        cri.put(p);
    }
    let trace = stack_traces("killed").remove(0).1;
    let lines: Vec<&str> = trace.lines().collect();
    for l in &lines[..3] {
        cri.write("stderr", l);
    }
    // Long enough for the positions to be written (they must stay before the held lines).
    std::thread::sleep(Duration::from_millis(2500));
    signal(ferry.child.id(), "KILL");
    let _ = ferry.child.wait();
    for p in &parts[2..] {
        cri.put(p);
    }
    for l in &lines[3..] {
        cri.write("stderr", l);
    }
    let last = message(1, "stderr", 3, 100);
    cri.write("stderr", &last);
    drop(ferry);
    let ferry = Ferry::start_logged(&config, &[]);
    let mut after = Vec::new();
    wait_for(&ferry, &mut after, 3, "after the restart");
    std::thread::sleep(Duration::from_millis(500));
    take(&ferry, &mut after);
    let texts: BTreeMap<String, usize> = after.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(e.2.clone()).or_default() += 1;
        m
    });
    assert_eq!(texts.get(&long), Some(&1), "the long line, whole, once");
    assert_eq!(texts.get(&trace), Some(&1), "the trace, whole, once");
    assert_eq!(texts.get(&last), Some(&1));
    assert_eq!(
        after.len() + got.len(),
        4 + usize::from(texts.contains_key(&first)),
        "only the line before the kill may come again: {after:?}"
    );
    assert!(check(&long).is_some());
}

#[test]
fn compressed_rotations_are_not_read_and_a_restarted_container_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cri, _dkr) = node(dir.path());
    let pos = dir.path().join("pos");
    let ferry = Ferry::start_logged(&agent_config(dir.path(), &pos, ""), &[]);
    wait_following(&ferry, 2, &mut Vec::new());
    let mut got = Vec::new();
    let mut want = Vec::new();
    for seq in 0..30u64 {
        let m = message(1, "stdout", seq, 120);
        cri.write("stdout", &m);
        want.push(m);
        if seq % 10 == 9 {
            // Three rotations: the first rotated file is gzipped at the second.
            cri.rotate();
            std::thread::sleep(Duration::from_millis(1200));
        }
    }
    cri.restart();
    for seq in 30..40u64 {
        let m = message(1, "stdout", seq, 120);
        cri.write("stdout", &m);
        want.push(m);
    }
    wait_for(
        &ferry,
        &mut got,
        want.len(),
        "every line, old and new container",
    );
    std::thread::sleep(Duration::from_millis(1500));
    take(&ferry, &mut got);
    let mut texts: Vec<String> = got.iter().map(|g| g.2.clone()).collect();
    texts.sort();
    want.sort();
    assert_eq!(
        texts, want,
        "each line once; nothing read from the .gz files"
    );
    assert!(
        got.iter().any(|g| g.0 == cri.tag("kubernetes.cri")),
        "the restarted container's tag"
    );
}

#[test]
fn a_message_whose_end_never_comes_goes_to_the_timeout_label() {
    let dir = tempfile::tempdir().unwrap();
    let (mut cri, _dkr) = node(dir.path());
    let containers = dir.path().join("var/log/containers");
    let config = format!(
        r#"<source>
  @type tail
  path {c}/*-cri-*.log
  pos_file {pos}/cri.pos
  tag kubernetes.*
  read_from_head true
  <parse>
    @type cri
  </parse>
</source>
<filter kubernetes.**>
  @type concat
  key message
  multiline_start_regexp /^START/
  flush_interval 1s
  timeout_label @TIMEOUT
</filter>
<match kubernetes.**>
  @type stdout
  <format>
    @type json
  </format>
</match>
<label @TIMEOUT>
  <filter **>
    @type record_transformer
    <record>
      via timeout
    </record>
  </filter>
  <match **>
    @type stdout
    <format>
      @type json
    </format>
  </match>
</label>
"#,
        c = containers.display(),
        pos = dir.path().display()
    );
    let ferry = Ferry::start_logged(&config, &[]);
    wait_following(&ferry, 1, &mut Vec::new());
    cri.write("stdout", "START one");
    cri.write("stdout", " more");
    cri.write("stdout", "START two");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while lines.len() < 2 {
        lines.extend(ferry.stdout.try_iter());
        assert!(Instant::now() < deadline, "{lines:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let events: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["message"], "START one\n more");
    assert!(
        events[0].get("via").is_none(),
        "ended by the next start: the normal route"
    );
    assert_eq!(events[1]["message"], "START two");
    assert_eq!(
        events[1]["via"], "timeout",
        "given out after flush_interval: @TIMEOUT"
    );
}

#[test]
fn lines_of_a_file_rotated_around_a_sigkill_arrive_after_the_restart() {
    for rotate_first in [false, true] {
        let dir = tempfile::Builder::new().prefix("k8s").tempdir().unwrap();
        let (mut cri, _dkr) = node(dir.path());
        let pos = dir.path().join("pos");
        let config = agent_config(dir.path(), &pos, "");
        let mut ferry = Ferry::start_logged(&config, &[]);
        wait_following(&ferry, 2, &mut Vec::new());
        let mut want = Vec::new();
        let mut got = Vec::new();
        for seq in 0..20u64 {
            let m = message(1, "stdout", seq, 120);
            cri.write("stdout", &m);
            want.push(m);
        }
        wait_for(&ferry, &mut got, 20, "before the kill");
        // A restart of the container: a file ferry has to find first.
        cri.restart();
        for seq in 20..30u64 {
            let m = message(1, "stdout", seq, 120);
            cri.write("stdout", &m);
            want.push(m);
        }
        std::thread::sleep(Duration::from_millis(1500));
        for seq in 30..35u64 {
            let m = message(1, "stdout", seq, 120);
            cri.write("stdout", &m);
            want.push(m);
        }
        if rotate_first {
            cri.rotate();
        }
        signal(ferry.child.id(), "KILL");
        let _ = ferry.child.wait();
        if !rotate_first {
            cri.rotate();
        }
        for seq in 35..40u64 {
            let m = message(1, "stdout", seq, 120);
            cri.write("stdout", &m);
            want.push(m);
        }
        // What the killed ferry printed before it died.
        std::thread::sleep(Duration::from_millis(200));
        take(&ferry, &mut got);
        drop(ferry);
        let ferry = Ferry::start_logged(&config, &[]);
        wait_for_all(
            &ferry,
            &mut got,
            &want,
            &format!("rotate_first {rotate_first}"),
        );
    }
}

/// Numbered 150-byte stdout messages written to containers, and what was written.
#[derive(Default)]
struct Written {
    seq: u64,
    want: Vec<String>,
}

impl Written {
    fn write(&mut self, c: &mut Container, n: u64) {
        for _ in 0..n {
            let m = message(1, "stdout", self.seq, 150);
            c.write("stdout", &m);
            self.want.push(m);
            self.seq += 1;
        }
    }
}

/// SIGKILLs `ferry` and takes what it printed before it died.
fn kill_and_take(mut ferry: Ferry, got: &mut Vec<(String, String, String)>) {
    signal(ferry.child.id(), "KILL");
    let _ = ferry.child.wait();
    std::thread::sleep(Duration::from_millis(200));
    take(&ferry, got);
}

#[test]
fn a_new_file_on_a_reused_inode_after_a_rotation_while_ferry_was_down_loses_nothing() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::Builder::new().prefix("k8s").tempdir().unwrap();
    let (mut cri, _dkr) = node(dir.path());
    let pos = dir.path().join("pos");
    let config = agent_config(dir.path(), &pos, "");
    let ferry = Ferry::start_logged(&config, &[]);
    wait_following(&ferry, 2, &mut Vec::new());
    let mut w = Written::default();
    let mut got = Vec::new();
    w.write(&mut cri, 15);
    let first_ino = std::fs::metadata(cri.log_path()).unwrap().ino();
    cri.rotate(); // N.log → t1 (inode X); a new N.log
    w.write(&mut cri, 8);
    wait_for(&ferry, &mut got, 23, "before the kill");
    std::thread::sleep(Duration::from_millis(1500));
    kill_and_take(ferry, &mut got);
    let rotated_ino = std::fs::metadata(cri.log_path()).unwrap().ino();
    w.write(&mut cri, 7);
    cri.rotate(); // t1 gzipped (inode X freed), N.log → t2, a new N.log (often inode X again)
    let reused = std::fs::metadata(cri.log_path()).unwrap().ino();
    w.write(&mut cri, 5);
    eprintln!("inodes: first {first_ino}, rotated while down {rotated_ino}, new {reused}");
    let ferry = Ferry::start_logged(&config, &[]);
    let what = format!(
        "the file rotated while ferry was down had inode {rotated_ino}, the new one {reused}"
    );
    wait_for_all(&ferry, &mut got, &w.want, &what);
}

#[test]
fn lines_of_a_file_rotated_and_gzipped_while_ferry_was_down_are_read_from_the_gz() {
    let dir = tempfile::Builder::new().prefix("k8s").tempdir().unwrap();
    let (mut cri, mut dkr) = node(dir.path());
    let pos = dir.path().join("pos");
    let config = agent_config(dir.path(), &pos, "");
    let ferry = Ferry::start_logged(&config, &[]);
    wait_following(&ferry, 2, &mut Vec::new());
    let mut w = Written::default();
    let mut got = Vec::new();
    w.write(&mut cri, 10);
    w.write(&mut dkr, 10);
    wait_for(&ferry, &mut got, 20, "before the kill");
    std::thread::sleep(Duration::from_millis(1500));
    kill_and_take(ferry, &mut got);
    // While ferry is down, each container writes lines ferry has not read, rotates, writes,
    // and rotates again: the kubelet gzips the first copy and removes it.
    for c in [&mut cri, &mut dkr] {
        w.write(c, 12);
        c.rotate();
        w.write(c, 6);
        c.rotate();
        w.write(c, 4);
    }
    let gz = std::fs::read_dir(cri.dir())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".gz"))
        })
        .count();
    assert_eq!(gz, 1, "the first rotated copy was gzipped");
    let ferry = Ferry::start_logged(&config, &[]);
    let log = wait_for_all(&ferry, &mut got, &w.want, "after two rotations while down");
    std::thread::sleep(Duration::from_millis(2000));
    take(&ferry, &mut got);
    let mut seen = BTreeMap::new();
    for (_, _, text) in &got {
        *seen.entry(text).or_insert(0) += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "read twice: {twice:?}");
    assert_eq!(
        log.iter()
            .filter(|l| l.contains("was rotated and compressed while ferry was stopped"))
            .count(),
        2,
        "one gzip file per container read: {log:#?}"
    );
}
