#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Channel DM pairing records and cursors against a real SQLite file.

use pincer_store::{NewPairingRequest, PairingRequestOutcome, Store, StoreOptions};

const HOUR: i64 = 3_600_000;

fn req(sender: &str, code: &str, now: i64) -> NewPairingRequest {
    NewPairingRequest {
        channel: "telegram".into(),
        account_id: "default".into(),
        sender_id: sender.into(),
        code: code.into(),
        now_ms: now,
        ttl_ms: HOUR,
        max_pending: 3,
        meta_json: Some(r#"{"name":"Ann"}"#.into()),
    }
}

#[tokio::test]
async fn pending_cap_existing_requests_code_clash_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_state_dir(dir.path(), StoreOptions::default()).unwrap();
    let created = store
        .channel_pairing_request(req("1", "AAAABBBB", 0))
        .await
        .unwrap();
    assert!(
        matches!(created, PairingRequestOutcome::Created(ref r) if r.code == "AAAABBBB" && r.expires_at_ms == HOUR)
    );
    // Same sender again: the existing request, not a new code.
    let again = store
        .channel_pairing_request(req("1", "CCCCDDDD", 10))
        .await
        .unwrap();
    assert!(
        matches!(again, PairingRequestOutcome::Existing(ref r) if r.code == "AAAABBBB" && r.last_seen_at_ms == 10)
    );
    // Another sender proposing a code in use: refused so the caller picks another.
    assert_eq!(
        store
            .channel_pairing_request(req("2", "AAAABBBB", 20))
            .await
            .unwrap(),
        PairingRequestOutcome::CodeTaken
    );
    for (s, c) in [("2", "CODE2222"), ("3", "CODE3333")] {
        assert!(matches!(
            store.channel_pairing_request(req(s, c, 30)).await.unwrap(),
            PairingRequestOutcome::Created(_)
        ));
    }
    assert_eq!(
        store
            .channel_pairing_request(req("4", "CODE4444", 40))
            .await
            .unwrap(),
        PairingRequestOutcome::LimitReached { pending: 3 }
    );
    // Another account has its own cap.
    let mut other = req("4", "CODE4444", 40);
    other.account_id = "work".into();
    assert!(matches!(
        store.channel_pairing_request(other).await.unwrap(),
        PairingRequestOutcome::Created(_)
    ));
    assert_eq!(
        store
            .channel_pairing_list("telegram", Some("default"), 50)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        store
            .channel_pairing_list("telegram", None, 50)
            .await
            .unwrap()
            .len(),
        4
    );
    // After an hour the first request has expired and frees a slot.
    assert_eq!(
        store
            .channel_pairing_list("telegram", Some("default"), HOUR)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(matches!(
        store
            .channel_pairing_request(req("4", "CODE5555", HOUR))
            .await
            .unwrap(),
        PairingRequestOutcome::Created(_)
    ));
    store.close().await;
}

#[tokio::test]
async fn approve_moves_the_sender_to_the_allow_entries_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open_in_state_dir(dir.path(), StoreOptions::default()).unwrap();
        store
            .channel_pairing_request(req("42", "ABCDEFGH", 0))
            .await
            .unwrap();
        store
            .channel_pairing_request(req("43", "HGFEDCBA", 0))
            .await
            .unwrap();
        assert!(store
            .channel_pairing_approve("telegram", None, "nope", 1)
            .await
            .unwrap()
            .is_none());
        assert!(
            store
                .channel_pairing_approve("discord", None, "ABCDEFGH", 1)
                .await
                .unwrap()
                .is_none(),
            "other channel"
        );
        let approved = store
            .channel_pairing_approve("telegram", None, "abcdefgh", 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (approved.sender_id.as_str(), approved.account_id.as_str()),
            ("42", "default")
        );
        assert!(
            store
                .channel_pairing_approve("telegram", None, "ABCDEFGH", 2)
                .await
                .unwrap()
                .is_none(),
            "a code approves once"
        );
        let dismissed = store
            .channel_pairing_dismiss("telegram", Some("default"), "HGFEDCBA", 3)
            .await
            .unwrap();
        assert_eq!(dismissed.unwrap().sender_id, "43");
        assert!(store
            .channel_pairing_list("telegram", None, 4)
            .await
            .unwrap()
            .is_empty());
        store
            .channel_allow("telegram", "default", "7", 5)
            .await
            .unwrap();
        store
            .channel_allow("telegram", "default", "42", 6)
            .await
            .unwrap();
        store
            .set_channel_cursor("telegram", "default", "offset", "1001", 7)
            .await
            .unwrap();
        store.close().await;
    }
    let store = Store::open_in_state_dir(dir.path(), StoreOptions::default()).unwrap();
    let entries: Vec<String> = store
        .channel_allow_entries("telegram", "default")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.entry)
        .collect();
    assert_eq!(
        entries,
        vec!["42", "7"],
        "approval order, re-adding keeps the position"
    );
    assert_eq!(
        store
            .channel_cursor("telegram", "default", "offset")
            .await
            .unwrap()
            .as_deref(),
        Some("1001")
    );
    assert_eq!(
        store
            .channel_cursor("telegram", "work", "offset")
            .await
            .unwrap(),
        None
    );
    assert!(store
        .channel_revoke("telegram", "default", "7")
        .await
        .unwrap());
    assert!(!store
        .channel_revoke("telegram", "default", "7")
        .await
        .unwrap());
    // An expired code cannot be approved.
    store
        .channel_pairing_request(req("9", "EXPIRED2", 100))
        .await
        .unwrap();
    assert!(store
        .channel_pairing_approve("telegram", None, "EXPIRED2", 100 + HOUR)
        .await
        .unwrap()
        .is_none());
    store.close().await;
}

#[tokio::test]
async fn inbound_journal_keeps_pending_messages_across_reopen_until_handled() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_state_dir(dir.path(), StoreOptions::default()).unwrap();
    let msgs = vec![
        ("m1".to_string(), r#"{"text":"one"}"#.to_string()),
        ("m2".to_string(), r#"{"text":"two"}"#.to_string()),
    ];
    store
        .channel_inbound_record("telegram", "default", msgs, 100)
        .await
        .unwrap();
    // A redelivery keeps the first record.
    store
        .channel_inbound_record("telegram", "default", vec![("m1".into(), "{}".into())], 200)
        .await
        .unwrap();
    store
        .channel_inbound_handled(
            vec![("telegram".into(), "default".into(), vec!["m1".into()])],
            300,
        )
        .await
        .unwrap();
    drop(store);
    let store = Store::open_in_state_dir(dir.path(), StoreOptions::default()).unwrap();
    let pending = store
        .channel_inbound_pending("telegram", "default")
        .await
        .unwrap();
    assert_eq!(
        pending,
        vec![("m2".to_string(), r#"{"text":"two"}"#.to_string())]
    );
    assert!(store
        .channel_inbound_pending("telegram", "other")
        .await
        .unwrap()
        .is_empty());
    // Pruning drops handled records and stale pending ones.
    assert_eq!(store.channel_inbound_prune(400, 150).await.unwrap(), 2);
    assert!(store
        .channel_inbound_pending("telegram", "default")
        .await
        .unwrap()
        .is_empty());
}
