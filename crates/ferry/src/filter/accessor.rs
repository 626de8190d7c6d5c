//! Fluentd's record accessor syntax for naming a field: `key` (a top-level key, dots and all),
//! `$.a.b[0]` (dot notation) or `$['a']['b'][0]` (bracket notation). Fields are read and
//! removed on the raw record ([`super::raw`]): a read decodes nothing on the way, a nested
//! removal rewrites only the top-level value that holds the field.

use super::raw::{Member, RawRecord, RawValue};
use bytes::BytesMut;
#[cfg(test)]
use ferry_proto::msgpack::Value;

/// One step into a record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A compiled field name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accessor {
    source: String,
    steps: Vec<Step>,
}

impl Accessor {
    pub fn parse(source: &str) -> Result<Self, String> {
        let steps = match source.strip_prefix('$') {
            None => vec![Step::Key(source.to_string())],
            Some(rest) => parse_path(rest).map_err(|e| format!("field '{source}': {e}"))?,
        };
        if steps.is_empty() {
            return Err(format!("field '{source}' names nothing"));
        }
        Ok(Self {
            source: source.to_string(),
            steps,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// The top-level key when the accessor is a plain key.
    pub fn top_key(&self) -> Option<&str> {
        match self.steps.as_slice() {
            [Step::Key(k)] => Some(k),
            _ => None,
        }
    }

    /// The value the accessor names in `record`, read in place.
    pub fn get<'r>(&self, record: &'r RawRecord<'_>) -> Option<RawValue<'r>> {
        let (Step::Key(first), rest) = self.steps.split_first()? else {
            return None;
        };
        let mut value = record.get(first)?;
        for step in rest {
            value = match step {
                Step::Key(k) => value.get(k)?,
                Step::Index(i) => value.index(*i)?,
            };
        }
        Some(value)
    }

    /// Removes the field; true if it was there. A plain key removes every pair with that key;
    /// a path goes through the first pair with each key to the field, which it removes (every
    /// pair with its key when it is in a map).
    pub fn delete(&self, record: &mut RawRecord<'_>) -> bool {
        let Some((Step::Key(first), rest)) = self.steps.split_first() else {
            return false;
        };
        if rest.is_empty() {
            return record.remove(first);
        }
        record.edit_first(first, |value, out| delete_in(value, rest, out))
    }

    /// [`Accessor::get`] over decoded pairs: the model the raw walk is tested against.
    #[cfg(test)]
    pub fn get_decoded<'a>(&self, record: &'a [(Value, Value)]) -> Option<&'a Value> {
        let (first, rest) = self.steps.split_first()?;
        let Step::Key(k) = first else { return None };
        let mut value = crate::record::get(record, k)?;
        for step in rest {
            value = match (step, value) {
                (Step::Key(k), Value::Map(pairs)) => crate::record::get(pairs, k)?,
                (Step::Index(i), Value::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(value)
    }

    /// [`Accessor::delete`] over decoded pairs: the model the raw edit is tested against.
    #[cfg(test)]
    pub fn delete_decoded(&self, record: &mut Vec<(Value, Value)>) -> bool {
        let Some((Step::Key(first), rest)) = self.steps.split_first() else {
            return false;
        };
        if rest.is_empty() {
            return crate::record::remove(record, first).is_some();
        }
        record
            .iter_mut()
            .find(|(k, _)| matches!(k, Value::Str(s) if s.as_ref() == first.as_bytes()))
            .is_some_and(|(_, v)| delete_decoded_in(v, rest))
    }
}

/// Writes `value` without the field `steps` names; false (nothing written) if it is not there.
fn delete_in(value: RawValue<'_>, steps: &[Step], out: &mut BytesMut) -> bool {
    let Some((step, rest)) = steps.split_first() else {
        return false;
    };
    let member = match step {
        Step::Key(k) if rest.is_empty() => return value.write_without_key(k, out),
        Step::Index(i) if rest.is_empty() => return value.write_without_item(*i, out),
        Step::Key(k) => Member::Key(k),
        Step::Index(i) => Member::Index(*i),
    };
    value.write_editing(member, out, |inner, out| delete_in(inner, rest, out))
}

#[cfg(test)]
fn delete_decoded_in(value: &mut Value, steps: &[Step]) -> bool {
    let Some((step, rest)) = steps.split_first() else {
        return false;
    };
    match (step, value) {
        (Step::Key(k), Value::Map(pairs)) if rest.is_empty() => {
            crate::record::remove(pairs, k).is_some()
        }
        (Step::Key(k), Value::Map(pairs)) => pairs
            .iter_mut()
            .find(|(key, _)| matches!(key, Value::Str(s) if s.as_ref() == k.as_bytes()))
            .is_some_and(|(_, v)| delete_decoded_in(v, rest)),
        (Step::Index(i), Value::Array(items)) if rest.is_empty() => {
            let found = *i < items.len();
            if found {
                items.remove(*i);
            }
            found
        }
        (Step::Index(i), Value::Array(items)) => items
            .get_mut(*i)
            .is_some_and(|v| delete_decoded_in(v, rest)),
        _ => false,
    }
}

fn parse_path(rest: &str) -> Result<Vec<Step>, String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        match c {
            '.' => {
                let start = i + 1;
                let mut end = start;
                while chars.get(end).is_some_and(|c| *c != '.' && *c != '[') {
                    end += 1;
                }
                if end == start {
                    return Err("empty key after '.'".into());
                }
                steps.push(Step::Key(chars[start..end].iter().collect()));
                i = end;
            }
            '[' => {
                let close = (i..chars.len())
                    .find(|&j| chars[j] == ']' && j > i + 1 && !in_quotes(&chars[i + 1..j]))
                    .ok_or("unterminated '['")?;
                let inner: String = chars[i + 1..close].iter().collect();
                steps.push(bracket(&inner)?);
                i = close + 1;
            }
            other => return Err(format!("unexpected '{other}'")),
        }
    }
    Ok(steps)
}

/// Whether `s` opens a quote it does not close (so a `]` at its end is inside the quotes).
fn in_quotes(s: &[char]) -> bool {
    match s.first() {
        Some(q @ ('\'' | '"')) => s.len() < 2 || s.last() != Some(q),
        _ => false,
    }
}

fn bracket(inner: &str) -> Result<Step, String> {
    for q in ['\'', '"'] {
        if let Some(k) = inner.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return Ok(Step::Key(k.to_string()));
        }
    }
    inner
        .trim()
        .parse()
        .map(Step::Index)
        .map_err(|_| format!("'[{inner}]' is neither a quoted key nor an index"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::str_value;

    fn record() -> Vec<(Value, Value)> {
        let inner = Value::Map(vec![(
            str_value("b"),
            Value::Array(vec![Value::UInt(1), Value::UInt(2)]),
        )]);
        vec![(str_value("a"), inner), (str_value("x.y"), Value::UInt(3))]
    }

    #[test]
    fn plain_keys_dot_and_bracket_notation_reach_the_same_fields() {
        let model = record();
        let bytes = Value::Map(model.clone()).to_bytes();
        let mut r = RawRecord::new();
        r.load(&bytes).unwrap();
        let get = |s: &str| {
            let a = Accessor::parse(s).unwrap();
            let raw = a.get(&r).map(|v| v.to_value());
            assert_eq!(raw.as_ref(), a.get_decoded(&model), "{s}");
            raw
        };
        assert_eq!(get("x.y"), Some(Value::UInt(3)));
        assert_eq!(get("$.a.b[1]"), Some(Value::UInt(2)));
        assert_eq!(get("$['a']['b'][0]"), Some(Value::UInt(1)));
        assert_eq!(get("$[\"x.y\"]"), Some(Value::UInt(3)));
        assert_eq!(get("$.a.c"), None);
        assert_eq!(get("$.a.b[5]"), None);
    }

    #[test]
    fn delete_removes_nested_fields() {
        let mut model = record();
        let bytes = Value::Map(model.clone()).to_bytes();
        let mut r = RawRecord::new();
        r.load(&bytes).unwrap();
        let mut delete = |s: &str| {
            let a = Accessor::parse(s).unwrap();
            let raw = a.delete(&mut r);
            assert_eq!(raw, a.delete_decoded(&mut model), "{s}");
            assert_eq!(r.to_value(), Value::Map(model.clone()), "{s}");
            raw
        };
        assert!(delete("$.a.b[0]"));
        assert!(delete("$.a.b"));
        assert!(!delete("$.a.b"));
        assert!(delete("x.y"));
        assert_eq!(r.len(), 1);
        assert_eq!(
            Accessor::parse("$.a")
                .unwrap()
                .get(&r)
                .map(|v| v.to_value()),
            Some(Value::Map(vec![]))
        );
    }

    #[test]
    fn malformed_accessors_are_errors() {
        assert!(Accessor::parse("$.").is_err());
        assert!(Accessor::parse("$[abc]").is_err());
        assert!(Accessor::parse("$['a'").is_err());
        assert!(Accessor::parse("$x").is_err());
        assert!(Accessor::parse("$").is_err());
    }
}
