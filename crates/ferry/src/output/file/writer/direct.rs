//! New archive files written around the page cache.
//!
//! An archive is written once and read later, if ever: copying it into the page cache costs the
//! writer a memory copy per byte (and, in virtual machines whose free memory is handed back to
//! the host, a page fault per fresh page), and fills the cache with data that pushes out what
//! the host is actually using. So new files are opened with `O_DIRECT` and written in whole
//! aligned blocks straight from an aligned buffer; only the last partial block of a file goes
//! through the page cache (`O_DIRECT` is cleared for it). The file is fdatasynced as before.
//!
//! Where the filesystem refuses `O_DIRECT` (at open or at the first write: tmpfs on older
//! kernels, some network and FUSE filesystems), the file is written through the page cache
//! like any other, with the same buffer.

use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Alignment of memory, file offsets and lengths of direct writes: the largest logical block
/// size in common use, so it suits every device without asking.
const ALIGN: usize = 4096;

/// A file being written from offset 0, in blocks of `capacity` bytes.
pub struct DirectFile {
    file: File,
    /// Allocated once with room for `start + capacity` bytes and never grown, so the window
    /// `start..` stays aligned; its length is `start` plus the pending bytes.
    block: Vec<u8>,
    start: usize,
    capacity: usize,
    direct: bool,
}

fn is_einval(e: &io::Error) -> bool {
    e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error())
}

impl DirectFile {
    /// Creates (or truncates) `path`; `capacity` is rounded up to a multiple of the alignment.
    pub fn create(path: &Path, capacity: usize) -> io::Result<Self> {
        let capacity = capacity.max(ALIGN).div_ceil(ALIGN) * ALIGN;
        let mut options = OpenOptions::new();
        options.write(true).create(true).truncate(true);
        let (file, direct) = match options
            .clone()
            .custom_flags(OFlags::DIRECT.bits() as i32)
            .open(path)
        {
            Ok(f) => (f, true),
            Err(e) if is_einval(&e) => (options.open(path)?, false),
            Err(e) => return Err(e),
        };
        let mut block = Vec::<u8>::with_capacity(capacity + ALIGN);
        let start = block.as_ptr().align_offset(ALIGN).min(ALIGN);
        block.resize(start, 0);
        Ok(Self {
            file,
            block,
            start,
            capacity,
            direct,
        })
    }

    /// Whether blocks bypass the page cache.
    #[cfg(test)]
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    fn pending(&self) -> usize {
        self.block.len() - self.start
    }

    /// Writes the first `n` pending bytes (a multiple of the alignment while direct).
    #[allow(clippy::disallowed_methods)] // counts short writes itself
    fn write_pending(&mut self, n: usize) -> io::Result<()> {
        let mut done = 0;
        while done < n {
            let from = self.start + done;
            match self.file.write(&self.block[from..self.start + n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => done += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // The filesystem took the open but refuses direct writes, or a short write
                // left the rest unaligned: a refused write writes nothing, so go on cached.
                Err(e) if self.direct && is_einval(&e) => self.buffered()?,
                Err(e) => return Err(e),
            }
        }
        let end = self.block.len();
        self.block.copy_within(self.start + n..end, self.start);
        self.block.truncate(end - n);
        Ok(())
    }

    /// Clears `O_DIRECT`: what follows goes through the page cache.
    fn buffered(&mut self) -> io::Result<()> {
        if self.direct {
            let flags = fcntl_getfl(&self.file)?;
            fcntl_setfl(&self.file, flags - OFlags::DIRECT)?;
            self.direct = false;
        }
        Ok(())
    }

    /// Writes everything pending and returns the file (not yet synced).
    pub fn finish(mut self) -> io::Result<File> {
        let aligned = self.pending() / ALIGN * ALIGN;
        if aligned > 0 {
            self.write_pending(aligned)?;
        }
        if self.pending() > 0 {
            self.buffered()?;
            self.write_pending(self.pending())?;
        }
        Ok(self.file)
    }
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(self.capacity - self.pending());
        self.block.extend_from_slice(&data[..n]);
        if self.pending() == self.capacity {
            self.write_pending(self.capacity)?;
        }
        Ok(n)
    }

    /// Pending bytes stay until a whole block is full or the file is finished: a partial block
    /// written early would leave the next direct write unaligned.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn roundtrip(dir: &Path, sizes: &[usize], capacity: usize) {
        let path = dir.join("f");
        let mut f = DirectFile::create(&path, capacity).unwrap();
        let mut expected = Vec::new();
        let mut n = 0u8;
        for &size in sizes {
            let piece: Vec<u8> = (0..size)
                .map(|_| {
                    n = n.wrapping_add(1);
                    n
                })
                .collect();
            f.write_all(&piece).unwrap();
            expected.extend_from_slice(&piece);
        }
        f.finish().unwrap().sync_data().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected, "sizes {sizes:?}");
    }

    #[test]
    fn writes_every_byte_in_order_whatever_the_piece_sizes() {
        let dir = tempfile::tempdir().unwrap();
        for sizes in [
            vec![],
            vec![1],
            vec![4096],
            vec![4095, 2],
            vec![8192, 8192, 1],
            vec![3, 70_000, 5000, 1 << 20],
            vec![12_289; 9],
        ] {
            roundtrip(dir.path(), &sizes, 8192);
            roundtrip(dir.path(), &sizes, 1 << 20);
        }
    }

    proptest::proptest! {
        #[test]
        fn any_sequence_of_pieces_arrives_whole(
            sizes in proptest::collection::vec(0usize..20_000, 0..12),
            blocks in 1usize..4,
        ) {
            let dir = tempfile::tempdir().unwrap();
            roundtrip(dir.path(), &sizes, blocks * ALIGN);
        }
    }

    #[test]
    fn a_refused_direct_write_is_written_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = DirectFile::create(&path, 8192).unwrap();
        let was_direct = f.is_direct();
        f.write_all(&[b'x'; 100]).unwrap();
        // 100 bytes is no multiple of any block size: a direct write of it is refused.
        f.write_pending(100).unwrap();
        assert!(!f.is_direct(), "direct at start: {was_direct}");
        f.write_all(&[b'y'; 9000]).unwrap();
        f.finish().unwrap();
        let data = std::fs::read(&path).unwrap();
        assert_eq!(data.len(), 9100);
        assert!(data[..100].iter().all(|&b| b == b'x'));
        assert!(data[100..].iter().all(|&b| b == b'y'));
    }

    #[test]
    fn truncates_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 100_000]).unwrap();
        let mut f = DirectFile::create(&path, 8192).unwrap();
        f.write_all(b"short\n").unwrap();
        f.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"short\n");
    }

    #[test]
    fn falls_back_to_the_page_cache_where_direct_io_is_refused() {
        // /dev/shm is tmpfs: depending on the kernel it refuses O_DIRECT at open, or accepts
        // it; either way every byte must arrive.
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let path = dir.path().join("f");
        let f = DirectFile::create(&path, 8192).unwrap();
        let direct = f.is_direct();
        drop(f);
        roundtrip(dir.path(), &[10, 9000, 4096, 3], 8192);
        eprintln!("tmpfs direct: {direct}");
    }
}
