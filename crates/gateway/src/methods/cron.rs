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

    /// Page size of `cron.list` without `limit` when nothing matches (otherwise every match,
    /// up to [`LIST_MAX_LIMIT`]).
    pub const LIST_DEFAULT_LIMIT: usize = 50;
    /// Largest `cron.list` page.
    pub const LIST_MAX_LIMIT: usize = 200;
    /// `details.code` of an answer about a job that does not exist: the official CLI tells a
    /// missing job from other failures by it (and `cron.get`'s message), then looks the
    /// argument up by name or names the miss.
    pub const JOB_NOT_FOUND: &str = "CRON_JOB_NOT_FOUND";

    /// The error for a job id (or unparsable id) that names no job.
    pub fn not_found(id: &str) -> ErrorShape {
        ErrorShape::invalid_request(format!("cron job not found: {id}"))
            .with_details(json!({"code": JOB_NOT_FOUND, "jobId": id}))
    }

    /// Whether `e` is [`not_found`]'s.
    pub fn is_not_found(e: &ErrorShape) -> bool {
        e.details
            .as_ref()
            .and_then(|d| d.get("code"))
            .and_then(Value::as_str)
            == Some(JOB_NOT_FOUND)
    }
    /// Default page size of `cron.runs`.
    pub const RUNS_DEFAULT_LIMIT: usize = 50;

    pub fn error(e: AutomationError) -> ErrorShape {
        match e {
            AutomationError::Invalid(m) => ErrorShape::invalid_request(m),
            AutomationError::NotFound(id) => not_found(&id),
            e @ (AutomationError::AlreadyRunning(_) | AutomationError::SystemOwned(_)) => {
                ErrorShape::invalid_request(e.to_string())
            }
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
        raw.parse::<JobId>().map_err(|_| not_found(raw))
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

    /// `cron.list`: one page of the filtered, sorted inventory, with the page metadata the
    /// official CLI checks before it believes a page (`snapshotRevision`, `total`, `offset`,
    /// `limit`, `hasMore`, `nextOffset`). A client reads every page of one revision and starts
    /// over when the revision changes between pages.
    pub async fn list(state: &GatewayState, p: &Value) -> Result<Value, ErrorShape> {
        let s = scheduler(state).await?;
        // `enabled` wins over `includeDisabled` (as the reference).
        let enabled_filter = match p.get("enabled").and_then(Value::as_str) {
            Some(f @ ("all" | "enabled" | "disabled")) => f,
            _ if p.get("includeDisabled").and_then(Value::as_bool) == Some(true) => "all",
            _ => "enabled",
        };
        let filter = ListFilter {
            include_disabled: enabled_filter != "enabled",
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
            .filter(|j| enabled_filter != "disabled" || !j.def.enabled)
            .filter(|j| kind.is_none_or(|k| k == "all" || j.def.schedule.kind() == k))
            .filter(|j| session.is_none_or(|k| j.def.session_key.as_deref() == Some(k)))
            .map(|j| j.to_wire(&default_agent))
            .filter(|j| query.is_none_or(|q| q.is_empty() || matches_query(j, q)))
            .collect();
        sort_jobs(
            &mut wire,
            p.get("sortBy").and_then(Value::as_str).unwrap_or_default(),
            p.get("sortDir").and_then(Value::as_str) == Some("desc"),
        );
        let snapshot_revision = snapshot_revision(&wire);
        let total = wire.len();
        let offset = p
            .get("offset")
            .and_then(Value::as_u64)
            .map_or(0, |o| usize::try_from(o).unwrap_or(usize::MAX))
            .min(total);
        let default_limit = if total == 0 {
            LIST_DEFAULT_LIMIT
        } else {
            total
        };
        let limit = p
            .get("limit")
            .and_then(Value::as_u64)
            .map_or(default_limit, |l| {
                usize::try_from(l).unwrap_or(LIST_MAX_LIMIT)
            })
            .clamp(1, LIST_MAX_LIMIT);
        let compact_view = p.get("compact").and_then(Value::as_bool) == Some(true);
        let page: Vec<Value> = wire
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|j| if compact_view { compact(&j) } else { j })
            .collect();
        let end = offset + page.len();
        let has_more = end < total;
        Ok(json!({
            "jobs": page,
            "snapshotRevision": snapshot_revision,
            "total": total,
            "offset": offset,
            "limit": limit,
            "hasMore": has_more,
            "nextOffset": if has_more { json!(end) } else { Value::Null },
        }))
    }

    /// The reference's inventory order: `sortBy` `nextRunAtMs` (the default; jobs without a
    /// next run last, whichever the direction), `name` (case-insensitive) or `updatedAtMs`,
    /// then the id, so that pages of one revision never overlap or skip a job.
    fn sort_jobs(jobs: &mut [Value], sort_by: &str, descending: bool) {
        use std::cmp::Ordering;
        jobs.sort_by(|a, b| {
            let by_key = match sort_by {
                "name" => {
                    let name = |j: &Value| j["name"].as_str().unwrap_or_default().to_lowercase();
                    name(a).cmp(&name(b))
                }
                "updatedAtMs" => a["updatedAtMs"].as_i64().cmp(&b["updatedAtMs"].as_i64()),
                _ => match (a["nextRunAtMs"].as_i64(), b["nextRunAtMs"].as_i64()) {
                    (Some(x), Some(y)) => x.cmp(&y),
                    (Some(_), None) => return Ordering::Less,
                    (None, Some(_)) => return Ordering::Greater,
                    (None, None) => Ordering::Equal,
                },
            };
            let by_key = if descending { by_key.reverse() } else { by_key };
            by_key.then_with(|| a["id"].as_str().cmp(&b["id"].as_str()))
        });
    }

    /// `sha256:<base64url>` of the whole filtered, sorted inventory: the same as long as
    /// no job in it changes (definition or state).
    fn snapshot_revision(jobs: &[Value]) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        for job in jobs {
            hasher.update(job.to_string().as_bytes());
            hasher.update(b"\n");
        }
        format!(
            "sha256:{}",
            pincer_protocol::device_auth::encode_base64url(&hasher.finalize())
        )
    }

    pub async fn get(state: &GatewayState, id: JobId) -> Result<Value, ErrorShape> {
        let s = scheduler(state).await?;
        match s.get(id).await.map_err(error)? {
            Some(job) => Ok(job.to_wire(&default_agent(state))),
            None => Err(not_found(&id.to_string())),
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
            // Where the jobs are kept (the official CLI names it when the scheduler is off),
            // and that conditional triggers are not offered (`cron.add` refuses them).
            let db = pincer_store::db_path(&state.state_dir)
                .display()
                .to_string();
            m.insert("storage".into(), json!("sqlite"));
            m.insert("storePath".into(), json!(db));
            m.insert("sqlitePath".into(), json!(db));
            m.insert("triggersEnabled".into(), json!(false));
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
            return Err(not_found(&id.to_string()));
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
        let mut delivery_statuses: Vec<String> = Vec::new();
        let listed = p.get("deliveryStatuses").and_then(Value::as_array);
        for one in listed
            .into_iter()
            .flatten()
            .chain(p.get("deliveryStatus"))
            .filter_map(Value::as_str)
        {
            match pincer_automations::DeliveryStatus::parse(one) {
                Some(d) => delivery_statuses.push(d.as_str().to_string()),
                None if one == "all" || one.is_empty() => {}
                None => {
                    return Err(ErrorShape::invalid_request(format!(
                        "unknown delivery status {one:?}"
                    )))
                }
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
            delivery_statuses,
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
            return Err(not_found(&id.to_string()));
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
            return Err(not_found(&id.to_string()));
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

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used, clippy::expect_used)]
        use super::*;

        fn job(id: &str, name: &str, next: Option<i64>, updated: i64) -> Value {
            json!({"id": id, "name": name, "nextRunAtMs": next, "updatedAtMs": updated})
        }

        fn ids(jobs: &[Value]) -> Vec<&str> {
            jobs.iter().map(|j| j["id"].as_str().unwrap()).collect()
        }

        fn inventory() -> Vec<Value> {
            vec![
                job("d", "delta", None, 4),
                job("c", "Charlie", Some(20), 1),
                job("b", "bravo", Some(10), 3),
                job("a", "alpha", Some(20), 2),
            ]
        }

        #[test]
        fn the_inventory_sorts_by_next_run_with_unscheduled_jobs_last_then_by_id() {
            let mut jobs = inventory();
            sort_jobs(&mut jobs, "", false);
            assert_eq!(ids(&jobs), ["b", "a", "c", "d"]);
            sort_jobs(&mut jobs, "nextRunAtMs", true);
            assert_eq!(ids(&jobs), ["a", "c", "b", "d"]);
            sort_jobs(&mut jobs, "name", false);
            assert_eq!(ids(&jobs), ["a", "b", "c", "d"]);
            sort_jobs(&mut jobs, "updatedAtMs", true);
            assert_eq!(ids(&jobs), ["d", "b", "a", "c"]);
        }

        #[test]
        fn the_snapshot_revision_follows_the_inventory() {
            let jobs = inventory();
            let rev = snapshot_revision(&jobs);
            assert!(rev.starts_with("sha256:") && rev.len() > 40, "{rev}");
            assert_eq!(snapshot_revision(&inventory()), rev);
            let mut changed = inventory();
            changed[1]["nextRunAtMs"] = json!(21);
            assert_ne!(snapshot_revision(&changed), rev);
            assert_ne!(snapshot_revision(&jobs[1..]), rev);
            let mut reordered = inventory();
            reordered.swap(0, 1);
            assert_ne!(snapshot_revision(&reordered), rev);
            assert_ne!(snapshot_revision(&[]), rev);
        }

        #[test]
        fn a_missing_job_is_named_the_way_the_official_cli_recognises() {
            let e = job_id(&json!({"id": "morning ping"})).unwrap_err();
            assert!(is_not_found(&e), "{e:?}");
            assert!(e.message.starts_with("cron job not found: morning ping"));
            assert_eq!(
                e.details,
                Some(json!({"code": "CRON_JOB_NOT_FOUND", "jobId": "morning ping"}))
            );
            let e = error(AutomationError::NotFound("x".into()));
            assert!(is_not_found(&e) && e.message == "cron job not found: x");
            assert!(!is_not_found(&error(AutomationError::Invalid(
                "bad".into()
            ))));
            assert!(!is_not_found(&job_id(&json!({})).unwrap_err()));
        }
    }
}
