//! Pincer automations: schedules (`at`, `every`, `cron` in IANA zones with DST rules),
//! the job model, a persistent scheduler that sleeps until the next due job, the
//! heartbeat policy, and framework-independent pieces of the HTTP surface (hooks request
//! validation, OpenAI-compatible request/response types and SSE framing).
//!
//! The gateway mounts these: it implements [`JobRunner`] with the agent loop, projects
//! [`CronEvent`]s and [`heartbeat::HeartbeatEvent`]s onto wire events, and serves the
//! `cron.*`, `wake`, `last-heartbeat`, `set-heartbeats` methods and the HTTP endpoints.
//!
//! ```no_run
//! # async fn demo(store: pincer_store::Store, runner: std::sync::Arc<dyn pincer_automations::JobRunner>) -> Result<(), pincer_automations::AutomationError> {
//! use std::sync::Arc;
//! use pincer_automations::{NewJob, Origin, Scheduler, SchedulerConfig, SystemClock};
//!
//! let (scheduler, report) = Scheduler::start(store, Arc::new(SystemClock::new()), runner, SchedulerConfig::default()).await?;
//! let job = NewJob::from_value(serde_json::json!({
//!     "name": "build check",
//!     "schedule": {"kind": "cron", "expr": "0 8 * * 1-5", "tz": "Europe/Berlin"},
//!     "payload": {"kind": "agentTurn", "message": "Check the build"}
//! }))?;
//! let job = scheduler.add(job, Origin::User).await?;
//! # let _ = (job, report); Ok(()) }
//! ```

pub mod clock;
pub mod duration;
pub mod error;
pub mod events;
pub mod heartbeat;
pub mod hooks;
pub mod job;
pub mod openai;
pub mod run_delivery;
pub mod runner;
pub mod schedule;
pub mod scheduler;

pub use clock::{Clock, SystemClock, TestClock};
pub use error::{AutomationError, Result};
pub use events::{CronAction, CronEvent};
pub use job::{
    CronJob, Delivery, DeliveryMode, JobContext, JobDefinition, JobId, JobState, NewJob, Origin,
    Payload, RunStatus, SessionTarget, WakeMode,
};
pub use run_delivery::{
    CompletionStatus, DeliveryAttempt, DeliveryPlan, DeliveryStatus, RunDelivery, SuppressionReason,
};
pub use runner::{JobRunner, RunOutcome, RunRequest, RunTrigger};
pub use schedule::{CompiledSchedule, Schedule, ScheduleError};
pub use scheduler::{
    CatchUp, CatchUpPolicy, InterruptedRun, ListFilter, OnClaimed, RunAck, RunMode, Scheduler,
    SchedulerConfig, SchedulerStats, SchedulerStatus, StartReport, SystemJobSpec,
};
