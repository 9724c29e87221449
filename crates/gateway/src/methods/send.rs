//! `send`: an outbound channel message (`pincer send`, the official CLI's `message send`).
//! Idempotent per `idempotencyKey` through the gateway dedupe cache (a repeat within the window
//! answers the first result; a concurrent repeat shares the one delivery). Without a channel
//! and with none (or several) configured it answers the reference's
//! `INVALID_REQUEST "Error: Channel is required …"`.

use std::time::Instant;

use pincer_protocol::errors::ErrorShape;
use pincer_protocol::schema::{Prop, Schema, NON_EMPTY, STRING};
use serde::Deserialize;
use serde_json::json;

use crate::channels::{OutboundRequest, SendError};
use crate::dedupe::Begin;
use crate::dispatch::{MethodRegistry, OwnedCall, Reply};

/// `send` params (closed; the reference's `SendParamsSchema` order).
pub static SEND_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("to", NON_EMPTY),
        Prop::opt("message", STRING),
        Prop::opt("mediaUrl", STRING),
        Prop::opt(
            "mediaUrls",
            Schema::Array {
                items: &STRING,
                min_items: None,
                max_items: None,
            },
        ),
        Prop::opt("buffer", STRING),
        Prop::opt("filename", STRING),
        Prop::opt("contentType", STRING),
        Prop::opt("asVoice", Schema::Bool),
        Prop::opt("gifPlayback", Schema::Bool),
        Prop::opt("channel", STRING),
        Prop::opt("accountId", STRING),
        Prop::opt("agentId", STRING),
        Prop::opt("replyToId", STRING),
        Prop::opt("threadId", STRING),
        Prop::opt("forceDocument", Schema::Bool),
        Prop::opt("silent", Schema::Bool),
        Prop::opt("parseMode", Schema::Const("HTML")),
        Prop::opt("sessionKey", STRING),
        Prop::req("idempotencyKey", NON_EMPTY),
    ],
    closed: true,
};

pub fn register(reg: &mut MethodRegistry) {
    reg.asynchronous("send", &SEND_PARAMS, |c| Box::pin(send(c)));
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    to: String,
    message: Option<String>,
    media_url: Option<String>,
    media_urls: Option<Vec<String>>,
    buffer: Option<String>,
    channel: Option<String>,
    account_id: Option<String>,
    agent_id: Option<String>,
    reply_to_id: Option<String>,
    thread_id: Option<String>,
    session_key: Option<String>,
    idempotency_key: String,
}

async fn send(call: OwnedCall) -> Reply {
    let p: Params = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let state = &call.state;
    if p.buffer.as_deref().is_some_and(|b| !b.is_empty()) {
        return Reply::Error(ErrorShape::invalid_request(
            "attachment uploads (buffer) are not supported by Pincer's channels yet; pass mediaUrl",
        ));
    }
    let session_key = match p.session_key.as_deref().filter(|k| !k.trim().is_empty()) {
        Some(raw) => match crate::methods::chat::session_key(state, raw, p.agent_id.as_deref()) {
            Ok(k) => Some(k),
            Err(e) => return Reply::Error(e),
        },
        None => None,
    };
    let dedupe_key = format!("send:{}", p.idempotency_key);
    let fresh = match state.dedupe.begin(&dedupe_key, Instant::now()) {
        Begin::Fresh => true,
        // The channel layer shares one delivery between concurrent duplicates.
        Begin::InFlight => false,
        Begin::Replay(payload) => return Reply::Json(payload),
    };
    let mut media: Vec<String> = p.media_url.into_iter().collect();
    media.extend(p.media_urls.into_iter().flatten());
    media.retain(|m| !m.trim().is_empty());
    let text = p.message.unwrap_or_default();
    let req = OutboundRequest {
        channel: p.channel.filter(|c| !c.trim().is_empty()),
        account_id: p.account_id.filter(|a| !a.trim().is_empty()),
        to: Some(p.to.clone()),
        session_key: session_key.clone(),
        thread_id: p.thread_id.filter(|t| !t.trim().is_empty()),
        reply_to: p.reply_to_id.filter(|r| !r.trim().is_empty()),
        text: text.clone(),
        media_urls: media,
        idempotency_key: p.idempotency_key.clone(),
    };
    match state.channels.send(req).await {
        Ok(r) => {
            let id_key = if r.channel == "telegram" {
                "chatId"
            } else {
                "channelId"
            };
            let mut payload = json!({
                "runId": p.idempotency_key,
                "messageId": r.message_id,
                "channel": r.channel,
                "accountId": r.account_id,
                "messageIds": r.message_ids,
            });
            payload[id_key] = json!(r.chat_id);
            let payload = payload.to_string();
            if fresh {
                state
                    .dedupe
                    .complete(&dedupe_key, payload.clone(), Instant::now());
                // Mirror the delivered text into the session's transcript (as the reference).
                if let (Some(key), false) = (session_key, text.trim().is_empty()) {
                    let _ = state.agent.runtime.inject(&key, &text, Some("send")).await;
                }
            }
            Reply::Json(payload)
        }
        Err(e) => {
            if fresh {
                state.dedupe.abandon(&dedupe_key);
            }
            Reply::Error(match e {
                SendError::ChannelRequired(m) | SendError::Invalid(m) => {
                    ErrorShape::invalid_request(m)
                }
                SendError::Delivery(m) => ErrorShape::unavailable(m),
            })
        }
    }
}
