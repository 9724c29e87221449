use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pincer_tools::context::{Hosts, ToolsConfig};
use pincer_tools::exec::approvals::{
    AllowlistEntry, ApprovalsAgent, ApprovalsFile, ApprovalsPolicy, AskFallback, ExecAsk,
    ExecSecurity, MemoryApprovalsStore,
};
use pincer_tools::exec::ExecConfig;
use pincer_tools::host::{
    ApprovalDecision, ApprovalHost, ApprovalTicket, ExecApprovalRequest, HostError,
};
use pincer_tools::policy::EffectiveTools;
use pincer_tools::ToolContext;
use serde_json::{json, Value};

use crate::common::{err_text, error_kind, ok_text, Env};

fn with_exec(env: &Env, f: impl FnOnce(&mut ExecConfig)) -> pincer_tools::ToolContextBuilder {
    let mut cfg = ExecConfig::default();
    f(&mut cfg);
    env.ctx().config(Arc::new(ToolsConfig { exec: cfg }))
}

#[tokio::test]
async fn foreground_output_and_exit_codes() {
    let env = Env::new();
    let ctx = env.ctx().build();
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "echo out; echo err >&2; pwd"}),
        )
        .await;
    let t = ok_text(&out);
    assert!(t.contains("out") && t.contains("err"));
    assert!(
        t.contains(env.ws_path().to_str().unwrap()),
        "cwd is the workspace: {t}"
    );
    assert_eq!(out.details.as_ref().unwrap()["exitCode"], 0);
    let out = env
        .call(&ctx, "exec", json!({"command": "echo bad; exit 3"}))
        .await;
    let t = err_text(&out);
    assert!(t.contains("bad") && t.contains("Command exited with code 3"));
    std::fs::create_dir_all(env.ws_path().join("sub")).unwrap();
    let out = env
        .call(&ctx, "exec", json!({"command": "pwd", "workdir": "sub"}))
        .await;
    assert!(ok_text(&out).trim().ends_with("/ws/sub"));
    let out = env
        .call(&ctx, "exec", json!({"command": "pwd", "workdir": "  "}))
        .await;
    assert_eq!(error_kind(&out), "invalid_args");
}

#[tokio::test]
async fn timeout_kills_the_process_group() {
    let env = Env::new();
    let ctx = env.ctx().build();
    let started = Instant::now();
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "(sleep 30; echo child-survived > survived.txt) & sleep 30", "timeoutSeconds": 1}),
        )
        .await;
    let t = err_text(&out);
    assert!(t.contains("timed out"), "{t}");
    assert!(started.elapsed() < Duration::from_secs(15));
    assert_eq!(out.details.as_ref().unwrap()["status"], "timed_out");
    // The background child in the same process group died too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!env.ws_path().join("survived.txt").exists());
}

#[tokio::test]
async fn output_is_capped_keeping_the_tail() {
    let env = Env::new();
    let ctx = with_exec(&env, |c| {
        c.max_output_chars = 1000;
        c.buffer_bytes = 64 * 1024;
    })
    .build();
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "for i in $(seq 1 20000); do echo line-$i; done"}),
        )
        .await;
    let t = ok_text(&out);
    assert!(
        t.starts_with("[output truncated: showing the last"),
        "{}",
        &t[..80]
    );
    assert!(t.len() < 1200);
    assert!(t.contains("line-20000"));
    assert!(!t.contains("line-1\n"));
    assert_eq!(out.details.as_ref().unwrap()["truncated"], true);
}

#[tokio::test]
async fn environment_is_scrubbed_and_overrides_validated() {
    let env = Env::new();
    let ctx = with_exec(&env, |c| {
        c.base_env = Some(vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("HARMLESS".into(), "visible".into()),
            ("MY_API_KEY".into(), "sk-secret-1".into()),
            ("GITHUB_TOKEN".into(), "ghp-secret-2".into()),
            ("DB_PASSWORD".into(), "secret-3".into()),
            ("PINCER_GATEWAY_TOKEN".into(), "secret-4".into()),
            ("DATABASE_URL".into(), "postgres://u:secret-5@db/x".into()),
            ("LD_PRELOAD".into(), "/tmp/evil.so".into()),
            ("KEPT_TOKEN".into(), "kept-by-config".into()),
        ]);
        c.env_keep = vec!["KEPT_TOKEN".into()];
    })
    .build();
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "env", "env": {"EXTRA": "literal $HOME"}}),
        )
        .await;
    let t = ok_text(&out);
    assert!(t.contains("HARMLESS=visible"));
    assert!(t.contains("EXTRA=literal $HOME"));
    assert!(t.contains("OPENCLAW_SHELL=exec"));
    assert!(t.contains("KEPT_TOKEN=kept-by-config"));
    for secret in [
        "sk-secret-1",
        "ghp-secret-2",
        "secret-3",
        "secret-4",
        "secret-5",
        "evil.so",
    ] {
        assert!(!t.contains(secret), "{secret} leaked: {t}");
    }
    for bad in [
        json!({"PATH": "/tmp"}),
        json!({"LD_PRELOAD": "x.so"}),
        json!({"DYLD_INSERT_LIBRARIES": "x"}),
    ] {
        let out = env
            .call(&ctx, "exec", json!({"command": "true", "env": bad}))
            .await;
        assert_eq!(error_kind(&out), "denied", "{}", out.text_content());
    }
}

async fn poll_until_finished(env: &Env, ctx: &ToolContext, id: &str) -> (String, Value) {
    let mut all = String::new();
    for _ in 0..50 {
        let out = env
            .call(
                ctx,
                "process",
                json!({"action": "poll", "sessionId": id, "timeout": 2000}),
            )
            .await;
        assert!(!out.is_error, "{}", out.text_content());
        let d = out.details.clone().unwrap();
        all.push_str(d["output"].as_str().unwrap_or_default());
        if d["status"] != "running" {
            return (all, d);
        }
    }
    panic!("job {id} did not finish");
}

#[tokio::test]
async fn background_job_lifecycle_with_process() {
    let env = Env::new();
    let ctx = env.ctx().agent_id("main").build();
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "echo started; read line; echo got:$line; exit 7", "background": true}),
        )
        .await;
    let t = ok_text(&out);
    assert!(t.contains("Command still running"), "{t}");
    let id = out.details.as_ref().unwrap()["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();

    let list = env.call(&ctx, "process", json!({"action": "list"})).await;
    let sessions = list.details.as_ref().unwrap()["sessions"]
        .as_array()
        .unwrap()
        .clone();
    assert!(sessions
        .iter()
        .any(|s| s["sessionId"] == id.as_str() && s["status"] == "running"));
    // Other agents do not see it.
    let other = env
        .ctx()
        .agent_id("other")
        .processes(Arc::clone(&ctx.processes))
        .build();
    let out = env
        .call(
            &other,
            "process",
            json!({"action": "poll", "sessionId": id}),
        )
        .await;
    assert_eq!(error_kind(&out), "not_found");

    let out = env
        .call(
            &ctx,
            "process",
            json!({"action": "poll", "sessionId": id, "timeout": 5000}),
        )
        .await;
    assert!(ok_text(&out).contains("started"));
    let out = env
        .call(
            &ctx,
            "process",
            json!({"action": "write", "sessionId": id, "data": "hello\n"}),
        )
        .await;
    assert!(!out.is_error);
    let (output, d) = poll_until_finished(&env, &ctx, &id).await;
    assert!(output.contains("got:hello"), "{output}");
    assert_eq!(d["exitCode"], 7);
    assert_eq!(d["status"], "failed");
    let log = env
        .call(&ctx, "process", json!({"action": "log", "sessionId": id}))
        .await;
    assert_eq!(ok_text(&log), "started\ngot:hello");
    let log = env
        .call(
            &ctx,
            "process",
            json!({"action": "log", "sessionId": id, "offset": 1, "limit": 1}),
        )
        .await;
    assert_eq!(ok_text(&log), "got:hello");
    let out = env
        .call(
            &ctx,
            "process",
            json!({"action": "remove", "sessionId": id}),
        )
        .await;
    assert!(!out.is_error);
    let out = env
        .call(&ctx, "process", json!({"action": "poll", "sessionId": id}))
        .await;
    assert_eq!(error_kind(&out), "not_found");
    let out = env.call(&ctx, "process", json!({"action": "poll"})).await;
    assert_eq!(error_kind(&out), "invalid_args");
}

#[tokio::test]
async fn yield_backgrounds_and_kill_stops() {
    let env = Env::new();
    let ctx = env.ctx().build();
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "sleep 0.8; echo finished", "yieldMs": 100}),
        )
        .await;
    assert!(ok_text(&out).contains("still running"));
    let id = out.details.as_ref().unwrap()["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (output, d) = poll_until_finished(&env, &ctx, &id).await;
    assert!(output.contains("finished"));
    assert_eq!(d["exitCode"], 0);

    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "sleep 60", "background": true}),
        )
        .await;
    let d = out.details.clone().unwrap();
    let id = d["sessionId"].as_str().unwrap().to_owned();
    let pid = d["pid"].as_i64().unwrap();
    let started = Instant::now();
    let out = env
        .call(&ctx, "process", json!({"action": "kill", "sessionId": id}))
        .await;
    let d = out.details.clone().unwrap();
    assert_eq!(d["status"], "killed", "{d}");
    assert_eq!(d["wasRunning"], true);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

#[tokio::test]
async fn without_process_tool_exec_runs_to_completion() {
    let env = Env::new();
    let ctx = env
        .ctx()
        .policy(Arc::new(EffectiveTools::all(["exec"])))
        .build();
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "sleep 0.5; echo done", "yieldMs": 10, "background": true}),
        )
        .await;
    assert_eq!(ok_text(&out).trim(), "done");
}

#[tokio::test]
async fn pty_gives_a_terminal() {
    let env = Env::new();
    let ctx = env.ctx().build();
    let out = env
        .call(&ctx, "exec", json!({"command": "tty", "pty": true}))
        .await;
    assert!(
        ok_text(&out).contains("/dev/pts/"),
        "{}",
        out.text_content()
    );
    let out = env.call(&ctx, "exec", json!({"command": "tty"})).await;
    assert!(out.text_content().contains("not a tty"));
    // Interactive input through the PTY.
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "read -p 'name? ' n; echo hi-$n", "pty": true, "background": true}),
        )
        .await;
    let id = out.details.as_ref().unwrap()["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    env.call(
        &ctx,
        "process",
        json!({"action": "poll", "sessionId": id, "timeout": 3000}),
    )
    .await;
    let out = env
        .call(
            &ctx,
            "process",
            json!({"action": "send-keys", "sessionId": id, "literal": "bob", "keys": ["Enter"]}),
        )
        .await;
    assert!(!out.is_error, "{}", out.text_content());
    let (output, _) = poll_until_finished(&env, &ctx, &id).await;
    assert!(output.contains("hi-bob"), "{output}");
}

/// Approval host double: answers with a fixed decision (or never) and records requests.
#[derive(Default)]
struct FakeApprovals {
    decision: Option<ApprovalDecision>,
    requests: Mutex<Vec<ExecApprovalRequest>>,
}

#[async_trait]
impl ApprovalHost for FakeApprovals {
    async fn request(&self, request: ExecApprovalRequest) -> Result<ApprovalTicket, HostError> {
        let mut r = self.requests.lock().unwrap();
        r.push(request);
        Ok(ApprovalTicket {
            id: format!("appr-{}", r.len()),
            created_at_ms: 1,
            expires_at_ms: 2,
        })
    }
    async fn wait_decision(
        &self,
        _id: &str,
        timeout: Duration,
    ) -> Result<Option<ApprovalDecision>, HostError> {
        match self.decision {
            Some(d) => Ok(Some(d)),
            None => {
                tokio::time::sleep(timeout).await;
                Ok(None)
            }
        }
    }
}

fn approvals_ctx(
    env: &Env,
    security: ExecSecurity,
    ask: ExecAsk,
    host: Option<Arc<FakeApprovals>>,
    store: Arc<MemoryApprovalsStore>,
) -> ToolContext {
    let mut b = with_exec(env, |c| {
        c.security = security;
        c.ask = ask;
        c.approval_timeout = Duration::from_millis(200);
    })
    .approvals_store(store);
    if let Some(h) = host {
        b = b.hosts(Hosts {
            approvals: Some(h),
            ..Hosts::default()
        });
    }
    b.build()
}

#[tokio::test]
async fn allowlist_security_without_ask_denies_misses() {
    let env = Env::new();
    let mut file = ApprovalsFile::default();
    file.agents.insert(
        "main".into(),
        ApprovalsAgent {
            allowlist: vec![AllowlistEntry {
                id: "e1".into(),
                pattern: "echo".into(),
                ..AllowlistEntry::default()
            }],
            ..ApprovalsAgent::default()
        },
    );
    let store = Arc::new(MemoryApprovalsStore::new(file));
    let ctx = approvals_ctx(
        &env,
        ExecSecurity::Allowlist,
        ExecAsk::Off,
        None,
        Arc::clone(&store),
    );
    let out = env
        .call(&ctx, "exec", json!({"command": "touch made.txt"}))
        .await;
    assert_eq!(error_kind(&out), "denied");
    assert!(err_text(&out).contains("not in the exec allowlist"));
    assert!(!env.ws_path().join("made.txt").exists());
    let out = env
        .call(&ctx, "exec", json!({"command": "echo allowed | head -n 1"}))
        .await;
    assert_eq!(ok_text(&out).trim(), "allowed");
    // The entry's use is recorded.
    assert!(store.snapshot().agents["main"].allowlist[0]
        .last_used_at
        .is_some());
    // Redirections and chains with a non-allowlisted segment miss.
    let out = env
        .call(&ctx, "exec", json!({"command": "echo x > made.txt"}))
        .await;
    assert_eq!(error_kind(&out), "denied");
    let out = env
        .call(&ctx, "exec", json!({"command": "echo x && touch made.txt"}))
        .await;
    assert_eq!(error_kind(&out), "denied");
    let out = env
        .call(&ctx, "exec", json!({"command": "echo $(touch made.txt)"}))
        .await;
    assert_eq!(error_kind(&out), "denied");
    assert!(!env.ws_path().join("made.txt").exists());
}

#[tokio::test]
async fn ask_allow_once_and_allow_always() {
    let env = Env::new();
    let store = Arc::new(MemoryApprovalsStore::default());
    let once = Arc::new(FakeApprovals {
        decision: Some(ApprovalDecision::AllowOnce),
        ..FakeApprovals::default()
    });
    let ctx = approvals_ctx(
        &env,
        ExecSecurity::Allowlist,
        ExecAsk::OnMiss,
        Some(Arc::clone(&once)),
        Arc::clone(&store),
    );
    let out = env
        .call(&ctx, "exec", json!({"command": "echo approved-once"}))
        .await;
    assert_eq!(ok_text(&out).trim(), "approved-once");
    {
        let reqs = once.requests.lock().unwrap();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].command, "echo approved-once");
        assert_eq!(reqs[0].security, "allowlist");
        assert_eq!(reqs[0].ask, "on-miss");
        assert_eq!(reqs[0].host, "gateway");
        assert_eq!(reqs[0].cwd, env.ws_path().to_str().unwrap());
    }
    assert!(
        store.snapshot().agents.is_empty(),
        "allow-once persists nothing"
    );

    let always = Arc::new(FakeApprovals {
        decision: Some(ApprovalDecision::AllowAlways),
        ..FakeApprovals::default()
    });
    let ctx = approvals_ctx(
        &env,
        ExecSecurity::Allowlist,
        ExecAsk::OnMiss,
        Some(Arc::clone(&always)),
        Arc::clone(&store),
    );
    let out = env
        .call(&ctx, "exec", json!({"command": "echo remember-me"}))
        .await;
    assert_eq!(ok_text(&out).trim(), "remember-me");
    let entries = store.snapshot().agents["main"].allowlist.clone();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].source.as_deref(), Some("allow-always"));
    // Same command again: no prompt. A different argv: prompt again.
    let out = env
        .call(&ctx, "exec", json!({"command": "echo remember-me"}))
        .await;
    assert_eq!(ok_text(&out).trim(), "remember-me");
    assert_eq!(always.requests.lock().unwrap().len(), 1);
    let out = env
        .call(&ctx, "exec", json!({"command": "echo other-args"}))
        .await;
    assert!(!out.is_error);
    assert_eq!(always.requests.lock().unwrap().len(), 2);
    // ask=always prompts even for allowlisted commands.
    let ctx = approvals_ctx(
        &env,
        ExecSecurity::Full,
        ExecAsk::Always,
        Some(Arc::clone(&always)),
        Arc::clone(&store),
    );
    env.call(&ctx, "exec", json!({"command": "echo remember-me"}))
        .await;
    assert_eq!(always.requests.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn denial_timeout_and_fallbacks() {
    let env = Env::new();
    let store = Arc::new(MemoryApprovalsStore::default());
    let deny = Arc::new(FakeApprovals {
        decision: Some(ApprovalDecision::Deny),
        ..FakeApprovals::default()
    });
    let ctx = approvals_ctx(
        &env,
        ExecSecurity::Full,
        ExecAsk::Always,
        Some(deny),
        Arc::clone(&store),
    );
    let out = env
        .call(&ctx, "exec", json!({"command": "touch denied.txt"}))
        .await;
    assert!(err_text(&out).contains("denied by the operator"));
    assert!(!env.ws_path().join("denied.txt").exists());

    let silent = Arc::new(FakeApprovals::default());
    let ctx = approvals_ctx(
        &env,
        ExecSecurity::Full,
        ExecAsk::Always,
        Some(Arc::clone(&silent)),
        Arc::clone(&store),
    );
    let started = Instant::now();
    let out = env
        .call(&ctx, "exec", json!({"command": "touch timeout.txt"}))
        .await;
    let t = err_text(&out);
    assert!(
        t.contains("timed out") && t.contains("askFallback=deny") && t.contains("did not run"),
        "{t}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(!env.ws_path().join("timeout.txt").exists());

    // askFallback=full from the approvals document lets the command run after the timeout.
    let file = ApprovalsFile {
        defaults: ApprovalsPolicy {
            ask_fallback: Some(AskFallback::Full),
            ..ApprovalsPolicy::default()
        },
        ..ApprovalsFile::default()
    };
    let store = Arc::new(MemoryApprovalsStore::new(file));
    let ctx = approvals_ctx(
        &env,
        ExecSecurity::Full,
        ExecAsk::Always,
        Some(silent),
        store,
    );
    let out = env
        .call(&ctx, "exec", json!({"command": "touch fallback.txt"}))
        .await;
    assert!(!out.is_error, "{}", out.text_content());
    assert!(env.ws_path().join("fallback.txt").exists());

    // No approval channel at all: fallback deny.
    let ctx = approvals_ctx(
        &env,
        ExecSecurity::Full,
        ExecAsk::Always,
        None,
        Arc::new(MemoryApprovalsStore::default()),
    );
    let out = env.call(&ctx, "exec", json!({"command": "true"})).await;
    assert!(err_text(&out).contains("no approval channel"));

    // security=deny never runs anything.
    let ctx = approvals_ctx(
        &env,
        ExecSecurity::Deny,
        ExecAsk::Off,
        None,
        Arc::new(MemoryApprovalsStore::default()),
    );
    let out = env.call(&ctx, "exec", json!({"command": "true"})).await;
    assert_eq!(error_kind(&out), "denied");
}

#[tokio::test]
async fn approvals_document_can_only_tighten() {
    let env = Env::new();
    let mut file = ApprovalsFile::default();
    file.defaults.security = Some(ExecSecurity::Deny);
    let ctx = approvals_ctx(
        &env,
        ExecSecurity::Full,
        ExecAsk::Off,
        None,
        Arc::new(MemoryApprovalsStore::new(file)),
    );
    let out = env.call(&ctx, "exec", json!({"command": "true"})).await;
    assert_eq!(error_kind(&out), "denied");
    // Per-call ask hardens; channel-origin calls cannot raise ask=off.
    let silent = Arc::new(FakeApprovals::default());
    let ctx = approvals_ctx(
        &env,
        ExecSecurity::Full,
        ExecAsk::Off,
        Some(Arc::clone(&silent)),
        Arc::new(MemoryApprovalsStore::default()),
    );
    let out = env
        .call(&ctx, "exec", json!({"command": "true", "ask": "always"}))
        .await;
    assert_eq!(error_kind(&out), "denied");
    assert_eq!(silent.requests.lock().unwrap().len(), 1);
    let mut ctx = ctx;
    ctx.channel_origin = true;
    let out = env
        .call(&ctx, "exec", json!({"command": "true", "ask": "always"}))
        .await;
    assert!(!out.is_error);
    assert_eq!(silent.requests.lock().unwrap().len(), 1);
}
