//! `node.invoke` (operator, dynamic scope) and the node side: `node.invoke.result`,
//! `node.invoke.progress`, `node.event` (spec §5.2 "Nodes", §6.2). The invoke engine is
//! [`crate::nodes::invoke`].

use pincer_protocol::errors::ErrorShape;
use pincer_protocol::params::{
    NODE_EVENT_PARAMS, NODE_INVOKE_PARAMS, NODE_INVOKE_PROGRESS_PARAMS, NODE_INVOKE_RESULT_PARAMS,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::dispatch::{CallCtx, MethodRegistry, OwnedCall, Reply};
use crate::events::PublishOpts;
use crate::nodes::invoke::{self, Cached, InvokeRequest};
use crate::nodes::{Activity, NodeResult};
use crate::state::{SystemEvent, MAX_SYSTEM_EVENTS};
use crate::util;

pub fn register(reg: &mut MethodRegistry) {
    reg.asynchronous("node.invoke", &NODE_INVOKE_PARAMS, |c| {
        Box::pin(node_invoke(c))
    });
    reg.sync(
        "node.invoke.result",
        &NODE_INVOKE_RESULT_PARAMS,
        invoke_result,
    );
    reg.sync(
        "node.invoke.progress",
        &NODE_INVOKE_PROGRESS_PARAMS,
        invoke_progress,
    );
    reg.asynchronous("node.event", &NODE_EVENT_PARAMS, |c| {
        Box::pin(node_event(c))
    });
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvokeParams {
    node_id: String,
    command: String,
    #[serde(default)]
    params: Option<Value>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    idempotency_key: String,
    #[serde(default)]
    session_key: Option<String>,
}

async fn node_invoke(call: OwnedCall) -> Reply {
    let p: InvokeParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let req = InvokeRequest {
        node_id: p.node_id,
        command: p.command,
        params: p.params,
        timeout_ms: p.timeout_ms,
        idempotency_key: p.idempotency_key,
        session_key: p.session_key.filter(|s| !s.trim().is_empty()),
        caller: Some(call.conn.info.id),
        caller_is_admin: call.conn.info.scopes.is_admin(),
    };
    match invoke::invoke(&call.state, req).await {
        Cached::Ok(payload) => Reply::Json(payload.to_string()),
        Cached::Err(e) => Reply::Error(e),
    }
}

/// The node id a node connection speaks for (its device id).
fn caller_node_id<'a>(ctx: &'a CallCtx<'_>) -> &'a str {
    ctx.conn
        .info
        .device_id
        .as_deref()
        .unwrap_or(ctx.conn.info.client_id.as_str())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResultParams {
    id: String,
    node_id: String,
    ok: bool,
    #[serde(default)]
    payload: Option<Box<RawValue>>,
    #[serde(default, rename = "payloadJSON")]
    payload_json: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

fn invoke_result(ctx: &CallCtx<'_>) -> Reply {
    let p: ResultParams = match ctx.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    if p.node_id != caller_node_id(ctx) {
        return Reply::Error(ErrorShape::invalid_request("nodeId mismatch"));
    }
    let payload_json = match p.payload_json {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            return Reply::Error(ErrorShape::invalid_params(
                "node.invoke.result",
                "at /payloadJSON: must be string",
            ))
        }
    };
    let error = match p.error {
        None | Some(Value::Null) => None,
        Some(e @ Value::Object(_)) => Some(e),
        Some(_) => {
            return Reply::Error(ErrorShape::invalid_params(
                "node.invoke.result",
                "at /error: must be object",
            ))
        }
    };
    let result = NodeResult {
        ok: p.ok,
        payload: p.payload,
        payload_json,
        error,
    };
    match invoke::complete(ctx.state, ctx.conn.info.id, &p.node_id, &p.id, result) {
        Ok(true) => Reply::Json(r#"{"ok":true}"#.into()),
        Ok(false) => {
            tracing::debug!(id = %p.id, node = %p.node_id, "late invoke result ignored");
            Reply::Json(r#"{"ok":true,"ignored":true}"#.into())
        }
        Err(e) => Reply::Error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProgressParams {
    invoke_id: String,
    node_id: String,
    chunk: String,
}

/// Bytes of one progress chunk (the schema counts characters; the reference caps bytes).
const MAX_PROGRESS_CHUNK_BYTES: usize = 16_384;

fn invoke_progress(ctx: &CallCtx<'_>) -> Reply {
    let p: ProgressParams = match ctx.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    if p.node_id != caller_node_id(ctx) {
        return Reply::Error(ErrorShape::invalid_request("nodeId mismatch"));
    }
    if p.chunk.len() > MAX_PROGRESS_CHUNK_BYTES {
        return Reply::Error(ErrorShape::invalid_request("progress chunk too large"));
    }
    let live = ctx
        .state
        .nodes
        .by_conn(ctx.conn.info.id)
        .is_some_and(|s| s.node_id == p.node_id && s.has_pending(&p.invoke_id));
    Reply::json(&json!({"ok": true, "ignored": !live}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventParams {
    event: String,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default, rename = "payloadJSON")]
    payload_json: Option<String>,
}

fn event_result(event: &str, handled: bool, reason: Option<&str>) -> Reply {
    let mut v = json!({"ok": true, "event": event, "handled": handled});
    if let (Some(r), Some(m)) = (reason, v.as_object_mut()) {
        m.insert("reason".into(), json!(r));
    }
    Reply::json(&v)
}

/// Longest command/output text copied into a system event.
const MAX_EXEC_EVENT_CHARS: usize = 2_000;

fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(MAX_EXEC_EVENT_CHARS) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

async fn node_event(call: OwnedCall) -> Reply {
    let p: EventParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    // `payloadJSON` wins over `payload`.
    let payload: Option<Value> = match (&p.payload_json, p.payload) {
        (Some(text), _) => serde_json::from_str(text).ok(),
        (None, v) => v,
    };
    let state = &call.state;
    let Some(session) = state.nodes.by_conn(call.conn.info.id) else {
        return event_result(&p.event, false, Some("stale_connection"));
    };
    let obj = payload.as_ref().and_then(Value::as_object);
    match p.event.as_str() {
        "exec.started" | "exec.finished" | "exec.denied" => {
            let Some(obj) = obj else {
                return event_result(&p.event, false, Some("invalid_payload"));
            };
            let run_id = obj.get("runId").and_then(Value::as_str).unwrap_or_default();
            let terminal = p.event != "exec.started";
            let Some(session_key) = session.authorize_exec_event(run_id, terminal) else {
                return event_result(&p.event, false, Some("unmatched_exec_event"));
            };
            let command = obj
                .get("command")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let node = &session.node_id;
            let text = match p.event.as_str() {
                "exec.started" => {
                    let mut t = format!("Exec started (node={node} id={run_id})");
                    if !command.is_empty() {
                        t.push_str(&format!(": {}", clip(command)));
                    }
                    Some(t)
                }
                "exec.finished" => {
                    let timed_out = obj.get("timedOut") == Some(&Value::Bool(true));
                    let code = obj.get("exitCode").and_then(Value::as_i64);
                    let output = obj
                        .get("output")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let label = if timed_out {
                        "timeout".to_string()
                    } else {
                        format!("code {}", code.map_or("?".into(), |c| c.to_string()))
                    };
                    (timed_out || code != Some(0) || !output.trim().is_empty()).then(|| {
                        let mut t = format!("Exec finished (node={node} id={run_id}, {label})");
                        if !output.trim().is_empty() {
                            t.push('\n');
                            t.push_str(&clip(output));
                        }
                        t
                    })
                }
                _ => None,
            };
            if let Some(text) = text {
                let mut q = state.system_events.lock();
                if q.len() >= MAX_SYSTEM_EVENTS {
                    q.pop_front();
                }
                q.push_back(SystemEvent {
                    text,
                    session_key,
                    ts: util::now_ms(),
                });
            }
            event_result(&p.event, true, None)
        }
        "node.presence.alive" => {
            if obj.is_none() {
                return event_result(&p.event, false, Some("invalid_payload"));
            }
            let reason = obj
                .and_then(|o| o.get("trigger"))
                .and_then(Value::as_str)
                .unwrap_or("background")
                .to_string();
            let id = session.node_id.clone();
            let now = util::now_ms() as i64;
            let persisted = state
                .pairing
                .store()
                .nodes_write(move |tx| {
                    let Some(mut s) = tx.surface(&id)? else {
                        return Ok(false);
                    };
                    s.last_seen_at_ms = Some(now);
                    s.last_seen_reason = Some(reason);
                    tx.put_surface(&s)?;
                    Ok(true)
                })
                .await;
            match persisted {
                Ok(true) => event_result(&p.event, true, Some("persisted")),
                Ok(false) => event_result(&p.event, false, Some("unapproved")),
                Err(_) => event_result(&p.event, false, Some("persist_failed")),
            }
        }
        "node.presence.activity" => {
            let Some(obj) = obj else {
                return event_result(&p.event, false, Some("invalid_payload"));
            };
            let node_id = session.node_id.clone();
            if obj.get("action").and_then(Value::as_str) == Some("clear") {
                let cleared = session.activity.lock().take().is_some();
                if cleared {
                    state.bus.publish(
                        "node.presence",
                        &json!({"nodeId": node_id, "lastActiveAtMs": null, "presenceUpdatedAtMs": null}),
                        PublishOpts::droppable(),
                    );
                }
                return event_result(
                    &p.event,
                    true,
                    Some(if cleared { "cleared" } else { "already_clear" }),
                );
            }
            let Some(idle) = obj
                .get("idleSeconds")
                .and_then(Value::as_u64)
                .filter(|s| *s <= 2_592_000)
            else {
                return event_result(&p.event, false, Some("invalid_payload"));
            };
            let from_app = obj.get("source").and_then(Value::as_str) == Some("app");
            let allowed = from_app
                || session.with_effective(|e| {
                    e.permissions
                        .as_ref()
                        .and_then(|p| p.get("accessibility"))
                        .copied()
                        .unwrap_or(false)
                });
            if !allowed {
                return event_result(&p.event, false, Some("permission_required"));
            }
            let now = util::now_ms();
            let activity = Activity {
                last_active_at_ms: now.saturating_sub(idle * 1000),
                presence_updated_at_ms: now,
            };
            *session.activity.lock() = Some(activity);
            state.bus.publish(
                "node.presence",
                &json!({"nodeId": node_id, "lastActiveAtMs": activity.last_active_at_ms, "presenceUpdatedAtMs": activity.presence_updated_at_ms}),
                PublishOpts::droppable(),
            );
            event_result(&p.event, true, Some("updated"))
        }
        "node.host.stats" => {
            let valid = obj.is_some_and(|o| {
                let n = |k: &str| o.get(k).and_then(Value::as_u64);
                matches!(n("cpuCount"), Some(1..=4096))
                    && n("memoryTotalBytes").is_some()
                    && n("memoryFreeBytes").is_some()
                    && n("memoryFreeBytes") <= n("memoryTotalBytes")
                    && n("diskAvailableBytes").is_some() == n("diskTotalBytes").is_some()
                    && n("diskAvailableBytes") <= n("diskTotalBytes")
            });
            if !valid {
                return event_result(&p.event, false, Some("invalid_payload"));
            }
            let stats = payload.clone().unwrap_or_default();
            *session.host_stats.lock() = Some(stats.clone());
            state.bus.publish(
                "node.hostStats",
                &json!({"nodeId": session.node_id, "hostStats": stats}),
                PublishOpts::droppable(),
            );
            event_result(&p.event, true, Some("updated"))
        }
        _ => event_result(&p.event, false, Some("unsupported_event")),
    }
}
