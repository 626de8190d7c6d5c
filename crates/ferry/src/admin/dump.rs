//! The state dump: every task with its name, state, what it waits on and since when, plus each
//! plugin's counters. Written on SIGCONT and at `/api/dump` to `<dump_dir>/ferry-dump-<pid>.json`
//! (replaced atomically) and returned by the endpoint: the thread dump operators use to find,
//! say, a flush stuck in a DNS lookup.

use crate::metrics::Registry;
use crate::task::Tasks;
use crate::time::{Zone, write_rfc3339};
use ferry_proto::time::EventTime;
use serde_json::json;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut s = String::new();
    write_rfc3339(
        EventTime {
            sec: u32::try_from(d.as_secs()).unwrap_or(u32::MAX),
            nsec: d.subsec_nanos(),
        },
        &Zone::UTC,
        &mut s,
    );
    s
}

/// The dump as JSON.
pub fn state(tasks: Option<&Tasks>, registry: &Registry, started: SystemTime) -> serde_json::Value {
    let now = SystemTime::now();
    let tasks: Vec<_> = tasks
        .map(Tasks::snapshot)
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            json!({
                "id": t.id,
                "name": t.name,
                "state": t.state,
                "detail": t.detail,
                "since": rfc3339(t.since),
                "for_seconds": now.duration_since(t.since).unwrap_or_default().as_secs_f64(),
                "started": rfc3339(t.started),
            })
        })
        .collect();
    let plugins: Vec<_> = registry
        .plugins()
        .into_iter()
        .map(|p| {
            let fields: serde_json::Map<String, serde_json::Value> =
                p.fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
            json!({"plugin_id": p.plugin_id, "type": p.type_name, "category": p.category, "metrics": fields})
        })
        .collect();
    json!({
        "pid": std::process::id(),
        "time": rfc3339(now),
        "started": rfc3339(started),
        "version": env!("CARGO_PKG_VERSION"),
        "task_count": tasks.len(),
        "tasks": tasks,
        "plugins": plugins,
    })
}

/// Where a dump of this process goes.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(format!("ferry-dump-{}.json", std::process::id()))
}

/// Writes the dump under a temporary name and renames it, so a reader never sees half of it.
pub fn write_file(dir: &Path, text: &str) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let target = path(dir);
    let tmp = dir.join(format!(".ferry-dump-{}.json.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, &target)?;
    Ok(target)
}
