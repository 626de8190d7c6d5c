//! An owned msgpack value, for the places that need to look inside records (filters, stdout,
//! tests). The forward path never builds these: it moves raw bytes.

use bytes::{Bytes, BytesMut};

use super::read::{Head, read_head};
use super::write::{
    write_array_len, write_bin, write_bool, write_ext, write_f32, write_f64, write_int,
    write_map_len, write_nil, write_str, write_uint,
};
use super::{MAX_DEPTH, MsgpackError};

/// One msgpack value. `Str` keeps the raw bytes: msgpack does not promise UTF-8 and Fluent Bit
/// sends random bytes in str (HELO nonces).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    /// Negative integers (non-negative ones decode as `UInt`).
    Int(i64),
    UInt(u64),
    F32(f32),
    F64(f64),
    Str(Bytes),
    Bin(Bytes),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Ext(i8, Bytes),
}

impl Value {
    /// Decode the first value of `buf`; returns it and the number of bytes it took. Nesting is
    /// limited to [`MAX_DEPTH`]; no allocation exceeds what the input can fill (a declared count
    /// is capped by the bytes left).
    pub fn decode(buf: &[u8]) -> Result<(Value, usize), MsgpackError> {
        let mut pos = 0;
        let v = decode_at(buf, &mut pos, 0)?;
        Ok((v, pos))
    }

    /// Encode in the smallest form for each element.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Value::Nil => write_nil(out),
            Value::Bool(b) => write_bool(out, *b),
            Value::Int(v) => write_int(out, *v),
            Value::UInt(v) => write_uint(out, *v),
            Value::F32(v) => write_f32(out, *v),
            Value::F64(v) => write_f64(out, *v),
            Value::Str(s) => write_str(out, s),
            Value::Bin(b) => write_bin(out, b),
            Value::Array(a) => {
                write_array_len(out, a.len());
                for v in a {
                    v.encode(out);
                }
            }
            Value::Map(m) => {
                write_map_len(out, m.len());
                for (k, v) in m {
                    k.encode(out);
                    v.encode(out);
                }
            }
            Value::Ext(ty, data) => write_ext(out, *ty, data),
        }
    }

    /// The encoding as a new buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::new();
        self.encode(&mut out);
        out.freeze()
    }

    /// For a map: the value of the first key that is a str equal to `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m
                .iter()
                .find(|(k, _)| matches!(k, Value::Str(s) if s.as_ref() == key.as_bytes()))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The str payload, if this is a str.
    pub fn as_str_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

fn decode_at(buf: &[u8], pos: &mut usize, depth: usize) -> Result<Value, MsgpackError> {
    let start = *pos;
    let (head, hlen) = read_head(buf, start)?;
    *pos = start + hlen;
    let mut payload = |n: usize| -> Result<Bytes, MsgpackError> {
        let s = buf
            .get(*pos..*pos + n)
            .ok_or(MsgpackError::Truncated { offset: start })?;
        *pos += n;
        Ok(Bytes::copy_from_slice(s))
    };
    let container_len = |n: u32, per: usize, pos: usize| -> Result<usize, MsgpackError> {
        if depth >= MAX_DEPTH {
            return Err(MsgpackError::TooDeep {
                offset: start,
                max: MAX_DEPTH,
            });
        }
        let n = n as usize;
        if n.saturating_mul(per) > buf.len().saturating_sub(pos) {
            return Err(MsgpackError::Truncated { offset: start });
        }
        Ok(n)
    };
    Ok(match head {
        Head::Nil => Value::Nil,
        Head::Bool(b) => Value::Bool(b),
        Head::UInt(v) => Value::UInt(v),
        Head::Int(v) if v >= 0 => Value::UInt(v as u64),
        Head::Int(v) => Value::Int(v),
        Head::F32(v) => Value::F32(v),
        Head::F64(v) => Value::F64(v),
        Head::Str(n) => Value::Str(payload(n as usize)?),
        Head::Bin(n) => Value::Bin(payload(n as usize)?),
        Head::Ext(ty, n) => Value::Ext(ty, payload(n as usize)?),
        Head::Array(n) => {
            let n = container_len(n, 1, *pos)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(decode_at(buf, pos, depth + 1)?);
            }
            Value::Array(items)
        }
        Head::Map(n) => {
            let n = container_len(n, 2, *pos)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                let k = decode_at(buf, pos, depth + 1)?;
                let v = decode_at(buf, pos, depth + 1)?;
                items.push((k, v));
            }
            Value::Map(items)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_it_encodes() {
        let v = Value::Map(vec![
            (Value::Str(Bytes::from_static(b"a")), Value::Int(-5)),
            (
                Value::Str(Bytes::from_static(b"b")),
                Value::Array(vec![
                    Value::Nil,
                    Value::F64(1.5),
                    Value::Bin(Bytes::from_static(&[0, 1])),
                ]),
            ),
        ]);
        let bytes = v.to_bytes();
        assert_eq!(Value::decode(&bytes).unwrap(), (v, bytes.len()));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut v = vec![0x91u8; 10_000];
        v.push(0xc0);
        assert!(matches!(
            Value::decode(&v),
            Err(MsgpackError::TooDeep { .. })
        ));
    }

    #[test]
    fn a_huge_declared_array_does_not_allocate_before_failing() {
        let v = [0xdd, 0xff, 0xff, 0xff, 0xff];
        assert_eq!(
            Value::decode(&v),
            Err(MsgpackError::Truncated { offset: 0 })
        );
    }
}
