//! `agent` (two answers on one request id: accepted, then final), `agent.wait`,
//! `agent.identity.get`, and `sessions.compact` (the runtime owns compaction).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_agent::{RunOutcome, RunRequest, RunSource, RunStatus, WaitResult};
use pincer_protocol::errors::ErrorShape;
use pincer_protocol::params::{
    AGENT_IDENTITY_PARAMS, AGENT_PARAMS, AGENT_WAIT_PARAMS, SESSIONS_COMPACT_PARAMS,
};
use pincer_providers::ThinkingLevel;
use pincer_sessions::SessionKey;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::agent_hub::CAP_TOOL_EVENTS;
use crate::dedupe::Begin;
use crate::dispatch::{MethodRegistry, OwnedCall, Reply};
use crate::methods::chat::{session_key, transport_metadata};
use crate::projection::terminal_receipt;
use crate::state::GatewayState;

/// `agent.wait` default deadline.
const WAIT_DEFAULT: Duration = Duration::from_secs(30);

pub fn register(reg: &mut MethodRegistry) {
    reg.asynchronous("agent", &AGENT_PARAMS, |c| Box::pin(agent(c)));
    reg.asynchronous("agent.wait", &AGENT_WAIT_PARAMS, |c| {
        Box::pin(agent_wait(c))
    });
    reg.asynchronous("agent.identity.get", &AGENT_IDENTITY_PARAMS, |c| {
        Box::pin(identity(c))
    });
    reg.asynchronous("sessions.compact", &SESSIONS_COMPACT_PARAMS, |c| {
        Box::pin(sessions_compact(c))
    });
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AgentParams {
    message: String,
    agent_id: Option<String>,
    provider: Option<String>,
    model: Option<String>,
    session_key: Option<String>,
    thinking: Option<String>,
    timeout: Option<u64>,
    prompt_mode: Option<String>,
    extra_system_prompt: Option<String>,
    idempotency_key: String,
}

fn agent_of(state: &GatewayState, key: &SessionKey) -> String {
    key.agent_id()
        .map(str::to_owned)
        .unwrap_or_else(|| state.config.get().config.default_agent_id())
}

/// The final `res` of `agent` for a finished run.
pub fn final_payload(outcome: &RunOutcome) -> Value {
    let status = match outcome.status {
        RunStatus::Ok => "ok",
        RunStatus::Timeout => "timeout",
        RunStatus::Error | RunStatus::Aborted => "error",
    };
    let usage = |u: &pincer_providers::Usage| {
        json!({"input": u.input, "output": u.output, "cacheRead": u.cache_read,
            "cacheWrite": u.cache_write, "total": u.input + u.output + u.cache_read + u.cache_write,
            "cost": {"total": u.cost.total}})
    };
    let (provider, model) = outcome
        .effective
        .clone()
        .or_else(|| outcome.requested.clone())
        .unzip();
    let mut payload = json!({
        "runId": outcome.run_id,
        "status": status,
        "summary": outcome.summary(),
        "result": {
            "payloads": if outcome.text.is_empty() { json!([]) } else { json!([{"text": outcome.text, "mediaUrl": null}]) },
            "meta": {
                "durationMs": outcome.ended_at.saturating_sub(outcome.started_at),
                "agentMeta": {
                    "sessionId": outcome.session_id,
                    "sessionFile": outcome.session_key,
                    "provider": provider,
                    "model": model,
                    "contextTokens": outcome.context_window,
                    "agentHarnessId": "pincer",
                    "usage": usage(&outcome.usage),
                    "lastCallUsage": outcome.last_call_usage.as_ref().map(usage),
                    "promptTokens": outcome.last_call_usage.map(|u| u.input),
                    "assistantTurns": outcome.assistant_turns,
                    "costUsd": outcome.usage.cost.total,
                    "terminalReceipt": terminal_receipt(outcome),
                },
                "aborted": matches!(outcome.status, RunStatus::Aborted | RunStatus::Timeout),
                "finalAssistantVisibleText": outcome.text,
                "stopReason": outcome.stop_reason,
                "executionTrace": {
                    "winnerProvider": outcome.effective.as_ref().map(|e| e.0.clone()),
                    "winnerModel": outcome.effective.as_ref().map(|e| e.1.clone()),
                    "attempts": outcome.attempts,
                    "fallbackUsed": outcome.attempts.len() > 1,
                    "runner": "embedded",
                },
                "completion": {"stopReason": outcome.stop_reason},
            },
        },
    });
    // The capture of a completed run has no top-level stopReason; failures carry it.
    if let (Some(reason), false) = (&outcome.stop_reason, outcome.status == RunStatus::Ok) {
        payload["stopReason"] = json!(reason);
    }
    if let Some(error) = &outcome.error {
        payload["error"] = json!(error);
    }
    payload
}

async fn agent(call: OwnedCall) -> Reply {
    let p: AgentParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let state = Arc::clone(&call.state);
    let key = match p.session_key.as_deref().filter(|k| !k.trim().is_empty()) {
        Some(k) => match session_key(&state, k, p.agent_id.as_deref()) {
            Ok(k) => k,
            Err(e) => return Reply::Error(e),
        },
        None => {
            let agent = p
                .agent_id
                .as_deref()
                .map(pincer_sessions::normalize_agent_id)
                .unwrap_or_else(|| state.config.get().config.default_agent_id());
            SessionKey::main(&agent)
        }
    };
    if p.message.trim().is_empty() {
        return Reply::Error(ErrorShape::invalid_request("message must not be empty"));
    }
    let thinking = p.thinking.as_deref().and_then(ThinkingLevel::parse);
    let model = match (p.provider.as_deref(), p.model.as_deref()) {
        (Some(provider), Some(model)) if !model.contains('/') => {
            Some(format!("{provider}/{model}"))
        }
        (_, Some(model)) => Some(model.to_owned()),
        _ => None,
    };
    let agent_id = agent_of(&state, &key);
    let run_id = p.idempotency_key.clone();
    let dedupe_key = format!("agent:{run_id}");
    match state.dedupe.begin(&dedupe_key, Instant::now()) {
        Begin::Fresh => {}
        Begin::InFlight => {
            return Reply::json(&json!({"runId": run_id, "status": "in_flight",
                "sessionKey": key.to_string(), "agentId": agent_id}))
        }
        Begin::Replay(payload) => return Reply::Json(payload),
    }
    let mut req = RunRequest::new(run_id.clone(), key.clone(), p.message, RunSource::Agent);
    req.thinking = thinking;
    req.model = model;
    req.timeout = p.timeout.filter(|t| *t > 0).map(Duration::from_secs);
    req.extra_system_prompt = p.extra_system_prompt;
    if let Some(mode) = p
        .prompt_mode
        .as_deref()
        .and_then(pincer_agent::PromptMode::parse)
    {
        req.prompt_mode = mode;
    }
    req.metadata = Some(transport_metadata(&call));
    if call.conn.info.caps.iter().any(|c| c == CAP_TOOL_EVENTS) {
        state.agent.add_tool_recipient(&run_id, call.conn.info.id);
    }
    call.respond(Reply::json(&json!({
        "runId": run_id, "sessionKey": key.to_string(), "agentId": agent_id,
        "status": "accepted", "acceptedAt": pincer_agent::now_ms(),
    })));
    let submitted = match state.agent.runtime.submit(req).await {
        Ok(s) => s,
        Err(e) => {
            state.dedupe.abandon(&dedupe_key);
            return Reply::json(
                &json!({"runId": run_id, "status": "error", "summary": e.to_string()}),
            );
        }
    };
    let mut handle = submitted.handle;
    let outcome = handle.outcome().await;
    // The final answer follows the run's last events on this socket.
    state
        .agent
        .wait_projected(
            outcome.merged_into.as_deref().unwrap_or(&outcome.run_id),
            Duration::from_secs(2),
        )
        .await;
    let payload = final_payload(&outcome).to_string();
    state
        .dedupe
        .complete(&dedupe_key, payload.clone(), Instant::now());
    Reply::Json(payload)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WaitParams {
    run_id: String,
    timeout_ms: Option<u64>,
}

async fn agent_wait(call: OwnedCall) -> Reply {
    let p: WaitParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let timeout = p.timeout_ms.map_or(WAIT_DEFAULT, Duration::from_millis);
    let runtime = &call.state.agent.runtime;
    let payload = match runtime.wait(&p.run_id, timeout).await {
        WaitResult::Done(o) => {
            let status = match o.status {
                RunStatus::Ok => "ok",
                RunStatus::Timeout => "timeout",
                RunStatus::Error | RunStatus::Aborted => "error",
            };
            let mut v = json!({
                "runId": p.run_id, "status": status, "startedAt": o.started_at, "endedAt": o.ended_at,
                "stopReason": o.stop_reason,
                "terminalReply": {"disposition": match o.disposition {
                    pincer_agent::Disposition::Visible => "visible",
                    pincer_agent::Disposition::Silent => "silent",
                    pincer_agent::Disposition::Empty => "empty",
                }, "text": o.text},
                "terminalReceipt": terminal_receipt(&o),
            });
            if let Some(e) = &o.error {
                v["error"] = json!(e.error_message);
            }
            v
        }
        WaitResult::Pending => {
            let queued = runtime.run_state(&p.run_id) == Some(pincer_agent::RunState::Queued);
            json!({"runId": p.run_id, "status": if queued { "pending" } else { "timeout" }})
        }
        WaitResult::Unknown => json!({"runId": p.run_id, "status": "timeout"}),
    };
    Reply::json(&payload)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentityParams {
    agent_id: Option<String>,
    session_key: Option<String>,
}

/// `- Name: X` style lines of the workspace's IDENTITY.md (placeholders ignored).
fn identity_file_field(text: &str, field: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let line = line.trim().trim_start_matches(['-', '*', ' ']);
        let (name, value) = line.split_once(':')?;
        if !name.trim().trim_matches('*').eq_ignore_ascii_case(field) {
            return None;
        }
        let value = value.trim().trim_matches('*').trim();
        (!value.is_empty() && !value.starts_with('(')).then(|| value.to_owned())
    })
}

async fn identity(call: OwnedCall) -> Reply {
    let p: IdentityParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let state = &call.state;
    let agent_id = match (&p.session_key, &p.agent_id) {
        (Some(k), agent) => match session_key(state, k, agent.as_deref()) {
            Ok(k) => agent_of(state, &k),
            Err(e) => return Reply::Error(e),
        },
        (None, Some(a)) => pincer_sessions::normalize_agent_id(a),
        (None, None) => state.config.get().config.default_agent_id(),
    };
    let settings = state.agent.runtime.settings();
    let configured = settings.identity(&agent_id);
    let workspace = settings.workspace(&agent_id);
    let file = tokio::task::spawn_blocking(move || {
        std::fs::read_to_string(workspace.join("IDENTITY.md")).ok()
    })
    .await
    .ok()
    .flatten();
    let mut v = json!({"agentId": agent_id});
    let from_file = |field: &str| file.as_deref().and_then(|t| identity_file_field(t, field));
    if let Some(name) = configured.name.clone() {
        v["name"] = json!(name);
        v["nameSource"] = json!("config");
    } else if let Some(name) = from_file("Name") {
        v["name"] = json!(name);
        v["nameSource"] = json!("identity-file");
    }
    if let Some(avatar) = configured.avatar.clone() {
        v["avatar"] = json!(avatar);
        v["avatarSource"] = json!("config");
    }
    if let Some(emoji) = configured.emoji.clone().or_else(|| from_file("Emoji")) {
        v["emoji"] = json!(emoji);
    }
    Reply::json(&v)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CompactParams {
    key: String,
    agent_id: Option<String>,
}

async fn sessions_compact(call: OwnedCall) -> Reply {
    let p: CompactParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let state = &call.state;
    let key = match session_key(state, &p.key, p.agent_id.as_deref()) {
        Ok(k) => k,
        Err(e) => return Reply::Error(e),
    };
    match state.agent.runtime.compact(&key, None).await {
        Ok(report) => {
            let mut v = json!({"ok": true, "key": key.to_string(), "compacted": report.compacted});
            if let Some(reason) = report.reason {
                v["reason"] = json!(reason);
            }
            Reply::json(&v)
        }
        Err(e) => Reply::json(
            &json!({"ok": false, "key": key.to_string(), "compacted": false, "reason": e.to_string()}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_file_fields_skip_placeholders() {
        let text = "# IDENTITY\n- Name: Clawd\n- **Emoji:** 🦞\n- Vibe: (not chosen)\n";
        assert_eq!(identity_file_field(text, "Name").as_deref(), Some("Clawd"));
        assert_eq!(identity_file_field(text, "emoji").as_deref(), Some("🦞"));
        assert_eq!(identity_file_field(text, "Vibe"), None);
        let template = pincer_agent::workspace::TEMPLATES
            .iter()
            .find(|(n, _)| *n == "IDENTITY.md")
            .map(|(_, t)| *t)
            .unwrap_or_default();
        assert_eq!(identity_file_field(template, "Name"), None);
    }
}
