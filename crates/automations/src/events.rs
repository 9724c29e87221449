//! The scheduler's typed event stream; the gateway projects it onto the wire `cron` event
//! (`{jobId, action, job?, runId?, runAtMs?, status?, summary?, …}`).

use serde::Serialize;

use crate::job::CronJob;
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
        }
    }

    pub(crate) fn with_job(mut self, job: &CronJob) -> CronEvent {
        self.job = Some(Box::new(job.clone()));
        self
    }
}
