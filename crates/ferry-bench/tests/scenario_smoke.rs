//! Scenario 1 with a tiny size against a real ferry binary: `FERRY_BIN`, or the `ferry` that
//! `cargo test --workspace` builds next to this test's directory.
#![allow(clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use std::path::PathBuf;

use ferry_bench::scenario::{self, AggregatorKind, BufferKind, Ctx, FilterKind, ScenarioOpts};

/// `FERRY_BIN`, else `target/<profile>/ferry` (this test runs from `target/<profile>/deps`).
fn ferry_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("FERRY_BIN") {
        return Some(PathBuf::from(bin));
    }
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join("ferry");
    bin.is_file().then_some(bin)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario_1_moves_every_event_through_a_real_ferry() {
    let Some(bin) = ferry_bin() else {
        assert!(
            std::env::var("FERRY_TEST_DEPS").as_deref() != Ok("1"),
            "no ferry binary: run `cargo test --workspace` (it builds ferry) or set FERRY_BIN"
        );
        eprintln!("skipping: set FERRY_BIN to a ferry binary to run scenario 1 against it");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let opts = ScenarioOpts {
        ferry: Some(bin),
        gb: Some(0.1),
        record_size: 200,
        batch: 500,
        connections: 2,
        buffer: Some(BufferKind::Memory),
        aggregator: AggregatorKind::Ferry,
        filter: None,
        rate: None,
        max_request_size: None,
        secs: None,
        dir: Some(work.path().join("work")),
        plots: work.path().join("plots"),
        json: None,
        limit_secs: 0.3,
        limit_disk_mb: 16,
    };
    let ctx = Ctx::new(opts).unwrap();
    let row = scenario::forward::null(&ctx).await.unwrap();
    let expected = ctx.events_for(0.1);
    assert_eq!(row.events, expected);
    assert_eq!(row.lost, Some(0));
    assert!(row.bytes >= 90_000_000, "{} bytes", row.bytes);
    assert!(row.mb_per_s > 0.0 && row.fraction_of_limit > 0.0);
    assert_eq!(row.procs.len(), 1);
    assert!(row.procs[0].peak_rss_mib > 1.0, "{:?}", row.procs);
    assert!(row.procs[0].cpu_secs > 0.0, "{:?}", row.procs);
    assert!(!row.samples.is_empty());
    // The same with the grep filter every generated record passes.
    let mut ctx = ctx;
    ctx.opts.filter = Some(FilterKind::Grep);
    ctx.opts.gb = Some(0.02);
    let row = scenario::forward::null(&ctx).await.unwrap();
    assert_eq!(row.events, ctx.events_for(0.02));
    assert_eq!(row.lost, Some(0));
    assert!(row.scenario.contains("grep"), "{}", row.scenario);
}
