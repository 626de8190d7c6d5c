//! `@include`: resolving paths and globs, and reading configuration files with bounds.
//!
//! A relative path is taken from the directory of the including file (the current directory
//! for text parsed from a string). A path with `*`, `?` or `[` is a glob: its matches are
//! included in sorted order, hidden files (leading `.`) and directories are skipped, and a
//! glob that matches nothing includes nothing (as in Fluentd, so `conf.d/*.conf` may be
//! empty). A plain path that does not exist is an error. Remote includes (`http://`) are
//! refused. Files are read only when they are regular files, up to [`MAX_FILE_BYTES`].

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest configuration file read.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why an include or a configuration file could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IncludeError {
    #[error("@include needs a path")]
    Empty,
    #[error("@include is not allowed here")]
    Disabled,
    #[error("remote include '{0}' is not supported: include local files only")]
    Remote(String),
    #[error("cannot include '{target}': no such file ({})", .path.display())]
    NotFound { target: String, path: PathBuf },
    #[error("cannot read '{}': not a regular file", .0.display())]
    NotAFile(PathBuf),
    #[error("cannot read '{}': {source}", .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read '{}': larger than {MAX_FILE_BYTES} bytes", .0.display())]
    TooLarge(PathBuf),
    #[error("cannot read '{}': not valid UTF-8", .0.display())]
    NotUtf8(PathBuf),
    #[error("bad @include pattern '{pattern}': {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("include cycle: {0}")]
    Cycle(String),
    #[error("includes nested deeper than {0} files")]
    TooDeep(usize),
    #[error("more than {0} files included")]
    TooMany(usize),
}

fn is_glob(target: &str) -> bool {
    target.contains(['*', '?', '['])
}

/// The files an `@include` names, in the order they are included.
pub(crate) fn resolve(target: &str, dir: &Path) -> Result<Vec<PathBuf>, IncludeError> {
    let target = target.strip_prefix("file://").unwrap_or(target);
    if target.is_empty() {
        return Err(IncludeError::Empty);
    }
    if target.contains("://") {
        return Err(IncludeError::Remote(target.to_string()));
    }
    let relative = Path::new(target);
    let full = if relative.is_absolute() {
        relative.to_path_buf()
    } else {
        dir.join(relative)
    };
    if !is_glob(target) {
        return if full.exists() {
            Ok(vec![full])
        } else {
            Err(IncludeError::NotFound {
                target: target.to_string(),
                path: full,
            })
        };
    }
    let pattern = if relative.is_absolute() || dir.as_os_str().is_empty() {
        target.to_string()
    } else {
        let Some(dir) = dir.to_str() else {
            return Err(IncludeError::BadPattern {
                pattern: target.to_string(),
                reason: "the including directory is not valid UTF-8".into(),
            });
        };
        format!("{}/{target}", glob::Pattern::escape(dir))
    };
    let options = glob::MatchOptions {
        case_sensitive: true,
        require_literal_separator: true,
        require_literal_leading_dot: true,
    };
    let paths = glob::glob_with(&pattern, options).map_err(|e| IncludeError::BadPattern {
        pattern: target.to_string(),
        reason: e.msg.to_string(),
    })?;
    let mut files = Vec::new();
    for entry in paths {
        let path = entry.map_err(|e| IncludeError::Io {
            path: e.path().to_path_buf(),
            source: e.into(),
        })?;
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a configuration file: a regular file, at most [`MAX_FILE_BYTES`], UTF-8 (a leading
/// byte-order mark is dropped).
pub(crate) fn read_config(path: &Path) -> Result<String, IncludeError> {
    let io = |source| IncludeError::Io {
        path: path.to_path_buf(),
        source,
    };
    // Checked before opening: opening a FIFO would block.
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.is_file() {
        return Err(IncludeError::NotAFile(path.to_path_buf()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(IncludeError::TooLarge(path.to_path_buf()));
    }
    let file = File::open(path).map_err(io)?;
    let mut text = String::new();
    // The bound also holds if the file grows after the size check.
    match file.take(MAX_FILE_BYTES + 1).read_to_string(&mut text) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            return Err(IncludeError::NotUtf8(path.to_path_buf()));
        }
        Err(e) => return Err(io(e)),
    }
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(IncludeError::TooLarge(path.to_path_buf()));
    }
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_are_sorted_and_skip_hidden_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("conf.d");
        std::fs::create_dir(&d).unwrap();
        for name in ["b.conf", "a.conf", ".hidden.conf", "c.txt"] {
            std::fs::write(d.join(name), "").unwrap();
        }
        std::fs::create_dir(d.join("sub.conf")).unwrap();
        let files = resolve("conf.d/*.conf", dir.path()).unwrap();
        assert_eq!(files, vec![d.join("a.conf"), d.join("b.conf")]);
        assert!(resolve("nothing/*.conf", dir.path()).unwrap().is_empty());
    }

    #[test]
    fn missing_plain_path_and_remote_urls_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            resolve("missing.conf", dir.path()),
            Err(IncludeError::NotFound { .. })
        ));
        assert!(matches!(
            resolve("http://example.invalid/x.conf", dir.path()),
            Err(IncludeError::Remote(_))
        ));
        assert!(matches!(
            resolve("file://", dir.path()),
            Err(IncludeError::Empty)
        ));
    }

    #[test]
    fn reading_rejects_directories_and_bad_utf8_and_drops_a_bom() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_config(dir.path()),
            Err(IncludeError::NotAFile(_))
        ));
        let bad = dir.path().join("bad.conf");
        std::fs::write(&bad, [0xff, 0xfe, b'a']).unwrap();
        assert!(matches!(read_config(&bad), Err(IncludeError::NotUtf8(_))));
        let bom = dir.path().join("bom.conf");
        std::fs::write(&bom, "\u{feff}<system>\n</system>\n").unwrap();
        assert!(read_config(&bom).unwrap().starts_with("<system>"));
        let missing = read_config(&dir.path().join("none.conf")).unwrap_err();
        assert!(matches!(missing, IncludeError::Io { .. }));
    }
}
