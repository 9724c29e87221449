//! Presence: the gateway's own entry plus every tracked client (not `cli`/`backend`/`probe`),
//! kept pre-serialised; changes bump `stateVersion.presence` and broadcast `presence`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use pincer_protocol::hello::PresenceEntry;
use serde_json::value::RawValue;

use crate::util;

/// Monotonic state versions shared by presence and health.
#[derive(Debug, Default)]
pub struct StateVersions {
    pub presence: AtomicU64,
    pub health: AtomicU64,
}

impl StateVersions {
    pub fn current(&self) -> pincer_protocol::frames::StateVersion {
        pincer_protocol::frames::StateVersion {
            presence: self.presence.load(Ordering::Acquire),
            health: self.health.load(Ordering::Acquire),
        }
    }
}

/// Tracked presence entries, keyed (device id, instance id, or connection).
pub struct PresenceTracker {
    entries: Mutex<Vec<(String, PresenceEntry)>>,
    /// `PresenceEntry[]` as JSON, rebuilt on change.
    json: RwLock<Arc<RawValue>>,
}

fn empty_list() -> Arc<RawValue> {
    Arc::from(serde_json::value::to_raw_value(&Vec::<u8>::new()).unwrap_or_default())
}

impl PresenceTracker {
    /// Start with the gateway's own entry.
    pub fn new(self_entry: PresenceEntry) -> Self {
        let tracker = PresenceTracker {
            entries: Mutex::new(Vec::new()),
            json: RwLock::new(empty_list()),
        };
        tracker.upsert("gateway:self".to_string(), self_entry);
        tracker
    }

    /// The gateway's own entry.
    pub fn self_entry(version: &str, instance_id: &str) -> PresenceEntry {
        let host = util::hostname();
        let platform = util::platform_string();
        PresenceEntry {
            text: Some(format!(
                "Gateway: {host} · app {version} · mode gateway · reason self"
            )),
            host: Some(host),
            version: Some(version.to_string()),
            platform: Some(platform),
            device_family: Some(util::device_family().to_string()),
            mode: Some("gateway".to_string()),
            reason: Some("self".to_string()),
            instance_id: Some(instance_id.to_string()),
            ts: util::now_ms(),
            ..Default::default()
        }
    }

    fn rebuild(&self, entries: &[(String, PresenceEntry)]) {
        let list: Vec<&PresenceEntry> = entries.iter().map(|(_, e)| e).collect();
        if let Ok(raw) = serde_json::value::to_raw_value(&list) {
            *self.json.write() = Arc::from(raw);
        }
    }

    /// Insert or replace the entry under `key`.
    pub fn upsert(&self, key: String, entry: PresenceEntry) {
        let mut entries = self.entries.lock();
        match entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = entry,
            None => entries.push((key, entry)),
        }
        self.rebuild(&entries);
    }

    /// Remove the entry under `key`; returns whether it existed.
    pub fn remove(&self, key: &str) -> bool {
        let mut entries = self.entries.lock();
        let before = entries.len();
        entries.retain(|(k, _)| k != key);
        let removed = entries.len() != before;
        if removed {
            self.rebuild(&entries);
        }
        removed
    }

    /// The current list as JSON (`system-presence`, `snapshot.presence`).
    pub fn json(&self) -> Arc<RawValue> {
        Arc::clone(&self.json.read())
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upsert_and_remove_keep_json_current() {
        let t = PresenceTracker::new(PresenceTracker::self_entry("0.1.0", "boot"));
        assert_eq!(t.len(), 1);
        let j: serde_json::Value = serde_json::from_str(t.json().get()).unwrap_or_default();
        assert_eq!(j[0]["mode"], "gateway");
        assert_eq!(j[0]["reason"], "self");
        t.upsert(
            "c1".into(),
            PresenceEntry {
                mode: Some("ui".into()),
                ts: 1,
                ..Default::default()
            },
        );
        t.upsert(
            "c1".into(),
            PresenceEntry {
                mode: Some("webchat".into()),
                ts: 2,
                ..Default::default()
            },
        );
        assert_eq!(t.len(), 2);
        let j: serde_json::Value = serde_json::from_str(t.json().get()).unwrap_or_default();
        assert_eq!(j[1]["mode"], "webchat");
        assert!(t.remove("c1"));
        assert!(!t.remove("c1"));
        assert_eq!(t.len(), 1);
    }
}
