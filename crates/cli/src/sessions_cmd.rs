//! `pincer sessions list | show <key> | reset <key> | delete <key>` (RPCs to the gateway).

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde_json::{json, Value};

use crate::client_cmd::{one_call, print_json, report_error, ConnArgs};

#[derive(Subcommand)]
pub enum SessionsSub {
    /// List sessions, most recently updated first.
    List {
        /// Case-insensitive search in key, label and display name.
        #[arg(long)]
        search: Option<String>,
        /// Only this agent's sessions.
        #[arg(long)]
        agent: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Show one session and its latest messages (`main` = `agent:main:main`).
    Show {
        key: String,
        /// Messages to show.
        #[arg(long, default_value_t = 20)]
        messages: u64,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Start a new sessionId for the key (the transcript of the old one is kept).
    Reset {
        key: String,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Delete the session (and, unless --keep-transcript, its transcripts).
    Delete {
        key: String,
        #[arg(long)]
        keep_transcript: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

fn ago(ms: Option<u64>, now: u64) -> String {
    match ms {
        None => "-".into(),
        Some(t) => {
            let s = now.saturating_sub(t) / 1000;
            match s {
                0..=59 => format!("{s}s ago"),
                60..=3599 => format!("{}m ago", s / 60),
                3600..=86_399 => format!("{}h ago", s / 3600),
                _ => format!("{}d ago", s / 86_400),
            }
        }
    }
}

fn message_text(m: &Value) -> String {
    match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

pub fn run(sub: SessionsSub) -> Result<ExitCode> {
    match sub {
        SessionsSub::List {
            search,
            agent,
            limit,
            conn,
        } => {
            let mut params = json!({"limit": limit});
            if let Some(s) = search {
                params["search"] = json!(s);
            }
            if let Some(a) = agent {
                params["agentId"] = json!(a);
            }
            match one_call(&conn, "sessions.list", Some(params))? {
                Ok(p) if conn.json => {
                    print_json(&p, true);
                    Ok(ExitCode::SUCCESS)
                }
                Ok(p) => {
                    let now = p["ts"].as_u64().unwrap_or(0);
                    let rows = p["sessions"].as_array().cloned().unwrap_or_default();
                    if rows.is_empty() {
                        println!("no sessions");
                    }
                    for r in &rows {
                        println!(
                            "{:<40} {:>9}  {:<20} {}",
                            r["key"].as_str().unwrap_or("?"),
                            ago(r["updatedAt"].as_u64(), now),
                            r["label"].as_str().unwrap_or(""),
                            r["model"].as_str().unwrap_or("")
                        );
                    }
                    if p["hasMore"] == true {
                        println!("… {} sessions in total", p["totalCount"]);
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(report_error(&e)),
            }
        }
        SessionsSub::Show {
            key,
            messages,
            conn,
        } => {
            let row = match one_call(&conn, "sessions.describe", Some(json!({"key": key})))? {
                Ok(r) => r,
                Err(e) => return Ok(report_error(&e)),
            };
            let history = match one_call(
                &conn,
                "chat.history",
                Some(json!({"sessionKey": key, "limit": messages.max(1)})),
            )? {
                Ok(h) => h,
                Err(e) => return Ok(report_error(&e)),
            };
            if conn.json {
                print_json(&json!({"session": row, "history": history}), true);
                return Ok(ExitCode::SUCCESS);
            }
            println!("{}", row["key"].as_str().unwrap_or("?"));
            println!("  sessionId: {}", row["sessionId"].as_str().unwrap_or("-"));
            if let Some(l) = row["label"].as_str() {
                println!("  label: {l}");
            }
            println!(
                "  model: {}/{}",
                row["modelProvider"].as_str().unwrap_or("-"),
                row["model"].as_str().unwrap_or("-")
            );
            println!(
                "  messages: {} (showing the last {})",
                history["totalMessages"],
                history["messages"].as_array().map_or(0, Vec::len)
            );
            for m in history["messages"].as_array().into_iter().flatten() {
                println!(
                    "  [{}] {}",
                    m["role"].as_str().unwrap_or("?"),
                    message_text(m)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SessionsSub::Reset { key, conn } => {
            match one_call(&conn, "sessions.reset", Some(json!({"key": key})))? {
                Ok(p) if conn.json => {
                    print_json(&p, true);
                    Ok(ExitCode::SUCCESS)
                }
                Ok(p) => {
                    println!(
                        "{}: new sessionId {}",
                        p["key"].as_str().unwrap_or("?"),
                        p["entry"]["sessionId"].as_str().unwrap_or("?")
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(report_error(&e)),
            }
        }
        SessionsSub::Delete {
            key,
            keep_transcript,
            conn,
        } => {
            let params = json!({"key": key, "deleteTranscript": !keep_transcript});
            match one_call(&conn, "sessions.delete", Some(params))? {
                Ok(p) if conn.json => {
                    print_json(&p, true);
                    Ok(ExitCode::SUCCESS)
                }
                Ok(p) => {
                    let key = p["key"].as_str().unwrap_or("?");
                    if p["deleted"] == true {
                        println!("{key}: deleted");
                    } else {
                        println!("{key}: no such session");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => Ok(report_error(&e)),
            }
        }
    }
}
