//! `channels`: inbound channel messages through the real gateway. This scenario starts a fake
//! Telegram Bot API on `--telegram-port` and a zero-latency fake provider (echo) on
//! `--fake-port`; the gateway under test is configured to poll the first and answer with the
//! second (see BENCHMARKS.md for the config).
//!
//! 1. Latency: one DM at a time; gateway time = the fake provider receiving the model request
//!    − the fake Telegram handing the update out in a `getUpdates` answer (both timestamps on
//!    this host's monotonic clock). Includes the HTTP answer to the gateway, the inbound
//!    pipeline, the journal, the agent's durable user-message write and the model request.
//! 2. Throughput: `--messages` DMs from `--sessions` users injected at `--rate` per second;
//!    every message must be answered exactly once (`You said: <text>`), else it counts as
//!    lost or duplicated. Reports the sustained answer rate and message → reply latency.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pincer_fakes::llm::DefaultReply;
use pincer_fakes::telegram::{FakeTelegram, FakeUser};
use serde_json::json;

use super::{cpu_delta, Ctx, Report};
use crate::stats::Summary;

/// The bot token the gateway's config must use.
pub const BENCH_TOKEN: &str = "424242:pincer-bench";

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Port of the fake Telegram Bot API (the gateway's `channels.telegram.apiRoot`).
    #[arg(long, default_value_t = 18960)]
    pub telegram_port: u16,
    /// Port of the fake provider (the gateway's `models.providers.*.baseUrl`).
    #[arg(long, default_value_t = 18951)]
    pub fake_port: u16,
    /// Sequential messages for the latency phase.
    #[arg(long, default_value_t = 200)]
    pub latency_messages: usize,
    /// Messages of the throughput phase.
    #[arg(long, default_value_t = 1000)]
    pub messages: usize,
    /// Distinct DM senders (sessions) of the throughput phase.
    #[arg(long, default_value_t = 100)]
    pub sessions: usize,
    /// Injection rate of the throughput phase (messages per second).
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// How long to wait for the last answer.
    #[arg(long, default_value_t = 60)]
    pub settle_secs: u64,
}

fn replies(tg: &FakeTelegram) -> Vec<(String, tokio::time::Instant)> {
    tg.calls_of("sendMessage")
        .into_iter()
        .filter_map(|c| Some((c.body.get("text")?.as_str()?.to_string(), c.at)))
        .collect()
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Report> {
    let llm = super::fake_provider(
        args.fake_port,
        DefaultReply::Echo {
            chunk_delay: Duration::ZERO,
        },
    )
    .await?;
    let tg = FakeTelegram::bind(
        SocketAddr::from(([127, 0, 0, 1], args.telegram_port)),
        BENCH_TOKEN,
    )
    .await
    .with_context(|| {
        format!(
            "cannot start the fake Telegram on 127.0.0.1:{}",
            args.telegram_port
        )
    })?;
    // The gateway retries its connection with backoff: wait for its first poll.
    let deadline = Instant::now() + Duration::from_secs(30);
    while tg.polls() == 0 {
        if Instant::now() > deadline {
            bail!("the gateway never polled 127.0.0.1:{} (is channels.telegram.apiRoot pointing here, botToken {BENCH_TOKEN}?)", args.telegram_port);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // ---- 1. latency: one message at a time ----
    let mut gateway_ms = Vec::with_capacity(args.latency_messages);
    let mut round_trip_ms = Vec::with_capacity(args.latency_messages);
    let user = FakeUser::new(9_000_001, "Lat");
    for i in 0..args.latency_messages + 10 {
        let before_requests = llm.model_requests().len();
        let before_replies = tg.calls_of("sendMessage").len();
        let text = format!("latency {i}");
        let id = tg.inject_dm(&user, &text);
        let t_end = Instant::now() + ctx.timeout();
        let request_at = loop {
            let reqs = llm.model_requests();
            if reqs.len() > before_requests {
                break reqs[before_requests].received_at;
            }
            if Instant::now() > t_end {
                bail!("message {i}: no model request");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        let reply_at = loop {
            let sent = tg.calls_of("sendMessage");
            if sent.len() > before_replies {
                break sent[before_replies].at.into_std();
            }
            if Instant::now() > t_end {
                bail!("message {i}: no reply");
            }
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        let delivered = tg
            .delivered_at(id)
            .context("the update was never handed out")?;
        if i >= 10 {
            // The first ones warm the session and the connections up.
            gateway_ms.push(request_at.duration_since(delivered).as_secs_f64() * 1e3);
            round_trip_ms.push(reply_at.duration_since(delivered).as_secs_f64() * 1e3);
        }
    }
    let first_model = Summary::of_ms(gateway_ms);
    let round_trip = Summary::of_ms(round_trip_ms);

    // ---- 2. throughput: many sessions at once ----
    let users: Vec<FakeUser> = (0..args.sessions.max(1))
        .map(|s| FakeUser::new(8_000_000 + s as i64, &format!("S{s}")))
        .collect();
    let s0 = ctx.snap();
    let start = Instant::now();
    let period = Duration::from_secs_f64(1.0 / args.rate.max(1) as f64);
    let mut injected_at: HashMap<String, tokio::time::Instant> = HashMap::new();
    for i in 0..args.messages {
        let due = start + period * i as u32;
        let now = Instant::now();
        if due > now {
            tokio::time::sleep(due - now).await;
        }
        let text = format!("m{i}");
        tg.inject_dm(&users[i % users.len()], &text);
        injected_at.insert(format!("You said: {text}"), tokio::time::Instant::now());
    }
    let inject_secs = start.elapsed().as_secs_f64();
    let settle = Instant::now() + Duration::from_secs(args.settle_secs);
    loop {
        let got = replies(&tg)
            .iter()
            .filter(|(t, _)| injected_at.contains_key(t))
            .count();
        if got >= args.messages || Instant::now() > settle {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Anything arriving late would be a duplicate: give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = replies(&tg);
    let s1 = ctx.snap();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut latencies = Vec::new();
    let mut last = start;
    for (text, at) in &all {
        if let Some(sent) = injected_at.get(text) {
            let n = seen.entry(text.as_str()).or_default();
            *n += 1;
            if *n == 1 {
                latencies.push(at.duration_since(*sent).as_secs_f64() * 1e3);
                last = last.max(at.into_std());
            }
        }
    }
    let answered = seen.len();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    let lost = args.messages - answered;
    let total_secs = last.duration_since(start).as_secs_f64();
    let reply_latency = Summary::of_ms(latencies);
    let cpu = cpu_delta(s0, s1);
    let json = json!({
        "latency": {
            "inboundToFirstModelRequestMs": first_model.to_json(),
            "inboundToReplyMs": round_trip.to_json(),
        },
        "throughput": {
            "messages": args.messages,
            "sessions": args.sessions,
            "injectSeconds": inject_secs,
            "allAnsweredSeconds": total_secs,
            "answersPerSecond": answered as f64 / total_secs.max(1e-9),
            "answered": answered,
            "lost": lost,
            "duplicates": duplicates,
            "messageToReplyMs": reply_latency.to_json(),
            "gatewayCpuSeconds": cpu,
        },
    });
    let human = format!(
        "inbound → first model request (gateway time): {}\n\
         inbound → reply sent:                         {}\n\
         {} messages / {} sessions injected in {:.2} s; all answered after {:.2} s \
         ({:.0} answers/s); lost {lost}, duplicated {duplicates}\n\
         message → reply: {}{}",
        first_model.line(),
        round_trip.line(),
        args.messages,
        args.sessions,
        inject_secs,
        total_secs,
        answered as f64 / total_secs.max(1e-9),
        reply_latency.line(),
        cpu.map(|c| format!("\ngateway CPU during the burst: {c:.2} s"))
            .unwrap_or_default(),
    );
    Ok(Report { json, human })
}
