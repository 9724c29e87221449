//! The streamed, provider-neutral events of one model call, and a collector that folds them
//! into the transcript's assistant message.

use std::pin::Pin;
use std::time::Duration;

use futures_util::Stream;
use serde_json::Value;

use crate::config::ApiKind;
use crate::error::{ErrorKind, ProviderError};
use crate::model::{AssistantMessage, ContentBlock, StopReason, Usage};

/// The stream every call returns. It ends after `Done` or `Error` (exactly one of them).
/// Dropping it closes the HTTP connection.
pub type EventStream = Pin<Box<dyn Stream<Item = ProviderEvent> + Send>>;

/// One event of a streamed model call.
#[derive(Debug, Clone, PartialEq)]
pub enum ProviderEvent {
    /// About to call this model (first event; again after each fallback). `fallback_from`
    /// carries the error that made the chain leave the previous model.
    ModelStart {
        provider: String,
        model: String,
        api: ApiKind,
        fallback_from: Option<Box<ProviderError>>,
    },
    /// An attempt failed before any output; the call is retried on the same model after
    /// `delay` (`attempt` counts from 1 = the retry about to be made).
    Retrying {
        attempt: u32,
        max_attempts: u32,
        delay: Duration,
        error: Box<ProviderError>,
    },
    /// The provider acknowledged the request (`chatcmpl-…`, `msg_…`, `resp_…`).
    ResponseStart { response_id: Option<String> },
    /// Visible text.
    TextDelta { text: String },
    /// Reasoning text.
    ThinkingDelta { text: String },
    /// A reasoning block closed; Anthropic's signature must be replayed verbatim.
    ThinkingEnd {
        signature: Option<String>,
        redacted: bool,
    },
    /// A tool call began. `index` identifies it in the following args/end events.
    ToolCallStart {
        index: usize,
        id: String,
        name: String,
    },
    /// A fragment of the tool call's JSON arguments, as streamed.
    ToolCallArgsDelta { index: usize, delta: String },
    /// The tool call is complete. `arguments` is the parsed JSON object (`{}` when the model
    /// produced invalid JSON; `raw_arguments` then holds what it sent).
    ToolCallEnd {
        index: usize,
        id: String,
        name: String,
        arguments: Value,
        raw_arguments: String,
    },
    /// Best-known usage so far; each one supersedes the previous.
    Usage(Usage),
    /// The model finished.
    Done { stop_reason: StopReason },
    /// The call failed (after retries and fallbacks).
    Error(ProviderError),
}

impl ProviderEvent {
    /// Whether this event is model output the consumer may already have shown. After output,
    /// a call is never retried or failed over (the deltas cannot be taken back).
    pub fn is_output(&self) -> bool {
        matches!(
            self,
            Self::TextDelta { .. }
                | Self::ThinkingDelta { .. }
                | Self::ThinkingEnd { .. }
                | Self::ToolCallStart { .. }
                | Self::ToolCallArgsDelta { .. }
                | Self::ToolCallEnd { .. }
        )
    }
}

/// Folds a call's events into an [`AssistantMessage`] shaped like the transcript's.
#[derive(Debug, Default)]
pub struct TurnCollector {
    message: AssistantMessage,
    open_tool_calls: Vec<(usize, String, String, String)>,
    error: Option<ProviderError>,
    finished: bool,
}

impl TurnCollector {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one event.
    pub fn push(&mut self, event: &ProviderEvent) {
        let content = &mut self.message.content;
        match event {
            ProviderEvent::ModelStart {
                provider,
                model,
                api,
                ..
            } => {
                self.message.provider = Some(provider.clone());
                self.message.model = Some(model.clone());
                self.message.api = Some(api.as_str().to_owned());
            }
            ProviderEvent::Retrying { .. } => {}
            ProviderEvent::ResponseStart { response_id } => {
                if response_id.is_some() {
                    self.message.response_id = response_id.clone();
                }
            }
            ProviderEvent::TextDelta { text } => match content.last_mut() {
                Some(ContentBlock::Text { text: existing, .. }) => existing.push_str(text),
                _ => content.push(ContentBlock::text(text.clone())),
            },
            ProviderEvent::ThinkingDelta { text } => match content.last_mut() {
                Some(ContentBlock::Thinking {
                    thinking,
                    thinking_signature: None,
                    redacted: false,
                }) => thinking.push_str(text),
                _ => content.push(ContentBlock::Thinking {
                    thinking: text.clone(),
                    thinking_signature: None,
                    redacted: false,
                }),
            },
            ProviderEvent::ThinkingEnd {
                signature,
                redacted,
            } => match content.last_mut() {
                Some(ContentBlock::Thinking {
                    thinking_signature,
                    redacted: r,
                    ..
                }) if thinking_signature.is_none() && !*redacted => {
                    *thinking_signature = signature.clone();
                    *r = *redacted;
                }
                _ => content.push(ContentBlock::Thinking {
                    thinking: String::new(),
                    thinking_signature: signature.clone(),
                    redacted: *redacted,
                }),
            },
            ProviderEvent::ToolCallStart { index, id, name } => {
                self.open_tool_calls
                    .push((*index, id.clone(), name.clone(), String::new()));
            }
            ProviderEvent::ToolCallArgsDelta { index, delta } => {
                if let Some(call) = self.open_tool_calls.iter_mut().find(|c| c.0 == *index) {
                    call.3.push_str(delta);
                }
            }
            ProviderEvent::ToolCallEnd {
                index,
                id,
                name,
                arguments,
                ..
            } => {
                self.open_tool_calls.retain(|c| c.0 != *index);
                content.push(ContentBlock::ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: arguments.clone(),
                });
            }
            ProviderEvent::Usage(usage) => self.message.usage = Some(*usage),
            ProviderEvent::Done { stop_reason } => {
                self.message.stop_reason = Some(*stop_reason);
                self.finished = true;
            }
            ProviderEvent::Error(error) => {
                self.message.stop_reason = Some(if error.kind == ErrorKind::Cancelled {
                    StopReason::Aborted
                } else {
                    StopReason::Error
                });
                self.message.error_message = Some(error.message.clone());
                self.error = Some(error.clone());
                self.finished = true;
            }
        }
    }

    /// Whether a terminal event (`Done`/`Error`) was seen.
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// The error the call ended with, if any.
    pub fn error(&self) -> Option<&ProviderError> {
        self.error.as_ref()
    }

    /// The message so far (complete once finished). Usage defaults to zeros as the
    /// transcript always carries a `usage` object.
    pub fn message(&self) -> AssistantMessage {
        let mut message = self.message.clone();
        if message.usage.is_none() {
            message.usage = Some(Usage::default());
        }
        message
    }

    /// Consumes the collector.
    pub fn into_message(self) -> AssistantMessage {
        let mut message = self.message;
        if message.usage.is_none() {
            message.usage = Some(Usage::default());
        }
        message
    }
}

/// Drains a stream into its final message (tests, compaction, simple callers).
pub async fn collect(mut stream: EventStream) -> (AssistantMessage, Option<ProviderError>) {
    use futures_util::StreamExt;
    let mut collector = TurnCollector::new();
    while let Some(event) = stream.next().await {
        collector.push(&event);
    }
    let error = collector.error().cloned();
    (collector.into_message(), error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_builds_transcript_shaped_message() {
        let mut c = TurnCollector::new();
        for e in [
            ProviderEvent::ModelStart {
                provider: "p".into(),
                model: "m".into(),
                api: ApiKind::AnthropicMessages,
                fallback_from: None,
            },
            ProviderEvent::ResponseStart {
                response_id: Some("msg_1".into()),
            },
            ProviderEvent::ThinkingDelta {
                text: "let me ".into(),
            },
            ProviderEvent::ThinkingDelta {
                text: "think".into(),
            },
            ProviderEvent::ThinkingEnd {
                signature: Some("sig".into()),
                redacted: false,
            },
            ProviderEvent::TextDelta { text: "Hel".into() },
            ProviderEvent::TextDelta { text: "lo".into() },
            ProviderEvent::ToolCallStart {
                index: 2,
                id: "t1".into(),
                name: "read".into(),
            },
            ProviderEvent::ToolCallArgsDelta {
                index: 2,
                delta: "{}".into(),
            },
            ProviderEvent::ToolCallEnd {
                index: 2,
                id: "t1".into(),
                name: "read".into(),
                arguments: serde_json::json!({}),
                raw_arguments: "{}".into(),
            },
            ProviderEvent::Usage(Usage::new(3, 4, 0, 0)),
            ProviderEvent::Done {
                stop_reason: StopReason::ToolUse,
            },
        ] {
            c.push(&e);
        }
        assert!(c.is_finished());
        let m = c.into_message();
        let v = serde_json::to_value(&m).unwrap_or_default();
        assert_eq!(
            v["content"][0],
            serde_json::json!({"type":"thinking","thinking":"let me think","thinkingSignature":"sig"})
        );
        assert_eq!(
            v["content"][1],
            serde_json::json!({"type":"text","text":"Hello"})
        );
        assert_eq!(
            v["content"][2],
            serde_json::json!({"type":"toolCall","id":"t1","name":"read","arguments":{}})
        );
        assert_eq!(v["stopReason"], "toolUse");
        assert_eq!(v["api"], "anthropic-messages");
        assert_eq!(v["responseId"], "msg_1");
        assert_eq!(v["usage"]["totalTokens"], 7);
    }

    #[test]
    fn cancelled_calls_become_aborted() {
        let mut c = TurnCollector::new();
        c.push(&ProviderEvent::TextDelta {
            text: "partial".into(),
        });
        c.push(&ProviderEvent::Error(ProviderError::new(
            ErrorKind::Cancelled,
            "p",
            "m",
            "cancelled",
        )));
        let m = c.message();
        assert_eq!(m.stop_reason, Some(StopReason::Aborted));
        assert_eq!(m.text(), "partial");
        assert_eq!(c.error().map(|e| e.kind), Some(ErrorKind::Cancelled));
    }
}
