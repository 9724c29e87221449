//! The node host's connection loop: connect as `role: "node"` with the node's own device
//! identity, declare caps and commands, run what the gateway invokes, and reconnect (with the
//! one backoff, `pincer-backoff`) after network drops and gateway restarts. While the device
//! waits for approval it says which command the owner has to run, and keeps retrying.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pincer_backoff::Backoff;
use pincer_client::identity::{ClientIdentity, StoredToken};
use pincer_client::{ClientError, ClientOptions, GatewayClient};
use pincer_protocol::connect::{ClientId, ClientMode};
use pincer_tools::CancellationToken;
use serde_json::{json, Value};

use crate::commands::{self, Context, Outcome, CAPS, COMMANDS};
use crate::policy::NodeExecPolicy;
use crate::status::{self, now_ms, NodeStatus};

/// Identity file stem under `<node dir>/identity/`.
pub const IDENTITY_NAME: &str = "node";
/// How long a finished invoke's result is replayed for a duplicate idempotency key.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(300);
const IDEMPOTENCY_MAX: usize = 256;
/// Budget when a request carries no `timeoutMs`.
const DEFAULT_BUDGET: Duration = Duration::from_secs(30);

/// How to run.
#[derive(Clone)]
pub struct NodeHostOptions {
    pub url: String,
    pub token: Option<String>,
    pub password: Option<String>,
    pub display_name: Option<String>,
    pub tls_fingerprint: Option<String>,
    /// The node's own state dir (identity, exec policy, status).
    pub node_dir: PathBuf,
    pub connect_timeout: Duration,
    /// Reconnect backoff (gateway down, network drop, waiting for approval).
    pub backoff: Backoff,
}

impl std::fmt::Debug for NodeHostOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHostOptions")
            .field("url", &self.url)
            .field("display_name", &self.display_name)
            .field("node_dir", &self.node_dir)
            .finish_non_exhaustive()
    }
}

impl NodeHostOptions {
    /// Defaults: 10 s connect timeout, reconnect backoff 0.5 s doubling to 30 s.
    pub fn new(url: impl Into<String>, node_dir: PathBuf) -> Self {
        NodeHostOptions {
            url: url.into(),
            token: None,
            password: None,
            display_name: None,
            tls_fingerprint: None,
            node_dir,
            connect_timeout: Duration::from_secs(10),
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeHostError {
    #[error("node identity: {0}")]
    Identity(#[from] pincer_client::identity::IdentityError),
    #[error("exec policy: {0}")]
    Policy(#[from] crate::policy::PolicyError),
}

fn say(msg: impl AsRef<str>) {
    eprintln!("pincer node: {}", msg.as_ref());
}

/// Load (or create) the node's identity: its device id is its node id.
pub fn identity(node_dir: &std::path::Path) -> Result<ClientIdentity, NodeHostError> {
    Ok(ClientIdentity::load_or_create_named(
        node_dir,
        IDENTITY_NAME,
    )?)
}

struct Host {
    opts: NodeHostOptions,
    identity: ClientIdentity,
    status: Mutex<NodeStatus>,
    /// Idempotency key → (finished at, result without its id).
    done: Mutex<HashMap<String, (Instant, Value)>>,
}

impl Host {
    fn set_state(&self, state: &str, error: Option<String>, request: Option<String>) {
        let mut s = match self.status.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if s.state != state {
            s.since_ms = now_ms();
        }
        s.state = state.to_string();
        s.last_error = error;
        s.pairing_request_id = request;
        if state == "connected" {
            s.connected_at_ms = Some(now_ms());
        }
        s.updated_at_ms = now_ms();
        status::write(&self.opts.node_dir, &s);
    }

    fn client_options(&self, device_token: Option<String>) -> ClientOptions {
        let (token, password) = if device_token.is_some() {
            (None, None)
        } else {
            (self.opts.token.clone(), self.opts.password.clone())
        };
        ClientOptions {
            token,
            password,
            client_id: ClientId::NodeHost,
            client_mode: ClientMode::Node,
            display_name: self.opts.display_name.clone(),
            role: "node".into(),
            scopes: Vec::new(),
            device: Some(self.identity.keypair.clone()),
            device_token,
            tls_fingerprint: self.opts.tls_fingerprint.clone(),
            caps: CAPS.iter().map(|s| s.to_string()).collect(),
            commands: COMMANDS.iter().map(|s| s.to_string()).collect(),
            path_env: std::env::var("PATH").ok(),
            connect_timeout: self.opts.connect_timeout,
            request_timeout: Duration::from_secs(30),
            ..ClientOptions::cli(self.opts.url.clone())
        }
    }

    /// Connect with the stored device token when there is one (falling back to the shared
    /// secret when the gateway no longer accepts it), else with the shared secret.
    async fn connect(&self) -> Result<GatewayClient, ClientError> {
        let stored = self
            .identity
            .token_for(&self.opts.url, "node")
            .map(|t| t.token);
        let have_secret = self.opts.token.is_some() || self.opts.password.is_some();
        let result = match stored {
            Some(t) => match GatewayClient::connect(self.client_options(Some(t))).await {
                Err(e) if token_refused(&e) => {
                    let _ = self.identity.clear_token(&self.opts.url, "node");
                    if have_secret {
                        say("the gateway no longer accepts this node's device token; connecting with the gateway secret");
                        GatewayClient::connect(self.client_options(None)).await
                    } else {
                        Err(e)
                    }
                }
                other => other,
            },
            None => GatewayClient::connect(self.client_options(None)).await,
        };
        let client = result?;
        let auth = &client.hello()["auth"];
        if let Some(token) = auth["deviceToken"].as_str() {
            let stored = StoredToken {
                token: token.to_string(),
                scopes: Vec::new(),
                issued_at_ms: auth["issuedAtMs"].as_u64().unwrap_or(0),
            };
            if let Err(e) = self.identity.store_token(&self.opts.url, "node", stored) {
                say(format!("cannot store the device token: {e}"));
            }
        }
        Ok(client)
    }
}

fn token_refused(e: &ClientError) -> bool {
    e.rpc_error()
        .and_then(|s| s.details.as_ref())
        .is_some_and(|d| {
            d["code"] == "AUTH_DEVICE_TOKEN_MISMATCH" || d["code"] == "AUTH_SCOPE_MISMATCH"
        })
}

/// Run until `shutdown` resolves.
pub async fn run(
    opts: NodeHostOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), NodeHostError> {
    crate::files::private_dir(&opts.node_dir).map_err(|e| {
        NodeHostError::Identity(pincer_client::identity::IdentityError::Io {
            path: opts.node_dir.clone(),
            source: e,
        })
    })?;
    let identity = identity(&opts.node_dir)?;
    // Fail early on a broken policy file (it is re-read before every system.run).
    NodeExecPolicy::load_or_create(&opts.node_dir)?;
    let node_id = identity.device_id();
    let host = Arc::new(Host {
        status: Mutex::new(NodeStatus {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            url: opts.url.clone(),
            node_id: node_id.clone(),
            display_name: opts.display_name.clone(),
            state: "starting".into(),
            since_ms: now_ms(),
            updated_at_ms: now_ms(),
            ..Default::default()
        }),
        identity,
        done: Mutex::new(HashMap::new()),
        opts,
    });
    say(format!(
        "node {node_id} connecting to {} (identity and exec policy in {})",
        host.opts.url,
        host.opts.node_dir.display()
    ));
    tokio::pin!(shutdown);
    let mut attempt: u32 = 0;
    let mut announced_request: Option<String> = None;
    let mut told_surface = false;
    loop {
        host.set_state("connecting", None, None);
        let connected = tokio::select! {
            r = host.connect() => r,
            _ = &mut shutdown => break,
        };
        let mut max_wait = host.opts.backoff.max;
        match connected {
            Ok(client) => {
                attempt = 0;
                announced_request = None;
                host.set_state("connected", None, None);
                say(format!(
                    "connected to {} as node {node_id}{}",
                    host.opts.url,
                    host.opts
                        .display_name
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default()
                ));
                if !told_surface {
                    say(format!(
                        "declared commands: {}. If the owner has not approved them yet, run on the gateway host: pincer nodes approve {node_id}",
                        COMMANDS.join(", ")
                    ));
                    told_surface = true;
                }
                let reason = tokio::select! {
                    r = session(&host, client) => r,
                    _ = &mut shutdown => break,
                };
                host.set_state("disconnected", Some(reason.clone()), None);
                say(format!("disconnected: {reason}; reconnecting"));
            }
            Err(e) => {
                let shape = e.rpc_error();
                let details = shape.and_then(|s| s.details.clone()).unwrap_or_default();
                if details["code"] == "PAIRING_REQUIRED" {
                    let request = details["requestId"].as_str().map(str::to_string);
                    host.set_state(
                        "waiting-for-approval",
                        shape.map(|s| s.message.clone()),
                        request.clone(),
                    );
                    if announced_request != request {
                        match &request {
                            Some(r) => say(format!(
                                "waiting for the gateway owner to approve this device as a node. On the gateway host run:\n    pincer devices approve {r}\n  (this node retries by itself)"
                            )),
                            None => say(format!(
                                "waiting for approval: {} — on the gateway host run `pincer devices list` and approve this device ({node_id})",
                                shape.map(|s| s.message.as_str()).unwrap_or("pairing required")
                            )),
                        }
                        announced_request = request;
                    }
                    // Approval usually comes within seconds: keep polling briskly.
                    max_wait = max_wait.min(Duration::from_secs(5));
                } else if let Some(s) = shape {
                    host.set_state("disconnected", Some(s.message.clone()), None);
                    let hint = match details["code"].as_str() {
                        Some(c) if c.starts_with("AUTH_") => {
                            " — pass the gateway token with --token or PINCER_GATEWAY_TOKEN"
                        }
                        _ => "",
                    };
                    say(format!(
                        "the gateway refused the connection: {} {}{hint}",
                        s.code.as_str(),
                        s.message
                    ));
                } else {
                    host.set_state("disconnected", Some(e.to_string()), None);
                    if attempt == 0 || attempt % 10 == 0 {
                        say(format!("cannot reach the gateway: {e}; retrying"));
                    }
                }
            }
        }
        let delay = host.opts.backoff.delay(attempt).min(max_wait);
        attempt = attempt.saturating_add(1);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = &mut shutdown => break,
        }
    }
    host.set_state("stopped", None, None);
    Ok(())
}

/// One connection: handle events until the socket closes. Returns why it ended.
async fn session(host: &Arc<Host>, mut client: GatewayClient) -> String {
    let mut events = client.take_events();
    let client = Arc::new(client);
    let inflight: Arc<Mutex<HashMap<String, CancellationToken>>> = Arc::default();
    let (exec_tx, mut exec_rx) = tokio::sync::mpsc::unbounded_channel::<commands::ExecEvent>();
    // exec.* events go out in order, one at a time.
    let forwarder = {
        let client = Arc::clone(&client);
        tokio::spawn(async move {
            while let Some((event, payload)) = exec_rx.recv().await {
                let _ = client
                    .request(
                        "node.event",
                        Some(json!({"event": event, "payload": payload})),
                    )
                    .await;
            }
        })
    };
    while let Some(ev) = events.recv().await {
        match ev.event.as_str() {
            "node.invoke.request" => {
                let host = Arc::clone(host);
                let client = Arc::clone(&client);
                let inflight = Arc::clone(&inflight);
                let exec_tx = exec_tx.clone();
                tokio::spawn(async move {
                    handle_invoke(&host, &client, &inflight, exec_tx, ev.payload).await;
                });
            }
            "node.invoke.cancel" => {
                let id = ev.payload["invokeId"].as_str().unwrap_or_default();
                let token = inflight.lock().ok().and_then(|m| m.get(id).cloned());
                if let Some(t) = token {
                    say(format!("invoke {id} cancelled by the gateway"));
                    t.cancel();
                }
            }
            "node.pair.resolved" => {
                let decision = ev.payload["decision"].as_str().unwrap_or("?");
                say(format!("the owner {decision} this node's command surface"));
            }
            "shutdown" => {
                let reason = ev.payload["reason"].as_str().unwrap_or("gateway stopping");
                say(format!("the gateway is going away ({reason})"));
            }
            _ => {}
        }
    }
    // The connection is gone: whatever still runs cannot report back.
    if let Ok(m) = inflight.lock() {
        m.values().for_each(CancellationToken::cancel);
    }
    forwarder.abort();
    match client.close_info() {
        Some((code, reason)) if reason.is_empty() => format!("connection closed ({code})"),
        Some((code, reason)) => format!("connection closed ({code} {reason})"),
        None => "connection lost".to_string(),
    }
}

async fn handle_invoke(
    host: &Host,
    client: &GatewayClient,
    inflight: &Mutex<HashMap<String, CancellationToken>>,
    exec_tx: tokio::sync::mpsc::UnboundedSender<commands::ExecEvent>,
    req: Value,
) {
    let id = req["id"].as_str().unwrap_or_default().to_string();
    let node_id = req["nodeId"].as_str().unwrap_or_default().to_string();
    let command = req["command"].as_str().unwrap_or_default().to_string();
    let key = req["idempotencyKey"]
        .as_str()
        .filter(|k| !k.is_empty())
        .map(str::to_string);
    // A duplicate of a finished invoke (e.g. retried after a gateway restart) is not re-run.
    let replay = key.as_ref().and_then(|k| {
        let mut done = host.done.lock().ok()?;
        done.retain(|_, (at, _)| at.elapsed() < IDEMPOTENCY_TTL);
        done.get(k).map(|(_, v)| v.clone())
    });
    let body = match replay {
        Some(v) => v,
        None => {
            let params: Value = req["paramsJSON"]
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_else(|| json!({}));
            let budget = req["timeoutMs"]
                .as_u64()
                .filter(|t| *t > 0)
                .map_or(DEFAULT_BUDGET, Duration::from_millis);
            let cancel = CancellationToken::new();
            if let Ok(mut m) = inflight.lock() {
                m.insert(id.clone(), cancel.clone());
            }
            let outcome = match NodeExecPolicy::load_or_create(&host.opts.node_dir) {
                Ok(policy) => {
                    let ctx = Context {
                        policy: &policy,
                        invoke_id: &id,
                        budget,
                        cancel,
                        events: exec_tx,
                    };
                    commands::dispatch(&command, params, ctx).await
                }
                Err(e) => Outcome::err("SYSTEM_RUN_DENIED", format!("exec policy unreadable: {e}")),
            };
            if let Ok(mut m) = inflight.lock() {
                m.remove(&id);
            }
            let body = match outcome {
                Outcome::Ok(payload) => json!({"ok": true, "payload": payload}),
                Outcome::Err { code, message } => {
                    json!({"ok": false, "error": {"code": code, "message": message}})
                }
            };
            if let (Some(k), Ok(mut done)) = (key, host.done.lock()) {
                if done.len() >= IDEMPOTENCY_MAX {
                    if let Some(oldest) = done
                        .iter()
                        .min_by_key(|(_, (at, _))| *at)
                        .map(|(k, _)| k.clone())
                    {
                        done.remove(&oldest);
                    }
                }
                done.insert(k, (Instant::now(), body.clone()));
            }
            body
        }
    };
    let mut result = body;
    if let Some(m) = result.as_object_mut() {
        m.insert("id".into(), json!(id));
        m.insert("nodeId".into(), json!(node_id));
    }
    if let Err(e) = client.request("node.invoke.result", Some(result)).await {
        say(format!(
            "could not report the result of {command} ({id}): {e}"
        ));
    }
}
