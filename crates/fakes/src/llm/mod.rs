//! A fake LLM provider that speaks the real streaming wire formats:
//!
//! | endpoint | format |
//! |---|---|
//! | `POST /v1/chat/completions` (also `/chat/completions`) | OpenAI Chat Completions SSE, `data: [DONE]` |
//! | `POST /v1/responses` (also `/responses`) | OpenAI Responses SSE (`event:` + `data:`) |
//! | `POST /v1/messages` | Anthropic Messages SSE (`event:` + `data:`, `ping`) |
//! | `POST /api/chat` | Ollama NDJSON |
//! | `GET /v1/models`, `/models`, `/api/tags` | model lists |
//!
//! Tests queue [`Turn`]s; each model request takes the next one (per-model queues first,
//! then "always" turns for a model, then the shared queue, then the default reply) and
//! renders it in the format of the endpoint that was hit. Every request is recorded.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use pincer_fakes::llm::{FakeLlm, Reply, Turn};
//! let fake = FakeLlm::start().await?;
//! fake.push(Turn::rate_limited("1"));
//! fake.push(Reply::new().text("Hello there").tool_call("call_1", "read", r#"{"path":"USER.md"}"#).usage(12, 7));
//! // point a client at fake.openai_base_url() / fake.url() …
//! assert_eq!(fake.requests().len(), 0);
//! # Ok(()) }
//! ```

mod render;
mod script;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{json, Value};

pub use render::Api;
pub use script::{
    even_chunks, split_at_offsets, word_chunks, FakeUsage, Fault, HttpError, Part, Reply, Stop,
    StreamErrorKind, Turn,
};

use crate::http::{
    Counters, FakeHttpServer, Handler, Reply as HttpReply, Request, Response, ServerOptions, Step,
};

/// What the fake answers when no turn is queued.
#[derive(Debug, Clone, PartialEq)]
pub enum DefaultReply {
    /// Repeats the last user message (`You said: …`).
    Echo { chunk_delay: Duration },
    /// A fixed text.
    Fixed { text: String, chunk_delay: Duration },
}

/// Fake options.
#[derive(Debug, Clone, Default)]
pub struct FakeLlmOptions {
    /// No delays, one write per response (benchmarks).
    pub zero_latency: bool,
    /// Answer for requests with nothing queued; `None` = HTTP 500 "no scripted turn".
    pub default_reply: Option<DefaultReply>,
    /// Ids listed by the model endpoints (default `fake-model`).
    pub models: Vec<String>,
}

/// A recorded request.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// Lower-cased names, as received (including auth headers: this is a test fake).
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (`Null` if it is not JSON).
    pub body: Value,
    pub raw_body: Bytes,
    /// When the request was complete (latency benchmarks compare it with other fakes).
    pub received_at: std::time::Instant,
}

impl RecordedRequest {
    /// First header with this name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct Script {
    queue: VecDeque<Turn>,
    per_model: HashMap<String, VecDeque<Turn>>,
    always: HashMap<String, Turn>,
}

struct State {
    script: Mutex<Script>,
    requests: Mutex<Vec<RecordedRequest>>,
    seq: AtomicU64,
    options: FakeLlmOptions,
}

/// A running fake provider. Dropping it stops the server.
pub struct FakeLlm {
    server: FakeHttpServer,
    state: Arc<State>,
}

impl FakeLlm {
    /// Starts with default options on `127.0.0.1:0`.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(FakeLlmOptions::default()).await
    }

    /// Starts with options on `127.0.0.1:0`.
    pub async fn start_with(options: FakeLlmOptions) -> std::io::Result<Self> {
        Self::bind(SocketAddr::from(([127, 0, 0, 1], 0)), options).await
    }

    /// Starts on a given loopback address.
    pub async fn bind(addr: SocketAddr, options: FakeLlmOptions) -> std::io::Result<Self> {
        let server_options = ServerOptions {
            zero_latency: options.zero_latency,
        };
        let state = Arc::new(State {
            script: Mutex::new(Script::default()),
            requests: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            options,
        });
        let server =
            FakeHttpServer::bind(addr, Arc::new(LlmHandler(state.clone())), server_options).await?;
        Ok(Self { server, state })
    }

    /// `http://127.0.0.1:<port>` (Anthropic and Ollama base URL).
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// `http://127.0.0.1:<port>/v1` (OpenAI-style base URL).
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.server.url())
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Queues a turn for the next model request of any model.
    pub fn push(&self, turn: impl Into<Turn>) {
        self.state.script.lock().queue.push_back(turn.into());
    }

    /// Queues a turn for the next request naming `model`.
    pub fn push_for_model(&self, model: &str, turn: impl Into<Turn>) {
        self.state
            .script
            .lock()
            .per_model
            .entry(model.to_owned())
            .or_default()
            .push_back(turn.into());
    }

    /// Answers every request naming `model` with this turn (after its queued ones).
    pub fn always_for_model(&self, model: &str, turn: impl Into<Turn>) {
        self.state
            .script
            .lock()
            .always
            .insert(model.to_owned(), turn.into());
    }

    /// Turns still queued (shared queue plus per-model queues).
    pub fn pending_turns(&self) -> usize {
        let script = self.state.script.lock();
        script.queue.len() + script.per_model.values().map(VecDeque::len).sum::<usize>()
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.requests.lock().clone()
    }

    /// Model requests (POSTs) received so far.
    pub fn model_requests(&self) -> Vec<RecordedRequest> {
        self.state
            .requests
            .lock()
            .iter()
            .filter(|r| r.method == "POST")
            .cloned()
            .collect()
    }

    /// Connection and request counters.
    pub fn counters(&self) -> Counters {
        self.server.counters()
    }

    /// Waits until the counters satisfy `predicate` (at most `timeout`).
    pub async fn wait_for(&self, predicate: impl Fn(&Counters) -> bool, timeout: Duration) -> bool {
        self.server.wait_for(predicate, timeout).await
    }
}

struct LlmHandler(Arc<State>);

impl Handler for LlmHandler {
    fn handle(&self, request: Request) -> HttpReply {
        let state = &self.0;
        let body = request.json().unwrap_or(Value::Null);
        state.requests.lock().push(RecordedRequest {
            method: request.method.clone(),
            path: request.path.clone(),
            headers: request.headers.clone(),
            body: body.clone(),
            received_at: std::time::Instant::now(),
            raw_body: request.body.clone(),
        });
        let path = request.path.trim_end_matches('/');
        let api = match (request.method.as_str(), path) {
            ("POST", "/v1/chat/completions" | "/chat/completions") => Api::ChatCompletions,
            ("POST", "/v1/responses" | "/responses") => Api::Responses,
            ("POST", "/v1/messages") => Api::Anthropic,
            ("POST", "/api/chat") => Api::Ollama,
            ("GET", "/v1/models" | "/models") => return models_response(state, &request).into(),
            ("GET", "/api/tags") => return ollama_tags(state).into(),
            _ => return Response::json(404, &json!({"error": {"message": format!("no route for {} {}", request.method, request.path), "type": "invalid_request_error"}})).into(),
        };
        if body.is_null() {
            return http_error_response(
                api,
                &HttpError {
                    status: 400,
                    retry_after: None,
                    message: Some("the request body is not valid JSON".into()),
                },
            )
            .into();
        }
        let model = body["model"].as_str().unwrap_or("unknown").to_owned();
        let seq = state.seq.fetch_add(1, Ordering::Relaxed) + 1;
        match next_turn(state, &model) {
            Some(Turn::HttpError(error)) => http_error_response(api, &error).into(),
            Some(Turn::Reply(reply)) => stream_response(api, &reply, &model, seq, &body).into(),
            None => match &state.options.default_reply {
                Some(default) => {
                    let reply = default_reply(default, &body);
                    stream_response(api, &reply, &model, seq, &body).into()
                }
                None => http_error_response(
                    api,
                    &HttpError {
                        status: 500,
                        retry_after: None,
                        message: Some("pincer-fakes: no scripted turn left".into()),
                    },
                )
                .into(),
            },
        }
    }
}

fn next_turn(state: &State, model: &str) -> Option<Turn> {
    let mut script = state.script.lock();
    if let Some(turn) = script
        .per_model
        .get_mut(model)
        .and_then(VecDeque::pop_front)
    {
        return Some(turn);
    }
    if let Some(turn) = script.always.get(model) {
        return Some(turn.clone());
    }
    script.queue.pop_front()
}

fn default_reply(default: &DefaultReply, body: &Value) -> Reply {
    match default {
        DefaultReply::Echo { chunk_delay } => {
            let said = last_user_text(body).unwrap_or_default();
            Reply::new()
                .text(&format!("You said: {said}"))
                .delay(*chunk_delay)
        }
        DefaultReply::Fixed { text, chunk_delay } => Reply::new().text(text).delay(*chunk_delay),
    }
}

/// The last user message's text in any of the four request shapes.
fn last_user_text(body: &Value) -> Option<String> {
    let items = body["messages"].as_array().or(body["input"].as_array());
    if items.is_none() {
        if let Some(input) = body["input"].as_str() {
            return Some(input.to_owned());
        }
    }
    let user = items?.iter().rev().find(|m| m["role"] == "user")?;
    match &user["content"] {
        Value::String(text) => Some(text.clone()),
        Value::Array(parts) => Some(
            parts
                .iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        _ => None,
    }
}

fn stream_response(api: Api, reply: &Reply, model: &str, seq: u64, body: &Value) -> Response {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let iso = iso8601(now);
    let ctx = render::Ctx {
        model,
        seq,
        created: now.as_secs(),
        created_at_iso: &iso,
        include_usage: body["stream_options"]["include_usage"].as_bool() == Some(true),
    };
    if api == Api::ChatCompletions && body["stream"].as_bool() != Some(true) {
        return chat_completion_json(reply, &ctx);
    }
    let frames = render::frames(api, reply, &ctx);
    let mut steps = Vec::with_capacity(frames.len() * 2);
    let sse = api != Api::Ollama;
    let emit = |steps: &mut Vec<Step>, frame: String| {
        let mut frame = if reply.comments && sse {
            format!(": keep-alive\n{frame}")
        } else {
            frame
        };
        if reply.crlf && sse {
            frame = frame.replace('\n', "\r\n");
        }
        let bytes = Bytes::from(frame);
        match reply.fragment_bytes {
            Some(size) => {
                for start in (0..bytes.len()).step_by(size) {
                    steps.push(Step::Send(
                        bytes.slice(start..(start + size).min(bytes.len())),
                    ));
                }
            }
            None => steps.push(Step::Send(bytes)),
        }
        if !reply.chunk_delay.is_zero() {
            steps.push(Step::Sleep(reply.chunk_delay));
        }
    };
    let fault_at = |index: usize| {
        reply
            .fault
            .as_ref()
            .filter(|f| fault_index(f).min(frames.len()) == index)
    };
    for index in 0..=frames.len() {
        if let Some(fault) = fault_at(index) {
            match fault {
                Fault::ErrorEvent { kind, message, .. } => {
                    emit(
                        &mut steps,
                        render::error_frame(api, *kind, message, index as u64),
                    );
                    break;
                }
                Fault::Malformed { .. } => emit(&mut steps, render::malformed_frame(api)),
                Fault::Drop { .. } => {
                    steps.push(Step::Hangup);
                    break;
                }
                Fault::Stall { .. } => {
                    steps.push(Step::Stall);
                    break;
                }
            }
        }
        if let Some(frame) = frames.get(index) {
            emit(&mut steps, frame.clone());
        }
    }
    Response::chunked(200, api.content_type(), steps).with_header("cache-control", "no-cache")
}

fn fault_index(fault: &Fault) -> usize {
    match fault {
        Fault::ErrorEvent { after, .. }
        | Fault::Malformed { after }
        | Fault::Drop { after }
        | Fault::Stall { after } => *after,
    }
}

/// Non-streamed Chat Completions answer (for clients that do not stream).
fn chat_completion_json(reply: &Reply, ctx: &render::Ctx<'_>) -> Response {
    let mut text = String::new();
    let mut tool_calls = Vec::new();
    for part in &reply.parts {
        match part {
            Part::Text { chunks } => text.push_str(&chunks.concat()),
            Part::Thinking { .. } => {}
            Part::ToolCall { id, name, argument_chunks } => tool_calls.push(json!({
                "id": id, "type": "function", "function": {"name": name, "arguments": argument_chunks.concat()}
            })),
        }
    }
    let u = reply.effective_usage();
    let mut message = json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { text.into() }, "refusal": null});
    if !tool_calls.is_empty() {
        message["tool_calls"] = tool_calls.into();
    }
    let finish = match reply.stop {
        Stop::Length => "length",
        Stop::Auto if reply.has_tool_calls() => "tool_calls",
        Stop::Auto => "stop",
    };
    Response::json(
        200,
        &json!({
            "id": format!("chatcmpl-fake{}", ctx.seq), "object": "chat.completion", "created": ctx.created, "model": ctx.model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": {"prompt_tokens": u.input + u.cache_read, "completion_tokens": u.output, "total_tokens": u.input + u.cache_read + u.output},
        }),
    )
}

fn http_error_response(api: Api, error: &HttpError) -> Response {
    let status = error.status;
    let default_message = match status {
        401 => "Invalid API key provided.",
        403 => "Permission denied.",
        404 => "The model does not exist or you do not have access to it.",
        429 => "Rate limit reached. Please try again later.",
        529 => "Overloaded",
        500..=599 => "The server had an error while processing your request.",
        _ => "Invalid request.",
    };
    let message = error.message.as_deref().unwrap_or(default_message);
    let body = match api {
        Api::ChatCompletions | Api::Responses => {
            let (kind, code) = match status {
                401 => ("invalid_request_error", json!("invalid_api_key")),
                404 => ("invalid_request_error", json!("model_not_found")),
                429 => ("requests", json!("rate_limit_exceeded")),
                500..=599 => ("server_error", Value::Null),
                _ => ("invalid_request_error", Value::Null),
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
        }
        Api::Anthropic => {
            let kind = match status {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                500..=599 => "api_error",
                _ => "invalid_request_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
        Api::Ollama => json!({"error": message}),
    };
    let mut response = Response::json(status, &body);
    if let Some(retry_after) = &error.retry_after {
        response = response.with_header("retry-after", retry_after);
    }
    response
}

fn model_ids(state: &State) -> Vec<String> {
    if state.options.models.is_empty() {
        vec!["fake-model".to_owned()]
    } else {
        state.options.models.clone()
    }
}

fn models_response(state: &State, request: &Request) -> Response {
    let ids = model_ids(state);
    if request.header("anthropic-version").is_some() {
        let data: Vec<Value> = ids
            .iter()
            .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2026-01-01T00:00:00Z"}))
            .collect();
        return Response::json(
            200,
            &json!({"data": data, "has_more": false, "first_id": ids.first(), "last_id": ids.last()}),
        );
    }
    let data: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "pincer-fakes"}))
        .collect();
    Response::json(200, &json!({"object": "list", "data": data}))
}

fn ollama_tags(state: &State) -> Response {
    let models: Vec<Value> = model_ids(state)
        .iter()
        .map(|id| {
            json!({"name": id, "model": id, "modified_at": "2026-01-01T00:00:00Z", "size": 0,
                   "digest": "0000000000000000000000000000000000000000000000000000000000000000",
                   "details": {"format": "gguf", "family": "fake", "parameter_size": "0B", "quantization_level": "Q4_0"}})
        })
        .collect();
    Response::json(200, &json!({"models": models}))
}

/// `2026-01-02T03:04:05.123456Z` (Ollama's `created_at`).
fn iso8601(since_epoch: Duration) -> String {
    let secs = since_epoch.as_secs();
    let rem = secs % 86_400;
    let (year, month, day) = pincer_backoff::civil_from_days((secs / 86_400) as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since_epoch.subsec_micros()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_dates() {
        assert_eq!(
            iso8601(Duration::from_secs(0)),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(
            iso8601(Duration::from_millis(1_709_251_199_500)),
            "2024-02-29T23:59:59.500000Z"
        );
    }

    #[test]
    fn user_text_from_every_request_shape() {
        assert_eq!(
            last_user_text(&json!({"messages": [{"role": "user", "content": "a"}]})),
            Some("a".into())
        );
        assert_eq!(
            last_user_text(
                &json!({"input": [{"role": "user", "content": [{"type": "input_text", "text": "b"}]}]})
            ),
            Some("b".into())
        );
        assert_eq!(last_user_text(&json!({"input": "c"})), Some("c".into()));
        assert_eq!(last_user_text(&json!({})), None);
    }
}
