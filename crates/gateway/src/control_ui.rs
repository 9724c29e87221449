//! Mounts the Control UI (`pincer-control-ui`) on the HTTP router at
//! `gateway.controlUi.basePath` (start-up config; changing it needs a restart), with the SPA
//! fallback for unmatched GET paths, and serves `<base>/control-ui-config.json` behind the
//! gateway's HTTP auth (Bearer token/password, or the trusted proxy's identity).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use pincer_control_ui::ControlUi;
use pincer_protocol::connect::ConnectAuth;
use serde_json::{json, Value};

use crate::auth::SharedAuth;
use crate::http::PeerAddr;
use crate::ratelimit::{Check, Scope as RlScope};
use crate::state::GatewayState;

/// The UI as configured at start-up, or why it is off.
fn mounted(state: &GatewayState) -> Option<ControlUi> {
    let cfg = &state.config.startup().config.gateway.control_ui;
    if cfg.enabled == Some(false) {
        return None;
    }
    match ControlUi::new(cfg.base_path.as_deref().unwrap_or("")) {
        Ok(ui) => Some(ui),
        Err(e) => {
            tracing::warn!(error = %e, "the Control UI is not served");
            None
        }
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
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

fn unauthorized() -> Response<Body> {
    json_response(
        StatusCode::UNAUTHORIZED,
        &json!({"error": {"message": "Unauthorized", "type": "unauthorized"}}),
    )
}

/// `Authorization: Bearer <secret>` against the gateway's shared auth (constant time, with
/// the failed-auth limiter); trusted-proxy mode checks the proxy's identity headers.
pub(crate) fn http_auth(
    state: &GatewayState,
    peer: IpAddr,
    headers: &HeaderMap,
) -> Result<(), Box<Response<Body>>> {
    let gateway_auth = state.auth.get();
    let facts = state.security.peer_facts(&gateway_auth, peer, headers);
    let client_ip = facts.forwarded_for.unwrap_or(peer);
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let now = Instant::now();
    if gateway_auth.uses_secret() && bearer.is_some() {
        if let Check::Locked { retry_after } =
            state
                .rate_limiter
                .check(RlScope::SharedSecret, client_ip, now)
        {
            let mut resp = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                &json!({"error": {"message": "Too many failed authentication attempts", "type": "rate_limited"}}),
            );
            let secs = retry_after.as_secs().max(1);
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            return Err(Box::new(resp));
        }
    }
    let auth = ConnectAuth {
        token: bearer.map(str::to_string),
        ..Default::default()
    };
    match gateway_auth.evaluate(Some(&auth), facts.proxy_identity.as_ref()) {
        SharedAuth::Ok | SharedAuth::NotRequired => {
            if gateway_auth.uses_secret() {
                state.rate_limiter.reset(RlScope::SharedSecret, client_ip);
            }
            Ok(())
        }
        SharedAuth::Failed(reason) => {
            if reason.is_mismatch() {
                state
                    .rate_limiter
                    .record_failure(RlScope::SharedSecret, client_ip, now);
            }
            Err(Box::new(unauthorized()))
        }
        SharedAuth::Missing(_) => Err(Box::new(unauthorized())),
    }
}

fn config_json(state: &GatewayState, ui: &ControlUi) -> Value {
    let loaded = state.config.get();
    let agent_id = loaded.config.default_agent_id();
    let name = loaded
        .resolved
        .pointer("/agents/defaults/identity/name")
        .and_then(Value::as_str)
        .unwrap_or("Assistant")
        .to_string();
    json!({
        "basePath": ui.base_path(),
        "assistantName": name,
        "assistantAvatar": null,
        "assistantAgentId": agent_id,
        "serverVersion": state.version,
        "serverBuildId": crate::state::BUILD_ID,
        "embedSandbox": false,
        "terminalEnabled": false,
    })
}

/// The router's fallback: the Control UI (SPA) when the path is under its base path,
/// otherwise `None` (the caller answers 404).
pub fn respond(
    state: &Arc<GatewayState>,
    peer: Option<PeerAddr>,
    req: &Request<Body>,
) -> Option<Response<Body>> {
    let ui = mounted(state)?;
    let path = req.uri().path();
    if ui.is_config_json(path) {
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            return None;
        }
        let peer_ip = peer.map(|PeerAddr(p)| p.ip())?;
        return Some(match http_auth(state, peer_ip, req.headers()) {
            Ok(()) => json_response(StatusCode::OK, &config_json(state, &ui)),
            Err(resp) => *resp,
        });
    }
    let resp = ui.respond(req.method(), path, req.headers())?;
    Some(resp.map(Body::from))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_ui_and_the_gateway_report_the_same_build() {
        // The UI sends its build id in `connect`; the handshake refuses a different one.
        assert_eq!(pincer_control_ui::BUILD_ID, crate::state::BUILD_ID);
    }
}
