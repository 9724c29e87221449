//! Discord adapter: the Gateway WebSocket (v10: Hello → Identify with intents, heartbeats
//! with jitter and ACK tracking — a missing ACK marks a zombie connection and reconnects —,
//! Resume with `session_id` + `seq` on `resume_gateway_url`, op 7 Reconnect, op 9 Invalid
//! Session, close codes 4000–4014) plus REST (`POST /channels/{id}/messages`, edits,
//! typing, DM channels) with per-route and global rate-limit buckets.

mod normalize;
pub mod ratelimit;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::{SinkExt, StreamExt};
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::adapter::{Capabilities, ChannelAdapter, InboundSender};
use crate::chunk::Measure;
use crate::error::{ChannelError, Result};
use crate::http::{join_url, request_with_retry_gated, HttpResponse, HttpRetry};
use crate::message::{ChatType, Conversation, MediaSource, OutboundMessage, SentMessage};
use crate::status::StatusHandle;
use crate::watchdog::{Liveness, SessionEnd, SupervisedTask, WatchdogConfig};

pub use normalize::{normalize_message, ChannelInfo};
use ratelimit::RateLimiter;

const CHANNEL: &str = "discord";

/// Gateway intents.
pub mod intents {
    pub const GUILDS: u64 = 1 << 0;
    pub const GUILD_MESSAGES: u64 = 1 << 9;
    pub const DIRECT_MESSAGES: u64 = 1 << 12;
    pub const MESSAGE_CONTENT: u64 = 1 << 15;
    /// What the adapter needs: guild + DM messages with their content.
    pub const DEFAULT: u64 = GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT;
}

/// Settings of one Discord bot account.
#[derive(Clone)]
pub struct DiscordSettings {
    pub account_id: String,
    pub token: String,
    /// REST base (default `https://discord.com/api/v10`).
    pub api_base: String,
    /// Gateway URL; `None` asks `GET /gateway/bot`.
    pub gateway_url: Option<String>,
    pub intents: u64,
    /// `textChunkLimit` (default and maximum 2000).
    pub text_limit: usize,
    /// `maxLinesPerMessage` (default 17).
    pub max_lines: usize,
    pub media_max_mb: f64,
    pub watchdog: WatchdogConfig,
    pub http: HttpRetry,
    /// Wait after an op 9 Invalid Session before identifying again (Discord asks for 1–5 s).
    pub invalid_session_delay: Duration,
    /// Time allowed for the WebSocket handshake and the Hello frame.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for DiscordSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiscordSettings")
            .field("account_id", &self.account_id)
            .field("token", &"<redacted>")
            .field("api_base", &self.api_base)
            .field("gateway_url", &self.gateway_url)
            .finish_non_exhaustive()
    }
}

impl DiscordSettings {
    pub fn new(account_id: &str, token: &str) -> Self {
        DiscordSettings {
            account_id: account_id.to_string(),
            token: token.to_string(),
            api_base: "https://discord.com/api/v10".into(),
            gateway_url: None,
            intents: intents::DEFAULT,
            text_limit: 2000,
            max_lines: 17,
            media_max_mb: 100.0,
            watchdog: WatchdogConfig::default(),
            http: HttpRetry::default(),
            invalid_session_delay: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(20),
        }
    }
}

/// What survives a connection for a Resume.
#[derive(Debug, Clone, Default)]
struct ResumeState {
    session_id: Option<String>,
    resume_url: Option<String>,
    seq: Option<u64>,
}

struct Inner {
    settings: DiscordSettings,
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    status: StatusHandle,
    limiter: RateLimiter,
    bot_id: RwLock<Option<String>>,
    channels: RwLock<HashMap<String, ChannelInfo>>,
    dm_channels: RwLock<HashMap<String, String>>,
    counters: Mutex<GatewayCounters>,
}

/// Gateway handshake counters (status and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayCounters {
    pub identifies: u64,
    pub resumes: u64,
    pub zombie_reconnects: u64,
}

/// One Discord bot account.
pub struct DiscordAdapter {
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

/// What a gateway close code means for us.
fn close_error(code: u16, reason: &str, resume: &mut ResumeState) -> ChannelError {
    let detail = format!("gateway closed the connection with {code} {reason}");
    match code {
        4004 => ChannelError::InvalidToken {
            channel: CHANNEL,
            detail: format!("4004 {reason}"),
        },
        4010..=4014 => ChannelError::Fatal {
            channel: CHANNEL,
            detail: match code {
                4013 => format!("{detail} (invalid intents)"),
                4014 => format!("{detail} (disallowed intents: enable the Message Content intent in the developer portal)"),
                _ => detail,
            },
        },
        // Invalid seq / session timed out: a resume cannot work, identify anew.
        4007 | 4009 => {
            *resume = ResumeState::default();
            transport(detail)
        }
        _ => transport(detail),
    }
}

impl Inner {
    fn route_url(&self, path: &str) -> String {
        join_url(&self.settings.api_base, path)
    }

    /// One REST call. `route` is the rate-limit route key (method + path with its major id).
    async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        route: &str,
        body: Option<&Value>,
    ) -> Result<HttpResponse> {
        let url = self.route_url(path);
        let payload = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let auth = format!("Bot {}", self.settings.token);
        let response = request_with_retry_gated(
            CHANNEL,
            route,
            &self.settings.http,
            || self.limiter.acquire(route),
            || {
                let mut r = self
                    .http
                    .request(method.clone(), &url)
                    .header("authorization", &auth);
                if let Some(p) = &payload {
                    r = r.header("content-type", "application/json").body(p.clone());
                }
                r
            },
            |r| self.limiter.observe(route, r),
        )
        .await?;
        match response.status {
            200..=299 => Ok(response),
            401 => Err(ChannelError::InvalidToken {
                channel: CHANNEL,
                detail: "401 Unauthorized".into(),
            }),
            429 => Err(ChannelError::RateLimited {
                channel: CHANNEL,
                retry_after: Duration::ZERO,
            }),
            status => {
                let detail = response
                    .json()
                    .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_string))
                    .unwrap_or_else(|| format!("HTTP {status}"));
                Err(ChannelError::Api {
                    channel: CHANNEL,
                    method: route.to_string(),
                    code: Some(i64::from(status)),
                    detail,
                })
            }
        }
    }

    async fn gateway_url(&self) -> Result<String> {
        if let Some(url) = &self.settings.gateway_url {
            return Ok(url.clone());
        }
        let r = self
            .rest(
                reqwest::Method::GET,
                "gateway/bot",
                "GET /gateway/bot",
                None,
            )
            .await?;
        r.json()
            .and_then(|v| v.get("url").and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| transport("GET /gateway/bot answered without a url"))
    }

    /// Channel type and parent (threads), cached; asks REST on a miss.
    async fn channel_info(&self, channel_id: &str) -> Option<ChannelInfo> {
        if let Some(info) = self.channels.read().get(channel_id) {
            return Some(info.clone());
        }
        let path = format!("channels/{channel_id}");
        let route = format!("GET /channels/{channel_id}");
        let r = self
            .rest(reqwest::Method::GET, &path, &route, None)
            .await
            .ok()?;
        let info = ChannelInfo::from_json(&r.json()?)?;
        self.channels
            .write()
            .insert(channel_id.to_string(), info.clone());
        Some(info)
    }

    fn learn_channels(&self, list: Option<&Value>) {
        let mut map = self.channels.write();
        for c in list.and_then(Value::as_array).into_iter().flatten() {
            if let (Some(id), Some(info)) = (
                c.get("id").and_then(Value::as_str),
                ChannelInfo::from_json(c),
            ) {
                map.insert(id.to_string(), info);
            }
        }
    }

    async fn dm_channel(&self, user_id: &str) -> Result<String> {
        if let Some(c) = self.dm_channels.read().get(user_id) {
            return Ok(c.clone());
        }
        let r = self
            .rest(
                reqwest::Method::POST,
                "users/@me/channels",
                "POST /users/@me/channels",
                Some(&json!({"recipient_id": user_id})),
            )
            .await?;
        let id = r
            .json()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| transport("DM channel answer without an id"))?;
        self.dm_channels
            .write()
            .insert(user_id.to_string(), id.clone());
        Ok(id)
    }

    async fn target_channel(&self, c: &Conversation) -> Result<String> {
        match c.chat_id.strip_prefix("user:") {
            Some(user) => self.dm_channel(user).await,
            None => Ok(c.chat_id.clone()),
        }
    }

    /// One gateway connection, from connect to the first error.
    async fn gateway_session(
        self: Arc<Self>,
        live: Arc<Liveness>,
        inbound: InboundSender,
        resume: Arc<Mutex<ResumeState>>,
    ) -> Result<SessionEnd> {
        let saved = resume.lock().clone();
        let base = match (&saved.session_id, &saved.resume_url) {
            (Some(_), Some(url)) => url.clone(),
            _ => self.gateway_url().await?,
        };
        let mut url =
            url::Url::parse(&base).map_err(|e| transport(format!("bad gateway URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("v", "10")
            .append_pair("encoding", "json");
        let url = url.to_string();
        let connect = tokio_tungstenite::connect_async_tls_with_config(
            url.as_str(),
            None,
            true,
            Some(tokio_tungstenite::Connector::Rustls(self.tls.clone())),
        );
        let (ws, _) = tokio::time::timeout(self.settings.connect_timeout, connect)
            .await
            .map_err(|_| transport("gateway handshake timed out"))?
            .map_err(transport)?;
        let (mut sink, mut stream) = ws.split();
        live.beat();
        // Hello.
        let hello = tokio::time::timeout(self.settings.connect_timeout, stream.next())
            .await
            .map_err(|_| transport("no Hello from the gateway"))?;
        let interval = match hello {
            Some(Ok(Message::Text(t))) => serde_json::from_str::<Value>(&t)
                .ok()
                .filter(|v| v.get("op").and_then(Value::as_u64) == Some(10))
                .and_then(|v| v.pointer("/d/heartbeat_interval").and_then(Value::as_u64))
                .ok_or_else(|| transport("first gateway frame was not Hello"))?,
            Some(Ok(Message::Close(frame))) => {
                let (code, reason) = frame
                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                    .unwrap_or((1005, String::new()));
                return Err(close_error(code, &reason, &mut resume.lock()));
            }
            other => return Err(transport(format!("gateway closed before Hello: {other:?}"))),
        };
        let interval = Duration::from_millis(interval.max(100));
        live.beat();
        let token = self.settings.token.clone();
        let handshake = match (&saved.session_id, saved.seq) {
            (Some(session_id), seq) => {
                self.counters.lock().resumes += 1;
                json!({"op": 6, "d": {"token": token, "session_id": session_id, "seq": seq}})
            }
            _ => {
                self.counters.lock().identifies += 1;
                json!({"op": 2, "d": {
                    "token": token,
                    "intents": self.settings.intents,
                    "properties": {"os": std::env::consts::OS, "browser": "pincer", "device": "pincer"},
                }})
            }
        };
        sink.send(Message::Text(handshake.to_string().into()))
            .await
            .map_err(transport)?;
        // First heartbeat after interval × jitter, then every interval.
        let jitter: f64 = rand::random::<f64>();
        let mut next_beat = Instant::now() + interval.mul_f64(jitter);
        let mut acked = true;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next_beat) => {
                    if !acked {
                        self.counters.lock().zombie_reconnects += 1;
                        // Close with a non-1000 code so the session stays resumable.
                        let _ = sink.send(Message::Close(None)).await;
                        return Err(transport("heartbeat not acknowledged (zombie connection)"));
                    }
                    let seq = resume.lock().seq;
                    sink.send(Message::Text(json!({"op": 1, "d": seq}).to_string().into())).await.map_err(transport)?;
                    acked = false;
                    next_beat = Instant::now() + interval;
                }
                frame = stream.next() => {
                    let frame = match frame {
                        Some(Ok(f)) => f,
                        Some(Err(e)) => return Err(transport(e)),
                        None => return Err(transport("gateway connection closed")),
                    };
                    live.beat();
                    let text = match frame {
                        Message::Text(t) => t,
                        Message::Close(frame) => {
                            let (code, reason) = frame.map(|f| (u16::from(f.code), f.reason.to_string())).unwrap_or((1005, String::new()));
                            return Err(close_error(code, &reason, &mut resume.lock()));
                        }
                        _ => continue,
                    };
                    let Ok(payload) = serde_json::from_str::<Value>(&text) else {
                        tracing::debug!("discord: undecodable gateway frame");
                        continue;
                    };
                    if let Some(s) = payload.get("s").and_then(Value::as_u64) {
                        let mut r = resume.lock();
                        r.seq = Some(r.seq.map_or(s, |old| old.max(s)));
                    }
                    match payload.get("op").and_then(Value::as_u64) {
                        Some(0) => {
                            let d = payload.get("d").unwrap_or(&Value::Null);
                            match payload.get("t").and_then(Value::as_str) {
                                Some("READY") => {
                                    {
                                        let mut r = resume.lock();
                                        r.session_id = d.get("session_id").and_then(Value::as_str).map(str::to_string);
                                        r.resume_url = d.get("resume_gateway_url").and_then(Value::as_str).map(str::to_string);
                                    }
                                    if let Some(user) = d.get("user") {
                                        let id = user.get("id").and_then(Value::as_str).unwrap_or_default();
                                        *self.bot_id.write() = Some(id.to_string());
                                        self.status.set_identity(id, user.get("username").and_then(Value::as_str));
                                    }
                                    self.status.connected();
                                }
                                Some("RESUMED") => self.status.connected(),
                                Some("GUILD_CREATE") => {
                                    self.learn_channels(d.get("channels"));
                                    self.learn_channels(d.get("threads"));
                                }
                                Some("THREAD_CREATE") | Some("CHANNEL_CREATE") => {
                                    if let (Some(id), Some(info)) = (d.get("id").and_then(Value::as_str), ChannelInfo::from_json(d)) {
                                        self.channels.write().insert(id.to_string(), info);
                                    }
                                }
                                Some("MESSAGE_CREATE") => {
                                    let bot_id = self.bot_id.read().clone().unwrap_or_default();
                                    let info = match (d.get("guild_id"), d.get("channel_id").and_then(Value::as_str)) {
                                        (Some(_), Some(cid)) => self.channel_info(cid).await,
                                        _ => None,
                                    };
                                    if let Some(msg) = normalize_message(d, &self.settings.account_id, &bot_id, info.as_ref()) {
                                        if inbound.send(msg).await.is_err() {
                                            return Ok(SessionEnd::Shutdown);
                                        }
                                    }
                                }
                                _ => {}
                            }
                        }
                        // The gateway asks for a heartbeat now.
                        Some(1) => {
                            let seq = resume.lock().seq;
                            sink.send(Message::Text(json!({"op": 1, "d": seq}).to_string().into())).await.map_err(transport)?;
                        }
                        Some(7) => {
                            let _ = sink.send(Message::Close(None)).await;
                            return Ok(SessionEnd::Reconnect);
                        }
                        Some(9) => {
                            let resumable = payload.get("d").and_then(Value::as_bool).unwrap_or(false);
                            if !resumable {
                                *resume.lock() = ResumeState::default();
                            }
                            let _ = sink.send(Message::Close(None)).await;
                            tokio::time::sleep(self.settings.invalid_session_delay).await;
                            return Ok(SessionEnd::Reconnect);
                        }
                        Some(11) => acked = true,
                        _ => {}
                    }
                }
            }
        }
    }
}

impl DiscordAdapter {
    pub fn new(settings: DiscordSettings, http: reqwest::Client) -> Result<Self> {
        let caps = Capabilities {
            text_limit: settings.text_limit.clamp(1, 2000),
            edit_limit: 2000,
            measure: Measure::Chars,
            max_lines: Some(settings.max_lines.max(1)),
            threads: true,
            edits: true,
            typing: true,
            reply_to: true,
            media_max_bytes: (settings.media_max_mb.max(0.0) * 1024.0 * 1024.0) as u64,
            media_uploads: false,
        };
        Ok(DiscordAdapter {
            inner: Arc::new(Inner {
                status: StatusHandle::new(CHANNEL, &settings.account_id),
                tls: crate::http::ws_tls_config()?,
                settings,
                http,
                limiter: RateLimiter::default(),
                bot_id: RwLock::new(None),
                channels: RwLock::new(HashMap::new()),
                dm_channels: RwLock::new(HashMap::new()),
                counters: Mutex::new(GatewayCounters::default()),
            }),
            caps,
            task: SupervisedTask::default(),
        })
    }

    /// Identify/resume/zombie counters.
    pub fn gateway_counters(&self) -> GatewayCounters {
        *self.inner.counters.lock()
    }
}

#[async_trait]
impl ChannelAdapter for DiscordAdapter {
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
        inner.status.set_mode("gateway");
        let resume = Arc::new(Mutex::new(ResumeState::default()));
        let (status, cfg) = (inner.status.clone(), inner.settings.watchdog);
        self.task
            .start(CHANNEL, status, cfg, move |live, _| {
                inner
                    .clone()
                    .gateway_session(live, inbound.clone(), resume.clone())
            })
            .await;
        Ok(())
    }

    async fn stop(&self) {
        self.task.stop().await;
    }

    async fn send(&self, message: &OutboundMessage) -> Result<SentMessage> {
        let channel_id = self.inner.target_channel(&message.conversation).await?;
        let mut content = message.text.clone();
        if let Some(media) = &message.media {
            match &media.source {
                // Discord unfurls links; uploads need multipart (not implemented yet).
                MediaSource::Url(url) => {
                    if !content.is_empty() {
                        content.push('\n');
                    }
                    content.push_str(url);
                }
                MediaSource::Bytes { .. } => {
                    return Err(ChannelError::Unsupported {
                        channel: CHANNEL,
                        what: "attachment uploads",
                    })
                }
            }
        }
        let mut body =
            json!({"content": content, "allowed_mentions": {"parse": [], "replied_user": false}});
        if let Some(reply) = &message.reply_to {
            body["message_reference"] = json!({"message_id": reply, "fail_if_not_exists": false});
        }
        if message.silent {
            // SUPPRESS_NOTIFICATIONS
            body["flags"] = json!(1 << 12);
        }
        let path = format!("channels/{channel_id}/messages");
        let route = format!("POST /channels/{channel_id}/messages");
        let r = self
            .inner
            .rest(reqwest::Method::POST, &path, &route, Some(&body))
            .await?;
        let id = r
            .json()
            .and_then(|v| v.get("id").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        Ok(SentMessage {
            chat_id: channel_id,
            message_id: id,
        })
    }

    async fn edit(&self, conversation: &Conversation, message_id: &str, text: &str) -> Result<()> {
        let channel_id = self.inner.target_channel(conversation).await?;
        let path = format!("channels/{channel_id}/messages/{message_id}");
        let route = format!("PATCH /channels/{channel_id}/messages/:id");
        self.inner
            .rest(
                reqwest::Method::PATCH,
                &path,
                &route,
                Some(&json!({"content": text})),
            )
            .await
            .map(|_| ())
    }

    async fn typing(&self, conversation: &Conversation) -> Result<()> {
        let channel_id = self.inner.target_channel(conversation).await?;
        let path = format!("channels/{channel_id}/typing");
        let route = format!("POST /channels/{channel_id}/typing");
        self.inner
            .rest(reqwest::Method::POST, &path, &route, None)
            .await
            .map(|_| ())
    }
}

/// Used by tests to tell DM conversations apart.
pub fn is_dm(c: &Conversation) -> bool {
    c.chat_type == ChatType::Direct
}
