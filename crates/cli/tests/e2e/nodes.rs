//! Nodes (issue 7) through real processes: the golden replay of `node_invoke.jsonl`, and the
//! gateway with a real `pincer node run` host — pairing (silent device pairing + command
//! approval via `pincer nodes approve`), invoke round trips, disconnect mid-invoke, timeouts,
//! gateway restart with reconnect, idempotency and the platform allowlist.

use std::time::Duration;

use pincer_testkit::compare::Action::{Absent, Mask, Subset};
use pincer_testkit::compare::Rule;
use pincer_testkit::replay::Replay;

use crate::bin;

/// Documented differences in the node scenario.
const NODE_INVOKE_RULES: &[Rule] = &[
    Rule::new(
        "event:connect.challenge",
        "payload.capabilities",
        Subset,
        "Pincer announces only what it implements (see conformance.rs)",
    ),
    Rule::new(
        "res:connect|event:presence",
        "**.presence[].ip",
        Absent,
        "the reference reports the host's LAN address for itself; Pincer does not enumerate interfaces",
    ),
    Rule::new(
        "res:connect",
        "payload.features.methods",
        Subset,
        "exactly the methods Pincer implements (the reference advertises 466)",
    ),
    Rule::new(
        "res:connect",
        "payload.features.events",
        Subset,
        "only the events Pincer emits",
    ),
    Rule::new(
        "res:connect",
        "payload.features.capabilities",
        Absent,
        "wire-contract flags of reference subsystems Pincer lacks",
    ),
    Rule::new(
        "res:connect",
        "payload.server.controlUiBuildSource",
        Absent,
        "see conformance.rs",
    ),
    Rule::new(
        "res:connect",
        "payload.controlUiWidgetKinds",
        Absent,
        "reference-only Control UI plugins",
    ),
    Rule::new(
        "res:connect",
        "payload.controlUiLinkReaders",
        Absent,
        "reference-only plugins",
    ),
    Rule::new(
        "res:connect",
        "payload.pluginSurfaceUrls",
        Absent,
        "the reference's canvas plugin surface; Pincer hosts no canvas",
    ),
    Rule::new(
        "res:connect",
        "payload.policy.allowedSessionVisibilities",
        Absent,
        "Pincer has no session sharing",
    ),
    Rule::new(
        "res:connect",
        "payload.snapshot.updateSchedule",
        Absent,
        "the reference's self-updater",
    ),
    Rule::new(
        "res:connect",
        "payload.snapshot.appliedConfigHash",
        Absent,
        "see conformance.rs",
    ),
    Rule::new(
        "res:connect|event:health",
        "payload.**.plugins.loaded",
        Subset,
        "the reference loads 14 bundled plugins; Pincer has no plugin host",
    ),
    Rule::new(
        "res:connect|event:health",
        "payload.**.agents[].heartbeat.prompt",
        Mask,
        "Pincer's own wording of the default heartbeat prompt",
    ),
    Rule::new(
        "res:connect|event:health",
        "payload.**.eventLoop.cpuBreakdown",
        Absent,
        "Node's thread split has no tokio equivalent",
    ),
    Rule::new(
        "res:connect",
        "payload.snapshot.sessionDefaults.*",
        Mask,
        "the capture's gateway had a mock model configured",
    ),
    Rule::new(
        "res:connect",
        "payload.snapshot.health.**",
        Mask,
        "health of the capture's gateway (sessions, agents, model) is compared by conformance.rs",
    ),
];

/// Only in the invoke scenario.
const INVOKE_ONLY_RULES: &[Rule] = &[Rule::new(
    "event:node.invoke.request",
    "payload.timeoutMs",
    Mask,
    "the remaining budget (reference-measurements.md §5): 4996 of 5000 on the reference, 5000 on Pincer, which dispatches within the same millisecond",
)];

#[tokio::test]
async fn golden_node_list_empty_replay() {
    let mut report = Replay::new("node_list_empty.jsonl")
        .allow(NODE_INVOKE_RULES)
        .run(bin())
        .await;
    report.assert_conforms();
}

#[tokio::test]
async fn golden_node_invoke_replay() {
    let mut report = Replay::new("node_invoke.jsonl")
        .map_generated_ids()
        .allow(NODE_INVOKE_RULES)
        .allow(INVOKE_ONLY_RULES)
        .missing_event(
            "voicewake.changed",
            "Pincer has no voice wake (talk/voice plugins are not part of it)",
        )
        .missing_event(
            "voicewake.routing.changed",
            "Pincer has no voice wake routing",
        )
        .frame_timeout(Duration::from_secs(10))
        .run(bin())
        .await;
    report.assert_conforms();
    report.gateway.assert_alive_without_panic();
}

// ---------------------------------------------------------------------------------------------
// The gateway with a real `pincer node run` host.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Instant;

use pincer_client::{ClientError, ClientOptions, GatewayClient};
use pincer_protocol::device_auth::DeviceKeypair;
use pincer_testkit::{
    recv, send_json, wait_for_gateway_json, GatewayProcess, Received, SpawnOptions,
};
use serde_json::{json, Value};

/// Generous deadline for things that normally take milliseconds (a hang detector).
const WAIT: Duration = Duration::from_secs(20);

/// A `pincer node run` child with its own state dir; killed on drop.
struct NodeProc {
    child: Child,
    dir: tempfile::TempDir,
}

impl NodeProc {
    fn spawn(url: &str, token: Option<&str>, name: &str, extra_env: &[(&str, &str)]) -> NodeProc {
        let dir = tempfile::tempdir().unwrap();
        Self::spawn_in(dir, url, token, name, extra_env)
    }

    fn spawn_in(
        dir: tempfile::TempDir,
        url: &str,
        token: Option<&str>,
        name: &str,
        extra_env: &[(&str, &str)],
    ) -> NodeProc {
        let log = std::fs::File::create(dir.path().join("node.log")).unwrap();
        let mut cmd = Command::new(bin());
        cmd.args(["node", "run", "--url", url, "--display-name", name]);
        if let Some(t) = token {
            cmd.arg(format!("--token={t}"));
        }
        for v in [
            "PINCER_GATEWAY_TOKEN",
            "OPENCLAW_GATEWAY_TOKEN",
            "PINCER_GATEWAY_PASSWORD",
            "OPENCLAW_GATEWAY_PASSWORD",
            "PINCER_GATEWAY_URL",
            "OPENCLAW_GATEWAY_URL",
            "PINCER_NODE_STATE_DIR",
        ] {
            cmd.env_remove(v);
        }
        cmd.env("PINCER_STATE_DIR", dir.path())
            .env("PINCER_NODE_RECONNECT_MAX_MS", "300")
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        let child = cmd.spawn().expect("spawn pincer node run");
        NodeProc { child, dir }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("node.log")).unwrap_or_default()
    }

    fn node_dir(&self) -> PathBuf {
        self.dir.path().join("node")
    }

    /// The node id (its device id), once the host created its identity.
    fn node_id(&self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(t) = std::fs::read_to_string(self.node_dir().join("identity/node.json")) {
                if let Ok(v) = serde_json::from_str::<Value>(&t) {
                    return v["deviceId"].as_str().unwrap().to_string();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no node identity; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let log = self.log();
            if let Some(l) = log.lines().find(|l| l.contains(needle)) {
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the node log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `pincer <args>` against the gateway whose state dir is `state`.
fn pincer(state: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("PINCER_STATE_DIR", state)
        .env_remove("PINCER_GATEWAY_URL")
        .env_remove("OPENCLAW_GATEWAY_URL")
        .env_remove("PINCER_GATEWAY_TOKEN")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .output()
        .expect("run pincer")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An operator connection (CLI client on loopback with the shared token: full scopes).
async fn operator(url: &str, token: &str) -> GatewayClient {
    let opts = ClientOptions {
        token: Some(token.to_string()),
        request_timeout: Duration::from_secs(60),
        ..ClientOptions::cli(url)
    };
    GatewayClient::connect(opts)
        .await
        .expect("operator connects")
}

async fn node_row(op: &GatewayClient, node_id: &str) -> Option<Value> {
    let list = op.request("node.list", Some(json!({}))).await.unwrap();
    list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["nodeId"] == node_id)
        .cloned()
}

/// Poll `node.list` until `pred` holds for the node.
async fn wait_node(
    op: &GatewayClient,
    node_id: &str,
    what: &str,
    pred: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(row) = node_row(op, node_id).await {
            if pred(&row) {
                return row;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node never became {what}: {:?}",
            node_row(op, node_id).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn invoke(
    op: &GatewayClient,
    node_id: &str,
    command: &str,
    params: Value,
    timeout_ms: u64,
    key: &str,
) -> Result<Value, ClientError> {
    op.request(
        "node.invoke",
        Some(json!({"nodeId": node_id, "command": command, "params": params, "timeoutMs": timeout_ms, "idempotencyKey": key})),
    )
    .await
}

/// Start a node host against `gw`, approve its commands with `pincer nodes approve` (the
/// device itself pairs silently: it connects from loopback).
async fn paired_node(
    gw: &GatewayProcess,
    token: &str,
    op: &GatewayClient,
    name: &str,
) -> (NodeProc, String) {
    let node = NodeProc::spawn(&gw.url, Some(token), name, &[]);
    let node_id = node.node_id();
    wait_node(op, &node_id, "pending", |n| {
        n["connected"] == true && n["approvalState"] == "pending-approval"
    })
    .await;
    let out = pincer(
        gw.state_path(),
        &[
            "nodes",
            "approve",
            name,
            "--json",
            &format!("--token={token}"),
        ],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    wait_node(op, &node_id, "approved", |n| {
        n["approvalState"] == "approved"
    })
    .await;
    (node, node_id)
}

#[tokio::test]
async fn node_host_pairs_and_runs_commands() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let mut op = operator(&gw.url, &gw.token()).await;
    let mut events = op.take_events();
    let node = NodeProc::spawn(&gw.url, Some(&gw.token()), "laptop", &[]);
    let node_id = node.node_id();

    // Layer 1: the device paired silently (loopback). Layer 2: the surface is pending.
    let row = wait_node(&op, &node_id, "pending", |n| {
        n["approvalState"] == "pending-approval"
    })
    .await;
    assert_eq!(row["connected"], true);
    assert_eq!(row["commands"], json!([]), "nothing runs before approval");
    assert_eq!(
        row["pendingDeclaredCommands"],
        json!(["system.notify", "system.run", "system.which"])
    );
    assert_eq!(row["platform"], "linux");
    assert_eq!(row["deviceFamily"], "Linux", "node metadata normalised");
    let refused = invoke(
        &op,
        &node_id,
        "system.which",
        json!({"bins": ["sh"]}),
        5000,
        "k0",
    )
    .await
    .unwrap_err();
    assert!(
        refused.to_string().contains("not in the allowlist")
            || refused.to_string().contains("pending approval"),
        "{refused}"
    );
    let mut requested = None;
    let deadline = Instant::now() + WAIT;
    while requested.is_none() && Instant::now() < deadline {
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
            if e.event == "node.pair.requested" {
                requested = Some(e.payload);
            }
        }
    }
    let requested = requested.expect("node.pair.requested event");
    assert_eq!(requested["nodeId"], node_id.as_str());
    assert_eq!(
        requested["requiredApproveScopes"],
        json!(["operator.pairing", "operator.admin"])
    );
    assert_eq!(requested["silent"], true);

    // `pincer nodes pending` shows it; `pincer nodes approve <name>` approves it.
    let out = pincer(gw.state_path(), &["nodes", "pending"]);
    assert!(text(&out.stdout).contains(requested["requestId"].as_str().unwrap()));
    let out = pincer(gw.state_path(), &["nodes", "approve", "laptop", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let approved: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        approved["node"]["commands"],
        json!(["system.run", "system.which", "system.notify"])
    );
    node.wait_log("approved this node's command surface");
    let row = wait_node(&op, &node_id, "approved", |n| {
        n["approvalState"] == "approved"
    })
    .await;
    assert_eq!(
        row["commands"],
        json!(["system.notify", "system.run", "system.which"])
    );

    // system.which
    let r = invoke(
        &op,
        &node_id,
        "system.which",
        json!({"bins": ["sh", "no-such-bin-xyz"]}),
        5000,
        "k1",
    )
    .await
    .unwrap();
    assert_eq!(r["ok"], true);
    assert_eq!(r["nodeId"], node_id.as_str());
    assert!(r["payload"]["bins"]["sh"]
        .as_str()
        .unwrap()
        .ends_with("/sh"));
    assert!(r["payload"]["bins"].get("no-such-bin-xyz").is_none());
    assert_eq!(r["payloadJSON"], Value::Null);

    // system.run: argv, cwd, env, exit code, output.
    let cwd = tempfile::tempdir().unwrap();
    let r = invoke(
        &op,
        &node_id,
        "system.run",
        json!({"command": ["sh", "-c", "pwd; echo \"$GREETING\"; echo oops >&2; exit 7"],
               "cwd": cwd.path(), "env": {"GREETING": "hello node"}, "runId": "run-1"}),
        10_000,
        "k2",
    )
    .await
    .unwrap();
    let p = &r["payload"];
    let real_cwd = std::fs::canonicalize(cwd.path()).unwrap();
    assert_eq!(p["stdout"], format!("{}\nhello node\n", real_cwd.display()));
    assert_eq!(p["stderr"], "oops\n");
    assert_eq!(p["exitCode"], 7);
    assert_eq!(p["success"], false);
    assert_eq!(p["timedOut"], false);
    // The secret the node host was started with never reaches commands.
    let r = invoke(
        &op,
        &node_id,
        "system.run",
        json!({"command": ["sh", "-c", "env"]}),
        10_000,
        "k3",
    )
    .await
    .unwrap();
    assert!(!r["payload"]["stdout"]
        .as_str()
        .unwrap()
        .contains(&gw.token()));
    // A command that outlives its own timeout is killed.
    let started = Instant::now();
    let r = invoke(
        &op,
        &node_id,
        "system.run",
        json!({"command": ["sleep", "30"], "timeoutMs": 300}),
        10_000,
        "k4",
    )
    .await
    .unwrap();
    assert_eq!(r["payload"]["timedOut"], true);
    assert!(started.elapsed() < Duration::from_secs(10));

    // exec.started/finished reached the gateway (queued as system events for the heartbeat).
    let deadline = Instant::now() + WAIT;
    loop {
        let status = op.request("status", None).await.unwrap();
        let queued = status["queuedSystemEvents"].to_string();
        if queued.contains("id=run-1, code 7") {
            assert!(queued.contains("Exec started"));
            break;
        }
        assert!(Instant::now() < deadline, "no exec events: {queued}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // system.notify: no notify-send on the test machine → a clear "unsupported" error...
    let e = invoke(
        &op,
        &node_id,
        "system.notify",
        json!({"title": "hi"}),
        5000,
        "k5",
    )
    .await
    .unwrap_err();
    let shape = e.rpc_error().unwrap();
    assert_eq!(shape.code.as_str(), "UNAVAILABLE");
    assert!(
        shape
            .message
            .starts_with("UNSUPPORTED: system.notify is not supported"),
        "{}",
        shape.message
    );

    // A command outside the platform allowlist is refused by the gateway.
    let e = invoke(&op, &node_id, "anchor.custom", json!({}), 3000, "k6")
        .await
        .unwrap_err();
    let shape = e.rpc_error().unwrap();
    assert_eq!(shape.code.as_str(), "INVALID_REQUEST");
    assert_eq!(
        shape.message,
        "node command not allowed: \"anchor.custom\" is not in the allowlist for platform \"linux\""
    );
    assert_eq!(
        shape.details.as_ref().unwrap()["reason"],
        "command not allowlisted"
    );

    // The operator CLI: invoke prints a command's output and exits with its code.
    let out = pincer(
        gw.state_path(),
        &[
            "nodes",
            "invoke",
            "laptop",
            "system.run",
            "--params",
            r#"{"command":["sh","-c","echo from-cli; exit 3"]}"#,
        ],
    );
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "from-cli\n");
    let out = pincer(
        gw.state_path(),
        &["nodes", "describe", &node_id[..10], "--json"],
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["displayName"], "laptop");
    assert!(d["ts"].is_u64());

    // Nodes are in system-presence.
    let presence = op.request("system-presence", None).await.unwrap();
    let entry = presence
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["deviceId"] == node_id.as_str())
        .cloned()
        .expect("node presence entry");
    assert_eq!(entry["mode"], "node");
    assert_eq!(entry["roles"], json!(["node"]));
    assert_eq!(entry["text"], "Node: laptop · mode node");

    // Rename, then remove: the node's socket is closed and it is gone from the list.
    let out = pincer(gw.state_path(), &["nodes", "rename", "laptop", "Build box"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_node(&op, &node_id, "renamed", |n| {
        n["displayName"] == "Build box"
    })
    .await;
    let out = pincer(gw.state_path(), &["nodes", "remove", "Build box"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let pairs = op.request("node.pair.list", None).await.unwrap();
    assert!(
        !pairs["paired"].to_string().contains(&node_id),
        "the approved surface is gone: {pairs}"
    );
    node.wait_log("4001");
    // A removed node that reconnects starts over: (silent local) device pairing, then a new
    // command approval; it never gets its old commands back by itself.
    let row = node_row(&op, &node_id).await;
    if let Some(row) = row {
        assert_ne!(row["approvalState"], "approved", "{row}");
        assert_eq!(row["commands"], json!([]));
    }
}

#[tokio::test]
async fn node_disconnect_mid_invoke_fails_at_once() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let op = operator(&gw.url, &gw.token()).await;
    let (mut node, node_id) = paired_node(&gw, &gw.token(), &op, "flaky").await;
    let marker = node.dir.path().join("started");
    let script = format!("touch {}; sleep 30", marker.display());
    let started = Instant::now();
    let call = invoke(
        &op,
        &node_id,
        "system.run",
        json!({"command": ["sh", "-c", script]}),
        60_000,
        "d1",
    );
    let killer = async {
        let deadline = Instant::now() + WAIT;
        while !marker.exists() {
            assert!(Instant::now() < deadline, "the command never started");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        node.kill();
        Instant::now()
    };
    let (result, killed_at) = tokio::join!(call, killer);
    let e = result.unwrap_err();
    let shape = e.rpc_error().unwrap();
    assert_eq!(shape.code.as_str(), "UNAVAILABLE");
    assert_eq!(
        shape.message,
        "DISCONNECTED: node disconnected (system.run)"
    );
    assert_eq!(
        shape.details.as_ref().unwrap()["nodeCommandDispatched"],
        true
    );
    assert!(
        killed_at.elapsed() < Duration::from_secs(5) && started.elapsed() < Duration::from_secs(30),
        "the error came from the disconnect, not the 60 s timeout"
    );
    // The node is offline now; a new invoke says so.
    wait_node(&op, &node_id, "offline", |n| n["connected"] == false).await;
    let e = invoke(
        &op,
        &node_id,
        "system.which",
        json!({"bins": ["sh"]}),
        5000,
        "d2",
    )
    .await
    .unwrap_err();
    assert_eq!(e.rpc_error().unwrap().message, "node not connected");
}

#[tokio::test]
async fn duplicate_idempotency_key_runs_once() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let op = operator(&gw.url, &gw.token()).await;
    let (node, node_id) = paired_node(&gw, &gw.token(), &op, "once").await;
    let file = node.dir.path().join("runs.txt");
    let params = json!({"command": ["sh", "-c", format!("echo run >> {}; sleep 0.3; wc -l < {}", file.display(), file.display())]});
    // Two concurrent calls with the same key, then a later retry: one execution.
    let (a, b) = tokio::join!(
        invoke(
            &op,
            &node_id,
            "system.run",
            params.clone(),
            10_000,
            "same-key"
        ),
        invoke(
            &op,
            &node_id,
            "system.run",
            params.clone(),
            10_000,
            "same-key"
        ),
    );
    let c = invoke(
        &op,
        &node_id,
        "system.run",
        params.clone(),
        10_000,
        "same-key",
    )
    .await;
    let (a, b, c) = (a.unwrap(), b.unwrap(), c.unwrap());
    assert_eq!(a, b);
    assert_eq!(a, c);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "run\n");
    // Another key runs again.
    let d = invoke(&op, &node_id, "system.run", params, 10_000, "other-key")
        .await
        .unwrap();
    assert_eq!(d["payload"]["stdout"].as_str().unwrap().trim(), "2");
}

#[tokio::test]
async fn gateway_restart_node_reconnects_with_its_device_token() {
    let first_token = "first-token-for-restart-test";
    let mut gw = GatewayProcess::spawn(
        bin(),
        SpawnOptions::default().arg(format!("--token={first_token}")),
    );
    let port = gw.port;
    let url = gw.url.clone();
    let op = operator(&url, first_token).await;
    let (node, node_id) = paired_node(&gw, first_token, &op, "survivor").await;
    drop(op);
    gw.sigterm();
    assert!(
        gw.wait_exit(Duration::from_secs(10)).is_some(),
        "gateway did not stop"
    );
    node.wait_log("1012");
    let state = std::mem::replace(&mut gw.state_dir, tempfile::tempdir().unwrap());
    drop(gw);
    // Same state dir and port, another shared token: only the node's device token still works.
    let second_token = "second-token-after-restart";
    let log = std::fs::File::create(state.path().join("stderr2.txt")).unwrap();
    let mut child = Command::new(bin())
        .args([
            "gateway",
            "run",
            "--port",
            &port.to_string(),
            &format!("--token={second_token}"),
        ])
        .env("PINCER_STATE_DIR", state.path())
        .env_remove("PINCER_GATEWAY_TOKEN")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    wait_for_gateway_json(state.path(), &mut child, Duration::from_secs(20)).unwrap();
    let _guard = Kill(child);
    let op = operator(&url, second_token).await;
    let row = wait_node(&op, &node_id, "reconnected", |n| n["connected"] == true).await;
    assert_eq!(
        row["approvalState"], "approved",
        "the approval survived in SQLite"
    );
    let r = invoke(
        &op,
        &node_id,
        "system.which",
        json!({"bins": ["sh"]}),
        5000,
        "r1",
    )
    .await
    .unwrap();
    assert!(r["payload"]["bins"]["sh"].is_string());
    assert!(
        node.log().matches("connected to").count() >= 2,
        "{}",
        node.log()
    );
}

#[tokio::test]
async fn a_node_that_never_answers_times_out_and_gets_a_cancel() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let token = gw.token();
    let op = operator(&gw.url, &token).await;
    let kp = DeviceKeypair::from_seed(&[42u8; 32]);
    let params = json!({"minProtocol":4,"maxProtocol":4,
        "client":{"id":"node-host","version":"t","platform":"linux","mode":"node","displayName":"mute"},
        "role":"node","scopes":[],"caps":["system"],"commands":["system.which"],"permissions":{},
        "auth":{"token": token}});
    let (mut ws, res) =
        crate::devices::device_connect(&gw.url, &kp, params, Default::default()).await;
    assert_eq!(res["ok"], true, "{res}");
    let node_id = kp.device_id();
    let pending = op.request("node.pair.list", None).await.unwrap();
    let request_id = pending["pending"][0]["requestId"]
        .as_str()
        .unwrap()
        .to_string();
    op.request("node.pair.approve", Some(json!({"requestId": request_id})))
        .await
        .unwrap();
    let started = Instant::now();
    let e = invoke(
        &op,
        &node_id,
        "system.which",
        json!({"bins": ["sh"]}),
        700,
        "t1",
    )
    .await
    .unwrap_err();
    let shape = e.rpc_error().unwrap();
    assert_eq!(shape.code.as_str(), "UNAVAILABLE");
    assert_eq!(shape.message, "TIMEOUT: node invoke timed out");
    assert!(started.elapsed() >= Duration::from_millis(600));
    // The node saw: node.pair.resolved (direct), the request (remaining budget, no seq), the cancel.
    let mut seen = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !seen
        .iter()
        .any(|f: &Value| f["event"] == "node.invoke.cancel")
    {
        assert!(Instant::now() < deadline, "no cancel: {seen:?}");
        if let Received::Json(v) = recv(&mut ws, Duration::from_millis(500)).await {
            seen.push(v);
        }
    }
    let req = seen
        .iter()
        .find(|f| f["event"] == "node.invoke.request")
        .unwrap();
    assert!(req.get("seq").is_none(), "direct events carry no seq");
    let budget = req["payload"]["timeoutMs"].as_u64().unwrap();
    assert!((1..=700).contains(&budget), "remaining budget {budget}");
    assert_eq!(req["payload"]["paramsJSON"], "{\"bins\":[\"sh\"]}");
    let cancel = seen
        .iter()
        .find(|f| f["event"] == "node.invoke.cancel")
        .unwrap();
    assert_eq!(cancel["payload"]["invokeId"], req["payload"]["id"]);
    assert_eq!(cancel["payload"]["nodeId"], node_id.as_str());
    // A late result is acknowledged but ignored.
    send_json(
        &mut ws,
        &json!({"type":"req","id":"late","method":"node.invoke.result","params":{
            "id": req["payload"]["id"], "nodeId": node_id, "ok": true, "payload": {}}}),
    )
    .await;
    let (res, _) = pincer_testkit::recv_res(&mut ws, "late", WAIT).await;
    assert_eq!(res["payload"], json!({"ok": true, "ignored": true}));
    // Another node id in a result is refused.
    send_json(
        &mut ws,
        &json!({"type":"req","id":"spoof","method":"node.invoke.result","params":{
            "id": "x", "nodeId": "someone-else", "ok": true}}),
    )
    .await;
    let (res, _) = pincer_testkit::recv_res(&mut ws, "spoof", WAIT).await;
    assert_eq!(res["error"]["message"], "nodeId mismatch");
}

#[tokio::test]
async fn without_local_auto_approval_the_node_waits_and_says_what_to_run() {
    let gw = GatewayProcess::spawn(
        bin(),
        SpawnOptions::default().arg("--no-auto-approve-local"),
    );
    let op = operator(&gw.url, &gw.token()).await;
    let node = NodeProc::spawn(&gw.url, Some(&gw.token()), "remote-ish", &[]);
    let line = node.wait_log("pincer devices approve ");
    let request_id = line.trim().rsplit(' ').next().unwrap().to_string();
    let status = pincer(node.dir.path(), &["node", "status", "--json"]);
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["status"]["state"], "waiting-for-approval");
    assert_eq!(status["status"]["pairingRequestId"], request_id.as_str());
    // Layer 1: the device (role node) — needs operator.admin, the CLI on the host has it.
    let out = pincer(gw.state_path(), &["devices", "approve", &request_id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let node_id = node.node_id();
    // The node retries by itself; layer 2 is still pending.
    let row = wait_node(&op, &node_id, "connected", |n| n["connected"] == true).await;
    assert_eq!(row["approvalState"], "pending-approval");
    assert_eq!(row["commands"], json!([]));
    let out = pincer(gw.state_path(), &["nodes", "approve", &node_id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    wait_node(&op, &node_id, "approved", |n| {
        n["approvalState"] == "approved"
    })
    .await;
    let out = pincer(node.dir.path(), &["node", "status"]);
    assert!(
        text(&out.stdout).contains("state: connected"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn node_install_writes_a_user_unit_and_enables_nothing() {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args([
            "node",
            "install",
            "--url",
            "ws://gw.example:18789",
            "--token=s3cret",
            "--display-name",
            "Den PC",
            "--json",
        ])
        .env("PINCER_STATE_DIR", home.path().join("state"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env_remove("PINCER_GATEWAY_TOKEN")
        .env_remove("PINCER_NODE_STATE_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let unit = std::fs::read_to_string(v["unitPath"].as_str().unwrap()).unwrap();
    assert!(
        unit.contains("node run --url \"ws://gw.example:18789\" --display-name \"Den PC\""),
        "{unit}"
    );
    assert!(!unit.contains("s3cret"));
    assert!(v["unitPath"]
        .as_str()
        .unwrap()
        .ends_with("config/systemd/user/pincer-node.service"));
    let env = std::fs::read_to_string(v["envPath"].as_str().unwrap()).unwrap();
    assert_eq!(env, "PINCER_GATEWAY_TOKEN=s3cret\n");
    // A second install refuses to overwrite without --force.
    let out = Command::new(bin())
        .args(["node", "install", "--url", "ws://gw.example:18789"])
        .env("PINCER_STATE_DIR", home.path().join("state"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("--force"));
    // Status before any run: exit code 3, says how to start.
    let out = Command::new(bin())
        .args(["node", "status"])
        .env("PINCER_STATE_DIR", home.path().join("state"))
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(text(&out.stdout).contains("pincer node run"));
    assert!(text(&out.stdout).contains("pincer-node.service"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_reaches_a_node_through_the_nodes_tool() {
    use pincer_fakes::llm::Reply;
    let gw = crate::agent::start(&[], json!({}), &[]).await;
    let token = crate::agent::TOKEN;
    let op = operator(&gw.gw.url, token).await;
    let (_node, node_id) = paired_node(&gw.gw, token, &op, "laptop").await;
    // The model looks the node up, then asks it where `uname` is.
    gw.fake
        .push(Reply::new().tool_call("call_n1", "nodes", r#"{"action":"status"}"#));
    gw.fake.push(Reply::new().tool_call(
        "call_n2",
        "nodes",
        r#"{"action":"invoke","node":"laptop","invokeCommand":"system.which","invokeParamsJson":"{\"bins\":[\"uname\"]}"}"#,
    ));
    gw.fake.push(Reply::new().tool_call(
        "call_n3",
        "nodes",
        r#"{"action":"invoke","node":"laptop","invokeCommand":"system.run","invokeParamsJson":"{\"command\":[\"uname\"]}"}"#,
    ));
    gw.fake
        .push(Reply::new().text("uname is in /usr/bin on your laptop."));
    let mut ws = crate::agent::op(&gw, &[]).await;
    let (_, frames) =
        crate::agent::chat_turn(&mut ws, "n1", "main", "where is uname on my laptop?").await;
    let end = frames.iter().rev().find(|f| f["event"] == "chat").unwrap();
    assert_eq!(end["payload"]["state"], "final", "{end}");
    // What the tools answered is what the model saw next.
    let requests = gw.fake.model_requests();
    assert_eq!(requests.len(), 4);
    let tool_results = |i: usize| -> String {
        requests[i].body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| m["content"].to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let status = tool_results(1);
    assert!(status.contains(&node_id), "node list: {status}");
    assert!(status.contains("laptop"));
    let which = tool_results(2);
    assert!(which.contains("/uname"), "system.which result: {which}");
    assert!(which.contains(&node_id));
    // Shell execution is not a nodes-tool command.
    let run = tool_results(3);
    assert!(run.contains("exec with host=node"), "{run}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_uname_on_my_laptop_from_a_chat() {
    use pincer_fakes::llm::Reply;
    let gw = crate::agent::start(&[], json!({}), &[]).await;
    let token = crate::agent::TOKEN;
    let op = operator(&gw.gw.url, token).await;
    let (node, node_id) = paired_node(&gw.gw, token, &op, "laptop").await;
    gw.fake.push(Reply::new().tool_call(
        "call_x1",
        "exec",
        r#"{"command":"uname -s; echo ran-on-$PINCER_TEST_NODE_MARK","host":"node","node":"laptop"}"#,
    ));
    gw.fake.push(Reply::new().text("Your laptop runs Linux."));
    let mut ws = crate::agent::op(&gw, &[]).await;
    let (_, frames) =
        crate::agent::chat_turn(&mut ws, "x1", "main", "run uname -a on my laptop").await;
    assert!(frames
        .iter()
        .any(|f| f["event"] == "chat" && f["payload"]["state"] == "final"));
    let requests = gw.fake.model_requests();
    let tool = requests.last().unwrap().body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].to_string())
        .collect::<Vec<_>>()
        .join("\n");
    assert!(tool.contains(&format!("Node: {node_id}")), "{tool}");
    assert!(tool.contains("Linux"), "{tool}");
    // The node host reported the run (exec.started/finished) and ran it itself.
    assert!(node.log().contains("connected to"));
    let status = op.request("status", None).await.unwrap();
    let deadline = Instant::now() + WAIT;
    let mut queued = status["queuedSystemEvents"].to_string();
    while !queued.contains("Exec finished") {
        assert!(Instant::now() < deadline, "{queued}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        queued = op.request("status", None).await.unwrap()["queuedSystemEvents"].to_string();
    }
    assert!(
        queued.contains("call_x1"),
        "the tool call id is the run id: {queued}"
    );
}

#[tokio::test]
async fn v3_nodes_connect_and_shell_approval_needs_admin() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let token = gw.token();
    // A node may speak protocol 3 (§2.5); hello-ok still says 4.
    let kp = DeviceKeypair::from_seed(&[43u8; 32]);
    let params = json!({"minProtocol":3,"maxProtocol":3,
        "client":{"id":"node-host","version":"t","platform":"linux","mode":"node"},
        "role":"node","scopes":[],"caps":[],"commands":["system.run"],"permissions":{},
        "auth":{"token": token}});
    let (_ws, res) = crate::devices::device_connect(&gw.url, &kp, params, Default::default()).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["protocol"], 4);
    assert_eq!(res["payload"]["auth"]["role"], "node");
    // An operator with operator.pairing but not operator.admin cannot approve shell access.
    let op_kp = DeviceKeypair::from_seed(&[44u8; 32]);
    let mut op_params = pincer_testkit::golden_connect_params(Some(&token));
    op_params["scopes"] = json!(["operator.pairing", "operator.read"]);
    let (mut ws, res) =
        crate::devices::device_connect(&gw.url, &op_kp, op_params, Default::default()).await;
    assert_eq!(res["ok"], true, "{res}");
    send_json(
        &mut ws,
        &json!({"type":"req","id":"l","method":"node.pair.list","params":{}}),
    )
    .await;
    let (list, _) = pincer_testkit::recv_res(&mut ws, "l", WAIT).await;
    let pending = &list["payload"]["pending"][0];
    assert_eq!(pending["nodeId"], kp.device_id());
    assert_eq!(
        pending["requiredApproveScopes"],
        json!(["operator.pairing", "operator.admin"])
    );
    send_json(
        &mut ws,
        &json!({"type":"req","id":"a","method":"node.pair.approve","params":{"requestId": pending["requestId"]}}),
    )
    .await;
    let (res, _) = pincer_testkit::recv_res(&mut ws, "a", WAIT).await;
    assert_eq!(res["error"]["code"], "FORBIDDEN");
    assert_eq!(res["error"]["message"], "missing scope: operator.admin");
    assert_eq!(
        res["error"]["details"]["requiredScopes"],
        json!(["operator.pairing", "operator.admin"])
    );
    // node.invoke of system.run needs operator.admin too (dynamic method scope).
    send_json(
        &mut ws,
        &json!({"type":"req","id":"i","method":"node.invoke","params":{"nodeId": kp.device_id(), "command": "system.run", "idempotencyKey": "x"}}),
    )
    .await;
    let (res, _) = pincer_testkit::recv_res(&mut ws, "i", WAIT).await;
    assert_eq!(res["error"]["code"], "FORBIDDEN", "{res}");
}

#[tokio::test]
async fn node_events_presence_and_host_stats() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let token = gw.token();
    let mut op = operator(&gw.url, &token).await;
    let mut events = op.take_events();
    let kp = DeviceKeypair::from_seed(&[45u8; 32]);
    let params = json!({"minProtocol":4,"maxProtocol":4,
        "client":{"id":"node-host","version":"t","platform":"linux","mode":"node","displayName":"desk"},
        "role":"node","scopes":[],"caps":[],"commands":[],"permissions":{},
        "auth":{"token": token}});
    let (mut ws, res) =
        crate::devices::device_connect(&gw.url, &kp, params, Default::default()).await;
    assert_eq!(res["ok"], true, "{res}");
    let node_id = kp.device_id();
    let call = |id: &'static str, event: &'static str, payload: Value| {
        let frame = json!({"type":"req","id":id,"method":"node.event","params":{"event":event,"payload":payload}});
        (id, frame)
    };
    for (id, frame) in [
        call(
            "e1",
            "node.presence.activity",
            json!({"idleSeconds": 5, "source": "app"}),
        ),
        call(
            "e2",
            "node.host.stats",
            json!({"cpuCount": 4, "memoryTotalBytes": 1000, "memoryFreeBytes": 400}),
        ),
        call(
            "e3",
            "node.host.stats",
            json!({"cpuCount": 4, "memoryTotalBytes": 10, "memoryFreeBytes": 400}),
        ),
        call("e4", "exec.finished", json!({"runId": "never-dispatched"})),
        call("e5", "something.else", json!({})),
    ] {
        send_json(&mut ws, &frame).await;
        let (res, _) = pincer_testkit::recv_res(&mut ws, id, WAIT).await;
        let p = &res["payload"];
        match id {
            "e1" | "e2" => assert_eq!(
                (p["handled"].clone(), p["reason"].clone()),
                (json!(true), json!("updated")),
                "{res}"
            ),
            "e3" => assert_eq!(p["reason"], "invalid_payload", "{res}"),
            "e4" => assert_eq!(p["reason"], "unmatched_exec_event", "{res}"),
            _ => assert_eq!(p["reason"], "unsupported_event", "{res}"),
        }
    }
    // Operators saw node.presence and node.hostStats (node.* events need operator.read).
    let mut seen = std::collections::HashMap::new();
    let deadline = Instant::now() + WAIT;
    while seen.len() < 2 {
        assert!(Instant::now() < deadline, "{seen:?}");
        if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
            if e.event == "node.presence" || e.event == "node.hostStats" {
                assert!(e.seq.is_some(), "broadcasts to operators carry seq");
                seen.insert(e.event.clone(), e.payload);
            }
        }
    }
    assert_eq!(seen["node.presence"]["nodeId"], node_id.as_str());
    assert!(
        seen["node.presence"]["lastActiveAtMs"].as_u64().unwrap()
            <= seen["node.presence"]["presenceUpdatedAtMs"]
                .as_u64()
                .unwrap()
                - 5000
    );
    assert_eq!(seen["node.hostStats"]["hostStats"]["cpuCount"], 4);
    let row = node_row(&op, &node_id).await.unwrap();
    assert_eq!(row["hostStats"]["memoryFreeBytes"], 400);
    assert!(row["lastActiveAtMs"].is_u64());
    // An operator cannot send node events.
    let e = op
        .request("node.event", Some(json!({"event": "node.host.stats"})))
        .await
        .unwrap_err();
    assert_eq!(
        e.rpc_error().unwrap().message,
        "unauthorized role: operator"
    );
}
