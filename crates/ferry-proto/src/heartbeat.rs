//! The UDP heartbeat.
//!
//! A client (`heartbeat_type udp`) sends the single byte `0x00` to the server's port number on
//! UDP; the server answers `0x00` to the datagram's source address. Fluentd's in_forward answers
//! any datagram (reading at most [`MAX_DATAGRAM`] bytes of it), so ferry does too.
//! With `heartbeat_type transport` nothing is sent: a TCP connection (plus the handshake, when
//! configured) is the heartbeat.

/// The heartbeat datagram, in both directions.
pub const HEARTBEAT: &[u8] = &[0x00];

/// The only byte of a heartbeat datagram.
pub const HEARTBEAT_BYTE: u8 = 0x00;

/// Bytes of an incoming datagram that a server reads (the rest is discarded).
pub const MAX_DATAGRAM: usize = 128;

/// Server side: the reply to any received datagram.
pub fn reply(_datagram: &[u8]) -> &'static [u8] {
    HEARTBEAT
}

/// Client side: whether a datagram is a heartbeat reply.
pub fn is_heartbeat(datagram: &[u8]) -> bool {
    datagram == HEARTBEAT
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_datagram_is_answered_with_one_zero_byte() {
        for d in [&b"\x00"[..], b"hello", b"\x93\xa0\x90", b""] {
            assert_eq!(reply(d), [0x00]);
        }
        assert!(is_heartbeat(&[0]));
        assert!(!is_heartbeat(&[0, 0]));
        assert!(!is_heartbeat(&[]));
    }
}
