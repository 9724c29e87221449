//! Exec jobs: spawning (pipes or PTY), bounded output capture, timeouts, kill, and the
//! registry of background jobs the `process` tool manages.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use crate::context::ToolContext;
use crate::error::ToolError;
use crate::output::ToolOutput;
use crate::registry::{Tool, ToolSpec};
use crate::schema::builtin_spec;
use crate::util::{now_ms, num_to_usize, parse_args, tail_bytes, truncate_chars};

/// Bytes kept per job (older output is dropped, counted).
pub const DEFAULT_BUFFER_BYTES: usize = 256 * 1024;
/// Jobs retained per registry (finished ones are pruned first).
pub const DEFAULT_MAX_JOBS: usize = 64;
/// `process poll` waits at most this long.
pub const MAX_POLL_WAIT_MS: u64 = 30_000;

/// Ring buffer of output bytes.
#[derive(Debug)]
struct OutputBuffer {
    data: VecDeque<u8>,
    cap: usize,
    /// Bytes ever written (absolute offset of the end of `data`).
    total: u64,
}

impl OutputBuffer {
    fn new(cap: usize) -> Self {
        Self {
            data: VecDeque::new(),
            cap,
            total: 0,
        }
    }
    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if bytes.len() >= self.cap {
            self.data.clear();
            self.data.extend(&bytes[bytes.len() - self.cap..]);
            return;
        }
        let overflow = (self.data.len() + bytes.len()).saturating_sub(self.cap);
        self.data.drain(..overflow);
        self.data.extend(bytes);
    }
    fn start(&self) -> u64 {
        self.total - self.data.len() as u64
    }
    fn dropped(&self) -> u64 {
        self.start()
    }
    /// Bytes from absolute offset `from` (clamped to what is retained).
    fn since(&self, from: u64) -> String {
        let skip = usize::try_from(from.saturating_sub(self.start())).unwrap_or(usize::MAX);
        let bytes: Vec<u8> = self.data.iter().skip(skip).copied().collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }
    fn all(&self) -> String {
        self.since(0)
    }
    fn clear(&mut self) {
        self.data.clear();
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: Option<i32>,
    pub signal: Option<i32>,
}

#[derive(Debug)]
struct JobState {
    output: OutputBuffer,
    exit: Option<ExitInfo>,
    finished_at_ms: Option<u64>,
    poll_cursor: u64,
    timed_out: bool,
    killed: bool,
}

type Stdin = Box<dyn AsyncWrite + Send + Unpin>;
type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Spawned = (
    tokio::process::Child,
    Option<Stdin>,
    Option<u32>,
    Vec<Reader>,
);

/// One running (or finished) command.
pub struct Job {
    pub id: String,
    pub agent_id: String,
    pub session_key: String,
    pub command: String,
    pub cwd: String,
    pub pid: Option<u32>,
    pub pty: bool,
    pub sandboxed: bool,
    pub started_at_ms: u64,
    state: Mutex<JobState>,
    version: watch::Sender<u64>,
    stdin: tokio::sync::Mutex<Option<Stdin>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("command", &self.command)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// A snapshot of a job for results.
#[derive(Debug, Clone)]
pub struct JobSnapshot {
    pub exit: Option<ExitInfo>,
    pub timed_out: bool,
    pub killed: bool,
    pub total_bytes: u64,
    pub dropped_bytes: u64,
    pub finished_at_ms: Option<u64>,
}

impl Job {
    fn lock(&self) -> std::sync::MutexGuard<'_, JobState> {
        // A poisoned lock only means a reader task panicked mid-push; the data is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn bump(&self) {
        self.version.send_modify(|v| *v += 1);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.version.subscribe()
    }

    pub fn is_finished(&self) -> bool {
        self.lock().exit.is_some()
    }

    pub fn snapshot(&self) -> JobSnapshot {
        let s = self.lock();
        JobSnapshot {
            exit: s.exit,
            timed_out: s.timed_out,
            killed: s.killed,
            total_bytes: s.output.total,
            dropped_bytes: s.output.dropped(),
            finished_at_ms: s.finished_at_ms,
        }
    }

    /// Everything retained.
    pub fn output(&self) -> String {
        self.lock().output.all()
    }

    /// Output since the last poll; advances the poll cursor.
    pub fn take_new_output(&self) -> String {
        let mut s = self.lock();
        let out = s.output.since(s.poll_cursor);
        s.poll_cursor = s.output.total;
        out
    }

    pub fn clear_output(&self) {
        let mut s = self.lock();
        s.output.clear();
        s.poll_cursor = s.output.total;
    }

    fn push_output(&self, bytes: &[u8]) {
        self.lock().output.push(bytes);
        self.bump();
    }

    /// Signal the whole process group (the command and everything it started). For sandboxed
    /// jobs the sandbox's PID-namespace init runs in its own session, so it and its group are
    /// signalled too; killing that init takes down everything inside the namespace.
    pub fn signal(&self, sig: rustix::process::Signal) -> bool {
        if self.is_finished() {
            return false;
        }
        let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) else {
            return false;
        };
        let mut targets = Vec::with_capacity(2);
        if self.sandboxed {
            targets.extend(child_pids(pid));
        }
        targets.push(pid);
        let mut any = false;
        for t in targets {
            if let Some(p) = rustix::process::Pid::from_raw(t) {
                any |= rustix::process::kill_process_group(p, sig).is_ok();
                any |= rustix::process::kill_process(p, sig).is_ok();
            }
        }
        any
    }

    /// SIGTERM, then SIGKILL if still alive after `grace`.
    pub async fn kill(&self, grace: Duration) {
        self.lock().killed = true;
        if !self.signal(rustix::process::Signal::TERM) {
            return;
        }
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + grace;
        while !self.is_finished() {
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                break;
            }
        }
        self.signal(rustix::process::Signal::KILL);
    }

    /// Wait until the job finished or `timeout` elapsed; true if finished.
    pub async fn wait_finished(&self, timeout: Duration) -> bool {
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.is_finished() {
                return true;
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                return self.is_finished();
            }
        }
    }

    /// Write to the job's stdin (or PTY); `eof` closes it afterwards.
    pub async fn write_stdin(&self, data: &[u8], eof: bool) -> Result<(), ToolError> {
        let mut guard = self.stdin.lock().await;
        let Some(w) = guard.as_mut() else {
            return Err(ToolError::Failed(format!(
                "Session {} has no open stdin (closed or finished).",
                self.id
            )));
        };
        w.write_all(data)
            .await
            .and(w.flush().await)
            .map_err(|e| ToolError::Failed(format!("write to session {} failed: {e}", self.id)))?;
        if eof {
            if let Some(mut w) = guard.take() {
                let _ = w.shutdown().await;
            }
        }
        Ok(())
    }
}

/// What to run.
pub struct SpawnSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: PathBuf,
    pub pty: bool,
    /// Kill the job after this long (`None` = no limit).
    pub timeout: Option<Duration>,
    pub buffer_bytes: usize,
    pub agent_id: String,
    pub session_key: String,
    pub command: String,
    pub sandboxed: bool,
}

async fn pump<R: AsyncRead + Unpin>(mut reader: R, job: Arc<Job>) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match reader.read(&mut buf).await {
            Ok(0) | Err(_) => break, // EOF, or EIO on a PTY whose child exited
            Ok(n) => job.push_output(&buf[..n]),
        }
    }
}

/// Start a job. Output is captured into a bounded buffer; a supervisor task records the exit
/// status and enforces the timeout (killing the whole process group).
pub fn spawn_job(spec: SpawnSpec) -> Result<Arc<Job>, ToolError> {
    let (version, _) = watch::channel(0u64);
    let spawn_err = |e: &dyn std::fmt::Display| {
        ToolError::Failed(format!("Failed to start {}: {e}", spec.program.display()))
    };
    let mut readers: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let (mut child, stdin, pid, out_readers): Spawned = if spec.pty {
        let (pty, pts) = pty_process::open().map_err(|e| spawn_err(&e))?;
        let _ = pty.resize(pty_process::Size::new(40, 120));
        let cmd = pty_process::Command::new(&spec.program)
            .args(&spec.args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&spec.cwd)
            .kill_on_drop(false);
        let child = cmd.spawn(pts).map_err(|e| spawn_err(&e))?;
        let pid = child.id();
        let (r, w) = pty.into_split();
        (
            child,
            Some(Box::new(w) as Stdin),
            pid,
            vec![Box::new(r) as Reader],
        )
    } else {
        let mut cmd = tokio::process::Command::new(&spec.program);
        cmd.args(&spec.args)
            .env_clear()
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(&spec.cwd)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd.spawn().map_err(|e| spawn_err(&e))?;
        let pid = child.id();
        let stdin = child.stdin.take().map(|s| Box::new(s) as Stdin);
        let mut rs: Vec<Reader> = Vec::new();
        if let Some(o) = child.stdout.take() {
            rs.push(Box::new(o));
        }
        if let Some(e) = child.stderr.take() {
            rs.push(Box::new(e));
        }
        (child, stdin, pid, rs)
    };
    let job = Arc::new(Job {
        id: new_job_id(),
        agent_id: spec.agent_id,
        session_key: spec.session_key,
        command: spec.command,
        cwd: spec.cwd.to_string_lossy().into_owned(),
        pid,
        pty: spec.pty,
        sandboxed: spec.sandboxed,
        started_at_ms: now_ms(),
        state: Mutex::new(JobState {
            output: OutputBuffer::new(spec.buffer_bytes.max(1024)),
            exit: None,
            finished_at_ms: None,
            poll_cursor: 0,
            timed_out: false,
            killed: false,
        }),
        version,
        stdin: tokio::sync::Mutex::new(stdin),
    });
    for r in out_readers {
        readers.push(tokio::spawn(pump(r, Arc::clone(&job))));
    }
    let supervisor_job = Arc::clone(&job);
    let timeout = spec.timeout;
    tokio::spawn(async move {
        let job = supervisor_job;
        let status = match timeout {
            Some(limit) => match tokio::time::timeout(limit, child.wait()).await {
                Ok(s) => s,
                Err(_) => {
                    job.lock().timed_out = true;
                    job.signal(rustix::process::Signal::TERM);
                    match tokio::time::timeout(Duration::from_secs(2), child.wait()).await {
                        Ok(s) => s,
                        Err(_) => {
                            job.signal(rustix::process::Signal::KILL);
                            child.wait().await
                        }
                    }
                }
            },
            None => child.wait().await,
        };
        // Background grandchildren may hold the pipes open: give readers a moment, not forever.
        for r in readers {
            let _ = tokio::time::timeout(Duration::from_millis(250), r).await;
        }
        let exit = match status {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                ExitInfo {
                    code: s.code(),
                    signal: s.signal(),
                }
            }
            Err(_) => ExitInfo {
                code: None,
                signal: None,
            },
        };
        {
            let mut s = job.lock();
            s.exit = Some(exit);
            s.finished_at_ms = Some(now_ms());
        }
        job.stdin.lock().await.take();
        job.bump();
    });
    Ok(job)
}

/// Direct children of `pid` (Linux `/proc/<pid>/task/<pid>/children`).
fn child_pids(pid: i32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Kills a foreground job if the call that owns it goes away (cancelled run, dropped future)
/// before the job finished or was handed to the background registry.
pub(crate) struct KillOnDrop(Option<Arc<Job>>);

impl KillOnDrop {
    pub(crate) fn new(job: &Arc<Job>) -> Self {
        Self(Some(Arc::clone(job)))
    }
    pub(crate) fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(job) = self.0.take() {
            job.lock().killed = true;
            job.signal(rustix::process::Signal::KILL);
        }
    }
}

fn new_job_id() -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    format!("exec-{}", &id[..12])
}

/// Background jobs, shared by an agent's sessions.
#[derive(Debug)]
pub struct ProcessRegistry {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
    max_jobs: usize,
}

impl Default for ProcessRegistry {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_JOBS)
    }
}

impl ProcessRegistry {
    pub fn new(max_jobs: usize) -> Self {
        Self {
            jobs: Mutex::new(HashMap::new()),
            max_jobs: max_jobs.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Job>>> {
        self.jobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Track a job. When full, the oldest finished job is dropped; if every job is still running
    /// the insert is refused (the caller kills the job and reports it).
    pub fn insert(&self, job: Arc<Job>) -> Result<(), ToolError> {
        let mut jobs = self.lock();
        if jobs.len() >= self.max_jobs {
            let oldest_finished = jobs
                .values()
                .filter(|j| j.is_finished())
                .min_by_key(|j| j.snapshot().finished_at_ms.unwrap_or(0))
                .map(|j| j.id.clone());
            match oldest_finished {
                Some(id) => {
                    jobs.remove(&id);
                }
                None => {
                    return Err(ToolError::Failed(format!(
                        "Too many background commands ({}) are running; kill some with process \
                         action=kill first.",
                        self.max_jobs
                    )))
                }
            }
        }
        jobs.insert(job.id.clone(), job);
        Ok(())
    }

    pub fn get(&self, agent_id: &str, id: &str) -> Option<Arc<Job>> {
        self.lock()
            .get(id)
            .filter(|j| j.agent_id == agent_id)
            .cloned()
    }

    pub fn list(&self, agent_id: &str) -> Vec<Arc<Job>> {
        let mut v: Vec<Arc<Job>> = self
            .lock()
            .values()
            .filter(|j| j.agent_id == agent_id)
            .cloned()
            .collect();
        v.sort_by_key(|j| j.started_at_ms);
        v
    }

    pub fn remove(&self, id: &str) -> Option<Arc<Job>> {
        self.lock().remove(id)
    }

    /// Kill every running job (gateway shutdown).
    pub async fn kill_all(&self) {
        let jobs: Vec<Arc<Job>> = self.lock().values().cloned().collect();
        for j in jobs {
            j.kill(Duration::from_millis(500)).await;
        }
    }
}

fn status_str(s: &JobSnapshot) -> &'static str {
    match s.exit {
        None => "running",
        Some(_) if s.timed_out => "timed_out",
        Some(_) if s.killed => "killed",
        Some(ExitInfo { code: Some(0), .. }) => "completed",
        Some(_) => "failed",
    }
}

pub(crate) fn job_summary(job: &Job) -> Value {
    let s = job.snapshot();
    let (preview, _) = truncate_chars(&job.command, 120);
    json!({
        "sessionId": job.id,
        "status": status_str(&s),
        "command": preview,
        "cwd": job.cwd,
        "pid": job.pid,
        "pty": job.pty,
        "sandboxed": job.sandboxed,
        "startedAt": job.started_at_ms,
        "endedAt": s.finished_at_ms,
        "exitCode": s.exit.and_then(|e| e.code),
        "exitSignal": s.exit.and_then(|e| e.signal),
        "outputBytes": s.total_bytes,
    })
}

// ---------------------------------------------------------------------------------------------
// process tool
// ---------------------------------------------------------------------------------------------

pub struct ProcessTool {
    spec: ToolSpec,
}

impl Default for ProcessTool {
    fn default() -> Self {
        Self {
            spec: builtin_spec("process")
                .unwrap_or_else(|| ToolSpec::new("process", "", json!({"type": "object"}))),
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProcessArgs {
    action: String,
    session_id: Option<String>,
    data: Option<String>,
    keys: Option<Vec<String>>,
    hex: Option<Vec<String>>,
    literal: Option<String>,
    text: Option<String>,
    bracketed: Option<bool>,
    eof: Option<bool>,
    offset: Option<f64>,
    limit: Option<f64>,
    timeout: Option<f64>,
}

/// Bytes for a named key (tmux-style names).
fn key_bytes(key: &str) -> Option<Vec<u8>> {
    let k = key.trim();
    let named: Option<&[u8]> = match k.to_ascii_lowercase().as_str() {
        "enter" | "return" | "cr" => Some(b"\r"),
        "tab" => Some(b"\t"),
        "space" => Some(b" "),
        "escape" | "esc" => Some(b"\x1b"),
        "backspace" | "bspace" => Some(b"\x7f"),
        "up" => Some(b"\x1b[A"),
        "down" => Some(b"\x1b[B"),
        "right" => Some(b"\x1b[C"),
        "left" => Some(b"\x1b[D"),
        "home" => Some(b"\x1b[H"),
        "end" => Some(b"\x1b[F"),
        "pageup" | "ppage" => Some(b"\x1b[5~"),
        "pagedown" | "npage" => Some(b"\x1b[6~"),
        "delete" | "dc" => Some(b"\x1b[3~"),
        _ => None,
    };
    if let Some(b) = named {
        return Some(b.to_vec());
    }
    // C-x → control character.
    let lower = k.to_ascii_lowercase();
    if let Some(c) = lower
        .strip_prefix("c-")
        .or_else(|| lower.strip_prefix("ctrl-"))
    {
        let ch = c.chars().next()?;
        if c.chars().count() == 1 && ch.is_ascii_alphabetic() {
            return Some(vec![(ch as u8) & 0x1f]);
        }
    }
    (k.chars().count() == 1).then(|| k.as_bytes().to_vec())
}

#[async_trait]
impl Tool for ProcessTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn invoke(&self, args: Value, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
        let a: ProcessArgs = parse_args("process", args)?;
        let registry = &ctx.processes;
        if a.action == "list" {
            let jobs: Vec<Value> = registry
                .list(&ctx.agent_id)
                .iter()
                .map(|j| job_summary(j))
                .collect();
            return Ok(ToolOutput::json(json!({"status": "ok", "sessions": jobs})));
        }
        let id = a
            .session_id
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                ToolError::invalid(
                    "process",
                    "sessionId is required for every action except list",
                )
            })?;
        let job = registry.get(&ctx.agent_id, id).ok_or_else(|| {
            ToolError::NotFound(format!(
                "No background exec session '{id}' for this agent. Use process action=list."
            ))
        })?;
        let max_chars = ctx.config.exec.max_output_chars;
        match a.action.as_str() {
            "poll" => {
                let wait = a
                    .timeout
                    .map_or(0, |t| num_to_usize(t) as u64)
                    .min(MAX_POLL_WAIT_MS);
                if wait > 0 {
                    let mut rx = job.subscribe();
                    let deadline = tokio::time::Instant::now() + Duration::from_millis(wait);
                    // Return as soon as there is new output or the job finished.
                    let before = job.snapshot().total_bytes;
                    while !job.is_finished() && job.snapshot().total_bytes == before {
                        tokio::select! {
                            r = tokio::time::timeout_at(deadline, rx.changed()) => if r.is_err() { break },
                            () = ctx.cancel.cancelled() => return Err(ToolError::Cancelled),
                        }
                    }
                }
                let new = job.take_new_output();
                let shown = tail_bytes(&new, max_chars);
                let mut summary = job_summary(&job);
                summary["output"] = json!(shown);
                summary["outputTruncated"] = json!(shown.len() < new.len());
                let state = summary["status"].as_str().unwrap_or("running").to_owned();
                let mut text = if new.is_empty() {
                    format!("(no new output) status={state}")
                } else {
                    format!("{shown}\n\nstatus={state}")
                };
                if let Some(code) = summary["exitCode"].as_i64() {
                    text.push_str(&format!(" exitCode={code}"));
                }
                Ok(ToolOutput::text(text).with_details(summary))
            }
            "log" => {
                let all = job.output();
                let lines: Vec<&str> = all.lines().collect();
                let limit = a.limit.map_or(200, num_to_usize).max(1);
                let start = match a.offset {
                    Some(o) => num_to_usize(o).min(lines.len()),
                    None => lines.len().saturating_sub(limit),
                };
                let end = (start + limit).min(lines.len());
                let text = lines[start..end].join("\n");
                let (text, cut) = truncate_chars(&text, max_chars);
                let mut summary = job_summary(&job);
                summary["offset"] = json!(start);
                summary["lines"] = json!(end - start);
                summary["totalLines"] = json!(lines.len());
                summary["truncated"] = json!(cut);
                Ok(ToolOutput::text(if text.is_empty() {
                    "(no output)".to_owned()
                } else {
                    text.to_owned()
                })
                .with_details(summary))
            }
            "write" => {
                let data = a.data.unwrap_or_default();
                job.write_stdin(data.as_bytes(), a.eof.unwrap_or(false))
                    .await?;
                Ok(ToolOutput::json(
                    json!({"status": "ok", "sessionId": job.id, "bytes": data.len()}),
                ))
            }
            "send-keys" => {
                let mut bytes = Vec::new();
                if let Some(l) = &a.literal {
                    bytes.extend_from_slice(l.as_bytes());
                }
                for h in a.hex.iter().flatten() {
                    let h = h.trim().trim_start_matches("0x");
                    let b = u8::from_str_radix(h, 16).map_err(|_| {
                        ToolError::invalid("process", format!("hex byte '{h}' is not valid hex"))
                    })?;
                    bytes.push(b);
                }
                for k in a.keys.iter().flatten() {
                    bytes.extend(key_bytes(k).ok_or_else(|| {
                        ToolError::invalid("process", format!("unknown key '{k}'"))
                    })?);
                }
                if bytes.is_empty() {
                    return Err(ToolError::invalid(
                        "process",
                        "send-keys needs keys, hex or literal",
                    ));
                }
                job.write_stdin(&bytes, false).await?;
                Ok(ToolOutput::json(
                    json!({"status": "ok", "sessionId": job.id, "bytes": bytes.len()}),
                ))
            }
            "submit" => {
                job.write_stdin(b"\r", false).await?;
                Ok(ToolOutput::json(
                    json!({"status": "ok", "sessionId": job.id}),
                ))
            }
            "paste" => {
                let text = a.text.unwrap_or_default();
                let data = if a.bracketed.unwrap_or(true) {
                    format!("\x1b[200~{text}\x1b[201~")
                } else {
                    text
                };
                job.write_stdin(data.as_bytes(), false).await?;
                Ok(ToolOutput::json(
                    json!({"status": "ok", "sessionId": job.id}),
                ))
            }
            "kill" => {
                let was_running = !job.is_finished();
                job.kill(Duration::from_secs(2)).await;
                job.wait_finished(Duration::from_secs(5)).await;
                let mut summary = job_summary(&job);
                summary["wasRunning"] = json!(was_running);
                Ok(ToolOutput::json(summary))
            }
            "clear" => {
                job.clear_output();
                Ok(ToolOutput::json(
                    json!({"status": "ok", "sessionId": job.id, "cleared": true}),
                ))
            }
            "remove" => {
                if !job.is_finished() {
                    job.kill(Duration::from_secs(2)).await;
                }
                registry.remove(&job.id);
                Ok(ToolOutput::json(
                    json!({"status": "ok", "sessionId": job.id, "removed": true}),
                ))
            }
            other => Err(ToolError::invalid(
                "process",
                format!("unknown action '{other}'"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_buffer_is_bounded() {
        let mut b = OutputBuffer::new(8);
        b.push(b"hello ");
        b.push(b"world!");
        assert_eq!(b.all(), "o world!");
        assert_eq!(b.total, 12);
        assert_eq!(b.dropped(), 4);
        assert_eq!(b.since(10), "d!");
        assert_eq!(b.since(0), "o world!");
        b.push(b"0123456789");
        assert_eq!(b.all(), "23456789");
    }

    #[test]
    fn keys() {
        assert_eq!(key_bytes("Enter"), Some(b"\r".to_vec()));
        assert_eq!(key_bytes("C-c"), Some(vec![3]));
        assert_eq!(key_bytes("Up"), Some(b"\x1b[A".to_vec()));
        assert_eq!(key_bytes("nonsense"), None);
    }
}
