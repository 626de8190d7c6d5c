//! ferry: a log forwarder and aggregator that speaks Fluentd's Forward protocol.
//!
//! Module map:
//!
//! | module | what it does |
//! |---|---|
//! | [`app`] | start-up, signals (stop, reload, flush, dump) and shutdown |
//! | [`admin`] | `/metrics`, `/api/plugins.json`, `/api/health`, `/api/dump`, on their own thread |
//! | [`metrics`] | every metric name (in `metrics::names`), the registry and collectors |
//! | [`status`] | `ferry status`: a running ferry's buffer flow and advice, for people |
//! | [`buffer_tool`] | `ferry buffer ls\|verify\|salvage`: a file buffer directory read offline (chunks, checksums, intact appends), for people |
//! | [`pipeline`] | configuration tree → typed, checked pipeline (`--dry-run` stops here) |
//! | [`input`] | where events enter (`forward`, `tail`); `input::net`: what every network input shares |
//! | [`parse`] | log lines → records: Fluentd's `<parse>` types (json, regexp, syslog, ...) |
//! | [`format`] | records → text: Fluentd's `<format>` types and `<inject>`, for outputs and the stdout filter |
//! | [`router`] | tag → filters → output, with Fluentd's `<match>`, `<label>`, `copy`, `relabel`, `@ERROR` |
//! | [`filter`] | `grep`, `record_transformer`, `parser`, `stdout`: read records where they lie in the msgpack bytes, splice what they change |
//! | [`output`] | where events go (`stdout`, `null`, `file`, `forward`, `secondary_file`, `kafka2`, `http`), the buffered append path and the flushers |
//! | [`record`] | helpers over decoded records shared by filters and formatters |
//! | [`event`] | the batch of events that travels between them (msgpack bytes) |
//! | [`task`] | named tasks, their states, cancellation and shutdown |
//! | [`logging`] | log lines in Fluentd's shape, so runbooks carry over; a failure logged once per episode |
//! | [`tls`] | what the TLS code of every plugin shares |
//! | [`time`] | the calendar and `strftime`: formatters, paths, log lines (reading times is [`parse::time`]) |
//! | [`plugin`] | checks shared by every plugin family |
//! | [`root_dir`] | where a configuration keeps its state: default file buffers, spilled memory buffers |

pub mod admin;
pub mod app;
pub mod buffer_tool;
pub mod event;
pub mod filter;
pub mod format;
pub mod http;
pub mod input;
pub mod kafka;
pub mod logging;
pub mod metrics;
pub mod output;
pub mod parse;
pub mod pipeline;
pub mod plugin;
pub mod record;
pub mod root_dir;
pub mod router;
pub mod status;
pub mod task;
pub mod time;
pub mod tls;

/// Log levels, as Fluentd names them.
pub const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "fatal"];
