//! Raw protocol frames over tokio-tungstenite: open, challenge, `connect` (token and optionally
//! a signed device identity), requests with numeric ids, and a cheap `res` scanner so the load
//! client spends as little CPU per frame as possible.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use pincer_protocol::device_auth::{build_payload_v3, DeviceKeypair};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub type Ws = WebSocketStream<TcpStream>;

/// Scopes the reference harness asks for (`ocproto.build_connect_params`).
pub const DEFAULT_SCOPES: [&str; 5] = [
    "operator.admin",
    "operator.read",
    "operator.write",
    "operator.approvals",
    "operator.pairing",
];

/// How every bench connection identifies itself.
#[derive(Clone)]
pub struct ConnectOpts {
    pub url: String,
    pub token: Option<String>,
    pub password: Option<String>,
    /// Sign `connect` with this identity (v3 payload), as the client crate does.
    pub device: Option<Arc<DeviceKeypair>>,
    pub client_id: String,
    pub client_mode: String,
    pub scopes: Vec<String>,
    pub timeout: Duration,
    /// tungstenite's read buffer: big for throughput (`rps`), small for many quiet sockets
    /// (tungstenite zero-fills this much before every read).
    pub read_buffer: usize,
}

/// Read buffer for throughput scenarios.
pub const READ_BUFFER: usize = 8 * 1024;
/// Read buffer for listeners and idle clients (one small frame per read).
pub const SMALL_READ_BUFFER: usize = 2 * 1024;

/// Milestones of one connection attempt, measured from just before the TCP connect.
#[derive(Debug, Clone, Copy)]
pub struct OpenTimings {
    pub t0: Instant,
    /// WebSocket upgrade completed.
    pub open: Instant,
    pub challenge: Instant,
    /// `hello-ok` received.
    pub hello: Instant,
}

fn host_port(url: &str) -> Result<&str> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| anyhow!("--url must be ws://host:port (got {url:?})"))?;
    Ok(rest.split('/').next().unwrap_or(rest))
}

/// Small buffers: 10k idle bench clients must not cost the client gigabytes.
fn ws_config(read_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(read_buffer)
        .write_buffer_size(64 * 1024)
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
}

/// TCP connect + WebSocket upgrade.
pub async fn open(url: &str) -> Result<Ws> {
    open_with(url, READ_BUFFER).await
}

/// [`open`] with a given read buffer size.
pub async fn open_with(url: &str, read_buffer: usize) -> Result<Ws> {
    let addr = host_port(url)?;
    let tcp = TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    tcp.set_nodelay(true)?;
    let (ws, _) =
        tokio_tungstenite::client_async_with_config(url, tcp, Some(ws_config(read_buffer)))
            .await
            .context("websocket upgrade failed")?;
    Ok(ws)
}

/// Next text frame (pings are answered by tungstenite on the next write/flush).
pub async fn next_text(ws: &mut Ws) -> Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => return Ok(t.as_str().to_owned()),
            Some(Ok(Message::Binary(b))) => return Ok(String::from_utf8_lossy(&b).into_owned()),
            Some(Ok(Message::Close(f))) => bail!(
                "closed by gateway{}",
                f.map(|f| format!(" ({} {})", u16::from(f.code), f.reason))
                    .unwrap_or_default()
            ),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection ended"),
        }
    }
}

async fn with_deadline<T>(
    timeout: Duration,
    what: &str,
    f: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(timeout, f)
        .await
        .map_err(|_| anyhow!("timed out after {timeout:?} waiting for {what}"))?
}

/// `connect.challenge` payload.
pub struct Challenge {
    pub nonce: String,
    pub ts: u64,
}

pub async fn read_challenge(ws: &mut Ws, timeout: Duration) -> Result<Challenge> {
    with_deadline(timeout, "connect.challenge", async {
        loop {
            let text = next_text(ws).await?;
            if !text.contains("\"connect.challenge\"") {
                continue;
            }
            let v: Value = serde_json::from_str(&text)?;
            return Ok(Challenge {
                nonce: v["payload"]["nonce"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                ts: v["payload"]["ts"].as_u64().unwrap_or_default(),
            });
        }
    })
    .await
}

/// The `connect` request frame (same shape as the reference harness sends).
pub fn connect_frame(opts: &ConnectOpts, challenge: &Challenge, id: &str) -> String {
    let mut auth = serde_json::Map::new();
    if let Some(t) = &opts.token {
        auth.insert("token".into(), json!(t));
    }
    if let Some(p) = &opts.password {
        auth.insert("password".into(), json!(p));
    }
    let platform = "linux";
    let mut params = json!({
        "minProtocol": pincer_protocol::PROTOCOL_VERSION,
        "maxProtocol": pincer_protocol::PROTOCOL_VERSION,
        "client": {"id": opts.client_id, "version": env!("CARGO_PKG_VERSION"), "platform": platform, "mode": opts.client_mode},
        "role": "operator",
        "scopes": opts.scopes,
        "caps": [],
        "commands": [],
        "permissions": {},
        "auth": auth,
        "locale": "en-US",
        "userAgent": concat!("pincer-bench/", env!("CARGO_PKG_VERSION")),
    });
    if let Some(kp) = &opts.device {
        let sig_token = opts.token.as_deref().unwrap_or("");
        let payload = build_payload_v3(
            &kp.device_id(),
            &opts.client_id,
            &opts.client_mode,
            "operator",
            &opts.scopes,
            challenge.ts,
            sig_token,
            &challenge.nonce,
            Some(platform),
            None,
        );
        params["device"] = json!({
            "id": kp.device_id(),
            "publicKey": kp.public_key(),
            "signature": kp.sign(&payload),
            "signedAt": challenge.ts,
            "nonce": challenge.nonce,
        });
    }
    json!({"type": "req", "id": id, "method": "connect", "params": params}).to_string()
}

/// A request frame with a numeric id (`params` is raw JSON or `None`).
pub fn request_frame(id: u64, method: &str, params: Option<&str>) -> String {
    let mut s = String::with_capacity(64 + method.len() + params.map_or(0, str::len));
    s.push_str(r#"{"type":"req","id":""#);
    s.push_str(&id.to_string());
    s.push_str(r#"","method":""#);
    s.push_str(method);
    s.push('"');
    if let Some(p) = params {
        s.push_str(r#","params":"#);
        s.push_str(p);
    }
    s.push('}');
    s
}

/// A `res` frame as the gateway writes it: `{"type":"res","id":"<id>","ok":<bool>,…`.
/// Returns `(id, ok)` without parsing the payload; `None` for anything else.
pub fn scan_res(text: &str) -> Option<(&str, bool)> {
    let rest = text.strip_prefix(r#"{"type":"res","id":""#)?;
    let end = rest.find('"')?;
    let (id, after) = rest.split_at(end);
    let ok = after.starts_with(r#"","ok":true"#);
    Some((id, ok))
}

/// Wait for the `res` with this id (events are skipped); returns its text.
pub async fn await_res(ws: &mut Ws, id: &str, timeout: Duration) -> Result<String> {
    with_deadline(timeout, "res", async {
        loop {
            let text = next_text(ws).await?;
            if let Some((rid, _)) = scan_res(&text) {
                if rid == id {
                    return Ok(text);
                }
            }
        }
    })
    .await
}

/// Open, answer the challenge, and wait for `hello-ok`.
pub async fn connect(opts: &ConnectOpts) -> Result<(Ws, OpenTimings)> {
    let t0 = Instant::now();
    let mut ws = with_deadline(
        opts.timeout,
        "websocket open",
        open_with(&opts.url, opts.read_buffer),
    )
    .await?;
    let t_open = Instant::now();
    let challenge = read_challenge(&mut ws, opts.timeout).await?;
    let t_ch = Instant::now();
    ws.send(Message::Text(connect_frame(opts, &challenge, "c").into()))
        .await?;
    let res = await_res(&mut ws, "c", opts.timeout).await?;
    let t_hello = Instant::now();
    if scan_res(&res).is_none_or(|(_, ok)| !ok) {
        bail!("connect refused: {}", truncate(&res, 300));
    }
    Ok((
        ws,
        OpenTimings {
            t0,
            open: t_open,
            challenge: t_ch,
            hello: t_hello,
        },
    ))
}

/// One request, waiting for its `res`; error if `ok:false`.
pub async fn call(
    ws: &mut Ws,
    id: u64,
    method: &str,
    params: Option<&str>,
    timeout: Duration,
) -> Result<String> {
    ws.send(Message::Text(request_frame(id, method, params).into()))
        .await?;
    let res = await_res(ws, &id.to_string(), timeout).await?;
    match scan_res(&res) {
        Some((_, true)) => Ok(res),
        _ => bail!("{method} failed: {}", truncate(&res, 300)),
    }
}

/// Close handshake (bounded): send 1000, read until the gateway's close or EOF.
pub async fn close(mut ws: Ws, timeout: Duration) {
    let _ = tokio::time::timeout(timeout, async {
        if ws.close(None).await.is_err() {
            return;
        }
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

pub fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_res_frames_without_parsing() {
        assert_eq!(
            scan_res(r#"{"type":"res","id":"17","ok":true,"payload":{}}"#),
            Some(("17", true))
        );
        assert_eq!(
            scan_res(r#"{"type":"res","id":"c","ok":false,"error":{}}"#),
            Some(("c", false))
        );
        assert_eq!(scan_res(r#"{"type":"event","event":"tick"}"#), None);
    }

    #[test]
    fn request_frames_are_valid_json() {
        let f = request_frame(7, "health", Some(r#"{"probe":false}"#));
        let v: Value = serde_json::from_str(&f).unwrap_or_default();
        assert_eq!(v["id"], "7");
        assert_eq!(v["params"]["probe"], false);
        let f = request_frame(8, "status", None);
        let v: Value = serde_json::from_str(&f).unwrap_or_default();
        assert_eq!(v["method"], "status");
        assert!(v.get("params").is_none());
    }
}
