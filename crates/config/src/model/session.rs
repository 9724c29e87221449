//! `session.*`

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SessionScopeConfig {
    PerSender,
    Global,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DmScopeConfig {
    Main,
    PerPeer,
    PerChannelPeer,
    PerAccountChannelPeer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GroupScopeConfig {
    Main,
    PerGroup,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResetModeConfig {
    None,
    Daily,
    Idle,
}

section!(
    /// `session.reset`, `session.resetByType.*`, `session.resetByChannel.*`
    ResetConfig {
        mode: ResetModeConfig,
        /// Local hour of the daily reset (0–23, default 4).
        #[schemars(range(max = 23))]
        at_hour: u8,
        idle_minutes: u32,
    }
);

section!(
    /// `session.resetByType` (legacy `dm` is rejected).
    ResetByType {
        direct: ResetConfig,
        group: ResetConfig,
        thread: ResetConfig,
    }
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyAction {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChatTypeConfig {
    Direct,
    Group,
    Channel,
}

section!(SendPolicyMatch {
    channel: String,
    chat_type: ChatTypeConfig,
    key_prefix: String,
    raw_key_prefix: String,
});

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SendPolicyRule {
    pub action: PolicyAction,
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub matcher: Option<SendPolicyMatch>,
}

section!(SendPolicyConfig {
    default: PolicyAction,
    rules: Vec<SendPolicyRule>,
});

section!(
    /// `session.*`
    SessionConfig {
        scope: SessionScopeConfig,
        dm_scope: DmScopeConfig,
        group_scope: GroupScopeConfig,
        identity_links: BTreeMap<String, Vec<String>>,
        reset: ResetConfig,
        reset_by_type: ResetByType,
        reset_by_channel: BTreeMap<String, ResetConfig>,
        reset_triggers: Vec<String>,
        store: String,
        /// Accepted but ignored (always `main`).
        main_key: String,
        send_policy: SendPolicyConfig,
        notify_on_create: bool,
    }
);

/// Which conversation kind a reset policy is resolved for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTarget {
    Direct,
    Group,
    Thread,
}

impl SessionConfig {
    /// Effective reset policy: `resetByChannel.<channel>` > `resetByType.<kind>` > `reset`
    /// (field by field, falling back to the defaults: mode none, atHour 4).
    pub fn reset_policy(
        &self,
        channel: Option<&str>,
        target: ResetTarget,
    ) -> pincer_sessions::ResetPolicy {
        let by_channel = channel.and_then(|c| self.reset_by_channel.as_ref()?.get(c));
        let by_type = self.reset_by_type.as_ref().and_then(|t| match target {
            ResetTarget::Direct => t.direct.as_ref(),
            ResetTarget::Group => t.group.as_ref(),
            ResetTarget::Thread => t.thread.as_ref(),
        });
        let layers = [by_channel, by_type, self.reset.as_ref()];
        let mode = layers.iter().flatten().find_map(|l| l.mode);
        let at_hour = layers.iter().flatten().find_map(|l| l.at_hour);
        let idle = layers.iter().flatten().find_map(|l| l.idle_minutes);
        pincer_sessions::ResetPolicy {
            mode: match mode {
                Some(ResetModeConfig::Daily) => pincer_sessions::ResetMode::Daily,
                Some(ResetModeConfig::Idle) => pincer_sessions::ResetMode::Idle,
                Some(ResetModeConfig::None) | None => pincer_sessions::ResetMode::None,
            },
            at_hour: at_hour.unwrap_or(4).min(23),
            idle_minutes: idle,
        }
    }

    /// Key-shaping settings for `pincer_sessions::SessionKey::for_peer`.
    pub fn dm_scope(&self) -> pincer_sessions::DmScope {
        match self.dm_scope {
            Some(DmScopeConfig::PerPeer) => pincer_sessions::DmScope::PerPeer,
            Some(DmScopeConfig::PerChannelPeer) => pincer_sessions::DmScope::PerChannelPeer,
            Some(DmScopeConfig::PerAccountChannelPeer) => {
                pincer_sessions::DmScope::PerAccountChannelPeer
            }
            Some(DmScopeConfig::Main) | None => pincer_sessions::DmScope::Main,
        }
    }

    pub fn group_scope(&self) -> pincer_sessions::GroupScope {
        match self.group_scope {
            Some(GroupScopeConfig::Main) => pincer_sessions::GroupScope::Main,
            _ => pincer_sessions::GroupScope::PerGroup,
        }
    }

    pub fn scope_mode(&self) -> pincer_sessions::SessionScopeMode {
        match self.scope {
            Some(SessionScopeConfig::Global) => pincer_sessions::SessionScopeMode::Global,
            _ => pincer_sessions::SessionScopeMode::PerSender,
        }
    }

    pub fn identity_links(&self) -> pincer_sessions::IdentityLinks {
        pincer_sessions::IdentityLinks::new(self.identity_links.clone().unwrap_or_default())
    }
}
