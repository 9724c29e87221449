//! `pincer approvals list|approve|deny|policy`: the owner's side of exec approvals
//! (`exec.approval.*` to decide, `exec.approvals.get|set` for the approvals document).

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client_cmd::{one_call, print_json, report_error, ConnArgs};

#[derive(Subcommand)]
pub enum ApprovalsCmd {
    /// Commands waiting for a decision (id, agent, session, directory, command, time left).
    List(ConnArgs),
    /// Let a waiting command run (once, or with --always for this exact command and directory
    /// from now on).
    Approve(ApproveArgs),
    /// Refuse a waiting command; the agent is told it was denied.
    Deny(DecideArgs),
    /// Show or change the approvals policy (security, ask, askFallback, allowlists).
    Policy {
        #[command(subcommand)]
        cmd: PolicyCmd,
    },
}

#[derive(Args)]
pub struct DecideArgs {
    /// Approval id (or a unique prefix of at least 4 characters).
    pub id: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args)]
pub struct ApproveArgs {
    /// Approval id (or a unique prefix of at least 4 characters).
    pub id: String,
    /// Allow this exact command in this directory from now on (an allow-always grant).
    #[arg(long)]
    pub always: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Subcommand)]
pub enum PolicyCmd {
    /// Print the approvals document and the defaults in force.
    Get(ConnArgs),
    /// Change it: a whole document from --file, or single settings for the defaults (or for
    /// one agent with --agent).
    Set(PolicySetArgs),
}

#[derive(Args)]
pub struct PolicySetArgs {
    /// Replace the whole document with this JSON file (`{"version":1,"defaults":{…},"agents":{…}}`).
    #[arg(long, conflicts_with_all = ["security", "ask", "ask_fallback", "agent"])]
    pub file: Option<std::path::PathBuf>,
    /// deny | allowlist | full
    #[arg(long)]
    pub security: Option<String>,
    /// off | on-miss | always
    #[arg(long)]
    pub ask: Option<String>,
    /// What an unanswered prompt means: deny | allowlist | full
    #[arg(long)]
    pub ask_fallback: Option<String>,
    /// Set these for one agent instead of the defaults.
    #[arg(long)]
    pub agent: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

fn call(
    conn: &ConnArgs,
    method: &str,
    params: Value,
) -> Result<std::result::Result<Value, ExitCode>> {
    Ok(one_call(conn, method, Some(params))?.map_err(|e| report_error(&e)))
}

fn left(expires_at_ms: i64) -> String {
    let now = i64::try_from(pincer_gateway::util::now_ms()).unwrap_or(0);
    let s = (expires_at_ms - now).max(0) / 1000;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

fn print_list(list: &[Value]) {
    if list.is_empty() {
        println!("No commands are waiting for approval.");
        return;
    }
    for a in list {
        let r = &a["request"];
        let id = a["id"].as_str().unwrap_or_default();
        println!(
            "{}  {} left  agent {}  session {}",
            id,
            left(a["expiresAtMs"].as_i64().unwrap_or(0)),
            r["agentId"].as_str().unwrap_or("-"),
            r["sessionKey"].as_str().unwrap_or("-"),
        );
        if let Some(cwd) = r["cwd"].as_str() {
            println!("    in {cwd}");
        }
        println!("    $ {}", r["command"].as_str().unwrap_or_default());
        if let Some(w) = r["warningText"].as_str() {
            println!("    ({w})");
        }
    }
    println!(
        "\nDecide with `pincer approvals approve <id> [--always]` or `pincer approvals deny <id>` \
         (a unique id prefix is enough)."
    );
}

fn decide(conn: &ConnArgs, id: &str, decision: &str) -> Result<ExitCode> {
    match call(
        conn,
        "exec.approval.resolve",
        json!({"id": id, "decision": decision}),
    )? {
        Ok(v) => {
            if conn.json {
                print_json(&v, true);
            } else {
                let what = match decision {
                    "allow-once" => "approved (this once)",
                    "allow-always" => "approved (always, for this command and directory)",
                    _ => "denied",
                };
                println!("{id}: {what}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(code) => Ok(code),
    }
}

fn check_enum(name: &str, value: &str, allowed: &[&str]) -> Result<()> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        bail!(
            "--{name} must be one of {} (got {value:?})",
            allowed.join(", ")
        )
    }
}

fn policy_set(a: PolicySetArgs) -> Result<ExitCode> {
    let current = match call(&a.conn, "exec.approvals.get", json!({}))? {
        Ok(v) => v,
        Err(code) => return Ok(code),
    };
    let mut file = match &a.file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str::<Value>(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?
        }
        None => current["file"].clone(),
    };
    if a.file.is_none() {
        if a.security.is_none() && a.ask.is_none() && a.ask_fallback.is_none() {
            bail!("nothing to change: give --file, or --security/--ask/--ask-fallback");
        }
        let target = match &a.agent {
            Some(agent) => &mut file["agents"][agent.as_str()],
            None => &mut file["defaults"],
        };
        if !target.is_object() {
            *target = json!({});
        }
        if let Some(s) = &a.security {
            check_enum("security", s, &["deny", "allowlist", "full"])?;
            target["security"] = json!(s);
        }
        if let Some(s) = &a.ask {
            check_enum("ask", s, &["off", "on-miss", "always"])?;
            target["ask"] = json!(s);
        }
        if let Some(s) = &a.ask_fallback {
            check_enum("ask-fallback", s, &["deny", "allowlist", "full"])?;
            target["askFallback"] = json!(s);
        }
    }
    let params = json!({"file": file, "baseHash": current["hash"]});
    match call(&a.conn, "exec.approvals.set", params)? {
        Ok(v) => {
            if a.conn.json {
                print_json(&v, true);
            } else {
                print_policy(&v);
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(code) => Ok(code),
    }
}

fn print_policy(v: &Value) {
    let d = &v["resolvedDefaults"];
    println!(
        "defaults: security={} ask={} askFallback={}",
        d["security"].as_str().unwrap_or("?"),
        d["ask"].as_str().unwrap_or("?"),
        d["askFallback"].as_str().unwrap_or("?")
    );
    if let Some(agents) = v["file"]["agents"].as_object() {
        for (id, a) in agents {
            let n = a["allowlist"].as_array().map_or(0, Vec::len);
            let mut parts = Vec::new();
            for k in ["security", "ask", "askFallback"] {
                if let Some(s) = a[k].as_str() {
                    parts.push(format!("{k}={s}"));
                }
            }
            println!("agent {id}: {} allowlist entries {}", n, parts.join(" "));
            for e in a["allowlist"].as_array().into_iter().flatten() {
                println!(
                    "    {}{}{}",
                    e["pattern"].as_str().unwrap_or_default(),
                    e["cwd"]
                        .as_str()
                        .map(|c| format!("  in {c}"))
                        .unwrap_or_default(),
                    e["source"]
                        .as_str()
                        .map(|s| format!("  ({s})"))
                        .unwrap_or_default(),
                );
            }
        }
    }
    println!(
        "stored: {} (hash {})",
        if v["exists"] == true {
            "yes"
        } else {
            "no (defaults)"
        },
        v["hash"]
            .as_str()
            .map(|h| h.get(..12).unwrap_or(h))
            .unwrap_or("?")
    );
}

pub fn run(cmd: ApprovalsCmd) -> Result<ExitCode> {
    match cmd {
        ApprovalsCmd::List(conn) => match call(&conn, "exec.approval.list", json!({}))? {
            Ok(v) => {
                if conn.json {
                    print_json(&v, true);
                } else {
                    print_list(v.as_array().map(Vec::as_slice).unwrap_or_default());
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(code) => Ok(code),
        },
        ApprovalsCmd::Approve(a) => decide(
            &a.conn,
            &a.id,
            if a.always {
                "allow-always"
            } else {
                "allow-once"
            },
        ),
        ApprovalsCmd::Deny(a) => decide(&a.conn, &a.id, "deny"),
        ApprovalsCmd::Policy {
            cmd: PolicyCmd::Get(conn),
        } => match call(&conn, "exec.approvals.get", json!({}))? {
            Ok(v) => {
                if conn.json {
                    print_json(&v, true);
                } else {
                    print_policy(&v);
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(code) => Ok(code),
        },
        ApprovalsCmd::Policy {
            cmd: PolicyCmd::Set(a),
        } => policy_set(a),
    }
}
