//! `pincer node run|install|status`: this machine as a node of a gateway (see
//! `pincer-node-host`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use pincer_node_host::{service, status, NodeHostOptions};
use serde_json::json;

use crate::client_cmd::{print_json, ConnArgs};

#[derive(Subcommand)]
pub enum NodeCmd {
    /// Connect this machine to a gateway as a node and run what it invokes (system.run,
    /// system.which, system.notify) until Ctrl-C; reconnects after restarts and drops.
    Run(NodeRunArgs),
    /// Write a systemd user service that runs `pincer node run` (prints how to enable it).
    Install(NodeInstallArgs),
    /// Show whether the node host runs, where it connects and its node id.
    Status(NodeStatusArgs),
}

#[derive(Args)]
pub struct NodeRunArgs {
    /// Name shown to the gateway owner (`client.displayName`).
    #[arg(long)]
    pub display_name: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args)]
pub struct NodeInstallArgs {
    /// Name shown to the gateway owner.
    #[arg(long)]
    pub display_name: Option<String>,
    /// Replace an existing unit.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args)]
pub struct NodeStatusArgs {
    /// Print raw JSON.
    #[arg(long)]
    pub json: bool,
}

/// The gateway URL and secret the CLI conventions give (flags > environment > the local
/// gateway's files). The node never uses the CLI's own identity.
fn target(conn: &ConnArgs) -> (String, Option<String>, Option<String>, Option<String>) {
    let mut conn = conn.clone();
    conn.no_device = true;
    let p = crate::client_cmd::options(&conn).opts;
    (p.url, p.token, p.password, p.tls_fingerprint)
}

fn state_dir() -> std::path::PathBuf {
    pincer_gateway::config::default_state_dir()
}

/// `PINCER_NODE_RECONNECT_MAX_MS`: cap of the reconnect backoff (test knob; default 30 s).
fn backoff() -> pincer_backoff::Backoff {
    let max = std::env::var("PINCER_NODE_RECONNECT_MAX_MS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|v| *v > 0)
        .map_or(Duration::from_secs(30), Duration::from_millis);
    pincer_backoff::Backoff::new(Duration::from_millis(500).min(max), max)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        match term {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn run(args: NodeRunArgs) -> Result<ExitCode> {
    let (url, token, password, tls_fingerprint) = target(&args.conn);
    let mut opts = NodeHostOptions::new(url, pincer_node_host::node_dir(&state_dir()));
    opts.token = token;
    opts.password = password;
    opts.tls_fingerprint = tls_fingerprint;
    opts.display_name = args
        .display_name
        .filter(|n| !n.trim().is_empty())
        .or_else(|| Some(pincer_gateway::util::hostname()));
    opts.connect_timeout = Duration::from_millis(args.conn.timeout.max(1));
    opts.backoff = backoff();
    let rt = crate::client_cmd::runtime()?;
    rt.block_on(pincer_node_host::run(opts, shutdown_signal()))
        .context("the node host stopped")?;
    eprintln!("pincer node: stopped");
    Ok(ExitCode::SUCCESS)
}

fn install(args: NodeInstallArgs) -> Result<ExitCode> {
    let (url, token, password, tls_fingerprint) = target(&args.conn);
    let state = state_dir();
    let exe = std::env::current_exe().context("cannot find the pincer binary")?;
    let o = service::InstallOptions {
        exe,
        url: url.clone(),
        display_name: args.display_name.filter(|n| !n.trim().is_empty()),
        tls_fingerprint,
        // Only an explicitly given secret goes into the service's environment file; on the
        // gateway host the service finds <state>/gateway.token by itself.
        token: args.conn.token.clone().or(token.filter(|_| {
            std::env::var_os("PINCER_GATEWAY_TOKEN").is_some()
                || std::env::var_os("OPENCLAW_GATEWAY_TOKEN").is_some()
        })),
        password: args.conn.password.clone().or(password),
        node_dir: pincer_node_host::node_dir(&state),
        state_dir: state,
        config_home: service::default_config_home(),
        force: args.force,
    };
    let done = service::install(&o)?;
    if args.conn.json {
        print_json(
            &json!({
                "unitPath": done.unit_path.display().to_string(),
                "envPath": done.env_path.as_ref().map(|p| p.display().to_string()),
                "url": url,
            }),
            true,
        );
    } else {
        println!("Wrote {}", done.unit_path.display());
        if let Some(env) = &done.env_path {
            println!("Wrote {} (gateway secret, mode 0600)", env.display());
        }
        println!("It runs: pincer node run --url {url}");
        println!("{}", service::enable_instructions());
    }
    Ok(ExitCode::SUCCESS)
}

fn status_cmd(args: NodeStatusArgs) -> Result<ExitCode> {
    let node_dir = pincer_node_host::node_dir(&state_dir());
    let identity = std::fs::read_to_string(node_dir.join("identity/node.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
    let node_id = identity
        .as_ref()
        .and_then(|v| v["deviceId"].as_str().map(str::to_string));
    let st = status::read(&node_dir);
    let running = st
        .as_ref()
        .is_some_and(|s| s.state != "stopped" && status::pid_alive(s.pid));
    let unit = service::unit_path(&service::default_config_home());
    if args.json {
        print_json(
            &json!({
                "running": running,
                "nodeId": node_id,
                "nodeDir": node_dir.display().to_string(),
                "status": st,
                "serviceUnit": unit.exists().then(|| unit.display().to_string()),
            }),
            true,
        );
        return Ok(if running {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(3)
        });
    }
    match (&st, running) {
        (Some(s), true) => {
            println!("Node host: running (pid {})", s.pid);
            println!("  state: {}", s.state);
            println!("  gateway: {}", s.url);
            if let Some(r) = &s.pairing_request_id {
                println!(
                    "  waiting for approval: on the gateway host run `pincer devices approve {r}`"
                );
            }
            if let Some(e) = &s.last_error {
                println!("  last error: {e}");
            }
        }
        (Some(s), false) => {
            println!(
                "Node host: not running (last state {}, gateway {})",
                s.state, s.url
            );
        }
        (None, _) => {
            println!("Node host: never run on this machine (start it with `pincer node run`)")
        }
    }
    println!(
        "  node id: {}",
        node_id.as_deref().unwrap_or("(no identity yet)")
    );
    println!("  state dir: {}", node_dir.display());
    if unit.exists() {
        println!(
            "  service: {} (systemctl --user status {})",
            unit.display(),
            service::UNIT_NAME
        );
    }
    Ok(if running {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

pub fn run_cmd(cmd: NodeCmd) -> Result<ExitCode> {
    match cmd {
        NodeCmd::Run(a) => run(a),
        NodeCmd::Install(a) => install(a),
        NodeCmd::Status(a) => status_cmd(a),
    }
}
