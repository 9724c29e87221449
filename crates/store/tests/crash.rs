#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Crash durability: a child process appends in a tight loop from several tasks and prints
//! `ACK <task> <seq>` after each acknowledged append; the parent SIGKILLs it mid-storm,
//! reopens the database and checks that every acknowledged entry is there, seqs are
//! contiguous, and `PRAGMA integrity_check` says ok.
//!
//! The child is this same test binary, re-run with `PINCER_STORM_DB` set and filtered to
//! `storm_child`, so no extra binary is needed.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pincer_sessions::{SessionKey, TranscriptEntry};
use pincer_store::{AppendOptions, EnsureSession, EntryFilter, HistoryQuery, Store, StoreOptions};
use serde_json::json;

const TASKS: usize = 8;

fn task_key(t: usize) -> SessionKey {
    SessionKey::canonicalize(&format!("agent:main:storm:{t}"), "main").unwrap()
}

/// Runs only inside the child process.
#[test]
fn storm_child() {
    let Ok(db) = std::env::var("PINCER_STORM_DB") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(&db, StoreOptions::default()).unwrap();
        for t in 0..TASKS {
            store.ensure_session(&task_key(t), EnsureSession::at(1)).await.unwrap();
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
        for t in 0..TASKS {
            let store = store.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                let key = task_key(t);
                for i in 0u64.. {
                    let entry = TranscriptEntry::message(
                        None,
                        1,
                        json!({"role": "user", "content": format!("storm {t} {i} {}", "x".repeat(200))}),
                    );
                    let opts = AppendOptions { chain: true, now_ms: 1, ..Default::default() };
                    let ack = store.append(&key, vec![entry], opts).await.unwrap();
                    if tx.send(format!("ACK {t} {} {}", ack.session_id, ack.last_seq)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(tx);
        let stdout = std::io::stdout();
        while let Some(line) = rx.recv().await {
            let mut out = stdout.lock();
            // Printed only after the ack, flushed at once: every line is a durable entry.
            writeln!(out, "{line}").unwrap();
            out.flush().unwrap();
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_appends_survive_sigkill() {
    if std::env::var("PINCER_STORM_DB").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("state/pincer.sqlite");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "storm_child",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("PINCER_STORM_DB", &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut acked: Vec<(usize, String, i64)> = Vec::new();
        let mut killer_signal_sent = false;
        let mut lines = BufReader::new(stdout).lines();
        let started = Instant::now();
        let mut child = Some(child);
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.strip_prefix("ACK ") {
                let mut parts = rest.split(' ');
                let t: usize = parts.next().unwrap().parse().unwrap();
                let sid = parts.next().unwrap().to_string();
                let seq: i64 = parts.next().unwrap().parse().unwrap();
                acked.push((t, sid, seq));
            }
            // Kill mid-storm: after plenty of acks (or a generous time bound).
            if !killer_signal_sent
                && (acked.len() >= 3000 || started.elapsed() > Duration::from_secs(20))
            {
                if let Some(c) = child.as_mut() {
                    c.kill().unwrap(); // SIGKILL on Unix
                }
                killer_signal_sent = true;
            }
        }
        // Pipe closed: the child is dead; everything it printed has been read.
        if let Some(mut c) = child {
            let status = c.wait().unwrap();
            assert!(
                !status.success(),
                "the child must have been killed, not finished: {status:?}"
            );
        }
        acked
    });
    let acked = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap();
    assert!(
        acked.len() >= 100,
        "the storm produced too few acks to be meaningful: {}",
        acked.len()
    );

    let store = Store::open(&db, StoreOptions::default()).unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    let mut max_acked: HashMap<usize, (String, i64)> = HashMap::new();
    for (t, sid, seq) in &acked {
        let e = max_acked.entry(*t).or_insert_with(|| (sid.clone(), 0));
        e.1 = e.1.max(*seq);
    }
    let mut durable_total = 0;
    for (t, (sid, max_seq)) in max_acked {
        let counts = store.counts(&sid).await.unwrap();
        assert!(
            counts.last_seq >= max_seq,
            "task {t}: acknowledged seq {max_seq} missing after SIGKILL (last durable {})",
            counts.last_seq
        );
        // Page through the whole transcript: seqs are exactly 1..=last_seq, nothing torn.
        let mut seqs = Vec::new();
        let mut cursor = None;
        loop {
            let query = HistoryQuery {
                limit: 1000,
                cursor,
                filter: EntryFilter::All,
            };
            let page = store.history_of(&sid, query).await.unwrap();
            for e in &page.entries {
                e.typed()
                    .unwrap_or_else(|err| panic!("task {t} seq {}: torn entry: {err}", e.seq));
                seqs.push(e.seq);
            }
            cursor = page.next_cursor;
            if cursor.is_none() {
                break;
            }
        }
        seqs.sort_unstable();
        assert_eq!(
            seqs,
            (1..=counts.last_seq).collect::<Vec<_>>(),
            "task {t}: seq gap"
        );
        assert_eq!(counts.entries, counts.last_seq);
        durable_total += counts.messages;
    }
    assert!(durable_total as usize >= acked.len());
    // The store accepts writes after the crash.
    let ack = store
        .append(
            &task_key(0),
            vec![TranscriptEntry::message(
                None,
                2,
                json!({"role":"user","content":"after"}),
            )],
            AppendOptions::default(),
        )
        .await
        .unwrap();
    assert!(ack.last_seq > 1);
}
