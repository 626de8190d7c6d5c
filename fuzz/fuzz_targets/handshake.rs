#![no_main]
//! Arbitrary bytes as HELO, PING, PONG and ack replies. Must never panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    ferry_proto::fuzzing::handshake(data);
});
