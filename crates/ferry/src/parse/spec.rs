//! The time parameters of a `<parse>` section (`time_key`, `time_format`, `time_type`,
//! `keep_time_key`, `timezone`) and reading a time value with them.

use super::{ParseError, record, rfc3339, time};
use ferry_config::Section;
use ferry_proto::time::EventTime;

/// How the time field is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeParse {
    /// `time_format`, or RFC 3339 (and epoch numbers) when none is given.
    Format(Option<time::TimeFormat>),
    /// `time_type unixtime`: integer seconds.
    Unixtime,
    /// `time_type float`: seconds with a fraction.
    Float,
}

/// `time_key`, `time_format`, `time_type`, `keep_time_key`, `timezone`/`utc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeSpec {
    pub key: Option<String>,
    pub parse: TimeParse,
    /// Zone of times that carry none, in seconds east of UTC.
    pub offset: i32,
    pub keep: bool,
}

impl TimeSpec {
    /// Reads a time value from the line.
    pub fn read(&self, v: &[u8]) -> Result<EventTime, ParseError> {
        let bad = || ParseError::Time(String::from_utf8_lossy(v).into_owned());
        match &self.parse {
            TimeParse::Format(Some(f)) => f.parse(v, self.offset).ok_or_else(bad),
            // RFC 3339, or a number of seconds when the whole value is one (a date that is not
            // valid RFC 3339 is an error, not its leading year read as seconds).
            TimeParse::Format(None) => rfc3339::parse_rfc3339(v, self.offset)
                .or_else(|| {
                    let n = std::str::from_utf8(v).ok()?.trim().parse::<f64>().ok()?;
                    epoch(n, v.trim_ascii_start())
                })
                .ok_or_else(bad),
            TimeParse::Unixtime => epoch(record::leading_int(v) as f64, v).ok_or_else(bad),
            TimeParse::Float => epoch(record::leading_float(v), v).ok_or_else(bad),
        }
    }

    /// A numeric time value (JSON numbers).
    pub fn from_number(&self, secs: f64) -> Option<EventTime> {
        epoch(secs, b"0")
    }
}

fn epoch(secs: f64, text: &[u8]) -> Option<EventTime> {
    if !text.first().is_some_and(u8::is_ascii_digit) || !(0.0..4.3e9).contains(&secs) {
        return None;
    }
    EventTime::from_unix_nanos((secs * 1e9) as u128)
}

/// Presets carry their own time format; `time_format` may still override it.
pub(super) fn time_for_preset(s: &Section<'_>, mut time: TimeSpec) -> TimeSpec {
    if !s.has("time_format") {
        time.parse = TimeParse::Format(time::TimeFormat::compile("%d/%b/%Y:%H:%M:%S %z").ok());
    }
    time.key = Some("time".into());
    time
}

pub(super) fn read_time_spec(s: &Section<'_>, default_key: Option<&str>) -> TimeSpec {
    let key = s.str("time_key").or(default_key.map(str::to_string));
    let format = s.str("time_format").and_then(|f| {
        time::TimeFormat::compile(&f)
            .map_err(|e| s.error(Some("time_format"), e))
            .ok()
    });
    let parse = match s.enum_or("time_type", &["string", "unixtime", "float"], "string") {
        "unixtime" => TimeParse::Unixtime,
        "float" => TimeParse::Float,
        _ => TimeParse::Format(format),
    };
    let mut offset = 0;
    if let Some(tz) = s.str("timezone") {
        match time::parse_offset(&tz) {
            Some(o) => offset = o,
            None => s.error(
                Some("timezone"),
                format!("timezone '{tz}' is not a fixed offset such as +09:00 or UTC"),
            ),
        }
    }
    // `utc true` is the default; `localtime true` (or `utc false`) would mean the host's zone,
    // which ferry does not read: times without a zone are read in `timezone` (UTC unless set).
    let host_zone = s.opt_bool("utc") == Some(false) || s.opt_bool("localtime") == Some(true);
    if host_zone && s.str("timezone").is_none() {
        let key = if s.has("localtime") {
            "localtime"
        } else {
            "utc"
        };
        s.no_effect(
            key,
            "ferry does not read the host's zone: times without a zone are read as UTC; set timezone (+09:00) to read them in another zone",
        );
    }
    TimeSpec {
        key,
        parse,
        offset,
        keep: s.bool_or("keep_time_key", false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_config::Errors;

    // The cases of the parser filter's former time reader, now read by the one time reader.
    fn read_time(body: &str, value: &str) -> Result<EventTime, ParseError> {
        let spec = read_time_spec_of(body);
        spec.read(value.as_bytes())
    }

    fn read_time_spec_of(body: &str) -> TimeSpec {
        let text = format!("<parse>\n{body}\n</parse>\n");
        let root = ferry_config::parse_str(&text, "test.conf").unwrap();
        let errors = Errors::new();
        let s = Section::new(&root.children[0], &errors);
        let spec = read_time_spec(&s, Some("time"));
        s.abandon();
        spec
    }

    fn at(sec: u32, nsec: u32) -> EventTime {
        EventTime { sec, nsec }
    }

    #[test]
    fn numeric_text_is_epoch_seconds_by_time_type() {
        assert_eq!(
            read_time("time_type float", "1700000000.5"),
            Ok(at(1_700_000_000, 500_000_000))
        );
        assert_eq!(
            read_time("time_type unixtime", "1700000000.25"),
            Ok(at(1_700_000_000, 0))
        );
        assert_eq!(read_time("", "1700000000"), Ok(at(1_700_000_000, 0)));
        assert!(read_time("", "-1").is_err());
    }

    #[test]
    fn rfc3339_text_with_fractions_and_zones_needs_no_format() {
        assert_eq!(
            read_time("", "2023-11-14T22:13:20Z"),
            Ok(at(1_700_000_000, 0))
        );
        assert_eq!(
            read_time("", "2023-11-14 22:13:20.123 +0000"),
            Ok(at(1_700_000_000, 123_000_000))
        );
        assert_eq!(
            read_time("", "2023-11-15T07:13:20+09:00"),
            Ok(at(1_700_000_000, 0))
        );
        assert_eq!(
            read_time("", "2023-11-14T22:13:20"),
            Ok(at(1_700_000_000, 0))
        );
        assert!(read_time("", "yesterday").is_err());
        assert!(read_time("", "2023-13-14T22:13:20Z").is_err());
    }

    #[test]
    fn time_format_reads_apache_custom_and_epoch_layouts() {
        assert_eq!(
            read_time(
                "time_format %d/%b/%Y:%H:%M:%S %z",
                "14/Nov/2023:23:13:20 +0100"
            ),
            Ok(at(1_700_000_000, 0))
        );
        assert_eq!(
            read_time(
                "time_format %Y%m%d %I:%M:%S.%N %p",
                "20231114 10:13:20.5 PM"
            ),
            Ok(at(1_700_000_000, 500_000_000))
        );
        assert_eq!(
            read_time(
                "time_format %-d/%b/%Y %H:%M:%S.%3N",
                "14/Nov/2023 22:13:20.123"
            ),
            Ok(at(1_700_000_000, 123_000_000))
        );
        assert_eq!(
            read_time("time_format %s", "1700000000"),
            Ok(at(1_700_000_000, 0))
        );
        assert!(read_time("time_format %d/%b/%Y:%H:%M:%S %z", "14/Nov/2023").is_err());
    }
}
