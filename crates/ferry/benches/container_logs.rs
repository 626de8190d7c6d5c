//! The Kubernetes node agent's path, ferry beside Fluent Bit in the same run, on the same files:
//! container logs tailed through kubelet's links, CRI lines parsed, the runtime's 16 KiB `P`/`F`
//! parts joined, forwarded to a Forward receiver in this process that counts records and the
//! bytes of their messages.
//!
//! - **Data**: a node of 200 containers written by the kubelet simulator of
//!   `tests/kubelet_support` before each run (outside the measured time): `var/log/pods/...`
//!   files in CRI format and `var/log/containers/*.log` links. Messages of 100–300 bytes on
//!   stdout and stderr interleaved, 1 % of them 20–200 KiB (split by the runtime into 16 KiB
//!   parts), and Java stack traces on stderr (one CRI line per line of the trace).
//! - **ferry**: `tail` with `<parse> @type cri` (parts joined), the `kubernetes_metadata`
//!   filter, `forward` with a memory buffer (`flush_mode interval`, `flush_interval 1s`, as
//!   Fluent Bit's `Flush 1`; every other buffer parameter at its default; FERRY_BENCH_BUFFER
//!   adds a line). A second ferry agent adds the `concat` filter with `multiline_rules java`.
//! - **Fluent Bit**: `tail` with `multiline.parser cri` (parts joined per stream), a DB file,
//!   `forward`. Its `kubernetes` filter runs without an API server (`Use_Tag_For_Meta On`) but
//!   is not in the shared build (`FLB_MINIMAL`: filters grep and parser): when the binary has
//!   it, it runs; else Fluent Bit runs without metadata, and the bench says so.
//!
//! Each agent's clock runs from its start until every message byte is at the receiver. Prints
//! per run and as medians: MB/s of log bytes (the files' sizes over that time), CPU s/GB of the
//! agent process (/proc/PID/stat), its peak RSS (VmHWM), the records received, and ferry's
//! ratios to Fluent Bit.
//!
//! **Checked**: the message bytes received equal those written (a joined trace adds its `\n`
//! separators), with no record more; for ferry, one whole record per message (joined parts once;
//! a trace one record per line, or one with concat), each with `kubernetes` metadata. Fluent
//! Bit's cri parser hands out the first parts of some long messages as a record of their own
//! (in every run here): those pieces are counted and printed, and its check is then on the
//! bytes (all of them, once, in more records than messages). A failed check fails the bench.
//!
//! Needs `FLUENTBIT_BIN` (`eval "$(bash ../shared/peers/setup.sh)"`); without it only ferry
//! runs. Knobs: FERRY_BENCH_MB (log bytes per run, default 300), FERRY_BENCH_RUNS (3),
//! FERRY_BENCH_CONCAT (1: also run ferry with concat; 0: not), FERRY_BENCH_BUFFER (a line added
//! to ferry's `<buffer>`, such as `total_limit_size 32m`), FERRY_BENCH_FILE_BUFFER=1 (the
//! DaemonSet's file buffer instead of a memory buffer), FERRY_BENCH_KEEP (keep the files).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a failed unwrap is a failed run

#[path = "../tests/kubelet_support/mod.rs"]
mod kubelet_support;

use ferry_bench::conn::ValueReader;
use ferry_bench::procstat;
use ferry_bench::report::{env_or, median};
use ferry_proto::msgpack::Reader;
use ferry_proto::{Limits, Request, ack::encode_ack, entries};
use kubelet_support::{Container, Format, message, stack_traces};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

const CONTAINERS: usize = 200;
/// A run fails when no record arrives for this long before all have.
const STALL: Duration = Duration::from_secs(30);
/// How long the receiver is watched after the last expected byte, for records too many.
const LINGER: Duration = Duration::from_secs(1);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Agent {
    Ferry,
    FerryConcat,
    FluentBit,
}

impl Agent {
    fn name(self) -> &'static str {
        match self {
            Self::Ferry => "ferry",
            Self::FerryConcat => "ferry + concat java",
            Self::FluentBit => "Fluent Bit",
        }
    }
}

/// xorshift64: the same node for the same seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What reached the receiver, and what should have.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Tally {
    records: u64,
    /// Bytes of the records' `message` (ferry) or `log` (Fluent Bit) strings.
    text: u64,
    /// Records that are a piece of a message, not all of it.
    pieces: u64,
    /// Records with a `kubernetes` map.
    with_metadata: u64,
}

/// A node's container logs on disk.
struct Node {
    dir: tempfile::TempDir,
    root: PathBuf,
    bytes: u64,
    lines: u64,
    /// Parts joined; a trace is one record per line.
    lines_joined: Tally,
    /// Java traces joined too.
    traces_joined: Tally,
    long: u64,
    long_bytes: u64,
    traces: u64,
}

impl Node {
    fn expected(&self, agent: Agent) -> Tally {
        match agent {
            Agent::Ferry | Agent::FluentBit => self.lines_joined,
            Agent::FerryConcat => self.traces_joined,
        }
    }
}

/// Writes `mb` MB of CRI lines for [`CONTAINERS`] containers.
fn write_node(mb: u64, seed: u64) -> Node {
    let dir = tempfile::Builder::new()
        .prefix("k8s-bench")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .unwrap();
    let root = dir.path().join("node");
    let mut node = Node {
        root: root.clone(),
        dir,
        bytes: 0,
        lines: 0,
        lines_joined: Tally::default(),
        traces_joined: Tally::default(),
        long: 0,
        long_bytes: 0,
        traces: 0,
    };
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let per_container = mb * 1_000_000 / CONTAINERS as u64;
    // One message: its lines written, its bytes counted.
    let put = |c: &mut Container, stream: &str, text: &str, node: &mut Node| {
        let mut bytes = 0;
        for line in c.lines(stream, text) {
            c.put(&line);
            bytes += line.len() as u64;
            node.lines += 1;
        }
        node.bytes += bytes;
        node.lines_joined.records += 1;
        node.lines_joined.text += text.len() as u64;
        bytes
    };
    for n in 0..CONTAINERS {
        let mut c = Container::new(&root, n, Format::Cri);
        let (mut written, mut seq) = (0u64, 0u64);
        // The last two messages are plain, one per stream, so that concat holds nothing at
        // the end.
        let mut last = 0;
        while last < 2 {
            seq += 1;
            let mut stream = if rng.below(10) < 7 {
                "stdout"
            } else {
                "stderr"
            };
            let mut kind = rng.below(1000);
            if written >= per_container {
                last += 1;
                kind = 1000;
                stream = if last == 1 { "stdout" } else { "stderr" };
            }
            if kind < 10 {
                let len = 20 * 1024 + rng.below(180 * 1024) as usize;
                let text = message(n, stream, seq, len);
                let bytes = put(&mut c, stream, &text, &mut node);
                (node.long, node.long_bytes) = (node.long + 1, node.long_bytes + bytes);
                written += bytes;
                node.traces_joined.records += 1;
                node.traces_joined.text += text.len() as u64;
            } else if kind < 15 {
                let (_, trace) = stack_traces(&format!("c{n}-{seq}")).swap_remove(0);
                for line in trace.split('\n') {
                    written += put(&mut c, "stderr", line, &mut node);
                }
                node.traces += 1;
                node.traces_joined.records += 1;
                node.traces_joined.text += trace.len() as u64;
            } else {
                let text = message(n, stream, seq, 100 + rng.below(201) as usize);
                written += put(&mut c, stream, &text, &mut node);
                node.traces_joined.records += 1;
                node.traces_joined.text += text.len() as u64;
            }
        }
    }
    node.lines_joined.with_metadata = node.lines_joined.records;
    node.traces_joined.with_metadata = node.traces_joined.records;
    node
}

/// Whether a received text is all of a message: a [`message`] of its declared length, or a
/// trace (or one line of it).
fn whole(text: &[u8]) -> bool {
    if !text.starts_with(b"c=") {
        return [&b"Exception"[..], b"\t", b"Caused by"]
            .iter()
            .any(|p| text.starts_with(p));
    }
    let declared = text
        .windows(5)
        .position(|w| w == b" len=")
        .and_then(|at| text[at + 5..].split(|b| *b == b' ').next())
        .and_then(|d| std::str::from_utf8(d).ok()?.parse::<usize>().ok());
    declared == Some(text.len())
}

/// Counts of the receiver, shared with the bench's main thread.
#[derive(Debug, Default)]
struct Counts {
    records: AtomicU64,
    text: AtomicU64,
    pieces: AtomicU64,
    with_metadata: AtomicU64,
}

impl Counts {
    fn add(&self, t: &Tally) {
        self.records.fetch_add(t.records, Ordering::Relaxed);
        self.text.fetch_add(t.text, Ordering::Relaxed);
        self.pieces.fetch_add(t.pieces, Ordering::Relaxed);
        self.with_metadata
            .fetch_add(t.with_metadata, Ordering::Relaxed);
    }

    fn get(&self) -> Tally {
        Tally {
            records: self.records.load(Ordering::Relaxed),
            text: self.text.load(Ordering::Relaxed),
            pieces: self.pieces.load(Ordering::Relaxed),
            with_metadata: self.with_metadata.load(Ordering::Relaxed),
        }
    }
}

/// Adds one record (a msgpack map) to `t`.
fn tally(record: &[u8], t: &mut Tally) {
    t.records += 1;
    let mut r = Reader::new(record);
    let Ok(pairs) = r.map_len() else { return };
    for _ in 0..pairs {
        let Ok(key) = r.str() else { return };
        match key {
            b"message" | b"log" => {
                let Ok((text, _)) = r.str_or_bin() else {
                    return;
                };
                t.text += text.len() as u64;
                t.pieces += u64::from(!whole(text));
            }
            b"kubernetes" => {
                t.with_metadata += 1;
                let _ = r.raw_value();
            }
            _ => {
                let _ = r.raw_value();
            }
        }
    }
}

/// A Forward server (every mode, acks when asked) that tallies what it takes.
async fn receive(listener: tokio::net::TcpListener, counts: Arc<Counts>) {
    while let Ok((sock, _)) = listener.accept().await {
        let counts = Arc::clone(&counts);
        tokio::spawn(async move {
            let (rd, mut wr) = sock.into_split();
            let mut frames = ValueReader::new(rd, 256 * 1024 * 1024);
            while let Ok(Some(frame)) = frames.next().await {
                let batch = match Request::parse(frame, &Limits::default()) {
                    Ok(Request::Events(b)) => b,
                    Ok(Request::Nil) => continue,
                    Err(e) => {
                        eprintln!("receiver: request refused: {e}");
                        return;
                    }
                };
                let mut t = Tally::default();
                for entry in entries::iter(&batch.entries) {
                    match entry {
                        Ok(e) => tally(e.record, &mut t),
                        Err(e) => eprintln!("receiver: bad entry: {e}"),
                    }
                }
                counts.add(&t);
                if let Some(chunk) = &batch.options.chunk
                    && wr.write_all(&encode_ack(chunk)).await.is_err()
                {
                    return;
                }
            }
        });
    }
}

/// `kubernetes` in the filters `fluent-bit --help` lists.
fn fluentbit_has_kubernetes(bin: &str) -> bool {
    Command::new(bin)
        .arg("--help")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .any(|l| l.trim_start().starts_with("kubernetes "))
        })
        .unwrap_or(false)
}

/// The forward output's `<buffer>`: a memory buffer, or with FERRY_BENCH_FILE_BUFFER=1 the
/// file buffer of `deploy/kubernetes/forwarder-daemonset.yaml` (per-tag chunks of 4 MiB on
/// disk; `flush_interval 1s` as Fluent Bit's `Flush 1`).
fn buffer_section(state: &Path, extra: &str) -> String {
    if std::env::var_os("FERRY_BENCH_FILE_BUFFER").is_some() {
        format!(
            "  <buffer tag>\n    @type file\n    path {}/buffer\n    flush_interval 1s\n    chunk_limit_size 4m\n    total_limit_size 2g\n    overflow_action block\n{extra}  </buffer>\n",
            state.display()
        )
    } else {
        format!(
            "  <buffer>\n    @type memory\n    flush_mode interval\n    flush_interval 1s\n{extra}  </buffer>\n"
        )
    }
}

fn ferry_config(node: &Node, state: &Path, port: u16, concat: bool) -> String {
    let concat = if concat {
        "<filter kubernetes.**>\n  @type concat\n  key message\n  multiline_rules java\n  flush_interval 5s\n</filter>\n"
    } else {
        ""
    };
    let extra = std::env::var("FERRY_BENCH_BUFFER")
        .map(|e| format!("    {e}\n"))
        .unwrap_or_default();
    format!(
        "<source>\n  @type tail\n  path {links}/*.log\n  pos_file {state}/containers.pos\n  tag kubernetes.*\n  read_from_head true\n  <parse>\n    @type cri\n  </parse>\n</source>\n\
         {concat}<filter kubernetes.**>\n  @type kubernetes_metadata\n  container_links_dir {links}\n</filter>\n\
         <match **>\n  @type forward\n  <server>\n    host 127.0.0.1\n    port {port}\n  </server>\n{buffer}</match>\n",
        links = node.root.join("var/log/containers").display(),
        state = state.display(),
        buffer = buffer_section(state, &extra),
    )
}

fn fluentbit_config(node: &Node, state: &Path, port: u16, kubernetes: bool) -> String {
    let links = node.root.join("var/log/containers");
    let filter = if kubernetes {
        // The tag is `kube.` and the link's path with `/` as `.`.
        let prefix = links.display().to_string().replace('/', ".");
        format!(
            "[FILTER]\n    Name kubernetes\n    Match kube.*\n    Use_Tag_For_Meta On\n    Kube_Tag_Prefix kube{prefix}.\n"
        )
    } else {
        String::new()
    };
    format!(
        "[SERVICE]\n    Flush 1\n    Log_Level warn\n\
         [INPUT]\n    Name tail\n    Path {links}/*.log\n    multiline.parser cri\n    Tag kube.*\n    Read_from_Head On\n    DB {state}/tail.db\n\
         {filter}[OUTPUT]\n    Name forward\n    Match *\n    Host 127.0.0.1\n    Port {port}\n",
        links = links.display(),
        state = state.display(),
    )
}

struct Process {
    child: Child,
    log: PathBuf,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(agent: Agent, node: &Node, port: u16, fluentbit: Option<(&str, bool)>) -> Process {
    let state = node.dir.path().join(format!("state-{agent:?}"));
    std::fs::create_dir_all(&state).unwrap();
    let log = state.join("agent.log");
    let out = File::create(&log).unwrap();
    let mut cmd = match agent {
        Agent::Ferry | Agent::FerryConcat => {
            let conf = state.join("ferry.conf");
            let text = ferry_config(node, &state, port, agent == Agent::FerryConcat);
            std::fs::write(&conf, text).unwrap();
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferry"));
            cmd.arg("-c")
                .arg(&conf)
                .arg("--log-level")
                .arg("warn")
                .env("FERRY_ROOT_DIR", state.join("root"));
            cmd
        }
        Agent::FluentBit => {
            let (bin, kubernetes) = fluentbit.expect("FLUENTBIT_BIN");
            let conf = state.join("fluent-bit.conf");
            std::fs::write(&conf, fluentbit_config(node, &state, port, kubernetes)).unwrap();
            let mut cmd = Command::new(bin);
            cmd.arg("-c").arg(&conf);
            cmd
        }
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", agent.name()));
    Process { child, log }
}

struct Figures {
    secs: f64,
    mb_per_s: f64,
    cpu_s_per_gb: f64,
    peak_rss_mb: f64,
    got: Tally,
    receiver_cpu_s: f64,
    /// What went wrong, if anything.
    fault: Option<String>,
}

/// What is wrong with what `agent` delivered.
fn check(agent: Agent, got: &Tally, want: &Tally, fluentbit_kubernetes: bool) -> Option<String> {
    let whole = got.records - got.pieces;
    if got.text != want.text {
        return Some(format!(
            "{} message bytes received, {} written",
            got.text, want.text
        ));
    }
    let metadata = match agent {
        Agent::Ferry | Agent::FerryConcat => true,
        Agent::FluentBit => fluentbit_kubernetes,
    };
    if metadata && got.with_metadata != got.records {
        return Some(format!(
            "{} of {} records have kubernetes metadata",
            got.with_metadata, got.records
        ));
    }
    let exact = got.records == want.records && got.pieces == 0;
    // Fluent Bit's pieces: the bytes are all there, once; no whole message is missing.
    let in_pieces = agent == Agent::FluentBit && whole < want.records && got.records > want.records;
    (!exact && !in_pieces).then(|| {
        format!(
            "{} records ({} of them pieces of a message), {} expected",
            got.records, got.pieces, want.records
        )
    })
}

fn run(
    agent: Agent,
    node: &Node,
    rt: &tokio::runtime::Runtime,
    fluentbit: Option<(&str, bool)>,
) -> Figures {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let counts = Arc::new(Counts::default());
    let receiver = rt.spawn(receive(listener, Arc::clone(&counts)));
    let want = node.expected(agent);
    let me = std::process::id();
    let c0 = procstat::cpu_seconds(me).unwrap();
    let t0 = Instant::now();
    let mut p = start(agent, node, port, fluentbit);
    let pid = p.child.id();
    let (mut last, mut last_change) = (Tally::default(), t0);
    let mut reading = procstat::ProcReading::default();
    let mut fault = None;
    let done = loop {
        let got = counts.get();
        let now = Instant::now();
        if got != last {
            (last, last_change) = (got, now);
        }
        if let Ok(r) = procstat::read(pid) {
            reading = r;
        }
        if got.text >= want.text {
            break now;
        }
        if now - last_change > STALL {
            fault = Some(format!("nothing arrived for {} s", STALL.as_secs()));
            break now;
        }
        if let Ok(Some(status)) = p.child.try_wait() {
            fault = Some(format!("it exited: {status}"));
            break now;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let receiver_cpu_s = procstat::cpu_seconds(me).unwrap() - c0;
    std::thread::sleep(LINGER);
    let got = counts.get();
    let fault = fault.or_else(|| check(agent, &got, &want, fluentbit.is_some_and(|f| f.1)));
    if let Some(why) = &fault {
        let log = std::fs::read_to_string(&p.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        eprintln!(
            "\n*** FAILED: {}: {why} ***\nits log (last lines):\n{}\n",
            agent.name(),
            lines[lines.len().saturating_sub(20)..].join("\n")
        );
    }
    drop(p);
    receiver.abort();
    let secs = (done - t0).as_secs_f64();
    let gb = node.bytes as f64 / 1e9;
    Figures {
        secs,
        mb_per_s: node.bytes as f64 / 1e6 / secs,
        cpu_s_per_gb: reading.cpu_ticks as f64 / procstat::clock_ticks() / gb,
        peak_rss_mb: reading.peak_rss_kib as f64 * 1024.0 / 1e6,
        got,
        receiver_cpu_s,
        fault,
    }
}

fn met(yes: bool) -> &'static str {
    if yes { "met" } else { "NOT met" }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let mb = env_or("FERRY_BENCH_MB", 300);
    let runs = env_or("FERRY_BENCH_RUNS", 3);
    let with_concat = env_or("FERRY_BENCH_CONCAT", 1) != 0;
    let fluentbit_bin = std::env::var("FLUENTBIT_BIN")
        .ok()
        .filter(|p| Path::new(p).is_file());
    let fluentbit = fluentbit_bin
        .as_deref()
        .map(|b| (b, fluentbit_has_kubernetes(b)));
    let mut agents = vec![Agent::Ferry];
    match fluentbit {
        Some(_) => agents.push(Agent::FluentBit),
        None => eprintln!(
            "FLUENTBIT_BIN is not set: measuring ferry alone (eval \"$(bash ../shared/peers/setup.sh)\")"
        ),
    }
    if with_concat {
        agents.push(Agent::FerryConcat);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "container logs (tail, CRI, P/F joined, metadata → forward): {CONTAINERS} containers, about {mb} MB per run, {runs} runs; load average {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let mut results: Vec<(Agent, Vec<Figures>)> = agents.iter().map(|a| (*a, Vec::new())).collect();
    let mut failed = false;
    for run_no in 0..runs {
        let node = write_node(mb, run_no + 1);
        println!(
            "run {}: {:.1} MB in {} CRI lines, {} messages ({} of 20–200 KiB: {:.0} % of the bytes), {} Java traces ({} records with traces joined)",
            run_no + 1,
            node.bytes as f64 / 1e6,
            node.lines,
            node.lines_joined.records,
            node.long,
            node.long_bytes as f64 * 100.0 / node.bytes as f64,
            node.traces,
            node.traces_joined.records
        );
        // Who goes first changes from run to run.
        let n = results.len();
        for i in 0..n {
            let (agent, figures) = &mut results[(i + run_no as usize) % n];
            let f = run(*agent, &node, &rt, fluentbit);
            let pieces = if f.got.pieces > 0 {
                format!(", {} of them pieces of a long message", f.got.pieces)
            } else {
                String::new()
            };
            println!(
                "  {:<20} {:>7.1} MB/s {:>6.2} CPU s/GB  peak RSS {:>5.1} MB  {:>7} records{pieces} in {:.2} s  (receiver {:.2} CPU s){}",
                agent.name(),
                f.mb_per_s,
                f.cpu_s_per_gb,
                f.peak_rss_mb,
                f.got.records,
                f.secs,
                f.receiver_cpu_s,
                if f.fault.is_some() { "  FAILED" } else { "" }
            );
            failed |= f.fault.is_some();
            figures.push(f);
        }
        if std::env::var("FERRY_BENCH_KEEP").is_ok() {
            println!("  files kept in {}", node.dir.keep().display());
        }
    }
    println!("\nmedians of {runs} runs         MB/s  CPU s/GB  peak RSS MB  records/s");
    let mut medians = Vec::new();
    for (agent, fs) in &results {
        let m = (
            median(fs.iter().map(|f| f.mb_per_s).collect()),
            median(fs.iter().map(|f| f.cpu_s_per_gb).collect()),
            median(fs.iter().map(|f| f.peak_rss_mb).collect()),
            median(fs.iter().map(|f| f.got.records as f64 / f.secs).collect()),
        );
        println!(
            "  {:<20} {:>9.1} {:>9.2} {:>12.1} {:>10.0}",
            agent.name(),
            m.0,
            m.1,
            m.2,
            m.3
        );
        medians.push((*agent, m));
    }
    let of = |a| medians.iter().find(|(x, _)| *x == a).map(|(_, m)| *m);
    println!("limits: target ≥ 3× Fluent Bit's MB/s, CPU s/GB ≤ Fluent Bit's, RSS < 64 MB");
    if let Some(f) = of(Agent::Ferry) {
        if let Some(b) = of(Agent::FluentBit) {
            println!(
                "ferry / Fluent Bit: {:.2}× MB/s ({}), {:.2}× CPU s/GB ({})",
                f.0 / b.0,
                met(f.0 / b.0 >= 3.0),
                f.1 / b.1,
                met(f.1 <= b.1)
            );
        }
        println!("ferry peak RSS {:.1} MB ({})", f.2, met(f.2 < 64.0));
    }
    match fluentbit {
        Some((_, false)) => println!(
            "note: ferry's runs include the kubernetes_metadata filter; Fluent Bit's cannot: its kubernetes filter (which Use_Tag_For_Meta On runs without an API server) is not in this build"
        ),
        Some((_, true)) => {
            println!("note: Fluent Bit ran its kubernetes filter with Use_Tag_For_Meta On")
        }
        None => {}
    }
    if failed {
        eprintln!(
            "\n*** FAILED: an agent did not deliver every message exactly once (see above) ***"
        );
        std::process::exit(1);
    }
}
