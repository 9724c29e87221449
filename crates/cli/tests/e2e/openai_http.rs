//! The OpenAI-compatible HTTP API and `/tools/invoke` through the real gateway: off by
//! default (404), bearer auth (401), bad input (400/405/413), the official `openai` Python
//! package streaming and not (crates/cli/tests/e2e/openai_sdk.py, installed by
//! scripts/test.sh into target/openai-venv), a client that disconnects mid-stream cancels the
//! run, and `/tools/invoke` with allowed, denied and unknown tools.

use std::path::PathBuf;
use std::time::Duration;

use pincer_fakes::llm::{FakeLlm, Reply};
use pincer_testkit::http::{http_request, http_request_body, HttpResponse};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::agent::{provider_config, rpc, start_with, Gw, TOKEN};

const T: Duration = Duration::from_secs(20);

async fn gateway(endpoints: bool, extra: Value) -> Gw {
    let fake = FakeLlm::start().await.unwrap();
    let mut config = provider_config(&fake, json!({}));
    config["agents"] = json!({"defaults": {"model": {"primary": "mock/mock-model"}}});
    if endpoints {
        config["gateway"] = json!({"http": {"endpoints": {"chatCompletions": {"enabled": true}, "responses": {"enabled": true}}}});
    }
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    start_with(config, &[], fake).await
}

fn addr(gw: &Gw) -> std::net::SocketAddr {
    format!("127.0.0.1:{}", gw.gw.port).parse().unwrap()
}

async fn post(gw: &Gw, path: &str, token: Option<&str>, body: &Value) -> HttpResponse {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b.as_str()));
    }
    let bytes = serde_json::to_vec(body).unwrap();
    http_request_body(addr(gw), "POST", path, &headers, Some(&bytes), T)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_are_off_by_default_and_need_auth_when_on() {
    let gw = gateway(false, json!({})).await;
    let chat = json!({"model": "openclaw", "messages": [{"role": "user", "content": "hi"}]});
    for path in ["/v1/chat/completions", "/v1/responses"] {
        let r = post(&gw, path, Some(TOKEN), &chat).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body_text());
    }
    let r = http_request(
        addr(&gw),
        "GET",
        "/v1/models",
        &[("Authorization", &format!("Bearer {TOKEN}"))],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 404);
    drop(gw);

    let gw = gateway(true, json!({})).await;
    let r = post(&gw, "/v1/chat/completions", None, &chat).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"]["type"], "unauthorized");
    let r = post(&gw, "/v1/chat/completions", Some("not-the-token"), &chat).await;
    assert_eq!(r.status, 401);
    let r = post(
        &gw,
        "/v1/responses",
        None,
        &json!({"model": "openclaw", "input": "hi"}),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = http_request(addr(&gw), "GET", "/v1/models", &[], T)
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    // Method, body and model errors, in the OpenAI error shape.
    let auth = format!("Bearer {TOKEN}");
    let r = http_request(
        addr(&gw),
        "GET",
        "/v1/chat/completions",
        &[("Authorization", &auth)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = http_request_body(
        addr(&gw),
        "POST",
        "/v1/chat/completions",
        &[("Authorization", &auth)],
        Some(b"{not json"),
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "invalid_request_error");
    let r = post(
        &gw,
        "/v1/chat/completions",
        Some(TOKEN),
        &json!({"model": "openclaw", "messages": [{"role": "system", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body_text());
    let r = post(
        &gw,
        "/v1/chat/completions",
        Some(TOKEN),
        &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "model_not_found");
    gw.fake.push(Reply::new().text("hi there"));
    let r = post(
        &gw,
        "/v1/chat/completions",
        Some(TOKEN),
        &json!({"model": "agent:main", "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["choices"][0]["message"]["content"], "hi there");
    let r = http_request(
        addr(&gw),
        "GET",
        "/v1/models",
        &[("Authorization", &auth)],
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["data"][0]["id"], "openclaw");
}

fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("PINCER_OPENAI_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../target/openai-venv/bin/python"
    ));
    p.exists().then_some(p)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_openai_python_sdk_works_streaming_and_not() {
    let Some(python) = python() else {
        assert!(
            std::env::var("PINCER_OPENAI_TESTS_REQUIRED").is_err(),
            "the openai package is required (scripts/test.sh installs it into target/openai-venv)"
        );
        eprintln!(
            "SKIP: no target/openai-venv (run scripts/test.sh to install the openai package)"
        );
        return;
    };
    let gw = gateway(true, json!({})).await;
    let replies = [
        "Hello from the gateway.",
        "Streaming hello from the gateway.",
        "Helper stream hello.",
        "Responses hello.",
        "Streamed response text.",
        "Helper response text.",
        "Continued in the same session.",
    ];
    for r in replies {
        gw.fake.push(Reply::new().text(r).usage(12, 5));
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/openai_sdk.py");
    let base = format!("http://127.0.0.1:{}/v1", gw.gw.port);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .env("PINCER_OPENAI_BASE_URL", base)
            .env("PINCER_OPENAI_TOKEN", TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "openai_sdk.py failed:\n{stdout}\n{stderr}"
    );
    for name in [
        "chat",
        "chat-stream",
        "chat-stream-helper",
        "responses",
        "responses-stream",
        "responses-stream-helper",
        "responses-continue",
        "errors",
        "models",
    ] {
        assert!(
            stdout.lines().any(|l| l == format!("ok {name}")),
            "{name} missing:\n{stdout}"
        );
    }
    // The gateway side: every request was one agent run on the fake model.
    let reqs = gw.fake.model_requests();
    assert_eq!(reqs.len(), replies.len());
    // The system message became part of the system prompt.
    let sys = reqs[1].body["messages"][0]["content"].to_string();
    assert!(sys.contains("Be brief."), "{sys}");
    // previous_response_id continued the first response's session: its turn is in the context.
    let last = reqs.last().unwrap().body["messages"].to_string();
    assert!(
        last.contains("Responses hello.") && last.contains("And then?"),
        "{last}"
    );
    // Stateless requests use fresh sessions.
    let mut ws = crate::agent::op(&gw, &[]).await;
    let (list, _) = rpc(&mut ws, "l", "sessions.list", json!({"limit": 50})).await;
    let keys: Vec<String> = list["payload"]["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("agent:main:openai:"))
            .count(),
        3,
        "{keys:?}"
    );
    assert_eq!(
        keys.iter()
            .filter(|k| k.starts_with("agent:main:openresponses:"))
            .count(),
        3,
        "{keys:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_mid_stream_cancels_the_run() {
    let gw = gateway(true, json!({})).await;
    gw.fake.push(
        Reply::new()
            .text_in_chunks(&"word ".repeat(40), 40)
            .delay(Duration::from_millis(200)),
    );
    let body = serde_json::to_vec(
        &json!({"model": "openclaw", "stream": true, "user": "leaver",
        "messages": [{"role": "user", "content": "talk slowly"}]}),
    )
    .unwrap();
    let mut tcp = tokio::net::TcpStream::connect(addr(&gw)).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\"content\":\"word") {
        let n = tokio::time::timeout(T, tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{text}"
    );
    let first = text
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .map(|d| serde_json::from_str::<Value>(d).unwrap())
        .unwrap();
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    drop(tcp);
    // The gateway aborts the run, which closes the model stream.
    assert!(
        gw.fake
            .wait_for(|c| c.client_aborts >= 1, Duration::from_secs(10))
            .await,
        "the model stream was not closed: {:?}",
        gw.fake.counters()
    );
    // …and records the aborted turn.
    let mut ws = crate::agent::op(&gw, &[]).await;
    let deadline = std::time::Instant::now() + T;
    loop {
        let (h, _) = rpc(
            &mut ws,
            "h",
            "chat.history",
            json!({"sessionKey": "agent:main:openai-user:leaver"}),
        )
        .await;
        let last = h["payload"]["messages"]
            .as_array()
            .and_then(|m| m.last().cloned())
            .unwrap_or_default();
        if last["stopReason"] == "aborted" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{h}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_invoke_runs_allowed_tools_and_refuses_denied_ones() {
    let gw = gateway(false, json!({})).await;
    let ws_dir = gw.gw.state_path().join("workspace");
    std::fs::create_dir_all(&ws_dir).unwrap();
    std::fs::write(ws_dir.join("notes.txt"), "remember the milk\n").unwrap();
    // Allowed: read runs in the agent's workspace.
    let r = post(
        &gw,
        "/tools/invoke",
        Some(TOKEN),
        &json!({"tool": "read", "args": {"path": "notes.txt"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    let v = r.json();
    assert_eq!(v["ok"], true);
    assert!(
        v["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("remember the milk"),
        "{v}"
    );
    // Workspace confinement applies.
    let r = post(
        &gw,
        "/tools/invoke",
        Some(TOKEN),
        &json!({"name": "read", "args": {"path": "../gateway.token"}}),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body_text());
    assert_eq!(r.json()["ok"], false);
    assert!(!r.body_text().contains(TOKEN));
    // Bad arguments are the tool's error.
    let r = post(
        &gw,
        "/tools/invoke",
        Some(TOKEN),
        &json!({"tool": "read", "args": {"nope": 1}}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["type"], "tool_error");
    // The HTTP deny list: exec, writes and the automations tool are not available over HTTP.
    for tool in [
        "exec",
        "bash",
        "write",
        "apply_patch",
        "cron",
        "automations",
        "nodes",
        "sessions_send",
    ] {
        let r = post(
            &gw,
            "/tools/invoke",
            Some(TOKEN),
            &json!({"tool": tool, "args": {}}),
        )
        .await;
        if tool == "write" {
            // write is not on the HTTP deny list, but a missing path is a bad argument.
            assert_eq!(r.status, 400, "{tool}: {}", r.body_text());
            continue;
        }
        assert_eq!(r.status, 404, "{tool}: {}", r.body_text());
        assert_eq!(r.json()["error"]["type"], "not_found");
        assert!(r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Tool not available"));
    }
    let r = post(
        &gw,
        "/tools/invoke",
        Some(TOKEN),
        &json!({"tool": "no_such_tool"}),
    )
    .await;
    assert_eq!(r.status, 404);
    // Auth, method, body.
    let r = post(
        &gw,
        "/tools/invoke",
        None,
        &json!({"tool": "read", "args": {"path": "notes.txt"}}),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = http_request(addr(&gw), "GET", "/tools/invoke", &[], T)
        .await
        .unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    let r = post(&gw, "/tools/invoke", Some(TOKEN), &json!({"args": {}})).await;
    assert_eq!(r.status, 400);
    assert!(r.body_text().contains("requires name"));
    drop(gw);

    // gateway.tools.allow lifts an entry of the deny list; tools.deny (agent policy) still wins.
    let gw = gateway(
        false,
        json!({"gateway": {"tools": {"allow": ["exec"]}}, "tools": {"deny": ["read"], "exec": {"security": "full", "ask": "off"}}}),
    )
    .await;
    let r = post(
        &gw,
        "/tools/invoke",
        Some(TOKEN),
        &json!({"tool": "exec", "args": {"command": "echo invoked-$((6*7))"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert!(r.body_text().contains("invoked-42"), "{}", r.body_text());
    let r = post(
        &gw,
        "/tools/invoke",
        Some(TOKEN),
        &json!({"tool": "read", "args": {"path": "x"}}),
    )
    .await;
    assert_eq!(
        r.status,
        404,
        "denied by the agent's tool policy: {}",
        r.body_text()
    );
    // Oversized bodies.
    let big = vec![b' '; 2 * 1024 * 1024 + 10];
    let auth = format!("Bearer {TOKEN}");
    let r = http_request_body(
        addr(&gw),
        "POST",
        "/tools/invoke",
        &[("Authorization", &auth)],
        Some(&big),
        T,
    )
    .await
    .unwrap();
    assert_eq!(r.status, 413);
}
