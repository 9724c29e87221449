//! The typed stream of one run: what the agent did, in order, with a per-run `seq`. The
//! gateway projects these onto the wire `agent` / `chat` events; channels and automations read
//! the same stream (or only the terminal [`RunOutcome`]).

use std::sync::Arc;

use pincer_providers::{AssistantMessage, ErrorDetail, StopReason, Usage};
use serde::Serialize;
use serde_json::Value;

/// Who started a run. Decides what the run reports (status phases are a chat-surface
/// affordance) and how it is labelled (`isHeartbeat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunSource {
    /// `chat.send` (Control UI, WebChat, `pincer chat`).
    Chat,
    /// The `agent` RPC (`pincer agent`, the official CLI).
    Agent,
    /// An inbound channel message (`channel` is the channel id, e.g. `telegram`).
    Channel { channel: String },
    /// A cron job turn.
    Cron,
    /// A heartbeat turn.
    Heartbeat,
    /// An HTTP hook.
    Hook,
}

impl RunSource {
    /// Whether `run_status` phases are reported (the reference does so for chat turns only).
    pub fn reports_status(&self) -> bool {
        matches!(self, RunSource::Chat)
    }

    pub fn is_heartbeat(&self) -> bool {
        matches!(self, RunSource::Heartbeat)
    }

    /// The channel for per-channel queue settings (`messages.queue.byChannel.<channel>`).
    pub fn channel(&self) -> Option<&str> {
        match self {
            RunSource::Channel { channel } => Some(channel),
            RunSource::Chat => Some("webchat"),
            _ => None,
        }
    }
}

/// `run_status` / chat `status` phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusPhase {
    PreparingWorkspace,
    PreparingContext,
    StartingModel,
    Retrying,
}

impl StatusPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusPhase::PreparingWorkspace => "preparing_workspace",
            StatusPhase::PreparingContext => "preparing_context",
            StatusPhase::StartingModel => "starting_model",
            StatusPhase::Retrying => "retrying",
        }
    }
}

/// A retry the provider layer is about to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryInfo {
    pub attempt: u32,
    pub max_attempts: u32,
    /// `rate_limit`, `server`, `network`.
    pub reason: String,
    pub delay_ms: u64,
}

/// How the run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Ok,
    Error,
    Aborted,
    Timeout,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Ok => "ok",
            RunStatus::Error => "error",
            RunStatus::Aborted => "aborted",
            RunStatus::Timeout => "timeout",
        }
    }
}

/// Why a run was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortReason {
    /// `chat.abort` / an RPC caller.
    Rpc,
    /// `/stop` or a stop phrase typed in the chat.
    Stop,
    /// A newer message in `interrupt` queue mode.
    Interrupt,
    /// The run budget (`agents.defaults.timeoutSeconds`) ran out.
    Timeout,
    /// The gateway is shutting down.
    Shutdown,
}

impl AbortReason {
    /// The wire `stopReason` of a `chat` aborted event.
    pub fn as_str(self) -> &'static str {
        match self {
            AbortReason::Rpc => "rpc",
            AbortReason::Stop => "stop",
            AbortReason::Interrupt => "interrupt",
            AbortReason::Timeout => "timeout",
            AbortReason::Shutdown => "shutdown",
        }
    }
}

/// `terminalReply.disposition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Disposition {
    Visible,
    /// The reply was the silent token `NO_REPLY`.
    Silent,
    Empty,
}

/// A failed run, ready for the wire `chat` error event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunError {
    /// `refusal | timeout | rate_limit | context_length | unknown`.
    pub error_kind: String,
    pub error_message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
}

/// One model attempt of the run's fallback chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub provider: String,
    pub model: String,
    /// `success` or the provider error kind.
    pub result: String,
}

/// The terminal result of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    pub run_id: String,
    pub session_key: String,
    pub session_id: Option<String>,
    pub agent_id: String,
    pub status: RunStatus,
    /// `stop`, `toolUse`, `length`, `error`, `aborted`, or an abort reason (`rpc`).
    pub stop_reason: Option<String>,
    pub abort_reason: Option<AbortReason>,
    /// The last assistant message (the one a user sees).
    pub message: Option<AssistantMessage>,
    /// The visible reply text (empty for silent/empty replies).
    pub text: String,
    pub disposition: Disposition,
    /// Usage summed over every model call of the run.
    pub usage: Usage,
    pub last_call_usage: Option<Usage>,
    /// Model asked for (chain head) and the one that answered.
    pub requested: Option<(String, String)>,
    pub effective: Option<(String, String)>,
    pub started_at: u64,
    pub ended_at: u64,
    pub assistant_turns: u32,
    /// Tools that ran without error, in order (deduplicated).
    pub tool_names: Vec<String>,
    pub attempts: Vec<Attempt>,
    pub error: Option<RunError>,
    /// A chat command answered this message (`/status`, `/reset`, …).
    pub command: Option<String>,
    /// This input was folded into another run (steer / collect); that run's id.
    pub merged_into: Option<String>,
    /// Estimated prompt size before the last model call.
    pub prompt_tokens_estimate: u64,
    pub context_window: u64,
    /// What a `/compact` command did.
    pub compaction: Option<crate::compaction::CompactReport>,
    /// The run created the session or started a new sessionId (reset policy).
    pub session_started: bool,
}

impl RunOutcome {
    /// A bare outcome (no model call), e.g. a cancelled queued turn.
    pub fn bare(
        run_id: &str,
        session_key: &str,
        agent_id: &str,
        status: RunStatus,
        now: u64,
    ) -> Self {
        RunOutcome {
            run_id: run_id.to_owned(),
            session_key: session_key.to_owned(),
            session_id: None,
            agent_id: agent_id.to_owned(),
            status,
            stop_reason: None,
            abort_reason: None,
            message: None,
            text: String::new(),
            disposition: Disposition::Empty,
            usage: Usage::default(),
            last_call_usage: None,
            requested: None,
            effective: None,
            started_at: now,
            ended_at: now,
            assistant_turns: 0,
            tool_names: Vec::new(),
            attempts: Vec::new(),
            error: None,
            command: None,
            merged_into: None,
            prompt_tokens_estimate: 0,
            context_window: 0,
            compaction: None,
            session_started: false,
        }
    }

    /// `completed`, `failed`, `aborted`, or the error message (the `agent` RPC's `summary`).
    pub fn summary(&self) -> String {
        match self.status {
            RunStatus::Ok => "completed".into(),
            RunStatus::Aborted => "aborted".into(),
            RunStatus::Timeout => "timeout".into(),
            RunStatus::Error => self
                .error
                .as_ref()
                .map(|e| e.error_message.clone())
                .unwrap_or_else(|| "failed".into()),
        }
    }
}

/// What happened, one step of a run.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEventKind {
    /// A preparation phase (chat turns only; see [`RunSource::reports_status`]).
    Status {
        phase: StatusPhase,
        retry: Option<RetryInfo>,
    },
    /// The run began (lifecycle `start`).
    Start { started_at: u64 },
    /// About to call this model (lifecycle `model`), again after each fallback.
    Model { provider: String, model: String },
    /// The chain left a model for the next one (lifecycle `fallback_step`).
    FallbackStep {
        from_provider: String,
        from_model: String,
        to_provider: String,
        to_model: String,
        /// The provider error kind that caused it.
        reason: String,
        message: String,
    },
    /// Visible text. `item_id` names the assistant message (`<turn id>:<n>`).
    AssistantDelta { item_id: Arc<str>, delta: String },
    /// Reasoning text.
    ThinkingDelta { item_id: Arc<str>, delta: String },
    /// A tool call starts.
    ToolStart {
        tool_call_id: String,
        name: String,
        args: Value,
        title: String,
        meta: Option<String>,
        started_at: u64,
    },
    /// A tool call finished; `result` is `{content, details?}`.
    ToolResult {
        tool_call_id: String,
        name: String,
        is_error: bool,
        title: String,
        meta: Option<String>,
        result: Value,
        started_at: u64,
        ended_at: u64,
    },
    /// Token usage after a model call; `run` is the sum so far.
    Usage { call: Usage, run: Usage },
    /// Compaction progress.
    Compaction {
        phase: CompactionPhase,
        tokens_before: u64,
        tokens_after: Option<u64>,
    },
    /// The model loop is done (lifecycle `finishing`).
    Finishing {
        stop_reason: String,
        aborted: bool,
        ended_at: u64,
    },
    /// The run released its model (lifecycle `model` with nulls, as the reference reports).
    ModelReleased,
    /// A message of the run is durable in the transcript (the user's, each assistant and
    /// tool message, the final answer), emitted right after the store acknowledged it.
    Message(Arc<StoredMessage>),
    /// The terminal event: exactly one per run, always last.
    End(Arc<RunOutcome>),
}

/// A transcript message as it was stored (the gateway's `session.message`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredMessage {
    /// The transcript entry's id.
    pub entry_id: Option<String>,
    /// Raw transcript `seq` of the entry.
    pub seq: i64,
    /// Ordinal of the message among the window's messages (1, 2, 3 …).
    pub message_seq: i64,
    /// When it was written (epoch ms).
    pub created_at: i64,
    /// The entry's `message` object (`role`, `content`, `timestamp`, …).
    pub message: Value,
}

/// Compaction phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompactionPhase {
    Start,
    End,
    Failed,
}

/// One event of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEvent {
    pub run_id: Arc<str>,
    pub session_key: Arc<str>,
    /// Known once the session was ensured.
    pub session_id: Option<Arc<str>>,
    pub agent_id: Arc<str>,
    pub source: RunSource,
    /// Per-run sequence number, 1, 2, 3 … (the wire `payload.seq`).
    pub seq: u64,
    /// Epoch milliseconds.
    pub ts: u64,
    pub kind: RunEventKind,
}

impl RunEvent {
    pub fn is_terminal(&self) -> bool {
        matches!(self.kind, RunEventKind::End(_))
    }
}

/// Stop reason spelling for the wire and transcript.
pub fn stop_reason_str(reason: Option<StopReason>) -> &'static str {
    reason.map_or("stop", StopReason::as_str)
}
