use std::sync::Arc;
use std::time::Duration;

use pincer_channels::status::ConnectionState;
use pincer_channels::telegram::{TelegramAdapter, TelegramSettings};
use pincer_channels::ChannelAdapter;
use pincer_fakes::telegram::{FakeTelegram, FakeUser, PollFault};

use crate::common::*;

const TOKEN: &str = "123456:test-token";
const GROUP: i64 = -100_555;

async fn setup_with(tg: &FakeTelegram, token: &str) -> Harness {
    let (dir, store) = open_store();
    let mut settings = TelegramSettings::new("default", token);
    settings.api_root = tg.url();
    settings.poll_timeout = Duration::from_secs(1);
    settings.watchdog = fast_watchdog();
    settings.store = Some(store.clone());
    let http = pincer_channels::http::build_client().unwrap();
    let adapter: Arc<dyn ChannelAdapter> = Arc::new(TelegramAdapter::new(settings, http));
    harness(adapter, dir, store, &GROUP.to_string()).await
}

/// The update offset the adapter persisted for the default account.
async fn saved_offset(store: &pincer_store::Store) -> Option<i64> {
    store
        .channel_cursor(
            "telegram",
            "default",
            pincer_channels::telegram::OFFSET_CURSOR,
        )
        .await
        .unwrap()
        .map(|o| o.parse().unwrap())
}

async fn setup(tg: &FakeTelegram) -> Harness {
    setup_with(tg, TOKEN).await
}

#[tokio::test]
async fn unknown_dm_gets_a_pairing_code_and_is_routed_after_approval() {
    let tg = FakeTelegram::start(TOKEN).await.unwrap();
    let mut h = setup(&tg).await;
    let ann = FakeUser::new(4242, "Ann");
    tg.inject_dm(&ann, "hello?");
    assert!(
        tg.wait_for(|c| c.iter().any(|c| c.method == "sendMessage"), DEADLINE)
            .await
    );
    let texts = tg.sent_texts();
    assert_eq!(texts.len(), 1);
    let code = pairing_code(&texts[0]);
    assert!(
        texts[0].contains("4242"),
        "names the sender id: {}",
        texts[0]
    );
    // A second message while pending: no new code, nothing dispatched.
    tg.inject_dm(&ann, "still there?");
    h.assert_no_run(Duration::from_millis(600)).await;
    assert_eq!(tg.sent_texts().len(), 1, "the code is sent only once");
    let listed = h.manager.pairing().list("telegram", None).await.unwrap();
    assert_eq!(
        (listed.len(), listed[0].code.as_str(), listed[0].id.as_str()),
        (1, code.as_str(), "4242")
    );
    let approved = h
        .manager
        .pairing()
        .approve("telegram", &code.to_lowercase(), None)
        .await
        .unwrap();
    assert_eq!(approved.id, "4242");
    tg.inject_dm(&ann, "now it works");
    let run = h.next_run().await;
    assert_eq!(
        run.session_key.to_string(),
        "agent:main:telegram:direct:4242"
    );
    assert_eq!(
        (run.body.as_str(), run.message.sender.id.as_str()),
        ("now it works", "4242")
    );
    assert!(h
        .manager
        .pairing()
        .list("telegram", None)
        .await
        .unwrap()
        .is_empty());
    // The offset is persisted: a restart neither replays nor skips.
    assert!(saved_offset(&h.store).await.is_some_and(|o| o > 10_000));
    h.manager.stop_all().await;
}

#[tokio::test]
async fn group_mentions_gate_and_topics_thread() {
    let tg = FakeTelegram::start(TOKEN).await.unwrap();
    let mut h = setup(&tg).await;
    let bo = FakeUser::new(77, "Bo");
    tg.inject_group(GROUP, &bo, "chatting among ourselves", false);
    tg.inject_group(-999, &bo, "@pincer_test_bot not an allowed group", true);
    h.assert_no_run(Duration::from_millis(800)).await;
    tg.inject_group(GROUP, &bo, "what do you think?", true);
    let run = h.next_run().await;
    assert_eq!(
        run.session_key.to_string(),
        format!("agent:main:telegram:group:{GROUP}")
    );
    assert_eq!(run.body, "what do you think?");
    assert_eq!(run.history.len(), 1, "the unmentioned message is context");
    assert!(run.prompt_text().contains(
        "[Chat messages since your last reply - for context]\nBo: chatting among ourselves"
    ));
    tg.inject_topic(GROUP, 42, &bo, "in a topic", true);
    let run = h.next_run().await;
    assert_eq!(
        run.session_key.to_string(),
        format!("agent:main:telegram:group:{GROUP}:topic:42")
    );
    // The reply goes into the topic and quotes the message.
    let responder = h.manager.responder(&run.reply).unwrap();
    responder.typing().await.unwrap();
    responder.deliver("topic answer", &[]).await.unwrap();
    let sent = tg.calls_of("sendMessage");
    let last = sent.last().unwrap();
    assert_eq!(last.body["message_thread_id"], 42);
    assert!(last.body["reply_parameters"]["message_id"].is_i64());
    assert_eq!(
        tg.calls_of("sendChatAction")[0].body["message_thread_id"],
        42
    );
    h.manager.stop_all().await;
}

#[tokio::test]
async fn long_replies_are_chunked_and_previews_edit_in_place() {
    let tg = FakeTelegram::start(TOKEN).await.unwrap();
    let mut h = setup(&tg).await;
    h.manager
        .pairing()
        .store()
        .channel_allow("telegram", "default", "5", 0)
        .await
        .unwrap();
    let cy = FakeUser::new(5, "Cy");
    tg.inject_dm(&cy, "write a lot");
    let run = h.next_run().await;
    let responder = h.manager.responder(&run.reply).unwrap();
    let text = long_reply();
    let sent = responder.deliver(&text, &[]).await.unwrap();
    let texts = tg.sent_texts();
    assert_eq!(sent.len(), texts.len());
    assert_reassembles(&text, &texts, 4000);
    // Streaming preview: one message, then edits.
    let mut preview = responder.preview(Duration::ZERO);
    assert!(preview.update("Thinking").await.unwrap());
    assert!(preview.update("Thinking about it").await.unwrap());
    assert!(
        !preview.update("Thinking about it").await.unwrap(),
        "unchanged text is not re-sent"
    );
    preview.finish("Final answer").await.unwrap();
    let edits = tg.calls_of("editMessageText");
    assert_eq!(edits.len(), 2);
    assert_eq!(edits[1].body["text"], "Final answer");
    h.manager.stop_all().await;
}

#[tokio::test]
async fn dropped_and_stalled_polls_reconnect_without_loss_or_duplicates() {
    let tg = FakeTelegram::start(TOKEN).await.unwrap();
    let mut h = setup(&tg).await;
    h.manager
        .pairing()
        .store()
        .channel_allow("telegram", "default", "6", 0)
        .await
        .unwrap();
    let di = FakeUser::new(6, "Di");
    tg.inject_dm(&di, "one");
    assert_eq!(h.next_run().await.body, "one");
    tg.fail_next_poll(PollFault::Hangup);
    tg.fail_next_poll(PollFault::Stall);
    let polls = tg.polls();
    assert!(tg.wait_for(|_| tg.polls() >= polls + 2, DEADLINE).await);
    for i in 0..5 {
        tg.inject_dm(&di, &format!("msg {i}"));
    }
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(h.next_run().await.body);
    }
    assert_eq!(got, (0..5).map(|i| format!("msg {i}")).collect::<Vec<_>>());
    h.assert_no_run(Duration::from_millis(800)).await;
    let status = h.adapter.status().snapshot();
    assert!(status.reconnects >= 2, "{status:?}");
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("stalled") || e.contains("connection")),
        "{status:?}"
    );
    assert_eq!(status.state, ConnectionState::Running);
    h.manager.stop_all().await;
}

#[tokio::test]
async fn rate_limits_honour_retry_after() {
    let tg = FakeTelegram::start(TOKEN).await.unwrap();
    let mut h = setup(&tg).await;
    h.manager
        .pairing()
        .store()
        .channel_allow("telegram", "default", "8", 0)
        .await
        .unwrap();
    tg.inject_dm(&FakeUser::new(8, "Ed"), "hi");
    let run = h.next_run().await;
    tg.rate_limit("sendMessage", 1, 1);
    let responder = h.manager.responder(&run.reply).unwrap();
    responder.deliver("after the limit", &[]).await.unwrap();
    let calls: Vec<_> = tg
        .calls()
        .into_iter()
        .filter(|c| c.method == "sendMessage")
        .collect();
    assert_eq!(calls.len(), 2);
    assert!(calls[0].rate_limited && !calls[1].rate_limited);
    let waited = calls[1].at - calls[0].at;
    assert!(
        waited >= Duration::from_secs(1),
        "retry_after honoured: waited {waited:?}"
    );
    // Idempotent send: the same key twice sends once.
    let req = pincer_channels::SendRequest {
        channel: "telegram".into(),
        account_id: None,
        to: "8".into(),
        thread_id: None,
        reply_to: None,
        text: "once".into(),
        media: Vec::new(),
        idempotency_key: "k1".into(),
    };
    let (a, b) = tokio::join!(h.manager.send(req.clone()), h.manager.send(req.clone()));
    assert_eq!(a.unwrap(), b.unwrap());
    assert_eq!(tg.sent_texts().iter().filter(|t| *t == "once").count(), 1);
    h.manager.send(req).await.unwrap();
    assert_eq!(tg.sent_texts().iter().filter(|t| *t == "once").count(), 1);
    h.manager.stop_all().await;
}

#[tokio::test]
async fn invalid_token_is_a_clear_status_error() {
    let tg = FakeTelegram::start(TOKEN).await.unwrap();
    let h = setup_with(&tg, "123456:wrong").await;
    let (status, ok) = h
        .adapter
        .status()
        .wait_for(|s| s.state == ConnectionState::Error, DEADLINE)
        .await;
    assert!(ok, "{status:?}");
    let err = status.last_error.unwrap();
    assert!(
        err.contains("rejected the token") && err.contains("401"),
        "{err}"
    );
    assert!(
        !err.contains("wrong"),
        "the token never appears in errors: {err}"
    );
    assert_eq!(
        tg.counters().requests,
        1,
        "no retry loop against a bad token"
    );
    h.manager.stop_all().await;
}

#[tokio::test]
async fn recorded_messages_the_agent_never_took_are_replayed_at_the_next_start() {
    let tg = FakeTelegram::start(TOKEN).await.unwrap();
    let (dir, store) = open_store();
    let adapter = |store: &pincer_store::Store| -> Arc<dyn ChannelAdapter> {
        let mut settings = TelegramSettings::new("default", TOKEN);
        settings.api_root = tg.url();
        settings.poll_timeout = Duration::from_secs(1);
        settings.watchdog = fast_watchdog();
        settings.store = Some(store.clone());
        let http = pincer_channels::http::build_client().unwrap();
        Arc::new(TelegramAdapter::new(settings, http))
    };
    let mut h = harness_with(
        adapter(&store),
        dir,
        store.clone(),
        &GROUP.to_string(),
        true,
    )
    .await;
    let bo = FakeUser::new(77, "Bo");
    let kept = tg.inject_group(GROUP, &bo, "remember me", true);
    // Settled by the pipeline (not an allowed group): marked handled, never replayed.
    tg.inject_group(-999, &bo, "not an allowed group", true);
    let run = h.next_run().await;
    assert_eq!(run.message.message_id, kept.to_string());
    // The offset moved past both updates: Telegram will not send them again.
    assert!(
        tg.wait_for(|_| tg.pending_updates() == 0, DEADLINE).await,
        "offset not confirmed"
    );
    // With the journal the offset is saved in the record's commit, before it is confirmed.
    assert!(saved_offset(&store).await.is_some_and(|o| o > 10_000));
    // "Crash" before the agent took the run: the sink never marked it handled.
    h.manager.stop_all().await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (other_dir, _) = open_store();
    let mut h2 = harness_with(adapter(&store), other_dir, store, &GROUP.to_string(), true).await;
    let replayed = h2.next_run().await;
    assert_eq!(
        (replayed.message.message_id.as_str(), replayed.body.as_str()),
        (kept.to_string().as_str(), "remember me")
    );
    h2.assert_no_run(Duration::from_millis(800)).await;
    h2.manager.stop_all().await;
}
