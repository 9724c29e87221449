use std::sync::Arc;
use std::time::Duration;

use pincer_channels::discord::{DiscordAdapter, DiscordSettings};
use pincer_channels::status::ConnectionState;
use pincer_channels::ChannelAdapter;
use pincer_fakes::discord::{FakeDiscord, FakeUser, INTENT_MESSAGE_CONTENT};

use crate::common::*;

const TOKEN: &str = "discord-test-token";
const GUILD: &str = "G100";
const CHANNEL: &str = "C200";

async fn setup_with(dc: &FakeDiscord, token: &str) -> (Harness, Arc<DiscordAdapter>) {
    let (dir, store) = open_store();
    let mut settings = DiscordSettings::new("default", token);
    settings.api_base = dc.api_base();
    settings.watchdog = fast_watchdog();
    settings.invalid_session_delay = Duration::from_millis(50);
    let http = pincer_channels::http::build_client().unwrap();
    let adapter = Arc::new(DiscordAdapter::new(settings, http).unwrap());
    let dyn_adapter: Arc<dyn ChannelAdapter> = adapter.clone();
    (harness(dyn_adapter, dir, store, GUILD).await, adapter)
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
async fn pairing_then_dm_and_identify_with_intents() {
    let dc = FakeDiscord::start(TOKEN).await.unwrap();
    let (mut h, _a) = setup_with(&dc, TOKEN).await;
    connected(&h).await;
    assert_eq!(dc.identifies(), 1);
    assert_ne!(
        dc.intents() & INTENT_MESSAGE_CONTENT,
        0,
        "message content intent requested"
    );
    let ann = FakeUser::new("U1", "ann");
    dc.inject_dm(&ann, "hello");
    assert!(
        dc.wait_for(|d| !d.sent_messages().is_empty(), DEADLINE)
            .await
    );
    let (channel, text) = dc.sent_messages()[0].clone();
    assert_eq!(channel, "dm-U1");
    let code = pairing_code(&text);
    h.manager
        .pairing()
        .approve("discord", &code, Some("default"))
        .await
        .unwrap();
    dc.inject_dm(&ann, "let's talk");
    let run = h.next_run().await;
    assert_eq!(run.session_key.to_string(), "agent:main:discord:direct:u1");
    assert_eq!(run.body, "let's talk");
    // Outbound send to a user opens the DM channel first.
    let sent = h
        .manager
        .send(pincer_channels::SendRequest {
            channel: "discord".into(),
            account_id: None,
            to: "user:U1".into(),
            thread_id: None,
            reply_to: None,
            text: "proactive".into(),
            media: Vec::new(),
            idempotency_key: "d1".into(),
        })
        .await
        .unwrap();
    assert_eq!(sent.chat_id, "dm-U1");
    h.manager.stop_all().await;
}

#[tokio::test]
async fn guild_mentions_threads_and_chunking() {
    let dc = FakeDiscord::start(TOKEN).await.unwrap();
    let (mut h, _a) = setup_with(&dc, TOKEN).await;
    connected(&h).await;
    let bo = FakeUser::new("U2", "bo");
    dc.inject_guild_message(GUILD, CHANNEL, &bo, "no mention here", false);
    dc.inject_guild_message("G-other", "C999", &bo, "other guild", true);
    h.assert_no_run(Duration::from_millis(800)).await;
    dc.inject_guild_message(GUILD, CHANNEL, &bo, "help me", true);
    let run = h.next_run().await;
    assert_eq!(
        run.session_key.to_string(),
        format!("agent:main:discord:channel:{}", CHANNEL.to_lowercase())
    );
    assert_eq!((run.body.as_str(), run.history.len()), ("help me", 1));
    dc.inject_thread_message(GUILD, "T300", CHANNEL, &bo, "in a thread", true);
    let run = h.next_run().await;
    assert_eq!(
        run.session_key.to_string(),
        "agent:main:discord:channel:c200:thread:t300"
    );
    let responder = h.manager.responder(&run.reply).unwrap();
    responder.typing().await.unwrap();
    let text = long_reply();
    responder.deliver(&text, &[]).await.unwrap();
    let sent: Vec<String> = dc
        .sent_messages()
        .into_iter()
        .filter(|(c, _)| c == "T300")
        .map(|(_, t)| t)
        .collect();
    assert_reassembles(&text, &sent, 2000);
    assert!(
        sent.iter().all(|c| c.lines().count() <= 17),
        "maxLinesPerMessage"
    );
    assert!(dc
        .calls()
        .iter()
        .any(|c| c.method == "POST" && c.path == "/channels/T300/typing"));
    h.manager.stop_all().await;
}

#[tokio::test]
async fn dropped_connections_resume_and_zombies_reconnect_without_loss() {
    let dc = FakeDiscord::start(TOKEN).await.unwrap();
    dc.set_heartbeat_interval(Duration::from_millis(300));
    let (mut h, adapter) = setup_with(&dc, TOKEN).await;
    connected(&h).await;
    h.manager
        .pairing()
        .store()
        .channel_allow("discord", "default", "U3", 0)
        .await
        .unwrap();
    let cy = FakeUser::new("U3", "cy");
    dc.inject_dm(&cy, "before");
    assert_eq!(h.next_run().await.body, "before");
    // Drop the TCP connection, then send while the bot is away.
    dc.drop_connections();
    for i in 0..3 {
        dc.inject_dm(&cy, &format!("while away {i}"));
    }
    for i in 0..3 {
        assert_eq!(h.next_run().await.body, format!("while away {i}"));
    }
    assert!(dc.wait_for(|d| d.resumes() >= 1, DEADLINE).await);
    assert_eq!(dc.identifies(), 1, "resumed, not re-identified");
    // Zombie: heartbeats stop being acknowledged.
    dc.set_ack_heartbeats(false);
    assert!(
        dc.wait_for(
            |_| adapter.gateway_counters().zombie_reconnects >= 1,
            DEADLINE
        )
        .await
    );
    dc.set_ack_heartbeats(true);
    dc.inject_dm(&cy, "after zombie");
    assert_eq!(h.next_run().await.body, "after zombie");
    // op 7 Reconnect and a resumable op 9 keep the session.
    dc.request_reconnect();
    dc.inject_dm(&cy, "after reconnect");
    assert_eq!(h.next_run().await.body, "after reconnect");
    h.assert_no_run(Duration::from_millis(700)).await;
    assert_eq!(dc.identifies(), 1);
    // A non-resumable invalid session forces a new identify.
    dc.invalidate_session(false);
    assert!(dc.wait_for(|d| d.identifies() == 2, DEADLINE).await);
    connected(&h).await;
    h.manager.stop_all().await;
}

#[tokio::test]
async fn rate_limit_buckets_and_global_429_are_honoured() {
    let dc = FakeDiscord::start(TOKEN).await.unwrap();
    let (mut h, _a) = setup_with(&dc, TOKEN).await;
    connected(&h).await;
    h.manager
        .pairing()
        .store()
        .channel_allow("discord", "default", "U4", 0)
        .await
        .unwrap();
    dc.inject_dm(&FakeUser::new("U4", "di"), "hi");
    let run = h.next_run().await;
    dc.rate_limit("/messages", 1, 0.8, true);
    let responder = h.manager.responder(&run.reply).unwrap();
    responder.deliver("limited", &[]).await.unwrap();
    let posts: Vec<_> = dc
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/messages"))
        .collect();
    assert_eq!(posts.len(), 2);
    assert!(posts[0].rate_limited);
    assert!(
        posts[1].at - posts[0].at >= Duration::from_millis(800),
        "waited {:?}",
        posts[1].at - posts[0].at
    );
    h.manager.stop_all().await;
}

#[tokio::test]
async fn invalid_token_closes_4004_and_stops() {
    let dc = FakeDiscord::start(TOKEN).await.unwrap();
    let mut settings = DiscordSettings::new("default", "wrong");
    settings.api_base = dc.api_base();
    settings.gateway_url = Some(dc.gateway_url());
    settings.watchdog = fast_watchdog();
    let adapter = Arc::new(
        DiscordAdapter::new(settings, pincer_channels::http::build_client().unwrap()).unwrap(),
    );
    let (dir, store) = open_store();
    let h = harness(adapter, dir, store, GUILD).await;
    let (status, ok) = h
        .adapter
        .status()
        .wait_for(|s| s.state == ConnectionState::Error, DEADLINE)
        .await;
    assert!(ok, "{status:?}");
    let err = status.last_error.unwrap();
    assert!(
        err.contains("rejected the token") && err.contains("4004"),
        "{err}"
    );
    assert_eq!(dc.identifies(), 0);
    // Without a configured gateway URL the REST call itself reports 401.
    let (h2, _) = setup_with(&dc, "wrong").await;
    let (status, ok) = h2
        .adapter
        .status()
        .wait_for(|s| s.state == ConnectionState::Error, DEADLINE)
        .await;
    assert!(ok && status.last_error.unwrap().contains("401"));
    h.manager.stop_all().await;
    h2.manager.stop_all().await;
}
