//! Anthropic Messages (`POST {baseUrl}/v1/messages`, `stream: true`).
//!
//! Stream: named SSE events `message_start` (message id, input usage), then per content
//! block `content_block_start` (`text` | `thinking` | `redacted_thinking` | `tool_use`),
//! `content_block_delta` (`text_delta`, `thinking_delta`, `signature_delta`,
//! `input_json_delta`), `content_block_stop`; `message_delta` (stop_reason, output usage),
//! `message_stop`. `ping` may appear anywhere; `error` ends the stream with a typed error.

use std::collections::HashMap;

use serde_json::{json, Map, Value};

use super::{parse_arguments, parse_json, push_text, push_thinking, Decoder, Flow, WireError};
use crate::error::ErrorKind;
use crate::event::ProviderEvent;
use crate::model::ThinkingLevelExt as _;
use crate::model::{CompletionRequest, ContentBlock, Message, StopReason, Usage, UserContent};
use crate::registry::ResolvedModel;
use crate::sse::SseEvent;

/// Anthropic accepts tool ids matching `^[a-zA-Z0-9_-]+$`, ≤ 64 characters.
fn sanitize_tool_use_id(id: &str) -> String {
    let cleaned: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "toolu".to_owned()
    } else {
        cleaned
    }
}

fn image(data: &str, mime_type: &str) -> Value {
    json!({"type": "image", "source": {"type": "base64", "media_type": mime_type, "data": data}})
}

/// The request body without its tool list (see [`super::Body`]).
pub(crate) fn body(model: &ResolvedModel, request: &CompletionRequest) -> Map<String, Value> {
    let mut messages: Vec<Value> = Vec::with_capacity(request.messages.len());
    // Tool results of one assistant turn travel together in one user message.
    let mut pending_results: Vec<Value> = Vec::new();
    let flush = |pending: &mut Vec<Value>, messages: &mut Vec<Value>| {
        if !pending.is_empty() {
            messages.push(json!({"role": "user", "content": std::mem::take(pending)}));
        }
    };
    for message in &request.messages {
        match message {
            Message::ToolResult(result) => {
                let mut content: Vec<Value> = Vec::new();
                for block in &result.content {
                    match block {
                        ContentBlock::Text { text, .. } => {
                            content.push(json!({"type": "text", "text": text}))
                        }
                        ContentBlock::Image { data, mime_type } => {
                            content.push(image(data, mime_type))
                        }
                        _ => {}
                    }
                }
                let mut block = Map::new();
                block.insert("type".into(), "tool_result".into());
                block.insert(
                    "tool_use_id".into(),
                    sanitize_tool_use_id(&result.tool_call_id).into(),
                );
                block.insert("content".into(), content.into());
                if result.is_error {
                    block.insert("is_error".into(), true.into());
                }
                pending_results.push(Value::Object(block));
            }
            Message::User(user) => {
                flush(&mut pending_results, &mut messages);
                let content: Value = match &user.content {
                    UserContent::Text(text) => text.clone().into(),
                    UserContent::Blocks(blocks) => blocks
                        .iter()
                        .filter_map(|b| match b {
                            ContentBlock::Text { text, .. } => {
                                Some(json!({"type": "text", "text": text}))
                            }
                            ContentBlock::Image { data, mime_type } => Some(image(data, mime_type)),
                            _ => None,
                        })
                        .collect::<Vec<_>>()
                        .into(),
                };
                messages.push(json!({"role": "user", "content": content}));
            }
            Message::Assistant(assistant) => {
                flush(&mut pending_results, &mut messages);
                let mut content: Vec<Value> = Vec::new();
                for block in &assistant.content {
                    match block {
                        ContentBlock::Text { text, .. } if !text.is_empty() => content.push(json!({"type": "text", "text": text})),
                        ContentBlock::Thinking { thinking_signature: Some(data), redacted: true, .. } => {
                            content.push(json!({"type": "redacted_thinking", "data": data}));
                        }
                        // Unsigned reasoning came from another provider: Anthropic would reject it.
                        ContentBlock::Thinking { thinking, thinking_signature: Some(signature), .. } => {
                            content.push(json!({"type": "thinking", "thinking": thinking, "signature": signature}));
                        }
                        ContentBlock::ToolCall { id, name, arguments } => content.push(json!({
                            "type": "tool_use", "id": sanitize_tool_use_id(id), "name": name,
                            "input": if arguments.is_object() { arguments.clone() } else { json!({}) },
                        })),
                        _ => {}
                    }
                }
                if !content.is_empty() {
                    messages.push(json!({"role": "assistant", "content": content}));
                }
            }
        }
    }
    flush(&mut pending_results, &mut messages);

    let mut max_tokens = request.max_tokens.unwrap_or(model.max_tokens);
    let mut body = Map::new();
    body.insert("model".into(), model.model.clone().into());
    body.insert("stream".into(), true.into());
    if let Some(system) = request.system_prompt.as_deref().filter(|s| !s.is_empty()) {
        body.insert("system".into(), system.into());
    }
    body.insert("messages".into(), messages.into());
    match request
        .thinking
        .anthropic_budget()
        .filter(|_| model.reasoning)
    {
        Some(budget) => {
            // The budget must stay below max_tokens; temperature must be left at its default.
            max_tokens = max_tokens.max(budget.saturating_add(1024));
            body.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
        }
        None => {
            if let Some(t) = request.temperature {
                body.insert("temperature".into(), json!(t));
            }
        }
    }
    body.insert("max_tokens".into(), max_tokens.into());
    body
}

#[derive(Debug)]
enum Block {
    Text,
    Thinking {
        signature: String,
    },
    ToolUse {
        id: String,
        name: String,
        json: String,
    },
    Other,
}

#[derive(Debug, Default)]
pub(crate) struct MessagesDecoder {
    blocks: HashMap<u64, Block>,
    usage: Usage,
    stop_reason: Option<String>,
}

impl MessagesDecoder {
    fn update_usage(&mut self, usage: &Value, out: &mut Vec<ProviderEvent>) {
        let get = |k: &str| usage.get(k).and_then(Value::as_u64);
        let mut u = self.usage;
        if let Some(v) = get("input_tokens") {
            u.input = v;
        }
        if let Some(v) = get("output_tokens") {
            u.output = v;
        }
        if let Some(v) = get("cache_read_input_tokens") {
            u.cache_read = v;
        }
        if let Some(v) = get("cache_creation_input_tokens") {
            u.cache_write = v;
        }
        self.usage = Usage::new(u.input, u.output, u.cache_read, u.cache_write);
        out.push(ProviderEvent::Usage(self.usage));
    }
}

impl Decoder for MessagesDecoder {
    fn on_sse(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<ProviderEvent>,
    ) -> Result<Flow, WireError> {
        if event.data.trim().is_empty() {
            return Ok(Flow::Continue);
        }
        let v = parse_json(&event.data)?;
        let kind = v["type"].as_str().unwrap_or(event.event.as_str());
        match kind {
            "message_start" => {
                let message = &v["message"];
                out.push(ProviderEvent::ResponseStart {
                    response_id: message["id"].as_str().map(str::to_owned),
                });
                if message["usage"].is_object() {
                    self.update_usage(&message["usage"], out);
                }
            }
            "content_block_start" => {
                let index = v["index"]
                    .as_u64()
                    .ok_or_else(|| WireError::malformed("content_block_start without index"))?;
                let block = &v["content_block"];
                let parsed = match block["type"].as_str() {
                    Some("text") => {
                        push_text(out, block["text"].as_str());
                        Block::Text
                    }
                    Some("thinking") => {
                        push_thinking(out, block["thinking"].as_str());
                        Block::Thinking {
                            signature: block["signature"].as_str().unwrap_or("").to_owned(),
                        }
                    }
                    Some("redacted_thinking") => {
                        out.push(ProviderEvent::ThinkingEnd {
                            signature: block["data"].as_str().map(str::to_owned),
                            redacted: true,
                        });
                        Block::Other
                    }
                    Some("tool_use") => {
                        let id = block["id"].as_str().unwrap_or_default().to_owned();
                        let name = block["name"].as_str().unwrap_or_default().to_owned();
                        out.push(ProviderEvent::ToolCallStart {
                            index: index as usize,
                            id: id.clone(),
                            name: name.clone(),
                        });
                        Block::ToolUse {
                            id,
                            name,
                            json: String::new(),
                        }
                    }
                    _ => Block::Other,
                };
                self.blocks.insert(index, parsed);
            }
            "content_block_delta" => {
                let index = v["index"]
                    .as_u64()
                    .ok_or_else(|| WireError::malformed("content_block_delta without index"))?;
                let delta = &v["delta"];
                let block = self.blocks.get_mut(&index);
                match (delta["type"].as_str(), block) {
                    (Some("text_delta"), _) => {
                        push_text(out, delta["text"].as_str());
                    }
                    (Some("thinking_delta"), _) => {
                        push_thinking(out, delta["thinking"].as_str());
                    }
                    (Some("signature_delta"), Some(Block::Thinking { signature })) => {
                        signature.push_str(delta["signature"].as_str().unwrap_or(""));
                    }
                    (Some("input_json_delta"), Some(Block::ToolUse { json, .. })) => {
                        let part = delta["partial_json"].as_str().unwrap_or("");
                        if !part.is_empty() {
                            json.push_str(part);
                            out.push(ProviderEvent::ToolCallArgsDelta {
                                index: index as usize,
                                delta: part.to_owned(),
                            });
                        }
                    }
                    (Some("signature_delta" | "input_json_delta"), _) => {
                        return Err(WireError::malformed(format!(
                            "delta for unknown content block {index}"
                        )));
                    }
                    _ => {}
                }
            }
            "content_block_stop" => {
                let index = v["index"].as_u64().unwrap_or(u64::MAX);
                match self.blocks.remove(&index) {
                    Some(Block::Thinking { signature }) => out.push(ProviderEvent::ThinkingEnd {
                        signature: (!signature.is_empty()).then_some(signature),
                        redacted: false,
                    }),
                    Some(Block::ToolUse { id, name, json }) => {
                        out.push(ProviderEvent::ToolCallEnd {
                            index: index as usize,
                            id,
                            name,
                            arguments: parse_arguments(&json),
                            raw_arguments: json,
                        })
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(reason) = v["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(reason.to_owned());
                }
                if v["usage"].is_object() {
                    self.update_usage(&v["usage"], out);
                }
            }
            "message_stop" => {
                let stop_reason = match self.stop_reason.as_deref() {
                    Some("max_tokens" | "model_context_window_exceeded") => StopReason::Length,
                    Some("tool_use") => StopReason::ToolUse,
                    Some("refusal") => {
                        return Err(WireError::new(
                            ErrorKind::Refusal,
                            "the model declined to answer (refusal)",
                        ))
                    }
                    _ => StopReason::Stop,
                };
                out.push(ProviderEvent::Done { stop_reason });
                return Ok(Flow::Finished);
            }
            "error" => {
                let error_type = v["error"]["type"].as_str().map(str::to_owned);
                let message = v["error"]["message"]
                    .as_str()
                    .unwrap_or("provider error")
                    .to_owned();
                return Err(WireError::reported(error_type, message, ErrorKind::Server));
            }
            // `ping` and event types added later are ignored, as Anthropic asks clients to.
            _ => {}
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::ApiKind;
    use crate::model::{ThinkingLevel, ToolSpec};

    #[test]
    fn request_groups_tool_results_and_replays_signed_thinking() {
        let mut model = ResolvedModel::new(
            "anthropic",
            "claude",
            ApiKind::AnthropicMessages,
            "https://api.anthropic.com",
        );
        model.reasoning = true;
        model.max_tokens = 4096;
        let request = CompletionRequest {
            system_prompt: Some("be brief".into()),
            messages: vec![
                Message::user("hi"),
                Message::assistant(vec![
                    ContentBlock::Thinking {
                        thinking: "hmm".into(),
                        thinking_signature: Some("sig".into()),
                        redacted: false,
                    },
                    ContentBlock::Thinking {
                        thinking: "foreign".into(),
                        thinking_signature: None,
                        redacted: false,
                    },
                    ContentBlock::ToolCall {
                        id: "call.1".into(),
                        name: "a".into(),
                        arguments: json!({"x": 1}),
                    },
                    ContentBlock::ToolCall {
                        id: "call_2".into(),
                        name: "b".into(),
                        arguments: json!({}),
                    },
                ]),
                Message::tool_result("call.1", "a", "one", false),
                Message::tool_result("call_2", "b", "two", true),
            ],
            tools: vec![ToolSpec {
                name: "a".into(),
                description: "A".into(),
                parameters: json!({"type": "object"}),
            }]
            .into(),
            max_tokens: None,
            thinking: ThinkingLevel::High,
            temperature: Some(0.5),
        };
        let b = super::super::body_value(&model, &request);
        assert_eq!(b["system"], "be brief");
        assert_eq!(
            b["thinking"],
            json!({"type": "enabled", "budget_tokens": 16384})
        );
        assert_eq!(
            b["max_tokens"],
            16384 + 1024,
            "max_tokens raised above the budget"
        );
        assert!(b.get("temperature").is_none());
        let assistant = &b["messages"][1]["content"];
        assert_eq!(
            assistant[0],
            json!({"type": "thinking", "thinking": "hmm", "signature": "sig"})
        );
        assert_eq!(assistant[1]["id"], "call_1");
        assert_eq!(
            assistant.as_array().unwrap().len(),
            3,
            "unsigned thinking dropped"
        );
        let results = &b["messages"][2];
        assert_eq!(results["role"], "user");
        assert_eq!(
            results["content"][0],
            json!({"type": "tool_result", "tool_use_id": "call_1", "content": [{"type": "text", "text": "one"}]})
        );
        assert_eq!(results["content"][1]["is_error"], true);
        assert_eq!(b["messages"].as_array().unwrap().len(), 3);
        assert_eq!(b["tools"][0]["input_schema"], json!({"type": "object"}));
    }

    #[test]
    fn decodes_error_events() {
        let mut d = MessagesDecoder::default();
        let mut out = Vec::new();
        let ev = SseEvent {
            event: "error".into(),
            data: r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
                .into(),
            ..Default::default()
        };
        let err = d.on_sse(&ev, &mut out).unwrap_err();
        assert_eq!(
            (err.kind, err.error_type.as_deref()),
            (ErrorKind::Server, Some("overloaded_error"))
        );
    }
}
