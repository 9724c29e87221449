//! `gateway.*`

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::secret::SecretInput;

pub const DEFAULT_PORT: u16 = 18789;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<GatewayMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_bind_host: Option<String>,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub control_ui: ControlUiConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub reload: ReloadConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub tools: AllowDeny,
    #[serde(default)]
    pub nodes: NodesConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trusted_proxies: Option<Vec<String>>,
    /// Take the client address from a trusted proxy's `X-Real-IP` when it sends no
    /// `X-Forwarded-For` (default false: a proxy that passes a client's own `X-Real-IP` on
    /// would let it pick its address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_real_ip_fallback: Option<bool>,
    #[serde(default)]
    pub remote: RemoteConfig,
}

impl GatewayConfig {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }
    pub fn bind(&self) -> BindMode {
        self.bind.unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GatewayMode {
    Local,
    Remote,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum BindMode {
    Auto,
    Lan,
    #[default]
    Loopback,
    Custom,
    Tailnet,
}

section!(AuthConfig {
    mode: AuthMode,
    token: SecretInput,
    password: SecretInput,
    allow_tailscale: bool,
    rate_limit: RateLimitConfig,
    trusted_proxy: TrustedProxyConfig,
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    None,
    Token,
    Password,
    TrustedProxy,
}

section!(RateLimitConfig {
    max_attempts: u32,
    window_ms: u64,
    lockout_ms: u64,
    exempt_loopback: bool,
});

section!(TrustedProxyConfig {
    user_header: String,
    required_headers: Vec<String>,
    allow_users: Vec<String>,
    allow_loopback: bool,
});

section!(ControlUiConfig {
    enabled: bool,
    base_path: String,
    allowed_origins: Vec<String>,
});

section!(TlsConfig {
    enabled: bool,
    auto_generate: bool,
    cert_path: String,
    key_path: String,
    ca_path: String,
});

section!(ReloadConfig { mode: ReloadMode });

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReloadMode {
    Off,
    #[default]
    Hybrid,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpConfig {
    #[serde(default)]
    pub endpoints: HttpEndpoints,
}

section!(HttpEndpoints {
    chat_completions: EndpointToggle,
    responses: EndpointToggle,
});

section!(EndpointToggle { enabled: bool });

section!(
    /// `{allow, deny}` tool/command lists.
    AllowDeny {
    allow: Vec<String>,
    deny: Vec<String>,
});

section!(NodesConfig {
    pairing: NodePairingConfig,
    commands: AllowDeny,
});

section!(NodePairingConfig {
    auto_approve_local: bool,
    auto_approve_cidrs: Vec<String>,
});

section!(RemoteConfig {
    url: String,
    transport: RemoteTransport,
    token: SecretInput,
    password: SecretInput,
    tls_fingerprint: String,
    ssh_target: String,
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum RemoteTransport {
    Ssh,
    Direct,
}
