use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pincer_tools::context::Hosts;
use pincer_tools::host::{
    HostError, MemoryChunk, MemoryHit, MemoryIndex, MemoryQuery, MessagingHost, NodesHost,
    Requester, SessionsHost,
};
use serde_json::{json, Value};

use crate::common::{err_text, error_kind, ok_text, Env};

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<(String, Value)>>,
}

impl Recorder {
    fn record(&self, what: &str, v: Value) -> Value {
        self.calls
            .lock()
            .unwrap()
            .push((what.to_owned(), v.clone()));
        json!({"ok": true, "echo": v})
    }
    fn last(&self) -> (String, Value) {
        self.calls.lock().unwrap().last().cloned().unwrap()
    }
    fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

#[async_trait]
impl SessionsHost for Recorder {
    async fn list(&self, r: &Requester, q: Value) -> Result<Value, HostError> {
        assert_eq!(r.agent_id, "main");
        Ok(self.record("list", q))
    }
    async fn history(&self, _r: &Requester, q: Value) -> Result<Value, HostError> {
        if q["sessionKey"] == "agent:main:missing" {
            return Err(HostError::NotFound(
                "session agent:main:missing not found".into(),
            ));
        }
        Ok(self.record("history", q))
    }
    async fn send(&self, _r: &Requester, q: Value) -> Result<Value, HostError> {
        Ok(self.record("send", q))
    }
    async fn spawn(&self, _r: &Requester, q: Value) -> Result<Value, HostError> {
        Ok(self.record("spawn", q))
    }
    async fn status(
        &self,
        _r: &Requester,
        key: &str,
        model: Option<&str>,
        since: Option<u64>,
    ) -> Result<Value, HostError> {
        Ok(self.record(
            "status",
            json!({"key": key, "model": model, "since": since}),
        ))
    }
}

#[async_trait]
impl MessagingHost for Recorder {
    async fn message(&self, _r: &Requester, action: &str, req: Value) -> Result<Value, HostError> {
        Ok(self.record(action, req))
    }
}

#[async_trait]
impl NodesHost for Recorder {
    async fn list(&self) -> Result<Value, HostError> {
        Ok(self.record("node.list", json!({})))
    }
    async fn describe(&self, node: &str) -> Result<Value, HostError> {
        Ok(self.record("node.describe", json!({"node": node})))
    }
    async fn pending(&self) -> Result<Value, HostError> {
        Ok(self.record("pending", json!({})))
    }
    async fn resolve_pairing(&self, id: &str, approve: bool) -> Result<Value, HostError> {
        Ok(self.record("pair", json!({"id": id, "approve": approve})))
    }
    async fn invoke(
        &self,
        node: &str,
        command: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, HostError> {
        Ok(self.record(
            "invoke",
            json!({"node": node, "command": command, "params": params, "timeoutMs": timeout.as_millis() as u64}),
        ))
    }
}

fn ctx_with(env: &Env, rec: &Arc<Recorder>) -> pincer_tools::ToolContext {
    env.ctx()
        .hosts(Hosts {
            sessions: Some(Arc::clone(rec) as Arc<dyn SessionsHost>),
            messaging: Some(Arc::clone(rec) as Arc<dyn MessagingHost>),
            nodes: Some(Arc::clone(rec) as Arc<dyn NodesHost>),
            ..Hosts::default()
        })
        .build()
}

#[tokio::test]
async fn session_tools_shape_and_validate() {
    let env = Env::new();
    let rec = Arc::new(Recorder::default());
    let ctx = ctx_with(&env, &rec);
    let out = env
        .call(&ctx, "sessions_list", json!({"limit": 5000}))
        .await;
    ok_text(&out);
    assert_eq!(rec.last().1["limit"], 200);
    assert_eq!(out.details.as_ref().unwrap()["limitApplied"], 200);
    env.call(&ctx, "sessions_list", json!({})).await;
    assert_eq!(rec.last().1["limit"], 100);

    let out = env
        .call(
            &ctx,
            "sessions_history",
            json!({"sessionKey": "agent:main:x", "sessionId": "s"}),
        )
        .await;
    assert!(err_text(&out).contains("sessionId requires messageId"));
    env.call(&ctx, "sessions_history", json!({"sessionKey": "current"}))
        .await;
    assert_eq!(rec.last().1["sessionKey"], "agent:main:main");
    let out = env
        .call(
            &ctx,
            "sessions_history",
            json!({"sessionKey": "agent:main:missing"}),
        )
        .await;
    assert_eq!(error_kind(&out), "not_found");

    let out = env
        .call(&ctx, "sessions_send", json!({"message": "hi"}))
        .await;
    assert!(err_text(&out).contains("sessionKey, label or agentId"));
    let out = env
        .call(
            &ctx,
            "sessions_send",
            json!({"message": "hi", "sessionKey": "agent:main:main"}),
        )
        .await;
    assert!(err_text(&out).contains("current session"));
    let out = env
        .call(
            &ctx,
            "sessions_send",
            json!({"message": "hi", "sessionKey": "agent:main:x", "mode": "resume", "watch": true}),
        )
        .await;
    assert!(err_text(&out).contains("watch"));
    env.call(
        &ctx,
        "sessions_send",
        json!({"message": "hi", "sessionKey": "agent:main:x", "label": "dup"}),
    )
    .await;
    assert!(
        rec.last().1.get("label").is_none(),
        "sessionKey wins over label"
    );

    let n = rec.count();
    for (args, msg) in [
        (
            json!({"task": "t", "cwd": "a", "projectId": "p"}),
            "mutually exclusive",
        ),
        (json!({"task": "t", "groupId": "g"}), "collect=true"),
        (
            json!({"task": "t", "visible": true, "thinking": "high"}),
            "visible=true",
        ),
        (
            json!({"task": "t", "attachments": [{"name": "a", "content": "b"}]}),
            "attachment",
        ),
        (
            json!({"task": "t", "cwd": "../outside"}),
            "escapes the workspace",
        ),
        (
            json!({"task": "t", "projectGitUrl": "file:///etc"}),
            "GitHub",
        ),
        (json!({"task": " "}), "blank"),
    ] {
        let out = env.call(&ctx, "sessions_spawn", args.clone()).await;
        assert!(
            err_text(&out).contains(msg),
            "{args}: {}",
            out.text_content()
        );
    }
    assert_eq!(rec.count(), n, "invalid spawns never reach the host");
    std::fs::create_dir_all(env.ws_path().join("proj")).unwrap();
    env.call(&ctx, "sessions_spawn", json!({"task": "t", "cwd": "proj"}))
        .await;
    assert_eq!(
        rec.last().1["cwd"],
        env.ws_path().join("proj").to_str().unwrap()
    );

    env.call(&ctx, "session_status", json!({"model": "default"}))
        .await;
    assert_eq!(
        rec.last().1,
        json!({"key": "agent:main:main", "model": "default", "since": null})
    );

    // Without a host: a clear unavailability error.
    let bare = env.ctx().build();
    let out = env.call(&bare, "sessions_list", json!({})).await;
    assert_eq!(error_kind(&out), "unavailable");
}

#[tokio::test]
async fn message_tool() {
    let env = Env::new();
    let rec = Arc::new(Recorder::default());
    let ctx = ctx_with(&env, &rec);
    let out = env
        .call(
            &ctx,
            "message",
            json!({"action": "send", "channel": "telegram"}),
        )
        .await;
    assert!(err_text(&out).contains("needs message"));
    let out = env
        .call(
            &ctx,
            "message",
            json!({"action": "broadcast", "message": "x"}),
        )
        .await;
    assert!(err_text(&out).contains("targets"));
    let out = env
        .call(
            &ctx,
            "message",
            json!({"action": "send", "message": "x", "buffer": "%%%"}),
        )
        .await;
    assert!(err_text(&out).contains("base64"));
    let out = env
        .call(
            &ctx,
            "message",
            json!({"action": "send", "message": "hi", "dryRun": true, "target": "@bob"}),
        )
        .await;
    assert_eq!(out.details.as_ref().unwrap()["status"], "dry_run");
    assert_eq!(rec.count(), 0);
    env.call(
        &ctx,
        "message",
        json!({"action": "send", "message": "hi", "target": "@bob", "gatewayToken": "stolen", "gatewayUrl": "ws://evil"}),
    )
    .await;
    let (action, req) = rec.last();
    assert_eq!(action, "send");
    assert_eq!(req["message"], "hi");
    assert!(req.get("gatewayToken").is_none() && req.get("gatewayUrl").is_none());
}

#[tokio::test]
async fn nodes_tool_maps_actions() {
    let env = Env::new();
    let rec = Arc::new(Recorder::default());
    let ctx = ctx_with(&env, &rec);
    env.call(&ctx, "nodes", json!({"action": "status"})).await;
    assert_eq!(rec.last().0, "node.list");
    let out = env.call(&ctx, "nodes", json!({"action": "describe"})).await;
    assert!(err_text(&out).contains("needs node"));
    env.call(
        &ctx,
        "nodes",
        json!({"action": "camera_snap", "node": "phone", "facing": "front", "quality": 0.5}),
    )
    .await;
    let (_, v) = rec.last();
    assert_eq!(v["command"], "camera.snap");
    assert_eq!(v["params"], json!({"facing": "front", "quality": 0.5}));
    let out = env
        .call(&ctx, "nodes", json!({"action": "invoke", "node": "n", "invokeCommand": "x.y", "invokeParamsJson": "{bad"}))
        .await;
    assert!(err_text(&out).contains("invokeParamsJson"));
    env.call(
        &ctx,
        "nodes",
        json!({"action": "invoke", "node": "n", "invokeCommand": "x.y", "invokeParamsJson": "{\"a\":1}", "invokeTimeoutMs": 1500}),
    )
    .await;
    assert_eq!(
        rec.last().1,
        json!({"node": "n", "command": "x.y", "params": {"a": 1}, "timeoutMs": 1500})
    );
    let out = env
        .call(&ctx, "nodes", json!({"action": "camera_ptz", "node": "n"}))
        .await;
    assert!(err_text(&out).contains("deviceId"));
    env.call(
        &ctx,
        "nodes",
        json!({"action": "approve", "requestId": "r1"}),
    )
    .await;
    assert_eq!(rec.last().1, json!({"id": "r1", "approve": true}));
}

#[tokio::test]
async fn nodes_tool_uses_the_reference_command_mapping() {
    let env = Env::new();
    let rec = Arc::new(Recorder::default());
    let ctx = ctx_with(&env, &rec);
    let cmd = |v: &Value| {
        (
            v["command"].as_str().unwrap().to_owned(),
            v["params"].clone(),
        )
    };
    // camera_ptz: status vs control with target/delta axes.
    env.call(
        &ctx,
        "nodes",
        json!({"action": "camera_ptz", "node": "n", "deviceId": "cam1", "ptzOperation": "status"}),
    )
    .await;
    assert_eq!(
        cmd(&rec.last().1),
        ("camera.ptz.status".into(), json!({"deviceId": "cam1"}))
    );
    env.call(&ctx, "nodes", json!({"action": "camera_ptz", "node": "n", "deviceId": "cam1", "ptzOperation": "move", "panDegrees": 5}))
        .await;
    assert_eq!(
        cmd(&rec.last().1),
        (
            "camera.ptz.control".into(),
            json!({"deviceId": "cam1", "operation": "move", "delta": {"panDegrees": 5.0}})
        )
    );
    let out = env
        .call(
            &ctx,
            "nodes",
            json!({"action": "camera_ptz", "node": "n", "deviceId": "cam1", "ptzOperation": "set"}),
        )
        .await;
    assert!(err_text(&out).contains("at least one PTZ axis"));
    // notifications_action → notifications.actions.
    env.call(&ctx, "nodes", json!({"action": "notifications_action", "node": "n", "notificationKey": "k", "notificationAction": "reply", "notificationReplyText": "ok"}))
        .await;
    assert_eq!(
        cmd(&rec.last().1),
        (
            "notifications.actions".into(),
            json!({"key": "k", "action": "reply", "replyText": "ok"})
        )
    );
    let before = rec.count();
    let out = env
        .call(&ctx, "nodes", json!({"action": "notifications_action", "node": "n", "notificationKey": "k", "notificationAction": "reply"}))
        .await;
    assert!(err_text(&out).contains("notificationReplyText"));
    // Read actions carry no params; which sends bins.
    env.call(
        &ctx,
        "nodes",
        json!({"action": "device_status", "node": "n", "limit": 3}),
    )
    .await;
    assert_eq!(cmd(&rec.last().1), ("device.status".into(), json!({})));
    env.call(
        &ctx,
        "nodes",
        json!({"action": "which", "node": "n", "bins": ["git"]}),
    )
    .await;
    assert_eq!(
        cmd(&rec.last().1),
        ("system.which".into(), json!({"bins": ["git"]}))
    );
    // notify needs text and answers {ok:true}.
    let out = env
        .call(&ctx, "nodes", json!({"action": "notify", "node": "n"}))
        .await;
    assert!(err_text(&out).contains("title or a body"));
    env.call(
        &ctx,
        "nodes",
        json!({"action": "notify", "node": "n", "title": "Hi", "priority": "timeSensitive"}),
    )
    .await;
    assert_eq!(
        cmd(&rec.last().1),
        (
            "system.notify".into(),
            json!({"title": "Hi", "body": "", "priority": "timeSensitive"})
        )
    );
    // invoke refuses shell execution and media commands (nothing reaches the host).
    let after = rec.count();
    let out = env
        .call(
            &ctx,
            "nodes",
            json!({"action": "invoke", "node": "n", "invokeCommand": "system.run"}),
        )
        .await;
    assert!(err_text(&out).contains("exec with host=node"));
    let out = env
        .call(
            &ctx,
            "nodes",
            json!({"action": "invoke", "node": "n", "invokeCommand": "camera.snap"}),
        )
        .await;
    assert!(err_text(&out).contains("camera_snap"));
    assert_eq!(rec.count(), after);
    assert!(after > before);
}

/// Naive in-memory index: term-overlap scoring (the FTS5 one lives in pincer-store).
#[derive(Default)]
struct NaiveIndex {
    files: Mutex<HashMap<String, (String, Vec<MemoryChunk>)>>,
    replaced: Mutex<usize>,
}

#[async_trait]
impl MemoryIndex for NaiveIndex {
    async fn replace_file(
        &self,
        _a: &str,
        path: &str,
        hash: &str,
        chunks: Vec<MemoryChunk>,
    ) -> Result<(), HostError> {
        *self.replaced.lock().unwrap() += 1;
        let mut f = self.files.lock().unwrap();
        if chunks.is_empty() {
            f.remove(path);
        } else {
            f.insert(path.to_owned(), (hash.to_owned(), chunks));
        }
        Ok(())
    }
    async fn indexed_files(&self, _a: &str) -> Result<Vec<(String, String)>, HostError> {
        Ok(self
            .files
            .lock()
            .unwrap()
            .iter()
            .map(|(k, (h, _))| (k.clone(), h.clone()))
            .collect())
    }
    async fn search(&self, q: &MemoryQuery) -> Result<Vec<MemoryHit>, HostError> {
        let terms: Vec<String> = q
            .query
            .to_lowercase()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let mut hits: Vec<MemoryHit> = self
            .files
            .lock()
            .unwrap()
            .values()
            .flat_map(|(_, c)| c.clone())
            .filter_map(|c| {
                let text = c.text.to_lowercase();
                let score = terms.iter().filter(|t| text.contains(t.as_str())).count() as f64;
                (score > 0.0).then(|| MemoryHit {
                    path: c.path.clone(),
                    start_line: c.start_line,
                    end_line: c.end_line,
                    score,
                    snippet: c.text.clone(),
                })
            })
            .collect();
        hits.sort_by(|a, b| b.score.total_cmp(&a.score));
        hits.truncate(q.max_results);
        Ok(hits)
    }
    async fn get(&self, _a: &str, path: &str) -> Result<Vec<MemoryChunk>, HostError> {
        Ok(self
            .files
            .lock()
            .unwrap()
            .get(path)
            .map(|(_, c)| c.clone())
            .unwrap_or_default())
    }
}

#[tokio::test]
async fn memory_search_and_get() {
    let env = Env::new();
    let ws = env.ws_path();
    std::fs::write(
        ws.join("MEMORY.md"),
        "# Memory\n\n## Preferences\nUser prefers green tea.\n",
    )
    .unwrap();
    std::fs::create_dir_all(ws.join("memory/2026")).unwrap();
    std::fs::write(
        ws.join("memory/2026/01-02.md"),
        "# Jan 2\nMet Alice about the roadmap.\n",
    )
    .unwrap();
    std::fs::write(ws.join("memory/notes.txt"), "not markdown: roadmap").unwrap();
    std::fs::write(env.outside_path().join("leak.md"), "roadmap secret").unwrap();
    std::os::unix::fs::symlink(
        env.outside_path().join("leak.md"),
        ws.join("memory/leak.md"),
    )
    .unwrap();
    let index = Arc::new(NaiveIndex::default());
    let ctx = env
        .ctx()
        .hosts(Hosts {
            memory: Some(Arc::clone(&index) as Arc<dyn MemoryIndex>),
            ..Hosts::default()
        })
        .build();
    let out = env
        .call(&ctx, "memory_search", json!({"query": "roadmap"}))
        .await;
    ok_text(&out);
    let results = out.details.as_ref().unwrap()["results"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["path"], "memory/2026/01-02.md");
    assert_eq!(results[0]["citation"], "memory/2026/01-02.md#L1-L2");
    assert_eq!(*index.replaced.lock().unwrap(), 2);
    // Unchanged files are not re-indexed; edits and deletions are.
    env.call(&ctx, "memory_search", json!({"query": "tea"}))
        .await;
    assert_eq!(*index.replaced.lock().unwrap(), 2);
    std::fs::remove_file(ws.join("memory/2026/01-02.md")).unwrap();
    let out = env
        .call(&ctx, "memory_search", json!({"query": "roadmap"}))
        .await;
    assert!(out.details.as_ref().unwrap()["results"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(*index.replaced.lock().unwrap(), 3);

    let out = env
        .call(
            &ctx,
            "memory_get",
            json!({"path": "MEMORY.md", "from": 3, "lines": 1}),
        )
        .await;
    let d = out.details.clone().unwrap();
    assert_eq!(d["text"], "## Preferences");
    assert_eq!(d["truncated"], true);
    assert_eq!(d["nextFrom"], 4);
    let out = env
        .call(&ctx, "memory_get", json!({"path": "AGENTS.md"}))
        .await;
    assert_eq!(error_kind(&out), "path_denied");
    let out = env
        .call(&ctx, "memory_get", json!({"path": "memory/nope.md"}))
        .await;
    assert_eq!(out.details.as_ref().unwrap()["status"], "not_found");
    let out = env
        .call(&ctx, "memory_get", json!({"path": "memory/leak.md"}))
        .await;
    assert!(!out.text_content().contains("secret"));
    let out = env
        .call(&ctx, "memory_search", json!({"query": "  "}))
        .await;
    assert_eq!(error_kind(&out), "invalid_args");
}

/// A node host with realistic `system.run` answers.
#[derive(Default)]
struct FakeNodes {
    nodes: Vec<Value>,
    calls: Mutex<Vec<(String, String, Value, u64)>>,
}

#[async_trait]
impl NodesHost for FakeNodes {
    async fn list(&self) -> Result<Value, HostError> {
        Ok(json!({"nodes": self.nodes}))
    }
    async fn describe(&self, _node: &str) -> Result<Value, HostError> {
        Err(HostError::NotFound("x".into()))
    }
    async fn pending(&self) -> Result<Value, HostError> {
        Ok(json!({}))
    }
    async fn resolve_pairing(&self, _id: &str, _approve: bool) -> Result<Value, HostError> {
        Ok(json!({}))
    }
    async fn invoke(
        &self,
        node: &str,
        command: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, HostError> {
        self.calls.lock().unwrap().push((
            node.to_owned(),
            command.to_owned(),
            params.clone(),
            timeout.as_millis() as u64,
        ));
        let exit = if params["rawCommand"] == "false" {
            1
        } else {
            0
        };
        Ok(
            json!({"ok": true, "nodeId": "n1", "command": command, "payloadJSON": null,
            "payload": {"stdout": "Linux\n", "stderr": "", "exitCode": exit, "success": exit == 0, "timedOut": false}}),
        )
    }
}

#[tokio::test]
async fn exec_host_node_runs_system_run_on_the_node() {
    let env = Env::new();
    let node = |id: &str| json!({"nodeId": id, "displayName": id, "connected": true, "commands": ["system.run"]});
    let fake = Arc::new(FakeNodes {
        nodes: vec![node("n1")],
        ..Default::default()
    });
    let ctx = env
        .ctx()
        .hosts(Hosts {
            nodes: Some(Arc::clone(&fake) as Arc<dyn NodesHost>),
            ..Hosts::default()
        })
        .build();
    // The only node that can run commands is picked; the command runs through a shell there.
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "uname -s", "host": "node", "workdir": "/srv", "timeoutSeconds": 5}),
        )
        .await;
    let text = out.text_content();
    assert!(text.starts_with("Node: n1\nLinux"), "{text}");
    let (n, command, params, wait) = fake.calls.lock().unwrap().last().cloned().unwrap();
    assert_eq!((n.as_str(), command.as_str()), ("n1", "system.run"));
    assert_eq!(params["command"], json!(["/bin/sh", "-c", "uname -s"]));
    assert_eq!(params["cwd"], "/srv", "workdir is the node's");
    assert_eq!(params["timeoutMs"], 5000);
    assert!(
        wait > 5000,
        "the invoke waits longer than the command may run"
    );
    // A failing command is a tool error with its exit code.
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "false", "host": "node", "node": "n1"}),
        )
        .await;
    assert!(err_text(&out).contains("(Command exited with code 1)"));
    // Several eligible nodes: the model has to say which.
    let fake2 = Arc::new(FakeNodes {
        nodes: vec![node("a"), node("b")],
        ..Default::default()
    });
    let ctx2 = env
        .ctx()
        .hosts(Hosts {
            nodes: Some(Arc::clone(&fake2) as Arc<dyn NodesHost>),
            ..Hosts::default()
        })
        .build();
    let out = env
        .call(&ctx2, "exec", json!({"command": "uname", "host": "node"}))
        .await;
    assert!(err_text(&out).contains("needs node="), "{}", err_text(&out));
    assert!(fake2.calls.lock().unwrap().is_empty());
    // No nodes host: a clear unavailable error.
    let out = env
        .call(
            &env.ctx().build(),
            "exec",
            json!({"command": "uname", "host": "node"}),
        )
        .await;
    assert!(err_text(&out).contains("not available"));
}
