//! Outbound delivery: chunking at the platform's limit (fences intact), media size caps,
//! reply threading, typing, streaming previews by edit, the silent `NO_REPLY` token, and
//! idempotent `send`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::adapter::ChannelAdapter;
use crate::chunk::{chunk_text, ChunkMode};
use crate::dedupe::RecentSet;
use crate::error::{ChannelError, Result};
use crate::message::{Conversation, OutboundMedia, OutboundMessage, SentMessage};
use crate::pipeline::{InboundPipeline, ReplyTarget};

/// The silent reply token (runtime spec §4.6): never delivered.
pub const SILENT_TOKEN: &str = "NO_REPLY";

/// Whether a final text is the silent token (case-insensitive, whole payload).
pub fn is_silent(text: &str) -> bool {
    text.trim().eq_ignore_ascii_case(SILENT_TOKEN)
}

/// `replyToMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplyToMode {
    Off,
    /// Only the first chunk quotes the user's message (default).
    #[default]
    First,
    All,
}

/// Checks media against the platform's cap.
pub fn check_media(adapter: &dyn ChannelAdapter, media: &OutboundMedia) -> Result<()> {
    let caps = adapter.capabilities();
    if let Some(size) = media.size_bytes {
        if size > caps.media_max_bytes {
            return Err(ChannelError::MediaTooLarge {
                channel: adapter.channel(),
                size,
                limit: caps.media_max_bytes,
            });
        }
    }
    if matches!(media.source, crate::message::MediaSource::Bytes { .. }) && !caps.media_uploads {
        return Err(ChannelError::Unsupported {
            channel: adapter.channel(),
            what: "attachment uploads",
        });
    }
    Ok(())
}

/// Sends `text` (chunked) and then each attachment into `conversation`. The text is empty-ok
/// (media only). Returns the sent messages in order.
pub async fn deliver(
    adapter: &dyn ChannelAdapter,
    conversation: &Conversation,
    text: &str,
    media: &[OutboundMedia],
    reply_to: Option<&str>,
    reply_mode: ReplyToMode,
    chunk_mode: ChunkMode,
) -> Result<Vec<SentMessage>> {
    for m in media {
        check_media(adapter, m)?;
    }
    let caps = adapter.capabilities().clone();
    let chunks = chunk_text(text, &caps.chunk_options(chunk_mode));
    let mut sent = Vec::with_capacity(chunks.len() + media.len());
    let status = adapter.status();
    let quote = |i: usize| match reply_mode {
        ReplyToMode::Off => None,
        ReplyToMode::First if i > 0 => None,
        _ => reply_to.map(str::to_string),
    };
    for (i, chunk) in chunks.iter().enumerate() {
        let mut msg = OutboundMessage::text(conversation.clone(), chunk);
        msg.reply_to = quote(i);
        match adapter.send(&msg).await {
            Ok(s) => {
                status.outbound();
                sent.push(s);
            }
            Err(e) => {
                status.record_error(&e.to_string());
                return Err(e);
            }
        }
    }
    for (j, m) in media.iter().enumerate() {
        let mut msg = OutboundMessage::text(conversation.clone(), "");
        msg.media = Some(m.clone());
        msg.reply_to = quote(chunks.len() + j);
        match adapter.send(&msg).await {
            Ok(s) => {
                status.outbound();
                sent.push(s);
            }
            Err(e) => {
                status.record_error(&e.to_string());
                return Err(e);
            }
        }
    }
    Ok(sent)
}

/// Answers one inbound run: typing, an optional streaming preview, the final reply.
#[derive(Clone)]
pub struct Responder {
    adapter: Arc<dyn ChannelAdapter>,
    target: ReplyTarget,
    reply_mode: ReplyToMode,
    chunk_mode: ChunkMode,
    pipeline: Option<InboundPipeline>,
}

impl Responder {
    pub fn new(adapter: Arc<dyn ChannelAdapter>, target: ReplyTarget) -> Self {
        Responder {
            adapter,
            target,
            reply_mode: ReplyToMode::default(),
            chunk_mode: ChunkMode::default(),
            pipeline: None,
        }
    }

    pub fn with_modes(mut self, reply_mode: ReplyToMode, chunk_mode: ChunkMode) -> Self {
        self.reply_mode = reply_mode;
        self.chunk_mode = chunk_mode;
        self
    }

    /// Lets replies count as thread participation in this pipeline.
    pub fn with_pipeline(mut self, pipeline: InboundPipeline) -> Self {
        self.pipeline = Some(pipeline);
        self
    }

    pub fn target(&self) -> &ReplyTarget {
        &self.target
    }

    /// Shows the typing indicator (platforms expire it after a few seconds; call again
    /// while the model works).
    pub async fn typing(&self) -> Result<()> {
        if !self.adapter.capabilities().typing {
            return Ok(());
        }
        self.adapter.typing(&self.target.conversation).await
    }

    /// Delivers the final reply. `NO_REPLY` delivers only the media.
    pub async fn deliver(&self, text: &str, media: &[OutboundMedia]) -> Result<Vec<SentMessage>> {
        let text = if is_silent(text) { "" } else { text };
        let sent = deliver(
            self.adapter.as_ref(),
            &self.target.conversation,
            text,
            media,
            self.target.reply_to.as_deref(),
            self.reply_mode,
            self.chunk_mode,
        )
        .await?;
        if !sent.is_empty() {
            if let Some(p) = &self.pipeline {
                p.note_reply(&self.target.conversation);
            }
        }
        Ok(sent)
    }

    /// A streaming preview edited in place as text arrives.
    pub fn preview(&self, min_interval: Duration) -> PreviewStream {
        PreviewStream {
            responder: self.clone(),
            message: None,
            shown: String::new(),
            last_edit: None,
            min_interval,
        }
    }
}

/// A preview message that is edited as the answer streams (Telegram `editMessageText`,
/// Discord `PATCH`, Slack `chat.update`), throttled to one edit per `min_interval`.
pub struct PreviewStream {
    responder: Responder,
    message: Option<SentMessage>,
    shown: String,
    last_edit: Option<Instant>,
    min_interval: Duration,
}

impl PreviewStream {
    /// The preview message, once one was sent.
    pub fn message(&self) -> Option<&SentMessage> {
        self.message.as_ref()
    }

    fn truncate(&self, text: &str) -> String {
        let caps = self.responder.adapter.capabilities();
        let limit = caps.edit_limit.min(caps.text_limit).max(2);
        if caps.measure.len(text) <= limit {
            return text.to_string();
        }
        let mut out = String::new();
        let mut used = 0;
        for c in text.chars() {
            let w = caps.measure.len(c.encode_utf8(&mut [0u8; 4]));
            if used + w > limit - 1 {
                break;
            }
            used += w;
            out.push(c);
        }
        out.push('…');
        out
    }

    /// Shows `text_so_far` (sent the first time, edited later; skipped when throttled or
    /// unchanged). Returns whether the platform was called.
    pub async fn update(&mut self, text_so_far: &str) -> Result<bool> {
        let adapter = self.responder.adapter.clone();
        if !adapter.capabilities().edits || text_so_far.trim().is_empty() {
            return Ok(false);
        }
        let text = self.truncate(text_so_far);
        if text == self.shown {
            return Ok(false);
        }
        if self
            .last_edit
            .is_some_and(|t| t.elapsed() < self.min_interval)
        {
            return Ok(false);
        }
        let conv = &self.responder.target.conversation;
        match &self.message {
            None => {
                let mut msg = OutboundMessage::text(conv.clone(), &text);
                msg.reply_to = match self.responder.reply_mode {
                    ReplyToMode::Off => None,
                    _ => self.responder.target.reply_to.clone(),
                };
                let sent = adapter.send(&msg).await?;
                adapter.status().outbound();
                self.message = Some(sent);
            }
            Some(m) => {
                adapter.edit(conv, &m.message_id, &text).await?;
            }
        }
        self.shown = text;
        self.last_edit = Some(Instant::now());
        Ok(true)
    }

    /// Replaces the preview with the final text: the first chunk edits the preview, the rest
    /// are sent as new messages. `NO_REPLY` leaves the preview as it is.
    pub async fn finish(self, final_text: &str) -> Result<Vec<SentMessage>> {
        let Some(preview) = self.message.clone() else {
            return self.responder.deliver(final_text, &[]).await;
        };
        if is_silent(final_text) {
            return Ok(vec![preview]);
        }
        let adapter = self.responder.adapter.clone();
        let caps = adapter.capabilities().clone();
        let mut opts = caps.chunk_options(self.responder.chunk_mode);
        opts.limit = caps.edit_limit.min(caps.text_limit);
        let chunks = chunk_text(final_text, &opts);
        let conv = &self.responder.target.conversation;
        let mut sent = vec![preview.clone()];
        let mut rest = chunks.iter();
        if let Some(first) = rest.next() {
            if *first != self.shown {
                adapter.edit(conv, &preview.message_id, first).await?;
            }
        }
        for chunk in rest {
            let out = OutboundMessage::text(conv.clone(), chunk);
            sent.push(adapter.send(&out).await?);
            adapter.status().outbound();
        }
        if let Some(p) = &self.responder.pipeline {
            p.note_reply(conv);
        }
        Ok(sent)
    }
}

/// Idempotent operations keyed by an idempotency key: concurrent calls with the same key
/// share one execution, and a completed result is returned again for `ttl` (the protocol's
/// dedupe window: 5 minutes, 1,000 keys). A failed execution is not remembered, so a retry
/// with the same key runs again.
pub struct Idempotent<T> {
    cells: Mutex<HashMap<String, Arc<OnceCell<T>>>>,
    recent: Mutex<RecentSet<String>>,
}

impl<T: Clone> Idempotent<T> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Idempotent {
            cells: Mutex::new(HashMap::new()),
            recent: Mutex::new(RecentSet::new(ttl, capacity)),
        }
    }

    /// Runs `op` once per key.
    pub async fn run<F, Fut>(&self, key: &str, op: F) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let cell = {
            let mut cells = self.cells.lock();
            let mut recent = self.recent.lock();
            let now = Instant::now();
            if !recent.contains_at(&key.to_string(), now) {
                // New or expired key: start fresh and drop cells that aged out.
                cells.retain(|k, _| recent.contains_at(k, now));
                cells.remove(key);
            }
            recent.insert_at(key.to_string(), now);
            cells
                .entry(key.to_string())
                .or_insert_with(|| Arc::new(OnceCell::new()))
                .clone()
        };
        cell.get_or_try_init(op).await.cloned()
    }
}
