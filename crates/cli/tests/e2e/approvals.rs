//! Exec approvals over WS through the real binary (issue 6): the agent's exec call waits for
//! an operator; the operator client (cap `exec-approvals`) gets `exec.approval.requested`,
//! decides with `exec.approval.resolve` or `pincer approvals`, and the tool result carries the
//! command's output — or a clear denial on deny, timeout, or no approval client. Plus the
//! `exec.approval.*` / `exec.approvals.*` methods themselves.

use std::process::Command;
use std::time::Duration;

use pincer_fakes::llm::Reply;
use pincer_testkit::*;
use serde_json::{json, Value};

use crate::agent::{is_chat_end, op, rpc, until, Gw, TOKEN};
use crate::bin;
use crate::tools::{gateway, tool_results};

/// A gateway where every command needs approval (`ask: always`), decided within `timeout_s`.
async fn asking_gateway(timeout_s: u64) -> Gw {
    gateway(json!({"tools": {"exec": {"ask": "always", "approvalTimeoutSeconds": timeout_s}}}))
        .await
}

/// Scripts one exec call of `command`, then a closing text.
fn script_exec(gw: &Gw, id: &str, command: &str) {
    gw.fake
        .push(Reply::new().tool_call(id, "exec", &json!({"command": command}).to_string()));
    gw.fake.push(Reply::new().text("Finished."));
}

async fn send_chat(ws: &mut RawWs, id: &str, message: &str) {
    let run = format!("run-{id}");
    let (ack, _) = rpc(
        ws,
        id,
        "chat.send",
        json!({"sessionKey": "main", "message": message, "idempotencyKey": run}),
    )
    .await;
    assert_eq!(ack["ok"], true, "{ack}");
}

/// Frames until the next `exec.approval.requested`; returns its payload.
async fn next_request(ws: &mut RawWs) -> Value {
    let frames = until(ws, |v| v["event"] == "exec.approval.requested").await;
    frames.last().unwrap()["payload"].clone()
}

fn cli(gw: &Gw, args: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(args)
        .args(["--url", &gw.gw.url, "--token", TOKEN])
        .env("PINCER_STATE_DIR", gw.gw.state_path())
        .env_remove("PINCER_GATEWAY_URL")
        .env_remove("OPENCLAW_GATEWAY_URL")
        .env_remove("PINCER_GATEWAY_TOKEN")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_once_over_ws_runs_the_command_and_resolve_rules_hold() {
    let gw = asking_gateway(60).await;
    script_exec(&gw, "call_ok", "echo approved-$((40+2))");
    let mut ws = op(&gw, &["exec-approvals", "tool-events"]).await;
    // An operator without the approvals capability never sees the prompt.
    let mut bystander = op(&gw, &[]).await;
    send_chat(&mut ws, "a1", "run it").await;
    let req = next_request(&mut ws).await;
    let id = req["id"].as_str().unwrap().to_owned();
    assert_eq!(req["approvalKind"], "exec");
    assert_eq!(req["request"]["command"], "echo approved-$((40+2))");
    assert_eq!(req["request"]["ask"], "always");
    assert_eq!(req["request"]["agentId"], "main");
    assert_eq!(req["request"]["sessionKey"], "agent:main:main");
    assert_eq!(req["request"]["toolCallId"], "call_ok");
    let (created, expires) = (
        req["createdAtMs"].as_i64().unwrap(),
        req["expiresAtMs"].as_i64().unwrap(),
    );
    assert!((expires - created - 60_000).abs() < 1000, "{req}");

    // list / get while it waits.
    let (res, _) = rpc(&mut ws, "l1", "exec.approval.list", json!({})).await;
    let list = res["payload"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{res}");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["request"]["command"], "echo approved-$((40+2))");
    let (res, _) = rpc(&mut ws, "g1", "exec.approval.get", json!({"id": id})).await;
    assert_eq!(
        res["payload"]["commandText"], "echo approved-$((40+2))",
        "{res}"
    );
    assert_eq!(
        res["payload"]["allowedDecisions"],
        json!(["allow-once", "deny"])
    );
    // ask=always: allow-always is not offered.
    let (res, _) = rpc(
        &mut ws,
        "r0",
        "exec.approval.resolve",
        json!({"id": id, "decision": "allow-always"}),
    )
    .await;
    assert_eq!(
        res["error"]["details"]["reason"], "APPROVAL_ALLOW_ALWAYS_UNAVAILABLE",
        "{res}"
    );
    let (res, early) = rpc(
        &mut ws,
        "r1",
        "exec.approval.resolve",
        json!({"id": id, "decision": "allow-once"}),
    )
    .await;
    assert_eq!(res["payload"], json!({"ok": true}), "{res}");

    let mut frames = early;
    frames.extend(until(&mut ws, |v| is_chat_end(v, "run-a1")).await);
    let resolved = frames
        .iter()
        .find(|f| f["event"] == "exec.approval.resolved")
        .expect("resolved event");
    assert_eq!(resolved["payload"]["id"], id.as_str());
    assert_eq!(resolved["payload"]["decision"], "allow-once");
    assert_eq!(resolved["payload"]["resolvedBy"], "cli");
    assert_eq!(
        resolved["payload"]["request"]["command"],
        "echo approved-$((40+2))"
    );
    let r = tool_results(&frames, "run-a1");
    assert!(
        !r[0].is_error && r[0].text.contains("approved-42"),
        "{:?}",
        r[0]
    );

    // The same decision again is fine; another is refused; an unknown id is not found.
    let (res, _) = rpc(
        &mut ws,
        "r2",
        "exec.approval.resolve",
        json!({"id": id, "decision": "allow-once"}),
    )
    .await;
    assert_eq!(res["payload"], json!({"ok": true}), "{res}");
    let (res, _) = rpc(
        &mut ws,
        "r3",
        "exec.approval.resolve",
        json!({"id": id, "decision": "deny"}),
    )
    .await;
    assert_eq!(res["error"]["code"], "INVALID_REQUEST", "{res}");
    assert_eq!(res["error"]["message"], "approval already resolved");
    assert_eq!(
        res["error"]["details"]["reason"],
        "APPROVAL_ALREADY_RESOLVED"
    );
    let (res, _) = rpc(
        &mut ws,
        "r4",
        "exec.approval.resolve",
        json!({"id": "00000000-nope", "decision": "deny"}),
    )
    .await;
    assert_eq!(
        res["error"]["message"], "unknown or expired approval id",
        "{res}"
    );
    assert_eq!(res["error"]["details"]["reason"], "APPROVAL_NOT_FOUND");
    let (res, _) = rpc(
        &mut ws,
        "r5",
        "exec.approval.resolve",
        json!({"id": id, "decision": "maybe"}),
    )
    .await;
    assert_eq!(res["error"]["message"], "invalid decision", "{res}");
    // waitDecision after the fact answers from the record.
    let (res, _) = rpc(
        &mut ws,
        "w1",
        "exec.approval.waitDecision",
        json!({"id": id}),
    )
    .await;
    assert_eq!(res["payload"]["decision"], "allow-once", "{res}");

    // The bystander saw the run but no approval events.
    let seen = until(&mut bystander, |v| is_chat_end(v, "run-a1")).await;
    assert!(!seen.iter().any(|f| f["event"]
        .as_str()
        .is_some_and(|e| e.starts_with("exec.approval"))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_and_allow_always_from_the_cli() {
    let gw = gateway(json!({"tools": {"exec": {"ask": "on-miss", "security": "allowlist"}}})).await;
    let mut ws = op(&gw, &["exec-approvals", "tool-events"]).await;

    // Denied from the CLI: the model reads a clear denial, the command did not run.
    script_exec(&gw, "call_deny", "touch denied.txt");
    send_chat(&mut ws, "d1", "make a file").await;
    let req = next_request(&mut ws).await;
    let id = req["id"].as_str().unwrap().to_owned();
    let out = cli(&gw, &["approvals", "list"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && listed.contains(&id) && listed.contains("touch denied.txt"),
        "{listed}"
    );
    let out = cli(&gw, &["approvals", "deny", &id[..8]]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = until(&mut ws, |v| is_chat_end(v, "run-d1")).await;
    let r = tool_results(&frames, "run-d1");
    assert!(
        r[0].is_error && r[0].text.contains("denied by the operator"),
        "{:?}",
        r[0]
    );
    assert!(r[0].text.contains("did not run"), "{:?}", r[0]);
    assert!(!gw.gw.state_path().join("workspace/denied.txt").exists());

    // Allowed always: it runs, and the same command in the same directory no longer asks.
    script_exec(&gw, "call_always", "echo granted");
    send_chat(&mut ws, "g1", "say granted").await;
    let req = next_request(&mut ws).await;
    let id = req["id"].as_str().unwrap().to_owned();
    let out = cli(&gw, &["approvals", "approve", &id, "--always"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let frames = until(&mut ws, |v| is_chat_end(v, "run-g1")).await;
    let r = tool_results(&frames, "run-g1");
    assert!(
        !r[0].is_error && r[0].text.contains("granted"),
        "{:?}",
        r[0]
    );

    script_exec(&gw, "call_again", "echo granted");
    send_chat(&mut ws, "g2", "say granted again").await;
    let frames = until(&mut ws, |v| is_chat_end(v, "run-g2")).await;
    assert!(
        !frames
            .iter()
            .any(|f| f["event"] == "exec.approval.requested"),
        "an allow-always grant needs no second approval"
    );
    let r = tool_results(&frames, "run-g2");
    assert!(
        !r[0].is_error && r[0].text.contains("granted"),
        "{:?}",
        r[0]
    );
    // Another command still asks (the grant is bound to the exact argv).
    script_exec(&gw, "call_other", "echo granted twice");
    send_chat(&mut ws, "g3", "say more").await;
    let req = next_request(&mut ws).await;
    assert_eq!(req["request"]["command"], "echo granted twice");
    let (res, _) = rpc(
        &mut ws,
        "r1",
        "exec.approval.resolve",
        json!({"id": req["id"], "decision": "deny"}),
    )
    .await;
    assert_eq!(res["payload"], json!({"ok": true}));
    until(&mut ws, |v| is_chat_end(v, "run-g3")).await;

    // The grant is in the approvals document, persisted in SQLite.
    let (res, _) = rpc(&mut ws, "p1", "exec.approvals.get", json!({})).await;
    let p = &res["payload"];
    assert_eq!(p["exists"], true, "{res}");
    let entries = p["file"]["agents"]["main"]["allowlist"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{res}");
    assert_eq!(entries[0]["source"], "allow-always");
    assert!(entries[0]["pattern"].as_str().unwrap().ends_with("/echo"));
    let out = cli(&gw, &["approvals", "policy", "get"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("agent main: 1 allowlist entries") && text.contains("allow-always"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_approval_times_out_as_a_clear_denial() {
    let gw = asking_gateway(1).await;
    script_exec(&gw, "call_slow", "touch late.txt");
    let mut ws = op(&gw, &["exec-approvals", "tool-events"]).await;
    send_chat(&mut ws, "t1", "make it").await;
    let req = next_request(&mut ws).await;
    let id = req["id"].as_str().unwrap().to_owned();
    let frames = until(&mut ws, |v| is_chat_end(v, "run-t1")).await;
    let r = tool_results(&frames, "run-t1");
    assert!(r[0].is_error, "{:?}", r[0]);
    assert!(
        r[0].text.contains("timed out") && r[0].text.contains("did not run"),
        "{:?}",
        r[0]
    );
    assert!(!gw.gw.state_path().join("workspace/late.txt").exists());
    let resolved = frames
        .iter()
        .find(|f| f["event"] == "exec.approval.resolved")
        .expect("resolved");
    assert_eq!(resolved["payload"]["id"], id.as_str());
    assert_eq!(resolved["payload"]["decision"], Value::Null);
    // Too late to decide now.
    let (res, _) = rpc(
        &mut ws,
        "r1",
        "exec.approval.resolve",
        json!({"id": id, "decision": "allow-once"}),
    )
    .await;
    assert_eq!(
        res["error"]["details"]["reason"], "APPROVAL_NOT_FOUND",
        "{res}"
    );
    let (res, _) = rpc(
        &mut ws,
        "w1",
        "exec.approval.waitDecision",
        json!({"id": id}),
    )
    .await;
    assert_eq!(res["payload"]["decision"], Value::Null, "{res}");
    assert_eq!(res["payload"]["terminalReason"], "timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_approval_client_the_command_is_denied_at_once() {
    let gw = asking_gateway(60).await;
    script_exec(&gw, "call_alone", "touch alone.txt");
    let mut ws = op(&gw, &["tool-events"]).await;
    send_chat(&mut ws, "n1", "make it").await;
    let frames = until(&mut ws, |v| is_chat_end(v, "run-n1")).await;
    let r = tool_results(&frames, "run-n1");
    assert!(r[0].is_error, "{:?}", r[0]);
    assert!(
        r[0].text.contains("no operator client that can approve"),
        "{:?}",
        r[0]
    );
    assert!(!gw.gw.state_path().join("workspace/alone.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_methods_two_phase_and_the_approvals_document() {
    let gw = gateway(json!({})).await;
    let mut asker = op(&gw, &[]).await;
    let mut approver = op(&gw, &["exec-approvals"]).await;
    send_json(
        &mut asker,
        &json!({"type": "req", "id": "q1", "method": "exec.approval.request",
                "params": {"command": "make deploy", "cwd": "/srv/app", "host": "gateway",
                           "agentId": "main", "timeoutMs": 30000, "twoPhase": true}}),
    )
    .await;
    let (accepted, _) = recv_res(&mut asker, "q1", Duration::from_secs(10)).await;
    assert_eq!(accepted["payload"]["status"], "accepted", "{accepted}");
    assert_eq!(accepted["payload"]["deliveryRoute"], "approval-client");
    let id = accepted["payload"]["id"].as_str().unwrap().to_owned();
    let req = next_request(&mut approver).await;
    assert_eq!(req["id"], id.as_str());
    assert_eq!(req["request"]["cwd"], "/srv/app");
    let (res, _) = rpc(
        &mut approver,
        "r1",
        "exec.approval.resolve",
        json!({"id": id, "decision": "deny"}),
    )
    .await;
    assert_eq!(res["payload"], json!({"ok": true}));
    let (fin, _) = recv_res(&mut asker, "q1", Duration::from_secs(10)).await;
    assert_eq!(fin["payload"]["decision"], "deny", "{fin}");
    assert_eq!(fin["payload"]["id"], id.as_str());
    // Bad requests.
    let (res, _) = rpc(
        &mut asker,
        "q2",
        "exec.approval.request",
        json!({"commandArgv": []}),
    )
    .await;
    assert_eq!(res["error"]["message"], "command is required", "{res}");
    let (res, _) = rpc(
        &mut asker,
        "q3",
        "exec.approval.request",
        json!({"command": "x", "bogus": 1}),
    )
    .await;
    assert_eq!(res["error"]["code"], "INVALID_REQUEST", "{res}");
    let (res, _) = rpc(
        &mut asker,
        "q4",
        "exec.approval.get",
        json!({"id": "missing"}),
    )
    .await;
    assert_eq!(
        res["error"]["details"]["reason"], "APPROVAL_NOT_FOUND",
        "{res}"
    );

    // The approvals document: get, set with the base hash, stale hash refused.
    let (res, _) = rpc(&mut asker, "p1", "exec.approvals.get", json!({})).await;
    let p = res["payload"].clone();
    assert_eq!(p["exists"], false, "{res}");
    assert_eq!(p["resolvedDefaults"]["security"], "full");
    let file = json!({"version": 1, "defaults": {"security": "allowlist", "ask": "on-miss", "askFallback": "deny"}});
    let (res, _) = rpc(
        &mut asker,
        "p2",
        "exec.approvals.set",
        json!({"file": file, "baseHash": p["hash"]}),
    )
    .await;
    assert_eq!(res["payload"]["exists"], true, "{res}");
    assert_eq!(res["payload"]["resolvedDefaults"]["ask"], "on-miss");
    let (res, _) = rpc(
        &mut asker,
        "p3",
        "exec.approvals.set",
        json!({"file": file, "baseHash": p["hash"]}),
    )
    .await;
    assert_eq!(
        res["error"]["message"],
        "exec approvals changed since last load; re-run exec.approvals.get and retry",
        "{res}"
    );
    let (res, _) = rpc(
        &mut asker,
        "p4",
        "exec.approvals.set",
        json!({"file": file}),
    )
    .await;
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .contains("base hash required"),
        "{res}"
    );
    let bad = json!({"version": 1, "defaults": {"security": "sometimes"}});
    let (res, _) = rpc(&mut asker, "p5", "exec.approvals.set", json!({"file": bad})).await;
    assert!(
        res["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid exec approvals file"),
        "{res}"
    );

    // The document is policy: the agent's exec now asks (on-miss) — and a restart keeps it.
    let (res, _) = rpc(&mut asker, "p6", "exec.approvals.get", json!({})).await;
    assert_eq!(res["payload"]["file"]["defaults"]["askFallback"], "deny");
}
