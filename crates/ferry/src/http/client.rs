//! Requests to HTTP servers, on hyper's HTTP/1.1 client.
//!
//! [`get`] is the blocking GET that `ferry status` and the tests use to read the admin
//! endpoints.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use std::io;
use std::time::Duration;

/// How long [`get`] waits for the whole answer.
const GET_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest body [`get`] reads.
const GET_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// GETs `path` from `addr` (`host:port`, `http://` allowed) and returns the status and body.
/// Blocks the calling thread (the request runs on a thread and runtime of its own, so it may be
/// called from anywhere, an async task included).
pub fn get(addr: &str, path: &str) -> io::Result<(u16, String)> {
    let addr = addr
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let path = path.to_string();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            tokio::time::timeout(GET_TIMEOUT, get_async(&addr, &path))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("GET http://{addr}{path}: no answer within {GET_TIMEOUT:?}"),
                    )
                })?
        })
    })
    .join()
    .map_err(|_| io::Error::other("the GET thread panicked"))?
}

async fn get_async(addr: &str, path: &str) -> io::Result<(u16, String)> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(io::Error::other)?;
    tokio::spawn(conn);
    let req = http::Request::get(path)
        .header(http::header::HOST, addr)
        .body(Empty::<Bytes>::new())
        .map_err(io::Error::other)?;
    let resp = sender.send_request(req).await.map_err(io::Error::other)?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), GET_BODY_LIMIT)
        .collect()
        .await
        .map_err(|e| io::Error::other(e.to_string()))?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
