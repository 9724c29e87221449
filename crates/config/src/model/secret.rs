//! Credential fields: a plain string or a SecretRef `{source, provider, id}`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where a SecretRef is resolved from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SecretSource {
    /// An environment variable named `id`.
    Env,
    /// A file at path `id` (relative paths are relative to the config file's directory).
    File,
    /// The standard output of the command `id` (program and arguments, no shell).
    Exec,
    /// Pincer's secret store (entry `id` of `provider`).
    Store,
}

/// A reference to a secret kept outside the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub source: SecretSource,
    /// Provider alias; `env` and `store` have the built-in `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub id: String,
}

/// A credential: inline text (may use `${VAR}`) or a SecretRef.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum SecretInput {
    Plain(String),
    Ref(SecretRef),
}
