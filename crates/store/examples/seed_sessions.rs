//! Seeds a state dir with N sessions (for the "gateway start with 10k sessions" benchmark):
//! `cargo run --release -p pincer-store --example seed_sessions -- <state-dir> [count]`.

use pincer_sessions::{SessionKey, TranscriptEntry};
use pincer_store::{AppendOptions, EnsureSession, Store, StoreOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(
        args.next()
            .ok_or("usage: seed_sessions <state-dir> [count]")?,
    );
    let count: usize = args
        .next()
        .map(|c| c.parse())
        .transpose()?
        .unwrap_or(10_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let store = Store::open_in_state_dir(&dir, StoreOptions::default())?;
        let now = 1_795_236_198_656i64;
        let mut tasks = Vec::new();
        for chunk in 0..8 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                for i in (chunk..count).step_by(8) {
                    let key = SessionKey::parse(&format!("agent:main:direct:peer{i}"))?;
                    store.ensure_session(&key, EnsureSession::at(now + i as i64)).await?;
                    let entry = TranscriptEntry::message(
                        None,
                        now,
                        serde_json::json!({"role": "user", "content": format!("hello {i}"), "timestamp": now}),
                    );
                    let opts = AppendOptions { chain: true, now_ms: now + i as i64, ..Default::default() };
                    store.append(&key, vec![entry], opts).await?;
                }
                Ok::<(), Box<dyn std::error::Error + Send + Sync>>(())
            }));
        }
        for t in tasks {
            t.await?.map_err(|e| e.to_string())?;
        }
        store.close().await;
        println!("seeded {count} sessions into {}", dir.display());
        Ok::<(), Box<dyn std::error::Error>>(())
    })
}
