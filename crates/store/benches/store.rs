//! Store benchmarks: durable transcript appends, the last 200 entries of a 100k-entry
//! session, sessions.list over 10k sessions, and open time with 10k sessions.
//!
//! Run: `cargo bench -p pincer-store`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pincer_sessions::{SessionKey, TranscriptEntry};
use pincer_store::{
    AppendOptions, EnsureSession, EntryFilter, HistoryQuery, ListQuery, Store, StoreOptions,
};
use serde_json::json;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn key(i: usize) -> SessionKey {
    SessionKey::canonicalize(&format!("agent:main:bench:{i}"), "main").unwrap()
}

fn message(i: u64) -> TranscriptEntry {
    TranscriptEntry::message(
        None,
        1_795_236_198_656,
        json!({"role": if i % 2 == 0 { "user" } else { "assistant" },
               "content": [{"type": "text", "text": format!("message {i}: the quick brown fox jumps over the lazy dog")}],
               "timestamp": 1_795_236_198_656u64}),
    )
}

fn opts() -> AppendOptions {
    AppendOptions {
        chain: true,
        now_ms: 1,
        ..Default::default()
    }
}

/// Durable (synchronous=FULL) appends of one entry each, from many concurrent writers (the
/// gateway's shape: many sessions' runs appending at once), so group commit can batch.
fn bench_append(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("bench.sqlite"), StoreOptions::default()).unwrap();
    const SESSIONS: usize = 64;
    rt.block_on(async {
        for i in 0..SESSIONS {
            store
                .ensure_session(&key(i), EnsureSession::at(1))
                .await
                .unwrap();
        }
    });
    let mut group = c.benchmark_group("transcript_append");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function("durable_single_entry_64_writers", |b| {
        b.iter_custom(|iters| {
            let store = store.clone();
            rt.block_on(async move {
                let per = iters.div_ceil(SESSIONS as u64);
                let start = Instant::now();
                let mut tasks = Vec::new();
                for w in 0..SESSIONS {
                    let store = store.clone();
                    tasks.push(tokio::spawn(async move {
                        let k = key(w);
                        for i in 0..per {
                            store.append(&k, vec![message(i)], opts()).await.unwrap();
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per * SESSIONS as u64) as f64)
            })
        })
    });
    group.bench_function("durable_single_entry_1_writer", |b| {
        b.iter_custom(|iters| {
            let store = store.clone();
            rt.block_on(async move {
                let k = key(0);
                let start = Instant::now();
                for i in 0..iters {
                    store.append(&k, vec![message(i)], opts()).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn bench_history(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("bench.sqlite"), StoreOptions::default()).unwrap();
    let k = key(0);
    rt.block_on(async {
        store
            .ensure_session(&k, EnsureSession::at(1))
            .await
            .unwrap();
        for chunk in 0..100u64 {
            let batch: Vec<_> = (0..1000).map(|i| message(chunk * 1000 + i)).collect();
            store.append(&k, batch, opts()).await.unwrap();
        }
        let counts = store
            .counts(
                &store
                    .get_session(&k)
                    .await
                    .unwrap()
                    .unwrap()
                    .entry
                    .session_id,
            )
            .await
            .unwrap();
        assert_eq!(counts.messages, 100_000);
    });
    let mut group = c.benchmark_group("chat_history");
    group.sample_size(50);
    group.bench_function("last_200_of_100k", |b| {
        b.iter(|| {
            rt.block_on(async {
                let page = store
                    .history(
                        &k,
                        HistoryQuery {
                            limit: 200,
                            cursor: None,
                            filter: EntryFilter::Messages,
                        },
                    )
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(page.entries.len(), 200);
                page
            })
        })
    });
    group.finish();
}

async fn populate_sessions(store: &Store, n: usize) {
    let mut tasks = Vec::new();
    let store = Arc::new(store.clone());
    for w in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in (w..n).step_by(16) {
                let mut req = EnsureSession::at(1_000 + i as i64);
                req.template = Some(pincer_sessions::SessionEntry {
                    label: Some(format!("label {i}")),
                    ..Default::default()
                });
                store.ensure_session(&key(i), req).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn bench_list_and_open(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.sqlite");
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    rt.block_on(populate_sessions(&store, 10_000));
    let mut group = c.benchmark_group("sessions_list");
    group.sample_size(50);
    group.bench_function("first_page_of_10k", |b| {
        b.iter(|| {
            rt.block_on(async {
                let page = store.list_sessions(ListQuery::default()).await.unwrap();
                assert_eq!(page.total_count, 10_000);
                page
            })
        })
    });
    group.bench_function("search_10k", |b| {
        b.iter(|| {
            rt.block_on(async {
                let q = ListQuery {
                    search: Some("label 99".into()),
                    ..Default::default()
                };
                store.list_sessions(q).await.unwrap()
            })
        })
    });
    group.finish();
    rt.block_on(store.close());

    let mut group = c.benchmark_group("open");
    group.sample_size(20);
    group.bench_function("open_with_10k_sessions", |b| {
        b.iter(|| {
            let s = Store::open(&path, StoreOptions::default()).unwrap();
            rt.block_on(s.close());
        })
    });
    group.finish();
}

criterion_group!(benches, bench_append, bench_history, bench_list_and_open);
criterion_main!(benches);
