#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Opening the database: the fresh-database build (one fsync, moved into place whole), the
//! background open the gateway uses (operations wait for it, a failure names its cause), and
//! what a build that died halfway leaves behind.

use std::path::Path;

use pincer_sessions::SessionKey;
use pincer_store::{EnsureSession, ListQuery, Store, StoreError, StoreOptions};

fn key(s: &str) -> SessionKey {
    SessionKey::canonicalize(s, "main").unwrap()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn user_version(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_database_is_complete_private_and_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in_state_dir(dir.path(), StoreOptions::default()).unwrap();
    let db = dir.path().join("state/pincer.sqlite");
    assert_eq!(user_version(&db), pincer_store::latest_version());
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(tables > 3, "schema created: {tables} tables");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&dir.path().join("state")), 0o700);
    }
    // Nothing of the build is left beside the database.
    assert!(
        names_in(&dir.path().join("state"))
            .iter()
            .all(|n| !n.contains(".creating-")),
        "{:?}",
        names_in(&dir.path().join("state"))
    );
    store
        .ensure_session(&key("main"), EnsureSession::at(1))
        .await
        .unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;
    let again = Store::open_in_state_dir(dir.path(), StoreOptions::default()).unwrap();
    let page = again.list_sessions(ListQuery::default()).await.unwrap();
    assert_eq!(page.total_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_issued_while_opening_in_the_background_wait_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/pincer.sqlite");
    let store = Store::open_in_background(&path, StoreOptions::default()).unwrap();
    // Issued at once, before the writer thread can have created the database.
    let main = key("main");
    let (ensured, listed) = tokio::join!(
        store.ensure_session(&main, EnsureSession::at(1)),
        store.list_sessions(ListQuery::default()),
    );
    ensured.unwrap();
    listed.unwrap();
    store.ready().await.unwrap();
    let page = store.list_sessions(ListQuery::default()).await.unwrap();
    assert_eq!(page.total_count, 1);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_cannot_be_opened_fails_every_operation_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
    }
    let store = Store::open_in_background(&path, StoreOptions::default()).unwrap();
    let err = store
        .ensure_session(&key("main"), EnsureSession::at(1))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("schema version 999, newer than this build supports"),
        "{err}"
    );
    let err = store.ready().await.unwrap_err();
    assert!(err.to_string().contains("schema version 999"), "{err}");
    let err = store.list_sessions(ListQuery::default()).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    // The database was left as it was.
    assert_eq!(user_version(&path), 999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_abandoned_by_a_dead_process_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    // A pid that cannot be alive (above the kernel's pid_max limit).
    for leftover in [
        "pincer.sqlite.creating-4194305",
        "pincer.sqlite.creating-4194305-journal",
    ] {
        std::fs::write(state.join(leftover), b"half a database").unwrap();
    }
    std::fs::write(state.join("unrelated.txt"), b"kept").unwrap();
    let store = Store::open_in_state_dir(dir.path(), StoreOptions::default()).unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    let names = names_in(&state);
    assert!(names.iter().all(|n| !n.contains(".creating-")), "{names:?}");
    assert!(names.contains(&"unrelated.txt".to_string()), "{names:?}");
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_file_where_the_database_belongs_is_migrated_in_place() {
    // What an interrupted start of an older build could leave: a zero-length file.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db.sqlite");
    std::fs::write(&path, b"").unwrap();
    let store = Store::open(&path, StoreOptions::default()).unwrap();
    assert_eq!(store.integrity_check().await.unwrap(), "ok");
    store.close().await;
    assert_eq!(user_version(&path), pincer_store::latest_version());
}
