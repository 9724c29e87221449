//! Provider-layer overhead.
//!
//! - `sse_parse`: the SSE parser alone, per event, on a Chat Completions stream.
//! - `decode`: SSE/NDJSON framing plus each API's decoder, per event.
//! - `turn`: one streamed 32-word turn against the zero-latency fake, through
//!   `ProviderClient` (request build, HTTP, parse, decode, events), next to the same HTTP
//!   exchange read raw with reqwest. The difference is the client's own overhead.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures_util::StreamExt;
use pincer_fakes::llm::{DefaultReply, FakeLlm, FakeLlmOptions};
use pincer_providers::sse::SseParser;
use pincer_providers::*;

const WORDS: &str =
    "The quick brown fox jumps over the lazy dog while the gateway streams every token \
to every connected client without missing or reordering a single delta in the process";

fn completions_stream(events: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..events {
        out.extend_from_slice(
            format!(
                "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\
\"system_fingerprint\":\"fp\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" word{i}\"}},\"logprobs\":null,\"finish_reason\":null}}],\"usage\":null}}\n\n"
            )
            .as_bytes(),
        );
    }
    out.extend_from_slice(b"data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n");
    out
}

fn anthropic_stream(events: usize) -> Vec<u8> {
    let mut out = Vec::from(
        &b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[],\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n\
event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"[..],
    );
    for i in 0..events {
        out.extend_from_slice(
            format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\" word{i}\"}}}}\n\n").as_bytes(),
        );
    }
    out.extend_from_slice(b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":5}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
    out
}

fn ollama_stream(events: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..events {
        out.extend_from_slice(format!("{{\"model\":\"m\",\"created_at\":\"2026-01-01T00:00:00Z\",\"message\":{{\"role\":\"assistant\",\"content\":\" word{i}\"}},\"done\":false}}\n").as_bytes());
    }
    out.extend_from_slice(b"{\"model\":\"m\",\"created_at\":\"x\",\"message\":{\"role\":\"assistant\",\"content\":\"\"},\"done\":true,\"done_reason\":\"stop\",\"prompt_eval_count\":1,\"eval_count\":1}\n");
    out
}

/// Splits a body into network-sized chunks (here 1 KiB, cutting events anywhere).
fn chunked(body: &[u8], size: usize) -> Vec<Bytes> {
    body.chunks(size).map(Bytes::copy_from_slice).collect()
}

fn parsing(c: &mut Criterion) {
    const EVENTS: usize = 1000;
    let body = completions_stream(EVENTS);
    let chunks = chunked(&body, 1024);
    let mut group = c.benchmark_group("sse_parse");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.bench_function("completions_1000_events_1k_chunks", |b| {
        b.iter(|| {
            let mut parser = SseParser::new();
            let mut out = Vec::with_capacity(64);
            let mut n = 0;
            for chunk in &chunks {
                out.clear();
                parser.feed(chunk, &mut out).unwrap();
                n += out.len();
            }
            assert_eq!(n, EVENTS + 2);
        })
    });
    group.finish();

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for (name, api, body) in [
        (
            "openai_completions",
            ApiKind::OpenaiCompletions,
            completions_stream(EVENTS),
        ),
        (
            "anthropic_messages",
            ApiKind::AnthropicMessages,
            anthropic_stream(EVENTS),
        ),
        ("ollama", ApiKind::Ollama, ollama_stream(EVENTS)),
    ] {
        let chunks = chunked(&body, 1024);
        group.bench_function(name, |b| {
            b.iter(|| assert!(decode_for_bench(&api, &chunks).unwrap() >= EVENTS))
        });
    }
    group.finish();
}

fn turns(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let fake = runtime
        .block_on(FakeLlm::start_with(FakeLlmOptions {
            zero_latency: true,
            default_reply: Some(DefaultReply::Fixed {
                text: WORDS.to_owned(),
                chunk_delay: Duration::ZERO,
            }),
            models: Vec::new(),
        }))
        .unwrap();
    let client = ProviderClient::new().unwrap();
    let options = CallOptions::default();
    let request = CompletionRequest {
        system_prompt: Some("You are terse.".into()),
        messages: vec![Message::user("hi")],
        ..Default::default()
    };
    let mut group = c.benchmark_group("turn");
    group.measurement_time(Duration::from_secs(8));
    for (name, api, base) in [
        (
            "openai_completions",
            ApiKind::OpenaiCompletions,
            fake.openai_base_url(),
        ),
        (
            "openai_responses",
            ApiKind::OpenaiResponses,
            fake.openai_base_url(),
        ),
        ("anthropic_messages", ApiKind::AnthropicMessages, fake.url()),
        ("ollama", ApiKind::Ollama, fake.url()),
    ] {
        let model = ResolvedModel::new("fake", "fake-model", api, &base);
        group.bench_function(format!("client_{name}"), |b| {
            b.to_async(&runtime).iter(|| async {
                let (message, error) = collect(client.stream(&model, &request, &options)).await;
                assert!(error.is_none());
                assert_eq!(message.text().len(), WORDS.len());
            })
        });
    }
    // The same exchange with no provider layer: send the prebuilt body, read all bytes.
    let http = client.http().clone();
    let url = format!("{}/chat/completions", fake.openai_base_url());
    let body = serde_json::json!({"model": "fake-model", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "hi"}]})
    .to_string();
    group.bench_function("raw_http_openai_completions", |b| {
        b.to_async(&runtime).iter_batched(
            || body.clone(),
            |body| async {
                let response = http
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let mut stream = response.bytes_stream();
                let mut n = 0;
                while let Some(chunk) = stream.next().await {
                    n += chunk.unwrap().len();
                }
                assert!(n > 0);
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, parsing, turns);
criterion_main!(benches);
