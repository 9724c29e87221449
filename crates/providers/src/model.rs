//! The provider-neutral conversation model. These types serialise to exactly the `message`
//! shapes the transcript stores (runtime.md §2.5), so the agent loop can persist what a
//! provider produced and replay a transcript into any provider without a second model.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One block of message content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ContentBlock {
    /// Plain text.
    #[serde(rename = "text")]
    Text {
        text: String,
        #[serde(
            rename = "textSignature",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        text_signature: Option<String>,
    },
    /// Model reasoning. The signature (Anthropic) must be sent back verbatim on replay.
    #[serde(rename = "thinking")]
    Thinking {
        thinking: String,
        #[serde(
            rename = "thinkingSignature",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        thinking_signature: Option<String>,
        /// Anthropic `redacted_thinking`: the signature holds the opaque data.
        #[serde(default, skip_serializing_if = "is_false")]
        redacted: bool,
    },
    /// A tool invocation requested by the model.
    #[serde(rename = "toolCall")]
    ToolCall {
        id: String,
        name: String,
        arguments: Value,
    },
    /// An image, base64-encoded.
    #[serde(rename = "image")]
    Image {
        data: String,
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl ContentBlock {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text {
            text: text.into(),
            text_signature: None,
        }
    }
}

/// User message content: the transcript stores plain strings for typed text and block
/// arrays when images are attached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum UserContent {
    Text(String),
    Blocks(Vec<ContentBlock>),
}

impl UserContent {
    /// The content as blocks (a plain string becomes one text block).
    pub fn blocks(&self) -> Vec<ContentBlock> {
        match self {
            Self::Text(text) => vec![ContentBlock::text(text.clone())],
            Self::Blocks(blocks) => blocks.clone(),
        }
    }
}

/// A user turn.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserMessage {
    pub content: UserContent,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    /// Fields this crate does not interpret (`__openclaw`, `idempotencyKey`, …), kept so a
    /// transcript entry round-trips unchanged.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Why the model stopped (transcript `stopReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StopReason {
    Stop,
    Length,
    ToolUse,
    Error,
    Aborted,
}

impl StopReason {
    /// The wire/transcript spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Length => "length",
            Self::ToolUse => "toolUse",
            Self::Error => "error",
            Self::Aborted => "aborted",
        }
    }
}

/// Cost in dollars, split like the transcript's `usage.cost`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cost {
    #[serde(with = "json_number")]
    pub input: f64,
    #[serde(with = "json_number")]
    pub output: f64,
    #[serde(with = "json_number")]
    pub cache_read: f64,
    #[serde(with = "json_number")]
    pub cache_write: f64,
    #[serde(with = "json_number")]
    pub total: f64,
}

/// Token usage of one model call (transcript `usage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub total_tokens: u64,
    #[serde(default)]
    pub cost: Cost,
}

impl Usage {
    /// Usage from raw counts; `total_tokens` is their sum.
    pub fn new(input: u64, output: u64, cache_read: u64, cache_write: u64) -> Self {
        Self {
            input,
            output,
            cache_read,
            cache_write,
            total_tokens: input + output + cache_read + cache_write,
            cost: Cost::default(),
        }
    }

    /// Fills `cost` from per-million-token prices.
    pub fn priced(mut self, price: &crate::config::ModelCost) -> Self {
        let per = |tokens: u64, dollars_per_million: f64| {
            tokens as f64 * dollars_per_million / 1_000_000.0
        };
        self.cost.input = per(self.input, price.input);
        self.cost.output = per(self.output, price.output);
        self.cost.cache_read = per(self.cache_read, price.cache_read);
        self.cost.cache_write = per(self.cache_write, price.cache_write);
        self.cost.total =
            self.cost.input + self.cost.output + self.cost.cache_read + self.cost.cache_write;
        self
    }
}

/// A model turn as the transcript stores it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssistantMessage {
    pub content: Vec<ContentBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<StopReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl AssistantMessage {
    /// The concatenated text blocks.
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|b| match b {
                ContentBlock::Text { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The tool calls, in order.
    pub fn tool_calls(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        self.content.iter().filter_map(|b| match b {
            ContentBlock::ToolCall {
                id,
                name,
                arguments,
            } => Some((id.as_str(), name.as_str(), arguments)),
            _ => None,
        })
    }
}

/// The result of one tool call, fed back to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolResultMessage {
    pub tool_call_id: String,
    pub tool_name: String,
    pub content: Vec<ContentBlock>,
    /// UI metadata; never sent to a provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(default)]
    pub is_error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// One message of the conversation sent to a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role")]
pub enum Message {
    #[serde(rename = "user")]
    User(UserMessage),
    #[serde(rename = "assistant")]
    Assistant(AssistantMessage),
    #[serde(rename = "toolResult")]
    ToolResult(ToolResultMessage),
}

impl Message {
    /// A plain-text user message.
    pub fn user(text: impl Into<String>) -> Self {
        Self::User(UserMessage {
            content: UserContent::Text(text.into()),
            timestamp: None,
            extra: Map::new(),
        })
    }

    /// An assistant message with the given blocks.
    pub fn assistant(content: Vec<ContentBlock>) -> Self {
        Self::Assistant(AssistantMessage {
            content,
            ..AssistantMessage::default()
        })
    }

    /// A text tool result.
    pub fn tool_result(
        tool_call_id: impl Into<String>,
        tool_name: impl Into<String>,
        text: impl Into<String>,
        is_error: bool,
    ) -> Self {
        Self::ToolResult(ToolResultMessage {
            tool_call_id: tool_call_id.into(),
            tool_name: tool_name.into(),
            content: vec![ContentBlock::text(text)],
            details: None,
            is_error,
            timestamp: None,
            extra: Map::new(),
        })
    }
}

/// A tool the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: Value,
}

/// Reasoning effort (`/think <level>`, `thinkingDefault`): the workspace's one enum, defined
/// in `pincer-sessions` next to the session entry that stores it.
pub use pincer_sessions::ThinkingLevel;

/// How each wire API expresses a [`ThinkingLevel`].
pub trait ThinkingLevelExt {
    /// OpenAI `reasoning_effort` / Responses `reasoning.effort`; `None` when off.
    fn openai_effort(self) -> Option<&'static str>;
    /// Anthropic extended-thinking `budget_tokens`; `None` when off.
    fn anthropic_budget(self) -> Option<u32>;
}

impl ThinkingLevelExt for ThinkingLevel {
    fn openai_effort(self) -> Option<&'static str> {
        match self {
            Self::Off => None,
            Self::Minimal => Some("minimal"),
            Self::Low => Some("low"),
            Self::Medium | Self::Adaptive => Some("medium"),
            Self::High | Self::Xhigh | Self::Max | Self::Ultra => Some("high"),
        }
    }

    fn anthropic_budget(self) -> Option<u32> {
        match self {
            Self::Off => None,
            Self::Minimal => Some(1024),
            Self::Low => Some(2048),
            Self::Medium | Self::Adaptive => Some(8192),
            Self::High => Some(16_384),
            Self::Xhigh | Self::Max | Self::Ultra => Some(32_000),
        }
    }
}

/// Everything a model call needs besides the model itself. The model is passed separately
/// because a fallback chain replays one request against several models.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CompletionRequest {
    pub system_prompt: Option<String>,
    pub messages: Vec<Message>,
    /// Shared, not copied: a run offers the same tools on every model call, and their
    /// schemas are tens of KB.
    pub tools: std::sync::Arc<[ToolSpec]>,
    /// Output token limit; `None` uses the model's `maxTokens`.
    pub max_tokens: Option<u32>,
    pub thinking: ThinkingLevel,
    pub temperature: Option<f32>,
}

/// Serialises whole-valued floats as integers so `cost` round-trips the transcript's
/// `{"input":0,…}` exactly.
mod json_number {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
        if value.fract() == 0.0 && value.abs() < 9.0e15 {
            serializer.serialize_i64(*value as i64)
        } else {
            serializer.serialize_f64(*value)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
        f64::deserialize(deserializer)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Every message entry of the reference transcript sample round-trips byte-identically
    /// (as JSON values) through the neutral types.
    #[test]
    fn transcript_sample_messages_round_trip() {
        let sample = include_str!("../../../testdata/spec-samples/transcript-events.jsonl");
        let mut seen = 0;
        for line in sample.lines().filter(|l| !l.trim().is_empty()) {
            let entry: Value = serde_json::from_str(line).unwrap();
            if entry["type"] != "message" {
                continue;
            }
            let original = entry["message"].clone();
            let parsed: Message = serde_json::from_value(original.clone()).unwrap();
            let back = serde_json::to_value(&parsed).unwrap();
            assert_eq!(back, original, "round trip changed {line}");
            seen += 1;
        }
        assert!(
            seen >= 4,
            "sample should contain user, assistant and toolResult messages"
        );
    }

    #[test]
    fn thinking_and_images_serialise_like_the_transcript() {
        let msg = Message::assistant(vec![
            ContentBlock::Thinking {
                thinking: "hmm".into(),
                thinking_signature: Some("sig".into()),
                redacted: false,
            },
            ContentBlock::text("hi"),
        ]);
        let v = serde_json::to_value(&msg).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"role":"assistant","content":[
                {"type":"thinking","thinking":"hmm","thinkingSignature":"sig"},{"type":"text","text":"hi"}]})
        );
        let img: ContentBlock = serde_json::from_value(
            serde_json::json!({"type":"image","data":"AAAA","mimeType":"image/png"}),
        )
        .unwrap();
        assert_eq!(
            img,
            ContentBlock::Image {
                data: "AAAA".into(),
                mime_type: "image/png".into()
            }
        );
    }

    #[test]
    fn usage_pricing() {
        let price = crate::config::ModelCost {
            input: 3.0,
            output: 15.0,
            cache_read: 0.3,
            cache_write: 3.75,
        };
        let u = Usage::new(1_000_000, 2_000, 0, 0).priced(&price);
        assert_eq!(u.total_tokens, 1_002_000);
        assert!((u.cost.total - 3.03).abs() < 1e-9);
        let v = serde_json::to_value(Usage::new(1, 2, 0, 0)).unwrap();
        assert_eq!(v["cost"]["input"], serde_json::json!(0));
    }
}
