//! Value types: sizes, durations, booleans, arrays and hashes, read as Fluentd reads them.
//!
//! ferry is stricter than Fluentd where Fluentd silently misreads: Fluentd's size and time
//! parsers match a digit run followed by a unit anywhere in the text, so `1.5m` is 5 MiB and
//! `500ms` is 500 minutes. Here the whole value must be a number and an optional unit, fractions
//! are read as fractions, and `ms` means milliseconds.

use std::fmt;
use std::time::Duration;

use crate::json::{self, Json};

/// A number of bytes. Written as `1024`, `8k`, `8m`, `1g`, `1t` (case-insensitive, powers of
/// 1024, an optional trailing `b`: `8MB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// `n` KiB.
    pub const fn kib(n: u64) -> Self {
        ByteSize(n.saturating_mul(1 << 10))
    }
    /// `n` MiB.
    pub const fn mib(n: u64) -> Self {
        ByteSize(n.saturating_mul(1 << 20))
    }
    /// `n` GiB.
    pub const fn gib(n: u64) -> Self {
        ByteSize(n.saturating_mul(1 << 30))
    }
    /// `n` TiB.
    pub const fn tib(n: u64) -> Self {
        ByteSize(n.saturating_mul(1 << 40))
    }
    /// The number of bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl fmt::Display for ByteSize {
    /// The largest unit that divides the size exactly: `8m`, `1536k`, `100`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shift, unit) in [(40, 't'), (30, 'g'), (20, 'm'), (10, 'k')] {
            let scale = 1u64 << shift;
            if self.0 != 0 && self.0 % scale == 0 {
                return write!(f, "{}{unit}", self.0 / scale);
            }
        }
        write!(f, "{}", self.0)
    }
}

/// Reads a size: digits, then optionally `k`, `m`, `g` or `t` (powers of 1024, any case,
/// optionally followed by `b`).
pub fn parse_size(s: &str) -> Result<ByteSize, String> {
    let t = s.trim();
    let bad =
        || format!("'{s}' is not a size (expected bytes or a number with k, m, g or t, e.g. 8m)");
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    if digits.is_empty() {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| format!("'{s}' is too large"))?;
    let shift = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "kb" => 10,
        "m" | "mb" => 20,
        "g" | "gb" => 30,
        "t" | "tb" => 40,
        _ => return Err(bad()),
    };
    n.checked_mul(1u64 << shift)
        .map(ByteSize)
        .ok_or_else(|| format!("'{s}' is too large"))
}

/// Reads a duration: a number of seconds (fractions allowed), or a number followed by `ms`,
/// `s`, `m`, `h` or `d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "'{s}' is not a duration (expected seconds or a number with ms, s, m, h or d, e.g. 60s)"
        )
    };
    let (number, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = t.strip_suffix('h') {
        (n, 3600.0)
    } else if let Some(n) = t.strip_suffix('d') {
        (n, 86400.0)
    } else {
        (t, 1.0)
    };
    let number = number.trim_end();
    let numeric = number.starts_with(|c: char| c.is_ascii_digit() || c == '.')
        && number.chars().any(|c| c.is_ascii_digit())
        && number
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'));
    if !numeric {
        return Err(bad());
    }
    let n: f64 = number.parse().map_err(|_| bad())?;
    Duration::try_from_secs_f64(n * scale).map_err(|_| format!("'{s}' is out of range"))
}

/// Reads a boolean as Fluentd does: `true`/`yes`, `false`/`no` (any case); an empty value
/// (the key alone on its line) is true.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "" | "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err(format!(
            "'{s}' is not a boolean (expected true, false, yes or no)"
        )),
    }
}

/// Reads an array: a JSON array (`["a", "b"]`; numbers and other non-strings as their JSON
/// text) or a comma-separated list (`a, b`); blank items are dropped.
pub fn parse_array(s: &str) -> Result<Vec<String>, String> {
    let t = s.trim();
    if t.starts_with('[') {
        return match json::parse_str(t) {
            Ok(Json::Array(items)) => Ok(items.iter().map(Json::to_text).collect()),
            Ok(_) => Err(format!("'{s}' is not an array")),
            Err(e) => Err(format!("'{s}' is not a JSON array: {e}")),
        };
    }
    Ok(t.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_string)
        .collect())
}

/// Reads a hash: a JSON object (`{"k":"v"}`; non-string values as their JSON text) or
/// `k1:v1,k2:v2` (split at the first `:`, blanks around keys and values dropped).
pub fn parse_hash(s: &str) -> Result<Vec<(String, String)>, String> {
    let t = s.trim();
    if t.starts_with('{') {
        return match json::parse_str(t) {
            Ok(Json::Object(entries)) => {
                Ok(entries.into_iter().map(|(k, v)| (k, v.to_text())).collect())
            }
            Ok(_) => Err(format!("'{s}' is not a hash")),
            Err(e) => Err(format!("'{s}' is not a JSON hash: {e}")),
        };
    }
    t.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once(':') {
            Some((k, v)) => Ok((k.trim().to_string(), v.trim().to_string())),
            None => Err(format!("'{item}' is not a key:value pair")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_accept_every_unit_in_any_case_with_optional_b() {
        let cases = [
            ("1024", 1024),
            ("8k", 8 << 10),
            ("8K", 8 << 10),
            ("8kb", 8 << 10),
            ("8m", 8 << 20),
            ("8MB", 8 << 20),
            ("1g", 1 << 30),
            ("64G", 64 << 30),
            ("1t", 1 << 40),
            ("2TB", 2 << 40),
            (" 256m ", 256 << 20),
            ("0", 0),
        ];
        for (text, bytes) in cases {
            assert_eq!(parse_size(text), Ok(ByteSize(bytes)), "{text}");
        }
    }

    #[test]
    fn sizes_reject_fractions_garbage_and_overflow() {
        for bad in [
            "",
            "m",
            "1.5m",
            "8x",
            "-1",
            "8 mib",
            "99999999999999999999",
            "16777216t",
        ] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn size_display_uses_the_largest_exact_unit() {
        assert_eq!(ByteSize::mib(8).to_string(), "8m");
        assert_eq!(ByteSize::kib(1536).to_string(), "1536k");
        assert_eq!(ByteSize::gib(64).to_string(), "64g");
        assert_eq!(ByteSize(100).to_string(), "100");
        assert_eq!(ByteSize(0).to_string(), "0");
        assert_eq!(
            parse_size(&ByteSize::tib(3).to_string()),
            Ok(ByteSize::tib(3))
        );
    }

    #[test]
    fn durations_accept_units_and_fractional_seconds() {
        let cases = [
            ("10", 10.0),
            ("1.5", 1.5),
            ("0.25", 0.25),
            ("10s", 10.0),
            ("5m", 300.0),
            ("1h", 3600.0),
            ("2d", 172_800.0),
            ("500ms", 0.5),
            ("1.5h", 5400.0),
            ("72h", 259_200.0),
            ("1e2", 100.0),
            (" 60s ", 60.0),
        ];
        for (text, secs) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs_f64(secs)),
                "{text}"
            );
        }
    }

    #[test]
    fn durations_reject_garbage_negatives_and_overflow() {
        for bad in [
            "", "abc", "s", "-1", "-5s", "10x", "inf", "NaN", "1e400", "10S", "+1", "1..2",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn booleans_follow_fluentd_and_empty_is_true() {
        for t in ["true", "yes", "", "TRUE", "Yes"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["false", "no", "False", "NO"] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        for bad in ["1", "on", "# comment", "tru"] {
            assert!(parse_bool(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn arrays_read_json_or_comma_lists() {
        assert_eq!(
            parse_array(r#"["a", "b c", 1, null]"#).unwrap(),
            ["a", "b c", "1", "null"]
        );
        assert_eq!(parse_array(" a , b,,c ").unwrap(), ["a", "b", "c"]);
        assert_eq!(parse_array("").unwrap(), Vec::<String>::new());
        assert!(parse_array("[1,").is_err());
        assert!(parse_array("[1] x").is_err());
    }

    #[test]
    fn hashes_read_json_or_colon_pairs_in_order() {
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        assert_eq!(
            parse_hash(r#"{"z": "1", "a": 2, "o": {"x": true}}"#).unwrap(),
            pairs(&[("z", "1"), ("a", "2"), ("o", r#"{"x":true}"#)])
        );
        assert_eq!(
            parse_hash("k1:v1, k2 : http://x:80").unwrap(),
            pairs(&[("k1", "v1"), ("k2", "http://x:80")])
        );
        assert!(parse_hash("novalue").is_err());
        assert!(parse_hash("[1]").is_err());
    }
}
