//! Tool policy (runtime spec §7.2): profiles, groups, allow/alsoAllow/deny layers.
//!
//! The effective tool set is the available tools passed through a pipeline of filters, in this
//! order: profile (agent's overrides global) → provider profile → `tools.allow/deny` → provider
//! allow/deny → agent allow/deny → agent provider allow/deny → group → sender → session →
//! sandbox gate (only when sandboxed) → subagent layer. Each layer can only remove tools: an
//! `allow` list keeps the matching tools, a `deny` list removes matches (deny wins), `alsoAllow`
//! widens the allow list of the same layer (for profiles it adds tools to the profile).
//! Matching is case-insensitive, supports `*` wildcards, `group:*` names and aliases
//! (`bash`→`exec`, `cron`→`automations`, `image`→`view_image`). `allow: ["write"]` also allows
//! `apply_patch`; `deny: ["write"]` does not deny it.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use crate::util::glob_match;

/// `tools.profile` (defined once, in `pincer-config`).
pub use pincer_config::model::tools::ToolProfile;

/// Entries of a profile (may contain groups); `None` = no filtering (`full`).
pub fn profile_entries(profile: ToolProfile) -> Option<&'static [&'static str]> {
    match profile {
        ToolProfile::Minimal => Some(&["session_status", "gateway"]),
        ToolProfile::Coding => Some(&[
            "group:fs",
            "group:runtime",
            "group:web",
            "group:sessions",
            "group:memory",
            "automations",
            "gateway",
            "get_goal",
            "create_goal",
            "update_goal",
            "progress_card",
            "ask_user",
            "skill_workshop",
            "view_image",
            "image_generate",
            "music_generate",
            "video_generate",
            "theme",
        ]),
        ToolProfile::Messaging => Some(&[
            "group:messaging",
            "sessions",
            "sessions_list",
            "sessions_history",
            "sessions_search",
            "conversations_list",
            "conversations_send",
            "conversations_turn",
            "sessions_send",
            "sessions_spawn",
            "sessions_yield",
            "subagents",
            "session_status",
            "gateway",
            "ask_user",
            "theme",
        ]),
        ToolProfile::Full => None,
    }
}

/// Every core tool id the reference knows (catalog and `group:openclaw`).
pub const CORE_TOOLS: &[&str] = &[
    "agents_list",
    "agents_wait",
    "apply_patch",
    "ask_user",
    "automations",
    "browser",
    "canvas",
    "code_execution",
    "computer",
    "conversations_list",
    "conversations_send",
    "conversations_turn",
    "create_goal",
    "dashboard",
    "dir_fetch",
    "dir_list",
    "dismiss_task",
    "edit",
    "exec",
    "file_fetch",
    "file_write",
    "gateway",
    "get_goal",
    "github_identity_status",
    "heartbeat_respond",
    "image_generate",
    "intent",
    "ls",
    "memory_get",
    "memory_search",
    "message",
    "mobile_ui",
    "music_generate",
    "node_inference",
    "nodes",
    "openclaw",
    "pdf",
    "plugins",
    "portal",
    "process",
    "progress_card",
    "read",
    "screen",
    "secrets",
    "session_status",
    "sessions",
    "sessions_history",
    "sessions_list",
    "sessions_search",
    "sessions_send",
    "sessions_spawn",
    "sessions_yield",
    "show_widget",
    "skill_workshop",
    "subagents",
    "suggest_task",
    "talk_voice",
    "terminal",
    "theme",
    "transcripts",
    "tts",
    "update_goal",
    "video_generate",
    "view_image",
    "web_fetch",
    "web_search",
    "write",
    "x_search",
];

/// Members of a `group:*` name (without the prefix); `None` for unknown groups.
/// `group:plugins` is resolved against the available tools (non-core names).
pub fn group_members(group: &str) -> Option<&'static [&'static str]> {
    Some(match group {
        "runtime" => &["exec", "process", "code_execution"],
        "fs" => &["read", "write", "edit", "apply_patch"],
        "sessions" => &[
            "sessions",
            "sessions_list",
            "sessions_history",
            "sessions_search",
            "conversations_list",
            "conversations_send",
            "conversations_turn",
            "sessions_send",
            "sessions_spawn",
            "sessions_yield",
            "subagents",
            "session_status",
            "suggest_task",
            "dismiss_task",
        ],
        "memory" => &["memory_search", "memory_get"],
        "web" => &["web_search", "x_search", "web_fetch"],
        "ui" => &[
            "browser",
            "screen",
            "theme",
            "dashboard",
            "terminal",
            "portal",
            "canvas",
            "show_widget",
        ],
        "automation" => &[
            "heartbeat_respond",
            "automations",
            "gateway",
            "plugins",
            "openclaw",
        ],
        "messaging" => &["message"],
        "nodes" => &["nodes", "computer"],
        "agents" => &[
            "agents_list",
            "get_goal",
            "create_goal",
            "update_goal",
            "progress_card",
            "ask_user",
            "skill_workshop",
        ],
        "media" => &[
            "view_image",
            "image_generate",
            "music_generate",
            "video_generate",
            "tts",
            "pdf",
        ],
        _ => return None,
    })
}

/// Names of all groups (for catalogs and validation messages).
pub const GROUPS: &[&str] = &[
    "group:runtime",
    "group:fs",
    "group:sessions",
    "group:memory",
    "group:web",
    "group:ui",
    "group:automation",
    "group:messaging",
    "group:nodes",
    "group:agents",
    "group:media",
    "group:openclaw",
    "group:plugins",
];

const OPENCLAW_GROUP_EXCLUDES: &[&str] = &[
    "read",
    "write",
    "edit",
    "apply_patch",
    "exec",
    "process",
    "canvas",
];

/// Tools that act on the host's files or processes: in a session that must be sandboxed they
/// run only inside the sandbox (exec) or its view of the workspace (file tools), and fail
/// closed when the sandbox cannot run.
pub const SANDBOX_BOUND_TOOLS: &[&str] = &[
    "exec",
    "process",
    "read",
    "write",
    "edit",
    "apply_patch",
    "ls",
];

/// Sandbox gate defaults (used when `tools.sandbox.tools.allow`/`deny` are not configured).
pub const SANDBOX_DEFAULT_ALLOW: &[&str] = &[
    "exec",
    "process",
    "read",
    "ls",
    "write",
    "edit",
    "apply_patch",
    "view_image",
    "sessions_list",
    "sessions_history",
    "sessions_search",
    "sessions_send",
    "sessions_spawn",
    "sessions_yield",
    "subagents",
    "session_status",
];
pub const SANDBOX_DEFAULT_DENY: &[&str] = &[
    "browser",
    "canvas",
    "computer",
    "mobile_ui",
    "nodes",
    "automations",
    "gateway",
];

/// Canonical tool id for a policy entry or tool name (lower-case, aliases folded).
pub fn normalize_tool_name(name: &str) -> String {
    let n = name.trim().to_ascii_lowercase();
    match n.as_str() {
        "bash" => "exec".into(),
        "cron" => "automations".into(),
        "image" => "view_image".into(),
        _ => n,
    }
}

/// allow / alsoAllow / deny of one layer. `None` = not configured at this layer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub also_allow: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
}

impl ToolPolicy {
    pub fn allow(list: &[&str]) -> Self {
        Self {
            allow: Some(list.iter().map(|s| (*s).to_owned()).collect()),
            ..Self::default()
        }
    }
    pub fn deny(list: &[&str]) -> Self {
        Self {
            deny: Some(list.iter().map(|s| (*s).to_owned()).collect()),
            ..Self::default()
        }
    }
    pub fn with_also_allow(mut self, list: &[&str]) -> Self {
        self.also_allow = Some(list.iter().map(|s| (*s).to_owned()).collect());
        self
    }
    pub fn with_deny(mut self, list: &[&str]) -> Self {
        self.deny = Some(list.iter().map(|s| (*s).to_owned()).collect());
        self
    }
}

/// `tools.byProvider.<id>` / `agents.entries.<id>.tools.byProvider.<id>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProviderToolPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ToolProfile>,
    #[serde(flatten)]
    pub policy: ToolPolicy,
}

/// The policy part of `tools.*` (global) or `agents.entries.<id>.tools` (per agent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolsPolicyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<ToolProfile>,
    #[serde(flatten)]
    pub policy: ToolPolicy,
    /// Keys: `provider` or `provider/model`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_provider: BTreeMap<String, ProviderToolPolicy>,
    /// `tools.sandbox.tools`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_tools: Option<ToolPolicy>,
    /// `tools.subagents.tools`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subagent_tools: Option<ToolPolicy>,
}

/// Everything about the run that selects layers.
#[derive(Debug, Clone, Default)]
pub struct PolicyRequest<'a> {
    pub agent_id: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub model: Option<&'a str>,
    /// Resolved `toolsBySender` match for the requester.
    pub sender: Option<&'a ToolPolicy>,
    /// Channel group policy (`groups.*.tools`).
    pub group: Option<&'a ToolPolicy>,
    /// Per-session restriction (session permission mode / per-run tool caps).
    pub session: Option<&'a ToolPolicy>,
    pub sandboxed: bool,
    pub subagent: bool,
}

/// Why a tool was removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedTool {
    pub name: String,
    /// Config path of the layer, e.g. `tools.profile (coding)`, `agents.entries.x.tools.deny`.
    pub layer: String,
    /// `allow` (not in the layer's allowlist) or `deny`.
    pub rule: &'static str,
}

/// The effective tool set of a run (what the model gets; what dispatch enforces).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EffectiveTools {
    /// Allowed tool names in the order they were offered.
    pub tools: Vec<String>,
    pub removed: Vec<RemovedTool>,
    #[serde(skip)]
    set: HashSet<String>,
}

impl EffectiveTools {
    /// Everything in `names` allowed (no policy).
    pub fn all<'a>(names: impl IntoIterator<Item = &'a str>) -> Self {
        let tools: Vec<String> = names.into_iter().map(normalize_tool_name).collect();
        Self {
            set: tools.iter().cloned().collect(),
            tools,
            removed: Vec::new(),
        }
    }

    pub fn allows(&self, name: &str) -> bool {
        if self.set.contains(name) {
            return true;
        }
        let n = normalize_tool_name(name);
        self.set.contains(&n)
    }

    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }
}

/// A compiled list of policy entries.
#[derive(Debug, Default)]
struct Matcher {
    names: HashSet<String>,
    globs: Vec<String>,
    plugins: bool,
    openclaw: bool,
}

impl Matcher {
    fn new<'a>(entries: impl IntoIterator<Item = &'a str>, for_allow: bool) -> Self {
        let mut m = Self::default();
        for e in entries {
            let e = normalize_tool_name(e);
            if let Some(group) = e.strip_prefix("group:") {
                match group {
                    "plugins" => m.plugins = true,
                    "openclaw" => m.openclaw = true,
                    _ => {
                        if let Some(members) = group_members(group) {
                            m.names.extend(members.iter().map(|s| (*s).to_owned()));
                        }
                    }
                }
            } else if e.contains('*') || e.contains('?') {
                m.globs.push(e);
            } else {
                if for_allow && e == "write" {
                    m.names.insert("apply_patch".into());
                }
                m.names.insert(e);
            }
        }
        m
    }

    fn matches(&self, name: &str) -> bool {
        let core = CORE_TOOLS.contains(&name);
        self.names.contains(name)
            || (self.plugins && !core)
            || (self.openclaw && core && !OPENCLAW_GROUP_EXCLUDES.contains(&name))
            || self.globs.iter().any(|g| glob_match(g, name, true))
    }
}

struct Layer {
    label: String,
    allow: Option<Matcher>,
    deny: Option<Matcher>,
}

fn layer_from(label: String, policy: &ToolPolicy) -> Layer {
    let allow = match (&policy.allow, &policy.also_allow) {
        (Some(allow), also) if !allow.is_empty() => Some(Matcher::new(
            allow
                .iter()
                .chain(also.iter().flatten())
                .map(String::as_str),
            true,
        )),
        _ => None,
    };
    let deny = policy
        .deny
        .as_ref()
        .filter(|d| !d.is_empty())
        .map(|d| Matcher::new(d.iter().map(String::as_str), false));
    Layer { label, allow, deny }
}

fn profile_layer(
    label: &str,
    profile: Option<ToolProfile>,
    also: Option<&Vec<String>>,
) -> Option<Layer> {
    let entries = profile_entries(profile?)?;
    let name = profile?.as_str();
    Some(Layer {
        label: format!("{label} ({name})"),
        allow: Some(Matcher::new(
            entries
                .iter()
                .copied()
                .chain(also.into_iter().flatten().map(String::as_str)),
            true,
        )),
        deny: None,
    })
}

fn provider_entry<'a>(
    map: &'a BTreeMap<String, ProviderToolPolicy>,
    provider: Option<&str>,
    model: Option<&str>,
) -> Option<(&'a String, &'a ProviderToolPolicy)> {
    let provider = provider?.to_ascii_lowercase();
    if let Some(model) = model {
        let full = format!("{provider}/{}", model.to_ascii_lowercase());
        let bare = model.to_ascii_lowercase();
        if let Some(hit) = map
            .iter()
            .find(|(k, _)| k.to_ascii_lowercase() == full || k.to_ascii_lowercase() == bare)
        {
            return Some(hit);
        }
    }
    map.iter().find(|(k, _)| k.to_ascii_lowercase() == provider)
}

/// The sandbox gate for an agent: per-list, the agent's configuration replaces the global one;
/// unconfigured lists use the defaults.
fn sandbox_layer(global: Option<&ToolPolicy>, agent: Option<&ToolPolicy>) -> Layer {
    let pick = |f: fn(&ToolPolicy) -> Option<&Vec<String>>| {
        agent.and_then(f).or_else(|| global.and_then(f)).cloned()
    };
    let allow = pick(|p| p.allow.as_ref());
    let also = pick(|p| p.also_allow.as_ref()).unwrap_or_default();
    let deny = pick(|p| p.deny.as_ref());
    let allow_entries: Vec<String> = match allow {
        Some(a) => a.into_iter().chain(also.iter().cloned()).collect(),
        None => SANDBOX_DEFAULT_ALLOW
            .iter()
            .map(|s| (*s).to_owned())
            .chain(also.iter().cloned())
            .collect(),
    };
    let allow_matcher = Matcher::new(allow_entries.iter().map(String::as_str), true);
    let deny_entries: Vec<String> = match deny {
        Some(d) => d,
        // Default denies step aside for tools the configuration explicitly allows.
        None => SANDBOX_DEFAULT_DENY
            .iter()
            .filter(|d| {
                !allow_entries
                    .iter()
                    .chain(also.iter())
                    .any(|a| normalize_tool_name(a) == **d)
            })
            .map(|s| (*s).to_owned())
            .collect(),
    };
    Layer {
        label: "tools.sandbox.tools".into(),
        allow: Some(allow_matcher),
        deny: Some(Matcher::new(deny_entries.iter().map(String::as_str), false)),
    }
}

/// Compute the effective tool set from the `available` tools (registered names, in order).
pub fn resolve_effective_tools<'a>(
    available: impl IntoIterator<Item = &'a str>,
    global: &ToolsPolicyConfig,
    agent: Option<&ToolsPolicyConfig>,
    req: &PolicyRequest<'_>,
) -> EffectiveTools {
    let agent_label = req.agent_id.map_or_else(
        || "agent tools".to_owned(),
        |id| format!("agents.entries.{id}.tools"),
    );
    let mut layers: Vec<Layer> = Vec::new();

    let profile = agent.and_then(|a| a.profile).or(global.profile);
    let profile_also = agent
        .and_then(|a| a.policy.also_allow.as_ref())
        .or(global.policy.also_allow.as_ref());
    layers.extend(profile_layer("tools.profile", profile, profile_also));

    let global_provider = provider_entry(&global.by_provider, req.provider, req.model);
    let agent_provider =
        agent.and_then(|a| provider_entry(&a.by_provider, req.provider, req.model));
    let provider_profile = agent_provider
        .and_then(|(_, p)| p.profile)
        .or_else(|| global_provider.and_then(|(_, p)| p.profile));
    let provider_also = agent_provider
        .and_then(|(_, p)| p.policy.also_allow.as_ref())
        .or_else(|| global_provider.and_then(|(_, p)| p.policy.also_allow.as_ref()));
    layers.extend(profile_layer(
        "tools.byProvider.profile",
        provider_profile,
        provider_also,
    ));

    layers.push(layer_from("tools".into(), &global.policy));
    if let Some((key, p)) = global_provider {
        layers.push(layer_from(format!("tools.byProvider.{key}"), &p.policy));
    }
    if let Some(a) = agent {
        layers.push(layer_from(agent_label.clone(), &a.policy));
    }
    if let Some((key, p)) = agent_provider {
        layers.push(layer_from(
            format!("{agent_label}.byProvider.{key}"),
            &p.policy,
        ));
    }
    if let Some(g) = req.group {
        layers.push(layer_from("group tools".into(), g));
    }
    if let Some(s) = req.sender {
        layers.push(layer_from("tools.toolsBySender".into(), s));
    }
    if let Some(s) = req.session {
        layers.push(layer_from("session tools".into(), s));
    }
    if req.sandboxed {
        layers.push(sandbox_layer(
            global.sandbox_tools.as_ref(),
            agent.and_then(|a| a.sandbox_tools.as_ref()),
        ));
    }
    if req.subagent {
        if let Some(p) = agent
            .and_then(|a| a.subagent_tools.as_ref())
            .or(global.subagent_tools.as_ref())
        {
            layers.push(layer_from("tools.subagents.tools".into(), p));
        }
    }

    let mut tools = Vec::new();
    let mut removed = Vec::new();
    let mut seen = BTreeSet::new();
    'tools: for name in available {
        let n = normalize_tool_name(name);
        if !seen.insert(n.clone()) {
            continue;
        }
        for layer in &layers {
            if layer.deny.as_ref().is_some_and(|d| d.matches(&n)) {
                removed.push(RemovedTool {
                    name: n,
                    layer: format!("{}.deny", layer.label),
                    rule: "deny",
                });
                continue 'tools;
            }
            if layer.allow.as_ref().is_some_and(|a| !a.matches(&n)) {
                removed.push(RemovedTool {
                    name: n,
                    layer: layer.label.clone(),
                    rule: "allow",
                });
                continue 'tools;
            }
        }
        tools.push(n);
    }
    EffectiveTools {
        set: tools.iter().cloned().collect(),
        tools,
        removed,
    }
}

/// One row of the tool catalog (`tools.catalog`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CatalogEntry {
    pub name: String,
    pub description: String,
    /// `core` for built-ins, `plugin` otherwise.
    pub source: &'static str,
    pub groups: Vec<&'static str>,
    /// Profiles that include the tool (`full` always does).
    pub profiles: Vec<&'static str>,
}

/// Catalog of `tools` (name, description) with their groups and profiles.
pub fn tool_catalog<'a>(tools: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<CatalogEntry> {
    tools
        .into_iter()
        .map(|(name, description)| {
            let n = normalize_tool_name(name);
            let core = CORE_TOOLS.contains(&n.as_str());
            let groups = GROUPS
                .iter()
                .copied()
                .filter(|g| Matcher::new([*g], false).matches(&n))
                .collect();
            let mut profiles: Vec<&'static str> = [
                ToolProfile::Minimal,
                ToolProfile::Coding,
                ToolProfile::Messaging,
            ]
            .into_iter()
            .filter(|p| {
                profile_entries(*p)
                    .is_some_and(|e| Matcher::new(e.iter().copied(), false).matches(&n))
            })
            .map(ToolProfile::as_str)
            .collect();
            profiles.push("full");
            CatalogEntry {
                name: n,
                description: description.to_owned(),
                source: if core { "core" } else { "plugin" },
                groups,
                profiles,
            }
        })
        .collect()
}
