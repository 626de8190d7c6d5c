//! A node's container logs, written as the kubelet and the container runtimes write them:
//!
//! - `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`, CRI lines
//!   (`TIME STREAM P|F MESSAGE`, containerd and CRI-O) or Docker json-file lines
//!   (`{"log":..,"stream":..,"time":..}`), a line longer than 16 KiB split into parts (CRI: `P`
//!   parts and a final `F`; Docker: parts without a trailing `\n`), stdout and stderr
//!   interleaved in one file, each part written with one `write`;
//! - `/var/log/containers/<pod>_<namespace>_<container>-<id>.log`, a symlink to the file;
//! - rotation by rename (`0.log` → `0.log.<timestamp>`, the runtime reopening `0.log`), the
//!   rotated file before the latest one gzipped (`.gz`, the original removed), as the kubelet's
//!   container log manager does;
//! - a restart: a new container id, `<restart + 1>.log`, a new symlink; the old symlink stays
//!   until the old container is garbage-collected ([`Container::collect_garbage`]).

#![allow(dead_code)] // each test uses part of it

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// The runtimes' split size.
pub const PART: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Cri,
    Docker,
}

/// One container of one pod.
pub struct Container {
    root: PathBuf,
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub name: String,
    pub id: String,
    pub format: Format,
    pub restart: u32,
    file: File,
    /// Rotated files not compressed yet, oldest first.
    rotated: Vec<PathBuf>,
    pub rotations: u32,
    clock: u64,
    /// Symlinks of earlier containers (restarts), with when they stopped.
    old_links: Vec<(PathBuf, std::time::Instant)>,
}

fn hex64(seed: u64) -> String {
    let mut s = String::new();
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    while s.len() < 64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(&format!("{x:016x}"));
    }
    s.truncate(64);
    s
}

/// The names of container `n`'s pod.
pub struct Names {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub name: String,
}

impl Container {
    /// The names [`Container::new`] gives container `n`.
    pub fn names(n: usize, format: Format) -> Names {
        // The pod's name says which runtime writes it, so that a node's tails can tell them
        // apart by path.
        let runtime = match format {
            Format::Cri => "cri",
            Format::Docker => "dkr",
        };
        Names {
            namespace: format!("ns{}", n % 7),
            pod: format!("app-{runtime}-{n}-7d9c5b.web"),
            uid: format!("{:08x}-0000-4000-8000-{:012x}", n, n * 7919),
            name: format!("c{n}"),
        }
    }

    /// Creates the pod's directory, the container's first log file and its symlink.
    pub fn new(root: &Path, n: usize, format: Format) -> Self {
        let Names {
            namespace,
            pod,
            uid,
            name,
        } = Self::names(n, format);
        let mut c = Self {
            root: root.to_path_buf(),
            namespace,
            pod,
            uid,
            name,
            id: hex64(n as u64 * 1000),
            format,
            restart: 0,
            file: File::open("/dev/null").unwrap(),
            rotated: Vec::new(),
            rotations: 0,
            clock: 0,
            old_links: Vec::new(),
        };
        std::fs::create_dir_all(c.dir()).unwrap();
        std::fs::create_dir_all(root.join("var/log/containers")).unwrap();
        c.file = c.open();
        symlink(c.log_path(), c.link()).unwrap();
        c
    }

    pub fn dir(&self) -> PathBuf {
        self.root.join(format!(
            "var/log/pods/{}_{}_{}/{}",
            self.namespace, self.pod, self.uid, self.name
        ))
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join(format!("{}.log", self.restart))
    }

    pub fn link(&self) -> PathBuf {
        self.root.join(format!(
            "var/log/containers/{}_{}_{}-{}.log",
            self.pod, self.namespace, self.name, self.id
        ))
    }

    /// The tag a tail with `tag <prefix>.*` gives this container's lines.
    pub fn tag(&self, prefix: &str) -> String {
        // As in_tail makes it: `/` → `.`, runs of dots squeezed, no leading dot.
        let mut path = self.link().to_string_lossy().replace('/', ".");
        while path.contains("..") {
            path = path.replace("..", ".");
        }
        format!("{prefix}.{}", path.trim_start_matches('.'))
    }

    fn open(&self) -> File {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap()
    }

    fn time(&mut self) -> String {
        self.clock += 1;
        let ns = self.clock;
        format!(
            "2026-12-07T10:{:02}:{:02}.{:09}Z",
            (ns / 60_000) % 60,
            (ns / 1000) % 60,
            ns % 1_000_000_000
        )
    }

    /// Writes one message (without its newline) to `stream`, split as the runtime splits it.
    pub fn write(&mut self, stream: &str, message: &str) {
        for line in self.lines(stream, message) {
            self.put(&line);
        }
    }

    /// Writes one line the runtime made (one `write`).
    pub fn put(&mut self, line: &[u8]) {
        self.file.write_all(line).unwrap();
    }

    /// The lines the runtime writes for one message, each with its newline.
    pub fn lines(&mut self, stream: &str, message: &str) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        match self.format {
            Format::Cri => {
                let bytes = message.as_bytes();
                let mut parts: Vec<&[u8]> = bytes.chunks(PART).collect();
                if parts.is_empty() {
                    parts.push(b"");
                }
                let last = parts.len() - 1;
                for (i, part) in parts.into_iter().enumerate() {
                    let mut line = format!(
                        "{} {stream} {} ",
                        self.time(),
                        if i == last { "F" } else { "P" }
                    )
                    .into_bytes();
                    line.extend_from_slice(part);
                    line.push(b'\n');
                    out.push(line);
                }
            }
            Format::Docker => {
                let text = format!("{message}\n");
                let bytes = text.as_bytes();
                for part in bytes.chunks(PART) {
                    let log = String::from_utf8_lossy(part);
                    let line = format!(
                        "{{\"log\":{},\"stream\":\"{stream}\",\"time\":\"{}\"}}\n",
                        serde_json::to_string(&log).unwrap(),
                        self.time()
                    );
                    out.push(line.into_bytes());
                }
            }
        }
        out
    }

    /// The kubelet's rotation: older rotated files gzipped (all but the latest), the live file
    /// renamed to `<n>.log.<timestamp>`, the runtime reopening `<n>.log`.
    pub fn rotate(&mut self) {
        for old in self.rotated.drain(..) {
            gzip(&old);
        }
        self.rotations += 1;
        let rotated = self.dir().join(format!(
            "{}.log.20261207-1000{:02}",
            self.restart, self.rotations
        ));
        std::fs::rename(self.log_path(), &rotated).unwrap();
        self.rotated.push(rotated);
        self.file = self.open();
    }

    /// A restart: a new container id, the next `<n>.log`, a new symlink. The old container's
    /// symlink and files stay until [`Self::collect_garbage`].
    pub fn restart(&mut self) {
        self.old_links
            .push((self.link(), std::time::Instant::now()));
        self.restart += 1;
        self.rotated.clear();
        self.id = hex64(self.id.len() as u64 * 31 + u64::from(self.restart) * 7 + self.clock);
        self.file = self.open();
        symlink(self.log_path(), self.link()).unwrap();
    }

    /// Removes the symlinks of containers stopped `after` ago or longer (the kubelet's garbage
    /// collection of dead containers).
    pub fn collect_garbage(&mut self, after: std::time::Duration) {
        self.old_links.retain(|(link, since)| {
            let old = since.elapsed() >= after;
            if old {
                let _ = std::fs::remove_file(link);
            }
            !old
        });
    }
}

/// A node agent's sources for the node at `root`: one tail per runtime (pods named `*-cri-*`
/// and `*-dkr-*`, tags `kubernetes.cri.*` and `kubernetes.dkr.*`, positions under `state`) and
/// the concat filters with the built-in stack-trace rules. The caller adds the rest.
pub fn agent_sources(root: &Path, state: &Path) -> String {
    let c = root.join("var/log/containers");
    let tail = |runtime: &str, parse: &str| {
        format!(
            "<source>\n  @type tail\n  path {c}/*-{runtime}-*.log\n  pos_file {s}/{runtime}.pos\n  tag kubernetes.{runtime}.*\n  read_from_head true\n  refresh_interval 1s\n  rotate_wait 2s\n  <parse>\n    @type {parse}\n  </parse>\n</source>\n",
            c = c.display(),
            s = state.display()
        )
    };
    let concat = |runtime: &str, key_and_separator: &str| {
        format!(
            "<filter kubernetes.{runtime}.**>\n  @type concat\n{key_and_separator}  multiline_rules java, python, go\n  flush_interval 3s\n</filter>\n"
        )
    };
    [
        tail("cri", "cri"),
        tail("dkr", "docker"),
        concat("cri", "  key message\n"),
        concat("dkr", "  key log\n  separator \"\"\n"),
    ]
    .concat()
}

/// `path` → `path.gz`, the original removed (as the kubelet compresses rotated logs).
pub fn gzip(path: &Path) {
    let data = std::fs::read(path).unwrap();
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    let tmp = PathBuf::from(format!("{}.tmp", gz.display()));
    let mut enc =
        flate2::write::GzEncoder::new(File::create(&tmp).unwrap(), flate2::Compression::fast());
    enc.write_all(&data).unwrap();
    enc.finish().unwrap();
    std::fs::rename(&tmp, &gz).unwrap();
    std::fs::remove_file(path).unwrap();
}

/// A deterministic message of `len` bytes (at least 64) naming its container, stream and number:
/// `c=<n> s=<stream> seq=<seq> len=<len> <body>`, the body made of `seq`'s digits so that a
/// message cut, joined wrongly or mixed with another one is seen.
pub fn message(container: usize, stream: &str, seq: u64, len: usize) -> String {
    let head = format!("c={container} s={stream} seq={seq} len={len} ");
    let digit = (b'a' + (seq % 26) as u8) as char;
    let body_len = len.saturating_sub(head.len());
    let mut m = head;
    m.extend(std::iter::repeat_n(digit, body_len));
    m
}

/// Reads a [`message`] back: `(container, stream, seq)` when the message is whole.
pub fn check(m: &str) -> Option<(usize, String, u64)> {
    let mut it = m.splitn(5, ' ');
    let c = it.next()?.strip_prefix("c=")?.parse().ok()?;
    let s = it.next()?.strip_prefix("s=")?.to_string();
    let seq: u64 = it.next()?.strip_prefix("seq=")?.parse().ok()?;
    let len: usize = it.next()?.strip_prefix("len=")?.parse().ok()?;
    let body = it.next().unwrap_or("");
    let digit = (b'a' + (seq % 26) as u8) as char;
    let whole = m.len() == len && body.chars().all(|ch| ch == digit);
    whole.then_some((c, s, seq))
}

/// Stack traces as Java, Python and Go print them, one message each, tagged with `id`.
pub fn stack_traces(id: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "java",
            format!(
                "Exception in thread \"main\" java.lang.IllegalStateException: {id}\n\tat com.example.App.run(App.java:10)\n\tat com.example.App.main(App.java:5)\nCaused by: java.io.IOException: disk full\n\tat com.example.Store.write(Store.java:42)\n\t... 2 more"
            ),
        ),
        (
            "python",
            format!(
                "Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n    main()\n  File \"app.py\", line 2, in main\n    raise ValueError(\"{id}\")\nValueError: {id}"
            ),
        ),
        (
            "go",
            format!(
                "panic: runtime error: {id}\n\ngoroutine 1 [running]:\nmain.main()\n\t/app/main.go:8 +0x1d\nexit status 2"
            ),
        ),
    ]
}
