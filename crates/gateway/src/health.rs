//! The health snapshot: computed on refresh (timer, `probe:true`), served pre-serialised.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use pincer_protocol::hello::{
    AgentHealth, ConfigReloadHealth, EventLoopHealth, HealthSnapshot, HeartbeatHealth,
    PluginsHealth, SessionsHealth,
};
use serde_json::value::RawValue;
use serde_json::Map;

use crate::util;

/// Scheduling lag above which the event loop counts as degraded.
const DEGRADED_LAG: Duration = Duration::from_millis(500);

/// Runtime measurements fed into the snapshot by the refresh timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct LoopSample {
    /// Interval the sample covers.
    pub interval: Duration,
    /// How late the refresh timer fired.
    pub lag: Duration,
    /// CPU seconds used per wall second over the interval.
    pub cpu_core_ratio: f64,
}

pub struct HealthCache {
    json: RwLock<Arc<RawValue>>,
    /// The snapshot minus volatile fields, to detect changes.
    stable: Mutex<String>,
    sessions_path: String,
    sample: Mutex<LoopSample>,
    degraded_since: Mutex<Option<u64>>,
}

impl HealthCache {
    pub fn new(state_dir: &Path) -> Self {
        let sessions_path = state_dir
            .join("state")
            .join("pincer.sqlite")
            .display()
            .to_string();
        let cache = HealthCache {
            json: RwLock::new(Arc::from(Box::<RawValue>::default())),
            stable: Mutex::new(String::new()),
            sessions_path,
            sample: Mutex::new(LoopSample::default()),
            degraded_since: Mutex::new(None),
        };
        cache.refresh(None);
        cache
    }

    /// The cached snapshot JSON.
    pub fn json(&self) -> Arc<RawValue> {
        Arc::clone(&self.json.read())
    }

    fn build(&self, started: Instant) -> HealthSnapshot {
        let sample = *self.sample.lock();
        let lag_ms = sample.lag.as_secs_f64() * 1000.0;
        let degraded = sample.lag >= DEGRADED_LAG;
        let now = util::now_ms();
        let degraded_since = {
            let mut since = self.degraded_since.lock();
            match (degraded, *since) {
                (true, None) => *since = Some(now),
                (false, Some(_)) => *since = None,
                _ => {}
            }
            *since
        };
        let sessions = SessionsHealth {
            path: self.sessions_path.clone(),
            count: 0,
            recent: vec![],
        };
        HealthSnapshot {
            ok: Some(true),
            ts: Some(now),
            duration_ms: Some(started.elapsed().as_millis() as u64),
            plugins: Some(PluginsHealth::default()),
            config_reload: Some(ConfigReloadHealth {
                hot_reload_status: "disabled".into(),
            }),
            channels: Some(Map::new()),
            channel_order: Some(vec![]),
            channel_labels: Some(Map::new()),
            heartbeat_seconds: Some(0),
            default_agent_id: Some("main".into()),
            agents: Some(vec![AgentHealth {
                agent_id: "main".into(),
                name: None,
                is_default: true,
                heartbeat: HeartbeatHealth {
                    enabled: false,
                    every: "30m".into(),
                    every_ms: 1_800_000,
                    prompt: None,
                    target: None,
                    model: None,
                    session: None,
                    ack_max_chars: None,
                },
                sessions: sessions.clone(),
            }]),
            sessions: Some(sessions),
            event_loop: Some(EventLoopHealth {
                degraded,
                degraded_since_ms: degraded_since,
                reasons: if degraded {
                    vec!["scheduling-lag".into()]
                } else {
                    vec![]
                },
                interval_ms: sample.interval.as_secs_f64() * 1000.0,
                delay_p99_ms: (lag_ms * 10.0).round() / 10.0,
                delay_max_ms: (lag_ms * 10.0).round() / 10.0,
                utilization: (sample.cpu_core_ratio * 1000.0).round() / 1000.0,
                cpu_core_ratio: (sample.cpu_core_ratio * 1000.0).round() / 1000.0,
            }),
        }
    }

    /// Recompute (with a new runtime sample if given). Returns true when the snapshot changed
    /// in something other than its timestamps and load figures.
    pub fn refresh(&self, sample: Option<LoopSample>) -> bool {
        let started = Instant::now();
        if let Some(s) = sample {
            *self.sample.lock() = s;
        }
        let snapshot = self.build(started);
        let Ok(raw) = serde_json::value::to_raw_value(&snapshot) else {
            return false;
        };
        let stable = {
            let mut s = snapshot.clone();
            s.ts = None;
            s.duration_ms = None;
            if let Some(el) = s.event_loop.as_mut() {
                el.interval_ms = 0.0;
                el.delay_p99_ms = 0.0;
                el.delay_max_ms = 0.0;
                el.utilization = 0.0;
                el.cpu_core_ratio = 0.0;
            }
            serde_json::to_string(&s).unwrap_or_default()
        };
        *self.json.write() = Arc::from(raw);
        let mut prev = self.stable.lock();
        let changed = *prev != stable;
        *prev = stable;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_has_reference_keys_and_detects_changes() {
        let dir = std::env::temp_dir();
        let h = HealthCache::new(&dir);
        let v: serde_json::Value = serde_json::from_str(h.json().get()).unwrap_or_default();
        for key in [
            "ok",
            "ts",
            "durationMs",
            "plugins",
            "configReload",
            "channels",
            "channelOrder",
            "channelLabels",
            "heartbeatSeconds",
            "defaultAgentId",
            "agents",
            "sessions",
            "eventLoop",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        // Load figures alone are not a change…
        let calm = LoopSample {
            interval: Duration::from_secs(60),
            lag: Duration::from_millis(2),
            cpu_core_ratio: 0.01,
        };
        assert!(!h.refresh(Some(calm)));
        // …but a degraded event loop is.
        let busy = LoopSample {
            lag: Duration::from_secs(2),
            ..calm
        };
        assert!(h.refresh(Some(busy)));
        let v: serde_json::Value = serde_json::from_str(h.json().get()).unwrap_or_default();
        assert_eq!(v["eventLoop"]["degraded"], true);
        assert!(h.refresh(Some(calm)));
    }
}
