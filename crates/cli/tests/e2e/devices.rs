//! Device proof, pairing, device tokens and credential revocation through the real binary.
//! Rejections are compared with the reference captures (`connect_device_*`, `wrong_token*`):
//! same error code, message, details and close code/reason.

use std::time::{Duration, Instant};

use pincer_protocol::device_auth::{build_payload_v2, build_payload_v3, DeviceKeypair};
use pincer_testkit::*;
use serde_json::{json, Value};

use crate::bin;

const T: Duration = Duration::from_secs(5);

pub fn scopes_of(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// How a test wants the device proof built (defaults: a correct v3 proof).
#[derive(Clone, Default)]
pub struct Proof {
    pub sign_scopes: Option<Vec<String>>,
    pub sign_nonce: Option<String>,
    pub send_nonce: Option<Option<String>>,
    pub signed_at_offset_ms: i64,
    pub send_id: Option<String>,
    pub sign_garbage: bool,
    pub v2: bool,
}

/// Open a socket, read the challenge, send a device-signed connect built from `params`
/// (its `auth`, `scopes`, `client`, `role` are what gets signed). Returns the socket and `res`.
pub async fn device_connect(
    url: &str,
    kp: &DeviceKeypair,
    mut params: Value,
    proof: Proof,
) -> (RawWs, Value) {
    let mut ws = ws_connect(url).await;
    let challenge = recv(&mut ws, T).await.json();
    let nonce = challenge["payload"]["nonce"].as_str().unwrap().to_string();
    let ts = challenge["payload"]["ts"].as_u64().unwrap();
    let signed_at = (ts as i64 + proof.signed_at_offset_ms) as u64;
    let auth = &params["auth"];
    let token = auth["token"]
        .as_str()
        .or(auth["deviceToken"].as_str())
        .or(auth["bootstrapToken"].as_str())
        .unwrap_or("")
        .to_string();
    let scopes = proof
        .sign_scopes
        .clone()
        .unwrap_or_else(|| scopes_of(&params["scopes"]));
    let client = params["client"].clone();
    let role = params["role"].as_str().unwrap_or("operator").to_string();
    let sign_nonce = proof.sign_nonce.clone().unwrap_or_else(|| nonce.clone());
    let payload = if proof.sign_garbage {
        "not the payload".to_string()
    } else if proof.v2 {
        build_payload_v2(
            &kp.device_id(),
            client["id"].as_str().unwrap(),
            client["mode"].as_str().unwrap(),
            &role,
            &scopes,
            signed_at,
            &token,
            &sign_nonce,
        )
    } else {
        build_payload_v3(
            &kp.device_id(),
            client["id"].as_str().unwrap(),
            client["mode"].as_str().unwrap(),
            &role,
            &scopes,
            signed_at,
            &token,
            &sign_nonce,
            client["platform"].as_str(),
            client["deviceFamily"].as_str(),
        )
    };
    let mut device = json!({
        "id": proof.send_id.clone().unwrap_or_else(|| kp.device_id()),
        "publicKey": kp.public_key(),
        "signature": kp.sign(&payload),
        "signedAt": signed_at,
        "nonce": nonce,
    });
    match &proof.send_nonce {
        Some(Some(n)) => device["nonce"] = json!(n),
        Some(None) => {
            device.as_object_mut().unwrap().remove("nonce");
        }
        None => {}
    }
    params["device"] = device;
    send_json(
        &mut ws,
        &json!({"type":"req","id":"c1","method":"connect","params":params}),
    )
    .await;
    let (res, _) = recv_res(&mut ws, "c1", T).await;
    (ws, res)
}

fn golden_error_and_close(name: &str) -> (Value, Value) {
    let (_, rows) = load_golden(name);
    let res = rows
        .iter()
        .find(|r| r["dir"] == "s2c" && r["frame"]["type"] == "res")
        .unwrap()["frame"]["error"]
        .clone();
    let close = rows.iter().find(|r| r["dir"] == "closed").unwrap()["frame"].clone();
    (res, close)
}

async fn assert_rejected_like(name: &str, mut ws: RawWs, res: &Value) {
    let (error, close) = golden_error_and_close(name);
    assert_eq!(res["ok"], false, "{name}: {res}");
    assert_eq!(res["error"], error, "{name}");
    let (got, _) = recv_close(&mut ws, T).await;
    assert_eq!(
        got,
        Received::Close(
            close["code"].as_u64().unwrap() as u16,
            close["reason"].as_str().unwrap().to_string()
        ),
        "{name}"
    );
}

#[tokio::test]
async fn device_rejections_match_the_reference_captures() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let token = gw.token();
    let kp = DeviceKeypair::from_seed(&[11u8; 32]);
    let params = golden_connect_params(Some(&token));
    let cases: Vec<(&str, Proof)> = vec![
        (
            "connect_device_bad_signature.jsonl",
            Proof {
                sign_garbage: true,
                ..Default::default()
            },
        ),
        (
            "connect_device_id_mismatch.jsonl",
            Proof {
                send_id: Some("0".repeat(64)),
                ..Default::default()
            },
        ),
        (
            "connect_device_nonce_mismatch.jsonl",
            Proof {
                sign_nonce: Some("7ee31e11-5763-49e6-a28b-0260b6c2052e".into()),
                send_nonce: Some(Some("7ee31e11-5763-49e6-a28b-0260b6c2052e".into())),
                ..Default::default()
            },
        ),
        (
            "connect_device_nonce_missing.jsonl",
            Proof {
                send_nonce: Some(None),
                ..Default::default()
            },
        ),
        (
            "connect_device_stale_signedat.jsonl",
            Proof {
                signed_at_offset_ms: -600_000,
                ..Default::default()
            },
        ),
    ];
    for (name, proof) in cases {
        let (ws, res) = device_connect(&gw.url, &kp, params.clone(), proof).await;
        assert_rejected_like(name, ws, &res).await;
    }
    // Scopes sent [write, read] but signed in the other order.
    let mut reordered = params.clone();
    reordered["scopes"] = json!(["operator.write", "operator.read"]);
    let proof = Proof {
        sign_scopes: Some(vec!["operator.read".into(), "operator.write".into()]),
        ..Default::default()
    };
    let (ws, res) = device_connect(&gw.url, &kp, reordered, proof).await;
    assert_rejected_like("connect_device_scopes_reordered_in_payload.jsonl", ws, &res).await;

    // Wrong shared token with a valid device: the device-token retry hint is set.
    let started = Instant::now();
    let (ws, res) = device_connect(
        &gw.url,
        &kp,
        golden_connect_params(Some("definitely-wrong-token")),
        Proof::default(),
    )
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "wrong credentials are delayed"
    );
    assert_rejected_like("wrong_token_with_device.jsonl", ws, &res).await;
}

#[tokio::test]
async fn v3_v2_and_normalised_platform_pair_silently_with_a_device_token() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let token = gw.token();
    for (i, (v2, platform, family)) in [
        (false, "linux", None),
        (true, "linux", None),
        (false, "  LINUX ", Some("Desktop")),
    ]
    .into_iter()
    .enumerate()
    {
        let kp = DeviceKeypair::from_seed(&[30 + i as u8; 32]);
        let mut params = golden_connect_params(Some(&token));
        params["client"]["platform"] = json!(platform);
        if let Some(f) = family {
            params["client"]["deviceFamily"] = json!(f);
        }
        let (_ws, res) = device_connect(
            &gw.url,
            &kp,
            params.clone(),
            Proof {
                v2,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(res["ok"], true, "{res}");
        let auth = &res["payload"]["auth"];
        assert_eq!(auth["method"], "token");
        assert_eq!(auth["scopes"], params["scopes"]);
        let dt = auth["deviceToken"].as_str().unwrap();
        assert_eq!(dt.len(), 43, "32 random bytes, base64url");
        assert!(auth["issuedAtMs"].as_u64().is_some());
    }
    // The devices are listed, approved silently, tokens never shown.
    let (_ws, _, res) = handshake(&gw.url, golden_connect_params(Some(&token))).await;
    assert_eq!(res["ok"], true);
}

#[tokio::test]
async fn device_token_reuse_persists_across_restart_and_revocation_kicks_sockets() {
    let mut gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let token = gw.token();
    let kp = DeviceKeypair::from_seed(&[77u8; 32]);
    // 1. Shared token + device: silent local pairing, a device token is issued.
    let (ws, res) = device_connect(
        &gw.url,
        &kp,
        golden_connect_params(Some(&token)),
        Proof::default(),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
    let device_token = res["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_string();
    let issued = res["payload"]["auth"]["issuedAtMs"].clone();
    drop(ws);
    // 2. Reconnect with the device token alone (signed over it): accepted, echoed.
    let mut dt_params = golden_connect_params(None);
    dt_params["auth"] = json!({"deviceToken": device_token});
    let (ws, res) = device_connect(&gw.url, &kp, dt_params.clone(), Proof::default()).await;
    assert_eq!(res["ok"], true, "{res}");
    let (_, golden) = load_golden("connect_device_token_reuse.jsonl");
    let golden_second = golden
        .iter()
        .filter(|r| r["frame"]["type"] == "res" && r["frame"]["payload"]["type"] == "hello-ok")
        .nth(1)
        .unwrap();
    assert_eq!(
        res["payload"]["auth"]["method"],
        golden_second["frame"]["payload"]["auth"]["method"]
    );
    assert_eq!(res["payload"]["auth"]["deviceToken"], json!(device_token));
    assert_eq!(res["payload"]["auth"]["issuedAtMs"], issued);
    drop(ws);

    // 3. The gateway restarts; the device token still works.
    gw.sigterm();
    assert!(gw.wait_exit(Duration::from_secs(10)).is_some());
    let state = std::mem::replace(&mut gw.state_dir, tempfile::tempdir().unwrap());
    drop(gw);
    let gw = GatewayProcess::spawn_in(bin(), state, SpawnOptions::default());
    let (mut device_ws, res) =
        device_connect(&gw.url, &kp, dt_params.clone(), Proof::default()).await;
    assert_eq!(res["ok"], true, "after restart: {res}");
    assert_eq!(res["payload"]["auth"]["method"], "device-token");

    // 4. An operator lists and revokes it: the device's socket closes 4001 within 100 ms.
    let (mut op, _, res) = handshake(&gw.url, golden_connect_params(Some(&gw.token()))).await;
    assert_eq!(res["ok"], true);
    send_json(
        &mut op,
        &json!({"type":"req","id":"l","method":"device.pair.list","params":{}}),
    )
    .await;
    let (list, _) = recv_res(&mut op, "l", T).await;
    let paired = list["payload"]["paired"].as_array().unwrap();
    let me = paired
        .iter()
        .find(|d| d["deviceId"] == kp.device_id().as_str())
        .unwrap();
    assert_eq!(me["approvedVia"], "silent");
    assert_eq!(me["roles"], json!(["operator"]));
    assert_eq!(me["connected"], true);
    assert!(
        me["tokens"][0].get("token").is_none(),
        "tokens are never listed"
    );
    assert!(!list.to_string().contains(&device_token));
    send_json(
        &mut op,
        &json!({"type":"req","id":"rv","method":"device.token.revoke","params":{"deviceId": kp.device_id(), "role": "operator"}}),
    )
    .await;
    let (rv, _) = recv_res(&mut op, "rv", T).await;
    let answered = Instant::now();
    assert_eq!(rv["ok"], true, "{rv}");
    assert_eq!(rv["payload"]["role"], "operator");
    let (closed, _) = recv_close(&mut device_ws, T).await;
    let elapsed = answered.elapsed();
    assert_eq!(closed, Received::Close(4001, "device removed".into()));
    assert!(
        elapsed < Duration::from_millis(100),
        "closed after {elapsed:?}"
    );
    // 5. The revoked token no longer works.
    let (ws, res) = device_connect(&gw.url, &kp, dt_params, Proof::default()).await;
    assert_eq!(
        res["error"]["details"]["code"], "AUTH_DEVICE_TOKEN_MISMATCH",
        "{res}"
    );
    assert_eq!(res["error"]["details"]["canRetryWithDeviceToken"], false);
    drop(ws);
}

#[tokio::test]
async fn rotate_and_remove_close_sockets_and_the_old_token_stops_working() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let token = gw.token();
    let kp = DeviceKeypair::from_seed(&[78u8; 32]);
    let (_ws, res) = device_connect(
        &gw.url,
        &kp,
        golden_connect_params(Some(&token)),
        Proof::default(),
    )
    .await;
    let old = res["payload"]["auth"]["deviceToken"]
        .as_str()
        .unwrap()
        .to_string();
    let mut dt = golden_connect_params(None);
    dt["auth"] = json!({"deviceToken": old});
    let (mut dev, res) = device_connect(&gw.url, &kp, dt.clone(), Proof::default()).await;
    assert_eq!(res["ok"], true);
    // The device rotates its own token: the new one comes back in band, then its socket closes.
    send_json(&mut dev, &json!({"type":"req","id":"r","method":"device.token.rotate","params":{"deviceId": kp.device_id(), "role":"operator"}})).await;
    let (rot, _) = recv_res(&mut dev, "r", T).await;
    assert_eq!(rot["payload"]["tokenDelivery"], "in-band", "{rot}");
    let new = rot["payload"]["token"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    assert_eq!(
        recv_close(&mut dev, T).await.0,
        Received::Close(4001, "device removed".into())
    );
    let (_ws, res) = device_connect(&gw.url, &kp, dt, Proof::default()).await;
    assert_eq!(
        res["error"]["details"]["code"],
        "AUTH_DEVICE_TOKEN_MISMATCH"
    );
    let mut dt_new = golden_connect_params(None);
    dt_new["auth"] = json!({"deviceToken": new});
    let (mut dev, res) = device_connect(&gw.url, &kp, dt_new.clone(), Proof::default()).await;
    assert_eq!(res["ok"], true, "{res}");
    // An operator removes the device: socket closed, token gone, the device must pair again.
    let (mut op, _, _) = handshake(&gw.url, golden_connect_params(Some(&token))).await;
    send_json(&mut op, &json!({"type":"req","id":"rm","method":"device.pair.remove","params":{"deviceId": kp.device_id()}})).await;
    let (rm, _) = recv_res(&mut op, "rm", T).await;
    assert_eq!(rm["payload"]["deviceId"], json!(kp.device_id()));
    assert_eq!(
        recv_close(&mut dev, T).await.0,
        Received::Close(4001, "device removed".into())
    );
    let (_ws, res) = device_connect(&gw.url, &kp, dt_new, Proof::default()).await;
    assert_eq!(
        res["error"]["details"]["code"],
        "AUTH_DEVICE_TOKEN_MISMATCH"
    );
    // Unknown ids are refused with the reference's texts.
    send_json(
        &mut op,
        &json!({"type":"req","id":"x","method":"device.pair.remove","params":{"deviceId": "nope"}}),
    )
    .await;
    assert_eq!(
        recv_res(&mut op, "x", T).await.0["error"]["message"],
        "unknown deviceId"
    );
    send_json(&mut op, &json!({"type":"req","id":"y","method":"device.pair.approve","params":{"requestId": "nope"}})).await;
    assert_eq!(
        recv_res(&mut op, "y", T).await.0["error"]["message"],
        "unknown requestId"
    );
}

#[tokio::test]
async fn changing_the_gateway_token_closes_shared_auth_sessions_only() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let token = gw.token();
    let kp = DeviceKeypair::from_seed(&[79u8; 32]);
    let (_w, res) = device_connect(
        &gw.url,
        &kp,
        golden_connect_params(Some(&token)),
        Proof::default(),
    )
    .await;
    let mut dt = golden_connect_params(None);
    dt["auth"] = json!({"deviceToken": res["payload"]["auth"]["deviceToken"]});
    let (mut device_ws, res) = device_connect(&gw.url, &kp, dt, Proof::default()).await;
    assert_eq!(res["ok"], true);
    let (mut shared_ws, _, _) = handshake(&gw.url, golden_connect_params(Some(&token))).await;
    // New token in the file, SIGHUP: the shared-auth session goes, the device-token one stays.
    std::fs::write(gw.state_path().join("gateway.token"), "a-brand-new-token\n").unwrap();
    send_signal(gw.pid(), "HUP");
    assert_eq!(
        recv_close(&mut shared_ws, T).await.0,
        Received::Close(4001, "gateway auth changed".into())
    );
    send_json(
        &mut device_ws,
        &json!({"type":"req","id":"h","method":"health"}),
    )
    .await;
    assert_eq!(recv_res(&mut device_ws, "h", T).await.0["ok"], true);
    let (_ws, _, res) = handshake(&gw.url, golden_connect_params(Some(&token))).await;
    assert_eq!(res["error"]["details"]["code"], "AUTH_TOKEN_MISMATCH");
    let (_ws, _, res) = handshake(&gw.url, golden_connect_params(Some("a-brand-new-token"))).await;
    assert_eq!(res["ok"], true);
}

#[tokio::test]
async fn local_pairing_can_be_turned_off_and_is_then_approved_by_an_operator() {
    let gw = GatewayProcess::spawn(
        bin(),
        SpawnOptions::default().arg("--no-auto-approve-local"),
    );
    let token = gw.token();
    let (mut op, _, _) = handshake(&gw.url, golden_connect_params(Some(&token))).await;
    let kp = DeviceKeypair::from_seed(&[80u8; 32]);
    let mut params = golden_connect_params(Some(&token));
    params["scopes"] = json!(["operator.read"]);
    let (mut ws, res) = device_connect(&gw.url, &kp, params.clone(), Proof::default()).await;
    assert_eq!(res["error"]["code"], "NOT_PAIRED", "{res}");
    let d = &res["error"]["details"];
    assert_eq!(d["code"], "PAIRING_REQUIRED");
    assert_eq!(d["reason"], "not-paired");
    let request_id = d["requestId"].as_str().unwrap().to_string();
    assert_eq!(
        recv_close(&mut ws, T).await.0,
        Received::Close(
            1008,
            format!("pairing required: device is not approved yet (requestId: {request_id})")
        )
    );
    // The operator saw device.pair.requested.
    let mut requested = None;
    for _ in 0..5 {
        match recv(&mut op, T).await {
            Received::Json(v) if v["event"] == "device.pair.requested" => {
                requested = Some(v);
                break;
            }
            Received::Json(_) => continue,
            other => panic!("{other:?}"),
        }
    }
    let requested = requested.expect("device.pair.requested");
    assert_eq!(requested["payload"]["requestId"], json!(request_id));
    assert_eq!(requested["payload"]["scopes"], json!(["operator.read"]));
    // Approve via the CLI (by device id); the device then connects.
    let out = std::process::Command::new(bin())
        .args([
            "devices",
            "approve",
            &kp.device_id(),
            "--url",
            &gw.url,
            &format!("--token={token}"),
        ])
        .env("PINCER_STATE_DIR", gw.state_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_ws, res) = device_connect(&gw.url, &kp, params.clone(), Proof::default()).await;
    assert_eq!(res["ok"], true, "{res}");
    assert!(res["payload"]["auth"]["deviceToken"].is_string());
    // Asking for more than approved is a scope upgrade (not silent here).
    params["scopes"] = json!(["operator.read", "operator.write"]);
    let (_ws, res) = device_connect(&gw.url, &kp, params.clone(), Proof::default()).await;
    assert_eq!(res["error"]["details"]["reason"], "scope-upgrade", "{res}");
    assert_eq!(
        res["error"]["details"]["approvedScopes"],
        json!(["operator.read"])
    );
    // A node connect from a device paired as operator is a role upgrade.
    let mut node = json!({
        "minProtocol": 3, "maxProtocol": 4,
        "client": {"id": "node-host", "version": "1", "platform": "linux", "mode": "node"},
        "role": "node", "scopes": [], "caps": [], "auth": {"token": token},
    });
    let (_ws, res) = device_connect(&gw.url, &kp, node.clone(), Proof::default()).await;
    assert_eq!(res["error"]["details"]["reason"], "role-upgrade", "{res}");
    // Reject it via the CLI.
    let out = std::process::Command::new(bin())
        .args([
            "devices",
            "reject",
            &kp.device_id(),
            "--url",
            &gw.url,
            &format!("--token={token}"),
        ])
        .env("PINCER_STATE_DIR", gw.state_path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    node["scopes"] = json!([]);
}
