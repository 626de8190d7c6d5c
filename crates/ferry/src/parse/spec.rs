//! The time parameters of a `<parse>` section (`time_key`, `time_format`, `time_type`,
//! `keep_time_key`, `localtime`, `utc`, `timezone`) and reading a time value with them.

use super::{ParseError, record, rfc3339, time};
use crate::time::{Zone, zone};
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

/// `time_key`, `time_format`, `time_type`, `keep_time_key`, `localtime`/`utc`/`timezone`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeSpec {
    pub key: Option<String>,
    pub parse: TimeParse,
    /// Zone of times that carry none.
    pub zone: Zone,
    pub keep: bool,
}

impl TimeSpec {
    /// Reads a time value from the line.
    pub fn read(&self, v: &[u8]) -> Result<EventTime, ParseError> {
        let bad = || ParseError::Time(String::from_utf8_lossy(v).into_owned());
        match &self.parse {
            TimeParse::Format(Some(f)) => f.parse(v, &self.zone).ok_or_else(bad),
            // RFC 3339, or a number of seconds when the whole value is one (a date that is not
            // valid RFC 3339 is an error, not its leading year read as seconds).
            TimeParse::Format(None) => rfc3339::parse_rfc3339(v, &self.zone)
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

/// The time rules of a `<parse>` section with no time parameters written.
pub fn default_time_spec(key: Option<&str>) -> TimeSpec {
    TimeSpec {
        key: key.map(str::to_string),
        parse: TimeParse::Format(None),
        zone: Zone::host(),
        keep: false,
    }
}

/// Presets carry their own time format; `time_format` may still override it.
pub(super) fn time_for_preset(s: &Section<'_>, mut time: TimeSpec) -> TimeSpec {
    if !s.has("time_format") {
        time.parse = TimeParse::Format(time::TimeFormat::compile("%d/%b/%Y:%H:%M:%S %z").ok());
    }
    time.key = Some("time".into());
    time
}

/// The time parameters of a `<parse>` section, `default_key` when `time_key` is not written.
pub fn read_time_spec(s: &Section<'_>, default_key: Option<&str>) -> TimeSpec {
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
    TimeSpec {
        key,
        parse,
        zone: zone::from_section(s),
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
        let text = format!("<parse>\n{}\n</parse>\n", crate::parse::tests::in_utc(body));
        let root = ferry_config::parse_str(&text, "test.conf").unwrap();
        let errors = Errors::new();
        let s = Section::new(&root.children[0], &errors);
        let spec = read_time_spec(&s, Some("time"));
        s.abandon();
        spec
    }

    /// The zone a `<parse>` with `body` reads zone-less times in, and its errors.
    fn zone_of(body: &str) -> (Zone, Result<(), ferry_config::ConfigErrors>) {
        let text = format!("<parse>\n{body}\n</parse>\n");
        let root = ferry_config::parse_str(&text, "test.conf").unwrap();
        let errors = Errors::new();
        let s = Section::new(&root.children[0], &errors);
        let spec = read_time_spec(&s, Some("time"));
        s.finish();
        (spec.zone, errors.into_result(()))
    }

    #[test]
    fn times_without_a_zone_are_read_in_the_hosts_zone_unless_told_otherwise() {
        assert_eq!(
            zone_of("").0,
            Zone::host(),
            "Fluentd's localtime is true by default"
        );
        assert_eq!(zone_of("localtime true").0, Zone::host());
        assert_eq!(zone_of("utc false").0, Zone::host());
        assert_eq!(zone_of("utc true").0, Zone::UTC);
        assert_eq!(zone_of("localtime false").0, Zone::UTC);
        assert_eq!(zone_of("localtime false\nutc true").0, Zone::UTC);
        assert_eq!(zone_of("timezone +09:00").0, Zone::fixed(9 * 3600));
        let tokyo = zone_of("timezone Asia/Tokyo\nutc true");
        assert_eq!(tokyo.0, Zone::parse("Asia/Tokyo").unwrap(), "timezone wins");
        assert!(tokyo.1.is_ok());
        let both = zone_of("localtime true\nutc true")
            .1
            .unwrap_err()
            .to_string();
        assert!(both.contains("test.conf:3") && both.contains("both of utc and localtime"));
        let unknown = zone_of("timezone Europe/Pariss").1.unwrap_err().to_string();
        assert!(
            unknown.contains("test.conf:2") && unknown.contains("did you mean 'Europe/Paris'"),
            "{unknown}"
        );
        assert!(zone_of("timezone JST").1.is_err());
    }

    #[test]
    fn a_named_zone_reads_times_on_both_sides_of_its_transitions() {
        let read = |value: &str| {
            read_time(
                "time_format %Y-%m-%d %H:%M:%S\ntimezone America/New_York",
                value,
            )
            .unwrap()
            .sec
        };
        // 2026-03-08 01:30 EST and 03:30 EDT are an hour apart; 2026-11-01 00:30 EDT and
        // 02:30 EST are three.
        assert_eq!(read("2026-03-08 01:30:00"), 1_772_951_400);
        assert_eq!(read("2026-03-08 03:30:00"), 1_772_951_400 + 3600);
        assert_eq!(read("2026-11-01 00:30:00"), 1_793_507_400);
        assert_eq!(read("2026-11-01 02:30:00"), 1_793_507_400 + 3 * 3600);
        // RFC 3339 without an offset is read in the zone too.
        assert_eq!(
            read_time("timezone Asia/Tokyo", "2026-12-07T10:00:00")
                .unwrap()
                .sec,
            1_796_605_200
        );
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
