//! The runtime: admission, one lane per session (runs in a session are serialised), queue
//! modes, the global concurrency limit, aborts, and the table of run outcomes.
//!
//! # Lanes and queues (runtime.md §4.4)
//!
//! Each session key has at most one *active* run. A message for an idle session starts a
//! run at once. While a run is active, the session's queue mode decides:
//!
//! - `steer`: the message goes to the active run's inbox; the run appends it at its next
//!   boundary (before the next model call, or between two tool calls, where the remaining
//!   calls get a "skipped" result). If the run ends before reading it, it becomes a followup.
//! - `followup`: it waits and runs as its own turn after the active run.
//! - `collect`: waiting messages of the same channel are coalesced into one turn.
//! - `interrupt`: the active run is aborted and the newest message runs next; older
//!   waiting messages are dropped.
//!
//! Waiting turns start only after the queue has been quiet for the debounce (500 ms by
//! default). The queue holds at most `cap` (20) messages; past that `drop` decides: `old`
//! drops the oldest, `new` refuses the newcomer, `summarize` drops the oldest and tells the
//! next turn what was dropped.
//!
//! Runs then take a permit of the global lane (`agents.defaults.maxConcurrent`).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use pincer_config::model::messages::{QueueDrop, QueueMode};
use pincer_providers::ProviderClient;
use pincer_sessions::SessionKey;
use pincer_store::Store;
use pincer_tools::context::Hosts;
use pincer_tools::exec::process::ProcessRegistry;
use pincer_tools::ToolRegistry;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::commands;
use crate::events::{AbortReason, RunEvent, RunOutcome, RunStatus};
use crate::request::{Admission, RunHandle, RunRequest, SubmitError, Submitted};
use crate::settings::Settings;
use crate::util::now_ms;

/// How long finished outcomes stay queryable (`agent.wait`).
const OUTCOME_TTL: Duration = Duration::from_secs(10 * 60);
/// Finished outcomes kept at most.
const OUTCOME_MAX: usize = 4096;
/// Capacity of the global event channel.
pub const EVENT_CHANNEL_CAPACITY: usize = 8192;

/// Knobs that are not configuration (tests, benches, embedders).
#[derive(Clone, Default)]
pub struct AgentOptions {
    /// Overrides every model's idle-stream timeout.
    pub idle_timeout: Option<Duration>,
    /// Replaces the provider layer's retry policies `(rate_limit, transient)`.
    pub retry: Option<(pincer_providers::RetryPolicy, pincer_providers::RetryPolicy)>,
    /// Model calls per run before the run is stopped (default 64).
    pub max_model_calls: Option<u32>,
    /// Gateway-backed tool hosts (approvals, messaging, nodes, memory). The runtime adds its
    /// own sessions host, and a memory index over its store when none is given.
    pub hosts: Hosts,
    /// The persistent exec approvals document (allowlists, allow-always grants); without it
    /// the exec tool applies config only and grants last for one call.
    pub approvals_store: Option<Arc<dyn pincer_tools::exec::approvals::ApprovalsStore>>,
}

/// What the runtime is built from.
pub struct AgentDeps {
    pub store: Store,
    pub client: ProviderClient,
    pub tools: Arc<ToolRegistry>,
    pub settings: Settings,
    /// Every event of every run, in per-run order. The gateway projects them onto the wire.
    pub events: mpsc::Sender<RunEvent>,
    pub options: AgentOptions,
}

/// One waiting message.
pub(crate) struct Queued {
    pub req: RunRequest,
    pub mode: QueueMode,
    pub debounce: Duration,
    pub at: Instant,
}

/// The steering inbox of an active run.
#[derive(Default)]
pub(crate) struct Inbox {
    pub items: Vec<RunRequest>,
}

/// Handles shared between the lane and its active run.
#[derive(Clone)]
pub(crate) struct RunControl {
    pub run_id: String,
    pub cancel: CancellationToken,
    pub abort_reason: Arc<Mutex<Option<AbortReason>>>,
    pub inbox: Arc<Mutex<Inbox>>,
    /// Inputs folded into this run (steered, collected).
    pub merged: Arc<Mutex<Vec<String>>>,
}

impl RunControl {
    fn new(run_id: &str) -> Self {
        RunControl {
            run_id: run_id.to_owned(),
            cancel: CancellationToken::new(),
            abort_reason: Arc::new(Mutex::new(None)),
            inbox: Arc::new(Mutex::new(Inbox::default())),
            merged: Arc::new(Mutex::new(Vec::new())),
        }
    }

    pub fn abort(&self, reason: AbortReason) {
        let mut r = self.abort_reason.lock();
        if r.is_none() {
            *r = Some(reason);
        }
        drop(r);
        self.cancel.cancel();
    }

    pub fn reason(&self) -> Option<AbortReason> {
        *self.abort_reason.lock()
    }

    /// Takes what was steered into the run so far.
    pub fn take_steered(&self) -> Vec<RunRequest> {
        std::mem::take(&mut self.inbox.lock().items)
    }

    pub fn has_steered(&self) -> bool {
        !self.inbox.lock().items.is_empty()
    }
}

#[derive(Default)]
pub(crate) struct Lane {
    pub active: Option<RunControl>,
    pub queue: VecDeque<Queued>,
    /// A drain timer is pending for this instant.
    pub drain_at: Option<Instant>,
    /// One-line notes about messages dropped by `drop: summarize`.
    pub dropped: Vec<String>,
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunState {
    Queued,
    Running,
    Done,
}

struct RunRecord {
    session_key: String,
    state: RunState,
    tx: watch::Sender<Option<Arc<RunOutcome>>>,
    done_at: Option<Instant>,
}

#[derive(Default)]
struct RunTable {
    runs: HashMap<String, RunRecord>,
    done_order: VecDeque<(Instant, String)>,
}

/// What [`AgentRuntime::wait`] found.
#[derive(Debug, Clone)]
pub enum WaitResult {
    Done(Arc<RunOutcome>),
    /// Still queued or running at the deadline.
    Pending,
    /// Never seen (within the deadline).
    Unknown,
}

/// (config version, agent, provider, model, session policy bits).
pub(crate) type ToolCacheKey = (usize, String, String, String, u8);

pub(crate) struct Inner {
    pub store: Store,
    pub client: ProviderClient,
    pub tools: Arc<ToolRegistry>,
    pub settings: RwLock<Arc<Settings>>,
    pub events: mpsc::Sender<RunEvent>,
    pub options: AgentOptions,
    pub processes: Arc<ProcessRegistry>,
    pub global: Arc<Semaphore>,
    /// Offered tools per (config version, agent, provider, model).
    pub tool_cache: Mutex<HashMap<ToolCacheKey, Arc<crate::run::OfferedTools>>>,
    lanes: Mutex<HashMap<String, Lane>>,
    runs: Mutex<RunTable>,
    runs_changed: Notify,
    shutting_down: std::sync::atomic::AtomicBool,
    pub me: Weak<Inner>,
}

/// The agent runtime. Cheap to clone; one per gateway.
#[derive(Clone)]
pub struct AgentRuntime {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for AgentRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentRuntime").finish_non_exhaustive()
    }
}

impl AgentRuntime {
    /// A runtime. Must be called inside a tokio runtime (timers and tasks are spawned).
    pub fn new(deps: AgentDeps) -> AgentRuntime {
        for warning in &deps.settings.warnings {
            tracing::warn!("{warning}");
        }
        let max = deps.settings.max_concurrent();
        let inner = Arc::new_cyclic(|me| Inner {
            store: deps.store,
            client: deps.client,
            tools: deps.tools,
            settings: RwLock::new(Arc::new(deps.settings)),
            events: deps.events,
            options: deps.options,
            processes: Arc::new(ProcessRegistry::default()),
            global: Arc::new(Semaphore::new(max)),
            tool_cache: Mutex::new(HashMap::new()),
            lanes: Mutex::new(HashMap::new()),
            runs: Mutex::new(RunTable::default()),
            runs_changed: Notify::new(),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            me: me.clone(),
        });
        AgentRuntime { inner }
    }

    /// The settings in force.
    pub fn settings(&self) -> Arc<Settings> {
        self.inner.settings()
    }

    /// Swaps in a new config version (hot reload). Running turns keep the one they started
    /// with; `maxConcurrent` changes need a restart.
    pub fn update_settings(&self, settings: Settings) {
        for warning in &settings.warnings {
            tracing::warn!("{warning}");
        }
        *self.inner.settings.write() = Arc::new(settings);
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Admits one message for its session: a chat command is answered, an idle session
    /// starts a run, a busy one applies its queue mode. Returns at once; follow the run
    /// through the event channel or [`Submitted::handle`].
    pub async fn submit(&self, mut req: RunRequest) -> Result<Submitted, SubmitError> {
        if self.inner.is_shutting_down() {
            return Err(SubmitError::ShuttingDown);
        }
        if req.message.trim().is_empty() {
            return Err(SubmitError::EmptyMessage);
        }
        let settings = self.inner.settings();
        let agent_id = settings.agent_of(&req.session_key);
        let key = req.session_key.to_string();
        let handle = self.inner.register(&req.run_id, &key)?;
        let accepted_at = now_ms();
        let receipt = |admission| Submitted {
            run_id: req.run_id.clone(),
            session_key: key.clone(),
            agent_id: agent_id.clone(),
            admission,
            accepted_at,
            handle: handle.clone(),
        };

        let command = if req.interpret_commands {
            commands::parse(&req.message, &settings.reset_triggers())
        } else {
            None
        };
        if let Some(cmd) = command.as_ref().filter(|c| c.is_immediate()) {
            let name = cmd.name().to_owned();
            let inner = self.inner.clone();
            let cmd = cmd.clone();
            let r = receipt(Admission::Command { name });
            self.inner.set_state(&req.run_id, RunState::Running);
            tokio::spawn(async move {
                let run_id = req.run_id.clone();
                let outcome = commands::run_immediate(&inner, req, cmd).await;
                inner.complete(&run_id, Arc::new(outcome));
            });
            return Ok(r);
        }

        // Fast path: an idle lane starts at once without reading the session.
        {
            let mut lanes = self.inner.lanes.lock();
            let lane = lanes.entry(key.clone()).or_default();
            if lane.active.is_none() && lane.queue.is_empty() {
                let control = RunControl::new(&req.run_id);
                lane.active = Some(control.clone());
                drop(lanes);
                self.inner.spawn_run(req.clone(), control);
                return Ok(receipt(Admission::Started));
            }
        }

        let session = self
            .inner
            .store
            .get_session(&req.session_key)
            .await
            .ok()
            .flatten();
        let mut qs = settings.queue(
            req.source.channel(),
            session.as_ref().map(|s| &s.entry),
            req.queue_mode,
        );
        if command.is_some() {
            // Lane commands (/new, /reset, /compact) wait their turn, never steer or interrupt.
            qs.mode = QueueMode::Followup;
        }
        req.queue_mode = Some(qs.mode);
        let mut lanes = self.inner.lanes.lock();
        let lane = lanes.entry(key.clone()).or_default();
        if lane.active.is_none() && lane.queue.is_empty() {
            let control = RunControl::new(&req.run_id);
            lane.active = Some(control.clone());
            drop(lanes);
            self.inner.spawn_run(req.clone(), control);
            return Ok(receipt(Admission::Started));
        }
        let run_id = req.run_id.clone();
        match qs.mode {
            QueueMode::Steer => {
                if let Some(active) = lane.active.as_ref() {
                    let into = active.run_id.clone();
                    active.inbox.lock().items.push(req.clone());
                    active.merged.lock().push(run_id.clone());
                    drop(lanes);
                    self.inner.set_state(&run_id, RunState::Running);
                    return Ok(receipt(Admission::Steered { into }));
                }
                // No active run (only waiting ones): queue behind them.
                lane.queue.push_back(Queued {
                    req: req.clone(),
                    mode: QueueMode::Followup,
                    debounce: qs.debounce,
                    at: Instant::now(),
                });
            }
            QueueMode::Interrupt => {
                let dropped: Vec<String> = lane.queue.drain(..).map(|q| q.req.run_id).collect();
                if let Some(active) = lane.active.as_ref() {
                    active.abort(AbortReason::Interrupt);
                }
                lane.queue.push_back(Queued {
                    req: req.clone(),
                    mode: QueueMode::Interrupt,
                    debounce: Duration::ZERO,
                    at: Instant::now(),
                });
                let position = lane.queue.len();
                drop(lanes);
                for id in dropped {
                    self.inner
                        .complete_aborted(&id, &key, &agent_id, AbortReason::Interrupt);
                }
                return Ok(receipt(Admission::Queued { position }));
            }
            QueueMode::Followup | QueueMode::Collect => {
                if lane.queue.len() >= qs.cap {
                    match qs.drop {
                        QueueDrop::New => {
                            drop(lanes);
                            self.inner.forget(&run_id);
                            return Err(SubmitError::QueueFull {
                                session: key,
                                cap: qs.cap,
                            });
                        }
                        QueueDrop::Old | QueueDrop::Summarize => {
                            if let Some(oldest) = lane.queue.pop_front() {
                                if qs.drop == QueueDrop::Summarize {
                                    lane.dropped
                                        .push(crate::util::preview(oldest.req.message.trim(), 160));
                                }
                                let id = oldest.req.run_id;
                                let (k, a) = (key.clone(), agent_id.clone());
                                let inner = self.inner.clone();
                                tokio::spawn(async move {
                                    inner.complete_aborted(&id, &k, &a, AbortReason::Interrupt)
                                });
                            }
                        }
                    }
                }
                lane.queue.push_back(Queued {
                    req: req.clone(),
                    mode: qs.mode,
                    debounce: qs.debounce,
                    at: Instant::now(),
                });
            }
        }
        let position = lane.queue.len();
        // A lane with waiting turns but no active run (a drain timer is pending) needs a
        // timer that covers the newest message's debounce.
        if lane.active.is_none() {
            drop(lanes);
            self.inner.schedule_drain(&key);
        }
        Ok(receipt(Admission::Queued { position }))
    }

    /// Aborts runs of a session: with `run_id`, that one (queued, steered or active);
    /// without, every waiting turn and then the active run. Returns the aborted run ids.
    pub fn abort(
        &self,
        session_key: &str,
        run_id: Option<&str>,
        reason: AbortReason,
    ) -> Vec<String> {
        let settings = self.inner.settings();
        let agent_id = SessionKey::parse(session_key)
            .map(|k| settings.agent_of(&k))
            .unwrap_or_else(|_| settings.default_agent_id());
        let mut lanes = self.inner.lanes.lock();
        let Some(lane) = lanes.get_mut(session_key) else {
            return Vec::new();
        };
        let mut aborted_queued = Vec::new();
        let mut aborted = Vec::new();
        match run_id {
            Some(id) => {
                if let Some(pos) = lane.queue.iter().position(|q| q.req.run_id == id) {
                    if let Some(q) = lane.queue.remove(pos) {
                        aborted_queued.push(q.req.run_id);
                    }
                } else if let Some(active) = lane.active.as_ref() {
                    let steered = active.merged.lock().iter().any(|m| m == id);
                    if active.run_id == id || steered {
                        active.abort(reason);
                        aborted.push(active.run_id.clone());
                    }
                }
            }
            None => {
                aborted_queued.extend(lane.queue.drain(..).map(|q| q.req.run_id));
                if let Some(active) = lane.active.as_ref() {
                    if !active.cancel.is_cancelled() {
                        active.abort(reason);
                        aborted.push(active.run_id.clone());
                    }
                }
            }
        }
        drop(lanes);
        for id in &aborted_queued {
            self.inner
                .complete_aborted(id, session_key, &agent_id, reason);
        }
        aborted_queued.extend(aborted);
        aborted_queued
    }

    /// Run ids active or waiting in a session (active first).
    pub fn session_runs(&self, session_key: &str) -> Vec<String> {
        let lanes = self.inner.lanes.lock();
        let Some(lane) = lanes.get(session_key) else {
            return Vec::new();
        };
        lane.active
            .iter()
            .map(|a| a.run_id.clone())
            .chain(lane.queue.iter().map(|q| q.req.run_id.clone()))
            .collect()
    }

    /// The run a session has active (empty when its lane is idle or only has waiting turns).
    pub fn active_run_ids(&self, session_key: &str) -> Vec<String> {
        self.inner
            .lanes
            .lock()
            .get(session_key)
            .and_then(|l| l.active.as_ref())
            .map(|a| vec![a.run_id.clone()])
            .unwrap_or_default()
    }

    /// `(session key, run id)` of every active run.
    pub fn active_runs(&self) -> Vec<(String, String)> {
        self.inner
            .lanes
            .lock()
            .iter()
            .filter_map(|(key, l)| l.active.as_ref().map(|a| (key.clone(), a.run_id.clone())))
            .collect()
    }

    /// Whether a session has an active run.
    pub fn is_busy(&self, session_key: &str) -> bool {
        self.inner
            .lanes
            .lock()
            .get(session_key)
            .is_some_and(|l| l.active.is_some())
    }

    /// The session key of a known run (queued, running or recently finished).
    pub fn run_session(&self, run_id: &str) -> Option<String> {
        self.inner
            .runs
            .lock()
            .runs
            .get(run_id)
            .map(|r| r.session_key.clone())
    }

    /// The state of a run, if known.
    pub fn run_state(&self, run_id: &str) -> Option<RunState> {
        self.inner.runs.lock().runs.get(run_id).map(|r| r.state)
    }

    /// A handle on a known run.
    pub fn handle(&self, run_id: &str) -> Option<RunHandle> {
        self.inner.runs.lock().runs.get(run_id).map(|r| RunHandle {
            rx: r.tx.subscribe(),
        })
    }

    /// Waits up to `timeout` for a run to end (`agent.wait`). A run that is not known yet
    /// may still appear within the deadline.
    pub async fn wait(&self, run_id: &str, timeout: Duration) -> WaitResult {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.runs_changed.notified();
            if let Some(mut handle) = self.handle(run_id) {
                return match tokio::time::timeout_at(deadline, handle.outcome()).await {
                    Ok(outcome) => WaitResult::Done(outcome),
                    Err(_) => WaitResult::Pending,
                };
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return WaitResult::Unknown;
            }
        }
    }

    /// Compacts a session now (`/compact`, `sessions.compact`), waiting for its lane.
    pub async fn compact(
        &self,
        session_key: &SessionKey,
        instructions: Option<&str>,
    ) -> Result<crate::compaction::CompactReport, crate::compaction::CompactError> {
        crate::compaction::compact_now(&self.inner, session_key, instructions).await
    }

    /// Appends an assistant note to a session without a run (`chat.inject`). Fails when the
    /// session does not exist.
    pub async fn inject(
        &self,
        session_key: &SessionKey,
        text: &str,
        label: Option<&str>,
    ) -> Result<crate::commands::Injected, crate::commands::InjectError> {
        crate::commands::inject(&self.inner, session_key, text, label).await
    }

    /// The `/status` card of a session.
    pub async fn status_card(&self, session_key: &SessionKey) -> String {
        crate::status::card(&self.inner, session_key).await
    }

    /// Aborts everything and stops admitting messages (gateway shutdown).
    pub fn shutdown(&self) {
        self.inner
            .shutting_down
            .store(true, std::sync::atomic::Ordering::Release);
        let keys: Vec<String> = self.inner.lanes.lock().keys().cloned().collect();
        for key in keys {
            self.abort(&key, None, AbortReason::Shutdown);
        }
    }

    /// Number of sessions with an active run.
    pub fn active_count(&self) -> usize {
        self.inner
            .lanes
            .lock()
            .values()
            .filter(|l| l.active.is_some())
            .count()
    }
}

impl Inner {
    pub fn settings(&self) -> Arc<Settings> {
        self.settings.read().clone()
    }

    fn is_shutting_down(&self) -> bool {
        self.shutting_down
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Creates the outcome record of a new run id.
    fn register(&self, run_id: &str, session_key: &str) -> Result<RunHandle, SubmitError> {
        let mut table = self.runs.lock();
        if table.runs.contains_key(run_id) {
            return Err(SubmitError::DuplicateRunId(run_id.to_owned()));
        }
        prune(&mut table);
        let (tx, rx) = watch::channel(None);
        table.runs.insert(
            run_id.to_owned(),
            RunRecord {
                session_key: session_key.to_owned(),
                state: RunState::Queued,
                tx,
                done_at: None,
            },
        );
        drop(table);
        self.runs_changed.notify_waiters();
        Ok(RunHandle { rx })
    }

    fn forget(&self, run_id: &str) {
        self.runs.lock().runs.remove(run_id);
    }

    pub(crate) fn set_state(&self, run_id: &str, state: RunState) {
        if let Some(r) = self.runs.lock().runs.get_mut(run_id) {
            r.state = state;
        }
    }

    /// Records a run's outcome and wakes its waiters.
    pub(crate) fn complete(&self, run_id: &str, outcome: Arc<RunOutcome>) {
        let mut table = self.runs.lock();
        let now = Instant::now();
        if let Some(r) = table.runs.get_mut(run_id) {
            r.state = RunState::Done;
            r.done_at = Some(now);
            r.tx.send_replace(Some(outcome));
            table.done_order.push_back((now, run_id.to_owned()));
        }
        drop(table);
        self.runs_changed.notify_waiters();
    }

    /// Ends a run that never started (dropped from the queue, aborted while waiting).
    pub(crate) fn complete_aborted(
        &self,
        run_id: &str,
        key: &str,
        agent_id: &str,
        reason: AbortReason,
    ) {
        let mut outcome = RunOutcome::bare(run_id, key, agent_id, RunStatus::Aborted, now_ms());
        outcome.abort_reason = Some(reason);
        outcome.stop_reason = Some(reason.as_str().to_owned());
        self.complete(run_id, Arc::new(outcome));
    }

    fn spawn_run(&self, req: RunRequest, control: RunControl) {
        let Some(inner) = self.me.upgrade() else {
            return;
        };
        self.set_state(&req.run_id, RunState::Running);
        tokio::spawn(async move {
            let key = req.session_key.to_string();
            let run_id = req.run_id.clone();
            let outcome = crate::run::execute(inner.clone(), req, control.clone()).await;
            let outcome = Arc::new(outcome);
            let merged: Vec<String> = control.merged.lock().clone();
            inner.finish_lane(&key, &control);
            inner.complete(&run_id, outcome.clone());
            for id in merged {
                // Folded inputs that were read share the run's outcome; a steered message
                // that arrived too late was re-queued and has its own run.
                if inner.run_state(&id) == Some(RunState::Running) {
                    let mut o = (*outcome).clone();
                    o.run_id = id.clone();
                    o.merged_into = Some(run_id.clone());
                    inner.complete(&id, Arc::new(o));
                }
            }
        });
    }

    fn run_state(&self, run_id: &str) -> Option<RunState> {
        self.runs.lock().runs.get(run_id).map(|r| r.state)
    }

    /// Called when a lane's active run has ended: unread steered messages become followups,
    /// then the next waiting turn is scheduled.
    fn finish_lane(&self, key: &str, control: &RunControl) {
        let mut lanes = self.lanes.lock();
        let Some(lane) = lanes.get_mut(key) else {
            return;
        };
        if lane
            .active
            .as_ref()
            .is_some_and(|a| a.run_id == control.run_id)
        {
            lane.active = None;
        }
        let leftovers = control.take_steered();
        if !leftovers.is_empty() {
            let mut merged = control.merged.lock();
            for req in leftovers.into_iter().rev() {
                merged.retain(|m| *m != req.run_id);
                self.set_state(&req.run_id, RunState::Queued);
                lane.queue.push_front(Queued {
                    req,
                    mode: QueueMode::Followup,
                    debounce: Duration::ZERO,
                    at: Instant::now(),
                });
            }
        }
        if lane.queue.is_empty() {
            lanes.remove(key);
            return;
        }
        drop(lanes);
        self.schedule_drain(key);
    }

    /// Starts the next waiting turn when its debounce has passed, or arms a timer for it.
    pub(crate) fn schedule_drain(&self, key: &str) {
        let mut lanes = self.lanes.lock();
        let Some(lane) = lanes.get_mut(key) else {
            return;
        };
        if lane.active.is_some() || lane.queue.is_empty() {
            return;
        }
        let now = Instant::now();
        let due = match lane.queue.front().map(|q| q.mode) {
            Some(QueueMode::Interrupt) => now,
            _ => lane
                .queue
                .iter()
                .map(|q| q.at + q.debounce)
                .max()
                .unwrap_or(now),
        };
        if due > now {
            if lane.drain_at.is_some_and(|at| at <= due) && lane.drain_at > Some(now) {
                // A timer will fire and re-check.
                return;
            }
            lane.drain_at = Some(due);
            let Some(inner) = self.me.upgrade() else {
                return;
            };
            let key = key.to_owned();
            tokio::spawn(async move {
                tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
                if let Some(lane) = inner.lanes.lock().get_mut(&key) {
                    lane.drain_at = None;
                }
                inner.schedule_drain(&key);
            });
            return;
        }
        let Some((req, merged)) = take_batch(lane) else {
            return;
        };
        let control = RunControl::new(&req.run_id);
        control.merged.lock().extend(merged.iter().cloned());
        lane.active = Some(control.clone());
        drop(lanes);
        for id in &merged {
            self.set_state(id, RunState::Running);
        }
        self.spawn_run(req, control);
    }
}

/// Takes the next turn off a lane's queue: one message, or for `collect` every waiting
/// message of the same channel coalesced into one. Dropped-message notes are prepended.
fn take_batch(lane: &mut Lane) -> Option<(RunRequest, Vec<String>)> {
    let first = lane.queue.pop_front()?;
    let mut merged = Vec::new();
    let mut req = first.req;
    if first.mode == QueueMode::Collect {
        let channel = req.source.channel().map(str::to_owned);
        let mut texts = vec![req.message.clone()];
        while lane.queue.front().is_some_and(|q| {
            q.mode == QueueMode::Collect && q.req.source.channel().map(str::to_owned) == channel
        }) {
            if let Some(next) = lane.queue.pop_front() {
                texts.push(next.req.message.clone());
                merged.push(std::mem::replace(&mut req, next.req).run_id);
            }
        }
        if texts.len() > 1 {
            let mut message = String::from("[Messages received while you were busy]\n");
            for (i, t) in texts.iter().enumerate() {
                message.push_str(&format!("\n{}. {}\n", i + 1, t.trim()));
            }
            req.message = message;
        }
    }
    if !lane.dropped.is_empty() {
        let notes = std::mem::take(&mut lane.dropped);
        let mut prefix =
            String::from("[Earlier messages were dropped because the queue was full:]\n");
        for n in notes {
            prefix.push_str(&format!("- {n}\n"));
        }
        req.message = format!("{prefix}\n{}", req.message);
    }
    Some((req, merged))
}

fn prune(table: &mut RunTable) {
    let now = Instant::now();
    while let Some((at, id)) = table.done_order.front().cloned() {
        let expired = now.duration_since(at) >= OUTCOME_TTL;
        if !expired && table.done_order.len() <= OUTCOME_MAX {
            break;
        }
        table.done_order.pop_front();
        if table.runs.get(&id).is_some_and(|r| r.done_at == Some(at)) {
            table.runs.remove(&id);
        }
    }
}

impl Inner {
    /// Aborts the active run of a session on behalf of `/stop` (not the command itself).
    pub(crate) fn stop_session(&self, key: &str, except: &str) -> Vec<String> {
        let mut lanes = self.lanes.lock();
        let Some(lane) = lanes.get_mut(key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let queued: Vec<String> = lane
            .queue
            .iter()
            .filter(|q| q.req.run_id != except)
            .map(|q| q.req.run_id.clone())
            .collect();
        lane.queue.retain(|q| q.req.run_id == except);
        if let Some(active) = lane.active.as_ref() {
            if !active.cancel.is_cancelled() {
                active.abort(AbortReason::Stop);
                out.push(active.run_id.clone());
            }
        }
        drop(lanes);
        let settings = self.settings();
        let agent = SessionKey::parse(key)
            .map(|k| settings.agent_of(&k))
            .unwrap_or_else(|_| settings.default_agent_id());
        for id in &queued {
            self.complete_aborted(id, key, &agent, AbortReason::Stop);
        }
        out.extend(queued);
        out
    }
}
