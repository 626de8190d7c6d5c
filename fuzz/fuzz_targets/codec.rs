#![no_main]
//! Arbitrary bytes into the incremental request decoder, split at a data-chosen point,
//! then every decoded request's entries walked. Must never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ferry_proto::fuzzing::codec(data);
});
