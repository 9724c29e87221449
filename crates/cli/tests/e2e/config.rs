//! Config: start-up refusal with precise messages, `config.get` shape, hot reload (file edits
//! and RPC writes through the same path), optimistic concurrency.

use std::path::Path;
use std::time::{Duration, Instant};

use pincer_testkit::*;
use serde_json::{json, Value};

use crate::bin;

const T: Duration = Duration::from_secs(10);

/// Runs `pincer gateway run` on a state dir whose `pincer.json` is `text`; expects it to
/// refuse to start and returns its stderr.
fn refused_start(text: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pincer.json");
    std::fs::write(&path, text).unwrap();
    let out = gateway_command(bin(), dir.path(), &SpawnOptions::default())
        .output()
        .unwrap();
    assert!(!out.status.success(), "the gateway started with {text}");
    assert!(!dir.path().join("gateway.json").exists());
    (
        String::from_utf8_lossy(&out.stderr).to_string(),
        path.display().to_string(),
    )
}

fn error_line(stderr: &str) -> String {
    let start = stderr.find("error: ").expect("an error line");
    stderr[start..].trim_end().to_string()
}

#[test]
fn startup_refuses_invalid_config_with_precise_messages() {
    // One case per error class: unknown key (did you mean), wrong type, bad enum value,
    // out of range, semantic rule, syntax.
    let (err, p) = refused_start("{\n  gateway: {\n    prot: 18789,\n  },\n}\n");
    assert_eq!(
        error_line(&err),
        format!("error: invalid configuration: {p}:3:5 — gateway.prot: unknown key \"prot\" (did you mean \"port\"?)")
    );
    let (err, p) = refused_start("{\n  gateway: { port: \"18789\" },\n}");
    assert_eq!(
        error_line(&err),
        format!(
            "error: invalid configuration: {p}:2:20 — gateway.port: expected integer, got string"
        )
    );
    let (err, p) = refused_start("{ gateway: { bind: \"lna\" } }");
    assert_eq!(
        error_line(&err),
        format!("error: invalid configuration: {p}:1:20 — gateway.bind: invalid value \"lna\"; allowed values: \"auto\", \"lan\", \"loopback\", \"custom\", \"tailnet\" (did you mean \"lan\"?)")
    );
    let (err, p) = refused_start("{ gateway: { port: 70000 } }");
    assert_eq!(
        error_line(&err),
        format!("error: invalid configuration: {p}:1:20 — gateway.port: must be at most 65535")
    );
    let (err, p) = refused_start("{\n  gateway: { auth: { token: 'a', password: 'b' } },\n}");
    assert_eq!(
        error_line(&err),
        format!("error: invalid configuration: {p}:2:20 — gateway.auth: both token and password are set; choose one with gateway.auth.mode (\"token\" or \"password\")")
    );
    let (err, p) = refused_start("{\n  gateway: { port: 1 }\n  agents: {}\n}");
    assert_eq!(
        error_line(&err),
        format!("error: {p}:3:3 — syntax error: unexpected character 'a', expected ',' or '}}'")
    );
}

#[test]
fn unimplemented_keys_warn_once_and_the_gateway_starts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pincer.json"),
        "{ gateway: { tailscale: { mode: 'off' } }, wizard: { lastRunCommand: 'onboard' } }",
    )
    .unwrap();
    let gw = GatewayProcess::spawn_in(bin(), dir, SpawnOptions::default());
    let stderr = gw.stderr();
    assert_eq!(
        stderr.matches("not implemented by Pincer yet").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("gateway.tailscale") && stderr.contains("wizard"));
}

#[test]
fn config_sets_port_and_flags_win() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pincer.json"),
        format!("{{ gateway: {{ port: {port} }} }}"),
    )
    .unwrap();
    // `--port 0` (added by the test kit) wins over gateway.port ...
    let gw = GatewayProcess::spawn_in(bin(), dir, SpawnOptions::default());
    assert_ne!(gw.port, port);
    // ... and without it the file's port is used.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pincer.json"),
        format!("{{ gateway: {{ port: {port} }} }}"),
    )
    .unwrap();
    let mut cmd = std::process::Command::new(bin());
    cmd.args(["gateway", "run"])
        .env("PINCER_STATE_DIR", dir.path())
        .env_remove("PINCER_GATEWAY_PORT")
        .env_remove("OPENCLAW_GATEWAY_PORT")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let info = wait_for_gateway_json(dir.path(), &mut child, START_TIMEOUT);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(info.unwrap()["port"], port);
}

async fn rpc(ws: &mut RawWs, id: &str, method: &str, params: Value) -> Value {
    send_json(
        ws,
        &json!({"type": "req", "id": id, "method": method, "params": params}),
    )
    .await;
    recv_res(ws, id, T).await.0
}

/// The golden capture's config file, with its placeholders filled in.
fn golden_config_text(state: &Path) -> (String, Value) {
    let (_, rows) = load_golden("config_get.jsonl");
    let payload = rows
        .iter()
        .find(|r| r["frame"]["type"] == "res" && r["frame"]["payload"].get("raw").is_some())
        .map(|r| r["frame"]["payload"].clone())
        .unwrap();
    let raw = payload["raw"]
        .as_str()
        .unwrap()
        .replace("<STATE_DIR>", &state.display().to_string())
        .replace("<RUN_DIR>", &state.display().to_string())
        .replace("__OPENCLAW_REDACTED__", "sk-test-secret");
    (raw, payload)
}

#[tokio::test]
async fn config_get_matches_the_golden_shape_and_redacts() {
    let dir = tempfile::tempdir().unwrap();
    let (raw, golden) = golden_config_text(dir.path());
    std::fs::write(dir.path().join("pincer.json"), &raw).unwrap();
    let gw = GatewayProcess::spawn_in(bin(), dir, SpawnOptions::default());
    let (mut ws, _, hello) = handshake(&gw.url, golden_connect_params(Some(&gw.token()))).await;
    let defaults = &hello["payload"]["snapshot"]["sessionDefaults"];
    assert_eq!(defaults["modelConfigured"], true);
    assert_eq!(defaults["mainSessionKey"], "agent:main:main");
    let res = rpc(&mut ws, "g1", "config.get", json!({})).await;
    assert_eq!(res["ok"], true, "{res}");
    let p = &res["payload"];
    assert_eq!(key_set(p), key_set(&golden));
    assert_eq!(p["exists"], true);
    assert_eq!(p["valid"], true);
    assert!(p["hash"].as_str().unwrap().starts_with("hmac-sha256:v1:"));
    let text = p.to_string();
    assert!(!text.contains("sk-test-secret"), "secret leaked: {text}");
    assert_eq!(
        p["parsed"]["models"]["providers"]["mock"]["apiKey"],
        "__OPENCLAW_REDACTED__"
    );
    assert!(p["raw"]
        .as_str()
        .unwrap()
        .contains("\"apiKey\": \"__OPENCLAW_REDACTED__\""));
    // Sessions list defaults come from the same config.
    let list = rpc(&mut ws, "l1", "sessions.list", json!({})).await;
    assert_eq!(list["payload"]["defaults"]["model"], "mock-model");
    assert_eq!(list["payload"]["defaults"]["contextTokens"], 32000);
}

async fn wait_for(ws: &mut RawWs, method: &str, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + T;
    let mut n = 0;
    loop {
        n += 1;
        let res = rpc(ws, &format!("w{n}"), method, json!({})).await;
        if pred(&res["payload"]) {
            return res["payload"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting on {method}: {res}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn hot_reload_applies_rejects_and_reports_restart_paths() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pincer.json");
    std::fs::write(&path, "{ agents: { entries: { main: {} } } }\n").unwrap();
    let gw = GatewayProcess::spawn_in(bin(), dir, SpawnOptions::default());
    let (mut ws, _, _) = handshake(&gw.url, golden_connect_params(Some(&gw.token()))).await;
    let health = rpc(&mut ws, "h0", "health", json!({})).await;
    assert_eq!(
        health["payload"]["configReload"]["hotReloadStatus"],
        "active"
    );

    // A good edit: a second agent and the global session scope apply live.
    std::fs::write(
        &path,
        "{ agents: { entries: { main: {}, ops: { name: 'Ops' } } }, session: { scope: 'global' } }\n",
    )
    .unwrap();
    let agents = wait_for(&mut ws, "agents.list", |p| {
        p["agents"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    assert_eq!(agents["scope"], "global");
    assert_eq!(agents["agents"][1]["name"], "Ops");
    let (_, _, hello) = handshake(&gw.url, golden_connect_params(Some(&gw.token()))).await;
    assert_eq!(
        hello["payload"]["snapshot"]["sessionDefaults"]["scope"],
        "global"
    );
    let health = wait_for(&mut ws, "health", |p| {
        p["agents"].as_array().is_some_and(|a| a.len() == 2)
    })
    .await;
    assert_eq!(health["agents"][1]["agentId"], "ops");

    // A bad edit: the last good config stays, the error is in health.
    std::fs::write(&path, "{ session: { scope: 'everyone' } }\n").unwrap();
    let health = wait_for(&mut ws, "health", |p| {
        p["configReload"].get("lastError").is_some()
    })
    .await;
    let message = health["configReload"]["lastError"]["message"]
        .as_str()
        .unwrap();
    assert_eq!(
        message,
        format!("invalid configuration: {}:1:21 — session.scope: invalid value \"everyone\"; allowed values: \"per-sender\", \"global\"", path.display())
    );
    let agents = rpc(&mut ws, "a2", "agents.list", json!({})).await;
    assert_eq!(
        agents["payload"]["scope"], "global",
        "last good config kept"
    );

    // A change that needs a restart is reported (and the rest applies).
    std::fs::write(
        &path,
        "{ gateway: { port: 1 }, agents: { entries: { main: {} } } }\n",
    )
    .unwrap();
    let health = wait_for(&mut ws, "health", |p| {
        p["configReload"].get("restartRequired").is_some()
    })
    .await;
    assert_eq!(
        health["configReload"]["restartRequired"],
        json!(["gateway.port"])
    );
    assert!(health["configReload"].get("lastError").is_none());
    let agents = rpc(&mut ws, "a3", "agents.list", json!({})).await;
    assert_eq!(
        agents["payload"]["agents"].as_array().map(Vec::len),
        Some(1)
    );
    let logs = gw.wait_for_log_file(
        &[
            "config.changed",
            "restart required for: gateway.port",
            "config reload skipped",
        ],
        Duration::from_secs(10),
    );
    assert!(logs.contains("config.changed"), "{logs}");
    assert!(
        logs.contains("restart required for: gateway.port"),
        "{logs}"
    );
    assert!(logs.contains("config reload skipped"), "{logs}");
}

#[tokio::test]
async fn config_writes_validate_guard_base_hash_and_reload() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let (mut ws, _, _) = handshake(&gw.url, golden_connect_params(Some(&gw.token()))).await;
    let get = rpc(&mut ws, "g1", "config.get", json!({})).await;
    assert_eq!(get["payload"]["exists"], false);
    let base = get["payload"]["hash"].as_str().unwrap().to_string();

    // A validation error names file, line, key path and reason, and nothing is written.
    let bad = rpc(
        &mut ws,
        "s0",
        "config.set",
        json!({"raw": "{ gateway: { zzzzzzzz: 1 } }", "baseHash": base}),
    )
    .await;
    assert_eq!(bad["ok"], false);
    assert_eq!(bad["error"]["code"], "INVALID_REQUEST");
    let path = gw.state_path().join("pincer.json");
    assert_eq!(
        bad["error"]["message"],
        format!(
            "invalid configuration: {}:1:14 — gateway.zzzzzzzz: unknown key \"zzzzzzzz\"",
            path.display()
        )
    );
    assert!(!path.exists());

    let set = rpc(
        &mut ws,
        "s1",
        "config.set",
        json!({"raw": "{ session: { dmScope: 'per-peer' } }", "baseHash": base}),
    )
    .await;
    assert_eq!(set["ok"], true, "{set}");
    assert!(path.exists());
    let new_hash = set["payload"]["hash"].as_str().unwrap().to_string();
    assert_ne!(new_hash, base);

    // The stale hash is refused.
    let stale = rpc(
        &mut ws,
        "s2",
        "config.set",
        json!({"raw": "{}", "baseHash": base}),
    )
    .await;
    assert_eq!(stale["ok"], false);
    assert_eq!(stale["error"]["code"], "INVALID_REQUEST");
    assert!(
        stale["error"]["message"]
            .as_str()
            .unwrap()
            .contains("changed since it was read"),
        "{stale}"
    );
    assert_eq!(stale["error"]["details"]["reason"], "BASE_HASH_MISMATCH");

    // A patch applies through the reload path: agents.list sees it at once.
    let patch = rpc(
        &mut ws,
        "p1",
        "config.patch",
        json!({"raw": "{ agents: { entries: { ops: {} } } }", "baseHash": new_hash}),
    )
    .await;
    assert_eq!(patch["ok"], true, "{patch}");
    assert_eq!(patch["payload"]["changedPaths"], json!(["agents"]));
    assert_eq!(patch["payload"]["restart"], false);
    let agents = rpc(&mut ws, "a1", "agents.list", json!({})).await;
    assert_eq!(
        agents["payload"]["agents"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(agents["payload"]["defaultId"], "ops");

    let schema = rpc(&mut ws, "c1", "config.schema", json!({})).await;
    assert_eq!(schema["payload"]["schema"]["title"], "PincerConfig");
    let lookup = rpc(
        &mut ws,
        "c2",
        "config.schema.lookup",
        json!({"path": "session.dmScope"}),
    )
    .await;
    assert!(
        lookup["payload"]["schema"]["enum"]
            .to_string()
            .contains("per-peer"),
        "{lookup}"
    );
}

#[tokio::test]
async fn token_change_in_the_file_closes_shared_auth_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pincer.json");
    std::fs::write(
        &path,
        "{ gateway: { auth: { mode: 'token', token: 'old-token-1' } } }\n",
    )
    .unwrap();
    let gw = GatewayProcess::spawn_in(bin(), dir, SpawnOptions::default());
    let (mut old, _, hello) = handshake(&gw.url, golden_connect_params(Some("old-token-1"))).await;
    assert_eq!(hello["ok"], true, "{hello}");
    std::fs::write(
        &path,
        "{ gateway: { auth: { mode: 'token', token: 'new-token-2' } } }\n",
    )
    .unwrap();
    let (closed, _) = recv_close(&mut old, T).await;
    match closed {
        Received::Close(code, reason) => {
            assert_eq!((code, reason.as_str()), (4001, "gateway auth changed"))
        }
        other => panic!("expected a 4001 close, got {other:?}"),
    }
    let (_, _, res) = handshake(&gw.url, golden_connect_params(Some("new-token-2"))).await;
    assert_eq!(res["ok"], true, "{res}");
    let (_, _, res) = handshake(&gw.url, golden_connect_params(Some("old-token-1"))).await;
    assert_eq!(res["ok"], false, "{res}");
}

fn pincer(state: &Path, args: &[&str]) -> (bool, String, String) {
    let mut cmd = std::process::Command::new(bin());
    if !state.join("gateway.json").exists() {
        // No gateway of this state dir: make sure no other gateway on the default port answers.
        cmd.env("PINCER_GATEWAY_URL", "ws://127.0.0.1:9");
    } else {
        cmd.env_remove("PINCER_GATEWAY_URL");
    }
    let out = cmd
        .args(args)
        .env("PINCER_STATE_DIR", state)
        .env_remove("PINCER_GATEWAY_TOKEN")
        .env_remove("OPENCLAW_GATEWAY_URL")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .env_remove("PINCER_CONFIG_PATH")
        .env_remove("OPENCLAW_CONFIG_PATH")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[tokio::test]
async fn cli_config_works_offline_and_through_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_path_buf();
    let file = state.join("pincer.json");
    // Offline: edit the file atomically, validate it.
    let (ok, out, err) = pincer(&state, &["config", "set", "session.dmScope", "per-peer"]);
    assert!(ok, "{out}{err}");
    let (ok, out, _) = pincer(&state, &["config", "get", "session.dmScope"]);
    assert!(ok);
    assert_eq!(out.trim(), "\"per-peer\"");
    let (ok, _, err) = pincer(&state, &["config", "set", "gateway.port", "\"x\""]);
    assert!(!ok);
    assert!(
        err.contains("gateway.port: expected integer, got string"),
        "{err}"
    );
    std::fs::write(&file, "{\n  session: { dmScope: 'nope' },\n}\n").unwrap();
    let (ok, out, _) = pincer(&state, &["config", "validate"]);
    assert!(!ok);
    assert!(
        out.starts_with(&format!(
            "{}:2 — session.dmScope: invalid value \"nope\"",
            file.display()
        )),
        "{out}"
    );
    let (ok, out, _) = pincer(&state, &["config", "validate", "--json"]);
    assert!(!ok);
    let v: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["issues"][0]["path"], "session.dmScope");
    std::fs::write(&file, "{ session: { dmScope: 'per-peer' } }\n").unwrap();
    let (ok, out, _) = pincer(&state, &["config", "schema"]);
    assert!(ok && out.contains("PincerConfig"));

    // With a gateway running, set goes through config.apply and applies live.
    let gw = GatewayProcess::spawn_in(bin(), dir, SpawnOptions::default());
    let (ok, out, err) = pincer(
        gw.state_path(),
        &["config", "set", "session.scope", "global"],
    );
    assert!(ok, "{out}{err}");
    assert!(out.contains("applied live"), "{out}");
    let (mut ws, _, _) = handshake(&gw.url, golden_connect_params(Some(&gw.token()))).await;
    let agents = rpc(&mut ws, "a1", "agents.list", json!({})).await;
    assert_eq!(agents["payload"]["scope"], "global");
    let (ok, out, _) = pincer(gw.state_path(), &["config", "set", "gateway.port", "19999"]);
    assert!(ok);
    assert!(
        out.contains("takes effect after a gateway restart"),
        "{out}"
    );
    let (ok, _, _) = pincer(gw.state_path(), &["config", "unset", "session.scope"]);
    assert!(ok);
    let agents = rpc(&mut ws, "a2", "agents.list", json!({})).await;
    assert_eq!(agents["payload"]["scope"], "per-sender");

    // Sessions commands over RPC.
    let (ok, out, err) = pincer(gw.state_path(), &["sessions", "reset", "main"]);
    assert!(ok, "{out}{err}");
    assert!(out.starts_with("agent:main:main: new sessionId "), "{out}");
    let (ok, out, _) = pincer(gw.state_path(), &["sessions", "list"]);
    assert!(ok && out.contains("agent:main:main"), "{out}");
    let (ok, out, _) = pincer(gw.state_path(), &["sessions", "show", "main"]);
    assert!(ok && out.contains("messages: 0"), "{out}");
    let (ok, out, _) = pincer(gw.state_path(), &["sessions", "delete", "main"]);
    assert!(ok && out.contains("deleted"), "{out}");
    let (ok, out, _) = pincer(gw.state_path(), &["sessions", "list"]);
    assert!(ok && out.contains("no sessions"), "{out}");
}
