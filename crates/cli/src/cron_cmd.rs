//! `pincer cron list | add | edit | rm | run | runs | status` (RPCs `cron.*` to the gateway).

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use pincer_automations::duration::{format_duration_ms, parse_duration_ms, DurationUnit};
use serde_json::{json, Map, Value};

use crate::client_cmd::{one_call, print_json, report_error, ConnArgs};

#[derive(Subcommand)]
pub enum CronSub {
    /// List automations (enabled ones; --all for every job).
    List {
        /// Include disabled jobs.
        #[arg(long)]
        all: bool,
        /// Only this agent's jobs.
        #[arg(long)]
        agent: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Create an automation: one schedule (--cron, --every or --at) and one payload
    /// (--message for an agent turn, --system-event for a main-session event).
    Add(AddArgs),
    /// Change an automation (only the given fields change).
    Edit(EditArgs),
    /// Remove an automation.
    #[command(alias = "remove")]
    Rm {
        id: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Run an automation now (its schedule is unchanged).
    Run {
        id: String,
        /// Only run when it is due.
        #[arg(long)]
        due: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Run history (of one job, or of every job).
    Runs {
        id: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: u64,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Scheduler status.
    Status {
        #[command(flatten)]
        conn: ConnArgs,
    },
}

/// Schedule flags (add and edit).
#[derive(Args, Clone, Default)]
pub struct ScheduleArgs {
    /// Cron expression (5 or 6 fields), e.g. "0 8 * * 1-5".
    #[arg(long = "cron", value_name = "EXPR", conflicts_with_all = ["every", "at"])]
    pub cron: Option<String>,
    /// IANA time zone of --cron (default: the gateway host's zone).
    #[arg(long)]
    pub tz: Option<String>,
    /// Run at the exact minute (no top-of-hour stagger).
    #[arg(long)]
    pub exact: bool,
    /// Interval, e.g. 30m, 2h, 1d.
    #[arg(long, value_name = "DURATION", conflicts_with = "at")]
    pub every: Option<String>,
    /// One shot: an ISO time or a delay from now (20m, 2h).
    #[arg(long, value_name = "WHEN")]
    pub at: Option<String>,
}

impl ScheduleArgs {
    fn to_json(&self) -> Result<Option<Value>> {
        if let Some(expr) = &self.cron {
            let mut s = json!({"kind": "cron", "expr": expr});
            if let Some(tz) = &self.tz {
                s["tz"] = json!(tz);
            }
            if self.exact {
                s["staggerMs"] = json!(0);
            }
            return Ok(Some(s));
        }
        if let Some(every) = &self.every {
            let ms = parse_duration_ms(every, DurationUnit::Minutes)
                .map_err(|e| anyhow::anyhow!("--every {every:?}: {e}"))?;
            return Ok(Some(json!({"kind": "every", "everyMs": ms})));
        }
        if let Some(at) = &self.at {
            return Ok(Some(json!({"kind": "at", "at": at})));
        }
        if self.tz.is_some() || self.exact {
            bail!("--tz and --exact go with --cron");
        }
        Ok(None)
    }
}

#[derive(Args)]
pub struct AddArgs {
    /// Job name.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// Agent turn: the message the agent gets when the job fires.
    #[arg(long, conflicts_with = "system_event")]
    pub message: Option<String>,
    /// Main-session system event text (no model call by itself; the heartbeat sees it).
    #[arg(long)]
    pub system_event: Option<String>,
    /// Where the agent turn runs: isolated (default for --message), main, current or
    /// session:<key>.
    #[arg(long)]
    pub session: Option<String>,
    /// The conversation a `current` job belongs to.
    #[arg(long)]
    pub session_key: Option<String>,
    /// Agent id (default: the default agent).
    #[arg(long)]
    pub agent: Option<String>,
    /// Wake the heartbeat now or at its next tick (system events).
    #[arg(long, value_parser = ["now", "next-heartbeat"])]
    pub wake: Option<String>,
    /// Model override (provider/model) for the agent turn.
    #[arg(long)]
    pub model: Option<String>,
    /// Thinking level for the agent turn.
    #[arg(long)]
    pub thinking: Option<String>,
    /// Timeout of the agent turn, in seconds.
    #[arg(long)]
    pub timeout_seconds: Option<u64>,
    /// Deliver the result to this channel (with --to); default: announce to the agent's main chat.
    #[arg(long)]
    pub channel: Option<String>,
    /// Recipient on --channel.
    #[arg(long)]
    pub to: Option<String>,
    /// POST the finished run to this URL instead.
    #[arg(long, conflicts_with_all = ["channel", "no_deliver"])]
    pub webhook: Option<String>,
    /// Keep the result in the run's session.
    #[arg(long)]
    pub no_deliver: bool,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
    /// Delete after a successful run (default for --at).
    #[arg(long)]
    pub delete_after_run: bool,
    /// Description.
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args)]
pub struct EditArgs {
    pub id: String,
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// New agent-turn message.
    #[arg(long)]
    pub message: Option<String>,
    /// New system-event text.
    #[arg(long, conflicts_with = "message")]
    pub system_event: Option<String>,
    #[arg(long)]
    pub model: Option<String>,
    #[arg(long, conflicts_with = "disable")]
    pub enable: bool,
    #[arg(long)]
    pub disable: bool,
    #[arg(long)]
    pub description: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

fn delivery(args: &AddArgs) -> Option<Value> {
    if args.no_deliver {
        return Some(json!({"mode": "none"}));
    }
    if let Some(url) = &args.webhook {
        return Some(json!({"mode": "webhook", "to": url}));
    }
    if args.channel.is_some() || args.to.is_some() {
        let mut d = json!({"mode": "announce"});
        if let Some(c) = &args.channel {
            d["channel"] = json!(c);
        }
        if let Some(t) = &args.to {
            d["to"] = json!(t);
        }
        return Some(d);
    }
    None
}

/// The `cron.add` params of `pincer cron add`.
pub fn add_params(args: &AddArgs) -> Result<Value> {
    let schedule = args
        .schedule
        .to_json()?
        .context("a schedule is required: --cron EXPR, --every DURATION or --at WHEN")?;
    let payload = match (&args.message, &args.system_event) {
        (Some(m), None) => {
            let mut p = json!({"kind": "agentTurn", "message": m});
            if let Some(model) = &args.model {
                p["model"] = json!(model);
            }
            if let Some(t) = &args.thinking {
                p["thinking"] = json!(t);
            }
            if let Some(t) = args.timeout_seconds {
                p["timeoutSeconds"] = json!(t);
            }
            p
        }
        (None, Some(text)) => json!({"kind": "systemEvent", "text": text}),
        _ => bail!("a payload is required: --message TEXT (agent turn) or --system-event TEXT"),
    };
    let mut p = json!({"name": args.name, "schedule": schedule, "payload": payload});
    let m = p.as_object_mut().context("params")?;
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            m.insert(k.into(), v);
        }
    };
    put("sessionTarget", args.session.clone().map(Value::from));
    put("sessionKey", args.session_key.clone().map(Value::from));
    put("agentId", args.agent.clone().map(Value::from));
    put("wakeMode", args.wake.clone().map(Value::from));
    put("delivery", delivery(args));
    put("description", args.description.clone().map(Value::from));
    if args.disabled {
        put("enabled", Some(json!(false)));
    }
    if args.delete_after_run {
        put("deleteAfterRun", Some(json!(true)));
    }
    Ok(p)
}

/// The `cron.update` patch of `pincer cron edit`.
pub fn edit_patch(args: &EditArgs) -> Result<Map<String, Value>> {
    let mut patch = Map::new();
    if let Some(n) = &args.name {
        patch.insert("name".into(), json!(n));
    }
    if let Some(s) = args.schedule.to_json()? {
        patch.insert("schedule".into(), s);
    }
    if let Some(m) = &args.message {
        let mut p = json!({"kind": "agentTurn", "message": m});
        if let Some(model) = &args.model {
            p["model"] = json!(model);
        }
        patch.insert("payload".into(), p);
    } else if let Some(t) = &args.system_event {
        patch.insert("payload".into(), json!({"kind": "systemEvent", "text": t}));
    } else if let Some(model) = &args.model {
        patch.insert("payload".into(), json!({"model": model}));
    }
    if args.enable {
        patch.insert("enabled".into(), json!(true));
    }
    if args.disable {
        patch.insert("enabled".into(), json!(false));
    }
    if let Some(d) = &args.description {
        patch.insert("description".into(), json!(d));
    }
    if patch.is_empty() {
        bail!("nothing to change: give at least one field (see pincer cron edit --help)");
    }
    Ok(patch)
}

fn schedule_text(s: &Value) -> String {
    match s["kind"].as_str() {
        Some("cron") => {
            let mut t = format!("cron {}", s["expr"].as_str().unwrap_or("?"));
            if let Some(tz) = s["tz"].as_str() {
                t.push_str(&format!(" ({tz})"));
            }
            t
        }
        Some("every") => format!(
            "every {}",
            format_duration_ms(s["everyMs"].as_u64().unwrap_or(0))
        ),
        Some("at") => format!("at {}", s["at"].as_str().unwrap_or("?")),
        other => other.unwrap_or("?").to_string(),
    }
}

fn when(ms: Option<i64>, now: i64) -> String {
    match ms {
        None => "-".into(),
        Some(t) => {
            let d = t - now;
            let abs = format_duration_ms(d.unsigned_abs());
            if d >= 0 {
                format!("in {abs}")
            } else {
                format!("{abs} ago")
            }
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn print_job(j: &Value) {
    println!(
        "{}  {}",
        j["id"].as_str().unwrap_or("?"),
        j["name"].as_str().unwrap_or("?")
    );
    println!("  schedule: {}", schedule_text(&j["schedule"]));
    println!(
        "  payload: {} → {}",
        j["payload"]["kind"].as_str().unwrap_or("?"),
        j["sessionTarget"].as_str().unwrap_or("?")
    );
    println!(
        "  enabled: {}  next run: {}",
        j["enabled"],
        when(j["nextRunAtMs"].as_i64(), now_ms())
    );
}

fn answer(conn: &ConnArgs, method: &str, params: Value, show: impl Fn(&Value)) -> Result<ExitCode> {
    match one_call(conn, method, Some(params))? {
        Ok(p) if conn.json => {
            print_json(&p, true);
            Ok(ExitCode::SUCCESS)
        }
        Ok(p) => {
            show(&p);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report_error(&e)),
    }
}

pub fn run(sub: CronSub) -> Result<ExitCode> {
    match sub {
        CronSub::List { all, agent, conn } => {
            let mut params = json!({"includeDisabled": all, "limit": 200});
            if let Some(a) = agent {
                params["agentId"] = json!(a);
            }
            answer(&conn, "cron.list", params, |p| {
                let jobs = p["jobs"].as_array().cloned().unwrap_or_default();
                if jobs.is_empty() {
                    println!("no automations");
                }
                let now = now_ms();
                for j in &jobs {
                    let id = j["id"].as_str().unwrap_or("?");
                    println!(
                        "{:<8}  {:<28} {:<34} {:<12} {:<8} {}",
                        id.get(..8).unwrap_or(id),
                        j["name"].as_str().unwrap_or("?"),
                        schedule_text(&j["schedule"]),
                        when(j["nextRunAtMs"].as_i64(), now),
                        if j["enabled"] == true {
                            "enabled"
                        } else {
                            "disabled"
                        },
                        j["state"]["lastStatus"].as_str().unwrap_or("-"),
                    );
                }
                if p["hasMore"] == true {
                    println!("… {} automations in total", p["total"]);
                }
            })
        }
        CronSub::Add(args) => {
            let params = add_params(&args)?;
            answer(&args.conn, "cron.add", params, |j| {
                println!("created");
                print_job(j);
            })
        }
        CronSub::Edit(args) => {
            let patch = edit_patch(&args)?;
            let id = resolve_id(&args.conn, &args.id)?;
            answer(
                &args.conn,
                "cron.update",
                json!({"id": id, "patch": patch}),
                |j| {
                    println!("updated");
                    print_job(j);
                },
            )
        }
        CronSub::Rm { id, conn } => {
            let id = resolve_id(&conn, &id)?;
            answer(&conn, "cron.remove", json!({"id": id}), |p| {
                println!("removed {}", p["jobId"].as_str().unwrap_or("?"));
            })
        }
        CronSub::Run { id, due, conn } => {
            let id = resolve_id(&conn, &id)?;
            let mode = if due { "due" } else { "force" };
            answer(
                &conn,
                "cron.run",
                json!({"id": id, "mode": mode}),
                |p| match p["runId"].as_str() {
                    Some(run) => println!("started run {run} (see: pincer cron runs {id})"),
                    None => println!(
                        "not started: {}",
                        p["reason"].as_str().unwrap_or("unknown reason")
                    ),
                },
            )
        }
        CronSub::Runs { id, limit, conn } => {
            let mut params = json!({"limit": limit.clamp(1, 200)});
            match id {
                Some(id) => params["id"] = json!(resolve_id(&conn, &id)?),
                None => params["scope"] = json!("all"),
            }
            answer(&conn, "cron.runs", params, |p| {
                let entries = p["entries"].as_array().cloned().unwrap_or_default();
                if entries.is_empty() {
                    println!("no runs");
                }
                let now = now_ms();
                for e in &entries {
                    let job = e["jobId"].as_str().unwrap_or("?");
                    println!(
                        "{:<12} {:<8} {:<11} {:<9} {}",
                        when(e["runAtMs"].as_i64(), now),
                        job.get(..8).unwrap_or(job),
                        e["status"].as_str().unwrap_or("?"),
                        e["trigger"].as_str().unwrap_or(""),
                        e["error"]
                            .as_str()
                            .or_else(|| e["summary"].as_str())
                            .unwrap_or("")
                    );
                }
            })
        }
        CronSub::Status { conn } => answer(&conn, "cron.status", json!({}), |p| {
            println!(
                "scheduler {}: {} jobs ({} enabled), {} running, next wake {}",
                if p["enabled"] == true {
                    "on"
                } else {
                    "off (nothing runs on schedule)"
                },
                p["jobs"],
                p["enabledJobs"],
                p["running"],
                when(p["nextWakeAtMs"].as_i64(), now_ms())
            );
        }),
    }
}

/// A full job id, or a unique prefix of one (as `list` prints them).
fn resolve_id(conn: &ConnArgs, id: &str) -> Result<String> {
    if id.len() == 36 {
        return Ok(id.to_string());
    }
    let list = match one_call(
        conn,
        "cron.list",
        Some(json!({"includeDisabled": true, "limit": 200})),
    )? {
        Ok(l) => l,
        Err(e) => bail!("cannot list automations: {e}"),
    };
    let matches: Vec<&str> = list["jobs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|j| j["id"].as_str())
        .filter(|j| j.starts_with(id))
        .collect();
    match matches.as_slice() {
        [one] => Ok((*one).to_string()),
        [] => Ok(id.to_string()),
        _ => bail!(
            "{id:?} matches {} automations; give more of the id",
            matches.len()
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        sub: CronSub,
    }

    fn parse(args: &[&str]) -> CronSub {
        let mut v = vec!["t"];
        v.extend_from_slice(args);
        T::try_parse_from(v).unwrap().sub
    }

    #[test]
    fn add_builds_the_job() {
        let CronSub::Add(a) = parse(&[
            "add",
            "--name",
            "build",
            "--cron",
            "0 8 * * 1-5",
            "--tz",
            "Europe/Berlin",
            "--message",
            "Check the build",
            "--channel",
            "telegram",
            "--to",
            "42",
        ]) else {
            panic!()
        };
        let p = add_params(&a).unwrap();
        assert_eq!(
            p["schedule"],
            json!({"kind": "cron", "expr": "0 8 * * 1-5", "tz": "Europe/Berlin"})
        );
        assert_eq!(
            p["payload"],
            json!({"kind": "agentTurn", "message": "Check the build"})
        );
        assert_eq!(
            p["delivery"],
            json!({"mode": "announce", "channel": "telegram", "to": "42"})
        );
        let CronSub::Add(a) = parse(&[
            "add",
            "--name",
            "n",
            "--every",
            "90s",
            "--system-event",
            "tick",
        ]) else {
            panic!()
        };
        let p = add_params(&a).unwrap();
        assert_eq!(p["schedule"], json!({"kind": "every", "everyMs": 90000}));
        assert_eq!(p["payload"], json!({"kind": "systemEvent", "text": "tick"}));
        let CronSub::Add(a) = parse(&["add", "--name", "n", "--message", "x"]) else {
            panic!()
        };
        assert!(add_params(&a)
            .unwrap_err()
            .to_string()
            .contains("schedule is required"));
        assert!(T::try_parse_from([
            "t",
            "add",
            "--name",
            "n",
            "--cron",
            "* * * * *",
            "--every",
            "1m",
            "--message",
            "x"
        ])
        .is_err());
    }

    #[test]
    fn edit_sends_only_what_changes() {
        let CronSub::Edit(e) = parse(&["edit", "abc", "--every", "2h", "--disable"]) else {
            panic!()
        };
        let p = edit_patch(&e).unwrap();
        assert_eq!(
            Value::Object(p),
            json!({"schedule": {"kind": "every", "everyMs": 7200000}, "enabled": false})
        );
        let CronSub::Edit(e) = parse(&["edit", "abc"]) else {
            panic!()
        };
        assert!(edit_patch(&e).is_err());
    }
}
