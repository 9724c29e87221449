use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pincer_backoff::Backoff;
use pincer_channels::chunk::ChunkMode;
use pincer_channels::pipeline::{InboundRun, RunSink, SinkError};
use pincer_channels::policy::{AccessPolicy, GroupRule};
use pincer_channels::watchdog::WatchdogConfig;
use pincer_channels::{
    ChannelAdapter, ChannelManager, InboundPipeline, Pairing, PipelineSettings, ReplyToMode, Router,
};
use pincer_store::{Store, StoreOptions};
use tokio::sync::mpsc;

/// Generous deadline: only detects hangs.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Records every run the pipeline dispatches.
pub struct RecordingSink {
    tx: mpsc::UnboundedSender<InboundRun>,
}

#[async_trait]
impl RunSink for RecordingSink {
    async fn dispatch(&self, run: InboundRun) -> Result<(), SinkError> {
        self.tx
            .send(run)
            .map_err(|_| SinkError::Rejected("closed".into()))
    }
}

pub struct Harness {
    pub manager: ChannelManager,
    pub runs: mpsc::UnboundedReceiver<InboundRun>,
    pub adapter: Arc<dyn ChannelAdapter>,
    pub store: Store,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// Next dispatched run (panics after the deadline).
    pub async fn next_run(&mut self) -> InboundRun {
        tokio::time::timeout(DEADLINE, self.runs.recv())
            .await
            .expect("no run dispatched in time")
            .expect("sink closed")
    }

    /// Asserts nothing is dispatched for `quiet`.
    pub async fn assert_no_run(&mut self, quiet: Duration) {
        if let Ok(Some(run)) = tokio::time::timeout(quiet, self.runs.recv()).await {
            panic!(
                "unexpected run: {:?} {:?}",
                run.session_key.to_string(),
                run.body
            );
        }
    }
}

pub fn fast_watchdog() -> WatchdogConfig {
    WatchdogConfig {
        stall_timeout: Duration::from_secs(3),
        backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(500)),
        healthy_after: Duration::from_secs(60),
    }
}

/// The store, opened in a temp dir (the adapter may need it before the harness exists).
pub fn open_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_state_dir(dir.path(), StoreOptions::default()).unwrap();
    (dir, store)
}

/// A manager with one account: pairing DMs, `group_id` allowlisted (mention required).
pub async fn harness(
    adapter: Arc<dyn ChannelAdapter>,
    dir: tempfile::TempDir,
    store: Store,
    group_id: &str,
) -> Harness {
    harness_with(adapter, dir, store, group_id, false).await
}

/// [`harness`] with the inbound journal on (recorded before acknowledging, replayed at start).
pub async fn harness_with(
    adapter: Arc<dyn ChannelAdapter>,
    dir: tempfile::TempDir,
    store: Store,
    group_id: &str,
    journal: bool,
) -> Harness {
    let mut access = AccessPolicy::new();
    access.groups.insert(
        group_id.to_string(),
        GroupRule {
            enabled: true,
            require_mention: None,
            allow_from: Vec::new(),
        },
    );
    let settings = PipelineSettings {
        access,
        keys: pincer_channels::pipeline::KeySettings {
            dm_scope: pincer_sessions::DmScope::PerChannelPeer,
            ..Default::default()
        },
        ..PipelineSettings::default()
    };
    let (tx, runs) = mpsc::unbounded_channel();
    let pairing = Pairing::new(store.clone());
    let pipeline = InboundPipeline::new(
        adapter.clone(),
        settings,
        Router::new(&[], &[], None),
        pairing.clone(),
        Arc::new(RecordingSink { tx }),
    );
    let mut manager = ChannelManager::new(pairing);
    if journal {
        manager = manager.with_journal(pincer_channels::Journal::new(store.clone()));
    }
    manager.add(
        pipeline,
        adapter.clone(),
        ReplyToMode::First,
        ChunkMode::Length,
    );
    manager.start(adapter.channel(), None).await.unwrap();
    Harness {
        manager,
        runs,
        adapter,
        store,
        _dir: dir,
    }
}

/// Extracts the pairing code from the pairing reply text.
pub fn pairing_code(text: &str) -> String {
    let code = text
        .lines()
        .find_map(|l| l.strip_prefix("Pairing code: "))
        .expect("pairing reply carries a code")
        .trim()
        .to_string();
    assert!(pincer_channels::pairing::is_valid_code(&code), "{code}");
    code
}

/// A 10,000-character reply with code fences in it.
pub fn long_reply() -> String {
    let mut text = String::new();
    let mut block = 0;
    while text.chars().count() < 10_000 {
        text.push_str(&format!(
            "Paragraph {block}: here is some prose before a code block.\n\n```rust\n"
        ));
        for i in 0..25 {
            text.push_str(&format!("let value_{block}_{i} = compute({i}); // line\n"));
        }
        text.push_str("```\n\n");
        block += 1;
    }
    text
}

/// Every chunk has balanced fences and all code lines arrived exactly once, in order.
pub fn assert_reassembles(original: &str, chunks: &[String], limit: usize) {
    assert!(
        chunks.len() >= original.chars().count() / limit,
        "{} chunks",
        chunks.len()
    );
    for c in chunks {
        assert!(
            c.encode_utf16().count() <= limit,
            "chunk of {} > {limit}",
            c.chars().count()
        );
        let fences = c
            .lines()
            .filter(|l| l.trim_start().starts_with("```"))
            .count();
        assert_eq!(fences % 2, 0, "unbalanced fences in chunk:\n{c}");
    }
    let sent: Vec<&str> = chunks
        .iter()
        .flat_map(|c| c.lines())
        .filter(|l| l.starts_with("let value_"))
        .collect();
    let want: Vec<&str> = original
        .lines()
        .filter(|l| l.starts_with("let value_"))
        .collect();
    assert_eq!(sent, want);
}
