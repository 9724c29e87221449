//! Idempotency dedupe cache (spec §7): keyed outcomes kept 5 minutes, at most 1,000 entries,
//! oldest completed entries evicted first, in-flight entries never evicted.
//!
//! Side-effecting methods (`chat.send`, `agent`, `node.invoke`, `send`, `system-event`, …) call
//! [`DedupeCache::begin`] with their key: `Fresh` means run it and later `complete` (or `abandon`
//! on failure to start); `InFlight` and `Replay` are answered from the cache.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

enum Slot<V> {
    InFlight,
    Done(V),
}

struct Entry<V> {
    at: Instant,
    generation: u64,
    slot: Slot<V>,
}

struct Inner<V> {
    entries: HashMap<String, Entry<V>>,
    /// Completion order of `Done` entries: (generation, key); stale pairs are skipped.
    order: VecDeque<(u64, String)>,
    next_generation: u64,
}

/// What `begin` found for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin<V> {
    /// Not seen (or expired): the caller owns the run now.
    Fresh,
    /// Same key is still running.
    InFlight,
    /// Same key finished: replay this outcome.
    Replay(V),
}

/// The dedupe cache. One mutex; only side-effecting methods touch it, never the hot path.
pub struct DedupeCache<V> {
    inner: Mutex<Inner<V>>,
    ttl: Duration,
    max: usize,
}

impl<V: Clone> DedupeCache<V> {
    pub fn new(ttl: Duration, max: usize) -> Self {
        DedupeCache {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
                next_generation: 0,
            }),
            ttl,
            max,
        }
    }

    /// The protocol defaults: 5 minutes, 1,000 entries.
    pub fn with_defaults() -> Self {
        Self::new(
            Duration::from_millis(pincer_protocol::limits::DEDUPE_TTL_MS),
            pincer_protocol::limits::DEDUPE_MAX_ENTRIES,
        )
    }

    pub fn begin(&self, key: &str, now: Instant) -> Begin<V> {
        let mut inner = self.inner.lock();
        if let Some(entry) = inner.entries.get(key) {
            match &entry.slot {
                Slot::InFlight => return Begin::InFlight,
                Slot::Done(v) if now.duration_since(entry.at) < self.ttl => {
                    return Begin::Replay(v.clone())
                }
                Slot::Done(_) => {
                    inner.entries.remove(key);
                }
            }
        }
        let generation = inner.next_generation;
        inner.next_generation += 1;
        inner.entries.insert(
            key.to_string(),
            Entry {
                at: now,
                generation,
                slot: Slot::InFlight,
            },
        );
        Begin::Fresh
    }

    /// Store the outcome of a run started with `begin`.
    pub fn complete(&self, key: &str, value: V, now: Instant) {
        let mut inner = self.inner.lock();
        let generation = inner.next_generation;
        inner.next_generation += 1;
        inner.entries.insert(
            key.to_string(),
            Entry {
                at: now,
                generation,
                slot: Slot::Done(value),
            },
        );
        inner.order.push_back((generation, key.to_string()));
        self.evict(&mut inner, now);
    }

    /// Forget an in-flight key (the run never started).
    pub fn abandon(&self, key: &str) {
        let mut inner = self.inner.lock();
        if matches!(
            inner.entries.get(key).map(|e| &e.slot),
            Some(Slot::InFlight)
        ) {
            inner.entries.remove(key);
        }
    }

    /// Drop expired completed entries (the gateway calls this every 60 s).
    pub fn sweep(&self, now: Instant) {
        let mut inner = self.inner.lock();
        self.evict(&mut inner, now);
    }

    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn evict(&self, inner: &mut Inner<V>, now: Instant) {
        // Expired first (completion order is time order), then oldest until under capacity.
        while let Some((generation, key)) = inner.order.front().cloned() {
            let current = inner
                .entries
                .get(&key)
                .filter(|e| e.generation == generation && matches!(e.slot, Slot::Done(_)));
            let Some(entry) = current else {
                inner.order.pop_front();
                continue;
            };
            let expired = now.duration_since(entry.at) >= self.ttl;
            if expired || inner.entries.len() > self.max {
                inner.entries.remove(&key);
                inner.order.pop_front();
            } else {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_completed_outcomes() {
        let c: DedupeCache<String> = DedupeCache::with_defaults();
        let t = Instant::now();
        assert_eq!(c.begin("chat:k1", t), Begin::Fresh);
        assert_eq!(c.begin("chat:k1", t), Begin::InFlight);
        c.complete("chat:k1", "outcome".into(), t);
        assert_eq!(
            c.begin("chat:k1", t + Duration::from_secs(10)),
            Begin::Replay("outcome".into())
        );
    }

    #[test]
    fn entries_expire_after_ttl() {
        let c: DedupeCache<u32> = DedupeCache::new(Duration::from_secs(300), 1000);
        let t = Instant::now();
        assert_eq!(c.begin("a", t), Begin::Fresh);
        c.complete("a", 1, t);
        assert_eq!(c.begin("a", t + Duration::from_secs(299)), Begin::Replay(1));
        assert_eq!(c.begin("a", t + Duration::from_secs(300)), Begin::Fresh);
        c.complete("b", 2, t);
        c.sweep(t + Duration::from_secs(301));
        assert_eq!(c.begin("b", t + Duration::from_secs(301)), Begin::Fresh);
    }

    #[test]
    fn capacity_evicts_oldest_completed_first() {
        let c: DedupeCache<u32> = DedupeCache::new(Duration::from_secs(300), 3);
        let t = Instant::now();
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            assert_eq!(c.begin(k, t), Begin::Fresh);
            c.complete(k, i as u32, t + Duration::from_millis(i as u64));
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.begin("a", t), Begin::Fresh, "oldest evicted");
        assert_eq!(c.begin("d", t), Begin::Replay(3));
    }

    #[test]
    fn in_flight_entries_are_never_evicted() {
        let c: DedupeCache<u32> = DedupeCache::new(Duration::from_secs(1), 2);
        let t = Instant::now();
        assert_eq!(c.begin("running", t), Begin::Fresh);
        for i in 0..10u32 {
            let k = format!("k{i}");
            assert_eq!(c.begin(&k, t), Begin::Fresh);
            c.complete(&k, i, t);
        }
        c.sweep(t + Duration::from_secs(3600));
        assert_eq!(
            c.begin("running", t + Duration::from_secs(3600)),
            Begin::InFlight
        );
        c.abandon("running");
        assert_eq!(c.begin("running", t), Begin::Fresh);
    }

    #[test]
    fn recompleting_a_key_refreshes_its_age() {
        let c: DedupeCache<u32> = DedupeCache::new(Duration::from_secs(10), 10);
        let t = Instant::now();
        c.complete("a", 1, t);
        c.complete("a", 2, t + Duration::from_secs(8));
        c.sweep(t + Duration::from_secs(12));
        assert_eq!(c.begin("a", t + Duration::from_secs(12)), Begin::Replay(2));
    }
}
