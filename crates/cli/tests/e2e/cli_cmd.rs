use std::process::{Command, Output};

use pincer_testkit::*;
use serde_json::Value;

use crate::bin;

fn pincer(gw: &GatewayProcess, args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .env("PINCER_STATE_DIR", gw.state_path())
        .env_remove("PINCER_GATEWAY_URL")
        .env_remove("OPENCLAW_GATEWAY_URL")
        .env_remove("PINCER_GATEWAY_TOKEN")
        .env_remove("OPENCLAW_GATEWAY_TOKEN")
        .output()
        .expect("run pincer")
}

#[test]
fn gateway_call_prints_payload_and_exit_codes() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    // URL and token are found through the state dir (gateway.json, gateway.token).
    let out = pincer(&gw, &["gateway", "call", "health", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let payload: Value = serde_json::from_slice(&out.stdout).expect("raw JSON payload");
    assert_eq!(payload["ok"], true);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "--json prints one line"
    );

    let out = pincer(&gw, &["gateway", "call", "system-presence"]);
    assert!(out.status.success());
    let pretty = String::from_utf8_lossy(&out.stdout);
    assert!(pretty.lines().count() > 3, "pretty by default: {pretty}");
    let list: Value = serde_json::from_str(&pretty).unwrap();
    assert_eq!(list[0]["mode"], "gateway");

    let out = pincer(
        &gw,
        &[
            "gateway",
            "call",
            "logs.tail",
            "--params",
            r#"{"limit":5}"#,
            "--json",
        ],
    );
    assert!(out.status.success());
    let tail: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(tail["file"].as_str().unwrap().ends_with("logs/pincer.log"));
    assert!(tail["lines"].as_array().is_some_and(|l| !l.is_empty()));

    let out = pincer(&gw, &["gateway", "call", "no.such.method"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("INVALID_REQUEST unknown method: no.such.method"));

    let out = pincer(&gw, &["gateway", "call", "health", "--token", "wrong"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("INVALID_REQUEST unauthorized: gateway token mismatch"),
        "{stderr}"
    );

    let out = pincer(&gw, &["gateway", "call", "health", "--params", "{not json"]);
    assert!(!out.status.success());

    let out = pincer(&gw, &["health"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Gateway health: ok"));
    let out = pincer(&gw, &["status"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("Pincer gateway"));

    let out = Command::new(bin()).arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pincer "));
}

#[test]
fn unreachable_gateway_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args([
            "gateway",
            "call",
            "health",
            "--url",
            "ws://127.0.0.1:9",
            "--timeout",
            "2000",
        ])
        .env("PINCER_STATE_DIR", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the gateway"));
}
