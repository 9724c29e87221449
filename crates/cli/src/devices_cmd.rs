//! `pincer devices list|approve|reject|remove|rename|rotate|revoke` and `pincer dashboard`.

use std::process::ExitCode;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client_cmd::{one_call, print_json, report_error, ConnArgs};

#[derive(Subcommand)]
pub enum DevicesCmd {
    /// Pending pairing requests and paired devices.
    List(ConnArgs),
    /// Approve a pending request (by request id, or the latest request of a device id).
    Approve(TargetArgs),
    /// Reject a pending request (by request id, or the latest request of a device id).
    Reject(TargetArgs),
    /// Remove a paired device: its tokens stop working and its sockets close.
    Remove(TargetArgs),
    /// Set a paired device's label.
    Rename(RenameArgs),
    /// Issue a new device token (the old one stops working; the device's sockets close).
    Rotate(TokenArgs),
    /// Revoke a device token (the device's sockets close).
    Revoke(TokenArgs),
}

#[derive(Args)]
pub struct TargetArgs {
    /// Request id or device id.
    pub id: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args)]
pub struct RenameArgs {
    pub device_id: String,
    /// New label (1–64 characters).
    pub label: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args)]
pub struct TokenArgs {
    pub device_id: String,
    /// Role of the token.
    #[arg(long, default_value = "operator")]
    pub role: String,
    /// Scopes of the new token (rotate only; default: the current grant).
    #[arg(long = "scope")]
    pub scopes: Vec<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

fn call(
    conn: &ConnArgs,
    method: &str,
    params: Value,
) -> Result<std::result::Result<Value, ExitCode>> {
    Ok(one_call(conn, method, Some(params))?.map_err(|e| report_error(&e)))
}

fn list_raw(conn: &ConnArgs) -> Result<std::result::Result<Value, ExitCode>> {
    call(conn, "device.pair.list", json!({}))
}

/// A request id as given, or the newest pending request of the device id given.
fn resolve_request(conn: &ConnArgs, id: &str) -> Result<std::result::Result<String, ExitCode>> {
    let list = match list_raw(conn)? {
        Ok(v) => v,
        Err(code) => return Ok(Err(code)),
    };
    let pending = list["pending"].as_array().cloned().unwrap_or_default();
    if pending.iter().any(|p| p["requestId"] == id) {
        return Ok(Ok(id.to_string()));
    }
    let newest = pending
        .iter()
        .filter(|p| p["deviceId"] == id)
        .max_by_key(|p| p["ts"].as_u64().unwrap_or(0));
    match newest.and_then(|p| p["requestId"].as_str()) {
        Some(r) => Ok(Ok(r.to_string())),
        None => bail!("no pending pairing request with request id or device id {id:?} (see `pincer devices list`)"),
    }
}

pub(crate) fn short(s: &str) -> &str {
    s.get(..12).unwrap_or(s)
}

pub(crate) fn join(v: &Value) -> String {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(",")
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "-".into())
}

fn print_list(v: &Value) {
    let pending = v["pending"].as_array().cloned().unwrap_or_default();
    let paired = v["paired"].as_array().cloned().unwrap_or_default();
    println!("Pending ({}):", pending.len());
    for p in &pending {
        println!(
            "  request {}  device {}  {} {}/{}  role {}  scopes {}  from {}",
            p["requestId"].as_str().unwrap_or("?"),
            short(p["deviceId"].as_str().unwrap_or("?")),
            p["displayName"].as_str().unwrap_or(""),
            p["clientId"].as_str().unwrap_or("?"),
            p["clientMode"].as_str().unwrap_or("?"),
            p["role"].as_str().unwrap_or("?"),
            join(&p["scopes"]),
            p["remoteIp"].as_str().unwrap_or("?"),
        );
    }
    println!("Paired ({}):", paired.len());
    for d in &paired {
        let name = d["operatorLabel"]
            .as_str()
            .or(d["displayName"].as_str())
            .unwrap_or("");
        println!(
            "  {}  {} {}/{} {}  roles {}  scopes {}  via {}{}",
            d["deviceId"].as_str().unwrap_or("?"),
            name,
            d["clientId"].as_str().unwrap_or("?"),
            d["clientMode"].as_str().unwrap_or("?"),
            d["platform"].as_str().unwrap_or(""),
            join(&d["roles"]),
            join(&d["scopes"]),
            d["approvedVia"].as_str().unwrap_or("?"),
            if d["connected"] == true {
                "  (connected)"
            } else {
                ""
            },
        );
    }
}

pub fn run(cmd: DevicesCmd) -> Result<ExitCode> {
    let (conn, result) = match cmd {
        DevicesCmd::List(conn) => {
            let r = list_raw(&conn)?;
            if let Ok(v) = &r {
                if conn.json {
                    print_json(v, true);
                } else {
                    print_list(v);
                }
                return Ok(ExitCode::SUCCESS);
            }
            (conn, r)
        }
        DevicesCmd::Approve(a) => match resolve_request(&a.conn, &a.id)? {
            Ok(req) => {
                let r = call(&a.conn, "device.pair.approve", json!({"requestId": req}))?;
                (a.conn, r)
            }
            Err(code) => return Ok(code),
        },
        DevicesCmd::Reject(a) => match resolve_request(&a.conn, &a.id)? {
            Ok(req) => {
                let r = call(&a.conn, "device.pair.reject", json!({"requestId": req}))?;
                (a.conn, r)
            }
            Err(code) => return Ok(code),
        },
        DevicesCmd::Remove(a) => {
            let r = call(&a.conn, "device.pair.remove", json!({"deviceId": a.id}))?;
            (a.conn, r)
        }
        DevicesCmd::Rename(a) => {
            let r = call(
                &a.conn,
                "device.pair.rename",
                json!({"deviceId": a.device_id, "label": a.label}),
            )?;
            (a.conn, r)
        }
        DevicesCmd::Rotate(a) => {
            let mut params = json!({"deviceId": a.device_id, "role": a.role});
            if !a.scopes.is_empty() {
                params["scopes"] = json!(a.scopes);
            }
            let r = call(&a.conn, "device.token.rotate", params)?;
            (a.conn, r)
        }
        DevicesCmd::Revoke(a) => {
            let r = call(
                &a.conn,
                "device.token.revoke",
                json!({"deviceId": a.device_id, "role": a.role}),
            )?;
            (a.conn, r)
        }
    };
    match result {
        Ok(v) => {
            print_json(&v, conn.json);
            Ok(ExitCode::SUCCESS)
        }
        Err(code) => Ok(code),
    }
}

#[derive(Args)]
pub struct DashboardArgs {
    /// Open the URL in the default browser (xdg-open / open).
    #[arg(long)]
    pub open: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// Percent-encode a fragment value (RFC 3986 unreserved characters stay).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Control UI URL for a gateway URL: `ws(s)://host:port` → `http(s)://host:port/`, with
/// the shared token in the fragment (`#token=…`): fragments never reach the server's logs or
/// a proxy, and the UI reads them once and drops them from the address bar.
pub fn dashboard_url(gateway_url: &str, token: Option<&str>) -> String {
    let base = if let Some(rest) = gateway_url.strip_prefix("wss://") {
        format!("https://{rest}")
    } else if let Some(rest) = gateway_url.strip_prefix("ws://") {
        format!("http://{rest}")
    } else {
        gateway_url.to_string()
    };
    let base = match base.find("://").map(|i| i + 3) {
        Some(start) => match base[start..].find('/') {
            Some(slash) => base[..start + slash].to_string(),
            None => base,
        },
        None => base,
    };
    match token {
        Some(t) => format!("{base}/#token={}", encode(t)),
        None => format!("{base}/"),
    }
}

pub fn dashboard(args: DashboardArgs) -> Result<ExitCode> {
    let prepared = crate::client_cmd::options(&args.conn);
    let url = dashboard_url(&prepared.opts.url, prepared.opts.token.as_deref());
    println!("{url}");
    if prepared.opts.token.is_none() {
        eprintln!(
            "note: no gateway token found; the Control UI will ask for the password or token"
        );
    }
    if let Some(fp) = &prepared.opts.tls_fingerprint {
        eprintln!(
            "note: the gateway's certificate is self-signed; its SHA-256 fingerprint is {fp}"
        );
    }
    if args.open {
        let opener = if cfg!(target_os = "macos") {
            "open"
        } else {
            "xdg-open"
        };
        match std::process::Command::new(opener)
            .arg(&url)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
        {
            Ok(s) if s.success() => {}
            Ok(s) => eprintln!("warning: {opener} exited with {s}; open the URL above by hand"),
            Err(e) => eprintln!("warning: cannot run {opener}: {e}; open the URL above by hand"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dashboard_urls() {
        assert_eq!(
            dashboard_url("ws://127.0.0.1:18789", Some("a b/c")),
            "http://127.0.0.1:18789/#token=a%20b%2Fc"
        );
        assert_eq!(
            dashboard_url("wss://gw.example:8443/ws", None),
            "https://gw.example:8443/"
        );
    }
}
