#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Device pairing records against a real SQLite file.

use pincer_store::{
    DeviceTokenRecord, PairedDevice, PendingPairing, Store, StoreError, StoreOptions,
};

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open_in_state_dir(dir.path(), StoreOptions::default()).unwrap()
}

fn device(id: &str) -> PairedDevice {
    PairedDevice {
        device_id: id.into(),
        public_key: format!("key-{id}"),
        platform: Some("linux".into()),
        client_id: Some("cli".into()),
        client_mode: Some("cli".into()),
        role: Some("operator".into()),
        roles: vec!["operator".into()],
        scopes: vec!["operator.read".into()],
        approved_via: "silent".into(),
        created_at_ms: 10,
        approved_at_ms: 10,
        ..Default::default()
    }
}

fn token(id: &str, role: &str, byte: u8) -> DeviceTokenRecord {
    DeviceTokenRecord {
        device_id: id.into(),
        role: role.into(),
        token_sha256: [byte; 32],
        scopes: vec!["operator.read".into()],
        created_at_ms: 10,
        ..Default::default()
    }
}

fn pending(req: &str, dev: &str, expires: i64) -> PendingPairing {
    PendingPairing {
        request_id: req.into(),
        device_id: dev.into(),
        public_key: "k".into(),
        role: Some("operator".into()),
        roles: vec!["operator".into()],
        scopes: vec!["operator.admin".into()],
        reason: Some("not-paired".into()),
        created_at_ms: 1,
        expires_at_ms: expires,
        ..Default::default()
    }
}

#[tokio::test]
async fn devices_tokens_and_pending_round_trip_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .devices_write(|tx| {
            tx.put_device(&device("d1"))?;
            tx.put_token(&token("d1", "operator", 7))?;
            tx.put_pending(&pending("r1", "d2", 1_000))?;
            tx.put_pending(&pending("r2", "d2", 50))?;
            Ok(())
        })
        .await
        .unwrap();
    store.close().await;

    let store = open(&dir);
    let d = store.get_device("d1").await.unwrap().unwrap();
    assert_eq!(d.scopes, vec!["operator.read".to_string()]);
    assert_eq!(d.tokens.len(), 1);
    assert_eq!(d.tokens[0].token_sha256, [7u8; 32]);
    assert!(d.has_role("operator") && !d.has_role("node"));
    // Expired requests are invisible.
    let p = store.list_pending_pairings(100).await.unwrap();
    assert_eq!(
        p.iter().map(|p| p.request_id.as_str()).collect::<Vec<_>>(),
        vec!["r1"]
    );
    assert!(store
        .get_pending_pairing("r2", 100)
        .await
        .unwrap()
        .is_none());
    assert!(store
        .get_pending_pairing("r1", 100)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .get_pending_pairing("r1", 1_000)
        .await
        .unwrap()
        .is_none());

    // Deleting a device cascades to tokens and removes its pending requests.
    let (removed, pruned) = store
        .devices_write(|tx| {
            tx.put_pending(&pending("r3", "d1", 1_000))?;
            let removed = tx.delete_device("d1")?;
            let pruned = tx.prune_expired(100)?;
            Ok((removed, pruned))
        })
        .await
        .unwrap();
    assert!(removed);
    assert_eq!(pruned, 1);
    assert!(store.get_device("d1").await.unwrap().is_none());
    assert!(store
        .get_pending_pairing("r3", 100)
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.list_devices().await.unwrap().len(), 0);
}

#[tokio::test]
async fn a_failing_devices_write_rolls_back_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let err = store
        .devices_write(|tx| -> Result<(), StoreError> {
            tx.put_device(&device("d1"))?;
            Err(StoreError::Rejected("nope".into()))
        })
        .await;
    assert!(err.is_err());
    assert!(store.get_device("d1").await.unwrap().is_none());
    // A token for an unknown device violates the foreign key and is refused.
    let fk = store
        .devices_write(|tx| tx.put_token(&token("ghost", "operator", 1)))
        .await;
    assert!(fk.is_err(), "{fk:?}");
}

#[cfg(unix)]
#[tokio::test]
async fn database_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    store
        .devices_write(|tx| tx.put_device(&device("d1")))
        .await
        .unwrap();
    let mode = std::fs::metadata(store.path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(store.path().parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);
}
