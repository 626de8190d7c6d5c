//! RFC 3339 / ISO 8601 times, read when a `<parse>` has no `time_format` (the calendar is
//! [`crate::time`]).

use super::time::{digits, parse_offset};
use crate::time::{Zone, days_from_civil};
use ferry_proto::time::EventTime;

/// RFC 3339 / ISO 8601 as log lines write it: `2024-05-01T12:34:56.789Z`,
/// `2024-05-01 12:34:56+02:00`, `2024-05-01T12:34:56` (read in `zone`).
pub fn parse_rfc3339(s: &[u8], zone: &Zone) -> Option<EventTime> {
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
    let written = std::str::from_utf8(s.get(pos..)?).ok()?.trim();
    let offset = if written.is_empty() {
        None
    } else {
        Some(parse_offset(written)?)
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(y.0 as i64, month as u32, day as u32);
    let wall = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    let secs = match offset {
        Some(offset) => wall - i64::from(offset),
        None => zone.wall_to_unix(wall),
    };
    EventTime::from_unix_nanos(u128::try_from(secs).ok()? * 1_000_000_000 + u128::from(nsec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_variants() {
        let z = parse_rfc3339(b"2019-01-01T00:00:00.123456789Z", &Zone::UTC).unwrap();
        assert_eq!(z, EventTime::new(1_546_300_800, 123_456_789));
        let off = parse_rfc3339(b"2019-01-01 09:00:00+09:00", &Zone::UTC).unwrap();
        assert_eq!(off.sec, 1_546_300_800);
        let local = parse_rfc3339(b"2019-01-01T00:00:00", &Zone::fixed(3600)).unwrap();
        assert_eq!(local.sec, 1_546_300_800 - 3600);
        assert!(parse_rfc3339(b"2019-01-01", &Zone::UTC).is_none());
    }
}
