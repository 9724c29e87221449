//! Exec approvals (migration 0006): the approvals document and the approval requests.
//!
//! The store keeps records only; the policy (who may decide, what a decision means, the
//! document's shape) lives in the gateway and `pincer-tools`. Every state change is a single
//! conditional write on the writer thread, so "resolve only if still pending" cannot race
//! with an expiry or a second resolver.

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde_json::Value;

use crate::error::{Result, StoreError};
use crate::Store;

/// Where an approval request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApprovalStatus {
    Pending,
    Allowed,
    Denied,
    Expired,
    Cancelled,
}

impl ApprovalStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Allowed => "allowed",
            Self::Denied => "denied",
            Self::Expired => "expired",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "allowed" => Self::Allowed,
            "denied" => Self::Denied,
            "expired" => Self::Expired,
            "cancelled" => Self::Cancelled,
            _ => Self::Pending,
        }
    }
}

/// One approval request and, once decided, its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalRecord {
    pub id: String,
    pub status: ApprovalStatus,
    /// The `request` object of `exec.approval.requested`.
    pub request: Value,
    pub agent_id: Option<String>,
    pub session_key: Option<String>,
    pub run_id: Option<String>,
    pub tool_call_id: Option<String>,
    /// The connection that asked (`exec.approval.request` over WS), if any.
    pub requested_by_conn: Option<u64>,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    /// `allow-once` | `allow-always` | `deny`.
    pub decision: Option<String>,
    /// `user` | `timeout` | `no-approval-route` | `run-aborted` | `gateway-restart`.
    pub terminal_reason: Option<String>,
    pub resolved_at_ms: Option<i64>,
    pub resolved_by: Option<String>,
}

impl ApprovalRecord {
    /// A new pending record.
    pub fn pending(id: &str, request: Value, created_at_ms: i64, expires_at_ms: i64) -> Self {
        let text = |k: &str| request.get(k).and_then(Value::as_str).map(str::to_owned);
        ApprovalRecord {
            id: id.to_owned(),
            status: ApprovalStatus::Pending,
            agent_id: text("agentId"),
            session_key: text("sessionKey"),
            run_id: text("runId"),
            tool_call_id: text("toolCallId"),
            request,
            requested_by_conn: None,
            created_at_ms,
            expires_at_ms,
            decision: None,
            terminal_reason: None,
            resolved_at_ms: None,
            resolved_by: None,
        }
    }
}

/// How a pending approval ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalFinish {
    pub status: ApprovalStatus,
    pub decision: Option<String>,
    pub terminal_reason: String,
    pub resolved_by: Option<String>,
    pub at_ms: i64,
}

/// What [`Store::finish_approval`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum FinishOutcome {
    /// It was pending and is now finished as asked.
    Finished(ApprovalRecord),
    /// It had already finished (the stored outcome).
    AlreadyFinished(ApprovalRecord),
    NotFound,
}

const COLUMNS: &str = "approval_id, status, request_json, agent_id, session_key, run_id, \
     tool_call_id, requested_by_conn, created_at_ms, expires_at_ms, decision, terminal_reason, \
     resolved_at_ms, resolved_by";

fn from_row(r: &Row<'_>) -> rusqlite::Result<ApprovalRecord> {
    let request: String = r.get(2)?;
    Ok(ApprovalRecord {
        id: r.get(0)?,
        status: ApprovalStatus::parse(&r.get::<_, String>(1)?),
        request: serde_json::from_str(&request).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, Box::new(e))
        })?,
        agent_id: r.get(3)?,
        session_key: r.get(4)?,
        run_id: r.get(5)?,
        tool_call_id: r.get(6)?,
        requested_by_conn: r.get::<_, Option<i64>>(7)?.map(|c| c as u64),
        created_at_ms: r.get(8)?,
        expires_at_ms: r.get(9)?,
        decision: r.get(10)?,
        terminal_reason: r.get(11)?,
        resolved_at_ms: r.get(12)?,
        resolved_by: r.get(13)?,
    })
}

fn by_id(conn: &Connection, id: &str) -> Result<Option<ApprovalRecord>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM exec_approvals WHERE approval_id = ?1"
        ))?
        .query_row([id], from_row)
        .optional()?)
}

const CONFIG_KEY: &str = "default";

impl Store {
    /// Stores a new pending approval (durable before anyone is told about it). An id that
    /// already exists is refused.
    pub async fn insert_approval(&self, record: ApprovalRecord) -> Result<()> {
        self.write_with(move |c| {
            if by_id(c, &record.id)?.is_some() {
                return Err(StoreError::Rejected(format!(
                    "approval id {} already exists",
                    record.id
                )));
            }
            let request =
                serde_json::to_string(&record.request).map_err(|source| StoreError::Serialize {
                    what: "approval request",
                    source,
                })?;
            c.prepare_cached(&format!(
                "INSERT INTO exec_approvals ({COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
            ))?
            .execute(params![
                record.id,
                record.status.as_str(),
                request,
                record.agent_id,
                record.session_key,
                record.run_id,
                record.tool_call_id,
                record.requested_by_conn.map(|c| c as i64),
                record.created_at_ms,
                record.expires_at_ms,
                record.decision,
                record.terminal_reason,
                record.resolved_at_ms,
                record.resolved_by,
            ])?;
            Ok(())
        })
        .await
    }

    /// Finishes `id` if it is still pending (one conditional write, so a decision and an
    /// expiry cannot both win).
    pub async fn finish_approval(&self, id: &str, finish: ApprovalFinish) -> Result<FinishOutcome> {
        let id = id.to_owned();
        self.write_with(move |c| {
            let Some(current) = by_id(c, &id)? else {
                return Ok(FinishOutcome::NotFound);
            };
            if current.status != ApprovalStatus::Pending {
                return Ok(FinishOutcome::AlreadyFinished(current));
            }
            c.prepare_cached(
                "UPDATE exec_approvals SET status = ?2, decision = ?3, terminal_reason = ?4, \
                 resolved_by = ?5, resolved_at_ms = ?6 \
                 WHERE approval_id = ?1 AND status = 'pending'",
            )?
            .execute(params![
                id,
                finish.status.as_str(),
                finish.decision,
                finish.terminal_reason,
                finish.resolved_by,
                finish.at_ms.max(current.created_at_ms),
            ])?;
            Ok(FinishOutcome::Finished(by_id(c, &id)?.unwrap_or(current)))
        })
        .await
    }

    /// Closes every pending approval (at start-up: whoever waited for them is gone) with
    /// `terminal_reason`; returns how many.
    pub async fn close_pending_approvals(
        &self,
        terminal_reason: &str,
        at_ms: i64,
    ) -> Result<usize> {
        let reason = terminal_reason.to_owned();
        self.write_with(move |c| {
            Ok(c.prepare_cached(
                "UPDATE exec_approvals SET status = 'cancelled', terminal_reason = ?1, \
                 resolved_at_ms = max(?2, created_at_ms) WHERE status = 'pending'",
            )?
            .execute(params![reason, at_ms])?)
        })
        .await
    }

    /// Deletes finished approvals resolved before `before_ms`; returns how many.
    pub async fn prune_approvals(&self, before_ms: i64) -> Result<usize> {
        self.write_with(move |c| {
            Ok(c.prepare_cached(
                "DELETE FROM exec_approvals WHERE status <> 'pending' AND resolved_at_ms < ?1",
            )?
            .execute([before_ms])?)
        })
        .await
    }

    pub async fn get_approval(&self, id: &str) -> Result<Option<ApprovalRecord>> {
        let id = id.to_owned();
        self.read(move |c| by_id(c, &id)).await
    }

    /// Pending approvals, oldest first.
    pub async fn list_pending_approvals(&self) -> Result<Vec<ApprovalRecord>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM exec_approvals WHERE status = 'pending' \
                 ORDER BY created_at_ms, approval_id"
            ))?;
            let rows = stmt.query_map([], from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    /// The stored approvals document (raw JSON) and when it was last written.
    pub async fn approvals_document(&self) -> Result<Option<(String, i64)>> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT raw_json, updated_at_ms FROM exec_approvals_config WHERE config_key = ?1",
            )?
            .query_row([CONFIG_KEY], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
        })
        .await
    }

    /// Read-modify-write of the approvals document on the writer thread: `f` gets the stored
    /// raw JSON (if any) and returns the new one, or `None` to leave it as it is. Returns what
    /// is stored afterwards. An `Err` from `f` changes nothing.
    pub async fn update_approvals_document(
        &self,
        at_ms: i64,
        f: impl FnOnce(Option<String>) -> Result<Option<String>> + Send + 'static,
    ) -> Result<Option<String>> {
        self.write_with(move |c| {
            let current: Option<String> = c
                .prepare_cached("SELECT raw_json FROM exec_approvals_config WHERE config_key = ?1")?
                .query_row([CONFIG_KEY], |r| r.get(0))
                .optional()?;
            match f(current.clone())? {
                None => Ok(current),
                Some(raw) => {
                    c.prepare_cached(
                        "INSERT INTO exec_approvals_config (config_key, raw_json, updated_at_ms) \
                         VALUES (?1, ?2, ?3) ON CONFLICT(config_key) DO UPDATE SET \
                         raw_json = excluded.raw_json, updated_at_ms = excluded.updated_at_ms",
                    )?
                    .execute(params![CONFIG_KEY, raw, at_ms])?;
                    Ok(Some(raw))
                }
            }
        })
        .await
    }
}
