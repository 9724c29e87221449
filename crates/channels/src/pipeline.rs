//! The inbound pipeline of one channel account. Every message an adapter produces goes
//! through, in order:
//!
//! 1. own/bot messages dropped; **dedupe** (20 min / 5,000 entries);
//! 2. **DM policy** (`pairing` → unknown senders get one pairing code; `allowlist`; `open`;
//!    `disabled`) or **group policy** (group allowlist, per-group sender allowlists);
//! 3. **mention gating** in groups (`groupActivation` mention|always, native mentions,
//!    `mentionPatterns`, implicit reply-to-bot and thread participation); allowed but
//!    unmentioned messages are kept as **history** for the next run;
//! 4. **command/directive parsing** (§10);
//! 5. per-sender **debounce** (text only; commands and media release the burst first);
//! 6. **routing** through the bindings (fail closed) and **session key** building;
//! 7. hand-off to the [`RunSink`] (implemented by the gateway).

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use pincer_sessions::{
    DmScope, GroupScope, IdentityLinks, PeerKind, PeerRoute, RoutingScope, SessionKey,
    SessionScopeMode,
};
use serde::Serialize;
use tokio::time::Instant;

use crate::adapter::ChannelAdapter;
use crate::commands::{self, ChatCommand, Directive, ParsedText};
use crate::debounce::{Debouncer, FlushFn};
use crate::dedupe::RecentSet;
use crate::history::{self, GroupHistory, HistoryEntry, DEFAULT_HISTORY_LIMIT};
use crate::journal::Journal;
use crate::message::{ChannelMessage, ChatType, Conversation, OutboundMessage};
use crate::pairing::{pairing_message, Pairing, PairingOutcome};
use crate::policy::{AccessPolicy, DmPolicy, GroupAccess, GroupActivation, Refusal};
use crate::router::{Route, RouteInput, Router};

/// Where replies to a run go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplyTarget {
    pub conversation: Conversation,
    /// The message to reply to (threading/quoting per `replyToMode`).
    pub reply_to: Option<String>,
}

/// One accepted inbound turn, ready for the agent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboundRun {
    pub agent_id: String,
    #[serde(serialize_with = "ser_key")]
    pub session_key: SessionKey,
    /// How the agent was chosen.
    #[serde(skip)]
    pub route: Route,
    /// The (last) message; for a debounced burst, `text` holds every message's text.
    pub message: ChannelMessage,
    /// Every platform message id folded into this run (one unless debounced).
    pub message_ids: Vec<String>,
    /// The user's text with directives removed (the command text for commands).
    pub body: String,
    pub command: Option<ChatCommand>,
    pub directives: Vec<Directive>,
    pub directive_only: bool,
    /// `! cmd` / `/bash cmd`.
    pub bash: Option<String>,
    /// Unmentioned group messages since the bot's last reply.
    pub history: Vec<HistoryEntry>,
    pub reply: ReplyTarget,
    /// When the first message of this run entered the pipeline (latency measurement).
    #[serde(skip)]
    pub received_at: Option<Instant>,
}

fn ser_key<S: serde::Serializer>(k: &SessionKey, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(k)
}

impl InboundRun {
    /// The user turn as the model should see it: the body, wrapped with the pending group
    /// history when there is any.
    pub fn prompt_text(&self) -> String {
        let sender = self
            .message
            .sender
            .name
            .as_deref()
            .unwrap_or(&self.message.sender.id);
        history::with_history(&self.history, sender, &self.body)
    }
}

/// The gateway side could not take a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    #[error("the run queue is full")]
    Overloaded,
    #[error("{0}")]
    Rejected(String),
}

/// The boundary to the agent: the gateway implements this in phase B (start or queue a run
/// on the session's lane, stream the answer back through a [`crate::Responder`]).
/// `dispatch` should return quickly (queue, don't run).
#[async_trait]
pub trait RunSink: Send + Sync + 'static {
    async fn dispatch(&self, run: InboundRun) -> Result<(), SinkError>;
}

/// What the pipeline did with a message (for tests, logs and metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Handed to the sink.
    Dispatched,
    /// Held by the debounce window (dispatched with its burst later).
    Debounced,
    Duplicate,
    /// Sent by the bot itself or another bot.
    OwnOrBot,
    Refused(Refusal),
    /// Unknown DM sender: a pairing code was sent.
    PairingRequested {
        code: String,
    },
    /// Unknown DM sender with a request already pending: ignored silently.
    PairingPending,
    /// Unknown DM sender and the pending cap is reached: ignored.
    PairingLimit,
    /// Group message without a mention: kept as history only.
    HistoryOnly,
    /// No agent owns the conversation (fail closed).
    Unrouted(String),
    /// The sink refused the run.
    SinkFailed(String),
    /// Nothing to do (an empty message).
    Empty,
}

/// Session-key settings (`session.*`).
#[derive(Debug, Clone, Default)]
pub struct KeySettings {
    pub scope: SessionScopeMode,
    pub dm_scope: DmScope,
    pub group_scope: GroupScope,
    pub identity_links: IdentityLinks,
}

/// Everything that shapes the pipeline of one account (hot-reloadable).
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub access: AccessPolicy,
    /// `messages.groupChat.mentionPatterns` (case-insensitive).
    pub mention_patterns: Vec<regex_lite::Regex>,
    /// `messages.inbound.debounceMs` for this channel.
    pub debounce: Duration,
    pub history_limit: usize,
    pub implicit_reply_to_bot: bool,
    pub implicit_thread_participation: bool,
    pub keys: KeySettings,
    /// `commands.text`.
    pub commands_text: bool,
    /// Ignore messages from other bots.
    pub ignore_bots: bool,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            access: AccessPolicy::new(),
            mention_patterns: Vec::new(),
            debounce: Duration::ZERO,
            history_limit: DEFAULT_HISTORY_LIMIT,
            implicit_reply_to_bot: true,
            implicit_thread_participation: true,
            keys: KeySettings::default(),
            commands_text: true,
            ignore_bots: true,
        }
    }
}

/// A message that passed the gates, waiting for debounce/dispatch.
#[derive(Debug, Clone)]
struct Admitted {
    msg: ChannelMessage,
    parsed: ParsedText,
    history: Vec<HistoryEntry>,
    received_at: Instant,
}

struct Inner {
    channel: &'static str,
    account_id: String,
    settings: RwLock<Arc<PipelineSettings>>,
    router: RwLock<Arc<Router>>,
    dedupe: Mutex<RecentSet<String>>,
    history: Mutex<GroupHistory>,
    activation: RwLock<HashMap<String, GroupActivation>>,
    participated: Mutex<RecentSet<String>>,
    pairing: Pairing,
    sink: Arc<dyn RunSink>,
    adapter: Arc<dyn ChannelAdapter>,
    debouncer: Debouncer<Admitted>,
    journal: RwLock<Option<Journal>>,
}

impl Inner {
    /// Marks messages the pipeline settled without a run (see [`crate::journal`]).
    fn settled<I: IntoIterator<Item = String>>(&self, ids: I) {
        if let Some(j) = self.journal.read().as_ref() {
            j.handled(self.channel, &self.account_id, ids);
        }
    }
}

/// The pipeline of one channel account. Cheap to clone.
#[derive(Clone)]
pub struct InboundPipeline {
    inner: Arc<Inner>,
}

/// `channel/account/chat[/thread]`: the identity of a conversation.
pub fn conversation_key(c: &Conversation) -> String {
    match &c.thread_id {
        Some(t) => format!("{}/{}/{}/{}", c.channel, c.account_id, c.chat_id, t),
        None => format!("{}/{}/{}", c.channel, c.account_id, c.chat_id),
    }
}

fn peer_kind(t: ChatType) -> PeerKind {
    match t {
        ChatType::Direct => PeerKind::Direct,
        ChatType::Group => PeerKind::Group,
        ChatType::Channel => PeerKind::Channel,
    }
}

/// Removes a leading mention of the bot (`@name`, `<@id>`, `<@!id>`) so `@bot /status` is a
/// command.
fn strip_leading_mention<'a>(
    text: &'a str,
    bot_id: Option<&str>,
    bot_username: Option<&str>,
) -> &'a str {
    let t = text.trim_start();
    let (first, rest) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
    let is_bot = bot_username.is_some_and(|u| {
        first
            .strip_prefix('@')
            .is_some_and(|f| f.eq_ignore_ascii_case(u))
    }) || bot_id.is_some_and(|id| {
        first
            .strip_prefix("<@")
            .and_then(|f| f.strip_suffix('>'))
            .map(|f| f.trim_start_matches('!'))
            .is_some_and(|f| f == id)
    });
    if is_bot {
        rest.trim_start()
    } else {
        text
    }
}

impl InboundPipeline {
    pub fn new(
        adapter: Arc<dyn ChannelAdapter>,
        settings: PipelineSettings,
        router: Router,
        pairing: Pairing,
        sink: Arc<dyn RunSink>,
    ) -> Self {
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let weak = weak.clone();
            let flush: FlushFn<Admitted> = Arc::new(move |batch| {
                let weak = weak.clone();
                Box::pin(async move {
                    if let Some(inner) = weak.upgrade() {
                        dispatch(&inner, batch).await;
                    }
                })
            });
            Inner {
                channel: adapter.channel(),
                account_id: adapter.account_id().to_string(),
                history: Mutex::new(GroupHistory::new(settings.history_limit)),
                debouncer: Debouncer::new(settings.debounce, 20, 10_000, flush),
                settings: RwLock::new(Arc::new(settings)),
                router: RwLock::new(Arc::new(router)),
                dedupe: Mutex::new(RecentSet::inbound()),
                activation: RwLock::new(HashMap::new()),
                participated: Mutex::new(RecentSet::new(Duration::from_secs(24 * 3600), 10_000)),
                pairing,
                sink,
                adapter,
                journal: RwLock::new(None),
            }
        });
        InboundPipeline { inner }
    }

    pub fn channel(&self) -> &'static str {
        self.inner.channel
    }

    pub fn account_id(&self) -> &str {
        &self.inner.account_id
    }

    /// Marks settled messages in `journal` (set by the manager).
    pub fn set_journal(&self, journal: Journal) {
        *self.inner.journal.write() = Some(journal);
    }

    /// Replaces the settings (config hot reload). The debounce window is fixed at creation.
    pub fn set_settings(&self, settings: PipelineSettings) {
        *self.inner.settings.write() = Arc::new(settings);
    }

    /// Replaces the router (bindings or agent roster changed).
    pub fn set_router(&self, router: Router) {
        *self.inner.router.write() = Arc::new(router);
    }

    /// `/activation mention|always` for a group conversation (`None` clears the override).
    pub fn set_group_activation(&self, conversation: &Conversation, mode: Option<GroupActivation>) {
        let key = conversation_key(conversation);
        let mut map = self.inner.activation.write();
        match mode {
            Some(m) => {
                map.insert(key, m);
            }
            None => {
                map.remove(&key);
            }
        }
    }

    /// Records that the bot replied in a conversation (thread participation counts as an
    /// implicit mention afterwards).
    pub fn note_reply(&self, conversation: &Conversation) {
        self.inner
            .participated
            .lock()
            .insert(conversation_key(conversation));
    }

    /// Pending history of a conversation (tests, status).
    pub fn history_len(&self, conversation: &Conversation) -> usize {
        self.inner
            .history
            .lock()
            .len(&conversation_key(conversation))
    }

    /// Releases debounced bursts now (shutdown).
    pub async fn flush(&self) {
        self.inner.debouncer.flush_all().await;
    }

    /// Runs one message through the pipeline.
    pub async fn process(&self, msg: ChannelMessage) -> Disposition {
        let id = msg.message_id.clone();
        let d = self.process_inner(msg).await;
        match d {
            // Dispatched: the sink marks it once the agent took it; debounced: its burst's
            // dispatch does; a duplicate: the first copy is still on its way.
            // A refusing sink (shutting down, overloaded) leaves it pending for a replay.
            Disposition::Dispatched
            | Disposition::Debounced
            | Disposition::Duplicate
            | Disposition::SinkFailed(_) => {}
            _ => self.inner.settled([id]),
        }
        d
    }

    async fn process_inner(&self, msg: ChannelMessage) -> Disposition {
        let inner = &self.inner;
        let received_at = Instant::now();
        let settings = inner.settings.read().clone();
        let status = inner.adapter.status();
        let (bot_id, bot_username) = status.identity();
        if bot_id.as_deref() == Some(msg.sender.id.as_str())
            || (settings.ignore_bots && msg.sender.is_bot)
        {
            return Disposition::OwnOrBot;
        }
        if !inner.dedupe.lock().insert(msg.dedupe_key()) {
            return Disposition::Duplicate;
        }
        status.inbound();
        let conv_key = conversation_key(&msg.conversation);
        let mut history = Vec::new();
        let clean = strip_leading_mention(&msg.text, bot_id.as_deref(), bot_username.as_deref());
        let parsed = if settings.commands_text {
            commands::parse(clean, bot_username.as_deref())
        } else {
            ParsedText {
                body: msg.text.trim().to_string(),
                ..ParsedText::default()
            }
        };
        match msg.conversation.chat_type {
            ChatType::Direct => {
                if let Some(d) = self.dm_gate(&settings, &msg).await {
                    return d;
                }
            }
            ChatType::Group | ChatType::Channel => {
                let mut ids: Vec<&str> = vec![msg.conversation.chat_id.as_str()];
                ids.extend(msg.parent_chat_id.as_deref());
                ids.extend(msg.guild_id.as_deref());
                let require_mention =
                    match settings
                        .access
                        .group_access(inner.channel, &ids, &msg.sender.id)
                    {
                        GroupAccess::Refused(r) => return Disposition::Refused(r),
                        GroupAccess::Allowed { require_mention } => require_mention,
                    };
                let activation = inner.activation.read().get(&conv_key).copied();
                let needs_mention = match activation {
                    Some(GroupActivation::Always) => false,
                    Some(GroupActivation::Mention) => true,
                    None => require_mention,
                };
                let mentioned = msg.mentions_bot
                    || (settings.implicit_reply_to_bot && msg.reply_to_bot)
                    || settings
                        .mention_patterns
                        .iter()
                        .any(|p| p.is_match(&msg.text))
                    || (settings.implicit_thread_participation
                        && msg.conversation.thread_id.is_some()
                        && inner
                            .participated
                            .lock()
                            .contains_at(&conv_key, received_at));
                let is_command = parsed.command.is_some() || parsed.bash.is_some();
                if needs_mention && !mentioned && !is_command {
                    inner.history.lock().push(
                        &conv_key,
                        HistoryEntry {
                            sender_id: msg.sender.id.clone(),
                            sender_name: msg.sender.name.clone(),
                            text: msg.text.clone(),
                            message_id: msg.message_id.clone(),
                            timestamp_ms: msg.timestamp_ms,
                        },
                    );
                    return Disposition::HistoryOnly;
                }
                history = inner.history.lock().take(&conv_key);
            }
        }
        if parsed.body.is_empty()
            && msg.media.is_empty()
            && parsed.directives.is_empty()
            && parsed.bash.is_none()
        {
            return Disposition::Empty;
        }
        let immediate = parsed.command.is_some()
            || parsed.bash.is_some()
            || parsed.directive_only
            || !msg.media.is_empty();
        let sender_key = format!("{conv_key}/{}", msg.sender.id);
        let admitted = Admitted {
            msg,
            parsed,
            history,
            received_at,
        };
        if !immediate {
            match inner.debouncer.push(&sender_key, admitted) {
                None => return Disposition::Debounced,
                Some(admitted) => return dispatch(inner, vec![admitted]).await,
            }
        }
        // Release the sender's pending burst first so order is kept.
        let pending = inner.debouncer.take(&sender_key);
        if !pending.is_empty() {
            dispatch(inner, pending).await;
        }
        dispatch(inner, vec![admitted]).await
    }

    /// DM policy; `Some` when the message stops here.
    async fn dm_gate(
        &self,
        settings: &PipelineSettings,
        msg: &ChannelMessage,
    ) -> Option<Disposition> {
        let inner = &self.inner;
        let sender = &msg.sender.id;
        let approved = || async {
            if settings.access.dm_allowlisted(inner.channel, sender) {
                return true;
            }
            match inner
                .pairing
                .is_approved(inner.channel, &inner.account_id, sender)
                .await
            {
                Ok(ok) => ok,
                Err(e) => {
                    // Fail closed: a database problem never opens the door.
                    tracing::error!(channel = inner.channel, error = %e, "pairing lookup failed");
                    false
                }
            }
        };
        match settings.access.dm_policy {
            DmPolicy::Open => None,
            DmPolicy::Disabled => Some(Disposition::Refused(Refusal::DmDisabled)),
            DmPolicy::Allowlist => {
                (!approved().await).then_some(Disposition::Refused(Refusal::NotAllowlisted))
            }
            DmPolicy::Pairing => {
                if approved().await {
                    return None;
                }
                let meta = serde_json::json!({
                    "name": msg.sender.name,
                    "username": msg.sender.username,
                });
                let outcome = inner
                    .pairing
                    .request(inner.channel, &inner.account_id, sender, Some(meta))
                    .await;
                Some(match outcome {
                    Ok(PairingOutcome::Created(request)) => {
                        let text = pairing_message(inner.channel, sender, &request.code);
                        let out = OutboundMessage::text(msg.conversation.clone(), &text);
                        if let Err(e) = inner.adapter.send(&out).await {
                            tracing::warn!(channel = inner.channel, error = %e, "could not send the pairing code");
                            inner.adapter.status().record_error(&e.to_string());
                        } else {
                            inner.adapter.status().outbound();
                        }
                        Disposition::PairingRequested { code: request.code }
                    }
                    Ok(PairingOutcome::Pending(_)) => Disposition::PairingPending,
                    Ok(PairingOutcome::LimitReached) => Disposition::PairingLimit,
                    Err(e) => {
                        tracing::error!(channel = inner.channel, error = %e, "pairing request failed");
                        Disposition::Refused(Refusal::NotAllowlisted)
                    }
                })
            }
        }
    }
}

/// Routing facts of a message: (peer kind, routing peer id, session peer id, parent).
fn route_input<'a>(msg: &'a ChannelMessage, channel: &'a str) -> RouteInput<'a> {
    let c = &msg.conversation;
    let kind = peer_kind(c.chat_type);
    let peer_id = match c.chat_type {
        ChatType::Direct => msg.sender.id.as_str(),
        _ => c.chat_id.as_str(),
    };
    RouteInput {
        channel,
        account_id: &c.account_id,
        peer_kind: kind,
        peer_id,
        parent_peer: msg.parent_chat_id.as_deref().map(|p| (kind, p)),
        guild_id: msg.guild_id.as_deref(),
        team_id: msg.team_id.as_deref(),
        roles: &msg.member_roles,
    }
}

fn session_key(
    msg: &ChannelMessage,
    route: &Route,
    keys: &KeySettings,
) -> Result<SessionKey, String> {
    let c = &msg.conversation;
    let kind = peer_kind(c.chat_type);
    let peer_id = match c.chat_type {
        ChatType::Direct => msg.sender.id.as_str(),
        _ => msg.parent_chat_id.as_deref().unwrap_or(&c.chat_id),
    };
    // Telegram forum topics are `:topic:`; every other thread is `:thread:`.
    let (thread_id, topic_id) = match (c.channel.as_str(), c.chat_type) {
        ("telegram", ChatType::Group) => (None, c.thread_id.as_deref()),
        _ => (c.thread_id.as_deref(), None),
    };
    let scope = RoutingScope {
        session_scope: keys.scope,
        dm_scope: route.dm_scope.unwrap_or(keys.dm_scope),
        group_scope: route.group_scope.unwrap_or(keys.group_scope),
        identity_links: Some(&keys.identity_links),
    };
    SessionKey::for_peer(
        &PeerRoute {
            agent_id: &route.agent_id,
            channel: &c.channel,
            account_id: Some(&c.account_id),
            peer_kind: kind,
            peer_id,
            thread_id,
            topic_id,
        },
        &scope,
    )
    .map_err(|e| e.to_string())
}

async fn dispatch(inner: &Inner, batch: Vec<Admitted>) -> Disposition {
    let Some(last) = batch.last() else {
        return Disposition::Empty;
    };
    let settings = inner.settings.read().clone();
    let mut message = last.msg.clone();
    let received_at = batch.first().map(|a| a.received_at);
    let (body, directives, directive_only, history, message_ids, command, bash) =
        if batch.len() == 1 {
            let a = &batch[0];
            (
                a.parsed.body.clone(),
                a.parsed.directives.clone(),
                a.parsed.directive_only,
                a.history.clone(),
                vec![a.msg.message_id.clone()],
                a.parsed.command.clone(),
                a.parsed.bash.clone(),
            )
        } else {
            let body = batch
                .iter()
                .map(|a| a.parsed.body.as_str())
                .filter(|b| !b.is_empty())
                .collect::<Vec<_>>()
                .join("\n");
            message.text = batch
                .iter()
                .map(|a| a.msg.text.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            message.media = batch.iter().flat_map(|a| a.msg.media.clone()).collect();
            message.mentions_bot = batch.iter().any(|a| a.msg.mentions_bot);
            (
                body,
                batch
                    .iter()
                    .flat_map(|a| a.parsed.directives.clone())
                    .collect(),
                false,
                batch.iter().flat_map(|a| a.history.clone()).collect(),
                batch.iter().map(|a| a.msg.message_id.clone()).collect(),
                None,
                None,
            )
        };
    let router = inner.router.read().clone();
    let route = match router.route(&route_input(&message, inner.channel)) {
        Ok(r) => r,
        Err(e) => {
            let e = e.to_string();
            tracing::warn!(channel = inner.channel, error = %e, "message not routed");
            inner.adapter.status().record_error(&e);
            inner.settled(message_ids);
            return Disposition::Unrouted(e);
        }
    };
    let key = match session_key(&message, &route, &settings.keys) {
        Ok(k) => k,
        Err(e) => {
            tracing::warn!(channel = inner.channel, error = %e, "cannot build a session key");
            inner.settled(message_ids);
            return Disposition::Unrouted(e);
        }
    };
    let reply = ReplyTarget {
        conversation: message.conversation.clone(),
        reply_to: Some(message.message_id.clone()),
    };
    let run = InboundRun {
        agent_id: route.agent_id.clone(),
        session_key: key,
        route,
        message,
        message_ids,
        body,
        command,
        directives,
        directive_only,
        bash,
        history,
        reply,
        received_at,
    };
    match inner.sink.dispatch(run).await {
        Ok(()) => Disposition::Dispatched,
        Err(e) => {
            tracing::warn!(channel = inner.channel, error = %e, "run sink refused a message");
            inner.adapter.status().record_error(&e.to_string());
            Disposition::SinkFailed(e.to_string())
        }
    }
}
