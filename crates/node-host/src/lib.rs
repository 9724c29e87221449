//! The Pincer node host: turns a machine into a node of a Pincer (or OpenClaw) gateway.
//!
//! [`host::run`] connects with the node's own device identity (`<node dir>/identity/node.json`,
//! apart from the CLI's), `role: "node"`, caps `system` and commands `system.run`,
//! `system.which`, `system.notify`; waits for the owner's approval (device pairing, then the
//! command surface); runs what the gateway invokes ([`commands`]) under the node's own exec
//! policy ([`policy`]); reports `exec.*` lifecycle events; and reconnects with backoff.
//! [`service`] writes a systemd user unit; [`status`] is what `pincer node status` reads.

pub mod commands;
pub mod files;
pub mod host;
pub mod policy;
pub mod service;
pub mod status;

pub use host::{run, NodeHostOptions};

use std::path::{Path, PathBuf};

/// The node's state dir: `PINCER_NODE_STATE_DIR`, else `<state dir>/node`.
pub fn node_dir(state_dir: &Path) -> PathBuf {
    std::env::var_os("PINCER_NODE_STATE_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| state_dir.join("node"))
}
