//! Tail throughput: ferry (a real process) reads a file of 200-byte lines from its head through
//! a memory buffer to a null output; `cat FILE > /dev/null` reads the same file in the same
//! run. Reports MB/s and CPU seconds per GB (ferry's from /proc/<pid>/stat, cat's from the
//! children times of this process), for `parse none` and `parse json`.
//!
//! `FERRY_BENCH_TAIL_MB` sets the file size (default 1024). Files go under Cargo's target
//! temporary directory (on the same disk as the build). Run with
//! `cargo bench -p ferry --bench tail`.

#![allow(clippy::unwrap_used)] // a bench that cannot set up should stop loudly

use ferry_bench::procstat;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const LINE: usize = 200;

/// (utime + stime, cutime + cstime) of a process, in clock ticks.
fn cpu_ticks(pid: &str) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<u64> = after.split(' ').map(|x| x.parse().unwrap_or(0)).collect();
    // Fields 14..17 of stat(5), counted from the state field (3).
    (f[11] + f[12], f[13] + f[14])
}

fn generate(path: &Path, bytes: u64, json: bool) {
    if std::fs::metadata(path).is_ok_and(|m| m.len() == bytes) {
        return;
    }
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let lines = bytes / LINE as u64;
    for n in 0..lines {
        let head = if json {
            format!("{{\"seq\":{n},\"level\":\"info\",\"host\":\"web-01\",\"msg\":\"")
        } else {
            format!("seq={n:010} ")
        };
        let tail = if json { "\"}\n" } else { "\n" };
        let pad = LINE - head.len() - tail.len();
        w.write_all(head.as_bytes()).unwrap();
        w.write_all(&b"abcdefghijklmnopqrstuvwxyz0123456789".repeat(6)[..pad])
            .unwrap();
        w.write_all(tail.as_bytes()).unwrap();
    }
    w.flush().unwrap();
}

struct Figures {
    secs: f64,
    cpu_secs: f64,
}

impl Figures {
    fn print(&self, what: &str, bytes: u64) {
        let mb = bytes as f64 / 1e6;
        let gb = bytes as f64 / 1e9;
        println!(
            "{what:<28} {:>8.1} MB/s   {:>6.2} CPU s/GB   ({:.2} s wall, {:.2} s CPU)",
            mb / self.secs,
            self.cpu_secs / gb,
            self.secs,
            self.cpu_secs
        );
    }
}

fn cat(path: &Path) -> Figures {
    let hz = procstat::clock_ticks();
    let (_, before) = cpu_ticks("self");
    let started = Instant::now();
    let status = Command::new("cat")
        .arg(path)
        .stdout(File::create("/dev/null").unwrap())
        .status()
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    assert!(status.success());
    let (_, after) = cpu_ticks("self");
    Figures {
        secs,
        cpu_secs: (after - before) as f64 / hz,
    }
}

fn committed_offset(pos: &Path) -> u64 {
    std::fs::read_to_string(pos)
        .ok()
        .and_then(|t| {
            let field = t.lines().next()?.split('\t').nth(1)?.to_string();
            u64::from_str_radix(&field, 16).ok()
        })
        .unwrap_or(0)
}

fn ferry(dir: &Path, file: &Path, parse: &str) -> Figures {
    let pos = dir.join(format!("pos-{parse}"));
    let _ = std::fs::remove_file(&pos);
    let conf = dir.join(format!("bench-{parse}.conf"));
    std::fs::write(
        &conf,
        format!(
            "<source>\n  @type tail\n  path {}\n  pos_file {}\n  tag bench\n  read_from_head true\n  <parse>\n    @type {parse}\n  </parse>\n</source>\n\
             <match **>\n  @type null\n  <buffer>\n    @type memory\n    flush_interval 1s\n  </buffer>\n</match>\n",
            file.display(),
            pos.display()
        ),
    )
    .unwrap();
    let size = std::fs::metadata(file).unwrap().len();
    let hz = procstat::clock_ticks();
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("-c")
        .arg(&conf)
        .arg("--log-level")
        .arg("warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let deadline = Instant::now() + Duration::from_secs(600);
    while committed_offset(&pos) < size {
        assert!(
            Instant::now() < deadline,
            "ferry did not finish in 10 minutes"
        );
        assert!(child.try_wait().unwrap().is_none(), "ferry exited");
        std::thread::sleep(Duration::from_millis(5));
    }
    let secs = started.elapsed().as_secs_f64();
    let (cpu, _) = cpu_ticks(&pid);
    let _ = child.kill();
    let _ = child.wait();
    Figures {
        secs,
        cpu_secs: cpu as f64 / hz,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; other arguments (filters) are ignored.
    let mb: u64 = std::env::var("FERRY_BENCH_TAIL_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let bytes = mb * 1024 * 1024 / LINE as u64 * LINE as u64;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tail-bench");
    std::fs::create_dir_all(&dir).unwrap();
    let plain = dir.join(format!("lines-{mb}m.log"));
    let json = dir.join(format!("json-{mb}m.log"));
    generate(&plain, bytes, false);
    generate(&json, bytes, true);
    // Warm the page cache so every reader below reads from memory.
    cat(&plain);
    cat(&json);
    println!(
        "tail of {:.0} MB ({} lines of {LINE} bytes), page cache warm",
        bytes as f64 / 1e6,
        bytes / LINE as u64
    );
    cat(&plain).print("cat FILE > /dev/null", bytes);
    ferry(&dir, &plain, "none").print("ferry tail, parse none", bytes);
    ferry(&dir, &json, "json").print("ferry tail, parse json", bytes);
}
