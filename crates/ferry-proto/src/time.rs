//! EventTime: seconds and nanoseconds since the Unix epoch.
//!
//! Wire format (Forward protocol v1, "EventTime ext format"): msgpack extension type 0 with an
//! 8-byte payload, seconds as big-endian u32 then nanoseconds as big-endian u32. ferry writes the
//! 10-byte fixext8 form `d7 00 SSSSSSSS NNNNNNNN` (as Fluentd and Fluent Bit do) and reads both
//! fixext8 and the 11-byte ext8 form `c7 08 00 ...`.
//!
//! Seconds are u32: times after 2106-02-07 cannot be represented by the protocol, and times
//! before 1970 neither; [`EventTime::from_unix_nanos`] returns `None` for them.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};

/// Msgpack extension type of EventTime.
pub const EVENT_TIME_EXT_TYPE: i8 = 0;

/// Seconds and nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventTime {
    pub sec: u32,
    pub nsec: u32,
}

impl EventTime {
    pub const fn new(sec: u32, nsec: u32) -> Self {
        EventTime { sec, nsec }
    }

    /// The current wall-clock time (the epoch if the clock is before it, the last representable
    /// second if it is after 2106).
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        EventTime::from_unix_nanos(d.as_nanos()).unwrap_or(EventTime {
            sec: u32::MAX,
            nsec: 0,
        })
    }

    /// From nanoseconds since the epoch; `None` when the seconds do not fit in u32.
    pub fn from_unix_nanos(nanos: u128) -> Option<Self> {
        let sec = u32::try_from(nanos / 1_000_000_000).ok()?;
        Some(EventTime {
            sec,
            nsec: (nanos % 1_000_000_000) as u32,
        })
    }

    /// Nanoseconds since the epoch.
    pub fn as_unix_nanos(&self) -> u128 {
        u128::from(self.sec) * 1_000_000_000 + u128::from(self.nsec)
    }

    /// Write the fixext8 form: `d7 00` + BE seconds + BE nanoseconds (10 bytes).
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&self.to_fixext8());
    }

    /// The fixext8 form as an array.
    pub fn to_fixext8(&self) -> [u8; 10] {
        let s = self.sec.to_be_bytes();
        let n = self.nsec.to_be_bytes();
        [0xd7, 0x00, s[0], s[1], s[2], s[3], n[0], n[1], n[2], n[3]]
    }

    /// From the 8-byte extension payload.
    pub fn from_ext_payload(p: [u8; 8]) -> Self {
        EventTime {
            sec: u32::from_be_bytes([p[0], p[1], p[2], p[3]]),
            nsec: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        }
    }
}

impl std::fmt::Display for EventTime {
    /// `sec.nnnnnnnnn`, as Fluentd prints times.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:09}", self.sec, self.nsec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_spec_test_vector() {
        let t = EventTime::new(1_441_588_984, 123_456_789);
        assert_eq!(
            t.to_fixext8(),
            [0xd7, 0x00, 0x55, 0xec, 0xe6, 0xf8, 0x07, 0x5b, 0xcd, 0x15]
        );
        let mut b = BytesMut::new();
        t.encode(&mut b);
        assert_eq!(&b[..], &t.to_fixext8());
    }

    #[test]
    fn unix_nanos_roundtrip_and_overflow() {
        let t = EventTime::from_unix_nanos(1_700_000_000_123_456_789).unwrap();
        assert_eq!(t, EventTime::new(1_700_000_000, 123_456_789));
        assert_eq!(t.as_unix_nanos(), 1_700_000_000_123_456_789);
        assert_eq!(
            EventTime::from_unix_nanos(u128::from(u32::MAX) * 1_000_000_000 + 1_000_000_000),
            None
        );
        assert_eq!(t.to_string(), "1700000000.123456789");
    }
}
