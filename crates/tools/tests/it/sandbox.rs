//! Requires bubblewrap (`apt-get install bubblewrap`) and working user namespaces; the tests fail
//! loudly, not silently, when they are missing.

use std::sync::Arc;

use pincer_tools::confine::Workspace;
use pincer_tools::exec::sandbox::{Sandbox, SandboxConfig, SandboxError};
use pincer_tools::{SandboxMode, ToolContext};
use serde_json::json;

use crate::common::{error_kind, ok_text, procs_with, wait_gone, Env};

fn sandbox(config: SandboxConfig) -> Arc<Sandbox> {
    match Sandbox::new(config) {
        Ok(s) => Arc::new(s),
        Err(e) => panic!("sandbox tests need bubblewrap with user namespaces: {e}"),
    }
}

fn sandboxed_ctx(env: &Env, config: SandboxConfig) -> ToolContext {
    env.ctx()
        .session_key("agent:main:telegram:group:42")
        .sandbox(SandboxMode::NonMain, Some(sandbox(config)))
        .build()
}

#[test]
fn sandbox_mode_selection() {
    assert!(!SandboxMode::Off.applies_to("main", "agent:main:telegram:direct:1", None));
    assert!(SandboxMode::All.applies_to("main", "agent:main:main", None));
    assert!(!SandboxMode::NonMain.applies_to("main", "agent:main:main", None));
    assert!(!SandboxMode::NonMain.applies_to("Main", "AGENT:MAIN:MAIN", None));
    assert!(SandboxMode::NonMain.applies_to("main", "agent:main:telegram:group:1", None));
    assert!(SandboxMode::NonMain.applies_to("main", "agent:other:main", None));
    assert!(!SandboxMode::NonMain.applies_to("main", "agent:main:home", Some("home")));
}

#[test]
fn missing_bwrap_is_a_clear_error() {
    let err = Sandbox::new(SandboxConfig {
        bwrap: "/nonexistent/bwrap".into(),
        ..SandboxConfig::default()
    })
    .unwrap_err();
    assert_eq!(err, SandboxError::Missing);
    assert!(err.to_string().contains("package `bubblewrap`"));
}

#[tokio::test]
async fn sandboxed_exec_cannot_read_outside_the_workspace() {
    let env = Env::new();
    // A secret next to the workspace and one in the gateway user's home-like location.
    let secret = env.outside_path().join("secret.txt");
    std::fs::write(&secret, "HOST SECRET").unwrap();
    let ctx = sandboxed_ctx(&env, SandboxConfig::default());
    // Control: unsandboxed, the file is readable.
    let host_ctx = env.ctx().build();
    let out = env
        .call(
            &host_ctx,
            "exec",
            json!({"command": format!("cat {}", secret.display())}),
        )
        .await;
    assert_eq!(ok_text(&out), "HOST SECRET");

    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": format!("cat {}", secret.display())}),
        )
        .await;
    assert!(out.is_error);
    assert!(!out.text_content().contains("HOST SECRET"));
    assert!(
        out.text_content().contains("No such file"),
        "{}",
        out.text_content()
    );
    assert_eq!(out.details.as_ref().unwrap()["sandboxed"], true);
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "ls /root /home 2>&1; cat /etc/shadow 2>&1"}),
        )
        .await;
    assert!(
        !out.text_content().contains("root:"),
        "{}",
        out.text_content()
    );
    // The system is read-only; the workspace is writable and shared with the host.
    let out = env
        .call(&ctx, "exec", json!({"command": "touch /usr/pwned"}))
        .await;
    assert!(out.is_error);
    assert!(!std::path::Path::new("/usr/pwned").exists());
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "echo from-sandbox > made.txt && pwd && id -u"}),
        )
        .await;
    let t = ok_text(&out);
    assert!(t.contains(env.ws_path().to_str().unwrap()));
    assert_eq!(
        std::fs::read_to_string(env.ws_path().join("made.txt")).unwrap(),
        "from-sandbox\n"
    );
}

#[tokio::test]
async fn sandboxed_exec_has_no_network() {
    let env = Env::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let cmd = format!("exec 3<>/dev/tcp/127.0.0.1/{port} && echo connected");
    // Control: the host can connect.
    let host_ctx = env.ctx().build();
    let out = env.call(&host_ctx, "exec", json!({"command": cmd})).await;
    assert_eq!(ok_text(&out).trim(), "connected");

    let ctx = sandboxed_ctx(&env, SandboxConfig::default());
    let out = env.call(&ctx, "exec", json!({"command": cmd})).await;
    assert!(out.is_error);
    assert!(!out.text_content().contains("connected\n"));
    let out = env
        .call(&ctx, "exec", json!({"command": "cat /proc/net/dev"}))
        .await;
    let t = ok_text(&out);
    assert!(t.contains("lo:"));
    assert_eq!(
        t.lines().filter(|l| l.contains(':')).count(),
        1,
        "only loopback: {t}"
    );

    // network: true shares the host network.
    let ctx = sandboxed_ctx(
        &env,
        SandboxConfig {
            network: true,
            ..SandboxConfig::default()
        },
    );
    let out = env.call(&ctx, "exec", json!({"command": cmd})).await;
    assert_eq!(ok_text(&out).trim(), "connected");
}

#[tokio::test]
async fn sandboxed_background_job_and_pty() {
    let env = Env::new();
    let ctx = sandboxed_ctx(&env, SandboxConfig::default());
    // bwrap exposes the controlling terminal as /dev/console inside its fresh /dev.
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": "tty && test -t 0 && echo is-a-tty", "pty": true}),
        )
        .await;
    assert!(ok_text(&out).contains("is-a-tty"), "{}", out.text_content());
    let marker = format!("pincer-sbx-kill-{}", std::process::id());
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": format!("exec -a {marker} sleep 60"), "background": true}),
        )
        .await;
    let id = out.details.as_ref().unwrap()["sessionId"]
        .as_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // bwrap's own command lines carry the marker too.
    assert!(procs_with(&marker) >= 1, "the sandboxed command is running");
    let out = env
        .call(&ctx, "process", json!({"action": "kill", "sessionId": id}))
        .await;
    assert_eq!(out.details.as_ref().unwrap()["status"], "killed");
    // Nothing inside the sandbox survives the kill…
    assert_eq!(
        wait_gone(&marker).await,
        0,
        "sandboxed command survived kill"
    );
    // …or a timeout.
    let marker = format!("pincer-sbx-timeout-{}", std::process::id());
    let out = env
        .call(
            &ctx,
            "exec",
            json!({"command": format!("exec -a {marker} sleep 60"), "timeoutSeconds": 1}),
        )
        .await;
    assert!(
        out.text_content().contains("timed out"),
        "{}",
        out.text_content()
    );
    assert_eq!(
        wait_gone(&marker).await,
        0,
        "sandboxed command survived its timeout"
    );
}

#[tokio::test]
async fn sandbox_placement_rules_and_file_views() {
    let env = Env::new();
    // host=sandbox with sandboxing off fails closed.
    let ctx = env.ctx().build();
    let out = env
        .call(&ctx, "exec", json!({"command": "true", "host": "sandbox"}))
        .await;
    assert_eq!(error_kind(&out), "denied");
    // A sandboxed session cannot pick the gateway host or elevate without permission.
    let ctx = sandboxed_ctx(&env, SandboxConfig::default());
    let out = env
        .call(&ctx, "exec", json!({"command": "true", "host": "gateway"}))
        .await;
    assert_eq!(error_kind(&out), "denied");
    let out = env
        .call(&ctx, "exec", json!({"command": "true", "elevated": true}))
        .await;
    assert_eq!(error_kind(&out), "denied");

    // File tools in a sandboxed session see only the workspace (no extra roots)…
    std::fs::create_dir_all(env.outside_path().join("extra")).unwrap();
    std::fs::write(env.outside_path().join("extra/f.txt"), "extra").unwrap();
    let ws = Workspace::new(env.ws_path())
        .unwrap()
        .with_extra_root(env.outside_path().join("extra"), true)
        .unwrap();
    let p = env.outside_path().join("extra/f.txt");
    let host_ctx = ToolContext::builder(Arc::new(ws.clone())).build();
    assert_eq!(
        ok_text(
            &env.call(&host_ctx, "read", json!({"path": p.to_str().unwrap()}))
                .await
        ),
        "extra"
    );
    let sb_ctx = ToolContext::builder(Arc::new(ws))
        .sandbox(SandboxMode::All, Some(sandbox(SandboxConfig::default())))
        .build();
    let out = env
        .call(&sb_ctx, "read", json!({"path": p.to_str().unwrap()}))
        .await;
    assert_eq!(error_kind(&out), "path_denied");
    // …and a read-only workspace refuses writes, in file tools and in exec.
    let ro = env
        .ctx()
        .sandbox(
            SandboxMode::All,
            Some(sandbox(SandboxConfig {
                workspace_read_only: true,
                ..SandboxConfig::default()
            })),
        )
        .build();
    let out = env
        .call(&ro, "write", json!({"path": "x.txt", "content": "x"}))
        .await;
    assert_eq!(error_kind(&out), "path_denied");
    let out = env
        .call(&ro, "exec", json!({"command": "touch y.txt"}))
        .await;
    assert!(out.is_error);
    assert!(!env.ws_path().join("x.txt").exists() && !env.ws_path().join("y.txt").exists());
}

#[tokio::test]
async fn a_session_whose_sandbox_cannot_run_fails_closed() {
    let env = Env::new();
    std::fs::write(env.ws_path().join("notes.txt"), "hello").unwrap();
    let ctx = env
        .ctx()
        .session_key("agent:main:telegram:group:42")
        .sandbox(SandboxMode::NonMain, None)
        .sandbox_unavailable("bubblewrap (bwrap) is not installed")
        .build();
    for (tool, args) in [
        ("exec", json!({"command": "echo ran"})),
        ("read", json!({"path": "notes.txt"})),
        ("write", json!({"path": "x.txt", "content": "x"})),
    ] {
        let out = env.call(&ctx, tool, args).await;
        assert!(out.is_error, "{tool} must not run on the host");
        assert!(
            crate::common::err_text(&out).contains("bubblewrap (bwrap) is not installed"),
            "{tool}: {}",
            crate::common::err_text(&out)
        );
    }
    assert!(!env.ws_path().join("x.txt").exists());
    // Tools that do not touch the host are unaffected.
    let out = env
        .call(&ctx, "memory_get", json!({"path": "MEMORY.md"}))
        .await;
    assert!(!out.is_error, "{:?}", out.content);
}
