//! Classified provider errors. Every failure a model call can end with is one
//! [`ProviderError`]: a kind the agent loop can act on (retry, fail over, compact, give up),
//! plus the facts the gateway puts into the `errorDetail` of a `chat` error event.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// Longest provider message preview we keep (protocol.md §6.2: detail strings ≤ 300).
pub const PREVIEW_MAX_CHARS: usize = 300;

/// What went wrong, in terms the caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// HTTP 429 or a rate-limit error event. Retried on the same model, then fails over.
    RateLimit,
    /// No bytes for the idle timeout, or the overall request deadline passed.
    Timeout,
    /// The prompt does not fit the model's context window. Not failed over: compact first.
    ContextLength,
    /// 401/403 or an authentication error. Never retried on the same model.
    Auth,
    /// 402 / quota exhausted.
    Billing,
    /// The model refused (content filter, `refusal` stop reason).
    Refusal,
    /// 5xx, 529 overloaded, or a server/overloaded error event.
    Server,
    /// Connection refused/reset, or the stream ended before the provider finished.
    Network,
    /// Bytes that are not the provider's wire format (bad SSE/JSON, unknown content type).
    Malformed,
    /// 404 or a not-found error for the model.
    ModelNotFound,
    /// Any other 4xx: the request itself was rejected.
    InvalidRequest,
    /// The caller cancelled (token or `/stop`).
    Cancelled,
}

impl ErrorKind {
    /// The snake_case name used in logs and `failoverReason`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RateLimit => "rate_limit",
            Self::Timeout => "timeout",
            Self::ContextLength => "context_length",
            Self::Auth => "auth",
            Self::Billing => "billing",
            Self::Refusal => "refusal",
            Self::Server => "server",
            Self::Network => "network",
            Self::Malformed => "malformed",
            Self::ModelNotFound => "model_not_found",
            Self::InvalidRequest => "invalid_request",
            Self::Cancelled => "cancelled",
        }
    }

    /// The `errorKind` of a wire `chat` error event (protocol.md §6.2 allows only
    /// `refusal|timeout|rate_limit|context_length|unknown`).
    pub fn wire_error_kind(self) -> &'static str {
        match self {
            Self::Refusal => "refusal",
            Self::Timeout => "timeout",
            Self::RateLimit => "rate_limit",
            Self::ContextLength => "context_length",
            _ => "unknown",
        }
    }

    /// Worth another attempt on the same model (with backoff) if nothing was streamed yet.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::RateLimit | Self::Server | Self::Network)
    }

    /// Worth moving to the next model of a fallback chain (after same-model retries).
    /// Context overflow, refusals, rejected requests and cancellation are not: another model
    /// would fail the same way, or the caller asked to stop.
    pub fn is_failover(self) -> bool {
        matches!(
            self,
            Self::RateLimit
                | Self::Timeout
                | Self::Auth
                | Self::Billing
                | Self::Server
                | Self::Network
                | Self::Malformed
                | Self::ModelNotFound
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed model call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub struct ProviderError {
    /// Classification.
    pub kind: ErrorKind,
    /// Provider id (`anthropic`, `openrouter`, a custom id).
    pub provider: String,
    /// Model id as sent to the provider.
    pub model: String,
    /// HTTP status when the provider answered with one (≥ 400), else `None`.
    pub http_status: Option<u16>,
    /// The provider's own error type/code (`overloaded_error`, `rate_limit_exceeded`, …).
    pub provider_error_type: Option<String>,
    /// Human-readable reason, at most [`PREVIEW_MAX_CHARS`] characters, secrets redacted.
    pub message: String,
    /// How long the provider asked us to wait (`retry-after`, `retry-after-ms`).
    pub retry_after: Option<Duration>,
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} error from {}/{}",
            self.kind, self.provider, self.model
        )?;
        if let Some(status) = self.http_status {
            write!(f, " (HTTP {status})")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The `errorDetail` object of a wire `chat` error event.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    pub provider: String,
    pub model: String,
    pub failover_reason: String,
    pub provider_runtime_failure_kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_error_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    pub provider_error_message_preview: String,
}

impl ProviderError {
    /// A new error; `message` is truncated to the preview length.
    pub fn new(kind: ErrorKind, provider: &str, model: &str, message: impl AsRef<str>) -> Self {
        Self {
            kind,
            provider: truncate_chars(provider, PREVIEW_MAX_CHARS),
            model: truncate_chars(model, PREVIEW_MAX_CHARS),
            http_status: None,
            provider_error_type: None,
            message: preview(message.as_ref()),
            retry_after: None,
        }
    }

    /// Same error with an HTTP status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.http_status = Some(status);
        self
    }

    /// Same error with the provider's error type/code.
    pub fn with_type(mut self, provider_error_type: Option<String>) -> Self {
        self.provider_error_type =
            provider_error_type.map(|t| truncate_chars(&t, PREVIEW_MAX_CHARS));
        self
    }

    /// Same error with a retry hint.
    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    /// Replaces every occurrence of `secret` in the message (providers sometimes echo keys).
    pub(crate) fn redact(mut self, secret: Option<&str>) -> Self {
        if let Some(secret) = secret.filter(|s| s.len() >= 4) {
            if self.message.contains(secret) {
                self.message = self.message.replace(secret, "[redacted]");
            }
        }
        self
    }

    /// The `errorDetail` object for the gateway's `chat` error event.
    pub fn error_detail(&self) -> ErrorDetail {
        ErrorDetail {
            provider: self.provider.clone(),
            model: self.model.clone(),
            failover_reason: self.kind.as_str().to_owned(),
            provider_runtime_failure_kind: self.kind.as_str().to_owned(),
            provider_error_type: self.provider_error_type.clone(),
            http_status: self.http_status.filter(|s| (100..=599).contains(s)),
            provider_error_message_preview: self.message.clone(),
        }
    }
}

/// Collapses whitespace and truncates to [`PREVIEW_MAX_CHARS`] characters.
pub(crate) fn preview(text: &str) -> String {
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    truncate_chars(&collapsed, PREVIEW_MAX_CHARS)
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((cut, _)) => {
            let mut out = text[..cut].to_owned();
            // Keep the total within `max` characters including the ellipsis.
            out.pop();
            out.push('…');
            out
        }
    }
}

/// Classifies an HTTP error status, refined by the provider's error type and message.
pub(crate) fn classify_http(status: u16, error_type: Option<&str>, message: &str) -> ErrorKind {
    let by_body = classify_error_text(error_type, message);
    match status {
        401 | 403 => ErrorKind::Auth,
        402 => ErrorKind::Billing,
        404 => ErrorKind::ModelNotFound,
        408 => ErrorKind::Timeout,
        413 => ErrorKind::ContextLength,
        // OpenAI answers an exhausted quota with 429 `insufficient_quota`: not worth retrying.
        429 if by_body == Some(ErrorKind::Billing) => ErrorKind::Billing,
        429 => ErrorKind::RateLimit,
        400 | 422 => match by_body {
            Some(
                kind @ (ErrorKind::ContextLength
                | ErrorKind::Auth
                | ErrorKind::ModelNotFound
                | ErrorKind::Billing),
            ) => kind,
            _ => ErrorKind::InvalidRequest,
        },
        500..=599 => ErrorKind::Server,
        _ => by_body.unwrap_or(ErrorKind::InvalidRequest),
    }
}

/// Classifies an error carried inside a stream or body by its type/code and message.
pub(crate) fn classify_error_text(error_type: Option<&str>, message: &str) -> Option<ErrorKind> {
    let t = error_type.unwrap_or("").to_ascii_lowercase();
    let m = message.to_ascii_lowercase();
    let any = |needles: &[&str]| needles.iter().any(|n| t.contains(n) || m.contains(n));
    if any(&[
        "context_length",
        "context length",
        "context window",
        "maximum context",
        "prompt is too long",
        "too many tokens",
        "request_too_large",
        "input is too long",
    ]) {
        Some(ErrorKind::ContextLength)
    } else if any(&[
        "insufficient_quota",
        "billing",
        "credit balance",
        "payment required",
    ]) {
        Some(ErrorKind::Billing)
    } else if any(&["rate_limit", "rate limit", "too many requests"]) {
        Some(ErrorKind::RateLimit)
    } else if any(&[
        "authentication",
        "invalid_api_key",
        "invalid api key",
        "permission",
        "unauthorized",
    ]) {
        Some(ErrorKind::Auth)
    } else if any(&["not_found", "model_not_found", "not found"]) {
        Some(ErrorKind::ModelNotFound)
    } else if any(&[
        "overloaded",
        "server_error",
        "api_error",
        "internal error",
        "unavailable",
    ]) {
        Some(ErrorKind::Server)
    } else if any(&["content_filter", "refusal", "content policy"]) {
        Some(ErrorKind::Refusal)
    } else if any(&["invalid_request"]) {
        Some(ErrorKind::InvalidRequest)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn previews_are_bounded_and_collapsed() {
        let long = "x ".repeat(400);
        let e = ProviderError::new(ErrorKind::Server, "p", "m", &long);
        assert_eq!(e.message.chars().count(), PREVIEW_MAX_CHARS);
        assert!(e.message.ends_with('…'));
        assert_eq!(preview("a\n\n  b\tc"), "a b c");
        let multibyte = "é".repeat(500);
        assert_eq!(preview(&multibyte).chars().count(), PREVIEW_MAX_CHARS);
    }

    #[test]
    fn redacts_echoed_keys() {
        let e = ProviderError::new(
            ErrorKind::Auth,
            "openai",
            "gpt",
            "Incorrect API key provided: sk-secret-123.",
        )
        .redact(Some("sk-secret-123"));
        assert_eq!(e.message, "Incorrect API key provided: [redacted].");
        assert!(!e.to_string().contains("sk-secret"));
    }

    #[test]
    fn http_classification() {
        assert_eq!(classify_http(401, None, ""), ErrorKind::Auth);
        assert_eq!(
            classify_http(429, Some("rate_limit_error"), "slow down"),
            ErrorKind::RateLimit
        );
        assert_eq!(
            classify_http(
                429,
                Some("insufficient_quota"),
                "You exceeded your current quota"
            ),
            ErrorKind::Billing
        );
        assert_eq!(
            classify_http(
                400,
                Some("invalid_request_error"),
                "prompt is too long: 210000 tokens"
            ),
            ErrorKind::ContextLength
        );
        assert_eq!(
            classify_http(400, Some("context_length_exceeded"), "x"),
            ErrorKind::ContextLength
        );
        assert_eq!(
            classify_http(
                400,
                Some("invalid_request_error"),
                "temperature out of range"
            ),
            ErrorKind::InvalidRequest
        );
        assert_eq!(
            classify_http(404, None, "model 'x' not found"),
            ErrorKind::ModelNotFound
        );
        assert_eq!(
            classify_http(529, Some("overloaded_error"), "Overloaded"),
            ErrorKind::Server
        );
        assert_eq!(classify_http(503, None, ""), ErrorKind::Server);
    }

    #[test]
    fn error_detail_shape() {
        let e = ProviderError::new(ErrorKind::RateLimit, "anthropic", "claude", "slow down")
            .with_status(429)
            .with_type(Some("rate_limit_error".into()));
        let v = serde_json::to_value(e.error_detail()).unwrap_or_default();
        assert_eq!(
            v,
            serde_json::json!({
                "provider": "anthropic", "model": "claude", "failoverReason": "rate_limit",
                "providerRuntimeFailureKind": "rate_limit", "providerErrorType": "rate_limit_error",
                "httpStatus": 429, "providerErrorMessagePreview": "slow down"
            })
        );
        assert_eq!(e.kind.wire_error_kind(), "rate_limit");
        assert_eq!(ErrorKind::Network.wire_error_kind(), "unknown");
    }
}
