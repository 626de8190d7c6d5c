//! Helpers over decoded records (msgpack maps as [`Value`]s), shared by the filters and the
//! formatters: the only stages that look inside records.
//!
//! A record is a `Value::Map`; keys are msgpack str (other key types are kept but never found
//! by name). Text renderings follow Ruby's `to_s`, which is what Fluentd's plugins write, except
//! that maps and arrays are rendered as JSON (Ruby would write `{"a"=>1}`).

use bytes::Bytes;
use ferry_proto::msgpack::Value;
use std::borrow::Cow;
use std::fmt::Write as _;

/// A msgpack str value.
pub fn str_value(s: &str) -> Value {
    Value::Str(Bytes::copy_from_slice(s.as_bytes()))
}

fn key_is(k: &Value, key: &str) -> bool {
    matches!(k, Value::Str(s) if s.as_ref() == key.as_bytes())
}

/// The value under `key` in a record.
pub fn get<'a>(pairs: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    pairs.iter().find(|(k, _)| key_is(k, key)).map(|(_, v)| v)
}

/// Sets `key` to `value`: replaces the first pair with that key (keeping its position, as a
/// Ruby hash does), else appends.
pub fn set(pairs: &mut Vec<(Value, Value)>, key: &str, value: Value) {
    match pairs.iter_mut().find(|(k, _)| key_is(k, key)) {
        Some((_, v)) => *v = value,
        None => pairs.push((str_value(key), value)),
    }
}

/// Removes every pair with `key`; returns the first removed value.
pub fn remove(pairs: &mut Vec<(Value, Value)>, key: &str) -> Option<Value> {
    let at = pairs.iter().position(|(k, _)| key_is(k, key))?;
    let (_, value) = pairs.remove(at);
    pairs.retain(|(k, _)| !key_is(k, key));
    Some(value)
}

/// A value as text, the way Fluentd's plugins write it: strings as they are (invalid UTF-8
/// replaced), nil as the empty string, numbers and booleans in Ruby's `to_s` form, maps and
/// arrays as JSON.
pub fn text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::Str(s) | Value::Bin(s) => String::from_utf8_lossy(s),
        Value::Nil => Cow::Borrowed(""),
        Value::Bool(true) => Cow::Borrowed("true"),
        Value::Bool(false) => Cow::Borrowed("false"),
        Value::Int(v) => Cow::Owned(v.to_string()),
        Value::UInt(v) => Cow::Owned(v.to_string()),
        Value::F32(v) => Cow::Owned(float_text(f64::from(*v))),
        Value::F64(v) => Cow::Owned(float_text(*v)),
        other => Cow::Owned(other.to_json_string()),
    }
}

/// Ruby's `Float#to_s` for the common cases: `1.0`, `0.25`, `NaN`, `Infinity`.
pub fn float_text(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else if v == v.trunc() && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        let mut s = String::new();
        let _ = write!(s, "{v}");
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_replaces_in_place_and_appends_new_keys() {
        let mut r = vec![
            (str_value("a"), Value::UInt(1)),
            (str_value("b"), Value::UInt(2)),
        ];
        set(&mut r, "a", Value::UInt(9));
        set(&mut r, "c", Value::UInt(3));
        assert_eq!(
            r,
            vec![
                (str_value("a"), Value::UInt(9)),
                (str_value("b"), Value::UInt(2)),
                (str_value("c"), Value::UInt(3))
            ]
        );
        assert_eq!(remove(&mut r, "b"), Some(Value::UInt(2)));
        assert_eq!(get(&r, "b"), None);
    }

    #[test]
    fn text_follows_rubys_to_s_for_scalars() {
        assert_eq!(text(&Value::Nil), "");
        assert_eq!(text(&Value::F64(2.0)), "2.0");
        assert_eq!(text(&Value::F64(0.5)), "0.5");
        assert_eq!(text(&Value::Int(-3)), "-3");
        assert_eq!(text(&Value::Bool(true)), "true");
        assert_eq!(text(&str_value("x")), "x");
        assert_eq!(text(&Value::Array(vec![Value::UInt(1)])), "[1]");
    }
}
