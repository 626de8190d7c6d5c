//! Turning events into text lines: Fluentd's `<format>` and `<inject>` for the outputs that
//! print or archive records.
//!
//! Times are written in UTC. Fluentd writes local time; a ferry host's local zone is usually
//! UTC anyway (containers), and UTC makes archives comparable across hosts.

use bytes::Bytes;
use ferry_config::Section;
use ferry_proto::entries;
use ferry_proto::msgpack::Value;
use ferry_proto::time::EventTime;

/// `<format> @type ...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatKind {
    /// Fluentd's stdout format: `2026-11-21 15:19:13.123456789 +0000 tag: {"k":"v"}`.
    Stdout,
    /// One JSON object per line.
    Json,
}

/// `<inject>`: copy the tag and time into each record before formatting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InjectConfig {
    pub tag_key: Option<String>,
    pub time_key: Option<String>,
    pub time_type: TimeType,
}

/// `time_type` of `<inject>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimeType {
    /// `2026-11-21T15:19:13.123456789+00:00` (RFC 3339 with nanoseconds).
    #[default]
    String,
    /// Whole seconds since the epoch.
    Unixtime,
    /// Seconds since the epoch with nanoseconds as a fraction.
    Float,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatConfig {
    pub kind: FormatKind,
    pub inject: InjectConfig,
}

impl FormatConfig {
    /// Reads `<format>` and `<inject>` children of an output section; `default` is the
    /// output's own default format.
    pub fn from_section(section: &Section<'_>, default: FormatKind) -> Self {
        let kind = match section.child("format") {
            Some(format) => {
                let kind = match format.plugin_type() {
                    None => default,
                    Some("stdout") => FormatKind::Stdout,
                    Some("json") => FormatKind::Json,
                    Some(other) => {
                        format.error(
                            Some("@type"),
                            format!(
                                "unknown format '{other}' (this output supports: stdout, json)"
                            ),
                        );
                        default
                    }
                };
                // Fluentd's stdout formatter takes `output_type json` (the only kind ferry has).
                let output_type = format.str_or("output_type", "json");
                if output_type != "json" {
                    format.error(
                        Some("output_type"),
                        format!("output_type '{output_type}' is not supported (only json)"),
                    );
                }
                format.finish();
                kind
            }
            None => default,
        };
        let inject = match section.child("inject") {
            Some(inject) => {
                let time_type =
                    match inject.enum_or("time_type", &["string", "unixtime", "float"], "string") {
                        "unixtime" => TimeType::Unixtime,
                        "float" => TimeType::Float,
                        _ => TimeType::String,
                    };
                let cfg = InjectConfig {
                    tag_key: inject.str("tag_key"),
                    time_key: inject.str("time_key"),
                    time_type,
                };
                inject.finish();
                cfg
            }
            None => InjectConfig::default(),
        };
        Self { kind, inject }
    }

    /// Appends one line per event of `stream` to `out`. Entries that fail to decode are
    /// counted in the result and skipped: inputs validated them, so this means a bug, not
    /// bad input, and it must not stop the output.
    pub fn write_lines(&self, tag: &str, stream: &[u8], out: &mut String) -> u64 {
        let mut broken = 0;
        for entry in entries::iter(stream) {
            let Ok(entry) = entry else {
                broken += 1;
                break;
            };
            let Ok((mut record, _)) = Value::decode(entry.record) else {
                broken += 1;
                continue;
            };
            self.inject(&mut record, tag, entry.time);
            match self.kind {
                FormatKind::Stdout => {
                    write_stdout_time(entry.time, out);
                    out.push(' ');
                    out.push_str(tag);
                    out.push_str(": ");
                    record.write_json(out);
                }
                FormatKind::Json => record.write_json(out),
            }
            out.push('\n');
        }
        broken
    }

    fn inject(&self, record: &mut Value, tag: &str, time: EventTime) {
        let Value::Map(pairs) = record else { return };
        if let Some(key) = &self.inject.tag_key {
            pairs.push((str_value(key), str_value(tag)));
        }
        if let Some(key) = &self.inject.time_key {
            let value = match self.inject.time_type {
                TimeType::String => {
                    let mut s = String::new();
                    write_rfc3339(time, &mut s);
                    str_value(&s)
                }
                TimeType::Unixtime => Value::UInt(u64::from(time.sec)),
                TimeType::Float => Value::F64(f64::from(time.sec) + f64::from(time.nsec) / 1e9),
            };
            pairs.push((str_value(key), value));
        }
    }
}

fn str_value(s: &str) -> Value {
    Value::Str(Bytes::copy_from_slice(s.as_bytes()))
}

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The UTC calendar fields of an event time.
pub fn utc_fields(sec: u32) -> (i64, u32, u32, u32, u32, u32) {
    let secs = i64::from(sec);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    (
        y,
        mo,
        d,
        (rem / 3600) as u32,
        (rem / 60 % 60) as u32,
        (rem % 60) as u32,
    )
}

/// `2026-11-21 15:19:13.123456789 +0000`, Fluentd's stdout time.
pub fn write_stdout_time(t: EventTime, out: &mut String) {
    use std::fmt::Write;
    let (y, mo, d, h, mi, s) = utc_fields(t.sec);
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:09} +0000",
        t.nsec
    );
}

/// `2026-11-21T15:19:13.123456789+00:00`.
pub fn write_rfc3339(t: EventTime, out: &mut String) {
    use std::fmt::Write;
    let (y, mo, d, h, mi, s) = utc_fields(t.sec);
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:09}+00:00",
        t.nsec
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_conversion_matches_known_dates() {
        assert_eq!(utc_fields(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc_fields(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        assert_eq!(utc_fields(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc_fields(u32::MAX), (2106, 2, 7, 6, 28, 15));
    }

    #[test]
    fn stdout_time_has_nanoseconds_and_utc_offset() {
        let mut s = String::new();
        write_stdout_time(
            EventTime {
                sec: 1_700_000_000,
                nsec: 123_456_789,
            },
            &mut s,
        );
        assert_eq!(s, "2023-11-14 22:13:20.123456789 +0000");
    }
}
