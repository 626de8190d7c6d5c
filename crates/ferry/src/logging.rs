//! Log lines in Fluentd's shape: `2026-11-21 15:19:13 +0900 [warn]: message` (the host's
//! zone, as Fluentd's), on stderr (stdout belongs to the stdout output).
//!
//! **Levels.** `<system> log_level` (or `--log-level`) is the level of every line, except the
//! lines of a plugin with its own `@log_level`: that plugin's tasks run in a [`plugin_span`],
//! and [`PluginFilter`] judges each line by the level of the innermost plugin span it was
//! written in. A call site whose level passes every level in use is always on, one that
//! passes none is off: only the levels between the least and the most verbose in use are
//! judged line by line, so a `debug!` on a hot path costs nothing unless some plugin runs at
//! debug. Work a plugin does on another task's behalf (a filter inside its input's task, a
//! buffer append inside the input's commit) logs at the level of the task it runs in.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id};
use tracing::subscriber::Interest;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::Layer as _;
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::layer::{Context, Filter, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// `<system> <log> format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `2026-11-21 15:19:13 +0000 [warn]: message`
    #[default]
    Text,
    /// `{"time":"2026-11-21 15:19:13 +0000","level":"warn","message":"message"}`
    Json,
}

struct FluentdFormat {
    format: LogFormat,
    /// `<log> time_format`, else Fluentd's `%Y-%m-%d %H:%M:%S %z`.
    time: crate::time::Strftime,
    /// The host's zone, read once.
    zone: crate::time::Zone,
}

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
        let time = self
            .time
            .format_at(i64::try_from(secs).unwrap_or(i64::MAX), &self.zone);
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warn",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        match self.format {
            LogFormat::Text => {
                write!(writer, "{time} [{level}]: ")?;
                ctx.field_format().format_fields(writer.by_ref(), event)?;
                writeln!(writer)
            }
            LogFormat::Json => {
                let mut message = String::new();
                ctx.field_format()
                    .format_fields(Writer::new(&mut message), event)?;
                let line = serde_json::json!({"time": time, "level": level, "message": message});
                writeln!(writer, "{line}")
            }
        }
    }
}

/// Maps Fluentd's level names to a tracing filter (`fatal` logs errors only).
pub fn level_filter(level: &str) -> LevelFilter {
    match level {
        "trace" => LevelFilter::TRACE,
        "debug" => LevelFilter::DEBUG,
        "warn" => LevelFilter::WARN,
        "error" | "fatal" => LevelFilter::ERROR,
        _ => LevelFilter::INFO,
    }
}

/// Installs the global logger at `level`, with `plugin_levels` (each plugin's `@log_level`)
/// for the plugins' own lines. `FERRY_LOG` (an `EnvFilter` directive) overrides every level.
/// `time_format` was checked with the configuration; one that does not parse falls back to
/// the default.
pub fn init<'a>(
    level: &str,
    plugin_levels: impl IntoIterator<Item = &'a str>,
    format: LogFormat,
    time_format: Option<&str>,
) {
    let time = time_format
        .and_then(|f| crate::time::Strftime::parse(f).ok())
        .unwrap_or_else(|| {
            crate::time::Strftime::parse("%Y-%m-%d %H:%M:%S %z").expect("a constant, valid format")
        });
    let zone = crate::time::Zone::host();
    let lines = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .event_format(FluentdFormat { format, time, zone });
    if std::env::var_os("FERRY_LOG").is_some() {
        let filter = tracing_subscriber::EnvFilter::builder()
            .with_default_directive(level_filter(level).into())
            .with_env_var("FERRY_LOG")
            .from_env_lossy();
        let _ = tracing_subscriber::registry()
            .with(lines.with_filter(filter))
            .try_init();
        return;
    }
    LEVELS
        .global
        .store(rank(level_filter(level)), Ordering::Relaxed);
    set_plugin_levels(plugin_levels);
    let _ = tracing_subscriber::registry()
        .with(lines.with_filter(PluginFilter))
        .try_init();
}

/// The levels in use: the global one and the range the plugins' levels span with it.
struct Levels {
    global: AtomicU8,
    least: AtomicU8,
    most: AtomicU8,
}

static LEVELS: Levels = Levels {
    global: AtomicU8::new(3),
    least: AtomicU8::new(3),
    most: AtomicU8::new(3),
};

/// 0 (off) to 5 (trace): more is more verbose.
fn rank(level: LevelFilter) -> u8 {
    match level.into_level() {
        None => 0,
        Some(Level::ERROR) => 1,
        Some(Level::WARN) => 2,
        Some(Level::INFO) => 3,
        Some(Level::DEBUG) => 4,
        Some(Level::TRACE) => 5,
    }
}

fn filter_of(rank: u8) -> LevelFilter {
    match rank {
        0 => LevelFilter::OFF,
        1 => LevelFilter::ERROR,
        2 => LevelFilter::WARN,
        3 => LevelFilter::INFO,
        4 => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

fn level_rank(level: &Level) -> u8 {
    rank(LevelFilter::from_level(*level))
}

/// Sets the levels the plugins of the running configuration use (at start and after a
/// reload), so the call sites between the least and the most verbose are judged line by line.
pub fn set_plugin_levels<'a>(levels: impl IntoIterator<Item = &'a str>) {
    let global = LEVELS.global.load(Ordering::Relaxed);
    let (mut least, mut most) = (global, global);
    for level in levels {
        let r = rank(level_filter(level));
        least = least.min(r);
        most = most.max(r);
    }
    let least_changed = LEVELS.least.swap(least, Ordering::Relaxed) != least;
    let most_changed = LEVELS.most.swap(most, Ordering::Relaxed) != most;
    let changed = least_changed || most_changed;
    if changed {
        tracing::callsite::rebuild_interest_cache();
    }
}

/// The span a plugin with an `@log_level` runs in: its lines are judged by that level.
/// [`crate::task::Tasks::in_span`] runs every task of a group in it.
pub fn plugin_span(id: &str, level: &str) -> tracing::Span {
    tracing::error_span!("plugin", id = id, log_level = level)
}

const PLUGIN_SPAN: &str = "plugin";

/// A plugin span's level, kept in the span's extensions.
struct PluginLevel(u8);

/// Judges each line by the level of the plugin span it was written in, or the global level.
pub struct PluginFilter;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Filter<S> for PluginFilter {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        if meta.is_span() {
            return meta.name() == PLUGIN_SPAN
                || level_rank(meta.level()) <= LEVELS.most.load(Ordering::Relaxed);
        }
        let mut rank = level_rank(meta.level());
        if meta.target().starts_with("rustls") {
            // The TLS library's own lines (a client sending an IP address as SNI, ...) speak
            // of the peer's habits, not of ferry's work: shown at debug.
            rank = rank.max(4);
        }
        let level = cx
            .lookup_current()
            .and_then(|span| {
                span.scope()
                    .find_map(|s| s.extensions().get::<PluginLevel>().map(|l| l.0))
            })
            .unwrap_or_else(|| LEVELS.global.load(Ordering::Relaxed));
        rank <= level
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        if meta.is_span() && meta.name() == PLUGIN_SPAN {
            return Interest::always();
        }
        let r = level_rank(meta.level());
        if r <= LEVELS.least.load(Ordering::Relaxed) {
            Interest::always()
        } else if r > LEVELS.most.load(Ordering::Relaxed) {
            Interest::never()
        } else {
            Interest::sometimes()
        }
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(filter_of(LEVELS.most.load(Ordering::Relaxed)))
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, cx: Context<'_, S>) {
        if attrs.metadata().name() != PLUGIN_SPAN {
            return;
        }
        let mut visitor = LevelField(None);
        attrs.record(&mut visitor);
        if let (Some(level), Some(span)) = (visitor.0, cx.span(id)) {
            span.extensions_mut().insert(PluginLevel(level));
        }
    }
}

/// Reads the `log_level` field of a plugin span.
struct LevelField(Option<u8>);

impl tracing::field::Visit for LevelField {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "log_level" {
            self.0 = Some(rank(level_filter(value)));
        }
    }

    fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn fmt::Debug) {}
}

/// At most [`LOG_BURST`] lines per [`LOG_WINDOW`] for one kind of per-peer warning; the rest
/// are counted and the count is reported with the next line that gets through.
pub const LOG_BURST: u32 = 10;
pub const LOG_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct LogLimiter {
    state: Mutex<(Instant, u32, u64)>,
}

/// A note appended to a rate-limited line: how many like it were suppressed before it.
pub struct Suppressed(u64);

impl fmt::Display for Suppressed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 > 0 {
            write!(f, " ({} similar lines suppressed)", self.0)
        } else {
            Ok(())
        }
    }
}

impl Default for LogLimiter {
    fn default() -> Self {
        Self {
            state: Mutex::new((Instant::now(), 0, 0)),
        }
    }
}

impl LogLimiter {
    /// `Some` when this line may be logged.
    pub fn allow(&self) -> Option<Suppressed> {
        let mut s = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        if now.duration_since(s.0) >= LOG_WINDOW {
            s.0 = now;
            s.1 = 0;
        }
        if s.1 < LOG_BURST {
            s.1 += 1;
            let suppressed = std::mem::take(&mut s.2);
            Some(Suppressed(suppressed))
        } else {
            s.2 += 1;
            None
        }
    }
}

/// A failure that repeats is explained once. The first failure of an episode, and each failure
/// that differs from the one before it, is to be logged at warn; a repeat of the same failure
/// only at debug, counted. The first success ends the episode and reports how many failures it
/// held, so the operator sees why once and when it is over, not one line per chunk per retry.
#[derive(Debug, Default)]
pub struct Episode {
    state: std::sync::Mutex<Option<EpisodeState>>,
}

#[derive(Debug)]
struct EpisodeState {
    last: String,
    failures: u64,
}

/// How an episode ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpisodeEnd {
    /// The last failure.
    pub last: String,
    /// Every failure of the episode, logged or not.
    pub failures: u64,
}

impl Episode {
    fn state(&self) -> std::sync::MutexGuard<'_, Option<EpisodeState>> {
        // Every critical section is a few field stores: a panic cannot leave them half-done.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a failure described by `what`; true when it is news (log it at warn).
    pub fn failed(&self, what: &str) -> bool {
        let mut s = self.state();
        match &mut *s {
            Some(st) => {
                st.failures += 1;
                if st.last == what {
                    return false;
                }
                st.last = what.to_owned();
                true
            }
            None => {
                *s = Some(EpisodeState {
                    last: what.to_owned(),
                    failures: 1,
                });
                true
            }
        }
    }

    /// Records a success: the episode under way, if any, ends.
    pub fn ended(&self) -> Option<EpisodeEnd> {
        self.state().take().map(|st| EpisodeEnd {
            last: st.last,
            failures: st.failures,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_failure_is_news_once_and_a_different_one_is_news_again() {
        let e = Episode::default();
        assert_eq!(e.ended(), None);
        assert!(e.failed("TLS handshake failed: received fatal alert: InternalError"));
        assert!(!e.failed("TLS handshake failed: received fatal alert: InternalError"));
        assert!(!e.failed("TLS handshake failed: received fatal alert: InternalError"));
        assert!(e.failed("connection refused"));
        assert!(!e.failed("connection refused"));
        assert_eq!(
            e.ended(),
            Some(EpisodeEnd {
                last: "connection refused".into(),
                failures: 5
            })
        );
        assert_eq!(e.ended(), None);
        assert!(e.failed("connection refused"));
    }
}
