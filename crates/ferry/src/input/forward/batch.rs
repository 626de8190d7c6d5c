//! One complete frame → a batch ready to route: parse the envelope, validate the entries
//! (dropping invalid events), rewrite entries only where needed ([`super::rewrite`]).
//!
//! Pure CPU work on bytes, no I/O: the connection runs it inline for ordinary requests and on
//! the blocking pool for heavy ones ([`is_heavy`]), so one huge or compressed request never
//! holds an async worker that other connections' reads, acks and accepts need.

use super::rewrite::{self, Injection};
use bytes::Bytes;
use ferry_proto::entries::{self, EntryError};
use ferry_proto::msgpack::{Head, Reader};
use ferry_proto::request::{Limits, Request, RequestError};
use ferry_proto::{ChunkId, EventTime, Summary};

/// Frames at least this large are prepared on the blocking pool.
pub(super) const HEAVY_FRAME_BYTES: usize = 1024 * 1024;

/// Why a request was not accepted.
#[derive(Debug, thiserror::Error)]
pub(super) enum BatchError {
    #[error("{0}")]
    Request(#[from] RequestError),
    #[error("{0}")]
    Entries(#[from] EntryError),
}

impl BatchError {
    /// True when the request is skipped (not acked) and the connection goes on; false when the
    /// stream is out of step and the connection must close.
    pub fn can_continue(&self) -> bool {
        match self {
            Self::Request(e) => e.can_continue(),
            Self::Entries(_) => true,
        }
    }
}

/// A request ready to route.
#[derive(Debug)]
pub(super) enum Prepared {
    /// A `nil` request: nothing to do, no reply.
    Nil,
    Events(Events),
}

#[derive(Debug)]
pub(super) struct Events {
    pub tag: String,
    pub entries: Bytes,
    pub summary: Summary,
    pub chunk: Option<ChunkId>,
    /// Times of 0 replaced with the time of arrival.
    pub replaced: u64,
}

/// Owned inputs of [`prepare`], so it can move to the blocking pool.
#[derive(Debug, Clone, Default)]
pub(super) struct Inject {
    pub address: Option<(String, String)>,
    pub hostname: Option<(String, String)>,
}

/// Parses, validates and (when needed) rewrites one frame.
pub(super) fn prepare(
    frame: Bytes,
    limits: &Limits,
    inject: &Inject,
) -> Result<Prepared, BatchError> {
    let batch = match Request::parse(frame, limits)? {
        Request::Nil => return Ok(Prepared::Nil),
        Request::Events(b) => b,
    };
    let (mut stream, summary) = entries::sanitize(batch.entries)?;
    let injection = Injection {
        address: inject
            .address
            .as_ref()
            .map(|(k, v)| (k.as_str(), v.as_str())),
        hostname: inject
            .hostname
            .as_ref()
            .map(|(k, v)| (k.as_str(), v.as_str())),
    };
    let mut replaced = 0;
    if summary.count > 0 && rewrite::needed(&summary, &injection) {
        (stream, replaced) = rewrite::rewrite(&stream, &injection, EventTime::now())?;
    }
    Ok(Prepared::Events(Events {
        tag: batch.tag,
        entries: stream,
        summary,
        chunk: batch.options.chunk,
        replaced,
    }))
}

/// True for a frame worth moving off the async workers: at least [`HEAVY_FRAME_BYTES`], or a
/// PackedForward whose options say it is compressed (decompression may expand it up to
/// `decompression_size_limit`). Reads only headers.
pub(super) fn is_heavy(frame: &[u8]) -> bool {
    if frame.len() >= HEAVY_FRAME_BYTES {
        return true;
    }
    let mut r = Reader::new(frame);
    let mut compressed = || -> Option<bool> {
        if !matches!(r.head().ok()?, Head::Array(3)) {
            return Some(false);
        }
        r.raw_value().ok()?; // tag
        if !matches!(r.peek().ok()?, Head::Str(_) | Head::Bin(_)) {
            return Some(false);
        }
        r.raw_value().ok()?;
        let Head::Map(n) = r.head().ok()? else {
            return Some(false);
        };
        for _ in 0..n {
            let key = r.raw_value().ok()?;
            let value = r.raw_value().ok()?;
            if key == b"\xaacompressed" {
                return Some(value != b"\xa4text");
            }
        }
        Some(false)
    };
    compressed().unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use ferry_proto::encode::{encode_packed_forward, write_entry};
    use ferry_proto::{Compression, msgpack};

    fn stream(times: &[u32]) -> BytesMut {
        let mut s = BytesMut::new();
        for t in times {
            let mut r = BytesMut::new();
            msgpack::write_map_len(&mut r, 1);
            msgpack::write_str(&mut r, b"k");
            msgpack::write_str(&mut r, b"v");
            write_entry(&mut s, EventTime::new(*t, 0), false, &r);
        }
        s
    }

    #[test]
    fn compressed_and_large_frames_are_heavy_plain_small_ones_are_not() {
        let s = stream(&[1_700_000_000, 1_700_000_001]);
        let mut plain = BytesMut::new();
        encode_packed_forward(&mut plain, "t", &s, 2, None, Compression::Text);
        assert!(!is_heavy(&plain));
        let mut gz = BytesMut::new();
        encode_packed_forward(&mut gz, "t", &s, 2, None, Compression::Gzip);
        assert!(is_heavy(&gz));
        assert!(is_heavy(&vec![0xc0; HEAVY_FRAME_BYTES]));
        assert!(!is_heavy(b"\xc0"));
    }

    #[test]
    fn a_time_of_zero_is_replaced_and_counted() {
        let s = stream(&[0, 1_700_000_000]);
        let mut frame = BytesMut::new();
        encode_packed_forward(&mut frame, "t", &s, 2, None, Compression::Text);
        let Prepared::Events(e) =
            prepare(frame.freeze(), &Limits::default(), &Inject::default()).unwrap()
        else {
            panic!("nil")
        };
        assert_eq!(e.replaced, 1);
        assert_eq!(e.summary.count, 2);
        let first = entries::iter(&e.entries).next().unwrap().unwrap();
        assert!(first.time.sec > 1_700_000_000);
    }
}
