//! The event bus: the one place events are published. A payload is serialised once; each
//! recipient gets it framed with its own `seq`. Delivery applies the event's scope guard
//! (fail-closed for unknown events), an optional target filter, and the slow-consumer rule.

use std::sync::Arc;

use pincer_protocol::events::{self, EventGuard};
use pincer_protocol::frames::{EventEnvelope, StateVersion};
use serde::Serialize;

use crate::registry::{ConnHandle, ConnInfo, Delivery, Registry};
use crate::subscriptions::SessionAudience;

/// Which connections an event goes to (before the scope guard).
#[derive(Clone, Default)]
pub enum Target {
    /// Every authenticated connection that passes the guard.
    #[default]
    All,
    /// One connection (by registry id).
    Conn(u64),
    /// Connections matching a predicate.
    Filter(Arc<dyn Fn(&ConnInfo) -> bool + Send + Sync>),
    /// An event of one session: delivered per the connection's subscriptions
    /// ([`crate::subscriptions`]): `Subscribers` = only sockets subscribed to the key,
    /// `Readers` = every reader except `session-scoped-events` clients not subscribed to it.
    Session {
        key: Arc<str>,
        audience: SessionAudience,
    },
    /// Sockets that called `sessions.subscribe` (`sessions.changed`).
    SessionsSubscribers,
}

impl Target {
    /// The protocol's audience for `event` of the session `key` (canonical).
    pub fn session(event: &str, key: &str) -> Target {
        Target::Session {
            key: Arc::from(key),
            audience: SessionAudience::of_event(event),
        }
    }
}

/// Options of one publish.
#[derive(Clone, Default)]
pub struct PublishOpts {
    /// Skip (but still count a seq) for connections over their buffer limit instead of closing them.
    pub drop_if_slow: bool,
    pub target: Target,
    /// Attached to the frame (`presence`, `health`).
    pub state_version: Option<StateVersion>,
}

impl PublishOpts {
    pub fn droppable() -> Self {
        PublishOpts {
            drop_if_slow: true,
            ..Default::default()
        }
    }

    pub fn to_conn(id: u64) -> Self {
        PublishOpts {
            target: Target::Conn(id),
            ..Default::default()
        }
    }

    pub fn with_state_version(mut self, sv: StateVersion) -> Self {
        self.state_version = Some(sv);
        self
    }
}

/// What happened to one publish.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PublishReport {
    pub delivered: usize,
    pub dropped_slow: usize,
    pub closed_slow: usize,
    /// Not delivered because the event has no guard (unknown name) or is direct-only.
    pub rejected: bool,
}

/// The bus. Cheap to share (`Arc<GatewayState>` holds it).
pub struct EventBus {
    registry: Arc<Registry>,
}

impl EventBus {
    pub fn new(registry: Arc<Registry>) -> Self {
        EventBus { registry }
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Publish `event` with a serialisable payload.
    pub fn publish<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
        opts: PublishOpts,
    ) -> PublishReport {
        match serde_json::to_string(payload) {
            Ok(json) => self.publish_raw(event, Some(&json), opts),
            Err(e) => {
                tracing::error!(event, error = %e, "event payload failed to serialise");
                PublishReport {
                    rejected: true,
                    ..Default::default()
                }
            }
        }
    }

    /// Publish with a pre-serialised payload (`None` = no payload key).
    pub fn publish_raw(
        &self,
        event: &str,
        payload_json: Option<&str>,
        opts: PublishOpts,
    ) -> PublishReport {
        let Some(guard) = events::guard_of(event) else {
            tracing::debug!(
                event,
                "dropping event without a delivery guard (fail-closed)"
            );
            return PublishReport {
                rejected: true,
                ..Default::default()
            };
        };
        if guard == EventGuard::Direct {
            tracing::debug!(event, "direct-only event cannot be broadcast");
            return PublishReport {
                rejected: true,
                ..Default::default()
            };
        }
        let envelope = Arc::new(EventEnvelope::new(event, payload_json, opts.state_version));
        let mut report = PublishReport::default();
        let mut offer = |h: &Arc<ConnHandle>| {
            if !events::may_receive(guard, h.info.role, &h.info.scopes) {
                return;
            }
            match h.offer_event(&envelope, opts.drop_if_slow) {
                Delivery::Queued => report.delivered += 1,
                Delivery::DroppedSlow => report.dropped_slow += 1,
                Delivery::ClosedSlow => report.closed_slow += 1,
                Delivery::Closed => {}
            }
        };
        match &opts.target {
            Target::All => self.registry.for_each(offer),
            Target::Conn(id) => {
                if let Some(h) = self.registry.get(*id) {
                    offer(&h);
                }
            }
            Target::Filter(pred) => self.registry.for_each(|h| {
                if pred(&h.info) {
                    offer(h)
                }
            }),
            Target::Session { key, audience } => self.registry.for_each(|h| {
                if h.subscriptions.admits(key, *audience, &h.info.caps) {
                    offer(h)
                }
            }),
            Target::SessionsSubscribers => self.registry.for_each(|h| {
                if h.subscriptions.wants_sessions_changed() {
                    offer(h)
                }
            }),
        }
        report
    }

    /// Send a direct event (no `seq`) to one connection, e.g. node-targeted events.
    pub fn send_direct<T: Serialize + ?Sized>(&self, conn: u64, event: &str, payload: &T) -> bool {
        let Some(h) = self.registry.get(conn) else {
            return false;
        };
        let Ok(json) = serde_json::to_string(payload) else {
            return false;
        };
        let frame = EventEnvelope::new(event, Some(&json), None).frame(None);
        h.send_text(frame) == Delivery::Queued
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::tests::info;
    use crate::registry::{CloseRequest, Outgoing};
    use pincer_protocol::connect::Role;
    use pincer_protocol::scopes;
    use serde_json::{json, Value};

    fn bus_with(
        conns: &[(Role, &[&str])],
        max_buffered: usize,
    ) -> (EventBus, Vec<Arc<ConnHandle>>) {
        let registry = Arc::new(Registry::default());
        let mut handles = vec![];
        for (role, sc) in conns {
            let id = registry.next_id();
            let h = Arc::new(ConnHandle::new(info(id, *role, sc), max_buffered));
            registry.insert(Arc::clone(&h));
            handles.push(h);
        }
        (EventBus::new(registry), handles)
    }

    fn frames(h: &ConnHandle) -> Vec<Value> {
        let mut out = Vec::new();
        h.drain(&mut out, usize::MAX);
        out.into_iter()
            .map(|o| serde_json::from_str(&o.render()).unwrap_or_default())
            .collect()
    }

    #[test]
    fn seq_counts_only_events_delivered_to_this_client() {
        let (bus, h) = bus_with(
            &[(Role::Operator, &[scopes::READ]), (Role::Operator, &[])],
            1 << 20,
        );
        bus.publish("tick", &json!({"ts":1}), PublishOpts::default());
        bus.publish("presence", &json!({"presence":[]}), PublishOpts::default());
        bus.publish("tick", &json!({"ts":2}), PublishOpts::default());
        let reader: Vec<u64> = frames(&h[0])
            .iter()
            .map(|f| f["seq"].as_u64().unwrap_or(0))
            .collect();
        let scopeless: Vec<(String, u64)> = frames(&h[1])
            .iter()
            .map(|f| {
                (
                    f["event"].as_str().unwrap_or("").to_string(),
                    f["seq"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        assert_eq!(reader, vec![1, 2, 3]);
        assert_eq!(
            scopeless,
            vec![("tick".to_string(), 1), ("tick".to_string(), 2)]
        );
    }

    #[test]
    fn unknown_and_direct_events_are_not_broadcast() {
        let (bus, h) = bus_with(&[(Role::Operator, &[scopes::ADMIN])], 1 << 20);
        assert!(
            bus.publish("no.such.event", &json!({}), PublishOpts::default())
                .rejected
        );
        assert!(
            bus.publish("connect.challenge", &json!({}), PublishOpts::default())
                .rejected
        );
        assert!(frames(&h[0]).is_empty());
        assert_eq!(h[0].last_seq(), 0);
    }

    #[test]
    fn node_role_gets_only_unguarded_events() {
        let (bus, h) = bus_with(&[(Role::Node, &[scopes::ADMIN])], 1 << 20);
        bus.publish("presence", &json!({}), PublishOpts::default());
        bus.publish(
            "shutdown",
            &json!({"reason":"gateway stopping"}),
            PublishOpts::default(),
        );
        let f = frames(&h[0]);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0]["event"], "shutdown");
        // Events on node sockets carry no seq (spec invariant 6).
        assert!(f[0].get("seq").is_none());
    }

    #[test]
    fn slow_consumer_drops_droppable_and_closes_otherwise() {
        let payload = json!({"blob": "x".repeat(400)});
        let (bus, h) = bus_with(
            &[
                (Role::Operator, &[scopes::READ]),
                (Role::Operator, &[scopes::READ]),
            ],
            1000,
        );
        // Fill the first connection's buffer; the second drains as it goes.
        let r1 = bus.publish("presence", &payload, PublishOpts::droppable());
        assert_eq!(r1.delivered, 2);
        frames(&h[1]);
        let r2 = bus.publish("presence", &payload, PublishOpts::droppable());
        assert_eq!(r2.delivered, 2);
        frames(&h[1]);
        let r3 = bus.publish("presence", &payload, PublishOpts::droppable());
        assert_eq!((r3.delivered, r3.dropped_slow), (1, 1));
        // The dropped event still consumed seq 3 on the slow connection.
        assert_eq!(h[0].last_seq(), 3);
        assert_eq!(h[0].pending_close(), None);
        let after_drop: Vec<u64> = frames(&h[1])
            .iter()
            .map(|f| f["seq"].as_u64().unwrap_or(0))
            .collect();
        assert_eq!(after_drop, vec![3]);
        // A non-droppable event over the limit closes the slow connection with 1008.
        let mut big = Vec::new();
        h[0].drain(&mut big, usize::MAX);
        let filler = "y".repeat(300);
        h[0].send_text(filler.clone());
        h[0].send_text(filler);
        let r4 = bus.publish("tick", &payload, PublishOpts::default());
        assert_eq!(r4.closed_slow, 1);
        assert_eq!(r4.delivered, 1, "the fast consumer is unaffected");
        assert_eq!(
            h[0].pending_close(),
            Some(CloseRequest::Close(1008, "slow consumer".into()))
        );
        assert!(matches!(
            h[0].offer_event(
                &Arc::new(pincer_protocol::frames::EventEnvelope::new(
                    "tick", None, None
                )),
                false
            ),
            Delivery::Closed
        ));
    }

    #[test]
    fn payload_is_serialised_once_and_framed_per_connection() {
        let (bus, h) = bus_with(&[(Role::Operator, &[]), (Role::Node, &[])], 1 << 20);
        bus.publish("tick", &json!({"ts":5}), PublishOpts::default());
        bus.publish("tick", &json!({"ts":6}), PublishOpts::default());
        let mut a = Vec::new();
        let mut b = Vec::new();
        h[0].drain(&mut a, usize::MAX);
        h[1].drain(&mut b, usize::MAX);
        match (&a[1], &b[1]) {
            (Outgoing::Event(ea, sa), Outgoing::Event(eb, sb)) => {
                assert!(Arc::ptr_eq(ea, eb));
                assert_eq!((*sa, *sb), (Some(2), None));
            }
            _ => panic!("expected shared envelopes"),
        }
        let text = a.pop().map(Outgoing::render).unwrap_or_default();
        assert_eq!(
            text,
            r#"{"type":"event","event":"tick","payload":{"ts":6},"seq":2}"#
        );
    }

    #[test]
    fn session_targets_follow_subscriptions_and_caps() {
        let registry = Arc::new(Registry::default());
        let mk = |caps: Vec<String>| {
            let mut i = info(registry.next_id(), Role::Operator, &[scopes::READ]);
            i.caps = caps;
            let h = Arc::new(ConnHandle::new(i, 1 << 20));
            registry.insert(Arc::clone(&h));
            h
        };
        let plain = mk(vec![]);
        let scoped = mk(vec!["session-scoped-events".into()]);
        let subscribed = mk(vec!["session-scoped-events".into()]);
        assert_eq!(
            subscribed
                .subscriptions
                .subscribe_messages("agent:main:main"),
            Ok(true)
        );
        plain.subscriptions.subscribe_sessions_changed();
        let bus = EventBus::new(registry);
        let key = "agent:main:main";
        bus.publish(
            "session.message",
            &json!({"sessionKey": key}),
            PublishOpts {
                target: Target::session("session.message", key),
                ..Default::default()
            },
        );
        bus.publish(
            "chat",
            &json!({"sessionKey": key}),
            PublishOpts {
                target: Target::session("chat", key),
                ..Default::default()
            },
        );
        bus.publish(
            "sessions.changed",
            &json!({"sessionKey": key}),
            PublishOpts {
                target: Target::SessionsSubscribers,
                ..Default::default()
            },
        );
        let names = |h: &ConnHandle| -> Vec<String> {
            frames(h)
                .iter()
                .map(|f| f["event"].as_str().unwrap_or("").to_string())
                .collect()
        };
        assert_eq!(names(&plain), vec!["chat", "sessions.changed"]);
        assert!(names(&scoped).is_empty());
        assert_eq!(names(&subscribed), vec!["session.message", "chat"]);
    }

    #[test]
    fn targets_and_filters() {
        let (bus, h) = bus_with(
            &[
                (Role::Operator, &[scopes::READ]),
                (Role::Operator, &[scopes::READ]),
            ],
            1 << 20,
        );
        let id1 = h[1].info.id;
        bus.publish("presence", &json!({}), PublishOpts::to_conn(id1));
        let only_first = PublishOpts {
            target: Target::Filter(Arc::new(move |i: &ConnInfo| i.id != id1)),
            ..Default::default()
        };
        bus.publish("presence", &json!({}), only_first);
        assert_eq!(frames(&h[0]).len(), 1);
        assert_eq!(frames(&h[1]).len(), 1);
        assert!(bus.send_direct(id1, "node.invoke.request", &json!({"id":"x"})));
        let direct = frames(&h[1]);
        assert_eq!(direct[0].get("seq"), None);
    }
}
