//! ferry-bench: measures ferry as a real process, end to end.
//!
//! # Module map
//!
//! | module | job |
//! |---|---|
//! | [`record`] | records carrying `(stream, seq)`: msgpack and JSON forms, reading them back |
//! | [`seq`] | per-stream sequence accounting: received, lost, duplicated |
//! | [`conn`] | client connections: TCP, TLS (rustls), the shared-key handshake |
//! | [`sender`] | the Forward load generator (acks, rate, events or duration) |
//! | [`receiver`] | the counting Forward server (every mode, acks, heartbeats) |
//! | [`archive`] | counting the records of file-output archives (JSON lines, gzip, written in place) |
//! | [`lines`] | the line writer for tail scenarios, with rotation |
//! | [`limits`] | loopback TCP and disk write speed, measured in the same run |
//! | [`throttle`] | a disk made the limit: a block-I/O cgroup capping write bandwidth |
//! | [`procstat`] | CPU and RSS of processes from /proc, sampled every 250 ms |
//! | [`ferryproc`] | ferry (and Fluentd) processes: config, readiness, signals, restarts |
//! | [`scenario`] | the end-to-end scenarios (1 to 8) |
//! | [`report`] | result rows, the markdown table, JSON |
//! | [`plot`] | PNG charts of throughput and RSS over time |

pub mod archive;
pub mod conn;
pub mod ferryproc;
pub mod limits;
pub mod lines;
pub mod plot;
pub mod procstat;
pub mod receiver;
pub mod record;
pub mod report;
pub mod scenario;
pub mod sender;
pub mod seq;
pub mod throttle;
