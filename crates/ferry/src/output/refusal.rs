//! Refusal episodes. An output that refuses events (buffer full, disk error) logs the first
//! refusal of an episode, only counts the rest, and logs the end of the episode once it has
//! accepted events for [`QUIET`] after its last refusal. Refusals less than [`QUIET`] apart (a
//! disk hovering at full, a buffer at its limit) belong to one episode, so a condition that
//! flaps does not flood the log. The accept path reads one atomic while no episode is open.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How long an output must accept events after its last refusal for the episode to end.
pub const QUIET: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
struct Open {
    since: Instant,
    last_refusal: Instant,
    refused: u64,
}

/// How an episode ended: refusals counted and how long it lasted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub refused: u64,
    pub lasted: Duration,
}

#[derive(Debug, Default)]
pub struct Episodes {
    open: AtomicBool,
    state: Mutex<Option<Open>>,
}

impl Episodes {
    /// Records a refusal; true when it begins an episode (the caller logs it).
    pub fn refused(&self, now: Instant) -> bool {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match st.as_mut() {
            Some(open) => {
                open.last_refusal = now;
                open.refused += 1;
                false
            }
            None => {
                *st = Some(Open {
                    since: now,
                    last_refusal: now,
                    refused: 1,
                });
                self.open.store(true, Ordering::Release);
                true
            }
        }
    }

    /// Records an accepted batch; `Some` when it ends the episode (the caller logs it).
    pub fn accepted(&self, now: Instant) -> Option<Ended> {
        if !self.open.load(Ordering::Acquire) {
            return None;
        }
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let open = (*st)?;
        if now.saturating_duration_since(open.last_refusal) < QUIET {
            return None;
        }
        *st = None;
        self.open.store(false, Ordering::Release);
        Some(Ended {
            refused: open.refused,
            lasted: open.last_refusal.saturating_duration_since(open.since),
        })
    }

    /// Whether an episode is open.
    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_that_flap_are_one_episode_ended_after_a_quiet_period() {
        let e = Episodes::default();
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(e.refused(at(0)), "the first refusal begins the episode");
        assert_eq!(e.accepted(at(1)), None, "one success is not the end");
        assert!(!e.refused(at(2)), "a refusal soon after belongs to it");
        assert!(!e.refused(at(5)));
        assert_eq!(e.accepted(at(14)), None, "9 s after the last refusal");
        assert_eq!(
            e.accepted(at(15)),
            Some(Ended {
                refused: 3,
                lasted: Duration::from_secs(5)
            })
        );
        assert!(!e.is_open());
        assert_eq!(e.accepted(at(16)), None, "an ended episode ends once");
        assert!(e.refused(at(40)), "a later refusal begins a new episode");
    }
}
