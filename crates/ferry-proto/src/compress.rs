//! Payload (de)compression for CompressedPackedForward.
//!
//! - gzip: the payload may be several gzip members back to back (Fluentd's out_forward appends one
//!   member per buffer write); every member is inflated in turn until the input ends.
//! - zstd: one or more concatenated frames. The decoder's window is capped at
//!   2^[`ZSTD_WINDOW_LOG_MAX`] bytes so a frame header cannot make it reserve more memory.
//!
//! Limits: output is produced in bounded steps of [`STEP`] bytes and decoding stops with
//! [`CompressError::TooLarge`] as soon as it would exceed the caller's cap. No buffer is sized
//! from a length the sender declared (the gzip ISIZE trailer and the zstd content size are never
//! trusted), so a decompression bomb costs at most `cap` bytes of output before it is refused.

use std::io::{Read, Write};

use flate2::Compression as GzLevel;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;

use crate::options::Compression;

/// Output is read from the decoder in steps of this many bytes.
pub const STEP: usize = 64 * 1024;

/// Largest zstd window accepted (16 MiB): enough for every level up to 19.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 24;

/// Why a payload could not be decompressed. The request is skipped; the connection can go on.
#[derive(Debug, thiserror::Error)]
pub enum CompressError {
    #[error("decompressed payload exceeds the limit of {cap} bytes")]
    TooLarge { cap: usize },
    #[error("corrupt {kind} payload after {produced} decompressed bytes: {source}")]
    Corrupt {
        kind: &'static str,
        produced: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("compression {0:?} has nothing to decompress")]
    NotCompressed(Compression),
}

impl CompressError {
    /// True when the payload is larger than allowed (as opposed to broken).
    pub fn is_too_large(&self) -> bool {
        matches!(self, CompressError::TooLarge { .. })
    }
}

/// Decompress `data` compressed with `kind`, refusing output larger than `cap` bytes.
/// `Compression::Text` returns the input unchanged (still subject to the cap).
pub fn decompress(kind: Compression, data: &[u8], cap: usize) -> Result<Vec<u8>, CompressError> {
    match kind {
        Compression::Text => {
            if data.len() > cap {
                return Err(CompressError::TooLarge { cap });
            }
            Ok(data.to_vec())
        }
        Compression::Gzip => drain(MultiGzDecoder::new(data), "gzip", cap),
        Compression::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(data).map_err(|source| {
                CompressError::Corrupt {
                    kind: "zstd",
                    produced: 0,
                    source,
                }
            })?;
            d.window_log_max(ZSTD_WINDOW_LOG_MAX)
                .map_err(|source| CompressError::Corrupt {
                    kind: "zstd",
                    produced: 0,
                    source,
                })?;
            drain(d, "zstd", cap)
        }
    }
}

/// Read `r` to its end in steps, failing once more than `cap` bytes came out.
fn drain(mut r: impl Read, kind: &'static str, cap: usize) -> Result<Vec<u8>, CompressError> {
    let mut out = Vec::new();
    let mut step = vec![0u8; STEP];
    loop {
        let n = match r.read(&mut step) {
            Ok(0) => return Ok(out),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(CompressError::Corrupt {
                    kind,
                    produced: out.len(),
                    source,
                });
            }
        };
        if out.len() + n > cap {
            return Err(CompressError::TooLarge { cap });
        }
        out.extend_from_slice(&step[..n]);
    }
}

/// gzip `data` as one member (what `compress gzip` sends).
pub fn gzip_compress(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), GzLevel::default());
    enc.write_all(data)
        .and_then(|()| enc.finish())
        .expect("gzip into a Vec cannot fail: Vec writes are infallible")
}

/// zstd `data` as one frame at the default level.
pub fn zstd_compress(data: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(data, 0).expect("zstd into memory fails only if allocation fails")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concatenated_gzip_members_decode_as_one_stream() {
        let mut data = gzip_compress(b"first member ");
        data.extend(gzip_compress(b"second member"));
        assert_eq!(
            decompress(Compression::Gzip, &data, 1024).unwrap(),
            b"first member second member"
        );
    }

    #[test]
    fn concatenated_zstd_frames_decode_as_one_stream() {
        let mut data = zstd_compress(b"one ");
        data.extend(zstd_compress(b"two"));
        assert_eq!(
            decompress(Compression::Zstd, &data, 1024).unwrap(),
            b"one two"
        );
    }

    #[test]
    fn a_gzip_bomb_is_refused_at_the_cap() {
        let bomb = gzip_compress(&vec![0u8; 8 * 1024 * 1024]);
        assert!(bomb.len() < 16 * 1024);
        let err = decompress(Compression::Gzip, &bomb, 1024 * 1024).unwrap_err();
        assert!(err.is_too_large());
        let err = decompress(
            Compression::Zstd,
            &zstd_compress(&vec![0u8; 4 << 20]),
            1 << 20,
        )
        .unwrap_err();
        assert!(err.is_too_large());
    }

    #[test]
    fn corrupt_input_is_an_error() {
        let mut data = gzip_compress(b"hello");
        let last = data.len() - 5;
        data[last] ^= 0xff;
        assert!(
            !decompress(Compression::Gzip, &data, 1024)
                .unwrap_err()
                .is_too_large()
        );
        assert!(decompress(Compression::Zstd, b"not zstd", 1024).is_err());
    }
}
