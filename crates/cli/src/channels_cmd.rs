//! `pincer channels status|start|stop|logout`, `pincer pairing list|approve|dismiss` and
//! `pincer send` (RPCs to the gateway).

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client_cmd::{one_call, print_json, report_error, ConnArgs};

#[derive(Subcommand)]
pub enum ChannelsSub {
    /// Every channel account: state, last inbound/outbound message, last error.
    Status {
        /// Only this channel (telegram, discord, slack).
        #[arg(long)]
        channel: Option<String>,
        /// Wait (briefly) for accounts that are still connecting.
        #[arg(long)]
        probe: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Connect an account (also one stopped by `stop` or `logout`).
    Start(AccountArgs),
    /// Disconnect an account; it stays stopped until `start` (also across config reloads).
    Stop(AccountArgs),
    /// Like `stop`, reported as logged out.
    Logout(AccountArgs),
}

#[derive(Args)]
pub struct AccountArgs {
    /// telegram, discord or slack.
    #[arg(long)]
    channel: String,
    /// Account id (default: the channel's default account).
    #[arg(long)]
    account: Option<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

#[derive(Subcommand)]
pub enum PairingSub {
    /// Pending DM access requests (codes sent to unknown senders).
    List {
        /// Only this channel.
        channel: Option<String>,
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Let the sender of a pairing code talk to the assistant.
    Approve {
        channel: String,
        code: String,
        #[arg(long)]
        account: Option<String>,
        /// Tell the sender they were approved.
        #[arg(long)]
        notify: bool,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Drop a pending request without approving it.
    Dismiss {
        channel: String,
        code: String,
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        conn: ConnArgs,
    },
}

#[derive(Args)]
pub struct SendArgs {
    /// telegram, discord or slack (may be left out when only one is configured).
    #[arg(long)]
    channel: Option<String>,
    /// Chat id (Telegram group ids are negative); Discord/Slack also `user:<id>` (a DM) or
    /// `channel:<id>`.
    #[arg(long, allow_hyphen_values = true)]
    to: String,
    #[arg(long, short)]
    message: Option<String>,
    /// Attach a media URL (repeatable).
    #[arg(long)]
    media: Vec<String>,
    #[arg(long)]
    account: Option<String>,
    /// Telegram topic / Discord thread / Slack thread ts.
    #[arg(long)]
    thread: Option<String>,
    #[arg(long)]
    reply_to: Option<String>,
    /// Mirror the message into this session's transcript.
    #[arg(long)]
    session: Option<String>,
    /// Same key again within 5 minutes: sent once (default: a fresh key).
    #[arg(long)]
    idempotency_key: Option<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

fn ago(ms: Option<u64>, now: u64) -> String {
    match ms {
        None => "never".into(),
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

fn print_status(p: &Value) {
    let now = p["ts"].as_u64().unwrap_or(0);
    let order = p["channelOrder"].as_array().cloned().unwrap_or_default();
    if order.is_empty() {
        println!("no channels configured (add channels.telegram, channels.discord or channels.slack to the config)");
    }
    for ch in order {
        let ch = ch.as_str().unwrap_or_default();
        let label = p["channelLabels"][ch].as_str().unwrap_or(ch);
        println!("{label}");
        for a in p["channelAccounts"][ch].as_array().into_iter().flatten() {
            let bot = a["bot"]["username"]
                .as_str()
                .map(|u| format!(" @{u}"))
                .unwrap_or_default();
            println!(
                "  {:<12} {:<13} {:<8}{bot}  in: {}  out: {}",
                a["accountId"].as_str().unwrap_or("default"),
                a["state"].as_str().unwrap_or("?"),
                a["mode"].as_str().unwrap_or(""),
                ago(a["lastInboundAt"].as_u64(), now),
                ago(a["lastOutboundAt"].as_u64(), now),
            );
            if let Some(reason) = a["stateReason"].as_str() {
                println!("      {reason}");
            }
            if let Some(e) = a["lastError"].as_str() {
                println!("      last error: {e}");
            }
        }
    }
    for w in p["warnings"].as_array().into_iter().flatten() {
        println!("note: {}", w.as_str().unwrap_or_default());
    }
}

fn simple(
    conn: &ConnArgs,
    method: &str,
    params: Value,
    human: impl Fn(&Value),
) -> Result<ExitCode> {
    match one_call(conn, method, Some(params))? {
        Ok(p) if conn.json => {
            print_json(&p, true);
            Ok(ExitCode::SUCCESS)
        }
        Ok(p) => {
            human(&p);
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => Ok(report_error(&e)),
    }
}

fn account_params(a: &AccountArgs) -> Value {
    let mut p = json!({"channel": a.channel});
    if let Some(acc) = &a.account {
        p["accountId"] = json!(acc);
    }
    p
}

pub fn channels(sub: ChannelsSub) -> Result<ExitCode> {
    match sub {
        ChannelsSub::Status {
            channel,
            probe,
            conn,
        } => {
            let mut params = json!({});
            if let Some(c) = channel {
                params["channel"] = json!(c);
            }
            if probe {
                params["probe"] = json!(true);
            }
            simple(&conn, "channels.status", params, print_status)
        }
        ChannelsSub::Start(a) => simple(&a.conn, "channels.start", account_params(&a), |p| {
            println!(
                "{}/{}: {}",
                p["channel"].as_str().unwrap_or(""),
                p["accountId"].as_str().unwrap_or(""),
                if p["started"] == true {
                    "started"
                } else {
                    "not running"
                }
            )
        }),
        ChannelsSub::Stop(a) => simple(&a.conn, "channels.stop", account_params(&a), |p| {
            println!(
                "{}/{}: stopped",
                p["channel"].as_str().unwrap_or(""),
                p["accountId"].as_str().unwrap_or("")
            )
        }),
        ChannelsSub::Logout(a) => simple(&a.conn, "channels.logout", account_params(&a), |p| {
            println!(
                "{}/{}: logged out (start it again with `pincer channels start`)",
                p["channel"].as_str().unwrap_or(""),
                p["accountId"].as_str().unwrap_or("")
            )
        }),
    }
}

/// The account holding `code` (the request list names it), else the one given or `default`.
fn account_for_code(
    conn: &ConnArgs,
    channel: &str,
    code: &str,
    account: Option<String>,
) -> Result<std::result::Result<String, ExitCode>> {
    if let Some(a) = account {
        return Ok(Ok(a));
    }
    match one_call(
        conn,
        "channels.pairing.list",
        Some(json!({"channel": channel})),
    )? {
        Ok(p) => Ok(Ok(p["requests"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| {
                r["requestId"]
                    .as_str()
                    .is_some_and(|c| c.eq_ignore_ascii_case(code.trim()))
            })
            .and_then(|r| r["accountId"].as_str())
            .unwrap_or("default")
            .to_string())),
        Err(e) => Ok(Err(report_error(&e))),
    }
}

pub fn pairing(sub: PairingSub) -> Result<ExitCode> {
    match sub {
        PairingSub::List {
            channel,
            account,
            conn,
        } => {
            let mut params = json!({});
            if let Some(c) = channel {
                params["channel"] = json!(c);
            }
            if let Some(a) = account {
                params["accountId"] = json!(a);
            }
            simple(&conn, "channels.pairing.list", params, |p| {
                let rows = p["requests"].as_array().cloned().unwrap_or_default();
                if rows.is_empty() {
                    println!("no pending pairing requests");
                }
                for r in rows {
                    let who = r["metadata"]["name"]
                        .as_str()
                        .or_else(|| r["metadata"]["username"].as_str())
                        .unwrap_or("");
                    println!(
                        "{:<9} {:<9} {:<10} {:<14} {who}  expires {}",
                        r["requestId"].as_str().unwrap_or(""),
                        r["channel"].as_str().unwrap_or(""),
                        r["accountId"].as_str().unwrap_or(""),
                        r["senderId"].as_str().unwrap_or(""),
                        r["expiresAt"].as_str().unwrap_or(""),
                    );
                }
            })
        }
        PairingSub::Approve {
            channel,
            code,
            account,
            notify,
            conn,
        } => {
            let account = match account_for_code(&conn, &channel, &code, account)? {
                Ok(a) => a,
                Err(code) => return Ok(code),
            };
            // As the reference's CLI: the first approved sender becomes the command owner
            // when none is configured.
            let params = json!({"channel": channel, "accountId": account, "requestId": code,
                "notify": notify, "bootstrapCommandOwner": true});
            simple(&conn, "channels.pairing.approve", params, |p| {
                println!(
                    "approved {} sender {}",
                    channel,
                    p["senderId"].as_str().unwrap_or("")
                );
                if p["commandOwnerBootstrap"] == "configured" {
                    println!(
                        "commands.ownerAllowFrom set to {channel}:{} (the first approved sender owns the assistant's commands)",
                        p["senderId"].as_str().unwrap_or("")
                    );
                }
                if p["notification"] == "sent" {
                    println!("the sender was told");
                }
            })
        }
        PairingSub::Dismiss {
            channel,
            code,
            account,
            conn,
        } => {
            let account = match account_for_code(&conn, &channel, &code, account)? {
                Ok(a) => a,
                Err(code) => return Ok(code),
            };
            let params = json!({"channel": channel, "accountId": account, "requestId": code});
            simple(&conn, "channels.pairing.dismiss", params, |p| {
                println!(
                    "dismissed the request of {}",
                    p["senderId"].as_str().unwrap_or("")
                )
            })
        }
    }
}

pub fn send(a: SendArgs) -> Result<ExitCode> {
    let key = a.idempotency_key.clone().unwrap_or_else(|| {
        format!(
            "cli-send-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        )
    });
    let mut params = json!({"to": a.to, "idempotencyKey": key});
    if let Some(m) = &a.message {
        params["message"] = json!(m);
    }
    if let Some(c) = &a.channel {
        params["channel"] = json!(c);
    }
    if let Some(acc) = &a.account {
        params["accountId"] = json!(acc);
    }
    if let Some(t) = &a.thread {
        params["threadId"] = json!(t);
    }
    if let Some(r) = &a.reply_to {
        params["replyToId"] = json!(r);
    }
    if let Some(s) = &a.session {
        params["sessionKey"] = json!(s);
    }
    if !a.media.is_empty() {
        params["mediaUrls"] = json!(a.media);
    }
    simple(&a.conn, "send", params, |p| {
        println!(
            "sent to {} {} (message {})",
            p["channel"].as_str().unwrap_or(""),
            p["chatId"]
                .as_str()
                .or_else(|| p["channelId"].as_str())
                .unwrap_or(""),
            p["messageId"].as_str().unwrap_or("")
        )
    })
}
