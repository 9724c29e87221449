//! Opening connections, pragmas and migrations.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::error::{Result, StoreError};

/// One schema migration (`migrations/NNNN_name.sql`).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

include!(concat!(env!("OUT_DIR"), "/migrations.rs"));

/// The migrations compiled into this build, in order.
pub fn migrations() -> &'static [Migration] {
    MIGRATIONS
}

/// The schema version this build creates (`PRAGMA user_version`).
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| i64::from(m.version))
}

/// How hard a commit is pushed to stable storage (see the crate docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: the WAL is fsynced at every commit. An acknowledged write
    /// survives a process kill *and* an OS crash or power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL`: no fsync per commit. Survives a process kill; the last
    /// commits before an OS crash or power loss may roll back (the database stays intact).
    Normal,
}

pub(crate) fn open_writer(path: &Path, durability: Durability) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Rejected(format!(
            "database {} cannot use WAL journaling (got {mode})",
            path.display()
        )));
    }
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // Keep the WAL from growing without bound between checkpoints.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

pub(crate) fn open_reader(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "query_only", "ON")?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Applies every migration newer than the database's `user_version` in one transaction
/// together with the version bump: an upgrade is all or nothing, and a fresh database costs
/// one durable commit (one WAL fsync) instead of one per migration, which was most of a
/// first start's time.
pub(crate) fn migrate(conn: &mut Connection, path: &Path) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let latest = latest_version();
    if current > latest {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found: current,
            supported: latest,
        });
    }
    let pending: Vec<&Migration> = MIGRATIONS
        .iter()
        .filter(|m| i64::from(m.version) > current)
        .collect();
    let Some(last) = pending.last() else {
        return Ok(());
    };
    let wrap = |m: &Migration| {
        let (version, name) = (m.version, m.name);
        move |source| StoreError::Migration {
            path: path.to_path_buf(),
            version,
            name,
            source,
        }
    };
    let tx = conn.transaction().map_err(wrap(last))?;
    for m in &pending {
        tx.execute_batch(m.sql).map_err(wrap(m))?;
    }
    tx.pragma_update(None, "user_version", last.version)
        .map_err(wrap(last))?;
    tx.commit().map_err(wrap(last))?;
    Ok(())
}
