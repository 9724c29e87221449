#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Node surface approval records against a real SQLite file.

use pincer_store::{NodeMeta, NodePairingRequest, NodeSurface, Store, StoreOptions};

fn request(id: &str, node: &str, commands: &[&str], at: i64) -> NodePairingRequest {
    NodePairingRequest {
        request_id: id.into(),
        node_id: node.into(),
        meta: NodeMeta {
            display_name: Some("Laptop".into()),
            platform: Some("linux".into()),
            device_family: Some("Linux".into()),
            client_id: Some("node-host".into()),
            client_mode: Some("node".into()),
            ..Default::default()
        },
        caps: vec!["system".into()],
        commands: commands.iter().map(|c| c.to_string()).collect(),
        permissions: Some([("screen.record".to_string(), false)].into_iter().collect()),
        silent: true,
        created_at_ms: at,
    }
}

#[tokio::test]
async fn one_pending_request_per_node_and_atomic_approval() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_state_dir(dir.path(), StoreOptions::default()).unwrap();
    store
        .nodes_write(|tx| tx.put_request(&request("r1", "n1", &["system.run"], 1)))
        .await
        .unwrap();
    // A second request of the same node replaces the first.
    store
        .nodes_write(|tx| tx.put_request(&request("r2", "n1", &["system.run", "system.which"], 2)))
        .await
        .unwrap();
    store
        .nodes_write(|tx| tx.put_request(&request("r3", "n2", &[], 3)))
        .await
        .unwrap();
    let pending = store.list_node_pairing_requests().await.unwrap();
    assert_eq!(
        pending
            .iter()
            .map(|r| r.request_id.as_str())
            .collect::<Vec<_>>(),
        vec!["r3", "r2"],
        "newest first, r1 superseded"
    );
    assert_eq!(
        pending[1],
        request("r2", "n1", &["system.run", "system.which"], 2)
    );
    assert!(store
        .get_node_pairing_request("r1")
        .await
        .unwrap()
        .is_none());

    // Approve r2: surface stored and request gone in one transaction.
    let approved = store
        .nodes_write(|tx| {
            let Some(r) = tx.request("r2")? else {
                return Ok(None);
            };
            let s = NodeSurface {
                node_id: r.node_id.clone(),
                meta: r.meta.clone(),
                caps: r.caps.clone(),
                commands: r.commands.clone(),
                permissions: r.permissions.clone(),
                created_at_ms: 10,
                approved_at_ms: 10,
                ..Default::default()
            };
            tx.put_surface(&s)?;
            tx.delete_request("r2")?;
            Ok(Some(s))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(approved.commands, vec!["system.run", "system.which"]);
    let got = store.get_node_surface("n1").await.unwrap().unwrap();
    assert_eq!(got, approved);
    assert_eq!(store.list_node_pairing_requests().await.unwrap().len(), 1);

    // A failing closure rolls back its writes.
    let err = store
        .nodes_write(|tx| {
            tx.delete_surface("n1")?;
            Err::<(), _>(pincer_store::StoreError::Rejected("no".into()))
        })
        .await;
    assert!(err.is_err());
    assert!(store.get_node_surface("n1").await.unwrap().is_some());

    // Survives a reopen.
    store.close().await;
    let store = Store::open_in_state_dir(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.list_node_surfaces().await.unwrap(), vec![approved]);
    assert_eq!(
        store
            .nodes_write(|tx| tx.delete_requests_for_node("n2"))
            .await
            .unwrap(),
        1
    );
    assert!(store.list_node_pairing_requests().await.unwrap().is_empty());
}
