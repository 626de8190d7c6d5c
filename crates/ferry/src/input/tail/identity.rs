//! Which file is which: a file is its device and inode ([`FileId`]) *and* the hash of its first
//! bytes ([`Fingerprint`]). The inode follows a file across renames (rename-and-create
//! rotation, `mv`); the fingerprint tells a reused inode (a new file that got the number of a
//! deleted one) and a file rewritten in place (copytruncate followed by fast writes, an editor
//! saving over it) from the file a position was recorded for.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

/// How many leading bytes the fingerprint covers once the file is that long.
pub const FINGERPRINT_BYTES: usize = 256;

/// The device of [`FileId::unpacked`] ids.
pub const UNPACKED_DEV: u64 = u64::MAX;

/// Device and inode. `dev == 0` means "unknown" (positions migrated from Fluentd carry only the
/// inode) and matches any device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

impl FileId {
    pub fn of(meta: &Metadata) -> Self {
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }

    /// The id of a file unpacked from a compressed copy ([`super::compressed`]): the scratch
    /// file's inode on a device no real file has, so that it never matches a file in the
    /// tailed directories and, after a crash, is found again by its first bytes only.
    pub fn unpacked(scratch: &Metadata) -> Self {
        Self {
            dev: UNPACKED_DEV,
            ino: scratch.ino(),
        }
    }

    /// Same inode, and the same device when both are known.
    pub fn matches(&self, other: &FileId) -> bool {
        self.ino == other.ino && (self.dev == 0 || other.dev == 0 || self.dev == other.dev)
    }
}

/// FNV-1a over the first `len` bytes of a file (`len` ≤ [`FINGERPRINT_BYTES`]). A file shorter
/// than [`FINGERPRINT_BYTES`] has a shorter fingerprint, extended as the file grows; `len == 0`
/// (an empty file) matches every file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fingerprint {
    pub len: u16,
    pub hash: u64,
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Reads up to `want` bytes at offset 0 (fewer when the file is shorter).
fn head(file: &File, want: usize) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

impl Fingerprint {
    /// The fingerprint of the file as it is now.
    pub fn read(file: &File) -> io::Result<Self> {
        let bytes = head(file, FINGERPRINT_BYTES)?;
        Ok(Self::of(&bytes))
    }

    pub fn of(bytes: &[u8]) -> Self {
        let bytes = &bytes[..bytes.len().min(FINGERPRINT_BYTES)];
        Self {
            len: bytes.len() as u16,
            hash: fnv1a(bytes),
        }
    }

    /// Whether `file` starts with the bytes this fingerprint was taken over.
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        if self.len == 0 {
            return Ok(true);
        }
        let bytes = head(file, usize::from(self.len))?;
        Ok(bytes.len() == usize::from(self.len) && fnv1a(&bytes) == self.hash)
    }

    pub fn is_complete(&self) -> bool {
        usize::from(self.len) >= FINGERPRINT_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_fingerprint_grows_with_the_file_and_matches_its_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = File::create(&path).unwrap();
        let empty = Fingerprint::read(&File::open(&path).unwrap()).unwrap();
        assert_eq!(empty.len, 0);
        f.write_all(b"line 1\n").unwrap();
        let short = Fingerprint::read(&File::open(&path).unwrap()).unwrap();
        assert_eq!(short.len, 7);
        f.write_all(&[b'x'; 1000]).unwrap();
        let reader = File::open(&path).unwrap();
        assert!(empty.matches(&reader).unwrap());
        assert!(short.matches(&reader).unwrap());
        let full = Fingerprint::read(&reader).unwrap();
        assert!(full.is_complete());
        assert!(full.matches(&reader).unwrap());
    }

    #[test]
    fn rewritten_content_does_not_match() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"first content of the file\n").unwrap();
        let fp = Fingerprint::read(&File::open(&path).unwrap()).unwrap();
        std::fs::write(&path, b"other content, same length!\n").unwrap();
        assert!(!fp.matches(&File::open(&path).unwrap()).unwrap());
        std::fs::write(&path, b"first").unwrap();
        assert!(
            !fp.matches(&File::open(&path).unwrap()).unwrap(),
            "shorter file"
        );
    }

    #[test]
    fn unknown_devices_match_any_device() {
        let a = FileId { dev: 0, ino: 5 };
        let b = FileId { dev: 9, ino: 5 };
        assert!(a.matches(&b) && b.matches(&a));
        assert!(!b.matches(&FileId { dev: 8, ino: 5 }));
        assert!(!b.matches(&FileId { dev: 9, ino: 6 }));
    }
}
