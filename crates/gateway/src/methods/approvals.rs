//! `exec.approval.request|get|list|waitDecision|resolve` (operator.approvals) and
//! `exec.approvals.get|set` (operator.admin): protocol §5.2 "Exec approvals". The engine is
//! [`crate::approvals::ApprovalService`].

use std::time::Duration;

use pincer_config::redact::REDACTED;
use pincer_protocol::errors::ErrorShape;
use pincer_protocol::params::{
    EMPTY_PARAMS, EXEC_APPROVALS_SET_PARAMS, EXEC_APPROVAL_GET_PARAMS,
    EXEC_APPROVAL_REQUEST_PARAMS, EXEC_APPROVAL_RESOLVE_PARAMS, EXEC_APPROVAL_WAIT_PARAMS,
};
use pincer_store::ApprovalRecord;
use pincer_tools::exec::approvals::{ApprovalsFile, AskFallback, ExecAsk, ExecSecurity};
use pincer_tools::host::ApprovalDecision;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::approvals::{allowed_decisions, document_hash, CreateOptions, Ended};
use crate::dispatch::{MethodRegistry, OwnedCall, Reply};

pub fn register(reg: &mut MethodRegistry) {
    reg.asynchronous(
        "exec.approval.request",
        &EXEC_APPROVAL_REQUEST_PARAMS,
        |c| Box::pin(request(c)),
    );
    reg.asynchronous("exec.approval.get", &EXEC_APPROVAL_GET_PARAMS, |c| {
        Box::pin(get(c))
    });
    reg.asynchronous("exec.approval.list", &EMPTY_PARAMS, |c| Box::pin(list(c)));
    reg.asynchronous(
        "exec.approval.waitDecision",
        &EXEC_APPROVAL_WAIT_PARAMS,
        |c| Box::pin(wait_decision(c)),
    );
    reg.asynchronous(
        "exec.approval.resolve",
        &EXEC_APPROVAL_RESOLVE_PARAMS,
        |c| Box::pin(resolve(c)),
    );
    reg.asynchronous("exec.approvals.get", &EMPTY_PARAMS, |c| {
        Box::pin(document_get(c))
    });
    reg.asynchronous("exec.approvals.set", &EXEC_APPROVALS_SET_PARAMS, |c| {
        Box::pin(document_set(c))
    });
}

fn text(v: &Option<Value>) -> Option<String> {
    v.as_ref()
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestParams {
    id: Option<String>,
    command: Option<String>,
    command_argv: Option<Vec<String>>,
    #[serde(default)]
    env: Map<String, Value>,
    cwd: Option<Value>,
    node_id: Option<Value>,
    host: Option<Value>,
    security: Option<Value>,
    ask: Option<Value>,
    warning_text: Option<Value>,
    scope: Option<Value>,
    unavailable_decisions: Option<Value>,
    agent_id: Option<Value>,
    resolved_path: Option<Value>,
    session_key: Option<Value>,
    session_id: Option<Value>,
    run_id: Option<Value>,
    tool_call_id: Option<Value>,
    turn_source_channel: Option<Value>,
    turn_source_to: Option<Value>,
    turn_source_account_id: Option<Value>,
    turn_source_thread_id: Option<Value>,
    require_delivery_route: Option<bool>,
    suppress_delivery: Option<bool>,
    timeout_ms: Option<u64>,
    two_phase: Option<bool>,
}

fn final_answer(record: &ApprovalRecord, ended: Option<&Ended>) -> Value {
    json!({
        "id": record.id,
        "decision": ended.and_then(|e| e.decision.clone()),
        "createdAtMs": record.created_at_ms,
        "expiresAtMs": record.expires_at_ms,
    })
}

async fn request(call: OwnedCall) -> Reply {
    let p: RequestParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let host = text(&p.host);
    let node_id = text(&p.node_id);
    let command = p
        .command
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .or_else(|| p.command_argv.as_ref().map(|a| a.join(" ")))
        .unwrap_or_default();
    if host.as_deref() == Some("node") && node_id.is_none() {
        return Reply::Error(ErrorShape::invalid_request(
            "nodeId is required for host=node",
        ));
    }
    if command.trim().is_empty() {
        return Reply::Error(ErrorShape::invalid_request("command is required"));
    }
    if p.id.as_deref().is_some_and(|id| id.starts_with("plugin:")) {
        return Reply::Error(ErrorShape::invalid_request(
            "approval ids starting with plugin: are reserved",
        ));
    }
    let ask = text(&p.ask);
    let env_keys: Vec<&String> = p.env.keys().collect();
    let request = json!({
        "command": command,
        "commandArgv": p.command_argv,
        "envKeys": if env_keys.is_empty() { Value::Null } else { json!(env_keys) },
        "cwd": text(&p.cwd),
        "nodeId": node_id,
        "host": host,
        "security": text(&p.security),
        "ask": ask,
        "warningText": text(&p.warning_text),
        "scope": p.scope,
        "allowedDecisions": allowed_decisions(ask.as_deref(), p.unavailable_decisions.as_ref()),
        "agentId": text(&p.agent_id),
        "resolvedPath": text(&p.resolved_path),
        "sessionKey": text(&p.session_key),
        "sessionId": text(&p.session_id),
        "runId": text(&p.run_id),
        "toolCallId": text(&p.tool_call_id),
        "turnSourceChannel": text(&p.turn_source_channel),
        "turnSourceTo": text(&p.turn_source_to),
        "turnSourceAccountId": text(&p.turn_source_account_id),
        "turnSourceThreadId": p.turn_source_thread_id,
    });
    let service = &call.state.approvals;
    let created = match service
        .create(
            request,
            CreateOptions {
                id: p.id.clone(),
                timeout_ms: p.timeout_ms,
                requester: Some(call.conn.info.id),
                require_route: p.require_delivery_route != Some(false)
                    && p.suppress_delivery != Some(true),
            },
        )
        .await
    {
        Ok(c) => c,
        Err(e) => return Reply::Error(e),
    };
    if let Some(ended) = &created.ended {
        return Reply::json(&final_answer(&created.record, Some(ended)));
    }
    if p.two_phase == Some(true) {
        call.respond(Reply::json(&json!({
            "status": "accepted",
            "id": created.record.id,
            "deliveryRoute": if created.recipients > 0 { "approval-client" } else { "none" },
            "createdAtMs": created.record.created_at_ms,
            "expiresAtMs": created.record.expires_at_ms,
        })));
    }
    match service.wait(&created.record.id, None).await {
        Ok((record, ended)) => Reply::json(&final_answer(&record, ended.as_ref())),
        Err(e) => Reply::Error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdParams {
    id: String,
    timeout_ms: Option<u64>,
}

async fn get(call: OwnedCall) -> Reply {
    let p: IdParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    match call.state.approvals.pending_record(&p.id) {
        Ok(r) => {
            let q = &r.request;
            Reply::json(&json!({
                "id": r.id,
                "commandText": q["command"],
                "commandPreview": q.get("commandPreview").cloned().unwrap_or(Value::Null),
                "allowedDecisions": q.get("allowedDecisions").cloned()
                    .unwrap_or_else(|| json!(["allow-once", "allow-always", "deny"])),
                "host": q.get("host").cloned().unwrap_or(Value::Null),
                "nodeId": q.get("nodeId").cloned().unwrap_or(Value::Null),
                "agentId": q.get("agentId").cloned().unwrap_or(Value::Null),
                "expiresAtMs": r.expires_at_ms,
            }))
        }
        Err(e) => Reply::Error(e),
    }
}

/// One pending approval as `exec.approval.list` / `exec.approval.requested` show it.
pub fn pending_json(r: &ApprovalRecord) -> Value {
    json!({
        "id": r.id,
        "request": r.request,
        "createdAtMs": r.created_at_ms,
        "expiresAtMs": r.expires_at_ms,
        "approvalKind": "exec",
    })
}

async fn list(call: OwnedCall) -> Reply {
    let list: Vec<Value> = call
        .state
        .approvals
        .list_pending()
        .iter()
        .map(pending_json)
        .collect();
    Reply::json(&list)
}

async fn wait_decision(call: OwnedCall) -> Reply {
    let p: IdParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let limit = p.timeout_ms.map(Duration::from_millis);
    match call.state.approvals.wait(&p.id, limit).await {
        Ok((record, ended)) => {
            let mut out = final_answer(&record, ended.as_ref());
            if let Some(e) = ended.filter(|e| e.terminal_reason != "user") {
                out["terminalReason"] = json!(e.terminal_reason);
            }
            Reply::json(&out)
        }
        Err(e) => Reply::Error(e),
    }
}

#[derive(Deserialize)]
struct ResolveParams {
    id: String,
    decision: String,
}

async fn resolve(call: OwnedCall) -> Reply {
    let p: ResolveParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let decision = match p.decision.as_str() {
        "allow-once" => ApprovalDecision::AllowOnce,
        "allow-always" => ApprovalDecision::AllowAlways,
        "deny" => ApprovalDecision::Deny,
        _ => return Reply::Error(ErrorShape::invalid_request("invalid decision")),
    };
    let service = &call.state.approvals;
    if decision == ApprovalDecision::AllowAlways {
        if let Ok(r) = service.pending_record(&p.id) {
            let allowed = r.request["allowedDecisions"]
                .as_array()
                .is_none_or(|a| a.iter().any(|d| d == "allow-always"));
            if !allowed {
                return Reply::Error(
                    ErrorShape::invalid_request("allow-always is unavailable for this command")
                        .with_details(json!({"reason": "APPROVAL_ALLOW_ALWAYS_UNAVAILABLE"})),
                );
            }
        }
    }
    let by = call.conn.info.client_id.as_str().to_owned();
    match service.resolve(&p.id, decision, Some(by)).await {
        Ok(_) => Reply::json(&json!({"ok": true})),
        Err(e) => Reply::Error(e),
    }
}

/// `exec.approvals.get|set` payload: the document with the socket token redacted, its hash
/// (the `baseHash` for the next set) and the defaults that apply.
fn document_payload(
    state: &crate::state::GatewayState,
    file: &ApprovalsFile,
    raw: Option<&str>,
) -> Value {
    let mut shown = serde_json::to_value(file).unwrap_or_else(|_| json!({"version": 1}));
    if let Some(token) = shown
        .get_mut("socket")
        .and_then(Value::as_object_mut)
        .and_then(|s| s.get_mut("token"))
    {
        *token = json!(REDACTED);
    }
    let d = &file.defaults;
    json!({
        "path": format!("{}#exec_approvals_config", state.store.path().display()),
        "exists": raw.is_some(),
        "hash": document_hash(raw.unwrap_or("")),
        "file": shown,
        "resolvedDefaults": {
            "security": d.security.unwrap_or(ExecSecurity::Full).as_str(),
            "ask": d.ask.unwrap_or(ExecAsk::Off).as_str(),
            "askFallback": match d.ask_fallback.unwrap_or_default() {
                AskFallback::Deny => "deny",
                AskFallback::Allowlist => "allowlist",
                AskFallback::Full => "full",
            },
            "autoAllowSkills": d.auto_allow_skills.unwrap_or(false),
        },
    })
}

async fn document_get(call: OwnedCall) -> Reply {
    match call.state.approvals.document().await {
        Ok((file, raw)) => Reply::json(&document_payload(&call.state, &file, raw.as_deref())),
        Err(e) => Reply::Error(ErrorShape::unavailable(e.to_string())),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetParams {
    file: Value,
    base_hash: Option<String>,
}

/// Strict parse of an incoming document: the shape `pincer-tools` reads, with readable errors
/// for unknown enum values and a wrong version.
fn parse_document(value: Value) -> Result<ApprovalsFile, ErrorShape> {
    let file: ApprovalsFile = serde_json::from_value(value)
        .map_err(|e| ErrorShape::invalid_request(format!("invalid exec approvals file: {e}")))?;
    if file.version != 1 {
        return Err(ErrorShape::invalid_request(format!(
            "invalid exec approvals file: version must be 1 (got {})",
            file.version
        )));
    }
    Ok(file)
}

async fn document_set(call: OwnedCall) -> Reply {
    let p: SetParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let mut file = match parse_document(p.file) {
        Ok(f) => f,
        Err(e) => return Reply::Error(e),
    };
    let service = &call.state.approvals;
    // A redacted socket token means "keep the stored one".
    if file
        .socket
        .as_ref()
        .and_then(|s| s.get("token"))
        .is_some_and(|t| t == REDACTED)
    {
        if let Ok((current, _)) = service.document().await {
            if let (Some(sock), Some(stored)) = (
                file.socket.as_mut().and_then(Value::as_object_mut),
                current.socket.as_ref().and_then(|s| s.get("token")),
            ) {
                sock.insert("token".into(), stored.clone());
            }
        }
    }
    match service.replace_document(file.clone(), p.base_hash).await {
        Ok(raw) => Reply::json(&document_payload(&call.state, &file, Some(&raw))),
        Err(e) => Reply::Error(e),
    }
}
