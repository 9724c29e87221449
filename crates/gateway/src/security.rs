//! Security settings of the gateway (TLS, failed-auth limits, trusted proxies, device
//! auto-approval) and what the upgrade path derives from a request's headers.
//!
//! [`SecuritySettings::resolve`] reads them from the config file (`gateway.tls`,
//! `gateway.auth.rateLimit`, `gateway.trustedProxies`, `gateway.allowRealIpFallback`,
//! `gateway.nodes.pairing.*`) under the
//! `pincer gateway run` flags ([`SecurityOverrides`], which win). The same function runs at
//! start and on every config reload; [`crate::reload`] applies what is hot.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use axum::http::HeaderMap;
use parking_lot::RwLock;
use pincer_config::Config;

use crate::auth::{trusted_proxy_identity, GatewayAuth, IpRange};
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

/// Security options in force (config file under the flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecuritySettings {
    pub tls: TlsSettings,
    pub rate_limit: RateLimitSettings,
    /// `gateway.trustedProxies`.
    pub trusted_proxies: Vec<IpRange>,
    /// `gateway.allowRealIpFallback` (default false).
    pub allow_real_ip_fallback: bool,
    /// `gateway.nodes.pairing.autoApproveLocal` (default true).
    pub auto_approve_local: bool,
    /// `gateway.nodes.pairing.autoApproveCidrs` (default none).
    pub auto_approve_cidrs: Vec<IpRange>,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        SecuritySettings {
            tls: TlsSettings::default(),
            rate_limit: RateLimitSettings::default(),
            trusted_proxies: Vec::new(),
            allow_real_ip_fallback: false,
            auto_approve_local: true,
            auto_approve_cidrs: Vec::new(),
        }
    }
}

/// Security options given on the command line; `None` means "from the config file, else the
/// default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOverrides {
    /// `--tls` / `--tls-cert` + `--tls-key`.
    pub tls: Option<TlsSettings>,
    /// `--trusted-proxy` (repeatable).
    pub trusted_proxies: Option<Vec<IpRange>>,
    /// `--no-auto-approve-local`.
    pub auto_approve_local: Option<bool>,
    /// `--rate-limit-loopback`.
    pub rate_limit_exempt_loopback: Option<bool>,
}

/// A path from the config file: `~/` is the home directory, a relative path is relative to
/// the config file's directory.
pub fn config_relative_path(text: &str, config_path: &Path) -> PathBuf {
    let text = text.trim();
    if let Some(rest) = text.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let p = PathBuf::from(text);
    if p.is_absolute() {
        return p;
    }
    config_path.parent().map(|dir| dir.join(&p)).unwrap_or(p)
}

impl SecuritySettings {
    /// The settings of `cfg` (loaded from `config_path`) under `flags`. Errors name the file,
    /// the key and the reason (the config crate has already checked shapes, so this only
    /// fails on what it cannot see).
    pub fn resolve(
        cfg: &Config,
        config_path: &Path,
        flags: &SecurityOverrides,
    ) -> Result<SecuritySettings, String> {
        let gw = &cfg.gateway;
        let file = config_path.display();
        let list = |key: &str, items: Option<&Vec<String>>| {
            IpRange::parse_all(items.map(Vec::as_slice).unwrap_or_default())
                .map_err(|reason| format!("{file}: {key}: {reason}"))
        };
        let tls = match &flags.tls {
            Some(t) => t.clone(),
            None => TlsSettings {
                enabled: gw.tls.enabled.unwrap_or(false),
                // The reference's default: generate a self-signed pair when none exists.
                auto_generate: gw.tls.auto_generate.unwrap_or(true),
                cert_path: gw
                    .tls
                    .cert_path
                    .as_deref()
                    .map(|p| config_relative_path(p, config_path)),
                key_path: gw
                    .tls
                    .key_path
                    .as_deref()
                    .map(|p| config_relative_path(p, config_path)),
            },
        };
        if tls.cert_path.is_some() != tls.key_path.is_some() {
            return Err(format!(
                "{file}: gateway.tls: certPath and keyPath must be set together"
            ));
        }
        let defaults = RateLimitSettings::default();
        let rl = gw.auth.rate_limit.clone().unwrap_or_default();
        let pairing = gw.nodes.pairing.clone().unwrap_or_default();
        let rate_limit = RateLimitSettings {
            max_attempts: rl.max_attempts.unwrap_or(defaults.max_attempts).max(1),
            window: rl
                .window_ms
                .map(std::time::Duration::from_millis)
                .unwrap_or(defaults.window),
            lockout: rl
                .lockout_ms
                .map(std::time::Duration::from_millis)
                .unwrap_or(defaults.lockout),
            exempt_loopback: flags
                .rate_limit_exempt_loopback
                .or(rl.exempt_loopback)
                .unwrap_or(defaults.exempt_loopback),
        };
        let trusted_proxies = match &flags.trusted_proxies {
            Some(p) => p.clone(),
            None => list("gateway.trustedProxies", gw.trusted_proxies.as_ref())?,
        };
        Ok(SecuritySettings {
            tls,
            rate_limit,
            trusted_proxies,
            allow_real_ip_fallback: gw.allow_real_ip_fallback.unwrap_or(false),
            auto_approve_local: flags
                .auto_approve_local
                .or(pairing.auto_approve_local)
                .unwrap_or(true),
            auto_approve_cidrs: list(
                "gateway.nodes.pairing.autoApproveCidrs",
                pairing.auto_approve_cidrs.as_ref(),
            )?,
        })
    }
}

/// Runtime view used on every accept and upgrade (trusted proxies are replaceable by a config
/// reload; TLS is fixed at start).
#[derive(Default)]
pub struct SecurityState {
    /// The flags the gateway was started with (re-applied over every reloaded config).
    pub overrides: SecurityOverrides,
    trusted_proxies: RwLock<Vec<IpRange>>,
    /// `gateway.allowRealIpFallback`: a trusted proxy's `X-Real-IP` names the client when it
    /// sends no `X-Forwarded-For`.
    allow_real_ip_fallback: AtomicBool,
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
        overrides: SecurityOverrides,
        trusted_proxies: Vec<IpRange>,
        tls: Option<&crate::tls::TlsIdentity>,
    ) -> SecurityState {
        SecurityState {
            overrides,
            trusted_proxies: RwLock::new(trusted_proxies),
            allow_real_ip_fallback: AtomicBool::new(false),
            tls_fingerprint: tls.map(|t| t.fingerprint.clone()),
            tls_config: tls.map(|t| t.config.clone()),
        }
    }

    /// Replaces the trusted proxies; returns whether they changed.
    pub fn set_trusted_proxies(&self, proxies: Vec<IpRange>) -> bool {
        let mut guard = self.trusted_proxies.write();
        if *guard == proxies {
            return false;
        }
        *guard = proxies;
        true
    }

    /// With `gateway.allowRealIpFallback` as configured at start.
    pub fn with_real_ip_fallback(self, allow: bool) -> SecurityState {
        self.set_allow_real_ip_fallback(allow);
        self
    }

    /// Sets `gateway.allowRealIpFallback`; returns whether it changed.
    pub fn set_allow_real_ip_fallback(&self, allow: bool) -> bool {
        self.allow_real_ip_fallback.swap(allow, Ordering::Relaxed) != allow
    }

    pub fn trusted_proxies(&self) -> Vec<IpRange> {
        self.trusted_proxies.read().clone()
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.read().iter().any(|r| r.contains(ip))
    }

    /// What the headers of an upgrade request say, given who sent it. Forwarding headers
    /// from an untrusted peer are never believed (and the connection is never "local");
    /// from a trusted proxy, `X-Forwarded-For` names the client for rate limiting and
    /// pairing records (its rightmost untrusted hop, [`forwarded_client_ip`]); only with `gateway.allowRealIpFallback`, when `X-Forwarded-For` names
    /// no client, does `X-Real-IP`.
    pub fn peer_facts(&self, auth: &GatewayAuth, peer: IpAddr, headers: &HeaderMap) -> PeerFacts {
        let forwarded = FORWARDING_HEADERS.iter().any(|h| headers.contains_key(*h));
        let trusted = forwarded && self.is_trusted_proxy(peer);
        let forwarded_for = trusted
            .then(|| {
                forwarded_client_ip(headers, &self.trusted_proxies.read()).or_else(|| {
                    // As the reference: only when X-Forwarded-For names no client.
                    if !self.allow_real_ip_fallback.load(Ordering::Relaxed) {
                        return None;
                    }
                    headers
                        .get("x-real-ip")
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_ip_literal)
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

/// The client a chain of proxies reports in `X-Forwarded-For`. Every proxy appends the
/// address it received the request from, so only the right end of the list was written by
/// proxies we trust; anything to the left of the first untrusted hop is the client's own text
/// and may be forged. So, as the reference does, walk from the right, skip loopback and
/// trusted-proxy hops (and entries that are not IP addresses) and take the first other
/// address. `None` when every hop is trusted (or loopback) or the header names no one.
/// Several `X-Forwarded-For` lines count as one list, in order.
pub fn forwarded_client_ip(headers: &HeaderMap, trusted_proxies: &[IpRange]) -> Option<IpAddr> {
    if trusted_proxies.is_empty() {
        return None;
    }
    let lines: Vec<_> = headers
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| String::from_utf8_lossy(v.as_bytes()))
        .collect();
    lines
        .iter()
        .rev()
        .flat_map(|line| line.rsplit(','))
        .filter_map(parse_ip_literal)
        .find(|hop| !hop.is_loopback() && !trusted_proxies.iter().any(|r| r.contains(*hop)))
}

/// One address as proxies write it: surrounding blanks, `[v6]` or `[v6]:port`, `v4:port`;
/// IPv4-mapped IPv6 becomes IPv4 (so `::ffff:127.0.0.1` is loopback). `None` for anything
/// else (host names, `unknown`, obfuscated identifiers, garbage).
pub fn parse_ip_literal(raw: &str) -> Option<IpAddr> {
    let text = raw.trim();
    let text = match text.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(text, |(inner, _)| inner),
        None => text,
    };
    let ip = text.parse::<IpAddr>().ok().or_else(|| {
        let (host, port) = text.split_once(':')?;
        port.parse::<u16>().ok()?;
        host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
    })?;
    Some(match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::http::HeaderValue;

    fn resolve(text: &str, flags: &SecurityOverrides) -> Result<SecuritySettings, String> {
        let dir = std::env::temp_dir().join("pincer-security-resolve");
        let path = dir.join("pincer.json");
        let loaded =
            pincer_config::parse_str(text, &path, &pincer_config::LoadOptions::with_vars([]))
                .map_err(|e| e.to_string())?;
        SecuritySettings::resolve(&loaded.config, &path, flags)
    }

    #[test]
    fn config_keys_map_onto_the_settings_and_flags_win() {
        let d = resolve("{}", &SecurityOverrides::default()).unwrap();
        assert!(!d.tls.enabled && d.tls.auto_generate);
        assert_eq!(d.rate_limit, RateLimitSettings::default());
        assert!(d.auto_approve_local && d.trusted_proxies.is_empty());
        let text = "{ gateway: { trustedProxies: ['10.0.0.0/8'], tls: { enabled: true, certPath: 'c.pem', keyPath: '/abs/k.pem' }, auth: { rateLimit: { maxAttempts: 3, windowMs: 2000, lockoutMs: 5000, exemptLoopback: false } }, nodes: { pairing: { autoApproveLocal: false, autoApproveCidrs: ['192.168.1.0/24'] } } } }";
        let s = resolve(text, &SecurityOverrides::default()).unwrap();
        assert!(s.tls.enabled && s.tls.auto_generate);
        assert_eq!(
            s.tls.cert_path,
            Some(std::env::temp_dir().join("pincer-security-resolve/c.pem"))
        );
        assert_eq!(s.tls.key_path, Some(PathBuf::from("/abs/k.pem")));
        assert_eq!(s.rate_limit.max_attempts, 3);
        assert_eq!(s.rate_limit.window, std::time::Duration::from_millis(2000));
        assert_eq!(s.rate_limit.lockout, std::time::Duration::from_millis(5000));
        assert!(!s.rate_limit.exempt_loopback);
        assert!(!s.auto_approve_local);
        assert_eq!(
            s.trusted_proxies,
            IpRange::parse_all(&["10.0.0.0/8"]).unwrap()
        );
        assert_eq!(
            s.auto_approve_cidrs,
            IpRange::parse_all(&["192.168.1.0/24"]).unwrap()
        );
        let flags = SecurityOverrides {
            tls: Some(TlsSettings::default()),
            trusted_proxies: Some(Vec::new()),
            auto_approve_local: Some(true),
            rate_limit_exempt_loopback: Some(true),
        };
        let s = resolve(text, &flags).unwrap();
        assert!(!s.tls.enabled && s.trusted_proxies.is_empty());
        assert!(s.auto_approve_local && s.rate_limit.exempt_loopback);
        assert_eq!(s.rate_limit.max_attempts, 3);
    }

    fn trusting(proxy: IpAddr) -> SecurityState {
        let only_proxy = IpRange {
            addr: proxy,
            prefix: 32,
        };
        SecurityState::new(SecurityOverrides::default(), vec![only_proxy], None)
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let proxy: IpAddr = "10.9.0.1".parse().unwrap();
        let sec = trusting(proxy);
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

    fn xff(values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_static(v));
        }
        h
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn a_forged_leftmost_entry_never_names_the_client() {
        let proxies = IpRange::parse_all(&["10.9.0.1"]).unwrap();
        // The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the real address.
        let h = xff(&["1.2.3.4, 203.0.113.5"]);
        assert_eq!(forwarded_client_ip(&h, &proxies), ip("203.0.113.5"));
        // Through the upgrade path too, with the proxy's own hop on the right.
        let sec = trusting("10.9.0.1".parse().unwrap());
        let h = xff(&["1.2.3.4, 127.0.0.1, 203.0.113.5, 10.9.0.1"]);
        let f = sec.peer_facts(&GatewayAuth::None, "10.9.0.1".parse().unwrap(), &h);
        assert_eq!(f.forwarded_for, ip("203.0.113.5"));
        // A second header line is the later part of the same list.
        let h = xff(&["1.2.3.4", "198.51.100.7"]);
        assert_eq!(forwarded_client_ip(&h, &proxies), ip("198.51.100.7"));
    }

    #[test]
    fn a_chain_of_trusted_proxies_is_walked_from_the_right() {
        let proxies = IpRange::parse_all(&["10.0.0.0/8", "2001:db8::/32"]).unwrap();
        let h = xff(&["198.51.100.1, 203.0.113.5, 10.1.2.3, 2001:db8::9, 10.0.0.2"]);
        assert_eq!(forwarded_client_ip(&h, &proxies), ip("203.0.113.5"));
        // Loopback hops are skipped like trusted ones, IPv4-mapped forms included.
        let h = xff(&["203.0.113.5, ::1, ::ffff:127.0.0.1, 127.0.0.9"]);
        assert_eq!(forwarded_client_ip(&h, &proxies), ip("203.0.113.5"));
        // A client inside a trusted range is still a proxy hop, not a client.
        let h = xff(&["10.5.5.5"]);
        assert_eq!(forwarded_client_ip(&h, &proxies), None);
    }

    #[test]
    fn an_all_trusted_list_names_no_one() {
        let proxies = IpRange::parse_all(&["10.0.0.0/8"]).unwrap();
        assert_eq!(
            forwarded_client_ip(&xff(&["10.0.0.1, 127.0.0.1, 10.0.0.2"]), &proxies),
            None
        );
        assert_eq!(forwarded_client_ip(&xff(&[""]), &proxies), None);
        assert_eq!(forwarded_client_ip(&HeaderMap::new(), &proxies), None);
        // No trusted proxies configured: the header is never believed.
        assert_eq!(forwarded_client_ip(&xff(&["203.0.113.5"]), &[]), None);
        // Through the upgrade path the client is then unknown (callers use the peer), and
        // the X-Real-IP fallback applies only when it is on.
        let proxy: IpAddr = "10.9.0.1".parse().unwrap();
        let sec = trusting(proxy);
        let mut h = xff(&["10.9.0.1, 127.0.0.1"]);
        h.insert("x-real-ip", HeaderValue::from_static("203.0.113.7:4000"));
        assert_eq!(
            sec.peer_facts(&GatewayAuth::None, proxy, &h).forwarded_for,
            None
        );
        sec.set_allow_real_ip_fallback(true);
        assert_eq!(
            sec.peer_facts(&GatewayAuth::None, proxy, &h).forwarded_for,
            ip("203.0.113.7")
        );
    }

    #[test]
    fn malformed_entries_are_skipped_not_trusted() {
        let proxies = IpRange::parse_all(&["10.0.0.0/8"]).unwrap();
        // Garbage, host names and `unknown` to the right are skipped; the walk goes on.
        let h = xff(&["203.0.113.5, unknown, , not-an-ip, evil.example, 10.0.0.1,,"]);
        assert_eq!(forwarded_client_ip(&h, &proxies), ip("203.0.113.5"));
        // Nothing but garbage names no one.
        assert_eq!(
            forwarded_client_ip(&xff(&["unknown, _hidden, 999.1.1.1, 1.2.3"]), &proxies),
            None
        );
        // Ports and brackets as proxies write them.
        let h = xff(&["[2001:db8::5]:8443"]);
        assert_eq!(forwarded_client_ip(&h, &proxies), ip("2001:db8::5"));
        let h = xff(&["203.0.113.5:51234, 10.0.0.1:80"]);
        assert_eq!(forwarded_client_ip(&h, &proxies), ip("203.0.113.5"));
        // Bytes that are not text do not hide the hops around them.
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"203.0.113.5, \xff\xfe").unwrap(),
        );
        assert_eq!(forwarded_client_ip(&h, &proxies), ip("203.0.113.5"));
    }

    #[test]
    fn ip_literals_parse_as_proxies_write_them() {
        assert_eq!(parse_ip_literal(" 203.0.113.5 "), ip("203.0.113.5"));
        assert_eq!(parse_ip_literal("203.0.113.5:80"), ip("203.0.113.5"));
        assert_eq!(parse_ip_literal("[::1]"), ip("::1"));
        assert_eq!(parse_ip_literal("[2001:db8::1]:443"), ip("2001:db8::1"));
        assert_eq!(parse_ip_literal("2001:db8::1"), ip("2001:db8::1"));
        assert_eq!(parse_ip_literal("::ffff:198.51.100.2"), ip("198.51.100.2"));
        for bad in [
            "",
            "unknown",
            "1.2.3",
            "01.2.3.4",
            "1.2.3.4:port",
            "[::1",
            "host:80",
        ] {
            assert_eq!(parse_ip_literal(bad), None, "{bad}");
        }
    }

    #[test]
    fn real_ip_is_believed_only_when_the_fallback_is_on() {
        let proxy: IpAddr = "10.9.0.1".parse().unwrap();
        let sec = trusting(proxy);
        let mut real_ip_only = HeaderMap::new();
        real_ip_only.insert("x-real-ip", HeaderValue::from_static("203.0.113.7"));
        // Off by default: the header still disqualifies locality, but names nobody.
        let f = sec.peer_facts(&GatewayAuth::None, proxy, &real_ip_only);
        assert!(f.forwarded);
        assert_eq!(f.forwarded_for, None);

        assert!(sec.set_allow_real_ip_fallback(true));
        assert!(!sec.set_allow_real_ip_fallback(true));
        let f = sec.peer_facts(&GatewayAuth::None, proxy, &real_ip_only);
        assert_eq!(f.forwarded_for, "203.0.113.7".parse().ok());
        // X-Forwarded-For wins when it names a client.
        let mut both = real_ip_only.clone();
        both.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.2"));
        let f = sec.peer_facts(&GatewayAuth::None, proxy, &both);
        assert_eq!(f.forwarded_for, "198.51.100.2".parse().ok());
        // Never from a peer that is not a trusted proxy.
        let stranger: IpAddr = "192.0.2.9".parse().unwrap();
        let f = sec.peer_facts(&GatewayAuth::None, stranger, &real_ip_only);
        assert_eq!(f.forwarded_for, None);

        assert!(sec.set_allow_real_ip_fallback(false));
        let f = sec.peer_facts(&GatewayAuth::None, proxy, &real_ip_only);
        assert_eq!(f.forwarded_for, None);
    }

    #[test]
    fn allow_real_ip_fallback_comes_from_the_config_file() {
        let off = resolve("{}", &SecurityOverrides::default()).unwrap();
        assert!(!off.allow_real_ip_fallback);
        let on = resolve(
            "{ gateway: { allowRealIpFallback: true } }",
            &SecurityOverrides::default(),
        )
        .unwrap();
        assert!(on.allow_real_ip_fallback);
    }
}
