//! Per-workload retry backoff: exponential from 1s to 60s with jitter, reset when the workload
//! converges or when its assignment changes (a new spec deserves an immediate attempt).

use std::time::{Duration, Instant};

const FIRST: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(60);
/// How long a parked workload waits when its assignment does not change: long enough that a
/// spec the engine refuses costs nothing, short enough that a refusal that was not about the
/// spec after all (the engine's 400 is not always the spec's fault) heals by itself.
const PARKED: Duration = Duration::from_secs(600);

#[derive(Debug, Default, Clone)]
pub struct Backoff {
    failures: u32,
    /// Waiting for a new assignment (see `park`).
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
        self.next_attempt.is_none_or(|at| now >= at)
    }

    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.next_attempt = None;
        self.parked = false;
    }

    /// The attempt failed in a way only a new assignment should change: wait for one (or, at
    /// most, [`PARKED`]).
    pub fn park(&mut self, now: Instant) {
        self.failures = self.failures.saturating_add(1);
        self.parked = true;
        self.next_attempt = Some(now + PARKED);
    }

    pub fn failed(&mut self, now: Instant) {
        self.parked = false;
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
        b.park(t0);
        assert!(b.parked());
        assert!(!b.is_due(t0 + Duration::from_secs(599), "a"));
        assert!(b.is_due(t0 + PARKED, "a"), "a mistaken refusal heals");
        b.park(t0);
        assert!(b.is_due(t0, "b"), "a new assignment is tried at once");
        assert!(!b.parked());
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
