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

/// Starts the zero-latency fake OpenAI-compatible provider (`mock-model`) the model-facing
/// scenarios point the gateway at, on 127.0.0.1:`port`.
pub async fn fake_provider(
    port: u16,
    reply: pincer_fakes::llm::DefaultReply,
) -> anyhow::Result<pincer_fakes::llm::FakeLlm> {
    use anyhow::Context;
    pincer_fakes::llm::FakeLlm::bind(
        std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        pincer_fakes::llm::FakeLlmOptions {
            zero_latency: true,
            default_reply: Some(reply),
            models: vec!["mock-model".into()],
        },
    )
    .await
    .with_context(|| format!("cannot start the fake provider on 127.0.0.1:{port}"))
}

/// `n` distinct words (`w0 w1 …`): a fixed reply of a known size.
pub fn words(n: usize) -> String {
    (0..n)
        .map(|i| format!("w{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}
