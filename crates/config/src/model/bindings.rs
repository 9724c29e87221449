//! `bindings[]`: routes from channel conversations to agents.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::session::{DmScopeConfig, GroupScopeConfig};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BindingType {
    #[default]
    Route,
    Acp,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Binding {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<BindingType>,
    pub agent_id: String,
    #[serde(rename = "match")]
    pub matcher: BindingMatch,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<BindingSession>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BindingMatch {
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<PeerMatch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guild_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PeerKindConfig {
    Direct,
    Group,
    Channel,
    /// Legacy spelling of `direct`.
    Dm,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PeerMatch {
    pub kind: PeerKindConfig,
    pub id: String,
}

section!(BindingSession {
    dm_scope: DmScopeConfig,
    group_scope: GroupScopeConfig,
});
