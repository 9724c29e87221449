//! Every wire API against the fake provider, which speaks the real streaming formats over
//! real HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use pincer_fakes::llm::{FakeLlm, FakeUsage, Reply, StreamErrorKind, Turn};
use pincer_providers::*;
use serde_json::{json, Value};

const KEY: &str = "sk-test-key-0123456789";
const GENEROUS: Duration = Duration::from_secs(10);

fn model(fake: &FakeLlm, api: &ApiKind, id: &str) -> ResolvedModel {
    let base = match api {
        ApiKind::OpenaiCompletions | ApiKind::OpenaiResponses => fake.openai_base_url(),
        _ => fake.url(),
    };
    let mut m = ResolvedModel::new("fake", id, api.clone(), &base);
    m.api_key = Some(ApiKey::new(KEY));
    m.reasoning = true;
    m
}

fn options() -> CallOptions {
    let fast = Backoff::new(Duration::from_millis(10), Duration::from_millis(100)).with_jitter(0.0);
    CallOptions {
        idle_timeout: Some(GENEROUS),
        request_timeout: Some(Duration::from_secs(30)),
        rate_limit_retry: RetryPolicy::new(fast, 3).with_max_retry_after(Duration::from_secs(5)),
        transient_retry: RetryPolicy::new(fast, 2),
        cancel: CancellationToken::new(),
    }
}

fn request() -> CompletionRequest {
    CompletionRequest {
        system_prompt: Some("You are Pincer's test assistant.".into()),
        messages: vec![Message::user("hi there")],
        tools: vec![ToolSpec {
            name: "read".into(),
            description: "Read a file".into(),
            parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}),
        }]
            .into(),
        max_tokens: Some(512),
        thinking: ThinkingLevel::Off,
        temperature: None,
    }
}

async fn run(
    client: &ProviderClient,
    m: &ResolvedModel,
    req: &CompletionRequest,
    opts: &CallOptions,
) -> Vec<ProviderEvent> {
    let stream = client.stream(m, req, opts);
    tokio::time::timeout(Duration::from_secs(20), stream.collect::<Vec<_>>())
        .await
        .expect("stream hung")
}

fn fold(events: &[ProviderEvent]) -> TurnCollector {
    let mut c = TurnCollector::new();
    for e in events {
        c.push(e);
    }
    c
}

fn error_of(events: &[ProviderEvent]) -> ProviderError {
    match events.last() {
        Some(ProviderEvent::Error(e)) => e.clone(),
        other => panic!("expected a final error, got {other:?} in {events:?}"),
    }
}

fn client() -> ProviderClient {
    ProviderClient::new().expect("client")
}

async fn simple_text(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(Reply::new().text("Hello from fake model.").usage(100, 5));
    let events = run(
        &client(),
        &model(&fake, &api, "test-model"),
        &request(),
        &options(),
    )
    .await;
    assert!(
        matches!(&events[0], ProviderEvent::ModelStart { model, fallback_from: None, .. } if model == "test-model")
    );
    let deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            ProviderEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        deltas,
        vec!["Hello", " from", " fake", " model."],
        "streamed word by word"
    );
    assert_eq!(
        events.last(),
        Some(&ProviderEvent::Done {
            stop_reason: StopReason::Stop
        })
    );
    let message = fold(&events).into_message();
    assert_eq!(message.text(), "Hello from fake model.");
    let usage = message.usage.unwrap();
    assert_eq!(
        (usage.input, usage.output, usage.total_tokens),
        (100, 5, 105)
    );
    assert_eq!(message.api.as_deref(), Some(api.as_str()));

    // What went over the wire: path, auth, streaming flag, system prompt, tools, user text.
    let sent = fake.model_requests();
    assert_eq!(sent.len(), 1);
    let body = &sent[0].body;
    assert_eq!(body["model"], "test-model");
    assert_eq!(body["stream"], true);
    let raw = String::from_utf8_lossy(&sent[0].raw_body).into_owned();
    assert!(
        raw.contains("You are Pincer's test assistant.")
            && raw.contains("hi there")
            && raw.contains("Read a file")
    );
    match api {
        ApiKind::OpenaiCompletions => {
            assert_eq!(sent[0].path, "/v1/chat/completions");
            assert_eq!(
                body["messages"][0],
                json!({"role": "system", "content": "You are Pincer's test assistant."})
            );
            assert_eq!(body["stream_options"]["include_usage"], true);
            assert_eq!(body["tools"][0]["type"], "function");
            assert_eq!(
                sent[0].header("authorization"),
                Some(format!("Bearer {KEY}").as_str())
            );
        }
        ApiKind::OpenaiResponses => {
            assert_eq!(sent[0].path, "/v1/responses");
            assert_eq!(body["instructions"], "You are Pincer's test assistant.");
            assert_eq!(
                sent[0].header("authorization"),
                Some(format!("Bearer {KEY}").as_str())
            );
        }
        ApiKind::AnthropicMessages => {
            assert_eq!(sent[0].path, "/v1/messages");
            assert_eq!(body["system"], "You are Pincer's test assistant.");
            assert_eq!(body["max_tokens"], 512);
            assert_eq!(sent[0].header("x-api-key"), Some(KEY));
            assert_eq!(sent[0].header("anthropic-version"), Some("2023-06-01"));
        }
        ApiKind::Ollama => {
            assert_eq!(sent[0].path, "/api/chat");
            assert_eq!(body["messages"][0]["role"], "system");
            assert_eq!(body["options"]["num_predict"], 512);
        }
        ApiKind::Unsupported(_) => unreachable!(),
    }
}

async fn tool_call_split_across_chunks(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    let args = r#"{"path":"USER.md","note":"a \"quoted\" ✓ \\ end"}"#;
    // Cuts inside a key, inside an escape sequence and right after a multibyte character.
    fake.push(Reply::new().text("Let me check.").tool_call_split(
        "call_abc123",
        "read",
        args,
        &[1, 2, 9, 27, 28, 33, 34],
    ));
    let mut req = request();
    req.messages = vec![
        Message::user("earlier question"),
        Message::assistant(vec![ContentBlock::ToolCall {
            id: "call_prev1".into(),
            name: "read".into(),
            arguments: json!({"path": "A.md"}),
        }]),
        Message::tool_result("call_prev1", "read", "contents of A", false),
        Message::assistant(vec![ContentBlock::text("A says hello.")]),
        Message::user("now read USER.md"),
    ];
    let events = run(&client(), &model(&fake, &api, "m"), &req, &options()).await;
    assert_eq!(
        events.last(),
        Some(&ProviderEvent::Done {
            stop_reason: StopReason::ToolUse
        }),
        "{events:?}"
    );
    let arg_deltas: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            ProviderEvent::ToolCallArgsDelta { delta, .. } => Some(delta.as_str()),
            _ => None,
        })
        .collect();
    if api == ApiKind::Ollama {
        assert_eq!(arg_deltas.len(), 1, "Ollama sends tool calls whole");
    } else {
        assert_eq!(arg_deltas.len(), 8, "streamed in the scripted pieces");
        assert_eq!(arg_deltas.concat(), args);
    }
    let message = fold(&events).into_message();
    assert_eq!(message.text(), "Let me check.");
    let calls: Vec<_> = message.tool_calls().collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].0, "call_abc123",
        "the provider's id is kept (Ollama: sent by the fake)"
    );
    assert_eq!(calls[0].1, "read");
    assert_eq!(calls[0].2, &serde_json::from_str::<Value>(args).unwrap());
    // The replayed conversation reached the provider, tool result included.
    let raw = String::from_utf8_lossy(&fake.model_requests()[0].raw_body).into_owned();
    assert!(
        raw.contains("contents of A")
            && raw.contains("A says hello.")
            && raw.contains("now read USER.md"),
        "{raw}"
    );
}

async fn thinking_blocks(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(
        Reply::new()
            .thinking("I should greet them.", "sig-123")
            .text("Hi!"),
    );
    let mut req = request();
    req.thinking = ThinkingLevel::Medium;
    let events = run(&client(), &model(&fake, &api, "m"), &req, &options()).await;
    let message = fold(&events).into_message();
    match &message.content[0] {
        ContentBlock::Thinking {
            thinking,
            thinking_signature,
            ..
        } => {
            assert_eq!(thinking, "I should greet them.");
            let expected = (api == ApiKind::AnthropicMessages).then(|| "sig-123".to_owned());
            assert_eq!(thinking_signature, &expected);
        }
        other => panic!("expected thinking first, got {other:?}"),
    }
    assert_eq!(message.content[1], ContentBlock::text("Hi!"));
    // The thinking level reached the wire in the API's own spelling.
    let body = &fake.model_requests()[0].body;
    match api {
        ApiKind::OpenaiCompletions => assert_eq!(body["reasoning_effort"], "medium"),
        ApiKind::OpenaiResponses => assert_eq!(body["reasoning"]["effort"], "medium"),
        ApiKind::AnthropicMessages => assert_eq!(body["thinking"]["budget_tokens"], 8192),
        ApiKind::Ollama => assert_eq!(body["think"], true),
        ApiKind::Unsupported(_) => unreachable!(),
    }
}

async fn usage_with_cache(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(Reply::new().text("ok").usage_with_cache(FakeUsage {
        input: 50,
        output: 7,
        cache_read: 20,
        cache_write: 5,
    }));
    let events = run(&client(), &model(&fake, &api, "m"), &request(), &options()).await;
    let usage = fold(&events).into_message().usage.unwrap();
    let expected = match api {
        ApiKind::AnthropicMessages => Usage::new(50, 7, 20, 5),
        ApiKind::OpenaiCompletions | ApiKind::OpenaiResponses => Usage::new(50, 7, 20, 0),
        _ => Usage::new(50, 7, 0, 0),
    };
    assert_eq!(usage, expected);
}

async fn rate_limit_honours_retry_after(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(Turn::rate_limited("1"));
    fake.push(Turn::text("after the wait"));
    let started = Instant::now();
    let events = run(&client(), &model(&fake, &api, "m"), &request(), &options()).await;
    let elapsed = started.elapsed();
    // Our backoff is 10 ms; only the server's retry-after explains a ≥ 1 s wait.
    assert!(
        elapsed >= Duration::from_millis(950),
        "waited only {elapsed:?}"
    );
    let retry = events
        .iter()
        .find_map(|e| match e {
            ProviderEvent::Retrying {
                attempt,
                delay,
                error,
                ..
            } => Some((*attempt, *delay, error.clone())),
            _ => None,
        })
        .expect("a Retrying event");
    assert_eq!(retry.0, 1);
    assert_eq!(retry.1, Duration::from_secs(1));
    assert_eq!(
        (retry.2.kind, retry.2.http_status),
        (ErrorKind::RateLimit, Some(429))
    );
    assert_eq!(fold(&events).into_message().text(), "after the wait");
    assert_eq!(fake.model_requests().len(), 2);
}

async fn fallback_to_second_model_on_500(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.always_for_model("primary", Turn::http_error(500));
    fake.push_for_model("secondary", Turn::text("from the fallback"));
    let chain = vec![
        model(&fake, &api, "primary"),
        model(&fake, &api, "secondary"),
    ];
    let stream = client().stream_chain(&chain, &request(), &options());
    let events = tokio::time::timeout(Duration::from_secs(20), stream.collect::<Vec<_>>())
        .await
        .unwrap();
    let starts: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            ProviderEvent::ModelStart {
                model,
                fallback_from,
                ..
            } => Some((model.clone(), fallback_from.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0].0, "primary");
    assert_eq!(starts[1].0, "secondary");
    let cause = starts[1].1.as_ref().expect("fallback carries the cause");
    assert_eq!(
        (cause.kind, cause.http_status, cause.model.as_str()),
        (ErrorKind::Server, Some(500), "primary")
    );
    let message = fold(&events).into_message();
    assert_eq!(message.text(), "from the fallback");
    assert_eq!(message.model.as_deref(), Some("secondary"));
    let primary_calls = fake
        .model_requests()
        .iter()
        .filter(|r| r.body["model"] == "primary")
        .count();
    assert_eq!(
        primary_calls, 2,
        "5xx is retried on the same model (policy: 2 attempts) before falling back"
    );
}

async fn auth_error_is_not_retried_and_key_is_redacted(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(Turn::HttpError(pincer_fakes::llm::HttpError {
        status: 401,
        retry_after: None,
        message: Some(format!("Incorrect API key provided: {KEY}.")),
    }));
    let events = run(&client(), &model(&fake, &api, "m"), &request(), &options()).await;
    let error = error_of(&events);
    assert_eq!(
        (error.kind, error.http_status),
        (ErrorKind::Auth, Some(401))
    );
    assert!(
        !error.to_string().contains(KEY) && !format!("{error:?}").contains(KEY),
        "{error}"
    );
    assert!(error.message.contains("[redacted]"));
    assert_eq!(
        fake.model_requests().len(),
        1,
        "auth errors are never retried"
    );
    let detail = serde_json::to_value(error.error_detail()).unwrap();
    assert_eq!(detail["httpStatus"], 401);
    assert_eq!(detail["failoverReason"], "auth");
}

async fn malformed_stream_is_a_clear_error(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(Reply::new().text("one two three").malformed_after(2));
    let events = run(&client(), &model(&fake, &api, "m"), &request(), &options()).await;
    let error = error_of(&events);
    assert_eq!(error.kind, ErrorKind::Malformed);
    assert!(
        error.message.starts_with("malformed stream:"),
        "{}",
        error.message
    );
    assert!(error.message.chars().count() <= 300);
    assert_eq!(
        fake.model_requests().len(),
        1,
        "malformed streams are not retried on the same model"
    );
}

async fn connection_dropped_mid_stream(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(
        Reply::new()
            .text("one two three four five six seven eight nine ten eleven twelve")
            .drop_after(6),
    );
    let events = run(&client(), &model(&fake, &api, "m"), &request(), &options()).await;
    let error = error_of(&events);
    assert_eq!(error.kind, ErrorKind::Network, "{error}");
    let message = fold(&events).into_message();
    assert!(
        message.text().starts_with("one"),
        "partial text kept: {:?}",
        message.text()
    );
    assert!(!message.text().contains("twelve"));
    assert_eq!(message.stop_reason, Some(StopReason::Error));
    assert_eq!(
        fake.model_requests().len(),
        1,
        "never retried after output reached the consumer"
    );
}

async fn drop_before_output_is_retried(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(Reply::new().text("lost").drop_after(0));
    fake.push(Turn::text("second try"));
    let events = run(&client(), &model(&fake, &api, "m"), &request(), &options()).await;
    assert!(events.iter().any(
        |e| matches!(e, ProviderEvent::Retrying { error, .. } if error.kind == ErrorKind::Network)
    ));
    assert_eq!(fold(&events).into_message().text(), "second try");
}

async fn stream_error_event_before_output_is_retried(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(
        Reply::new()
            .text("never")
            .error_after(0, StreamErrorKind::Overloaded, "Overloaded"),
    );
    fake.push(Turn::text("recovered"));
    let events = run(&client(), &model(&fake, &api, "m"), &request(), &options()).await;
    let retried = events.iter().find_map(|e| match e {
        ProviderEvent::Retrying { error, .. } => Some(error.clone()),
        _ => None,
    });
    let retried = retried.expect("retry after the error event");
    assert_eq!(retried.kind, ErrorKind::Server);
    assert_eq!(
        retried.http_status, None,
        "an in-stream error has no HTTP status"
    );
    assert_eq!(fold(&events).into_message().text(), "recovered");
}

async fn stream_error_event_after_output_ends_the_call(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(
        Reply::new()
            .text("one two three four five six seven eight")
            .error_after(
                6,
                StreamErrorKind::RateLimit,
                "rate limit reached, slow down",
            ),
    );
    let events = run(&client(), &model(&fake, &api, "m"), &request(), &options()).await;
    let error = error_of(&events);
    assert_eq!(error.kind, ErrorKind::RateLimit, "{error}");
    assert_eq!(error.message, "rate limit reached, slow down");
    assert_eq!(fake.model_requests().len(), 1);
}

async fn idle_stream_timeout(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(
        Reply::new()
            .text("one two three four five six seven eight nine")
            .stall_after(6),
    );
    let mut opts = options();
    opts.idle_timeout = Some(Duration::from_millis(300));
    let started = Instant::now();
    let events = run(&client(), &model(&fake, &api, "m"), &request(), &opts).await;
    let error = error_of(&events);
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert!(error.message.contains("idle"), "{}", error.message);
    assert!(started.elapsed() < GENEROUS);
    assert!(
        fake.wait_for(
            |c| c.client_aborts == 1 && c.active_connections == 0,
            GENEROUS
        )
        .await,
        "{:?}",
        fake.counters()
    );
}

async fn cancellation_closes_the_connection(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(
        Reply::new()
            .text("one two three four five six seven eight nine")
            .stall_after(6),
    );
    let opts = options();
    let mut stream = client().stream(&model(&fake, &api, "m"), &request(), &opts);
    loop {
        let event = tokio::time::timeout(GENEROUS, stream.next())
            .await
            .unwrap()
            .expect("stream ended early");
        if matches!(event, ProviderEvent::TextDelta { .. }) {
            break;
        }
    }
    assert_eq!(fake.counters().client_aborts, 0);
    let cancelled_at = Instant::now();
    opts.cancel.cancel();
    // Drain what was already decoded; the stream must end with `cancelled` promptly.
    let rest: Vec<_> = tokio::time::timeout(GENEROUS, stream.collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(error_of(&rest).kind, ErrorKind::Cancelled);
    assert!(
        fake.wait_for(
            |c| c.client_aborts == 1 && c.active_connections == 0,
            GENEROUS
        )
        .await,
        "{:?}",
        fake.counters()
    );
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(2),
        "closing took {:?}",
        cancelled_at.elapsed()
    );
}

async fn dropping_the_stream_closes_the_connection(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(
        Reply::new()
            .text("one two three four five six seven eight nine")
            .stall_after(6),
    );
    let mut stream = client().stream(&model(&fake, &api, "m"), &request(), &options());
    while !matches!(
        tokio::time::timeout(GENEROUS, stream.next()).await.unwrap(),
        Some(ProviderEvent::TextDelta { .. })
    ) {}
    drop(stream);
    assert!(
        fake.wait_for(
            |c| c.client_aborts == 1 && c.active_connections == 0,
            GENEROUS
        )
        .await,
        "{:?}",
        fake.counters()
    );
}

async fn awkward_framing(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    // 3-byte writes, CR LF line endings and comment lines (the last two for SSE APIs).
    fake.push(
        Reply::new()
            .text("Grüße aus dem Fake ✓")
            .tool_call("c1", "read", r#"{"path":"ä.md"}"#)
            .fragment(3)
            .crlf()
            .comments(),
    );
    let events = run(&client(), &model(&fake, &api, "m"), &request(), &options()).await;
    let message = fold(&events).into_message();
    assert_eq!(message.text(), "Grüße aus dem Fake ✓");
    assert_eq!(
        message.tool_calls().next().map(|c| c.2.clone()),
        Some(json!({"path": "ä.md"}))
    );
    assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
}

async fn length_stop(api: ApiKind) {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(Reply::new().text("cut short").length());
    let events = run(&client(), &model(&fake, &api, "m"), &request(), &options()).await;
    assert_eq!(
        events.last(),
        Some(&ProviderEvent::Done {
            stop_reason: StopReason::Length
        })
    );
}

macro_rules! api_tests {
    ($module:ident, $api:expr) => {
        mod $module {
            use super::*;
            #[tokio::test]
            async fn simple_text_turn() {
                simple_text($api).await
            }
            #[tokio::test]
            async fn tool_call_with_args_split_across_chunks() {
                tool_call_split_across_chunks($api).await
            }
            #[tokio::test]
            async fn thinking() {
                thinking_blocks($api).await
            }
            #[tokio::test]
            async fn usage() {
                usage_with_cache($api).await
            }
            #[tokio::test]
            async fn rate_limit_429_honours_retry_after() {
                rate_limit_honours_retry_after($api).await
            }
            #[tokio::test]
            async fn fallback_on_500() {
                fallback_to_second_model_on_500($api).await
            }
            #[tokio::test]
            async fn auth_error() {
                auth_error_is_not_retried_and_key_is_redacted($api).await
            }
            #[tokio::test]
            async fn malformed_stream() {
                malformed_stream_is_a_clear_error($api).await
            }
            #[tokio::test]
            async fn dropped_mid_stream() {
                connection_dropped_mid_stream($api).await
            }
            #[tokio::test]
            async fn dropped_before_output_retries() {
                drop_before_output_is_retried($api).await
            }
            #[tokio::test]
            async fn error_event_before_output_retries() {
                stream_error_event_before_output_is_retried($api).await
            }
            #[tokio::test]
            async fn error_event_after_output() {
                stream_error_event_after_output_ends_the_call($api).await
            }
            #[tokio::test]
            async fn idle_timeout() {
                idle_stream_timeout($api).await
            }
            #[tokio::test]
            async fn cancellation() {
                cancellation_closes_the_connection($api).await
            }
            #[tokio::test]
            async fn drop_stream() {
                dropping_the_stream_closes_the_connection($api).await
            }
            #[tokio::test]
            async fn framing() {
                awkward_framing($api).await
            }
            #[tokio::test]
            async fn length() {
                length_stop($api).await
            }
        }
    };
}

api_tests!(openai_completions, ApiKind::OpenaiCompletions);
api_tests!(openai_responses, ApiKind::OpenaiResponses);
api_tests!(anthropic_messages, ApiKind::AnthropicMessages);
api_tests!(ollama, ApiKind::Ollama);

#[tokio::test]
async fn overall_request_timeout() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(
        Reply::new()
            .text("a b c d e f g h")
            .delay(Duration::from_millis(100)),
    );
    let mut opts = options();
    opts.request_timeout = Some(Duration::from_millis(350));
    let events = run(
        &client(),
        &model(&fake, &ApiKind::OpenaiCompletions, "m"),
        &request(),
        &opts,
    )
    .await;
    let error = error_of(&events);
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert!(
        error.message.contains("overall timeout"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn retry_after_beyond_the_bound_fails_over_instead_of_waiting() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_for_model("primary", Turn::rate_limited("3600"));
    fake.push_for_model("secondary", Turn::text("no waiting"));
    let api = ApiKind::AnthropicMessages;
    let chain = vec![
        model(&fake, &api, "primary"),
        model(&fake, &api, "secondary"),
    ];
    let started = Instant::now();
    let (message, error) = collect(client().stream_chain(&chain, &request(), &options())).await;
    assert!(error.is_none(), "{error:?}");
    assert_eq!(message.text(), "no waiting");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn context_length_errors_do_not_fail_over() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_for_model(
        "primary",
        Turn::HttpError(pincer_fakes::llm::HttpError {
            status: 400,
            retry_after: None,
            message: Some("prompt is too long: 250000 tokens > 200000 maximum".into()),
        }),
    );
    fake.push_for_model("secondary", Turn::text("should not be called"));
    let api = ApiKind::AnthropicMessages;
    let chain = vec![
        model(&fake, &api, "primary"),
        model(&fake, &api, "secondary"),
    ];
    let (message, error) = collect(client().stream_chain(&chain, &request(), &options())).await;
    let error = error.expect("error");
    assert_eq!(error.kind, ErrorKind::ContextLength);
    assert_eq!(error.kind.wire_error_kind(), "context_length");
    assert_eq!(message.stop_reason, Some(StopReason::Error));
    assert_eq!(fake.model_requests().len(), 1);
}

#[tokio::test]
async fn no_fallback_after_output() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push_for_model(
        "primary",
        Reply::new()
            .text("one two three four five six seven")
            .drop_after(4),
    );
    fake.push_for_model("secondary", Turn::text("should not be called"));
    let api = ApiKind::OpenaiCompletions;
    let chain = vec![
        model(&fake, &api, "primary"),
        model(&fake, &api, "secondary"),
    ];
    let (_, error) = collect(client().stream_chain(&chain, &request(), &options())).await;
    assert_eq!(error.map(|e| e.kind), Some(ErrorKind::Network));
    assert_eq!(fake.model_requests().len(), 1);
}

#[tokio::test]
async fn connection_refused_is_a_network_error() {
    let fake = FakeLlm::start().await.unwrap();
    let url = fake.openai_base_url();
    drop(fake);
    let m = ResolvedModel::new("fake", "m", ApiKind::OpenaiCompletions, &url);
    let events = run(&client(), &m, &request(), &options()).await;
    assert_eq!(error_of(&events).kind, ErrorKind::Network);
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, ProviderEvent::Retrying { .. }))
            .count(),
        1,
        "one retry (policy: 2 attempts)"
    );
}

#[tokio::test]
async fn connections_are_reused_across_turns() {
    let fake = FakeLlm::start().await.unwrap();
    let client = client();
    let m = model(&fake, &ApiKind::OpenaiCompletions, "m");
    for i in 0..5 {
        fake.push(Turn::text(&format!("turn {i}")));
        let (message, error) = collect(client.stream(&m, &request(), &options())).await;
        assert!(error.is_none());
        assert_eq!(message.text(), format!("turn {i}"));
    }
    assert_eq!(
        fake.counters().connections_opened,
        1,
        "the stream is drained so the pooled connection is reused"
    );
}

#[tokio::test]
async fn resolved_from_registry_against_fake() {
    let fake = FakeLlm::start().await.unwrap();
    fake.push(Turn::text("via registry"));
    let config: std::collections::BTreeMap<String, ProviderConfig> = serde_json::from_value(json!({
        "local": {"baseUrl": fake.openai_base_url(), "api": "openai-completions", "models": [{"id": "test-model", "maxTokens": 64}]}
    }))
    .unwrap();
    let registry = ProviderRegistry::new(&config, &std::collections::BTreeMap::new());
    let chain = registry.resolve_chain("local/test-model", &[]).unwrap();
    let (message, error) = collect(client().stream_chain(&chain, &request(), &options())).await;
    assert!(error.is_none());
    assert_eq!(message.text(), "via registry");
    assert_eq!(message.provider.as_deref(), Some("local"));
    assert_eq!(
        fake.model_requests()[0].body["max_completion_tokens"],
        512,
        "request max_tokens wins over the model's"
    );
    assert!(
        fake.model_requests()[0].header("authorization").is_none(),
        "no key configured, none sent"
    );
}
