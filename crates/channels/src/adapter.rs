//! The adapter contract every platform implements.

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::chunk::{ChunkMode, ChunkOptions, Measure};
use crate::error::{ChannelError, Result};
use crate::message::{ChannelMessage, Conversation, OutboundMessage, SentMessage};
use crate::status::StatusHandle;

/// What a platform can do, and its limits.
#[derive(Debug, Clone, PartialEq)]
pub struct Capabilities {
    /// Hard cap of one text message (`textChunkLimit`).
    pub text_limit: usize,
    /// Cap of an edited message (Telegram 4096).
    pub edit_limit: usize,
    /// How the platform counts length.
    pub measure: Measure,
    /// Lines per message (Discord `maxLinesPerMessage` 17).
    pub max_lines: Option<usize>,
    /// Replies can go into threads/topics.
    pub threads: bool,
    /// Messages can be edited (streaming previews).
    pub edits: bool,
    /// A typing indicator exists.
    pub typing: bool,
    /// A reply can quote the message it answers.
    pub reply_to: bool,
    /// Largest attachment (`mediaMaxMb`), bytes.
    pub media_max_bytes: u64,
    /// Bytes uploads are implemented (URL media always is).
    pub media_uploads: bool,
}

impl Capabilities {
    /// Chunking parameters for this platform.
    pub fn chunk_options(&self, mode: ChunkMode) -> ChunkOptions {
        ChunkOptions {
            limit: self.text_limit,
            measure: self.measure,
            max_lines: self.max_lines,
            mode,
        }
    }
}

/// Inbound messages flow from an adapter's connection task into this bounded queue (the
/// pipeline drains it). A full queue applies backpressure to the connection (the platform
/// buffers), so nothing is dropped.
pub type InboundSender = mpsc::Sender<ChannelMessage>;

/// One platform account (one bot token).
#[async_trait]
pub trait ChannelAdapter: Send + Sync + 'static {
    /// `telegram`, `discord`, `slack`.
    fn channel(&self) -> &'static str;
    fn account_id(&self) -> &str;
    fn capabilities(&self) -> &Capabilities;
    /// The account's live status.
    fn status(&self) -> StatusHandle;
    /// Connects in background tasks (supervised: reconnects with backoff, stops on a fatal
    /// error such as an invalid token). Returns once the tasks are started.
    async fn start(&self, inbound: InboundSender) -> Result<()>;
    /// Stops the background tasks and waits for them to end.
    async fn stop(&self);
    /// Sends one message (within [`Capabilities::text_limit`]).
    async fn send(&self, message: &OutboundMessage) -> Result<SentMessage>;
    /// Replaces the text of a message the bot sent.
    async fn edit(&self, conversation: &Conversation, message_id: &str, text: &str) -> Result<()> {
        let _ = (conversation, message_id, text);
        Err(ChannelError::Unsupported {
            channel: self.channel(),
            what: "message edits",
        })
    }
    /// Shows a typing indicator (a no-op where the platform has none).
    async fn typing(&self, conversation: &Conversation) -> Result<()> {
        let _ = conversation;
        Ok(())
    }
}
