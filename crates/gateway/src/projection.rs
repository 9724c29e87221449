//! Projection of the agent runtime's typed run events onto the wire `agent` and `chat`
//! events (protocol.md §6.2, the shapes of `agent_run_*.jsonl`).
//!
//! - Every run event becomes one `agent` event with the run's wire `seq` (1, 2, 3 … per run);
//!   the matching `chat` event (status, delta, final, aborted, error) reuses that `seq`.
//! - `chat` deltas are paced at least [`CHAT_DELTA_PACING`] apart: text arriving sooner is
//!   held and sent with the next delta, by a timer, or right before the terminal event.
//! - The `tool` stream goes only to the connections that started the run and announced the
//!   `tool-events` capability; `item` progress goes to every reader; sockets subscribed to the
//!   session get `session.tool`.
//! - Every message the run stored becomes `session.message` for the session's subscribers
//!   (in order with the run's other events: the user row before the model's first words, the
//!   final answer before the terminal `chat`).
//! - A `chat.send` turn starts with `chat.metadata.changed {}` (the session's model facts may
//!   change with it), as the reference announces it.
//!
//! [`Projector`] is pure (no I/O, explicit clock) and yields [`WireEvent`]s; the gateway's
//! projection task publishes them on the bus.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pincer_agent::{
    CompactionPhase, RunEvent, RunEventKind, RunOutcome, RunSource, RunStatus, StatusPhase,
    StoredMessage,
};
use serde_json::{json, Map, Value};

/// Minimum gap between two `chat` deltas of one run (`LIVE_TEXT_PACING_MS`).
pub const CHAT_DELTA_PACING: Duration = Duration::from_millis(75);

/// Who gets a projected event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    /// Readers of the session (`agent`/`chat` rules for session-scoped clients).
    Session(Arc<str>),
    /// Only these connections (the run's `tool-events` recipients).
    Conns(Vec<u64>),
    /// Sockets subscribed to the session (`session.tool`, `session.message`).
    Subscribers(Arc<str>),
    /// Every client the event's scope guard admits.
    All,
}

/// One event to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct WireEvent {
    pub event: &'static str,
    pub payload: Value,
    pub audience: Audience,
}

#[derive(Debug)]
struct RunView {
    session_key: Arc<str>,
    session_id: Option<Arc<str>>,
    agent_id: Arc<str>,
    source: RunSource,
    wire_seq: u64,
    /// Cumulative text of the current assistant item.
    item: Option<Arc<str>>,
    text: String,
    thinking: String,
    /// Chat text held back by pacing, and the seq it belongs to.
    held: String,
    held_seq: u64,
    last_chat_delta: Option<Instant>,
    started_at: u64,
}

/// Per-run projection state. Events of one run must be fed in order.
#[derive(Debug, Default)]
pub struct Projector {
    runs: HashMap<Arc<str>, RunView>,
    /// `tool-events` recipients per run id (registered by the handler that started it).
    tool_recipients: HashMap<String, Vec<u64>>,
}

fn now_ms() -> u64 {
    pincer_agent::now_ms()
}

impl Projector {
    pub fn new() -> Projector {
        Projector::default()
    }

    /// Connections that started `run_id` with the `tool-events` capability.
    pub fn add_tool_recipient(&mut self, run_id: &str, conn: u64) {
        let list = self.tool_recipients.entry(run_id.to_owned()).or_default();
        if !list.contains(&conn) {
            list.push(conn);
        }
    }

    /// Runs being projected.
    pub fn active_runs(&self) -> usize {
        self.runs.len()
    }

    /// The earliest instant a held chat delta must be flushed.
    pub fn next_flush(&self) -> Option<Instant> {
        self.runs
            .values()
            .filter(|r| !r.held.is_empty())
            .filter_map(|r| r.last_chat_delta.map(|t| t + CHAT_DELTA_PACING))
            .min()
    }

    /// Sends held chat deltas whose pacing gap has passed.
    pub fn flush_due(&mut self, now: Instant, out: &mut Vec<WireEvent>) {
        for (run_id, view) in &mut self.runs {
            let due = view
                .last_chat_delta
                .is_some_and(|t| now.duration_since(t) >= CHAT_DELTA_PACING);
            if !view.held.is_empty() && due {
                let seq = view.held_seq;
                flush_held(run_id, view, seq, now, out);
            }
        }
    }

    /// Projects one run event.
    pub fn handle(&mut self, ev: &RunEvent, now: Instant, out: &mut Vec<WireEvent>) {
        if ev.source == RunSource::Chat && !self.runs.contains_key(&ev.run_id) {
            out.push(WireEvent {
                event: "chat.metadata.changed",
                payload: json!({}),
                audience: Audience::All,
            });
        }
        let view = self
            .runs
            .entry(ev.run_id.clone())
            .or_insert_with(|| RunView {
                session_key: ev.session_key.clone(),
                session_id: None,
                agent_id: ev.agent_id.clone(),
                source: ev.source.clone(),
                wire_seq: 0,
                item: None,
                text: String::new(),
                thinking: String::new(),
                held: String::new(),
                held_seq: 0,
                last_chat_delta: None,
                started_at: ev.ts,
            });
        if ev.session_id.is_some() {
            view.session_id.clone_from(&ev.session_id);
        }
        let run_id: &str = &ev.run_id;
        match &ev.kind {
            RunEventKind::Status { phase, retry } => {
                let seq = next(view);
                let mut data = Map::new();
                data.insert("phase".into(), json!(phase.as_str()));
                if let Some(r) = retry {
                    data.insert("attempt".into(), json!(r.attempt));
                    data.insert("maxAttempts".into(), json!(r.max_attempts));
                    data.insert("reason".into(), json!(r.reason));
                    data.insert("delayMs".into(), json!(r.delay_ms));
                }
                let mut chat = chat_base(run_id, view, seq);
                chat.insert("state".into(), json!("status"));
                match (phase, retry) {
                    (StatusPhase::Retrying, Some(r)) => {
                        chat.insert("phase".into(), json!("starting_model"));
                        chat.insert(
                            "retry".into(),
                            json!({"attempt": r.attempt, "maxAttempts": r.max_attempts, "reason": r.reason}),
                        );
                    }
                    _ => {
                        chat.insert("phase".into(), json!(phase.as_str()));
                    }
                }
                out.push(chat_event(view, chat));
                out.push(agent_event(
                    run_id,
                    view,
                    seq,
                    ev.ts,
                    "run_status",
                    Value::Object(data),
                    false,
                ));
            }
            RunEventKind::Start { started_at } => {
                view.started_at = *started_at;
                let seq = next(view);
                out.push(agent_event(
                    run_id,
                    view,
                    seq,
                    ev.ts,
                    "lifecycle",
                    json!({"phase": "start", "startedAt": started_at}),
                    true,
                ));
            }
            RunEventKind::Model { provider, model } => {
                let seq = next(view);
                out.push(agent_event(
                    run_id,
                    view,
                    seq,
                    ev.ts,
                    "lifecycle",
                    json!({"phase": "model", "provider": provider, "model": model}),
                    true,
                ));
            }
            RunEventKind::FallbackStep {
                from_provider,
                from_model,
                to_provider,
                to_model,
                reason,
                message,
            } => {
                let seq = next(view);
                out.push(agent_event(
                    run_id,
                    view,
                    seq,
                    ev.ts,
                    "lifecycle",
                    json!({"phase": "fallback_step", "fallbackStep": {
                        "from": {"provider": from_provider, "model": from_model},
                        "to": {"provider": to_provider, "model": to_model},
                        "reason": reason, "message": message}}),
                    true,
                ));
            }
            RunEventKind::AssistantDelta { item_id, delta } => {
                if view.item.as_ref() != Some(item_id) {
                    // A new assistant message: chat shows the latest one.
                    view.item = Some(item_id.clone());
                    view.text.clear();
                }
                view.text.push_str(delta);
                let seq = next(view);
                out.push(agent_event(
                    run_id,
                    view,
                    seq,
                    ev.ts,
                    "assistant",
                    json!({"text": view.text, "delta": delta, "itemId": &**item_id}),
                    false,
                ));
                view.held.push_str(delta);
                view.held_seq = seq;
                let paced_out = view
                    .last_chat_delta
                    .is_some_and(|t| now.duration_since(t) < CHAT_DELTA_PACING);
                if !paced_out {
                    flush_held(run_id, view, seq, now, out);
                }
            }
            RunEventKind::ThinkingDelta { item_id, delta } => {
                view.thinking.push_str(delta);
                let seq = next(view);
                out.push(agent_event(
                    run_id,
                    view,
                    seq,
                    ev.ts,
                    "thinking",
                    json!({"text": view.thinking, "delta": delta, "itemId": &**item_id}),
                    false,
                ));
            }
            RunEventKind::ToolStart {
                tool_call_id,
                name,
                args,
                title,
                meta,
                started_at,
            } => {
                let seq = next(view);
                out.push(agent_event(
                    run_id,
                    view,
                    seq,
                    ev.ts,
                    "item",
                    json!({"itemId": format!("tool:{tool_call_id}"), "toolCallId": tool_call_id, "name": name,
                        "kind": "tool", "phase": "start", "title": title, "status": "running",
                        "meta": meta, "commandBearing": false, "startedAt": started_at}),
                    false,
                ));
                let seq = next(view);
                let data = json!({"phase": "start", "name": name, "toolCallId": tool_call_id, "args": args});
                self.tool_event(run_id, seq, ev.ts, data, out);
            }
            RunEventKind::ToolResult {
                tool_call_id,
                name,
                is_error,
                title,
                meta,
                result,
                started_at,
                ended_at,
            } => {
                let seq = next(view);
                let data = json!({"phase": "result", "name": name, "toolCallId": tool_call_id, "meta": meta,
                    "isError": is_error, "commandBearing": false, "result": result});
                self.tool_event(run_id, seq, ev.ts, data, out);
                let Some(view) = self.runs.get_mut(run_id) else {
                    return;
                };
                let seq = next(view);
                out.push(agent_event(
                    run_id,
                    view,
                    seq,
                    ev.ts,
                    "item",
                    json!({"itemId": format!("tool:{tool_call_id}"), "toolCallId": tool_call_id, "name": name,
                        "kind": "tool", "phase": "end", "title": title,
                        "status": if *is_error { "failed" } else { "completed" },
                        "meta": meta, "commandBearing": false, "startedAt": started_at, "endedAt": ended_at}),
                    false,
                ));
            }
            RunEventKind::Usage { run, .. } => {
                let seq = next(view);
                out.push(agent_event_ordered(
                    run_id,
                    view,
                    seq,
                    ev.ts,
                    "usage",
                    json!({"outputTokens": run.output}),
                ));
            }
            RunEventKind::Compaction {
                phase,
                tokens_before,
                tokens_after,
            } => {
                let seq = next(view);
                let phase = match phase {
                    CompactionPhase::Start => "start",
                    CompactionPhase::End => "end",
                    CompactionPhase::Failed => "failed",
                };
                out.push(agent_event(
                    run_id,
                    view,
                    seq,
                    ev.ts,
                    "compaction",
                    json!({"phase": phase, "tokensBefore": tokens_before, "tokensAfter": tokens_after}),
                    false,
                ));
            }
            RunEventKind::Finishing {
                stop_reason,
                aborted,
                ended_at,
            } => {
                let seq = next(view);
                out.push(agent_event(
                    run_id,
                    view,
                    seq,
                    ev.ts,
                    "lifecycle",
                    json!({"phase": "finishing", "stopReason": stop_reason, "aborted": aborted,
                        "livenessState": "working", "endedAt": ended_at}),
                    true,
                ));
            }
            RunEventKind::ModelReleased => {
                let seq = next(view);
                let mut p = Map::new();
                p.insert("runId".into(), json!(run_id));
                p.insert("agentId".into(), json!(&*view.agent_id));
                if let Some(sid) = &view.session_id {
                    p.insert("sessionId".into(), json!(&**sid));
                }
                p.insert("sessionKey".into(), json!(&*view.session_key));
                // The `agent` RPC's capture has no lane on this event; chat turns do.
                if view.source != RunSource::Agent {
                    p.insert("lane".into(), json!("main"));
                }
                p.insert("stream".into(), json!("lifecycle"));
                p.insert(
                    "data".into(),
                    json!({"phase": "model", "provider": null, "model": null}),
                );
                finish_agent(&mut p, view, seq, ev.ts);
                out.push(WireEvent {
                    event: "agent",
                    payload: Value::Object(p),
                    audience: Audience::Session(view.session_key.clone()),
                });
            }
            RunEventKind::Message(stored) => {
                out.push(session_message(view, stored));
            }
            RunEventKind::End(outcome) => {
                let seq = next(view);
                let view_key = view.session_key.clone();
                out.push(end_event(run_id, view, seq, ev.ts, outcome));
                // Held chat text goes out before the terminal chat event, with its seq.
                if !view.held.is_empty() {
                    flush_held(run_id, view, seq, now, out);
                }
                out.push(terminal_chat(run_id, view, seq, outcome));
                let _ = view_key;
                self.runs.remove(run_id);
                self.tool_recipients.remove(run_id);
            }
        }
    }

    fn tool_event(
        &mut self,
        run_id: &str,
        seq: u64,
        ts: u64,
        data: Value,
        out: &mut Vec<WireEvent>,
    ) {
        let Some(view) = self.runs.get(run_id) else {
            return;
        };
        let recipients = self
            .tool_recipients
            .get(run_id)
            .cloned()
            .unwrap_or_default();
        let event = agent_event(run_id, view, seq, ts, "tool", data.clone(), false);
        if !recipients.is_empty() {
            out.push(WireEvent {
                audience: Audience::Conns(recipients),
                ..event
            });
        }
        let mut session_tool = Map::new();
        session_tool.insert("runId".into(), json!(run_id));
        session_tool.insert("sessionKey".into(), json!(&*view.session_key));
        session_tool.insert("agentId".into(), json!(&*view.agent_id));
        session_tool.insert("seq".into(), json!(seq));
        session_tool.insert("ts".into(), json!(ts));
        session_tool.insert("data".into(), data);
        out.push(WireEvent {
            event: "session.tool",
            payload: Value::Object(session_tool),
            audience: Audience::Subscribers(view.session_key.clone()),
        });
    }
}

/// `session.message`: `{sessionKey, agentId, senderIsOwner?, message, messageId, messageSeq}`,
/// the message in `chat.history`'s shape.
fn session_message(view: &RunView, stored: &StoredMessage) -> WireEvent {
    let message = match &stored.message {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let sender_is_owner = message
        .get("__openclaw")
        .and_then(|m| m.get("senderIsOwner"))
        .cloned();
    let source = view
        .session_id
        .as_deref()
        .map(crate::methods::chat_history::source_of)
        .unwrap_or_default();
    let message = crate::methods::chat_history::wire_message(
        message,
        &crate::methods::chat_history::MessagePosition {
            entry_id: stored.entry_id.as_deref(),
            created_at: stored.created_at,
            raw_seq: stored.seq,
            ordinal: stored.message_seq,
            source: &source,
        },
    );
    let mut p = Map::new();
    p.insert("sessionKey".into(), json!(&*view.session_key));
    p.insert("agentId".into(), json!(&*view.agent_id));
    if let Some(owner) = sender_is_owner {
        p.insert("senderIsOwner".into(), owner);
    }
    p.insert("message".into(), message);
    p.insert("messageId".into(), json!(stored.entry_id));
    p.insert("messageSeq".into(), json!(stored.message_seq));
    WireEvent {
        event: "session.message",
        payload: Value::Object(p),
        audience: Audience::Subscribers(view.session_key.clone()),
    }
}

fn next(view: &mut RunView) -> u64 {
    view.wire_seq += 1;
    view.wire_seq
}

fn chat_base(run_id: &str, view: &RunView, seq: u64) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("runId".into(), json!(run_id));
    m.insert("sessionKey".into(), json!(&*view.session_key));
    m.insert("agentId".into(), json!(&*view.agent_id));
    m.insert("seq".into(), json!(seq));
    m
}

fn chat_event(view: &RunView, payload: Map<String, Value>) -> WireEvent {
    WireEvent {
        event: "chat",
        payload: Value::Object(payload),
        audience: Audience::Session(view.session_key.clone()),
    }
}

fn text_message(text: &str) -> Value {
    json!({"role": "assistant", "content": [{"type": "text", "text": text}], "timestamp": now_ms()})
}

fn flush_held(run_id: &str, view: &mut RunView, seq: u64, now: Instant, out: &mut Vec<WireEvent>) {
    let delta = std::mem::take(&mut view.held);
    let mut chat = chat_base(run_id, view, seq);
    chat.insert("state".into(), json!("delta"));
    chat.insert("deltaText".into(), json!(delta));
    chat.insert("message".into(), text_message(&view.text));
    out.push(chat_event(view, chat));
    view.last_chat_delta = Some(now);
}

/// `seq`, `ts`, `isHeartbeat` (the `agent` RPC's events carry no `isHeartbeat`).
fn finish_agent(p: &mut Map<String, Value>, view: &RunView, seq: u64, ts: u64) {
    p.insert("seq".into(), json!(seq));
    p.insert("ts".into(), json!(ts));
    if view.source != RunSource::Agent {
        p.insert("isHeartbeat".into(), json!(view.source.is_heartbeat()));
    }
}

/// An `agent` event in the reference's key order. Lifecycle events name the session id right
/// after the key; streamed ones put `stream`/`data` first.
fn agent_event(
    run_id: &str,
    view: &RunView,
    seq: u64,
    ts: u64,
    stream: &str,
    data: Value,
    lifecycle_order: bool,
) -> WireEvent {
    let mut p = Map::new();
    p.insert("runId".into(), json!(run_id));
    if lifecycle_order {
        p.insert("sessionKey".into(), json!(&*view.session_key));
        if let Some(sid) = &view.session_id {
            p.insert("sessionId".into(), json!(&**sid));
        }
        p.insert("agentId".into(), json!(&*view.agent_id));
        p.insert("stream".into(), json!(stream));
        p.insert("data".into(), data);
    } else {
        p.insert("stream".into(), json!(stream));
        p.insert("data".into(), data);
        p.insert("sessionKey".into(), json!(&*view.session_key));
        p.insert("agentId".into(), json!(&*view.agent_id));
    }
    finish_agent(&mut p, view, seq, ts);
    WireEvent {
        event: "agent",
        payload: Value::Object(p),
        audience: Audience::Session(view.session_key.clone()),
    }
}

/// `usage`: `{runId, sessionKey, stream, data, agentId, …}`.
fn agent_event_ordered(
    run_id: &str,
    view: &RunView,
    seq: u64,
    ts: u64,
    stream: &str,
    data: Value,
) -> WireEvent {
    let mut p = Map::new();
    p.insert("runId".into(), json!(run_id));
    p.insert("sessionKey".into(), json!(&*view.session_key));
    p.insert("stream".into(), json!(stream));
    p.insert("data".into(), data);
    p.insert("agentId".into(), json!(&*view.agent_id));
    finish_agent(&mut p, view, seq, ts);
    WireEvent {
        event: "agent",
        payload: Value::Object(p),
        audience: Audience::Session(view.session_key.clone()),
    }
}

/// `terminalReceipt` of a finished run.
pub fn terminal_receipt(outcome: &RunOutcome) -> Value {
    let pair = |p: &Option<(String, String)>| {
        p.as_ref().map_or(
            Value::Null,
            |(provider, model)| json!({"provider": provider, "model": model}),
        )
    };
    let mut effective = pair(&outcome.effective);
    if let (Value::Object(e), Some((_, model))) = (&mut effective, &outcome.effective) {
        e.insert("responseModel".into(), json!(model));
    }
    json!({
        "runId": outcome.run_id,
        "sessionId": outcome.session_id,
        "turnId": outcome.run_id,
        "requested": pair(&outcome.requested),
        "effective": effective,
        "successfulToolNames": outcome.tool_names,
        "rerouted": outcome.requested.is_some() && outcome.requested != outcome.effective,
        "terminalDisposition": disposition(outcome),
    })
}

fn disposition(outcome: &RunOutcome) -> &'static str {
    match outcome.disposition {
        pincer_agent::Disposition::Visible => "visible",
        pincer_agent::Disposition::Silent => "silent",
        pincer_agent::Disposition::Empty => "empty",
    }
}

fn end_event(run_id: &str, view: &RunView, seq: u64, ts: u64, outcome: &RunOutcome) -> WireEvent {
    let aborted = matches!(outcome.status, RunStatus::Aborted | RunStatus::Timeout);
    let stop_reason = outcome.stop_reason.clone().unwrap_or_else(|| "stop".into());
    let data = if outcome.status == RunStatus::Error {
        json!({"phase": "error", "startedAt": outcome.started_at, "endedAt": outcome.ended_at,
            "aborted": false, "stopReason": stop_reason, "livenessState": "working",
            "error": outcome.error.as_ref().map(|e| e.error_message.clone()),
            "errorKind": outcome.error.as_ref().map(|e| e.error_kind.clone()),
            "executionSettled": true})
    } else {
        json!({"stopReason": stop_reason, "aborted": aborted, "livenessState": "working",
            "phase": "end", "endedAt": outcome.ended_at, "startedAt": outcome.started_at,
            "replayInvalid": false,
            "terminalReply": {"disposition": disposition(outcome), "text": outcome.text},
            "terminalReceipt": terminal_receipt(outcome),
            "executionSettled": true})
    };
    let mut data = data;
    if view.source == RunSource::Agent {
        // The `agent` RPC's capture reports no replay flag.
        if let Some(d) = data.as_object_mut() {
            d.remove("replayInvalid");
        }
    }
    let mut p = Map::new();
    p.insert("runId".into(), json!(run_id));
    p.insert("sessionKey".into(), json!(&*view.session_key));
    p.insert("stream".into(), json!("lifecycle"));
    p.insert("data".into(), data);
    if let Some(sid) = &view.session_id {
        p.insert("sessionId".into(), json!(&**sid));
    }
    p.insert("agentId".into(), json!(&*view.agent_id));
    finish_agent(&mut p, view, seq, ts);
    WireEvent {
        event: "agent",
        payload: Value::Object(p),
        audience: Audience::Session(view.session_key.clone()),
    }
}

/// The `final` / `aborted` / `error` chat event.
fn terminal_chat(run_id: &str, view: &RunView, seq: u64, outcome: &RunOutcome) -> WireEvent {
    let mut chat = chat_base(run_id, view, seq);
    let message = outcome.message.as_ref().map(|m| {
        let mut v = json!({"role": "assistant", "content": m.content, "timestamp": now_ms()});
        if m.model.as_deref() == Some("gateway-injected") {
            v["stopReason"] = json!("stop");
            v["api"] = json!(m.api);
            v["provider"] = json!(m.provider);
            v["model"] = json!(m.model);
        }
        v
    });
    match outcome.status {
        RunStatus::Ok => {
            chat.insert("state".into(), json!("final"));
            chat.insert(
                "stopReason".into(),
                json!(outcome.stop_reason.clone().unwrap_or_else(|| "stop".into())),
            );
            let text_only = outcome.message.as_ref().map(|m| {
                let text = m.text();
                if m.model.as_deref() == Some("gateway-injected") {
                    message.clone().unwrap_or(Value::Null)
                } else {
                    text_message(&text)
                }
            });
            if outcome.disposition != pincer_agent::Disposition::Silent {
                if let Some(m) = text_only {
                    chat.insert("message".into(), m);
                }
            }
        }
        RunStatus::Aborted | RunStatus::Timeout => {
            chat.insert("state".into(), json!("aborted"));
            if !view.text.is_empty() {
                chat.insert("message".into(), text_message(&view.text));
            }
            if outcome.status == RunStatus::Timeout {
                chat.insert("errorMessage".into(), json!("the run timed out"));
            }
            chat.insert(
                "stopReason".into(),
                json!(outcome.abort_reason.map_or("aborted", |r| r.as_str())),
            );
        }
        RunStatus::Error => {
            chat.insert("state".into(), json!("error"));
            if let Some(e) = &outcome.error {
                chat.insert("errorMessage".into(), json!(e.error_message));
                chat.insert("errorKind".into(), json!(e.error_kind));
                if let Some(d) = &e.error_detail {
                    chat.insert(
                        "errorDetail".into(),
                        serde_json::to_value(d).unwrap_or(Value::Null),
                    );
                }
            }
            chat.insert("stopReason".into(), json!("error"));
        }
    }
    chat_event(view, chat)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use pincer_agent::{Disposition, RunOutcome};

    struct Feed {
        p: Projector,
        seq: u64,
        t0: Instant,
    }

    impl Feed {
        fn new() -> Feed {
            Feed {
                p: Projector::new(),
                seq: 0,
                t0: Instant::now(),
            }
        }
        /// The run's wire events, without the `chat.metadata.changed` of a chat run's start.
        fn ev(&mut self, source: RunSource, kind: RunEventKind, at_ms: u64) -> Vec<WireEvent> {
            let mut out = self.ev_raw(source, kind, at_ms);
            out.retain(|e| e.event != "chat.metadata.changed");
            out
        }
        fn ev_raw(&mut self, source: RunSource, kind: RunEventKind, at_ms: u64) -> Vec<WireEvent> {
            self.seq += 1;
            let ev = RunEvent {
                run_id: Arc::from("r1"),
                session_key: Arc::from("agent:main:main"),
                session_id: Some(Arc::from("sid")),
                agent_id: Arc::from("main"),
                source,
                seq: self.seq,
                ts: 1,
                kind,
            };
            let mut out = Vec::new();
            self.p
                .handle(&ev, self.t0 + Duration::from_millis(at_ms), &mut out);
            out
        }
    }

    fn delta(d: &str) -> RunEventKind {
        RunEventKind::AssistantDelta {
            item_id: Arc::from("turn:1"),
            delta: d.into(),
        }
    }

    fn ok_outcome(text: &str) -> Arc<RunOutcome> {
        let mut o = RunOutcome::bare("r1", "agent:main:main", "main", RunStatus::Ok, 1);
        o.text = text.into();
        o.disposition = Disposition::Visible;
        o.stop_reason = Some("stop".into());
        o.message = Some(pincer_providers::AssistantMessage {
            content: vec![pincer_providers::ContentBlock::text(text)],
            ..Default::default()
        });
        Arc::new(o)
    }

    #[test]
    fn status_events_pair_chat_and_agent_with_one_seq() {
        let mut f = Feed::new();
        let out = f.ev(
            RunSource::Chat,
            RunEventKind::Status {
                phase: StatusPhase::PreparingWorkspace,
                retry: None,
            },
            0,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(
            out[0].payload,
            json!({"runId":"r1","sessionKey":"agent:main:main","agentId":"main","seq":1,"state":"status","phase":"preparing_workspace"})
        );
        assert_eq!(out[1].event, "agent");
        assert_eq!(out[1].payload["stream"], "run_status");
        assert_eq!(out[1].payload["seq"], 1);
        assert_eq!(out[1].payload["isHeartbeat"], false);
        let mut keys: Vec<&str> = out[1]
            .payload
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "agentId",
                "data",
                "isHeartbeat",
                "runId",
                "seq",
                "sessionKey",
                "stream",
                "ts"
            ]
        );
    }

    #[test]
    fn chat_deltas_are_paced_and_flushed_before_final() {
        let mut f = Feed::new();
        let a = f.ev(RunSource::Chat, delta("Hello"), 0);
        assert_eq!(a.len(), 2, "first delta goes out at once");
        assert_eq!(a[1].payload["deltaText"], "Hello");
        let b = f.ev(RunSource::Chat, delta(" from"), 10);
        assert_eq!(b.len(), 1, "agent event only; chat held by pacing");
        assert_eq!(b[0].payload["data"]["text"], "Hello from");
        let c = f.ev(RunSource::Chat, delta(" the"), 20);
        assert_eq!(c.len(), 1);
        assert_eq!(
            f.p.next_flush(),
            Some(f.t0 + CHAT_DELTA_PACING),
            "flush timer at last delta + 75 ms"
        );
        let mut flushed = Vec::new();
        f.p.flush_due(f.t0 + Duration::from_millis(76), &mut flushed);
        assert_eq!(flushed.len(), 1);
        assert_eq!(flushed[0].payload["deltaText"], " from the");
        assert_eq!(flushed[0].payload["seq"], 3, "seq of the last held delta");
        assert_eq!(
            flushed[0].payload["message"]["content"][0]["text"],
            "Hello from the"
        );
        let d = f.ev(RunSource::Chat, delta(" mock"), 80);
        assert_eq!(d.len(), 1, "held again: only 4 ms since the flush");
        let end = f.ev(
            RunSource::Chat,
            RunEventKind::End(ok_outcome("Hello from the mock")),
            81,
        );
        let kinds: Vec<(&str, Value)> = end
            .iter()
            .map(|e| {
                (
                    e.event,
                    e.payload.get("state").cloned().unwrap_or(Value::Null),
                )
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                ("agent", Value::Null),
                ("chat", json!("delta")),
                ("chat", json!("final"))
            ]
        );
        assert_eq!(end[1].payload["deltaText"], " mock");
        assert_eq!(end[1].payload["seq"], end[0].payload["seq"]);
        assert_eq!(
            end[2].payload["message"]["content"][0]["text"],
            "Hello from the mock"
        );
        assert_eq!(
            end[0].payload["data"]["terminalReply"]["text"],
            "Hello from the mock"
        );
        assert_eq!(f.p.active_runs(), 0, "state dropped at the end");
    }

    #[test]
    fn tool_stream_goes_only_to_registered_recipients() {
        let mut f = Feed::new();
        f.p.add_tool_recipient("r1", 7);
        let out = f.ev(
            RunSource::Chat,
            RunEventKind::ToolStart {
                tool_call_id: "c1".into(),
                name: "read".into(),
                args: json!({"path":"USER.md"}),
                title: "Read from USER.md".into(),
                meta: Some("from USER.md".into()),
                started_at: 5,
            },
            0,
        );
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].payload["stream"], "item");
        assert_eq!(out[0].payload["data"]["itemId"], "tool:c1");
        assert_eq!(
            out[0].audience,
            Audience::Session(Arc::from("agent:main:main"))
        );
        assert_eq!(out[1].payload["stream"], "tool");
        assert_eq!(out[1].audience, Audience::Conns(vec![7]));
        assert_eq!(out[1].payload["data"]["args"]["path"], "USER.md");
        assert_eq!(out[2].event, "session.tool");
        assert_eq!(
            (out[0].payload["seq"].clone(), out[1].payload["seq"].clone()),
            (json!(1), json!(2))
        );
        // Without recipients the tool stream is not sent, but its seq is still used.
        let mut g = Feed::new();
        let out = g.ev(
            RunSource::Agent,
            RunEventKind::ToolStart {
                tool_call_id: "c1".into(),
                name: "read".into(),
                args: json!({}),
                title: "Read".into(),
                meta: None,
                started_at: 5,
            },
            0,
        );
        assert_eq!(out.len(), 2);
        assert!(
            out[0].payload.get("isHeartbeat").is_none(),
            "agent RPC events carry no isHeartbeat"
        );
    }

    #[test]
    fn stored_messages_go_to_subscribers_in_the_history_shape() {
        let mut f = Feed::new();
        let first = f.ev_raw(
            RunSource::Chat,
            RunEventKind::Message(Arc::new(pincer_agent::StoredMessage {
                entry_id: Some("e1".into()),
                seq: 2,
                message_seq: 1,
                created_at: 77,
                message: json!({"role": "user", "content": "hi", "timestamp": 5,
                    "idempotencyKey": "r1:user", "__openclaw": {"senderIsOwner": true}}),
            })),
            0,
        );
        assert_eq!(first.len(), 2, "{first:?}");
        assert_eq!(first[0].event, "chat.metadata.changed");
        assert_eq!(first[0].audience, Audience::All);
        let m = &first[1];
        assert_eq!(m.event, "session.message");
        assert_eq!(
            m.audience,
            Audience::Subscribers(Arc::from("agent:main:main"))
        );
        assert_eq!(m.payload["senderIsOwner"], true);
        assert_eq!(
            (
                m.payload["messageId"].clone(),
                m.payload["messageSeq"].clone()
            ),
            (json!("e1"), json!(1))
        );
        let meta = &m.payload["message"]["__openclaw"];
        assert_eq!(meta["id"], "e1");
        assert_eq!(meta["seq"], 1);
        assert_eq!(meta["recordTimestampMs"], 77);
        assert_eq!(meta["idempotencyKey"], "r1:user");
        assert_eq!(meta["transcriptPosition"]["rawSeq"], 2);
        // Announcing a message does not take a run seq; metadata is announced once per run.
        let next = f.ev_raw(RunSource::Chat, delta("x"), 1);
        assert_eq!(next[0].payload["seq"], 1);
        assert!(next.iter().all(|e| e.event != "chat.metadata.changed"));
        let mut g = Feed::new();
        let agent_run = g.ev_raw(RunSource::Agent, delta("x"), 0);
        assert!(agent_run.iter().all(|e| e.event != "chat.metadata.changed"));
    }

    #[test]
    fn errors_and_aborts_have_their_chat_shapes() {
        let mut f = Feed::new();
        f.ev(RunSource::Chat, delta("part"), 0);
        let mut o = RunOutcome::bare("r1", "agent:main:main", "main", RunStatus::Aborted, 1);
        o.abort_reason = Some(pincer_agent::AbortReason::Rpc);
        let out = f.ev(RunSource::Chat, RunEventKind::End(Arc::new(o)), 10);
        let chat = out.iter().find(|e| e.event == "chat").unwrap();
        assert_eq!(chat.payload["state"], "aborted");
        assert_eq!(chat.payload["stopReason"], "rpc");
        assert_eq!(chat.payload["message"]["content"][0]["text"], "part");

        let mut f = Feed::new();
        let mut o = RunOutcome::bare("r1", "agent:main:main", "main", RunStatus::Error, 1);
        o.error = Some(pincer_agent::RunError {
            error_kind: "rate_limit".into(),
            error_message: "slow down".into(),
            error_detail: None,
        });
        let out = f.ev(RunSource::Chat, RunEventKind::End(Arc::new(o)), 0);
        assert_eq!(out[0].payload["data"]["phase"], "error");
        assert_eq!(out[1].payload["state"], "error");
        assert_eq!(out[1].payload["errorKind"], "rate_limit");
        assert_eq!(out[1].payload["errorMessage"], "slow down");
    }
}
