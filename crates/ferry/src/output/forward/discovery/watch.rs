//! The tasks that keep the lists of `file` and `srv` discoveries current, one per section,
//! spawned with the output (never on a flush: a flusher only ever reads the server set).
//!
//! - **file**: every [`FILE_CHECK`] the file's size, modification and change times and inode
//!   are compared with those of the last read; on a change the file is read once it has stopped
//!   changing for [`SETTLE`] (write it elsewhere and rename it over the old one to be safe from
//!   half-written lists). A changed list is applied at once.
//! - **srv**: every `interval`, one lookup bounded by `resolve_timeout` and by half the
//!   interval ([`lookup_limit`]): a name server that does not answer never delays the lookup
//!   that follows, so a change of the records is seen within one interval of the name server
//!   answering again.
//!
//! A list that cannot be used (unreadable or missing file, bad YAML or JSON, a bad entry, a
//! failed or empty lookup) keeps the last good one. It is counted
//! (`ferry_forward_output_discovery_errors_total`) and logged with the path or the name
//! queried: at `error` for a file (someone must fix it), at `warn` for a lookup (it may pass),
//! once per episode ([`crate::logging::Episode`]); the first good list after it says how many
//! failures the episode held.

use super::super::Shared;
use super::super::error::ForwardError;
use super::super::metrics::bump;
use super::file::FileSource;
use super::srv::{self, SrvSource};
use super::{Service, SourceConfig, server_configs};
use crate::logging::Episode;
use crate::task::{TaskHandle, Tasks};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::MissedTickBehavior;

/// How often a list file's metadata is checked.
pub const FILE_CHECK: Duration = Duration::from_secs(1);
/// How long a changed file must stay unchanged before it is read.
pub const SETTLE: Duration = Duration::from_millis(50);

/// What says a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
}

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
        ctime_ns: i128::from(m.ctime()) * 1_000_000_000 + i128::from(m.ctime_nsec()),
        ino: m.ino(),
        dev: m.dev(),
    })
}

/// Spawns one task per changing discovery.
pub fn start(shared: &Arc<Shared>, tasks: &Tasks) {
    for (k, source) in shared.config.discovery.iter().enumerate() {
        let s = Arc::clone(shared);
        let name = format!("output {} {}", shared.id, source.describe());
        match source.clone() {
            SourceConfig::File(f) => tasks.spawn(name, move |h| watch_file(s, k + 1, f, h)),
            SourceConfig::Srv(r) => tasks.spawn(name, move |h| poll_srv(s, k + 1, r, h)),
        }
    }
}

/// One list that could not be used: counted and, when news, logged.
fn failed(shared: &Shared, episode: &Episode, what: &str, serious: bool, servers: usize) {
    bump(&shared.metrics.discovery_errors, 1);
    if episode.failed(what) {
        if serious {
            tracing::error!(
                "output {}: {what}; keeping the last good list ({servers} servers)",
                shared.id
            );
        } else {
            tracing::warn!(
                "output {}: {what}; keeping the last good list ({servers} servers)",
                shared.id
            );
        }
    } else {
        tracing::debug!("output {}: {what} (again)", shared.id);
    }
}

/// A good list: applied; an episode of failures ends with one line.
fn succeeded(
    shared: &Shared,
    episode: &Episode,
    index: usize,
    what: &str,
    list: &[Service],
) -> Result<(), String> {
    let servers = server_configs(list, shared.config.tls.as_ref())?;
    if let Some(end) = episode.ended() {
        tracing::info!(
            "output {}: {what}: a good list again after {} failures (the last: {})",
            shared.id,
            end.failures,
            end.last
        );
    }
    let change = shared.apply(index, &servers);
    if !change.is_empty() {
        tracing::info!(
            "output {}: {what}: {} servers now ({} joined, {} left)",
            shared.id,
            servers.len(),
            change.joined.len(),
            change.left.len()
        );
    }
    Ok(())
}

fn count_of(shared: &Shared, index: usize) -> usize {
    shared.nodes().iter().filter(|n| n.source == index).count()
}

async fn watch_file(shared: Arc<Shared>, index: usize, source: FileSource, h: TaskHandle) {
    let what = format!("sd_file: path={}", source.path.display());
    let episode = Episode::default();
    // Read once now: the file may have changed since the configuration was read.
    let mut last: Option<Stamp> = None;
    let mut missing = false;
    let mut ticker = tokio::time::interval(FILE_CHECK);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        h.set("waiting to check the server list file");
        tokio::select! {
            _ = ticker.tick() => {}
            () = h.cancelled() => return,
        }
        let Some(mut now) = stamp(&source.path) else {
            if !missing {
                let message = super::file::FileError::NotFound {
                    path: source.path.clone(),
                };
                failed(
                    &shared,
                    &episode,
                    &message.to_string(),
                    true,
                    count_of(&shared, index),
                );
            }
            (missing, last) = (true, None);
            continue;
        };
        missing = false;
        if last == Some(now) {
            continue;
        }
        // Let a writer finish.
        loop {
            tokio::time::sleep(SETTLE).await;
            match stamp(&source.path) {
                Some(again) if again == now => break,
                Some(again) => now = again,
                None => break,
            }
        }
        h.set("reading the server list file");
        let read = tokio::task::spawn_blocking({
            let source = source.clone();
            move || source.load()
        })
        .await;
        let after = stamp(&source.path);
        if after != Some(now) {
            continue; // changed while it was read: read it again at the next check
        }
        last = Some(now);
        let result = match read {
            Ok(Ok(list)) => succeeded(&shared, &episode, index, &what, &list)
                .map_err(|e| format!("{what}: {e}")),
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => Err(format!("{what}: reading failed unexpectedly ({e})")),
        };
        if let Err(message) = result {
            failed(&shared, &episode, &message, true, count_of(&shared, index));
        }
    }
}

/// How long one SRV lookup (records and their targets' addresses) may take.
pub fn lookup_limit(resolve_timeout: Duration, interval: Duration) -> Duration {
    resolve_timeout
        .min(interval / 2)
        .max(Duration::from_millis(100))
}

async fn poll_srv(shared: Arc<Shared>, index: usize, source: SrvSource, h: TaskHandle) {
    let what = format!("sd_srv: {}", source.target());
    let episode = Episode::default();
    let limit = lookup_limit(shared.config.resolve_timeout, source.interval);
    let mut ticker = tokio::time::interval(source.interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // The first lookup was made at start ([`first_lookups`]).
    ticker.tick().await;
    loop {
        h.set("waiting for the next SRV lookup");
        tokio::select! {
            _ = ticker.tick() => {}
            () = h.cancelled() => return,
        }
        h.set("looking up SRV records");
        let result = async {
            let resolver = srv::resolver(&source, limit)
                .await
                .map_err(|e| e.to_string())?;
            let list = srv::lookup(&resolver, &source, limit)
                .await
                .map_err(|e| e.to_string())?;
            succeeded(&shared, &episode, index, &what, &list).map_err(|e| format!("{what}: {e}"))
        };
        if let Err(message) = result.await {
            failed(&shared, &episode, &message, false, count_of(&shared, index));
        }
    }
}

/// The first SRV lookups, at start. A discovery that finds nothing is an error unless other
/// servers are known or `ignore_network_errors_at_startup` is set (then its task keeps
/// looking).
pub async fn first_lookups(shared: &Shared) -> Result<(), ForwardError> {
    for (k, source) in shared.config.discovery.iter().enumerate() {
        let SourceConfig::Srv(source) = source else {
            continue;
        };
        let limit = shared.config.resolve_timeout;
        let looked = async {
            let resolver = srv::resolver(source, limit)
                .await
                .map_err(|e| e.to_string())?;
            let list = srv::lookup(&resolver, source, limit)
                .await
                .map_err(|e| e.to_string())?;
            server_configs(&list, shared.config.tls.as_ref())
        };
        match looked.await {
            Ok(servers) => {
                shared.apply(k + 1, &servers);
            }
            Err(e) => {
                bump(&shared.metrics.discovery_errors, 1);
                let others = !shared.nodes().is_empty();
                if !others && !shared.config.ignore_network_errors_at_startup {
                    return Err(ForwardError::Discovery(format!(
                        "{e} (no other server is known; set ignore_network_errors_at_startup to start anyway)"
                    )));
                }
                tracing::warn!(
                    "output {}: {e}; starting without its servers (looked up again every {}s)",
                    shared.id,
                    source.interval.as_secs()
                );
            }
        }
    }
    Ok(())
}
