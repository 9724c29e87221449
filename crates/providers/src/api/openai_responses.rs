//! OpenAI Responses (`POST {baseUrl}/responses`, `stream: true`).
//!
//! Stream: named SSE events whose data repeats the name in `type` and carries a
//! `sequence_number`: `response.created` / `response.in_progress`, then per output item
//! `response.output_item.added` (`message` | `function_call` | `reasoning`), text via
//! `response.output_text.delta`, arguments via `response.function_call_arguments.delta`,
//! reasoning via `response.reasoning_summary_text.delta` / `response.reasoning_text.delta`,
//! `response.output_item.done`, and a terminal `response.completed` (usage),
//! `response.incomplete` or `response.failed`; `error` events carry `code` and `message`.
//! There is no `[DONE]` sentinel.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{blocks_text, parse_arguments, parse_json, push_text, Decoder, Flow, WireError};
use crate::error::ErrorKind;
use crate::event::ProviderEvent;
use crate::model::ThinkingLevelExt as _;
use crate::model::{CompletionRequest, ContentBlock, Message, StopReason, Usage, UserContent};
use crate::registry::ResolvedModel;
use crate::sse::SseEvent;

/// The request body without its tool list (see [`super::Body`]).
pub(crate) fn body(model: &ResolvedModel, request: &CompletionRequest) -> Map<String, Value> {
    let mut input: Vec<Value> = Vec::with_capacity(request.messages.len());
    for message in &request.messages {
        match message {
            Message::User(user) => {
                let blocks = match &user.content {
                    UserContent::Text(text) => vec![ContentBlock::text(text.clone())],
                    UserContent::Blocks(blocks) => blocks.clone(),
                };
                let content: Vec<Value> = blocks
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::Text { text, .. } => Some(json!({"type": "input_text", "text": text})),
                        ContentBlock::Image { data, mime_type } => {
                            Some(json!({"type": "input_image", "image_url": format!("data:{mime_type};base64,{data}")}))
                        }
                        _ => None,
                    })
                    .collect();
                input.push(json!({"role": "user", "content": content}));
            }
            Message::Assistant(assistant) => {
                for block in &assistant.content {
                    match block {
                        ContentBlock::Text { text, .. } if !text.is_empty() => {
                            input.push(json!({"role": "assistant", "content": text}));
                        }
                        ContentBlock::ToolCall { id, name, arguments } => input.push(json!({
                            "type": "function_call", "call_id": id, "name": name, "arguments": arguments.to_string(),
                        })),
                        _ => {}
                    }
                }
            }
            Message::ToolResult(result) => input.push(json!({
                "type": "function_call_output", "call_id": result.tool_call_id, "output": blocks_text(&result.content),
            })),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), model.model.clone().into());
    if let Some(system) = request.system_prompt.as_deref().filter(|s| !s.is_empty()) {
        body.insert("instructions".into(), system.into());
    }
    body.insert("input".into(), input.into());
    body.insert("stream".into(), true.into());
    body.insert("store".into(), false.into());
    body.insert(
        "max_output_tokens".into(),
        request.max_tokens.unwrap_or(model.max_tokens).into(),
    );
    if !request.tools.is_empty() {
        body.insert("tool_choice".into(), "auto".into());
    }
    if let Some(t) = request.temperature {
        body.insert("temperature".into(), json!(t));
    }
    if model.reasoning {
        if let Some(effort) = request.thinking.openai_effort() {
            body.insert(
                "reasoning".into(),
                json!({"effort": effort, "summary": "auto"}),
            );
        }
    }
    body
}

#[derive(Debug, Default)]
struct CallAcc {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Debug, Default)]
pub(crate) struct ResponsesDecoder {
    calls: BTreeMap<usize, CallAcc>,
    saw_tool_call: bool,
    in_reasoning: bool,
    refusal: String,
}

impl ResponsesDecoder {
    fn end_call(&mut self, index: usize, item: Option<&Value>, out: &mut Vec<ProviderEvent>) {
        if let Some(acc) = self.calls.remove(&index) {
            let raw = item
                .and_then(|i| i["arguments"].as_str())
                .map_or(acc.arguments, str::to_owned);
            out.push(ProviderEvent::ToolCallEnd {
                index,
                id: acc.id,
                name: acc.name,
                arguments: parse_arguments(&raw),
                raw_arguments: raw,
            });
        }
    }

    fn close_reasoning(&mut self, out: &mut Vec<ProviderEvent>) {
        if self.in_reasoning {
            self.in_reasoning = false;
            out.push(ProviderEvent::ThinkingEnd {
                signature: None,
                redacted: false,
            });
        }
    }
}

impl Decoder for ResponsesDecoder {
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
        let output_index = v["output_index"].as_u64().unwrap_or(0) as usize;
        match kind {
            "response.created" => {
                out.push(ProviderEvent::ResponseStart {
                    response_id: v["response"]["id"].as_str().map(str::to_owned),
                });
            }
            "response.output_item.added" => {
                let item = &v["item"];
                if item["type"] == "function_call" {
                    self.close_reasoning(out);
                    self.saw_tool_call = true;
                    let id = item["call_id"]
                        .as_str()
                        .or(item["id"].as_str())
                        .unwrap_or_default()
                        .to_owned();
                    let name = item["name"].as_str().unwrap_or_default().to_owned();
                    out.push(ProviderEvent::ToolCallStart {
                        index: output_index,
                        id: id.clone(),
                        name: name.clone(),
                    });
                    let arguments = item["arguments"].as_str().unwrap_or("").to_owned();
                    if !arguments.is_empty() {
                        out.push(ProviderEvent::ToolCallArgsDelta {
                            index: output_index,
                            delta: arguments.clone(),
                        });
                    }
                    self.calls.insert(
                        output_index,
                        CallAcc {
                            id,
                            name,
                            arguments,
                        },
                    );
                }
            }
            "response.output_text.delta" => {
                self.close_reasoning(out);
                push_text(out, v["delta"].as_str());
            }
            "response.refusal.delta" => self.refusal.push_str(v["delta"].as_str().unwrap_or("")),
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                if let Some(text) = v["delta"].as_str().filter(|t| !t.is_empty()) {
                    self.in_reasoning = true;
                    out.push(ProviderEvent::ThinkingDelta {
                        text: text.to_owned(),
                    });
                }
            }
            "response.function_call_arguments.delta" => {
                let delta = v["delta"].as_str().unwrap_or("");
                let Some(acc) = self.calls.get_mut(&output_index) else {
                    return Err(WireError::malformed(format!(
                        "arguments for unknown output item {output_index}"
                    )));
                };
                if !delta.is_empty() {
                    acc.arguments.push_str(delta);
                    out.push(ProviderEvent::ToolCallArgsDelta {
                        index: output_index,
                        delta: delta.to_owned(),
                    });
                }
            }
            "response.output_item.done" => {
                let item = &v["item"];
                match item["type"].as_str() {
                    Some("function_call") => self.end_call(output_index, Some(item), out),
                    Some("reasoning") => self.close_reasoning(out),
                    _ => {}
                }
            }
            "response.completed" | "response.incomplete" => {
                self.close_reasoning(out);
                for index in self.calls.keys().copied().collect::<Vec<_>>() {
                    self.end_call(index, None, out);
                }
                let response = &v["response"];
                let usage = &response["usage"];
                if usage.is_object() {
                    let input = usage["input_tokens"].as_u64().unwrap_or(0);
                    let cached = usage["input_tokens_details"]["cached_tokens"]
                        .as_u64()
                        .unwrap_or(0)
                        .min(input);
                    out.push(ProviderEvent::Usage(Usage::new(
                        input - cached,
                        usage["output_tokens"].as_u64().unwrap_or(0),
                        cached,
                        0,
                    )));
                }
                let stop_reason = if kind == "response.completed" {
                    if !self.refusal.is_empty() {
                        return Err(WireError::new(ErrorKind::Refusal, self.refusal.clone()));
                    }
                    if self.saw_tool_call {
                        StopReason::ToolUse
                    } else {
                        StopReason::Stop
                    }
                } else {
                    match response["incomplete_details"]["reason"].as_str() {
                        Some("content_filter") => {
                            return Err(WireError::new(
                                ErrorKind::Refusal,
                                "the provider's content filter stopped the response",
                            ));
                        }
                        _ => StopReason::Length,
                    }
                };
                out.push(ProviderEvent::Done { stop_reason });
                return Ok(Flow::Finished);
            }
            "response.failed" => {
                let error = &v["response"]["error"];
                let code = error["code"].as_str().map(str::to_owned);
                let message = error["message"]
                    .as_str()
                    .unwrap_or("the response failed")
                    .to_owned();
                return Err(WireError::reported(code, message, ErrorKind::Server));
            }
            "error" => {
                let code = v["code"]
                    .as_str()
                    .or(v["error"]["code"].as_str())
                    .or(v["error"]["type"].as_str())
                    .map(str::to_owned);
                let message = v["message"]
                    .as_str()
                    .or(v["error"]["message"].as_str())
                    .unwrap_or("provider error")
                    .to_owned();
                return Err(WireError::reported(code, message, ErrorKind::Server));
            }
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
    use crate::model::ToolSpec;

    #[test]
    fn request_shape() {
        let model = ResolvedModel::new(
            "openai",
            "gpt-5",
            ApiKind::OpenaiResponses,
            "https://api.openai.com/v1",
        );
        let request = CompletionRequest {
            system_prompt: Some("sys".into()),
            messages: vec![
                Message::user("hi"),
                Message::assistant(vec![
                    ContentBlock::text("let me look"),
                    ContentBlock::ToolCall {
                        id: "call_1".into(),
                        name: "ls".into(),
                        arguments: json!({}),
                    },
                ]),
                Message::tool_result("call_1", "ls", "a", false),
            ],
            tools: vec![ToolSpec {
                name: "ls".into(),
                description: "list".into(),
                parameters: json!({"type": "object"}),
            }]
            .into(),
            ..Default::default()
        };
        let b = super::super::body_value(&model, &request);
        assert_eq!(b["instructions"], "sys");
        assert_eq!(
            b["input"][0],
            json!({"role": "user", "content": [{"type": "input_text", "text": "hi"}]})
        );
        assert_eq!(
            b["input"][1],
            json!({"role": "assistant", "content": "let me look"})
        );
        assert_eq!(
            b["input"][2],
            json!({"type": "function_call", "call_id": "call_1", "name": "ls", "arguments": "{}"})
        );
        assert_eq!(
            b["input"][3],
            json!({"type": "function_call_output", "call_id": "call_1", "output": "a"})
        );
        assert_eq!(
            b["tools"][0],
            json!({"type": "function", "name": "ls", "description": "list", "parameters": {"type": "object"}})
        );
        assert_eq!(b["store"], false);
    }

    #[test]
    fn failed_and_error_events() {
        let ev = |data: &str| SseEvent {
            event: "x".into(),
            data: data.into(),
            ..Default::default()
        };
        let mut out = Vec::new();
        let err = ResponsesDecoder::default()
            .on_sse(&ev(r#"{"type":"response.failed","response":{"status":"failed","error":{"code":"server_error","message":"boom"}}}"#), &mut out)
            .unwrap_err();
        assert_eq!(
            (err.kind, err.message.as_str()),
            (ErrorKind::Server, "boom")
        );
        let err = ResponsesDecoder::default()
            .on_sse(&ev(r#"{"type":"error","code":"rate_limit_exceeded","message":"slow","param":null,"sequence_number":3}"#), &mut out)
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::RateLimit);
        let mut d = ResponsesDecoder::default();
        assert_eq!(
            d.on_eof(&mut out).unwrap_err().kind,
            ErrorKind::Network,
            "no terminal event means a cut stream"
        );
    }
}
