//! `pincer nodes list|pending|approve|reject|remove|rename|describe|invoke`: the owner's side
//! of nodes (`node.*` methods).

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use crate::client_cmd::{one_call, print_json, report_error, ConnArgs};
use crate::devices_cmd::{join, short};

#[derive(Subcommand)]
pub enum NodesCmd {
    /// Known nodes: connected first, with approval state and commands.
    List(ConnArgs),
    /// Pending command approvals (and approved surfaces).
    Pending(ConnArgs),
    /// Approve a node's pending commands (by request id, node id or name).
    Approve(NodeTarget),
    /// Reject a node's pending commands (by request id, node id or name).
    Reject(NodeTarget),
    /// Remove a node: its node credential stops working, its socket closes.
    Remove(NodeTarget),
    /// Give a node another name.
    Rename(RenameArgs),
    /// Everything the gateway knows about one node.
    Describe(NodeTarget),
    /// Run a command on a node, e.g. `pincer nodes invoke laptop system.which --params '{"bins":["git"]}'`.
    Invoke(InvokeArgs),
}

#[derive(Args)]
pub struct NodeTarget {
    /// Node id (or a unique prefix), name, IP address, or pending request id.
    pub node: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args)]
pub struct RenameArgs {
    pub node: String,
    /// New name.
    pub name: String,
    #[command(flatten)]
    pub conn: ConnArgs,
}

#[derive(Args)]
pub struct InvokeArgs {
    pub node: String,
    /// Node command, e.g. `system.run`, `system.which`, `system.notify`.
    pub command: String,
    /// Command params as a JSON object.
    #[arg(long)]
    pub params: Option<String>,
    /// How long the node may take (ms).
    #[arg(long, default_value_t = 30_000)]
    pub invoke_timeout: u64,
    /// Idempotency key (default: a fresh one). Repeating a key within 5 minutes returns the
    /// first call's result instead of running the command again.
    #[arg(long)]
    pub idempotency_key: Option<String>,
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

fn nodes(conn: &ConnArgs) -> Result<std::result::Result<Vec<Value>, ExitCode>> {
    Ok(call(conn, "node.list", json!({}))?
        .map(|v| v["nodes"].as_array().cloned().unwrap_or_default()))
}

/// A node id for what the user typed (one resolver: the gateway's).
fn resolve_node(conn: &ConnArgs, query: &str) -> Result<std::result::Result<String, ExitCode>> {
    let list = match nodes(conn)? {
        Ok(l) => l,
        Err(code) => return Ok(Err(code)),
    };
    match pincer_gateway::nodes::host::resolve_node(&list, query) {
        Ok(id) => Ok(Ok(id)),
        Err(e) => bail!("{e}"),
    }
}

/// A pending request id for what the user typed: a request id, or the node's pending request.
fn resolve_request(conn: &ConnArgs, query: &str) -> Result<std::result::Result<String, ExitCode>> {
    let pairs = match call(conn, "node.pair.list", json!({}))? {
        Ok(v) => v,
        Err(code) => return Ok(Err(code)),
    };
    let pending = pairs["pending"].as_array().cloned().unwrap_or_default();
    if pending.iter().any(|p| p["requestId"] == query) {
        return Ok(Ok(query.to_string()));
    }
    let node = match resolve_node(conn, query) {
        Ok(Ok(id)) => id,
        Ok(Err(code)) => return Ok(Err(code)),
        Err(_) => bail!(
            "no pending command approval with request id, node id or name {query:?} (see `pincer nodes pending`)"
        ),
    };
    match pending.iter().find(|p| p["nodeId"] == node.as_str()) {
        Some(p) => Ok(Ok(p["requestId"].as_str().unwrap_or_default().to_string())),
        None => bail!("node {node} has no pending command approval (see `pincer nodes pending`)"),
    }
}

fn print_nodes(list: &[Value]) {
    if list.is_empty() {
        println!("No nodes. Run `pincer node run --url <this gateway>` on a machine to add one.");
        return;
    }
    for n in list {
        println!(
            "{}  {}  {}  {}  {}{}",
            short(n["nodeId"].as_str().unwrap_or("?")),
            n["displayName"].as_str().unwrap_or("(unnamed)"),
            if n["connected"] == true {
                "connected"
            } else {
                "offline"
            },
            n["approvalState"].as_str().unwrap_or("?"),
            n["platform"].as_str().unwrap_or("?"),
            match n["commands"].as_array().map(Vec::len) {
                Some(0) | None => String::new(),
                Some(_) => format!("  commands {}", join(&n["commands"])),
            }
        );
        if let Some(p) = n["pendingDeclaredCommands"].as_array() {
            println!(
                "    pending approval: {} (pincer nodes approve {})",
                if p.is_empty() {
                    "-".into()
                } else {
                    join(&n["pendingDeclaredCommands"])
                },
                short(n["nodeId"].as_str().unwrap_or("?"))
            );
        }
    }
}

fn print_pending(v: &Value) {
    let pending = v["pending"].as_array().cloned().unwrap_or_default();
    println!("Pending ({}):", pending.len());
    for p in &pending {
        println!(
            "  request {}  node {}  {}  commands {}  needs {}",
            p["requestId"].as_str().unwrap_or("?"),
            short(p["nodeId"].as_str().unwrap_or("?")),
            p["displayName"].as_str().unwrap_or(""),
            join(&p["commands"]),
            join(&p["requiredApproveScopes"]),
        );
    }
    let paired = v["paired"].as_array().cloned().unwrap_or_default();
    println!("Approved ({}):", paired.len());
    for p in &paired {
        println!(
            "  node {}  {}  commands {}",
            short(p["nodeId"].as_str().unwrap_or("?")),
            p["displayName"].as_str().unwrap_or(""),
            join(&p["commands"]),
        );
    }
}

/// Print a `system.run` result like a terminal would; anything else as JSON.
fn print_invoke(command: &str, v: &Value) -> ExitCode {
    let p = &v["payload"];
    if command == "system.run" && p.is_object() {
        if let Some(out) = p["stdout"].as_str() {
            print!("{out}");
        }
        if let Some(err) = p["stderr"].as_str() {
            eprint!("{err}");
        }
        if let Some(e) = p["error"].as_str() {
            eprintln!("error: {e}");
        }
        return match p["exitCode"].as_i64() {
            Some(0) => ExitCode::SUCCESS,
            Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1).max(1)),
            None => ExitCode::from(1),
        };
    }
    print_json(p, false);
    ExitCode::SUCCESS
}

pub fn run(cmd: NodesCmd) -> Result<ExitCode> {
    match cmd {
        NodesCmd::List(conn) => match nodes(&conn)? {
            Ok(list) => {
                if conn.json {
                    print_json(&json!(list), true);
                } else {
                    print_nodes(&list);
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(code) => Ok(code),
        },
        NodesCmd::Pending(conn) => match call(&conn, "node.pair.list", json!({}))? {
            Ok(v) => {
                if conn.json {
                    print_json(&v, true);
                } else {
                    print_pending(&v);
                }
                Ok(ExitCode::SUCCESS)
            }
            Err(code) => Ok(code),
        },
        NodesCmd::Approve(t) => resolve_and(t, "node.pair.approve"),
        NodesCmd::Reject(t) => resolve_and(t, "node.pair.reject"),
        NodesCmd::Remove(t) => match resolve_node(&t.conn, &t.node)? {
            Ok(id) => finish(
                &t.conn,
                call(&t.conn, "node.pair.remove", json!({"nodeId": id}))?,
            ),
            Err(code) => Ok(code),
        },
        NodesCmd::Rename(a) => match resolve_node(&a.conn, &a.node)? {
            Ok(id) => finish(
                &a.conn,
                call(
                    &a.conn,
                    "node.rename",
                    json!({"nodeId": id, "displayName": a.name}),
                )?,
            ),
            Err(code) => Ok(code),
        },
        NodesCmd::Describe(t) => match resolve_node(&t.conn, &t.node)? {
            Ok(id) => finish(
                &t.conn,
                call(&t.conn, "node.describe", json!({"nodeId": id}))?,
            ),
            Err(code) => Ok(code),
        },
        NodesCmd::Invoke(a) => invoke(a),
    }
}

fn resolve_and(t: NodeTarget, method: &str) -> Result<ExitCode> {
    match resolve_request(&t.conn, &t.node)? {
        Ok(req) => finish(&t.conn, call(&t.conn, method, json!({"requestId": req}))?),
        Err(code) => Ok(code),
    }
}

fn finish(conn: &ConnArgs, r: std::result::Result<Value, ExitCode>) -> Result<ExitCode> {
    match r {
        Ok(v) => {
            print_json(&v, conn.json);
            Ok(ExitCode::SUCCESS)
        }
        Err(code) => Ok(code),
    }
}

fn invoke(a: InvokeArgs) -> Result<ExitCode> {
    let params = match &a.params {
        Some(text) => Some(
            serde_json::from_str::<Value>(text)
                .with_context(|| format!("--params is not valid JSON: {text}"))?,
        ),
        None => None,
    };
    let id = match resolve_node(&a.conn, &a.node)? {
        Ok(id) => id,
        Err(code) => return Ok(code),
    };
    let key = a.idempotency_key.clone().unwrap_or_else(|| {
        format!(
            "cli-{}-{}",
            std::process::id(),
            pincer_node_host::status::now_ms()
        )
    });
    let mut req = json!({
        "nodeId": id,
        "command": a.command,
        "timeoutMs": a.invoke_timeout,
        "idempotencyKey": key,
    });
    if let Some(p) = params {
        req["params"] = p;
    }
    // The RPC waits as long as the node may take, plus a margin.
    let mut conn = a.conn.clone();
    conn.timeout = conn.timeout.max(a.invoke_timeout.saturating_add(5_000));
    match call(&conn, "node.invoke", req)? {
        Ok(v) if a.conn.json => {
            print_json(&v, true);
            Ok(ExitCode::SUCCESS)
        }
        Ok(v) => Ok(print_invoke(&a.command, &v)),
        Err(code) => Ok(code),
    }
}
