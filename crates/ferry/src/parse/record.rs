//! Building one record as msgpack: fields are written as they are parsed into a reusable
//! buffer, then framed as a PackedForward entry `[time, {fields}]` once the time is known.

use bytes::{BufMut, BytesMut};
use ferry_proto::encode::write_entry;
use ferry_proto::msgpack::{write_bool, write_f64, write_int, write_map_len, write_nil, write_str};
use ferry_proto::time::EventTime;

/// How a captured string becomes a value (`types key:integer,...`, as Fluentd converts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    /// Ruby's `to_i`: an optional sign and the leading digits; none gives 0.
    Integer,
    /// Ruby's `to_f`: the leading number; none gives 0.0.
    Float,
    /// `true`, `yes` and `1` are true; anything else is false.
    Bool,
}

impl FieldType {
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "string" => Self::String,
            "integer" | "int" => Self::Integer,
            "float" => Self::Float,
            "bool" => Self::Bool,
            _ => return None,
        })
    }
}

/// The leading integer of `v` (Ruby's `String#to_i`).
pub fn leading_int(v: &[u8]) -> i64 {
    let s = v.trim_ascii_start();
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.iter().take_while(|b| b.is_ascii_digit()) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    if neg { -n } else { n }
}

/// The leading number of `v` (Ruby's `String#to_f`).
pub fn leading_float(v: &[u8]) -> f64 {
    let s = v.trim_ascii_start();
    let mut end = 0;
    let mut seen_dot = false;
    let mut seen_e = false;
    while let Some(&b) = s.get(end) {
        let ok = b.is_ascii_digit()
            || (matches!(b, b'-' | b'+') && (end == 0 || matches!(s[end - 1], b'e' | b'E')))
            || (b == b'.' && !seen_dot && !seen_e)
            || (matches!(b, b'e' | b'E') && !seen_e && end > 0);
        if !ok {
            break;
        }
        seen_dot |= b == b'.';
        seen_e |= matches!(b, b'e' | b'E');
        end += 1;
    }
    let text = std::str::from_utf8(&s[..end]).unwrap_or("");
    // Back off a dangling exponent or sign (`1e`, `2e+`).
    let mut text = text;
    while !text.is_empty() && text.parse::<f64>().is_err() {
        text = &text[..text.len() - 1];
    }
    text.parse().unwrap_or(0.0)
}

/// One record under construction. Reused line after line: [`Record::clear`] keeps the memory.
#[derive(Debug, Default, Clone)]
pub struct Record {
    fields: BytesMut,
    count: u32,
}

impl Record {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn clear(&mut self) {
        self.fields.clear();
        self.count = 0;
    }

    /// Bytes the fields' storage holds without growing.
    pub fn capacity(&self) -> usize {
        self.fields.capacity()
    }

    /// Fields written so far.
    pub fn len(&self) -> u32 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// A string field.
    pub fn str(&mut self, key: &str, value: &[u8]) {
        write_str(&mut self.fields, key.as_bytes());
        write_str(&mut self.fields, value);
        self.count += 1;
    }

    pub fn nil(&mut self, key: &str) {
        write_str(&mut self.fields, key.as_bytes());
        write_nil(&mut self.fields);
        self.count += 1;
    }

    pub fn int(&mut self, key: &str, value: i64) {
        write_str(&mut self.fields, key.as_bytes());
        write_int(&mut self.fields, value);
        self.count += 1;
    }

    /// A captured string converted to `ty`.
    pub fn typed(&mut self, key: &str, value: &[u8], ty: FieldType) {
        write_str(&mut self.fields, key.as_bytes());
        match ty {
            FieldType::String => write_str(&mut self.fields, value),
            FieldType::Integer => write_int(&mut self.fields, leading_int(value)),
            FieldType::Float => write_f64(&mut self.fields, leading_float(value)),
            FieldType::Bool => {
                write_bool(&mut self.fields, matches!(value, b"true" | b"yes" | b"1"))
            }
        }
        self.count += 1;
    }

    /// Where the record stands, to go back to with [`Record::back_to`].
    pub fn mark(&self) -> (usize, u32) {
        (self.fields.len(), self.count)
    }

    /// Drops the fields written since `mark`.
    pub fn back_to(&mut self, mark: (usize, u32)) {
        self.fields.truncate(mark.0);
        self.count = mark.1;
    }

    /// Raw access for encoders that write a key and a value themselves (JSON); each such pair
    /// must be followed by [`Record::add_field`].
    pub fn buf(&mut self) -> &mut BytesMut {
        &mut self.fields
    }

    pub fn add_field(&mut self) {
        self.count += 1;
    }

    /// Replaces the values for which `f` gives a new one (keys and order kept).
    pub fn map_values(
        &mut self,
        f: impl Fn(&ferry_proto::msgpack::Value) -> Option<ferry_proto::msgpack::Value>,
    ) {
        let mut out = BytesMut::with_capacity(self.fields.len());
        let mut count = 0;
        for (key, value) in self.pairs() {
            key.encode(&mut out);
            f(&value).unwrap_or(value).encode(&mut out);
            count += 1;
        }
        self.fields = out;
        self.count = count;
    }

    /// The fields as decoded key/value pairs, in order (read straight from the field bytes).
    pub fn pairs(
        &self,
    ) -> impl Iterator<Item = (ferry_proto::msgpack::Value, ferry_proto::msgpack::Value)> + '_ {
        use ferry_proto::msgpack::Value;
        let mut rest = &self.fields[..];
        (0..self.count).map_while(move |_| {
            // Written by this module: always whole pairs under the count it keeps.
            let (key, n) = Value::decode(rest).ok()?;
            rest = &rest[n..];
            let (value, n) = Value::decode(rest).ok()?;
            rest = &rest[n..];
            Some((key, value))
        })
    }

    /// The string value of the first field named `key` (read in place; `None` when there is no
    /// such field or it is not a string).
    pub fn get_str(&self, key: &[u8]) -> Option<&[u8]> {
        use ferry_proto::msgpack::{Head, read_head, skip_value};
        let buf = &self.fields[..];
        let mut pos = 0;
        for _ in 0..self.count {
            let (head, n) = read_head(buf, pos).ok()?;
            let Head::Str(len) = head else {
                pos = skip_value(buf, pos).ok()?;
                pos = skip_value(buf, pos).ok()?;
                continue;
            };
            let name = buf.get(pos + n..pos + n + len as usize)?;
            pos += n + len as usize;
            if name == key {
                let (head, n) = read_head(buf, pos).ok()?;
                return match head {
                    Head::Str(len) => buf.get(pos + n..pos + n + len as usize),
                    _ => None,
                };
            }
            pos = skip_value(buf, pos).ok()?;
        }
        None
    }

    /// Sets the string value of the fields named `key` (appends the field if there is none).
    pub fn set_str(&mut self, key: &str, value: &[u8]) {
        use ferry_proto::msgpack::Value;
        let mut out = BytesMut::with_capacity(self.fields.len() + value.len());
        let mut count = 0;
        let mut found = false;
        for (k, v) in self.pairs() {
            k.encode(&mut out);
            if matches!(&k, Value::Str(name) if name.as_ref() == key.as_bytes()) {
                write_str(&mut out, value);
                found = true;
            } else {
                v.encode(&mut out);
            }
            count += 1;
        }
        self.fields = out;
        self.count = count;
        if !found {
            self.str(key, value);
        }
    }

    /// Removes the fields named `key`.
    pub fn remove(&mut self, key: &str) {
        use ferry_proto::msgpack::Value;
        let mut out = BytesMut::with_capacity(self.fields.len());
        let mut count = 0;
        for (k, v) in self.pairs() {
            if matches!(&k, Value::Str(name) if name.as_ref() == key.as_bytes()) {
                continue;
            }
            k.encode(&mut out);
            v.encode(&mut out);
            count += 1;
        }
        self.fields = out;
        self.count = count;
    }

    /// The record as a msgpack map.
    pub fn write_map(&self, out: &mut BytesMut) {
        write_map_len(out, self.count as usize);
        out.put_slice(&self.fields);
    }

    /// Appends the entry `[time, record]` to an entry stream.
    pub fn write_entry(&self, out: &mut BytesMut, time: EventTime) {
        let mut map = BytesMut::with_capacity(5);
        write_map_len(&mut map, self.count as usize);
        out.reserve(16 + self.fields.len());
        write_entry(out, time, false, &map);
        out.put_slice(&self.fields);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::msgpack::Value;

    #[test]
    fn a_string_field_is_read_in_place_and_replaced() {
        let mut r = Record::new();
        r.int("n", 5);
        r.str("log", b"part\n");
        r.str("stream", b"stderr");
        assert_eq!(r.get_str(b"log"), Some(&b"part\n"[..]));
        assert_eq!(r.get_str(b"stream"), Some(&b"stderr"[..]));
        assert_eq!(r.get_str(b"n"), None, "not a string");
        assert_eq!(r.get_str(b"none"), None);
        r.set_str("log", b"joined");
        r.set_str("extra", b"x");
        let keys: Vec<String> = r.pairs().map(|(k, v)| format!("{k:?}={v:?}")).collect();
        assert_eq!(keys.len(), 4);
        assert_eq!(r.get_str(b"log"), Some(&b"joined"[..]));
        assert_eq!(r.get_str(b"extra"), Some(&b"x"[..]));
    }

    #[test]
    fn ruby_style_number_conversions() {
        assert_eq!(leading_int(b"200"), 200);
        assert_eq!(leading_int(b"-"), 0);
        assert_eq!(leading_int(b"-12abc"), -12);
        assert_eq!(leading_float(b"1.5e3x"), 1500.0);
        assert_eq!(leading_float(b"2e"), 2.0);
        assert_eq!(leading_float(b"abc"), 0.0);
    }

    #[test]
    fn an_entry_is_time_then_the_map_of_fields_in_order() {
        let mut r = Record::new();
        r.str("a", b"x");
        r.typed("n", b"42", FieldType::Integer);
        r.nil("z");
        let mut out = BytesMut::new();
        r.write_entry(&mut out, EventTime::new(5, 6));
        let (v, used) = Value::decode(&out).unwrap();
        assert_eq!(used, out.len());
        let Value::Array(parts) = v else {
            panic!("entry is an array")
        };
        assert_eq!(parts[0], Value::Ext(0, vec![0, 0, 0, 5, 0, 0, 0, 6].into()));
        assert_eq!(
            parts[1],
            Value::Map(vec![
                (Value::Str("a".into()), Value::Str("x".into())),
                (Value::Str("n".into()), Value::UInt(42)),
                (Value::Str("z".into()), Value::Nil),
            ])
        );
    }
}
