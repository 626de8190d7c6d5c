//! From a buffer chunk to PackedForward requests, and the ack that settles each.
//!
//! A request is written as out_forward writes it, the payload streamed from the chunk between
//! the header and the options (never assembled in memory):
//!
//! ```text
//! 93 | tag | db LLLLLLLL | <payload bytes from the chunk> | {"size": n, "compressed": "text"|"gzip", "chunk": id}
//! ```
//!
//! **Pieces.** A chunk larger than `max_request_size` is cut into several requests on append
//! boundaries ([`plan`]: consecutive segments up to the limit), so one forwarder never pins an
//! aggregator with a huge request. A single append larger than the limit is cut on entry
//! boundaries by [`split`] (decompressing and re-compressing gzip members); an entry larger
//! than the limit goes alone. The same path rewrites entry times for `time_as_integer`: the
//! only case where ferry re-encodes what it forwards.
//!
//! **Ack ids.** `chunk` = base64 of the 16-byte chunk id with the span index xor-ed into bytes
//! 8..12 and the sub-piece index into bytes 12..16 ([`ack_id`]): a chunk sent whole carries its
//! own id, and every piece's id is the same after a restart, so a re-sent piece is recognisable.

use super::conn::{Connection, ReadHalf, ReadReply, WriteFailure, flush_within, write_within};
use super::error::ForwardError;
use bytes::{Bytes, BytesMut};
use ferry_buffer::{Chunk, ChunkReader, Segment};
use ferry_proto::ack::parse_ack;
use ferry_proto::encode::{packed_forward_header, packed_forward_trailer, write_entry};
use ferry_proto::entries;
use ferry_proto::msgpack::skip_value;
use ferry_proto::options::{ChunkId, Compression};
use std::io::{self, Read, Seek, SeekFrom};
use std::time::Duration;
use tokio::sync::mpsc;

/// Bytes read from the buffer per step while streaming a payload.
pub const BLOCK: usize = 1024 * 1024;

/// Consecutive segments sent as one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub offset: u64,
    pub len: u64,
    pub records: u64,
}

/// Groups `segments` into spans of at most `max` bytes; a segment larger than `max` is a span
/// of its own (cut further by [`split`]).
pub fn plan(segments: &[Segment], max: u64) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    for s in segments {
        match spans.last_mut() {
            Some(last) if last.offset + last.len == s.offset && last.len + s.len <= max => {
                last.len += s.len;
                last.records += s.records;
            }
            _ => spans.push(Span {
                offset: s.offset,
                len: s.len,
                records: s.records,
            }),
        }
    }
    spans
}

/// The ack id of sub-piece `sub` of span `span` of the chunk `uid` (see the module docs).
pub fn ack_id(uid: &[u8; 16], span: usize, sub: usize) -> ChunkId {
    let mut id = *uid;
    let s = (span as u32).to_be_bytes();
    let p = (sub as u32).to_be_bytes();
    for i in 0..4 {
        id[8 + i] ^= s[i];
        id[12 + i] ^= p[i];
    }
    ChunkId::from_unique_id(&id)
}

/// Where a request's payload comes from.
#[derive(Debug)]
pub enum Payload<'c> {
    /// Bytes of the chunk, streamed from the buffer.
    Range {
        chunk: &'c Chunk,
        offset: u64,
        len: u64,
    },
    /// Bytes already in memory (a cut or rewritten piece, or an unbuffered batch).
    Bytes(Bytes),
}

/// One request.
#[derive(Debug)]
pub struct Request<'c> {
    pub tag: &'c str,
    pub payload: Payload<'c>,
    pub records: u64,
    pub compressed: bool,
    pub ack: Option<ChunkId>,
}

impl<'c> Request<'c> {
    /// A span of `chunk` sent as it is stored.
    pub fn span(tag: &'c str, chunk: &'c Chunk, span: &Span, ack: Option<ChunkId>) -> Self {
        Self {
            tag,
            payload: Payload::Range {
                chunk,
                offset: span.offset,
                len: span.len,
            },
            records: span.records,
            compressed: chunk.compressed(),
            ack,
        }
    }

    pub fn payload_len(&self) -> u64 {
        match &self.payload {
            Payload::Range { len, .. } => *len,
            Payload::Bytes(b) => b.len() as u64,
        }
    }
}

fn write_error(node: &str, limit: Duration, e: WriteFailure) -> ForwardError {
    match e {
        WriteFailure::Io(source) => ForwardError::Send {
            node: node.to_string(),
            source,
        },
        WriteFailure::Timeout => ForwardError::SendTimeout {
            node: node.to_string(),
            after: limit,
        },
    }
}

type Block = (ChunkReader, Vec<u8>, io::Result<()>);

fn read_block(
    mut reader: ChunkReader,
    mut buf: Vec<u8>,
    n: usize,
) -> tokio::task::JoinHandle<Block> {
    tokio::task::spawn_blocking(move || {
        buf.resize(n, 0);
        let r = reader.read_exact(&mut buf);
        (reader, buf, r)
    })
}

/// Writes `req` on `conn`; returns the bytes written. The next block is read from the buffer
/// while the current one is being written.
pub async fn write_request<W: tokio::io::AsyncWrite + Unpin>(
    conn: &mut W,
    node: &str,
    req: &Request<'_>,
    limit: Duration,
) -> Result<u64, ForwardError> {
    let len = req.payload_len();
    let header = packed_forward_header(
        req.tag,
        usize::try_from(len).map_err(|_| ForwardError::BrokenChunk("payload too large".into()))?,
    );
    let compression = if req.compressed {
        Compression::Gzip
    } else {
        Compression::Text
    };
    let trailer = packed_forward_trailer(req.records, req.ack.as_ref(), compression);
    let werr = |e| write_error(node, limit, e);
    write_within(conn, &header, limit).await.map_err(werr)?;
    match &req.payload {
        Payload::Bytes(b) => write_within(conn, b, limit).await.map_err(werr)?,
        Payload::Range { chunk, offset, len } => match chunk.memory_slices(*offset, *len) {
            // A memory chunk: its pieces are written as they are stored, without a copy.
            Some(pieces) => {
                if pieces.iter().map(|p| p.len() as u64).sum::<u64>() != *len {
                    return Err(ForwardError::ReadChunk(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the chunk holds fewer bytes than the request declares",
                    )));
                }
                for piece in pieces {
                    write_within(conn, &piece, limit).await.map_err(werr)?;
                }
            }
            None => stream_from_file(conn, chunk, *offset, *len, limit, &werr).await?,
        },
    }
    write_within(conn, &trailer, limit).await.map_err(werr)?;
    flush_within(conn, limit).await.map_err(werr)?;
    Ok(header.len() as u64 + len + trailer.len() as u64)
}

/// Streams `len` bytes at `offset` of a file chunk: the next block is read while the current
/// one is being written.
async fn stream_from_file<W: tokio::io::AsyncWrite + Unpin>(
    conn: &mut W,
    chunk: &Chunk,
    offset: u64,
    len: u64,
    limit: Duration,
    werr: &impl Fn(WriteFailure) -> ForwardError,
) -> Result<(), ForwardError> {
    let mut reader = chunk.reader().map_err(ForwardError::ReadChunk)?;
    reader
        .seek(SeekFrom::Start(offset))
        .map_err(ForwardError::ReadChunk)?;
    let mut left = len;
    let step = |left: &mut u64| {
        let n = (*left).min(BLOCK as u64);
        *left -= n;
        n as usize
    };
    let first = step(&mut left);
    let mut pending = Some(read_block(reader, Vec::new(), first));
    let mut spare = Vec::new();
    while let Some(job) = pending.take() {
        let (reader, buf, read) = job
            .await
            .map_err(|e| ForwardError::ReadChunk(io::Error::other(e)))?;
        read.map_err(ForwardError::ReadChunk)?;
        if left > 0 {
            let n = step(&mut left);
            pending = Some(read_block(reader, std::mem::take(&mut spare), n));
        }
        write_within(conn, &buf, limit).await.map_err(werr)?;
        spare = buf;
    }
    Ok(())
}

/// Waits for the ack of `expected`.
pub async fn await_ack(
    conn: &mut Connection,
    node: &str,
    expected: &ChunkId,
    limit: Duration,
) -> Result<(), ForwardError> {
    let got = read_ack(conn, node, limit).await?;
    if got.bytes == expected.bytes {
        Ok(())
    } else {
        Err(ForwardError::AckMismatch {
            node: node.to_string(),
            sent: String::from_utf8_lossy(&expected.bytes).into_owned(),
            got: String::from_utf8_lossy(&got.bytes).into_owned(),
        })
    }
}

/// Reads the next ack.
pub async fn read_ack(
    conn: &mut Connection,
    node: &str,
    limit: Duration,
) -> Result<ChunkId, ForwardError> {
    ack_of(conn.read_reply(limit).await, node, limit)
}

/// [`read_ack`] on the reading half of a connection.
pub async fn read_ack_half(
    half: &mut ReadHalf<'_>,
    node: &str,
    limit: Duration,
) -> Result<ChunkId, ForwardError> {
    ack_of(half.read_reply(limit).await, node, limit)
}

fn ack_of(
    reply: Result<Bytes, ReadReply>,
    node: &str,
    limit: Duration,
) -> Result<ChunkId, ForwardError> {
    let frame = match reply {
        Ok(f) => f,
        Err(ReadReply::Timeout) => {
            return Err(ForwardError::AckTimeout {
                node: node.to_string(),
                after: limit,
            });
        }
        Err(ReadReply::Closed(detail)) => {
            return Err(ForwardError::AckClosed {
                node: node.to_string(),
                detail,
            });
        }
    };
    parse_ack(&frame).map_err(|source| ForwardError::AckInvalid {
        node: node.to_string(),
        source,
    })
}

/// How [`split`] transforms a span.
#[derive(Debug, Clone, Copy)]
pub struct SplitOptions {
    pub max: usize,
    pub time_as_integer: bool,
    /// The stored payload is gzip members (decompressed, cut, re-compressed).
    pub gzip: bool,
}

/// One cut of a span: entries (gzip-compressed when the chunk is), their count, and whether a
/// single entry exceeded the limit.
#[derive(Debug)]
pub struct Piece {
    pub bytes: Bytes,
    pub records: u64,
    pub oversize: bool,
}

/// Cuts a span on entry boundaries into pieces of at most `max` bytes of entries, on a
/// blocking thread. Memory: about two pieces (one being cut, one waiting in the channel).
pub fn split(
    chunk: &Chunk,
    span: Span,
    opts: SplitOptions,
) -> Result<mpsc::Receiver<Result<Piece, ForwardError>>, ForwardError> {
    let mut reader = chunk.reader().map_err(ForwardError::ReadChunk)?;
    reader
        .seek(SeekFrom::Start(span.offset))
        .map_err(ForwardError::ReadChunk)?;
    let (tx, rx) = mpsc::channel(1);
    tokio::task::spawn_blocking(move || {
        let limited = reader.take(span.len);
        let src: Box<dyn Read + Send> = if opts.gzip {
            Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(
                limited,
            )))
        } else {
            Box::new(limited)
        };
        if let Err(e) = cut_all(src, opts, |p| tx.blocking_send(Ok(p)).is_ok()) {
            let _ = tx.blocking_send(Err(e));
        }
    });
    Ok(rx)
}

/// The cutting loop of [`split`]; `emit` returns false to stop.
pub fn cut_all(
    mut src: impl Read,
    opts: SplitOptions,
    mut emit: impl FnMut(Piece) -> bool,
) -> Result<(), ForwardError> {
    let mut buf = BytesMut::new();
    let mut eof = false;
    let mut fill = |buf: &mut BytesMut, want: usize, eof: &mut bool| -> Result<(), ForwardError> {
        while !*eof && buf.len() < want {
            let start = buf.len();
            buf.resize(start + BLOCK.min(want - start).max(4096), 0);
            let n = src
                .read(&mut buf[start..])
                .map_err(ForwardError::ReadChunk)?;
            buf.truncate(start + n);
            *eof = n == 0;
        }
        Ok(())
    };
    let mut want = opts.max;
    loop {
        fill(&mut buf, want, &mut eof)?;
        if buf.is_empty() {
            return Ok(());
        }
        let (cut, records) = cut_point(&buf, opts.max)?;
        if cut == 0 {
            if eof {
                return Err(ForwardError::BrokenChunk(
                    "the chunk ends inside an entry".into(),
                ));
            }
            want = buf.len() + BLOCK; // one entry larger than what is read so far
            continue;
        }
        want = opts.max;
        let raw = buf.split_to(cut).freeze();
        let mut bytes = if opts.time_as_integer {
            integer_times(&raw)?
        } else {
            raw
        };
        if opts.gzip {
            bytes = Bytes::from(ferry_proto::encode::gzip_compress(&bytes));
        }
        let piece = Piece {
            bytes,
            records,
            oversize: cut > opts.max,
        };
        if !emit(piece) {
            return Ok(());
        }
    }
}

/// Where to cut `buf`: after the last whole entry within `max` bytes (or after the first entry
/// when it alone is larger); `(0, 0)` when not even one entry is complete.
fn cut_point(buf: &[u8], max: usize) -> Result<(usize, u64), ForwardError> {
    let mut pos = 0;
    let mut records = 0;
    while pos < buf.len() {
        match skip_value(buf, pos) {
            Ok(end) if end <= max || records == 0 => {
                pos = end;
                records += 1;
                if end > max {
                    break;
                }
            }
            Ok(_) => break,
            Err(e) if e.is_truncated() => break,
            Err(e) => return Err(ForwardError::BrokenChunk(e.to_string())),
        }
    }
    Ok((pos, records))
}

/// The entries of `raw` with integer times (`time_as_integer`).
pub fn integer_times(raw: &[u8]) -> Result<Bytes, ForwardError> {
    let mut out = BytesMut::with_capacity(raw.len());
    for entry in entries::iter(raw) {
        match entry {
            Ok(e) => write_entry(&mut out, e.time, true, e.record),
            Err(e) if e.is_structural() => {
                return Err(ForwardError::BrokenChunk(e.to_string()));
            }
            Err(_) => {} // invalid events were dropped at input; nothing to forward
        }
    }
    Ok(out.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::time::EventTime;

    fn entries_of(n: usize, pad: usize) -> Vec<u8> {
        let mut out = BytesMut::new();
        for i in 0..n {
            let mut rec = BytesMut::new();
            ferry_proto::msgpack::write_map_len(&mut rec, 1);
            ferry_proto::msgpack::write_str(&mut rec, b"p");
            ferry_proto::msgpack::write_str(&mut rec, "x".repeat(pad + i % 7).as_bytes());
            write_entry(
                &mut out,
                EventTime::new(1_700_000_000 + i as u32, 5),
                false,
                &rec,
            );
        }
        out.to_vec()
    }

    #[test]
    fn segments_are_grouped_up_to_the_limit_and_big_ones_stand_alone() {
        let seg = |offset, len| Segment {
            offset,
            len,
            records: len / 10,
        };
        let segs = [
            seg(0, 30),
            seg(30, 30),
            seg(60, 50),
            seg(110, 500),
            seg(610, 10),
        ];
        let spans = plan(&segs, 100);
        let shape: Vec<(u64, u64)> = spans.iter().map(|s| (s.offset, s.len)).collect();
        assert_eq!(shape, vec![(0, 60), (60, 50), (110, 500), (610, 10)]);
        assert_eq!(spans[0].records, 6);
    }

    #[test]
    fn ack_ids_are_the_chunk_id_for_the_first_piece_and_distinct_for_the_others() {
        let uid = [0xab; 16];
        assert_eq!(ack_id(&uid, 0, 0), ChunkId::from_unique_id(&uid));
        let ids: std::collections::HashSet<_> = (0..4)
            .flat_map(|s| (0..4).map(move |p| (s, p)))
            .map(|(s, p)| ack_id(&uid, s, p).bytes)
            .collect();
        assert_eq!(ids.len(), 16);
        assert_eq!(ack_id(&uid, 3, 1), ack_id(&uid, 3, 1), "stable");
    }

    #[test]
    fn a_big_append_is_cut_on_entry_boundaries_within_the_limit() {
        let data = entries_of(500, 40);
        let mut pieces = Vec::new();
        let opts = SplitOptions {
            max: 1000,
            time_as_integer: false,
            gzip: false,
        };
        cut_all(&data[..], opts, |p| {
            pieces.push(p);
            true
        })
        .unwrap();
        assert!(pieces.len() > 10);
        let mut joined = Vec::new();
        let mut records = 0;
        for p in &pieces {
            assert!(p.bytes.len() <= 1000 && !p.oversize);
            assert_eq!(entries::validate(&p.bytes).unwrap().count, p.records);
            records += p.records;
            joined.extend_from_slice(&p.bytes);
        }
        assert_eq!(records, 500);
        assert_eq!(joined, data, "cutting loses and reorders nothing");
    }

    #[test]
    fn an_entry_larger_than_the_limit_goes_alone() {
        let mut data = entries_of(3, 10);
        data.extend(entries_of(1, 5000));
        data.extend(entries_of(2, 10));
        let mut pieces = Vec::new();
        let opts = SplitOptions {
            max: 1000,
            time_as_integer: false,
            gzip: false,
        };
        cut_all(&data[..], opts, |p| {
            pieces.push(p);
            true
        })
        .unwrap();
        let shape: Vec<(u64, bool)> = pieces.iter().map(|p| (p.records, p.oversize)).collect();
        assert_eq!(shape, vec![(3, false), (1, true), (2, false)]);
    }

    #[test]
    fn gzip_members_are_decompressed_cut_and_recompressed() {
        let data = entries_of(300, 40);
        let mut gz = ferry_proto::encode::gzip_compress(&data[..5000]);
        gz.extend(ferry_proto::encode::gzip_compress(&data[5000..]));
        let src = flate2::read::MultiGzDecoder::new(&gz[..]);
        let mut plain = Vec::new();
        let opts = SplitOptions {
            max: 2000,
            time_as_integer: false,
            gzip: true,
        };
        cut_all(src, opts, |p| {
            let d =
                ferry_proto::compress::decompress(Compression::Gzip, &p.bytes, 1 << 20).unwrap();
            assert!(d.len() <= 2000);
            plain.extend(d);
            true
        })
        .unwrap();
        assert_eq!(plain, data);
    }

    #[test]
    fn time_as_integer_rewrites_every_time_and_keeps_records() {
        let data = entries_of(5, 3);
        let out = integer_times(&data).unwrap();
        let got: Vec<_> = entries::iter(&out).map(|e| e.unwrap()).collect();
        assert_eq!(got.len(), 5);
        assert!(got.iter().all(|e| e.int_time && e.time.nsec == 0));
        assert_eq!(got[2].time.sec, 1_700_000_002);
        let orig: Vec<_> = entries::iter(&data)
            .map(|e| e.unwrap().record.to_vec())
            .collect();
        let kept: Vec<_> = got.iter().map(|e| e.record.to_vec()).collect();
        assert_eq!(orig, kept);
    }

    #[test]
    fn a_truncated_chunk_is_broken_not_retried() {
        let data = entries_of(3, 10);
        let opts = SplitOptions {
            max: 1000,
            time_as_integer: false,
            gzip: false,
        };
        let err = cut_all(&data[..data.len() - 3], opts, |_| true);
        // The first two entries are emitted, the torn third is an error.
        assert!(matches!(err, Err(ForwardError::BrokenChunk(_))));
    }
}
