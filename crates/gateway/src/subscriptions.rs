//! Per-connection session subscriptions (protocol §6.1) and the delivery rules of
//! session-scoped events.
//!
//! * `sessions.subscribe` turns on `sessions.changed` for the socket.
//! * `sessions.messages.subscribe {key}` adds a canonical session key; `session.message`,
//!   `session.tool` (and the other per-session streams) reach only sockets subscribed to
//!   that key. `agent` / `chat` go to every reader, except clients that announced the cap
//!   `session-scoped-events`: those get them only for keys they subscribed to.
//!
//! The set lives in the connection's [`crate::registry::ConnHandle`], so it disappears with the
//! connection and the event bus checks it without any shared lock: one atomic load when the
//! socket has no subscription, a short read lock of the socket's own set otherwise.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

/// Client capability: only receive `agent`/`chat`/... for subscribed sessions.
pub const CAP_SESSION_SCOPED_EVENTS: &str = "session-scoped-events";

/// Most keys one socket may subscribe to (bounded memory per connection).
pub const MAX_MESSAGE_SUBSCRIPTIONS: usize = 1024;

/// Who receives an event that belongs to one session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAudience {
    /// Only sockets subscribed to the key (`session.message`, `session.tool`,
    /// `session.approval`, `session.typing`, ...).
    Subscribers,
    /// Every socket the scope guard admits, except `session-scoped-events` clients that did
    /// not subscribe to the key (`agent`, `chat`, `chat.side_result`, `session.observer`).
    Readers,
}

impl SessionAudience {
    /// The protocol's rule for an event name.
    pub fn of_event(event: &str) -> SessionAudience {
        match event {
            "agent" | "chat" | "chat.side_result" | "session.observer" => SessionAudience::Readers,
            _ => SessionAudience::Subscribers,
        }
    }
}

/// One socket's subscriptions.
#[derive(Debug, Default)]
pub struct Subscriptions {
    sessions_changed: AtomicBool,
    /// Fast path: false while `keys` is empty.
    has_keys: AtomicBool,
    keys: RwLock<HashSet<Arc<str>>>,
}

/// Why a subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeError {
    TooMany,
}

impl Subscriptions {
    /// `sessions.subscribe`.
    pub fn subscribe_sessions_changed(&self) {
        self.sessions_changed.store(true, Ordering::Release);
    }

    /// `sessions.unsubscribe`.
    pub fn unsubscribe_sessions_changed(&self) {
        self.sessions_changed.store(false, Ordering::Release);
    }

    pub fn wants_sessions_changed(&self) -> bool {
        self.sessions_changed.load(Ordering::Acquire)
    }

    /// `sessions.messages.subscribe` for a canonical key. Returns whether it was new.
    pub fn subscribe_messages(&self, key: &str) -> Result<bool, SubscribeError> {
        let mut keys = self.keys.write();
        if keys.contains(key) {
            return Ok(false);
        }
        if keys.len() >= MAX_MESSAGE_SUBSCRIPTIONS {
            return Err(SubscribeError::TooMany);
        }
        keys.insert(Arc::from(key));
        self.has_keys.store(true, Ordering::Release);
        Ok(true)
    }

    /// `sessions.messages.unsubscribe`. Returns whether the key was subscribed.
    pub fn unsubscribe_messages(&self, key: &str) -> bool {
        let mut keys = self.keys.write();
        let removed = keys.remove(key);
        if keys.is_empty() {
            self.has_keys.store(false, Ordering::Release);
        }
        removed
    }

    /// Whether `sessions.messages.subscribe` named this key.
    pub fn is_subscribed(&self, key: &str) -> bool {
        self.has_keys.load(Ordering::Acquire) && self.keys.read().contains(key)
    }

    pub fn message_subscription_count(&self) -> usize {
        if !self.has_keys.load(Ordering::Acquire) {
            return 0;
        }
        self.keys.read().len()
    }

    /// Whether an event of `audience` for `key` goes to a socket with these subscriptions
    /// and capabilities.
    pub fn admits(&self, key: &str, audience: SessionAudience, caps: &[String]) -> bool {
        match audience {
            SessionAudience::Subscribers => self.is_subscribed(key),
            SessionAudience::Readers => {
                !caps.iter().any(|c| c == CAP_SESSION_SCOPED_EVENTS) || self.is_subscribed(key)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_unsubscribe_and_audiences() {
        let s = Subscriptions::default();
        let key = "agent:main:main";
        assert!(!s.wants_sessions_changed());
        s.subscribe_sessions_changed();
        assert!(s.wants_sessions_changed());
        assert!(!s.admits(key, SessionAudience::Subscribers, &[]));
        assert!(s.admits(key, SessionAudience::Readers, &[]));
        let scoped = vec![CAP_SESSION_SCOPED_EVENTS.to_string()];
        assert!(!s.admits(key, SessionAudience::Readers, &scoped));
        assert_eq!(s.subscribe_messages(key), Ok(true));
        assert_eq!(s.subscribe_messages(key), Ok(false));
        assert!(s.admits(key, SessionAudience::Subscribers, &[]));
        assert!(s.admits(key, SessionAudience::Readers, &scoped));
        assert!(!s.admits("agent:main:other", SessionAudience::Subscribers, &[]));
        assert!(s.unsubscribe_messages(key));
        assert!(!s.unsubscribe_messages(key));
        assert!(!s.admits(key, SessionAudience::Subscribers, &[]));
        assert_eq!(s.message_subscription_count(), 0);
    }

    #[test]
    fn subscriptions_are_bounded() {
        let s = Subscriptions::default();
        for i in 0..MAX_MESSAGE_SUBSCRIPTIONS {
            assert_eq!(s.subscribe_messages(&format!("agent:main:k{i}")), Ok(true));
        }
        assert_eq!(
            s.subscribe_messages("agent:main:one-more"),
            Err(SubscribeError::TooMany)
        );
    }

    #[test]
    fn audience_rules_follow_the_protocol() {
        assert_eq!(SessionAudience::of_event("chat"), SessionAudience::Readers);
        assert_eq!(SessionAudience::of_event("agent"), SessionAudience::Readers);
        assert_eq!(
            SessionAudience::of_event("session.message"),
            SessionAudience::Subscribers
        );
        assert_eq!(
            SessionAudience::of_event("session.tool"),
            SessionAudience::Subscribers
        );
    }
}
