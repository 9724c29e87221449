//! Start-time security settings of the gateway (TLS, failed-auth limits, trusted proxies,
//! local auto-approval) and what the upgrade path derives from a request's headers.
//!
//! The config file (`gateway.tls`, `gateway.auth.rateLimit`, `gateway.auth.trustedProxy`,
//! `gateway.trustedProxies`, `gateway.nodes.pairing.autoApproveLocal`) maps onto
//! [`SecuritySettings`]; `pincer gateway run` flags set the same fields.

use std::net::IpAddr;

use axum::http::HeaderMap;
use parking_lot::RwLock;

use crate::auth::{trusted_proxy_identity, GatewayAuth, IpRange, TrustedProxySettings};
use crate::handshake::PeerFacts;
use crate::ratelimit::RateLimitSettings;
use crate::tls::TlsSettings;

/// Headers that mean "a proxy forwarded this" (they disqualify locality).
pub const FORWARDING_HEADERS: [&str; 6] = [
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-real-ip",
    "x-forwarded-port",
];

/// Security options chosen at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecuritySettings {
    pub tls: TlsSettings,
    pub rate_limit: RateLimitSettings,
    /// `gateway.auth.trustedProxy` (used when auth mode is `trusted-proxy`).
    pub trusted_proxy: Option<TrustedProxySettings>,
    /// `gateway.trustedProxies`.
    pub trusted_proxies: Vec<IpRange>,
    /// `gateway.nodes.pairing.autoApproveLocal` (default true).
    pub auto_approve_local: bool,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            tls: TlsSettings::default(),
            rate_limit: RateLimitSettings::default(),
            trusted_proxy: None,
            trusted_proxies: Vec::new(),
            auto_approve_local: true,
        }
    }
}

/// Runtime view used on every accept and upgrade (trusted proxies are replaceable by a config
/// reload; TLS is fixed at start).
#[derive(Default)]
pub struct SecurityState {
    trusted_proxies: RwLock<Vec<IpRange>>,
    /// SHA-256 fingerprint of the TLS certificate (lower-case hex) when TLS is on.
    pub tls_fingerprint: Option<String>,
    /// The TLS server config when the port speaks TLS.
    pub tls_config: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for SecurityState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityState")
            .field("tls_fingerprint", &self.tls_fingerprint)
            .finish_non_exhaustive()
    }
}

impl SecurityState {
    pub fn new(
        trusted_proxies: Vec<IpRange>,
        tls: Option<&crate::tls::TlsIdentity>,
    ) -> SecurityState {
        SecurityState {
            trusted_proxies: RwLock::new(trusted_proxies),
            tls_fingerprint: tls.map(|t| t.fingerprint.clone()),
            tls_config: tls.map(|t| t.config.clone()),
        }
    }

    pub fn set_trusted_proxies(&self, proxies: Vec<IpRange>) {
        *self.trusted_proxies.write() = proxies;
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.read().iter().any(|r| r.contains(ip))
    }

    /// What the headers of an upgrade request say, given who sent it. Forwarding headers
    /// from an untrusted peer are never believed (and the connection is never "local");
    /// from a trusted proxy, `X-Forwarded-For` names the client for rate limiting and
    /// pairing records.
    pub fn peer_facts(&self, auth: &GatewayAuth, peer: IpAddr, headers: &HeaderMap) -> PeerFacts {
        let forwarded = FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h));
        let trusted = forwarded && self.is_trusted_proxy(peer);
        let forwarded_for = trusted
            .then(|| {
                headers
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(',').next())
                    .and_then(|v| v.trim().parse::<IpAddr>().ok())
                    .or_else(|| {
                        headers
                            .get("x-real-ip")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.trim().parse().ok())
                    })
            })
            .flatten();
        let proxy_identity = match auth {
            GatewayAuth::TrustedProxy(settings) => Some(trusted_proxy_identity(
                settings,
                &self.trusted_proxies.read(),
                peer,
                headers,
            )),
            _ => None,
        };
        PeerFacts {
            forwarded,
            forwarded_for,
            proxy_identity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.9.0.1".parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let sec = SecurityState::new(
            vec![IpRange {
                addr: proxy,
                prefix: 32,
            }],
            None,
        );
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.5, 10.9.0.1"),
        );
        let f = sec.peer_facts(&GatewayAuth::None, proxy, &h);
        assert!(f.forwarded);
        assert_eq!(f.forwarded_for, "203.0.113.5".parse().ok());
        let stranger: IpAddr = "127.0.0.1".parse().unwrap_or(proxy);
        let f = sec.peer_facts(&GatewayAuth::None, stranger, &h);
        assert!(f.forwarded);
        assert_eq!(f.forwarded_for, None);
        assert!(f.proxy_identity.is_none());
        let f = sec.peer_facts(&GatewayAuth::None, stranger, &HeaderMap::new());
        assert!(!f.forwarded);
    }
}
