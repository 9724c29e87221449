//! The agent runtime through the real gateway: the scripted fake LLM runs in the test, the
//! `pincer` binary is pointed at it through `models.providers` in its config.
//! Scenarios of issue 5: simple turn, tool-call turn, concurrent sessions, queue modes,
//! abort, 429 then success, fallback on 500, malformed SSE, dropped stream, idle timeout,
//! the `agent` RPC's two answers, no provider configured.

use std::time::{Duration, Instant};

use pincer_fakes::llm::{FakeLlm, Part, Reply, Turn};
use pincer_testkit::*;
use serde_json::{json, Value};

use crate::bin;

pub const TOKEN: &str = "agent-e2e-token";
pub const T: Duration = Duration::from_secs(20);

/// A gateway wired to a fake provider (`mock/mock-model`, fallback `mock/backup-model`).
pub struct Gw {
    pub gw: GatewayProcess,
    pub fake: FakeLlm,
}

pub fn provider_config(fake: &FakeLlm, extra_provider: Value) -> Value {
    let mut mock = json!({
        "baseUrl": fake.openai_base_url(), "api": "openai-completions", "apiKey": "sk-e2e",
        "models": [
            {"id": "mock-model", "name": "Mock Model", "reasoning": false, "contextWindow": 32000},
            {"id": "backup-model", "name": "Backup Model", "contextWindow": 32000}
        ]
    });
    if let (Some(m), Some(e)) = (mock.as_object_mut(), extra_provider.as_object()) {
        for (k, v) in e {
            m.insert(k.clone(), v.clone());
        }
    }
    json!({"models": {"providers": {"mock": mock}}})
}

pub async fn start_with(config: Value, env: &[(&str, &str)], fake: FakeLlm) -> Gw {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pincer.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    let mut opts = SpawnOptions::default().arg("--token").arg(TOKEN);
    for key in [
        "ANTHROPIC_API_KEY",
        "OPENAI_API_KEY",
        "OPENROUTER_API_KEY",
        "OLLAMA_API_KEY",
    ] {
        opts = opts.env(key, "");
    }
    for (k, v) in env {
        opts = opts.env(*k, *v);
    }
    let gw = GatewayProcess::spawn_in(bin(), dir, opts);
    Gw { gw, fake }
}

/// A gateway whose default model is `mock/mock-model` (fallback `mock/backup-model`).
pub async fn start(fallbacks: &[&str], extra_provider: Value, env: &[(&str, &str)]) -> Gw {
    let fake = FakeLlm::start().await.unwrap();
    let mut config = provider_config(&fake, extra_provider);
    config["agents"] =
        json!({"defaults": {"model": {"primary": "mock/mock-model", "fallbacks": fallbacks}}});
    start_with(config, env, fake).await
}

pub async fn op(gw: &Gw, caps: &[&str]) -> RawWs {
    let mut params = golden_connect_params(Some(TOKEN));
    params["caps"] = json!(caps);
    let (ws, _, res) = handshake(&gw.gw.url, params).await;
    assert_eq!(res["ok"], true, "{res}");
    ws
}

pub async fn rpc(ws: &mut RawWs, id: &str, method: &str, params: Value) -> (Value, Vec<Value>) {
    send_json(
        ws,
        &json!({"type": "req", "id": id, "method": method, "params": params}),
    )
    .await;
    recv_res(ws, id, T).await
}

/// Frames until `done` says stop (inclusive); panics on a close or a hang.
pub async fn until(ws: &mut RawWs, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut out = Vec::new();
    loop {
        match recv(ws, T).await {
            Received::Json(v) => {
                let stop = done(&v);
                out.push(v);
                if stop {
                    return out;
                }
            }
            other => panic!("waiting for frames: {other:?}; so far {out:#?}"),
        }
    }
}

/// The terminal `chat` event of `run` (final, aborted or error).
pub fn is_chat_end(v: &Value, run: &str) -> bool {
    v["event"] == "chat"
        && v["payload"]["runId"] == run
        && matches!(
            v["payload"]["state"].as_str(),
            Some("final" | "aborted" | "error")
        )
}

pub fn of_run<'a>(frames: &'a [Value], run: &str) -> Vec<&'a Value> {
    frames
        .iter()
        .filter(|f| f["type"] == "event" && f["payload"]["runId"] == run)
        .collect()
}

/// `agent:<stream>[:<phase>]` / `chat:<state>` labels of a run's events.
pub fn labels(frames: &[&Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            let p = &f["payload"];
            if f["event"] == "chat" {
                format!("chat:{}", p["state"].as_str().unwrap_or(""))
            } else {
                match p["data"]["phase"].as_str() {
                    Some(phase) if p["stream"] != "assistant" => {
                        format!("agent:{}:{phase}", p["stream"].as_str().unwrap_or(""))
                    }
                    _ => format!("agent:{}", p["stream"].as_str().unwrap_or("")),
                }
            }
        })
        .collect()
}

/// Sends `chat.send` and returns (ack, every frame until the run's terminal chat event).
pub async fn chat_turn(
    ws: &mut RawWs,
    id: &str,
    session: &str,
    message: &str,
) -> (Value, Vec<Value>) {
    let run = format!("run-{id}");
    let (ack, early) = rpc(
        ws,
        id,
        "chat.send",
        json!({"sessionKey": session, "message": message, "idempotencyKey": run}),
    )
    .await;
    assert!(
        of_run(&early, &run).is_empty(),
        "the ack comes before the run's events: {early:#?}"
    );
    let frames = until(ws, |v| is_chat_end(v, &run)).await;
    (ack, frames)
}

fn terminal(frames: &[Value], run: &str) -> Value {
    frames
        .iter()
        .rev()
        .find(|v| is_chat_end(v, run))
        .map(|v| v["payload"].clone())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_turn_streams_agent_and_chat_events() {
    let gw = start(&[], json!({}), &[]).await;
    gw.fake.push(
        Reply::new()
            .text("Hello from the mock provider.")
            .usage(10, 10),
    );
    let mut ws = op(&gw, &[]).await;
    let (ack, frames) = chat_turn(&mut ws, "s1", "main", "Say hello").await;
    assert_eq!(
        ack["payload"],
        json!({"runId": "run-s1", "status": "started"})
    );
    let events = of_run(&frames, "run-s1");
    let l = labels(&events);
    assert_eq!(
        &l[..9],
        [
            "chat:status",
            "agent:run_status:preparing_workspace",
            "chat:status",
            "agent:run_status:preparing_context",
            "agent:lifecycle:start",
            "chat:status",
            "agent:run_status:starting_model",
            "agent:lifecycle:model",
            "agent:assistant",
        ],
        "{l:#?}"
    );
    // The tail (a chat delta held back by pacing is flushed right before the final).
    let tail: Vec<&str> = l
        .iter()
        .rev()
        .take(6)
        .rev()
        .map(String::as_str)
        .filter(|x| *x != "chat:delta")
        .collect();
    assert_eq!(
        &tail[tail.len() - 5..],
        [
            "agent:usage",
            "agent:lifecycle:finishing",
            "agent:lifecycle:model",
            "agent:lifecycle:end",
            "chat:final"
        ],
        "{l:#?}"
    );
    // Run seq: agent events count up; each chat event carries the seq of the agent event before it.
    let mut last_agent = 0;
    let mut prev = 0;
    for e in &events {
        let seq = e["payload"]["seq"].as_u64().unwrap();
        if e["event"] == "agent" {
            assert!(seq > prev, "agent seq increases");
            last_agent = seq;
            prev = seq;
        } else if e["payload"]["state"] != "status" {
            assert_eq!(seq, last_agent, "chat seq = the agent event it belongs to");
        }
    }
    // Streamed text adds up to the final message.
    let streamed: String = events
        .iter()
        .filter(|e| e["event"] == "chat" && e["payload"]["state"] == "delta")
        .map(|e| e["payload"]["deltaText"].as_str().unwrap())
        .collect();
    let fin = terminal(&frames, "run-s1");
    assert_eq!(streamed, "Hello from the mock provider.");
    assert_eq!(
        fin["message"]["content"][0]["text"],
        "Hello from the mock provider."
    );
    assert_eq!(fin["stopReason"], "stop");
    assert_eq!(fin["sessionKey"], "agent:main:main");
    let end = events
        .iter()
        .find(|e| e["payload"]["data"]["phase"] == "end")
        .unwrap();
    assert_eq!(
        end["payload"]["data"]["terminalReply"]["text"],
        "Hello from the mock provider."
    );
    assert_eq!(
        end["payload"]["data"]["terminalReceipt"]["effective"]["model"],
        "mock-model"
    );
    let usage = events
        .iter()
        .find(|e| e["payload"]["stream"] == "usage")
        .unwrap();
    assert_eq!(usage["payload"]["data"]["outputTokens"], 10);

    // The transcript is what chat.history shows.
    let (h, _) = rpc(&mut ws, "h1", "chat.history", json!({"sessionKey": "main"})).await;
    let msgs = h["payload"]["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{h}");
    assert_eq!(msgs[0]["content"], "Say hello");
    assert_eq!(msgs[0]["idempotencyKey"], "run-s1:user");
    assert_eq!(
        msgs[1]["content"][0]["text"],
        "Hello from the mock provider."
    );
    assert_eq!(msgs[1]["usage"]["input"], 10);
    // …and the usage counters reached the session row.
    let (list, _) = rpc(&mut ws, "l1", "sessions.list", json!({})).await;
    let row = &list["payload"]["sessions"][0];
    assert_eq!(
        (row["inputTokens"].clone(), row["outputTokens"].clone()),
        (json!(10), json!(10)),
        "{row}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_turn_and_the_tool_events_capability() {
    let gw = start(&[], json!({}), &[]).await;
    gw.fake
        .push(Reply::new().tool_call("call_abc123", "read", r#"{"path":"USER.md"}"#));
    gw.fake.push(Reply::new().text("Hello from fake model."));
    let mut with_cap = op(&gw, &["tool-events"]).await;
    let mut without = op(&gw, &[]).await;
    let (_, frames) = chat_turn(&mut with_cap, "t1", "main", "read my user file").await;
    let events = of_run(&frames, "run-t1");
    let l = labels(&events);
    let item = l
        .iter()
        .position(|x| x == "agent:item:start")
        .expect("item start");
    assert_eq!(
        &l[item..item + 4],
        [
            "agent:item:start",
            "agent:tool:start",
            "agent:tool:result",
            "agent:item:end"
        ]
    );
    let start = events
        .iter()
        .find(|e| e["payload"]["stream"] == "tool")
        .unwrap();
    assert_eq!(start["payload"]["data"]["args"], json!({"path": "USER.md"}));
    let result = events
        .iter()
        .find(|e| e["payload"]["data"]["phase"] == "result")
        .unwrap();
    assert_eq!(result["payload"]["data"]["isError"], false);
    assert!(result["payload"]["data"]["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("USER.md"));
    let item_start = &events[item]["payload"]["data"];
    assert_eq!(item_start["title"], "Read from USER.md");
    assert_eq!(item_start["itemId"], "tool:call_abc123");
    assert_eq!(
        terminal(&frames, "run-t1")["message"]["content"][0]["text"],
        "Hello from fake model."
    );

    // The other connection saw the run, but not the tool stream.
    let seen = until(&mut without, |v| is_chat_end(v, "run-t1")).await;
    let other = of_run(&seen, "run-t1");
    assert!(other.iter().any(|e| e["payload"]["stream"] == "item"));
    assert!(
        !other.iter().any(|e| e["payload"]["stream"] == "tool"),
        "tool stream is opt-in"
    );
    // Same run seq on both connections (the tool events still used theirs).
    let last = |v: &[&Value]| {
        v.iter()
            .rev()
            .find(|e| e["event"] == "agent")
            .map(|e| e["payload"]["seq"].clone())
    };
    assert_eq!(last(&events), last(&other));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_stream_concurrently() {
    let gw = start(&[], json!({}), &[]).await;
    for _ in 0..2 {
        gw.fake.push(
            Reply::new()
                .text("one two three four five")
                .delay(Duration::from_millis(60)),
        );
    }
    let mut ws = op(&gw, &[]).await;
    for (id, key) in [("a", "agent:main:alpha"), ("b", "agent:main:beta")] {
        let (ack, _) = rpc(
            &mut ws,
            id,
            "chat.send",
            json!({"sessionKey": key, "message": format!("hi {id}"), "idempotencyKey": format!("run-{id}")}),
        )
        .await;
        assert_eq!(ack["payload"]["status"], "started");
    }
    let mut done = std::collections::HashSet::new();
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    let frames = until(&mut ws, |v| {
        if is_chat_end(v, "run-a") || is_chat_end(v, "run-b") {
            done.insert(v["payload"]["runId"].as_str().unwrap_or("").to_owned());
        }
        done.len() == 2
    })
    .await;
    for f in &frames {
        let d = &f["payload"]["data"];
        if d["phase"] == "start" {
            starts.push(d["startedAt"].as_u64().unwrap());
        }
        if d["phase"] == "end" {
            ends.push(d["endedAt"].as_u64().unwrap());
        }
    }
    assert_eq!((starts.len(), ends.len()), (2, 2));
    assert!(
        starts.iter().max() < ends.iter().min(),
        "both runs were in flight together"
    );
    for run in ["run-a", "run-b"] {
        assert_eq!(terminal(&frames, run)["state"], "final");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_modes_followup_interrupt_and_steer() {
    let gw = start(&[], json!({}), &[]).await;
    let slow = || {
        Reply::new()
            .text("a slow answer that takes a while to stream")
            .delay(Duration::from_millis(60))
    };
    let mut ws = op(&gw, &[]).await;
    let send = |id: &str, msg: &str, mode: &str| json!({"sessionKey": "main", "message": msg, "idempotencyKey": format!("run-{id}"), "queueMode": mode});
    let first_delta = |run: &'static str| {
        move |v: &Value| {
            v["event"] == "chat" && v["payload"]["runId"] == run && v["payload"]["state"] == "delta"
        }
    };

    // followup: the second message runs after the first, as its own run.
    gw.fake.push(slow());
    gw.fake.push(Reply::new().text("second"));
    rpc(&mut ws, "f1", "chat.send", send("f1", "first", "followup")).await;
    until(&mut ws, first_delta("run-f1")).await;
    rpc(&mut ws, "f2", "chat.send", send("f2", "second", "followup")).await;
    let frames = until(&mut ws, |v| is_chat_end(v, "run-f2")).await;
    let order: Vec<&str> = frames
        .iter()
        .filter(|v| is_chat_end(v, "run-f1") || is_chat_end(v, "run-f2"))
        .map(|v| v["payload"]["runId"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["run-f1", "run-f2"]);
    assert_eq!(
        terminal(&frames, "run-f2")["message"]["content"][0]["text"],
        "second"
    );

    // interrupt: the active run is aborted, the newest message runs.
    gw.fake.push(slow());
    gw.fake.push(Reply::new().text("fresh"));
    rpc(&mut ws, "i1", "chat.send", send("i1", "long", "interrupt")).await;
    until(&mut ws, first_delta("run-i1")).await;
    rpc(
        &mut ws,
        "i2",
        "chat.send",
        send("i2", "never mind", "interrupt"),
    )
    .await;
    let frames = until(&mut ws, |v| is_chat_end(v, "run-i2")).await;
    let aborted = terminal(&frames, "run-i1");
    assert_eq!(aborted["state"], "aborted");
    assert_eq!(aborted["stopReason"], "interrupt");
    assert_eq!(terminal(&frames, "run-i2")["state"], "final");

    // steer: the message joins the active run at its next boundary.
    gw.fake.push(slow());
    gw.fake.push(Reply::new().text("steered reply"));
    rpc(&mut ws, "s1", "chat.send", send("s1", "question", "steer")).await;
    until(&mut ws, first_delta("run-s1")).await;
    rpc(
        &mut ws,
        "s2",
        "chat.send",
        send("s2", "use metric", "steer"),
    )
    .await;
    let frames = until(&mut ws, |v| is_chat_end(v, "run-s1")).await;
    assert_eq!(
        terminal(&frames, "run-s1")["message"]["content"][0]["text"],
        "steered reply"
    );
    let last_request = gw.fake.model_requests().pop().unwrap();
    let last_user = last_request.body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .unwrap()
        .clone();
    assert_eq!(last_user["content"], "use metric");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_mid_stream_is_quick_and_recorded() {
    let gw = start(&[], json!({}), &[]).await;
    gw.fake.push(
        Reply::new()
            .text("this reply streams slowly word by word")
            .delay(Duration::from_millis(200)),
    );
    let mut ws = op(&gw, &[]).await;
    rpc(
        &mut ws,
        "a1",
        "chat.send",
        json!({"sessionKey": "main", "message": "talk", "idempotencyKey": "run-ab"}),
    )
    .await;
    until(&mut ws, |v| {
        v["event"] == "chat" && v["payload"]["state"] == "delta"
    })
    .await;
    let t0 = Instant::now();
    let (res, _) = rpc(&mut ws, "x1", "chat.abort", json!({"sessionKey": "main"})).await;
    assert_eq!(
        res["payload"],
        json!({"ok": true, "aborted": true, "runIds": ["run-ab"]})
    );
    let frames = until(&mut ws, |v| is_chat_end(v, "run-ab")).await;
    let took = t0.elapsed();
    let fin = terminal(&frames, "run-ab");
    assert_eq!(fin["state"], "aborted");
    assert_eq!(fin["stopReason"], "rpc");
    assert!(
        took < Duration::from_secs(3),
        "abort reached the chat in {took:?}"
    );
    let (h, _) = rpc(&mut ws, "h1", "chat.history", json!({"sessionKey": "main"})).await;
    let last = h["payload"]["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["stopReason"], "aborted");
    // Nothing left to abort.
    let (res, _) = rpc(&mut ws, "x2", "chat.abort", json!({"sessionKey": "main"})).await;
    assert_eq!(res["payload"]["aborted"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limited_with_retry_after_then_success() {
    let gw = start(&[], json!({}), &[]).await;
    gw.fake.push(Turn::rate_limited("1"));
    gw.fake.push(Reply::new().text("made it"));
    let mut ws = op(&gw, &[]).await;
    let t0 = Instant::now();
    let (_, frames) = chat_turn(&mut ws, "r1", "main", "hi").await;
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "waited for retry-after"
    );
    assert_eq!(
        terminal(&frames, "run-r1")["message"]["content"][0]["text"],
        "made it"
    );
    let retry = frames
        .iter()
        .find(|v| v["event"] == "chat" && v["payload"]["retry"].is_object())
        .expect("a status event announcing the retry");
    assert_eq!(retry["payload"]["retry"]["reason"], "rate_limit");
    assert_eq!(gw.fake.model_requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_falls_back_to_the_second_model() {
    let gw = start(
        &["mock/backup-model"],
        json!({}),
        &[
            ("PINCER_MODEL_RETRY_BASE_MS", "10"),
            ("PINCER_MODEL_RETRY_ATTEMPTS", "2"),
        ],
    )
    .await;
    gw.fake
        .always_for_model("mock-model", Turn::http_error(500));
    gw.fake
        .push_for_model("backup-model", Reply::new().text("from the backup"));
    let mut ws = op(&gw, &[]).await;
    let (_, frames) = chat_turn(&mut ws, "f1", "main", "hi").await;
    let events = of_run(&frames, "run-f1");
    let step = events
        .iter()
        .find(|e| e["payload"]["data"]["phase"] == "fallback_step")
        .expect("fallback step");
    assert_eq!(
        step["payload"]["data"]["fallbackStep"]["to"]["model"],
        "backup-model"
    );
    assert_eq!(step["payload"]["data"]["fallbackStep"]["reason"], "server");
    assert_eq!(
        terminal(&frames, "run-f1")["message"]["content"][0]["text"],
        "from the backup"
    );
    let models: Vec<String> = gw
        .fake
        .model_requests()
        .iter()
        .map(|r| r.body["model"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(
        models,
        ["mock-model", "mock-model", "backup-model"],
        "retried once, then failed over"
    );
}

async fn failing_turn(reply: Reply, extra_provider: Value) -> Value {
    let gw = start(&[], extra_provider, &[]).await;
    gw.fake.push(reply);
    let mut ws = op(&gw, &[]).await;
    let (_, frames) = chat_turn(&mut ws, "e1", "main", "hi").await;
    let fin = terminal(&frames, "run-e1");
    assert_eq!(fin["state"], "error", "{fin}");
    // The gateway is fine afterwards.
    let (h, _) = rpc(&mut ws, "hz", "health", json!({})).await;
    assert_eq!(h["ok"], true);
    fin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_stream_is_an_error_event_with_detail() {
    let fin = failing_turn(
        Reply::new().text("partial text").malformed_after(1),
        json!({}),
    )
    .await;
    assert_eq!(fin["errorDetail"]["failoverReason"], "malformed");
    assert_eq!(fin["errorDetail"]["provider"], "mock");
    assert_eq!(fin["errorKind"], "unknown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_dropped_mid_stream() {
    let fin = failing_turn(
        Reply::new().text("one two three four").drop_after(3),
        json!({}),
    )
    .await;
    assert_eq!(fin["errorDetail"]["failoverReason"], "network");
    assert!(fin["errorMessage"]
        .as_str()
        .unwrap()
        .contains("mock/mock-model"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_stream_timeout() {
    let t0 = Instant::now();
    let fin = failing_turn(
        Reply::new().text("one two three").stall_after(2),
        json!({"timeoutSeconds": 1}),
    )
    .await;
    assert_eq!(fin["errorKind"], "timeout");
    assert_eq!(fin["errorDetail"]["failoverReason"], "timeout");
    assert!(t0.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_chat_send_runs_once_and_replays() {
    let gw = start(&[], json!({}), &[]).await;
    gw.fake.push(
        Reply::new()
            .text("only once")
            .delay(Duration::from_millis(80)),
    );
    let mut ws = op(&gw, &[]).await;
    let params = json!({"sessionKey": "main", "message": "hi", "idempotencyKey": "run-dup"});
    let (first, _) = rpc(&mut ws, "d1", "chat.send", params.clone()).await;
    assert_eq!(first["payload"]["status"], "started");
    let (second, _) = rpc(&mut ws, "d2", "chat.send", params.clone()).await;
    assert_eq!(second["payload"]["status"], "in_flight");
    assert_eq!(second["payload"]["runId"], "run-dup");
    until(&mut ws, |v| is_chat_end(v, "run-dup")).await;
    // The stored outcome is recorded right after the run; poll briefly for it.
    let mut replay = Value::Null;
    for i in 0..50 {
        let (r, _) = rpc(&mut ws, &format!("d3-{i}"), "chat.send", params.clone()).await;
        if r["payload"]["status"] != "in_flight" {
            replay = r;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        replay["payload"],
        json!({"runId": "run-dup", "status": "ok", "stopReason": "stop"})
    );
    assert_eq!(gw.fake.model_requests().len(), 1, "one run for one key");
    let (h, _) = rpc(&mut ws, "h", "chat.history", json!({"sessionKey": "main"})).await;
    assert_eq!(h["payload"]["messages"].as_array().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_rpc_answers_twice_and_agent_wait_reports() {
    let gw = start(&[], json!({}), &[]).await;
    let reply = Reply {
        parts: vec![Part::Text {
            chunks: vec!["Second".into(), " turn".into(), " done.".into()],
        }],
        ..Reply::new().usage(10, 10)
    };
    gw.fake.push(reply);
    let mut ws = op(&gw, &[]).await;
    send_json(
        &mut ws,
        &json!({"type": "req", "id": "ag1", "method": "agent",
            "params": {"message": "Second turn please", "sessionKey": "main", "idempotencyKey": "run-ag"}}),
    )
    .await;
    let frames = until(&mut ws, |v| {
        v["type"] == "res" && v["id"] == "ag1" && v["payload"]["status"] != "accepted"
    })
    .await;
    let answers: Vec<&Value> = frames.iter().filter(|v| v["type"] == "res").collect();
    assert_eq!(answers.len(), 2, "accepted, then final, on one id");
    assert_eq!(answers[0]["payload"]["status"], "accepted");
    assert_eq!(answers[0]["payload"]["sessionKey"], "agent:main:main");
    let fin = &answers[1]["payload"];
    assert_eq!(fin["status"], "ok");
    assert_eq!(fin["summary"], "completed");
    assert_eq!(fin["result"]["payloads"][0]["text"], "Second turn done.");
    assert_eq!(fin["result"]["meta"]["agentMeta"]["usage"]["total"], 20);
    // No run_status/chat status for the agent RPC (chat surfaces only), and no isHeartbeat.
    let events = of_run(&frames, "run-ag");
    assert!(!events
        .iter()
        .any(|e| e["payload"]["stream"] == "run_status"));
    assert!(events
        .iter()
        .filter(|e| e["event"] == "agent")
        .all(|e| e["payload"].get("isHeartbeat").is_none()));
    assert!(events
        .iter()
        .any(|e| e["event"] == "chat" && e["payload"]["state"] == "final"));
    let (wait, _) = rpc(
        &mut ws,
        "w1",
        "agent.wait",
        json!({"runId": "run-ag", "timeoutMs": 1000}),
    )
    .await;
    assert_eq!(wait["payload"]["status"], "ok");
    assert_eq!(
        wait["payload"]["terminalReply"]["text"],
        "Second turn done."
    );
    let (wait, _) = rpc(
        &mut ws,
        "w2",
        "agent.wait",
        json!({"runId": "nope", "timeoutMs": 100}),
    )
    .await;
    assert_eq!(wait["payload"]["status"], "timeout");
    // Replaying the key answers once, with the stored final.
    let (replay, _) = rpc(
        &mut ws,
        "ag2",
        "agent",
        json!({"message": "Second turn please", "sessionKey": "main", "idempotencyKey": "run-ag"}),
    )
    .await;
    assert_eq!(replay["payload"]["status"], "ok");
    assert_eq!(gw.fake.model_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_provider_the_gateway_runs_and_chats_say_how_to_configure_one() {
    let fake = FakeLlm::start().await.unwrap();
    let gw = start_with(json!({}), &[], fake).await;
    let mut ws = op(&gw, &[]).await;
    let (_, frames) = chat_turn(&mut ws, "n1", "main", "hello?").await;
    let fin = terminal(&frames, "run-n1");
    assert_eq!(fin["state"], "error");
    let message = fin["errorMessage"].as_str().unwrap();
    assert!(
        message.contains("ANTHROPIC_API_KEY")
            && message.contains("OPENAI_API_KEY")
            && message.contains("models.providers"),
        "{message}"
    );
    let (models, _) = rpc(&mut ws, "m", "models.list", json!({})).await;
    assert_eq!(models["payload"], json!({"models": []}));
    let (h, _) = rpc(&mut ws, "h", "health", json!({})).await;
    assert_eq!(h["ok"], true);
    assert!(gw
        .gw
        .wait_for_log_line("no model provider configured", T)
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_models_and_compact_methods() {
    let gw = start(&[], json!({}), &[]).await;
    let mut ws = op(&gw, &[]).await;
    let (m, _) = rpc(&mut ws, "m", "models.list", json!({})).await;
    let models = m["payload"]["models"].as_array().unwrap();
    assert_eq!(models[0]["id"], "mock-model");
    assert_eq!(models[0]["tags"], json!(["default"]));
    assert_eq!(models[1]["id"], "backup-model");
    let (id, _) = rpc(&mut ws, "i", "agent.identity.get", json!({})).await;
    assert_eq!(id["payload"]["agentId"], "main");
    let (c, _) = rpc(&mut ws, "c", "sessions.compact", json!({"key": "main"})).await;
    assert_eq!(c["payload"]["ok"], true);
    assert_eq!(c["payload"]["compacted"], false);
    // /status is answered by the gateway without the model.
    let (_, frames) = chat_turn(&mut ws, "st", "main", "/status").await;
    let fin = terminal(&frames, "run-st");
    assert!(fin["message"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("Model: mock/mock-model"));
    assert_eq!(fin["message"]["model"], "gateway-injected");
    assert_eq!(gw.fake.model_requests().len(), 0);
}
