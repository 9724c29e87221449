//! The configuration model, one module per section. Types mirror the OpenClaw schema's
//! keys (camelCase) for every part Pincer implements; keys the reference knows but Pincer
//! does not are reported by the validator as one "not implemented" warning.

/// Declares a config object whose fields are all optional (absent = default), closed
/// (unknown keys rejected) and camelCase on the wire.
macro_rules! section {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        pub struct $name {
            $(
                $(#[$fm])*
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }
    };
}

pub mod agents;
pub mod automation;
pub mod bindings;
pub mod channels;
pub mod commands;
pub mod gateway;
pub mod logging;
pub mod messages;
pub mod models;
pub mod secret;
pub mod session;
pub mod tools;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use agents::AgentsConfig;
pub use automation::{CronConfig, HooksConfig};
pub use bindings::Binding;
pub use channels::ChannelsConfig;
pub use commands::CommandsConfig;
pub use gateway::GatewayConfig;
pub use logging::{EnvConfig, LoggingConfig};
pub use messages::MessagesConfig;
pub use models::ModelsConfig;
pub use secret::{SecretInput, SecretRef, SecretSource};
pub use session::SessionConfig;
pub use tools::ToolsConfig;

section!(
    /// `meta` (written by OpenClaw tooling; kept, not interpreted).
    Meta {
        last_touched_version: String,
        migrations: serde_json::Map<String, serde_json::Value>,
    }
);

/// The whole configuration file (`pincer.json` / `openclaw.json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "PincerConfig")]
pub struct Config {
    #[serde(rename = "$schema", default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<EnvConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<LoggingConfig>,
    #[serde(default)]
    pub gateway: GatewayConfig,
    #[serde(default)]
    pub agents: AgentsConfig,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<Binding>,
    #[serde(default)]
    pub session: SessionConfig,
    #[serde(default)]
    pub messages: MessagesConfig,
    #[serde(default)]
    pub channels: ChannelsConfig,
    #[serde(default)]
    pub tools: ToolsConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<CommandsConfig>,
    #[serde(default)]
    pub models: ModelsConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<HooksConfig>,
}

impl Config {
    /// The default agent: `main` unless `agents.entries` names exactly one agent (or one
    /// marked with the retired `default: true`).
    pub fn default_agent_id(&self) -> String {
        let entries = &self.agents.entries;
        if entries.contains_key(pincer_sessions::DEFAULT_AGENT_ID) || entries.is_empty() {
            return pincer_sessions::DEFAULT_AGENT_ID.to_string();
        }
        if let Some((id, _)) = entries.iter().find(|(_, e)| e.default == Some(true)) {
            return pincer_sessions::normalize_agent_id(id);
        }
        match entries.keys().next() {
            Some(id) if entries.len() == 1 => pincer_sessions::normalize_agent_id(id),
            _ => pincer_sessions::DEFAULT_AGENT_ID.to_string(),
        }
    }

    /// Every configured agent id (normalised), the default agent first.
    pub fn agent_ids(&self) -> Vec<String> {
        let default = self.default_agent_id();
        let mut ids = vec![default.clone()];
        for id in self.agents.entries.keys() {
            let id = pincer_sessions::normalize_agent_id(id);
            if !ids.contains(&id) {
                ids.push(id);
            }
        }
        ids
    }

    /// Workspace of an agent: its entry's `workspace`, else `agents.defaults.workspace`
    /// (`/<id>` appended for non-default agents), else `<state>/workspace` for the default
    /// agent and `<state>/workspace-<id>` for the others.
    pub fn agent_workspace(
        &self,
        agent_id: &str,
        state_dir: &std::path::Path,
    ) -> std::path::PathBuf {
        let entry = self
            .agents
            .entries
            .iter()
            .find(|(id, _)| pincer_sessions::normalize_agent_id(id) == agent_id)
            .map(|(_, e)| e);
        if let Some(ws) = entry.and_then(|e| e.workspace.as_deref()) {
            return expand_home(ws);
        }
        let is_default = agent_id == self.default_agent_id();
        match self.agents.defaults.workspace.as_deref() {
            Some(ws) if is_default => expand_home(ws),
            Some(ws) => expand_home(ws).join(agent_id),
            None if is_default => state_dir.join("workspace"),
            None => state_dir.join(format!("workspace-{agent_id}")),
        }
    }

    /// The agent's model selection: its entry's `model`, else `agents.defaults.model`.
    pub fn agent_model(&self, agent_id: &str) -> Option<&agents::ModelSelection> {
        self.agents
            .entries
            .iter()
            .find(|(id, _)| pincer_sessions::normalize_agent_id(id) == agent_id)
            .and_then(|(_, e)| e.model.as_ref())
            .or(self.agents.defaults.model.as_ref())
    }
}

impl Config {
    /// Creates the agent's workspace directory (mode 0700) if it does not exist yet and
    /// returns its path ("workspace directory created on first use").
    pub fn ensure_agent_workspace(
        &self,
        agent_id: &str,
        state_dir: &std::path::Path,
    ) -> std::io::Result<std::path::PathBuf> {
        let dir = self.agent_workspace(agent_id, state_dir);
        if !dir.is_dir() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)?;
            }
            #[cfg(not(unix))]
            std::fs::create_dir_all(&dir)?;
        }
        Ok(dir)
    }

    /// `env.vars` to export into the process environment (never overriding a variable
    /// that is already set).
    pub fn env_vars(&self) -> impl Iterator<Item = (&str, &str)> {
        self.env
            .iter()
            .flat_map(|e| e.vars.iter().flatten())
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// `~/x` → `$HOME/x`.
pub fn expand_home(path: &str) -> std::path::PathBuf {
    match path.strip_prefix("~/") {
        Some(rest) => match std::env::var_os("HOME") {
            Some(home) => std::path::PathBuf::from(home).join(rest),
            None => std::path::PathBuf::from(path),
        },
        None => std::path::PathBuf::from(path),
    }
}
