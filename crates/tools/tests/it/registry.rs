use std::sync::Arc;

use pincer_tools::policy::EffectiveTools;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::common::{err_text, error_kind, ok_text, wait_gone, Env};

#[tokio::test]
async fn invalid_arguments_are_a_readable_tool_error() {
    let env = Env::new();
    let ctx = env.ctx().build();
    let out = env.call(&ctx, "read", json!({"offset": 2})).await;
    assert!(
        err_text(&out).contains("Invalid arguments for read: missing required property \"path\"")
    );
    assert_eq!(error_kind(&out), "invalid_args");
    let out = env
        .call(&ctx, "edit", json!({"path": "a", "edits": "nope"}))
        .await;
    assert!(err_text(&out).contains("edits: must be an array"));
    let out = env.call(&ctx, "exec", json!("ls")).await;
    assert!(err_text(&out).contains("must be an object"));
}

#[tokio::test]
async fn unknown_and_disallowed_tools() {
    let env = Env::new();
    let ctx = env.ctx().build();
    let out = env.call(&ctx, "frobnicate", json!({})).await;
    assert_eq!(error_kind(&out), "unknown_tool");
    let policy = Arc::new(EffectiveTools::all(["read"]));
    let ctx = env.ctx().policy(policy).build();
    let out = env
        .call(&ctx, "write", json!({"path": "x", "content": "y"}))
        .await;
    assert_eq!(error_kind(&out), "not_allowed");
    assert!(!env.ws_path().join("x").exists());
    // Specs offered to the model follow the policy.
    let names: Vec<&str> = env
        .registry
        .specs_for(&ctx)
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, vec!["read"]);
}

#[tokio::test]
async fn bash_alias_runs_exec() {
    let env = Env::new();
    let ctx = env.ctx().build();
    let out = env.call(&ctx, "bash", json!({"command": "echo hi"})).await;
    assert_eq!(ok_text(&out).trim(), "hi");
}

#[tokio::test]
async fn cancellation_stops_a_running_tool() {
    let env = Env::new();
    let token = CancellationToken::new();
    let ctx = env.ctx().cancel(token.clone()).build();
    let started = std::time::Instant::now();
    let canceller = tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        token.cancel();
    });
    let marker = format!("pincer-cancel-{}", std::process::id());
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": format!("exec -a {marker} sleep 30"), "yieldMs": 60000}),
        )
        .await;
    canceller.await.unwrap();
    assert_eq!(error_kind(&out), "cancelled");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // The command did not outlive the cancelled call.
    assert_eq!(
        wait_gone(&marker).await,
        0,
        "cancelled command still running"
    );
}
