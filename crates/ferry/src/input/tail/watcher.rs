//! Change notification: inotify when the kernel grants it, polling when it does not.
//!
//! Events only say *when* to look; *what* happened is always decided by `stat` and reading
//! (rotation, truncation, growth). A missed, merged or reordered event therefore costs
//! latency, never data, and there is no event-driven state to race with the periodic scan
//! (the family of Fluentd bugs around "update_watcher").
//!
//! When inotify cannot be had — `inotify_init` fails (`fs.inotify.max_user_instances`, or the
//! process is out of descriptors), `inotify_add_watch` fails (`fs.inotify.max_user_watches`),
//! or the event queue overflows (`fs.inotify.max_queued_events`) — the affected files are
//! polled at [`FALLBACK_POLL`]. Each cause is logged once with the sysctl to raise, and
//! counted in `polling_fallbacks`. Tailing never stops for it.
//!
//! `FERRY_TAIL_INOTIFY_FAIL=init` (or `1`) makes `inotify_init` fail and
//! `FERRY_TAIL_INOTIFY_FAIL=watch` makes every `inotify_add_watch` fail, so tests can prove
//! the fallback without changing the machine's limits.

use super::metrics::TailMetrics;
use futures_util::{FutureExt, StreamExt};
use inotify::{EventMask, EventStream, Inotify, WatchDescriptor, WatchMask, Watches};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How often files without a watch are polled.
pub const FALLBACK_POLL: Duration = Duration::from_millis(250);
/// How often watched files are checked anyway (Fluentd's `enable_watch_timer`).
pub const WATCH_TIMER: Duration = Duration::from_secs(1);

/// The environment variable of the test hook (see the module docs).
pub const FAIL_HOOK_ENV: &str = "FERRY_TAIL_INOTIFY_FAIL";

/// What a wake-up asks for.
#[derive(Debug, Default)]
pub struct Wake {
    /// Paths whose files changed.
    pub files: Vec<PathBuf>,
    /// A watched directory changed, or events were lost: look at everything.
    pub rescan: bool,
}

#[derive(Debug, Clone)]
enum Target {
    File(PathBuf),
    Dir,
}

#[derive(Debug)]
struct Active {
    stream: EventStream<Vec<u8>>,
    watches: Watches,
    targets: HashMap<WatchDescriptor, Target>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hook {
    None,
    FailInit,
    FailWatch,
}

#[derive(Debug)]
pub struct Watcher {
    id: String,
    active: Option<Active>,
    hook: Hook,
    metrics: Arc<TailMetrics>,
    /// Files being polled because they have no watch.
    unwatched: usize,
    logged_init: bool,
    logged_watch: bool,
    logged_overflow: bool,
}

impl Watcher {
    /// Starts inotify (unless `enabled` is false), or logs and counts the fallback.
    pub fn new(id: &str, enabled: bool, metrics: Arc<TailMetrics>) -> Self {
        let hook = match std::env::var(FAIL_HOOK_ENV).as_deref() {
            Ok("1" | "init") => Hook::FailInit,
            Ok("watch") => Hook::FailWatch,
            _ => Hook::None,
        };
        let mut w = Self {
            id: id.to_string(),
            active: None,
            hook,
            metrics,
            unwatched: 0,
            logged_init: false,
            logged_watch: false,
            logged_overflow: false,
        };
        if !enabled {
            return w;
        }
        let init = if hook == Hook::FailInit {
            Err(io::Error::from_raw_os_error(24)) // EMFILE, as when max_user_instances is reached
        } else {
            Inotify::init().and_then(|i| i.into_event_stream(vec![0u8; 64 * 1024]))
        };
        match init {
            Ok(stream) => {
                w.active = Some(Active {
                    watches: stream.watches(),
                    stream,
                    targets: HashMap::new(),
                })
            }
            Err(e) => {
                TailMetrics::add(&w.metrics.polling_fallbacks, 1);
                w.logged_init = true;
                tracing::warn!(
                    "tail input {}: inotify is not available ({e}); following files by polling every {:?}. Raise the limit with `sysctl -w fs.inotify.max_user_instances=1024` (and check `ulimit -n`)",
                    w.id,
                    FALLBACK_POLL
                );
            }
        }
        w
    }

    /// Whether some files are followed by polling only.
    pub fn polling(&self) -> bool {
        self.active.is_none() || self.unwatched > 0
    }

    /// How often the caller should check every file.
    pub fn poll_interval(&self) -> Duration {
        if self.polling() {
            FALLBACK_POLL
        } else {
            WATCH_TIMER
        }
    }

    fn add(&mut self, path: &Path, mask: WatchMask) -> Option<io::Result<WatchDescriptor>> {
        let active = self.active.as_mut()?;
        if self.hook == Hook::FailWatch {
            return Some(Err(io::Error::from_raw_os_error(28))); // ENOSPC: max_user_watches
        }
        Some(active.watches.add(path, mask))
    }

    /// Watches the file at `path`; its events wake the slot `slot`. `None` means it is polled
    /// (the fallback was logged and counted).
    pub fn watch_file(&mut self, path: &Path, slot: &Path) -> Option<WatchDescriptor> {
        let mask = WatchMask::MODIFY
            | WatchMask::ATTRIB
            | WatchMask::MOVE_SELF
            | WatchMask::DELETE_SELF
            | WatchMask::CLOSE_WRITE;
        match self.add(path, mask) {
            None => {
                self.unwatched += 1;
                None
            }
            Some(Ok(wd)) => {
                if let Some(a) = self.active.as_mut() {
                    a.targets
                        .insert(wd.clone(), Target::File(slot.to_path_buf()));
                }
                Some(wd)
            }
            Some(Err(e)) => {
                self.unwatched += 1;
                TailMetrics::add(&self.metrics.polling_fallbacks, 1);
                if !self.logged_watch {
                    self.logged_watch = true;
                    tracing::warn!(
                        "tail input {}: cannot watch {} with inotify ({e}); polling it (and any other file that cannot be watched) every {:?}. Raise the limit with `sysctl -w fs.inotify.max_user_watches=524288`",
                        self.id,
                        path.display(),
                        FALLBACK_POLL
                    );
                }
                None
            }
        }
    }

    /// Watches a directory for new and renamed files; failures only slow discovery down.
    pub fn watch_dir(&mut self, dir: &Path) {
        let mask =
            WatchMask::CREATE | WatchMask::MOVED_TO | WatchMask::MOVED_FROM | WatchMask::DELETE;
        if let Some(Ok(wd)) = self.add(dir, mask)
            && let Some(a) = self.active.as_mut()
        {
            a.targets.insert(wd, Target::Dir);
        }
    }

    /// Stops watching a file that is closed (`wd` from [`Watcher::watch_file`], or `None` for
    /// a polled one).
    pub fn unwatch(&mut self, wd: Option<WatchDescriptor>) {
        match (wd, self.active.as_mut()) {
            (Some(wd), Some(a)) => {
                if a.targets.remove(&wd).is_some() {
                    // The inode may already be gone; its watch went with it.
                    let _ = a.watches.remove(wd);
                }
            }
            _ => self.unwatched = self.unwatched.saturating_sub(1),
        }
    }

    /// The events already queued, without waiting (`None` when there are none).
    pub fn try_wait(&mut self) -> Option<Wake> {
        // Cancel-safe: `wait` awaits only its first event, and a stream that has none yet
        // gives nothing up.
        self.wait().now_or_never()
    }

    /// Waits for events; pending forever when inotify is not in use.
    pub async fn wait(&mut self) -> Wake {
        let Some(active) = self.active.as_mut() else {
            return std::future::pending().await;
        };
        let mut wake = Wake::default();
        let mut overflow = false;
        let mut failed = None;
        let mut next = active.stream.next().await;
        loop {
            match next {
                Some(Ok(ev)) => {
                    if ev.mask.contains(EventMask::Q_OVERFLOW) {
                        overflow = true;
                    }
                    match active.targets.get(&ev.wd) {
                        Some(Target::File(p)) => {
                            if !wake.files.contains(p) {
                                wake.files.push(p.clone());
                            }
                            if ev.mask.contains(EventMask::IGNORED) {
                                active.targets.remove(&ev.wd);
                            }
                        }
                        Some(Target::Dir) => wake.rescan = true,
                        None => {}
                    }
                }
                Some(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                None => {
                    failed = Some(io::Error::other("inotify stream ended"));
                    break;
                }
            }
            // Take what else is already queued, without waiting.
            match active.stream.next().now_or_never() {
                Some(more) => next = more,
                None => break,
            }
        }
        if let Some(e) = failed {
            tracing::warn!(
                "tail input {}: reading inotify events failed ({e}); polling from now on",
                self.id
            );
            self.active = None;
            TailMetrics::add(&self.metrics.polling_fallbacks, 1);
            wake.rescan = true;
            return wake;
        }
        if overflow {
            wake.rescan = true;
            TailMetrics::add(&self.metrics.polling_fallbacks, 1);
            if !self.logged_overflow {
                self.logged_overflow = true;
                tracing::warn!(
                    "tail input {}: the inotify event queue overflowed; checking every file by stat. Raise the limit with `sysctl -w fs.inotify.max_queued_events=65536`",
                    self.id
                );
            }
        }
        wake
    }
}
