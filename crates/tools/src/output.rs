//! Tool results: content blocks for the model, `details` for UIs and transcripts.
//!
//! Serialises to the reference's tool-result shape: `{"content":[{"type":"text","text":…}],
//! "details":{…}}` with `isError` carried next to it by the agent loop.

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    Image {
        /// Base64 (standard alphabet, padded).
        data: String,
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolOutput {
    pub content: Vec<ContentBlock>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
    /// Short human label for progress UIs (`meta` on the wire, e.g. "from USER.md").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<String>,
}

impl ToolOutput {
    pub fn text(text: impl Into<String>) -> Self {
        Self {
            content: vec![ContentBlock::Text { text: text.into() }],
            ..Self::default()
        }
    }

    pub fn error(text: impl Into<String>) -> Self {
        Self {
            is_error: true,
            ..Self::text(text)
        }
    }

    /// Text = pretty JSON of `value`, details = `value` (the reference's JSON result convention).
    pub fn json(value: Value) -> Self {
        let text = serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string());
        Self::text(text).with_details(value)
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn with_meta(mut self, meta: impl Into<String>) -> Self {
        self.meta = Some(meta.into());
        self
    }

    pub fn with_error(mut self, is_error: bool) -> Self {
        self.is_error = is_error;
        self
    }

    /// All text blocks joined (tests, logging, previews).
    pub fn text_content(&self) -> String {
        let mut out = String::new();
        for block in &self.content {
            if let ContentBlock::Text { text } = block {
                if !out.is_empty() {
                    out.push('\n');
                }
                out.push_str(text);
            }
        }
        out
    }

    /// The `result` object of the wire `tool` event / transcript `toolResult` message.
    pub fn to_result_json(&self) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert(
            "content".into(),
            serde_json::to_value(&self.content).unwrap_or(Value::Array(Vec::new())),
        );
        if let Some(details) = &self.details {
            obj.insert("details".into(), details.clone());
        }
        Value::Object(obj)
    }
}
