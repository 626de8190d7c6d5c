//! ferry: a log forwarder and aggregator that speaks Fluentd's Forward protocol.
//!
//! Module map:
//!
//! | module | what it does |
//! |---|---|
//! | [`app`] | start-up and shutdown: binds inputs, builds outputs, handles signals |
//! | [`pipeline`] | configuration tree → typed, checked pipeline (`--dry-run` stops here) |
//! | [`input`] | where events enter (`forward`) |
//! | [`router`] | tag → output, with Fluentd's `<match>` and `<label>` rules |
//! | [`output`] | where events go (`stdout`, `null`, `kafka2`) and how they are formatted |
//! | [`event`] | the batch of events that travels between them (msgpack bytes) |
//! | [`task`] | named tasks, their states, cancellation and shutdown |
//! | [`logging`] | log lines in Fluentd's shape, so runbooks carry over |
//! | [`plugin`] | checks shared by every plugin family |

pub mod app;
pub mod event;
pub mod input;
pub mod logging;
pub mod output;
pub mod pipeline;
pub mod plugin;
pub mod router;
pub mod task;

/// Log levels, as Fluentd names them.
pub const LOG_LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "fatal"];
