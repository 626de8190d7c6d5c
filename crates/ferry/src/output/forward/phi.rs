//! The phi accrual failure detector, computed exactly as Fluentd's out_forward computes it
//! (`out_forward/failure_detector.rb` and `Node#tick` / `Node#heartbeat`).
//!
//! State: a window of the last [`SAMPLE_SIZE`] gaps between heartbeats, in whole microseconds,
//! and the time of the last heartbeat. The window starts with one synthetic gap equal to
//! `heartbeat_interval`.
//!
//! - weighted mean: `mean_usec = Σ gap_i·(i+1) / Σ (i+1)` (oldest first, integer division);
//! - normalised: `mean = mean_usec/1e6 − heartbeat_interval + 1`,
//!   `t = now − last − heartbeat_interval + 1`;
//! - `phi = t / (mean · ln 10)`: `−log10(e^(−t/mean))`, the exponential approximation.
//!
//! With the defaults (1 s interval, steady 1 s heartbeats) `mean = 1` and `phi = 0.434·(t)`, so a
//! server is detached after `16·ln 10 ≈ 36.8 s` of silence. Fluentd's quirks are kept on
//! purpose, so thresholds tuned for Fluentd mean the same here: with an interval above 1 s and
//! much shorter gaps, `mean` can be zero or negative (phi is then infinite or negative).
//!
//! Times are seconds as `f64` since any fixed origin; [`PhiDetector::clear`] forgets the last
//! heartbeat (Fluentd sets it to 0, the epoch, so the hard timeout counts as passed).

/// Gaps kept in the window (Fluentd's `SAMPLE_SIZE`).
pub const SAMPLE_SIZE: usize = 1000;

/// `1 / ln 10`.
const PHI_FACTOR: f64 = std::f64::consts::LOG10_E;

#[derive(Debug, Clone)]
pub struct PhiDetector {
    interval: f64,
    hard_timeout: f64,
    init_gap: u64,
    /// Gaps in microseconds, oldest first.
    window: std::collections::VecDeque<u64>,
    /// The last heartbeat; `None` after [`clear`](Self::clear).
    last: Option<f64>,
}

impl PhiDetector {
    /// A detector whose last heartbeat was at `now` (a server starts out healthy).
    pub fn new(heartbeat_interval: f64, hard_timeout: f64, now: f64) -> Self {
        let init_gap = (heartbeat_interval * 1e6) as u64;
        Self {
            interval: heartbeat_interval,
            hard_timeout,
            init_gap,
            window: std::collections::VecDeque::from([init_gap]),
            last: Some(now),
        }
    }

    /// No heartbeat for longer than `hard_timeout`.
    pub fn hard_timeout(&self, now: f64) -> bool {
        match self.last {
            Some(last) => now - last > self.hard_timeout,
            None => true,
        }
    }

    /// Records a heartbeat at `now`.
    pub fn add(&mut self, now: f64) {
        match self.last {
            Some(last) if !self.window.is_empty() => {
                let gap = now - last;
                self.window.push_back((gap * 1e6).max(0.0) as u64);
                if self.window.len() > SAMPLE_SIZE {
                    self.window.pop_front();
                }
            }
            _ => {
                self.window.clear();
                self.window.push_back(self.init_gap);
            }
        }
        self.last = Some(now);
    }

    /// The suspicion level at `now`; 0 with an empty window.
    pub fn phi(&self, now: f64) -> f64 {
        if self.window.is_empty() {
            return 0.0;
        }
        let mut sum: u128 = 0;
        let mut fact: u128 = 0;
        for (i, gap) in self.window.iter().enumerate() {
            let w = i as u128 + 1;
            sum += u128::from(*gap) * w;
            fact += w;
        }
        let mean_usec = sum / fact;
        let mean = mean_usec as f64 / 1e6 - self.interval + 1.0;
        let last = self.last.unwrap_or(0.0);
        let t = now - last - self.interval + 1.0;
        PHI_FACTOR * t / mean
    }

    /// Samples in the window: recovery needs more than `recover_wait / heartbeat_interval`.
    pub fn sample_size(&self) -> usize {
        self.window.len()
    }

    /// Forgets every sample and the last heartbeat.
    pub fn clear(&mut self) {
        self.window.clear();
        self.last = None;
    }

    /// Seconds since the last heartbeat, if there was one since the last clear.
    pub fn since_last(&self, now: f64) -> Option<f64> {
        self.last.map(|l| now - l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steady(interval: f64, beats: usize) -> (PhiDetector, f64) {
        let mut d = PhiDetector::new(interval, 60.0, 0.0);
        let mut now = 0.0;
        for _ in 0..beats {
            now += interval;
            d.add(now);
        }
        (d, now)
    }

    #[test]
    fn steady_one_second_heartbeats_detach_after_36_8_seconds_of_silence() {
        let (d, last) = steady(1.0, 30);
        // mean = 1 s exactly, so phi = log10(e) * t with t = silence.
        let phi_at = |silence: f64| d.phi(last + silence);
        assert!((phi_at(0.0) - 0.0).abs() < 1e-12);
        assert!((phi_at(10.0) - 10.0 * std::f64::consts::LOG10_E).abs() < 1e-9);
        let threshold = 16.0;
        let detach = threshold * std::f64::consts::LN_10; // 36.841...
        assert!((detach - 36.841_361_487_904_734).abs() < 1e-9);
        assert!(phi_at(36.8) < threshold, "36.8 s: {}", phi_at(36.8));
        assert!(phi_at(36.85) > threshold, "36.85 s: {}", phi_at(36.85));
    }

    #[test]
    fn weighted_mean_favours_recent_gaps_with_integer_microseconds() {
        // Window: [1_000_000 (synthetic), 2_000_000, 4_000_000]
        // mean_usec = (1e6*1 + 2e6*2 + 4e6*3) / 6 = 17e6 / 6 = 2_833_333 (integer division)
        let mut d = PhiDetector::new(1.0, 60.0, 0.0);
        d.add(2.0);
        d.add(6.0);
        let mean = 2.833_333 - 1.0 + 1.0;
        let t = 9.0 - 6.0 - 1.0 + 1.0;
        let expected = std::f64::consts::LOG10_E * t / mean;
        assert!((d.phi(9.0) - expected).abs() < 1e-12, "{}", d.phi(9.0));
        // Hand-computed: 0.4342944819 * 3 / 2.833333 = 0.459841...
        assert!((d.phi(9.0) - 0.459_841_6).abs() < 1e-6);
    }

    #[test]
    fn a_short_interval_normalises_to_one_second() {
        // interval 0.2 s, steady 0.2 s gaps: mean = 0.2 - 0.2 + 1 = 1, t = silence + 0.8.
        let (d, last) = steady(0.2, 50);
        let phi = d.phi(last + 1.5);
        // Gaps are truncated to whole microseconds, so the mean is a hair under 0.2 s.
        assert!(
            (phi - std::f64::consts::LOG10_E * 2.3).abs() < 1e-5,
            "{phi}"
        );
    }

    #[test]
    fn slower_heartbeats_raise_the_mean_and_lower_phi() {
        let (fast, l1) = steady(1.0, 20);
        let mut slow = PhiDetector::new(1.0, 60.0, 0.0);
        let mut now = 0.0;
        for _ in 0..20 {
            now += 2.0;
            slow.add(now);
        }
        assert!(slow.phi(now + 10.0) < fast.phi(l1 + 10.0));
        // mean ≈ 2, so 16 needs t ≈ 73.7 s: the 60 s hard timeout fires first.
        assert!(slow.phi(now + 60.0) < 16.0);
        assert!(slow.hard_timeout(now + 60.1));
    }

    #[test]
    fn the_window_keeps_the_last_thousand_gaps() {
        let (d, _) = steady(1.0, 1500);
        assert_eq!(d.sample_size(), SAMPLE_SIZE);
    }

    #[test]
    fn clear_empties_the_window_and_counts_as_hard_timeout_until_the_next_heartbeat() {
        let (mut d, last) = steady(1.0, 5);
        d.clear();
        assert_eq!(d.sample_size(), 0);
        assert_eq!(d.phi(last + 100.0), 0.0);
        assert!(d.hard_timeout(last));
        d.add(last + 1.0);
        assert_eq!(
            d.sample_size(),
            1,
            "the first heartbeat after a clear is the synthetic gap"
        );
        assert!(!d.hard_timeout(last + 2.0));
        d.add(last + 2.0);
        assert_eq!(d.sample_size(), 2);
    }

    #[test]
    fn recovery_needs_more_samples_than_recover_wait_over_interval() {
        // recover_wait 10 s, interval 1 s: recovery when sample_size > 10, the 11th heartbeat.
        let mut d = PhiDetector::new(1.0, 60.0, 0.0);
        d.clear();
        let needed = (10.0_f64 / 1.0) as usize;
        let mut beats = 0;
        while d.sample_size() <= needed {
            beats += 1;
            d.add(beats as f64);
        }
        assert_eq!(beats, 11);
    }
}
