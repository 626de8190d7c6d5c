#![no_main]
//! Arbitrary bytes, cut into reads, framed at a delimiter (the tcp input). Must never panic,
//! never hand out an oversize message, never hold more than the limit.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ferry_proto::fuzzing::delimited(data);
});
