//! The platform-neutral message shapes that cross the adapter boundary: what an adapter
//! produces for every inbound user message ([`ChannelMessage`]) and what it is asked to send
//! ([`OutboundMessage`]).

use serde::{Deserialize, Serialize};

pub use pincer_sessions::ChatType;

/// Where a conversation lives on its platform: enough to reply into it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Conversation {
    /// `telegram`, `discord`, `slack`, …
    pub channel: String,
    pub account_id: String,
    pub chat_type: ChatType,
    /// The platform's chat id to send into (Telegram chat id, Discord channel id — for a
    /// thread its own channel id —, Slack channel id).
    pub chat_id: String,
    /// Thread within the chat: Telegram forum topic id (`message_thread_id`), Discord thread
    /// channel id, Slack root `thread_ts`.
    pub thread_id: Option<String>,
}

/// Who sent a message.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Sender {
    pub id: String,
    /// Display name, when the platform gives one.
    pub name: Option<String>,
    /// Handle (`@user` without the `@`), when the platform has them.
    pub username: Option<String>,
    pub is_bot: bool,
}

/// An attachment reference (inbound: a platform file reference; nothing is downloaded here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaRef {
    /// `photo`, `document`, `audio`, `video`, `voice`, `sticker`, `file`.
    pub kind: String,
    /// Platform file id (Telegram `file_id`) or attachment id.
    pub id: String,
    /// Direct URL when the platform gives one (Discord/Slack attachments).
    pub url: Option<String>,
    pub mime_type: Option<String>,
    pub file_name: Option<String>,
    pub size_bytes: Option<u64>,
}

/// One inbound user message, normalised by an adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChannelMessage {
    pub conversation: Conversation,
    /// Platform message id (Telegram `message_id`, Discord snowflake, Slack `ts`).
    pub message_id: String,
    pub sender: Sender,
    pub text: String,
    /// Platform user ids mentioned in the message (native mention metadata).
    pub mentions: Vec<String>,
    /// The bot itself was mentioned natively (`@botname`, `<@id>`, mention entities).
    pub mentions_bot: bool,
    /// The message replies to one of the bot's messages (an implicit mention).
    pub reply_to_bot: bool,
    /// The message the user replied to, if any.
    pub reply_to_message_id: Option<String>,
    pub media: Vec<MediaRef>,
    /// Discord guild (bindings `guildId`).
    pub guild_id: Option<String>,
    /// Slack team (bindings `teamId`).
    pub team_id: Option<String>,
    /// Discord member roles (bindings `roles`).
    pub member_roles: Vec<String>,
    /// For a thread: the parent conversation's chat id (bindings tier 2, parent peer).
    pub parent_chat_id: Option<String>,
    /// Platform timestamp in epoch milliseconds.
    pub timestamp_ms: i64,
}

impl ChannelMessage {
    /// A plain text message with empty metadata (tests, benches, the `send` path).
    pub fn text(conversation: Conversation, message_id: &str, sender_id: &str, text: &str) -> Self {
        ChannelMessage {
            conversation,
            message_id: message_id.to_string(),
            sender: Sender {
                id: sender_id.to_string(),
                ..Sender::default()
            },
            text: text.to_string(),
            mentions: Vec::new(),
            mentions_bot: false,
            reply_to_bot: false,
            reply_to_message_id: None,
            media: Vec::new(),
            guild_id: None,
            team_id: None,
            member_roles: Vec::new(),
            parent_chat_id: None,
            timestamp_ms: 0,
        }
    }

    /// The key under which duplicates are recognised.
    pub fn dedupe_key(&self) -> String {
        let c = &self.conversation;
        format!(
            "{}\u{1f}{}\u{1f}{}\u{1f}{}",
            c.channel, c.account_id, c.chat_id, self.message_id
        )
    }
}

/// Where outbound media comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaSource {
    /// A public URL the platform fetches (Telegram) or that is linked (Discord, Slack).
    Url(String),
    /// Bytes to upload.
    Bytes {
        data: bytes::Bytes,
        file_name: String,
        content_type: Option<String>,
    },
}

/// An outbound attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMedia {
    pub source: MediaSource,
    /// Known size (bytes are measured; URLs may carry a hint) for the cap check.
    pub size_bytes: Option<u64>,
    /// `image/png` … picks photo vs document on Telegram.
    pub content_type: Option<String>,
}

impl OutboundMedia {
    pub fn url(url: &str) -> Self {
        OutboundMedia {
            source: MediaSource::Url(url.to_string()),
            size_bytes: None,
            content_type: None,
        }
    }

    pub fn bytes(data: bytes::Bytes, file_name: &str, content_type: Option<&str>) -> Self {
        OutboundMedia {
            size_bytes: Some(data.len() as u64),
            source: MediaSource::Bytes {
                data,
                file_name: file_name.to_string(),
                content_type: content_type.map(str::to_string),
            },
            content_type: content_type.map(str::to_string),
        }
    }

    pub fn is_image(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("image/"))
    }
}

/// One platform message to send (already within the platform's limits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    pub conversation: Conversation,
    pub text: String,
    /// Reply to / quote this platform message id.
    pub reply_to: Option<String>,
    /// At most one attachment per platform message; several are sent one by one.
    pub media: Option<OutboundMedia>,
    /// Send without a notification where the platform supports it.
    pub silent: bool,
}

impl OutboundMessage {
    pub fn text(conversation: Conversation, text: &str) -> Self {
        OutboundMessage {
            conversation,
            text: text.to_string(),
            reply_to: None,
            media: None,
            silent: false,
        }
    }
}

/// A message the platform accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentMessage {
    /// The chat it went to.
    pub chat_id: String,
    /// The platform's id of the new message (Slack: its `ts`).
    pub message_id: String,
}
