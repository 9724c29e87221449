//! `tools.*`

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `tools.profile`: the base allowlist (the one definition; `pincer-tools` re-exports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ToolProfile {
    Minimal,
    Coding,
    Messaging,
    Full,
}

impl ToolProfile {
    pub const ALL: [ToolProfile; 4] = [Self::Minimal, Self::Coding, Self::Messaging, Self::Full];

    /// Case-insensitive parse of a profile name.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minimal => "minimal",
            Self::Coding => "coding",
            Self::Messaging => "messaging",
            Self::Full => "full",
        }
    }
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

section!(
    /// `allow` / `alsoAllow` / `deny` lists (`tools.sandbox.tools`, `tools.subagents.tools`).
    ToolLists {
        allow: Vec<String>,
        also_allow: Vec<String>,
        deny: Vec<String>,
    }
);

section!(
    /// `tools.sandbox` / `agents.entries.<id>.tools.sandbox`
    SandboxTools {
        tools: ToolLists,
    }
);

section!(
    /// `tools.subagents`
    SubagentTools {
        tools: ToolLists,
    }
);

section!(
    /// `tools.web.fetch.ssrfPolicy`
    SsrfPolicyConfig {
        dangerously_allow_private_network: bool,
        allow_rfc2544_benchmark_range: bool,
        allow_ipv6_unique_local_range: bool,
        allowed_hostnames: Vec<String>,
        blocked_hostnames: Vec<String>,
        /// Pincer: exact `host:port` endpoints allowed whatever they resolve to (narrower
        /// than `allowedHostnames`, which allows every port).
        allowed_endpoints: Vec<String>,
    }
);

section!(
    /// `tools.web.fetch`
    WebFetchConfig {
        enabled: bool,
        max_chars: u64,
        max_chars_cap: u64,
        max_response_bytes: u64,
        timeout_seconds: u64,
        max_redirects: u64,
        user_agent: String,
        ssrf_policy: SsrfPolicyConfig,
    }
);

section!(
    /// `tools.web`
    WebTools {
        fetch: WebFetchConfig,
    }
);

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

/// `tools.exec.mode`: shorthand for (security, ask).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ExecMode {
    Deny,
    Allowlist,
    Ask,
    Auto,
    Full,
}

section!(ExecConfig {
    mode: ExecMode,
    security: ExecSecurity,
    ask: ExecAsk,
    timeout_sec: u64,
    timeout_seconds: u64,
    background_ms: u64,
    path_prepend: Vec<String>,
    safe_bins: Vec<String>,
    /// Pincer: how long an approval prompt waits for an operator (default 1800 s).
    approval_timeout_seconds: u64,
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
        sandbox: SandboxTools,
        subagents: SubagentTools,
        web: WebTools,
    }
);

section!(
    /// `agents.entries.<id>.tools`: the agent's layer over `tools.*`.
    AgentToolsConfig {
        profile: ToolProfile,
        allow: Vec<String>,
        also_allow: Vec<String>,
        deny: Vec<String>,
        by_provider: BTreeMap<String, ToolPolicy>,
        elevated: ElevatedConfig,
        exec: ExecConfig,
        fs: FsConfig,
        sandbox: SandboxTools,
    }
);
