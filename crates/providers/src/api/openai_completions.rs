//! OpenAI Chat Completions (`POST {baseUrl}/chat/completions`, `stream: true`).
//!
//! Stream: `data: {chat.completion.chunk}` events; `choices[0].delta` carries `content`,
//! `reasoning_content`/`reasoning` (DeepSeek, vLLM, OpenRouter), `refusal` and `tool_calls[]`
//! fragments keyed by `index` (id and name in the first fragment, `function.arguments`
//! spread over the following ones). `finish_reason` arrives on its own chunk, then — with
//! `stream_options.include_usage` — a chunk with `choices: []` and `usage`, then
//! `data: [DONE]`. Errors mid-stream arrive as `data: {"error":{…}}`.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::{
    blocks_text, extract_error, parse_arguments, parse_json, push_text, push_thinking, Decoder,
    Flow, WireError,
};
use crate::error::ErrorKind;
use crate::event::ProviderEvent;
use crate::model::ThinkingLevelExt as _;
use crate::model::{CompletionRequest, ContentBlock, Message, StopReason, Usage, UserContent};
use crate::registry::ResolvedModel;
use crate::sse::SseEvent;

/// Tool-call ids replayed to Chat Completions keep only ASCII alphanumerics (the reference
/// sends `call_abc123` as `callabc123`), at most 40 characters.
pub(crate) fn sanitize_tool_call_id(id: &str) -> String {
    let cleaned: String = id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(40)
        .collect();
    if cleaned.is_empty() {
        "call".to_owned()
    } else {
        cleaned
    }
}

/// The request body without its tool list (see [`super::Body`]).
pub(crate) fn body(model: &ResolvedModel, request: &CompletionRequest) -> Map<String, Value> {
    let mut messages = Vec::with_capacity(request.messages.len() + 1);
    if let Some(system) = request.system_prompt.as_deref().filter(|s| !s.is_empty()) {
        messages.push(json!({"role": "system", "content": system}));
    }
    for message in &request.messages {
        match message {
            Message::User(user) => {
                messages.push(json!({"role": "user", "content": user_content(&user.content)}))
            }
            Message::Assistant(assistant) => {
                let text: String = assistant
                    .content
                    .iter()
                    .filter_map(|b| match b {
                        ContentBlock::Text { text, .. } => Some(text.as_str()),
                        _ => None,
                    })
                    .collect();
                let tool_calls: Vec<Value> = assistant
                    .tool_calls()
                    .map(|(id, name, arguments)| {
                        json!({"id": sanitize_tool_call_id(id), "type": "function",
                               "function": {"name": name, "arguments": arguments.to_string()}})
                    })
                    .collect();
                if text.is_empty() && tool_calls.is_empty() {
                    // Thinking-only or failed turns carry nothing this API can replay.
                    continue;
                }
                let mut m = Map::new();
                m.insert("role".into(), "assistant".into());
                m.insert(
                    "content".into(),
                    if text.is_empty() {
                        Value::Null
                    } else {
                        text.into()
                    },
                );
                if !tool_calls.is_empty() {
                    m.insert("tool_calls".into(), tool_calls.into());
                }
                messages.push(Value::Object(m));
            }
            Message::ToolResult(result) => messages.push(json!({
                "role": "tool",
                "tool_call_id": sanitize_tool_call_id(&result.tool_call_id),
                "content": blocks_text(&result.content),
            })),
        }
    }
    let mut body = Map::new();
    body.insert("model".into(), model.model.clone().into());
    body.insert("messages".into(), messages.into());
    body.insert("stream".into(), true.into());
    body.insert("stream_options".into(), json!({"include_usage": true}));
    body.insert(
        "max_completion_tokens".into(),
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
            body.insert("reasoning_effort".into(), effort.into());
        }
    }
    body
}

fn user_content(content: &UserContent) -> Value {
    match content {
        UserContent::Text(text) => text.clone().into(),
        UserContent::Blocks(blocks) => {
            if blocks
                .iter()
                .all(|b| matches!(b, ContentBlock::Text { .. }))
            {
                return blocks_text(blocks).into();
            }
            let parts: Vec<Value> = blocks
                .iter()
                .filter_map(|b| match b {
                    ContentBlock::Text { text, .. } => Some(json!({"type": "text", "text": text})),
                    ContentBlock::Image { data, mime_type } => {
                        Some(json!({"type": "image_url", "image_url": {"url": format!("data:{mime_type};base64,{data}")}}))
                    }
                    _ => None,
                })
                .collect();
            parts.into()
        }
    }
}

#[derive(Debug, Default)]
struct ToolCallAcc {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Debug, Default)]
pub(crate) struct CompletionsDecoder {
    started: bool,
    tool_calls: BTreeMap<usize, ToolCallAcc>,
    finish_reason: Option<String>,
    refusal: String,
}

impl CompletionsDecoder {
    fn finish(&mut self, out: &mut Vec<ProviderEvent>) -> Result<Flow, WireError> {
        for (index, call) in std::mem::take(&mut self.tool_calls) {
            out.push(ProviderEvent::ToolCallEnd {
                index,
                arguments: parse_arguments(&call.arguments),
                id: call.id,
                name: call.name,
                raw_arguments: call.arguments,
            });
        }
        let stop_reason = match self.finish_reason.as_deref() {
            Some("length") => StopReason::Length,
            Some("tool_calls" | "function_call") => StopReason::ToolUse,
            Some("content_filter") => {
                return Err(WireError::new(
                    ErrorKind::Refusal,
                    "the provider's content filter stopped the response",
                ));
            }
            _ if !self.refusal.is_empty() => {
                return Err(WireError::new(ErrorKind::Refusal, self.refusal.clone()))
            }
            _ => StopReason::Stop,
        };
        out.push(ProviderEvent::Done { stop_reason });
        Ok(Flow::Finished)
    }
}

impl Decoder for CompletionsDecoder {
    fn on_sse(
        &mut self,
        event: &SseEvent,
        out: &mut Vec<ProviderEvent>,
    ) -> Result<Flow, WireError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return self.finish(out);
        }
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        let chunk = parse_json(data)?;
        if let Some((error_type, message)) = extract_error(&chunk) {
            return Err(WireError::reported(error_type, message, ErrorKind::Server));
        }
        if !chunk.is_object() {
            return Err(WireError::malformed("chunk is not a JSON object"));
        }
        if !self.started {
            self.started = true;
            out.push(ProviderEvent::ResponseStart {
                response_id: chunk["id"].as_str().map(str::to_owned),
            });
        }
        if let Some(choice) = chunk["choices"].as_array().and_then(|c| c.first()) {
            let delta = &choice["delta"];
            for key in ["reasoning_content", "reasoning"] {
                push_thinking(out, delta[key].as_str());
            }
            push_text(out, delta["content"].as_str());
            if let Some(refusal) = delta["refusal"].as_str() {
                self.refusal.push_str(refusal);
            }
            if let Some(calls) = delta["tool_calls"].as_array() {
                for (position, call) in calls.iter().enumerate() {
                    let index = call["index"].as_u64().map_or(position, |i| i as usize);
                    let function = &call["function"];
                    let is_new = !self.tool_calls.contains_key(&index);
                    let acc = self.tool_calls.entry(index).or_default();
                    if let Some(id) = call["id"].as_str().filter(|s| !s.is_empty()) {
                        acc.id = id.to_owned();
                    }
                    if let Some(name) = function["name"].as_str().filter(|s| !s.is_empty()) {
                        acc.name.push_str(name);
                    }
                    if is_new {
                        if acc.id.is_empty() {
                            acc.id = format!("call_{index}");
                        }
                        out.push(ProviderEvent::ToolCallStart {
                            index,
                            id: acc.id.clone(),
                            name: acc.name.clone(),
                        });
                    }
                    if let Some(args) = function["arguments"].as_str().filter(|s| !s.is_empty()) {
                        acc.arguments.push_str(args);
                        out.push(ProviderEvent::ToolCallArgsDelta {
                            index,
                            delta: args.to_owned(),
                        });
                    }
                }
            }
            if let Some(reason) = choice["finish_reason"].as_str() {
                self.finish_reason = Some(reason.to_owned());
            }
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            out.push(ProviderEvent::Usage(parse_usage(usage)));
        }
        Ok(Flow::Continue)
    }

    fn on_eof(&mut self, out: &mut Vec<ProviderEvent>) -> Result<Flow, WireError> {
        // Some compatible servers omit `[DONE]`; a seen finish_reason is a complete answer.
        if self.finish_reason.is_some() {
            self.finish(out)
        } else {
            Err(WireError::new(
                ErrorKind::Network,
                "the stream ended before the provider finished the response",
            ))
        }
    }
}

fn parse_usage(usage: &Value) -> Usage {
    let prompt = usage["prompt_tokens"].as_u64().unwrap_or(0);
    let cached = usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap_or(0)
        .min(prompt);
    let output = usage["completion_tokens"].as_u64().unwrap_or(0);
    Usage::new(prompt - cached, output, cached, 0)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::config::ApiKind;
    use crate::model::{ThinkingLevel, ToolSpec};

    #[test]
    fn request_body_matches_the_observed_shape() {
        let mut model = ResolvedModel::new(
            "custom",
            "test-model",
            ApiKind::OpenaiCompletions,
            "http://x/v1",
        );
        model.reasoning = true;
        let request = CompletionRequest {
            system_prompt: Some("sys".into()),
            messages: vec![
                Message::user("USE_TOOL please"),
                Message::assistant(vec![ContentBlock::ToolCall {
                    id: "call_abc123".into(),
                    name: "read".into(),
                    arguments: json!({"path": "USER.md"}),
                }]),
                Message::tool_result("call_abc123", "read", "file text", false),
            ],
            tools: vec![ToolSpec {
                name: "read".into(),
                description: "Read a file".into(),
                parameters: json!({"type": "object"}),
            }]
            .into(),
            max_tokens: Some(1000),
            thinking: ThinkingLevel::High,
            temperature: None,
        };
        let b = super::super::body_value(&model, &request);
        assert_eq!(b["stream"], true);
        assert_eq!(b["stream_options"], json!({"include_usage": true}));
        assert_eq!(b["tool_choice"], "auto");
        assert_eq!(b["max_completion_tokens"], 1000);
        assert_eq!(b["reasoning_effort"], "high");
        assert_eq!(
            b["messages"][0],
            json!({"role": "system", "content": "sys"})
        );
        assert_eq!(
            b["messages"][1],
            json!({"role": "user", "content": "USE_TOOL please"})
        );
        assert_eq!(
            b["messages"][2],
            json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "callabc123", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"USER.md\"}"}}]})
        );
        assert_eq!(
            b["messages"][3],
            json!({"role": "tool", "tool_call_id": "callabc123", "content": "file text"})
        );
        assert_eq!(b["tools"][0]["function"]["name"], "read");
    }

    fn run(frames: &[&str]) -> (Vec<ProviderEvent>, Result<Flow, WireError>) {
        let mut d = CompletionsDecoder::default();
        let mut out = Vec::new();
        let mut last = Ok(Flow::Continue);
        for f in frames {
            last = d.on_sse(
                &SseEvent {
                    event: "message".into(),
                    data: (*f).into(),
                    id: None,
                    retry_ms: None,
                },
                &mut out,
            );
            if last.is_err() {
                break;
            }
        }
        (out, last)
    }

    #[test]
    fn assembles_parallel_tool_calls_by_index() {
        let (events, flow) = run(&[
            r#"{"id":"c1","choices":[{"index":0,"delta":{"role":"assistant","tool_calls":[{"index":0,"id":"call_a","type":"function","function":{"name":"read","arguments":""}}]},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"ls","arguments":"{\"d"}}]},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"path\":"}}]},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\"a\"}"}},{"index":1,"function":{"arguments":"\":1}"}}]},"finish_reason":null}]}"#,
            r#"{"id":"c1","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#,
            r#"{"id":"c1","choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}}"#,
            "[DONE]",
        ]);
        assert_eq!(flow, Ok(Flow::Finished));
        let ends: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                ProviderEvent::ToolCallEnd { id, arguments, .. } => {
                    Some((id.clone(), arguments.clone()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            ends,
            vec![
                ("call_a".into(), json!({"path": "a"})),
                ("call_b".into(), json!({"d": 1}))
            ]
        );
        assert!(events.contains(&ProviderEvent::Usage(Usage::new(6, 5, 4, 0))));
        assert_eq!(
            events.last(),
            Some(&ProviderEvent::Done {
                stop_reason: StopReason::ToolUse
            })
        );
    }

    #[test]
    fn stream_errors_and_garbage() {
        let (_, flow) =
            run(&[r#"{"error":{"message":"The server had an error","type":"server_error"}}"#]);
        assert_eq!(flow.unwrap_err().kind, ErrorKind::Server);
        let (_, flow) = run(&["{not json"]);
        assert_eq!(flow.unwrap_err().kind, ErrorKind::Malformed);
        let (_, flow) = run(&[
            r#"{"id":"c","choices":[{"index":0,"delta":{},"finish_reason":"content_filter"}]}"#,
            "[DONE]",
        ]);
        assert_eq!(flow.unwrap_err().kind, ErrorKind::Refusal);
    }

    #[test]
    fn lenient_eof_after_finish_reason() {
        let mut d = CompletionsDecoder::default();
        let mut out = Vec::new();
        assert!(d.on_eof(&mut out).is_err());
        let ev = SseEvent { data: r#"{"id":"c","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}"#.into(), ..Default::default() };
        d.on_sse(&ev, &mut out).unwrap();
        assert_eq!(d.on_eof(&mut out), Ok(Flow::Finished));
    }
}
