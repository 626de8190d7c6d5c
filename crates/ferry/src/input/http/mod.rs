//! `@type http` (Fluentd's in_http): events POSTed to `/<tag>`, answered once committed.
//!
//! Sockets, accept loops, connection slots and TLS are [`crate::input::net`]'s; HTTP is hyper's
//! ([`crate::http::server`]). This module is the configuration; [`serve`] answers requests,
//! [`body`] reads their events, [`metrics`] counts.
//!
//! - `POST /a/b` emits under tag `a.b`. The body is `application/json` (an object or an array
//!   of objects), `application/x-ndjson`, `application/msgpack`, or
//!   `application/x-www-form-urlencoded` with `json=`, `ndjson=` or `msgpack=`; the query string
//!   may carry those too. `Content-Encoding: gzip` and `deflate` are read.
//! - The answer comes after the request's events are committed to every buffer: 200 (or 204,
//!   or the 1×1 GIF), 400 naming what was wrong, 413 over `body_size_limit`, 503 with
//!   `Retry-After` when a buffer stayed full, 403 for a CORS origin not allowed.
//! - GET and HEAD answer 200 without emitting (health checks), as Fluentd answers GET.

pub mod body;
pub mod metrics;
pub mod serve;

use crate::input::net::config::TransportConfig;
use crate::input::net::{self, listen};
use crate::input::{InputHandle, Start};
use crate::parse::{ParseSetup, TimeSpec};
use ferry_config::Section;
pub use metrics::HttpInputMetrics;
use std::sync::Arc;
use std::time::Duration;

/// How a request's body becomes events.
#[derive(Debug, Clone)]
pub enum BodyParse {
    /// Fluentd's `in_http` parser: JSON, ndjson or msgpack by content type or parameter, the
    /// time from the `time` parameter or the record's time key.
    Default(TimeSpec),
    /// A `<parse>` of another type: the whole body is one text.
    Parser(ParseSetup),
}

/// A parsed `<source> @type http`.
#[derive(Debug, Clone)]
pub struct HttpInputConfig {
    pub label: Option<String>,
    pub bind: String,
    pub port: u16,
    pub body_size_limit: usize,
    pub keepalive_timeout: Duration,
    pub backlog: u32,
    pub add_http_headers: bool,
    pub add_remote_addr: bool,
    pub add_query_params: bool,
    /// `cors_allow_origins`; `None`: CORS is off.
    pub cors_allow_origins: Option<Vec<String>>,
    pub cors_allow_credentials: bool,
    pub respond_with_empty_img: bool,
    pub use_204_response: bool,
    pub dump_error_log: bool,
    pub parse: BodyParse,
    pub transport: TransportConfig,
}

impl HttpInputConfig {
    pub fn from_section(s: &Section<'_>) -> Self {
        let body_size_limit = s.opt_size("body_size_limit").map_or(32 * 1024 * 1024, |b| {
            usize::try_from(b.0).unwrap_or(usize::MAX)
        });
        if body_size_limit == 0 {
            s.error(
                Some("body_size_limit"),
                "body_size_limit must be at least 1",
            );
        }
        let keepalive_timeout = s.duration_or("keepalive_timeout", Duration::from_secs(10));
        if keepalive_timeout.is_zero() {
            s.error(
                Some("keepalive_timeout"),
                "keepalive_timeout must be more than 0",
            );
        }
        let backlog = s.u64_or("backlog", 1024);
        let backlog = u32::try_from(backlog).unwrap_or_else(|_| {
            s.error(Some("backlog"), "backlog is at most 4294967295");
            1024
        });
        let _ = s.opt_duration("blocking_timeout");
        s.no_effect(
            "blocking_timeout",
            "each connection is its own task; none waits on another",
        );
        let cors_allow_origins = s.array("cors_allow_origins");
        let cors_allow_credentials = s.bool_or("cors_allow_credentials", false);
        if cors_allow_credentials
            && cors_allow_origins
                .as_ref()
                .is_none_or(|o| o.iter().any(|o| o == "*"))
        {
            s.error(
                Some("cors_allow_credentials"),
                "Cannot enable cors_allow_credentials without specific origins",
            );
        }
        let parse = match s.child("parse") {
            Some(p) if matches!(p.plugin_type(), None | Some("in_http")) => {
                let time = crate::parse::read_time_spec(&p, Some("time"));
                p.finish();
                BodyParse::Default(time)
            }
            Some(p) => {
                let setup = ParseSetup::from_section(&p);
                if setup.multiline.is_some() {
                    p.error(
                        Some("@type"),
                        "multiline assembles lines of a file; the http input parses each body alone",
                    );
                }
                p.finish();
                BodyParse::Parser(setup)
            }
            None => BodyParse::Default(crate::parse::default_time_spec(Some("time"))),
        };
        let transport = match s.child("transport") {
            Some(t) => net::config::read(t),
            None => TransportConfig::Tcp,
        };
        Self {
            label: s.label().map(str::to_string),
            bind: s.str_or("bind", "0.0.0.0"),
            port: s.port_or("port", 9880),
            body_size_limit: body_size_limit.max(1),
            keepalive_timeout: keepalive_timeout.max(Duration::from_millis(1)),
            backlog,
            add_http_headers: s.bool_or("add_http_headers", false),
            add_remote_addr: s.bool_or("add_remote_addr", false),
            add_query_params: s.bool_or("add_query_params", false),
            cors_allow_origins,
            cors_allow_credentials,
            respond_with_empty_img: s.bool_or("respond_with_empty_img", false),
            use_204_response: s.bool_or("use_204_response", false),
            dump_error_log: s.bool_or("dump_error_log", true),
            parse,
            transport,
        }
    }
}

/// Binds the socket and spawns the accept loop; returns the input's counters.
pub async fn start(
    id: String,
    config: HttpInputConfig,
    start: Start<'_>,
) -> anyhow::Result<Arc<HttpInputMetrics>> {
    let name = format!("http input {id}");
    let metrics = match start.previous {
        Some(InputHandle::Http(m)) => Arc::clone(m),
        _ => Arc::new(HttpInputMetrics::default()),
    };
    let addr = listen::resolve_bind(&name, &config.bind, config.port).await?;
    let transport = config.transport.clone();
    let backlog = config.backlog;
    let input = Arc::new(serve::HttpInput::new(
        name.clone(),
        config.clone(),
        Arc::clone(start.routing),
        Arc::clone(&metrics),
    ));
    let listen = listen::StreamListen {
        addr,
        transport: &transport,
        tcp_keepalive: false,
        backlog,
    };
    let (local, kind) = listen::serve_streams(&start, &name, listen, &metrics.net, input).await?;
    tracing::info!(
        "listening http on {}:{} with {kind} ({name})",
        config.bind,
        local.port()
    );
    Ok(metrics)
}

#[cfg(test)]
mod tests;
