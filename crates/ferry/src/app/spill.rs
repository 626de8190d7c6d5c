//! What a planned stop does with a buffer, and what the next start takes back
//! ([`crate::output::handoff`]).

use crate::output::{Output, handoff};
use std::sync::Arc;
use std::time::Duration;

/// After an output's flushers stopped: a file buffer keeps its chunks on disk; a memory buffer
/// writes what it still holds under the root directory. Then the buffer closes.
pub(super) async fn at_stop(output: &Arc<Output>) {
    if output.handed_over.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    let Some(b) = &output.buffered else { return };
    let stats = b.buffer.stats();
    if b.setup.is_file() {
        if stats.total_records > 0 {
            tracing::info!(
                "output {}: {} events stay in the file buffer for the next start",
                output.id,
                stats.total_records
            );
        }
    } else if stats.total_records > 0 {
        spill(output, b).await;
    }
    b.buffer.close();
}

/// Writes what a memory buffer could not flush before a planned stop under the root directory;
/// what cannot be written is counted as lost (`ferry_events_dropped_total{reason="lost_at_stop"}`).
async fn spill(output: &Output, b: &Arc<crate::output::buffered::Buffered>) {
    let id = &output.id;
    let buffer = Arc::clone(&b.buffer);
    let dir = b.setup.spill_dir.clone();
    let to = dir.clone();
    let result = tokio::task::spawn_blocking(move || handoff::spill(&buffer, &to)).await;
    let left = b.buffer.stats().total_records;
    match result {
        Ok(Ok(moved)) => tracing::info!(
            "output {id}: {} events ({} chunks) its memory buffer could not flush before stopping were written to {}; the next start with an output of this @id sends them",
            moved.records,
            moved.chunks,
            dir.display()
        ),
        Ok(Err(e)) => tracing::error!(
            "output {id}: {left} events in its memory buffer could not be flushed before stopping nor written to {}, and are lost: {e}",
            dir.display()
        ),
        Err(e) => tracing::error!(
            "output {id}: {left} events in its memory buffer are lost: writing them to {} failed: {e}",
            dir.display()
        ),
    }
    output
        .metrics
        .lost_at_stop
        .fetch_add(left, std::sync::atomic::Ordering::Relaxed);
}

/// How long a start waits for a full buffer while taking back a spill; the rest waits for
/// the next start.
const TAKE_BACK_PATIENCE: Duration = Duration::from_secs(30);

/// Takes back what an earlier planned stop wrote from this output's memory buffer.
pub(super) async fn take_back_spill(output: &Arc<Output>) {
    let Some(b) = &output.buffered else { return };
    let dir = b.setup.spill_dir.clone();
    if !handoff::has_spill(&dir) {
        return;
    }
    let into = Arc::clone(b);
    let id = output.id.clone();
    let from = dir.clone();
    let deadline = std::time::Instant::now() + TAKE_BACK_PATIENCE;
    let result =
        tokio::task::spawn_blocking(move || handoff::take_back(&from, &into, &id, deadline)).await;
    match result {
        Ok(Ok(moved)) => tracing::info!(
            "output {}: took back {} events ({} chunks) written to {} at the last stop",
            output.id,
            moved.records,
            moved.chunks,
            dir.display()
        ),
        Ok(Err(e)) => tracing::error!(
            "output {}: could not take back all events written to {} at the last stop ({e}); what is left stays there for the next start",
            output.id,
            dir.display()
        ),
        Err(e) => tracing::error!("output {}: taking back {}: {e}", output.id, dir.display()),
    }
}

/// Directories under the root that hold chunks no output of this configuration reads: an
/// output renamed or removed (or a generated `@id` that moved) left them. Said at start, so
/// nothing sits there unnoticed.
pub(super) fn unclaimed(
    root: &crate::root_dir::RootDir,
    claimed: &[std::path::PathBuf],
) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for sub in [
        crate::root_dir::BUFFER_SUBDIR,
        crate::root_dir::SPILL_SUBDIR,
    ] {
        let Ok(entries) = std::fs::read_dir(root.path.join(sub)) else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let dir = e.path();
            if dir.is_dir() && !claimed.contains(&dir) && handoff::has_spill(&dir) {
                out.push(dir);
            }
        }
    }
    out.sort();
    out
}
