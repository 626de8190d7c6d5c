//! The client against a small server on a real socket that reads requests byte by byte.

use super::body::channel;
use super::connection::{Connection, Failed};
use super::pool::Pool;
use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the server read it.
#[derive(Debug, Clone)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

/// Reads one request (a chunked or sized body); `None` at the end of the stream.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Seen> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut b = [0u8; 4096];
        let n = s.read(&mut b).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&b[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    buf.drain(..head_end);
    let mut body = Vec::new();
    let lower = head.to_ascii_lowercase();
    if lower.contains("transfer-encoding: chunked") {
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                let mut b = [0u8; 4096];
                let n = s.read(&mut b).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&b[..n]);
            };
            let size =
                usize::from_str_radix(std::str::from_utf8(&buf[..line_end]).ok()?, 16).ok()?;
            while buf.len() < line_end + 2 + size + 2 {
                let mut b = [0u8; 4096];
                let n = s.read(&mut b).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&b[..n]);
            }
            body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
            buf.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break;
            }
        }
    }
    Some(Seen { head, body })
}

/// A server answering every request with `answer`; counts connections, keeps requests.
struct Server {
    port: u16,
    connections: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<Seen>>>,
}

async fn server(answer: &'static str, close_after_each: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, s) = (Arc::clone(&connections), Arc::clone(&seen));
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            c.fetch_add(1, Ordering::SeqCst);
            let s = Arc::clone(&s);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(req) = read_request(&mut stream, &mut buf).await {
                    s.lock().unwrap().push(req);
                    stream.write_all(answer.as_bytes()).await.unwrap();
                    if close_after_each {
                        return;
                    }
                }
            });
        }
    });
    Server {
        port,
        connections,
        seen,
    }
}

fn origin(port: u16) -> Origin {
    Origin::of(&format!("http://127.0.0.1:{port}/x").parse().unwrap()).unwrap()
}

fn options() -> ConnectOptions {
    ConnectOptions {
        connect_timeout: Duration::from_secs(2),
        tls: None,
    }
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

async fn post(
    conn: &mut Connection,
    port: u16,
    pieces: &[&'static [u8]],
) -> Result<connection::Answer, Failed<ClientError>> {
    let (body, mut tx) = channel(Duration::from_secs(2));
    let req = http::Request::post("/x")
        .header(http::header::HOST, format!("127.0.0.1:{port}"))
        .body(body)
        .unwrap();
    let pieces = pieces.to_vec();
    let feed = async move {
        for p in pieces {
            tx.send(Bytes::from_static(p)).await?;
        }
        tx.finish().await
    };
    conn.exchange(req, Duration::from_secs(2), feed).await
}

#[tokio::test]
async fn a_kept_alive_connection_carries_each_streamed_body_whole() {
    let srv = server(OK, false).await;
    let pool = Pool::new(options(), 2);
    for i in 0..3 {
        let mut taken = pool.take(&origin(srv.port)).await.unwrap();
        assert_eq!(taken.reused, i > 0);
        let answer = post(&mut taken.connection, srv.port, &[b"[1,", b"2", b"]"])
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.body_text(), "ok");
        assert!(answer.body_complete);
        assert_eq!(answer.sent, 5);
        pool.put(taken.connection);
    }
    assert_eq!(srv.connections.load(Ordering::SeqCst), 1);
    let seen = srv.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for s in seen {
        assert_eq!(s.body, b"[1,2]");
        assert!(s.head.starts_with("POST /x HTTP/1.1\r\n"), "{}", s.head);
    }
}

#[tokio::test]
async fn a_connection_the_server_closed_is_not_reused() {
    let srv = server(OK, true).await;
    let pool = Pool::new(options(), 2);
    for _ in 0..2 {
        let mut taken = pool.take(&origin(srv.port)).await.unwrap();
        assert!(!taken.reused);
        post(&mut taken.connection, srv.port, &[b"a"])
            .await
            .unwrap();
        pool.put(taken.connection);
        // Let the close arrive.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(srv.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn connection_close_in_the_answer_closes_the_connection() {
    let srv = server(
        "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
        false,
    )
    .await;
    let mut conn = Connection::open(&origin(srv.port), &options())
        .await
        .unwrap();
    post(&mut conn, srv.port, &[b"a"]).await.unwrap();
    assert!(conn.is_closed());
}

#[tokio::test]
async fn a_body_that_fails_is_never_ended_cleanly() {
    let srv = server(OK, false).await;
    let mut conn = Connection::open(&origin(srv.port), &options())
        .await
        .unwrap();
    let (body, mut tx) = channel(Duration::from_secs(2));
    let req = http::Request::post("/x").body(body).unwrap();
    let feed = async move {
        tx.send(Bytes::from_static(b"half")).await?;
        tokio::time::sleep(Duration::from_millis(50)).await;
        Err::<u64, ClientError>(ClientError::BodyClosed)
    };
    let r = conn.exchange(req, Duration::from_secs(2), feed).await;
    assert!(matches!(r, Err(Failed::Body(_))));
    assert!(conn.is_closed());
    drop(conn);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        srv.seen.lock().unwrap().is_empty(),
        "the server never read a whole request"
    );
}

#[tokio::test]
async fn a_server_that_does_not_answer_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let _ = read_request(&mut s, &mut buf).await;
        tokio::time::sleep(Duration::from_secs(10)).await;
    });
    let mut conn = Connection::open(&origin(port), &options()).await.unwrap();
    let (body, tx) = channel(Duration::from_secs(2));
    let req = http::Request::post("/x").body(body).unwrap();
    let started = std::time::Instant::now();
    let r = conn
        .exchange(req, Duration::from_millis(300), tx.finish())
        .await;
    assert!(
        matches!(r, Err(Failed::Client(ClientError::ReadTimeout(_)))),
        "{r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn an_answer_before_the_whole_body_is_marked_incomplete() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut head = vec![0u8; 64];
        let _ = s.read(&mut head).await;
        s.write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 8\r\n\r\ntoo big!")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let mut conn = Connection::open(&origin(port), &options()).await.unwrap();
    let (body, mut tx) = channel(Duration::from_secs(5));
    let req = http::Request::post("/x").body(body).unwrap();
    let feed = async move {
        tx.send(Bytes::from_static(b"first")).await?;
        // The rest never comes before the answer.
        tokio::time::sleep(Duration::from_secs(3)).await;
        tx.finish().await
    };
    let answer = conn
        .exchange(req, Duration::from_secs(2), feed)
        .await
        .unwrap();
    assert_eq!(answer.status, 413);
    assert_eq!(answer.body_text(), "too big!");
    assert!(!answer.body_complete);
    assert!(conn.is_closed());
}

#[tokio::test]
async fn nobody_listening_is_a_connect_error() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = Connection::open(&origin(port), &options())
        .await
        .unwrap_err();
    assert!(matches!(e, ClientError::Connect(_)), "{e}");
}

#[test]
fn origins_come_from_urls() {
    let o = Origin::of(&"https://[::1]/p".parse().unwrap()).unwrap();
    assert_eq!((o.tls, o.port, o.connect_host()), (true, 443, "::1"));
    assert_eq!(o.host_header(), "[::1]");
    let o = Origin::of(&"http://h:8080/p?q".parse().unwrap()).unwrap();
    assert_eq!(o.host_header(), "h:8080");
    assert!(Origin::of(&"ftp://h/".parse().unwrap()).is_err());
    assert!(Origin::of(&"/p".parse().unwrap()).is_err());
}
