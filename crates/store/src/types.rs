//! Request and result types of the store API.

use pincer_sessions::{ResetPolicy, ResetReason, SessionEntry, Touch, WindowReason};
use serde_json::Value;

/// A session row: its key and the stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub key: String,
    pub agent_id: String,
    /// `SessionKey::classification()` of the key.
    pub kind: String,
    pub entry: SessionEntry,
}

/// How `ensure_session` should treat an existing session.
#[derive(Debug, Clone)]
pub struct EnsureSession {
    pub now_ms: i64,
    /// Reset policy in force for this key (`ResetPolicy::default()` = never reset).
    pub policy: ResetPolicy,
    /// Local time zone offset for the daily boundary.
    pub utc_offset_ms: i64,
    /// `cwd` for a new transcript header.
    pub cwd: Option<String>,
    /// Timestamps to move (e.g. `Touch::UserMessage` for an inbound message).
    pub touch: Option<Touch>,
    /// Initial fields for a newly created entry (label, displayName, chatType, createdVia ...);
    /// `sessionId`, `updatedAt`, `createdAt`, `sessionStartedAt` are set by the store.
    pub template: Option<SessionEntry>,
}

impl EnsureSession {
    pub fn at(now_ms: i64) -> Self {
        EnsureSession {
            now_ms,
            policy: ResetPolicy::default(),
            utc_offset_ms: 0,
            cwd: None,
            touch: None,
            template: None,
        }
    }
}

/// What `ensure_session` did.
#[derive(Debug, Clone, PartialEq)]
pub struct Ensured {
    pub record: SessionRecord,
    /// The key had no session before.
    pub created: bool,
    /// The previous sessionId was stale and got replaced, for this reason.
    pub rotated: Option<ResetReason>,
    pub previous_session_id: Option<String>,
}

/// Options of one append.
#[derive(Debug, Clone, Default)]
pub struct AppendOptions {
    /// Set each entry's `parentId` to the previous leaf (the entry appended before it).
    pub chain: bool,
    /// Timestamps of the session entry to move in the same transaction.
    pub touch: Option<Touch>,
    pub now_ms: i64,
    /// Refuse the append unless the key is still at this sessionId.
    pub expected_session_id: Option<String>,
}

/// Acknowledgement of a committed append: the entries are durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendAck {
    pub session_id: String,
    pub first_seq: i64,
    pub last_seq: i64,
    /// Id of the last appended entry (the new leaf), if it has one.
    pub leaf_id: Option<String>,
    /// Message entries in the window after this append: the ordinal of its last message
    /// (`chat.history`'s `__openclaw.seq`, `session.message`'s `messageSeq`).
    pub message_count: i64,
    /// When the entries were written (epoch ms; their `recordTimestampMs`).
    pub created_at: i64,
}

/// Result of `reset_session`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResetOutcome {
    pub record: SessionRecord,
    /// `None` when the key had no session (a fresh one was created).
    pub previous_session_id: Option<String>,
}

/// Result of `delete_session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    pub deleted: bool,
    /// SessionIds whose transcripts were kept (when not deleting transcripts).
    pub archived: Vec<String>,
}

/// Sort order of `list_sessions`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortBy {
    #[default]
    UpdatedAt,
    LastInteractionAt,
}

/// `sessions.list` filters.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub agent_id: Option<String>,
    /// Only sessions of these agents; empty = any agent.
    pub agent_ids: Vec<String>,
    /// Only these session keys (`Some(vec![])` matches nothing); `None` = any key.
    pub keys: Option<Vec<String>>,
    /// `Some(true)` only pinned sessions (`pinnedAt` set), `Some(false)` only unpinned.
    pub pinned: Option<bool>,
    /// Exact label match.
    pub label: Option<String>,
    /// Case-insensitive substring of key, label or display name.
    pub search: Option<String>,
    /// Only sessions updated within this many minutes of `now_ms`.
    pub active_minutes: Option<u64>,
    pub now_ms: i64,
    /// Only sessions of these kinds (`SessionKey::classification()`); empty = all.
    pub kinds: Vec<String>,
    /// Exclude these kinds (e.g. `cron`, `subagent`).
    pub exclude_kinds: Vec<String>,
    /// `Some(true)` only archived, `Some(false)` only live, `None` both.
    pub archived: Option<bool>,
    pub sort_by: SortBy,
    /// Default 100, capped at 1000.
    pub limit: Option<usize>,
    pub offset: usize,
}

/// One page of sessions.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionPage {
    pub sessions: Vec<SessionRecord>,
    pub total_count: usize,
    pub limit_applied: usize,
    pub next_offset: Option<usize>,
    pub has_more: bool,
}

/// A stored transcript entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEntry {
    pub seq: i64,
    pub entry_type: String,
    pub entry_id: Option<String>,
    pub created_at: i64,
    /// The entry's JSON text, exactly as appended.
    pub json: String,
}

impl StoredEntry {
    pub fn value(&self) -> Result<Value, serde_json::Error> {
        serde_json::from_str(&self.json)
    }

    pub fn typed(&self) -> Result<pincer_sessions::TranscriptEntry, serde_json::Error> {
        serde_json::from_str(&self.json)
    }
}

/// Which entries a transcript read returns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EntryFilter {
    #[default]
    All,
    /// Only `message` entries (what `chat.history` shows).
    Messages,
}

/// A transcript page request: the newest `limit` entries strictly before `cursor`.
#[derive(Debug, Clone, Default)]
pub struct HistoryQuery {
    pub limit: usize,
    pub cursor: Option<String>,
    pub filter: EntryFilter,
}

/// A transcript page, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    pub session_id: String,
    pub entries: Vec<StoredEntry>,
    /// More (older) entries exist; pass `next_cursor` to get them.
    pub has_more: bool,
    pub next_cursor: Option<String>,
    pub counts: TranscriptCounts,
}

/// Totals of one transcript.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TranscriptCounts {
    pub entries: i64,
    pub messages: i64,
    pub last_seq: i64,
}

/// One sessionId generation of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionWindow {
    pub session_id: String,
    pub session_key: String,
    pub previous_session_id: Option<String>,
    pub reason: WindowReason,
    pub end_reason: Option<String>,
    pub started_at: i64,
    pub ended_at: Option<i64>,
    pub counts: TranscriptCounts,
}

/// `sessions.preview` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewItem {
    pub role: String,
    pub text: String,
}

/// `sessions.preview` result for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preview {
    pub key: String,
    /// `ok`, or `missing` when the key has no session.
    pub status: &'static str,
    pub items: Vec<PreviewItem>,
}
