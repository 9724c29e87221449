//! Slack adapter: Socket Mode (`apps.connections.open` with the app-level token, the WSS
//! `hello`, `events_api` envelopes acknowledged with `{envelope_id}` right after they are
//! queued — well within Slack's 3 s —, reconnect on `disconnect`, client pings so a silent
//! socket is noticed) plus the Web API (`auth.test`, `chat.postMessage` with `thread_ts`,
//! `chat.update`; `{ok:false,error}` and 429 `Retry-After` handled). DMs, channels, threads
//! and `<@U…>` mentions.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use parking_lot::RwLock;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use crate::adapter::{Capabilities, ChannelAdapter, InboundSender};
use crate::chunk::Measure;
use crate::error::{ChannelError, Result};
use crate::http::{join_url, request_with_retry, HttpResponse, HttpRetry, Verdict};
use crate::message::{
    ChannelMessage, ChatType, Conversation, MediaRef, MediaSource, OutboundMessage, Sender,
    SentMessage,
};
use crate::status::StatusHandle;
use crate::watchdog::{Liveness, SessionEnd, SupervisedTask, WatchdogConfig};

const CHANNEL: &str = "slack";

/// Settings of one Slack app.
#[derive(Clone)]
pub struct SlackSettings {
    pub account_id: String,
    /// `xoxb-…`
    pub bot_token: String,
    /// `xapp-…` with `connections:write`.
    pub app_token: String,
    /// Web API base (default `https://slack.com/api`).
    pub api_base: String,
    /// `textChunkLimit` (default 8000).
    pub text_limit: usize,
    /// `mediaMaxMb` (default 20).
    pub media_max_mb: f64,
    /// Client ping interval on the socket.
    pub ping_interval: Duration,
    pub watchdog: WatchdogConfig,
    pub http: HttpRetry,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for SlackSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlackSettings")
            .field("account_id", &self.account_id)
            .field("bot_token", &"<redacted>")
            .field("app_token", &"<redacted>")
            .field("api_base", &self.api_base)
            .finish_non_exhaustive()
    }
}

impl SlackSettings {
    pub fn new(account_id: &str, bot_token: &str, app_token: &str) -> Self {
        SlackSettings {
            account_id: account_id.to_string(),
            bot_token: bot_token.to_string(),
            app_token: app_token.to_string(),
            api_base: "https://slack.com/api".into(),
            text_limit: 8000,
            media_max_mb: 20.0,
            ping_interval: Duration::from_secs(10),
            watchdog: WatchdogConfig {
                stall_timeout: Duration::from_secs(35),
                ..WatchdogConfig::default()
            },
            http: HttpRetry::default(),
            connect_timeout: Duration::from_secs(20),
        }
    }
}

struct Inner {
    settings: SlackSettings,
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    status: StatusHandle,
    bot_user: RwLock<Option<String>>,
}

/// One Slack app account.
pub struct SlackAdapter {
    inner: Arc<Inner>,
    caps: Capabilities,
    task: SupervisedTask,
}

fn transport(detail: impl std::fmt::Display) -> ChannelError {
    ChannelError::Transport {
        channel: CHANNEL,
        detail: detail.to_string(),
    }
}

fn classify(r: &HttpResponse) -> Verdict {
    match r.status {
        429 => Verdict::RateLimited(
            r.header("retry-after")
                .and_then(|v| pincer_backoff::parse_retry_after(v, std::time::SystemTime::now())),
        ),
        500..=599 => Verdict::Transient,
        _ => Verdict::Done,
    }
}

/// Normalises a Socket Mode `events_api` payload's message event.
pub fn normalize_event(
    payload: &Value,
    account_id: &str,
    bot_user: &str,
) -> Option<ChannelMessage> {
    let e = payload.get("event")?;
    if e.get("type").and_then(Value::as_str) != Some("message") {
        return None;
    }
    // Edits, deletions, joins … are not user turns; file shares and broadcasts are.
    match e.get("subtype").and_then(Value::as_str) {
        None | Some("file_share") | Some("thread_broadcast") => {}
        Some(_) => return None,
    }
    let s = |k: &str| e.get(k).and_then(Value::as_str).map(str::to_string);
    let user = s("user")?;
    let channel = s("channel")?;
    let ts = s("ts")?;
    let chat_type = match e.get("channel_type").and_then(Value::as_str) {
        Some("im") => ChatType::Direct,
        Some("mpim") => ChatType::Group,
        _ => ChatType::Channel,
    };
    let text = s("text").unwrap_or_default();
    let mut mentions = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("<@") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('>') else { break };
        let id = after[..end].split('|').next().unwrap_or("").to_string();
        if !id.is_empty() {
            mentions.push(id);
        }
        rest = &after[end..];
    }
    let mentions_bot = !bot_user.is_empty() && mentions.iter().any(|m| m == bot_user);
    let thread_ts = s("thread_ts");
    let reply_to_bot =
        e.get("parent_user_id").and_then(Value::as_str) == Some(bot_user) && !bot_user.is_empty();
    let media = e
        .get("files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|f| {
            let fs = |k: &str| f.get(k).and_then(Value::as_str).map(str::to_string);
            Some(MediaRef {
                kind: "file".into(),
                id: fs("id")?,
                url: fs("url_private"),
                mime_type: fs("mimetype"),
                file_name: fs("name"),
                size_bytes: f.get("size").and_then(Value::as_u64),
            })
        })
        .collect();
    let timestamp_ms = ts.parse::<f64>().map(|t| (t * 1000.0) as i64).unwrap_or(0);
    Some(ChannelMessage {
        conversation: Conversation {
            channel: CHANNEL.into(),
            account_id: account_id.to_string(),
            chat_type,
            chat_id: channel,
            thread_id: thread_ts,
        },
        message_id: ts,
        sender: Sender {
            id: user,
            name: None,
            username: None,
            is_bot: e.get("bot_id").is_some(),
        },
        text,
        mentions,
        mentions_bot,
        reply_to_bot,
        reply_to_message_id: None,
        media,
        guild_id: None,
        team_id: payload
            .get("team_id")
            .or_else(|| e.get("team"))
            .and_then(Value::as_str)
            .map(str::to_string),
        member_roles: Vec::new(),
        parent_chat_id: None,
        timestamp_ms,
    })
}

impl Inner {
    async fn api(&self, method: &str, token: &str, body: &Value) -> Result<Value> {
        let url = join_url(&self.settings.api_base, method);
        let payload = serde_json::to_vec(body).map_err(|e| ChannelError::Invalid(e.to_string()))?;
        let auth = format!("Bearer {token}");
        let response = request_with_retry(
            CHANNEL,
            method,
            &self.settings.http,
            || {
                self.http
                    .post(&url)
                    .header("authorization", &auth)
                    .header("content-type", "application/json; charset=utf-8")
                    .body(payload.clone())
            },
            classify,
        )
        .await?;
        if response.status == 429 {
            return Err(ChannelError::RateLimited {
                channel: CHANNEL,
                retry_after: Duration::ZERO,
            });
        }
        let value = response.json().ok_or_else(|| ChannelError::Api {
            channel: CHANNEL,
            method: method.to_string(),
            code: Some(i64::from(response.status)),
            detail: "answer is not JSON".into(),
        })?;
        if value.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(value);
        }
        let error = value
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown_error");
        if matches!(
            error,
            "invalid_auth"
                | "not_authed"
                | "account_inactive"
                | "token_revoked"
                | "token_expired"
                | "not_allowed_token_type"
        ) {
            return Err(ChannelError::InvalidToken {
                channel: CHANNEL,
                detail: format!("{method}: {error}"),
            });
        }
        Err(ChannelError::Api {
            channel: CHANNEL,
            method: method.to_string(),
            code: None,
            detail: error.to_string(),
        })
    }

    async fn socket_session(
        self: Arc<Self>,
        live: Arc<Liveness>,
        inbound: InboundSender,
    ) -> Result<SessionEnd> {
        let auth = self
            .api("auth.test", &self.settings.bot_token, &json!({}))
            .await?;
        let bot_user = auth
            .get("user_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        self.status
            .set_identity(&bot_user, auth.get("user").and_then(Value::as_str));
        *self.bot_user.write() = Some(bot_user.clone());
        let open = self
            .api(
                "apps.connections.open",
                &self.settings.app_token,
                &json!({}),
            )
            .await?;
        let url = open
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| transport("apps.connections.open answered without a url"))?
            .to_string();
        live.beat();
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            url.as_str(),
            None,
            true,
            Some(tokio_tungstenite::Connector::Rustls(self.tls.clone())),
        );
        let (ws, _) = tokio::time::timeout(self.settings.connect_timeout, connect)
            .await
            .map_err(|_| transport("socket handshake timed out"))?
            .map_err(transport)?;
        let (mut sink, mut stream) = ws.split();
        let mut ping = tokio::time::interval(self.settings.ping_interval);
        ping.tick().await;
        loop {
            tokio::select! {
                _ = ping.tick() => {
                    sink.send(Message::Ping(Vec::new().into())).await.map_err(transport)?;
                }
                frame = stream.next() => {
                    let frame = match frame {
                        Some(Ok(f)) => f,
                        Some(Err(e)) => return Err(transport(e)),
                        None => return Err(transport("socket closed")),
                    };
                    live.beat();
                    let text = match frame {
                        Message::Text(t) => t,
                        Message::Close(f) => return Err(transport(format!("socket closed: {f:?}"))),
                        _ => continue,
                    };
                    let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                    match v.get("type").and_then(Value::as_str) {
                        Some("hello") => self.status.connected(),
                        Some("disconnect") => {
                            let reason = v.get("reason").and_then(Value::as_str).unwrap_or("");
                            let _ = sink.send(Message::Close(None)).await;
                            if reason == "link_disabled" {
                                return Err(ChannelError::Fatal {
                                    channel: CHANNEL,
                                    detail: "Socket Mode was disabled for this app (link_disabled)".into(),
                                });
                            }
                            return Ok(SessionEnd::Reconnect);
                        }
                        Some(kind) => {
                            let Some(envelope_id) = v.get("envelope_id").and_then(Value::as_str) else { continue };
                            if kind == "events_api" {
                                if let Some(payload) = v.get("payload") {
                                    if let Some(msg) = normalize_event(payload, &self.settings.account_id, &bot_user) {
                                        if inbound.send(msg).await.is_err() {
                                            return Ok(SessionEnd::Shutdown);
                                        }
                                    }
                                }
                            }
                            // Acknowledge after the message is queued: a crash before this
                            // makes Slack redeliver instead of losing it.
                            let ack = json!({"envelope_id": envelope_id}).to_string();
                            sink.send(Message::Text(ack.into())).await.map_err(transport)?;
                        }
                        None => {}
                    }
                }
            }
        }
    }
}

impl SlackAdapter {
    pub fn new(settings: SlackSettings, http: reqwest::Client) -> Result<Self> {
        let caps = Capabilities {
            text_limit: settings.text_limit.clamp(1, 40_000),
            edit_limit: settings.text_limit.clamp(1, 40_000),
            measure: Measure::Chars,
            max_lines: None,
            threads: true,
            edits: true,
            typing: false,
            reply_to: false,
            media_max_bytes: (settings.media_max_mb.max(0.0) * 1024.0 * 1024.0) as u64,
            media_uploads: false,
        };
        Ok(SlackAdapter {
            inner: Arc::new(Inner {
                status: StatusHandle::new(CHANNEL, &settings.account_id),
                tls: crate::http::ws_tls_config()?,
                settings,
                http,
                bot_user: RwLock::new(None),
            }),
            caps,
            task: SupervisedTask::default(),
        })
    }
}

#[async_trait]
impl ChannelAdapter for SlackAdapter {
    fn channel(&self) -> &'static str {
        CHANNEL
    }

    fn account_id(&self) -> &str {
        &self.inner.settings.account_id
    }

    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    fn status(&self) -> StatusHandle {
        self.inner.status.clone()
    }

    async fn start(&self, inbound: InboundSender) -> Result<()> {
        let inner = self.inner.clone();
        inner.status.set_mode("socket");
        let (status, cfg) = (inner.status.clone(), inner.settings.watchdog);
        self.task
            .start(CHANNEL, status, cfg, move |live, _| {
                inner.clone().socket_session(live, inbound.clone())
            })
            .await;
        Ok(())
    }

    async fn stop(&self) {
        self.task.stop().await;
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SentMessage> {
        let c = &message.conversation;
        let channel = c
            .chat_id
            .strip_prefix("user:")
            .unwrap_or(&c.chat_id)
            .to_string();
        let mut text = message.text.clone();
        if let Some(media) = &message.media {
            match &media.source {
                MediaSource::Url(url) => {
                    if !text.is_empty() {
                        text.push('\n');
                    }
                    text.push_str(url);
                }
                MediaSource::Bytes { .. } => {
                    return Err(ChannelError::Unsupported {
                        channel: CHANNEL,
                        what: "attachment uploads",
                    })
                }
            }
        }
        let mut body = json!({"channel": channel, "text": text, "unfurl_links": false});
        if let Some(thread) = &c.thread_id {
            body["thread_ts"] = json!(thread);
        }
        let v = self
            .inner
            .api("chat.postMessage", &self.inner.settings.bot_token, &body)
            .await?;
        Ok(SentMessage {
            chat_id: v
                .get("channel")
                .and_then(Value::as_str)
                .unwrap_or(&channel)
                .to_string(),
            message_id: v
                .get("ts")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        })
    }

    async fn edit(&self, conversation: &Conversation, message_id: &str, text: &str) -> Result<()> {
        let body = json!({"channel": conversation.chat_id, "ts": message_id, "text": text});
        self.inner
            .api("chat.update", &self.inner.settings.bot_token, &body)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn events_become_messages() {
        let p = json!({"team_id": "T1", "event": {"type": "message", "channel": "C1", "channel_type": "channel",
            "user": "U1", "text": "<@UB|pincer> hi <@U2>", "ts": "1700000000.000100", "thread_ts": "1699999999.000001"}});
        let m = normalize_event(&p, "default", "UB").unwrap();
        assert!(m.mentions_bot);
        assert_eq!(m.mentions, vec!["UB", "U2"]);
        assert_eq!(
            (
                m.conversation.chat_type,
                m.conversation.thread_id.as_deref()
            ),
            (ChatType::Channel, Some("1699999999.000001"))
        );
        assert_eq!(
            (m.team_id.as_deref(), m.timestamp_ms),
            (Some("T1"), 1_700_000_000_000)
        );
        let dm = json!({"event": {"type": "message", "channel": "D1", "channel_type": "im", "user": "U1", "text": "x", "ts": "1.0"}});
        assert_eq!(
            normalize_event(&dm, "default", "UB")
                .unwrap()
                .conversation
                .chat_type,
            ChatType::Direct
        );
        let edited = json!({"event": {"type": "message", "subtype": "message_changed", "channel": "C1", "user": "U1", "ts": "1.0"}});
        assert!(normalize_event(&edited, "default", "UB").is_none());
        let bot = json!({"event": {"type": "message", "channel": "C1", "user": "U9", "bot_id": "B9", "text": "x", "ts": "2.0"}});
        assert!(
            normalize_event(&bot, "default", "UB")
                .unwrap()
                .sender
                .is_bot
        );
    }
}
