//! The one outbound path: [`ChannelsHub::send`] delivers text (and media URLs) to a channel
//! target or to the conversation a session talks through, idempotently per key. Callers: the
//! `send` method, the agent's `message` tool ([`GatewayMessagingHost`]), automations (cron
//! announce delivery).

use std::sync::Arc;

use async_trait::async_trait;
use pincer_channels::{ChannelError, OutboundMedia, SendRequest, SendResult};
use pincer_sessions::SessionKey;
use pincer_tools::host::{HostError, MessagingHost, Requester};
use serde_json::{json, Value};

use super::{settings, ChannelsHub, StateCell};

/// An outbound message.
#[derive(Debug, Clone, Default)]
pub struct OutboundRequest {
    /// `telegram` / `discord` / `slack`; `None`: the session's channel, else the only
    /// configured channel.
    pub channel: Option<String>,
    pub account_id: Option<String>,
    /// Chat id / `user:<id>` / `channel:<id>`; `None`: the session's conversation.
    pub to: Option<String>,
    /// Route through (and mirror into) this session.
    pub session_key: Option<SessionKey>,
    pub thread_id: Option<String>,
    pub reply_to: Option<String>,
    pub text: String,
    pub media_urls: Vec<String>,
    /// Same key within 5 minutes: one delivery, the first result again.
    pub idempotency_key: String,
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// No channel given and none (or several) configured: the reference's text.
    #[error("{0}")]
    ChannelRequired(String),
    #[error("{0}")]
    Invalid(String),
    /// The platform refused or failed.
    #[error("{0}")]
    Delivery(String),
}

impl From<ChannelError> for SendError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::UnknownAccount { .. } | ChannelError::Invalid(_) => {
                SendError::Invalid(e.to_string())
            }
            ChannelError::MediaTooLarge { .. } | ChannelError::Unsupported { .. } => {
                SendError::Invalid(e.to_string())
            }
            other => SendError::Delivery(other.to_string()),
        }
    }
}

impl ChannelsHub {
    /// Channels with at least one configured account, in display order.
    pub fn configured_channels(&self) -> Vec<String> {
        let slots = self.slots.lock();
        settings::CHANNELS
            .iter()
            .filter(|c| slots.keys().any(|(ch, _)| ch == *c))
            .map(|c| c.to_string())
            .collect()
    }

    /// Delivers `req` (see [`OutboundRequest`]).
    pub async fn send(&self, req: OutboundRequest) -> Result<SendResult, SendError> {
        let session = match &req.session_key {
            Some(key) => self
                .store
                .get_session(key)
                .await
                .ok()
                .flatten()
                .and_then(|r| super::sink::delivery_conversation(&r.entry)),
            None => None,
        };
        let channel = match req
            .channel
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
        {
            Some(c) => c.to_ascii_lowercase(),
            None => match &session {
                Some(conv) if req.to.is_none() => conv.channel.clone(),
                _ => {
                    let configured = self.configured_channels();
                    match configured.as_slice() {
                        [only] => only.clone(),
                        [] => return Err(SendError::ChannelRequired(
                            "Error: Channel is required (no configured channels detected). \
                             Configure one under channels.telegram, channels.discord or channels.slack in the config, \
                             or pass --channel <channel> after enabling a channel."
                                .into(),
                        )),
                        many => return Err(SendError::ChannelRequired(format!(
                            "Error: Channel is required when multiple channels are configured: {}. Pass --channel <channel> to choose one.",
                            many.join(", ")
                        ))),
                    }
                }
            },
        };
        if !settings::CHANNELS.contains(&channel.as_str()) {
            return Err(SendError::Invalid(format!(
                "unknown channel: {channel} (Pincer speaks {})",
                settings::CHANNELS.join(", ")
            )));
        }
        let same_session_channel = session.as_ref().filter(|c| c.channel == channel);
        let (to, thread_id, account) =
            match req.to.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                Some(to) => (
                    to.to_string(),
                    req.thread_id.clone(),
                    req.account_id.clone(),
                ),
                None => match same_session_channel {
                    Some(conv) => (
                        conv.chat_id.clone(),
                        req.thread_id.clone().or_else(|| conv.thread_id.clone()),
                        req.account_id
                            .clone()
                            .or_else(|| Some(conv.account_id.clone())),
                    ),
                    None => {
                        return Err(SendError::Invalid(
                            "to is required (a chat id, user:<id> or channel:<id>)".into(),
                        ))
                    }
                },
            };
        let account = self.resolve_account(&channel, account.as_deref());
        if req.text.trim().is_empty() && req.media_urls.is_empty() {
            return Err(SendError::Invalid(
                "nothing to send: message and media are empty".into(),
            ));
        }
        let result = self
            .manager
            .send(SendRequest {
                channel: channel.clone(),
                account_id: account,
                to,
                thread_id,
                reply_to: req.reply_to.clone(),
                text: req.text.clone(),
                media: req
                    .media_urls
                    .iter()
                    .map(|u| OutboundMedia::url(u))
                    .collect(),
                idempotency_key: req.idempotency_key.clone(),
            })
            .await?;
        Ok(result)
    }
}

/// The agent's `message` tool host.
#[derive(Clone, Default)]
pub struct GatewayMessagingHost {
    cell: StateCell,
}

impl GatewayMessagingHost {
    pub fn new(cell: StateCell) -> Self {
        GatewayMessagingHost { cell }
    }
}

fn str_arg(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

fn receipt(r: &SendResult) -> Value {
    json!({
        "ok": true,
        "channel": r.channel,
        "accountId": r.account_id,
        "to": r.chat_id,
        "messageId": r.message_id,
        "messageIds": r.message_ids,
    })
}

#[async_trait]
impl MessagingHost for GatewayMessagingHost {
    async fn message(
        &self,
        requester: &Requester,
        action: &str,
        request: Value,
    ) -> Result<Value, HostError> {
        let state = self
            .cell
            .get()
            .ok_or_else(|| HostError::Unavailable("the gateway is shutting down".into()))?;
        let mut text = str_arg(&request, "message").unwrap_or_default();
        if let Some(caption) = str_arg(&request, "caption") {
            if text.is_empty() {
                text = caption;
            }
        }
        let mut media: Vec<String> = str_arg(&request, "media").into_iter().collect();
        for a in request
            .get("attachments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(m) = str_arg(a, "media") {
                media.push(m);
            }
        }
        if request.get("buffer").is_some() {
            return Err(HostError::Rejected(
                "attachment uploads (buffer) are not supported by Pincer's channels yet; send a media URL".into(),
            ));
        }
        if let Some(local) = media
            .iter()
            .find(|m| !(m.starts_with("https://") || m.starts_with("http://")))
        {
            return Err(HostError::Rejected(format!(
                "media must be an http(s) URL the platform can fetch (got {local:?}); local files cannot be uploaded yet"
            )));
        }
        let base_key = str_arg(&request, "idempotencyKey").unwrap_or_else(|| {
            // Retries of the same call within the dedupe window send once.
            use sha2::{Digest, Sha256};
            let digest = Sha256::digest(
                format!("{}\u{1f}{}\u{1f}{request}", requester.session_key, action).as_bytes(),
            );
            digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
        });
        let current = SessionKey::parse(&requester.session_key).ok();
        let targets: Vec<Option<String>> = match action {
            "broadcast" => {
                let mut t: Vec<Option<String>> = request
                    .get("targets")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(|s| Some(s.trim().to_string()))
                    .collect();
                if let Some(one) = str_arg(&request, "target") {
                    t.push(Some(one));
                }
                t
            }
            _ => vec![str_arg(&request, "target").or_else(|| {
                request
                    .get("targets")
                    .and_then(Value::as_array)
                    .and_then(|a| a.first())
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })],
        };
        let mut receipts = Vec::new();
        for (i, target) in targets.into_iter().enumerate() {
            // `session:<key>`: the conversation that session talks through.
            let (to, session_key) = match target.as_deref() {
                Some(t) if t.starts_with("session:") => {
                    let raw = &t["session:".len()..];
                    let key = SessionKey::canonicalize(raw, &requester.agent_id).map_err(|e| {
                        HostError::Rejected(format!("invalid session {raw:?}: {e}"))
                    })?;
                    (None, Some(key))
                }
                Some(t) => (Some(t.to_string()), current.clone()),
                None => (None, current.clone()),
            };
            let req = OutboundRequest {
                channel: str_arg(&request, "channel"),
                account_id: str_arg(&request, "accountId"),
                to,
                session_key,
                thread_id: str_arg(&request, "threadId"),
                reply_to: str_arg(&request, "replyTo"),
                text: text.clone(),
                media_urls: media.clone(),
                idempotency_key: format!("tool:{base_key}:{i}"),
            };
            match state.channels.send(req).await {
                Ok(r) => receipts.push(receipt(&r)),
                Err(SendError::Delivery(e)) => return Err(HostError::Failed(e)),
                Err(e) => return Err(HostError::Rejected(e.to_string())),
            }
        }
        Ok(match receipts.len() {
            1 => receipts.remove(0),
            _ => json!({"ok": true, "results": receipts}),
        })
    }
}

/// Wraps the host for the agent runtime's tool hosts.
pub fn host(cell: StateCell) -> Arc<dyn MessagingHost> {
    Arc::new(GatewayMessagingHost::new(cell))
}
