//! `health`, `status`, `system-presence`, `system-event`.

use std::time::Instant;

use pincer_protocol::errors::ErrorShape;
use pincer_protocol::hello::PresenceEntry;
use pincer_protocol::params::{EMPTY_PARAMS, HEALTH_PARAMS, SYSTEM_EVENT_PARAMS};
use serde::Deserialize;
use serde_json::json;

use crate::dedupe::Begin;
use crate::dispatch::{CallCtx, MethodRegistry, Reply};
use crate::state::{SystemEvent, MAX_SYSTEM_EVENTS};
use crate::util;

pub fn register(reg: &mut MethodRegistry) {
    reg.sync("health", &HEALTH_PARAMS, health);
    reg.sync("status", &EMPTY_PARAMS, status);
    reg.sync("system-presence", &EMPTY_PARAMS, system_presence);
    reg.sync("system-event", &SYSTEM_EVENT_PARAMS, system_event);
}

#[derive(Deserialize)]
struct HealthParams {
    #[serde(default)]
    probe: bool,
}

/// Cached, pre-serialised snapshot; `probe:true` recomputes first (in-memory and `/proc` only).
fn health(ctx: &CallCtx<'_>) -> Reply {
    if ctx.params.is_some_and(|p| p != "{}") {
        if let Ok(HealthParams { probe: true }) = ctx.parse::<HealthParams>() {
            ctx.state.refresh_health(None);
        }
    }
    Reply::Raw(ctx.state.health.json())
}

fn status(ctx: &CallCtx<'_>) -> Reply {
    let state = ctx.state;
    let admin = ctx.conn.info.scopes.is_admin();
    let health: serde_json::Value =
        serde_json::from_str(state.health.json().get()).unwrap_or_default();
    let sessions_path = state
        .state_dir
        .join("state")
        .join("pincer.sqlite")
        .display()
        .to_string();
    let queued: Vec<String> = state
        .system_events
        .lock()
        .iter()
        .map(|e| e.text.clone())
        .collect();
    let mut payload = json!({
        "runtimeVersion": state.version,
        "heartbeat": state.status_heartbeat_json(),
        "channelSummary": state.channels.summary_lines(),
        "queuedSystemEvents": queued,
        "degradedPlugins": [],
        "tasks": {
            "total": 0, "active": 0, "terminal": 0, "failures": 0,
            "byStatus": {"queued": 0, "running": 0, "succeeded": 0, "failed": 0, "timed_out": 0, "cancelled": 0, "lost": 0},
            "byRuntime": {"subagent": 0, "acp": 0, "cli": 0, "cron": 0},
        },
        "sessions": state.status_sessions_json(),
        "eventLoop": health.get("eventLoop").cloned().unwrap_or(json!(null)),
        "processMemory": {"rssBytes": util::rss_bytes().unwrap_or(0)},
        "connections": {"authenticated": state.registry.len()},
        "uptimeMs": state.uptime_ms(),
    });
    if let (Some(fp), Some(obj)) = (&state.security.tls_fingerprint, payload.as_object_mut()) {
        // Additive (TLS gateways only): what clients pin with --tls-fingerprint.
        obj.insert(
            "tls".into(),
            json!({"enabled": true, "fingerprintSha256": fp}),
        );
    }
    if admin {
        if let Some(obj) = payload.as_object_mut() {
            obj.insert("pid".into(), json!(std::process::id()));
            obj.insert(
                "stateDir".into(),
                json!(state.state_dir.display().to_string()),
            );
            if let Some(s) = obj.get_mut("sessions").and_then(|s| s.as_object_mut()) {
                s.insert("paths".into(), json!([sessions_path]));
            }
        }
    }
    Reply::json(&payload)
}

fn system_presence(ctx: &CallCtx<'_>) -> Reply {
    Reply::Raw(ctx.state.presence.json())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SystemEventParams {
    text: String,
    idempotency_key: Option<String>,
    session_key: Option<String>,
    wake: Option<serde_json::Value>,
    device_id: Option<String>,
    instance_id: Option<String>,
    host: Option<String>,
    ip: Option<String>,
    mode: Option<String>,
    version: Option<String>,
    platform: Option<String>,
    device_family: Option<String>,
    model_identifier: Option<String>,
    last_input_seconds: Option<u64>,
    reason: Option<String>,
    roles: Option<Vec<String>>,
    scopes: Option<Vec<String>>,
    tags: Option<Vec<String>>,
}

/// Queue a system event for the main session; presence metadata updates presence.
fn system_event(ctx: &CallCtx<'_>) -> Reply {
    let p: SystemEventParams = match ctx.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let dedupe_key = p
        .idempotency_key
        .as_ref()
        .map(|k| format!("system-event:{k}"));
    if let Some(key) = &dedupe_key {
        match ctx.state.dedupe.begin(key, Instant::now()) {
            Begin::Fresh => {}
            Begin::InFlight => {
                return Reply::Error(
                    ErrorShape::unavailable("system event already in flight").retry_after(500),
                )
            }
            Begin::Replay(payload) => return Reply::Json(payload),
        }
    }
    let now = util::now_ms();
    {
        let mut queue = ctx.state.system_events.lock();
        queue.push_back(SystemEvent {
            text: p.text.clone(),
            session_key: p.session_key.clone(),
            ts: now,
        });
        while queue.len() > MAX_SYSTEM_EVENTS {
            queue.pop_front();
        }
    }
    // The heartbeat sees it too (and runs at once with `wake: true | "now"`).
    crate::automations::system_event(
        ctx.state,
        &p.text,
        p.session_key.as_deref(),
        p.wake.as_ref(),
    );
    let presence_key = p
        .device_id
        .clone()
        .or_else(|| p.instance_id.clone())
        .or_else(|| p.host.clone());
    if let Some(key) = presence_key {
        let entry = PresenceEntry {
            host: p.host,
            ip: p.ip,
            version: p.version,
            platform: p.platform,
            device_family: p.device_family,
            model_identifier: p.model_identifier,
            mode: p.mode,
            last_input_seconds: p.last_input_seconds,
            reason: p.reason.or(Some("system-event".into())),
            tags: p.tags,
            text: Some(p.text),
            ts: now,
            device_id: p.device_id,
            roles: p.roles,
            scopes: p.scopes,
            instance_id: p.instance_id,
            ..Default::default()
        };
        ctx.state.presence_upsert(format!("event:{key}"), entry);
    }
    let payload = r#"{"ok":true}"#.to_string();
    if let Some(key) = &dedupe_key {
        ctx.state
            .dedupe
            .complete(key, payload.clone(), Instant::now());
    }
    Reply::Json(payload)
}
