//! Scenario 7: scenario 1 (forward → memory buffer → null, acks) with 1, 2 and 4 load
//! generator connections. Each row says how many of the machine's cores ferry and the load
//! generator (this process, on the same machine) kept busy, so whether several connections
//! use every core, and whether ferry or the generator is the limit, can be read off.

use super::{Ctx, Error, forward};
use crate::procstat;
use crate::report::Row;

/// Default size of each run, GB.
pub const S7_GB: f64 = 3.0;

/// The three runs, one row each.
pub async fn run(ctx: &mut Ctx) -> Result<Vec<Row>, Error> {
    let (conns0, gb0) = (ctx.opts.connections, ctx.opts.gb);
    let gb = gb0.unwrap_or(S7_GB);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let me = std::process::id();
    let mut rows: Vec<Row> = Vec::new();
    let mut single = None;
    for conns in [1u32, 2, 4] {
        ctx.opts.connections = conns;
        ctx.opts.gb = Some(gb);
        let before = procstat::cpu_seconds(me)?;
        let mut r = forward::null(ctx).await?;
        let generator = procstat::cpu_seconds(me)? - before;
        r.scenario = format!("7 forward → memory → null, {conns} connection(s)");
        r.command = format!("ferry-bench scenario 7 --gb {gb}");
        let mbps = r.mb_per_s;
        let base = *single.get_or_insert(mbps);
        let secs = r.secs.max(1e-9);
        let ferry_cores: f64 = r.procs.iter().map(|p| p.cpu_secs).sum::<f64>() / secs;
        r.notes.push(format!(
            "{:.2}× the 1-connection run; cores busy: ferry {ferry_cores:.2}, load generator {:.2}, of {cores}",
            mbps / base,
            generator / secs
        ));
        rows.push(r);
    }
    ctx.opts.connections = conns0;
    ctx.opts.gb = gb0;
    Ok(rows)
}
