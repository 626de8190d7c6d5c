//! The machine's limits, measured in the same run as the scenarios: loopback TCP throughput (one
//! plain socket pair, a sender and a receiver thread) and sequential disk writes in the
//! scenario's working directory, 16 MiB at a time and one `fdatasync` at the end: with
//! `O_DIRECT` (what the device takes; ferry writes new archive files the same way) and through
//! the page cache (what `dd conv=fdatasync` reports).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The limits a scenario's figures are compared with.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Limits {
    pub loopback_mb_s: f64,
    /// Direct writes (page-cache writes where the filesystem refuses direct I/O).
    pub disk_mb_s: f64,
    /// Writes through the page cache.
    pub disk_cached_mb_s: f64,
}

/// MB/s pushed through one loopback TCP connection for `secs` (after a short warm-up).
pub fn loopback_mb_s(secs: Duration) -> std::io::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let r = Arc::clone(&received);
    let receiver = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return Ok(()),
                Ok(n) => {
                    r.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
    });
    let st = Arc::clone(&stop);
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let mut s = TcpStream::connect(addr)?;
        let block = vec![0x5au8; 1 << 20];
        while !st.load(Ordering::Relaxed) {
            s.write_all(&block)?;
        }
        Ok(())
    });
    std::thread::sleep(Duration::from_millis(300));
    let (t0, b0) = (Instant::now(), received.load(Ordering::Relaxed));
    std::thread::sleep(secs);
    let (t1, b1) = (Instant::now(), received.load(Ordering::Relaxed));
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join();
    let _ = receiver.join();
    if let Ok(Err(e)) = sent {
        return Err(e);
    }
    Ok((b1 - b0) as f64 / 1e6 / t1.duration_since(t0).as_secs_f64())
}

/// MB/s of writing `bytes` to a new file in `dir` in 16 MiB blocks, then fdatasync; `direct`
/// bypasses the page cache (`O_DIRECT`) where the filesystem allows it.
pub fn disk_mb_s(dir: &Path, bytes: u64, direct: bool) -> std::io::Result<f64> {
    use std::os::unix::fs::OpenOptionsExt;
    const BLOCK: usize = 16 << 20;
    const ALIGN: usize = 4096;
    let path = dir.join("ferry-bench-disk-probe");
    // An aligned window of an ordinary allocation, as direct I/O needs.
    let storage = vec![0xa5u8; BLOCK + ALIGN];
    let start = storage.as_ptr().align_offset(ALIGN);
    let block = &storage[start..start + BLOCK];
    let bytes = bytes.div_ceil(BLOCK as u64).max(1) * BLOCK as u64;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    let started = Instant::now();
    let result = (|| {
        let mut f = match options
            .clone()
            .custom_flags(if direct {
                rustix::fs::OFlags::DIRECT.bits() as i32
            } else {
                0
            })
            .open(&path)
        {
            Ok(f) => f,
            Err(e)
                if direct && e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) =>
            {
                options.open(&path)?
            }
            Err(e) => return Err(e),
        };
        let mut left = bytes;
        while left > 0 {
            f.write_all(block)?;
            left -= BLOCK as u64;
        }
        f.sync_data()
    })();
    let secs = started.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    result?;
    Ok(bytes as f64 / 1e6 / secs.max(1e-9))
}

/// Both limits: `secs` of loopback, `disk_bytes` of disk writes under `dir`.
pub fn measure(dir: &Path, secs: Duration, disk_bytes: u64) -> std::io::Result<Limits> {
    Ok(Limits {
        loopback_mb_s: loopback_mb_s(secs)?,
        disk_mb_s: disk_mb_s(dir, disk_bytes, true)?,
        disk_cached_mb_s: disk_mb_s(dir, disk_bytes, false)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_limits_are_positive_and_finite() {
        let dir = tempfile::tempdir().unwrap();
        let l = measure(dir.path(), Duration::from_millis(200), 16 << 20).unwrap();
        assert!(
            l.loopback_mb_s > 1.0 && l.loopback_mb_s.is_finite(),
            "{l:?}"
        );
        assert!(l.disk_mb_s > 0.1 && l.disk_mb_s.is_finite(), "{l:?}");
        assert!(!dir.path().join("ferry-bench-disk-probe").exists());
    }
}
