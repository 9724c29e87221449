//! Pincer's chat channels: one framework every channel reuses, and the Telegram, Discord and
//! Slack adapters (cargo features `telegram`, `discord`, `slack`, all on by default).
//!
//! # Shape
//!
//! ```text
//! platform ──(adapter: connection task, supervised by the watchdog)──▶ ChannelMessage
//!   ──▶ InboundPipeline (dedupe → DM policy/pairing or group policy → mention gating/history
//!        → commands/directives → debounce → bindings router → session key)
//!   ──▶ RunSink::dispatch(InboundRun)            [implemented by the gateway]
//! gateway/agent ──▶ ChannelManager::responder(&run.reply) ──▶ Responder (typing, preview
//!   edits, chunked final reply) ──▶ adapter.send/edit/typing ──▶ platform
//! CLI/`send` ──▶ ChannelManager::send(SendRequest)  (idempotent by key)
//! ```
//!
//! - [`adapter::ChannelAdapter`]: what a platform implements (start/stop/status, send, edit,
//!   typing, [`adapter::Capabilities`]).
//! - [`pipeline`]: the inbound pipeline and the [`pipeline::RunSink`] boundary.
//! - [`router`]: bindings precedence (§5), failing closed.
//! - [`pairing`]: DM pairing codes persisted through `pincer-store`.
//! - [`chunk`]: fence-preserving chunking; [`outbound`]: delivery, previews, idempotency.
//! - [`watchdog`]: stall detection and reconnects with `pincer-backoff`.
//! - [`status`]: per-account state for `channels.status`.
//!
//! Every platform base URL is a setting of its adapter, so tests point adapters at the
//! local fakes of `pincer-fakes` and operators at self-hosted API proxies.

pub mod adapter;
pub mod chunk;
pub mod commands;
pub mod debounce;
pub mod dedupe;
#[cfg(feature = "discord")]
pub mod discord;
pub mod error;
pub mod history;
pub mod http;
pub mod journal;
pub mod manager;
pub mod message;
pub mod outbound;
pub mod pairing;
pub mod pipeline;
pub mod policy;
pub mod router;
#[cfg(feature = "slack")]
pub mod slack;
pub mod status;
#[cfg(feature = "telegram")]
pub mod telegram;
pub mod watchdog;

pub use adapter::{Capabilities, ChannelAdapter, InboundClosed, InboundSender};
pub use error::{ChannelError, Result};
pub use journal::Journal;
pub use manager::{ChannelManager, SendRequest, SendResult};
pub use message::{
    ChannelMessage, ChatType, Conversation, MediaRef, MediaSource, OutboundMedia, OutboundMessage,
    Sender, SentMessage,
};
pub use outbound::{PreviewStream, ReplyToMode, Responder};
pub use pairing::Pairing;
pub use pipeline::{
    Disposition, InboundPipeline, InboundRun, PipelineSettings, ReplyTarget, RunSink, SinkError,
};
pub use policy::{AccessPolicy, DmPolicy, GroupActivation, GroupPolicy};
pub use router::{Route, RouteTier, Router};
pub use status::{AccountStatus, ConnectionState, StatusHandle};
