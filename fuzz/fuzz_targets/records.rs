#![no_main]
//! Arbitrary bytes as an http input body (JSON, ndjson or msgpack, chosen by the first byte):
//! must never panic, and every record handed over must be a whole map.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ferry_proto::fuzzing::records(data);
});
