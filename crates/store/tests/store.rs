#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Store API behaviour against a real SQLite file.

use pincer_sessions::{
    ResetMode, ResetPolicy, ResetReason, SessionEntry, SessionKey, SessionPatch, Touch,
    TranscriptEntry, UsageReport, WindowReason,
};
use pincer_store::{
    AppendOptions, EnsureSession, EntryFilter, HistoryQuery, ListQuery, SortBy, Store, StoreError,
    StoreOptions,
};
use serde_json::json;

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open_in_state_dir(dir.path(), StoreOptions::default()).unwrap()
}

fn key(s: &str) -> SessionKey {
    SessionKey::canonicalize(s, "main").unwrap()
}

fn user(text: &str, now: i64) -> TranscriptEntry {
    TranscriptEntry::message(
        None,
        now,
        json!({"role": "user", "content": text, "timestamp": now}),
    )
}

fn assistant(text: &str, now: i64) -> TranscriptEntry {
    TranscriptEntry::message(
        None,
        now,
        json!({"role": "assistant", "content": [{"type": "text", "text": text}], "stopReason": "stop"}),
    )
}

fn opts(now: i64) -> AppendOptions {
    AppendOptions {
        chain: true,
        now_ms: now,
        ..AppendOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_is_migrated_and_fts5_is_available() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    assert!(dir.path().join("state/pincer.sqlite").exists());
    assert_eq!(
        pincer_store::latest_version(),
        pincer_store::migrations().len() as i64
    );
    assert!(
        store.has_fts5().await.unwrap(),
        "bundled SQLite must have FTS5"
    );
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("state"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o700);
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    store.close().await;
    // Reopening an up-to-date database is a no-op migration.
    let again = open(&dir);
    assert_eq!(again.integrity_check().await.unwrap(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let conn = rusqlite_connection(&path);
        conn.pragma_update(None, "user_version", 999).unwrap();
    }
    let err = Store::open(&path, StoreOptions::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found: 999, .. }),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("schema version 999, newer than this build supports"));
}

/// Direct file access, only to fake a database from a future version.
fn rusqlite_connection(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_creates_once_with_header_and_window() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let k = key("main");
    let mut req = EnsureSession::at(1_000);
    req.cwd = Some("/ws".into());
    req.touch = Some(Touch::UserMessage);
    let first = store.ensure_session(&k, req.clone()).await.unwrap();
    assert!(first.created);
    assert_eq!(first.record.key, "agent:main:main");
    assert_eq!(first.record.kind, "main");
    assert_eq!(first.record.entry.chat_type.as_deref(), Some("direct"));
    assert_eq!(first.record.entry.last_interaction_at, Some(1_000));
    let second = store
        .ensure_session(&k, EnsureSession::at(2_000))
        .await
        .unwrap();
    assert!(!second.created);
    assert_eq!(
        second.record.entry.session_id,
        first.record.entry.session_id
    );

    let page = store
        .history(
            &k,
            HistoryQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(page.entries.len(), 1);
    let header = page.entries[0].value().unwrap();
    assert_eq!(header["type"], "session");
    assert_eq!(header["version"], 4);
    assert_eq!(header["id"], first.record.entry.session_id.as_str());
    assert_eq!(header["cwd"], "/ws");
    let windows = store.session_windows(&k).await.unwrap();
    assert_eq!(windows.len(), 1);
    assert_eq!(windows[0].reason, WindowReason::Initial);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_assigns_monotonic_seqs_and_chains_parents() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let k = key("agent:main:telegram:direct:42");
    store
        .ensure_session(&k, EnsureSession::at(1))
        .await
        .unwrap();
    let a = store
        .append(&k, vec![user("hi", 2), assistant("hello", 3)], opts(3))
        .await
        .unwrap();
    assert_eq!((a.first_seq, a.last_seq), (2, 3));
    assert_eq!(a.message_count, 2, "ordinal of the last appended message");
    assert_eq!(a.created_at, 3, "the append's clock");
    let b = store
        .append(
            &k,
            vec![TranscriptEntry::model_change(None, 4, "p", "m")],
            opts(4),
        )
        .await
        .unwrap();
    assert_eq!((b.first_seq, b.last_seq), (4, 4));
    assert_eq!(b.message_count, 2, "a model change is not a message");
    let entries = store
        .tail(&a.session_id, 10, EntryFilter::All)
        .await
        .unwrap();
    let seqs: Vec<i64> = entries.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);
    let values: Vec<serde_json::Value> = entries.iter().map(|e| e.value().unwrap()).collect();
    assert_eq!(
        values[1]["parentId"],
        serde_json::Value::Null,
        "first entry after the header has no parent"
    );
    assert_eq!(values[2]["parentId"], values[1]["id"]);
    assert_eq!(values[3]["parentId"], values[2]["id"]);
    assert_eq!(b.leaf_id.as_deref(), values[3]["id"].as_str());
    // Stored JSON is the typed entry's JSON.
    assert!(entries[1].typed().is_ok());
    assert_eq!(entries[1].entry_type, "message");
    let counts = store.counts(&a.session_id).await.unwrap();
    assert_eq!(
        (counts.entries, counts.messages, counts.last_seq),
        (4, 2, 4)
    );

    // Appending to a key without a session is refused, and so is a stale expected id.
    let err = store
        .append(&key("agent:main:nobody"), vec![user("x", 5)], opts(5))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no session with key \"agent:main:nobody\"");
    let mut stale = opts(5);
    stale.expected_session_id = Some("other".into());
    let err = store
        .append(&k, vec![user("x", 5)], stale)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SessionIdMismatch { .. }), "{err}");
    // A refused op leaves no trace.
    assert_eq!(store.counts(&a.session_id).await.unwrap().entries, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_all_acknowledged_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let k = key("main");
    let sid = store
        .ensure_session(&k, EnsureSession::at(1))
        .await
        .unwrap()
        .record
        .entry
        .session_id;
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = store.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..50 {
                let ack = store
                    .append(&k, vec![user(&format!("{t}-{i}"), 10)], opts(10))
                    .await
                    .unwrap();
                seqs.push(ack.last_seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "a task's own appends are ordered"
        );
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (2..=401).collect::<Vec<i64>>());
    assert_eq!(store.counts(&sid).await.unwrap().messages, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_with_cursor_and_filter() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let k = key("main");
    store
        .ensure_session(&k, EnsureSession::at(1))
        .await
        .unwrap();
    let mut batch = Vec::new();
    for i in 0..25 {
        batch.push(user(&format!("m{i}"), 10 + i));
        batch.push(TranscriptEntry::custom(
            None,
            10 + i,
            "marker",
            json!({ "i": i }),
        ));
    }
    store.append(&k, batch, opts(50)).await.unwrap();

    let q = |cursor: Option<String>| HistoryQuery {
        limit: 10,
        cursor,
        filter: EntryFilter::Messages,
    };
    let p1 = store.history(&k, q(None)).await.unwrap().unwrap();
    assert_eq!(p1.counts.messages, 25);
    assert_eq!(p1.counts.entries, 51);
    let texts = |p: &pincer_store::HistoryPage| -> Vec<String> {
        p.entries
            .iter()
            .map(|e| {
                e.value().unwrap()["message"]["content"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(
        texts(&p1),
        (15..25).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(p1.has_more);
    let p2 = store
        .history(&k, q(p1.next_cursor.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        texts(&p2),
        (5..15).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    let p3 = store
        .history(&k, q(p2.next_cursor.clone()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        texts(&p3),
        (0..5).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(!p3.has_more);
    assert_eq!(p3.next_cursor, None);

    let all = store
        .history(
            &k,
            HistoryQuery {
                limit: 3,
                cursor: None,
                filter: EntryFilter::All,
            },
        )
        .await
        .unwrap()
        .unwrap();
    let types: Vec<&str> = all.entries.iter().map(|e| e.entry_type.as_str()).collect();
    assert_eq!(types, vec!["custom", "message", "custom"]);

    for bad in ["garbage", "djE6eDp5", ""] {
        let err = store
            .history(&k, q(Some(bad.to_string())))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::BadCursor), "{bad}: {err}");
    }
    // A cursor of another session is refused.
    let other = key("agent:main:direct:x");
    store
        .ensure_session(&other, EnsureSession::at(1))
        .await
        .unwrap();
    let err = store.history(&other, q(p1.next_cursor)).await.unwrap_err();
    assert!(matches!(err, StoreError::BadCursor));
    assert!(store
        .history(&key("agent:main:none"), q(None))
        .await
        .unwrap()
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_rotates_session_and_records_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let k = key("main");
    let first = store
        .ensure_session(&k, EnsureSession::at(1))
        .await
        .unwrap()
        .record
        .entry
        .session_id;
    store
        .append(&k, vec![user("hi", 2)], opts(2))
        .await
        .unwrap();
    let label = SessionPatch {
        label: Some(Some("Inbox".into())),
        ..Default::default()
    };
    store.patch_session(&k, label, 3).await.unwrap();

    let out = store
        .reset_session(&k, ResetReason::New, 10, None, Some(first.clone()))
        .await
        .unwrap();
    assert_eq!(out.previous_session_id.as_deref(), Some(first.as_str()));
    let second = out.record.entry.session_id.clone();
    assert_ne!(second, first);
    assert_eq!(
        out.record.entry.label.as_deref(),
        Some("Inbox"),
        "user choices carry over"
    );
    // Old transcript ends with a reset entry; new one starts with a header.
    let old_tail = store.tail(&first, 1, EntryFilter::All).await.unwrap();
    let reset = old_tail[0].value().unwrap();
    assert_eq!(
        (reset["type"].as_str(), reset["reason"].as_str()),
        (Some("reset"), Some("new"))
    );
    let new_page = store
        .history(
            &k,
            HistoryQuery {
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new_page.session_id, second);
    assert_eq!(new_page.entries.len(), 1);
    assert_eq!(new_page.counts.messages, 0);
    let windows = store.session_windows(&k).await.unwrap();
    assert_eq!(windows.len(), 2);
    assert_eq!(windows[0].end_reason.as_deref(), Some("new"));
    assert_eq!(windows[0].ended_at, Some(10));
    assert_eq!(
        windows[1].previous_session_id.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(windows[1].reason, WindowReason::Reset);

    // Optimistic concurrency: resetting with a stale expected id fails and changes nothing.
    let err = store
        .reset_session(&k, ResetReason::Reset, 11, None, Some(first))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SessionIdMismatch { .. }));
    assert_eq!(store.session_windows(&k).await.unwrap().len(), 2);
    // Resetting a missing key creates it.
    let fresh = store
        .reset_session(&key("agent:main:new"), ResetReason::Reset, 12, None, None)
        .await
        .unwrap();
    assert_eq!(fresh.previous_session_id, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_rotates_stale_sessions_per_policy() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let k = key("main");
    let policy = ResetPolicy {
        mode: ResetMode::Idle,
        at_hour: 4,
        idle_minutes: Some(1),
    };
    let mut req = EnsureSession::at(1_000);
    req.policy = policy;
    req.touch = Some(Touch::UserMessage);
    let first = store.ensure_session(&k, req.clone()).await.unwrap();
    req.now_ms = 30_000;
    let same = store.ensure_session(&k, req.clone()).await.unwrap();
    assert_eq!(same.rotated, None);
    req.now_ms = 30_000 + 61_000;
    let rotated = store.ensure_session(&k, req).await.unwrap();
    assert_eq!(rotated.rotated, Some(ResetReason::Idle));
    assert_eq!(
        rotated.previous_session_id.as_deref(),
        Some(first.record.entry.session_id.as_str())
    );
    assert_ne!(
        rotated.record.entry.session_id,
        first.record.entry.session_id
    );
    assert_eq!(rotated.record.entry.last_interaction_at, Some(91_000));
    let windows = store.session_windows(&k).await.unwrap();
    assert_eq!(windows[0].end_reason.as_deref(), Some("idle"));
    assert_eq!(windows[1].reason, WindowReason::Rollover);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_usage_and_update() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let k = key("main");
    store
        .ensure_session(&k, EnsureSession::at(1))
        .await
        .unwrap();
    let patch: SessionPatch = serde_json::from_str(
        r#"{"thinkingLevel":"high","sendPolicy":"deny","model":"openai/gpt-5"}"#,
    )
    .unwrap();
    let (rec, changed) = store.patch_session(&k, patch, 5).await.unwrap();
    assert_eq!(changed, vec!["thinkingLevel", "sendPolicy", "model"]);
    assert_eq!(rec.entry.model_override.as_deref(), Some("gpt-5"));
    let bad: SessionPatch = serde_json::from_str(r#"{"thinkingLevel":"mega"}"#).unwrap();
    let err = store.patch_session(&k, bad, 6).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("invalid thinkingLevel \"mega\""),
        "{err}"
    );
    let missing = store
        .patch_session(&key("agent:main:zzz"), SessionPatch::default(), 6)
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NoSuchSession(_)));

    store
        .record_usage(
            &k,
            UsageReport {
                input: 10,
                output: 5,
                cost_usd: 0.5,
                ..Default::default()
            },
            7,
        )
        .await
        .unwrap();
    let rec = store
        .record_usage(
            &k,
            UsageReport {
                input: 1,
                output: 1,
                ..Default::default()
            },
            8,
        )
        .await
        .unwrap();
    let totals = rec.entry.usage_totals.unwrap();
    assert_eq!((totals.input, totals.output, totals.runs), (11, 6, 2));
    // The stored row reflects it (read path).
    let stored = store.get_session(&k).await.unwrap().unwrap();
    assert_eq!(stored.entry.input_tokens, Some(1));
    assert_eq!(stored.entry.thinking_level.as_deref(), Some("high"));
    // A failing closure changes nothing.
    let err = store
        .update_session(&k, 9, |e| {
            e.label = Some("nope".into());
            Err(StoreError::Rejected("refused".into()))
        })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "refused");
    assert_eq!(
        store.get_session(&k).await.unwrap().unwrap().entry.label,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_filters_search_sort_and_paging() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let specs = [
        ("agent:main:main", 100, None),
        ("agent:main:telegram:direct:alice", 200, Some("Alice chat")),
        ("agent:main:discord:channel:dev", 300, Some("Dev room")),
        ("agent:ops:main", 400, None),
        ("agent:ops:cron:nightly", 500, None),
        ("agent:main:subagent:u1", 600, None),
    ];
    for (k, t, label) in specs {
        let mut req = EnsureSession::at(t);
        if let Some(l) = label {
            req.template = Some(SessionEntry {
                label: Some(l.to_string()),
                ..Default::default()
            });
        }
        store.ensure_session(&key(k), req).await.unwrap();
    }
    // Interaction only on two sessions, in the reverse order of updates.
    store
        .ensure_session(
            &key("agent:main:main"),
            EnsureSession {
                touch: Some(Touch::UserMessage),
                ..EnsureSession::at(700)
            },
        )
        .await
        .unwrap();
    store
        .ensure_session(
            &key("agent:ops:main"),
            EnsureSession {
                touch: Some(Touch::UserMessage),
                ..EnsureSession::at(650)
            },
        )
        .await
        .unwrap();

    let keys = |p: &pincer_store::SessionPage| {
        p.sessions.iter().map(|s| s.key.clone()).collect::<Vec<_>>()
    };
    let all = store.list_sessions(ListQuery::default()).await.unwrap();
    assert_eq!(all.total_count, 6);
    assert_eq!(all.limit_applied, 100);
    assert_eq!(
        keys(&all),
        vec![
            "agent:main:main",
            "agent:ops:main",
            "agent:main:subagent:u1",
            "agent:ops:cron:nightly",
            "agent:main:discord:channel:dev",
            "agent:main:telegram:direct:alice"
        ]
    );
    let by_agent = store
        .list_sessions(ListQuery {
            agent_id: Some("ops".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        keys(&by_agent),
        vec!["agent:ops:main", "agent:ops:cron:nightly"]
    );
    let search = store
        .list_sessions(ListQuery {
            search: Some("ALICE".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(&search), vec!["agent:main:telegram:direct:alice"]);
    let search_label = store
        .list_sessions(ListQuery {
            search: Some("dev ro".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(&search_label), vec!["agent:main:discord:channel:dev"]);
    let label = store
        .list_sessions(ListQuery {
            label: Some("Alice chat".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(label.total_count, 1);
    let active = store
        .list_sessions(ListQuery {
            active_minutes: Some(1),
            now_ms: 60_000 + 450,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        keys(&active),
        vec![
            "agent:main:main",
            "agent:ops:main",
            "agent:main:subagent:u1",
            "agent:ops:cron:nightly"
        ]
    );
    let no_cron = store
        .list_sessions(ListQuery {
            exclude_kinds: vec!["cron".into(), "subagent".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(no_cron.total_count, 4);
    let only_main = store
        .list_sessions(ListQuery {
            kinds: vec!["main".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(only_main.total_count, 2);
    let by_interaction = store
        .list_sessions(ListQuery {
            sort_by: SortBy::LastInteractionAt,
            limit: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        keys(&by_interaction),
        vec!["agent:main:main", "agent:ops:main"]
    );

    let p1 = store
        .list_sessions(ListQuery {
            limit: Some(4),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (p1.sessions.len(), p1.has_more, p1.next_offset),
        (4, true, Some(4))
    );
    let p2 = store
        .list_sessions(ListQuery {
            limit: Some(4),
            offset: 4,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        (p2.sessions.len(), p2.has_more, p2.next_offset),
        (2, false, None)
    );

    let archived = SessionPatch {
        archived: Some(true),
        ..Default::default()
    };
    store
        .patch_session(&key("agent:main:main"), archived, 800)
        .await
        .unwrap();
    let live = store
        .list_sessions(ListQuery {
            archived: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(live.total_count, 5);

    // Pinned, a set of agents, a set of keys.
    let pin = SessionPatch {
        pinned: Some(true),
        ..Default::default()
    };
    store
        .patch_session(&key("agent:ops:main"), pin, 900)
        .await
        .unwrap();
    let pinned = store
        .list_sessions(ListQuery {
            pinned: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(keys(&pinned), vec!["agent:ops:main"]);
    let unpinned = store
        .list_sessions(ListQuery {
            pinned: Some(false),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(unpinned.total_count, 5);
    let agents = store
        .list_sessions(ListQuery {
            agent_ids: vec!["ops".into(), "nobody".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        keys(&agents),
        vec!["agent:ops:main", "agent:ops:cron:nightly"]
    );
    let some_keys = store
        .list_sessions(ListQuery {
            keys: Some(vec![
                "agent:main:main".into(),
                "agent:ops:cron:nightly".into(),
            ]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(some_keys.total_count, 2);
    let no_keys = store
        .list_sessions(ListQuery {
            keys: Some(Vec::new()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((no_keys.total_count, no_keys.sessions.len()), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let k = key("main");
    store
        .ensure_session(&k, EnsureSession::at(1))
        .await
        .unwrap();
    store
        .append(
            &k,
            vec![
                user("hello there", 2),
                assistant("a very long answer indeed", 3),
            ],
            opts(3),
        )
        .await
        .unwrap();
    let previews = store
        .preview(vec![k.clone(), key("agent:main:none")], 5, 20)
        .await
        .unwrap();
    assert_eq!(previews[0].status, "ok");
    let items: Vec<(String, String)> = previews[0]
        .items
        .iter()
        .map(|i| (i.role.clone(), i.text.clone()))
        .collect();
    assert_eq!(
        items,
        vec![
            ("user".to_string(), "hello there".to_string()),
            ("assistant".to_string(), "a very long answer …".to_string())
        ]
    );
    assert_eq!(previews[1].status, "missing");

    // Delete keeping the transcript: row gone, transcript still readable by sessionId.
    let sid = store
        .get_session(&k)
        .await
        .unwrap()
        .unwrap()
        .entry
        .session_id;
    let out = store.delete_session(&k, false, 9).await.unwrap();
    assert!(out.deleted);
    assert_eq!(out.archived, vec![sid.clone()]);
    assert!(store.get_session(&k).await.unwrap().is_none());
    assert_eq!(
        store.tail(&sid, 10, EntryFilter::All).await.unwrap().len(),
        3
    );
    // The key can be recreated; appends go to the new sessionId.
    let again = store
        .ensure_session(&k, EnsureSession::at(10))
        .await
        .unwrap();
    assert!(again.created);
    assert_ne!(again.record.entry.session_id, sid);
    let ack = store
        .append(&k, vec![user("new", 11)], opts(11))
        .await
        .unwrap();
    assert_eq!(
        (ack.session_id.as_str(), ack.first_seq),
        (again.record.entry.session_id.as_str(), 2)
    );
    // Delete with transcript: everything of the key goes.
    let out = store.delete_session(&k, true, 12).await.unwrap();
    assert!(out.deleted && out.archived.is_empty());
    assert!(store
        .tail(&sid, 10, EntryFilter::All)
        .await
        .unwrap()
        .is_empty());
    assert!(store.session_windows(&k).await.unwrap().is_empty());
    assert!(!store.delete_session(&k, true, 13).await.unwrap().deleted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("main");
    let sid = {
        let store = open(&dir);
        let sid = store
            .ensure_session(&k, EnsureSession::at(1))
            .await
            .unwrap()
            .record
            .entry
            .session_id;
        store
            .append(&k, vec![user("one", 2)], opts(2))
            .await
            .unwrap();
        store.close().await;
        sid
    };
    let store = open(&dir);
    // The writer's head cache is rebuilt from the database: seq continues.
    let ack = store
        .append(&k, vec![user("two", 3)], opts(3))
        .await
        .unwrap();
    assert_eq!((ack.session_id.as_str(), ack.first_seq), (sid.as_str(), 3));
    assert_eq!(ack.message_count, 2, "the message ordinal continues too");
    let entries = store.tail(&sid, 10, EntryFilter::Messages).await.unwrap();
    assert_eq!(entries.len(), 2);
    let first = entries[0].value().unwrap();
    let second = entries[1].value().unwrap();
    assert_eq!(
        second["parentId"], first["id"],
        "chain continues across restarts"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reference_entry_fields_survive_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let sample: serde_json::Value = serde_json::from_str(include_str!(
        "../../../testdata/spec-samples/session-entry.json"
    ))
    .unwrap();
    let template: SessionEntry = serde_json::from_value(sample.clone()).unwrap();
    let k = key("main");
    let mut req = EnsureSession::at(5);
    req.template = Some(template);
    let created = store.ensure_session(&k, req).await.unwrap();
    let stored = store.get_session(&k).await.unwrap().unwrap();
    assert_eq!(stored, created.record);
    let json = serde_json::to_value(&stored.entry).unwrap();
    // The store owns identity and creation timestamps; everything else is kept verbatim.
    for (field, value) in sample.as_object().unwrap() {
        if ["sessionId", "updatedAt", "createdAt", "sessionStartedAt"].contains(&field.as_str()) {
            continue;
        }
        assert_eq!(&json[field], value, "field {field}");
    }
    assert_eq!(json["sessionStartedAt"], 5);
}
