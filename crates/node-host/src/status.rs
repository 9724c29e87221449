//! `<node dir>/status.json`: what the running node host is doing, for `pincer node status`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name under the node state dir.
pub const STATUS_FILE: &str = "status.json";

/// A snapshot of the node host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    pub pid: u32,
    pub version: String,
    pub url: String,
    pub node_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// `starting`, `connecting`, `connected`, `waiting-for-approval`, `disconnected`, `stopped`.
    pub state: String,
    pub since_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// The pending device pairing request, while waiting for approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pairing_request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected_at_ms: Option<u64>,
    pub updated_at_ms: u64,
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn status_path(node_dir: &Path) -> PathBuf {
    node_dir.join(STATUS_FILE)
}

/// Write the status file (best effort: a node keeps working when its disk is full).
pub fn write(node_dir: &Path, status: &NodeStatus) {
    if let Ok(text) = serde_json::to_vec_pretty(status) {
        let _ = crate::files::write_private(&status_path(node_dir), &text);
    }
}

/// Read the status file, if any.
pub fn read(node_dir: &Path) -> Option<NodeStatus> {
    let text = std::fs::read_to_string(status_path(node_dir)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Whether a process with `pid` is alive.
pub fn pid_alive(pid: u32) -> bool {
    let Some(p) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    rustix::process::test_kill_process(p).is_ok()
}
