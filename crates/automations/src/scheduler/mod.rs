//! The scheduler service: one task that sleeps until the earliest due job, claims due runs
//! durably, hands them to the [`JobRunner`], and records how they ended.
//!
//! # No polling
//!
//! The task waits on three things only: a command (add, update, remove, run, wake, ...), a
//! finished run, and **one** timer armed for the earliest due time in the index. Adding,
//! updating or removing a job re-arms that timer (the wait is rebuilt after every command).
//! With nothing scheduled there is no timer at all. [`SchedulerStats`] counts wake-ups so a
//! benchmark can show that every timer wake-up found work.
//!
//! # No double runs
//!
//! A run is *claimed* before it starts: in one SQLite transaction the scheduler inserts a
//! `running` receipt (at most one per job, enforced by a unique index) and advances the
//! job's next run past the occurrence. Only after that commit does the runner see the job.
//! If the process dies mid-run, the next start finds the `running` receipt, marks it
//! `interrupted` and does **not** run the occurrence again (at-most-once per occurrence). A
//! job that is still running when its next occurrence comes due skips that occurrence
//! (one run per job at a time; the schedule continues after the run).
//!
//! # Missed runs
//!
//! Occurrences that passed while the gateway was down are handled once at start
//! ([`CatchUpPolicy`]): each missed job runs once (not once per missed occurrence) — the
//! first five right away, the rest 5 s apart, agent work after a 2-minute delay — unless
//! `cron.skipMissedJobs` makes recurring jobs skip to their next occurrence. One-shot jobs
//! always catch up.

mod index;
pub(crate) mod persist;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use pincer_store::{CronRunPage, CronRunQuery, Store};
use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::clock::Clock;
use crate::error::{AutomationError, Result};
use crate::events::{CronAction, CronEvent};
use crate::job::{
    apply_patch, config_revision, validate_definition, CronJob, JobContext, JobDefinition, JobId,
    JobState, NewJob, Origin, Payload,
};
use crate::run_delivery::{DeliveryPlan, DeliveryStatus, RunDelivery};
use crate::runner::{JobRunner, RunOutcome, RunRequest, RunTrigger};
use crate::schedule::Schedule;

use index::{Index, NEVER};
pub use persist::{
    CatchUp, CatchUpPolicy, InterruptedRun, ERROR_BACKOFF_MS, MAX_CONSECUTIVE_ERRORS,
};
use persist::{ClaimInput, Claimed, FinishInput, NotClaimed};

/// Scheduler settings.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// `cron.enabled` (and not `OPENCLAW_SKIP_CRON`): with `false`, scheduled occurrences
    /// do not run; manual runs and wakes still do.
    pub enabled: bool,
    pub catch_up: CatchUpPolicy,
    /// Scheduled runs in flight at once (manual runs and wakes are not held back).
    pub max_concurrent_runs: usize,
    pub job_context: JobContext,
    /// Watchdog for agent turns and heartbeats without their own timeout.
    pub agent_turn_timeout_ms: i64,
    /// Watchdog for other payloads.
    pub default_timeout_ms: i64,
    /// Terminal run history older than this is pruned (7 days).
    pub history_max_age_ms: i64,
    /// At most this many terminal runs are kept per job (2000).
    pub history_per_job: usize,
    /// Recorded on receipts.
    pub owner_pid: i64,
    /// Event stream buffer; slow subscribers lose the oldest events.
    pub event_capacity: usize,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            enabled: true,
            catch_up: CatchUpPolicy::default(),
            max_concurrent_runs: 4,
            job_context: JobContext::default(),
            agent_turn_timeout_ms: 60 * 60_000,
            default_timeout_ms: 10 * 60_000,
            history_max_age_ms: 7 * 86_400_000,
            history_per_job: 2_000,
            owner_pid: i64::from(std::process::id()),
            event_capacity: 256,
        }
    }
}

impl SchedulerConfig {
    /// Settings from the configuration file (`cron.*`, default agent, configured agents).
    /// Cron expressions without `tz` use the gateway host's zone, as in the reference.
    pub fn from_config(cfg: &pincer_config::Config) -> SchedulerConfig {
        let cron = cfg.cron.clone().unwrap_or_default();
        let default_tz = jiff::tz::TimeZone::system();
        SchedulerConfig {
            enabled: cron.enabled.unwrap_or(true),
            catch_up: CatchUpPolicy {
                skip_missed_recurring: cron.skip_missed_jobs.unwrap_or(false),
                ..CatchUpPolicy::default()
            },
            job_context: JobContext {
                default_agent_id: cfg.default_agent_id(),
                known_agents: Some(cfg.agent_ids()),
                default_tz,
            },
            ..SchedulerConfig::default()
        }
    }
}

/// `cron.run` modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RunMode {
    /// Run only when the job is due now.
    Due,
    /// Run whatever its state (disabled included).
    #[default]
    Force,
    /// Run when enabled.
    IfEnabled,
}

impl RunMode {
    pub fn parse(text: &str) -> Result<RunMode> {
        match text {
            "due" => Ok(RunMode::Due),
            "force" => Ok(RunMode::Force),
            "if-enabled" => Ok(RunMode::IfEnabled),
            other => Err(AutomationError::invalid(format!(
                "cron.run mode must be \"due\", \"force\" or \"if-enabled\" (got {other:?})"
            ))),
        }
    }
}

/// Called with the answer to a manual run request that claimed a run, before the run starts
/// (before its `started` event is emitted), so the caller can answer its client first: a
/// client that learns the `runId` from that answer sees every event of the run after it.
pub type OnClaimed = Box<dyn FnOnce(&RunAck) + Send>;

/// Answer to a manual run request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RunAck {
    pub ok: bool,
    pub job_id: String,
    /// Set when a run started (poll `cron.runs` with it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Why nothing ran (`not-due`, `disabled`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `cron.status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulerStatus {
    pub enabled: bool,
    pub jobs: usize,
    pub enabled_jobs: usize,
    pub running: usize,
    pub next_wake_at_ms: Option<i64>,
    /// Memory held by the in-memory index (estimate, bytes).
    pub index_bytes: usize,
}

/// Counters for tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SchedulerStats {
    /// The timer resolved.
    pub timer_wakeups: u64,
    /// The timer resolved but nothing was due (should stay 0).
    pub idle_timer_wakeups: u64,
    /// Times due work was found and claimed.
    pub due_batches: u64,
    pub runs_started: u64,
    pub runs_finished: u64,
    /// Due occurrences skipped because the job was still running.
    pub overlaps_skipped: u64,
}

#[derive(Default)]
struct StatCells {
    timer_wakeups: AtomicU64,
    idle_timer_wakeups: AtomicU64,
    due_batches: AtomicU64,
    runs_started: AtomicU64,
    runs_finished: AtomicU64,
    overlaps_skipped: AtomicU64,
}

impl StatCells {
    fn bump(cell: &AtomicU64) {
        cell.fetch_add(1, Ordering::Relaxed);
    }
    fn snapshot(&self) -> SchedulerStats {
        SchedulerStats {
            timer_wakeups: self.timer_wakeups.load(Ordering::Relaxed),
            idle_timer_wakeups: self.idle_timer_wakeups.load(Ordering::Relaxed),
            due_batches: self.due_batches.load(Ordering::Relaxed),
            runs_started: self.runs_started.load(Ordering::Relaxed),
            runs_finished: self.runs_finished.load(Ordering::Relaxed),
            overlaps_skipped: self.overlaps_skipped.load(Ordering::Relaxed),
        }
    }
}

/// What happened at start, before anyone could subscribe to events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StartReport {
    /// Runs that were in progress when the previous process stopped.
    pub interrupted: Vec<InterruptedRun>,
    /// Decisions about occurrences missed while the gateway was down.
    pub catch_up: Vec<CatchUp>,
    /// Jobs in the index.
    pub jobs: usize,
}

/// The desired state of one system-owned job (heartbeat monitors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemJobSpec {
    pub declaration_key: String,
    pub name: String,
    pub display_name: Option<String>,
    pub agent_id: Option<String>,
    /// `None`: keep the job but disabled (e.g. `heartbeat.every: "0m"`).
    pub schedule: Option<Schedule>,
    pub payload: Payload,
    pub session_target: crate::job::SessionTarget,
    pub wake_mode: crate::job::WakeMode,
}

/// A filter for [`Scheduler::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    pub include_disabled: bool,
    pub agent_id: Option<String>,
}

type Reply<T> = oneshot::Sender<Result<T>>;

enum Command {
    Add {
        job: Box<NewJob>,
        origin: Origin,
        reply: Reply<CronJob>,
    },
    Update {
        id: JobId,
        patch: Map<String, Value>,
        expected_revision: Option<String>,
        origin: Origin,
        reply: Reply<CronJob>,
    },
    Remove {
        id: JobId,
        origin: Origin,
        reply: Reply<bool>,
    },
    Run {
        id: JobId,
        mode: RunMode,
        trigger: RunTrigger,
        on_claimed: Option<OnClaimed>,
        reply: Reply<RunAck>,
    },
    Wake {
        id: JobId,
        at_ms: i64,
        reply: Reply<bool>,
    },
    Converge {
        specs: Vec<SystemJobSpec>,
        prefix: String,
        reply: Reply<Vec<CronJob>>,
    },
    Status {
        reply: oneshot::Sender<SchedulerStatus>,
    },
    Settle {
        reply: oneshot::Sender<()>,
    },
    Shutdown {
        reply: oneshot::Sender<()>,
    },
}

struct Shared {
    stats: StatCells,
}

/// Handle to the scheduler task. Cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    tx: mpsc::Sender<Command>,
    events: broadcast::Sender<CronEvent>,
    store: Store,
    shared: Arc<Shared>,
    ctx: JobContext,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").finish_non_exhaustive()
    }
}

impl Scheduler {
    /// Recovers interrupted runs, applies the catch-up policy, builds the index from the
    /// store and starts the scheduler task on the current tokio runtime.
    pub async fn start(
        store: Store,
        clock: Arc<dyn Clock>,
        runner: Arc<dyn JobRunner>,
        config: SchedulerConfig,
    ) -> Result<(Scheduler, StartReport)> {
        let now = clock.now_ms();
        let interrupted = store
            .cron_write(move |tx| persist::recover_interrupted(tx, now))
            .await?;
        let rows = store
            .cron_index(|r| (r.job_id.to_string(), r.enabled, r.next_run_at_ms))
            .await?;
        let overdue: Vec<String> = rows
            .iter()
            .filter(|(_, enabled, next)| *enabled && next.is_some_and(|n| n <= now))
            .map(|(id, _, _)| id.clone())
            .collect();
        let catch_up = if overdue.is_empty() {
            Vec::new()
        } else {
            let ctx = config.job_context.clone();
            let policy = config.catch_up;
            store
                .cron_write(move |tx| persist::plan_catch_up(tx, &overdue, now, policy, &ctx))
                .await?
        };
        let decided: HashMap<&str, &CatchUp> =
            catch_up.iter().map(|c| (c.job_id.as_str(), c)).collect();
        let mut index = Index::new(config.enabled);
        for (id, enabled, next) in &rows {
            let Ok(uuid) = Uuid::parse_str(id) else {
                tracing::warn!(job = %id, "cron: job id is not a UUID; not scheduled");
                continue;
            };
            match decided.get(id.as_str()) {
                Some(c) => index.upsert(uuid, *enabled, c.next_run_at_ms),
                None => index.upsert(uuid, *enabled, *next),
            }
        }
        let max_age = config.history_max_age_ms;
        let per_job = config.history_per_job;
        if let Err(e) = store
            .cron_write(move |tx| tx.prune_runs(now - max_age, per_job))
            .await
        {
            tracing::warn!(error = %e, "cron: pruning run history failed");
        }
        let report = StartReport {
            interrupted,
            catch_up,
            jobs: index.len(),
        };
        let (tx, rx) = mpsc::channel(256);
        let (events, _) = broadcast::channel(config.event_capacity.max(1));
        let shared = Arc::new(Shared {
            stats: StatCells::default(),
        });
        let actor = Actor {
            rx,
            store: store.clone(),
            clock,
            runner,
            index,
            running: JoinSet::new(),
            running_meta: HashMap::new(),
            events: events.clone(),
            shared: shared.clone(),
            settle_waiters: Vec::new(),
            backlogged: false,
            finished_since_prune: 0,
            ctx: config.job_context.clone(),
            config,
        };
        let ctx = actor.ctx.clone();
        tokio::spawn(actor.run());
        Ok((
            Scheduler {
                tx,
                events,
                store,
                shared,
                ctx,
            },
            report,
        ))
    }

    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| AutomationError::Stopped)?;
        rx.await.map_err(|_| AutomationError::Stopped)?
    }

    /// `cron.add`.
    pub async fn add(&self, job: NewJob, origin: Origin) -> Result<CronJob> {
        self.call(|reply| Command::Add {
            job: Box::new(job),
            origin,
            reply,
        })
        .await
    }

    /// `cron.update` (a merge patch; see [`crate::job::apply_patch`]).
    pub async fn update(
        &self,
        id: JobId,
        patch: Map<String, Value>,
        expected_revision: Option<String>,
        origin: Origin,
    ) -> Result<CronJob> {
        self.call(|reply| Command::Update {
            id,
            patch,
            expected_revision,
            origin,
            reply,
        })
        .await
    }

    /// `cron.remove`: whether the job existed.
    pub async fn remove(&self, id: JobId, origin: Origin) -> Result<bool> {
        self.call(|reply| Command::Remove { id, origin, reply })
            .await
    }

    /// `cron.run`.
    pub async fn run_now(&self, id: JobId, mode: RunMode) -> Result<RunAck> {
        self.call(|reply| Command::Run {
            id,
            mode,
            trigger: RunTrigger::Manual,
            on_claimed: None,
            reply,
        })
        .await
    }

    /// `cron.run`, calling `on_claimed` with the answer before a claimed run starts (see
    /// [`OnClaimed`]); runs that are not claimed (errors, `not-due`, `disabled`) only return.
    pub async fn run_now_announced(
        &self,
        id: JobId,
        mode: RunMode,
        on_claimed: OnClaimed,
    ) -> Result<RunAck> {
        self.call(|reply| Command::Run {
            id,
            mode,
            trigger: RunTrigger::Manual,
            on_claimed: Some(on_claimed),
            reply,
        })
        .await
    }

    /// Runs `id` out of band at `at_ms` (a wake; earlier requests win; not persisted).
    /// Returns whether the job is known.
    pub async fn wake_at(&self, id: JobId, at_ms: i64) -> Result<bool> {
        self.call(|reply| Command::Wake { id, at_ms, reply }).await
    }

    /// Makes the system-owned jobs whose declaration key starts with `prefix` match
    /// `specs` (create, update, disable the ones no longer wanted).
    pub async fn converge_system_jobs(
        &self,
        prefix: &str,
        specs: Vec<SystemJobSpec>,
    ) -> Result<Vec<CronJob>> {
        let prefix = prefix.to_string();
        self.call(|reply| Command::Converge {
            specs,
            prefix,
            reply,
        })
        .await
    }

    /// `cron.get`.
    pub async fn get(&self, id: JobId) -> Result<Option<CronJob>> {
        match self.store.cron_job(&id.to_string()).await? {
            Some(row) => Ok(Some(persist::job_from_row(&row)?)),
            None => Ok(None),
        }
    }

    /// The job with this declaration key.
    pub async fn get_declared(&self, declaration_key: &str) -> Result<Option<CronJob>> {
        let key = declaration_key.to_string();
        Ok(self
            .store
            .cron_jobs()
            .await?
            .iter()
            .filter(|r| r.declaration_key.as_deref() == Some(key.as_str()))
            .find_map(|r| persist::job_from_row(r).ok()))
    }

    /// `cron.list`, oldest first.
    pub async fn list(&self, filter: &ListFilter) -> Result<Vec<CronJob>> {
        let rows = self.store.cron_jobs().await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if !filter.include_disabled && !row.enabled {
                continue;
            }
            match persist::job_from_row(&row) {
                Ok(job) => {
                    if let Some(agent) = &filter.agent_id {
                        if job.effective_agent_id(&self.ctx.default_agent_id) != agent {
                            continue;
                        }
                    }
                    out.push(job);
                }
                Err(e) => {
                    tracing::warn!(job = %row.job_id, error = %e, "cron: unreadable job not listed")
                }
            }
        }
        Ok(out)
    }

    /// `cron.runs`.
    pub async fn runs(&self, query: CronRunQuery) -> Result<CronRunPage> {
        Ok(self.store.cron_runs(query).await?)
    }

    /// `cron.scratch.get`: the monitor scratch of a job.
    pub async fn scratch(&self, id: JobId) -> Result<Option<pincer_store::CronScratch>> {
        Ok(self.store.cron_scratch(&id.to_string()).await?)
    }

    /// `cron.scratch.set`: replaces (`Some`) or removes (`None`) the scratch; with
    /// `expected_revision` only when it still matches (0 = none yet). Returns the new revision.
    pub async fn set_scratch(
        &self,
        id: JobId,
        content: Option<String>,
        expected_revision: Option<i64>,
        now_ms: i64,
    ) -> Result<i64> {
        self.store
            .cron_write(move |tx| {
                tx.set_scratch(
                    &id.to_string(),
                    content.as_deref(),
                    expected_revision,
                    now_ms,
                )
            })
            .await
            .map_err(store_to_invalid)
    }

    /// `cron.status`.
    pub async fn status(&self) -> Result<SchedulerStatus> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Status { reply })
            .await
            .map_err(|_| AutomationError::Stopped)?;
        rx.await.map_err(|_| AutomationError::Stopped)
    }

    /// Resolves once nothing is due and no run is in flight (tests, benchmarks).
    pub async fn settle(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Settle { reply })
            .await
            .map_err(|_| AutomationError::Stopped)?;
        rx.await.map_err(|_| AutomationError::Stopped)
    }

    /// The event stream (`cron` wire events).
    pub fn subscribe(&self) -> broadcast::Receiver<CronEvent> {
        self.events.subscribe()
    }

    pub fn stats(&self) -> SchedulerStats {
        self.shared.stats.snapshot()
    }

    pub fn job_context(&self) -> &JobContext {
        &self.ctx
    }

    /// Stops the task. Runs still in flight are dropped; their receipts stay `running` and
    /// the next start records them as interrupted.
    pub async fn shutdown(&self) {
        let (reply, rx) = oneshot::channel();
        if self.tx.send(Command::Shutdown { reply }).await.is_ok() {
            let _ = rx.await;
        }
    }
}

struct RunMeta {
    job_id: Uuid,
    run_id: String,
    trigger: RunTrigger,
    started_at_ms: i64,
    /// The job's delivery settings at claim time (an edit during the run does not change
    /// what the run was asked to do).
    delivery_plan: DeliveryPlan,
}

struct Actor {
    rx: mpsc::Receiver<Command>,
    store: Store,
    clock: Arc<dyn Clock>,
    runner: Arc<dyn JobRunner>,
    index: Index,
    running: JoinSet<RunOutcome>,
    running_meta: HashMap<tokio::task::Id, RunMeta>,
    events: broadcast::Sender<CronEvent>,
    shared: Arc<Shared>,
    settle_waiters: Vec<oneshot::Sender<()>>,
    /// Due work is waiting for a free run slot (the timer is not armed meanwhile).
    backlogged: bool,
    finished_since_prune: usize,
    ctx: JobContext,
    config: SchedulerConfig,
}

/// Prune history after this many finished runs (no timer needed for housekeeping).
const PRUNE_EVERY_RUNS: usize = 500;
/// A claim that failed (store trouble) is retried this much later.
const CLAIM_RETRY_MS: i64 = 5_000;

impl Actor {
    async fn run(mut self) {
        loop {
            self.fire_due().await;
            if self.running.is_empty() && !self.due_now() {
                for w in self.settle_waiters.drain(..) {
                    let _ = w.send(());
                }
            }
            let timer = match self.index.earliest() {
                Some((at, _)) if !self.backlogged => Some(self.clock.sleep_until(at)),
                _ => None,
            };
            let armed = timer.is_some();
            let timer = async move {
                match timer {
                    Some(t) => t.await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                Some(done) = self.running.join_next_with_id(), if !self.running.is_empty() => {
                    self.on_finished(done).await;
                }
                cmd = self.rx.recv() => match cmd {
                    Some(Command::Shutdown { reply }) => {
                        self.running.abort_all();
                        let _ = reply.send(());
                        return;
                    }
                    Some(cmd) => self.handle(cmd).await,
                    None => {
                        self.running.abort_all();
                        return;
                    }
                },
                () = timer, if armed => {
                    StatCells::bump(&self.shared.stats.timer_wakeups);
                    if !self.due_now() {
                        StatCells::bump(&self.shared.stats.idle_timer_wakeups);
                    }
                }
            }
        }
    }

    fn due_now(&self) -> bool {
        let now = self.clock.now_ms();
        self.index.earliest().is_some_and(|(at, _)| at <= now)
    }

    fn emit(&self, event: CronEvent) {
        // No subscriber is fine: events are advisory.
        let _ = self.events.send(event);
    }

    fn emit_scheduled(&self, job: &CronJob) {
        let mut ev = CronEvent::new(job.def.id.to_string(), CronAction::Scheduled);
        ev.next_run_at_ms = job.state.next_run_at_ms;
        ev.run_at_ms = job.state.next_run_at_ms;
        self.emit(ev);
    }

    fn timeout_for(&self, job: &CronJob) -> i64 {
        match &job.def.payload {
            Payload::AgentTurn {
                timeout_seconds: Some(s),
                ..
            } => i64::try_from(*s)
                .unwrap_or(i64::MAX / 2_000)
                .saturating_mul(1_000),
            Payload::AgentTurn { .. } | Payload::Heartbeat {} => self.config.agent_turn_timeout_ms,
            Payload::SystemEvent { .. } => self.config.default_timeout_ms,
        }
    }

    /// Claims and starts every due job the run slots allow.
    async fn fire_due(&mut self) {
        let now = self.clock.now_ms();
        let capacity = self.config.max_concurrent_runs.max(1);
        let mut due: Vec<(Uuid, Option<RunTrigger>)> = Vec::new();
        while self.running.len() + due.len() < capacity {
            let Some((at, id)) = self.index.earliest() else {
                break;
            };
            if at > now {
                break;
            }
            let Some(slot) = self.index.get(id) else {
                break;
            };
            // Scheduled occurrences win over a wake due at the same time.
            let scheduled = self.config.enabled && slot.enabled() && slot.natural <= now;
            let out_of_band = if scheduled {
                None
            } else {
                Some(RunTrigger::Wake)
            };
            self.index.set_running(id, true);
            self.index.clear_wake(id);
            due.push((id, out_of_band));
        }
        self.backlogged = self.due_now();
        if due.is_empty() {
            return;
        }
        StatCells::bump(&self.shared.stats.due_batches);
        let inputs: Vec<ClaimInput> = due
            .iter()
            .map(|(id, oob)| ClaimInput {
                job_id: id.to_string(),
                run_id: Uuid::new_v4().to_string(),
                out_of_band: *oob,
                force: oob.is_some(),
            })
            .collect();
        let ctx = self.ctx.clone();
        let pid = self.config.owner_pid;
        let result = self
            .store
            .cron_write(move |tx| {
                let mut out = Vec::with_capacity(inputs.len());
                for input in &inputs {
                    out.push(persist::claim(tx, input, now, pid, &ctx)?);
                }
                Ok(out)
            })
            .await;
        match result {
            Ok(claims) => {
                for ((id, _), claim) in due.into_iter().zip(claims) {
                    match claim {
                        Ok(claimed) => self.start_run(id, claimed, now),
                        Err(NotClaimed::Missing) => self.index.remove(id),
                        Err(NotClaimed::Reindex { enabled, next }) => {
                            self.index.set_running(id, false);
                            self.index.upsert(id, enabled, next);
                        }
                        Err(NotClaimed::Busy) => {
                            // Still running from a previous claim: skip this occurrence.
                            StatCells::bump(&self.shared.stats.overlaps_skipped);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "cron: claiming due runs failed; retrying in 5 s");
                for (id, _) in due {
                    self.index.set_running(id, false);
                    self.index.retry_at(id, now + CLAIM_RETRY_MS);
                }
            }
        }
        self.backlogged = self.due_now() && self.running.len() >= capacity;
    }

    fn start_run(&mut self, id: Uuid, claimed: Claimed, now: i64) {
        let Claimed {
            job,
            run_id,
            trigger,
            scheduled_for_ms,
            next_run_at_ms,
        } = claimed;
        // Keep the natural next run in the index; the slot stays "running" until the finish.
        self.index.upsert(id, job.def.enabled, next_run_at_ms);
        self.index.set_running(id, true);
        let deadline = now.saturating_add(self.timeout_for(&job));
        let delivery_plan = DeliveryPlan::of(&job.def);
        let mut ev = CronEvent::new(id.to_string(), CronAction::Started);
        ev.run_id = Some(run_id.clone());
        ev.run_at_ms = Some(now);
        ev.trigger = Some(trigger);
        ev.next_run_at_ms = next_run_at_ms;
        self.emit(ev);
        StatCells::bump(&self.shared.stats.runs_started);
        let request = RunRequest {
            run_id: run_id.clone(),
            job,
            trigger,
            scheduled_for_ms,
            started_at_ms: now,
            deadline_ms: deadline,
        };
        let runner = self.runner.clone();
        let clock = self.clock.clone();
        let handle = self.running.spawn(async move {
            let timeout = clock.sleep_until(deadline);
            tokio::select! {
                outcome = runner.run(request) => outcome,
                () = timeout => RunOutcome::error(format!(
                    "timed out after {} s", (deadline - now) / 1_000
                )),
            }
        });
        self.running_meta.insert(
            handle.id(),
            RunMeta {
                job_id: id,
                run_id,
                trigger,
                started_at_ms: now,
                delivery_plan,
            },
        );
    }

    async fn on_finished(
        &mut self,
        done: std::result::Result<(tokio::task::Id, RunOutcome), tokio::task::JoinError>,
    ) {
        let (task_id, outcome) = match done {
            Ok((id, outcome)) => (id, outcome),
            Err(e) => {
                let outcome = if e.is_panic() {
                    RunOutcome::error("the job runner panicked")
                } else {
                    RunOutcome::error("the run was cancelled")
                };
                (e.id(), outcome)
            }
        };
        let Some(meta) = self.running_meta.remove(&task_id) else {
            return;
        };
        StatCells::bump(&self.shared.stats.runs_finished);
        let now = self.clock.now_ms();
        let delivery = RunDelivery::resolve(
            &meta.delivery_plan,
            outcome.status,
            outcome.delivery.as_ref(),
            outcome.error.as_deref(),
        );
        let input = FinishInput {
            job_id: meta.job_id.to_string(),
            run_id: meta.run_id.clone(),
            trigger: meta.trigger,
            started_at_ms: meta.started_at_ms,
            outcome: outcome.clone(),
            delivery: delivery.clone(),
        };
        let ctx = self.ctx.clone();
        let result = self
            .store
            .cron_write(move |tx| persist::finish(tx, &input, now, &ctx))
            .await;
        self.index.set_running(meta.job_id, false);
        let mut ev =
            CronEvent::new(meta.job_id.to_string(), CronAction::Finished).with_delivery(&delivery);
        ev.run_id = Some(meta.run_id);
        ev.run_at_ms = Some(meta.started_at_ms);
        ev.status = Some(outcome.status.as_str().to_string());
        ev.summary = outcome.summary;
        ev.error = outcome.error;
        ev.duration_ms = Some(now - meta.started_at_ms);
        ev.trigger = Some(meta.trigger);
        match result {
            Ok(finish) => match (&finish.job, finish.deleted) {
                (Some(job), false) => {
                    ev.next_run_at_ms = job.state.next_run_at_ms;
                    self.index
                        .upsert(meta.job_id, job.def.enabled, job.state.next_run_at_ms);
                    self.emit(ev);
                    self.emit_scheduled(job);
                }
                (Some(job), true) => {
                    self.index.remove(meta.job_id);
                    self.emit(ev);
                    self.emit(
                        CronEvent::new(meta.job_id.to_string(), CronAction::Removed).with_job(job),
                    );
                }
                (None, _) => {
                    self.index.remove(meta.job_id);
                    self.emit(ev);
                }
            },
            Err(e) => {
                tracing::error!(job = %meta.job_id, error = %e, "cron: recording a finished run failed");
                self.emit(ev);
            }
        }
        self.finished_since_prune += 1;
        if self.finished_since_prune >= PRUNE_EVERY_RUNS {
            self.finished_since_prune = 0;
            let before = now - self.config.history_max_age_ms;
            let keep = self.config.history_per_job;
            if let Err(e) = self
                .store
                .cron_write(move |tx| tx.prune_runs(before, keep))
                .await
            {
                tracing::warn!(error = %e, "cron: pruning run history failed");
            }
        }
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Add { job, origin, reply } => {
                let _ = reply.send(self.add(*job, origin).await);
            }
            Command::Update {
                id,
                patch,
                expected_revision,
                origin,
                reply,
            } => {
                let _ = reply.send(self.update(id, patch, expected_revision, origin).await);
            }
            Command::Remove { id, origin, reply } => {
                let _ = reply.send(self.remove(id, origin).await);
            }
            Command::Run {
                id,
                mode,
                trigger,
                on_claimed,
                reply,
            } => {
                let _ = reply.send(self.run_now(id, mode, trigger, on_claimed).await);
            }
            Command::Wake { id, at_ms, reply } => {
                let known = self.index.set_wake(id.0, at_ms);
                let _ = reply.send(Ok(known));
            }
            Command::Converge {
                specs,
                prefix,
                reply,
            } => {
                let _ = reply.send(self.converge(specs, prefix).await);
            }
            Command::Status { reply } => {
                let _ = reply.send(SchedulerStatus {
                    enabled: self.config.enabled,
                    jobs: self.index.len(),
                    enabled_jobs: self.index.enabled_count(),
                    running: self.index.running_count(),
                    next_wake_at_ms: self
                        .index
                        .earliest()
                        .map(|(t, _)| t)
                        .filter(|t| *t != NEVER),
                    index_bytes: self.index.heap_bytes(),
                });
            }
            Command::Settle { reply } => self.settle_waiters.push(reply),
            Command::Shutdown { .. } => {}
        }
    }

    fn reindex(&mut self, job: &CronJob) {
        let running = self.index.get(job.def.id.0).is_some_and(|s| s.running());
        self.index
            .upsert(job.def.id.0, job.def.enabled, job.state.next_run_at_ms);
        if running {
            self.index.set_running(job.def.id.0, true);
        }
    }

    async fn add(&mut self, new: NewJob, origin: Origin) -> Result<CronJob> {
        let now = self.clock.now_ms();
        let id = JobId::new_random();
        let def = new.into_definition(id, now, origin, &self.ctx)?;
        let ctx = self.ctx.clone();
        let job = self
            .store
            .cron_write(move |tx| {
                if let Some(key) = &def.declaration_key {
                    if tx.job_by_declaration(key)?.is_some() {
                        return Err(pincer_store::StoreError::Rejected(format!(
                            "cron job already exists: declarationKey {key:?}"
                        )));
                    }
                }
                let state = JobState {
                    next_run_at_ms: persist::initial_next_run(&def, now, &ctx),
                    ..JobState::default()
                };
                let job = CronJob::new(def, state);
                tx.put_job(&persist::row_from_job(&job)?)?;
                Ok(job)
            })
            .await
            .map_err(store_to_invalid)?;
        self.reindex(&job);
        self.emit(CronEvent::new(id.to_string(), CronAction::Added).with_job(&job));
        self.emit_scheduled(&job);
        Ok(job)
    }

    async fn update(
        &mut self,
        id: JobId,
        patch: Map<String, Value>,
        expected_revision: Option<String>,
        origin: Origin,
    ) -> Result<CronJob> {
        let now = self.clock.now_ms();
        let ctx = self.ctx.clone();
        let job = self
            .store
            .cron_write(move |tx| {
                let Some(row) = tx.job(&id.to_string())? else {
                    return Ok(Err(AutomationError::NotFound(id.to_string())));
                };
                let current = persist::job_from_row(&row)?;
                if let Some(expected) = &expected_revision {
                    if *expected != current.config_revision {
                        return Ok(Err(AutomationError::Conflict {
                            id: id.to_string(),
                            expected: expected.clone(),
                            actual: current.config_revision.clone(),
                        }));
                    }
                }
                let def = match apply_patch(&current.def, &patch, now, origin, &ctx) {
                    Ok(def) => def,
                    Err(e) => return Ok(Err(e)),
                };
                Ok(Ok(store_definition(tx, current, def, now, &ctx)?))
            })
            .await??;
        self.reindex(&job);
        self.emit(CronEvent::new(id.to_string(), CronAction::Updated).with_job(&job));
        self.emit_scheduled(&job);
        Ok(job)
    }

    async fn remove(&mut self, id: JobId, origin: Origin) -> Result<bool> {
        let removed = self
            .store
            .cron_write(move |tx| {
                let Some(row) = tx.job(&id.to_string())? else {
                    return Ok(Ok(None));
                };
                let job = persist::job_from_row(&row)?;
                if origin == Origin::User && job.is_system() {
                    return Ok(Err(AutomationError::SystemOwned(id.to_string())));
                }
                tx.delete_job(&id.to_string())?;
                Ok(Ok(Some(job)))
            })
            .await??;
        match removed {
            Some(job) => {
                let running = self.index.get(id.0).is_some_and(|s| s.running());
                if running {
                    // The run in flight finishes normally; then the slot goes away.
                    self.index.upsert(id.0, false, None);
                    self.index.set_running(id.0, true);
                } else {
                    self.index.remove(id.0);
                }
                self.emit(CronEvent::new(id.to_string(), CronAction::Removed).with_job(&job));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn run_now(
        &mut self,
        id: JobId,
        mode: RunMode,
        trigger: RunTrigger,
        on_claimed: Option<OnClaimed>,
    ) -> Result<RunAck> {
        let now = self.clock.now_ms();
        if self.index.get(id.0).is_some_and(|s| s.running()) {
            return Err(AutomationError::AlreadyRunning(id.to_string()));
        }
        let Some(row) = self.store.cron_job(&id.to_string()).await? else {
            return Err(AutomationError::NotFound(id.to_string()));
        };
        let job = persist::job_from_row(&row)?;
        let not_run = |reason: &str| RunAck {
            ok: true,
            job_id: id.to_string(),
            run_id: None,
            reason: Some(reason.to_string()),
        };
        match mode {
            RunMode::IfEnabled if !job.def.enabled => return Ok(not_run("disabled")),
            RunMode::Due if !job.def.enabled => return Ok(not_run("disabled")),
            RunMode::Due if job.state.next_run_at_ms.is_none_or(|t| t > now) => {
                return Ok(not_run("not-due"))
            }
            _ => {}
        }
        // A due-mode run serves the occurrence (advances the schedule); the others are
        // out of band.
        let input = ClaimInput {
            job_id: id.to_string(),
            run_id: Uuid::new_v4().to_string(),
            out_of_band: (mode != RunMode::Due).then_some(trigger),
            force: mode == RunMode::Force,
        };
        let ctx = self.ctx.clone();
        let pid = self.config.owner_pid;
        let claim = self
            .store
            .cron_write(move |tx| persist::claim(tx, &input, now, pid, &ctx))
            .await?;
        match claim {
            Ok(claimed) => {
                let run_id = claimed.run_id.clone();
                if self.index.get(id.0).is_none() {
                    self.index
                        .upsert(id.0, claimed.job.def.enabled, claimed.next_run_at_ms);
                }
                let ack = RunAck {
                    ok: true,
                    job_id: id.to_string(),
                    run_id: Some(run_id),
                    reason: None,
                };
                if let Some(announce) = on_claimed {
                    announce(&ack);
                }
                self.start_run(id.0, claimed, now);
                Ok(ack)
            }
            Err(NotClaimed::Busy) => Err(AutomationError::AlreadyRunning(id.to_string())),
            Err(NotClaimed::Missing) => Err(AutomationError::NotFound(id.to_string())),
            Err(NotClaimed::Reindex { .. }) => Ok(not_run("not-due")),
        }
    }

    async fn converge(
        &mut self,
        specs: Vec<SystemJobSpec>,
        prefix: String,
    ) -> Result<Vec<CronJob>> {
        let now = self.clock.now_ms();
        let ctx = self.ctx.clone();
        let (jobs, changed) = self
            .store
            .cron_write(move |tx| {
                let mut out = Vec::new();
                let mut changed = Vec::new();
                let wanted: Vec<&str> = specs.iter().map(|s| s.declaration_key.as_str()).collect();
                for spec in &specs {
                    let existing = tx.job_by_declaration(&spec.declaration_key)?;
                    let existing = match existing.as_ref().map(persist::job_from_row) {
                        Some(Ok(job)) => Some(job),
                        Some(Err(e)) => {
                            tracing::warn!(key = %spec.declaration_key, error = %e, "cron: replacing an unreadable system job");
                            None
                        }
                        None => None,
                    };
                    let (id, created_at, mut def_schedule) = match &existing {
                        Some(job) => (job.def.id, job.def.created_at_ms, job.def.schedule.clone()),
                        None => (JobId::new_random(), now, Schedule::Every { every_ms: 1_800_000, anchor_ms: Some(now) }),
                    };
                    if let Some(s) = &spec.schedule {
                        let same_interval = matches!((&def_schedule, s),
                            (Schedule::Every { every_ms: a, .. }, Schedule::Every { every_ms: b, anchor_ms: None }) if a == b);
                        if !same_interval {
                            def_schedule = match s {
                                Schedule::Every { every_ms, anchor_ms } => Schedule::Every { every_ms: *every_ms, anchor_ms: Some(anchor_ms.unwrap_or(now)) },
                                other => other.clone(),
                            };
                        }
                    }
                    let def = JobDefinition {
                        id,
                        declaration_key: Some(spec.declaration_key.clone()),
                        display_name: spec.display_name.clone(),
                        agent_id: spec.agent_id.clone(),
                        name: spec.name.clone(),
                        description: None,
                        enabled: spec.schedule.is_some(),
                        created_at_ms: created_at,
                        updated_at_ms: now,
                        schedule: def_schedule,
                        session_target: spec.session_target.clone(),
                        session_key: None,
                        wake_mode: spec.wake_mode,
                        payload: spec.payload.clone(),
                        delivery: None,
                        delete_after_run: None,
                    };
                    let def = match validate_definition(def, Origin::System, &ctx) {
                        Ok(d) => d,
                        Err(e) => return Ok(Err(e)),
                    };
                    let job = match existing {
                        Some(current) => {
                            let mut probe = def.clone();
                            probe.updated_at_ms = current.def.updated_at_ms;
                            if probe == current.def {
                                current
                            } else {
                                let job = store_definition(tx, current, def, now, &ctx)?;
                                changed.push(job.clone());
                                job
                            }
                        }
                        None => {
                            let state = JobState {
                                next_run_at_ms: persist::initial_next_run(&def, now, &ctx),
                                ..JobState::default()
                            };
                            let job = CronJob::new(def, state);
                            tx.put_job(&persist::row_from_job(&job)?)?;
                            changed.push(job.clone());
                            job
                        }
                    };
                    out.push(job);
                }
                // System jobs of this family that are no longer wanted: disable, keep.
                for row in tx.declared_jobs(&prefix)? {
                    let Some(key) = row.declaration_key.as_deref() else { continue };
                    if !key.starts_with(&prefix) || wanted.contains(&key) || !row.enabled {
                        continue;
                    }
                    if let Ok(current) = persist::job_from_row(&row) {
                        let mut def = current.def.clone();
                        def.enabled = false;
                        let job = store_definition(tx, current, def, now, &ctx)?;
                        changed.push(job);
                    }
                }
                Ok(Ok((out, changed)))
            })
            .await??;
        for job in &changed {
            self.reindex(job);
            self.emit(CronEvent::new(job.def.id.to_string(), CronAction::Updated).with_job(job));
            self.emit_scheduled(job);
        }
        Ok(jobs)
    }
}

/// Stores a changed definition, recomputing the next run when the schedule or enablement
/// changed.
fn store_definition(
    tx: &mut pincer_store::CronTx<'_>,
    current: CronJob,
    def: JobDefinition,
    now: i64,
    ctx: &JobContext,
) -> std::result::Result<CronJob, pincer_store::StoreError> {
    let mut state = current.state;
    let reschedule = def.schedule != current.def.schedule || def.enabled != current.def.enabled;
    if reschedule {
        state.next_run_at_ms = persist::initial_next_run(&def, now, ctx);
        state.startup_catchup_at_ms = None;
    }
    if !def.enabled {
        state.next_run_at_ms = None;
    }
    let job = CronJob {
        config_revision: config_revision(&def),
        def,
        state,
    };
    tx.put_job(&persist::row_from_job(&job)?)?;
    Ok(job)
}

fn store_to_invalid(e: pincer_store::StoreError) -> AutomationError {
    match e {
        pincer_store::StoreError::Rejected(msg) => AutomationError::Invalid(msg),
        other => AutomationError::Store(other),
    }
}

/// A `cron.runs` entry: `{ts, jobId, action:"finished", status, summary?, error?, runId,
/// durationMs?, runAtMs, trigger, completionStatus?, delivered?, deliveryStatus?,
/// deliveryError?, deliverySuppressionReason?}` (`status: "running"` while in progress; the
/// delivery fields are absent until the run finished, and on runs recorded before they were).
pub fn run_entry_wire(r: &pincer_store::CronRunReceipt) -> Value {
    let mut v = serde_json::json!({
        "ts": r.finished_at_ms.unwrap_or(r.started_at_ms),
        "jobId": r.job_id,
        "action": if r.finished_at_ms.is_some() { "finished" } else { "started" },
        "status": r.status.as_str(),
        "runId": r.receipt_id,
        "runAtMs": r.started_at_ms,
        "trigger": r.trigger,
    });
    if let Value::Object(m) = &mut v {
        if let Some(end) = r.finished_at_ms {
            m.insert("durationMs".into(), Value::from(end - r.started_at_ms));
        }
        if let Some(s) = &r.summary {
            m.insert("summary".into(), Value::from(s.as_str()));
        }
        if let Some(e) = &r.error {
            m.insert("error".into(), Value::from(e.as_str()));
        }
        if let Some(a) = &r.agent_id {
            m.insert("agentId".into(), Value::from(a.as_str()));
        }
        let d = &r.delivery;
        if let Some(c) = &d.completion_status {
            m.insert("completionStatus".into(), Value::from(c.as_str()));
        }
        if let Some(status) = &d.status {
            match DeliveryStatus::parse(status) {
                Some(DeliveryStatus::Delivered) => {
                    m.insert("delivered".into(), Value::Bool(true));
                }
                Some(DeliveryStatus::NotDelivered) => {
                    m.insert("delivered".into(), Value::Bool(false));
                }
                _ => {}
            }
            m.insert("deliveryStatus".into(), Value::from(status.as_str()));
        }
        if let Some(e) = &d.error {
            m.insert("deliveryError".into(), Value::from(e.as_str()));
        }
        if let Some(reason) = &d.suppression_reason {
            m.insert(
                "deliverySuppressionReason".into(),
                Value::from(reason.as_str()),
            );
        }
    }
    v
}

/// Re-exported for tests of the run protocol.
pub use persist::{job_from_row, row_from_job};
