//! Device proofs in replayed captures. A captured `connect.params.device` was signed against
//! the reference's challenge with a throwaway key, so it can never be replayed literally. We
//! re-verify it against the *captured* challenge (with the capture session's token) to learn
//! what the scenario meant — a valid v3 proof, a legacy v2 one, a stale `signedAt`, a nonce from
//! elsewhere, scopes signed in another order, a signature over the wrong payload, … — and then
//! produce a fresh proof with the same defect against the live challenge.
//!
//! The checks run in the server's order (id ↔ key, skew, nonce present, nonce equal, signature),
//! so the first defect found is the one the reference reported.

use pincer_protocol::device_auth::{
    build_payload_v2, build_payload_v3, decode_public_key, device_id_from_public_key,
    verify_signature, DeviceKeypair,
};
use pincer_protocol::limits::DEVICE_SIGNATURE_SKEW_MS;
use serde_json::{json, Value};

use crate::golden::{DEVICE_TOKEN_PLACEHOLDER, GATEWAY_TOKEN_PLACEHOLDER};

/// What a captured device proof was meant to exercise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceIntent {
    /// A correct v3 proof.
    ValidV3,
    /// A correct legacy v2 proof.
    ValidV2,
    /// Signed with the scopes in another order than sent (`signed_order` = what was signed).
    ScopesReordered { signed_order: Vec<String> },
    /// A signature over some other payload.
    BadSignature,
    /// `device.id` is not the hash of `device.publicKey`.
    IdMismatch,
    /// `signedAt` outside the allowed skew; `offset_ms` = signedAt − challenge ts.
    Stale { offset_ms: i64 },
    /// A nonce other than the challenge's.
    NonceMismatch,
    /// `device.nonce` omitted.
    NonceMissing,
    /// Signed over a credential the capture redacted and we cannot know (a reference-issued
    /// device token): assumed valid.
    AssumedValid,
}

fn str_list(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// `auth.token ?? auth.deviceToken ?? auth.bootstrapToken ?? ""` (the signed token).
pub fn signature_token(params: &Value) -> String {
    let auth = &params["auth"];
    ["token", "deviceToken", "bootstrapToken"]
        .iter()
        .find_map(|k| auth[*k].as_str())
        .unwrap_or("")
        .to_string()
}

/// Fields of a connect that go into the signed payload.
struct Signed<'a> {
    client_id: &'a str,
    client_mode: &'a str,
    role: &'a str,
    platform: Option<&'a str>,
    device_family: Option<&'a str>,
}

fn signed_fields(params: &Value) -> Signed<'_> {
    Signed {
        client_id: params["client"]["id"].as_str().unwrap_or(""),
        client_mode: params["client"]["mode"].as_str().unwrap_or(""),
        role: params["role"].as_str().unwrap_or("operator"),
        platform: params["client"]["platform"].as_str(),
        device_family: params["client"]["deviceFamily"].as_str(),
    }
}

#[allow(clippy::too_many_arguments)]
fn payload(
    v2: bool,
    id: &str,
    s: &Signed<'_>,
    scopes: &[String],
    signed_at: u64,
    token: &str,
    nonce: &str,
) -> String {
    if v2 {
        build_payload_v2(
            id,
            s.client_id,
            s.client_mode,
            s.role,
            scopes,
            signed_at,
            token,
            nonce,
        )
    } else {
        build_payload_v3(
            id,
            s.client_id,
            s.client_mode,
            s.role,
            scopes,
            signed_at,
            token,
            nonce,
            s.platform,
            s.device_family,
        )
    }
}

/// Classify the captured proof in `params.device` against the captured `challenge`.
/// `capture_token` is what `<GATEWAY_TOKEN>` stood for. `None` when there is no device.
pub fn classify(params: &Value, challenge: &Value, capture_token: &str) -> Option<DeviceIntent> {
    let device = params.get("device")?;
    let id = device["id"].as_str().unwrap_or("");
    let key = decode_public_key(device["publicKey"].as_str().unwrap_or(""));
    if key.as_ref().map(device_id_from_public_key).as_deref() != Some(id) {
        return Some(DeviceIntent::IdMismatch);
    }
    let signed_at = device["signedAt"].as_u64().unwrap_or(0);
    let challenge_ts = challenge["ts"].as_u64().unwrap_or(0);
    if signed_at.abs_diff(challenge_ts) > DEVICE_SIGNATURE_SKEW_MS {
        return Some(DeviceIntent::Stale {
            offset_ms: signed_at as i64 - challenge_ts as i64,
        });
    }
    let Some(nonce) = device["nonce"].as_str() else {
        return Some(DeviceIntent::NonceMissing);
    };
    if nonce != challenge["nonce"].as_str().unwrap_or("") {
        return Some(DeviceIntent::NonceMismatch);
    }
    let raw_token = signature_token(params);
    if raw_token.contains(DEVICE_TOKEN_PLACEHOLDER) {
        return Some(DeviceIntent::AssumedValid);
    }
    let token = raw_token.replace(GATEWAY_TOKEN_PLACEHOLDER, capture_token);
    let key = key?;
    let signature = device["signature"].as_str().unwrap_or("");
    let s = signed_fields(params);
    let sent = str_list(&params["scopes"]);
    let verifies = |v2: bool, scopes: &[String]| {
        verify_signature(
            &key,
            &payload(v2, id, &s, scopes, signed_at, &token, nonce),
            signature,
        )
    };
    if verifies(false, &sent) {
        return Some(DeviceIntent::ValidV3);
    }
    if verifies(true, &sent) {
        return Some(DeviceIntent::ValidV2);
    }
    let mut reversed = sent.clone();
    reversed.reverse();
    let mut sorted = sent.clone();
    sorted.sort();
    for order in [reversed, sorted] {
        if order != sent && verifies(false, &order) {
            return Some(DeviceIntent::ScopesReordered {
                signed_order: order,
            });
        }
    }
    Some(DeviceIntent::BadSignature)
}

/// A fresh random key pair (a new device per replayed connection, as a real client would be).
pub fn fresh_keypair() -> DeviceKeypair {
    let mut seed = [0u8; 32];
    seed[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    seed[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    DeviceKeypair::from_seed(&seed)
}

/// Replace `params.device` with a proof by `kp` against the live `challenge` that has the
/// defect `intent` describes. `params` must already carry the live credentials.
pub fn resign(params: &mut Value, intent: &DeviceIntent, challenge: &Value, kp: &DeviceKeypair) {
    let live_nonce = challenge["nonce"].as_str().unwrap_or("").to_string();
    let live_ts = challenge["ts"].as_u64().unwrap_or(0);
    let token = signature_token(params);
    let scopes = str_list(&params["scopes"]);
    let mut id = kp.device_id();
    let mut signed_at = live_ts;
    let mut nonce = live_nonce;
    let mut signed_scopes = scopes.clone();
    let mut v2 = false;
    let mut tamper = false;
    match intent {
        DeviceIntent::ValidV3 | DeviceIntent::AssumedValid | DeviceIntent::NonceMissing => {}
        DeviceIntent::ValidV2 => v2 = true,
        DeviceIntent::ScopesReordered { signed_order } => signed_scopes = signed_order.clone(),
        DeviceIntent::BadSignature => tamper = true,
        DeviceIntent::IdMismatch => id = fresh_keypair().device_id(),
        DeviceIntent::Stale { offset_ms } => {
            signed_at = (live_ts as i64 + offset_ms).max(0) as u64;
        }
        DeviceIntent::NonceMismatch => nonce = uuid::Uuid::new_v4().to_string(),
    }
    let s = signed_fields(params);
    let mut text = payload(v2, &id, &s, &signed_scopes, signed_at, &token, &nonce);
    if tamper {
        text.push_str("|tampered");
    }
    let mut device = json!({
        "id": id,
        "publicKey": kp.public_key(),
        "signature": kp.sign(&text),
        "signedAt": signed_at,
        "nonce": nonce,
    });
    if *intent == DeviceIntent::NonceMissing {
        if let Some(o) = device.as_object_mut() {
            o.remove("nonce");
        }
    }
    params["device"] = device;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::golden::{capture_token, Dir, Golden};
    use pincer_protocol::connect::DeviceProofParams;
    use pincer_protocol::device_auth::{verify_device_proof, DeviceProofContext};

    fn captured(name: &str, conn: &str) -> (Value, Value) {
        let g = Golden::load(name);
        let params = g
            .rows
            .iter()
            .find_map(|r| {
                let f = r.frame.as_ref()?;
                (r.conn == conn && r.dir == Dir::C2s && f["method"] == "connect")
                    .then(|| f["params"].clone())
            })
            .unwrap();
        (params, g.challenge_for(conn).unwrap().clone())
    }

    #[test]
    fn captured_proofs_are_classified_by_their_defect() {
        let token = capture_token();
        let cases = [
            ("connect_device_v3.jsonl", DeviceIntent::ValidV3),
            ("connect_device_v2_legacy.jsonl", DeviceIntent::ValidV2),
            (
                "connect_device_v3_platform_normalized.jsonl",
                DeviceIntent::ValidV3,
            ),
            (
                "connect_device_bad_signature.jsonl",
                DeviceIntent::BadSignature,
            ),
            ("connect_device_id_mismatch.jsonl", DeviceIntent::IdMismatch),
            (
                "connect_device_stale_signedat.jsonl",
                DeviceIntent::Stale {
                    offset_ms: -600_000,
                },
            ),
            (
                "connect_device_nonce_mismatch.jsonl",
                DeviceIntent::NonceMismatch,
            ),
            (
                "connect_device_nonce_missing.jsonl",
                DeviceIntent::NonceMissing,
            ),
            (
                "connect_device_scopes_reordered_in_payload.jsonl",
                DeviceIntent::ScopesReordered {
                    signed_order: vec!["operator.read".into(), "operator.write".into()],
                },
            ),
            ("health.jsonl", DeviceIntent::ValidV3),
            ("wrong_token_with_device.jsonl", DeviceIntent::ValidV3),
        ];
        for (name, want) in cases {
            let (params, challenge) = captured(name, "op");
            assert_eq!(classify(&params, &challenge, &token), Some(want), "{name}");
        }
        let (params, challenge) = captured("connect_device_token_reuse.jsonl", "op2");
        assert_eq!(
            classify(&params, &challenge, &token),
            Some(DeviceIntent::AssumedValid)
        );
        let (params, challenge) = captured("connect_token_no_device.jsonl", "op");
        assert_eq!(classify(&params, &challenge, &token), None);
    }

    /// Re-signed proofs fail the server's own verifier for exactly the captured reason.
    #[test]
    fn resigned_proofs_reproduce_the_defect() {
        let live = json!({"nonce": "live-nonce", "ts": 1_000_000_000u64});
        let token = capture_token();
        for name in [
            "connect_device_v3.jsonl",
            "connect_device_v2_legacy.jsonl",
            "connect_device_v3_platform_normalized.jsonl",
            "connect_device_bad_signature.jsonl",
            "connect_device_id_mismatch.jsonl",
            "connect_device_stale_signedat.jsonl",
            "connect_device_nonce_mismatch.jsonl",
            "connect_device_scopes_reordered_in_payload.jsonl",
        ] {
            let (mut params, challenge) = captured(name, "op");
            let intent = classify(&params, &challenge, &token).unwrap();
            params["auth"]["token"] = json!("live-token");
            resign(&mut params, &intent, &live, &fresh_keypair());
            let device: DeviceProofParams =
                serde_json::from_value(params["device"].clone()).unwrap();
            let scopes = str_list(&params["scopes"]);
            let ctx = DeviceProofContext {
                client_id: params["client"]["id"].as_str().unwrap(),
                client_mode: params["client"]["mode"].as_str().unwrap(),
                role: "operator",
                scopes: &scopes,
                token: "live-token",
                platform: params["client"]["platform"].as_str(),
                device_family: params["client"]["deviceFamily"].as_str(),
                challenge_nonce: "live-nonce",
                now_ms: 1_000_000_000,
            };
            let verdict = verify_device_proof(&device, &ctx);
            let expected = Golden::load(name).meta["result"].clone();
            match verdict {
                Ok(_) => assert_eq!(expected["ok"], true, "{name}: accepted"),
                Err(e) => assert_eq!(
                    expected["error"]["details"]["code"],
                    e.detail_code().as_str(),
                    "{name}"
                ),
            }
            // Re-classifying the fresh proof against the live challenge finds the same intent.
            let again = classify(&params, &live, "live-token").unwrap();
            assert_eq!(again, intent, "{name}");
        }
    }
}
