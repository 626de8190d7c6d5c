#![no_main]
//! Arbitrary bytes as a JSON log line read in one pass: must never panic, and a line it reads
//! must give exactly what the full JSON parser gives.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ferry_proto::fuzzing::json_flat(data);
});
