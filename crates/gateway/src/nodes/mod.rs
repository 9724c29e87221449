//! Device nodes (spec §2.2, §4.6, §5.2 "Nodes"): the registry of connected nodes, the second
//! pairing layer (command-surface approval, [`surface`]), the platform allowlist
//! ([`policy`]), the invoke engine ([`invoke`]) and the agent's `nodes` tool host ([`host`]).
//!
//! A node is a connection with `role: "node"` and a verified device; its node id is the device
//! id. The registry keeps, per connected node, its socket handle, what it declared, what is
//! approved and in effect, and its in-flight invokes. Everything on the invoke path is in
//! memory: no SQL between `node.invoke` and `node.invoke.request`, nor between
//! `node.invoke.result` and the operator's answer.

pub mod host;
pub mod invoke;
pub mod policy;
pub mod surface;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use pincer_store::{NodeMeta, NodePermissions};
use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::registry::{ConnHandle, ConnInfo};

/// What a node has in effect: approved ∩ declared (and allowlisted at connect).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effective {
    pub caps: Vec<String>,
    pub commands: Vec<String>,
    pub permissions: Option<NodePermissions>,
    /// The node has an approved surface (even if empty).
    pub approved: bool,
}

/// What the handshake learned about a node connect (see [`surface::reconcile_on_connect`]).
#[derive(Debug, Clone)]
pub struct NodeConnect {
    pub node_id: String,
    /// Reported metadata (platform and family as pinned/normalised).
    pub meta: NodeMeta,
    pub platform_id: &'static str,
    pub path_env: Option<String>,
    pub declared: policy::Declared,
    pub declared_permissions: Option<NodePermissions>,
    pub effective: Effective,
}

/// What a node answered (`node.invoke.result`).
#[derive(Debug)]
pub struct NodeResult {
    pub ok: bool,
    pub payload: Option<Box<RawValue>>,
    pub payload_json: Option<String>,
    pub error: Option<Value>,
}

impl NodeResult {
    pub fn failure(code: &str, message: impl Into<String>) -> NodeResult {
        NodeResult {
            ok: false,
            payload: None,
            payload_json: None,
            error: Some(serde_json::json!({"code": code, "message": message.into()})),
        }
    }
}

/// How long a dispatched `system.run` may report `exec.*` events.
pub const EXEC_EVENT_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);
/// Dispatched `system.run` runs remembered per node for `exec.*` events.
const MAX_EXEC_RUNS: usize = 256;

/// A dispatched `system.run` whose `exec.*` events the node may report.
struct ExecRun {
    run_id: String,
    session_key: Option<String>,
    at: Instant,
}

struct PendingInvoke {
    command: String,
    tx: oneshot::Sender<NodeResult>,
    caller: Option<u64>,
}

/// Recent input activity a node reported (`node.presence.activity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Activity {
    pub last_active_at_ms: u64,
    pub presence_updated_at_ms: u64,
}

/// One connected node.
pub struct NodeSession {
    pub node_id: String,
    pub conn: Arc<ConnHandle>,
    pub connected_at_ms: u64,
    pub meta: NodeMeta,
    pub platform_id: &'static str,
    pub path_env: Option<String>,
    pub declared: policy::Declared,
    pub declared_permissions: Option<NodePermissions>,
    surface: RwLock<Effective>,
    pending: Mutex<HashMap<String, PendingInvoke>>,
    pub activity: Mutex<Option<Activity>>,
    pub host_stats: Mutex<Option<Value>>,
    exec_runs: Mutex<VecDeque<ExecRun>>,
}

impl std::fmt::Debug for NodeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeSession")
            .field("node_id", &self.node_id)
            .field("conn", &self.conn.info.id)
            .finish_non_exhaustive()
    }
}

impl NodeSession {
    pub fn conn_uid(&self) -> u64 {
        self.conn.info.id
    }

    /// The surface in effect now.
    pub fn effective(&self) -> Effective {
        self.surface.read().clone()
    }

    /// Commands in effect (cheap check without cloning the surface).
    pub fn with_effective<T>(&self, f: impl FnOnce(&Effective) -> T) -> T {
        f(&self.surface.read())
    }

    /// Apply a newly approved surface: in effect = approved ∩ declared.
    pub fn apply_approved(
        &self,
        caps: &[String],
        commands: &[String],
        perms: &Option<NodePermissions>,
    ) {
        let mut s = self.surface.write();
        s.caps = self
            .declared
            .caps
            .iter()
            .filter(|c| caps.contains(c))
            .cloned()
            .collect();
        s.commands = self
            .declared
            .commands
            .iter()
            .filter(|c| commands.contains(c))
            .cloned()
            .collect();
        s.permissions = surface::intersect_permissions(perms, &self.declared_permissions);
        s.approved = true;
    }

    /// Forget the approval (the surface was removed).
    pub fn clear_approved(&self) {
        *self.surface.write() = Effective::default();
    }

    /// Number of invokes waiting for this node.
    pub fn in_flight(&self) -> usize {
        self.pending.lock().len()
    }

    fn add_pending(&self, id: String, p: PendingInvoke) {
        self.pending.lock().insert(id, p);
    }

    fn take_pending(&self, id: &str) -> Option<PendingInvoke> {
        self.pending.lock().remove(id)
    }

    /// Remember a dispatched `system.run` so its `exec.*` events are accepted.
    pub fn remember_exec_run(&self, run_id: &str, session_key: Option<&str>) {
        let mut runs = self.exec_runs.lock();
        if runs.len() >= MAX_EXEC_RUNS {
            runs.pop_front();
        }
        runs.push_back(ExecRun {
            run_id: run_id.to_string(),
            session_key: session_key.map(str::to_string),
            at: Instant::now(),
        });
    }

    /// An `exec.*` event of a run this gateway dispatched to this node? Returns the run's session
    /// key (`Some(None)` when it had none); a terminal event ends the run.
    pub fn authorize_exec_event(&self, run_id: &str, terminal: bool) -> Option<Option<String>> {
        let mut runs = self.exec_runs.lock();
        runs.retain(|r| r.at.elapsed() < EXEC_EVENT_WINDOW);
        let i = runs
            .iter()
            .position(|r| !run_id.is_empty() && r.run_id == run_id)?;
        let key = runs[i].session_key.clone();
        if terminal {
            runs.remove(i);
        }
        Some(key)
    }

    /// Whether `id` is an invoke this node is working on.
    pub fn has_pending(&self, id: &str) -> bool {
        self.pending.lock().contains_key(id)
    }
}

const CALLER_SHARDS: usize = 16;

type Waiters = Vec<oneshot::Sender<invoke::Cached>>;
/// Caller connection → (node, invoke id) of its in-flight invokes.
type CallerShard = Mutex<HashMap<u64, Vec<(Arc<NodeSession>, String)>>>;

/// Connected nodes by node id and by connection, plus who is waiting for what.
pub struct NodeRegistry {
    by_id: RwLock<HashMap<String, Arc<NodeSession>>>,
    by_conn: RwLock<HashMap<u64, Arc<NodeSession>>>,
    /// Caller connection → its in-flight invokes (cancelled when the caller goes away).
    callers: [CallerShard; CALLER_SHARDS],
    /// Duplicate `node.invoke` calls waiting for the first one with their idempotency key.
    dup_waiters: Mutex<HashMap<String, Waiters>>,
}

impl Default for NodeRegistry {
    fn default() -> Self {
        NodeRegistry {
            by_id: RwLock::new(HashMap::new()),
            by_conn: RwLock::new(HashMap::new()),
            callers: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            dup_waiters: Mutex::new(HashMap::new()),
        }
    }
}

impl std::fmt::Debug for NodeRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRegistry")
            .field("connected", &self.by_id.read().len())
            .finish_non_exhaustive()
    }
}

impl NodeRegistry {
    /// Register a node connection right after its `hello-ok`.
    pub fn register(&self, conn: Arc<ConnHandle>, node: NodeConnect) -> Arc<NodeSession> {
        let session = Arc::new(NodeSession {
            node_id: node.node_id.clone(),
            connected_at_ms: crate::util::now_ms(),
            meta: node.meta,
            platform_id: node.platform_id,
            path_env: node.path_env,
            declared: node.declared,
            declared_permissions: node.declared_permissions,
            surface: RwLock::new(node.effective),
            pending: Mutex::new(HashMap::new()),
            activity: Mutex::new(None),
            host_stats: Mutex::new(None),
            exec_runs: Mutex::new(VecDeque::new()),
            conn,
        });
        self.by_conn
            .write()
            .insert(session.conn_uid(), Arc::clone(&session));
        let previous = self
            .by_id
            .write()
            .insert(node.node_id, Arc::clone(&session));
        if let Some(p) = previous {
            tracing::info!(node = %p.node_id, old_conn = p.conn_uid(), "node reconnected on a new socket");
        }
        session
    }

    /// The current session of a node.
    pub fn get(&self, node_id: &str) -> Option<Arc<NodeSession>> {
        self.by_id.read().get(node_id).cloned()
    }

    /// The node session of a connection.
    pub fn by_conn(&self, conn_uid: u64) -> Option<Arc<NodeSession>> {
        self.by_conn.read().get(&conn_uid).cloned()
    }

    /// Every connected node.
    pub fn list(&self) -> Vec<Arc<NodeSession>> {
        self.by_id.read().values().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.by_id.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn caller_shard(&self, conn: u64) -> &CallerShard {
        &self.callers[(conn as usize) % CALLER_SHARDS]
    }

    fn track_caller(&self, caller: u64, session: &Arc<NodeSession>, id: &str) {
        self.caller_shard(caller)
            .lock()
            .entry(caller)
            .or_default()
            .push((Arc::clone(session), id.to_string()));
    }

    fn untrack_caller(&self, caller: u64, id: &str) {
        let mut shard = self.caller_shard(caller).lock();
        if let Some(list) = shard.get_mut(&caller) {
            list.retain(|(_, i)| i != id);
            if list.is_empty() {
                shard.remove(&caller);
            }
        }
    }

    /// A connection closed: a node's in-flight invokes fail at once (`DISCONNECTED`); a
    /// caller's in-flight invokes are cancelled on their nodes (`node.invoke.cancel`).
    /// Returns the node session that went away, if the connection was a node.
    pub fn connection_closed(&self, info: &ConnInfo) -> Option<Arc<NodeSession>> {
        let cancelled = self.caller_shard(info.id).lock().remove(&info.id);
        for (session, id) in cancelled.unwrap_or_default() {
            if let Some(p) = session.take_pending(&id) {
                invoke::send_cancel(&session, &id);
                let _ =
                    p.tx.send(NodeResult::failure("ABORTED", "node invoke cancelled"));
            }
        }
        let session = self.by_conn.write().remove(&info.id)?;
        {
            let mut by_id = self.by_id.write();
            if by_id
                .get(&session.node_id)
                .is_some_and(|s| s.conn_uid() == info.id)
            {
                by_id.remove(&session.node_id);
            }
        }
        let pending: Vec<(String, PendingInvoke)> = session.pending.lock().drain().collect();
        for (id, p) in pending {
            if let Some(caller) = p.caller {
                self.untrack_caller(caller, &id);
            }
            let message = format!("node disconnected ({})", p.command);
            let _ = p.tx.send(NodeResult::failure("DISCONNECTED", message));
        }
        Some(session)
    }
}
