//! Rotated files that were compressed while ferry was stopped.
//!
//! The kubelet gzips a container's older rotated logs and removes the originals, and so does
//! logrotate with `compress` (`delaycompress` only delays it by one rotation). When ferry is
//! stopped, or killed, before it finished such a file, the position file still names it, but
//! the file is gone: its lines now live in `<name>.gz`. A gzip file in the same directory whose
//! content starts with the bytes the position's fingerprint was taken of is that file; it is
//! unpacked into a scratch file beside the position file (removed at once, so nothing is left
//! behind) and read from the recorded offset on, like the file it was.

use super::identity::{FINGERPRINT_BYTES, Fingerprint};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The first `.gz` file directly in `dir` whose content, unpacked, starts with the bytes `fp`
/// was taken of (a file so named that is not gzip does not match). Symlinks are not followed.
/// An empty fingerprint identifies nothing.
pub fn find(dir: &Path, fp: &Fingerprint) -> Option<PathBuf> {
    if fp.len == 0 {
        return None;
    }
    let entries = std::fs::read_dir(dir).ok()?;
    entries.filter_map(Result::ok).find_map(|e| {
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path).ok()?;
        if !meta.is_file() || !path.to_string_lossy().ends_with(".gz") {
            return None;
        }
        let head = head(&path, usize::from(fp.len)).ok()?;
        (Fingerprint::of(&head) == *fp).then_some(path)
    })
}

/// Up to `want` (≤ [`FINGERPRINT_BYTES`]) leading bytes of the content of the gzip file `gz`.
fn head(gz: &Path, want: usize) -> io::Result<Vec<u8>> {
    let mut out = vec![0u8; want.min(FINGERPRINT_BYTES)];
    let mut src = flate2::read::MultiGzDecoder::new(File::open(gz)?);
    let mut got = 0;
    while got < out.len() {
        match src.read(&mut out[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    out.truncate(got);
    Ok(out)
}

/// Unpacks the gzip file `gz` into a new scratch file in `scratch`, removed from the directory
/// at once (the returned handle keeps its content until it is dropped), and returns the
/// handle and the content's length. Only what a reader resuming at `from` needs is written:
/// the first bytes (for the fingerprint) and everything from `from` on; the part between is
/// left a hole, which takes no disk. A gzip stream cut short (the compressor was killed)
/// yields what it holds up to the cut.
pub fn unpack(gz: &Path, scratch: &Path, from: u64) -> io::Result<(File, u64)> {
    use std::os::unix::fs::FileExt;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        ".ferry-unpacked-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let path = scratch.join(name);
    let out = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    let mut src = flate2::read::MultiGzDecoder::new(io::BufReader::new(File::open(gz)?));
    let mut buf = vec![0u8; 256 * 1024];
    let head = FINGERPRINT_BYTES as u64;
    let mut at = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A truncated stream: keep what came before the cut.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e),
        };
        let end = at + n as u64;
        // The parts of [at, end) a reader needs: [0, head) and [from, ∞).
        for (lo, hi) in [(at, end.min(head)), (at.max(from), end)] {
            if lo < hi {
                let slice = &buf[(lo - at) as usize..(hi - at) as usize];
                out.write_all_at(slice, lo)?;
            }
        }
        at = end;
    }
    // The length is the content's, also when its end is a hole.
    out.set_len(at)?;
    Ok((out, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(path: &Path, data: &[u8]) {
        let mut enc =
            flate2::write::GzEncoder::new(File::create(path).unwrap(), flate2::Compression::fast());
        enc.write_all(data).unwrap();
        enc.finish().unwrap();
    }

    #[test]
    fn the_gzip_file_holding_a_files_content_is_found_by_its_first_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let content: Vec<u8> = (0..2000).map(|i| b'a' + (i % 26) as u8).collect();
        let fp = Fingerprint::of(&content);
        gzip(&d.join("0.log.1.gz"), b"another file's lines\n");
        gzip(&d.join("0.log.2.gz"), &content);
        // Not gzip, or not named .gz: not looked at.
        std::fs::write(d.join("0.log.3.gz"), &content).unwrap();
        gzip(&d.join("0.log.4"), &content);
        assert_eq!(find(d, &fp), Some(d.join("0.log.2.gz")));
        assert_eq!(find(d, &Fingerprint::of(b"nothing like it")), None);
        assert_eq!(
            find(d, &Fingerprint::default()),
            None,
            "an empty fingerprint"
        );

        let scratch = tempfile::tempdir().unwrap();
        let (file, len) = unpack(&d.join("0.log.2.gz"), scratch.path(), 0).unwrap();
        assert_eq!(len, content.len() as u64);
        let mut got = vec![0u8; content.len()];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut got, 0).unwrap();
        assert!(got == content, "the content unpacked");
        // Resuming at 1500: the first bytes and what follows 1500, the rest a hole.
        let (file, len) = unpack(&d.join("0.log.2.gz"), scratch.path(), 1500).unwrap();
        assert_eq!(len, content.len() as u64);
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut got, 0).unwrap();
        assert_eq!(&got[..FINGERPRINT_BYTES], &content[..FINGERPRINT_BYTES]);
        assert!(got[FINGERPRINT_BYTES..1500].iter().all(|b| *b == 0));
        assert_eq!(&got[1500..], &content[1500..]);
        assert!(
            Fingerprint::read(&file).unwrap() == Fingerprint::of(&content),
            "the fingerprint is the file's"
        );
        assert_eq!(
            std::fs::read_dir(scratch.path()).unwrap().count(),
            0,
            "the scratch file is removed at once"
        );
    }

    #[test]
    fn a_gzip_stream_cut_short_yields_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("x.gz");
        let content: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        gzip(&gz, &content);
        let whole = std::fs::read(&gz).unwrap();
        std::fs::write(&gz, &whole[..whole.len() / 2]).unwrap();
        let (_, len) = unpack(&gz, dir.path(), 0).unwrap();
        assert!(len > 0 && len < content.len() as u64, "{len}");
    }

    proptest::proptest! {
        /// Whatever a file named .gz holds (here a gzip stream with bytes changed and cut),
        /// finding and unpacking it never panics.
        #[test]
        fn any_bytes_named_gz_never_panic(
            content in proptest::collection::vec(proptest::num::u8::ANY, 0..2048),
            changes in proptest::collection::vec((proptest::num::usize::ANY, proptest::num::u8::ANY), 0..8),
            cut in proptest::num::usize::ANY,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let gz = dir.path().join("f.gz");
            gzip(&gz, &content);
            let mut bytes = std::fs::read(&gz).unwrap();
            for (at, b) in changes {
                let n = bytes.len();
                bytes[at % n] = b;
            }
            bytes.truncate(cut % (bytes.len() + 1));
            std::fs::write(&gz, &bytes).unwrap();
            let _ = find(dir.path(), &Fingerprint::of(b"x"));
            let _ = unpack(&gz, dir.path(), cut as u64 % 4096);
        }
    }
}
