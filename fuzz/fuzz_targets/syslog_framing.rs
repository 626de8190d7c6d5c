#![no_main]
//! Arbitrary bytes, cut into reads, as a syslog TCP stream (octet counting or newlines, chosen
//! from the first byte). Must never panic, never hand out an oversize message.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ferry_proto::fuzzing::syslog_framing(data);
});
