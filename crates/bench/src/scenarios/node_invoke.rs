//! `node-invoke`: `node.invoke` round trips through the gateway. N fake nodes connect with
//! their own device identities (`role: "node"`, silent local pairing), the operator approves
//! their command surfaces, then invokes `system.which` on them: one at a time for the round-trip
//! latency (`--inflight 1`), or paced at `--rate` invokes/s with up to `--inflight` in flight,
//! spread round-robin over the nodes, for a sustained-load figure. The fake nodes answer at
//! once, so what is measured is the gateway: operator `node.invoke` → `node.invoke.request` on
//! the node socket → `node.invoke.result` → the operator's `res`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use pincer_protocol::device_auth::{build_payload_v3, DeviceKeypair};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::{cpu_delta, Ctx, Report};
use crate::stats::Summary;
use crate::wire::{self, Ws};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fake nodes to connect.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Invokes in flight at most.
    #[arg(long, default_value_t = 1)]
    pub inflight: usize,
    /// Target invokes per second (0 = as fast as the window allows).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Unmeasured seconds first.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
}

/// One fake node: its socket and id.
struct FakeNode {
    ws: Ws,
    node_id: String,
}

async fn connect_node(ctx: &Ctx, index: usize) -> Result<FakeNode> {
    let mut seed = [0u8; 32];
    rand::fill(&mut seed);
    let kp = DeviceKeypair::from_seed(&seed);
    let mut ws = wire::open_with(&ctx.opts.url, wire::SMALL_READ_BUFFER).await?;
    let ch = wire::read_challenge(&mut ws, ctx.timeout()).await?;
    let token = ctx.opts.token.clone().unwrap_or_default();
    let payload = build_payload_v3(
        &kp.device_id(),
        "node-host",
        "node",
        "node",
        &[],
        ch.ts,
        &token,
        &ch.nonce,
        Some("linux"),
        None,
    );
    let mut auth = serde_json::Map::new();
    if let Some(t) = &ctx.opts.token {
        auth.insert("token".into(), json!(t));
    }
    if let Some(p) = &ctx.opts.password {
        auth.insert("password".into(), json!(p));
    }
    let frame = json!({"type": "req", "id": "c", "method": "connect", "params": {
        "minProtocol": pincer_protocol::PROTOCOL_VERSION,
        "maxProtocol": pincer_protocol::PROTOCOL_VERSION,
        "client": {"id": "node-host", "version": env!("CARGO_PKG_VERSION"), "platform": "linux",
                   "mode": "node", "displayName": format!("bench-node-{index}")},
        "role": "node", "scopes": [], "caps": ["system"], "commands": ["system.which"],
        "permissions": {}, "auth": auth,
        "device": {"id": kp.device_id(), "publicKey": kp.public_key(),
                   "signature": kp.sign(&payload), "signedAt": ch.ts, "nonce": ch.nonce},
    }});
    ws.send(Message::Text(frame.to_string().into())).await?;
    let res = wire::await_res(&mut ws, "c", ctx.timeout()).await?;
    if wire::scan_res(&res).is_none_or(|(_, ok)| !ok) {
        bail!("node connect refused: {}", wire::truncate(&res, 300));
    }
    Ok(FakeNode {
        ws,
        node_id: kp.device_id(),
    })
}

/// Answer every `node.invoke.request` at once; stop when the socket ends or `stop` is set.
async fn respond(node: FakeNode, stop: Arc<AtomicBool>, handled: Arc<AtomicU64>) {
    let FakeNode { mut ws, node_id } = node;
    let mut next: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        let Ok(text) = wire::next_text(&mut ws).await else {
            return;
        };
        if !text.contains("\"node.invoke.request\"") {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let id = v["payload"]["id"].as_str().unwrap_or_default();
        next += 1;
        let params = json!({"id": id, "nodeId": node_id, "ok": true, "payload": {"bins": {"sh": "/bin/sh"}}});
        let frame = wire::request_frame(next, "node.invoke.result", Some(&params.to_string()));
        if ws.send(Message::Text(frame.into())).await.is_err() {
            return;
        }
        handled.fetch_add(1, Ordering::Relaxed);
    }
}

/// Approve every pending node surface (the bench operator holds operator.admin).
async fn approve_all(op: &mut Ws, expect: usize, timeout: Duration) -> Result<()> {
    let mut id = 1u64;
    let deadline = Instant::now() + timeout;
    let mut approved = 0;
    while approved < expect {
        if Instant::now() > deadline {
            bail!("only {approved} of {expect} node surfaces became pending");
        }
        let res = wire::call(op, id, "node.pair.list", Some("{}"), timeout).await?;
        id += 1;
        let v: Value = serde_json::from_str(&res)?;
        let pending: Vec<String> = v["payload"]["pending"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|p| p["requestId"].as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        for r in pending {
            let params = json!({"requestId": r}).to_string();
            wire::call(op, id, "node.pair.approve", Some(&params), timeout).await?;
            id += 1;
            approved += 1;
        }
        if approved < expect {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

fn invoke_frame(id: u64, node_id: &str) -> String {
    let params = format!(
        r#"{{"nodeId":"{node_id}","command":"system.which","params":{{"bins":["sh"]}},"timeoutMs":10000,"idempotencyKey":"bench-{id}"}}"#
    );
    wire::request_frame(id, "node.invoke", Some(&params))
}

#[derive(Default)]
struct Tally {
    lat_ns: Vec<u64>,
    ok: u64,
    errors: u64,
    first_error: Option<String>,
}

pub async fn run(ctx: &Ctx, a: &Args) -> Result<Report> {
    if a.nodes == 0 || a.inflight == 0 {
        bail!("--nodes and --inflight must be at least 1");
    }
    let t_setup = Instant::now();
    let mut nodes = Vec::with_capacity(a.nodes);
    for i in 0..a.nodes {
        nodes.push(
            connect_node(ctx, i)
                .await
                .with_context(|| format!("fake node {i}"))?,
        );
    }
    let (mut op, _) = wire::connect(&ctx.opts).await.context("operator connect")?;
    approve_all(&mut op, a.nodes, ctx.timeout()).await?;
    let setup_s = t_setup.elapsed().as_secs_f64();
    let ids: Vec<String> = nodes.iter().map(|n| n.node_id.clone()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let handled = Arc::new(AtomicU64::new(0));
    let responders: Vec<_> = nodes
        .into_iter()
        .map(|n| tokio::spawn(respond(n, Arc::clone(&stop), Arc::clone(&handled))))
        .collect();

    let warmup = Duration::from_secs_f64(a.warmup.max(0.0));
    let measured = Duration::from_secs_f64(a.duration.max(0.1));
    let start = Instant::now();
    let record_from = start + warmup;
    let stop_at = record_from + measured;
    let interval = (a.rate > 0.0).then(|| Duration::from_secs_f64(1.0 / a.rate));
    let mut next_send = start;
    let mut sent_at: HashMap<u64, Instant> = HashMap::with_capacity(a.inflight * 2);
    let mut tally = Tally::default();
    let mut next_id: u64 = 1_000;
    let mut sent_measured = 0u64;
    let snap0 = ctx.snap();
    let timeout = ctx.timeout();
    loop {
        let now = Instant::now();
        // Issue what the window and the pace allow.
        let mut fed = false;
        while sent_at.len() < a.inflight && now < stop_at {
            if let Some(iv) = interval {
                if next_send > now {
                    break;
                }
                next_send += iv;
            }
            let node = &ids[(next_id as usize) % ids.len()];
            op.feed(Message::Text(invoke_frame(next_id, node).into()))
                .await?;
            if now >= record_from {
                sent_measured += 1;
            }
            sent_at.insert(next_id, now);
            next_id += 1;
            fed = true;
        }
        if fed {
            op.flush().await?;
        }
        if sent_at.is_empty() && Instant::now() >= stop_at {
            break;
        }
        let wait = match (interval, sent_at.len() < a.inflight) {
            (Some(_), true) if next_send < stop_at => {
                next_send.saturating_duration_since(Instant::now())
            }
            _ => timeout,
        };
        let msg = tokio::time::timeout(wait, op.next()).await;
        let text = match msg {
            Err(_) if sent_at.is_empty() || wait < timeout => continue,
            Err(_) => bail!("no answer to node.invoke within {timeout:?}"),
            Ok(None) => bail!("operator connection ended"),
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(_))) => continue,
        };
        let Some((rid, ok)) = wire::scan_res(text.as_str()) else {
            continue;
        };
        let Ok(rid) = rid.parse::<u64>() else {
            continue;
        };
        let Some(at) = sent_at.remove(&rid) else {
            continue;
        };
        let done = Instant::now();
        if at >= record_from && done <= stop_at + timeout {
            if ok {
                tally.ok += 1;
                tally.lat_ns.push(done.duration_since(at).as_nanos() as u64);
            } else {
                tally.errors += 1;
                if tally.first_error.is_none() {
                    tally.first_error = Some(wire::truncate(text.as_str(), 300).to_string());
                }
            }
        }
    }
    let elapsed = measured.as_secs_f64();
    let snap1 = ctx.snap();
    stop.store(true, Ordering::Relaxed);
    wire::close(op, Duration::from_secs(2)).await;
    for r in responders {
        r.abort();
    }
    if tally.ok == 0 {
        return Err(anyhow!(
            "no successful invokes{}",
            tally
                .first_error
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        ));
    }
    let lat = Summary::of_nanos(&tally.lat_ns);
    let achieved = tally.ok as f64 / elapsed;
    let cpu = cpu_delta(snap0, snap1);
    let json = json!({
        "nodes": a.nodes, "inflight": a.inflight, "targetRate": a.rate,
        "durationS": elapsed, "setupS": setup_s,
        "sent": sent_measured, "ok": tally.ok, "errors": tally.errors,
        "firstError": tally.first_error,
        "invokesPerS": achieved, "latencyMs": lat.to_json(),
        "nodeResultsHandled": handled.load(Ordering::Relaxed),
        "gatewayCpuS": cpu,
        "gatewayRssKib": snap1.map(|s| s.rss_kb),
    });
    let human = format!(
        "node-invoke: {} nodes, {} in flight{}: {:.0} invokes/s over {:.1}s ({} ok, {} errors)\n  round trip {}{}",
        a.nodes,
        a.inflight,
        if a.rate > 0.0 { format!(", target {:.0}/s", a.rate) } else { String::new() },
        achieved,
        elapsed,
        tally.ok,
        tally.errors,
        lat.line(),
        cpu.map(|c| format!("\n  gateway CPU {:.2}s ({:.1}% of one core)", c, 100.0 * c / elapsed))
            .unwrap_or_default(),
    );
    Ok(Report { json, human })
}
