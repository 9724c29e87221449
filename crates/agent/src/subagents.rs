//! Cross-session tools behind the runtime's sessions host: who may see which session
//! (`tools.sessions.visibility`), `sessions_send` (run another session, optionally wait for
//! its reply) and `sessions_spawn` (a sub-agent run in its own `subagent:<uuid>` session whose
//! result is announced back to the parent session when it ends).

use std::sync::Arc;
use std::time::Duration;

use pincer_config::model::agents::SubagentsConfig;
use pincer_config::model::messages::QueueMode;
use pincer_config::model::tools::SessionsVisibility;
use pincer_sessions::{SessionEntry, SessionKey};
use pincer_store::{EnsureSession, ListQuery};
use pincer_tools::host::{HostError, Requester};
use serde_json::{json, Value};

use crate::events::{RunSource, RunStatus};
use crate::prompt::PromptMode;
use crate::request::{Admission, RunRequest};
use crate::runtime::{AgentRuntime, Inner};
use crate::util::now_ms;

/// Default wait of `sessions_send` for the target's reply.
const SEND_DEFAULT_WAIT: Duration = Duration::from_secs(30);
/// Longest wait `sessions_send` accepts.
const SEND_MAX_WAIT: Duration = Duration::from_secs(600);
/// `agents.*.subagents.maxSpawnDepth` default (range 1–5).
const DEFAULT_MAX_SPAWN_DEPTH: u32 = 5;
/// The reply a target gives to decline answering.
const REPLY_SKIP: &str = "REPLY_SKIP";

fn failed(e: impl std::fmt::Display) -> HostError {
    HostError::Failed(e.to_string())
}

fn runtime(inner: &Arc<Inner>) -> AgentRuntime {
    AgentRuntime {
        inner: Arc::clone(inner),
    }
}

/// `tools.sessions.visibility` (default `all`).
fn visibility(inner: &Inner) -> SessionsVisibility {
    inner
        .settings()
        .config
        .tools
        .sessions
        .as_ref()
        .and_then(|s| s.visibility)
        .unwrap_or(SessionsVisibility::All)
}

/// May `requester` see (list, read, message, inspect) the session `key` (with `entry`)? A
/// sandboxed requester sees only itself and the sessions it spawned, whatever the setting.
pub(crate) fn visible(
    vis: SessionsVisibility,
    requester: &Requester,
    key: &str,
    key_agent: &str,
    entry: Option<&SessionEntry>,
) -> bool {
    if key == requester.session_key {
        return true;
    }
    let spawned_by_me = entry
        .and_then(|e| e.spawned_by.as_deref())
        .is_some_and(|p| p == requester.session_key);
    if requester.sandboxed {
        return spawned_by_me;
    }
    let same_agent = key_agent == requester.agent_id;
    let requester_is_main = requester.session_key == format!("agent:{}:main", requester.agent_id);
    match vis {
        SessionsVisibility::OwnOnly => false,
        SessionsVisibility::Tree => spawned_by_me || (same_agent && requester_is_main),
        SessionsVisibility::Agent => same_agent,
        SessionsVisibility::All => true,
    }
}

fn denied(key: &str, vis: SessionsVisibility, sandboxed: bool) -> HostError {
    let why = if sandboxed {
        "a sandboxed session sees only the sessions it spawned".to_owned()
    } else {
        format!(
            "tools.sessions.visibility is {}",
            serde_json::to_value(vis)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default()
        )
    };
    HostError::Rejected(format!(
        "session {key} is not visible from this session ({why})"
    ))
}

/// Checks that `key` is visible to `requester`; returns its stored entry (if any).
pub(crate) async fn check_visible(
    inner: &Inner,
    requester: &Requester,
    key: &SessionKey,
) -> Result<Option<SessionEntry>, HostError> {
    let record = inner.store.get_session(key).await.map_err(failed)?;
    let entry = record.map(|r| r.entry);
    let vis = visibility(inner);
    let agent = key.agent_id().unwrap_or_default();
    if !visible(vis, requester, &key.to_string(), agent, entry.as_ref()) {
        return Err(denied(&key.to_string(), vis, requester.sandboxed));
    }
    Ok(entry)
}

/// `sessions_list` rows the requester may see.
pub(crate) async fn list(
    inner: &Inner,
    requester: &Requester,
    query: &Value,
) -> Result<Value, HostError> {
    let vis = visibility(inner);
    let limit = query["limit"].as_u64().unwrap_or(100).clamp(1, 200) as usize;
    let same_agent_only = matches!(
        vis,
        SessionsVisibility::Agent | SessionsVisibility::Tree | SessionsVisibility::OwnOnly
    ) || requester.sandboxed;
    let agent_filter = query["agentId"]
        .as_str()
        .map(pincer_sessions::normalize_agent_id)
        .or_else(|| same_agent_only.then(|| requester.agent_id.clone()));
    let page = inner
        .store
        .list_sessions(ListQuery {
            agent_id: agent_filter,
            label: query["label"].as_str().map(str::to_owned),
            search: query["search"].as_str().map(str::to_owned),
            active_minutes: query["activeMinutes"].as_u64(),
            now_ms: i64::try_from(now_ms()).unwrap_or(0),
            kinds: query["kinds"]
                .as_array()
                .map(|k| {
                    k.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            exclude_kinds: if query["excludeSubagents"] == true {
                vec!["subagent".into()]
            } else {
                Vec::new()
            },
            limit: Some(1000),
            offset: query["offset"].as_u64().unwrap_or(0) as usize,
            ..ListQuery::default()
        })
        .await
        .map_err(failed)?;
    let sessions: Vec<Value> = page
        .sessions
        .iter()
        .filter(|r| visible(vis, requester, &r.key, &r.agent_id, Some(&r.entry)))
        .take(limit)
        .map(|r| {
            json!({
                "key": r.key, "kind": r.kind, "agentId": r.agent_id,
                "sessionId": r.entry.session_id,
                "updatedAt": r.entry.updated_at, "label": r.entry.label,
                "displayName": r.entry.display_name, "model": r.entry.model,
                "totalTokens": r.entry.total_tokens, "status": r.entry.status,
                "spawnedBy": r.entry.spawned_by, "parentSessionKey": r.entry.parent_session_key,
                "spawnDepth": r.entry.spawn_depth,
            })
        })
        .collect();
    Ok(json!({"count": sessions.len(), "sessions": sessions}))
}

fn parse_key(inner: &Inner, requester: &Requester, key: &str) -> Result<SessionKey, HostError> {
    let default = if requester.agent_id.is_empty() {
        inner.settings().default_agent_id()
    } else {
        requester.agent_id.clone()
    };
    SessionKey::canonicalize(key.trim(), &default)
        .map_err(|e| HostError::Rejected(format!("invalid session key {key:?}: {e}")))
}

/// The target of `sessions_send`: `sessionKey`, else `label` (a visible session with that
/// exact label), else `agentId` (that agent's main session).
async fn send_target(
    inner: &Inner,
    requester: &Requester,
    request: &Value,
) -> Result<SessionKey, HostError> {
    if let Some(key) = request["sessionKey"]
        .as_str()
        .filter(|k| !k.trim().is_empty())
    {
        return parse_key(inner, requester, key);
    }
    if let Some(label) = request["label"].as_str().filter(|l| !l.trim().is_empty()) {
        let page = inner
            .store
            .list_sessions(ListQuery {
                label: Some(label.trim().to_owned()),
                now_ms: i64::try_from(now_ms()).unwrap_or(0),
                limit: Some(50),
                ..ListQuery::default()
            })
            .await
            .map_err(failed)?;
        let vis = visibility(inner);
        let hit = page
            .sessions
            .iter()
            .find(|r| visible(vis, requester, &r.key, &r.agent_id, Some(&r.entry)))
            .ok_or_else(|| {
                HostError::NotFound(format!("no visible session has the label {label:?}"))
            })?;
        return parse_key(inner, requester, &hit.key);
    }
    let agent = request["agentId"].as_str().unwrap_or_default();
    let agent = pincer_sessions::normalize_agent_id(agent);
    let settings = inner.settings();
    if !settings.config.agent_ids().contains(&agent) {
        return Err(HostError::NotFound(format!(
            "no agent {agent:?} is configured (agents: {})",
            settings.config.agent_ids().join(", ")
        )));
    }
    parse_key(inner, requester, &format!("agent:{agent}:main"))
}

fn final_text(outcome: &crate::events::RunOutcome) -> Option<String> {
    let text = outcome.text.trim();
    (!text.is_empty() && !text.eq_ignore_ascii_case(REPLY_SKIP)).then(|| text.to_owned())
}

fn status_str(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Ok => "ok",
        RunStatus::Error => "error",
        RunStatus::Aborted => "aborted",
        RunStatus::Timeout => "timeout",
    }
}

/// `sessions_send`.
pub(crate) async fn send(
    inner: &Arc<Inner>,
    requester: &Requester,
    request: Value,
) -> Result<Value, HostError> {
    let target = send_target(inner, requester, &request).await?;
    let target_s = target.to_string();
    if target_s == requester.session_key {
        return Err(HostError::Rejected(
            "the target is the current session; reply directly instead".into(),
        ));
    }
    if target_s.contains(":thread:") || target_s.contains(":topic:") {
        return Err(HostError::Rejected(format!(
            "{target_s} is a thread session; send to its parent channel session instead"
        )));
    }
    check_visible(inner, requester, &target).await?;
    let rt = runtime(inner);
    let queue_mode = match request["mode"].as_str() {
        None => None,
        Some("followup") => Some(QueueMode::Followup),
        Some("steer") => {
            if !rt.is_busy(&target_s) {
                return Ok(json!({
                    "status": "skipped", "sessionKey": target_s, "mode": "steer",
                    "reason": "the target has no active run; mode=steer never starts work (use followup)",
                }));
            }
            Some(QueueMode::Steer)
        }
        Some("notify") => {
            return Err(HostError::Unavailable(
                "mode=notify is not available on this gateway; use mode=followup to start a turn"
                    .into(),
            ))
        }
        Some(other) => {
            return Err(HostError::Rejected(format!(
                "mode={other} needs a paused child task of this session; there is none"
            )))
        }
    };
    let message = request["message"].as_str().unwrap_or_default();
    let mut req = RunRequest::new(
        uuid::Uuid::new_v4().to_string(),
        target.clone(),
        format!(
            "[Inter-session message from {} isUser=false]\n{message}",
            requester.session_key
        ),
        RunSource::Agent,
    );
    req.interpret_commands = false;
    req.sender_is_owner = false;
    req.queue_mode = queue_mode;
    let run_id = req.run_id.clone();
    let submitted = rt
        .submit(req)
        .await
        .map_err(|e| HostError::Rejected(e.to_string()))?;
    let disposition = match submitted.admission {
        Admission::Steered { .. } => "steered",
        _ => "queued",
    };
    let wait = request["timeoutSeconds"]
        .as_u64()
        .map_or(SEND_DEFAULT_WAIT, Duration::from_secs)
        .min(SEND_MAX_WAIT);
    if wait.is_zero() || disposition == "steered" {
        return Ok(json!({
            "status": "accepted", "runId": run_id, "sessionKey": target_s,
            "targetDisposition": disposition, "delivery": {"status": "skipped"},
        }));
    }
    let mut handle = submitted.handle;
    match tokio::time::timeout(wait, handle.outcome()).await {
        Err(_) => Ok(json!({
            "status": "timeout", "runId": run_id, "sessionKey": target_s,
            "targetDisposition": disposition,
            "note": format!("no reply within {}s; the target keeps running", wait.as_secs()),
        })),
        Ok(outcome) => match (outcome.status, final_text(&outcome)) {
            (RunStatus::Ok, Some(reply)) => Ok(json!({
                "status": "ok", "runId": run_id, "sessionKey": target_s, "reply": reply,
            })),
            (RunStatus::Ok, None) => Ok(json!({
                "status": "no_reply", "runId": run_id, "sessionKey": target_s,
            })),
            (status, _) => Ok(json!({
                "status": "error", "runId": run_id, "sessionKey": target_s,
                "runStatus": status_str(status),
                "error": outcome.error.as_ref().map(|e| e.error_message.clone()),
            })),
        },
    }
}

fn subagent_settings(inner: &Inner, agent_id: &str) -> SubagentsConfig {
    let settings = inner.settings();
    let config = &settings.config;
    let defaults = config.agents.defaults.subagents.clone().unwrap_or_default();
    let entry = config
        .agents
        .entries
        .iter()
        .find(|(id, _)| pincer_sessions::normalize_agent_id(id) == agent_id)
        .and_then(|(_, e)| e.subagents.clone())
        .unwrap_or_default();
    SubagentsConfig {
        allow_agents: entry.allow_agents.or(defaults.allow_agents),
        max_spawn_depth: entry.max_spawn_depth.or(defaults.max_spawn_depth),
        run_timeout_seconds: entry.run_timeout_seconds.or(defaults.run_timeout_seconds),
        model: entry.model.or(defaults.model),
        ..defaults
    }
}

/// `sessions_spawn`: starts the child run and returns at once; the child's result is announced
/// to the parent session when it ends.
pub(crate) async fn spawn(
    inner: &Arc<Inner>,
    requester: &Requester,
    request: Value,
) -> Result<Value, HostError> {
    let parent = parse_key(inner, requester, &requester.session_key)?;
    let runtime_kind = request["runtime"].as_str().unwrap_or("subagent");
    if runtime_kind != "subagent" {
        return Err(HostError::Unavailable(format!(
            "runtime={runtime_kind} is not available on this gateway; use runtime=subagent"
        )));
    }
    if request["context"].as_str() == Some("fork") {
        return Err(HostError::Unavailable(
            "context=fork is not available on this gateway; children start with isolated context"
                .into(),
        ));
    }
    let agent = request["agentId"]
        .as_str()
        .map(pincer_sessions::normalize_agent_id)
        .unwrap_or_else(|| requester.agent_id.clone());
    let sub = subagent_settings(inner, &requester.agent_id);
    if agent != requester.agent_id {
        let allowed = sub.allow_agents.as_ref().is_some_and(|a| {
            a.iter()
                .any(|x| x == "*" || pincer_sessions::normalize_agent_id(x) == agent)
        });
        if !allowed {
            return Err(HostError::Rejected(format!(
                "spawning agent {agent:?} is not allowed (agents.*.subagents.allowAgents)"
            )));
        }
        if !inner.settings().config.agent_ids().contains(&agent) {
            return Err(HostError::NotFound(format!(
                "no agent {agent:?} is configured"
            )));
        }
    }
    let depth = u32::try_from(parent.subagent_depth()).unwrap_or(u32::MAX) + 1;
    let max_depth = sub
        .max_spawn_depth
        .unwrap_or(DEFAULT_MAX_SPAWN_DEPTH)
        .clamp(1, 5);
    if depth > max_depth {
        return Err(HostError::Rejected(format!(
            "spawn depth {depth} exceeds maxSpawnDepth {max_depth}; this session cannot spawn children"
        )));
    }
    let child_id = uuid::Uuid::new_v4().to_string();
    let child = SessionKey::subagent(&parent, &agent, &child_id).map_err(failed)?;
    let child_s = child.to_string();
    let label = request["label"]
        .as_str()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned);
    // Lineage first, so the child is visible to its parent from its first event.
    let now = i64::try_from(now_ms()).unwrap_or(0);
    inner
        .store
        .ensure_session(&child, EnsureSession::at(now))
        .await
        .map_err(failed)?;
    let (parent_s, label_c) = (parent.to_string(), label.clone());
    inner
        .store
        .update_session(&child, now, move |e| {
            e.spawned_by = Some(parent_s.clone());
            e.parent_session_key = Some(parent_s);
            e.spawn_depth = Some(depth);
            if let Some(l) = label_c {
                e.label = Some(l);
            }
            Ok(())
        })
        .await
        .map_err(failed)?;

    let task = request["task"].as_str().unwrap_or_default();
    let mut req = RunRequest::new(
        uuid::Uuid::new_v4().to_string(),
        child.clone(),
        format!("[Subagent Task]\n{task}"),
        RunSource::Agent,
    );
    req.interpret_commands = false;
    req.sender_is_owner = false;
    req.prompt_mode = PromptMode::Minimal;
    req.model = request["model"]
        .as_str()
        .map(str::to_owned)
        .or(sub.model.clone());
    let timeout = request["runTimeoutSeconds"]
        .as_u64()
        .or(sub.run_timeout_seconds);
    req.timeout = timeout.filter(|t| *t > 0).map(Duration::from_secs);
    let run_id = req.run_id.clone();
    let rt = runtime(inner);
    let submitted = rt
        .submit(req)
        .await
        .map_err(|e| HostError::Rejected(e.to_string()))?;
    let cleanup_delete = request["cleanup"].as_str() == Some("delete");
    let announce = Announce {
        parent,
        child: child.clone(),
        label: label.clone(),
        run_id: run_id.clone(),
        cleanup_delete,
    };
    let mut handle = submitted.handle;
    let weak = Arc::downgrade(inner);
    tokio::spawn(async move {
        let outcome = handle.outcome().await;
        if let Some(inner) = weak.upgrade() {
            announce.deliver(&inner, &outcome).await;
        }
    });
    Ok(json!({
        "status": "accepted",
        "runId": run_id,
        "childSessionKey": child_s,
        "label": label,
        "agentId": agent,
        "spawnDepth": depth,
        "completion": "announce",
        "note": "The child runs in the background; its result arrives in this session as a [Subagent Result] message when it ends.",
    }))
}

/// Where a child's result goes when it ends.
struct Announce {
    parent: SessionKey,
    child: SessionKey,
    label: Option<String>,
    run_id: String,
    cleanup_delete: bool,
}

impl Announce {
    /// Hands the child's result to the parent session as a new turn (or, while the parent is
    /// still running, into that run at its next boundary, per the parent's queue mode).
    async fn deliver(self, inner: &Arc<Inner>, outcome: &crate::events::RunOutcome) {
        let name = self.label.clone().unwrap_or_else(|| self.child.to_string());
        let body = match (outcome.status, final_text(outcome)) {
            (RunStatus::Ok, Some(text)) => text,
            (RunStatus::Ok, None) => "(the sub-agent finished without a reply)".to_owned(),
            (_, text) => {
                let error = outcome
                    .error
                    .as_ref()
                    .map(|e| e.error_message.clone())
                    .unwrap_or_default();
                format!("{}\n{error}", text.unwrap_or_default())
                    .trim()
                    .to_owned()
            }
        };
        let message = format!(
            "[Subagent Result]\nSub-agent {name} ({}, run {}) finished: {}.\n\n{body}",
            self.child,
            self.run_id,
            status_str(outcome.status)
        );
        let mut req = RunRequest::new(
            uuid::Uuid::new_v4().to_string(),
            self.parent.clone(),
            message,
            RunSource::Agent,
        );
        req.interpret_commands = false;
        req.sender_is_owner = false;
        let rt = runtime(inner);
        if let Err(e) = rt.submit(req).await {
            tracing::warn!(parent = %self.parent, child = %self.child, error = %e, "could not announce a sub-agent result");
        }
        if self.cleanup_delete {
            let now = i64::try_from(now_ms()).unwrap_or(0);
            if let Err(e) = inner.store.delete_session(&self.child, false, now).await {
                tracing::debug!(child = %self.child, error = %e, "could not delete a finished sub-agent session");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(key: &str, sandboxed: bool) -> Requester {
        Requester {
            agent_id: "main".into(),
            session_key: key.into(),
            sandboxed,
        }
    }

    fn child_of(parent: &str) -> SessionEntry {
        let mut e = SessionEntry::new("s1", 1);
        e.spawned_by = Some(parent.into());
        e
    }

    #[test]
    fn visibility_levels() {
        use SessionsVisibility::*;
        let main = req("agent:main:main", false);
        let group = req("agent:main:telegram:group:1", false);
        let other_agent = ("agent:ops:main", "ops");
        assert!(visible(All, &group, other_agent.0, other_agent.1, None));
        assert!(!visible(Agent, &group, other_agent.0, other_agent.1, None));
        assert!(visible(Agent, &group, "agent:main:main", "main", None));
        assert!(!visible(OwnOnly, &main, "agent:main:cron:x", "main", None));
        assert!(visible(OwnOnly, &main, "agent:main:main", "main", None));
        // tree: from main every same-agent session; elsewhere only its children.
        assert!(visible(Tree, &main, "agent:main:cron:x", "main", None));
        assert!(!visible(Tree, &group, "agent:main:cron:x", "main", None));
        let child = child_of("agent:main:telegram:group:1");
        assert!(visible(
            Tree,
            &group,
            "agent:main:subagent:a",
            "main",
            Some(&child)
        ));
        // Sandboxed: spawned-only whatever the setting.
        let boxed = req("agent:main:telegram:group:1", true);
        assert!(!visible(All, &boxed, "agent:main:main", "main", None));
        assert!(visible(
            All,
            &boxed,
            "agent:main:subagent:a",
            "main",
            Some(&child)
        ));
    }
}
