//! Per-workload retry backoff: exponential from 1s to 60s with jitter, reset when the workload
//! converges or when its assignment changes (a new spec deserves an immediate attempt).

use std::time::{Duration, Instant};

const FIRST: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(60);

#[derive(Debug, Default, Clone)]
pub struct Backoff {
    failures: u32,
    /// Not attempted again until the fingerprint changes (see `park`).
    parked: bool,
    next_attempt: Option<Instant>,
    fingerprint: String,
}

impl Backoff {
    /// Whether the workload should be attempted now. A changed `fingerprint` resets the backoff.
    pub fn is_due(&mut self, now: Instant, fingerprint: &str) -> bool {
        if self.fingerprint != fingerprint {
            self.fingerprint = fingerprint.to_string();
            self.failures = 0;
            self.next_attempt = None;
            self.parked = false;
        }
        !self.parked && self.next_attempt.is_none_or(|at| now >= at)
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.next_attempt = None;
    }

    /// The attempt failed in a way only a new assignment can change: wait for one.
    pub fn park(&mut self) {
        self.failures = self.failures.saturating_add(1);
        self.parked = true;
    }

    pub fn failed(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        let exp = FIRST.saturating_mul(1 << self.failures.min(7).saturating_sub(1));
        let delay = exp.min(MAX);
        let jitter = delay.mul_f64(rand::random::<f64>() * 0.2);
        self.next_attempt = Some(now + delay + jitter);
    }

    pub fn parked(&self) -> bool {
        self.parked
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_waits_for_a_new_fingerprint() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert!(b.is_due(t0, "a"));
        b.park();
        assert!(!b.is_due(t0 + Duration::from_secs(3600), "a"));
        assert!(b.is_due(t0, "b"));
    }

    #[test]
    fn grows_caps_and_resets_on_new_spec() {
        let t0 = Instant::now();
        let mut b = Backoff::default();
        assert!(b.is_due(t0, "a"));
        b.failed(t0);
        assert!(!b.is_due(t0, "a"));
        assert!(b.is_due(t0 + Duration::from_millis(1300), "a"));
        for _ in 0..20 {
            b.failed(t0);
        }
        assert!(!b.is_due(t0 + Duration::from_secs(59), "a"));
        assert!(b.is_due(t0 + Duration::from_secs(73), "a"));
        b.failed(t0);
        assert!(b.is_due(t0, "b"), "a changed assignment is tried at once");
    }
}
