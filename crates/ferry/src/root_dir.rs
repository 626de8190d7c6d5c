//! The root directory: where ferry keeps the state of a configuration across restarts. Default
//! file buffers live in `<root>/buffer/<@id>`, memory buffers that could not flush before a
//! planned stop are written to `<root>/spill/<@id>` and taken back by the next start.
//!
//! Which directory, first match wins:
//!
//! | source | example |
//! |---|---|
//! | `--root-dir DIR` or `FERRY_ROOT_DIR` | a container's volume |
//! | `<system> root_dir` (Fluentd's parameter) | a configuration moved from Fluentd |
//! | `$STATE_DIRECTORY` (systemd's `StateDirectory=`) | `/var/lib/ferry` under the unit in `deploy/` |
//! | `/var/lib/ferry` when running as root | containers, system services |
//! | `$XDG_STATE_HOME/ferry`, else `~/.local/state/ferry` | a user's first run |
//!
//! Nothing is created until something needs it (a buffer opens, a spill is written).

use std::path::{Path, PathBuf};

/// Where a root directory came from, printed at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootOrigin {
    /// `--root-dir` or `FERRY_ROOT_DIR`.
    CommandLine,
    /// `<system> root_dir`.
    System,
    /// Chosen by ferry (see the module docs).
    Default,
}

/// The resolved root directory of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootDir {
    pub path: PathBuf,
    pub origin: RootOrigin,
}

/// The subdirectory of default file buffers.
pub const BUFFER_SUBDIR: &str = "buffer";
/// The subdirectory of memory buffers written at a planned stop.
pub const SPILL_SUBDIR: &str = "spill";

impl RootDir {
    /// Resolves the root directory from the command line, `<system> root_dir` and the process's
    /// environment.
    pub fn resolve(command_line: Option<&Path>, system: Option<&Path>) -> Self {
        if let Some(p) = command_line {
            return Self {
                path: p.to_path_buf(),
                origin: RootOrigin::CommandLine,
            };
        }
        if let Some(p) = system {
            return Self {
                path: p.to_path_buf(),
                origin: RootOrigin::System,
            };
        }
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        Self {
            path: default_path(
                env("STATE_DIRECTORY").as_deref().map(Path::new),
                rustix::process::geteuid().is_root(),
                env("XDG_STATE_HOME").as_deref().map(Path::new),
                env("HOME").as_deref().map(Path::new),
            ),
            origin: RootOrigin::Default,
        }
    }

    /// Whether an operator chose this directory (not ferry's default).
    pub fn is_explicit(&self) -> bool {
        self.origin != RootOrigin::Default
    }

    /// The default file buffer of output `id`.
    pub fn buffer_dir(&self, id: &str) -> PathBuf {
        self.path.join(BUFFER_SUBDIR).join(id)
    }

    /// Where output `id`'s memory buffer is written at a planned stop.
    pub fn spill_dir(&self, id: &str) -> PathBuf {
        self.path.join(SPILL_SUBDIR).join(id)
    }

    /// How the start-up log line names it.
    pub fn describe(&self) -> String {
        let from = match self.origin {
            RootOrigin::CommandLine => "from --root-dir",
            RootOrigin::System => "from <system> root_dir",
            RootOrigin::Default => {
                "ferry's default; set <system> root_dir or --root-dir to move it"
            }
        };
        format!("{} ({from})", self.path.display())
    }
}

/// ferry's default root directory: systemd's `STATE_DIRECTORY` (the first of a list), else
/// `/var/lib/ferry` for root, else the user's state directory.
fn default_path(
    state_directory: Option<&Path>,
    root: bool,
    xdg_state_home: Option<&Path>,
    home: Option<&Path>,
) -> PathBuf {
    if let Some(dirs) = state_directory.and_then(Path::to_str)
        && let Some(first) = dirs.split(':').find(|d| !d.is_empty())
    {
        return PathBuf::from(first);
    }
    if root {
        return PathBuf::from("/var/lib/ferry");
    }
    match (xdg_state_home, home) {
        (Some(x), _) if x.is_absolute() => x.join("ferry"),
        (_, Some(h)) => h.join(".local/state/ferry"),
        _ => std::env::temp_dir().join(format!("ferry-{}", rustix::process::geteuid().as_raw())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_wins_over_system_which_wins_over_the_default() {
        let cli = RootDir::resolve(Some(Path::new("/a")), Some(Path::new("/b")));
        assert_eq!(
            (cli.path.as_path(), cli.origin),
            (Path::new("/a"), RootOrigin::CommandLine)
        );
        let sys = RootDir::resolve(None, Some(Path::new("/b")));
        assert_eq!(
            (sys.path.as_path(), sys.origin),
            (Path::new("/b"), RootOrigin::System)
        );
        assert!(sys.is_explicit());
        assert!(!RootDir::resolve(None, None).is_explicit());
    }

    #[test]
    fn the_default_follows_systemd_then_root_then_the_user() {
        let home = Some(Path::new("/home/u"));
        assert_eq!(
            default_path(Some(Path::new("/var/lib/ferry:/x")), false, None, home),
            Path::new("/var/lib/ferry")
        );
        assert_eq!(
            default_path(None, true, None, home),
            Path::new("/var/lib/ferry")
        );
        assert_eq!(
            default_path(None, false, Some(Path::new("/s")), home),
            Path::new("/s/ferry")
        );
        // A relative XDG_STATE_HOME is invalid by the spec and ignored.
        assert_eq!(
            default_path(None, false, Some(Path::new("rel")), home),
            Path::new("/home/u/.local/state/ferry")
        );
    }

    #[test]
    fn buffers_and_spills_live_in_their_own_subdirectories() {
        let r = RootDir::resolve(Some(Path::new("/r")), None);
        assert_eq!(r.buffer_dir("out"), Path::new("/r/buffer/out"));
        assert_eq!(r.spill_dir("out"), Path::new("/r/spill/out"));
    }
}
