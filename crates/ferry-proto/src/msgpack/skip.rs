//! The structural skipper: walks over complete msgpack values without building them.
//!
//! This is the hot path of entry validation. It is a single loop that matches on the marker byte,
//! skips str/bin/ext payloads by their length, and tracks nesting with an explicit stack of
//! "values still to skip" counts instead of recursion. It never allocates unless the input nests
//! containers (then the caller's stack grows, once, and is reused).

use super::{MAX_DEPTH, MsgpackError};

#[inline(always)]
fn be16(buf: &[u8], at: usize, offset: usize) -> Result<usize, MsgpackError> {
    match buf.get(at..at + 2) {
        Some(&[a, b]) => Ok(usize::from(u16::from_be_bytes([a, b]))),
        _ => Err(MsgpackError::Truncated { offset }),
    }
}

#[inline(always)]
fn be32(buf: &[u8], at: usize, offset: usize) -> Result<usize, MsgpackError> {
    match buf.get(at..at + 4) {
        Some(&[a, b, c, d]) => Ok(u32::from_be_bytes([a, b, c, d]) as usize),
        _ => Err(MsgpackError::Truncated { offset }),
    }
}

#[inline(always)]
fn byte(buf: &[u8], at: usize, offset: usize) -> Result<usize, MsgpackError> {
    match buf.get(at) {
        Some(&b) => Ok(usize::from(b)),
        None => Err(MsgpackError::Truncated { offset }),
    }
}

/// Skip one complete value starting at `buf[pos]`; returns the offset just past it.
pub fn skip_value(buf: &[u8], pos: usize) -> Result<usize, MsgpackError> {
    skip_values(buf, pos, 1, 0, &mut Vec::new())
}

/// Skip `count` consecutive complete values starting at `buf[pos]`; returns the offset just past
/// the last one. `depth` is the nesting depth of the values being skipped (containers inside
/// them count from there towards [`MAX_DEPTH`]). `stack` is scratch space (left as found).
pub fn skip_values(
    buf: &[u8],
    mut pos: usize,
    count: u64,
    depth: usize,
    stack: &mut Vec<u64>,
) -> Result<usize, MsgpackError> {
    let floor = stack.len();
    let mut remaining = count;
    let result = (|| loop {
        if remaining == 0 {
            if stack.len() == floor {
                return if pos <= buf.len() {
                    Ok(pos)
                } else {
                    Err(MsgpackError::Truncated { offset: buf.len() })
                };
            }
            remaining = stack.pop().unwrap_or(0);
            continue;
        }
        remaining -= 1;
        let start = pos;
        let Some(&b) = buf.get(pos) else {
            return Err(MsgpackError::Truncated { offset: pos });
        };
        let children: u64 = match b {
            0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff => {
                pos += 1;
                continue;
            }
            0xa0..=0xbf => {
                pos += 1 + usize::from(b & 0x1f);
                continue;
            }
            0x80..=0x8f => {
                pos += 1;
                2 * u64::from(b & 0x0f)
            }
            0x90..=0x9f => {
                pos += 1;
                u64::from(b & 0x0f)
            }
            0xcc | 0xd0 => {
                pos += 2;
                continue;
            }
            0xcd | 0xd1 | 0xd4 => {
                pos += 3;
                continue;
            }
            0xd5 => {
                pos += 4;
                continue;
            }
            0xca | 0xce | 0xd2 => {
                pos += 5;
                continue;
            }
            0xd6 => {
                pos += 6;
                continue;
            }
            0xcb | 0xcf | 0xd3 => {
                pos += 9;
                continue;
            }
            0xd7 => {
                pos += 10;
                continue;
            }
            0xd8 => {
                pos += 18;
                continue;
            }
            0xc4 | 0xd9 => {
                pos += 2 + byte(buf, pos + 1, start)?;
                continue;
            }
            0xc5 | 0xda => {
                pos += 3 + be16(buf, pos + 1, start)?;
                continue;
            }
            0xc6 | 0xdb => {
                pos += 5 + be32(buf, pos + 1, start)?;
                continue;
            }
            0xc7 => {
                pos += 3 + byte(buf, pos + 1, start)?;
                continue;
            }
            0xc8 => {
                pos += 4 + be16(buf, pos + 1, start)?;
                continue;
            }
            0xc9 => {
                pos += 6 + be32(buf, pos + 1, start)?;
                continue;
            }
            0xdc => {
                let n = be16(buf, pos + 1, start)?;
                pos += 3;
                n as u64
            }
            0xdd => {
                let n = be32(buf, pos + 1, start)?;
                pos += 5;
                n as u64
            }
            0xde => {
                let n = be16(buf, pos + 1, start)?;
                pos += 3;
                2 * n as u64
            }
            0xdf => {
                let n = be32(buf, pos + 1, start)?;
                pos += 5;
                2 * n as u64
            }
            0xc1 => {
                return Err(MsgpackError::InvalidMarker {
                    offset: pos,
                    byte: b,
                });
            }
        };
        if children == 0 {
            continue;
        }
        // Every element takes at least one byte: a count larger than what is left cannot be
        // satisfied, whatever the nesting.
        if children > buf.len().saturating_sub(pos) as u64 {
            return Err(MsgpackError::Truncated { offset: start });
        }
        if depth + 1 + (stack.len() - floor) > MAX_DEPTH {
            return Err(MsgpackError::TooDeep {
                offset: start,
                max: MAX_DEPTH,
            });
        }
        stack.push(remaining);
        remaining = children;
    })();
    stack.truncate(floor);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_nested_containers_and_payloads() {
        // [1, {"a": [nil, true]}, bin8(2), fixext8]
        let v = [
            0x94, 0x01, 0x81, 0xa1, b'a', 0x92, 0xc0, 0xc3, 0xc4, 0x02, 9, 9, 0xd7, 0, 1, 2, 3, 4,
            5, 6, 7, 8,
        ];
        assert_eq!(skip_value(&v, 0), Ok(v.len()));
        for cut in 0..v.len() {
            assert!(
                skip_value(&v[..cut], 0).unwrap_err().is_truncated(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn nesting_beyond_the_cap_is_rejected_without_recursion() {
        let mut v = vec![0x91u8; 100_000];
        v.push(0xc0);
        assert!(matches!(
            skip_value(&v, 0),
            Err(MsgpackError::TooDeep { .. })
        ));
        let mut ok = vec![0x91u8; MAX_DEPTH];
        ok.push(0xc0);
        assert_eq!(skip_value(&ok, 0), Ok(ok.len()));
    }

    #[test]
    fn a_declared_count_larger_than_the_input_fails_fast() {
        let v = [0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0];
        assert_eq!(
            skip_value(&v, 0),
            Err(MsgpackError::Truncated { offset: 0 })
        );
    }
}
