//! Failed-authentication rate limiting (spec §4.2): an in-memory sliding window per
//! (credential scope, client address). After `max_attempts` wrong credentials within
//! `window`, the address is locked out for `lockout`; checks during the lockout report how
//! long is left. Loopback addresses are exempt by default (`exempt_loopback`) but pay an
//! escalating delay per recent failure (250 ms doubling to 5 s), so a local script cannot
//! brute-force either. Only *wrong* credentials are recorded, never missing ones.
//!
//! This is the one failure limiter of the gateway: WebSocket and HTTP shared-secret auth,
//! device tokens, and the hooks token ([`Scope::Hook`], with the hooks policy
//! [`HOOK_RATE_LIMIT`]: 20 failures per 60 s lock the address out for 60 s, loopback included).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Limiter policy (`gateway.auth.rateLimit.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSettings {
    pub max_attempts: u32,
    pub window: Duration,
    pub lockout: Duration,
    pub exempt_loopback: bool,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            max_attempts: 10,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
            exempt_loopback: true,
        }
    }
}

/// Credential classes with independent counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    SharedSecret,
    DeviceToken,
    /// `hooks.token` on `POST <hooks.path>/…` (its own fixed policy, [`HOOK_RATE_LIMIT`]).
    Hook,
}

/// The hooks endpoint's policy (runtime spec §9.3): 20 wrong tokens within 60 s ⇒ 429 for
/// 60 s. Webhook senders are machines, so loopback is not exempt.
pub const HOOK_RATE_LIMIT: RateLimitSettings = RateLimitSettings {
    max_attempts: 20,
    window: Duration::from_secs(60),
    lockout: Duration::from_secs(60),
    exempt_loopback: false,
};

const LOOPBACK_DELAY_BASE: Duration = Duration::from_millis(250);
const LOOPBACK_DELAY_MAX: Duration = Duration::from_secs(5);
/// Failures remembered for an exempt address: enough to reach the maximum delay.
const LOOPBACK_HISTORY: usize = 6;
/// Distinct addresses tracked before old entries are pruned.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Default)]
struct Entry {
    attempts: Vec<Instant>,
    locked_until: Option<Instant>,
}

/// The outcome of [`AuthRateLimiter::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Allowed,
    Locked { retry_after: Duration },
}

#[derive(Debug, Default)]
pub struct AuthRateLimiter {
    settings: Mutex<RateLimitSettings>,
    entries: Mutex<HashMap<(Scope, IpAddr), Entry>>,
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

impl AuthRateLimiter {
    pub fn new(settings: RateLimitSettings) -> AuthRateLimiter {
        AuthRateLimiter {
            settings: Mutex::new(settings),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Replace the policy (config hot reload); counters are kept.
    pub fn update_settings(&self, settings: RateLimitSettings) {
        *self.settings.lock() = settings;
    }

    pub fn settings(&self) -> RateLimitSettings {
        *self.settings.lock()
    }

    /// The policy of one credential scope.
    pub fn settings_for(&self, scope: Scope) -> RateLimitSettings {
        match scope {
            Scope::Hook => HOOK_RATE_LIMIT,
            Scope::SharedSecret | Scope::DeviceToken => self.settings(),
        }
    }

    fn is_exempt(&self, scope: Scope, ip: IpAddr) -> bool {
        self.settings_for(scope).exempt_loopback && ip.is_loopback()
    }

    fn refresh(entry: &mut Entry, now: Instant, s: &RateLimitSettings) {
        if entry.locked_until.is_some_and(|t| now >= t) {
            entry.locked_until = None;
            entry.attempts.clear();
        }
        entry
            .attempts
            .retain(|t| now.saturating_duration_since(*t) < s.window);
    }

    /// May this address try a credential of `scope` now?
    pub fn check(&self, scope: Scope, ip: IpAddr, now: Instant) -> Check {
        let ip = canonical(ip);
        if self.is_exempt(scope, ip) {
            return Check::Allowed;
        }
        let s = self.settings_for(scope);
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get_mut(&(scope, ip)) else {
            return Check::Allowed;
        };
        Self::refresh(entry, now, &s);
        if entry.locked_until.is_none() && entry.attempts.len() >= s.max_attempts as usize {
            entry.locked_until = Some(now + s.lockout);
        }
        match entry.locked_until {
            Some(t) if now < t => Check::Locked {
                retry_after: t - now,
            },
            _ => Check::Allowed,
        }
    }

    /// Record one wrong credential; returns the delay to impose before answering (non-zero only
    /// for exempt loopback addresses).
    pub fn record_failure(&self, scope: Scope, ip: IpAddr, now: Instant) -> Duration {
        let ip = canonical(ip);
        let exempt = self.is_exempt(scope, ip);
        let s = self.settings_for(scope);
        let mut entries = self.entries.lock();
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&(scope, ip)) {
            entries.retain(|_, e| {
                Self::refresh(e, now, &s);
                e.locked_until.is_some() || !e.attempts.is_empty()
            });
        }
        let entry = entries.entry((scope, ip)).or_default();
        if !exempt && entry.locked_until.is_some_and(|t| now < t) {
            return Duration::ZERO;
        }
        Self::refresh(entry, now, &s);
        entry.attempts.push(now);
        if exempt {
            let excess = entry.attempts.len().saturating_sub(LOOPBACK_HISTORY);
            entry.attempts.drain(..excess);
            let n = entry.attempts.len().max(1) as u32;
            let delay = LOOPBACK_DELAY_BASE.saturating_mul(1u32 << (n - 1).min(16));
            return delay.min(LOOPBACK_DELAY_MAX);
        }
        if entry.attempts.len() >= s.max_attempts as usize {
            entry.locked_until = Some(now + s.lockout);
        }
        Duration::ZERO
    }

    /// A successful authentication clears the address's failures.
    pub fn reset(&self, scope: Scope, ip: IpAddr) {
        self.entries.lock().remove(&(scope, canonical(ip)));
    }

    /// Drop expired entries (called from a global timer).
    pub fn prune(&self, now: Instant) {
        let shared = self.settings();
        self.entries.lock().retain(|(scope, _), e| {
            let s = if *scope == Scope::Hook {
                HOOK_RATE_LIMIT
            } else {
                shared
            };
            Self::refresh(e, now, &s);
            e.locked_until.is_some() || !e.attempts.is_empty()
        });
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
    }

    #[test]
    fn ten_failures_lock_a_remote_address_out_for_the_lockout() {
        let rl = AuthRateLimiter::new(RateLimitSettings::default());
        let t0 = Instant::now();
        let remote = ip("192.0.2.7");
        for i in 0..10 {
            assert_eq!(
                rl.check(Scope::SharedSecret, remote, t0),
                Check::Allowed,
                "{i}"
            );
            assert_eq!(
                rl.record_failure(Scope::SharedSecret, remote, t0),
                Duration::ZERO
            );
        }
        let later = t0 + Duration::from_secs(30);
        match rl.check(Scope::SharedSecret, remote, later) {
            Check::Locked { retry_after } => assert_eq!(retry_after, Duration::from_secs(270)),
            other => panic!("{other:?}"),
        }
        // Other scopes and other addresses are unaffected.
        assert_eq!(rl.check(Scope::DeviceToken, remote, later), Check::Allowed);
        assert_eq!(
            rl.check(Scope::SharedSecret, ip("192.0.2.8"), later),
            Check::Allowed
        );
        // After the lockout the address starts over.
        let after = t0 + Duration::from_secs(301);
        assert_eq!(rl.check(Scope::SharedSecret, remote, after), Check::Allowed);
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let rl = AuthRateLimiter::new(RateLimitSettings::default());
        let t0 = Instant::now();
        let remote = ip("2001:db8::1");
        for i in 0..9 {
            rl.record_failure(
                Scope::SharedSecret,
                remote,
                t0 + Duration::from_secs(i * 10),
            );
        }
        // The first failures slid out of the 60 s window.
        let t = t0 + Duration::from_secs(95);
        rl.record_failure(Scope::SharedSecret, remote, t);
        assert_eq!(rl.check(Scope::SharedSecret, remote, t), Check::Allowed);
        rl.reset(Scope::SharedSecret, remote);
        assert!(rl.is_empty());
    }

    #[test]
    fn the_hook_scope_has_its_own_policy_and_no_loopback_exemption() {
        let rl = AuthRateLimiter::new(RateLimitSettings::default());
        let t0 = Instant::now();
        let lo = ip("127.0.0.1");
        for i in 0..19 {
            assert_eq!(
                rl.record_failure(Scope::Hook, lo, t0),
                Duration::ZERO,
                "{i}"
            );
            assert_eq!(rl.check(Scope::Hook, lo, t0), Check::Allowed, "{i}");
        }
        rl.record_failure(Scope::Hook, lo, t0);
        match rl.check(Scope::Hook, lo, t0 + Duration::from_secs(10)) {
            Check::Locked { retry_after } => assert_eq!(retry_after, Duration::from_secs(50)),
            other => panic!("{other:?}"),
        }
        // The shared-secret scope of the same address is untouched (and loopback-exempt).
        assert_eq!(rl.check(Scope::SharedSecret, lo, t0), Check::Allowed);
        assert_eq!(
            rl.check(Scope::Hook, lo, t0 + Duration::from_secs(61)),
            Check::Allowed
        );
    }

    #[test]
    fn loopback_is_exempt_but_delayed_unless_configured() {
        let rl = AuthRateLimiter::new(RateLimitSettings::default());
        let t0 = Instant::now();
        let lo = ip("127.0.0.1");
        let mut delays = Vec::new();
        for _ in 0..12 {
            delays.push(rl.record_failure(Scope::SharedSecret, lo, t0).as_millis());
        }
        assert_eq!(rl.check(Scope::SharedSecret, lo, t0), Check::Allowed);
        assert_eq!(&delays[..6], &[250, 500, 1000, 2000, 4000, 5000]);
        assert!(delays[6..].iter().all(|d| *d == 5000));
        // v4-mapped v6 loopback is loopback too.
        assert_eq!(
            rl.check(Scope::SharedSecret, ip("::ffff:127.0.0.1"), t0),
            Check::Allowed
        );

        let strict = AuthRateLimiter::new(RateLimitSettings {
            exempt_loopback: false,
            ..Default::default()
        });
        for _ in 0..10 {
            assert_eq!(
                strict.record_failure(Scope::SharedSecret, lo, t0),
                Duration::ZERO
            );
        }
        assert!(matches!(
            strict.check(Scope::SharedSecret, lo, t0),
            Check::Locked { .. }
        ));
    }
}
