//! `POST /tools/invoke`: one tool call without a model, for automation scripts.
//!
//! Body `{tool|name, action?, args?, sessionKey?, agentId?, idempotencyKey?, dryRun?}` (≤ 2 MB),
//! gateway HTTP auth required. The tool runs through the agent runtime exactly like a model's
//! call ([`pincer_agent::AgentRuntime::invoke_tool`]): the agent's tool policy, the gateway
//! hosts (exec approvals included), workspace confinement. On top, HTTP refuses by default the
//! tools that execute, write, spawn or reach other machines (`DEFAULT_HTTP_DENY`, as the
//! reference); `gateway.tools.allow` lifts entries of that list and `gateway.tools.deny` adds
//! to it. A refused or unknown tool is `404 {ok:false, error:{type:"not_found"}}` (it is not
//! available over HTTP); bad arguments are 400, a denial by exec security or an approval is
//! 403 `tool_call_blocked`. `idempotencyKey` replays the first answer for 5 minutes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{Method, Request, Response, StatusCode};
use pincer_agent::InvokeError;
use pincer_sessions::SessionKey;
use pincer_tools::ToolError;
use serde_json::{json, Map, Value};

use super::{read_body, BodyError};
use crate::dedupe::Begin;
use crate::http::PeerAddr;
use crate::state::GatewayState;

/// Body cap.
pub const MAX_BODY_BYTES: usize = 2 * 1024 * 1024;
const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// Tools HTTP callers may not run unless `gateway.tools.allow` names them.
pub const DEFAULT_HTTP_DENY: &[&str] = &[
    "exec",
    "spawn",
    "shell",
    "fs_write",
    "fs_delete",
    "fs_move",
    "apply_patch",
    "sessions_spawn",
    "sessions_send",
    "cron",
    "gateway",
    "nodes",
];

fn failure(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    super::json(
        status,
        &json!({"ok": false, "error": {"type": kind, "message": message}}),
    )
}

/// Whether HTTP may run `name` (`canonical` is the registry's name for it).
pub fn http_allowed(cfg: &pincer_config::Config, name: &str, canonical: &str) -> bool {
    let allow = cfg.gateway.tools.allow.clone().unwrap_or_default();
    let deny = cfg.gateway.tools.deny.clone().unwrap_or_default();
    let names = [
        name,
        canonical,
        if canonical == "automations" {
            "cron"
        } else {
            canonical
        },
    ];
    let listed = |list: &[String], n: &str| list.iter().any(|e| e.trim().eq_ignore_ascii_case(n));
    if names.iter().any(|n| listed(&deny, n)) {
        return false;
    }
    let default_denied = names
        .iter()
        .any(|n| DEFAULT_HTTP_DENY.iter().any(|d| d.eq_ignore_ascii_case(n)));
    !default_denied || names.iter().any(|n| listed(&allow, n))
}

fn text_field(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

pub async fn invoke(
    State(state): State<Arc<GatewayState>>,
    peer: Option<Extension<PeerAddr>>,
    req: Request<Body>,
) -> Response<Body> {
    if req.method() != Method::POST {
        return super::method_not_allowed(
            "POST",
            &json!({"error": {"message": "Method Not Allowed", "type": "method_not_allowed"}}),
        );
    }
    let Some(Extension(PeerAddr(peer))) = peer else {
        return failure(StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized");
    };
    if let Err(resp) = crate::control_ui::http_auth(&state, peer.ip(), req.headers()) {
        return *resp;
    }
    let body = match read_body(req.into_body(), MAX_BODY_BYTES, BODY_DEADLINE).await {
        Ok(b) => b,
        Err(BodyError::TooLarge(_)) => {
            return failure(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                &format!("request body exceeds {MAX_BODY_BYTES} bytes"),
            )
        }
        Err(BodyError::Timeout) => {
            return failure(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                "request body timed out",
            )
        }
        Err(BodyError::Read(e)) => return failure(StatusCode::BAD_REQUEST, "invalid_request", &e),
    };
    let input: Map<String, Value> = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return failure(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the body must be a JSON object",
            )
        }
        Err(e) => {
            return failure(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                &format!("invalid JSON body: {e}"),
            )
        }
    };
    let Some(name) = text_field(&input, "name").or_else(|| text_field(&input, "tool")) else {
        return failure(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "tools.invoke requires name",
        );
    };
    let cfg = Arc::clone(&state.config.get());
    let default_agent = cfg.config.default_agent_id();
    let requested_agent =
        text_field(&input, "agentId").map(|a| pincer_sessions::normalize_agent_id(&a));
    let agent_for_key = requested_agent.clone().unwrap_or(default_agent);
    let key = match text_field(&input, "sessionKey") {
        Some(k) => match SessionKey::canonicalize(&k, &agent_for_key) {
            Ok(k) => k,
            Err(e) => {
                return failure(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("invalid sessionKey {k:?}: {e}"),
                )
            }
        },
        None => SessionKey::main(&agent_for_key),
    };
    let agent = key.agent_id().map_or(agent_for_key.clone(), str::to_owned);
    if requested_agent.as_deref().is_some_and(|a| a != agent) {
        return failure(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!(
                "agent id {:?} does not match session agent {agent:?}",
                requested_agent.unwrap_or_default()
            ),
        );
    }
    if !cfg.config.agent_ids().contains(&agent) {
        return failure(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("unknown agent {agent:?}"),
        );
    }
    let runtime = &state.agent.runtime;
    let not_available = || {
        failure(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("Tool not available: {name}"),
        )
    };
    let Some(canonical) = runtime.tool_name(&name) else {
        return not_available();
    };
    if !http_allowed(&cfg.config, &name, &canonical) {
        tracing::info!(target: "tools", tool = %canonical, "tools.invoke refused by the HTTP deny list");
        return not_available();
    }
    let mut args = match input.get("args") {
        Some(Value::Object(a)) => a.clone(),
        None | Some(Value::Null) => Map::new(),
        Some(_) => {
            return failure(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "args must be an object",
            )
        }
    };
    if let Some(action) = text_field(&input, "action") {
        args.entry("action").or_insert(Value::String(action));
    }
    if input.get("dryRun").and_then(Value::as_bool) == Some(true) {
        return super::json(
            StatusCode::OK,
            &json!({"ok": true, "result": {"dryRun": true, "tool": canonical, "agentId": agent, "sessionKey": key.to_string(), "args": args}}),
        );
    }
    let dedupe_key = text_field(&input, "idempotencyKey").map(|k| format!("tools.invoke:{k}"));
    if let Some(k) = &dedupe_key {
        match state.dedupe.begin(k, Instant::now()) {
            Begin::Fresh => {}
            Begin::InFlight => {
                return failure(
                    StatusCode::CONFLICT,
                    "in_flight",
                    "a call with this idempotencyKey is still running",
                )
            }
            Begin::Replay(stored) => {
                let (status, body) = serde_json::from_str::<(u16, Value)>(&stored)
                    .unwrap_or((200, json!({"ok": true})));
                return super::json(
                    StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                    &body,
                );
            }
        }
    }
    // The call is cancelled when the client goes away (this future is dropped).
    let cancel = pincer_tools::CancellationToken::new();
    let _cancel_on_drop = cancel.clone().drop_guard();
    let result = runtime
        .invoke_tool(&agent, &key, &canonical, Value::Object(args), cancel)
        .await;
    let (status, body) = match result {
        Ok(Ok(out)) => (
            StatusCode::OK,
            json!({"ok": true, "result": out.to_result_json()}),
        ),
        Ok(Err(e)) => tool_error(&canonical, &e),
        Err(InvokeError::UnknownTool(_) | InvokeError::NotAllowed(..)) => (
            StatusCode::NOT_FOUND,
            json!({"ok": false, "error": {"type": "not_found", "message": format!("Tool not available: {name}")}}),
        ),
        Err(InvokeError::Unavailable(m)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ok": false, "error": {"type": "unavailable", "message": m}}),
        ),
    };
    if let Some(k) = &dedupe_key {
        state.dedupe.complete(
            k,
            json!([status.as_u16(), body]).to_string(),
            Instant::now(),
        );
    }
    super::json(status, &body)
}

fn tool_error(tool: &str, e: &ToolError) -> (StatusCode, Value) {
    let (status, kind) = match e {
        ToolError::InvalidArgs { .. } | ToolError::NotFound(_) | ToolError::PathDenied(_) => {
            (StatusCode::BAD_REQUEST, "tool_error")
        }
        ToolError::Denied(_) | ToolError::Blocked(_) => {
            (StatusCode::FORBIDDEN, "tool_call_blocked")
        }
        ToolError::UnknownTool(_) | ToolError::NotAllowed(_) => {
            (StatusCode::NOT_FOUND, "not_found")
        }
        ToolError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        _ => {
            tracing::warn!(target: "tools", tool, error = %e, "tools.invoke: tool execution failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "tool_error")
        }
    };
    (
        status,
        json!({"ok": false, "error": {"type": kind, "message": e.to_string()}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_deny_list_and_its_overrides() {
        let mut cfg = pincer_config::Config::default();
        assert!(http_allowed(&cfg, "read", "read"));
        assert!(!http_allowed(&cfg, "exec", "exec"));
        assert!(!http_allowed(&cfg, "bash", "exec"));
        assert!(!http_allowed(&cfg, "automations", "automations"));
        assert!(!http_allowed(&cfg, "nodes", "nodes"));
        cfg.gateway.tools.allow = Some(vec!["exec".into()]);
        cfg.gateway.tools.deny = Some(vec!["read".into()]);
        assert!(http_allowed(&cfg, "exec", "exec"));
        assert!(!http_allowed(&cfg, "read", "read"));
    }
}
