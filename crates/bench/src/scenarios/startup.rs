//! `startup`: start the gateway command given after `--` (in the foreground, so its PID is the
//! gateway) several times and measure, from spawn: the port accepting TCP, the first complete
//! handshake + ok `health` (polled every 0.5 ms, so the poller adds little), RSS/threads at
//! `--idle-at` seconds, and SIGTERM → exit. A lean counterpart of the reference's
//! `measure_startup.py`, whose Python poller costs several ms per attempt.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::json;

use super::{Ctx, Report};
use crate::procfs::{snap_json, ProcSnap};
use crate::stats::Summary;
use crate::wire;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Seconds after spawn for the idle RSS/threads sample.
    #[arg(long, default_value_t = 2.0)]
    pub idle_at: f64,
    /// Give each run a new empty `PINCER_STATE_DIR` (removed afterwards), as the reference's
    /// `start_gateway.sh` does, without a shell wrapper's start-up cost in the figure.
    #[arg(long)]
    pub fresh_state_dir: bool,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 30.0)]
    pub start_timeout: f64,
    /// The gateway command (after `--`).
    #[arg(last = true, required = true)]
    pub cmd: Vec<String>,
}

struct Run {
    port: Duration,
    health: Duration,
    attempts: u32,
    idle: Option<ProcSnap>,
    stop: Duration,
}

async fn one(ctx: &Ctx, args: &Args) -> Result<Run> {
    let addr = ctx
        .opts
        .url
        .strip_prefix("ws://")
        .and_then(|r| r.split('/').next())
        .context("--url must be ws://host:port")?
        .to_string();
    if std::net::TcpStream::connect(&addr).is_ok() {
        bail!("{addr} already answers; stop the other gateway first");
    }
    let state_dir = args.fresh_state_dir.then(|| {
        std::env::temp_dir().join(format!("pincer-bench-state-{:016x}", rand::random::<u64>()))
    });
    let mut command = Command::new(&args.cmd[0]);
    if let Some(dir) = &state_dir {
        command.env("PINCER_STATE_DIR", dir);
    }
    let t0 = Instant::now();
    let mut child = command
        .args(&args.cmd[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("cannot start {:?}", args.cmd))?;
    let pid = child.id();
    let deadline = t0 + Duration::from_secs_f64(args.start_timeout);
    let result = async {
        while tokio::net::TcpStream::connect(&addr).await.is_err() {
            if Instant::now() > deadline || child.try_wait()?.is_some() {
                bail!("the gateway never accepted TCP on {addr}");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        let port = t0.elapsed();
        let mut attempts = 0;
        loop {
            attempts += 1;
            let ok = async {
                let (mut ws, _) = wire::connect(&ctx.opts).await?;
                wire::call(&mut ws, 1, "health", None, ctx.timeout()).await?;
                wire::close(ws, ctx.timeout()).await;
                anyhow::Ok(())
            };
            if ok.await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("no healthy `health` within {:.0} s", args.start_timeout);
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        let health = t0.elapsed();
        tokio::time::sleep_until((t0 + Duration::from_secs_f64(args.idle_at)).into()).await;
        let idle = ProcSnap::read(pid);
        anyhow::Ok((port, health, attempts, idle))
    }
    .await;
    let t_stop = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let exited = loop {
        if child.try_wait()?.is_some() {
            break true;
        }
        if t_stop.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    };
    let stop = t_stop.elapsed();
    if let Some(dir) = &state_dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    let (port, health, attempts, idle) = result?;
    if !exited {
        bail!("the gateway ignored SIGTERM for 10 s (killed)");
    }
    Ok(Run {
        port,
        health,
        attempts,
        idle,
        stop,
    })
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Report> {
    let mut runs = Vec::with_capacity(args.runs);
    for _ in 0..args.runs {
        runs.push(one(ctx, args).await?);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let port = Summary::of(&runs.iter().map(|r| r.port).collect::<Vec<_>>());
    let health = Summary::of(&runs.iter().map(|r| r.health).collect::<Vec<_>>());
    let stop = Summary::of(&runs.iter().map(|r| r.stop).collect::<Vec<_>>());
    let mut rss: Vec<u64> = runs
        .iter()
        .filter_map(|r| r.idle.map(|s| s.rss_kb))
        .collect();
    rss.sort_unstable();
    let rss_median = rss.get(rss.len() / 2).copied();
    let json = json!({
        "cmd": args.cmd, "runs": runs.len(), "fresh_state_dir": args.fresh_state_dir,
        "t_port_ms": port.to_json(), "t_health_ms": health.to_json(), "t_stop_ms": stop.to_json(),
        "health_attempts": runs.iter().map(|r| r.attempts).collect::<Vec<_>>(),
        "idle_at_s": args.idle_at, "idle_rss_kb_median": rss_median,
        "idle": runs.iter().map(|r| snap_json(r.idle)).collect::<Vec<_>>(),
    });
    let human = format!(
        "startup: {} runs of {:?}\n  spawn→port     median {:.2} ms\n  spawn→health  median {:.2} ms (max {:.2})\n  idle RSS @{:.0} s median {} KiB\n  SIGTERM→exit  median {:.1} ms\n",
        runs.len(),
        args.cmd,
        port.p50,
        health.p50,
        health.max,
        args.idle_at,
        rss_median.unwrap_or(0),
        stop.p50,
    );
    Ok(Report { json, human })
}
