//! `fanout`: L listener connections; a sender calls a method that makes the gateway broadcast
//! an event, M times. Each call carries a unique marker; every listener timestamps the frame
//! that contains it, so we get the first, the last and every delivery latency per broadcast,
//! measured from just before the sender's request was written.
//!
//! Pluggable: `--method`/`--event`/`--params` (with `{marker}` substituted). The default uses
//! `system-event` with presence metadata, which the gateway answers with a `presence`
//! broadcast; once chat exists, `--method chat.inject --event chat
//! --params '{"sessionKey":"main","message":"{marker}"}'` measures the reference's scenario.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use super::{Ctx, Report};
use crate::procfs::snap_json;
use crate::stats::Summary;
use crate::wire::{self, Ws};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(long, default_value_t = 100)]
    pub listeners: usize,
    /// Broadcasts to trigger.
    #[arg(long, default_value_t = 50)]
    pub count: usize,
    /// Handshakes in progress at once while connecting listeners.
    #[arg(long, default_value_t = 20)]
    pub batch: usize,
    /// Pause between broadcasts.
    #[arg(long, default_value_t = 100.0)]
    pub interval_ms: f64,
    /// Give up on missing deliveries of one broadcast after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub wait: f64,
    /// Method that triggers the broadcast.
    #[arg(long, default_value = "system-event")]
    pub method: String,
    /// Event the listeners wait for.
    #[arg(long, default_value = "presence")]
    pub event: String,
    /// Params JSON; `{marker}` is replaced by the broadcast's unique marker.
    #[arg(
        long,
        default_value = r#"{"text":"{marker}","host":"pincer-bench-fanout"}"#
    )]
    pub params: String,
}

/// `<prefix><k>-` somewhere in the frame → k.
fn marker_index(text: &str, prefix: &str) -> Option<usize> {
    let at = text.find(prefix)? + prefix.len();
    let digits = &text[at..];
    let end = digits.find('-')?;
    digits[..end].parse().ok()
}

async fn listen(
    mut ws: Ws,
    needle: Arc<str>,
    prefix: Arc<str>,
    tx: mpsc::UnboundedSender<(usize, Instant)>,
    mut stop: watch::Receiver<bool>,
) {
    // Armed once: re-registering a watch waiter on every frame would cost the client more
    // than parsing the frame.
    let stopped = async move {
        let _ = stop.changed().await;
    };
    tokio::pin!(stopped);
    loop {
        tokio::select! {
            biased;
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let now = Instant::now();
                    let t = t.as_str();
                    if t.contains(&*needle) {
                        if let Some(k) = marker_index(t, &prefix) {
                            let _ = tx.send((k, now));
                        }
                    }
                }
                Some(Ok(_)) => {}
                _ => return,
            },
            () = &mut stopped => {
                wire::close(ws, Duration::from_secs(5)).await;
                return;
            }
        }
    }
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Report> {
    if args.listeners == 0 || args.batch == 0 {
        bail!("need at least one listener and --batch ≥ 1");
    }
    let sem = Arc::new(Semaphore::new(args.batch));
    let mut pending = Vec::with_capacity(args.listeners);
    let listener_opts = wire::ConnectOpts {
        read_buffer: wire::SMALL_READ_BUFFER,
        ..ctx.opts.clone()
    };
    for _ in 0..args.listeners {
        let (sem, opts) = (Arc::clone(&sem), listener_opts.clone());
        pending.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await?;
            wire::connect(&opts).await.map(|(ws, _)| ws)
        }));
    }
    let mut listeners = Vec::with_capacity(args.listeners);
    for p in pending {
        listeners.push(p.await?.context("listener connect")?);
    }
    let (mut sender, _) = wire::connect(&ctx.opts).await?;
    let prefix: Arc<str> = format!("pbfo{:08x}-", rand::random::<u32>()).into();
    let needle: Arc<str> = format!(r#""event":"{}""#, args.event).into();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(listeners.len());
    for ws in listeners {
        tasks.push(tokio::spawn(listen(
            ws,
            Arc::clone(&needle),
            Arc::clone(&prefix),
            tx.clone(),
            stop_rx.clone(),
        )));
    }
    drop(tx);
    // Let hello-time events (health, presence) drain before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;
    while rx.try_recv().is_ok() {}
    let s0 = ctx.snap();
    let (mut first, mut last, mut all, mut rtts) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut received, mut errors) = (0usize, Vec::<String>::new());
    let mut deliveries: Vec<Vec<Instant>> = vec![Vec::new(); args.count];
    for k in 0..args.count {
        let marker = format!("{prefix}{k}-");
        let params = args.params.replace("{marker}", &marker);
        let frame = wire::request_frame(k as u64 + 1, &args.method, Some(&params));
        let ts = Instant::now();
        sender.send(Message::Text(frame.into())).await?;
        let res = wire::await_res(&mut sender, &(k + 1).to_string(), ctx.timeout()).await?;
        rtts.push(ts.elapsed());
        if wire::scan_res(&res).is_none_or(|(_, ok)| !ok) {
            errors.push(wire::truncate(&res, 300).to_string());
        }
        let deadline = ts + Duration::from_secs_f64(args.wait);
        while deliveries[k].len() < args.listeners {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.recv()).await {
                Ok(Some((i, at))) if i < args.count => deliveries[i].push(at),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let lats: Vec<Duration> = deliveries[k].iter().map(|&at| at - ts).collect();
        received += lats.len();
        if let (Some(f), Some(l)) = (lats.iter().min(), lats.iter().max()) {
            first.push(*f);
            last.push(*l);
        }
        all.extend(lats);
        tokio::time::sleep(Duration::from_secs_f64(args.interval_ms / 1000.0)).await;
    }
    let s1 = ctx.snap();
    stop_tx.send_replace(true);
    for t in tasks {
        let _ = t.await;
    }
    wire::close(sender, ctx.timeout()).await;
    let (first, last, all, rtt) = (
        Summary::of(&first),
        Summary::of(&last),
        Summary::of(&all),
        Summary::of(&rtts),
    );
    let expected = args.count * args.listeners;
    let json = json!({
        "method": args.method, "event": args.event, "listeners": args.listeners, "broadcasts": args.count,
        "deliveries_expected": expected, "deliveries_received": received,
        "errors": errors.len(), "error_samples": errors.iter().take(5).collect::<Vec<_>>(),
        "request_rtt_ms": rtt.to_json(), "first_delivery_ms": first.to_json(),
        "last_delivery_ms": last.to_json(), "all_deliveries_ms": all.to_json(),
        "gateway_before": snap_json(s0), "gateway_after": snap_json(s1),
    });
    let human = format!(
        "fanout: {} → `{}` to {} listeners × {}: {received}/{expected} delivered ({} errors)\n  first delivery {}\n  last delivery  {}\n  all deliveries {}\n  sender rtt     {}\n",
        args.method,
        args.event,
        args.listeners,
        args.count,
        errors.len(),
        first.line(),
        last.line(),
        all.line(),
        rtt.line(),
    );
    Ok(Report { json, human })
}

#[cfg(test)]
mod tests {
    use super::marker_index;

    #[test]
    fn finds_marker_index() {
        let t = r#"{"type":"event","event":"presence","payload":{"presence":[{"text":"pbfo0000abcd-17-"}]}}"#;
        assert_eq!(marker_index(t, "pbfo0000abcd-"), Some(17));
        assert_eq!(marker_index(t, "pbfo0000ffff-"), None);
    }
}
