//! Ollama native chat (`POST {baseUrl}/api/chat`, `stream: true`; base URL without `/v1`).
//!
//! Stream: newline-delimited JSON objects `{"model","created_at","message":{"role",
//! "content","thinking"?,"tool_calls"?},"done":false}`; tool calls arrive whole (arguments
//! as a JSON object, not a string). The last line has `"done":true`, `done_reason` and the
//! counters `prompt_eval_count` / `eval_count`. Failures mid-stream are `{"error":"…"}`.

use serde_json::{json, Map, Value};

use super::{blocks_text, parse_json, push_text, push_thinking, Decoder, Flow, WireError};
use crate::error::ErrorKind;
use crate::event::ProviderEvent;
use crate::model::{CompletionRequest, ContentBlock, Message, StopReason, ThinkingLevel, Usage};
use crate::registry::{ResolvedModel, DEFAULT_CONTEXT_WINDOW};

/// The request body without its tool list (see [`super::Body`]).
pub(crate) fn body(model: &ResolvedModel, request: &CompletionRequest) -> Map<String, Value> {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = request.system_prompt.as_deref().filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &request.messages {
        match message {
            Message::User(user) => {
                let blocks = user.content.blocks();
                let images: Vec<&str> = blocks
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::Image { data, .. } => Some(data.as_str()),
                        _ => None,
                    })
                    .collect();
                let text: String = blocks
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::Text { text, .. } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                let mut m = json!({"role": "user", "content": text});
                if !images.is_empty() {
                    m["images"] = json!(images);
                }
                messages.push(m);
            }
            Message::Assistant(assistant) => {
                let text = assistant.text();
                let tool_calls: Vec<Value> = assistant
                    .tool_calls()
                    .map(|(_, name, arguments)| json!({"function": {"name": name, "arguments": arguments}}))
                    .collect();
                if text.is_empty() && tool_calls.is_empty() {
                    continue;
                }
                let mut m = json!({"role": "assistant", "content": text});
                if !tool_calls.is_empty() {
                    m["tool_calls"] = tool_calls.into();
                }
                messages.push(m);
            }
            Message::ToolResult(result) => messages.push(json!({
                "role": "tool", "content": blocks_text(&result.content), "tool_name": result.tool_name,
            })),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), model.model.clone().into());
    body.insert("messages".into(), messages.into());
    body.insert("stream".into(), true.into());
    if model.reasoning {
        body.insert(
            "think".into(),
            (request.thinking != ThinkingLevel::Off).into(),
        );
    }
    let mut options = Map::new();
    options.insert(
        "num_predict".into(),
        request.max_tokens.unwrap_or(model.max_tokens).into(),
    );
    if let Some(t) = request.temperature {
        options.insert("temperature".into(), json!(t));
    }
    // Ollama's default context is small and silently truncates long prompts; a configured
    // window is passed on (the generic default would over-allocate on small GPUs).
    if model.context_window != DEFAULT_CONTEXT_WINDOW {
        options.insert("num_ctx".into(), model.context_window.into());
    }
    body.insert("options".into(), options.into());
    body
}

#[derive(Debug, Default)]
pub(crate) struct OllamaDecoder {
    started: bool,
    tool_calls: usize,
}

impl Decoder for OllamaDecoder {
    fn on_line(&mut self, line: &str, out: &mut Vec<ProviderEvent>) -> Result<Flow, WireError> {
        let v = parse_json(line)?;
        if let Some(error) = v.get("error") {
            let message = error
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| error.to_string());
            return Err(WireError::reported(None, message, ErrorKind::Server));
        }
        if !v.is_object() {
            return Err(WireError::malformed("line is not a JSON object"));
        }
        if !self.started {
            self.started = true;
            out.push(ProviderEvent::ResponseStart { response_id: None });
        }
        let message = &v["message"];
        push_thinking(out, message["thinking"].as_str());
        push_text(out, message["content"].as_str());
        if let Some(calls) = message["tool_calls"].as_array() {
            for call in calls {
                let index = self.tool_calls;
                self.tool_calls += 1;
                let function = &call["function"];
                let name = function["name"].as_str().unwrap_or_default().to_owned();
                let id = call["id"]
                    .as_str()
                    .filter(|s| !s.is_empty())
                    .map_or_else(|| format!("call_{index}"), str::to_owned);
                let arguments = match &function["arguments"] {
                    Value::Object(map) => Value::Object(map.clone()),
                    // Some models return the arguments JSON-encoded in a string.
                    Value::String(raw) => super::parse_arguments(raw),
                    _ => json!({}),
                };
                let raw = arguments.to_string();
                out.push(ProviderEvent::ToolCallStart {
                    index,
                    id: id.clone(),
                    name: name.clone(),
                });
                out.push(ProviderEvent::ToolCallArgsDelta {
                    index,
                    delta: raw.clone(),
                });
                out.push(ProviderEvent::ToolCallEnd {
                    index,
                    id,
                    name,
                    arguments,
                    raw_arguments: raw,
                });
            }
        }
        if v["done"].as_bool() == Some(true) {
            let input = v["prompt_eval_count"].as_u64().unwrap_or(0);
            let output = v["eval_count"].as_u64().unwrap_or(0);
            out.push(ProviderEvent::Usage(Usage::new(input, output, 0, 0)));
            let stop_reason = match v["done_reason"].as_str() {
                Some("length") => StopReason::Length,
                _ if self.tool_calls > 0 => StopReason::ToolUse,
                _ => StopReason::Stop,
            };
            out.push(ProviderEvent::Done { stop_reason });
            return Ok(Flow::Finished);
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::ApiKind;

    #[test]
    fn request_shape() {
        let mut model = ResolvedModel::new(
            "ollama",
            "llama3.1:8b",
            ApiKind::Ollama,
            "http://127.0.0.1:11434",
        );
        model.context_window = 8192;
        model.reasoning = true;
        let request = CompletionRequest {
            messages: vec![
                Message::user("hi"),
                Message::assistant(vec![ContentBlock::ToolCall {
                    id: "c".into(),
                    name: "ls".into(),
                    arguments: json!({"d": "."}),
                }]),
                Message::tool_result("c", "ls", "a b", false),
            ],
            thinking: ThinkingLevel::Low,
            ..Default::default()
        };
        let b = super::super::body_value(&model, &request);
        assert_eq!(
            b["messages"][1]["tool_calls"][0],
            json!({"function": {"name": "ls", "arguments": {"d": "."}}})
        );
        assert_eq!(
            b["messages"][2],
            json!({"role": "tool", "content": "a b", "tool_name": "ls"})
        );
        assert_eq!(b["think"], true);
        assert_eq!(b["options"]["num_ctx"], 8192);
    }

    #[test]
    fn decodes_whole_tool_calls_and_errors() {
        let mut d = OllamaDecoder::default();
        let mut out = Vec::new();
        let line = r#"{"model":"m","created_at":"2025-01-01T00:00:00Z","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"ls","arguments":{"d":"."}}}]},"done":false}"#;
        assert_eq!(d.on_line(line, &mut out), Ok(Flow::Continue));
        let done = r#"{"model":"m","created_at":"x","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","prompt_eval_count":7,"eval_count":3}"#;
        assert_eq!(d.on_line(done, &mut out), Ok(Flow::Finished));
        assert!(out.contains(&ProviderEvent::Done {
            stop_reason: StopReason::ToolUse
        }));
        assert!(out.contains(&ProviderEvent::Usage(Usage::new(7, 3, 0, 0))));
        let err = OllamaDecoder::default()
            .on_line(
                r#"{"error":"model \"x\" not found, try pulling it first"}"#,
                &mut out,
            )
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::ModelNotFound);
    }
}
