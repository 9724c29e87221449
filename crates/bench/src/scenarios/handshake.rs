//! `handshake`: N sequential connections, each open → challenge → connect → `health` → close.
//! Latencies are measured from just before the TCP connect (as the reference harness does).

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::json;

use super::{cpu_delta, Ctx, Report};
use crate::stats::Summary;
use crate::wire;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Connections to make, one after the other.
    #[arg(long, default_value_t = 500)]
    pub n: usize,
    /// Extra connections first, not counted (warms caches and the allocator).
    #[arg(long, default_value_t = 0)]
    pub warmup: usize,
    /// Stop early after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    pub max_seconds: f64,
}

#[derive(Default)]
struct Phases {
    open: Vec<Duration>,
    challenge: Vec<Duration>,
    hello: Vec<Duration>,
    health_rtt: Vec<Duration>,
    total: Vec<Duration>,
    close: Vec<Duration>,
}

async fn one(ctx: &Ctx, phases: Option<&mut Phases>) -> Result<()> {
    let (mut ws, t) = wire::connect(&ctx.opts).await?;
    wire::call(&mut ws, 1, "health", None, ctx.timeout()).await?;
    let t_health = Instant::now();
    wire::close(ws, ctx.timeout()).await;
    let t_close = Instant::now();
    if let Some(p) = phases {
        p.open.push(t.open - t.t0);
        p.challenge.push(t.challenge - t.t0);
        p.hello.push(t.hello - t.t0);
        p.health_rtt.push(t_health - t.hello);
        p.total.push(t_health - t.t0);
        p.close.push(t_close - t_health);
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Report> {
    for _ in 0..args.warmup {
        one(ctx, None).await?;
    }
    let mut phases = Phases::default();
    let mut errors: Vec<String> = Vec::new();
    let s0 = ctx.snap();
    let start = Instant::now();
    for _ in 0..args.n {
        if start.elapsed().as_secs_f64() > args.max_seconds {
            break;
        }
        if let Err(e) = one(ctx, Some(&mut phases)).await {
            errors.push(format!("{e:#}"));
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let s1 = ctx.snap();
    let ok = phases.total.len();
    let conn_per_s = ok as f64 / wall;
    let hello = Summary::of(&phases.hello);
    let total = Summary::of(&phases.total);
    let gw_cpu = cpu_delta(s0, s1);
    let json = json!({
        "n_requested": args.n, "n_ok": ok, "errors": errors.len(),
        "error_samples": errors.iter().take(5).collect::<Vec<_>>(),
        "device_identity": ctx.opts.device.is_some(),
        "wall_s": (wall * 100.0).round() / 100.0,
        "conn_per_s": (conn_per_s * 10.0).round() / 10.0,
        "latency_ms": {
            "open": Summary::of(&phases.open).to_json(),
            "challenge": Summary::of(&phases.challenge).to_json(),
            "hello": hello.to_json(),
            "health_rtt": Summary::of(&phases.health_rtt).to_json(),
            "total": total.to_json(),
            "close": Summary::of(&phases.close).to_json(),
        },
        "gateway_before": crate::procfs::snap_json(s0),
        "gateway_after": crate::procfs::snap_json(s1),
        "gateway_cpu_ms_per_conn": gw_cpu.filter(|_| ok > 0).map(|c| (c * 1e3 / ok as f64 * 100.0).round() / 100.0),
    });
    let human = format!(
        "handshake: {ok}/{} ok ({} errors), {conn_per_s:.0} conn/s{}\n  open→hello-ok   {}\n  open→health-res {}\n",
        args.n,
        errors.len(),
        if ctx.opts.device.is_some() { ", device-signed" } else { "" },
        hello.line(),
        total.line(),
    );
    Ok(Report { json, human })
}
