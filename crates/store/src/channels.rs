//! Chat-channel DM pairing and channel cursors (migration 0003).
//!
//! The store keeps records only; the pairing rules (who gets a code, code alphabet, expiry,
//! the pending cap) live in `pincer-channels`, which passes them in. Every write runs on the
//! writer thread inside the batch transaction, so "count pending, then insert" and "find the
//! code, delete the request, add the allow entry" are atomic and acknowledged after `COMMIT`.
//! Reads use the read pool.

use std::any::Any;

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::{Result, StoreError};
use crate::writer::Op;
use crate::Store;

/// A pending DM pairing request (one per channel account and sender).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChannelPairingRequest {
    /// Channel id (`telegram`, `discord`, `slack`, …).
    pub channel: String,
    pub account_id: String,
    /// The sender's platform id (what an approval adds to the allow entries).
    pub sender_id: String,
    /// The pairing code shown to the sender.
    pub code: String,
    pub created_at_ms: i64,
    pub last_seen_at_ms: i64,
    pub expires_at_ms: i64,
    /// Free-form JSON about the sender (display name, username).
    pub meta_json: Option<String>,
}

/// What [`Store::channel_pairing_request`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingRequestOutcome {
    /// A new request was stored with the proposed code.
    Created(ChannelPairingRequest),
    /// The sender already has a live request (its `last_seen_at` was refreshed).
    Existing(ChannelPairingRequest),
    /// The account already has the maximum number of live requests; nothing was stored.
    LimitReached { pending: usize },
    /// The proposed code is already used by another live request of this channel; the caller
    /// should propose another one.
    CodeTaken,
}

/// Parameters of [`Store::channel_pairing_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPairingRequest {
    pub channel: String,
    pub account_id: String,
    pub sender_id: String,
    /// Proposed code (used only when a new request is created).
    pub code: String,
    pub now_ms: i64,
    /// Lifetime of a new request.
    pub ttl_ms: i64,
    /// Most live requests per channel account.
    pub max_pending: usize,
    pub meta_json: Option<String>,
}

/// An approved DM sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelAllowEntry {
    pub channel: String,
    pub account_id: String,
    pub entry: String,
    pub sort_order: i64,
    pub updated_at_ms: i64,
}

const REQUEST_COLUMNS: &str =
    "channel_key, account_id, request_id, code, created_at, last_seen_at, expires_at, meta_json";

fn request_from_row(r: &Row<'_>) -> rusqlite::Result<ChannelPairingRequest> {
    Ok(ChannelPairingRequest {
        channel: r.get(0)?,
        account_id: r.get(1)?,
        sender_id: r.get(2)?,
        code: r.get(3)?,
        created_at_ms: r.get(4)?,
        last_seen_at_ms: r.get(5)?,
        expires_at_ms: r.get(6)?,
        meta_json: r.get(7)?,
    })
}

fn allow_from_row(r: &Row<'_>) -> rusqlite::Result<ChannelAllowEntry> {
    Ok(ChannelAllowEntry {
        channel: r.get(0)?,
        account_id: r.get(1)?,
        entry: r.get(2)?,
        sort_order: r.get(3)?,
        updated_at_ms: r.get(4)?,
    })
}

fn live_requests(
    conn: &Connection,
    channel: &str,
    account_id: Option<&str>,
    now_ms: i64,
) -> Result<Vec<ChannelPairingRequest>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {REQUEST_COLUMNS} FROM channel_pairing_requests \
         WHERE channel_key = ?1 AND (?2 IS NULL OR account_id = ?2) AND expires_at > ?3 \
         ORDER BY created_at, request_id"
    ))?;
    let rows = stmt.query_map(params![channel, account_id, now_ms], request_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn allow_entries(
    conn: &Connection,
    channel: &str,
    account_id: &str,
) -> Result<Vec<ChannelAllowEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT channel_key, account_id, entry, sort_order, updated_at \
         FROM channel_pairing_allow_entries WHERE channel_key = ?1 AND account_id = ?2 \
         ORDER BY sort_order, entry",
    )?;
    let rows = stmt.query_map(params![channel, account_id], allow_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn get_cursor(
    conn: &Connection,
    channel: &str,
    account_id: &str,
    key: &str,
) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT value FROM channel_cursors \
             WHERE channel_key = ?1 AND account_id = ?2 AND cursor_key = ?3",
        )?
        .query_row(params![channel, account_id, key], |r| r.get(0))
        .optional()?)
}

/// The channel tables inside one writer transaction.
pub struct ChannelsTx<'a> {
    conn: &'a Connection,
}

impl ChannelsTx<'_> {
    /// Drops requests that expired at or before `now_ms`; returns how many.
    pub fn prune_expired(&mut self, now_ms: i64) -> Result<usize> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM channel_pairing_requests WHERE expires_at <= ?1")?
            .execute([now_ms])?)
    }

    /// Gets or creates the sender's pairing request (see [`PairingRequestOutcome`]).
    pub fn request(&mut self, req: &NewPairingRequest) -> Result<PairingRequestOutcome> {
        self.prune_expired(req.now_ms)?;
        let live = live_requests(self.conn, &req.channel, Some(&req.account_id), req.now_ms)?;
        if let Some(mut existing) = live.iter().find(|r| r.sender_id == req.sender_id).cloned() {
            self.conn
                .prepare_cached(
                    "UPDATE channel_pairing_requests SET last_seen_at = ?4 \
                     WHERE channel_key = ?1 AND account_id = ?2 AND request_id = ?3",
                )?
                .execute(params![
                    req.channel,
                    req.account_id,
                    req.sender_id,
                    req.now_ms
                ])?;
            existing.last_seen_at_ms = req.now_ms;
            return Ok(PairingRequestOutcome::Existing(existing));
        }
        if live.len() >= req.max_pending {
            return Ok(PairingRequestOutcome::LimitReached {
                pending: live.len(),
            });
        }
        let taken: bool = self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM channel_pairing_requests \
                 WHERE channel_key = ?1 AND code = ?2)",
            )?
            .query_row(params![req.channel, req.code], |r| r.get(0))?;
        if taken {
            return Ok(PairingRequestOutcome::CodeTaken);
        }
        let created = ChannelPairingRequest {
            channel: req.channel.clone(),
            account_id: req.account_id.clone(),
            sender_id: req.sender_id.clone(),
            code: req.code.clone(),
            created_at_ms: req.now_ms,
            last_seen_at_ms: req.now_ms,
            expires_at_ms: req.now_ms.saturating_add(req.ttl_ms),
            meta_json: req.meta_json.clone(),
        };
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO channel_pairing_requests ({REQUEST_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ))?
            .execute(params![
                created.channel,
                created.account_id,
                created.sender_id,
                created.code,
                created.created_at_ms,
                created.last_seen_at_ms,
                created.expires_at_ms,
                created.meta_json,
            ])?;
        Ok(PairingRequestOutcome::Created(created))
    }

    /// Approves the live request with `code` (case-insensitive) on `channel` (restricted to
    /// `account_id` when given): deletes the request and adds its sender to the account's
    /// allow entries. `None` when no live request has that code.
    pub fn approve(
        &mut self,
        channel: &str,
        account_id: Option<&str>,
        code: &str,
        now_ms: i64,
    ) -> Result<Option<ChannelPairingRequest>> {
        let code = code.trim().to_ascii_uppercase();
        let found = live_requests(self.conn, channel, account_id, now_ms)?
            .into_iter()
            .find(|r| r.code == code);
        let Some(request) = found else {
            return Ok(None);
        };
        self.delete_request(&request)?;
        self.allow(channel, &request.account_id, &request.sender_id, now_ms)?;
        Ok(Some(request))
    }

    /// Removes the live request with `code`; returns it.
    pub fn dismiss(
        &mut self,
        channel: &str,
        account_id: Option<&str>,
        code: &str,
        now_ms: i64,
    ) -> Result<Option<ChannelPairingRequest>> {
        let code = code.trim().to_ascii_uppercase();
        let found = live_requests(self.conn, channel, account_id, now_ms)?
            .into_iter()
            .find(|r| r.code == code);
        if let Some(request) = &found {
            self.delete_request(request)?;
        }
        Ok(found)
    }

    fn delete_request(&mut self, r: &ChannelPairingRequest) -> Result<()> {
        self.conn
            .prepare_cached(
                "DELETE FROM channel_pairing_requests \
                 WHERE channel_key = ?1 AND account_id = ?2 AND request_id = ?3",
            )?
            .execute(params![r.channel, r.account_id, r.sender_id])?;
        Ok(())
    }

    /// Adds `entry` to the account's allow entries (idempotent; keeps its first position).
    pub fn allow(
        &mut self,
        channel: &str,
        account_id: &str,
        entry: &str,
        now_ms: i64,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO channel_pairing_allow_entries \
                 (channel_key, account_id, entry, sort_order, updated_at) \
                 VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(sort_order), 0) + 1 \
                   FROM channel_pairing_allow_entries WHERE channel_key = ?1 AND account_id = ?2), ?4) \
                 ON CONFLICT (channel_key, account_id, entry) DO UPDATE SET updated_at = excluded.updated_at",
            )?
            .execute(params![channel, account_id, entry, now_ms])?;
        Ok(())
    }

    /// Removes `entry`; returns whether it existed.
    pub fn revoke(&mut self, channel: &str, account_id: &str, entry: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached(
                "DELETE FROM channel_pairing_allow_entries \
                 WHERE channel_key = ?1 AND account_id = ?2 AND entry = ?3",
            )?
            .execute(params![channel, account_id, entry])?
            > 0)
    }

    /// Sets a cursor value (e.g. the Telegram update offset).
    pub fn set_cursor(
        &mut self,
        channel: &str,
        account_id: &str,
        key: &str,
        value: &str,
        now_ms: i64,
    ) -> Result<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO channel_cursors (channel_key, account_id, cursor_key, value, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (channel_key, account_id, cursor_key) \
                 DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
            )?
            .execute(params![channel, account_id, key, value, now_ms])?;
        Ok(())
    }

    pub fn cursor(&self, channel: &str, account_id: &str, key: &str) -> Result<Option<String>> {
        get_cursor(self.conn, channel, account_id, key)
    }
}

type AnyBox = Box<dyn Any + Send>;
pub(crate) type ChannelsFn = Box<dyn FnOnce(&mut ChannelsTx<'_>) -> Result<AnyBox> + Send>;

/// Runs a channels closure on the writer's connection (called by the writer thread).
pub(crate) fn run_channels(conn: &Connection, f: ChannelsFn) -> Result<AnyBox> {
    let mut tx = ChannelsTx { conn };
    f(&mut tx)
}

impl Store {
    /// Atomic read-modify-write of the channel tables on the writer thread. Resolves after
    /// `COMMIT`; an `Err` from `f` rolls its writes back. `f` must be quick.
    pub async fn channels_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut ChannelsTx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let boxed: ChannelsFn = Box::new(move |tx| f(tx).map(|v| Box::new(v) as AnyBox));
        let out = self.submit(|ack| Op::Channels { f: boxed, ack }).await?;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::Rejected("channels_write: result type mismatch".into()))
    }

    /// Gets or creates a sender's pairing request.
    pub async fn channel_pairing_request(
        &self,
        req: NewPairingRequest,
    ) -> Result<PairingRequestOutcome> {
        self.channels_write(move |tx| tx.request(&req)).await
    }

    /// Approves a pairing code (see [`ChannelsTx::approve`]).
    pub async fn channel_pairing_approve(
        &self,
        channel: &str,
        account_id: Option<&str>,
        code: &str,
        now_ms: i64,
    ) -> Result<Option<ChannelPairingRequest>> {
        let (channel, account, code) = (
            channel.to_string(),
            account_id.map(str::to_string),
            code.to_string(),
        );
        self.channels_write(move |tx| tx.approve(&channel, account.as_deref(), &code, now_ms))
            .await
    }

    /// Dismisses a pairing code (see [`ChannelsTx::dismiss`]).
    pub async fn channel_pairing_dismiss(
        &self,
        channel: &str,
        account_id: Option<&str>,
        code: &str,
        now_ms: i64,
    ) -> Result<Option<ChannelPairingRequest>> {
        let (channel, account, code) = (
            channel.to_string(),
            account_id.map(str::to_string),
            code.to_string(),
        );
        self.channels_write(move |tx| tx.dismiss(&channel, account.as_deref(), &code, now_ms))
            .await
    }

    /// Live pairing requests of a channel (optionally one account), oldest first.
    pub async fn channel_pairing_list(
        &self,
        channel: &str,
        account_id: Option<&str>,
        now_ms: i64,
    ) -> Result<Vec<ChannelPairingRequest>> {
        let (channel, account) = (channel.to_string(), account_id.map(str::to_string));
        self.read(move |c| live_requests(c, &channel, account.as_deref(), now_ms))
            .await
    }

    /// Approved DM senders of a channel account, in approval order.
    pub async fn channel_allow_entries(
        &self,
        channel: &str,
        account_id: &str,
    ) -> Result<Vec<ChannelAllowEntry>> {
        let (channel, account) = (channel.to_string(), account_id.to_string());
        self.read(move |c| allow_entries(c, &channel, &account))
            .await
    }

    /// Adds an approved DM sender directly (operator allowlist edits).
    pub async fn channel_allow(
        &self,
        channel: &str,
        account_id: &str,
        entry: &str,
        now_ms: i64,
    ) -> Result<()> {
        let (channel, account, entry) = (
            channel.to_string(),
            account_id.to_string(),
            entry.to_string(),
        );
        self.channels_write(move |tx| tx.allow(&channel, &account, &entry, now_ms))
            .await
    }

    /// Removes an approved DM sender; returns whether it existed.
    pub async fn channel_revoke(
        &self,
        channel: &str,
        account_id: &str,
        entry: &str,
    ) -> Result<bool> {
        let (channel, account, entry) = (
            channel.to_string(),
            account_id.to_string(),
            entry.to_string(),
        );
        self.channels_write(move |tx| tx.revoke(&channel, &account, &entry))
            .await
    }

    /// A channel cursor (e.g. Telegram's next update offset).
    pub async fn channel_cursor(
        &self,
        channel: &str,
        account_id: &str,
        key: &str,
    ) -> Result<Option<String>> {
        let (channel, account, key) =
            (channel.to_string(), account_id.to_string(), key.to_string());
        self.read(move |c| get_cursor(c, &channel, &account, &key))
            .await
    }

    /// Durably sets a channel cursor.
    pub async fn set_channel_cursor(
        &self,
        channel: &str,
        account_id: &str,
        key: &str,
        value: &str,
        now_ms: i64,
    ) -> Result<()> {
        let (channel, account, key, value) = (
            channel.to_string(),
            account_id.to_string(),
            key.to_string(),
            value.to_string(),
        );
        self.channels_write(move |tx| tx.set_cursor(&channel, &account, &key, &value, now_ms))
            .await
    }
}

// ---- inbound journal (migration 0007) -------------------------------------------------------

impl ChannelsTx<'_> {
    /// Records inbound messages `(message_id, payload_json)` as pending (a message already
    /// recorded keeps its first record).
    pub fn inbound_record(
        &mut self,
        channel: &str,
        account_id: &str,
        messages: &[(String, String)],
        now_ms: i64,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO channel_inbound (channel_key, account_id, message_id, payload, received_at) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
        )?;
        for (id, payload) in messages {
            stmt.execute(params![channel, account_id, id, payload, now_ms])?;
        }
        Ok(())
    }

    /// Marks messages handled.
    pub fn inbound_handled(
        &mut self,
        channel: &str,
        account_id: &str,
        message_ids: &[String],
        now_ms: i64,
    ) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "UPDATE channel_inbound SET handled_at = ?4 \
             WHERE channel_key = ?1 AND account_id = ?2 AND message_id = ?3 AND handled_at IS NULL",
        )?;
        for id in message_ids {
            stmt.execute(params![channel, account_id, id, now_ms])?;
        }
        Ok(())
    }

    /// Deletes handled records older than `handled_before` and pending ones received before
    /// `pending_before` (too old to answer); returns how many were removed.
    pub fn inbound_prune(&mut self, handled_before: i64, pending_before: i64) -> Result<usize> {
        let a = self
            .conn
            .prepare_cached(
                "DELETE FROM channel_inbound WHERE handled_at IS NOT NULL AND handled_at < ?1",
            )?
            .execute(params![handled_before])?;
        let b = self
            .conn
            .prepare_cached(
                "DELETE FROM channel_inbound WHERE handled_at IS NULL AND received_at < ?1",
            )?
            .execute(params![pending_before])?;
        Ok(a + b)
    }
}

impl Store {
    /// Records inbound messages `(message_id, payload_json)` as pending; resolves after
    /// `COMMIT`.
    pub async fn channel_inbound_record(
        &self,
        channel: &str,
        account_id: &str,
        messages: Vec<(String, String)>,
        now_ms: i64,
    ) -> Result<()> {
        let (channel, account) = (channel.to_string(), account_id.to_string());
        self.channels_write(move |tx| tx.inbound_record(&channel, &account, &messages, now_ms))
            .await
    }

    /// Marks inbound messages handled, grouped by `(channel, account)`.
    pub async fn channel_inbound_handled(
        &self,
        marks: Vec<(String, String, Vec<String>)>,
        now_ms: i64,
    ) -> Result<()> {
        self.channels_write(move |tx| {
            for (channel, account, ids) in &marks {
                tx.inbound_handled(channel, account, ids, now_ms)?;
            }
            Ok(())
        })
        .await
    }

    /// Pending (recorded, not handled) inbound messages of an account, oldest first:
    /// `(message_id, payload_json)`.
    pub async fn channel_inbound_pending(
        &self,
        channel: &str,
        account_id: &str,
    ) -> Result<Vec<(String, String)>> {
        let (channel, account) = (channel.to_string(), account_id.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT message_id, payload FROM channel_inbound \
                 WHERE channel_key = ?1 AND account_id = ?2 AND handled_at IS NULL \
                 ORDER BY received_at, rowid",
            )?;
            let rows = stmt
                .query_map(params![channel, account], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    /// Drops old journal records (see [`ChannelsTx::inbound_prune`]).
    pub async fn channel_inbound_prune(
        &self,
        handled_before: i64,
        pending_before: i64,
    ) -> Result<usize> {
        self.channels_write(move |tx| tx.inbound_prune(handled_before, pending_before))
            .await
    }
}
