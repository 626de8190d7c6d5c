#![no_main]
//! Arbitrary bytes as a Scribe connection (framed or unframed, chosen by the first byte), in
//! small reads: must never panic; every decoded call's reply reads back.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ferry_proto::fuzzing::thrift(data);
});
