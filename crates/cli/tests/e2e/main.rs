//! Process-level tests: the real `pincer` binary on an ephemeral port with a temp state dir.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent;
mod approvals;
mod automations;
mod bad_input;
mod channels;
mod chat;
mod cli_cmd;
mod config;
mod conformance;
mod conformance_sessions;
mod devices;
mod events;
mod handshake;
mod hooks;
mod http_probes;
mod lifecycle;
mod nodes;
mod official_cli;
mod openai_http;
mod proxy;
mod remote;
mod security_config;
mod session_events;
mod sessions;
mod tls;
mod tools;
mod ui;

use std::path::Path;

pub fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_pincer"))
}
