//! Async OpenClaw protocol v4 client: challenge, connect (optionally with a signed device
//! identity and its device token), RPC with timeouts, and the event stream. Used by the CLI,
//! tests and tools.
//!
//! `ws://` and `wss://` (rustls/ring; platform verifier, or a pinned SHA-256 certificate
//! fingerprint). The client's own identity and stored device tokens: [`identity`].

pub mod identity;
pub mod tls;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use pincer_protocol::connect::{
    ClientId, ClientInfo, ClientMode, ConnectAuth, ConnectParams, DeviceProofParams,
};
use pincer_protocol::device_auth::{build_payload_v3, DeviceKeypair};
use pincer_protocol::errors::ErrorShape;
use pincer_protocol::PROTOCOL_VERSION;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Mutex};

pub use tls::Stream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("invalid gateway url {0:?}: expected ws://host:port or wss://host:port")]
    InvalidUrl(String),
    #[error("the gateway at {0} speaks TLS on this port: use wss:// (and pin its certificate with --tls-fingerprint)")]
    TlsRequired(String),
    #[error("the gateway at {0} does not speak TLS on this port: use ws://")]
    NotTls(String),
    #[error("TLS with {url} failed: {reason}")]
    Tls { url: String, reason: String },
    #[error("cannot connect to {url}: {source}")]
    Connect { url: String, source: std::io::Error },
    #[error("websocket error: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, &'static str),
    #[error("{}: {}", .0.code.as_str(), .0.message)]
    Rpc(ErrorShape),
    #[error("connection closed{}", .0.as_ref().map(|(c, r)| format!(" ({c} {r})")).unwrap_or_default())]
    Closed(Option<(u16, String)>),
    #[error("protocol error: {0}")]
    Protocol(String),
}

impl ClientError {
    /// The gateway's error shape, when the failure is a protocol error answer.
    pub fn rpc_error(&self) -> Option<&ErrorShape> {
        match self {
            ClientError::Rpc(e) => Some(e),
            _ => None,
        }
    }
}

/// How to connect.
#[derive(Clone)]
pub struct ClientOptions {
    pub url: String,
    pub token: Option<String>,
    pub password: Option<String>,
    pub client_id: ClientId,
    pub client_mode: ClientMode,
    pub client_version: String,
    pub display_name: Option<String>,
    pub role: String,
    pub scopes: Vec<String>,
    /// Sign the connect with this device identity (v3 payload).
    pub device: Option<DeviceKeypair>,
    /// `auth.deviceToken`: used when no shared token/password is given.
    pub device_token: Option<String>,
    /// Pin the gateway's TLS certificate (SHA-256, hex or `AB:CD:…`) for `wss://`.
    pub tls_fingerprint: Option<String>,
    /// `client.platform` (default: this OS).
    pub platform: Option<String>,
    /// `client.deviceFamily`.
    pub device_family: Option<String>,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
    /// `connect.params.caps` (e.g. `tool-events`; for nodes: `system`, `camera`, …).
    pub caps: Vec<String>,
    /// `connect.params.commands`: the commands a node declares (sent when non-empty).
    pub commands: Vec<String>,
    /// `connect.params.permissions`: a node's permission toggles.
    pub permissions: Option<std::collections::BTreeMap<String, bool>>,
    /// `connect.params.pathEnv`: a node's `PATH`.
    pub path_env: Option<String>,
}

impl std::fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientOptions")
            .field("url", &self.url)
            .field("client_id", &self.client_id)
            .field("role", &self.role)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl ClientOptions {
    /// The CLI's defaults: `cli`/`cli`, operator with the CLI default scopes.
    pub fn cli(url: impl Into<String>) -> Self {
        ClientOptions {
            url: url.into(),
            token: None,
            password: None,
            client_id: ClientId::Cli,
            client_mode: ClientMode::Cli,
            client_version: env!("CARGO_PKG_VERSION").to_string(),
            display_name: None,
            role: "operator".into(),
            scopes: pincer_protocol::scopes::CLI_DEFAULT_OPERATOR_SCOPES
                .iter()
                .map(|s| s.to_string())
                .collect(),
            device: None,
            device_token: None,
            tls_fingerprint: None,
            platform: None,
            device_family: None,
            caps: Vec::new(),
            commands: Vec::new(),
            permissions: None,
            path_env: None,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// A server event as received.
#[derive(Debug, Clone)]
pub struct EventMessage {
    pub event: String,
    pub payload: Value,
    pub seq: Option<u64>,
    pub state_version: Option<Value>,
}

type Pending =
    Arc<std::sync::Mutex<HashMap<String, (bool, oneshot::Sender<Result<Value, ErrorShape>>)>>>;
type Sink = futures_util::stream::SplitSink<WebSocketStream<Stream>, Message>;

/// A connected, authenticated client.
pub struct GatewayClient {
    sink: Arc<Mutex<Sink>>,
    pending: Pending,
    events: mpsc::Receiver<EventMessage>,
    closed: Arc<std::sync::Mutex<Option<(u16, String)>>>,
    hello: Value,
    next_id: AtomicU64,
    request_timeout: Duration,
}

/// A parsed gateway URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    tls: bool,
    host: String,
    port: u16,
}

fn parse_target(url: &str) -> Result<Target, ClientError> {
    let bad = || ClientError::InvalidUrl(url.to_string());
    let (tls, rest) = if let Some(r) = url.strip_prefix("wss://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("ws://") {
        (false, r)
    } else {
        return Err(bad());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    if authority.is_empty() {
        return Err(bad());
    }
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None => default_port,
        };
        (h.to_string(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p.parse().map_err(|_| bad())?),
            None => (authority.to_string(), default_port),
        }
    };
    Ok(Target { tls, host, port })
}

/// The server's explanation when it refused the WebSocket upgrade with an HTTP status.
fn http_refusal(e: &tokio_tungstenite::tungstenite::Error) -> Option<String> {
    match e {
        tokio_tungstenite::tungstenite::Error::Http(resp) => Some(
            resp.body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default(),
        ),
        _ => None,
    }
}

/// Open the transport (TCP, then TLS for `wss://`) and do the WebSocket handshake.
async fn open(opts: &ClientOptions) -> Result<WebSocketStream<Stream>, ClientError> {
    let target = parse_target(&opts.url)?;
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|source| ClientError::Connect {
            url: opts.url.clone(),
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    let stream = if target.tls {
        let config = tls::client_config(opts.tls_fingerprint.as_deref()).map_err(|reason| {
            ClientError::Tls {
                url: opts.url.clone(),
                reason,
            }
        })?;
        let name = rustls::pki_types::ServerName::try_from(target.host.clone())
            .map_err(|_| ClientError::InvalidUrl(opts.url.clone()))?;
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                let reason = e.to_string();
                if reason.contains("InvalidContentType") || reason.contains("corrupt message") {
                    ClientError::NotTls(opts.url.clone())
                } else {
                    ClientError::Tls {
                        url: opts.url.clone(),
                        reason,
                    }
                }
            })?;
        Stream::Tls(Box::new(tls))
    } else {
        Stream::Plain(tcp)
    };
    match tokio_tungstenite::client_async_with_config(
        opts.url.as_str(),
        stream,
        Some(client_ws_config()),
    )
    .await
    {
        Ok((ws, _)) => Ok(ws),
        Err(e) => match http_refusal(&e) {
            Some(body) if !target.tls && body.contains("speaks TLS") => {
                Err(ClientError::TlsRequired(opts.url.clone()))
            }
            _ => Err(e.into()),
        },
    }
}

fn client_ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .max_message_size(Some(pincer_protocol::limits::MAX_PAYLOAD_BYTES))
        .max_frame_size(Some(pincer_protocol::limits::MAX_PAYLOAD_BYTES))
}

impl GatewayClient {
    /// Open the socket, answer the challenge with `connect`, and wait for `hello-ok`.
    pub async fn connect(opts: ClientOptions) -> Result<GatewayClient, ClientError> {
        let deadline = opts.connect_timeout;
        tokio::time::timeout(deadline, Self::connect_inner(opts))
            .await
            .map_err(|_| ClientError::Timeout(deadline, "hello-ok"))?
    }

    async fn connect_inner(opts: ClientOptions) -> Result<GatewayClient, ClientError> {
        let mut ws = open(&opts).await?;
        // 1. challenge
        let challenge = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str())
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    if v["event"] == "connect.challenge" {
                        break v["payload"].clone();
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(ClientError::Closed(
                        frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                    ))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ClientError::Closed(None)),
            }
        };
        let nonce = challenge["nonce"].as_str().unwrap_or_default().to_string();
        let signed_at = challenge["ts"].as_u64().unwrap_or_default();
        // 2. connect
        let shared = opts.token.is_some() || opts.password.is_some();
        let auth = ConnectAuth {
            token: opts.token.clone(),
            password: opts.password.clone(),
            device_token: if shared {
                None
            } else {
                opts.device_token.clone()
            },
            ..Default::default()
        };
        let platform = opts
            .platform
            .clone()
            .unwrap_or_else(|| std::env::consts::OS.to_string());
        let device = opts.device.as_ref().map(|kp| {
            let payload = build_payload_v3(
                &kp.device_id(),
                opts.client_id.as_str(),
                opts.client_mode.as_str(),
                &opts.role,
                &opts.scopes,
                signed_at,
                auth.signature_token(),
                &nonce,
                Some(&platform),
                opts.device_family.as_deref(),
            );
            DeviceProofParams {
                id: kp.device_id(),
                public_key: kp.public_key(),
                signature: kp.sign(&payload),
                signed_at,
                nonce: nonce.clone(),
            }
        });
        let params = ConnectParams {
            min_protocol: PROTOCOL_VERSION as u64,
            max_protocol: PROTOCOL_VERSION as u64,
            client: ClientInfo {
                id: opts.client_id,
                display_name: opts.display_name.clone(),
                version: opts.client_version.clone(),
                build_id: None,
                platform,
                device_family: opts.device_family.clone(),
                model_identifier: None,
                time_zone: None,
                mode: opts.client_mode,
                instance_id: None,
            },
            caps: Some(opts.caps.clone()),
            commands: (!opts.commands.is_empty()).then(|| opts.commands.clone()),
            computer_use: None,
            worker_runs: None,
            permissions: opts.permissions.clone(),
            path_env: opts.path_env.clone(),
            role: Some(opts.role.clone()),
            scopes: Some(opts.scopes.clone()),
            model_catalog: None,
            device,
            auth: (shared || auth.device_token.is_some()).then_some(auth),
            locale: None,
            user_agent: Some(format!("pincer/{}", env!("CARGO_PKG_VERSION"))),
        };
        let connect_id = format!("c-{}", uuid::Uuid::new_v4());
        let frame = json!({"type":"req","id":connect_id,"method":"connect","params":params});
        ws.send(Message::Text(frame.to_string().into())).await?;
        // 3. hello-ok (events before it are kept)
        let mut early_events = Vec::new();
        let hello = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(t.as_str())
                        .map_err(|e| ClientError::Protocol(e.to_string()))?;
                    if v["type"] == "res" && v["id"] == connect_id.as_str() {
                        if v["ok"] == true {
                            break v["payload"].clone();
                        }
                        let err: ErrorShape = serde_json::from_value(v["error"].clone())
                            .map_err(|e| ClientError::Protocol(format!("bad error shape: {e}")))?;
                        return Err(ClientError::Rpc(err));
                    }
                    if v["type"] == "event" {
                        early_events.push(v);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(ClientError::Closed(
                        frame.map(|f| (u16::from(f.code), f.reason.to_string())),
                    ))
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(ClientError::Closed(None)),
            }
        };
        let (sink, mut stream) = ws.split();
        let pending: Pending = Arc::default();
        let closed: Arc<std::sync::Mutex<Option<(u16, String)>>> = Arc::default();
        let (tx, rx) = mpsc::channel(1024);
        for v in early_events {
            let _ = tx.try_send(to_event(&v));
        }
        let reader_pending = Arc::clone(&pending);
        let reader_closed = Arc::clone(&closed);
        tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                match msg {
                    Ok(Message::Text(t)) => {
                        let Ok(v) = serde_json::from_str::<Value>(t.as_str()) else {
                            continue;
                        };
                        if v["type"] == "event" {
                            let _ = tx.try_send(to_event(&v));
                        } else if v["type"] == "res" {
                            route_response(&reader_pending, &v);
                        }
                    }
                    Ok(Message::Close(frame)) => {
                        if let Ok(mut c) = reader_closed.lock() {
                            *c = frame.map(|f| (u16::from(f.code), f.reason.to_string()));
                        }
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            if let Ok(mut p) = reader_pending.lock() {
                p.clear();
            }
        });
        Ok(GatewayClient {
            sink: Arc::new(Mutex::new(sink)),
            pending,
            events: rx,
            closed,
            hello,
            next_id: AtomicU64::new(1),
            request_timeout: opts.request_timeout,
        })
    }

    /// The `hello-ok` payload.
    pub fn hello(&self) -> &Value {
        &self.hello
    }

    /// One RPC; returns the payload of the (first) `res`.
    pub async fn request(&self, method: &str, params: Option<Value>) -> Result<Value, ClientError> {
        self.request_inner(method, params, false, self.request_timeout)
            .await
    }

    /// One RPC with an explicit timeout.
    pub async fn request_with_timeout(
        &self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        self.request_inner(method, params, false, timeout).await
    }

    /// For methods that answer twice (`agent`): skip an `accepted` ack and return the final `res`.
    pub async fn request_final(
        &self,
        method: &str,
        params: Option<Value>,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        self.request_inner(method, params, true, timeout).await
    }

    async fn request_inner(
        &self,
        method: &str,
        params: Option<Value>,
        expect_final: bool,
        timeout: Duration,
    ) -> Result<Value, ClientError> {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let id = format!("r{n}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id.clone(), (expect_final, tx));
        }
        let mut frame = json!({"type":"req","id":id,"method":method});
        if let (Some(p), Some(obj)) = (params, frame.as_object_mut()) {
            obj.insert("params".into(), p);
        }
        self.sink
            .lock()
            .await
            .send(Message::Text(frame.to_string().into()))
            .await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(payload))) => Ok(payload),
            Ok(Ok(Err(shape))) => Err(ClientError::Rpc(shape)),
            Ok(Err(_)) => Err(ClientError::Closed(
                self.closed.lock().ok().and_then(|c| c.clone()),
            )),
            Err(_) => {
                if let Ok(mut p) = self.pending.lock() {
                    p.remove(&id);
                }
                Err(ClientError::Timeout(timeout, "response"))
            }
        }
    }

    /// Moves the event stream out (for a task that reads events while this client makes
    /// requests); later [`GatewayClient::next_event`] calls return `None`.
    pub fn take_events(&mut self) -> mpsc::Receiver<EventMessage> {
        std::mem::replace(&mut self.events, mpsc::channel(1).1)
    }

    /// The next server event (`None` once the connection is gone).
    pub async fn next_event(&mut self) -> Option<EventMessage> {
        self.events.recv().await
    }

    /// The close code/reason the server sent, if any.
    pub fn close_info(&self) -> Option<(u16, String)> {
        self.closed.lock().ok().and_then(|c| c.clone())
    }

    /// Close with 1000.
    pub async fn close(self) {
        let mut sink = self.sink.lock().await;
        let _ = sink.send(Message::Close(None)).await;
        let _ = sink.close().await;
    }
}

fn to_event(v: &Value) -> EventMessage {
    EventMessage {
        event: v["event"].as_str().unwrap_or_default().to_string(),
        payload: v.get("payload").cloned().unwrap_or(Value::Null),
        seq: v.get("seq").and_then(Value::as_u64),
        state_version: v.get("stateVersion").cloned(),
    }
}

fn route_response(pending: &Pending, v: &Value) {
    let Some(id) = v["id"].as_str() else { return };
    let Ok(mut map) = pending.lock() else { return };
    let is_ack = v["ok"] == true && v["payload"]["status"] == "accepted";
    match map.get(id) {
        Some((true, _)) if is_ack => return,
        Some(_) => {}
        None => return,
    }
    if let Some((_, tx)) = map.remove(id) {
        let result = if v["ok"] == true {
            Ok(v.get("payload").cloned().unwrap_or(Value::Null))
        } else {
            serde_json::from_value::<ErrorShape>(v["error"].clone())
                .map_err(|e| {
                    ErrorShape::invalid_request(format!("malformed error from gateway: {e}"))
                })
                .and_then(Err)
        };
        let _ = tx.send(result);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = |u: &str| parse_target(u).ok();
        assert_eq!(
            t("ws://127.0.0.1:18789"),
            Some(Target {
                tls: false,
                host: "127.0.0.1".into(),
                port: 18789
            })
        );
        assert_eq!(
            t("wss://gw.example/path"),
            Some(Target {
                tls: true,
                host: "gw.example".into(),
                port: 443
            })
        );
        assert_eq!(
            t("ws://[::1]:9/x"),
            Some(Target {
                tls: false,
                host: "::1".into(),
                port: 9
            })
        );
        assert!(matches!(
            parse_target("http://x"),
            Err(ClientError::InvalidUrl(_))
        ));
        assert!(matches!(
            parse_target("ws://"),
            Err(ClientError::InvalidUrl(_))
        ));
        assert!(matches!(
            parse_target("ws://h:notaport"),
            Err(ClientError::InvalidUrl(_))
        ));
    }
}
