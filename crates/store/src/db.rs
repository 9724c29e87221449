//! Opening connections, pragmas and migrations.

use std::path::{Path, PathBuf};
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

/// The writer connection of a ready database: created if missing (see [`create_fresh`]),
/// migrated, private (0600 in a 0700 directory).
pub(crate) fn open_and_migrate(path: &Path, durability: Durability) -> Result<Connection> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    if !path.exists() {
        create_fresh(path)?;
    }
    let mut conn = open_writer(path, durability)?;
    migrate(&mut conn, path)?;
    restrict_permissions(path);
    Ok(conn)
}

/// Builds a new database aside and moves it into place in one step.
///
/// Created in place, a database costs seven fsyncs on its first start (the rollback journal
/// that switches it to WAL, the directory, the WAL header and the migrations' commit), which
/// on a busy disk was most of a first start. Built in a temporary file nothing needs syncing
/// until the end: the file is complete when it is fsynced once and hard-linked under its
/// real name (which fails if another process created the database meanwhile; then that one
/// is used), and the directory is fsynced so the name survives a crash. A crash before that
/// leaves only the temporary file, removed by the next attempt, and no database: the next
/// start builds it again. Nothing is acknowledged to anyone before the database is in place.
fn create_fresh(path: &Path) -> Result<()> {
    remove_abandoned_builds(path);
    let tmp = creating_path(path);
    remove_with_sidecars(&tmp);
    let built = build_fresh(&tmp).and_then(|()| {
        let sync = |p: &Path| std::fs::File::open(p).and_then(|f| f.sync_all());
        let io = |source: std::io::Error| StoreError::Create {
            path: path.to_path_buf(),
            source,
        };
        sync(&tmp).map_err(io)?;
        restrict_permissions(&tmp);
        match std::fs::hard_link(&tmp, path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            sync(dir).map_err(io)?;
        }
        Ok(())
    });
    remove_with_sidecars(&tmp);
    built
}

/// Creates the schema in `tmp`, left in WAL mode and fully checkpointed into the main file.
fn build_fresh(tmp: &Path) -> Result<()> {
    let mut conn = Connection::open_with_flags(
        tmp,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: tmp.to_path_buf(),
        source,
    })?;
    // The file is not the database until it is linked into place (after one fsync), so
    // nothing here has to reach the disk in order.
    conn.pragma_update(None, "synchronous", "OFF")?;
    conn.query_row("PRAGMA journal_mode=MEMORY", [], |r| r.get::<_, String>(0))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrate(&mut conn, tmp)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Rejected(format!(
            "database {} cannot use WAL journaling (got {mode})",
            tmp.display()
        )));
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    conn.close().map_err(|(_, e)| StoreError::from(e))
}

fn creating_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!("{CREATING}{}", std::process::id()));
    path.with_file_name(name)
}

/// Suffix of a database being built, followed by the builder's process id.
const CREATING: &str = ".creating-";

/// Removes what a builder that died before finishing left behind (its process is gone).
fn remove_abandoned_builds(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    // Whether the builder is alive is read from /proc; without it, leave the files be.
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!("{name}{CREATING}");
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file
            .to_str()
            .and_then(|f| f.strip_prefix(&prefix))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new("/proc").join(pid.to_string()).exists() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn remove_with_sidecars(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut p = path.as_os_str().to_os_string();
        p.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(p));
    }
}

fn create_private_dir(dir: &Path) -> Result<()> {
    let wrap = |source| StoreError::CreateDir {
        path: dir.to_path_buf(),
        source,
    };
    if dir.is_dir() {
        return Ok(());
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(wrap)
    }
    #[cfg(not(unix))]
    {
        std::fs::create_dir_all(dir).map_err(wrap)
    }
}

fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
    }
    #[cfg(not(unix))]
    let _ = path;
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
