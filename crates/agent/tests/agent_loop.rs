//! The agent loop against the fake LLM with a real store: turns, tools, failures.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use pincer_agent::*;
use pincer_fakes::llm::{HttpError, Reply, StreamErrorKind, Turn};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simple_turn_streams_records_and_reports() {
    let mut h = harness(Opts::default()).await;
    h.fake.push(
        Reply::new()
            .text("Hello from the mock provider.")
            .usage(10, 10),
    );
    let outcome = h.run(chat("run-1", "main", "Say hello")).await;
    assert_eq!(outcome.status, RunStatus::Ok);
    assert_eq!(outcome.text, "Hello from the mock provider.");
    assert_eq!(outcome.disposition, Disposition::Visible);
    assert_eq!(outcome.stop_reason.as_deref(), Some("stop"));
    assert_eq!((outcome.usage.input, outcome.usage.output), (10, 10));
    assert_eq!(
        outcome.effective,
        Some(("mock".into(), "mock-model".into()))
    );

    let events = h.events_of("run-1").await;
    let k = kinds(&events);
    let expected_prefix = [
        "status:preparing_workspace",
        "status:preparing_context",
        "start",
        "status:starting_model",
        "model:mock-model",
    ];
    assert_eq!(&k[..5], expected_prefix, "{k:?}");
    assert_eq!(&k[k.len() - 4..], ["usage", "finishing", "released", "end"]);
    assert_eq!(deltas(&events), "Hello from the mock provider.");
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    // Each stored message is announced once it is durable: the user's before the model
    // starts, the final answer before the terminal events.
    assert_eq!(
        stored(&events),
        [("user".to_owned(), 1), ("assistant".to_owned(), 2)]
    );
    let at = |pred: &dyn Fn(&RunEventKind) -> bool| events.iter().position(|e| pred(&e.kind));
    let user_at = at(&|k| matches!(k, RunEventKind::Message(m) if m.message["role"] == "user"));
    let start_at = at(&|k| matches!(k, RunEventKind::Start { .. }));
    let final_at =
        at(&|k| matches!(k, RunEventKind::Message(m) if m.message["role"] == "assistant"));
    let released_at = at(&|k| matches!(k, RunEventKind::ModelReleased));
    assert!(user_at < start_at && final_at < released_at, "{events:#?}");
    assert!(events.iter().skip(2).all(|e| e.session_id.is_some()));

    // Durable transcript: header, user, assistant.
    let t = h.transcript("main").await;
    assert_eq!(t[0]["type"], "session");
    let msgs = h.messages("main").await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(msgs[0]["content"], "Say hello");
    assert_eq!(msgs[0]["idempotencyKey"], "run-1:user");
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["provider"], "mock");
    assert_eq!(msgs[1]["api"], "openai-completions");
    assert_eq!(msgs[1]["usage"]["input"], 10);
    assert_eq!(msgs[1]["__openclaw"]["runId"], "run-1");

    // Usage counters in the session entry.
    let entry = h
        .store
        .get_session(&key("main"))
        .await
        .unwrap()
        .unwrap()
        .entry;
    assert_eq!(
        (entry.input_tokens, entry.output_tokens),
        (Some(10), Some(10))
    );
    assert_eq!(entry.status.as_deref(), Some("done"));
    assert_eq!(entry.last_run_id.as_deref(), Some("run-1"));
    assert_eq!(entry.model.as_deref(), Some("mock-model"));
    assert_eq!(entry.usage_totals.as_ref().map(|u| u.runs), Some(1));

    // The workspace was seeded and its files reached the model in the system prompt.
    let ws = h.dir.path().join("workspace");
    assert!(ws.join("AGENTS.md").is_file() && ws.join("BOOTSTRAP.md").is_file());
    let req = &h.requests()[0];
    let system = req["messages"][0]["content"].as_str().unwrap_or_default();
    assert!(
        system.contains(&ws.join("AGENTS.md").display().to_string()),
        "{system}"
    );
    assert!(system.contains("## Bootstrap Pending"));
    assert_eq!(req["model"], "mock-model");
    assert!(req["tools"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["function"]["name"] == "session_status")));
    assert_eq!(
        request_texts(req).last().map(String::as_str),
        Some("Say hello")
    );
}

/// A request's session update (a channel turn's origin) is in the session row once the user
/// message is durable, before the model is called: the run's observer holds the run at its
/// next event while the row is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_update_is_committed_with_the_user_message() {
    let h = harness(Opts::default()).await;
    h.fake.push(Reply::new().text("ok"));
    let mut req = chat("run-su", "main", "hello");
    req.session_update = Some(SessionUpdate::new(|e| {
        e.extra.insert("probe".into(), json!("from the request"));
    }));
    let (tx, mut observed) = tokio::sync::mpsc::channel(1);
    req.observer = Some(tx);
    let mut submitted = h.rt.submit(req).await.unwrap();
    loop {
        let ev = tokio::time::timeout(DEADLINE, observed.recv())
            .await
            .expect("event in time")
            .expect("run events");
        match &ev.kind {
            RunEventKind::Message(m) if m.message["role"] == "user" => break,
            RunEventKind::Model { .. } | RunEventKind::End(_) => {
                panic!("the model was called before the user message was announced: {ev:?}")
            }
            _ => {}
        }
    }
    assert!(h.fake.model_requests().is_empty());
    let entry = h.entry("main").await;
    assert_eq!(entry.extra.get("probe"), Some(&json!("from the request")));
    assert_eq!(entry.status.as_deref(), Some("running"));
    while observed.recv().await.is_some() {}
    let outcome = submitted.handle.outcome().await;
    assert_eq!(outcome.status, RunStatus::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_call_turn_runs_the_tool_and_feeds_the_result_back() {
    let mut h = harness(Opts::default()).await;
    h.fake.push(Reply::new().text("Let me look.").tool_call(
        "call_abc123",
        "read",
        r#"{"path":"USER.md"}"#,
    ));
    h.fake
        .push(Reply::new().text("You have no preferences yet."));
    let outcome = h
        .run(chat("run-t", "main", "What do you know about me?"))
        .await;
    assert_eq!(outcome.status, RunStatus::Ok, "{outcome:?}");
    assert_eq!(outcome.text, "You have no preferences yet.");
    assert_eq!(outcome.assistant_turns, 2);
    assert_eq!(outcome.tool_names, vec!["read".to_owned()]);

    let events = h.events_of("run-t").await;
    let k = kinds(&events);
    let start = k.iter().position(|x| x == "tool_start:read").unwrap();
    assert_eq!(k[start + 1], "tool_result:read");
    let (title, result) = events
        .iter()
        .find_map(|e| match &e.kind {
            RunEventKind::ToolResult {
                title,
                result,
                is_error,
                ..
            } => {
                assert!(!is_error);
                Some((title.clone(), result.clone()))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(title, "Read from USER.md");
    assert!(result["content"][0]["text"]
        .as_str()
        .unwrap()
        .contains("USER.md"));
    // Two item ids (one per model call) on the assistant deltas.
    let items: std::collections::BTreeSet<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            RunEventKind::AssistantDelta { item_id, .. } => Some(item_id.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(items.len(), 2);

    let msgs = h.messages("main").await;
    let roles: Vec<&str> = msgs.iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant", "toolResult", "assistant"]);
    // Every stored message was announced, in transcript order, with its entry id; the call
    // (committed while its tool ran) before its result.
    let announced = stored(&events);
    let expected: Vec<(String, i64)> = roles
        .iter()
        .zip(1..)
        .map(|(r, i)| ((*r).to_owned(), i))
        .collect();
    assert_eq!(announced, expected);
    let ids: Vec<String> = events
        .iter()
        .filter_map(|e| match &e.kind {
            RunEventKind::Message(m) => m.entry_id.clone(),
            _ => None,
        })
        .collect();
    let stored_ids: Vec<String> = h
        .transcript("main")
        .await
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, stored_ids);
    assert_eq!(msgs[1]["stopReason"], "toolUse");
    assert_eq!(msgs[2]["toolCallId"], "call_abc123");
    assert_eq!(msgs[2]["isError"], false);

    // The second request carries the call and its result.
    let second = &h.requests()[1];
    let ms = second["messages"].as_array().unwrap();
    let tool = ms
        .iter()
        .find(|m| m["role"] == "tool")
        .expect("tool message");
    assert_eq!(
        tool["tool_call_id"].as_str().map(|s| s.replace('_', "")),
        Some("callabc123".into())
    );
    assert!(
        tool["content"]
            .as_str()
            .unwrap_or_default()
            .contains("USER.md")
            || tool["content"].to_string().contains("USER.md")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_status_tool_reports_the_session() {
    let h = harness(Opts::default()).await;
    h.fake
        .push(Reply::new().tool_call("s1", "session_status", "{}"));
    h.fake.push(Reply::new().text("ok"));
    let outcome = h.run(chat("run-s", "main", "status?")).await;
    assert_eq!(outcome.status, RunStatus::Ok);
    let msgs = h.messages("main").await;
    let result = msgs.iter().find(|m| m["role"] == "toolResult").unwrap();
    assert_eq!(result["isError"], false, "{result}");
    assert_eq!(result["details"]["sessionKey"], "agent:main:main");
    assert_eq!(result["details"]["model"], "mock/mock-model");
    assert!(result["details"]["statusText"]
        .as_str()
        .unwrap()
        .contains("Model: mock/mock-model"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_run_concurrently() {
    let h = harness(Opts {
        echo: true,
        ..Opts::default()
    })
    .await;
    // Both replies are slow; run in parallel they take about one reply's time.
    for _ in 0..2 {
        h.fake.push(
            Reply::new()
                .text("one two three four five six")
                .delay(Duration::from_millis(60)),
        );
    }
    let started = Instant::now();
    let mut a =
        h.rt.submit(chat("a", "agent:main:alpha", "from alpha"))
            .await
            .unwrap();
    let mut b =
        h.rt.submit(chat("b", "agent:main:beta", "from beta"))
            .await
            .unwrap();
    assert_eq!(a.admission, Admission::Started);
    assert_eq!(b.admission, Admission::Started);
    let (oa, ob) = tokio::join!(a.handle.outcome(), b.handle.outcome());
    let elapsed = started.elapsed();
    assert_eq!((oa.status, ob.status), (RunStatus::Ok, RunStatus::Ok));
    // Sequential would be ≥ 2 × 6 × 60 ms; generous bound to detect serialisation only.
    assert!(
        oa.started_at < ob.ended_at && ob.started_at < oa.ended_at,
        "runs overlapped"
    );
    assert!(elapsed < Duration::from_secs(10));
    assert_eq!(
        h.messages("agent:main:alpha").await[0]["content"],
        "from alpha"
    );
    assert_eq!(
        h.messages("agent:main:beta").await[0]["content"],
        "from beta"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_with_retry_after_then_success() {
    let mut h = harness(Opts::default()).await;
    h.fake.push(Turn::rate_limited("1"));
    h.fake.push(Reply::new().text("after the wait"));
    let started = Instant::now();
    let outcome = h.run(chat("rl", "main", "hi")).await;
    assert_eq!(outcome.status, RunStatus::Ok, "{outcome:?}");
    assert_eq!(outcome.text, "after the wait");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "retry-after honoured"
    );
    assert_eq!(h.fake.model_requests().len(), 2);
    let events = h.events_of("rl").await;
    let retry = events.iter().find_map(|e| match &e.kind {
        RunEventKind::Status {
            phase: StatusPhase::Retrying,
            retry,
        } => retry.clone(),
        _ => None,
    });
    let retry = retry.expect("retrying status");
    assert_eq!(retry.reason, "rate_limit");
    assert!(retry.delay_ms >= 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_falls_back_to_the_next_model() {
    let mut h = harness(Opts {
        fallbacks: vec!["mock/backup-model".into()],
        ..Opts::default()
    })
    .await;
    h.fake.always_for_model("mock-model", Turn::http_error(500));
    h.fake
        .push_for_model("backup-model", Reply::new().text("backup here"));
    let outcome = h.run(chat("fb", "main", "hi")).await;
    assert_eq!(outcome.status, RunStatus::Ok, "{outcome:?}");
    assert_eq!(outcome.text, "backup here");
    assert_eq!(
        outcome.effective,
        Some(("mock".into(), "backup-model".into()))
    );
    assert_eq!(outcome.attempts[0].result, "server");
    assert_eq!(outcome.attempts[1].result, "success");
    let events = h.events_of("fb").await;
    let k = kinds(&events);
    let fb = k
        .iter()
        .position(|x| x == "fallback")
        .expect("fallback step");
    assert_eq!(k[fb + 1], "model:backup-model");
    assert_eq!(h.messages("main").await[1]["model"], "backup-model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_stream_fails_the_run_with_detail() {
    let mut h = harness(Opts::default()).await;
    h.fake
        .push(Reply::new().text("partial answer here").malformed_after(2));
    let outcome = h.run(chat("bad", "main", "hi")).await;
    assert_eq!(outcome.status, RunStatus::Error);
    let error = outcome.error.clone().unwrap();
    assert_eq!(error.error_kind, "unknown");
    let detail = error.error_detail.unwrap();
    assert_eq!(detail.failover_reason, "malformed");
    assert_eq!(detail.provider, "mock");
    let events = h.events_of("bad").await;
    assert!(
        matches!(events.last().map(|e| &e.kind), Some(RunEventKind::End(o)) if o.status == RunStatus::Error)
    );
    let msgs = h.messages("main").await;
    assert_eq!(msgs[1]["stopReason"], "error");
    assert!(msgs[1]["errorMessage"]
        .as_str()
        .unwrap()
        .contains("malformed"));
    // The failed turn is replayed as a marker, not as the broken output.
    h.fake.push(Reply::new().text("fine now"));
    h.run(chat("next", "main", "again")).await;
    let texts = request_texts(&h.requests()[1]);
    assert!(
        texts
            .iter()
            .any(|t| t.contains("[My previous reply failed")),
        "{texts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_mid_stream_is_a_network_error() {
    let h = harness(Opts::default()).await;
    h.fake
        .push(Reply::new().text("one two three four").drop_after(3));
    let outcome = h.run(chat("drop", "main", "hi")).await;
    assert_eq!(outcome.status, RunStatus::Error);
    let detail = outcome
        .error
        .as_ref()
        .unwrap()
        .error_detail
        .clone()
        .unwrap();
    assert_eq!(detail.failover_reason, "network");
    // Output had started, so the call was not retried.
    assert_eq!(h.fake.model_requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_stream_times_out() {
    let h = harness(Opts {
        options: AgentOptions {
            idle_timeout: Some(Duration::from_millis(300)),
            ..fast_options()
        },
        ..Opts::default()
    })
    .await;
    h.fake
        .push(Reply::new().text("one two three").stall_after(2));
    let started = Instant::now();
    let outcome = h.run(chat("idle", "main", "hi")).await;
    assert_eq!(outcome.status, RunStatus::Error);
    let error = outcome.error.clone().unwrap();
    assert_eq!(error.error_kind, "timeout");
    assert!(
        error.error_message.contains("idle"),
        "{}",
        error.error_message
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_mid_stream_cancels_quickly_and_records_the_aborted_turn() {
    let mut h = harness(Opts::default()).await;
    h.fake.push(
        Reply::new()
            .text("a very slow reply that goes on and on and on")
            .delay(Duration::from_millis(200)),
    );
    let s = h.rt.submit(chat("ab", "main", "talk")).await.unwrap();
    // Wait for the first delta, then abort.
    loop {
        let ev = tokio::time::timeout(DEADLINE, h.events.recv())
            .await
            .unwrap()
            .unwrap();
        if matches!(ev.kind, RunEventKind::AssistantDelta { .. }) {
            break;
        }
    }
    let t0 = Instant::now();
    let aborted = h.rt.abort("agent:main:main", None, AbortReason::Rpc);
    assert_eq!(aborted, vec!["ab".to_owned()]);
    let mut handle = s.handle.clone();
    let outcome = tokio::time::timeout(DEADLINE, handle.outcome())
        .await
        .unwrap();
    let took = t0.elapsed();
    assert_eq!(outcome.status, RunStatus::Aborted);
    assert_eq!(outcome.abort_reason, Some(AbortReason::Rpc));
    assert_eq!(outcome.stop_reason.as_deref(), Some("rpc"));
    assert!(took < Duration::from_secs(2), "abort took {took:?}");
    let msgs = h.messages("main").await;
    let last = msgs.last().unwrap();
    assert_eq!(last["stopReason"], "aborted");
    let partial = last["content"][0]["text"].as_str().unwrap();
    assert!(partial.starts_with('a') && partial.len() < 40, "{partial}");
    let entry = h
        .store
        .get_session(&key("main"))
        .await
        .unwrap()
        .unwrap()
        .entry;
    assert_eq!(entry.aborted_last_run, Some(true));
    // The provider connection was closed, not left streaming.
    assert!(
        h.fake
            .wait_for(|c| c.client_aborts >= 1, Duration::from_secs(5))
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_provider_gives_the_configuration_help() {
    let mut h = harness(Opts {
        extra_config: json!({"models": {"providers": {}}, "agents": {"defaults": {"model": {"primary": ""}}}}),
        ..Opts::default()
    })
    .await;
    // Replace the registry with an empty one, as on a fresh machine without keys.
    let config = h.rt.settings().config.clone();
    let empty = pincer_config::Config {
        models: Default::default(),
        agents: Default::default(),
        ..(*config).clone()
    };
    h.rt.update_settings(Settings::new(
        std::sync::Arc::new(empty),
        h.dir.path(),
        &|_| None,
    ));
    let outcome = h.run(chat("np", "main", "hello?")).await;
    assert_eq!(outcome.status, RunStatus::Error);
    let message = &outcome.error.as_ref().unwrap().error_message;
    assert!(
        message.contains("ANTHROPIC_API_KEY") && message.contains("models.providers"),
        "{message}"
    );
    assert_eq!(h.fake.model_requests().len(), 0);
    let msgs = h.messages("main").await;
    assert_eq!(msgs[1]["stopReason"], "error");
    let events = h.events_of("np").await;
    assert_eq!(
        stored(&events),
        [("user".to_owned(), 1), ("assistant".to_owned(), 2)],
        "the help turn is announced like any other"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_model_calls_bounds_a_looping_model() {
    let h = harness(Opts {
        options: AgentOptions {
            max_model_calls: Some(3),
            ..fast_options()
        },
        ..Opts::default()
    })
    .await;
    for i in 0..5 {
        h.fake
            .push(Reply::new().tool_call(&format!("c{i}"), "session_status", "{}"));
    }
    let outcome = h.run(chat("loop", "main", "go")).await;
    assert_eq!(outcome.status, RunStatus::Error);
    assert!(outcome
        .error
        .as_ref()
        .unwrap()
        .error_message
        .contains("3 model calls"));
    assert_eq!(h.fake.model_requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_stream_error_event_is_classified() {
    let h = harness(Opts::default()).await;
    h.fake
        .push(Reply::new().error_after(0, StreamErrorKind::Overloaded, "busy"));
    h.fake.push(Turn::HttpError(HttpError {
        status: 400,
        retry_after: None,
        message: Some("bad request".into()),
    }));
    let outcome = h.run(chat("ov", "main", "hi")).await;
    // Overloaded before any output: retried, then the 400 is final.
    assert_eq!(outcome.status, RunStatus::Error);
    let detail = outcome
        .error
        .as_ref()
        .unwrap()
        .error_detail
        .clone()
        .unwrap();
    assert_eq!(detail.failover_reason, "invalid_request");
    assert_eq!(detail.http_status, Some(400));
}
