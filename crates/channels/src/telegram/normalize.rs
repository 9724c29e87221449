//! Telegram `Update` → [`ChannelMessage`].

use serde_json::Value;

use super::BotInfo;
use crate::message::{ChannelMessage, ChatType, Conversation, MediaRef, Sender};

/// The text covered by an entity (offsets and lengths are UTF-16 code units).
fn entity_text(text: &str, offset: usize, length: usize) -> Option<String> {
    let units: Vec<u16> = text.encode_utf16().collect();
    let end = offset.checked_add(length)?;
    let slice = units.get(offset..end)?;
    String::from_utf16(slice).ok()
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

fn id_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_i64).map(|n| n.to_string())
}

fn media_of(m: &Value) -> Vec<MediaRef> {
    let mut out = Vec::new();
    let file = |kind: &str, f: &Value| MediaRef {
        kind: kind.to_string(),
        id: str_field(f, "file_id").unwrap_or_default(),
        url: None,
        mime_type: str_field(f, "mime_type"),
        file_name: str_field(f, "file_name"),
        size_bytes: f.get("file_size").and_then(Value::as_u64),
    };
    // Photos come in several sizes; the last is the largest.
    if let Some(p) = m
        .get("photo")
        .and_then(Value::as_array)
        .and_then(|a| a.last())
    {
        out.push(file("photo", p));
    }
    for kind in [
        "document",
        "audio",
        "video",
        "voice",
        "sticker",
        "animation",
        "video_note",
    ] {
        if let Some(f) = m.get(kind).filter(|f| f.is_object()) {
            out.push(file(kind, f));
        }
    }
    out.retain(|f| !f.id.is_empty());
    out
}

/// Normalises one update; `None` for updates that are not user messages (or malformed).
pub fn normalize_update(update: &Value, account_id: &str, bot: &BotInfo) -> Option<ChannelMessage> {
    let m = update.get("message")?;
    let chat = m.get("chat")?;
    let chat_id = id_field(chat, "id")?;
    let chat_type = match chat.get("type").and_then(Value::as_str)? {
        "private" => ChatType::Direct,
        "group" | "supergroup" => ChatType::Group,
        _ => return None,
    };
    let from = m.get("from")?;
    let sender_id = id_field(from, "id")?;
    let name = match (str_field(from, "first_name"), str_field(from, "last_name")) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (f, l) => f.or(l),
    };
    let text = str_field(m, "text")
        .or_else(|| str_field(m, "caption"))
        .unwrap_or_default();
    let entities = m
        .get("entities")
        .or_else(|| m.get("caption_entities"))
        .and_then(Value::as_array);
    let bot_handle = bot.username.as_deref().map(|u| format!("@{u}"));
    let mut mentions = Vec::new();
    let mut mentions_bot = false;
    for e in entities.into_iter().flatten() {
        let (Some(offset), Some(length)) = (
            e.get("offset").and_then(Value::as_u64),
            e.get("length").and_then(Value::as_u64),
        ) else {
            continue;
        };
        let covered = entity_text(&text, offset as usize, length as usize);
        match e.get("type").and_then(Value::as_str) {
            Some("mention") => {
                if let Some(handle) = covered {
                    if bot_handle
                        .as_deref()
                        .is_some_and(|b| b.eq_ignore_ascii_case(&handle))
                    {
                        mentions_bot = true;
                        mentions.push(bot.id.clone());
                    } else {
                        mentions.push(handle);
                    }
                }
            }
            Some("text_mention") => {
                if let Some(uid) = e.get("user").and_then(|u| id_field(u, "id")) {
                    mentions_bot |= uid == bot.id;
                    mentions.push(uid);
                }
            }
            // `/cmd@botname` addresses the bot too.
            Some("bot_command") => {
                if let (Some(cmd), Some(handle)) = (covered, bot_handle.as_deref()) {
                    if cmd
                        .split_once('@')
                        .is_some_and(|(_, at)| format!("@{at}").eq_ignore_ascii_case(handle))
                    {
                        mentions_bot = true;
                    }
                }
            }
            _ => {}
        }
    }
    let is_topic = m.get("is_topic_message").and_then(Value::as_bool) == Some(true);
    let thread_id = if is_topic {
        id_field(m, "message_thread_id")
    } else {
        None
    };
    let reply = m.get("reply_to_message");
    // In a forum topic every message "replies" to the topic's service message; only a real
    // reply to the bot counts.
    let reply_is_topic_root = reply.is_some_and(|r| r.get("forum_topic_created").is_some());
    let reply_to_bot = !reply_is_topic_root
        && reply
            .and_then(|r| r.get("from"))
            .and_then(|f| id_field(f, "id"))
            .is_some_and(|id| id == bot.id);
    Some(ChannelMessage {
        conversation: Conversation {
            channel: "telegram".into(),
            account_id: account_id.to_string(),
            chat_type,
            chat_id,
            thread_id,
        },
        message_id: id_field(m, "message_id")?,
        sender: Sender {
            id: sender_id,
            name,
            username: str_field(from, "username"),
            is_bot: from.get("is_bot").and_then(Value::as_bool).unwrap_or(false),
        },
        text,
        mentions,
        mentions_bot,
        reply_to_bot,
        reply_to_message_id: reply
            .filter(|_| !reply_is_topic_root)
            .and_then(|r| id_field(r, "message_id")),
        media: media_of(m),
        guild_id: None,
        team_id: None,
        member_roles: Vec::new(),
        parent_chat_id: None,
        timestamp_ms: m
            .get("date")
            .and_then(Value::as_i64)
            .unwrap_or(0)
            .saturating_mul(1000),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn bot() -> BotInfo {
        BotInfo {
            id: "999".into(),
            username: Some("pincer_bot".into()),
        }
    }

    #[test]
    fn dm_group_mentions_topics_and_media() {
        let dm = json!({"update_id": 1, "message": {"message_id": 5, "date": 1700000000,
            "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "is_bot": false, "first_name": "Ann", "username": "ann"},
            "text": "hi"}});
        let m = normalize_update(&dm, "default", &bot()).unwrap();
        assert_eq!(
            (
                m.conversation.chat_type,
                m.conversation.chat_id.as_str(),
                m.sender.id.as_str()
            ),
            (ChatType::Direct, "42", "42")
        );
        assert_eq!(
            (m.timestamp_ms, m.sender.name.as_deref()),
            (1_700_000_000_000, Some("Ann"))
        );

        // "😀 @Pincer_Bot hello": the emoji is 2 UTF-16 units, so the mention starts at 3.
        let group = json!({"update_id": 2, "message": {"message_id": 6, "date": 1,
            "chat": {"id": -100123, "type": "supergroup", "is_forum": true}, "from": {"id": 7, "first_name": "Bo"},
            "is_topic_message": true, "message_thread_id": 77,
            "reply_to_message": {"message_id": 77, "from": {"id": 7}, "forum_topic_created": {"name": "t"}},
            "text": "😀 @Pincer_Bot hello", "entities": [{"type": "mention", "offset": 3, "length": 11}],
            "photo": [{"file_id": "small"}, {"file_id": "big", "file_size": 1000}]}});
        let m = normalize_update(&group, "default", &bot()).unwrap();
        assert!(m.mentions_bot && !m.reply_to_bot);
        assert_eq!(m.conversation.thread_id.as_deref(), Some("77"));
        assert_eq!(m.conversation.chat_type, ChatType::Group);
        assert_eq!(m.media.len(), 1);
        assert_eq!(m.media[0].id, "big");

        let other = json!({"update_id": 3, "message": {"message_id": 8, "date": 1,
            "chat": {"id": -5, "type": "group"}, "from": {"id": 7},
            "reply_to_message": {"message_id": 4, "from": {"id": 999}},
            "text": "@someone else", "entities": [{"type": "mention", "offset": 0, "length": 8}]}});
        let m = normalize_update(&other, "default", &bot()).unwrap();
        assert!(!m.mentions_bot && m.reply_to_bot);
        assert_eq!(m.mentions, vec!["@someone"]);
        assert_eq!(m.conversation.thread_id, None);
    }

    #[test]
    fn non_messages_and_garbage_are_skipped() {
        for v in [
            json!({"update_id": 1}),
            json!({"update_id": 1, "message": {"chat": {"id": "x", "type": "private"}}}),
            json!({"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1, "type": "channel"}, "from": {"id": 1}}}),
            json!({"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1, "type": "private"}, "from": {"id": 1},
                "text": "x", "entities": [{"type": "mention", "offset": 5, "length": 900}]}}),
        ] {
            let got = normalize_update(&v, "default", &bot());
            assert!(got.is_none() || got.is_some_and(|m| m.mentions.is_empty()));
        }
    }
}
