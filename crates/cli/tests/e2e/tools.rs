//! Built-in tools through the real agent loop (issue 6): the `pincer` binary, the scripted
//! fake LLM emitting tool calls, results read from the `tool` stream (`tool-events` cap) and
//! from the files, processes and sockets the tools touched. File tools and path escapes, exec
//! in the foreground and background with `process`, `web_fetch` against a local server with
//! the SSRF guard, session tools (list/history/send/spawn/status), memory search/get, the
//! tool policy from config with `tools.catalog`/`tools.effective`, and a sandboxed session.

use std::sync::Arc;
use std::time::Duration;

use pincer_fakes::http::{FakeHttpServer, Handler, Reply as HttpReply, Request, Response};
use pincer_fakes::llm::{FakeLlm, Reply};
use pincer_testkit::*;
use serde_json::{json, Value};

use crate::agent::{
    chat_turn, is_chat_end, of_run, op, provider_config, rpc, start_with, until, Gw,
};

/// A gateway on the fake provider with `extra` merged into its config.
pub async fn gateway(extra: Value) -> Gw {
    let fake = FakeLlm::start().await.unwrap();
    let mut config = provider_config(&fake, json!({}));
    config["agents"] = json!({"defaults": {"model": {"primary": "mock/mock-model"}}});
    merge(&mut config, extra);
    start_with(config, &[], fake).await
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// The agent's workspace (created the way the gateway would, so files can be placed first).
pub fn workspace(gw: &Gw) -> std::path::PathBuf {
    let ws = gw.gw.state_path().join("workspace");
    std::fs::create_dir_all(&ws).unwrap();
    ws
}

/// One tool result of a run's `tool` stream.
#[derive(Debug, Clone)]
pub struct ToolResult {
    pub name: String,
    pub is_error: bool,
    pub text: String,
    pub details: Value,
}

/// Tool results of `run`, in call order.
pub fn tool_results(frames: &[Value], run: &str) -> Vec<ToolResult> {
    of_run(frames, run)
        .into_iter()
        .filter(|f| f["payload"]["stream"] == "tool" && f["payload"]["data"]["phase"] == "result")
        .map(|f| {
            let d = &f["payload"]["data"];
            ToolResult {
                name: d["name"].as_str().unwrap_or_default().to_owned(),
                is_error: d["isError"] == true,
                text: d["result"]["content"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|b| b["text"].as_str())
                    .collect::<Vec<_>>()
                    .join("\n"),
                details: d["result"]["details"].clone(),
            }
        })
        .collect()
}

/// Sends `message` to `session` and returns the run's tool results (after its final event).
pub async fn run_tools(ws: &mut RawWs, id: &str, session: &str, message: &str) -> Vec<ToolResult> {
    let (ack, frames) = chat_turn(ws, id, session, message).await;
    assert_eq!(ack["ok"], true, "{ack}");
    let end = frames
        .iter()
        .rev()
        .find(|f| is_chat_end(f, &format!("run-{id}")));
    assert_eq!(
        end.map(|e| e["payload"]["state"].clone()),
        Some(json!("final")),
        "{frames:#?}"
    );
    tool_results(&frames, &format!("run-{id}"))
}

fn calls(reply: Reply, calls: &[(&str, Value)]) -> Reply {
    calls
        .iter()
        .enumerate()
        .fold(reply, |r, (i, (name, args))| {
            r.tool_call(&format!("call_{i}_{name}"), name, &args.to_string())
        })
}

/// One model turn that makes `list` tool calls, then a closing text turn.
fn script(gw: &Gw, list: &[(&str, Value)]) {
    gw.fake.push(calls(Reply::new(), list));
    gw.fake.push(Reply::new().text("Done."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_tools_and_path_escapes() {
    let gw = gateway(json!({})).await;
    let ws_dir = workspace(&gw);
    let outside = gw.gw.state_path().join("outside.txt");
    std::fs::write(&outside, "TOP SECRET").unwrap();
    std::os::unix::fs::symlink(&outside, ws_dir.join("link.txt")).unwrap();
    let patch = "*** Begin Patch\n*** Add File: docs/plan.md\n+# Plan\n+ship it\n*** End Patch";
    script(
        &gw,
        &[
            (
                "write",
                json!({"path": "notes/today.txt", "content": "alpha\nbeta\n"}),
            ),
            ("read", json!({"path": "notes/today.txt"})),
            (
                "edit",
                json!({"path": "notes/today.txt", "edits": [{"oldText": "beta", "newText": "gamma"}]}),
            ),
            ("apply_patch", json!({"input": patch})),
            ("read", json!({"path": "../outside.txt"})),
            ("read", json!({"path": outside.to_string_lossy()})),
            ("read", json!({"path": "link.txt"})),
            ("write", json!({"path": "../escaped.txt", "content": "x"})),
        ],
    );
    let mut ws = op(&gw, &["tool-events"]).await;
    let r = run_tools(&mut ws, "f1", "main", "work with files").await;
    assert_eq!(r.len(), 8, "{r:#?}");
    let names: Vec<&str> = r.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "write",
            "read",
            "edit",
            "apply_patch",
            "read",
            "read",
            "read",
            "write"
        ]
    );
    for (i, ok) in r.iter().take(4).enumerate() {
        assert!(!ok.is_error, "call {i}: {ok:?}");
    }
    assert!(
        r[1].text.contains("alpha") && r[1].text.contains("beta"),
        "{:?}",
        r[1]
    );
    assert_eq!(
        std::fs::read_to_string(ws_dir.join("notes/today.txt")).unwrap(),
        "alpha\ngamma\n"
    );
    assert_eq!(
        std::fs::read_to_string(ws_dir.join("docs/plan.md")).unwrap(),
        "# Plan\nship it\n"
    );
    // `..`, an absolute path elsewhere, a symlink out of the workspace, a write out of it:
    // readable refusals, nothing read or written.
    for (i, label) in [
        (4, "dot-dot"),
        (5, "absolute"),
        (6, "symlink"),
        (7, "write"),
    ] {
        assert!(r[i].is_error, "{label}: {:?}", r[i]);
        assert!(!r[i].text.contains("TOP SECRET"), "{label}: {:?}", r[i]);
        assert!(
            r[i].text.to_lowercase().contains("outside the workspace")
                || r[i].text.to_lowercase().contains("escape")
                || r[i].text.to_lowercase().contains("not allowed"),
            "{label}: the refusal says why: {:?}",
            r[i]
        );
    }
    assert!(!gw.gw.state_path().join("escaped.txt").exists());
    // The model got the same refusal texts.
    let last = gw.fake.model_requests().last().unwrap().body.to_string();
    assert!(!last.contains("TOP SECRET"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_foreground_background_and_process() {
    let gw = gateway(json!({})).await;
    let ws_dir = workspace(&gw);
    script(
        &gw,
        &[
            ("exec", json!({"command": "echo fg-$((6*7)) && pwd"})),
            (
                "exec",
                json!({"command": "sleep 0.4; echo bg-done", "background": true}),
            ),
            ("exec", json!({"command": "exit 3"})),
        ],
    );
    let mut ws = op(&gw, &["tool-events"]).await;
    let r = run_tools(&mut ws, "x1", "main", "run things").await;
    assert_eq!(r.len(), 3, "{r:#?}");
    assert!(!r[0].is_error && r[0].text.contains("fg-42"), "{:?}", r[0]);
    assert!(
        r[0].text
            .contains(&ws_dir.canonicalize().unwrap().to_string_lossy().to_string()),
        "exec starts in the workspace: {:?}",
        r[0]
    );
    assert!(r[1].text.contains("still running"), "{:?}", r[1]);
    let job = r[1].details["sessionId"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| {
            r[1].text
                .split_whitespace()
                .find(|w| w.starts_with("exec-"))
                .map(|w| {
                    w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-')
                        .to_owned()
                })
        })
        .expect("a background session id");
    assert!(r[2].is_error && r[2].text.contains("code 3"), "{:?}", r[2]);

    // A second turn polls the background job by its id, then lists the jobs.
    script(
        &gw,
        &[
            (
                "process",
                json!({"action": "poll", "sessionId": job, "timeout": 5000}),
            ),
            ("process", json!({"action": "list"})),
        ],
    );
    let r = run_tools(&mut ws, "x2", "main", "check on it").await;
    assert!(
        !r[0].is_error && r[0].text.contains("bg-done"),
        "{:?}",
        r[0]
    );
    assert!(r[1].text.contains(&job), "{:?}", r[1]);
}

/// A local web server: `/page` is HTML, `/redirect` points at another loopback port.
struct Site {
    redirect_to: String,
}

impl Handler for Site {
    fn handle(&self, request: Request) -> HttpReply {
        match request.path.as_str() {
            "/page" => Response::full(
                200,
                "text/html; charset=utf-8",
                "<html><head><title>Pincer page</title></head><body><h1>Hello pincer</h1>\
                 <p>The answer is <b>42</b>.</p><script>alert(1)</script></body></html>",
            )
            .into(),
            "/redirect" => Response::full(302, "text/plain", "moved")
                .with_header("location", &self.redirect_to)
                .into(),
            _ => Response::full(404, "text/plain", "no").into(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_fetch_reaches_the_allowed_server_and_refuses_internal_addresses() {
    // The redirect goes to the fake LLM's port: loopback, but not the allowed endpoint.
    let fake = FakeLlm::start().await.unwrap();
    let internal = format!("http://127.0.0.1:{}/v1/models", fake.addr().port());
    let site = FakeHttpServer::start(
        Arc::new(Site {
            redirect_to: internal.clone(),
        }),
        Default::default(),
    )
    .await
    .unwrap();
    let allowed = format!("127.0.0.1:{}", site.addr().port());
    let mut config = provider_config(&fake, json!({}));
    config["agents"] = json!({"defaults": {"model": {"primary": "mock/mock-model"}}});
    config["tools"] = json!({"web": {"fetch": {"ssrfPolicy": {"allowedEndpoints": [allowed]}}}});
    let gw = start_with(config, &[], fake).await;
    let base = format!("http://{allowed}");
    script(
        &gw,
        &[
            ("web_fetch", json!({"url": format!("{base}/page")})),
            ("web_fetch", json!({"url": internal})),
            ("web_fetch", json!({"url": "http://10.1.2.3/admin"})),
            ("web_fetch", json!({"url": format!("{base}/redirect")})),
            (
                "web_fetch",
                json!({"url": "http://169.254.169.254/latest/meta-data/"}),
            ),
        ],
    );
    let mut ws = op(&gw, &["tool-events"]).await;
    let r = run_tools(&mut ws, "w1", "main", "fetch").await;
    assert_eq!(r.len(), 5, "{r:#?}");
    assert!(!r[0].is_error, "{:?}", r[0]);
    assert!(
        r[0].text.contains("Hello pincer") && r[0].text.contains("42"),
        "{:?}",
        r[0]
    );
    assert!(
        !r[0].text.contains("alert(1)"),
        "scripts are dropped: {:?}",
        r[0]
    );
    for (i, what) in [
        (1, "loopback"),
        (2, "10.x"),
        (3, "redirect to loopback"),
        (4, "metadata"),
    ] {
        assert!(r[i].is_error, "{what}: {:?}", r[i]);
        assert!(r[i].text.contains("SSRF"), "{what}: {:?}", r[i]);
    }
    // The redirect target was never contacted: the fake LLM saw no /v1/models request.
    assert!(
        !gw.fake.requests().iter().any(|q| q.path.contains("models")),
        "the refused hop was not fetched"
    );
    drop(site);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_tools_send_list_history_and_status() {
    let gw = gateway(json!({})).await;
    // main → helper (waits for its reply) → then reads the helper's session.
    gw.fake.push(Reply::new().tool_call(
        "call_send",
        "sessions_send",
        &json!({"sessionKey": "agent:main:helper", "message": "what is 6*7?", "timeoutSeconds": 30})
            .to_string(),
    ));
    gw.fake.push(Reply::new().text("42, says the helper"));
    gw.fake.push(calls(
        Reply::new(),
        &[
            ("sessions_list", json!({})),
            (
                "sessions_history",
                json!({"sessionKey": "agent:main:helper"}),
            ),
            ("session_status", json!({})),
            ("session_status", json!({"sessionKey": "agent:main:helper"})),
        ],
    ));
    gw.fake.push(Reply::new().text("All done."));
    let mut ws = op(&gw, &["tool-events"]).await;
    let r = run_tools(&mut ws, "s1", "main", "ask the helper").await;
    assert_eq!(r.len(), 5, "{r:#?}");
    let sent: Value = serde_json::from_str(&r[0].text).unwrap();
    assert_eq!(sent["status"], "ok", "{sent}");
    assert_eq!(sent["reply"], "42, says the helper");
    assert_eq!(sent["sessionKey"], "agent:main:helper");
    let listed: Value = serde_json::from_str(&r[1].text).unwrap();
    let keys: Vec<&str> = listed["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["key"].as_str())
        .collect();
    assert!(
        keys.contains(&"agent:main:helper") && keys.contains(&"agent:main:main"),
        "{keys:?}"
    );
    let history: Value = serde_json::from_str(&r[2].text).unwrap();
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["text"].as_str())
        .collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains("[Inter-session message from agent:main:main")),
        "{texts:?}"
    );
    assert!(texts.contains(&"42, says the helper"), "{texts:?}");
    let status: Value = serde_json::from_str(&r[3].text).unwrap();
    assert_eq!(status["sessionKey"], "agent:main:main");
    assert_eq!(status["model"], "mock/mock-model");
    assert!(status["statusText"].as_str().unwrap().contains("Pincer"));
    let helper: Value = serde_json::from_str(&r[4].text).unwrap();
    assert_eq!(helper["sessionKey"], "agent:main:helper");
    assert_eq!(helper["lastRunStatus"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_spawn_runs_a_subagent_and_announces_its_result() {
    // Followup queueing: the announced result is a parent turn of its own whether the child
    // ends before or after the parent's turn (under the default `steer` a child that ends
    // first is folded into the running turn at its next boundary).
    let gw = gateway(json!({"messages": {"queue": {"mode": "followup"}}})).await;
    gw.fake.push(
        Reply::new().tool_call(
            "call_spawn",
            "sessions_spawn",
            &json!({"task": "count the files", "label": "counter", "model": "mock/backup-model"})
                .to_string(),
        ),
    );
    gw.fake.push(Reply::new().text("Spawned a counter."));
    // The child runs on the backup model (its own queue, so the order is deterministic).
    gw.fake
        .push_for_model("backup-model", Reply::new().text("There are 3 files."));
    // The parent's turn for the announced result.
    gw.fake
        .push(Reply::new().text("The counter reported back."));
    let mut ws = op(&gw, &["tool-events"]).await;
    let (_, frames) = chat_turn(&mut ws, "p1", "main", "count files in the background").await;
    let r = tool_results(&frames, "run-p1");
    let accepted: Value = serde_json::from_str(&r[0].text).unwrap();
    assert_eq!(accepted["status"], "accepted", "{accepted}");
    let child = accepted["childSessionKey"].as_str().unwrap().to_owned();
    assert!(child.starts_with("agent:main:subagent:"), "{child}");
    assert_eq!(accepted["spawnDepth"], 1);

    // The announced result starts a parent turn; wait for its final answer.
    let seen = until(&mut ws, |v| {
        v["event"] == "chat"
            && v["payload"]["sessionKey"] == "agent:main:main"
            && v["payload"]["state"] == "final"
            && v["payload"]["message"]["content"][0]["text"] == "The counter reported back."
    })
    .await;
    assert!(!seen.is_empty());
    // The parent model saw the child's answer in a [Subagent Result] message.
    let requests = gw.fake.model_requests();
    let announce = requests
        .iter()
        .find(|q| {
            q.body["model"] == "mock-model" && q.body.to_string().contains("There are 3 files.")
        })
        .expect("the parent got the result");
    let body = announce.body.to_string();
    assert!(
        body.contains("[Subagent Result]") && body.contains(&format!("Sub-agent counter ({child}")),
        "{body}"
    );
    // The child ran with its task, on its own model.
    let child_req = requests
        .iter()
        .find(|q| q.body["model"] == "backup-model")
        .expect("the child's model call");
    assert!(child_req.body.to_string().contains("[Subagent Task]"));

    // Lineage on the child's session row.
    let (res, _) = rpc(&mut ws, "l1", "sessions.list", json!({})).await;
    let rows = res["payload"]["sessions"].as_array().unwrap();
    let row = rows
        .iter()
        .find(|s| s["key"] == child.as_str())
        .expect("child row");
    assert_eq!(row["spawnedBy"], "agent:main:main", "{row}");
    assert_eq!(row["parentSessionKey"], "agent:main:main");
    assert_eq!(row["spawnDepth"], 1);
    assert_eq!(row["label"], "counter");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_search_and_get_over_the_workspace_memory() {
    let gw = gateway(json!({})).await;
    let ws_dir = workspace(&gw);
    std::fs::create_dir_all(ws_dir.join("memory")).unwrap();
    std::fs::write(
        ws_dir.join("memory/ops.md"),
        "# Operations\n\nWe deploy with the blue-green script every Friday.\n\n## Pets\n\nThe office cat is called Miso.\n",
    )
    .unwrap();
    std::fs::write(
        ws_dir.join("MEMORY.md"),
        "# Memory\n\nThe user prefers tea.\n",
    )
    .unwrap();
    script(
        &gw,
        &[
            ("memory_search", json!({"query": "how do we deploy"})),
            (
                "memory_get",
                json!({"path": "memory/ops.md", "from": 7, "lines": 1}),
            ),
            ("memory_search", json!({"query": "cat name"})),
            ("memory_get", json!({"path": "../pincer.json"})),
        ],
    );
    let mut ws = op(&gw, &["tool-events"]).await;
    let r = run_tools(&mut ws, "m1", "main", "remember").await;
    let found: Value = serde_json::from_str(&r[0].text).unwrap();
    let first = &found["results"][0];
    assert_eq!(first["path"], "memory/ops.md", "{found}");
    assert!(first["snippet"].as_str().unwrap().contains("blue-green"));
    assert_eq!(first["startLine"], 1);
    let got: Value = serde_json::from_str(&r[1].text).unwrap();
    assert!(got.to_string().contains("Miso"), "{got}");
    let cat: Value = serde_json::from_str(&r[2].text).unwrap();
    assert!(
        cat["results"][0]["snippet"]
            .as_str()
            .unwrap()
            .contains("Miso"),
        "{cat}"
    );
    assert!(
        r[3].is_error,
        "memory_get stays in the workspace: {:?}",
        r[3]
    );

    // A changed file is re-indexed on the next search.
    std::fs::write(
        ws_dir.join("MEMORY.md"),
        "# Memory\n\nThe user switched to coffee.\n",
    )
    .unwrap();
    script(&gw, &[("memory_search", json!({"query": "coffee"}))]);
    let r = run_tools(&mut ws, "m2", "main", "remember again").await;
    let found: Value = serde_json::from_str(&r[0].text).unwrap();
    assert_eq!(found["results"][0]["path"], "MEMORY.md", "{found}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_policy_from_config_and_the_tools_methods() {
    let gw = gateway(json!({
        "tools": {"deny": ["web_fetch"]},
        "agents": {"entries": {"main": {"tools": {"deny": ["process"]}}}}
    }))
    .await;
    script(
        &gw,
        &[("web_fetch", json!({"url": "https://example.com/"}))],
    );
    let mut ws = op(&gw, &["tool-events"]).await;
    let r = run_tools(&mut ws, "t1", "main", "fetch").await;
    assert!(
        r[0].is_error && r[0].text.contains("web_fetch"),
        "{:?}",
        r[0]
    );
    // The model was not offered the denied tools.
    let offered: Vec<String> = gw.fake.model_requests()[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["function"]["name"].as_str().map(str::to_owned))
        .collect();
    assert!(offered.contains(&"exec".to_string()), "{offered:?}");
    assert!(
        !offered.contains(&"web_fetch".to_string()) && !offered.contains(&"process".to_string())
    );

    let (res, _) = rpc(&mut ws, "c1", "tools.catalog", json!({})).await;
    let p = &res["payload"];
    assert_eq!(p["agentId"], "main", "{res}");
    let profiles: Vec<&str> = p["profiles"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["id"].as_str())
        .collect();
    assert_eq!(profiles, ["minimal", "coding", "messaging", "full"]);
    let fs = p["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["id"] == "fs")
        .unwrap();
    let read = fs["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == "read")
        .unwrap();
    assert_eq!(read["source"], "core");
    assert!(read["defaultProfiles"]
        .as_array()
        .unwrap()
        .contains(&json!("coding")));
    // The catalog lists every registered tool, the effective set only the allowed ones.
    let all: Vec<&str> = p["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| {
            g["tools"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|t| t["id"].as_str())
        })
        .collect();
    assert!(all.contains(&"web_fetch"));

    let (res, _) = rpc(
        &mut ws,
        "e1",
        "tools.effective",
        json!({"sessionKey": "main"}),
    )
    .await;
    let p = &res["payload"];
    assert_eq!(p["agentId"], "main", "{res}");
    assert_eq!(p["profile"], "full");
    let ids: Vec<&str> = p["groups"][0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert!(
        ids.contains(&"exec") && !ids.contains(&"web_fetch") && !ids.contains(&"process"),
        "{ids:?}"
    );
    let notice = p["notices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "policy")
        .unwrap();
    assert!(notice["message"]
        .as_str()
        .unwrap()
        .contains("agents.entries.main.tools.deny"));
    let (res, _) = rpc(&mut ws, "e2", "tools.effective", json!({})).await;
    assert_eq!(
        res["error"]["message"],
        "invalid tools.effective params: must have required property 'sessionKey'",
        "{res}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sandboxed_session_cannot_read_outside_its_workspace_nor_open_a_socket() {
    let gw = gateway(json!({"agents": {"defaults": {"sandbox": {"mode": "non-main"}}}})).await;
    let ws_dir = workspace(&gw);
    let secret = gw.gw.state_path().join("secret.txt");
    std::fs::write(&secret, "TOP SECRET").unwrap();
    let llm_port = gw.fake.addr().port();
    let secret_path = secret.to_string_lossy().to_string();
    script(
        &gw,
        &[
            (
                "exec",
                json!({"command": "echo inside > in.txt && cat in.txt"}),
            ),
            ("exec", json!({"command": format!("cat {secret_path}")})),
            (
                "exec",
                json!({"command": "ls ~ /root /home 2>&1; cat /etc/shadow 2>&1; true"}),
            ),
            (
                "exec",
                json!({"command": format!("exec 3<>/dev/tcp/127.0.0.1/{llm_port} && echo CONNECTED")}),
            ),
            ("read", json!({"path": "../secret.txt"})),
            ("read", json!({"path": secret_path})),
            ("exec", json!({"command": "echo hi", "host": "gateway"})),
        ],
    );
    let mut ws = op(&gw, &["tool-events"]).await;
    let r = run_tools(&mut ws, "b1", "agent:main:sandboxed", "poke around").await;
    assert_eq!(r.len(), 7, "{r:#?}");
    assert!(!r[0].is_error && r[0].text.contains("inside"), "{:?}", r[0]);
    assert!(
        ws_dir.join("in.txt").exists(),
        "the workspace is bound read-write"
    );
    assert!(
        r[1].is_error && !r[1].text.contains("TOP SECRET"),
        "{:?}",
        r[1]
    );
    assert!(
        r[1].text.contains("No such file"),
        "the state dir is absent: {:?}",
        r[1]
    );
    assert!(!r[2].text.contains("root:"), "{:?}", r[2]);
    assert!(
        r[3].is_error && !r[3].text.contains("CONNECTED"),
        "no network: {:?}",
        r[3]
    );
    assert!(
        r[4].is_error && !r[4].text.contains("TOP SECRET"),
        "{:?}",
        r[4]
    );
    assert!(
        r[5].is_error && !r[5].text.contains("TOP SECRET"),
        "{:?}",
        r[5]
    );
    assert!(r[6].is_error && r[6].text.contains("sandbox"), "{:?}", r[6]);
    // The fake LLM never saw a connection from the sandbox (only the model calls).
    assert_eq!(gw.fake.requests().len(), 2);

    // The main session is not sandboxed: the same file is readable there.
    script(
        &gw,
        &[("exec", json!({"command": format!("cat {secret_path}")}))],
    );
    let r = run_tools(&mut ws, "b2", "main", "read it").await;
    assert!(
        !r[0].is_error && r[0].text.contains("TOP SECRET"),
        "{:?}",
        r[0]
    );

    let (res, _) = rpc(
        &mut ws,
        "e1",
        "tools.effective",
        json!({"sessionKey": "agent:main:sandboxed"}),
    )
    .await;
    let notices = res["payload"]["notices"].as_array().unwrap();
    assert!(notices.iter().any(|n| n["id"] == "sandbox"), "{res}");
    let (res, _) = rpc(
        &mut ws,
        "e2",
        "tools.effective",
        json!({"sessionKey": "main"}),
    )
    .await;
    assert!(!res["payload"]["notices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["id"] == "sandbox"));
    let _ = Duration::ZERO;
}
