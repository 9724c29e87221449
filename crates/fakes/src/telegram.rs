//! A fake Telegram Bot API (`/bot<token>/<method>`, JSON bodies, `{ok, result}` /
//! `{ok:false, error_code, description, parameters}` answers) on `127.0.0.1:0`.
//!
//! Scriptable: inject user messages (DM, group with/without a mention, forum topic), record
//! every call, answer the next N calls of a method with 429 + `retry_after`, hang up or stall
//! the next `getUpdates`, reject a wrong token with 401. `getUpdates` is a real long poll:
//! it waits up to `timeout` seconds for an update and confirms updates below `offset`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use pincer_fakes::telegram::{FakeTelegram, FakeUser};
//! let tg = FakeTelegram::start("123:secret").await?;
//! let ann = FakeUser::new(42, "Ann");
//! tg.inject_dm(&ann, "hello");
//! // point the adapter's apiRoot at tg.url() …
//! # Ok(()) }
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::http::{
    Counters, FakeHttpServer, Handler, Reply, Request, Response, ServerOptions, Step,
};

/// The bot's user id in the fake.
pub const BOT_ID: i64 = 900_000_001;
/// The bot's username in the fake.
pub const BOT_USERNAME: &str = "pincer_test_bot";

/// A user who writes to the bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeUser {
    pub id: i64,
    pub first_name: String,
    pub username: Option<String>,
}

impl FakeUser {
    pub fn new(id: i64, first_name: &str) -> Self {
        FakeUser {
            id,
            first_name: first_name.to_string(),
            username: Some(first_name.to_ascii_lowercase()),
        }
    }

    fn json(&self) -> Value {
        let mut v = json!({"id": self.id, "is_bot": false, "first_name": self.first_name});
        if let Some(u) = &self.username {
            v["username"] = json!(u);
        }
        v
    }
}

/// One recorded API call.
#[derive(Debug, Clone)]
pub struct TelegramCall {
    pub method: String,
    pub body: Value,
    /// Answered with 429 by a scripted fault.
    pub rate_limited: bool,
    pub at: tokio::time::Instant,
}

/// What to do with the next `getUpdates`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollFault {
    /// Start the answer, then close the connection mid-body.
    Hangup,
    /// Accept the request and never answer.
    Stall,
}

#[derive(Default)]
struct Script {
    rate_limits: HashMap<String, (u32, u64)>,
    poll_faults: VecDeque<PollFault>,
}

struct State {
    token: Mutex<String>,
    updates: Mutex<VecDeque<Value>>,
    next_update_id: AtomicI64,
    next_message_id: AtomicI64,
    new_update: Notify,
    calls: Mutex<Vec<TelegramCall>>,
    call_notify: Notify,
    script: Mutex<Script>,
    polls: AtomicU64,
    /// message id → when a `getUpdates` answer first carried it.
    delivered: Mutex<HashMap<i64, std::time::Instant>>,
}

/// The running fake. Dropping it stops the server.
pub struct FakeTelegram {
    server: FakeHttpServer,
    state: Arc<State>,
}

fn ok(result: Value) -> Response {
    Response::json(200, &json!({"ok": true, "result": result}))
}

fn err(code: u16, description: &str) -> Response {
    Response::json(
        code,
        &json!({"ok": false, "error_code": code, "description": description}),
    )
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn bot_user() -> Value {
    json!({"id": BOT_ID, "is_bot": true, "first_name": "Pincer", "username": BOT_USERNAME})
}

impl State {
    fn record(&self, method: &str, body: &Value, rate_limited: bool) {
        self.calls.lock().push(TelegramCall {
            method: method.to_string(),
            body: body.clone(),
            rate_limited,
            at: tokio::time::Instant::now(),
        });
        self.call_notify.notify_waiters();
    }

    fn push_update(&self, message: Value) -> i64 {
        let id = self.next_update_id.fetch_add(1, Ordering::SeqCst);
        self.updates
            .lock()
            .push_back(json!({"update_id": id, "message": message}));
        self.new_update.notify_waiters();
        id
    }

    fn message_result(&self, body: &Value, text_key: &str) -> Value {
        let id = self.next_message_id.fetch_add(1, Ordering::SeqCst);
        let mut m = json!({
            "message_id": id,
            "date": now_secs(),
            "from": bot_user(),
            "chat": {"id": body.get("chat_id").cloned().unwrap_or(Value::Null)},
        });
        if let Some(t) = body.get(text_key) {
            m["text"] = t.clone();
        }
        if let Some(t) = body.get("message_thread_id") {
            m["message_thread_id"] = t.clone();
        }
        m
    }

    fn take_updates(&self, offset: Option<i64>, limit: usize) -> Vec<Value> {
        let mut q = self.updates.lock();
        if let Some(offset) = offset {
            // Updates below the offset are confirmed: Telegram forgets them.
            while q
                .front()
                .and_then(|u| u.get("update_id"))
                .and_then(Value::as_i64)
                .is_some_and(|id| id < offset)
            {
                q.pop_front();
            }
        }
        let out: Vec<Value> = q.iter().take(limit).cloned().collect();
        let now = std::time::Instant::now();
        let mut delivered = self.delivered.lock();
        for u in &out {
            if let Some(id) = u.pointer("/message/message_id").and_then(Value::as_i64) {
                delivered.entry(id).or_insert(now);
            }
        }
        out
    }
}

struct TelegramHandler(Arc<State>);

impl Handler for TelegramHandler {
    fn handle(&self, request: Request) -> Reply {
        let state = self.0.clone();
        let Some(rest) = request.path.strip_prefix("/bot") else {
            return err(404, "Not Found").into();
        };
        let Some((token, method)) = rest.split_once('/') else {
            return err(404, "Not Found").into();
        };
        if token != *state.token.lock() {
            return err(401, "Unauthorized").into();
        }
        let method = method.to_string();
        let body = request.json().unwrap_or_else(|| {
            // Query-string parameters (GET requests).
            let map: serde_json::Map<String, Value> = request
                .query
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| {
                    let v = v
                        .parse::<i64>()
                        .map(Value::from)
                        .unwrap_or_else(|_| json!(v));
                    (k.to_string(), v)
                })
                .collect();
            Value::Object(map)
        });
        {
            let mut script = state.script.lock();
            if let Some((left, retry_after)) = script.rate_limits.get_mut(&method) {
                if *left > 0 {
                    *left -= 1;
                    let retry_after = *retry_after;
                    drop(script);
                    state.record(&method, &body, true);
                    return Response::json(
                        429,
                        &json!({"ok": false, "error_code": 429,
                            "description": format!("Too Many Requests: retry after {retry_after}"),
                            "parameters": {"retry_after": retry_after}}),
                    )
                    .into();
                }
            }
        }
        if method != "getUpdates" {
            state.record(&method, &body, false);
        }
        match method.as_str() {
            "getMe" => ok(bot_user()).into(),
            "getUpdates" => {
                state.polls.fetch_add(1, Ordering::SeqCst);
                state.record(&method, &body, false);
                let fault = state.script.lock().poll_faults.pop_front();
                match fault {
                    Some(PollFault::Hangup) => {
                        return Response::chunked(
                            200,
                            "application/json",
                            vec![
                                Step::Send(Bytes::from_static(b"{\"ok\":true,\"result\":[")),
                                Step::Hangup,
                            ],
                        )
                        .into()
                    }
                    Some(PollFault::Stall) => {
                        return Response::chunked(200, "application/json", vec![Step::Stall]).into()
                    }
                    None => {}
                }
                let offset = body.get("offset").and_then(Value::as_i64);
                let limit = body
                    .get("limit")
                    .and_then(Value::as_u64)
                    .unwrap_or(100)
                    .clamp(1, 100) as usize;
                let timeout = body
                    .get("timeout")
                    .and_then(Value::as_u64)
                    .unwrap_or(0)
                    .min(50);
                Reply::Later(Box::pin(async move {
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
                    loop {
                        let notified = state.new_update.notified();
                        tokio::pin!(notified);
                        notified.as_mut().enable();
                        let got = state.take_updates(offset, limit);
                        if !got.is_empty() {
                            return ok(Value::Array(got));
                        }
                        if tokio::time::timeout_at(deadline, notified).await.is_err() {
                            return ok(Value::Array(state.take_updates(offset, limit)));
                        }
                    }
                }))
            }
            "sendMessage" | "editMessageText" => {
                let text = body.get("text").and_then(Value::as_str).unwrap_or("");
                if text.trim().is_empty() {
                    return err(400, "Bad Request: message text is empty").into();
                }
                if text.encode_utf16().count() > 4096 {
                    return err(400, "Bad Request: message is too long").into();
                }
                if body.get("chat_id").is_none() {
                    return err(400, "Bad Request: chat_id is empty").into();
                }
                if method == "editMessageText" {
                    let mut m = state.message_result(&body, "text");
                    m["message_id"] = body.get("message_id").cloned().unwrap_or(Value::Null);
                    return ok(m).into();
                }
                ok(state.message_result(&body, "text")).into()
            }
            "sendPhoto" | "sendDocument" => ok(state.message_result(&body, "caption")).into(),
            "sendChatAction" | "deleteWebhook" | "setWebhook" => ok(json!(true)).into(),
            "getWebhookInfo" => ok(json!({"url": "", "pending_update_count": 0})).into(),
            _ => err(404, "Not Found: method not found").into(),
        }
    }
}

impl FakeTelegram {
    /// Starts a fake that accepts `token`.
    pub async fn start(token: &str) -> std::io::Result<Self> {
        Self::start_at(None, token).await
    }

    /// Starts on a fixed address (benchmarks point a separately started gateway at it).
    pub async fn bind(addr: std::net::SocketAddr, token: &str) -> std::io::Result<Self> {
        Self::start_at(Some(addr), token).await
    }

    async fn start_at(addr: Option<std::net::SocketAddr>, token: &str) -> std::io::Result<Self> {
        let state = Arc::new(State {
            token: Mutex::new(token.to_string()),
            updates: Mutex::new(VecDeque::new()),
            next_update_id: AtomicI64::new(10_000),
            next_message_id: AtomicI64::new(500),
            new_update: Notify::new(),
            calls: Mutex::new(Vec::new()),
            call_notify: Notify::new(),
            script: Mutex::new(Script::default()),
            polls: AtomicU64::new(0),
            delivered: Mutex::new(HashMap::new()),
        });
        let server = match addr {
            Some(a) => {
                FakeHttpServer::bind(
                    a,
                    Arc::new(TelegramHandler(state.clone())),
                    ServerOptions::default(),
                )
                .await?
            }
            None => {
                FakeHttpServer::start(
                    Arc::new(TelegramHandler(state.clone())),
                    ServerOptions::default(),
                )
                .await?
            }
        };
        Ok(FakeTelegram { server, state })
    }

    /// When a `getUpdates` answer first carried message `message_id` (latency benchmarks).
    pub fn delivered_at(&self, message_id: i64) -> Option<std::time::Instant> {
        self.state.delivered.lock().get(&message_id).copied()
    }

    /// `http://127.0.0.1:<port>` (the adapter's `apiRoot`).
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn counters(&self) -> Counters {
        self.server.counters()
    }

    /// `getUpdates` requests served so far.
    pub fn polls(&self) -> u64 {
        self.state.polls.load(Ordering::SeqCst)
    }

    /// Changes the accepted token (simulates a revoked token).
    pub fn set_token(&self, token: &str) {
        *self.state.token.lock() = token.to_string();
    }

    fn next_message_id(&self) -> i64 {
        self.state.next_message_id.fetch_add(1, Ordering::SeqCst)
    }

    /// Injects a raw `message` object; returns its update id.
    pub fn inject_message(&self, message: Value) -> i64 {
        self.state.push_update(message)
    }

    /// A private message from `user`; returns the message id.
    pub fn inject_dm(&self, user: &FakeUser, text: &str) -> i64 {
        let id = self.next_message_id();
        self.state.push_update(json!({
            "message_id": id, "date": now_secs(), "from": user.json(),
            "chat": {"id": user.id, "type": "private", "first_name": user.first_name},
            "text": text,
        }));
        id
    }

    fn group_message(
        &self,
        chat_id: i64,
        user: &FakeUser,
        text: &str,
        mention: bool,
    ) -> (i64, Value) {
        let id = self.next_message_id();
        let (text, entities) = if mention {
            let handle = format!("@{BOT_USERNAME}");
            let entity =
                json!([{"type": "mention", "offset": 0, "length": handle.encode_utf16().count()}]);
            (format!("{handle} {text}"), entity)
        } else {
            (text.to_string(), json!([]))
        };
        (
            id,
            json!({
                "message_id": id, "date": now_secs(), "from": user.json(),
                "chat": {"id": chat_id, "type": "supergroup", "title": "Test group"},
                "text": text, "entities": entities,
            }),
        )
    }

    /// A group message, optionally `@`-mentioning the bot; returns the message id.
    pub fn inject_group(&self, chat_id: i64, user: &FakeUser, text: &str, mention: bool) -> i64 {
        let (id, m) = self.group_message(chat_id, user, text, mention);
        self.state.push_update(m);
        id
    }

    /// A message in forum topic `topic_id` of a forum supergroup; returns the message id.
    pub fn inject_topic(
        &self,
        chat_id: i64,
        topic_id: i64,
        user: &FakeUser,
        text: &str,
        mention: bool,
    ) -> i64 {
        let (id, mut m) = self.group_message(chat_id, user, text, mention);
        m["chat"]["is_forum"] = json!(true);
        m["is_topic_message"] = json!(true);
        m["message_thread_id"] = json!(topic_id);
        m["reply_to_message"] = json!({"message_id": topic_id, "from": user.json(), "forum_topic_created": {"name": "topic"}});
        self.state.push_update(m);
        id
    }

    /// Answers the next `times` calls of `method` with 429 and `retry_after` seconds.
    pub fn rate_limit(&self, method: &str, times: u32, retry_after_secs: u64) {
        self.state
            .script
            .lock()
            .rate_limits
            .insert(method.to_string(), (times, retry_after_secs));
    }

    /// Applies a fault to the next `getUpdates`.
    pub fn fail_next_poll(&self, fault: PollFault) {
        self.state.script.lock().poll_faults.push_back(fault);
    }

    /// Every call so far (including 429-answered attempts).
    pub fn calls(&self) -> Vec<TelegramCall> {
        self.state.calls.lock().clone()
    }

    /// Successful calls of one method.
    pub fn calls_of(&self, method: &str) -> Vec<TelegramCall> {
        self.state
            .calls
            .lock()
            .iter()
            .filter(|c| c.method == method && !c.rate_limited)
            .cloned()
            .collect()
    }

    /// Texts sent with `sendMessage`, in order.
    pub fn sent_texts(&self) -> Vec<String> {
        self.calls_of("sendMessage")
            .iter()
            .filter_map(|c| {
                c.body
                    .get("text")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect()
    }

    /// Waits until `predicate` holds over the recorded calls (or `timeout`).
    pub async fn wait_for(
        &self,
        predicate: impl Fn(&[TelegramCall]) -> bool,
        timeout: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.state.call_notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if predicate(&self.state.calls.lock()) {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return predicate(&self.state.calls.lock());
            }
        }
    }

    /// Updates not yet confirmed by an offset.
    pub fn pending_updates(&self) -> usize {
        self.state.updates.lock().len()
    }
}
