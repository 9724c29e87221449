//! Paired devices, device-token hashes and pending pairing requests (migration 0002).
//!
//! The store only keeps records; the pairing rules (who may approve what, silent approval,
//! token issuance) live in the gateway. Multi-step changes run through
//! [`Store::devices_write`]: a closure gets a [`DevicesTx`] on the writer thread, inside the
//! batch transaction, so a read-modify-write of one device is atomic and is acknowledged only
//! after `COMMIT`. Reads ([`Store::list_devices`], [`Store::get_device`], …) use the read pool.
//!
//! Device tokens are stored as SHA-256 hashes only ([`DeviceTokenRecord::token_sha256`]).

use std::any::Any;

use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::error::{Result, StoreError};
use crate::writer::Op;
use crate::Store;

/// A paired device (one row of `paired_devices`) with its token records.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PairedDevice {
    pub device_id: String,
    /// Canonical raw Ed25519 key, unpadded base64url.
    pub public_key: String,
    /// `client.displayName` as last reported.
    pub display_name: Option<String>,
    /// Operator-chosen label (`device.pair.rename`).
    pub label: Option<String>,
    /// Pinned (normalised) platform.
    pub platform: Option<String>,
    pub device_family: Option<String>,
    pub client_id: Option<String>,
    pub client_mode: Option<String>,
    pub browser_origin: Option<String>,
    pub remote_ip: Option<String>,
    /// The role of the request that was last approved.
    pub role: Option<String>,
    /// Approved roles, in approval order.
    pub roles: Vec<String>,
    /// Approved scope baseline, sorted and unique.
    pub scopes: Vec<String>,
    /// `silent`, `owner`, `trusted-proxy`, …
    pub approved_via: String,
    pub created_at_ms: i64,
    pub approved_at_ms: i64,
    pub last_seen_at_ms: Option<i64>,
    pub last_seen_reason: Option<String>,
    /// Token records by role (sorted by role). Filled by reads; ignored by `put_device`.
    pub tokens: Vec<DeviceTokenRecord>,
}

impl PairedDevice {
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    pub fn token(&self, role: &str) -> Option<&DeviceTokenRecord> {
        self.tokens.iter().find(|t| t.role == role)
    }
}

/// A device token: the hash of the bearer string and its grant.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceTokenRecord {
    pub device_id: String,
    pub role: String,
    /// SHA-256 of the token string (the token itself is never stored).
    pub token_sha256: [u8; 32],
    pub scopes: Vec<String>,
    pub created_at_ms: i64,
    pub rotated_at_ms: Option<i64>,
    pub revoked_at_ms: Option<i64>,
    pub last_used_at_ms: Option<i64>,
}

impl DeviceTokenRecord {
    /// When the current bearer string was issued.
    pub fn issued_at_ms(&self) -> i64 {
        self.rotated_at_ms.unwrap_or(self.created_at_ms)
    }

    pub fn is_active(&self) -> bool {
        self.revoked_at_ms.is_none()
    }
}

/// A pending pairing request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PendingPairing {
    pub request_id: String,
    pub device_id: String,
    pub public_key: String,
    pub display_name: Option<String>,
    pub platform: Option<String>,
    pub device_family: Option<String>,
    pub client_id: Option<String>,
    pub client_mode: Option<String>,
    pub browser_origin: Option<String>,
    pub role: Option<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub remote_ip: Option<String>,
    pub silent: bool,
    /// The device was already paired (role/scope/metadata upgrade).
    pub is_repair: bool,
    /// `not-paired`, `role-upgrade`, `scope-upgrade`, `metadata-upgrade`.
    pub reason: Option<String>,
    pub created_at_ms: i64,
    pub refreshed_at_ms: Option<i64>,
    pub expires_at_ms: i64,
}

fn json_list(list: &[String]) -> Result<String> {
    serde_json::to_string(list).map_err(|source| StoreError::Serialize {
        what: "string list",
        source,
    })
}

fn parse_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

fn hash_of(bytes: Vec<u8>) -> [u8; 32] {
    let mut out = [0u8; 32];
    if bytes.len() == 32 {
        out.copy_from_slice(&bytes);
    }
    out
}

const DEVICE_COLUMNS: &str = "device_id, public_key, display_name, label, platform, device_family, \
     client_id, client_mode, browser_origin, remote_ip, role, roles_json, scopes_json, approved_via, \
     created_at, approved_at, last_seen_at, last_seen_reason";

fn device_from_row(r: &Row<'_>) -> rusqlite::Result<PairedDevice> {
    Ok(PairedDevice {
        device_id: r.get(0)?,
        public_key: r.get(1)?,
        display_name: r.get(2)?,
        label: r.get(3)?,
        platform: r.get(4)?,
        device_family: r.get(5)?,
        client_id: r.get(6)?,
        client_mode: r.get(7)?,
        browser_origin: r.get(8)?,
        remote_ip: r.get(9)?,
        role: r.get(10)?,
        roles: parse_list(&r.get::<_, String>(11)?),
        scopes: parse_list(&r.get::<_, String>(12)?),
        approved_via: r.get(13)?,
        created_at_ms: r.get(14)?,
        approved_at_ms: r.get(15)?,
        last_seen_at_ms: r.get(16)?,
        last_seen_reason: r.get(17)?,
        tokens: Vec::new(),
    })
}

const TOKEN_COLUMNS: &str = "device_id, role, token_sha256, scopes_json, created_at, rotated_at, \
     revoked_at, last_used_at";

fn token_from_row(r: &Row<'_>) -> rusqlite::Result<DeviceTokenRecord> {
    Ok(DeviceTokenRecord {
        device_id: r.get(0)?,
        role: r.get(1)?,
        token_sha256: hash_of(r.get(2)?),
        scopes: parse_list(&r.get::<_, String>(3)?),
        created_at_ms: r.get(4)?,
        rotated_at_ms: r.get(5)?,
        revoked_at_ms: r.get(6)?,
        last_used_at_ms: r.get(7)?,
    })
}

const PENDING_COLUMNS: &str = "request_id, device_id, public_key, display_name, platform, \
     device_family, client_id, client_mode, browser_origin, role, roles_json, scopes_json, remote_ip, \
     silent, is_repair, reason, created_at, refreshed_at, expires_at";

fn pending_from_row(r: &Row<'_>) -> rusqlite::Result<PendingPairing> {
    Ok(PendingPairing {
        request_id: r.get(0)?,
        device_id: r.get(1)?,
        public_key: r.get(2)?,
        display_name: r.get(3)?,
        platform: r.get(4)?,
        device_family: r.get(5)?,
        client_id: r.get(6)?,
        client_mode: r.get(7)?,
        browser_origin: r.get(8)?,
        role: r.get(9)?,
        roles: parse_list(&r.get::<_, String>(10)?),
        scopes: parse_list(&r.get::<_, String>(11)?),
        remote_ip: r.get(12)?,
        silent: r.get::<_, i64>(13)? != 0,
        is_repair: r.get::<_, i64>(14)? != 0,
        reason: r.get(15)?,
        created_at_ms: r.get(16)?,
        refreshed_at_ms: r.get(17)?,
        expires_at_ms: r.get(18)?,
    })
}

fn tokens_of(conn: &Connection, device_id: &str) -> Result<Vec<DeviceTokenRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM device_tokens WHERE device_id = ?1 ORDER BY role"
    ))?;
    let rows = stmt.query_map([device_id], token_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn load_device(conn: &Connection, device_id: &str) -> Result<Option<PairedDevice>> {
    let device = conn
        .prepare_cached(&format!(
            "SELECT {DEVICE_COLUMNS} FROM paired_devices WHERE device_id = ?1"
        ))?
        .query_row([device_id], device_from_row)
        .optional()?;
    match device {
        Some(mut d) => {
            d.tokens = tokens_of(conn, device_id)?;
            Ok(Some(d))
        }
        None => Ok(None),
    }
}

fn load_devices(conn: &Connection) -> Result<Vec<PairedDevice>> {
    let mut devices: Vec<PairedDevice> = {
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {DEVICE_COLUMNS} FROM paired_devices ORDER BY approved_at, device_id"
        ))?;
        let rows = stmt.query_map([], device_from_row)?;
        rows.collect::<rusqlite::Result<Vec<_>>>()?
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {TOKEN_COLUMNS} FROM device_tokens ORDER BY role"
    ))?;
    let tokens = stmt
        .query_map([], token_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    for t in tokens {
        if let Some(d) = devices.iter_mut().find(|d| d.device_id == t.device_id) {
            d.tokens.push(t);
        }
    }
    Ok(devices)
}

fn load_pending(conn: &Connection, now_ms: i64) -> Result<Vec<PendingPairing>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {PENDING_COLUMNS} FROM device_pairing_requests WHERE expires_at > ?1 \
         ORDER BY created_at, request_id"
    ))?;
    let rows = stmt.query_map([now_ms], pending_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

fn load_pending_one(
    conn: &Connection,
    request_id: &str,
    now_ms: i64,
) -> Result<Option<PendingPairing>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {PENDING_COLUMNS} FROM device_pairing_requests \
             WHERE request_id = ?1 AND expires_at > ?2"
        ))?
        .query_row(params![request_id, now_ms], pending_from_row)
        .optional()?)
}

/// The device-pairing tables inside one writer transaction.
pub struct DevicesTx<'a> {
    conn: &'a Connection,
}

impl DevicesTx<'_> {
    pub fn device(&self, device_id: &str) -> Result<Option<PairedDevice>> {
        load_device(self.conn, device_id)
    }

    /// Inserts or replaces the device row (its `tokens` are not touched).
    pub fn put_device(&mut self, d: &PairedDevice) -> Result<()> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO paired_devices ({DEVICE_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18) \
                 ON CONFLICT (device_id) DO UPDATE SET public_key = excluded.public_key, \
                 display_name = excluded.display_name, label = excluded.label, \
                 platform = excluded.platform, device_family = excluded.device_family, \
                 client_id = excluded.client_id, client_mode = excluded.client_mode, \
                 browser_origin = excluded.browser_origin, remote_ip = excluded.remote_ip, \
                 role = excluded.role, roles_json = excluded.roles_json, \
                 scopes_json = excluded.scopes_json, approved_via = excluded.approved_via, \
                 created_at = excluded.created_at, approved_at = excluded.approved_at, \
                 last_seen_at = excluded.last_seen_at, last_seen_reason = excluded.last_seen_reason"
            ))?
            .execute(params![
                d.device_id,
                d.public_key,
                d.display_name,
                d.label,
                d.platform,
                d.device_family,
                d.client_id,
                d.client_mode,
                d.browser_origin,
                d.remote_ip,
                d.role,
                json_list(&d.roles)?,
                json_list(&d.scopes)?,
                d.approved_via,
                d.created_at_ms,
                d.approved_at_ms,
                d.last_seen_at_ms,
                d.last_seen_reason,
            ])?;
        Ok(())
    }

    /// Removes the device, its tokens and its pending requests; returns whether it existed.
    pub fn delete_device(&mut self, device_id: &str) -> Result<bool> {
        self.conn
            .prepare_cached("DELETE FROM device_pairing_requests WHERE device_id = ?1")?
            .execute([device_id])?;
        let n = self
            .conn
            .prepare_cached("DELETE FROM paired_devices WHERE device_id = ?1")?
            .execute([device_id])?;
        Ok(n > 0)
    }

    /// Inserts or replaces the token record of (device, role). The device must exist.
    pub fn put_token(&mut self, t: &DeviceTokenRecord) -> Result<()> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO device_tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
                 ON CONFLICT (device_id, role) DO UPDATE SET token_sha256 = excluded.token_sha256, \
                 scopes_json = excluded.scopes_json, created_at = excluded.created_at, \
                 rotated_at = excluded.rotated_at, revoked_at = excluded.revoked_at, \
                 last_used_at = excluded.last_used_at"
            ))?
            .execute(params![
                t.device_id,
                t.role,
                &t.token_sha256[..],
                json_list(&t.scopes)?,
                t.created_at_ms,
                t.rotated_at_ms,
                t.revoked_at_ms,
                t.last_used_at_ms,
            ])?;
        Ok(())
    }

    /// Pending requests (not expired at `now_ms`), oldest first.
    pub fn pending(&self, now_ms: i64) -> Result<Vec<PendingPairing>> {
        load_pending(self.conn, now_ms)
    }

    pub fn pending_request(&self, request_id: &str, now_ms: i64) -> Result<Option<PendingPairing>> {
        load_pending_one(self.conn, request_id, now_ms)
    }

    pub fn put_pending(&mut self, p: &PendingPairing) -> Result<()> {
        self.conn
            .prepare_cached(&format!(
                "INSERT INTO device_pairing_requests ({PENDING_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19) \
                 ON CONFLICT (request_id) DO UPDATE SET device_id = excluded.device_id, \
                 public_key = excluded.public_key, display_name = excluded.display_name, \
                 platform = excluded.platform, device_family = excluded.device_family, \
                 client_id = excluded.client_id, client_mode = excluded.client_mode, \
                 browser_origin = excluded.browser_origin, role = excluded.role, \
                 roles_json = excluded.roles_json, scopes_json = excluded.scopes_json, \
                 remote_ip = excluded.remote_ip, silent = excluded.silent, \
                 is_repair = excluded.is_repair, reason = excluded.reason, \
                 created_at = excluded.created_at, refreshed_at = excluded.refreshed_at, \
                 expires_at = excluded.expires_at"
            ))?
            .execute(params![
                p.request_id,
                p.device_id,
                p.public_key,
                p.display_name,
                p.platform,
                p.device_family,
                p.client_id,
                p.client_mode,
                p.browser_origin,
                p.role,
                json_list(&p.roles)?,
                json_list(&p.scopes)?,
                p.remote_ip,
                i64::from(p.silent),
                i64::from(p.is_repair),
                p.reason,
                p.created_at_ms,
                p.refreshed_at_ms,
                p.expires_at_ms,
            ])?;
        Ok(())
    }

    pub fn delete_pending(&mut self, request_id: &str) -> Result<bool> {
        let n = self
            .conn
            .prepare_cached("DELETE FROM device_pairing_requests WHERE request_id = ?1")?
            .execute([request_id])?;
        Ok(n > 0)
    }

    /// Drops requests that expired at or before `now_ms`; returns how many.
    pub fn prune_expired(&mut self, now_ms: i64) -> Result<usize> {
        Ok(self
            .conn
            .prepare_cached("DELETE FROM device_pairing_requests WHERE expires_at <= ?1")?
            .execute([now_ms])?)
    }
}

type AnyBox = Box<dyn Any + Send>;
pub(crate) type DevicesFn = Box<dyn FnOnce(&mut DevicesTx<'_>) -> Result<AnyBox> + Send>;

/// Runs a devices closure on the writer's connection (called by the writer thread).
pub(crate) fn run_devices(conn: &Connection, f: DevicesFn) -> Result<AnyBox> {
    let mut tx = DevicesTx { conn };
    f(&mut tx)
}

impl Store {
    /// Atomic read-modify-write of the device-pairing tables on the writer thread. Resolves
    /// after `COMMIT`; an `Err` from `f` rolls its writes back. `f` must be quick.
    pub async fn devices_write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut DevicesTx<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let boxed: DevicesFn = Box::new(move |tx| f(tx).map(|v| Box::new(v) as AnyBox));
        let out = self.submit(|ack| Op::Devices { f: boxed, ack }).await?;
        out.downcast::<T>()
            .map(|b| *b)
            .map_err(|_| StoreError::Rejected("devices_write: result type mismatch".into()))
    }

    /// Every paired device with its token records, oldest approval first.
    pub async fn list_devices(&self) -> Result<Vec<PairedDevice>> {
        self.read(load_devices).await
    }

    pub async fn get_device(&self, device_id: &str) -> Result<Option<PairedDevice>> {
        let id = device_id.to_string();
        self.read(move |c| load_device(c, &id)).await
    }

    /// Pending requests not expired at `now_ms`, oldest first.
    pub async fn list_pending_pairings(&self, now_ms: i64) -> Result<Vec<PendingPairing>> {
        self.read(move |c| load_pending(c, now_ms)).await
    }

    pub async fn get_pending_pairing(
        &self,
        request_id: &str,
        now_ms: i64,
    ) -> Result<Option<PendingPairing>> {
        let id = request_id.to_string();
        self.read(move |c| load_pending_one(c, &id, now_ms)).await
    }
}
