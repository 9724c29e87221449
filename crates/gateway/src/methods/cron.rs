//! `cron.list|get|status|add|update|remove|run|runs|scratch.get|scratch.set` over the gateway's
//! one scheduler. The `automations` tool reaches the same operations through [`api`].
//!
//! Job objects are the spec's `CronJob` plus `nextRunAtMs` and `effectiveAgentId` at the top
//! level; every change is also announced as a `cron` event (`added`, `updated`, `removed`,
//! `scheduled`, `started`, `finished`) by the scheduler's event stream.

use pincer_protocol::errors::ErrorShape;
use pincer_protocol::params::{
    CRON_ADD_PARAMS, CRON_ID_PARAMS, CRON_LIST_PARAMS, CRON_RUNS_PARAMS, CRON_RUN_PARAMS,
    CRON_SCRATCH_SET_PARAMS, CRON_UPDATE_PARAMS, EMPTY_PARAMS,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::Value;

use crate::dispatch::{MethodRegistry, OwnedCall, Reply};

pub fn register(reg: &mut MethodRegistry) {
    reg.asynchronous("cron.list", &CRON_LIST_PARAMS, |c| Box::pin(list(c)));
    reg.asynchronous("cron.get", &CRON_ID_PARAMS, |c| Box::pin(get(c)));
    reg.asynchronous("cron.status", &EMPTY_PARAMS, |c| Box::pin(status(c)));
    reg.asynchronous("cron.add", &CRON_ADD_PARAMS, |c| Box::pin(add(c)));
    reg.asynchronous("cron.update", &CRON_UPDATE_PARAMS, |c| Box::pin(update(c)));
    reg.asynchronous("cron.remove", &CRON_ID_PARAMS, |c| Box::pin(remove(c)));
    reg.asynchronous("cron.run", &CRON_RUN_PARAMS, |c| Box::pin(run(c)));
    reg.asynchronous("cron.runs", &CRON_RUNS_PARAMS, |c| Box::pin(runs(c)));
    reg.asynchronous("cron.scratch.get", &CRON_ID_PARAMS, |c| {
        Box::pin(scratch_get(c))
    });
    reg.asynchronous("cron.scratch.set", &CRON_SCRATCH_SET_PARAMS, |c| {
        Box::pin(scratch_set(c))
    });
}

fn params(call: &OwnedCall) -> Value {
    call.params
        .as_deref()
        .and_then(|p| serde_json::from_str(p.get()).ok())
        .unwrap_or_else(|| Value::Object(Default::default()))
}

fn reply(result: Result<Value, ErrorShape>) -> Reply {
    match result {
        Ok(v) => Reply::json(&v),
        Err(e) => Reply::Error(e),
    }
}

async fn list(call: OwnedCall) -> Reply {
    reply(api::list(&call.state, &params(&call)).await)
}

async fn get(call: OwnedCall) -> Reply {
    let p = params(&call);
    reply(match api::job_id(&p) {
        Ok(id) => api::get(&call.state, id).await,
        Err(e) => Err(e),
    })
}

async fn status(call: OwnedCall) -> Reply {
    reply(api::status(&call.state).await)
}

async fn add(call: OwnedCall) -> Reply {
    reply(api::add(&call.state, params(&call)).await)
}

async fn update(call: OwnedCall) -> Reply {
    let p = params(&call);
    let result = match api::job_id(&p) {
        Ok(id) => {
            let patch = p
                .get("patch")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let expected = p
                .get("expectedConfigRevision")
                .and_then(Value::as_str)
                .map(str::to_owned);
            api::update(&call.state, id, patch, expected).await
        }
        Err(e) => Err(e),
    };
    reply(result)
}

async fn remove(call: OwnedCall) -> Reply {
    let p = params(&call);
    reply(match api::job_id(&p) {
        Ok(id) => api::remove(&call.state, id).await,
        Err(e) => Err(e),
    })
}

async fn run(call: OwnedCall) -> Reply {
    let p = params(&call);
    if let Some(expected) = p.get("expectedProcessInstanceId").and_then(Value::as_str) {
        if expected != call.state.boot_id {
            return Reply::Error(ErrorShape::invalid_request(format!(
                "the gateway restarted (process instance {} is not {expected})",
                call.state.boot_id
            )));
        }
    }
    let id = match api::job_id(&p) {
        Ok(id) => id,
        Err(e) => return Reply::Error(e),
    };
    // A claimed run is answered before it starts: the client learns the runId before any
    // event of the run (a skipped heartbeat can finish within microseconds).
    let sent = Arc::new(AtomicBool::new(false));
    let announce = {
        let (conn, request_id, sent) = (call.conn.clone(), call.id.clone(), sent.clone());
        Box::new(move |ack: &Value| {
            conn.send_text(Reply::json(ack).into_frame(&request_id));
            sent.store(true, Ordering::Release);
        })
    };
    let mode = p.get("mode").and_then(Value::as_str);
    let result = api::run(&call.state, id, mode, Some(announce)).await;
    if sent.load(Ordering::Acquire) {
        return Reply::Sent;
    }
    reply(result)
}

async fn runs(call: OwnedCall) -> Reply {
    reply(api::runs(&call.state, &params(&call)).await)
}

async fn scratch_get(call: OwnedCall) -> Reply {
    let p = params(&call);
    reply(match api::job_id(&p) {
        Ok(id) => api::scratch_get(&call.state, id).await,
        Err(e) => Err(e),
    })
}

async fn scratch_set(call: OwnedCall) -> Reply {
    let p = params(&call);
    reply(match api::job_id(&p) {
        Ok(id) => api::scratch_set(&call.state, id, &p).await,
        Err(e) => Err(e),
    })
}

/// The operations behind the methods and the `automations` tool (JSON in, JSON out).
pub(crate) mod api {
    use pincer_automations::{
        AutomationError, JobId, ListFilter, NewJob, Origin, RunAck, RunMode, Scheduler,
    };
    use pincer_protocol::errors::ErrorShape;
    use pincer_store::{CronRunQuery, CronRunStatus, SortDir, MAX_SCRATCH_BYTES};
    use serde_json::{json, Map, Value};

    use crate::state::GatewayState;

    /// Default page size of `cron.list`.
    pub const LIST_DEFAULT_LIMIT: usize = 50;
    /// Default page size of `cron.runs`.
    pub const RUNS_DEFAULT_LIMIT: usize = 50;

    pub fn error(e: AutomationError) -> ErrorShape {
        match e {
            AutomationError::Invalid(m) => ErrorShape::invalid_request(m),
            e @ (AutomationError::NotFound(_)
            | AutomationError::AlreadyRunning(_)
            | AutomationError::SystemOwned(_)) => ErrorShape::invalid_request(e.to_string()),
            AutomationError::Conflict {
                id,
                expected,
                actual,
            } => ErrorShape::invalid_request(format!(
                "cron job {id} changed: configRevision is {actual}, not the expected {expected}"
            ))
            .with_details(json!({"code": "REVISION_CONFLICT", "configRevision": actual})),
            e @ (AutomationError::Corrupt { .. }
            | AutomationError::Stopped
            | AutomationError::Store(_)) => ErrorShape::unavailable(e.to_string()),
        }
    }

    pub async fn scheduler(state: &GatewayState) -> Result<Scheduler, ErrorShape> {
        state
            .automations
            .scheduler()
            .await
            .map_err(ErrorShape::unavailable)
    }

    /// `id` or `jobId` of params.
    pub fn job_id(p: &Value) -> Result<JobId, ErrorShape> {
        let raw = p
            .get("jobId")
            .or_else(|| p.get("id"))
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ErrorShape::invalid_request("id or jobId is required"))?;
        raw.parse::<JobId>()
            .map_err(|_| ErrorShape::invalid_request(format!("unknown cron job id: {raw}")))
    }

    fn default_agent(state: &GatewayState) -> String {
        state.config.get().config.default_agent_id()
    }

    fn matches_query(job: &Value, query: &str) -> bool {
        let q = query.to_lowercase();
        [
            job.get("name"),
            job.get("displayName"),
            job.get("description"),
            job.pointer("/payload/message"),
            job.pointer("/payload/text"),
            job.get("id"),
        ]
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|s| s.to_lowercase().contains(&q))
    }

    /// A one-line summary of a job (`compact` lists, the tool's `list`).
    fn compact(job: &Value) -> Value {
        let mut out = Map::new();
        for key in [
            "id",
            "name",
            "displayName",
            "enabled",
            "schedule",
            "sessionTarget",
            "wakeMode",
            "agentId",
            "nextRunAtMs",
        ] {
            if let Some(v) = job.get(key).filter(|v| !v.is_null()) {
                out.insert(key.into(), v.clone());
            }
        }
        if let Some(kind) = job.pointer("/payload/kind") {
            out.insert("payloadKind".into(), kind.clone());
        }
        for (from, to) in [
            ("/state/lastRunAtMs", "lastRunAtMs"),
            ("/state/lastStatus", "lastRunStatus"),
            ("/state/lastError", "lastError"),
        ] {
            if let Some(v) = job.pointer(from) {
                out.insert(to.into(), v.clone());
            }
        }
        Value::Object(out)
    }

    pub async fn list(state: &GatewayState, p: &Value) -> Result<Value, ErrorShape> {
        let s = scheduler(state).await?;
        let enabled_filter = p.get("enabled").and_then(Value::as_str);
        let include_disabled = p.get("includeDisabled").and_then(Value::as_bool) == Some(true)
            || matches!(enabled_filter, Some("all" | "disabled"));
        let filter = ListFilter {
            include_disabled,
            agent_id: p
                .get("agentId")
                .and_then(Value::as_str)
                .map(pincer_sessions::normalize_agent_id),
        };
        let default_agent = default_agent(state);
        let jobs = s.list(&filter).await.map_err(error)?;
        let query = p.get("query").and_then(Value::as_str).map(str::trim);
        let kind = p.get("scheduleKind").and_then(Value::as_str);
        let session = p.get("sessionKey").and_then(Value::as_str);
        let mut wire: Vec<Value> = jobs
            .iter()
            .filter(|j| enabled_filter != Some("disabled") || !j.def.enabled)
            .filter(|j| kind.is_none_or(|k| k == "all" || j.def.schedule.kind() == k))
            .filter(|j| session.is_none_or(|k| j.def.session_key.as_deref() == Some(k)))
            .map(|j| j.to_wire(&default_agent))
            .filter(|j| query.is_none_or(|q| q.is_empty() || matches_query(j, q)))
            .collect();
        if p.get("sortBy").and_then(Value::as_str) == Some("nextRunAtMs") {
            wire.sort_by_key(|j| j["nextRunAtMs"].as_i64().unwrap_or(i64::MAX));
        }
        if p.get("sortDir").and_then(Value::as_str) == Some("desc") {
            wire.reverse();
        }
        let total = wire.len();
        let offset = p
            .get("offset")
            .and_then(Value::as_u64)
            .map_or(0, |o| usize::try_from(o).unwrap_or(usize::MAX));
        let limit = p
            .get("limit")
            .and_then(Value::as_u64)
            .map_or(LIST_DEFAULT_LIMIT, |l| usize::try_from(l).unwrap_or(200))
            .clamp(1, 200);
        let compact_view = p.get("compact").and_then(Value::as_bool) == Some(true);
        let page: Vec<Value> = wire
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|j| if compact_view { compact(&j) } else { j })
            .collect();
        let end = offset.saturating_add(page.len());
        let has_more = end < total;
        Ok(json!({
            "jobs": page,
            "total": total,
            "offset": offset,
            "limit": limit,
            "hasMore": has_more,
            "nextOffset": if has_more { json!(end) } else { Value::Null },
        }))
    }

    pub async fn get(state: &GatewayState, id: JobId) -> Result<Value, ErrorShape> {
        let s = scheduler(state).await?;
        match s.get(id).await.map_err(error)? {
            Some(job) => Ok(job.to_wire(&default_agent(state))),
            None => Err(ErrorShape::invalid_request(format!(
                "unknown cron job id: {id}"
            ))),
        }
    }

    pub async fn status(state: &GatewayState) -> Result<Value, ErrorShape> {
        let s = scheduler(state).await?;
        let st = s.status().await.map_err(error)?;
        let stats = s.stats();
        let mut v = serde_json::to_value(&st).unwrap_or_else(|_| json!({}));
        if let Value::Object(m) = &mut v {
            m.insert(
                "stats".into(),
                json!({
                    "timerWakeups": stats.timer_wakeups,
                    "idleTimerWakeups": stats.idle_timer_wakeups,
                    "dueBatches": stats.due_batches,
                    "runsStarted": stats.runs_started,
                    "runsFinished": stats.runs_finished,
                    "overlapsSkipped": stats.overlaps_skipped,
                }),
            );
            m.insert(
                "heartbeatsEnabled".into(),
                json!(state.automations.heartbeat.enabled()),
            );
        }
        Ok(v)
    }

    /// Keys of `cron.add` the job model does not implement (refused with a clear error rather
    /// than silently dropped).
    const UNSUPPORTED_ADD_KEYS: &[&str] = &["pacing", "trigger", "failureAlert"];

    /// `cron.add` from params (also the tool's `add` after it filled its defaults).
    pub async fn add(state: &GatewayState, mut p: Value) -> Result<Value, ErrorShape> {
        let s = scheduler(state).await?;
        if let Value::Object(m) = &mut p {
            for key in UNSUPPORTED_ADD_KEYS {
                if m.get(*key)
                    .is_some_and(|v| !v.is_null() && *v != json!(false))
                {
                    return Err(ErrorShape::invalid_request(format!(
                        "cron job {key} is not supported by this gateway"
                    )));
                }
                m.remove(*key);
            }
            // Ownership metadata has no effect here (every operator sees every job).
            m.remove("owner");
            // `null` means "not set".
            m.retain(|_, v| !v.is_null());
        }
        let job = NewJob::from_value(p).map_err(error)?;
        let job = s.add(job, Origin::User).await.map_err(error)?;
        Ok(job.to_wire(&default_agent(state)))
    }

    pub async fn update(
        state: &GatewayState,
        id: JobId,
        mut patch: Map<String, Value>,
        expected: Option<String>,
    ) -> Result<Value, ErrorShape> {
        let s = scheduler(state).await?;
        for key in UNSUPPORTED_ADD_KEYS {
            if patch
                .get(*key)
                .is_some_and(|v| !v.is_null() && *v != json!(false))
            {
                return Err(ErrorShape::invalid_request(format!(
                    "cron job {key} is not supported by this gateway"
                )));
            }
            patch.remove(*key);
        }
        patch.remove("owner");
        let job = s
            .update(id, patch, expected, Origin::User)
            .await
            .map_err(error)?;
        Ok(job.to_wire(&default_agent(state)))
    }

    pub async fn remove(state: &GatewayState, id: JobId) -> Result<Value, ErrorShape> {
        let s = scheduler(state).await?;
        let removed = s.remove(id, Origin::User).await.map_err(error)?;
        if !removed {
            return Err(ErrorShape::invalid_request(format!(
                "unknown cron job id: {id}"
            )));
        }
        Ok(json!({"ok": true, "removed": true, "jobId": id.to_string()}))
    }

    /// The `cron.run` answer for `ack`.
    fn run_answer(ack: &RunAck) -> Value {
        let mut v = serde_json::to_value(ack).unwrap_or_else(|_| json!({}));
        if let Value::Object(m) = &mut v {
            m.insert("enqueued".into(), json!(ack.run_id.is_some()));
        }
        v
    }

    /// Gets the `cron.run` answer of a claimed run before the run starts.
    pub type OnClaimedAnswer = Box<dyn FnOnce(&Value) + Send>;

    /// `cron.run` (see [`OnClaimedAnswer`]).
    pub async fn run(
        state: &GatewayState,
        id: JobId,
        mode: Option<&str>,
        on_claimed: Option<OnClaimedAnswer>,
    ) -> Result<Value, ErrorShape> {
        let s = scheduler(state).await?;
        let mode = match mode {
            Some(m) => RunMode::parse(m).map_err(error)?,
            None => RunMode::Force,
        };
        let ack = match on_claimed {
            Some(f) => {
                s.run_now_announced(id, mode, Box::new(move |ack| f(&run_answer(ack))))
                    .await
            }
            None => s.run_now(id, mode).await,
        }
        .map_err(error)?;
        Ok(run_answer(&ack))
    }

    pub async fn runs(state: &GatewayState, p: &Value) -> Result<Value, ErrorShape> {
        let s = scheduler(state).await?;
        let scope_all = p.get("scope").and_then(Value::as_str) == Some("all");
        let job = if scope_all {
            None
        } else if p.get("jobId").or_else(|| p.get("id")).is_some() {
            Some(job_id(p)?.to_string())
        } else {
            None
        };
        let mut statuses: Vec<CronRunStatus> = p
            .get("statuses")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .filter_map(CronRunStatus::parse)
                    .collect()
            })
            .unwrap_or_default();
        if let Some(one) = p.get("status").and_then(Value::as_str) {
            match one {
                "all" | "" => {}
                other => match CronRunStatus::parse(other) {
                    Some(s) => statuses.push(s),
                    None => {
                        return Err(ErrorShape::invalid_request(format!(
                            "unknown run status {other:?}"
                        )))
                    }
                },
            }
        }
        let limit = p
            .get("limit")
            .and_then(Value::as_u64)
            .map_or(RUNS_DEFAULT_LIMIT, |l| usize::try_from(l).unwrap_or(200))
            .clamp(1, 200);
        let offset = p
            .get("offset")
            .and_then(Value::as_u64)
            .map_or(0, |o| usize::try_from(o).unwrap_or(usize::MAX));
        let query = CronRunQuery {
            job_id: job,
            run_id: p.get("runId").and_then(Value::as_str).map(str::to_owned),
            agent_id: p
                .get("agentId")
                .and_then(Value::as_str)
                .map(pincer_sessions::normalize_agent_id),
            statuses,
            limit,
            offset,
            sort: if p.get("sortDir").and_then(Value::as_str) == Some("asc") {
                SortDir::Asc
            } else {
                SortDir::Desc
            },
        };
        let page = s.runs(query).await.map_err(error)?;
        let mut entries: Vec<Value> = page
            .runs
            .iter()
            .map(pincer_automations::scheduler::run_entry_wire)
            .collect();
        if let Some(q) = p
            .get("query")
            .and_then(Value::as_str)
            .filter(|q| !q.is_empty())
        {
            let q = q.to_lowercase();
            entries.retain(|e| {
                ["summary", "error", "runId"].iter().any(|k| {
                    e.get(*k)
                        .and_then(Value::as_str)
                        .is_some_and(|s| s.to_lowercase().contains(&q))
                })
            });
        }
        let end = offset.saturating_add(page.runs.len());
        Ok(json!({
            "entries": entries,
            "total": page.total,
            "offset": offset,
            "limit": limit,
            "hasMore": page.has_more,
            "nextOffset": if page.has_more { json!(end) } else { Value::Null },
        }))
    }

    fn scratch_json(s: &pincer_store::CronScratch) -> Value {
        json!({"content": s.content, "revision": s.revision, "updatedAtMs": s.updated_at_ms})
    }

    pub async fn scratch_get(state: &GatewayState, id: JobId) -> Result<Value, ErrorShape> {
        let s = scheduler(state).await?;
        if s.get(id).await.map_err(error)?.is_none() {
            return Err(ErrorShape::invalid_request(format!(
                "unknown cron job id: {id}"
            )));
        }
        let scratch = s.scratch(id).await.map_err(error)?;
        Ok(json!({
            "scratch": scratch.as_ref().map_or(Value::Null, scratch_json),
            "currentRevision": scratch.as_ref().map_or(0, |s| s.revision),
            "maxBytes": MAX_SCRATCH_BYTES,
        }))
    }

    pub async fn scratch_set(
        state: &GatewayState,
        id: JobId,
        p: &Value,
    ) -> Result<Value, ErrorShape> {
        let s = scheduler(state).await?;
        let content = match p.get("content") {
            Some(Value::Null) | None => None,
            Some(Value::String(c)) if c.len() <= MAX_SCRATCH_BYTES => Some(c.clone()),
            Some(Value::String(_)) => {
                return Err(ErrorShape::invalid_request(format!(
                    "scratch content is larger than {MAX_SCRATCH_BYTES} bytes"
                )))
            }
            Some(_) => {
                return Err(ErrorShape::invalid_request(
                    "content must be a string or null",
                ))
            }
        };
        if s.get(id).await.map_err(error)?.is_none() {
            return Err(ErrorShape::invalid_request(format!(
                "unknown cron job id: {id}"
            )));
        }
        let expected = p.get("expectedRevision").and_then(Value::as_i64);
        let now = crate::util::now_ms() as i64;
        match s.set_scratch(id, content, expected, now).await {
            Ok(_) => {
                let scratch = s.scratch(id).await.map_err(error)?;
                Ok(json!({
                    "ok": true,
                    "scratch": scratch.as_ref().map_or(Value::Null, scratch_json),
                    "currentRevision": scratch.as_ref().map_or(0, |s| s.revision),
                    "maxBytes": MAX_SCRATCH_BYTES,
                }))
            }
            Err(AutomationError::Invalid(msg)) if msg.contains("revision") => {
                let current = s
                    .scratch(id)
                    .await
                    .map_err(error)?
                    .map_or(0, |s| s.revision);
                let _ = msg;
                Ok(json!({"ok": false, "reason": "revision-conflict", "currentRevision": current}))
            }
            Err(e) => Err(error(e)),
        }
    }
}
