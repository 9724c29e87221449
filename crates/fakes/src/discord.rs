//! A fake Discord: the Gateway (v10 JSON over WebSocket: Hello, Identify, Heartbeat/ACK,
//! Resume with replay of missed events after `seq`, op 7 Reconnect, op 9 Invalid Session,
//! close codes) and REST (`/api/v10`: `GET /gateway/bot`, `POST /channels/{id}/messages`,
//! edits, typing, DM channels, `GET /channels/{id}`) with rate-limit headers and scripted
//! 429s. Bound to `127.0.0.1:0`.
//!
//! Events injected while the bot is disconnected stay in the session's log and are replayed
//! on Resume, as Discord does; a new Identify starts a fresh session (the old log is gone).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use crate::http::{FakeHttpServer, Handler, Reply, Request, Response, ServerOptions};
use crate::ws::{OnConnect, WsListener, WsStream};

/// The bot's user id.
pub const BOT_ID: &str = "800000000000000001";
/// The bot's username.
pub const BOT_USERNAME: &str = "pincer-test";
/// `MESSAGE_CONTENT` intent bit.
pub const INTENT_MESSAGE_CONTENT: u64 = 1 << 15;

/// A user writing to the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    pub id: String,
    pub username: String,
}

impl FakeUser {
    pub fn new(id: &str, username: &str) -> Self {
        FakeUser {
            id: id.to_string(),
            username: username.to_string(),
        }
    }

    fn json(&self) -> Value {
        json!({"id": self.id, "username": self.username, "global_name": self.username, "bot": false})
    }
}

/// One recorded REST call.
#[derive(Debug, Clone)]
pub struct DiscordCall {
    pub method: String,
    /// Path without `/api/v10`.
    pub path: String,
    pub body: Value,
    pub rate_limited: bool,
    pub at: tokio::time::Instant,
}

enum Cmd {
    Send(String),
    /// Drop the TCP connection without a close frame.
    Drop,
    Close(u16, String),
}

struct Session {
    seq: u64,
    log: Vec<(u64, String)>,
    conn: Option<u64>,
    valid: bool,
}

#[derive(Default)]
struct Script {
    rate_limits: Vec<(String, u32, f64, bool)>,
}

struct State {
    token: Mutex<String>,
    heartbeat_interval_ms: AtomicU64,
    ack_heartbeats: AtomicBool,
    sessions: Mutex<HashMap<String, Session>>,
    current: Mutex<Option<String>>,
    pre_session: Mutex<Vec<(String, Value)>>,
    conns: Mutex<HashMap<u64, mpsc::UnboundedSender<Cmd>>>,
    next_conn: AtomicU64,
    next_id: AtomicU64,
    identifies: AtomicU64,
    resumes: AtomicU64,
    heartbeats: AtomicU64,
    intents: AtomicU64,
    calls: Mutex<Vec<DiscordCall>>,
    changed: Notify,
    script: Mutex<Script>,
    channels: Mutex<HashMap<String, Value>>,
    ws_url: OnceLock<String>,
}

/// The running fake. Dropping it stops both servers.
pub struct FakeDiscord {
    http: FakeHttpServer,
    ws: WsListener,
    state: Arc<State>,
}

fn frame(op: u64, t: Option<&str>, s: Option<u64>, d: Value) -> String {
    json!({"op": op, "t": t, "s": s, "d": d}).to_string()
}

impl State {
    fn snowflake(&self) -> String {
        // Millisecond timestamp since the Discord epoch in the top bits, like real ids.
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
            .saturating_sub(1_420_070_400_000);
        ((ms << 22) | (self.next_id.fetch_add(1, Ordering::SeqCst) & 0x3f_ffff)).to_string()
    }

    fn bump(&self) {
        self.changed.notify_waiters();
    }

    /// Appends a dispatch to the current session's log and sends it if connected.
    fn dispatch(&self, t: &str, d: Value) {
        let current = self.current.lock().clone();
        let Some(id) = current else {
            self.pre_session.lock().push((t.to_string(), d));
            return;
        };
        let mut sessions = self.sessions.lock();
        let Some(session) = sessions.get_mut(&id) else {
            return;
        };
        session.seq += 1;
        let text = frame(0, Some(t), Some(session.seq), d);
        session.log.push((session.seq, text.clone()));
        if let Some(conn) = session.conn {
            if let Some(tx) = self.conns.lock().get(&conn) {
                let _ = tx.send(Cmd::Send(text));
            }
        }
    }

    fn all_conns(&self, make: impl Fn() -> Cmd) {
        for tx in self.conns.lock().values() {
            let _ = tx.send(make());
        }
    }
}

async fn serve(state: Arc<State>, ws: WsStream) {
    let conn_id = state.next_conn.fetch_add(1, Ordering::SeqCst);
    let (tx, mut rx) = mpsc::unbounded_channel();
    state.conns.lock().insert(conn_id, tx);
    let (mut sink, mut stream) = ws.split();
    let hello = frame(
        10,
        None,
        None,
        json!({"heartbeat_interval": state.heartbeat_interval_ms.load(Ordering::SeqCst)}),
    );
    let mut open = sink.send(Message::Text(hello.into())).await.is_ok();
    let close = |code: u16, reason: &str| {
        Message::Close(Some(CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_string().into(),
        }))
    };
    while open {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Send(text)) => open = sink.send(Message::Text(text.into())).await.is_ok(),
                Some(Cmd::Drop) | None => break,
                Some(Cmd::Close(code, reason)) => {
                    let _ = sink.send(close(code, &reason)).await;
                    break;
                }
            },
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                    Some(Ok(_)) => continue,
                };
                let Ok(payload) = serde_json::from_str::<Value>(&text) else {
                    let _ = sink.send(close(4002, "Error while decoding payload.")).await;
                    break;
                };
                let d = payload.get("d").cloned().unwrap_or(Value::Null);
                match payload.get("op").and_then(Value::as_u64) {
                    Some(1) => {
                        state.heartbeats.fetch_add(1, Ordering::SeqCst);
                        state.bump();
                        if state.ack_heartbeats.load(Ordering::SeqCst) {
                            open = sink.send(Message::Text(frame(11, None, None, Value::Null).into())).await.is_ok();
                        }
                    }
                    Some(2) => {
                        if d.get("token").and_then(Value::as_str) != Some(state.token.lock().as_str()) {
                            let _ = sink.send(close(4004, "Authentication failed.")).await;
                            break;
                        }
                        state.identifies.fetch_add(1, Ordering::SeqCst);
                        state.intents.store(d.get("intents").and_then(Value::as_u64).unwrap_or(0), Ordering::SeqCst);
                        let session_id = format!("session-{}", state.next_id.fetch_add(1, Ordering::SeqCst));
                        let ws_url = state.ws_url.get().cloned().unwrap_or_default();
                        state.sessions.lock().insert(session_id.clone(), Session { seq: 0, log: Vec::new(), conn: Some(conn_id), valid: true });
                        *state.current.lock() = Some(session_id.clone());
                        state.dispatch("READY", json!({
                            "v": 10,
                            "user": {"id": BOT_ID, "username": BOT_USERNAME, "bot": true},
                            "session_id": session_id,
                            "resume_gateway_url": format!("{ws_url}/resume"),
                            "guilds": [],
                            "application": {"id": BOT_ID, "flags": 0},
                        }));
                        let pending: Vec<(String, Value)> = std::mem::take(&mut *state.pre_session.lock());
                        for (t, d) in pending {
                            state.dispatch(&t, d);
                        }
                        state.bump();
                    }
                    Some(6) => {
                        let token_ok = d.get("token").and_then(Value::as_str) == Some(state.token.lock().as_str());
                        if !token_ok {
                            let _ = sink.send(close(4004, "Authentication failed.")).await;
                            break;
                        }
                        let sid = d.get("session_id").and_then(Value::as_str).unwrap_or("").to_string();
                        let after = d.get("seq").and_then(Value::as_u64).unwrap_or(0);
                        let replay = {
                            let mut sessions = state.sessions.lock();
                            match sessions.get_mut(&sid) {
                                Some(s) if s.valid => {
                                    s.conn = Some(conn_id);
                                    s.seq += 1;
                                    let resumed = frame(0, Some("RESUMED"), Some(s.seq), json!({}));
                                    s.log.push((s.seq, resumed));
                                    Some(s.log.iter().filter(|(seq, _)| *seq > after).map(|(_, t)| t.clone()).collect::<Vec<_>>())
                                }
                                _ => None,
                            }
                        };
                        match replay {
                            Some(frames) => {
                                state.resumes.fetch_add(1, Ordering::SeqCst);
                                *state.current.lock() = Some(sid);
                                for f in frames {
                                    open = sink.send(Message::Text(f.into())).await.is_ok();
                                }
                            }
                            None => {
                                open = sink.send(Message::Text(frame(9, None, None, json!(false)).into())).await.is_ok();
                            }
                        }
                        state.bump();
                    }
                    _ => {
                        let _ = sink.send(close(4001, "Unknown opcode.")).await;
                        break;
                    }
                }
            }
        }
    }
    state.conns.lock().remove(&conn_id);
    for s in state.sessions.lock().values_mut() {
        if s.conn == Some(conn_id) {
            s.conn = None;
        }
    }
    state.bump();
}

struct RestHandler(Arc<State>);

fn rest_error(status: u16, message: &str, code: u64) -> Response {
    Response::json(status, &json!({"message": message, "code": code}))
}

impl Handler for RestHandler {
    fn handle(&self, request: Request) -> Reply {
        let state = &self.0;
        let expected = format!("Bot {}", state.token.lock());
        if request.header("authorization") != Some(expected.as_str()) {
            return rest_error(401, "401: Unauthorized", 0).into();
        }
        let Some(path) = request.path.strip_prefix("/api/v10") else {
            return rest_error(404, "404: Not Found", 0).into();
        };
        let path = path.to_string();
        let body = request.json().unwrap_or(Value::Null);
        let route = format!("{} {}", request.method, path);
        let limited = {
            let mut script = state.script.lock();
            script
                .rate_limits
                .iter_mut()
                .find(|(pattern, left, _, _)| *left > 0 && route.contains(pattern.as_str()))
                .map(|(_, left, retry_after, global)| {
                    *left -= 1;
                    (*retry_after, *global)
                })
        };
        state.calls.lock().push(DiscordCall {
            method: request.method.clone(),
            path: path.clone(),
            body: body.clone(),
            rate_limited: limited.is_some(),
            at: tokio::time::Instant::now(),
        });
        state.bump();
        let bucket = format!(
            "{:x}",
            route.len() * 7919 + route.bytes().map(usize::from).sum::<usize>()
        );
        let with_limits = |r: Response| {
            r.with_header("x-ratelimit-limit", "5")
                .with_header("x-ratelimit-remaining", "4")
                .with_header("x-ratelimit-reset-after", "1.000")
                .with_header("x-ratelimit-bucket", &bucket)
        };
        if let Some((retry_after, global)) = limited {
            let mut r = Response::json(
                429,
                &json!({"message": "You are being rate limited.", "retry_after": retry_after, "global": global}),
            )
            .with_header("retry-after", &format!("{}", retry_after.ceil() as u64))
            .with_header("x-ratelimit-scope", if global { "global" } else { "user" });
            if global {
                r = r.with_header("x-ratelimit-global", "true");
            } else {
                r = r
                    .with_header("x-ratelimit-remaining", "0")
                    .with_header("x-ratelimit-reset-after", &format!("{retry_after:.3}"))
                    .with_header("x-ratelimit-bucket", &bucket);
            }
            return r.into();
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let response = match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["gateway", "bot"]) => Response::json(
                200,
                &json!({
                    "url": state.ws_url.get().cloned().unwrap_or_default(),
                    "shards": 1,
                    "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1},
                }),
            ),
            ("GET", ["users", "@me"]) => Response::json(
                200,
                &json!({"id": BOT_ID, "username": BOT_USERNAME, "bot": true}),
            ),
            ("POST", ["users", "@me", "channels"]) => {
                let Some(recipient) = body.get("recipient_id").and_then(Value::as_str) else {
                    return rest_error(400, "Invalid Form Body", 50035).into();
                };
                Response::json(200, &json!({"id": format!("dm-{recipient}"), "type": 1}))
            }
            ("GET", ["channels", id]) => match state.channels.lock().get(*id) {
                Some(c) => Response::json(200, c),
                None => rest_error(404, "Unknown Channel", 10003),
            },
            ("POST", ["channels", id, "messages"]) => {
                let content = body.get("content").and_then(Value::as_str).unwrap_or("");
                if content.is_empty() || content.chars().count() > 2000 {
                    return with_limits(rest_error(400, "Invalid Form Body", 50035)).into();
                }
                Response::json(
                    200,
                    &json!({
                        "id": state.snowflake(), "channel_id": id, "content": content, "type": 0,
                        "author": {"id": BOT_ID, "username": BOT_USERNAME, "bot": true},
                    }),
                )
            }
            ("PATCH", ["channels", id, "messages", mid]) => Response::json(
                200,
                &json!({
                    "id": mid, "channel_id": id, "content": body.get("content").cloned().unwrap_or(Value::Null),
                    "author": {"id": BOT_ID, "username": BOT_USERNAME, "bot": true},
                }),
            ),
            ("POST", ["channels", _, "typing"]) => Response::full(204, "application/json", ""),
            _ => rest_error(404, "404: Not Found", 0),
        };
        with_limits(response).into()
    }
}

impl FakeDiscord {
    /// Starts the REST and gateway servers; the bot token is `token`.
    pub async fn start(token: &str) -> std::io::Result<Self> {
        let state = Arc::new(State {
            token: Mutex::new(token.to_string()),
            heartbeat_interval_ms: AtomicU64::new(41_250),
            ack_heartbeats: AtomicBool::new(true),
            sessions: Mutex::new(HashMap::new()),
            current: Mutex::new(None),
            pre_session: Mutex::new(Vec::new()),
            conns: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            next_id: AtomicU64::new(1),
            identifies: AtomicU64::new(0),
            resumes: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            intents: AtomicU64::new(0),
            calls: Mutex::new(Vec::new()),
            changed: Notify::new(),
            script: Mutex::new(Script::default()),
            channels: Mutex::new(HashMap::new()),
            ws_url: OnceLock::new(),
        });
        let s2 = state.clone();
        let on_connect: OnConnect = Arc::new(move |ws, _target| Box::pin(serve(s2.clone(), ws)));
        let ws = WsListener::start(on_connect).await?;
        let _ = state.ws_url.set(ws.url());
        let http = FakeHttpServer::start(
            Arc::new(RestHandler(state.clone())),
            ServerOptions::default(),
        )
        .await?;
        Ok(FakeDiscord { http, ws, state })
    }

    /// REST base (`http://127.0.0.1:<port>/api/v10`).
    pub fn api_base(&self) -> String {
        format!("{}/api/v10", self.http.url())
    }

    /// Gateway URL (`ws://127.0.0.1:<port>`).
    pub fn gateway_url(&self) -> String {
        self.ws.url()
    }

    /// Heartbeat interval announced in Hello (default 41,250 ms).
    pub fn set_heartbeat_interval(&self, interval: Duration) {
        self.state
            .heartbeat_interval_ms
            .store(interval.as_millis() as u64, Ordering::SeqCst);
    }

    /// Stops (or resumes) answering heartbeats with op 11: a zombie connection.
    pub fn set_ack_heartbeats(&self, ack: bool) {
        self.state.ack_heartbeats.store(ack, Ordering::SeqCst);
    }

    /// Registers a channel for `GET /channels/{id}` (type 0 text, 11 public thread …).
    pub fn add_channel(&self, id: &str, kind: u64, guild_id: &str, parent_id: Option<&str>) {
        self.state.channels.lock().insert(
            id.to_string(),
            json!({"id": id, "type": kind, "guild_id": guild_id, "parent_id": parent_id}),
        );
    }

    fn message(
        &self,
        channel_id: &str,
        guild_id: Option<&str>,
        user: &FakeUser,
        text: &str,
        mention: bool,
    ) -> (String, Value) {
        let id = self.state.snowflake();
        let content = if mention {
            format!("<@{BOT_ID}> {text}")
        } else {
            text.to_string()
        };
        let mentions = if mention {
            json!([{"id": BOT_ID, "username": BOT_USERNAME, "bot": true}])
        } else {
            json!([])
        };
        let mut d = json!({
            "id": id, "channel_id": channel_id, "type": 0, "content": content,
            "author": user.json(), "mentions": mentions, "mention_roles": [], "attachments": [],
            "timestamp": "2026-01-01T00:00:00.000000+00:00",
        });
        if let Some(g) = guild_id {
            d["guild_id"] = json!(g);
            d["member"] = json!({"roles": []});
        }
        (id, d)
    }

    /// A DM from `user` (DM channel `dm-<user id>`); returns the message id.
    pub fn inject_dm(&self, user: &FakeUser, text: &str) -> String {
        let (id, d) = self.message(&format!("dm-{}", user.id), None, user, text, false);
        self.state.dispatch("MESSAGE_CREATE", d);
        id
    }

    /// A guild channel message, optionally mentioning the bot; returns the message id.
    pub fn inject_guild_message(
        &self,
        guild_id: &str,
        channel_id: &str,
        user: &FakeUser,
        text: &str,
        mention: bool,
    ) -> String {
        if !self.state.channels.lock().contains_key(channel_id) {
            self.add_channel(channel_id, 0, guild_id, None);
        }
        let (id, d) = self.message(channel_id, Some(guild_id), user, text, mention);
        self.state.dispatch("MESSAGE_CREATE", d);
        id
    }

    /// A message in thread `thread_id` under `parent_id`; returns the message id.
    pub fn inject_thread_message(
        &self,
        guild_id: &str,
        thread_id: &str,
        parent_id: &str,
        user: &FakeUser,
        text: &str,
        mention: bool,
    ) -> String {
        self.add_channel(thread_id, 11, guild_id, Some(parent_id));
        let (id, d) = self.message(thread_id, Some(guild_id), user, text, mention);
        self.state.dispatch("MESSAGE_CREATE", d);
        id
    }

    /// Any dispatch event.
    pub fn inject_event(&self, t: &str, d: Value) {
        self.state.dispatch(t, d);
    }

    /// Drops every gateway connection (TCP closed, no close frame).
    pub fn drop_connections(&self) {
        self.state.all_conns(|| Cmd::Drop);
    }

    /// Closes every gateway connection with `code`.
    pub fn close_connections(&self, code: u16, reason: &str) {
        self.state
            .all_conns(|| Cmd::Close(code, reason.to_string()));
    }

    /// Sends op 7 Reconnect.
    pub fn request_reconnect(&self) {
        let f = frame(7, None, None, Value::Null);
        self.state.all_conns(|| Cmd::Send(f.clone()));
    }

    /// Sends op 9 Invalid Session; a non-resumable one also forgets the session.
    pub fn invalidate_session(&self, resumable: bool) {
        if !resumable {
            for s in self.state.sessions.lock().values_mut() {
                s.valid = false;
            }
        }
        let f = frame(9, None, None, json!(resumable));
        self.state.all_conns(|| Cmd::Send(f.clone()));
    }

    /// Answers the next `times` REST calls whose `METHOD /path` contains `pattern` with 429.
    pub fn rate_limit(&self, pattern: &str, times: u32, retry_after_secs: f64, global: bool) {
        self.state.script.lock().rate_limits.push((
            pattern.to_string(),
            times,
            retry_after_secs,
            global,
        ));
    }

    /// Changes the accepted token.
    pub fn set_token(&self, token: &str) {
        *self.state.token.lock() = token.to_string();
    }

    pub fn identifies(&self) -> u64 {
        self.state.identifies.load(Ordering::SeqCst)
    }

    pub fn resumes(&self) -> u64 {
        self.state.resumes.load(Ordering::SeqCst)
    }

    pub fn heartbeats(&self) -> u64 {
        self.state.heartbeats.load(Ordering::SeqCst)
    }

    /// Intents of the last Identify.
    pub fn intents(&self) -> u64 {
        self.state.intents.load(Ordering::SeqCst)
    }

    /// Open gateway connections.
    pub fn connections(&self) -> usize {
        self.state.conns.lock().len()
    }

    /// Every REST call (429-answered attempts included).
    pub fn calls(&self) -> Vec<DiscordCall> {
        self.state.calls.lock().clone()
    }

    /// Contents posted with `POST /channels/{id}/messages` (accepted ones), with the channel.
    pub fn sent_messages(&self) -> Vec<(String, String)> {
        self.state
            .calls
            .lock()
            .iter()
            .filter(|c| c.method == "POST" && c.path.ends_with("/messages") && !c.rate_limited)
            .filter_map(|c| {
                let channel = c.path.split('/').nth(2)?.to_string();
                let content = c.body.get("content")?.as_str()?.to_string();
                Some((channel, content))
            })
            .collect()
    }

    /// Waits until `predicate` holds (re-checked on every call, connection and handshake).
    pub async fn wait_for(
        &self,
        predicate: impl Fn(&FakeDiscord) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if predicate(self) {
                return true;
            }
            // Also poll: some conditions change without a notification.
            let step = tokio::time::Instant::now() + Duration::from_millis(50);
            if tokio::time::timeout_at(deadline.min(step), notified)
                .await
                .is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return predicate(self);
            }
        }
    }
}
