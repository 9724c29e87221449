//! Sessions over RPC: lifecycle with `sessions.changed`, golden shapes of `sessions.list` and
//! `chat.history`, the history cursors, agents and workspaces.

use std::time::Duration;

use pincer_sessions::{SessionEntry, SessionKey, TranscriptEntry};
use pincer_store::{AppendOptions, EnsureSession, Store, StoreOptions};
use pincer_testkit::*;
use serde_json::{json, Value};

use crate::bin;

const T: Duration = Duration::from_secs(10);

async fn rpc(ws: &mut RawWs, id: &str, method: &str, params: Value) -> (Value, Vec<Value>) {
    send_json(
        ws,
        &json!({"type": "req", "id": id, "method": method, "params": params}),
    )
    .await;
    recv_res(ws, id, T).await
}

/// The payload of the first `res` to `method` in a golden capture.
fn golden_payload(file: &str, method: &str) -> Value {
    let (_, rows) = load_golden(file);
    let id = rows
        .iter()
        .find(|r| r["frame"]["method"] == method)
        .map(|r| r["frame"]["id"].clone())
        .unwrap();
    rows.iter()
        .find(|r| r["frame"]["type"] == "res" && r["frame"]["id"] == id)
        .map(|r| r["frame"]["payload"].clone())
        .unwrap()
}

fn keys_without(v: &Value, skip: &[&str]) -> Vec<String> {
    key_set(v)
        .into_iter()
        .filter(|k| !skip.contains(&k.as_str()))
        .collect()
}

const MOCK_CONFIG: &str = "{ agents: { defaults: { model: { primary: 'mock/mock-model' } } }, models: { mode: 'replace', providers: { mock: { baseUrl: 'http://127.0.0.1:9/v1', api: 'openai-completions', models: [ { id: 'mock-model', reasoning: false, contextWindow: 32000 } ] } } } }";

/// Writes sessions/transcripts into the state dir's database (before the gateway starts, or
/// as a second writer of the same database).
async fn seed_store(state: &std::path::Path, f: impl AsyncFnOnce(&Store)) {
    let store = Store::open_in_state_dir(state, StoreOptions::default()).unwrap();
    f(&store).await;
    store.close().await;
}

fn main_key() -> SessionKey {
    SessionKey::canonicalize("main", "main").unwrap()
}

fn message(role: &str, text: &str, ts: i64) -> TranscriptEntry {
    TranscriptEntry::message(
        None,
        ts,
        json!({"role": role, "content": [{"type": "text", "text": text}], "timestamp": ts}),
    )
}

#[tokio::test]
async fn empty_list_and_history_match_the_golden_shapes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pincer.json"), MOCK_CONFIG).unwrap();
    let gw = GatewayProcess::spawn_in(bin(), dir, SpawnOptions::default());
    let (mut ws, _, _) = handshake(&gw.url, golden_connect_params(Some(&gw.token()))).await;
    let (res, _) = rpc(&mut ws, "l1", "sessions.list", json!({})).await;
    let golden = golden_payload("sessions_list.jsonl", "sessions.list");
    let p = &res["payload"];
    assert_eq!(key_set(p), key_set(&golden));
    assert_eq!(p["defaults"], golden["defaults"]);
    assert_eq!(
        (p["count"].clone(), p["totalCount"].clone()),
        (json!(0), json!(0))
    );
    assert_eq!(p["limitApplied"], 100);

    let (res, _) = rpc(&mut ws, "h1", "chat.history", json!({"sessionKey": "main"})).await;
    let golden = golden_payload("chat_history_main.jsonl", "chat.history");
    let p = &res["payload"];
    assert_eq!(key_set(p), key_set(&golden));
    assert_eq!(p["defaults"], golden["defaults"]);
    assert_eq!(key_set(&p["sessionInfo"]), key_set(&golden["sessionInfo"]));
    assert_eq!(p["sessionInfo"]["key"], "agent:main:main");
    assert_eq!(p["sessionKey"], "main");

    // The reference's schema error for chat.history (invalid_params.jsonl).
    let (res, _) = rpc(&mut ws, "x1", "chat.history", json!({"bogus": 1})).await;
    assert_eq!(
        res["error"],
        json!({"code": "INVALID_REQUEST", "message": "invalid chat.history params: must have required property 'sessionKey'; at root: unexpected property 'bogus'"})
    );
}

#[tokio::test]
async fn list_row_and_history_after_a_run_match_the_golden_shapes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("pincer.json"), MOCK_CONFIG).unwrap();
    // The reference's session entry after a turn, and a four-message transcript.
    let sample: SessionEntry = serde_json::from_str(include_str!(
        "../../../../testdata/spec-samples/session-entry.json"
    ))
    .unwrap();
    seed_store(dir.path(), async |store: &Store| {
        let mut req = EnsureSession::at(sample.created_at.unwrap_or(1));
        let mut template = sample.clone();
        template.chat_type = Some("direct".into());
        template.display_name = None;
        template.system_sent = Some(true);
        req.template = Some(template);
        store.ensure_session(&main_key(), req).await.unwrap();
        let mut entries = Vec::new();
        for (i, role) in ["user", "assistant", "user", "assistant"]
            .iter()
            .enumerate()
        {
            entries.push(message(
                role,
                &format!("m{i}"),
                1_795_237_046_192 + i as i64,
            ));
        }
        let opts = AppendOptions {
            chain: true,
            now_ms: 1_795_237_052_934,
            ..Default::default()
        };
        store.append(&main_key(), entries, opts).await.unwrap();
    })
    .await;
    let gw = GatewayProcess::spawn_in(bin(), dir, SpawnOptions::default());
    let (mut ws, _, _) = handshake(&gw.url, golden_connect_params(Some(&gw.token()))).await;

    let (res, _) = rpc(&mut ws, "l1", "sessions.list", json!({})).await;
    let golden = golden_payload("sessions_list_after_agent.jsonl", "sessions.list");
    let p = &res["payload"];
    assert_eq!(key_set(p), key_set(&golden));
    assert_eq!(p["count"], 1);
    let row = &p["sessions"][0];
    let golden_row = &golden["sessions"][0];
    // Documented differences: participants are recorded by the agent loop (none ran here).
    let by_agent_loop = ["participants", "expandedParticipants", "participantCount"];
    assert_eq!(
        keys_without(row, &[]),
        keys_without(golden_row, &by_agent_loop)
    );
    assert_eq!(row["key"], "agent:main:main");
    assert_eq!(row["kind"], "direct");
    assert_eq!(row["classification"], "main");
    assert_eq!(row["status"], json!(sample.status));

    let (res, _) = rpc(&mut ws, "h1", "chat.history", json!({"sessionKey": "main"})).await;
    let golden = golden_payload("chat_history_main_after_agent.jsonl", "chat.history");
    let p = &res["payload"];
    assert_eq!(key_set(p), key_set(&golden));
    assert_eq!(p["totalMessages"], 4);
    assert_eq!(p["hasMore"], false);
    let msgs = p["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 4);
    let meta_keys = |m: &Value| {
        keys_without(
            &m["__openclaw"],
            &["senderIsOwner", "transport", "idempotencyKey", "runId"],
        )
    };
    assert_eq!(meta_keys(&msgs[1]), meta_keys(&golden["messages"][1]));
    let ordinals: Vec<i64> = msgs
        .iter()
        .map(|m| m["__openclaw"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(ordinals, vec![1, 2, 3, 4]);
    assert_eq!(msgs[3]["content"][0]["text"], "m3");
    assert_eq!(
        keys_without(&p["sessionInfo"], &by_agent_loop),
        keys_without(&golden["sessionInfo"], &by_agent_loop)
    );
}

#[tokio::test]
async fn history_pages_back_and_catches_up_with_the_delta_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().to_path_buf();
    seed_store(&state, async |store: &Store| {
        store
            .ensure_session(&main_key(), EnsureSession::at(1))
            .await
            .unwrap();
        let entries = (0..5)
            .map(|i| message("user", &format!("m{i}"), 10 + i))
            .collect();
        let opts = AppendOptions {
            chain: true,
            now_ms: 20,
            ..Default::default()
        };
        store.append(&main_key(), entries, opts).await.unwrap();
    })
    .await;
    let gw = GatewayProcess::spawn_in(bin(), dir, SpawnOptions::default());
    let (mut ws, _, _) = handshake(&gw.url, golden_connect_params(Some(&gw.token()))).await;
    let texts = |p: &Value| -> Vec<String> {
        p["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"][0]["text"].as_str().unwrap().to_string())
            .collect()
    };
    let (res, _) = rpc(
        &mut ws,
        "h1",
        "chat.history",
        json!({"sessionKey": "main", "limit": 2}),
    )
    .await;
    let p = &res["payload"];
    assert_eq!(texts(p), vec!["m3", "m4"]);
    assert_eq!(p["hasMore"], true);
    assert_eq!(p["totalMessages"], 5);
    assert_eq!(p["messages"][0]["__openclaw"]["seq"], 4);
    let delta = p["deltaCursor"].as_str().unwrap().to_string();
    let cursor = p["nextCursor"].as_str().unwrap().to_string();
    let (res, _) = rpc(
        &mut ws,
        "h2",
        "chat.history",
        json!({"sessionKey": "main", "limit": 2, "cursor": cursor}),
    )
    .await;
    let p = &res["payload"];
    assert_eq!(texts(p), vec!["m1", "m2"]);
    assert_eq!(p["messages"][0]["__openclaw"]["seq"], 2);
    let (res, _) = rpc(
        &mut ws,
        "h3",
        "chat.history",
        json!({"sessionKey": "main", "limit": 2, "cursor": p["nextCursor"]}),
    )
    .await;
    assert_eq!(texts(&res["payload"]), vec!["m0"]);
    assert_eq!(res["payload"]["hasMore"], false);

    // Nothing new yet: an empty delta.
    let (res, _) = rpc(
        &mut ws,
        "d1",
        "chat.history",
        json!({"sessionKey": "main", "cursor": delta}),
    )
    .await;
    assert_eq!(res["payload"]["kind"], "delta");
    assert_eq!(texts(&res["payload"]), Vec::<String>::new());
    // Two more messages (appended by another writer of the same database).
    let store = Store::open_in_state_dir(&state, StoreOptions::default()).unwrap();
    let entries = vec![message("user", "m5", 30), message("assistant", "m6", 31)];
    store
        .append(
            &main_key(),
            entries,
            AppendOptions {
                chain: true,
                now_ms: 31,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    store.close().await;
    let (res, _) = rpc(
        &mut ws,
        "d2",
        "chat.history",
        json!({"sessionKey": "main", "cursor": delta}),
    )
    .await;
    assert_eq!(res["payload"]["kind"], "delta");
    assert_eq!(texts(&res["payload"]), vec!["m5", "m6"]);
    assert_eq!(res["payload"]["messages"][1]["__openclaw"]["seq"], 7);
    // After a reset the old cursor says so.
    let (res, _) = rpc(&mut ws, "r1", "sessions.reset", json!({"key": "main"})).await;
    assert_eq!(res["ok"], true, "{res}");
    let (res, _) = rpc(
        &mut ws,
        "d3",
        "chat.history",
        json!({"sessionKey": "main", "cursor": delta}),
    )
    .await;
    assert_eq!(res["payload"]["kind"], "reset");
    let (res, _) = rpc(
        &mut ws,
        "d4",
        "chat.history",
        json!({"sessionKey": "main", "cursor": "garbage"}),
    )
    .await;
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
}

/// Events of `name` among frames.
fn events<'a>(frames: &'a [Value], name: &str) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["event"] == name).collect()
}

/// The first `name` event among `frames` (events that came before a `res`), else the next
/// one from the socket.
async fn event_after(ws: &mut RawWs, frames: &[Value], name: &str) -> Value {
    match events(frames, name).first() {
        Some(f) => (*f).clone(),
        None => next_event(ws, name).await,
    }
}

async fn next_event(ws: &mut RawWs, name: &str) -> Value {
    loop {
        let f = recv(ws, T).await.json();
        if f["event"] == name {
            return f;
        }
    }
}

#[tokio::test]
async fn lifecycle_over_rpc_with_sessions_changed() {
    let gw = GatewayProcess::spawn(bin(), SpawnOptions::default());
    let token = gw.token();
    let (mut ws, _, _) = handshake(&gw.url, golden_connect_params(Some(&token))).await;
    let (mut quiet, _, _) = handshake(&gw.url, golden_connect_params(Some(&token))).await;
    let (res, _) = rpc(&mut ws, "s1", "sessions.subscribe", json!({})).await;
    assert_eq!(res["payload"], json!({"subscribed": true}));

    // reset creates the session (and the agent's workspace, on first use).
    assert!(!gw.state_path().join("workspace").exists());
    let (res, frames) = rpc(&mut ws, "r1", "sessions.reset", json!({"key": "main"})).await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["key"], "agent:main:main");
    let sid = res["payload"]["entry"]["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(gw.state_path().join("workspace").is_dir());
    let changed = event_after(&mut ws, &frames, "sessions.changed").await;
    assert_eq!(changed["payload"]["sessionKey"], "agent:main:main");
    assert_eq!(changed["payload"]["reason"], "create");
    assert_eq!(changed["payload"]["session"]["sessionId"], json!(sid));

    let (res, frames) = rpc(
        &mut ws,
        "p1",
        "sessions.patch",
        json!({"key": "main", "label": "Inbox", "thinkingLevel": "low"}),
    )
    .await;
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["payload"]["entry"]["label"], "Inbox");
    let changed = event_after(&mut ws, &frames, "sessions.changed").await;
    assert_eq!(changed["payload"]["reason"], "patch");
    assert_eq!(changed["payload"]["session"]["label"], "Inbox");
    let (res, _) = rpc(
        &mut ws,
        "p2",
        "sessions.patch",
        json!({"key": "main", "thinkingLevel": "huge"}),
    )
    .await;
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    let (res, _) = rpc(
        &mut ws,
        "p3",
        "sessions.patch",
        json!({"key": "main", "icon": "x"}),
    )
    .await;
    assert_eq!(
        res["error"]["message"],
        "sessions.patch: icon is not supported by Pincer yet"
    );

    let (res, _) = rpc(
        &mut ws,
        "d1",
        "sessions.describe",
        json!({"key": "agent:main:main"}),
    )
    .await;
    assert_eq!(res["payload"]["label"], "Inbox");
    assert_eq!(res["payload"]["thinkingLevel"], "low");
    let (res, _) = rpc(&mut ws, "l1", "sessions.list", json!({"search": "inb"})).await;
    assert_eq!(res["payload"]["count"], 1);
    let (res, _) = rpc(&mut ws, "l2", "sessions.list", json!({"search": "nothing"})).await;
    assert_eq!(res["payload"]["count"], 0);
    let (res, _) = rpc(
        &mut ws,
        "v1",
        "sessions.preview",
        json!({"keys": ["main", "agent:main:other"]}),
    )
    .await;
    assert_eq!(res["payload"]["previews"][0]["status"], "ok");
    assert_eq!(res["payload"]["previews"][1]["status"], "missing");

    let (res, _) = rpc(
        &mut ws,
        "r2",
        "sessions.reset",
        json!({"key": "main", "expectedSessionId": "not-it"}),
    )
    .await;
    assert_eq!(res["error"]["code"], "INVALID_REQUEST");
    let (res, frames) = rpc(
        &mut ws,
        "r3",
        "sessions.reset",
        json!({"key": "main", "reason": "new"}),
    )
    .await;
    assert_ne!(res["payload"]["entry"]["sessionId"], json!(sid));
    assert_eq!(
        res["payload"]["entry"]["label"], "Inbox",
        "user choices carry over"
    );
    let changed = event_after(&mut ws, &frames, "sessions.changed").await;
    assert_eq!(changed["payload"]["reason"], "reset");

    let (res, frames) = rpc(
        &mut ws,
        "x1",
        "sessions.delete",
        json!({"key": "main", "deleteTranscript": true}),
    )
    .await;
    assert_eq!(res["payload"]["deleted"], true, "{res}");
    let changed = event_after(&mut ws, &frames, "sessions.changed").await;
    assert_eq!(changed["payload"]["reason"], "delete");
    let (res, _) = rpc(&mut ws, "l3", "sessions.list", json!({})).await;
    assert_eq!(res["payload"]["totalCount"], 0);
    // The health summary follows (refreshed in the background after each mutation).
    let deadline = std::time::Instant::now() + T;
    while recv_health(&mut ws).await["sessions"]["count"] != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "health kept the deleted session"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The socket that did not subscribe saw no sessions.changed.
    let (res, seen) = rpc(&mut quiet, "q1", "health", json!({})).await;
    assert_eq!(res["ok"], true);
    assert!(events(&seen, "sessions.changed").is_empty(), "{seen:?}");

    // Message subscriptions are canonical and per socket.
    let (res, _) = rpc(
        &mut ws,
        "m1",
        "sessions.messages.subscribe",
        json!({"key": "main"}),
    )
    .await;
    assert_eq!(
        res["payload"],
        json!({"subscribed": true, "key": "agent:main:main"})
    );
    let (res, _) = rpc(
        &mut ws,
        "m2",
        "sessions.messages.unsubscribe",
        json!({"key": "agent:main:main"}),
    )
    .await;
    assert_eq!(res["payload"]["removed"], true);
}

async fn recv_health(ws: &mut RawWs) -> Value {
    let (res, _) = rpc(ws, "hh", "health", json!({})).await;
    res["payload"].clone()
}

#[tokio::test]
async fn health_counts_sessions_from_the_store_per_agent() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pincer.json"),
        "{ agents: { entries: { main: {}, ops: {} } } }",
    )
    .unwrap();
    seed_store(dir.path(), async |store: &Store| {
        for k in ["agent:main:main", "agent:main:direct:bob", "agent:ops:main"] {
            let key = SessionKey::parse(k).unwrap();
            store
                .ensure_session(&key, EnsureSession::at(5))
                .await
                .unwrap();
        }
    })
    .await;
    let gw = GatewayProcess::spawn_in(bin(), dir, SpawnOptions::default());
    let (mut ws, _, hello) = handshake(&gw.url, golden_connect_params(Some(&gw.token()))).await;
    // Already right in the first snapshot.
    let h = &hello["payload"]["snapshot"]["health"];
    assert_eq!(h["sessions"]["count"], 3);
    assert_eq!(h["defaultAgentId"], "main");
    assert_eq!(h["agents"][0]["sessions"]["count"], 2);
    assert_eq!(h["agents"][1]["agentId"], "ops");
    assert_eq!(h["agents"][1]["sessions"]["count"], 1);
    assert_eq!(h["agents"][0]["heartbeat"]["everyMs"], 1_800_000);
    let (status, _) = rpc(&mut ws, "s1", "status", json!({})).await;
    assert_eq!(status["payload"]["sessions"]["count"], 3, "{status}");
}
