//! Per-account status (`channels.status`): connection state, last inbound/outbound time,
//! last error, reconnect count. Adapters update it; readers take cheap snapshots.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;
use serde::Serialize;
use tokio::sync::watch;

/// Connection state of one channel account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionState {
    /// Not started (or stopped by an operator).
    Stopped,
    /// Connecting for the first time.
    Starting,
    /// Connected and receiving.
    Running,
    /// Lost the connection; reconnecting with backoff.
    Reconnecting,
    /// Stopped because of an unrecoverable error (invalid token, disallowed intents …).
    Error,
}

/// A snapshot of one account's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    pub channel: String,
    pub account_id: String,
    pub state: ConnectionState,
    pub connected: bool,
    /// `polling`, `webhook`, `gateway`, `socket`.
    pub mode: Option<String>,
    /// The bot's own user id and handle once known.
    pub bot_id: Option<String>,
    pub bot_username: Option<String>,
    pub last_inbound_at: Option<i64>,
    pub last_outbound_at: Option<i64>,
    pub last_connected_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<i64>,
    pub reconnects: u64,
}

/// Shared, cheaply cloned status of one account.
#[derive(Debug, Clone)]
pub struct StatusHandle {
    inner: Arc<RwLock<AccountStatus>>,
    changed: Arc<watch::Sender<u64>>,
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl StatusHandle {
    pub fn new(channel: &str, account_id: &str) -> Self {
        StatusHandle {
            inner: Arc::new(RwLock::new(AccountStatus {
                channel: channel.to_string(),
                account_id: account_id.to_string(),
                state: ConnectionState::Stopped,
                connected: false,
                mode: None,
                bot_id: None,
                bot_username: None,
                last_inbound_at: None,
                last_outbound_at: None,
                last_connected_at: None,
                last_error: None,
                last_error_at: None,
                reconnects: 0,
            })),
            changed: Arc::new(watch::channel(0).0),
        }
    }

    pub fn snapshot(&self) -> AccountStatus {
        self.inner.read().clone()
    }

    /// Waits until `predicate` holds (or `timeout` passes); returns the last snapshot and
    /// whether it held. For tests and `channels.status` probes.
    pub async fn wait_for(
        &self,
        predicate: impl Fn(&AccountStatus) -> bool,
        timeout: std::time::Duration,
    ) -> (AccountStatus, bool) {
        let mut rx = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let snap = self.snapshot();
            if predicate(&snap) {
                return (snap, true);
            }
            if tokio::time::timeout_at(deadline, rx.changed())
                .await
                .is_err()
            {
                let snap = self.snapshot();
                let ok = predicate(&snap);
                return (snap, ok);
            }
        }
    }

    /// Notified on every state change (connected, reconnecting, error, stopped, identity,
    /// recorded errors); not on the per-message inbound/outbound timestamps.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn update(&self, f: impl FnOnce(&mut AccountStatus)) {
        f(&mut self.inner.write());
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The bot's own id and handle, once known.
    pub fn identity(&self) -> (Option<String>, Option<String>) {
        let s = self.inner.read();
        (s.bot_id.clone(), s.bot_username.clone())
    }

    pub fn set_mode(&self, mode: &str) {
        self.update(|s| s.mode = Some(mode.to_string()));
    }

    pub fn set_identity(&self, bot_id: &str, username: Option<&str>) {
        self.update(|s| {
            s.bot_id = Some(bot_id.to_string());
            s.bot_username = username.map(str::to_string);
        });
    }

    pub fn starting(&self) {
        self.update(|s| {
            s.state = ConnectionState::Starting;
            s.connected = false;
        });
    }

    pub fn connected(&self) {
        self.update(|s| {
            s.state = ConnectionState::Running;
            s.connected = true;
            s.last_connected_at = Some(now_ms());
        });
    }

    /// The connection broke; the supervisor is reconnecting.
    pub fn reconnecting(&self, error: &str) {
        self.update(|s| {
            s.state = ConnectionState::Reconnecting;
            s.connected = false;
            s.reconnects += 1;
            s.last_error = Some(error.to_string());
            s.last_error_at = Some(now_ms());
        });
    }

    /// Unrecoverable: the account stays down until restarted.
    pub fn failed(&self, error: &str) {
        self.update(|s| {
            s.state = ConnectionState::Error;
            s.connected = false;
            s.last_error = Some(error.to_string());
            s.last_error_at = Some(now_ms());
        });
    }

    /// A non-fatal error (a failed send) that does not change the state.
    pub fn record_error(&self, error: &str) {
        self.update(|s| {
            s.last_error = Some(error.to_string());
            s.last_error_at = Some(now_ms());
        });
    }

    pub fn stopped(&self) {
        self.update(|s| {
            if s.state != ConnectionState::Error {
                s.state = ConnectionState::Stopped;
            }
            s.connected = false;
        });
    }

    pub fn inbound(&self) {
        let now = now_ms();
        // Hot path: skip the notification, only the timestamp changes.
        self.inner.write().last_inbound_at = Some(now);
    }

    pub fn outbound(&self) {
        let now = now_ms();
        self.inner.write().last_outbound_at = Some(now);
    }
}
