//! A small, bounded msgpack reader, skipper and writer, and an owned [`Value`].
//!
//! Spec: <https://github.com/msgpack/msgpack/blob/master/spec.md>.
//!
//! Byte layout (first byte of every value, "marker"):
//!
//! | marker | type | header bytes | payload bytes |
//! |---|---|---|---|
//! | `00..7f`, `e0..ff` | positive / negative fixint | 1 | 0 |
//! | `80..8f` / `90..9f` | fixmap / fixarray (n in low nibble) | 1 | n values / 2n values follow |
//! | `a0..bf` | fixstr (len in low 5 bits) | 1 | len |
//! | `c0` `c2` `c3` | nil, false, true | 1 | 0 |
//! | `c1` | never used: always an error | - | - |
//! | `c4 c5 c6` / `d9 da db` | bin / str with u8, u16, u32 BE length | 2, 3, 5 | len |
//! | `c7 c8 c9` | ext with u8, u16, u32 length, then type byte | 3, 4, 6 | len |
//! | `ca cb` | float32, float64 | 5, 9 | 0 |
//! | `cc..cf` / `d0..d3` | uint8..64 / int8..64 | 2, 3, 5, 9 | 0 |
//! | `d4..d8` | fixext 1, 2, 4, 8, 16 (type byte follows) | 2 | 1, 2, 4, 8, 16 |
//! | `dc dd` / `de df` | array / map with u16, u32 count | 3, 5 | values follow |
//!
//! Invariants and limits:
//! - Every read is bounds-checked: a length that runs past the input is [`MsgpackError::Truncated`],
//!   never a panic.
//! - Nothing is allocated from a declared length: a declared count is only trusted up to the number
//!   of bytes left (every value takes at least one byte).
//! - Nesting is capped at [`MAX_DEPTH`] containers; deeper input is [`MsgpackError::TooDeep`].
//! - The skipper ([`skip_values`]) is iterative (an explicit stack of outstanding counts), so hostile
//!   nesting cannot overflow the call stack; [`Value::decode`] recurses but stops at [`MAX_DEPTH`].

mod json;
mod read;
mod skip;
mod value;
mod write;

pub use read::{Head, Reader, header_len, read_head};
pub use skip::{skip_value, skip_values};
pub use value::Value;
pub use write::{
    write_array_len, write_bin, write_bool, write_f64, write_int, write_map_len, write_nil,
    write_str, write_str32, write_uint,
};

/// Deepest container nesting accepted anywhere in ferry-proto.
pub const MAX_DEPTH: usize = 512;

/// Why some bytes are not the msgpack that was expected. Offsets are from the start of the slice
/// handed to the reader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MsgpackError {
    /// The input ends inside the value that starts (or whose header starts) at `offset`.
    #[error("msgpack value truncated at offset {offset}")]
    Truncated { offset: usize },
    /// Byte 0xc1 is never valid msgpack.
    #[error("invalid msgpack marker 0x{byte:02x} at offset {offset}")]
    InvalidMarker { offset: usize, byte: u8 },
    /// Containers nested deeper than [`MAX_DEPTH`].
    #[error("msgpack nesting deeper than {max} at offset {offset}")]
    TooDeep { offset: usize, max: usize },
    /// A well-formed value of the wrong type for this position.
    #[error("expected {expected} at offset {offset}, found {found}")]
    Unexpected {
        offset: usize,
        expected: &'static str,
        found: &'static str,
    },
}

impl MsgpackError {
    /// True when more input could complete the value (the bytes seen so far are a valid prefix).
    pub fn is_truncated(&self) -> bool {
        matches!(self, MsgpackError::Truncated { .. })
    }

    /// Offset in the input where the problem was found.
    pub fn offset(&self) -> usize {
        match self {
            MsgpackError::Truncated { offset }
            | MsgpackError::InvalidMarker { offset, .. }
            | MsgpackError::TooDeep { offset, .. }
            | MsgpackError::Unexpected { offset, .. } => *offset,
        }
    }

    /// The same error with its offset moved by `base` (for errors found inside a sub-slice).
    pub fn shifted(self, base: usize) -> Self {
        match self {
            MsgpackError::Truncated { offset } => MsgpackError::Truncated {
                offset: offset + base,
            },
            MsgpackError::InvalidMarker { offset, byte } => MsgpackError::InvalidMarker {
                offset: offset + base,
                byte,
            },
            MsgpackError::TooDeep { offset, max } => MsgpackError::TooDeep {
                offset: offset + base,
                max,
            },
            MsgpackError::Unexpected {
                offset,
                expected,
                found,
            } => MsgpackError::Unexpected {
                offset: offset + base,
                expected,
                found,
            },
        }
    }
}
