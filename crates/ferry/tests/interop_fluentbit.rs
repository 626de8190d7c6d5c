//! ferry and the real Fluent Bit 4.2.8, live, in both directions and every Forward mode: plain,
//! `require_ack_response`, `compress gzip`, shared key, shared key with user authentication,
//! and TLS with hostname verification. Each cell sends 3,000 numbered events in three waves of
//! ten requests and checks that every event arrives exactly once with its tag, record and
//! EventTime (nanoseconds included). See `interop_support`.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod interop_support;

use interop_support::{Direction::*, Mode::*, PeerKind::FluentBit, run_cell};

#[test]
fn fluentbit_to_ferry_plain_delivers_every_event_once_unaltered() {
    run_cell(FluentBit, PeerToFerry, Plain);
}

#[test]
fn fluentbit_to_ferry_with_acks_delivers_every_event_once_unaltered() {
    run_cell(FluentBit, PeerToFerry, Ack);
}

#[test]
fn fluentbit_to_ferry_gzip_compressed_delivers_every_event_once_unaltered() {
    run_cell(FluentBit, PeerToFerry, Gzip);
}

#[test]
fn fluentbit_to_ferry_with_a_shared_key_delivers_every_event_once_unaltered() {
    run_cell(FluentBit, PeerToFerry, SharedKey);
}

#[test]
fn fluentbit_to_ferry_with_a_shared_key_and_user_auth_delivers_every_event_once_unaltered() {
    run_cell(FluentBit, PeerToFerry, UserAuth);
}

#[test]
fn fluentbit_to_ferry_over_tls_with_hostname_verification_delivers_every_event_once_unaltered() {
    run_cell(FluentBit, PeerToFerry, Tls);
}

#[test]
fn fluentbit_to_ferry_over_tls_with_a_certificate_ferry_made_at_start_delivers_every_event_once() {
    run_cell(FluentBit, PeerToFerry, TlsInsecure);
}

#[test]
fn ferry_to_fluentbit_plain_delivers_every_event_once_unaltered() {
    run_cell(FluentBit, FerryToPeer, Plain);
}

#[test]
fn ferry_to_fluentbit_with_acks_delivers_every_event_once_unaltered() {
    run_cell(FluentBit, FerryToPeer, Ack);
}

#[test]
fn ferry_to_fluentbit_gzip_compressed_delivers_every_event_once_unaltered() {
    run_cell(FluentBit, FerryToPeer, Gzip);
}

#[test]
fn ferry_to_fluentbit_with_a_shared_key_delivers_every_event_once_unaltered() {
    run_cell(FluentBit, FerryToPeer, SharedKey);
}

#[test]
fn ferry_to_fluentbit_with_a_shared_key_and_user_auth_delivers_every_event_once_unaltered() {
    run_cell(FluentBit, FerryToPeer, UserAuth);
}

#[test]
fn ferry_to_fluentbit_over_tls_with_hostname_verification_delivers_every_event_once_unaltered() {
    run_cell(FluentBit, FerryToPeer, Tls);
}
#[test]
fn ferry_to_fluentbit_to_ferry_with_acks_on_both_hops_delivers_every_event_once() {
    interop_support::run_chain(FluentBit);
}
