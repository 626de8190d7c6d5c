//! Helper threads that `fdatasync` a file while the caller syncs another: the journal and the
//! payload of a group commit are synced at once (on journaling filesystems concurrent syncs
//! share one journal commit, so the pair costs about one sync), without creating a thread per
//! commit (which cost more CPU than the sync itself at hundreds of commits a second).
//!
//! The helpers start on first use and live as long as the process; a job waits in a queue when
//! all of them are busy. If no helper can be started, the sync runs on the calling thread.

use std::io;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::storage::StorageFile;

/// Helper threads: enough for the flushers and appenders that commit at once.
const HELPERS: usize = 4;

type Job = (Arc<dyn StorageFile>, Sender<io::Result<()>>);

fn queue() -> Option<&'static Mutex<Sender<Job>>> {
    static QUEUE: OnceLock<Option<Mutex<Sender<Job>>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = Arc::new(Mutex::new(rx));
            let mut started = 0;
            for n in 0..HELPERS {
                let rx = Arc::clone(&rx);
                let spawned = std::thread::Builder::new()
                    .name(format!("ferry-sync-{n}"))
                    .spawn(move || work(&rx));
                if spawned.is_ok() {
                    started += 1;
                }
            }
            (started > 0).then(|| Mutex::new(tx))
        })
        .as_ref()
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
        let Ok((file, reply)) = job else { return };
        let _ = reply.send(file.sync_data());
    }
}

/// A sync running on a helper thread; [`Pending::wait`] returns its result.
pub(crate) enum Pending {
    Queued(Receiver<io::Result<()>>),
    Inline(Arc<dyn StorageFile>),
}

impl Pending {
    pub(crate) fn wait(self) -> io::Result<()> {
        match self {
            Pending::Queued(rx) => rx
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("sync helper thread stopped"))),
            Pending::Inline(file) => file.sync_data(),
        }
    }
}

/// Starts `fdatasync` of `file` on a helper thread.
pub(crate) fn start(file: Arc<dyn StorageFile>) -> Pending {
    let Some(queue) = queue() else {
        return Pending::Inline(file);
    };
    let (tx, rx) = mpsc::channel();
    let sent = queue
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .send((Arc::clone(&file), tx));
    match sent {
        Ok(()) => Pending::Queued(rx),
        Err(_) => Pending::Inline(file),
    }
}
