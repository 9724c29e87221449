//! The scheduler's typed event stream; the gateway projects it onto the wire `cron` event
//! (`{jobId, action, job?, runId?, runAtMs?, status?, summary?, …}`).

use serde::Serialize;

use crate::job::CronJob;
use crate::run_delivery::{CompletionStatus, DeliveryStatus, RunDelivery, SuppressionReason};
use crate::runner::RunTrigger;

/// What happened to a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CronAction {
    Added,
    Updated,
    Removed,
    Started,
    Finished,
    /// The next run time changed (after an add, update, run or catch-up decision).
    Scheduled,
}

/// One scheduler event. Serialises to the wire `cron` payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CronEvent {
    pub job_id: String,
    pub action: CronAction,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<Box<CronJob>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Started: when the run started; finished: when it started (history key);
    /// scheduled: the next run time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_at_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_run_at_ms: Option<i64>,
    /// `ok`, `error`, `skipped`, or `interrupted` (finished events).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trigger: Option<RunTrigger>,
    /// Finished events: the run's verdict and what became of its result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion_status: Option<CompletionStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_status: Option<DeliveryStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery_suppression_reason: Option<SuppressionReason>,
}

impl CronEvent {
    pub fn new(job_id: impl Into<String>, action: CronAction) -> CronEvent {
        CronEvent {
            job_id: job_id.into(),
            action,
            job: None,
            run_id: None,
            run_at_ms: None,
            next_run_at_ms: None,
            status: None,
            summary: None,
            error: None,
            duration_ms: None,
            trigger: None,
            completion_status: None,
            delivered: None,
            delivery_status: None,
            delivery_error: None,
            delivery_suppression_reason: None,
        }
    }

    pub(crate) fn with_delivery(mut self, d: &RunDelivery) -> CronEvent {
        self.completion_status = Some(d.completion);
        self.delivered = d.delivered();
        self.delivery_status = Some(d.status);
        self.delivery_error.clone_from(&d.error);
        self.delivery_suppression_reason = d.suppression_reason;
        self
    }

    pub(crate) fn with_job(mut self, job: &CronJob) -> CronEvent {
        self.job = Some(Box::new(job.clone()));
        self
    }
}
