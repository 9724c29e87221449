//! The run protocol as store transactions. Each function runs inside one
//! `Store::cron_write` closure (one SQLite transaction on the writer thread), so a claim,
//! a finish or a catch-up decision is all-or-nothing and durable before anyone acts on it.

use pincer_store::{CronJobRow, CronRunFinish, CronRunReceipt, CronRunStatus, CronTx, StoreError};

use crate::job::{
    CronJob, JobContext, JobDefinition, JobState, Payload, RunStatus, SessionTarget, WakeMode,
};
use crate::run_delivery::RunDelivery;
use crate::runner::{RunOutcome, RunTrigger};
use crate::schedule::Schedule;

/// Retry delays after consecutive execution errors of a recurring job (30 s, 1 min,
/// 5 min, 15 min, 60 min), as the reference uses; a success resets the streak.
pub const ERROR_BACKOFF_MS: [i64; 5] = [30_000, 60_000, 300_000, 900_000, 3_600_000];
/// Recurring jobs are disabled after this many consecutive execution errors.
pub const MAX_CONSECUTIVE_ERRORS: u32 = 10;

pub(crate) fn backoff_ms(consecutive_errors: u32) -> i64 {
    let i = (consecutive_errors.max(1) - 1) as usize;
    ERROR_BACKOFF_MS[i.min(ERROR_BACKOFF_MS.len() - 1)]
}

fn corrupt(id: &str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Rejected(format!("stored cron job {id} is unreadable: {reason}"))
}

/// Parses a stored row into a job.
pub fn job_from_row(row: &CronJobRow) -> Result<CronJob, StoreError> {
    let def: JobDefinition =
        serde_json::from_str(&row.job_json).map_err(|e| corrupt(&row.job_id, e))?;
    let state: JobState =
        serde_json::from_str(&row.state_json).map_err(|e| corrupt(&row.job_id, e))?;
    Ok(CronJob {
        def,
        state,
        config_revision: row.config_revision.clone(),
    })
}

/// The row of a job (definition and state as JSON, projections filled in).
pub fn row_from_job(job: &CronJob) -> Result<CronJobRow, StoreError> {
    let ser = |what, r: serde_json::Result<String>| {
        r.map_err(|source| StoreError::Serialize { what, source })
    };
    Ok(CronJobRow {
        job_id: job.def.id.to_string(),
        declaration_key: job.def.declaration_key.clone(),
        agent_id: job.def.agent_id.clone(),
        name: job.def.name.clone(),
        enabled: job.def.enabled,
        payload_kind: job.def.payload.kind().to_string(),
        job_json: ser("cron job definition", serde_json::to_string(&job.def))?,
        state_json: ser("cron job state", serde_json::to_string(&job.state))?,
        next_run_at_ms: job.state.next_run_at_ms,
        config_revision: job.config_revision.clone(),
        created_at_ms: job.def.created_at_ms,
        updated_at_ms: job.def.updated_at_ms,
    })
}

fn put_state(tx: &mut CronTx<'_>, job: &CronJob) -> Result<(), StoreError> {
    let state = serde_json::to_string(&job.state).map_err(|source| StoreError::Serialize {
        what: "cron job state",
        source,
    })?;
    tx.put_state(&job.def.id.to_string(), &state, job.state.next_run_at_ms)?;
    Ok(())
}

/// The natural next run of an enabled job after `now_ms` (`at`: its instant, even when it
/// just passed, so a freshly added one-shot still runs).
pub(crate) fn initial_next_run(def: &JobDefinition, now_ms: i64, ctx: &JobContext) -> Option<i64> {
    if !def.enabled {
        return None;
    }
    let compiled = def.schedule.compile(&ctx.default_tz).ok()?;
    match def.schedule {
        Schedule::At { .. } => compiled.next_after(i64::MIN, ""),
        _ => compiled.next_after(now_ms, &def.id.to_string()),
    }
}

/// A claimed run: its receipt is committed.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    pub job: CronJob,
    pub run_id: String,
    pub trigger: RunTrigger,
    pub scheduled_for_ms: Option<i64>,
    /// The job's natural next run after this claim.
    pub next_run_at_ms: Option<i64>,
}

/// Why a due job was not claimed.
#[derive(Debug, Clone)]
pub(crate) enum NotClaimed {
    /// Gone or unreadable: drop it from the index.
    Missing,
    /// Disabled or not due: re-index with this natural time.
    Reindex { enabled: bool, next: Option<i64> },
    /// A run is already in progress.
    Busy,
}

pub(crate) struct ClaimInput {
    pub job_id: String,
    pub run_id: String,
    /// `None`: scheduled occurrence (or catch-up, decided from the job state); `Some`: an
    /// out-of-band trigger (manual, wake) that leaves the natural schedule alone.
    pub out_of_band: Option<RunTrigger>,
    /// Only for manual runs: run even when disabled.
    pub force: bool,
}

/// Claims one run: inserts the `running` receipt and records the run on the job (and, for
/// a scheduled occurrence, advances its natural next run), all in the caller's transaction.
pub(crate) fn claim(
    tx: &mut CronTx<'_>,
    input: &ClaimInput,
    now_ms: i64,
    owner_pid: i64,
    ctx: &JobContext,
) -> Result<Result<Claimed, NotClaimed>, StoreError> {
    let Some(row) = tx.job(&input.job_id)? else {
        return Ok(Err(NotClaimed::Missing));
    };
    let mut job = match job_from_row(&row) {
        Ok(job) => job,
        Err(e) => {
            tracing::error!(job = %input.job_id, error = %e, "cron: skipping unreadable job");
            return Ok(Err(NotClaimed::Missing));
        }
    };
    if !job.def.enabled && !input.force {
        return Ok(Err(NotClaimed::Reindex {
            enabled: false,
            next: None,
        }));
    }
    if tx.running_receipt(&input.job_id)?.is_some() {
        return Ok(Err(NotClaimed::Busy));
    }
    let (trigger, scheduled_for) = match input.out_of_band {
        Some(t) => (t, None),
        None => {
            let Some(due) = job.state.next_run_at_ms.filter(|t| *t <= now_ms) else {
                return Ok(Err(NotClaimed::Reindex {
                    enabled: job.def.enabled,
                    next: job.state.next_run_at_ms,
                }));
            };
            let trigger = if job.state.startup_catchup_at_ms == Some(due) {
                RunTrigger::CatchUp
            } else {
                RunTrigger::Schedule
            };
            (trigger, Some(due))
        }
    };
    if trigger.is_scheduled() {
        job.state.next_run_at_ms = match &job.def.schedule {
            Schedule::At { .. } => None,
            s => s
                .compile(&ctx.default_tz)
                .ok()
                .and_then(|c| c.next_after(now_ms, &input.job_id)),
        };
        job.state.startup_catchup_at_ms = None;
    }
    tx.insert_receipt(&CronRunReceipt {
        receipt_id: input.run_id.clone(),
        job_id: input.job_id.clone(),
        agent_id: job.def.agent_id.clone(),
        config_revision: job.config_revision.clone(),
        trigger: trigger.as_str().to_string(),
        scheduled_for_ms: scheduled_for,
        status: CronRunStatus::Running,
        owner_pid,
        started_at_ms: now_ms,
        finished_at_ms: None,
        summary: None,
        error: None,
        delivery: pincer_store::CronRunDelivery::default(),
    })?;
    job.state.running_at_ms = Some(now_ms);
    job.state.running_run_id = Some(input.run_id.clone());
    put_state(tx, &job)?;
    let next = job.state.next_run_at_ms;
    Ok(Ok(Claimed {
        job,
        run_id: input.run_id.clone(),
        trigger,
        scheduled_for_ms: scheduled_for,
        next_run_at_ms: next,
    }))
}

/// What a finished run left behind.
#[derive(Debug, Clone)]
pub(crate) struct FinishResult {
    /// The job after the run (`None`: it was removed, before or because of the run).
    pub job: Option<CronJob>,
    /// The run deleted the job (a successful one-shot with `deleteAfterRun`).
    pub deleted: bool,
}

pub(crate) struct FinishInput {
    pub job_id: String,
    pub run_id: String,
    pub trigger: RunTrigger,
    pub started_at_ms: i64,
    pub outcome: RunOutcome,
    pub delivery: RunDelivery,
}

/// Records a finished run: terminal receipt, job state (last run, error streak with
/// backoff, next run), one-shot cleanup. One transaction.
pub(crate) fn finish(
    tx: &mut CronTx<'_>,
    input: &FinishInput,
    now_ms: i64,
    ctx: &JobContext,
) -> Result<FinishResult, StoreError> {
    let status = match input.outcome.status {
        RunStatus::Ok => CronRunStatus::Ok,
        RunStatus::Error => CronRunStatus::Error,
        RunStatus::Skipped => CronRunStatus::Skipped,
    };
    tx.finish_receipt(
        &input.run_id,
        &CronRunFinish {
            status,
            finished_at_ms: now_ms,
            summary: input.outcome.summary.clone(),
            error: input.outcome.error.clone(),
            delivery: input.delivery.to_store(),
        },
    )?;
    let Some(row) = tx.job(&input.job_id)? else {
        return Ok(FinishResult {
            job: None,
            deleted: false,
        });
    };
    let mut job = job_from_row(&row)?;
    let st = &mut job.state;
    st.last_run_at_ms = Some(input.started_at_ms);
    st.last_status = Some(input.outcome.status);
    st.last_error.clone_from(&input.outcome.error);
    st.last_summary.clone_from(&input.outcome.summary);
    st.last_duration_ms = Some(now_ms - input.started_at_ms);
    st.last_run_id = Some(input.run_id.clone());
    st.running_at_ms = None;
    st.running_run_id = None;
    match input.outcome.status {
        RunStatus::Ok => st.consecutive_errors = 0,
        RunStatus::Error => st.consecutive_errors = st.consecutive_errors.saturating_add(1),
        RunStatus::Skipped => {}
    }
    let recurring = job.def.schedule.is_recurring();
    if !recurring && input.trigger.is_scheduled() {
        // The one-shot occurrence is consumed.
        if input.outcome.status == RunStatus::Ok && job.def.delete_after_run.unwrap_or(false) {
            tx.delete_job(&input.job_id)?;
            return Ok(FinishResult {
                job: Some(job),
                deleted: true,
            });
        }
        job.def.enabled = false;
        job.state.next_run_at_ms = None;
    } else if recurring && job.def.enabled {
        let compiled = job.def.schedule.compile(&ctx.default_tz).ok();
        let mut next = job
            .state
            .next_run_at_ms
            .filter(|t| *t > now_ms)
            .or_else(|| {
                compiled
                    .as_ref()
                    .and_then(|c| c.next_after(now_ms, &input.job_id))
            });
        if input.outcome.status == RunStatus::Error && input.trigger.is_scheduled() {
            let retry = now_ms + backoff_ms(job.state.consecutive_errors);
            next = next.map(|n| n.max(retry));
        }
        job.state.next_run_at_ms = next;
        if job.state.consecutive_errors >= MAX_CONSECUTIVE_ERRORS && !job.is_system() {
            job.def.enabled = false;
            job.state.next_run_at_ms = None;
            job.state.last_error = Some(format!(
                "auto-disabled after {} consecutive errors; last: {}",
                job.state.consecutive_errors,
                input.outcome.error.as_deref().unwrap_or("unknown")
            ));
        }
    }
    tx.put_job(&row_from_job(&job)?)?;
    Ok(FinishResult {
        job: Some(job),
        deleted: false,
    })
}

/// A run found `running` at start: the process that owned it is gone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterruptedRun {
    pub job_id: String,
    pub run_id: String,
    pub started_at_ms: i64,
}

/// Marks every `running` receipt `interrupted` (one gateway per state dir: at start they
/// all belong to a dead process) and records the interruption on the jobs. The interrupted
/// occurrence is not run again: its claim already advanced the schedule (a one-shot is
/// left disabled for inspection).
pub(crate) fn recover_interrupted(
    tx: &mut CronTx<'_>,
    now_ms: i64,
) -> Result<Vec<InterruptedRun>, StoreError> {
    const MESSAGE: &str = "interrupted: the gateway stopped while the run was in progress";
    let mut out = Vec::new();
    for receipt in tx.running_receipts()? {
        tx.finish_receipt(
            &receipt.receipt_id,
            &CronRunFinish {
                status: CronRunStatus::Interrupted,
                finished_at_ms: now_ms,
                summary: None,
                error: Some(MESSAGE.into()),
                delivery: RunDelivery::interrupted(MESSAGE).to_store(),
            },
        )?;
        if let Some(row) = tx.job(&receipt.job_id)? {
            if let Ok(mut job) = job_from_row(&row) {
                let st = &mut job.state;
                st.running_at_ms = None;
                st.running_run_id = None;
                st.last_run_at_ms = Some(receipt.started_at_ms);
                st.last_status = Some(RunStatus::Error);
                st.last_error = Some(MESSAGE.into());
                st.last_run_id = Some(receipt.receipt_id.clone());
                st.consecutive_errors = st.consecutive_errors.saturating_add(1);
                let consumed_one_shot = !job.def.schedule.is_recurring()
                    && matches!(receipt.trigger.as_str(), "schedule" | "catch-up");
                if consumed_one_shot {
                    job.def.enabled = false;
                    job.state.next_run_at_ms = None;
                }
                tx.put_job(&row_from_job(&job)?)?;
            }
        }
        out.push(InterruptedRun {
            job_id: receipt.job_id,
            run_id: receipt.receipt_id,
            started_at_ms: receipt.started_at_ms,
        });
    }
    Ok(out)
}

/// How missed occurrences are handled at start (the reference's policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CatchUpPolicy {
    /// `cron.skipMissedJobs`: recurring jobs skip to their next future occurrence.
    pub skip_missed_recurring: bool,
    /// Missed jobs run right away, at most this many.
    pub max_immediate: usize,
    /// The rest follow, this far apart.
    pub stagger_ms: i64,
    /// Missed jobs that need the agent (agent turns, heartbeats, main-session events that
    /// wake at once) wait this long, keeping model work out of the startup path.
    pub agent_delay_ms: i64,
}

impl Default for CatchUpPolicy {
    fn default() -> Self {
        CatchUpPolicy {
            skip_missed_recurring: false,
            max_immediate: 5,
            stagger_ms: 5_000,
            agent_delay_ms: 120_000,
        }
    }
}

/// A catch-up decision for one missed job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatchUp {
    pub job_id: String,
    /// The missed occurrence.
    pub missed_at_ms: i64,
    /// When it runs now (`None`: skipped; see `next_run_at_ms`).
    pub run_at_ms: Option<i64>,
    /// The job's next run after the decision.
    pub next_run_at_ms: Option<i64>,
}

fn waits_for_agent(job: &CronJob) -> bool {
    match job.def.payload {
        Payload::AgentTurn { .. } | Payload::Heartbeat {} => true,
        Payload::SystemEvent { .. } => {
            job.def.session_target == SessionTarget::Main && job.def.wake_mode == WakeMode::Now
        }
    }
}

/// Decides, for jobs whose natural next run passed while the gateway was down, whether
/// they run once now (each missed job runs once, however many occurrences it missed),
/// later, or skip, and persists the decision.
pub(crate) fn plan_catch_up(
    tx: &mut CronTx<'_>,
    overdue: &[String],
    now_ms: i64,
    policy: CatchUpPolicy,
    ctx: &JobContext,
) -> Result<Vec<CatchUp>, StoreError> {
    let mut jobs: Vec<CronJob> = Vec::new();
    for id in overdue {
        if let Some(row) = tx.job(id)? {
            match job_from_row(&row) {
                Ok(job) => jobs.push(job),
                Err(e) => tracing::error!(job = %id, error = %e, "cron: unreadable job skipped"),
            }
        }
    }
    jobs.sort_by_key(|j| (j.state.next_run_at_ms, j.def.id));
    let mut out = Vec::new();
    let mut immediate = 0usize;
    let mut staggered = 0i64;
    for mut job in jobs {
        let Some(missed) = job.state.next_run_at_ms.filter(|t| *t <= now_ms) else {
            continue;
        };
        let id = job.def.id.to_string();
        let run_at = if policy.skip_missed_recurring && job.def.schedule.is_recurring() {
            None
        } else if waits_for_agent(&job) {
            Some(now_ms + policy.agent_delay_ms)
        } else if immediate < policy.max_immediate {
            immediate += 1;
            Some(now_ms)
        } else {
            staggered += 1;
            Some(now_ms + staggered * policy.stagger_ms)
        };
        match run_at {
            Some(at) => {
                job.state.next_run_at_ms = Some(at);
                job.state.startup_catchup_at_ms = Some(at);
            }
            None => {
                job.state.next_run_at_ms = job
                    .def
                    .schedule
                    .compile(&ctx.default_tz)
                    .ok()
                    .and_then(|c| c.next_after(now_ms, &id));
                job.state.startup_catchup_at_ms = None;
            }
        }
        put_state(tx, &job)?;
        out.push(CatchUp {
            job_id: id,
            missed_at_ms: missed,
            run_at_ms: run_at,
            next_run_at_ms: job.state.next_run_at_ms,
        });
    }
    Ok(out)
}
