//! A Scribe fleet moving to ferry, drilled through real processes: the Python Scribe client →
//! ferry in the deliver role (scribe input, file buffer) → ferry in the central role (hourly
//! files). Central is SIGKILLed for 30 s while the client keeps sending, then started again.
//! Every message the client had answered OK arrives, in the file of its event's hour; the
//! client sees nothing but OK (or TRY_LATER); its call latency is measured throughout.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{Ferry, free_port};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Sends Log calls of 20 messages for argv[2] seconds; a TRY_LATER call is sent again after
/// 100 ms, as Scribe clients do. Prints the results, the OK'd sequence range, and latencies.
const CLIENT: &str = r#"
import builtins, sys, json, time
builtins.xrange = range
from scribe import scribe
from thrift.transport import TTransport, TSocket
from thrift.protocol import TBinaryProtocol
port, secs = int(sys.argv[1]), float(sys.argv[2])
sock = TSocket.TSocket(host="127.0.0.1", port=port)
sock.setTimeout(30000)
transport = TTransport.TFramedTransport(sock)
protocol = TBinaryProtocol.TBinaryProtocol(trans=transport, strictRead=False, strictWrite=False)
client = scribe.Client(iprot=protocol, oprot=protocol)
transport.open()
seq, ok, try_later, errors, lat = 0, 0, 0, [], []
end = time.time() + secs
while time.time() < end:
    msgs = [scribe.LogEntry(category="app", message="seq=%d" % (seq + i)) for i in range(20)]
    while True:
        t0 = time.time()
        try:
            r = client.Log(messages=msgs)
        except Exception as e:
            errors.append(repr(e))
            r = None
        lat.append(time.time() - t0)
        if r == scribe.ResultCode.OK:
            ok += 1
            break
        if r == scribe.ResultCode.TRY_LATER:
            try_later += 1
            time.sleep(0.1)
            continue
        break
    if errors:
        break
    seq += 20
    time.sleep(0.01)
lat.sort()
q = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] * 1000
print(json.dumps({"ok_calls": ok, "ok_messages": seq, "try_later": try_later, "errors": errors,
                  "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": lat[-1] * 1000, "calls": len(lat)}))
"#;

/// How the deliver tier reaches central.
#[derive(Clone, Copy)]
enum Link {
    /// ferry to ferry: the forward protocol with acks (event times travel with the events).
    Forward,
    /// The scribe output to central's scribe input, as toward a scribed central (Scribe carries
    /// no time: central stamps the events when it takes them).
    Scribe,
}

fn central_config(link: Link, port: u16, dir: &std::path::Path) -> String {
    let input = match link {
        Link::Forward => "forward",
        Link::Scribe => "scribe",
    };
    format!(
        "<source>\n  @type {input}\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <match **>\n  @type file\n  path {d}/archive/app\n  <format>\n    @type json\n  </format>\n  <inject>\n    time_key t\n    time_type float\n  </inject>\n\
           <buffer time>\n    @type file\n    path {d}/central-buffer\n    timekey 1h\n    timekey_use_utc true\n    timekey_wait 0s\n    flush_mode interval\n    flush_interval 1s\n  </buffer>\n</match>\n",
        d = dir.display()
    )
}

#[test]
fn central_killed_for_30_s_loses_nothing_and_the_client_sees_only_ok() {
    drill(Link::Forward);
}

#[test]
fn over_the_scribe_output_central_killed_for_30_s_loses_nothing() {
    drill(Link::Scribe);
}

fn drill(link: Link) {
    let Some(python) = common::python() else {
        return;
    };
    let probe = Command::new(&python)
        .args(["-c", "import scribe.scribe"])
        .status()
        .unwrap();
    if !probe.success() {
        assert!(
            std::env::var_os("FERRY_TEST_DEPS").is_none(),
            "the Python Scribe client is missing: scripts/test-deps.sh installs it"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (scribe_port, central_port) = (free_port(), free_port());
    let mut central = Ferry::start(
        &central_config(link, central_port, dir.path()),
        central_port,
    );
    let output = match link {
        Link::Forward => format!(
            "  @type forward\n  require_ack_response true\n  <server>\n    host 127.0.0.1\n    port {central_port}\n  </server>\n"
        ),
        Link::Scribe => {
            format!("  @type scribe\n  host 127.0.0.1\n  port {central_port}\n  timeout 5s\n")
        }
    };
    let deliver = Ferry::start(
        &format!(
            "<source>\n  @type scribe\n  bind 127.0.0.1\n  port {scribe_port}\n</source>\n\
             <match **>\n{output}\
               <buffer>\n    @type file\n    path {}/deliver-buffer\n    flush_interval 200ms\n    retry_wait 500ms\n    retry_max_interval 2s\n  </buffer>\n</match>\n",
            dir.path().display()
        ),
        scribe_port,
    );
    let script = dir.path().join("client.py");
    std::fs::write(&script, CLIENT).unwrap();
    let client = Command::new(&python)
        .arg(&script)
        .arg(scribe_port.to_string())
        .arg("48")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(8));
    // SIGKILL central; the deliver tier buffers while the client keeps sending.
    central.child.kill().unwrap();
    let _ = central.child.wait();
    std::thread::sleep(Duration::from_secs(30));
    central = Ferry::start(
        &central_config(link, central_port, dir.path()),
        central_port,
    );
    let out = client.wait_with_output().unwrap();
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap_or_else(|e| {
            panic!(
                "{e}: {} {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
    eprintln!("client: {report}");
    assert_eq!(
        report["errors"],
        serde_json::json!([]),
        "the client saw only OK and TRY_LATER"
    );
    let sent = report["ok_messages"].as_u64().unwrap();
    assert!(sent > 1000, "{report}");
    // Every OK'd message arrives in the file of its event's hour.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (seen, misplaced) = loop {
        let mut seen: BTreeMap<u64, u32> = BTreeMap::new();
        let mut misplaced = Vec::new();
        for entry in std::fs::read_dir(dir.path().join("archive"))
            .into_iter()
            .flatten()
        {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            // app.YYYYMMDDHH_N.log
            let hour = name
                .strip_prefix("app.")
                .and_then(|r| r.split('_').next())
                .unwrap_or_default()
                .to_string();
            for line in std::fs::read_to_string(&path).unwrap().lines() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let seq: u64 = v["message"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("seq=")
                    .parse()
                    .unwrap();
                *seen.entry(seq).or_insert(0) += 1;
                let t = v["t"].as_f64().unwrap() as i64;
                let event_hour = utc_hour(t);
                if event_hour != hour {
                    misplaced.push((seq, event_hour, hour.clone()));
                }
            }
        }
        if (0..sent).all(|s| seen.contains_key(&s)) || Instant::now() > deadline {
            break (seen, misplaced);
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let lost: Vec<u64> = (0..sent).filter(|s| !seen.contains_key(s)).collect();
    let duplicated: u64 = seen.values().map(|n| u64::from(n - 1)).sum();
    eprintln!(
        "drill: {sent} messages OK'd, {} lost, {duplicated} duplicated, p99 {:.1} ms, max {:.1} ms over {} calls",
        lost.len(),
        report["p99_ms"].as_f64().unwrap_or(0.0),
        report["max_ms"].as_f64().unwrap_or(0.0),
        report["calls"]
    );
    assert!(
        lost.is_empty(),
        "lost: {} of {sent}, first {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    assert!(
        misplaced.is_empty(),
        "events in another hour's file: {:?}",
        &misplaced[..misplaced.len().min(5)]
    );
    // Ingest did not stall while central was down or while the deliver tier replayed.
    assert!(report["p99_ms"].as_f64().unwrap() < 500.0, "{report}");
    drop(deliver);
    drop(central);
}

/// `YYYYMMDDHH` of a Unix time, in UTC.
fn utc_hour(t: i64) -> String {
    let days = t.div_euclid(86_400);
    let hour = t.rem_euclid(86_400) / 3600;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!("{y:04}{m:02}{d:02}{hour:02}")
}
