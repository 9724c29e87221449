//! `tools.*`

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolProfile {
    Minimal,
    Coding,
    Messaging,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SessionsVisibility {
    #[serde(rename = "self")]
    OwnOnly,
    Tree,
    Agent,
    All,
}

section!(ToolPolicy {
    profile: ToolProfile,
    allow: Vec<String>,
    also_allow: Vec<String>,
    deny: Vec<String>,
});

section!(SessionsTools {
    visibility: SessionsVisibility,
});

section!(ElevatedConfig {
    enabled: bool,
    allow_from: BTreeMap<String, Vec<String>>,
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExecSecurity {
    Deny,
    Allowlist,
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExecAsk {
    Off,
    OnMiss,
    Always,
}

section!(ExecConfig {
    security: ExecSecurity,
    ask: ExecAsk,
    timeout_sec: u64,
    background_ms: u64,
});

section!(FsConfig {
    workspace_only: bool,
});

section!(
    /// `tools.*`
    ToolsConfig {
        profile: ToolProfile,
        allow: Vec<String>,
        also_allow: Vec<String>,
        deny: Vec<String>,
        by_provider: BTreeMap<String, ToolPolicy>,
        sessions: SessionsTools,
        elevated: ElevatedConfig,
        exec: ExecConfig,
        fs: FsConfig,
        tool_search: bool,
    }
);
