//! The adapter contract every platform implements.

use async_trait::async_trait;
use tokio::sync::mpsc;

use crate::chunk::{ChunkMode, ChunkOptions, Measure};
use crate::error::{ChannelError, Result};
use crate::journal::Journal;
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
/// buffers), so nothing is dropped. With a [`Journal`], [`InboundSender::send_batch`] returns
/// only once the messages are recorded durably: adapters acknowledge the platform (advance
/// the Telegram offset, ack a Slack envelope) after it returns.
#[derive(Clone, Debug)]
pub struct InboundSender {
    tx: mpsc::Sender<ChannelMessage>,
    journal: Option<(Journal, String)>,
    channel: &'static str,
}

/// The pipeline side is gone (the account is stopping).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the inbound queue is closed")]
pub struct InboundClosed;

impl InboundSender {
    /// A sender without a journal (tests, benches).
    pub fn new(tx: mpsc::Sender<ChannelMessage>) -> Self {
        InboundSender {
            tx,
            journal: None,
            channel: "",
        }
    }

    /// Records every message in `journal` (as `channel`/`account_id`) before it returns.
    pub fn with_journal(
        mut self,
        journal: Journal,
        channel: &'static str,
        account_id: &str,
    ) -> Self {
        self.journal = Some((journal, account_id.to_string()));
        self.channel = channel;
        self
    }

    pub async fn send(&self, message: ChannelMessage) -> Result<(), InboundClosed> {
        self.send_batch(vec![message]).await
    }

    /// Queues `messages` for the pipeline, in order, while recording them; returns after both.
    pub async fn send_batch(&self, messages: Vec<ChannelMessage>) -> Result<(), InboundClosed> {
        self.send_batch_with_cursor(messages, None)
            .await
            .map(|_| ())
    }

    /// [`InboundSender::send_batch`] that also saves the account's acknowledgement cursor
    /// `(key, value)` in the record's commit when there is a journal (one fsync for both, and
    /// the saved position never runs ahead of the record). Returns whether the cursor was
    /// saved; if not (no journal, or the commit failed) the caller saves it itself.
    pub async fn send_batch_with_cursor(
        &self,
        messages: Vec<ChannelMessage>,
        cursor: Option<(&str, &str)>,
    ) -> Result<bool, InboundClosed> {
        let record = async {
            match (&self.journal, cursor) {
                (Some((journal, account)), Some(cursor)) => {
                    journal
                        .record_with_cursor(self.channel, account, &messages, cursor)
                        .await
                }
                (Some((journal, account)), None) => {
                    journal.record(self.channel, account, &messages).await;
                    false
                }
                (None, _) => false,
            }
        };
        let forward = async {
            for m in messages.iter().cloned() {
                self.tx.send(m).await.map_err(|_| InboundClosed)?;
            }
            Ok(())
        };
        // The record is submitted first (the store's writer is FIFO), then both proceed.
        let (saved, forwarded) = tokio::join!(record, forward);
        forwarded.map(|()| saved)
    }
}

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
