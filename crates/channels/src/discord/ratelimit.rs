//! Discord REST rate limits: per-route buckets (`X-RateLimit-Bucket`, `-Remaining`,
//! `-Reset-After`) and the global limit (429 with `global: true` / `X-RateLimit-Global`).
//! Requests wait before they would exceed a known bucket instead of collecting 429s.

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::http::{HttpResponse, Verdict};

#[derive(Debug, Clone, Copy)]
struct Bucket {
    remaining: u64,
    reset_at: Instant,
}

/// Bucket state shared by every request of one bot token.
#[derive(Debug, Default)]
pub struct RateLimiter {
    /// Route key → bucket id (learnt from `X-RateLimit-Bucket`).
    routes: Mutex<HashMap<String, String>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    global_until: Mutex<Option<Instant>>,
}

fn header_f64(r: &HttpResponse, name: &str) -> Option<f64> {
    r.header(name)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|v| v.is_finite() && *v >= 0.0)
}

impl RateLimiter {
    /// How long a request on `route` must wait now (zero = go).
    pub fn wait_time(&self, route: &str) -> Duration {
        let now = Instant::now();
        let mut wait = Duration::ZERO;
        if let Some(until) = *self.global_until.lock() {
            wait = wait.max(until.saturating_duration_since(now));
        }
        let bucket_id = self.routes.lock().get(route).cloned();
        if let Some(id) = bucket_id {
            if let Some(b) = self.buckets.lock().get(&id) {
                if b.remaining == 0 {
                    wait = wait.max(b.reset_at.saturating_duration_since(now));
                }
            }
        }
        wait
    }

    /// Waits until `route` may be called, and books one request on its bucket.
    pub async fn acquire(&self, route: &str) {
        loop {
            let wait = self.wait_time(route);
            if wait.is_zero() {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        let bucket_id = self.routes.lock().get(route).cloned();
        if let Some(id) = bucket_id {
            if let Some(b) = self.buckets.lock().get_mut(&id) {
                b.remaining = b.remaining.saturating_sub(1);
            }
        }
    }

    /// Learns from an answer and classifies it.
    pub fn observe(&self, route: &str, r: &HttpResponse) -> Verdict {
        let now = Instant::now();
        if let (Some(id), Some(remaining), Some(reset_after)) = (
            r.header("x-ratelimit-bucket").map(str::to_string),
            header_f64(r, "x-ratelimit-remaining"),
            header_f64(r, "x-ratelimit-reset-after"),
        ) {
            self.routes.lock().insert(route.to_string(), id.clone());
            self.buckets.lock().insert(
                id,
                Bucket {
                    remaining: remaining as u64,
                    reset_at: now + Duration::from_secs_f64(reset_after),
                },
            );
        }
        match r.status {
            429 => {
                let body = r.json();
                let retry_after = body
                    .as_ref()
                    .and_then(|v| v.get("retry_after"))
                    .and_then(serde_json::Value::as_f64)
                    .filter(|v| v.is_finite() && *v >= 0.0)
                    .or_else(|| header_f64(r, "retry-after"))
                    .map(Duration::from_secs_f64);
                let global = body
                    .as_ref()
                    .and_then(|v| v.get("global"))
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false)
                    || r.header("x-ratelimit-global")
                        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
                if global {
                    *self.global_until.lock() =
                        Some(now + retry_after.unwrap_or(Duration::from_secs(1)));
                }
                Verdict::RateLimited(retry_after)
            }
            500..=599 => Verdict::Transient,
            _ => Verdict::Done,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    fn response(status: u16, headers: &[(&'static str, &str)], body: &str) -> HttpResponse {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        HttpResponse {
            status,
            headers: map,
            body: bytes::Bytes::from(body.to_string()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn exhausted_buckets_and_global_limits_make_requests_wait() {
        let rl = RateLimiter::default();
        let route = "POST /channels/1/messages";
        assert_eq!(rl.wait_time(route), Duration::ZERO);
        let ok = response(
            200,
            &[
                ("x-ratelimit-bucket", "abc"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset-after", "2.5"),
            ],
            "{}",
        );
        assert_eq!(rl.observe(route, &ok), Verdict::Done);
        assert_eq!(rl.wait_time(route), Duration::from_millis(2500));
        assert_eq!(
            rl.wait_time("POST /channels/2/messages"),
            Duration::ZERO,
            "other routes are free"
        );
        let t0 = Instant::now();
        rl.acquire(route).await;
        assert_eq!(t0.elapsed(), Duration::from_millis(2500));
        let limited = response(
            429,
            &[],
            r#"{"message":"You are being rate limited.","retry_after":1.25,"global":true}"#,
        );
        assert_eq!(
            rl.observe("GET /x", &limited),
            Verdict::RateLimited(Some(Duration::from_millis(1250)))
        );
        assert_eq!(
            rl.wait_time("POST /channels/2/messages"),
            Duration::from_millis(1250),
            "global applies to every route"
        );
        let hdr = response(429, &[("retry-after", "3")], "not json");
        assert_eq!(
            rl.observe("GET /y", &hdr),
            Verdict::RateLimited(Some(Duration::from_secs(3)))
        );
    }
}
