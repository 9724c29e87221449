//! Provider configuration as the providers crate needs it. Field names follow
//! `models.providers.<id>` of the OpenClaw schema (runtime.md §8.2) so the config crate can
//! deserialise that section straight into these structs, or map onto them.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The wire API a provider/model speaks.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ApiKind {
    /// OpenAI Chat Completions (`/chat/completions`); OpenRouter, vLLM, llama.cpp, LM Studio…
    OpenaiCompletions,
    /// OpenAI Responses (`/responses`).
    OpenaiResponses,
    /// Anthropic Messages (`/v1/messages`).
    AnthropicMessages,
    /// Ollama native (`/api/chat`).
    Ollama,
    /// A schema value Pincer does not implement yet (kept so config still loads).
    Unsupported(String),
}

impl ApiKind {
    /// The schema spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::OpenaiCompletions => "openai-completions",
            Self::OpenaiResponses => "openai-responses",
            Self::AnthropicMessages => "anthropic-messages",
            Self::Ollama => "ollama",
            Self::Unsupported(other) => other,
        }
    }

    /// Parses the schema spelling.
    pub fn parse(value: &str) -> Self {
        match value {
            "openai-completions" => Self::OpenaiCompletions,
            "openai-responses" => Self::OpenaiResponses,
            "anthropic-messages" => Self::AnthropicMessages,
            "ollama" => Self::Ollama,
            other => Self::Unsupported(other.to_owned()),
        }
    }
}

impl fmt::Display for ApiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ApiKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ApiKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(Self::parse(&String::deserialize(deserializer)?))
    }
}

/// An API key. `Debug` never shows it; it is only read when building request headers.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The secret itself (for the Authorization header only).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// Input modalities a model accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputModality {
    Text,
    Image,
    Video,
    Audio,
}

/// Dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModelCost {
    pub input: f64,
    pub output: f64,
    pub cache_read: f64,
    pub cache_write: f64,
}

/// `models.providers.<id>.models[]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ModelConfig {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub input: Vec<InputModality>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<ModelCost>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// `models.providers.<id>` (secrets already resolved by the config layer).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ProviderConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api: Option<ApiKind>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Send the key as `Authorization: Bearer` even where the API has its own header
    /// (Anthropic-compatible proxies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_header: Option<bool>,
    /// Extends the idle-stream timeout (runtime.md §4.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelConfig>,
}

/// Where environment variables come from (the process, or a map in tests).
pub trait EnvSource {
    /// The variable's value, if set and non-empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The real process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl EnvSource for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl EnvSource for BTreeMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }
}

impl EnvSource for std::collections::HashMap<String, String> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).filter(|v| !v.trim().is_empty()).cloned()
    }
}

/// A provider Pincer knows without configuration.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinProvider {
    pub id: &'static str,
    /// Schema spelling of the wire API ([`ApiKind::parse`]).
    pub api: &'static str,
    pub base_url: &'static str,
    /// Environment variable holding the key; the provider is available when it is set.
    pub key_env: &'static str,
    /// Keyless local servers become available with the key variable *or* by appearing in
    /// config.
    pub key_required: bool,
}

/// Providers available from environment keys alone (runtime.md §8.3).
pub const BUILTIN_PROVIDERS: &[BuiltinProvider] = &[
    BuiltinProvider {
        id: "anthropic",
        api: "anthropic-messages",
        base_url: "https://api.anthropic.com",
        key_env: "ANTHROPIC_API_KEY",
        key_required: true,
    },
    BuiltinProvider {
        id: "openai",
        api: "openai-responses",
        base_url: "https://api.openai.com/v1",
        key_env: "OPENAI_API_KEY",
        key_required: true,
    },
    BuiltinProvider {
        id: "openrouter",
        api: "openai-completions",
        base_url: "https://openrouter.ai/api/v1",
        key_env: "OPENROUTER_API_KEY",
        key_required: true,
    },
    BuiltinProvider {
        id: "ollama",
        api: "ollama",
        base_url: "http://127.0.0.1:11434",
        key_env: "OLLAMA_API_KEY",
        key_required: false,
    },
];

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn deserialises_schema_shaped_config() {
        let json = serde_json::json!({
            "baseUrl": "http://127.0.0.1:8000/v1", "apiKey": "sk-test", "api": "openai-completions",
            "headers": {"X-Title": "pincer"}, "timeoutSeconds": 600,
            "models": [{"id": "qwen", "contextWindow": 32768, "maxTokens": 4096, "reasoning": true, "input": ["text", "image"],
                        "cost": {"input": 1, "output": 2}}]
        });
        let cfg: ProviderConfig = serde_json::from_value(json).unwrap();
        assert_eq!(cfg.api, Some(ApiKind::OpenaiCompletions));
        assert_eq!(cfg.models[0].context_window, Some(32768));
        assert_eq!(
            cfg.models[0].input,
            vec![InputModality::Text, InputModality::Image]
        );
        assert_eq!(format!("{:?}", cfg.api_key), "Some(ApiKey([redacted]))");
        assert!(!format!("{cfg:?}").contains("sk-test"));
        let other: ProviderConfig =
            serde_json::from_value(serde_json::json!({"api": "google-generative-ai"})).unwrap();
        assert_eq!(
            other.api,
            Some(ApiKind::Unsupported("google-generative-ai".into()))
        );
    }
}
