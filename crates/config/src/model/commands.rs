//! `commands.*`: chat commands typed in channels (runtime spec §10).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::channels::AllowEntry;

/// `true`, `false` or `"auto"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum BoolOrAuto {
    Bool(bool),
    Auto(AutoLiteral),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AutoLiteral {
    Auto,
}

section!(
    /// `commands`
    CommandsConfig {
        native: BoolOrAuto,
        native_skills: BoolOrAuto,
        /// Parse `/commands` typed as text (default true).
        text: bool,
        bash: bool,
        bash_foreground_ms: u64,
        config: bool,
        mcp: bool,
        plugins: bool,
        debug: bool,
        restart: bool,
        /// `"<channel>:<senderId>"` entries allowed to run owner-only commands
        /// (`/activation`, `/model`, `/think`, …) from a channel.
        owner_allow_from: Vec<AllowEntry>,
        /// Per channel (`"*"` for all): who may run commands at all.
        allow_from: BTreeMap<String, Vec<AllowEntry>>,
    }
);
