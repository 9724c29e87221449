//! HTTP hooks through the real gateway: `POST /hooks/wake` and `/hooks/agent` with the hooks
//! token, wrong tokens (401, then 429 after 20 failures, loopback included), oversized (413)
//! and malformed (400) bodies, methods (405), a redelivery with the same idempotency key that
//! runs once, and hooks switched off.

use std::time::{Duration, Instant};

use pincer_fakes::llm::{DefaultReply, FakeLlm, FakeLlmOptions};
use pincer_testkit::http::{http_request, http_request_body, HttpResponse};
use serde_json::{json, Value};

use crate::agent::{op, provider_config, rpc, start_with, until, Gw};

const T: Duration = Duration::from_secs(20);
const HOOK_TOKEN: &str = "hook-secret-token";

async fn gateway(hooks: Value) -> Gw {
    let fake = FakeLlm::start_with(FakeLlmOptions {
        default_reply: Some(DefaultReply::Echo {
            chunk_delay: Duration::ZERO,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut config = provider_config(&fake, json!({}));
    config["agents"] = json!({"defaults": {"model": {"primary": "mock/mock-model"}, "heartbeat": {"every": "1h"}}});
    if !hooks.is_null() {
        config["hooks"] = hooks;
    }
    start_with(config, &[], fake).await
}

fn addr(gw: &Gw) -> std::net::SocketAddr {
    format!("127.0.0.1:{}", gw.gw.port).parse().unwrap()
}

async fn hook(gw: &Gw, path: &str, headers: &[(&str, &str)], body: &[u8]) -> HttpResponse {
    let mut h = vec![("Content-Type", "application/json")];
    h.extend_from_slice(headers);
    http_request_body(addr(gw), "POST", path, &h, Some(body), T)
        .await
        .unwrap()
}

fn bearer() -> String {
    format!("Bearer {HOOK_TOKEN}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wake_and_agent_hooks_queue_wake_and_run() {
    let gw = gateway(json!({"enabled": true, "token": HOOK_TOKEN})).await;
    let mut ws = op(&gw, &[]).await;
    let b = bearer();
    // /wake: queued, then the same text again is coalesced; mode now runs the heartbeat.
    let r = hook(
        &gw,
        "/hooks/wake",
        &[("Authorization", &b)],
        br#"{"text":"Deploy finished","mode":"now"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(
        r.json(),
        json!({"ok": true, "mode": "now", "eventOutcome": "queued"})
    );
    let frames = until(&mut ws, |v| v["event"] == "heartbeat").await;
    assert_eq!(frames.last().unwrap()["payload"]["status"], "sent");
    let prompt = gw.fake.model_requests().pop().unwrap().body["messages"].to_string();
    assert!(prompt.contains("- Deploy finished"), "{prompt}");
    let r = hook(
        &gw,
        "/hooks/wake",
        &[("x-openclaw-token", HOOK_TOKEN)],
        br#"{"text":"Same again","mode":"next-heartbeat"}"#,
    )
    .await;
    assert_eq!(r.json()["eventOutcome"], "queued");
    let r = hook(
        &gw,
        "/hooks/wake",
        &[("x-openclaw-token", HOOK_TOKEN)],
        br#"{"text":"Same again","mode":"next-heartbeat"}"#,
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"ok": true, "mode": "next-heartbeat", "eventOutcome": "coalesced"})
    );

    // /agent: admitted, answered with the run id; the run happens in a hook session with the
    // external content marked as untrusted.
    let calls = gw.fake.model_requests().len();
    let r = hook(
        &gw,
        "/hooks/agent",
        &[("Authorization", &b)],
        br#"{"message":"Summarise the incident","name":"PagerDuty","wakeMode":"next-heartbeat"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    let run_id = r.json()["runId"].as_str().unwrap().to_string();
    assert!(run_id.starts_with("hook-"));
    let deadline = Instant::now() + T;
    while gw.fake.model_requests().len() == calls {
        assert!(
            Instant::now() < deadline,
            "the hook run never reached the model"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let body = gw.fake.model_requests().pop().unwrap().body["messages"].to_string();
    assert!(body.contains("Summarise the incident"), "{body}");
    assert!(body.contains("untrusted data"), "{body}");
    let (list, _) = rpc(&mut ws, "l", "sessions.list", json!({"limit": 50})).await;
    assert!(
        list["payload"]["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["key"].as_str().unwrap().starts_with("agent:main:hook:")),
        "{list}"
    );
    // waitForCompletion answers after the run, with its result.
    let r = hook(
        &gw,
        "/hooks/agent",
        &[("Authorization", &b)],
        br#"{"message":"ping","waitForCompletion":true,"deliver":false}"#,
    )
    .await;
    let v = r.json();
    assert_eq!(v["completion"]["status"], "ok", "{v}");
    assert_eq!(v["completion"]["replyDisposition"], "visible");
    assert!(
        v["completion"]["text"].as_str().unwrap().contains("ping"),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_get_401_then_429_after_twenty_failures() {
    let gw = gateway(json!({"enabled": true, "token": HOOK_TOKEN})).await;
    let body = br#"{"text":"x"}"#;
    // Missing, wrong, and query-string tokens.
    let r = hook(&gw, "/hooks/wake", &[], body).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json(), json!({"ok": false, "error": "Unauthorized"}));
    let r = hook(&gw, &format!("/hooks/wake?token={HOOK_TOKEN}"), &[], body).await;
    assert_eq!(r.status, 400);
    // 401 #2 … #20 (the missing token above counted too).
    for i in 2..=20 {
        let r = hook(
            &gw,
            "/hooks/wake",
            &[("Authorization", "Bearer wrong")],
            body,
        )
        .await;
        assert_eq!(r.status, 401, "attempt {i}");
    }
    // Locked out, even with the right token, with Retry-After.
    let b = bearer();
    let r = hook(&gw, "/hooks/wake", &[("Authorization", &b)], body).await;
    assert_eq!(r.status, 429, "{}", r.body_text());
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The gateway's other auth is unaffected (its own scope), and it stays up.
    let mut ws = op(&gw, &[]).await;
    let (h, _) = rpc(&mut ws, "h", "health", json!({})).await;
    assert_eq!(h["ok"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_malformed_and_misdirected_requests_get_clear_errors() {
    let gw = gateway(json!({"enabled": true, "token": HOOK_TOKEN})).await;
    let b = bearer();
    let auth = [("Authorization", b.as_str())];
    // > 256 KiB.
    let mut big = br#"{"text":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 300 * 1024));
    big.extend_from_slice(br#""}"#);
    let r = hook(&gw, "/hooks/wake", &auth, &big).await;
    assert_eq!(r.status, 413, "{}", r.body_text());
    // Not JSON / not an object / missing fields / unknown fields.
    for (body, needle) in [
        (&b"{not json"[..], "invalid JSON"),
        (&b"[1,2]"[..], "must be an object"),
        (&br#"{"mode":"now"}"#[..], "text"),
        (&br#"{"text":"x","colour":"red"}"#[..], "colour"),
    ] {
        let r = hook(&gw, "/hooks/wake", &auth, body).await;
        assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(body));
        let v = r.json();
        assert_eq!(v["ok"], false);
        assert!(v["error"].as_str().unwrap().contains(needle), "{v}");
    }
    let r = hook(&gw, "/hooks/agent", &auth, br#"{"message":""}"#).await;
    assert_eq!(r.status, 400);
    // Methods and paths.
    let r = http_request(addr(&gw), "GET", "/hooks/wake", &auth, T)
        .await
        .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = hook(&gw, "/hooks/no-such-mapping", &auth, b"{}").await;
    assert_eq!(r.status, 404, "{}", r.body_text());
    // Still serving.
    let r = hook(
        &gw,
        "/hooks/wake",
        &auth,
        br#"{"text":"still here","mode":"next-heartbeat"}"#,
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_with_the_same_idempotency_key_runs_once() {
    let gw = gateway(json!({"enabled": true, "token": HOOK_TOKEN})).await;
    let b = bearer();
    let body = br#"{"message":"Order 1234 shipped","deliver":false}"#;
    let first = hook(
        &gw,
        "/hooks/agent",
        &[("Authorization", &b), ("Idempotency-Key", "evt-1")],
        body,
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.body_text());
    let run = first.json()["runId"].clone();
    let again = hook(
        &gw,
        "/hooks/agent",
        &[("Authorization", &b), ("Idempotency-Key", "evt-1")],
        body,
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.json()["runId"], run, "same run id for the redelivery");
    // The same key in the body counts too.
    let in_body = br#"{"message":"Order 1234 shipped","deliver":false,"idempotencyKey":"evt-1"}"#;
    let third = hook(&gw, "/hooks/agent", &[("Authorization", &b)], in_body).await;
    assert_eq!(third.json()["runId"], run);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runs = gw
        .fake
        .model_requests()
        .iter()
        .filter(|r| {
            r.body["messages"]
                .to_string()
                .contains("Order 1234 shipped")
        })
        .count();
    assert_eq!(runs, 1, "ran once");
    // Another key is another delivery.
    let other = hook(
        &gw,
        "/hooks/agent",
        &[("Authorization", &b), ("Idempotency-Key", "evt-2")],
        body,
    )
    .await;
    assert_ne!(other.json()["runId"], run);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_are_off_by_default() {
    let gw = gateway(Value::Null).await;
    let b = bearer();
    let r = hook(
        &gw,
        "/hooks/wake",
        &[("Authorization", &b)],
        br#"{"text":"x"}"#,
    )
    .await;
    assert_ne!(r.status, 200, "{}", r.body_text());
    assert_ne!(r.status, 401, "not a hooks endpoint at all");
}
