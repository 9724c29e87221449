use std::time::{Duration, Instant};

use pincer_protocol::device_auth::{build_payload_v3, DeviceKeypair};
use pincer_testkit::*;
use serde_json::{json, Value};

use crate::bin;

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn challenge_hello_ok_and_health() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let token = gw.token();
    let (mut ws, challenge, res) = handshake(&gw.url, golden_connect_params(Some(&token))).await;
    assert!(
        challenge["nonce"].as_str().is_some_and(|n| n.len() == 36),
        "{challenge}"
    );
    assert!(challenge["ts"].as_u64().is_some());
    assert_eq!(res["ok"], true, "{res}");
    let hello = &res["payload"];
    assert_eq!(hello["type"], "hello-ok");
    assert_eq!(hello["protocol"], 4);
    for key in ["server", "features", "snapshot", "auth", "policy"] {
        assert!(hello.get(key).is_some(), "hello-ok.{key} missing");
    }
    // The core methods first, in registration order; later issues append theirs.
    let methods = hello["features"]["methods"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        methods[..6],
        json!([
            "health",
            "status",
            "system-presence",
            "system-event",
            "logs.tail",
            "gateway.identity.get"
        ])
        .as_array()
        .cloned()
        .unwrap_or_default()[..]
    );
    for m in ["config.get", "sessions.list", "chat.history", "agents.list"] {
        assert!(methods.iter().any(|x| x == m), "{m} not advertised");
    }
    assert_eq!(hello["server"]["bootId"], gw.info["bootId"]);
    for key in [
        "presence",
        "health",
        "stateVersion",
        "uptimeMs",
        "sessionDefaults",
    ] {
        assert!(
            hello["snapshot"].get(key).is_some(),
            "snapshot.{key} missing"
        );
    }
    assert_eq!(
        hello["snapshot"]["sessionDefaults"]["mainSessionKey"],
        "agent:main:main"
    );
    assert_eq!(
        hello["policy"],
        json!({"maxPayload":26214400,"maxBufferedBytes":52428800,"tickIntervalMs":30000,
            "attachments":{"maxBytes":19464192,"maxImageBytes":6291456},
            "hasMultipleSessionSharingIdentities":false})
    );
    // Local cli/cli with the shared token keeps its requested scopes.
    assert_eq!(
        hello["auth"]["scopes"],
        golden_connect_params(None)["scopes"]
    );
    assert_eq!(hello["auth"]["method"], "token");

    send_json(
        &mut ws,
        &json!({"type":"req","id":"h1","method":"health","params":{}}),
    )
    .await;
    let (res, events) = recv_res(&mut ws, "h1", T).await;
    assert_eq!(res["ok"], true);
    let (golden_meta, golden_rows) = load_golden("health.jsonl");
    assert!(golden_meta["scenario"] == "health");
    let golden_health = golden_rows
        .iter()
        .find(|r| {
            r["dir"] == "s2c"
                && r["frame"]["id"]
                    .as_str()
                    .is_some_and(|i| i.starts_with("r2"))
        })
        .unwrap();
    // Every key Pincer reports is one the reference reports too.
    let reference_keys = key_set(&golden_health["frame"]["payload"]);
    for k in key_set(&res["payload"]) {
        assert!(reference_keys.contains(&k), "unexpected health key {k}");
    }
    // The health event sent right after hello carries seq 1 and a stateVersion.
    let mut all = events;
    if all.is_empty() {
        all.push(recv(&mut ws, T).await.json());
    }
    let ev = all
        .iter()
        .find(|e| e["event"] == "health")
        .expect("health event after hello");
    assert_eq!(ev["seq"], 1);
    assert!(ev["stateVersion"]["health"].as_u64().is_some());
}

#[tokio::test]
async fn wrong_missing_and_invalid_credentials() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    // Wrong token: delayed error, same details as the reference, then 1008 with the message.
    let started = Instant::now();
    let (mut ws, _, res) = handshake(
        &gw.url,
        golden_connect_params(Some("definitely-wrong-token")),
    )
    .await;
    let elapsed = started.elapsed();
    let (_, golden) = load_golden("wrong_token.jsonl");
    let golden_res = golden.iter().find(|r| r["frame"]["type"] == "res").unwrap();
    assert_eq!(res["error"], golden_res["frame"]["error"]);
    assert!(
        elapsed >= Duration::from_millis(200),
        "wrong token answered after {elapsed:?}"
    );
    let (close, _) = recv_close(&mut ws, T).await;
    assert_eq!(
        close,
        Received::Close(1008, res["error"]["message"].as_str().unwrap().to_string())
    );

    // No credentials and no device: NOT_PAIRED device identity required.
    let (mut ws, _, res) = handshake(&gw.url, golden_connect_params(None)).await;
    let (_, golden) = load_golden("missing_token.jsonl");
    let golden_res = golden.iter().find(|r| r["frame"]["type"] == "res").unwrap();
    assert_eq!(res["error"], golden_res["frame"]["error"]);
    assert_eq!(
        recv_close(&mut ws, T).await.0,
        Received::Close(1008, "device identity required".into())
    );

    // Protocol mismatch: 1002.
    let mut params = golden_connect_params(Some(&gw.token()));
    params["minProtocol"] = json!(99);
    params["maxProtocol"] = json!(99);
    let (mut ws, _, res) = handshake(&gw.url, params).await;
    let (_, golden) = load_golden("protocol_mismatch.jsonl");
    let golden_res = golden.iter().find(|r| r["frame"]["type"] == "res").unwrap();
    assert_eq!(res["error"], golden_res["frame"]["error"]);
    assert_eq!(
        recv_close(&mut ws, T).await.0,
        Received::Close(1002, "protocol mismatch".into())
    );

    // Closed schema.
    let mut params = golden_connect_params(Some(&gw.token()));
    params["client"]["id"] = json!("not-a-client");
    let (mut ws, _, res) = handshake(&gw.url, params).await;
    assert_eq!(
        res["error"]["message"],
        "invalid connect params: at /client/id: must be equal to one of the allowed values"
    );
    assert!(matches!(
        recv_close(&mut ws, T).await.0,
        Received::Close(1008, _)
    ));
}

#[tokio::test]
async fn first_frame_rules_and_preauth_limits() {
    let gw = GatewayProcess::spawn(
        bin(),
        SpawnOptions::default().env("PINCER_HANDSHAKE_TIMEOUT_MS", "400"),
    );
    let mut ws = ws_connect(&gw.url).await;
    recv(&mut ws, T).await.json();
    send_text(&mut ws, "this is not json").await;
    assert_eq!(
        recv_close(&mut ws, T).await.0,
        Received::Close(1000, String::new())
    );

    let mut ws = ws_connect(&gw.url).await;
    recv(&mut ws, T).await.json();
    send_json(&mut ws, &json!({"type":"foo"})).await;
    let (close, frames) = recv_close(&mut ws, T).await;
    assert!(
        frames.is_empty(),
        "no response to a non-request frame: {frames:?}"
    );
    assert_eq!(close, Received::Close(1008, "invalid request frame".into()));

    let mut ws = ws_connect(&gw.url).await;
    recv(&mut ws, T).await.json();
    send_json(
        &mut ws,
        &json!({"type":"req","id":"r1","method":"health","params":{}}),
    )
    .await;
    let (close, frames) = recv_close(&mut ws, T).await;
    let (_, golden) = load_golden("non_connect_first_frame.jsonl");
    let golden_res = golden.iter().find(|r| r["frame"]["type"] == "res").unwrap();
    assert_eq!(frames[0]["error"], golden_res["frame"]["error"]);
    assert_eq!(
        close,
        Received::Close(
            1008,
            "invalid handshake: first request must be connect".into()
        )
    );

    // Oversized pre-auth frame: 1009.
    let mut ws = ws_connect(&gw.url).await;
    recv(&mut ws, T).await.json();
    send_text(&mut ws, &"x".repeat(70 * 1024)).await;
    assert!(matches!(
        recv_close(&mut ws, T).await.0,
        Received::Close(1009, _) | Received::Ended
    ));

    // Silent client: handshake timeout closes 1000 "".
    let mut ws = ws_connect(&gw.url).await;
    recv(&mut ws, T).await.json();
    let started = Instant::now();
    assert_eq!(
        recv_close(&mut ws, T).await.0,
        Received::Close(1000, String::new())
    );
    assert!(started.elapsed() >= Duration::from_millis(300));

    // The gateway still serves others.
    let (_, _, res) = handshake(&gw.url, golden_connect_params(Some(&gw.token()))).await;
    assert_eq!(res["ok"], true);
}

#[tokio::test]
async fn after_hello_errors_and_scopes() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let token = gw.token();
    let (mut ws, _, _) = handshake(&gw.url, golden_connect_params(Some(&token))).await;
    let cases = [
        (
            json!({"type":"req","id":"a","method":"connect","params":{}}),
            "connect is only valid as the first request",
        ),
        (
            json!({"type":"req","id":"b","method":"no.such.method","params":{}}),
            "unknown method: no.such.method",
        ),
        (
            json!({"type":"req","id":"c","method":"logs.tail","params":{"bogus":1}}),
            "invalid logs.tail params: at root: unexpected property 'bogus'",
        ),
        (
            json!({"type":"req","id":"d","method":"health","extra":1}),
            "invalid request frame: at root: unexpected property 'extra'",
        ),
    ];
    for (frame, message) in cases {
        let id = frame["id"].as_str().unwrap().to_string();
        send_json(&mut ws, &frame).await;
        let (res, _) = recv_res(&mut ws, &id, T).await;
        assert_eq!(res["ok"], false);
        assert_eq!(
            res["error"],
            json!({"code":"INVALID_REQUEST","message":message})
        );
    }
    // Non-JSON after hello is ignored; the socket stays usable.
    send_text(&mut ws, "garbage").await;
    send_json(&mut ws, &json!({"type":"req","id":"e","method":"status"})).await;
    let (res, _) = recv_res(&mut ws, "e", T).await;
    assert_eq!(res["ok"], true);
    assert!(res["payload"]["runtimeVersion"].is_string());

    // A device-less client that is not the local CLI gets no scopes: health yes, status no.
    let mut params = golden_connect_params(Some(&token));
    params["client"] = json!({"id":"test","version":"1","platform":"linux","mode":"test"});
    let (mut ws2, _, res) = handshake(&gw.url, params).await;
    assert_eq!(res["payload"]["auth"]["scopes"], json!([]));
    send_json(
        &mut ws2,
        &json!({"type":"req","id":"s","method":"status","params":{}}),
    )
    .await;
    let (res, _) = recv_res(&mut ws2, "s", T).await;
    assert_eq!(
        res["error"],
        json!({"code":"FORBIDDEN","message":"missing scope: operator.read","details":{"code":"MISSING_SCOPE","missingScope":"operator.read","requiredScopes":["operator.read"]}})
    );
    send_json(&mut ws2, &json!({"type":"req","id":"h","method":"health"})).await;
    assert_eq!(recv_res(&mut ws2, "h", T).await.0["ok"], true);
}

fn device_params(
    kp: &DeviceKeypair,
    token: &str,
    nonce: &str,
    ts: u64,
    sign_scopes: &[String],
) -> Value {
    let mut p = golden_connect_params(Some(token));
    let scopes: Vec<String> = p["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let _ = scopes;
    let payload = build_payload_v3(
        &kp.device_id(),
        "cli",
        "cli",
        "operator",
        sign_scopes,
        ts,
        token,
        nonce,
        Some("linux"),
        None,
    );
    p["device"] = json!({"id": kp.device_id(), "publicKey": kp.public_key(), "signature": kp.sign(&payload), "signedAt": ts, "nonce": nonce});
    p
}

#[tokio::test]
async fn device_proofs_are_verified() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let token = gw.token();
    let kp = DeviceKeypair::from_seed(&[42u8; 32]);
    let scopes: Vec<String> = golden_connect_params(None)["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    for (valid, expect) in [(true, None), (false, Some("DEVICE_AUTH_SIGNATURE_INVALID"))] {
        let mut ws = ws_connect(&gw.url).await;
        let challenge = recv(&mut ws, T).await.json();
        let nonce = challenge["payload"]["nonce"].as_str().unwrap();
        let ts = challenge["payload"]["ts"].as_u64().unwrap();
        let mut sign_scopes = scopes.clone();
        if !valid {
            sign_scopes.reverse();
        }
        let params = device_params(&kp, &token, nonce, ts, &sign_scopes);
        send_json(
            &mut ws,
            &json!({"type":"req","id":"c1","method":"connect","params":params}),
        )
        .await;
        let (res, _) = recv_res(&mut ws, "c1", T).await;
        match expect {
            None => {
                assert_eq!(res["ok"], true, "{res}");
                assert_eq!(res["payload"]["auth"]["scopes"], json!(scopes));
            }
            Some(code) => {
                assert_eq!(res["error"]["details"]["code"], code);
                assert_eq!(
                    recv_close(&mut ws, T).await.0,
                    Received::Close(1008, "device signature invalid".into())
                );
            }
        }
    }
}

#[tokio::test]
async fn node_role_is_limited_to_node_methods_and_floods_close() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let token = gw.token();
    let kp = DeviceKeypair::from_seed(&[7u8; 32]);
    let mut ws = ws_connect(&gw.url).await;
    let challenge = recv(&mut ws, T).await.json();
    let nonce = challenge["payload"]["nonce"].as_str().unwrap();
    let ts = challenge["payload"]["ts"].as_u64().unwrap();
    let payload = build_payload_v3(
        &kp.device_id(),
        "node-host",
        "node",
        "node",
        &[],
        ts,
        &token,
        nonce,
        Some("linux"),
        None,
    );
    let params = json!({
        "minProtocol": 3, "maxProtocol": 4,
        "client": {"id": "node-host", "version": "1", "platform": "linux", "mode": "node"},
        "role": "node", "scopes": [], "caps": ["system"], "commands": ["system.which"],
        "auth": {"token": token},
        "device": {"id": kp.device_id(), "publicKey": kp.public_key(), "signature": kp.sign(&payload), "signedAt": ts, "nonce": nonce}
    });
    send_json(
        &mut ws,
        &json!({"type":"req","id":"c1","method":"connect","params":params}),
    )
    .await;
    let (res, _) = recv_res(&mut ws, "c1", T).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["auth"]["role"], "node");
    send_json(&mut ws, &json!({"type":"req","id":"h","method":"health"})).await;
    assert_eq!(recv_res(&mut ws, "h", T).await.0["ok"], true);
    for i in 0..11 {
        let id = format!("s{i}");
        send_json(&mut ws, &json!({"type":"req","id":id,"method":"status"})).await;
        let (res, _) = recv_res(&mut ws, &id, T).await;
        assert_eq!(res["error"]["message"], "unauthorized role: node");
    }
    assert_eq!(
        recv_close(&mut ws, T).await.0,
        Received::Close(1008, "repeated unauthorized calls".into())
    );

    // A node without a device identity is refused even with the shared token.
    let mut params = golden_connect_params(Some(&gw.token()));
    params["role"] = json!("node");
    params["scopes"] = json!([]);
    params["client"] =
        json!({"id": "node-host", "version": "1", "platform": "linux", "mode": "node"});
    let (_, _, res) = handshake(&gw.url, params).await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED");
}

#[tokio::test]
async fn oversized_frame_after_hello_closes_1009_and_others_keep_working() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let (mut ws, _, res) = handshake(&gw.url, golden_connect_params(Some(&gw.token()))).await;
    assert_eq!(res["ok"], true);
    let big = "x".repeat(30 * 1024 * 1024);
    // The server may close before the whole frame is written; a send error is fine.
    let _ = futures_util_send(&mut ws, big).await;
    let (close, _) = recv_close(&mut ws, Duration::from_secs(20)).await;
    assert!(
        matches!(close, Received::Close(1009, _) | Received::Ended),
        "{close:?}"
    );
    let (_, _, res) = handshake(&gw.url, golden_connect_params(Some(&gw.token()))).await;
    assert_eq!(res["ok"], true);
}

async fn futures_util_send(ws: &mut RawWs, text: String) -> bool {
    tokio::time::timeout(
        Duration::from_secs(20),
        pincer_testkit::try_send_text(ws, text),
    )
    .await
    .unwrap_or(false)
}
