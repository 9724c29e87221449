//! Chat commands, chat.inject and compaction.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use pincer_agent::*;
use pincer_fakes::llm::{HttpError, Reply, Turn};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_help_and_verbose_answer_without_a_model_call() {
    let h = harness(Opts::default()).await;
    let status = h.run(chat("c1", "main", "/status")).await;
    assert_eq!(status.command.as_deref(), Some("status"));
    assert!(
        status.text.contains("Model: mock/mock-model"),
        "{}",
        status.text
    );
    assert!(status.text.contains("Queue: steer"), "{}", status.text);
    let help = h.run(chat("c2", "main", "/help")).await;
    assert!(help.text.contains("/compact"));
    let verbose = h.run(chat("c3", "main", "/verbose on")).await;
    assert_eq!(verbose.text, "Verbose logging enabled.");
    let entry = h
        .store
        .get_session(&key("main"))
        .await
        .unwrap()
        .unwrap()
        .entry;
    assert_eq!(entry.verbose_level.as_deref(), Some("on"));
    assert_eq!(h.fake.model_requests().len(), 0);
    // Replies are gateway-injected assistant messages.
    let msgs = h.messages("main").await;
    let reply = msgs.iter().find(|m| m["role"] == "assistant").unwrap();
    assert_eq!(reply["provider"], "openclaw");
    assert_eq!(reply["model"], "gateway-injected");
    assert_eq!(reply["api"], "openai-responses");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn think_is_validated_against_the_model() {
    let h = harness(Opts::default()).await;
    let o = h.run(chat("t1", "main", "/think high")).await;
    assert_eq!(
        o.text,
        "Thinking level \"high\" is not supported for mock/mock-model. Use one of: off."
    );
    let h = harness(Opts {
        reasoning: true,
        ..Opts::default()
    })
    .await;
    let o = h.run(chat("t1", "main", "/think high")).await;
    assert_eq!(o.text, "Thinking level set to high.");
    h.fake.push(Reply::new().text("deep"));
    h.run(chat("t2", "main", "think hard")).await;
    assert_eq!(h.requests()[0]["reasoning_effort"], "high");
    let t = h.transcript("main").await;
    assert!(t
        .iter()
        .any(|e| e["type"] == "thinking_level_change" && e["thinkingLevel"] == "high"));
    let o = h.run(chat("t3", "main", "/think nonsense")).await;
    assert!(o.text.starts_with("Unknown thinking level"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_command_pins_and_unpins_the_session_model() {
    let h = harness(Opts::default()).await;
    let o = h.run(chat("m1", "main", "/model backup-model")).await;
    assert_eq!(o.text, "Model set to mock/backup-model.");
    h.fake.push(Reply::new().text("from backup"));
    h.run(chat("m2", "main", "hi")).await;
    assert_eq!(h.requests()[0]["model"], "backup-model");
    let o = h.run(chat("m3", "main", "/model nope/x")).await;
    assert!(o.text.starts_with("Cannot use nope/x"), "{}", o.text);
    let o = h.run(chat("m4", "main", "/model default")).await;
    assert_eq!(o.text, "Model reset to the default: mock/mock-model.");
    h.fake.push(Reply::new().text("from primary"));
    h.run(chat("m5", "main", "hi again")).await;
    assert_eq!(h.requests()[1]["model"], "mock-model");
    let o = h.run(chat("m6", "main", "/model")).await;
    assert!(
        o.text.contains("Current model: mock/mock-model (default)"),
        "{}",
        o.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_clears_the_context_in_place_and_new_starts_a_session() {
    let h = harness(Opts::default()).await;
    h.fake.push(Reply::new().text("remembered"));
    h.run(chat("r1", "main", "my secret word is banana")).await;
    let sid = h
        .store
        .get_session(&key("main"))
        .await
        .unwrap()
        .unwrap()
        .entry
        .session_id;
    let o = h.run(chat("r2", "main", "/reset")).await;
    assert_eq!(o.text, "✅ Session reset.");
    let t = h.transcript("main").await;
    assert!(t
        .iter()
        .any(|e| e["type"] == "reset" && e["reason"] == "reset"));
    let same = h
        .store
        .get_session(&key("main"))
        .await
        .unwrap()
        .unwrap()
        .entry
        .session_id;
    assert_eq!(sid, same, "/reset keeps the sessionId");
    h.fake.push(Reply::new().text("fresh"));
    h.run(chat("r3", "main", "what was the word?")).await;
    let texts = request_texts(&h.requests()[1]);
    assert!(!texts.iter().any(|t| t.contains("banana")), "{texts:?}");
    assert!(!texts
        .iter()
        .any(|t| t.contains("/reset") || t.contains("Session reset")));

    let o = h.run(chat("r4", "main", "/new")).await;
    assert_eq!(o.text, "✅ New session started.");
    let new_sid = h
        .store
        .get_session(&key("main"))
        .await
        .unwrap()
        .unwrap()
        .entry
        .session_id;
    assert_ne!(new_sid, sid);
    let windows = h.store.session_windows(&key("main")).await.unwrap();
    assert_eq!(windows.len(), 2);

    // `/reset <text>` resets, then runs the text as a turn.
    h.fake.push(Reply::new().text("hello again"));
    let o = h.run(chat("r5", "main", "/reset say hello")).await;
    assert_eq!(o.text, "hello again");
    assert_eq!(
        request_texts(&h.requests()[2]).last().map(String::as_str),
        Some("say hello")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inject_needs_a_session_and_stays_out_of_the_model_context() {
    let h = harness(Opts::default()).await;
    let err = h.rt.inject(&key("main"), "note", None).await.unwrap_err();
    assert_eq!(err.to_string(), "session not found");
    h.fake.push(Reply::new().text("one"));
    h.run(chat("i1", "main", "hello")).await;
    let injected =
        h.rt.inject(&key("main"), "operator note", Some("ops"))
            .await
            .unwrap();
    assert!(!injected.message_id.is_empty());
    assert_eq!(injected.message.model.as_deref(), Some("gateway-injected"));
    let msgs = h.messages("main").await;
    assert_eq!(msgs.last().unwrap()["content"][0]["text"], "operator note");
    h.fake.push(Reply::new().text("two"));
    h.run(chat("i2", "main", "and now?")).await;
    let texts = request_texts(&h.requests()[1]);
    assert!(!texts.iter().any(|t| t.contains("operator note")));
}

fn compaction_opts() -> Opts {
    Opts {
        window: 8_000,
        // Only session_status: keeps the fixed prompt small so the window is about history.
        extra_config: json!({"tools": {"profile": "minimal"}, "agents": {"defaults": {"skipBootstrap": true}}}),
        ..Opts::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_near_the_window_is_compacted_before_the_call() {
    let mut h = harness(compaction_opts()).await;
    let long1 = format!("FIRSTTOPIC {}", "alpha ".repeat(2_400));
    let long2 = format!("SECONDTOPIC {}", "beta ".repeat(2_000));
    h.fake.push(Reply::new().text("noted the first"));
    h.run(chat("k1", "main", &long1)).await;
    // Turn 2 crosses window − reserve: the fake answers the summary request, then the turn.
    h.fake
        .push(Reply::new().text("SUMMARY: the user talked about FIRSTTOPIC."));
    h.fake.push(Reply::new().text("noted the second"));
    let o = h.run(chat("k2", "main", &long2)).await;
    assert_eq!(o.status, RunStatus::Ok, "{o:?}");
    assert_eq!(o.text, "noted the second");
    let _ = h.events_of("k1").await;
    let events = h.events_of("k2").await;
    let k = kinds(&events);
    assert!(
        k.contains(&"compaction:Start".to_owned()) && k.contains(&"compaction:End".to_owned()),
        "{k:?}"
    );

    let reqs = h.requests();
    assert_eq!(reqs.len(), 3);
    let summary_req = request_texts(&reqs[1]).join("\n");
    assert!(summary_req.contains("FIRSTTOPIC"));
    assert!(reqs[1]["tools"].as_array().is_none_or(|t| t.is_empty()));
    let turn = request_texts(&reqs[2]);
    assert!(turn
        .iter()
        .any(|t| t.contains("SUMMARY: the user talked about FIRSTTOPIC.")));
    assert!(
        !turn.iter().any(|t| t.contains("alpha alpha")),
        "compacted text is gone"
    );
    assert!(turn.iter().any(|t| t.contains("SECONDTOPIC")));

    let t = h.transcript("main").await;
    let compaction = t.iter().find(|e| e["type"] == "compaction").unwrap();
    let kept = compaction["firstKeptEntryId"].as_str().unwrap();
    let kept_entry = t.iter().find(|e| e["id"] == kept).unwrap();
    assert_eq!(
        kept_entry["message"]["content"]
            .as_str()
            .map(|s| s.starts_with("SECONDTOPIC")),
        Some(true)
    );
    assert!(compaction["tokensBefore"].as_u64().unwrap() >= 6_000);
    let entry = h
        .store
        .get_session(&key("main"))
        .await
        .unwrap()
        .unwrap()
        .entry;
    assert_eq!(entry.compaction_count, Some(1));

    // A later turn loads the summary from the transcript (no model call for it).
    h.fake.push(Reply::new().text("third"));
    h.run(chat("k3", "main", "short question")).await;
    let later = request_texts(&h.requests()[3]);
    assert!(later
        .iter()
        .any(|t| t.contains("SUMMARY: the user talked about FIRSTTOPIC.")));
    assert!(!later.iter().any(|t| t.contains("FIRSTTOPIC alpha")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn context_overflow_error_compacts_and_retries() {
    let h = harness(Opts {
        window: 200_000,
        ..compaction_opts()
    })
    .await;
    h.fake.push(Reply::new().text("one"));
    h.run(chat("o1", "main", "first turn")).await;
    h.fake.push(Turn::HttpError(HttpError {
        status: 400,
        retry_after: None,
        message: Some(
            "This model's maximum context length is 8192 tokens (context_length_exceeded)".into(),
        ),
    }));
    h.fake
        .push(Reply::new().text("SUMMARY: first turn happened."));
    h.fake.push(Reply::new().text("two"));
    let o = h.run(chat("o2", "main", "second turn")).await;
    assert_eq!(o.status, RunStatus::Ok, "{o:?}");
    assert_eq!(o.text, "two");
    let reqs = h.requests();
    assert_eq!(reqs.len(), 4);
    assert!(request_texts(&reqs[3])
        .iter()
        .any(|t| t.contains("SUMMARY: first turn happened.")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_compact_command_and_api() {
    let h = harness(compaction_opts()).await;
    let o = h.run(chat("mc0", "main", "/compact")).await;
    assert!(o.text.starts_with("Nothing to compact yet"), "{}", o.text);
    h.fake.push(Reply::new().text("a"));
    h.run(chat("mc1", "main", "first")).await;
    h.fake.push(Reply::new().text("b"));
    h.run(chat("mc2", "main", "second")).await;
    h.fake.push(Reply::new().text("SUMMARY: two short turns."));
    let o = h.run(chat("mc3", "main", "/compact keep names")).await;
    assert!(
        o.text.starts_with("🧹 Compacted the conversation"),
        "{}",
        o.text
    );
    let summary_req = request_texts(&h.requests()[2]).join("\n");
    assert!(summary_req.contains("Pay particular attention to: keep names"));
    // sessions.compact path: nothing new to compact beyond the last turn.
    let report = h.rt.compact(&key("main"), None).await.unwrap();
    assert!(!report.compacted);
}
