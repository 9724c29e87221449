//! `wake`, `last-heartbeat`, `set-heartbeats`.
//!
//! `wake {mode, text, sessionKey?, agentId?}` queues `text` as a system event for the session
//! (the agent's main session by default) and, with `mode: "now"`, runs the agent's heartbeat
//! at once — rate limited per agent (30 s apart, at most 5 per minute; a limited wake runs as
//! soon as the limit allows). `last-heartbeat` is the last `heartbeat` event or `null`;
//! `set-heartbeats {enabled}` is the global switch (runs are then skipped, `reason:
//! "disabled"`).

use pincer_automations::heartbeat::WakeRequestMode;
use pincer_protocol::errors::ErrorShape;
use pincer_protocol::params::{EMPTY_PARAMS, SET_HEARTBEATS_PARAMS, WAKE_PARAMS};
use pincer_sessions::SessionKey;
use serde::Deserialize;
use serde_json::json;

use crate::dispatch::{CallCtx, MethodRegistry, OwnedCall, Reply};
use crate::state::GatewayState;

pub fn register(reg: &mut MethodRegistry) {
    reg.sync("last-heartbeat", &EMPTY_PARAMS, last_heartbeat);
    reg.sync("set-heartbeats", &SET_HEARTBEATS_PARAMS, set_heartbeats);
    reg.asynchronous("wake", &WAKE_PARAMS, |c| Box::pin(wake(c)));
}

fn last_heartbeat(ctx: &CallCtx<'_>) -> Reply {
    match ctx.state.automations.heartbeat.last() {
        Some(ev) => Reply::json(&ev),
        None => Reply::Json("null".into()),
    }
}

#[derive(Deserialize)]
struct SetParams {
    enabled: bool,
}

fn set_heartbeats(ctx: &CallCtx<'_>) -> Reply {
    let p: SetParams = match ctx.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let result = ctx.state.automations.heartbeat.set_enabled(p.enabled);
    tracing::info!(target: "cron", enabled = p.enabled, "set-heartbeats");
    Reply::json(&result)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WakeParams {
    mode: WakeRequestMode,
    text: String,
    session_key: Option<String>,
    agent_id: Option<String>,
}

/// The agent and session a wake addresses (`sessionKey` wins; else the agent's main session).
pub(crate) fn wake_target(
    state: &GatewayState,
    session_key: Option<&str>,
    agent_id: Option<&str>,
) -> Result<(String, String), ErrorShape> {
    let default_agent = state.config.get().config.default_agent_id();
    let agent = agent_id
        .map(pincer_sessions::normalize_agent_id)
        .unwrap_or(default_agent);
    match session_key.map(str::trim).filter(|k| !k.is_empty()) {
        Some(raw) => {
            let key = SessionKey::canonicalize(raw, &agent).map_err(|e| {
                ErrorShape::invalid_request(format!("invalid sessionKey {raw:?}: {e}"))
            })?;
            let agent = key.agent_id().map_or(agent, str::to_owned);
            Ok((agent, key.to_string()))
        }
        None => Ok((agent.clone(), SessionKey::main(&agent).to_string())),
    }
}

async fn wake(call: OwnedCall) -> Reply {
    let p: WakeParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let (agent, key) =
        match wake_target(&call.state, p.session_key.as_deref(), p.agent_id.as_deref()) {
            Ok(t) => t,
            Err(e) => return Reply::Error(e),
        };
    call.state
        .automations
        .wake(&agent, &key, &p.text, p.mode)
        .await;
    // The reference answers `{ok:true}` only.
    Reply::json(&json!({"ok": true}))
}
