//! The one exponential backoff with jitter used by every retrying part of Pincer (model
//! providers, channel reconnects, node reconnects), plus `Retry-After` parsing.
//!
//! Pure: nothing here sleeps or spawns. Callers ask for a delay and sleep themselves, so the
//! same code serves async tasks, blocking threads and tests (which pass explicit jitter units
//! and clocks to get deterministic answers).
//!
//! ```
//! use std::time::Duration;
//! use pincer_backoff::{Backoff, RetryPolicy};
//!
//! let policy = RetryPolicy::new(Backoff::new(Duration::from_millis(400), Duration::from_secs(30)), 3);
//! // First failure, server said nothing: a jittered ~400 ms.
//! let wait = policy.next_delay(1, Duration::ZERO, None).unwrap();
//! assert!(wait >= Duration::from_millis(360) && wait <= Duration::from_millis(440));
//! // The server asked for 2 s: honoured, because it is longer than our backoff.
//! assert_eq!(policy.next_delay(1, Duration::ZERO, Some(Duration::from_secs(2))), Some(Duration::from_secs(2)));
//! // Third failure: budget spent.
//! assert_eq!(policy.next_delay(3, Duration::ZERO, None), None);
//! ```

mod http_date;
mod random;

use std::time::{Duration, SystemTime};

pub use http_date::{civil_from_days, days_from_civil, format_http_date, parse_http_date};

/// Exponential backoff: `initial * multiplier^attempt`, capped at `max`, then spread by
/// `jitter` (a fraction: 0.1 spreads the delay uniformly over ±10 %), never above `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Delay before the first retry (attempt 0), before jitter.
    pub initial: Duration,
    /// Hard upper bound of any delay this backoff returns.
    pub max: Duration,
    /// Growth factor per attempt (clamped to ≥ 1).
    pub multiplier: f64,
    /// Relative spread in `[0, 1]`; 0 disables jitter.
    pub jitter: f64,
}

impl Backoff {
    /// Doubling backoff with 10 % jitter (the spread the reference uses for its retries).
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            multiplier: 2.0,
            jitter: 0.1,
        }
    }

    /// Same backoff with another growth factor.
    pub const fn with_multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = multiplier;
        self
    }

    /// Same backoff with another jitter fraction.
    pub const fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter;
        self
    }

    /// The un-jittered delay before retry number `attempt` (0-based), capped at `max`.
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let multiplier = if self.multiplier.is_finite() {
            self.multiplier.max(1.0)
        } else {
            1.0
        };
        // Exponents beyond ~1000 overflow f64 to infinity; the cap handles that below.
        let factor = multiplier.powi(attempt.min(1024) as i32);
        let secs = self.initial.as_secs_f64() * factor;
        if !secs.is_finite() || secs >= self.max.as_secs_f64() {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The delay before retry `attempt` with jitter drawn from `unit`, a number in `[0, 1)`.
    /// Deterministic: tests and simulations pass their own units.
    pub fn delay_with_unit(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.base_delay(attempt).as_secs_f64();
        let jitter = if self.jitter.is_finite() {
            self.jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let unit = if unit.is_finite() {
            unit.clamp(0.0, 1.0)
        } else {
            0.5
        };
        // Uniform over [base·(1−j), base·(1+j)].
        let spread = 1.0 - jitter + 2.0 * jitter * unit;
        let secs = (base * spread).max(0.0);
        let max = self.max.as_secs_f64();
        if secs >= max {
            self.max
        } else {
            Duration::from_secs_f64(secs)
        }
    }

    /// The delay before retry `attempt` (0-based), with random jitter.
    pub fn delay(&self, attempt: u32) -> Duration {
        self.delay_with_unit(attempt, random::unit())
    }

    /// Endless iterator of jittered delays for attempts 0, 1, 2, …
    pub fn iter(&self) -> impl Iterator<Item = Duration> + '_ {
        (0u32..).map(move |attempt| self.delay(attempt))
    }
}

/// `max(backoff, retry_after)`, never above `cap`: a server's request to wait longer than our
/// own backoff is honoured; a shorter one does not make us hammer it faster.
pub fn retry_delay(backoff: Duration, retry_after: Option<Duration>, cap: Duration) -> Duration {
    backoff.max(retry_after.unwrap_or(Duration::ZERO)).min(cap)
}

/// Parses a `Retry-After` header value: delay-seconds (`"120"`; fractional `"1.5"` accepted
/// leniently) or an HTTP-date (IMF-fixdate, RFC 850 or asctime). A date in the past means
/// "retry now" (zero). `None` for anything unparseable.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        // Absurdly long digit strings saturate rather than fail: the caller's cap applies.
        return Some(Duration::from_secs(
            value.parse::<u64>().unwrap_or(u64::MAX),
        ));
    }
    if value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = value.parse().ok()?;
        return (0.0..1e12)
            .contains(&secs)
            .then(|| Duration::from_secs_f64(secs));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Parses a millisecond hint such as OpenAI's `retry-after-ms` header.
pub fn parse_retry_after_ms(value: &str) -> Option<Duration> {
    let value = value.trim();
    let ms: f64 = value.parse().ok()?;
    (0.0..1e15)
        .contains(&ms)
        .then(|| Duration::from_secs_f64(ms / 1000.0))
}

/// A bounded retry budget around a [`Backoff`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay curve between attempts.
    pub backoff: Backoff,
    /// Total attempts including the first one (1 = never retry).
    pub max_attempts: u32,
    /// Stop retrying when the next wait would end later than this after the first attempt.
    pub max_elapsed: Option<Duration>,
    /// A server asking us to wait longer than this is not waited for: the caller gives up
    /// (and e.g. fails over to another model) instead of sleeping for an hour.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// `max_attempts` attempts in all, no elapsed-time bound, server hints honoured up to the
    /// backoff's own cap.
    pub const fn new(backoff: Backoff, max_attempts: u32) -> Self {
        Self {
            backoff,
            max_attempts,
            max_elapsed: None,
            max_retry_after: backoff.max,
        }
    }

    /// Never retry.
    pub const fn none() -> Self {
        Self::new(Backoff::new(Duration::ZERO, Duration::ZERO), 1)
    }

    /// Same policy with an elapsed-time budget.
    pub const fn with_max_elapsed(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = Some(max_elapsed);
        self
    }

    /// Same policy with another bound on honoured `Retry-After` hints.
    pub const fn with_max_retry_after(mut self, max_retry_after: Duration) -> Self {
        self.max_retry_after = max_retry_after;
        self
    }

    /// How long to wait after `failed_attempts` attempts have failed (≥ 1), `elapsed` after the
    /// first attempt started, the server having hinted `retry_after`. `None`: give up.
    pub fn next_delay(
        &self,
        failed_attempts: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        self.next_delay_with_unit(failed_attempts, elapsed, retry_after, random::unit())
    }

    /// [`Self::next_delay`] with an explicit jitter unit in `[0, 1)` (deterministic).
    pub fn next_delay_with_unit(
        &self,
        failed_attempts: u32,
        elapsed: Duration,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Option<Duration> {
        if failed_attempts == 0 || failed_attempts >= self.max_attempts {
            return None;
        }
        if retry_after.is_some_and(|hint| hint > self.max_retry_after) {
            return None;
        }
        let backoff = self.backoff.delay_with_unit(failed_attempts - 1, unit);
        let cap = self.backoff.max.max(self.max_retry_after);
        let delay = retry_delay(backoff, retry_after, cap);
        if let Some(budget) = self.max_elapsed {
            if elapsed.saturating_add(delay) > budget {
                return None;
            }
        }
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn grows_exponentially_until_the_cap() {
        let b = Backoff::new(MS(100), MS(1000)).with_jitter(0.0);
        let got: Vec<_> = (0..6).map(|a| b.base_delay(a)).collect();
        assert_eq!(
            got,
            vec![MS(100), MS(200), MS(400), MS(800), MS(1000), MS(1000)]
        );
        assert_eq!(b.delay(2), MS(400), "no jitter means exact delays");
        assert_eq!(
            b.base_delay(u32::MAX),
            MS(1000),
            "huge attempt numbers saturate at the cap"
        );
    }

    #[test]
    fn jitter_spreads_symmetrically_and_never_exceeds_the_cap() {
        let b = Backoff::new(MS(1000), MS(10_000)).with_jitter(0.2);
        assert_eq!(b.delay_with_unit(0, 0.0), MS(800));
        assert_eq!(b.delay_with_unit(0, 0.5), MS(1000));
        assert!(b.delay_with_unit(0, 0.999_999) <= MS(1200));
        // At the cap, upward jitter is clipped.
        assert_eq!(b.delay_with_unit(10, 0.99), MS(10_000));
        for attempt in 0..20 {
            let d = b.delay(attempt);
            assert!(d <= MS(10_000));
            assert!(d >= b.base_delay(attempt).mul_f64(0.8).saturating_sub(MS(1)));
        }
    }

    #[test]
    fn random_jitter_actually_varies() {
        let b = Backoff::new(MS(1000), MS(10_000)).with_jitter(0.5);
        let samples: std::collections::HashSet<_> = (0..32).map(|_| b.delay(0)).collect();
        assert!(samples.len() > 8, "expected varied delays, got {samples:?}");
    }

    #[test]
    fn odd_parameters_do_not_panic() {
        let b = Backoff {
            initial: MS(10),
            max: MS(50),
            multiplier: f64::NAN,
            jitter: f64::INFINITY,
        };
        assert_eq!(b.delay(3), MS(10));
        let b = Backoff {
            initial: MS(10),
            max: MS(50),
            multiplier: 0.5,
            jitter: -1.0,
        };
        assert_eq!(b.delay(3), MS(10), "multipliers below 1 are treated as 1");
        assert_eq!(
            Backoff::new(MS(10), MS(50)).delay_with_unit(0, f64::NAN),
            MS(10)
        );
    }

    #[test]
    fn retry_delay_takes_the_longer_wait_within_the_cap() {
        assert_eq!(retry_delay(MS(400), None, MS(30_000)), MS(400));
        assert_eq!(retry_delay(MS(400), Some(MS(2000)), MS(30_000)), MS(2000));
        assert_eq!(retry_delay(MS(4000), Some(MS(2000)), MS(30_000)), MS(4000));
        assert_eq!(
            retry_delay(MS(400), Some(MS(90_000)), MS(30_000)),
            MS(30_000)
        );
    }

    #[test]
    fn parses_retry_after_seconds() {
        let now = SystemTime::UNIX_EPOCH;
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("1.5", now), Some(MS(1500)));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::from_secs(u64::MAX))
        );
        for bad in ["", "-1", "soon", "1e3", "1..2", "NaN"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn parses_retry_after_http_dates_in_all_three_formats() {
        // 784111777 = Sun, 06 Nov 1994 08:49:37 GMT (the RFC's example).
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        let now = at - Duration::from_secs(30);
        for v in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(v, now),
                Some(Duration::from_secs(30)),
                "{v}"
            );
        }
        // In the past: retry now.
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", at + Duration::from_secs(5)),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn parses_retry_after_ms() {
        assert_eq!(parse_retry_after_ms("250"), Some(MS(250)));
        assert_eq!(
            parse_retry_after_ms("12.5"),
            Some(Duration::from_micros(12_500))
        );
        assert_eq!(parse_retry_after_ms("x"), None);
        assert_eq!(parse_retry_after_ms("-3"), None);
    }

    #[test]
    fn policy_bounds_attempts_elapsed_time_and_hints() {
        let p = RetryPolicy::new(Backoff::new(MS(100), MS(1000)).with_jitter(0.0), 4);
        assert_eq!(
            p.next_delay(0, Duration::ZERO, None),
            None,
            "nothing failed yet"
        );
        assert_eq!(p.next_delay(1, Duration::ZERO, None), Some(MS(100)));
        assert_eq!(p.next_delay(2, Duration::ZERO, None), Some(MS(200)));
        assert_eq!(p.next_delay(3, Duration::ZERO, None), Some(MS(400)));
        assert_eq!(
            p.next_delay(4, Duration::ZERO, None),
            None,
            "4 attempts made"
        );
        // Hint longer than backoff wins; hint beyond the bound means give up.
        assert_eq!(
            p.next_delay(1, Duration::ZERO, Some(MS(700))),
            Some(MS(700))
        );
        assert_eq!(p.next_delay(1, Duration::ZERO, Some(MS(1001))), None);
        let p = p.with_max_retry_after(MS(5000));
        assert_eq!(
            p.next_delay(1, Duration::ZERO, Some(MS(4000))),
            Some(MS(4000))
        );
        // Elapsed budget.
        let p = p.with_max_elapsed(MS(1000));
        assert_eq!(p.next_delay(1, MS(850), None), Some(MS(100)));
        assert_eq!(p.next_delay(1, MS(950), None), None);
        assert_eq!(
            RetryPolicy::none().next_delay(1, Duration::ZERO, None),
            None
        );
    }
}
