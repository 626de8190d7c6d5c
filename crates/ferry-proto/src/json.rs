//! JSON → msgpack, straight (no intermediate tree): key order kept, integers stay integers
//! (signed or unsigned), other numbers float64. serde_json bounds nesting (128 levels), so
//! hostile input cannot exhaust the stack. Containers are written with a 5-byte header whose
//! count is patched at the end; containers of fewer than 16 elements are then shrunk to the
//! 1-byte fix form, so the output is what a msgpack encoder would write.
//!
//! The one JSON → msgpack conversion of ferry: the json parser, the Forward input's JSON mode,
//! the http input's bodies, the record_transformer's values.

mod flat;

pub use flat::{Scalar, flat_object};

use crate::msgpack::{
    write_array_len, write_bool, write_f64, write_int, write_map_len, write_nil, write_str,
    write_uint,
};
use bytes::{BufMut, BytesMut};
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Why a text is not JSON (serde_json's message, with line and column).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(pub String);

/// Any JSON document (whitespace around it allowed) as msgpack, appended to `out`. On error
/// `out` is left as it was.
pub fn to_msgpack(json: &[u8], out: &mut BytesMut) -> Result<(), JsonError> {
    let at = out.len();
    let mut de = serde_json::Deserializer::from_slice(json);
    let done = ValueSeed { out: &mut *out }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    done.map_err(|e| {
        out.truncate(at);
        JsonError(e.to_string())
    })
}

/// Any JSON document as a msgpack [`crate::msgpack::Value`].
pub fn to_value(json: &[u8]) -> Result<crate::msgpack::Value, JsonError> {
    let mut out = BytesMut::with_capacity(json.len());
    to_msgpack(json, &mut out)?;
    crate::msgpack::Value::decode(&out)
        .map(|(v, _)| v)
        .map_err(|e| JsonError(e.to_string()))
}

/// A map key: borrowed from the input when it has no escapes.
pub enum Key<'de> {
    Borrowed(&'de str),
    Owned(String),
}

impl Key<'_> {
    pub fn as_str(&self) -> &str {
        match self {
            Key::Borrowed(s) => s,
            Key::Owned(s) => s,
        }
    }
}

/// Reads a map key.
pub struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key<'de>;
    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(KeySeed)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    #[inline]
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Key::Borrowed(v))
    }
    #[inline]
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Key::Owned(v.to_string()))
    }
}

/// Writes any JSON value as msgpack into `out`.
pub struct ValueSeed<'a> {
    pub out: &'a mut BytesMut,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = ();
    #[inline]
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

/// Starts a container with a 32-bit count header; returns where it starts.
fn open(out: &mut BytesMut, marker: u8) -> usize {
    let at = out.len();
    out.put_u8(marker);
    out.put_u32(0);
    at
}

/// Patches the count, shrinking to the fix form when it fits.
fn close(out: &mut BytesMut, at: usize, count: u32, fix_base: u8, marker16: u8) {
    let end = out.len();
    if count < 16 {
        out[at] = fix_base | count as u8;
        out.copy_within(at + 5..end, at + 1);
        out.truncate(end - 4);
    } else if count <= u32::from(u16::MAX) {
        out[at] = marker16;
        out[at + 1..at + 3].copy_from_slice(&(count as u16).to_be_bytes());
        out.copy_within(at + 5..end, at + 3);
        out.truncate(end - 2);
    } else {
        out[at + 1..at + 5].copy_from_slice(&count.to_be_bytes());
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        write_bool(self.out, v);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        write_int(self.out, v);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        write_uint(self.out, v);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        write_f64(self.out, v);
        Ok(())
    }
    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        write_str(self.out, v.as_bytes());
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        write_nil(self.out);
        Ok(())
    }
    fn visit_none<E>(self) -> Result<(), E> {
        write_nil(self.out);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let at = open(self.out, 0xdd);
        let mut n = 0u32;
        while seq
            .next_element_seed(ValueSeed { out: self.out })?
            .is_some()
        {
            n += 1;
        }
        close(self.out, at, n, 0x90, 0xdc);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let at = open(self.out, 0xdf);
        let mut n = 0u32;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            write_str(self.out, key.as_str().as_bytes());
            map.next_value_seed(ValueSeed { out: self.out })?;
            n += 1;
        }
        close(self.out, at, n, 0x80, 0xde);
        Ok(())
    }
}

/// A parsed `serde_json::Value` as msgpack.
pub fn write_tree(out: &mut BytesMut, v: &serde_json::Value) {
    use serde_json::Value as J;
    match v {
        J::Null => write_nil(out),
        J::Bool(b) => write_bool(out, *b),
        J::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => write_uint(out, u),
            (None, Some(i)) => write_int(out, i),
            _ => write_f64(out, n.as_f64().unwrap_or(0.0)),
        },
        J::String(s) => write_str(out, s.as_bytes()),
        J::Array(items) => {
            write_array_len(out, items.len());
            for i in items {
                write_tree(out, i);
            }
        }
        J::Object(m) => {
            write_map_len(out, m.len());
            for (k, v) in m {
                write_str(out, k.as_bytes());
                write_tree(out, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgpack::Value;

    #[test]
    fn objects_keep_key_order_and_integers_stay_exact() {
        let v =
            to_value(br#" {"z":1,"a":[true,null,-2,1.5,"x\u00e9\n"],"big":18446744073709551615} "#)
                .unwrap();
        assert_eq!(
            v.to_json_string(),
            r#"{"z":1,"a":[true,null,-2,1.5,"xé\n"],"big":18446744073709551615}"#
        );
    }

    #[test]
    fn surrogate_pairs_decode_to_one_character() {
        assert_eq!(
            to_value(br#""\ud83d\ude00""#).unwrap(),
            Value::Str(bytes::Bytes::from("😀"))
        );
    }

    #[test]
    fn malformed_and_hostile_input_is_an_error_not_a_panic_and_writes_nothing() {
        for bad in [
            "", "{", "[1,", r#"{"a"}"#, "01x", "tru", r#""\x""#, "1 2", r#""\u12"#,
        ] {
            let mut out = BytesMut::from(&b"kept"[..]);
            assert!(to_msgpack(bad.as_bytes(), &mut out).is_err(), "{bad:?}");
            assert_eq!(&out[..], b"kept");
        }
        let deep = "[".repeat(10_000);
        assert!(to_value(deep.as_bytes()).is_err());
    }
}
