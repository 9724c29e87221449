//! Automations: job rows, run receipts and monitor scratch (migration 0004).
//!
//! The store keeps rows; the job model, schedules and the run protocol live in
//! `pincer-automations`, which stores a job as two JSON documents (definition and runtime
//! state) plus a few projections. Multi-step changes run through [`Store::cron_write`]: a
//! closure gets a [`CronTx`] on the writer thread, inside the batch transaction, so "claim a
//! run" (insert a `running` receipt and advance the job's next run) is atomic and is
//! acknowledged only after `COMMIT`. Reads use the read pool.

use std::any::Any;

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, Row};

use crate::error::{Result, StoreError};
use crate::writer::Op;
use crate::Store;

/// One row of `cron_jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CronJobRow {
    pub job_id: String,
    /// Set for system-owned jobs (e.g. `heartbeat:main`); unique.
    pub declaration_key: Option<String>,
    pub agent_id: Option<String>,
    pub name: String,
    pub enabled: bool,
    pub payload_kind: String,
    /// The job definition (without runtime state), JSON.
    pub job_json: String,
    /// The runtime state, JSON.
    pub state_json: String,
    /// Projection of the state's `nextRunAtMs`.
    pub next_run_at_ms: Option<i64>,
    pub config_revision: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// The part of a job row the scheduler needs to build its index at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CronIndexRow<'a> {
    pub job_id: &'a str,
    pub enabled: bool,
    pub next_run_at_ms: Option<i64>,
}

/// Status of a run receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CronRunStatus {
    Running,
    Ok,
    Error,
    Skipped,
    /// The process died (or restarted) while the run was in progress.
    Interrupted,
}

impl CronRunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CronRunStatus::Running => "running",
            CronRunStatus::Ok => "ok",
            CronRunStatus::Error => "error",
            CronRunStatus::Skipped => "skipped",
            CronRunStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(text: &str) -> Option<CronRunStatus> {
        Some(match text {
            "running" => CronRunStatus::Running,
            "ok" => CronRunStatus::Ok,
            "error" => CronRunStatus::Error,
            "skipped" => CronRunStatus::Skipped,
            "interrupted" => CronRunStatus::Interrupted,
            _ => return None,
        })
    }
}

/// One row of `cron_run_receipts`: a run that started (and maybe finished).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronRunReceipt {
    /// The run id.
    pub receipt_id: String,
    pub job_id: String,
    pub agent_id: Option<String>,
    pub config_revision: String,
    /// `schedule`, `catch-up`, `manual`, `wake`.
    pub trigger: String,
    /// The scheduled occurrence this run serves (`None` for manual runs).
    pub scheduled_for_ms: Option<i64>,
    pub status: CronRunStatus,
    pub owner_pid: i64,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub delivery: CronRunDelivery,
}

/// What became of a run's result (the reference's run-log delivery fields). All `None` while
/// running and for runs recorded before delivery was tracked. The values are owned by
/// pincer-automations; the schema's CHECKs keep them to the reference's vocabularies.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CronRunDelivery {
    /// `delivered`, `not-delivered`, `not-requested` or `unknown`.
    pub status: Option<String>,
    pub error: Option<String>,
    /// Why nothing was delivered on purpose: `empty`, `silent`, `heartbeat`,
    /// `channel_transform`.
    pub suppression_reason: Option<String>,
    /// `succeeded`, `failed` or `unknown`.
    pub completion_status: Option<String>,
}

/// How a finished run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronRunFinish {
    pub status: CronRunStatus,
    pub finished_at_ms: i64,
    pub summary: Option<String>,
    pub error: Option<String>,
    pub delivery: CronRunDelivery,
}

/// Sort order of run history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortDir {
    /// Newest first.
    #[default]
    Desc,
    Asc,
}

/// A page of run history (`cron.runs`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CronRunQuery {
    /// Only this job's runs (`scope: "job"`); all jobs when `None`.
    pub job_id: Option<String>,
    pub run_id: Option<String>,
    pub agent_id: Option<String>,
    /// Only these statuses (all when empty).
    pub statuses: Vec<CronRunStatus>,
    /// Only these delivery statuses (all when empty); a run without one counts as
    /// `not-requested`, as in the reference.
    pub delivery_statuses: Vec<String>,
    /// Page size (clamped to 1..=200).
    pub limit: usize,
    pub offset: usize,
    pub sort: SortDir,
}

/// A page of receipts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CronRunPage {
    pub runs: Vec<CronRunReceipt>,
    pub total: usize,
    pub has_more: bool,
}

/// Monitor scratch of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronScratch {
    pub job_id: String,
    pub content: String,
    pub revision: i64,
    pub updated_at_ms: i64,
}

/// Largest scratch text (bytes).
pub const MAX_SCRATCH_BYTES: usize = 262_144;

const JOB_COLUMNS: &str = "job_id, declaration_key, agent_id, name, enabled, payload_kind, \
     job_json, state_json, next_run_at_ms, config_revision, created_at_ms, updated_at_ms";

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<CronJobRow> {
    Ok(CronJobRow {
        job_id: r.get(0)?,
        declaration_key: r.get(1)?,
        agent_id: r.get(2)?,
        name: r.get(3)?,
        enabled: r.get::<_, i64>(4)? != 0,
        payload_kind: r.get(5)?,
        job_json: r.get(6)?,
        state_json: r.get(7)?,
        next_run_at_ms: r.get(8)?,
        config_revision: r.get(9)?,
        created_at_ms: r.get(10)?,
        updated_at_ms: r.get(11)?,
    })
}

const RECEIPT_COLUMNS: &str = "receipt_id, job_id, agent_id, config_revision, run_trigger, \
     scheduled_for_ms, status, owner_pid, started_at_ms, finished_at_ms, summary, error_text, \
     delivery_status, delivery_error, delivery_suppression_reason, completion_status";

fn receipt_from_row(r: &Row<'_>) -> rusqlite::Result<CronRunReceipt> {
    let status: String = r.get(6)?;
    Ok(CronRunReceipt {
        receipt_id: r.get(0)?,
        job_id: r.get(1)?,
        agent_id: r.get(2)?,
        config_revision: r.get(3)?,
        trigger: r.get(4)?,
        scheduled_for_ms: r.get(5)?,
        // The CHECK constraint keeps unknown values out; map defensively anyway.
        status: CronRunStatus::parse(&status).unwrap_or(CronRunStatus::Error),
        owner_pid: r.get(7)?,
        started_at_ms: r.get(8)?,
        finished_at_ms: r.get(9)?,
        summary: r.get(10)?,
        error: r.get(11)?,
        delivery: CronRunDelivery {
            status: r.get(12)?,
            error: r.get(13)?,
            suppression_reason: r.get(14)?,
            completion_status: r.get(15)?,
        },
    })
}

fn load_job(conn: &Connection, job_id: &str) -> Result<Option<CronJobRow>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM cron_jobs WHERE job_id = ?1"
        ))?
        .query_row([job_id], job_from_row)
        .optional()?)
}

fn load_job_by_declaration(conn: &Connection, key: &str) -> Result<Option<CronJobRow>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {JOB_COLUMNS} FROM cron_jobs WHERE declaration_key = ?1"
        ))?
        .query_row([key], job_from_row)
        .optional()?)
}

/// Jobs whose declaration key starts with `prefix` (a range on the declaration-key index:
/// only system jobs are read, however many user jobs exist).
fn load_declared(conn: &Connection, prefix: &str) -> Result<Vec<CronJobRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM cron_jobs WHERE declaration_key >= ?1 \
         AND substr(declaration_key, 1, length(?1)) = ?1 ORDER BY declaration_key"
    ))?;
    let rows = stmt.query_map([prefix], job_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn load_jobs(conn: &Connection) -> Result<Vec<CronJobRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {JOB_COLUMNS} FROM cron_jobs ORDER BY created_at_ms, job_id"
    ))?;
    let rows = stmt.query_map([], job_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn running_receipt(conn: &Connection, job_id: &str) -> Result<Option<CronRunReceipt>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {RECEIPT_COLUMNS} FROM cron_run_receipts \
             WHERE job_id = ?1 AND status = 'running'"
        ))?
        .query_row([job_id], receipt_from_row)
        .optional()?)
}

fn load_receipt(conn: &Connection, receipt_id: &str) -> Result<Option<CronRunReceipt>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {RECEIPT_COLUMNS} FROM cron_run_receipts WHERE receipt_id = ?1"
        ))?
        .query_row([receipt_id], receipt_from_row)
        .optional()?)
}

fn running_receipts(conn: &Connection) -> Result<Vec<CronRunReceipt>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {RECEIPT_COLUMNS} FROM cron_run_receipts WHERE status = 'running' \
         ORDER BY started_at_ms, receipt_id"
    ))?;
    let rows = stmt.query_map([], receipt_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn query_runs(conn: &Connection, q: &CronRunQuery) -> Result<CronRunPage> {
    let mut clauses: Vec<String> = Vec::new();
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(job) = &q.job_id {
        args.push(job.clone().into());
        clauses.push(format!("job_id = ?{}", args.len()));
    }
    if let Some(run) = &q.run_id {
        args.push(run.clone().into());
        clauses.push(format!("receipt_id = ?{}", args.len()));
    }
    if let Some(agent) = &q.agent_id {
        args.push(agent.clone().into());
        clauses.push(format!("agent_id = ?{}", args.len()));
    }
    if !q.statuses.is_empty() {
        let mut marks = Vec::new();
        for s in &q.statuses {
            args.push(s.as_str().to_string().into());
            marks.push(format!("?{}", args.len()));
        }
        clauses.push(format!("status IN ({})", marks.join(", ")));
    }
    if !q.delivery_statuses.is_empty() {
        let mut marks = Vec::new();
        for s in &q.delivery_statuses {
            args.push(s.clone().into());
            marks.push(format!("?{}", args.len()));
        }
        clauses.push(format!(
            "coalesce(delivery_status, 'not-requested') IN ({})",
            marks.join(", ")
        ));
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    let total: i64 = conn.query_row(
        &format!("SELECT count(*) FROM cron_run_receipts {filter}"),
        params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    let limit = q.limit.clamp(1, 200);
    let dir = match q.sort {
        SortDir::Desc => "DESC",
        SortDir::Asc => "ASC",
    };
    let mut page_args = args.clone();
    page_args.push((limit as i64).into());
    let limit_mark = page_args.len();
    page_args.push((q.offset as i64).into());
    let offset_mark = page_args.len();
    let mut stmt = conn.prepare(&format!(
        "SELECT {RECEIPT_COLUMNS} FROM cron_run_receipts {filter} \
         ORDER BY started_at_ms {dir}, receipt_id {dir} LIMIT ?{limit_mark} OFFSET ?{offset_mark}"
    ))?;
    let runs = stmt
        .query_map(params_from_iter(page_args.iter()), receipt_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total = usize::try_from(total).unwrap_or(0);
    let has_more = q.offset + runs.len() < total;
    Ok(CronRunPage {
        runs,
        total,
        has_more,
    })
}

fn load_scratch(conn: &Connection, job_id: &str) -> Result<Option<CronScratch>> {
    Ok(conn
        .prepare_cached(
            "SELECT job_id, content, revision, updated_at_ms FROM cron_job_scratch WHERE job_id = ?1",
        )?
        .query_row([job_id], |r| {
            Ok(CronScratch {
                job_id: r.get(0)?,
                content: r.get(1)?,
                revision: r.get(2)?,
                updated_at_ms: r.get(3)?,
            })
        })
        .optional()?)
}

/// The automation tables inside one writer transaction.
pub struct CronTx<'a> {
    conn: &'a Connection,
}

impl CronTx<'_> {
    pub fn job(&self, job_id: &str) -> Result<Option<CronJobRow>> {
        load_job(self.conn, job_id)
    }

    pub fn job_by_declaration(&self, key: &str) -> Result<Option<CronJobRow>> {
        load_job_by_declaration(self.conn, key)
    }

    pub fn jobs(&self) -> Result<Vec<CronJobRow>> {
        load_jobs(self.conn)
    }

    /// Jobs whose declaration key starts with `prefix` (system jobs of one family).
    pub fn declared_jobs(&self, prefix: &str) -> Result<Vec<CronJobRow>> {
        load_declared(self.conn, prefix)
    }

    /// Inserts or replaces a job row.
    pub fn put_job(&mut self, j: &CronJobRow) -> Result<()> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO cron_jobs ({JOB_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
                 ON CONFLICT (job_id) DO UPDATE SET declaration_key = excluded.declaration_key, \
                 agent_id = excluded.agent_id, name = excluded.name, enabled = excluded.enabled, \
                 payload_kind = excluded.payload_kind, job_json = excluded.job_json, \
                 state_json = excluded.state_json, next_run_at_ms = excluded.next_run_at_ms, \
                 config_revision = excluded.config_revision, created_at_ms = excluded.created_at_ms, \
                 updated_at_ms = excluded.updated_at_ms"
            ))?
            .execute(params![
                j.job_id,
                j.declaration_key,
                j.agent_id,
                j.name,
                i64::from(j.enabled),
                j.payload_kind,
                j.job_json,
                j.state_json,
                j.next_run_at_ms,
                j.config_revision,
                j.created_at_ms,
                j.updated_at_ms,
            ])?;
        Ok(())
    }

    /// Replaces only the runtime state (and its `next_run_at_ms` projection) of a job;
    /// returns whether the job exists.
    pub fn put_state(
        &mut self,
        job_id: &str,
        state_json: &str,
        next_run_at_ms: Option<i64>,
    ) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached(
                "UPDATE cron_jobs SET state_json = ?2, next_run_at_ms = ?3 WHERE job_id = ?1",
            )?
            .execute(params![job_id, state_json, next_run_at_ms])?;
        Ok(n > 0)
    }

    /// Removes a job and its scratch (its run history stays); returns whether it existed.
    pub fn delete_job(&mut self, job_id: &str) -> Result<bool> {
        self.conn
            .prepare_cached("DELETE FROM cron_job_scratch WHERE job_id = ?1")?
            .execute([job_id])?;
        let n = self
            .conn
            .prepare_cached("DELETE FROM cron_jobs WHERE job_id = ?1")?
            .execute([job_id])?;
        Ok(n > 0)
    }

    /// The job's `running` receipt, if a run is in progress.
    pub fn running_receipt(&self, job_id: &str) -> Result<Option<CronRunReceipt>> {
        running_receipt(self.conn, job_id)
    }

    pub fn receipt(&self, receipt_id: &str) -> Result<Option<CronRunReceipt>> {
        load_receipt(self.conn, receipt_id)
    }

    /// Every `running` receipt, oldest first.
    pub fn running_receipts(&self) -> Result<Vec<CronRunReceipt>> {
        running_receipts(self.conn)
    }

    /// Records that a run starts. Fails with [`StoreError::Rejected`] when the job already
    /// has a `running` receipt (one run per job at a time).
    pub fn insert_receipt(&mut self, r: &CronRunReceipt) -> Result<()> {
        let result = self
            .conn
            .prepare_cached(&format!(
                "INSERT INTO cron_run_receipts ({RECEIPT_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)"
            ))?
            .execute(params![
                r.receipt_id,
                r.job_id,
                r.agent_id,
                r.config_revision,
                r.trigger,
                r.scheduled_for_ms,
                r.status.as_str(),
                r.owner_pid,
                r.started_at_ms,
                r.finished_at_ms,
                r.summary,
                r.error,
                r.delivery.status,
                r.delivery.error,
                r.delivery.suppression_reason,
                r.delivery.completion_status,
            ]);
        match result {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::Rejected(format!(
                    "automation {} already has a run in progress (or run id {} is taken)",
                    r.job_id, r.receipt_id
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Moves a `running` receipt to a terminal status; returns whether it was running.
    pub fn finish_receipt(&mut self, receipt_id: &str, finish: &CronRunFinish) -> Result<bool> {
        if finish.status == CronRunStatus::Running {
            return Err(StoreError::Rejected(
                "a run cannot finish with status running".into(),
            ));
        }
        let n = self
            .conn
            .prepare_cached(
                "UPDATE cron_run_receipts SET status = ?2, finished_at_ms = ?3, summary = ?4, \
                 error_text = ?5, delivery_status = ?6, delivery_error = ?7, \
                 delivery_suppression_reason = ?8, completion_status = ?9 \
                 WHERE receipt_id = ?1 AND status = 'running'",
            )?
            .execute(params![
                receipt_id,
                finish.status.as_str(),
                finish.finished_at_ms,
                finish.summary,
                finish.error,
                finish.delivery.status,
                finish.delivery.error,
                finish.delivery.suppression_reason,
                finish.delivery.completion_status,
            ])?;
        Ok(n > 0)
    }

    /// Drops terminal receipts that finished before `before_ms`, and keeps at most
    /// `keep_per_job` newest terminal receipts per job; returns how many were removed.
    pub fn prune_runs(&mut self, before_ms: i64, keep_per_job: usize) -> Result<usize> {
        let old = self
            .conn
            .prepare_cached(
                "DELETE FROM cron_run_receipts WHERE status != 'running' AND finished_at_ms < ?1",
            )?
            .execute([before_ms])?;
        let excess = self
            .conn
            .prepare_cached(
                "DELETE FROM cron_run_receipts WHERE receipt_id IN (SELECT receipt_id FROM ( \
                 SELECT receipt_id, row_number() OVER (PARTITION BY job_id \
                 ORDER BY started_at_ms DESC, receipt_id DESC) AS n \
                 FROM cron_run_receipts WHERE status != 'running') WHERE n > ?1)",
            )?
            .execute([keep_per_job as i64])?;
        Ok(old + excess)
    }

    pub fn scratch(&self, job_id: &str) -> Result<Option<CronScratch>> {
        load_scratch(self.conn, job_id)
    }

    /// Replaces (`Some`) or removes (`None`) a job's scratch. With `expected_revision`, fails
    /// unless the current revision matches (0 = "no scratch yet"). Returns the new revision
    /// (0 after a removal).
    pub fn set_scratch(
        &mut self,
        job_id: &str,
        content: Option<&str>,
        expected_revision: Option<i64>,
        now_ms: i64,
    ) -> Result<i64> {
        if load_job(self.conn, job_id)?.is_none() {
            return Err(StoreError::Rejected(format!(
                "no automation with id {job_id}"
            )));
        }
        let current = load_scratch(self.conn, job_id)?;
        let current_revision = current.as_ref().map_or(0, |s| s.revision);
        if let Some(expected) = expected_revision {
            if expected != current_revision {
                return Err(StoreError::Rejected(format!(
                    "scratch of {job_id} is at revision {current_revision}, not the expected {expected}"
                )));
            }
        }
        match content {
            Some(text) => {
                if text.len() > MAX_SCRATCH_BYTES {
                    return Err(StoreError::Rejected(format!(
                        "scratch is {} bytes; the limit is {MAX_SCRATCH_BYTES}",
                        text.len()
                    )));
                }
                let revision = current_revision + 1;
                self.conn
                    .prepare_cached(
                        "INSERT INTO cron_job_scratch (job_id, content, revision, updated_at_ms) \
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT (job_id) DO UPDATE SET \
                         content = excluded.content, revision = excluded.revision, \
                         updated_at_ms = excluded.updated_at_ms",
                    )?
                    .execute(params![job_id, text, revision, now_ms])?;
                Ok(revision)
            }
            None => {
                self.conn
                    .prepare_cached("DELETE FROM cron_job_scratch WHERE job_id = ?1")?
                    .execute([job_id])?;
                Ok(0)
            }
        }
    }
}

type AnyBox = Box<dyn Any + Send>;
pub(crate) type CronFn = Box<dyn FnOnce(&mut CronTx<'_>) -> Result<AnyBox> + Send>;

/// Runs a cron closure on the writer's connection (called by the writer thread).
pub(crate) fn run_cron(conn: &Connection, f: CronFn) -> Result<AnyBox> {
    let mut tx = CronTx { conn };
    f(&mut tx)
}

impl Store {
    /// Atomic read-modify-write of the automation tables on the writer thread. Resolves
    /// after `COMMIT`; an `Err` from `f` rolls its writes back. `f` must be quick.
    pub async fn cron_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut CronTx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let boxed: CronFn = Box::new(move |tx| f(tx).map(|v| Box::new(v) as AnyBox));
        let out = self.submit(|ack| Op::Cron { f: boxed, ack }).await?;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::Rejected("cron_write: result type mismatch".into()))
    }

    /// Every job row, oldest first.
    pub async fn cron_jobs(&self) -> Result<Vec<CronJobRow>> {
        self.read(load_jobs).await
    }

    pub async fn cron_job(&self, job_id: &str) -> Result<Option<CronJobRow>> {
        let id = job_id.to_string();
        self.read(move |c| load_job(c, &id)).await
    }

    /// Streams the scheduler's index columns of every job through `f` without loading
    /// definitions (cheap even for many thousands of jobs).
    pub async fn cron_index<T: Send + 'static>(
        &self,
        mut f: impl FnMut(CronIndexRow<'_>) -> T + Send + 'static,
    ) -> Result<Vec<T>> {
        self.read(move |c| {
            let mut stmt =
                c.prepare_cached("SELECT job_id, enabled, next_run_at_ms FROM cron_jobs")?;
            let mut rows = stmt.query([])?;
            let mut out = Vec::new();
            while let Some(r) = rows.next()? {
                let id: String = r.get(0)?;
                let enabled = r.get::<_, i64>(1)? != 0;
                let next: Option<i64> = r.get(2)?;
                out.push(f(CronIndexRow {
                    job_id: &id,
                    enabled,
                    next_run_at_ms: next,
                }));
            }
            Ok(out)
        })
        .await
    }

    /// `cron.runs`: a page of run receipts.
    pub async fn cron_runs(&self, query: CronRunQuery) -> Result<CronRunPage> {
        self.read(move |c| query_runs(c, &query)).await
    }

    pub async fn cron_run(&self, receipt_id: &str) -> Result<Option<CronRunReceipt>> {
        let id = receipt_id.to_string();
        self.read(move |c| load_receipt(c, &id)).await
    }

    /// `cron.scratch.get`.
    pub async fn cron_scratch(&self, job_id: &str) -> Result<Option<CronScratch>> {
        let id = job_id.to_string();
        self.read(move |c| load_scratch(c, &id)).await
    }
}
