//! `nodes`: paired devices through [`crate::host::NodesHost`]. Node-targeted actions become
//! `node.invoke` commands.

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

/// Node command for an action, and the argument keys it forwards (`(tool key, param key)`).
fn command_for(action: &str) -> Option<(&'static str, &'static [(&'static str, &'static str)])> {
    Some(match action {
        "notify" => (
            "system.notify",
            &[
                ("title", "title"),
                ("body", "body"),
                ("sound", "sound"),
                ("priority", "priority"),
                ("delivery", "delivery"),
            ],
        ),
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
        "camera_list" => ("camera.list", &[]),
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
        "camera_ptz" => (
            "camera.ptz",
            &[
                ("deviceId", "deviceId"),
                ("ptzOperation", "operation"),
                ("panDegrees", "panDegrees"),
                ("tiltDegrees", "tiltDegrees"),
                ("zoomPercent", "zoomPercent"),
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
        "location_get" => (
            "location.get",
            &[
                ("maxAgeMs", "maxAgeMs"),
                ("locationTimeoutMs", "timeoutMs"),
                ("desiredAccuracy", "desiredAccuracy"),
            ],
        ),
        "notifications_list" => ("notifications.list", &[("limit", "limit")]),
        "notifications_action" => (
            "notifications.action",
            &[
                ("notificationKey", "key"),
                ("notificationAction", "action"),
                ("notificationReplyText", "replyText"),
            ],
        ),
        "device_status" => ("device.status", &[]),
        "device_info" => ("device.info", &[]),
        "device_permissions" => ("device.permissions", &[]),
        "device_health" => ("device.health", &[]),
        "which" => ("system.which", &[("bins", "bins")]),
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
        let need_node = || {
            str_arg(&m, "node").ok_or_else(|| {
                ToolError::invalid(
                    "nodes",
                    format!("action={action} needs node (use action=status to list nodes)"),
                )
            })
        };
        let timeout = |key: &str| {
            m.get(key)
                .and_then(Value::as_u64)
                .map_or(DEFAULT_INVOKE_TIMEOUT, Duration::from_millis)
        };
        let result = match action.as_str() {
            "status" => host.list().await?,
            "describe" => host.describe(&need_node()?).await?,
            "pending" => host.pending().await?,
            "approve" | "reject" => {
                let id = str_arg(&m, "requestId").ok_or_else(|| {
                    ToolError::invalid("nodes", format!("action={action} needs requestId"))
                })?;
                host.resolve_pairing(&id, action == "approve").await?
            }
            "invoke" => {
                let node = need_node()?;
                let command = str_arg(&m, "invokeCommand").ok_or_else(|| {
                    ToolError::invalid("nodes", "action=invoke needs invokeCommand")
                })?;
                let params = match str_arg(&m, "invokeParamsJson") {
                    Some(raw) => serde_json::from_str::<Value>(&raw).map_err(|e| {
                        ToolError::invalid(
                            "nodes",
                            format!("invokeParamsJson is not valid JSON: {e}"),
                        )
                    })?,
                    None => json!({}),
                };
                host.invoke(&node, &command, params, timeout("invokeTimeoutMs"))
                    .await?
            }
            other => {
                let (command, keys) = command_for(other).ok_or_else(|| {
                    ToolError::invalid("nodes", format!("unknown action '{other}'"))
                })?;
                let node = need_node()?;
                if other == "camera_ptz" && str_arg(&m, "deviceId").is_none() {
                    return Err(ToolError::invalid(
                        "nodes",
                        "camera_ptz needs deviceId from camera_list; do not guess it",
                    ));
                }
                if other == "notifications_action"
                    && (str_arg(&m, "notificationKey").is_none()
                        || str_arg(&m, "notificationAction").is_none())
                {
                    return Err(ToolError::invalid(
                        "nodes",
                        "notifications_action needs notificationKey and notificationAction",
                    ));
                }
                if other == "which" && !m.contains_key("bins") {
                    return Err(ToolError::invalid("nodes", "which needs bins"));
                }
                let mut params = Map::new();
                for (from, to) in keys {
                    if let Some(v) = m.get(*from) {
                        params.insert((*to).to_owned(), v.clone());
                    }
                }
                host.invoke(&node, command, Value::Object(params), timeout("timeoutMs"))
                    .await?
            }
        };
        Ok(ToolOutput::json(result))
    }
}
