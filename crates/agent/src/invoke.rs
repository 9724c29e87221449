//! One tool call outside a model turn (the gateway's `POST /tools/invoke`): the same registry,
//! tool policy (for the agent's configured model), gateway hosts (approvals included),
//! workspace confinement and exec settings as a run's tool calls.

use pincer_sessions::SessionKey;
use pincer_tools::{CancellationToken, ToolError, ToolOutput};
use serde_json::Value;

use std::sync::Arc;

use crate::runtime::AgentRuntime;

/// Why a direct tool call did not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvokeError {
    #[error("Tool \"{0}\" does not exist.")]
    UnknownTool(String),
    #[error("Tool \"{0}\" is not allowed by the tool policy of agent {1}.")]
    NotAllowed(String, String),
    #[error("{0}")]
    Unavailable(String),
}

impl AgentRuntime {
    /// The canonical name of a registered tool (aliases resolved).
    pub fn tool_name(&self, name: &str) -> Option<String> {
        self.inner.tools.get(name).map(|t| t.name().to_owned())
    }

    /// Runs one tool for `agent_id` in `session_key` (see the module doc). Tool failures
    /// (bad arguments, denials, approvals refused) come back as `Err(ToolError)` inside `Ok`.
    pub async fn invoke_tool(
        &self,
        agent_id: &str,
        session_key: &SessionKey,
        tool: &str,
        args: Value,
        cancel: CancellationToken,
    ) -> Result<Result<ToolOutput, ToolError>, InvokeError> {
        let settings = self.inner.settings();
        let name = self
            .tool_name(tool)
            .ok_or_else(|| InvokeError::UnknownTool(tool.to_owned()))?;
        let head = settings
            .model_for_run(agent_id, None, None)
            .and_then(|c| {
                settings
                    .registry
                    .resolve_chain(&c.primary, &c.fallbacks)
                    .ok()
            })
            .and_then(|chain| chain.into_iter().next());
        let facts = crate::tooling::session_facts(&settings, agent_id, session_key).await;
        let policy = Arc::new(crate::tooling::resolve_policy(
            self.inner.tools.names(),
            &settings.config,
            agent_id,
            head.as_ref()
                .map(|h| (h.provider.as_str(), h.model.as_str())),
            &facts,
        ));
        if !policy.allows(&name) {
            return Err(InvokeError::NotAllowed(name, agent_id.to_owned()));
        }
        let dir = facts.workspace.clone();
        tokio::task::spawn_blocking(move || std::fs::create_dir_all(&dir))
            .await
            .map_err(|e| InvokeError::Unavailable(e.to_string()))?
            .map_err(|e| {
                InvokeError::Unavailable(format!(
                    "cannot create the workspace {}: {e}",
                    facts.workspace.display()
                ))
            })?;
        let key = session_key.to_string();
        let ctx = self
            .inner
            .tool_context_for(crate::tooling::ContextSpec {
                settings: &settings,
                facts: &facts,
                agent_id,
                session_key: &key,
                run_id: None,
                policy,
                cancel,
                channel_origin: false,
            })
            .map_err(InvokeError::Unavailable)?;
        Ok(self.inner.tools.try_dispatch(&name, args, &ctx).await)
    }
}
