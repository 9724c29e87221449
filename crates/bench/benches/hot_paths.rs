//! The gateway's hot pure paths (no sockets), run with `cargo bench -p pincer-bench`:
//!
//! - `frame_parse`: `parse_request` of a `health` request and of a CLI `connect` frame.
//! - `authorize_method`: the §3.3 check on every request (open, scoped, admin, denied).
//! - `event_framing`: one broadcast through the real `EventBus`/`Registry` to 1,000
//!   connections (scope guard, seq, byte-bounded queue) plus rendering each connection's
//!   frame, as the connection tasks do; and framing one envelope alone.
//! - `hello_ok`: what the handshake computes per connection: `ConnectParams` from the frame,
//!   then the `hello-ok` `res` (server/auth/snapshot/policy around the cached features,
//!   presence and health JSON).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pincer_gateway::events::{EventBus, PublishOpts};
use pincer_gateway::registry::{ConnHandle, ConnInfo, Registry};
use pincer_protocol::authz::authorize_method;
use pincer_protocol::connect::{ClientId, ClientMode, ConnectParams, Role};
use pincer_protocol::frames::{parse_request, response_ok, EventEnvelope, StateVersion};
use pincer_protocol::hello::{
    HelloAuth, HelloOk, Policy, ServerInfo, SessionDefaults, Snapshot, Suspension,
};
use pincer_protocol::scopes::{self, ScopeSet};
use serde_json::value::RawValue;
use serde_json::{json, Value};

const HEALTH_REQ: &str = r#"{"type":"req","id":"r17-3f9a2b1c","method":"health","params":{}}"#;

fn connect_frame() -> String {
    json!({"type":"req","id":"c-1","method":"connect","params":{
        "minProtocol":4,"maxProtocol":4,
        "client":{"id":"cli","version":"0.1.0","platform":"linux","mode":"cli"},
        "role":"operator",
        "scopes":["operator.admin","operator.read","operator.write","operator.approvals","operator.pairing"],
        "caps":[],"commands":[],"permissions":{},
        "auth":{"token":"0123456789abcdef0123456789abcdef"},
        "locale":"en-US","userAgent":"pincer-bench/0.1.0"}})
    .to_string()
}

fn frame_parse(c: &mut Criterion) {
    let connect = connect_frame();
    let mut g = c.benchmark_group("frame_parse");
    g.bench_function("health", |b| {
        b.iter(|| parse_request(black_box(HEALTH_REQ)).map(|r| r.method.len()))
    });
    g.bench_function("connect", |b| {
        b.iter(|| parse_request(black_box(&connect)).map(|r| r.method.len()))
    });
    g.finish();
}

fn authz(c: &mut Criterion) {
    let reader = ScopeSet::new([scopes::READ]);
    let cli = ScopeSet::new(scopes::CLI_DEFAULT_OPERATOR_SCOPES);
    let mut g = c.benchmark_group("authorize_method");
    g.bench_function("health_open", |b| {
        b.iter(|| authorize_method(Role::Operator, &reader, black_box("health"), None).is_ok())
    });
    g.bench_function("status_read", |b| {
        b.iter(|| authorize_method(Role::Operator, &reader, black_box("status"), None).is_ok())
    });
    g.bench_function("system_event_admin", |b| {
        b.iter(|| {
            authorize_method(Role::Operator, &cli, black_box("system-event"), Some("{}")).is_ok()
        })
    });
    g.bench_function("config_get_denied", |b| {
        b.iter(|| authorize_method(Role::Node, &reader, black_box("config.get"), None).is_err())
    });
    g.finish();
}

fn conn_info(id: u64) -> ConnInfo {
    ConnInfo {
        id,
        conn_id: format!("conn-{id}"),
        role: Role::Operator,
        scopes: ScopeSet::new(scopes::CLI_DEFAULT_OPERATOR_SCOPES),
        client_id: ClientId::Cli,
        client_mode: ClientMode::Cli,
        device_id: None,
        instance_id: None,
        ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        caps: vec![],
        auth_method: pincer_gateway::pairing::AuthMethod::Token,
        auth_generation: 1,
    }
}

fn presence_payload() -> String {
    json!({"presence":[
        {"host":"gateway","version":"0.1.0","platform":"linux","mode":"gateway","reason":"self","ts":1_763_700_000_000u64},
        {"host":"pincer-bench-fanout","reason":"system-event","text":"pbfo0000abcd-17-","ts":1_763_700_000_123u64},
    ]})
    .to_string()
}

fn event_framing(c: &mut Criterion) {
    const CONNS: u64 = 1000;
    let registry = Arc::new(Registry::default());
    let handles: Vec<Arc<ConnHandle>> = (0..CONNS)
        .map(|_| {
            let h = Arc::new(ConnHandle::new(conn_info(registry.next_id()), 50 << 20));
            registry.insert(Arc::clone(&h));
            h
        })
        .collect();
    let bus = EventBus::new(Arc::clone(&registry));
    let payload = presence_payload();
    let sv = StateVersion {
        presence: 3,
        health: 1,
    };
    let mut g = c.benchmark_group("event_framing");
    g.throughput(Throughput::Elements(CONNS));
    g.bench_function("broadcast_1000_conns", |b| {
        let mut batch = Vec::new();
        b.iter(|| {
            let opts = PublishOpts::droppable().with_state_version(sv);
            let report = bus.publish_raw("presence", Some(&payload), opts);
            let mut bytes = 0;
            for h in &handles {
                h.drain(&mut batch, usize::MAX);
                for item in batch.drain(..) {
                    bytes += item.render().len();
                }
            }
            (report.delivered, bytes)
        })
    });
    g.finish();
    let envelope = EventEnvelope::new("presence", Some(&payload), Some(sv));
    c.bench_function("event_framing/frame_one", |b| {
        b.iter(|| envelope.frame(Some(black_box(12_345))).len())
    });
}

fn hello_ok(c: &mut Criterion) {
    let connect = connect_frame();
    let features = serde_json::value::to_raw_value(&json!({
        "methods": ["health","status","system-presence","system-event","logs.tail","gateway.identity.get"],
        "events": ["connect.challenge","presence","tick","shutdown","health"],
    }))
    .unwrap();
    let presence = RawValue::from_string(
        json!([{"host":"gateway","version":"0.1.0","platform":"linux","mode":"gateway",
                "reason":"self","ts":1_763_700_000_000u64,"roles":[],"scopes":[]}])
        .to_string(),
    )
    .unwrap();
    let health: Box<RawValue> = RawValue::from_string(
        json!({"ok":true,"ts":1u64,"durationMs":0,"plugins":{"loaded":[],"errors":[]},
               "configReload":{"hotReloadStatus":"disabled"},"channels":{},"channelOrder":[],
               "channelLabels":{},"heartbeatSeconds":0,"defaultAgentId":"main",
               "agents":[{"agentId":"main","isDefault":true,"heartbeat":{"enabled":false,"every":"30m","everyMs":1_800_000},
                          "sessions":{"path":"/tmp/state/pincer.sqlite","count":0,"recent":[]}}],
               "sessions":{"path":"/tmp/state/pincer.sqlite","count":0,"recent":[]},
               "eventLoop":{"degraded":false,"reasons":[],"intervalMs":60000.0,"delayP99Ms":0.1,
                            "delayMaxMs":0.1,"utilization":0.0,"cpuCoreRatio":0.0}})
        .to_string(),
    )
    .unwrap();
    let defaults = SessionDefaults {
        default_agent_id: "main".into(),
        model_configured: None,
        ownership: None,
        selection_required: None,
        main_key: "main".into(),
        main_session_key: "agent:main:main".into(),
        scope: Some("per-sender".into()),
    };
    let policy = Policy {
        max_payload: 25 << 20,
        max_buffered_bytes: 50 << 20,
        tick_interval_ms: 30_000,
        attachments: None,
        has_multiple_session_sharing_identities: Some(false),
    };
    c.bench_function("hello_ok/connect_params_and_frame", |b| {
        b.iter(|| {
            let req = parse_request(black_box(&connect)).unwrap();
            let value: Value = serde_json::from_str(req.params_str().unwrap_or("{}")).unwrap();
            let params = ConnectParams::from_value(&value).unwrap();
            let granted = params.scopes.clone().unwrap_or_default();
            let server = ServerInfo {
                version: "0.1.0".into(),
                build_id: Some("bench".into()),
                boot_id: Some("6f1c2a64-0d0e-4bb4-9c1b-2f0d7f9e1a11".into()),
                conn_id: "0c6b7a53-8f43-4c55-8a8a-35f9a0f5e0b2".into(),
            };
            let auth = HelloAuth {
                method: Some("token".into()),
                device_token: None,
                role: "operator".into(),
                scopes: granted,
                recovery_scope: None,
                recovery_migration_allowed: None,
                issued_at_ms: None,
            };
            let hello = HelloOk {
                kind: "hello-ok",
                protocol: 4,
                server: &server,
                features: &features,
                snapshot: Snapshot {
                    suspension: Some(Suspension { phase: "accepting" }),
                    presence: &presence,
                    health: &health,
                    state_version: StateVersion {
                        presence: 1,
                        health: 1,
                    },
                    uptime_ms: 1234,
                    config_path: Some("/tmp/state/pincer.json"),
                    state_dir: Some("/tmp/state"),
                    session_defaults: Some(&defaults),
                    auth_mode: Some("token"),
                },
                auth: &auth,
                policy: &policy,
            };
            response_ok(&req.id, &hello).len()
        })
    });
}

criterion_group!(benches, frame_parse, authz, event_framing, hello_ok);
criterion_main!(benches);
