//! OpenAI-compatible HTTP wire pieces for `/v1/chat/completions`, `/v1/responses` and
//! `/v1/models`: request types with the reference's validation, the model-id → agent
//! mapping, response objects, and the exact SSE framing the official SDKs parse.
//!
//! Chat Completions stream: `data: {chat.completion.chunk}` frames — a role delta first
//! (`{"role":"assistant","content":""}`), content (and tool-call) deltas, a final chunk with
//! an empty delta and `finish_reason`, a usage chunk with `choices: []` when
//! `stream_options.include_usage` (every earlier chunk then carries `"usage": null`), and
//! `data: [DONE]`.
//!
//! Responses stream: `event: <type>` + `data: {…, "sequence_number": n}` frames —
//! `response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added`, `response.output_text.delta`…,
//! `response.output_text.done`, `response.content_part.done`, `response.output_item.done`,
//! then `response.completed` (or `response.incomplete` / `response.failed`), and
//! `data: [DONE]`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Body cap of both endpoints (20 MB).
pub const MAX_BODY_BYTES: usize = 20 * 1024 * 1024;
/// Session-key namespaces callers may not address.
pub const RESERVED_SESSION_PREFIXES: &[&str] = &["subagent:", "cron:", "acp:"];
/// `owned_by` of the listed models.
pub const OWNER: &str = "openclaw";

/// An OpenAI-style error (`{"error":{"message","type","param","code"}}`) with its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiError {
    pub status: u16,
    pub message: String,
    pub kind: &'static str,
    pub param: Option<&'static str>,
    pub code: Option<&'static str>,
}

impl OpenAiError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> OpenAiError {
        OpenAiError {
            status: 400,
            message: message.into(),
            kind: "invalid_request_error",
            param,
            code: None,
        }
    }

    /// The JSON error body.
    pub fn body(&self) -> Value {
        serde_json::json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl std::fmt::Display for OpenAiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.kind, self.message)
    }
}

// ---- model ids ------------------------------------------------------------------------

/// Resolves the agent a request targets: `openclaw`, `openclaw/default` → the default
/// agent; `openclaw/<id>`, `openclaw:<id>`, `agent:<id>` → that agent. The
/// `x-openclaw-agent-id` header, when present, overrides the model. `known` lists the
/// configured agents, default first.
pub fn resolve_agent(
    model: &str,
    header_agent: Option<&str>,
    known: &[String],
) -> Result<String, OpenAiError> {
    let default = known
        .first()
        .map_or(pincer_sessions::DEFAULT_AGENT_ID, String::as_str);
    let not_found = |m: &str| {
        OpenAiError {
        status: 404,
        message: format!(
            "The model `{m}` does not exist. Use \"openclaw\", \"openclaw/default\" or \"openclaw/<agentId>\"."
        ),
        kind: "invalid_request_error",
        param: Some("model"),
        code: Some("model_not_found"),
    }
    };
    let check = |id: &str| {
        let id = pincer_sessions::normalize_agent_id(id);
        if known.contains(&id) {
            Ok(id)
        } else {
            Err(not_found(model))
        }
    };
    if let Some(agent) = header_agent.map(str::trim).filter(|a| !a.is_empty()) {
        return check(agent);
    }
    let m = model.trim();
    match m {
        "openclaw" | "openclaw/default" | "openclaw:default" => Ok(default.to_string()),
        _ => match m
            .strip_prefix("openclaw/")
            .or_else(|| m.strip_prefix("openclaw:"))
            .or_else(|| m.strip_prefix("agent:"))
        {
            Some(id) if !id.is_empty() => check(id),
            _ => Err(not_found(m)),
        },
    }
}

/// Checks an `x-openclaw-session-key` header value.
pub fn check_session_key_header(key: &str) -> Result<String, OpenAiError> {
    let k = key.trim();
    if k.is_empty() {
        return Err(OpenAiError::invalid(
            "x-openclaw-session-key must not be empty",
            None,
        ));
    }
    let lower = k.to_ascii_lowercase();
    let scoped = lower
        .strip_prefix("agent:")
        .and_then(|rest| rest.split_once(':').map(|(_, r)| r))
        .unwrap_or(&lower);
    if RESERVED_SESSION_PREFIXES
        .iter()
        .any(|p| scoped.starts_with(p))
    {
        return Err(OpenAiError::invalid(
            format!(
                "x-openclaw-session-key {k:?} uses a reserved namespace (subagent:, cron:, acp:)"
            ),
            None,
        ));
    }
    Ok(k.to_string())
}

/// One `/v1/models` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelEntry {
    pub id: String,
    pub object: String,
    pub created: i64,
    pub owned_by: String,
}

/// `/v1/models`: `openclaw`, `openclaw/default` and `openclaw/<agentId>` per agent.
pub fn models_list(agents: &[String], created: i64) -> Value {
    let mut ids = vec!["openclaw".to_string(), "openclaw/default".to_string()];
    ids.extend(agents.iter().map(|a| format!("openclaw/{a}")));
    let data: Vec<ModelEntry> = ids
        .into_iter()
        .map(|id| ModelEntry {
            id,
            object: "model".into(),
            created,
            owned_by: OWNER.into(),
        })
        .collect();
    serde_json::json!({"object": "list", "data": data})
}

// ---- shared -----------------------------------------------------------------------------

/// Token counts of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}

/// Why generation stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ToolCalls,
    ContentFilter,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
        }
    }
}

/// Size cap (413) and JSON parsing (400) shared by both endpoints.
fn parse_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, OpenAiError> {
    if body.len() > MAX_BODY_BYTES {
        return Err(OpenAiError {
            status: 413,
            message: format!("request body exceeds {MAX_BODY_BYTES} bytes"),
            kind: "invalid_request_error",
            param: None,
            code: None,
        });
    }
    serde_json::from_slice(body)
        .map_err(|e| OpenAiError::invalid(format!("invalid request body: {e}"), None))
}

fn sse_data(json: &impl Serialize) -> String {
    let body = serde_json::to_string(json).unwrap_or_else(|_| "{}".into());
    format!("data: {body}\n\n")
}

fn sse_event(event: &str, json: &impl Serialize) -> String {
    let body = serde_json::to_string(json).unwrap_or_else(|_| "{}".into());
    format!("event: {event}\ndata: {body}\n\n")
}

/// The final SSE frame of both streams.
pub const SSE_DONE: &str = "data: [DONE]\n\n";
/// Content type of the streams.
pub const SSE_CONTENT_TYPE: &str = "text/event-stream; charset=utf-8";

// ---- chat completions: request -------------------------------------------------------

/// `messages[].content`: a string, an array of parts, or null.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ChatContent {
    Text(String),
    Parts(Vec<ChatContentPart>),
}

/// One content part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatContentPart {
    Text { text: String },
    ImageUrl { image_url: ImageUrl },
    InputAudio { input_audio: Value },
    File { file: Value },
    Refusal { refusal: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    #[serde(default)]
    pub content: Option<ChatContent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
}

impl ChatMessage {
    /// The text of the message (text parts joined).
    pub fn text(&self) -> String {
        match &self.content {
            None => String::new(),
            Some(ChatContent::Text(t)) => t.clone(),
            Some(ChatContent::Parts(parts)) => parts
                .iter()
                .filter_map(|p| match p {
                    ChatContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// A function tool call (requests and responses).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    pub arguments: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// A `/v1/chat/completions` request (fields the endpoint uses; others are accepted and
/// ignored, as OpenAI clients send many).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub tools: Option<Value>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub max_tokens: Option<Value>,
    #[serde(default)]
    pub max_completion_tokens: Option<Value>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub frequency_penalty: Option<f64>,
    #[serde(default)]
    pub presence_penalty: Option<f64>,
    #[serde(default)]
    pub seed: Option<Value>,
    #[serde(default)]
    pub stop: Option<Value>,
}

fn positive_int(v: &Option<Value>, name: &'static str) -> Result<Option<u64>, OpenAiError> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(x) if (1..=(1u64 << 53)).contains(&x) => Ok(Some(x)),
            _ => Err(OpenAiError::invalid(
                format!("{name} must be a positive integer"),
                Some(name),
            )),
        },
        Some(_) => Err(OpenAiError::invalid(
            format!("{name} must be a positive integer"),
            Some(name),
        )),
    }
}

fn in_range(v: Option<f64>, lo: f64, hi: f64, name: &'static str) -> Result<(), OpenAiError> {
    match v {
        Some(x) if !(lo..=hi).contains(&x) => Err(OpenAiError::invalid(
            format!("{name} must be between {lo} and {hi}"),
            Some(name),
        )),
        _ => Ok(()),
    }
}

/// The sampling settings of a validated request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sampling {
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub frequency_penalty: Option<f64>,
    pub presence_penalty: Option<f64>,
    pub seed: Option<i64>,
    pub stop: Vec<String>,
}

/// A chat request reduced to what an agent run needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatTurn {
    /// `system` / `developer` texts (appended to the system prompt).
    pub system: Vec<String>,
    /// Earlier user/assistant/tool messages (context).
    pub history: Vec<ChatMessage>,
    /// The latest user (or tool) message: the current input.
    pub current: ChatMessage,
    pub sampling: Sampling,
    pub stream: bool,
    pub include_usage: bool,
    pub user: Option<String>,
}

impl ChatCompletionRequest {
    /// Parses and validates a body (the reference's 400 rules).
    pub fn parse(body: &[u8]) -> Result<ChatCompletionRequest, OpenAiError> {
        parse_body(body)
    }

    /// Validates sampling fields and splits the conversation.
    pub fn into_turn(self) -> Result<ChatTurn, OpenAiError> {
        let max_completion = positive_int(&self.max_completion_tokens, "max_completion_tokens")?;
        let max_legacy = positive_int(&self.max_tokens, "max_tokens")?;
        in_range(self.temperature, 0.0, 2.0, "temperature")?;
        in_range(self.top_p, 0.0, 1.0, "top_p")?;
        in_range(self.frequency_penalty, -2.0, 2.0, "frequency_penalty")?;
        in_range(self.presence_penalty, -2.0, 2.0, "presence_penalty")?;
        let seed = match &self.seed {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) if n.is_i64() => n.as_i64(),
            Some(_) => {
                return Err(OpenAiError::invalid(
                    "seed must be an integer",
                    Some("seed"),
                ))
            }
        };
        let stop = match &self.stop {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
            Some(Value::Array(items)) if items.len() <= 4 => items
                .iter()
                .map(|i| match i {
                    Value::String(s) if !s.is_empty() => Ok(s.clone()),
                    _ => Err(OpenAiError::invalid(
                        "stop entries must be non-empty strings",
                        Some("stop"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(OpenAiError::invalid(
                    "stop must be a string or an array of at most 4 non-empty strings",
                    Some("stop"),
                ))
            }
        };
        if let Some(tools) = &self.tools {
            let Value::Array(list) = tools else {
                return Err(OpenAiError::invalid(
                    "tools must be an array",
                    Some("tools"),
                ));
            };
            for t in list {
                if t.get("type").and_then(Value::as_str) != Some("function")
                    || t.pointer("/function/name")
                        .and_then(Value::as_str)
                        .is_none_or(str::is_empty)
                {
                    return Err(OpenAiError::invalid(
                        "tools entries must be {\"type\":\"function\",\"function\":{\"name\":…}}",
                        Some("tools"),
                    ));
                }
            }
        }
        if let Some(choice) = &self.tool_choice {
            let ok = match choice {
                Value::String(s) => matches!(s.as_str(), "auto" | "none" | "required"),
                Value::Object(o) => {
                    o.get("type").and_then(Value::as_str) == Some("function")
                        && o.get("function")
                            .and_then(|f| f.get("name"))
                            .and_then(Value::as_str)
                            .is_some_and(|name| {
                                self.tools
                                    .as_ref()
                                    .and_then(Value::as_array)
                                    .is_some_and(|tools| {
                                        tools.iter().any(|t| {
                                            t.pointer("/function/name").and_then(Value::as_str)
                                                == Some(name)
                                        })
                                    })
                            })
                }
                _ => false,
            };
            if !ok {
                return Err(OpenAiError::invalid(
                    "tool_choice must be \"auto\", \"none\", \"required\" or a function named in tools",
                    Some("tool_choice"),
                ));
            }
        }
        let mut system = Vec::new();
        let mut rest = Vec::new();
        for m in self.messages {
            match m.role.as_str() {
                "system" | "developer" => system.push(m.text()),
                "user" | "assistant" | "tool" | "function" => rest.push(m),
                other => {
                    return Err(OpenAiError::invalid(
                        format!("unsupported message role {other:?}"),
                        Some("messages"),
                    ))
                }
            }
        }
        let Some(pos) = rest
            .iter()
            .rposition(|m| matches!(m.role.as_str(), "user" | "tool" | "function"))
        else {
            return Err(OpenAiError::invalid(
                "messages must contain a user message",
                Some("messages"),
            ));
        };
        let current = rest.remove(pos);
        Ok(ChatTurn {
            system,
            history: rest,
            current,
            sampling: Sampling {
                max_tokens: max_completion.or(max_legacy),
                temperature: self.temperature,
                top_p: self.top_p,
                frequency_penalty: self.frequency_penalty,
                presence_penalty: self.presence_penalty,
                seed,
                stop,
            },
            stream: self.stream,
            include_usage: self.stream_options.is_some_and(|o| o.include_usage),
            user: self.user.filter(|u| !u.trim().is_empty()),
        })
    }
}

// ---- chat completions: responses -----------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatUsage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
    pub prompt_tokens_details: PromptTokensDetails,
    pub completion_tokens_details: CompletionTokensDetails,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    pub cached_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompletionTokensDetails {
    pub reasoning_tokens: u64,
}

impl From<Usage> for ChatUsage {
    fn from(u: Usage) -> ChatUsage {
        ChatUsage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            total_tokens: u.input_tokens + u.output_tokens,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: u.cached_tokens,
            },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: u.reasoning_tokens,
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct AssistantMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "<[ToolCall]>::is_empty")]
    tool_calls: &'a [ToolCall],
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Choice<'a> {
    index: u32,
    message: AssistantMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct ChatCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    usage: ChatUsage,
}

/// A non-streaming `chat.completion` object.
pub fn chat_completion(
    id: &str,
    model: &str,
    created: i64,
    content: &str,
    tool_calls: &[ToolCall],
    finish: FinishReason,
    usage: Usage,
) -> Value {
    let c = ChatCompletion {
        id,
        object: "chat.completion",
        created,
        model,
        choices: [Choice {
            index: 0,
            message: AssistantMessage {
                role: "assistant",
                content: Some(content),
                refusal: None,
                tool_calls,
            },
            logprobs: None,
            finish_reason: finish.as_str(),
        }],
        usage: usage.into(),
    };
    serde_json::to_value(c).unwrap_or(Value::Null)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Value,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: i64,
    model: &'a str,
    choices: Vec<ChunkChoice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<ChatUsage>>,
}

/// Frames one `chat.completion.chunk` stream. Every method returns complete SSE frames.
#[derive(Debug, Clone)]
pub struct ChatStream {
    id: String,
    model: String,
    created: i64,
    include_usage: bool,
    tool_calls: u32,
}

impl ChatStream {
    pub fn new(
        id: impl Into<String>,
        model: impl Into<String>,
        created: i64,
        include_usage: bool,
    ) -> ChatStream {
        ChatStream {
            id: id.into(),
            model: model.into(),
            created,
            include_usage,
            tool_calls: 0,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> String {
        sse_data(&Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason: finish,
            }],
            usage: self.include_usage.then_some(None),
        })
    }

    /// The first frame: the assistant role.
    pub fn role(&self) -> String {
        self.chunk(
            serde_json::json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        )
    }

    /// A content delta (empty deltas produce no frame).
    pub fn content(&self, delta: &str) -> Option<String> {
        (!delta.is_empty()).then(|| self.chunk(serde_json::json!({"content": delta}), None))
    }

    /// Starts a tool call; returns its index and the frame.
    pub fn tool_call_start(&mut self, call_id: &str, name: &str) -> (u32, String) {
        let index = self.tool_calls;
        self.tool_calls += 1;
        let frame = self.chunk(
            serde_json::json!({"tool_calls": [{"index": index, "id": call_id, "type": "function",
                "function": {"name": name, "arguments": ""}}]}),
            None,
        );
        (index, frame)
    }

    /// An arguments fragment of tool call `index`.
    pub fn tool_call_arguments(&self, index: u32, fragment: &str) -> String {
        self.chunk(
            serde_json::json!({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]}),
            None,
        )
    }

    /// The last content frame: empty delta with the finish reason.
    pub fn finish(&self, reason: FinishReason) -> String {
        self.chunk(serde_json::json!({}), Some(reason.as_str()))
    }

    /// The usage frame (`choices: []`), when `stream_options.include_usage` was asked for.
    pub fn usage(&self, usage: Usage) -> Option<String> {
        self.include_usage.then(|| {
            sse_data(&Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: Vec::new(),
                usage: Some(Some(usage.into())),
            })
        })
    }

    /// An in-stream error (then send [`SSE_DONE`]).
    pub fn error(&self, message: &str, kind: &str) -> String {
        sse_data(
            &serde_json::json!({"error": {"message": message, "type": kind, "param": null, "code": null}}),
        )
    }

    /// The whole stream of a finished text reply (convenience for tests and replays).
    pub fn complete_text(
        &mut self,
        deltas: &[&str],
        finish: FinishReason,
        usage: Usage,
    ) -> Vec<String> {
        let mut out = vec![self.role()];
        out.extend(deltas.iter().filter_map(|d| self.content(d)));
        out.push(self.finish(finish));
        out.extend(self.usage(usage));
        out.push(SSE_DONE.to_string());
        out
    }
}

// ---- responses: request ----------------------------------------------------------------

/// `/v1/responses` `input`: a string or items.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ResponsesInput {
    Text(String),
    Items(Vec<Value>),
}

/// A `/v1/responses` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResponsesRequest {
    pub model: String,
    pub input: ResponsesInput,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub tools: Option<Value>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub max_output_tokens: Option<Value>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub store: Option<bool>,
}

/// A responses request reduced to an agent turn.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponsesTurn {
    pub system: Vec<String>,
    /// Earlier messages as (role, text).
    pub history: Vec<(String, String)>,
    /// The current input text (latest user message or function output).
    pub current: String,
    /// Set when the current input is a tool result.
    pub call_id: Option<String>,
    pub max_output_tokens: Option<u64>,
    pub stream: bool,
    pub user: Option<String>,
    pub previous_response_id: Option<String>,
}

fn item_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| match p.get("type").and_then(Value::as_str) {
                Some("input_text" | "output_text" | "text") => {
                    p.get("text").and_then(Value::as_str)
                }
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

impl ResponsesRequest {
    pub fn parse(body: &[u8]) -> Result<ResponsesRequest, OpenAiError> {
        parse_body(body)
    }

    pub fn into_turn(self) -> Result<ResponsesTurn, OpenAiError> {
        in_range(self.temperature, 0.0, 2.0, "temperature")?;
        in_range(self.top_p, 0.0, 1.0, "top_p")?;
        let max_output_tokens = positive_int(&self.max_output_tokens, "max_output_tokens")?;
        let mut system: Vec<String> = self
            .instructions
            .into_iter()
            .filter(|s| !s.trim().is_empty())
            .collect();
        let mut turns: Vec<(String, String, Option<String>)> = Vec::new();
        match self.input {
            ResponsesInput::Text(t) => turns.push(("user".into(), t, None)),
            ResponsesInput::Items(items) => {
                for item in items {
                    let kind = item
                        .get("type")
                        .and_then(Value::as_str)
                        .unwrap_or("message");
                    match kind {
                        "message" => {
                            let role = item.get("role").and_then(Value::as_str).unwrap_or("");
                            let text = item.get("content").map(item_text).unwrap_or_default();
                            match role {
                                "system" | "developer" => system.push(text),
                                "user" | "assistant" => turns.push((role.into(), text, None)),
                                other => {
                                    return Err(OpenAiError::invalid(
                                        format!("unsupported input message role {other:?}"),
                                        Some("input"),
                                    ))
                                }
                            }
                        }
                        "function_call_output" => {
                            let call_id = item.get("call_id").and_then(Value::as_str).unwrap_or("");
                            if call_id.is_empty() {
                                return Err(OpenAiError::invalid(
                                    "function_call_output needs call_id",
                                    Some("input"),
                                ));
                            }
                            let output = match item.get("output") {
                                Some(Value::String(s)) => s.clone(),
                                Some(other) => item_text(other),
                                None => String::new(),
                            };
                            turns.push(("tool".into(), output, Some(call_id.into())));
                        }
                        "function_call" | "reasoning" | "item_reference" => {}
                        other => {
                            return Err(OpenAiError::invalid(
                                format!("unsupported input item type {other:?}"),
                                Some("input"),
                            ))
                        }
                    }
                }
            }
        }
        let Some(pos) = turns
            .iter()
            .rposition(|(r, _, _)| r == "user" || r == "tool")
        else {
            return Err(OpenAiError::invalid(
                "input must contain a user message or a function_call_output",
                Some("input"),
            ));
        };
        let (_, current, call_id) = turns.remove(pos);
        Ok(ResponsesTurn {
            system,
            history: turns.into_iter().map(|(r, t, _)| (r, t)).collect(),
            current,
            call_id,
            max_output_tokens,
            stream: self.stream,
            user: self.user.filter(|u| !u.trim().is_empty()),
            previous_response_id: self.previous_response_id,
        })
    }
}

// ---- responses: objects and stream -----------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct ResponsesUsage {
    input_tokens: u64,
    input_tokens_details: PromptTokensDetails,
    output_tokens: u64,
    output_tokens_details: CompletionTokensDetails,
    total_tokens: u64,
}

impl From<Usage> for ResponsesUsage {
    fn from(u: Usage) -> Self {
        ResponsesUsage {
            input_tokens: u.input_tokens,
            input_tokens_details: PromptTokensDetails {
                cached_tokens: u.cached_tokens,
            },
            output_tokens: u.output_tokens,
            output_tokens_details: CompletionTokensDetails {
                reasoning_tokens: u.reasoning_tokens,
            },
            total_tokens: u.input_tokens + u.output_tokens,
        }
    }
}

/// Terminal state of a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseEnd {
    Completed,
    /// Cut at the output budget (`incomplete_details.reason = "max_output_tokens"`).
    Incomplete,
    Failed {
        code: String,
        message: String,
    },
}

/// Frames one Responses API stream and builds its `response` objects.
#[derive(Debug, Clone)]
pub struct ResponsesStream {
    id: String,
    model: String,
    created_at: i64,
    seq: u64,
    /// Output items so far (JSON), in order.
    items: Vec<Value>,
    /// The open message item: (output index, item id, text so far).
    open: Option<(usize, String, String)>,
    instructions: Option<String>,
    previous_response_id: Option<String>,
    max_output_tokens: Option<u64>,
    user: Option<String>,
}

impl ResponsesStream {
    pub fn new(
        id: impl Into<String>,
        model: impl Into<String>,
        created_at: i64,
    ) -> ResponsesStream {
        ResponsesStream {
            id: id.into(),
            model: model.into(),
            created_at,
            seq: 0,
            items: Vec::new(),
            open: None,
            instructions: None,
            previous_response_id: None,
            max_output_tokens: None,
            user: None,
        }
    }

    /// Echoes request fields in the `response` objects.
    pub fn with_request(
        mut self,
        turn: &ResponsesTurn,
        instructions: Option<String>,
    ) -> ResponsesStream {
        self.instructions = instructions;
        self.previous_response_id
            .clone_from(&turn.previous_response_id);
        self.max_output_tokens = turn.max_output_tokens;
        self.user.clone_from(&turn.user);
        self
    }

    fn frame(&mut self, kind: &str, mut fields: serde_json::Map<String, Value>) -> String {
        let mut obj = serde_json::Map::new();
        obj.insert("type".into(), Value::from(kind));
        obj.insert("sequence_number".into(), Value::from(self.seq));
        self.seq += 1;
        obj.append(&mut fields);
        sse_event(kind, &Value::Object(obj))
    }

    /// The `response` object in a state.
    pub fn response(&self, status: &str, usage: Option<Usage>, end: Option<&ResponseEnd>) -> Value {
        let (error, incomplete) = match end {
            Some(ResponseEnd::Failed { code, message }) => (
                serde_json::json!({"code": code, "message": message}),
                Value::Null,
            ),
            Some(ResponseEnd::Incomplete) => (
                Value::Null,
                serde_json::json!({"reason": "max_output_tokens"}),
            ),
            _ => (Value::Null, Value::Null),
        };
        let usage = usage.map_or(Value::Null, |u| {
            serde_json::to_value(ResponsesUsage::from(u)).unwrap_or(Value::Null)
        });
        // serde_json::json! keeps the documented field set; order is irrelevant to clients.
        serde_json::json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": incomplete,
            "instructions": self.instructions,
            "max_output_tokens": self.max_output_tokens,
            "model": self.model,
            "output": self.items,
            "parallel_tool_calls": true,
            "previous_response_id": self.previous_response_id,
            "reasoning": {"effort": null, "summary": null},
            "store": false,
            "temperature": null,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": null,
            "truncation": "disabled",
            "usage": usage,
            "user": self.user,
            "metadata": {},
        })
    }

    /// `response.created` then `response.in_progress`.
    pub fn start(&mut self) -> Vec<String> {
        let created = self.response("in_progress", None, None);
        let a = self.frame("response.created", obj([("response", created.clone())]));
        let b = self.frame("response.in_progress", obj([("response", created)]));
        vec![a, b]
    }

    fn message_item(id: &str, status: &str, text: Option<&str>) -> Value {
        let content = match text {
            Some(t) => {
                serde_json::json!([{"type": "output_text", "text": t, "annotations": [], "logprobs": []}])
            }
            None => serde_json::json!([]),
        };
        serde_json::json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
    }

    /// Opens the assistant message item: `output_item.added` + `content_part.added`.
    pub fn open_message(&mut self) -> Vec<String> {
        let index = self.items.len();
        let item_id = format!("msg_{}_{}", self.id.trim_start_matches("resp_"), index);
        self.items
            .push(Self::message_item(&item_id, "in_progress", None));
        self.open = Some((index, item_id.clone(), String::new()));
        let added = self.frame(
            "response.output_item.added",
            obj([
                ("output_index", index.into()),
                ("item", Self::message_item(&item_id, "in_progress", None)),
            ]),
        );
        let part = self.frame(
            "response.content_part.added",
            obj([
                ("item_id", item_id.into()),
                ("output_index", index.into()),
                ("content_index", 0.into()),
                ("part", serde_json::json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []})),
            ]),
        );
        vec![added, part]
    }

    /// A text delta (opens the message first when needed).
    pub fn text_delta(&mut self, delta: &str) -> Vec<String> {
        let mut out = Vec::new();
        if delta.is_empty() {
            return out;
        }
        if self.open.is_none() {
            out.extend(self.open_message());
        }
        let Some((index, item_id, text)) = self.open.as_mut() else {
            return out;
        };
        text.push_str(delta);
        let (index, item_id) = (*index, item_id.clone());
        out.push(self.frame(
            "response.output_text.delta",
            obj([
                ("item_id", item_id.into()),
                ("output_index", index.into()),
                ("content_index", 0.into()),
                ("delta", delta.into()),
                ("logprobs", Value::Array(Vec::new())),
            ]),
        ));
        out
    }

    /// Closes the message: `output_text.done`, `content_part.done`, `output_item.done`.
    pub fn close_message(&mut self, status: &str) -> Vec<String> {
        let Some((index, item_id, text)) = self.open.take() else {
            return Vec::new();
        };
        let done_item = Self::message_item(&item_id, status, Some(&text));
        if let Some(slot) = self.items.get_mut(index) {
            *slot = done_item.clone();
        }
        vec![
            self.frame(
                "response.output_text.done",
                obj([
                    ("item_id", item_id.clone().into()),
                    ("output_index", index.into()),
                    ("content_index", 0.into()),
                    ("text", text.clone().into()),
                    ("logprobs", Value::Array(Vec::new())),
                ]),
            ),
            self.frame(
                "response.content_part.done",
                obj([
                    ("item_id", item_id.into()),
                    ("output_index", index.into()),
                    ("content_index", 0.into()),
                    ("part", serde_json::json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})),
                ]),
            ),
            self.frame("response.output_item.done", obj([("output_index", index.into()), ("item", done_item)])),
        ]
    }

    /// A complete client function call item (added, arguments delta, arguments done, done).
    pub fn function_call(&mut self, call_id: &str, name: &str, arguments: &str) -> Vec<String> {
        let mut out = self.close_message("completed");
        let index = self.items.len();
        let item_id = format!("fc_{}_{}", self.id.trim_start_matches("resp_"), index);
        let item = |status: &str, args: &str| {
            serde_json::json!({"id": item_id, "type": "function_call", "status": status,
                "call_id": call_id, "name": name, "arguments": args})
        };
        self.items.push(item("completed", arguments));
        out.push(self.frame(
            "response.output_item.added",
            obj([
                ("output_index", index.into()),
                ("item", item("in_progress", "")),
            ]),
        ));
        out.push(self.frame(
            "response.function_call_arguments.delta",
            obj([
                ("item_id", item_id.clone().into()),
                ("output_index", index.into()),
                ("delta", arguments.into()),
            ]),
        ));
        out.push(self.frame(
            "response.function_call_arguments.done",
            obj([
                ("item_id", item_id.clone().into()),
                ("output_index", index.into()),
                ("arguments", arguments.into()),
            ]),
        ));
        out.push(self.frame(
            "response.output_item.done",
            obj([
                ("output_index", index.into()),
                ("item", item("completed", arguments)),
            ]),
        ));
        out
    }

    /// The terminal frames: closes an open message, then `response.completed` /
    /// `response.incomplete` / `response.failed`, then `data: [DONE]`.
    pub fn end(&mut self, end: ResponseEnd, usage: Usage) -> Vec<String> {
        let item_status = if end == ResponseEnd::Incomplete {
            "incomplete"
        } else {
            "completed"
        };
        let mut out = self.close_message(item_status);
        let (kind, status) = match &end {
            ResponseEnd::Completed => ("response.completed", "completed"),
            ResponseEnd::Incomplete => ("response.incomplete", "incomplete"),
            ResponseEnd::Failed { .. } => ("response.failed", "failed"),
        };
        let response = self.response(status, Some(usage), Some(&end));
        out.push(self.frame(kind, obj([("response", response)])));
        out.push(SSE_DONE.to_string());
        out
    }

    /// The non-streaming response object for the same content.
    pub fn final_object(&mut self, end: ResponseEnd, usage: Usage) -> Value {
        let item_status = if end == ResponseEnd::Incomplete {
            "incomplete"
        } else {
            "completed"
        };
        let _ = self.close_message(item_status);
        let status = match end {
            ResponseEnd::Completed => "completed",
            ResponseEnd::Incomplete => "incomplete",
            ResponseEnd::Failed { .. } => "failed",
        };
        self.response(status, Some(usage), Some(&end))
    }
}

fn obj<const N: usize>(fields: [(&str, Value); N]) -> serde_json::Map<String, Value> {
    fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use serde_json::json;

    use super::*;

    fn agents() -> Vec<String> {
        vec!["main".into(), "research".into()]
    }

    fn data(frame: &str) -> Value {
        let line = frame
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap();
        serde_json::from_str(line).unwrap()
    }

    #[test]
    fn model_ids_map_to_agents() {
        let a = agents();
        assert_eq!(resolve_agent("openclaw", None, &a).unwrap(), "main");
        assert_eq!(resolve_agent("openclaw/default", None, &a).unwrap(), "main");
        assert_eq!(
            resolve_agent("openclaw/research", None, &a).unwrap(),
            "research"
        );
        assert_eq!(
            resolve_agent("openclaw:Research", None, &a).unwrap(),
            "research"
        );
        assert_eq!(
            resolve_agent("agent:research", None, &a).unwrap(),
            "research"
        );
        assert_eq!(
            resolve_agent("gpt-4o", Some("research"), &a).unwrap(),
            "research"
        );
        let e = resolve_agent("openclaw/ghost", None, &a).unwrap_err();
        assert_eq!((e.status, e.code), (404, Some("model_not_found")));
        assert_eq!(e.body()["error"]["param"], "model");
        assert!(resolve_agent("gpt-4o", None, &a).is_err());
        let list = models_list(&a, 1_700_000_000);
        let ids: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            ids,
            [
                "openclaw",
                "openclaw/default",
                "openclaw/main",
                "openclaw/research"
            ]
        );
        assert_eq!(
            list["data"][0],
            json!({"id": "openclaw", "object": "model", "created": 1_700_000_000, "owned_by": "openclaw"})
        );
    }

    #[test]
    fn reserved_session_namespaces_are_refused() {
        assert!(check_session_key_header("agent:main:cron:abc").is_err());
        assert!(check_session_key_header("subagent:x").is_err());
        assert!(check_session_key_header("ACP:x").is_err());
        assert_eq!(
            check_session_key_header(" my-app:conv-1 ").unwrap(),
            "my-app:conv-1"
        );
    }

    #[test]
    fn chat_requests_validate_like_the_reference() {
        let req = |v: Value| {
            ChatCompletionRequest::parse(v.to_string().as_bytes())
                .and_then(ChatCompletionRequest::into_turn)
        };
        let turn = req(json!({"model": "openclaw", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "system", "content": "Be brief"},
                         {"role": "user", "content": "hi"},
                         {"role": "assistant", "content": "hello"},
                         {"role": "user", "content": [{"type": "text", "text": "sum"}, {"type": "text", "text": "it up"}]}],
            "max_tokens": 100, "max_completion_tokens": 50, "stop": ["\n\n"], "seed": 7})).unwrap();
        assert_eq!(turn.system, ["Be brief"]);
        assert_eq!(turn.history.len(), 2);
        assert_eq!(turn.current.text(), "sum\nit up");
        assert!(turn.stream && turn.include_usage);
        assert_eq!(turn.sampling.max_tokens, Some(50));
        assert_eq!(turn.sampling.stop, ["\n\n"]);
        for (bad, param) in [
            (
                json!({"model": "openclaw", "messages": [{"role": "user", "content": "x"}], "temperature": 3}),
                "temperature",
            ),
            (
                json!({"model": "openclaw", "messages": [{"role": "user", "content": "x"}], "top_p": -0.1}),
                "top_p",
            ),
            (
                json!({"model": "openclaw", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}),
                "max_tokens",
            ),
            (
                json!({"model": "openclaw", "messages": [{"role": "user", "content": "x"}], "seed": 1.5}),
                "seed",
            ),
            (
                json!({"model": "openclaw", "messages": [{"role": "user", "content": "x"}], "stop": ["a","b","c","d","e"]}),
                "stop",
            ),
            (
                json!({"model": "openclaw", "messages": [{"role": "user", "content": "x"}], "tools": {}}),
                "tools",
            ),
            (
                json!({"model": "openclaw", "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
                "tool_choice",
            ),
            (
                json!({"model": "openclaw", "messages": [{"role": "assistant", "content": "x"}]}),
                "messages",
            ),
        ] {
            let e = req(bad.clone()).unwrap_err();
            assert_eq!(
                (e.status, e.kind, e.param),
                (400, "invalid_request_error", Some(param)),
                "{bad}"
            );
        }
        assert!(ChatCompletionRequest::parse(b"{not json")
            .unwrap_err()
            .message
            .starts_with("invalid request body"));
    }

    #[test]
    fn chat_stream_frames_field_by_field() {
        let mut s = ChatStream::new("chatcmpl-abc", "openclaw/default", 1_700_000_000, true);
        let frames = s.complete_text(
            &["Hel", "", "lo"],
            FinishReason::Stop,
            Usage {
                input_tokens: 12,
                output_tokens: 3,
                cached_tokens: 2,
                reasoning_tokens: 0,
            },
        );
        assert_eq!(frames.len(), 6);
        for f in &frames {
            assert!(
                f.starts_with("data: ") && f.ends_with("\n\n") && !f.contains("event:"),
                "{f:?}"
            );
        }
        let role = data(&frames[0]);
        assert_eq!(role["id"], "chatcmpl-abc");
        assert_eq!(role["object"], "chat.completion.chunk");
        assert_eq!(role["created"], 1_700_000_000);
        assert_eq!(role["model"], "openclaw/default");
        assert_eq!(
            role["choices"],
            json!([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null}, "logprobs": null, "finish_reason": null}])
        );
        assert_eq!(role["usage"], Value::Null);
        assert!(role.as_object().unwrap().contains_key("usage"));
        assert_eq!(
            data(&frames[1])["choices"][0]["delta"],
            json!({"content": "Hel"})
        );
        assert_eq!(
            data(&frames[2])["choices"][0]["delta"],
            json!({"content": "lo"})
        );
        let fin = data(&frames[3]);
        assert_eq!(fin["choices"][0]["delta"], json!({}));
        assert_eq!(fin["choices"][0]["finish_reason"], "stop");
        let usage = data(&frames[4]);
        assert_eq!(usage["choices"], json!([]));
        assert_eq!(
            usage["usage"],
            json!({"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
            "prompt_tokens_details": {"cached_tokens": 2}, "completion_tokens_details": {"reasoning_tokens": 0}})
        );
        assert_eq!(frames[5], "data: [DONE]\n\n");
        // Without include_usage there is no usage key at all and no usage frame.
        let mut plain = ChatStream::new("chatcmpl-x", "openclaw", 1, false);
        let frames = plain.complete_text(&["a"], FinishReason::Length, Usage::default());
        assert_eq!(frames.len(), 4);
        assert!(!data(&frames[0]).as_object().unwrap().contains_key("usage"));
        assert_eq!(data(&frames[2])["choices"][0]["finish_reason"], "length");
        // Tool calls.
        let (i, start) = plain.tool_call_start("call_1", "lookup");
        assert_eq!(i, 0);
        assert_eq!(
            data(&start)["choices"][0]["delta"],
            json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}]})
        );
        assert_eq!(
            data(&plain.tool_call_arguments(0, "{\"q\":"))["choices"][0]["delta"]["tool_calls"][0]
                ["function"]["arguments"],
            "{\"q\":"
        );
        assert_eq!(
            data(&plain.finish(FinishReason::ToolCalls))["choices"][0]["finish_reason"],
            "tool_calls"
        );
        assert_eq!(
            data(&plain.error("boom", "api_error"))["error"]["type"],
            "api_error"
        );
    }

    #[test]
    fn non_streaming_chat_completion_object() {
        let v = chat_completion(
            "chatcmpl-1",
            "openclaw",
            5,
            "Hi!",
            &[],
            FinishReason::Stop,
            Usage {
                input_tokens: 4,
                output_tokens: 2,
                ..Usage::default()
            },
        );
        assert_eq!(
            v,
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 5, "model": "openclaw",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!", "refusal": null}, "logprobs": null, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6, "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}}})
        );
    }

    #[test]
    fn responses_requests_split_items() {
        let r = ResponsesRequest::parse(json!({"model": "openclaw", "instructions": "Be kind", "input": [
            {"type": "message", "role": "developer", "content": "Use metric units"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
            {"type": "function_call", "call_id": "c1", "name": "w", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "{\"t\":21}"},
            {"type": "reasoning", "summary": []}
        ]}).to_string().as_bytes()).unwrap().into_turn().unwrap();
        assert_eq!(r.system, ["Be kind", "Use metric units"]);
        assert_eq!(r.current, "{\"t\":21}");
        assert_eq!(r.call_id.as_deref(), Some("c1"));
        assert_eq!(r.history, [("user".to_string(), "weather?".to_string())]);
        let s =
            ResponsesRequest::parse(br#"{"model":"openclaw","input":"hi","max_output_tokens":0}"#)
                .unwrap();
        assert_eq!(s.into_turn().unwrap_err().param, Some("max_output_tokens"));
        assert!(ResponsesRequest::parse(
            br#"{"model":"openclaw","input":[{"type":"computer_call"}]}"#
        )
        .unwrap()
        .into_turn()
        .is_err());
    }

    #[test]
    fn responses_stream_frames_field_by_field() {
        let mut s = ResponsesStream::new("resp_abc", "openclaw", 1_700_000_000);
        let mut frames = s.start();
        frames.extend(s.text_delta("Hel"));
        frames.extend(s.text_delta("lo"));
        frames.extend(s.end(
            ResponseEnd::Completed,
            Usage {
                input_tokens: 9,
                output_tokens: 2,
                ..Usage::default()
            },
        ));
        let kinds: Vec<String> = frames
            .iter()
            .filter_map(|f| {
                f.strip_prefix("event: ")
                    .map(|r| r.lines().next().unwrap().to_string())
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        assert_eq!(frames.last().unwrap(), "data: [DONE]\n\n");
        let events: Vec<Value> = frames[..frames.len() - 1].iter().map(|f| data(f)).collect();
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], i as u64);
            assert_eq!(e["type"], kinds[i]);
        }
        let created = &events[0]["response"];
        assert_eq!(created["id"], "resp_abc");
        assert_eq!(created["object"], "response");
        assert_eq!(created["status"], "in_progress");
        assert_eq!(created["output"], json!([]));
        assert_eq!(created["created_at"], 1_700_000_000);
        assert_eq!(
            events[2]["item"],
            json!({"id": "msg_abc_0", "type": "message", "status": "in_progress", "role": "assistant", "content": []})
        );
        assert_eq!(events[2]["output_index"], 0);
        assert_eq!(
            events[3]["part"],
            json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []})
        );
        assert_eq!(
            (
                events[3]["item_id"].as_str(),
                events[3]["content_index"].as_u64()
            ),
            (Some("msg_abc_0"), Some(0))
        );
        assert_eq!(events[4]["delta"], "Hel");
        assert_eq!(events[4]["logprobs"], json!([]));
        assert_eq!(events[6]["text"], "Hello");
        assert_eq!(events[8]["item"]["content"][0]["text"], "Hello");
        assert_eq!(events[8]["item"]["status"], "completed");
        let done = &events[9]["response"];
        assert_eq!(done["status"], "completed");
        assert_eq!(done["output"][0]["content"][0]["text"], "Hello");
        assert_eq!(
            done["usage"],
            json!({"input_tokens": 9, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 11})
        );
        assert_eq!(done["error"], Value::Null);
        // Truncated and failed endings.
        let mut t = ResponsesStream::new("resp_t", "openclaw", 1);
        t.start();
        t.text_delta("par");
        let end = t.end(ResponseEnd::Incomplete, Usage::default());
        let inc = data(&end[end.len() - 2]);
        assert_eq!(inc["type"], "response.incomplete");
        assert_eq!(
            inc["response"]["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(inc["response"]["output"][0]["status"], "incomplete");
        let mut f = ResponsesStream::new("resp_f", "openclaw", 1);
        f.start();
        let end = f.end(
            ResponseEnd::Failed {
                code: "server_error".into(),
                message: "agent run failed".into(),
            },
            Usage::default(),
        );
        let failed = data(&end[0]);
        assert_eq!(failed["type"], "response.failed");
        assert_eq!(
            failed["response"]["error"],
            json!({"code": "server_error", "message": "agent run failed"})
        );
        // Function calls.
        let mut c = ResponsesStream::new("resp_c", "openclaw", 1);
        c.start();
        let fc = c.function_call("call_9", "lookup", "{\"q\":1}");
        assert_eq!(data(&fc[0])["item"]["type"], "function_call");
        assert_eq!(data(&fc[2])["arguments"], "{\"q\":1}");
        let obj = c.final_object(ResponseEnd::Completed, Usage::default());
        assert_eq!(obj["output"][0]["call_id"], "call_9");
    }
}
