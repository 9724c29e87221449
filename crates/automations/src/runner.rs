//! The seam between the scheduler and whatever executes a job (the agent, in the gateway).

use serde::Serialize;

use crate::job::{CronJob, RunStatus};
use crate::run_delivery::DeliveryAttempt;

/// Why a run started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunTrigger {
    /// The job's schedule came due.
    Schedule,
    /// A missed occurrence, run once after a restart.
    CatchUp,
    /// `cron.run` (out of band: the natural schedule is untouched).
    Manual,
    /// A wake request (`wake`, `/hooks/wake`, heartbeat wakes): out of band too.
    Wake,
}

impl RunTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            RunTrigger::Schedule => "schedule",
            RunTrigger::CatchUp => "catch-up",
            RunTrigger::Manual => "manual",
            RunTrigger::Wake => "wake",
        }
    }

    /// Whether the run consumed a scheduled occurrence.
    pub fn is_scheduled(self) -> bool {
        matches!(self, RunTrigger::Schedule | RunTrigger::CatchUp)
    }
}

/// One run handed to the [`JobRunner`]. Its receipt is already durable when the runner sees
/// it, so a crash during the run is recorded as `interrupted`, never run again.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub run_id: String,
    /// The job as it was when the run was claimed (state included).
    pub job: CronJob,
    pub trigger: RunTrigger,
    /// The occurrence this run serves (`None` for manual runs and wakes).
    pub scheduled_for_ms: Option<i64>,
    pub started_at_ms: i64,
    /// The scheduler gives up on the run at this instant and records a timeout.
    pub deadline_ms: i64,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub status: RunStatus,
    /// A short result text for run history (never model output that must stay private).
    pub summary: Option<String>,
    pub error: Option<String>,
    /// What became of the result (`None`: no delivery was attempted).
    pub delivery: Option<DeliveryAttempt>,
}

impl RunOutcome {
    pub fn ok(summary: impl Into<Option<String>>) -> RunOutcome {
        RunOutcome {
            status: RunStatus::Ok,
            summary: summary.into(),
            error: None,
            delivery: None,
        }
    }

    pub fn error(message: impl Into<String>) -> RunOutcome {
        RunOutcome {
            status: RunStatus::Error,
            summary: None,
            error: Some(message.into()),
            delivery: None,
        }
    }

    pub fn skipped(reason: impl Into<String>) -> RunOutcome {
        RunOutcome {
            status: RunStatus::Skipped,
            summary: Some(reason.into()),
            error: None,
            delivery: None,
        }
    }

    /// Records what the runner did with the result.
    pub fn with_delivery(mut self, attempt: DeliveryAttempt) -> RunOutcome {
        self.delivery = Some(attempt);
        self
    }
}

/// Executes jobs. The gateway implements it with the agent loop (system events into the
/// main session, agent turns in `cron:<jobId>` sessions, heartbeat turns, delivery).
///
/// `run` should finish by `request.deadline_ms`; the scheduler stops waiting (drops the
/// future) at the deadline and records an error.
#[async_trait::async_trait]
pub trait JobRunner: Send + Sync + 'static {
    async fn run(&self, request: RunRequest) -> RunOutcome;
}
