//! `message`: proactive channel sends through [`crate::host::MessagingHost`].

use async_trait::async_trait;
use serde_json::{json, Value};

use crate::context::ToolContext;
use crate::error::ToolError;
use crate::output::ToolOutput;
use crate::registry::{Tool, ToolSpec};
use crate::schema::builtin_spec;
use crate::sessions::builtin_tool;

builtin_tool!(MessageTool, "message");

fn has_str(m: &serde_json::Map<String, Value>, k: &str) -> bool {
    m.get(k)
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty())
}

#[async_trait]
impl Tool for MessageTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let Value::Object(mut m) = args else {
            return Err(ToolError::invalid("message", "arguments must be an object"));
        };
        let action = m
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        // The gateway connection is ours; a model-supplied gateway URL/token is never used.
        m.remove("gatewayUrl");
        m.remove("gatewayToken");
        let has_payload = has_str(&m, "message")
            || has_str(&m, "media")
            || has_str(&m, "buffer")
            || m.get("attachments")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
        let targets = m.get("targets").and_then(Value::as_array).map_or(0, |t| {
            t.iter()
                .filter(|v| v.as_str().is_some_and(|s| !s.trim().is_empty()))
                .count()
        });
        match action.as_str() {
            "send" => {
                if !has_payload {
                    return Err(ToolError::invalid(
                        "message",
                        "action=send needs message or another send payload (media, buffer, attachments)",
                    ));
                }
                if targets > 1 {
                    return Err(ToolError::invalid(
                        "message",
                        "action=send takes one target; use action=broadcast for several",
                    ));
                }
            }
            "broadcast" => {
                if !has_payload {
                    return Err(ToolError::invalid(
                        "message",
                        "action=broadcast needs message or media",
                    ));
                }
                if targets == 0 && !has_str(&m, "target") {
                    return Err(ToolError::invalid(
                        "message",
                        "action=broadcast needs targets",
                    ));
                }
            }
            other => {
                return Err(ToolError::invalid(
                    "message",
                    format!("unsupported action '{other}'"),
                ));
            }
        }
        if let Some(buffer) = m.get("buffer").and_then(Value::as_str) {
            let data = buffer.split_once(";base64,").map_or(buffer, |(_, d)| d);
            use base64::Engine as _;
            if base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .is_err()
            {
                return Err(ToolError::invalid(
                    "message",
                    "buffer is not valid base64 / data URL",
                ));
            }
        }
        if m.get("dryRun").and_then(Value::as_bool) == Some(true) {
            return Ok(ToolOutput::json(json!({
                "status": "dry_run",
                "action": action,
                "request": Value::Object(m),
            })));
        }
        // A repeat of the same call (a retried turn) must not send twice.
        if !has_str(&m, "idempotencyKey") {
            if let (Some(run), Some(call)) = (&ctx.run_id, &ctx.tool_call_id) {
                m.insert("idempotencyKey".into(), json!(format!("{run}:{call}")));
            }
        }
        let host = ctx.hosts.messaging.as_ref().ok_or_else(|| {
            ToolError::Unavailable("Channel messaging is not available in this context.".into())
        })?;
        let result = host
            .message(&ctx.requester(), &action, Value::Object(m))
            .await?;
        Ok(ToolOutput::json(result))
    }
}
