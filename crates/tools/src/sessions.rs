//! Session tools backed by [`crate::host::SessionsHost`]: `sessions_list`, `sessions_history`,
//! `sessions_send`, `sessions_spawn`, `session_status`. The tool side validates the cross-field
//! rules the schemas cannot express, applies caps, and shapes errors; the host applies
//! visibility (`tools.sessions.visibility`) and does the work.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{json, Map, Value};

use crate::context::ToolContext;
use crate::error::ToolError;
use crate::host::SessionsHost;
use crate::output::ToolOutput;
use crate::registry::{Tool, ToolSpec};
use crate::schema::builtin_spec;

/// `sessions_list` page size: default and the ceiling of `limitApplied`.
pub const LIST_DEFAULT_LIMIT: u64 = 100;
pub const LIST_MAX_LIMIT: u64 = 200;

fn host(ctx: &ToolContext) -> Result<&Arc<dyn SessionsHost>, ToolError> {
    ctx.hosts.sessions.as_ref().ok_or_else(|| {
        ToolError::Unavailable("Session tools are not available in this context.".into())
    })
}

fn obj(args: Value) -> Map<String, Value> {
    match args {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn nonblank(m: &Map<String, Value>, key: &str) -> Option<String> {
    m.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

macro_rules! builtin_tool {
    ($ty:ident, $name:literal) => {
        pub struct $ty {
            spec: ToolSpec,
        }
        impl Default for $ty {
            fn default() -> Self {
                Self {
                    spec: builtin_spec($name)
                        .unwrap_or_else(|| ToolSpec::new($name, "", json!({"type": "object"}))),
                }
            }
        }
    };
}
pub(crate) use builtin_tool;

builtin_tool!(SessionsListTool, "sessions_list");
builtin_tool!(SessionsHistoryTool, "sessions_history");
builtin_tool!(SessionsSendTool, "sessions_send");
builtin_tool!(SessionsSpawnTool, "sessions_spawn");
builtin_tool!(SessionStatusTool, "session_status");

#[async_trait]
impl Tool for SessionsListTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let mut m = obj(args);
        let requested = m
            .get("limit")
            .and_then(Value::as_u64)
            .unwrap_or(LIST_DEFAULT_LIMIT);
        let applied = requested.clamp(1, LIST_MAX_LIMIT);
        m.insert("limit".into(), json!(applied));
        let mut result = host(ctx)?.list(&ctx.requester(), Value::Object(m)).await?;
        if let Value::Object(r) = &mut result {
            r.entry("limitApplied").or_insert(json!(applied));
        }
        Ok(ToolOutput::json(result))
    }
}

#[async_trait]
impl Tool for SessionsHistoryTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let m = obj(args);
        if m.contains_key("sessionId") && !m.contains_key("messageId") {
            return Err(ToolError::invalid(
                "sessions_history",
                "sessionId requires messageId; omit both for the latest tail",
            ));
        }
        let key = nonblank(&m, "sessionKey").ok_or_else(|| {
            ToolError::invalid("sessions_history", "sessionKey must not be blank")
        })?;
        let mut m = m;
        if key == "current" {
            m.insert("sessionKey".into(), json!(ctx.session_key.as_ref()));
        }
        let result = host(ctx)?
            .history(&ctx.requester(), Value::Object(m))
            .await?;
        Ok(ToolOutput::json(result))
    }
}

#[async_trait]
impl Tool for SessionsSendTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let mut m = obj(args);
        if nonblank(&m, "message").is_none() {
            return Err(ToolError::invalid(
                "sessions_send",
                "message must not be blank",
            ));
        }
        let key = nonblank(&m, "sessionKey");
        if key.is_none() && nonblank(&m, "label").is_none() && nonblank(&m, "agentId").is_none() {
            return Err(ToolError::invalid(
                "sessions_send",
                "provide sessionKey, label or agentId to choose the target",
            ));
        }
        if key.is_some() {
            // sessionKey wins over a redundant label.
            m.remove("label");
        }
        if key.as_deref() == Some(&*ctx.session_key) {
            return Err(ToolError::invalid(
                "sessions_send",
                "the target is the current session; reply directly instead",
            ));
        }
        if m.get("mode").and_then(Value::as_str) == Some("resume") {
            if m.get("watch").and_then(Value::as_bool) == Some(true) {
                return Err(ToolError::invalid(
                    "sessions_send",
                    "mode=resume rejects watch=true",
                ));
            }
            if m.get("timeoutSeconds").and_then(Value::as_u64).unwrap_or(0) > 0 {
                return Err(ToolError::invalid(
                    "sessions_send",
                    "mode=resume rejects a positive timeoutSeconds",
                ));
            }
        }
        let result = host(ctx)?.send(&ctx.requester(), Value::Object(m)).await?;
        Ok(ToolOutput::json(result))
    }
}

#[async_trait]
impl Tool for SessionsSpawnTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let mut m = obj(args);
        let bad = |msg: &str| Err(ToolError::invalid("sessions_spawn", msg));
        if nonblank(&m, "task").is_none() {
            return bad("task must not be blank");
        }
        let selectors = ["projectId", "projectGitUrl", "cwd"]
            .iter()
            .filter(|k| nonblank(&m, k).is_some())
            .count();
        if selectors > 1 {
            return bad("projectId, projectGitUrl and cwd are mutually exclusive");
        }
        let collect = m.get("collect").and_then(Value::as_bool) == Some(true);
        if !collect && (m.contains_key("outputSchema") || m.contains_key("groupId")) {
            return bad("outputSchema and groupId require collect=true");
        }
        let visible = m.get("visible").and_then(Value::as_bool) == Some(true);
        if visible {
            for k in ["thinking", "lightContext"] {
                if m.contains_key(k) {
                    return bad(&format!("{k} is unavailable with visible=true"));
                }
            }
        }
        if m.get("attachments")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            return bad("attachment staging is not supported; pass an empty attachments list");
        }
        if let Some(Value::Object(p)) = m.get("placement") {
            if p.get("kind").and_then(Value::as_str) == Some("profile")
                && !(visible && m.get("worktree").and_then(Value::as_bool) == Some(true))
            {
                return bad("placement kind=profile requires visible=true and worktree=true");
            }
        }
        if let Some(url) = nonblank(&m, "projectGitUrl") {
            if !(url.starts_with("https://github.com/") || url.starts_with("git@github.com:")) {
                return bad("projectGitUrl must be a GitHub HTTPS or git@github.com URL");
            }
        }
        if m.get("sandbox").and_then(Value::as_str) == Some("require") && !ctx.is_sandboxed() {
            // The child inherits our policy; the host decides whether it can sandbox the child.
            m.insert("sandboxRequired".into(), json!(true));
        }
        if let Some(cwd) = nonblank(&m, "cwd") {
            // The child's directory is held to the same confinement as our file tools.
            let ws = crate::fs::workspace_for(ctx);
            let dir = crate::util::blocking(move || {
                let p = ws.resolve(&cwd)?;
                ws.directory(&p)
            })
            .await?;
            m.insert("cwd".into(), json!(dir.to_string_lossy()));
        }
        let result = host(ctx)?.spawn(&ctx.requester(), Value::Object(m)).await?;
        Ok(ToolOutput::json(result))
    }
}

#[async_trait]
impl Tool for SessionStatusTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }
    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let m = obj(args);
        let key = match nonblank(&m, "sessionKey") {
            None => ctx.session_key.to_string(),
            Some(k) if k == "current" => ctx.session_key.to_string(),
            Some(k) => k,
        };
        let model = nonblank(&m, "model");
        let changes_since = m.get("changesSince").and_then(Value::as_u64);
        let result = host(ctx)?
            .status(&ctx.requester(), &key, model.as_deref(), changes_since)
            .await?;
        Ok(ToolOutput::json(result))
    }
}
