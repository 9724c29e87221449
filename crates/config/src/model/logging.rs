//! `logging` and `env`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Silent,
    Fatal,
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleStyle {
    Pretty,
    Json,
}

section!(
    /// `logging`
    LoggingConfig {
        level: LogLevel,
        file: String,
        max_file_bytes: u64,
        console_level: LogLevel,
        console_style: ConsoleStyle,
        redact_patterns: Vec<String>,
    }
);

section!(ShellEnv {
    enabled: bool,
    timeout_ms: u64,
});

section!(
    /// `env`: variables made available to the process (never override set ones).
    EnvConfig {
        shell_env: ShellEnv,
        vars: BTreeMap<String, String>,
    }
);
