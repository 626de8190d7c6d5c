//! A deliberately small HTTP/1.1 server for the admin endpoints: GET only, one request per
//! connection, request head capped at 8 KiB and 5 s, `Connection: close`. It runs on its own OS
//! thread with its own single-threaded runtime, so a saturated data path never delays a scrape.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEAD: usize = 8 * 1024;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// An answer to one request.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn ok(content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status: 200,
            content_type,
            body: body.into(),
        }
    }

    pub fn not_found() -> Self {
        Self {
            status: 404,
            content_type: "text/plain",
            body: b"not found\n".to_vec(),
        }
    }

    fn reason(&self) -> &'static str {
        match self.status {
            200 => "OK",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            503 => "Service Unavailable",
            _ => "Error",
        }
    }
}

/// Routes a path (query string removed) to a response.
pub type Handler = Arc<dyn Fn(&str, &str) -> Response + Send + Sync>;

/// Serves each `(listener, handler)` on an OS thread of its own called `name`, with its own
/// single-threaded runtime, for the life of the process. The listeners are bound already (bind
/// errors surfaced at start-up) and non-blocking.
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
                        Ok(listener) => servers.push(tokio::spawn(serve(listener, handler))),
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

/// Serves `handler` on `listener` until the runtime stops.
pub async fn serve(listener: TcpListener, handler: Handler) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let handler = Arc::clone(&handler);
                tokio::spawn(async move {
                    if tokio::time::timeout(REQUEST_TIMEOUT, answer(stream, peer, handler))
                        .await
                        .is_err()
                    {
                        tracing::debug!("admin request from {peer} timed out");
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

async fn answer(mut stream: TcpStream, peer: SocketAddr, handler: Handler) {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
        }
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if head.len() > MAX_HEAD {
            let _ = write(
                &mut stream,
                &Response {
                    status: 400,
                    content_type: "text/plain",
                    body: b"request head too large\n".to_vec(),
                },
                false,
            )
            .await;
            return;
        }
    }
    let line = head.split(|b| *b == b'\r').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let response = if method == "GET" || method == "HEAD" {
        handler(path, query)
    } else {
        Response {
            status: 405,
            content_type: "text/plain",
            body: b"only GET\n".to_vec(),
        }
    };
    tracing::debug!("admin {method} {target} from {peer}: {}", response.status);
    let _ = write(&mut stream, &response, method == "HEAD").await;
}

/// Writes the response; to a HEAD request, the head alone (with the length GET would have).
async fn write(stream: &mut TcpStream, r: &Response, head_only: bool) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        r.reason(),
        r.content_type,
        r.body.len()
    );
    let mut all = head.into_bytes();
    if !head_only {
        all.extend_from_slice(&r.body);
    }
    stream.write_all(&all).await?;
    stream.shutdown().await
}

/// A blocking GET for `ferry status` and tests: returns (status, body).
pub fn get(url_base: &str, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let addr = url_base.trim_start_matches("http://").trim_end_matches('/');
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 || raw.len() > 64 * 1024 * 1024 {
            break;
        }
        raw.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}
