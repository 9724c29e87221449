//! The gateway's side of the agent runtime: it owns the [`AgentRuntime`], keeps its settings
//! in step with the live config, and runs the projection task that turns run events into
//! `agent` / `chat` / `session.tool` events on the bus (see [`crate::projection`]).

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use pincer_agent::{AgentDeps, AgentOptions, AgentRuntime, RunEvent, RunEventKind, Settings};
use pincer_config::Config;
use pincer_providers::{Backoff, ProviderClient, RetryPolicy};
use pincer_sessions::SessionKey;
use pincer_store::Store;
use tokio::sync::mpsc;

use crate::events::{PublishOpts, Target};
use crate::projection::{Audience, Projector, WireEvent};
use crate::state::GatewayState;

/// Client capability: receive the `tool` stream of runs this connection started.
pub const CAP_TOOL_EVENTS: &str = "tool-events";

/// Events drained per wake-up of the projection task.
const BATCH: usize = 256;

/// The agent runtime plus its projection onto the wire.
pub struct AgentHub {
    pub runtime: AgentRuntime,
    projector: Arc<Mutex<Projector>>,
    events: Mutex<Option<mpsc::Receiver<RunEvent>>>,
    /// Runs whose terminal events are on the bus (bounded; see [`AgentHub::wait_projected`]).
    projected: Arc<Projected>,
}

/// Recently projected run ends, so an RPC can answer after the run's last event.
#[derive(Default)]
struct Projected {
    done: Mutex<std::collections::VecDeque<Arc<str>>>,
    notify: tokio::sync::Notify,
}

/// Run ends remembered for [`AgentHub::wait_projected`].
const PROJECTED_MAX: usize = 4096;

impl std::fmt::Debug for AgentHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentHub").finish_non_exhaustive()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl AgentHub {
    /// Builds the runtime from the config in force. Runs start only after [`AgentHub::start`].
    pub fn new(store: Store, config: Arc<Config>, state_dir: &Path) -> AgentHub {
        Self::with_hosts(store, config, state_dir, Default::default(), None)
    }

    /// [`AgentHub::new`] with gateway-backed tool hosts (the `nodes` tool's host, …) and the
    /// exec approvals document.
    pub fn with_hosts(
        store: Store,
        config: Arc<Config>,
        state_dir: &Path,
        hosts: pincer_tools::context::Hosts,
        approvals_store: Option<Arc<dyn pincer_tools::exec::approvals::ApprovalsStore>>,
    ) -> AgentHub {
        let tools = Arc::new(registry(&config));
        let settings = Settings::new(config, state_dir, &env);
        if settings.registry.is_empty() {
            tracing::warn!(
                "no model provider configured: chats will answer with how to configure one \
                 (set ANTHROPIC_API_KEY, OPENAI_API_KEY or OPENROUTER_API_KEY, or models.providers in the config)"
            );
        }
        // Built at the first model call: reading the trust store at start cost time and memory.
        let client = ProviderClient::lazy();
        let (tx, rx) = mpsc::channel(pincer_agent::EVENT_CHANNEL_CAPACITY);
        let runtime = AgentRuntime::new(AgentDeps {
            store,
            client,
            tools,
            settings,
            events: tx,
            options: AgentOptions {
                hosts,
                approvals_store,
                ..options_from_env()
            },
        });
        AgentHub {
            runtime,
            projector: Arc::new(Mutex::new(Projector::new())),
            events: Mutex::new(Some(rx)),
            projected: Arc::new(Projected::default()),
        }
    }

    /// Starts the projection task (once; later calls do nothing).
    pub fn start(state: &Arc<GatewayState>) {
        let Some(rx) = state.agent.events.lock().take() else {
            return;
        };
        let projector = Arc::clone(&state.agent.projector);
        let projected = Arc::clone(&state.agent.projected);
        let weak = Arc::downgrade(state);
        let (rows_tx, rows_rx) = mpsc::channel(ROW_NOTICES);
        tokio::spawn(announce_rows(weak.clone(), rows_rx));
        tokio::spawn(project(weak, rx, projector, projected, rows_tx));
    }

    /// Applies a new config version (hot reload).
    pub fn update_config(&self, config: Arc<Config>, state_dir: &Path) {
        self.runtime
            .update_settings(Settings::new(config, state_dir, &env));
    }

    /// Waits (at most `limit`) until the run's terminal `agent`/`chat` events were published,
    /// so a response sent afterwards follows them on the caller's socket, as the reference does.
    pub async fn wait_projected(&self, run_id: &str, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let notified = self.projected.notify.notified();
            if self.projected.done.lock().iter().any(|r| &**r == run_id) {
                return;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Runs of a session that are active for clients: the runtime's active run, unless its
    /// terminal events are already on the wire (the lane is released a moment later).
    pub fn active_run_ids(&self, session_key: &str) -> Vec<String> {
        let mut ids = self.runtime.active_run_ids(session_key);
        if !ids.is_empty() {
            let done = self.projected.done.lock();
            ids.retain(|id| !done.iter().any(|d| **d == **id));
        }
        ids
    }

    /// Session keys with an active run (see [`AgentHub::active_run_ids`]).
    pub fn active_session_keys(&self) -> Vec<String> {
        let mut runs = self.runtime.active_runs();
        if !runs.is_empty() {
            let done = self.projected.done.lock();
            runs.retain(|(_, id)| !done.iter().any(|d| **d == **id));
        }
        runs.into_iter().map(|(key, _)| key).collect()
    }

    /// Remembers that `conn` started `run_id` with the `tool-events` capability.
    pub fn add_tool_recipient(&self, run_id: &str, conn: u64) {
        self.projector.lock().add_tool_recipient(run_id, conn);
    }
}

/// The built-in tools plus the gateway-hosted ones (`automations`, alias `cron`).
/// `tools.web.fetch` is read here, at start.
fn registry(config: &Config) -> pincer_tools::ToolRegistry {
    let web_fetch = pincer_agent::tooling::web_fetch_config(config);
    let mut r = pincer_tools::builtin::builtin_registry(web_fetch);
    r.register(Arc::new(
        pincer_tools::automations::AutomationsTool::default(),
    ));
    r.alias("cron", pincer_tools::automations::NAME);
    r
}

/// Test knobs: `PINCER_MODEL_RETRY_BASE_MS` (first backoff of same-model retries, default
/// 1000) and `PINCER_MODEL_RETRY_ATTEMPTS` (attempts per model before failing over).
fn options_from_env() -> AgentOptions {
    let base = env("PINCER_MODEL_RETRY_BASE_MS").and_then(|v| v.trim().parse::<u64>().ok());
    let attempts = env("PINCER_MODEL_RETRY_ATTEMPTS").and_then(|v| v.trim().parse::<u32>().ok());
    if base.is_none() && attempts.is_none() {
        return AgentOptions::default();
    }
    let base = Duration::from_millis(base.unwrap_or(1000).max(1));
    let backoff = Backoff::new(base, base * 30);
    AgentOptions {
        retry: Some((
            RetryPolicy::new(backoff, attempts.unwrap_or(10).max(1))
                .with_max_retry_after(Duration::from_secs(60)),
            RetryPolicy::new(backoff, attempts.unwrap_or(9).max(1))
                .with_max_elapsed(Duration::from_secs(90)),
        )),
        ..AgentOptions::default()
    }
}

async fn project(
    state: Weak<GatewayState>,
    mut rx: mpsc::Receiver<RunEvent>,
    projector: Arc<Mutex<Projector>>,
    projected: Arc<Projected>,
    rows: mpsc::Sender<RowNotice>,
) {
    let mut batch: Vec<RunEvent> = Vec::with_capacity(BATCH);
    let mut out: Vec<WireEvent> = Vec::new();
    // Runs whose session row was announced as running (bounded by the active runs).
    let mut announced: std::collections::HashSet<Arc<str>> = std::collections::HashSet::new();
    loop {
        let next_flush = projector.lock().next_flush();
        let received = match next_flush {
            Some(at) => {
                tokio::select! {
                    n = rx.recv_many(&mut batch, BATCH) => n,
                    () = tokio::time::sleep_until(tokio::time::Instant::from_std(at)) => usize::MAX,
                }
            }
            None => rx.recv_many(&mut batch, BATCH).await,
        };
        if received == 0 {
            return;
        }
        let Some(state) = state.upgrade() else {
            return;
        };
        let now = Instant::now();
        let mut notices: Vec<RowNotice> = Vec::new();
        let mut ended_runs: Vec<Arc<str>> = Vec::new();
        coalesce_deltas(&mut batch);
        {
            let mut p = projector.lock();
            for ev in &batch {
                p.handle(ev, now, &mut out);
                match &ev.kind {
                    // The first stored message: the session exists and its run is going.
                    RunEventKind::Message(_) if announced.insert(ev.run_id.clone()) => {
                        notices.push(RowNotice {
                            key: ev.session_key.clone(),
                            run_id: ev.run_id.clone(),
                            phase: RunPhase::Start,
                        });
                    }
                    RunEventKind::End(outcome) => {
                        announced.remove(&ev.run_id);
                        notices.push(RowNotice {
                            key: ev.session_key.clone(),
                            run_id: ev.run_id.clone(),
                            phase: RunPhase::End {
                                session_started: outcome.session_started,
                            },
                        });
                        ended_runs.push(ev.run_id.clone());
                    }
                    _ => {}
                }
            }
            p.flush_due(now, &mut out);
        }
        batch.clear();
        for event in out.drain(..) {
            publish(&state, event);
        }
        if !ended_runs.is_empty() {
            let mut done = projected.done.lock();
            for run in ended_runs {
                if done.len() >= PROJECTED_MAX {
                    done.pop_front();
                }
                done.push_back(run);
            }
            drop(done);
            projected.notify.notify_waiters();
        }
        for notice in notices {
            if rows.try_send(notice).is_err() {
                tracing::debug!("session row announcements are behind; one dropped");
            }
        }
    }
}

/// Text deltas of one run that wait in the same batch (the projection fell behind a burst)
/// become one `agent` assistant event, as the reference coalesces; other events keep their
/// place and order.
fn coalesce_deltas(batch: &mut Vec<RunEvent>) {
    if batch.len() < 2 {
        return;
    }
    let mut out: Vec<RunEvent> = Vec::with_capacity(batch.len());
    // Index in `out` of each run's latest event.
    let mut last: std::collections::HashMap<Arc<str>, usize> = std::collections::HashMap::new();
    for ev in batch.drain(..) {
        if let RunEventKind::AssistantDelta { item_id, delta } = &ev.kind {
            if let Some(&i) = last.get(&ev.run_id) {
                if let RunEventKind::AssistantDelta {
                    item_id: prev_item,
                    delta: prev,
                } = &mut out[i].kind
                {
                    if prev_item == item_id {
                        prev.push_str(delta);
                        continue;
                    }
                }
            }
        }
        last.insert(ev.run_id.clone(), out.len());
        out.push(ev);
    }
    *batch = out;
}

fn publish(state: &GatewayState, w: WireEvent) {
    let target = match w.audience {
        Audience::Session(key) => Target::session(w.event, &key),
        Audience::Subscribers(key) => Target::session(w.event, &key),
        Audience::Conns(ids) => Target::Filter(Arc::new(move |info| ids.contains(&info.id))),
        Audience::All => Target::All,
    };
    state.bus.publish(
        w.event,
        &w.payload,
        PublishOpts {
            target,
            ..PublishOpts::default()
        },
    );
}

/// What the session-row task announces.
struct RowNotice {
    key: Arc<str>,
    run_id: Arc<str>,
    phase: RunPhase,
}

enum RunPhase {
    /// The run stored its first message: the session exists and shows it running.
    Start,
    /// The run's terminal events are out; `session_started` says whether it created or
    /// rotated the session (only then does the health summary change).
    End { session_started: bool },
}

/// Queued row announcements; a full queue drops (the next announcement carries a fresh row).
const ROW_NOTICES: usize = 1024;

/// One task reads the session rows and publishes `sessions.changed` (`phase: "start"` /
/// `"end"`, with the run id) in run-event order, so session lists pick a new session up
/// while its first run streams and see it idle once the run ended.
async fn announce_rows(state: Weak<GatewayState>, mut rx: mpsc::Receiver<RowNotice>) {
    while let Some(notice) = rx.recv().await {
        let Some(state) = state.upgrade() else {
            return;
        };
        let Ok(key) = SessionKey::parse(&notice.key) else {
            continue;
        };
        let record = state.store.get_session(&key).await.ok().flatten();
        let (phase, refresh) = match notice.phase {
            RunPhase::Start => ("start", true),
            RunPhase::End { session_started } => ("end", session_started),
        };
        if record.is_some() || refresh {
            state.publish_session_changed(
                &key,
                "activity",
                record.as_ref(),
                Some((phase, &notice.run_id)),
            );
        }
        if refresh {
            state.request_sessions_refresh();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pincer_agent::RunSource;

    fn ev(run: &str, kind: RunEventKind) -> RunEvent {
        RunEvent {
            run_id: Arc::from(run),
            session_key: Arc::from("agent:main:main"),
            session_id: None,
            agent_id: Arc::from("main"),
            source: RunSource::Chat,
            seq: 0,
            ts: 0,
            kind,
        }
    }

    fn delta(item: &str, d: &str) -> RunEventKind {
        RunEventKind::AssistantDelta {
            item_id: Arc::from(item),
            delta: d.into(),
        }
    }

    #[test]
    fn deltas_waiting_in_one_batch_merge_per_run_and_item() {
        let mut batch = vec![
            ev("a", delta("a:1", "Hel")),
            ev("b", delta("b:1", "x")),
            ev("a", delta("a:1", "lo")),
            ev("a", RunEventKind::ModelReleased),
            ev("a", delta("a:2", "!")),
            ev("a", delta("a:3", "?")),
            ev("b", delta("b:1", "y")),
        ];
        coalesce_deltas(&mut batch);
        let shown: Vec<(String, String)> = batch
            .iter()
            .map(|e| {
                let what = match &e.kind {
                    RunEventKind::AssistantDelta { item_id, delta } => format!("{item_id}={delta}"),
                    _ => "other".into(),
                };
                (e.run_id.to_string(), what)
            })
            .collect();
        let expected: Vec<(String, String)> = [
            ("a", "a:1=Hello"),
            ("b", "b:1=xy"),
            ("a", "other"),
            ("a", "a:2=!"),
            ("a", "a:3=?"),
        ]
        .iter()
        .map(|(r, w)| ((*r).to_owned(), (*w).to_owned()))
        .collect();
        assert_eq!(shown, expected);
    }
}
