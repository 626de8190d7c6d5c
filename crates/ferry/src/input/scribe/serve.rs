//! Answering a Scribe connection's calls, one after another as Thrift clients send them.

use super::metrics::ScribeInputMetrics;
use super::{MsgFormat, ScribeInputConfig};
use crate::event::Batch;
use crate::input::lines::Batches;
use crate::input::net::stream::{PeerSocket, Read, Stream};
use crate::input::net::{Peer, Service};
use crate::logging::LogLimiter;
use crate::parse::Record;
use crate::router::Routing;
use crate::task::TaskHandle;
use bytes::BytesMut;
use ferry_proto::thrift::{self, Decoder, Message, ThriftError, Value};
use ferry_proto::time::EventTime;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

/// How long a call waits for room in a full buffer before it is answered `TRY_LATER`.
const FULL_BUFFER_HOLD: Duration = Duration::from_secs(2);
/// An idle connection is closed after this long (scribed keeps them open; so do its clients).
const IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// Scribe's `ResultCode`.
const OK: i32 = 0;
const TRY_LATER: i32 = 1;
/// fb303's `fb_status::ALIVE`.
const ALIVE: i32 = 2;

#[derive(Debug, Default)]
struct Logs {
    invalid: LogLimiter,
    broken: LogLimiter,
    unknown: LogLimiter,
    commit: LogLimiter,
}

/// One scribe input: what its connections share.
pub struct ScribeInput {
    name: String,
    config: ScribeInputConfig,
    routing: Arc<Routing>,
    metrics: Arc<ScribeInputMetrics>,
    started: SystemTime,
    /// `msg_format json`'s parser (no time key): built once.
    json: crate::parse::json::JsonParser,
    logs: Logs,
}

impl ScribeInput {
    pub fn new(
        name: String,
        config: ScribeInputConfig,
        routing: Arc<Routing>,
        metrics: Arc<ScribeInputMetrics>,
    ) -> Self {
        Self {
            name,
            config,
            routing,
            metrics,
            started: SystemTime::now(),
            json: crate::parse::json::JsonParser {
                time: crate::parse::default_time_spec(None),
            },
            logs: Logs::default(),
        }
    }
}

impl Service for ScribeInput {
    async fn serve<S>(self: Arc<Self>, stream: S, peer: Peer, h: TaskHandle, _deadline: Instant)
    where
        S: AsyncRead + AsyncWrite + PeerSocket + Unpin + Send + 'static,
    {
        let mut io = Stream::new(stream, Some(IDLE_TIMEOUT));
        let mut decoder = Decoder::new(self.config.transport, self.config.body_size_limit);
        let mut out = BytesMut::new();
        loop {
            loop {
                let msg = match decoder.decode(&mut io.buf) {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(e) => {
                        self.broken(&peer, &e, &mut io).await;
                        return;
                    }
                };
                out.clear();
                self.call(&msg, &peer, &h, &mut out).await;
                if !out.is_empty() && io.send(&out).await.is_err() {
                    return;
                }
            }
            h.set("reading");
            match io.fill(None, &h).await {
                Ok(Read::Data) => {}
                Ok(Read::Eof) if !io.buf.is_empty() => {
                    self.broken(&peer, &ThriftError::Truncated, &mut io).await;
                    return;
                }
                _ => return,
            }
        }
    }
}

impl ScribeInput {
    /// Bytes that are not Thrift: a protocol exception (when a reply can still be read), then
    /// the connection is closed. Logged with the peer and counted.
    async fn broken<S>(&self, peer: &Peer, e: &ThriftError, io: &mut Stream<S>)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        self.metrics.broken.fetch_add(1, Ordering::Relaxed);
        if let Some(s) = self.logs.broken.allow() {
            tracing::warn!("{}: {peer}: {e}; connection closed{s}", self.name);
        }
        let mut out = BytesMut::new();
        thrift::exception(
            &mut out,
            b"",
            0,
            false,
            thrift::PROTOCOL_ERROR,
            &e.to_string(),
            self.config.transport,
        );
        let _ = io.send(&out).await;
        io.linger().await;
    }

    /// Answers one call into `out` (nothing for a oneway call).
    async fn call(&self, msg: &Message, peer: &Peer, h: &TaskHandle, out: &mut BytesMut) {
        let transport = self.config.transport;
        let name = String::from_utf8_lossy(&msg.name);
        let value = match &*name {
            "Log" => match self.log(msg, peer, h).await {
                Ok(code) => Value::I32(code),
                Err(why) => {
                    thrift::exception(
                        out,
                        &msg.name,
                        msg.seqid,
                        msg.strict,
                        thrift::PROTOCOL_ERROR,
                        &why,
                        transport,
                    );
                    return;
                }
            },
            other => {
                let counters;
                let value = match other {
                    "getStatus" => Value::I32(ALIVE),
                    "getStatusDetails" | "getCpuProfile" | "getOption" => Value::Str(b""),
                    "getName" => Value::Str(b"ferry"),
                    "getVersion" => Value::Str(env!("CARGO_PKG_VERSION").as_bytes()),
                    "aliveSince" => Value::I64(
                        self.started
                            .duration_since(SystemTime::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs() as i64),
                    ),
                    "getCounters" => {
                        counters = self.metrics.counters();
                        Value::StrI64Map(&counters)
                    }
                    "getCounter" => {
                        let key = thrift::string_field(&msg.body, 1).ok().flatten();
                        let key = key.map(String::from_utf8_lossy).unwrap_or_default();
                        let n = self
                            .metrics
                            .counters()
                            .into_iter()
                            .find(|(k, _)| *k == key)
                            .map_or(0, |(_, v)| v);
                        Value::I64(n)
                    }
                    "getOptions" => Value::StrStrMap(&[]),
                    "setOption" => Value::Void,
                    "shutdown" | "reinitialize" => {
                        tracing::warn!(
                            "{}: {peer} called fb303 {other}: ignored (stop or reload ferry with a signal)",
                            self.name
                        );
                        Value::Void
                    }
                    _ => {
                        self.metrics.unknown_methods.fetch_add(1, Ordering::Relaxed);
                        if let Some(s) = self.logs.unknown.allow() {
                            tracing::warn!(
                                "{}: {peer} called an unknown method {other:?}: answered with an exception{s}",
                                self.name
                            );
                        }
                        thrift::exception(
                            out,
                            &msg.name,
                            msg.seqid,
                            msg.strict,
                            thrift::UNKNOWN_METHOD,
                            &format!("unknown method {other}"),
                            transport,
                        );
                        return;
                    }
                };
                self.metrics.status_calls.fetch_add(1, Ordering::Relaxed);
                if msg.kind == thrift::ONEWAY {
                    return;
                }
                thrift::reply(out, msg, &value, transport);
                return;
            }
        };
        if msg.kind != thrift::ONEWAY {
            thrift::reply(out, msg, &value, transport);
        }
    }

    /// A `Log` call: `OK` once every entry is committed, else `TRY_LATER`; `Err` (answered
    /// with a protocol exception) when its arguments are not a list of entries.
    async fn log(&self, msg: &Message, peer: &Peer, h: &TaskHandle) -> Result<i32, String> {
        let m = &self.metrics;
        let entries = match thrift::log_entries(&msg.body) {
            Ok(e) => e,
            Err(e) => {
                m.bad_calls.fetch_add(1, Ordering::Relaxed);
                let why = format!("the arguments of Log do not read: {e}");
                if let Some(s) = self.logs.invalid.allow() {
                    tracing::warn!(
                        "{}: {peer}: {why}; answered with an exception{s}",
                        self.name
                    );
                }
                return Err(why);
            }
        };
        m.messages
            .fetch_add(entries.len() as u64, Ordering::Relaxed);
        let now = EventTime::now();
        let mut rec = Record::new();
        let mut batches = Batches::default();
        let mut tags: Vec<(Vec<u8>, Arc<str>)> = Vec::new();
        for (category, message) in &entries {
            let tag = match tags.iter().find(|(c, _)| c == category) {
                Some((_, t)) => Arc::clone(t),
                None => {
                    let cat = String::from_utf8_lossy(category);
                    let t: Arc<str> = match &self.config.add_prefix {
                        Some(p) => format!("{p}.{cat}").into(),
                        None => cat.as_ref().into(),
                    };
                    tags.push((category.to_vec(), Arc::clone(&t)));
                    t
                }
            };
            let made = if category.is_empty() {
                Err("the category is empty".to_string())
            } else {
                self.record(message, &mut rec)
            };
            match made {
                Ok(time) => rec.write_entry(batches.entries_for(&tag), time.unwrap_or(now)),
                Err(why) => {
                    m.invalid.fetch_add(1, Ordering::Relaxed);
                    let skip = self.config.ignore_invalid_record;
                    if skip {
                        m.skipped.fetch_add(1, Ordering::Relaxed);
                    }
                    if let Some(s) = self.logs.invalid.allow() {
                        let shown = String::from_utf8_lossy(&message[..message.len().min(256)]);
                        tracing::warn!(
                            "{}: {peer}: a message in category {:?} makes no record: {why}: {shown:?}; {}{s}",
                            self.name,
                            String::from_utf8_lossy(category),
                            if skip {
                                "skipped (ignore_invalid_record)"
                            } else {
                                "the call is answered TRY_LATER"
                            }
                        );
                    }
                    if !skip {
                        m.log_try_later.fetch_add(1, Ordering::Relaxed);
                        return Ok(TRY_LATER);
                    }
                }
            }
        }
        for (tag, entries, records) in batches.into_parts() {
            let size = entries.len() as u64;
            let batch = Batch::new(tag, entries.freeze(), records);
            h.set("waiting for commit");
            let (held, result) = self
                .routing
                .emit_holding(
                    self.config.label.as_deref(),
                    &batch,
                    FULL_BUFFER_HOLD,
                    h.cancel_token(),
                )
                .await;
            m.held_ms
                .fetch_add(held.as_millis() as u64, Ordering::Relaxed);
            match result {
                Ok(_) => {
                    m.emit_records.fetch_add(records, Ordering::Relaxed);
                    m.emit_size.fetch_add(size, Ordering::Relaxed);
                }
                Err(e) => {
                    if let Some(s) = self.logs.commit.allow() {
                        tracing::warn!(
                            "{}: a Log call from {peer} was not committed: {e}; answered TRY_LATER{s}",
                            self.name
                        );
                    }
                    m.log_try_later.fetch_add(1, Ordering::Relaxed);
                    return Ok(TRY_LATER);
                }
            }
        }
        m.log_ok.fetch_add(1, Ordering::Relaxed);
        Ok(OK)
    }

    /// One message's record into `rec` (cleared first), and its time when the `<parse>` read one.
    fn record(&self, message: &[u8], rec: &mut Record) -> Result<Option<EventTime>, String> {
        rec.clear();
        match &self.config.msg_format {
            MsgFormat::Text => {
                let text = if self.config.remove_newline {
                    chomp(message)
                } else {
                    message
                };
                rec.str(&self.config.msg_key, text);
                Ok(None)
            }
            MsgFormat::Json => self
                .json
                .parse(message, rec)
                .map(|_| None)
                .map_err(|e| e.to_string()),
            MsgFormat::UrlParam => {
                for (k, v) in crate::http::form::parse(message) {
                    rec.str(&k, &v);
                }
                Ok(None)
            }
            MsgFormat::Parse(p) => {
                let text = if self.config.remove_newline {
                    chomp(message)
                } else {
                    message
                };
                p.parse(text, rec).map_err(|e| e.to_string())
            }
        }
    }
}

/// Ruby's `chomp`: one trailing `\n`, `\r\n` or `\r`.
fn chomp(s: &[u8]) -> &[u8] {
    s.strip_suffix(b"\r\n")
        .or_else(|| s.strip_suffix(b"\n"))
        .or_else(|| s.strip_suffix(b"\r"))
        .unwrap_or(s)
}
