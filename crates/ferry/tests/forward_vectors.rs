//! Every captured server-side exchange in ../shared/vectors replayed against a real ferry
//! process: ferry must answer with the bytes the real server sent (acks, PONGs with Fluentd's
//! reasons, nothing where the server sent nothing), apart from the random HELO nonces, and
//! print every event the real server accepted.
//!
//! The vector files are discovered, not listed: a file added later is replayed without a code
//! change.
//! - Fluentd (`fluentd/*.json` with a `receiver_config`, or with `received_by_real_in_forward`):
//!   ferry runs that configuration (Fluentd's syntax) with the port replaced.
//! - Fluent Bit in_forward (`fluentbit/*` whose description holds the in_forward
//!   configuration): the few in_forward settings used are translated to Fluentd's names.
//! - Fluent Bit out_forward captures against a recorder (`recorder_mode`): ferry must accept
//!   every event and ack each request that carried a chunk (the recorder's ack, when it sent
//!   one, is byte-identical).
//!
//! Handshakes: a PING's digests depend on the server's nonce, so a captured PING is rebuilt
//! for ferry's nonce. A digest that was right for the captured nonce is recomputed with the
//! same salt, hostname and user; one that was wrong is sent as captured and stays wrong. A
//! failed PONG must match byte for byte; a successful one is compared field by field, with
//! its digest recomputed.
//!
//! Where ferry deliberately answers differently (docs/forward-input.md, "Differences"), the
//! test asserts ferry's documented answer instead:
//! - Fluent Bit e5 (`chunk` as bin): Fluent Bit drops the request and closes; ferry acks with
//!   the chunk as bin.
//! - Fluent Bit d3 (wrong shared key): Fluent Bit closes without a PONG; ferry sends Fluentd's
//!   `["PONG", false, "shared_key mismatch", "", ""]`.
//! - Fluent Bit HELO (nonce and auth as str, no `keepalive`): ferry sends Fluentd's HELO.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use bytes::{Bytes, BytesMut};
use common::{Ferry, free_port, vectors_dir};
use ferry_proto::ack::encode_ack;
use ferry_proto::frame::FrameDecoder;
use ferry_proto::handshake::{
    Ping, Pong, encode_helo, parse_helo, password_digest, shared_key_digest,
};
use ferry_proto::request::{Limits, Request};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::time::Duration;

/// The `<security>` of a server configuration, for rebuilding PINGs and checking PONGs.
#[derive(Debug, Clone)]
struct Security {
    self_hostname: String,
    shared_key: String,
    users: Vec<(String, String)>,
}

/// What ferry must answer.
#[derive(Debug, Clone)]
enum Expect {
    /// The real server's bytes (HELO and PONG compared as described in the module doc).
    Server,
    /// An ack for each request that carried a chunk, in order (recorder captures).
    AcksOfRequests,
    /// Fluent Bit dropped a request with a bin chunk and closed; ferry acks it as bin.
    BinChunkAcked,
    /// Fluent Bit closed without a PONG; ferry sends Fluentd's failed PONG.
    FailedPongInsteadOfClose,
}

#[derive(Debug)]
struct Vector {
    name: String,
    /// The `<source>` in Fluentd syntax, with `PORT` for the port.
    source: String,
    security: Option<Security>,
    c2s: Vec<u8>,
    /// What the captured server sent (empty when nothing).
    s2c: Vec<u8>,
    expect: Expect,
    /// Records the real server printed (Fluentd captures with an out_file).
    received: Option<Vec<Value>>,
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const DEFAULT_SOURCE: &str = "<source>\n  @type forward\n  bind 127.0.0.1\n  port PORT\n</source>";

/// The `<security>` of a Fluentd-syntax configuration, read with ferry's own parser.
fn security_of(source: &str) -> Option<Security> {
    let root = ferry_config::parse_str(source, "vector.conf").unwrap();
    let sec = root.child("source")?.child("security")?;
    Some(Security {
        self_hostname: sec.value("self_hostname").unwrap_or_default().to_string(),
        shared_key: sec.value("shared_key").unwrap_or_default().to_string(),
        users: sec
            .children_named("user")
            .map(|u| {
                (
                    u.value("username").unwrap_or_default().to_string(),
                    u.value("password").unwrap_or_default().to_string(),
                )
            })
            .collect(),
    })
}

fn fluentd_vectors(dir: &Path) -> Vec<Vector> {
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".json") && n != "INDEX.json")
        .collect();
    names.sort();
    for file in names {
        let d = json(&dir.join(&file));
        let name = file.trim_end_matches(".json").to_string();
        let received = d["received_by_real_in_forward"].as_array().cloned();
        let source = match d["receiver_config"].as_str() {
            Some(c) => c.replace("port 25024", "port PORT"),
            None if received.is_some() => DEFAULT_SOURCE.to_string(),
            // A connection that carried nothing either way (a transport heartbeat).
            None if d["direction"]
                .as_str()
                .is_some_and(|s| s.starts_with("none")) =>
            {
                DEFAULT_SOURCE.to_string()
            }
            None => continue, // a client-only capture: no server answer to compare
        };
        let (c2s, s2c) = if dir.join(format!("{name}.c2s.bin")).exists() {
            (
                read(&dir.join(format!("{name}.c2s.bin"))),
                read(&dir.join(format!("{name}.s2c.bin"))),
            )
        } else {
            (read(&dir.join(format!("{name}.bin"))), Vec::new())
        };
        out.push(Vector {
            security: security_of(&source),
            name: format!("fluentd/{name}"),
            source,
            c2s,
            s2c,
            expect: Expect::Server,
            received,
        });
    }
    out
}

/// `Key value` lines of a Fluent Bit `[INPUT]` section (keys lowercased).
fn fluent_bit_input(config: &str) -> BTreeMap<String, String> {
    let mut section = "";
    let mut out = BTreeMap::new();
    for line in config.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
            continue;
        }
        if section.eq_ignore_ascii_case("[INPUT]")
            && let Some((k, v)) = line.split_once(char::is_whitespace)
        {
            out.insert(k.to_ascii_lowercase(), v.trim().to_string());
        }
    }
    out
}

/// A Fluent Bit in_forward configuration in Fluentd's syntax.
fn translate_fluent_bit(input: &BTreeMap<String, String>) -> String {
    let mut s = DEFAULT_SOURCE.trim_end_matches("</source>").to_string();
    if let Some(key) = input.get("shared_key") {
        s.push_str("  <security>\n");
        s.push_str(&format!(
            "    self_hostname {}\n    shared_key {key}\n",
            input
                .get("self_hostname")
                .map_or("localhost", String::as_str)
        ));
        if let Some(users) = input.get("security.users") {
            s.push_str("    user_auth true\n");
            let words: Vec<&str> = users.split_whitespace().collect();
            for pair in words.chunks(2) {
                s.push_str(&format!(
                    "    <user>\n      username {}\n      password {}\n    </user>\n",
                    pair[0], pair[1]
                ));
            }
        }
        s.push_str("  </security>\n");
    }
    s.push_str("</source>");
    s
}

fn fluent_bit_vectors(dir: &Path) -> Vec<Vector> {
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".c2s.bin") || n.ends_with(".req.bin"))
        .collect();
    names.sort();
    for file in names {
        let (stem, reply) = match file.strip_suffix(".c2s.bin") {
            Some(stem) => (stem.to_string(), format!("{stem}.s2c.bin")),
            None => {
                let stem = file.trim_end_matches(".req.bin").to_string();
                (stem.clone(), format!("{stem}.resp.bin"))
            }
        };
        let d = json(&dir.join(file.replace(".bin", ".json")));
        let c2s = read(&dir.join(&file));
        let s2c = dir.join(&reply).exists().then(|| read(&dir.join(&reply)));
        let server_config = d["fluent_bit_server_config (in_forward)"]
            .as_str()
            .or_else(|| {
                d["fluent_bit_config"].as_str().filter(|c| {
                    fluent_bit_input(c)
                        .get("name")
                        .is_some_and(|n| n == "forward")
                })
            });
        let (source, expect) = match (server_config, d["recorder_mode"].as_str()) {
            (Some(cfg), _) => {
                let source = translate_fluent_bit(&fluent_bit_input(cfg));
                let expect = if stem.starts_with("e5_") {
                    Expect::BinChunkAcked
                } else if stem.starts_with("d3_") {
                    Expect::FailedPongInsteadOfClose
                } else {
                    Expect::Server
                };
                (source, expect)
            }
            (None, Some(_)) => (DEFAULT_SOURCE.to_string(), Expect::AcksOfRequests),
            (None, None) => continue,
        };
        if let (Expect::AcksOfRequests, Some(reply)) = (&expect, &s2c) {
            assert_eq!(
                reply,
                &acks_of(&c2s),
                "fluentbit/{stem}: the recorder's ack is an ack of the chunk"
            );
        }
        out.push(Vector {
            security: security_of(&source),
            name: format!("fluentbit/{stem}"),
            source,
            c2s,
            s2c: s2c.unwrap_or_default(),
            expect,
            received: None,
        });
    }
    out
}

fn frames(bytes: &[u8]) -> Vec<Bytes> {
    let mut buf = BytesMut::from(bytes);
    let mut d = FrameDecoder::new(1 << 30);
    let mut out = Vec::new();
    while let Some(f) = d.decode(&mut buf).unwrap() {
        out.push(f);
    }
    assert!(buf.is_empty(), "trailing bytes");
    out
}

fn request(frame: &Bytes) -> Option<ferry_proto::EventBatch> {
    match Request::parse(frame.clone(), &Limits::default()) {
        Ok(Request::Events(b)) => Some(b),
        _ => None,
    }
}

/// The acks a server owes for these request frames.
fn acks_of(c2s: &[u8]) -> Vec<u8> {
    frames(c2s)
        .iter()
        .filter_map(request)
        .filter_map(|b| b.options.chunk)
        .flat_map(|c| encode_ack(&c).to_vec())
        .collect()
}

/// Valid events in these request frames (msgpack or JSON).
fn events_in(data: &[u8]) -> usize {
    if is_json(data) {
        return serde_json::Deserializer::from_slice(data)
            .into_iter::<Value>()
            .map(|v| match &v.unwrap()[1] {
                Value::Array(entries) => entries.len(),
                _ => 1,
            })
            .sum();
    }
    frames(data)
        .iter()
        .filter_map(request)
        .map(|b| ferry_proto::entries::validate(&b.entries).unwrap().count as usize)
        .sum()
}

/// Rebuilds a captured PING for ferry's HELO (see the module doc).
fn rebuild_ping(
    ping: &Ping,
    sec: &Security,
    captured: &ferry_proto::handshake::Helo,
    ferry: &ferry_proto::handshake::Helo,
) -> Bytes {
    let mut p = ping.clone();
    let key = sec.shared_key.as_bytes();
    let was_right = shared_key_digest(&ping.shared_key_salt, &ping.hostname, &captured.nonce, key);
    if was_right.as_bytes() == &ping.shared_key_hexdigest[..] {
        p.shared_key_hexdigest =
            shared_key_digest(&ping.shared_key_salt, &ping.hostname, &ferry.nonce, key).into();
    }
    for (user, password) in &sec.users {
        let right = password_digest(&captured.auth, user.as_bytes(), password.as_bytes());
        if user.as_bytes() == &ping.username[..] && right.as_bytes() == &ping.password_hexdigest[..]
        {
            p.password_hexdigest =
                password_digest(&ferry.auth, user.as_bytes(), password.as_bytes()).into();
        }
    }
    if sec.users.is_empty() && !captured.auth.is_empty() {
        // No user auth: clients still send H(auth ‖ "" ‖ ""); keep it consistent.
        if password_digest(&captured.auth, b"", b"").as_bytes() == &ping.password_hexdigest[..] {
            p.password_hexdigest = password_digest(&ferry.auth, b"", b"").into();
        }
    }
    p.encode()
}

fn read_frame(s: &mut TcpStream, buf: &mut BytesMut) -> Option<Bytes> {
    let mut d = FrameDecoder::new(1 << 20);
    loop {
        if let Some(f) = d.decode(buf).unwrap() {
            return Some(f);
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// What ferry sent on one replayed connection.
struct Replay {
    helo: Option<Bytes>,
    pong: Option<Bytes>,
    /// Everything after the handshake, up to ferry's close.
    rest: Vec<u8>,
    /// Request bytes ferry should have accepted (sent after a successful handshake).
    accepted_data: Vec<u8>,
}

fn replay(port: u16, v: &Vector, expected: &[Bytes]) -> Replay {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = BytesMut::new();
    let (mut helo, mut pong) = (None, None);
    let mut data: &[u8] = &v.c2s;
    let mut accepted = true;
    if let Some(sec) = &v.security {
        let h = read_frame(&mut s, &mut buf).expect("ferry sends HELO first");
        let ferry_helo = parse_helo(&h).unwrap();
        helo = Some(h);
        let first = frames(&v.c2s).into_iter().next();
        let first_len = first.as_ref().map_or(0, Bytes::len);
        let captured_helo = expected.first().map(|f| parse_helo(f).unwrap());
        let to_send = match (&first, Ping::parse(first.as_deref().unwrap_or_default())) {
            (Some(_), Ok(ping)) => {
                rebuild_ping(&ping, sec, captured_helo.as_ref().unwrap(), &ferry_helo)
            }
            (Some(f), Err(_)) => f.clone(),
            (None, _) => Bytes::new(),
        };
        s.write_all(&to_send).unwrap();
        data = &v.c2s[first_len..];
        pong = read_frame(&mut s, &mut buf);
        accepted = pong
            .as_ref()
            .is_some_and(|p| Pong::parse(p).is_ok_and(|p| p.ok));
    }
    if accepted || pong.is_none() {
        let _ = s.write_all(data);
    }
    let _ = s.shutdown(Shutdown::Write);
    let mut rest = buf.to_vec();
    let mut chunk = [0u8; 4096];
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => rest.extend_from_slice(&chunk[..n]),
        }
    }
    Replay {
        helo,
        pong,
        rest,
        accepted_data: if accepted { data.to_vec() } else { Vec::new() },
    }
}

/// Checks one replay; returns what is wrong.
fn is_json(bytes: &[u8]) -> bool {
    bytes.first().is_some_and(|b| *b == b'[' || *b == b'{')
}

fn check(v: &Vector, r: &Replay) -> Result<(), String> {
    if is_json(&v.c2s) {
        // JSON mode: the reply is JSON text.
        return (r.rest == v.s2c).then_some(()).ok_or_else(|| {
            format!(
                "JSON reply {:?}, want {:?}",
                String::from_utf8_lossy(&r.rest),
                String::from_utf8_lossy(&v.s2c)
            )
        });
    }
    let expected_frames = frames(&v.s2c);
    let mut expected_rest = expected_frames.as_slice();
    if let (Some(sec), Some(helo)) = (&v.security, &r.helo) {
        let h = parse_helo(helo).map_err(|e| format!("HELO: {e}"))?;
        if *helo != encode_helo(&h.nonce, &h.auth, h.keepalive)
            || h.nonce.len() != 16
            || h.auth.len() != 16
        {
            return Err(format!("HELO is not Fluentd's: {helo:02x?}"));
        }
        if let (Some(want), true) = (expected_frames.first(), v.name.starts_with("fluentd/")) {
            let captured = parse_helo(want).unwrap();
            if encode_helo(&captured.nonce, &captured.auth, h.keepalive) != *want {
                return Err(format!(
                    "HELO differs from Fluentd's beyond the nonces: {helo:02x?} vs {want:02x?}"
                ));
            }
        }
        expected_rest = expected_rest.get(1..).unwrap_or_default();
        let pong = r.pong.as_ref().ok_or("no PONG")?;
        let got = Pong::parse(pong).map_err(|e| format!("PONG: {e}"))?;
        match (&v.expect, expected_rest.first()) {
            (Expect::FailedPongInsteadOfClose, _) => {
                if *pong != Pong::failure("shared_key mismatch").encode() {
                    return Err(format!("want a failed PONG, got {got:?}"));
                }
            }
            (_, Some(want)) => {
                let want_pong = Pong::parse(want).unwrap();
                if want_pong.ok {
                    let ping = Ping::parse(&frames(&v.c2s)[0]).unwrap();
                    let digest = shared_key_digest(
                        &ping.shared_key_salt,
                        sec.self_hostname.as_bytes(),
                        &parse_helo(helo).unwrap().nonce,
                        sec.shared_key.as_bytes(),
                    );
                    let rebuilt = Pong::success(&want_pong.hostname, digest.as_bytes()).encode();
                    if *pong != rebuilt
                        || Pong::success(&want_pong.hostname, &want_pong.shared_key_hexdigest)
                            .encode()
                            != *want
                    {
                        return Err(format!(
                            "PONG {got:?}, want {want_pong:?} with digest {digest}"
                        ));
                    }
                } else if pong != want {
                    return Err(format!("PONG {got:?}, want {want_pong:?}"));
                }
                expected_rest = &expected_rest[1..];
            }
            (_, None) => return Err(format!("unexpected PONG {got:?}")),
        }
    }
    let want: Vec<u8> = match &v.expect {
        Expect::Server => expected_rest.iter().flat_map(|f| f.to_vec()).collect(),
        Expect::AcksOfRequests | Expect::BinChunkAcked => acks_of(&v.c2s),
        Expect::FailedPongInsteadOfClose => Vec::new(),
    };
    if matches!(v.expect, Expect::BinChunkAcked) {
        let bin = frames(&v.c2s)
            .iter()
            .filter_map(request)
            .filter_map(|b| b.options.chunk)
            .any(|c| c.kind == ferry_proto::ChunkIdKind::Bin);
        if !bin {
            return Err("this vector should carry a chunk as bin".into());
        }
    }
    if r.rest != want {
        return Err(format!("reply {:02x?}, want {:02x?}", r.rest, want));
    }
    Ok(())
}

/// JSON values equal, numbers compared as numbers (1 == 1.0).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// Tags of the requests in `data` (msgpack or JSON).
fn tags_in(data: &[u8]) -> Vec<String> {
    if is_json(data) {
        return serde_json::Deserializer::from_slice(data)
            .into_iter::<Value>()
            .filter_map(|v| v.unwrap()[0].as_str().map(str::to_string))
            .collect();
    }
    frames(data)
        .iter()
        .filter_map(request)
        .map(|b| b.tag)
        .collect()
}

/// The printed events against what the real server printed. A capture run's out_file may
/// hold events of sibling vectors too: only records with this vector's tags count.
fn check_records(v: &Vector, data: &[u8], lines: &[String]) -> Result<(), String> {
    let Some(received) = &v.received else {
        return Ok(());
    };
    let tags = tags_in(data);
    let received: Vec<&Value> = received
        .iter()
        .filter(|r| {
            r["_tag"]
                .as_str()
                .is_some_and(|t| tags.iter().any(|x| x == t))
        })
        .collect();
    if received.len() != lines.len() {
        return Err(format!(
            "ferry printed {} events, the real server {}",
            lines.len(),
            received.len()
        ));
    }
    for (line, want) in lines.iter().zip(received) {
        let mut got: Value = serde_json::from_str(line).map_err(|e| format!("{e}: {line}"))?;
        let mut want = want.clone();
        let got_time = got
            .as_object_mut()
            .unwrap()
            .remove("_time")
            .and_then(|t| t.as_f64());
        let want_time = want.as_object_mut().unwrap().remove("_time");
        let want_time: f64 = want_time
            .as_ref()
            .and_then(Value::as_str)
            .unwrap()
            .parse()
            .unwrap();
        if got_time.is_none_or(|t| (t - want_time).abs() > 1e-6) {
            return Err(format!("time {got_time:?}, want {want_time}"));
        }
        if !same(&got, &want) {
            return Err(format!("record {got}, want {want}"));
        }
    }
    Ok(())
}

const OUTPUT: &str = "<match **>\n  @type stdout\n  <format>\n    @type json\n  </format>\n  <inject>\n    tag_key _tag\n    time_key _time\n    time_type float\n  </inject>\n</match>\n";

#[test]
fn every_captured_server_answer_is_reproduced() {
    let root = vectors_dir();
    let mut vectors = fluentd_vectors(&root.join("fluentd"));
    let fluentd = vectors.len();
    vectors.extend(fluent_bit_vectors(&root.join("fluentbit")));
    assert!(
        fluentd >= 20,
        "only {fluentd} Fluentd vectors found in {}",
        root.display()
    );
    assert!(vectors.len() > fluentd + 10, "Fluent Bit vectors missing");
    let mut by_source: BTreeMap<String, Vec<&Vector>> = BTreeMap::new();
    for v in &vectors {
        by_source.entry(v.source.clone()).or_default().push(v);
    }
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (source, group) in by_source {
        let port = free_port();
        let config = format!("{}\n{OUTPUT}", source.replace("PORT", &port.to_string()));
        let mut ferry = Ferry::start(&config, port);
        for v in group {
            let expected_frames = if is_json(&v.s2c) {
                Vec::new()
            } else {
                frames(&v.s2c)
            };
            let r = replay(port, v, &expected_frames);
            replayed += 1;
            let lines = ferry.stdout_lines(events_in(&r.accepted_data), Duration::from_secs(10));
            if let Err(e) = check(v, &r).and_then(|()| check_records(v, &r.accepted_data, &lines)) {
                failures.push(format!("{}: {e}", v.name));
            }
        }
        ferry.child.kill().unwrap();
        ferry.child.wait().unwrap();
        let extra: Vec<String> = ferry.stdout.iter().collect();
        if !extra.is_empty() {
            failures.push(format!(
                "{source}: ferry printed events no vector accounts for: {extra:#?}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} vectors differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{replayed} captured exchanges replayed ({fluentd} from Fluentd)");
}

#[test]
fn udp_heartbeat_vectors_get_the_captured_reply() {
    let dir = vectors_dir().join("fluentd");
    let port = free_port();
    let _ferry = Ferry::start(
        &format!(
            "{}\n{OUTPUT}",
            DEFAULT_SOURCE.replace("PORT", &port.to_string())
        ),
        port,
    );
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        let Some(stem) = name.strip_suffix(".json") else {
            continue;
        };
        let d = json(&dir.join(&name));
        if !d["direction"]
            .as_str()
            .is_some_and(|s| s.contains("datagram"))
        {
            continue;
        }
        let c2s = read(&dir.join(format!("{stem}.c2s.bin")));
        let s2c = read(&dir.join(format!("{stem}.s2c.bin")));
        let mut probes = vec![c2s];
        for p in d["direct_probe_of_in_forward_udp"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let hex = p.as_str().unwrap().split_whitespace().nth(1).unwrap();
            probes.push(
                (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                    .collect(),
            );
        }
        for probe in probes {
            udp.send_to(&probe, ("127.0.0.1", port)).unwrap();
            let mut b = [0u8; 64];
            let (n, from) = udp.recv_from(&mut b).unwrap();
            assert_eq!(&b[..n], &s2c[..], "{stem}: reply to {probe:02x?}");
            assert_eq!(from.port(), port, "the reply comes from the server's port");
            checked += 1;
        }
    }
    assert!(checked >= 2, "no UDP heartbeat vectors found");
}
