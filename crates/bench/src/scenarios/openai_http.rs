//! `openai-http`: what `POST /v1/chat/completions` adds on top of the model. The scenario
//! starts a zero-latency fake provider on `--fake-port` (point the gateway's
//! `models.providers` at it and enable `gateway.http.endpoints.chatCompletions`, see
//! BENCHMARKS.md), sends `--requests` completions over one keep-alive connection (streamed
//! or not), then replays each model request exactly as the gateway sent it straight to the
//! fake. Overhead = gateway time − fake time, per request (auth, body parsing, session,
//! agent run with its durable transcript writes, SSE framing).

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pincer_fakes::llm::DefaultReply;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{cpu_delta, Ctx, Report};
use crate::stats::Summary;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Port of the fake provider this scenario starts (127.0.0.1).
    #[arg(long, default_value_t = 18951)]
    pub fake_port: u16,
    #[arg(long, default_value_t = 300)]
    pub requests: usize,
    #[arg(long, default_value_t = 30)]
    pub warmup: usize,
    /// Words (deltas) of the model's reply.
    #[arg(long, default_value_t = 32)]
    pub words: usize,
    /// `stream: true` (SSE) instead of one JSON answer.
    #[arg(long)]
    pub stream: bool,
}

/// Reads one HTTP/1.1 response (Content-Length or chunked) from a keep-alive connection;
/// returns (status, body bytes).
async fn read_response(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Result<(u16, usize)> {
    buf.clear();
    let mut chunk = [0u8; 64 * 1024];
    let header_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed before the response head");
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("status line")?;
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let body = &buf[header_end..];
        let complete = match (length, chunked) {
            (Some(n), _) => body.len() >= n,
            (None, true) => body.ends_with(b"0\r\n\r\n"),
            (None, false) => bail!("response without length"),
        };
        if complete {
            return Ok((status, body.len()));
        }
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            bail!("connection closed mid-body");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

pub async fn run(ctx: &Ctx, args: &Args) -> Result<Report> {
    let fake = super::fake_provider(
        args.fake_port,
        DefaultReply::Fixed {
            text: super::words(args.words),
            chunk_delay: Duration::ZERO,
        },
    )
    .await?;
    let authority = ctx
        .opts
        .url
        .strip_prefix("ws://")
        .context("--url must be ws://host:port")?
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    let token = ctx.opts.token.clone().unwrap_or_default();
    let body = json!({"model": "openclaw", "stream": args.stream,
        "messages": [{"role": "user", "content": "hi"}]})
    .to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {authority}\r\nauthorization: Bearer {token}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut conn = TcpStream::connect(&authority).await?;
    conn.set_nodelay(true)?;
    let mut buf = Vec::new();
    let total = args.warmup + args.requests;
    let mut times = Vec::with_capacity(args.requests);
    let s0 = ctx.snap();
    for i in 0..total {
        let t0 = Instant::now();
        conn.write_all(request.as_bytes()).await?;
        let (status, _) = read_response(&mut conn, &mut buf).await?;
        let took = t0.elapsed();
        if status != 200 {
            bail!(
                "HTTP {status}: {} (is gateway.http.endpoints.chatCompletions enabled and the provider on --fake-port?)",
                String::from_utf8_lossy(&buf).chars().take(300).collect::<String>()
            );
        }
        if i >= args.warmup {
            times.push(took);
        }
    }
    let s1 = ctx.snap();
    // The model floor: the same model requests, straight to the fake.
    let recorded = fake.model_requests();
    if recorded.len() < total {
        bail!(
            "the gateway sent {} model requests for {total} completions",
            recorded.len()
        );
    }
    let mut direct = TcpStream::connect(("127.0.0.1", args.fake_port)).await?;
    direct.set_nodelay(true)?;
    let mut floor = Vec::with_capacity(args.requests);
    for (i, r) in recorded.iter().enumerate().take(total) {
        let mut bytes = format!(
            "POST {} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            r.path,
            args.fake_port,
            r.raw_body.len()
        )
        .into_bytes();
        bytes.extend_from_slice(&r.raw_body);
        let t0 = Instant::now();
        direct.write_all(&bytes).await?;
        read_response(&mut direct, &mut buf).await?;
        if i >= args.warmup {
            floor.push(t0.elapsed());
        }
    }
    let overhead = Summary::of_ms(
        times
            .iter()
            .zip(&floor)
            .map(|(t, f)| (t.as_secs_f64() - f.as_secs_f64()) * 1000.0)
            .collect(),
    );
    let gateway = Summary::of(&times);
    let model = Summary::of(&floor);
    let cpu_ms = cpu_delta(s0, s1).map(|c| c * 1000.0 / total as f64);
    let json = json!({
        "requests": args.requests,
        "stream": args.stream,
        "words": args.words,
        "gateway_ms": gateway.to_json(),
        "model_floor_ms": model.to_json(),
        "overhead_ms": overhead.to_json(),
        "gateway_cpu_ms_per_request": cpu_ms,
    });
    let human = format!(
        "openai-http ({}): {} requests\n  through the gateway: {}\n  model alone:         {}\n  overhead:            {}\n  gateway CPU per request: {}",
        if args.stream { "stream" } else { "json" },
        args.requests,
        gateway.line(),
        model.line(),
        overhead.line(),
        cpu_ms.map_or("?".into(), |c| format!("{c:.2} ms")),
    );
    Ok(Report { json, human })
}
