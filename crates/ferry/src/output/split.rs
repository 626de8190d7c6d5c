//! Splitting a batch for the buffer: by chunk key (tag, time slice, record keys) and into
//! pieces no larger than a chunk, on entry boundaries. A batch of one key that fits is passed
//! on as the same bytes.

use super::buffer_section::BufferSetup;
use crate::event::Batch;
use bytes::{Bytes, BytesMut};
use ferry_buffer::ChunkKey;
use ferry_proto::entries;
use ferry_proto::msgpack::Value;
use std::collections::BTreeMap;

/// Time slice and record-key values of a group of entries.
type GroupKey = (Option<i64>, Vec<(String, String)>);

/// One piece of a batch for one chunk key.
pub(super) type Piece = (ChunkKey, Bytes, u64);

/// Splits a batch by chunk key and into pieces that fit in a chunk.
pub(super) fn split(batch: &Batch, setup: &BufferSetup) -> Result<Vec<Piece>, String> {
    let keys = &setup.keys;
    let limit = setup.config.chunk_limit_size;
    let record_limit = setup.config.chunk_limit_records.unwrap_or(u64::MAX);
    let tag = keys.tag.then(|| batch.tag.to_string());
    let slice = |sec: u32| setup.time_slice(sec);
    // One key for the whole batch without walking it: no time key, or the input says every
    // event lies in one time slice (`Some(slice)`).
    let whole_batch_slice = match batch.time_range {
        _ if !keys.time => Some(None),
        Some((min, max)) if slice(min) == slice(max) => Some(Some(slice(min))),
        _ => None,
    };
    if keys.record.is_empty()
        && let Some(timekey) = whole_batch_slice
        && (batch.entries.len() as u64) <= limit
        && batch.records <= record_limit
    {
        let key = ChunkKey {
            tag,
            timekey,
            variables: Vec::new(),
        };
        return Ok(vec![(key, batch.entries.clone(), batch.records)]);
    }
    // Group entries by key, keeping their order; then cut each group at the chunk limit.
    let mut groups: BTreeMap<GroupKey, Vec<(usize, usize)>> = BTreeMap::new();
    let base = batch.entries.as_ptr() as usize;
    for entry in entries::iter(&batch.entries) {
        let entry = entry.map_err(|e| e.to_string())?;
        let slice_key = keys.time.then(|| slice(entry.time.sec));
        let variables = if keys.record.is_empty() {
            Vec::new()
        } else {
            record_values(entry.record, &keys.record)
        };
        let start = entry.raw.as_ptr() as usize - base;
        groups
            .entry((slice_key, variables))
            .or_default()
            .push((start, entry.raw.len()));
    }
    // One key for the whole batch (events of one time slice): the batch itself, no copy.
    if groups.len() == 1
        && (batch.entries.len() as u64) <= limit
        && batch.records <= record_limit
        && let Some(((timekey, variables), _)) = groups.pop_first()
    {
        let key = ChunkKey {
            tag,
            timekey,
            variables,
        };
        return Ok(vec![(key, batch.entries.clone(), batch.records)]);
    }
    let mut pieces = Vec::new();
    for ((timekey, variables), spans) in groups {
        let key = ChunkKey {
            tag: tag.clone(),
            timekey,
            variables,
        };
        let mut current = BytesMut::new();
        let mut records = 0u64;
        for (start, len) in spans {
            if len as u64 > limit {
                return Err(format!(
                    "a {len} bytes record is larger than buffer chunk limit size ({limit})"
                ));
            }
            if (current.len() + len) as u64 > limit || records >= record_limit {
                pieces.push((key.clone(), current.split().freeze(), records));
                records = 0;
            }
            current.extend_from_slice(&batch.entries[start..start + len]);
            records += 1;
        }
        if records > 0 {
            pieces.push((key, current.freeze(), records));
        }
    }
    Ok(pieces)
}

/// The values of `keys` in a record, as strings (missing keys are empty), for record chunk keys.
fn record_values(record: &[u8], keys: &[String]) -> Vec<(String, String)> {
    let value = Value::decode(record).map(|(v, _)| v).ok();
    keys.iter()
        .map(|k| {
            let v = value.as_ref().and_then(|v| v.get(k)).map(|v| match v {
                Value::Str(s) => String::from_utf8_lossy(s).into_owned(),
                other => other.to_json_string(),
            });
            (k.clone(), v.unwrap_or_default())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::chain::batch_of;
    use crate::output::buffer_section::BufferDefaults;
    use std::time::Duration;

    fn by_hour() -> BufferSetup {
        let defaults = BufferDefaults {
            keys: "time",
            timekey: Some(Duration::from_secs(3600)),
        };
        BufferSetup::from_section(
            None,
            defaults,
            "t",
            &crate::root_dir::RootDir::resolve(None, None),
            false,
        )
    }

    #[test]
    fn a_batch_within_one_time_slice_is_appended_as_it_is_and_others_are_split() {
        let rec = Value::Map(vec![(Value::Str("a".into()), Value::UInt(1))]);
        let one = batch_of("t", &[(3600, rec.clone()), (7199, rec.clone())]);
        let pieces = split(&one, &by_hour()).unwrap();
        assert_eq!(pieces.len(), 1);
        assert_eq!(pieces[0].1.as_ptr(), one.entries.as_ptr(), "no copy");
        assert_eq!((pieces[0].0.timekey, pieces[0].2), (Some(3600), 2));
        let two = batch_of(
            "t",
            &[(3600, rec.clone()), (7200, rec.clone()), (3601, rec)],
        );
        let pieces = split(&two, &by_hour()).unwrap();
        let slices: Vec<_> = pieces.iter().map(|p| (p.0.timekey, p.2)).collect();
        assert_eq!(slices, vec![(Some(3600), 2), (Some(7200), 1)]);
    }

    proptest::proptest! {
        /// A batch that carries its time range is placed exactly as one that is walked.
        #[test]
        fn a_known_time_range_places_events_as_a_walk_does(
            times in proptest::collection::vec(0u32..20_000, 1..40),
        ) {
            let rec = Value::Map(vec![(Value::Str("a".into()), Value::UInt(1))]);
            let events: Vec<_> = times.iter().map(|&t| (t, rec.clone())).collect();
            let walked = batch_of("t", &events);
            let (min, max) = (*times.iter().min().unwrap(), *times.iter().max().unwrap());
            let ranged = walked.clone().with_time_range(min, max);
            let place = |b: &Batch| -> Vec<_> {
                split(b, &by_hour())
                    .unwrap()
                    .into_iter()
                    .map(|(key, bytes, n)| (key.timekey, bytes, n))
                    .collect()
            };
            proptest::prop_assert_eq!(place(&ranged), place(&walked));
        }
    }
}
