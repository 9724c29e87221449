//! DM pairing (runtime spec §6.2): codes, requests and approvals, persisted in SQLite
//! through `pincer-store`, with an in-memory cache of approved senders so an allowed DM
//! costs no database read.
//!
//! Codes are 8 characters from `ABCDEFGHJKLMNPQRSTUVWXYZ23456789` (no `0 O 1 I`), expire
//! after one hour, and at most three requests are pending per channel account; further
//! unknown senders are ignored until a slot frees up.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use pincer_store::{ChannelPairingRequest, NewPairingRequest, PairingRequestOutcome, Store};
use serde::Serialize;

use crate::error::{ChannelError, Result};
use crate::status::now_ms;

/// The code alphabet: 32 symbols, so one random byte's low 5 bits pick one uniformly.
pub const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
/// Code length.
pub const CODE_LEN: usize = 8;
/// Lifetime of a pairing request.
pub const PAIRING_TTL: Duration = Duration::from_secs(60 * 60);
/// Pending requests per channel account.
pub const MAX_PENDING: usize = 3;

/// A fresh random pairing code.
pub fn generate_code() -> String {
    let mut bytes = [0u8; CODE_LEN];
    rand::fill(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(CODE_ALPHABET[usize::from(b & 31)]))
        .collect()
}

/// Whether `code` has the pairing-code shape (case-insensitive).
pub fn is_valid_code(code: &str) -> bool {
    code.len() == CODE_LEN
        && code
            .bytes()
            .all(|b| CODE_ALPHABET.contains(&b.to_ascii_uppercase()))
}

/// What happened to an unknown sender's DM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingOutcome {
    /// A new request: reply once with this code.
    Created(ChannelPairingRequest),
    /// A request is already pending: stay silent (the code was sent before).
    Pending(ChannelPairingRequest),
    /// Too many pending requests on this account: ignore the sender.
    LimitReached,
}

/// A pending request as `channels.pairing.list` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PairingEntry {
    pub channel: String,
    pub account_id: String,
    pub id: String,
    pub code: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
    pub meta: Option<serde_json::Value>,
}

impl From<ChannelPairingRequest> for PairingEntry {
    fn from(r: ChannelPairingRequest) -> Self {
        PairingEntry {
            meta: r
                .meta_json
                .as_deref()
                .and_then(|m| serde_json::from_str(m).ok()),
            channel: r.channel,
            account_id: r.account_id,
            id: r.sender_id,
            code: r.code,
            created_at: r.created_at_ms,
            last_seen_at: r.last_seen_at_ms,
            expires_at: r.expires_at_ms,
        }
    }
}

type AccountKey = (String, String);

/// Pairing service shared by every channel account. Cheap to clone.
#[derive(Clone)]
pub struct Pairing {
    store: Store,
    ttl: Duration,
    max_pending: usize,
    allowed: Arc<RwLock<HashMap<AccountKey, Arc<HashSet<String>>>>>,
}

impl std::fmt::Debug for Pairing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pairing").field("ttl", &self.ttl).finish()
    }
}

fn norm(s: &str) -> String {
    s.trim().to_ascii_lowercase()
}

impl Pairing {
    pub fn new(store: Store) -> Self {
        Self::with_limits(store, PAIRING_TTL, MAX_PENDING)
    }

    pub fn with_limits(store: Store, ttl: Duration, max_pending: usize) -> Self {
        Pairing {
            store,
            ttl,
            max_pending: max_pending.max(1),
            allowed: Arc::new(RwLock::new(HashMap::new())),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn allowed_set(&self, channel: &str, account_id: &str) -> Result<Arc<HashSet<String>>> {
        let key = (norm(channel), norm(account_id));
        if let Some(set) = self.allowed.read().get(&key) {
            return Ok(set.clone());
        }
        let entries = self.store.channel_allow_entries(&key.0, &key.1).await?;
        let set: Arc<HashSet<String>> = Arc::new(
            entries
                .into_iter()
                .map(|e| e.entry.to_ascii_lowercase())
                .collect(),
        );
        self.allowed.write().insert(key, set.clone());
        Ok(set)
    }

    fn invalidate(&self, channel: &str, account_id: &str) {
        self.allowed
            .write()
            .remove(&(norm(channel), norm(account_id)));
    }

    /// Whether the sender was approved for DMs on this account.
    pub async fn is_approved(
        &self,
        channel: &str,
        account_id: &str,
        sender_id: &str,
    ) -> Result<bool> {
        Ok(self
            .allowed_set(channel, account_id)
            .await?
            .contains(&sender_id.trim().to_ascii_lowercase()))
    }

    /// Gets or creates the sender's pairing request.
    pub async fn request(
        &self,
        channel: &str,
        account_id: &str,
        sender_id: &str,
        meta: Option<serde_json::Value>,
    ) -> Result<PairingOutcome> {
        let meta_json = meta.map(|m| m.to_string());
        // A clash with another live code is astronomically rare (32^8 codes); retry anyway.
        for _ in 0..8 {
            let outcome = self
                .store
                .channel_pairing_request(NewPairingRequest {
                    channel: norm(channel),
                    account_id: norm(account_id),
                    sender_id: sender_id.trim().to_string(),
                    code: generate_code(),
                    now_ms: now_ms(),
                    ttl_ms: i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX),
                    max_pending: self.max_pending,
                    meta_json: meta_json.clone(),
                })
                .await?;
            match outcome {
                PairingRequestOutcome::Created(r) => return Ok(PairingOutcome::Created(r)),
                PairingRequestOutcome::Existing(r) => return Ok(PairingOutcome::Pending(r)),
                PairingRequestOutcome::LimitReached { .. } => {
                    return Ok(PairingOutcome::LimitReached)
                }
                PairingRequestOutcome::CodeTaken => continue,
            }
        }
        Err(ChannelError::Invalid(
            "could not allocate a unique pairing code".into(),
        ))
    }

    /// `channels.pairing.list` / `pincer pairing list <channel>`.
    pub async fn list(&self, channel: &str, account_id: Option<&str>) -> Result<Vec<PairingEntry>> {
        let account = account_id.map(norm);
        Ok(self
            .store
            .channel_pairing_list(&norm(channel), account.as_deref(), now_ms())
            .await?
            .into_iter()
            .map(PairingEntry::from)
            .collect())
    }

    /// `channels.pairing.approve` / `pincer pairing approve <channel> <code>`: the sender
    /// may DM from now on.
    pub async fn approve(
        &self,
        channel: &str,
        code: &str,
        account_id: Option<&str>,
    ) -> Result<PairingEntry> {
        let account = account_id.map(norm);
        let approved = self
            .store
            .channel_pairing_approve(&norm(channel), account.as_deref(), code, now_ms())
            .await?
            .ok_or_else(|| ChannelError::UnknownPairingCode {
                channel: channel.to_string(),
                code: code.trim().to_ascii_uppercase(),
            })?;
        self.invalidate(&approved.channel, &approved.account_id);
        Ok(approved.into())
    }

    /// `channels.pairing.dismiss`: drops a pending request without approving it.
    pub async fn dismiss(
        &self,
        channel: &str,
        code: &str,
        account_id: Option<&str>,
    ) -> Result<PairingEntry> {
        let account = account_id.map(norm);
        self.store
            .channel_pairing_dismiss(&norm(channel), account.as_deref(), code, now_ms())
            .await?
            .map(PairingEntry::from)
            .ok_or_else(|| ChannelError::UnknownPairingCode {
                channel: channel.to_string(),
                code: code.trim().to_ascii_uppercase(),
            })
    }

    /// Removes an approved sender.
    pub async fn revoke(&self, channel: &str, account_id: &str, sender_id: &str) -> Result<bool> {
        let removed = self
            .store
            .channel_revoke(&norm(channel), &norm(account_id), sender_id.trim())
            .await?;
        self.invalidate(channel, account_id);
        Ok(removed)
    }

    /// Approved senders of an account, in approval order.
    pub async fn approved(&self, channel: &str, account_id: &str) -> Result<Vec<String>> {
        Ok(self
            .store
            .channel_allow_entries(&norm(channel), &norm(account_id))
            .await?
            .into_iter()
            .map(|e| e.entry)
            .collect())
    }
}

/// The reply an unknown DM sender gets (once, when the request is created).
pub fn pairing_message(channel: &str, sender_id: &str, code: &str) -> String {
    format!(
        "Pincer: access not configured.\n\nYour {channel} user id: {sender_id}\n\nPairing code: {code}\n\n\
         Ask the bot owner to approve with:\npincer pairing approve {channel} {code}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_spec_shape_and_vary() {
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            let code = generate_code();
            assert_eq!(code.len(), 8);
            assert!(code
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
            assert!(!code.contains(['0', 'O', '1', 'I']), "{code}");
            assert!(is_valid_code(&code) && is_valid_code(&code.to_ascii_lowercase()));
            seen.insert(code);
        }
        assert!(seen.len() > 1990, "codes repeat too often: {}", seen.len());
        // Every symbol of the alphabet shows up (uniform over 32 symbols).
        let all: HashSet<char> = seen.iter().flat_map(|c| c.chars()).collect();
        assert_eq!(all.len(), 32);
        assert!(!is_valid_code("ABCDEFG0") && !is_valid_code("ABC") && !is_valid_code("ABCDEFGI"));
    }
}
