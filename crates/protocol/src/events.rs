//! The event table with delivery guards (spec §6.1).

use crate::connect::Role;
use crate::scopes::{self, ScopeSet};

/// Who may receive a broadcast of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventGuard {
    /// Sent only on targeted paths (to one socket), never broadcast; carries no `seq`.
    Direct,
    /// Every authenticated client, any role.
    Everyone,
    /// Operators holding at least one of these scopes (satisfaction rule applies).
    AnyOf(&'static [&'static str]),
}

/// One row of the event table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventSpec {
    pub name: &'static str,
    pub guard: EventGuard,
    /// Listed in the reference's `GATEWAY_EVENTS` (`hello-ok.features.events`).
    pub advertised: bool,
}

const R: EventGuard = EventGuard::AnyOf(&[scopes::READ]);
const W: EventGuard = EventGuard::AnyOf(&[scopes::WRITE]);
const A: EventGuard = EventGuard::AnyOf(&[scopes::ADMIN]);
const P: EventGuard = EventGuard::AnyOf(&[scopes::PAIRING]);
const AP: EventGuard = EventGuard::AnyOf(&[scopes::APPROVALS]);
const Q: EventGuard = EventGuard::AnyOf(&[scopes::QUESTIONS]);
const T: EventGuard = EventGuard::AnyOf(&[scopes::TALK]);
const NONE: EventGuard = EventGuard::Everyone;
const DIRECT: EventGuard = EventGuard::Direct;

const fn ev(name: &'static str, guard: EventGuard) -> EventSpec {
    EventSpec {
        name,
        guard,
        advertised: true,
    }
}

const fn hidden(name: &'static str, guard: EventGuard) -> EventSpec {
    EventSpec {
        name,
        guard,
        advertised: false,
    }
}

/// Every known event, advertised ones in the reference's `GATEWAY_EVENTS` order.
pub static EVENTS: [EventSpec; 70] = [
    ev("connect.challenge", DIRECT),
    ev("agent", R),
    ev("chat", R),
    ev(
        "chat.metadata.changed",
        EventGuard::AnyOf(&[scopes::READ, scopes::SESSIONS_READ]),
    ),
    ev("models.snapshot", DIRECT),
    ev("ui.command", R),
    ev("session.approval", AP),
    ev("session.message", R),
    ev("session.observer", R),
    ev("session.operation", R),
    ev("session.sharing", R),
    ev("session.sharing.evidence", R),
    ev("session.suggestion", R),
    ev("session.typing", R),
    ev("session.tool", R),
    ev("sessions.changed", R),
    ev("controlUi.sessionPullRequests.changed", R),
    ev("plugins.controlUi.changed", R),
    ev("presence", R),
    ev("tick", NONE),
    ev("talk.mode", T),
    ev("talk.event", R),
    ev("talk.voice.change", T),
    ev("shutdown", NONE),
    ev("gateway.suspension", NONE),
    ev("health", NONE),
    ev("heartbeat", NONE),
    ev("cron", R),
    ev("task", R),
    ev("task.suggestion", R),
    ev("node.pair.requested", P),
    ev("node.pair.resolved", P),
    ev("node.presence", R),
    ev("node.hostStats", R),
    ev("node.runnerInventory.changed", R),
    ev("node.invoke.cancel", DIRECT),
    ev("node.invoke.input", DIRECT),
    ev("node.invoke.request", DIRECT),
    ev("device.pair.changed", P),
    ev("device.pair.requested", P),
    ev("device.pair.resolved", P),
    ev("device.pair.setup.completed", P),
    ev("device.pair.setup.deliveryUncertain", P),
    ev("users.prefs.changed", R),
    ev("skills.changed", R),
    ev("plugins.changed", R),
    ev("plugins.install.progress", A),
    ev("voicewake.changed", R),
    ev("voicewake.routing.changed", R),
    ev("exec.approval.requested", AP),
    ev("exec.approval.resolved", AP),
    ev("question.requested", Q),
    ev("question.resolved", Q),
    ev("plugin.approval.requested", AP),
    ev("plugin.approval.resolved", AP),
    ev("openclaw.approval.requested", AP),
    ev("openclaw.approval.resolved", AP),
    ev("terminal.data", A),
    ev("terminal.exit", A),
    ev("update.available", NONE),
    ev("update.run.changed", A),
    ev("portal.changed", R),
    ev("progressCard.changed", R),
    ev("mentions.changed", R),
    hidden("board.changed", R),
    hidden("board.command", R),
    hidden("chat.send_timing", R),
    hidden("chat.side_result", R),
    hidden("config.changed", R),
    hidden("sessions.catalog.host", R),
];

/// Number of events the reference advertises.
pub const ADVERTISED_EVENT_COUNT: usize = 64;

pub fn lookup(name: &str) -> Option<&'static EventSpec> {
    EVENTS.iter().find(|e| e.name == name)
}

/// The guard of a broadcast event: explicit table entry, else `plugin.*` → write, else none
/// (fail-closed: events without a guard are never broadcast).
pub fn guard_of(name: &str) -> Option<EventGuard> {
    match lookup(name) {
        Some(spec) => Some(spec.guard),
        None if name.starts_with("plugin.") => Some(W),
        None => None,
    }
}

/// `hasEventScope`: may a client with `role` and `scopes` receive a broadcast of `event`?
pub fn may_receive(guard: EventGuard, role: Role, granted: &ScopeSet) -> bool {
    match guard {
        EventGuard::Direct => false,
        EventGuard::Everyone => true,
        EventGuard::AnyOf(required) => {
            role == Role::Operator && required.iter().any(|s| granted.satisfies(s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advertised_set_matches_reference_count_and_order() {
        let advertised: Vec<&str> = EVENTS
            .iter()
            .filter(|e| e.advertised)
            .map(|e| e.name)
            .collect();
        assert_eq!(advertised.len(), ADVERTISED_EVENT_COUNT);
        assert_eq!(advertised.first(), Some(&"connect.challenge"));
        assert_eq!(advertised.last(), Some(&"mentions.changed"));
        let mut uniq = advertised.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), advertised.len());
    }

    #[test]
    fn guards() {
        let read = ScopeSet::new([scopes::READ]);
        let none = ScopeSet::empty();
        let g = |n| guard_of(n).unwrap_or(EventGuard::Direct);
        assert!(may_receive(g("tick"), Role::Node, &none));
        assert!(may_receive(g("shutdown"), Role::Operator, &none));
        assert!(!may_receive(g("presence"), Role::Operator, &none));
        assert!(may_receive(g("presence"), Role::Operator, &read));
        assert!(!may_receive(g("presence"), Role::Node, &read));
        assert!(may_receive(
            g("presence"),
            Role::Operator,
            &ScopeSet::new([scopes::WRITE])
        ));
        assert!(!may_receive(g("connect.challenge"), Role::Operator, &read));
        assert!(may_receive(
            g("chat.metadata.changed"),
            Role::Operator,
            &ScopeSet::new([scopes::SESSIONS_READ])
        ));
        assert!(!may_receive(
            g("device.pair.requested"),
            Role::Operator,
            &read
        ));
        assert_eq!(guard_of("totally.unknown"), None);
        assert!(may_receive(
            g("plugin.custom"),
            Role::Operator,
            &ScopeSet::new([scopes::WRITE])
        ));
        assert!(!may_receive(g("plugin.custom"), Role::Operator, &read));
    }
}
