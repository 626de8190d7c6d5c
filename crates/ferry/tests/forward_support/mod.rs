//! Helpers for the forward output's tests: a fake aggregator whose acks a test controls,
//! configurations of real forwarder and aggregator processes, and event builders.
#![allow(dead_code, clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use bytes::{Bytes, BytesMut};
use ferry::output::SinkConfig;
use ferry::output::forward::ForwardConfig;
use ferry_proto::frame::FrameDecoder;
use ferry_proto::handshake::{Pong, check_ping, encode_helo, parse_ping, shared_key_digest};
use ferry_proto::msgpack::Value;
use ferry_proto::request::{Limits, Request};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the fake aggregator answers to a request that asks for an ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckPolicy {
    /// `{"ack": <the same id>}`.
    Ack,
    /// Reads everything, answers nothing.
    Never,
    /// `{"ack": "not-your-chunk"}`.
    Wrong,
    /// Holds the acks of a connection until this many requests arrived on it, then acks them
    /// all and every later one at once: only a client that writes ahead of its acks gets any.
    AfterRequests(usize),
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    pub tag: String,
    pub frame_len: usize,
    pub records: u64,
    pub chunk: Option<Vec<u8>>,
    pub gzip: bool,
    pub entries: Bytes,
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub accepts: AtomicUsize,
    pub nils: AtomicUsize,
    pub bytes: AtomicU64,
    pub requests: Mutex<Vec<Received>>,
    pub policy: Mutex<Option<AckPolicy>>,
    pub handshakes_ok: AtomicUsize,
    pub handshakes_failed: AtomicUsize,
    /// Requests from this index on get no ack.
    pub fail_from: Mutex<Option<usize>>,
}

impl FakeState {
    pub fn requests(&self) -> Vec<Received> {
        self.requests.lock().unwrap().clone()
    }

    pub fn seqs(&self) -> Vec<u64> {
        self.requests()
            .iter()
            .flat_map(|r| seqs_in(&r.entries))
            .collect()
    }

    pub fn set_policy(&self, p: AckPolicy) {
        *self.policy.lock().unwrap() = Some(p);
    }
}

/// The fake's shared-key settings (server side); with `users`, user authentication too.
#[derive(Debug, Clone)]
pub struct FakeSecurity {
    pub shared_key: String,
    pub hostname: String,
    /// `(username, password)`; empty: no user authentication.
    pub users: Vec<(String, String)>,
}

/// A Forward server in the test process.
pub struct FakeAggregator {
    pub port: u16,
    pub state: Arc<FakeState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAggregator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeAggregator {
    pub async fn start(policy: AckPolicy) -> Self {
        Self::start_with(policy, None, None).await
    }

    pub async fn start_with(
        policy: AckPolicy,
        tls: Option<Arc<rustls::ServerConfig>>,
        security: Option<FakeSecurity>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(FakeState::default());
        state.set_policy(policy);
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                st.accepts.fetch_add(1, Ordering::SeqCst);
                let (st, tls, sec) = (Arc::clone(&st), tls.clone(), security.clone());
                conns.spawn(async move {
                    match tls {
                        Some(cfg) => {
                            let acceptor = tokio_rustls::TlsAcceptor::from(cfg);
                            if let Ok(s) = acceptor.accept(stream).await {
                                serve(s, st, sec).await;
                            }
                        }
                        None => serve(stream, st, sec).await,
                    }
                });
            }
        });
        Self { port, state, task }
    }
}

async fn read_frame<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut BytesMut,
    dec: &mut FrameDecoder,
) -> Option<Bytes> {
    loop {
        if let Ok(Some(f)) = dec.decode(buf) {
            return Some(f);
        }
        buf.reserve(64 * 1024);
        match s.read_buf(buf).await {
            Ok(0) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    st: Arc<FakeState>,
    sec: Option<FakeSecurity>,
) {
    let mut buf = BytesMut::new();
    let mut dec = FrameDecoder::new(512 * 1024 * 1024);
    if let Some(sec) = sec {
        let nonce = [3u8; 16];
        let auth = [4u8; 16];
        if s.write_all(&encode_helo(&nonce, &auth, true))
            .await
            .is_err()
        {
            return;
        }
        let Some(frame) = read_frame(&mut s, &mut buf, &mut dec).await else {
            return;
        };
        let Ok(ping) = parse_ping(&frame) else {
            return;
        };
        let users: Vec<(&[u8], &[u8])> = sec
            .users
            .iter()
            .map(|(u, p)| (u.as_bytes(), p.as_bytes()))
            .collect();
        let users = (!users.is_empty()).then_some(&users[..]);
        match check_ping(&ping, &nonce, &auth, sec.shared_key.as_bytes(), users) {
            Ok(()) => {
                let d = shared_key_digest(
                    &ping.shared_key_salt,
                    sec.hostname.as_bytes(),
                    &nonce,
                    sec.shared_key.as_bytes(),
                );
                let pong = Pong::success(sec.hostname.as_bytes(), d.as_bytes());
                st.handshakes_ok.fetch_add(1, Ordering::SeqCst);
                if s.write_all(&pong.encode()).await.is_err() {
                    return;
                }
            }
            Err(r) => {
                st.handshakes_failed.fetch_add(1, Ordering::SeqCst);
                let _ = s.write_all(&Pong::failure(r.reason()).encode()).await;
                return;
            }
        }
    }
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut on_this_connection = 0usize;
    while let Some(frame) = read_frame(&mut s, &mut buf, &mut dec).await {
        st.bytes.fetch_add(frame.len() as u64, Ordering::SeqCst);
        let frame_len = frame.len();
        let Ok(request) = Request::parse(frame, &Limits::default()) else {
            continue;
        };
        let Request::Events(batch) = request else {
            st.nils.fetch_add(1, Ordering::SeqCst);
            continue;
        };
        let summary = ferry_proto::entries::validate(&batch.entries).unwrap();
        let chunk = batch.options.chunk.clone();
        let gzip = batch.options.compressed == Some(ferry_proto::options::Compression::Gzip);
        let index = {
            let mut requests = st.requests.lock().unwrap();
            requests.push(Received {
                tag: batch.tag.clone(),
                frame_len,
                records: summary.count,
                chunk: chunk.as_ref().map(|c| c.bytes.to_vec()),
                gzip,
                entries: batch.entries.clone(),
            });
            requests.len() - 1
        };
        let failing = st.fail_from.lock().unwrap().is_some_and(|f| index >= f);
        let policy = if failing {
            AckPolicy::Never
        } else {
            st.policy.lock().unwrap().unwrap_or(AckPolicy::Ack)
        };
        on_this_connection += 1;
        if let Some(chunk) = chunk {
            let reply = match policy {
                AckPolicy::Ack => ferry_proto::ack::encode_ack(&chunk),
                AckPolicy::Wrong => ferry_proto::ack::encode_ack(
                    &ferry_proto::options::ChunkId::str(&b"not-your-chunk"[..]),
                ),
                AckPolicy::Never => continue,
                AckPolicy::AfterRequests(n) => {
                    held.push(ferry_proto::ack::encode_ack(&chunk).to_vec());
                    if on_this_connection < n {
                        continue;
                    }
                    let all: Vec<u8> = held.drain(..).flatten().collect();
                    all.into()
                }
            };
            if s.write_all(&reply).await.is_err() {
                return;
            }
        }
    }
}

/// The `seq` of every record of an entry stream.
pub fn seqs_in(entries: &[u8]) -> Vec<u64> {
    ferry_proto::entries::iter(entries)
        .filter_map(|e| e.ok())
        .filter_map(|e| Value::decode(e.record).ok())
        .filter_map(|(v, _)| match v.get("seq") {
            Some(Value::UInt(n)) => Some(*n),
            _ => None,
        })
        .collect()
}

/// An entry stream of records `{"seq": n, "pad": "xxx..."}`.
pub fn entries(seqs: std::ops::Range<u64>, pad: usize) -> Bytes {
    let mut out = BytesMut::new();
    let padding = "x".repeat(pad);
    for seq in seqs {
        let record = Value::Map(vec![
            (Value::Str("seq".into()), Value::UInt(seq)),
            (Value::Str("pad".into()), Value::Str(padding.clone().into())),
        ]);
        let time = ferry_proto::time::EventTime {
            sec: 1_700_000_000 + (seq % 1000) as u32,
            nsec: 123,
        };
        ferry_proto::encode::write_entry(&mut out, time, false, &record.to_bytes());
    }
    out.freeze()
}

/// Parses a whole configuration and returns the first `<match>`'s forward settings.
pub fn forward_config(text: &str) -> ForwardConfig {
    let root = ferry_config::parse_str(text, "test.conf").unwrap();
    let pipeline = match ferry::pipeline::build(&root) {
        Ok(p) => p,
        Err(e) => panic!("config errors: {:?}", e.0),
    };
    let (_, output) = pipeline.routes.outputs()[0];
    match &output.sink {
        SinkConfig::Forward(f) => f.clone(),
        other => panic!("not a forward output: {other:?}"),
    }
}

/// A memory buffer holding `chunks` chunks of `per_chunk` events each, for calling
/// `write_chunk` directly.
pub fn memory_buffer_with(
    tag: &str,
    chunks: u64,
    per_chunk: u64,
    pad: usize,
) -> ferry_buffer::Buffer {
    memory_buffer(tag, chunks, 1, per_chunk, pad, |_| {})
}

/// A memory buffer of `chunks` chunks, each made of `appends` appends of `per_append`
/// events; `tune` adjusts the buffer configuration first.
pub fn memory_buffer(
    tag: &str,
    chunks: u64,
    appends: u64,
    per_append: u64,
    pad: usize,
    tune: impl FnOnce(&mut ferry_buffer::BufferConfig),
) -> ferry_buffer::Buffer {
    let mut config = ferry_buffer::BufferConfig::memory();
    config.flush_mode = ferry_buffer::FlushMode::Interval;
    config.flush_interval = Duration::from_secs(3600);
    config.chunk_limit_size = 64 * 1024 * 1024;
    tune(&mut config);
    let (buffer, _) = ferry_buffer::Buffer::open(config, "test").unwrap();
    let mut seq = 0;
    for c in 0..chunks {
        let key = ferry_buffer::ChunkKey::tag(format!("{tag}.{c}"));
        for _ in 0..appends {
            buffer
                .append(&key, &entries(seq..seq + per_append, pad), per_append)
                .unwrap();
            seq += per_append;
        }
    }
    buffer.flush_all();
    buffer
}

/// Every queued chunk of `buffer`.
pub fn take_all(buffer: &ferry_buffer::Buffer) -> Vec<ferry_buffer::Chunk> {
    let mut out = Vec::new();
    while let Some(c) = buffer.take(std::time::SystemTime::now()) {
        out.push(c);
    }
    out
}

/// Waits until `cond` holds, failing with `what` after `limit`.
pub async fn eventually(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Same as [`eventually`] for synchronous tests.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An aggregator: forward input on `port`, stdout (JSON lines) behind a file buffer.
pub fn aggregator_config(port: u16, buffer: &Path) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n\
         <buffer tag>\n    @type file\n    path {}\n    flush_mode interval\n    flush_interval 200ms\n    chunk_limit_size 256k\n  </buffer>\n</match>\n",
        buffer.display()
    )
}

/// A `<server>` section.
pub fn server(name: &str, port: u16, extra: &str) -> String {
    format!(
        "  <server>\n    name {name}\n    host 127.0.0.1\n    port {port}\n{extra}  </server>\n"
    )
}

/// A forwarder: forward input on `port`, forward output with `params` and `servers`, behind
/// a file buffer at `buffer` with short flush and retry intervals.
pub fn forwarder_config(port: u16, buffer: &Path, params: &str, servers: &str) -> String {
    forwarder_config_with(
        port,
        buffer,
        params,
        servers,
        "    retry_wait 200ms\n    retry_max_interval 1s\n    retry_forever true\n    flush_thread_count 2\n",
        "",
    )
}

/// [`forwarder_config`] with more `<buffer>` parameters and a `<secondary>` section.
pub fn forwarder_config_with(
    port: u16,
    buffer: &Path,
    params: &str,
    servers: &str,
    buffer_params: &str,
    secondary: &str,
) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match **>\n  @type forward\n{params}{servers}\
         <buffer tag>\n    @type file\n    path {}\n    flush_mode interval\n    flush_interval 200ms\n    chunk_limit_size 64k\n\
             {buffer_params}  </buffer>\n{secondary}</match>\n",
        buffer.display()
    )
}
