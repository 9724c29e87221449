//! A fake Slack: the Web API (`POST /api/<method>` with a Bearer token: `auth.test`,
//! `apps.connections.open`, `chat.postMessage`, `chat.update`; `{ok:false,error}` answers,
//! 429 + `Retry-After`) and Socket Mode (WSS `hello`, `events_api` envelopes that must be
//! acknowledged with `{envelope_id}`, `disconnect` messages). Unacknowledged envelopes are
//! redelivered on the next connection with `retry_attempt` raised, as Slack does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Message;

use crate::http::{FakeHttpServer, Handler, Reply, Request, Response, ServerOptions};
use crate::ws::{OnConnect, WsListener, WsStream};

/// The bot's user id.
pub const BOT_USER_ID: &str = "UBOT0001";
/// The workspace id.
pub const TEAM_ID: &str = "T0001";

/// One recorded Web API call.
#[derive(Debug, Clone)]
pub struct SlackCall {
    pub method: String,
    pub body: Value,
    pub rate_limited: bool,
    pub at: tokio::time::Instant,
}

enum Cmd {
    Send(String),
    Drop,
    /// Stop reading and writing (a half-dead connection).
    Stall,
}

#[derive(Clone)]
struct Envelope {
    id: String,
    payload: Value,
    attempts: u64,
}

struct State {
    bot_token: Mutex<String>,
    app_token: Mutex<String>,
    conns: Mutex<HashMap<u64, mpsc::UnboundedSender<Cmd>>>,
    tickets: Mutex<Vec<String>>,
    unacked: Mutex<Vec<Envelope>>,
    acked: Mutex<Vec<String>>,
    next: AtomicU64,
    connections_total: AtomicU64,
    calls: Mutex<Vec<SlackCall>>,
    changed: Notify,
    rate_limits: Mutex<HashMap<String, (u32, u64)>>,
    ws_url: OnceLock<String>,
}

/// The running fake.
pub struct FakeSlack {
    http: FakeHttpServer,
    ws: WsListener,
    state: Arc<State>,
}

impl State {
    fn next(&self) -> u64 {
        self.next.fetch_add(1, Ordering::SeqCst)
    }

    fn ts(&self) -> String {
        format!("1700000000.{:06}", self.next())
    }

    fn envelope_text(e: &Envelope) -> String {
        json!({
            "envelope_id": e.id,
            "type": "events_api",
            "accepts_response_payload": false,
            "retry_attempt": e.attempts,
            "retry_reason": if e.attempts > 0 { "timeout" } else { "" },
            "payload": e.payload,
        })
        .to_string()
    }

    fn deliver(&self, event: Value) {
        let n = self.next();
        let e = Envelope {
            id: format!("env-{n}"),
            payload: json!({
                "token": "verification", "team_id": TEAM_ID, "api_app_id": "A0001",
                "event": event, "type": "event_callback",
                "event_id": format!("Ev{n:08}"), "event_time": 1_700_000_000,
            }),
            attempts: 0,
        };
        let text = Self::envelope_text(&e);
        self.unacked.lock().push(e);
        // Slack sends an envelope on one of the open connections.
        if let Some(tx) = self.conns.lock().values().next() {
            let _ = tx.send(Cmd::Send(text));
        }
    }
}

async fn serve(state: Arc<State>, ws: WsStream, target: String) {
    let ticket_ok = target
        .split("ticket=")
        .nth(1)
        .and_then(|t| t.split('&').next())
        .is_some_and(|t| state.tickets.lock().iter().any(|k| k == t));
    let (mut sink, mut stream) = ws.split();
    if !ticket_ok {
        let _ = sink.send(Message::Close(None)).await;
        return;
    }
    let id = state.next();
    let (tx, mut rx) = mpsc::unbounded_channel();
    state.conns.lock().insert(id, tx);
    state.connections_total.fetch_add(1, Ordering::SeqCst);
    let hello = json!({"type": "hello", "num_connections": 1,
        "debug_info": {"host": "fake-slack", "approximate_connection_time": 18060},
        "connection_info": {"app_id": "A0001"}});
    let mut open = sink
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_ok();
    // Redeliver what was never acknowledged.
    let redeliver: Vec<String> = {
        let mut unacked = state.unacked.lock();
        unacked
            .iter_mut()
            .map(|e| {
                e.attempts += 1;
                State::envelope_text(e)
            })
            .collect()
    };
    for text in redeliver {
        open = open && sink.send(Message::Text(text.into())).await.is_ok();
    }
    state.changed.notify_waiters();
    while open {
        tokio::select! {
            cmd = rx.recv() => match cmd {
                Some(Cmd::Send(text)) => open = sink.send(Message::Text(text.into())).await.is_ok(),
                Some(Cmd::Stall) => {
                    // Neither read nor write until dropped.
                    loop {
                        match rx.recv().await {
                            Some(Cmd::Drop) | None => break,
                            _ => {}
                        }
                    }
                    break;
                }
                Some(Cmd::Drop) | None => break,
            },
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(t))) => {
                    if let Some(eid) = serde_json::from_str::<Value>(&t).ok().and_then(|v| v.get("envelope_id").and_then(Value::as_str).map(str::to_string)) {
                        state.unacked.lock().retain(|e| e.id != eid);
                        state.acked.lock().push(eid);
                        state.changed.notify_waiters();
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
        }
    }
    state.conns.lock().remove(&id);
    state.changed.notify_waiters();
}

struct WebHandler(Arc<State>);

impl Handler for WebHandler {
    fn handle(&self, request: Request) -> Reply {
        let state = &self.0;
        let Some(method) = request.path.strip_prefix("/api/") else {
            return Response::json(404, &json!({"ok": false, "error": "unknown_method"})).into();
        };
        let method = method.to_string();
        let body = request.json().unwrap_or(Value::Null);
        let limited = {
            let mut limits = state.rate_limits.lock();
            match limits.get_mut(&method) {
                Some((left, secs)) if *left > 0 => {
                    *left -= 1;
                    Some(*secs)
                }
                _ => None,
            }
        };
        state.calls.lock().push(SlackCall {
            method: method.clone(),
            body: body.clone(),
            rate_limited: limited.is_some(),
            at: tokio::time::Instant::now(),
        });
        state.changed.notify_waiters();
        if let Some(secs) = limited {
            return Response::json(429, &json!({"ok": false, "error": "ratelimited"}))
                .with_header("retry-after", &secs.to_string())
                .into();
        }
        let bearer = request
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let expected = if method == "apps.connections.open" {
            state.app_token.lock().clone()
        } else {
            state.bot_token.lock().clone()
        };
        if bearer.is_empty() {
            return Response::json(200, &json!({"ok": false, "error": "not_authed"})).into();
        }
        if bearer != expected {
            return Response::json(200, &json!({"ok": false, "error": "invalid_auth"})).into();
        }
        let ok = |v: Value| {
            let mut v = v;
            v["ok"] = json!(true);
            Response::json(200, &v).into()
        };
        match method.as_str() {
            "auth.test" => ok(
                json!({"url": "https://fake.slack.test/", "team": "Fake", "user": "pincer",
                "team_id": TEAM_ID, "user_id": BOT_USER_ID, "bot_id": "B0001"}),
            ),
            "apps.connections.open" => {
                let ticket = format!("ticket-{}", state.next());
                state.tickets.lock().push(ticket.clone());
                let url = format!(
                    "{}/link/?ticket={ticket}&app_id=A0001",
                    state.ws_url.get().cloned().unwrap_or_default()
                );
                ok(json!({"url": url}))
            }
            "chat.postMessage" | "chat.update" => {
                let text = body.get("text").and_then(Value::as_str).unwrap_or("");
                let Some(channel) = body.get("channel").and_then(Value::as_str) else {
                    return Response::json(
                        200,
                        &json!({"ok": false, "error": "channel_not_found"}),
                    )
                    .into();
                };
                if text.is_empty() {
                    return Response::json(200, &json!({"ok": false, "error": "no_text"})).into();
                }
                if text.chars().count() > 40_000 {
                    return Response::json(200, &json!({"ok": false, "error": "msg_too_long"}))
                        .into();
                }
                let ts = if method == "chat.update" {
                    body.get("ts")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string()
                } else {
                    state.ts()
                };
                ok(json!({"channel": channel, "ts": ts,
                    "message": {"type": "message", "text": text, "user": BOT_USER_ID, "ts": ts,
                        "thread_ts": body.get("thread_ts").cloned().unwrap_or(Value::Null)}}))
            }
            _ => Response::json(200, &json!({"ok": false, "error": "unknown_method"})).into(),
        }
    }
}

impl FakeSlack {
    /// Starts with a bot token (`xoxb-…`) and an app-level token (`xapp-…`).
    pub async fn start(bot_token: &str, app_token: &str) -> std::io::Result<Self> {
        let state = Arc::new(State {
            bot_token: Mutex::new(bot_token.to_string()),
            app_token: Mutex::new(app_token.to_string()),
            conns: Mutex::new(HashMap::new()),
            tickets: Mutex::new(Vec::new()),
            unacked: Mutex::new(Vec::new()),
            acked: Mutex::new(Vec::new()),
            next: AtomicU64::new(1),
            connections_total: AtomicU64::new(0),
            calls: Mutex::new(Vec::new()),
            changed: Notify::new(),
            rate_limits: Mutex::new(HashMap::new()),
            ws_url: OnceLock::new(),
        });
        let s2 = state.clone();
        let on_connect: OnConnect =
            Arc::new(move |ws, target| Box::pin(serve(s2.clone(), ws, target)));
        let ws = WsListener::start(on_connect).await?;
        let _ = state.ws_url.set(ws.url());
        let http = FakeHttpServer::start(
            Arc::new(WebHandler(state.clone())),
            ServerOptions::default(),
        )
        .await?;
        Ok(FakeSlack { http, ws, state })
    }

    /// Web API base (`http://127.0.0.1:<port>/api`).
    pub fn api_base(&self) -> String {
        format!("{}/api", self.http.url())
    }

    /// The Socket Mode listener (`ws://127.0.0.1:<port>`).
    pub fn socket_url(&self) -> String {
        self.ws.url()
    }

    fn message_event(
        &self,
        channel: &str,
        channel_type: &str,
        user: &str,
        text: &str,
        thread_ts: Option<&str>,
    ) -> (String, Value) {
        let ts = self.state.ts();
        let mut event = json!({"type": "message", "channel": channel, "channel_type": channel_type,
            "user": user, "text": text, "ts": ts, "team": TEAM_ID,
            "client_msg_id": format!("cm-{}", self.state.next())});
        if let Some(t) = thread_ts {
            event["thread_ts"] = json!(t);
        }
        (ts, event)
    }

    /// A DM (`im` channel `D<user>`); returns the message `ts`.
    pub fn inject_dm(&self, user: &str, text: &str) -> String {
        let (ts, e) = self.message_event(&format!("D{user}"), "im", user, text, None);
        self.state.deliver(e);
        ts
    }

    /// A channel message, optionally mentioning the bot (`<@UBOT0001>`); returns its `ts`.
    pub fn inject_channel(&self, channel: &str, user: &str, text: &str, mention: bool) -> String {
        let text = if mention {
            format!("<@{BOT_USER_ID}> {text}")
        } else {
            text.to_string()
        };
        let (ts, e) = self.message_event(channel, "channel", user, &text, None);
        self.state.deliver(e);
        ts
    }

    /// A reply in the thread rooted at `thread_ts`; returns its `ts`.
    pub fn inject_thread(
        &self,
        channel: &str,
        thread_ts: &str,
        user: &str,
        text: &str,
        mention: bool,
    ) -> String {
        let text = if mention {
            format!("<@{BOT_USER_ID}> {text}")
        } else {
            text.to_string()
        };
        let (ts, e) = self.message_event(channel, "channel", user, &text, Some(thread_ts));
        self.state.deliver(e);
        ts
    }

    /// Any event (wrapped in an `events_api` envelope).
    pub fn inject_event(&self, event: Value) {
        self.state.deliver(event);
    }

    /// Sends a `disconnect` message (`refresh_requested`, `warning`, `link_disabled`).
    pub fn send_disconnect(&self, reason: &str) {
        let text =
            json!({"type": "disconnect", "reason": reason, "debug_info": {"host": "fake-slack"}})
                .to_string();
        for tx in self.state.conns.lock().values() {
            let _ = tx.send(Cmd::Send(text.clone()));
        }
    }

    /// Drops every socket without a close frame.
    pub fn drop_connections(&self) {
        for tx in self.state.conns.lock().values() {
            let _ = tx.send(Cmd::Drop);
        }
    }

    /// Makes every socket go silent (no reads, no writes, no pongs).
    pub fn stall_connections(&self) {
        for tx in self.state.conns.lock().values() {
            let _ = tx.send(Cmd::Stall);
        }
    }

    /// Answers the next `times` calls of `method` with 429 and `Retry-After: secs`.
    pub fn rate_limit(&self, method: &str, times: u32, retry_after_secs: u64) {
        self.state
            .rate_limits
            .lock()
            .insert(method.to_string(), (times, retry_after_secs));
    }

    pub fn set_tokens(&self, bot_token: &str, app_token: &str) {
        *self.state.bot_token.lock() = bot_token.to_string();
        *self.state.app_token.lock() = app_token.to_string();
    }

    /// Open sockets.
    pub fn connections(&self) -> usize {
        self.state.conns.lock().len()
    }

    /// Sockets accepted so far.
    pub fn connections_total(&self) -> u64 {
        self.state.connections_total.load(Ordering::SeqCst)
    }

    /// Envelope ids acknowledged so far.
    pub fn acked(&self) -> Vec<String> {
        self.state.acked.lock().clone()
    }

    /// Envelopes still unacknowledged.
    pub fn unacked(&self) -> usize {
        self.state.unacked.lock().len()
    }

    pub fn calls(&self) -> Vec<SlackCall> {
        self.state.calls.lock().clone()
    }

    /// Accepted `chat.postMessage` calls as (channel, text, thread_ts).
    pub fn posted(&self) -> Vec<(String, String, Option<String>)> {
        self.state
            .calls
            .lock()
            .iter()
            .filter(|c| c.method == "chat.postMessage" && !c.rate_limited)
            .filter_map(|c| {
                Some((
                    c.body.get("channel")?.as_str()?.to_string(),
                    c.body.get("text")?.as_str()?.to_string(),
                    c.body
                        .get("thread_ts")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                ))
            })
            .collect()
    }

    /// Waits until `predicate` holds.
    pub async fn wait_for(
        &self,
        predicate: impl Fn(&FakeSlack) -> bool,
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
