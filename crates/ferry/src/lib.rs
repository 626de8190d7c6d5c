//! ferry: a log forwarder and aggregator that speaks Fluentd's Forward protocol.
//!
//! Module map:
//!
//! | module | what it does |
//! |---|---|
//! | [`app`] | start-up and shutdown: binds inputs, builds outputs, handles signals |
//! | [`pipeline`] | configuration tree → typed, checked pipeline (`--dry-run` stops here) |
//! | [`input`] | where events enter (`forward`) |
//! | [`router`] | tag → filters → output, with Fluentd's `<match>`, `<label>`, `copy`, `relabel`, `@ERROR` |
//! | [`filter`] | `grep`, `record_transformer`, `parser`: the stages that decode records |
//! | [`output`] | where events go (`stdout`, `null`, `file`, `secondary_file`) and how they are formatted |
//! | [`record`] | helpers over decoded records shared by filters and formatters |
//! | [`event`] | the batch of events that travels between them (msgpack bytes) |
//! | [`task`] | named tasks, their states, cancellation and shutdown |
//! | [`logging`] | log lines in Fluentd's shape, so runbooks carry over |
//! | [`plugin`] | checks shared by every plugin family |

pub mod app;
pub mod event;
pub mod filter;
pub mod input;
pub mod logging;
pub mod output;
pub mod pipeline;
pub mod plugin;
pub mod record;
pub mod router;
pub mod task;

/// Log levels, as Fluentd names them.
pub const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "fatal"];
