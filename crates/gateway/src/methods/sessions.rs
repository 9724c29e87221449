//! `sessions.list`, `sessions.subscribe`, `sessions.messages.subscribe|unsubscribe`,
//! `sessions.preview`, `sessions.describe`, `sessions.patch`, `sessions.reset`,
//! `sessions.delete`.
//!
//! Keys are canonicalised through `pincer-sessions` everywhere (`main` →
//! `agent:<default agent>:main`, `agentId` scopes a bare key). Every mutation publishes
//! `sessions.changed` with the session row to `sessions.subscribe` sockets.

use pincer_protocol::errors::ErrorShape;
use pincer_protocol::params::{
    SESSIONS_CREATE_PARAMS, SESSIONS_DELETE_PARAMS, SESSIONS_DESCRIBE_PARAMS, SESSIONS_LIST_PARAMS,
    SESSIONS_MESSAGES_SUBSCRIBE_PARAMS, SESSIONS_PATCH_PARAMS, SESSIONS_PREVIEW_PARAMS,
    SESSIONS_RESET_PARAMS, SESSIONS_SUBSCRIBE_PARAMS,
};
use pincer_sessions::{ResetReason, SessionEntry, SessionKey, SessionPatch};
use pincer_store::{EnsureSession, ListQuery, SortBy, StoreError};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::dispatch::{CallCtx, MethodRegistry, OwnedCall, Reply};
use crate::session_rows::{model_defaults, RowKind};
use crate::state::GatewayState;
use crate::subscriptions::SubscribeError;
use crate::util;

pub fn register(reg: &mut MethodRegistry) {
    reg.asynchronous("sessions.list", &SESSIONS_LIST_PARAMS, |c| {
        Box::pin(sessions_list(c))
    });
    reg.asynchronous("sessions.subscribe", &SESSIONS_SUBSCRIBE_PARAMS, |c| {
        Box::pin(sessions_subscribe(c))
    });
    reg.sync(
        "sessions.messages.subscribe",
        &SESSIONS_MESSAGES_SUBSCRIBE_PARAMS,
        messages_subscribe,
    );
    reg.sync(
        "sessions.messages.unsubscribe",
        &SESSIONS_MESSAGES_SUBSCRIBE_PARAMS,
        messages_unsubscribe,
    );
    reg.asynchronous("sessions.preview", &SESSIONS_PREVIEW_PARAMS, |c| {
        Box::pin(sessions_preview(c))
    });
    reg.asynchronous("sessions.describe", &SESSIONS_DESCRIBE_PARAMS, |c| {
        Box::pin(sessions_describe(c))
    });
    reg.asynchronous("sessions.patch", &SESSIONS_PATCH_PARAMS, |c| {
        Box::pin(sessions_patch(c))
    });
    reg.asynchronous("sessions.create", &SESSIONS_CREATE_PARAMS, |c| {
        Box::pin(sessions_create(c))
    });
    reg.asynchronous("sessions.reset", &SESSIONS_RESET_PARAMS, |c| {
        Box::pin(sessions_reset(c))
    });
    reg.asynchronous("sessions.delete", &SESSIONS_DELETE_PARAMS, |c| {
        Box::pin(sessions_delete(c))
    });
}

/// Canonical key of a client-supplied key (`agentId` scopes a bare key).
pub fn canonical_key(
    state: &GatewayState,
    key: &str,
    agent_id: Option<&str>,
) -> Result<SessionKey, ErrorShape> {
    let default_agent = match agent_id {
        Some(a) => pincer_sessions::normalize_agent_id(a),
        None => state.config.get().config.default_agent_id(),
    };
    SessionKey::canonicalize(key, &default_agent)
        .map_err(|e| ErrorShape::invalid_request(format!("invalid session key: {e}")))
}

/// Store errors as protocol errors (caller mistakes are INVALID_REQUEST).
pub fn store_error(e: StoreError) -> ErrorShape {
    match e {
        StoreError::NoSuchSession(_)
        | StoreError::SessionIdMismatch { .. }
        | StoreError::BadCursor
        | StoreError::Patch(_) => ErrorShape::invalid_request(e.to_string()),
        other => ErrorShape::unavailable(other.to_string()),
    }
}

fn now() -> i64 {
    i64::try_from(util::now_ms()).unwrap_or(i64::MAX)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ListParams {
    limit: Option<usize>,
    offset: Option<usize>,
    active_minutes: Option<u64>,
    sort_by: Option<String>,
    include_global: Option<bool>,
    include_unknown: Option<bool>,
    exclude_subagents: Option<bool>,
    exclude_cron: Option<bool>,
    exclude_system: Option<bool>,
    label: Option<String>,
    agent_id: Option<String>,
    search: Option<String>,
    archived: Option<Value>,
    pinned: Option<bool>,
    configured_agents_only: Option<bool>,
    active_only: Option<bool>,
}

/// The store query of `sessions.list` filters. `configuredAgentsOnly` keeps the agents of the
/// config in force; `activeOnly` keeps sessions with a run in progress.
fn list_query(state: &GatewayState, p: &ListParams) -> ListQuery {
    let mut exclude = Vec::new();
    if p.include_global == Some(false) {
        exclude.push("global".to_string());
    }
    if p.include_unknown != Some(true) {
        exclude.push("unknown".to_string());
    }
    if p.exclude_subagents == Some(true) {
        exclude.push("subagent".to_string());
    }
    if p.exclude_cron == Some(true) {
        exclude.push("cron".to_string());
    }
    if p.exclude_system == Some(true) {
        exclude.extend(["hook".to_string(), "boot".to_string()]);
    }
    ListQuery {
        agent_id: p
            .agent_id
            .as_deref()
            .map(pincer_sessions::normalize_agent_id),
        agent_ids: if p.configured_agents_only == Some(true) {
            state.config.get().config.agent_ids()
        } else {
            Vec::new()
        },
        keys: (p.active_only == Some(true)).then(|| state.agent.active_session_keys()),
        pinned: p.pinned,
        label: p.label.clone().filter(|l| !l.is_empty()),
        search: p.search.clone(),
        active_minutes: p.active_minutes,
        now_ms: now(),
        kinds: Vec::new(),
        exclude_kinds: exclude,
        archived: match &p.archived {
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::String(s)) if s == "all" => None,
            _ => Some(false),
        },
        sort_by: match p.sort_by.as_deref() {
            Some("lastInteractionAt" | "activity") => SortBy::LastInteractionAt,
            _ => SortBy::UpdatedAt,
        },
        limit: p.limit,
        offset: p.offset.unwrap_or(0),
    }
}

async fn list_payload(state: &GatewayState, p: &ListParams) -> Result<Value, ErrorShape> {
    let page = state
        .store
        .list_sessions(list_query(state, p))
        .await
        .map_err(store_error)?;
    let loaded = state.config.current();
    let cfg = &loaded.config;
    let now_ms = util::now_ms();
    let agent = p
        .agent_id
        .as_deref()
        .map(pincer_sessions::normalize_agent_id)
        .unwrap_or_else(|| cfg.default_agent_id());
    let sessions: Vec<Value> = page
        .sessions
        .iter()
        .map(|r| {
            let key = SessionKey::parse(&r.key)
                .or_else(|_| SessionKey::canonicalize(&r.key, &r.agent_id))
                .unwrap_or(SessionKey::Unknown);
            let runs = crate::session_rows::RunFacts {
                active_run_ids: state.agent.active_run_ids(&r.key),
                active_leaf_entry_id: None,
            };
            crate::session_rows::session_row(cfg, &key, Some(r), RowKind::List, &runs, now_ms)
        })
        .collect();
    Ok(json!({
        "ts": now_ms,
        "path": state.store.path().display().to_string(),
        "count": sessions.len(),
        "totalCount": page.total_count,
        "limitApplied": page.limit_applied,
        "nextOffset": page.next_offset,
        "hasMore": page.has_more,
        "owners": [],
        "defaults": model_defaults(cfg, &agent, RowKind::List),
        "sessions": sessions,
    }))
}

async fn sessions_list(call: OwnedCall) -> Reply {
    let p: ListParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    match list_payload(&call.state, &p).await {
        Ok(v) => Reply::json(&v),
        Err(e) => Reply::Error(e),
    }
}

async fn sessions_subscribe(call: OwnedCall) -> Reply {
    let p: ListParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    call.conn.subscriptions.subscribe_sessions_changed();
    let ack_only = call
        .params
        .as_deref()
        .map(|r| r.get().trim())
        .is_none_or(|t| t == "{}");
    if ack_only {
        return Reply::json(&json!({"subscribed": true}));
    }
    match list_payload(&call.state, &p).await {
        Ok(list) => Reply::json(&json!({"subscribed": true, "list": list})),
        Err(e) => Reply::Error(e),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KeyParams {
    key: String,
    agent_id: Option<String>,
}

fn messages_subscribe(ctx: &CallCtx<'_>) -> Reply {
    let p: KeyParams = match ctx.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let key = match canonical_key(ctx.state, &p.key, p.agent_id.as_deref()) {
        Ok(k) => k.to_string(),
        Err(e) => return Reply::Error(e),
    };
    match ctx.conn.subscriptions.subscribe_messages(&key) {
        Ok(_) => Reply::json(&json!({"subscribed": true, "key": key})),
        Err(SubscribeError::TooMany) => Reply::Error(ErrorShape::invalid_request(format!(
            "too many session subscriptions on this connection (max {})",
            crate::subscriptions::MAX_MESSAGE_SUBSCRIPTIONS
        ))),
    }
}

fn messages_unsubscribe(ctx: &CallCtx<'_>) -> Reply {
    let p: KeyParams = match ctx.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let key = match canonical_key(ctx.state, &p.key, p.agent_id.as_deref()) {
        Ok(k) => k.to_string(),
        Err(e) => return Reply::Error(e),
    };
    let was = ctx.conn.subscriptions.unsubscribe_messages(&key);
    Reply::json(&json!({"subscribed": false, "key": key, "removed": was}))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PreviewParams {
    keys: Vec<String>,
    limit: Option<usize>,
    max_chars: Option<usize>,
}

/// Keys per `sessions.preview` call.
const MAX_PREVIEW_KEYS: usize = 100;

async fn sessions_preview(call: OwnedCall) -> Reply {
    let p: PreviewParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    if p.keys.len() > MAX_PREVIEW_KEYS {
        return Reply::Error(ErrorShape::invalid_request(format!(
            "sessions.preview accepts at most {MAX_PREVIEW_KEYS} keys"
        )));
    }
    let mut keys = Vec::with_capacity(p.keys.len());
    for k in &p.keys {
        match canonical_key(&call.state, k, None) {
            Ok(k) => keys.push(k),
            Err(e) => return Reply::Error(e),
        }
    }
    let limit = p.limit.unwrap_or(12).min(200);
    let max_chars = p.max_chars.unwrap_or(240).min(20_000);
    match call.state.store.preview(keys, limit, max_chars).await {
        Ok(previews) => {
            let previews: Vec<Value> = previews
                .into_iter()
                .map(|pv| {
                    json!({"key": pv.key, "status": pv.status,
                           "items": pv.items.into_iter().map(|i| json!({"role": i.role, "text": i.text})).collect::<Vec<_>>()})
                })
                .collect();
            Reply::json(&json!({"ts": util::now_ms(), "previews": previews}))
        }
        Err(e) => Reply::Error(store_error(e)),
    }
}

async fn sessions_describe(call: OwnedCall) -> Reply {
    let p: KeyParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let key = match canonical_key(&call.state, &p.key, p.agent_id.as_deref()) {
        Ok(k) => k,
        Err(e) => return Reply::Error(e),
    };
    match call.state.store.get_session(&key).await {
        Ok(Some(record)) => Reply::json(&call.state.session_row(&key, Some(&record))),
        Ok(None) => Reply::Error(
            ErrorShape::invalid_request(format!("no session with key {key}"))
                .with_details(json!({"reason": "SESSION_NOT_FOUND", "key": key.to_string()})),
        ),
        Err(e) => Reply::Error(store_error(e)),
    }
}

/// `sessions.patch` fields the session entry models (the rest are refused, not ignored).
const PATCHABLE: &[&str] = &[
    "key",
    "agentId",
    "expectedSessionId",
    "label",
    "displayName",
    "thinkingLevel",
    "verboseLevel",
    "reasoningLevel",
    "elevatedLevel",
    "sendPolicy",
    "groupActivation",
    "responseUsage",
    "queueMode",
    "fastMode",
    "model",
    "archived",
    "pinned",
    "unread",
];

/// A new entry for a key that has no session yet (created by an operator RPC).
fn operator_template(key: &SessionKey) -> SessionEntry {
    SessionEntry {
        created_via: Some("operator".into()),
        chat_type: key.chat_type().map(|c| c.as_str().to_string()),
        ..SessionEntry::default()
    }
}

async fn sessions_patch(call: OwnedCall) -> Reply {
    let raw: Map<String, Value> = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    if let Some(field) = raw.keys().find(|k| !PATCHABLE.contains(&k.as_str())) {
        return Reply::Error(ErrorShape::invalid_request(format!(
            "sessions.patch: {field} is not supported by Pincer yet"
        )));
    }
    let patch: SessionPatch = match serde_json::from_value(Value::Object(raw.clone())) {
        Ok(p) => p,
        Err(e) => {
            return Reply::Error(ErrorShape::invalid_request(format!(
                "invalid sessions.patch params: {e}"
            )))
        }
    };
    if let Err(e) = patch.validate() {
        return Reply::Error(ErrorShape::invalid_request(e.to_string()));
    }
    let key_text = raw.get("key").and_then(Value::as_str).unwrap_or_default();
    let agent = raw.get("agentId").and_then(Value::as_str);
    let state = &call.state;
    let key = match canonical_key(state, key_text, agent) {
        Ok(k) => k,
        Err(e) => return Reply::Error(e),
    };
    let now = now();
    let mut req = EnsureSession::at(now);
    req.template = Some(operator_template(&key));
    let ensured = match state.store.ensure_session(&key, req).await {
        Ok(e) => e,
        Err(e) => return Reply::Error(store_error(e)),
    };
    if ensured.created {
        state.sessions_changed(&key, "create", Some(&ensured.record));
    }
    if let Some(expected) = raw.get("expectedSessionId").and_then(Value::as_str) {
        if expected != ensured.record.entry.session_id {
            return Reply::Error(store_error(StoreError::SessionIdMismatch {
                key: key.to_string(),
                expected: expected.to_string(),
                actual: ensured.record.entry.session_id.clone(),
            }));
        }
    }
    let (record, changed) = match state.store.patch_session(&key, patch, now).await {
        Ok(r) => r,
        Err(e) => return Reply::Error(store_error(e)),
    };
    if !changed.is_empty() {
        state.sessions_changed(&key, "patch", Some(&record));
    }
    let row = state.session_row(&key, Some(&record));
    Reply::json(&json!({
        "ok": true,
        "path": state.store.path().display().to_string(),
        "key": key.to_string(),
        "entry": record.entry,
        "resolved": {"modelProvider": row["modelProvider"], "model": row["model"]},
        "changed": changed,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateParams {
    key: Option<String>,
    agent_id: Option<String>,
    label: Option<String>,
    model: Option<String>,
    thinking_level: Option<String>,
    message: Option<String>,
    idempotency_key: Option<String>,
}

/// `sessions.create`: a new session (the given key, else a fresh dashboard key of the agent)
/// with its label/model/thinking level, and optionally a first message run as a chat turn.
async fn sessions_create(call: OwnedCall) -> Reply {
    let p: CreateParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let state = &call.state;
    let agent = match &p.agent_id {
        Some(a) => pincer_sessions::normalize_agent_id(a),
        None => state.config.get().config.default_agent_id(),
    };
    let key_text = p
        .key
        .clone()
        .unwrap_or_else(|| format!("agent:{agent}:dashboard:{}", uuid::Uuid::new_v4().simple()));
    let key = match canonical_key(state, &key_text, Some(&agent)) {
        Ok(k) => k,
        Err(e) => return Reply::Error(e),
    };
    let mut overrides = Map::new();
    for (name, value) in [
        ("label", &p.label),
        ("model", &p.model),
        ("thinkingLevel", &p.thinking_level),
    ] {
        if let Some(v) = value {
            overrides.insert(name.into(), json!(v));
        }
    }
    let patch: SessionPatch = match serde_json::from_value(Value::Object(overrides)) {
        Ok(p) => p,
        Err(e) => {
            return Reply::Error(ErrorShape::invalid_request(format!(
                "invalid sessions.create params: {e}"
            )))
        }
    };
    if let Err(e) = patch.validate() {
        return Reply::Error(ErrorShape::invalid_request(e.to_string()));
    }
    let mut req = EnsureSession::at(now());
    req.template = Some(operator_template(&key));
    let ensured = match state.store.ensure_session(&key, req).await {
        Ok(e) => e,
        Err(e) => return Reply::Error(store_error(e)),
    };
    if !ensured.created {
        return Reply::Error(
            ErrorShape::invalid_request(format!("session {key} already exists"))
                .with_details(json!({"reason": "SESSION_EXISTS", "key": key.to_string()})),
        );
    }
    let record = match state.store.patch_session(&key, patch, now()).await {
        Ok((record, _)) => record,
        Err(e) => return Reply::Error(store_error(e)),
    };
    state.sessions_changed(&key, "create", Some(&record));
    let mut out = json!({"ok": true, "key": key.to_string(),
        "sessionId": record.entry.session_id, "entry": record.entry, "runStarted": false});
    if let Some(message) = p.message.filter(|m| !m.trim().is_empty()) {
        let run_id = p
            .idempotency_key
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let mut run = pincer_agent::RunRequest::new(
            run_id.clone(),
            key.clone(),
            message,
            pincer_agent::RunSource::Chat,
        );
        run.metadata = Some(crate::methods::chat::transport_metadata(&call));
        match state.agent.runtime.submit(run).await {
            Ok(_) => {
                out["runStarted"] = json!(true);
                out["runId"] = json!(run_id);
            }
            Err(e) => out["runError"] = json!(e.to_string()),
        }
    }
    let row = state.session_row(&key, Some(&record));
    out["resolved"] = json!({"modelProvider": row["modelProvider"], "model": row["model"]});
    Reply::json(&out)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResetParams {
    key: String,
    agent_id: Option<String>,
    reason: Option<String>,
    expected_session_id: Option<String>,
}

async fn sessions_reset(call: OwnedCall) -> Reply {
    let p: ResetParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let state = &call.state;
    let key = match canonical_key(state, &p.key, p.agent_id.as_deref()) {
        Ok(k) => k,
        Err(e) => return Reply::Error(e),
    };
    let reason = match p.reason.as_deref() {
        Some("new") => ResetReason::New,
        _ => ResetReason::Reset,
    };
    let agent = key
        .agent_id()
        .map(str::to_string)
        .unwrap_or_else(|| state.config.get().config.default_agent_id());
    // The transcript header records the agent's workspace; it is created on first use.
    let cwd = match state.ensure_agent_workspace(&agent).await {
        Ok(dir) => Some(dir.display().to_string()),
        Err(e) => {
            tracing::warn!(agent = %agent, error = %e, "cannot create the agent workspace");
            None
        }
    };
    match state
        .store
        .reset_session(&key, reason, now(), cwd, p.expected_session_id)
        .await
    {
        Ok(out) => {
            let why = if out.previous_session_id.is_some() {
                "reset"
            } else {
                "create"
            };
            state.sessions_changed(&key, why, Some(&out.record));
            Reply::json(&json!({"ok": true, "key": key.to_string(), "entry": out.record.entry}))
        }
        Err(e) => Reply::Error(store_error(e)),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeleteParams {
    key: String,
    agent_id: Option<String>,
    delete_transcript: Option<bool>,
    expected_session_id: Option<String>,
    archived_only: Option<bool>,
}

async fn sessions_delete(call: OwnedCall) -> Reply {
    let p: DeleteParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let state = &call.state;
    let key = match canonical_key(state, &p.key, p.agent_id.as_deref()) {
        Ok(k) => k,
        Err(e) => return Reply::Error(e),
    };
    if p.expected_session_id.is_some() || p.archived_only == Some(true) {
        match state.store.get_session(&key).await {
            Ok(Some(r)) => {
                if let Some(expected) = &p.expected_session_id {
                    if *expected != r.entry.session_id {
                        return Reply::Error(store_error(StoreError::SessionIdMismatch {
                            key: key.to_string(),
                            expected: expected.clone(),
                            actual: r.entry.session_id,
                        }));
                    }
                }
                if p.archived_only == Some(true) && r.entry.archived_at.is_none() {
                    return Reply::Error(ErrorShape::invalid_request(format!(
                        "session {key} is not archived (archivedOnly)"
                    )));
                }
            }
            Ok(None) => {}
            Err(e) => return Reply::Error(store_error(e)),
        }
    }
    let delete_transcript = p.delete_transcript.unwrap_or(false);
    match state
        .store
        .delete_session(&key, delete_transcript, now())
        .await
    {
        Ok(out) => {
            if out.deleted {
                state.sessions_changed(&key, "delete", None);
            }
            Reply::json(
                &json!({"ok": true, "key": key.to_string(), "deleted": out.deleted, "archived": out.archived}),
            )
        }
        Err(e) => Reply::Error(store_error(e)),
    }
}

impl GatewayState {
    /// The agent's workspace directory, created (0700) on first use.
    pub async fn ensure_agent_workspace(
        &self,
        agent_id: &str,
    ) -> std::io::Result<std::path::PathBuf> {
        let config = self.config.current();
        let state_dir = self.state_dir.clone();
        let agent = agent_id.to_string();
        tokio::task::spawn_blocking(move || {
            config.config.ensure_agent_workspace(&agent, &state_dir)
        })
        .await
        .map_err(std::io::Error::other)?
    }
}
