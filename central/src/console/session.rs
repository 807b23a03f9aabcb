//! The console's server-side sessions: a random 256-bit id (the `caas_session` cookie) maps to
//! the token the user logged in with and the session's CSRF token. The token stays here (it is
//! authenticated again on every request, so revoking it ends its sessions at once); sessions
//! expire when idle and after an absolute lifetime, and the number kept is capped (the least
//! recently used is evicted). Ids are kept only as SHA-256 hashes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};

/// A fresh random 256-bit value as 64 hex digits (session ids, CSRF tokens).
pub fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether `text` looks like an id this module issues (64 lowercase hex digits).
pub fn well_formed(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn key(id: &str) -> String {
    hex::encode(Sha256::digest(id.as_bytes()))
}

/// What a live session holds.
#[derive(Clone)]
pub struct Session {
    /// The token the user logged in with (never shown, never logged).
    pub token: String,
    /// The session's CSRF token (forms and `X-CSRF-Token`).
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("created", &self.created)
            .field("last_seen", &self.last_seen)
            .finish_non_exhaustive()
    }
}

/// Limits of the session store.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// A session unused this long is gone.
    pub idle: Duration,
    /// A session is gone this long after the login, used or not.
    pub lifetime: Duration,
    /// Most sessions kept; a new one beyond evicts the least recently used.
    pub max: usize,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(12 * 3600),
            max: 10_000,
        }
    }
}

/// The sessions of one central instance (a login is valid on the instance that made it).
#[derive(Debug)]
pub struct Sessions {
    limits: SessionLimits,
    by_key: HashMap<String, Session>,
}

impl Sessions {
    pub fn new(limits: SessionLimits) -> Self {
        Self {
            limits,
            by_key: HashMap::new(),
        }
    }

    pub fn count(&self) -> usize {
        self.by_key.len()
    }

    fn expired(&self, s: &Session, now: Instant) -> bool {
        now.saturating_duration_since(s.last_seen) >= self.limits.idle
            || now.saturating_duration_since(s.created) >= self.limits.lifetime
    }

    /// Starts a session for `token`; returns its id (for the cookie) and CSRF token.
    pub fn create(&mut self, token: String, now: Instant) -> (String, String) {
        // Expired sessions go first (their tokens should not stay in memory), then the least
        // recently used while at the cap (a scan of at most `max` entries per login).
        let limits = self.limits;
        self.by_key.retain(|_, s| {
            now.saturating_duration_since(s.last_seen) < limits.idle
                && now.saturating_duration_since(s.created) < limits.lifetime
        });
        while self.by_key.len() >= self.limits.max.max(1) {
            let oldest = self
                .by_key
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.by_key.remove(&k);
                }
                None => break,
            }
        }
        let id = random_hex();
        let csrf = random_hex();
        self.by_key.insert(
            key(&id),
            Session {
                token,
                csrf: csrf.clone(),
                created: now,
                last_seen: now,
            },
        );
        (id, csrf)
    }

    /// The live session with this id, marked as used now; an expired one is removed.
    pub fn get(&mut self, id: &str, now: Instant) -> Option<Session> {
        if !well_formed(id) {
            return None;
        }
        let k = key(id);
        let session = self.by_key.get(&k)?;
        if self.expired(session, now) {
            self.by_key.remove(&k);
            return None;
        }
        let session = self.by_key.get_mut(&k)?;
        session.last_seen = now;
        Some(session.clone())
    }

    /// Ends a session (logout, or its token no longer authenticates).
    pub fn remove(&mut self, id: &str) {
        self.by_key.remove(&key(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max: usize) -> SessionLimits {
        SessionLimits {
            idle: Duration::from_secs(30 * 60),
            lifetime: Duration::from_secs(12 * 3600),
            max,
        }
    }

    #[test]
    fn ids_are_random_256_bit_hex_and_kept_hashed() {
        let mut s = Sessions::new(limits(10));
        let t0 = Instant::now();
        let (id, csrf) = s.create("tok".into(), t0);
        assert!(well_formed(&id) && well_formed(&csrf) && id != csrf);
        assert!(!s.by_key.contains_key(&id), "the id itself is not a key");
        assert_eq!(s.get(&id, t0).map(|x| x.token), Some("tok".into()));
        assert!(s.get("not-an-id", t0).is_none());
        assert!(s.get(&random_hex(), t0).is_none());
        s.remove(&id);
        assert!(s.get(&id, t0).is_none());
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let mut s = Sessions::new(limits(10));
        let t0 = Instant::now();
        let (id, _) = s.create("tok".into(), t0);
        // Used every 20 minutes: stays until the absolute lifetime.
        let mut t = t0;
        for _ in 0..35 {
            t += Duration::from_secs(20 * 60);
            assert!(s.get(&id, t).is_some(), "alive at {:?}", t - t0);
        }
        t += Duration::from_secs(20 * 60); // 12 h
        assert!(s.get(&id, t).is_none(), "gone after 12 h");
        assert_eq!(s.count(), 0, "an expired session is removed");
        // Idle 30 minutes: gone.
        let (id, _) = s.create("tok".into(), t0);
        assert!(s.get(&id, t0 + Duration::from_secs(29 * 60)).is_some());
        assert!(s
            .get(&id, t0 + Duration::from_secs(29 * 60 + 30 * 60))
            .is_none());
    }

    #[test]
    fn the_least_recently_used_is_evicted_beyond_the_cap() {
        let mut s = Sessions::new(limits(3));
        let t0 = Instant::now();
        let ids: Vec<String> = (0..3u64)
            .map(|i| s.create(format!("t{i}"), t0 + Duration::from_secs(i)).0)
            .collect();
        // The first is used again, so the second is now the least recently used.
        assert!(s.get(&ids[0], t0 + Duration::from_secs(10)).is_some());
        let (fourth, _) = s.create("t3".into(), t0 + Duration::from_secs(11));
        assert_eq!(s.count(), 3);
        assert!(s.get(&ids[1], t0 + Duration::from_secs(12)).is_none());
        for id in [&ids[0], &ids[2], &fourth] {
            assert!(s.get(id, t0 + Duration::from_secs(12)).is_some());
        }
        // Expired ones go first, before anything live is evicted.
        let mut s = Sessions::new(limits(2));
        let (old, _) = s.create("old".into(), t0);
        let (live, _) = s.create("live".into(), t0 + Duration::from_secs(3000));
        let later = t0 + Duration::from_secs(3000 + 60);
        s.create("new".into(), later);
        assert!(s.get(&live, later).is_some());
        assert!(s.get(&old, later).is_none());
    }
}
