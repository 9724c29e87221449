//! One module per scenario. Each takes the shared [`Ctx`] and its own clap `Args`, and returns
//! a [`Report`]: machine-readable JSON plus a short human summary. Later issues add modules here.

pub mod automations;
pub mod channels;
pub mod chat;
pub mod fanout;
pub mod handshake;
pub mod idle;
pub mod node_invoke;
pub mod openai_http;
pub mod rps;
pub mod startup;

use std::time::Duration;

use serde_json::Value;

use crate::procfs::ProcSnap;
use crate::wire::ConnectOpts;

/// What every scenario gets.
pub struct Ctx {
    pub opts: ConnectOpts,
    /// The gateway's PID, for `/proc` readings.
    pub pid: Option<u32>,
}

impl Ctx {
    pub fn timeout(&self) -> Duration {
        self.opts.timeout
    }

    pub fn snap(&self) -> Option<ProcSnap> {
        self.pid.and_then(ProcSnap::read)
    }
}

pub struct Report {
    pub json: Value,
    pub human: String,
}

/// Gateway CPU seconds between two snapshots.
pub fn cpu_delta(a: Option<ProcSnap>, b: Option<ProcSnap>) -> Option<f64> {
    Some(b?.cpu_s - a?.cpu_s)
}
