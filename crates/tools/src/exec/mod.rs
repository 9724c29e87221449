//! `exec`: run a shell command in the workspace (foreground, auto-background after `yieldMs`, or
//! background), with timeouts, output caps, a scrubbed environment, optional PTY, exec
//! security/approvals, and the bubblewrap sandbox for sandboxed sessions.

pub mod approvals;
pub mod env;
pub mod node;
pub mod process;
pub mod sandbox;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::context::ToolContext;
use crate::error::ToolError;
use crate::host::{ApprovalDecision, ExecApprovalRequest, HostError};
use crate::output::ToolOutput;
use crate::registry::{Tool, ToolSpec};
use crate::schema::builtin_spec;
use crate::util::{now_ms, num_to_usize, parse_args, tail_bytes, truncate_chars};

use approvals::{
    allow_always_entries, allowlist_match, analyze_command, decide, effective_policy,
    fallback_decision, ApprovalsFile, AskFallback, ExecAsk, ExecDecision, ExecSecurity,
};
use process::{job_summary, spawn_job, Job, KillOnDrop, SpawnSpec};

/// `tools.exec.*` (plus the caps this implementation adds).
#[derive(Debug, Clone)]
pub struct ExecConfig {
    pub security: ExecSecurity,
    pub ask: ExecAsk,
    /// Used when no approvals document overrides it.
    pub ask_fallback: AskFallback,
    /// `tools.exec.timeoutSeconds` (0 = no limit).
    pub timeout_seconds: u64,
    /// Default `yieldMs`.
    pub yield_ms: u64,
    /// Characters of output returned to the model per call (the tail is kept).
    pub max_output_chars: usize,
    /// Bytes of output retained per job.
    pub buffer_bytes: usize,
    /// How long an approval may stay unanswered.
    pub approval_timeout: Duration,
    pub safe_bins: Vec<String>,
    pub path_prepend: Vec<String>,
    /// Inherited variables kept even though they look secret (explicit opt-in).
    pub env_keep: Vec<String>,
    /// `tools.elevated.enabled` for this session's sender.
    pub elevated_allowed: bool,
    /// Shell used for commands.
    pub shell: PathBuf,
    /// Environment the command starts from (before scrubbing); `None` = the gateway's own.
    pub base_env: Option<Vec<(String, String)>>,
}

impl Default for ExecConfig {
    fn default() -> Self {
        let shell = ["/bin/bash", "/usr/bin/bash"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("/bin/sh"));
        Self {
            security: ExecSecurity::Full,
            ask: ExecAsk::Off,
            ask_fallback: AskFallback::Deny,
            timeout_seconds: 1800,
            yield_ms: 10_000,
            max_output_chars: 30_000,
            buffer_bytes: process::DEFAULT_BUFFER_BYTES,
            approval_timeout: Duration::from_secs(30 * 60),
            safe_bins: approvals::DEFAULT_SAFE_BINS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            path_prepend: Vec::new(),
            env_keep: Vec::new(),
            elevated_allowed: false,
            shell,
            base_env: None,
        }
    }
}

pub struct ExecTool {
    spec: ToolSpec,
}

impl Default for ExecTool {
    fn default() -> Self {
        Self {
            spec: builtin_spec("exec")
                .unwrap_or_else(|| ToolSpec::new("exec", "", json!({"type": "object"}))),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExecArgs {
    command: String,
    workdir: Option<String>,
    env: Option<BTreeMap<String, String>>,
    yield_ms: Option<f64>,
    background: Option<bool>,
    timeout_seconds: Option<f64>,
    pty: Option<bool>,
    elevated: Option<bool>,
    host: Option<String>,
    ask: Option<String>,
    #[allow(dead_code)]
    node: Option<String>,
    #[allow(dead_code)]
    title: Option<String>,
}

/// Where the command will run.
enum Placement {
    Gateway,
    Sandbox(Arc<sandbox::Sandbox>),
}

fn placement(a: &ExecArgs, ctx: &ToolContext) -> Result<Placement, ToolError> {
    let elevated = a.elevated.unwrap_or(false);
    match a.host.as_deref().unwrap_or("auto") {
        "node" => Err(ToolError::Unavailable(
            "exec host=node is not available on this gateway yet; omit host to run here.".into(),
        )),
        "sandbox" => ctx.sandbox.clone().map(Placement::Sandbox).ok_or_else(|| {
            ToolError::Denied(
                "exec host=sandbox was requested but sandboxing is off for this session \
                 (agents.defaults.sandbox.mode); refusing to run on the gateway host instead."
                    .into(),
            )
        }),
        host @ ("gateway" | "auto") => match &ctx.sandbox {
            None => Ok(Placement::Gateway),
            Some(_) if elevated && ctx.config.exec.elevated_allowed => Ok(Placement::Gateway),
            Some(_) if elevated => Err(ToolError::Denied(
                "Elevated exec is not enabled for this session (tools.elevated); the command \
                 stays in the sandbox."
                    .into(),
            )),
            Some(_) if host == "gateway" => Err(ToolError::Denied(
                "exec host=gateway is not allowed from a sandboxed session; omit host to run in \
                 the sandbox."
                    .into(),
            )),
            Some(sb) => Ok(Placement::Sandbox(Arc::clone(sb))),
        },
        other => Err(ToolError::invalid(
            "exec",
            format!("host must be auto, sandbox, gateway or node (got '{other}')"),
        )),
    }
}

/// Run the approval policy for a gateway-hosted command. `Ok(())` = may run.
async fn authorize(
    command: &str,
    cwd: &Path,
    path_var: &str,
    call_ask: Option<ExecAsk>,
    ctx: &ToolContext,
) -> Result<(), ToolError> {
    let cfg = &ctx.config.exec;
    let file = match &ctx.approvals_store {
        Some(store) => store.load().await.map_err(|e| {
            ToolError::Unavailable(format!("Exec approvals could not be loaded: {e}"))
        })?,
        None => ApprovalsFile::default(),
    };
    let (security, ask, doc_fallback) = effective_policy(
        cfg.security,
        cfg.ask,
        &file,
        &ctx.agent_id,
        call_ask,
        ctx.channel_origin,
    );
    let has_doc_fallback = file
        .agents
        .get(&*ctx.agent_id)
        .and_then(|a| a.policy.ask_fallback)
        .or(file.defaults.ask_fallback)
        .is_some();
    let fallback = if has_doc_fallback {
        doc_fallback
    } else {
        cfg.ask_fallback
    };
    let analysis = analyze_command(command, cwd, path_var);
    let entries = file
        .agents
        .get(&*ctx.agent_id)
        .map(|a| a.allowlist.clone())
        .unwrap_or_default();
    let matched = allowlist_match(analysis.as_ref(), &entries, &cfg.safe_bins, cwd);
    let allowlisted = matched.is_some();
    let verdict = match decide(security, ask, allowlisted) {
        ExecDecision::Ask(reason) => {
            ask_human(
                command,
                cwd,
                security,
                ask,
                reason,
                allowlisted,
                fallback,
                analysis.as_ref(),
                ctx,
            )
            .await?
        }
        other => other,
    };
    match verdict {
        ExecDecision::Allow => {
            if let (Some(ids), Some(store)) = (matched, &ctx.approvals_store) {
                let resolved = analysis
                    .as_ref()
                    .and_then(|a| a.segments.first())
                    .and_then(|s| s.resolved.as_ref())
                    .map(|p| p.to_string_lossy().into_owned());
                for id in ids {
                    let _ = store
                        .touch_entry(&ctx.agent_id, &id, now_ms(), resolved.as_deref())
                        .await;
                }
            }
            Ok(())
        }
        ExecDecision::Deny(reason) | ExecDecision::Ask(reason) => Err(ToolError::Denied(reason)),
    }
}

#[allow(clippy::too_many_arguments)]
async fn ask_human(
    command: &str,
    cwd: &Path,
    security: ExecSecurity,
    ask: ExecAsk,
    reason: String,
    allowlisted: bool,
    fallback: AskFallback,
    analysis: Option<&approvals::CommandAnalysis>,
    ctx: &ToolContext,
) -> Result<ExecDecision, ToolError> {
    let Some(host) = &ctx.hosts.approvals else {
        return Ok(fallback_decision(
            fallback,
            allowlisted,
            &format!("{reason}, and no approval channel is available"),
        ));
    };
    let timeout = ctx.config.exec.approval_timeout;
    let request = ExecApprovalRequest {
        command: command.to_owned(),
        command_argv: analysis
            .and_then(|a| (a.segments.len() == 1).then(|| a.segments[0].argv.clone()))
            .unwrap_or_default(),
        cwd: cwd.to_string_lossy().into_owned(),
        host: "gateway".into(),
        security: security.as_str().into(),
        ask: ask.as_str().into(),
        agent_id: ctx.agent_id.to_string(),
        session_key: ctx.session_key.to_string(),
        run_id: ctx.run_id.as_deref().map(str::to_owned),
        tool_call_id: ctx.tool_call_id.as_deref().map(str::to_owned),
        resolved_path: analysis
            .and_then(|a| a.segments.first())
            .and_then(|s| s.resolved.as_ref())
            .map(|p| p.to_string_lossy().into_owned()),
        warning_text: Some(reason.clone()),
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    };
    let ticket = match host.request(request).await {
        Ok(t) => t,
        // Nobody can answer (no approval client connected): the same as having no approval
        // channel at all, so askFallback decides.
        Err(HostError::Unavailable(why)) => {
            return Ok(fallback_decision(
                fallback,
                allowlisted,
                &format!("{reason}, and {why}"),
            ))
        }
        Err(e) => {
            return Err(ToolError::Unavailable(format!(
                "Exec approval could not be requested: {e}"
            )))
        }
    };
    let decision = tokio::select! {
        d = host.wait_decision(&ticket.id, timeout) => d.map_err(|e| {
            ToolError::Unavailable(format!("Waiting for exec approval {} failed: {e}", ticket.id))
        })?,
        () = ctx.cancel.cancelled() => return Err(ToolError::Cancelled),
    };
    Ok(match decision {
        Some(ApprovalDecision::AllowOnce) => ExecDecision::Allow,
        Some(ApprovalDecision::AllowAlways) => {
            if let (Some(store), Some(analysis)) = (&ctx.approvals_store, analysis) {
                for entry in allow_always_entries(analysis, cwd) {
                    store
                        .add_allowlist_entry(&ctx.agent_id, entry)
                        .await
                        .map_err(|e| {
                            ToolError::Failed(format!("Saving the allow-always grant failed: {e}"))
                        })?;
                }
            }
            ExecDecision::Allow
        }
        Some(ApprovalDecision::Deny) => ExecDecision::Deny(format!(
            "exec denied by the operator (approval {}). The command did not run.",
            ticket.id
        )),
        None => fallback_decision(
            fallback,
            allowlisted,
            &format!(
                "approval {} timed out after {}s without a decision",
                ticket.id,
                timeout.as_secs()
            ),
        ),
    })
}

fn completed_output(job: &Job, max_chars: usize, duration_ms: u64) -> ToolOutput {
    let snap = job.snapshot();
    let all = job.output();
    let shown = tail_bytes(&all, max_chars);
    let truncated = shown.len() < all.len() || snap.dropped_bytes > 0;
    let mut text = String::new();
    if truncated {
        text.push_str(&format!(
            "[output truncated: showing the last {} of {} bytes]\n",
            shown.len(),
            snap.total_bytes
        ));
    }
    text.push_str(if shown.is_empty() {
        "(no output)"
    } else {
        shown
    });
    let exit = snap.exit.unwrap_or(process::ExitInfo {
        code: None,
        signal: None,
    });
    let mut is_error = false;
    if snap.timed_out {
        is_error = true;
        text.push_str("\n\nCommand timed out and was killed.");
    } else if let Some(code) = exit.code.filter(|c| *c != 0) {
        is_error = true;
        text.push_str(&format!("\n\nCommand exited with code {code}"));
    } else if let Some(sig) = exit.signal {
        is_error = true;
        text.push_str(&format!("\n\nCommand was killed by signal {sig}"));
    }
    let mut details = job_summary(job);
    details["durationMs"] = json!(duration_ms);
    details["truncated"] = json!(truncated);
    ToolOutput::text(text)
        .with_details(details)
        .with_error(is_error)
}

#[async_trait]
impl Tool for ExecTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let a: ExecArgs = parse_args("exec", args)?;
        if a.command.trim().is_empty() {
            return Err(ToolError::invalid("exec", "command is empty"));
        }
        let call_ask = match a.ask.as_deref() {
            None => None,
            Some(s) => Some(ExecAsk::parse(s).ok_or_else(|| {
                ToolError::invalid(
                    "exec",
                    format!("ask must be off, on-miss or always (got '{s}')"),
                )
            })?),
        };
        let cfg = &ctx.config.exec;
        if a.host.as_deref() == Some("node") {
            if cfg.security == ExecSecurity::Deny {
                return Err(ToolError::Denied(
                    "exec is disabled by policy (tools.exec security=deny); the command did not run."
                        .into(),
                ));
            }
            let timeout_s = a
                .timeout_seconds
                .map_or(cfg.timeout_seconds, |t| num_to_usize(t) as u64);
            let run = node::NodeRun {
                command: &a.command,
                node: a.node.as_deref(),
                workdir: a.workdir.as_deref(),
                env: a.env.as_ref(),
                timeout: (timeout_s > 0).then(|| Duration::from_secs(timeout_s)),
            };
            return node::run_on_node(run, ctx).await;
        }
        let place = placement(&a, ctx)?;
        let ws = crate::fs::workspace_for(ctx);
        let cwd = match a.workdir.as_deref() {
            None | Some("") => ws.root().to_path_buf(),
            Some(w) if w.trim().is_empty() => {
                return Err(ToolError::invalid(
                    "exec",
                    "workdir must not be whitespace-only",
                ))
            }
            Some(w) => {
                let ws2 = Arc::clone(&ws);
                let w = w.to_owned();
                crate::util::blocking(move || {
                    let p = ws2.resolve(&w)?;
                    ws2.directory(&p)
                })
                .await?
            }
        };
        let inherited: Vec<(String, String)> = match &cfg.base_env {
            Some(base) => base.clone(),
            None => std::env::vars().collect(),
        };
        let env = env::build_env(
            inherited,
            &cfg.env_keep,
            &cfg.path_prepend,
            &a.env.clone().unwrap_or_default(),
        )?;
        let path_var = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        if cfg.security == ExecSecurity::Deny {
            return Err(ToolError::Denied(
                "exec is disabled by policy (tools.exec security=deny); the command did not run."
                    .into(),
            ));
        }
        // Host commands go through approvals; sandboxed commands are contained by the sandbox.
        if matches!(place, Placement::Gateway) {
            authorize(&a.command, &cwd, &path_var, call_ask, ctx).await?;
        }
        let pty = a.pty.unwrap_or(false);
        let shell = cfg.shell.to_string_lossy().into_owned();
        let inner = vec![shell.clone(), "-c".to_owned(), a.command.clone()];
        let (program, argv, env, sandboxed) = match &place {
            Placement::Gateway => (cfg.shell.clone(), inner[1..].to_vec(), env, false),
            Placement::Sandbox(sb) => {
                let mut env = env;
                for (k, v) in &mut env {
                    if k == "HOME" {
                        *v = ws.root().to_string_lossy().into_owned();
                    }
                }
                let args = sb.wrap_args(ws.root(), &cwd, &env, &inner, pty);
                (sb.bwrap_path().to_path_buf(), args, Vec::new(), true)
            }
        };
        let timeout_s = a
            .timeout_seconds
            .map_or(cfg.timeout_seconds, |t| num_to_usize(t) as u64);
        let timeout = (timeout_s > 0).then(|| Duration::from_secs(timeout_s));
        let started = std::time::Instant::now();
        let job = spawn_job(SpawnSpec {
            program,
            args: argv,
            env,
            cwd: cwd.clone(),
            pty,
            timeout,
            buffer_bytes: cfg.buffer_bytes,
            agent_id: ctx.agent_id.to_string(),
            session_key: ctx.session_key.to_string(),
            command: a.command.clone(),
            sandboxed,
        })?;
        let mut guard = KillOnDrop::new(&job);
        // Without the process tool the model could not reach a background job: run to the end.
        let can_background = ctx.tool_allowed("process");
        let background = can_background && a.background.unwrap_or(false);
        let yield_after = if can_background {
            Some(Duration::from_millis(
                a.yield_ms.map_or(cfg.yield_ms, |y| num_to_usize(y) as u64),
            ))
        } else {
            None
        };
        if !background {
            let mut rx = job.subscribe();
            let yield_at = yield_after.map(|d| tokio::time::Instant::now() + d);
            loop {
                if job.is_finished() {
                    guard.disarm();
                    let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                    let (cmd_title, _) = truncate_chars(&a.command, 80);
                    return Ok(completed_output(&job, cfg.max_output_chars, ms)
                        .with_meta(cmd_title.to_owned()));
                }
                let yield_sleep = async {
                    match yield_at {
                        Some(at) => tokio::time::sleep_until(at).await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    r = rx.changed() => { if r.is_err() { break; } }
                    () = yield_sleep => break,
                    () = ctx.cancel.cancelled() => {
                        job.kill(Duration::from_millis(500)).await;
                        return Err(ToolError::Cancelled);
                    }
                }
            }
        }
        if let Err(e) = ctx.processes.insert(Arc::clone(&job)) {
            job.kill(Duration::from_millis(500)).await;
            return Err(e);
        }
        guard.disarm();
        let tail = job.output();
        let (cmd_title, _) = truncate_chars(&a.command, 80);
        let mut details = job_summary(&job);
        details["tail"] = json!(tail_bytes(&tail, 2000));
        Ok(ToolOutput::text(format!(
            "Command still running (session {id}, pid {pid}). Use process with sessionId {id} to \
             poll, read the log, write input or kill it.{out}",
            id = job.id,
            pid = job.pid.map_or_else(|| "?".to_owned(), |p| p.to_string()),
            out = if tail.is_empty() {
                String::new()
            } else {
                format!("\n\nOutput so far:\n{}", tail_bytes(&tail, 2000))
            }
        ))
        .with_details(details)
        .with_meta(cmd_title.to_owned()))
    }
}
