//! [`Buffer`]: opening, the shared inner state, sealing by time, stats and shutdown. The append
//! path is in [`crate::append`], the flusher's side (take, ack, nack, ...) in [`crate::flush`].
//!
//! Concurrency: one state mutex guards the bookkeeping and is never held across I/O or a wait
//! other than the condition variable of `overflow_action block`. Appends to one file chunk
//! serialize on that chunk's writer lock, held for one append's writes; appends to different
//! keys and all readers proceed in parallel. Readers use their own file handles, so streaming a
//! queued chunk never blocks ingest.

use std::any::Any;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use crate::config::{BufferConfig, BufferType, ConfigError, ValidConfig};
use crate::error::OpenError;
use crate::file_chunk::lock;
use crate::format;
use crate::key::{ChunkId, ChunkKey};
use crate::recovery::{self, RecoveryReport};
use crate::state::{Effects, Phase, State};
use crate::stats::{self, BufferStats, Counters};
use crate::storage::{RealStorage, Storage};

/// Hook called when a chunk becomes takeable or space frees.
pub type Notify = Arc<dyn Fn() + Send + Sync>;

/// The file side of a file buffer.
#[derive(Debug)]
pub(crate) struct Files {
    pub storage: Arc<dyn Storage>,
    pub dir: PathBuf,
    pub quarantine: PathBuf,
    _lock: Box<dyn Any + Send + Sync>,
}

pub(crate) struct Inner {
    /// Replaced whole by [`Buffer::reconfigure`]; readers take a snapshot.
    cfg: RwLock<Arc<ValidConfig>>,
    pub name: String,
    pub files: Option<Files>,
    pub state: Mutex<State>,
    /// Signalled when bytes are freed (for `overflow_action block`) or the buffer closes.
    pub space: Condvar,
    pub notify: RwLock<Option<Notify>>,
    /// Called (outside any lock) when bytes are freed or the limits change: wakes async
    /// appenders waiting for room ([`Buffer::set_space_hook`]).
    pub space_hook: RwLock<Option<Notify>>,
    pub counters: Counters,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// A durable chunk buffer. `Send + Sync`: share it as `Arc<Buffer>`; all methods are
/// synchronous and meant for blocking threads.
#[derive(Debug)]
pub struct Buffer {
    pub(crate) inner: Arc<Inner>,
}

/// A chunk and its notes (see [`Buffer::noted_chunks`]).
#[derive(Debug)]
pub struct NotedChunk {
    pub id: ChunkId,
    pub key: ChunkKey,
    pub notes: Vec<crate::format::Note>,
    pub notebook: crate::chunk::Notebook,
}

impl Buffer {
    /// Opens a buffer. A file buffer recovers every chunk under its `path`, in order, and
    /// reports what it found; broken chunks are quarantined, never fatal.
    pub fn open(config: BufferConfig, name: &str) -> Result<(Buffer, RecoveryReport), OpenError> {
        Self::open_with_storage(config, name, Arc::new(RealStorage))
    }

    /// [`Buffer::open`] over a given [`Storage`] (tests inject faults this way).
    pub fn open_with_storage(
        config: BufferConfig,
        name: &str,
        storage: Arc<dyn Storage>,
    ) -> Result<(Buffer, RecoveryReport), OpenError> {
        let cfg = config.validate()?;
        if !valid_name(name) {
            return Err(OpenError::Name(name.to_string()));
        }
        let mut state = State::default();
        let mut report = RecoveryReport::default();
        let mut fx = Effects::default();
        let files = match &cfg.config.buffer_type {
            BufferType::Memory => None,
            BufferType::File { path } => {
                let dir_err = |source| OpenError::Dir {
                    path: path.clone(),
                    source,
                };
                storage.create_dir_all(path).map_err(dir_err)?;
                let lock_path = path.join(format!("{name}.lock"));
                let guard = storage.lock(&lock_path).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::WouldBlock {
                        OpenError::Locked {
                            path: lock_path.clone(),
                        }
                    } else {
                        OpenError::Dir {
                            path: lock_path.clone(),
                            source: e,
                        }
                    }
                })?;
                let quarantine = path.join(format::QUARANTINE_DIR);
                let ctx = recovery::Context {
                    storage: storage.clone(),
                    dir: path.clone(),
                    quarantine: quarantine.clone(),
                    name: name.to_string(),
                    segment_target: cfg.config.segment_target_size,
                };
                let recovered = recovery::recover(&ctx, &mut report).map_err(dir_err)?;
                recovery::install(recovered, &mut state, &mut fx, SystemTime::now());
                Some(Files {
                    storage,
                    dir: path.clone(),
                    quarantine,
                    _lock: guard,
                })
            }
        };
        let inner = Arc::new(Inner {
            cfg: RwLock::new(Arc::new(cfg)),
            name: name.to_string(),
            files,
            state: Mutex::new(state),
            space: Condvar::new(),
            notify: RwLock::new(None),
            space_hook: RwLock::new(None),
            counters: Counters::default(),
        });
        Counters::bump(&inner.counters.torn_tails, report.torn_tails.len() as u64);
        Counters::bump(
            &inner.counters.quarantined_chunks,
            report.quarantined.len() as u64,
        );
        inner.apply(fx);
        Ok((Buffer { inner }, report))
    }

    /// Seals staged chunks whose time has come: older than `flush_interval` (interval mode) or
    /// past `timekey + timekey + timekey_wait` (lazy mode with a time key).
    pub fn enqueue_due(&self, now: SystemTime) {
        let inner = &self.inner;
        let cfg = inner.cfg();
        let mut fx = Effects::default();
        {
            let mut st = inner.lock_state();
            let due: Vec<_> = st
                .entries
                .values()
                .filter(|e| e.phase == Phase::Staged)
                .filter(|e| e.due_at(&cfg).is_some_and(|t| t <= now))
                .map(|e| (e.create_seq, e.id))
                .collect();
            let mut due = due;
            due.sort();
            for (_, id) in due {
                st.seal(id, now, &mut fx);
            }
        }
        inner.apply(fx);
    }

    /// Seals every staged chunk (SIGUSR1, shutdown).
    /// The chunks not in flight that carry progress notes, for an output to finish or undo
    /// what a crash interrupted before its first flush (see `format`, "Notes").
    pub fn noted_chunks(&self) -> Vec<NotedChunk> {
        let st = self.inner.lock_state();
        st.entries
            .values()
            .filter(|e| e.phase != crate::state::Phase::InFlight)
            .filter_map(|e| {
                let notes = e
                    .notes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                (!notes.is_empty()).then(|| NotedChunk {
                    id: e.id,
                    key: (*e.key).clone(),
                    notes,
                    notebook: crate::chunk::Notebook::new(
                        e.notes.clone(),
                        match &e.body {
                            crate::state::Body::File(f) => Some(f.clone()),
                            _ => None,
                        },
                    ),
                })
            })
            .collect()
    }

    pub fn flush_all(&self) {
        let inner = &self.inner;
        let mut fx = Effects::default();
        {
            let mut st = inner.lock_state();
            let now = SystemTime::now();
            for id in st.staged_ids() {
                st.seal(id, now, &mut fx);
            }
        }
        inner.apply(fx);
    }

    /// The earliest time at which `take` or `enqueue_due` could produce work (a time in the past
    /// means now); `None` when the buffer holds nothing that time alone will make ready.
    pub fn next_due(&self) -> Option<SystemTime> {
        let cfg = self.inner.cfg();
        let st = self.inner.lock_state();
        let mut best: Option<SystemTime> = None;
        let mut consider = |t: SystemTime| best = Some(best.map_or(t, |b| b.min(t)));
        for e in st.entries.values() {
            match e.phase {
                Phase::Queued => consider(e.ready_at()),
                Phase::Staged => {
                    if let Some(t) = e.due_at(&cfg) {
                        consider(t);
                    }
                }
                Phase::Sealing | Phase::InFlight => {}
            }
        }
        best
    }

    pub fn stats(&self) -> BufferStats {
        let st = self.inner.lock_state();
        stats::snapshot(&st, &self.inner.counters, self.inner.cfg().total_limit_size)
    }

    /// Installs the hook called (outside any lock) when a chunk becomes queued or space frees.
    pub fn set_notify(&self, f: Notify) {
        *self
            .inner
            .notify
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(f);
    }

    /// Installs the hook called (outside any lock) whenever room may have appeared: bytes
    /// freed, new limits, the buffer closed. Async callers that were refused with
    /// [`crate::AppendError::Overflow`] wait on it instead of polling.
    pub fn set_space_hook(&self, f: Notify) {
        *self
            .inner
            .space_hook
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(f);
    }

    /// Stops taking appends and wakes blocked ones. With `flush_at_shutdown`, staged chunks are
    /// sealed so they can still be taken; a file buffer keeps everything on disk.
    pub fn close(&self) {
        {
            let mut st = self.inner.lock_state();
            st.closed = true;
        }
        if self.inner.cfg().flush_at_shutdown {
            self.flush_all();
        }
        self.inner.room_appeared();
    }

    /// The validated configuration.
    pub fn config(&self) -> Arc<ValidConfig> {
        self.inner.cfg()
    }

    /// Applies new parameters to a running buffer: limits, flush mode and interval, overflow
    /// action, compression of new appends, retry policy. What it holds stays (a chunk written
    /// compressed stays so). The buffer's type and path cannot change: that is another buffer.
    pub fn reconfigure(&self, config: BufferConfig) -> Result<(), ConfigError> {
        let valid = config.validate()?;
        if valid.config.buffer_type != self.inner.cfg().config.buffer_type {
            return Err(ConfigError::TypeChange);
        }
        *self
            .inner
            .cfg
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(valid);
        // New limits may make room, or make staged chunks due: wake whoever waits.
        self.inner.room_appeared();
        self.inner.apply(Effects {
            notify: true,
            ..Effects::default()
        });
        Ok(())
    }

    /// The buffer's quarantine directory (file buffer).
    pub fn quarantine_dir(&self) -> Option<PathBuf> {
        match &self.inner.files {
            Some(f) => Some(f.quarantine.clone()),
            None => self.inner.cfg().config.quarantine_dir.clone(),
        }
    }
}

/// A buffer name is one plain file name component (its files are `<name>.*` in the directory).
pub(crate) fn valid_name(name: &str) -> bool {
    !(name.is_empty() || name.contains('/') || name.contains('\0') || name.starts_with('.'))
}

impl Drop for Buffer {
    fn drop(&mut self) {
        self.inner.space.notify_all();
    }
}

impl Inner {
    /// The configuration now.
    pub fn cfg(&self) -> Arc<ValidConfig> {
        Arc::clone(
            &self
                .cfg
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub fn lock_state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Wakes appenders waiting for room: blocked threads and the async hook.
    pub fn room_appeared(&self) {
        self.space.notify_all();
        let hook = self
            .space_hook
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// Carries out deferred I/O and notifications. Called with no lock held.
    pub fn apply(&self, fx: Effects) {
        for (chunk, record) in fx.records {
            if let Err(e) = chunk.write_record(record) {
                Counters::bump(&self.counters.disk_errors, 1);
                tracing::warn!(chunk = %chunk.id, error = %e, "could not write journal record");
            }
        }
        for chunk in fx.delete {
            if let Err(e) = chunk.remove() {
                Counters::bump(&self.counters.disk_errors, 1);
                tracing::warn!(path = %e.path.display(), error = %e.source, "could not delete chunk file");
            }
        }
        if fx.space_freed {
            self.room_appeared();
        }
        if fx.notify || fx.space_freed {
            let hook = self
                .notify
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone();
            if let Some(hook) = hook {
                hook();
            }
        }
    }
}
