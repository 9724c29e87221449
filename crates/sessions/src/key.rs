//! The session key grammar (runtime spec §3.1).
//!
//! Every stored key is `agent:<agentId>:<rest>`, plus the two special keys `global` and
//! `unknown`. A key is parsed once into a [`SessionKey`]; its `Display` renders the canonical
//! string, and `parse(display(k)) == k` for every key whose ids do not themselves contain a
//! structural segment (`thread`, `topic`) — a property test enforces it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::agent_id::normalize_agent_id;

/// The account id used when a channel message carries none.
pub const DEFAULT_ACCOUNT_ID: &str = "default";

/// Longest key accepted anywhere (the protocol caps `sessionKey` at 512 characters).
pub const MAX_KEY_LEN: usize = 512;

/// A parsed session key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionKey {
    /// `agent:<agentId>:<scope>[:thread:<id>|:topic:<id>]`
    Agent {
        agent_id: String,
        scope: SessionScope,
        thread: Option<ThreadRef>,
    },
    /// `global` (`session.scope: "global"`).
    Global,
    /// `unknown` (the reference's bucket for unattributable traffic).
    Unknown,
}

/// What follows `agent:<agentId>:`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SessionScope {
    /// `main`: the agent's main DM session (dmScope `main`, groupScope `main`).
    Main,
    /// `direct:<peer>` (per-peer), `<channel>:direct:<peer>` (per-channel-peer),
    /// `<channel>:<account>:direct:<peer>` (per-account-channel-peer).
    Direct {
        channel: Option<String>,
        account_id: Option<String>,
        peer_id: String,
    },
    /// `<channel>:group:<groupId>`
    Group { channel: String, group_id: String },
    /// `<channel>:channel:<channelId>`
    Channel { channel: String, channel_id: String },
    /// `cron:<jobId>` or the per-run `cron:<jobId>:run:<sessionId>`.
    Cron {
        job_id: String,
        run_session_id: Option<String>,
    },
    /// `hook:<id>` (`hook:<uuid>`, `hook:gmail:<message-id>`).
    Hook { id: String },
    /// `subagent:<uuid>[:subagent:<uuid>...]`; depth = number of ids.
    Subagent { ids: Vec<String> },
    /// `acp:<uuid>`
    Acp { id: String },
    /// `<channel>:slash:<userId>` (native slash commands).
    Slash { channel: String, user_id: String },
    /// `boot:<runId>`
    Boot { run_id: String },
    /// Anything else after `agent:<id>:` (explicit CLI keys, probes, `session:<id>` ...).
    Other(String),
}

/// A thread or forum-topic suffix on a conversation key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ThreadRef {
    Thread(String),
    Topic(String),
}

/// Why a key could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("session key is empty")]
    Empty,
    #[error("session key is longer than {MAX_KEY_LEN} characters")]
    TooLong,
    #[error("session key {0:?} is not canonical: expected `agent:<agentId>:<rest>`, `global` or `unknown`")]
    NotCanonical(String),
    #[error("session key {0:?} has an empty segment (`::` or a trailing `:`)")]
    EmptySegment(String),
    #[error("session key {0:?} has an invalid agent id (expected ^[a-z0-9][a-z0-9_-]{{0,63}}$)")]
    BadAgentId(String),
    #[error("cannot build a session key: {0}")]
    Build(&'static str),
}

/// Coarse chat type of a conversation key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChatType {
    Direct,
    Group,
    Channel,
}

impl ChatType {
    pub fn as_str(self) -> &'static str {
        match self {
            ChatType::Direct => "direct",
            ChatType::Group => "group",
            ChatType::Channel => "channel",
        }
    }
}

impl SessionKey {
    /// `agent:<agentId>:main`.
    pub fn main(agent_id: &str) -> SessionKey {
        SessionKey::Agent {
            agent_id: normalize_agent_id(agent_id),
            scope: SessionScope::Main,
            thread: None,
        }
    }

    /// `agent:<agentId>:cron:<jobId>`.
    pub fn cron(agent_id: &str, job_id: &str) -> Result<SessionKey, KeyError> {
        Ok(SessionKey::Agent {
            agent_id: normalize_agent_id(agent_id),
            scope: SessionScope::Cron {
                job_id: non_empty(job_id, "cron job id is empty")?.to_ascii_lowercase(),
                run_session_id: None,
            },
            thread: None,
        })
    }

    /// `agent:<agentId>:cron:<jobId>:run:<sessionId>` (one isolated cron run).
    pub fn cron_run(
        agent_id: &str,
        job_id: &str,
        session_id: &str,
    ) -> Result<SessionKey, KeyError> {
        Ok(SessionKey::Agent {
            agent_id: normalize_agent_id(agent_id),
            scope: SessionScope::Cron {
                job_id: non_empty(job_id, "cron job id is empty")?.to_ascii_lowercase(),
                run_session_id: Some(
                    non_empty(session_id, "cron run session id is empty")?.to_ascii_lowercase(),
                ),
            },
            thread: None,
        })
    }

    /// `agent:<agentId>:hook:<id>` (webhook runs; `id` is a uuid or `gmail:<message-id>`).
    pub fn hook(agent_id: &str, id: &str) -> Result<SessionKey, KeyError> {
        Ok(SessionKey::Agent {
            agent_id: normalize_agent_id(agent_id),
            scope: SessionScope::Hook {
                id: non_empty(id, "hook id is empty")?.to_ascii_lowercase(),
            },
            thread: None,
        })
    }

    /// `agent:<agentId>:subagent:<uuid>`, or a nested child of `parent` when given.
    pub fn subagent(parent: &SessionKey, agent_id: &str, id: &str) -> Result<SessionKey, KeyError> {
        let id = non_empty(id, "subagent id is empty")?.to_ascii_lowercase();
        let mut ids = match parent {
            SessionKey::Agent {
                scope: SessionScope::Subagent { ids },
                ..
            } => ids.clone(),
            _ => Vec::new(),
        };
        ids.push(id);
        Ok(SessionKey::Agent {
            agent_id: normalize_agent_id(agent_id),
            scope: SessionScope::Subagent { ids },
            thread: None,
        })
    }

    /// Builds the key of a channel conversation from routing facts and the session config.
    pub fn for_peer(
        route: &PeerRoute<'_>,
        scope: &RoutingScope<'_>,
    ) -> Result<SessionKey, KeyError> {
        if scope.session_scope == SessionScopeMode::Global {
            return Ok(SessionKey::Global);
        }
        let agent_id = normalize_agent_id(route.agent_id);
        let channel = non_empty(route.channel.trim(), "channel is empty")?.to_ascii_lowercase();
        let raw_peer = non_empty(route.peer_id.trim(), "peer id is empty")?;
        let scope_value = match route.peer_kind {
            PeerKind::Direct => {
                let peer = || {
                    scope
                        .identity_links
                        .and_then(|links| links.resolve(&channel, raw_peer))
                        .unwrap_or_else(|| raw_peer.to_ascii_lowercase())
                };
                match scope.dm_scope {
                    DmScope::Main => SessionScope::Main,
                    DmScope::PerPeer => SessionScope::Direct {
                        channel: None,
                        account_id: None,
                        peer_id: peer(),
                    },
                    DmScope::PerChannelPeer => SessionScope::Direct {
                        channel: Some(channel.clone()),
                        account_id: None,
                        peer_id: peer(),
                    },
                    DmScope::PerAccountChannelPeer => SessionScope::Direct {
                        channel: Some(channel.clone()),
                        account_id: Some(normalize_account_id(route.account_id)),
                        peer_id: peer(),
                    },
                }
            }
            PeerKind::Group | PeerKind::Channel => {
                if scope.group_scope == GroupScope::Main {
                    SessionScope::Main
                } else {
                    let id = if preserves_case(&channel) {
                        raw_peer.to_string()
                    } else {
                        raw_peer.to_ascii_lowercase()
                    };
                    if route.peer_kind == PeerKind::Group {
                        SessionScope::Group {
                            channel: channel.clone(),
                            group_id: id,
                        }
                    } else {
                        SessionScope::Channel {
                            channel: channel.clone(),
                            channel_id: id,
                        }
                    }
                }
            }
        };
        let thread = match (&scope_value, route.topic_id, route.thread_id) {
            // Threads and topics only split real conversations, never the shared main session.
            (SessionScope::Main, _, _) => None,
            (SessionScope::Group { .. }, Some(topic), _) if !topic.trim().is_empty() => {
                Some(ThreadRef::Topic(topic.trim().to_ascii_lowercase()))
            }
            (_, _, Some(thread)) if !thread.trim().is_empty() => {
                Some(ThreadRef::Thread(thread.trim().to_ascii_lowercase()))
            }
            _ => None,
        };
        Ok(SessionKey::Agent {
            agent_id,
            scope: scope_value,
            thread,
        })
    }

    /// Strict parse of a canonical key (what the store holds).
    pub fn parse(input: &str) -> Result<SessionKey, KeyError> {
        if input.is_empty() {
            return Err(KeyError::Empty);
        }
        if input.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong);
        }
        match input {
            "global" => return Ok(SessionKey::Global),
            "unknown" => return Ok(SessionKey::Unknown),
            _ => {}
        }
        let Some(after) = input.strip_prefix("agent:") else {
            return Err(KeyError::NotCanonical(input.to_string()));
        };
        let Some((agent_id, rest)) = after.split_once(':') else {
            return Err(KeyError::NotCanonical(input.to_string()));
        };
        if !crate::agent_id::is_valid_agent_id(agent_id) {
            return Err(KeyError::BadAgentId(input.to_string()));
        }
        if rest.is_empty() || rest.split(':').any(str::is_empty) {
            return Err(KeyError::EmptySegment(input.to_string()));
        }
        let (scope, thread) = parse_rest(rest);
        Ok(SessionKey::Agent {
            agent_id: agent_id.to_string(),
            scope,
            thread,
        })
    }

    /// Lenient parse of anything a user or client may send (`main`, `agent:Ops:Main`, a bare
    /// `cron:job`, legacy `dm` segments ...) into the canonical key. Bare keys are scoped to
    /// `default_agent`; case is folded except for ids that are case-sensitive on their
    /// platform (Signal groups, Matrix rooms).
    pub fn canonicalize(input: &str, default_agent: &str) -> Result<SessionKey, KeyError> {
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(KeyError::Empty);
        }
        if trimmed.len() > MAX_KEY_LEN {
            return Err(KeyError::TooLong);
        }
        let lower = trimmed.to_ascii_lowercase();
        match lower.as_str() {
            "global" => return Ok(SessionKey::Global),
            "unknown" => return Ok(SessionKey::Unknown),
            _ => {}
        }
        let (agent_id, rest) = if lower.starts_with("agent:") {
            let after = &trimmed["agent:".len()..];
            match after.split_once(':') {
                Some((agent, rest)) if !agent.trim().is_empty() => {
                    (normalize_agent_id(agent), rest)
                }
                _ => return Err(KeyError::NotCanonical(trimmed.to_string())),
            }
        } else {
            (normalize_agent_id(default_agent), trimmed)
        };
        if rest.is_empty() || rest.split(':').any(|s| s.trim().is_empty()) {
            return Err(KeyError::EmptySegment(trimmed.to_string()));
        }
        // Legacy `dm` marker becomes `direct`; everything is folded, then case-sensitive ids
        // are put back from the original text.
        let segments: Vec<&str> = rest.split(':').collect();
        let folded: Vec<String> = segments
            .iter()
            .map(|s| {
                let l = s.trim().to_ascii_lowercase();
                if l == "dm" {
                    "direct".to_string()
                } else {
                    l
                }
            })
            .collect();
        let (mut scope, thread) = parse_rest(&folded.join(":"));
        match &mut scope {
            SessionScope::Group { channel, group_id }
            | SessionScope::Channel {
                channel,
                channel_id: group_id,
            } if preserves_case(channel) => {
                // Segments 2.. up to the id length hold the original id.
                let id_segments = group_id.split(':').count();
                if let Some(original) = segments.get(2..2 + id_segments) {
                    *group_id = original
                        .iter()
                        .map(|s| s.trim())
                        .collect::<Vec<_>>()
                        .join(":");
                }
            }
            _ => {}
        }
        Ok(SessionKey::Agent {
            agent_id,
            scope,
            thread,
        })
    }

    /// The owning agent (`None` for `global` / `unknown`).
    pub fn agent_id(&self) -> Option<&str> {
        match self {
            SessionKey::Agent { agent_id, .. } => Some(agent_id),
            _ => None,
        }
    }

    /// True for `agent:<id>:main`.
    pub fn is_main(&self) -> bool {
        matches!(
            self,
            SessionKey::Agent {
                scope: SessionScope::Main,
                thread: None,
                ..
            }
        )
    }

    /// The conversation's chat type, when the key is a conversation.
    pub fn chat_type(&self) -> Option<ChatType> {
        match self {
            SessionKey::Agent { scope, .. } => match scope {
                SessionScope::Main | SessionScope::Direct { .. } | SessionScope::Slash { .. } => {
                    Some(ChatType::Direct)
                }
                SessionScope::Group { .. } => Some(ChatType::Group),
                SessionScope::Channel { .. } => Some(ChatType::Channel),
                _ => None,
            },
            _ => None,
        }
    }

    /// The channel named in the key, if any.
    pub fn channel(&self) -> Option<&str> {
        match self {
            SessionKey::Agent { scope, .. } => match scope {
                SessionScope::Direct { channel, .. } => channel.as_deref(),
                SessionScope::Group { channel, .. }
                | SessionScope::Channel { channel, .. }
                | SessionScope::Slash { channel, .. } => Some(channel),
                _ => None,
            },
            _ => None,
        }
    }

    /// A stable classification used for list filters and the store's `kind` column:
    /// `main`, `direct`, `group`, `channel`, `thread`, `cron`, `hook`, `subagent`, `acp`,
    /// `slash`, `boot`, `other`, `global`, `unknown`.
    pub fn classification(&self) -> &'static str {
        match self {
            SessionKey::Global => "global",
            SessionKey::Unknown => "unknown",
            SessionKey::Agent {
                thread: Some(_), ..
            } => "thread",
            SessionKey::Agent { scope, .. } => match scope {
                SessionScope::Main => "main",
                SessionScope::Direct { .. } => "direct",
                SessionScope::Group { .. } => "group",
                SessionScope::Channel { .. } => "channel",
                SessionScope::Cron { .. } => "cron",
                SessionScope::Hook { .. } => "hook",
                SessionScope::Subagent { .. } => "subagent",
                SessionScope::Acp { .. } => "acp",
                SessionScope::Slash { .. } => "slash",
                SessionScope::Boot { .. } => "boot",
                SessionScope::Other(_) => "other",
            },
        }
    }

    /// Nesting depth of a subagent key (0 for everything else).
    pub fn subagent_depth(&self) -> usize {
        match self {
            SessionKey::Agent {
                scope: SessionScope::Subagent { ids },
                ..
            } => ids.len(),
            _ => 0,
        }
    }

    /// The key without its thread/topic suffix (the parent conversation).
    pub fn base(&self) -> SessionKey {
        match self {
            SessionKey::Agent {
                agent_id, scope, ..
            } => SessionKey::Agent {
                agent_id: agent_id.clone(),
                scope: scope.clone(),
                thread: None,
            },
            other => other.clone(),
        }
    }

    /// The same conversation in a thread (`:thread:<id>`, lower-cased).
    pub fn with_thread(&self, thread_id: &str) -> Result<SessionKey, KeyError> {
        let id = non_empty(thread_id.trim(), "thread id is empty")?.to_ascii_lowercase();
        match self {
            SessionKey::Agent {
                agent_id,
                scope:
                    scope @ (SessionScope::Direct { .. }
                    | SessionScope::Group { .. }
                    | SessionScope::Channel { .. }),
                ..
            } => Ok(SessionKey::Agent {
                agent_id: agent_id.clone(),
                scope: scope.clone(),
                thread: Some(ThreadRef::Thread(id)),
            }),
            _ => Err(KeyError::Build(
                "threads only apply to direct, group and channel conversations",
            )),
        }
    }
}

fn non_empty<'a>(s: &'a str, what: &'static str) -> Result<&'a str, KeyError> {
    if s.is_empty() || s.split(':').any(str::is_empty) {
        Err(KeyError::Build(what))
    } else {
        Ok(s)
    }
}

fn normalize_account_id(account: Option<&str>) -> String {
    match account.map(str::trim) {
        Some(a) if !a.is_empty() => a.to_ascii_lowercase(),
        _ => DEFAULT_ACCOUNT_ID.to_string(),
    }
}

/// Signal group ids and Matrix room ids are case-sensitive on their platform.
fn preserves_case(channel: &str) -> bool {
    channel == "signal" || channel == "matrix"
}

/// Splits `id[:thread:<t>|:topic:<t>]` at the last suffix marker.
fn split_suffix(segments: &[&str], allow_topic: bool) -> (String, Option<ThreadRef>) {
    // The marker must leave at least one id segment before it and one after it.
    for i in (1..segments.len().saturating_sub(1)).rev() {
        let marker = segments[i];
        if marker == "thread" || (allow_topic && marker == "topic") {
            let id = segments[..i].join(":");
            let suffix = segments[i + 1..].join(":");
            let t = if marker == "thread" {
                ThreadRef::Thread(suffix)
            } else {
                ThreadRef::Topic(suffix)
            };
            return (id, Some(t));
        }
    }
    (segments.join(":"), None)
}

fn parse_rest(rest: &str) -> (SessionScope, Option<ThreadRef>) {
    let segs: Vec<&str> = rest.split(':').collect();
    let other = || (SessionScope::Other(rest.to_string()), None);
    match segs.as_slice() {
        ["main"] => (SessionScope::Main, None),
        ["direct", peer @ ..] if !peer.is_empty() => {
            let (peer_id, thread) = split_suffix(peer, false);
            (
                SessionScope::Direct {
                    channel: None,
                    account_id: None,
                    peer_id,
                },
                thread,
            )
        }
        ["cron", job, "run", run] => (
            SessionScope::Cron {
                job_id: (*job).to_string(),
                run_session_id: Some((*run).to_string()),
            },
            None,
        ),
        ["cron", job] => (
            SessionScope::Cron {
                job_id: (*job).to_string(),
                run_session_id: None,
            },
            None,
        ),
        ["hook", id @ ..] if !id.is_empty() => (SessionScope::Hook { id: id.join(":") }, None),
        ["subagent", ..] => {
            let mut ids = Vec::new();
            let mut chunks = segs.chunks(2);
            for chunk in chunks.by_ref() {
                match chunk {
                    ["subagent", id] => ids.push((*id).to_string()),
                    _ => return other(),
                }
            }
            (SessionScope::Subagent { ids }, None)
        }
        ["acp", id] => (
            SessionScope::Acp {
                id: (*id).to_string(),
            },
            None,
        ),
        ["boot", id] => (
            SessionScope::Boot {
                run_id: (*id).to_string(),
            },
            None,
        ),
        [channel, "slash", user] => (
            SessionScope::Slash {
                channel: (*channel).to_string(),
                user_id: (*user).to_string(),
            },
            None,
        ),
        [channel, "direct", peer @ ..] if !peer.is_empty() => {
            let (peer_id, thread) = split_suffix(peer, false);
            (
                SessionScope::Direct {
                    channel: Some((*channel).to_string()),
                    account_id: None,
                    peer_id,
                },
                thread,
            )
        }
        [channel, "group", id @ ..] if !id.is_empty() => {
            let (group_id, thread) = split_suffix(id, true);
            (
                SessionScope::Group {
                    channel: (*channel).to_string(),
                    group_id,
                },
                thread,
            )
        }
        [channel, "channel", id @ ..] if !id.is_empty() => {
            let (channel_id, thread) = split_suffix(id, false);
            (
                SessionScope::Channel {
                    channel: (*channel).to_string(),
                    channel_id,
                },
                thread,
            )
        }
        [channel, account, "direct", peer @ ..] if !peer.is_empty() => {
            let (peer_id, thread) = split_suffix(peer, false);
            (
                SessionScope::Direct {
                    channel: Some((*channel).to_string()),
                    account_id: Some((*account).to_string()),
                    peer_id,
                },
                thread,
            )
        }
        _ => other(),
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionKey::Global => f.write_str("global"),
            SessionKey::Unknown => f.write_str("unknown"),
            SessionKey::Agent {
                agent_id,
                scope,
                thread,
            } => {
                write!(f, "agent:{agent_id}:")?;
                match scope {
                    SessionScope::Main => f.write_str("main")?,
                    SessionScope::Direct {
                        channel,
                        account_id,
                        peer_id,
                    } => {
                        if let Some(c) = channel {
                            write!(f, "{c}:")?;
                            if let Some(a) = account_id {
                                write!(f, "{a}:")?;
                            }
                        }
                        write!(f, "direct:{peer_id}")?;
                    }
                    SessionScope::Group { channel, group_id } => {
                        write!(f, "{channel}:group:{group_id}")?
                    }
                    SessionScope::Channel {
                        channel,
                        channel_id,
                    } => write!(f, "{channel}:channel:{channel_id}")?,
                    SessionScope::Cron {
                        job_id,
                        run_session_id,
                    } => {
                        write!(f, "cron:{job_id}")?;
                        if let Some(run) = run_session_id {
                            write!(f, ":run:{run}")?;
                        }
                    }
                    SessionScope::Hook { id } => write!(f, "hook:{id}")?,
                    SessionScope::Subagent { ids } => {
                        for (i, id) in ids.iter().enumerate() {
                            if i > 0 {
                                f.write_str(":")?;
                            }
                            write!(f, "subagent:{id}")?;
                        }
                    }
                    SessionScope::Acp { id } => write!(f, "acp:{id}")?,
                    SessionScope::Slash { channel, user_id } => {
                        write!(f, "{channel}:slash:{user_id}")?
                    }
                    SessionScope::Boot { run_id } => write!(f, "boot:{run_id}")?,
                    SessionScope::Other(rest) => f.write_str(rest)?,
                }
                match thread {
                    Some(ThreadRef::Thread(t)) => write!(f, ":thread:{t}"),
                    Some(ThreadRef::Topic(t)) => write!(f, ":topic:{t}"),
                    None => Ok(()),
                }
            }
        }
    }
}

impl FromStr for SessionKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SessionKey::parse(s)
    }
}

impl Serialize for SessionKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SessionKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        SessionKey::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `session.dmScope`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DmScope {
    #[default]
    Main,
    PerPeer,
    PerChannelPeer,
    PerAccountChannelPeer,
}

/// `session.groupScope`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum GroupScope {
    #[default]
    PerGroup,
    Main,
}

/// `session.scope`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SessionScopeMode {
    #[default]
    PerSender,
    Global,
}

/// The kind of peer a channel message came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerKind {
    Direct,
    Group,
    Channel,
}

/// Routing facts of one inbound conversation.
#[derive(Clone, Copy, Debug)]
pub struct PeerRoute<'a> {
    pub agent_id: &'a str,
    pub channel: &'a str,
    pub account_id: Option<&'a str>,
    pub peer_kind: PeerKind,
    pub peer_id: &'a str,
    pub thread_id: Option<&'a str>,
    /// Telegram forum topic (groups only).
    pub topic_id: Option<&'a str>,
}

/// The session settings that shape keys (`session.scope`, `dmScope`, `groupScope`,
/// `identityLinks`).
#[derive(Clone, Copy, Debug, Default)]
pub struct RoutingScope<'a> {
    pub session_scope: SessionScopeMode,
    pub dm_scope: DmScope,
    pub group_scope: GroupScope,
    pub identity_links: Option<&'a IdentityLinks>,
}

/// `session.identityLinks`: canonical name → raw ids (`"123"`) or `"<channel>:<id>"` entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IdentityLinks {
    links: BTreeMap<String, Vec<String>>,
}

impl IdentityLinks {
    pub fn new(links: BTreeMap<String, Vec<String>>) -> Self {
        IdentityLinks { links }
    }

    /// The canonical name linked to `peer_id` on `channel`, if any (case-insensitive; matches
    /// the raw id or `<channel>:<id>`). The name is lower-cased like every peer id.
    pub fn resolve(&self, channel: &str, peer_id: &str) -> Option<String> {
        let peer = peer_id.trim().to_ascii_lowercase();
        let scoped = format!("{}:{}", channel.to_ascii_lowercase(), peer);
        self.links.iter().find_map(|(canonical, ids)| {
            ids.iter()
                .map(|id| id.trim().to_ascii_lowercase())
                .any(|id| id == peer || id == scoped)
                .then(|| canonical.trim().to_ascii_lowercase())
        })
    }
}
