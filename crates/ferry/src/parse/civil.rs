//! Calendar arithmetic, RFC 3339 times, and `strftime` for paths.

use super::time::{MONTHS, digits, parse_offset};
use ferry_proto::time::EventTime;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number: (year, month 1-12, day 1-31).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// RFC 3339 / ISO 8601 as log lines write it: `2024-05-01T12:34:56.789Z`,
/// `2024-05-01 12:34:56+02:00`, `2024-05-01T12:34:56` (read in `offset`).
pub fn parse_rfc3339(s: &[u8], offset: i32) -> Option<EventTime> {
    let y = digits(s, 0, 4, 4)?;
    let mut pos = y.1;
    let expect = |pos: &mut usize, b: &[u8]| -> Option<()> {
        if b.contains(s.get(*pos)?) {
            *pos += 1;
            Some(())
        } else {
            None
        }
    };
    expect(&mut pos, b"-")?;
    let (month, p2, _) = digits(s, pos, 2, 2)?;
    pos = p2;
    expect(&mut pos, b"-")?;
    let (day, p3, _) = digits(s, pos, 2, 2)?;
    pos = p3;
    expect(&mut pos, b"Tt ")?;
    let (hour, p4, _) = digits(s, pos, 2, 2)?;
    pos = p4;
    expect(&mut pos, b":")?;
    let (minute, p5, _) = digits(s, pos, 2, 2)?;
    pos = p5;
    expect(&mut pos, b":")?;
    let (second, p6, _) = digits(s, pos, 2, 2)?;
    pos = p6;
    let mut nsec = 0u32;
    if matches!(s.get(pos), Some(b'.' | b',')) {
        let (v, end, n) = digits(s, pos + 1, 1, 9)?;
        nsec = (v * 10u64.pow(9 - n as u32)) as u32;
        pos = end;
        while s.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
    }
    let zone = std::str::from_utf8(s.get(pos..)?).ok()?.trim();
    let offset = if zone.is_empty() {
        offset
    } else {
        parse_offset(zone)?
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(y.0 as i64, month as u32, day as u32);
    let secs = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64 - i64::from(offset);
    EventTime::from_unix_nanos(u128::try_from(secs).ok()? * 1_000_000_000 + u128::from(nsec))
}

/// Expands `strftime` directives in a path (`%Y %m %d %H %M %S %y %j %b %%`) for the time
/// `unix_secs` in the zone `offset`. Text without `%` is returned as it is; an unknown directive
/// is kept literally.
pub fn strftime(pattern: &str, unix_secs: i64, offset: i32) -> String {
    if !pattern.contains('%') {
        return pattern.to_string();
    }
    let local = unix_secs + i64::from(offset);
    let days = local.div_euclid(86_400);
    let tod = local.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let yday = days - days_from_civil(year, 1, 1) + 1;
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => out.push_str(&format!("{year:04}")),
            Some('y') => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            Some('m') => out.push_str(&format!("{month:02}")),
            Some('d') => out.push_str(&format!("{day:02}")),
            Some('H') => out.push_str(&format!("{:02}", tod / 3600)),
            Some('M') => out.push_str(&format!("{:02}", tod / 60 % 60)),
            Some('S') => out.push_str(&format!("{:02}", tod % 60)),
            Some('j') => out.push_str(&format!("{yday:03}")),
            Some('b') => {
                let name = MONTHS.get(month as usize - 1).copied().unwrap_or("jan");
                let mut n = name.chars();
                if let Some(f) = n.next() {
                    out.push(f.to_ascii_uppercase());
                    out.push_str(n.as_str());
                }
            }
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}
