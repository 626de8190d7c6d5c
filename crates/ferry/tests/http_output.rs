//! The http output against a small HTTP receiver on a real socket (`http_support`): numbered
//! events sent by a Forward client with acks go through a real ferry process, and every event
//! is counted where the receiver took it.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod http_support;

use common::{AckedSender, Ferry, Pki, free_port, metric, metrics};
use http_support::{Answer, Receiver, TlsSetup};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A forward source on `port`, the metrics on `admin`, and an http output with `params`
/// flushing every 100 ms in chunks of at most `records` events and retrying quickly.
fn config(port: u16, admin: u16, params: &str, buffer: &str) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match **>\n  @type http\n  @id out\n{params}\n  <buffer{buffer}>\n    flush_mode interval\n    flush_interval 100ms\n    chunk_limit_records 100\n    retry_wait 200ms\n    retry_max_interval 400ms\n    retry_randomize false\n  </buffer>\n</match>\n"
    )
}

/// Sends `seqs` tagged `tag` in requests of 50 events, each acknowledged by ferry.
fn send(port: u16, tag: &str, seqs: std::ops::Range<u64>) {
    let mut sender = AckedSender::connect(port).unwrap();
    let mut at = seqs.start;
    while at < seqs.end {
        let end = (at + 50).min(seqs.end);
        sender.send(tag, at..end, 20).unwrap();
        at = end;
    }
}

fn wait_until(what: &str, timeout: Duration, ferry: &Ferry, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {timeout:?}; ferry's log:\n{}",
            ferry.stderr_so_far().join("\n")
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn distinct(seqs: &[u64]) -> BTreeSet<u64> {
    seqs.iter().copied().collect()
}

#[test]
fn every_event_arrives_after_503s_and_timeouts_and_duplicates_are_counted() {
    const N: u64 = 2000;
    // The first 4 requests get 503; the next 2 are taken but answered after read_timeout (the
    // events arrive, ferry sees a timeout and sends them again: duplicates); then 200.
    let recv = Receiver::start(|_, i| match i {
        0..4 => Answer::status(503).with_body("Service Unavailable: warming up"),
        4..6 => Answer::status(200).after(Duration::from_millis(1500)),
        _ => Answer::status(200),
    });
    let (port, admin) = (free_port(), free_port());
    let params = format!(
        "  endpoint http://127.0.0.1:{}/ingest\n  read_timeout 1\n",
        recv.port
    );
    let ferry = Ferry::start(&config(port, admin, &params, ""), port);
    send(port, "app.events", 0..N);
    recv.wait_for(N, Duration::from_secs(30));
    // Each chunk is counted once, when a 2xx answered it: all of them, then nothing is pending.
    wait_until(
        "every chunk delivered",
        Duration::from_secs(10),
        &ferry,
        || {
            metric(
                &metrics(admin),
                "ferry_http_output_records_total{plugin_id=\"out\",type=\"http\"}",
            ) == N as f64
        },
    );
    let got = recv.accepted_seqs();
    let all = distinct(&got);
    assert_eq!(all, (0..N).collect(), "every acknowledged event arrived");
    let duplicates = got.len() as u64 - N;
    // Only the events of the requests whose answer came too late may arrive twice.
    let late: u64 = recv.requests()[4..6]
        .iter()
        .map(|r| r.seqs.len() as u64)
        .sum();
    assert!(
        duplicates <= late,
        "{duplicates} duplicates, {late} events answered late"
    );
    eprintln!("{N} events: {duplicates} duplicates from {late} events answered after read_timeout");
    let text = metrics(admin);
    let m = |name: &str| metric(&text, name);
    assert!(m("fluentd_output_status_retry_count{plugin_id=\"out\",type=\"http\"}") >= 6.0);
    assert_eq!(
        m("ferry_http_output_responses_total{plugin_id=\"out\",type=\"http\",class=\"5xx\"}"),
        4.0
    );
    assert!(m("ferry_http_output_retryable_errors_total{plugin_id=\"out\",type=\"http\"}") >= 6.0);
    assert_eq!(
        m("ferry_http_output_unrecoverable_errors_total{plugin_id=\"out\",type=\"http\"}"),
        0.0
    );
    let log = ferry.stderr_so_far().join("\n");
    assert!(
        log.contains("POST http://127.0.0.1:")
            && log.contains(
                "/ingest answered 503 Service Unavailable: Service Unavailable: warming up"
            ),
        "the log names the endpoint, the status and the answer: {log}"
    );
    assert!(log.contains("no answer within 1s (read_timeout)"), "{log}");
    // The operator's views: `ferry status` and the state dump.
    let status = common::ferry_status(admin, "0.2");
    let line = format!(
        "    endpoint http://127.0.0.1:{}/ingest  requests {}",
        recv.port,
        recv.requests().len()
    );
    assert!(status.contains(&line), "{line} in:\n{status}");
    assert!(status.contains("5xx 4"), "{status}");
    let (_, dump) = ferry::http::client::get(&format!("127.0.0.1:{admin}"), "/api/dump").unwrap();
    assert!(dump.contains("\"http_retryable_errors\""), "{dump}");
}

#[test]
fn an_error_answer_sends_the_chunk_to_the_secondary_without_retrying_it() {
    const N: u64 = 300;
    let recv = Receiver::start(|r, _| {
        if r.path.starts_with("/refuse") {
            Answer::status(400).with_body("{\"error\":\"unknown field pad\"}")
        } else {
            Answer::status(200)
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("dump");
    let (port, admin) = (free_port(), free_port());
    // The host comes from the tag: `localhost` is allowed, `elsewhere` is not.
    let params = format!(
        "  endpoint http://${{tag[0]}}:{}/${{tag[1]}}\n  allowed_hosts localhost\n\
         <secondary>\n    @type secondary_file\n    directory {}\n  </secondary>\n",
        recv.port,
        dump.display()
    );
    let ferry = Ferry::start(&config(port, admin, &params, " tag"), port);
    send(port, "localhost.refuse", 0..N);
    send(port, "elsewhere.ok", N..2 * N);
    send(port, "localhost.ok", 2 * N..3 * N);
    let in_dump = |dump: &std::path::Path| -> Vec<u64> {
        let mut seqs = Vec::new();
        for entry in std::fs::read_dir(dump).into_iter().flatten().flatten() {
            // A file being written is renamed into place: one listed a moment ago may be gone,
            // and a hidden one is not whole yet.
            if entry.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(bytes) = std::fs::read(entry.path()) else {
                continue;
            };
            for e in ferry_proto::entries::iter(&bytes) {
                let (v, _) = ferry_proto::msgpack::Value::decode(e.unwrap().record).unwrap();
                if let Some(ferry_proto::msgpack::Value::UInt(s)) = v.get("seq") {
                    seqs.push(*s);
                }
            }
        }
        seqs
    };
    wait_until(
        "the refused chunks in the secondary",
        Duration::from_secs(20),
        &ferry,
        || in_dump(&dump).len() as u64 == 2 * N && recv.accepted_seqs().len() as u64 == N,
    );
    // Nothing is retried: wait for retries that would come, then count again.
    thread::sleep(Duration::from_millis(800));
    let mut dumped = in_dump(&dump);
    dumped.sort_unstable();
    assert_eq!(
        dumped,
        (0..2 * N).collect::<Vec<_>>(),
        "refused and unsendable chunks, whole"
    );
    assert_eq!(distinct(&recv.accepted_seqs()), (2 * N..3 * N).collect());
    let refused: Vec<_> = recv
        .requests()
        .into_iter()
        .filter(|r| r.path == "/refuse")
        .collect();
    let refused_events: usize = refused.iter().map(|r| r.seqs.len()).sum();
    assert_eq!(refused_events as u64, N, "each refused chunk was sent once");
    assert!(
        recv.requests()
            .iter()
            .all(|r| !r.path.contains("ok") || r.status == 200)
    );
    let text = metrics(admin);
    let m = |name: &str| metric(&text, name);
    assert_eq!(
        m("fluentd_output_status_retry_count{plugin_id=\"out\",type=\"http\"}"),
        0.0
    );
    assert_eq!(
        m("ferry_http_output_unrecoverable_errors_total{plugin_id=\"out\",type=\"http\"}"),
        refused.len() as f64
    );
    assert!(
        m("fluentd_output_status_write_secondary_count{plugin_id=\"out\",type=\"http\"}") >= 2.0
    );
    let log = ferry.stderr_so_far().join("\n");
    assert!(
        log.contains("/refuse answered 400 Bad Request: {\"error\":\"unknown field pad\"}"),
        "{log}"
    );
    assert!(
        log.contains("host elsewhere is not in allowed_hosts"),
        "{log}"
    );
}

#[test]
fn retryable_response_codes_and_error_response_as_unrecoverable_choose_retry_or_drop() {
    const N: u64 = 200;
    let refusals = Arc::new(AtomicUsize::new(0));
    let r2 = Arc::clone(&refusals);
    let recv = Receiver::start(move |r, _| {
        if r.path == "/drop" {
            Answer::status(422).with_body("unprocessable")
        } else if r2.fetch_add(1, Ordering::SeqCst) < 3 {
            // 503 is not retryable here: only 429 is.
            Answer::status(429).with_body("slow down")
        } else {
            Answer::status(200)
        }
    });
    let (port, admin) = (free_port(), free_port());
    let params = format!(
        "  endpoint http://127.0.0.1:{}/${{tag}}\n  retryable_response_codes 429\n\
         error_response_as_unrecoverable false\n",
        recv.port
    );
    let ferry = Ferry::start(&config(port, admin, &params, " tag"), port);
    send(port, "keep", 0..N);
    send(port, "drop", N..2 * N);
    let got = recv.wait_for(N, Duration::from_secs(20));
    assert_eq!(distinct(&got), (0..N).collect());
    wait_until(
        "the dropped events counted",
        Duration::from_secs(10),
        &ferry,
        || {
            metric(
                &metrics(admin),
                "ferry_events_dropped_total{plugin_id=\"out\",type=\"http\",reason=\"error_response\"}",
            ) == N as f64
        },
    );
    let text = metrics(admin);
    assert!(
        metric(
            &text,
            "fluentd_output_status_retry_count{plugin_id=\"out\",type=\"http\"}"
        ) >= 3.0,
        "429 was retried"
    );
    let dropped: usize = recv
        .requests()
        .iter()
        .filter(|r| r.path == "/drop")
        .map(|r| r.seqs.len())
        .sum();
    assert_eq!(
        dropped as u64, N,
        "each chunk answered 422 was sent once, not retried"
    );
    let log = ferry.stderr_so_far().join("\n");
    assert!(
        log.contains("got error response from 'POST http://127.0.0.1:")
            && log.contains("422 Unprocessable Entity: unprocessable"),
        "{log}"
    );
}

#[test]
fn gzip_basic_auth_headers_and_placeholders_reach_the_endpoint_on_one_connection() {
    const N: u64 = 1000;
    let recv = Receiver::start(|_, _| Answer::status(204));
    let (port, admin) = (free_port(), free_port());
    let params = format!(
        "  endpoint http://127.0.0.1:{}/logs/${{tag}}?id=${{chunk_id}}\n  http_method put\n\
         json_array true\n  compress gzip\n  content_type application/json; charset=utf-8\n\
         headers {{\"X-Static\":\"yes\",\"X-Scope-OrgID\":\"tenant-1\"}}\n\
         headers_from_placeholders {{\"X-Tag\":\"${{tag}}\",\"X-Part\":\"${{tag[1]}}\"}}\n\
         <auth>\n    method basic\n    username ferry\n    password s3cret\n  </auth>\n",
        recv.port
    );
    let ferry = Ferry::start(&config(port, admin, &params, " tag"), port);
    send(port, "app.web", 0..N / 2);
    send(port, "app.db", N / 2..N);
    let got = recv.wait_for(N, Duration::from_secs(20));
    assert_eq!(got.len() as u64, N, "no duplicates");
    let requests = recv.requests();
    assert!(requests.len() >= 10, "chunks of 100: {}", requests.len());
    for r in &requests {
        let tag = if r.seqs[0] < N / 2 {
            "app.web"
        } else {
            "app.db"
        };
        assert_eq!(r.method, "PUT");
        assert!(
            r.path.starts_with(&format!("/logs/{tag}?id=")),
            "{}",
            r.path
        );
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        // base64("ferry:s3cret")
        assert_eq!(r.header("authorization"), Some("Basic ZmVycnk6czNjcmV0"));
        assert_eq!(r.header("x-static"), Some("yes"));
        assert_eq!(r.header("x-scope-orgid"), Some("tenant-1"));
        assert_eq!(r.header("x-tag"), Some(tag));
        assert_eq!(r.header("x-part"), Some(&tag[4..]));
        assert_eq!(
            r.header("transfer-encoding"),
            Some("chunked"),
            "the body is streamed"
        );
        assert!(r.wire_len < r.body.len(), "gzipped on the wire");
        let array: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(array.as_array().unwrap().len(), r.seqs.len());
    }
    assert_eq!(recv.connections(), 1, "one connection carried every chunk");
    let text = metrics(admin);
    let m = |name: &str| metric(&text, name);
    assert_eq!(
        m("ferry_http_output_connections_total{plugin_id=\"out\",type=\"http\"}"),
        1.0
    );
    assert_eq!(
        m("ferry_http_output_requests_total{plugin_id=\"out\",type=\"http\"}"),
        requests.len() as f64
    );
    let wire: usize = requests.iter().map(|r| r.wire_len).sum();
    assert_eq!(
        m("ferry_http_output_bytes_total{plugin_id=\"out\",type=\"http\"}"),
        wire as f64
    );
    let (status, plugins) =
        ferry::http::client::get(&format!("127.0.0.1:{admin}"), "/api/plugins.json").unwrap();
    assert_eq!(status, 200);
    let doc: serde_json::Value = serde_json::from_str(&plugins).unwrap();
    let out = doc["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plugin_id"] == "out")
        .unwrap();
    assert_eq!(out["type"], "http");
    assert_eq!(out["http_responses_2xx"], requests.len());
    assert!(
        out["endpoint"]
            .as_str()
            .unwrap()
            .ends_with("/logs/${tag}?id=${chunk_id}")
    );
    drop(ferry);
}

/// A receiver that requires a client certificate from the test CA, TLS 1.2 only.
fn mutual_tls(pki: &Pki) -> Receiver {
    Receiver::start_with(
        Some(TlsSetup {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            client_ca: Some(pki.ca_cert.clone()),
            tls13_only: false,
            suites: Vec::new(),
        }),
        |_, _| Answer::status(200),
    )
}

#[test]
fn https_checks_the_server_and_presents_the_client_certificate() {
    let pki = Pki::new();
    // With the CA and a client certificate: delivered.
    let recv = mutual_tls(&pki);
    let port = free_port();
    let params = format!(
        "  endpoint https://localhost:{}/\n  tls_ca_cert_path {}\n  tls_client_cert_path {}\n\
         tls_private_key_path {}\n  tls_verify_mode peer\n",
        recv.port,
        pki.ca_cert.display(),
        pki.client_cert.display(),
        pki.client_key.display()
    );
    let ferry = Ferry::start(&config(port, free_port(), &params, ""), port);
    send(port, "tls", 0..100);
    recv.wait_for(100, Duration::from_secs(20));
    drop(ferry);

    // A CA that did not sign the server's certificate: nothing is sent, the chunk waits.
    let plain = Receiver::start_with(
        Some(TlsSetup {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            client_ca: None,
            tls13_only: false,
            suites: Vec::new(),
        }),
        |_, _| Answer::status(200),
    );
    let port = free_port();
    let params = format!(
        "  endpoint https://localhost:{}/\n  tls_ca_cert_path {}\n",
        plain.port,
        pki.other_ca_cert.display()
    );
    let ferry = Ferry::start(&config(port, free_port(), &params, ""), port);
    send(port, "tls", 0..100);
    let mut seen = Vec::new();
    ferry.wait_stderr("TLS handshake failed", Duration::from_secs(10), &mut seen);
    assert!(plain.requests().is_empty());
    drop(ferry);

    // tls_verify_mode none: the same server is taken without a CA.
    let port = free_port();
    let params = format!(
        "  endpoint https://localhost:{}/\n  tls_verify_mode none\n",
        plain.port
    );
    let ferry = Ferry::start(&config(port, free_port(), &params, ""), port);
    send(port, "tls", 0..100);
    plain.wait_for(100, Duration::from_secs(20));
    drop(ferry);
}

#[test]
fn tls_version_and_tls_ciphers_choose_what_is_offered_and_open_timeout_bounds_the_handshake() {
    let pki = Pki::new();
    let server = |tls13_only: bool, suites: Vec<rustls::CipherSuite>| {
        Receiver::start_with(
            Some(TlsSetup {
                cert: pki.server_cert.clone(),
                key: pki.server_key.clone(),
                client_ca: None,
                tls13_only,
                suites,
            }),
            |_, _| Answer::status(200),
        )
    };
    let run = |recv: &Receiver, extra: &str| {
        let port = free_port();
        let params = format!(
            "  endpoint https://127.0.0.1:{}/\n  tls_ca_cert_path {}\n{extra}",
            recv.port,
            pki.ca_cert.display()
        );
        let ferry = Ferry::start(&config(port, free_port(), &params, ""), port);
        send(port, "tls", 0..50);
        ferry
    };
    // Fluentd's default pins TLS 1.2: a TLS 1.3-only server refuses it; TLSv1_3 reaches it.
    let tls13 = server(true, Vec::new());
    let ferry = run(&tls13, "");
    let mut seen = Vec::new();
    ferry.wait_stderr("TLS handshake failed", Duration::from_secs(10), &mut seen);
    drop(ferry);
    let ferry = run(&tls13, "  tls_version TLSv1_3\n");
    tls13.wait_for(50, Duration::from_secs(20));
    drop(ferry);
    // A TLS 1.2 server with one suite: a cipher list without it fails, one with it works.
    let one = server(
        false,
        vec![rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384],
    );
    let ferry = run(&one, "  tls_ciphers ECDHE-ECDSA-AES128-GCM-SHA256\n");
    let mut seen = Vec::new();
    ferry.wait_stderr("TLS handshake failed", Duration::from_secs(10), &mut seen);
    assert!(one.requests().is_empty());
    drop(ferry);
    let ferry = run(&one, "  tls_ciphers ECDHE-ECDSA-AES256-GCM-SHA384\n");
    one.wait_for(50, Duration::from_secs(20));
    drop(ferry);
    // A server that accepts connections and never answers the handshake: open_timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = Arc::new(Mutex::new(Vec::new()));
    let h = Arc::clone(&held);
    let silent_port = silent.local_addr().unwrap().port();
    thread::spawn(move || {
        for s in silent.incoming().flatten() {
            h.lock().unwrap().push(s);
        }
    });
    let port = free_port();
    let params = format!(
        "  endpoint https://127.0.0.1:{silent_port}/\n  tls_ca_cert_path {}\n  open_timeout 1\n",
        pki.ca_cert.display()
    );
    let ferry = Ferry::start(&config(port, free_port(), &params, ""), port);
    let started = Instant::now();
    send(port, "tls", 0..10);
    let mut seen = Vec::new();
    ferry.wait_stderr(
        "no connection within 1s",
        Duration::from_secs(10),
        &mut seen,
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}
