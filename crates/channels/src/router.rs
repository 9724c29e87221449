//! The bindings router (runtime spec §5): picks the agent that owns a conversation.
//!
//! Precedence (first matching tier wins; within a tier the first binding in array order):
//! 1 exact peer → 2 parent peer (thread inheritance) → 3 peer wildcard → 4 guild + roles →
//! 5 guild → 6 team → 7 account exact → 8 any account (`"*"`) → 9 fallback owner (caller
//! supplied, else the sole configured agent). With several agents and no match the router
//! **fails closed**: the message is not routed.

use pincer_config::model::bindings::{Binding, BindingType, PeerKindConfig};
use pincer_config::model::session::{DmScopeConfig, GroupScopeConfig};
use pincer_sessions::{normalize_agent_id, DmScope, GroupScope, PeerKind};

/// The facts of one conversation that bindings match on.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    pub channel: &'a str,
    pub account_id: &'a str,
    pub peer_kind: PeerKind,
    pub peer_id: &'a str,
    /// The parent conversation of a thread (Discord threads are channels of their own).
    pub parent_peer: Option<(PeerKind, &'a str)>,
    pub guild_id: Option<&'a str>,
    pub team_id: Option<&'a str>,
    pub roles: &'a [String],
}

/// Which rule decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteTier {
    Peer = 1,
    ParentPeer = 2,
    PeerWildcard = 3,
    GuildRoles = 4,
    Guild = 5,
    Team = 6,
    Account = 7,
    AnyAccount = 8,
    Fallback = 9,
}

/// A routing decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub agent_id: String,
    pub tier: RouteTier,
    /// Index into `bindings[]` (none for the fallback).
    pub binding_index: Option<usize>,
    /// The binding's `session` override.
    pub dm_scope: Option<DmScope>,
    pub group_scope: Option<GroupScope>,
}

/// No agent owns the conversation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no binding routes {channel}/{account_id} {peer} and {agents} agents are configured (failing closed)")]
pub struct NoRoute {
    pub channel: String,
    pub account_id: String,
    pub peer: String,
    pub agents: usize,
}

#[derive(Debug, Clone)]
struct Compiled {
    index: usize,
    agent_id: String,
    channel: String,
    /// `None` = the channel's default account; `Some("*")` = any.
    account: Option<String>,
    peer: Option<(PeerKind, String)>,
    guild: Option<String>,
    team: Option<String>,
    roles: Vec<String>,
    tier: RouteTier,
    dm_scope: Option<DmScope>,
    group_scope: Option<GroupScope>,
}

type PeerCheck<'a> = dyn Fn(&Compiled) -> bool + 'a;

/// Compiled bindings plus the agent roster.
#[derive(Debug, Clone, Default)]
pub struct Router {
    bindings: Vec<Compiled>,
    agents: Vec<String>,
    fallback_owner: Option<String>,
    default_accounts: Vec<(String, String)>,
}

fn peer_kind(k: PeerKindConfig) -> PeerKind {
    match k {
        PeerKindConfig::Direct | PeerKindConfig::Dm => PeerKind::Direct,
        PeerKindConfig::Group => PeerKind::Group,
        PeerKindConfig::Channel => PeerKind::Channel,
    }
}

fn norm(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

impl Router {
    /// `bindings` from config; `agents` = configured agent ids; `fallback_owner` = the
    /// caller-supplied owner for unmatched conversations (e.g. an explicit default), if any.
    pub fn new(bindings: &[Binding], agents: &[String], fallback_owner: Option<&str>) -> Self {
        let compiled = bindings
            .iter()
            .enumerate()
            .filter(|(_, b)| b.kind.unwrap_or_default() == BindingType::Route)
            .map(|(index, b)| {
                let m = &b.matcher;
                let peer = m.peer.as_ref().map(|p| (peer_kind(p.kind), norm(&p.id)));
                let roles: Vec<String> = m.roles.iter().flatten().map(|r| norm(r)).collect();
                let account = m.account_id.as_deref().map(norm);
                let tier = match (&peer, &m.guild_id, &m.team_id) {
                    (Some((_, id)), _, _) if id == "*" => RouteTier::PeerWildcard,
                    (Some(_), _, _) => RouteTier::Peer,
                    (None, Some(_), _) if !roles.is_empty() => RouteTier::GuildRoles,
                    (None, Some(_), _) => RouteTier::Guild,
                    (None, None, Some(_)) => RouteTier::Team,
                    _ if account.as_deref() == Some("*") => RouteTier::AnyAccount,
                    _ => RouteTier::Account,
                };
                let session = b.session.as_ref();
                Compiled {
                    index,
                    agent_id: normalize_agent_id(&b.agent_id),
                    channel: norm(&m.channel),
                    account,
                    peer,
                    guild: m.guild_id.as_deref().map(norm),
                    team: m.team_id.as_deref().map(norm),
                    roles,
                    tier,
                    dm_scope: session.and_then(|s| s.dm_scope).map(|d| match d {
                        DmScopeConfig::Main => DmScope::Main,
                        DmScopeConfig::PerPeer => DmScope::PerPeer,
                        DmScopeConfig::PerChannelPeer => DmScope::PerChannelPeer,
                        DmScopeConfig::PerAccountChannelPeer => DmScope::PerAccountChannelPeer,
                    }),
                    group_scope: session.and_then(|s| s.group_scope).map(|g| match g {
                        GroupScopeConfig::Main => GroupScope::Main,
                        GroupScopeConfig::PerGroup => GroupScope::PerGroup,
                    }),
                }
            })
            .collect();
        Router {
            bindings: compiled,
            agents: agents.iter().map(|a| normalize_agent_id(a)).collect(),
            fallback_owner: fallback_owner.map(normalize_agent_id),
            default_accounts: Vec::new(),
        }
    }

    /// Sets `channels.<channel>.defaultAccount` (bindings without `accountId` match it;
    /// `default` otherwise).
    pub fn with_default_account(mut self, channel: &str, account_id: &str) -> Self {
        self.default_accounts
            .push((norm(channel), norm(account_id)));
        self
    }

    fn default_account(&self, channel: &str) -> &str {
        self.default_accounts
            .iter()
            .find(|(c, _)| c == channel)
            .map_or(pincer_sessions::DEFAULT_ACCOUNT_ID, |(_, a)| a.as_str())
    }

    /// Every field the binding names (other than the peer, checked per tier) matches.
    fn matches_common(
        &self,
        b: &Compiled,
        input: &RouteInput<'_>,
        channel: &str,
        account: &str,
    ) -> bool {
        if b.channel != channel {
            return false;
        }
        let account_ok = match b.account.as_deref() {
            Some("*") => true,
            Some(a) => a == account,
            None => account == self.default_account(channel),
        };
        if !account_ok {
            return false;
        }
        if let Some(g) = &b.guild {
            if input.guild_id.map(norm).as_deref() != Some(g.as_str()) {
                return false;
            }
        }
        if let Some(t) = &b.team {
            if input.team_id.map(norm).as_deref() != Some(t.as_str()) {
                return false;
            }
        }
        if !b.roles.is_empty() && !input.roles.iter().any(|r| b.roles.contains(&norm(r))) {
            return false;
        }
        true
    }

    /// Routes one conversation.
    pub fn route(&self, input: &RouteInput<'_>) -> Result<Route, NoRoute> {
        let channel = norm(input.channel);
        let account = norm(input.account_id);
        let peer_id = norm(input.peer_id);
        let parent = input.parent_peer.map(|(k, id)| (k, norm(id)));
        let found = |tier: RouteTier, peer_ok: &dyn Fn(&Compiled) -> bool| {
            self.bindings.iter().find(|b| {
                let tier_ok = match tier {
                    RouteTier::ParentPeer => b.tier == RouteTier::Peer,
                    t => b.tier == t,
                };
                tier_ok && peer_ok(b) && self.matches_common(b, input, &channel, &account)
            })
        };
        let tiers: [(RouteTier, &PeerCheck<'_>); 8] = [
            (RouteTier::Peer, &|b: &Compiled| {
                b.peer.as_ref() == Some(&(input.peer_kind, peer_id.clone()))
            }),
            (RouteTier::ParentPeer, &|b: &Compiled| {
                parent.is_some() && b.peer.as_ref() == parent.as_ref()
            }),
            (RouteTier::PeerWildcard, &|b: &Compiled| {
                b.peer.as_ref().is_some_and(|(k, _)| *k == input.peer_kind)
            }),
            (RouteTier::GuildRoles, &|_| true),
            (RouteTier::Guild, &|_| true),
            (RouteTier::Team, &|_| true),
            (RouteTier::Account, &|_| true),
            (RouteTier::AnyAccount, &|_| true),
        ];
        for (tier, peer_ok) in tiers {
            if let Some(b) = found(tier, peer_ok) {
                return Ok(Route {
                    agent_id: b.agent_id.clone(),
                    tier,
                    binding_index: Some(b.index),
                    dm_scope: b.dm_scope,
                    group_scope: b.group_scope,
                });
            }
        }
        let fallback = match (&self.fallback_owner, self.agents.as_slice()) {
            (Some(owner), _) => Some(owner.clone()),
            (None, []) => Some(pincer_sessions::DEFAULT_AGENT_ID.to_string()),
            (None, [sole]) => Some(sole.clone()),
            (None, _) => None,
        };
        match fallback {
            Some(agent_id) => Ok(Route {
                agent_id,
                tier: RouteTier::Fallback,
                binding_index: None,
                dm_scope: None,
                group_scope: None,
            }),
            None => Err(NoRoute {
                channel,
                account_id: account,
                peer: format!("{:?}:{}", input.peer_kind, peer_id).to_ascii_lowercase(),
                agents: self.agents.len(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bindings(json: serde_json::Value) -> Vec<Binding> {
        serde_json::from_value(json).unwrap()
    }

    fn input<'a>(peer_kind: PeerKind, peer_id: &'a str) -> RouteInput<'a> {
        RouteInput {
            channel: "discord",
            account_id: "default",
            peer_kind,
            peer_id,
            parent_peer: None,
            guild_id: None,
            team_id: None,
            roles: &[],
        }
    }

    fn agents(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn precedence_tiers_in_order() {
        let b = bindings(serde_json::json!([
            {"agentId": "any", "match": {"channel": "discord", "accountId": "*"}},
            {"agentId": "acct", "match": {"channel": "discord"}},
            {"agentId": "team", "match": {"channel": "slack", "teamId": "T1"}},
            {"agentId": "guild", "match": {"channel": "discord", "guildId": "G1"}},
            {"agentId": "roles", "match": {"channel": "discord", "guildId": "G1", "roles": ["mod"]}},
            {"agentId": "wild", "match": {"channel": "discord", "peer": {"kind": "channel", "id": "*"}}},
            {"agentId": "parent", "match": {"channel": "discord", "peer": {"kind": "channel", "id": "C-PARENT"}}},
            {"agentId": "exact", "match": {"channel": "discord", "peer": {"kind": "channel", "id": "c-thread"}}},
        ]));
        let r = Router::new(
            &b,
            &agents(&[
                "any", "acct", "team", "guild", "roles", "wild", "parent", "exact",
            ]),
            None,
        );
        let roles = vec!["MOD".to_string()];
        let mut i = input(PeerKind::Channel, "C-THREAD");
        i.parent_peer = Some((PeerKind::Channel, "c-parent"));
        i.guild_id = Some("g1");
        i.roles = &roles;
        let got = r.route(&i).unwrap();
        assert_eq!(
            (got.agent_id.as_str(), got.tier, got.binding_index),
            ("exact", RouteTier::Peer, Some(7))
        );
        i.peer_id = "other-thread";
        assert_eq!(r.route(&i).unwrap().agent_id, "parent");
        i.parent_peer = None;
        assert_eq!(r.route(&i).unwrap().agent_id, "wild");
        i.peer_kind = PeerKind::Direct;
        assert_eq!(r.route(&i).unwrap().agent_id, "roles");
        i.roles = &[];
        assert_eq!(r.route(&i).unwrap().agent_id, "guild");
        i.guild_id = None;
        assert_eq!(
            r.route(&i).unwrap().agent_id,
            "acct",
            "omitted accountId = default account"
        );
        i.account_id = "work";
        assert_eq!(r.route(&i).unwrap().agent_id, "any");
        let mut s = input(PeerKind::Channel, "C9");
        s.channel = "slack";
        s.team_id = Some("T1");
        assert_eq!(r.route(&s).unwrap().tier, RouteTier::Team);
    }

    #[test]
    fn first_binding_wins_within_a_tier_and_all_fields_must_match() {
        let b = bindings(serde_json::json!([
            {"agentId": "first", "match": {"channel": "telegram", "accountId": "bot2", "peer": {"kind": "direct", "id": "42"}}},
            {"agentId": "second", "match": {"channel": "telegram", "peer": {"kind": "direct", "id": "42"}}},
            {"agentId": "third", "match": {"channel": "telegram", "peer": {"kind": "dm", "id": "42"}}},
        ]));
        let r = Router::new(&b, &agents(&["first", "second", "third"]), None);
        let mut i = input(PeerKind::Direct, "42");
        i.channel = "telegram";
        assert_eq!(
            r.route(&i).unwrap().agent_id,
            "second",
            "first binding needs account bot2"
        );
        i.account_id = "bot2";
        assert_eq!(r.route(&i).unwrap().agent_id, "first");
        i.account_id = "bot3";
        assert!(
            r.route(&i).is_err(),
            "no binding for bot3 and three agents: fail closed"
        );
    }

    #[test]
    fn fallback_owner_sole_agent_and_fail_closed() {
        let i = input(PeerKind::Direct, "1");
        assert_eq!(
            Router::new(&[], &[], None).route(&i).unwrap().agent_id,
            "main"
        );
        assert_eq!(
            Router::new(&[], &agents(&["ops"]), None)
                .route(&i)
                .unwrap()
                .agent_id,
            "ops"
        );
        let err = Router::new(&[], &agents(&["a", "b"]), None)
            .route(&i)
            .unwrap_err();
        assert_eq!(err.agents, 2);
        let r = Router::new(&[], &agents(&["a", "b"]), Some("B"));
        let got = r.route(&i).unwrap();
        assert_eq!(
            (got.agent_id.as_str(), got.tier),
            ("b", RouteTier::Fallback)
        );
    }

    #[test]
    fn acp_bindings_are_not_routes_and_session_overrides_are_carried() {
        let b = bindings(serde_json::json!([
            {"type": "acp", "agentId": "acp", "match": {"channel": "discord"}},
            {"agentId": "x", "match": {"channel": "discord"}, "session": {"dmScope": "per-peer"}},
        ]));
        let got = Router::new(&b, &agents(&["acp", "x"]), None)
            .route(&input(PeerKind::Direct, "1"))
            .unwrap();
        assert_eq!(
            (got.agent_id.as_str(), got.dm_scope),
            ("x", Some(DmScope::PerPeer))
        );
        let r =
            Router::new(&b, &agents(&["acp", "x"]), None).with_default_account("discord", "Main");
        assert!(
            r.route(&input(PeerKind::Direct, "1")).is_err(),
            "default account is now `main`"
        );
    }
}
