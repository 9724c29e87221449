//! Exec security (`deny|allowlist|full`), ask (`off|on-miss|always`), the approvals document
//! (allowlists, allow-always grants) and the pure decision logic. Persistence is the
//! [`ApprovalsStore`] trait (SQLite table `exec_approvals_config` at integration).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::host::HostError;
use crate::util::glob_match;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecSecurity {
    // Order = strictness (larger is stricter).
    #[default]
    Full,
    Allowlist,
    Deny,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExecAsk {
    #[default]
    Off,
    OnMiss,
    Always,
}

impl ExecAsk {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(Self::Off),
            "on-miss" => Some(Self::OnMiss),
            "always" => Some(Self::Always),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::OnMiss => "on-miss",
            Self::Always => "always",
        }
    }
}

impl ExecSecurity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Allowlist => "allowlist",
            Self::Deny => "deny",
        }
    }
}

/// What happens when a prompt is needed but nobody answers in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AskFallback {
    #[default]
    Deny,
    Allowlist,
    Full,
}

/// `tools.exec.mode` → (security, ask).
pub fn mode_to_policy(mode: &str) -> Option<(ExecSecurity, ExecAsk)> {
    Some(match mode {
        "deny" => (ExecSecurity::Deny, ExecAsk::Off),
        "allowlist" => (ExecSecurity::Allowlist, ExecAsk::Off),
        "ask" | "auto" => (ExecSecurity::Allowlist, ExecAsk::OnMiss),
        "full" => (ExecSecurity::Full, ExecAsk::Off),
        _ => return None,
    })
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AllowlistEntry {
    pub id: String,
    /// Resolved binary path glob or bare command-name glob.
    pub pattern: String,
    /// Regex over the arguments joined by spaces, or `sha256:argv:<hex>` for an exact argv.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arg_pattern: Option<String>,
    /// `allow-always` for generated entries; absent for manual ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Generated entries are bound to the directory they were approved in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_resolved_path: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalsPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<ExecSecurity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask: Option<ExecAsk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ask_fallback: Option<AskFallback>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_allow_skills: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalsAgent {
    #[serde(flatten)]
    pub policy: ApprovalsPolicy,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowlist: Vec<AllowlistEntry>,
}

/// The approvals document (`exec.approvals.get|set` `file`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalsFile {
    pub version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<serde_json::Value>,
    #[serde(default)]
    pub defaults: ApprovalsPolicy,
    #[serde(default)]
    pub agents: BTreeMap<String, ApprovalsAgent>,
}

impl Default for ApprovalsFile {
    fn default() -> Self {
        Self {
            version: 1,
            socket: None,
            defaults: ApprovalsPolicy::default(),
            agents: BTreeMap::new(),
        }
    }
}

/// Persistence of the approvals document.
#[async_trait]
pub trait ApprovalsStore: Send + Sync {
    async fn load(&self) -> Result<ApprovalsFile, HostError>;
    /// Append an allowlist entry for `agent_id` (allow-always).
    async fn add_allowlist_entry(
        &self,
        agent_id: &str,
        entry: AllowlistEntry,
    ) -> Result<(), HostError>;
    /// Record a use of entry `entry_id`.
    async fn touch_entry(
        &self,
        agent_id: &str,
        entry_id: &str,
        used_at_ms: u64,
        resolved_path: Option<&str>,
    ) -> Result<(), HostError>;
}

/// In-memory store (tests; gateways without persistence).
#[derive(Debug, Default)]
pub struct MemoryApprovalsStore {
    file: Mutex<ApprovalsFile>,
}

impl MemoryApprovalsStore {
    pub fn new(file: ApprovalsFile) -> Self {
        Self {
            file: Mutex::new(file),
        }
    }
    pub fn snapshot(&self) -> ApprovalsFile {
        self.file.lock().map(|f| f.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl ApprovalsStore for MemoryApprovalsStore {
    async fn load(&self) -> Result<ApprovalsFile, HostError> {
        Ok(self.snapshot())
    }
    async fn add_allowlist_entry(
        &self,
        agent_id: &str,
        entry: AllowlistEntry,
    ) -> Result<(), HostError> {
        let mut f = self
            .file
            .lock()
            .map_err(|_| HostError::Failed("approvals store poisoned".into()))?;
        f.agents
            .entry(agent_id.to_owned())
            .or_default()
            .allowlist
            .push(entry);
        Ok(())
    }
    async fn touch_entry(
        &self,
        agent_id: &str,
        entry_id: &str,
        used_at_ms: u64,
        resolved_path: Option<&str>,
    ) -> Result<(), HostError> {
        let mut f = self
            .file
            .lock()
            .map_err(|_| HostError::Failed("approvals store poisoned".into()))?;
        if let Some(e) = f
            .agents
            .get_mut(agent_id)
            .and_then(|a| a.allowlist.iter_mut().find(|e| e.id == entry_id))
        {
            e.last_used_at = Some(used_at_ms);
            e.last_resolved_path = resolved_path.map(str::to_owned);
        }
        Ok(())
    }
}

/// Effective (security, ask, askFallback): the stricter of config and the approvals document
/// (agent entry over defaults), then the per-call `ask` can only harden — except that a
/// channel-origin call cannot raise a host `ask=off`.
pub fn effective_policy(
    config_security: ExecSecurity,
    config_ask: ExecAsk,
    file: &ApprovalsFile,
    agent_id: &str,
    call_ask: Option<ExecAsk>,
    channel_origin: bool,
) -> (ExecSecurity, ExecAsk, AskFallback) {
    let agent = file.agents.get(agent_id).map(|a| &a.policy);
    let doc_security = agent.and_then(|a| a.security).or(file.defaults.security);
    let doc_ask = agent.and_then(|a| a.ask).or(file.defaults.ask);
    let fallback = agent
        .and_then(|a| a.ask_fallback)
        .or(file.defaults.ask_fallback)
        .unwrap_or_default();
    let security = doc_security.map_or(config_security, |d| d.max(config_security));
    let mut ask = doc_ask.map_or(config_ask, |d| d.max(config_ask));
    if let Some(call) = call_ask {
        if !(channel_origin && ask == ExecAsk::Off) {
            ask = ask.max(call);
        }
    }
    (security, ask, fallback)
}

/// One simple command of a shell line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub argv: Vec<String>,
    /// Absolute path the executable resolves to (PATH lookup or relative to cwd).
    pub resolved: Option<PathBuf>,
    /// Invoked by bare name (through PATH).
    pub via_path: bool,
}

/// A shell command split into segments for allowlist matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandAnalysis {
    pub segments: Vec<Segment>,
    pub has_redirect: bool,
}

/// Split `command` into simple commands. `None` when the line uses constructs whose executables
/// cannot be known statically (command substitution, subshells, variables in command position,
/// unbalanced quotes): such commands never match an allowlist.
pub fn analyze_command(command: &str, cwd: &Path, path_var: &str) -> Option<CommandAnalysis> {
    let mut segments: Vec<Vec<String>> = vec![Vec::new()];
    let mut has_redirect = false;
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = command.chars().peekable();
    let flush = |cur: &mut String, in_word: &mut bool, segs: &mut Vec<Vec<String>>| {
        if *in_word {
            if let Some(last) = segs.last_mut() {
                last.push(std::mem::take(cur));
            }
            *in_word = false;
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return None,
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch) => cur.push(ch),
                            None => return None,
                        },
                        Some('$') | Some('`') => return None,
                        Some(ch) => cur.push(ch),
                        None => return None,
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some('\n') | None => {}
                    Some(ch) => cur.push(ch),
                }
            }
            '`' | '(' | ')' | '{' | '}' => return None,
            '$' => {
                // `$VAR` in an argument is fine for matching purposes only when it is not the
                // executable; command position is checked below.
                if chars.peek() == Some(&'(') {
                    return None;
                }
                in_word = true;
                cur.push('$');
            }
            '|' | ';' | '&' | '\n' => {
                flush(&mut cur, &mut in_word, &mut segments);
                if c == '&' && chars.peek() == Some(&'>') {
                    has_redirect = true;
                    continue;
                }
                if matches!(chars.peek(), Some('|') | Some('&')) {
                    chars.next();
                }
                if segments.last().is_some_and(|s| !s.is_empty()) {
                    segments.push(Vec::new());
                }
            }
            '>' | '<' => {
                has_redirect = true;
                // Process substitution `<(…)` cannot be analysed.
                if chars.peek() == Some(&'(') {
                    return None;
                }
                // A redirect target like `2>` leaves a digit word behind; drop it.
                if in_word && cur.chars().all(|ch| ch.is_ascii_digit()) {
                    cur.clear();
                    in_word = false;
                }
                flush(&mut cur, &mut in_word, &mut segments);
                while matches!(chars.peek(), Some('>') | Some('&')) {
                    chars.next();
                }
                // Skip the target word.
                while chars.peek().is_some_and(|ch| ch.is_whitespace()) {
                    chars.next();
                }
                while chars
                    .peek()
                    .is_some_and(|ch| !ch.is_whitespace() && !matches!(ch, '|' | ';' | '&'))
                {
                    chars.next();
                }
            }
            c if c.is_whitespace() => flush(&mut cur, &mut in_word, &mut segments),
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    flush(&mut cur, &mut in_word, &mut segments);
    let segments: Vec<Segment> = segments
        .into_iter()
        .filter(|s| !s.is_empty())
        .map(|argv| {
            // Leading `VAR=value` assignments are not the executable.
            let start = argv
                .iter()
                .position(|w| !is_assignment(w))
                .unwrap_or(argv.len());
            argv[start..].to_vec()
        })
        .filter(|argv| !argv.is_empty())
        .map(|argv| {
            let exe = argv[0].clone();
            let via_path = !exe.contains('/');
            let resolved = if via_path {
                find_in_path(&exe, path_var)
            } else {
                let p = cwd.join(&exe);
                std::fs::canonicalize(p).ok()
            };
            Segment {
                argv,
                resolved,
                via_path,
            }
        })
        .collect();
    if segments.is_empty() || segments.iter().any(|s| s.argv[0].contains('$')) {
        return None;
    }
    Some(CommandAnalysis {
        segments,
        has_redirect,
    })
}

fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit())
    })
}

fn find_in_path(exe: &str, path_var: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(exe))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .and_then(|p| std::fs::canonicalize(&p).ok().or(Some(p)))
}

/// `sha256:argv:<hex>` of the arguments (argv without the executable).
pub fn argv_hash(args: &[String]) -> String {
    let mut h = Sha256::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            h.update([0u8]);
        }
        h.update(a.as_bytes());
    }
    let digest = h.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:argv:{hex}")
}

fn entry_matches(entry: &AllowlistEntry, seg: &Segment, cwd: &Path) -> bool {
    let pattern = expand_tilde(&entry.pattern);
    let path_match = if pattern.contains('/') {
        seg.resolved
            .as_ref()
            .is_some_and(|r| glob_match(&pattern, &r.to_string_lossy(), false))
    } else {
        // Bare names only match commands invoked through PATH.
        seg.via_path && glob_match(&pattern, &seg.argv[0], false)
    };
    if !path_match {
        return false;
    }
    if let Some(bound) = &entry.cwd {
        if Path::new(bound) != cwd {
            return false;
        }
    }
    let args = &seg.argv[1..];
    match &entry.arg_pattern {
        None => true,
        Some(p) if p.starts_with("sha256:argv:") => *p == argv_hash(args),
        Some(p) => regex_lite::Regex::new(p).is_ok_and(|re| re.is_match(&args.join(" "))),
    }
}

fn expand_tilde(p: &str) -> String {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return format!("{}/{rest}", home.to_string_lossy());
        }
    }
    p.to_owned()
}

/// Default safe bins (stdin-only filters).
pub const DEFAULT_SAFE_BINS: &[&str] = &["cut", "uniq", "head", "tail", "tr", "wc"];
const SAFE_BIN_DENIED_FLAGS: &[&str] = &["--follow", "--retry", "-F", "-f", "--files0-from"];

/// A safe bin used as a stdin-only filter: only flags and numeric values, no file operands.
fn is_safe_bin_use(seg: &Segment, safe_bins: &[String]) -> bool {
    let name = seg.argv[0].rsplit('/').next().unwrap_or_default();
    if !seg.via_path || !safe_bins.iter().any(|b| b == name) {
        return false;
    }
    let trusted_dir = seg
        .resolved
        .as_ref()
        .and_then(|r| r.parent())
        .is_some_and(|d| d == Path::new("/bin") || d == Path::new("/usr/bin"));
    trusted_dir
        && seg.argv[1..].iter().all(|a| {
            !SAFE_BIN_DENIED_FLAGS.contains(&a.as_str())
                && (a.starts_with('-') || a.chars().all(|c| c.is_ascii_digit()))
        })
}

/// Which allowlist entries satisfy the command: `Some(ids)` when every segment is covered by an
/// entry or is a safe-bin filter; `None` on a miss. Redirections never satisfy the allowlist.
pub fn allowlist_match(
    analysis: Option<&CommandAnalysis>,
    entries: &[AllowlistEntry],
    safe_bins: &[String],
    cwd: &Path,
) -> Option<Vec<String>> {
    let analysis = analysis?;
    if analysis.has_redirect {
        return None;
    }
    let mut used = Vec::new();
    for seg in &analysis.segments {
        if let Some(e) = entries.iter().find(|e| entry_matches(e, seg, cwd)) {
            used.push(e.id.clone());
        } else if !is_safe_bin_use(seg, safe_bins) {
            return None;
        }
    }
    Some(used)
}

/// The policy verdict before any human is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecDecision {
    Allow,
    Deny(String),
    Ask(String),
}

pub fn decide(security: ExecSecurity, ask: ExecAsk, allowlisted: bool) -> ExecDecision {
    match (security, ask) {
        (ExecSecurity::Deny, _) => ExecDecision::Deny(
            "exec is disabled by policy (security=deny); the command did not run.".into(),
        ),
        (_, ExecAsk::Always) => {
            ExecDecision::Ask("approval required for every command (ask=always)".into())
        }
        (_, ExecAsk::OnMiss) if !allowlisted => {
            ExecDecision::Ask("command is not in the exec allowlist (ask=on-miss)".into())
        }
        (ExecSecurity::Allowlist, ExecAsk::Off) if !allowlisted => ExecDecision::Deny(
            "exec denied: the command is not in the exec allowlist (security=allowlist, ask=off); \
             the command did not run."
                .into(),
        ),
        _ => ExecDecision::Allow,
    }
}

/// The verdict when an approval prompt timed out (or no approval host is reachable).
pub fn fallback_decision(fallback: AskFallback, allowlisted: bool, reason: &str) -> ExecDecision {
    match fallback {
        AskFallback::Full => ExecDecision::Allow,
        AskFallback::Allowlist if allowlisted => ExecDecision::Allow,
        AskFallback::Allowlist => ExecDecision::Deny(format!(
            "exec denied: {reason}; askFallback=allowlist and the command is not allowlisted. \
             The command did not run."
        )),
        AskFallback::Deny => ExecDecision::Deny(format!(
            "exec denied: {reason} (askFallback=deny). The command did not run."
        )),
    }
}

/// Allow-always entries for an approved command: one per segment, bound to the exact argv and
/// the working directory.
pub fn allow_always_entries(analysis: &CommandAnalysis, cwd: &Path) -> Vec<AllowlistEntry> {
    analysis
        .segments
        .iter()
        .map(|seg| AllowlistEntry {
            id: uuid::Uuid::new_v4().to_string(),
            pattern: seg
                .resolved
                .as_ref()
                .map_or_else(|| seg.argv[0].clone(), |p| p.to_string_lossy().into_owned()),
            arg_pattern: Some(argv_hash(&seg.argv[1..])),
            source: Some("allow-always".into()),
            cwd: Some(cwd.to_string_lossy().into_owned()),
            last_used_at: None,
            last_resolved_path: seg
                .resolved
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        })
        .collect()
}
