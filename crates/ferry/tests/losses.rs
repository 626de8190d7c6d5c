//! Every loss is counted: a real ferry made to drop events in each way it can (an invalid
//! event, a tag no `<match>` takes, `overflow_action drop_oldest_chunk`, a chunk quarantined
//! after its retries) exports each under `ferry_events_dropped_total` by plugin and reason,
//! and `ferry status` shows the totals.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::{AckedSender, Ferry, free_port};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// `ferry_events_dropped_total` samples: (plugin_id, reason) → value.
fn dropped(admin: u16) -> BTreeMap<(String, String), u64> {
    let (_, text) = ferry::http::client::get(&format!("127.0.0.1:{admin}"), "/metrics").unwrap();
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("ferry_events_dropped_total{"))
    {
        let get = |k: &str| {
            let start = line.find(&format!("{k}=\"")).unwrap() + k.len() + 2;
            line[start..start + line[start..].find('"').unwrap()].to_string()
        };
        let value = line.rsplit(' ').next().unwrap().parse().unwrap();
        out.insert((get("plugin_id"), get("reason")), value);
    }
    out
}

#[test]
fn every_way_of_dropping_events_is_counted_by_plugin_and_reason_and_shown_by_status() {
    let (port, admin, closed) = (free_port(), free_port(), free_port());
    let conf = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n\
         <source>\n  @type monitor_agent\n  bind 127.0.0.1\n  port {admin}\n</source>\n\
         <match full.**>\n  @type forward\n  @id dropper\n  <server>\n    host 127.0.0.1\n    port {closed}\n  </server>\n\
         <buffer tag>\n    @type memory\n    chunk_limit_size 2k\n    total_limit_size 8k\n    overflow_action drop_oldest_chunk\n    flush_interval 1h\n  </buffer>\n</match>\n\
         <match doomed.**>\n  @type forward\n  @id giver\n  <server>\n    host 127.0.0.1\n    port {closed}\n  </server>\n\
         <buffer tag>\n    flush_mode immediate\n    retry_max_times 1\n    retry_wait 100ms\n  </buffer>\n</match>\n"
    );
    let ferry = Ferry::start(&conf, port);
    let mut s = AckedSender::connect(port).unwrap();
    // A tag no <match> takes.
    s.send("nowhere.at.all", 0..7, 10).unwrap();
    // Two events whose record is not a map, beside one good one.
    let mut entries = bytes::BytesMut::new();
    let t = ferry_proto::time::EventTime {
        sec: 1_700_000_000,
        nsec: 0,
    };
    let bad = ferry_proto::msgpack::Value::UInt(7).to_bytes();
    ferry_proto::encode::write_entry(&mut entries, t, false, &bad);
    ferry_proto::encode::write_entry(&mut entries, t, false, &bad);
    s.send_entries("nowhere.invalid", &entries, 2).unwrap();
    // More than the memory buffer holds: the oldest chunks go.
    for n in 0..20 {
        s.send("full.x", n * 10..n * 10 + 10, 100).unwrap();
    }
    // A chunk whose retries run out, with no <secondary>: quarantined.
    s.send("doomed.x", 0..5, 10).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let counts = loop {
        let d = dropped(admin);
        let get = |p: &str, r: &str| d.get(&(p.to_string(), r.to_string())).copied().unwrap_or(0);
        if get("giver", "quarantined") == 5 && get("dropper", "drop_oldest_chunk") > 0 {
            break d;
        }
        assert!(Instant::now() < deadline, "losses not counted: {d:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let get = |p: &str, r: &str| counts[&(p.to_string(), r.to_string())];
    assert_eq!(get("router", "unmatched"), 7, "{counts:#?}");
    assert_eq!(get("forward_0", "invalid"), 2, "{counts:#?}");
    assert_eq!(get("giver", "quarantined"), 5, "{counts:#?}");
    let oldest = get("dropper", "drop_oldest_chunk");
    assert!(
        oldest > 0 && oldest % 10 == 0,
        "whole requests went with their chunks: {oldest}"
    );
    assert_eq!(get("dropper", "lost_at_stop"), 0);
    let text = common::ferry_status(admin, "0.2");
    let total = 7 + 2 + 5 + oldest;
    assert!(
        text.contains(&format!("dropped events: {total}")),
        "ferry status shows the total: {text}"
    );
    for reason in ["unmatched", "invalid", "quarantined", "drop_oldest_chunk"] {
        assert!(text.contains(reason), "ferry status names {reason}: {text}");
    }
    drop(ferry);
}
