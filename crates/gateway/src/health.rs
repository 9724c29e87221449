//! The health snapshot: computed on refresh (timer, `probe:true`, a config reload, a session
//! change), served pre-serialised. Agents, heartbeat settings and `configReload` come from the
//! config in force; session counts and recent keys from the store's summary
//! ([`crate::sessions_hub`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use pincer_config::Config;
use pincer_protocol::hello::{
    AgentHealth, ConfigReloadHealth, EventLoopHealth, HealthSnapshot, HeartbeatHealth,
    PluginsHealth, SessionsHealth,
};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::live_config::heartbeat_facts;
use crate::sessions_hub::SessionsSummary;
use crate::util;

/// What the snapshot is built from besides the runtime sample.
pub struct HealthFacts<'a> {
    pub config: &'a Config,
    pub sessions: &'a SessionsSummary,
    /// `configReload` (from [`crate::live_config::LiveConfig::reload_health`]).
    pub config_reload: Value,
    /// `channels`, `channelOrder`, `channelLabels` of the configured channel accounts
    /// (see [`crate::channels::ChannelsHub::health_json`]); `None`: empty.
    pub channels: Option<ChannelsHealth>,
}

/// `health.channels` / `channelOrder` / `channelLabels`.
#[derive(Debug, Clone, Default)]
pub struct ChannelsHealth {
    pub channels: Map<String, Value>,
    pub order: Vec<String>,
    pub labels: Map<String, Value>,
}

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
    /// An empty cache; the gateway state fills it with its first refresh.
    pub fn new(sessions_path: String) -> Self {
        HealthCache {
            json: RwLock::new(Arc::from(Box::<RawValue>::default())),
            stable: Mutex::new(String::new()),
            sessions_path,
            sample: Mutex::new(LoopSample::default()),
            degraded_since: Mutex::new(None),
        }
    }

    /// The cached snapshot JSON.
    pub fn json(&self) -> Arc<RawValue> {
        Arc::clone(&self.json.read())
    }

    fn build(&self, started: Instant, facts: &HealthFacts<'_>) -> HealthSnapshot {
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
        let cfg = facts.config;
        let default_agent = cfg.default_agent_id();
        let agents: Vec<AgentHealth> = cfg
            .agent_ids()
            .into_iter()
            .map(|id| {
                let hb = heartbeat_facts(cfg, &id);
                let (count, recent) = facts.sessions.for_agent(&id);
                let name = cfg
                    .agents
                    .entries
                    .iter()
                    .find(|(k, _)| pincer_sessions::normalize_agent_id(k) == id)
                    .and_then(|(_, e)| e.name.clone());
                AgentHealth {
                    is_default: id == default_agent,
                    name,
                    heartbeat: HeartbeatHealth {
                        enabled: hb.enabled,
                        every: hb.every,
                        every_ms: hb.every_ms,
                        prompt: Some(hb.prompt),
                        target: Some(hb.target),
                        model: hb.model,
                        session: hb.session,
                        ack_max_chars: Some(hb.ack_max_chars),
                    },
                    sessions: SessionsHealth {
                        path: self.sessions_path.clone(),
                        count,
                        recent,
                    },
                    agent_id: id,
                }
            })
            .collect();
        let heartbeat_seconds = agents
            .iter()
            .find(|a| a.is_default)
            .map(|a| {
                if a.heartbeat.enabled {
                    a.heartbeat.every_ms / 1000
                } else {
                    0
                }
            })
            .unwrap_or(0);
        let sessions = SessionsHealth {
            path: self.sessions_path.clone(),
            count: facts.sessions.total,
            recent: facts.sessions.recent.clone(),
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
            heartbeat_seconds: Some(heartbeat_seconds),
            default_agent_id: Some(default_agent),
            agents: Some(agents),
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
    pub fn refresh(&self, sample: Option<LoopSample>, facts: &HealthFacts<'_>) -> bool {
        let started = Instant::now();
        if let Some(s) = sample {
            *self.sample.lock() = s;
        }
        let snapshot = self.build(started, facts);
        // `configReload` carries Pincer's extensions (`lastError`, `restartRequired`).
        let Ok(mut value) = serde_json::to_value(&snapshot) else {
            return false;
        };
        value["configReload"] = facts.config_reload.clone();
        let mut channels_stable = String::new();
        if let Some(ChannelsHealth {
            channels,
            order,
            labels,
        }) = &facts.channels
        {
            value["channels"] = Value::Object(channels.clone());
            value["channelOrder"] = serde_json::json!(order);
            value["channelLabels"] = Value::Object(labels.clone());
            // Message and connection times move constantly; states and errors matter.
            let mut quiet = channels.clone();
            for summary in quiet.values_mut() {
                strip_times(summary);
                if let Some(accounts) = summary.get_mut("accounts").and_then(Value::as_object_mut) {
                    for a in accounts.values_mut() {
                        strip_times(a);
                    }
                }
            }
            channels_stable = Value::Object(quiet).to_string();
        }
        let Ok(raw) = serde_json::value::to_raw_value(&value) else {
            return false;
        };
        let stable = {
            let mut s = snapshot.clone();
            s.ts = None;
            s.duration_ms = None;
            // Ages and update times move constantly; counts and keys are what matter.
            for r in s.sessions.iter_mut().flat_map(|x| x.recent.iter_mut()) {
                r.age = 0;
                r.updated_at = 0;
            }
            for a in s.agents.iter_mut().flatten() {
                for r in a.sessions.recent.iter_mut() {
                    r.age = 0;
                    r.updated_at = 0;
                }
            }
            if let Some(el) = s.event_loop.as_mut() {
                el.interval_ms = 0.0;
                el.delay_p99_ms = 0.0;
                el.delay_max_ms = 0.0;
                el.utilization = 0.0;
                el.cpu_core_ratio = 0.0;
            }
            format!(
                "{}{}{channels_stable}",
                serde_json::to_string(&s).unwrap_or_default(),
                facts.config_reload
            )
        };
        *self.json.write() = Arc::from(raw);
        let mut prev = self.stable.lock();
        let changed = *prev != stable;
        *prev = stable;
        changed
    }
}

/// Drops `…At` timestamps from a channel account snapshot (change detection only).
fn strip_times(v: &mut Value) {
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| !k.ends_with("At"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_has_reference_keys_and_detects_changes() {
        let h = HealthCache::new("/tmp/pincer.sqlite".into());
        let config = Config::default();
        let summary = SessionsSummary::default();
        let facts = HealthFacts {
            config: &config,
            sessions: &summary,
            config_reload: serde_json::json!({"hotReloadStatus": "active"}),
            channels: None,
        };
        h.refresh(None, &facts);
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
        assert!(!h.refresh(Some(calm), &facts));
        // …but a degraded event loop is.
        let busy = LoopSample {
            lag: Duration::from_secs(2),
            ..calm
        };
        assert!(h.refresh(Some(busy), &facts));
        let v: serde_json::Value = serde_json::from_str(h.json().get()).unwrap_or_default();
        assert_eq!(v["eventLoop"]["degraded"], true);
        assert!(h.refresh(Some(calm), &facts));
    }
}
