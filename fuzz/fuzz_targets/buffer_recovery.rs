#![no_main]
//! Arbitrary bytes as a chunk file found at start-up. Recovery must never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ferry_buffer::fuzzing::recover_chunk(data);
});
