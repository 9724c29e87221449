//! The OpenAI-compatible endpoints, off by default:
//! `POST /v1/chat/completions` (`gateway.http.endpoints.chatCompletions.enabled`),
//! `POST /v1/responses` (`gateway.http.endpoints.responses.enabled`), and `GET /v1/models`,
//! `GET /v1/models/{id}` when either is on. A disabled endpoint answers 404.
//!
//! Every request needs the gateway's HTTP auth (`Authorization: Bearer <token|password>`,
//! with the failed-auth limiter) and is one agent run: `model` names the agent (`openclaw`,
//! `openclaw/default`, `openclaw/<agentId>`, `agent:<id>`; `x-openclaw-agent-id` wins), the
//! session is `x-openclaw-session-key`, else derived from `user` (`openai-user:<user>`), else
//! a fresh `openai:<uuid>` per request (Responses: `openresponses…`, and
//! `previous_response_id` continues that response's session). `system`/`developer` messages
//! become extra system prompt; earlier messages are given as context with the reference's
//! markers. Streaming uses the exact SSE framing of `pincer_automations::openai`; when the
//! client goes away mid-stream (or mid-request) the run is aborted. Client-side `tools` are
//! accepted but not offered to the agent (its own tools run inside the gateway).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use futures_util::stream;
use pincer_agent::{
    AbortReason, QueueMode, RunEvent, RunEventKind, RunOutcome, RunSource, RunStatus,
};
use pincer_automations::openai::{
    chat_completion, check_session_key_header, models_list, resolve_agent, ChatCompletionRequest,
    ChatMessage, ChatStream, FinishReason, OpenAiError, ResponseEnd, ResponsesRequest,
    ResponsesStream, Usage, MAX_BODY_BYTES, SSE_CONTENT_TYPE, SSE_DONE,
};
use pincer_sessions::SessionKey;
use serde_json::json;
use tokio::sync::mpsc;

use super::{read_body, BodyError};
use crate::http::PeerAddr;
use crate::state::GatewayState;

/// Body deadline of a request.
const BODY_DEADLINE: Duration = Duration::from_secs(60);
/// Buffered run events between the agent and a slow HTTP client.
const OBSERVER_CAPACITY: usize = 256;

const HISTORY_MARKER: &str = "[Chat messages since your last reply - for context]";
const CURRENT_MARKER: &str = "[Current message - respond to this]";

fn error_response(e: &OpenAiError) -> Response<Body> {
    super::json(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        &e.body(),
    )
}

fn server_error(status: StatusCode, message: &str, kind: &'static str) -> Response<Body> {
    super::json(
        status,
        &json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
    )
}

fn not_found() -> Response<Body> {
    super::json(
        StatusCode::NOT_FOUND,
        &json!({"error": {"message": "Not Found", "type": "not_found"}}),
    )
}

fn endpoints(state: &GatewayState) -> (bool, bool) {
    let loaded = state.config.get();
    let e = &loaded.config.gateway.http.endpoints;
    let on = |t: &Option<pincer_config::model::gateway::EndpointToggle>| {
        t.as_ref().and_then(|t| t.enabled) == Some(true)
    };
    (on(&e.chat_completions), on(&e.responses))
}

/// Method, then auth (404 for a disabled endpoint was decided by the caller).
fn gate(
    state: &GatewayState,
    peer: Option<Extension<PeerAddr>>,
    method: &Method,
    allowed: &'static str,
    headers: &HeaderMap,
) -> Result<IpAddr, Box<Response<Body>>> {
    let wanted = match allowed {
        "GET" => Method::GET,
        _ => Method::POST,
    };
    if *method != wanted && !(wanted == Method::GET && *method == Method::HEAD) {
        return Err(Box::new(super::method_not_allowed(
            allowed,
            &json!({"error": {"message": "Method Not Allowed", "type": "method_not_allowed"}}),
        )));
    }
    let Some(Extension(PeerAddr(peer))) = peer else {
        return Err(Box::new(server_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "unauthorized",
        )));
    };
    crate::control_ui::http_auth(state, peer.ip(), headers)?;
    Ok(peer.ip())
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// A `user` string as a session-key segment.
fn user_segment(user: &str) -> String {
    user.trim()
        .chars()
        .take(128)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@') {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// The session of a request (see the module doc).
fn session_for(
    headers: &HeaderMap,
    agent: &str,
    user: Option<&str>,
    prefix: &str,
) -> Result<SessionKey, OpenAiError> {
    if let Some(raw) = header_str(headers, "x-openclaw-session-key") {
        let k = check_session_key_header(raw)?;
        return SessionKey::canonicalize(&k, agent)
            .map_err(|e| OpenAiError::invalid(format!("x-openclaw-session-key {k:?}: {e}"), None));
    }
    let rest = match user {
        Some(u) => format!("{prefix}-user:{}", user_segment(u)),
        None => format!("{prefix}:{}", uuid::Uuid::new_v4()),
    };
    SessionKey::canonicalize(&format!("agent:{agent}:{rest}"), agent).map_err(|e| {
        OpenAiError::invalid(
            format!("cannot derive a session from user: {e}"),
            Some("user"),
        )
    })
}

fn sender(role: &str, tool_call_id: Option<&str>) -> String {
    match role {
        "assistant" => "Assistant".into(),
        "user" => "User".into(),
        _ => match tool_call_id {
            Some(id) => format!("Tool:{id}"),
            None => "Tool".into(),
        },
    }
}

/// The run's user message: the current message, with earlier messages as context.
fn conversation_message(
    history: &[(String, String, Option<String>)],
    current: &(String, String, Option<String>),
) -> String {
    let lines: Vec<String> = history
        .iter()
        .filter(|(_, text, _)| !text.trim().is_empty())
        .map(|(role, text, id)| format!("{}: {}", sender(role, id.as_deref()), text))
        .collect();
    let (role, text, id) = current;
    if lines.is_empty() && role == "user" {
        return text.clone();
    }
    format!(
        "{HISTORY_MARKER}\n{}\n\n{CURRENT_MARKER}\n{}: {}",
        lines.join("\n"),
        sender(role, id.as_deref()),
        text
    )
}

fn chat_entry(m: &ChatMessage) -> (String, String, Option<String>) {
    let mut text = m.text();
    if let Some(calls) = &m.tool_calls {
        for c in calls {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&format!(
                "[called {}({}) id={}]",
                c.function.name, c.function.arguments, c.id
            ));
        }
    }
    (m.role.clone(), text, m.tool_call_id.clone())
}

fn usage_of(o: &RunOutcome) -> Usage {
    Usage {
        input_tokens: o.usage.input + o.usage.cache_read + o.usage.cache_write,
        output_tokens: o.usage.output,
        cached_tokens: o.usage.cache_read,
        reasoning_tokens: 0,
    }
}

fn run_failure(o: &RunOutcome) -> Option<String> {
    match o.status {
        RunStatus::Ok => None,
        RunStatus::Timeout => Some("the agent run timed out".into()),
        RunStatus::Aborted => Some("the agent run was aborted".into()),
        RunStatus::Error => Some(
            o.error
                .as_ref()
                .map(|e| e.error_message.clone())
                .unwrap_or_else(|| "the agent run failed".into()),
        ),
    }
}

/// Aborts the run when the response (or the request future) is dropped before the run ended:
/// the client went away.
struct RunGuard {
    state: Arc<GatewayState>,
    key: String,
    run_id: String,
    done: bool,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        if !self.done {
            tracing::debug!(target: "openai", run = %self.run_id, "client went away; aborting the run");
            self.state
                .agent
                .runtime
                .abort(&self.key, Some(&self.run_id), AbortReason::Rpc);
        }
    }
}

/// A run started for an HTTP request, with its event stream.
struct Started {
    guard: RunGuard,
    events: mpsc::Receiver<RunEvent>,
}

async fn start_run(
    state: &Arc<GatewayState>,
    run_id: &str,
    key: SessionKey,
    message: String,
    system: Vec<String>,
) -> Result<Started, Response<Body>> {
    let (tx, rx) = mpsc::channel(OBSERVER_CAPACITY);
    let key_text = key.to_string();
    let mut req = pincer_agent::RunRequest::new(run_id.to_string(), key, message, RunSource::Agent);
    req.interpret_commands = false;
    req.queue_mode = Some(QueueMode::Followup);
    req.observer = Some(tx);
    let system: Vec<String> = system
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .collect();
    if !system.is_empty() {
        req.extra_system_prompt = Some(system.join("\n\n"));
    }
    req.metadata = Some(json!({"transport": {"clients": [{"id": "openai-http", "mode": "api"}]}}));
    let guard = RunGuard {
        state: Arc::clone(state),
        key: key_text,
        run_id: run_id.to_string(),
        done: false,
    };
    match state.agent.runtime.submit(req).await {
        Ok(_) => Ok(Started { guard, events: rx }),
        Err(e) => {
            let mut guard = guard;
            guard.done = true;
            Err(server_error(
                StatusCode::SERVICE_UNAVAILABLE,
                &format!("the agent did not accept the request: {e}"),
                "server_error",
            ))
        }
    }
}

/// Waits for the run's end (non-streaming answers).
async fn finish(mut started: Started) -> Arc<RunOutcome> {
    loop {
        match started.events.recv().await {
            Some(RunEvent {
                kind: RunEventKind::End(outcome),
                ..
            }) => {
                started.guard.done = true;
                return outcome;
            }
            Some(_) => {}
            None => {
                started.guard.done = true;
                let mut o = RunOutcome::bare("", &started.guard.key, "", RunStatus::Error, 0);
                o.error = Some(pincer_agent::RunError {
                    error_kind: "unknown".into(),
                    error_message: "the run ended without an outcome".into(),
                    error_detail: None,
                });
                return Arc::new(o);
            }
        }
    }
}

fn sse_response(
    frames: impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static,
) -> Response<Body> {
    let mut resp = Response::new(Body::from_stream(frames));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(SSE_CONTENT_TYPE),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    resp
}

/// One stream step: frames to send now, whether the stream is over.
type Step = (Vec<String>, bool);

/// Turns run events into SSE frames with `on_event`, ending after `End` (or a lost run).
/// Dropping the stream (the client went away) drops the run guard, which aborts the run.
fn event_stream<S: Send + 'static>(
    started: Started,
    first: Vec<String>,
    builder: S,
    on_event: fn(&mut S, &RunEvent) -> Option<Step>,
    on_lost: fn(&mut S) -> Vec<String>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> + Send + 'static {
    let pending: std::collections::VecDeque<String> = first.into();
    stream::unfold(
        (started, pending, false, builder),
        move |(mut started, mut pending, mut over, mut builder)| async move {
            loop {
                if let Some(frame) = pending.pop_front() {
                    return Some((Ok(Bytes::from(frame)), (started, pending, over, builder)));
                }
                if over {
                    return None;
                }
                match started.events.recv().await {
                    Some(ev) => {
                        let end = matches!(ev.kind, RunEventKind::End(_));
                        if let Some((frames, stop)) = on_event(&mut builder, &ev) {
                            pending.extend(frames);
                            over |= stop;
                        }
                        if end {
                            started.guard.done = true;
                            over = true;
                        }
                    }
                    None => {
                        started.guard.done = true;
                        pending.extend(on_lost(&mut builder));
                        over = true;
                    }
                }
            }
        },
    )
}

/// The common start of both POST endpoints: 404 when disabled, method and auth, then the
/// body (≤ 20 MB, 413 beyond).
async fn post_body(
    state: &GatewayState,
    peer: Option<Extension<PeerAddr>>,
    req: Request<Body>,
    enabled: bool,
) -> Result<(HeaderMap, Bytes), Box<Response<Body>>> {
    if !enabled {
        return Err(Box::new(not_found()));
    }
    gate(state, peer, req.method(), "POST", req.headers())?;
    let (parts, body) = req.into_parts();
    match read_body(body, MAX_BODY_BYTES, BODY_DEADLINE).await {
        Ok(b) => Ok((parts.headers, b)),
        Err(BodyError::TooLarge(_)) => Err(Box::new(error_response(&OpenAiError {
            status: 413,
            message: format!("request body exceeds {MAX_BODY_BYTES} bytes"),
            kind: "invalid_request_error",
            param: None,
            code: None,
        }))),
        Err(BodyError::Timeout) => Err(Box::new(server_error(
            StatusCode::REQUEST_TIMEOUT,
            "request body timed out",
            "invalid_request_error",
        ))),
        Err(BodyError::Read(e)) => Err(Box::new(server_error(
            StatusCode::BAD_REQUEST,
            &e,
            "invalid_request_error",
        ))),
    }
}

// ---- /v1/chat/completions ----------------------------------------------------------------

struct ChatSse {
    stream: ChatStream,
}

fn chat_on_event(s: &mut ChatSse, ev: &RunEvent) -> Option<Step> {
    match &ev.kind {
        RunEventKind::AssistantDelta { delta, .. } => {
            s.stream.content(delta).map(|f| (vec![f], false))
        }
        RunEventKind::End(outcome) => {
            let mut frames = Vec::new();
            if let Some(msg) = run_failure(outcome) {
                frames.push(s.stream.error(&msg, "server_error"));
            } else {
                let reason = if outcome.stop_reason.as_deref() == Some("length") {
                    FinishReason::Length
                } else {
                    FinishReason::Stop
                };
                frames.push(s.stream.finish(reason));
                frames.extend(s.stream.usage(usage_of(outcome)));
            }
            frames.push(SSE_DONE.to_string());
            Some((frames, true))
        }
        _ => None,
    }
}

fn chat_on_lost(s: &mut ChatSse) -> Vec<String> {
    vec![
        s.stream
            .error("the run ended without an outcome", "server_error"),
        SSE_DONE.to_string(),
    ]
}

pub async fn chat_completions(
    State(state): State<Arc<GatewayState>>,
    peer: Option<Extension<PeerAddr>>,
    req: Request<Body>,
) -> Response<Body> {
    let (headers, body) = match post_body(&state, peer, req, endpoints(&state).0).await {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let request = match ChatCompletionRequest::parse(&body) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let model = request.model.clone();
    let turn = match request.into_turn() {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let known = state.config.get().config.agent_ids();
    let agent = match resolve_agent(&model, header_str(&headers, "x-openclaw-agent-id"), &known) {
        Ok(a) => a,
        Err(e) => return error_response(&e),
    };
    let key = match session_for(&headers, &agent, turn.user.as_deref(), "openai") {
        Ok(k) => k,
        Err(e) => return error_response(&e),
    };
    let history: Vec<_> = turn.history.iter().map(chat_entry).collect();
    let message = conversation_message(&history, &chat_entry(&turn.current));
    if message.trim().is_empty() {
        return error_response(&OpenAiError::invalid(
            "Missing user message in `messages`.",
            Some("messages"),
        ));
    }
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    let created = (crate::util::now_ms() / 1000) as i64;
    let started = match start_run(&state, &id, key, message, turn.system).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if turn.stream {
        let sse = ChatSse {
            stream: ChatStream::new(id, model, created, turn.include_usage),
        };
        let first = vec![sse.stream.role()];
        return sse_response(event_stream(
            started,
            first,
            sse,
            chat_on_event,
            chat_on_lost,
        ));
    }
    let outcome = finish(started).await;
    if let Some(msg) = run_failure(&outcome) {
        return server_error(StatusCode::INTERNAL_SERVER_ERROR, &msg, "server_error");
    }
    let reason = if outcome.stop_reason.as_deref() == Some("length") {
        FinishReason::Length
    } else {
        FinishReason::Stop
    };
    let body = chat_completion(
        &id,
        &model,
        created,
        &outcome.text,
        &[],
        reason,
        usage_of(&outcome),
    );
    super::json(StatusCode::OK, &body)
}

// ---- /v1/responses ----------------------------------------------------------------------

struct ResponsesSse {
    stream: ResponsesStream,
}

fn responses_end(outcome: &RunOutcome) -> ResponseEnd {
    match run_failure(outcome) {
        Some(message) => ResponseEnd::Failed {
            code: "server_error".into(),
            message,
        },
        None if outcome.stop_reason.as_deref() == Some("length") => ResponseEnd::Incomplete,
        None => ResponseEnd::Completed,
    }
}

fn responses_on_event(s: &mut ResponsesSse, ev: &RunEvent) -> Option<Step> {
    match &ev.kind {
        RunEventKind::AssistantDelta { delta, .. } => Some((s.stream.text_delta(delta), false)),
        RunEventKind::End(outcome) => Some((
            s.stream.end(responses_end(outcome), usage_of(outcome)),
            true,
        )),
        _ => None,
    }
}

fn responses_on_lost(s: &mut ResponsesSse) -> Vec<String> {
    s.stream.end(
        ResponseEnd::Failed {
            code: "server_error".into(),
            message: "the run ended without an outcome".into(),
        },
        Usage::default(),
    )
}

pub async fn responses(
    State(state): State<Arc<GatewayState>>,
    peer: Option<Extension<PeerAddr>>,
    req: Request<Body>,
) -> Response<Body> {
    let (headers, body) = match post_body(&state, peer, req, endpoints(&state).1).await {
        Ok(r) => r,
        Err(resp) => return *resp,
    };
    let request = match ResponsesRequest::parse(&body) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let model = request.model.clone();
    let instructions = request.instructions.clone();
    let turn = match request.into_turn() {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    let known = state.config.get().config.agent_ids();
    let agent = match resolve_agent(&model, header_str(&headers, "x-openclaw-agent-id"), &known) {
        Ok(a) => a,
        Err(e) => return error_response(&e),
    };
    let previous = turn
        .previous_response_id
        .as_deref()
        .and_then(|id| state.automations.response_session(id))
        .and_then(|k| SessionKey::parse(&k).ok())
        .filter(|k| k.agent_id() == Some(agent.as_str()));
    let key = match previous {
        Some(k) if header_str(&headers, "x-openclaw-session-key").is_none() => k,
        _ => match session_for(&headers, &agent, turn.user.as_deref(), "openresponses") {
            Ok(k) => k,
            Err(e) => return error_response(&e),
        },
    };
    let history: Vec<(String, String, Option<String>)> = turn
        .history
        .iter()
        .map(|(r, t)| (r.clone(), t.clone(), None))
        .collect();
    let current_role = if turn.call_id.is_some() {
        "tool"
    } else {
        "user"
    };
    let message = conversation_message(
        &history,
        &(
            current_role.to_string(),
            turn.current.clone(),
            turn.call_id.clone(),
        ),
    );
    let id = format!("resp_{}", uuid::Uuid::new_v4().simple());
    let created = (crate::util::now_ms() / 1000) as i64;
    state.automations.remember_response(&id, &key.to_string());
    let builder =
        ResponsesStream::new(id.clone(), model, created).with_request(&turn, instructions);
    let started = match start_run(&state, &id, key, message, turn.system.clone()).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if turn.stream {
        let mut sse = ResponsesSse { stream: builder };
        let first = sse.stream.start();
        return sse_response(event_stream(
            started,
            first,
            sse,
            responses_on_event,
            responses_on_lost,
        ));
    }
    let outcome = finish(started).await;
    let mut builder = builder;
    let _ = builder.text_delta(&outcome.text);
    let end = responses_end(&outcome);
    let failed = matches!(end, ResponseEnd::Failed { .. });
    let body = builder.final_object(end, usage_of(&outcome));
    let status = if failed {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    super::json(status, &body)
}

// ---- /v1/models ---------------------------------------------------------------------------

pub async fn models(
    State(state): State<Arc<GatewayState>>,
    peer: Option<Extension<PeerAddr>>,
    req: Request<Body>,
) -> Response<Body> {
    let (chat, resp) = endpoints(&state);
    if !chat && !resp {
        return not_found();
    }
    if let Err(r) = gate(&state, peer, req.method(), "GET", req.headers()) {
        return *r;
    }
    let agents = state.config.get().config.agent_ids();
    let created = (state.started_at_ms / 1000) as i64;
    super::json(StatusCode::OK, &models_list(&agents, created))
}

pub async fn model(
    State(state): State<Arc<GatewayState>>,
    peer: Option<Extension<PeerAddr>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    req: Request<Body>,
) -> Response<Body> {
    let (chat, resp) = endpoints(&state);
    if !chat && !resp {
        return not_found();
    }
    if let Err(r) = gate(&state, peer, req.method(), "GET", req.headers()) {
        return *r;
    }
    let agents = state.config.get().config.agent_ids();
    let created = (state.started_at_ms / 1000) as i64;
    let list = models_list(&agents, created);
    let found = list["data"]
        .as_array()
        .and_then(|d| d.iter().find(|m| m["id"] == id.as_str()).cloned());
    match found {
        Some(m) => super::json(StatusCode::OK, &m),
        None => error_response(&OpenAiError {
            status: 404,
            message: format!("The model `{id}` does not exist."),
            kind: "invalid_request_error",
            param: Some("model"),
            code: Some("model_not_found"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_is_given_as_context_with_the_reference_markers() {
        let cur = ("user".to_string(), "and now?".to_string(), None);
        assert_eq!(conversation_message(&[], &cur), "and now?");
        let history = vec![
            ("user".to_string(), "hi".to_string(), None),
            ("assistant".to_string(), "hello".to_string(), None),
        ];
        assert_eq!(
            conversation_message(&history, &cur),
            "[Chat messages since your last reply - for context]\nUser: hi\nAssistant: hello\n\n[Current message - respond to this]\nUser: and now?"
        );
        let tool = (
            "tool".to_string(),
            "42".to_string(),
            Some("call_1".to_string()),
        );
        assert!(conversation_message(&[], &tool).ends_with("Tool:call_1: 42"));
    }

    #[test]
    fn user_strings_become_safe_key_segments() {
        assert_eq!(user_segment("Alice Smith/1"), "alice-smith-1");
        let mut h = HeaderMap::new();
        let k = session_for(&h, "main", Some("bob@x.y"), "openai").map(|k| k.to_string());
        assert_eq!(k.ok().as_deref(), Some("agent:main:openai-user:bob@x.y"));
        h.insert("x-openclaw-session-key", HeaderValue::from_static("cron:x"));
        assert!(session_for(&h, "main", None, "openai").is_err());
    }
}
