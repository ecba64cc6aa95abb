//! The v3 replay guard: the nonces of accepted requests, each kept until its request's
//! timestamp leaves the accepted window (after that the timestamp check refuses a replay
//! anyway). Bounded: at most [`CAPACITY`] nonces per instance (about 40 MB); when full after
//! dropping the expired ones, a new request is refused rather than a nonce forgotten early.
//! Per instance: behind a load balancer, replays across instances are bounded only by the
//! timestamp window (PROTOCOL.md).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

/// Nonces remembered at most.
pub const CAPACITY: usize = 2_000_000;

/// The cache: a keyed 64-bit hash of (app id, nonce) → until when (epoch milliseconds).
#[derive(Debug)]
pub struct Nonces {
    hasher: RandomState,
    seen: Mutex<HashMap<u64, i64>>,
    capacity: usize,
}

impl Default for Nonces {
    fn default() -> Self {
        Self::with_capacity(CAPACITY)
    }
}

impl Nonces {
    /// A cache remembering at most `capacity` nonces.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            hasher: RandomState::new(),
            seen: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// Records `nonce` of `app_id` until `until_ms`; whether it was new.
    pub fn first_use(&self, app_id: &str, nonce: &str, until_ms: i64, now_ms: i64) -> bool {
        let key = self.hasher.hash_one((app_id, nonce));
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get(&key).is_some_and(|&until| until >= now_ms) {
            return false;
        }
        if seen.len() >= self.capacity {
            seen.retain(|_, until| *until >= now_ms);
            if seen.len() >= self.capacity {
                tracing::warn!(
                    capacity = self.capacity,
                    "the v3 nonce cache is full; refusing"
                );
                return false;
            }
        }
        seen.insert(key, until_ms);
        true
    }

    /// Nonces remembered now.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_refused_again_until_it_expires_and_the_cache_stays_bounded() {
        let nonces = Nonces::with_capacity(2);
        assert!(nonces.first_use("1", "a", 100, 0));
        assert!(!nonces.first_use("1", "a", 100, 50), "a replay");
        assert!(
            nonces.first_use("2", "a", 100, 50),
            "another app's nonce is its own"
        );
        // Full of live nonces: refused, nothing forgotten early.
        assert!(!nonces.first_use("1", "c", 100, 50));
        assert_eq!(nonces.len(), 2);
        // Once they expire, room again, and an expired nonce may come back.
        assert!(nonces.first_use("1", "a", 300, 101));
        assert_eq!(nonces.len(), 1);
        assert!(nonces.first_use("1", "c", 300, 101));
        assert!(!nonces.first_use("1", "c", 300, 200));
    }
}
