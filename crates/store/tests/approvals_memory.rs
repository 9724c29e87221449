#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Exec approvals and the memory index against a real SQLite file.

use pincer_store::{
    ApprovalFinish, ApprovalRecord, ApprovalStatus, FinishOutcome, MemoryChunkRow, Store,
    StoreOptions,
};
use serde_json::json;

fn open(dir: &std::path::Path) -> Store {
    Store::open_in_state_dir(dir, StoreOptions::default()).unwrap()
}

fn finish(status: ApprovalStatus, decision: Option<&str>, reason: &str, at: i64) -> ApprovalFinish {
    ApprovalFinish {
        status,
        decision: decision.map(str::to_owned),
        terminal_reason: reason.into(),
        resolved_by: Some("cli".into()),
        at_ms: at,
    }
}

#[tokio::test]
async fn an_approval_is_finished_once_and_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let request = json!({"command": "rm -rf build", "agentId": "main", "sessionKey": "agent:main:main", "runId": "r1"});
    store
        .insert_approval(ApprovalRecord::pending("a1", request.clone(), 1000, 61_000))
        .await
        .unwrap();
    // The same id twice is refused.
    let dup = store
        .insert_approval(ApprovalRecord::pending("a1", request.clone(), 1000, 61_000))
        .await;
    assert!(dup.unwrap_err().to_string().contains("already exists"));
    let pending = store.list_pending_approvals().await.unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].agent_id.as_deref(), Some("main"));
    assert_eq!(pending[0].run_id.as_deref(), Some("r1"));
    assert_eq!(pending[0].request, request);

    let first = store
        .finish_approval(
            "a1",
            finish(ApprovalStatus::Allowed, Some("allow-once"), "user", 2000),
        )
        .await
        .unwrap();
    let FinishOutcome::Finished(rec) = first else {
        panic!("{first:?}")
    };
    assert_eq!(rec.status, ApprovalStatus::Allowed);
    assert_eq!(rec.decision.as_deref(), Some("allow-once"));
    assert_eq!(rec.resolved_at_ms, Some(2000));
    // A late expiry (or a second resolver) finds it finished and changes nothing.
    let second = store
        .finish_approval("a1", finish(ApprovalStatus::Expired, None, "timeout", 3000))
        .await
        .unwrap();
    let FinishOutcome::AlreadyFinished(rec) = second else {
        panic!("{second:?}")
    };
    assert_eq!(rec.status, ApprovalStatus::Allowed);
    assert_eq!(
        store
            .finish_approval(
                "nope",
                finish(ApprovalStatus::Denied, Some("deny"), "user", 1)
            )
            .await
            .unwrap(),
        FinishOutcome::NotFound
    );
    assert!(store.list_pending_approvals().await.unwrap().is_empty());

    // Pending ones are closed at the next start; finished ones are kept until pruned.
    store
        .insert_approval(ApprovalRecord::pending(
            "a2",
            json!({"command": "ls"}),
            5000,
            6000,
        ))
        .await
        .unwrap();
    store.close().await;
    let store = open(dir.path());
    assert_eq!(
        store
            .close_pending_approvals("gateway-restart", 7000)
            .await
            .unwrap(),
        1
    );
    let a2 = store.get_approval("a2").await.unwrap().unwrap();
    assert_eq!(a2.status, ApprovalStatus::Cancelled);
    assert_eq!(a2.terminal_reason.as_deref(), Some("gateway-restart"));
    assert_eq!(
        store
            .get_approval("a1")
            .await
            .unwrap()
            .unwrap()
            .decision
            .as_deref(),
        Some("allow-once")
    );
    assert_eq!(store.prune_approvals(6500).await.unwrap(), 1);
    assert!(store.get_approval("a1").await.unwrap().is_none());
    assert!(store.get_approval("a2").await.unwrap().is_some());
}

#[tokio::test]
async fn the_approvals_document_is_read_modify_written_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.approvals_document().await.unwrap(), None);
    let stored = store
        .update_approvals_document(10, |cur| {
            assert_eq!(cur, None);
            Ok(Some(r#"{"version":1}"#.into()))
        })
        .await
        .unwrap();
    assert_eq!(stored.as_deref(), Some(r#"{"version":1}"#));
    // None leaves it; an error changes nothing.
    let kept = store
        .update_approvals_document(11, |_| Ok(None))
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some(r#"{"version":1}"#));
    let err = store
        .update_approvals_document(12, |_| {
            Err(pincer_store::StoreError::Rejected("stale baseHash".into()))
        })
        .await;
    assert!(err.is_err());
    assert_eq!(
        store.approvals_document().await.unwrap(),
        Some((r#"{"version":1}"#.to_string(), 10))
    );
}

fn chunk(path: &str, start: u32, end: u32, heading: Option<&str>, text: &str) -> MemoryChunkRow {
    MemoryChunkRow {
        path: path.into(),
        start_line: start,
        end_line: end,
        heading: heading.map(str::to_owned),
        text: text.into(),
        hash: format!("h-{start}"),
    }
}

#[tokio::test]
async fn memory_chunks_are_replaced_per_file_and_searched_per_agent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store
        .memory_replace_file(
            "main",
            "MEMORY.md",
            "f1",
            vec![
                chunk(
                    "MEMORY.md",
                    1,
                    3,
                    Some("Deploys"),
                    "We deploy with the blue-green script on Fridays.",
                ),
                chunk("MEMORY.md", 5, 6, Some("Pets"), "The cat is called Miso."),
            ],
            1,
        )
        .await
        .unwrap();
    store
        .memory_replace_file(
            "other",
            "MEMORY.md",
            "f9",
            vec![chunk(
                "MEMORY.md",
                1,
                1,
                None,
                "Deploy secrets of another agent",
            )],
            1,
        )
        .await
        .unwrap();
    let hits = store
        .memory_search("main", "how do we deploy?", 5, 0.0)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1, "{hits:?}");
    assert_eq!((hits[0].start_line, hits[0].end_line), (1, 3));
    assert!(hits[0].score > 0.0 && hits[0].score < 1.0);
    assert_eq!(hits[0].heading.as_deref(), Some("Deploys"));
    // FTS syntax in the query is inert.
    assert!(
        store
            .memory_search("main", "\"cat\" NEAR(", 5, 0.0)
            .await
            .unwrap()
            .len()
            == 1
    );
    assert!(store
        .memory_search("main", "?!", 5, 0.0)
        .await
        .unwrap()
        .is_empty());
    // A min score above every hit filters them out.
    assert!(store
        .memory_search("main", "cat", 5, 0.9999)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.memory_indexed_files("main").await.unwrap(),
        vec![("MEMORY.md".to_string(), "f1".to_string())]
    );

    // Re-indexing replaces the old chunks (and their FTS rows).
    store
        .memory_replace_file(
            "main",
            "MEMORY.md",
            "f2",
            vec![chunk("MEMORY.md", 1, 2, None, "The dog is called Pixel.")],
            2,
        )
        .await
        .unwrap();
    assert!(store
        .memory_search("main", "cat deploy", 5, 0.0)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .memory_search("main", "dog", 5, 0.0)
            .await
            .unwrap()
            .len(),
        1
    );
    let chunks = store.memory_chunks("main", "MEMORY.md").await.unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].text, "The dog is called Pixel.");

    // An empty hash removes the file.
    store
        .memory_replace_file("main", "MEMORY.md", "", Vec::new(), 3)
        .await
        .unwrap();
    assert!(store.memory_indexed_files("main").await.unwrap().is_empty());
    assert!(store
        .memory_search("main", "dog", 5, 0.0)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store
            .memory_search("other", "deploy", 5, 0.0)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
}
