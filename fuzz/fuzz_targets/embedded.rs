#![no_main]
//! Arbitrary bytes as the code of a `"#{...}"` value: every input reaches the evaluator of
//! embedded code. Must never panic, and never read anything but the fixed lookup.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ferry_config::fuzzing::embedded(data);
});
