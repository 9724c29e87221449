//! `nodes`: paired devices through [`crate::host::NodesHost`]. Node-targeted actions become
//! `node.invoke` commands with the reference's mapping: `camera_ptz` → `camera.ptz.status` /
//! `camera.ptz.control` (`target` for set, `delta` for move), `notifications_action` →
//! `notifications.actions {key, action, replyText}`, `which` → `system.which {bins}`, read
//! actions (`camera_list`, `notifications_list`, `device_*`) without params; dedicated actions
//! answer with the node's payload, `invoke` with the whole `node.invoke` result. `invoke` refuses
//! `system.run` (shell execution is `exec host=node`) and media commands (their own actions).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::context::ToolContext;
use crate::error::ToolError;
use crate::output::ToolOutput;
use crate::registry::{Tool, ToolSpec};
use crate::schema::builtin_spec;
use crate::sessions::builtin_tool;

builtin_tool!(NodesTool, "nodes");

/// Default wait for a node command.
pub const DEFAULT_INVOKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Extra wait on top of an operation's own timeout (`location_get`).
const OPERATION_GRACE: Duration = Duration::from_secs(30);

/// Commands the generic `invoke` action refuses: shell execution goes through `exec` with
/// `host=node`, where exec approvals apply.
const BLOCKED_INVOKE: [&str; 2] = ["system.run", "system.run.prepare"];
/// Commands that return media (base64 payloads): only their dedicated actions may call them.
const MEDIA_INVOKE: [(&str, &str); 5] = [
    ("camera.snap", "camera_snap"),
    ("camera.clip", "camera_clip"),
    ("photos.latest", "photos_latest"),
    ("screen.record", "screen_record"),
    ("screen.snapshot", "screen_snapshot"),
];

/// Media actions: node command, and the argument keys forwarded (`(tool key, param key)`).
fn media_command(action: &str) -> Option<(&'static str, &'static [(&'static str, &'static str)])> {
    Some(match action {
        "camera_snap" => (
            "camera.snap",
            &[
                ("facing", "facing"),
                ("maxWidth", "maxWidth"),
                ("quality", "quality"),
                ("delayMs", "delayMs"),
                ("deviceId", "deviceId"),
            ],
        ),
        "camera_clip" => (
            "camera.clip",
            &[
                ("facing", "facing"),
                ("duration", "duration"),
                ("durationMs", "durationMs"),
                ("includeAudio", "includeAudio"),
                ("deviceId", "deviceId"),
            ],
        ),
        "photos_latest" => (
            "photos.latest",
            &[("limit", "limit"), ("maxWidth", "maxWidth")],
        ),
        "screen_record" => (
            "screen.record",
            &[
                ("duration", "duration"),
                ("durationMs", "durationMs"),
                ("fps", "fps"),
                ("screenIndex", "screenIndex"),
                ("includeAudio", "includeAudio"),
            ],
        ),
        "screen_snapshot" => (
            "screen.snapshot",
            &[("screenIndex", "screenIndex"), ("maxWidth", "maxWidth")],
        ),
        _ => return None,
    })
}

/// Read-only actions: node command, invoked with no params.
fn read_command(action: &str) -> Option<&'static str> {
    Some(match action {
        "camera_list" => "camera.list",
        "notifications_list" => "notifications.list",
        "device_status" => "device.status",
        "device_info" => "device.info",
        "device_permissions" => "device.permissions",
        "device_health" => "device.health",
        _ => return None,
    })
}

fn str_arg(m: &Map<String, Value>, k: &str) -> Option<String> {
    m.get(k)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn num_arg(m: &Map<String, Value>, k: &str) -> Option<f64> {
    m.get(k).and_then(Value::as_f64).filter(|n| n.is_finite())
}

/// The `payload` of a `node.invoke` result (what the node answered).
fn payload_of(result: Value) -> Value {
    match result {
        Value::Object(mut m) if m.contains_key("payload") => {
            m.remove("payload").unwrap_or(Value::Null)
        }
        other => other,
    }
}

fn object_or_empty(v: Value) -> Value {
    if v.is_object() {
        v
    } else {
        json!({})
    }
}

#[async_trait]
impl Tool for NodesTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let Value::Object(m) = args else {
            return Err(ToolError::invalid("nodes", "arguments must be an object"));
        };
        let action = str_arg(&m, "action").unwrap_or_default();
        let host = ctx.hosts.nodes.as_ref().ok_or_else(|| {
            ToolError::Unavailable("Nodes are not available in this context.".into())
        })?;
        let need = |key: &str, why: &str| {
            str_arg(&m, key).ok_or_else(|| ToolError::invalid("nodes", why.to_string()))
        };
        let need_node = || {
            need(
                "node",
                &format!(
                    "action={action} needs node (call nodes with action=status to list nodes)"
                ),
            )
        };
        let timeout = |key: &str| {
            m.get(key)
                .and_then(Value::as_u64)
                .filter(|t| *t > 0)
                .map_or(DEFAULT_INVOKE_TIMEOUT, Duration::from_millis)
        };
        let result = match action.as_str() {
            "status" => host.list().await?,
            "describe" => host.describe(&need_node()?).await?,
            "pending" => host.pending().await?,
            "approve" | "reject" => {
                let id = need("requestId", &format!("action={action} needs requestId"))?;
                host.resolve_pairing(&id, action == "approve").await?
            }
            "notify" => {
                let node = need_node()?;
                let title = str_arg(&m, "title").unwrap_or_default();
                let body = str_arg(&m, "body").unwrap_or_default();
                if title.is_empty() && body.is_empty() {
                    return Err(ToolError::invalid(
                        "nodes",
                        "notify needs a title or a body",
                    ));
                }
                let mut params = json!({"title": title, "body": body});
                for k in ["sound", "priority", "delivery"] {
                    if let Some(v) = str_arg(&m, k) {
                        params[k] = json!(v);
                    }
                }
                host.invoke(&node, "system.notify", params, timeout("timeoutMs"))
                    .await?;
                json!({"ok": true})
            }
            "camera_ptz" => {
                let node = need_node()?;
                let device_id = need(
                    "deviceId",
                    "camera_ptz needs deviceId from camera_list; do not guess it",
                )?;
                let op = str_arg(&m, "ptzOperation")
                    .unwrap_or_default()
                    .to_lowercase();
                if !matches!(op.as_str(), "status" | "set" | "move" | "home") {
                    return Err(ToolError::invalid(
                        "nodes",
                        "ptzOperation must be status|set|move|home",
                    ));
                }
                let axes: Map<String, Value> = ["panDegrees", "tiltDegrees", "zoomPercent"]
                    .iter()
                    .filter_map(|k| num_arg(&m, k).map(|v| ((*k).to_owned(), json!(v))))
                    .collect();
                let (command, params) = match op.as_str() {
                    "status" | "home" if !axes.is_empty() => {
                        return Err(ToolError::invalid(
                            "nodes",
                            format!("{op} does not accept axis values"),
                        ))
                    }
                    "set" | "move" if axes.is_empty() => {
                        return Err(ToolError::invalid(
                            "nodes",
                            format!("{op} requires at least one PTZ axis"),
                        ))
                    }
                    "status" => ("camera.ptz.status", json!({"deviceId": device_id})),
                    "home" => (
                        "camera.ptz.control",
                        json!({"deviceId": device_id, "operation": "home"}),
                    ),
                    _ => {
                        let key = if op == "set" { "target" } else { "delta" };
                        (
                            "camera.ptz.control",
                            json!({"deviceId": device_id, "operation": op, key: axes}),
                        )
                    }
                };
                payload_of(
                    host.invoke(&node, command, params, timeout("timeoutMs"))
                        .await?,
                )
            }
            "notifications_action" => {
                let node = need_node()?;
                let key = need(
                    "notificationKey",
                    "notifications_action needs notificationKey and notificationAction",
                )?;
                let act = str_arg(&m, "notificationAction")
                    .unwrap_or_default()
                    .to_lowercase();
                if !matches!(act.as_str(), "open" | "dismiss" | "reply") {
                    return Err(ToolError::invalid(
                        "nodes",
                        "notificationAction must be open|dismiss|reply",
                    ));
                }
                let reply = str_arg(&m, "notificationReplyText");
                if act == "reply" && reply.is_none() {
                    return Err(ToolError::invalid(
                        "nodes",
                        "notificationReplyText required when notificationAction=reply",
                    ));
                }
                let mut params = json!({"key": key, "action": act});
                if let Some(r) = reply {
                    params["replyText"] = json!(r);
                }
                object_or_empty(payload_of(
                    host.invoke(&node, "notifications.actions", params, timeout("timeoutMs"))
                        .await?,
                ))
            }
            "location_get" => {
                let node = need_node()?;
                let op_timeout = m.get("locationTimeoutMs").and_then(Value::as_u64);
                let mut params = Map::new();
                if let Some(v) = m.get("maxAgeMs").and_then(Value::as_u64) {
                    params.insert("maxAgeMs".into(), json!(v));
                }
                if let Some(v) = str_arg(&m, "desiredAccuracy")
                    .filter(|a| matches!(a.as_str(), "coarse" | "balanced" | "precise"))
                {
                    params.insert("desiredAccuracy".into(), json!(v));
                }
                if let Some(v) = op_timeout {
                    params.insert("timeoutMs".into(), json!(v));
                }
                // The invoke waits for the location timeout plus a grace period.
                let wait = match (m.get("invokeTimeoutMs").and_then(Value::as_u64), op_timeout) {
                    (Some(t), _) if t > 0 => Duration::from_millis(t),
                    (_, Some(t)) => Duration::from_millis(t) + OPERATION_GRACE,
                    _ => timeout("timeoutMs"),
                };
                payload_of(
                    host.invoke(&node, "location.get", Value::Object(params), wait)
                        .await?,
                )
            }
            "which" => {
                let node = need_node()?;
                let bins: Vec<String> = m
                    .get("bins")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(Value::as_str)
                            .map(str::to_owned)
                            .collect()
                    })
                    .unwrap_or_default();
                if bins.is_empty() {
                    return Err(ToolError::invalid("nodes", "which needs bins"));
                }
                payload_of(
                    host.invoke(
                        &node,
                        "system.which",
                        json!({"bins": bins}),
                        timeout("timeoutMs"),
                    )
                    .await?,
                )
            }
            "invoke" => {
                let node = need_node()?;
                let command = need("invokeCommand", "action=invoke needs invokeCommand")?;
                let lower = command.to_lowercase();
                if BLOCKED_INVOKE.contains(&lower.as_str()) {
                    return Err(ToolError::Denied(format!(
                        "invokeCommand \"{command}\" is reserved for shell execution; use exec with host=node instead"
                    )));
                }
                if let Some((_, dedicated)) = MEDIA_INVOKE.iter().find(|(c, _)| *c == lower) {
                    return Err(ToolError::Denied(format!(
                        "invokeCommand \"{command}\" returns media payloads and is blocked to prevent base64 context bloat; use action=\"{dedicated}\""
                    )));
                }
                let params = match str_arg(&m, "invokeParamsJson") {
                    Some(raw) => serde_json::from_str::<Value>(&raw).map_err(|e| {
                        ToolError::invalid(
                            "nodes",
                            format!("invokeParamsJson must be valid JSON: {e}"),
                        )
                    })?,
                    None => json!({}),
                };
                host.invoke(&node, &command, params, timeout("invokeTimeoutMs"))
                    .await?
            }
            other => {
                let node = need_node()?;
                if let Some(command) = read_command(other) {
                    object_or_empty(payload_of(
                        host.invoke(&node, command, json!({}), timeout("timeoutMs"))
                            .await?,
                    ))
                } else if let Some((command, keys)) = media_command(other) {
                    let mut params = Map::new();
                    for (from, to) in keys {
                        if let Some(v) = m.get(*from) {
                            params.insert((*to).to_owned(), v.clone());
                        }
                    }
                    payload_of(
                        host.invoke(&node, command, Value::Object(params), timeout("timeoutMs"))
                            .await?,
                    )
                } else {
                    return Err(ToolError::invalid(
                        "nodes",
                        format!("unknown action '{other}'"),
                    ));
                }
            }
        };
        Ok(ToolOutput::json(result))
    }
}
