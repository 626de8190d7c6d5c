//! A disk made the limit: the calling process joins a block-I/O cgroup that lets a fixed number
//! of bytes per second of writes reach the device holding a directory (cgroup v1
//! `blkio.throttle.write_bps_device`, or v2 `io.max`; needs root). Children started afterwards
//! are in it too, so a ferry process and a disk probe see the same disk.
//!
//! Every byte that reaches the device pays: direct writes, and page-cache writes when an
//! `fdatasync` sends them. Pages the kernel's flusher writes back on its own are not charged
//! (cgroup v1), which matters only for runs longer than `dirty_expire_centisecs` (30 s);
//! files deleted before that never reach the device, as on any disk.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The process inside the cgroup; on drop it moves back to the parent and the cgroup is removed.
#[derive(Debug)]
pub struct Throttle {
    cgroup: PathBuf,
    parent_procs: PathBuf,
    device: String,
    bytes_per_sec: u64,
}

fn context(what: String) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

impl Throttle {
    /// Caps writes to the disk holding `dir` at `bytes_per_sec` for this process and its
    /// future children.
    pub fn start(dir: &Path, bytes_per_sec: u64) -> io::Result<Self> {
        let device = whole_disk(dir)?;
        let v1 = Path::new("/sys/fs/cgroup/blkio");
        let (root, file, line) = if v1.join("blkio.throttle.write_bps_device").exists() {
            (
                v1.to_path_buf(),
                "blkio.throttle.write_bps_device",
                format!("{device} {bytes_per_sec}"),
            )
        } else {
            let v2 = Path::new("/sys/fs/cgroup");
            std::fs::write(v2.join("cgroup.subtree_control"), "+io").map_err(context(
                "enable the io controller of cgroup v2 (needs root)".into(),
            ))?;
            (
                v2.to_path_buf(),
                "io.max",
                format!("{device} wbps={bytes_per_sec}"),
            )
        };
        let cgroup = root.join(format!("ferry-bench-{}", std::process::id()));
        std::fs::create_dir_all(&cgroup).map_err(context(format!(
            "create the block-I/O cgroup {} (needs root)",
            cgroup.display()
        )))?;
        // From here on, dropping `throttle` removes the cgroup again.
        let throttle = Self {
            cgroup,
            parent_procs: root.join("cgroup.procs"),
            device,
            bytes_per_sec,
        };
        std::fs::write(throttle.cgroup.join(file), &line)
            .map_err(context(format!("write '{line}' to {file}")))?;
        std::fs::write(
            throttle.cgroup.join("cgroup.procs"),
            std::process::id().to_string(),
        )
        .map_err(context("join the cgroup".into()))?;
        Ok(throttle)
    }

    /// One line for a report.
    pub fn describe(&self) -> String {
        format!(
            "disk throttled to {} MB/s of writes on device {} ({})",
            self.bytes_per_sec / 1_000_000,
            self.device,
            self.cgroup.display()
        )
    }
}

impl Drop for Throttle {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.parent_procs, std::process::id().to_string());
        let _ = std::fs::remove_dir(&self.cgroup);
    }
}

/// `major:minor` of the whole disk holding `dir`: throttling applies to disks, not partitions.
pub fn whole_disk(dir: &Path) -> io::Result<String> {
    let dev = std::fs::metadata(dir)?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let sys = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if sys.join("partition").exists()
        && let Ok(real) = std::fs::canonicalize(&sys)
        && let Some(parent) = real.parent()
        && let Ok(d) = std::fs::read_to_string(parent.join("dev"))
    {
        return Ok(d.trim().to_owned());
    }
    Ok(format!("{major}:{minor}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_disk_of_a_directory_has_a_major_and_minor_number() {
        let dir = tempfile::tempdir().unwrap();
        let dev = whole_disk(dir.path()).unwrap();
        let (major, minor) = dev.split_once(':').unwrap();
        major.parse::<u64>().unwrap();
        minor.parse::<u64>().unwrap();
    }
}
