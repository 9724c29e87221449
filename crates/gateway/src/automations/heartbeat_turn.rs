//! One heartbeat turn (the `heartbeat:<agentId>` job): preflight (`set-heartbeats`, active
//! hours, a busy session) → the prompt with the monitor scratch and the queued system events
//! → an agent run with `RunSource::Heartbeat` in the main session (or `heartbeat.session`, or
//! a fresh cron session with `isolatedSession`) → [`classify_reply`]: `NO_REPLY`, an empty
//! reply or a short `HEARTBEAT_OK` send nothing (`ok-token` / `ok-empty`); anything else is
//! delivered to the target (`sent`) → the `heartbeat` event (also `last-heartbeat`).

use std::sync::Arc;
use std::time::Duration;

use pincer_agent::{Disposition, QueueMode, RunSource, RunStatus};
use pincer_automations::heartbeat::{
    classify_reply, HeartbeatEvent, HeartbeatReply, HeartbeatSettings, HeartbeatTarget, NO_REPLY,
};
use pincer_automations::{RunOutcome, RunRequest, RunTrigger};
use pincer_sessions::SessionKey;

use super::delivery::{self, ChannelRoute, Delivered};
use super::runner::{preview, run_outcome, AbortOnDrop};
use crate::events::PublishOpts;
use crate::state::GatewayState;

/// A heartbeat skipped because its session was busy is retried this much later when system
/// events are waiting for it.
const BUSY_RETRY_MS: i64 = 30_000;

/// Keeps `event` as the last heartbeat and publishes it at once, so the `heartbeat` event of
/// a run reaches clients before the run's `cron` `finished` event (emitted after the run
/// returns).
fn record(state: &GatewayState, mut event: HeartbeatEvent, agent: &str) -> HeartbeatEvent {
    event.agent_id = Some(agent.to_string());
    state.automations.heartbeat.record(event.clone());
    state
        .bus
        .publish("heartbeat", &event, PublishOpts::default());
    event
}

fn skipped(state: &GatewayState, agent: &str, reason: &str) -> RunOutcome {
    let now = crate::util::now_ms() as i64;
    record(state, HeartbeatEvent::skipped(now, reason), agent);
    RunOutcome::skipped(reason.to_string())
}

/// The user message of a heartbeat turn.
pub fn compose_prompt(
    settings: &HeartbeatSettings,
    scratch: Option<&str>,
    events: &[String],
) -> String {
    let mut prompt = settings.prompt.clone();
    if let Some(s) = scratch.map(str::trim).filter(|s| !s.is_empty()) {
        prompt.push_str("\n\nHeartbeat monitor scratch:\n");
        prompt.push_str(s);
    }
    if !events.is_empty() {
        prompt.push_str("\n\nSystem events since the last heartbeat:");
        for e in events {
            prompt.push_str("\n- ");
            prompt.push_str(e.trim());
        }
    }
    prompt
}

pub async fn run(state: &Arc<GatewayState>, request: &RunRequest) -> RunOutcome {
    let hub = &state.automations;
    let started = crate::util::now_ms() as i64;
    let default_agent = state.config.get().config.default_agent_id();
    let agent = request.job.effective_agent_id(&default_agent).to_string();
    if request.trigger == RunTrigger::Wake && hub.take_deferred_wake(&agent) {
        hub.heartbeat.wake_started(&agent, started);
    }
    let all = hub.heartbeat_settings(state);
    let Some(settings) = all.iter().find(|s| s.agent_id == agent).cloned() else {
        return skipped(state, &agent, "not-configured");
    };
    if let Err(reason) = hub.heartbeat.preflight(&settings, started) {
        return skipped(state, &agent, reason);
    }
    let key = match settings.session.as_deref() {
        Some(s) => match SessionKey::canonicalize(s, &agent) {
            Ok(k) => k,
            Err(e) => return RunOutcome::error(format!("heartbeat.session {s:?}: {e}")),
        },
        None => SessionKey::main(&agent),
    };
    let key_text = key.to_string();
    let run_key = if settings.isolated_session {
        match SessionKey::cron_run(&agent, &request.job.def.id.to_string(), &request.run_id) {
            Ok(k) => k,
            Err(e) => return RunOutcome::error(e.to_string()),
        }
    } else {
        key.clone()
    };
    let run_key_text = run_key.to_string();
    if state.agent.runtime.is_busy(&run_key_text) {
        if !hub.heartbeat.pending_events(&key_text).is_empty() {
            if let Some(s) = hub.scheduler_now() {
                let _ = s.wake_at(request.job.def.id, started + BUSY_RETRY_MS).await;
            }
        }
        return skipped(state, &agent, "busy");
    }
    let scratch = match hub.scheduler_now() {
        Some(s) => s
            .scratch(request.job.def.id)
            .await
            .ok()
            .flatten()
            .map(|s| s.content),
        None => None,
    };
    let events = hub.heartbeat.drain_events(&key_text);
    let prompt = compose_prompt(&settings, scratch.as_deref(), &events);
    let run_id = format!("heartbeat-{}", request.run_id);
    let mut req = pincer_agent::RunRequest::new(
        run_id.clone(),
        run_key.clone(),
        prompt,
        RunSource::Heartbeat,
    );
    req.interpret_commands = false;
    req.queue_mode = Some(QueueMode::Followup);
    req.model = settings.model.clone();
    let budget_ms = (request.deadline_ms - started).max(1_000);
    let budget = Duration::from_millis(u64::try_from(budget_ms).unwrap_or(1_000));
    req.timeout = Some(match settings.timeout_seconds {
        Some(s) => Duration::from_secs(s).min(budget),
        None => budget,
    });
    let mut guard = AbortOnDrop::new(state, &run_key_text, &run_id);
    let submitted = match state.agent.runtime.submit(req).await {
        Ok(s) => s,
        Err(e) => {
            guard.disarm();
            let now = crate::util::now_ms() as i64;
            let msg = format!("the agent did not accept the heartbeat: {e}");
            record(
                state,
                HeartbeatEvent::failed(now, now - started, &msg),
                &agent,
            );
            return RunOutcome::error(msg);
        }
    };
    let mut handle = submitted.handle;
    let outcome = run_outcome(state, &mut handle).await;
    guard.disarm();
    let now = crate::util::now_ms() as i64;
    let duration = now - started;
    if outcome.status != RunStatus::Ok {
        let msg = match outcome.status {
            RunStatus::Timeout => "the heartbeat timed out".to_string(),
            RunStatus::Aborted => "the heartbeat was aborted".to_string(),
            _ => outcome
                .error
                .as_ref()
                .map(|e| e.error_message.clone())
                .unwrap_or_else(|| "the heartbeat failed".into()),
        };
        record(state, HeartbeatEvent::failed(now, duration, &msg), &agent);
        return RunOutcome::error(msg);
    }
    let text = match outcome.disposition {
        Disposition::Silent => NO_REPLY.to_string(),
        Disposition::Empty => String::new(),
        Disposition::Visible => outcome.text.clone(),
    };
    let reply = classify_reply(None, &text, settings.ack_max_chars);
    let mut event = HeartbeatEvent::from_reply(now, duration, &reply);
    let HeartbeatReply::Alert { text: alert } = &reply else {
        let ev = record(state, event, &agent);
        let status = serde_json::to_value(ev.status).unwrap_or_default();
        return RunOutcome::ok(Some(format!(
            "{}: nothing delivered",
            status.as_str().unwrap_or("ok")
        )));
    };
    let delivered = deliver(state, &settings, &key, &run_key, alert, &run_id).await;
    match delivered {
        Ok(Some(d)) => {
            match &d {
                Delivered::Channel { channel, to } => {
                    event.channel = Some(channel.clone());
                    event.to = Some(to.clone());
                }
                Delivered::Session { key } => event.to = Some(key.clone()),
                Delivered::Webhook { .. } => {}
            }
            record(state, event, &agent);
            RunOutcome::ok(Some(format!("{} ({})", preview(alert), d.describe())))
        }
        Ok(None) => {
            let mut ev = HeartbeatEvent::skipped(now, "target-none");
            ev.duration_ms = Some(duration);
            ev.preview = event.preview.take();
            record(state, ev, &agent);
            RunOutcome::ok(Some(format!(
                "{} (target none: not delivered)",
                preview(alert)
            )))
        }
        Err(e) => {
            record(state, HeartbeatEvent::failed(now, duration, &e), &agent);
            RunOutcome::error(e)
        }
    }
}

/// Delivers an alert per `heartbeat.target`. `Ok(None)`: target `none`.
async fn deliver(
    state: &Arc<GatewayState>,
    settings: &HeartbeatSettings,
    key: &SessionKey,
    run_key: &SessionKey,
    text: &str,
    idempotency_key: &str,
) -> Result<Option<Delivered>, String> {
    if settings.target == HeartbeatTarget::None {
        return Ok(None);
    }
    if let (HeartbeatTarget::Channel(channel), Some(to)) = (&settings.target, &settings.to) {
        let route = ChannelRoute {
            channel,
            to,
            account_id: settings.account_id.as_deref(),
            thread_id: None,
        };
        return delivery::to_channel(state, route, text, idempotency_key)
            .await
            .map(Some);
    }
    if run_key == key {
        // The turn ran in the target conversation: its readers saw the reply as it came; a
        // chat channel behind it gets it now.
        return match delivery::to_session_channel(state, key, text, idempotency_key).await? {
            Some(d) => Ok(Some(d)),
            None => Ok(Some(Delivered::Session {
                key: key.to_string(),
            })),
        };
    }
    let list =
        delivery::to_conversation(state, key, text, Some("heartbeat"), idempotency_key).await?;
    Ok(list.into_iter().last())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_carries_scratch_and_events() {
        let cfg = pincer_config::Config::default();
        let settings = pincer_automations::heartbeat::resolve_heartbeats(&cfg)
            .unwrap_or_default()
            .into_iter()
            .next();
        let Some(settings) = settings else {
            panic!("the default agent has a heartbeat");
        };
        let p = compose_prompt(&settings, Some(" check disk "), &["build failed".into()]);
        assert!(p.starts_with("Follow the heartbeat monitor scratch context"));
        assert!(p.contains("Heartbeat monitor scratch:\ncheck disk"));
        assert!(p.ends_with("System events since the last heartbeat:\n- build failed"));
        assert_eq!(compose_prompt(&settings, Some("  "), &[]), settings.prompt);
    }
}
