//! Exec approvals in the gateway (runtime spec §7.3, protocol §5.2 "Exec approvals", §6):
//! the pending approvals, their deadlines, the events, and the approvals document.
//!
//! One [`ApprovalService`] per gateway. It is at the same time:
//! - the agent's [`ApprovalHost`] (the `exec` tool asks, then waits for a decision),
//! - the agent's [`ApprovalsStore`] (the approvals document with allowlists and allow-always
//!   grants, persisted in SQLite),
//! - the engine behind `exec.approval.*` / `exec.approvals.*` (`methods::approvals`).
//!
//! Lifecycle of an approval: [`ApprovalService::create`] stores it (durable before anyone is
//! told), sends `exec.approval.requested` to the approval-capable operator connections and arms
//! its deadline. It ends exactly once (a conditional write in the store): decided by an
//! operator (`exec.approval.resolve`), expired at its deadline, closed because the waiting tool
//! call went away (run aborted), or closed at the next start (gateway restart). Every end sends
//! `exec.approval.resolved` to the same audience and wakes the waiters.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use pincer_protocol::connect::{ClientId, Role};
use pincer_protocol::errors::ErrorShape;
use pincer_protocol::scopes;
use pincer_store::{ApprovalFinish, ApprovalRecord, ApprovalStatus, FinishOutcome, Store};
use pincer_tools::exec::approvals::{AllowlistEntry, ApprovalsFile, ApprovalsStore};
use pincer_tools::host::{
    ApprovalDecision, ApprovalHost, ApprovalTicket, ExecApprovalRequest, HostError,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::{watch, OnceCell};

use crate::events::{EventBus, PublishOpts, Target};
use crate::registry::{ConnInfo, Registry};
use crate::util::now_ms;

/// Default approval deadline (the reference's 30 minutes).
pub const DEFAULT_TIMEOUT_MS: u64 = 30 * 60 * 1000;
/// Longest deadline accepted.
pub const MAX_TIMEOUT_MS: u64 = 7 * 24 * 3600 * 1000;
/// Finished approvals are kept this long (for repeated resolves, `waitDecision` after the fact).
const KEEP_FINISHED_MS: u64 = 7 * 24 * 3600 * 1000;
/// Most approvals pending at once (a runaway model cannot fill memory with prompts).
pub const MAX_PENDING: usize = 1024;

pub const NOT_FOUND: &str = "unknown or expired approval id";
pub const ALREADY_RESOLVED: &str = "approval already resolved";

/// `INVALID_REQUEST "unknown or expired approval id"`, `details.reason: APPROVAL_NOT_FOUND`.
pub fn not_found() -> ErrorShape {
    ErrorShape::invalid_request(NOT_FOUND).with_details(json!({"reason": "APPROVAL_NOT_FOUND"}))
}

/// `INVALID_REQUEST "approval already resolved"`, `details.reason: APPROVAL_ALREADY_RESOLVED`.
pub fn already_resolved() -> ErrorShape {
    ErrorShape::invalid_request(ALREADY_RESOLVED)
        .with_details(json!({"reason": "APPROVAL_ALREADY_RESOLVED"}))
}

/// How an approval ended, as seen by its waiters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ended {
    /// `allow-once` | `allow-always` | `deny`; `None` when nobody decided.
    pub decision: Option<String>,
    pub terminal_reason: String,
}

struct Pending {
    record: ApprovalRecord,
    done: watch::Sender<Option<Ended>>,
}

/// Options of one [`ApprovalService::create`].
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    /// Explicit id (`exec.approval.request` `id`).
    pub id: Option<String>,
    pub timeout_ms: Option<u64>,
    /// The connection that asked; it does not get its own `requested` event.
    pub requester: Option<u64>,
    /// Expire at once when no approval-capable client is connected (the reference's default).
    pub require_route: bool,
}

/// What [`ApprovalService::create`] did.
#[derive(Debug, Clone)]
pub struct Created {
    pub record: ApprovalRecord,
    /// How many operator connections were told.
    pub recipients: usize,
    /// Ended at once (no approval route).
    pub ended: Option<Ended>,
}

/// The gateway's exec approvals.
pub struct ApprovalService {
    store: Store,
    bus: EventBus,
    registry: Arc<Registry>,
    pending: Mutex<HashMap<String, Pending>>,
    /// Pending rows of a previous run are closed before the first new one is created.
    ready: OnceCell<()>,
}

impl std::fmt::Debug for ApprovalService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalService")
            .field("pending", &self.pending.lock().len())
            .finish_non_exhaustive()
    }
}

/// Can `conn` receive and decide exec approvals? Operators with `operator.admin` or
/// `operator.approvals` that are an approval client: the Control UI, the OpenClaw apps, or any
/// client declaring the `approvals` / `exec-approvals` capability (as the reference decides).
pub fn is_approval_client(conn: &ConnInfo) -> bool {
    if conn.role != Role::Operator {
        return false;
    }
    if !(conn.scopes.contains(scopes::ADMIN) || conn.scopes.contains(scopes::APPROVALS)) {
        return false;
    }
    matches!(
        conn.client_id,
        ClientId::ControlUi | ClientId::Macos | ClientId::Ios | ClientId::Android
    ) || conn
        .caps
        .iter()
        .any(|c| c == "approvals" || c == "exec-approvals")
}

/// `sha256` hex of the stored document text (`exec.approvals.get` `hash`, `baseHash`).
pub fn document_hash(raw: &str) -> String {
    Sha256::digest(raw.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn store_err(e: pincer_store::StoreError) -> HostError {
    HostError::Failed(format!("approvals storage failed: {e}"))
}

fn decision_str(d: ApprovalDecision) -> &'static str {
    match d {
        ApprovalDecision::AllowOnce => "allow-once",
        ApprovalDecision::AllowAlways => "allow-always",
        ApprovalDecision::Deny => "deny",
    }
}

fn parse_decision(s: &str) -> Option<ApprovalDecision> {
    match s {
        "allow-once" => Some(ApprovalDecision::AllowOnce),
        "allow-always" => Some(ApprovalDecision::AllowAlways),
        "deny" => Some(ApprovalDecision::Deny),
        _ => None,
    }
}

/// Decisions an operator may give: `allow-always` is not offered when every command asks
/// (`ask: always`) or the requester said it is unavailable.
pub fn allowed_decisions(ask: Option<&str>, unavailable: Option<&Value>) -> Vec<&'static str> {
    let no_always = ask == Some("always")
        || unavailable
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|d| d == "allow-always"));
    if no_always {
        vec!["allow-once", "deny"]
    } else {
        vec!["allow-once", "allow-always", "deny"]
    }
}

/// The `request` object of an agent's exec approval (the reference's field set).
pub fn request_json(r: &ExecApprovalRequest) -> Value {
    json!({
        "command": r.command,
        "commandArgv": if r.command_argv.is_empty() { Value::Null } else { json!(r.command_argv) },
        "cwd": r.cwd,
        "nodeId": null,
        "host": r.host,
        "security": r.security,
        "ask": r.ask,
        "warningText": r.warning_text,
        "allowedDecisions": allowed_decisions(Some(&r.ask), None),
        "agentId": r.agent_id,
        "resolvedPath": r.resolved_path,
        "sessionKey": r.session_key,
        "runId": r.run_id,
        "toolCallId": r.tool_call_id,
    })
}

impl ApprovalService {
    pub fn new(store: Store, registry: Arc<Registry>) -> Arc<ApprovalService> {
        Arc::new(ApprovalService {
            store,
            bus: EventBus::new(Arc::clone(&registry)),
            registry,
            pending: Mutex::new(HashMap::new()),
            ready: OnceCell::new(),
        })
    }

    /// Closes what a previous run left pending (its waiters are gone) and prunes old ones; once.
    async fn ready(&self) {
        self.ready
            .get_or_init(|| async {
                let now = now_ms() as i64;
                match self
                    .store
                    .close_pending_approvals("gateway-restart", now)
                    .await
                {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        closed = n,
                        "exec approvals left pending by the previous run were closed"
                    ),
                    Err(e) => tracing::warn!(error = %e, "could not close stale exec approvals"),
                }
                if let Err(e) = self
                    .store
                    .prune_approvals(now - KEEP_FINISHED_MS as i64)
                    .await
                {
                    tracing::warn!(error = %e, "could not prune old exec approvals");
                }
            })
            .await;
    }

    /// Approval-capable operator connections, except `exclude`.
    fn recipients(&self, exclude: Option<u64>) -> usize {
        let mut n = 0;
        self.registry.for_each(|h| {
            if Some(h.info.id) != exclude && is_approval_client(&h.info) {
                n += 1;
            }
        });
        n
    }

    fn publish(&self, event: &str, payload: &Value, exclude: Option<u64>) {
        let filter = move |c: &ConnInfo| Some(c.id) != exclude && is_approval_client(c);
        self.bus.publish(
            event,
            payload,
            PublishOpts {
                drop_if_slow: true,
                target: Target::Filter(Arc::new(filter)),
                state_version: None,
            },
        );
    }

    /// Registers a pending approval: stored, announced, deadline armed.
    pub async fn create(
        self: &Arc<Self>,
        request: Value,
        opts: CreateOptions,
    ) -> Result<Created, ErrorShape> {
        self.ready().await;
        let timeout_ms = opts
            .timeout_ms
            .unwrap_or(DEFAULT_TIMEOUT_MS)
            .clamp(1, MAX_TIMEOUT_MS);
        let id = match opts.id {
            Some(id) => {
                if self.pending.lock().contains_key(&id) {
                    return Err(ErrorShape::invalid_request("approval id already pending"));
                }
                id
            }
            None => uuid::Uuid::new_v4().to_string(),
        };
        if self.pending.lock().len() >= MAX_PENDING {
            return Err(ErrorShape::unavailable(format!(
                "too many pending exec approvals ({MAX_PENDING}); resolve some first"
            )));
        }
        let created = now_ms() as i64;
        let mut record =
            ApprovalRecord::pending(&id, request, created, created + timeout_ms as i64);
        record.requested_by_conn = opts.requester;
        self.store
            .insert_approval(record.clone())
            .await
            .map_err(|e| match e {
                pincer_store::StoreError::Rejected(m) if m.contains("already exists") => {
                    ErrorShape::invalid_request("approval id already pending")
                }
                e => ErrorShape::unavailable(format!("approval request unavailable: {e}")),
            })?;
        let recipients = self.recipients(opts.requester);
        let (tx, _) = watch::channel(None);
        self.pending.lock().insert(
            id.clone(),
            Pending {
                record: record.clone(),
                done: tx,
            },
        );
        if recipients == 0 && opts.require_route {
            let ended = self
                .finish(
                    &id,
                    ApprovalStatus::Expired,
                    None,
                    "no-approval-route",
                    None,
                )
                .await
                .map_err(|e| ErrorShape::unavailable(e.to_string()))?;
            return Ok(Created {
                record,
                recipients,
                ended: Some(ended),
            });
        }
        self.publish(
            "exec.approval.requested",
            &json!({
                "approvalKind": "exec",
                "id": id,
                "request": record.request,
                "createdAtMs": record.created_at_ms,
                "expiresAtMs": record.expires_at_ms,
            }),
            opts.requester,
        );
        let me = Arc::downgrade(self);
        let deadline = Duration::from_millis(timeout_ms);
        let expiring = id.clone();
        tokio::spawn(async move {
            tokio::time::sleep(deadline).await;
            if let Some(me) = me.upgrade() {
                let _ = me
                    .finish(&expiring, ApprovalStatus::Expired, None, "timeout", None)
                    .await;
            }
        });
        Ok(Created {
            record,
            recipients,
            ended: None,
        })
    }

    /// Ends a pending approval (at most once, whoever comes first), tells its waiters and the
    /// audience. Returns how it ended (the earlier end when it had already ended).
    async fn finish(
        &self,
        id: &str,
        status: ApprovalStatus,
        decision: Option<ApprovalDecision>,
        reason: &str,
        resolved_by: Option<String>,
    ) -> Result<Ended, HostError> {
        let outcome = self
            .store
            .finish_approval(
                id,
                ApprovalFinish {
                    status,
                    decision: decision.map(|d| decision_str(d).to_owned()),
                    terminal_reason: reason.to_owned(),
                    resolved_by: resolved_by.clone(),
                    at_ms: now_ms() as i64,
                },
            )
            .await
            .map_err(store_err)?;
        let record = match outcome {
            FinishOutcome::Finished(r) | FinishOutcome::AlreadyFinished(r) => r,
            FinishOutcome::NotFound => {
                self.pending.lock().remove(id);
                return Err(HostError::NotFound(NOT_FOUND.into()));
            }
        };
        let ended = Ended {
            decision: record.decision.clone(),
            terminal_reason: record
                .terminal_reason
                .clone()
                .unwrap_or_else(|| reason.to_owned()),
        };
        let removed = self.pending.lock().remove(id);
        if let Some(p) = removed {
            let _ = p.done.send(Some(ended.clone()));
            // `no-approval-route` was never announced, so it is not withdrawn either.
            if ended.terminal_reason != "no-approval-route" {
                self.publish(
                    "exec.approval.resolved",
                    &json!({
                        "id": id,
                        "decision": record.decision,
                        "resolvedBy": record.resolved_by,
                        "ts": record.resolved_at_ms.unwrap_or(now_ms() as i64),
                        "request": record.request,
                    }),
                    None,
                );
            }
        }
        Ok(ended)
    }

    /// The pending approval `input` names: its exact id, or a unique prefix of a pending id.
    fn lookup_pending(&self, input: &str) -> Result<Option<String>, ErrorShape> {
        let pending = self.pending.lock();
        if pending.contains_key(input) {
            return Ok(Some(input.to_owned()));
        }
        if input.len() < 4 {
            return Ok(None);
        }
        let matches: Vec<&String> = pending.keys().filter(|k| k.starts_with(input)).collect();
        match matches.len() {
            0 => Ok(None),
            1 => Ok(Some(matches[0].clone())),
            _ => Err(ErrorShape::invalid_request(format!(
                "approval id prefix {input:?} is ambiguous; use the full id"
            ))),
        }
    }

    /// `exec.approval.resolve`: `Ok(())` when the approval now carries `decision` (also when it
    /// already did); [`NOT_FOUND`] / [`ALREADY_RESOLVED`] otherwise.
    pub async fn resolve(
        &self,
        input: &str,
        decision: ApprovalDecision,
        resolved_by: Option<String>,
    ) -> Result<String, ErrorShape> {
        let id = self
            .lookup_pending(input.trim())?
            .unwrap_or_else(|| input.trim().to_owned());
        let status = match decision {
            ApprovalDecision::Deny => ApprovalStatus::Denied,
            _ => ApprovalStatus::Allowed,
        };
        let was_pending = self.pending.lock().contains_key(&id);
        let ended = match self
            .finish(&id, status, Some(decision), "user", resolved_by)
            .await
        {
            Ok(e) => e,
            Err(HostError::NotFound(_)) => return Err(not_found()),
            Err(e) => return Err(ErrorShape::unavailable(e.to_string())),
        };
        let wanted = decision_str(decision);
        if ended.decision.as_deref() == Some(wanted)
            && (was_pending || ended.terminal_reason == "user")
        {
            return Ok(id);
        }
        if ended.terminal_reason == "user" {
            Err(already_resolved())
        } else {
            // Expired, closed at restart, or its run went away: as good as unknown.
            Err(not_found())
        }
    }

    /// A pending approval's record.
    pub fn pending_record(&self, input: &str) -> Result<ApprovalRecord, ErrorShape> {
        let id = self.lookup_pending(input.trim())?.ok_or_else(not_found)?;
        self.pending
            .lock()
            .get(&id)
            .map(|p| p.record.clone())
            .ok_or_else(not_found)
    }

    /// Every pending approval, oldest first.
    pub fn list_pending(&self) -> Vec<ApprovalRecord> {
        let mut v: Vec<ApprovalRecord> = self
            .pending
            .lock()
            .values()
            .map(|p| p.record.clone())
            .collect();
        v.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        v
    }

    /// Waits until `id` ends (at most `limit`); `Ok(None)` when it is still pending then.
    /// An approval that already ended answers at once from the store.
    pub async fn wait(
        &self,
        input: &str,
        limit: Option<Duration>,
    ) -> Result<(ApprovalRecord, Option<Ended>), ErrorShape> {
        let found = self.lookup_pending(input.trim())?;
        let rx = found.as_ref().and_then(|id| {
            self.pending
                .lock()
                .get(id)
                .map(|p| (p.record.clone(), p.done.subscribe()))
        });
        let Some((record, mut rx)) = rx else {
            let stored = self
                .store
                .get_approval(input.trim())
                .await
                .map_err(|e| ErrorShape::unavailable(e.to_string()))?
                .ok_or_else(|| ErrorShape::invalid_request("approval expired or not found"))?;
            let ended = Ended {
                decision: stored.decision.clone(),
                terminal_reason: stored.terminal_reason.clone().unwrap_or_default(),
            };
            return Ok((stored, Some(ended)));
        };
        let wait = rx.wait_for(Option::is_some);
        let ended = match limit {
            Some(l) => match tokio::time::timeout(l, wait).await {
                Ok(Ok(v)) => v.clone(),
                Ok(Err(_)) => None,
                Err(_) => return Ok((record, None)),
            },
            None => wait.await.ok().and_then(|v| v.clone()),
        };
        Ok((record, ended))
    }

    // ---- the approvals document -------------------------------------------------------

    /// The stored document (default when none), its raw text and whether it exists.
    pub async fn document(&self) -> Result<(ApprovalsFile, Option<String>), HostError> {
        let stored = self.store.approvals_document().await.map_err(store_err)?;
        match stored {
            None => Ok((ApprovalsFile::default(), None)),
            Some((raw, _)) => {
                let file: ApprovalsFile = serde_json::from_str(&raw).map_err(|e| {
                    HostError::Failed(format!(
                        "the stored exec approvals document is invalid: {e}"
                    ))
                })?;
                Ok((file, Some(raw)))
            }
        }
    }

    /// `exec.approvals.set`: replaces the document if `base_hash` matches what is stored
    /// (required once a document exists). Returns the stored text.
    pub async fn replace_document(
        &self,
        file: ApprovalsFile,
        base_hash: Option<String>,
    ) -> Result<String, ErrorShape> {
        let raw = serde_json::to_string(&file).map_err(|e| {
            ErrorShape::invalid_request(format!("invalid exec approvals file: {e}"))
        })?;
        let changed = "exec approvals changed since last load; re-run exec.approvals.get and retry";
        let result = self
            .store
            .update_approvals_document(now_ms() as i64, move |current| {
                let reject = |m: &str| Err(pincer_store::StoreError::Rejected(m.to_owned()));
                match (&current, &base_hash) {
                    (None, Some(h)) if *h != document_hash("") => return reject(changed),
                    (Some(_), None) => return reject(
                        "exec approvals base hash required; re-run exec.approvals.get and retry",
                    ),
                    (Some(cur), Some(h)) if document_hash(cur) != *h => return reject(changed),
                    _ => {}
                }
                Ok(Some(raw))
            })
            .await;
        match result {
            Ok(Some(raw)) => Ok(raw),
            Ok(None) => Err(ErrorShape::unavailable("exec approvals were not stored")),
            Err(pincer_store::StoreError::Rejected(m)) => Err(ErrorShape::invalid_request(m)),
            Err(e) => Err(ErrorShape::unavailable(format!(
                "exec approvals storage failed: {e}"
            ))),
        }
    }

    /// Read-modify-write of the parsed document.
    async fn edit_document(
        &self,
        f: impl FnOnce(&mut ApprovalsFile) + Send + 'static,
    ) -> Result<(), HostError> {
        self.store
            .update_approvals_document(now_ms() as i64, move |current| {
                let mut file: ApprovalsFile = match current {
                    None => ApprovalsFile::default(),
                    Some(raw) => serde_json::from_str(&raw).map_err(|e| {
                        pincer_store::StoreError::Rejected(format!(
                            "the stored exec approvals document is invalid: {e}"
                        ))
                    })?,
                };
                f(&mut file);
                serde_json::to_string(&file).map(Some).map_err(|source| {
                    pincer_store::StoreError::Serialize {
                        what: "exec approvals",
                        source,
                    }
                })
            })
            .await
            .map(|_| ())
            .map_err(store_err)
    }
}

/// Ends the approval as `run-aborted` when the waiting tool call goes away before a decision
/// (its run was aborted): nobody would act on a later decision.
struct AbandonGuard {
    service: Option<Arc<ApprovalService>>,
    id: String,
}

impl Drop for AbandonGuard {
    fn drop(&mut self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if let Some(service) = self.service.take() {
            let id = std::mem::take(&mut self.id);
            rt.spawn(async move {
                let _ = service
                    .finish(&id, ApprovalStatus::Cancelled, None, "run-aborted", None)
                    .await;
            });
        }
    }
}

/// The agent's approval host: the exec tool registers a request and waits for its decision.
#[derive(Clone)]
pub struct GatewayApprovalHost(pub Arc<ApprovalService>);

impl GatewayApprovalHost {
    pub fn shared(service: &Arc<ApprovalService>) -> Arc<GatewayApprovalHost> {
        Arc::new(GatewayApprovalHost(Arc::clone(service)))
    }
}

#[async_trait]
impl ApprovalHost for GatewayApprovalHost {
    async fn request(&self, request: ExecApprovalRequest) -> Result<ApprovalTicket, HostError> {
        let created = self
            .0
            .create(
                request_json(&request),
                CreateOptions {
                    timeout_ms: Some(request.timeout_ms.max(1)),
                    require_route: true,
                    ..CreateOptions::default()
                },
            )
            .await
            .map_err(|e| HostError::Failed(e.message))?;
        if created.ended.is_some() {
            return Err(HostError::Unavailable(
                "no operator client that can approve exec requests is connected (open the \
                 Control UI, or connect a client with the exec-approvals capability)"
                    .into(),
            ));
        }
        Ok(ApprovalTicket {
            id: created.record.id.clone(),
            created_at_ms: created.record.created_at_ms as u64,
            expires_at_ms: created.record.expires_at_ms as u64,
        })
    }

    async fn wait_decision(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Option<ApprovalDecision>, HostError> {
        let mut guard = AbandonGuard {
            service: Some(Arc::clone(&self.0)),
            id: id.to_owned(),
        };
        let waited = self.0.wait(id, Some(timeout)).await;
        let ended = match waited {
            Ok((_, Some(ended))) => {
                guard.service = None;
                ended
            }
            Ok((_, None)) => {
                guard.service = None;
                // Our deadline came first: the approval ends here, as a timeout.
                self.0
                    .finish(id, ApprovalStatus::Expired, None, "timeout", None)
                    .await?
            }
            Err(e) => {
                guard.service = None;
                return Err(HostError::NotFound(e.message));
            }
        };
        Ok(ended.decision.as_deref().and_then(parse_decision))
    }
}

#[async_trait]
impl ApprovalsStore for GatewayApprovalHost {
    async fn load(&self) -> Result<ApprovalsFile, HostError> {
        self.0.document().await.map(|(file, _)| file)
    }

    async fn add_allowlist_entry(
        &self,
        agent_id: &str,
        entry: AllowlistEntry,
    ) -> Result<(), HostError> {
        let agent = agent_id.to_owned();
        self.0
            .edit_document(move |file| {
                let list = &mut file.agents.entry(agent).or_default().allowlist;
                // The same grant twice (two approvals of one command) stays one entry.
                if !list.iter().any(|e| {
                    e.pattern == entry.pattern
                        && e.arg_pattern == entry.arg_pattern
                        && e.cwd == entry.cwd
                }) {
                    list.push(entry);
                }
            })
            .await
    }

    async fn touch_entry(
        &self,
        agent_id: &str,
        entry_id: &str,
        used_at_ms: u64,
        resolved_path: Option<&str>,
    ) -> Result<(), HostError> {
        let (agent, entry_id) = (agent_id.to_owned(), entry_id.to_owned());
        let resolved = resolved_path.map(str::to_owned);
        self.0
            .edit_document(move |file| {
                if let Some(e) = file
                    .agents
                    .get_mut(&agent)
                    .and_then(|a| a.allowlist.iter_mut().find(|e| e.id == entry_id))
                {
                    e.last_used_at = Some(used_at_ms);
                    e.last_resolved_path = resolved;
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::registry::tests::info;
    use crate::registry::ConnHandle;

    struct Fixture {
        _dir: tempfile::TempDir,
        service: Arc<ApprovalService>,
        ui: Arc<ConnHandle>,
        plain: Arc<ConnHandle>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store =
            Store::open_in_state_dir(dir.path(), pincer_store::StoreOptions::default()).unwrap();
        let registry = Arc::new(Registry::default());
        let mut ui = info(1, Role::Operator, &[scopes::APPROVALS]);
        ui.caps = vec!["exec-approvals".into()];
        let ui = Arc::new(ConnHandle::new(ui, 1 << 20));
        // Admin, but not an approval client: never sees approval events.
        let plain = Arc::new(ConnHandle::new(
            info(2, Role::Operator, &[scopes::ADMIN]),
            1 << 20,
        ));
        registry.insert(Arc::clone(&ui));
        registry.insert(Arc::clone(&plain));
        Fixture {
            _dir: dir,
            service: ApprovalService::new(store, registry),
            ui,
            plain,
        }
    }

    fn frames(h: &ConnHandle) -> Vec<Value> {
        let mut out = Vec::new();
        h.drain(&mut out, usize::MAX);
        out.into_iter()
            .map(|o| serde_json::from_str(&o.render()).unwrap())
            .collect()
    }

    fn exec_request() -> ExecApprovalRequest {
        ExecApprovalRequest {
            command: "rm -rf build".into(),
            command_argv: vec!["rm".into(), "-rf".into(), "build".into()],
            cwd: "/tmp".into(),
            host: "gateway".into(),
            security: "allowlist".into(),
            ask: "on-miss".into(),
            agent_id: "main".into(),
            session_key: "agent:main:main".into(),
            run_id: Some("run-1".into()),
            tool_call_id: Some("call-1".into()),
            resolved_path: Some("/usr/bin/rm".into()),
            warning_text: None,
            timeout_ms: 60_000,
        }
    }

    #[tokio::test]
    async fn request_announce_resolve_once_and_repeat_rules() {
        let f = fixture();
        let host = GatewayApprovalHost(Arc::clone(&f.service));
        let ticket = host.request(exec_request()).await.unwrap();
        let seen = frames(&f.ui);
        assert_eq!(seen.len(), 1, "{seen:?}");
        assert_eq!(seen[0]["event"], "exec.approval.requested");
        assert_eq!(seen[0]["payload"]["id"], ticket.id.as_str());
        assert_eq!(seen[0]["payload"]["request"]["command"], "rm -rf build");
        assert!(
            frames(&f.plain).is_empty(),
            "only approval clients are told"
        );

        let waiter = {
            let host = host.clone();
            let id = ticket.id.clone();
            tokio::spawn(async move { host.wait_decision(&id, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        // A unique prefix is enough; the same decision again is fine, another one is not.
        let prefix = &ticket.id[..8];
        f.service
            .resolve(prefix, ApprovalDecision::AllowOnce, Some("cli".into()))
            .await
            .unwrap();
        assert_eq!(
            waiter.await.unwrap().unwrap(),
            Some(ApprovalDecision::AllowOnce)
        );
        f.service
            .resolve(&ticket.id, ApprovalDecision::AllowOnce, None)
            .await
            .unwrap();
        let err = f
            .service
            .resolve(&ticket.id, ApprovalDecision::Deny, None)
            .await
            .unwrap_err();
        assert_eq!(err.message, ALREADY_RESOLVED);
        assert_eq!(err.details.unwrap()["reason"], "APPROVAL_ALREADY_RESOLVED");
        let err = f
            .service
            .resolve("no-such-id", ApprovalDecision::Deny, None)
            .await
            .unwrap_err();
        assert_eq!(err.message, NOT_FOUND);
        assert_eq!(err.details.unwrap()["reason"], "APPROVAL_NOT_FOUND");
        let resolved = frames(&f.ui);
        assert_eq!(resolved.len(), 1, "resolved once: {resolved:?}");
        assert_eq!(resolved[0]["event"], "exec.approval.resolved");
        assert_eq!(resolved[0]["payload"]["decision"], "allow-once");
        assert_eq!(resolved[0]["payload"]["resolvedBy"], "cli");
    }

    #[tokio::test]
    async fn an_unanswered_approval_expires_and_then_is_unknown() {
        let f = fixture();
        let host = GatewayApprovalHost(Arc::clone(&f.service));
        let mut req = exec_request();
        req.timeout_ms = 150;
        let ticket = host.request(req).await.unwrap();
        let decision = host
            .wait_decision(&ticket.id, Duration::from_millis(150))
            .await
            .unwrap();
        assert_eq!(decision, None);
        let err = f
            .service
            .resolve(&ticket.id, ApprovalDecision::AllowOnce, None)
            .await
            .unwrap_err();
        assert_eq!(err.message, NOT_FOUND);
        let events: Vec<Value> = frames(&f.ui);
        assert_eq!(events.last().unwrap()["event"], "exec.approval.resolved");
        assert_eq!(events.last().unwrap()["payload"]["decision"], Value::Null);
        assert!(f.service.list_pending().is_empty());
    }

    #[tokio::test]
    async fn without_an_approval_client_the_request_is_refused_at_once() {
        let f = fixture();
        f.service.registry.remove(f.ui.info.id);
        let err = GatewayApprovalHost(Arc::clone(&f.service))
            .request(exec_request())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("no operator client"), "{err}");
        assert!(f.service.list_pending().is_empty());
    }

    #[tokio::test]
    async fn an_abandoned_wait_closes_the_approval() {
        let f = fixture();
        let host = GatewayApprovalHost(Arc::clone(&f.service));
        let ticket = host.request(exec_request()).await.unwrap();
        let wait = host.wait_decision(&ticket.id, Duration::from_secs(30));
        assert!(tokio::time::timeout(Duration::from_millis(20), wait)
            .await
            .is_err());
        for _ in 0..100 {
            if f.service.list_pending().is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(f.service.list_pending().is_empty());
        let stored = f
            .service
            .store
            .get_approval(&ticket.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.terminal_reason.as_deref(), Some("run-aborted"));
    }

    #[tokio::test]
    async fn the_document_keeps_grants_and_guards_with_the_base_hash() {
        let f = fixture();
        let host = GatewayApprovalHost(Arc::clone(&f.service));
        let entry = AllowlistEntry {
            id: "e1".into(),
            pattern: "/usr/bin/make".into(),
            arg_pattern: Some("sha256:argv:x".into()),
            source: Some("allow-always".into()),
            ..AllowlistEntry::default()
        };
        host.add_allowlist_entry("main", entry.clone())
            .await
            .unwrap();
        host.add_allowlist_entry("main", entry).await.unwrap();
        host.touch_entry("main", "e1", 99, Some("/usr/bin/make"))
            .await
            .unwrap();
        let file = host.load().await.unwrap();
        let list = &file.agents["main"].allowlist;
        assert_eq!(list.len(), 1, "the same grant twice is one entry");
        assert_eq!(list[0].last_used_at, Some(99));

        let (_, raw) = f.service.document().await.unwrap();
        let raw = raw.unwrap();
        let err = f
            .service
            .replace_document(ApprovalsFile::default(), None)
            .await
            .unwrap_err();
        assert!(
            err.message.contains("base hash required"),
            "{}",
            err.message
        );
        let err = f
            .service
            .replace_document(ApprovalsFile::default(), Some("stale".into()))
            .await
            .unwrap_err();
        assert!(err.message.contains("changed since last load"));
        f.service
            .replace_document(ApprovalsFile::default(), Some(document_hash(&raw)))
            .await
            .unwrap();
        assert!(host.load().await.unwrap().agents.is_empty());
    }
}
