//! The `pincer` binary.

mod agent_cmd;
mod approvals_cmd;
mod channels_cmd;
mod client_cmd;
mod config_cmd;
mod cron_cmd;
mod devices_cmd;
mod node_cmd;
mod nodes_cmd;
mod sessions_cmd;

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use pincer_gateway::config::{
    default_state_dir, env_port, AuthModeFlag, AuthOverrides, BindMode, GatewayConfig, LogFormat,
    Timers,
};

#[derive(Parser)]
#[command(
    name = "pincer",
    version,
    about = "Pincer: an OpenClaw-compatible gateway (protocol v4)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Run the gateway (`pincer gateway` alone runs it too) or call it.
    Gateway(GatewayCmd),
    /// Ask the gateway for its health snapshot.
    Health(client_cmd::ConnArgs),
    /// Show a summary of the gateway's status.
    Status(client_cmd::ConnArgs),
    /// Send one message to the agent and stream the reply.
    Agent(agent_cmd::AgentArgs),
    /// Chat with the agent in the terminal (streamed replies; /commands work; Ctrl-C stops a
    /// reply, Ctrl-D exits).
    Chat(agent_cmd::ChatArgs),
    /// Read, change, validate the config file (`pincer.json`) or print its schema.
    #[command(subcommand)]
    Config(config_cmd::ConfigSub),
    /// List, show, reset or delete sessions.
    #[command(subcommand)]
    Sessions(sessions_cmd::SessionsSub),
    /// Automations: list, add, edit, rm, run, runs, status.
    #[command(subcommand, alias = "automations")]
    Cron(cron_cmd::CronSub),
    /// Exec approvals: list waiting commands, approve (once or always) or deny them; show or
    /// change the approvals policy.
    Approvals {
        #[command(subcommand)]
        cmd: approvals_cmd::ApprovalsCmd,
    },
    /// Device pairing: list, approve, reject, remove, rename, rotate/revoke tokens.
    Devices {
        #[command(subcommand)]
        cmd: devices_cmd::DevicesCmd,
    },
    /// Print (and with --open, open) the Control UI URL with the credentials a browser needs.
    Dashboard(devices_cmd::DashboardArgs),
    /// This machine as a node of a gateway: run, install as a service, status.
    Node {
        #[command(subcommand)]
        cmd: node_cmd::NodeCmd,
    },
    /// The gateway's nodes: list, pending approvals, approve/reject/remove/rename, describe,
    /// invoke a command.
    Nodes {
        #[command(subcommand)]
        cmd: nodes_cmd::NodesCmd,
    },
    /// Chat channel accounts (Telegram, Discord, Slack): status, start, stop, logout.
    #[command(subcommand)]
    Channels(channels_cmd::ChannelsSub),
    /// DM pairing: list pending codes, approve or dismiss a sender.
    #[command(subcommand)]
    Pairing(channels_cmd::PairingSub),
    /// Send a message to a channel target (idempotent with --idempotency-key).
    Send(channels_cmd::SendArgs),
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct GatewayCmd {
    #[command(subcommand)]
    sub: Option<GatewaySub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum GatewaySub {
    /// Run the gateway in the foreground.
    Run(RunArgs),
    /// Perform one RPC and print the payload.
    Call(client_cmd::CallArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum BindArg {
    Loopback,
    Lan,
    Auto,
    Custom,
}

#[derive(Clone, Copy, ValueEnum)]
enum AuthArg {
    None,
    Token,
    Password,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Human,
    Json,
}

#[derive(Args, Clone)]
struct RunArgs {
    /// Port (0 = ephemeral). Default: PINCER_GATEWAY_PORT / OPENCLAW_GATEWAY_PORT /
    /// gateway.port in pincer.json / 18789.
    #[arg(long)]
    port: Option<u16>,
    /// Bind mode (default: gateway.bind in pincer.json, else loopback).
    #[arg(long, value_enum)]
    bind: Option<BindArg>,
    /// Address for --bind custom.
    #[arg(long)]
    host: Option<String>,
    /// Auth mode (default: gateway.auth.mode, else token; password if only a password is given).
    #[arg(long, value_enum)]
    auth: Option<AuthArg>,
    /// Shared token (else PINCER_GATEWAY_TOKEN / OPENCLAW_GATEWAY_TOKEN / <state>/gateway.token).
    #[arg(long)]
    token: Option<String>,
    /// Shared password (else PINCER_GATEWAY_PASSWORD / OPENCLAW_GATEWAY_PASSWORD).
    #[arg(long)]
    password: Option<String>,
    /// Log format on stderr (the log file is always JSON lines).
    #[arg(long, value_enum, default_value = "human")]
    log_format: LogFormatArg,
    /// Debug-level logs.
    #[arg(long)]
    verbose: bool,
    #[command(flatten)]
    security: SecurityArgs,
}

/// TLS, trusted proxies, pairing and failed-auth limits (`gateway.tls`, `gateway.auth.*`,
/// `gateway.trustedProxies`, `gateway.nodes.pairing.*`).
#[derive(Args, Clone, Default)]
struct SecurityArgs {
    /// Serve wss:// and https:// on the port (self-signed certificate under <state>/tls/
    /// unless --tls-cert/--tls-key are given).
    #[arg(long)]
    tls: bool,
    /// TLS certificate (PEM); implies --tls.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// TLS private key (PEM); implies --tls.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// A trusted proxy address or CIDR range (repeatable; gateway.trustedProxies).
    #[arg(long = "trusted-proxy", value_name = "ADDR[/PREFIX]")]
    trusted_proxies: Vec<String>,
    /// Trusted-proxy auth: the header carrying the authenticated user (selects auth mode
    /// trusted-proxy).
    #[arg(long, value_name = "HEADER")]
    trusted_proxy_user_header: Option<String>,
    /// Trusted-proxy auth: a header the proxy must also set (repeatable).
    #[arg(long = "trusted-proxy-required-header", value_name = "HEADER")]
    trusted_proxy_required_headers: Vec<String>,
    /// Trusted-proxy auth: only these users (repeatable).
    #[arg(long = "trusted-proxy-allow-user", value_name = "USER")]
    trusted_proxy_allow_users: Vec<String>,
    /// Trusted-proxy auth: accept a proxy on a loopback address.
    #[arg(long)]
    trusted_proxy_allow_loopback: bool,
    /// Do not pair new devices on this host silently (gateway.nodes.pairing.autoApproveLocal=false).
    #[arg(long)]
    no_auto_approve_local: bool,
    /// Count failed logins from loopback too (gateway.auth.rateLimit.exemptLoopback=false).
    #[arg(long)]
    rate_limit_loopback: bool,
}

impl SecurityArgs {
    /// What the flags say; unset flags leave the config file (`pincer.json`) in charge.
    fn overrides(&self) -> Result<pincer_gateway::security::SecurityOverrides> {
        use pincer_gateway::auth::IpRange;
        let mut s = pincer_gateway::security::SecurityOverrides::default();
        if self.tls || self.tls_cert.is_some() {
            s.tls = Some(pincer_gateway::tls::TlsSettings {
                enabled: true,
                auto_generate: self.tls_cert.is_none(),
                cert_path: self.tls_cert.clone(),
                key_path: self.tls_key.clone(),
            });
        }
        if !self.trusted_proxies.is_empty() {
            s.trusted_proxies = Some(
                self.trusted_proxies
                    .iter()
                    .map(|p| IpRange::parse(p).map_err(|e| anyhow::anyhow!("--trusted-proxy {e}")))
                    .collect::<Result<_>>()?,
            );
        }
        s.auto_approve_local = self.no_auto_approve_local.then_some(false);
        s.rate_limit_exempt_loopback = self.rate_limit_loopback.then_some(false);
        Ok(s)
    }

    /// `--trusted-proxy-user-header` & co. select trusted-proxy auth over every other mode.
    fn trusted_proxy(&self) -> Option<pincer_gateway::auth::TrustedProxySettings> {
        self.trusted_proxy_user_header.as_ref().map(|h| {
            pincer_gateway::auth::TrustedProxySettings {
                user_header: h.clone(),
                required_headers: self.trusted_proxy_required_headers.clone(),
                allow_users: self.trusted_proxy_allow_users.clone(),
                allow_loopback: self.trusted_proxy_allow_loopback,
            }
        })
    }
}

fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| std::env::var(n).ok())
        .find(|v| !v.trim().is_empty())
}

fn gateway_config(args: &RunArgs) -> Result<GatewayConfig> {
    let bind = match args.bind {
        None => None,
        Some(BindArg::Loopback) => Some(BindMode::Loopback),
        Some(BindArg::Lan) => Some(BindMode::Lan),
        Some(BindArg::Auto) => Some(BindMode::Auto),
        Some(BindArg::Custom) => {
            let host = args
                .host
                .as_deref()
                .context("--bind custom needs --host <address>")?;
            Some(BindMode::Custom(host.parse().with_context(|| {
                format!("--host {host:?} is not an IP address")
            })?))
        }
    };
    let token = args
        .token
        .clone()
        .or_else(|| env_first(&["PINCER_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_TOKEN"]));
    let password = args
        .password
        .clone()
        .or_else(|| env_first(&["PINCER_GATEWAY_PASSWORD", "OPENCLAW_GATEWAY_PASSWORD"]));
    // Flags and environment win over pincer.json; the gateway resolves the rest.
    let mode = match args.auth {
        Some(AuthArg::None) => Some(AuthModeFlag::None),
        Some(AuthArg::Token) => Some(AuthModeFlag::Token),
        Some(AuthArg::Password) => Some(AuthModeFlag::Password),
        None => match (&token, &password) {
            (None, Some(_)) => Some(AuthModeFlag::Password),
            (Some(_), _) => Some(AuthModeFlag::Token),
            (None, None) => None,
        },
    };
    Ok(GatewayConfig {
        state_dir: default_state_dir(),
        bind,
        port: args.port.or_else(env_port),
        auth: AuthOverrides {
            mode,
            token,
            password,
            trusted_proxy: args.security.trusted_proxy(),
        },
        timers: Timers::from_env(),
        log_format: match args.log_format {
            LogFormatArg::Human => LogFormat::Human,
            LogFormatArg::Json => LogFormat::Json,
        },
        verbose: args.verbose,
        security: args.security.overrides()?,
    })
}

fn worker_threads() -> usize {
    std::env::var("PINCER_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2)
        })
}

fn run_gateway(args: &RunArgs) -> Result<()> {
    let config = gateway_config(args)?;
    // Multi-threaded by default. `PINCER_RUNTIME=current_thread` runs everything on one thread:
    // on 2 cores shared with local clients it measured the same (BENCHMARKS.md), so the
    // default keeps the second core for agent work and blocking-free scaling.
    let rt = match std::env::var("PINCER_RUNTIME").as_deref() {
        Ok("current_thread") => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads())
            .thread_name("pincer-worker")
            .enable_all()
            .build(),
    }
    .context("cannot start the async runtime")?;
    rt.block_on(pincer_gateway::run(config))?;
    // Blocking helpers (log writer, file reads) must not hold the exit up.
    rt.shutdown_timeout(std::time::Duration::from_millis(20));
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Gateway(GatewayCmd { sub: None, run })
        | Command::Gateway(GatewayCmd {
            sub: Some(GatewaySub::Run(run)),
            ..
        }) => run_gateway(&run).map(|_| ExitCode::SUCCESS),
        Command::Gateway(GatewayCmd {
            sub: Some(GatewaySub::Call(call)),
            ..
        }) => client_cmd::call(call),
        Command::Health(conn) => client_cmd::health(conn),
        Command::Status(conn) => client_cmd::status(conn),
        Command::Agent(args) => agent_cmd::agent(args),
        Command::Chat(args) => agent_cmd::chat(args),
        Command::Config(sub) => config_cmd::run(sub),
        Command::Sessions(sub) => sessions_cmd::run(sub),
        Command::Cron(sub) => cron_cmd::run(sub),
        Command::Approvals { cmd } => approvals_cmd::run(cmd),
        Command::Devices { cmd } => devices_cmd::run(cmd),
        Command::Dashboard(args) => devices_cmd::dashboard(args),
        Command::Node { cmd } => node_cmd::run_cmd(cmd),
        Command::Nodes { cmd } => nodes_cmd::run(cmd),
        Command::Channels(sub) => channels_cmd::channels(sub),
        Command::Pairing(sub) => channels_cmd::pairing(sub),
        Command::Send(args) => channels_cmd::send(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
