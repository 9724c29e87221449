//! Chat surfaces: golden replays of the agent/chat event streams (`agent_run_chat_send`,
//! `agent_run_agent_method`, `models_list`, `chat_inject_no_session`), the shapes of
//! `chat.history` after runs and of `chat.inject`'s broadcast, and the `pincer agent` /
//! `pincer chat` commands against a live gateway.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use pincer_fakes::llm::{FakeLlm, Part, Reply};
use pincer_testkit::compare::Action::{Absent, Mask, Shape};
use pincer_testkit::compare::Rule;
use pincer_testkit::replay::Replay;
use pincer_testkit::*;
use serde_json::{json, Value};

use crate::agent::{self, is_chat_end, op, provider_config, rpc, start, until, T, TOKEN};
use crate::bin;
use crate::conformance::common;

/// The reference's mock provider streamed this reply in three pieces, 10 tokens each way.
fn golden_reply() -> Reply {
    Reply {
        parts: vec![Part::Text {
            chunks: vec![
                "Hello".into(),
                " from the mock provider. This".into(),
                " is a fixed reply.".into(),
            ],
        }],
        // Chat deltas are paced 75 ms apart: slower chunks keep one chat delta per chunk.
        ..Reply::new().usage(10, 10).delay(Duration::from_millis(120))
    }
}

/// The capture config with the provider pointed at the fake of this test.
fn replay_config(fake: &FakeLlm) -> Value {
    let mut c = provider_config(
        fake,
        json!({"apiKey": "conformance-not-a-key", "timeoutSeconds": 60}),
    );
    c["models"]["mode"] = json!("replace");
    c["agents"] = json!({"defaults": {"model": {"primary": "mock/mock-model"}}});
    c["models"]["providers"]["mock"]["models"] = json!([{
        "id": "mock-model", "name": "Mock Model", "reasoning": false, "input": ["text"],
        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
        "contextWindow": 32000, "maxTokens": 1024
    }]);
    c
}

/// Environment of these captures: the reference had another client registered.
const PRESENCE_AT_HELLO: &[Rule] = &[Rule::new(
    "res:connect",
    "payload.snapshot.presence",
    Shape,
    "presence lists the clients connected at that moment; the reference still had the capture tool's previous client registered",
)];

/// `chat.history` facts owned by the sessions surface (compared by its own conformance tests).
const HISTORY_DECORATIONS: &[Rule] = &[
    Rule::new(
        "res:chat.history",
        "payload.sessionInfo",
        Mask,
        "the session row is compared by the sessions conformance (issue 4); here the history must carry the run's messages",
    ),
    Rule::new(
        "res:chat.history",
        "payload.messages[].__openclaw.id",
        Mask,
        "transcript entry uuid",
    ),
    Rule::new(
        "res:chat.history",
        "payload.messages[].__openclaw.recordTimestampMs",
        Mask,
        "clock",
    ),
    Rule::new(
        "res:chat.history",
        "payload.messages[].__openclaw.transcriptPosition",
        Mask,
        "position in the store: a hash of the transcript and its raw seq (the reference writes bookkeeping entries between messages)",
    ),
    Rule::new(
        "res:chat.history",
        "payload.messages[].responseId",
        Mask,
        "the provider's response id (a different mock)",
    ),
];

/// Differences of the agent/chat streams that are deliberate.
const RUN_EVENTS: &[Rule] = &[
    Rule::new(
        "event:agent|event:chat",
        "payload.seq",
        Mask,
        "the reference numbers every internal step of a run and skips the ones this client does not receive; Pincer numbers the events it sends (1, 2, 3 …), chat events sharing their agent event's number as in the reference",
    ),
    Rule::new(
        "res:agent",
        "payload.result.meta.systemPromptReport",
        Absent,
        "the reference's prompt report (skills, tool hashes, sandbox); Pincer reports its prompt facts in the session entry",
    ),
    Rule::new(
        "res:agent",
        "payload.result.meta.*",
        Mask,
        "run metadata of the reference's embedded runner (trace, shaping, liveness); Pincer fills the same keys from its own run where it has them",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_models_list() {
    let fake = FakeLlm::start().await.unwrap();
    let mut report = common(Replay::new("models_list.jsonl"))
        .config(replay_config(&fake))
        .run(bin())
        .await;
    report.assert_conforms();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_chat_inject_without_a_session() {
    let fake = FakeLlm::start().await.unwrap();
    let mut report = common(Replay::new("chat_inject_no_session.jsonl"))
        .config(replay_config(&fake))
        .allow(PRESENCE_AT_HELLO)
        .run(bin())
        .await;
    report.assert_conforms();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_agent_run_chat_send() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(golden_reply());
    let mut report = common(Replay::new("agent_run_chat_send.jsonl"))
        .config(replay_config(&fake))
        .frame_timeout(T)
        .allow(RUN_EVENTS)
        .allow(PRESENCE_AT_HELLO)
        .allow(HISTORY_DECORATIONS)
        .run(bin())
        .await;
    report.assert_conforms();
}

/// `agent_run_agent_method.jsonl`, compared by shape: the same two answers on one id and, per
/// kind of event, the same keys (the capture's chunk timing decides how its deltas were
/// paced, so the number of deltas is not compared here; `golden_agent_run_chat_send`
/// replays a capture whose timing is reproducible).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_shape_agent_run_agent_method() {
    let gw = start(&[], json!({}), &[]).await;
    gw.fake.push(golden_reply());
    let mut ws = op(&gw, &[]).await;
    let (_, rows) = load_golden("agent_run_agent_method.jsonl");
    let req = rows
        .iter()
        .find(|r| r["frame"]["method"] == "agent")
        .map(|r| r["frame"].clone())
        .unwrap();
    send_json(&mut ws, &req).await;
    let id = req["id"].as_str().unwrap().to_owned();
    let frames = until(&mut ws, |v| {
        v["type"] == "res" && v["id"] == id.as_str() && v["payload"]["status"] != "accepted"
    })
    .await;
    let golden: Vec<Value> = rows
        .iter()
        .filter(|r| r["dir"] == "s2c")
        .map(|r| r["frame"].clone())
        .filter(|f| {
            f["event"] == "agent"
                || f["event"] == "chat"
                || (f["type"] == "res" && f["id"] == id.as_str())
        })
        .collect();
    let label = |f: &Value| -> String {
        if f["type"] == "res" {
            return format!("res:{}", f["payload"]["status"].as_str().unwrap_or(""));
        }
        let p = &f["payload"];
        match f["event"].as_str() {
            Some("chat") => format!("chat:{}", p["state"].as_str().unwrap_or("")),
            _ => match p["data"]["phase"].as_str() {
                Some(phase) => format!(
                    "agent:{}:{phase}:{}",
                    p["stream"].as_str().unwrap_or(""),
                    p["data"]["provider"].is_null()
                ),
                None => format!("agent:{}", p["stream"].as_str().unwrap_or("")),
            },
        }
    };
    let collapse = |fs: &[Value]| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in fs {
            let l = label(f);
            let streamed = l == "agent:assistant" || l == "chat:delta";
            if streamed && out.iter().rev().take(2).any(|x| *x == l) {
                continue;
            }
            out.push(l);
        }
        out.retain(|l| l != "chat:delta");
        out
    };
    let ours: Vec<Value> = frames
        .iter()
        .filter(|f| f["event"] == "agent" || f["event"] == "chat" || f["type"] == "res")
        .cloned()
        .collect();
    assert_eq!(collapse(&ours), collapse(&golden));
    // Same keys per kind of frame (first occurrence), top level and in `data`.
    for g in &golden {
        let l = label(g);
        let o = ours
            .iter()
            .find(|o| label(o) == l)
            .unwrap_or_else(|| panic!("no {l}"));
        assert_eq!(
            key_set(&o["payload"]),
            key_set(&g["payload"]),
            "{l} payload keys"
        );
        if g["payload"]["data"].is_object() {
            assert_eq!(
                key_set(&o["payload"]["data"]),
                key_set(&g["payload"]["data"]),
                "{l} data keys"
            );
        }
        if l == "res:ok" {
            assert_eq!(key_set(&o["payload"]["result"]), ["meta", "payloads"]);
            assert_eq!(
                o["payload"]["result"]["payloads"],
                g["payload"]["result"]["payloads"]
            );
            assert_eq!(o["payload"]["summary"], "completed");
            for k in [
                "durationMs",
                "agentMeta",
                "aborted",
                "stopReason",
                "executionTrace",
                "completion",
                "finalAssistantVisibleText",
            ] {
                assert!(
                    o["payload"]["result"]["meta"].get(k).is_some(),
                    "result.meta.{k}"
                );
            }
        }
    }
}

/// Keys of the messages `chat.history` returns after two runs, against the capture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_after_runs_has_the_captured_message_shapes() {
    let gw = start(&[], json!({}), &[]).await;
    gw.fake.push(golden_reply());
    gw.fake.push(golden_reply());
    let mut ws = op(&gw, &[]).await;
    agent::chat_turn(&mut ws, "a", "main", "Say hello").await;
    send_json(
        &mut ws,
        &json!({"type": "req", "id": "b", "method": "agent",
            "params": {"message": "Second turn please", "sessionKey": "main", "idempotencyKey": "run-b"}}),
    )
    .await;
    until(&mut ws, |v| {
        v["type"] == "res" && v["id"] == "b" && v["payload"]["status"] == "ok"
    })
    .await;
    let (h, _) = rpc(&mut ws, "h", "chat.history", json!({"sessionKey": "main"})).await;
    let ours = h["payload"]["messages"].as_array().unwrap().clone();
    let (_, rows) = load_golden("chat_history_main_after_agent.jsonl");
    let golden = rows
        .iter()
        .find(|r| r["frame"]["type"] == "res" && r["frame"]["payload"]["messages"].is_array())
        .map(|r| {
            r["frame"]["payload"]["messages"]
                .as_array()
                .unwrap()
                .clone()
        })
        .unwrap();
    assert_eq!(ours.len(), golden.len());
    for (o, g) in ours.iter().zip(&golden) {
        assert_eq!(o["role"], g["role"]);
        assert_eq!(
            key_set(o),
            key_set(g),
            "message keys\nours {o:#}\ngolden {g:#}"
        );
        if g["role"] == "assistant" {
            assert_eq!(key_set(&o["usage"]), key_set(&g["usage"]));
            assert_eq!(o["content"], g["content"]);
            assert_eq!(
                (o["usage"]["input"].clone(), o["usage"]["output"].clone()),
                (json!(10), json!(10))
            );
            assert_eq!(o["api"], g["api"]);
            assert_eq!(o["stopReason"], "stop");
        } else {
            assert_eq!(o["content"], g["content"]);
        }
        // The runtime's part of `__openclaw` (the rest is added by chat.history).
        for k in ["senderIsOwner", "runId"] {
            assert_eq!(
                o["__openclaw"].get(k).is_some(),
                g["__openclaw"].get(k).is_some(),
                "__openclaw.{k}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_inject_broadcasts_a_final_to_every_operator() {
    let gw = start(&[], json!({}), &[]).await;
    gw.fake.push(Reply::new().text("hi"));
    let mut sender = op(&gw, &[]).await;
    agent::chat_turn(&mut sender, "x", "main", "hello").await;
    let mut l0 = op(&gw, &[]).await;
    let mut l1 = op(&gw, &[]).await;
    let (res, early) = rpc(
        &mut sender,
        "inj",
        "chat.inject",
        json!({"sessionKey": "main", "message": "broadcast probe"}),
    )
    .await;
    let message_id = res["payload"]["messageId"].as_str().unwrap().to_owned();
    assert_eq!(res["payload"]["ok"], true);
    let run = format!("inject-{message_id}");
    let (_, rows) = load_golden("chat_inject_broadcast.jsonl");
    let golden = rows
        .iter()
        .find(|r| r["frame"]["event"] == "chat")
        .map(|r| r["frame"]["payload"].clone())
        .unwrap();
    let mine = early
        .iter()
        .find(|v| v["event"] == "chat" && v["payload"]["runId"] == run.as_str())
        .expect("the sender gets the event before its res")
        .clone();
    for ws in [&mut l0, &mut l1] {
        let got = until(ws, |v| {
            v["event"] == "chat" && v["payload"]["runId"] == run.as_str()
        })
        .await;
        assert_eq!(got.last().unwrap()["payload"], mine["payload"]);
    }
    let p = &mine["payload"];
    assert_eq!(key_set(p), key_set(&golden));
    assert_eq!(key_set(&p["message"]), key_set(&golden["message"]));
    assert_eq!(p["seq"], 0);
    assert_eq!(p["state"], "final");
    assert_eq!(p["message"]["model"], "gateway-injected");
    assert_eq!(p["message"]["usage"], golden["message"]["usage"]);
    // The note is in the history but never sent to the model.
    gw.fake.push(Reply::new().text("ok"));
    agent::chat_turn(&mut sender, "y", "main", "next").await;
    let last = gw.fake.model_requests().pop().unwrap();
    assert!(!last.body.to_string().contains("broadcast probe"));
}

fn cli(gw: &agent::Gw, args: &[&str]) -> Command {
    let mut c = Command::new(bin());
    c.args(args)
        .arg("--url")
        .arg(&gw.gw.url)
        .arg(format!("--token={TOKEN}"))
        .arg("--no-device")
        .env("PINCER_STATE_DIR", gw.gw.state_path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pincer_agent_streams_the_reply() {
    let gw = start(&[], json!({}), &[]).await;
    gw.fake.push(
        Reply::new()
            .text("Hello from the agent command.")
            .delay(Duration::from_millis(20)),
    );
    let out = tokio::task::spawn_blocking({
        let mut c = cli(&gw, &["agent", "--message", "hi there"]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "Hello from the agent command."
    );
    // --json prints the final result; a failed run exits 1 with the reason.
    gw.fake.push(Reply::new().text("json reply"));
    let out = tokio::task::spawn_blocking({
        let mut c = cli(
            &gw,
            &[
                "agent",
                "-m",
                "again",
                "--json",
                "--session",
                "agent:main:other",
            ],
        );
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["result"]["payloads"][0]["text"], "json reply");
    assert_eq!(
        v["result"]["meta"]["agentMeta"]["sessionFile"],
        "agent:main:other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pincer_chat_is_interactive_with_commands() {
    let gw = start(&[], json!({}), &[]).await;
    gw.fake.push(Reply::new().text("First answer."));
    let mut child = cli(&gw, &["chat"]).stdin(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello\n/status\n").unwrap();
    drop(stdin); // Ctrl-D
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("First answer."), "{stdout}");
    assert!(stdout.contains("Model: mock/mock-model"), "{stdout}");
    assert!(
        stdout.find("First answer.") < stdout.find("Model:"),
        "in order"
    );
    let mut ws = op(&gw, &[]).await;
    let (h, _) = rpc(&mut ws, "h", "chat.history", json!({"sessionKey": "main"})).await;
    assert!(h["payload"]["messages"].as_array().unwrap().len() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pincer_agent_without_gateway_exits_2() {
    let out = Command::new(bin())
        .args([
            "agent",
            "-m",
            "hi",
            "--url",
            "ws://127.0.0.1:9",
            "--token=x",
            "--no-device",
            "--timeout",
            "2000",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let _ = is_chat_end;
}
