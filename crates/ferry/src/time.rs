//! The calendar, time zones and `strftime`: the one place ferry turns seconds into dates and
//! dates into text (formatters, file and tail paths, log lines). Reading times out of text is
//! [`crate::parse::time`], which uses this calendar and [`zone`].
//!
//! Every time is written in a [`Zone`]: as in Fluentd, the host's zone unless the
//! configuration says `utc true`, `localtime false` or `timezone` (and for time slices
//! `timekey_use_utc` or `timekey_zone`). [`Strftime`] compiles a format once; the directives
//! it knows are listed on [`Strftime::parse`], anything else is a configuration error.

pub mod zone;

use ferry_proto::time::EventTime;
use std::fmt::Write;
pub use zone::Zone;

/// Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

/// Days since 1970-01-01 of a civil date (the inverse of `civil_from_days`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The UTC calendar fields of an event time: year, month, day, hour, minute, second.
pub fn utc_fields(sec: u32) -> (i64, u32, u32, u32, u32, u32) {
    fields(i64::from(sec))
}

/// The calendar fields of `secs` counted from 1970-01-01 00:00 (UTC seconds, or a local time's
/// seconds counted the same way).
pub fn fields(secs: i64) -> (i64, u32, u32, u32, u32, u32) {
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

/// `2026-11-21 15:19:13.123456789 +0900`, Fluentd's stdout time (in the host's zone there).
pub fn write_stdout_time(t: EventTime, zone: &Zone, out: &mut String) {
    let offset = zone.offset_at(i64::from(t.sec));
    let (y, mo, d, h, mi, s) = fields(i64::from(t.sec) + i64::from(offset));
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}.{:09} ",
        t.nsec
    );
    write_offset(offset, false, out);
}

/// `2026-11-21T15:19:13.123456789+09:00`.
pub fn write_rfc3339(t: EventTime, zone: &Zone, out: &mut String) {
    let offset = zone.offset_at(i64::from(t.sec));
    let (y, mo, d, h, mi, s) = fields(i64::from(t.sec) + i64::from(offset));
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:09}",
        t.nsec
    );
    write_offset(offset, true, out);
}

/// `+0900`, or `+09:00` with `colon` (seconds of an offset are not written, as in Ruby).
fn write_offset(offset: i32, colon: bool, out: &mut String) {
    let sign = if offset < 0 { '-' } else { '+' };
    let minutes = offset.unsigned_abs() / 60;
    let (h, m) = (minutes / 60, minutes % 60);
    let _ = if colon {
        write!(out, "{sign}{h:02}:{m:02}")
    } else {
        write!(out, "{sign}{h:02}{m:02}")
    };
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Lit(String),
    Year,
    Year2,
    Month,
    Day,
    DaySpace,
    Hour,
    Hour12,
    Minute,
    Second,
    AmPm,
    YearDay,
    MonthAbbr,
    MonthName,
    WeekdayAbbr,
    WeekdayName,
    /// `%z` (`+0000`) or `%:z` (`+00:00`).
    Offset(bool),
    ZoneName,
    Epoch,
    /// Fraction of a second with this many digits (`%L` = 3, `%N` = 9, `%6N` = 6).
    Frac(u8),
}

/// A compiled `strftime` format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Strftime {
    source: String,
    items: Vec<Item>,
}

impl Strftime {
    /// Compiles `format`. Directives: `%Y %y %m %d %e %j %H %I %M %S %p %b %h %B %a %A %z %:z
    /// %Z %s %L %N %3N %6N %9N %F %T %D %R %%`. `%z` is the zone's offset (`+0900`), `%Z` what
    /// [`Zone::abbreviation`] says.
    pub fn parse(format: &str) -> Result<Self, String> {
        let mut items = Vec::new();
        let mut lit = String::new();
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                lit.push(c);
                continue;
            }
            let mut d = chars.next().ok_or("format ends with '%'")?;
            let mut digits = None;
            if let Some(n) = d.to_digit(10) {
                digits = Some(n as u8);
                d = chars.next().ok_or("format ends inside a directive")?;
            }
            if d == ':' {
                if digits.is_some() || chars.next() != Some('z') {
                    return Err("only '%:z' may use ':'".into());
                }
                push(&mut items, &mut lit, Item::Offset(true));
                continue;
            }
            let item = match (d, digits) {
                ('N', Some(n @ 1..=9)) => Item::Frac(n),
                (_, Some(_)) => {
                    return Err(format!("'%{}{d}' is not supported", digits.unwrap_or(0)));
                }
                ('%', None) => {
                    lit.push('%');
                    continue;
                }
                ('Y', None) => Item::Year,
                ('y', None) => Item::Year2,
                ('m', None) => Item::Month,
                ('d', None) => Item::Day,
                ('e', None) => Item::DaySpace,
                ('j', None) => Item::YearDay,
                ('H', None) => Item::Hour,
                ('I', None) => Item::Hour12,
                ('M', None) => Item::Minute,
                ('S', None) => Item::Second,
                ('p', None) => Item::AmPm,
                ('b' | 'h', None) => Item::MonthAbbr,
                ('B', None) => Item::MonthName,
                ('a', None) => Item::WeekdayAbbr,
                ('A', None) => Item::WeekdayName,
                ('z', None) => Item::Offset(false),
                ('Z', None) => Item::ZoneName,
                ('s', None) => Item::Epoch,
                ('L', None) => Item::Frac(3),
                ('N', None) => Item::Frac(9),
                ('F', None) => {
                    for i in [
                        Item::Year,
                        lit_item("-"),
                        Item::Month,
                        lit_item("-"),
                        Item::Day,
                    ] {
                        push(&mut items, &mut lit, i);
                    }
                    continue;
                }
                ('T', None) => {
                    let t = [
                        Item::Hour,
                        lit_item(":"),
                        Item::Minute,
                        lit_item(":"),
                        Item::Second,
                    ];
                    for i in t {
                        push(&mut items, &mut lit, i);
                    }
                    continue;
                }
                ('R', None) => {
                    for i in [Item::Hour, lit_item(":"), Item::Minute] {
                        push(&mut items, &mut lit, i);
                    }
                    continue;
                }
                ('D', None) => {
                    let t = [
                        Item::Month,
                        lit_item("/"),
                        Item::Day,
                        lit_item("/"),
                        Item::Year2,
                    ];
                    for i in t {
                        push(&mut items, &mut lit, i);
                    }
                    continue;
                }
                (other, None) => return Err(format!("'%{other}' is not supported")),
            };
            push(&mut items, &mut lit, item);
        }
        if !lit.is_empty() {
            items.push(Item::Lit(lit));
        }
        Ok(Self {
            source: format.to_string(),
            items,
        })
    }

    /// The format as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the format writes any part of the time (a path without one names one file).
    pub fn has_directives(&self) -> bool {
        self.items.iter().any(|i| !matches!(i, Item::Lit(_)))
    }

    /// Whether the output depends on the fraction of a second.
    pub fn uses_fraction(&self) -> bool {
        self.items.iter().any(|i| matches!(i, Item::Frac(_)))
    }

    /// Appends the time `t` as seen in `zone`.
    pub fn write(&self, t: EventTime, zone: &Zone, out: &mut String) {
        let offset = zone.offset_at(i64::from(t.sec));
        let local = i64::from(t.sec) + i64::from(offset);
        let (y, mo, d, h, mi, s) = fields(local);
        let days = local.div_euclid(86_400);
        let month = MONTHS.get(mo as usize - 1).copied().unwrap_or("");
        let weekday = WEEKDAYS
            .get(usize::try_from((days + 4).rem_euclid(7)).unwrap_or(0))
            .copied()
            .unwrap_or("");
        for item in &self.items {
            let _ = match item {
                Item::Lit(l) => {
                    out.push_str(l);
                    Ok(())
                }
                Item::Year => write!(out, "{y:04}"),
                Item::Year2 => write!(out, "{:02}", y.rem_euclid(100)),
                Item::Month => write!(out, "{mo:02}"),
                Item::Day => write!(out, "{d:02}"),
                Item::DaySpace => write!(out, "{d:2}"),
                Item::YearDay => {
                    let doy = days - days_from_civil(y, 1, 1) + 1;
                    write!(out, "{doy:03}")
                }
                Item::Hour => write!(out, "{h:02}"),
                Item::Hour12 => write!(out, "{:02}", if h % 12 == 0 { 12 } else { h % 12 }),
                Item::Minute => write!(out, "{mi:02}"),
                Item::Second => write!(out, "{s:02}"),
                Item::AmPm => write!(out, "{}", if h < 12 { "AM" } else { "PM" }),
                Item::MonthAbbr => write!(out, "{}", month.get(..3).unwrap_or(month)),
                Item::MonthName => write!(out, "{month}"),
                Item::WeekdayAbbr => write!(out, "{}", weekday.get(..3).unwrap_or(weekday)),
                Item::WeekdayName => write!(out, "{weekday}"),
                Item::Offset(colon) => {
                    write_offset(offset, *colon, out);
                    Ok(())
                }
                Item::ZoneName => {
                    out.push_str(&zone.abbreviation(i64::from(t.sec)));
                    Ok(())
                }
                Item::Epoch => write!(out, "{}", t.sec),
                Item::Frac(n) => {
                    let nsec = t.nsec.min(999_999_999);
                    let scaled = nsec / 10u32.pow(9 - u32::from(*n));
                    write!(out, "{scaled:0width$}", width = usize::from(*n))
                }
            };
        }
    }

    /// The time `unix_secs` (clamped to what an event time holds) as seen in `zone`.
    pub fn format_at(&self, unix_secs: i64, zone: &Zone) -> String {
        let sec = u32::try_from(unix_secs.clamp(0, i64::from(u32::MAX))).unwrap_or(u32::MAX);
        self.format(EventTime { sec, nsec: 0 }, zone)
    }

    /// The formatted time as a new string.
    pub fn format(&self, t: EventTime, zone: &Zone) -> String {
        let mut s = String::new();
        self.write(t, zone, &mut s);
        s
    }
}

fn lit_item(s: &str) -> Item {
    Item::Lit(s.to_string())
}

fn push(items: &mut Vec<Item>, lit: &mut String, item: Item) {
    if !lit.is_empty() {
        items.push(Item::Lit(std::mem::take(lit)));
    }
    items.push(item);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_roundtrip_over_four_centuries() {
        for days in (-200_000..200_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }

    #[test]
    fn format_at_expands_path_dates_in_a_zone() {
        // 2024-02-29 13:05:09 UTC
        let t = days_from_civil(2024, 2, 29) * 86_400 + 13 * 3600 + 5 * 60 + 9;
        let f = |p: &str, secs: i64, offset: i32| {
            Strftime::parse(p)
                .unwrap()
                .format_at(secs, &Zone::fixed(offset))
        };
        assert_eq!(
            f("/var/log/app.%Y%m%d-%H%M%S.%j.%b.log", t, 0),
            "/var/log/app.20240229-130509.060.Feb.log"
        );
        assert_eq!(f("/plain/path", t, 0), "/plain/path");
        assert_eq!(f("%Y", t - 14 * 3600, 9 * 3600), "2024");
        assert_eq!(f("%Y%m%d", t - 14 * 3600, 9 * 3600), "20240229");
    }

    fn t(sec: u32, nsec: u32) -> EventTime {
        EventTime { sec, nsec }
    }

    #[test]
    fn calendar_conversion_matches_known_dates() {
        assert_eq!(utc_fields(0), (1970, 1, 1, 0, 0, 0));
        assert_eq!(utc_fields(1_700_000_000), (2023, 11, 14, 22, 13, 20));
        assert_eq!(utc_fields(951_782_400), (2000, 2, 29, 0, 0, 0));
        assert_eq!(utc_fields(u32::MAX), (2106, 2, 7, 6, 28, 15));
        assert_eq!(days_from_civil(2023, 11, 14), 1_700_000_000 / 86_400);
        assert_eq!(days_from_civil(2000, 2, 29), 951_782_400 / 86_400);
    }

    #[test]
    fn stdout_time_has_nanoseconds_and_utc_offset() {
        let mut s = String::new();
        write_stdout_time(t(1_700_000_000, 123_456_789), &Zone::UTC, &mut s);
        assert_eq!(s, "2023-11-14 22:13:20.123456789 +0000");
    }

    #[test]
    fn times_are_written_in_their_zone_with_its_offset_and_name() {
        let at = t(1_700_000_000, 123_456_789);
        let tokyo = Zone::parse("Asia/Tokyo").unwrap();
        let f = Strftime::parse("%Y-%m-%d %H:%M:%S %z %:z [%Z] %s").unwrap();
        assert_eq!(
            f.format(at, &tokyo),
            "2023-11-15 07:13:20 +0900 +09:00 [] 1700000000"
        );
        assert_eq!(
            f.format(at, &Zone::fixed(-(5 * 3600 + 30 * 60))),
            "2023-11-14 16:43:20 -0530 -05:30 [] 1700000000"
        );
        assert_eq!(
            f.format(at, &Zone::UTC),
            "2023-11-14 22:13:20 +0000 +00:00 [UTC] 1700000000"
        );
        let mut s = String::new();
        write_stdout_time(at, &tokyo, &mut s);
        assert_eq!(s, "2023-11-15 07:13:20.123456789 +0900");
        s.clear();
        write_rfc3339(at, &Zone::fixed(-3600), &mut s);
        assert_eq!(s, "2023-11-14T21:13:20.123456789-01:00");
        // The first second of 1970 in a zone west of UTC is still 1969 there.
        assert_eq!(
            Strftime::parse("%Y-%m-%d %H")
                .unwrap()
                .format(t(0, 0), &Zone::fixed(-3600)),
            "1969-12-31 23"
        );
    }

    #[test]
    fn strftime_writes_fluentds_out_file_time_and_path_slices() {
        let f = Strftime::parse("%Y-%m-%dT%H:%M:%S%z").unwrap();
        assert_eq!(
            f.format(t(1_700_000_000, 5), &Zone::UTC),
            "2023-11-14T22:13:20+0000"
        );
        let slice = Strftime::parse("/logs/%Y/%m/%d/app.%Y%m%d%H").unwrap();
        assert_eq!(
            slice.format(t(1_700_000_000, 0), &Zone::UTC),
            "/logs/2023/11/14/app.2023111422"
        );
        assert!(slice.has_directives());
        assert!(!Strftime::parse("/plain/path").unwrap().has_directives());
    }

    #[test]
    fn strftime_covers_names_fractions_and_composites() {
        let f = Strftime::parse("%a %A %b %B %e %j %I%p %L %6N %N %s %F %T %:z %Z %%").unwrap();
        assert_eq!(
            f.format(t(1_700_000_000, 123_456_789), &Zone::UTC),
            "Tue Tuesday Nov November 14 318 10PM 123 123456 123456789 1700000000 \
             2023-11-14 22:13:20 +00:00 UTC %"
        );
        assert!(f.uses_fraction());
    }

    #[test]
    fn unknown_directives_are_errors() {
        assert!(Strftime::parse("%Q").is_err());
        assert!(Strftime::parse("abc%").is_err());
        assert!(Strftime::parse("%3Y").is_err());
    }
}
