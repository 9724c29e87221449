//! The gateway side of the `automations` tool (alias `cron`): the same operations as the
//! `cron.*` methods and `wake`, with the tool's conversation-aware defaults.
//!
//! - `add`: `agentId` defaults to the calling agent; an `agentTurn` defaults to
//!   `sessionTarget: "current"` bound to the calling session (the result comes back to the
//!   chat the request came from), a `systemEvent` to `main`; a cron expression without `tz`
//!   gets `agents.defaults.userTimezone` when configured (else the gateway host's zone); a
//!   missing `name` is derived from the payload.
//! - `wake`: defaults to the calling session and `mode: "next-heartbeat"`.
//! - Runs of automations (sessions `cron:…`) may only look (`status`, `list`, `get`, `runs`)
//!   and remove jobs: an automation cannot create, change or trigger automations, which
//!   would let one job multiply itself.

use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use pincer_automations::heartbeat::WakeRequestMode;
use pincer_protocol::errors::ErrorShape;
use pincer_sessions::SessionKey;
use pincer_tools::host::{AutomationsHost, HostError, Requester};
use serde_json::{json, Map, Value};

use crate::methods::cron::api;
use crate::state::GatewayState;

/// Longest derived job name.
const DERIVED_NAME_CHARS: usize = 60;

pub struct GatewayAutomationsHost {
    cell: Arc<OnceLock<Weak<GatewayState>>>,
}

impl GatewayAutomationsHost {
    pub fn new(cell: Arc<OnceLock<Weak<GatewayState>>>) -> Self {
        GatewayAutomationsHost { cell }
    }

    fn state(&self) -> Result<Arc<GatewayState>, HostError> {
        self.cell
            .get()
            .and_then(Weak::upgrade)
            .ok_or_else(|| HostError::Unavailable("the gateway is shutting down".into()))
    }
}

fn host_error(e: ErrorShape) -> HostError {
    match e.code {
        pincer_protocol::errors::ErrorCode::Unavailable => HostError::Unavailable(e.message),
        _ if api::is_not_found(&e) => HostError::NotFound(e.message),
        _ => HostError::Rejected(e.message),
    }
}

fn derived_name(job: &Map<String, Value>) -> String {
    let text = job
        .get("payload")
        .and_then(|p| p.get("message").or_else(|| p.get("text")))
        .and_then(Value::as_str)
        .unwrap_or("automation")
        .trim();
    let first_line = text.lines().next().unwrap_or("automation");
    let mut name: String = first_line.chars().take(DERIVED_NAME_CHARS).collect();
    if first_line.chars().count() > DERIVED_NAME_CHARS {
        name.push('…');
    }
    if name.trim().is_empty() {
        "automation".into()
    } else {
        name
    }
}

/// A numeric `delivery.threadId` (the tool schema allows numbers) as the job model's string.
fn normalize_delivery(job: &mut Map<String, Value>) {
    if let Some(Value::Object(d)) = job.get_mut("delivery") {
        if let Some(Value::Number(n)) = d.get("threadId") {
            let text = n.to_string();
            d.insert("threadId".into(), Value::String(text));
        }
        d.retain(|_, v| !v.is_null());
    }
}

/// Fills the conversation defaults of a tool `add` (see the module doc).
pub fn tool_job(
    mut job: Map<String, Value>,
    requester: &Requester,
    user_tz: Option<&str>,
) -> Map<String, Value> {
    if !job.get("agentId").is_some_and(Value::is_string) {
        job.insert("agentId".into(), json!(requester.agent_id));
    }
    let kind = job
        .get("payload")
        .and_then(|p| p.get("kind"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !job.get("sessionTarget").is_some_and(Value::is_string) {
        let target = if kind == "agentTurn" {
            "current"
        } else {
            "main"
        };
        job.insert("sessionTarget".into(), json!(target));
    }
    if job.get("sessionTarget").and_then(Value::as_str) == Some("current")
        && !job.get("sessionKey").is_some_and(Value::is_string)
    {
        job.insert("sessionKey".into(), json!(requester.session_key));
    }
    if let (Some(tz), Some(Value::Object(schedule))) = (user_tz, job.get_mut("schedule")) {
        if schedule.get("kind").and_then(Value::as_str) == Some("cron")
            && !schedule.get("tz").is_some_and(Value::is_string)
        {
            schedule.insert("tz".into(), json!(tz));
        }
    }
    if job
        .get("name")
        .and_then(Value::as_str)
        .is_none_or(|n| n.trim().is_empty())
    {
        let name = derived_name(&job);
        job.insert("name".into(), json!(name));
    }
    normalize_delivery(&mut job);
    job
}

fn in_automation_run(requester: &Requester) -> bool {
    SessionKey::parse(&requester.session_key).is_ok_and(|k| k.classification() == "cron")
}

#[async_trait]
impl AutomationsHost for GatewayAutomationsHost {
    async fn call(
        &self,
        requester: &Requester,
        action: &str,
        mut args: Map<String, Value>,
    ) -> Result<Value, HostError> {
        let state = self.state()?;
        if in_automation_run(requester)
            && !matches!(action, "status" | "list" | "get" | "runs" | "remove")
        {
            return Err(HostError::Rejected(format!(
                "automation runs may not {action} automations (only status, list, get, runs and remove)"
            )));
        }
        let id = || api::job_id(&Value::Object(args.clone())).map_err(host_error);
        match action {
            "status" => api::status(&state).await.map_err(host_error),
            "list" => {
                let mut p = Map::new();
                for key in ["includeDisabled", "limit", "offset"] {
                    if let Some(v) = args.remove(key) {
                        p.insert(key.into(), v);
                    }
                }
                p.insert("compact".into(), json!(true));
                api::list(&state, &Value::Object(p))
                    .await
                    .map_err(host_error)
            }
            "get" => api::get(&state, id()?).await.map_err(host_error),
            "add" => {
                let Some(Value::Object(job)) = args.remove("job") else {
                    return Err(HostError::Rejected("add needs job".into()));
                };
                let user_tz = state
                    .config
                    .get()
                    .config
                    .agents
                    .defaults
                    .user_timezone
                    .clone();
                let job = tool_job(job, requester, user_tz.as_deref());
                api::add(&state, Value::Object(job))
                    .await
                    .map_err(host_error)
            }
            "update" => {
                let job_id = id()?;
                let Some(Value::Object(mut patch)) = args.remove("job") else {
                    return Err(HostError::Rejected("update needs job".into()));
                };
                normalize_delivery(&mut patch);
                api::update(&state, job_id, patch, None)
                    .await
                    .map_err(host_error)
            }
            "remove" => api::remove(&state, id()?).await.map_err(host_error),
            "run" => {
                let mode = match args.get("runMode").and_then(Value::as_str) {
                    None | Some("force") => "force",
                    Some("due") => "due",
                    Some(other) => {
                        return Err(HostError::Rejected(format!(
                            "runMode must be \"force\" or \"due\" (got {other:?})"
                        )))
                    }
                };
                api::run(&state, id()?, Some(mode), None)
                    .await
                    .map_err(host_error)
            }
            "runs" => {
                let job_id = id()?;
                let mut p = Map::new();
                p.insert("jobId".into(), json!(job_id.to_string()));
                for key in ["limit", "offset"] {
                    if let Some(v) = args.remove(key) {
                        p.insert(key.into(), v);
                    }
                }
                api::runs(&state, &Value::Object(p))
                    .await
                    .map_err(host_error)
            }
            "wake" => {
                let text = args
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let mode = match args.get("mode").and_then(Value::as_str) {
                    Some("now") => WakeRequestMode::Now,
                    None | Some("next-heartbeat") => WakeRequestMode::NextHeartbeat,
                    Some(other) => {
                        return Err(HostError::Rejected(format!(
                            "mode must be \"now\" or \"next-heartbeat\" (got {other:?})"
                        )))
                    }
                };
                let session = args
                    .get("sessionKey")
                    .and_then(Value::as_str)
                    .unwrap_or(&requester.session_key)
                    .to_string();
                let agent = args
                    .get("agentId")
                    .and_then(Value::as_str)
                    .unwrap_or(&requester.agent_id)
                    .to_string();
                let (agent, key) =
                    crate::methods::heartbeat::wake_target(&state, Some(&session), Some(&agent))
                        .map_err(host_error)?;
                let decision = state.automations.wake(&agent, &key, &text, mode).await;
                Ok(
                    json!({"ok": true, "mode": decision.mode, "eventOutcome": decision.event_outcome, "sessionKey": key}),
                )
            }
            "next_check" => Err(HostError::Rejected(
                "next_check needs a paced automation (pacing), which this gateway does not support"
                    .into(),
            )),
            other => Err(HostError::Rejected(format!("unknown action {other:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn requester() -> Requester {
        Requester {
            agent_id: "main".into(),
            session_key: "agent:main:telegram:direct:42".into(),
            sandboxed: false,
        }
    }

    #[test]
    fn a_tool_reminder_comes_back_to_its_conversation_in_the_user_zone() {
        let job = json!({
            "schedule": {"kind": "cron", "expr": "0 8 * * 1-5"},
            "payload": {"kind": "agentTurn", "message": "Remind me to check the build"},
            "delivery": {"mode": "announce", "threadId": 7, "channel": null}
        });
        let Value::Object(job) = job else {
            unreachable!()
        };
        let out = tool_job(job, &requester(), Some("Europe/Berlin"));
        assert_eq!(out["sessionTarget"], "current");
        assert_eq!(out["sessionKey"], "agent:main:telegram:direct:42");
        assert_eq!(out["agentId"], "main");
        assert_eq!(out["schedule"]["tz"], "Europe/Berlin");
        assert_eq!(out["name"], "Remind me to check the build");
        assert_eq!(
            out["delivery"],
            json!({"mode": "announce", "threadId": "7"})
        );
    }

    #[test]
    fn explicit_choices_are_kept() {
        let job = json!({
            "name": "ping",
            "agentId": "ops",
            "sessionTarget": "isolated",
            "schedule": {"kind": "cron", "expr": "0 8 * * *", "tz": "UTC"},
            "payload": {"kind": "systemEvent", "text": "x"}
        });
        let Value::Object(job) = job else {
            unreachable!()
        };
        let out = tool_job(job, &requester(), Some("Europe/Berlin"));
        assert_eq!(out["sessionTarget"], "isolated");
        assert!(out.get("sessionKey").is_none());
        assert_eq!(out["agentId"], "ops");
        assert_eq!(out["schedule"]["tz"], "UTC");
        let Value::Object(se) = json!({"schedule": {"kind": "every", "everyMs": 1000},
            "payload": {"kind": "systemEvent", "text": "stretch"}})
        else {
            unreachable!()
        };
        assert_eq!(tool_job(se, &requester(), None)["sessionTarget"], "main");
        assert!(in_automation_run(&Requester {
            agent_id: "main".into(),
            session_key: "agent:main:cron:1234:run:abcd".into(),
            sandboxed: false
        }));
        assert!(!in_automation_run(&requester()));
    }
}
