//! Gateway start-up settings from CLI flags and environment knobs. Flags and environment
//! override the config file (`pincer.json`, see [`crate::live_config`]); a `None` here means
//! "take it from the config file, else the built-in default".

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use pincer_protocol::limits;

/// `--bind` modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindMode {
    Loopback,
    Lan,
    Auto,
    Custom(IpAddr),
}

impl BindMode {
    pub fn ip(&self) -> IpAddr {
        match self {
            BindMode::Loopback => IpAddr::V4(Ipv4Addr::LOCALHOST),
            BindMode::Lan | BindMode::Auto => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            BindMode::Custom(ip) => *ip,
        }
    }

    pub fn is_loopback(&self) -> bool {
        self.ip().is_loopback()
    }
}

/// How clients authenticate (`--auth`).
#[derive(Clone, PartialEq, Eq)]
pub enum AuthSetting {
    None,
    /// Token mode; `None` means "read or generate `<state>/gateway.token`".
    Token(Option<String>),
    Password(String),
    /// `gateway.auth.mode: "trusted-proxy"` (or `--trusted-proxy-user-header`).
    TrustedProxy(crate::auth::TrustedProxySettings),
}

impl std::fmt::Debug for AuthSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AuthSetting::None => f.write_str("None"),
            AuthSetting::Token(t) => write!(
                f,
                "Token({})",
                if t.is_some() {
                    "<redacted>"
                } else {
                    "generated"
                }
            ),
            AuthSetting::Password(_) => f.write_str("Password(<redacted>)"),
            AuthSetting::TrustedProxy(t) => write!(f, "TrustedProxy({:?})", t.user_header),
        }
    }
}

/// `--auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthModeFlag {
    None,
    Token,
    Password,
}

/// Auth settings given on the command line or in the environment (they win over the file).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AuthOverrides {
    pub mode: Option<AuthModeFlag>,
    /// `--token`, else `PINCER_GATEWAY_TOKEN` / `OPENCLAW_GATEWAY_TOKEN`.
    pub token: Option<String>,
    /// `--password`, else `PINCER_GATEWAY_PASSWORD` / `OPENCLAW_GATEWAY_PASSWORD`.
    pub password: Option<String>,
    /// `--trusted-proxy-user-header` & co.: trusted-proxy auth, winning over every other mode.
    pub trusted_proxy: Option<crate::auth::TrustedProxySettings>,
}

impl std::fmt::Debug for AuthOverrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthOverrides")
            .field("mode", &self.mode)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("trusted_proxy", &self.trusted_proxy)
            .finish()
    }
}

/// Log output format on stderr (the log file is always JSON lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// Everything `pincer gateway run` needs.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub state_dir: PathBuf,
    /// `--bind` (`None`: `gateway.bind`, else loopback).
    pub bind: Option<BindMode>,
    /// `--port` or `PINCER_GATEWAY_PORT` (`None`: `gateway.port`, else 18789).
    pub port: Option<u16>,
    pub auth: AuthOverrides,
    pub timers: Timers,
    pub log_format: LogFormat,
    pub verbose: bool,
    /// TLS, failed-auth limits, trusted proxies, local auto-approval given as flags (`--tls*`,
    /// `--trusted-proxy`, `--no-auto-approve-local`, …); they win over the config file.
    pub security: crate::security::SecurityOverrides,
}

/// Timer knobs (environment-overridable for tests).
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub tick_interval: Duration,
    pub handshake_timeout: Duration,
    pub health_refresh: Duration,
    pub ws_ping_interval: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            tick_interval: Duration::from_millis(limits::TICK_INTERVAL_MS),
            handshake_timeout: Duration::from_millis(limits::HANDSHAKE_TIMEOUT_MS),
            health_refresh: Duration::from_millis(limits::HEALTH_REFRESH_INTERVAL_MS),
            ws_ping_interval: Duration::from_millis(limits::WS_PING_INTERVAL_MS),
        }
    }
}

fn env_ms(names: &[&str]) -> Option<Duration> {
    names
        .iter()
        .filter_map(|n| std::env::var(n).ok())
        .find_map(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0)
        .map(Duration::from_millis)
}

impl Timers {
    /// Defaults overridden by `PINCER_TICK_INTERVAL_MS`, `PINCER_HANDSHAKE_TIMEOUT_MS` /
    /// `OPENCLAW_HANDSHAKE_TIMEOUT_MS`, `PINCER_HEALTH_REFRESH_MS`, `PINCER_WS_PING_INTERVAL_MS`.
    pub fn from_env() -> Timers {
        let d = Timers::default();
        Timers {
            tick_interval: env_ms(&["PINCER_TICK_INTERVAL_MS"]).unwrap_or(d.tick_interval),
            handshake_timeout: env_ms(&[
                "PINCER_HANDSHAKE_TIMEOUT_MS",
                "OPENCLAW_HANDSHAKE_TIMEOUT_MS",
            ])
            .unwrap_or(d.handshake_timeout),
            health_refresh: env_ms(&["PINCER_HEALTH_REFRESH_MS"]).unwrap_or(d.health_refresh),
            ws_ping_interval: env_ms(&["PINCER_WS_PING_INTERVAL_MS"]).unwrap_or(d.ws_ping_interval),
        }
    }
}

/// The default state dir: `$PINCER_STATE_DIR`, else `~/.pincer`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PINCER_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".pincer")
}

/// The port from the environment: `PINCER_GATEWAY_PORT` > `OPENCLAW_GATEWAY_PORT`.
pub fn env_port() -> Option<u16> {
    ["PINCER_GATEWAY_PORT", "OPENCLAW_GATEWAY_PORT"]
        .iter()
        .filter_map(|n| std::env::var(n).ok())
        .find_map(|v| v.trim().parse::<u16>().ok())
}

/// Default port without a config file: `PINCER_GATEWAY_PORT` > `OPENCLAW_GATEWAY_PORT` > 18789.
pub fn default_port() -> u16 {
    env_port().unwrap_or(18789)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_modes() {
        assert!(BindMode::Loopback.is_loopback());
        assert!(!BindMode::Lan.is_loopback());
        assert!(BindMode::Custom(
            "127.0.0.2"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        )
        .is_loopback());
    }

    #[test]
    fn secrets_are_not_debug_printed() {
        let s = format!("{:?}", AuthSetting::Password("hunter2".into()));
        assert!(!s.contains("hunter2"));
        let s = format!("{:?}", AuthSetting::Token(Some("tok-123".into())));
        assert!(!s.contains("tok-123"));
    }
}
