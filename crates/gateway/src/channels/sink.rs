//! The end of every inbound pipeline: [`GatewaySink`] turns an accepted channel turn into an
//! agent run (`AgentRuntime::submit`: the session's lane starts it or its queue mode applies)
//! and hands the run to [`super::delivery`], which answers on the platform.
//!
//! Handled here rather than by the agent: `/activation mention|always` (owner-only, groups
//! only; persisted as the session's `groupActivation`) and `/whoami` (`/id`). Everything else
//! (`/new`, `/reset`, `/status`, `/model`, `/think`, `/verbose`, `/stop`, `/compact`, `/help`)
//! goes to the agent's command layer as the message text.

use std::sync::Arc;

use async_trait::async_trait;
use pincer_agent::{RunRequest, RunSource, SessionUpdate, SubmitError};
use pincer_channels::pipeline::{InboundRun, RunSink, SinkError};
use pincer_channels::{ChatType, Conversation, GroupActivation, Journal};
use pincer_providers::ThinkingLevel;
use pincer_sessions::{SessionEntry, SessionKey};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::delivery::{self, Delivery, Origin};
use super::{now_ms, settings, StateCell};
use crate::state::GatewayState;

/// Events buffered per run for its delivery task (the run waits when it is full).
const OBSERVER_CAPACITY: usize = 1024;

/// The gateway's [`RunSink`].
pub struct GatewaySink {
    cell: StateCell,
    journal: Journal,
}

impl GatewaySink {
    pub fn new(cell: StateCell, journal: Journal) -> Self {
        GatewaySink { cell, journal }
    }
}

fn chat_type_str(t: ChatType) -> &'static str {
    match t {
        ChatType::Direct => "direct",
        ChatType::Group => "group",
        ChatType::Channel => "channel",
    }
}

/// The conversation a session's channel turns came from (`deliveryContext`).
pub fn delivery_conversation(entry: &SessionEntry) -> Option<Conversation> {
    let d = entry.extra.get("deliveryContext")?;
    let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_string);
    Some(Conversation {
        channel: s("channel")?,
        account_id: s("accountId").unwrap_or_else(|| pincer_sessions::DEFAULT_ACCOUNT_ID.into()),
        chat_type: match s("chatType").as_deref() {
            Some("direct") => ChatType::Direct,
            Some("channel") => ChatType::Channel,
            _ => ChatType::Group,
        },
        chat_id: s("to")?,
        thread_id: s("threadId"),
    })
}

/// `deliveryContext` + `last*` fields of a session entry for `conv`.
pub fn delivery_context(conv: &Conversation) -> Value {
    json!({
        "channel": conv.channel,
        "accountId": conv.account_id,
        "to": conv.chat_id,
        "threadId": conv.thread_id,
        "chatType": chat_type_str(conv.chat_type),
    })
}

/// Records where a session's channel turns come from (the session row's `channel`,
/// `chatType`, `displayName`, and `deliveryContext`/`lastChannel`/`lastTo`/… for replies and
/// `send` to a session). A missing session is left alone.
pub async fn record_origin(state: &GatewayState, key: &SessionKey, origin: &Origin) {
    let origin = origin.clone();
    let _ = state
        .store
        .update_session(key, now_ms(), move |e| {
            apply_origin(e, &origin);
            Ok(())
        })
        .await;
}

fn apply_origin(e: &mut SessionEntry, o: &Origin) {
    let c = &o.conversation;
    e.channel = Some(c.channel.clone());
    e.chat_type = Some(chat_type_str(c.chat_type).to_string());
    if e.display_name.is_none() {
        e.display_name = Some(o.display_name.clone());
    }
    e.extra
        .insert("deliveryContext".into(), delivery_context(c));
    e.extra.insert("lastChannel".into(), json!(c.channel));
    e.extra.insert("lastTo".into(), json!(c.chat_id));
    e.extra.insert("lastAccountId".into(), json!(c.account_id));
    match &c.thread_id {
        Some(t) => {
            e.extra.insert("lastThreadId".into(), json!(t));
        }
        None => {
            e.extra.remove("lastThreadId");
        }
    }
}

fn display_name(run: &InboundRun) -> String {
    let c = &run.reply.conversation;
    let (label, _, _) = settings::channel_meta(&c.channel);
    match c.chat_type {
        ChatType::Direct => {
            let s = &run.message.sender;
            let who = s
                .name
                .clone()
                .or_else(|| s.username.as_ref().map(|u| format!("@{u}")))
                .unwrap_or_else(|| s.id.clone());
            format!("{label} · {who}")
        }
        _ => format!("{label} · {}", c.chat_id),
    }
}

/// The text the agent gets for this turn.
fn run_text(run: &InboundRun) -> String {
    if let Some(cmd) = &run.command {
        return if cmd.args.is_empty() {
            format!("/{}", cmd.name)
        } else {
            format!("/{} {}", cmd.name, cmd.args)
        };
    }
    if run.directive_only {
        // The agent persists a directive-only message (`/think high`, `/model x`).
        if let Some(d) = run.directives.first() {
            return format!("/{} {}", d.name, d.args).trim().to_string();
        }
    }
    if let Some(bash) = &run.bash {
        return format!("! {bash}");
    }
    let mut text = run.prompt_text();
    if run.history.is_empty() && run.reply.conversation.chat_type != ChatType::Direct {
        let s = &run.message.sender;
        let who = s.name.as_deref().unwrap_or(&s.id);
        text = format!("{who}: {text}");
    }
    if !run.message.media.is_empty() {
        for m in &run.message.media {
            let name = m.file_name.as_deref().unwrap_or(&m.kind);
            match &m.url {
                Some(u) => text.push_str(&format!("\n[attachment: {name} {u}]")),
                None => text.push_str(&format!("\n[attachment: {name}]")),
            }
        }
    }
    text
}

fn transport(run: &InboundRun) -> Value {
    let c = &run.reply.conversation;
    let s = &run.message.sender;
    json!({"transport": {"channel": {
        "id": c.channel,
        "accountId": c.account_id,
        "chatType": chat_type_str(c.chat_type),
        "chatId": c.chat_id,
        "threadId": c.thread_id,
        "messageIds": run.message_ids,
        "senderId": s.id,
        "senderName": s.name,
        "senderUsername": s.username,
    }}})
}

#[async_trait]
impl RunSink for GatewaySink {
    async fn dispatch(&self, run: InboundRun) -> Result<(), SinkError> {
        let Some(state) = self.cell.get() else {
            return Err(SinkError::Rejected("the gateway is shutting down".into()));
        };
        let conv = run.reply.conversation.clone();
        let loaded = state.config.get();
        let cfg = &loaded.config;
        let sender = run.message.sender.id.clone();
        let owner = settings::is_owner(cfg, &conv.channel, &sender);
        let commands_ok = settings::commands_allowed(cfg, &conv.channel, &sender);
        let origin = Origin {
            conversation: conv.clone(),
            display_name: display_name(&run),
        };
        let responder = match state.channels.manager.responder(&run.reply) {
            Ok(r) => r,
            Err(e) => return Err(SinkError::Rejected(e.to_string())),
        };
        if commands_ok {
            if let Some(cmd) = &run.command {
                let reply = match cmd.name.as_str() {
                    "activation" => Some(activation(&state, &run, &origin, owner, &cmd.args).await),
                    "whoami" | "id" => Some(format!(
                        "{} user id: {sender}\nchat: {} ({})",
                        settings::channel_meta(&conv.channel).0,
                        conv.chat_id,
                        chat_type_str(conv.chat_type)
                    )),
                    _ => None,
                };
                if let Some(text) = reply {
                    self.journal
                        .handled(&conv.channel, &conv.account_id, run.message_ids.clone());
                    tokio::spawn(async move {
                        if let Err(e) = responder.deliver(&text, &[]).await {
                            tracing::warn!(target: "channels", error = %e, "command reply not delivered");
                        }
                    });
                    return Ok(());
                }
            }
        }
        let text = run_text(&run);
        let run_id = format!("{}-{}", conv.channel, uuid::Uuid::new_v4());
        let mut req = RunRequest::new(
            run_id,
            run.session_key.clone(),
            text,
            RunSource::Channel {
                channel: conv.channel.clone(),
            },
        );
        req.interpret_commands = commands_ok;
        req.sender_is_owner = owner;
        req.metadata = Some(transport(&run));
        if !run.directive_only {
            for d in &run.directives {
                if d.name == "think" {
                    req.thinking = ThinkingLevel::parse(d.args.trim());
                }
            }
        }
        // Where this turn came from is stored with its user message, before the model or a
        // tool (the `message` tool's "current conversation") reads the session.
        let recorded = origin.clone();
        req.session_update = Some(SessionUpdate::new(move |e| apply_origin(e, &recorded)));
        let (tx, rx) = mpsc::channel(OBSERVER_CAPACITY);
        req.observer = Some(tx);
        let submitted = match state.agent.runtime.submit(req).await {
            Ok(s) => s,
            Err(SubmitError::QueueFull { .. }) => return Err(SinkError::Overloaded),
            Err(e) => return Err(SinkError::Rejected(e.to_string())),
        };
        let preview = state
            .channels
            .slots
            .lock()
            .get(&(conv.channel.clone(), conv.account_id.clone()))
            .is_some_and(|s| s.spec.preview);
        let delivery = Delivery {
            state: Arc::downgrade(&state),
            responder,
            preview,
            journal: self.journal.clone(),
            message_ids: run.message_ids.clone(),
            session_key: run.session_key.clone(),
            origin,
        };
        tokio::spawn(delivery::run(delivery, rx, submitted));
        Ok(())
    }
}

/// `/activation [mention|always]`: owner-only, groups only; persisted on the session.
async fn activation(
    state: &Arc<GatewayState>,
    run: &InboundRun,
    origin: &Origin,
    owner: bool,
    args: &str,
) -> String {
    let conv = &run.reply.conversation;
    if conv.chat_type == ChatType::Direct {
        return "⚠️ /activation only works in groups.".into();
    }
    if !owner {
        return "⚠️ /activation is owner-only (commands.ownerAllowFrom).".into();
    }
    let mode = match args.trim().to_ascii_lowercase().as_str() {
        "mention" => GroupActivation::Mention,
        "always" => GroupActivation::Always,
        "" => {
            let current = state
                .store
                .get_session(&run.session_key)
                .await
                .ok()
                .flatten()
                .and_then(|r| r.entry.group_activation)
                .unwrap_or_else(|| "mention".into());
            return format!("Group activation: {current}. Use /activation mention|always.");
        }
        _ => return "⚠️ Usage: /activation mention|always".into(),
    };
    let word = match mode {
        GroupActivation::Mention => "mention",
        GroupActivation::Always => "always",
    };
    if let Ok(p) = state
        .channels
        .manager
        .pipeline(&conv.channel, Some(&conv.account_id))
    {
        p.set_group_activation(conv, Some(mode));
    }
    let mut ensure = pincer_store::EnsureSession::at(now_ms());
    let mut template = SessionEntry::default();
    apply_origin(&mut template, origin);
    ensure.template = Some(template);
    let key = run.session_key.clone();
    let persisted = match state.store.ensure_session(&key, ensure).await {
        Ok(_) => {
            let origin = origin.clone();
            let word = word.to_string();
            state
                .store
                .update_session(&key, now_ms(), move |e| {
                    e.group_activation = Some(word);
                    apply_origin(e, &origin);
                    Ok(())
                })
                .await
                .map(|r| state.sessions_changed(&key, "patch", Some(&r)))
        }
        Err(e) => Err(e),
    };
    if let Err(e) = persisted {
        tracing::warn!(target: "channels", error = %e, "groupActivation not persisted");
    }
    match mode {
        GroupActivation::Always => {
            "✅ Group activation: always (I answer every message here).".into()
        }
        GroupActivation::Mention => {
            "✅ Group activation: mention (I answer when mentioned).".into()
        }
    }
}
