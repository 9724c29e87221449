//! `hello-ok` and the snapshot/presence/health shapes (spec §2.4).

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::frames::StateVersion;
use crate::limits;

/// `connect.challenge` payload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChallengePayload {
    pub nonce: String,
    pub ts: u64,
    pub capabilities: Vec<String>,
}

/// `hello-ok.server`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    pub conn_id: String,
}

/// `hello-ok.features`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Features {
    pub methods: Vec<String>,
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
}

/// `snapshot.sessionDefaults`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionDefaults {
    pub default_agent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_configured: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ownership: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection_required: Option<bool>,
    pub main_key: String,
    pub main_session_key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// `hello-ok.snapshot`. Presence and health are embedded pre-serialised (they are cached).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspension: Option<Suspension>,
    pub presence: &'a RawValue,
    pub health: &'a RawValue,
    pub state_version: StateVersion,
    pub uptime_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_path: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_dir: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_defaults: Option<&'a SessionDefaults>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_mode: Option<&'a str>,
}

/// `hello-ok.auth`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    pub role: String,
    pub scopes: Vec<String>,
    /// Operators: base64url SHA-256 over what this session's credential is (principal, device
    /// token, shared-auth generation or device), so a client can scope what it recovers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_scope: Option<String>,
    /// `true` for an operator handed a device token without a proxy-vouched principal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_migration_allowed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at_ms: Option<u64>,
}

/// `hello-ok.policy.attachments`: what `chat.send` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentPolicy {
    pub max_bytes: u64,
    pub max_image_bytes: u64,
}

impl AttachmentPolicy {
    /// `maxBytes = min(mediaMaxMb · MiB, envelope cap)`, `maxImageBytes = min(maxBytes, 6 MiB)`.
    pub fn for_media_max_mb(media_max_mb: u64) -> AttachmentPolicy {
        let max_bytes = media_max_mb
            .saturating_mul(1024 * 1024)
            .min(limits::MAX_ATTACHMENT_ENVELOPE_BYTES);
        AttachmentPolicy {
            max_bytes,
            max_image_bytes: max_bytes.min(limits::MAX_IMAGE_ATTACHMENT_BYTES),
        }
    }
}

/// `hello-ok.policy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub max_payload: u64,
    pub max_buffered_bytes: u64,
    pub tick_interval_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachments: Option<AttachmentPolicy>,
    /// Whether sessions can be shared between several identities (always `false` in Pincer:
    /// one owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_multiple_session_sharing_identities: Option<bool>,
}

/// `hello-ok.snapshot.suspension`: whether the gateway takes new work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Suspension {
    /// `"accepting"` while serving; `"draining"` once shutdown began.
    pub phase: &'static str,
}

/// `hello-ok`. `features` is embedded pre-serialised: it is the same for every connection.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HelloOk<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub protocol: u32,
    pub server: &'a ServerInfo,
    pub features: &'a RawValue,
    pub snapshot: Snapshot<'a>,
    pub auth: &'a HelloAuth,
    pub policy: &'a Policy,
}

/// A client as shown in `system-presence` / `snapshot.presence` (closed; only `ts` required).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PresenceEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_input_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub ts: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online_since: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

/// `health.eventLoop`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventLoopHealth {
    pub degraded: bool,
    pub degraded_since_ms: Option<u64>,
    pub reasons: Vec<String>,
    pub interval_ms: f64,
    pub delay_p99_ms: f64,
    pub delay_max_ms: f64,
    pub utilization: f64,
    pub cpu_core_ratio: f64,
}

/// `health.plugins`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginsHealth {
    pub loaded: Vec<String>,
    pub errors: Vec<Value>,
    pub unavailable: Vec<Value>,
}

/// `health.configReload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigReloadHealth {
    /// `"active"` or `"disabled"`.
    pub hot_reload_status: String,
}

/// A recent session row in health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecentSession {
    pub key: String,
    pub updated_at: u64,
    pub age: u64,
}

/// `health.sessions` / `health.agents[].sessions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionsHealth {
    pub path: String,
    pub count: u64,
    pub recent: Vec<RecentSession>,
}

/// `health.agents[].heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatHealth {
    pub enabled: bool,
    pub every: String,
    pub every_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_max_chars: Option<u64>,
}

/// `health.agents[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentHealth {
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub is_default: bool,
    pub heartbeat: HeartbeatHealth,
    pub sessions: SessionsHealth,
}

/// `HealthSnapshot` (closed in the schema, every field optional).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HealthSnapshot {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plugins: Option<PluginsHealth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_reload: Option<ConfigReloadHealth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_order: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel_labels: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_agent_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<Vec<AgentHealth>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<SessionsHealth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_loop: Option<EventLoopHealth>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_policy_is_capped_by_the_frame_envelope() {
        let default = AttachmentPolicy::for_media_max_mb(limits::DEFAULT_MEDIA_MAX_MB);
        assert_eq!(default.max_bytes, 19_464_192);
        assert_eq!(default.max_image_bytes, 6_291_456);
        let small = AttachmentPolicy::for_media_max_mb(2);
        assert_eq!(small.max_bytes, 2 * 1024 * 1024);
        assert_eq!(small.max_image_bytes, 2 * 1024 * 1024);
    }

    #[test]
    fn presence_entry_is_closed_and_camel_case() {
        let e = PresenceEntry {
            host: Some("h".into()),
            mode: Some("gateway".into()),
            ts: 5,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap_or_default(),
            r#"{"host":"h","mode":"gateway","ts":5}"#
        );
        assert!(serde_json::from_str::<PresenceEntry>(r#"{"ts":1,"bogus":2}"#).is_err());
    }

    #[test]
    fn hello_ok_has_required_fields_in_order() {
        let presence = RawValue::from_string("[]".into()).unwrap_or_else(|_| panic!());
        let health = RawValue::from_string(r#"{"ok":true}"#.into()).unwrap_or_else(|_| panic!());
        let features = RawValue::from_string(r#"{"methods":["health"],"events":["tick"]}"#.into())
            .unwrap_or_else(|_| panic!());
        let server = ServerInfo {
            version: "0.1.0".into(),
            build_id: None,
            boot_id: Some("b".into()),
            conn_id: "c".into(),
        };
        let auth = HelloAuth {
            method: Some("token".into()),
            device_token: None,
            role: "operator".into(),
            scopes: vec![],
            recovery_scope: None,
            recovery_migration_allowed: None,
            issued_at_ms: None,
        };
        let policy = Policy {
            max_payload: 1,
            max_buffered_bytes: 2,
            tick_interval_ms: 3,
            attachments: Some(AttachmentPolicy::for_media_max_mb(
                limits::DEFAULT_MEDIA_MAX_MB,
            )),
            has_multiple_session_sharing_identities: Some(false),
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
                uptime_ms: 9,
                config_path: None,
                state_dir: None,
                session_defaults: None,
                auth_mode: Some("token"),
            },
            auth: &auth,
            policy: &policy,
        };
        let s = serde_json::to_string(&hello).unwrap_or_default();
        assert!(s.starts_with(r#"{"type":"hello-ok","protocol":4,"server":{"version":"0.1.0","bootId":"b","connId":"c"},"features":{"#), "{s}");
        let v: Value = serde_json::from_str(&s).unwrap_or_default();
        for key in ["server", "features", "snapshot", "auth", "policy"] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["policy"]["tickIntervalMs"], 3);
        assert_eq!(
            v["policy"]["attachments"],
            serde_json::json!({"maxBytes": 19_464_192, "maxImageBytes": 6_291_456})
        );
        assert_eq!(v["snapshot"]["suspension"]["phase"], "accepting");
        assert_eq!(v["snapshot"]["stateVersion"]["presence"], 1);
    }
}
