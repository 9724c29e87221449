//! What the node host does when the gateway invokes it: `system.run`, `system.which`,
//! `system.notify`.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pincer_tools::CancellationToken;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::policy::{shell_quote, NodeExecPolicy, Verdict};

/// The commands this host declares (`connect.params.commands`).
pub const COMMANDS: [&str; 3] = ["system.run", "system.which", "system.notify"];
/// The capabilities it declares.
pub const CAPS: [&str; 1] = ["system"];

/// Bytes kept per output stream of `system.run` (the tail; `truncated` says when more came).
pub const MAX_OUTPUT_BYTES: usize = 256 * 1024;
/// Characters of output copied into `exec.finished`.
const EVENT_OUTPUT_CHARS: usize = 2_000;
/// How long `system.notify` may take.
const NOTIFY_TIMEOUT: Duration = Duration::from_secs(10);

/// How a command ended, as `node.invoke.result` reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Ok(Value),
    Err { code: String, message: String },
}

impl Outcome {
    pub fn err(code: &str, message: impl Into<String>) -> Outcome {
        Outcome::Err {
            code: code.to_string(),
            message: message.into(),
        }
    }
}

/// An `exec.*` lifecycle event for the gateway (`node.event`).
pub type ExecEvent = (String, Value);

/// Everything a command needs besides its params.
pub struct Context<'a> {
    pub policy: &'a NodeExecPolicy,
    /// The invoke id (the `exec.*` run id when the caller gave none).
    pub invoke_id: &'a str,
    /// The gateway's remaining budget for this invoke.
    pub budget: Duration,
    pub cancel: CancellationToken,
    pub events: tokio::sync::mpsc::UnboundedSender<ExecEvent>,
}

/// Run `command` with its JSON params.
pub async fn dispatch(command: &str, params: Value, ctx: Context<'_>) -> Outcome {
    match command {
        "system.run" => system_run(params, ctx).await,
        "system.which" => system_which(params),
        "system.notify" => system_notify(params, ctx.cancel).await,
        other => Outcome::err(
            "UNSUPPORTED_COMMAND",
            format!("this node does not implement {other:?}"),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// system.run

#[derive(Deserialize)]
#[serde(untagged)]
enum CommandArg {
    Argv(Vec<String>),
    Line(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RunParams {
    command: Option<CommandArg>,
    #[serde(default)]
    raw_command: Option<String>,
    #[serde(default)]
    cwd: Option<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    run_id: Option<String>,
    #[serde(default)]
    session_key: Option<String>,
    #[serde(default)]
    agent_id: Option<String>,
}

/// The bounded tail of a stream.
#[derive(Debug, Default)]
pub struct Tail {
    data: VecDeque<u8>,
    total: usize,
}

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len();
        self.data.extend(bytes);
        let excess = self.data.len().saturating_sub(MAX_OUTPUT_BYTES);
        self.data.drain(..excess);
    }

    pub fn truncated(&self) -> bool {
        self.total > self.data.len()
    }

    pub fn text(&self) -> String {
        let (a, b) = self.data.as_slices();
        let mut v = Vec::with_capacity(a.len() + b.len());
        v.extend_from_slice(a);
        v.extend_from_slice(b);
        String::from_utf8_lossy(&v).into_owned()
    }
}

/// How a process ended.
#[derive(Debug, Default)]
pub struct ProcessOutcome {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub cancelled: bool,
    pub stdout: Tail,
    pub stderr: Tail,
}

async fn pump<R: tokio::io::AsyncRead + Unpin>(mut r: R) -> Tail {
    let mut tail = Tail::default();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return tail,
            Ok(n) => tail.push(&buf[..n]),
        }
    }
}

fn kill_group(pid: Option<u32>) {
    let Some(pid) = pid.and_then(|p| i32::try_from(p).ok()) else {
        return;
    };
    if let Some(p) = rustix::process::Pid::from_raw(pid) {
        let _ = rustix::process::kill_process_group(p, rustix::process::Signal::KILL);
    }
}

/// Run `argv` in its own process group; kill the whole group on timeout or cancellation.
pub async fn run_process(
    argv: &[String],
    cwd: &Path,
    env: &[(String, String)],
    timeout: Duration,
    cancel: &CancellationToken,
) -> Result<ProcessOutcome, String> {
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {program:?}: {e}"))?;
    let pid = child.id();
    let out = child.stdout.take().map(|s| tokio::spawn(pump(s)));
    let err = child.stderr.take().map(|s| tokio::spawn(pump(s)));
    let mut outcome = ProcessOutcome::default();
    let status = tokio::select! {
        s = child.wait() => s.ok(),
        _ = tokio::time::sleep(timeout) => {
            outcome.timed_out = true;
            kill_group(pid);
            child.wait().await.ok()
        }
        _ = cancel.cancelled() => {
            outcome.cancelled = true;
            kill_group(pid);
            child.wait().await.ok()
        }
    };
    // Children of the command may still hold its pipes: kill the group, then stop waiting.
    kill_group(pid);
    if let Some(s) = status {
        outcome.exit_code = s.code();
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            outcome.signal = s.signal();
        }
    }
    let grace = Duration::from_secs(2);
    if let Some(h) = out {
        if let Ok(Ok(t)) = tokio::time::timeout(grace, h).await {
            outcome.stdout = t;
        }
    }
    if let Some(h) = err {
        if let Ok(Ok(t)) = tokio::time::timeout(grace, h).await {
            outcome.stderr = t;
        }
    }
    Ok(outcome)
}

fn clip_tail(s: &str, max_chars: usize) -> String {
    let n = s.chars().count();
    if n <= max_chars {
        return s.to_string();
    }
    let skip = n - max_chars;
    format!("…{}", s.chars().skip(skip).collect::<String>())
}

/// Loader and search-path overrides are ignored (the host's own `PATH` applies).
fn sanitize_env(overrides: BTreeMap<String, String>) -> BTreeMap<String, String> {
    overrides
        .into_iter()
        .filter(|(k, _)| {
            let u = k.to_ascii_uppercase();
            u != "PATH" && !u.starts_with("LD_") && !u.starts_with("DYLD_")
        })
        .collect()
}

async fn system_run(params: Value, ctx: Context<'_>) -> Outcome {
    let p: RunParams = match serde_json::from_value(params) {
        Ok(p) => p,
        Err(e) => {
            return Outcome::err("INVALID_REQUEST", format!("invalid system.run params: {e}"))
        }
    };
    let argv: Vec<String> = match p.command {
        Some(CommandArg::Argv(v)) if !v.is_empty() && !v[0].is_empty() => v,
        Some(CommandArg::Line(s)) if !s.trim().is_empty() => {
            vec!["/bin/sh".into(), "-c".into(), s]
        }
        _ => {
            return Outcome::err(
                "INVALID_REQUEST",
                "system.run needs command: an argv array (or a shell command line)",
            )
        }
    };
    let run_id = p
        .run_id
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| ctx.invoke_id.to_string());
    let display = p.raw_command.unwrap_or_else(|| shell_quote(&argv));
    let cwd: PathBuf = match p.cwd.filter(|c| !c.trim().is_empty()) {
        Some(c) => PathBuf::from(c),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/")),
    };
    if !cwd.is_dir() {
        return Outcome::err(
            "INVALID_REQUEST",
            format!("cwd {} is not a directory on this node", cwd.display()),
        );
    }
    let path_var = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let agent = p.agent_id.as_deref().unwrap_or("*");
    let base = json!({"runId": run_id, "sessionKey": p.session_key, "command": display, "cwd": cwd.display().to_string()});
    if let Verdict::Deny(reason) = ctx.policy.check(&argv, &cwd, &path_var, agent) {
        let mut ev = base.clone();
        ev["reason"] = json!(reason);
        let _ = ctx.events.send(("exec.denied".into(), ev));
        return Outcome::err("SYSTEM_RUN_DENIED", reason);
    }
    let env = match pincer_tools::exec::env::build_env(
        std::env::vars(),
        &[],
        &[],
        &sanitize_env(p.env),
    ) {
        Ok(e) => e,
        Err(e) => return Outcome::err("INVALID_REQUEST", e.to_string()),
    };
    // The command must end before the gateway stops waiting for it.
    let timeout = p
        .timeout_ms
        .filter(|t| *t > 0)
        .map(Duration::from_millis)
        .map_or(ctx.budget, |t| t.min(ctx.budget));
    let _ = ctx.events.send(("exec.started".into(), base.clone()));
    let started = std::time::Instant::now();
    let result = run_process(&argv, &cwd, &env, timeout, &ctx.cancel).await;
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            let mut ev = base.clone();
            ev["exitCode"] = json!(null);
            ev["timedOut"] = json!(false);
            ev["output"] = json!(e);
            let _ = ctx.events.send(("exec.finished".into(), ev));
            return Outcome::Ok(json!({
                "exitCode": null, "timedOut": false, "success": false,
                "stdout": "", "stderr": "", "error": e,
            }));
        }
    };
    let stdout = outcome.stdout.text();
    let stderr = outcome.stderr.text();
    let success = outcome.exit_code == Some(0) && !outcome.timed_out && !outcome.cancelled;
    let error = if outcome.timed_out {
        Some(format!(
            "command timed out after {} ms",
            timeout.as_millis()
        ))
    } else if outcome.cancelled {
        Some("command cancelled by the gateway".to_string())
    } else {
        outcome
            .signal
            .map(|s| format!("command killed by signal {s}"))
    };
    let mut ev = base;
    ev["exitCode"] = json!(outcome.exit_code);
    ev["timedOut"] = json!(outcome.timed_out);
    ev["durationMs"] = json!(started.elapsed().as_millis() as u64);
    ev["output"] = json!(clip_tail(
        &format!(
            "{stdout}{}{stderr}",
            if stderr.is_empty() { "" } else { "\n" }
        ),
        EVENT_OUTPUT_CHARS
    ));
    let _ = ctx.events.send(("exec.finished".into(), ev));
    let mut payload = json!({
        "exitCode": outcome.exit_code,
        "timedOut": outcome.timed_out,
        "success": success,
        "stdout": stdout,
        "stderr": stderr,
    });
    if let Some(e) = error {
        payload["error"] = json!(e);
    }
    if outcome.stdout.truncated() || outcome.stderr.truncated() {
        payload["truncated"] = json!(true);
    }
    Outcome::Ok(payload)
}

// ---------------------------------------------------------------------------------------------
// system.which

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// Resolve `bin` through `path_var` (or as a path when it contains `/`).
pub fn which(bin: &str, path_var: &str) -> Option<PathBuf> {
    if bin.contains('/') {
        let p = PathBuf::from(bin);
        return is_executable(&p).then_some(p);
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(bin))
        .find(|p| is_executable(p))
}

fn system_which(params: Value) -> Outcome {
    let bins: Vec<String> = match params.get("bins").and_then(Value::as_array) {
        Some(a) if !a.is_empty() && a.len() <= 64 => a
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        _ => {
            return Outcome::err(
                "INVALID_REQUEST",
                "system.which needs bins: 1 to 64 executable names",
            )
        }
    };
    let path_var = std::env::var("PATH").unwrap_or_default();
    let mut found = serde_json::Map::new();
    for b in bins {
        if let Some(p) = which(&b, &path_var) {
            found.insert(b, json!(p.display().to_string()));
        }
    }
    Outcome::Ok(json!({"bins": found}))
}

// ---------------------------------------------------------------------------------------------
// system.notify

/// Whether a desktop session is reachable (a notification daemon needs one).
fn desktop_session() -> bool {
    ["DISPLAY", "WAYLAND_DISPLAY", "DBUS_SESSION_BUS_ADDRESS"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty()))
}

async fn system_notify(params: Value, cancel: CancellationToken) -> Outcome {
    let s = |k: &str| {
        params
            .get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default()
            .to_string()
    };
    let (title, body) = (s("title"), s("body"));
    if title.is_empty() && body.is_empty() {
        return Outcome::err("INVALID_REQUEST", "system.notify needs a title or a body");
    }
    let path_var = std::env::var("PATH").unwrap_or_default();
    let Some(tool) = which("notify-send", &path_var) else {
        return Outcome::err(
            "UNSUPPORTED",
            "system.notify is not supported on this node: notify-send was not found \
             (install libnotify-bin or libnotify and run the node in a desktop session)",
        );
    };
    if !desktop_session() {
        return Outcome::err(
            "UNSUPPORTED",
            "system.notify is not supported on this node: no desktop session \
             (DISPLAY, WAYLAND_DISPLAY or DBUS_SESSION_BUS_ADDRESS is unset)",
        );
    }
    let urgency = match s("priority").as_str() {
        "passive" => "low",
        "timeSensitive" => "critical",
        _ => "normal",
    };
    let mut argv = vec![
        tool.display().to_string(),
        format!("--urgency={urgency}"),
        "--app-name=Pincer".to_string(),
        "--".to_string(),
    ];
    if title.is_empty() {
        argv.push(body);
    } else {
        argv.push(title);
        if !body.is_empty() {
            argv.push(body);
        }
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    let cwd = std::env::temp_dir();
    match run_process(&argv, &cwd, &env, NOTIFY_TIMEOUT, &cancel).await {
        Ok(o) if o.exit_code == Some(0) => Outcome::Ok(json!({"ok": true})),
        Ok(o) => Outcome::err(
            "UNAVAILABLE",
            format!(
                "notify-send failed ({}): {}",
                o.exit_code.map_or("killed".into(), |c| format!("exit {c}")),
                o.stderr.text().trim()
            ),
        ),
        Err(e) => Outcome::err("UNAVAILABLE", e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ctx<'a>(
        policy: &'a NodeExecPolicy,
        budget: Duration,
        cancel: CancellationToken,
    ) -> (Context<'a>, tokio::sync::mpsc::UnboundedReceiver<ExecEvent>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (
            Context {
                policy,
                invoke_id: "inv-1",
                budget,
                cancel,
                events: tx,
            },
            rx,
        )
    }

    #[tokio::test]
    async fn run_reports_output_exit_code_and_events() {
        let policy = NodeExecPolicy::default();
        let (c, mut rx) = ctx(&policy, Duration::from_secs(10), CancellationToken::new());
        let out = dispatch(
            "system.run",
            json!({"command": ["sh", "-c", "echo out; echo err >&2; exit 3"], "cwd": "/", "runId": "r1"}),
            c,
        )
        .await;
        let Outcome::Ok(p) = out else {
            panic!("{out:?}")
        };
        assert_eq!(p["stdout"], "out\n");
        assert_eq!(p["stderr"], "err\n");
        assert_eq!(p["exitCode"], 3);
        assert_eq!(p["success"], false);
        let (e1, v1) = rx.recv().await.unwrap();
        let (e2, v2) = rx.recv().await.unwrap();
        assert_eq!(
            (e1.as_str(), e2.as_str()),
            ("exec.started", "exec.finished")
        );
        assert_eq!(v1["runId"], "r1");
        assert_eq!(v2["exitCode"], 3);
    }

    #[tokio::test]
    async fn run_times_out_and_kills_the_process_group() {
        let policy = NodeExecPolicy::default();
        let (c, _rx) = ctx(&policy, Duration::from_secs(30), CancellationToken::new());
        let started = std::time::Instant::now();
        let out = dispatch(
            "system.run",
            json!({"command": "sleep 30 & sleep 30; echo never", "timeoutMs": 300}),
            c,
        )
        .await;
        let Outcome::Ok(p) = out else {
            panic!("{out:?}")
        };
        assert_eq!(p["timedOut"], true);
        assert!(p["error"].as_str().unwrap().contains("timed out"));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "background child held us"
        );
    }

    #[tokio::test]
    async fn cancellation_stops_the_command() {
        let policy = NodeExecPolicy::default();
        let cancel = CancellationToken::new();
        let (c, _rx) = ctx(&policy, Duration::from_secs(30), cancel.clone());
        let h = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            cancel.cancel();
        });
        let out = dispatch("system.run", json!({"command": ["sleep", "30"]}), c).await;
        h.await.unwrap();
        let Outcome::Ok(p) = out else {
            panic!("{out:?}")
        };
        assert!(p["error"].as_str().unwrap().contains("cancelled"));
    }

    #[tokio::test]
    async fn denied_commands_report_exec_denied() {
        let mut policy = NodeExecPolicy::default();
        policy.deny.push(crate::policy::entry("uname"));
        let (c, mut rx) = ctx(&policy, Duration::from_secs(5), CancellationToken::new());
        let out = dispatch("system.run", json!({"command": ["uname"]}), c).await;
        assert!(matches!(out, Outcome::Err { ref code, .. } if code == "SYSTEM_RUN_DENIED"));
        assert_eq!(rx.recv().await.unwrap().0, "exec.denied");
    }

    #[tokio::test]
    async fn bad_params_and_env_overrides() {
        let policy = NodeExecPolicy::default();
        let (c, _rx) = ctx(&policy, Duration::from_secs(5), CancellationToken::new());
        assert!(matches!(
            dispatch("system.run", json!({"command": []}), c).await,
            Outcome::Err { code, .. } if code == "INVALID_REQUEST"
        ));
        let (c, _rx) = ctx(&policy, Duration::from_secs(5), CancellationToken::new());
        let out = dispatch(
            "system.run",
            json!({"command": ["sh", "-c", "echo $FOO:$PATH_OK"], "env": {"FOO": "bar", "PATH": "/evil", "PATH_OK": "1"}}),
            c,
        )
        .await;
        let Outcome::Ok(p) = out else {
            panic!("{out:?}")
        };
        assert_eq!(p["stdout"], "bar:1\n");
    }

    #[test]
    fn which_finds_executables() {
        let out = system_which(json!({"bins": ["sh", "definitely-not-a-binary-xyz"]}));
        let Outcome::Ok(p) = out else {
            panic!("{out:?}")
        };
        assert!(p["bins"]["sh"].as_str().unwrap().ends_with("/sh"));
        assert!(p["bins"].get("definitely-not-a-binary-xyz").is_none());
        assert!(matches!(system_which(json!({})), Outcome::Err { .. }));
    }

    #[test]
    fn tail_keeps_the_end() {
        let mut t = Tail::default();
        t.push(&vec![b'a'; MAX_OUTPUT_BYTES]);
        t.push(b"end");
        assert!(t.truncated());
        assert!(t.text().ends_with("end"));
        assert_eq!(t.text().len(), MAX_OUTPUT_BYTES);
    }
}
