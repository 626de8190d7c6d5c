//! The http input against real clients: curl, Python's `requests`, and Fluent Bit's `http`
//! output from `../shared/peers`. Every event is counted at the far end. Bad requests (broken
//! JSON, bad msgpack, an oversize body, a wrong Content-Length, a slowloris client, plaintext on
//! TLS) are answered with a status and a reason, counted, and never hold up other clients. A
//! full buffer is answered 503 with Retry-After, and every event answered 200 arrives.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod interop_support;

use common::{Ferry, free_port, metric, metrics};
use interop_support::{PeerKind, PeerProc, peers};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn curl() -> Option<PathBuf> {
    common::program("FERRY_TEST_CURL", "curl")
}

fn config(port: u16, admin: u16, extra: &str) -> String {
    format!(
        "<source>\n  @type http\n  bind 127.0.0.1\n  port {port}\n{extra}</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    tag_key tag\n    time_key t\n    time_type float\n  </inject>\n</match>\n"
    )
}

/// Runs curl with `args` against `url`; returns the status code and the body.
fn curl_post(curl: &PathBuf, url: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new(curl)
        .args(["-sS", "-w", "\n%{http_code}", "-o", "-"])
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// `seq` → how many times it arrived.
fn tally(lines: &[String]) -> BTreeMap<u64, u32> {
    let mut seen = BTreeMap::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"));
        *seen.entry(v["seq"].as_u64().unwrap()).or_insert(0) += 1;
    }
    seen
}

fn requests_answered(admin: u16, code: u16) -> f64 {
    metric(
        &metrics(admin),
        &format!(
            "ferry_http_input_requests_total{{plugin_id=\"http_0\",type=\"http\",code=\"{code}\"}}"
        ),
    )
}

#[test]
fn curl_posts_every_body_kind_and_each_event_arrives_once_with_its_fields() {
    let Some(curl) = curl() else { return };
    let (port, admin) = (free_port(), free_port());
    let extra = "  add_http_headers true\n  add_remote_addr true\n  add_query_params true\n";
    let ferry = Ferry::start(&config(port, admin, extra), port);
    let dir = tempfile::tempdir().unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let json = ["-H", "Content-Type: application/json"];
    let mut posts: Vec<(String, Vec<String>)> = vec![
        (
            format!("{base}/app.json"),
            vec!["-d".into(), r#"{"seq":1}"#.into()],
        ),
        (
            format!("{base}/app/array"),
            vec![
                "-d".into(),
                r#"[{"seq":2},{"seq":3,"time":1600000000.5}]"#.into(),
            ],
        ),
        (
            format!("{base}/app.ndjson"),
            vec![
                "-H".into(),
                "Content-Type: application/x-ndjson".into(),
                "--data-binary".into(),
                "{\"seq\":4}\n\n{\"seq\":5}\n".into(),
            ],
        ),
        // curl's default content type: a form with json=.
        (
            format!("{base}/app.form"),
            vec!["-d".into(), r#"json={"seq":6}"#.into()],
        ),
        (
            format!("{base}/app.query?json=%7B%22seq%22%3A7%7D&time=1500000000"),
            vec!["-X".into(), "POST".into()],
        ),
    ];
    for (_, args) in posts.iter_mut().take(2) {
        args.splice(0..0, json.iter().map(|s| s.to_string()));
    }
    // msgpack: {"seq": 8}
    let mp = dir.path().join("event.mp");
    std::fs::write(&mp, b"\x81\xa3seq\x08").unwrap();
    posts.push((
        format!("{base}/app.msgpack"),
        vec![
            "-H".into(),
            "Content-Type: application/msgpack".into(),
            "--data-binary".into(),
            format!("@{}", mp.display()),
        ],
    ));
    // gzip: [{"seq":9},{"seq":10}]
    let gz = dir.path().join("events.json.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(br#"[{"seq":9},{"seq":10}]"#).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    posts.push((
        format!("{base}/app.gzip"),
        vec![
            "-H".into(),
            "Content-Type: application/json".into(),
            "-H".into(),
            "Content-Encoding: gzip".into(),
            "--data-binary".into(),
            format!("@{}", gz.display()),
        ],
    ));
    for (url, args) in &posts {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, body) = curl_post(&curl, url, &args);
        assert_eq!(code, 200, "{url}: {body}");
    }
    let lines = ferry.stdout_lines(10, Duration::from_secs(20));
    let seen = tally(&lines);
    assert_eq!(seen.len(), 10, "{lines:#?}");
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    let by_seq: BTreeMap<u64, serde_json::Value> = lines
        .iter()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (v["seq"].as_u64().unwrap(), v)
        })
        .collect();
    assert_eq!(by_seq[&1]["tag"], "app.json");
    assert_eq!(by_seq[&2]["tag"], "app.array");
    assert_eq!(by_seq[&3]["t"], 1_600_000_000.5, "the record's time key");
    assert!(
        by_seq[&3].get("time").is_none(),
        "the time key is taken out"
    );
    assert_eq!(by_seq[&7]["t"], 1_500_000_000.0, "the time parameter");
    assert_eq!(by_seq[&7]["QUERY_TIME"], "1500000000");
    assert_eq!(by_seq[&1]["REMOTE_ADDR"], "127.0.0.1");
    assert!(
        by_seq[&1]["HTTP_USER_AGENT"]
            .as_str()
            .is_some_and(|a| a.starts_with("curl/")),
        "{}",
        by_seq[&1]
    );
    assert_eq!(by_seq[&9]["tag"], "app.gzip");
    // GET and HEAD are health checks: 200, nothing emitted.
    let (code, _) = curl_post(&curl, &format!("{base}/health"), &[]);
    assert_eq!(code, 200);
    let (code, _) = curl_post(&curl, &format!("{base}/health"), &["-I"]);
    assert_eq!(code, 200);
    assert_eq!(
        metric(
            &metrics(admin),
            "fluentd_input_status_num_records_total{plugin_id=\"http_0\",type=\"http\"}"
        ),
        10.0
    );
    assert_eq!(requests_answered(admin, 200), 9.0);
}

/// Sends `raw` on a new connection (the write side closed after it when `close_write`) and
/// reads the answer until the server closes or `wait` passes.
fn raw_request(port: u16, raw: &[u8], close_write: bool, wait: Duration) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.write_all(raw).unwrap();
    if close_write {
        s.shutdown(std::net::Shutdown::Write).unwrap();
    }
    s.set_read_timeout(Some(wait)).unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

#[test]
fn bad_requests_are_answered_naming_the_problem_counted_and_never_stall_other_clients() {
    let Some(curl) = curl() else { return };
    let (port, admin) = (free_port(), free_port());
    let extra = "  body_size_limit 1k\n  keepalive_timeout 1s\n";
    let ferry = Ferry::start(&config(port, admin, extra), port);
    let url = format!("http://127.0.0.1:{port}/bad");
    let json = "Content-Type: application/json";
    // A slowloris client holds a connection with half a head; another holds half a body.
    let mut slow_head = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow_head
        .write_all(b"POST /slow HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut slow_body = TcpStream::connect(("127.0.0.1", port)).unwrap();
    slow_body
        .write_all(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"seq\":")
        .unwrap();
    let started = Instant::now();
    let cases: &[(&[&str], u16, &str)] = &[
        (&["-H", json, "-d", "{\"seq\":"], 400, "invalid json"),
        (
            &["-H", json, "-d", "[{\"seq\":1}, 7]"],
            400,
            "element 1 is not an object",
        ),
        (
            &["-H", "Content-Type: text/plain", "-d", "hello"],
            400,
            "'json', 'ndjson' or 'msgpack' parameter is required",
        ),
        (
            &["-H", json, "-H", "Content-Encoding: br", "-d", "{}"],
            415,
            "Content-Encoding br",
        ),
        (
            &["-H", json, "-H", "Content-Encoding: gzip", "-d", "not gzip"],
            400,
            "does not decompress",
        ),
    ];
    for (args, code, reason) in cases {
        let (got, body) = curl_post(&curl, &url, args);
        assert_eq!(got, *code, "{args:?}: {body}");
        assert!(body.contains(reason), "{args:?}: {body}");
    }
    // A msgpack map cut short.
    let dir = tempfile::tempdir().unwrap();
    let mp = dir.path().join("cut.mp");
    std::fs::write(&mp, b"\x82\xa3seq\x01\xa3pad").unwrap();
    let (got, body) = curl_post(
        &curl,
        &url,
        &[
            "-H",
            "Content-Type: application/msgpack",
            "--data-binary",
            &format!("@{}", mp.display()),
        ],
    );
    assert_eq!(got, 400, "{body}");
    assert!(body.contains("invalid msgpack"), "{body}");
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2000));
    let (got, body) = curl_post(&curl, &url, &["-H", json, "-d", &big]);
    assert_eq!(got, 413, "{body}");
    assert!(body.contains("body_size_limit (1024 bytes)"), "{body}");
    let (got, body) = curl_post(
        &curl,
        &format!("http://127.0.0.1:{port}/"),
        &["-H", json, "-d", "{}"],
    );
    assert_eq!(got, 400, "{body}");
    assert!(body.contains("no tag"), "{body}");
    // A body shorter than its Content-Length, the sender done writing.
    let answer = raw_request(
        port,
        b"POST /short HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{\"seq\":1}",
        true,
        Duration::from_secs(5),
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    // The good client is served while both slow ones hold their connections.
    let (got, body) = curl_post(
        &curl,
        &format!("http://127.0.0.1:{port}/good"),
        &["-H", json, "-d", "{\"seq\":42}"],
    );
    assert_eq!(got, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let lines = ferry.stdout_lines(1, Duration::from_secs(10));
    assert_eq!(tally(&lines).keys().copied().collect::<Vec<_>>(), vec![42]);
    // The slow ones are closed after keepalive_timeout: the half body with a 408.
    let mut rest = String::new();
    slow_head
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = slow_head.read_to_string(&mut rest);
    slow_body
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = String::new();
    let _ = slow_body.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    std::thread::sleep(Duration::from_millis(300));
    let log = ferry.stderr_so_far().join("\n");
    for needle in [
        "invalid json",
        "body_size_limit",
        "127.0.0.1:",
        "answered 408",
    ] {
        assert!(log.contains(needle), "{needle}: {log}");
    }
    assert_eq!(
        requests_answered(admin, 400),
        7.0,
        "six bad bodies and the short one"
    );
    assert_eq!(requests_answered(admin, 413), 1.0);
    assert_eq!(requests_answered(admin, 415), 1.0);
    assert_eq!(requests_answered(admin, 408), 1.0);
    assert!(
        metric(
            &metrics(admin),
            "ferry_network_input_refused_total{plugin_id=\"http_0\",type=\"http\",reason=\"broken_request\"}"
        ) >= 1.0
    );
}

#[test]
fn over_tls_a_plaintext_client_is_refused_and_counted_and_https_is_served() {
    let Some(curl) = curl() else { return };
    let (port, admin) = (free_port(), free_port());
    let extra = "  <transport tls>\n    insecure true\n  </transport>\n";
    let ferry = Ferry::start(&config(port, admin, extra), port);
    let (code, _) = curl_post(
        &curl,
        &format!("http://127.0.0.1:{port}/plain"),
        &[
            "-H",
            "Content-Type: application/json",
            "-d",
            "{\"seq\":1}",
            "-m",
            "5",
        ],
    );
    assert_ne!(code, 200);
    let (code, body) = curl_post(
        &curl,
        &format!("https://127.0.0.1:{port}/secure"),
        &[
            "-k",
            "-H",
            "Content-Type: application/json",
            "-d",
            "{\"seq\":2}",
        ],
    );
    assert_eq!(code, 200, "{body}");
    let lines = ferry.stdout_lines(1, Duration::from_secs(10));
    assert_eq!(tally(&lines).keys().copied().collect::<Vec<_>>(), vec![2]);
    assert_eq!(
        metric(
            &metrics(admin),
            "ferry_network_input_refused_total{plugin_id=\"http_0\",type=\"http\",reason=\"tls_handshake\"}"
        ),
        1.0
    );
}

#[test]
fn python_requests_posts_json_and_msgpack_and_every_event_arrives_once() {
    let Some(python) = common::python() else {
        return;
    };
    let (port, admin) = (free_port(), free_port());
    let ferry = Ferry::start(&config(port, admin, ""), port);
    let script = r#"
import sys, json, msgpack, requests
port = int(sys.argv[1])
s = requests.Session()
base = f"http://127.0.0.1:{port}"
codes = {}
for i in range(0, 500):
    r = s.post(f"{base}/py.json", json={"seq": i, "via": "json"})
    codes[r.status_code] = codes.get(r.status_code, 0) + 1
for i in range(500, 1000, 10):
    batch = [{"seq": j, "via": "msgpack"} for j in range(i, i + 10)]
    r = s.post(f"{base}/py.msgpack", data=msgpack.packb(batch), headers={"Content-Type": "application/msgpack"})
    codes[r.status_code] = codes.get(r.status_code, 0) + 1
r = s.post(f"{base}/py.form", data={"json": json.dumps({"seq": 1000, "via": "form"})})
codes[r.status_code] = codes.get(r.status_code, 0) + 1
print(json.dumps(codes))
"#;
    let out = common::run_python(&python, script, &[&port.to_string()]);
    assert_eq!(out.trim(), r#"{"200": 551}"#, "{out}");
    let lines = ferry.stdout_lines(1001, Duration::from_secs(30));
    let seen = tally(&lines);
    assert_eq!(seen.len(), 1001);
    assert!(seen.values().all(|n| *n == 1));
    assert_eq!(requests_answered(admin, 200), 551.0);
}

#[test]
fn fluent_bits_http_output_delivers_every_event() {
    let Some(peers) = peers() else { return };
    let (port, admin, fb_port) = (free_port(), free_port(), free_port());
    let ferry = Ferry::start(&config(port, admin, ""), port);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("app.log");
    let n = 3000u64;
    let mut f = std::fs::File::create(&input).unwrap();
    for seq in 0..n {
        writeln!(f, "line {seq}").unwrap();
    }
    drop(f);
    let fb = format!(
        "[SERVICE]\n    Flush 0.2\n    HTTP_Server On\n    HTTP_Listen 127.0.0.1\n    HTTP_Port {fb_port}\n\
         [INPUT]\n    Name tail\n    Path {}\n    Read_from_Head true\n    Tag fb.tail\n\
         [OUTPUT]\n    Name http\n    Match *\n    Host 127.0.0.1\n    Port {port}\n    URI /fb.http\n    Format json\n    Retry_Limit no_limits\n",
        input.display()
    );
    let peer = PeerProc::start(&peers, PeerKind::FluentBit, &fb, fb_port);
    let lines = ferry.stdout_lines(n as usize, Duration::from_secs(60));
    let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
    for l in &lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert_eq!(v["tag"], "fb.http", "{l}");
        let seq: u64 = v["log"]
            .as_str()
            .and_then(|s| s.strip_prefix("line "))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{l}"));
        *seen.entry(seq).or_insert(0) += 1;
    }
    // A little longer: duplicates would show now.
    std::thread::sleep(Duration::from_secs(1));
    let extra = ferry.stdout.try_iter().count();
    assert_eq!(seen.len() as u64, n, "every line arrived: {}", peer.log());
    assert_eq!(extra, 0, "no duplicates");
    assert!(requests_answered(admin, 200) >= 1.0);
}

#[test]
fn a_full_buffer_is_answered_503_with_retry_after_and_every_event_answered_200_arrives() {
    let Some(curl) = curl() else { return };
    let (port, admin, dead) = (free_port(), free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let conf = format!(
        "<source>\n  @type http\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match **>\n  @type forward\n  <server>\n    host 127.0.0.1\n    port {dead}\n  </server>\n\
         <buffer>\n    @type file\n    path {}/buf\n    chunk_limit_size 4k\n    total_limit_size 16k\n    flush_interval 100ms\n    retry_wait 200ms\n    retry_max_interval 500ms\n  </buffer>\n</match>\n",
        dir.path().display()
    );
    let ferry = Ferry::start(&conf, port);
    let url = format!("http://127.0.0.1:{port}/full");
    let pad = "p".repeat(200);
    let mut accepted = Vec::new();
    let mut refused = 0;
    for seq in 0..400u64 {
        let body = format!("{{\"seq\":{seq},\"pad\":\"{pad}\"}}");
        let out = Command::new(&curl)
            .args([
                "-sS",
                "-D",
                "-",
                "-o",
                "/dev/null",
                "-H",
                "Content-Type: application/json",
                "-d",
                &body,
                &url,
            ])
            .output()
            .unwrap();
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        if head.starts_with("http/1.1 200") {
            accepted.push(seq);
        } else {
            assert!(head.starts_with("http/1.1 503"), "{head}");
            assert!(head.contains("retry-after: 1"), "{head}");
            refused += 1;
            if refused >= 3 {
                break;
            }
        }
    }
    assert!(refused >= 3, "the buffer filled");
    assert!(!accepted.is_empty());
    assert_eq!(requests_answered(admin, 503), f64::from(refused));
    // `ferry status` shows the input's answers and says what the 503s mean; the dump has them.
    let text = common::ferry_status(admin, "0.2");
    assert!(
        text.contains("http_0") && text.contains(&format!("503:{refused}")),
        "{text}"
    );
    let (_, dump) = ferry::http::client::get(&format!("127.0.0.1:{admin}"), "/api/dump").unwrap();
    assert!(dump.contains("\"answers\""), "{dump:.2000}");
    // The destination comes up: every event answered 200 arrives.
    let receiver = Ferry::start(
        &format!(
            "<source>\n  @type forward\n  bind 127.0.0.1\n  port {dead}\n</source>\n<match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n"
        ),
        dead,
    );
    // Forward's retries may bring a line twice: read until every accepted one is there.
    let want: std::collections::BTreeSet<u64> = accepted.iter().copied().collect();
    let mut seen = std::collections::BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !want.is_subset(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = receiver.stdout.recv_timeout(left) else {
            let lost: Vec<_> = want.difference(&seen).collect();
            panic!("answered 200 and lost: {lost:?}");
        };
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        seen.insert(v["seq"].as_u64().unwrap());
    }
    drop(ferry);
}

#[test]
fn cors_a_parse_section_a_label_and_the_answer_options_are_honoured() {
    let Some(curl) = curl() else { return };
    let (port, admin, gif_port) = (free_port(), free_port(), free_port());
    let conf = format!(
        "<source>\n  @type http\n  @label @IN\n  bind 127.0.0.1\n  port {port}\n  backlog 16\n\
           cors_allow_origins [\"https://*.example.com\"]\n  cors_allow_credentials true\n\
           use_204_response true\n  dump_error_log false\n  <parse>\n    @type none\n  </parse>\n</source>\n\
         <source>\n  @type http\n  bind 127.0.0.1\n  port {gif_port}\n  respond_with_empty_img true\n</source>\n\
         <source>\n  @type prometheus\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <label @IN>\n  <match **>\n    @type stdout\n    <format>\n      @type json\n    </format>\n  </match>\n</label>\n\
         <match **>\n  @type null\n</match>\n"
    );
    let ferry = Ferry::start(&conf, port);
    let url = format!("http://127.0.0.1:{port}/web.log");
    // A preflight from an allowed origin.
    let out = Command::new(&curl)
        .args(["-sS", "-D", "-", "-o", "/dev/null", "-X", "OPTIONS"])
        .args(["-H", "Origin: https://app.example.com"])
        .args(["-H", "Access-Control-Request-Method: POST"])
        .args(["-H", "Access-Control-Request-Headers: content-type"])
        .arg(&url)
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("access-control-allow-origin: https://app.example.com"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-credentials: true"),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-headers: content-type"),
        "{head}"
    );
    // An origin not allowed.
    let (code, _) = curl_post(&curl, &url, &["-H", "Origin: https://evil.com", "-d", "x"]);
    assert_eq!(code, 403);
    // The <parse> reads the whole body; the answer is 204; the events go to the label.
    let (code, _) = curl_post(
        &curl,
        &url,
        &[
            "-H",
            "Origin: https://app.example.com",
            "-H",
            "Content-Type: text/plain",
            "--data-binary",
            "hello world",
        ],
    );
    assert_eq!(code, 204);
    let lines = ferry.stdout_lines(1, Duration::from_secs(10));
    let v: serde_json::Value = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(v["message"], "hello world");
    // The second input answers with the 1×1 GIF.
    let out = Command::new(&curl)
        .args([
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "-H",
            "Content-Type: application/json",
            "-d",
            "{\"a\":1}",
        ])
        .arg(format!("http://127.0.0.1:{gif_port}/pixel"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200") && head.contains("content-type: image/gif"),
        "{head}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let log = ferry.stderr_so_far().join("\n");
    assert!(!log.contains("answered 403"), "dump_error_log false: {log}");
    assert_eq!(requests_answered(admin, 403), 1.0);
}
