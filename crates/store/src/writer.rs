//! The single writer thread: drains queued operations, applies a batch inside one
//! `BEGIN IMMEDIATE` transaction (each operation in its own savepoint, so one failing
//! operation does not sink its neighbours), commits once, and only then acknowledges every
//! operation of the batch. That is the group commit: one WAL sync covers the whole batch.

use std::collections::HashMap;

use pincer_sessions::{
    evaluate_freshness, new_session_id, EntryType, Freshness, ResetReason, SessionEntry,
    SessionKey, TranscriptEntry, WindowReason,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::{mpsc, oneshot};

use crate::error::{Result, StoreError};
use crate::types::{
    AppendAck, AppendOptions, DeleteOutcome, EnsureSession, Ensured, ResetOutcome, SessionRecord,
};

/// Most operations applied in one transaction.
const MAX_BATCH: usize = 1024;
/// Heads cached by the writer before the cache is dropped and rebuilt lazily.
const MAX_CACHED_HEADS: usize = 50_000;

pub(crate) type Ack<T> = oneshot::Sender<Result<T>>;
pub(crate) type UpdateFn = Box<dyn FnOnce(&mut SessionEntry) -> Result<()> + Send>;

pub(crate) enum Op {
    Ensure {
        key: SessionKey,
        req: Box<EnsureSession>,
        ack: Ack<Ensured>,
    },
    Append {
        key: String,
        entries: Vec<TranscriptEntry>,
        opts: AppendOptions,
        ack: Ack<AppendAck>,
    },
    Update {
        key: String,
        now_ms: i64,
        f: UpdateFn,
        ack: Ack<SessionRecord>,
    },
    Reset {
        key: SessionKey,
        reason: ResetReason,
        now_ms: i64,
        cwd: Option<String>,
        expected_session_id: Option<String>,
        ack: Ack<ResetOutcome>,
    },
    Delete {
        key: String,
        delete_transcript: bool,
        now_ms: i64,
        ack: Ack<DeleteOutcome>,
    },
    /// A device-pairing read-modify-write (`Store::devices_write`).
    Devices {
        f: crate::devices::DevicesFn,
        ack: Ack<Box<dyn std::any::Any + Send>>,
    },
    /// An automations read-modify-write (`Store::cron_write`).
    Cron {
        f: crate::cron::CronFn,
        ack: Ack<Box<dyn std::any::Any + Send>>,
    },
    /// A channel pairing/cursor read-modify-write (`Store::channels_write`).
    Channels {
        f: crate::channels::ChannelsFn,
        ack: Ack<Box<dyn std::any::Any + Send>>,
    },
    /// A node surface approval read-modify-write (`Store::nodes_write`).
    Nodes {
        f: crate::nodes::NodesFn,
        ack: Ack<Box<dyn std::any::Any + Send>>,
    },
    /// Any other module's write on the writer's connection (`Store::write_with`): exec
    /// approvals, the memory index.
    With {
        f: WithFn,
        ack: Ack<Box<dyn std::any::Any + Send>>,
    },
}

pub(crate) type WithFn =
    Box<dyn FnOnce(&Connection) -> Result<Box<dyn std::any::Any + Send>> + Send>;

/// The writer's view of a key's current transcript head.
#[derive(Clone, Debug)]
struct Head {
    session_id: String,
    last_seq: i64,
    leaf_id: Option<String>,
    /// Message entries in the window (the ordinal of the newest message).
    message_count: i64,
}

type Finish = Box<dyn FnOnce(Option<&str>) + Send>;

fn finisher<T: Send + 'static>(ack: Ack<T>, result: Result<T>) -> Finish {
    Box::new(move |commit_error: Option<&str>| {
        let outcome = match (commit_error, result) {
            (Some(e), _) => Err(StoreError::Rejected(format!("commit failed: {e}"))),
            (None, r) => r,
        };
        // The caller may have stopped waiting; nothing to do then.
        let _ = ack.send(outcome);
    })
}

pub(crate) fn run(mut conn: Connection, mut rx: mpsc::Receiver<Op>) {
    let mut heads: HashMap<String, Head> = HashMap::new();
    let mut batch: Vec<Op> = Vec::with_capacity(64);
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        if heads.len() > MAX_CACHED_HEADS {
            heads.clear();
        }
        apply_batch(&mut conn, &mut heads, batch.drain(..));
    }
    // All senders dropped: the store is closing. A final passive checkpoint keeps the WAL
    // short for the next start.
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)");
}

fn apply_batch(
    conn: &mut Connection,
    heads: &mut HashMap<String, Head>,
    ops: impl Iterator<Item = Op>,
) {
    let mut finishes: Vec<Finish> = Vec::new();
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let msg = e.to_string();
            tracing::error!(error = %msg, "store: cannot begin a write transaction; failing the batch");
            for op in ops {
                fail(op, &msg);
            }
            return;
        }
    };
    for op in ops {
        // Each op runs in a savepoint: a failing op rolls back only its own writes.
        let sp = match tx.savepoint() {
            Ok(sp) => sp,
            Err(e) => {
                fail(op, &e.to_string());
                continue;
            }
        };
        let mut staged: Vec<(String, Option<Head>)> = Vec::new();
        macro_rules! run_op {
            ($ack:expr, $result:expr) => {{
                let result = $result;
                let ok = result.is_ok();
                (finisher($ack, result), ok)
            }};
        }
        let (finish, ok) = match op {
            Op::Ensure { key, req, ack } => {
                run_op!(ack, ensure(&sp, heads, &mut staged, &key, &req))
            }
            Op::Append {
                key,
                entries,
                opts,
                ack,
            } => {
                run_op!(ack, append(&sp, heads, &mut staged, &key, entries, &opts))
            }
            Op::Update {
                key,
                now_ms,
                f,
                ack,
            } => run_op!(ack, update(&sp, &key, now_ms, f)),
            Op::Reset {
                key,
                reason,
                now_ms,
                cwd,
                expected_session_id,
                ack,
            } => run_op!(
                ack,
                reset(
                    &sp,
                    heads,
                    &mut staged,
                    &key,
                    reason,
                    now_ms,
                    cwd,
                    expected_session_id.as_deref()
                )
            ),
            Op::Delete {
                key,
                delete_transcript,
                now_ms,
                ack,
            } => run_op!(
                ack,
                delete(&sp, &mut staged, &key, delete_transcript, now_ms)
            ),
            Op::Devices { f, ack } => run_op!(ack, crate::devices::run_devices(&sp, f)),
            Op::Cron { f, ack } => run_op!(ack, crate::cron::run_cron(&sp, f)),
            Op::Channels { f, ack } => run_op!(ack, crate::channels::run_channels(&sp, f)),
            Op::Nodes { f, ack } => run_op!(ack, crate::nodes::run_nodes(&sp, f)),
            Op::With { f, ack } => run_op!(ack, f(&sp)),
        };
        if ok {
            if sp.commit().is_ok() {
                for (key, head) in staged {
                    match head {
                        Some(h) => {
                            heads.insert(key, h);
                        }
                        None => {
                            heads.remove(&key);
                        }
                    }
                }
            }
        } else {
            // Dropping the savepoint rolls back this op's writes only.
            drop(sp);
        }
        finishes.push(finish);
    }
    let commit_error = tx.commit().err().map(|e| e.to_string());
    if let Some(e) = &commit_error {
        tracing::error!(error = %e, "store: commit failed; every write of the batch is reported as failed");
        heads.clear();
    }
    for f in finishes {
        f(commit_error.as_deref());
    }
}

fn fail(op: Op, msg: &str) {
    let err = || StoreError::Rejected(format!("transaction could not start: {msg}"));
    match op {
        Op::Ensure { ack, .. } => drop(ack.send(Err(err()))),
        Op::Append { ack, .. } => drop(ack.send(Err(err()))),
        Op::Update { ack, .. } => drop(ack.send(Err(err()))),
        Op::Reset { ack, .. } => drop(ack.send(Err(err()))),
        Op::Delete { ack, .. } => drop(ack.send(Err(err()))),
        Op::Devices { ack, .. } => drop(ack.send(Err(err()))),
        Op::Cron { ack, .. } => drop(ack.send(Err(err()))),
        Op::Channels { ack, .. } => drop(ack.send(Err(err()))),
        Op::Nodes { ack, .. } => drop(ack.send(Err(err()))),
        Op::With { ack, .. } => drop(ack.send(Err(err()))),
    }
}

// ---------------------------------------------------------------------------------------
// Row helpers

pub(crate) fn load_record(conn: &Connection, key: &str) -> Result<Option<SessionRecord>> {
    let row: Option<(String, String, String)> = conn
        .prepare_cached("SELECT agent_id, kind, entry_json FROM sessions WHERE session_key = ?1")?
        .query_row([key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    row.map(|(agent_id, kind, json)| {
        let entry = serde_json::from_str(&json).map_err(|source| StoreError::CorruptEntry {
            key: key.to_string(),
            source,
        })?;
        Ok(SessionRecord {
            key: key.to_string(),
            agent_id,
            kind,
            entry,
        })
    })
    .transpose()
}

fn put_record(conn: &Connection, record: &SessionRecord) -> Result<()> {
    let e = &record.entry;
    let json = serde_json::to_string(e).map_err(|source| StoreError::Serialize {
        what: "session entry",
        source,
    })?;
    conn.prepare_cached(
        "INSERT INTO sessions (session_key, agent_id, kind, session_id, label, display_name, \
         created_at, updated_at, last_interaction_at, archived, entry_json) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) \
         ON CONFLICT (session_key) DO UPDATE SET agent_id = excluded.agent_id, kind = excluded.kind, \
         session_id = excluded.session_id, label = excluded.label, display_name = excluded.display_name, \
         created_at = excluded.created_at, updated_at = excluded.updated_at, \
         last_interaction_at = excluded.last_interaction_at, archived = excluded.archived, \
         entry_json = excluded.entry_json",
    )?
    .execute(params![
        record.key,
        record.agent_id,
        record.kind,
        e.session_id,
        e.label,
        e.display_name,
        e.created_at.unwrap_or(e.updated_at),
        e.updated_at,
        e.last_interaction_at,
        i64::from(e.archived_at.is_some()),
        json,
    ])?;
    Ok(())
}

fn load_head(conn: &Connection, heads: &HashMap<String, Head>, key: &str) -> Result<Option<Head>> {
    if let Some(h) = heads.get(key) {
        return Ok(Some(h.clone()));
    }
    let head = conn
        .prepare_cached(
            "SELECT w.session_id, w.last_seq, w.leaf_id, w.message_count FROM sessions s \
             JOIN session_windows w ON w.session_id = s.session_id WHERE s.session_key = ?1",
        )?
        .query_row([key], |r| {
            Ok(Head {
                session_id: r.get(0)?,
                last_seq: r.get(1)?,
                leaf_id: r.get(2)?,
                message_count: r.get(3)?,
            })
        })
        .optional()?;
    Ok(head)
}

/// Inserts entries after `head`, updating the window's counters; returns the new head.
fn insert_entries(
    conn: &Connection,
    head: &Head,
    entries: Vec<TranscriptEntry>,
    chain: bool,
    now_ms: i64,
) -> Result<Head> {
    let mut next = head.clone();
    let mut messages = 0i64;
    let count = entries.len() as i64;
    let mut insert = conn.prepare_cached(
        "INSERT INTO transcript_entries (session_id, seq, entry_type, entry_id, created_at, entry_json) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for mut entry in entries {
        if chain {
            set_parent(&mut entry, next.leaf_id.clone());
        }
        let json = serde_json::to_string(&entry).map_err(|source| StoreError::Serialize {
            what: "transcript entry",
            source,
        })?;
        let ty = entry.entry_type();
        if ty == EntryType::Message {
            messages += 1;
        }
        next.last_seq += 1;
        let id = entry.id().map(str::to_string);
        insert.execute(params![
            next.session_id,
            next.last_seq,
            ty.as_str(),
            id,
            now_ms,
            json
        ])?;
        if ty != EntryType::Session && id.is_some() {
            next.leaf_id = id;
        }
    }
    conn.prepare_cached(
        "UPDATE session_windows SET last_seq = ?1, entry_count = entry_count + ?2, \
         message_count = message_count + ?3, leaf_id = ?4 WHERE session_id = ?5",
    )?
    .execute(params![
        next.last_seq,
        count,
        messages,
        next.leaf_id,
        next.session_id
    ])?;
    next.message_count += messages;
    Ok(next)
}

fn set_parent(entry: &mut TranscriptEntry, parent: Option<String>) {
    let meta = match entry {
        TranscriptEntry::Message(e) => &mut e.meta,
        TranscriptEntry::ModelChange(e) => &mut e.meta,
        TranscriptEntry::ThinkingLevelChange(e) => &mut e.meta,
        TranscriptEntry::Compaction(e) => &mut e.meta,
        TranscriptEntry::Reset(e) => &mut e.meta,
        TranscriptEntry::BranchSummary(e) => &mut e.meta,
        TranscriptEntry::Custom(e) => &mut e.meta,
        TranscriptEntry::CustomMessage(e) => &mut e.meta,
        TranscriptEntry::Label(e) => &mut e.meta,
        TranscriptEntry::SessionInfo(e) => &mut e.meta,
        TranscriptEntry::Session(_) | TranscriptEntry::Leaf(_) => return,
    };
    meta.parent_id = parent;
}

/// Opens a new window for `key` with a header entry; returns its head.
#[allow(clippy::too_many_arguments)]
fn open_window(
    conn: &Connection,
    key: &str,
    agent_id: &str,
    session_id: &str,
    previous: Option<&str>,
    reason: WindowReason,
    now_ms: i64,
    cwd: Option<String>,
) -> Result<Head> {
    conn.prepare_cached(
        "INSERT INTO session_windows (session_id, session_key, agent_id, previous_session_id, reason, started_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![session_id, key, agent_id, previous, reason.as_str(), now_ms])?;
    let head = Head {
        session_id: session_id.to_string(),
        last_seq: 0,
        leaf_id: None,
        message_count: 0,
    };
    let header = TranscriptEntry::header(session_id, now_ms, cwd, None);
    insert_entries(conn, &head, vec![header], false, now_ms)
}

fn close_window(conn: &Connection, session_id: &str, reason: &str, now_ms: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE session_windows SET ended_at = ?1, end_reason = ?2 WHERE session_id = ?3 AND ended_at IS NULL",
    )?
    .execute(params![now_ms, reason, session_id])?;
    Ok(())
}

fn agent_of(key: &SessionKey) -> String {
    key.agent_id()
        .unwrap_or(pincer_sessions::DEFAULT_AGENT_ID)
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Operations. Each stages its head-cache changes in `staged`; they are applied to the cache
// only when the op's savepoint commits (a failing op's writes are rolled back).

fn ensure(
    conn: &Connection,
    heads: &HashMap<String, Head>,
    staged: &mut Vec<(String, Option<Head>)>,
    key: &SessionKey,
    req: &EnsureSession,
) -> Result<Ensured> {
    let key_text = key.to_string();
    let existing = load_record(conn, &key_text)?;
    let freshness = evaluate_freshness(
        existing.as_ref().map(|r| &r.entry),
        &req.policy,
        req.now_ms,
        req.utc_offset_ms,
    );
    match (freshness, existing) {
        (Freshness::Fresh, Some(mut record)) => {
            if let Some(touch) = req.touch {
                touch.apply(&mut record.entry, req.now_ms);
                put_record(conn, &record)?;
            }
            Ok(Ensured {
                record,
                created: false,
                rotated: None,
                previous_session_id: None,
            })
        }
        (Freshness::Stale(reason), Some(record)) => {
            let previous = record.entry.session_id.clone();
            let mut out = rotate(
                conn,
                heads,
                staged,
                record,
                reason,
                req.now_ms,
                req.cwd.clone(),
            )?;
            if let Some(touch) = req.touch {
                touch.apply(&mut out.entry, req.now_ms);
                put_record(conn, &out)?;
            }
            Ok(Ensured {
                record: out,
                created: false,
                rotated: Some(reason),
                previous_session_id: Some(previous),
            })
        }
        _ => {
            let record = create(
                conn,
                staged,
                key,
                req.template.clone(),
                req.now_ms,
                req.cwd.clone(),
                req.touch,
            )?;
            Ok(Ensured {
                record,
                created: true,
                rotated: None,
                previous_session_id: None,
            })
        }
    }
}

fn create(
    conn: &Connection,
    staged: &mut Vec<(String, Option<Head>)>,
    key: &SessionKey,
    template: Option<SessionEntry>,
    now_ms: i64,
    cwd: Option<String>,
    touch: Option<pincer_sessions::Touch>,
) -> Result<SessionRecord> {
    let key_text = key.to_string();
    let agent_id = agent_of(key);
    let session_id = new_session_id();
    let mut entry = template.unwrap_or_default();
    entry.session_id.clone_from(&session_id);
    entry.updated_at = now_ms;
    entry.created_at = Some(now_ms);
    entry.session_started_at = Some(now_ms);
    if entry.chat_type.is_none() {
        entry.chat_type = key.chat_type().map(|c| c.as_str().to_string());
    }
    if let Some(t) = touch {
        t.apply(&mut entry, now_ms);
    }
    let head = open_window(
        conn,
        &key_text,
        &agent_id,
        &session_id,
        None,
        WindowReason::Initial,
        now_ms,
        cwd,
    )?;
    let record = SessionRecord {
        key: key_text.clone(),
        agent_id,
        kind: key.classification().to_string(),
        entry,
    };
    put_record(conn, &record)?;
    staged.push((key_text, Some(head)));
    Ok(record)
}

/// Ends `record`'s current window (a `reset` entry records why) and opens the next one.
fn rotate(
    conn: &Connection,
    heads: &HashMap<String, Head>,
    staged: &mut Vec<(String, Option<Head>)>,
    record: SessionRecord,
    reason: ResetReason,
    now_ms: i64,
    cwd: Option<String>,
) -> Result<SessionRecord> {
    let old_id = record.entry.session_id.clone();
    if let Some(head) = load_head(conn, heads, &record.key)? {
        let reset = TranscriptEntry::reset(None, now_ms, reason.as_str());
        insert_entries(conn, &head, vec![reset], true, now_ms)?;
    }
    close_window(conn, &old_id, reason.as_str(), now_ms)?;
    let new_id = new_session_id();
    let head = open_window(
        conn,
        &record.key,
        &record.agent_id,
        &new_id,
        Some(&old_id),
        reason.window_reason(),
        now_ms,
        cwd,
    )?;
    let next = SessionRecord {
        entry: record.entry.rotated(new_id, now_ms),
        ..record
    };
    put_record(conn, &next)?;
    staged.push((next.key.clone(), Some(head)));
    Ok(next)
}

fn append(
    conn: &Connection,
    heads: &HashMap<String, Head>,
    staged: &mut Vec<(String, Option<Head>)>,
    key: &str,
    entries: Vec<TranscriptEntry>,
    opts: &AppendOptions,
) -> Result<AppendAck> {
    {
        let head = load_head(conn, heads, key)?
            .ok_or_else(|| StoreError::NoSuchSession(key.to_string()))?;
        if let Some(expected) = &opts.expected_session_id {
            if *expected != head.session_id {
                return Err(StoreError::SessionIdMismatch {
                    key: key.to_string(),
                    expected: expected.clone(),
                    actual: head.session_id,
                });
            }
        }
        let first_seq = head.last_seq + 1;
        let next = insert_entries(conn, &head, entries, opts.chain, opts.now_ms)?;
        if let Some(touch) = opts.touch {
            if let Some(mut record) = load_record(conn, key)? {
                touch.apply(&mut record.entry, opts.now_ms);
                put_record(conn, &record)?;
            }
        }
        let ack = AppendAck {
            session_id: next.session_id.clone(),
            first_seq,
            last_seq: next.last_seq,
            leaf_id: next.leaf_id.clone(),
            message_count: next.message_count,
            created_at: opts.now_ms,
        };
        staged.push((key.to_string(), Some(next)));
        Ok(ack)
    }
}

fn update(conn: &Connection, key: &str, now_ms: i64, f: UpdateFn) -> Result<SessionRecord> {
    let mut record =
        load_record(conn, key)?.ok_or_else(|| StoreError::NoSuchSession(key.to_string()))?;
    let before = record.entry.clone();
    f(&mut record.entry)?;
    if record.entry != before {
        record.entry.updated_at = record.entry.updated_at.max(now_ms);
        put_record(conn, &record)?;
    }
    Ok(record)
}

#[allow(clippy::too_many_arguments)]
fn reset(
    conn: &Connection,
    heads: &HashMap<String, Head>,
    staged: &mut Vec<(String, Option<Head>)>,
    key: &SessionKey,
    reason: ResetReason,
    now_ms: i64,
    cwd: Option<String>,
    expected_session_id: Option<&str>,
) -> Result<ResetOutcome> {
    {
        let key_text = key.to_string();
        match load_record(conn, &key_text)? {
            Some(record) => {
                if let Some(expected) = expected_session_id {
                    if expected != record.entry.session_id {
                        return Err(StoreError::SessionIdMismatch {
                            key: key_text,
                            expected: expected.to_string(),
                            actual: record.entry.session_id,
                        });
                    }
                }
                let previous = record.entry.session_id.clone();
                let record = rotate(conn, heads, staged, record, reason, now_ms, cwd)?;
                Ok(ResetOutcome {
                    record,
                    previous_session_id: Some(previous),
                })
            }
            None => {
                let record = create(conn, staged, key, None, now_ms, cwd, None)?;
                Ok(ResetOutcome {
                    record,
                    previous_session_id: None,
                })
            }
        }
    }
}

fn delete(
    conn: &Connection,
    staged: &mut Vec<(String, Option<Head>)>,
    key: &str,
    delete_transcript: bool,
    now_ms: i64,
) -> Result<DeleteOutcome> {
    {
        let removed = conn
            .prepare_cached("DELETE FROM sessions WHERE session_key = ?1")?
            .execute([key])?;
        let ids: Vec<String> = conn
            .prepare_cached(
                "SELECT session_id FROM session_windows WHERE session_key = ?1 ORDER BY started_at",
            )?
            .query_map([key], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let archived = if delete_transcript {
            for id in &ids {
                conn.prepare_cached("DELETE FROM transcript_entries WHERE session_id = ?1")?
                    .execute([id])?;
            }
            conn.prepare_cached("DELETE FROM session_windows WHERE session_key = ?1")?
                .execute([key])?;
            Vec::new()
        } else {
            for id in &ids {
                close_window(conn, id, "deleted", now_ms)?;
            }
            ids
        };
        staged.push((key.to_string(), None));
        Ok(DeleteOutcome {
            deleted: removed > 0,
            archived,
        })
    }
}
