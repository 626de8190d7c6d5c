//! `@type tail`: follows files as Fluentd's in_tail does, across rotations, with positions
//! that advance only after the output committed the lines.
//!
//! | module | job |
//! |---|---|
//! | [`config`] | parameters (Fluentd's names and defaults) |
//! | [`discover`] | `path` patterns → files (strftime, globs, `exclude_path`, symlinks) |
//! | [`identity`] | a file is its inode *and* the hash of its first bytes |
//! | [`position`] | the position file: format, atomic replacement, Fluentd migration |
//! | [`table`] | positions in memory and the coalescing writer task |
//! | [`reader`] | large reads, `memchr` line splitting, `max_line_size` without holding lines |
//! | [`decode`] | lines → PackedForward entries (parts of split lines, parser, multiline, the route's concat filter, `path_key`) |
//! | [`file`] | one followed file and one read step (truncation check, read, build) |
//! | [`open`] | opening a file and where to start reading it |
//! | [`step`] | emit a step's batch, retry until committed, then advance the position |
//! | [`run`] | the task: the order files are read in, wake-ups, closing |
//! | `paths` | what the patterns name now: scans, new paths, rotations, removals |
//! | `recover` | files renamed while stopped or rotated before they were seen; messages cut by a rotation |
//! | `compressed` | rotated files compressed and removed while ferry was stopped, found by their first bytes |
//! | [`watcher`] | inotify, with polling when inotify runs out |
//! | [`metrics`] | counters and per-file gauges |
//!
//! Guarantees: a line is emitted once in normal operation; after a crash it may be emitted
//! again (at most the lines committed since the last position write), never lost, as long as
//! the file still holds it. See `docs/tail-input.md` for rotation semantics.

mod compressed;
pub mod config;
mod copytruncate;
mod ctx;
mod decode;
mod discover;
mod file;
pub mod identity;
pub mod metrics;
mod open;
mod paths;
pub mod position;
pub mod reader;
mod recover;
mod run;
mod step;
mod table;
mod watcher;

pub use config::TailInputConfig;
pub use metrics::TailMetrics;
pub use watcher::FAIL_HOOK_ENV;

use crate::input::{InputHandle, Start};
use anyhow::Context;
use run::{Ctx, Previous, Tail};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use table::PositionTable;

/// Loads the position file (so a broken one fails start-up) and spawns the tail task and the
/// position writer.
pub async fn start(
    id: String,
    config: TailInputConfig,
    start: Start<'_>,
) -> anyhow::Result<Arc<TailMetrics>> {
    let tasks = &start.tasks.work;
    let metrics = match start.previous {
        Some(InputHandle::Tail(m)) => Arc::clone(m),
        _ => Arc::new(TailMetrics::default()),
    };
    let (loaded, store) = match &config.pos_file {
        Some(path) => {
            if let Some(dir) = path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!(
                        "tail input {id}: cannot create the directory of pos_file {}",
                        path.display()
                    )
                })?;
            }
            let p = path.clone();
            let loaded = tokio::task::spawn_blocking(move || position::load(&p))
                .await?
                .with_context(|| format!("tail input {id}: cannot read pos_file"))?;
            if loaded.fluentd_lines > 0 {
                tracing::info!(
                    "tail input {id}: read {} positions in Fluentd's format from {}; they match files by inode",
                    loaded.fluentd_lines,
                    path.display()
                );
            }
            if loaded.skipped_lines > 0 {
                tracing::warn!(
                    "tail input {id}: skipped {} unreadable lines of {}",
                    loaded.skipped_lines,
                    path.display()
                );
            }
            let store = position::PositionStore::new(path.clone());
            (loaded, Some(Arc::new(store)))
        }
        None => {
            tracing::warn!(
                "tail input {id}: no pos_file; positions are kept in memory only, so a restart starts over"
            );
            (position::Loaded::default(), None)
        }
    };
    let previous = Previous {
        written: if loaded.entries.is_empty() {
            None
        } else {
            loaded.modified
        },
    };
    let table = PositionTable::new(loaded.entries);
    let watcher = watcher::Watcher::new(&id, config.enable_stat_watcher, Arc::clone(&metrics));
    let tail = Tail {
        ctx: Ctx {
            id: id.clone(),
            label: config.label.clone(),
            cfg: Arc::new(config),
            routing: Arc::clone(start.routing),
            metrics: Arc::clone(&metrics),
            table: table.clone(),
            last_warn: Default::default(),
        },
        watcher,
        slots: BTreeMap::new(),
        tracked: HashSet::new(),
        closed: std::collections::VecDeque::new(),
        dirs: BTreeSet::new(),
        previous,
        store: store.clone(),
        last_scan: None,
    };
    if let Some(store) = store {
        let writer_id = id.clone();
        tasks.spawn(format!("tail input {id} position writer"), move |h| {
            table::write_loop(table, store, writer_id, h)
        });
    }
    tasks.spawn(format!("tail input {id}"), move |h| tail.run(h));
    Ok(metrics)
}
