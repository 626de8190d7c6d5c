//! ferry and the real Fluentd 1.16.11, live, in both directions and every Forward mode: plain,
//! `require_ack_response`, `compress gzip`, shared key, shared key with user authentication,
//! and TLS with hostname verification. Each cell sends 3,000 numbered events in three waves of
//! ten requests and checks that every event arrives exactly once with its tag, record and
//! EventTime (nanoseconds included). See `interop_support`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod interop_support;

use interop_support::{Direction::*, Mode::*, PeerKind::Fluentd, run_cell};

#[test]
fn fluentd_to_ferry_plain_delivers_every_event_once_unaltered() {
    run_cell(Fluentd, PeerToFerry, Plain);
}

#[test]
fn fluentd_to_ferry_with_acks_delivers_every_event_once_unaltered() {
    run_cell(Fluentd, PeerToFerry, Ack);
}

#[test]
fn fluentd_to_ferry_gzip_compressed_delivers_every_event_once_unaltered() {
    run_cell(Fluentd, PeerToFerry, Gzip);
}

#[test]
fn fluentd_to_ferry_with_a_shared_key_delivers_every_event_once_unaltered() {
    run_cell(Fluentd, PeerToFerry, SharedKey);
}

#[test]
fn fluentd_to_ferry_with_a_shared_key_and_user_auth_delivers_every_event_once_unaltered() {
    run_cell(Fluentd, PeerToFerry, UserAuth);
}

#[test]
fn fluentd_to_ferry_over_tls_with_hostname_verification_delivers_every_event_once_unaltered() {
    run_cell(Fluentd, PeerToFerry, Tls);
}

#[test]
fn fluentd_to_ferry_over_tls_with_a_certificate_ferry_made_at_start_delivers_every_event_once() {
    run_cell(Fluentd, PeerToFerry, TlsInsecure);
}

#[test]
fn ferry_to_fluentd_over_tls_with_a_certificate_fluentd_made_at_start_delivers_every_event_once() {
    run_cell(Fluentd, FerryToPeer, TlsInsecure);
}

#[test]
fn ferry_to_fluentd_plain_delivers_every_event_once_unaltered() {
    run_cell(Fluentd, FerryToPeer, Plain);
}

#[test]
fn ferry_to_fluentd_with_acks_delivers_every_event_once_unaltered() {
    run_cell(Fluentd, FerryToPeer, Ack);
}

#[test]
fn ferry_to_fluentd_gzip_compressed_delivers_every_event_once_unaltered() {
    run_cell(Fluentd, FerryToPeer, Gzip);
}

#[test]
fn ferry_to_fluentd_with_a_shared_key_delivers_every_event_once_unaltered() {
    run_cell(Fluentd, FerryToPeer, SharedKey);
}

#[test]
fn ferry_to_fluentd_with_a_shared_key_and_user_auth_delivers_every_event_once_unaltered() {
    run_cell(Fluentd, FerryToPeer, UserAuth);
}

#[test]
fn ferry_to_fluentd_over_tls_with_hostname_verification_delivers_every_event_once_unaltered() {
    run_cell(Fluentd, FerryToPeer, Tls);
}
#[test]
fn ferry_to_fluentd_to_ferry_with_acks_on_both_hops_delivers_every_event_once() {
    interop_support::run_chain(Fluentd);
}
