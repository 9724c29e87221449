//! One module per wire API. Each builds the HTTP request for a [`CompletionRequest`] and
//! decodes the provider's stream frames into [`ProviderEvent`]s.

pub(crate) mod anthropic_messages;
pub(crate) mod ollama;
pub(crate) mod openai_completions;
pub(crate) mod openai_responses;

use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::ApiKind;
use crate::error::{classify_error_text, classify_http, ErrorKind};
use crate::event::ProviderEvent;
use crate::model::{CompletionRequest, ContentBlock, ToolSpec};
use crate::registry::ResolvedModel;
use crate::sse::SseEvent;

/// How the response body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    Sse,
    Ndjson,
}

/// A ready-to-send request.
pub(crate) struct WireRequest {
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A failure found in the stream or an error body, before provider/model are attached.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct WireError {
    pub kind: ErrorKind,
    pub error_type: Option<String>,
    pub message: String,
}

impl WireError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            error_type: None,
            message: message.into(),
        }
    }

    pub fn malformed(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorKind::Malformed, format!("malformed stream: {what}"))
    }

    /// An error the provider reported inside the stream, classified by type and message.
    pub fn reported(error_type: Option<String>, message: String, default: ErrorKind) -> Self {
        let kind = classify_error_text(error_type.as_deref(), &message).unwrap_or(default);
        Self {
            kind,
            error_type,
            message,
        }
    }
}

/// Whether the decoder saw the provider's end-of-stream marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Finished,
}

/// Turns frames of one response into events.
pub(crate) trait Decoder: Send {
    /// One SSE event (SSE APIs).
    fn on_sse(
        &mut self,
        _event: &SseEvent,
        _out: &mut Vec<ProviderEvent>,
    ) -> Result<Flow, WireError> {
        Ok(Flow::Continue)
    }
    /// One NDJSON line (Ollama).
    fn on_line(&mut self, _line: &str, _out: &mut Vec<ProviderEvent>) -> Result<Flow, WireError> {
        Ok(Flow::Continue)
    }
    /// The body ended without the end marker. Decoders that can finish leniently do so
    /// (returning `Ok(Flow::Finished)`); otherwise the stream was cut.
    fn on_eof(&mut self, _out: &mut Vec<ProviderEvent>) -> Result<Flow, WireError> {
        Err(WireError::new(
            ErrorKind::Network,
            "the stream ended before the provider finished the response",
        ))
    }
}

pub(crate) fn framing(api: &ApiKind) -> Framing {
    if *api == ApiKind::Ollama {
        Framing::Ndjson
    } else {
        Framing::Sse
    }
}

/// Builds the HTTP request for `model`.
pub(crate) fn build_request(
    model: &ResolvedModel,
    request: &CompletionRequest,
) -> Result<WireRequest, WireError> {
    let (path, fields, shape) = match model.api {
        ApiKind::OpenaiCompletions => (
            "/chat/completions",
            openai_completions::body(model, request),
            ToolShape::Nested,
        ),
        ApiKind::OpenaiResponses => (
            "/responses",
            openai_responses::body(model, request),
            ToolShape::Flat,
        ),
        ApiKind::AnthropicMessages => (
            anthropic_path(&model.base_url),
            anthropic_messages::body(model, request),
            ToolShape::Anthropic,
        ),
        ApiKind::Ollama => ("/api/chat", ollama::body(model, request), ToolShape::Nested),
        ApiKind::Unsupported(ref api) => {
            return Err(WireError::new(
                ErrorKind::InvalidRequest,
                format!("unsupported api {api}"),
            ));
        }
    };
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    let key = model.api_key.as_ref().map(|k| k.expose());
    match (&model.api, key) {
        (ApiKind::AnthropicMessages, key) => {
            headers.push(("anthropic-version".to_owned(), "2023-06-01".to_owned()));
            headers.push(("accept".to_owned(), "text/event-stream".to_owned()));
            if let Some(key) = key {
                if model.auth_header {
                    headers.push(("authorization".to_owned(), format!("Bearer {key}")));
                } else {
                    headers.push(("x-api-key".to_owned(), key.to_owned()));
                }
            }
        }
        (ApiKind::Ollama, key) => {
            headers.push(("accept".to_owned(), "application/x-ndjson".to_owned()));
            if let Some(key) = key {
                headers.push(("authorization".to_owned(), format!("Bearer {key}")));
            }
        }
        (_, key) => {
            headers.push(("accept".to_owned(), "text/event-stream".to_owned()));
            if let Some(key) = key {
                headers.push(("authorization".to_owned(), format!("Bearer {key}")));
            }
        }
    }
    for (name, value) in &model.headers {
        headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        headers.push((name.clone(), value.clone()));
    }
    let body = Body {
        fields,
        tools: (!request.tools.is_empty()).then_some(WireTools {
            shape,
            specs: &request.tools,
        }),
    };
    let body = serde_json::to_vec(&body)
        .map_err(|e| WireError::new(ErrorKind::InvalidRequest, e.to_string()))?;
    Ok(WireRequest {
        url: format!("{}{}", model.base_url, path),
        headers,
        body,
    })
}

/// Anthropic's base URL is the host (`https://api.anthropic.com`); tolerate a `/v1` suffix.
fn anthropic_path(base_url: &str) -> &'static str {
    if base_url.ends_with("/v1") {
        "/messages"
    } else {
        "/v1/messages"
    }
}

pub(crate) fn decoder(api: &ApiKind) -> Box<dyn Decoder> {
    match api {
        ApiKind::OpenaiCompletions | ApiKind::Unsupported(_) => {
            Box::<openai_completions::CompletionsDecoder>::default()
        }
        ApiKind::OpenaiResponses => Box::<openai_responses::ResponsesDecoder>::default(),
        ApiKind::AnthropicMessages => Box::<anthropic_messages::MessagesDecoder>::default(),
        ApiKind::Ollama => Box::<ollama::OllamaDecoder>::default(),
    }
}

/// Classifies an HTTP error response from its status and body (every API's error body
/// shape is tried: `{"error":{"type","code","message"}}`, `{"type":"error","error":{…}}`,
/// `{"error":"…"}`).
pub(crate) fn http_error(status: u16, body: &[u8]) -> WireError {
    let text = String::from_utf8_lossy(body);
    let (error_type, message) = match serde_json::from_slice::<Value>(body) {
        Ok(v) => extract_error(&v).unwrap_or_else(|| (None, text.trim().to_owned())),
        Err(_) => (None, text.trim().to_owned()),
    };
    let message = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        message
    };
    WireError {
        kind: classify_http(status, error_type.as_deref(), &message),
        error_type,
        message,
    }
}

/// `(type or code, message)` of a JSON error object in any of the providers' shapes.
pub(crate) fn extract_error(v: &Value) -> Option<(Option<String>, String)> {
    let err = v.get("error")?;
    if let Some(message) = err.as_str() {
        return Some((None, message.to_owned()));
    }
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let error_type = ["type", "code"]
        .iter()
        .filter_map(|k| err.get(*k))
        .find_map(|t| match t {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    Some((error_type, message))
}

/// Pushes a text delta unless the fragment is missing or empty.
pub(crate) fn push_text(out: &mut Vec<ProviderEvent>, text: Option<&str>) {
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        out.push(ProviderEvent::TextDelta {
            text: text.to_owned(),
        });
    }
}

/// Pushes a reasoning delta unless the fragment is missing or empty.
pub(crate) fn push_thinking(out: &mut Vec<ProviderEvent>, text: Option<&str>) {
    if let Some(text) = text.filter(|t| !t.is_empty()) {
        out.push(ProviderEvent::ThinkingDelta {
            text: text.to_owned(),
        });
    }
}

/// How a wire API lists tools.
#[derive(Debug, Clone, Copy)]
enum ToolShape {
    /// `{"function":{"description","name","parameters"},"type":"function"}` (Chat
    /// Completions, Ollama).
    Nested,
    /// `{"description","name","parameters","type":"function"}` (Responses).
    Flat,
    /// `{"description","input_schema","name"}` (Anthropic Messages).
    Anthropic,
}

/// The tool list, serialised straight from the caller's specs. Tool schemas are most of a
/// request's bytes (tens of KB with the built-in tools); copying them into the body's
/// `Value` tree and freeing that copy again on every model call cost more than the rest of
/// the body together. Fields are written in sorted order, as a `Value` object would be.
struct WireTools<'a> {
    shape: ToolShape,
    specs: &'a [ToolSpec],
}

impl Serialize for WireTools<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.specs.len()))?;
        for t in self.specs {
            match self.shape {
                ToolShape::Nested => seq.serialize_element(&NestedTool {
                    function: FlatTool {
                        description: &t.description,
                        name: &t.name,
                        parameters: &t.parameters,
                        r#type: None,
                    },
                    r#type: "function",
                })?,
                ToolShape::Flat => seq.serialize_element(&FlatTool {
                    description: &t.description,
                    name: &t.name,
                    parameters: &t.parameters,
                    r#type: Some("function"),
                })?,
                ToolShape::Anthropic => seq.serialize_element(&AnthropicTool {
                    description: &t.description,
                    input_schema: &t.parameters,
                    name: &t.name,
                })?,
            }
        }
        seq.end()
    }
}

#[derive(Serialize)]
struct NestedTool<'a> {
    function: FlatTool<'a>,
    r#type: &'static str,
}

#[derive(Serialize)]
struct FlatTool<'a> {
    description: &'a str,
    name: &'a str,
    parameters: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    r#type: Option<&'static str>,
}

#[derive(Serialize)]
struct AnthropicTool<'a> {
    description: &'a str,
    input_schema: &'a Value,
    name: &'a str,
}

/// A request body: the API module's fields plus `tools`, merged in key order.
struct Body<'a> {
    fields: Map<String, Value>,
    tools: Option<WireTools<'a>>,
}

impl Serialize for Body<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let extra = usize::from(self.tools.is_some());
        let mut map = serializer.serialize_map(Some(self.fields.len() + extra))?;
        let mut tools = self.tools.as_ref();
        for (key, value) in &self.fields {
            if key.as_str() > "tools" {
                if let Some(t) = tools.take() {
                    map.serialize_entry("tools", t)?;
                }
            }
            map.serialize_entry(key, value)?;
        }
        if let Some(t) = tools {
            map.serialize_entry("tools", t)?;
        }
        map.end()
    }
}

/// The whole JSON body `build_request` sends (unit tests look into it).
#[cfg(test)]
pub(crate) fn body_value(model: &ResolvedModel, request: &CompletionRequest) -> Value {
    match build_request(model, request) {
        Ok(wire) => serde_json::from_slice(&wire.body).unwrap_or(Value::Null),
        Err(_) => Value::Null,
    }
}

/// Parses streamed tool arguments. Empty means no arguments; invalid JSON becomes `{}`
/// (the raw text travels alongside, so the agent can tell the model what went wrong).
pub(crate) fn parse_arguments(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return Value::Object(Default::default());
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => v,
        _ => Value::Object(Default::default()),
    }
}

/// Text of text blocks, joined; images become a placeholder for text-only targets.
pub(crate) fn blocks_text(blocks: &[ContentBlock]) -> String {
    let mut out = String::new();
    for b in blocks {
        match b {
            ContentBlock::Text { text, .. } => out.push_str(text),
            ContentBlock::Image { .. } => out.push_str("[image]"),
            _ => {}
        }
    }
    out
}

/// Parses a JSON frame, mapping failure to a `malformed` error with a short preview.
pub(crate) fn parse_json(data: &str) -> Result<Value, WireError> {
    serde_json::from_str(data).map_err(|e| {
        let preview: String = data.chars().take(120).collect();
        WireError::malformed(format!("{e} in {preview:?}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body is byte for byte what serialising one `Value` object (tools included) gave.
    #[test]
    #[allow(clippy::unwrap_used)]
    fn tools_are_spliced_into_the_body_in_key_order() {
        use serde_json::json;
        let tools = vec![
            ToolSpec {
                name: "read".into(),
                description: "Read a file".into(),
                parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
            },
            ToolSpec {
                name: "exec".into(),
                description: "Run \"it\"".into(),
                parameters: json!({"type": "object"}),
            },
        ];
        let request = CompletionRequest {
            messages: vec![crate::model::Message::user("hi")],
            tools: tools.into(),
            temperature: Some(0.5),
            ..Default::default()
        };
        for (api, shape) in [
            (ApiKind::OpenaiCompletions, "nested"),
            (ApiKind::Ollama, "nested"),
            (ApiKind::OpenaiResponses, "flat"),
            (ApiKind::AnthropicMessages, "anthropic"),
        ] {
            let model = ResolvedModel::new("p", "m", api.clone(), "http://x/v1");
            let sent = build_request(&model, &request).unwrap().body;
            let mut whole: Value = serde_json::from_slice(&sent).unwrap();
            let listed: Vec<Value> = request
                .tools
                .iter()
                .map(|t| match shape {
                    "nested" => json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}),
                    "flat" => json!({"type": "function", "name": t.name, "description": t.description, "parameters": t.parameters}),
                    _ => json!({"name": t.name, "description": t.description, "input_schema": t.parameters}),
                })
                .collect();
            assert_eq!(whole["tools"], Value::Array(listed.clone()), "{api:?}");
            whole["tools"] = Value::Array(listed);
            assert_eq!(
                String::from_utf8(sent).unwrap(),
                serde_json::to_string(&whole).unwrap(),
                "{api:?}"
            );
        }
    }

    #[test]
    fn error_bodies_of_every_shape() {
        let e = http_error(429, br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#);
        assert_eq!(
            (e.kind, e.error_type.as_deref(), e.message.as_str()),
            (ErrorKind::RateLimit, Some("requests"), "Rate limit reached")
        );
        let e = http_error(
            529,
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(
            (e.kind, e.error_type.as_deref()),
            (ErrorKind::Server, Some("overloaded_error"))
        );
        let e = http_error(404, br#"{"error":"model 'llama9' not found"}"#);
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::ModelNotFound, "model 'llama9' not found")
        );
        let e = http_error(502, b"<html>Bad gateway</html>");
        assert_eq!(
            (e.kind, e.message.as_str()),
            (ErrorKind::Server, "<html>Bad gateway</html>")
        );
        assert_eq!(http_error(500, b"").message, "HTTP 500");
    }

    #[test]
    fn arguments_parse_leniently() {
        assert_eq!(parse_arguments(""), serde_json::json!({}));
        assert_eq!(parse_arguments("{\"a\":1}"), serde_json::json!({"a":1}));
        assert_eq!(parse_arguments("{\"a\":"), serde_json::json!({}));
        assert_eq!(parse_arguments("[1]"), serde_json::json!({}));
    }
}
