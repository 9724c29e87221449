//! Inbound overhead: one message through the whole pipeline (dedupe, DM policy with the
//! approved-sender cache, commands, routing, session key) to a counting run sink; and a burst
//! of 1,000 messages across 100 DM senders, checked for loss.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pincer_channels::adapter::{Capabilities, ChannelAdapter, InboundSender};
use pincer_channels::chunk::Measure;
use pincer_channels::pipeline::{InboundRun, RunSink, SinkError};
use pincer_channels::{
    ChannelMessage, ChatType, Conversation, Disposition, InboundPipeline, OutboundMessage, Pairing,
    PipelineSettings, Router, SentMessage, StatusHandle,
};
use pincer_store::{Durability, Store, StoreOptions};

struct NullAdapter {
    caps: Capabilities,
    status: StatusHandle,
}

#[async_trait]
impl ChannelAdapter for NullAdapter {
    fn channel(&self) -> &'static str {
        "telegram"
    }
    fn account_id(&self) -> &str {
        "default"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    fn status(&self) -> StatusHandle {
        self.status.clone()
    }
    async fn start(&self, _inbound: InboundSender) -> pincer_channels::Result<()> {
        Ok(())
    }
    async fn stop(&self) {}
    async fn send(&self, m: &OutboundMessage) -> pincer_channels::Result<SentMessage> {
        Ok(SentMessage {
            chat_id: m.conversation.chat_id.clone(),
            message_id: "1".into(),
        })
    }
}

struct CountingSink(AtomicU64);

#[async_trait]
impl RunSink for CountingSink {
    async fn dispatch(&self, run: InboundRun) -> Result<(), SinkError> {
        std::hint::black_box(&run.session_key);
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn dm(sender: u64, id: u64) -> ChannelMessage {
    ChannelMessage::text(
        Conversation {
            channel: "telegram".into(),
            account_id: "default".into(),
            chat_type: ChatType::Direct,
            chat_id: sender.to_string(),
            thread_id: None,
        },
        &id.to_string(),
        &sender.to_string(),
        "hello there, what is the weather like today?",
    )
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_state_dir(
        dir.path(),
        StoreOptions {
            durability: Durability::Normal,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    rt.block_on(async {
        for s in 0..100u64 {
            store
                .channel_allow("telegram", "default", &s.to_string(), 0)
                .await
                .unwrap();
        }
    });
    let adapter = Arc::new(NullAdapter {
        caps: Capabilities {
            text_limit: 4000,
            edit_limit: 4096,
            measure: Measure::Utf16,
            max_lines: None,
            threads: true,
            edits: true,
            typing: true,
            reply_to: true,
            media_max_bytes: 1 << 20,
            media_uploads: false,
        },
        status: StatusHandle::new("telegram", "default"),
    });
    let sink = Arc::new(CountingSink(AtomicU64::new(0)));
    let pipeline = InboundPipeline::new(
        adapter,
        PipelineSettings::default(),
        Router::new(&[], &[], None),
        Pairing::new(store.clone()),
        sink.clone(),
    );
    let next_id = AtomicU64::new(1);
    // Warm the approved-sender cache.
    rt.block_on(async {
        assert_eq!(pipeline.process(dm(1, 0)).await, Disposition::Dispatched);
    });
    let mut g = c.benchmark_group("inbound");
    g.throughput(Throughput::Elements(1));
    g.bench_function("dm_to_run_sink", |b| {
        b.to_async(&rt).iter(|| {
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let p = pipeline.clone();
            async move {
                let d = p.process(dm(id % 100, id)).await;
                debug_assert_eq!(d, Disposition::Dispatched);
            }
        })
    });
    g.throughput(Throughput::Elements(1000));
    g.bench_function("burst_1000_across_100_dm_sessions", |b| {
        b.to_async(&rt).iter(|| {
            let p = pipeline.clone();
            let sink = sink.clone();
            let base = next_id.fetch_add(1000, Ordering::Relaxed);
            async move {
                let before = sink.0.load(Ordering::Relaxed);
                // 100 concurrent senders, 10 messages each, like 100 busy DM sessions.
                let tasks: Vec<_> = (0..100u64)
                    .map(|s| {
                        let p = p.clone();
                        tokio::spawn(async move {
                            for k in 0..10u64 {
                                p.process(dm(s, base + s * 10 + k)).await;
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.unwrap();
                }
                let delivered = sink.0.load(Ordering::Relaxed) - before;
                assert_eq!(delivered, 1000, "messages lost");
            }
        })
    });
    g.finish();
    rt.block_on(store.close());
}

criterion_group!(benches, bench);
criterion_main!(benches);
