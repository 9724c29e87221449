//! Telegram webhook mode on the gateway's own HTTP port: `POST <webhookPath>` (default
//! `/telegram-webhook`) with the `X-Telegram-Bot-Api-Secret-Token` header checked in constant
//! time by the adapter. The answer is 200 only after the update was recorded in the inbound
//! journal and queued, so Telegram redelivers anything the gateway did not take.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Response, StatusCode};

use crate::state::GatewayState;

/// Largest update body accepted.
const MAX_BODY: usize = 1024 * 1024;

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    let mut resp = Response::new(Body::from(text.to_string()));
    *resp.status_mut() = status;
    resp
}

/// Serves the request when its path is a configured webhook path; gives it back otherwise.
pub async fn route(
    state: &Arc<GatewayState>,
    req: axum::extract::Request,
) -> Result<Response<Body>, axum::extract::Request> {
    if !state.channels.is_webhook_path(req.uri().path()) {
        return Err(req);
    }
    if req.method() != Method::POST {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "POST only"));
    }
    #[cfg(feature = "telegram")]
    {
        use pincer_channels::telegram::WebhookError;
        let path = req.uri().path().to_string();
        let Some(adapter) = state.channels.telegram_webhook(&path) else {
            return Ok(plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "channel not running",
            ));
        };
        let secret = req
            .headers()
            .get("x-telegram-bot-api-secret-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
            Ok(b) => b,
            Err(_) => return Ok(plain(StatusCode::PAYLOAD_TOO_LARGE, "update too large")),
        };
        Ok(
            match adapter.handle_webhook(secret.as_deref(), &body).await {
                Ok(()) => plain(StatusCode::OK, "ok"),
                Err(WebhookError::Unauthorized) => {
                    plain(StatusCode::UNAUTHORIZED, "bad secret token")
                }
                Err(WebhookError::BadRequest(e)) => plain(StatusCode::BAD_REQUEST, &e),
                Err(WebhookError::NotRunning) => {
                    plain(StatusCode::SERVICE_UNAVAILABLE, "channel not running")
                }
            },
        )
    }
    #[cfg(not(feature = "telegram"))]
    Ok(plain(
        StatusCode::NOT_FOUND,
        "telegram support is not built in",
    ))
}
