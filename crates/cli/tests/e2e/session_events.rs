//! Session events of a run through the real gateway and the fake LLM: `session.message` for
//! every stored message and `session.tool` to `sessions.messages.subscribe` sockets only,
//! `sessions.changed` (run start and end, with the row's active runs) to `sessions.subscribe`
//! sockets, `chat.metadata.changed` to readers; `chat.history` / `sessions.list` run facts.

use std::time::Duration;

use pincer_fakes::llm::{Part, Reply};
use pincer_testkit::*;
use serde_json::{json, Value};

use crate::agent::{is_chat_end, op, rpc, start, until};

fn named<'a>(frames: &'a [Value], event: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["event"] == event).collect()
}

fn position(frames: &[Value], pred: impl Fn(&Value) -> bool) -> usize {
    frames
        .iter()
        .position(pred)
        .unwrap_or_else(|| panic!("frame not found among {frames:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_reaches_subscribers_as_session_events() {
    let gw = start(&[], json!({}), &[]).await;
    gw.fake
        .push(Reply::new().tool_call("call_1", "read", r#"{"path":"USER.md"}"#));
    // A slow answer: the run is still streaming when its start is announced.
    gw.fake.push(Reply {
        parts: vec![Part::Text {
            chunks: vec!["All".into(), " read".into(), ".".into()],
        }],
        ..Reply::new().usage(5, 3).delay(Duration::from_millis(300))
    });
    let mut watcher = op(&gw, &[]).await;
    let mut reader = op(&gw, &[]).await;
    let mut elsewhere = op(&gw, &[]).await;
    let (res, _) = rpc(&mut watcher, "w1", "sessions.subscribe", json!({})).await;
    assert_eq!(res["payload"]["subscribed"], true, "{res}");
    let (res, _) = rpc(
        &mut watcher,
        "w2",
        "sessions.messages.subscribe",
        json!({"key": "main"}),
    )
    .await;
    assert_eq!(res["payload"]["key"], "agent:main:main", "{res}");
    let (res, _) = rpc(
        &mut elsewhere,
        "e1",
        "sessions.messages.subscribe",
        json!({"key": "agent:main:other"}),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");

    let (ack, _) = rpc(
        &mut reader,
        "c1",
        "chat.send",
        json!({"sessionKey": "main", "message": "read my file", "idempotencyKey": "run-ev"}),
    )
    .await;
    assert_eq!(ack["payload"]["runId"], "run-ev", "{ack}");
    let seen = until(&mut watcher, |v| is_chat_end(v, "run-ev")).await;
    // `sessions.changed` of the run's end comes after its terminal events.
    let mut after = Vec::new();
    while named(&after, "sessions.changed")
        .iter()
        .all(|c| c["payload"]["phase"] != "end")
    {
        after.push(recv(&mut watcher, crate::agent::T).await.json());
    }

    // Every stored message, in transcript order, with its ordinal and entry id.
    let messages = named(&seen, "session.message");
    let roles: Vec<&str> = messages
        .iter()
        .map(|m| m["payload"]["message"]["role"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        roles,
        ["user", "assistant", "toolResult", "assistant"],
        "{messages:#?}"
    );
    for (i, m) in messages.iter().enumerate() {
        let p = &m["payload"];
        assert_eq!(p["sessionKey"], "agent:main:main");
        assert_eq!(p["agentId"], "main");
        assert_eq!(p["messageSeq"], json!(i + 1));
        assert_eq!(p["message"]["__openclaw"]["seq"], json!(i + 1));
        assert!(p["messageId"].as_str().is_some_and(|id| !id.is_empty()));
        assert_eq!(p["message"]["__openclaw"]["id"], p["messageId"]);
    }
    let user = &messages[0]["payload"];
    assert_eq!(user["message"]["content"], "read my file");
    assert_eq!(user["senderIsOwner"], true);
    assert_eq!(user["message"]["idempotencyKey"], "run-ev:user");
    assert_eq!(
        messages[1]["payload"]["message"]["content"][0]["type"],
        "toolCall"
    );
    assert_eq!(messages[2]["payload"]["message"]["toolCallId"], "call_1");
    assert_eq!(
        messages[3]["payload"]["message"]["content"][0]["text"],
        "All read."
    );
    // In step with the run: the user row before the model starts, the answer before `final`.
    let user_at = position(&seen, |f| f["event"] == "session.message");
    let model_at = position(&seen, |f| {
        f["event"] == "agent" && f["payload"]["data"]["phase"] == "model"
    });
    let answer_at = position(&seen, |f| {
        f["event"] == "session.message" && f["payload"]["messageSeq"] == 4
    });
    let final_at = position(&seen, |f| is_chat_end(f, "run-ev"));
    assert!(user_at < model_at && answer_at < final_at);

    // The tool's progress as session.tool (this socket has no tool-events capability).
    let tools = named(&seen, "session.tool");
    let phases: Vec<&str> = tools
        .iter()
        .map(|t| t["payload"]["data"]["phase"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(phases, ["start", "result"], "{tools:#?}");
    assert_eq!(tools[0]["payload"]["runId"], "run-ev");
    assert_eq!(tools[0]["payload"]["data"]["args"]["path"], "USER.md");
    assert!(
        named(&seen, "agent")
            .iter()
            .all(|a| a["payload"]["stream"] != "tool"),
        "the tool stream is only for tool-events clients"
    );

    // sessions.changed: running while it streams, idle after (in that order).
    let changes: Vec<&Value> = seen
        .iter()
        .chain(after.iter())
        .filter(|f| f["event"] == "sessions.changed")
        .collect();
    let phases: Vec<&str> = changes
        .iter()
        .map(|c| c["payload"]["phase"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(phases, ["start", "end"], "{changes:#?}");
    let started = changes[0];
    let p = &started["payload"];
    assert_eq!(
        (p["sessionKey"].clone(), p["runId"].clone()),
        (json!("agent:main:main"), json!("run-ev"))
    );
    assert_eq!(p["session"]["key"], "agent:main:main");
    assert_eq!(p["session"]["hasActiveRun"], true, "{p}");
    assert_eq!(p["session"]["activeRunIds"], json!(["run-ev"]));
    let ended = named(&after, "sessions.changed")
        .into_iter()
        .find(|c| c["payload"]["phase"] == "end")
        .unwrap();
    assert_eq!(ended["payload"]["runId"], "run-ev");
    assert_eq!(ended["payload"]["session"]["hasActiveRun"], false);
    assert_eq!(ended["payload"]["session"]["activeRunIds"], json!([]));
    assert_eq!(ended["payload"]["session"]["status"], "done");

    // The messages are exactly what chat.history shows afterwards.
    let (history, _) = rpc(
        &mut watcher,
        "h1",
        "chat.history",
        json!({"sessionKey": "main"}),
    )
    .await;
    let stored = history["payload"]["messages"].as_array().unwrap();
    let announced: Vec<Value> = messages
        .iter()
        .map(|m| m["payload"]["message"].clone())
        .collect();
    assert_eq!(stored, &announced);

    // A reader without subscriptions: the run and chat.metadata.changed, no session events.
    let plain = until(&mut reader, |v| is_chat_end(v, "run-ev")).await;
    let metadata_at = position(&plain, |f| f["event"] == "chat.metadata.changed");
    assert_eq!(plain[metadata_at]["payload"], json!({}));
    let first_chat = position(&plain, |f| f["event"] == "chat");
    assert!(metadata_at < first_chat);
    for event in ["session.message", "session.tool", "sessions.changed"] {
        assert!(named(&plain, event).is_empty(), "{event} reached a reader");
    }
    // A socket subscribed to another session hears the run as a reader, nothing more.
    let (_, other) = rpc(&mut elsewhere, "e2", "health", json!({})).await;
    assert!(other.iter().any(|f| is_chat_end(f, "run-ev")), "{other:#?}");
    assert!(named(&other, "session.message").is_empty());
    assert!(named(&other, "session.tool").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_list_show_the_active_run() {
    let gw = start(&[], json!({}), &[]).await;
    gw.fake.push(
        Reply::new()
            .text("a slow answer that takes its time to arrive")
            .delay(Duration::from_millis(150)),
    );
    let mut sender = op(&gw, &[]).await;
    let mut probe = op(&gw, &[]).await;
    let (ack, _) = rpc(
        &mut sender,
        "c1",
        "chat.send",
        json!({"sessionKey": "main", "message": "go slowly", "idempotencyKey": "run-slow"}),
    )
    .await;
    assert_eq!(ack["ok"], true, "{ack}");
    // Once the model speaks, the run is active in every view of the session.
    until(&mut sender, |v| {
        v["event"] == "chat" && v["payload"]["state"] == "delta"
    })
    .await;
    let (history, _) = rpc(
        &mut probe,
        "h1",
        "chat.history",
        json!({"sessionKey": "main"}),
    )
    .await;
    let info = &history["payload"]["sessionInfo"];
    assert_eq!(info["hasActiveRun"], true, "{info}");
    assert_eq!(info["activeRunIds"], json!(["run-slow"]));
    let (list, _) = rpc(
        &mut probe,
        "l1",
        "sessions.list",
        json!({"activeOnly": true}),
    )
    .await;
    let rows = list["payload"]["sessions"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["key"], "agent:main:main");
    assert_eq!(rows[0]["activeRunIds"], json!(["run-slow"]));

    until(&mut sender, |v| is_chat_end(v, "run-slow")).await;
    // After the terminal event the session shows idle at once.
    let (history, _) = rpc(
        &mut sender,
        "h2",
        "chat.history",
        json!({"sessionKey": "main"}),
    )
    .await;
    let info = &history["payload"]["sessionInfo"];
    assert_eq!(info["hasActiveRun"], false, "{info}");
    assert_eq!(info["activeRunIds"], json!([]));
    let (list, _) = rpc(
        &mut sender,
        "l2",
        "sessions.list",
        json!({"activeOnly": true}),
    )
    .await;
    assert_eq!(list["payload"]["count"], 0, "{list}");
    let (list, _) = rpc(&mut sender, "l3", "sessions.list", json!({})).await;
    assert_eq!(list["payload"]["sessions"][0]["hasActiveRun"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_create_makes_a_session_and_can_start_its_first_turn() {
    let gw = start(&[], json!({}), &[]).await;
    gw.fake.push(Reply::new().text("Welcome aboard."));
    let mut ws = op(&gw, &[]).await;
    let (res, _) = rpc(
        &mut ws,
        "c1",
        "sessions.create",
        json!({"key": "planning", "label": "Planning", "thinkingLevel": "low",
               "message": "hello there", "idempotencyKey": "run-create"}),
    )
    .await;
    let p = &res["payload"];
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(p["key"], "agent:main:planning");
    assert_eq!(p["entry"]["label"], "Planning");
    assert_eq!(p["entry"]["thinkingLevel"], "low");
    assert_eq!(p["sessionId"], p["entry"]["sessionId"]);
    assert_eq!(
        (p["runStarted"].clone(), p["runId"].clone()),
        (json!(true), json!("run-create"))
    );
    assert_eq!(p["resolved"]["model"], "mock-model");
    let frames = until(&mut ws, |v| is_chat_end(v, "run-create")).await;
    let end = frames.last().unwrap();
    assert_eq!(end["payload"]["state"], "final", "{end}");
    assert_eq!(end["payload"]["sessionKey"], "agent:main:planning");
    let (history, _) = rpc(
        &mut ws,
        "h1",
        "chat.history",
        json!({"sessionKey": "agent:main:planning"}),
    )
    .await;
    let texts: Vec<String> = history["payload"]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].to_string())
        .collect();
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[0].contains("hello there") && texts[1].contains("Welcome aboard."));

    // Without a key: a fresh dashboard session of the agent, no run.
    let (res, _) = rpc(
        &mut ws,
        "c2",
        "sessions.create",
        json!({"label": "Scratch"}),
    )
    .await;
    let key = res["payload"]["key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(key.starts_with("agent:main:dashboard:"), "{res}");
    assert_eq!(res["payload"]["runStarted"], false);
    let (list, _) = rpc(&mut ws, "l1", "sessions.list", json!({"label": "Scratch"})).await;
    assert_eq!(list["payload"]["sessions"][0]["key"], json!(key));

    // An existing key, a bad override and an unsupported field are refused.
    let (res, _) = rpc(&mut ws, "c3", "sessions.create", json!({"key": "planning"})).await;
    assert_eq!(res["error"]["code"], "INVALID_REQUEST", "{res}");
    assert_eq!(res["error"]["details"]["reason"], "SESSION_EXISTS");
    let (res, _) = rpc(
        &mut ws,
        "c4",
        "sessions.create",
        json!({"key": "other", "thinkingLevel": "huge"}),
    )
    .await;
    assert_eq!(res["error"]["code"], "INVALID_REQUEST", "{res}");
    let (res, _) = rpc(
        &mut ws,
        "c5",
        "sessions.create",
        json!({"key": "other", "parentSessionKey": "main"}),
    )
    .await;
    assert_eq!(res["error"]["code"], "INVALID_REQUEST", "{res}");
    let (list, _) = rpc(&mut ws, "l2", "sessions.list", json!({"search": "other"})).await;
    assert_eq!(
        list["payload"]["count"], 0,
        "refused creates leave nothing: {list}"
    );
}
