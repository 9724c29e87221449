//! `rps`: K requests in flight over C connections for D seconds. Each connection is one task
//! that pipelines its share of the window: it reads every response that is ready, refills the
//! window with as many new requests, and flushes once per batch (one write syscall, like a
//! real pipelining client). Responses are recognised by scanning the frame prefix, not parsed.

use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use super::{cpu_delta, Ctx, Report};
use crate::stats::Summary;
use crate::wire::{self, Ws};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Connections.
    #[arg(long, default_value_t = 1)]
    pub connections: usize,
    /// Requests in flight in total (spread over the connections).
    #[arg(long, default_value_t = 8)]
    pub inflight: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Unmeasured seconds of load first.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    #[arg(long, default_value = "health")]
    pub method: String,
    /// Raw JSON params (omitted when not given).
    #[arg(long)]
    pub params: Option<String>,
    /// Fully parse every response and require `ok:true` with a payload object (costs client CPU).
    #[arg(long)]
    pub verify: bool,
}

#[derive(Default)]
struct ConnResult {
    lat_ns: Vec<u64>,
    ok: u64,
    errors: u64,
    bytes: u64,
}

struct Plan {
    window: usize,
    verify: bool,
    record_from: Instant,
    stop_at: Instant,
}

fn verified(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .is_ok_and(|v| v["type"] == "res" && v["ok"] == true && v["payload"].is_object())
}

async fn feed(ws: &mut Ws, id: u64, method: &str, params: Option<&str>) -> Result<()> {
    ws.feed(Message::Text(
        wire::request_frame(id, method, params).into(),
    ))
    .await?;
    Ok(())
}

async fn drive(
    mut ws: Ws,
    plan: Plan,
    method: String,
    params: Option<String>,
    timeout: Duration,
) -> Result<ConnResult> {
    let ring = plan.window.next_power_of_two();
    let mut sent_at = vec![Instant::now(); ring];
    let mut out = ConnResult::default();
    let mut next_id: u64 = 0;
    for _ in 0..plan.window {
        sent_at[(next_id as usize) & (ring - 1)] = Instant::now();
        feed(&mut ws, next_id, &method, params.as_deref()).await?;
        next_id += 1;
    }
    ws.flush().await?;
    let mut outstanding = plan.window;
    while outstanding > 0 {
        let msg = match ws.next().now_or_never() {
            Some(m) => m,
            None => {
                ws.flush().await?;
                tokio::time::timeout(timeout, ws.next())
                    .await
                    .map_err(|_| anyhow!("no response within {timeout:?}"))?
            }
        };
        let text = match msg {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(f))) => bail!("closed by gateway: {f:?}"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("connection ended"),
        };
        let Some((id, ok)) = wire::scan_res(text.as_str()) else {
            continue; // an event (tick, health)
        };
        let ok = ok && (!plan.verify || verified(text.as_str()));
        let now = Instant::now();
        let id: u64 = id
            .parse()
            .map_err(|_| anyhow!("unexpected res id {id:?}"))?;
        outstanding -= 1;
        if now >= plan.record_from && now < plan.stop_at {
            out.bytes += text.len() as u64;
            if ok {
                out.ok += 1;
                let sent = sent_at[(id as usize) & (ring - 1)];
                out.lat_ns.push(now.duration_since(sent).as_nanos() as u64);
            } else {
                out.errors += 1;
            }
        }
        if now < plan.stop_at {
            sent_at[(next_id as usize) & (ring - 1)] = now;
            feed(&mut ws, next_id, &method, params.as_deref()).await?;
            next_id += 1;
            outstanding += 1;
        }
    }
    wire::close(ws, timeout).await;
    Ok(out)
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Report> {
    if args.connections == 0 || args.inflight < args.connections {
        bail!("need at least one connection and one request in flight per connection");
    }
    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        conns.push(wire::connect(&ctx.opts).await?.0);
    }
    let begin = Instant::now() + Duration::from_millis(20);
    let record_from = begin + Duration::from_secs_f64(args.warmup);
    let stop_at = record_from + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::with_capacity(args.connections);
    for (i, ws) in conns.into_iter().enumerate() {
        let window =
            args.inflight / args.connections + usize::from(i < args.inflight % args.connections);
        let plan = Plan {
            window,
            verify: args.verify,
            record_from,
            stop_at,
        };
        let (method, params, timeout) = (args.method.clone(), args.params.clone(), ctx.timeout());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep_until(begin.into()).await;
            drive(ws, plan, method, params, timeout).await
        }));
    }
    tokio::time::sleep_until(record_from.into()).await;
    let s0 = ctx.snap();
    tokio::time::sleep_until(stop_at.into()).await;
    let s1 = ctx.snap();
    let mut lat = Vec::new();
    let (mut ok, mut errors, mut bytes, mut failed) = (0u64, 0u64, 0u64, Vec::new());
    for t in tasks {
        match t.await {
            Ok(Ok(r)) => {
                ok += r.ok;
                errors += r.errors;
                bytes += r.bytes;
                lat.extend(r.lat_ns);
            }
            Ok(Err(e)) => failed.push(format!("{e:#}")),
            Err(e) => failed.push(e.to_string()),
        }
    }
    let rps = ok as f64 / args.duration;
    let summary = Summary::of_nanos(&lat);
    let cpu = cpu_delta(s0, s1).map(|c| (c / args.duration * 1000.0).round() / 1000.0);
    let json = json!({
        "method": args.method, "connections": args.connections, "inflight": args.inflight,
        "duration_s": args.duration, "warmup_s": args.warmup,
        "completed": ok, "errors": errors, "verified": args.verify,
        "response_mib_per_s": ((bytes as f64 / args.duration / 1048576.0) * 10.0).round() / 10.0, "failed_connections": failed.len(),
        "failure_samples": failed.iter().take(5).collect::<Vec<_>>(),
        "rps": rps.round(), "latency_ms": summary.to_json(),
        "gateway_cpu_util": cpu,
        "gateway_before": crate::procfs::snap_json(s0), "gateway_after": crate::procfs::snap_json(s1),
    });
    let human = format!(
        "rps: {} × {} in flight over {} connection(s), {:.0} s: {rps:.0} req/s ({ok} ok, {errors} errors, {} failed connections)\n  latency {}\n  gateway CPU {}\n",
        args.method,
        args.inflight,
        args.connections,
        args.duration,
        failed.len(),
        summary.line(),
        cpu.map(|c| format!("{c:.2} cores")).unwrap_or_else(|| "-".into()),
    );
    Ok(Report { json, human })
}
