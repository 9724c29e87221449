//! Discord `MESSAGE_CREATE` → [`ChannelMessage`].

use serde_json::Value;

use crate::message::{ChannelMessage, ChatType, Conversation, MediaRef, Sender};

/// Discord epoch (2015-01-01) in Unix milliseconds.
const DISCORD_EPOCH_MS: i64 = 1_420_070_400_000;

/// What the adapter knows about a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    pub kind: u64,
    pub parent_id: Option<String>,
}

impl ChannelInfo {
    pub fn from_json(v: &Value) -> Option<Self> {
        Some(ChannelInfo {
            kind: v.get("type").and_then(Value::as_u64)?,
            parent_id: v
                .get("parent_id")
                .and_then(Value::as_str)
                .map(str::to_string),
        })
    }

    /// Announcement, public and private threads.
    pub fn is_thread(&self) -> bool {
        matches!(self.kind, 10..=12)
    }
}

fn s(v: &Value, k: &str) -> Option<String> {
    v.get(k).and_then(Value::as_str).map(str::to_string)
}

/// Normalises a `MESSAGE_CREATE` payload; `None` for malformed or non-user messages.
pub fn normalize_message(
    d: &Value,
    account_id: &str,
    bot_id: &str,
    info: Option<&ChannelInfo>,
) -> Option<ChannelMessage> {
    let id = s(d, "id")?;
    let channel_id = s(d, "channel_id")?;
    let author = d.get("author")?;
    // Only default messages and replies (system messages have other types).
    if !matches!(d.get("type").and_then(Value::as_u64).unwrap_or(0), 0 | 19) {
        return None;
    }
    let guild_id = s(d, "guild_id");
    let (chat_type, thread_id, parent) = match (&guild_id, info) {
        (None, _) => (ChatType::Direct, None, None),
        (Some(_), Some(i)) if i.is_thread() => (
            ChatType::Channel,
            Some(channel_id.clone()),
            i.parent_id.clone(),
        ),
        (Some(_), _) => (ChatType::Channel, None, None),
    };
    let content = s(d, "content").unwrap_or_default();
    let mentions: Vec<String> = d
        .get("mentions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|m| s(m, "id"))
        .collect();
    let mentions_bot = !bot_id.is_empty()
        && (mentions.iter().any(|m| m == bot_id)
            || content.contains(&format!("<@{bot_id}>"))
            || content.contains(&format!("<@!{bot_id}>")));
    let referenced = d.get("referenced_message").filter(|r| r.is_object());
    let reply_to_bot = referenced
        .and_then(|r| r.get("author"))
        .and_then(|a| s(a, "id"))
        .is_some_and(|a| !bot_id.is_empty() && a == bot_id);
    let media = d
        .get("attachments")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| {
            Some(MediaRef {
                kind: match s(a, "content_type") {
                    Some(ct) if ct.starts_with("image/") => "photo".into(),
                    Some(ct) if ct.starts_with("audio/") => "audio".into(),
                    Some(ct) if ct.starts_with("video/") => "video".into(),
                    _ => "document".into(),
                },
                id: s(a, "id")?,
                url: s(a, "url"),
                mime_type: s(a, "content_type"),
                file_name: s(a, "filename"),
                size_bytes: a.get("size").and_then(Value::as_u64),
            })
        })
        .collect();
    let timestamp_ms = id
        .parse::<u64>()
        .map(|snowflake| DISCORD_EPOCH_MS + (snowflake >> 22) as i64)
        .unwrap_or(0);
    Some(ChannelMessage {
        conversation: Conversation {
            channel: "discord".into(),
            account_id: account_id.to_string(),
            chat_type,
            chat_id: channel_id,
            thread_id,
        },
        message_id: id,
        sender: Sender {
            id: s(author, "id")?,
            name: s(author, "global_name").or_else(|| s(author, "username")),
            username: s(author, "username"),
            is_bot: author.get("bot").and_then(Value::as_bool).unwrap_or(false),
        },
        text: content,
        mentions,
        mentions_bot,
        reply_to_bot,
        reply_to_message_id: d
            .pointer("/message_reference/message_id")
            .and_then(Value::as_str)
            .map(str::to_string),
        media,
        member_roles: d
            .pointer("/member/roles")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| r.as_str().map(str::to_string))
            .collect(),
        guild_id,
        team_id: None,
        parent_chat_id: parent,
        timestamp_ms,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn dms_guild_channels_threads_and_mentions() {
        let dm = json!({"id": "175928847299117063", "channel_id": "D1", "type": 0, "content": "hi",
            "author": {"id": "U1", "username": "ann", "global_name": "Ann"}});
        let m = normalize_message(&dm, "default", "B1", None).unwrap();
        assert_eq!(
            (m.conversation.chat_type, m.sender.name.as_deref()),
            (ChatType::Direct, Some("Ann"))
        );
        assert_eq!(m.timestamp_ms, 1_462_015_105_796, "snowflake time");

        let guild = json!({"id": "2", "channel_id": "T9", "guild_id": "G1", "type": 0, "content": "<@B1> help",
            "author": {"id": "U1", "username": "ann"}, "mentions": [{"id": "B1"}], "member": {"roles": ["R1"]},
            "attachments": [{"id": "A1", "url": "https://cdn/x.png", "filename": "x.png", "content_type": "image/png", "size": 10}]});
        let thread = ChannelInfo {
            kind: 11,
            parent_id: Some("C5".into()),
        };
        let m = normalize_message(&guild, "default", "B1", Some(&thread)).unwrap();
        assert!(m.mentions_bot);
        assert_eq!(
            (
                m.conversation.thread_id.as_deref(),
                m.parent_chat_id.as_deref()
            ),
            (Some("T9"), Some("C5"))
        );
        assert_eq!(
            (m.member_roles.clone(), m.media[0].kind.as_str()),
            (vec!["R1".to_string()], "photo")
        );
        let plain = ChannelInfo {
            kind: 0,
            parent_id: Some("CAT".into()),
        };
        let m = normalize_message(&guild, "default", "B1", Some(&plain)).unwrap();
        assert_eq!(
            (m.conversation.thread_id, m.parent_chat_id),
            (None, None),
            "category parents are not threads"
        );

        let reply = json!({"id": "3", "channel_id": "C5", "guild_id": "G1", "type": 19, "content": "and?",
            "author": {"id": "U1"}, "referenced_message": {"id": "1", "author": {"id": "B1"}}, "message_reference": {"message_id": "1"}});
        let m = normalize_message(&reply, "default", "B1", None).unwrap();
        assert!(m.reply_to_bot && !m.mentions_bot);
        assert!(normalize_message(
            &json!({"id": "4", "channel_id": "C", "type": 7, "author": {"id": "U"}}),
            "default",
            "B1",
            None
        )
        .is_none());
    }
}
