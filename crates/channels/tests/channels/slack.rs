use std::sync::Arc;
use std::time::Duration;

use pincer_channels::slack::{SlackAdapter, SlackSettings};
use pincer_channels::status::ConnectionState;
use pincer_channels::ChannelAdapter;
use pincer_fakes::slack::FakeSlack;

use crate::common::*;

const BOT: &str = "xoxb-test";
const APP: &str = "xapp-test";
const CHAN: &str = "C0CHAN";

async fn setup_with(sl: &FakeSlack, bot: &str, app: &str) -> Harness {
    let (dir, store) = open_store();
    let mut settings = SlackSettings::new("default", bot, app);
    settings.api_base = sl.api_base();
    settings.watchdog = fast_watchdog();
    settings.ping_interval = Duration::from_millis(500);
    let adapter: Arc<dyn ChannelAdapter> = Arc::new(
        SlackAdapter::new(settings, pincer_channels::http::build_client().unwrap()).unwrap(),
    );
    harness(adapter, dir, store, CHAN).await
}

async fn connected(h: &Harness) {
    let (s, ok) = h
        .adapter
        .status()
        .wait_for(|s| s.state == ConnectionState::Running, DEADLINE)
        .await;
    assert!(ok, "{s:?}");
}

#[tokio::test]
async fn pairing_then_dm_with_acks() {
    let sl = FakeSlack::start(BOT, APP).await.unwrap();
    let mut h = setup_with(&sl, BOT, APP).await;
    connected(&h).await;
    sl.inject_dm("U1", "hello");
    assert!(sl.wait_for(|s| !s.posted().is_empty(), DEADLINE).await);
    let (channel, text, _) = sl.posted()[0].clone();
    assert_eq!(channel, "DU1");
    let code = pairing_code(&text);
    h.manager
        .pairing()
        .approve("slack", &code, None)
        .await
        .unwrap();
    sl.inject_dm("U1", "now?");
    let run = h.next_run().await;
    assert_eq!(run.session_key.to_string(), "agent:main:slack:direct:u1");
    assert!(
        sl.wait_for(|s| s.unacked() == 0 && s.acked().len() == 2, DEADLINE)
            .await,
        "every envelope acknowledged"
    );
    h.manager.stop_all().await;
}

#[tokio::test]
async fn channel_mentions_threads_and_chunking() {
    let sl = FakeSlack::start(BOT, APP).await.unwrap();
    let mut h = setup_with(&sl, BOT, APP).await;
    connected(&h).await;
    sl.inject_channel(CHAN, "U2", "side talk", false);
    sl.inject_channel("C0OTHER", "U2", "not allowed", true);
    h.assert_no_run(Duration::from_millis(800)).await;
    let root = sl.inject_channel(CHAN, "U2", "summarise please", true);
    let run = h.next_run().await;
    assert_eq!(
        run.session_key.to_string(),
        "agent:main:slack:channel:c0chan"
    );
    assert_eq!(
        (run.body.as_str(), run.history.len()),
        ("summarise please", 1)
    );
    sl.inject_thread(CHAN, &root, "U2", "follow-up in thread", true);
    let run = h.next_run().await;
    assert_eq!(
        run.session_key.to_string(),
        format!("agent:main:slack:channel:c0chan:thread:{root}")
    );
    let responder = h.manager.responder(&run.reply).unwrap();
    let text = long_reply();
    responder.deliver(&text, &[]).await.unwrap();
    let posts: Vec<(String, String, Option<String>)> = sl
        .posted()
        .into_iter()
        .filter(|p| p.2.as_deref() == Some(root.as_str()))
        .collect();
    assert!(posts.len() >= 2, "{} posts", posts.len());
    let chunks: Vec<String> = posts.into_iter().map(|p| p.1).collect();
    assert_reassembles(&text, &chunks, 8000);
    // Once the bot replied in the thread, participation counts as a mention.
    sl.inject_thread(CHAN, &root, "U2", "and without a mention?", false);
    assert_eq!(h.next_run().await.body, "and without a mention?");
    h.manager.stop_all().await;
}

#[tokio::test]
async fn disconnects_drops_and_stalls_recover_without_loss_or_duplicates() {
    let sl = FakeSlack::start(BOT, APP).await.unwrap();
    let mut h = setup_with(&sl, BOT, APP).await;
    connected(&h).await;
    h.manager
        .pairing()
        .store()
        .channel_allow("slack", "default", "U3", 0)
        .await
        .unwrap();
    sl.inject_dm("U3", "first");
    assert_eq!(h.next_run().await.body, "first");
    sl.send_disconnect("refresh_requested");
    assert!(
        sl.wait_for(
            |s| s.connections_total() >= 2 && s.connections() == 1,
            DEADLINE
        )
        .await
    );
    sl.drop_connections();
    sl.inject_dm("U3", "while dropped");
    assert_eq!(h.next_run().await.body, "while dropped");
    // A stalled socket: the message arrives but its ack is never read, so Slack redelivers
    // it on the next connection; the pipeline must not deliver it twice.
    assert!(
        sl.wait_for(|s| s.connections() == 1 && s.unacked() == 0, DEADLINE)
            .await
    );
    let before = sl.connections_total();
    sl.stall_connections();
    sl.inject_dm("U3", "during stall");
    assert!(
        sl.wait_for(
            |s| s.connections_total() > before && s.unacked() == 0,
            DEADLINE
        )
        .await
    );
    let mut bodies = Vec::new();
    while let Ok(Some(run)) = tokio::time::timeout(Duration::from_millis(1500), h.runs.recv()).await
    {
        bodies.push(run.body);
    }
    assert!(
        bodies.len() <= 1 && bodies.iter().all(|b| b == "during stall"),
        "{bodies:?}"
    );
    let status = h.adapter.status().snapshot();
    assert!(status.reconnects >= 3, "{status:?}");
    h.manager.stop_all().await;
}

#[tokio::test]
async fn rate_limits_and_invalid_tokens() {
    let sl = FakeSlack::start(BOT, APP).await.unwrap();
    let mut h = setup_with(&sl, BOT, APP).await;
    connected(&h).await;
    h.manager
        .pairing()
        .store()
        .channel_allow("slack", "default", "U4", 0)
        .await
        .unwrap();
    sl.inject_dm("U4", "hi");
    let run = h.next_run().await;
    sl.rate_limit("chat.postMessage", 1, 1);
    h.manager
        .responder(&run.reply)
        .unwrap()
        .deliver("after 429", &[])
        .await
        .unwrap();
    let calls: Vec<_> = sl
        .calls()
        .into_iter()
        .filter(|c| c.method == "chat.postMessage")
        .collect();
    assert_eq!(calls.len(), 2);
    assert!(calls[1].at - calls[0].at >= Duration::from_secs(1));
    h.manager.stop_all().await;

    let bad = setup_with(&sl, BOT, "xapp-wrong").await;
    let (status, ok) = bad
        .adapter
        .status()
        .wait_for(|s| s.state == ConnectionState::Error, DEADLINE)
        .await;
    assert!(ok, "{status:?}");
    let err = status.last_error.unwrap();
    assert!(
        err.contains("rejected the token") && err.contains("apps.connections.open: invalid_auth"),
        "{err}"
    );
    bad.manager.stop_all().await;
}
