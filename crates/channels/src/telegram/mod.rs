//! Telegram Bot API adapter: long polling (`getUpdates` with a persisted offset) or webhook
//! delivery, DMs, groups, forum topics as threads, mentions (entities and `@botname`),
//! `sendMessage` with `reply_parameters`/`message_thread_id`, `editMessageText` previews,
//! `sendChatAction` typing, 429 `retry_after` honoured, an invalid token reported as a
//! clear status error.

mod normalize;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use pincer_backoff::RetryPolicy;
use pincer_store::Store;
use serde_json::{json, Value};

use crate::adapter::{Capabilities, ChannelAdapter, InboundSender};
use crate::chunk::Measure;
use crate::error::{ChannelError, Result};
use crate::http::{join_url, request_with_retry, HttpResponse, HttpRetry, Verdict};
use crate::message::{Conversation, MediaSource, OutboundMessage, SentMessage};
use crate::status::{now_ms, StatusHandle};
use crate::watchdog::{Liveness, SessionEnd, SupervisedTask, WatchdogConfig};

pub use normalize::normalize_update;

const CHANNEL: &str = "telegram";
/// The cursor under which the next `getUpdates` offset is persisted.
pub const OFFSET_CURSOR: &str = "updates.offset";

/// How updates arrive.
#[derive(Clone, PartialEq, Eq)]
pub enum TelegramMode {
    /// `getUpdates` long polling (default).
    Polling,
    /// Telegram POSTs updates to `url` (served by the gateway, which calls
    /// [`TelegramAdapter::handle_webhook`]); `secret` is checked against
    /// `X-Telegram-Bot-Api-Secret-Token`.
    Webhook { url: String, secret: Option<String> },
}

impl std::fmt::Debug for TelegramMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TelegramMode::Polling => f.write_str("Polling"),
            TelegramMode::Webhook { url, .. } => write!(f, "Webhook({url})"),
        }
    }
}

/// Settings of one Telegram account.
#[derive(Clone)]
pub struct TelegramSettings {
    pub account_id: String,
    pub token: String,
    /// `apiRoot` (default `https://api.telegram.org`).
    pub api_root: String,
    pub mode: TelegramMode,
    /// Long-poll `timeout` sent to `getUpdates`.
    pub poll_timeout: Duration,
    /// `textChunkLimit` (default 4000; the hard limit is 4096).
    pub text_limit: usize,
    /// `mediaMaxMb` (default 100).
    pub media_max_mb: f64,
    pub watchdog: WatchdogConfig,
    pub http: HttpRetry,
    /// Persists the update offset (a restart neither replays nor skips updates).
    pub store: Option<Store>,
}

impl std::fmt::Debug for TelegramSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramSettings")
            .field("account_id", &self.account_id)
            .field("token", &"<redacted>")
            .field("api_root", &self.api_root)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl TelegramSettings {
    pub fn new(account_id: &str, token: &str) -> Self {
        TelegramSettings {
            account_id: account_id.to_string(),
            token: token.to_string(),
            api_root: "https://api.telegram.org".into(),
            mode: TelegramMode::Polling,
            poll_timeout: Duration::from_secs(30),
            text_limit: 4000,
            media_max_mb: 100.0,
            watchdog: WatchdogConfig {
                // The reference's polling watchdog: 120 s without a completed poll.
                stall_timeout: Duration::from_secs(120),
                ..WatchdogConfig::default()
            },
            http: HttpRetry::default(),
            store: None,
        }
    }
}

/// The bot's own identity (`getMe`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotInfo {
    pub id: String,
    pub username: Option<String>,
}

struct Inner {
    settings: TelegramSettings,
    http: reqwest::Client,
    status: StatusHandle,
    bot: parking_lot::RwLock<Option<BotInfo>>,
    webhook_tx: parking_lot::RwLock<Option<InboundSender>>,
}

/// One Telegram bot account.
pub struct TelegramAdapter {
    inner: Arc<Inner>,
    caps: Capabilities,
    task: SupervisedTask,
}

/// Why a webhook delivery was refused (the gateway maps these to HTTP statuses).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    #[error("webhook secret token mismatch")]
    Unauthorized,
    #[error("malformed update: {0}")]
    BadRequest(String),
    #[error("the channel is not running")]
    NotRunning,
}

fn chat_id_value(id: &str) -> Value {
    match id.parse::<i64>() {
        Ok(n) => json!(n),
        Err(_) => json!(id),
    }
}

fn classify(r: &HttpResponse) -> Verdict {
    match r.status {
        429 => {
            let hint = r
                .json()
                .and_then(|v| v.pointer("/parameters/retry_after").and_then(Value::as_f64))
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(Duration::from_secs_f64);
            Verdict::RateLimited(hint)
        }
        500..=599 => Verdict::Transient,
        _ => Verdict::Done,
    }
}

impl Inner {
    fn url(&self, method: &str) -> String {
        join_url(
            &self.settings.api_root,
            &format!("bot{}/{method}", self.settings.token),
        )
    }

    async fn call_with(&self, method: &str, body: &Value, retry: &HttpRetry) -> Result<Value> {
        let url = self.url(method);
        let payload = serde_json::to_vec(body).map_err(|e| ChannelError::Invalid(e.to_string()))?;
        let response = request_with_retry(
            CHANNEL,
            method,
            retry,
            || {
                self.http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(payload.clone())
            },
            classify,
        )
        .await?;
        let value = response.json().unwrap_or(Value::Null);
        if value.get("ok").and_then(Value::as_bool) == Some(true) {
            return Ok(value.get("result").cloned().unwrap_or(Value::Null));
        }
        let code = value
            .get("error_code")
            .and_then(Value::as_i64)
            .unwrap_or(i64::from(response.status));
        let description = value
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| format!("HTTP {}", response.status));
        if code == 401 || (code == 404 && method == "getMe") {
            return Err(ChannelError::InvalidToken {
                channel: CHANNEL,
                detail: format!("{code} {description}"),
            });
        }
        if code == 429 {
            let retry_after = value
                .pointer("/parameters/retry_after")
                .and_then(Value::as_f64)
                .map(Duration::from_secs_f64)
                .unwrap_or_default();
            return Err(ChannelError::RateLimited {
                channel: CHANNEL,
                retry_after,
            });
        }
        Err(ChannelError::Api {
            channel: CHANNEL,
            method: method.to_string(),
            code: Some(code),
            detail: description,
        })
    }

    async fn call(&self, method: &str, body: &Value) -> Result<Value> {
        self.call_with(method, body, &self.settings.http).await
    }

    async fn get_me(&self) -> Result<BotInfo> {
        let me = self.call("getMe", &json!({})).await?;
        let id = me
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| ChannelError::Api {
                channel: CHANNEL,
                method: "getMe".into(),
                code: None,
                detail: "answer without a bot id".into(),
            })?
            .to_string();
        let username = me
            .get("username")
            .and_then(Value::as_str)
            .map(str::to_string);
        self.status.set_identity(&id, username.as_deref());
        let info = BotInfo { id, username };
        *self.bot.write() = Some(info.clone());
        Ok(info)
    }

    async fn load_offset(&self) -> Option<i64> {
        let store = self.settings.store.as_ref()?;
        match store
            .channel_cursor(CHANNEL, &self.settings.account_id, OFFSET_CURSOR)
            .await
        {
            Ok(v) => v.and_then(|s| s.parse().ok()),
            Err(e) => {
                tracing::warn!(error = %e, "telegram: cannot read the saved update offset");
                None
            }
        }
    }

    async fn save_offset(&self, offset: i64) {
        if let Some(store) = &self.settings.store {
            if let Err(e) = store
                .set_channel_cursor(
                    CHANNEL,
                    &self.settings.account_id,
                    OFFSET_CURSOR,
                    &offset.to_string(),
                    now_ms(),
                )
                .await
            {
                tracing::warn!(error = %e, "telegram: cannot save the update offset");
            }
        }
    }

    /// One polling session: identify, then long-poll until an error.
    async fn poll_session(
        self: Arc<Self>,
        live: Arc<Liveness>,
        inbound: InboundSender,
        offset: Arc<Mutex<Option<i64>>>,
    ) -> Result<SessionEnd> {
        let bot = self.get_me().await?;
        live.beat();
        // A webhook left behind by another deployment blocks getUpdates (409).
        self.call("deleteWebhook", &json!({"drop_pending_updates": false}))
            .await?;
        if offset.lock().is_none() {
            *offset.lock() = self.load_offset().await;
        }
        // The token works and nothing blocks polling: connected (the first long poll may
        // legitimately wait its whole timeout for an update).
        self.status.connected();
        let poll_retry = HttpRetry {
            transient: RetryPolicy::none(),
            timeout: self.settings.poll_timeout + Duration::from_secs(15),
            ..self.settings.http
        };
        loop {
            let current = *offset.lock();
            let mut body = json!({
                "timeout": self.settings.poll_timeout.as_secs(),
                "allowed_updates": ["message"],
            });
            if let Some(o) = current {
                body["offset"] = json!(o);
            }
            let updates = self.call_with("getUpdates", &body, &poll_retry).await?;
            live.beat();
            let Some(list) = updates.as_array() else {
                continue;
            };
            let mut next = current;
            let mut batch = Vec::with_capacity(list.len());
            for update in list {
                let Some(id) = update.get("update_id").and_then(Value::as_i64) else {
                    continue;
                };
                if let Some(msg) = normalize_update(update, &self.settings.account_id, &bot) {
                    batch.push(msg);
                }
                next = Some(next.map_or(id + 1, |n: i64| n.max(id + 1)));
            }
            // Recorded (journal) and queued before the offset moves past them; with a
            // journal the new offset is saved in the record's own commit.
            let advanced = next.filter(|_| next != current);
            let value = advanced.map(|n| n.to_string());
            let cursor = value
                .as_deref()
                .filter(|_| self.settings.store.is_some())
                .map(|v| (OFFSET_CURSOR, v));
            let Ok(saved) = inbound.send_batch_with_cursor(batch, cursor).await else {
                return Ok(SessionEnd::Shutdown);
            };
            if let Some(n) = advanced {
                *offset.lock() = Some(n);
                if !saved {
                    self.save_offset(n).await;
                }
            }
        }
    }

    async fn webhook_session(
        self: Arc<Self>,
        live: Arc<Liveness>,
        url: String,
        secret: Option<String>,
    ) -> Result<SessionEnd> {
        self.get_me().await?;
        let mut body = json!({"url": url, "allowed_updates": ["message"]});
        if let Some(s) = secret {
            body["secret_token"] = json!(s);
        }
        self.call("setWebhook", &body).await?;
        self.status.connected();
        // Deliveries arrive through `handle_webhook`; check the registration periodically.
        loop {
            live.beat();
            tokio::time::sleep(self.settings.watchdog.stall_timeout / 2).await;
            self.call("getWebhookInfo", &json!({})).await?;
        }
    }
}

impl TelegramAdapter {
    pub fn new(settings: TelegramSettings, http: reqwest::Client) -> Self {
        let caps = Capabilities {
            text_limit: settings.text_limit.clamp(1, 4096),
            edit_limit: 4096,
            measure: Measure::Utf16,
            max_lines: None,
            threads: true,
            edits: true,
            typing: true,
            reply_to: true,
            media_max_bytes: (settings.media_max_mb.max(0.0) * 1024.0 * 1024.0) as u64,
            media_uploads: false,
        };
        TelegramAdapter {
            inner: Arc::new(Inner {
                status: StatusHandle::new(CHANNEL, &settings.account_id),
                settings,
                http,
                bot: parking_lot::RwLock::new(None),
                webhook_tx: parking_lot::RwLock::new(None),
            }),
            caps,
            task: SupervisedTask::default(),
        }
    }

    /// The bot identity once connected.
    pub fn bot(&self) -> Option<BotInfo> {
        self.inner.bot.read().clone()
    }

    /// Webhook mode: one update POSTed by Telegram. `secret_header` is the request's
    /// `X-Telegram-Bot-Api-Secret-Token` (compared in constant time).
    pub async fn handle_webhook(
        &self,
        secret_header: Option<&str>,
        body: &[u8],
    ) -> Result<(), WebhookError> {
        if let TelegramMode::Webhook {
            secret: Some(secret),
            ..
        } = &self.inner.settings.mode
        {
            use subtle::ConstantTimeEq;
            let given = secret_header.unwrap_or("").as_bytes();
            if given.len() != secret.len() || !bool::from(given.ct_eq(secret.as_bytes())) {
                return Err(WebhookError::Unauthorized);
            }
        }
        let update: Value =
            serde_json::from_slice(body).map_err(|e| WebhookError::BadRequest(e.to_string()))?;
        let bot = self
            .inner
            .bot
            .read()
            .clone()
            .ok_or(WebhookError::NotRunning)?;
        let tx = self
            .inner
            .webhook_tx
            .read()
            .clone()
            .ok_or(WebhookError::NotRunning)?;
        if let Some(msg) = normalize_update(&update, &self.inner.settings.account_id, &bot) {
            tx.send(msg).await.map_err(|_| WebhookError::NotRunning)?;
        }
        Ok(())
    }
}

#[async_trait]
impl ChannelAdapter for TelegramAdapter {
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
        let (status, cfg) = (inner.status.clone(), inner.settings.watchdog);
        match inner.settings.mode.clone() {
            TelegramMode::Polling => {
                inner.status.set_mode("polling");
                let offset = Arc::new(Mutex::new(None));
                self.task
                    .start(CHANNEL, status, cfg, move |live, _| {
                        inner
                            .clone()
                            .poll_session(live, inbound.clone(), offset.clone())
                    })
                    .await;
            }
            TelegramMode::Webhook { url, secret } => {
                inner.status.set_mode("webhook");
                *inner.webhook_tx.write() = Some(inbound);
                self.task
                    .start(CHANNEL, status, cfg, move |live, _| {
                        inner
                            .clone()
                            .webhook_session(live, url.clone(), secret.clone())
                    })
                    .await;
            }
        }
        Ok(())
    }

    async fn stop(&self) {
        self.task.stop().await;
        *self.inner.webhook_tx.write() = None;
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SentMessage> {
        let c = &message.conversation;
        let chat_id = c.chat_id.strip_prefix("user:").unwrap_or(&c.chat_id);
        let mut body = json!({"chat_id": chat_id_value(chat_id)});
        if let Some(thread) = &c.thread_id {
            if let Ok(t) = thread.parse::<i64>() {
                body["message_thread_id"] = json!(t);
            }
        }
        if let Some(reply) = message
            .reply_to
            .as_deref()
            .and_then(|r| r.parse::<i64>().ok())
        {
            body["reply_parameters"] =
                json!({"message_id": reply, "allow_sending_without_reply": true});
        }
        if message.silent {
            body["disable_notification"] = json!(true);
        }
        let method = match &message.media {
            None => {
                body["text"] = json!(message.text);
                "sendMessage"
            }
            Some(media) => {
                let MediaSource::Url(url) = &media.source else {
                    return Err(ChannelError::Unsupported {
                        channel: CHANNEL,
                        what: "attachment uploads",
                    });
                };
                if !message.text.is_empty() {
                    body["caption"] = json!(message.text);
                }
                if media.is_image() {
                    body["photo"] = json!(url);
                    "sendPhoto"
                } else {
                    body["document"] = json!(url);
                    "sendDocument"
                }
            }
        };
        let result = self.inner.call(method, &body).await?;
        let message_id = result
            .get("message_id")
            .and_then(Value::as_i64)
            .map(|m| m.to_string())
            .unwrap_or_default();
        Ok(SentMessage {
            chat_id: chat_id.to_string(),
            message_id,
        })
    }

    async fn edit(&self, conversation: &Conversation, message_id: &str, text: &str) -> Result<()> {
        let body = json!({
            "chat_id": chat_id_value(&conversation.chat_id),
            "message_id": message_id.parse::<i64>().map_err(|_| ChannelError::Invalid(format!("bad telegram message id {message_id:?}")))?,
            "text": text,
        });
        match self.inner.call("editMessageText", &body).await {
            Ok(_) => Ok(()),
            // Editing to identical text is not an error for us.
            Err(ChannelError::Api { detail, .. }) if detail.contains("message is not modified") => {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn typing(&self, conversation: &Conversation) -> Result<()> {
        let mut body = json!({"chat_id": chat_id_value(&conversation.chat_id), "action": "typing"});
        if let Some(t) = conversation
            .thread_id
            .as_deref()
            .and_then(|t| t.parse::<i64>().ok())
        {
            body["message_thread_id"] = json!(t);
        }
        self.inner.call("sendChatAction", &body).await.map(|_| ())
    }
}
