//! Time zones as Fluentd names them, and the UTC offsets of times in them.
//!
//! A [`Zone`] is UTC, a fixed offset (`+09:00`, `+0900`, `-05`), an IANA zone (`Asia/Tokyo`,
//! `America/Argentina/Buenos_Aires`) or the host's zone (`TZ`, else `/etc/localtime`). Zone
//! rules come from the system's zoneinfo (`/usr/share/zoneinfo`, Debian's `tzdata`): ferry
//! carries no zone data. Names follow Fluentd's `Fluent::Timezone.validate`: an offset or a
//! `Region/Zone[/Zone]` name found in the database; abbreviations (`JST`, `PST`) are refused.
//! ferry also takes `UTC`, `GMT` and `Z`.
//!
//! Parsing and formatting run per record, so a zone with rules caches the offset of the last
//! UTC hour and of the last local (wall-clock) hour it was asked about, each in one atomic
//! word. An hour is cached only when no transition falls inside it, so the cache never changes
//! an answer: a hit costs one load and a compare, a miss (once an hour, or every time inside an
//! hour that holds a transition) asks the zone's rules.
//!
//! A local time that a transition skips (02:30 on the day clocks go forward) is read with the
//! offset before the transition (03:30 after it), and one that occurs twice (01:30 on the day
//! clocks go back) as the earlier: what `mktime` and Ruby's `Time.local` do.

use ferry_config::Section;
use jiff::Timestamp;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The zone of times that carry none, and the zone times are written in.
#[derive(Clone)]
pub struct Zone {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// UTC (`utc true`, `localtime false`): `%Z` writes `UTC`.
    Utc,
    /// A fixed offset in seconds east of UTC: `%Z` writes nothing, as in Ruby.
    Fixed(i32),
    /// Zone rules: an IANA zone or the host's.
    Rules(Arc<Rules>),
}

struct Rules {
    tz: TimeZone,
    /// What the configuration said (`Asia/Tokyo`), or `localtime` for the host's zone.
    name: String,
    /// The host's zone writes its abbreviation for `%Z` (`JST`); a named zone, like Fluentd's,
    /// writes none.
    host: bool,
    /// The offset of the last UTC hour asked about, packed by [`pack`].
    utc_hour: AtomicU64,
    /// The offset of the last local hour asked about.
    wall_hour: AtomicU64,
}

/// Why a `timezone` value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    #[error(
        "'{0}' is not a time zone: write an offset (+09:00, +0900, -05) or a zone name \
         (Asia/Tokyo); abbreviations such as JST are not read"
    )]
    Malformed(String),
    #[error("offset '{0}' is out of range: hours go to 23 and minutes to 59")]
    OffsetOutOfRange(String),
    #[error(
        "unknown time zone '{name}'{hint}: the system's zone database (tzdata) has no such zone"
    )]
    Unknown { name: String, hint: String },
}

/// Seconds that jiff can place in a zone (years -9999 to 9999, less a day for any offset).
const MIN_SECS: i64 = -377_705_030_400;
const MAX_SECS: i64 = 253_402_120_000;
/// An hour no clamped time falls in: the empty cache.
const EMPTY: u64 = (i32::MIN as u32 as u64) << 32;

fn pack(hour: i64, offset: i32) -> u64 {
    (u64::from(hour as i32 as u32) << 32) | u64::from(offset as u32)
}

fn unpack(word: u64) -> (i64, i32) {
    (i64::from((word >> 32) as u32 as i32), word as u32 as i32)
}

fn timestamp(secs: i64) -> Timestamp {
    Timestamp::from_second(secs.clamp(MIN_SECS, MAX_SECS)).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// A fixed offset written as Fluentd takes it (`[+-]HH`, `[+-]HHMM`, `[+-]HH:MM`), in seconds
/// east of UTC: `None` if `s` is not one, `Some(Err)` if its hours or minutes are too large.
pub fn numeric_offset(s: &str) -> Option<Result<i32, ZoneError>> {
    let b = s.as_bytes();
    let sign = match b.first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let d = |i: usize| -> Option<i32> {
        b.get(i)
            .filter(|c| c.is_ascii_digit())
            .map(|c| i32::from(c - b'0'))
    };
    let hours = d(1)? * 10 + d(2)?;
    let minutes = match b.len() {
        3 => 0,
        5 => d(3)? * 10 + d(4)?,
        6 if b[3] == b':' => d(4)? * 10 + d(5)?,
        _ => return None,
    };
    if hours > 23 || minutes > 59 {
        return Some(Err(ZoneError::OffsetOutOfRange(s.to_string())));
    }
    Some(Ok(sign * (hours * 3600 + minutes * 60)))
}

impl Zone {
    pub const UTC: Zone = Zone { kind: Kind::Utc };

    /// A fixed offset, seconds east of UTC.
    pub fn fixed(offset: i32) -> Self {
        Self {
            kind: Kind::Fixed(offset.clamp(-86_399, 86_399)),
        }
    }

    /// The host's zone (`TZ`, else `/etc/localtime`; UTC when neither names one).
    pub fn host() -> Self {
        Self::rules(TimeZone::system(), "localtime".into(), true)
    }

    /// The host's offset now, as a fixed offset: Fluentd's default `timekey_zone`
    /// (`Time.now.strftime('%z')`).
    pub fn host_offset_now() -> Self {
        let now = Timestamp::now();
        Self::fixed(TimeZone::system().to_offset(now).seconds())
    }

    fn rules(tz: TimeZone, name: String, host: bool) -> Self {
        Self {
            kind: Kind::Rules(Arc::new(Rules {
                tz,
                name,
                host,
                utc_hour: AtomicU64::new(EMPTY),
                wall_hour: AtomicU64::new(EMPTY),
            })),
        }
    }

    /// Reads a `timezone` value as Fluentd does (module docs).
    pub fn parse(s: &str) -> Result<Self, ZoneError> {
        if matches!(s, "UTC" | "GMT" | "Z" | "Etc/UTC") {
            return Ok(Self::UTC);
        }
        if let Some(offset) = numeric_offset(s) {
            return offset.map(Self::fixed);
        }
        let parts: Vec<&str> = s.split('/').collect();
        let name_like = (2..=3).contains(&parts.len())
            && parts.iter().all(|p| {
                !p.is_empty()
                    && *p != "."
                    && *p != ".."
                    && p.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'+' | b'.')
                    })
            });
        if !name_like {
            return Err(ZoneError::Malformed(s.to_string()));
        }
        match TimeZone::get(s) {
            Ok(tz) => Ok(Self::rules(tz, s.to_string(), false)),
            Err(_) => {
                let names: Vec<String> =
                    jiff::tz::db().available().map(|n| n.to_string()).collect();
                let hint = ferry_config::did_you_mean(s, names.iter().map(String::as_str))
                    .map(|c| format!(" (did you mean '{c}'?)"))
                    .unwrap_or_default();
                Err(ZoneError::Unknown {
                    name: s.to_string(),
                    hint,
                })
            }
        }
    }

    /// Whether this is UTC itself (`utc true`), not a zone whose offset happens to be 0.
    pub fn is_utc(&self) -> bool {
        matches!(self.kind, Kind::Utc)
    }

    /// The offset, seconds east of UTC, at `unix` seconds.
    #[inline]
    pub fn offset_at(&self, unix: i64) -> i32 {
        match &self.kind {
            Kind::Utc => 0,
            Kind::Fixed(o) => *o,
            Kind::Rules(r) => r.offset_at(unix),
        }
    }

    /// The instant of a local time given as `wall` seconds (its calendar fields counted as if
    /// they were UTC).
    #[inline]
    pub fn wall_to_unix(&self, wall: i64) -> i64 {
        match &self.kind {
            Kind::Utc => wall,
            Kind::Fixed(o) => wall - i64::from(*o),
            Kind::Rules(r) => wall - i64::from(r.wall_offset(wall)),
        }
    }

    /// What `%Z` writes at `unix`: `UTC`, the host's abbreviation (`JST`), or nothing for an
    /// offset or a named zone (Fluentd formats those as a bare offset).
    pub fn abbreviation(&self, unix: i64) -> String {
        match &self.kind {
            Kind::Utc => "UTC".into(),
            Kind::Rules(r) if r.host => {
                r.tz.to_offset_info(timestamp(unix))
                    .abbreviation()
                    .to_string()
            }
            _ => String::new(),
        }
    }
}

/// The zone parameter `key` (`timekey_zone`, `path_timezone`), if written; a value that is not
/// a zone is reported at its line.
pub fn read_zone(s: &Section<'_>, key: &str) -> Option<Zone> {
    let raw = s.str(key)?;
    Zone::parse(&raw)
        .map_err(|e| s.error(Some(key), e.to_string()))
        .ok()
}

/// `localtime`, `utc` and `timezone` of a `<parse>`, `<format>` or `<inject>` section, read as
/// Fluentd's `TimeMixin` reads them: `timezone` wins; else `utc true` or `localtime false`
/// means UTC; else the host's zone. `localtime` and `utc` both written and saying opposite
/// things is an error, as in Fluentd.
pub fn from_section(s: &Section<'_>) -> Zone {
    let localtime = s.opt_bool("localtime");
    let utc = s.opt_bool("utc");
    if let (Some(l), Some(u)) = (localtime, utc)
        && l == u
    {
        s.error(
            Some("utc"),
            "both of utc and localtime are specified, use only one of them",
        );
    }
    if let Some(zone) = read_zone(s, "timezone") {
        return zone;
    }
    match (localtime, utc) {
        (Some(false), _) | (None, Some(true)) => Zone::UTC,
        _ => Zone::host(),
    }
}

impl Rules {
    #[inline]
    fn offset_at(&self, unix: i64) -> i32 {
        let unix = unix.clamp(MIN_SECS, MAX_SECS);
        let hour = unix.div_euclid(3600);
        let (cached, offset) = unpack(self.utc_hour.load(Ordering::Relaxed));
        if cached == hour {
            return offset;
        }
        self.fill_utc(hour, unix)
    }

    #[cold]
    fn fill_utc(&self, hour: i64, unix: i64) -> i32 {
        let offset = self.tz.to_offset(timestamp(unix)).seconds();
        let start = hour * 3600;
        if self.steady(start, start + 3600)
            && self.tz.to_offset(timestamp(start)).seconds() == offset
        {
            self.utc_hour.store(pack(hour, offset), Ordering::Relaxed);
        }
        offset
    }

    /// Whether no transition falls in `(start, end)` (seconds).
    fn steady(&self, start: i64, end: i64) -> bool {
        self.tz
            .following(timestamp(start))
            .next()
            .is_none_or(|t| t.timestamp().as_second() >= end)
    }

    #[inline]
    fn wall_offset(&self, wall: i64) -> i32 {
        let wall = wall.clamp(MIN_SECS, MAX_SECS);
        let hour = wall.div_euclid(3600);
        let (cached, offset) = unpack(self.wall_hour.load(Ordering::Relaxed));
        if cached == hour {
            return offset;
        }
        self.fill_wall(hour, wall)
    }

    /// The offset of a local time (module docs for skipped and repeated times).
    fn local_offset(&self, wall: i64) -> (i32, bool) {
        let civil = Offset::UTC.to_datetime(timestamp(wall));
        match self.tz.to_ambiguous_timestamp(civil).offset() {
            AmbiguousOffset::Unambiguous { offset } => (offset.seconds(), true),
            AmbiguousOffset::Gap { before, .. } | AmbiguousOffset::Fold { before, .. } => {
                (before.seconds(), false)
            }
        }
    }

    #[cold]
    fn fill_wall(&self, hour: i64, wall: i64) -> i32 {
        let (offset, _) = self.local_offset(wall);
        let start = hour * 3600;
        let (first, plain_first) = self.local_offset(start);
        let (last, plain_last) = self.local_offset(start + 3599);
        // A skipped or repeated span inside the hour comes from a transition inside the UTC
        // span the hour maps to, so plain ends and no such transition make the hour uniform.
        let from = start - i64::from(offset);
        if plain_first
            && plain_last
            && first == offset
            && last == offset
            && self.steady(from - 1, from + 3600)
        {
            self.wall_hour.store(pack(hour, offset), Ordering::Relaxed);
        }
        offset
    }
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        match (&self.kind, &other.kind) {
            (Kind::Utc, Kind::Utc) => true,
            (Kind::Fixed(a), Kind::Fixed(b)) => a == b,
            (Kind::Rules(a), Kind::Rules(b)) => a.name == b.name && a.host == b.host,
            _ => false,
        }
    }
}

impl Eq for Zone {}

impl Default for Zone {
    /// The host's zone: Fluentd's default for reading and writing times.
    fn default() -> Self {
        Self::host()
    }
}

impl fmt::Debug for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Utc => f.write_str("Zone(UTC)"),
            Kind::Fixed(o) => write!(f, "Zone({o:+}s)"),
            Kind::Rules(r) => write!(f, "Zone({})", r.name),
        }
    }
}

#[cfg(test)]
#[path = "zone_tests.rs"]
mod tests;
