//! `memory_search` over 10,000 memory chunks (target ≤ 5 ms), top 6:
//! - `10k_chunks_top6`: 500 memory files × 20 chunks of ~60 words from a 2,000-word synthetic
//!   vocabulary (every word equally rare), one agent among three; queries of three words.
//! - `10k_chunks_markdown_top6`: 500 daily notes × 20 markdown chunks (a heading, prose and
//!   bullets) of English-like text: common words follow a Zipf law, so "the", "to", "we" are
//!   in nearly every chunk, as in real notes; natural-language questions as queries. Every
//!   query term is OR-ed, so a question's stop words match most of the index.
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

/// A runtime and an empty store in a tempdir (kept alive by the returned guard).
fn fresh_store() -> (tokio::runtime::Runtime, tempfile::TempDir, Store) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("bench.sqlite"), StoreOptions::default()).unwrap();
    (rt, dir, store)
}

fn bench_memory_search(c: &mut Criterion) {
    let (rt, _dir, store) = fresh_store();
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

/// Common English words, most frequent first (weights follow 1/rank).
const COMMON: &[&str] = &[
    "the", "to", "and", "a", "of", "we", "in", "is", "for", "it", "on", "that", "with", "this",
    "be", "i", "not", "are", "at", "so", "but", "was", "from", "have", "will", "as", "can",
    "should", "next", "after", "before", "still", "need", "again", "new", "old", "when", "if",
    "then", "all", "one", "two", "more", "less", "up", "out", "now", "today", "tomorrow", "week",
];
/// The subjects notes are about.
const TOPICS: &[&str] = &[
    "deploy",
    "database",
    "migration",
    "api",
    "gateway",
    "token",
    "rotation",
    "staging",
    "production",
    "backup",
    "invoice",
    "budget",
    "meeting",
    "roadmap",
    "release",
    "bug",
    "latency",
    "cache",
    "index",
    "schema",
    "customer",
    "contract",
    "travel",
    "flight",
    "hotel",
    "dentist",
    "birthday",
    "garden",
    "recipe",
    "bicycle",
    "insurance",
    "tax",
    "rent",
    "lease",
    "laptop",
    "keyboard",
    "monitor",
    "router",
    "vpn",
    "certificate",
    "dns",
    "email",
    "calendar",
    "review",
    "interview",
    "hiring",
    "onboarding",
    "vacation",
    "doctor",
    "groceries",
    "car",
    "repair",
    "kubernetes",
    "postgres",
    "sqlite",
    "rust",
    "python",
    "docker",
    "terraform",
    "alerting",
    "oncall",
    "incident",
    "postmortem",
    "retro",
    "sprint",
    "estimate",
    "design",
];
const NAMES: &[&str] = &[
    "Alice", "Bob", "Carol", "Dmitri", "Erin", "Farah", "Gus", "Hana", "Ivan", "Jules", "Kenji",
    "Lena", "Marco", "Nia", "Omar", "Priya",
];
const QUESTIONS: &[&str] = &[
    "what did we decide about the database migration",
    "when is the next deploy to production",
    "Alice token rotation schedule",
    "where did I put the insurance contract",
    "how much was the hotel for the flight to Lisbon",
    "what is the status of the latency bug in the gateway",
    "who is oncall this week",
    "recipe for the birthday dinner",
    "should we move the cache index to postgres",
    "notes from the interview with Kenji",
    "the dentist appointment",
    "tax and rent budget for next year",
];

/// A Zipf draw: index `i` of `n` with weight 1/(i+1).
fn zipf(rng: &mut Rng, n: usize) -> usize {
    let h: f64 = (1..=n).map(|k| 1.0 / k as f64).sum();
    let mut x = (rng.next() % 1_000_000) as f64 / 1_000_000.0 * h;
    for k in 0..n {
        x -= 1.0 / (k + 1) as f64;
        if x <= 0.0 {
            return k;
        }
    }
    n - 1
}

fn sentence(rng: &mut Rng) -> String {
    let len = 8 + rng.below(10);
    let words: Vec<&str> = (0..len)
        .map(|_| match rng.below(10) {
            0..=5 => COMMON[zipf(rng, COMMON.len())],
            6..=8 => TOPICS[zipf(rng, TOPICS.len())],
            _ => NAMES[rng.below(NAMES.len())],
        })
        .collect();
    let mut s = words.join(" ");
    if let Some(first) = s.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    s.push('.');
    s
}

/// One markdown chunk: a heading, a paragraph and a few bullets (~60–120 words).
fn markdown_chunk(rng: &mut Rng, i: u32) -> (String, String) {
    let heading = format!(
        "{} {}",
        TOPICS[zipf(rng, TOPICS.len())],
        ["notes", "plan", "todo", "decision", "follow-up"][rng.below(5)]
    );
    let mut text = format!("## {heading}\n\n");
    for _ in 0..2 + rng.below(3) {
        text.push_str(&sentence(rng));
        text.push(' ');
    }
    text.push_str("\n\n");
    for _ in 0..rng.below(4) {
        text.push_str(&format!(
            "- [{}] {}\n",
            [" ", "x"][rng.below(2)],
            sentence(rng)
        ));
    }
    if i % 7 == 0 {
        text.push_str("\n```sh\nkubectl rollout status deploy/gateway\n```\n");
    }
    (heading, text)
}

fn bench_markdown_search(c: &mut Criterion) {
    let (rt, _dir, store) = fresh_store();
    let mut rng = Rng(0xdead_beef_1234_5678);
    rt.block_on(async {
        for f in 0..500u32 {
            let path = format!("memory/2026-{:02}-{:02}.md", 1 + f % 12, 1 + f % 28);
            let chunks: Vec<MemoryChunkRow> = (0..20u32)
                .map(|i| {
                    let (heading, text) = markdown_chunk(&mut rng, i);
                    MemoryChunkRow {
                        path: path.clone(),
                        start_line: i * 8 + 1,
                        end_line: i * 8 + 7,
                        heading: Some(heading),
                        text,
                        hash: format!("{f}-{i}"),
                    }
                })
                .collect();
            store
                .memory_replace_file("main", &path, &format!("file-{f}"), chunks, 1)
                .await
                .unwrap();
        }
    });
    let hits = rt
        .block_on(store.memory_search("main", QUESTIONS[0], 6, 0.0))
        .unwrap();
    assert_eq!(hits.len(), 6, "the notes answer the benchmark questions");
    let mut i = 0;
    c.bench_function("memory_search/10k_chunks_markdown_top6", |b| {
        b.iter(|| {
            i = (i + 1) % QUESTIONS.len();
            rt.block_on(store.memory_search("main", QUESTIONS[i], 6, 0.0))
                .unwrap()
        })
    });
    rt.block_on(store.close());
}

criterion_group!(benches, bench_memory_search, bench_markdown_search);
criterion_main!(benches);
