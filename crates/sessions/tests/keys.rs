#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Session key grammar: table-driven build/parse/canonicalise cases plus a build→parse
//! round-trip property.

use std::collections::BTreeMap;

use pincer_sessions::key::MAX_KEY_LEN;
use pincer_sessions::{
    DmScope, GroupScope, IdentityLinks, KeyError, PeerKind, PeerRoute, RoutingScope, SessionKey,
    SessionScope, SessionScopeMode, ThreadRef,
};
use proptest::prelude::*;

fn route<'a>(channel: &'a str, kind: PeerKind, peer: &'a str) -> PeerRoute<'a> {
    PeerRoute {
        agent_id: "main",
        channel,
        account_id: None,
        peer_kind: kind,
        peer_id: peer,
        thread_id: None,
        topic_id: None,
    }
}

fn scope(dm: DmScope, group: GroupScope) -> RoutingScope<'static> {
    RoutingScope {
        session_scope: SessionScopeMode::PerSender,
        dm_scope: dm,
        group_scope: group,
        identity_links: None,
    }
}

#[test]
fn build_table() {
    use DmScope::{PerAccountChannelPeer, PerChannelPeer, PerPeer};
    use GroupScope::PerGroup;
    use PeerKind::*;
    let links = IdentityLinks::new(BTreeMap::from([(
        "Alice".to_string(),
        vec!["telegram:123".to_string(), "987".to_string()],
    )]));
    let linked = |dm| RoutingScope {
        identity_links: Some(&links),
        ..scope(dm, PerGroup)
    };
    let with = |mut r: PeerRoute<'static>, f: fn(&mut PeerRoute<'static>)| {
        f(&mut r);
        r
    };
    let cases: Vec<(&str, PeerRoute<'static>, RoutingScope<'_>, &str)> = vec![
        (
            "dm main",
            route("telegram", Direct, "123"),
            scope(DmScope::Main, PerGroup),
            "agent:main:main",
        ),
        (
            "dm per-peer",
            route("telegram", Direct, " ABC "),
            scope(PerPeer, PerGroup),
            "agent:main:direct:abc",
        ),
        (
            "dm per-channel-peer",
            route("Telegram", Direct, "123"),
            scope(PerChannelPeer, PerGroup),
            "agent:main:telegram:direct:123",
        ),
        (
            "dm per-account default",
            route("telegram", Direct, "123"),
            scope(PerAccountChannelPeer, PerGroup),
            "agent:main:telegram:default:direct:123",
        ),
        (
            "dm per-account named",
            with(route("telegram", Direct, "123"), |r| {
                r.account_id = Some("Work")
            }),
            scope(PerAccountChannelPeer, PerGroup),
            "agent:main:telegram:work:direct:123",
        ),
        (
            "dm per-account empty account",
            with(route("telegram", Direct, "123"), |r| {
                r.account_id = Some("  ")
            }),
            scope(PerAccountChannelPeer, PerGroup),
            "agent:main:telegram:default:direct:123",
        ),
        (
            "identity link scoped id",
            route("telegram", Direct, "123"),
            linked(PerPeer),
            "agent:main:direct:alice",
        ),
        (
            "identity link raw id",
            route("discord", Direct, "987"),
            linked(PerChannelPeer),
            "agent:main:discord:direct:alice",
        ),
        (
            "identity link no match",
            route("discord", Direct, "123"),
            linked(PerChannelPeer),
            "agent:main:discord:direct:123",
        ),
        (
            "identity link ignored for main",
            route("telegram", Direct, "123"),
            linked(DmScope::Main),
            "agent:main:main",
        ),
        (
            "group",
            route("telegram", Group, "-1001234567890"),
            scope(DmScope::Main, PerGroup),
            "agent:main:telegram:group:-1001234567890",
        ),
        (
            "group scope main",
            route("telegram", Group, "-100"),
            scope(PerPeer, GroupScope::Main),
            "agent:main:main",
        ),
        (
            "channel",
            route("discord", Channel, "123456"),
            scope(DmScope::Main, PerGroup),
            "agent:main:discord:channel:123456",
        ),
        (
            "slack channel lowercased",
            route("slack", Channel, "C0ABC"),
            scope(DmScope::Main, PerGroup),
            "agent:main:slack:channel:c0abc",
        ),
        (
            "signal group keeps case",
            route("signal", Group, "AbC+/="),
            scope(DmScope::Main, PerGroup),
            "agent:main:signal:group:AbC+/=",
        ),
        (
            "matrix room keeps case",
            route("matrix", Channel, "!RoomX:matrix.org"),
            scope(DmScope::Main, PerGroup),
            "agent:main:matrix:channel:!RoomX:matrix.org",
        ),
        (
            "telegram topic",
            with(route("telegram", Group, "-1001234567890"), |r| {
                r.topic_id = Some("42")
            }),
            scope(DmScope::Main, PerGroup),
            "agent:main:telegram:group:-1001234567890:topic:42",
        ),
        (
            "discord thread",
            with(route("discord", Channel, "123456"), |r| {
                r.thread_id = Some("987654")
            }),
            scope(DmScope::Main, PerGroup),
            "agent:main:discord:channel:123456:thread:987654",
        ),
        (
            "slack thread ts",
            with(route("slack", Channel, "C1"), |r| {
                r.thread_id = Some("1700000000.000100")
            }),
            scope(DmScope::Main, PerGroup),
            "agent:main:slack:channel:c1:thread:1700000000.000100",
        ),
        (
            "thread on dm per-peer",
            with(route("slack", Direct, "U1"), |r| r.thread_id = Some("T1")),
            scope(PerChannelPeer, PerGroup),
            "agent:main:slack:direct:u1:thread:t1",
        ),
        (
            "thread ignored on main",
            with(route("slack", Direct, "U1"), |r| r.thread_id = Some("T1")),
            scope(DmScope::Main, PerGroup),
            "agent:main:main",
        ),
        (
            "agent id normalised",
            with(route("telegram", Direct, "1"), |r| r.agent_id = "Work Bot"),
            scope(PerPeer, PerGroup),
            "agent:work-bot:direct:1",
        ),
    ];
    for (name, r, s, want) in cases {
        let key = SessionKey::for_peer(&r, &s).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(key.to_string(), want, "{name}");
        assert_eq!(
            SessionKey::parse(want).unwrap(),
            key,
            "{name}: parse(display) == key"
        );
    }
    let global = RoutingScope {
        session_scope: SessionScopeMode::Global,
        ..scope(PerPeer, PerGroup)
    };
    assert_eq!(
        SessionKey::for_peer(&route("telegram", Direct, "1"), &global).unwrap(),
        SessionKey::Global
    );
    assert_eq!(
        SessionKey::for_peer(&route("telegram", Direct, "  "), &scope(PerPeer, PerGroup)),
        Err(KeyError::Build("peer id is empty"))
    );
    assert_eq!(
        SessionKey::for_peer(&route("", Direct, "1"), &scope(PerPeer, PerGroup)),
        Err(KeyError::Build("channel is empty"))
    );
}

#[test]
fn special_builders() {
    let main = SessionKey::main("Ops");
    assert_eq!(main.to_string(), "agent:ops:main");
    assert_eq!(
        SessionKey::cron("main", "Nightly").unwrap().to_string(),
        "agent:main:cron:nightly"
    );
    assert_eq!(
        SessionKey::cron_run("main", "j1", "S-1")
            .unwrap()
            .to_string(),
        "agent:main:cron:j1:run:s-1"
    );
    assert_eq!(
        SessionKey::hook("main", "gmail:MSG1").unwrap().to_string(),
        "agent:main:hook:gmail:msg1"
    );
    let child = SessionKey::subagent(&main, "ops", "u1").unwrap();
    assert_eq!(child.to_string(), "agent:ops:subagent:u1");
    let grandchild = SessionKey::subagent(&child, "ops", "u2").unwrap();
    assert_eq!(grandchild.to_string(), "agent:ops:subagent:u1:subagent:u2");
    assert_eq!(grandchild.subagent_depth(), 2);
    assert_eq!(main.subagent_depth(), 0);
    assert!(SessionKey::cron("main", "").is_err());
    assert!(SessionKey::hook("main", "a::b").is_err());
    let thread = SessionKey::parse("agent:main:discord:channel:1")
        .unwrap()
        .with_thread("T9")
        .unwrap();
    assert_eq!(thread.to_string(), "agent:main:discord:channel:1:thread:t9");
    assert_eq!(thread.base().to_string(), "agent:main:discord:channel:1");
    assert!(main.with_thread("x").is_err());
}

#[test]
fn parse_table() {
    use SessionScope as S;
    let k = |agent: &str, scope: SessionScope, thread: Option<ThreadRef>| SessionKey::Agent {
        agent_id: agent.into(),
        scope,
        thread,
    };
    let cases: Vec<(&str, SessionKey, &str)> = vec![
        ("agent:main:main", k("main", S::Main, None), "main"),
        ("global", SessionKey::Global, "global"),
        ("unknown", SessionKey::Unknown, "unknown"),
        (
            "agent:main:direct:alice",
            k(
                "main",
                S::Direct {
                    channel: None,
                    account_id: None,
                    peer_id: "alice".into(),
                },
                None,
            ),
            "direct",
        ),
        (
            "agent:a1:telegram:direct:1",
            k(
                "a1",
                S::Direct {
                    channel: Some("telegram".into()),
                    account_id: None,
                    peer_id: "1".into(),
                },
                None,
            ),
            "direct",
        ),
        (
            "agent:a1:telegram:work:direct:1",
            k(
                "a1",
                S::Direct {
                    channel: Some("telegram".into()),
                    account_id: Some("work".into()),
                    peer_id: "1".into(),
                },
                None,
            ),
            "direct",
        ),
        (
            "agent:main:telegram:group:-100:topic:42",
            k(
                "main",
                S::Group {
                    channel: "telegram".into(),
                    group_id: "-100".into(),
                },
                Some(ThreadRef::Topic("42".into())),
            ),
            "thread",
        ),
        (
            "agent:main:discord:channel:1:thread:2",
            k(
                "main",
                S::Channel {
                    channel: "discord".into(),
                    channel_id: "1".into(),
                },
                Some(ThreadRef::Thread("2".into())),
            ),
            "thread",
        ),
        (
            "agent:main:whatsapp:group:123@g.us",
            k(
                "main",
                S::Group {
                    channel: "whatsapp".into(),
                    group_id: "123@g.us".into(),
                },
                None,
            ),
            "group",
        ),
        (
            "agent:main:matrix:channel:!r:matrix.org",
            k(
                "main",
                S::Channel {
                    channel: "matrix".into(),
                    channel_id: "!r:matrix.org".into(),
                },
                None,
            ),
            "channel",
        ),
        (
            "agent:main:matrix:channel:!r:matrix.org:thread:$e",
            k(
                "main",
                S::Channel {
                    channel: "matrix".into(),
                    channel_id: "!r:matrix.org".into(),
                },
                Some(ThreadRef::Thread("$e".into())),
            ),
            "thread",
        ),
        (
            "agent:main:cron:job1",
            k(
                "main",
                S::Cron {
                    job_id: "job1".into(),
                    run_session_id: None,
                },
                None,
            ),
            "cron",
        ),
        (
            "agent:main:cron:job1:run:abc",
            k(
                "main",
                S::Cron {
                    job_id: "job1".into(),
                    run_session_id: Some("abc".into()),
                },
                None,
            ),
            "cron",
        ),
        (
            "agent:main:hook:0f0e",
            k("main", S::Hook { id: "0f0e".into() }, None),
            "hook",
        ),
        (
            "agent:main:hook:gmail:m1",
            k(
                "main",
                S::Hook {
                    id: "gmail:m1".into(),
                },
                None,
            ),
            "hook",
        ),
        (
            "agent:main:subagent:u1",
            k(
                "main",
                S::Subagent {
                    ids: vec!["u1".into()],
                },
                None,
            ),
            "subagent",
        ),
        (
            "agent:main:subagent:u1:subagent:u2",
            k(
                "main",
                S::Subagent {
                    ids: vec!["u1".into(), "u2".into()],
                },
                None,
            ),
            "subagent",
        ),
        (
            "agent:main:subagent:u1:x",
            k("main", S::Other("subagent:u1:x".into()), None),
            "other",
        ),
        (
            "agent:main:acp:u1",
            k("main", S::Acp { id: "u1".into() }, None),
            "acp",
        ),
        (
            "agent:main:slack:slash:u1",
            k(
                "main",
                S::Slash {
                    channel: "slack".into(),
                    user_id: "u1".into(),
                },
                None,
            ),
            "slash",
        ),
        (
            "agent:main:boot:r1",
            k(
                "main",
                S::Boot {
                    run_id: "r1".into(),
                },
                None,
            ),
            "boot",
        ),
        (
            "agent:main:explicit:model-run-1",
            k("main", S::Other("explicit:model-run-1".into()), None),
            "other",
        ),
        (
            "agent:main:session:custom",
            k("main", S::Other("session:custom".into()), None),
            "other",
        ),
    ];
    for (input, want, class) in cases {
        let got = SessionKey::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(got, want, "{input}");
        assert_eq!(got.to_string(), input, "display of {input}");
        assert_eq!(got.classification(), class, "classification of {input}");
        let json = serde_json::to_string(&got).unwrap();
        assert_eq!(serde_json::from_str::<SessionKey>(&json).unwrap(), got);
    }
}

#[test]
fn parse_errors_table() {
    let long = format!("agent:main:{}", "x".repeat(MAX_KEY_LEN));
    let cases: Vec<(&str, KeyError)> = vec![
        ("", KeyError::Empty),
        ("main", KeyError::NotCanonical("main".into())),
        ("agent:main", KeyError::NotCanonical("agent:main".into())),
        (
            "Agent:main:main",
            KeyError::NotCanonical("Agent:main:main".into()),
        ),
        (
            "agent:Main:main",
            KeyError::BadAgentId("agent:Main:main".into()),
        ),
        ("agent::main", KeyError::BadAgentId("agent::main".into())),
        ("agent:main:", KeyError::EmptySegment("agent:main:".into())),
        (
            "agent:main:a::b",
            KeyError::EmptySegment("agent:main:a::b".into()),
        ),
        (long.as_str(), KeyError::TooLong),
    ];
    for (input, want) in cases {
        assert_eq!(SessionKey::parse(input), Err(want), "{input:?}");
    }
    assert_eq!(
        KeyError::NotCanonical("main".into()).to_string(),
        "session key \"main\" is not canonical: expected `agent:<agentId>:<rest>`, `global` or `unknown`"
    );
}

#[test]
fn canonicalize_table() {
    let cases: Vec<(&str, &str, &str)> = vec![
        ("main", "main", "agent:main:main"),
        ("  MAIN ", "main", "agent:main:main"),
        ("main", "Ops", "agent:ops:main"),
        ("global", "ops", "global"),
        ("Unknown", "ops", "unknown"),
        ("agent:Ops:Main", "main", "agent:ops:main"),
        (
            "agent:main:telegram:DM:42",
            "main",
            "agent:main:telegram:direct:42",
        ),
        ("cron:Nightly", "main", "agent:main:cron:nightly"),
        ("hook:ABC", "ops", "agent:ops:hook:abc"),
        ("subagent:U1", "main", "agent:main:subagent:u1"),
        ("my-Session", "main", "agent:main:my-session"),
        (
            "agent:main:signal:group:AbC",
            "main",
            "agent:main:signal:group:AbC",
        ),
        (
            "agent:main:Matrix:channel:!Room:matrix.org:thread:X",
            "main",
            "agent:main:matrix:channel:!Room:matrix.org:thread:x",
        ),
        (
            "agent:main:slack:channel:CABC:thread:1.2",
            "main",
            "agent:main:slack:channel:cabc:thread:1.2",
        ),
    ];
    for (input, default_agent, want) in cases {
        let got = SessionKey::canonicalize(input, default_agent)
            .unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(
            got.to_string(),
            want,
            "canonicalize({input:?}, {default_agent:?})"
        );
        // Canonical output is a fixed point of both parse and canonicalize.
        assert_eq!(SessionKey::parse(want).unwrap(), got);
        assert_eq!(SessionKey::canonicalize(want, default_agent).unwrap(), got);
    }
    for bad in ["", "   ", "agent:", "agent::x", "a::b", "agent:main:"] {
        assert!(
            SessionKey::canonicalize(bad, "main").is_err(),
            "{bad:?} must be rejected"
        );
    }
}

#[test]
fn accessors() {
    let k = SessionKey::parse("agent:ops:telegram:group:-1:topic:7").unwrap();
    assert_eq!(k.agent_id(), Some("ops"));
    assert_eq!(k.channel(), Some("telegram"));
    assert_eq!(k.chat_type().map(|c| c.as_str()), Some("group"));
    assert!(!k.is_main());
    assert!(SessionKey::parse("agent:ops:main").unwrap().is_main());
    assert_eq!(SessionKey::Global.agent_id(), None);
    assert_eq!(
        SessionKey::parse("agent:x:cron:j").unwrap().chat_type(),
        None
    );
}

// ---- property: build → parse round trip ----

fn ident() -> impl Strategy<Value = String> {
    // Realistic id alphabet; excludes the structural words on their own (and `dm`, which
    // `canonicalize` reads as the legacy `direct` marker in any segment).
    "[a-z0-9][a-z0-9_.@+=-]{0,15}".prop_filter("not a marker", |s| {
        !matches!(
            s.as_str(),
            "thread"
                | "topic"
                | "direct"
                | "dm"
                | "group"
                | "channel"
                | "slash"
                | "run"
                | "subagent"
        )
    })
}

fn channel_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("telegram".to_string()),
        Just("discord".to_string()),
        Just("slack".to_string()),
        Just("whatsapp".to_string()),
        "[a-z]{3,10}".prop_filter("reserved", |s| {
            !matches!(
                s.as_str(),
                "cron"
                    | "hook"
                    | "acp"
                    | "boot"
                    | "main"
                    | "direct"
                    | "subagent"
                    | "thread"
                    | "topic"
                    | "group"
                    | "channel"
                    | "slash"
                    | "run"
            )
        }),
    ]
}

fn scope_strategy() -> impl Strategy<Value = (SessionScope, Option<ThreadRef>)> {
    let thread = || prop::option::of(ident().prop_map(ThreadRef::Thread));
    prop_oneof![
        Just((SessionScope::Main, None)),
        (ident(), thread()).prop_map(|(p, t)| (
            SessionScope::Direct {
                channel: None,
                account_id: None,
                peer_id: p
            },
            t
        )),
        (channel_name(), ident(), thread()).prop_map(|(c, p, t)| (
            SessionScope::Direct {
                channel: Some(c),
                account_id: None,
                peer_id: p
            },
            t
        )),
        (channel_name(), ident(), ident(), thread()).prop_map(|(c, a, p, t)| (
            SessionScope::Direct {
                channel: Some(c),
                account_id: Some(a),
                peer_id: p
            },
            t
        )),
        (
            channel_name(),
            ident(),
            prop::option::of(prop_oneof![
                ident().prop_map(ThreadRef::Thread),
                ident().prop_map(ThreadRef::Topic)
            ])
        )
            .prop_map(|(c, g, t)| (
                SessionScope::Group {
                    channel: c,
                    group_id: g
                },
                t
            )),
        (channel_name(), ident(), thread()).prop_map(|(c, id, t)| (
            SessionScope::Channel {
                channel: c,
                channel_id: id
            },
            t
        )),
        (ident(), prop::option::of(ident())).prop_map(|(j, r)| (
            SessionScope::Cron {
                job_id: j,
                run_session_id: r
            },
            None
        )),
        ident().prop_map(|id| (SessionScope::Hook { id }, None)),
        prop::collection::vec(ident(), 1..4).prop_map(|ids| (SessionScope::Subagent { ids }, None)),
        ident().prop_map(|id| (SessionScope::Acp { id }, None)),
        (channel_name(), ident()).prop_map(|(c, u)| (
            SessionScope::Slash {
                channel: c,
                user_id: u
            },
            None
        )),
        ident().prop_map(|run_id| (SessionScope::Boot { run_id }, None)),
    ]
}

proptest! {
    #[test]
    fn build_parse_round_trip(agent in "[a-z0-9][a-z0-9_-]{0,20}", (scope, thread) in scope_strategy()) {
        let key = SessionKey::Agent { agent_id: agent, scope, thread };
        let text = key.to_string();
        prop_assert_eq!(SessionKey::parse(&text), Ok(key.clone()));
        prop_assert_eq!(SessionKey::canonicalize(&text, "main"), Ok(key));
    }

    #[test]
    fn for_peer_output_always_parses(
        peer in "[A-Za-z0-9 _.-]{1,12}",
        channel in channel_name(),
        kind in prop_oneof![Just(PeerKind::Direct), Just(PeerKind::Group), Just(PeerKind::Channel)],
        dm in prop_oneof![Just(DmScope::Main), Just(DmScope::PerPeer), Just(DmScope::PerChannelPeer), Just(DmScope::PerAccountChannelPeer)],
        thread in prop::option::of("[a-z0-9]{1,6}"),
    ) {
        prop_assume!(!peer.trim().is_empty());
        let r = PeerRoute { agent_id: "main", channel: &channel, account_id: None, peer_kind: kind, peer_id: &peer, thread_id: thread.as_deref(), topic_id: None };
        let key = SessionKey::for_peer(&r, &scope(dm, GroupScope::PerGroup)).unwrap();
        prop_assert_eq!(SessionKey::parse(&key.to_string()), Ok(key));
    }

    #[test]
    fn parse_never_panics(s in ".{0,80}") {
        let _ = SessionKey::parse(&s);
        let _ = SessionKey::canonicalize(&s, "main");
    }
}
