//! The seam between the buffer and the filesystem.
//!
//! Every disk access of the file buffer goes through [`Storage`] and [`StorageFile`], so tests
//! can substitute [`crate::fault::FaultyStorage`] to inject short writes, ENOSPC, EIO and
//! failing syncs. [`RealStorage`] maps the calls one to one onto `std::fs` and positional I/O
//! (`pread`/`pwrite`), which lets readers and the writer of one file work without sharing a
//! cursor.

use std::any::Any;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

/// An open file addressed by offset. Methods take `&self` so one handle can be shared.
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Writes some prefix of `buf` at `offset`; may be short (see [`write_all_at`]).
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize>;
    /// Reads into `buf` from `offset`; 0 means end of file.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Current file size.
    fn size(&self) -> io::Result<u64>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// `fdatasync`.
    fn sync_data(&self) -> io::Result<()>;
}

/// How [`Storage::open`] opens an existing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    Read,
    ReadWrite,
}

/// A directory entry as [`Storage::list`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub len: u64,
    pub is_file: bool,
}

/// Directory-level operations.
pub trait Storage: Send + Sync + fmt::Debug {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// Creates a new file for reading and writing; fails if it exists.
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>>;
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>>;
    /// Entries of `dir` whose names are valid UTF-8 (others cannot be ours).
    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// `fsync` of the directory, making creations, renames and removals durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Takes an exclusive advisory lock on `path` (created if missing), held while the returned
    /// value lives; fails with `WouldBlock` if another holder has it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>>;
    /// The same lock as [`Storage::lock`], but only if `path` exists: creates nothing and
    /// returns `Ok(None)` when there is no such file (offline tools must not write).
    fn lock_existing(&self, path: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>>;
}

/// The real filesystem.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealStorage;

#[derive(Debug)]
struct RealFile(File);

impl StorageFile for RealFile {
    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
        FileExt::write_at(&self.0, buf, offset)
    }
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        FileExt::read_at(&self.0, buf, offset)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
}

impl Storage for RealStorage {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        fs::create_dir_all(dir)
    }
    fn create_new(&self, path: &Path) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)?;
        Ok(Arc::new(RealFile(file)))
    }
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn StorageFile>> {
        let file = OpenOptions::new()
            .read(true)
            .write(mode == OpenMode::ReadWrite)
            .open(path)?;
        Ok(Arc::new(RealFile(file)))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let meta = entry.metadata()?;
            out.push(DirEntry {
                name,
                len: meta.len(),
                is_file: meta.is_file(),
            });
        }
        Ok(out)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }
    fn lock(&self, path: &Path) -> io::Result<Box<dyn Any + Send + Sync>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        flock_exclusive(&file, path)?;
        Ok(Box::new(file))
    }
    fn lock_existing(&self, path: &Path) -> io::Result<Option<Box<dyn Any + Send + Sync>>> {
        // flock needs no write access: a read-only open leaves the file as it is.
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        flock_exclusive(&file, path)?;
        Ok(Some(Box::new(file)))
    }
}

/// A non-blocking exclusive `flock`; `WouldBlock` when another open file holds it.
fn flock_exclusive(file: &File, path: &Path) -> io::Result<()> {
    match rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(()),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            format!("{} is locked by another buffer", path.display()),
        )),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// Writes all of `buf` at `offset`, looping over short writes. On error some prefix may have
/// been written; the caller truncates it away.
pub fn write_all_at(file: &dyn StorageFile, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match file.write_at(buf, offset) {
            Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "wrote 0 bytes")),
            Ok(n) => {
                let n = n.min(buf.len());
                buf = &buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Fills `buf` from `offset`; `UnexpectedEof` if the file ends first.
pub fn read_exact_at(
    file: &dyn StorageFile,
    mut buf: &mut [u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(n) => {
                let n = n.min(buf.len());
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Streams `len` bytes from `offset` through `f` in pieces of at most `scratch.len()` bytes.
pub fn stream_range(
    file: &dyn StorageFile,
    offset: u64,
    len: u64,
    scratch: &mut [u8],
    mut f: impl FnMut(&[u8]),
) -> io::Result<()> {
    let mut done = 0u64;
    while done < len {
        let want = usize::try_from(len - done)
            .unwrap_or(usize::MAX)
            .min(scratch.len());
        let piece = &mut scratch[..want];
        read_exact_at(file, piece, offset + done)?;
        f(piece);
        done += want as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Dribble(std::sync::Mutex<Vec<u8>>);
    impl StorageFile for Dribble {
        fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<usize> {
            let mut v = self.0.lock().unwrap();
            let n = buf.len().min(3);
            let end = offset as usize + n;
            if v.len() < end {
                v.resize(end, 0);
            }
            v[offset as usize..end].copy_from_slice(&buf[..n]);
            Ok(n)
        }
        fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
            let v = self.0.lock().unwrap();
            let start = (offset as usize).min(v.len());
            let n = buf.len().min(v.len() - start).min(2);
            buf[..n].copy_from_slice(&v[start..start + n]);
            Ok(n)
        }
        fn size(&self) -> io::Result<u64> {
            Ok(self.0.lock().unwrap().len() as u64)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.0.lock().unwrap().resize(len as usize, 0);
            Ok(())
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn short_writes_and_reads_are_completed_by_the_helpers() {
        let f = Dribble(Default::default());
        write_all_at(&f, b"hello, world", 0).unwrap();
        let mut buf = [0u8; 12];
        read_exact_at(&f, &mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello, world");
        let mut short = [0u8; 4];
        let err = read_exact_at(&f, &mut short, 10).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }
}
