//! A bounded set of recently seen keys with a time-to-live: inbound message dedupe (20 min,
//! 5,000 entries) and outbound idempotency keys use it. Insertion-ordered, so expiry and
//! eviction are amortised O(1).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// Inbound dedupe window (runtime spec: 20 minutes).
pub const INBOUND_DEDUPE_TTL: Duration = Duration::from_secs(20 * 60);
/// Inbound dedupe capacity (runtime spec: 5,000 entries).
pub const INBOUND_DEDUPE_CAPACITY: usize = 5_000;

/// Keys seen within `ttl`, at most `capacity` of them (oldest evicted first).
#[derive(Debug)]
pub struct RecentSet<K> {
    ttl: Duration,
    capacity: usize,
    seen: HashMap<K, Instant>,
    order: VecDeque<(K, Instant)>,
}

impl<K: Hash + Eq + Clone> RecentSet<K> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        RecentSet {
            ttl,
            capacity: capacity.max(1),
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// The inbound-message window of the spec.
    pub fn inbound() -> Self {
        Self::new(INBOUND_DEDUPE_TTL, INBOUND_DEDUPE_CAPACITY)
    }

    /// Records `key` at `now`. Returns `true` if it is new (not seen within the window).
    pub fn insert_at(&mut self, key: K, now: Instant) -> bool {
        self.expire(now);
        if let Some(at) = self.seen.get(&key) {
            if now.saturating_duration_since(*at) < self.ttl {
                return false;
            }
        }
        while self.seen.len() >= self.capacity {
            match self.order.pop_front() {
                Some((old, at)) => {
                    if self.seen.get(&old) == Some(&at) {
                        self.seen.remove(&old);
                    }
                }
                None => break,
            }
        }
        self.seen.insert(key.clone(), now);
        self.order.push_back((key, now));
        true
    }

    /// [`Self::insert_at`] with the current time.
    pub fn insert(&mut self, key: K) -> bool {
        self.insert_at(key, Instant::now())
    }

    /// Whether `key` was seen within the window (does not record it).
    pub fn contains_at(&self, key: &K, now: Instant) -> bool {
        self.seen
            .get(key)
            .is_some_and(|at| now.saturating_duration_since(*at) < self.ttl)
    }

    /// Forgets `key` (a dispatch that failed may be retried).
    pub fn remove(&mut self, key: &K) {
        self.seen.remove(key);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn expire(&mut self, now: Instant) {
        while let Some((_, at)) = self.order.front() {
            if now.saturating_duration_since(*at) < self.ttl {
                break;
            }
            if let Some((key, at)) = self.order.pop_front() {
                if self.seen.get(&key) == Some(&at) {
                    self.seen.remove(&key);
                }
            }
        }
        // Entries re-inserted after a removal leave stale order records; keep the queue
        // from growing without bound.
        if self.order.len() > self.capacity.saturating_mul(2) {
            let seen = &self.seen;
            self.order.retain(|(k, at)| seen.get(k) == Some(at));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_within_the_window_are_refused_and_expire_after_it() {
        let t0 = Instant::now();
        let mut set = RecentSet::new(Duration::from_secs(60), 100);
        assert!(set.insert_at("a", t0));
        assert!(!set.insert_at("a", t0 + Duration::from_secs(59)));
        assert!(set.contains_at(&"a", t0 + Duration::from_secs(30)));
        assert!(!set.contains_at(&"a", t0 + Duration::from_secs(60)));
        assert!(set.insert_at("a", t0 + Duration::from_secs(60)), "expired");
        assert_eq!(set.len(), 1);
    }

    #[test]
    fn capacity_evicts_the_oldest_entries() {
        let t0 = Instant::now();
        let mut set = RecentSet::new(INBOUND_DEDUPE_TTL, 3);
        for (i, k) in ["a", "b", "c", "d"].into_iter().enumerate() {
            assert!(set.insert_at(k, t0 + Duration::from_millis(i as u64)));
        }
        assert_eq!(set.len(), 3);
        let later = t0 + Duration::from_millis(10);
        assert!(!set.contains_at(&"a", later), "oldest evicted");
        assert!(set.contains_at(&"d", later) && set.contains_at(&"b", later));
        assert!(set.insert_at("a", later), "evicted keys are new again");
    }

    #[test]
    fn spec_window_holds_five_thousand_for_twenty_minutes() {
        let t0 = Instant::now();
        let mut set = RecentSet::inbound();
        for i in 0..5_000 {
            assert!(set.insert_at(i, t0));
        }
        let almost = t0 + Duration::from_secs(20 * 60 - 1);
        assert!((0..5_000).all(|i| set.contains_at(&i, almost)));
        assert!(!set.insert_at(0, almost));
        assert!(set.insert_at(5_000, almost));
        assert!(!set.contains_at(&0, almost) || !set.contains_at(&1, almost));
        assert!(set.len() <= 5_000);
        let expired = t0 + INBOUND_DEDUPE_TTL;
        assert!(set.insert_at(1, expired));
    }

    #[test]
    fn removal_allows_a_retry() {
        let mut set = RecentSet::new(Duration::from_secs(60), 10);
        assert!(set.insert("x"));
        set.remove(&"x");
        assert!(set.insert("x"));
        for _ in 0..100 {
            set.remove(&"x");
            set.insert("x");
        }
        assert!(set.order.len() <= 20, "stale order records are compacted");
    }
}
