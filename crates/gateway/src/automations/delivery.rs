//! Where the result of an automation goes: into a session (committed to its transcript and
//! shown live to the session's readers), to a channel conversation, or to a webhook.
//!
//! Session delivery is what WebChat and the Control UI see: the text is appended as an
//! assistant message (never sent back to the model as user input) and a `chat` final event
//! goes to the session's readers. A session that talks through a chat channel (Telegram,
//! Discord, Slack: its `deliveryContext`) also gets the text in that chat, through the
//! gateway's one send path (`ChannelsHub::send`, idempotent per delivery key); an explicit
//! `channel` + `to` route goes there directly.
//!
//! Webhooks are POSTed with `Authorization: Bearer <cron.webhookToken>` (when set) through the
//! same SSRF guard as `web_fetch`: private, loopback and internal targets are refused unless
//! `cron.webhookSsrfPolicy` allows them, names are resolved once and the connection is pinned
//! to the checked addresses, redirects are not followed, and the request has a deadline.

use std::sync::Arc;
use std::time::Duration;

use pincer_sessions::SessionKey;
use pincer_store::EnsureSession;
use pincer_tools::web::ssrf::{check_host, is_trusted, GuardedResolver, SsrfBlocked, SsrfPolicy};
use serde_json::Value;

use crate::state::GatewayState;

/// Deadline of one webhook POST.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// What a delivery did (for run history and the `heartbeat` event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivered {
    /// Committed to this session and shown to its readers.
    Session { key: String },
    /// Sent to a channel conversation.
    Channel { channel: String, to: String },
    /// POSTed; the receiver answered with this status.
    Webhook { status: u16 },
}

impl Delivered {
    /// A short description for run summaries.
    pub fn describe(&self) -> String {
        match self {
            Delivered::Session { key } => format!("delivered to {key}"),
            Delivered::Channel { channel, to } => format!("delivered to {channel}:{to}"),
            Delivered::Webhook { status } => format!("webhook answered {status}"),
        }
    }
}

/// Appends `text` to `key` (created if needed) and publishes it to the session's readers.
pub async fn to_session(
    state: &Arc<GatewayState>,
    key: &SessionKey,
    text: &str,
    label: Option<&str>,
) -> Result<Delivered, String> {
    let exists = state
        .store
        .get_session(key)
        .await
        .map_err(|e| e.to_string())?
        .is_some();
    if !exists {
        let now = crate::util::now_ms() as i64;
        state
            .store
            .ensure_session(key, EnsureSession::at(now))
            .await
            .map_err(|e| format!("cannot create {key}: {e}"))?;
        state.sessions_changed(key, "create", None);
    }
    crate::methods::chat::inject_and_publish(state, key, text, label)
        .await
        .map_err(|e| format!("cannot deliver to {key}: {e}"))?;
    Ok(Delivered::Session {
        key: key.to_string(),
    })
}

/// An explicit channel route (`delivery.channel`/`to`, `heartbeat.target`/`to`, a hook's
/// `channel`/`to`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ChannelRoute<'a> {
    pub channel: &'a str,
    pub to: &'a str,
    pub account_id: Option<&'a str>,
    pub thread_id: Option<&'a str>,
}

/// Delivers `text` to the conversation behind `key`: committed to the session, and sent to
/// the chat when the session talks through a channel (its `deliveryContext`).
/// `idempotency_key` makes a retried delivery send once.
pub async fn to_conversation(
    state: &Arc<GatewayState>,
    key: &SessionKey,
    text: &str,
    label: Option<&str>,
    idempotency_key: &str,
) -> Result<Vec<Delivered>, String> {
    let mut out = vec![to_session(state, key, text, label).await?];
    if let Some(d) = to_session_channel(state, key, text, idempotency_key).await? {
        out.push(d);
    }
    Ok(out)
}

/// Sends `text` to the chat a session talks through; `Ok(None)` when the session is not a
/// channel conversation (WebChat, the CLI, cron and hook sessions).
pub async fn to_session_channel(
    state: &Arc<GatewayState>,
    key: &SessionKey,
    text: &str,
    idempotency_key: &str,
) -> Result<Option<Delivered>, String> {
    let record = state
        .store
        .get_session(key)
        .await
        .map_err(|e| e.to_string())?;
    let Some(conv) = record
        .as_ref()
        .and_then(|r| crate::channels::sink::delivery_conversation(&r.entry))
    else {
        return Ok(None);
    };
    let sent = state
        .channels
        .send(crate::channels::messaging::OutboundRequest {
            session_key: Some(key.clone()),
            text: text.to_string(),
            idempotency_key: idempotency_key.to_string(),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("sending to {} {} failed: {e}", conv.channel, conv.chat_id))?;
    Ok(Some(Delivered::Channel {
        channel: sent.channel,
        to: sent.chat_id,
    }))
}

/// Sends `text` to an explicit channel route.
pub async fn to_channel(
    state: &Arc<GatewayState>,
    route: ChannelRoute<'_>,
    text: &str,
    idempotency_key: &str,
) -> Result<Delivered, String> {
    let sent = state
        .channels
        .send(crate::channels::messaging::OutboundRequest {
            channel: Some(route.channel.to_string()),
            account_id: route.account_id.map(str::to_string),
            to: Some(route.to.to_string()),
            thread_id: route.thread_id.map(str::to_string),
            text: text.to_string(),
            idempotency_key: idempotency_key.to_string(),
            ..Default::default()
        })
        .await
        .map_err(|e| format!("sending to {} {} failed: {e}", route.channel, route.to))?;
    Ok(Delivered::Channel {
        channel: sent.channel,
        to: sent.chat_id,
    })
}

/// The webhook SSRF policy (`cron.webhookSsrfPolicy`).
fn webhook_policy(cfg: &pincer_config::Config) -> SsrfPolicy {
    let p = cfg
        .cron
        .as_ref()
        .and_then(|c| c.webhook_ssrf_policy.clone())
        .unwrap_or_default();
    SsrfPolicy {
        dangerously_allow_private_network: p.dangerously_allow_private_network.unwrap_or(false),
        allowed_hostnames: p.allowed_hostnames.unwrap_or_default(),
        allowed_endpoints: Vec::new(),
        blocked_hostnames: p.blocked_hostnames.unwrap_or_default(),
        allow_rfc2544_benchmark_range: p.allow_rfc2544_benchmark_range.unwrap_or(false),
        allow_ipv6_unique_local_range: p.allow_ipv6_unique_local_range.unwrap_or(false),
    }
}

/// `cron.webhookToken`, resolved (SecretRefs included); never logged.
fn webhook_token(state: &GatewayState) -> Result<Option<String>, String> {
    let loaded = state.config.get();
    let Some(input) = loaded
        .config
        .cron
        .as_ref()
        .and_then(|c| c.webhook_token.as_ref())
    else {
        return Ok(None);
    };
    let env = |k: &str| std::env::var(k).ok();
    let dir = state
        .config
        .path()
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    let ctx = pincer_config::secrets::SecretContext {
        env: &env,
        config_dir: &dir,
        store: None,
        exec_timeout: Duration::from_secs(10),
    };
    pincer_config::secrets::resolve(input, "cron.webhookToken", &ctx)
        .map(|t| Some(t.trim().to_string()).filter(|t| !t.is_empty()))
        .map_err(|e| e.to_string())
}

fn tls_config() -> Result<rustls::ClientConfig, String> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_platform_verifier()
        .map_err(|e| e.to_string())?
        .with_no_client_auth())
}

fn blocked_in_chain(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(b) = s.downcast_ref::<SsrfBlocked>() {
            return Some(format!("{} ({})", b.target, b.reason));
        }
        source = s.source();
    }
    None
}

/// POSTs `payload` as JSON to `url` (see the module doc).
pub async fn webhook(
    state: &GatewayState,
    url: &str,
    payload: &Value,
) -> Result<Delivered, String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("webhook URL {url:?}: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("webhook URL {url:?} is not http(s)"));
    }
    let host = parsed
        .host_str()
        .ok_or_else(|| format!("webhook URL {url:?} has no host"))?
        .to_string();
    let port = parsed.port_or_known_default().unwrap_or(443);
    let policy = webhook_policy(&state.config.get().config);
    check_host(&policy, &host, port).map_err(|b| {
        format!(
            "webhook blocked by the SSRF guard: {} ({})",
            b.target, b.reason
        )
    })?;
    let trusted = is_trusted(&policy, &host, port);
    let token = webhook_token(state)?;
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config()?)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(WEBHOOK_TIMEOUT)
        .timeout(WEBHOOK_TIMEOUT)
        .user_agent(concat!("pincer/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(GuardedResolver { policy, trusted }))
        .build()
        .map_err(|e| format!("webhook client: {e}"))?;
    let body = serde_json::to_vec(payload).map_err(|e| e.to_string())?;
    let mut req = client
        .post(parsed)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.map_err(|e| match blocked_in_chain(&e) {
        Some(b) => format!("webhook blocked by the SSRF guard: {b}"),
        None => format!("webhook POST failed: {}", e.without_url()),
    })?;
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        Ok(Delivered::Webhook { status })
    } else {
        Err(format!("webhook answered HTTP {status}"))
    }
}
