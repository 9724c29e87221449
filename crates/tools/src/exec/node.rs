//! `exec host=node`: the command runs on a paired node as `system.run`, through the gateway's
//! [`crate::host::NodesHost`] (the same engine as `node.invoke`). The node enforces its own exec
//! policy file; the gateway requires the node's approved command surface. `workdir` and `env`
//! are the node's, not this workspace's.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::context::ToolContext;
use crate::error::ToolError;
use crate::host::NodesHost;
use crate::output::ToolOutput;

/// Extra wait for the node on top of the command's own timeout.
const INVOKE_GRACE: Duration = Duration::from_secs(10);

/// What `exec` passes for a node run.
pub struct NodeRun<'a> {
    pub command: &'a str,
    pub node: Option<&'a str>,
    pub workdir: Option<&'a str>,
    pub env: Option<&'a BTreeMap<String, String>>,
    pub timeout: Option<Duration>,
}

/// The connected node with `system.run` to use: the one named, or the only one there is.
async fn pick_node(host: &dyn NodesHost, wanted: Option<&str>) -> Result<String, ToolError> {
    if let Some(n) = wanted.map(str::trim).filter(|n| !n.is_empty()) {
        return Ok(n.to_owned());
    }
    let list = host.list().await?;
    let eligible: Vec<&Value> = list["nodes"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|n| {
                    n["connected"] == true
                        && n["commands"]
                            .as_array()
                            .is_some_and(|c| c.iter().any(|c| c == "system.run"))
                })
                .collect()
        })
        .unwrap_or_default();
    match eligible.as_slice() {
        [one] => Ok(one["nodeId"].as_str().unwrap_or_default().to_owned()),
        [] => Err(ToolError::Unavailable(
            "exec host=node requires a connected node that supports system.run (none available). \
             Start `pincer node run` on the machine and approve its commands (`pincer nodes approve`)."
                .into(),
        )),
        many => Err(ToolError::invalid(
            "exec",
            format!(
                "exec host=node needs node= when several nodes can run commands: {}",
                many.iter()
                    .map(|n| format!(
                        "{} ({})",
                        n["nodeId"].as_str().unwrap_or("?"),
                        n["displayName"].as_str().unwrap_or("unnamed")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )),
    }
}

/// Run `command` on a node and render the result like a local exec.
pub async fn run_on_node(run: NodeRun<'_>, ctx: &ToolContext) -> Result<ToolOutput, ToolError> {
    let host = ctx.hosts.nodes.as_ref().ok_or_else(|| {
        ToolError::Unavailable("exec host=node: nodes are not available in this context.".into())
    })?;
    let node = pick_node(host.as_ref(), run.node).await?;
    let mut params = json!({
        "command": ["/bin/sh", "-c", run.command],
        "rawCommand": run.command,
        "agentId": &*ctx.agent_id,
        "sessionKey": &*ctx.session_key,
    });
    if let Some(id) = ctx.tool_call_id.as_deref().or(ctx.run_id.as_deref()) {
        params["runId"] = json!(id);
    }
    if let Some(w) = run.workdir.map(str::trim).filter(|w| !w.is_empty()) {
        params["cwd"] = json!(w);
    }
    if let Some(env) = run.env.filter(|e| !e.is_empty()) {
        params["env"] = json!(env);
    }
    let wait = match run.timeout {
        Some(t) => {
            params["timeoutMs"] = json!(t.as_millis() as u64);
            t + INVOKE_GRACE
        }
        None => Duration::from_secs(30 * 60),
    };
    let started = std::time::Instant::now();
    let result = host.invoke(&node, "system.run", params, wait).await?;
    let node_id = result["nodeId"].as_str().unwrap_or(&node).to_owned();
    let p = &result["payload"];
    let s = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
    let exit = p["exitCode"].as_i64();
    let timed_out = p["timedOut"] == true;
    let success = p["success"] == true;
    let mut parts: Vec<String> = [s("stdout"), s("stderr"), s("error")]
        .into_iter()
        .filter(|t| !t.is_empty())
        .collect();
    if timed_out {
        parts.push("Command timed out.".into());
    } else if let Some(code) = exit.filter(|c| *c != 0) {
        parts.push(format!("(Command exited with code {code})"));
    }
    let text = format!("Node: {node_id}\n{}", parts.join("\n"));
    Ok(ToolOutput::text(text)
        .with_details(json!({
            "status": if success { "completed" } else { "failed" },
            "exitCode": exit,
            "timedOut": timed_out,
            "durationMs": started.elapsed().as_millis() as u64,
            "nodeId": node_id,
        }))
        .with_error(!success))
}
