//! One tool call outside a model turn (the gateway's `POST /tools/invoke`): the same registry,
//! tool policy (for the agent's configured model), gateway hosts (approvals included),
//! workspace confinement and exec settings as a run's tool calls.

use pincer_sessions::SessionKey;
use pincer_tools::{CancellationToken, ToolError, ToolOutput};
use serde_json::Value;

use std::sync::Arc;

use pincer_tools::context::Hosts;
use pincer_tools::policy::{resolve_effective_tools, EffectiveTools, PolicyRequest};
use pincer_tools::ToolContext;

use crate::runtime::{AgentRuntime, Inner};
use crate::settings::Settings;

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
        let policy = self.inner.tool_policy(
            &settings,
            agent_id,
            head.as_ref()
                .map(|h| (h.provider.as_str(), h.model.as_str())),
        );
        if !policy.allows(&name) {
            return Err(InvokeError::NotAllowed(name, agent_id.to_owned()));
        }
        let workspace = settings.workspace(agent_id);
        let dir = workspace.clone();
        tokio::task::spawn_blocking(move || std::fs::create_dir_all(&dir))
            .await
            .map_err(|e| InvokeError::Unavailable(e.to_string()))?
            .map_err(|e| {
                InvokeError::Unavailable(format!(
                    "cannot create the workspace {}: {e}",
                    workspace.display()
                ))
            })?;
        let ctx = self
            .inner
            .direct_tool_context(&settings, &workspace, agent_id, session_key, policy, cancel)
            .map_err(InvokeError::Unavailable)?;
        Ok(self.inner.tools.try_dispatch(&name, args, &ctx).await)
    }
}

impl Inner {
    /// The effective tool policy of an agent for a model (or for no model, when no provider
    /// is configured), as a run computes it.
    fn tool_policy(
        &self,
        settings: &Arc<Settings>,
        agent_id: &str,
        model: Option<(&str, &str)>,
    ) -> Arc<EffectiveTools> {
        let global = crate::run::tools_policy(settings);
        let names: Vec<&str> = self.tools.names().collect();
        Arc::new(resolve_effective_tools(
            names,
            &global,
            None,
            &PolicyRequest {
                agent_id: Some(agent_id),
                provider: model.map(|m| m.0),
                model: model.map(|m| m.1),
                ..PolicyRequest::default()
            },
        ))
    }

    /// The context of a direct call: a run's context without a run (same hosts, exec
    /// settings and confinement).
    fn direct_tool_context(
        &self,
        settings: &Arc<Settings>,
        workspace: &std::path::Path,
        agent_id: &str,
        session_key: &SessionKey,
        policy: Arc<EffectiveTools>,
        cancel: CancellationToken,
    ) -> Result<ToolContext, String> {
        let ws = pincer_tools::confine::Workspace::new(workspace)
            .map_err(|e| format!("cannot open the workspace {}: {e}", workspace.display()))?;
        let mut hosts: Hosts = self.options.hosts.clone();
        if hosts.sessions.is_none() {
            hosts.sessions = Some(Arc::new(crate::status::SessionsHostImpl::new(
                self.me.clone(),
            )));
        }
        Ok(ToolContext::builder(Arc::new(ws))
            .agent_id(agent_id)
            .session_key(&session_key.to_string())
            .policy(policy)
            .processes(self.processes.clone())
            .hosts(hosts)
            .config(Arc::new(crate::run::exec_config(settings)))
            .cancel(cancel)
            .build())
    }
}
