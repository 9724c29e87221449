//! The Pincer agent runtime: everything between "a message arrived for a session" and "the
//! reply is in the transcript", with a typed event stream of what happened. It knows nothing
//! of WebSocket frames; the gateway projects [`RunEvent`]s onto the wire `agent`/`chat`
//! events, channels deliver [`RunOutcome`]s, automations start runs in their own sessions.
//!
//! # Starting runs
//!
//! ```no_run
//! # async fn demo(store: pincer_store::Store, config: std::sync::Arc<pincer_config::Config>) -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use pincer_agent::*;
//!
//! let (events_tx, mut events) = tokio::sync::mpsc::channel(EVENT_CHANNEL_CAPACITY);
//! let settings = Settings::new(config, std::path::Path::new("/var/lib/pincer"), &|k| std::env::var(k).ok());
//! let runtime = AgentRuntime::new(AgentDeps {
//!     store,
//!     client: pincer_providers::ProviderClient::new()?,
//!     tools: Arc::new(pincer_tools::builtin::builtin_registry(Default::default())),
//!     settings,
//!     events: events_tx,
//!     options: AgentOptions::default(),
//! });
//! // A channel message for a DM session; `run_id` doubles as the idempotency key.
//! let key = pincer_sessions::SessionKey::canonicalize("agent:main:telegram:direct:42", "main")?;
//! let mut req = RunRequest::new("msg-123", key, "hello", RunSource::Channel { channel: "telegram".into() });
//! req.sender_is_owner = false;
//! let mut submitted = runtime.submit(req).await?;
//! // Either stream the events (every run, in per-run order) …
//! tokio::spawn(async move { while let Some(ev) = events.recv().await { let _ = ev; } });
//! // … or just wait for the outcome and deliver its text.
//! let outcome = submitted.handle.outcome().await;
//! println!("{:?}: {}", outcome.status, outcome.text);
//! # Ok(()) }
//! ```
//!
//! - One lane per session: runs of a session never overlap; a global semaphore
//!   (`agents.defaults.maxConcurrent`) bounds runs across sessions. Queue modes decide what a
//!   message does while its session is busy (see [`runtime`](crate::runtime)).
//! - [`AgentRuntime::abort`] cancels within milliseconds (the provider stream and running
//!   tools watch the run's cancellation token) and records an aborted turn.
//! - Chat commands (`/new`, `/reset`, `/status`, `/model`, `/think`, `/verbose`, `/stop`,
//!   `/compact`, `/help`) are answered by the runtime itself ([`commands`]).
//! - Cron/heartbeat: submit with `RunSource::Cron`/`Heartbeat`, `interpret_commands: false`,
//!   and an isolated key (`SessionKey::cron_run(..)`) or the agent's main key.

pub mod commands;
pub mod compaction;
pub mod context;
pub mod events;
mod invoke;
pub mod memory_index;
mod messages;
pub mod prompt;
pub mod request;
mod run;
pub mod runtime;
pub mod settings;
mod status;
mod subagents;
pub mod tooling;
mod util;
pub mod workspace;

pub use compaction::{CompactError, CompactReport};
pub use events::{
    AbortReason, Attempt, CompactionPhase, Disposition, RetryInfo, RunError, RunEvent,
    RunEventKind, RunOutcome, RunSource, RunStatus, StatusPhase, StoredMessage,
};
pub use invoke::InvokeError;
pub use pincer_config::model::messages::{QueueDrop, QueueMode};
pub use prompt::PromptMode;
pub use request::{Admission, RunHandle, RunRequest, SessionUpdate, SubmitError, Submitted};
pub use run::SKIPPED_FOR_STEER;
pub use runtime::{
    AgentDeps, AgentOptions, AgentRuntime, RunState, WaitResult, EVENT_CHANNEL_CAPACITY,
};
pub use settings::{
    parse_queue_mode, queue_mode_str, ModelChoice, ModelSource, QueueSettings, Settings,
};
pub use util::now_ms;
