//! `idle`: C connected idle clients. Gateway RSS (median of 5 `/proc` samples) before and after
//! they connect gives the memory cost per connection; after `--settle` seconds every client must
//! still be open (pings are answered by reading), and one `health` on each proves they serve.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use super::{Ctx, Report};
use crate::procfs::{snap_json, ProcSnap};
use crate::wire::{self, Ws};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 200)]
    pub clients: usize,
    /// Handshakes in progress at once (the gateway allows 32 unauthenticated sockets per IP).
    #[arg(long, default_value_t = 20)]
    pub batch: usize,
    /// Seconds to wait with everyone connected before sampling and checking.
    #[arg(long, default_value_t = 10.0)]
    pub settle: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Hold,
    Probe,
    Close,
}

struct Shared {
    alive: AtomicUsize,
    probed: AtomicUsize,
    health_ok: AtomicUsize,
}

async fn hold(
    mut ws: Ws,
    mut phase: watch::Receiver<Phase>,
    shared: Arc<Shared>,
    timeout: Duration,
) {
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => {
                    shared.alive.fetch_sub(1, Ordering::AcqRel);
                    return;
                }
                Some(Ok(_)) => {}
            },
            changed = phase.changed() => {
                let now = if changed.is_ok() { *phase.borrow_and_update() } else { Phase::Close };
                match now {
                    Phase::Hold => {}
                    Phase::Probe => {
                        if wire::call(&mut ws, 1, "health", None, timeout).await.is_ok() {
                            shared.health_ok.fetch_add(1, Ordering::AcqRel);
                        }
                        shared.probed.fetch_add(1, Ordering::AcqRel);
                    }
                    Phase::Close => {
                        wire::close(ws, timeout).await;
                        return;
                    }
                }
            }
        }
    }
}

async fn median(ctx: &Ctx) -> Option<ProcSnap> {
    match ctx.pid {
        Some(pid) => ProcSnap::median(pid, 5, Duration::from_millis(200)).await,
        None => None,
    }
}

fn growth_kb(a: Option<ProcSnap>, b: Option<ProcSnap>, n: usize) -> Value {
    match (a, b) {
        (Some(a), Some(b)) if n > 0 => {
            json!(((b.rss_kb as f64 - a.rss_kb as f64) / n as f64 * 100.0).round() / 100.0)
        }
        _ => Value::Null,
    }
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Report> {
    if args.batch == 0 {
        bail!("--batch must be at least 1");
    }
    let (probe, _) = wire::connect(&ctx.opts).await?;
    let s0 = median(ctx).await;
    let shared = Arc::new(Shared {
        alive: AtomicUsize::new(0),
        probed: AtomicUsize::new(0),
        health_ok: AtomicUsize::new(0),
    });
    let (phase_tx, phase_rx) = watch::channel(Phase::Hold);
    let sem = Arc::new(Semaphore::new(args.batch));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let start = Instant::now();
    let mut holders = Vec::with_capacity(args.clients);
    let mut marks = Vec::new();
    let step = (args.clients / 4).max(1);
    let mut begun = 0;
    while begun < args.clients {
        let n = step.min(args.clients - begun);
        let mut connecting = Vec::with_capacity(n);
        for _ in 0..n {
            let opts = wire::ConnectOpts {
                read_buffer: wire::SMALL_READ_BUFFER,
                ..ctx.opts.clone()
            };
            let (sem, errors) = (Arc::clone(&sem), Arc::clone(&errors));
            connecting.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await.ok()?;
                match wire::connect(&opts).await {
                    Ok((ws, _)) => Some(ws),
                    Err(e) => {
                        if let Ok(mut v) = errors.lock() {
                            v.push(format!("{e:#}"));
                        }
                        None
                    }
                }
            }));
        }
        for c in connecting {
            if let Ok(Some(ws)) = c.await {
                shared.alive.fetch_add(1, Ordering::AcqRel);
                holders.push(tokio::spawn(hold(
                    ws,
                    phase_rx.clone(),
                    Arc::clone(&shared),
                    ctx.timeout(),
                )));
            }
        }
        begun += n;
        marks.push(json!({"connected": holders.len(), "gateway": snap_json(ctx.snap())}));
    }
    let connected = holders.len();
    let connect_s = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs_f64(args.settle)).await;
    let s1 = median(ctx).await;
    let alive = shared.alive.load(Ordering::Acquire);
    let t_probe = Instant::now();
    phase_tx.send_replace(Phase::Probe);
    let deadline = Instant::now() + ctx.timeout();
    while shared.probed.load(Ordering::Acquire) < shared.alive.load(Ordering::Acquire)
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let probe_s = t_probe.elapsed().as_secs_f64();
    let health_ok = shared.health_ok.load(Ordering::Acquire);
    let s_h = ctx.snap();
    phase_tx.send_replace(Phase::Close);
    for h in holders {
        let _ = h.await;
    }
    wire::close(probe, ctx.timeout()).await;
    tokio::time::sleep(Duration::from_secs_f64(args.settle.min(5.0))).await;
    let s2 = median(ctx).await;
    let errs = errors.lock().map(|v| v.clone()).unwrap_or_default();
    let per_client = growth_kb(s0, s1, connected);
    let json = json!({
        "clients_requested": args.clients, "connected": connected, "connect_errors": errs.len(),
        "error_samples": errs.iter().take(5).collect::<Vec<_>>(),
        "connect_all_s": (connect_s * 100.0).round() / 100.0, "settle_s": args.settle,
        "alive_after_settle": alive, "health_all_ok": health_ok,
        "health_all_s": (probe_s * 1000.0).round() / 1000.0,
        "marks": marks,
        "gateway_before": snap_json(s0), "gateway_all_connected": snap_json(s1),
        "gateway_after_health_all": snap_json(s_h), "gateway_after_close": snap_json(s2),
        "rss_growth_per_client_kb": per_client,
        "rss_growth_per_client_after_health_kb": growth_kb(s0, s_h, connected),
    });
    let human = format!(
        "idle: {connected}/{} connected in {connect_s:.1} s ({} errors); {alive} alive after {:.0} s; health on all: {health_ok} ok in {probe_s:.2} s\n  gateway RSS {} → {} KiB = {} KiB per client (after close: {} KiB)\n",
        args.clients,
        errs.len(),
        args.settle,
        s0.map_or(0, |s| s.rss_kb),
        s1.map_or(0, |s| s.rss_kb),
        per_client,
        s2.map_or(0, |s| s.rss_kb),
    );
    Ok(Report { json, human })
}
