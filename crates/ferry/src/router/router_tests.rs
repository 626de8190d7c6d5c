use super::*;
use crate::filter::chain::batch_of;
use crate::output::Sink;
use crate::record::str_value;
use ferry_proto::msgpack::Value;

async fn router(conf: &str) -> Router {
    let root = ferry_config::parse_str(conf, "test.conf").unwrap();
    // Default buffers go under a directory of the test's own.
    let options = crate::pipeline::LoadOptions {
        root_dir: Some(tempfile::tempdir().unwrap().keep()),
    };
    let config =
        crate::pipeline::build_with(&root, &options).unwrap_or_else(|e| panic!("{:?}", e.0));
    let mut outputs = Vec::new();
    for (id, output) in config.routes.outputs() {
        outputs.push(Arc::new(
            Output::build(id.to_string(), output).await.unwrap(),
        ));
    }
    Router::new(&config.routes, outputs)
}

/// Records each null output took, by output id.
fn taken(r: &Router) -> HashMap<String, u64> {
    r.outputs()
        .iter()
        .filter_map(|o| match &*o.sink {
            Sink::Null(n) => Some((o.id.clone(), n.records.load(Ordering::Relaxed))),
            _ => None,
        })
        .filter(|(_, n)| *n > 0)
        .collect()
}

fn counts(pairs: &[(&str, u64)]) -> HashMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

fn events(tag: &str, levels: &[&str]) -> Batch {
    let records: Vec<(u32, Value)> = levels
        .iter()
        .map(|l| (1, Value::Map(vec![(str_value("level"), str_value(l))])))
        .collect();
    batch_of(tag, &records)
}

fn null(id: &str) -> String {
    format!("@type null\n@id {id}")
}

#[tokio::test]
async fn first_matching_directive_wins_and_labels_have_their_own_tables() {
    let r = router(&format!(
        "<match a.**>\n{}\n</match>\n<match **>\n{}\n</match>\n<match a.x>\n{}\n</match>\n\
         <label @L>\n<match **>\n{}\n</match>\n</label>",
        null("A"),
        null("B"),
        null("never"),
        null("L")
    ))
    .await;
    let root = r.route_for(None).unwrap();
    assert_eq!(r.route_for(Some("@ROOT")), Some(root));
    r.emit(root, &events("a.x", &["i"])).await.unwrap();
    r.emit(root, &events("b", &["i", "i"])).await.unwrap();
    let label = r.route_for(Some("@L")).unwrap();
    r.emit(label, &events("a.x", &["i", "i", "i"]))
        .await
        .unwrap();
    assert_eq!(taken(&r), counts(&[("A", 1), ("B", 2), ("L", 3)]));
    assert!(r.route_for(Some("@NOPE")).is_none());
}

#[tokio::test]
async fn unmatched_events_are_counted_and_never_filtered() {
    let r = router(&format!(
        "<filter **>\n@type grep\n<regexp>\nkey level\npattern never\n</regexp>\n</filter>\n\
         <match a>\n{}\n</match>",
        null("A")
    ))
    .await;
    let routed = r
        .emit(r.route_for(None).unwrap(), &events("b", &["i", "i"]))
        .await;
    assert_eq!(routed.unwrap(), Routed::Unmatched);
    assert_eq!(r.unmatched_records(), 2);
    assert_eq!(r.metrics.filtered_records.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn filters_run_only_when_they_come_before_the_winning_match() {
    let r = router(&format!(
        "<filter **>\n@type grep\n<exclude>\nkey level\npattern debug\n</exclude>\n</filter>\n\
         <match a.**>\n{}\n</match>\n\
         <filter **>\n@type grep\n<regexp>\nkey level\npattern ^never$\n</regexp>\n</filter>\n\
         <match **>\n{}\n</match>",
        null("A"),
        null("B")
    ))
    .await;
    let root = r.route_for(None).unwrap();
    r.emit(root, &events("a.1", &["info", "debug", "warn"]))
        .await
        .unwrap();
    r.emit(root, &events("b.1", &["info", "debug", "warn"]))
        .await
        .unwrap();
    assert_eq!(
        taken(&r),
        counts(&[("A", 2)]),
        "b.1 meets the second grep, a.1 does not"
    );
    assert_eq!(r.metrics.filtered_records.load(Ordering::Relaxed), 4);
}

#[tokio::test]
async fn relabel_moves_events_into_another_label_and_back_to_root() {
    let r = router(&format!(
        "<match to_label.**>\n@type relabel\n@label @X\n</match>\n<match **>\n{}\n</match>\n\
         <label @X>\n<filter **>\n@type record_transformer\n<record>\nseen x\n</record>\n</filter>\n\
         <match back.**>\n@type relabel\n@label @ROOT\n</match>\n<match **>\n{}\n</match>\n</label>",
        null("root"),
        null("X")
    ))
    .await;
    let root = r.route_for(None).unwrap();
    r.emit(root, &events("to_label.a", &["i", "i"]))
        .await
        .unwrap();
    r.emit(r.route_for(Some("@X")).unwrap(), &events("back.a", &["i"]))
        .await
        .unwrap();
    assert_eq!(taken(&r), counts(&[("X", 2), ("root", 1)]));
}

#[tokio::test]
async fn a_relabel_cycle_is_refused_not_followed_forever() {
    let r = router(
        "<label @A>\n<match **>\n@type relabel\n@label @B\n</match>\n</label>\n\
         <label @B>\n<match **>\n@type relabel\n@label @A\n</match>\n</label>",
    )
    .await;
    let err = r
        .emit(r.route_for(Some("@A")).unwrap(), &events("t", &["i"]))
        .await;
    assert!(matches!(err, Err(EmitError::LabelLoop { .. })), "{err:?}");
}

const PARSER: &str =
    "<filter **>\n@type parser\nkey_name level\n<parse>\n@type json\n</parse>\n</filter>";

#[tokio::test]
async fn filter_errors_go_to_the_error_label() {
    let r = router(&format!(
        "{PARSER}\n<match **>\n{}\n</match>\n<label @ERROR>\n<match **>\n{}\n</match>\n</label>",
        null("main"),
        null("errors")
    ))
    .await;
    let batch = events("t", &[r#"{"ok":1}"#, "not json", "{"]);
    let routed = r.emit(r.route_for(None).unwrap(), &batch).await.unwrap();
    assert_eq!(routed, Routed::Committed);
    assert_eq!(taken(&r), counts(&[("main", 1), ("errors", 2)]));
    assert_eq!(r.metrics.error_records.load(Ordering::Relaxed), 2);
    assert_eq!(r.metrics.dropped_error_records.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn filter_errors_without_an_error_label_are_dropped_and_counted() {
    let r = router(&format!("{PARSER}\n<match **>\n{}\n</match>", null("main"))).await;
    let batch = events("t", &[r#"{"ok":1}"#, "not json"]);
    r.emit(r.route_for(None).unwrap(), &batch).await.unwrap();
    assert_eq!(taken(&r), counts(&[("main", 1)]));
    assert_eq!(r.metrics.dropped_error_records.load(Ordering::Relaxed), 1);
}

/// A buffered output whose chunks are too small for any record: it refuses every batch with
/// a non-retryable error.
const REFUSING: &str = "@type null\n@id refusing\n<buffer>\nchunk_limit_size 8\n</buffer>";

#[tokio::test]
async fn a_batch_an_output_refuses_for_good_goes_to_the_error_label() {
    let r = router(&format!(
        "<match **>\n{REFUSING}\n</match>\n<label @ERROR>\n<match **>\n{}\n</match>\n</label>",
        null("errors")
    ))
    .await;
    let routed = r
        .emit(r.route_for(None).unwrap(), &events("t", &["a", "b"]))
        .await;
    assert_eq!(routed.unwrap(), Routed::Committed);
    assert_eq!(taken(&r), counts(&[("errors", 2)]));
}

#[tokio::test]
async fn without_an_error_label_a_refused_batch_fails_the_emit() {
    let r = router(&format!("<match **>\n{REFUSING}\n</match>")).await;
    let err = r
        .emit(r.route_for(None).unwrap(), &events("t", &["a"]))
        .await;
    assert!(matches!(err, Err(EmitError::Split { .. })), "{err:?}");
}

#[tokio::test]
async fn an_error_label_that_refuses_too_fails_the_emit_instead_of_looping() {
    let r = router(&format!(
        "<match **>\n{REFUSING}\n</match>\n<label @ERROR>\n<match **>\n\
         {}\n</match>\n</label>",
        REFUSING.replace("refusing", "refusing_too")
    ))
    .await;
    let err = r
        .emit(r.route_for(None).unwrap(), &events("t", &["a"]))
        .await;
    assert!(matches!(err, Err(EmitError::Split { .. })), "{err:?}");
}

#[tokio::test]
async fn copy_gives_every_store_every_event_and_commits_when_all_required_stores_did() {
    let conf = |ignore: &str| {
        format!(
            "<match **>\n@type copy\ncopy_mode deep\n<store>\n{}\n</store>\n\
             <store {ignore}>\n{REFUSING}\n</store>\n<store>\n{}\n</store>\n</match>",
            null("one"),
            null("two")
        )
    };
    let r = router(&conf("ignore_error")).await;
    let routed = r
        .emit(r.route_for(None).unwrap(), &events("t", &["a", "b"]))
        .await;
    assert_eq!(routed.unwrap(), Routed::Committed);
    assert_eq!(taken(&r), counts(&[("one", 2), ("two", 2)]));
    assert_eq!(r.metrics.ignored_store_errors.load(Ordering::Relaxed), 1);

    let r = router(&conf("")).await;
    let err = r
        .emit(r.route_for(None).unwrap(), &events("t", &["a"]))
        .await;
    assert!(err.is_err(), "a required store refused");
    assert_eq!(
        taken(&r),
        counts(&[("one", 1), ("two", 1)]),
        "the other stores still got the events"
    );
}

#[tokio::test]
async fn routes_are_decided_once_per_tag() {
    let r = router(&format!("<match **>\n{}\n</match>", null("A"))).await;
    let table = &r.tables[0];
    let tag: Arc<str> = Arc::from("x.y");
    let first = table.lookup(&tag);
    let again = table.lookup(&Arc::from("x.y"));
    assert!(Arc::ptr_eq(&first, &again));
}

#[test]
fn routing_mistakes_are_configuration_errors() {
    let errs = |conf: &str| {
        let root = ferry_config::parse_str(conf, "test.conf").unwrap();
        crate::pipeline::build(&root)
            .err()
            .map(|e| e.0.len())
            .unwrap_or(0)
    };
    assert_eq!(errs("<match **>\n@type relabel\n@label @NOPE\n</match>"), 1);
    assert_eq!(errs("<match **>\n@type relabel\n</match>"), 1);
    assert_eq!(errs("<match **>\n@type copy\n</match>"), 1);
    assert_eq!(
        errs("<match **>\n@type copy\n<store bogus>\n@type null\n</store>\n</match>"),
        1
    );
    assert_eq!(
        errs("<match **>\n@type null\n@label @X\n</match>\n<label @X>\n</label>"),
        1
    );
    assert_eq!(errs("<label @ROOT>\n</label>"), 1);
    assert_eq!(errs("<match **>\n@type secondary_file\n</match>"), 1);
    assert_eq!(errs("<filter **>\n@type kubernetes_metadata\n</filter>"), 0);
    assert_eq!(errs("<filter **>\n@type geoip\n</filter>"), 1);
    let root = ferry_config::parse_str(
        "<filter **>\n@type kubernetes_metadata\nkubernetes_url https://10.0.0.1:443\n</filter>",
        "test.conf",
    )
    .unwrap();
    let refused = crate::pipeline::build(&root).err().unwrap();
    assert_eq!(refused.0.len(), 1);
    let message = refused.0[0].to_string();
    assert!(
        message.starts_with("test.conf:3")
            && message.contains("'kubernetes_url' is refused")
            && message.contains("reads no Kubernetes API server"),
        "{message}"
    );
    assert_eq!(errs("<filter {a>\n@type grep\n</filter>"), 1);
    assert_eq!(
        errs(
            "<match **>\n@type null\n<secondary>\n@type secondary_file\ndirectory /x\n</secondary>\n</match>"
        ),
        1
    );
    assert_eq!(
        errs(
            "<match **>\n@type copy\n<store>\n@type null\n</store>\n<store ignore_error>\n@type relabel\n@label @ROOT\n</store>\n</match>"
        ),
        0
    );
}

#[tokio::test]
async fn roundrobin_gives_each_batch_to_one_store_in_turn_by_weight() {
    let r = router(&format!(
        "<match **>\n@type roundrobin\n<store>\n{}\nweight 3\n</store>\n<store>\n{}\n</store>\n</match>",
        null("heavy"),
        null("light")
    ))
    .await;
    for _ in 0..8 {
        r.emit(RouteId(0), &events("t", &["x"])).await.unwrap();
    }
    assert_eq!(taken(&r), counts(&[("heavy", 6), ("light", 2)]));
}

#[tokio::test]
async fn roundrobin_passes_a_batch_a_full_store_refuses_to_the_next() {
    // The first store never flushes and holds one batch: from then on its turns go to the other.
    let r = router(
        "<match **>\n@type roundrobin\n\
         <store>\n@type null\n@id stuck\nnever_flush true\n<buffer>\n@type memory\nchunk_limit_size 64\ntotal_limit_size 64\n</buffer>\n</store>\n\
         <store>\n@type null\n@id open\n</store>\n</match>",
    )
    .await;
    // Each batch is about 60 bytes: the stuck store's 64 bytes hold one.
    let long = "x".repeat(40);
    for _ in 0..6 {
        r.emit(RouteId(0), &events("t", &[long.as_str()]))
            .await
            .unwrap();
    }
    let open = taken(&r).get("open").copied().unwrap_or(0);
    let held: Vec<u64> = r
        .outputs()
        .iter()
        .filter_map(|o| o.buffered.as_ref().map(|b| b.buffer.stats().total_records))
        .collect();
    assert_eq!(
        (open, held),
        (5, vec![1]),
        "every turn of the full store after its first went to the other"
    );
}

#[test]
fn weighted_turns_are_spread_out() {
    assert_eq!(super::route::schedule_for_tests(&[3, 1]), vec![0, 0, 1, 0]);
    assert_eq!(super::route::schedule_for_tests(&[1, 1, 1]), vec![0, 1, 2]);
}
