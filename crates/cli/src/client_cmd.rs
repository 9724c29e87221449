//! Commands that talk to a running gateway: `gateway call`, `health`, `status`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use pincer_client::identity::{ClientIdentity, StoredToken};
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
    /// Pin the gateway's TLS certificate (SHA-256 as printed by the gateway) for wss:// (else
    /// PINCER_GATEWAY_TLS_FINGERPRINT / the fingerprint in <state>/gateway.json).
    #[arg(long)]
    pub tls_fingerprint: Option<String>,
    /// Connect without this CLI's device identity (shared secret only; scopes as the gateway grants).
    #[arg(long)]
    pub no_device: bool,
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

/// Connection options plus the CLI's device identity (when it has one).
pub(crate) struct Prepared {
    pub opts: ClientOptions,
    pub identity: Option<ClientIdentity>,
}

pub(crate) fn options(conn: &ConnArgs) -> Prepared {
    let state_dir = pincer_gateway::config::default_state_dir();
    let local = pincer_gateway::state_dir::read_gateway_json(&state_dir);
    let explicit_url = conn
        .url
        .clone()
        .or_else(|| env_first(&["PINCER_GATEWAY_URL", "OPENCLAW_GATEWAY_URL"]));
    let from_local_file = explicit_url.is_none();
    let url = explicit_url.unwrap_or_else(|| match &local {
        Some(info) => info.url.clone(),
        None => "ws://127.0.0.1:18789".to_string(),
    });
    let tls_fingerprint = conn
        .tls_fingerprint
        .clone()
        .or_else(|| env_first(&["PINCER_GATEWAY_TLS_FINGERPRINT"]))
        .or_else(|| {
            // Our own local gateway: pin the certificate it recorded.
            local
                .as_ref()
                .filter(|_| from_local_file)
                .and_then(|i| i.tls_fingerprint.clone())
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
    // Like the official CLI: on the gateway host with the shared secret the CLI needs no
    // device identity (the gateway keeps its scopes); remotely, or without a shared secret,
    // it signs with its own identity and can then use its device token.
    let local_with_secret = (token.is_some() || password.is_some()) && is_loopback_url(&url);
    let identity = if conn.no_device || local_with_secret {
        None
    } else {
        match ClientIdentity::load_or_create(&state_dir) {
            Ok(id) => Some(id),
            Err(e) => {
                eprintln!("warning: connecting without a device identity: {e}");
                None
            }
        }
    };
    let device_token = identity
        .as_ref()
        .filter(|_| token.is_none() && password.is_none())
        .and_then(|id| id.token_for(&url, "operator"))
        .map(|t| t.token);
    let opts = ClientOptions {
        token,
        password,
        device: identity.as_ref().map(|i| i.keypair.clone()),
        device_token,
        tls_fingerprint,
        connect_timeout: timeout,
        request_timeout: timeout,
        ..ClientOptions::cli(url)
    };
    Prepared { opts, identity }
}

/// Connect; keep the device token the gateway hands out, drop one it refused.
pub(crate) async fn connect(prepared: Prepared) -> Result<GatewayClient, ClientError> {
    let Prepared { opts, identity } = prepared;
    let url = opts.url.clone();
    let role = opts.role.clone();
    let used_device_token = opts.device_token.is_some();
    match GatewayClient::connect(opts).await {
        Ok(client) => {
            if let Some(id) = &identity {
                let auth = &client.hello()["auth"];
                if let Some(token) = auth["deviceToken"].as_str() {
                    let stored = StoredToken {
                        token: token.to_string(),
                        scopes: auth["scopes"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .filter_map(|s| s.as_str().map(String::from))
                                    .collect()
                            })
                            .unwrap_or_default(),
                        issued_at_ms: auth["issuedAtMs"].as_u64().unwrap_or(0),
                    };
                    if let Err(e) = id.store_token(&url, &role, stored) {
                        eprintln!("warning: cannot store the device token: {e}");
                    }
                }
            }
            Ok(client)
        }
        Err(e) => {
            let refused = e
                .rpc_error()
                .and_then(|s| s.details.as_ref())
                .is_some_and(|d| {
                    d["code"] == "AUTH_DEVICE_TOKEN_MISMATCH" || d["code"] == "AUTH_SCOPE_MISMATCH"
                });
            if refused && used_device_token {
                if let Some(id) = &identity {
                    let _ = id.clear_token(&url, &role);
                }
            }
            Err(e)
        }
    }
}

/// `ws(s)://127.x.x.x`, `[::1]` or `localhost`.
fn is_loopback_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("wss://"))
        .unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Connect, call, close. Protocol errors come back as `ClientError::Rpc`.
pub(crate) fn one_call(
    conn: &ConnArgs,
    method: &str,
    params: Option<Value>,
) -> Result<std::result::Result<Value, ClientError>> {
    let prepared = options(conn);
    let url = prepared.opts.url.clone();
    let rt = runtime()?;
    Ok(rt.block_on(async move {
        let client = match connect(prepared).await {
            Ok(c) => c,
            Err(e @ ClientError::Rpc(_)) => return Err(e),
            Err(
                e
                @ (ClientError::TlsRequired(_) | ClientError::NotTls(_) | ClientError::Tls { .. }),
            ) => return Err(ClientError::Protocol(e.to_string())),
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

pub(crate) fn report_error(e: &ClientError) -> ExitCode {
    match e.rpc_error() {
        Some(shape) => {
            eprintln!("error: {} {}", shape.code.as_str(), shape.message);
            if let Some(details) = &shape.details {
                eprintln!("details: {details}");
            }
            if let Some(ms) = shape.retry_after_ms {
                eprintln!("retry after {ms} ms");
            }
            ExitCode::from(1)
        }
        None => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

pub(crate) fn print_json(value: &Value, raw: bool) {
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
            if let Some(fp) = p["tls"]["fingerprintSha256"].as_str() {
                println!("  tls: on, certificate SHA-256 fingerprint {fp}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report_error(&e)),
    }
}
