//! `pincer-bench`: load tool for an OpenClaw protocol v4 gateway. It speaks raw frames over
//! tokio-tungstenite (no client library in the way) so the gateway, not the client, is what
//! gets measured. Scenarios live in `scenarios/`, one module each; it measures, never asserts.

mod procfs;
mod scenarios;
mod stats;
mod wire;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use pincer_protocol::device_auth::DeviceKeypair;

use scenarios::{Ctx, Report};
use wire::ConnectOpts;

#[derive(Parser)]
#[command(
    name = "pincer-bench",
    version,
    about = "Load tool for an OpenClaw protocol v4 gateway"
)]
struct Cli {
    /// Gateway URL.
    #[arg(
        long,
        env = "PINCER_GATEWAY_URL",
        default_value = "ws://127.0.0.1:18789",
        global = true
    )]
    url: String,
    /// Shared token.
    #[arg(long, env = "PINCER_GATEWAY_TOKEN", global = true)]
    token: Option<String>,
    /// Shared password.
    #[arg(long, env = "PINCER_GATEWAY_PASSWORD", global = true)]
    password: Option<String>,
    /// Gateway PID: RSS, threads and CPU are read from /proc/<pid>.
    #[arg(long, global = true)]
    pid: Option<u32>,
    /// Print one JSON object instead of the summary.
    #[arg(long, global = true)]
    json: bool,
    /// Sign every connect with an Ed25519 device identity (one per run, v3 payload).
    #[arg(long, global = true)]
    device: bool,
    #[arg(long, default_value = "cli", global = true)]
    client_id: String,
    #[arg(long, default_value = "cli", global = true)]
    client_mode: String,
    /// Per-step timeout in milliseconds.
    #[arg(long, default_value_t = 30_000, global = true)]
    timeout: u64,
    /// Threads of the bench's own runtime (1 = current-thread runtime).
    #[arg(long, default_value_t = 1, global = true)]
    threads: usize,
    /// Also write the JSON result to this file.
    #[arg(long, global = true)]
    out: Option<std::path::PathBuf>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// N sequential connects + health: open→hello-ok and open→health-res percentiles, conn/s.
    Handshake(scenarios::handshake::Args),
    /// K requests in flight over C connections for D seconds: req/s and latency percentiles.
    Rps(scenarios::rps::Args),
    /// C idle clients: gateway RSS per client (--pid), all still alive after a while.
    Idle(scenarios::idle::Args),
    /// L listeners; a sender triggers a broadcast: first/last delivery latency.
    Fanout(scenarios::fanout::Args),
    /// Start the gateway command after `--` N times: spawn→port, spawn→healthy `health`,
    /// idle RSS, SIGTERM→exit.
    Startup(scenarios::startup::Args),
    /// Channel messages through the gateway: a fake Telegram (--telegram-port) and a
    /// zero-latency fake provider (--fake-port) this starts; inbound → first model request
    /// (gateway time) and M messages over S DM sessions checked for loss/duplicates.
    Channels(scenarios::channels::Args),
    /// Agent turns against a zero-latency fake provider this starts on --fake-port: gateway
    /// overhead per turn, S sessions × N deltas checked for loss/order, RSS per active run.
    Chat(scenarios::chat::Args),
    /// N fake nodes; `node.invoke` round trips through the gateway: latency (--inflight 1) or
    /// sustained --rate invokes/s spread over the nodes.
    NodeInvoke(scenarios::node_invoke::Args),
    /// N automations added to the running gateway: RSS delta (--pid), timer wake-ups and CPU
    /// while nothing is due, then due one-shots (every wake-up finds work).
    Automations(scenarios::automations::Args),
    /// `/v1/chat/completions` through the gateway vs the same model requests straight to a
    /// zero-latency fake provider this starts on --fake-port: the gateway's overhead.
    OpenaiHttp(scenarios::openai_http::Args),
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Scenario::Handshake(_) => "handshake",
            Scenario::Rps(_) => "rps",
            Scenario::Idle(_) => "idle",
            Scenario::Fanout(_) => "fanout",
            Scenario::Startup(_) => "startup",
            Scenario::Channels(_) => "channels",
            Scenario::Chat(_) => "chat",
            Scenario::NodeInvoke(_) => "node-invoke",
            Scenario::Automations(_) => "automations",
            Scenario::OpenaiHttp(_) => "openai-http",
        }
    }
}

async fn run_scenario(ctx: &Ctx, scenario: &Scenario) -> Result<Report> {
    match scenario {
        Scenario::Handshake(a) => scenarios::handshake::run(ctx, a).await,
        Scenario::Rps(a) => scenarios::rps::run(ctx, a).await,
        Scenario::Idle(a) => scenarios::idle::run(ctx, a).await,
        Scenario::Fanout(a) => scenarios::fanout::run(ctx, a).await,
        Scenario::Startup(a) => scenarios::startup::run(ctx, a).await,
        Scenario::Channels(a) => scenarios::channels::run(ctx, a).await,
        Scenario::Chat(a) => scenarios::chat::run(ctx, a).await,
        Scenario::NodeInvoke(a) => scenarios::node_invoke::run(ctx, a).await,
        Scenario::Automations(a) => scenarios::automations::run(ctx, a).await,
        Scenario::OpenaiHttp(a) => scenarios::openai_http::run(ctx, a).await,
    }
}

fn run(cli: Cli) -> Result<()> {
    let device = cli.device.then(|| {
        let mut seed = [0u8; 32];
        rand::fill(&mut seed);
        Arc::new(DeviceKeypair::from_seed(&seed))
    });
    let ctx = Ctx {
        opts: ConnectOpts {
            url: cli.url.clone(),
            token: cli.token.clone(),
            password: cli.password.clone(),
            device,
            client_id: cli.client_id.clone(),
            client_mode: cli.client_mode.clone(),
            scopes: wire::DEFAULT_SCOPES.iter().map(|s| s.to_string()).collect(),
            timeout: Duration::from_millis(cli.timeout),
            read_buffer: wire::READ_BUFFER,
        },
        pid: cli.pid,
    };
    let rt = if cli.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(cli.threads)
            .enable_all()
            .build()
    }
    .context("cannot start the runtime")?;
    let load_before = procfs::loadavg();
    let cpu0 = procfs::self_cpu_s();
    let t0 = Instant::now();
    let report = rt.block_on(run_scenario(&ctx, &cli.scenario))?;
    let mut json = report.json;
    if let Some(obj) = json.as_object_mut() {
        let extra = serde_json::json!({
            "scenario": cli.scenario.name(),
            "url": cli.url,
            "bench_threads": cli.threads,
            "client_cpu_s": ((procfs::self_cpu_s() - cpu0) * 100.0).round() / 100.0,
            "client_wall_s": (t0.elapsed().as_secs_f64() * 100.0).round() / 100.0,
            "loadavg_before": load_before,
            "loadavg_after": procfs::loadavg(),
            "nproc": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        });
        if let Some(e) = extra.as_object() {
            obj.extend(e.clone());
        }
    }
    if let Some(path) = &cli.out {
        std::fs::write(path, serde_json::to_string_pretty(&json)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let text = if cli.json {
        format!("{}\n", serde_json::to_string_pretty(&json)?)
    } else {
        format!(
            "{}  load average {} → {}\n",
            report.human,
            load_before,
            procfs::loadavg()
        )
    };
    // A closed pipe (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pincer-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
