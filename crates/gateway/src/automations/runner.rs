//! The gateway's [`JobRunner`]: what a job does when it fires.
//!
//! - `systemEvent`: the text is queued for the agent's main session and the heartbeat is
//!   woken per the job's `wakeMode` (no model call by itself).
//! - `agentTurn`: an agent run with `RunSource::Cron` in the job's session — a fresh
//!   `cron:<jobId>:run:<runId>` session for `isolated` and `current` jobs (`current` delivers
//!   to the conversation the job was created from), the named session for `session:<key>` —
//!   then delivery: `announce` (default) commits the reply to the target conversation,
//!   `webhook` POSTs the finished-run event, `none` keeps it in the run's session. A silent
//!   (`NO_REPLY`) or empty reply delivers nothing.
//! - `heartbeat`: see [`super::heartbeat_turn`].
//!
//! The scheduler drops the run's future at its deadline; [`AbortOnDrop`] then aborts the agent
//! run, so a timed-out job never keeps a model call going.

use std::sync::{Arc, Weak};
use std::time::Duration;

use pincer_agent::{AbortReason, Disposition, QueueMode, RunSource, RunStatus};
use pincer_automations::heartbeat::WakeRequestMode;
use pincer_automations::{
    CronJob, DeliveryAttempt, DeliveryMode, JobRunner, Payload, RunOutcome, RunRequest,
    SessionTarget, SuppressionReason, WakeMode,
};
use pincer_providers::ThinkingLevel;
use pincer_sessions::SessionKey;
use serde_json::json;

use super::delivery::{self, ChannelRoute, Delivered};
use crate::state::GatewayState;

/// Longest result text kept in run history.
const SUMMARY_CHARS: usize = 200;

/// How long a finished agent run may wait for its terminal events to reach the bus (a guard
/// against a stalled projection; they normally follow within milliseconds).
const PROJECTION_WAIT: Duration = Duration::from_secs(10);

/// The outcome of a job's agent run once its terminal `agent`/`chat` events are published:
/// what the job announces next (a heartbeat event, its `cron` `finished` event, a delivery)
/// follows the run's own events on every socket.
pub(super) async fn run_outcome(
    state: &GatewayState,
    handle: &mut pincer_agent::RunHandle,
) -> Arc<pincer_agent::RunOutcome> {
    let outcome = handle.outcome().await;
    let run_id = outcome.merged_into.as_deref().unwrap_or(&outcome.run_id);
    state.agent.wait_projected(run_id, PROJECTION_WAIT).await;
    outcome
}

/// Runs jobs with the gateway's agent runtime.
pub struct GatewayRunner {
    state: Weak<GatewayState>,
}

impl GatewayRunner {
    pub fn new(state: Weak<GatewayState>) -> Self {
        GatewayRunner { state }
    }
}

#[async_trait::async_trait]
impl JobRunner for GatewayRunner {
    async fn run(&self, request: RunRequest) -> RunOutcome {
        let Some(state) = self.state.upgrade() else {
            return RunOutcome::error("the gateway is stopping");
        };
        match &request.job.def.payload {
            Payload::SystemEvent { text } => system_event(&state, &request.job, text).await,
            Payload::AgentTurn { .. } => agent_turn(&state, &request).await,
            Payload::Heartbeat {} => super::heartbeat_turn::run(&state, &request).await,
        }
    }
}

pub(crate) fn preview(text: &str) -> String {
    let t = text.trim();
    if t.chars().count() <= SUMMARY_CHARS {
        return t.to_string();
    }
    let mut s: String = t.chars().take(SUMMARY_CHARS - 1).collect();
    s.push('…');
    s
}

fn default_agent(state: &GatewayState) -> String {
    state.config.get().config.default_agent_id()
}

async fn system_event(state: &Arc<GatewayState>, job: &CronJob, text: &str) -> RunOutcome {
    let agent = job.effective_agent_id(&default_agent(state)).to_string();
    let key = SessionKey::main(&agent).to_string();
    let mode = match job.def.wake_mode {
        WakeMode::Now => WakeRequestMode::Now,
        WakeMode::NextHeartbeat => WakeRequestMode::NextHeartbeat,
    };
    let decision = state.automations.wake(&agent, &key, text, mode).await;
    let outcome = serde_json::to_value(decision.event_outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    RunOutcome::ok(Some(format!(
        "system event {outcome} for {key}: {}",
        preview(text)
    )))
}

/// Aborts the agent run when the job's future is dropped before the run ended (the
/// scheduler's deadline, or shutdown).
pub(crate) struct AbortOnDrop {
    state: Arc<GatewayState>,
    key: String,
    run_id: String,
    armed: bool,
}

impl AbortOnDrop {
    pub(crate) fn new(state: &Arc<GatewayState>, key: &str, run_id: &str) -> Self {
        AbortOnDrop {
            state: Arc::clone(state),
            key: key.to_string(),
            run_id: run_id.to_string(),
            armed: true,
        }
    }

    pub(crate) fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if self.armed {
            self.state
                .agent
                .runtime
                .abort(&self.key, Some(&self.run_id), AbortReason::Timeout);
        }
    }
}

/// The session an agent turn runs in.
fn run_session(job: &CronJob, agent: &str, run_id: &str) -> Result<SessionKey, String> {
    let job_id = job.def.id.to_string();
    match &job.def.session_target {
        SessionTarget::Session(k) => SessionKey::canonicalize(k, agent)
            .map_err(|e| format!("sessionTarget session:{k}: {e}")),
        SessionTarget::Main => Ok(SessionKey::main(agent)),
        SessionTarget::Isolated | SessionTarget::Current => {
            SessionKey::cron_run(agent, &job_id, run_id).map_err(|e| e.to_string())
        }
    }
}

/// The conversation an `announce` delivery goes to (`None`: the run's own session is it).
fn announce_target(job: &CronJob, agent: &str) -> Result<Option<SessionKey>, String> {
    match &job.def.session_target {
        SessionTarget::Current => {
            let origin = job
                .def
                .session_key
                .as_deref()
                .ok_or("a current job has no sessionKey")?;
            SessionKey::canonicalize(origin, agent)
                .map(Some)
                .map_err(|e| format!("sessionKey {origin:?}: {e}"))
        }
        // The run already happened in the named conversation.
        SessionTarget::Session(_) => Ok(None),
        // The "last route": without an outbound channel, the agent's main conversation.
        SessionTarget::Isolated | SessionTarget::Main => Ok(Some(SessionKey::main(agent))),
    }
}

async fn agent_turn(state: &Arc<GatewayState>, request: &RunRequest) -> RunOutcome {
    let job = &request.job;
    let Payload::AgentTurn {
        message,
        model,
        thinking,
        timeout_seconds,
        ..
    } = &job.def.payload
    else {
        return RunOutcome::error("not an agent turn");
    };
    let agent = job.effective_agent_id(&default_agent(state)).to_string();
    let key = match run_session(job, &agent, &request.run_id) {
        Ok(k) => k,
        Err(e) => return RunOutcome::error(e),
    };
    let key_text = key.to_string();
    let run_id = format!("cron-{}", request.run_id);
    let mut req =
        pincer_agent::RunRequest::new(run_id.clone(), key.clone(), message, RunSource::Cron);
    req.interpret_commands = false;
    req.queue_mode = Some(QueueMode::Followup);
    req.model = model.clone();
    req.thinking = thinking.as_deref().and_then(ThinkingLevel::parse);
    let budget_ms = (request.deadline_ms - crate::util::now_ms() as i64).max(1_000);
    let budget = Duration::from_millis(u64::try_from(budget_ms).unwrap_or(1_000));
    req.timeout = Some(match timeout_seconds {
        Some(s) => Duration::from_secs(*s).min(budget),
        None => budget,
    });
    req.metadata = Some(
        json!({"cron": {"jobId": job.def.id.to_string(), "runId": request.run_id, "trigger": request.trigger.as_str()}}),
    );
    let mut guard = AbortOnDrop::new(state, &key_text, &run_id);
    let submitted = match state.agent.runtime.submit(req).await {
        Ok(s) => s,
        Err(e) => {
            guard.disarm();
            return RunOutcome::error(format!("the agent did not accept the run: {e}"));
        }
    };
    let mut handle = submitted.handle;
    let outcome = run_outcome(state, &mut handle).await;
    guard.disarm();
    match outcome.status {
        RunStatus::Ok => {}
        RunStatus::Error => {
            let msg = outcome
                .error
                .as_ref()
                .map(|e| e.error_message.clone())
                .unwrap_or_else(|| "the agent run failed".into());
            return RunOutcome::error(msg);
        }
        RunStatus::Aborted => return RunOutcome::error("the agent run was aborted"),
        RunStatus::Timeout => return RunOutcome::error("the agent run timed out"),
    }
    let text = outcome.text.clone();
    let silent = outcome.disposition != Disposition::Visible || text.trim().is_empty();
    let mode = job
        .def
        .delivery
        .as_ref()
        .map_or(DeliveryMode::Announce, |d| d.mode);
    if silent {
        let (why, reason) = if outcome.disposition == Disposition::Silent {
            (
                "silent reply (NO_REPLY): nothing delivered",
                SuppressionReason::Silent,
            )
        } else {
            ("empty reply: nothing delivered", SuppressionReason::Empty)
        };
        return RunOutcome::ok(Some(why.to_string()))
            .with_delivery(DeliveryAttempt::Suppressed(reason));
    }
    let delivered: Result<Vec<Delivered>, String> = match mode {
        DeliveryMode::None => Ok(Vec::new()),
        DeliveryMode::Webhook => {
            let url = job
                .def
                .delivery
                .as_ref()
                .and_then(|d| d.to.clone())
                .unwrap_or_default();
            let payload = json!({
                "jobId": job.def.id.to_string(),
                "jobName": job.def.name,
                "action": "finished",
                "status": "ok",
                "runId": request.run_id,
                "runAtMs": request.started_at_ms,
                "durationMs": crate::util::now_ms() as i64 - request.started_at_ms,
                "summary": text,
                "sessionKey": key_text,
                "agentId": agent,
            });
            delivery::webhook(state, &url, &payload)
                .await
                .map(|d| vec![d])
        }
        DeliveryMode::Announce => {
            let idem = format!("cron:{}", request.run_id);
            let explicit = job.def.delivery.as_ref().and_then(|d| {
                match (
                    d.channel.as_deref().filter(|c| *c != "last"),
                    d.to.as_deref(),
                ) {
                    (Some(channel), Some(to)) => Some(ChannelRoute {
                        channel,
                        to,
                        account_id: d.account_id.as_deref(),
                        thread_id: d.thread_id.as_deref(),
                    }),
                    _ => None,
                }
            });
            match explicit {
                Some(route) => delivery::to_channel(state, route, &text, &idem)
                    .await
                    .map(|d| vec![d]),
                None => match announce_target(job, &agent) {
                    Ok(Some(target)) => {
                        delivery::to_conversation(state, &target, &text, Some(&job.def.name), &idem)
                            .await
                    }
                    // The run happened in the named conversation; its chat gets it too.
                    Ok(None) => {
                        let mut list = vec![Delivered::Session {
                            key: key_text.clone(),
                        }];
                        match delivery::to_session_channel(state, &key, &text, &idem).await {
                            Ok(Some(d)) => {
                                list.push(d);
                                Ok(list)
                            }
                            Ok(None) => Ok(list),
                            Err(e) => Err(e),
                        }
                    }
                    Err(e) => Err(e),
                },
            }
        }
    };
    match delivered {
        Ok(list) => {
            let Some(first) = list.first() else {
                // `delivery.mode: "none"`: the reply stays in the run's session.
                return RunOutcome::ok(Some(preview(&text)));
            };
            let summary = format!("{} ({})", preview(&text), first.describe());
            RunOutcome::ok(Some(summary)).with_delivery(DeliveryAttempt::Delivered)
        }
        Err(e) => {
            let best_effort = job
                .def
                .delivery
                .as_ref()
                .and_then(|d| d.best_effort)
                .unwrap_or(false);
            let outcome = if best_effort {
                RunOutcome::ok(Some(format!("{} (delivery failed: {e})", preview(&text))))
            } else {
                RunOutcome {
                    summary: Some(preview(&text)),
                    ..RunOutcome::error(format!("delivery failed: {e}"))
                }
            };
            outcome.with_delivery(DeliveryAttempt::Failed(e))
        }
    }
}
