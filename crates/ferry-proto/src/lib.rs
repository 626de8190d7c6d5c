//! ferry-proto: the Forward protocol v1 codec, client and server side, and the framing of the
//! line-oriented inputs. Pure: no I/O, no runtime.
//!
//! Specification: <https://github.com/fluent/fluentd/wiki/Forward-Protocol-Specification-v1>.
//!
//! # Module map
//!
//! | module | job |
//! |---|---|
//! | [`msgpack`] | bounded reader, iterative skipper, writers, owned [`msgpack::Value`] |
//! | [`time`] | [`time::EventTime`] and its ext type 0 encoding |
//! | [`options`] | the options map: `size`, `chunk`, `compressed`, `fluent_signal`, `metadata` |
//! | [`frame`] | [`frame::FrameDecoder`]: splits a TCP stream into top-level values |
//! | [`request`] | one frame → [`request::Request`] (nil or an [`request::EventBatch`]) |
//! | [`entries`] | walk, validate and sanitize an entry stream without building records |
//! | [`compress`] | gzip (concatenated members) and zstd with an output cap |
//! | [`encode`] | client-side encoders: PackedForward (as out_forward writes it), Message, Forward |
//! | [`handshake`] | HELO / PING / PONG and the SHA-512 digests |
//! | [`ack`] | `{"ack": chunk}` encode and parse |
//! | [`heartbeat`] | the UDP heartbeat byte |
//! | [`delimited`] | messages cut at a delimiter, never holding more than a length limit (tcp, syslog) |
//! | [`octet_counted`] | RFC 6587 octet counting, and syslog's framing chosen per connection |
//! | [`json`] | JSON → msgpack, straight, bounded nesting |
//! | [`records`] | the records of a JSON, ndjson or msgpack document (the http input's bodies) |
//! | [`thrift`] | Thrift's binary protocol for Scribe and fb303: calls, `Log` entries, replies |
//! | [`fuzzing`] | entry points for the fuzz targets |
//!
//! # What ferry accepts
//!
//! - Requests: `nil` (no-op), Message, Forward, PackedForward and CompressedPackedForward
//!   (`compressed` = `gzip` with any number of concatenated members, or `zstd`). A
//!   PackedForward payload and a `chunk` id may be str or bin; an ack echoes the chunk id with the
//!   type it came with.
//! - Event times: an integer (seconds), an EventTime extension (fixext8 or ext8), or Fluent Bit's
//!   `[time, metadata]`. Float, str and other times are invalid events: skipped and counted, the
//!   request is still acknowledged. A record must be a map.
//! - Not decoded here: Fluentd's JSON convenience mode (a connection starting with `[` or `{`;
//!   see [`frame::is_json_start`]). The daemon's forward input detects it, converts each JSON
//!   request to msgpack and hands it to this codec.
//!
//! # How a server uses it
//!
//! bytes from the socket → [`frame::FrameDecoder::decode`] → [`request::Request::parse`] →
//! [`entries::sanitize`] → the entry stream goes into the buffer as bytes → [`ack::encode_ack`]
//! when the request carried `chunk`.

pub mod ack;
pub mod compress;
pub mod delimited;
pub mod encode;
pub mod entries;
pub mod frame;
pub mod fuzzing;
pub mod handshake;
pub mod heartbeat;
pub mod json;
pub mod msgpack;
pub mod octet_counted;
pub mod options;
pub mod records;
pub mod request;
pub mod thrift;
pub mod time;

pub use entries::{EntryRef, Summary};
pub use frame::{FrameDecoder, FrameError};
pub use options::{ChunkId, ChunkIdKind, Compression, Options};
pub use request::{EventBatch, Limits, Mode, Request, RequestError};
pub use time::EventTime;
