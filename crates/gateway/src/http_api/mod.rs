//! HTTP APIs on the control-plane port (issue 10): hooks (`POST <hooks.path>/…`, see
//! [`hooks`]), the OpenAI-compatible endpoints (`/v1/chat/completions`, `/v1/responses`,
//! `/v1/models`, see [`openai`]) and `POST /tools/invoke` ([`tools_invoke`]).
//!
//! [`router`] holds the fixed routes; hooks live under a configurable base path and are tried
//! by the router's fallback before the Control UI ([`hooks::route`]).

pub mod hooks;
pub mod openai;
pub mod tools_invoke;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use axum::routing::any;
use axum::Router;
use futures_util::StreamExt;
use serde_json::Value;

use crate::state::GatewayState;

/// The fixed API routes (merged into the gateway's router).
pub fn router() -> Router<Arc<GatewayState>> {
    Router::new()
        .route("/v1/chat/completions", any(openai::chat_completions))
        .route("/v1/responses", any(openai::responses))
        .route("/v1/models", any(openai::models))
        .route("/v1/models/{*id}", any(openai::model))
        .route("/tools/invoke", any(tools_invoke::invoke))
}

/// A JSON response (`no-store`, `nosniff`).
pub(crate) fn json(status: StatusCode, body: &Value) -> Response<Body> {
    let mut resp = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// `405` with `Allow: <allow>`.
pub(crate) fn method_not_allowed(allow: &'static str, body: &Value) -> Response<Body> {
    let mut resp = json(StatusCode::METHOD_NOT_ALLOWED, body);
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    resp
}

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// More than the limit arrived; the first `limit + 1` bytes are kept.
    TooLarge(Bytes),
    /// The client did not send the body in time.
    Timeout,
    /// The connection failed.
    Read(String),
}

/// Reads at most `limit + 1` bytes of `body` within `deadline` (a larger body is reported
/// with the bytes read so far and the rest is never buffered).
pub(crate) async fn read_body(
    body: Body,
    limit: usize,
    deadline: Duration,
) -> Result<Bytes, BodyError> {
    let read = async move {
        let mut stream = body.into_data_stream();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| BodyError::Read(e.to_string()))?;
            let room = (limit + 1).saturating_sub(buf.len());
            buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if buf.len() > limit {
                return Err(BodyError::TooLarge(Bytes::from(buf)));
            }
        }
        Ok(Bytes::from(buf))
    };
    match tokio::time::timeout(deadline, read).await {
        Ok(r) => r,
        Err(_) => Err(BodyError::Timeout),
    }
}

/// The declared `Content-Length`, when there is one.
pub(crate) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// The client address of a request: the peer, or the `X-Forwarded-For` client when the peer
/// is a trusted proxy.
pub(crate) fn client_ip(state: &GatewayState, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
    let auth = state.auth.get();
    state
        .security
        .peer_facts(&auth, peer, headers)
        .forwarded_for
        .unwrap_or(peer)
}
