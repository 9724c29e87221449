//! `pincer agent --message "…"` (one run, streamed) and `pincer chat` (an interactive chat
//! in the terminal). Both talk to a running gateway; `/commands` pass through to it.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use clap::Args;
use pincer_client::{EventMessage, GatewayClient};
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;

use crate::client_cmd::{self, ConnArgs};

/// How long `pincer agent` waits for the run unless `--timeout` asks for longer.
const RUN_WAIT: Duration = Duration::from_secs(600);

#[derive(Args, Clone)]
pub struct AgentArgs {
    /// The message for the agent.
    #[arg(long, short = 'm')]
    pub message: String,
    /// Session key (default: the agent's main session, `main`).
    #[arg(long)]
    pub session: Option<String>,
    /// Agent id (default: the gateway's default agent).
    #[arg(long)]
    pub agent: Option<String>,
    /// Model for this run only (`provider/model`).
    #[arg(long)]
    pub model: Option<String>,
    /// Thinking level for this run (off, minimal, low, medium, high, …).
    #[arg(long)]
    pub thinking: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args, Clone)]
pub struct ChatArgs {
    /// Session key (default: `main`).
    #[arg(long)]
    pub session: Option<String>,
    /// Agent id (default: the gateway's default agent).
    #[arg(long)]
    pub agent: Option<String>,
    #[command(flatten)]
    pub conn: ConnArgs,
}

/// A fresh idempotency key (run id) without extra dependencies.
fn run_id(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos:x}", std::process::id())
}

fn canonical_key(session: Option<&str>, agent: Option<&str>) -> String {
    let agent = agent.unwrap_or("main");
    let key = session.unwrap_or("main").trim();
    match pincer_sessions::SessionKey::canonicalize(key, agent) {
        Ok(k) => k.to_string(),
        Err(_) => key.to_owned(),
    }
}

fn print_flush(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}

/// Tool progress on stderr (`item` events), so stdout is only the reply.
fn show_item(ev: &EventMessage) {
    let data = &ev.payload["data"];
    if ev.payload["stream"] == "item" && data["phase"] == "start" {
        let title = data["title"]
            .as_str()
            .or(data["name"].as_str())
            .unwrap_or("tool");
        eprintln!("\n[{title}]");
    }
}

async fn connect(conn: &ConnArgs) -> Result<GatewayClient, ExitCode> {
    let prepared = client_cmd::options(conn);
    let url = prepared.opts.url.clone();
    match client_cmd::connect(prepared).await {
        Ok(c) => Ok(c),
        Err(e) if e.rpc_error().is_some() => Err(client_cmd::report_error(&e)),
        Err(e) => {
            eprintln!("error: cannot reach the gateway at {url}: {e}");
            Err(ExitCode::from(2))
        }
    }
}

pub fn agent(args: AgentArgs) -> Result<ExitCode> {
    let rt = client_cmd::runtime()?;
    rt.block_on(agent_async(args))
}

async fn agent_async(args: AgentArgs) -> Result<ExitCode> {
    let mut client = match connect(&args.conn).await {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let id = run_id("cli");
    let key = canonical_key(args.session.as_deref(), args.agent.as_deref());
    let mut params = json!({"message": args.message, "sessionKey": key, "idempotencyKey": id});
    if let Some(a) = &args.agent {
        params["agentId"] = json!(a);
    }
    if let Some(m) = &args.model {
        params["model"] = json!(m);
    }
    if let Some(t) = &args.thinking {
        params["thinking"] = json!(t);
    }
    // Stream the run's text while the request waits for its final answer.
    let mut events = client.take_events();
    let quiet = args.conn.json;
    let run = id.clone();
    let printer = tokio::spawn(async move {
        let mut printed = false;
        while let Some(ev) = events.recv().await {
            if ev.event != "agent" || ev.payload["runId"] != run.as_str() {
                continue;
            }
            if !quiet {
                show_item(&ev);
            }
            let data = &ev.payload["data"];
            match ev.payload["stream"].as_str() {
                Some("assistant") => {
                    if let (false, Some(delta)) = (quiet, data["delta"].as_str()) {
                        print_flush(delta);
                        printed = true;
                    }
                }
                Some("lifecycle") if data["phase"] == "end" || data["phase"] == "error" => break,
                _ => {}
            }
        }
        printed
    });
    let wait = Duration::from_millis(args.conn.timeout).max(RUN_WAIT);
    let result = {
        let request = client.request_final("agent", Some(params), wait);
        tokio::pin!(request);
        loop {
            tokio::select! {
                r = &mut request => break r,
                _ = tokio::signal::ctrl_c() => {
                    eprintln!("\n[aborting…]");
                    let _ = client
                        .request("chat.abort", Some(json!({"sessionKey": key, "runId": id})))
                        .await;
                }
            }
        }
    };
    let mut printed = match tokio::time::timeout(Duration::from_secs(2), printer).await {
        Ok(Ok(p)) => p,
        _ => false,
    };
    client.close().await;
    let payload = match result {
        Ok(p) => p,
        Err(e) => {
            if printed {
                println!();
            }
            return Ok(client_cmd::report_error(&e));
        }
    };
    if args.conn.json {
        client_cmd::print_json(&payload, false);
    } else {
        let text = payload["result"]["payloads"][0]["text"]
            .as_str()
            .unwrap_or_default();
        if !printed && !text.is_empty() {
            print_flush(text);
            printed = true;
        }
        if printed {
            println!();
        }
    }
    if payload["status"] == "ok" {
        return Ok(ExitCode::SUCCESS);
    }
    if !args.conn.json {
        let why = payload["error"]["errorMessage"]
            .as_str()
            .or(payload["summary"].as_str())
            .unwrap_or("the run failed");
        eprintln!("error: {why}");
    }
    Ok(ExitCode::from(1))
}

pub fn chat(args: ChatArgs) -> Result<ExitCode> {
    let rt = client_cmd::runtime()?;
    rt.block_on(chat_async(args))
}

/// What the chat loop is showing.
#[derive(Default)]
struct Turn {
    run: Option<String>,
    streamed: bool,
}

async fn chat_async(args: ChatArgs) -> Result<ExitCode> {
    let mut client = match connect(&args.conn).await {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    let key = canonical_key(args.session.as_deref(), args.agent.as_deref());
    let mut events = client.take_events();
    let (line_tx, mut lines) = mpsc::channel::<String>(16);
    tokio::spawn(async move {
        let mut reader = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if line_tx.send(line).await.is_err() {
                break;
            }
        }
    });
    eprintln!(
        "pincer chat — session {key}. Type a message; /help lists commands; Ctrl-C stops a reply, Ctrl-D exits."
    );
    let mut turn = Turn::default();
    let mut stdin_open = true;
    loop {
        // After stdin closed, finish the reply in progress, then leave.
        if !stdin_open && turn.run.is_none() {
            break;
        }
        tokio::select! {
            line = lines.recv(), if stdin_open && turn.run.is_none() => {
                let Some(line) = line else {
                    stdin_open = false;
                    continue;
                };
                let text = line.trim();
                if text.is_empty() {
                    continue;
                }
                let id = run_id("chat");
                let params = json!({"sessionKey": key, "message": text, "idempotencyKey": id});
                match client.request("chat.send", Some(params)).await {
                    Ok(_) => turn = Turn { run: Some(id), streamed: false },
                    Err(e) => {
                        client_cmd::report_error(&e);
                    }
                }
            }
            ev = events.recv() => {
                let Some(ev) = ev else {
                    eprintln!("error: the gateway closed the connection");
                    return Ok(ExitCode::from(2));
                };
                handle_chat_event(&ev, &key, &mut turn);
            }
            _ = tokio::signal::ctrl_c() => {
                match &turn.run {
                    Some(id) => {
                        let _ = client
                            .request("chat.abort", Some(json!({"sessionKey": key, "runId": id})))
                            .await;
                    }
                    None => eprintln!("(Ctrl-D exits)"),
                }
            }
        }
    }
    client.close().await;
    Ok(ExitCode::SUCCESS)
}

fn handle_chat_event(ev: &EventMessage, key: &str, turn: &mut Turn) {
    if ev.payload["sessionKey"] != key {
        return;
    }
    if ev.event == "agent" {
        if turn.run.as_deref() == ev.payload["runId"].as_str() {
            show_item(ev);
        }
        return;
    }
    if ev.event != "chat" {
        return;
    }
    let p = &ev.payload;
    match p["state"].as_str() {
        Some("delta") => {
            if let Some(d) = p["deltaText"].as_str() {
                print_flush(d);
                turn.streamed = true;
            }
        }
        Some("final") => {
            if !turn.streamed {
                let text = message_text(&p["message"]);
                if !text.is_empty() {
                    print_flush(&text);
                }
            }
            println!();
            // A note injected by an operator does not end the reply being waited for.
            if !p["runId"]
                .as_str()
                .is_some_and(|r| r.starts_with("inject-"))
            {
                *turn = Turn::default();
            }
        }
        Some("aborted") => {
            println!("\n[stopped]");
            *turn = Turn::default();
        }
        Some("error") => {
            let why = p["errorMessage"].as_str().unwrap_or("the run failed");
            println!();
            eprintln!("error: {why}");
            *turn = Turn::default();
        }
        _ => {}
    }
}

fn message_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}
