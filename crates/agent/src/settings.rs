//! What the runtime reads from the configuration, resolved once per config version: the
//! provider registry (config `models.providers` mapped onto `pincer-providers`, plus the
//! environment keys), model selection, queue settings, limits and per-agent facts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use pincer_config::model::agents::{Identity, ModelSelection};
use pincer_config::model::messages::{QueueDrop, QueueMode};
use pincer_config::model::models::{ModelInput, ProviderApi};
use pincer_config::Config;
use pincer_providers::{
    ApiKey, ApiKind, EnvSource, InputModality, ModelConfig, ModelCost, ProviderConfig,
    ProviderRegistry, ThinkingLevel,
};
use pincer_sessions::{ResetPolicy, SessionEntry, SessionKey};

use crate::workspace::{DEFAULT_FILE_MAX_CHARS, DEFAULT_TOTAL_MAX_CHARS};

/// Built-in debounce of queued turns (runtime.md §4.4).
pub const DEFAULT_QUEUE_DEBOUNCE: Duration = Duration::from_millis(500);
/// Built-in queue cap.
pub const DEFAULT_QUEUE_CAP: usize = 20;
/// `agents.defaults.timeoutSeconds` default: 48 h.
pub const DEFAULT_RUN_TIMEOUT_SECS: u64 = 172_800;

/// A model when nothing selects one: the first configured model, else one per built-in
/// provider whose key is set.
const IMPLICIT_DEFAULT_MODELS: &[(&str, &str)] = &[
    ("anthropic", "anthropic/claude-sonnet-4-5"),
    ("openai", "openai/gpt-5"),
    ("openrouter", "openrouter/anthropic/claude-sonnet-4.5"),
    ("ollama", "ollama/llama3.1"),
];

/// The effective queue behaviour for one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueSettings {
    pub mode: QueueMode,
    pub debounce: Duration,
    pub cap: usize,
    pub drop: QueueDrop,
}

impl QueueSettings {
    /// `mode=steer, debounce=500ms, cap=20, drop=summarize` (the `/queue` reply format).
    pub fn describe(&self) -> String {
        format!(
            "mode={}, debounce={}ms, cap={}, drop={}",
            queue_mode_str(self.mode),
            self.debounce.as_millis(),
            self.cap,
            match self.drop {
                QueueDrop::Old => "old",
                QueueDrop::New => "new",
                QueueDrop::Summarize => "summarize",
            }
        )
    }
}

/// The spelling of a queue mode.
pub fn queue_mode_str(mode: QueueMode) -> &'static str {
    match mode {
        QueueMode::Steer => "steer",
        QueueMode::Followup => "followup",
        QueueMode::Collect => "collect",
        QueueMode::Interrupt => "interrupt",
    }
}

/// Parses a queue mode, accepting the legacy and `/queue` aliases.
pub fn parse_queue_mode(value: &str) -> Option<QueueMode> {
    match value.trim().to_ascii_lowercase().as_str() {
        "steer" | "queue" | "steering" => Some(QueueMode::Steer),
        "followup" | "steer-backlog" | "steer+backlog" => Some(QueueMode::Followup),
        "collect" | "coalesce" => Some(QueueMode::Collect),
        "interrupt" | "abort" => Some(QueueMode::Interrupt),
        _ => None,
    }
}

/// Where a run's model came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    /// A per-run override (`agent` RPC `model`, `/new <model>`).
    Request,
    /// The session's `/model` pin (strict: no fallbacks).
    Session,
    /// The agent's or the defaults' `model`.
    Config,
    /// Nothing configured: the first available provider's default.
    Implicit,
}

/// The model chain of one run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelChoice {
    pub primary: String,
    pub fallbacks: Vec<String>,
    pub source: ModelSource,
}

/// Distinguishes config versions (caches are keyed by it; addresses can be reused).
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// One config version, resolved.
pub struct Settings {
    /// Unique per `Settings` value (cache keys).
    pub generation: u64,
    pub config: Arc<Config>,
    pub state_dir: PathBuf,
    pub registry: ProviderRegistry,
    /// Problems found while mapping providers (unresolvable keys); logged once.
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("state_dir", &self.state_dir)
            .field("providers", &self.registry.provider_ids())
            .finish_non_exhaustive()
    }
}

struct FnEnv<'a>(&'a (dyn Fn(&str) -> Option<String> + Send + Sync));

impl EnvSource for FnEnv<'_> {
    fn var(&self, name: &str) -> Option<String> {
        (self.0)(name).filter(|v| !v.trim().is_empty())
    }
}

impl Settings {
    /// Resolves `config` for a gateway whose state dir is `state_dir`; `env` supplies
    /// environment variables (API keys, SecretRef `env` sources).
    pub fn new(
        config: Arc<Config>,
        state_dir: &Path,
        env: &(dyn Fn(&str) -> Option<String> + Send + Sync),
    ) -> Settings {
        let (providers, warnings) = map_providers(&config, state_dir, env);
        let registry = ProviderRegistry::new(&providers, &FnEnv(env));
        Settings {
            generation: next_generation(),
            config,
            state_dir: state_dir.to_path_buf(),
            registry,
            warnings,
        }
    }

    /// Settings with an explicit registry (tests, embedders).
    pub fn with_registry(
        config: Arc<Config>,
        state_dir: &Path,
        registry: ProviderRegistry,
    ) -> Settings {
        Settings {
            generation: next_generation(),
            config,
            state_dir: state_dir.to_path_buf(),
            registry,
            warnings: Vec::new(),
        }
    }

    pub fn default_agent_id(&self) -> String {
        self.config.default_agent_id()
    }

    /// The agent id of a session key (the default agent for `global`/`unknown`).
    pub fn agent_of(&self, key: &SessionKey) -> String {
        key.agent_id()
            .map(str::to_owned)
            .unwrap_or_else(|| self.default_agent_id())
    }

    pub fn workspace(&self, agent_id: &str) -> PathBuf {
        self.config.agent_workspace(agent_id, &self.state_dir)
    }

    fn entry(&self, agent_id: &str) -> Option<&pincer_config::model::agents::AgentEntry> {
        self.config
            .agents
            .entries
            .iter()
            .find(|(id, _)| pincer_sessions::normalize_agent_id(id) == agent_id)
            .map(|(_, e)| e)
    }

    /// `agents.entries.<id>.identity` (name, emoji, avatar, theme).
    pub fn identity(&self, agent_id: &str) -> Identity {
        let entry = self.entry(agent_id);
        let mut identity = entry.and_then(|e| e.identity.clone()).unwrap_or_default();
        if identity.name.is_none() {
            identity.name = entry.and_then(|e| e.name.clone());
        }
        identity
    }

    pub fn thinking_default(&self, agent_id: &str) -> ThinkingLevel {
        self.entry(agent_id)
            .and_then(|e| e.thinking_default)
            .or(self.config.agents.defaults.thinking_default)
            .unwrap_or_default()
    }

    /// `(bootstrapMaxChars, bootstrapTotalMaxChars)`.
    pub fn bootstrap_caps(&self, agent_id: &str) -> (usize, usize) {
        let entry = self.entry(agent_id);
        let defaults = &self.config.agents.defaults;
        let file = entry
            .and_then(|e| e.bootstrap_max_chars)
            .or(defaults.bootstrap_max_chars)
            .map_or(DEFAULT_FILE_MAX_CHARS, |v| v as usize);
        let total = entry
            .and_then(|e| e.bootstrap_total_max_chars)
            .or(defaults.bootstrap_total_max_chars)
            .map_or(DEFAULT_TOTAL_MAX_CHARS, |v| v as usize);
        (file.max(1), total.max(1))
    }

    /// Whether new workspaces get the starter files (`skipBootstrap: true` turns it off).
    pub fn seed_workspace(&self) -> bool {
        self.config.agents.defaults.skip_bootstrap != Some(true)
    }

    /// The global `main` lane size: `agents.defaults.maxConcurrent`, default `max(8, 4 × CPUs)`.
    pub fn max_concurrent(&self) -> usize {
        match self.config.agents.defaults.max_concurrent {
            Some(n) if n > 0 => n as usize,
            _ => {
                let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
                (cpus * 4).max(8)
            }
        }
    }

    /// The run budget; `None` = unlimited (`timeoutSeconds: 0`).
    pub fn run_timeout(&self) -> Option<Duration> {
        match self
            .config
            .agents
            .defaults
            .timeout_seconds
            .unwrap_or(DEFAULT_RUN_TIMEOUT_SECS)
        {
            0 => None,
            s => Some(Duration::from_secs(s)),
        }
    }

    /// Reset policy and triggers for a session key.
    pub fn reset_policy(&self, key: &SessionKey) -> ResetPolicy {
        use pincer_config::model::session::ResetTarget;
        let target = match key.classification() {
            "thread" => ResetTarget::Thread,
            "group" | "channel" => ResetTarget::Group,
            _ => ResetTarget::Direct,
        };
        self.config.session.reset_policy(key.channel(), target)
    }

    pub fn reset_triggers(&self) -> Vec<String> {
        self.config
            .session
            .reset_triggers
            .clone()
            .unwrap_or_default()
    }

    /// Queue settings: request override → session `/queue` override → per-channel mode →
    /// `messages.queue.mode` → steer.
    pub fn queue(
        &self,
        channel: Option<&str>,
        session: Option<&SessionEntry>,
        requested: Option<QueueMode>,
    ) -> QueueSettings {
        let q = self.config.messages.queue.as_ref();
        let session_mode = session
            .and_then(|s| s.queue_mode.as_deref())
            .and_then(parse_queue_mode);
        let channel_mode = channel.and_then(|c| q?.by_channel.as_ref()?.get(c).copied());
        let mode = requested
            .or(session_mode)
            .or(channel_mode)
            .or(q.and_then(|q| q.mode))
            .unwrap_or(QueueMode::Steer);
        let debounce = channel
            .and_then(|c| q?.debounce_ms_by_channel.as_ref()?.get(c).copied())
            .map_or(DEFAULT_QUEUE_DEBOUNCE, Duration::from_millis);
        QueueSettings {
            mode,
            debounce,
            cap: q
                .and_then(|q| q.cap)
                .map_or(DEFAULT_QUEUE_CAP, |c| (c as usize).max(1)),
            drop: q.and_then(|q| q.drop).unwrap_or(QueueDrop::Summarize),
        }
    }

    /// The configured (or implicit) model chain of an agent, ignoring session overrides.
    pub fn configured_model(&self, agent_id: &str) -> Option<ModelChoice> {
        let strict_entry = self.entry(agent_id).and_then(|e| e.model.as_ref());
        let selection = strict_entry.or(self.config.agents.defaults.model.as_ref());
        if let Some(selection) = selection {
            if let Some(primary) = selection.primary().filter(|p| !p.trim().is_empty()) {
                // A per-agent plain string is strict; `{primary, fallbacks}` opts in.
                let fallbacks = match (strict_entry, selection) {
                    (Some(ModelSelection::Ref(_)), _) => Vec::new(),
                    _ => selection.fallbacks().to_vec(),
                };
                return Some(ModelChoice {
                    primary: primary.trim().to_owned(),
                    fallbacks,
                    source: ModelSource::Config,
                });
            }
        }
        self.implicit_model().map(|primary| ModelChoice {
            primary,
            fallbacks: Vec::new(),
            source: ModelSource::Implicit,
        })
    }

    /// The first configured model, else a known default of the first built-in provider with
    /// a key.
    pub fn implicit_model(&self) -> Option<String> {
        if let Some(m) = self.registry.models().first() {
            return Some(format!("{}/{}", m.provider, m.id));
        }
        let available = self.registry.provider_ids();
        IMPLICIT_DEFAULT_MODELS
            .iter()
            .find(|(provider, _)| available.contains(provider))
            .map(|(_, model)| (*model).to_owned())
    }

    /// The chain of one run: request override → session pin (strict) → configured.
    pub fn model_for_run(
        &self,
        agent_id: &str,
        session: Option<&SessionEntry>,
        requested: Option<&str>,
    ) -> Option<ModelChoice> {
        if let Some(r) = requested.filter(|r| !r.trim().is_empty()) {
            return Some(ModelChoice {
                primary: r.trim().to_owned(),
                fallbacks: Vec::new(),
                source: ModelSource::Request,
            });
        }
        if let Some(pinned) = session.and_then(session_model_override) {
            return Some(ModelChoice {
                primary: pinned,
                fallbacks: Vec::new(),
                source: ModelSource::Session,
            });
        }
        self.configured_model(agent_id)
    }
}

fn next_generation() -> u64 {
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// `providerOverride/modelOverride` of a session entry as a model ref.
pub fn session_model_override(entry: &SessionEntry) -> Option<String> {
    let model = entry.model_override.as_deref()?.trim();
    if model.is_empty() {
        return None;
    }
    match entry.provider_override.as_deref().map(str::trim) {
        Some(p) if !p.is_empty() => Some(format!("{p}/{model}")),
        _ => Some(model.to_owned()),
    }
}

/// Maps `models.providers.*` of the config onto the providers crate's types, resolving
/// SecretRef keys. A key that cannot be resolved leaves the provider keyless and is reported.
pub fn map_providers(
    config: &Config,
    state_dir: &Path,
    env: &(dyn Fn(&str) -> Option<String> + Send + Sync),
) -> (BTreeMap<String, ProviderConfig>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut warnings = Vec::new();
    let Some(providers) = config.models.providers.as_ref() else {
        return (out, warnings);
    };
    let ctx = pincer_config::secrets::SecretContext {
        env: &|k| env(k),
        config_dir: state_dir,
        store: None,
        exec_timeout: Duration::from_secs(10),
    };
    for (id, p) in providers {
        let api_key = match p.api_key.as_ref() {
            None => None,
            Some(input) => {
                let field = format!("models.providers.{id}.apiKey");
                match pincer_config::secrets::resolve(input, &field, &ctx) {
                    Ok(key) if !key.trim().is_empty() => Some(ApiKey::new(key)),
                    Ok(_) => None,
                    Err(e) => {
                        warnings.push(e.to_string());
                        None
                    }
                }
            }
        };
        let models = p
            .models
            .iter()
            .flatten()
            .map(|m| ModelConfig {
                id: m.id.clone(),
                name: m.name.clone(),
                api: m.api.map(map_api),
                base_url: m.base_url.clone(),
                reasoning: m.reasoning,
                input: m
                    .input
                    .iter()
                    .flatten()
                    .filter_map(|i| match i {
                        ModelInput::Text => Some(InputModality::Text),
                        ModelInput::Image => Some(InputModality::Image),
                        ModelInput::Audio => Some(InputModality::Audio),
                        ModelInput::Video => Some(InputModality::Video),
                        ModelInput::Pdf => None,
                    })
                    .collect(),
                cost: m.cost.as_ref().map(|c| ModelCost {
                    input: c.input.unwrap_or(0.0),
                    output: c.output.unwrap_or(0.0),
                    cache_read: c.cache_read.unwrap_or(0.0),
                    cache_write: c.cache_write.unwrap_or(0.0),
                }),
                context_window: m.context_window.or(m.context_tokens),
                max_tokens: m.max_tokens.map(|t| t.min(u64::from(u32::MAX)) as u32),
                headers: m.headers.clone().unwrap_or_default(),
            })
            .collect();
        out.insert(
            id.clone(),
            ProviderConfig {
                base_url: p.base_url.clone(),
                api_key,
                api: p.api.map(map_api),
                headers: p.headers.clone().unwrap_or_default(),
                auth_header: p.auth_header,
                timeout_seconds: p.timeout_seconds,
                max_tokens: p.max_tokens.map(|t| t.min(u64::from(u32::MAX)) as u32),
                models,
            },
        );
    }
    (out, warnings)
}

fn map_api(api: ProviderApi) -> ApiKind {
    match api {
        ProviderApi::OpenaiCompletions => ApiKind::OpenaiCompletions,
        ProviderApi::OpenaiResponses => ApiKind::OpenaiResponses,
        ProviderApi::AnthropicMessages => ApiKind::AnthropicMessages,
        ProviderApi::Ollama => ApiKind::Ollama,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn config(json: serde_json::Value) -> Arc<Config> {
        Arc::new(serde_json::from_value(json).unwrap())
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn maps_config_providers_and_resolves_env_secret_refs() {
        let cfg = config(serde_json::json!({
            "models": {"providers": {"local": {
                "baseUrl": "http://127.0.0.1:9/v1", "api": "openai-completions",
                "apiKey": {"source": "env", "id": "LOCAL_KEY"}, "timeoutSeconds": 7,
                "models": [{"id": "m1", "contextWindow": 32000, "maxTokens": 1000, "reasoning": true,
                            "input": ["text", "pdf"], "cost": {"input": 1}}]
            }}}
        }));
        let env = |k: &str| (k == "LOCAL_KEY").then(|| "sk-local".to_owned());
        let s = Settings::new(cfg, Path::new("/tmp/state"), &env);
        let m = s.registry.resolve("local/m1").unwrap();
        assert_eq!(m.api_key.as_ref().map(ApiKey::expose), Some("sk-local"));
        assert_eq!(
            (m.context_window, m.max_tokens, m.reasoning),
            (32000, 1000, true)
        );
        assert_eq!(m.idle_timeout, Duration::from_secs(7));
        assert_eq!(m.input, vec![InputModality::Text]);
        assert_eq!(s.implicit_model().as_deref(), Some("local/m1"));
        let choice = s.configured_model("main").unwrap();
        assert_eq!(
            (choice.primary.as_str(), choice.source),
            ("local/m1", ModelSource::Implicit)
        );
    }

    #[test]
    fn unresolvable_key_is_a_warning_not_a_failure() {
        let cfg = config(serde_json::json!({
            "models": {"providers": {"x": {"baseUrl": "http://127.0.0.1:9/v1",
                "apiKey": {"source": "env", "id": "MISSING"}, "models": [{"id": "m"}]}}}
        }));
        let s = Settings::new(cfg, Path::new("/tmp"), &no_env);
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("models.providers.x.apiKey"));
        assert!(s.registry.resolve("x/m").is_ok());
    }

    #[test]
    fn model_selection_precedence_and_strictness() {
        let cfg = config(serde_json::json!({
            "agents": {"defaults": {"model": {"primary": "a/one", "fallbacks": ["b/two"]}},
                       "entries": {"ops": {"model": "c/three"}}}
        }));
        let s = Settings::new(cfg, Path::new("/tmp"), &no_env);
        let main = s.configured_model("main").unwrap();
        assert_eq!(main.fallbacks, vec!["b/two".to_owned()]);
        let ops = s.configured_model("ops").unwrap();
        assert_eq!((ops.primary.as_str(), ops.fallbacks.len()), ("c/three", 0));
        let mut entry = SessionEntry::new("s", 1);
        entry.provider_override = Some("d".into());
        entry.model_override = Some("four".into());
        let pinned = s.model_for_run("main", Some(&entry), None).unwrap();
        assert_eq!(
            (pinned.primary.as_str(), pinned.source),
            ("d/four", ModelSource::Session)
        );
        assert!(
            pinned.fallbacks.is_empty(),
            "explicit selections are strict"
        );
        let req = s
            .model_for_run("main", Some(&entry), Some("e/five"))
            .unwrap();
        assert_eq!(req.source, ModelSource::Request);
    }

    #[test]
    fn queue_precedence() {
        let cfg = config(serde_json::json!({
            "messages": {"queue": {"mode": "followup", "byChannel": {"telegram": "collect"},
                                   "debounceMsByChannel": {"telegram": 1200}, "cap": 5, "drop": "old"}}
        }));
        let s = Settings::new(cfg, Path::new("/tmp"), &no_env);
        let q = s.queue(Some("telegram"), None, None);
        assert_eq!(
            (q.mode, q.debounce, q.cap, q.drop),
            (
                QueueMode::Collect,
                Duration::from_millis(1200),
                5,
                QueueDrop::Old
            )
        );
        assert_eq!(s.queue(None, None, None).mode, QueueMode::Followup);
        let mut entry = SessionEntry::new("s", 1);
        entry.queue_mode = Some("interrupt".into());
        assert_eq!(
            s.queue(Some("telegram"), Some(&entry), None).mode,
            QueueMode::Interrupt
        );
        assert_eq!(
            s.queue(None, Some(&entry), Some(QueueMode::Steer)).mode,
            QueueMode::Steer
        );
        let d = Settings::new(Arc::new(Config::default()), Path::new("/tmp"), &no_env);
        assert_eq!(
            d.queue(None, None, None).describe(),
            "mode=steer, debounce=500ms, cap=20, drop=summarize"
        );
    }
}
