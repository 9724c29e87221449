//! `automations` (alias `cron`): the gateway scheduler through [`crate::host::AutomationsHost`].
//! The tool checks the action and the arguments each action needs (the schema cannot say
//! "`jobId` for `get`"), refuses remote-gateway overrides, and passes the rest to the host,
//! which answers with the same payloads as the `cron.*` methods.

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::context::ToolContext;
use crate::error::ToolError;
use crate::output::ToolOutput;
use crate::registry::{Tool, ToolSpec};
use crate::schema::builtin_spec;

/// The tool's name; `cron` is an alias.
pub const NAME: &str = "automations";

pub struct AutomationsTool {
    spec: ToolSpec,
}

impl Default for AutomationsTool {
    fn default() -> Self {
        Self {
            spec: builtin_spec(NAME)
                .unwrap_or_else(|| ToolSpec::new(NAME, "", json!({"type": "object"}))),
        }
    }
}

fn invalid(message: impl Into<String>) -> ToolError {
    ToolError::InvalidArgs {
        tool: NAME.into(),
        message: message.into(),
    }
}

fn has_text(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key)
        .and_then(Value::as_str)
        .is_some_and(|s| !s.trim().is_empty())
}

/// `jobId` (canonical) or `id` (compat) as `jobId`.
fn normalize_job_id(m: &mut Map<String, Value>) -> Result<(), ToolError> {
    if !has_text(m, "jobId") {
        match m.remove("id") {
            Some(Value::String(id)) if !id.trim().is_empty() => {
                m.insert("jobId".into(), Value::String(id.trim().to_string()));
            }
            _ => return Err(invalid("this action needs jobId")),
        }
    }
    Ok(())
}

/// Checks what an action needs before the host sees it.
pub fn prepare(args: Value) -> Result<(String, Map<String, Value>), ToolError> {
    let Value::Object(mut m) = args else {
        return Err(invalid("arguments must be an object"));
    };
    let action = match m.remove("action") {
        Some(Value::String(a)) => a,
        _ => return Err(invalid("action is required")),
    };
    if has_text(&m, "gatewayUrl") || has_text(&m, "gatewayToken") {
        return Err(invalid(
            "gatewayUrl/gatewayToken are not supported: this tool manages the gateway it runs in",
        ));
    }
    m.remove("gatewayUrl");
    m.remove("gatewayToken");
    m.remove("timeoutMs");
    match action.as_str() {
        "status" | "list" => {}
        "get" | "remove" | "run" | "runs" => normalize_job_id(&mut m)?,
        "add" => {
            if !m.get("job").is_some_and(Value::is_object) {
                return Err(invalid(
                    "add needs job (an object with schedule and payload)",
                ));
            }
        }
        "update" => {
            normalize_job_id(&mut m)?;
            if !m.get("job").is_some_and(Value::is_object) {
                return Err(invalid(
                    "update needs job (the fields to change; null clears a field)",
                ));
            }
        }
        "wake" => {
            if !has_text(&m, "text") {
                return Err(invalid("wake needs text"));
            }
        }
        "next_check" => {
            if !has_text(&m, "in") {
                return Err(invalid("next_check needs in (a duration such as \"30m\")"));
            }
        }
        other => return Err(invalid(format!("unknown action {other:?}"))),
    }
    Ok((action, m))
}

#[async_trait]
impl Tool for AutomationsTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let (action, args) = prepare(args)?;
        let host = ctx.hosts.automations.as_ref().ok_or_else(|| {
            ToolError::Unavailable("Automations are not available in this context.".into())
        })?;
        let result = host.call(&ctx.requester(), &action, args).await?;
        Ok(ToolOutput::json(result))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn actions_need_their_arguments() {
        assert!(prepare(json!({"action": "list"})).is_ok());
        let (a, m) = prepare(json!({"action": "get", "id": "abc"})).unwrap();
        assert_eq!((a.as_str(), &m["jobId"]), ("get", &json!("abc")));
        for (args, needle) in [
            (json!({"action": "get"}), "jobId"),
            (json!({"action": "add"}), "needs job"),
            (json!({"action": "update", "jobId": "x"}), "needs job"),
            (json!({"action": "wake"}), "needs text"),
            (json!({"action": "next_check"}), "needs in"),
            (json!({"action": "explode"}), "unknown action"),
            (
                json!({"action": "list", "gatewayUrl": "ws://elsewhere"}),
                "not supported",
            ),
        ] {
            let err = prepare(args.clone()).unwrap_err().to_string();
            assert!(err.contains(needle), "{args}: {err}");
        }
        let (_, m) = prepare(json!({"action": "status", "timeoutMs": 5})).unwrap();
        assert!(m.is_empty());
    }

    #[test]
    fn the_reference_schema_is_used() {
        let t = AutomationsTool::default();
        assert_eq!(t.name(), "automations");
        assert!(t.description().contains("Gateway scheduler"));
        assert!(t.parameters()["properties"]["job"].is_object());
    }
}
