//! SSRF guard: which destinations `web_fetch` may connect to.
//!
//! Refused unless the policy allows them: loopback, private (RFC 1918), link-local, CGNAT
//! (100.64/10), unique-local v6 (fc00::/7), multicast, unspecified, broadcast/reserved,
//! documentation and benchmark ranges, and v6 forms that embed such a v4 address (mapped,
//! NAT64, 6to4). Hostnames are resolved once; every address must pass and the connection is made
//! only to the checked addresses (see [`GuardedResolver`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SsrfPolicy {
    /// `dangerouslyAllowPrivateNetwork`: allow every non-public destination.
    #[serde(default)]
    pub dangerously_allow_private_network: bool,
    /// Exact hostnames allowed whatever they resolve to (any port).
    #[serde(default)]
    pub allowed_hostnames: Vec<String>,
    /// Exact `host:port` pairs allowed whatever they resolve to (e.g. one local test server).
    #[serde(default)]
    pub allowed_endpoints: Vec<String>,
    /// Hostnames always refused.
    #[serde(default)]
    pub blocked_hostnames: Vec<String>,
    /// Allow 198.18.0.0/15 (fake-IP proxies).
    #[serde(default)]
    pub allow_rfc2544_benchmark_range: bool,
    /// Allow fc00::/7.
    #[serde(default)]
    pub allow_ipv6_unique_local_range: bool,
}

/// A refused destination.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Blocked by the SSRF guard: {target} ({reason}). web_fetch only fetches public addresses.")]
pub struct SsrfBlocked {
    pub target: String,
    pub reason: String,
}

fn v4_class(ip: Ipv4Addr, policy: &SsrfPolicy) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_unspecified() || o[0] == 0 {
        return Some("unspecified address");
    }
    if ip.is_loopback() {
        return Some("loopback address");
    }
    if ip.is_private() {
        return Some("private network address");
    }
    if ip.is_link_local() {
        return Some("link-local address");
    }
    if o[0] == 100 && (o[1] & 0xC0) == 64 {
        return Some("carrier-grade NAT address");
    }
    if ip.is_multicast() {
        return Some("multicast address");
    }
    if ip.is_broadcast() || o[0] >= 240 {
        return Some("reserved address");
    }
    if o[0] == 192 && o[1] == 0 && o[2] == 0 {
        return Some("IETF protocol assignment");
    }
    if (o[0] == 192 && o[1] == 0 && o[2] == 2)
        || (o[0] == 198 && o[1] == 51 && o[2] == 100)
        || (o[0] == 203 && o[1] == 0 && o[2] == 113)
    {
        return Some("documentation address");
    }
    if o[0] == 198 && (o[1] & 0xFE) == 18 && !policy.allow_rfc2544_benchmark_range {
        return Some("benchmark address (RFC 2544)");
    }
    None
}

fn v6_class(ip: Ipv6Addr, policy: &SsrfPolicy) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_class(v4, policy);
    }
    let s = ip.segments();
    if ip.is_unspecified() {
        return Some("unspecified address");
    }
    if ip.is_loopback() {
        return Some("loopback address");
    }
    if ip.is_multicast() {
        return Some("multicast address");
    }
    if (s[0] & 0xFFC0) == 0xFE80 {
        return Some("link-local address");
    }
    if (s[0] & 0xFFC0) == 0xFEC0 {
        return Some("site-local address");
    }
    if (s[0] & 0xFE00) == 0xFC00 && !policy.allow_ipv6_unique_local_range {
        return Some("unique-local address");
    }
    if s[0] == 0x2001 && s[1] == 0x0DB8 {
        return Some("documentation address");
    }
    // IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) embed a v4 address.
    let embedded = if s[..6] == [0, 0, 0, 0, 0, 0] || (s[0] == 0x0064 && s[1] == 0xFF9B) {
        Some(Ipv4Addr::new(
            (s[6] >> 8) as u8,
            s[6] as u8,
            (s[7] >> 8) as u8,
            s[7] as u8,
        ))
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ))
    } else {
        None
    };
    if let Some(v4) = embedded {
        return v4_class(v4, policy).map(|_| "IPv6 address embedding a non-public IPv4 address");
    }
    if s[0] == 0x2001 && s[1] == 0 {
        return Some("Teredo address");
    }
    None
}

/// Why `ip` is not a public destination (None = public, or allowed by policy).
pub fn blocked_reason(ip: IpAddr, policy: &SsrfPolicy) -> Option<&'static str> {
    if policy.dangerously_allow_private_network {
        return None;
    }
    match ip {
        IpAddr::V4(v4) => v4_class(v4, policy),
        IpAddr::V6(v6) => v6_class(v6, policy),
    }
}

fn host_matches(list: &[String], host: &str) -> bool {
    list.iter()
        .any(|h| h.trim_end_matches('.').eq_ignore_ascii_case(host))
}

/// Is the (host, port) explicitly trusted (allowed hostnames / endpoints)?
pub fn is_trusted(policy: &SsrfPolicy, host: &str, port: u16) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.');
    if host_matches(&policy.allowed_hostnames, host) {
        return true;
    }
    policy.allowed_endpoints.iter().any(|e| {
        let (h, p) = match e.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().ok()),
            None => (e.as_str(), None),
        };
        let h = h.trim_start_matches('[').trim_end_matches(']');
        h.eq_ignore_ascii_case(host) && p == Some(port)
    })
}

/// Checks that need no DNS: blocked names, internal-looking names, IP literals.
pub fn check_host(policy: &SsrfPolicy, host: &str, port: u16) -> Result<(), SsrfBlocked> {
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.');
    let target = format!("{host}:{port}");
    if host_matches(&policy.blocked_hostnames, bare) {
        return Err(SsrfBlocked {
            target,
            reason: "hostname is blocked by configuration".into(),
        });
    }
    if is_trusted(policy, bare, port) || policy.dangerously_allow_private_network {
        return Ok(());
    }
    let lower = bare.to_ascii_lowercase();
    if lower == "localhost"
        || lower.ends_with(".localhost")
        || lower.ends_with(".local")
        || lower.ends_with(".internal")
        || lower.ends_with(".home.arpa")
        || lower == "localhost.localdomain"
    {
        return Err(SsrfBlocked {
            target,
            reason: "internal hostname".into(),
        });
    }
    if let Ok(ip) = bare.parse::<IpAddr>() {
        if let Some(reason) = blocked_reason(ip, policy) {
            return Err(SsrfBlocked {
                target,
                reason: reason.into(),
            });
        }
    }
    Ok(())
}

/// Check resolved addresses (all must be allowed: a mix means DNS games).
pub fn check_resolved(
    policy: &SsrfPolicy,
    host: &str,
    addrs: &[SocketAddr],
) -> Result<(), SsrfBlocked> {
    if addrs.is_empty() {
        return Err(SsrfBlocked {
            target: host.into(),
            reason: "hostname did not resolve".into(),
        });
    }
    for a in addrs {
        if let Some(reason) = blocked_reason(a.ip(), policy) {
            return Err(SsrfBlocked {
                target: format!("{host} → {}", a.ip()),
                reason: reason.into(),
            });
        }
    }
    Ok(())
}

/// reqwest resolver that resolves once, checks every address, and hands reqwest only the checked
/// addresses (the connection is pinned to them; there is no second lookup to rebind).
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub policy: SsrfPolicy,
    /// Skip address checks (used for explicitly trusted hosts).
    pub trusted: bool,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let trusted = self.trusted;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?
                .collect();
            if !trusted {
                check_resolved(&policy, &host, &addrs)
                    .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
            }
            let iter: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(iter)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn blocked(s: &str) -> bool {
        blocked_reason(s.parse().unwrap(), &SsrfPolicy::default()).is_some()
    }

    #[test]
    fn classifies_addresses() {
        for b in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd12::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "198.18.0.1",
        ] {
            assert!(blocked(b), "{b} should be blocked");
        }
        for ok in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "8.8.8.8",
        ] {
            assert!(!blocked(ok), "{ok} should be allowed");
        }
        let p = SsrfPolicy {
            allow_ipv6_unique_local_range: true,
            allow_rfc2544_benchmark_range: true,
            ..SsrfPolicy::default()
        };
        assert!(blocked_reason("fd00::1".parse().unwrap(), &p).is_none());
        assert!(blocked_reason("198.18.1.1".parse().unwrap(), &p).is_none());
    }

    #[test]
    fn hosts_and_endpoints() {
        let p = SsrfPolicy {
            allowed_endpoints: vec!["127.0.0.1:8080".into()],
            blocked_hostnames: vec!["evil.example".into()],
            ..SsrfPolicy::default()
        };
        assert!(check_host(&p, "127.0.0.1", 8080).is_ok());
        assert!(check_host(&p, "127.0.0.1", 8081).is_err());
        assert!(check_host(&p, "localhost", 8080).is_err());
        assert!(check_host(&p, "evil.example", 443).is_err());
        assert!(check_host(&p, "[::1]", 80).is_err());
        assert!(check_host(&p, "example.com", 443).is_ok());
    }
}
