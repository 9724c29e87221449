//! Commands that talk to a running gateway: `gateway call`, `health`, `status`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use pincer_client::{ClientError, ClientOptions, GatewayClient};
use serde_json::Value;

/// Connection flags shared by every client command.
#[derive(Args, Clone)]
pub struct ConnArgs {
    /// Gateway URL (else PINCER_GATEWAY_URL / OPENCLAW_GATEWAY_URL / <state>/gateway.json / ws://127.0.0.1:18789).
    #[arg(long)]
    pub url: Option<String>,
    /// Shared token (else PINCER_GATEWAY_TOKEN / OPENCLAW_GATEWAY_TOKEN / <state>/gateway.token).
    #[arg(long)]
    pub token: Option<String>,
    /// Shared password (else PINCER_GATEWAY_PASSWORD / OPENCLAW_GATEWAY_PASSWORD).
    #[arg(long)]
    pub password: Option<String>,
    /// Print raw JSON.
    #[arg(long)]
    pub json: bool,
    /// Timeout in milliseconds for connect and the call.
    #[arg(long, default_value_t = 10_000)]
    pub timeout: u64,
}

#[derive(Args, Clone)]
pub struct CallArgs {
    /// Method name, e.g. `health`.
    pub method: String,
    /// Params as a JSON object.
    #[arg(long)]
    pub params: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

fn env_first(names: &[&str]) -> Option<String> {
    names
        .iter()
        .filter_map(|n| std::env::var(n).ok())
        .find(|v| !v.trim().is_empty())
}

fn options(conn: &ConnArgs) -> ClientOptions {
    let state_dir = pincer_gateway::config::default_state_dir();
    let url = conn
        .url
        .clone()
        .or_else(|| env_first(&["PINCER_GATEWAY_URL", "OPENCLAW_GATEWAY_URL"]))
        .unwrap_or_else(|| {
            let port = pincer_gateway::state_dir::read_gateway_json(&state_dir)
                .map(|i| i.port)
                .unwrap_or(18789);
            format!("ws://127.0.0.1:{port}")
        });
    let password = conn
        .password
        .clone()
        .or_else(|| env_first(&["PINCER_GATEWAY_PASSWORD", "OPENCLAW_GATEWAY_PASSWORD"]));
    let token = conn
        .token
        .clone()
        .or_else(|| env_first(&["PINCER_GATEWAY_TOKEN", "OPENCLAW_GATEWAY_TOKEN"]))
        .or_else(|| {
            if password.is_some() {
                return None;
            }
            std::fs::read_to_string(state_dir.join("gateway.token"))
                .ok()
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
        });
    let timeout = Duration::from_millis(conn.timeout.max(1));
    ClientOptions {
        token,
        password,
        connect_timeout: timeout,
        request_timeout: timeout,
        ..ClientOptions::cli(url)
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Connect, call, close. Protocol errors come back as `ClientError::Rpc`.
fn one_call(
    conn: &ConnArgs,
    method: &str,
    params: Option<Value>,
) -> Result<std::result::Result<Value, ClientError>> {
    let opts = options(conn);
    let url = opts.url.clone();
    let rt = runtime()?;
    Ok(rt.block_on(async move {
        let client = match GatewayClient::connect(opts).await {
            Ok(c) => c,
            Err(e @ ClientError::Rpc(_)) => return Err(e),
            Err(e) => {
                return Err(ClientError::Protocol(format!(
                    "cannot reach the gateway at {url}: {e}"
                )))
            }
        };
        let result = client.request(method, params).await;
        client.close().await;
        result
    }))
}

fn report_error(e: &ClientError) -> ExitCode {
    match e.rpc_error() {
        Some(shape) => {
            eprintln!("error: {} {}", shape.code.as_str(), shape.message);
            if let Some(details) = &shape.details {
                eprintln!("details: {details}");
            }
            ExitCode::from(1)
        }
        None => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn print_json(value: &Value, raw: bool) {
    if raw {
        println!("{value}");
    } else {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
    }
}

pub fn call(args: CallArgs) -> Result<ExitCode> {
    let params = match &args.params {
        Some(text) => Some(
            serde_json::from_str::<Value>(text)
                .with_context(|| format!("--params is not valid JSON: {text}"))?,
        ),
        None => None,
    };
    match one_call(&args.conn, &args.method, params)? {
        Ok(payload) => {
            print_json(&payload, args.conn.json);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report_error(&e)),
    }
}

pub fn health(conn: ConnArgs) -> Result<ExitCode> {
    match one_call(&conn, "health", None)? {
        Ok(payload) if conn.json => {
            print_json(&payload, true);
            Ok(ExitCode::SUCCESS)
        }
        Ok(p) => {
            let ok = p["ok"] == true;
            let el = &p["eventLoop"];
            println!("Gateway health: {}", if ok { "ok" } else { "NOT OK" });
            println!(
                "  default agent: {}",
                p["defaultAgentId"].as_str().unwrap_or("-")
            );
            let channels = p["channelOrder"].as_array().map(|a| a.len()).unwrap_or(0);
            println!(
                "  channels: {}",
                if channels == 0 {
                    "none configured".to_string()
                } else {
                    channels.to_string()
                }
            );
            println!(
                "  sessions: {}",
                p["sessions"]["count"].as_u64().unwrap_or(0)
            );
            println!(
                "  event loop: {} (lag {} ms, cpu {})",
                if el["degraded"] == true {
                    "degraded"
                } else {
                    "ok"
                },
                el["delayMaxMs"].as_f64().unwrap_or(0.0),
                el["cpuCoreRatio"].as_f64().unwrap_or(0.0)
            );
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Err(e) => Ok(report_error(&e)),
    }
}

pub fn status(conn: ConnArgs) -> Result<ExitCode> {
    match one_call(&conn, "status", None)? {
        Ok(payload) if conn.json => {
            print_json(&payload, true);
            Ok(ExitCode::SUCCESS)
        }
        Ok(p) => {
            println!(
                "Pincer gateway {}",
                p["runtimeVersion"].as_str().unwrap_or("?")
            );
            let uptime = p["uptimeMs"].as_u64().unwrap_or(0) / 1000;
            println!(
                "  uptime: {}h {}m {}s",
                uptime / 3600,
                (uptime / 60) % 60,
                uptime % 60
            );
            println!(
                "  connections: {}",
                p["connections"]["authenticated"].as_u64().unwrap_or(0)
            );
            let rss = p["processMemory"]["rssBytes"].as_u64().unwrap_or(0);
            println!("  memory: {:.1} MiB RSS", rss as f64 / (1024.0 * 1024.0));
            println!(
                "  sessions: {}",
                p["sessions"]["count"].as_u64().unwrap_or(0)
            );
            let channels = p["channelSummary"].as_array().map(|a| a.len()).unwrap_or(0);
            println!(
                "  channels: {}",
                if channels == 0 {
                    "none configured".to_string()
                } else {
                    channels.to_string()
                }
            );
            let queued = p["queuedSystemEvents"]
                .as_array()
                .map(|a| a.len())
                .unwrap_or(0);
            println!("  queued system events: {queued}");
            if let Some(pid) = p["pid"].as_u64() {
                println!("  pid: {pid}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report_error(&e)),
    }
}
