//! `ferry status`: reads a running ferry's monitor API twice, a moment apart, and prints for
//! people each output's buffer flow (in and out rates, what is held, time to drain) with the
//! tuning advice operators otherwise work out by hand from the logs. Inputs come first: their
//! rates and what they refused (an http input's answers, a scribe input's `TRY_LATER`s).

use crate::http::client::get;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

/// One output's numbers at one moment.
#[derive(Debug, Clone, Default)]
struct Sample {
    type_name: String,
    emit_records: f64,
    held_records: f64,
    held_bytes: f64,
    space_ratio: Option<f64>,
    retry_count: f64,
    slow_flush_count: f64,
    num_errors: f64,
    extra: serde_json::Map<String, Value>,
}

fn num(v: &Value, k: &str) -> f64 {
    v.get(k).and_then(Value::as_f64).unwrap_or(0.0)
}

/// One input's numbers at one moment.
#[derive(Debug, Clone, Default)]
struct InputSample {
    type_name: String,
    emit_records: f64,
    emit_size: f64,
    extra: serde_json::Map<String, Value>,
}

/// A reading: the inputs and the outputs.
#[derive(Debug, Clone, Default)]
struct Reading {
    inputs: BTreeMap<String, InputSample>,
    outputs: BTreeMap<String, Sample>,
}

fn read(url: &str) -> anyhow::Result<Reading> {
    let (status, body) = get(url, "/api/plugins.json").map_err(|e| {
        anyhow::anyhow!("cannot reach {url}: {e} (is a monitor_agent source configured?)")
    })?;
    anyhow::ensure!(status == 200, "{url}/api/plugins.json answered {status}");
    let doc: Value = serde_json::from_str(&body)?;
    let mut out = BTreeMap::new();
    let mut inputs = BTreeMap::new();
    for p in doc["plugins"].as_array().cloned().unwrap_or_default() {
        if p["plugin_category"] == "input" {
            inputs.insert(
                p["plugin_id"].as_str().unwrap_or("?").to_string(),
                InputSample {
                    type_name: p["type"].as_str().unwrap_or("?").to_string(),
                    emit_records: num(&p, "emit_records"),
                    emit_size: num(&p, "emit_size"),
                    extra: p.as_object().cloned().unwrap_or_default(),
                },
            );
            continue;
        }
        if p["plugin_category"] != "output" {
            continue;
        }
        let id = p["plugin_id"].as_str().unwrap_or("?").to_string();
        out.insert(
            id,
            Sample {
                type_name: p["type"].as_str().unwrap_or("?").to_string(),
                emit_records: num(&p, "emit_records"),
                held_records: num(&p, "ferry_buffer_records"),
                held_bytes: num(&p, "buffer_total_queued_size"),
                space_ratio: p
                    .get("buffer_available_buffer_space_ratios")
                    .and_then(Value::as_f64),
                retry_count: num(&p, "retry_count"),
                slow_flush_count: num(&p, "slow_flush_count"),
                num_errors: num(&p, "num_errors"),
                extra: p.as_object().cloned().unwrap_or_default(),
            },
        );
    }
    Ok(Reading {
        inputs,
        outputs: out,
    })
}

/// The inputs' table: rates, and what each refused; advice when refusals grew.
fn inputs_report(
    a: &BTreeMap<String, InputSample>,
    b: &BTreeMap<String, InputSample>,
    dt: f64,
    advice: &mut Vec<String>,
) -> String {
    let mut out = String::new();
    if b.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:<24} {:<10} {:>12} {:>12}  NOTES",
        "INPUT", "TYPE", "IN ev/s", "IN MB/s"
    );
    for (id, now) in b {
        let before = a.get(id).cloned().unwrap_or_default();
        let ev = (now.emit_records - before.emit_records) / dt;
        let mb = (now.emit_size - before.emit_size) / dt / 1e6;
        let n = |s: &InputSample, k: &str| s.extra.get(k).and_then(Value::as_f64).unwrap_or(0.0);
        let mut notes = Vec::new();
        if let Some(c) = now.extra.get("connections").and_then(Value::as_f64) {
            notes.push(format!("connections {c}"));
        }
        match now.type_name.as_str() {
            "http" => {
                let answers = |s: &InputSample| {
                    s.extra
                        .get("answers")
                        .and_then(Value::as_object)
                        .cloned()
                        .unwrap_or_default()
                };
                let (was, is) = (answers(&before), answers(now));
                let listed: Vec<String> = is
                    .iter()
                    .map(|(code, count)| format!("{code}:{}", count.as_f64().unwrap_or(0.0)))
                    .collect();
                if !listed.is_empty() {
                    notes.push(format!("answers {}", listed.join(" ")));
                }
                let grew = |code: &str| {
                    is.get(code).and_then(Value::as_f64).unwrap_or(0.0)
                        > was.get(code).and_then(Value::as_f64).unwrap_or(0.0)
                };
                if grew("503") {
                    advice.push(format!("{id}: requests were answered 503 (a buffer stayed full): clients send them again; see the outputs' FREE and DRAIN"));
                }
                if ["400", "413", "415"].iter().any(|c| grew(c)) {
                    advice.push(format!("{id}: requests were refused as bad (400, 413, 415): the log names each client and what was wrong"));
                }
            }
            "kafka_group" => {
                let lag = total_lag(now);
                notes.push(format!(
                    "lag {lag}  pauses {}  rebalances {}  holds {}",
                    n(now, "pauses"),
                    n(now, "rebalances"),
                    now.extra
                        .get("assigned")
                        .and_then(Value::as_str)
                        .unwrap_or("-")
                ));
                if n(now, "pauses") > n(&before, "pauses") {
                    advice.push(format!("{id}: consumption was paused because a buffer was full: the outputs take less than the topic brings; see their FREE and DRAIN"));
                }
                if lag > total_lag(&before) && lag > 100_000.0 {
                    advice.push(format!("{id}: consumer lag is {lag} and growing: add aggregators to the group (up to the number of partitions)"));
                }
            }
            "scribe" => {
                notes.push(format!(
                    "Log OK {} TRY_LATER {}",
                    n(now, "log_ok"),
                    n(now, "log_try_later")
                ));
                if n(now, "log_try_later") > n(&before, "log_try_later") {
                    advice.push(format!("{id}: Log calls were answered TRY_LATER (a buffer stayed full, or a message made no record): see the log and the outputs' FREE"));
                }
            }
            _ => {}
        }
        if now.extra.contains_key("dropped") {
            notes.push(format!("dropped {}", n(now, "dropped")));
        }
        let _ = writeln!(
            out,
            "{id:<24} {:<10} {ev:>12.0} {mb:>12.1}  {}",
            now.type_name,
            notes.join("  ")
        );
    }
    out.push('\n');
    out
}

/// A byte count for people: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub(crate) fn bytes(n: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", units[i])
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// A duration for people: `42s`, `3m07s`, `5h02m` (not finite: never).
pub(crate) fn duration(secs: f64) -> String {
    if !secs.is_finite() {
        return "never (nothing leaves)".into();
    }
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

/// Builds the report from two readings `dt` apart.
/// A kafka_group input's consumer lag over all its partitions.
fn total_lag(s: &InputSample) -> f64 {
    s.extra
        .get("partitions")
        .and_then(Value::as_array)
        .map(|ps| ps.iter().filter_map(|p| p["lag"].as_f64()).sum())
        .unwrap_or(0.0)
}

fn report(url: &str, ra: &Reading, rb: &Reading, dt: f64) -> String {
    let (a, b) = (&ra.outputs, &rb.outputs);
    let mut out = String::new();
    let mut advice = Vec::new();
    let _ = writeln!(out, "ferry at {url}");
    out.push_str(&inputs_report(&ra.inputs, &rb.inputs, dt, &mut advice));
    let _ = writeln!(
        out,
        "{:<24} {:<10} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "OUTPUT", "TYPE", "IN ev/s", "OUT ev/s", "HELD", "FREE", "DRAIN"
    );
    for (id, now) in b {
        let before = a.get(id).cloned().unwrap_or_default();
        let in_rate = (now.emit_records - before.emit_records) / dt;
        let out_rate = (in_rate - (now.held_records - before.held_records) / dt).max(0.0);
        let drain = if now.held_records <= 0.0 {
            "-".to_string()
        } else if out_rate > 0.0 {
            duration(now.held_records / out_rate)
        } else {
            duration(f64::INFINITY)
        };
        let free = now
            .space_ratio
            .map_or("-".to_string(), |r| format!("{r:.1}%"));
        let _ = writeln!(
            out,
            "{id:<24} {:<10} {in_rate:>12.0} {out_rate:>12.0} {:>12} {free:>10} {drain:>10}",
            now.type_name,
            bytes(now.held_bytes)
        );
        if now.space_ratio.is_some_and(|r| r < 20.0) {
            advice.push(format!("{id}: buffer {:.0}% full: the destination takes less than arrives; add flush_thread_count, raise total_limit_size, or add aggregators", 100.0 - now.space_ratio.unwrap_or(0.0)));
        }
        if now.retry_count > before.retry_count {
            advice.push(format!("{id}: flushes are failing and being retried: look for 'temporarily failed to flush the buffer' in the log"));
        }
        if now.slow_flush_count > before.slow_flush_count {
            advice.push(format!("{id}: flushes slower than slow_flush_log_threshold: the destination is slow or overloaded (CPU-bound aggregators answer late)"));
        }
        if now.num_errors > before.num_errors && now.retry_count == before.retry_count {
            advice.push(format!(
                "{id}: errors without retries: chunks were moved to the secondary or quarantine"
            ));
        }
        if let Some(servers) = now.extra.get("servers").and_then(Value::as_array) {
            for s in servers {
                let name = s["name"].as_str().unwrap_or("?");
                let phi = s["phi"].as_f64().unwrap_or(0.0);
                let threshold = s["phi_threshold"].as_f64().unwrap_or(16.0);
                let state = s["state"].as_str().unwrap_or("?");
                // A discovered server says where it came from.
                let source = match s["source"].as_str() {
                    Some(from) if from != "server" => format!("  ({from})"),
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "    server {name:<28} {state:<10} phi {phi:>6.2}  rtt {}  {}{source}",
                    s["rtt_ms"]
                        .as_f64()
                        .map_or("-".into(), |r| format!("{r:.1} ms")),
                    s["last_error"].as_str().unwrap_or("")
                );
                if phi > threshold * 0.5 && state == "healthy" {
                    advice.push(format!("{id}: server {name} phi {phi:.1} is near phi_threshold {threshold}: heartbeats arrive late (the aggregator may be CPU-bound); raise phi_threshold or heartbeat_interval, or relieve the aggregator"));
                }
            }
        }
        http_endpoint(&mut out, &mut advice, id, &before, now);
    }
    out.push_str(&crash_report(b));
    if advice.is_empty() {
        let _ = writeln!(out, "\nno advice: buffers drain and nothing is failing");
    } else {
        let _ = writeln!(out, "\nadvice:");
        for a in advice {
            let _ = writeln!(out, "  - {a}");
        }
    }
    out
}

/// An http output's endpoint line and what its answers advise.
fn http_endpoint(
    out: &mut String,
    advice: &mut Vec<String>,
    id: &str,
    before: &Sample,
    now: &Sample,
) {
    let Some(endpoint) = now.extra.get("endpoint").and_then(Value::as_str) else {
        return;
    };
    let n = |s: &Sample, k: &str| num(&Value::Object(s.extra.clone()), k);
    let classes: Vec<String> = ["2xx", "3xx", "4xx", "5xx"]
        .iter()
        .map(|c| (c, n(now, &format!("http_responses_{c}"))))
        .filter(|(_, v)| *v > 0.0)
        .map(|(c, v)| format!("{c} {v:.0}"))
        .collect();
    let _ = writeln!(
        out,
        "    endpoint {endpoint}  requests {:.0} ({})  connections {:.0}  {}",
        n(now, "http_requests"),
        if classes.is_empty() {
            "no answers".into()
        } else {
            classes.join(", ")
        },
        n(now, "http_connections"),
        now.extra
            .get("http_last_error")
            .and_then(Value::as_str)
            .unwrap_or("")
    );
    if n(now, "http_retryable_errors") > n(before, "http_retryable_errors") {
        advice.push(format!("{id}: the endpoint answers with retryable_response_codes, times out or cannot be reached: chunks wait in the buffer and are retried"));
    }
    if n(now, "http_unrecoverable_errors") > n(before, "http_unrecoverable_errors") {
        advice.push(format!("{id}: the endpoint refused chunks with a status that is not retried: they went to <secondary> or quarantine (the log names the status and the answer)"));
    }
}

/// What crashes cost since this process started, from each output's counts: events sent again
/// that a crash may have delivered already (a number, not a guess: the records of the requests
/// written before the crash and never acknowledged), and archive writes undone or skipped.
fn crash_report(outputs: &BTreeMap<String, Sample>) -> String {
    let mut lines = Vec::new();
    for (id, s) in outputs {
        let n = |k: &str| num(&Value::Object(s.extra.clone()), k);
        let records = n("resent_after_restart_records");
        if records > 0.0 {
            lines.push(format!(
                "  {id:<24} at most {records:.0} events duplicated downstream: {:.0} requests a crash interrupted were sent again",
                n("resent_after_restart")
            ));
        }
        let (undone, cut) = (n("partial_writes_undone"), n("partial_write_bytes_undone"));
        let (skipped, parts) = (n("chunks_already_written"), n("parts_already_written"));
        if undone + skipped + parts > 0.0 {
            lines.push(format!(
                "  {id:<24} 0 duplicated: {undone:.0} interrupted appends cut back ({}), {skipped:.0} chunks and {parts:.0} files already archived not written again",
                bytes(cut)
            ));
        }
    }
    if lines.is_empty() {
        return "\nafter crashes: nothing was sent or written twice since this start\n".into();
    }
    format!(
        "\nafter crashes (since this start):\n{}\n",
        lines.join("\n")
    )
}

/// `ferry_events_dropped_total` from `/metrics`: (plugin, reason) → events.
fn read_dropped(url: &str) -> anyhow::Result<BTreeMap<(String, String), f64>> {
    let (status, body) = get(url, "/metrics")?;
    anyhow::ensure!(status == 200, "{url}/metrics answered {status}");
    Ok(dropped_from(&body))
}

fn dropped_from(text: &str) -> BTreeMap<(String, String), f64> {
    let family = crate::metrics::names::FERRY_DROPPED_RECORDS.0;
    let label = |labels: &str, key: &str| {
        let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
        let len = labels[start..].find('"')?;
        Some(labels[start..start + len].to_string())
    };
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(family).and_then(|r| r.strip_prefix('{')) else {
            continue;
        };
        let Some((labels, value)) = rest.split_once("} ") else {
            continue;
        };
        let Ok(n) = value.trim().parse::<f64>() else {
            continue;
        };
        if n > 0.0
            && let (Some(plugin), Some(reason)) =
                (label(labels, "plugin_id"), label(labels, "reason"))
        {
            *out.entry((plugin, reason)).or_default() += n;
        }
    }
    out
}

/// The lines about dropped events: the total, then each plugin and reason.
fn dropped_report(dropped: &BTreeMap<(String, String), f64>) -> String {
    let total: f64 = dropped.values().sum();
    if total == 0.0 {
        return "\ndropped events: none\n".to_string();
    }
    let mut out = format!("\ndropped events: {total:.0} (ferry_events_dropped_total)\n");
    for ((plugin, reason), n) in dropped {
        let _ = writeln!(out, "  {plugin:<24} {reason:<20} {n:.0}");
    }
    out
}

/// `ferry status --url URL --interval SECS`.
pub fn run(url: &str, interval: Duration) -> anyhow::Result<String> {
    let url = if url.starts_with("http://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let t0 = Instant::now();
    let a = read(&url)?;
    std::thread::sleep(interval);
    let b = read(&url)?;
    let dt = t0.elapsed().as_secs_f64().max(0.001);
    let dropped = read_dropped(&url)?;
    Ok(report(&url, &a, &b, dt) + &dropped_report(&dropped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn outputs(outputs: BTreeMap<String, Sample>) -> Reading {
        Reading {
            inputs: BTreeMap::new(),
            outputs,
        }
    }

    #[test]
    fn inputs_show_their_rates_answers_and_advice() {
        let input = |kind: &str, records: f64, extra: serde_json::Value| InputSample {
            type_name: kind.into(),
            emit_records: records,
            emit_size: records * 200.0,
            extra: extra.as_object().cloned().unwrap_or_default(),
        };
        let a = Reading {
            inputs: BTreeMap::from([
                (
                    "web".to_string(),
                    input(
                        "http",
                        0.0,
                        json!({"answers": {"200": 5}, "connections": 2}),
                    ),
                ),
                (
                    "sc".to_string(),
                    input("scribe", 0.0, json!({"log_ok": 1, "log_try_later": 0})),
                ),
            ]),
            outputs: BTreeMap::new(),
        };
        let b = Reading {
            inputs: BTreeMap::from([
                (
                    "web".to_string(),
                    input(
                        "http",
                        1000.0,
                        json!({"answers": {"200": 9, "503": 2}, "connections": 2}),
                    ),
                ),
                (
                    "sc".to_string(),
                    input("scribe", 500.0, json!({"log_ok": 3, "log_try_later": 4})),
                ),
            ]),
            outputs: BTreeMap::new(),
        };
        let text = report("http://x", &a, &b, 1.0);
        assert!(text.contains("web                      http               1000          0.2  connections 2  answers 200:9 503:2"), "{text}");
        assert!(text.contains("Log OK 3 TRY_LATER 4"), "{text}");
        assert!(text.contains("web: requests were answered 503"), "{text}");
        assert!(
            text.contains("sc: Log calls were answered TRY_LATER"),
            "{text}"
        );
    }

    #[test]
    fn dropped_events_are_summed_by_plugin_and_reason_from_the_metrics_text() {
        let text = "# TYPE ferry_events_dropped_total counter\n\
            ferry_events_dropped_total{plugin_id=\"out\",type=\"forward\",reason=\"quarantined\"} 120\n\
            ferry_events_dropped_total{plugin_id=\"out\",type=\"forward\",reason=\"drop_oldest_chunk\"} 0\n\
            ferry_events_dropped_total{plugin_id=\"router\",type=\"router\",reason=\"unmatched\"} 3\n\
            ferry_router_unmatched_records_total 3\n";
        let d = dropped_from(text);
        assert_eq!(d.len(), 2, "{d:?}");
        assert_eq!(d[&("out".to_string(), "quarantined".to_string())], 120.0);
        let report = dropped_report(&d);
        assert!(report.contains("dropped events: 123"), "{report}");
        assert!(
            report.contains("router") && report.contains("unmatched"),
            "{report}"
        );
        assert!(dropped_report(&BTreeMap::new()).contains("dropped events: none"));
    }

    fn sample(emit: f64, held: f64, ratio: f64) -> Sample {
        Sample {
            type_name: "file".into(),
            emit_records: emit,
            held_records: held,
            held_bytes: held * 200.0,
            space_ratio: Some(ratio),
            ..Sample::default()
        }
    }

    #[test]
    fn crash_costs_are_printed_as_numbers() {
        let mut fwd = sample(0.0, 0.0, 100.0);
        fwd.extra.insert("resent_after_restart".into(), json!(3));
        fwd.extra
            .insert("resent_after_restart_records".into(), json!(1500));
        let mut file = sample(0.0, 0.0, 100.0);
        file.extra.insert("partial_writes_undone".into(), json!(1));
        file.extra
            .insert("partial_write_bytes_undone".into(), json!(2048));
        file.extra.insert("chunks_already_written".into(), json!(2));
        let quiet: BTreeMap<String, Sample> = [("a".to_string(), sample(0.0, 0.0, 100.0))].into();
        assert!(crash_report(&quiet).contains("nothing was sent or written twice"));
        let text = crash_report(&[("fwd".to_string(), fwd), ("arch".to_string(), file)].into());
        assert!(
            text.contains("at most 1500 events duplicated downstream: 3 requests"),
            "{text}"
        );
        assert!(
            text.contains("1 interrupted appends cut back (2.0 KiB), 2 chunks"),
            "{text}"
        );
    }

    #[test]
    fn rates_and_drain_time_come_from_two_readings() {
        let a = BTreeMap::from([("out".to_string(), sample(1000.0, 500.0, 90.0))]);
        let b = BTreeMap::from([("out".to_string(), sample(3000.0, 400.0, 90.0))]);
        let text = report("http://x", &outputs(a), &outputs(b), 2.0);
        // in: 1000 ev/s; held fell by 50 ev/s, so out is 1050 ev/s; 400 held drain in 0s.
        assert!(text.contains(" 1000 "), "{text}");
        assert!(text.contains(" 1050 "), "{text}");
        assert!(text.contains("no advice"), "{text}");
    }

    #[test]
    fn a_nearly_full_buffer_with_nothing_leaving_gets_advice() {
        let a = BTreeMap::from([("out".to_string(), sample(1000.0, 500.0, 15.0))]);
        let b = BTreeMap::from([("out".to_string(), sample(3000.0, 2500.0, 10.0))]);
        let text = report("http://x", &outputs(a), &outputs(b), 2.0);
        assert!(text.contains("never"), "{text}");
        assert!(text.contains("90% full"), "{text}");
    }

    #[test]
    fn an_http_output_shows_its_endpoint_answers_and_advice() {
        let http = |requests: u64, retryable: u64, refused: u64| {
            let mut s = sample(0.0, 0.0, 100.0);
            s.type_name = "http".into();
            for (k, v) in [
                ("endpoint", json!("http://ch:8123/?query=INSERT")),
                ("http_requests", json!(requests)),
                ("http_responses_2xx", json!(requests - retryable - refused)),
                ("http_responses_5xx", json!(retryable)),
                ("http_responses_4xx", json!(refused)),
                ("http_connections", json!(1)),
                ("http_retryable_errors", json!(retryable)),
                ("http_unrecoverable_errors", json!(refused)),
                (
                    "http_last_error",
                    json!("POST http://ch:8123/ answered 503 Service Unavailable: busy"),
                ),
            ] {
                s.extra.insert(k.into(), v);
            }
            s
        };
        let a = BTreeMap::from([("out".to_string(), http(10, 0, 0))]);
        let b = BTreeMap::from([("out".to_string(), http(14, 2, 1))]);
        let text = report("http://x", &outputs(a), &outputs(b), 1.0);
        assert!(
            text.contains("endpoint http://ch:8123/?query=INSERT  requests 14 (2xx 11, 4xx 1, 5xx 2)  connections 1  POST http://ch:8123/ answered 503"),
            "{text}"
        );
        assert!(
            text.contains("out: the endpoint answers with retryable_response_codes"),
            "{text}"
        );
        assert!(text.contains("out: the endpoint refused chunks"), "{text}");
    }
}
