//! Which files the `path` patterns name now: strftime directives evaluated against the current
//! time, `*` globs expanded, `exclude_path` and `limit_recently_modified` applied. Symlinks are
//! followed (`/var/log/containers/*.log` are links to the runtime's files). Blocking: callers
//! run it on a blocking thread.

use super::config::TailInputConfig;
use super::identity::{FileId, Fingerprint};
use crate::time::{Strftime, Zone};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Suffixes of compressed files, which are not read as text.
pub const COMPRESSED: &[&str] = &[".gz", ".bz2", ".xz", ".zst", ".lz4", ".Z"];

/// Whether `path` is a compressed file that `pattern` does not name on purpose.
fn compressed_by_chance(path: &Path, pattern: &str) -> bool {
    let name = path.to_string_lossy();
    COMPRESSED
        .iter()
        .any(|c| name.ends_with(c) && !pattern.ends_with(c))
}

/// A file a pattern names.
#[derive(Debug, Clone)]
pub struct Found {
    pub id: FileId,
    pub mtime: SystemTime,
}

/// What one scan found.
#[derive(Debug, Default)]
pub struct Scan {
    pub files: BTreeMap<PathBuf, Found>,
    /// Directories to watch for new files: the fixed parent directory of each pattern.
    pub dirs: Vec<PathBuf>,
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `pattern` with its `strftime` directives expanded for `secs` in `zone` (the configuration
/// checked every pattern, so one that does not compile is used as written).
fn strftime(pattern: &str, secs: i64, zone: &Zone) -> String {
    Strftime::parse(pattern).map_or_else(|_| pattern.to_string(), |f| f.format_at(secs, zone))
}

/// Expands every pattern at time `now`.
pub fn scan(cfg: &TailInputConfig, now: SystemTime) -> Scan {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let excludes: Vec<glob::Pattern> = cfg
        .exclude_path
        .iter()
        .filter_map(|p| glob::Pattern::new(&strftime(p, secs, &cfg.path_zone)).ok())
        .collect();
    let mut out = Scan::default();
    for pattern in &cfg.paths {
        let pattern = strftime(pattern, secs, &cfg.path_zone);
        if let Some(parent) = Path::new(&pattern).parent()
            && !has_glob(&parent.to_string_lossy())
            && !out.dirs.iter().any(|d| d == parent)
        {
            out.dirs.push(parent.to_path_buf());
        }
        let candidates: Vec<PathBuf> = if has_glob(&pattern) {
            match glob::glob(&pattern) {
                Ok(paths) => paths.filter_map(Result::ok).collect(),
                Err(e) => {
                    tracing::warn!("tail: invalid path pattern {pattern}: {e}");
                    Vec::new()
                }
            }
        } else {
            vec![PathBuf::from(&pattern)]
        };
        for path in candidates {
            if compressed_by_chance(&path, &pattern) {
                continue;
            }
            if excludes
                .iter()
                .any(|x| x.matches_path(&path) || x.matches(&path.to_string_lossy()))
            {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&path) else {
                continue; // missing, or a dangling link
            };
            if !meta.is_file() {
                continue;
            }
            let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
            if let Some(limit) = cfg.limit_recently_modified
                && now.duration_since(mtime).unwrap_or(Duration::ZERO) > limit
            {
                continue;
            }
            out.files.insert(
                path,
                Found {
                    id: FileId::of(&meta),
                    mtime,
                },
            );
        }
    }
    out
}

/// Looks in `dir` for the file `id` that starts with the bytes `fp` was taken of (a file
/// renamed while ferry was stopped). Symlinks are not followed: a renamed file is a file, and a
/// link in `/var/log/containers` leads to another container's file, whose inode may be one
/// the file sought had before it was deleted. The first bytes tell a reused inode apart.
pub fn find_in_dir(dir: &Path, id: &FileId, fp: &Fingerprint) -> Option<PathBuf> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries.filter_map(Result::ok).find_map(|e| {
        let meta = std::fs::symlink_metadata(e.path()).ok()?;
        if !meta.is_file() || !FileId::of(&meta).matches(id) {
            return None;
        }
        let file = std::fs::File::open(e.path()).ok()?;
        fp.matches(&file).ok()?.then(|| e.path())
    })
}

/// The rotated copies of `file` (named `<its name>.<suffix>`, beside it, not compressed)
/// modified after `since`, with their ids.
pub fn rotated_since(file: &Path, since: SystemTime) -> Vec<(PathBuf, FileId)> {
    let (Some(dir), Some(name)) = (file.parent(), file.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let prefix = format!("{name}.");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let p = e.path();
            let n = p.file_name()?.to_str()?;
            if !n.starts_with(&prefix) || COMPRESSED.iter().any(|c| n.ends_with(c)) {
                return None;
            }
            let meta = std::fs::symlink_metadata(&p).ok()?;
            (meta.is_file() && meta.modified().ok()? > since).then(|| (p, FileId::of(&meta)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::ParseSetup;

    fn cfg(paths: Vec<String>, exclude: Vec<String>) -> TailInputConfig {
        TailInputConfig {
            paths,
            exclude_path: exclude,
            tag: "t".into(),
            label: None,
            pos_file: None,
            read_from_head: false,
            refresh_interval: Duration::from_secs(60),
            rotate_wait: Duration::from_secs(5),
            read_lines_limit: 1000,
            read_bytes_limit_per_second: None,
            limit_recently_modified: None,
            path_key: None,
            max_line_size: 1024,
            emit_unmatched_lines: false,
            multiline_flush_interval: None,
            enable_stat_watcher: true,
            path_zone: Zone::UTC,
            parse: ParseSetup::plain(crate::parse::Parser::None {
                key: "message".into(),
            }),
        }
    }

    #[test]
    fn rotated_copies_modified_since_a_time_are_found_beside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let before = SystemTime::now() - Duration::from_secs(5);
        for name in [
            "2.log",
            "2.log.20261207-1000",
            "2.log.20261207-0900.gz",
            "20.log.x",
        ] {
            std::fs::write(d.join(name), b"x\n").unwrap();
        }
        let found: Vec<String> = rotated_since(&d.join("2.log"), before)
            .into_iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(found, vec!["2.log.20261207-1000"]);
        assert!(
            rotated_since(&d.join("2.log"), SystemTime::now() + Duration::from_secs(5)).is_empty()
        );
    }

    #[test]
    fn compressed_files_are_left_out_unless_the_pattern_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for name in [
            "0.log",
            "0.log.20261207-101500",
            "0.log.20261207-091500.gz",
            "x.gz",
        ] {
            std::fs::write(d.join(name), b"x\n").unwrap();
        }
        let names = |pattern: &str| -> Vec<String> {
            let s = scan(
                &cfg(vec![format!("{}/{pattern}", d.display())], vec![]),
                SystemTime::now(),
            );
            s.files
                .keys()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names("0.log*"), vec!["0.log", "0.log.20261207-101500"]);
        assert_eq!(names("*.gz"), vec!["0.log.20261207-091500.gz", "x.gz"]);
    }

    #[test]
    fn globs_dates_excludes_and_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let today = strftime(
            "%Y%m%d",
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64,
            &Zone::UTC,
        );
        for name in [
            "a.log",
            "b.log",
            "skip.log",
            "c.txt",
            &format!("app.{today}.log"),
        ] {
            std::fs::write(d.join(name), b"x\n").unwrap();
        }
        std::fs::create_dir(d.join("sub.log")).unwrap();
        std::os::unix::fs::symlink(d.join("a.log"), d.join("link.log")).unwrap();
        std::os::unix::fs::symlink(d.join("gone"), d.join("dangling.log")).unwrap();
        let c = cfg(
            vec![
                format!("{}/*.log", d.display()),
                format!("{}/app.%Y%m%d.log", d.display()),
            ],
            vec![format!("{}/skip.*", d.display())],
        );
        let s = scan(&c, SystemTime::now());
        let names: Vec<String> = s
            .files
            .keys()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let mut want = vec![
            "a.log".to_string(),
            format!("app.{today}.log"),
            "b.log".into(),
            "link.log".into(),
        ];
        want.sort();
        assert_eq!(names, want);
        assert_eq!(
            s.files[&d.join("link.log")].id,
            s.files[&d.join("a.log")].id
        );
        assert_eq!(s.dirs, vec![d.to_path_buf()]);
        let b = std::fs::File::open(d.join("b.log")).unwrap();
        let fp = Fingerprint::read(&b).unwrap();
        assert_eq!(
            find_in_dir(d, &s.files[&d.join("b.log")].id, &fp),
            Some(d.join("b.log"))
        );
        // A link is never the renamed file, even to the same inode; nor is a file that starts
        // with other bytes (an inode used again).
        assert_eq!(
            find_in_dir(d, &s.files[&d.join("a.log")].id, &fp),
            Some(d.join("a.log")),
            "not link.log"
        );
        let other = Fingerprint::of(b"something else\n");
        assert_eq!(find_in_dir(d, &s.files[&d.join("b.log")].id, &other), None);
    }

    #[test]
    fn path_timezone_expands_dates_in_that_zone() {
        let dir = tempfile::tempdir().unwrap();
        for day in ["20231114", "20231115"] {
            std::fs::write(dir.path().join(format!("app.{day}.log")), b"x\n").unwrap();
        }
        // 2023-11-14 22:13:20 UTC is already 2023-11-15 at +14:00.
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let found = |zone: &str| {
            let text = format!(
                "<source>\npath {}/app.%Y%m%d.log\ntag t\n{zone}\n<parse>\n@type none\n</parse>\n</source>\n",
                dir.path().display()
            );
            let c = crate::plugin::read_section(&text, TailInputConfig::from_section).unwrap();
            let names: Vec<String> = scan(&c, now)
                .files
                .keys()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect();
            names
        };
        assert_eq!(found("path_timezone UTC"), vec!["app.20231114.log"]);
        assert_eq!(found("path_timezone +14:00"), vec!["app.20231115.log"]);
        assert_eq!(
            found("path_timezone Pacific/Kiritimati"),
            vec!["app.20231115.log"]
        );
    }

    #[test]
    fn limit_recently_modified_leaves_old_files_out() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.log"), b"x\n").unwrap();
        let mut c = cfg(vec![format!("{}/*.log", dir.path().display())], vec![]);
        c.limit_recently_modified = Some(Duration::from_secs(60));
        assert_eq!(scan(&c, SystemTime::now()).files.len(), 1);
        let later = SystemTime::now() + Duration::from_secs(3600);
        assert_eq!(scan(&c, later).files.len(), 0);
    }
}
