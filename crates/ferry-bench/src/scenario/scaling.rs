//! Scenario 7: scenario 1 (forward → memory buffer → null, acks) with 1, 2 and 4 load
//! generator connections, each next to the ceiling of the generator itself: the same
//! connections into ferry-bench's own counting receiver, in this process, on the same cores.
//! Shows whether several connections use every core, and whether ferry or the generator is the
//! limit.

use std::sync::Arc;

use super::{Ctx, Error, forward, never};
use crate::receiver::{Receiver, ReceiverConfig};
use crate::report::Row;
use crate::sender::{self, SendProgress};

/// Default size of each run, GB.
pub const S7_GB: f64 = 3.0;

/// The three runs, one row each.
pub async fn run(ctx: &mut Ctx) -> Result<Vec<Row>, Error> {
    let (conns0, gb0) = (ctx.opts.connections, ctx.opts.gb);
    let gb = gb0.unwrap_or(S7_GB);
    let mut rows: Vec<Row> = Vec::new();
    let mut single = None;
    for conns in [1u32, 2, 4] {
        ctx.opts.connections = conns;
        ctx.opts.gb = Some(gb);
        let ceiling = generator_ceiling(ctx, gb).await?;
        let mut r = forward::null(ctx).await?;
        r.scenario = format!("7 forward → memory → null, {conns} connection(s)");
        r.command = format!("ferry-bench scenario 7 --gb {gb}");
        let mbps = r.mb_per_s;
        let base = *single.get_or_insert(mbps);
        r.notes.push(format!(
            "{:.2}× the 1-connection run; the generator alone (into its own receiver, {conns} connection(s)) reaches {ceiling:.0} MB/s",
            mbps / base
        ));
        rows.push(r);
    }
    ctx.opts.connections = conns0;
    ctx.opts.gb = gb0;
    Ok(rows)
}

/// MB/s of acknowledged entry bytes from the generator into an in-process receiver.
async fn generator_ceiling(ctx: &Ctx, gb: f64) -> Result<f64, Error> {
    let receiver = Receiver::start(ReceiverConfig {
        bind: "127.0.0.1:0".into(),
        shared_key: None,
        self_hostname: "ferry-bench".into(),
    })
    .await?;
    let events = ctx.events_for(gb / 3.0);
    let report = sender::run(
        ctx.send_config(receiver.port, Some(events)),
        Arc::new(SendProgress::default()),
        never(),
    )
    .await?;
    Ok(report.entry_bytes as f64 / report.secs.max(1e-9) / 1e6)
}
