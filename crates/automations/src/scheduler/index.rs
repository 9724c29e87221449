//! The scheduler's in-memory index: for every job only what deciding "what is due next"
//! needs (about 100 bytes per job), ordered by due time. Definitions stay in SQLite and are
//! read when a job actually runs.

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;

/// "No time" sentinel (sorts after everything).
pub(crate) const NEVER: i64 = i64::MAX;

const RUNNING: u8 = 1;
const ENABLED: u8 = 4;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Slot {
    /// The job's natural next occurrence (persisted as `state.nextRunAtMs`).
    pub natural: i64,
    /// An out-of-band wake request (not persisted).
    pub wake: i64,
    flags: u8,
}

impl Slot {
    pub fn running(&self) -> bool {
        self.flags & RUNNING != 0
    }
    pub fn enabled(&self) -> bool {
        self.flags & ENABLED != 0
    }
}

/// Due-time ordered index. With scheduling disabled (`cron.enabled: false`) only wake
/// requests become due.
pub(crate) struct Index {
    slots: HashMap<Uuid, Slot>,
    queue: BTreeSet<(i64, Uuid)>,
    scheduling: bool,
}

impl Index {
    pub fn new(scheduling: bool) -> Index {
        Index {
            slots: HashMap::new(),
            queue: BTreeSet::new(),
            scheduling,
        }
    }

    fn effective(&self, s: &Slot) -> i64 {
        if s.running() {
            NEVER
        } else if self.scheduling && s.enabled() {
            s.natural.min(s.wake)
        } else {
            s.wake
        }
    }

    fn with_slot(&mut self, id: Uuid, f: impl FnOnce(&mut Slot)) {
        let mut slot = self.slots.get(&id).copied().unwrap_or(Slot {
            natural: NEVER,
            wake: NEVER,
            flags: 0,
        });
        let before = self.effective(&slot);
        f(&mut slot);
        let after = self.effective(&slot);
        if before != after {
            if before != NEVER {
                self.queue.remove(&(before, id));
            }
            if after != NEVER {
                self.queue.insert((after, id));
            }
        }
        self.slots.insert(id, slot);
    }

    /// Sets (or creates) a job's natural next run and enablement.
    pub fn upsert(&mut self, id: Uuid, enabled: bool, natural: Option<i64>) {
        self.with_slot(id, |s| {
            s.natural = natural.unwrap_or(NEVER);
            s.flags &= RUNNING;
            if enabled {
                s.flags |= ENABLED;
            }
        });
    }

    pub fn remove(&mut self, id: Uuid) {
        if let Some(slot) = self.slots.remove(&id) {
            let eff = self.effective(&slot);
            if eff != NEVER {
                self.queue.remove(&(eff, id));
            }
        }
    }

    pub fn set_running(&mut self, id: Uuid, running: bool) {
        if !self.slots.contains_key(&id) {
            return;
        }
        self.with_slot(id, |s| {
            if running {
                s.flags |= RUNNING;
            } else {
                s.flags &= !RUNNING;
            }
        });
    }

    /// Requests an out-of-band run of `id` at `at_ms` (the earlier request wins).
    pub fn set_wake(&mut self, id: Uuid, at_ms: i64) -> bool {
        if !self.slots.contains_key(&id) {
            return false;
        }
        self.with_slot(id, |s| s.wake = s.wake.min(at_ms));
        true
    }

    pub fn clear_wake(&mut self, id: Uuid) {
        if self.slots.contains_key(&id) {
            self.with_slot(id, |s| s.wake = NEVER);
        }
    }

    /// Postpones a job whose claim failed (in memory only).
    pub fn retry_at(&mut self, id: Uuid, at_ms: i64) {
        if self.slots.contains_key(&id) {
            self.with_slot(id, |s| {
                if s.natural != NEVER {
                    s.natural = s.natural.max(at_ms);
                }
                if s.wake != NEVER {
                    s.wake = s.wake.max(at_ms);
                }
            });
        }
    }

    pub fn get(&self, id: Uuid) -> Option<Slot> {
        self.slots.get(&id).copied()
    }

    /// The earliest due time and its job.
    pub fn earliest(&self) -> Option<(i64, Uuid)> {
        self.queue.first().copied()
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn enabled_count(&self) -> usize {
        self.slots.values().filter(|s| s.enabled()).count()
    }

    pub fn running_count(&self) -> usize {
        self.slots.values().filter(|s| s.running()).count()
    }

    /// Bytes held by the index's tables (capacity-based estimate).
    pub fn heap_bytes(&self) -> usize {
        let slot = std::mem::size_of::<(Uuid, Slot)>() + 1;
        let entry = std::mem::size_of::<(i64, Uuid)>();
        // hashbrown: one control byte per bucket; B-tree nodes hold up to 11 entries, are
        // at least half full, and carry a small header.
        self.slots.capacity() * slot + self.queue.len() * (entry * 3 / 2 + 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_by_effective_time_and_hides_running_and_disabled_jobs() {
        let a = Uuid::from_u128(1);
        let b = Uuid::from_u128(2);
        let mut idx = Index::new(true);
        idx.upsert(a, true, Some(200));
        idx.upsert(b, true, Some(100));
        assert_eq!(idx.earliest(), Some((100, b)));
        idx.set_running(b, true);
        assert_eq!(idx.earliest(), Some((200, a)));
        idx.set_wake(a, 50);
        assert_eq!(idx.earliest(), Some((50, a)));
        idx.clear_wake(a);
        idx.upsert(a, false, Some(200));
        assert_eq!(idx.earliest(), None);
        idx.set_running(b, false);
        assert_eq!(idx.earliest(), Some((100, b)));
        idx.remove(b);
        assert_eq!(idx.earliest(), None);
        assert_eq!(idx.len(), 1);
    }

    #[test]
    fn with_scheduling_off_only_wakes_are_due() {
        let a = Uuid::from_u128(1);
        let mut idx = Index::new(false);
        idx.upsert(a, true, Some(100));
        assert_eq!(idx.earliest(), None);
        idx.set_wake(a, 500);
        assert_eq!(idx.earliest(), Some((500, a)));
    }
}
