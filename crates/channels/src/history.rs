//! Unmentioned group history (runtime spec §6, "common behaviour"): group messages that are
//! allowed but did not mention the bot are kept (per conversation, up to `historyLimit`,
//! default 50, cap 200) and handed to the next run as context, then cleared.

use std::collections::{HashMap, VecDeque};

use serde::Serialize;

/// Default `historyLimit`.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;
/// Upper bound of `historyLimit`.
pub const MAX_HISTORY_LIMIT: usize = 200;
/// Conversations tracked at once (the least recently touched are dropped beyond this).
const MAX_CONVERSATIONS: usize = 2_000;

/// One remembered group message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    pub sender_id: String,
    pub sender_name: Option<String>,
    pub text: String,
    pub message_id: String,
    pub timestamp_ms: i64,
}

impl HistoryEntry {
    fn label(&self) -> &str {
        self.sender_name.as_deref().unwrap_or(&self.sender_id)
    }
}

/// Pending history per conversation.
#[derive(Debug)]
pub struct GroupHistory {
    limit: usize,
    tick: u64,
    entries: HashMap<String, (u64, VecDeque<HistoryEntry>)>,
}

impl GroupHistory {
    pub fn new(limit: usize) -> Self {
        GroupHistory {
            limit: limit.min(MAX_HISTORY_LIMIT),
            tick: 0,
            entries: HashMap::new(),
        }
    }

    /// Remembers an unmentioned message (a limit of 0 keeps nothing).
    pub fn push(&mut self, conversation: &str, entry: HistoryEntry) {
        if self.limit == 0 {
            return;
        }
        self.tick += 1;
        if !self.entries.contains_key(conversation) && self.entries.len() >= MAX_CONVERSATIONS {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (t, _))| *t)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
        let slot = self
            .entries
            .entry(conversation.to_string())
            .or_insert_with(|| (0, VecDeque::new()));
        slot.0 = self.tick;
        slot.1.push_back(entry);
        while slot.1.len() > self.limit {
            slot.1.pop_front();
        }
    }

    /// Takes (and clears) the conversation's pending history, oldest first.
    pub fn take(&mut self, conversation: &str) -> Vec<HistoryEntry> {
        self.entries
            .remove(conversation)
            .map(|(_, q)| q.into_iter().collect())
            .unwrap_or_default()
    }

    pub fn len(&self, conversation: &str) -> usize {
        self.entries.get(conversation).map_or(0, |(_, q)| q.len())
    }
}

/// The prompt text of a group turn with context: the reference's wrappers around the
/// pending history and the current message. Without history the message stands alone.
pub fn with_history(history: &[HistoryEntry], current_sender: &str, current: &str) -> String {
    if history.is_empty() {
        return current.to_string();
    }
    let mut out = String::from("[Chat messages since your last reply - for context]\n");
    for h in history {
        out.push_str(h.label());
        out.push_str(": ");
        out.push_str(&h.text);
        out.push('\n');
    }
    out.push_str("\n[Current message - respond to this]\n");
    out.push_str(current_sender);
    out.push_str(": ");
    out.push_str(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: usize) -> HistoryEntry {
        HistoryEntry {
            sender_id: format!("u{i}"),
            sender_name: (i % 2 == 0).then(|| format!("User {i}")),
            text: format!("message {i}"),
            message_id: i.to_string(),
            timestamp_ms: i as i64,
        }
    }

    #[test]
    fn keeps_the_newest_up_to_the_limit_and_clears_on_take() {
        let mut h = GroupHistory::new(3);
        for i in 0..5 {
            h.push("g1", entry(i));
        }
        h.push("g2", entry(9));
        let got = h.take("g1");
        assert_eq!(
            got.iter()
                .map(|e| e.message_id.as_str())
                .collect::<Vec<_>>(),
            vec!["2", "3", "4"]
        );
        assert!(h.take("g1").is_empty());
        assert_eq!(h.len("g2"), 1);
        assert_eq!(GroupHistory::new(10_000).limit, MAX_HISTORY_LIMIT);
        let mut none = GroupHistory::new(0);
        none.push("g", entry(1));
        assert_eq!(none.len("g"), 0);
    }

    #[test]
    fn wrappers_match_the_reference() {
        let text = with_history(&[entry(0), entry(1)], "Ann", "what do you think?");
        assert_eq!(
            text,
            "[Chat messages since your last reply - for context]\nUser 0: message 0\nu1: message 1\n\n[Current message - respond to this]\nAnn: what do you think?"
        );
        assert_eq!(with_history(&[], "Ann", "hi"), "hi");
    }
}
