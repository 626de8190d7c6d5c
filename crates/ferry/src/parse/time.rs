//! Reading times out of log lines with `time_format`: a `strptime` subset. Formats without one
//! are [`super::rfc3339`]; writing times (`strftime`) and the calendar are [`crate::time`].
//!
//! Supported directives: `%Y %y %m %d %e %j %H %I %M %S %p %N %L %z %:z %Z %b %h %B %a %A %s
//! %T %F %D %R %%`, with a width (`%3N`: milliseconds) and padding flags (`%-d`). A space in
//! the format matches any run of whitespace (also none), as Ruby's `strptime` does. `%N` takes
//! 1 to 9 digits as a fraction of a second; `%z` takes `Z`, `+hhmm`, `+hh:mm` and `+hh`. A format without a year (syslog's `%b %d %H:%M:%S`) takes the
//! current year, or the previous one when that would put the time more than a day ahead.
//!
//! Times without a zone are read in the configured [`Zone`]: the host's unless `utc true`,
//! `localtime false` or `timezone` says otherwise, as in Fluentd.

use crate::time::zone::numeric_offset;
use crate::time::{Zone, civil_from_days, days_from_civil};
use ferry_proto::time::EventTime;
use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The offset a line writes for its time, in seconds east of UTC: `Z`, `UTC`, `GMT`,
/// `+09:00`, `-0500` or `+09`.
pub fn parse_offset(s: &str) -> Option<i32> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("z") || t.eq_ignore_ascii_case("utc") || t == "GMT" {
        return Some(0);
    }
    numeric_offset(t)?.ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Lit(u8),
    Space,
    Year,
    Year2,
    Month,
    MonthName,
    Day,
    DayOfYear,
    Hour,
    Hour12,
    AmPm,
    Minute,
    Second,
    Frac,
    /// A fraction of at most this many digits.
    FracDigits(u8),
    Zone,
    ZoneName,
    Weekday,
    Epoch,
}

/// A compiled `time_format`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeFormat {
    items: Vec<Item>,
    has_year: bool,
}

/// The fields a format read.
#[derive(Default)]
struct Parts {
    year: Option<i64>,
    month: u32,
    day: u32,
    yday: Option<u32>,
    hour: u32,
    minute: u32,
    second: u32,
    nsec: u32,
    pm: Option<bool>,
    offset: Option<i32>,
    epoch: Option<i64>,
}

impl TimeFormat {
    /// Compiles `format`; an unknown directive is an error naming it.
    pub fn compile(format: &str) -> Result<Self, String> {
        let mut items = Vec::new();
        let mut bytes = format.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let Some(mut d) = bytes.next() else {
                    return Err("format ends with '%'".into());
                };
                // Padding flags (`%-d`, `%_H`, `%0e`, `%^b`, `%#b`) change nothing when reading.
                while matches!(d, b'-' | b'_' | b'0' | b'^' | b'#') {
                    d = bytes.next().ok_or("format ends inside a directive")?;
                }
                // A width: `%3N` reads at most 3 fraction digits (milliseconds); elsewhere it is
                // the most digits read, which the fields' own limits already are.
                let mut width = 0u32;
                while d.is_ascii_digit() {
                    width = (width * 10 + u32::from(d - b'0')).min(99);
                    d = bytes.next().ok_or("format ends inside a directive")?;
                }
                let frac: [Item; 1];
                let expanded: &[Item] = match d {
                    b'N' | b'L' if width > 0 => {
                        frac = [Item::FracDigits(width.clamp(1, 9) as u8)];
                        &frac
                    }
                    b'Y' => &[Item::Year],
                    b'y' => &[Item::Year2],
                    b'm' => &[Item::Month],
                    b'b' | b'h' | b'B' => &[Item::MonthName],
                    b'd' | b'e' => &[Item::Day],
                    b'j' => &[Item::DayOfYear],
                    b'H' | b'k' => &[Item::Hour],
                    b'I' | b'l' => &[Item::Hour12],
                    b'p' | b'P' => &[Item::AmPm],
                    b'M' => &[Item::Minute],
                    b'S' => &[Item::Second],
                    b'N' | b'f' => &[Item::Frac],
                    b'L' => &[Item::FracDigits(3)],
                    b'z' => &[Item::Zone],
                    b'Z' => &[Item::ZoneName],
                    b'a' | b'A' => &[Item::Weekday],
                    b's' => &[Item::Epoch],
                    b'T' => &[
                        Item::Hour,
                        Item::Lit(b':'),
                        Item::Minute,
                        Item::Lit(b':'),
                        Item::Second,
                    ],
                    b'R' => &[Item::Hour, Item::Lit(b':'), Item::Minute],
                    b'F' => &[
                        Item::Year,
                        Item::Lit(b'-'),
                        Item::Month,
                        Item::Lit(b'-'),
                        Item::Day,
                    ],
                    b'D' => &[
                        Item::Month,
                        Item::Lit(b'/'),
                        Item::Day,
                        Item::Lit(b'/'),
                        Item::Year2,
                    ],
                    b'%' => &[Item::Lit(b'%')],
                    b':' if bytes.clone().next() == Some(b'z') => {
                        bytes.next();
                        &[Item::Zone]
                    }
                    other => {
                        return Err(format!(
                            "time_format directive '%{}' is not supported",
                            other as char
                        ));
                    }
                };
                items.extend_from_slice(expanded);
            } else if b.is_ascii_whitespace() {
                if items.last() != Some(&Item::Space) {
                    items.push(Item::Space);
                }
            } else {
                items.push(Item::Lit(b));
            }
        }
        let has_year = items
            .iter()
            .any(|i| matches!(i, Item::Year | Item::Year2 | Item::Epoch));
        Ok(Self { items, has_year })
    }

    /// Reads `s` as a whole (trailing whitespace allowed); `zone` is the zone of times that
    /// carry none.
    pub fn parse(&self, s: &[u8], zone: &Zone) -> Option<EventTime> {
        let mut p = Parts::default();
        let mut pos = 0usize;
        for item in &self.items {
            pos = read_item(*item, s, pos, &mut p)?;
        }
        if s.get(pos..)?.iter().any(|b| !b.is_ascii_whitespace()) {
            return None;
        }
        self.resolve(p, zone)
    }

    fn resolve(&self, p: Parts, zone: &Zone) -> Option<EventTime> {
        if let Some(epoch) = p.epoch {
            return EventTime::from_unix_nanos(
                u128::try_from(epoch).ok()? * 1_000_000_000 + u128::from(p.nsec),
            );
        }
        let mut hour = p.hour;
        match p.pm {
            Some(true) if hour < 12 => hour += 12,
            Some(false) if hour == 12 => hour = 0,
            _ => {}
        }
        let tod = i64::from(hour) * 3600 + i64::from(p.minute) * 60 + i64::from(p.second);
        let to_unix = |wall: i64| match p.offset {
            Some(offset) => wall - i64::from(offset),
            None => zone.wall_to_unix(wall),
        };
        let at = |year: i64| -> Option<i64> {
            let days = match p.yday {
                Some(yday) => days_from_civil(year, 1, 1) + i64::from(yday) - 1,
                None => {
                    let (m, d) = (p.month.max(1), p.day.max(1));
                    if m > 12 || d > 31 {
                        return None;
                    }
                    days_from_civil(year, m, d)
                }
            };
            Some(to_unix(days * 86_400 + tod))
        };
        let secs = match p.year {
            Some(y) if self.has_year => at(y)?,
            _ => {
                // No year in the line: this year, unless that is more than a day ahead (a
                // December line read in January).
                let now = unix_now();
                let offset = p.offset.unwrap_or_else(|| zone.offset_at(now));
                let (year, _, _) = civil_from_days((now + i64::from(offset)).div_euclid(86_400));
                let this = at(year)?;
                if this > now + 86_400 {
                    at(year - 1)?
                } else {
                    this
                }
            }
        };
        if hour > 23 || p.minute > 59 || p.second > 60 {
            return None;
        }
        EventTime::from_unix_nanos(u128::try_from(secs).ok()? * 1_000_000_000 + u128::from(p.nsec))
    }
}

pub(super) fn digits(s: &[u8], pos: usize, min: usize, max: usize) -> Option<(u64, usize, usize)> {
    let mut v = 0u64;
    let mut n = 0;
    while n < max {
        match s.get(pos + n) {
            Some(b) if b.is_ascii_digit() => {
                v = v * 10 + u64::from(b - b'0');
                n += 1;
            }
            _ => break,
        }
    }
    (n >= min).then_some((v, pos + n, n))
}

fn name_index(s: &[u8], pos: usize, names: &[&str]) -> Option<(usize, usize)> {
    let rest = s.get(pos..)?;
    for (i, name) in names.iter().enumerate() {
        let n = name.len();
        if rest.len() >= n && rest[..n].eq_ignore_ascii_case(name.as_bytes()) {
            // Skip the rest of a full name (`January`, `Monday`).
            let mut end = pos + n;
            while s.get(end).is_some_and(u8::is_ascii_alphabetic) {
                end += 1;
            }
            return Some((i, end));
        }
    }
    None
}

fn read_item(item: Item, s: &[u8], pos: usize, p: &mut Parts) -> Option<usize> {
    let num = |min, max| digits(s, pos, min, max);
    Some(match item {
        Item::Lit(b) => {
            if *s.get(pos)? != b {
                return None;
            }
            pos + 1
        }
        Item::Space => {
            let mut end = pos;
            while s.get(end).is_some_and(u8::is_ascii_whitespace) {
                end += 1;
            }
            end
        }
        Item::Year => {
            let (neg, start) = if s.get(pos) == Some(&b'-') {
                (true, pos + 1)
            } else {
                (false, pos)
            };
            let (v, end, _) = digits(s, start, 4, 4)?;
            p.year = Some(if neg { -(v as i64) } else { v as i64 });
            end
        }
        Item::Year2 => {
            let (v, end, _) = num(2, 2)?;
            p.year = Some(if v < 69 {
                2000 + v as i64
            } else {
                1900 + v as i64
            });
            end
        }
        Item::Month => {
            let (v, end, _) = num(1, 2)?;
            p.month = u32::try_from(v).ok()?;
            end
        }
        Item::MonthName => {
            let (i, end) = name_index(s, pos, &MONTHS)?;
            p.month = i as u32 + 1;
            end
        }
        Item::Day => {
            let start = if s.get(pos) == Some(&b' ') {
                pos + 1
            } else {
                pos
            };
            let (v, end, _) = digits(s, start, 1, 2)?;
            p.day = u32::try_from(v).ok()?;
            end
        }
        Item::DayOfYear => {
            let (v, end, _) = num(1, 3)?;
            p.yday = Some(u32::try_from(v).ok()?.max(1));
            end
        }
        Item::Hour | Item::Hour12 => {
            let (v, end, _) = num(1, 2)?;
            p.hour = u32::try_from(v).ok()?;
            end
        }
        Item::AmPm => {
            let rest = s.get(pos..pos + 2)?;
            p.pm = Some(match rest.to_ascii_lowercase().as_slice() {
                b"am" => false,
                b"pm" => true,
                _ => return None,
            });
            pos + 2
        }
        Item::Minute => {
            let (v, end, _) = num(1, 2)?;
            p.minute = u32::try_from(v).ok()?;
            end
        }
        Item::Second => {
            let (v, end, _) = num(1, 2)?;
            p.second = u32::try_from(v).ok()?;
            end
        }
        Item::Frac => {
            let (v, end, n) = num(1, 9)?;
            p.nsec = (v * 10u64.pow(9 - n as u32)) as u32;
            // Digits past nanoseconds are dropped.
            let mut end = end;
            while s.get(end).is_some_and(u8::is_ascii_digit) {
                end += 1;
            }
            end
        }
        Item::FracDigits(w) => {
            let (v, end, n) = num(1, usize::from(w))?;
            p.nsec = (v * 10u64.pow(9 - n as u32)) as u32;
            end
        }
        Item::Zone => {
            let mut end = pos;
            while s
                .get(end)
                .is_some_and(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b':'))
            {
                end += 1;
            }
            let text = std::str::from_utf8(s.get(pos..end)?).ok()?;
            p.offset = Some(parse_offset(text)?);
            end
        }
        Item::ZoneName => {
            let mut end = pos;
            while s.get(end).is_some_and(u8::is_ascii_alphabetic) {
                end += 1;
            }
            let text = std::str::from_utf8(s.get(pos..end)?).ok()?;
            p.offset = Some(parse_offset(text)?);
            end
        }
        Item::Weekday => name_index(s, pos, &WEEKDAYS)?.1,
        Item::Epoch => {
            let (v, end, _) = num(1, 19)?;
            p.epoch = Some(i64::try_from(v).ok()?);
            end
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(fmt: &str, s: &str) -> Option<EventTime> {
        TimeFormat::compile(fmt)
            .unwrap()
            .parse(s.as_bytes(), &Zone::UTC)
    }

    #[test]
    fn apache_time_with_zone_is_read_in_that_zone() {
        let t = parse("%d/%b/%Y:%H:%M:%S %z", "10/Oct/2000:13:55:36 -0700").unwrap();
        assert_eq!(t, EventTime::new(971_211_336, 0));
    }

    #[test]
    fn nanoseconds_and_colon_zones_are_read() {
        let t = parse(
            "%Y-%m-%dT%H:%M:%S.%N%z",
            "2016-10-06T00:17:09.669794202+09:00",
        )
        .unwrap();
        assert_eq!(t, EventTime::new(1_475_680_629, 669_794_202));
        let short = parse("%Y-%m-%d %H:%M:%S.%N", "2016-10-06 00:17:09.5").unwrap();
        assert_eq!(short.nsec, 500_000_000);
        let ms = parse("%Y-%m-%d %H:%M:%S,%L", "2016-10-06 00:17:09,123").unwrap();
        assert_eq!(ms.nsec, 123_000_000);
    }

    #[test]
    fn a_format_without_year_takes_a_year_that_is_not_in_the_future() {
        let t = parse("%b %d %H:%M:%S", "Jan  1 00:00:00").unwrap();
        let now = unix_now();
        assert!(i64::from(t.sec) <= now + 86_400);
        assert!(i64::from(t.sec) > now - 366 * 86_400 - 86_400);
    }

    #[test]
    fn trailing_text_and_bad_fields_fail() {
        assert!(parse("%Y-%m-%d", "2020-01-01x").is_none());
        assert!(parse("%Y-%m-%d", "2020-13-01").is_none());
        assert!(parse("%H:%M", "25:00").is_none());
        assert!(TimeFormat::compile("%Q").is_err());
    }

    #[test]
    fn epoch_and_twelve_hour_clock() {
        assert_eq!(parse("%s", "1700000000").unwrap().sec, 1_700_000_000);
        let pm = parse("%Y-%m-%d %I:%M:%S %p", "1970-01-01 01:00:00 PM").unwrap();
        assert_eq!(pm.sec, 13 * 3600);
    }
}
