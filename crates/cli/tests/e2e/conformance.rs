//! Golden-replay conformance (issue 2): every handshake and RPC scenario captured from the
//! reference gateway is replayed against the real `pincer` binary over real sockets and
//! compared frame by frame (`pincer_testkit::replay`). Volatile fields are masked from each
//! capture's `meta` (`pincer_testkit::masks`); everything else must match unless one of the
//! allowlists below names the place and says why Pincer differs on purpose (or which issue
//! will close the gap). Allowlist rules that stop being needed fail the test, so these lists
//! only shrink.

use std::time::{Duration, Instant};

use pincer_testkit::compare::Action::{Absent, Extra, Mask, Shape, Subset};
use pincer_testkit::compare::Rule;
use pincer_testkit::replay::{Replay, ReplayReport, REPLAY_TOKEN};
use pincer_testkit::*;
use serde_json::json;

use crate::bin;

/// `connect.challenge`.
const CHALLENGE: &[Rule] = &[Rule::new(
    "event:connect.challenge",
    "payload.capabilities",
    Subset,
    "Pincer announces only what it implements; `model-catalog-snapshot` needs models.list (issue 5)",
)];

/// `hello-ok` (the `res` to `connect`).
const HELLO_OK: &[Rule] = &[
    Rule::new(
        "res:connect",
        "payload.features.methods",
        Subset,
        "exactly the methods Pincer implements (the reference advertises 466); the rest land with their issues",
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
        "wire-contract flags of reference subsystems Pincer lacks (model catalog, workers, boards, session settings, profile binding); none applies yet",
    ),
    Rule::new(
        "res:connect",
        "payload.server.controlUiBuildSource",
        Absent,
        "no Control UI is served yet (issue 8)",
    ),
    Rule::new(
        "res:connect",
        "payload.controlUiWidgetKinds",
        Absent,
        "widget kinds of reference-only Control UI plugins (browser dashboard, session reports)",
    ),
    Rule::new(
        "res:connect",
        "payload.controlUiLinkReaders",
        Absent,
        "link readers of reference-only plugins (GitHub)",
    ),
    Rule::new(
        "res:connect",
        "payload.pluginSurfaceUrls",
        Absent,
        "the reference's canvas plugin surface; Pincer hosts no canvas (node surfaces: issue 7)",
    ),
    Rule::new(
        "res:connect",
        "payload.policy.allowedSessionVisibilities",
        Absent,
        "Pincer has no session sharing; advertising visibilities would make UIs offer modes it cannot honour",
    ),
    Rule::new(
        "res:connect",
        "payload.snapshot.appliedConfigHash",
        Absent,
        "hash of the applied config file (issue 4)",
    ),
    Rule::new(
        "res:connect",
        "payload.snapshot.updateSchedule",
        Absent,
        "the reference's self-updater; Pincer is updated by its package manager",
    ),
];

/// Presence entries (hello-ok snapshot, `system-presence`, `presence` events).
const PRESENCE: &[Rule] = &[
    Rule::new(
        "res:connect|event:presence",
        "**.presence[].ip",
        Absent,
        "the reference reports the host's LAN address for itself; Pincer does not enumerate interfaces for its own entry",
    ),
    Rule::new(
        "res:system-presence",
        "payload[].ip",
        Absent,
        "as above",
    ),
];

/// `HealthSnapshot` (hello-ok snapshot, `health` res and event).
const HEALTH: &[Rule] = &[
    Rule::new(
        "res:connect|res:health|event:health",
        "payload.**.plugins.loaded",
        Subset,
        "the reference loads 14 bundled plugins; Pincer has no plugin host",
    ),
    Rule::new(
        "res:connect|res:health|event:health",
        "payload.**.agents[].heartbeat.prompt",
        Mask,
        "Pincer's own wording of the default heartbeat prompt (the reference's prose is not copied)",
    ),
    Rule::new(
        "res:connect|res:health|event:health",
        "payload.**.eventLoop.cpuBreakdown",
        Absent,
        "Node's main-thread/worker-thread split has no tokio equivalent; Pincer reports cpuCoreRatio for the process",
    ),
    Rule::new(
        "res:health",
        "payload.modelRuntime",
        Absent,
        "warm-up state of the reference's model runtime (issue 5)",
    ),
];

/// `status`.
const STATUS: &[Rule] = &[
    Rule::new(
        "res:status",
        "payload.eventLoop.cpuBreakdown",
        Absent,
        "Node's main-thread/worker-thread split (see HEALTH)",
    ),
    Rule::new(
        "res:status",
        "payload.processMemory.heap*",
        Absent,
        "V8 heap statistics; Pincer reports rssBytes",
    ),
    Rule::new(
        "res:status",
        "payload.processMemory.externalBytes",
        Absent,
        "V8 external memory",
    ),
    Rule::new(
        "res:status",
        "payload.processMemory.arrayBuffersBytes",
        Absent,
        "V8 array buffers",
    ),
    Rule::new(
        "res:status",
        "payload.workerPools",
        Absent,
        "Node worker-thread pools; Pincer runs blocking work on tokio's pool",
    ),
    Rule::new(
        "res:status",
        "payload.hostDesktop",
        Absent,
        "the reference's remote-desktop host (VNC), not part of Pincer",
    ),
    Rule::new(
        "res:status",
        "payload.shutdownBudget",
        Absent,
        "the reference's drain budget for in-flight work; Pincer's shutdown has no long-running work to budget yet (agent runs: issue 5)",
    ),
    Rule::new(
        "res:status",
        "payload.taskAudit",
        Absent,
        "audit of the background-task ledger, which arrives with the agent runtime (issue 5)",
    ),
    Rule::new(
        "res:status",
        "payload.modelRuntime",
        Absent,
        "warm-up state of the reference's model runtime (issue 5)",
    ),
    Rule::new(
        "res:status",
        "payload.degradedSecretOwners",
        Absent,
        "SecretRef resolution in the running gateway arrives with config (issue 4)",
    ),
    Rule::new(
        "res:status",
        "payload.heartbeat.agents[].waitingForRoute",
        Absent,
        "heartbeat delivery routing (issue 10)",
    ),
    Rule::new(
        "res:status",
        "payload.connections",
        Extra,
        "Pincer addition: authenticated connection count",
    ),
    Rule::new(
        "res:status",
        "payload.uptimeMs",
        Extra,
        "Pincer addition: process uptime",
    ),
    Rule::new(
        "res:status",
        "payload.stateDir",
        Extra,
        "Pincer addition (admin only): where its state lives",
    ),
];

/// Captures taken on a gateway that had served other clients and agent runs before.
const BUSIER_REFERENCE: &[Rule] = &[
    Rule::new(
        "res:connect",
        "payload.snapshot.presence",
        Shape,
        "other clients (a node, listeners) were connected while the reference was captured",
    ),
    Rule::new(
        "res:connect|event:health",
        "payload.**.sessions.count",
        Mask,
        "the captured gateway had run agent sessions before; sessions arrive with issue 4",
    ),
    Rule::new(
        "res:connect|event:health",
        "payload.**.sessions.recent",
        Mask,
        "as above",
    ),
];

/// The config the reference ran with while capturing (`config_get.jsonl`): a mock
/// OpenAI-compatible provider as the default model. The replayed gateway gets the same, so
/// `modelConfigured`, session defaults and heartbeat settings are compared, not excused.
fn capture_config() -> serde_json::Value {
    json!({
        "agents": {"defaults": {"model": {"primary": "mock/mock-model"}}},
        "models": {
            "mode": "replace",
            "providers": {
                "mock": {
                    "baseUrl": "http://127.0.0.1:9/v1",
                    "apiKey": "conformance-not-a-key",
                    "api": "openai-completions",
                    "timeoutSeconds": 60,
                    "models": [{
                        "id": "mock-model", "name": "Mock Model", "reasoning": false,
                        "input": ["text"],
                        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
                        "contextWindow": 32000, "maxTokens": 1024
                    }]
                }
            }
        }
    })
}

pub(crate) fn common(replay: Replay) -> Replay {
    replay
        .config(capture_config())
        .allow(CHALLENGE)
        .allow(HELLO_OK)
        .allow(PRESENCE)
        .allow(HEALTH)
        .allow(STATUS)
}

async fn conforms(replay: Replay) -> ReplayReport {
    let mut report = replay.run(bin()).await;
    report.assert_conforms();
    report.gateway.assert_alive_without_panic();
    report
}

// ---- handshake failures ----

#[tokio::test]
async fn non_json_first_frame() {
    conforms(common(Replay::new("non_json_first_frame.jsonl"))).await;
}

#[tokio::test]
async fn non_connect_first_frame() {
    conforms(common(Replay::new("non_connect_first_frame.jsonl"))).await;
}

#[tokio::test]
async fn protocol_mismatch() {
    conforms(common(Replay::new("protocol_mismatch.jsonl"))).await;
}

#[tokio::test]
async fn missing_token() {
    conforms(common(Replay::new("missing_token.jsonl"))).await;
}

#[tokio::test]
async fn wrong_token() {
    conforms(common(Replay::new("wrong_token.jsonl"))).await;
}

/// The error shape only (device pairing itself is issue 3): a valid device proof with a wrong
/// shared token may retry with a device token.
#[tokio::test]
async fn wrong_token_with_device() {
    conforms(common(Replay::new("wrong_token_with_device.jsonl"))).await;
}

/// The capture waited 15 s; a short handshake timeout replays the same close (1000, "").
#[tokio::test]
async fn silent_client_preauth_timeout() {
    let started = Instant::now();
    conforms(
        common(Replay::new("silent_client_preauth_timeout.jsonl"))
            .env("PINCER_HANDSHAKE_TIMEOUT_MS", "300"),
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
}

// ---- RPCs after a device-signed connect ----

#[tokio::test]
async fn health() {
    conforms(common(Replay::new("health.jsonl"))).await;
}

#[tokio::test]
async fn status() {
    conforms(common(Replay::new("status.jsonl"))).await;
}

#[tokio::test]
async fn system_presence() {
    conforms(common(Replay::new("system_presence.jsonl"))).await;
}

#[tokio::test]
async fn unknown_method() {
    conforms(common(Replay::new("unknown_method.jsonl"))).await;
}

/// The capture's failure class (a required property missing and an unknown one present)
/// against `system-event`, which requires `text`: the same message format.
#[tokio::test]
async fn invalid_params_same_failure_class_on_an_implemented_method() {
    let report = conforms(
        common(Replay::new("invalid_params.jsonl"))
            .substitute_sent("chat.history", "system-event")
            .substitute_expected("chat.history", "system-event")
            .substitute_expected("'sessionKey'", "'text'"),
    )
    .await;
    let res = report.response("op", "r2-667ba094").expect("the error");
    assert_eq!(
        res["error"]["message"],
        "invalid system-event params: must have required property 'text'; at root: unexpected property 'bogus'"
    );
}

/// The literal capture, now that `chat.history` (issue 4) exists.
#[tokio::test]
async fn invalid_params_literal_chat_history() {
    conforms(common(Replay::new("invalid_params.jsonl"))).await;
}

/// A device operator with only `operator.read`: health and config.get (a read method) work,
/// an admin method is FORBIDDEN with MISSING_SCOPE details.
#[tokio::test]
async fn missing_scope() {
    let report = conforms(
        common(Replay::new("missing_scope.jsonl"))
            .allow(&[Rule::new(
                "res:config.get",
                "payload",
                Mask,
                "what config.get returns is compared by the config conformance (config_get.jsonl, issue 4); here it only has to succeed",
            )]),
    )
    .await;
    let hello = report.hello("op").expect("hello-ok");
    assert_eq!(hello["auth"]["scopes"], json!(["operator.read"]));
}

// ---- events ----

/// 35 s of idle in the capture; a 200 ms tick here.
#[tokio::test]
async fn idle_tick() {
    let report = conforms(
        common(Replay::new("idle_tick.jsonl"))
            .env("PINCER_TICK_INTERVAL_MS", "200")
            .missing_event(
                "skills.changed",
                "the reference's skills watcher; skills arrive with the tools (issue 6)",
            )
            .allow(BUSIER_REFERENCE)
            .allow(&[
                Rule::new(
                    "res:connect",
                    "payload.policy.tickIntervalMs",
                    Mask,
                    "shortened by PINCER_TICK_INTERVAL_MS here (asserted below); the default 30000 is compared in the other scenarios",
                ),
            ]),
    )
    .await;
    let hello = report.hello("op").expect("hello-ok");
    assert_eq!(hello["policy"]["tickIntervalMs"], 200);
}

/// SIGTERM: `shutdown` event, then close 1012 "service restart"; the process exits cleanly.
#[tokio::test]
async fn shutdown() {
    let mut report = common(Replay::new("shutdown.jsonl"))
        .allow(BUSIER_REFERENCE)
        .sigterm_before("shutdown")
        .run(bin())
        .await;
    report.assert_conforms();
    let status = report
        .gateway
        .wait_exit(Duration::from_secs(5))
        .expect("the gateway exits after SIGTERM");
    assert!(status.success(), "{status:?}");
}

// ---- things the captures cannot show ----

/// The default handshake timeout is the reference's 15 s; checked from the gateway's start-up
/// log instead of waiting 15 s.
#[tokio::test]
async fn default_handshake_timeout_is_15s() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let line = gw
        .wait_for_log_line("gateway listening", Duration::from_secs(5))
        .unwrap_or_default();
    assert!(
        line.contains("handshake_timeout_ms") && line.contains("15000"),
        "start-up log line: {line}"
    );
}

/// What issue 2 owns of the missing-scope rule, without a device: a local CLI connection that
/// asked for `operator.read` only calls an admin method Pincer implements.
#[tokio::test]
async fn read_only_connection_calling_an_admin_method_is_forbidden() {
    let gw = GatewayProcess::spawn(
        bin(),
        SpawnOptions::default().arg("--token").arg(REPLAY_TOKEN),
    );
    let mut params = golden_connect_params(Some(REPLAY_TOKEN));
    params["scopes"] = json!(["operator.read"]);
    let (mut ws, _, hello) = handshake(&gw.url, params).await;
    assert_eq!(hello["payload"]["auth"]["scopes"], json!(["operator.read"]));
    send_json(
        &mut ws,
        &json!({"type":"req","id":"e1","method":"system-event","params":{"text":"hi"}}),
    )
    .await;
    let (res, _) = recv_res(&mut ws, "e1", Duration::from_secs(5)).await;
    assert_eq!(
        res["error"],
        json!({"code":"FORBIDDEN","message":"missing scope: operator.admin","details":{"code":"MISSING_SCOPE","missingScope":"operator.admin","requiredScopes":["operator.admin"]}})
    );
    // A read method still works on the same socket.
    send_json(&mut ws, &json!({"type":"req","id":"s1","method":"status"})).await;
    assert_eq!(
        recv_res(&mut ws, "s1", Duration::from_secs(5)).await.0["ok"],
        true
    );
}

// ---- device proofs (issue 3's cases; the engine re-signs each with the captured defect) ----

async fn device_case(golden: &str) {
    conforms(common(Replay::new(golden))).await;
}

#[tokio::test]
async fn connect_token_no_device() {
    device_case("connect_token_no_device.jsonl").await;
}

#[tokio::test]
async fn connect_device_v3() {
    device_case("connect_device_v3.jsonl").await;
}

#[tokio::test]
async fn connect_device_v2_legacy() {
    device_case("connect_device_v2_legacy.jsonl").await;
}

#[tokio::test]
async fn connect_device_v3_platform_normalized() {
    device_case("connect_device_v3_platform_normalized.jsonl").await;
}

#[tokio::test]
async fn connect_device_bad_signature() {
    device_case("connect_device_bad_signature.jsonl").await;
}

#[tokio::test]
async fn connect_device_id_mismatch() {
    device_case("connect_device_id_mismatch.jsonl").await;
}

#[tokio::test]
async fn connect_device_stale_signedat() {
    device_case("connect_device_stale_signedat.jsonl").await;
}

#[tokio::test]
async fn connect_device_nonce_mismatch() {
    device_case("connect_device_nonce_mismatch.jsonl").await;
}

#[tokio::test]
async fn connect_device_nonce_missing() {
    device_case("connect_device_nonce_missing.jsonl").await;
}

#[tokio::test]
async fn connect_device_scopes_reordered_in_payload() {
    device_case("connect_device_scopes_reordered_in_payload.jsonl").await;
}

/// The device token issued on the first connect is the only credential of the second.
#[tokio::test]
async fn connect_device_token_reuse() {
    device_case("connect_device_token_reuse.jsonl").await;
}
