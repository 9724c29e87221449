//! Automations in the gateway (issue 10): one [`Scheduler`] and one [`HeartbeatControl`] per
//! gateway, the [`JobRunner`](pincer_automations::JobRunner) that turns jobs into agent work
//! ([`runner`]), delivery of results ([`delivery`]), the heartbeat turn ([`heartbeat_turn`]),
//! the `automations` tool's host ([`tool_host`]), and the wire projection of the scheduler's
//! and the heartbeat's typed events onto `cron` / `heartbeat` events.
//!
//! Start-up is off the critical path: [`start`] spawns a task that recovers interrupted runs,
//! plans catch-up, converges the `heartbeat:<agentId>` system jobs and only then marks the
//! scheduler ready; methods wait (bounded) for that. `cron.enabled: false` or
//! `OPENCLAW_SKIP_CRON=1` keep the scheduler for manual runs and wakes but run nothing on
//! schedule. Config reloads re-converge the heartbeat jobs ([`config_changed`]).

pub mod delivery;
pub mod heartbeat_turn;
pub mod runner;
pub mod tool_host;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use pincer_automations::heartbeat::{
    resolve_heartbeats, HeartbeatControl, HeartbeatSettings, WakeDecision, WakeRequestMode, WakeRun,
};
use pincer_automations::hooks::HooksSettings;
use pincer_automations::{
    CronEvent, JobId, Scheduler, SchedulerConfig, SystemClock, SystemJobSpec,
};
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use crate::events::PublishOpts;
use crate::state::GatewayState;

/// Declaration-key prefix of the heartbeat monitors.
pub const HEARTBEAT_PREFIX: &str = "heartbeat:";
/// How long a method waits for the scheduler to finish starting.
const READY_WAIT: Duration = Duration::from_secs(10);

/// Where the scheduler is in its life.
#[derive(Clone)]
enum Phase {
    Starting,
    Ready(Scheduler),
    Failed(Arc<str>),
}

/// The gateway's automation state (a field of [`GatewayState`]).
pub struct Automations {
    phase: watch::Sender<Phase>,
    /// `set-heartbeats`, `last-heartbeat`, queued system events, wake rate limits.
    pub heartbeat: Arc<HeartbeatControl>,
    /// Filled by [`start`]: the tool host reaches the gateway through it.
    cell: Arc<OnceLock<Weak<GatewayState>>>,
    /// Hooks settings of one config version (keyed by its hash).
    hooks: Mutex<Option<(String, Option<Arc<HooksSettings>>)>>,
    /// Heartbeat settings of one config version (keyed by its hash).
    heartbeats: Mutex<Option<(String, Arc<Vec<HeartbeatSettings>>)>>,
    /// The specs last converged, so unchanged reloads write nothing.
    converged: Mutex<Option<Vec<SystemJobSpec>>>,
    /// Agent → its heartbeat job.
    heartbeat_jobs: Mutex<HashMap<String, JobId>>,
    /// Agents with a rate-limited wake pending (counted as a start when it runs).
    deferred_wakes: Mutex<HashSet<String>>,
    /// `/v1/responses` ids → their session, so `previous_response_id` continues a
    /// conversation (newest last, bounded).
    responses: Mutex<std::collections::VecDeque<(String, String)>>,
}

/// Response ids remembered for `previous_response_id`.
const RESPONSES_REMEMBERED: usize = 1024;

impl std::fmt::Debug for Automations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Automations").finish_non_exhaustive()
    }
}

impl Default for Automations {
    fn default() -> Self {
        Automations::new()
    }
}

/// `OPENCLAW_SKIP_CRON=1` (or `PINCER_SKIP_CRON=1`): nothing runs on schedule.
fn skip_cron_env() -> bool {
    ["OPENCLAW_SKIP_CRON", "PINCER_SKIP_CRON"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .any(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

impl Automations {
    pub fn new() -> Automations {
        Automations {
            phase: watch::channel(Phase::Starting).0,
            heartbeat: Arc::new(HeartbeatControl::new()),
            cell: Arc::new(OnceLock::new()),
            hooks: Mutex::new(None),
            heartbeats: Mutex::new(None),
            converged: Mutex::new(None),
            heartbeat_jobs: Mutex::new(HashMap::new()),
            deferred_wakes: Mutex::new(HashSet::new()),
            responses: Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// The `automations` tool's host (for the agent runtime's [`pincer_tools::context::Hosts`]).
    pub fn tool_host(&self) -> Arc<dyn pincer_tools::host::AutomationsHost> {
        Arc::new(tool_host::GatewayAutomationsHost::new(Arc::clone(
            &self.cell,
        )))
    }

    /// The scheduler once it runs (does not wait).
    pub fn scheduler_now(&self) -> Option<Scheduler> {
        match &*self.phase.borrow() {
            Phase::Ready(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The scheduler, waiting (bounded) while it starts. The error says why it is unavailable.
    pub async fn scheduler(&self) -> Result<Scheduler, String> {
        let mut rx = self.phase.subscribe();
        let waited =
            tokio::time::timeout(READY_WAIT, rx.wait_for(|p| !matches!(p, Phase::Starting))).await;
        match waited {
            Ok(Ok(phase)) => match &*phase {
                Phase::Ready(s) => Ok(s.clone()),
                Phase::Failed(e) => Err(format!("the scheduler is not running: {e}")),
                Phase::Starting => Err("the scheduler is still starting".into()),
            },
            Ok(Err(_)) => Err("the scheduler is stopped".into()),
            Err(_) => Err("the scheduler is still starting; try again".into()),
        }
    }

    /// The effective heartbeat settings of the config in force.
    pub fn heartbeat_settings(&self, state: &GatewayState) -> Arc<Vec<HeartbeatSettings>> {
        let loaded = state.config.get();
        let mut cache = self.heartbeats.lock();
        if let Some((hash, list)) = &*cache {
            if *hash == loaded.hash {
                return Arc::clone(list);
            }
        }
        let list = Arc::new(resolve_heartbeats(&loaded.config).unwrap_or_else(|e| {
            tracing::warn!(target: "cron", "heartbeat settings are invalid; no heartbeats: {e}");
            Vec::new()
        }));
        *cache = Some((loaded.hash.clone(), Arc::clone(&list)));
        list
    }

    /// The hooks settings of the config in force (`None`: hooks are off, or unusable).
    pub fn hooks_settings(&self, state: &GatewayState) -> Option<Arc<HooksSettings>> {
        let loaded = state.config.get();
        let mut cache = self.hooks.lock();
        if let Some((hash, settings)) = &*cache {
            if *hash == loaded.hash {
                return settings.clone();
            }
        }
        let settings = match HooksSettings::from_config(&loaded.config) {
            Ok(s) => s.map(Arc::new),
            Err(e) => {
                tracing::error!(target: "hooks", "hooks are disabled: {e}");
                None
            }
        };
        *cache = Some((loaded.hash.clone(), settings.clone()));
        settings
    }

    /// Remembers the session of a `/v1/responses` response.
    pub fn remember_response(&self, response_id: &str, session_key: &str) {
        let mut list = self.responses.lock();
        if list.len() >= RESPONSES_REMEMBERED {
            list.pop_front();
        }
        list.push_back((response_id.to_string(), session_key.to_string()));
    }

    /// The session of an earlier `/v1/responses` response.
    pub fn response_session(&self, response_id: &str) -> Option<String> {
        self.responses
            .lock()
            .iter()
            .rev()
            .find(|(id, _)| id == response_id)
            .map(|(_, key)| key.clone())
    }

    /// The heartbeat job of `agent_id`, if it has one.
    pub fn heartbeat_job(&self, agent_id: &str) -> Option<JobId> {
        self.heartbeat_jobs.lock().get(agent_id).copied()
    }

    /// A rate-limited wake of `agent_id` started (counts toward the limits once).
    pub(crate) fn take_deferred_wake(&self, agent_id: &str) -> bool {
        self.deferred_wakes.lock().remove(agent_id)
    }

    /// Queues `text` for `session_key` and wakes `agent_id`'s heartbeat per `mode` (rate
    /// limited): `wake`, `/hooks/wake`, `system-event`, systemEvent jobs and hooks all end here.
    pub async fn wake(
        &self,
        agent_id: &str,
        session_key: &str,
        text: &str,
        mode: WakeRequestMode,
    ) -> WakeDecision {
        let now = crate::util::now_ms() as i64;
        let decision = self
            .heartbeat
            .request_wake(agent_id, session_key, text, mode, now);
        let at = match decision.run {
            WakeRun::Now => Some(now),
            WakeRun::At { at_ms, .. } => {
                self.deferred_wakes.lock().insert(agent_id.to_string());
                Some(at_ms)
            }
            WakeRun::NextHeartbeat => None,
        };
        if let (Some(at), Some(job), Some(scheduler)) =
            (at, self.heartbeat_job(agent_id), self.scheduler_now())
        {
            if let Err(e) = scheduler.wake_at(job, at).await {
                tracing::warn!(target: "cron", agent = agent_id, error = %e, "heartbeat wake failed");
            }
        }
        decision
    }
}

/// `system-event`: queue the text for the heartbeat of the session's agent; `wake: true` or
/// `"now"` runs it at once (rate limited).
pub fn system_event(
    state: &Arc<GatewayState>,
    text: &str,
    session_key: Option<&str>,
    wake: Option<&Value>,
) {
    let mode = match wake {
        Some(Value::Bool(true)) => WakeRequestMode::Now,
        Some(Value::String(s)) if s == "now" => WakeRequestMode::Now,
        _ => WakeRequestMode::NextHeartbeat,
    };
    let Ok((agent, key)) = crate::methods::heartbeat::wake_target(state, session_key, None) else {
        return;
    };
    let state = Arc::clone(state);
    let text = text.to_string();
    tokio::spawn(async move {
        state.automations.wake(&agent, &key, &text, mode).await;
    });
}

/// Starts the scheduler in the background (see the module doc).
pub fn start(state: &Arc<GatewayState>) {
    let _ = state.automations.cell.set(Arc::downgrade(state));
    let weak = Arc::downgrade(state);
    let store = state.store.clone();
    let loaded = state.config.get();
    let mut config = SchedulerConfig::from_config(&loaded.config);
    if skip_cron_env() {
        config.enabled = false;
    }
    let enabled = config.enabled;
    tokio::spawn(async move {
        let runner = Arc::new(runner::GatewayRunner::new(weak.clone()));
        let started = Scheduler::start(store, Arc::new(SystemClock::new()), runner, config).await;
        let Some(state) = weak.upgrade() else { return };
        match started {
            Ok((scheduler, report)) => {
                for run in &report.interrupted {
                    tracing::warn!(target: "cron", job = %run.job_id, run = %run.run_id,
                        "cron: a run was interrupted by the last shutdown; it is recorded as interrupted, not repeated");
                }
                for c in &report.catch_up {
                    tracing::info!(target: "cron", job = %c.job_id, decision = ?c,
                        "cron: missed run after downtime");
                }
                tracing::info!(target: "cron", jobs = report.jobs, enabled, "scheduler started");
                spawn_cron_events(&state, scheduler.subscribe());
                converge_heartbeats(&state, &scheduler).await;
                state
                    .automations
                    .phase
                    .send_replace(Phase::Ready(scheduler));
            }
            Err(e) => {
                tracing::error!(target: "cron", error = %e, "the scheduler could not start; automations are unavailable");
                state
                    .automations
                    .phase
                    .send_replace(Phase::Failed(Arc::from(e.to_string())));
            }
        }
    });
}

/// Stops the scheduler (shutdown). Runs in flight are recorded as interrupted at next start.
pub async fn shutdown(state: &GatewayState) {
    if let Some(s) = state.automations.scheduler_now() {
        s.shutdown().await;
    }
}

/// A config version was applied: re-converge the heartbeat jobs when their specs changed.
/// Runs inside the gateway's runtime (the config watcher's callback enters it).
pub fn config_changed(state: &Arc<GatewayState>) {
    let Some(scheduler) = state.automations.scheduler_now() else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(target: "cron", "config change outside the runtime; heartbeat jobs not re-converged");
        return;
    };
    let state = Arc::clone(state);
    runtime.spawn(async move { converge_heartbeats(&state, &scheduler).await });
}

async fn converge_heartbeats(state: &Arc<GatewayState>, scheduler: &Scheduler) {
    let specs: Vec<SystemJobSpec> = state
        .automations
        .heartbeat_settings(state)
        .iter()
        .map(HeartbeatSettings::job_spec)
        .collect();
    if state.automations.converged.lock().as_ref() == Some(&specs) {
        return;
    }
    match scheduler
        .converge_system_jobs(HEARTBEAT_PREFIX, specs.clone())
        .await
    {
        Ok(jobs) => {
            let mut map = state.automations.heartbeat_jobs.lock();
            map.clear();
            for job in jobs {
                if let Some(agent) = job
                    .def
                    .declaration_key
                    .as_deref()
                    .and_then(|k| k.strip_prefix(HEARTBEAT_PREFIX))
                {
                    map.insert(agent.to_string(), job.def.id);
                }
            }
            drop(map);
            *state.automations.converged.lock() = Some(specs);
        }
        Err(e) => {
            tracing::error!(target: "cron", error = %e, "cannot set up the heartbeat jobs")
        }
    }
}

/// The wire `cron` payload of a scheduler event (the job as `cron.get` shows it).
pub fn cron_event_payload(event: &CronEvent, default_agent: &str) -> Value {
    let mut v = serde_json::to_value(event).unwrap_or(Value::Null);
    if let (Some(job), Value::Object(map)) = (&event.job, &mut v) {
        map.insert("job".into(), job.to_wire(default_agent));
    }
    v
}

fn spawn_cron_events(state: &Arc<GatewayState>, mut rx: broadcast::Receiver<CronEvent>) {
    let weak = Arc::downgrade(state);
    tokio::spawn(async move {
        loop {
            let event = match rx.recv().await {
                Ok(e) => e,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::debug!(target: "cron", skipped = n, "cron events lagged");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let Some(state) = weak.upgrade() else { return };
            let default_agent = state.config.get().config.default_agent_id();
            let payload = cron_event_payload(&event, &default_agent);
            state.bus.publish("cron", &payload, PublishOpts::default());
        }
    });
}
