use std::time::Duration;

/// Everything a channel operation can fail with. Messages are safe to show an operator:
/// they never contain tokens.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// The platform rejected the credentials (bad/revoked token). Not retried.
    #[error(
        "{channel}: the platform rejected the token ({detail}); check the configured credentials"
    )]
    InvalidToken {
        channel: &'static str,
        detail: String,
    },
    /// The platform asked us to slow down and the wait would exceed the retry budget.
    #[error("{channel}: rate limited by the platform (retry after {retry_after:?})")]
    RateLimited {
        channel: &'static str,
        retry_after: Duration,
    },
    /// The platform answered with an error.
    #[error("{channel}: {method} failed: {detail}")]
    Api {
        channel: &'static str,
        method: String,
        /// HTTP status or platform error code, when known.
        code: Option<i64>,
        detail: String,
    },
    /// The connection failed or broke (retried by the supervisor).
    #[error("{channel}: connection failed: {detail}")]
    Transport {
        channel: &'static str,
        detail: String,
    },
    /// The connection went silent for longer than the watchdog allows.
    #[error("{channel}: connection stalled (no activity for {idle:?})")]
    Stalled {
        channel: &'static str,
        idle: Duration,
    },
    /// Unrecoverable configuration or protocol state (e.g. Discord close code 4014).
    #[error("{channel}: {detail}")]
    Fatal {
        channel: &'static str,
        detail: String,
    },
    #[error("attachment of {size} bytes exceeds the {channel} limit of {limit} bytes")]
    MediaTooLarge {
        channel: &'static str,
        size: u64,
        limit: u64,
    },
    #[error("{channel} does not support {what}")]
    Unsupported {
        channel: &'static str,
        what: &'static str,
    },
    #[error("no channel account {channel}/{account_id} is configured")]
    UnknownAccount { channel: String, account_id: String },
    #[error("channel {channel}/{account_id} is not running")]
    NotRunning { channel: String, account_id: String },
    #[error("no pending pairing request with code {code} on {channel}")]
    UnknownPairingCode { channel: String, code: String },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] pincer_store::StoreError),
}

impl ChannelError {
    /// Whether retrying (after a backoff) can help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ChannelError::RateLimited { .. }
                | ChannelError::Transport { .. }
                | ChannelError::Stalled { .. }
        ) || matches!(self, ChannelError::Api { code: Some(c), .. } if *c >= 500)
    }

    /// Whether the adapter must stop (credentials or configuration are wrong).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            ChannelError::InvalidToken { .. } | ChannelError::Fatal { .. }
        )
    }
}

pub type Result<T, E = ChannelError> = std::result::Result<T, E>;
