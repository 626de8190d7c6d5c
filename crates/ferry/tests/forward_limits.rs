//! Limits against the real binary: the connection limit (extra connections wait, then are
//! served), running out of file descriptors (logged, no crash, no busy loop, recovers), an
//! oversize request (refused, peer and size logged, other connections unaffected), and a
//! failed commit (no ack, connection closed).

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test

mod common;

use bytes::BytesMut;
use common::{Ferry, free_port, tcp_ready};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

fn config(port: u16, extra: &str, output: &str) -> String {
    format!(
        "<source>\n  @type forward\n  bind 127.0.0.1\n  port {port}\n{extra}\n</source>\n<match **>\n  @type {output}\n</match>\n"
    )
}

fn request(entries_count: usize, chunk: &str) -> Vec<u8> {
    common::packed_request(
        "limits",
        &common::str_record(&[("pad", &[b'x'; 100])]),
        entries_count,
        chunk,
    )
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// The chunk of the next ack; `None` when ferry closed the connection instead.
fn ack(s: &mut TcpStream) -> Option<Vec<u8>> {
    common::read_ack(s, &mut BytesMut::new()).ok()
}

#[test]
fn connections_beyond_max_connections_wait_and_are_served_when_one_closes() {
    let port = free_port();
    let ferry = Ferry::start(&config(port, "  max_connections 2", "null"), port);
    let first = connect(port);
    let mut second = connect(port);
    second.write_all(&request(1, "second")).unwrap();
    assert_eq!(
        ack(&mut second).unwrap(),
        b"second",
        "the second connection has a slot"
    );
    let mut third = connect(port);
    third.write_all(&request(1, "third")).unwrap();
    let mut seen = Vec::new();
    let line = ferry.wait_stderr(
        "connection slots are taken",
        Duration::from_secs(10),
        &mut seen,
    );
    assert!(line.contains("max_connections"), "{line}");
    // Not refused: it waits in the backlog, unanswered, while both slots are held.
    third
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut b = [0u8; 64];
    let waited = third.read(&mut b);
    assert!(
        matches!(&waited, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
        "the third connection got {waited:?} while over the limit"
    );
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(
        ack(&mut third).unwrap(),
        b"third",
        "served once a slot freed"
    );
}

/// utime + stime of `pid` in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn running_out_of_file_descriptors_is_logged_never_spins_and_recovers() {
    let port = free_port();
    let mut cmd = Command::new("prlimit");
    cmd.args(["--nofile=48:48", common::ferry_bin()]);
    // max_connections is explicit, so ferry keeps it although the limit cannot hold it.
    let ferry = Ferry::start_cmd(
        cmd,
        &config(port, "  max_connections 1000", "null"),
        tcp_ready(port),
    );
    let mut held = Vec::new();
    let mut seen = Vec::new();
    for i in 0..80 {
        let mut s = connect(port);
        s.write_all(&request(1, &format!("c{i}"))).unwrap();
        held.push(s);
    }
    let line = ferry.wait_stderr(
        "out of file descriptors",
        Duration::from_secs(10),
        &mut seen,
    );
    assert!(
        line.contains("[error]") && line.contains("ulimit -n"),
        "{line}"
    );
    // Exhausted for a second: the accept loop backs off instead of spinning.
    let pid = ferry.child.id();
    let before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(pid) - before;
    assert!(
        used < 50,
        "ferry used {used} ticks of CPU in one second while out of descriptors"
    );
    assert_eq!(
        seen.iter()
            .filter(|l| l.contains("out of file descriptors"))
            .count(),
        1,
        "logged once per episode"
    );
    drop(held);
    // Descriptors free up: the connections that waited are accepted (and close), new ones work.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut s = connect(port);
        s.write_all(&request(1, "after")).unwrap();
        if ack(&mut s).as_deref() == Some(b"after") {
            break;
        }
        assert!(Instant::now() < deadline, "ferry did not recover");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(ferry.child.id() == pid);
}

#[test]
fn an_oversize_request_is_refused_and_logged_and_other_connections_go_on() {
    let port = free_port();
    let ferry = Ferry::start(&config(port, "  chunk_size_limit 64k", "null"), port);
    let mut good = connect(port);
    good.write_all(&request(10, "before")).unwrap();
    assert_eq!(ack(&mut good).unwrap(), b"before");
    let mut big = connect(port);
    let local = big.local_addr().unwrap();
    let oversize = request(2000, "big");
    assert!(oversize.len() > 64 * 1024);
    let _ = big.write_all(&oversize);
    assert_eq!(
        ack(&mut big),
        None,
        "the oversize request's connection is closed, not acked"
    );
    let mut seen = Vec::new();
    let line = ferry.wait_stderr(
        "exceeds chunk_size_limit",
        Duration::from_secs(10),
        &mut seen,
    );
    assert!(
        line.contains(&local.to_string()) && line.contains("65536"),
        "{line}"
    );
    good.write_all(&request(10, "after")).unwrap();
    assert_eq!(ack(&mut good).unwrap(), b"after");
}

#[test]
fn a_failed_commit_sends_no_ack_and_closes_the_connection() {
    let port = free_port();
    // stdout is /dev/full: every write of the stdout output fails, so nothing is committed.
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "exec \"$0\" \"$@\" > /dev/full", common::ferry_bin()]);
    let cfg = config(port, "", "stdout");
    let ferry = Ferry::start_cmd(cmd, &cfg, tcp_ready(port));
    let mut s = connect(port);
    let local = s.local_addr().unwrap();
    s.write_all(&request(3, "never-acked")).unwrap();
    assert_eq!(
        ack(&mut s),
        None,
        "no ack for uncommitted events; the connection is closed"
    );
    let mut seen = Vec::new();
    let line = ferry.wait_stderr(
        "connection closed so the client re-sends",
        Duration::from_secs(10),
        &mut seen,
    );
    assert!(line.contains(&local.to_string()), "{line}");
}
