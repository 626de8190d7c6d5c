//! `<match> @type http`: each chunk is one HTTP request to the endpoint (Fluentd's out_http).
//!
//! Always buffered (no chunk keys unless `<buffer>` names some, as in Fluentd). A flusher hands
//! a chunk to [`HttpOut::write_chunk`], which:
//!
//! 1. fills the endpoint and `headers_from_placeholders` from the chunk's key
//!    ([`crate::output::placeholders`]);
//! 2. takes a kept-alive connection to the endpoint's origin, or opens one
//!    ([`crate::http::client::pool`]: one per flush thread, reused across chunks);
//! 3. streams the body from the chunk segment by segment ([`body`]: the format, `json_array`,
//!    `compress gzip`), so memory holds one segment, whatever the chunk's size;
//! 4. settles the chunk on the answer, as Fluentd does: a 2xx delivers it; a status in
//!    `retryable_response_codes` (503 by default), a connection failure or a timeout is
//!    retried with the buffer's backoff; any other status is unrecoverable and the chunk goes
//!    to `<secondary>`, else to the quarantine directory, at once
//!    (`error_response_as_unrecoverable false`: logged and deleted, counted as dropped).
//!
//! A retried chunk is sent whole again, so an endpoint that took a request whose answer was
//! lost gets its events twice: delivery is at least once.
//!
//! | module | job |
//! |---|---|
//! | [`config`] | parameters, Fluentd's names and defaults; checks before anything runs |
//! | [`body`] | the request body of a chunk: formats, JSON array framing, gzip |
//! | [`error`] | [`HttpOutputError`] and its classification |
//! | [`metrics`] | requests, answers by class, bytes, errors, connections |

pub mod body;
pub mod config;
pub mod error;
pub mod metrics;

use super::SinkError;
use super::segment::SegmentReader;
use crate::http::client::body::channel;
use crate::http::client::connection::{Answer, Connection, Failed};
use crate::http::client::pool::Pool;
use crate::http::client::{ClientError, ConnectOptions, Origin};
use body::BodyWriter;
pub use config::HttpOutputConfig;
use config::OnErrorResponse;
pub use error::HttpOutputError;
use ferry_buffer::Chunk;
use http::header;
use metrics::HttpOutputMetrics;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What one chunk's request goes to.
struct Target {
    origin: Origin,
    uri: http::Uri,
    /// `POST http://...`, for log lines.
    request: String,
    headers: http::HeaderMap,
}

#[derive(Debug)]
pub struct HttpOut {
    pub id: String,
    config: HttpOutputConfig,
    pool: Pool,
    metrics: Arc<HttpOutputMetrics>,
}

impl HttpOut {
    pub fn new(id: String, config: HttpOutputConfig) -> Self {
        let options = ConnectOptions {
            connect_timeout: config.open_timeout,
            tls: config.tls.clone(),
        };
        let pool = Pool::new(options, config.connections);
        // Fluentd takes these as `proxy`'s default; ferry goes to the endpoint directly.
        if let Some(var) = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy"]
            .into_iter()
            .find(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
        {
            tracing::warn!(
                "output {id}: {var} is set, but the http output does not go through a proxy: it connects to {} directly",
                config.endpoint.source()
            );
        }
        Self {
            id,
            config,
            pool,
            metrics: Arc::default(),
        }
    }

    pub fn metrics(&self) -> &HttpOutputMetrics {
        &self.metrics
    }

    /// The endpoint as configured (placeholders unfilled).
    pub fn endpoint(&self) -> &str {
        self.config.endpoint.source()
    }

    /// Sends one chunk; `Ok` when the endpoint answered it with a success (or, with
    /// `error_response_as_unrecoverable false`, with an error that deletes it).
    pub async fn write_chunk(&self, chunk: &Chunk) -> Result<(), SinkError> {
        let target = self.target(chunk)?;
        let m = &self.metrics;
        let failed = |source: ClientError| {
            m.retryable_errors.fetch_add(1, Ordering::Relaxed);
            let e = HttpOutputError::Request {
                request: target.request.clone(),
                source,
            };
            m.set_last_error(e.to_string());
            SinkError::Http(e)
        };
        let taken = self.pool.take(&target.origin).await.map_err(failed)?;
        let mut connection = taken.connection;
        if !taken.reused {
            m.connections_opened.fetch_add(1, Ordering::Relaxed);
        }
        let mut result = self.send(&mut connection, chunk, &target).await;
        if taken.reused && matches!(&result, Err(Failed::Client(e)) if e.is_stale()) {
            // The server closed the idle connection and nothing was sent: once more, at once.
            m.stale_reconnects.fetch_add(1, Ordering::Relaxed);
            connection = Connection::open(&target.origin, self.pool.options())
                .await
                .map_err(failed)?;
            m.connections_opened.fetch_add(1, Ordering::Relaxed);
            result = self.send(&mut connection, chunk, &target).await;
        }
        self.pool.put(connection);
        match result {
            Ok(answer) => self.settle(chunk, &target, &answer),
            Err(Failed::Body(e)) => Err(e),
            Err(Failed::Client(e)) => Err(failed(e)),
        }
    }

    /// The request of one chunk: URL and headers filled from its key.
    fn target(&self, chunk: &Chunk) -> Result<Target, HttpOutputError> {
        let c = &self.config;
        let chunk_id = chunk.id().to_hex();
        let unsendable = |reason: String| HttpOutputError::Unsendable {
            chunk: chunk_id.clone(),
            reason,
        };
        let url = c.endpoint.render(chunk.key(), &chunk_id).text();
        let uri: http::Uri = url
            .parse()
            .map_err(|e| unsendable(format!("endpoint '{url}' is not a URL: {e}")))?;
        let origin = Origin::of(&uri).map_err(|e| unsendable(format!("endpoint '{url}': {e}")))?;
        if c.dynamic_host && !c.allowed_hosts.iter().any(|h| h == &origin.host) {
            return Err(unsendable(format!(
                "endpoint '{url}': host {} is not in allowed_hosts",
                origin.host
            )));
        }
        if origin.tls && c.tls.is_none() {
            return Err(unsendable(format!(
                "endpoint '{url}' is https but the configured endpoint is not"
            )));
        }
        let mut headers = http::HeaderMap::new();
        for (name, value) in &c.headers {
            headers.insert(name.clone(), value.clone());
        }
        for (name, template) in &c.headers_from_placeholders {
            let value = template.render(chunk.key(), &chunk_id).text();
            let value = http::HeaderValue::from_str(&value)
                .map_err(|_| unsendable(format!("header {name}: '{value}' cannot be sent")))?;
            headers.insert(name.clone(), value);
        }
        if c.compress == config::Compress::Gzip {
            headers.insert(
                header::CONTENT_ENCODING,
                http::HeaderValue::from_static("gzip"),
            );
        }
        headers.insert(header::CONTENT_TYPE, c.content_type.clone());
        if let Some(auth) = &c.authorization {
            headers.insert(header::AUTHORIZATION, auth.clone());
        }
        let host = http::HeaderValue::from_str(&origin.host_header())
            .map_err(|_| unsendable(format!("endpoint '{url}': bad host")))?;
        headers.insert(header::HOST, host);
        headers
            .entry(header::USER_AGENT)
            .or_insert(http::HeaderValue::from_static(concat!(
                "ferry/",
                env!("CARGO_PKG_VERSION")
            )));
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let uri = path
            .parse()
            .map_err(|e| unsendable(format!("endpoint '{url}': {e}")))?;
        Ok(Target {
            origin,
            uri,
            request: format!("{} {url}", c.method),
            headers,
        })
    }

    /// One request on `connection`, its body streamed from the chunk.
    async fn send(
        &self,
        connection: &mut Connection,
        chunk: &Chunk,
        target: &Target,
    ) -> Result<Answer, Failed<SinkError>> {
        let c = &self.config;
        let (body, mut tx) = channel(c.read_timeout);
        let mut request = http::Request::new(body);
        *request.method_mut() = c.method.clone();
        *request.uri_mut() = target.uri.clone();
        *request.headers_mut() = target.headers.clone();
        let tag = chunk.key().tag.clone().unwrap_or_default();
        let lost = |source: ClientError| {
            SinkError::Http(HttpOutputError::Request {
                request: target.request.clone(),
                source,
            })
        };
        let feed = async {
            let mut segments = SegmentReader::new(chunk)?;
            let mut writer = BodyWriter::new(&c.format, c.json_array, c.compress);
            while let Some(stream) = segments.next().await? {
                let piece = writer.segment(&tag, &stream);
                tx.send(piece).await.map_err(lost)?;
            }
            let broken = writer.broken;
            if broken > 0 {
                self.metrics
                    .broken_entries
                    .fetch_add(broken, Ordering::Relaxed);
                tracing::error!(
                    "output {}: {broken} events of chunk {} could not be formatted and were left out",
                    self.id,
                    chunk.id().to_hex()
                );
            }
            tx.send(writer.finish()).await.map_err(lost)?;
            tx.finish().await.map_err(lost)
        };
        self.metrics.requests.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            "output {}: {} with chunk {}",
            self.id,
            target.request,
            chunk.id().to_hex()
        );
        connection.exchange(request, c.read_timeout, feed).await
    }

    /// Settles a chunk on its answer.
    fn settle(&self, chunk: &Chunk, target: &Target, answer: &Answer) -> Result<(), SinkError> {
        let m = &self.metrics;
        let status = answer.status;
        m.answered(status.as_u16());
        m.bytes_sent.fetch_add(answer.sent, Ordering::Relaxed);
        let request = target.request.clone();
        let error = if status.is_success() && answer.body_complete {
            m.records_sent.fetch_add(chunk.records(), Ordering::Relaxed);
            return Ok(());
        } else if status.is_success() {
            m.retryable_errors.fetch_add(1, Ordering::Relaxed);
            HttpOutputError::EarlyAnswer { request, status }
        } else if self
            .config
            .retryable_response_codes
            .contains(&status.as_u16())
        {
            m.retryable_errors.fetch_add(1, Ordering::Relaxed);
            HttpOutputError::RetryableResponse {
                request,
                status,
                body: answer.body_text(),
            }
        } else {
            m.unrecoverable_errors.fetch_add(1, Ordering::Relaxed);
            let e = HttpOutputError::ErrorResponse {
                request,
                status,
                body: answer.body_text(),
            };
            if self.config.on_error_response == OnErrorResponse::Drop {
                m.dropped_records
                    .fetch_add(chunk.records(), Ordering::Relaxed);
                m.set_last_error(e.to_string());
                tracing::error!(
                    "output {}: got error response from '{}' : {e}; chunk {} ({} events) deleted (error_response_as_unrecoverable false)",
                    self.id,
                    target.request,
                    chunk.id().to_hex(),
                    chunk.records()
                );
                return Ok(());
            }
            e
        };
        m.set_last_error(error.to_string());
        Err(SinkError::Http(error))
    }
}
