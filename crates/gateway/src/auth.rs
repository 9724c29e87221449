//! Shared auth (modes none / token / password / trusted-proxy), compared in constant time, and
//! the swappable [`AuthCell`] that lets the gateway token or password change at run time
//! (sessions that used the old secret are closed with 4001 `gateway auth changed`).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::http::HeaderMap;
use parking_lot::RwLock;
use pincer_protocol::connect::ConnectAuth;
use pincer_protocol::errors::AuthFailureReason;
use subtle::ConstantTimeEq;

/// `gateway.auth.trustedProxy`: identity from a header set by a proxy at a trusted address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TrustedProxySettings {
    /// Header carrying the authenticated user (e.g. `x-forwarded-user`).
    pub user_header: String,
    /// Headers the proxy must also set (non-blank).
    pub required_headers: Vec<String>,
    /// When non-empty, only these users are accepted.
    pub allow_users: Vec<String>,
    /// Accept a proxy on a loopback address.
    pub allow_loopback: bool,
}

/// An address range in `gateway.trustedProxies` (defined by the config crate).
pub use pincer_config::net::IpRange;

/// The resolved auth mode of a running gateway. Secrets never appear in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub enum GatewayAuth {
    None,
    Token(String),
    Password(String),
    TrustedProxy(TrustedProxySettings),
}

impl std::fmt::Debug for GatewayAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.mode_str())
    }
}

/// Outcome of evaluating the shared auth of a `connect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedAuth {
    /// Auth mode `none`: nothing to check.
    NotRequired,
    /// The presented secret matched (or the trusted proxy vouched for a user).
    Ok,
    /// No secret presented.
    Missing(AuthFailureReason),
    /// A secret was presented and is wrong (or the proxy identity was refused).
    Failed(AuthFailureReason),
}

impl SharedAuth {
    pub fn is_ok(&self) -> bool {
        matches!(self, SharedAuth::Ok | SharedAuth::NotRequired)
    }
}

/// Constant-time equality of two secrets (length leaks, content does not).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// What a trusted proxy said about a request (computed once at upgrade time).
pub type ProxyIdentity = Result<String, AuthFailureReason>;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// Trusted-proxy identity of a request from `peer`: the peer must be a configured proxy
/// (loopback only with `allow_loopback`), the required headers present and the user allowed.
pub fn trusted_proxy_identity(
    settings: &TrustedProxySettings,
    proxies: &[IpRange],
    peer: IpAddr,
    headers: &HeaderMap,
) -> ProxyIdentity {
    if proxies.is_empty() {
        return Err(AuthFailureReason::TrustedProxyNoProxiesConfigured);
    }
    if !proxies.iter().any(|r| r.contains(peer)) {
        return Err(AuthFailureReason::TrustedProxyUntrustedSource);
    }
    if peer.is_loopback() && !settings.allow_loopback {
        return Err(AuthFailureReason::TrustedProxyLoopbackSource);
    }
    for h in &settings.required_headers {
        let name = h.trim().to_ascii_lowercase();
        if header(headers, &name).is_none() {
            return Err(AuthFailureReason::TrustedProxyMissingHeader(name));
        }
    }
    let user = header(headers, &settings.user_header.trim().to_ascii_lowercase())
        .ok_or(AuthFailureReason::TrustedProxyUserMissing)?;
    if !settings.allow_users.is_empty() && !settings.allow_users.iter().any(|u| u == user) {
        return Err(AuthFailureReason::TrustedProxyUserNotAllowed);
    }
    Ok(user.to_string())
}

/// base64url (unpadded) SHA-256 of `input`.
fn sha256_base64url(input: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    pincer_protocol::device_auth::encode_base64url(&Sha256::digest(input))
}

/// What a session's credential is, for `hello-ok.auth.recoveryScope` (spec §2.4), in the
/// reference's order of preference.
#[derive(Debug, Clone, Copy)]
pub enum RecoveryMaterial<'a> {
    /// A user vouched for by a trusted proxy, with the device (if any).
    Principal(&'a str, Option<&'a str>),
    /// The device token handed out in this `hello-ok`.
    DeviceToken(&'a str),
    /// Shared token/password auth: the secret's generation, with the device (if any).
    SharedAuth(&'a str, Option<&'a str>),
    /// Only a device identity.
    Device(&'a str),
}

impl RecoveryMaterial<'_> {
    /// `base64url(sha256(JSON array))`, as the reference computes it (so a client moving
    /// between the two sees the same scope for the same credential).
    pub fn scope(&self) -> String {
        let material = match self {
            RecoveryMaterial::Principal(p, d) => {
                serde_json::json!(["principal", p, d.unwrap_or("")])
            }
            RecoveryMaterial::DeviceToken(t) => serde_json::json!(["device-token", t]),
            RecoveryMaterial::SharedAuth(g, d) => {
                serde_json::json!(["shared-auth", g, d.unwrap_or("")])
            }
            RecoveryMaterial::Device(d) => serde_json::json!(["device", d]),
        };
        sha256_base64url(material.to_string().as_bytes())
    }
}

impl GatewayAuth {
    /// The shared-secret generation of token/password auth: `base64url(sha256(mode NUL
    /// secret))`, stable across restarts and changed by any new secret.
    pub fn shared_generation(&self) -> Option<String> {
        let (mode, secret) = match self {
            GatewayAuth::Token(t) => ("token", t),
            GatewayAuth::Password(p) => ("password", p),
            GatewayAuth::None | GatewayAuth::TrustedProxy(_) => return None,
        };
        let mut input = Vec::with_capacity(mode.len() + 1 + secret.len());
        input.extend_from_slice(mode.as_bytes());
        input.push(0);
        input.extend_from_slice(secret.as_bytes());
        Some(sha256_base64url(&input))
    }

    pub fn mode_str(&self) -> &'static str {
        match self {
            GatewayAuth::None => "none",
            GatewayAuth::Token(_) => "token",
            GatewayAuth::Password(_) => "password",
            GatewayAuth::TrustedProxy(_) => "trusted-proxy",
        }
    }

    /// `hello-ok.auth.method` for a successful shared-auth connect.
    pub fn method_str(&self) -> &'static str {
        self.mode_str()
    }

    /// Whether a connect in this mode carries a shared secret.
    pub fn uses_secret(&self) -> bool {
        matches!(self, GatewayAuth::Token(_) | GatewayAuth::Password(_))
    }

    /// The mode selects the configured secret; the client may put it in `auth.token` or
    /// `auth.password`. Trusted-proxy mode uses the identity the proxy vouched for.
    pub fn evaluate(
        &self,
        auth: Option<&ConnectAuth>,
        proxy: Option<&ProxyIdentity>,
    ) -> SharedAuth {
        fn presented<'a>(
            primary: Option<&'a String>,
            secondary: Option<&'a String>,
        ) -> Option<&'a str> {
            primary
                .or(secondary)
                .map(String::as_str)
                .filter(|s| !s.is_empty())
        }
        match self {
            GatewayAuth::None => SharedAuth::NotRequired,
            GatewayAuth::Token(expected) => {
                match presented(
                    auth.and_then(|a| a.token.as_ref()),
                    auth.and_then(|a| a.password.as_ref()),
                ) {
                    None => SharedAuth::Missing(AuthFailureReason::TokenMissing),
                    Some(given) if secrets_equal(given, expected) => SharedAuth::Ok,
                    Some(_) => SharedAuth::Failed(AuthFailureReason::TokenMismatch),
                }
            }
            GatewayAuth::Password(expected) => {
                match presented(
                    auth.and_then(|a| a.password.as_ref()),
                    auth.and_then(|a| a.token.as_ref()),
                ) {
                    None => SharedAuth::Missing(AuthFailureReason::PasswordMissing),
                    Some(given) if secrets_equal(given, expected) => SharedAuth::Ok,
                    Some(_) => SharedAuth::Failed(AuthFailureReason::PasswordMismatch),
                }
            }
            GatewayAuth::TrustedProxy(_) => match proxy {
                Some(Ok(_)) => SharedAuth::Ok,
                Some(Err(reason)) => SharedAuth::Failed(reason.clone()),
                None => SharedAuth::Failed(AuthFailureReason::TrustedProxyUntrustedSource),
            },
        }
    }
}

/// The current shared auth plus a generation counter bumped on every change.
#[derive(Debug)]
pub struct AuthCell {
    current: RwLock<Arc<GatewayAuth>>,
    generation: AtomicU64,
}

impl AuthCell {
    pub fn new(auth: GatewayAuth) -> AuthCell {
        AuthCell {
            current: RwLock::new(Arc::new(auth)),
            generation: AtomicU64::new(1),
        }
    }

    /// The auth in force and its generation.
    pub fn snapshot(&self) -> (Arc<GatewayAuth>, u64) {
        let guard = self.current.read();
        (Arc::clone(&guard), self.generation.load(Ordering::Acquire))
    }

    pub fn get(&self) -> Arc<GatewayAuth> {
        Arc::clone(&self.current.read())
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn mode_str(&self) -> &'static str {
        self.current.read().mode_str()
    }

    /// Install `auth`; returns the new generation when it differs from the current one.
    pub fn replace(&self, auth: GatewayAuth) -> Option<u64> {
        let mut guard = self.current.write();
        if **guard == auth {
            return None;
        }
        *guard = Arc::new(auth);
        Some(self.generation.fetch_add(1, Ordering::AcqRel) + 1)
    }

    /// Starts a new generation with the same auth (what it depends on, such as the trusted
    /// proxies, changed); returns it.
    pub fn bump(&self) -> u64 {
        let _guard = self.current.write();
        self.generation.fetch_add(1, Ordering::AcqRel) + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(token: Option<&str>, password: Option<&str>) -> ConnectAuth {
        ConnectAuth {
            token: token.map(String::from),
            password: password.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn recovery_scopes_match_the_reference_hashes() {
        // Expected values computed with Node's crypto over the reference's JSON materials.
        let generation = GatewayAuth::Token("secret".into()).shared_generation();
        assert_eq!(
            generation.as_deref(),
            Some("p3G88dOM4gxrCviUq5EP1MRsrEj44ErMHLkIkTlnXiE")
        );
        let g = generation.unwrap_or_default();
        assert_eq!(
            RecoveryMaterial::SharedAuth(&g, Some("abc")).scope(),
            "MS4b7NwvfQjxACmgG1Wk-LcDAoXwP7YWW6QmBahcqPg"
        );
        assert_eq!(
            RecoveryMaterial::DeviceToken("tok").scope(),
            "Xr2vk_ZG3Ti6zI4Z82Nghj_0CAmdRPcKCUarZNRMPiA"
        );
        assert_eq!(
            RecoveryMaterial::Principal("alice", None).scope(),
            "2uOmE_ecXB4FpZQyRkv6SSj1noCEEfTb9u6roY2GN5Q"
        );
        assert_eq!(
            RecoveryMaterial::Device("d1").scope(),
            "nPwzyXqXeVNg6osrZJi-cjwYyNWOx6T1KoLlTJCC_pE"
        );
        assert_ne!(
            GatewayAuth::Password("secret".into()).shared_generation(),
            GatewayAuth::Token("secret".into()).shared_generation()
        );
        assert_eq!(GatewayAuth::None.shared_generation(), None);
    }

    #[test]
    fn token_mode() {
        let a = GatewayAuth::Token("secret".into());
        let ev = |t, p| a.evaluate(Some(&with(t, p)), None);
        assert_eq!(ev(Some("secret"), None), SharedAuth::Ok);
        assert_eq!(ev(None, Some("secret")), SharedAuth::Ok);
        assert_eq!(
            ev(Some("nope"), None),
            SharedAuth::Failed(AuthFailureReason::TokenMismatch)
        );
        assert_eq!(
            ev(Some("secretx"), None),
            SharedAuth::Failed(AuthFailureReason::TokenMismatch)
        );
        assert_eq!(
            ev(None, None),
            SharedAuth::Missing(AuthFailureReason::TokenMissing)
        );
        assert_eq!(
            a.evaluate(None, None),
            SharedAuth::Missing(AuthFailureReason::TokenMissing)
        );
        assert_eq!(
            ev(Some(""), None),
            SharedAuth::Missing(AuthFailureReason::TokenMissing)
        );
    }

    #[test]
    fn password_mode_and_none() {
        let a = GatewayAuth::Password("pw".into());
        assert_eq!(
            a.evaluate(Some(&with(None, Some("pw"))), None),
            SharedAuth::Ok
        );
        assert_eq!(
            a.evaluate(Some(&with(None, Some("x"))), None),
            SharedAuth::Failed(AuthFailureReason::PasswordMismatch)
        );
        assert_eq!(
            a.evaluate(None, None),
            SharedAuth::Missing(AuthFailureReason::PasswordMissing)
        );
        assert_eq!(
            GatewayAuth::None.evaluate(None, None),
            SharedAuth::NotRequired
        );
        assert!(!format!("{a:?}").contains("pw\""));
    }

    #[test]
    fn ranges() {
        let r = IpRange::parse("10.1.0.0/16").unwrap_or(IpRange {
            addr: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            prefix: 32,
        });
        assert!(r.contains("10.1.200.3".parse().unwrap_or(r.addr)));
        assert!(r.contains("::ffff:10.1.0.9".parse().unwrap_or(r.addr)));
        assert!(!r.contains("10.2.0.1".parse().unwrap_or(r.addr)));
        let one = IpRange::parse("fd00::1").ok();
        assert_eq!(one.map(|r| r.prefix), Some(128));
        assert!(IpRange::parse("10.0.0.0/33").is_err());
        assert!(IpRange::parse("nope").is_err());
        let all = IpRange::parse("0.0.0.0/0").ok();
        assert!(all.is_some_and(|r| r.contains("203.0.113.9".parse().unwrap_or(r.addr))));
    }

    #[test]
    fn trusted_proxy_rules() {
        let settings = TrustedProxySettings {
            user_header: "X-Forwarded-User".into(),
            required_headers: vec!["x-forwarded-proto".into()],
            allow_users: vec!["alice".into()],
            allow_loopback: false,
        };
        let proxies = vec![IpRange {
            addr: "10.0.0.5"
                .parse()
                .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)),
            prefix: 32,
        }];
        let proxy: IpAddr = "10.0.0.5".parse().unwrap_or(proxies[0].addr);
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-user", HeaderValue::from_static("alice"));
        assert_eq!(
            trusted_proxy_identity(&settings, &proxies, proxy, &h),
            Err(AuthFailureReason::TrustedProxyMissingHeader(
                "x-forwarded-proto".into()
            ))
        );
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        assert_eq!(
            trusted_proxy_identity(&settings, &proxies, proxy, &h),
            Ok("alice".into())
        );
        let other: IpAddr = "10.0.0.6".parse().unwrap_or(proxy);
        assert_eq!(
            trusted_proxy_identity(&settings, &proxies, other, &h),
            Err(AuthFailureReason::TrustedProxyUntrustedSource)
        );
        h.insert("x-forwarded-user", HeaderValue::from_static("mallory"));
        assert_eq!(
            trusted_proxy_identity(&settings, &proxies, proxy, &h),
            Err(AuthFailureReason::TrustedProxyUserNotAllowed)
        );
        let lo: IpAddr = "127.0.0.1".parse().unwrap_or(proxy);
        let lo_proxies = vec![IpRange {
            addr: lo,
            prefix: 8,
        }];
        assert_eq!(
            trusted_proxy_identity(&settings, &lo_proxies, lo, &h),
            Err(AuthFailureReason::TrustedProxyLoopbackSource)
        );
        assert_eq!(
            trusted_proxy_identity(&settings, &[], proxy, &h),
            Err(AuthFailureReason::TrustedProxyNoProxiesConfigured)
        );
    }

    #[test]
    fn cell_replaces_and_counts_generations() {
        let cell = AuthCell::new(GatewayAuth::Token("a".into()));
        assert_eq!(cell.generation(), 1);
        assert_eq!(cell.replace(GatewayAuth::Token("a".into())), None);
        assert_eq!(cell.replace(GatewayAuth::Token("b".into())), Some(2));
        assert_eq!(*cell.get(), GatewayAuth::Token("b".into()));
        assert_eq!(cell.snapshot().1, 2);
    }
}
