//! `@type kubernetes_metadata`: adds to each record of a container's log the names of its pod,
//! namespace and container, its container id and its pod's uid, as
//! fluent-plugin-kubernetes_metadata_filter does, read from the tag and the file system. ferry
//! reads no Kubernetes API server.
//!
//! **From the tag.** The tail input's `tag kubernetes.*` over `/var/log/containers/*.log` gives
//! tags such as `kubernetes.var.log.containers.<pod>_<namespace>_<container>-<id>.log`
//! (kubelet's link names), and over `/var/log/pods/*/*/*.log` tags such as
//! `kubernetes.var.log.pods.<namespace>_<pod>_<uid>.<container>.0.log`.
//! `tag_to_kubernetes_name_regexp` reads them with the named groups `namespace`, `pod_name`,
//! `container_name`, and `docker_id` or `pod_uuid`; its default is the plugin's (both layouts).
//! The plugin's default is one expression whose two alternatives repeat the group names, which
//! Rust's `regex` refuses: ferry keeps the two as two expressions and takes the match that
//! starts first (the first one on a tie), which is what the alternation finds.
//!
//! **What a record gets**, as the plugin without an API server gives it, plus `pod_id`:
//!
//! ```text
//! "docker": {"container_id": "<docker_id>"}          (only when the tag has a docker_id)
//! "kubernetes": {"container_name": ..., "namespace_name": ..., "pod_name": ..., "pod_id": ...}
//! ```
//!
//! merged as Ruby's `Hash#merge` merges: a `docker` or `kubernetes` field the record already
//! has is replaced where it stands (not merged key by key), else the field is appended. A tag
//! that does not match leaves the record as it is.
//!
//! **`pod_id`** (the plugin reads the pod's uid from the API) is taken from the file system: a
//! `pod_uuid` group gives it; else the container's link `<dir>/<pod>_<namespace>_<container>-
//! <docker_id>.log` is read (`readlink`), and its target's directory names the pod:
//! `/var/log/pods/<namespace>_<pod>_<uid>/<container>/N.log` (kubelet 1.14 and later), or
//! `/var/log/pods/<uid>/<container>_N.log` (before). `<dir>` is `container_links_dir` when set
//! (a ferry parameter); else it is read back from the tag: the tag's parts before the link name
//! as a path, tried whole and then without their first parts, one at a time (the tail's tag
//! prefix is not part of the path), then `/var/log/containers`. The tail writes `/` as `.` and
//! drops the dot of a directory whose name starts with one, so a directory whose name holds a
//! dot cannot be read back: name it with `container_links_dir`. A link that cannot be read, or
//! whose target says no uid, gives no `pod_id` (and no error).
//!
//! **Records that carry their names** (`lookup_from_k8s_field`, on by default, as in the
//! plugin): a record whose `kubernetes` map holds `namespace_name`, `pod_name` and
//! `container_name` and whose `docker` map holds `container_id` gets its metadata from those
//! instead of the tag: `kubernetes` becomes those three names (as they are) and the `pod_id` of
//! the link they name (the id without a `containerd://` prefix) in `container_links_dir`
//! (default `/var/log/containers`); other keys of
//! the record's `kubernetes` map are not kept, as in the plugin. `docker` is rewritten the same
//! way, unless its `container_id` is nil or empty.
//!
//! **Cache.** What a tag gives is kept per tag (and what a link gives per link name), at most
//! `cache_size` of each (the oldest goes first), so a tag seen again costs one lookup and no
//! system call. An answer read from a link is read again after `cache_ttl` seconds (never when
//! negative); what the tag alone gives never changes.
//!
//! **Refused.** The plugin's parameters for its API client and for what it adds from the API
//! ([`API_PARAMETERS`]) are configuration errors, whatever their value: nothing here could
//! honour them.

use super::raw::{RawRecord, RawValue};
use super::{Event, Outcome, Scratch, TagContext};
use crate::record::str_value;
use bytes::{Bytes, BytesMut};
use ferry_config::Section;
use ferry_proto::msgpack::{self, Head, Value};
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// The plugin's default for `/var/log/pods/*/*/*.log`.
const PODS_REGEXP: &str = r"(var\.log\.pods)\.(?<namespace>[^_]+)_(?<pod_name>[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)_(?<pod_uuid>[a-z0-9-]*)\.(?<container_name>.+)\..*\.log$";

/// The plugin's default for `/var/log/containers/*.log`.
const CONTAINERS_REGEXP: &str = r"(var\.log\.containers)\.(?<pod_name>[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)_(?<namespace>[^_]+)_(?<container_name>.+)-(?<docker_id>[a-z0-9]{64})\.log$";

/// Where kubelet puts the container links.
const KUBELET_LINKS_DIR: &str = "/var/log/containers";

/// The plugin's parameters that configure its API client, or choose among what the API
/// answers: refused whatever their value.
pub const API_PARAMETERS: &[&str] = &[
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

/// The keys of the names in the `kubernetes` map, in the plugin's order.
const NAME_KEYS: [&str; 3] = ["container_name", "namespace_name", "pod_name"];

#[derive(Debug, Clone)]
pub struct KubernetesMetadata {
    tag_regexps: Vec<TagRegexp>,
    lookup_from_k8s_field: bool,
    /// `container_links_dir`: the only directory links are read in, when set.
    links_dir: Option<PathBuf>,
    /// Per tag: what it adds (`None`: the tag does not match).
    tags: Arc<Cache<Option<Arc<Metadata>>>>,
    /// Per link name (`lookup_from_k8s_field`): the pod's uid.
    links: Arc<Cache<Option<Arc<str>>>>,
}

/// One expression over tags, with the indices of its groups.
#[derive(Debug, Clone)]
struct TagRegexp {
    re: regex::Regex,
    namespace: usize,
    pod_name: usize,
    container_name: usize,
    docker_id: Option<usize>,
    pod_uuid: Option<usize>,
}

/// What a tag adds: the `docker` and `kubernetes` values, encoded.
#[derive(Debug)]
pub struct Metadata {
    docker: Option<Bytes>,
    kubernetes: Bytes,
}

impl KubernetesMetadata {
    pub fn from_section(s: &Section<'_>) -> Option<Self> {
        for key in API_PARAMETERS {
            if s.has(key) {
                s.error(
                    Some(key),
                    format!(
                        "'{key}' is refused: ferry's kubernetes_metadata takes its metadata from the tag and the file system only, and reads no Kubernetes API server"
                    ),
                );
            }
        }
        let tag_regexps = match s.str("tag_to_kubernetes_name_regexp") {
            Some(text) => vec![TagRegexp::compile(&text)],
            None => vec![
                TagRegexp::compile(PODS_REGEXP),
                TagRegexp::compile(CONTAINERS_REGEXP),
            ],
        }
        .into_iter()
        .collect::<Result<Vec<_>, String>>()
        .map_err(|e| s.error(Some("tag_to_kubernetes_name_regexp"), e))
        .ok();
        let capacity = s.u64_or("cache_size", 1000);
        if capacity == 0 {
            s.error(Some("cache_size"), "cache_size must be at least 1");
        }
        let capacity = usize::try_from(capacity.max(1)).unwrap_or(usize::MAX);
        // The plugin: a negative TTL is no TTL.
        let ttl = u64::try_from(s.i64_or("cache_ttl", 3600))
            .ok()
            .map(Duration::from_secs);
        Some(Self {
            tag_regexps: tag_regexps?,
            lookup_from_k8s_field: s.bool_or("lookup_from_k8s_field", true),
            links_dir: s.str("container_links_dir").map(PathBuf::from),
            tags: Arc::new(Cache::new(capacity, ttl)),
            links: Arc::new(Cache::new(capacity, ttl)),
        })
    }

    pub fn apply(&self, ctx: &TagContext, event: &mut Event<'_>) -> Outcome {
        let Event {
            record, scratch, ..
        } = event;
        if self.lookup_from_k8s_field && self.set_from_fields(record, scratch) {
            return Outcome::modified();
        }
        let Some(meta) = self.for_tag(&ctx.tag) else {
            return Outcome::keep();
        };
        if let Some(docker) = &meta.docker {
            record.set_raw(b"docker", docker);
        }
        record.set_raw(b"kubernetes", &meta.kubernetes);
        Outcome::modified()
    }

    /// What `tag` adds, from the cache or read now.
    fn for_tag(&self, tag: &str) -> Option<Arc<Metadata>> {
        if let Some(known) = self.tags.get(tag) {
            return known;
        }
        let (meta, read_at) = match self.read_tag(tag) {
            Some((meta, read_at)) => (Some(Arc::new(meta)), read_at),
            None => (None, None),
        };
        self.tags.insert(tag, meta.clone(), read_at);
        meta
    }

    /// What `tag` adds, and when a link was read for it (then it is read again after the TTL).
    fn read_tag(&self, tag: &str) -> Option<(Metadata, Option<Instant>)> {
        let (rx, caps) = self.tag_match(tag)?;
        let text = |i: usize| caps.get(i).map(|m| m.as_str());
        let (namespace, pod, container) = (
            text(rx.namespace),
            text(rx.pod_name),
            text(rx.container_name),
        );
        let docker_id = rx.docker_id.and_then(text).filter(|id| !id.is_empty());
        let uuid = rx.pod_uuid.and_then(text).filter(|uuid| !uuid.is_empty());
        let mut read_at = None;
        let pod_id = match (uuid, docker_id, namespace, pod, container) {
            (Some(uuid), ..) => Some(Arc::from(uuid)),
            (None, Some(id), Some(namespace), Some(pod), Some(container)) => {
                read_at = Some(Instant::now());
                let mut link = String::new();
                link_name(&mut link, pod, namespace, container, id);
                self.tag_dirs(tag, &link)
                    .iter()
                    .find_map(|dir| std::fs::read_link(dir.join(&link)).ok())
                    .and_then(|target| pod_uid(&target, namespace, pod, container))
            }
            _ => None,
        };
        let names = [container, namespace, pod].map(|v| v.map_or(Value::Nil, str_value).to_bytes());
        let mut kubernetes = BytesMut::new();
        write_kubernetes(
            &mut kubernetes,
            names.each_ref().map(|n| &n[..]),
            pod_id.as_deref(),
        );
        let docker = docker_id.map(|id| {
            let mut out = BytesMut::new();
            write_docker(&mut out, &str_value(id).to_bytes());
            out.freeze()
        });
        let meta = Metadata {
            docker,
            kubernetes: kubernetes.freeze(),
        };
        Some((meta, read_at))
    }

    /// The expression that matches `tag` first, and its groups.
    fn tag_match<'t>(&self, tag: &'t str) -> Option<(&TagRegexp, regex::Captures<'t>)> {
        let mut best: Option<(&TagRegexp, regex::Captures<'t>)> = None;
        for rx in &self.tag_regexps {
            if let Some(caps) = rx.re.captures(tag) {
                let start = |c: &regex::Captures<'_>| c.get(0).map_or(usize::MAX, |m| m.start());
                if best.as_ref().is_none_or(|(_, b)| start(&caps) < start(b)) {
                    best = Some((rx, caps));
                }
            }
        }
        best
    }

    /// The directories to read the link `link` in for `tag`, in order.
    fn tag_dirs(&self, tag: &str, link: &str) -> Vec<PathBuf> {
        if let Some(dir) = &self.links_dir {
            return vec![dir.clone()];
        }
        let mut dirs = Vec::new();
        if let Some(prefix) = tag
            .strip_suffix(link)
            .and_then(|p| p.strip_suffix('.'))
            .filter(|p| !p.is_empty())
        {
            let parts: Vec<&str> = prefix.split('.').collect();
            for first in 0..parts.len() {
                dirs.push(PathBuf::from(format!("/{}", parts[first..].join("/"))));
            }
        }
        if !dirs.iter().any(|d| d == Path::new(KUBELET_LINKS_DIR)) {
            dirs.push(PathBuf::from(KUBELET_LINKS_DIR));
        }
        dirs
    }

    /// `lookup_from_k8s_field`: when the record carries the names, sets its metadata from them
    /// and returns true.
    fn set_from_fields(&self, record: &mut RawRecord<'_>, scratch: &mut Scratch) -> bool {
        let is_map = |v: &RawValue<'_>| matches!(v.head(), Some((Head::Map(_), _)));
        let Some(kube) = record.get("kubernetes").filter(is_map) else {
            return false;
        };
        let Some(docker) = record.get("docker").filter(is_map) else {
            return false;
        };
        let (Some(container), Some(namespace), Some(pod), Some(id)) = (
            kube.get(NAME_KEYS[0]),
            kube.get(NAME_KEYS[1]),
            kube.get(NAME_KEYS[2]),
            docker.get("container_id"),
        ) else {
            return false;
        };
        fn text(v: RawValue<'_>) -> Option<&str> {
            v.str_bytes().and_then(|b| std::str::from_utf8(b).ok())
        }
        let pod_id = match (text(container), text(namespace), text(pod), text(id)) {
            (Some(c), Some(n), Some(p), Some(i)) if !i.is_empty() => {
                // An id as the API writes it: `containerd://<id>`.
                let i = i.split_once("://").map_or(i, |(_, id)| id);
                link_name(&mut scratch.text, p, n, c, i);
                self.link_uid(&scratch.text, n, p, c)
            }
            _ => None,
        };
        let out = &mut scratch.bytes;
        out.clear();
        // The plugin drops `docker` when its `container_id` is nil or empty.
        let keep_docker = !matches!(id.head(), Some((Head::Nil | Head::Str(0), _)));
        if keep_docker {
            write_docker(out, id.bytes());
        }
        let split = out.len();
        write_kubernetes(
            out,
            [container.bytes(), namespace.bytes(), pod.bytes()],
            pod_id.as_deref(),
        );
        if keep_docker {
            record.set_raw(b"docker", &out[..split]);
        }
        record.set_raw(b"kubernetes", &out[split..]);
        true
    }

    /// The uid of the pod of the container whose link is `link`, from the cache or read now.
    fn link_uid(
        &self,
        link: &str,
        namespace: &str,
        pod: &str,
        container: &str,
    ) -> Option<Arc<str>> {
        if let Some(known) = self.links.get(link) {
            return known;
        }
        let dir = self
            .links_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(KUBELET_LINKS_DIR));
        let uid = std::fs::read_link(dir.join(link))
            .ok()
            .and_then(|target| pod_uid(&target, namespace, pod, container));
        self.links.insert(link, uid.clone(), Some(Instant::now()));
        uid
    }
}

impl TagRegexp {
    fn compile(text: &str) -> Result<Self, String> {
        let re = super::ruby_regex(text, false, false)?;
        let group = |name: &str| re.capture_names().position(|n| n == Some(name));
        let (namespace, pod_name, container_name) = (
            group("namespace"),
            group("pod_name"),
            group("container_name"),
        );
        let (docker_id, pod_uuid) = (group("docker_id"), group("pod_uuid"));
        match (namespace, pod_name, container_name) {
            (Some(namespace), Some(pod_name), Some(container_name))
                if docker_id.is_some() || pod_uuid.is_some() =>
            {
                Ok(Self {
                    re,
                    namespace,
                    pod_name,
                    container_name,
                    docker_id,
                    pod_uuid,
                })
            }
            _ => Err(format!(
                "'{text}' needs the named groups namespace, pod_name and container_name, and docker_id or pod_uuid"
            )),
        }
    }
}

/// kubelet's name for a container's link in /var/log/containers, written over `out`.
fn link_name(out: &mut String, pod: &str, namespace: &str, container: &str, id: &str) {
    out.clear();
    for part in [pod, "_", namespace, "_", container, "-", id, ".log"] {
        out.push_str(part);
    }
}

/// The uid of the pod a container link's target names (see the module doc).
fn pod_uid(target: &Path, namespace: &str, pod: &str, container: &str) -> Option<Arc<str>> {
    let parts: Vec<&str> = target.iter().filter_map(|c| c.to_str()).collect();
    let (file, dirs) = parts.split_last()?;
    let prefix = format!("{namespace}_{pod}_");
    if let Some(uid) = dirs
        .iter()
        .rev()
        .find_map(|d| d.strip_prefix(prefix.as_str()))
        .filter(|uid| !uid.is_empty())
    {
        return Some(Arc::from(uid));
    }
    let old_layout = file
        .strip_prefix(container)
        .is_some_and(|rest| rest.starts_with('_'));
    match dirs {
        [.., "pods", uid] if old_layout && !uid.is_empty() => Some(Arc::from(*uid)),
        _ => None,
    }
}

/// The plugin's `docker` map: `container_id`, one encoded value.
fn write_docker(out: &mut BytesMut, id: &[u8]) {
    msgpack::write_map_len(out, 1);
    msgpack::write_str(out, b"container_id");
    out.extend_from_slice(id);
}

/// The plugin's `kubernetes` map: the encoded values of [`NAME_KEYS`], then `pod_id`.
fn write_kubernetes(out: &mut BytesMut, names: [&[u8]; 3], pod_id: Option<&str>) {
    msgpack::write_map_len(out, 3 + usize::from(pod_id.is_some()));
    for (key, value) in NAME_KEYS.iter().zip(names) {
        msgpack::write_str(out, key.as_bytes());
        out.extend_from_slice(value);
    }
    if let Some(uid) = pod_id {
        msgpack::write_str(out, b"pod_id");
        msgpack::write_str(out, uid.as_bytes());
    }
}

/// A bounded map from text to what was found for it. Entries read from the file system carry
/// when, and are looked up again once `ttl` has passed; the oldest entry goes when it is full.
#[derive(Debug)]
struct Cache<V> {
    inner: RwLock<CacheInner<V>>,
    capacity: usize,
    ttl: Option<Duration>,
}

#[derive(Debug)]
struct CacheInner<V> {
    map: HashMap<Box<str>, (V, Option<Instant>)>,
    /// The keys in the order they came in.
    order: VecDeque<Box<str>>,
}

impl<V: Clone> Cache<V> {
    fn new(capacity: usize, ttl: Option<Duration>) -> Self {
        Self {
            inner: RwLock::new(CacheInner {
                map: HashMap::new(),
                order: VecDeque::new(),
            }),
            capacity,
            ttl,
        }
    }

    /// The value for `key`, unless there is none or it is stale.
    fn get(&self, key: &str) -> Option<V> {
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let (value, read_at) = inner.map.get(key)?;
        if let (Some(at), Some(ttl)) = (read_at, self.ttl)
            && at.elapsed() >= ttl
        {
            return None;
        }
        Some(value.clone())
    }

    fn insert(&self, key: &str, value: V, read_at: Option<Instant>) {
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = inner.map.get_mut(key) {
            *slot = (value, read_at);
            return;
        }
        if inner.map.len() >= self.capacity
            && let Some(oldest) = inner.order.pop_front()
        {
            inner.map.remove(&oldest);
        }
        inner.order.push_back(key.into());
        inner.map.insert(key.into(), (value, read_at));
    }
}

#[cfg(test)]
#[path = "kubernetes_metadata_tests.rs"]
mod tests;
