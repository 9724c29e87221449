//! `agents.*`: defaults and per-agent entries.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentsConfig {
    /// `"explicit"`: no implicit default agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<Ownership>,
    #[serde(default)]
    pub defaults: AgentDefaults,
    /// Keyed by agent id (`^[a-z0-9][a-z0-9_-]{0,63}$`, case-insensitive).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entries: BTreeMap<String, AgentEntry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ownership {
    Explicit,
}

/// `"provider/model"` or `{primary, fallbacks}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ModelSelection {
    Ref(String),
    Detailed(ModelChain),
}

impl ModelSelection {
    pub fn primary(&self) -> Option<&str> {
        match self {
            ModelSelection::Ref(r) => Some(r),
            ModelSelection::Detailed(c) => c.primary.as_deref(),
        }
    }
    pub fn fallbacks(&self) -> &[String] {
        match self {
            ModelSelection::Ref(_) => &[],
            ModelSelection::Detailed(c) => c.fallbacks.as_deref().unwrap_or(&[]),
        }
    }
}

section!(ModelChain {
    primary: String,
    fallbacks: Vec<String>,
});

section!(
    /// Catalog entry / alias of `agents.*.models["provider/model"]`.
    ModelAlias {
        alias: String,
        params: serde_json::Map<String, serde_json::Value>,
        streaming: bool,
    }
);

/// The workspace's one reasoning-effort enum (defined with the session entry it is stored in).
pub use pincer_sessions::ThinkingLevel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VerboseLevel {
    Off,
    On,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReasoningLevel {
    Off,
    On,
    Stream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ElevatedLevel {
    Off,
    On,
    Ask,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TypingMode {
    Never,
    Instant,
    Thinking,
    Message,
}

section!(
    /// `agents.defaults`
    AgentDefaults {
        workspace: String,
        cwd: String,
        repo_root: String,
        model: ModelSelection,
        models: BTreeMap<String, ModelAlias>,
        utility_model: String,
        image_model: ModelSelection,
        thinking_default: ThinkingLevel,
        verbose_default: VerboseLevel,
        reasoning_default: ReasoningLevel,
        elevated_default: ElevatedLevel,
        user_timezone: String,
        timeout_seconds: u64,
        max_concurrent: u32,
        bootstrap_max_chars: u64,
        bootstrap_total_max_chars: u64,
        skip_bootstrap: bool,
        media_max_mb: f64,
        image_max_dimension_px: u32,
        typing_mode: TypingMode,
        typing_interval_seconds: u32,
        skills: Vec<String>,
        heartbeat: HeartbeatConfig,
        sandbox: SandboxConfig,
        subagents: SubagentsConfig,
    }
);

section!(
    /// `agents.entries.<id>`
    AgentEntry {
        name: String,
        description: String,
        workspace: String,
        cwd: String,
        agent_dir: String,
        model: ModelSelection,
        models: BTreeMap<String, ModelAlias>,
        utility_model: String,
        thinking_default: ThinkingLevel,
        verbose_default: VerboseLevel,
        reasoning_default: ReasoningLevel,
        bootstrap_max_chars: u64,
        bootstrap_total_max_chars: u64,
        skills: Vec<String>,
        identity: Identity,
        heartbeat: HeartbeatConfig,
        sandbox: SandboxConfig,
        subagents: SubagentsConfig,
        tools: crate::model::tools::AgentToolsConfig,
        typing_mode: TypingMode,
        group_chat: GroupChat,
        /// Retired marker; accepted for compatibility.
        default: bool,
    }
);

section!(Identity {
    name: String,
    theme: String,
    emoji: String,
    avatar: String,
});

section!(GroupChat {
    mention_patterns: Vec<String>,
});

section!(
    /// `agents.*.heartbeat`
    HeartbeatConfig {
        every: String,
        model: String,
        session: String,
        target: String,
        to: String,
        account_id: String,
        prompt: String,
        timeout_seconds: u64,
        light_context: bool,
        isolated_session: bool,
        agent_id: String,
        active_hours: ActiveHours,
    }
);

section!(ActiveHours {
    start: String,
    end: String,
    timezone: String,
});

/// `agents.*.sandbox.mode` (the one definition; `pincer-tools` re-exports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    Off,
    NonMain,
    All,
}

impl SandboxMode {
    /// Does this mode sandbox `session_key` of `agent_id`? `non-main` spares only the agent's
    /// main session (`agent:<id>:main`, or `agent:<id>:<main_key>` when `session.mainKey` is set).
    pub fn applies_to(self, agent_id: &str, session_key: &str, main_key: Option<&str>) -> bool {
        match self {
            Self::Off => false,
            Self::All => true,
            Self::NonMain => {
                let main = main_key.unwrap_or("main");
                let expected = format!("agent:{}:{}", agent_id.to_ascii_lowercase(), main);
                !session_key.eq_ignore_ascii_case(&expected)
            }
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::NonMain => "non-main",
            Self::All => "all",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WorkspaceAccess {
    None,
    Ro,
    Rw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SandboxScope {
    Session,
    Agent,
    Shared,
}

section!(
    /// `agents.*.sandbox`
    SandboxConfig {
        mode: SandboxMode,
        backend: String,
        workspace_access: WorkspaceAccess,
        scope: SandboxScope,
        workspace_root: String,
    }
);

section!(
    /// `agents.*.subagents`
    SubagentsConfig {
        allow_agents: Vec<String>,
        max_concurrent: u32,
        max_children_per_agent: u32,
        max_spawn_depth: u32,
        archive_after_minutes: u64,
        model: String,
        thinking: ThinkingLevel,
        run_timeout_seconds: u64,
    }
);
