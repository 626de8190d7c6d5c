//! The one place the forward input rebuilds entries (everything else passes the received bytes
//! through untouched). It runs only when a batch needs it:
//!
//! - an event time of 0 (integer or EventTime with 0 seconds) becomes the time the request was
//!   handled, as Fluentd does for "no time"; a Fluent Bit `[time, metadata]` keeps its metadata;
//! - `source_address_key` / `source_hostname_key` add the peer's address / name to every record.
//!   A key the record already has is replaced (its old pair is dropped), as Fluentd's
//!   `record[key] = value` does.
//!
//! Input: an entry stream already sanitized by [`ferry_proto::entries::sanitize`] (every entry
//! valid). Output: a new entry stream, each entry `92 <time> <record>` with the record map
//! header re-written for its new pair count.

use bytes::{Bytes, BytesMut};
use ferry_proto::entries::{self, EntryError};
use ferry_proto::msgpack::{self, Head, MsgpackError, read_head, skip_value};
use ferry_proto::{EventTime, Summary};

/// Keys and values added to every record.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Injection<'a> {
    pub address: Option<(&'a str, &'a str)>,
    pub hostname: Option<(&'a str, &'a str)>,
}

impl Injection<'_> {
    fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.address.into_iter().chain(self.hostname)
    }

    fn is_empty(&self) -> bool {
        self.address.is_none() && self.hostname.is_none()
    }

    fn has_key(&self, key: &[u8]) -> bool {
        self.pairs().any(|(k, _)| k.as_bytes() == key)
    }
}

/// True when [`rewrite`] must run for a stream with this summary.
pub(super) fn needed(summary: &Summary, inject: &Injection<'_>) -> bool {
    !inject.is_empty() || summary.min_time.is_some_and(|t| t.sec == 0)
}

/// Rebuilds `stream` (see the module doc); returns it and how many times were replaced.
pub(super) fn rewrite(
    stream: &[u8],
    inject: &Injection<'_>,
    now: EventTime,
) -> Result<(Bytes, u64), EntryError> {
    let extra: usize = inject.pairs().map(|(k, v)| k.len() + v.len() + 10).sum();
    let mut out = BytesMut::with_capacity(stream.len() + 16);
    let mut replaced = 0;
    for entry in entries::iter(stream) {
        let e = entry?;
        out.reserve(e.raw.len() + extra + 16);
        msgpack::write_array_len(&mut out, 2);
        let time = if e.time.sec == 0 {
            replaced += 1;
            now
        } else {
            e.time
        };
        match e.metadata {
            Some(meta) => {
                msgpack::write_array_len(&mut out, 2);
                write_time(&mut out, time, e.int_time && e.time.sec != 0);
                out.extend_from_slice(meta);
            }
            None => write_time(&mut out, time, e.int_time && e.time.sec != 0),
        }
        if inject.is_empty() {
            out.extend_from_slice(e.record);
        } else {
            let at = offset_in(stream, e.raw);
            write_record(&mut out, e.record, inject)
                .map_err(|source| EntryError::Malformed { offset: at, source })?;
        }
    }
    Ok((out.freeze(), replaced))
}

/// Offset of `part` inside `whole` (both slices of the same buffer).
fn offset_in(whole: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).saturating_sub(whole.as_ptr() as usize)
}

/// An integer time stays an integer (as received); a replaced or EventTime time is EventTime.
fn write_time(out: &mut BytesMut, t: EventTime, as_int: bool) {
    if as_int {
        msgpack::write_uint(out, u64::from(t.sec));
    } else {
        t.encode(out);
    }
}

/// Copies a record map, dropping pairs whose str key is injected, then appends the injected
/// pairs.
fn write_record(
    out: &mut BytesMut,
    record: &[u8],
    inject: &Injection<'_>,
) -> Result<(), MsgpackError> {
    let (head, hlen) = read_head(record, 0)?;
    let Head::Map(pairs) = head else {
        // Sanitized entries always have a map; anything else is passed through unchanged.
        out.extend_from_slice(record);
        return Ok(());
    };
    let key_of = |start: usize| -> Result<Option<&[u8]>, MsgpackError> {
        match read_head(record, start)? {
            (Head::Str(n), h) => Ok(record.get(start + h..start + h + n as usize)),
            _ => Ok(None),
        }
    };
    let mut pos = hlen;
    let mut kept = 0usize;
    let mut duplicate = false;
    for _ in 0..pairs {
        let value = skip_value(record, pos)?;
        let end = skip_value(record, value)?;
        if key_of(pos)?.is_some_and(|k| inject.has_key(k)) {
            duplicate = true;
        } else {
            kept += 1;
        }
        pos = end;
    }
    msgpack::write_map_len(out, kept + inject.pairs().count());
    if duplicate {
        let mut pos = hlen;
        for _ in 0..pairs {
            let value = skip_value(record, pos)?;
            let end = skip_value(record, value)?;
            if !key_of(pos)?.is_some_and(|k| inject.has_key(k)) {
                out.extend_from_slice(record.get(pos..end).unwrap_or_default());
            }
            pos = end;
        }
    } else {
        out.extend_from_slice(record.get(hlen..).unwrap_or_default());
    }
    for (k, v) in inject.pairs() {
        msgpack::write_str(out, k.as_bytes());
        msgpack::write_str(out, v.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_proto::msgpack::Value;

    fn entry(out: &mut BytesMut, time: &[u8], record: &[(&str, &str)]) {
        msgpack::write_array_len(out, 2);
        out.extend_from_slice(time);
        msgpack::write_map_len(out, record.len());
        for (k, v) in record {
            msgpack::write_str(out, k.as_bytes());
            msgpack::write_str(out, v.as_bytes());
        }
    }

    type Decoded = (EventTime, bool, Vec<(String, String)>);

    fn decode(stream: &[u8]) -> Vec<Decoded> {
        entries::iter(stream)
            .map(|e| {
                let e = e.unwrap();
                let (Value::Map(pairs), _) = Value::decode(e.record).unwrap() else {
                    panic!("record is not a map")
                };
                let pairs = pairs
                    .into_iter()
                    .map(|(k, v)| match (k, v) {
                        (Value::Str(k), Value::Str(v)) => (
                            String::from_utf8(k.to_vec()).unwrap(),
                            String::from_utf8(v.to_vec()).unwrap(),
                        ),
                        other => panic!("{other:?}"),
                    })
                    .collect();
                (e.time, e.int_time, pairs)
            })
            .collect()
    }

    #[test]
    fn time_zero_becomes_now_and_other_times_are_kept() {
        let mut s = BytesMut::new();
        entry(&mut s, &[0x00], &[("a", "1")]);
        entry(&mut s, &EventTime::new(0, 5).to_fixext8(), &[("b", "2")]);
        entry(&mut s, &[0xce, 0x65, 0x53, 0xf1, 0x00], &[("c", "3")]);
        let summary = entries::validate(&s).unwrap();
        let inject = Injection::default();
        assert!(needed(&summary, &inject));
        let now = EventTime::new(1_800_000_000, 7);
        let (out, replaced) = rewrite(&s, &inject, now).unwrap();
        assert_eq!(replaced, 2);
        let got = decode(&out);
        assert_eq!(got[0].0, now);
        assert!(!got[0].1, "a replaced time is an EventTime");
        assert_eq!(got[1].0, now);
        assert_eq!(got[2].0, EventTime::new(1_700_000_000, 0));
        assert!(got[2].1, "an integer time stays an integer");
        assert_eq!(got[2].2, vec![("c".to_string(), "3".to_string())]);
    }

    #[test]
    fn source_keys_are_added_and_replace_existing_ones() {
        let mut s = BytesMut::new();
        let t = EventTime::new(1_700_000_000, 1).to_fixext8();
        entry(&mut s, &t, &[("msg", "hi")]);
        entry(&mut s, &t, &[("source_ip", "forged"), ("msg", "x")]);
        let inject = Injection {
            address: Some(("source_ip", "10.0.0.1")),
            hostname: Some(("source_host", "web-1")),
        };
        let summary = entries::validate(&s).unwrap();
        assert!(needed(&summary, &inject));
        let (out, replaced) = rewrite(&s, &inject, EventTime::now()).unwrap();
        assert_eq!(replaced, 0);
        let got = decode(&out);
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            got[0].2,
            pairs(&[
                ("msg", "hi"),
                ("source_ip", "10.0.0.1"),
                ("source_host", "web-1")
            ])
        );
        assert_eq!(
            got[1].2,
            pairs(&[
                ("msg", "x"),
                ("source_ip", "10.0.0.1"),
                ("source_host", "web-1")
            ])
        );
        assert_eq!(got[1].0, EventTime::new(1_700_000_000, 1));
    }

    proptest::proptest! {
        #[test]
        fn rewritten_streams_are_valid_and_every_record_gets_the_keys(
            times in proptest::collection::vec(0u32..3, 1..20),
            keys in proptest::collection::vec("[a-c]{1,2}", 0..4),
        ) {
            let mut s = BytesMut::new();
            for (i, t) in times.iter().enumerate() {
                let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (k.as_str(), "v")).collect();
                let time = EventTime::new(*t, i as u32).to_fixext8();
                entry(&mut s, &time, &pairs);
            }
            let inject = Injection { address: Some(("a", "addr")), hostname: Some(("host", "h")) };
            let (out, replaced) = rewrite(&s, &inject, EventTime::new(99, 0)).unwrap();
            let summary = entries::validate(&out).unwrap();
            proptest::prop_assert_eq!(summary.count, times.len() as u64);
            proptest::prop_assert_eq!(summary.invalid, 0);
            proptest::prop_assert_eq!(replaced, times.iter().filter(|t| **t == 0).count() as u64);
            for (_, _, pairs) in decode(&out) {
                proptest::prop_assert_eq!(pairs.iter().filter(|(k, _)| k == "a").count(), 1);
                proptest::prop_assert!(pairs.contains(&("a".to_string(), "addr".to_string())));
                proptest::prop_assert!(pairs.contains(&("host".to_string(), "h".to_string())));
            }
        }
    }

    #[test]
    fn nothing_to_do_means_no_rewrite() {
        let mut s = BytesMut::new();
        entry(&mut s, &EventTime::new(5, 0).to_fixext8(), &[("a", "1")]);
        let summary = entries::validate(&s).unwrap();
        assert!(!needed(&summary, &Injection::default()));
    }
}
