//! Log lines in Fluentd's shape: `2026-11-21 15:19:13 +0000 [warn]: message`, on stderr
//! (stdout belongs to the stdout output).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::registry::LookupSpan;

struct FluentdFormat;

impl<S, N> FormatEvent<S, N> for FluentdFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (y, mo, d, h, mi, s) =
            crate::output::format::utc_fields(u32::try_from(secs).unwrap_or(u32::MAX));
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        write!(
            writer,
            "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} +0000 [{level}]: "
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Maps Fluentd's level names to a tracing filter (`fatal` logs errors only).
pub fn level_filter(level: &str) -> tracing::level_filters::LevelFilter {
    use tracing::level_filters::LevelFilter;
    match level {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "warn" => LevelFilter::WARN,
        "error" | "fatal" => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    }
}

/// Installs the global logger. `FERRY_LOG` (an `EnvFilter` directive) overrides the level.
pub fn init(level: &str) {
    let filter = tracing_subscriber::EnvFilter::builder()
        .with_default_directive(level_filter(level).into())
        .with_env_var("FERRY_LOG")
        .from_env_lossy();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(FluentdFormat)
        .try_init();
}
