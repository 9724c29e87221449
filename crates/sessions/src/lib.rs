//! Sessions, as a pure library: the session key grammar (`agent:<id>:<rest>`), the stored
//! [`SessionEntry`] shape, the typed transcript entries, and the lifecycle rules (when a
//! session gets a new `sessionId`, which timestamps an event touches, `/new` and `/reset`).
//!
//! Nothing here performs I/O or reads a clock: callers pass `now` (epoch milliseconds) and a
//! UTC offset, which keeps every rule deterministic and table-testable.

pub mod agent_id;
pub mod entry;
pub mod key;
pub mod lifecycle;
pub mod thinking;
pub mod time;
pub mod transcript;

pub use agent_id::{is_valid_agent_id, normalize_agent_id, DEFAULT_AGENT_ID};
pub use entry::{PatchError, SessionEntry, SessionPatch, UsageReport};
pub use key::{
    ChatType, DmScope, GroupScope, IdentityLinks, KeyError, PeerKind, PeerRoute, RoutingScope,
    SessionKey, SessionScope, SessionScopeMode, ThreadRef, DEFAULT_ACCOUNT_ID,
};
pub use lifecycle::{
    evaluate_freshness, new_session_id, parse_reset_command, Freshness, ResetCommand, ResetMode,
    ResetPlan, ResetPolicy, ResetReason, Touch, WindowReason,
};
pub use thinking::ThinkingLevel;
pub use transcript::{EntryMeta, EntryType, TranscriptEntry, CURRENT_SESSION_VERSION};
