//! A [`Storage`] over the real filesystem that injects faults on command: short writes, a disk
//! that fills up (ENOSPC after a byte budget), EIO on writes, failing `fdatasync`, and a gate
//! that parks a reader mid-read. It also records the largest single read, so tests can prove
//! reads are bounded. Meant for tests of the buffer and of its users.

use std::any::Any;
use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use crate::file_chunk::lock;
use crate::storage::{DirEntry, OpenMode, RealStorage, Storage, StorageFile};

const EIO: i32 = 5;

#[derive(Debug, Default)]
struct Plan {
    space_left: Option<u64>,
    short_writes: bool,
    fail_writes: u32,
    fail_syncs: u32,
    max_read: usize,
    read_bytes: u64,
    gate_armed: bool,
    gate_parked: bool,
    gate_open: bool,
}

/// The switchboard shared by a [`FaultyStorage`] and every file it opened.
#[derive(Debug, Default)]
pub struct Faults {
    plan: Mutex<Plan>,
    gate: Condvar,
}

impl Faults {
    /// Limits how many more bytes writes may store (`None`: unlimited). When the budget runs
    /// out mid-write, the write stores a prefix and the next one fails with ENOSPC.
    pub fn set_space_left(&self, bytes: Option<u64>) {
        lock(&self.plan).space_left = bytes;
    }
    /// Every write stores at most half of what it is given (at least one byte).
    pub fn set_short_writes(&self, on: bool) {
        lock(&self.plan).short_writes = on;
    }
    /// The next `n` writes fail with EIO, storing nothing.
    pub fn fail_next_writes(&self, n: u32) {
        lock(&self.plan).fail_writes = n;
    }
    /// The next `n` `fdatasync` calls fail with EIO.
    pub fn fail_next_syncs(&self, n: u32) {
        lock(&self.plan).fail_syncs = n;
    }
    /// Largest single read requested since the last reset.
    pub fn max_read_len(&self) -> usize {
        lock(&self.plan).max_read
    }
    /// Bytes read since the last reset.
    pub fn read_bytes(&self) -> u64 {
        lock(&self.plan).read_bytes
    }
    pub fn reset_read_stats(&self) {
        let mut p = lock(&self.plan);
        p.max_read = 0;
        p.read_bytes = 0;
    }
    /// The next read parks until [`Faults::release_read_gate`].
    pub fn arm_read_gate(&self) {
        let mut p = lock(&self.plan);
        p.gate_armed = true;
        p.gate_parked = false;
        p.gate_open = false;
    }
    /// Blocks until a read is parked at the armed gate.
    pub fn wait_read_gate_parked(&self) {
        let mut p = lock(&self.plan);
        while !p.gate_parked {
            p = self
                .gate
                .wait(p)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
    pub fn release_read_gate(&self) {
        let mut p = lock(&self.plan);
        p.gate_open = true;
        self.gate.notify_all();
    }

    fn before_read(&self, len: usize) {
        let mut p = lock(&self.plan);
        p.max_read = p.max_read.max(len);
        if p.gate_armed {
            p.gate_armed = false;
            p.gate_parked = true;
            self.gate.notify_all();
            while !p.gate_open {
                p = self
                    .gate
                    .wait(p)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
        }
    }

    /// How many of `len` bytes a write may store, or the error it fails with.
    fn admit_write(&self, len: usize) -> io::Result<usize> {
        let mut p = lock(&self.plan);
        if p.fail_writes > 0 {
            p.fail_writes -= 1;
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let mut n = len;
        if p.short_writes && n > 1 {
            n = n.div_ceil(2);
        }
        if let Some(left) = p.space_left {
            if left == 0 && n > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::StorageFull,
                    "injected ENOSPC",
                ));
            }
            n = n.min(usize::try_from(left).unwrap_or(usize::MAX));
            p.space_left = Some(left - n as u64);
        }
        Ok(n)
    }

    fn admit_sync(&self) -> io::Result<()> {
        let mut p = lock(&self.plan);
        if p.fail_syncs > 0 {
            p.fail_syncs -= 1;
            return Err(io::Error::from_raw_os_error(EIO));
        }
        Ok(())
    }
}

/// Real filesystem plus injected faults.
#[derive(Debug, Clone, Default)]
pub struct FaultyStorage {
    faults: Arc<Faults>,
}

impl FaultyStorage {
    pub fn new() -> Self {
        Self::default()
    }
    /// The switchboard (keep a clone to flip faults while the buffer runs).
    pub fn faults(&self) -> Arc<Faults> {
        self.faults.clone()
    }
}

#[derive(Debug)]
struct FaultyFile {
    inner: Arc<dyn StorageFile>,
    faults: Arc<Faults>,
}

impl StorageFile for FaultyFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        let n = self.faults.admit_write(buf.len())?;
        self.inner.write_at(&buf[..n], offset)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.faults.before_read(buf.len());
        let n = self.inner.read_at(buf, offset)?;
        lock(&self.faults.plan).read_bytes += n as u64;
        Ok(n)
    }
    fn size(&self) -> io::Result<u64> {
        self.inner.size()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.faults.admit_sync()?;
        self.inner.sync_data()
    }
}

impl FaultyStorage {
    fn wrap(&self, f: Arc<dyn StorageFile>) -> Arc<dyn StorageFile> {
        Arc::new(FaultyFile {
            inner: f,
            faults: self.faults.clone(),
        })
    }
}

impl Storage for FaultyStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        RealStorage.create_dir_all(dir)
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        Ok(self.wrap(RealStorage.create_new(path)?))
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        Ok(self.wrap(RealStorage.open(path, mode)?))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        RealStorage.list(dir)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        RealStorage.rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        RealStorage.remove(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.faults.admit_sync()?;
        RealStorage.sync_dir(dir)
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        RealStorage.lock(path)
    }
    fn lock_existing(&self, path: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>> {
        RealStorage.lock_existing(path)
    }
}
