//! HTTP on the control-plane port: probes (`/health(z)`, `/ready(z)`, `/startup(z)`) and the
//! Control UI ([`crate::control_ui`], the fallback for unmatched paths); APIs in later issues.
//! WebSocket upgrades never reach this router.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use axum::routing::any;
use axum::Router;
use serde_json::json;

use crate::state::GatewayState;

/// The peer address of an HTTP request (inserted by the accept loop).
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

fn json_response(status: StatusCode, body: serde_json::Value, head: bool) -> Response<Body> {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut resp = Response::new(if head {
        Body::empty()
    } else {
        Body::from(bytes)
    });
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn method_not_allowed() -> Response<Body> {
    let mut resp = json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"error": {"message": "Method Not Allowed", "type": "method_not_allowed"}}),
        false,
    );
    resp.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    resp
}

fn probe_method(method: &Method) -> Option<bool> {
    match *method {
        Method::GET => Some(false),
        Method::HEAD => Some(true),
        _ => None,
    }
}

async fn live(method: Method) -> Response<Body> {
    match probe_method(&method) {
        Some(head) => json_response(StatusCode::OK, json!({"ok": true, "status": "live"}), head),
        None => method_not_allowed(),
    }
}

async fn ready(
    State(state): State<Arc<GatewayState>>,
    peer: Option<Extension<PeerAddr>>,
    method: Method,
) -> Response<Body> {
    let Some(head) = probe_method(&method) else {
        return method_not_allowed();
    };
    let draining = state.is_shutting_down();
    let status = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let local = peer.is_some_and(|Extension(PeerAddr(p))| p.ip().is_loopback());
    let failing: Vec<&str> = if draining { vec!["draining"] } else { vec![] };
    let body = if local {
        let health: serde_json::Value =
            serde_json::from_str(state.health.json().get()).unwrap_or_default();
        json!({"ready": !draining, "failing": failing, "uptimeMs": state.uptime_ms(), "eventLoop": health.get("eventLoop")})
    } else {
        json!({"ready": !draining})
    };
    json_response(status, body, head)
}

async fn startup(
    State(state): State<Arc<GatewayState>>,
    peer: Option<Extension<PeerAddr>>,
    method: Method,
) -> Response<Body> {
    let Some(head) = probe_method(&method) else {
        return method_not_allowed();
    };
    let draining = state.is_shutting_down();
    let status_word = if draining { "draining" } else { "started" };
    let code = if draining {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let local = peer.is_some_and(|Extension(PeerAddr(p))| p.ip().is_loopback());
    let body = if local {
        json!({"ok": !draining, "status": status_word, "version": state.version, "uptimeMs": state.uptime_ms()})
    } else {
        json!({"ok": !draining, "status": status_word})
    };
    json_response(code, body, head)
}

/// Unmatched paths: the Control UI (SPA fallback under its base path), else 404.
async fn fallback(
    State(state): State<Arc<GatewayState>>,
    peer: Option<Extension<PeerAddr>>,
    req: axum::extract::Request,
) -> Response<Body> {
    let peer = peer.map(|Extension(p)| p);
    // Telegram webhook deliveries (`channels.telegram.webhookUrl`/`webhookPath`).
    let req = match crate::channels::webhook::route(&state, req).await {
        Ok(resp) => return resp,
        Err(req) => req,
    };
    // Hooks live under a configurable base path, ahead of the UI's SPA fallback.
    let req = match crate::http_api::hooks::route(&state, peer, req).await {
        Ok(resp) => return resp,
        Err(req) => req,
    };
    match crate::control_ui::respond(&state, peer, &req) {
        Some(resp) => resp,
        None => not_found().await,
    }
}

async fn not_found() -> Response<Body> {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"error": {"message": "Not Found", "type": "not_found"}}),
        false,
    )
}

/// The HTTP router.
pub fn router(state: Arc<GatewayState>) -> Router {
    Router::new()
        .route("/health", any(live))
        .route("/healthz", any(live))
        .route("/ready", any(ready))
        .route("/readyz", any(ready))
        .route("/startup", any(startup))
        .route("/startupz", any(startup))
        .merge(crate::http_api::router())
        .fallback(fallback)
        .with_state(state)
}
