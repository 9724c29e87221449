//! `chat`: the agent runtime end to end against a zero-latency fake provider that this
//! scenario starts on `--fake-port` (point the gateway's `models.providers` at it, see
//! BENCHMARKS.md).
//!
//! 1. Overhead per turn: `chat.send` → `chat` `final` of a short reply (`--turn-words`
//!    deltas), `--turns-per-session` turns per session, minus the provider floor: each turn's
//!    exact request, as the gateway sent it, replayed straight to the fake over a keep-alive
//!    connection until the end of its stream. The difference is what the gateway adds
//!    (admission, store writes, prompt, streaming, projection, WebSocket framing).
//! 2. Streaming: `--sessions` sessions at once, `--deltas` deltas each; every `agent`
//!    assistant event and every `chat` delta is checked (cumulative text, run seq order, final
//!    text), so a missed or reordered delta is counted. RSS is sampled meanwhile (`--pid`):
//!    growth per active run = (peak − before) / sessions.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use futures_util::{SinkExt, StreamExt};
use pincer_fakes::llm::{DefaultReply, Reply};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use super::{cpu_delta, Ctx, Report};
use crate::procfs::{snap_json, ProcSnap};
use crate::stats::Summary;
use crate::wire::{self, Ws};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Port of the fake provider this scenario starts (127.0.0.1).
    #[arg(long, default_value_t = 18950)]
    pub fake_port: u16,
    /// Measured overhead turns (each in a fresh session).
    #[arg(long, default_value_t = 200)]
    pub turns: usize,
    /// Unmeasured turns first.
    #[arg(long, default_value_t = 20)]
    pub warmup: usize,
    /// Deltas of the overhead turns' reply (one word each).
    #[arg(long, default_value_t = 32)]
    pub turn_words: usize,
    /// Overhead turns per session before the next session starts (a chat, not one message).
    #[arg(long, default_value_t = 25)]
    pub turns_per_session: usize,
    /// Concurrent streaming sessions.
    #[arg(long, default_value_t = 100)]
    pub sessions: usize,
    /// Deltas streamed per session.
    #[arg(long, default_value_t = 1000)]
    pub deltas: usize,
    /// Skip the streaming phase.
    #[arg(long)]
    pub no_stream: bool,
}

/// Connect with the `session-scoped-events` capability, so each socket gets only the
/// sessions it subscribes to.
async fn connect_scoped(ctx: &Ctx) -> Result<Ws> {
    let mut ws = wire::open(&ctx.opts.url).await?;
    let challenge = wire::read_challenge(&mut ws, ctx.timeout()).await?;
    let mut frame: Value = serde_json::from_str(&wire::connect_frame(&ctx.opts, &challenge, "c"))?;
    frame["params"]["caps"] = json!(["session-scoped-events"]);
    ws.send(Message::Text(frame.to_string().into())).await?;
    let res = wire::await_res(&mut ws, "c", ctx.timeout()).await?;
    if wire::scan_res(&res).is_none_or(|(_, ok)| !ok) {
        bail!("connect refused: {}", wire::truncate(&res, 300));
    }
    Ok(ws)
}

async fn subscribe(ws: &mut Ws, id: u64, key: &str, ctx: &Ctx) -> Result<()> {
    let params = json!({"key": key}).to_string();
    wire::call(
        ws,
        id,
        "sessions.messages.subscribe",
        Some(&params),
        ctx.timeout(),
    )
    .await?;
    Ok(())
}

/// Reads frames until the `chat` terminal event of `run`; returns its state.
async fn until_final(ws: &mut Ws, run: &str, timeout: Duration) -> Result<String> {
    let marker = format!(r#""runId":"{run}""#);
    tokio::time::timeout(timeout, async {
        loop {
            let text = wire::next_text(ws).await?;
            if text.starts_with(r#"{"type":"event","event":"chat""#) && text.contains(&marker) {
                for state in ["final", "error", "aborted"] {
                    if text.contains(&format!(r#""state":"{state}""#)) {
                        return Ok(state.to_owned());
                    }
                }
            }
        }
    })
    .await
    .context("waiting for the chat final")?
}

/// Sends a recorded request straight to the fake and reads its whole chunked answer.
async fn raw_turn(
    conn: &mut tokio::net::TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Result<()> {
    conn.write_all(request).await?;
    buf.clear();
    let mut chunk = [0u8; 64 * 1024];
    loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            bail!("the fake closed the connection");
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.ends_with(b"0\r\n\r\n") {
            return Ok(());
        }
    }
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Report> {
    let fake = super::fake_provider(
        args.fake_port,
        DefaultReply::Fixed {
            text: super::words(args.turn_words),
            chunk_delay: Duration::ZERO,
        },
    )
    .await?;
    let prefix = format!("pb{:08x}", rand::random::<u32>());

    // ---- 1. overhead per turn ----
    let mut ws = connect_scoped(ctx).await?;
    let mut next_id = 1u64;
    let mut turn_times = Vec::with_capacity(args.turns);
    let mut failures = 0usize;
    let s0 = ctx.snap();
    let per_session = args.turns_per_session.max(1);
    for i in 0..(args.warmup + args.turns) {
        let key = format!("agent:main:{prefix}-t{}", i / per_session);
        if i % per_session == 0 {
            next_id += 1;
            subscribe(&mut ws, next_id, &key, ctx).await?;
        }
        let run = format!("{prefix}-run-{i}");
        let params = json!({"sessionKey": key, "message": "hi", "idempotencyKey": run}).to_string();
        next_id += 1;
        let t0 = Instant::now();
        ws.send(Message::Text(
            wire::request_frame(next_id, "chat.send", Some(&params)).into(),
        ))
        .await?;
        let state = until_final(&mut ws, &run, ctx.timeout()).await?;
        let took = t0.elapsed();
        if state != "final" {
            failures += 1;
        }
        if i >= args.warmup {
            turn_times.push(took);
        }
        if (i + 1) % per_session == 0 {
            next_id += 1;
            let params = json!({"key": key}).to_string();
            let _ = wire::call(
                &mut ws,
                next_id,
                "sessions.messages.unsubscribe",
                Some(&params),
                ctx.timeout(),
            )
            .await;
        }
    }
    let s1 = ctx.snap();
    wire::close(ws, ctx.timeout()).await;

    // The provider floor: each measured turn's request, as the gateway sent it, replayed
    // straight to the fake.
    let recorded = fake.model_requests();
    if recorded.len() < args.warmup + args.turns {
        bail!(
            "the gateway sent {} model requests for {} turns: is its config pointing at --fake-port?",
            recorded.len(),
            args.warmup + args.turns
        );
    }
    let requests: Vec<Vec<u8>> = recorded
        .iter()
        .skip(args.warmup)
        .map(|r| {
            let mut bytes = format!(
                "POST {} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                r.path,
                args.fake_port,
                r.raw_body.len()
            )
            .into_bytes();
            bytes.extend_from_slice(&r.raw_body);
            bytes
        })
        .collect();
    let request_bytes = recorded.last().map_or(0, |r| r.raw_body.len());
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", args.fake_port)).await?;
    conn.set_nodelay(true)?;
    let mut buf = Vec::new();
    for request in requests.iter().take(args.warmup) {
        raw_turn(&mut conn, request, &mut buf).await?;
    }
    let mut floor_times = Vec::with_capacity(args.turns);
    for request in &requests {
        let t0 = Instant::now();
        raw_turn(&mut conn, request, &mut buf).await?;
        floor_times.push(t0.elapsed());
    }
    let overheads: Vec<f64> = turn_times
        .iter()
        .zip(&floor_times)
        .map(|(t, f)| (t.as_secs_f64() - f.as_secs_f64()) * 1000.0)
        .collect();
    let overhead = Summary::of_ms(overheads);
    let turn = Summary::of(&turn_times);
    let floor = Summary::of(&floor_times);
    let cpu_per_turn_ms = cpu_delta(s0, s1).map(|c| c * 1000.0 / (args.warmup + args.turns) as f64);

    // ---- 2. concurrent streaming ----
    let mut stream_json = Value::Null;
    let mut stream_human = String::new();
    if !args.no_stream && args.sessions > 0 {
        let text = super::words(args.deltas);
        for _ in 0..args.sessions {
            fake.push(Reply::new().text(&text));
        }
        let mut sockets = Vec::with_capacity(args.sessions);
        for s in 0..args.sessions {
            let mut ws = connect_scoped(ctx).await?;
            subscribe(&mut ws, 1, &format!("agent:main:{prefix}-s{s}"), ctx).await?;
            sockets.push(ws);
        }
        let before = match ctx.pid {
            Some(pid) => ProcSnap::median(pid, 5, Duration::from_millis(20)).await,
            None => None,
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let sampler = ctx.pid.map(|pid| {
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let mut peak = 0u64;
                loop {
                    if let Some(s) = ProcSnap::read(pid) {
                        peak = peak.max(s.rss_kb);
                    }
                    tokio::select! {
                        _ = stop.changed() => return peak,
                        () = tokio::time::sleep(Duration::from_millis(10)) => {}
                    }
                }
            })
        });
        let text = Arc::new(text);
        let t0 = Instant::now();
        let mut tasks = Vec::with_capacity(args.sessions);
        for (s, mut ws) in sockets.into_iter().enumerate() {
            let key = format!("agent:main:{prefix}-s{s}");
            let run = format!("{prefix}-stream-{s}");
            let text = Arc::clone(&text);
            let timeout = ctx.timeout();
            tasks.push(tokio::spawn(async move {
                let params = json!({"sessionKey": key, "message": "stream", "idempotencyKey": run})
                    .to_string();
                ws.send(Message::Text(
                    wire::request_frame(2, "chat.send", Some(&params)).into(),
                ))
                .await?;
                let check = verify_stream(&mut ws, &run, &text, timeout).await;
                wire::close(ws, Duration::from_secs(5)).await;
                check
            }));
        }
        let mut totals = StreamCheck::default();
        let mut task_errors = Vec::new();
        for t in tasks {
            match t.await {
                Ok(Ok(c)) => totals.add(&c),
                Ok(Err(e)) => task_errors.push(e.to_string()),
                Err(e) => task_errors.push(e.to_string()),
            }
        }
        let wall = t0.elapsed();
        stop_tx.send_replace(true);
        let peak = match sampler {
            Some(h) => h.await.ok(),
            None => None,
        };
        let after = match ctx.pid {
            Some(pid) => {
                tokio::time::sleep(Duration::from_millis(500)).await;
                ProcSnap::median(pid, 5, Duration::from_millis(20)).await
            }
            None => None,
        };
        let expected_chars = args.sessions * text.chars().count();
        let per_run_kib = match (before, peak) {
            (Some(b), Some(p)) => Some(p.saturating_sub(b.rss_kb) as f64 / args.sessions as f64),
            _ => None,
        };
        let secs = wall.as_secs_f64();
        stream_json = json!({
            "sessions": args.sessions, "deltas_per_session": args.deltas,
            "provider_deltas_sent": args.sessions * args.deltas,
            "text_chars_expected": expected_chars, "text_chars_received": totals.agent_chars,
            "missed_chars": expected_chars.saturating_sub(totals.agent_chars),
            "out_of_order_or_mismatched": totals.bad,
            "agent_events": totals.agent_events, "chat_deltas": totals.chat_deltas,
            "finals_ok": totals.finals_ok, "errors": task_errors.len(),
            "error_samples": task_errors.iter().take(3).collect::<Vec<_>>(),
            "wall_s": secs,
            "provider_deltas_per_s": (args.sessions * args.deltas) as f64 / secs,
            "rss_before_kb": before.map(|b| b.rss_kb), "rss_peak_kb": peak, "rss_after_kb": after.map(|a| a.rss_kb),
            "rss_growth_per_active_run_kib": per_run_kib,
        });
        stream_human = format!(
            "  streaming: {} sessions × {} deltas in {:.2}s ({:.0} deltas/s): text {}/{} chars, {} missed, {} out of order/mismatched ({} agent events, {} chat deltas), {}/{} finals ok, {} errors\n  rss: before {} KiB, peak {} KiB, after {} KiB → {} KiB per active run\n",
            args.sessions,
            args.deltas,
            secs,
            (args.sessions * args.deltas) as f64 / secs,
            totals.agent_chars,
            expected_chars,
            expected_chars.saturating_sub(totals.agent_chars),
            totals.bad,
            totals.agent_events,
            totals.chat_deltas,
            totals.finals_ok,
            args.sessions,
            task_errors.len(),
            before.map_or("?".into(), |b| b.rss_kb.to_string()),
            peak.map_or("?".into(), |p| p.to_string()),
            after.map_or("?".into(), |a| a.rss_kb.to_string()),
            per_run_kib.map_or("?".into(), |k| format!("{k:.1}")),
        );
    }
    drop(fake);

    let json = json!({
        "turns": args.turns, "turn_words": args.turn_words, "failures": failures,
        "turn_ms": turn.to_json(), "provider_floor_ms": floor.to_json(),
        "overhead_ms": overhead.to_json(), "turns_per_session": per_session,
        "gateway_cpu_ms_per_turn": cpu_per_turn_ms,
        "request_bytes": request_bytes,
        "gateway_before": snap_json(s0), "gateway_after": snap_json(s1),
        "stream": stream_json,
    });
    let human = format!(
        "chat: {} turns of {} deltas, {} per session ({} failed)\n  chat.send → final {}\n  provider floor   {}\n  gateway overhead {} (last request {} bytes){}\n{}",
        args.turns,
        args.turn_words,
        per_session,
        failures,
        turn.line(),
        floor.line(),
        overhead.line(),
        request_bytes,
        cpu_per_turn_ms.map_or(String::new(), |c| format!(", gateway CPU {c:.2} ms/turn")),
        stream_human,
    );
    Ok(Report { json, human })
}

#[derive(Default)]
struct StreamCheck {
    /// Assistant events (a burst of provider deltas read at once is one event).
    agent_events: usize,
    /// Characters of streamed text received in assistant events.
    agent_chars: usize,
    chat_deltas: usize,
    bad: usize,
    finals_ok: usize,
}

impl StreamCheck {
    fn add(&mut self, o: &StreamCheck) {
        self.agent_events += o.agent_events;
        self.agent_chars += o.agent_chars;
        self.chat_deltas += o.chat_deltas;
        self.bad += o.bad;
        self.finals_ok += o.finals_ok;
    }
}

/// Reads one run to its end, checking every assistant event and chat delta against `text`.
async fn verify_stream(
    ws: &mut Ws,
    run: &str,
    text: &str,
    timeout: Duration,
) -> Result<StreamCheck> {
    let mut check = StreamCheck::default();
    let (mut agent_text, mut chat_text) = (String::new(), String::new());
    let mut last_seq = 0u64;
    tokio::time::timeout(timeout, async {
        while let Some(msg) = ws.next().await {
            let Message::Text(t) = msg? else { continue };
            let v: Value = serde_json::from_str(t.as_str())?;
            let p = &v["payload"];
            if v["type"] != "event" || p["runId"] != run {
                continue;
            }
            let seq = p["seq"].as_u64().unwrap_or(0);
            if v["event"] == "agent" {
                if seq <= last_seq {
                    check.bad += 1;
                }
                last_seq = seq;
                if p["stream"] == "assistant" {
                    let delta = p["data"]["delta"].as_str().unwrap_or("");
                    check.agent_events += 1;
                    check.agent_chars += delta.chars().count();
                    agent_text.push_str(delta);
                    if p["data"]["text"].as_str() != Some(agent_text.as_str()) {
                        check.bad += 1;
                    }
                }
            } else if v["event"] == "chat" {
                match p["state"].as_str() {
                    Some("delta") => {
                        check.chat_deltas += 1;
                        chat_text.push_str(p["deltaText"].as_str().unwrap_or(""));
                    }
                    Some("final") => {
                        let final_text = p["message"]["content"][0]["text"].as_str().unwrap_or("");
                        if final_text == text && agent_text == text && chat_text == text {
                            check.finals_ok += 1;
                        } else {
                            check.bad += 1;
                        }
                        return Ok::<(), anyhow::Error>(());
                    }
                    Some("error" | "aborted") => bail!("run {run} ended with {}", p["state"]),
                    _ => {}
                }
            }
        }
        bail!("the socket closed before the run ended")
    })
    .await
    .context("waiting for the stream")??;
    Ok(check)
}
