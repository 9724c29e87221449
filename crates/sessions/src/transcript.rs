//! Typed transcript entries (runtime spec §2.5), JSON-compatible with the reference's JSONL
//! line format. Unknown fields survive a round trip through `extra`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::time::iso8601_from_ms;

/// The transcript header version written today (`CURRENT_SESSION_VERSION`).
pub const CURRENT_SESSION_VERSION: u32 = 4;

/// Fields every non-header entry carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EntryMeta {
    pub id: String,
    /// Tree parent; `null` for the first entry after the header.
    #[serde(rename = "parentId", default)]
    pub parent_id: Option<String>,
    /// ISO-8601 UTC with milliseconds.
    pub timestamp: String,
}

impl EntryMeta {
    /// A fresh id (uuid v4) under `parent_id`, stamped `now_ms`.
    pub fn new(parent_id: Option<String>, now_ms: i64) -> Self {
        EntryMeta {
            id: uuid::Uuid::new_v4().to_string(),
            parent_id,
            timestamp: iso8601_from_ms(now_ms),
        }
    }
}

/// `{"type":"session","version":4,"id":"<sessionId>","timestamp":..,"cwd":..}`
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionHeader {
    pub version: u32,
    /// The sessionId.
    pub id: String,
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(
        rename = "parentSession",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub parent_session: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

macro_rules! entry_struct {
    ($(#[$doc:meta])* $name:ident { $($(#[$fattr:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        pub struct $name {
            $($(#[$fattr])* pub $field: $ty,)*
            #[serde(flatten)]
            pub meta: EntryMeta,
            #[serde(flatten)]
            pub extra: Map<String, Value>,
        }
    };
}

entry_struct!(
    /// A chat message (`message.role` ∈ user, assistant, toolResult, custom, bashExecution).
    MessageEntry { message: Value }
);
entry_struct!(ModelChangeEntry {
    provider: String,
    #[serde(rename = "modelId")]
    model_id: String,
});
entry_struct!(ThinkingLevelChangeEntry {
    #[serde(rename = "thinkingLevel")]
    thinking_level: String,
});
entry_struct!(CompactionEntry {
    summary: String,
    #[serde(rename = "firstKeptEntryId")]
    first_kept_entry_id: String,
    #[serde(rename = "tokensBefore")]
    tokens_before: u64,
});
entry_struct!(
    /// `reason` ∈ new, reset, idle, daily, cron-stale.
    ResetEntry {
        reason: String,
        #[serde(rename = "firstKeptEntryId", default, skip_serializing_if = "Option::is_none")]
        first_kept_entry_id: Option<String>,
    }
);
entry_struct!(BranchSummaryEntry {
    #[serde(rename = "fromId")]
    from_id: String,
    summary: String,
});
entry_struct!(
    /// Not part of the model context (`model-snapshot`, bootstrap markers ...).
    CustomEntry {
        #[serde(rename = "customType")]
        custom_type: String,
        #[serde(default)]
        data: Value,
    }
);
entry_struct!(
    /// Enters the model context.
    CustomMessageEntry {
        #[serde(rename = "customType")]
        custom_type: String,
        #[serde(default)]
        content: Value,
        #[serde(default)]
        display: Value,
    }
);
entry_struct!(LabelEntry {
    #[serde(rename = "targetId")]
    target_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
});
entry_struct!(SessionInfoEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
});

/// One transcript line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TranscriptEntry {
    Session(SessionHeader),
    Message(MessageEntry),
    ModelChange(ModelChangeEntry),
    ThinkingLevelChange(ThinkingLevelChangeEntry),
    Compaction(CompactionEntry),
    Reset(ResetEntry),
    BranchSummary(BranchSummaryEntry),
    Custom(CustomEntry),
    CustomMessage(CustomMessageEntry),
    Label(LabelEntry),
    SessionInfo(SessionInfoEntry),
    /// Opaque navigation marker.
    Leaf(Map<String, Value>),
}

/// The `type` discriminant, as stored in the store's indexed column.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryType {
    Session,
    Message,
    ModelChange,
    ThinkingLevelChange,
    Compaction,
    Reset,
    BranchSummary,
    Custom,
    CustomMessage,
    Label,
    SessionInfo,
    Leaf,
}

impl EntryType {
    pub const ALL: [EntryType; 12] = [
        EntryType::Session,
        EntryType::Message,
        EntryType::ModelChange,
        EntryType::ThinkingLevelChange,
        EntryType::Compaction,
        EntryType::Reset,
        EntryType::BranchSummary,
        EntryType::Custom,
        EntryType::CustomMessage,
        EntryType::Label,
        EntryType::SessionInfo,
        EntryType::Leaf,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Session => "session",
            EntryType::Message => "message",
            EntryType::ModelChange => "model_change",
            EntryType::ThinkingLevelChange => "thinking_level_change",
            EntryType::Compaction => "compaction",
            EntryType::Reset => "reset",
            EntryType::BranchSummary => "branch_summary",
            EntryType::Custom => "custom",
            EntryType::CustomMessage => "custom_message",
            EntryType::Label => "label",
            EntryType::SessionInfo => "session_info",
            EntryType::Leaf => "leaf",
        }
    }

    pub fn parse(s: &str) -> Option<EntryType> {
        EntryType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl TranscriptEntry {
    /// The header that opens a new sessionId's transcript.
    pub fn header(
        session_id: &str,
        now_ms: i64,
        cwd: Option<String>,
        parent_session: Option<String>,
    ) -> Self {
        TranscriptEntry::Session(SessionHeader {
            version: CURRENT_SESSION_VERSION,
            id: session_id.to_string(),
            timestamp: iso8601_from_ms(now_ms),
            cwd,
            parent_session,
            extra: Map::new(),
        })
    }

    /// A `message` entry wrapping `message` (which carries `role`, `content`, ...).
    pub fn message(parent_id: Option<String>, now_ms: i64, message: Value) -> Self {
        TranscriptEntry::Message(MessageEntry {
            message,
            meta: EntryMeta::new(parent_id, now_ms),
            extra: Map::new(),
        })
    }

    /// A `reset` entry with `reason` (`new`, `reset`, `idle`, `daily`, `cron-stale`).
    pub fn reset(parent_id: Option<String>, now_ms: i64, reason: &str) -> Self {
        TranscriptEntry::Reset(ResetEntry {
            reason: reason.to_string(),
            first_kept_entry_id: None,
            meta: EntryMeta::new(parent_id, now_ms),
            extra: Map::new(),
        })
    }

    /// A `model_change` entry.
    pub fn model_change(
        parent_id: Option<String>,
        now_ms: i64,
        provider: &str,
        model_id: &str,
    ) -> Self {
        TranscriptEntry::ModelChange(ModelChangeEntry {
            provider: provider.to_string(),
            model_id: model_id.to_string(),
            meta: EntryMeta::new(parent_id, now_ms),
            extra: Map::new(),
        })
    }

    /// A `thinking_level_change` entry.
    pub fn thinking_level_change(parent_id: Option<String>, now_ms: i64, level: &str) -> Self {
        TranscriptEntry::ThinkingLevelChange(ThinkingLevelChangeEntry {
            thinking_level: level.to_string(),
            meta: EntryMeta::new(parent_id, now_ms),
            extra: Map::new(),
        })
    }

    /// A `custom` entry (not in the model context).
    pub fn custom(parent_id: Option<String>, now_ms: i64, custom_type: &str, data: Value) -> Self {
        TranscriptEntry::Custom(CustomEntry {
            custom_type: custom_type.to_string(),
            data,
            meta: EntryMeta::new(parent_id, now_ms),
            extra: Map::new(),
        })
    }

    pub fn entry_type(&self) -> EntryType {
        match self {
            TranscriptEntry::Session(_) => EntryType::Session,
            TranscriptEntry::Message(_) => EntryType::Message,
            TranscriptEntry::ModelChange(_) => EntryType::ModelChange,
            TranscriptEntry::ThinkingLevelChange(_) => EntryType::ThinkingLevelChange,
            TranscriptEntry::Compaction(_) => EntryType::Compaction,
            TranscriptEntry::Reset(_) => EntryType::Reset,
            TranscriptEntry::BranchSummary(_) => EntryType::BranchSummary,
            TranscriptEntry::Custom(_) => EntryType::Custom,
            TranscriptEntry::CustomMessage(_) => EntryType::CustomMessage,
            TranscriptEntry::Label(_) => EntryType::Label,
            TranscriptEntry::SessionInfo(_) => EntryType::SessionInfo,
            TranscriptEntry::Leaf(_) => EntryType::Leaf,
        }
    }

    /// The entry id (the sessionId for the header; `None` for an id-less leaf).
    pub fn id(&self) -> Option<&str> {
        match self {
            TranscriptEntry::Session(h) => Some(&h.id),
            TranscriptEntry::Leaf(m) => m.get("id").and_then(Value::as_str),
            other => other.meta().map(|m| m.id.as_str()),
        }
    }

    pub fn meta(&self) -> Option<&EntryMeta> {
        match self {
            TranscriptEntry::Message(e) => Some(&e.meta),
            TranscriptEntry::ModelChange(e) => Some(&e.meta),
            TranscriptEntry::ThinkingLevelChange(e) => Some(&e.meta),
            TranscriptEntry::Compaction(e) => Some(&e.meta),
            TranscriptEntry::Reset(e) => Some(&e.meta),
            TranscriptEntry::BranchSummary(e) => Some(&e.meta),
            TranscriptEntry::Custom(e) => Some(&e.meta),
            TranscriptEntry::CustomMessage(e) => Some(&e.meta),
            TranscriptEntry::Label(e) => Some(&e.meta),
            TranscriptEntry::SessionInfo(e) => Some(&e.meta),
            TranscriptEntry::Session(_) | TranscriptEntry::Leaf(_) => None,
        }
    }

    /// `message.role` of a message entry.
    pub fn role(&self) -> Option<&str> {
        match self {
            TranscriptEntry::Message(e) => e.message.get("role").and_then(Value::as_str),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const SAMPLE: &str = include_str!("../../../testdata/spec-samples/transcript-events.jsonl");

    /// Every line of the reference sample parses into a typed entry and serialises back to
    /// the same JSON value.
    #[test]
    fn reference_sample_round_trips() {
        let mut seen = std::collections::HashSet::new();
        for (i, line) in SAMPLE.lines().filter(|l| !l.trim().is_empty()).enumerate() {
            let original: Value = serde_json::from_str(line).unwrap();
            let entry: TranscriptEntry =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("line {}: {e}", i + 1));
            seen.insert(entry.entry_type());
            let back = serde_json::to_value(&entry).unwrap();
            assert_eq!(back, original, "line {} changed in round trip", i + 1);
        }
        assert!(seen.contains(&EntryType::Session));
        assert!(seen.contains(&EntryType::Message));
        assert!(seen.contains(&EntryType::ModelChange));
        assert!(seen.contains(&EntryType::ThinkingLevelChange));
        assert!(seen.contains(&EntryType::Custom));
    }

    #[test]
    fn constructors_produce_reference_shapes() {
        let h = serde_json::to_value(TranscriptEntry::header("sid", 0, Some("/w".into()), None))
            .unwrap();
        assert_eq!(
            h,
            serde_json::json!({"type":"session","version":4,"id":"sid","timestamp":"1970-01-01T00:00:00.000Z","cwd":"/w"})
        );
        let r =
            serde_json::to_value(TranscriptEntry::reset(Some("p".into()), 1000, "reset")).unwrap();
        assert_eq!(r["type"], "reset");
        assert_eq!(r["reason"], "reset");
        assert_eq!(r["parentId"], "p");
        assert_eq!(r["timestamp"], "1970-01-01T00:00:01.000Z");
        assert!(r["id"].as_str().unwrap().len() == 36);
        let m = serde_json::to_value(TranscriptEntry::model_change(None, 0, "p", "m")).unwrap();
        assert_eq!(m["parentId"], Value::Null);
        assert_eq!(m["modelId"], "m");
    }

    #[test]
    fn every_entry_type_parses() {
        let lines = [
            r#"{"type":"compaction","id":"a","parentId":null,"timestamp":"t","summary":"s","firstKeptEntryId":"b","tokensBefore":12}"#,
            r#"{"type":"branch_summary","id":"a","parentId":"x","timestamp":"t","fromId":"f","summary":"s"}"#,
            r#"{"type":"custom_message","id":"a","parentId":"x","timestamp":"t","customType":"c","content":"hi","display":true}"#,
            r#"{"type":"label","id":"a","parentId":"x","timestamp":"t","targetId":"z","label":"L"}"#,
            r#"{"type":"session_info","id":"a","parentId":"x","timestamp":"t","name":"N"}"#,
            r#"{"type":"leaf","id":"a","whatever":1}"#,
            r#"{"type":"reset","id":"a","parentId":"x","timestamp":"t","reason":"daily","firstKeptEntryId":"k"}"#,
        ];
        for line in lines {
            let original: Value = serde_json::from_str(line).unwrap();
            let e: TranscriptEntry = serde_json::from_str(line).unwrap();
            assert_eq!(e.entry_type().as_str(), original["type"]);
            assert_eq!(
                EntryType::parse(e.entry_type().as_str()),
                Some(e.entry_type())
            );
            assert_eq!(serde_json::to_value(&e).unwrap(), original);
        }
        assert!(serde_json::from_str::<TranscriptEntry>(r#"{"type":"bogus"}"#).is_err());
        assert!(serde_json::from_str::<TranscriptEntry>(
            r#"{"type":"model_change","id":"a","timestamp":"t"}"#
        )
        .is_err());
    }
}
