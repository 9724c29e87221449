//! The HTTP side shared by the adapters: one reqwest client (rustls with the platform
//! verifier), and a request loop that retries 429s and 5xx answers with the one backoff,
//! honouring the platform's retry-after (each platform reports it differently, so the
//! adapter supplies the classifier).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use pincer_backoff::{Backoff, RetryPolicy};
use reqwest::header::HeaderMap;
use tokio::time::Instant;

use crate::error::{ChannelError, Result};

/// One HTTP answer, fully read.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// What to do with an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the caller (success or a definitive error).
    Done,
    /// Rate limited: wait (at least `retry_after` when given) and try again.
    RateLimited(Option<Duration>),
    /// A transient failure (5xx): back off and try again.
    Transient,
}

/// Retry budget for platform calls.
#[derive(Debug, Clone, Copy)]
pub struct HttpRetry {
    /// 429 answers (retry-after honoured up to `max_retry_after`).
    pub rate_limit: RetryPolicy,
    /// 5xx answers and connection errors.
    pub transient: RetryPolicy,
    /// Per-request deadline.
    pub timeout: Duration,
}

impl Default for HttpRetry {
    fn default() -> Self {
        let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        HttpRetry {
            rate_limit: RetryPolicy::new(backoff, 6).with_max_retry_after(Duration::from_secs(60)),
            transient: RetryPolicy::new(backoff, 4).with_max_elapsed(Duration::from_secs(60)),
            timeout: Duration::from_secs(30),
        }
    }
}

/// The rustls client config (ring, the platform's certificate verifier) shared by HTTP and
/// WebSocket connections.
pub fn tls_config() -> Result<rustls::ClientConfig> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let invalid = |e: String| ChannelError::Invalid(format!("cannot build the TLS config: {e}"));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(e.to_string()))?
        .with_platform_verifier()
        .map_err(|e| invalid(e.to_string()))?
        .with_no_client_auth())
}

/// Builds the shared HTTP client.
/// The HTTP client type adapters take (so callers need no direct `reqwest` dependency).
pub type HttpClient = reqwest::Client;

pub fn build_client() -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config()?)
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .user_agent(concat!("pincer/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ChannelError::Invalid(format!("cannot build the HTTP client: {e}")))
}

/// A rustls client config for WebSocket connections (same trust as the HTTP client).
#[cfg(feature = "ws")]
pub fn ws_tls_config() -> Result<Arc<rustls::ClientConfig>> {
    tls_config().map(Arc::new)
}

/// Sends the request built by `build` until `classify` says done, retrying rate limits and
/// transient failures per `retry`. `method` names the call in errors (never the URL, which
/// may embed a token).
pub async fn request_with_retry(
    channel: &'static str,
    method: &str,
    retry: &HttpRetry,
    build: impl Fn() -> reqwest::RequestBuilder,
    classify: impl Fn(&HttpResponse) -> Verdict,
) -> Result<HttpResponse> {
    request_with_retry_gated(channel, method, retry, || async {}, build, classify).await
}

/// [`request_with_retry`] that awaits `gate` before every attempt (Discord's rate-limit
/// buckets wait there).
pub async fn request_with_retry_gated<G, GF>(
    channel: &'static str,
    method: &str,
    retry: &HttpRetry,
    gate: G,
    build: impl Fn() -> reqwest::RequestBuilder,
    classify: impl Fn(&HttpResponse) -> Verdict,
) -> Result<HttpResponse>
where
    G: Fn() -> GF,
    GF: std::future::Future<Output = ()>,
{
    let started = Instant::now();
    let mut rate_limited: u32 = 0;
    let mut transient: u32 = 0;
    loop {
        gate().await;
        let outcome = tokio::time::timeout(retry.timeout, async {
            let response = build().send().await?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>(HttpResponse {
                status,
                headers,
                body,
            })
        })
        .await;
        let (wait, error) = match outcome {
            Ok(Ok(response)) => match classify(&response) {
                Verdict::Done => return Ok(response),
                Verdict::RateLimited(hint) => {
                    rate_limited += 1;
                    let wait = retry
                        .rate_limit
                        .next_delay(rate_limited, started.elapsed(), hint);
                    let error = ChannelError::RateLimited {
                        channel,
                        retry_after: hint.unwrap_or_default(),
                    };
                    tracing::debug!(channel, method, ?hint, "rate limited");
                    (wait, error)
                }
                Verdict::Transient => {
                    transient += 1;
                    let wait = retry
                        .transient
                        .next_delay(transient, started.elapsed(), None);
                    let error = ChannelError::Api {
                        channel,
                        method: method.to_string(),
                        code: Some(i64::from(response.status)),
                        detail: String::from_utf8_lossy(&response.body)
                            .chars()
                            .take(300)
                            .collect(),
                    };
                    (wait, error)
                }
            },
            Ok(Err(e)) => {
                transient += 1;
                let wait = retry
                    .transient
                    .next_delay(transient, started.elapsed(), None);
                let error = ChannelError::Transport {
                    channel,
                    // `without_url`: the URL may contain the bot token.
                    detail: format!("{method}: {}", e.without_url()),
                };
                (wait, error)
            }
            Err(_) => {
                transient += 1;
                let wait = retry
                    .transient
                    .next_delay(transient, started.elapsed(), None);
                let error = ChannelError::Transport {
                    channel,
                    detail: format!("{method}: no answer within {:?}", retry.timeout),
                };
                (wait, error)
            }
        };
        match wait {
            Some(wait) => tokio::time::sleep(wait).await,
            None => return Err(error),
        }
    }
}

/// Joins a base URL (`http://127.0.0.1:1234/api/v10/`, trailing slash optional) and a path.
pub fn join_url(base: &str, path: &str) -> String {
    format!(
        "{}/{}",
        base.trim_end_matches('/'),
        path.trim_start_matches('/')
    )
}
