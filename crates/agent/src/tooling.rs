//! What a session's tool calls run with: the tool policy from config (`tools.*`,
//! `agents.entries.<id>.tools`, the sandbox gate, the sub-agent layer), the sandbox of the
//! session (`agents.*.sandbox`), the exec settings, and the hosts. One place for runs and for
//! direct calls (`POST /tools/invoke`), so both see the same tools with the same limits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use pincer_config::model::agents::{AgentEntry, SandboxMode, WorkspaceAccess};
use pincer_config::model::tools::{
    ExecConfig as ExecSection, ToolLists, ToolPolicy as PolicySection,
};
use pincer_config::Config;
use pincer_sessions::SessionKey;
use pincer_tools::context::{Hosts, ToolsConfig};
use pincer_tools::exec::approvals::{mode_to_policy, ExecAsk, ExecSecurity};
use pincer_tools::exec::sandbox::{Sandbox, SandboxConfig};
use pincer_tools::policy::{
    resolve_effective_tools, EffectiveTools, PolicyRequest, ProviderToolPolicy, ToolPolicy,
    ToolsPolicyConfig,
};
use pincer_tools::web::ssrf::SsrfPolicy;
use pincer_tools::web::WebFetchConfig;
use pincer_tools::{CancellationToken, ToolContext};

use crate::runtime::Inner;
use crate::settings::Settings;

fn entry<'a>(config: &'a Config, agent_id: &str) -> Option<&'a AgentEntry> {
    config
        .agents
        .entries
        .iter()
        .find(|(id, _)| pincer_sessions::normalize_agent_id(id) == agent_id)
        .map(|(_, e)| e)
}

fn lists(l: &ToolLists) -> ToolPolicy {
    ToolPolicy {
        allow: l.allow.clone(),
        also_allow: l.also_allow.clone(),
        deny: l.deny.clone(),
    }
}

fn by_provider(
    map: Option<&std::collections::BTreeMap<String, PolicySection>>,
) -> std::collections::BTreeMap<String, ProviderToolPolicy> {
    map.into_iter()
        .flatten()
        .map(|(k, p)| {
            (
                k.clone(),
                ProviderToolPolicy {
                    profile: p.profile,
                    policy: ToolPolicy {
                        allow: p.allow.clone(),
                        also_allow: p.also_allow.clone(),
                        deny: p.deny.clone(),
                    },
                },
            )
        })
        .collect()
}

/// `tools.*` in the tools crate's shape (the global layers).
pub(crate) fn global_policy(config: &Config) -> ToolsPolicyConfig {
    let t = &config.tools;
    ToolsPolicyConfig {
        profile: t.profile,
        policy: ToolPolicy {
            allow: t.allow.clone(),
            also_allow: t.also_allow.clone(),
            deny: t.deny.clone(),
        },
        by_provider: by_provider(t.by_provider.as_ref()),
        sandbox_tools: t.sandbox.as_ref().and_then(|s| s.tools.as_ref()).map(lists),
        subagent_tools: t
            .subagents
            .as_ref()
            .and_then(|s| s.tools.as_ref())
            .map(lists),
    }
}

/// `agents.entries.<id>.tools` in the tools crate's shape (the agent's layers).
pub(crate) fn agent_policy(config: &Config, agent_id: &str) -> Option<ToolsPolicyConfig> {
    let t = entry(config, agent_id)?.tools.as_ref()?;
    Some(ToolsPolicyConfig {
        profile: t.profile,
        policy: ToolPolicy {
            allow: t.allow.clone(),
            also_allow: t.also_allow.clone(),
            deny: t.deny.clone(),
        },
        by_provider: by_provider(t.by_provider.as_ref()),
        sandbox_tools: t.sandbox.as_ref().and_then(|s| s.tools.as_ref()).map(lists),
        subagent_tools: None,
    })
}

/// The effective tool set of an agent's session for a model (`None` when no provider is
/// configured).
pub(crate) fn resolve_policy<'a>(
    names: impl IntoIterator<Item = &'a str>,
    config: &Config,
    agent_id: &str,
    model: Option<(&str, &str)>,
    facts: &SessionFacts,
) -> EffectiveTools {
    resolve_effective_tools(
        names,
        &global_policy(config),
        agent_policy(config, agent_id).as_ref(),
        &PolicyRequest {
            agent_id: Some(agent_id),
            provider: model.map(|m| m.0),
            model: model.map(|m| m.1),
            sandboxed: facts.sandboxed(),
            subagent: facts.subagent,
            ..PolicyRequest::default()
        },
    )
}

fn apply_exec(config: &mut ToolsConfig, exec: &ExecSection) {
    if let Some((security, ask)) = exec.mode.and_then(|m| {
        let name = serde_json::to_value(m).ok()?;
        mode_to_policy(name.as_str()?)
    }) {
        config.exec.security = security;
        config.exec.ask = ask;
    }
    if let Some(s) = exec.security {
        config.exec.security = match s {
            pincer_config::model::tools::ExecSecurity::Deny => ExecSecurity::Deny,
            pincer_config::model::tools::ExecSecurity::Allowlist => ExecSecurity::Allowlist,
            pincer_config::model::tools::ExecSecurity::Full => ExecSecurity::Full,
        };
    }
    if let Some(a) = exec.ask {
        config.exec.ask = match a {
            pincer_config::model::tools::ExecAsk::Off => ExecAsk::Off,
            pincer_config::model::tools::ExecAsk::OnMiss => ExecAsk::OnMiss,
            pincer_config::model::tools::ExecAsk::Always => ExecAsk::Always,
        };
    }
    if let Some(t) = exec.timeout_seconds.or(exec.timeout_sec) {
        config.exec.timeout_seconds = t;
    }
    if let Some(ms) = exec.background_ms {
        config.exec.yield_ms = ms;
    }
    if let Some(bins) = &exec.safe_bins {
        config.exec.safe_bins.clone_from(bins);
    }
    if let Some(prepend) = &exec.path_prepend {
        config.exec.path_prepend.clone_from(prepend);
    }
    if let Some(s) = exec.approval_timeout_seconds {
        config.exec.approval_timeout = Duration::from_secs(s.max(1));
    }
}

/// `tools.exec.*`, then `agents.entries.<id>.tools.exec.*` over it.
pub(crate) fn exec_config(config: &Config, agent_id: &str) -> ToolsConfig {
    let mut out = ToolsConfig::default();
    if let Some(exec) = config.tools.exec.as_ref() {
        apply_exec(&mut out, exec);
    }
    if let Some(exec) = entry(config, agent_id)
        .and_then(|e| e.tools.as_ref())
        .and_then(|t| t.exec.as_ref())
    {
        apply_exec(&mut out, exec);
    }
    out
}

/// `tools.web.fetch.*` onto the `web_fetch` tool's settings (read when the registry is built).
pub fn web_fetch_config(config: &Config) -> WebFetchConfig {
    let mut out = WebFetchConfig::default();
    let Some(f) = config.tools.web.as_ref().and_then(|w| w.fetch.as_ref()) else {
        return out;
    };
    let size = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
    if let Some(v) = f.enabled {
        out.enabled = v;
    }
    if let Some(v) = f.max_chars {
        out.max_chars = size(v).max(100);
    }
    if let Some(v) = f.max_chars_cap {
        out.max_chars_cap = size(v).max(100);
    }
    if let Some(v) = f.max_response_bytes {
        out.max_response_bytes = size(v).max(1024);
    }
    if let Some(v) = f.timeout_seconds {
        out.timeout = Duration::from_secs(v.max(1));
    }
    if let Some(v) = f.max_redirects {
        out.max_redirects = size(v);
    }
    if let Some(v) = &f.user_agent {
        out.user_agent.clone_from(v);
    }
    if let Some(p) = &f.ssrf_policy {
        out.ssrf = SsrfPolicy {
            dangerously_allow_private_network: p.dangerously_allow_private_network.unwrap_or(false),
            allowed_hostnames: p.allowed_hostnames.clone().unwrap_or_default(),
            allowed_endpoints: p.allowed_endpoints.clone().unwrap_or_default(),
            blocked_hostnames: p.blocked_hostnames.clone().unwrap_or_default(),
            allow_rfc2544_benchmark_range: p.allow_rfc2544_benchmark_range.unwrap_or(false),
            allow_ipv6_unique_local_range: p.allow_ipv6_unique_local_range.unwrap_or(false),
        };
    }
    out
}

/// `agents.entries.<id>.sandbox.mode`, else `agents.defaults.sandbox.mode`, else `off`.
pub(crate) fn sandbox_mode(config: &Config, agent_id: &str) -> SandboxMode {
    entry(config, agent_id)
        .and_then(|e| e.sandbox.as_ref())
        .and_then(|s| s.mode)
        .or(config.agents.defaults.sandbox.as_ref().and_then(|s| s.mode))
        .unwrap_or(SandboxMode::Off)
}

fn workspace_access(config: &Config, agent_id: &str) -> Option<WorkspaceAccess> {
    entry(config, agent_id)
        .and_then(|e| e.sandbox.as_ref())
        .and_then(|s| s.workspace_access)
        .or(config
            .agents
            .defaults
            .sandbox
            .as_ref()
            .and_then(|s| s.workspace_access))
}

/// The sandbox of one session.
#[derive(Clone)]
pub(crate) enum SessionSandbox {
    Off,
    On(Arc<Sandbox>),
    /// Required but bubblewrap cannot run here: host-touching tools fail closed.
    Unavailable(String),
}

/// Facts about a session that select its tools and where they run.
#[derive(Clone)]
pub(crate) struct SessionFacts {
    pub mode: SandboxMode,
    pub sandbox: SessionSandbox,
    /// The directory file tools and exec are confined to.
    pub workspace: PathBuf,
    /// A sub-agent session (`subagent:` key): the sub-agent policy layer applies.
    pub subagent: bool,
}

impl SessionFacts {
    pub fn sandboxed(&self) -> bool {
        !matches!(self.sandbox, SessionSandbox::Off)
    }

    /// Cache-key bits of what changes the policy.
    pub fn policy_bits(&self) -> u8 {
        u8::from(self.sandboxed()) | (u8::from(self.subagent) << 1)
    }
}

type SandboxCache = Mutex<HashMap<bool, Result<Arc<Sandbox>, String>>>;

/// One probed bubblewrap runtime per mount mode, for the life of the process.
fn sandbox_cache() -> &'static SandboxCache {
    static CACHE: OnceLock<SandboxCache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn probe_sandbox(read_only: bool) -> Result<Arc<Sandbox>, String> {
    if let Some(hit) = sandbox_cache()
        .lock()
        .ok()
        .and_then(|c| c.get(&read_only).cloned())
    {
        return hit;
    }
    let result = Sandbox::new(SandboxConfig {
        workspace_read_only: read_only,
        ..SandboxConfig::default()
    })
    .map(Arc::new)
    .map_err(|e| e.to_string());
    if let Ok(mut c) = sandbox_cache().lock() {
        c.insert(read_only, result.clone());
    }
    result
}

/// The facts of `key` under `settings`: whether and how it is sandboxed, and its workspace.
/// Blocking work (probing bubblewrap, creating an isolated workspace) runs off the runtime.
pub(crate) async fn session_facts(
    settings: &Settings,
    agent_id: &str,
    key: &SessionKey,
) -> SessionFacts {
    let config = &settings.config;
    let mode = sandbox_mode(config, agent_id);
    let agent_ws = settings.workspace(agent_id);
    let subagent = key.subagent_depth() > 0;
    if !mode.applies_to(agent_id, &key.to_string(), None) {
        return SessionFacts {
            mode,
            sandbox: SessionSandbox::Off,
            workspace: agent_ws,
            subagent,
        };
    }
    let access = workspace_access(config, agent_id);
    // `none`: a workspace of the sandbox's own, apart from the agent's files.
    let workspace = match access {
        Some(WorkspaceAccess::None) => settings.state_dir.join("sandboxes").join(agent_id),
        _ => agent_ws,
    };
    let read_only = access == Some(WorkspaceAccess::Ro);
    let ws = workspace.clone();
    let probed = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&ws).map_err(|e| {
            format!(
                "Sandboxing is required for this session but its workspace {} cannot be \
                 created: {e}. Commands will not run unsandboxed.",
                ws.display()
            )
        })?;
        probe_sandbox(read_only)
    })
    .await
    .unwrap_or_else(|e| Err(format!("sandbox set-up failed: {e}")));
    SessionFacts {
        mode,
        sandbox: match probed {
            Ok(s) => SessionSandbox::On(s),
            Err(why) => {
                tracing::warn!(session = %key, reason = %why, "sandbox unavailable; host tools fail closed for this session");
                SessionSandbox::Unavailable(why)
            }
        },
        workspace,
        subagent,
    }
}

/// Everything a tool context is built from.
pub(crate) struct ContextSpec<'a> {
    pub settings: &'a Arc<Settings>,
    pub facts: &'a SessionFacts,
    pub agent_id: &'a str,
    pub session_key: &'a str,
    pub run_id: Option<&'a str>,
    pub policy: Arc<EffectiveTools>,
    pub cancel: CancellationToken,
    pub channel_origin: bool,
}

impl Inner {
    /// The hosts tools get: the gateway's, plus the runtime's own sessions host and the
    /// store-backed memory index when the embedder supplies none.
    pub(crate) fn tool_hosts(&self) -> Hosts {
        let mut hosts: Hosts = self.options.hosts.clone();
        if hosts.sessions.is_none() {
            hosts.sessions = Some(Arc::new(crate::status::SessionsHostImpl::new(
                self.me.clone(),
            )));
        }
        if hosts.memory.is_none() {
            hosts.memory = Some(Arc::new(crate::memory_index::StoreMemoryIndex::new(
                self.store.clone(),
            )));
        }
        hosts
    }

    /// A tool context for one run (or one direct call) of a session.
    pub(crate) fn tool_context_for(&self, spec: ContextSpec<'_>) -> Result<ToolContext, String> {
        let facts = spec.facts;
        let ws = pincer_tools::confine::Workspace::new(&facts.workspace).map_err(|e| {
            format!(
                "cannot open the workspace {}: {e}",
                facts.workspace.display()
            )
        })?;
        let mut builder = ToolContext::builder(Arc::new(ws))
            .agent_id(spec.agent_id)
            .session_key(spec.session_key)
            .policy(spec.policy)
            .processes(self.processes.clone())
            .hosts(self.tool_hosts())
            .config(Arc::new(exec_config(&spec.settings.config, spec.agent_id)))
            .cancel(spec.cancel)
            .channel_origin(spec.channel_origin);
        builder = match &facts.sandbox {
            SessionSandbox::Off => builder.sandbox(facts.mode, None),
            SessionSandbox::On(s) => builder.sandbox(facts.mode, Some(Arc::clone(s))),
            SessionSandbox::Unavailable(why) => {
                builder.sandbox(facts.mode, None).sandbox_unavailable(why)
            }
        };
        if let Some(run) = spec.run_id {
            builder = builder.run_id(run);
        }
        if let Some(store) = &self.options.approvals_store {
            builder = builder.approvals_store(Arc::clone(store));
        }
        Ok(builder.build())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn config(v: serde_json::Value) -> Config {
        serde_json::from_value(v).unwrap()
    }

    fn facts(sandboxed: bool, subagent: bool) -> SessionFacts {
        SessionFacts {
            mode: SandboxMode::Off,
            sandbox: if sandboxed {
                SessionSandbox::Unavailable("test".into())
            } else {
                SessionSandbox::Off
            },
            workspace: PathBuf::from("/tmp"),
            subagent,
        }
    }

    const NAMES: &[&str] = &[
        "read",
        "write",
        "exec",
        "process",
        "web_fetch",
        "nodes",
        "sessions_spawn",
        "memory_search",
    ];

    #[test]
    fn global_agent_sandbox_and_subagent_layers_apply() {
        let c = config(serde_json::json!({
            "tools": {
                "profile": "coding",
                "deny": ["web_fetch"],
                "subagents": {"tools": {"deny": ["sessions_spawn"]}}
            },
            "agents": {"entries": {"ops": {"tools": {"deny": ["exec"]}}}}
        }));
        let main = resolve_policy(
            NAMES.iter().copied(),
            &c,
            "main",
            None,
            &facts(false, false),
        );
        assert!(main.allows("exec") && main.allows("read") && !main.allows("web_fetch"));
        assert!(
            !main.allows("nodes"),
            "the coding profile has no nodes tool"
        );
        let ops = resolve_policy(NAMES.iter().copied(), &c, "ops", None, &facts(false, false));
        assert!(!ops.allows("exec") && ops.allows("process"));
        assert!(ops
            .removed
            .iter()
            .any(|r| r.name == "exec" && r.layer == "agents.entries.ops.tools.deny"));
        let sandboxed =
            resolve_policy(NAMES.iter().copied(), &c, "main", None, &facts(true, false));
        assert!(sandboxed.allows("exec") && !sandboxed.allows("memory_search"));
        let child = resolve_policy(NAMES.iter().copied(), &c, "main", None, &facts(false, true));
        assert!(!child.allows("sessions_spawn") && child.allows("exec"));
    }

    #[test]
    fn exec_settings_merge_global_then_agent() {
        let c = config(serde_json::json!({
            "tools": {"exec": {"mode": "ask", "timeoutSeconds": 5, "approvalTimeoutSeconds": 2}},
            "agents": {"entries": {"ops": {"tools": {"exec": {"security": "deny"}}}}}
        }));
        let main = exec_config(&c, "main").exec;
        assert_eq!(
            (main.security, main.ask),
            (ExecSecurity::Allowlist, ExecAsk::OnMiss)
        );
        assert_eq!(main.timeout_seconds, 5);
        assert_eq!(main.approval_timeout, Duration::from_secs(2));
        let ops = exec_config(&c, "ops").exec;
        assert_eq!(
            (ops.security, ops.ask),
            (ExecSecurity::Deny, ExecAsk::OnMiss)
        );
    }

    #[test]
    fn web_fetch_settings_and_ssrf_exceptions() {
        let c = config(serde_json::json!({"tools": {"web": {"fetch": {
            "maxChars": 5000, "timeoutSeconds": 3,
            "ssrfPolicy": {"allowedEndpoints": ["127.0.0.1:8080"]}
        }}}}));
        let w = web_fetch_config(&c);
        assert_eq!(w.max_chars, 5000);
        assert_eq!(w.timeout, Duration::from_secs(3));
        assert_eq!(w.ssrf.allowed_endpoints, vec!["127.0.0.1:8080".to_string()]);
        assert!(!w.ssrf.dangerously_allow_private_network);
    }

    #[test]
    fn the_agent_sandbox_mode_overrides_the_default() {
        let c = config(serde_json::json!({
            "agents": {"defaults": {"sandbox": {"mode": "non-main"}},
                       "entries": {"ops": {"sandbox": {"mode": "off"}}}}
        }));
        assert_eq!(sandbox_mode(&c, "main"), SandboxMode::NonMain);
        assert_eq!(sandbox_mode(&c, "ops"), SandboxMode::Off);
        assert_eq!(sandbox_mode(&Config::default(), "main"), SandboxMode::Off);
    }
}

/// What a session's runs are offered (`tools.effective`).
#[derive(Debug, Clone)]
pub struct EffectiveToolSet {
    pub agent_id: String,
    /// `tools.profile` in force (agent over global); `full` when unset.
    pub profile: &'static str,
    /// (name, description) of every offered tool, in registry order.
    pub tools: Vec<(String, String)>,
    /// Tools the policy removed, with the layer that removed them.
    pub removed: Vec<pincer_tools::policy::RemovedTool>,
    /// `off` | `on` | `unavailable` (required, but bubblewrap cannot run).
    pub sandbox: &'static str,
    pub sandbox_error: Option<String>,
}

impl crate::runtime::AgentRuntime {
    /// The tool registry runs dispatch through.
    pub fn tool_registry(&self) -> &Arc<pincer_tools::ToolRegistry> {
        &self.inner.tools
    }

    /// The tools a run of `key` would be offered now (policy, sandbox gate, model layers).
    pub async fn effective_tools(&self, agent_id: &str, key: &SessionKey) -> EffectiveToolSet {
        let settings = self.inner.settings();
        let entry = self
            .inner
            .store
            .get_session(key)
            .await
            .ok()
            .flatten()
            .map(|r| r.entry);
        let head = settings
            .model_for_run(agent_id, entry.as_ref(), None)
            .and_then(|c| {
                settings
                    .registry
                    .resolve_chain(&c.primary, &c.fallbacks)
                    .ok()
            })
            .and_then(|chain| chain.into_iter().next());
        let facts = session_facts(&settings, agent_id, key).await;
        let policy = resolve_policy(
            self.inner.tools.names(),
            &settings.config,
            agent_id,
            head.as_ref()
                .map(|h| (h.provider.as_str(), h.model.as_str())),
            &facts,
        );
        let tools = self
            .inner
            .tools
            .specs()
            .into_iter()
            .filter(|s| policy.allows(&s.name))
            .map(|s| (s.name.clone(), s.description.clone()))
            .collect();
        let profile = agent_policy(&settings.config, agent_id)
            .and_then(|a| a.profile)
            .or(settings.config.tools.profile)
            .map_or("full", |p| p.as_str());
        let (sandbox, sandbox_error) = match &facts.sandbox {
            SessionSandbox::Off => ("off", None),
            SessionSandbox::On(_) => ("on", None),
            SessionSandbox::Unavailable(why) => ("unavailable", Some(why.clone())),
        };
        EffectiveToolSet {
            agent_id: agent_id.to_owned(),
            profile,
            tools,
            removed: policy.removed,
            sandbox,
            sandbox_error,
        }
    }
}
