//! The node's own exec approval policy: `<node state dir>/exec-approvals.json`.
//!
//! The gateway already gates `system.run` twice (the node's approved command surface, and
//! `operator.admin` per invoke); this file is the machine owner's last word, enforced on the
//! machine itself. It is the exec-approvals document of `pincer-tools`
//! ([`pincer_tools::exec::approvals::ApprovalsFile`]: `defaults` and per-agent `security`
//! `deny|allowlist|full`, `ask`, `askFallback`, allowlists) plus `deny`: entries that refuse a
//! command whatever else says. Matching is the tools crate's (resolved executables per shell
//! segment, argument patterns, safe bins). A headless node has no one to ask, so `ask` always
//! resolves through `askFallback` (default `deny`).
//!
//! Default (written on first start so the owner can see and edit it): `security: "full"`,
//! `ask: "off"`, as the reference's node hosts, with no deny rules.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pincer_tools::exec::approvals::{
    allowlist_match, analyze_command, decide, effective_policy, fallback_decision, AllowlistEntry,
    ApprovalsFile, ApprovalsPolicy, CommandAnalysis, ExecAsk, ExecDecision, ExecSecurity,
    DEFAULT_SAFE_BINS,
};
use serde::{Deserialize, Serialize};

/// File name under the node state dir.
pub const POLICY_FILE: &str = "exec-approvals.json";

/// The policy document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeExecPolicy {
    #[serde(flatten)]
    pub approvals: ApprovalsFile,
    /// Commands refused whatever the rest of the policy says (same entry syntax as allowlists).
    #[serde(default)]
    pub deny: Vec<AllowlistEntry>,
}

impl Default for NodeExecPolicy {
    fn default() -> Self {
        let approvals = ApprovalsFile {
            defaults: ApprovalsPolicy {
                security: Some(ExecSecurity::Full),
                ask: Some(ExecAsk::Off),
                ask_fallback: None,
                auto_allow_skills: None,
            },
            ..ApprovalsFile::default()
        };
        NodeExecPolicy {
            approvals,
            deny: Vec::new(),
        }
    }
}

/// Policy file errors (named file, reason).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The verdict for one `system.run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny(String),
}

impl NodeExecPolicy {
    /// Load the policy, writing the default (0600) when the file does not exist yet. A file
    /// that does not parse is an error: the node refuses to run commands rather than guess.
    pub fn load_or_create(dir: &Path) -> Result<NodeExecPolicy, PolicyError> {
        let path = dir.join(POLICY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| PolicyError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let policy = NodeExecPolicy::default();
                let text = serde_json::to_string_pretty(&policy).unwrap_or_default();
                crate::files::write_private(&path, text.as_bytes())
                    .map_err(|source| PolicyError::Io { path, source })?;
                Ok(policy)
            }
            Err(source) => Err(PolicyError::Io { path, source }),
        }
    }

    /// Decide whether `argv` may run in `cwd` for `agent_id` (`*` when the caller named none).
    pub fn check(&self, argv: &[String], cwd: &Path, path_var: &str, agent_id: &str) -> Verdict {
        let analysis = analyze_argv(argv, cwd, path_var);
        if !self.deny.is_empty() {
            let Some(a) = &analysis else {
                return Verdict::Deny(
                    "exec denied: the command cannot be checked against the node's deny rules \
                     (command substitution, subshells or variables in command position)"
                        .into(),
                );
            };
            for seg in &a.segments {
                let single = CommandAnalysis {
                    segments: vec![seg.clone()],
                    has_redirect: false,
                };
                if allowlist_match(Some(&single), &self.deny, &[], cwd).is_some() {
                    return Verdict::Deny(format!(
                        "exec denied by the node's deny rules ({}): {}",
                        POLICY_FILE,
                        seg.argv.first().map(String::as_str).unwrap_or("")
                    ));
                }
            }
        }
        let (security, ask, fallback) = effective_policy(
            ExecSecurity::Full,
            ExecAsk::Off,
            &self.approvals,
            agent_id,
            None,
            false,
        );
        let mut entries: Vec<AllowlistEntry> = Vec::new();
        for id in [agent_id, "*"] {
            if let Some(a) = self.approvals.agents.get(id) {
                entries.extend(a.allowlist.iter().cloned());
            }
        }
        let safe: Vec<String> = DEFAULT_SAFE_BINS.iter().map(|s| s.to_string()).collect();
        let allowlisted = allowlist_match(analysis.as_ref(), &entries, &safe, cwd).is_some();
        let decision = match decide(security, ask, allowlisted) {
            // Nobody to ask on a headless node: the fallback decides.
            ExecDecision::Ask(reason) => fallback_decision(fallback, allowlisted, &reason),
            other => other,
        };
        match decision {
            ExecDecision::Allow => Verdict::Allow,
            ExecDecision::Deny(why) | ExecDecision::Ask(why) => Verdict::Deny(why),
        }
    }
}

/// `sh -c '…'` and friends are judged by the script they run; any other argv by its words.
fn analyze_argv(argv: &[String], cwd: &Path, path_var: &str) -> Option<CommandAnalysis> {
    let shell = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .is_some_and(|n| matches!(n, "sh" | "bash" | "zsh" | "dash"));
    if shell && argv.len() == 3 && matches!(argv[1].as_str(), "-c" | "-lc") {
        return analyze_command(&argv[2], cwd, path_var);
    }
    analyze_command(&shell_quote(argv), cwd, path_var)
}

/// POSIX single-quote every word.
pub fn shell_quote(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// A deny/allow entry for a pattern (helper for tests and docs).
pub fn entry(pattern: &str) -> AllowlistEntry {
    AllowlistEntry {
        id: pattern.to_string(),
        pattern: pattern.to_string(),
        ..Default::default()
    }
}

/// Agents map helper (tests).
pub fn agents_with_allowlist(
    agent: &str,
    entries: Vec<AllowlistEntry>,
    security: ExecSecurity,
) -> BTreeMap<String, pincer_tools::exec::approvals::ApprovalsAgent> {
    let mut m = BTreeMap::new();
    m.insert(
        agent.to_string(),
        pincer_tools::exec::approvals::ApprovalsAgent {
            policy: ApprovalsPolicy {
                security: Some(security),
                ..Default::default()
            },
            allowlist: entries,
        },
    );
    m
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn argv(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

    #[test]
    fn default_policy_is_written_and_allows() {
        let dir = tempfile::tempdir().unwrap();
        let p = NodeExecPolicy::load_or_create(dir.path()).unwrap();
        assert!(dir.path().join(POLICY_FILE).exists());
        assert_eq!(
            p.check(&argv(&["uname", "-a"]), Path::new("/"), PATH, "*"),
            Verdict::Allow
        );
        let again = NodeExecPolicy::load_or_create(dir.path()).unwrap();
        assert_eq!(again, p);
    }

    #[test]
    fn deny_rules_win_even_inside_shell_wrappers() {
        let mut p = NodeExecPolicy::default();
        p.deny.push(entry("rm"));
        let cwd = Path::new("/");
        assert!(matches!(
            p.check(&argv(&["rm", "-rf", "/tmp/x"]), cwd, PATH, "*"),
            Verdict::Deny(m) if m.contains("deny rules")
        ));
        assert!(matches!(
            p.check(
                &argv(&["sh", "-c", "echo hi && rm -f /tmp/x"]),
                cwd,
                PATH,
                "*"
            ),
            Verdict::Deny(_)
        ));
        // Unanalysable commands cannot be checked against deny rules: refused.
        assert!(matches!(
            p.check(&argv(&["sh", "-c", "$(echo rm) x"]), cwd, PATH, "*"),
            Verdict::Deny(m) if m.contains("cannot be checked")
        ));
        assert_eq!(p.check(&argv(&["uname"]), cwd, PATH, "*"), Verdict::Allow);
    }

    #[test]
    fn allowlist_security_with_fallback() {
        let mut p = NodeExecPolicy::default();
        p.approvals.defaults.security = Some(ExecSecurity::Allowlist);
        p.approvals.agents =
            agents_with_allowlist("*", vec![entry("uname")], ExecSecurity::Allowlist);
        let cwd = Path::new("/");
        assert_eq!(
            p.check(&argv(&["uname", "-a"]), cwd, PATH, "*"),
            Verdict::Allow
        );
        assert!(matches!(
            p.check(&argv(&["id"]), cwd, PATH, "*"),
            Verdict::Deny(m) if m.contains("allowlist")
        ));
        // ask=on-miss has nobody to ask: askFallback (deny) decides.
        p.approvals.defaults.ask = Some(ExecAsk::OnMiss);
        p.approvals.agents.clear();
        assert!(matches!(
            p.check(&argv(&["id"]), cwd, PATH, "*"),
            Verdict::Deny(m) if m.contains("askFallback")
        ));
        p.approvals.defaults.security = Some(ExecSecurity::Deny);
        assert!(matches!(
            p.check(&argv(&["uname"]), cwd, PATH, "*"),
            Verdict::Deny(_)
        ));
    }

    #[test]
    fn broken_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(POLICY_FILE), "{nope").unwrap();
        let e = NodeExecPolicy::load_or_create(dir.path()).unwrap_err();
        assert!(e.to_string().contains(POLICY_FILE));
    }

    #[test]
    fn quoting() {
        assert_eq!(
            shell_quote(&argv(&["echo", "a b", "it's"])),
            r"echo 'a b' 'it'\''s'"
        );
    }
}
