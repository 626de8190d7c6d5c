//! Time zones against the real Fluentd 1.16.11: ferry and Fluentd, both under
//! `TZ=Asia/Tokyo`, tail the same file of lines whose times carry no zone. Both must give each
//! line the same event time (read in the host's zone), and their hourly file outputs must name
//! their files alike under `timekey_zone +09:00`, `timekey_zone Asia/Tokyo`,
//! `timekey_zone America/New_York` and the default (the host's offset at start). Fails, not
//! skips, under `FERRY_TEST_DEPS=1` when Fluentd is missing (see `interop_support::peers`).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod interop_support;

use common::{Ferry, free_port};
use interop_support::{PeerKind, PeerProc, peers};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

const TZ: &str = "Asia/Tokyo";

/// Lines without a zone: 10:00 and 00:30 in Tokyo fall on two dates in UTC, and the 23:59:59
/// line on yet another hour.
const LINES: &str = "2026-12-07 10:00:00 first\n\
                     2026-12-07 00:30:00 second\n\
                     2026-12-06 23:59:59 third\n";

/// Hourly file outputs, one per zone setting, named `{dir}/<name>/out.%Y%m%d%H`.
const ZONES: &[(&str, &str)] = &[
    ("offset", "timekey_zone +09:00"),
    ("tokyo", "timekey_zone Asia/Tokyo"),
    ("new_york", "timekey_zone America/New_York"),
    ("host", ""),
];

/// The pipeline both run: tail `input`, then a JSON file of each event with its time as an
/// integer, and the hourly files of [`ZONES`].
fn pipeline(dir: &str, input: &Path) -> String {
    let mut stores = format!(
        "  <store>\n    @type file\n    path {dir}/events/ev\n    <format>\n      @type json\n    \
         </format>\n    <inject>\n      time_key t\n      time_type unixtime\n    </inject>\n    \
         <buffer>\n      @type memory\n      flush_mode immediate\n    </buffer>\n  </store>\n"
    );
    for (name, zone) in ZONES {
        stores.push_str(&format!(
            "  <store>\n    @type file\n    path {dir}/{name}/out.%Y%m%d%H\n    \
             <buffer time>\n      @type memory\n      timekey 1h\n      {zone}\n      flush_mode immediate\n    \
             </buffer>\n  </store>\n"
        ));
    }
    format!(
        "<source>\n  @type tail\n  path {}\n  pos_file {dir}/in.pos\n  tag zones\n  \
         read_from_head true\n  <parse>\n    @type regexp\n    \
         expression /^(?<time>\\S+ \\S+) (?<msg>.*)$/\n    time_format %Y-%m-%d %H:%M:%S\n  \
         </parse>\n</source>\n<match zones>\n  @type copy\n{stores}</match>\n",
        input.display()
    )
}

/// Every line of the files under `dir`.
fn lines_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_file() {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            out.extend(text.lines().map(str::to_string));
        }
    }
    out
}

/// The names of the files under `dir` without their file number (`out.2026120710_0.log` →
/// `out.2026120710`).
fn slices_under(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("out."))
        .map(|n| {
            n.rsplit_once('_')
                .map_or(n.clone(), |(head, _)| head.to_string())
        })
        .collect()
}

/// `(msg, time)` of each event in the JSON file output under `dir`, sorted.
fn events(dir: &Path) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = lines_under(&dir.join("events"))
        .iter()
        .filter_map(|l| {
            let j: serde_json::Value = serde_json::from_str(l).ok()?;
            Some((j["msg"].as_str()?.to_string(), j["t"].as_u64()?))
        })
        .collect();
    v.sort();
    v
}

/// Waits until every output under `dir` holds the three events.
fn wait_for_outputs(dir: &Path, who: &str, log: impl Fn() -> String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let complete = events(dir).len() == 3
            && ZONES
                .iter()
                .all(|(name, _)| lines_under(&dir.join(name)).len() == 3);
        if complete {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{who} did not write the three events to every output within 60 s; its log:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn times_without_a_zone_and_hourly_file_names_match_fluentd_under_tz_asia_tokyo() {
    let Some(peers) = peers() else { return };
    let input_dir = tempfile::tempdir().unwrap();
    let input = input_dir.path().join("in.log");
    std::fs::write(&input, LINES).unwrap();

    // Fluentd: the `{dir}` placeholder is its own directory; a forward input tells when it is up.
    let port = free_port();
    let fluentd_conf = format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n</source>\n{}",
        pipeline("{dir}", &input)
    );
    let fluentd = PeerProc::start_in_zone(&peers, PeerKind::Fluentd, &fluentd_conf, port, TZ);
    let fluentd_dir = fluentd.dir.path().to_path_buf();

    let ferry_dir = tempfile::tempdir().unwrap();
    let ferry_conf = pipeline(&ferry_dir.path().display().to_string(), &input);
    let ferry = Ferry::start_logged(&ferry_conf, &[("TZ", TZ)]);

    wait_for_outputs(&fluentd_dir, "Fluentd", || fluentd.log());
    wait_for_outputs(ferry_dir.path(), "ferry", || {
        ferry.stderr.try_iter().collect::<Vec<_>>().join("\n")
    });

    // 1. The same event times, and they are the Tokyo readings of the lines.
    let ferry_events = events(ferry_dir.path());
    assert_eq!(ferry_events, events(&fluentd_dir), "event times differ");
    assert_eq!(
        ferry_events,
        vec![
            ("first".to_string(), 1_796_605_200),
            ("second".to_string(), 1_796_571_000),
            ("third".to_string(), 1_796_569_199),
        ],
        "2026-12-07 10:00:00 in Tokyo is 01:00 UTC"
    );

    // 2. The same file names for each zone setting.
    for (name, zone) in ZONES {
        let ours = slices_under(&ferry_dir.path().join(name));
        assert_eq!(
            ours,
            slices_under(&fluentd_dir.join(name)),
            "file names differ under '{zone}'"
        );
        assert_eq!(ours.len(), 3, "{name}: {ours:?}");
    }
    let tokyo = slices_under(&ferry_dir.path().join("tokyo"));
    assert!(tokyo.contains("out.2026120710"), "{tokyo:?}");
    let new_york = slices_under(&ferry_dir.path().join("new_york"));
    assert!(new_york.contains("out.2026120620"), "{new_york:?}");
    drop(ferry);
    fluentd.stop();
}
