use super::*;
use crate::filter::raw::check_written;
use crate::plugin::read_section;
use ferry_proto::time::EventTime;
use std::path::Path;

const ID: &str = "3f0b5c2a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a";
const UID: &str = "7d3c6a5e-1b2f-4c8d-9e0a-112233445566";

fn filter(conf: &str) -> KubernetesMetadata {
    read_section(conf, KubernetesMetadata::from_section)
        .unwrap()
        .unwrap()
}

fn link(pod: &str, ns: &str, container: &str) -> String {
    let mut name = String::new();
    link_name(&mut name, pod, ns, container, ID);
    name
}

fn errors(conf: &str) -> Vec<String> {
    read_section(conf, KubernetesMetadata::from_section).unwrap_err()
}

/// The record `json` after the filter, as JSON (keys in their order), and whether it changed.
fn run(f: &KubernetesMetadata, tag: &str, json: &str) -> (String, bool) {
    let bytes = crate::parse::json::to_value(json.as_bytes())
        .unwrap()
        .to_bytes();
    let ctx = TagContext::new(Arc::from(tag), Arc::from("node1"));
    let time = EventTime { sec: 1, nsec: 0 };
    let mut event = Event::try_new(time, &bytes).unwrap();
    let out = f.apply(&ctx, &mut event);
    assert!(out.error.is_none() && out.verdict == super::super::Verdict::Keep);
    // A record loaded as walked (indexed at the first edit) comes out the same.
    let mut walked = Event::default();
    walked.record.load_walked(&bytes).unwrap();
    assert_eq!(f.apply(&ctx, &mut walked), out);
    let written = check_written(&event.record);
    assert_eq!(check_written(&walked.record).to_bytes(), written.to_bytes());
    if !out.modified {
        assert_eq!(
            written.to_bytes(),
            bytes,
            "an unchanged record keeps its bytes"
        );
    }
    let mut text = String::new();
    written.write_json(&mut text);
    (text, out.modified)
}

/// A directory laid out as a node's /var/log: `var/log/containers/<link>` pointing into
/// `var/log/pods`. Made with a name without dots, so that a tag can spell its path.
struct Node {
    dir: tempfile::TempDir,
}

impl Node {
    fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("k8s").tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("var/log/containers")).unwrap();
        Self { dir }
    }

    fn containers(&self) -> PathBuf {
        self.dir.path().join("var/log/containers")
    }

    /// Links `<pod>_<ns>_<container>-<ID>.log` to `target` (relative to var/log/pods).
    fn link(&self, pod: &str, ns: &str, container: &str, target: &str) -> String {
        let name = link(pod, ns, container);
        let target = self.dir.path().join("var/log/pods").join(target);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, "").unwrap();
        let link = self.containers().join(&name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        name
    }

    /// The tag the tail input's `tag <prefix>.*` gives the link `name`.
    fn tag(&self, prefix: &str, name: &str) -> String {
        tag_for(prefix, &self.containers().join(name))
    }
}

fn tag_for(prefix: &str, path: &Path) -> String {
    let flat = path.display().to_string().replace('/', ".");
    assert!(
        !flat.contains(".."),
        "the temporary directory {} has a name starting with a dot",
        path.display()
    );
    let (prefix, flat) = (prefix.trim_end_matches('.'), flat.trim_start_matches('.'));
    if prefix.is_empty() {
        flat.to_string()
    } else {
        format!("{prefix}.{flat}")
    }
}

const CONF: &str = "<filter>\n</filter>";

#[test]
fn container_log_tags_get_the_plugins_names_and_the_pod_uid_read_from_the_link() {
    let node = Node::new();
    let name = node.link(
        "web-5d8f7",
        "shop",
        "app",
        &format!("shop_web-5d8f7_{UID}/app/0.log"),
    );
    let f = filter(CONF);
    let (out, modified) = run(&f, &node.tag("kubernetes", &name), r#"{"log":"hi"}"#);
    assert!(modified);
    assert_eq!(
        out,
        format!(
            r#"{{"log":"hi","docker":{{"container_id":"{ID}"}},"kubernetes":{{"container_name":"app","namespace_name":"shop","pod_name":"web-5d8f7","pod_id":"{UID}"}}}}"#
        )
    );
    // As the plugin's Hash#merge: fields the record has are replaced where they stand.
    let (out, _) = run(
        &f,
        &node.tag("kubernetes", &name),
        r#"{"kubernetes":{"labels":{"a":"b"}},"log":"hi","docker":1}"#,
    );
    assert_eq!(
        out,
        format!(
            r#"{{"kubernetes":{{"container_name":"app","namespace_name":"shop","pod_name":"web-5d8f7","pod_id":"{UID}"}},"log":"hi","docker":{{"container_id":"{ID}"}}}}"#
        )
    );
}

#[test]
fn names_with_dots_and_tag_prefixes_of_several_parts_find_the_link() {
    let node = Node::new();
    let name = node.link(
        "web.v2-7c9d",
        "shop",
        "app.main",
        &format!("shop_web.v2-7c9d_{UID}/app.main/3.log"),
    );
    let (out, _) = run(&filter(CONF), &node.tag("k8s.node1.", &name), "{}");
    assert_eq!(
        out,
        format!(
            r#"{{"docker":{{"container_id":"{ID}"}},"kubernetes":{{"container_name":"app.main","namespace_name":"shop","pod_name":"web.v2-7c9d","pod_id":"{UID}"}}}}"#
        )
    );
    // A tag with no prefix at all.
    let (out, _) = run(&filter(CONF), &node.tag("", &name), "{}");
    assert!(out.contains(&format!(r#""pod_id":"{UID}""#)), "{out}");
}

#[test]
fn links_into_the_older_pods_layout_and_unreadable_links() {
    let node = Node::new();
    // kubelet before 1.14: /var/log/pods/<uid>/<container>_<n>.log
    let name = node.link("db-0", "data", "pg", &format!("{UID}/pg_0.log"));
    let (out, _) = run(&filter(CONF), &node.tag("kubernetes.", &name), "{}");
    assert!(out.contains(&format!(r#""pod_id":"{UID}""#)), "{out}");
    // No link: the names and the container id, no pod_id, no error.
    let missing = link("gone-1", "data", "pg");
    let (out, modified) = run(&filter(CONF), &node.tag("kubernetes.", &missing), "{}");
    assert!(modified);
    assert_eq!(
        out,
        format!(
            r#"{{"docker":{{"container_id":"{ID}"}},"kubernetes":{{"container_name":"pg","namespace_name":"data","pod_name":"gone-1"}}}}"#
        )
    );
    // A link whose target names no pod.
    let odd = node.link("odd-1", "data", "pg", "elsewhere/file.log");
    let (out, _) = run(&filter(CONF), &node.tag("kubernetes.", &odd), "{}");
    assert!(!out.contains("pod_id"), "{out}");
}

#[test]
fn pod_log_tags_take_the_uid_from_the_tag_and_have_no_docker_map() {
    let tag = format!("kubernetes.var.log.pods.shop_web-5d8f7_{UID}.app.0.log");
    let (out, _) = run(&filter(CONF), &tag, r#"{"log":"x"}"#);
    assert_eq!(
        out,
        format!(
            r#"{{"log":"x","kubernetes":{{"container_name":"app","namespace_name":"shop","pod_name":"web-5d8f7","pod_id":"{UID}"}}}}"#
        )
    );
}

#[test]
fn records_of_tags_that_do_not_match_pass_unchanged() {
    let f = filter(CONF);
    for tag in [
        "app.access",
        "kubernetes.var.log.containers.web_shop_app-short.log",
        "kubernetes.var.log.syslog",
    ] {
        let (out, modified) = run(&f, tag, r#"{"log":"hi"}"#);
        assert!(!modified, "{tag}");
        assert_eq!(out, r#"{"log":"hi"}"#);
    }
}

#[test]
fn container_links_dir_names_the_directory_of_the_links() {
    // A directory a tag cannot spell (its name starts with a dot).
    let dir = tempfile::Builder::new().prefix(".links").tempdir().unwrap();
    let pods = dir.path().join(format!("pods/shop_web-1_{UID}/app"));
    std::fs::create_dir_all(&pods).unwrap();
    let name = link("web-1", "shop", "app");
    std::os::unix::fs::symlink(pods.join("0.log"), dir.path().join(&name)).unwrap();
    let tag = format!("kubernetes.var.log.containers.{name}");
    let (out, _) = run(&filter(CONF), &tag, "{}");
    assert!(!out.contains("pod_id"), "{out}");
    let conf = format!(
        "<filter>\ncontainer_links_dir {}\n</filter>",
        dir.path().display()
    );
    let (out, _) = run(&filter(&conf), &tag, "{}");
    assert!(out.contains(&format!(r#""pod_id":"{UID}""#)), "{out}");
}

#[test]
fn tag_to_kubernetes_name_regexp_replaces_both_defaults() {
    let f = filter(
        "<filter>\n\
         tag_to_kubernetes_name_regexp ^app\\.(?<namespace>[^.]+)\\.(?<pod_name>[^.]+)\\.(?<container_name>[^.]+)\\.(?<docker_id>[0-9a-f]+)$\n\
         </filter>",
    );
    let (out, _) = run(&f, "app.shop.web-1.main.abc123", "{}");
    assert_eq!(
        out,
        r#"{"docker":{"container_id":"abc123"},"kubernetes":{"container_name":"main","namespace_name":"shop","pod_name":"web-1"}}"#
    );
    let tag = format!("kubernetes.var.log.pods.shop_web-5d8f7_{UID}.app.0.log");
    assert!(!run(&f, &tag, "{}").1, "the defaults no longer apply");
}

#[test]
fn a_bad_tag_to_kubernetes_name_regexp_is_an_error_at_its_line() {
    let bad = |re: &str| {
        errors(&format!(
            "<filter>\ntag_to_kubernetes_name_regexp {re}\n</filter>"
        ))
    };
    let e = bad("(?<namespace>[^_]+)_(?<pod_name>.+)");
    assert!(
        e[0].starts_with("test.conf:2") && e[0].contains("container_name"),
        "{e:?}"
    );
    let e = bad("(?<namespace>a)_(?<pod_name>b)_(?<container_name>c)");
    assert!(e[0].contains("docker_id or pod_uuid"), "{e:?}");
    let e = bad("(?<namespace>[");
    assert!(
        e[0].starts_with("test.conf:2") && e[0].contains("invalid regular expression"),
        "{e:?}"
    );
    // Rust's regex takes a group name once (Ruby's takes it in each alternative).
    let e = bad("(?<namespace>a)(?<pod_name>b)(?<container_name>c)(?<docker_id>d)|(?<namespace>e)");
    assert!(e[0].starts_with("test.conf:2"), "{e:?}");
}

#[test]
fn lookup_from_k8s_field_takes_the_names_a_record_carries() {
    let node = Node::new();
    node.link(
        "web-1",
        "shop",
        "app",
        &format!("shop_web-1_{UID}/app/0.log"),
    );
    let conf = format!(
        "<filter>\ncontainer_links_dir {}\n</filter>",
        node.containers().display()
    );
    let record = format!(
        r#"{{"kubernetes":{{"pod_name":"web-1","namespace_name":"shop","container_name":"app","labels":{{"a":"b"}}}},"docker":{{"container_id":"{ID}","x":1}},"log":"hi"}}"#
    );
    // The plugin rebuilds both maps from the names: other keys are not kept.
    let rebuilt = format!(
        r#"{{"kubernetes":{{"container_name":"app","namespace_name":"shop","pod_name":"web-1","pod_id":"{UID}"}},"docker":{{"container_id":"{ID}"}},"log":"hi"}}"#
    );
    let (out, modified) = run(&filter(&conf), "app.access", &record);
    assert!(modified);
    assert_eq!(out, rebuilt);
    // An id as the API writes it names the same link.
    let prefixed = record.replace(ID, &format!("containerd://{ID}"));
    let (out, _) = run(&filter(&conf), "app.access", &prefixed);
    assert!(out.contains(&format!(r#""pod_id":"{UID}""#)), "{out}");
    assert!(
        out.contains(&format!(r#""container_id":"containerd://{ID}""#)),
        "{out}"
    );
    // Before what the tag says.
    let tag = format!("kubernetes.var.log.pods.other_other-1_{UID}.c.0.log");
    assert_eq!(run(&filter(&conf), &tag, &record).0, rebuilt);
    // An empty container_id leaves `docker` as it is; no link is read without one.
    let (out, _) = run(
        &filter(&conf),
        "app.access",
        r#"{"kubernetes":{"pod_name":"p","namespace_name":"n","container_name":"c"},"docker":{"container_id":""}}"#,
    );
    assert_eq!(
        out,
        r#"{"kubernetes":{"container_name":"c","namespace_name":"n","pod_name":"p"},"docker":{"container_id":""}}"#
    );
    // A field missing: not this path.
    let partial =
        r#"{"kubernetes":{"pod_name":"p","namespace_name":"n"},"docker":{"container_id":"i"}}"#;
    assert!(!run(&filter(&conf), "app.access", partial).1);
    // Off: the record keeps its maps.
    let off = conf.replace("</filter>", "lookup_from_k8s_field false\n</filter>");
    let (out, modified) = run(&filter(&off), "app.access", &record);
    assert!(!modified);
    assert!(out.contains("labels"), "{out}");
}

#[test]
fn a_tag_seen_again_is_answered_from_the_cache_until_cache_ttl() {
    let node = Node::new();
    let name = node.link(
        "web-1",
        "shop",
        "app",
        &format!("shop_web-1_{UID}/app/0.log"),
    );
    let tag = node.tag("kubernetes.", &name);
    let cached = filter(CONF);
    let fresh = filter("<filter>\ncache_ttl 0\n</filter>");
    let forever = filter("<filter>\ncache_ttl -1\n</filter>");
    for f in [&cached, &fresh, &forever] {
        assert!(run(f, &tag, "{}").0.contains(UID));
    }
    // The pod is replaced under the same names: the link now points at another uid.
    node.link("web-1", "shop", "app", "shop_web-1_new-uid/app/0.log");
    assert!(
        run(&cached, &tag, "{}").0.contains(UID),
        "no readlink while cached"
    );
    assert!(run(&forever, &tag, "{}").0.contains(UID));
    assert!(run(&fresh, &tag, "{}").0.contains(r#""pod_id":"new-uid""#));
}

#[test]
fn cache_size_bounds_the_tags_kept_and_the_oldest_goes_first() {
    let node = Node::new();
    let a = node.link("a-1", "ns", "c", "ns_a-1_uid-a/c/0.log");
    let b = node.link("b-1", "ns", "c", "ns_b-1_uid-b/c/0.log");
    let (tag_a, tag_b) = (node.tag("k.", &a), node.tag("k.", &b));
    let one = filter("<filter>\ncache_size 1\n</filter>");
    let two = filter("<filter>\ncache_size 2\n</filter>");
    for f in [&one, &two] {
        assert!(run(f, &tag_a, "{}").0.contains("uid-a"));
        assert!(run(f, &tag_b, "{}").0.contains("uid-b"));
    }
    node.link("a-1", "ns", "c", "ns_a-1_uid-a2/c/0.log");
    assert!(run(&one, &tag_a, "{}").0.contains("uid-a2"), "a was let go");
    assert!(run(&two, &tag_a, "{}").0.contains(r#""pod_id":"uid-a""#));
    assert!(errors("<filter>\ncache_size 0\n</filter>")[0].starts_with("test.conf:2"));
}

#[test]
fn parameters_that_need_the_api_server_are_refused_at_their_line() {
    let keys = [
        "kubernetes_url",
        "apiVersion",
        "watch",
        "client_cert",
        "client_key",
        "ca_file",
        "verify_ssl",
        "ssl_partial_chain",
        "bearer_token_file",
        "secret_dir",
        "open_timeout",
        "read_timeout",
        "ignore_nil",
        "annotation_match",
        "allow_orphans",
        "orphaned_namespace_name",
        "orphaned_namespace_id",
        "skip_labels",
        "skip_pod_labels",
        "skip_namespace_labels",
        "skip_container_metadata",
        "skip_master_url",
        "skip_namespace_metadata",
        "include_ownerrefs_metadata",
        "stats_interval",
        "test_api_adapter",
        "watch_retry_interval",
        "watch_retry_exponential_backoff_base",
        "watch_retry_max_times",
        "de_dot",
        "de_dot_separator",
        "de_slash",
        "de_slash_separator",
    ];
    assert_eq!(keys, API_PARAMETERS, "every refused key is tried here");
    for key in keys {
        let e = errors(&format!("<filter>\n{key} false\n</filter>"));
        assert_eq!(e.len(), 1, "{key}: {e:?}");
        assert!(
            e[0].starts_with("test.conf:2")
                && e[0].contains(&format!("'{key}' is refused"))
                && e[0].contains("no Kubernetes API server"),
            "{key}: {e:?}"
        );
    }
}
