//! Lanes and queue modes: what a message does while its session is busy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use pincer_agent::*;
use pincer_fakes::llm::Reply;
use serde_json::json;

fn slow(text: &str) -> Reply {
    Reply::new().text(text).delay(Duration::from_millis(80))
}

/// Waits until `run_id` has streamed its first delta.
async fn until_streaming(h: &mut Harness, run_id: &str) {
    loop {
        let ev = tokio::time::timeout(DEADLINE, h.events.recv())
            .await
            .unwrap()
            .unwrap();
        if &*ev.run_id == run_id && matches!(ev.kind, RunEventKind::AssistantDelta { .. }) {
            return;
        }
    }
}

fn with_mode(mut req: RunRequest, mode: QueueMode) -> RunRequest {
    req.queue_mode = Some(mode);
    req
}

fn roles_and_texts(msgs: &[serde_json::Value]) -> Vec<(String, String)> {
    msgs.iter()
        .map(|m| {
            let text = match &m["content"] {
                serde_json::Value::String(s) => s.clone(),
                v => v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|b| b["text"].as_str())
                    .collect(),
            };
            (m["role"].as_str().unwrap_or("").to_owned(), text)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followup_runs_after_the_active_turn_as_its_own_run() {
    let mut h = harness(Opts::default()).await;
    h.fake.push(slow("first answer is rather slow"));
    h.fake.push(Reply::new().text("second answer"));
    let mut a = h.rt.submit(chat("f1", "main", "first")).await.unwrap();
    until_streaming(&mut h, "f1").await;
    let mut b =
        h.rt.submit(with_mode(chat("f2", "main", "second"), QueueMode::Followup))
            .await
            .unwrap();
    assert_eq!(b.admission, Admission::Queued { position: 1 });
    assert_eq!(
        h.rt.session_runs("agent:main:main"),
        vec!["f1".to_owned(), "f2".to_owned()]
    );
    let (oa, ob) = tokio::join!(a.handle.outcome(), b.handle.outcome());
    assert_eq!((oa.status, ob.status), (RunStatus::Ok, RunStatus::Ok));
    assert_eq!(ob.text, "second answer");
    assert!(ob.started_at >= oa.ended_at, "serialised in the lane");
    assert_eq!(ob.merged_into, None);
    let msgs = roles_and_texts(&h.messages("main").await);
    assert_eq!(
        msgs,
        vec![
            ("user".into(), "first".into()),
            ("assistant".into(), "first answer is rather slow".into()),
            ("user".into(), "second".into()),
            ("assistant".into(), "second answer".into()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_coalesces_waiting_messages_after_the_quiet_window() {
    let mut h = harness(Opts::default()).await;
    h.fake.push(slow("busy busy busy"));
    h.fake.push(Reply::new().text("both handled"));
    let mut a = h.rt.submit(chat("c1", "main", "first")).await.unwrap();
    until_streaming(&mut h, "c1").await;
    let mut b =
        h.rt.submit(with_mode(
            chat("c2", "main", "second thing"),
            QueueMode::Collect,
        ))
        .await
        .unwrap();
    let mut c =
        h.rt.submit(with_mode(
            chat("c3", "main", "third thing"),
            QueueMode::Collect,
        ))
        .await
        .unwrap();
    let last_enqueue = now_ms();
    assert_eq!(c.admission, Admission::Queued { position: 2 });
    let (oa, ob, oc) = tokio::join!(a.handle.outcome(), b.handle.outcome(), c.handle.outcome());
    assert_eq!(oa.status, RunStatus::Ok);
    // One run for both: the newest id ran, the older one was folded into it.
    assert_eq!(oc.status, RunStatus::Ok);
    assert_eq!(oc.text, "both handled");
    assert_eq!(ob.merged_into.as_deref(), Some("c3"));
    assert_eq!(ob.text, "both handled");
    assert!(
        oc.started_at + 50 >= last_enqueue + 500,
        "debounce before the collected turn"
    );
    assert_eq!(h.fake.model_requests().len(), 2);
    let last = request_texts(&h.requests()[1]).pop().unwrap();
    assert!(
        last.contains("1. second thing") && last.contains("2. third thing"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steer_injects_the_message_into_the_active_run() {
    let mut h = harness(Opts::default()).await;
    h.fake
        .push(slow("I am answering the first question slowly"));
    h.fake.push(Reply::new().text("now with your correction"));
    let mut a =
        h.rt.submit(chat("s1", "main", "first question"))
            .await
            .unwrap();
    until_streaming(&mut h, "s1").await;
    let mut b =
        h.rt.submit(with_mode(
            chat("s2", "main", "actually, use metric"),
            QueueMode::Steer,
        ))
        .await
        .unwrap();
    assert_eq!(b.admission, Admission::Steered { into: "s1".into() });
    let (oa, ob) = tokio::join!(a.handle.outcome(), b.handle.outcome());
    assert_eq!(oa.status, RunStatus::Ok);
    assert_eq!(oa.text, "now with your correction");
    assert_eq!(oa.assistant_turns, 2);
    assert_eq!(ob.merged_into.as_deref(), Some("s1"));
    // The second model call of the same run saw the steering message last.
    let second = request_texts(&h.requests()[1]);
    assert_eq!(
        second.last().map(String::as_str),
        Some("actually, use metric")
    );
    let msgs = roles_and_texts(&h.messages("main").await);
    assert_eq!(msgs[2], ("user".into(), "actually, use metric".into()));
    assert_eq!(h.fake.model_requests().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steer_between_tool_calls_skips_the_rest() {
    let mut h = harness(Opts::default()).await;
    h.fake.push(
        Reply::new()
            .tool_call("c1", "exec", r#"{"command":"sleep 0.6"}"#)
            .tool_call("c2", "session_status", "{}"),
    );
    h.fake.push(Reply::new().text("handled the new message"));
    let mut a = h.rt.submit(chat("t1", "main", "run things")).await.unwrap();
    // Wait for the first tool to start, then steer.
    loop {
        let ev = tokio::time::timeout(DEADLINE, h.events.recv())
            .await
            .unwrap()
            .unwrap();
        if matches!(&ev.kind, RunEventKind::ToolStart { name, .. } if name == "exec") {
            break;
        }
    }
    let b =
        h.rt.submit(with_mode(
            chat("t2", "main", "stop that, do this"),
            QueueMode::Steer,
        ))
        .await
        .unwrap();
    assert!(matches!(b.admission, Admission::Steered { .. }));
    let oa = a.handle.outcome().await;
    assert_eq!(oa.status, RunStatus::Ok, "{oa:?}");
    let msgs = h.messages("main").await;
    let results: Vec<&serde_json::Value> =
        msgs.iter().filter(|m| m["role"] == "toolResult").collect();
    assert_eq!(results.len(), 2);
    assert_eq!(results[1]["toolCallId"], "c2");
    assert_eq!(results[1]["content"][0]["text"], SKIPPED_FOR_STEER);
    let second = request_texts(&h.requests()[1]);
    assert_eq!(
        second.last().map(String::as_str),
        Some("stop that, do this")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupt_aborts_the_active_run_and_runs_the_newest() {
    let mut h = harness(Opts::default()).await;
    h.fake.push(slow("this will be cut off before it is done"));
    h.fake.push(Reply::new().text("fresh answer"));
    let mut a = h.rt.submit(chat("i1", "main", "long one")).await.unwrap();
    until_streaming(&mut h, "i1").await;
    let mut b =
        h.rt.submit(with_mode(
            chat("i2", "main", "never mind"),
            QueueMode::Interrupt,
        ))
        .await
        .unwrap();
    assert!(matches!(b.admission, Admission::Queued { .. }));
    let (oa, ob) = tokio::join!(a.handle.outcome(), b.handle.outcome());
    assert_eq!(oa.status, RunStatus::Aborted);
    assert_eq!(oa.abort_reason, Some(AbortReason::Interrupt));
    assert_eq!(ob.status, RunStatus::Ok);
    assert_eq!(ob.text, "fresh answer");
    let msgs = h.messages("main").await;
    assert_eq!(msgs[1]["stopReason"], "aborted");
    assert_eq!(msgs[2]["content"], "never mind");
    // The aborted turn reaches the next model call only as a marker.
    let texts = request_texts(&h.requests()[1]);
    assert!(
        texts
            .iter()
            .any(|t| t.contains("was stopped before it finished")),
        "{texts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_cap_with_drop_new_refuses_and_summarize_notes_the_dropped() {
    let mut h = harness(Opts {
        extra_config: json!({"messages": {"queue": {"mode": "followup", "cap": 1, "drop": "new"}}}),
        ..Opts::default()
    })
    .await;
    h.fake.push(slow("busy for a while now"));
    h.fake.push(Reply::new().text("ok"));
    let mut a = h.rt.submit(chat("q1", "main", "first")).await.unwrap();
    until_streaming(&mut h, "q1").await;
    h.rt.submit(chat("q2", "main", "second")).await.unwrap();
    let err = h.rt.submit(chat("q3", "main", "third")).await.unwrap_err();
    assert!(
        matches!(err, SubmitError::QueueFull { cap: 1, .. }),
        "{err}"
    );
    a.handle.outcome().await;

    let mut h = harness(Opts {
        extra_config: json!({"messages": {"queue": {"mode": "followup", "cap": 1, "drop": "summarize"}}}),
        ..Opts::default()
    })
    .await;
    h.fake.push(slow("busy for a while now"));
    h.fake.push(Reply::new().text("ok"));
    let mut a = h.rt.submit(chat("q1", "main", "first")).await.unwrap();
    until_streaming(&mut h, "q1").await;
    let mut b =
        h.rt.submit(chat("q2", "main", "second message"))
            .await
            .unwrap();
    let mut c = h.rt.submit(chat("q3", "main", "third")).await.unwrap();
    let (_, ob, oc) = tokio::join!(a.handle.outcome(), b.handle.outcome(), c.handle.outcome());
    assert_eq!(
        ob.status,
        RunStatus::Aborted,
        "the oldest waiting message was dropped"
    );
    assert_eq!(oc.status, RunStatus::Ok);
    let last = request_texts(&h.requests()[1]).pop().unwrap();
    assert!(
        last.contains("dropped") && last.contains("second message") && last.ends_with("third"),
        "{last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_by_run_id_cancels_only_the_waiting_turn() {
    let mut h = harness(Opts::default()).await;
    h.fake.push(slow("active turn keeps going"));
    let mut a = h.rt.submit(chat("w1", "main", "first")).await.unwrap();
    until_streaming(&mut h, "w1").await;
    let mut b =
        h.rt.submit(with_mode(chat("w2", "main", "second"), QueueMode::Followup))
            .await
            .unwrap();
    assert_eq!(
        h.rt.abort("agent:main:main", Some("w2"), AbortReason::Rpc),
        vec!["w2".to_owned()]
    );
    let ob = b.handle.outcome().await;
    assert_eq!(ob.status, RunStatus::Aborted);
    let oa = a.handle.outcome().await;
    assert_eq!(oa.status, RunStatus::Ok);
    assert_eq!(h.fake.model_requests().len(), 1);
    // agent.wait sees both outcomes.
    match h.rt.wait("w2", Duration::from_millis(10)).await {
        WaitResult::Done(o) => assert_eq!(o.status, RunStatus::Aborted),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        h.rt.wait("nope", Duration::from_millis(50)).await,
        WaitResult::Unknown
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_command_aborts_the_active_run_at_once() {
    let mut h = harness(Opts::default()).await;
    h.fake
        .push(slow("a reply that will be stopped by the user"));
    let mut a = h.rt.submit(chat("x1", "main", "go")).await.unwrap();
    until_streaming(&mut h, "x1").await;
    let mut stop = h.rt.submit(chat("x2", "main", "/stop")).await.unwrap();
    assert_eq!(
        stop.admission,
        Admission::Command {
            name: "stop".into()
        }
    );
    let os = stop.handle.outcome().await;
    assert_eq!(os.text, "⚙️ Agent was aborted.");
    let oa = a.handle.outcome().await;
    assert_eq!(oa.status, RunStatus::Aborted);
    assert_eq!(oa.abort_reason, Some(AbortReason::Stop));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_limit_bounds_concurrent_runs() {
    let h = harness(Opts {
        echo: true,
        extra_config: json!({"agents": {"defaults": {"maxConcurrent": 1}}}),
        ..Opts::default()
    })
    .await;
    for _ in 0..2 {
        h.fake.push(slow("one two three"));
    }
    let mut a =
        h.rt.submit(chat("g1", "agent:main:one", "a"))
            .await
            .unwrap();
    let mut b =
        h.rt.submit(chat("g2", "agent:main:two", "b"))
            .await
            .unwrap();
    let (oa, ob) = tokio::join!(a.handle.outcome(), b.handle.outcome());
    let (first, second) = if oa.started_at <= ob.started_at {
        (oa, ob)
    } else {
        (ob, oa)
    };
    // Only one model stream at a time: the second one's first request came after the first ended.
    assert_eq!(first.status, RunStatus::Ok);
    assert_eq!(second.status, RunStatus::Ok);
    let r = h.fake.model_requests();
    assert_eq!(r.len(), 2);
    assert!(
        second.started_at >= first.ended_at,
        "the second run waited for a permit"
    );
}
