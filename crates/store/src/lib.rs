//! Pincer's SQLite database — the only crate that issues SQL.
//!
//! One file, `<state>/state/pincer.sqlite`, in WAL mode, with versioned migrations
//! (`PRAGMA user_version`; one `migrations/NNNN_name.sql` file per migration, collected at
//! build time). Today it holds sessions (one row per session key, the reference-compatible
//! `SessionEntry` JSON plus indexed projections), session windows (one row per sessionId,
//! with why it began and ended), the append-only transcript, and device pairing (paired
//! devices per role, device-token hashes, pending pairing requests; see `devices`).
//!
//! # Concurrency
//!
//! All writes go through **one writer thread** fed by a bounded queue
//! ([`StoreOptions::queue_capacity`]). The thread drains whatever is queued (up to 1024
//! operations), applies it in one `BEGIN IMMEDIATE` transaction — each operation inside its
//! own savepoint, so a failing operation is rolled back alone — commits once, and only then
//! answers every caller. This *group commit* amortises one WAL sync over the whole batch.
//! Reads run on a small pool of read-only connections on `spawn_blocking`, so they never
//! wait for the writer (WAL readers see the last committed state) and never block async
//! workers. Read connections are opened when first needed, up to
//! [`StoreOptions::readers`].
//!
//! # Opening
//!
//! [`Store::open`] blocks until the database is open; [`Store::open_in_background`]
//! returns at once and lets the writer thread open it while the caller starts up (every
//! operation waits for it; [`Store::ready`] reports the outcome). A missing database is
//! built in a temporary file and moved into place whole after one fsync, instead of being
//! created in place at seven.
//!
//! # Durability
//!
//! An acknowledged write is durable: the acknowledgement is sent after `COMMIT` returned.
//! The default is `synchronous=FULL` ([`Durability::Full`]): SQLite fsyncs the WAL at every
//! commit, so an acknowledged entry survives a `SIGKILL` of the process, an OS crash and a
//! power loss (given a disk that honours fsync). `synchronous=NORMAL` would also survive
//! `SIGKILL` — the WAL frames are in the OS page cache once `COMMIT` returns — but the last
//! commits before an OS crash or power loss could roll back. With group commit, FULL costs
//! one fsync per *batch*, not per entry, which keeps the durable append rate well above the
//! 20k entries/s target under concurrent load (see `benches/store.rs`), so Pincer does not
//! trade durability for speed by default. `Durability::Normal` remains available for
//! throwaway state (tests, benchmarks of other parts).
//!
//! # Using it from the gateway
//!
//! ```no_run
//! # async fn demo(state_dir: &std::path::Path) -> Result<(), pincer_store::StoreError> {
//! use pincer_sessions::{SessionKey, Touch, TranscriptEntry};
//! use pincer_store::{AppendOptions, EnsureSession, HistoryQuery, EntryFilter, Store, StoreOptions};
//!
//! // Once at start-up (blocking; before serving or in spawn_blocking). Clone freely.
//! let store = Store::open_in_state_dir(state_dir, StoreOptions::default())?;
//! let now = 1_795_236_198_656;
//! let key = SessionKey::canonicalize("main", "main").expect("valid key");
//! // Inbound message: get or create (rotating a stale sessionId per the reset policy).
//! let mut req = EnsureSession::at(now);
//! req.touch = Some(Touch::UserMessage);
//! let session = store.ensure_session(&key, req).await?;
//! // Durable append; `ack.last_seq` is the entry's seq.
//! let entry = TranscriptEntry::message(None, now, serde_json::json!({"role": "user", "content": "hi"}));
//! let ack = store.append(&key, vec![entry], AppendOptions { chain: true, now_ms: now, ..Default::default() }).await?;
//! // chat.history: newest 200 messages, `next_cursor` pages back.
//! let page = store.history(&key, HistoryQuery { limit: 200, cursor: None, filter: EntryFilter::Messages }).await?;
//! # let _ = (session, ack, page);
//! store.close().await; // at shutdown, from the last handle
//! # Ok(()) }
//! ```
//!
//! # Adding a migration
//!
//! Create `migrations/NNNN_what.sql` with the next number. The build script embeds it; the
//! next `Store::open` applies it (all pending migrations in one transaction) and bumps
//! `user_version`. Migrations are append-only: never edit one that has shipped.

mod approvals;
mod channels;
mod cron;
mod db;
mod devices;
mod error;
mod memory;
mod nodes;
mod read;
mod types;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use pincer_sessions::{
    ResetReason, SessionEntry, SessionKey, SessionPatch, TranscriptEntry, UsageReport,
};
use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot, watch, Semaphore};

pub use approvals::{ApprovalFinish, ApprovalRecord, ApprovalStatus, FinishOutcome};
pub use channels::{
    ChannelAllowEntry, ChannelPairingRequest, ChannelsTx, NewPairingRequest, PairingRequestOutcome,
};
pub use cron::{
    CronIndexRow, CronJobRow, CronRunDelivery, CronRunFinish, CronRunPage, CronRunQuery,
    CronRunReceipt, CronRunStatus, CronScratch, CronTx, SortDir, MAX_SCRATCH_BYTES,
};
pub use db::{latest_version, migrations, Durability, Migration};
pub use devices::{DeviceTokenRecord, DevicesTx, PairedDevice, PendingPairing};
pub use error::{Result, StoreError};
pub use memory::{MemoryChunkRow, MemoryHitRow};
pub use nodes::{NodeMeta, NodePairingRequest, NodePermissions, NodeSurface, NodesTx};
pub use types::*;

use writer::Op;

/// Default file name under `<state>/state/`.
pub const DB_FILE_NAME: &str = "pincer.sqlite";

/// The database path for a state dir: `<state>/state/pincer.sqlite`.
pub fn db_path(state_dir: &Path) -> PathBuf {
    state_dir.join("state").join(DB_FILE_NAME)
}

/// Tuning knobs; the defaults suit the gateway.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub durability: Durability,
    /// Read connections in the pool.
    pub readers: usize,
    /// Bound of the writer queue (callers wait when it is full).
    pub queue_capacity: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Full,
            readers: 4,
            queue_capacity: 4096,
        }
    }
}

struct Readers {
    conns: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
}

/// Where opening the database stands (see [`Store::open_in_background`]).
#[derive(Debug, Clone)]
enum Opened {
    Opening,
    Ready,
    Failed(Arc<str>),
}

struct Inner {
    path: PathBuf,
    tx: mpsc::Sender<Op>,
    /// Fast path of [`Store::ready`] once the database is open.
    ready: Arc<AtomicBool>,
    opened: watch::Receiver<Opened>,
    readers: Readers,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// Handle to the database. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, applies pending migrations and
    /// starts the writer thread. Blocking: call it before the runtime starts serving, or
    /// from `spawn_blocking`.
    pub fn open(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let conn = db::open_and_migrate(&path, options.durability)?;
        Store::start(path, options, Some(conn))
    }

    /// Opens `<state>/state/pincer.sqlite`.
    pub fn open_in_state_dir(state_dir: &Path, options: StoreOptions) -> Result<Store> {
        Store::open(db_path(state_dir), options)
    }

    /// Like [`Store::open`], but returns at once: the writer thread opens (creates, migrates)
    /// the database while the caller goes on starting up. Every operation waits until the
    /// database is open (or fails with [`StoreError::Unavailable`] if it cannot be opened);
    /// [`Store::ready`] reports the outcome. The gateway binds its port meanwhile.
    pub fn open_in_background(path: impl AsRef<Path>, options: StoreOptions) -> Result<Store> {
        Store::start(path.as_ref().to_path_buf(), options, None)
    }

    /// Spawns the writer thread; with `conn` absent it opens the database first.
    fn start(path: PathBuf, options: StoreOptions, conn: Option<Connection>) -> Result<Store> {
        let (tx, rx) = mpsc::channel(options.queue_capacity.max(1));
        let (opened_tx, opened) = watch::channel(match conn {
            Some(_) => Opened::Ready,
            None => Opened::Opening,
        });
        let ready = Arc::new(AtomicBool::new(conn.is_some()));
        let thread_path = path.clone();
        let thread_ready = ready.clone();
        let durability = options.durability;
        let handle = std::thread::Builder::new()
            .name("pincer-store-writer".into())
            .spawn(move || {
                let conn = match conn {
                    Some(conn) => conn,
                    None => match db::open_and_migrate(&thread_path, durability) {
                        Ok(conn) => conn,
                        Err(e) => {
                            // Dropping `rx` fails the writes queued meanwhile; `ready` names why.
                            let _ = opened_tx.send(Opened::Failed(e.to_string().into()));
                            return;
                        }
                    },
                };
                thread_ready.store(true, Ordering::Release);
                let _ = opened_tx.send(Opened::Ready);
                writer::run(conn, rx)
            })
            .map_err(|e| {
                StoreError::Rejected(format!("cannot start the store writer thread: {e}"))
            })?;
        Ok(Store {
            inner: Arc::new(Inner {
                path,
                tx,
                ready,
                opened,
                readers: Readers {
                    permits: Arc::new(Semaphore::new(options.readers.max(1))),
                    conns: Mutex::new(Vec::new()),
                },
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Waits until the database is open and migrated; the error says why it could not be.
    pub async fn ready(&self) -> Result<()> {
        if self.inner.ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut opened = self.inner.opened.clone();
        let state = opened
            .wait_for(|o| !matches!(o, Opened::Opening))
            .await
            .map_err(|_| StoreError::Unavailable("the store writer thread exited".into()))?;
        match &*state {
            Opened::Failed(why) => Err(StoreError::Unavailable(why.to_string())),
            _ => Ok(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn submit<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Op) -> Result<T> {
        // Writes may queue while the database opens, but one that cannot be opened must say
        // so rather than "shut down".
        self.ready().await?;
        let (ack, rx) = oneshot::channel();
        self.inner
            .tx
            .send(make(ack))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// A write on the writer thread inside the batch transaction (its own savepoint): resolves
    /// after `COMMIT`; an `Err` from `f` rolls its writes back. `f` must be quick.
    pub(crate) async fn write_with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let boxed: writer::WithFn =
            Box::new(move |c| f(c).map(|v| Box::new(v) as Box<dyn std::any::Any + Send>));
        let out = self.submit(|ack| Op::With { f: boxed, ack }).await?;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::Rejected("write: result type mismatch".into()))
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let permit = self
            .inner
            .readers
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Closed)?;
        self.ready().await?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            // Read connections are opened on demand (at most `readers`, one per permit): an
            // idle gateway keeps one, not four, with its schema and page cache.
            let pooled = lock(&inner.readers.conns).pop();
            let conn = match pooled {
                Some(conn) => conn,
                None => db::open_reader(&inner.path)?,
            };
            // A read transaction gives multi-statement reads one consistent snapshot.
            let result = conn
                .execute_batch("BEGIN")
                .map_err(StoreError::from)
                .and_then(|()| f(&conn));
            let _ = conn.execute_batch("COMMIT");
            lock(&inner.readers.conns).push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Rejected(format!("read task failed: {e}")))?
    }

    // ---- sessions -------------------------------------------------------------------

    /// Gets or creates the session of `key`, rotating to a new sessionId first when the
    /// reset policy says the current one is stale (lifecycle rules of `pincer-sessions`).
    pub async fn ensure_session(&self, key: &SessionKey, req: EnsureSession) -> Result<Ensured> {
        let key = key.clone();
        self.submit(|ack| Op::Ensure {
            key,
            req: Box::new(req),
            ack,
        })
        .await
    }

    /// The session of `key` (`sessions.describe`).
    pub async fn get_session(&self, key: &SessionKey) -> Result<Option<SessionRecord>> {
        let key = key.to_string();
        self.read(move |c| read::get_session(c, &key)).await
    }

    /// `sessions.list`.
    pub async fn list_sessions(&self, query: ListQuery) -> Result<SessionPage> {
        self.read(move |c| read::list_sessions(c, &query)).await
    }

    /// `sessions.preview`: the last `limit` messages of each key as `{role, text}`.
    pub async fn preview(
        &self,
        keys: Vec<SessionKey>,
        limit: usize,
        max_chars: usize,
    ) -> Result<Vec<Preview>> {
        let keys: Vec<String> = keys.iter().map(ToString::to_string).collect();
        self.read(move |c| read::preview(c, &keys, limit, max_chars.max(20)))
            .await
    }

    /// Read-modify-write of a session entry on the writer thread. `f` must be quick.
    pub async fn update_session(
        &self,
        key: &SessionKey,
        now_ms: i64,
        f: impl FnOnce(&mut SessionEntry) -> Result<()> + Send + 'static,
    ) -> Result<SessionRecord> {
        let key = key.to_string();
        self.submit(|ack| Op::Update {
            key,
            now_ms,
            f: Box::new(f),
            ack,
        })
        .await
    }

    /// `sessions.patch`: per-session overrides; returns the record and the changed fields.
    pub async fn patch_session(
        &self,
        key: &SessionKey,
        patch: SessionPatch,
        now_ms: i64,
    ) -> Result<(SessionRecord, Vec<&'static str>)> {
        patch.validate()?;
        let changed = Arc::new(Mutex::new(Vec::new()));
        let out = changed.clone();
        let record = self
            .update_session(key, now_ms, move |entry| {
                let c = entry.apply_patch(&patch, now_ms)?;
                *lock(&out) = c;
                Ok(())
            })
            .await?;
        let changed = std::mem::take(&mut *lock(&changed));
        Ok((record, changed))
    }

    /// Records a finished run's usage counters.
    pub async fn record_usage(
        &self,
        key: &SessionKey,
        usage: UsageReport,
        now_ms: i64,
    ) -> Result<SessionRecord> {
        self.update_session(key, now_ms, move |entry| {
            entry.record_usage(&usage, now_ms);
            Ok(())
        })
        .await
    }

    /// `sessions.reset` / `/new`: ends the current sessionId (a `reset` entry with `reason`
    /// closes its transcript) and starts a new one with a fresh header. Creates the session
    /// when the key has none.
    pub async fn reset_session(
        &self,
        key: &SessionKey,
        reason: ResetReason,
        now_ms: i64,
        cwd: Option<String>,
        expected_session_id: Option<String>,
    ) -> Result<ResetOutcome> {
        let key = key.clone();
        self.submit(|ack| Op::Reset {
            key,
            reason,
            now_ms,
            cwd,
            expected_session_id,
            ack,
        })
        .await
    }

    /// `sessions.delete`: removes the key's row; with `delete_transcript` also every
    /// transcript of the key, otherwise the transcripts stay (their sessionIds are returned).
    pub async fn delete_session(
        &self,
        key: &SessionKey,
        delete_transcript: bool,
        now_ms: i64,
    ) -> Result<DeleteOutcome> {
        let key = key.to_string();
        self.submit(|ack| Op::Delete {
            key,
            delete_transcript,
            now_ms,
            ack,
        })
        .await
    }

    /// Every sessionId the key has had, oldest first.
    pub async fn session_windows(&self, key: &SessionKey) -> Result<Vec<SessionWindow>> {
        let key = key.to_string();
        self.read(move |c| read::windows(c, &key)).await
    }

    // ---- transcripts ----------------------------------------------------------------

    /// Appends entries to the current sessionId of `key`. Resolves after COMMIT: the
    /// entries are durable when this returns `Ok`.
    pub async fn append(
        &self,
        key: &SessionKey,
        entries: Vec<TranscriptEntry>,
        opts: AppendOptions,
    ) -> Result<AppendAck> {
        let key = key.to_string();
        self.submit(|ack| Op::Append {
            key,
            entries,
            opts,
            ack,
        })
        .await
    }

    /// A page of the current transcript of `key` (newest `limit` entries before the
    /// cursor, returned oldest first). `Ok(None)` when the key has no session.
    pub async fn history(
        &self,
        key: &SessionKey,
        query: HistoryQuery,
    ) -> Result<Option<HistoryPage>> {
        let key = key.to_string();
        self.read(move |c| match read::current_session_id(c, &key)? {
            Some(id) => read::history(c, &id, &query).map(Some),
            None => Ok(None),
        })
        .await
    }

    /// A page of a specific sessionId's transcript (archived windows included).
    pub async fn history_of(&self, session_id: &str, query: HistoryQuery) -> Result<HistoryPage> {
        let id = session_id.to_string();
        self.read(move |c| read::history(c, &id, &query)).await
    }

    /// The last `n` entries of a sessionId, oldest first.
    pub async fn tail(
        &self,
        session_id: &str,
        n: usize,
        filter: EntryFilter,
    ) -> Result<Vec<StoredEntry>> {
        let page = self
            .history_of(
                session_id,
                HistoryQuery {
                    limit: n,
                    cursor: None,
                    filter,
                },
            )
            .await?;
        Ok(page.entries)
    }

    /// Entry/message totals of a sessionId.
    pub async fn counts(&self, session_id: &str) -> Result<TranscriptCounts> {
        let id = session_id.to_string();
        self.read(move |c| read::counts(c, &id)).await
    }

    /// `PRAGMA integrity_check` (`"ok"` when healthy).
    pub async fn integrity_check(&self) -> Result<String> {
        self.read(|c| Ok(c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))?))
            .await
    }

    /// Whether this SQLite build has FTS5 (memory search needs it).
    pub async fn has_fts5(&self) -> Result<bool> {
        self.read(|c| {
            Ok(
                c.query_row("SELECT sqlite_compileoption_used('ENABLE_FTS5')", [], |r| {
                    r.get::<_, i64>(0)
                })? == 1,
            )
        })
        .await
    }

    /// Lets the writer drain and commit what is queued and waits for it to exit, when this
    /// is the last handle (otherwise it only drops this handle).
    pub async fn close(self) {
        // Only the last handle can close: the writer exits once every sender is gone.
        let Ok(inner) = Arc::try_unwrap(self.inner) else {
            return;
        };
        let Inner { tx, writer, .. } = inner;
        drop(tx);
        let handle = writer
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
