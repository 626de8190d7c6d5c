//! The `sample` input (Fluentd's `dummy`) with the real `ferry` binary: records used in turn,
//! `auto_increment_key`, `rate` × `size` events a second, and its mistakes refused at their line.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use common::Ferry;
use std::time::{Duration, Instant};

fn conf(source: &str) -> String {
    format!(
        "<source>\n{source}</source>\n<match sample.**>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n"
    )
}

#[test]
fn records_are_used_in_turn_numbered_and_paced_by_rate_and_size() {
    let ferry = Ferry::start_logged(
        &conf(
            "  @type sample\n  tag sample.a\n  rate 20\n  size 2\n  auto_increment_key n\n  sample [{\"k\":\"x\"},{\"k\":\"y\",\"n\":\"replaced\"}]\n",
        ),
        &[],
    );
    let started = Instant::now();
    let lines = ferry.stdout_lines(80, Duration::from_secs(10));
    let took = started.elapsed();
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r["n"], i as u64, "{r}");
        assert_eq!(r["k"], if i % 2 == 0 { "x" } else { "y" }, "{r}");
    }
    // 20 emits of 2 events a second: 80 events take about 2 s.
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "80 events at 40/s took {took:?}"
    );
}

#[test]
fn dummy_is_the_older_name_with_the_older_parameter() {
    let ferry = Ferry::start_logged(
        &conf("  @type dummy\n  tag sample.d\n  dummy {\"hello\":\"world\"}\n"),
        &[],
    );
    let line = ferry.stdout_lines(1, Duration::from_secs(5)).remove(0);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["hello"], "world");
}

#[test]
fn a_sample_that_is_not_json_objects_is_refused_at_its_line() {
    for (sample, why) in [
        ("  sample {not json\n", "is not JSON"),
        ("  sample [1,2]\n", "must be a JSON object"),
        ("  rate 0\n", "rate must be at least 1"),
    ] {
        let (ok, _, err) =
            common::dry_run(&conf(&format!("  @type sample\n  tag sample.x\n{sample}")));
        assert!(!ok, "{sample}");
        assert!(
            err.contains(why) && err.contains("ferry.conf:"),
            "{sample}: {err}"
        );
    }
}

#[test]
fn a_label_takes_the_generated_events() {
    let ferry = Ferry::start_logged(
        "<source>\n  @type sample\n  @label @GEN\n  tag sample.l\n  sample {\"via\":\"label\"}\n</source>\n\
         <match **>\n  @type null\n</match>\n\
         <label @GEN>\n  <match **>\n    @type stdout\n    <format>\n      @type json\n    </format>\n  </match>\n</label>\n",
        &[],
    );
    let line = ferry.stdout_lines(1, Duration::from_secs(5)).remove(0);
    assert!(line.contains("\"via\":\"label\""), "{line}");
}

#[test]
fn the_stdout_filter_prints_each_event_and_passes_it_on() {
    let ferry = Ferry::start_logged(
        "<source>\n  @type sample\n  tag sample.f\n  sample {\"seen\":\"twice\"}\n</source>\n\
         <filter sample.**>\n  @type stdout\n</filter>\n\
         <match sample.**>\n  @type stdout\n  <format>\n    @type json\n  </format>\n</match>\n",
        &[],
    );
    let lines = ferry.stdout_lines(4, Duration::from_secs(10));
    let printed = lines
        .iter()
        .filter(|l| l.contains(" sample.f: {\"seen\":\"twice\"}"))
        .count();
    let passed = lines
        .iter()
        .filter(|l| *l == "{\"seen\":\"twice\"}")
        .count();
    assert_eq!((printed, passed), (2, 2), "{lines:#?}");
}
