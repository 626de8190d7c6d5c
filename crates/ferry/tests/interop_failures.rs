//! TLS failures between ferry and real peers: a Fluentd that offers only a cipher ferry refuses
//! (as a server and as a client), a server that resets the connection in the middle of the TLS
//! handshake, and a Fluentd that allows TLS 1.3 only. Each failure gets one clear line naming
//! the peer and the reason, not one per chunk per retry, and nothing ferry acknowledged is
//! lost: once the server is fixed, every event arrives exactly once.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;
mod interop_support;

use common::{Ferry, Pki, free_port};
use interop_support::{
    Mode, Output, PeerKind::Fluentd, PeerProc, Sides, delivery_problems, ferry_complaints,
    peer_complaints, peers, send_waves, tag_of,
};
use std::io::Read;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// Waits until `cond` holds (polling every 100 ms), failing with `what` and `log()` after `limit`.
fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool, log: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "{what} within {limit:?}:\n{}",
            log()
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// ferry's Forward output to `localhost:port` over TLS, with a fast recovery (heartbeats every
/// 500 ms, `recover_wait 1s`) so that the test does not wait out the defaults.
fn tls_forwarder(sides: &Sides<'_>, in_port: u16, out_port: u16) -> String {
    let plain = Sides::new(Mode::Plain, sides.pki);
    plain.ferry_source(in_port)
        + &sides.ferry_forward("interop.**", out_port).replace(
            "  <server>",
            "  heartbeat_interval 500ms\n  recover_wait 1s\n  <server>",
        )
}

/// ferry's log lines at warn or above that mention `needle`.
fn warnings(log: &[String], needle: &str) -> Vec<String> {
    ferry_complaints(log, "ferry")
        .filter(|l| l.contains(needle))
        .collect()
}

/// After the failure episode: the fixed Fluentd TLS server on `port` gets every event of `tag`
/// exactly once, and ferry says the server answers again.
fn fixed_server_gets_everything(ferry: &Ferry, sides: &Sides<'_>, port: u16, tag: &str) {
    let peers = peers().unwrap();
    let good = PeerProc::start(
        &peers,
        Fluentd,
        &(sides.fluentd_source(port) + &Sides::fluentd_stdout("interop.**")),
        port,
    );
    let problems = delivery_problems(
        &Output::Fluentd(&good),
        tag,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    assert!(
        problems.is_empty(),
        "after the fix: {}\nferry's log:\n{}\nfluentd's log:\n{}",
        problems.join("\n"),
        ferry.stderr_so_far().join("\n"),
        good.log()
    );
    let mut seen = Vec::new();
    ferry.wait_stderr("answers again after", Duration::from_secs(10), &mut seen);
}

#[test]
fn a_fluentd_server_offering_only_a_cipher_ferry_refuses_is_explained_once_and_nothing_acked_is_lost()
 {
    let Some(peers) = peers() else { return };
    let pki = Pki::new();
    let tls = Sides::new(Mode::Tls, &pki);
    let (in_port, out_port) = (free_port(), free_port());
    // TLS 1.2 (Fluentd's default) with one suite: RSA key exchange, CBC. rustls implements
    // neither (no forward secrecy), so no handshake can succeed.
    let refusing = tls
        .fluentd_source(out_port)
        .replace("  </transport>", "    ciphers AES128-SHA\n  </transport>")
        + &Sides::fluentd_stdout("interop.**");
    let bad = PeerProc::start(&peers, Fluentd, &refusing, out_port);
    let ferry = Ferry::start(&tls_forwarder(&tls, in_port, out_port), in_port);
    let tag = tag_of("cipher_refused");
    // Every event is acknowledged by ferry: from here on it answers for them.
    send_waves(in_port, &tag, true);
    let attempts = || {
        bad.log_lines()
            .iter()
            .filter(|l| l.contains("no shared cipher"))
            .count()
    };
    wait_for(
        Duration::from_secs(20),
        "Fluentd refuses ten handshakes",
        || attempts() >= 10,
        || bad.log(),
    );
    let log = ferry.stderr_so_far();
    let tls_lines = warnings(&log, "TLS handshake");
    assert!(
        tls_lines
            .iter()
            .any(|l| l.contains(&format!("server 'localhost:{out_port}'"))
                && l.contains(&format!("127.0.0.1:{out_port}"))
                && l.contains("HandshakeFailure")
                && l.contains("ferry offers TLS 1.3 or 1.2")),
        "no line names the server and the alert: {log:#?}"
    );
    // Heartbeats and flushes failed at least ten times; the reason is logged once for the
    // server (connections), once for the buffer (flushes) and once when the server is detached.
    assert!(
        tls_lines.len() <= 3,
        "{} lines for {} failed handshakes: {tls_lines:#?}",
        tls_lines.len(),
        attempts()
    );
    bad.stop();
    fixed_server_gets_everything(&ferry, &tls, out_port, &tag);
}

#[test]
fn a_server_that_resets_mid_handshake_is_explained_once_and_nothing_acked_is_lost() {
    let Some(_) = peers() else { return };
    let pki = Pki::new();
    let tls = Sides::new(Mode::Tls, &pki);
    let (in_port, out_port) = (free_port(), free_port());
    // A server that reads the ClientHello and resets the connection (SO_LINGER 0), as a
    // crashing or misconfigured TLS terminator does. No real peer does this on purpose.
    let listener = TcpListener::bind(("127.0.0.1", out_port)).unwrap();
    listener.set_nonblocking(true).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let resets = Arc::new(AtomicUsize::new(0));
    let resetter = {
        let (stop, resets) = (Arc::clone(&stop), Arc::clone(&resets));
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) => {
                        s.set_nonblocking(false).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                        let mut hello = [0u8; 64];
                        if matches!(s.read(&mut hello), Ok(n) if n > 0) {
                            socket2::SockRef::from(&s)
                                .set_linger(Some(Duration::ZERO))
                                .unwrap();
                            resets.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => thread::sleep(Duration::from_millis(10)),
                }
            }
        })
    };
    let ferry = Ferry::start(&tls_forwarder(&tls, in_port, out_port), in_port);
    let tag = tag_of("reset_mid_handshake");
    send_waves(in_port, &tag, true);
    wait_for(
        Duration::from_secs(20),
        "ten handshakes reset",
        || resets.load(Ordering::Relaxed) >= 10,
        || ferry.stderr_so_far().join("\n"),
    );
    let log = ferry.stderr_so_far();
    let tls_lines = warnings(&log, "TLS handshake");
    assert!(
        tls_lines
            .iter()
            .any(|l| l.contains(&format!("server 'localhost:{out_port}'")) && l.contains("reset")),
        "no line names the server and the reset: {log:#?}"
    );
    assert!(
        tls_lines.len() <= 3,
        "{} lines for {} reset handshakes: {tls_lines:#?}",
        tls_lines.len(),
        resets.load(Ordering::Relaxed)
    );
    stop.store(true, Ordering::Relaxed);
    resetter.join().unwrap();
    fixed_server_gets_everything(&ferry, &tls, out_port, &tag);
}

#[test]
fn a_fluentd_client_offering_only_a_cipher_ferry_refuses_is_named_with_its_address() {
    let Some(peers) = peers() else { return };
    let pki = Pki::new();
    let tls = Sides::new(Mode::Tls, &pki);
    let (ferry_port, fluentd_port) = (free_port(), free_port());
    let ferry = Ferry::start(
        &(tls.ferry_source(ferry_port) + &Sides::ferry_stdout("interop.**")),
        ferry_port,
    );
    let plain = Sides::new(Mode::Plain, &pki);
    let conf = plain.fluentd_source(fluentd_port)
        + &tls.fluentd_forward("interop.**", ferry_port).replace(
            "  transport tls\n",
            "  transport tls\n  tls_version TLSv1_2\n  tls_ciphers AES128-SHA\n",
        );
    let fluentd = PeerProc::start(&peers, Fluentd, &conf, fluentd_port);
    let tag = tag_of("client_cipher_refused");
    send_waves(fluentd_port, &tag, false);
    let mut seen = Vec::new();
    let line = ferry.wait_stderr(
        "TLS handshake with 127.0.0.1:",
        Duration::from_secs(20),
        &mut seen,
    );
    assert!(
        line.contains("[warn]") && line.contains("failed") && line.contains("connection closed"),
        "{line}"
    );
    assert!(
        line.contains("share no protocol version, cipher suite or key exchange group"),
        "the line does not say why: {line}"
    );
    // Fluentd retries and fails the same way: it logs the refusal too.
    wait_for(
        Duration::from_secs(20),
        "Fluentd reports the refused handshake",
        || peer_complaints(&fluentd).any(|l| l.contains("SSLError")),
        || fluentd.log(),
    );
    // Nothing got through, so ferry acknowledged nothing.
    let printed: Vec<String> = ferry.stdout.try_iter().collect();
    assert!(printed.is_empty(), "{printed:#?}");
}

#[test]
fn ferry_sends_to_a_fluentd_that_allows_tls_1_3_only_without_resuming_sessions() {
    let Some(peers) = peers() else { return };
    let pki = Pki::new();
    let tls = Sides::new(Mode::Tls, &pki);
    let (in_port, out_port) = (free_port(), free_port());
    // Fluentd's TLS 1.3 server issues session tickets, and refuses each one offered back.
    let conf = tls.fluentd_source(out_port).replace(
        "  </transport>",
        "    min_version TLSv1_3\n    max_version TLSv1_3\n  </transport>",
    ) + &Sides::fluentd_stdout("interop.**");
    let fluentd = PeerProc::start(&peers, Fluentd, &conf, out_port);
    let ferry = Ferry::start(&tls_forwarder(&tls, in_port, out_port), in_port);
    let tag = tag_of("tls13");
    send_waves(in_port, &tag, true);
    // Heartbeats open a connection every 500 ms: a few seconds make many handshakes.
    let mut problems = delivery_problems(
        &Output::Fluentd(&fluentd),
        &tag,
        Duration::from_secs(30),
        Duration::from_secs(3),
    );
    problems.extend(peer_complaints(&fluentd).map(|l| format!("fluentd logged: {l}")));
    problems.extend(ferry_complaints(&ferry.stderr_so_far(), "ferry"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn ferry_offers_only_the_tls_1_2_suites_its_tls_ciphers_selects() {
    let Some(peers) = peers() else { return };
    let pki = Pki::new();
    let tls = Sides::new(Mode::Tls, &pki);
    // Fluentd's TLS server (TLS 1.2 only by default) with the test's ECDSA certificate.
    let out_port = free_port();
    let fluentd = PeerProc::start(
        &peers,
        Fluentd,
        &(tls.fluentd_source(out_port) + &Sides::fluentd_stdout("interop.**")),
        out_port,
    );
    let with_ciphers = |list: &str, in_port: u16| {
        tls_forwarder(&tls, in_port, out_port).replace(
            "  transport tls\n",
            &format!("  transport tls\n  tls_ciphers {list}\n"),
        )
    };
    // RSA suites only: nothing ferry offers can use an ECDSA certificate.
    let rsa_port = free_port();
    let rsa = Ferry::start(&with_ciphers("ECDHE+aRSA:!aECDSA", rsa_port), rsa_port);
    let mut seen = Vec::new();
    let line = rsa.wait_stderr("TLS handshake with", Duration::from_secs(20), &mut seen);
    assert!(
        line.contains(&format!("server 'localhost:{out_port}'")),
        "{line}"
    );
    drop(rsa);
    // An ECDSA suite named by its OpenSSL name: every event arrives.
    let ecdsa_port = free_port();
    let ecdsa = Ferry::start(
        &with_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256", ecdsa_port),
        ecdsa_port,
    );
    let tag = tag_of("tls_ciphers");
    send_waves(ecdsa_port, &tag, true);
    let problems = delivery_problems(
        &Output::Fluentd(&fluentd),
        &tag,
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    assert!(
        problems.is_empty(),
        "{}\nferry's log:\n{}",
        problems.join("\n"),
        ecdsa.stderr_so_far().join("\n")
    );
}

#[test]
fn a_tls_ciphers_list_that_selects_no_suite_ferry_has_is_a_configuration_error() {
    let (ok, _, err) = common::dry_run(
        "<match **>\n  @type forward\n  transport tls\n  tls_ciphers AES128-SHA:DES-CBC3-SHA\n  \
         <server>\n    host 127.0.0.1\n  </server>\n</match>\n",
    );
    assert!(!ok, "{err}");
    assert!(
        err.contains("tls_ciphers")
            && err.contains("selects none of the TLS 1.2 cipher suites ferry has")
            && err.contains("ECDHE-ECDSA-AES128-GCM-SHA256"),
        "{err}"
    );
}
