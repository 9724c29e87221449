//! The gateway side of sessions: the store-backed summary that `health` and `status` show
//! (session counts and recent keys per agent), `sessions.changed` on every mutation, and
//! session-scoped publishing for the agent loop.
//!
//! # For producers (agent loop, channels, cron)
//!
//! ```ignore
//! // After changing a session in the store (ensure/patch/reset/delete/usage):
//! state.sessions_changed(&key, "activity", Some(&record));
//! // A per-session event (session.message, session.tool, agent, chat, ...), delivered per
//! // protocol §6.1 (subscribers only, or every reader minus unsubscribed scoped clients):
//! state.publish_session_event("session.message", &key.to_string(), &payload);
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use pincer_protocol::hello::RecentSession;
use pincer_sessions::SessionKey;
use pincer_store::{ListQuery, SessionRecord, Store, StoreError};
use serde::Serialize;
use serde_json::json;

use crate::events::{PublishOpts, PublishReport, Target};
use crate::session_rows::{session_row, RowKind, RunFacts};
use crate::state::GatewayState;
use crate::util;

/// Recent sessions shown per agent in `health` / `status`.
pub const RECENT_LIMIT: usize = 5;

/// Session counts per agent (what `health.sessions` / `health.agents[].sessions` show).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionsSummary {
    pub total: u64,
    pub recent: Vec<RecentSession>,
    /// `(agentId, count, recent)` for every configured agent (default first).
    pub by_agent: Vec<(String, u64, Vec<RecentSession>)>,
}

impl SessionsSummary {
    pub fn for_agent(&self, agent_id: &str) -> (u64, Vec<RecentSession>) {
        self.by_agent
            .iter()
            .find(|(id, _, _)| id == agent_id)
            .map(|(_, n, r)| (*n, r.clone()))
            .unwrap_or_default()
    }
}

fn recent(records: &[SessionRecord], now: u64) -> Vec<RecentSession> {
    records
        .iter()
        .map(|r| {
            let updated = u64::try_from(r.entry.updated_at).unwrap_or(0);
            RecentSession {
                key: r.key.clone(),
                updated_at: updated,
                age: now.saturating_sub(updated),
            }
        })
        .collect()
}

/// Reads the summary from the store (2 + agents indexed queries).
pub async fn compute_summary(
    store: &Store,
    agent_ids: &[String],
) -> Result<SessionsSummary, StoreError> {
    let now = util::now_ms();
    let all = store
        .list_sessions(ListQuery {
            limit: Some(RECENT_LIMIT),
            ..Default::default()
        })
        .await?;
    let mut by_agent = Vec::with_capacity(agent_ids.len());
    for id in agent_ids {
        let page = store
            .list_sessions(ListQuery {
                agent_id: Some(id.clone()),
                limit: Some(RECENT_LIMIT),
                ..Default::default()
            })
            .await?;
        by_agent.push((
            id.clone(),
            page.total_count as u64,
            recent(&page.sessions, now),
        ));
    }
    Ok(SessionsSummary {
        total: all.total_count as u64,
        recent: recent(&all.sessions, now),
        by_agent,
    })
}

/// Back-to-back summary refreshes start at least this far apart: a burst of session changes
/// (hundreds of channel turns a second) costs ten summaries a second, not one per change.
/// A change after a quiet spell is still summarised at once.
const REFRESH_SPACING: Duration = Duration::from_millis(100);

/// The cached summary and its coalescing refresher.
pub struct SessionsHub {
    summary: ArcSwap<SessionsSummary>,
    dirty: AtomicBool,
    refreshing: AtomicBool,
    runtime: Option<tokio::runtime::Handle>,
}

impl SessionsHub {
    pub fn new(initial: SessionsSummary) -> SessionsHub {
        SessionsHub {
            summary: ArcSwap::from_pointee(initial),
            dirty: AtomicBool::new(false),
            refreshing: AtomicBool::new(false),
            runtime: tokio::runtime::Handle::try_current().ok(),
        }
    }

    pub fn summary(&self) -> Arc<SessionsSummary> {
        self.summary.load_full()
    }

    pub fn set_summary(&self, s: SessionsSummary) {
        self.summary.store(Arc::new(s));
    }
}

impl GatewayState {
    /// Recompute the session summary soon (coalesced: one refresh in flight at a time, one
    /// more if something changed meanwhile), then refresh `health`.
    pub fn request_sessions_refresh(self: &Arc<Self>) {
        let hub = &self.sessions;
        hub.dirty.store(true, Ordering::Release);
        if hub.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let Some(rt) = hub.runtime.clone() else {
            hub.refreshing.store(false, Ordering::Release);
            return;
        };
        let state = Arc::clone(self);
        rt.spawn(async move {
            loop {
                let started = tokio::time::Instant::now();
                state.sessions.dirty.store(false, Ordering::Release);
                let agents = state.config.get().config.agent_ids();
                match compute_summary(&state.store, &agents).await {
                    Ok(s) => state.sessions.set_summary(s),
                    Err(e) => tracing::warn!(error = %e, "session summary refresh failed"),
                }
                state.refresh_health(None);
                state.sessions.refreshing.store(false, Ordering::Release);
                // Someone marked it dirty after we cleared the flag: go again (unless another
                // refresher took over in between).
                if !state.sessions.dirty.load(Ordering::Acquire)
                    || state.sessions.refreshing.swap(true, Ordering::AcqRel)
                {
                    return;
                }
                tokio::time::sleep_until(started + REFRESH_SPACING).await;
            }
        });
    }

    /// The wire row of a session (or of a key without a session yet), with the runs the
    /// agent runtime has active in it.
    pub fn session_row(
        &self,
        key: &SessionKey,
        record: Option<&SessionRecord>,
    ) -> serde_json::Value {
        let runs = RunFacts {
            active_run_ids: self.agent.active_run_ids(&key.to_string()),
            active_leaf_entry_id: None,
        };
        session_row(
            &self.config.get().config,
            key,
            record,
            RowKind::List,
            &runs,
            util::now_ms(),
        )
    }

    /// `sessions.changed` to the sockets that called `sessions.subscribe` (scope-gated by
    /// the event's guard), with the session row when the session exists; refreshes the
    /// health summary. Call it after every session mutation.
    pub fn sessions_changed(
        self: &Arc<Self>,
        key: &SessionKey,
        reason: &str,
        record: Option<&SessionRecord>,
    ) -> PublishReport {
        let report = self.publish_session_changed(key, reason, record, None);
        self.request_sessions_refresh();
        report
    }

    /// `sessions.changed` alone (no summary refresh): `{sessionKey, agentId, reason, ts,
    /// [phase, runId], [sessionId, session]}`.
    pub fn publish_session_changed(
        &self,
        key: &SessionKey,
        reason: &str,
        record: Option<&SessionRecord>,
        run: Option<(&str, &str)>,
    ) -> PublishReport {
        let agent_id = key
            .agent_id()
            .map(str::to_string)
            .unwrap_or_else(|| self.config.get().config.default_agent_id());
        let mut payload = json!({
            "sessionKey": key.to_string(),
            "agentId": agent_id,
            "reason": reason,
            "ts": util::now_ms(),
        });
        if let Some((phase, run_id)) = run {
            payload["phase"] = json!(phase);
            payload["runId"] = json!(run_id);
        }
        if let Some(r) = record {
            payload["sessionId"] = json!(r.entry.session_id);
            payload["session"] = self.session_row(key, Some(r));
        }
        self.bus.publish(
            "sessions.changed",
            &payload,
            PublishOpts {
                target: Target::SessionsSubscribers,
                ..Default::default()
            },
        )
    }

    /// Publish an event that belongs to one session (`session.message`, `session.tool`,
    /// `agent`, `chat`, ...) with the protocol's session-scoped delivery (§6.1).
    pub fn publish_session_event<T: Serialize + ?Sized>(
        &self,
        event: &str,
        session_key: &str,
        payload: &T,
    ) -> PublishReport {
        self.bus.publish(
            event,
            payload,
            PublishOpts {
                target: Target::session(event, session_key),
                ..Default::default()
            },
        )
    }
}

impl GatewayState {
    /// `status.sessions`: counts, recent keys and model defaults from the store summary and
    /// the config in force.
    pub fn status_sessions_json(&self) -> serde_json::Value {
        let summary = self.sessions.summary();
        let loaded = self.config.get();
        let cfg = &loaded.config;
        let default_agent = cfg.default_agent_id();
        let model = crate::live_config::agent_model_ref(cfg, &default_agent);
        let context = model
            .as_ref()
            .and_then(|(p, m)| crate::live_config::model_context_tokens(cfg, p, m));
        let path = self.store.path().display().to_string();
        let by_agent: Vec<serde_json::Value> = summary
            .by_agent
            .iter()
            .map(|(id, count, recent)| {
                json!({"agentId": id, "path": path, "count": count, "recent": recent})
            })
            .collect();
        json!({
            "count": summary.total,
            "defaults": {"model": model.map(|(_, m)| m), "contextTokens": context},
            "recent": summary.recent,
            "byAgent": by_agent,
        })
    }

    /// `status.heartbeat`: per-agent heartbeat settings from the config in force.
    pub fn status_heartbeat_json(&self) -> serde_json::Value {
        let loaded = self.config.get();
        let cfg = &loaded.config;
        let agents: Vec<serde_json::Value> = cfg
            .agent_ids()
            .iter()
            .map(|id| {
                let hb = crate::live_config::heartbeat_facts(cfg, id);
                json!({"agentId": id, "enabled": hb.enabled, "every": hb.every, "everyMs": hb.every_ms})
            })
            .collect();
        json!({"defaultAgentId": cfg.default_agent_id(), "agents": agents})
    }
}
