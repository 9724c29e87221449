//! Model refs (`provider/model`) resolved against the configured and environment-provided
//! providers (runtime.md §8.1–8.3).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::config::{
    ApiKey, ApiKind, EnvSource, InputModality, ModelConfig, ModelCost, ProviderConfig,
    BUILTIN_PROVIDERS,
};

/// What a user sees when no provider is available at all.
pub const NO_PROVIDER_HELP: &str = "No model provider is configured. Set ANTHROPIC_API_KEY, OPENAI_API_KEY or \
OPENROUTER_API_KEY in the gateway's environment, or add a provider under models.providers.<id> in the config \
(baseUrl, apiKey, api: openai-completions | openai-responses | anthropic-messages | ollama, models: [{id}]), \
e.g. a local Ollama: {\"models\":{\"providers\":{\"ollama\":{\"baseUrl\":\"http://127.0.0.1:11434\",\"api\":\"ollama\"}}}}, \
then choose it with agents.defaults.model.primary = \"<provider>/<model>\".";

/// Idle-stream timeout for cloud APIs (runtime.md §4.5).
pub const CLOUD_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Idle-stream timeout for self-hosted servers, which may load a model first.
pub const SELF_HOSTED_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Context window assumed when neither config nor catalog says.
pub const DEFAULT_CONTEXT_WINDOW: u64 = 128_000;
/// Output limit assumed when neither config nor catalog says (Anthropic requires one).
pub const DEFAULT_MAX_TOKENS: u32 = 8192;

/// A parsed `provider/model` reference. The model part may itself contain slashes
/// (`openrouter/anthropic/claude-sonnet-4-6`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelRef {
    pub provider: String,
    pub model: String,
}

impl ModelRef {
    /// Parses `provider/model`.
    pub fn parse(value: &str) -> Result<Self, ResolveError> {
        let value = value.trim();
        match value.split_once('/') {
            Some((provider, model)) if !provider.trim().is_empty() && !model.trim().is_empty() => {
                Ok(Self {
                    provider: provider.trim().to_owned(),
                    model: model.trim().to_owned(),
                })
            }
            _ => Err(ResolveError::InvalidRef {
                value: value.to_owned(),
            }),
        }
    }
}

impl fmt::Display for ModelRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
}

/// Why a model ref cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("{NO_PROVIDER_HELP}")]
    NoProviders,
    #[error(
        "invalid model ref {value:?}: expected provider/model, e.g. anthropic/claude-sonnet-4-6"
    )]
    InvalidRef { value: String },
    #[error("unknown provider {provider:?} (available: {available}); add it under models.providers.{provider} or set its API key")]
    UnknownProvider { provider: String, available: String },
    #[error("unknown model {model:?} for provider {provider:?} (configured: {available})")]
    UnknownModel {
        provider: String,
        model: String,
        available: String,
    },
    #[error("provider {provider:?} uses api {api:?}, which Pincer does not support (use openai-completions, openai-responses, anthropic-messages or ollama)")]
    UnsupportedApi { provider: String, api: String },
    #[error("provider {provider:?} has no baseUrl (set models.providers.{provider}.baseUrl)")]
    MissingBaseUrl { provider: String },
    #[error("provider {provider:?} has no API key (set {hint})")]
    MissingApiKey { provider: String, hint: String },
}

/// Everything needed to call one model. `Debug` does not show the key.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModel {
    pub provider: String,
    /// Model id as sent to the provider.
    pub model: String,
    /// Display name.
    pub name: String,
    pub api: ApiKind,
    /// Base URL without trailing slash (`https://api.openai.com/v1`, `http://127.0.0.1:11434`).
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    pub headers: BTreeMap<String, String>,
    /// Send the key as `Authorization: Bearer` for Anthropic-style APIs too.
    pub auth_header: bool,
    pub context_window: u64,
    pub max_tokens: u32,
    pub reasoning: bool,
    pub input: Vec<InputModality>,
    pub cost: Option<ModelCost>,
    /// No bytes for this long ends the call with a `timeout` error.
    pub idle_timeout: Duration,
}

impl ResolvedModel {
    /// A model on an explicit endpoint (tests, benches, one-off callers).
    pub fn new(provider: &str, model: &str, api: ApiKind, base_url: &str) -> Self {
        let base_url = base_url.trim_end_matches('/').to_owned();
        Self {
            provider: provider.to_owned(),
            model: model.to_owned(),
            name: model.to_owned(),
            idle_timeout: default_idle_timeout(&api, &base_url),
            api,
            base_url,
            api_key: None,
            headers: BTreeMap::new(),
            auth_header: false,
            context_window: DEFAULT_CONTEXT_WINDOW,
            max_tokens: DEFAULT_MAX_TOKENS,
            reasoning: false,
            input: vec![InputModality::Text],
            cost: None,
        }
    }

    /// `provider/model`.
    pub fn model_ref(&self) -> String {
        format!("{}/{}", self.provider, self.model)
    }
}

/// A model listed in config (for `models.list`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub provider: String,
    pub id: String,
    pub name: String,
    pub api: ApiKind,
    pub context_window: u64,
    pub max_tokens: u32,
    pub reasoning: bool,
    pub input: Vec<InputModality>,
}

#[derive(Debug, Clone)]
struct ProviderEntry {
    api: ApiKind,
    base_url: Option<String>,
    api_key: Option<ApiKey>,
    key_hint: Option<String>,
    key_required: bool,
    headers: BTreeMap<String, String>,
    auth_header: bool,
    timeout_seconds: Option<u64>,
    max_tokens: Option<u32>,
    models: Vec<ModelConfig>,
    builtin: bool,
}

/// The providers available to this gateway.
#[derive(Debug, Clone, Default)]
pub struct ProviderRegistry {
    providers: BTreeMap<String, ProviderEntry>,
}

impl ProviderRegistry {
    /// Built-in providers whose key is in `env` (Ollama also when configured), overlaid
    /// with `models.providers` from config (merge mode: config fields win, built-in defaults
    /// fill the gaps).
    pub fn new(config: &BTreeMap<String, ProviderConfig>, env: &dyn EnvSource) -> Self {
        let mut providers = BTreeMap::new();
        for builtin in BUILTIN_PROVIDERS {
            let configured = config.get(builtin.id);
            let env_key = env.var(builtin.key_env).map(ApiKey::new);
            if env_key.is_none() && configured.is_none() {
                continue;
            }
            let cfg = configured.cloned().unwrap_or_default();
            providers.insert(
                builtin.id.to_owned(),
                ProviderEntry {
                    api: cfg.api.unwrap_or_else(|| ApiKind::parse(builtin.api)),
                    base_url: Some(cfg.base_url.unwrap_or_else(|| builtin.base_url.to_owned())),
                    api_key: cfg.api_key.or(env_key),
                    key_hint: Some(format!(
                        "{} or models.providers.{}.apiKey",
                        builtin.key_env, builtin.id
                    )),
                    key_required: builtin.key_required,
                    headers: cfg.headers,
                    auth_header: cfg.auth_header.unwrap_or(false),
                    timeout_seconds: cfg.timeout_seconds,
                    max_tokens: cfg.max_tokens,
                    models: cfg.models,
                    builtin: true,
                },
            );
        }
        for (id, cfg) in config {
            if providers.contains_key(id) {
                continue;
            }
            providers.insert(
                id.clone(),
                ProviderEntry {
                    // Custom providers are OpenAI-compatible unless they say otherwise.
                    api: cfg.api.clone().unwrap_or(ApiKind::OpenaiCompletions),
                    base_url: cfg.base_url.clone(),
                    api_key: cfg.api_key.clone(),
                    key_hint: None,
                    key_required: false,
                    headers: cfg.headers.clone(),
                    auth_header: cfg.auth_header.unwrap_or(false),
                    timeout_seconds: cfg.timeout_seconds,
                    max_tokens: cfg.max_tokens,
                    models: cfg.models.clone(),
                    builtin: false,
                },
            );
        }
        Self { providers }
    }

    /// Whether no provider at all is available (show [`NO_PROVIDER_HELP`]).
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// Ids of the available providers, sorted.
    pub fn provider_ids(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }

    /// Resolves `provider/model`.
    pub fn resolve(&self, model_ref: &str) -> Result<ResolvedModel, ResolveError> {
        if self.providers.is_empty() {
            return Err(ResolveError::NoProviders);
        }
        let ModelRef { provider, model } = ModelRef::parse(model_ref)?;
        let entry = self
            .providers
            .get(&provider)
            .ok_or_else(|| ResolveError::UnknownProvider {
                provider: provider.clone(),
                available: self.provider_ids().join(", "),
            })?;
        let model_cfg = entry.models.iter().find(|m| m.id == model);
        if model_cfg.is_none() && !entry.builtin && !entry.models.is_empty() {
            return Err(ResolveError::UnknownModel {
                provider,
                model,
                available: entry
                    .models
                    .iter()
                    .map(|m| m.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let api = model_cfg
            .and_then(|m| m.api.clone())
            .unwrap_or_else(|| entry.api.clone());
        if let ApiKind::Unsupported(api) = api {
            return Err(ResolveError::UnsupportedApi { provider, api });
        }
        let base_url = model_cfg
            .and_then(|m| m.base_url.clone())
            .or_else(|| entry.base_url.clone())
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| ResolveError::MissingBaseUrl {
                provider: provider.clone(),
            })?;
        if entry.key_required && entry.api_key.is_none() {
            return Err(ResolveError::MissingApiKey {
                hint: entry
                    .key_hint
                    .clone()
                    .unwrap_or_else(|| format!("models.providers.{provider}.apiKey")),
                provider,
            });
        }
        let base_url = base_url.trim_end_matches('/').to_owned();
        let mut headers = entry.headers.clone();
        if let Some(m) = model_cfg {
            headers.extend(m.headers.clone());
        }
        let idle_timeout = entry
            .timeout_seconds
            .map(Duration::from_secs)
            .unwrap_or_else(|| default_idle_timeout(&api, &base_url));
        Ok(ResolvedModel {
            name: model_cfg
                .and_then(|m| m.name.clone())
                .unwrap_or_else(|| model.clone()),
            context_window: model_cfg
                .and_then(|m| m.context_window)
                .unwrap_or(DEFAULT_CONTEXT_WINDOW),
            max_tokens: model_cfg
                .and_then(|m| m.max_tokens)
                .or(entry.max_tokens)
                .unwrap_or(DEFAULT_MAX_TOKENS),
            reasoning: model_cfg
                .and_then(|m| m.reasoning)
                .unwrap_or(matches!(provider.as_str(), "anthropic" | "openai")),
            input: model_cfg
                .map(|m| m.input.clone())
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| vec![InputModality::Text]),
            cost: model_cfg.and_then(|m| m.cost),
            api_key: entry.api_key.clone(),
            auth_header: entry.auth_header,
            headers,
            idle_timeout,
            api,
            base_url,
            provider,
            model,
        })
    }

    /// Resolves a primary model and its fallbacks. The primary must resolve; fallbacks that
    /// do not (missing key, typo) are skipped with a warning so one bad entry does not take
    /// the others down. Duplicates are dropped.
    pub fn resolve_chain(
        &self,
        primary: &str,
        fallbacks: &[String],
    ) -> Result<Vec<ResolvedModel>, ResolveError> {
        let mut chain = vec![self.resolve(primary)?];
        for fallback in fallbacks {
            match self.resolve(fallback) {
                Ok(model)
                    if !chain
                        .iter()
                        .any(|m| m.provider == model.provider && m.model == model.model) =>
                {
                    chain.push(model)
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(fallback = %fallback, %error, "skipping unusable fallback model")
                }
            }
        }
        Ok(chain)
    }

    /// Models listed in config, per provider, in order.
    pub fn models(&self) -> Vec<ModelInfo> {
        let mut out = Vec::new();
        for (provider, entry) in &self.providers {
            for m in &entry.models {
                out.push(ModelInfo {
                    provider: provider.clone(),
                    id: m.id.clone(),
                    name: m.name.clone().unwrap_or_else(|| m.id.clone()),
                    api: m.api.clone().unwrap_or_else(|| entry.api.clone()),
                    context_window: m.context_window.unwrap_or(DEFAULT_CONTEXT_WINDOW),
                    max_tokens: m
                        .max_tokens
                        .or(entry.max_tokens)
                        .unwrap_or(DEFAULT_MAX_TOKENS),
                    reasoning: m.reasoning.unwrap_or(false),
                    input: if m.input.is_empty() {
                        vec![InputModality::Text]
                    } else {
                        m.input.clone()
                    },
                });
            }
        }
        out
    }
}

/// Self-hosted servers (loopback/private addresses, Ollama) get the longer idle timeout.
pub(crate) fn default_idle_timeout(api: &ApiKind, base_url: &str) -> Duration {
    if *api == ApiKind::Ollama || is_private_host(base_url) {
        SELF_HOSTED_IDLE_TIMEOUT
    } else {
        CLOUD_IDLE_TIMEOUT
    }
}

fn is_private_host(base_url: &str) -> bool {
    let rest = base_url
        .split_once("://")
        .map_or(base_url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    if host.eq_ignore_ascii_case("localhost") || host == "::1" || host.ends_with(".local") {
        return true;
    }
    match host.parse::<std::net::Ipv4Addr>() {
        Ok(ip) => ip.is_loopback() || ip.is_private() || ip.is_link_local(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_refs_with_slashes_in_the_model() {
        let r = ModelRef::parse("openrouter/anthropic/claude-sonnet-4-6").unwrap();
        assert_eq!(
            (r.provider.as_str(), r.model.as_str()),
            ("openrouter", "anthropic/claude-sonnet-4-6")
        );
        assert_eq!(r.to_string(), "openrouter/anthropic/claude-sonnet-4-6");
        assert_eq!(
            ModelRef::parse("ollama/llama3.1:8b").unwrap().model,
            "llama3.1:8b"
        );
        for bad in ["", "claude", "/x", "x/", " / "] {
            assert!(
                matches!(ModelRef::parse(bad), Err(ResolveError::InvalidRef { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn env_keys_enable_builtin_providers() {
        let reg = ProviderRegistry::new(
            &BTreeMap::new(),
            &env(&[
                ("ANTHROPIC_API_KEY", "sk-ant"),
                ("OPENROUTER_API_KEY", "sk-or"),
                ("OPENAI_API_KEY", ""),
            ]),
        );
        assert_eq!(reg.provider_ids(), vec!["anthropic", "openrouter"]);
        let m = reg.resolve("anthropic/claude-opus-4-6").unwrap();
        assert_eq!(m.api, ApiKind::AnthropicMessages);
        assert_eq!(m.base_url, "https://api.anthropic.com");
        assert_eq!(m.api_key.as_ref().map(ApiKey::expose), Some("sk-ant"));
        assert_eq!(m.idle_timeout, CLOUD_IDLE_TIMEOUT);
        assert!(
            !format!("{m:?}").contains("sk-ant"),
            "Debug must not leak keys"
        );
        let m = reg
            .resolve("openrouter/anthropic/claude-sonnet-4-6")
            .unwrap();
        assert_eq!(
            (m.api.clone(), m.base_url.as_str()),
            (ApiKind::OpenaiCompletions, "https://openrouter.ai/api/v1")
        );
        assert!(matches!(
            reg.resolve("openai/gpt-5"),
            Err(ResolveError::UnknownProvider { .. })
        ));
        assert!(matches!(
            reg.resolve("ollama/llama3"),
            Err(ResolveError::UnknownProvider { .. })
        ));
    }

    #[test]
    fn no_providers_gives_the_help_text() {
        let reg = ProviderRegistry::new(&BTreeMap::new(), &env(&[]));
        assert!(reg.is_empty());
        let err = reg.resolve("anthropic/x").unwrap_err();
        assert_eq!(err, ResolveError::NoProviders);
        assert!(
            err.to_string().contains("ANTHROPIC_API_KEY")
                && err.to_string().contains("models.providers")
        );
    }

    #[test]
    fn config_overlays_builtins_and_adds_custom_providers() {
        let config: BTreeMap<String, ProviderConfig> = serde_json::from_value(serde_json::json!({
            "ollama": {"models": [{"id": "llama3.1:8b", "contextWindow": 8192}]},
            "anthropic": {"apiKey": "from-config", "baseUrl": "http://127.0.0.1:9999/"},
            "vllm": {"baseUrl": "http://10.0.0.5:8000/v1", "models": [{"id": "qwen", "maxTokens": 2048, "reasoning": true}],
                     "headers": {"X-A": "1"}},
            "gem": {"baseUrl": "http://x", "api": "google-generative-ai"},
            "nourl": {"api": "openai-completions"}
        }))
        .unwrap();
        let reg = ProviderRegistry::new(&config, &env(&[("ANTHROPIC_API_KEY", "from-env")]));
        let m = reg.resolve("ollama/llama3.1:8b").unwrap();
        assert_eq!(
            (m.api.clone(), m.base_url.as_str(), m.context_window),
            (ApiKind::Ollama, "http://127.0.0.1:11434", 8192)
        );
        assert_eq!(m.idle_timeout, SELF_HOSTED_IDLE_TIMEOUT);
        assert!(m.api_key.is_none());
        // Built-in providers accept unlisted models (implicit catalog).
        assert!(reg.resolve("ollama/mistral").is_ok());
        let m = reg.resolve("anthropic/claude").unwrap();
        assert_eq!(m.api_key.as_ref().map(ApiKey::expose), Some("from-config"));
        assert_eq!(m.base_url, "http://127.0.0.1:9999");
        let m = reg.resolve("vllm/qwen").unwrap();
        assert_eq!(
            (m.api.clone(), m.max_tokens, m.reasoning),
            (ApiKind::OpenaiCompletions, 2048, true)
        );
        assert_eq!(
            m.idle_timeout, SELF_HOSTED_IDLE_TIMEOUT,
            "private address counts as self-hosted"
        );
        assert_eq!(m.headers.get("X-A").map(String::as_str), Some("1"));
        assert!(matches!(
            reg.resolve("vllm/other"),
            Err(ResolveError::UnknownModel { .. })
        ));
        assert!(matches!(
            reg.resolve("gem/x"),
            Err(ResolveError::UnsupportedApi { .. })
        ));
        assert!(matches!(
            reg.resolve("nourl/x"),
            Err(ResolveError::MissingBaseUrl { .. })
        ));
        assert_eq!(reg.models().len(), 2);
    }

    #[test]
    fn configured_builtin_without_key_is_a_clear_error() {
        let config: BTreeMap<String, ProviderConfig> =
            serde_json::from_value(serde_json::json!({"openai": {"models": [{"id": "gpt-5"}]}}))
                .unwrap();
        let reg = ProviderRegistry::new(&config, &env(&[]));
        let err = reg.resolve("openai/gpt-5").unwrap_err();
        assert!(err.to_string().contains("OPENAI_API_KEY"), "{err}");
    }

    #[test]
    fn chains_skip_unusable_fallbacks() {
        let reg = ProviderRegistry::new(
            &BTreeMap::new(),
            &env(&[("ANTHROPIC_API_KEY", "k"), ("OPENROUTER_API_KEY", "k")]),
        );
        let chain = reg
            .resolve_chain(
                "anthropic/a",
                &[
                    "openai/gpt".into(),
                    "openrouter/b".into(),
                    "anthropic/a".into(),
                ],
            )
            .unwrap();
        let refs: Vec<_> = chain.iter().map(ResolvedModel::model_ref).collect();
        assert_eq!(refs, vec!["anthropic/a", "openrouter/b"]);
        assert!(reg.resolve_chain("openai/gpt", &[]).is_err());
    }

    #[test]
    fn private_host_detection() {
        for (url, private) in [
            ("http://127.0.0.1:11434", true),
            ("http://localhost:8080/v1", true),
            ("http://[::1]:8000/v1", true),
            ("http://192.168.1.2/v1", true),
            ("https://api.openai.com/v1", false),
            ("https://8.8.8.8/v1", false),
        ] {
            assert_eq!(is_private_host(url), private, "{url}");
        }
    }
}
