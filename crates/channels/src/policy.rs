//! Access policy of one channel account (runtime spec §1.10, §6): who may DM the bot
//! (`dmPolicy` + `allowFrom`), which groups it serves (`groupPolicy`, `groups.<id>`,
//! `groupAllowFrom`, per-group `allowFrom`), and whether a group needs a mention.

use std::collections::HashMap;

use pincer_config::model::channels::{
    AllowEntry, DmPolicy as DmPolicyConfig, GroupPolicy as GroupPolicyConfig, GroupSettings,
};
use serde::{Deserialize, Serialize};

/// `dmPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    /// Unknown senders get a pairing code; the operator approves (default).
    #[default]
    Pairing,
    /// Only `allowFrom` and approved senders; others are ignored silently.
    Allowlist,
    /// Everyone.
    Open,
    /// No DMs at all.
    Disabled,
}

/// `groupPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupPolicy {
    /// Only listed groups (default; a missing channel block fails closed too).
    #[default]
    Allowlist,
    Open,
    Disabled,
}

/// `groupActivation` (`/activation mention|always`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupActivation {
    /// Answer only when mentioned (default).
    Mention,
    /// Answer every message.
    Always,
}

/// `groups.<id>` (also used for Discord guild ids and channel ids).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupRule {
    pub enabled: bool,
    pub require_mention: Option<bool>,
    /// Senders allowed in this group (empty = anyone allowed by the group policy).
    pub allow_from: Vec<String>,
}

/// The access settings of one channel account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AccessPolicy {
    pub dm_policy: DmPolicy,
    /// `allowFrom`: sender ids, `<channel>:<id>`, or `*`.
    pub allow_from: Vec<String>,
    pub group_policy: GroupPolicy,
    /// `groupAllowFrom`: senders allowed in any allowed group.
    pub group_allow_from: Vec<String>,
    /// `groups.<id>`; `*` applies to every group.
    pub groups: HashMap<String, GroupRule>,
    /// Mention requirement when no group rule says otherwise (default true).
    pub require_mention: bool,
}

/// Why a message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Refusal {
    DmDisabled,
    NotAllowlisted,
    GroupsDisabled,
    GroupNotAllowed,
    GroupDisabled,
    SenderNotAllowed,
}

/// The group verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAccess {
    Refused(Refusal),
    Allowed { require_mention: bool },
}

pub(crate) fn entry_text(e: &AllowEntry) -> String {
    match e {
        AllowEntry::Text(s) => s.trim().to_string(),
        AllowEntry::Number(n) => n.to_string(),
    }
}

fn list_matches(list: &[String], channel: &str, sender_id: &str) -> bool {
    list.iter().any(|entry| {
        let entry = entry.trim();
        entry == "*"
            || entry.eq_ignore_ascii_case(sender_id)
            || entry.split_once(':').is_some_and(|(c, id)| {
                c.eq_ignore_ascii_case(channel) && id.eq_ignore_ascii_case(sender_id)
            })
    })
}

impl AccessPolicy {
    /// The fail-closed defaults (pairing DMs, allowlisted groups with none listed).
    pub fn new() -> Self {
        AccessPolicy {
            require_mention: true,
            ..AccessPolicy::default()
        }
    }

    /// From a `channels.<name>` block (or an account block already merged with its root).
    pub fn from_config(
        dm_policy: Option<DmPolicyConfig>,
        allow_from: Option<&Vec<AllowEntry>>,
        group_policy: Option<GroupPolicyConfig>,
        group_allow_from: Option<&Vec<AllowEntry>>,
        groups: Option<&std::collections::BTreeMap<String, GroupSettings>>,
        require_mention: Option<bool>,
    ) -> Self {
        let list = |l: Option<&Vec<AllowEntry>>| l.into_iter().flatten().map(entry_text).collect();
        AccessPolicy {
            dm_policy: match dm_policy {
                Some(DmPolicyConfig::Allowlist) => DmPolicy::Allowlist,
                Some(DmPolicyConfig::Open) => DmPolicy::Open,
                Some(DmPolicyConfig::Disabled) => DmPolicy::Disabled,
                Some(DmPolicyConfig::Pairing) | None => DmPolicy::Pairing,
            },
            allow_from: list(allow_from),
            group_policy: match group_policy {
                Some(GroupPolicyConfig::Open) => GroupPolicy::Open,
                Some(GroupPolicyConfig::Disabled) => GroupPolicy::Disabled,
                Some(GroupPolicyConfig::Allowlist) | None => GroupPolicy::Allowlist,
            },
            group_allow_from: list(group_allow_from),
            groups: groups
                .into_iter()
                .flatten()
                .map(|(id, g)| {
                    (
                        id.trim().to_string(),
                        GroupRule {
                            enabled: g.enabled.unwrap_or(true),
                            require_mention: g.require_mention,
                            allow_from: list(g.allow_from.as_ref()),
                        },
                    )
                })
                .collect(),
            require_mention: require_mention.unwrap_or(true),
        }
    }

    /// `allowFrom` (config) admits this DM sender.
    pub fn dm_allowlisted(&self, channel: &str, sender_id: &str) -> bool {
        list_matches(&self.allow_from, channel, sender_id)
    }

    /// The rule for a group: the first of `ids` (chat, parent chat, guild) that has one, then `*`.
    fn group_rule(&self, ids: &[&str]) -> Option<&GroupRule> {
        ids.iter()
            .find_map(|id| self.groups.get(*id))
            .or_else(|| self.groups.get("*"))
    }

    /// Group access for a message in chat `ids[0]` (then its parent chat and guild ids).
    pub fn group_access(&self, channel: &str, ids: &[&str], sender_id: &str) -> GroupAccess {
        let rule = self.group_rule(ids);
        match self.group_policy {
            GroupPolicy::Disabled => return GroupAccess::Refused(Refusal::GroupsDisabled),
            GroupPolicy::Allowlist => {
                let listed = rule.is_some();
                let sender_listed = !self.group_allow_from.is_empty()
                    && list_matches(&self.group_allow_from, channel, sender_id);
                if !listed && !sender_listed {
                    return GroupAccess::Refused(Refusal::GroupNotAllowed);
                }
            }
            GroupPolicy::Open => {}
        }
        if let Some(rule) = rule {
            if !rule.enabled {
                return GroupAccess::Refused(Refusal::GroupDisabled);
            }
            if !rule.allow_from.is_empty() && !list_matches(&rule.allow_from, channel, sender_id) {
                return GroupAccess::Refused(Refusal::SenderNotAllowed);
            }
        }
        if rule.is_none_or(|r| r.allow_from.is_empty())
            && !self.group_allow_from.is_empty()
            && !list_matches(&self.group_allow_from, channel, sender_id)
        {
            return GroupAccess::Refused(Refusal::SenderNotAllowed);
        }
        GroupAccess::Allowed {
            require_mention: rule
                .and_then(|r| r.require_mention)
                .unwrap_or(self.require_mention),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(require_mention: Option<bool>, allow: &[&str]) -> GroupRule {
        GroupRule {
            enabled: true,
            require_mention,
            allow_from: allow.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn dm_allowlist_matches_ids_channel_prefixed_ids_and_wildcard() {
        let mut p = AccessPolicy::new();
        p.allow_from = vec!["123".into(), "discord:987".into()];
        assert!(p.dm_allowlisted("telegram", "123"));
        assert!(p.dm_allowlisted("discord", "987"));
        assert!(
            !p.dm_allowlisted("telegram", "987"),
            "prefixed entries are per channel"
        );
        assert!(!p.dm_allowlisted("telegram", "1234"));
        p.allow_from = vec!["*".into()];
        assert!(p.dm_allowlisted("slack", "U1"));
    }

    #[test]
    fn groups_fail_closed_by_default_and_follow_rules() {
        let mut p = AccessPolicy::new();
        assert_eq!(
            p.group_access("telegram", &["-100"], "1"),
            GroupAccess::Refused(Refusal::GroupNotAllowed)
        );
        p.groups.insert("-100".into(), rule(None, &[]));
        assert_eq!(
            p.group_access("telegram", &["-100"], "1"),
            GroupAccess::Allowed {
                require_mention: true
            }
        );
        p.groups.insert("-200".into(), rule(Some(false), &["7"]));
        assert_eq!(
            p.group_access("telegram", &["-200"], "7"),
            GroupAccess::Allowed {
                require_mention: false
            }
        );
        assert_eq!(
            p.group_access("telegram", &["-200"], "8"),
            GroupAccess::Refused(Refusal::SenderNotAllowed)
        );
        // A thread inherits its parent chat's rule; a guild rule applies to its channels.
        assert!(matches!(
            p.group_access("discord", &["thread", "-200"], "7"),
            GroupAccess::Allowed { .. }
        ));
        p.groups.insert(
            "-300".into(),
            GroupRule {
                enabled: false,
                ..rule(None, &[])
            },
        );
        assert_eq!(
            p.group_access("telegram", &["-300"], "1"),
            GroupAccess::Refused(Refusal::GroupDisabled)
        );
        p.group_policy = GroupPolicy::Disabled;
        assert_eq!(
            p.group_access("telegram", &["-100"], "1"),
            GroupAccess::Refused(Refusal::GroupsDisabled)
        );
    }

    #[test]
    fn open_groups_wildcards_and_group_allow_from() {
        let mut p = AccessPolicy::new();
        p.group_policy = GroupPolicy::Open;
        assert!(matches!(
            p.group_access("slack", &["C1"], "U1"),
            GroupAccess::Allowed {
                require_mention: true
            }
        ));
        p.groups.insert("*".into(), rule(Some(false), &[]));
        assert_eq!(
            p.group_access("slack", &["C1"], "U1"),
            GroupAccess::Allowed {
                require_mention: false
            }
        );
        p.group_allow_from = vec!["U2".into()];
        assert_eq!(
            p.group_access("slack", &["C1"], "U1"),
            GroupAccess::Refused(Refusal::SenderNotAllowed)
        );
        assert!(matches!(
            p.group_access("slack", &["C1"], "U2"),
            GroupAccess::Allowed { .. }
        ));
        // Allowlist policy: a listed sender opens unlisted groups for themselves.
        let mut p = AccessPolicy::new();
        p.group_allow_from = vec!["U2".into()];
        assert!(matches!(
            p.group_access("slack", &["C9"], "U2"),
            GroupAccess::Allowed { .. }
        ));
        assert_eq!(
            p.group_access("slack", &["C9"], "U3"),
            GroupAccess::Refused(Refusal::GroupNotAllowed)
        );
    }
}
