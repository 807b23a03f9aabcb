//! Sliding-window rate limits for the console's login: at most `limit` events per key within
//! `window` (failed logins per client address, successful logins per token). Memory is bounded:
//! each key keeps at most `limit` instants, and beyond `max_keys` keys the stale ones are pruned
//! and then the least recently active evicted.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct RateLimiter<K> {
    limit: usize,
    window: Duration,
    max_keys: usize,
    events: HashMap<K, VecDeque<Instant>>,
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    pub fn new(limit: usize, window: Duration, max_keys: usize) -> Self {
        Self {
            limit: limit.max(1),
            window,
            max_keys: max_keys.max(1),
            events: HashMap::new(),
        }
    }

    fn recent(&self, key: &K, now: Instant) -> impl Iterator<Item = &Instant> {
        self.events
            .get(key)
            .into_iter()
            .flatten()
            .filter(move |t| now.saturating_duration_since(**t) < self.window)
    }

    /// `Some(wait)` when `key` has used up its events: how long until one more is allowed.
    pub fn blocked(&self, key: &K, now: Instant) -> Option<Duration> {
        let recent: Vec<&Instant> = self.recent(key, now).collect();
        if recent.len() < self.limit {
            return None;
        }
        // The oldest of the last `limit` events leaves the window first.
        let oldest = recent[recent.len() - self.limit];
        Some(
            self.window
                .saturating_sub(now.saturating_duration_since(*oldest)),
        )
    }

    /// Takes back the latest event of `key` (an attempt counted before it was known to be
    /// one that does not count).
    pub fn undo(&mut self, key: &K) {
        if let Some(events) = self.events.get_mut(key) {
            events.pop_back();
            if events.is_empty() {
                self.events.remove(key);
            }
        }
    }

    /// Records one event of `key`.
    pub fn record(&mut self, key: K, now: Instant) {
        if !self.events.contains_key(&key) && self.events.len() >= self.max_keys {
            self.prune(now);
            while self.events.len() >= self.max_keys {
                let quietest = self
                    .events
                    .iter()
                    .min_by_key(|(_, q)| q.back().copied())
                    .map(|(k, _)| k.clone());
                match quietest {
                    Some(k) => {
                        self.events.remove(&k);
                    }
                    None => break,
                }
            }
        }
        let window = self.window;
        let limit = self.limit;
        let queue = self.events.entry(key).or_default();
        while queue
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            queue.pop_front();
        }
        queue.push_back(now);
        while queue.len() > limit {
            queue.pop_front();
        }
    }

    /// Drops every key with no event in the window.
    pub fn prune(&mut self, now: Instant) {
        let window = self.window;
        self.events.retain(|_, q| {
            q.back()
                .is_some_and(|t| now.saturating_duration_since(*t) < window)
        });
    }

    #[cfg(test)]
    fn keys(&self) -> usize {
        self.events.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_per_minute_then_blocked_until_the_oldest_leaves_the_window() {
        let mut r = RateLimiter::new(5, Duration::from_secs(60), 100);
        let t0 = Instant::now();
        for i in 0..5u64 {
            assert_eq!(r.blocked(&"a", t0 + Duration::from_secs(i)), None);
            r.record("a", t0 + Duration::from_secs(i));
        }
        let wait = r
            .blocked(&"a", t0 + Duration::from_secs(10))
            .expect("blocked");
        assert_eq!(wait, Duration::from_secs(50));
        assert_eq!(
            r.blocked(&"b", t0 + Duration::from_secs(10)),
            None,
            "per key"
        );
        assert_eq!(r.blocked(&"a", t0 + Duration::from_secs(60)), None);
        // A steady stream stays limited: never more than 5 in any minute.
        r.record("a", t0 + Duration::from_secs(60));
        assert_eq!(
            r.blocked(&"a", t0 + Duration::from_secs(60)),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut r = RateLimiter::new(3, Duration::from_secs(60), 50);
        let t0 = Instant::now();
        for i in 0..10_000u64 {
            let now = t0 + Duration::from_millis(i);
            r.record(i, now);
            r.record(7, now);
        }
        assert!(r.keys() <= 50, "{} keys", r.keys());
        assert!(r.events.values().all(|q| q.len() <= 3));
        // The active key was kept; old keys go when the window passes.
        assert!(r.blocked(&7, t0 + Duration::from_secs(10)).is_some());
        r.prune(t0 + Duration::from_secs(200));
        assert_eq!(r.keys(), 0);
    }
}
