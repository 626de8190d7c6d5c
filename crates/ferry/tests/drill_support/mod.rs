//! What the drills share: a sender that streams numbered events with acks and re-sends on
//! failure, what the aggregators printed, and the tally of one against the other.
#![allow(dead_code, clippy::unwrap_used)] // test support: a failed unwrap is a failed test

use crate::common::{AckedSender, Ferry, seqs_of};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// A sender that streams batches of `batch` events with acks to `addr`, reconnecting and
/// re-sending the same batch whenever a send fails (ferry killed, no ack in time), until
/// stopped. `acked` holds every sequence number whose ack came back.
pub struct Stream {
    acked: Arc<Mutex<Vec<u64>>>,
    /// How long each acknowledged send took, from the request to its ack.
    latencies: Arc<Mutex<Vec<Duration>>>,
    failures: Arc<Mutex<u64>>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

impl Stream {
    pub fn start(
        addr: SocketAddr,
        batch: u64,
        pad: usize,
        pause: Duration,
        timeout: Duration,
    ) -> Self {
        Self::spawn(addr, batch, pad, pause, timeout, 0, false)
    }

    /// [`Self::start`] opening a new connection for every batch, so each send goes through the
    /// accept loop; sequence numbers start at `first` (to run beside another stream).
    pub fn start_reconnecting(
        addr: SocketAddr,
        batch: u64,
        pause: Duration,
        timeout: Duration,
        first: u64,
    ) -> Self {
        Self::spawn(addr, batch, 100, pause, timeout, first, true)
    }

    fn spawn(
        addr: SocketAddr,
        batch: u64,
        pad: usize,
        pause: Duration,
        timeout: Duration,
        first: u64,
        reconnect: bool,
    ) -> Self {
        let acked = Arc::new(Mutex::new(Vec::new()));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        let l = Arc::clone(&latencies);
        let failures = Arc::new(Mutex::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (a, f, s) = (Arc::clone(&acked), Arc::clone(&failures), Arc::clone(&stop));
        let handle = thread::spawn(move || {
            let mut seq = first;
            let mut sender: Option<AckedSender> = None;
            while !s.load(Ordering::SeqCst) {
                let conn = match sender.as_mut() {
                    Some(c) => c,
                    None => match AckedSender::connect_addr(addr, timeout) {
                        Ok(c) => sender.insert(c),
                        Err(_) => {
                            // A refused or timed-out connection counts as a failed send.
                            *f.lock().unwrap() += 1;
                            thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                    },
                };
                let sent = Instant::now();
                match conn.send(&format!("drill.{}", seq / batch % 4), seq..seq + batch, pad) {
                    Ok(()) => {
                        l.lock().unwrap().push(sent.elapsed());
                        a.lock().unwrap().extend(seq..seq + batch);
                        seq += batch;
                        if reconnect {
                            sender = None;
                        }
                        thread::sleep(pause);
                    }
                    Err(_) => {
                        *f.lock().unwrap() += 1;
                        sender = None;
                        thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        });
        Self {
            acked,
            latencies,
            failures,
            stop,
            handle: Some(handle),
        }
    }

    pub fn acked_count(&self) -> usize {
        self.acked.lock().unwrap().len()
    }

    /// The 50th and 99th percentile of the acknowledged sends' latencies so far.
    pub fn latency_p50_p99(&self) -> (Duration, Duration) {
        let mut l = self.latencies.lock().unwrap().clone();
        l.sort();
        let at = |q: f64| {
            l.get(((l.len() as f64 * q) as usize).min(l.len().saturating_sub(1)))
                .copied()
                .unwrap_or_default()
        };
        (at(0.50), at(0.99))
    }

    pub fn failures(&self) -> u64 {
        *self.failures.lock().unwrap()
    }

    /// Stops and returns every acknowledged sequence number.
    pub fn finish(mut self) -> Vec<u64> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.handle.take() {
            h.join().unwrap();
        }
        self.acked.lock().unwrap().clone()
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Sequence numbers printed (JSON lines on stdout) by every incarnation of an aggregator.
#[derive(Default)]
pub struct Printed {
    pub seqs: Vec<u64>,
}

impl Printed {
    pub fn take(&mut self, f: &Ferry) -> usize {
        let lines: Vec<String> = f.stdout.try_iter().collect();
        let n = seqs_of(&lines);
        self.seqs.extend(&n);
        n.len()
    }

    /// Reads what a killed process had printed, up to the end of its stdout.
    pub fn drain(&mut self, f: &Ferry) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut lines = Vec::new();
        while Instant::now() < deadline {
            match f.stdout.recv_timeout(Duration::from_millis(100)) {
                Ok(l) => lines.push(l),
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        self.seqs.extend(seqs_of(&lines));
    }
}

/// (missing, duplicates) of `printed` against `acked`.
pub fn tally(acked: &[u64], printed: &[&[u64]]) -> (Vec<u64>, u64) {
    let mut counts: BTreeMap<u64, u64> = BTreeMap::new();
    for s in printed.iter().flat_map(|p| p.iter()) {
        *counts.entry(*s).or_default() += 1;
    }
    let missing = acked
        .iter()
        .filter(|s| !counts.contains_key(s))
        .copied()
        .collect();
    let dups = counts.values().map(|c| c - 1).sum();
    (missing, dups)
}
