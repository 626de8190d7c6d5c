#![no_main]
//! Arbitrary bytes as a chunk file (live or quarantined) read by the offline inspection of
//! `ferry buffer ls|verify|salvage`. It must never panic nor write.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ferry_buffer::fuzzing::inspect_chunk(data);
});
