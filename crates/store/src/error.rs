use std::path::PathBuf;

/// Everything the store can fail with. Messages name the database file or the session key
/// so an operator can act on them.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create directory {path} for the database: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create database {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {path} has schema version {found}, newer than this build supports ({supported}); upgrade Pincer or point PINCER_STATE_DIR elsewhere")]
    SchemaTooNew {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("migration {version} ({name}) failed on {path}: {source}")]
    Migration {
        path: PathBuf,
        version: u32,
        name: &'static str,
        #[source]
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("no session with key {0:?}")]
    NoSuchSession(String),
    #[error("session {key:?} is at sessionId {actual}, not the expected {expected}")]
    SessionIdMismatch {
        key: String,
        expected: String,
        actual: String,
    },
    #[error("stored session entry for {key:?} is not valid JSON: {source}")]
    CorruptEntry {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot serialise {what}: {source}")]
    Serialize {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("invalid history cursor")]
    BadCursor,
    #[error(transparent)]
    Patch(#[from] pincer_sessions::PatchError),
    #[error("{0}")]
    Rejected(String),
    #[error("the store is shut down")]
    Closed,
    /// The database could not be opened (see [`crate::Store::open_in_background`]); the
    /// message is the opening error's.
    #[error("{0}")]
    Unavailable(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
