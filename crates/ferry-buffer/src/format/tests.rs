use super::*;
use proptest::prelude::*;

fn key_strategy() -> impl Strategy<Value = ChunkKey> {
    (
        proptest::option::of(".{0,40}"),
        proptest::option::of(any::<i64>()),
        proptest::collection::vec((".{0,10}", ".{0,10}"), 0..5),
    )
        .prop_map(|(tag, timekey, variables)| ChunkKey {
            tag,
            timekey,
            variables,
        })
}

proptest! {
    #[test]
    fn header_roundtrips(
        key in key_strategy(),
        id in any::<[u8; 16]>(),
        created in -1_000_000_000_000i64..4_000_000_000_000_000_000,
        seq in any::<u64>(),
        gzip in any::<bool>(),
    ) {
        let h = Header { id: ChunkId(id), gzip, created: from_nanos(created), create_seq: seq, key, len: 0 };
        let bytes = encode_header(&h).unwrap();
        prop_assert_eq!(bytes.len() % RECORD_LEN, 0);
        let back = decode_header(&bytes).unwrap();
        prop_assert_eq!(back.len, bytes.len());
        prop_assert_eq!(Header { len: 0, ..back }, h);
    }

    #[test]
    fn any_flipped_header_bit_is_detected(key in key_strategy(), bit in 0usize..(96 * 8)) {
        let h = Header { id: ChunkId([7; 16]), gzip: false, created: UNIX_EPOCH, create_seq: 1, key, len: 0 };
        let mut bytes = encode_header(&h).unwrap();
        let bit = bit % (bytes.len() * 8);
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(decode_header(&bytes).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_header_decoder(data in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = decode_header(&data);
        let mut framed = MAGIC.to_vec();
        framed.extend_from_slice(&data);
        let _ = decode_header(&framed);
    }

    #[test]
    fn records_roundtrip_and_reject_other_chunks_and_positions(
        crc in any::<u32>(), end in any::<u64>(), records in any::<u64>(), index in any::<u64>(),
    ) {
        let seed = record_seed(&ChunkId([1; 16]));
        let rec = Record::Append { crc, end, records };
        let b = encode_record(&rec, index, seed);
        prop_assert_eq!(decode_record(&b, index, seed), Ok(rec));
        prop_assert_eq!(decode_record(&b, index, record_seed(&ChunkId([2; 16]))), Err(RecordError::Checksum));
        prop_assert!(decode_record(&b, index.wrapping_add(1), seed).is_err());
    }
}

#[test]
fn zeroed_record_slot_is_invalid() {
    let seed = record_seed(&ChunkId([3; 16]));
    assert!(decode_record(&[0u8; RECORD_LEN], 0, seed).is_err());
}

#[test]
fn oversized_key_is_refused() {
    let h = Header {
        id: ChunkId([0; 16]),
        gzip: false,
        created: UNIX_EPOCH,
        create_seq: 0,
        key: ChunkKey::tag("x".repeat(MAX_HEADER_LEN)),
        len: 0,
    };
    assert!(matches!(
        encode_header(&h),
        Err(HeaderError::KeyTooLarge(_))
    ));
}

#[test]
fn file_names_parse_back() {
    let id = ChunkId([0xab; 16]);
    let n = file_name("out.fwd", &id, PAYLOAD_SUFFIX);
    assert_eq!(parse_file_name("out.fwd", &n), Some((id, PAYLOAD_SUFFIX)));
    assert_eq!(parse_file_name("out", &n), None);
    assert_eq!(parse_file_name("out.fwd", "out.fwd.lock"), None);
}

#[test]
fn quarantine_names_parse_back_with_their_collision_number() {
    let id = ChunkId([0xab; 16]);
    for n in [0, 1, 12] {
        let file = format!("{}.{REASON_SUFFIX}", quarantine_base("buffer", &id, n));
        assert_eq!(
            parse_quarantine_file_name("buffer", &file),
            Some((id, n, REASON_SUFFIX))
        );
    }
    let plain = file_name("buffer", &id, JOURNAL_SUFFIX);
    assert_eq!(
        parse_quarantine_file_name("buffer", &plain),
        Some((id, 0, JOURNAL_SUFFIX))
    );
    for bad in ["-0", "-01", "-+1", "-x", "-"] {
        let file = format!("buffer.{}{bad}.payload", id.to_hex());
        assert_eq!(parse_quarantine_file_name("buffer", &file), None, "{file}");
    }
}
