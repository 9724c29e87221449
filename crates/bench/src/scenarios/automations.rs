//! `automations`: the scheduler's cost inside a running gateway (needs `--pid` for RSS/CPU).
//!
//! 1. Memory: `--jobs` automations are added over `cron.add` (pipelined, `every` intervals of
//!    1–24 h spread over the day so none comes due, `systemEvent` payloads); gateway RSS
//!    before and after (medians of several `/proc` reads), and the scheduler's own estimate of
//!    its index (`cron.status.indexBytes`).
//! 2. Idle: for `--idle-secs` nothing is due; the scheduler's timer wake-ups (`cron.status`
//!    stats) and the gateway's CPU time over the window — no polling means no wake-ups.
//! 3. Due work: `--due` one-shot jobs spread over the next seconds; every timer wake-up must
//!    find work (`idleTimerWakeups` stays 0) and each job runs once.
//!
//! `--cleanup` removes what it added.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::SinkExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

use super::{cpu_delta, Ctx, Report};
use crate::procfs::{snap_json, ProcSnap};
use crate::wire::{self, Ws};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Automations to add.
    #[arg(long, default_value_t = 10_000)]
    pub jobs: usize,
    /// Requests in flight while adding.
    #[arg(long, default_value_t = 64)]
    pub inflight: usize,
    /// Idle window (nothing due).
    #[arg(long, default_value_t = 20)]
    pub idle_secs: u64,
    /// One-shot jobs that come due during the run (0 = skip).
    #[arg(long, default_value_t = 200)]
    pub due: usize,
    /// Remove the jobs afterwards.
    #[arg(long)]
    pub cleanup: bool,
}

async fn status(ws: &mut Ws, id: u64, ctx: &Ctx) -> Result<Value> {
    let res = wire::call(ws, id, "cron.status", Some("{}"), ctx.timeout()).await?;
    let v: Value = serde_json::from_str(&res)?;
    Ok(v["payload"].clone())
}

/// Sends `params` as `method` calls with at most `inflight` outstanding; returns the `res`
/// payloads in request order.
async fn pipelined(
    ws: &mut Ws,
    method: &str,
    params: &[String],
    inflight: usize,
    first_id: u64,
    timeout: Duration,
) -> Result<Vec<Value>> {
    let mut out: Vec<Value> = vec![Value::Null; params.len()];
    let mut sent = 0usize;
    let mut done = 0usize;
    while done < params.len() {
        while sent < params.len() && sent - done < inflight.max(1) {
            let id = first_id + sent as u64;
            ws.send(Message::Text(
                wire::request_frame(id, method, Some(&params[sent])).into(),
            ))
            .await?;
            sent += 1;
        }
        let text = tokio::time::timeout(timeout, wire::next_text(ws))
            .await
            .context("waiting for cron.add answers")??;
        if let Some((rid, ok)) = wire::scan_res(&text) {
            let Ok(id) = rid.parse::<u64>() else { continue };
            if id < first_id || id >= first_id + params.len() as u64 {
                continue;
            }
            if !ok {
                bail!("{method} failed: {}", wire::truncate(&text, 300));
            }
            let v: Value = serde_json::from_str(&text)?;
            out[(id - first_id) as usize] = v["payload"].clone();
            done += 1;
        }
    }
    Ok(out)
}

async fn rss_median(ctx: &Ctx) -> Option<ProcSnap> {
    match ctx.pid {
        Some(pid) => ProcSnap::median(pid, 7, Duration::from_millis(30)).await,
        None => None,
    }
}

fn kib(a: Option<ProcSnap>, b: Option<ProcSnap>) -> Option<i64> {
    Some(b?.rss_kb as i64 - a?.rss_kb as i64)
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Report> {
    let (mut ws, _) = wire::connect(&ctx.opts).await?;
    let tag = format!("pb{:08x}", rand::random::<u32>());
    let st0 = status(&mut ws, 1, ctx).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_median(ctx).await;

    // ---- 1. memory with --jobs automations ----
    let params: Vec<String> = (0..args.jobs)
        .map(|i| {
            // 1–24 h intervals with anchors spread over the day: nothing due in the run.
            let every = 3_600_000u64 * (1 + (i as u64 % 24));
            json!({
                "name": format!("{tag}-{i}"),
                "schedule": {"kind": "every", "everyMs": every},
                "wakeMode": "next-heartbeat",
                "payload": {"kind": "systemEvent", "text": format!("bench {i}")},
            })
            .to_string()
        })
        .collect();
    let t0 = Instant::now();
    let added = pipelined(
        &mut ws,
        "cron.add",
        &params,
        args.inflight,
        1_000,
        ctx.timeout(),
    )
    .await?;
    let add_secs = t0.elapsed().as_secs_f64();
    let ids: Vec<String> = added
        .iter()
        .filter_map(|j| j["id"].as_str().map(str::to_owned))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_median(ctx).await;
    let st1 = status(&mut ws, 2, ctx).await?;

    // ---- 2. idle: nothing due ----
    let s_idle0 = ctx.snap();
    let idle_start = status(&mut ws, 3, ctx).await?;
    tokio::time::sleep(Duration::from_secs(args.idle_secs)).await;
    let idle_end = status(&mut ws, 4, ctx).await?;
    let s_idle1 = ctx.snap();
    let idle_wakeups = idle_end["stats"]["timerWakeups"].as_u64().unwrap_or(0)
        - idle_start["stats"]["timerWakeups"].as_u64().unwrap_or(0);
    let idle_cpu_ms = cpu_delta(s_idle0, s_idle1).map(|c| c * 1000.0);

    // ---- 3. due work ----
    let mut due_json = Value::Null;
    let mut due_human = String::new();
    let mut due_ids = Vec::new();
    if args.due > 0 {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_millis() as u64;
        let due_params: Vec<String> = (0..args.due)
            .map(|i| {
                // Spread over 2–7 s, several jobs per instant.
                let at = now_ms + 2_000 + (i as u64 % 50) * 100;
                json!({
                    "name": format!("{tag}-due-{i}"),
                    "schedule": {"kind": "at", "at": iso(at)},
                    "wakeMode": "next-heartbeat",
                    "deleteAfterRun": false,
                    "payload": {"kind": "systemEvent", "text": format!("due {i}")},
                })
                .to_string()
            })
            .collect();
        let before_due = status(&mut ws, 5, ctx).await?;
        let added = pipelined(
            &mut ws,
            "cron.add",
            &due_params,
            args.inflight,
            100_000,
            ctx.timeout(),
        )
        .await?;
        due_ids = added
            .iter()
            .filter_map(|j| j["id"].as_str().map(str::to_owned))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        let after_due = loop {
            let s = status(&mut ws, 6, ctx).await?;
            let finished = s["stats"]["runsFinished"].as_u64().unwrap_or(0)
                - before_due["stats"]["runsFinished"].as_u64().unwrap_or(0);
            if finished as usize >= args.due || Instant::now() > deadline {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let d = |k: &str| {
            after_due["stats"][k].as_u64().unwrap_or(0)
                - before_due["stats"][k].as_u64().unwrap_or(0)
        };
        due_json = json!({
            "jobs": args.due,
            "runs_finished": d("runsFinished"),
            "timer_wakeups": d("timerWakeups"),
            "idle_timer_wakeups": d("idleTimerWakeups"),
            "due_batches": d("dueBatches"),
        });
        due_human = format!(
            "\n  due: {} one-shots over ~5 s → {} runs, {} timer wake-ups ({} found nothing), {} batches",
            args.due,
            d("runsFinished"),
            d("timerWakeups"),
            d("idleTimerWakeups"),
            d("dueBatches")
        );
    }

    if args.cleanup {
        let all: Vec<String> = ids
            .iter()
            .chain(&due_ids)
            .map(|id| json!({"id": id}).to_string())
            .collect();
        pipelined(
            &mut ws,
            "cron.remove",
            &all,
            args.inflight,
            1_000_000,
            ctx.timeout(),
        )
        .await?;
    }
    wire::close(ws, ctx.timeout()).await;

    let delta = kib(before, after);
    let index_bytes = st1["indexBytes"].as_u64().unwrap_or(0);
    let json = json!({
        "jobs": args.jobs,
        "added": ids.len(),
        "add_seconds": add_secs,
        "adds_per_second": ids.len() as f64 / add_secs.max(1e-9),
        "rss_before": snap_json(before),
        "rss_after": snap_json(after),
        "rss_delta_kib": delta,
        "index_bytes": index_bytes,
        "jobs_in_scheduler": st1["jobs"],
        "jobs_before": st0["jobs"],
        "idle_seconds": args.idle_secs,
        "idle_timer_wakeups": idle_wakeups,
        "idle_cpu_ms": idle_cpu_ms,
        "next_wake_at_ms": idle_end["nextWakeAtMs"],
        "due": due_json,
    });
    let human = format!(
        "automations: {} added in {add_secs:.1} s ({:.0}/s); RSS {} → {} (Δ {} KiB; index estimate {} KiB)\n  idle {} s with {} jobs: {} timer wake-ups, gateway CPU {} ms{due_human}",
        ids.len(),
        ids.len() as f64 / add_secs.max(1e-9),
        before.map_or("?".into(), |s| format!("{} KiB", s.rss_kb)),
        after.map_or("?".into(), |s| format!("{} KiB", s.rss_kb)),
        delta.map_or("?".into(), |d| d.to_string()),
        index_bytes / 1024,
        args.idle_secs,
        st1["jobs"],
        idle_wakeups,
        idle_cpu_ms.map_or("?".into(), |c| format!("{c:.1}")),
    );
    Ok(Report { json, human })
}

/// Epoch milliseconds as an ISO-8601 UTC instant.
fn iso(ms: u64) -> String {
    let secs = ms / 1000;
    let millis = ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 → (year, month, day) (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::iso;

    #[test]
    fn iso_instants() {
        assert_eq!(iso(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso(1_795_236_345_836), "2026-11-21T04:45:45.836Z");
        assert_eq!(iso(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }
}
