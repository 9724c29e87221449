//! Test support for process-level tests: spawn the `pincer` binary on an ephemeral port with a
//! temp state dir, wait for `gateway.json`, speak raw protocol frames, load golden files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

/// Re-exported so process tests need no WebSocket dependencies of their own.
pub use futures_util::{SinkExt, StreamExt};
pub use tokio_tungstenite::tungstenite;
pub use tokio_tungstenite::tungstenite::Message;

pub mod compare;
pub mod device;
pub mod golden;
pub mod http;
pub mod masks;
pub mod replay;

/// How long to wait for a gateway to write `gateway.json`.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A gateway child process with its own temp state dir; killed on drop.
pub struct GatewayProcess {
    pub child: Child,
    pub state_dir: tempfile::TempDir,
    /// Parsed `gateway.json`.
    pub info: Value,
    pub port: u16,
    pub url: String,
}

/// Options for [`GatewayProcess::spawn`].
#[derive(Debug, Clone, Default)]
pub struct SpawnOptions {
    /// Extra CLI args after `gateway run --port 0`.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl SpawnOptions {
    pub fn arg(mut self, a: impl Into<String>) -> Self {
        self.args.push(a.into());
        self
    }
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }
}

/// Build the command for `pincer gateway run --port 0` with a given state dir (output to files).
pub fn gateway_command(bin: &Path, state_dir: &Path, opts: &SpawnOptions) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(["gateway", "run", "--port", "0"]).args(&opts.args);
    cmd.env("PINCER_STATE_DIR", state_dir);
    for var in [
        "PINCER_GATEWAY_TOKEN",
        "OPENCLAW_GATEWAY_TOKEN",
        "PINCER_GATEWAY_PASSWORD",
        "OPENCLAW_GATEWAY_PASSWORD",
        "PINCER_GATEWAY_PORT",
        "OPENCLAW_GATEWAY_PORT",
        "PINCER_GATEWAY_URL",
        "OPENCLAW_GATEWAY_URL",
    ] {
        cmd.env_remove(var);
    }
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Wait until `<state>/gateway.json` exists and parses (or the child exits / time runs out).
pub fn wait_for_gateway_json(
    state_dir: &Path,
    child: &mut Child,
    timeout: Duration,
) -> Result<Value, String> {
    let path = state_dir.join("gateway.json");
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(v) = serde_json::from_str::<Value>(&text) {
                return Ok(v);
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "gateway exited before writing gateway.json: {status}"
            ));
        }
        if Instant::now() > deadline {
            return Err(format!("no {} after {timeout:?}", path.display()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

impl GatewayProcess {
    /// Spawn and wait for `gateway.json`. Stdout/stderr go to files in the state dir.
    pub fn spawn(bin: &Path, opts: SpawnOptions) -> GatewayProcess {
        let state_dir = tempfile::tempdir().expect("temp state dir");
        Self::spawn_in(bin, state_dir, opts)
    }

    /// Spawn with a given (possibly pre-populated) temp state dir.
    pub fn spawn_in(
        bin: &Path,
        state_dir: tempfile::TempDir,
        opts: SpawnOptions,
    ) -> GatewayProcess {
        let out = std::fs::File::create(state_dir.path().join("stdout.txt")).expect("stdout file");
        let err = std::fs::File::create(state_dir.path().join("stderr.txt")).expect("stderr file");
        let mut child = gateway_command(bin, state_dir.path(), &opts)
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn pincer");
        let info = match wait_for_gateway_json(state_dir.path(), &mut child, START_TIMEOUT) {
            Ok(v) => v,
            Err(e) => {
                let _ = child.kill();
                let stderr = std::fs::read_to_string(state_dir.path().join("stderr.txt"))
                    .unwrap_or_default();
                panic!("{e}\nstderr:\n{stderr}");
            }
        };
        let port = info["port"].as_u64().expect("port in gateway.json") as u16;
        GatewayProcess {
            child,
            state_dir,
            port,
            url: format!("ws://127.0.0.1:{port}"),
            info,
        }
    }

    pub fn state_path(&self) -> &Path {
        self.state_dir.path()
    }

    /// The token the gateway generated (`<state>/gateway.token`).
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.state_dir.path().join("gateway.token"))
            .expect("gateway.token")
            .trim()
            .to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        std::fs::read_to_string(self.state_dir.path().join("stdout.txt")).unwrap_or_default()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.state_dir.path().join("stderr.txt")).unwrap_or_default()
    }

    /// Resident set size in KiB (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// The process has not exited.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Stderr plus the JSON log file (`<state>/logs/pincer.log`).
    pub fn all_logs(&self) -> String {
        let file = std::fs::read_to_string(self.state_dir.path().join("logs/pincer.log"))
            .unwrap_or_default();
        format!("{}\n{file}", self.stderr())
    }

    /// The first log line (stderr or log file) containing `needle`, waiting up to `timeout`
    /// (log writes are asynchronous).
    pub fn wait_for_log_line(&self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.all_logs().lines().find(|l| l.contains(needle)) {
                return Some(line.to_string());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The log file (`<state>/logs/pincer.log`) once it contains every one of `needles`, or
    /// as it is after `timeout` (its lines are written by the gateway's log thread, after the
    /// effect a test observed over the socket).
    pub fn wait_for_log_file(&self, needles: &[&str], timeout: Duration) -> String {
        let path = self.state_dir.path().join("logs/pincer.log");
        let deadline = Instant::now() + timeout;
        loop {
            let file = std::fs::read_to_string(&path).unwrap_or_default();
            if needles.iter().all(|n| file.contains(n)) || Instant::now() > deadline {
                return file;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Panic if the gateway exited or any of its threads panicked.
    pub fn assert_alive_without_panic(&mut self) {
        let logs = self.all_logs();
        assert!(
            !logs.contains("panicked at"),
            "the gateway panicked:\n{logs}"
        );
        assert!(self.is_alive(), "the gateway exited:\n{logs}");
    }

    /// Send SIGTERM (via `kill`, no unsafe code).
    pub fn sigterm(&self) {
        send_signal(self.pid(), "TERM");
    }

    /// Wait for exit up to `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Send a signal by name to a pid with the `kill` utility.
pub fn send_signal(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

/// A raw WebSocket to the gateway.
pub type RawWs = WebSocketStream<TcpStream>;

/// What the server sent next.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    Json(Value),
    Text(String),
    Close(u16, String),
    /// The socket ended without a close frame.
    Ended,
    Timeout,
}

impl Received {
    pub fn json(self) -> Value {
        match self {
            Received::Json(v) => v,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }
}

pub async fn ws_connect(url: &str) -> RawWs {
    let authority = url
        .strip_prefix("ws://")
        .expect("ws:// url")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let tcp = TcpStream::connect(&authority).await.expect("tcp connect");
    let (ws, _) = tokio_tungstenite::client_async(url, tcp)
        .await
        .expect("websocket handshake");
    ws
}

/// Open a WebSocket from a given local address (`127.0.0.x` spreads load over per-IP budgets);
/// the handshake error (e.g. HTTP 503) is returned, not panicked on.
pub async fn try_ws_connect_from(
    url: &str,
    source: std::net::IpAddr,
) -> Result<RawWs, tokio_tungstenite::tungstenite::Error> {
    let authority = url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .unwrap_or_default();
    let addr: std::net::SocketAddr = authority
        .parse()
        .map_err(|_| std::io::Error::other(format!("not an ip:port url: {url}")))?;
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(source, 0))?;
    let tcp = socket.connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    let (ws, _) = tokio_tungstenite::client_async(url, tcp).await?;
    Ok(ws)
}

/// Open a TCP connection from `source`, write `bytes` (maybe none), and drop it.
pub async fn tcp_send_and_drop(addr: std::net::SocketAddr, source: std::net::IpAddr, bytes: &[u8]) {
    use tokio::io::AsyncWriteExt;
    let Ok(socket) = tokio::net::TcpSocket::new_v4() else {
        return;
    };
    if socket.bind(std::net::SocketAddr::new(source, 0)).is_err() {
        return;
    }
    if let Ok(mut tcp) = socket.connect(addr).await {
        if !bytes.is_empty() {
            let _ = tcp.write_all(bytes).await;
        }
    }
}

pub async fn send_json(ws: &mut RawWs, v: &Value) {
    ws.send(Message::Text(v.to_string().into()))
        .await
        .expect("send");
}

pub async fn send_text(ws: &mut RawWs, t: &str) {
    ws.send(Message::Text(t.to_string().into()))
        .await
        .expect("send");
}

/// Next frame (pings/pongs skipped), or `Timeout`.
pub async fn recv(ws: &mut RawWs, timeout: Duration) -> Received {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next()).await;
        match next {
            Err(_) => return Received::Timeout,
            Ok(None) => return Received::Ended,
            Ok(Some(Err(_))) => return Received::Ended,
            Ok(Some(Ok(Message::Text(t)))) => {
                return match serde_json::from_str(t.as_str()) {
                    Ok(v) => Received::Json(v),
                    Err(_) => Received::Text(t.to_string()),
                }
            }
            Ok(Some(Ok(Message::Close(f)))) => {
                return match f {
                    Some(f) => Received::Close(u16::from(f.code), f.reason.to_string()),
                    None => Received::Close(1005, String::new()),
                }
            }
            Ok(Some(Ok(_))) => continue,
        }
    }
}

/// Receive until a `res` with `id` arrives; events seen on the way are returned too.
pub async fn recv_res(ws: &mut RawWs, id: &str, timeout: Duration) -> (Value, Vec<Value>) {
    let mut events = Vec::new();
    loop {
        match recv(ws, timeout).await {
            Received::Json(v) if v["type"] == "res" && v["id"] == id => return (v, events),
            Received::Json(v) => events.push(v),
            other => panic!("waiting for res {id}: got {other:?} (events so far: {events:?})"),
        }
    }
}

/// Receive until the server closes; returns the close code and reason and the frames before it.
pub async fn recv_close(ws: &mut RawWs, timeout: Duration) -> (Received, Vec<Value>) {
    let mut frames = Vec::new();
    loop {
        match recv(ws, timeout).await {
            Received::Json(v) => frames.push(v),
            other => return (other, frames),
        }
    }
}

/// The connect params the golden captures use (cli/cli operator with the anchor scope set).
pub fn golden_connect_params(token: Option<&str>) -> Value {
    let mut p = json!({
        "minProtocol": 4, "maxProtocol": 4,
        "client": {"id": "cli", "version": "test-0.1", "platform": "linux", "mode": "cli"},
        "role": "operator",
        "scopes": ["operator.admin", "operator.read", "operator.write", "operator.approvals", "operator.pairing"],
        "caps": [], "commands": [], "permissions": {},
        "auth": {}, "locale": "en-US", "userAgent": "pincer-testkit/0.1"
    });
    if let Some(t) = token {
        p["auth"] = json!({"token": t});
    }
    p
}

/// Open a socket, read the challenge, send `connect` with `params`; returns the socket, the
/// challenge payload and the connect `res`.
pub async fn handshake(url: &str, params: Value) -> (RawWs, Value, Value) {
    let mut ws = ws_connect(url).await;
    let challenge = recv(&mut ws, Duration::from_secs(5)).await.json();
    assert_eq!(
        challenge["event"], "connect.challenge",
        "first frame must be the challenge"
    );
    send_json(
        &mut ws,
        &json!({"type":"req","id":"c1","method":"connect","params":params}),
    )
    .await;
    let (res, _) = recv_res(&mut ws, "c1", Duration::from_secs(5)).await;
    (ws, challenge["payload"].clone(), res)
}

/// Path of a golden capture (`testdata/golden/<name>`).
pub fn golden_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/golden")
        .join(name)
}

/// Load a golden `.jsonl` capture: the `meta` line and the frame rows.
pub fn load_golden(name: &str) -> (Value, Vec<Value>) {
    let text = std::fs::read_to_string(golden_path(name)).expect("golden file");
    let mut lines = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).expect("golden json"));
    let meta = lines.next().expect("meta line");
    (meta["meta"].clone(), lines.collect())
}

/// The key set of a JSON object (sorted), for shape comparisons against goldens.
pub fn key_set(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Send a text frame, reporting failure instead of panicking (for abuse tests).
pub async fn try_send_text(ws: &mut RawWs, text: String) -> bool {
    ws.send(Message::Text(text.into())).await.is_ok()
}
