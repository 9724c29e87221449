//! Host traits: what only the gateway can do. The gateway implements them at integration; the
//! tools here validate arguments, call the host, and shape results and errors.
//!
//! Results the host returns as JSON are passed to the model as-is (pretty JSON text + `details`),
//! so the gateway owns their exact shape (the same payloads its WS methods return).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Errors a host reports. `Unavailable` = capability not present; `Rejected` = the request was
/// understood and refused (visibility, unknown session, …); `Failed` = something broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Rejected(String),
    #[error("{0}")]
    Failed(String),
}

impl From<HostError> for crate::ToolError {
    fn from(e: HostError) -> Self {
        match e {
            HostError::Unavailable(m) => Self::Unavailable(m),
            HostError::NotFound(m) => Self::NotFound(m),
            HostError::Rejected(m) => Self::Denied(m),
            HostError::Failed(m) => Self::Failed(m),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Approvals
// ---------------------------------------------------------------------------------------------

/// Decision on an exec approval (`exec.approval.resolve` `decision`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalDecision {
    AllowOnce,
    AllowAlways,
    Deny,
}

/// What the gateway publishes in `exec.approval.requested` (`request` object) and stores for
/// `exec.approval.get|list`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecApprovalRequest {
    pub command: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command_argv: Vec<String>,
    pub cwd: String,
    /// `gateway` | `sandbox` | `node`.
    pub host: String,
    /// Effective `security` / `ask` at request time.
    pub security: String,
    pub ask: String,
    pub agent_id: String,
    pub session_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// First resolved executable of the command, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning_text: Option<String>,
    pub timeout_ms: u64,
}

/// What the host answers when a request is registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalTicket {
    pub id: String,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
}

/// Approval plumbing: register a pending approval (the gateway emits `exec.approval.requested`
/// to approval-capable operators), then wait for `exec.approval.resolve`.
#[async_trait]
pub trait ApprovalHost: Send + Sync {
    async fn request(&self, request: ExecApprovalRequest) -> Result<ApprovalTicket, HostError>;

    /// Wait up to `timeout` for a decision; `Ok(None)` = no decision in time (the host should
    /// expire the pending record and emit `exec.approval.resolved` with a timeout marker).
    async fn wait_decision(
        &self,
        id: &str,
        timeout: Duration,
    ) -> Result<Option<ApprovalDecision>, HostError>;
}

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

/// Who is asking (visibility rules are applied by the host relative to this).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Requester {
    pub agent_id: String,
    pub session_key: String,
    pub sandboxed: bool,
}

#[async_trait]
pub trait SessionsHost: Send + Sync {
    /// `sessions_list` (args as validated by the tool's schema; `limit` already clamped).
    async fn list(&self, requester: &Requester, query: Value) -> Result<Value, HostError>;
    /// `sessions_history`.
    async fn history(&self, requester: &Requester, query: Value) -> Result<Value, HostError>;
    /// `sessions_send`.
    async fn send(&self, requester: &Requester, request: Value) -> Result<Value, HostError>;
    /// `sessions_spawn`.
    async fn spawn(&self, requester: &Requester, request: Value) -> Result<Value, HostError>;
    /// `session_status` for `session_key` (already resolved from `"current"`), with an
    /// optional model override (`Some("default")` clears it).
    async fn status(
        &self,
        requester: &Requester,
        session_key: &str,
        model: Option<&str>,
        changes_since: Option<u64>,
    ) -> Result<Value, HostError>;
}

// ---------------------------------------------------------------------------------------------
// Channel messaging
// ---------------------------------------------------------------------------------------------

#[async_trait]
pub trait MessagingHost: Send + Sync {
    /// Deliver one `message` tool action (`send` | `broadcast`); returns the delivery receipt(s).
    async fn message(
        &self,
        requester: &Requester,
        action: &str,
        request: Value,
    ) -> Result<Value, HostError>;
}

// ---------------------------------------------------------------------------------------------
// Nodes
// ---------------------------------------------------------------------------------------------

#[async_trait]
pub trait NodesHost: Send + Sync {
    /// Known nodes (the `node.list` payload).
    async fn list(&self) -> Result<Value, HostError>;
    /// One node (`node.describe`).
    async fn describe(&self, node: &str) -> Result<Value, HostError>;
    /// Pending pairing requests.
    async fn pending(&self) -> Result<Value, HostError>;
    /// Approve / reject a pairing request.
    async fn resolve_pairing(&self, request_id: &str, approve: bool) -> Result<Value, HostError>;
    /// `node.invoke`: run `command` on `node` with JSON params; waits up to `timeout`.
    async fn invoke(
        &self,
        node: &str,
        command: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, HostError>;
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

/// One indexed chunk of a memory file (see [`crate::memory::chunk_markdown`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryChunk {
    /// Workspace-relative path (`MEMORY.md`, `memory/2026-01-02.md`).
    pub path: String,
    /// 1-based inclusive line range.
    pub start_line: usize,
    pub end_line: usize,
    /// Nearest heading above the chunk, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading: Option<String>,
    pub text: String,
    /// Content hash (hex sha256 of `text`), lets the index skip unchanged chunks.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryQuery {
    pub agent_id: String,
    pub query: String,
    pub max_results: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
    /// `memory` | `wiki` | `all` | `sessions`.
    pub corpus: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryHit {
    pub path: String,
    pub start_line: usize,
    pub end_line: usize,
    pub score: f64,
    pub snippet: String,
}

/// The memory index (SQLite FTS5 in `pincer-store` at integration). Chunking is done by this
/// crate ([`crate::memory::sync_memory_index`]); the index stores and searches chunks.
#[async_trait]
pub trait MemoryIndex: Send + Sync {
    /// Replace all chunks of `path` for `agent_id` (an empty list removes the file);
    /// `file_hash` is remembered and returned by [`MemoryIndex::indexed_files`].
    async fn replace_file(
        &self,
        agent_id: &str,
        path: &str,
        file_hash: &str,
        chunks: Vec<MemoryChunk>,
    ) -> Result<(), HostError>;
    /// Paths currently indexed for `agent_id` with the content hash of each file.
    async fn indexed_files(&self, agent_id: &str) -> Result<Vec<(String, String)>, HostError>;
    /// Ranked hits, best first.
    async fn search(&self, query: &MemoryQuery) -> Result<Vec<MemoryHit>, HostError>;
    /// The indexed chunks of one file, in line order.
    async fn get(&self, agent_id: &str, path: &str) -> Result<Vec<MemoryChunk>, HostError>;
}

// ---------------------------------------------------------------------------------------------
// Automations
// ---------------------------------------------------------------------------------------------

/// The gateway's scheduler behind the `automations` tool (alias `cron`). The tool validates the
/// action and its required arguments; the host does the work and answers with the same
/// payloads as the `cron.*` / `wake` methods.
#[async_trait]
pub trait AutomationsHost: Send + Sync {
    /// One action (`status`, `list`, `get`, `add`, `update`, `remove`, `run`, `runs`, `wake`,
    /// `next_check`) with the tool's arguments (the `action` key removed).
    async fn call(
        &self,
        requester: &Requester,
        action: &str,
        args: serde_json::Map<String, Value>,
    ) -> Result<Value, HostError>;
}
