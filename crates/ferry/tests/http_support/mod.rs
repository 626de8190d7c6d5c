//! A small HTTP receiver for the http output's tests: hyper's server on a real socket (plain or
//! TLS), answering each request as the test's script says and keeping what it received:
//! method, path, headers, the body (gunzipped when `Content-Encoding: gzip`) and the events in
//! it (`seq` of each JSON object, JSON array element or msgpack map).
#![allow(dead_code, clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    /// The body after gunzip (when gzipped).
    pub body: Vec<u8>,
    /// The body's bytes on the wire.
    pub wire_len: usize,
    /// The `seq` of every event in the body.
    pub seqs: Vec<u64>,
    /// The status it was answered with.
    pub status: u16,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// How the receiver answers: the status (and body) for the request, given the requests before
/// it; an optional delay before the answer.
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn with_body(mut self, body: &str) -> Self {
        self.body = body.to_string();
        self
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Script = dyn Fn(&Seen, usize) -> Answer + Send + Sync;

/// TLS for the receiver.
pub struct TlsSetup {
    pub cert: std::path::PathBuf,
    pub key: std::path::PathBuf,
    /// Require a client certificate signed by this CA.
    pub client_ca: Option<std::path::PathBuf>,
    /// Only TLS 1.3 (else only TLS 1.2).
    pub tls13_only: bool,
    /// TLS 1.2 suites offered (all when empty).
    pub suites: Vec<rustls::CipherSuite>,
}

/// A running receiver, stopped when dropped.
pub struct Receiver {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    connections: Arc<AtomicUsize>,
    handshake_failures: Arc<AtomicUsize>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

#[allow(clippy::disallowed_methods)] // bounded by `take`
fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(b)
        .take(1 << 30)
        .read_to_end(&mut out)
        .expect("a gzip body");
    out
}

/// The `seq` of every event in a body: JSON lines, a JSON array or msgpack maps.
pub fn seqs_in(body: &[u8], content_type: &str) -> Vec<u64> {
    let seq = |v: &serde_json::Value| v["seq"].as_u64();
    if content_type.contains("msgpack") {
        let mut rest = body;
        let mut out = Vec::new();
        while !rest.is_empty() {
            let (v, used) = ferry_proto::msgpack::Value::decode(rest).unwrap();
            if let Some(ferry_proto::msgpack::Value::UInt(s)) = v.get("seq") {
                out.push(*s);
            }
            rest = &rest[used..];
        }
        return out;
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Array(items)) => items.iter().filter_map(seq).collect(),
        Ok(one) => seq(&one).into_iter().collect(),
        Err(_) => body
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice::<serde_json::Value>(l).unwrap())
            .filter_map(|v| seq(&v))
            .collect(),
    }
}

impl Receiver {
    /// A plain HTTP receiver on 127.0.0.1.
    pub fn start(script: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Self {
        Self::start_with(None, script)
    }

    pub fn start_with(
        tls: Option<TlsSetup>,
        script: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static,
    ) -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let handshake_failures = Arc::new(AtomicUsize::new(0));
        let acceptor = tls.map(|t| tokio_rustls::TlsAcceptor::from(server_config(&t)));
        let script: Arc<Script> = Arc::new(script);
        let (s, c, h) = (
            Arc::clone(&seen),
            Arc::clone(&connections),
            Arc::clone(&handshake_failures),
        );
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                c.fetch_add(1, Ordering::SeqCst);
                let (s, script, acceptor, h) = (
                    Arc::clone(&s),
                    Arc::clone(&script),
                    acceptor.clone(),
                    Arc::clone(&h),
                );
                tokio::spawn(async move {
                    match acceptor {
                        None => serve(TokioIo::new(tcp), s, script).await,
                        Some(a) => match a.accept(tcp).await {
                            Ok(tls) => serve(TokioIo::new(tls), s, script).await,
                            Err(_) => {
                                h.fetch_add(1, Ordering::SeqCst);
                            }
                        },
                    }
                });
            }
        });
        Self {
            port,
            seen,
            connections,
            handshake_failures,
            rt: Some(rt),
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn handshake_failures(&self) -> usize {
        self.handshake_failures.load(Ordering::SeqCst)
    }

    /// The seqs of requests answered with a success, in order.
    pub fn accepted_seqs(&self) -> Vec<u64> {
        self.requests()
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .flat_map(|r| r.seqs.clone())
            .collect()
    }

    /// Waits until the accepted events hold every seq of `0..n`; returns them all (duplicates
    /// included).
    pub fn wait_for(&self, n: u64, timeout: Duration) -> Vec<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.accepted_seqs();
            let mut distinct = got.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() as u64 >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} events arrived within {timeout:?}; requests: {}",
                distinct.len(),
                self.requests().len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

async fn serve<I>(io: TokioIo<I>, seen: Arc<Mutex<Vec<Seen>>>, script: Arc<Script>)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let seen = Arc::clone(&seen);
        let script = Arc::clone(&script);
        async move {
            let method = req.method().to_string();
            let path = req.uri().to_string();
            let headers: Vec<(String, String)> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
                .collect();
            let raw = req.into_body().collect().await?.to_bytes();
            let mut r = Seen {
                method,
                path,
                headers,
                body: Vec::new(),
                wire_len: raw.len(),
                seqs: Vec::new(),
                status: 0,
            };
            r.body = if r.header("content-encoding") == Some("gzip") {
                gunzip(&raw)
            } else {
                raw.to_vec()
            };
            r.seqs = seqs_in(&r.body, r.header("content-type").unwrap_or(""));
            let index = seen.lock().unwrap().len();
            let answer = script(&r, index);
            r.status = answer.status;
            seen.lock().unwrap().push(r);
            tokio::time::sleep(answer.delay).await;
            let mut resp = hyper::Response::new(Full::new(Bytes::from(answer.body)));
            *resp.status_mut() = hyper::StatusCode::from_u16(answer.status).unwrap();
            Ok::<_, hyper::Error>(resp)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}

fn server_config(t: &TlsSetup) -> Arc<rustls::ServerConfig> {
    let certs = ferry::tls::load_certs(&t.cert, "cert").unwrap();
    let key = ferry::tls::load_key(&t.key, "key").unwrap();
    let mut provider = rustls::crypto::ring::default_provider();
    if !t.suites.is_empty() {
        provider
            .cipher_suites
            .retain(|s| t.suites.contains(&s.suite()));
    }
    let versions: &[&rustls::SupportedProtocolVersion] = if t.tls13_only {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12]
    };
    let provider = Arc::new(provider);
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .unwrap();
    let builder = match &t.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in ferry::tls::load_certs(ca, "ca").unwrap() {
                roots.add(c).unwrap();
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(builder.with_single_cert(certs, key).unwrap())
}
