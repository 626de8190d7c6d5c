use super::*;
use proptest::prelude::*;

fn zone(s: &str) -> Zone {
    Zone::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// Seconds of a UTC date and time.
fn utc(y: i64, mo: u32, d: u32, h: i64, mi: i64) -> i64 {
    crate::time::days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60
}

/// The offset jiff gives, no cache involved.
fn uncached(name: &str, unix: i64) -> i32 {
    TimeZone::get(name)
        .unwrap()
        .to_offset(Timestamp::from_second(unix).unwrap())
        .seconds()
}

#[test]
fn offsets_are_read_in_fluentds_three_shapes() {
    assert_eq!(zone("+09:00"), Zone::fixed(9 * 3600));
    assert_eq!(zone("+0900"), Zone::fixed(9 * 3600));
    assert_eq!(zone("-05"), Zone::fixed(-5 * 3600));
    assert_eq!(zone("+05:45").offset_at(0), 5 * 3600 + 45 * 60);
    assert_eq!(zone("-0330").offset_at(0), -(3 * 3600 + 30 * 60));
    for utc in ["UTC", "GMT", "Z", "Etc/UTC"] {
        assert!(zone(utc).is_utc(), "{utc}");
    }
    assert!(!zone("+00:00").is_utc(), "an offset of 0 is not UTC itself");
}

#[test]
fn iana_names_are_read_from_the_system_database() {
    let tokyo = zone("Asia/Tokyo");
    assert_eq!(tokyo.offset_at(1_700_000_000), 9 * 3600);
    let buenos_aires = zone("America/Argentina/Buenos_Aires");
    assert_eq!(buenos_aires.offset_at(1_700_000_000), -3 * 3600);
    assert_eq!(format!("{tokyo:?}"), "Zone(Asia/Tokyo)");
    assert_eq!(tokyo, zone("Asia/Tokyo"));
    assert_ne!(tokyo, zone("+09:00"));
}

#[test]
fn malformed_unknown_and_out_of_range_zones_are_refused() {
    for bad in [
        "",
        "JST",
        "PST",
        "Tokyo",
        "+9",
        "+090",
        "09:00",
        "+09:00:00",
        "Asia/",
        "/Tokyo",
        "a/b/c/d",
        "../../etc/passwd",
        "Asia/../Tokyo",
        "Asia/To kyo",
        "+09:0",
    ] {
        assert!(
            matches!(Zone::parse(bad), Err(ZoneError::Malformed(_))),
            "{bad}: {:?}",
            Zone::parse(bad)
        );
    }
    assert!(matches!(
        Zone::parse("+24:00"),
        Err(ZoneError::OffsetOutOfRange(_))
    ));
    assert!(matches!(
        Zone::parse("-0960"),
        Err(ZoneError::OffsetOutOfRange(_))
    ));
    let err = Zone::parse("Asia/Tokio").unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown time zone 'Asia/Tokio' (did you mean 'Asia/Tokyo'?): the system's zone \
         database (tzdata) has no such zone"
    );
    assert!(matches!(
        Zone::parse("Mars/Olympus_Mons"),
        Err(ZoneError::Unknown { .. })
    ));
}

#[test]
fn new_york_offsets_are_right_on_both_sides_of_the_2026_transitions() {
    let ny = zone("America/New_York");
    // Clocks go forward at 2026-03-08 07:00 UTC (02:00 EST) and back at 2026-11-01 06:00 UTC
    // (02:00 EDT).
    let spring = utc(2026, 3, 8, 7, 0);
    let fall = utc(2026, 11, 1, 6, 0);
    let cases = [
        (spring - 3600, -5),
        (spring - 1, -5),
        (spring, -4),
        (spring + 1, -4),
        (spring + 1800, -4),
        (fall - 1, -4),
        (fall, -5),
        (fall + 3599, -5),
    ];
    // Asked in order, backwards and again: the cache never changes an answer.
    for round in 0..3 {
        let order: Vec<_> = match round {
            1 => cases.iter().rev().collect(),
            _ => cases.iter().collect(),
        };
        for (at, hours) in order {
            assert_eq!(ny.offset_at(*at), hours * 3600, "round {round} at {at}");
        }
    }
}

#[test]
fn local_times_that_clocks_skip_or_repeat_are_read_as_mktime_reads_them() {
    let ny = zone("America/New_York");
    // 2026-03-08 02:30 does not exist in New York: read with EST, it is 03:30 EDT.
    assert_eq!(
        ny.wall_to_unix(utc(2026, 3, 8, 2, 30)),
        utc(2026, 3, 8, 7, 30)
    );
    // 01:59 is still EST, 03:00 already EDT.
    assert_eq!(
        ny.wall_to_unix(utc(2026, 3, 8, 1, 59)),
        utc(2026, 3, 8, 6, 59)
    );
    assert_eq!(
        ny.wall_to_unix(utc(2026, 3, 8, 3, 0)),
        utc(2026, 3, 8, 7, 0)
    );
    // 2026-11-01 01:30 happens twice: the first (EDT) is taken.
    assert_eq!(
        ny.wall_to_unix(utc(2026, 11, 1, 1, 30)),
        utc(2026, 11, 1, 5, 30)
    );
    assert_eq!(
        ny.wall_to_unix(utc(2026, 11, 1, 2, 0)),
        utc(2026, 11, 1, 7, 0)
    );
    assert_eq!(
        ny.wall_to_unix(utc(2026, 11, 1, 0, 59)),
        utc(2026, 11, 1, 4, 59)
    );
    let tokyo = zone("Asia/Tokyo");
    assert_eq!(
        tokyo.wall_to_unix(utc(2026, 12, 7, 10, 0)),
        utc(2026, 12, 7, 1, 0)
    );
    assert_eq!(Zone::fixed(-3600).wall_to_unix(0), 3600);
    assert_eq!(Zone::UTC.wall_to_unix(42), 42);
}

#[test]
fn abbreviations_are_written_for_utc_and_the_host_only() {
    assert_eq!(Zone::UTC.abbreviation(0), "UTC");
    assert_eq!(Zone::fixed(3600).abbreviation(0), "");
    assert_eq!(zone("Asia/Tokyo").abbreviation(0), "");
}

proptest! {
    /// Any string at all is a zone or an error, never a panic, and a zone answers for any time.
    #[test]
    fn no_zone_string_or_time_panics(s in "\\PC{0,40}", t in any::<i64>()) {
        if let Ok(z) = Zone::parse(&s) {
            let _ = z.offset_at(t);
            let _ = z.wall_to_unix(t);
            let _ = z.abbreviation(t);
        }
    }

    #[test]
    fn zone_like_strings_never_panic(
        s in "[+-]?[0-9:]{0,6}|[A-Za-z_./+-]{1,12}/[A-Za-z_./+-]{1,16}",
        t in any::<i64>(),
    ) {
        if let Ok(z) = Zone::parse(&s) {
            let _ = (z.offset_at(t), z.wall_to_unix(t));
        }
    }

    /// Cached offsets are jiff's own, asked in any order around the 2026 transitions of zones
    /// that have them (New York, Lord Howe's half hour, Kathmandu's 45 minutes).
    #[test]
    fn cached_offsets_equal_the_zone_rules(
        times in proptest::collection::vec(
            prop_oneof![
                utc(2026, 3, 8, 0, 0)..utc(2026, 3, 9, 0, 0),
                utc(2026, 10, 31, 12, 0)..utc(2026, 11, 2, 0, 0),
                utc(2026, 4, 4, 12, 0)..utc(2026, 4, 5, 12, 0),
                i64::from(u32::MIN)..i64::from(u32::MAX),
            ],
            1..60,
        ),
    ) {
        for name in ["America/New_York", "Australia/Lord_Howe", "Asia/Kathmandu"] {
            let z = zone(name);
            for &t in &times {
                prop_assert_eq!(z.offset_at(t), uncached(name, t), "{} at {}", name, t);
                // `t` read as a local time, against jiff's "compatible" reading (mktime's).
                let civil = Offset::UTC.to_datetime(Timestamp::from_second(t).unwrap());
                let expected = TimeZone::get(name)
                    .unwrap()
                    .to_ambiguous_timestamp(civil)
                    .compatible()
                    .unwrap()
                    .as_second();
                prop_assert_eq!(z.wall_to_unix(t), expected, "{} local {}", name, t);
            }
        }
    }

    /// Reading a local time back gives the instant for every time the clocks show once.
    #[test]
    fn local_times_shown_once_read_back_to_their_instant(
        t in utc(2025, 1, 1, 0, 0)..utc(2028, 1, 1, 0, 0),
    ) {
        for name in ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe"] {
            let z = zone(name);
            let offset = uncached(name, t);
            let wall = t + i64::from(offset);
            let tz = TimeZone::get(name).unwrap();
            let civil = Offset::UTC.to_datetime(Timestamp::from_second(wall).unwrap());
            if !tz.to_ambiguous_timestamp(civil).is_ambiguous() {
                prop_assert_eq!(z.wall_to_unix(wall), t, "{} at {}", name, t);
            }
        }
    }
}
