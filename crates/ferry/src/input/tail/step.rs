//! One read step of one file, its emission, and the position update after the commit.
//!
//! Positions advance only after [`Router::emit`](crate::router::Router::emit) returned, that
//! is after the output committed the lines. When an output's buffer is full, the batch is
//! offered again as soon as a flush freed room (woken, not polled: reading follows the drain
//! rate). When the output refuses for another reason (a disk error), the same batch is
//! offered again with backoff. Lines are never skipped. Only records that no
//! output could ever take (one record larger than a buffer chunk) are dropped, logged and
//! counted, so they cannot stall the file forever.

use super::ctx::{Ctx, Stop};
use super::file::{Step, StepMode, Tailed};
use super::metrics::TailMetrics;
use super::position::PosEntry;
use crate::event::Batch;
use crate::output::EmitError;
use crate::task::TaskHandle;
use bytes::{Bytes, BytesMut};
use ferry_buffer::AppendError;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes read per trip to the blocking pool at most (a batch stays well under a buffer chunk).
pub const MAX_STEP_BYTES: u64 = 4 * 1024 * 1024;
/// Batches of `read_lines_limit` lines read per trip to the blocking pool at most, while a
/// file has whole batches to read: each is still emitted and committed on its own.
pub const STEPS_PER_READ: usize = 8;
/// Longest wait between two offers of a refused batch.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(5);
/// A full buffer that frees no room for this long is reported (and waited for again).
const FULL_BUFFER_REPORT: Duration = Duration::from_secs(60);
/// Per-line warnings (unmatched lines, skipped long lines) are logged at most this often.
const WARN_EVERY_SECS: u64 = 10;

/// Whether a per-line warning may be logged now (at most one per [`WARN_EVERY_SECS`]).
fn may_warn(last: &std::sync::atomic::AtomicU64) -> bool {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let prev = last.load(Ordering::Relaxed);
    now >= prev + WARN_EVERY_SECS
        && last
            .compare_exchange(prev, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// Reads the next steps of `f` (one trip to the blocking pool, see [`Tailed::step`]), emits
/// each step's batch and records the position after it once committed, in turn. Returns the
/// last step; `Ok(None)` when nothing was read (throttled, or a read error that was logged).
pub async fn step_and_emit(
    ctx: &Ctx,
    f: &mut Tailed,
    tag: &Arc<str>,
    closing: bool,
    h: &TaskHandle,
) -> Result<Option<Step>, Stop> {
    let cfg = &ctx.cfg;
    let m = &ctx.metrics;
    let allowance = f.throttle.allowance(cfg.read_bytes_limit_per_second);
    if allowance == 0 {
        if !f.throttle.counted {
            f.throttle.counted = true;
            m.files_throttled.fetch_add(1, Ordering::Relaxed);
        }
        return Ok(None);
    }
    let flush_multiline = cfg
        .multiline_flush_interval
        .is_some_and(|d| f.has_pending_multiline() && f.last_line.elapsed() >= d);
    let mode = StepMode {
        flush_multiline,
        finish: closing,
        concat: ctx.routing.current().concat_for(ctx.label.as_deref(), tag),
    };
    h.set_detail("reading", f.path_str.clone());
    let mut fp_before = f.fp;
    let steps = match f
        .step(
            cfg.read_lines_limit,
            allowance.min(MAX_STEP_BYTES),
            STEPS_PER_READ,
            mode,
        )
        .await
    {
        None => return Err(Stop),
        Some(Err(e)) => {
            if may_warn(&ctx.last_warn) {
                tracing::warn!(
                    "tail input {}: cannot read {}: {e}; trying again later",
                    ctx.id,
                    f.path.display()
                );
            }
            return Ok(None);
        }
        Some(Ok(s)) => s,
    };
    let mut last = None;
    for step in steps {
        let fp = step.fp;
        last = Some(settle(ctx, f, tag, step, fp_before, h).await?);
        fp_before = fp;
    }
    Ok(last)
}

/// Reports, emits and commits one step's batch, then records the position after it.
async fn settle(
    ctx: &Ctx,
    f: &mut Tailed,
    tag: &Arc<str>,
    mut step: Step,
    fp_before: super::identity::Fingerprint,
    h: &TaskHandle,
) -> Result<Step, Stop> {
    let cfg = &ctx.cfg;
    let m = &ctx.metrics;
    f.throttle.spend(step.consumed);
    TailMetrics::add(&m.bytes_read, step.bytes_read);
    if let Some((size, read)) = step.truncated {
        m.files_rotated.fetch_add(1, Ordering::Relaxed);
        let copy = match &step.from_copy {
            Some((path, lines)) => format!(
                "; the {lines} lines not read yet were read from its copy {}",
                path.display()
            ),
            None => String::new(),
        };
        tracing::info!(
            "tail input {}: {} was truncated (size {size}, read up to {read}, or its first bytes changed){copy}; reading it from the start",
            ctx.id,
            f.path.display()
        );
        if step.rotation_lost > 0 {
            TailMetrics::add(&m.rotation_lost, step.rotation_lost);
            tracing::warn!(
                "tail input {}: about {} lines of {} were removed by the truncation before they could be read (in no copy either); counted in ferry_events_dropped_total{{reason=\"rotation\"}}",
                ctx.id,
                step.rotation_lost,
                f.path.display()
            );
        }
    }
    if let Some((start, len)) = step.skipped_long.first() {
        TailMetrics::add(&m.long_lines_skipped, step.skipped_long.len() as u64);
        if may_warn(&ctx.last_warn) {
            tracing::warn!(
                "tail input {}: skipped {} line(s) longer than max_line_size {} in {} (first: {len} bytes at offset {start})",
                ctx.id,
                step.skipped_long.len(),
                cfg.max_line_size,
                f.path.display()
            );
        }
    }
    let b = &step.built;
    TailMetrics::add(&m.partials_joined, b.partials_joined);
    TailMetrics::add(&m.concat_joined, b.concat_joined);
    TailMetrics::add(&m.concat_cut, b.concat_cut);
    TailMetrics::add(&m.concat_timeouts, b.concat_timed_out);
    if b.partials_cut + b.partials_unfinished > 0 {
        TailMetrics::add(&m.partials_cut, b.partials_cut);
        TailMetrics::add(&m.partials_unfinished, b.partials_unfinished);
        if may_warn(&ctx.last_warn) {
            tracing::warn!(
                "tail input {}: in {}, {} joined line(s) passed max_line_size {} and were cut into pieces, and {} line(s) whose last part did not come within {:?} were emitted as they were; counted in ferry_tail_partial_lines_cut_total and ferry_tail_partial_lines_unfinished_total",
                ctx.id,
                f.path.display(),
                b.partials_cut,
                cfg.max_line_size,
                b.partials_unfinished,
                cfg.multiline_flush_interval
                    .unwrap_or(crate::parse::partial::DEFAULT_PARTIAL_TIMEOUT),
            );
        }
    }
    if step.built.unmatched > 0 {
        TailMetrics::add(&m.unmatched_lines, step.built.unmatched);
        if !cfg.emit_unmatched_lines {
            TailMetrics::add(&m.unparsed_dropped, step.built.unmatched);
        }
        if let Some((e, line)) = &step.built.first_error
            && may_warn(&ctx.last_warn)
        {
            tracing::warn!(
                "tail input {}: {e} in {}: {line:?} ({} such lines in this read{})",
                ctx.id,
                f.path.display(),
                step.built.unmatched,
                if cfg.emit_unmatched_lines {
                    ", emitted as unmatched_line"
                } else {
                    ""
                }
            );
        }
    }
    let joined = step.built.joined_by_input;
    if step.built.records > 0 {
        let records = step.built.records;
        let entries = std::mem::take(&mut step.built.entries).freeze();
        h.set_detail(
            "waiting for commit",
            format!("{records} records of {}", f.path_str),
        );
        let to = Emit {
            tag,
            label: ctx.label.as_deref(),
            joined,
        };
        emit(ctx, &to, entries, records, h).await?;
        TailMetrics::add(&m.emit_records, records);
    }
    if step.built.timeout_records > 0 {
        // Joined events that timed out go to the concat filter's timeout_label (checked to
        // exist when the configuration was read).
        let records = step.built.timeout_records;
        let entries = std::mem::take(&mut step.built.timeout_entries).freeze();
        let label = mode_timeout_label(ctx, tag);
        let to = Emit {
            tag,
            label: label.as_deref(),
            joined: true,
        };
        emit(ctx, &to, entries, records, h).await?;
        TailMetrics::add(&m.emit_records, records);
    }
    let safe = f.handed.map_or(step.safe, |(at, _)| at.min(step.safe));
    if safe != f.committed || step.fp != fp_before || step.truncated.is_some() {
        f.committed = safe;
        f.gauge.position.store(f.committed, Ordering::Relaxed);
        ctx.table.set(PosEntry {
            path: f.path_str.clone(),
            offset: f.committed,
            id: f.id,
            fp: step.fp,
        });
    }
    Ok(step)
}

/// Where a step's batch goes.
struct Emit<'a> {
    tag: &'a Arc<str>,
    label: Option<&'a str>,
    /// The route's first concat filter ran over it.
    joined: bool,
}

/// The `timeout_label` of the concat filter on `tag`'s route.
fn mode_timeout_label(ctx: &Ctx, tag: &Arc<str>) -> Option<String> {
    ctx.routing
        .current()
        .concat_for(ctx.label.as_deref(), tag)
        .and_then(|c| c.timeout_label.clone())
        .or_else(|| ctx.label.clone())
}

/// Whether no retry can ever make the output take this batch.
fn never_fits(e: &EmitError) -> bool {
    matches!(
        e,
        EmitError::Split { .. }
            | EmitError::Buffer {
                source: AppendError::ChunkOverflow { .. }
                    | AppendError::TooManyRecords { .. }
                    | AppendError::KeyTooLarge { .. },
                ..
            }
    )
}

/// Offers a batch until it is committed (see the module docs).
async fn emit(
    ctx: &Ctx,
    to: &Emit<'_>,
    entries: Bytes,
    records: u64,
    h: &TaskHandle,
) -> Result<(), Stop> {
    let mut batch = Batch::new(Arc::clone(to.tag), entries, records);
    batch.joined_by_input = to.joined;
    let mut wait = Duration::from_millis(100);
    let mut attempts = 0u64;
    loop {
        let (held, result) = tokio::select! {
            r = ctx.routing.emit_holding(
                to.label,
                &batch,
                FULL_BUFFER_REPORT,
                h.cancel_token(),
            ) => r,
            () = h.cancelled() => return Err(Stop),
        };
        ctx.metrics
            .held_ms
            .fetch_add(held.as_millis() as u64, Ordering::Relaxed);
        let e = match result {
            Ok(_) => {
                if attempts > 0 {
                    tracing::info!(
                        "tail input {}: {records} records committed after {attempts} retries",
                        ctx.id
                    );
                }
                return Ok(());
            }
            Err(EmitError::ShuttingDown) => return Err(Stop),
            Err(e) => e,
        };
        if never_fits(&e) {
            return emit_one_by_one(ctx, to, &batch, &e, h).await;
        }
        attempts += 1;
        ctx.metrics.emit_retries.fetch_add(1, Ordering::Relaxed);
        let full = e.room().is_some();
        if attempts == 1 || attempts.is_power_of_two() {
            let when = if full {
                format!(
                    "waited {FULL_BUFFER_REPORT:?} for room; offering the same lines again as soon as room appears"
                )
            } else {
                format!("offering the same lines again in {wait:?}")
            };
            tracing::warn!(
                "tail input {}: output refused {records} records ({e}); {when} (attempt {attempts})",
                ctx.id
            );
        }
        if full {
            continue;
        }
        h.set_detail("waiting to retry emit", e.to_string());
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = h.cancelled() => return Err(Stop),
        }
        wait = (wait * 2).min(MAX_RETRY_WAIT);
    }
}

/// A batch with a record that can never fit: every record is offered alone, and only those
/// that cannot fit are dropped.
async fn emit_one_by_one(
    ctx: &Ctx,
    to: &Emit<'_>,
    batch: &Batch,
    first: &EmitError,
    h: &TaskHandle,
) -> Result<(), Stop> {
    if batch.records <= 1 {
        ctx.metrics
            .records_dropped
            .fetch_add(batch.records, Ordering::Relaxed);
        tracing::error!(
            "tail input {}: dropped a record of {} bytes that no output chunk can hold: {first}",
            ctx.id,
            batch.entries.len()
        );
        return Ok(());
    }
    for entry in ferry_proto::entries::iter(&batch.entries) {
        let Ok(entry) = entry else {
            break; // built by ferry itself: never malformed
        };
        let mut one = BytesMut::with_capacity(entry.raw.len());
        one.extend_from_slice(entry.raw);
        Box::pin(emit(ctx, to, one.freeze(), 1, h)).await?;
    }
    Ok(())
}
