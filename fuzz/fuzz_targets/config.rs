#![no_main]
//! Arbitrary text into the Fluentd-syntax configuration parser. Must never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ferry_config::fuzzing::parse(data);
});
