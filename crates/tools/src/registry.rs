//! The [`Tool`] trait and the [`ToolRegistry`] the agent loop dispatches through.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::context::ToolContext;
use crate::error::ToolError;
use crate::output::ToolOutput;
use crate::schema::Validator;

/// What the model is told about a tool (the `function` object of a provider tool definition).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

impl ToolSpec {
    pub fn new(name: &str, description: &str, parameters: Value) -> Self {
        Self {
            name: name.to_owned(),
            description: description.to_owned(),
            parameters,
        }
    }

    /// `{"type":"function","function":{name, description, parameters}}` (OpenAI-style wrapper,
    /// the shape of `builtin-tool-schemas.json`).
    pub fn to_function_json(&self) -> Value {
        serde_json::json!({"type": "function", "function": self})
    }
}

/// A tool the model can call.
///
/// `invoke` receives arguments that already passed the schema in [`Tool::spec`]; tools still
/// check semantic rules (mutually exclusive fields, paths) and return [`ToolError`]s for them.
#[async_trait]
pub trait Tool: Send + Sync {
    fn spec(&self) -> &ToolSpec;

    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError>;

    fn name(&self) -> &str {
        &self.spec().name
    }
    fn description(&self) -> &str {
        &self.spec().description
    }
    fn parameters(&self) -> &Value {
        &self.spec().parameters
    }
}

struct Entry {
    tool: Arc<dyn Tool>,
    validator: Validator,
}

/// Name → tool, with schemas compiled at registration.
#[derive(Default)]
pub struct ToolRegistry {
    tools: HashMap<String, Entry>,
    /// Registration order, so the tool list sent to the model is stable.
    order: Vec<String>,
    aliases: HashMap<String, String>,
}

impl ToolRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Register (or replace) a tool. The schema is compiled here, once.
    pub fn register(&mut self, tool: Arc<dyn Tool>) {
        let name = tool.name().to_owned();
        let validator = Validator::compile(tool.parameters());
        if !self.tools.contains_key(&name) {
            self.order.push(name.clone());
        }
        self.tools.insert(name, Entry { tool, validator });
    }

    /// Accept `alias` as another name for `target` (e.g. `bash` → `exec`).
    pub fn alias(&mut self, alias: &str, target: &str) {
        self.aliases.insert(alias.to_owned(), target.to_owned());
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn Tool>> {
        self.entry(name).map(|e| &e.tool)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.entry(name).is_some()
    }

    /// Registered tool names in registration order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(String::as_str)
    }

    /// Specs of the tools `ctx`'s policy allows, in registration order: what goes to the model.
    pub fn specs_for(&self, ctx: &ToolContext) -> Vec<&ToolSpec> {
        self.order
            .iter()
            .filter(|n| ctx.tool_allowed(n))
            .filter_map(|n| self.tools.get(n))
            .map(|e| e.tool.spec())
            .collect()
    }

    /// Every registered spec, in registration order.
    pub fn specs(&self) -> Vec<&ToolSpec> {
        self.order
            .iter()
            .filter_map(|n| self.tools.get(n))
            .map(|e| e.tool.spec())
            .collect()
    }

    fn entry(&self, name: &str) -> Option<&Entry> {
        match self.tools.get(name) {
            Some(e) => Some(e),
            None => self.aliases.get(name).and_then(|t| self.tools.get(t)),
        }
    }

    /// Resolve, check policy, validate and run; errors come back as `Err`.
    pub async fn try_dispatch(
        &self,
        name: &str,
        args: Value,
        ctx: &ToolContext,
    ) -> Result<ToolOutput, ToolError> {
        let entry = self
            .entry(name)
            .ok_or_else(|| ToolError::UnknownTool(name.to_owned()))?;
        let canonical = entry.tool.name();
        if !ctx.tool_allowed(canonical) {
            return Err(ToolError::NotAllowed(canonical.to_owned()));
        }
        if let Some(reason) = &ctx.sandbox_unavailable {
            if crate::policy::SANDBOX_BOUND_TOOLS.contains(&canonical) {
                return Err(ToolError::Unavailable(reason.to_string()));
            }
        }
        // Models sometimes send `null` or omit arguments for parameterless calls.
        let args = if args.is_null() {
            Value::Object(serde_json::Map::new())
        } else {
            args
        };
        entry
            .validator
            .validate(&args)
            .map_err(|message| ToolError::invalid(canonical, message))?;
        if ctx.cancel.is_cancelled() {
            return Err(ToolError::Cancelled);
        }
        tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => Err(ToolError::Cancelled),
            result = entry.tool.invoke(args, ctx) => result,
        }
    }

    /// Like [`try_dispatch`](Self::try_dispatch) but never fails: errors become `isError`
    /// results the model can read.
    pub async fn dispatch(&self, name: &str, args: Value, ctx: &ToolContext) -> ToolOutput {
        match self.try_dispatch(name, args, ctx).await {
            Ok(out) => out,
            Err(err) => err.into_output(),
        }
    }
}
