//! `chat.send`, `chat.abort`, `chat.inject` (WebChat / Control UI / `pincer chat`).
//!
//! `chat.send` answers `{runId, status:"started"}` before the run's first event (runId =
//! idempotencyKey); a repeat of the key while the run is going answers `in_flight`, after it
//! ended the stored outcome (dedupe, 5 min). The run's progress arrives as `agent` / `chat`
//! events (see `crate::projection`).

use std::sync::Arc;
use std::time::Instant;

use pincer_agent::{parse_queue_mode, AbortReason, RunRequest, RunSource, RunStatus};
use pincer_protocol::errors::ErrorShape;
use pincer_protocol::params::{CHAT_ABORT_PARAMS, CHAT_INJECT_PARAMS, CHAT_SEND_PARAMS};
use pincer_providers::ThinkingLevel;
use pincer_sessions::SessionKey;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::agent_hub::CAP_TOOL_EVENTS;
use crate::dedupe::Begin;
use crate::dispatch::{MethodRegistry, OwnedCall, Reply};
use crate::state::GatewayState;

pub fn register(reg: &mut MethodRegistry) {
    reg.asynchronous("chat.send", &CHAT_SEND_PARAMS, |c| Box::pin(chat_send(c)));
    reg.asynchronous("chat.abort", &CHAT_ABORT_PARAMS, |c| {
        Box::pin(chat_abort(c))
    });
    reg.asynchronous("chat.inject", &CHAT_INJECT_PARAMS, |c| {
        Box::pin(chat_inject(c))
    });
}

/// Canonical session key of a `sessionKey` param (`main` → `agent:<agent>:main`).
pub(crate) fn session_key(
    state: &GatewayState,
    raw: &str,
    agent_id: Option<&str>,
) -> Result<SessionKey, ErrorShape> {
    let default_agent = match agent_id {
        Some(a) => pincer_sessions::normalize_agent_id(a),
        None => state.config.get().config.default_agent_id(),
    };
    SessionKey::canonicalize(raw, &default_agent)
        .map_err(|e| ErrorShape::invalid_request(format!("invalid sessionKey {raw:?}: {e}")))
}

/// `__openclaw.transport` of a user message: which client sent it.
pub(crate) fn transport_metadata(call: &OwnedCall) -> Value {
    json!({"transport": {"clients": [{
        "id": call.conn.info.client_id.as_str(),
        "mode": call.conn.info.client_mode.as_str(),
    }]}})
}

/// A run's terminal state as a dedupe payload.
pub(crate) fn outcome_status(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Ok => "ok",
        RunStatus::Error => "error",
        RunStatus::Aborted => "aborted",
        RunStatus::Timeout => "timeout",
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendParams {
    session_key: String,
    agent_id: Option<String>,
    message: String,
    thinking: Option<String>,
    queue_mode: Option<String>,
    timeout_ms: Option<u64>,
    suppress_command_interpretation: Option<bool>,
    idempotency_key: String,
}

async fn chat_send(call: OwnedCall) -> Reply {
    let p: SendParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let state = Arc::clone(&call.state);
    let key = match session_key(&state, &p.session_key, p.agent_id.as_deref()) {
        Ok(k) => k,
        Err(e) => return Reply::Error(e),
    };
    let thinking = match p
        .thinking
        .as_deref()
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        Some(t) => match ThinkingLevel::parse(t) {
            Some(l) => Some(l),
            None => {
                return Reply::Error(ErrorShape::invalid_request(format!(
                    "invalid thinking level {t:?}"
                )))
            }
        },
        None => None,
    };
    if p.message.trim().is_empty() {
        return Reply::Error(ErrorShape::invalid_request("message must not be empty"));
    }
    let run_id = p.idempotency_key.clone();
    let dedupe_key = format!("chat:{run_id}");
    let agent_id = key
        .agent_id()
        .map(str::to_owned)
        .unwrap_or_else(|| state.config.get().config.default_agent_id());
    match state.dedupe.begin(&dedupe_key, Instant::now()) {
        Begin::Fresh => {}
        Begin::InFlight => {
            return Reply::json(&json!({"runId": run_id, "status": "in_flight",
                "sessionKey": key.to_string(), "agentId": agent_id}))
        }
        Begin::Replay(payload) => return Reply::Json(payload),
    }

    let mut req = RunRequest::new(run_id.clone(), key.clone(), p.message, RunSource::Chat);
    req.queue_mode = p.queue_mode.as_deref().and_then(parse_queue_mode);
    req.thinking = thinking;
    req.timeout = p
        .timeout_ms
        .filter(|t| *t > 0)
        .map(std::time::Duration::from_millis);
    req.interpret_commands = p.suppress_command_interpretation != Some(true);
    req.metadata = Some(transport_metadata(&call));
    if call.conn.info.caps.iter().any(|c| c == CAP_TOOL_EVENTS) {
        state.agent.add_tool_recipient(&run_id, call.conn.info.id);
    }
    // The ack goes out before the run's first event.
    call.respond(Reply::json(&json!({"runId": run_id, "status": "started"})));
    match state.agent.runtime.submit(req).await {
        Ok(submitted) => {
            let mut handle = submitted.handle;
            let state = Arc::clone(&state);
            tokio::spawn(async move {
                let outcome = handle.outcome().await;
                let mut payload =
                    json!({"runId": run_id, "status": outcome_status(outcome.status)});
                if let Some(reason) = &outcome.stop_reason {
                    payload["stopReason"] = json!(reason);
                }
                state
                    .dedupe
                    .complete(&dedupe_key, payload.to_string(), Instant::now());
            });
        }
        Err(e) => {
            // No run: tell the chat what happened, and let a retry with the key run again.
            state.dedupe.abandon(&dedupe_key);
            let payload = json!({"runId": run_id, "sessionKey": key.to_string(), "agentId": agent_id,
                "seq": 1, "state": "error", "errorKind": "unknown", "errorMessage": e.to_string()});
            state.publish_session_event("chat", &key.to_string(), &payload);
        }
    }
    Reply::Sent
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AbortParams {
    session_key: String,
    agent_id: Option<String>,
    run_id: Option<String>,
}

async fn chat_abort(call: OwnedCall) -> Reply {
    let p: AbortParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let key = match session_key(&call.state, &p.session_key, p.agent_id.as_deref()) {
        Ok(k) => k.to_string(),
        Err(e) => return Reply::Error(e),
    };
    let runtime = &call.state.agent.runtime;
    if let Some(run_id) = &p.run_id {
        if runtime.run_session(run_id).is_some_and(|k| k != key) {
            return Reply::json(&json!({"ok": true, "aborted": false, "runIds": []}));
        }
    }
    let ids = runtime.abort(&key, p.run_id.as_deref(), AbortReason::Rpc);
    Reply::json(&json!({"ok": true, "aborted": !ids.is_empty(), "runIds": ids}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InjectParams {
    session_key: String,
    agent_id: Option<String>,
    message: String,
    label: Option<String>,
}

async fn chat_inject(call: OwnedCall) -> Reply {
    let p: InjectParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let state = &call.state;
    let key = match session_key(state, &p.session_key, p.agent_id.as_deref()) {
        Ok(k) => k,
        Err(e) => return Reply::Error(e),
    };
    let injected = match inject_and_publish(state, &key, &p.message, p.label.as_deref()).await {
        Ok(i) => i,
        Err(pincer_agent::commands::InjectError::SessionNotFound) => {
            return Reply::Error(ErrorShape::invalid_request("session not found"))
        }
        Err(e) => return Reply::Error(ErrorShape::invalid_request(e.to_string())),
    };
    Reply::json(&json!({"ok": true, "messageId": injected.message_id}))
}

/// Appends `text` to the session as an assistant message (never sent to the model) and shows
/// it to the session's readers as a `chat` final event. `chat.inject` and the delivery of
/// automation results use it.
pub(crate) async fn inject_and_publish(
    state: &GatewayState,
    key: &SessionKey,
    text: &str,
    label: Option<&str>,
) -> Result<pincer_agent::commands::Injected, pincer_agent::commands::InjectError> {
    let injected = state.agent.runtime.inject(key, text, label).await?;
    let agent_id = key
        .agent_id()
        .map(str::to_owned)
        .unwrap_or_else(|| state.config.get().config.default_agent_id());
    let m = &injected.message;
    let payload = json!({
        "runId": format!("inject-{}", injected.message_id),
        "sessionKey": key.to_string(),
        "agentId": agent_id,
        "seq": 0,
        "state": "final",
        "message": {
            "role": "assistant",
            "content": m.content,
            "timestamp": m.timestamp,
            "stopReason": "stop",
            "usage": m.usage,
            "api": m.api,
            "provider": m.provider,
            "model": m.model,
        },
    });
    state.publish_session_event("chat", &key.to_string(), &payload);
    Ok(injected)
}
