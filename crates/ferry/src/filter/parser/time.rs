//! Reading an event time out of a parsed field: `time_type` and `time_format` of `<parse>`.
//!
//! With `time_format`, a `strptime` subset: `%Y %y %m %d %e %H %I %M %S %p %b %h %B %a %A %z
//! %:z %Z %s %L %N %3N %6N %9N %F %T %%`; a blank in the format matches any run of blanks.
//! Without it, a number (or numeric text) is seconds since the epoch and text is read as
//! ISO 8601 / RFC 3339 (`2026-11-21T15:19:13.5+09:00`, `2026-11-21 15:19:13 +0000`, `Z`,
//! no zone = UTC). Ruby's `Time.parse` reads more shapes; give `time_format` for others.

use crate::output::format::time::days_from_civil;
use ferry_proto::msgpack::Value;
use ferry_proto::time::EventTime;

/// How a time field is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeParse {
    /// Numbers as epoch seconds, text as ISO 8601.
    Auto,
    /// `time_type unixtime`: whole seconds.
    Unixtime,
    /// `time_type float`: seconds with a fraction.
    Float,
    /// `time_format`.
    Format(Vec<Item>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Lit(char),
    Blank,
    Year,
    Year2,
    Month,
    Day,
    Hour,
    Hour12,
    Minute,
    Second,
    AmPm,
    MonthName,
    WeekdayName,
    Offset,
    ZoneName,
    Epoch,
    Frac,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Compiles a `time_format`.
pub fn compile(format: &str) -> Result<TimeParse, String> {
    let mut items = Vec::new();
    let mut chars = format.chars();
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            if items.last() != Some(&Item::Blank) {
                items.push(Item::Blank);
            }
            continue;
        }
        if c != '%' {
            items.push(Item::Lit(c));
            continue;
        }
        let mut d = chars.next().ok_or("format ends with '%'")?;
        if d.is_ascii_digit() || d == ':' {
            d = chars.next().ok_or("format ends inside a directive")?;
        }
        let expand: &[Item] = match d {
            '%' => &[Item::Lit('%')],
            'Y' => &[Item::Year],
            'y' => &[Item::Year2],
            'm' => &[Item::Month],
            'd' | 'e' => &[Item::Day],
            'H' | 'k' => &[Item::Hour],
            'I' | 'l' => &[Item::Hour12],
            'M' => &[Item::Minute],
            'S' => &[Item::Second],
            'p' | 'P' => &[Item::AmPm],
            'b' | 'h' | 'B' => &[Item::MonthName],
            'a' | 'A' => &[Item::WeekdayName],
            'z' => &[Item::Offset],
            'Z' => &[Item::ZoneName],
            's' => &[Item::Epoch],
            'L' | 'N' => &[Item::Frac],
            'F' => &[
                Item::Year,
                Item::Lit('-'),
                Item::Month,
                Item::Lit('-'),
                Item::Day,
            ],
            'T' => &[
                Item::Hour,
                Item::Lit(':'),
                Item::Minute,
                Item::Lit(':'),
                Item::Second,
            ],
            other => return Err(format!("'%{other}' is not supported in time_format")),
        };
        items.extend_from_slice(expand);
    }
    Ok(TimeParse::Format(items))
}

/// Reads a time field.
pub fn parse(value: &Value, how: &TimeParse) -> Result<EventTime, String> {
    let number = match value {
        Value::UInt(u) => Some(*u as f64),
        Value::Int(i) => Some(*i as f64),
        Value::F32(f) => Some(f64::from(*f)),
        Value::F64(f) => Some(*f),
        _ => None,
    };
    let text = crate::record::text(value);
    match (how, number) {
        (TimeParse::Format(items), _) => strptime(items, text.trim()),
        (_, Some(n)) => epoch(n, how),
        (_, None) => match text.trim().parse::<f64>() {
            Ok(n) => epoch(n, how),
            Err(_) if matches!(how, TimeParse::Auto) => iso8601(text.trim()),
            Err(_) => Err(format!("'{text}' is not a number of seconds")),
        },
    }
}

fn epoch(n: f64, how: &TimeParse) -> Result<EventTime, String> {
    if !(0.0..4_294_967_296.0).contains(&n) {
        return Err(format!("time {n} is out of range"));
    }
    let sec = n.trunc() as u32;
    let nsec = match how {
        TimeParse::Unixtime => 0,
        _ => ((n - n.trunc()) * 1e9).round().min(999_999_999.0) as u32,
    };
    Ok(EventTime { sec, nsec })
}

fn iso8601(text: &str) -> Result<EventTime, String> {
    let mut fields = [0i64; 6];
    let mut rest = text;
    for (i, sep) in ["-", "-", "T", ":", ":", ""].iter().enumerate() {
        let width = if i == 0 { 4 } else { 2 };
        let digits = rest
            .get(..width)
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
        let Some(d) = digits else {
            return Err(format!("'{text}' is not an ISO 8601 time"));
        };
        fields[i] = d
            .parse()
            .map_err(|_| format!("'{text}' is not an ISO 8601 time"))?;
        rest = &rest[width..];
        if *sep == "T" {
            rest = rest
                .strip_prefix(['T', 't', ' '])
                .ok_or_else(|| format!("'{text}' is not an ISO 8601 time"))?;
        } else if !sep.is_empty() {
            rest = rest
                .strip_prefix(sep)
                .ok_or_else(|| format!("'{text}' is not an ISO 8601 time"))?;
        }
    }
    let mut nsec = 0;
    if let Some(frac) = rest.strip_prefix(['.', ',']) {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        nsec = frac_nanos(&frac[..n]);
        rest = &frac[n..];
    }
    let offset = zone_offset(rest.trim_start()).ok_or_else(|| format!("bad zone in '{text}'"))?;
    let [y, mo, d, h, mi, s] = fields;
    to_event_time(y, mo, d, h * 3600 + mi * 60 + s - offset, nsec)
}

fn frac_nanos(digits: &str) -> u32 {
    let mut n = 0u32;
    for (i, b) in digits.bytes().take(9).enumerate() {
        n += u32::from(b - b'0') * 10u32.pow(8 - i as u32);
    }
    n
}

/// `Z`, `UTC`, `GMT`, `+hh:mm`, `+hhmm`, `+hh`, or nothing (UTC): seconds east of UTC.
fn zone_offset(zone: &str) -> Option<i64> {
    match zone {
        "" | "Z" | "z" | "UTC" | "GMT" => return Some(0),
        _ => {}
    }
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let h: i64 = digits.get(..2)?.parse().ok()?;
    let m: i64 = digits
        .get(2..)
        .filter(|m| !m.is_empty())
        .map_or(Some(0), |m| m.parse().ok())?;
    Some(sign * (h * 3600 + m * 60))
}

fn to_event_time(
    y: i64,
    mo: i64,
    d: i64,
    secs_of_day: i64,
    nsec: u32,
) -> Result<EventTime, String> {
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return Err(format!("date {y}-{mo}-{d} is not valid"));
    }
    let secs = days_from_civil(y, mo as u32, d as u32) * 86_400 + secs_of_day;
    let sec = u32::try_from(secs).map_err(|_| format!("time {secs} is out of range"))?;
    Ok(EventTime { sec, nsec })
}

fn strptime(items: &[Item], text: &str) -> Result<EventTime, String> {
    let fail = || format!("'{text}' does not match time_format");
    let (mut y, mut mo, mut d, mut h, mut mi, mut s) = (1970i64, 1i64, 1i64, 0i64, 0i64, 0i64);
    let (mut pm, mut h12, mut nsec, mut offset) = (None, false, 0u32, 0i64);
    let mut epoch_secs = None;
    let mut rest = text;
    let num = |rest: &mut &str, max: usize| -> Option<i64> {
        let r = rest.trim_start_matches(' ');
        let n = r.bytes().take(max).take_while(u8::is_ascii_digit).count();
        let v = r.get(..n).filter(|d| !d.is_empty())?.parse().ok()?;
        *rest = &r[n..];
        Some(v)
    };
    for item in items {
        match item {
            Item::Lit(c) => rest = rest.strip_prefix(*c).ok_or_else(fail)?,
            Item::Blank => rest = rest.trim_start(),
            Item::Year => y = num(&mut rest, 4).ok_or_else(fail)?,
            Item::Year2 => y = 2000 + num(&mut rest, 2).ok_or_else(fail)?,
            Item::Month => mo = num(&mut rest, 2).ok_or_else(fail)?,
            Item::Day => d = num(&mut rest, 2).ok_or_else(fail)?,
            Item::Hour => h = num(&mut rest, 2).ok_or_else(fail)?,
            Item::Hour12 => {
                h = num(&mut rest, 2).ok_or_else(fail)?;
                h12 = true;
            }
            Item::Minute => mi = num(&mut rest, 2).ok_or_else(fail)?,
            Item::Second => s = num(&mut rest, 2).ok_or_else(fail)?,
            Item::Frac => {
                let n = rest.bytes().take_while(u8::is_ascii_digit).count();
                nsec = frac_nanos(&rest[..n]);
                rest = &rest[n..];
            }
            Item::AmPm => {
                let word = rest.get(..2).ok_or_else(fail)?.to_ascii_lowercase();
                pm = Some(match word.as_str() {
                    "am" => false,
                    "pm" => true,
                    _ => return Err(fail()),
                });
                rest = &rest[2..];
            }
            Item::MonthName | Item::WeekdayName => {
                let n = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
                let word = rest[..n].to_ascii_lowercase();
                if matches!(item, Item::MonthName) {
                    let i = MONTHS
                        .iter()
                        .position(|m| word.starts_with(m))
                        .ok_or_else(fail)?;
                    mo = i as i64 + 1;
                }
                rest = &rest[n..];
            }
            Item::Offset | Item::ZoneName => {
                let n = rest
                    .char_indices()
                    .find(|(i, c)| {
                        c.is_whitespace()
                            || (*i > 0 && c.is_ascii_alphabetic() && matches!(item, Item::Offset))
                    })
                    .map_or(rest.len(), |(i, _)| i);
                offset = zone_offset(&rest[..n]).ok_or_else(fail)?;
                rest = &rest[n..];
            }
            Item::Epoch => epoch_secs = Some(num(&mut rest, 10).ok_or_else(fail)?),
        }
    }
    if !rest.trim().is_empty() {
        return Err(fail());
    }
    if let Some(e) = epoch_secs {
        return epoch(e as f64, &TimeParse::Unixtime).map(|t| EventTime { nsec, ..t });
    }
    if h12 {
        h %= 12;
    }
    if pm == Some(true) {
        h += 12;
    }
    to_event_time(y, mo, d, h * 3600 + mi * 60 + s - offset, nsec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::str_value;

    fn t(sec: u32, nsec: u32) -> EventTime {
        EventTime { sec, nsec }
    }

    #[test]
    fn numbers_and_numeric_text_are_epoch_seconds() {
        assert_eq!(
            parse(&Value::UInt(1_700_000_000), &TimeParse::Auto),
            Ok(t(1_700_000_000, 0))
        );
        assert_eq!(
            parse(&Value::F64(1_700_000_000.5), &TimeParse::Float),
            Ok(t(1_700_000_000, 500_000_000))
        );
        assert_eq!(
            parse(&str_value("1700000000.25"), &TimeParse::Unixtime),
            Ok(t(1_700_000_000, 0))
        );
        assert!(parse(&Value::Int(-1), &TimeParse::Auto).is_err());
    }

    #[test]
    fn iso8601_text_with_fractions_and_zones() {
        let p = |s: &str| parse(&str_value(s), &TimeParse::Auto);
        assert_eq!(p("2023-11-14T22:13:20Z"), Ok(t(1_700_000_000, 0)));
        assert_eq!(
            p("2023-11-14 22:13:20.123 +0000"),
            Ok(t(1_700_000_000, 123_000_000))
        );
        assert_eq!(p("2023-11-15T07:13:20+09:00"), Ok(t(1_700_000_000, 0)));
        assert_eq!(p("2023-11-14T22:13:20"), Ok(t(1_700_000_000, 0)));
        assert!(p("yesterday").is_err());
        assert!(p("2023-13-14T22:13:20Z").is_err());
    }

    #[test]
    fn time_format_reads_apache_and_custom_layouts() {
        let apache = compile("%d/%b/%Y:%H:%M:%S %z").unwrap();
        assert_eq!(
            parse(&str_value("14/Nov/2023:23:13:20 +0100"), &apache),
            Ok(t(1_700_000_000, 0))
        );
        let custom = compile("%Y%m%d %I:%M:%S.%N %p").unwrap();
        assert_eq!(
            parse(&str_value("20231114 10:13:20.5 PM"), &custom),
            Ok(t(1_700_000_000, 500_000_000))
        );
        let epoch = compile("%s").unwrap();
        assert_eq!(
            parse(&str_value("1700000000"), &epoch),
            Ok(t(1_700_000_000, 0))
        );
        assert!(parse(&str_value("14/Nov/2023"), &apache).is_err());
        assert!(compile("%Q").is_err());
    }
}
