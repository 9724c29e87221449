//! The model context of a session: the transcript since the last reset or compaction, turned
//! into provider messages; token estimates; where a compaction may cut.
//!
//! Rules (runtime.md §2.5, §4.7):
//! - A `reset` entry starts a fresh context; a `compaction` entry replaces everything before
//!   its `firstKeptEntryId` with its summary.
//! - Gateway-injected assistant notes (command replies, `chat.inject`) and command messages
//!   are shown to people, not to the model.
//! - An aborted or failed assistant turn is replayed as a short marker, never as partial tool
//!   calls; tool calls without a result get a synthetic error result, results without a call
//!   are dropped, so every provider accepts the history.

use pincer_providers::{ContentBlock, Message, ToolResultMessage, UserContent, UserMessage};
use pincer_store::{EntryFilter, HistoryQuery, Store, StoreError, StoredEntry};
use serde_json::{Map, Value};

/// Provider/model of gateway-injected assistant messages.
pub const INJECTED_PROVIDER: &str = "openclaw";
pub const INJECTED_MODEL: &str = "gateway-injected";

/// Transcript entries read per page while looking for the context start.
const PAGE: usize = 500;

/// One message of the context with the transcript entry it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct ContextItem {
    /// Transcript entry id (`firstKeptEntryId` candidates).
    pub entry_id: String,
    pub message: Message,
    pub tokens: u64,
}

/// What the model sees of a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Context {
    /// Summary of the compacted part, if any.
    pub summary: Option<String>,
    pub items: Vec<ContextItem>,
}

impl Context {
    /// The messages to send: the summary (as a user message) followed by the items.
    pub fn messages(&self) -> Vec<Message> {
        let mut out = Vec::with_capacity(self.items.len() + 1);
        if let Some(summary) = &self.summary {
            out.push(Message::user(summary_message(summary)));
        }
        out.extend(self.items.iter().map(|i| i.message.clone()));
        sanitize_tool_pairs(out)
    }

    /// Estimated tokens of the messages (summary included).
    pub fn tokens(&self) -> u64 {
        self.summary.as_deref().map_or(0, |s| estimate_text(s) + 8)
            + self.items.iter().map(|i| i.tokens).sum::<u64>()
    }

    pub fn push(&mut self, entry_id: String, message: Message) {
        let tokens = estimate_message(&message);
        self.items.push(ContextItem {
            entry_id,
            message,
            tokens,
        });
    }
}

/// How the compaction summary is presented to the model.
pub fn summary_message(summary: &str) -> String {
    format!(
        "[Summary of the earlier part of this conversation, written when it was compacted]\n{summary}"
    )
}

/// Reads the context of `session_id` from the store.
pub async fn load_context(store: &Store, session_id: &str) -> Result<Context, StoreError> {
    let mut collected: Vec<StoredEntry> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store
            .history_of(
                session_id,
                HistoryQuery {
                    limit: PAGE,
                    cursor: cursor.clone(),
                    filter: EntryFilter::All,
                },
            )
            .await?;
        let mut entries = page.entries;
        entries.append(&mut collected);
        collected = entries;
        if matches!(context_start(&collected), Start::At(..)) || !page.has_more {
            break;
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let (start, summary) = context_start_final(&collected);
    let mut context = Context {
        summary,
        items: Vec::new(),
    };
    for stored in &collected[start..] {
        let Ok(value) = stored.value() else { continue };
        if let Some((entry_id, message)) = entry_to_message(&value) {
            context.push(entry_id, message);
        }
    }
    Ok(context)
}

/// Where the context begins in a window of the transcript (oldest first).
enum Start {
    /// Use `entries[index..]`, preceded by this summary.
    At(usize, Option<String>),
    /// A boundary refers to an entry before this window: read further back.
    NeedMore,
    /// No boundary in this window.
    None,
}

fn context_start(entries: &[StoredEntry]) -> Start {
    for (i, stored) in entries.iter().enumerate().rev() {
        match stored.entry_type.as_str() {
            "reset" => {
                let first_kept = stored
                    .value()
                    .ok()
                    .and_then(|v| v["firstKeptEntryId"].as_str().map(str::to_owned));
                return match first_kept {
                    Some(id) => {
                        find_id(entries, &id).map_or(Start::NeedMore, |k| Start::At(k, None))
                    }
                    None => Start::At(i + 1, None),
                };
            }
            "compaction" => {
                let Ok(v) = stored.value() else {
                    return Start::At(i + 1, None);
                };
                let summary = v["summary"].as_str().map(str::to_owned);
                let first_kept = v["firstKeptEntryId"].as_str().unwrap_or("");
                // Entries from firstKeptEntryId up to the compaction, then everything after.
                return match find_id(&entries[..i], first_kept) {
                    Some(k) => Start::At(k, summary),
                    None => Start::NeedMore,
                };
            }
            _ => {}
        }
    }
    Start::None
}

/// Like [`context_start`] when nothing older exists: a boundary whose kept entry is gone
/// starts right after the boundary.
fn context_start_final(entries: &[StoredEntry]) -> (usize, Option<String>) {
    match context_start(entries) {
        Start::At(i, s) => (i, s),
        Start::None => (0, None),
        Start::NeedMore => {
            for (i, stored) in entries.iter().enumerate().rev() {
                if matches!(stored.entry_type.as_str(), "reset" | "compaction") {
                    let summary = stored
                        .value()
                        .ok()
                        .and_then(|v| v["summary"].as_str().map(str::to_owned));
                    return (i + 1, summary);
                }
            }
            (0, None)
        }
    }
}

fn find_id(entries: &[StoredEntry], id: &str) -> Option<usize> {
    entries
        .iter()
        .position(|e| e.entry_id.as_deref() == Some(id))
}

/// The model message of one transcript entry, or `None` when it is not part of the context.
pub fn entry_to_message(entry: &Value) -> Option<(String, Message)> {
    let entry_id = entry["id"].as_str()?.to_owned();
    match entry["type"].as_str()? {
        "message" => {
            let raw = &entry["message"];
            if raw["__openclaw"]["command"].as_bool() == Some(true) {
                return None;
            }
            match raw["role"].as_str()? {
                "assistant" => {
                    if raw["model"].as_str() == Some(INJECTED_MODEL) {
                        return None;
                    }
                    let stop = raw["stopReason"].as_str().unwrap_or("stop");
                    if stop == "error" || stop == "aborted" {
                        return Some((
                            entry_id,
                            Message::assistant(vec![ContentBlock::text(failure_marker(raw, stop))]),
                        ));
                    }
                    let message: Message = serde_json::from_value(strip_private(raw)).ok()?;
                    Some((entry_id, message))
                }
                "user" | "toolResult" => {
                    let message: Message = serde_json::from_value(strip_private(raw)).ok()?;
                    Some((entry_id, message))
                }
                _ => None,
            }
        }
        "custom_message" => {
            let content = match &entry["content"] {
                Value::String(s) => UserContent::Text(s.clone()),
                Value::Array(_) => {
                    UserContent::Blocks(serde_json::from_value(entry["content"].clone()).ok()?)
                }
                _ => return None,
            };
            Some((
                entry_id,
                Message::User(UserMessage {
                    content,
                    timestamp: None,
                    extra: Map::new(),
                }),
            ))
        }
        _ => None,
    }
}

/// Drops fields that never go to a provider (`__openclaw`, `details`).
fn strip_private(raw: &Value) -> Value {
    let mut v = raw.clone();
    if let Some(obj) = v.as_object_mut() {
        obj.remove("__openclaw");
        obj.remove("details");
        obj.remove("openclawDisplayContent");
    }
    v
}

fn failure_marker(raw: &Value, stop: &str) -> String {
    let partial: String = raw["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["type"] == "text")
        .map(|b| b["text"].as_str().unwrap_or(""))
        .collect();
    let what = if stop == "aborted" {
        "was stopped before it finished"
    } else {
        "failed"
    };
    let partial = partial.trim();
    if partial.is_empty() {
        format!("[My previous reply {what}.]")
    } else {
        let preview: String = partial.chars().take(200).collect();
        format!("[My previous reply {what}. It began: \"{preview}\"]")
    }
}

/// Makes tool calls and results pair up: a call without a result gets a synthetic error
/// result right after its assistant message; a result without a call is dropped.
pub fn sanitize_tool_pairs(messages: Vec<Message>) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len());
    let mut open: Vec<(String, String)> = Vec::new();
    let close_open = |out: &mut Vec<Message>, open: &mut Vec<(String, String)>| {
        for (id, name) in open.drain(..) {
            out.push(Message::ToolResult(ToolResultMessage {
                tool_call_id: id,
                tool_name: name,
                content: vec![ContentBlock::text("The tool call did not complete.")],
                details: None,
                is_error: true,
                timestamp: None,
                extra: Map::new(),
            }));
        }
    };
    for message in messages {
        match &message {
            Message::ToolResult(result) => {
                if let Some(pos) = open.iter().position(|(id, _)| *id == result.tool_call_id) {
                    open.remove(pos);
                    out.push(message);
                }
            }
            Message::Assistant(assistant) => {
                close_open(&mut out, &mut open);
                open.extend(
                    assistant
                        .tool_calls()
                        .map(|(id, name, _)| (id.to_owned(), name.to_owned())),
                );
                out.push(message);
            }
            Message::User(_) => {
                close_open(&mut out, &mut open);
                out.push(message);
            }
        }
    }
    close_open(&mut out, &mut open);
    out
}

/// A rough token count: about four characters per token.
pub fn estimate_text(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// Estimated tokens of one message (content, tool arguments and results).
pub fn estimate_message(message: &Message) -> u64 {
    let blocks = |blocks: &[ContentBlock]| -> u64 {
        blocks
            .iter()
            .map(|b| match b {
                ContentBlock::Text { text, .. } => estimate_text(text),
                ContentBlock::Thinking { thinking, .. } => estimate_text(thinking),
                ContentBlock::ToolCall {
                    name, arguments, ..
                } => estimate_text(name) + estimate_text(&arguments.to_string()) + 4,
                ContentBlock::Image { .. } => 1_000,
            })
            .sum()
    };
    4 + match message {
        Message::User(u) => match &u.content {
            UserContent::Text(t) => estimate_text(t),
            UserContent::Blocks(b) => blocks(b),
        },
        Message::Assistant(a) => blocks(&a.content),
        Message::ToolResult(r) => blocks(&r.content) + 4,
    }
}

/// Tokens kept free for the reply and tool output: 20,000 for windows of 80k and more,
/// never more than a quarter of the window (runtime.md §4.7).
pub fn reserve_tokens(window: u64) -> u64 {
    20_000.min(window / 4)
}

/// Recent context a compaction keeps verbatim (`keepRecentTokens`, 20,000), never more than
/// a quarter of the window.
pub fn keep_recent_tokens(window: u64) -> u64 {
    20_000.min(window / 4)
}

/// Index of the first item a compaction keeps: the oldest user message from which the
/// rest fits in `keep_budget` (at least the newest user turn is kept). `None` when there is
/// nothing before it to summarise.
pub fn choose_cut(items: &[ContextItem], keep_budget: u64) -> Option<usize> {
    let user_positions: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, i)| matches!(i.message, Message::User(_)))
        .map(|(n, _)| n)
        .collect();
    let last_user = *user_positions.last()?;
    let mut suffix = vec![0u64; items.len() + 1];
    for n in (0..items.len()).rev() {
        suffix[n] = suffix[n + 1] + items[n].tokens;
    }
    let cut = user_positions
        .iter()
        .copied()
        .find(|&p| suffix[p] <= keep_budget)
        .unwrap_or(last_user);
    (cut > 0).then_some(cut)
}

/// Renders messages as plain text for the summariser (tool output shortened).
pub fn render_for_summary(messages: &[Message], max_chars: usize) -> String {
    let mut out = String::new();
    for message in messages {
        match message {
            Message::User(u) => {
                let text = match &u.content {
                    UserContent::Text(t) => t.clone(),
                    UserContent::Blocks(b) => blocks_text(b),
                };
                out.push_str(&format!("User: {text}\n\n"));
            }
            Message::Assistant(a) => {
                let text = a.text();
                if !text.trim().is_empty() {
                    out.push_str(&format!("Assistant: {text}\n\n"));
                }
                for (_, name, args) in a.tool_calls() {
                    let args = shorten(&args.to_string(), 300);
                    out.push_str(&format!("Assistant called {name} {args}\n\n"));
                }
            }
            Message::ToolResult(r) => {
                let text = shorten(&blocks_text(&r.content), 1_500);
                let status = if r.is_error { " (error)" } else { "" };
                out.push_str(&format!("Result of {}{status}: {text}\n\n", r.tool_name));
            }
        }
    }
    if out.len() > max_chars {
        // Keep the beginning and the end; the middle of a very long history matters least.
        let head: String = out.chars().take(max_chars / 3).collect();
        let tail_len = max_chars - head.len();
        let tail: String = {
            let chars: Vec<char> = out.chars().collect();
            chars[chars.len().saturating_sub(tail_len)..]
                .iter()
                .collect()
        };
        out = format!("{head}\n[… part of the conversation left out …]\n{tail}");
    }
    out
}

fn blocks_text(blocks: &[ContentBlock]) -> String {
    blocks
        .iter()
        .filter_map(|b| match b {
            ContentBlock::Text { text, .. } => Some(text.as_str()),
            ContentBlock::Image { .. } => Some("[image]"),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        text.chars().take(max).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use serde_json::json;

    fn item(id: &str, message: Message) -> ContextItem {
        ContextItem {
            entry_id: id.into(),
            tokens: estimate_message(&message),
            message,
        }
    }

    #[test]
    fn injected_and_command_messages_are_not_context() {
        let injected = json!({"type":"message","id":"a","message":{"role":"assistant","content":[{"type":"text","text":"✅ Session reset."}],
            "provider":"openclaw","model":"gateway-injected","api":"openai-responses","stopReason":"stop"}});
        assert!(entry_to_message(&injected).is_none());
        let command = json!({"type":"message","id":"b","message":{"role":"user","content":"/status","__openclaw":{"command":true}}});
        assert!(entry_to_message(&command).is_none());
        let user = json!({"type":"message","id":"c","message":{"role":"user","content":"hi","__openclaw":{"senderIsOwner":true}}});
        let (id, m) = entry_to_message(&user).unwrap();
        assert_eq!(id, "c");
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"role":"user","content":"hi"})
        );
    }

    #[test]
    fn aborted_turns_become_markers_without_tool_calls() {
        let aborted = json!({"type":"message","id":"a","message":{"role":"assistant","stopReason":"aborted",
            "content":[{"type":"text","text":"Let me"},{"type":"toolCall","id":"t","name":"read","arguments":{}}]}});
        let (_, m) = entry_to_message(&aborted).unwrap();
        let Message::Assistant(a) = m else { panic!() };
        assert_eq!(a.tool_calls().count(), 0);
        assert!(a.text().contains("was stopped") && a.text().contains("Let me"));
    }

    #[test]
    fn tool_pairs_are_repaired() {
        let call = Message::assistant(vec![ContentBlock::ToolCall {
            id: "t1".into(),
            name: "read".into(),
            arguments: json!({}),
        }]);
        let stray = Message::tool_result("zz", "read", "x", false);
        let fixed = sanitize_tool_pairs(vec![Message::user("a"), call, Message::user("b"), stray]);
        assert_eq!(fixed.len(), 4);
        let Message::ToolResult(r) = &fixed[2] else {
            panic!("synthetic result expected")
        };
        assert!(r.is_error && r.tool_call_id == "t1");
        assert!(matches!(fixed[3], Message::User(_)));
    }

    #[test]
    fn cut_keeps_recent_turns_and_never_splits_tool_pairs() {
        let big = "x".repeat(4_000); // ~1000 tokens
        let call = Message::assistant(vec![ContentBlock::ToolCall {
            id: "t".into(),
            name: "read".into(),
            arguments: json!({}),
        }]);
        let items = vec![
            item("u1", Message::user(big.clone())),
            item(
                "a1",
                Message::assistant(vec![ContentBlock::text(big.clone())]),
            ),
            item("u2", Message::user("q")),
            item("a2", call),
            item("r2", Message::tool_result("t", "read", big.clone(), false)),
            item("a3", Message::assistant(vec![ContentBlock::text("done")])),
            item("u3", Message::user("next")),
        ];
        // Budget fits the last two turns but not the first.
        assert_eq!(choose_cut(&items, 1_200), Some(2));
        // A tiny budget still keeps the newest turn whole.
        assert_eq!(choose_cut(&items, 1), Some(6));
        // Everything fits: nothing to summarise.
        assert_eq!(choose_cut(&items, 1_000_000), None);
        assert_eq!(reserve_tokens(32_000), 8_000);
        assert_eq!(reserve_tokens(200_000), 20_000);
    }
}
