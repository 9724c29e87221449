//! What callers hand the runtime, and what they get back.

use std::time::Duration;

use pincer_config::model::messages::QueueMode;
use pincer_providers::ThinkingLevel;
use pincer_sessions::{SessionEntry, SessionKey};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::events::{RunEvent, RunOutcome, RunSource};
use crate::prompt::PromptMode;
use std::sync::Arc;

/// One inbound message for a session.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Unique id of this input (the idempotency key for `chat.send` / `agent`).
    pub run_id: String,
    /// Canonical session key (`agent:main:main`, `agent:main:telegram:direct:42`, …).
    pub session_key: SessionKey,
    /// The user's text.
    pub message: String,
    pub source: RunSource,
    /// Per-message queue mode (`chat.send queueMode`); `None` = configured.
    pub queue_mode: Option<QueueMode>,
    /// Per-run thinking level; `None` = the session's or the agent default.
    pub thinking: Option<ThinkingLevel>,
    /// Per-run model (`provider/model`), strict (no fallbacks).
    pub model: Option<String>,
    /// Per-run budget (the `agent` RPC `timeout`); `None` = `agents.defaults.timeoutSeconds`.
    pub timeout: Option<Duration>,
    /// Appended to the system prompt (`extraSystemPrompt`).
    pub extra_system_prompt: Option<String>,
    pub prompt_mode: PromptMode,
    /// Interpret `/commands` (off for `suppressCommandInterpretation`, heartbeats, cron).
    pub interpret_commands: bool,
    /// The sender owns the agent (commands that change settings need it).
    pub sender_is_owner: bool,
    /// Stored under `__openclaw` of the user message (e.g. `{"transport":{"clients":[…]}}`).
    pub metadata: Option<Value>,
    /// Extra receiver for this run's events (channels' block streaming, CLI embedders).
    /// Gets every event of the run, in order, ending with `End`.
    pub observer: Option<mpsc::Sender<RunEvent>>,
    /// Applied to the session row in the commit that stores the run's user message, so it is
    /// durable before the model or any tool of the run reads the session (a channel turn's
    /// delivery origin: the `message` tool sends into "the current conversation"). Not applied
    /// when the message is steered into or folded with another run.
    pub session_update: Option<SessionUpdate>,
}

/// A change to a session row made by the run that starts for a request (see
/// [`RunRequest::session_update`]).
#[derive(Clone)]
pub struct SessionUpdate(Arc<dyn Fn(&mut SessionEntry) + Send + Sync>);

impl SessionUpdate {
    pub fn new(f: impl Fn(&mut SessionEntry) + Send + Sync + 'static) -> Self {
        SessionUpdate(Arc::new(f))
    }

    pub fn apply(&self, entry: &mut SessionEntry) {
        (self.0)(entry);
    }
}

impl std::fmt::Debug for SessionUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionUpdate(..)")
    }
}

impl RunRequest {
    /// A request with defaults for everything but the essentials.
    pub fn new(
        run_id: impl Into<String>,
        session_key: SessionKey,
        message: impl Into<String>,
        source: RunSource,
    ) -> Self {
        RunRequest {
            run_id: run_id.into(),
            session_key,
            message: message.into(),
            source,
            queue_mode: None,
            thinking: None,
            model: None,
            timeout: None,
            extra_system_prompt: None,
            prompt_mode: PromptMode::Full,
            interpret_commands: true,
            sender_is_owner: true,
            metadata: None,
            observer: None,
            session_update: None,
        }
    }
}

/// What happened to a submitted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// A run started for it now.
    Started,
    /// It waits behind the active run (`followup`, `collect`; `interrupt` after the abort).
    Queued { position: usize },
    /// It was handed to the active run, which reads it at its next boundary (`steer`).
    Steered { into: String },
    /// A chat command answered it (no model call).
    Command { name: String },
}

/// The receipt of [`crate::AgentRuntime::submit`].
#[derive(Debug, Clone)]
pub struct Submitted {
    pub run_id: String,
    pub session_key: String,
    pub agent_id: String,
    pub admission: Admission,
    pub accepted_at: u64,
    pub handle: RunHandle,
}

/// Waits for a run's outcome. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RunHandle {
    pub(crate) rx: watch::Receiver<Option<Arc<RunOutcome>>>,
}

impl RunHandle {
    /// The outcome, once the run (or the run it was merged into) has ended.
    pub async fn outcome(&mut self) -> Arc<RunOutcome> {
        loop {
            if let Some(outcome) = self.rx.borrow().clone() {
                return outcome;
            }
            if self.rx.changed().await.is_err() {
                // The runtime dropped the record without an outcome; report what we know.
                return self.rx.borrow().clone().unwrap_or_else(|| {
                    Arc::new(RunOutcome::bare(
                        "",
                        "",
                        "",
                        crate::events::RunStatus::Error,
                        crate::util::now_ms(),
                    ))
                });
            }
        }
    }

    /// The outcome if the run has ended.
    pub fn try_outcome(&self) -> Option<Arc<RunOutcome>> {
        self.rx.borrow().clone()
    }
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    #[error("message must not be empty")]
    EmptyMessage,
    #[error("a run with id {0:?} already exists")]
    DuplicateRunId(String),
    #[error("the queue of {session} is full ({cap} waiting); the new message was dropped")]
    QueueFull { session: String, cap: usize },
    #[error("the agent runtime is shutting down")]
    ShuttingDown,
}
