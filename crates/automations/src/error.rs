use pincer_store::StoreError;

/// Everything the automations library can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AutomationError {
    /// Bad input (a job definition, a patch, a request): the message names the field.
    #[error("{0}")]
    Invalid(String),
    #[error("cron job not found: {0}")]
    NotFound(String),
    #[error("cron job {id} is at configRevision {actual}, not the expected {expected}")]
    Conflict {
        id: String,
        expected: String,
        actual: String,
    },
    #[error("cron job {0} is already running")]
    AlreadyRunning(String),
    #[error(
        "cron job {0} is system-owned; change its configuration instead (e.g. agents.*.heartbeat)"
    )]
    SystemOwned(String),
    #[error("stored cron job {id} is unreadable: {reason}")]
    Corrupt { id: String, reason: String },
    #[error("the scheduler is stopped")]
    Stopped,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AutomationError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        AutomationError::Invalid(msg.into())
    }
}

pub type Result<T, E = AutomationError> = std::result::Result<T, E>;
