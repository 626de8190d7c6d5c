//! Retry timing for chunks that failed to flush, with Fluentd's parameters and algorithm
//! (`plugin_helper/retry_state.rb`).
//!
//! A [`Backoff`] computes the wait before retry number `n`; a [`RetryPolicy`] adds the limits
//! (`retry_timeout`, `retry_max_times`, `retry_forever`) and the switch to `<secondary>`.
//! Both are validated values: an invalid combination is refused by [`RetryPolicy::try_new`].
//! The per-chunk progress lives in [`RetryState`]; every chunk carries its own.
//!
//! Semantics (documented deviations from Fluentd are marked):
//! * first failure at `t0`: the first retry is at `t0 + retry_wait` (not randomized);
//! * each later failure at `now` increments `steps` and schedules
//!   `now + randomize(min(retry_wait · base^steps, retry_max_interval))` (periodic: `retry_wait`);
//! * without `retry_forever`, a retry is never scheduled after `t0 + retry_timeout` (it is
//!   clamped to that instant), a failure at or after it gives up, and so does the failure that
//!   makes `steps` reach `retry_max_times` (so `retry_max_times N` allows exactly N retries;
//!   Fluentd allows one more);
//! * with a secondary, the switch happens on the first failure at or after
//!   `t0 + retry_secondary_threshold × min(retry_timeout, time implied by retry_max_times)`,
//!   and the exponent restarts from there; primary retries are clamped to the switch instant.

use std::time::{Duration, SystemTime};

/// Fluentd's `retry_type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RetryType {
    /// `retry_wait · base^steps`, capped by `retry_max_interval`.
    #[default]
    ExponentialBackoff,
    /// A constant `retry_wait` between retries.
    Periodic,
}

/// The user-facing retry parameters (Fluentd names and defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct RetryConfig {
    pub retry_type: RetryType,
    pub retry_wait: Duration,
    pub retry_exponential_backoff_base: f64,
    pub retry_max_interval: Option<Duration>,
    /// Spread each interval by ±12.5 % so that many failing chunks do not retry in lockstep.
    pub retry_randomize: bool,
    pub retry_timeout: Duration,
    pub retry_max_times: Option<u32>,
    pub retry_forever: bool,
    pub retry_secondary_threshold: f64,
    /// Whether the output has a `<secondary>`; enables [`crate::RetryDecision::UseSecondary`].
    pub has_secondary: bool,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            retry_type: RetryType::ExponentialBackoff,
            retry_wait: Duration::from_secs(1),
            retry_exponential_backoff_base: 2.0,
            retry_max_interval: None,
            retry_randomize: true,
            retry_timeout: Duration::from_secs(72 * 3600),
            retry_max_times: None,
            retry_forever: false,
            retry_secondary_threshold: 0.8,
            has_secondary: false,
        }
    }
}

/// Why a [`RetryConfig`] was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RetryConfigError {
    #[error("retry_wait must be positive")]
    ZeroWait,
    #[error("retry_exponential_backoff_base must be a finite number >= 1, got {0}")]
    BadBase(f64),
    #[error("retry_max_interval ({max:?}) must be at least retry_wait ({wait:?})")]
    MaxBelowWait { max: Duration, wait: Duration },
    #[error("retry_secondary_threshold must be in (0, 1), got {0}")]
    BadSecondaryThreshold(f64),
    #[error("retry_timeout must be positive")]
    ZeroTimeout,
}

impl RetryConfigError {
    /// Configuration errors never go away by retrying.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Width of `retry_randomize` (Fluentd's `randomize_width`).
pub const RANDOMIZE_WIDTH: f64 = 0.125;
/// Intervals are computed in seconds as `f64` and capped here (about 31 years) so that a
/// huge exponent never overflows `Duration`.
const INTERVAL_CEILING_SECS: f64 = 1.0e9;

/// The wait before each retry: a validated value.
#[derive(Clone, Debug, PartialEq)]
pub struct Backoff {
    retry_type: RetryType,
    wait: Duration,
    base: f64,
    max_interval: Option<Duration>,
    randomize: bool,
}

impl Backoff {
    /// The un-randomized interval before the retry that follows failure number `steps`.
    pub fn interval(&self, steps: u32) -> Duration {
        let wait = self.wait.as_secs_f64();
        let raw = match self.retry_type {
            RetryType::Periodic => wait,
            RetryType::ExponentialBackoff => {
                let exp = i32::try_from(steps).unwrap_or(i32::MAX);
                wait * self.base.powi(exp)
            }
        };
        let raw = if raw.is_finite() {
            raw.min(INTERVAL_CEILING_SECS)
        } else {
            INTERVAL_CEILING_SECS
        };
        let interval = Duration::from_secs_f64(raw);
        match self.max_interval {
            Some(max) if interval > max => max,
            _ => interval,
        }
    }

    /// Applies `retry_randomize`: `sample` in `[-1, 1]` moves the interval by up to ±12.5 %.
    pub fn randomize(&self, interval: Duration, sample: f64) -> Duration {
        if !self.randomize {
            return interval;
        }
        let sample = if sample.is_finite() {
            sample.clamp(-1.0, 1.0)
        } else {
            0.0
        };
        interval.mul_f64(1.0 + RANDOMIZE_WIDTH * sample)
    }

    /// The largest wait this backoff can ever produce (cap plus jitter), if capped.
    pub fn ceiling(&self) -> Option<Duration> {
        let factor = if self.randomize {
            1.0 + RANDOMIZE_WIDTH
        } else {
            1.0
        };
        self.max_interval.map(|m| m.mul_f64(factor))
    }
}

/// Retry limits and secondary switch on top of a [`Backoff`]: a validated value.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    backoff: Backoff,
    timeout: Duration,
    max_times: Option<u32>,
    forever: bool,
    secondary_after: Option<Duration>,
}

/// Progress of one chunk through its retries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetryState {
    /// Failed retries so far (0 after the first failure).
    pub steps: u32,
    /// When the first attempt failed; `None` while the chunk never failed.
    pub first_failure: Option<SystemTime>,
    /// Earliest time of the next attempt; `None` means now.
    pub next_at: Option<SystemTime>,
    /// The chunk has switched to the `<secondary>` output.
    pub secondary: bool,
    secondary_from_step: u32,
}

impl RetryState {
    /// A state restored from disk: the retry budget keeps counting, the next attempt is now.
    pub fn restored(steps: u32, first_failure: SystemTime) -> Self {
        RetryState {
            steps,
            first_failure: Some(first_failure),
            next_at: None,
            secondary: false,
            secondary_from_step: 0,
        }
    }
}

/// What the policy says after a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryVerdict {
    /// Try again at this time.
    RetryAt(SystemTime),
    /// Switch to the secondary output now (later retries also go there).
    UseSecondary,
    /// The retry budget is spent.
    GiveUp,
}

impl RetryPolicy {
    /// Validates `config`.
    pub fn try_new(config: &RetryConfig) -> Result<Self, RetryConfigError> {
        if config.retry_wait.is_zero() {
            return Err(RetryConfigError::ZeroWait);
        }
        let base = config.retry_exponential_backoff_base;
        if !base.is_finite() || base < 1.0 {
            return Err(RetryConfigError::BadBase(base));
        }
        if let Some(max) = config.retry_max_interval {
            if max < config.retry_wait {
                return Err(RetryConfigError::MaxBelowWait {
                    max,
                    wait: config.retry_wait,
                });
            }
        }
        if config.retry_timeout.is_zero() {
            return Err(RetryConfigError::ZeroTimeout);
        }
        let threshold = config.retry_secondary_threshold;
        if !(threshold > 0.0 && threshold < 1.0) {
            return Err(RetryConfigError::BadSecondaryThreshold(threshold));
        }
        let backoff = Backoff {
            retry_type: config.retry_type,
            wait: config.retry_wait,
            base,
            max_interval: config.retry_max_interval,
            randomize: config.retry_randomize,
        };
        let secondary_after = (config.has_secondary && !config.retry_forever).then(|| {
            let mut budget = config.retry_timeout;
            if let Some(times) = config.retry_max_times {
                let implied = (0..times).fold(Duration::ZERO, |acc, i| {
                    acc.saturating_add(backoff.interval(i))
                });
                budget = budget.min(implied);
            }
            budget.mul_f64(threshold)
        });
        Ok(RetryPolicy {
            backoff,
            timeout: config.retry_timeout,
            max_times: config.retry_max_times,
            forever: config.retry_forever,
            secondary_after,
        })
    }

    pub fn backoff(&self) -> &Backoff {
        &self.backoff
    }

    /// Records a failed attempt at `now` and says what happens next. `jitter` is a sample in
    /// `[-1, 1]` (use [`RetryPolicy::on_failure_random`] for a random one).
    pub fn on_failure(&self, state: &mut RetryState, now: SystemTime, jitter: f64) -> RetryVerdict {
        let Some(first) = state.first_failure else {
            *state = RetryState {
                first_failure: Some(now),
                ..RetryState::default()
            };
            if !self.forever && self.max_times == Some(0) {
                return RetryVerdict::GiveUp;
            }
            let next = self.clamp(state, now + self.backoff.wait);
            state.next_at = Some(next);
            return RetryVerdict::RetryAt(next);
        };
        state.steps = state.steps.saturating_add(1);
        if !self.forever {
            let timed_out = now >= first + self.timeout;
            let exhausted = self.max_times.is_some_and(|max| state.steps >= max);
            if timed_out || exhausted {
                return RetryVerdict::GiveUp;
            }
        }
        let mut verdict = None;
        if let Some(after) = self.secondary_after {
            if !state.secondary && now >= first + after {
                state.secondary = true;
                state.secondary_from_step = state.steps;
                verdict = Some(RetryVerdict::UseSecondary);
            }
        }
        let exponent = state.steps - state.secondary_from_step;
        let wait = self
            .backoff
            .randomize(self.backoff.interval(exponent), jitter);
        let next = self.clamp(state, now + wait);
        state.next_at = Some(next);
        verdict.unwrap_or(RetryVerdict::RetryAt(next))
    }

    /// [`RetryPolicy::on_failure`] with a random jitter sample.
    pub fn on_failure_random(&self, state: &mut RetryState, now: SystemTime) -> RetryVerdict {
        let sample = rand::random::<f64>() * 2.0 - 1.0;
        self.on_failure(state, now, sample)
    }

    fn clamp(&self, state: &RetryState, naive: SystemTime) -> SystemTime {
        let Some(first) = state.first_failure else {
            return naive;
        };
        if self.forever {
            return naive;
        }
        let limit = match self.secondary_after {
            Some(after) if !state.secondary => first + after,
            _ => first + self.timeout,
        };
        naive.min(limit)
    }
}

#[cfg(test)]
mod tests;
