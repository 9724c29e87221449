//! `connect` params (spec §2.2): the typed view after schema validation.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::params::CONNECT_PARAMS;
use crate::schema;

/// Allowed `client.id` values.
pub const CLIENT_IDS: &[&str] = &[
    "webchat-ui",
    "openclaw-control-ui",
    "openclaw-browser-copilot",
    "openclaw-tui",
    "webchat",
    "cli",
    "gateway-client",
    "openclaw-macos",
    "openclaw-linux",
    "openclaw-ios",
    "openclaw-watchos",
    "openclaw-android",
    "node-host",
    "openclaw-worker",
    "test",
    "fingerprint",
    "openclaw-probe",
];

/// Allowed `client.mode` values.
pub const CLIENT_MODES: &[&str] = &[
    "webchat", "cli", "ui", "backend", "node", "worker", "probe", "test",
];

/// `client.id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ClientId {
    #[serde(rename = "webchat-ui")]
    WebchatUi,
    #[serde(rename = "openclaw-control-ui")]
    ControlUi,
    #[serde(rename = "openclaw-browser-copilot")]
    BrowserCopilot,
    #[serde(rename = "openclaw-tui")]
    Tui,
    #[serde(rename = "webchat")]
    Webchat,
    #[serde(rename = "cli")]
    Cli,
    #[serde(rename = "gateway-client")]
    GatewayClient,
    #[serde(rename = "openclaw-macos")]
    Macos,
    #[serde(rename = "openclaw-linux")]
    Linux,
    #[serde(rename = "openclaw-ios")]
    Ios,
    #[serde(rename = "openclaw-watchos")]
    Watchos,
    #[serde(rename = "openclaw-android")]
    Android,
    #[serde(rename = "node-host")]
    NodeHost,
    #[serde(rename = "openclaw-worker")]
    Worker,
    #[serde(rename = "test")]
    Test,
    #[serde(rename = "fingerprint")]
    Fingerprint,
    #[serde(rename = "openclaw-probe")]
    Probe,
}

impl ClientId {
    pub fn as_str(self) -> &'static str {
        use ClientId::*;
        match self {
            WebchatUi => "webchat-ui",
            ControlUi => "openclaw-control-ui",
            BrowserCopilot => "openclaw-browser-copilot",
            Tui => "openclaw-tui",
            Webchat => "webchat",
            Cli => "cli",
            GatewayClient => "gateway-client",
            Macos => "openclaw-macos",
            Linux => "openclaw-linux",
            Ios => "openclaw-ios",
            Watchos => "openclaw-watchos",
            Android => "openclaw-android",
            NodeHost => "node-host",
            Worker => "openclaw-worker",
            Test => "test",
            Fingerprint => "fingerprint",
            Probe => "openclaw-probe",
        }
    }
}

/// `client.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientMode {
    Webchat,
    Cli,
    Ui,
    Backend,
    Node,
    Worker,
    Probe,
    Test,
}

impl ClientMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientMode::Webchat => "webchat",
            ClientMode::Cli => "cli",
            ClientMode::Ui => "ui",
            ClientMode::Backend => "backend",
            ClientMode::Node => "node",
            ClientMode::Worker => "worker",
            ClientMode::Probe => "probe",
            ClientMode::Test => "test",
        }
    }

    /// `cli`, `backend` and `probe` connections are not tracked in presence.
    pub fn is_ephemeral(self) -> bool {
        matches!(
            self,
            ClientMode::Cli | ClientMode::Backend | ClientMode::Probe
        )
    }
}

/// `connect.params.client`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClientInfo {
    pub id: ClientId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_id: Option<String>,
    pub platform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_family: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_identifier: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    pub mode: ClientMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
}

/// `connect.params.device`: the device proof.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeviceProofParams {
    pub id: String,
    pub public_key: String,
    pub signature: String,
    pub signed_at: u64,
    pub nonce: String,
}

/// `connect.params.auth`. Its `Debug` never prints a secret.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectAuth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_runtime_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_runtime_identity_token: Option<String>,
}

impl fmt::Debug for ConnectAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = |o: &Option<String>| if o.is_some() { "<redacted>" } else { "-" };
        f.debug_struct("ConnectAuth")
            .field("token", &mark(&self.token))
            .field("bootstrapToken", &mark(&self.bootstrap_token))
            .field("deviceToken", &mark(&self.device_token))
            .field("password", &mark(&self.password))
            .finish_non_exhaustive()
    }
}

impl ConnectAuth {
    /// The token covered by a device signature: `token ?? deviceToken ?? bootstrapToken ?? ""`.
    /// The password is never signed.
    pub fn signature_token(&self) -> &str {
        self.token
            .as_deref()
            .or(self.device_token.as_deref())
            .or(self.bootstrap_token.as_deref())
            .unwrap_or("")
    }
}

/// `connect` params (closed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectParams {
    pub min_protocol: u64,
    pub max_protocol: u64,
    pub client: ClientInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commands: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computer_use: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_runs: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<BTreeMap<String, bool>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_env: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_catalog: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceProofParams>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<ConnectAuth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl ConnectParams {
    /// Validate against the closed schema, then convert. The error is the ajv-style text
    /// (to be prefixed with `invalid connect params: `).
    pub fn from_value(value: &Value) -> Result<ConnectParams, String> {
        schema::validate(&CONNECT_PARAMS, value)?;
        ConnectParams::deserialize(value).map_err(|e| e.to_string())
    }

    /// The requested role, `"operator"` when absent.
    pub fn role_str(&self) -> &str {
        self.role.as_deref().unwrap_or("operator")
    }

    /// The requested scopes in the order sent.
    pub fn scopes_slice(&self) -> &[String] {
        self.scopes.as_deref().unwrap_or(&[])
    }

    /// Whether this connect claims the worker identity (only valid on the worker path).
    pub fn claims_worker(&self) -> bool {
        self.role.as_deref() == Some("worker")
            || self.client.id == ClientId::Worker
            || self.client.mode == ClientMode::Worker
    }
}

/// Connection roles accepted on the control-plane path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Operator,
    Node,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "operator" => Some(Role::Operator),
            "node" => Some(Role::Node),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Node => "node",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enums_match_the_schema_lists() {
        for id in CLIENT_IDS {
            let parsed: ClientId = serde_json::from_value(json!(id)).unwrap_or(ClientId::Test);
            assert_eq!(parsed.as_str(), *id);
        }
        for mode in CLIENT_MODES {
            let parsed: ClientMode =
                serde_json::from_value(json!(mode)).unwrap_or(ClientMode::Test);
            assert_eq!(parsed.as_str(), *mode);
        }
    }

    #[test]
    fn parses_golden_connect() {
        let v = json!({"minProtocol":4,"maxProtocol":4,"client":{"id":"cli","version":"anchor-0.1","platform":"linux","mode":"cli"},
            "role":"operator","scopes":["operator.admin"],"caps":[],"commands":[],"permissions":{},"auth":{"token":"T"},
            "locale":"en-US","userAgent":"openclaw-anchor/anchor-0.1"});
        let p = ConnectParams::from_value(&v).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(p.client.id, ClientId::Cli);
        assert_eq!(p.role_str(), "operator");
        assert_eq!(p.auth.as_ref().map(|a| a.signature_token()), Some("T"));
    }

    #[test]
    fn signature_token_preference_and_redacted_debug() {
        let auth = ConnectAuth {
            device_token: Some("s3cret-dev".into()),
            bootstrap_token: Some("s3cret-boot".into()),
            password: Some("s3cret-pw".into()),
            ..Default::default()
        };
        assert_eq!(auth.signature_token(), "s3cret-dev");
        let dbg = format!("{auth:?}");
        assert!(!dbg.contains("s3cret"), "{dbg}");
        assert_eq!(
            ConnectAuth {
                password: Some("pw".into()),
                ..Default::default()
            }
            .signature_token(),
            ""
        );
    }

    #[test]
    fn worker_claims_are_detected() {
        let v = json!({"minProtocol":4,"maxProtocol":4,"client":{"id":"cli","version":"1","platform":"linux","mode":"worker"}});
        let p = ConnectParams::from_value(&v).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.claims_worker());
    }
}
