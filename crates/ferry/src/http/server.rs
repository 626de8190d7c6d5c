//! Serving HTTP/1.1 on hyper.
//!
//! [`serve_connection`] serves one accepted connection (plain or TLS) with a service, under
//! [`Limits`]: the request head must arrive within `head_timeout` (this also bounds how long a
//! kept-alive connection may sit idle between requests, and stops a client that sends its head
//! a byte at a time) and fit in `max_head` bytes. A response to `HEAD` carries the head alone.
//!
//! [`serve_on_thread`] runs the admin endpoints: its own OS thread and single-threaded runtime,
//! so a saturated data path never delays a scrape.

use bytes::Bytes;
use http::StatusCode;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;

/// A whole response body.
pub type Body = http_body_util::Full<Bytes>;
/// A response ferry sends.
pub type Response = http::Response<Body>;
/// A request as hyper hands it over, its body still on the wire.
pub type Request = http::Request<Incoming>;

/// A response with a body and its content type.
pub fn response(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Response {
    let mut r = http::Response::new(Body::new(body.into()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r
}

/// What a connection may take.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// From the end of one response (or the accept) to the end of the next request head.
    pub head_timeout: Duration,
    /// The largest request head, bytes (at least 8 KiB, hyper's floor).
    pub max_head: usize,
    /// More than one request per connection.
    pub keep_alive: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            head_timeout: Duration::from_secs(10),
            max_head: 64 * 1024,
            keep_alive: true,
        }
    }
}

/// Serves requests on `io` with `service` until the client closes, a limit is hit, or the
/// connection fails (the error, for the caller's debug log).
pub async fn serve_connection<S, F, Fut>(
    io: S,
    limits: Limits,
    service: F,
) -> Result<(), hyper::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: Fn(Request) -> Fut + Send + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let service = Arc::new(service);
    hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.head_timeout)
        .max_buf_size(limits.max_head.max(8 * 1024))
        .keep_alive(limits.keep_alive)
        .serve_connection(
            TokioIo::new(io),
            service_fn(move |req| {
                let service = Arc::clone(&service);
                async move { Ok::<_, Infallible>(service(req).await) }
            }),
        )
        .await
}

/// Routes a GET or HEAD (path, query string) to its response; runs on the admin thread and may
/// block it briefly (the RPC endpoint waits for the main loop).
pub type Handler = Arc<dyn Fn(&str, &str) -> Response + Send + Sync>;

/// Serves each `(listener, handler)` on an OS thread of its own called `name`, with its own
/// single-threaded runtime, for the life of the process. The listeners are bound already (bind
/// errors surfaced at start-up) and non-blocking. Only GET and HEAD are served; a head must
/// arrive within 5 s and fit in 8 KiB, and a connection lasts at most 30 s.
pub fn serve_on_thread(
    name: &str,
    listeners: Vec<(std::net::TcpListener, Handler)>,
) -> std::io::Result<()> {
    let what = name.to_string();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!("{what}: cannot start its runtime: {e}");
                    return;
                }
            };
            rt.block_on(async move {
                let mut servers = Vec::new();
                for (l, handler) in listeners {
                    match TcpListener::from_std(l) {
                        Ok(listener) => {
                            servers.push(tokio::spawn(serve_admin(listener, handler)));
                        }
                        Err(e) => tracing::error!("{what}: cannot serve a listener: {e}"),
                    }
                }
                for s in servers {
                    let _ = s.await;
                }
            });
        })?;
    Ok(())
}

/// How long an admin connection may take from accept to its last answer.
const ADMIN_CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);

async fn serve_admin(listener: TcpListener, handler: Handler) {
    let limits = Limits {
        head_timeout: Duration::from_secs(5),
        max_head: 8 * 1024,
        keep_alive: true,
    };
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let handler = Arc::clone(&handler);
                tokio::spawn(async move {
                    let served = serve_connection(stream, limits, move |req: Request| {
                        let handler = Arc::clone(&handler);
                        async move { admin_answer(&handler, &req) }
                    });
                    match tokio::time::timeout(ADMIN_CONNECTION_TIMEOUT, served).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::debug!("admin connection from {peer}: {e}"),
                        Err(_) => tracing::debug!("admin connection from {peer} timed out"),
                    }
                });
            }
            Err(e) => {
                tracing::warn!("admin listener accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn admin_answer(handler: &Handler, req: &Request) -> Response {
    let method = req.method();
    let r = if method == http::Method::GET || method == http::Method::HEAD {
        handler(req.uri().path(), req.uri().query().unwrap_or(""))
    } else {
        let mut r = response(405, "text/plain", "only GET and HEAD\n");
        r.headers_mut().insert(
            http::header::ALLOW,
            http::HeaderValue::from_static("GET, HEAD"),
        );
        r
    };
    tracing::debug!("admin {method} {}: {}", req.uri(), r.status());
    r
}
