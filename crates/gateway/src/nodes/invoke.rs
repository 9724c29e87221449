//! The invoke engine shared by `node.invoke` and the agent's `nodes` tool.
//!
//! `node.invoke` → checks (private and admin-only commands, platform allowlist, approval) →
//! idempotency (the gateway dedupe cache: a duplicate key waits for, or replays, the first
//! call's outcome; nothing runs twice) → `node.invoke.request` sent straight to the node's
//! socket (no `seq`) with the *remaining* budget in `timeoutMs` → the node's
//! `node.invoke.result` completes the waiting call. Failure modes answer at once: node gone
//! (`DISCONNECTED`, when its socket closes), no answer (`TIMEOUT` at the deadline, plus
//! `node.invoke.cancel` to the node), caller gone (`node.invoke.cancel` to the node).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_protocol::errors::{ErrorCode, ErrorShape};
use pincer_protocol::frames::EventEnvelope;
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};
use tokio::sync::oneshot;

use super::policy::{self, CommandConfig, NodeFacts};
use super::{NodeResult, NodeSession, PendingInvoke};
use crate::dedupe::Begin;
use crate::state::GatewayState;

/// Wait for a node when the caller gives no `timeoutMs` (or 0): every wait has a deadline.
pub const DEFAULT_TIMEOUT_MS: u64 = 30_000;
/// Longest wait a caller may ask for (24 h).
pub const MAX_TIMEOUT_MS: u64 = 24 * 60 * 60 * 1000;

/// One invoke.
#[derive(Debug, Clone)]
pub struct InvokeRequest {
    pub node_id: String,
    pub command: String,
    /// `params` as sent (forwarded as `paramsJSON`).
    pub params: Option<Value>,
    pub timeout_ms: Option<u64>,
    pub idempotency_key: String,
    pub session_key: Option<String>,
    /// The calling connection (cancelled when it closes); `None` for the agent.
    pub caller: Option<u64>,
    pub caller_is_admin: bool,
}

/// A finished invoke as the caller sees it: the `res` payload, or the error.
#[derive(Debug, Clone)]
pub enum Cached {
    Ok(Arc<str>),
    Err(ErrorShape),
}

impl Cached {
    fn encode(&self) -> String {
        match self {
            Cached::Ok(p) => format!("o{p}"),
            Cached::Err(e) => format!("e{}", serde_json::to_string(e).unwrap_or_default()),
        }
    }

    fn decode(s: &str) -> Cached {
        match s.split_at_checked(1) {
            Some(("o", rest)) => Cached::Ok(Arc::from(rest)),
            Some(("e", rest)) => Cached::Err(
                serde_json::from_str(rest)
                    .unwrap_or_else(|_| ErrorShape::unavailable("node invoke failed")),
            ),
            _ => Cached::Err(ErrorShape::unavailable("node invoke failed")),
        }
    }
}

fn not_connected() -> ErrorShape {
    ErrorShape::new(ErrorCode::Unavailable, "node not connected").with_details(json!({
        "code": "NOT_CONNECTED",
        "nodeError": {"code": "NOT_CONNECTED", "message": "node not connected"},
        "nodeCommandDispatched": false,
    }))
}

fn missing_admin() -> ErrorShape {
    ErrorShape::new(ErrorCode::Forbidden, "missing scope: operator.admin").with_details(json!({
        "code": "MISSING_SCOPE",
        "missingScope": "operator.admin",
        "requiredScopes": ["operator.admin"],
    }))
}

/// The error for a node-side failure (`UNAVAILABLE "<code>: <message>"`).
fn node_error(error: Option<Value>, dispatched: bool) -> ErrorShape {
    let code = error
        .as_ref()
        .and_then(|e| e["code"].as_str())
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    let message = error
        .as_ref()
        .and_then(|e| e["message"].as_str())
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .unwrap_or("node invoke failed")
        .to_string();
    let text = match &code {
        Some(c) => format!("{c}: {message}"),
        None => message,
    };
    ErrorShape::new(ErrorCode::Unavailable, text).with_details(json!({
        "nodeError": error.unwrap_or(Value::Null),
        "nodeCommandDispatched": dispatched,
    }))
}

/// Checks that do not depend on the node (they are never cached).
fn precheck(req: &InvokeRequest) -> Result<(), ErrorShape> {
    let command = req.command.trim();
    if req.node_id.trim().is_empty() || command.is_empty() {
        return Err(ErrorShape::invalid_request("nodeId and command required"));
    }
    if policy::PRIVATE.contains(&command) {
        return Err(ErrorShape::invalid_request(
            "node.invoke does not allow private node controls",
        )
        .with_details(json!({"command": command})));
    }
    if command == "system.execApprovals.get" || command == "system.execApprovals.set" {
        return Err(ErrorShape::invalid_request(
            "node.invoke does not allow system.execApprovals.*; use exec.approvals.node.*",
        )
        .with_details(json!({"command": command})));
    }
    if policy::ADMIN_ONLY_INVOKE.contains(&command) && !req.caller_is_admin {
        return Err(missing_admin());
    }
    Ok(())
}

/// Run an invoke with idempotency: the first call with a key runs; concurrent duplicates wait
/// for its outcome; later duplicates (5 minutes) replay it. Outcomes of calls that never reached
/// the node (validation, not connected, not allowed) are not kept, so a retry can succeed.
pub async fn invoke(state: &Arc<GatewayState>, req: InvokeRequest) -> Cached {
    if let Err(e) = precheck(&req) {
        return Cached::Err(e);
    }
    let key = format!("node.invoke:{}:{}", req.node_id.trim(), req.idempotency_key);
    let nodes = &state.nodes;
    loop {
        let waiter = {
            let mut waiters = nodes.dup_waiters.lock();
            match state.dedupe.begin(&key, Instant::now()) {
                Begin::Fresh => None,
                Begin::Replay(v) => return Cached::decode(&v),
                Begin::InFlight => {
                    let (tx, rx) = oneshot::channel();
                    waiters.entry(key.clone()).or_default().push(tx);
                    Some(rx)
                }
            }
        };
        let Some(rx) = waiter else {
            break;
        };
        // The first call always finishes (it has a deadline); wait a little longer than it can.
        let budget = Duration::from_millis(effective_timeout(req.timeout_ms) + 5_000);
        match tokio::time::timeout(budget, rx).await {
            Ok(Ok(outcome)) => return outcome,
            // The first call's task went away without an outcome: try to own the key.
            Ok(Err(_)) => continue,
            Err(_) => {
                return Cached::Err(node_error(
                    Some(json!({"code": "TIMEOUT", "message": "node invoke timed out"})),
                    false,
                ))
            }
        }
    }
    let (outcome, dispatched) = run_once(state, &req).await;
    let waiters = {
        let mut waiters = nodes.dup_waiters.lock();
        if dispatched {
            state
                .dedupe
                .complete(&key, outcome.encode(), Instant::now());
        } else {
            state.dedupe.abandon(&key);
        }
        waiters.remove(&key).unwrap_or_default()
    };
    for w in waiters {
        let _ = w.send(outcome.clone());
    }
    outcome
}

fn effective_timeout(timeout_ms: Option<u64>) -> u64 {
    match timeout_ms {
        Some(0) | None => DEFAULT_TIMEOUT_MS,
        Some(ms) => ms.min(MAX_TIMEOUT_MS),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestEvent<'a> {
    id: &'a str,
    node_id: &'a str,
    command: &'a str,
    #[serde(rename = "paramsJSON")]
    params_json: Option<&'a str>,
    timeout_ms: u64,
    idempotency_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_key: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct InvokeResponse<'a> {
    ok: bool,
    node_id: &'a str,
    command: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<&'a RawValue>,
    #[serde(rename = "payloadJSON")]
    payload_json: Option<&'a str>,
}

/// Send `node.invoke.cancel` to the node (best effort).
pub(crate) fn send_cancel(session: &NodeSession, invoke_id: &str) {
    let payload = json!({"invokeId": invoke_id, "nodeId": session.node_id}).to_string();
    let frame = EventEnvelope::new("node.invoke.cancel", Some(&payload), None).frame(None);
    session.conn.send_text(frame);
}

/// The `res` payload for a successful node result.
fn success_payload(node_id: &str, command: &str, result: &NodeResult) -> Arc<str> {
    // `payloadJSON` wins: its parsed value becomes `payload` (as the reference does).
    let parsed: Option<Box<RawValue>> = result
        .payload_json
        .as_deref()
        .map(|s| RawValue::from_string(s.to_string()).unwrap_or_else(|_| null_raw()));
    let payload = parsed.as_deref().or(result.payload.as_deref());
    let body = InvokeResponse {
        ok: true,
        node_id,
        command,
        payload,
        payload_json: result.payload_json.as_deref(),
    };
    Arc::from(serde_json::to_string(&body).unwrap_or_default())
}

fn null_raw() -> Box<RawValue> {
    RawValue::from_string("null".into()).unwrap_or_default()
}

/// Dispatch once. Returns the outcome and whether `node.invoke.request` reached the node.
async fn run_once(state: &Arc<GatewayState>, req: &InvokeRequest) -> (Cached, bool) {
    let node_id = req.node_id.trim();
    let command = req.command.trim();
    let Some(session) = state.nodes.get(node_id) else {
        return (Cached::Err(not_connected()), false);
    };
    // Platform allowlist and approval, against the config in force.
    {
        let loaded = state.config.get();
        let cmds = &loaded.config.gateway.nodes.commands;
        let allow = cmds
            .as_ref()
            .and_then(|c| c.allow.as_deref())
            .unwrap_or(&[]);
        let deny = cmds.as_ref().and_then(|c| c.deny.as_deref()).unwrap_or(&[]);
        let cfg = CommandConfig { allow, deny };
        let refused = session.with_effective(|eff| {
            let facts = NodeFacts {
                platform_id: session.platform_id,
                device_family: session.meta.device_family.as_deref(),
                caps: &eff.caps,
                approved: &eff.commands,
            };
            policy::check_invoke(command, &facts, &cfg).err()
        });
        if let Some(refusal) = refused {
            let platform = session.meta.platform.as_deref().unwrap_or("unknown");
            let message = policy::refusal_message(
                refusal,
                command,
                platform,
                &session.declared.commands,
                &cfg,
            );
            let err = ErrorShape::invalid_request(message)
                .with_details(json!({"reason": refusal.reason(), "command": command}));
            return (Cached::Err(err), false);
        }
    }
    let timeout = Duration::from_millis(effective_timeout(req.timeout_ms));
    let deadline = tokio::time::Instant::now() + timeout;
    let params_json = req.params.as_ref().map(Value::to_string);
    let id = uuid::Uuid::new_v4().to_string();
    let (tx, rx) = oneshot::channel();
    session.add_pending(
        id.clone(),
        PendingInvoke {
            command: command.to_string(),
            tx,
            caller: req.caller,
        },
    );
    if let Some(caller) = req.caller {
        state.nodes.track_caller(caller, &session, &id);
    }
    if command == "system.run" {
        // The node reports exec.started/finished/denied with this run id.
        let p = req.params.as_ref();
        let run_id = p
            .and_then(|p| p["runId"].as_str())
            .filter(|r| !r.is_empty())
            .unwrap_or(&id);
        let session_key = p
            .and_then(|p| p["sessionKey"].as_str())
            .or(req.session_key.as_deref());
        session.remember_exec_run(run_id, session_key);
    }
    let remaining = deadline
        .saturating_duration_since(tokio::time::Instant::now())
        .as_secs_f64()
        * 1000.0;
    let event = RequestEvent {
        id: &id,
        node_id,
        command,
        params_json: params_json.as_deref(),
        timeout_ms: remaining.ceil().max(1.0) as u64,
        idempotency_key: &req.idempotency_key,
        session_key: req.session_key.as_deref(),
    };
    let payload = serde_json::to_string(&event).unwrap_or_default();
    let frame = EventEnvelope::new("node.invoke.request", Some(&payload), None).frame(None);
    let sent = session.conn.send_text(frame) == crate::registry::Delivery::Queued;
    let untrack = |state: &GatewayState| {
        if let Some(caller) = req.caller {
            state.nodes.untrack_caller(caller, &id);
        }
    };
    if !sent {
        session.take_pending(&id);
        untrack(state);
        let err = node_error(
            Some(json!({"code": "UNAVAILABLE", "message": "failed to send invoke to node"})),
            false,
        );
        return (Cached::Err(err), false);
    }
    let result = tokio::select! {
        r = rx => r.unwrap_or_else(|_| NodeResult::failure("DISCONNECTED", format!("node disconnected ({command})"))),
        _ = tokio::time::sleep_until(deadline) => {
            if session.take_pending(&id).is_some() {
                send_cancel(&session, &id);
            }
            NodeResult::failure("TIMEOUT", "node invoke timed out")
        }
    };
    untrack(state);
    if result.ok {
        (Cached::Ok(success_payload(node_id, command, &result)), true)
    } else {
        (Cached::Err(node_error(result.error, true)), true)
    }
}

/// `node.invoke.result` from a node connection: complete the waiting call. `Ok(true)` when it
/// was still pending, `Ok(false)` for a late or unknown result.
pub fn complete(
    state: &GatewayState,
    conn_uid: u64,
    node_id: &str,
    id: &str,
    result: NodeResult,
) -> Result<bool, ErrorShape> {
    let Some(session) = state.nodes.by_conn(conn_uid) else {
        return Ok(false);
    };
    if session.node_id != node_id {
        return Err(ErrorShape::invalid_request("nodeId mismatch"));
    }
    match session.take_pending(id) {
        Some(p) => {
            if let Some(caller) = p.caller {
                state.nodes.untrack_caller(caller, id);
            }
            Ok(p.tx.send(result).is_ok())
        }
        None => Ok(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_outcomes_round_trip() {
        let ok = Cached::Ok(Arc::from(r#"{"ok":true}"#));
        assert!(matches!(Cached::decode(&ok.encode()), Cached::Ok(p) if &*p == r#"{"ok":true}"#));
        let err = Cached::Err(not_connected());
        assert!(
            matches!(Cached::decode(&err.encode()), Cached::Err(e) if e.message == "node not connected")
        );
    }

    #[test]
    fn node_errors_name_code_and_message() {
        let e = node_error(
            Some(json!({"code": "DISCONNECTED", "message": "node disconnected (system.run)"})),
            true,
        );
        assert_eq!(e.message, "DISCONNECTED: node disconnected (system.run)");
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert_eq!(
            e.details
                .as_ref()
                .map(|d| d["nodeCommandDispatched"].clone()),
            Some(json!(true))
        );
        assert_eq!(node_error(None, false).message, "node invoke failed");
    }

    #[test]
    fn success_payload_prefers_payload_json() {
        let r = NodeResult {
            ok: true,
            payload: RawValue::from_string(r#"{"a":1}"#.into()).ok(),
            payload_json: Some(r#"{"b":2}"#.into()),
            error: None,
        };
        let v: Value = serde_json::from_str(&success_payload("n", "c", &r)).unwrap_or_default();
        assert_eq!(
            v,
            json!({"ok":true,"nodeId":"n","command":"c","payload":{"b":2},"payloadJSON":"{\"b\":2}"})
        );
        let r = NodeResult {
            ok: true,
            payload: RawValue::from_string(r#"{"a":1}"#.into()).ok(),
            payload_json: None,
            error: None,
        };
        let v: Value = serde_json::from_str(&success_payload("n", "c", &r)).unwrap_or_default();
        assert_eq!(
            v,
            json!({"ok":true,"nodeId":"n","command":"c","payload":{"a":1},"payloadJSON":null})
        );
    }
}
