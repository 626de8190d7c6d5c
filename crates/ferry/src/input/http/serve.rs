//! Answering the http input's requests: one hyper connection per accepted stream, each request
//! read within its limits, its events decoded ([`super::body`]) and committed before the answer.

use super::body::{self, BodyError, Common, Events, Format};
use super::metrics::HttpInputMetrics;
use super::{BodyParse, HttpInputConfig};
use crate::event::Batch;
use crate::http::server::{self, Limits, Request, Response, response};
use crate::input::net::stream::PeerSocket;
use crate::input::net::{Peer, Service};
use crate::logging::LogLimiter;
use crate::output::EmitError;
use crate::router::Routing;
use crate::task::TaskHandle;
use bytes::{Bytes, BytesMut};
use ferry_proto::time::EventTime;
use http::Method;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;
use std::io::Read as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a request waits for room in a full buffer before it is answered 503.
const FULL_BUFFER_HOLD: Duration = Duration::from_secs(2);
/// What a client retrying after a 503 is told to wait, seconds.
const RETRY_AFTER: &str = "1";
/// The longest a request body may take to arrive, however steadily it trickles.
const BODY_DEADLINE: Duration = Duration::from_secs(120);
/// The largest request head.
const MAX_HEAD: usize = 64 * 1024;

/// Fluentd's 1×1 transparent GIF for `respond_with_empty_img`.
const EMPTY_GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\xff\x00\xff\xff\xff\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

#[derive(Debug, Default)]
struct Logs {
    bad: LogLimiter,
    broken: LogLimiter,
    commit: LogLimiter,
}

/// One http input: what its connections share.
pub struct HttpInput {
    name: String,
    config: HttpInputConfig,
    routing: Arc<Routing>,
    metrics: Arc<HttpInputMetrics>,
    logs: Logs,
}

impl HttpInput {
    pub fn new(
        name: String,
        config: HttpInputConfig,
        routing: Arc<Routing>,
        metrics: Arc<HttpInputMetrics>,
    ) -> Self {
        Self {
            name,
            config,
            routing,
            metrics,
            logs: Logs::default(),
        }
    }
}

impl Service for HttpInput {
    async fn serve<S>(self: Arc<Self>, stream: S, peer: Peer, h: TaskHandle, _deadline: Instant)
    where
        S: AsyncRead + AsyncWrite + PeerSocket + Unpin + Send + 'static,
    {
        let limits = Limits {
            head_timeout: self.config.keepalive_timeout,
            max_head: MAX_HEAD,
            keep_alive: true,
        };
        let cancel = h.cancel_token();
        let this = Arc::clone(&self);
        let peer = Arc::new(peer);
        let conn_peer = Arc::clone(&peer);
        let conn_cancel = cancel.clone();
        let conn = server::serve_connection(stream, limits, move |req| {
            let this = Arc::clone(&this);
            let peer = Arc::clone(&conn_peer);
            let cancel = conn_cancel.clone();
            async move { this.answer(req, &peer, cancel).await }
        });
        h.set("serving");
        tokio::select! {
            served = conn => {
                if let Err(e) = served {
                    self.connection_error(&peer, &e);
                }
            }
            () = cancel.cancelled() => {}
        }
    }
}

/// Why a body was not read whole.
enum ReadError {
    TooLarge,
    TimedOut,
    Broken(String),
}

impl HttpInput {
    fn connection_error(&self, peer: &Peer, e: &hyper::Error) {
        if e.is_timeout() {
            // An idle kept-alive connection, or a head that did not arrive in time.
            tracing::debug!(
                "{}: {peer}: no request head within keepalive_timeout; connection closed",
                self.name
            );
            return;
        }
        if e.is_incomplete_message() || e.is_parse() || e.is_body_write_aborted() {
            self.metrics.broken.fetch_add(1, Ordering::Relaxed);
            if let Some(s) = self.logs.broken.allow() {
                tracing::warn!("{}: {peer}: {e}; connection closed{s}", self.name);
            }
            return;
        }
        tracing::debug!("{}: {peer}: {e}", self.name);
    }

    async fn answer(&self, req: Request, peer: &Peer, cancel: CancellationToken) -> Response {
        let method = req.method().clone();
        let r = match method {
            Method::GET | Method::HEAD => response(200, "text/plain", ""),
            Method::OPTIONS => self.preflight(req.headers()),
            Method::POST | Method::PUT | Method::PATCH => self.post(req, peer, cancel).await,
            _ => {
                let mut r = response(405, "text/plain", "405 Method Not Allowed\n");
                r.headers_mut().insert(
                    header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, OPTIONS, POST, PUT, PATCH"),
                );
                r
            }
        };
        self.metrics.answered(r.status().as_u16());
        r
    }

    /// A refusal of the client's request, logged (`dump_error_log`) with the peer.
    fn bad(&self, peer: &Peer, code: u16, reason: &str, what: &str) -> Response {
        if self.config.dump_error_log
            && let Some(s) = self.logs.bad.allow()
        {
            tracing::warn!("{}: {peer}: answered {code} {reason}: {what}{s}", self.name);
        }
        let mut r = response(code, "text/plain", format!("{} {reason}\n{what}\n", code));
        if code == 413 || code == 408 {
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }

    async fn post(&self, req: Request, peer: &Peer, cancel: CancellationToken) -> Response {
        let origin = req
            .headers()
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .map(str::to_string);
        if let (Some(_), Some(o)) = (&self.config.cors_allow_origins, &origin)
            && !self.origin_allowed(o)
        {
            let mut r = self.bad(
                peer,
                403,
                "Forbidden",
                &format!("Access-Control-Allow-Origin does not contain {o}"),
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
        let (parts, incoming) = req.into_parts();
        let limit = self.config.body_size_limit;
        if let Some(len) = content_length(&parts.headers)
            && len > limit as u64
        {
            return self.bad(
                peer,
                413,
                "Request Entity Too Large",
                &format!("a body of {len} bytes is over body_size_limit ({limit} bytes)"),
            );
        }
        let raw = match self.read_body(incoming).await {
            Ok(b) => b,
            Err(ReadError::TooLarge) => {
                return self.bad(
                    peer,
                    413,
                    "Request Entity Too Large",
                    &format!("the body is over body_size_limit ({limit} bytes)"),
                );
            }
            Err(ReadError::TimedOut) => {
                return self.bad(
                    peer,
                    408,
                    "Request Timeout",
                    &format!(
                        "the body did not arrive (nothing for {:?}, or not whole within {BODY_DEADLINE:?})",
                        self.config.keepalive_timeout
                    ),
                );
            }
            Err(ReadError::Broken(e)) => {
                self.metrics.broken.fetch_add(1, Ordering::Relaxed);
                if let Some(s) = self.logs.broken.allow() {
                    tracing::warn!("{}: {peer}: the body broke off: {e}{s}", self.name);
                }
                return self.bad(
                    peer,
                    400,
                    "Bad Request",
                    &format!("the body broke off: {e}"),
                );
            }
        };
        self.metrics
            .body_bytes
            .fetch_add(raw.len() as u64, Ordering::Relaxed);
        let raw = match decode_content(&parts.headers, raw, limit) {
            Ok(b) => b,
            Err((code, reason, what)) => return self.bad(peer, code, reason, &what),
        };
        let mut r = match self.events(&parts, &raw, peer) {
            Ok((tag, events)) => self.commit(tag, events, peer, cancel).await,
            Err(e) => self.bad(peer, 400, "Bad Request", &e),
        };
        self.cors_headers(&mut r, origin.as_deref());
        r
    }

    /// The request's tag and events, or why they were refused.
    fn events(
        &self,
        parts: &http::request::Parts,
        body: &[u8],
        peer: &Peer,
    ) -> Result<(String, Events), String> {
        let path = parts.uri.path();
        let tag = tag_of(path);
        if tag.is_empty() {
            return Err(format!("no tag: the path is {path:?}; POST to /<tag>"));
        }
        let query = parts.uri.query().unwrap_or("");
        let mut params = crate::http::form::parse(query.as_bytes());
        let mut fields = Vec::new();
        if self.config.add_http_headers {
            for (name, value) in &parts.headers {
                fields.push((
                    header_key(name),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                ));
            }
        }
        if self.config.add_query_params {
            for (k, v) in &params {
                fields.push((
                    format!("QUERY_{}", env_name(k)),
                    String::from_utf8_lossy(v).into_owned(),
                ));
            }
        }
        if self.config.add_remote_addr {
            let forwarded = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_string());
            fields.push((
                "REMOTE_ADDR".into(),
                forwarded.unwrap_or_else(|| peer.address()),
            ));
        }
        let now = EventTime::now();
        let time = match param(&params, "time") {
            Some(t) => Some(
                body::time_parameter(&String::from_utf8_lossy(t), now)
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let common = Common {
            time,
            now,
            fields: &fields,
        };
        let mut events = Events::default();
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        match &self.config.parse {
            BodyParse::Parser(p) => body::decode_parsed(p, body, &common, &mut events),
            BodyParse::Default(spec) => {
                let in_body = if content_type.starts_with("application/x-www-form-urlencoded") {
                    params.extend(crate::http::form::parse(body));
                    None
                } else if content_type.starts_with("application/json") {
                    Some(Format::Json)
                } else if content_type.starts_with("application/msgpack")
                    || content_type.starts_with("application/x-msgpack")
                {
                    Some(Format::Msgpack)
                } else if content_type.starts_with("application/x-ndjson")
                    || content_type.starts_with("application/ndjson")
                {
                    Some(Format::Ndjson)
                } else if content_type.starts_with("multipart/form-data") {
                    return Err("multipart/form-data is not read; send application/json, application/x-ndjson, application/msgpack or application/x-www-form-urlencoded".into());
                } else {
                    None
                };
                // Fluentd's order: msgpack, then json, then ndjson (a body's own kind wins over
                // the same parameter in the query).
                let chosen = match in_body {
                    Some(f) => Some((f, body)),
                    None => [
                        ("msgpack", Format::Msgpack),
                        ("json", Format::Json),
                        ("ndjson", Format::Ndjson),
                    ]
                    .into_iter()
                    .find_map(|(k, f)| param(&params, k).map(|v| (f, v))),
                };
                match chosen {
                    Some((f, bytes)) => body::decode(f, bytes, spec, &common, &mut events),
                    None => Err(BodyError::NoEvents),
                }
            }
        }
        .map_err(|e| e.to_string())?;
        Ok((tag, events))
    }

    async fn commit(
        &self,
        tag: String,
        events: Events,
        peer: &Peer,
        cancel: CancellationToken,
    ) -> Response {
        let records = events.records;
        if records > 0 {
            let size = events.entries.len() as u64;
            let batch = Batch::new(tag, events.entries.freeze(), records);
            let (held, result) = self
                .routing
                .emit_holding(
                    self.config.label.as_deref(),
                    &batch,
                    FULL_BUFFER_HOLD,
                    cancel,
                )
                .await;
            let m = &self.metrics;
            m.held_ms
                .fetch_add(held.as_millis() as u64, Ordering::Relaxed);
            match result {
                Ok(_) => {
                    m.emit_records.fetch_add(records, Ordering::Relaxed);
                    m.emit_size.fetch_add(size, Ordering::Relaxed);
                }
                Err(e) => {
                    let full = matches!(e, EmitError::Buffer { .. } | EmitError::ShuttingDown);
                    if let Some(s) = self.logs.commit.allow() {
                        tracing::warn!(
                            "{}: {records} events from {peer} were not committed: {e}; answered {}{s}",
                            self.name,
                            if full { 503 } else { 500 }
                        );
                    }
                    if full {
                        let mut r =
                            response(503, "text/plain", format!("503 Service Unavailable\n{e}\n"));
                        r.headers_mut()
                            .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER));
                        return r;
                    }
                    return response(
                        500,
                        "text/plain",
                        format!("500 Internal Server Error\n{e}\n"),
                    );
                }
            }
        }
        if self.config.respond_with_empty_img {
            response(
                200,
                "image/gif; charset=utf-8",
                Bytes::from_static(EMPTY_GIF),
            )
        } else if self.config.use_204_response {
            let mut r = response(204, "text/plain", "");
            r.headers_mut().remove(header::CONTENT_TYPE);
            r
        } else {
            response(200, "text/plain", "")
        }
    }

    async fn read_body(&self, mut body: hyper::body::Incoming) -> Result<Bytes, ReadError> {
        let limit = self.config.body_size_limit;
        let deadline = Instant::now() + BODY_DEADLINE;
        let mut buf = BytesMut::new();
        loop {
            let wait = (Instant::now() + self.config.keepalive_timeout).min(deadline);
            let frame = match tokio::time::timeout_at(wait, body.frame()).await {
                Err(_) => return Err(ReadError::TimedOut),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(ReadError::Broken(e.to_string())),
                Ok(Some(Ok(f))) => f,
            };
            if let Ok(data) = frame.into_data() {
                if buf.len() + data.len() > limit {
                    return Err(ReadError::TooLarge);
                }
                buf.extend_from_slice(&data);
            }
        }
        Ok(buf.freeze())
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.config
            .cors_allow_origins
            .as_ref()
            .is_some_and(|allowed| allowed.iter().any(|a| origin_matches(a, origin)))
    }

    fn cors_headers(&self, r: &mut Response, origin: Option<&str>) {
        let Some(allowed) = &self.config.cors_allow_origins else {
            return;
        };
        let h = r.headers_mut();
        if allowed.iter().any(|a| a == "*") {
            h.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        } else if let Some(o) = origin
            && self.origin_allowed(o)
            && let Ok(v) = HeaderValue::from_str(o)
        {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
            if self.config.cors_allow_credentials {
                h.insert(
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                );
            }
        }
    }

    /// A CORS preflight (`OPTIONS`), answered as Fluentd answers it.
    fn preflight(&self, headers: &HeaderMap) -> Response {
        let forbidden = || response(403, "text/plain", "");
        if self.config.cors_allow_origins.is_none() {
            return forbidden();
        }
        let method = headers
            .get(header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok());
        if method != Some("POST") {
            return forbidden();
        }
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let wildcard = self
            .config
            .cors_allow_origins
            .as_ref()
            .is_some_and(|a| a.iter().any(|o| o == "*"));
        if !wildcard && !origin.is_some_and(|o| self.origin_allowed(o)) {
            return forbidden();
        }
        let mut r = response(200, "text/plain", "");
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            headers
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .cloned()
                .unwrap_or_else(|| HeaderValue::from_static("")),
        );
        self.cors_headers(&mut r, origin);
        r
    }
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The body as sent, decompressed after `Content-Encoding` (gzip, deflate), at most `limit`
/// bytes; or the answer refusing it.
fn decode_content(
    headers: &HeaderMap,
    raw: Bytes,
    limit: usize,
) -> Result<Bytes, (u16, &'static str, String)> {
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut out = Vec::new();
    // Each decoder is bounded by `take(limit + 1)`: at most one byte over the limit is held.
    #[allow(clippy::disallowed_methods)]
    let read = match encoding.as_str() {
        "" | "identity" => return Ok(raw),
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&raw[..])
            .take(limit as u64 + 1)
            .read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(&raw[..])
            .take(limit as u64 + 1)
            .read_to_end(&mut out),
        other => {
            return Err((
                415,
                "Unsupported Media Type",
                format!("Content-Encoding {other} is not read; gzip and deflate are"),
            ));
        }
    };
    match read {
        Ok(n) if n > limit => Err((
            413,
            "Request Entity Too Large",
            format!("the body decompressed is over body_size_limit ({limit} bytes)"),
        )),
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) => Err((
            400,
            "Bad Request",
            format!("the {encoding} body does not decompress: {e}"),
        )),
    }
}

/// `/a/b` → `a.b`, as Fluentd builds the tag from the path.
pub fn tag_of(path: &str) -> String {
    path.trim_start_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(".")
}

/// The last value of `key` (a later value overrides an earlier one, as Fluentd merges them).
fn param<'a>(params: &'a [(String, Vec<u8>)], key: &str) -> Option<&'a [u8]> {
    params
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_slice())
}

/// A header as Fluentd names it in the record: `HTTP_` and the name upper-cased, `-` as `_`.
fn header_key(name: &HeaderName) -> String {
    format!("HTTP_{}", env_name(name.as_str()))
}

fn env_name(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect()
}

/// Whether `origin` is allowed by the `cors_allow_origins` entry `allowed`: equal, `*`, or a
/// `scheme://*.domain` pattern matching any subdomain.
pub fn origin_matches(allowed: &str, origin: &str) -> bool {
    if allowed == "*" || allowed == origin {
        return true;
    }
    match allowed.split_once("://*.") {
        Some((scheme, domain)) => origin
            .strip_prefix(scheme)
            .and_then(|o| o.strip_prefix("://"))
            .and_then(|host| host.strip_suffix(domain))
            .and_then(|sub| sub.strip_suffix('.'))
            .is_some_and(|sub| !sub.is_empty() && !sub.contains('/')),
        None => false,
    }
}
