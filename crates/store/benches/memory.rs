//! `memory_search` over 10,000 memory chunks (target ≤ 5 ms): 500 memory files × 20 chunks of
//! ~60 words from a 2,000-word vocabulary, one agent among three; queries of three words, top 6.
//!
//! Run: `cargo bench -p pincer-store --bench memory`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use pincer_store::{MemoryChunkRow, Store, StoreOptions};

/// xorshift, so the corpus is the same on every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn vocabulary(rng: &mut Rng) -> Vec<String> {
    const SYLLABLES: &[&str] = &[
        "ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "qu", "do", "fe", "gi", "ho",
        "ja",
    ];
    (0..2000)
        .map(|_| {
            let n = 2 + rng.below(3);
            (0..n)
                .map(|_| SYLLABLES[rng.below(SYLLABLES.len())])
                .collect()
        })
        .collect()
}

fn seed(store: &Store, rt: &tokio::runtime::Runtime) -> Vec<String> {
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let words = vocabulary(&mut rng);
    rt.block_on(async {
        for agent in ["main", "ops", "research"] {
            let files = if agent == "main" { 500 } else { 50 };
            for f in 0..files {
                let path = format!("memory/2026-{:02}-{:02}-{f}.md", 1 + f % 12, 1 + f % 28);
                let chunks: Vec<MemoryChunkRow> = (0..20u32)
                    .map(|i| {
                        let text: Vec<&str> = (0..60)
                            .map(|_| words[rng.below(words.len())].as_str())
                            .collect();
                        MemoryChunkRow {
                            path: path.clone(),
                            start_line: i * 5 + 1,
                            end_line: i * 5 + 4,
                            heading: Some(format!("Section {i}")),
                            text: text.join(" "),
                            hash: format!("{f}-{i}"),
                        }
                    })
                    .collect();
                store
                    .memory_replace_file(agent, &path, &format!("file-{f}"), chunks, 1)
                    .await
                    .unwrap();
            }
        }
    });
    words
}

fn bench_memory_search(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("bench.sqlite"), StoreOptions::default()).unwrap();
    let words = seed(&store, &rt);
    let mut rng = Rng(42);
    let queries: Vec<String> = (0..64)
        .map(|_| {
            (0..3)
                .map(|_| words[rng.below(words.len())].as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let hits = rt
        .block_on(store.memory_search("main", &queries[0], 6, 0.0))
        .unwrap();
    assert!(!hits.is_empty(), "the corpus answers the benchmark queries");
    let mut i = 0;
    c.bench_function("memory_search/10k_chunks_top6", |b| {
        b.iter(|| {
            i = (i + 1) % queries.len();
            rt.block_on(store.memory_search("main", &queries[i], 6, 0.0))
                .unwrap()
        })
    });
    rt.block_on(store.close());
}

criterion_group!(benches, bench_memory_search);
criterion_main!(benches);
