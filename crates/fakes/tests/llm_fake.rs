//! The LLM fake seen from a raw socket: exact bytes on the wire, routing, defaults,
//! recording and counters.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use pincer_fakes::llm::{DefaultReply, FakeLlm, FakeLlmOptions, Reply, Turn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one request with `connection: close` and returns the raw response.
async fn exchange(
    fake: &FakeLlm,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> String {
    let mut stream = TcpStream::connect(fake.addr()).await.unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8(out).unwrap()
}

/// Removes the chunked transfer coding.
fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n").unwrap();
        let size = usize::from_str_radix(size, 16).unwrap();
        if size == 0 {
            return out;
        }
        out.push_str(&after[..size]);
        rest = &after[size + 2..];
    }
}

fn split_response(raw: &str) -> (&str, &str) {
    raw.split_once("\r\n\r\n").unwrap()
}

#[tokio::test]
async fn chat_completions_stream_is_openai_shaped() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(Reply::new().text("Hi there").usage(3, 2));
    let raw = exchange(
        &fake,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        r#"{"model":"gpt-x","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hello"}]}"#,
    )
    .await;
    let (head, body) = split_response(&raw);
    assert!(head.starts_with("HTTP/1.1 200 OK"));
    assert!(
        head.contains("content-type: text/event-stream; charset=utf-8")
            && head.contains("transfer-encoding: chunked")
    );
    let events = dechunk(body);
    let frames: Vec<&str> = events.split_terminator("\n\n").collect();
    assert_eq!(frames.len(), 6, "{events}");
    assert!(
        frames[0].starts_with(r#"data: {"id":"chatcmpl-fake1","object":"chat.completion.chunk","#)
    );
    assert!(frames[0].contains(r#""delta":{"role":"assistant","content":"","refusal":null}"#));
    assert!(
        frames[1].contains(r#""delta":{"content":"Hi"}"#)
            && frames[2].contains(r#""delta":{"content":" there"}"#)
    );
    assert!(frames[3].contains(r#""delta":{},"logprobs":null,"finish_reason":"stop""#));
    assert!(frames[4].contains(
        r#""choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5"#
    ));
    assert_eq!(frames[5], "data: [DONE]");
    let recorded = fake.model_requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].body["messages"][0]["content"], "hello");
}

#[tokio::test]
async fn anthropic_stream_has_event_lines_and_ping() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(Reply::new().tool_call_split("toolu_1", "read", r#"{"p":1}"#, &[3]));
    let raw = exchange(
        &fake,
        "POST",
        "/v1/messages",
        &[("anthropic-version", "2023-06-01")],
        r#"{"model":"claude","stream":true,"messages":[]}"#,
    )
    .await;
    let events = dechunk(split_response(&raw).1);
    let names: Vec<&str> = events
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        vec![
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert!(
        events.contains(r#"{"type":"input_json_delta","partial_json":"{\"p"}"#),
        "{events}"
    );
    assert!(events.contains(r#""stop_reason":"tool_use""#));
}

#[tokio::test]
async fn ollama_stream_is_ndjson() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(Reply::new().text("a b"));
    let raw = exchange(
        &fake,
        "POST",
        "/api/chat",
        &[],
        r#"{"model":"llama3","messages":[{"role":"user","content":"x"}]}"#,
    )
    .await;
    let (head, body) = split_response(&raw);
    assert!(head.contains("content-type: application/x-ndjson"));
    let lines: Vec<serde_json::Value> = dechunk(body)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["message"]["content"], "a");
    assert_eq!(lines[2]["done"], true);
    assert_eq!(lines[2]["done_reason"], "stop");
}

#[tokio::test]
async fn errors_models_defaults_and_routing() {
    let fake = FakeLlm::start_with(FakeLlmOptions {
        zero_latency: false,
        default_reply: None,
        models: vec!["m1".into(), "m2".into()],
    })
    .await
    .unwrap();
    // Nothing queued and no default: a provider-shaped 500.
    let raw = exchange(&fake, "POST", "/v1/messages", &[], r#"{"model":"c"}"#).await;
    assert!(raw.starts_with("HTTP/1.1 500"));
    assert!(raw.contains(r#""type":"error""#) && raw.contains("no scripted turn left"));
    // 429 with retry-after in the OpenAI error shape.
    fake.push(Turn::rate_limited("7"));
    let raw = exchange(
        &fake,
        "POST",
        "/v1/chat/completions",
        &[],
        r#"{"model":"c","stream":true}"#,
    )
    .await;
    assert!(
        raw.starts_with("HTTP/1.1 429 Too Many Requests") && raw.contains("retry-after: 7"),
        "{raw}"
    );
    assert!(raw.contains(r#""code":"rate_limit_exceeded""#));
    // Invalid JSON body.
    let raw = exchange(&fake, "POST", "/api/chat", &[], "{oops").await;
    assert!(raw.starts_with("HTTP/1.1 400"));
    // Model lists.
    let raw = exchange(&fake, "GET", "/v1/models", &[], "").await;
    let list: serde_json::Value = serde_json::from_str(split_response(&raw).1).unwrap();
    assert_eq!(list["data"][1]["id"], "m2");
    let raw = exchange(&fake, "GET", "/api/tags", &[], "").await;
    assert!(raw.contains(r#""name":"m1""#));
    let raw = exchange(&fake, "GET", "/nope", &[], "").await;
    assert!(raw.starts_with("HTTP/1.1 404"));
    assert_eq!(fake.requests().len(), 6);
    assert!(
        fake.wait_for(
            |c| c.connections_closed == 6 && c.requests == 6,
            Duration::from_secs(5)
        )
        .await
    );
}

#[tokio::test]
async fn per_model_queues_and_echo_default() {
    let fake = FakeLlm::start_with(FakeLlmOptions {
        zero_latency: true,
        default_reply: Some(DefaultReply::Echo {
            chunk_delay: Duration::from_millis(50),
        }),
        models: Vec::new(),
    })
    .await
    .unwrap();
    fake.push_for_model("special", Turn::text("special answer"));
    let raw = exchange(
        &fake,
        "POST",
        "/v1/chat/completions",
        &[],
        r#"{"model":"special","stream":true,"messages":[]}"#,
    )
    .await;
    assert!(raw.contains(r#"{"content":" answer"}"#));
    let started = std::time::Instant::now();
    let raw = exchange(
        &fake,
        "POST",
        "/v1/chat/completions",
        &[],
        r#"{"model":"other","stream":true,"messages":[{"role":"user","content":"ping pong"}]}"#,
    )
    .await;
    assert!(raw.contains(r#"{"content":" pong"}"#), "{raw}");
    assert!(
        started.elapsed() < Duration::from_millis(150),
        "zero-latency mode skips the 50 ms delays"
    );
    assert_eq!(fake.pending_turns(), 0);
    // Non-streaming Chat Completions.
    let raw = exchange(
        &fake,
        "POST",
        "/v1/chat/completions",
        &[],
        r#"{"model":"x","messages":[{"role":"user","content":"q"}]}"#,
    )
    .await;
    let body: serde_json::Value = serde_json::from_str(split_response(&raw).1).unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "You said: q");
}
