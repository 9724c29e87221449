//! `channels.status`, `channels.start`, `channels.stop`, `channels.logout` and
//! `channels.pairing.list|approve|dismiss` (protocol §5.2; the reference's shapes). Scopes come
//! from the method table; `channels.pairing.approve` with `bootstrapCommandOwner:true` needs
//! `operator.admin` too (dynamic rule in `pincer_protocol::authz`).
//!
//! A pairing request's `requestId` is its pairing code (what the user was sent and what
//! `pincer pairing approve <channel> <code>` takes).

use std::sync::Arc;

use pincer_channels::pairing::{PairingEntry, MAX_PENDING, PAIRING_TTL};
use pincer_channels::ChannelError;
use pincer_protocol::errors::ErrorShape;
use pincer_protocol::schema::{Prop, Schema, NON_EMPTY};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::channels::settings::{self, channel_meta, CHANNELS};
use crate::dispatch::{MethodRegistry, OwnedCall, Reply};
use crate::reload::Origin;
use crate::state::GatewayState;

const NON_NEG_INT: Schema = Schema::Int {
    min: Some(0),
    max: None,
};

/// `channels.status` params (closed).
pub static CHANNELS_STATUS_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::opt("probe", Schema::Bool),
        Prop::opt("timeoutMs", NON_NEG_INT),
        Prop::opt("channel", NON_EMPTY),
    ],
    closed: true,
};

/// `channels.start|stop|logout` params.
pub static CHANNEL_ACCOUNT_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("channel", NON_EMPTY),
        Prop::opt(
            "accountId",
            Schema::Str {
                min_len: None,
                max_len: None,
            },
        ),
    ],
    closed: true,
};

/// `channels.pairing.list` params.
pub static PAIRING_LIST_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::opt("channel", NON_EMPTY),
        Prop::opt("accountId", NON_EMPTY),
    ],
    closed: true,
};

/// `channels.pairing.approve` params.
pub static PAIRING_APPROVE_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("channel", NON_EMPTY),
        Prop::req("accountId", NON_EMPTY),
        Prop::req("requestId", NON_EMPTY),
        Prop::opt("notify", Schema::Bool),
        Prop::opt("bootstrapCommandOwner", Schema::Bool),
    ],
    closed: true,
};

/// `channels.pairing.dismiss` params.
pub static PAIRING_DISMISS_PARAMS: Schema = Schema::Object {
    props: &[
        Prop::req("channel", NON_EMPTY),
        Prop::req("accountId", NON_EMPTY),
        Prop::req("requestId", NON_EMPTY),
    ],
    closed: true,
};

pub fn register(reg: &mut MethodRegistry) {
    reg.asynchronous("channels.status", &CHANNELS_STATUS_PARAMS, |c| {
        Box::pin(status(c))
    });
    reg.asynchronous("channels.start", &CHANNEL_ACCOUNT_PARAMS, |c| {
        Box::pin(start(c))
    });
    reg.asynchronous("channels.stop", &CHANNEL_ACCOUNT_PARAMS, |c| {
        Box::pin(stop(c, false))
    });
    reg.asynchronous("channels.logout", &CHANNEL_ACCOUNT_PARAMS, |c| {
        Box::pin(stop(c, true))
    });
    reg.asynchronous("channels.pairing.list", &PAIRING_LIST_PARAMS, |c| {
        Box::pin(pairing_list(c))
    });
    reg.asynchronous("channels.pairing.approve", &PAIRING_APPROVE_PARAMS, |c| {
        Box::pin(pairing_approve(c))
    });
    reg.asynchronous("channels.pairing.dismiss", &PAIRING_DISMISS_PARAMS, |c| {
        Box::pin(pairing_dismiss(c))
    });
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Params {
    channel: Option<String>,
    account_id: Option<String>,
    request_id: Option<String>,
    probe: Option<bool>,
    timeout_ms: Option<u64>,
    bootstrap_command_owner: Option<bool>,
    notify: Option<bool>,
}

fn known_channel(raw: &str) -> Result<String, ErrorShape> {
    let c = raw.trim().to_ascii_lowercase();
    if CHANNELS.contains(&c.as_str()) {
        Ok(c)
    } else {
        Err(ErrorShape::invalid_request(format!(
            "unknown channel: {raw}"
        )))
    }
}

async fn status(call: OwnedCall) -> Reply {
    let p: Params = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let state = &call.state;
    if p.probe == Some(true) {
        // A probe waits (bounded) for accounts that are still connecting to settle.
        let wait = std::time::Duration::from_millis(p.timeout_ms.unwrap_or(2000).min(10_000));
        for s in state.channels.manager().status() {
            if matches!(
                s.state,
                pincer_channels::ConnectionState::Starting
                    | pincer_channels::ConnectionState::Reconnecting
            ) {
                if let Ok(a) = state
                    .channels
                    .manager()
                    .adapter(&s.channel, Some(&s.account_id))
                {
                    a.status()
                        .wait_for(
                            |x| {
                                !matches!(
                                    x.state,
                                    pincer_channels::ConnectionState::Starting
                                        | pincer_channels::ConnectionState::Reconnecting
                                )
                            },
                            wait,
                        )
                        .await;
                }
            }
        }
    }
    let health: Value = serde_json::from_str(state.health.json().get()).unwrap_or_default();
    let event_loop = health.get("eventLoop").cloned().map(|mut el| {
        // The channels result wants an integer interval.
        if let Some(ms) = el.get("intervalMs").and_then(Value::as_f64) {
            el["intervalMs"] = json!(ms.round() as u64);
        }
        el
    });
    Reply::json(&state.channels.status_json(p.channel.as_deref(), event_loop))
}

fn account_of(state: &GatewayState, p: &Params) -> Result<(String, String), ErrorShape> {
    let channel = known_channel(p.channel.as_deref().unwrap_or_default())?;
    let account = state
        .channels
        .resolve_account(&channel, p.account_id.as_deref())
        .ok_or_else(|| {
            ErrorShape::invalid_request(format!("channel {channel} is not configured"))
        })?;
    Ok((channel, account))
}

async fn start(call: OwnedCall) -> Reply {
    let p: Params = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let (channel, account) = match account_of(&call.state, &p) {
        Ok(x) => x,
        Err(e) => return Reply::Error(e),
    };
    match call.state.channels.start_manual(&channel, &account).await {
        Ok(started) => {
            call.state.refresh_health(None);
            Reply::json(&json!({
                "channel": channel, "accountId": account, "started": started,
                "outcome": if started { "started" } else { "not-running" },
            }))
        }
        Err(e) => Reply::Error(ErrorShape::invalid_request(e)),
    }
}

async fn stop(call: OwnedCall, logout: bool) -> Reply {
    let p: Params = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let (channel, account) = match account_of(&call.state, &p) {
        Ok(x) => x,
        Err(e) => return Reply::Error(e),
    };
    if let Err(e) = call
        .state
        .channels
        .stop_manual(&channel, &account, logout)
        .await
    {
        return Reply::Error(ErrorShape::invalid_request(e));
    }
    call.state.refresh_health(None);
    if logout {
        // Bot tokens live in the config: logging out stops the account and keeps it stopped
        // (also across config reloads) until `channels.start`; nothing is cleared.
        Reply::json(&json!({
            "channel": channel, "accountId": account, "cleared": false, "loggedOut": true,
        }))
    } else {
        Reply::json(&json!({"channel": channel, "accountId": account, "stopped": true}))
    }
}

fn iso(ms: i64) -> String {
    pincer_sessions::time::iso8601_from_ms(ms)
}

fn public_request(state: &GatewayState, e: &PairingEntry) -> Value {
    let label = channel_meta(&e.channel).0;
    let mut metadata = serde_json::Map::new();
    if let Some(Value::Object(m)) = &e.meta {
        for (k, v) in m {
            if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
                metadata.insert(k.clone(), json!(s));
            }
        }
    }
    let mut out = json!({
        "requestId": e.code,
        "channel": e.channel,
        "channelLabel": label,
        "accountId": e.account_id,
        "senderId": e.id,
        "senderLabel": format!("{label} user id"),
        "createdAt": iso(e.created_at),
        "lastSeenAt": iso(e.last_seen_at),
        "expiresAt": iso(e.expires_at),
        "notifySupported": true,
    });
    if let Some(name) = account_label(state, &e.channel, &e.account_id) {
        out["accountLabel"] = json!(name);
    }
    if !metadata.is_empty() {
        out["metadata"] = Value::Object(metadata);
    }
    out
}

fn account_label(state: &GatewayState, channel: &str, account: &str) -> Option<String> {
    state
        .channels
        .slots
        .lock()
        .get(&(channel.to_string(), account.to_string()))
        .and_then(|s| s.spec.name.clone())
}

/// Accounts that use DM pairing (configured, `dmPolicy: pairing`), optionally filtered.
fn pairing_accounts(
    state: &GatewayState,
    channel: Option<&str>,
    account: Option<&str>,
) -> Vec<(String, String)> {
    state
        .channels
        .slots
        .lock()
        .iter()
        .filter(|((c, a), slot)| {
            slot.spec.dm_policy == "pairing"
                && slot.spec.adapter.is_ok()
                && channel.is_none_or(|x| x.eq_ignore_ascii_case(c))
                && account.is_none_or(|x| x.eq_ignore_ascii_case(a))
        })
        .map(|(k, _)| k.clone())
        .collect()
}

async fn pairing_list(call: OwnedCall) -> Reply {
    let p: Params = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let state = &call.state;
    if let Some(c) = &p.channel {
        if known_channel(c).is_err() {
            return Reply::Error(ErrorShape::invalid_request(format!(
                "unknown pairing channel: {c}"
            )));
        }
    }
    let accounts = pairing_accounts(state, p.channel.as_deref(), p.account_id.as_deref());
    let mut requests = Vec::new();
    for (channel, account) in &accounts {
        match state.channels.pairing().list(channel, Some(account)).await {
            Ok(list) => requests.extend(list.iter().map(|e| public_request(state, e))),
            Err(e) => return Reply::Error(ErrorShape::unavailable(e.to_string())),
        }
    }
    let accounts_json: Vec<Value> = accounts
        .iter()
        .map(|(c, a)| {
            let mut v = json!({"channel": c, "channelLabel": channel_meta(c).0, "accountId": a, "notifySupported": true});
            if let Some(name) = account_label(state, c, a) {
                v["accountLabel"] = json!(name);
            }
            v
        })
        .collect();
    let cfg = state.config.get();
    Reply::json(&json!({
        "accounts": accounts_json,
        "requests": requests,
        "commandOwnerConfigured": settings::has_command_owner(&cfg.config),
        "limits": {"pendingPerAccount": MAX_PENDING, "ttlMs": PAIRING_TTL.as_millis() as u64},
    }))
}

fn pairing_target(
    state: &GatewayState,
    p: &Params,
) -> Result<(String, String, String), ErrorShape> {
    let channel = p.channel.clone().unwrap_or_default();
    let account = p.account_id.clone().unwrap_or_default();
    let known = known_channel(&channel)
        .map_err(|_| ErrorShape::invalid_request(format!("unknown pairing channel: {channel}")))?;
    let accounts = pairing_accounts(state, Some(&known), Some(&account));
    let Some((c, a)) = accounts.into_iter().next() else {
        return Err(ErrorShape::invalid_request(format!(
            "channel account does not use DM pairing: {channel}:{account}"
        )));
    };
    Ok((c, a, p.request_id.clone().unwrap_or_default()))
}

fn pairing_error(e: ChannelError) -> ErrorShape {
    match e {
        ChannelError::UnknownPairingCode { .. } => {
            ErrorShape::invalid_request("pending DM access request no longer exists")
        }
        other => ErrorShape::unavailable(other.to_string()),
    }
}

async fn pairing_approve(call: OwnedCall) -> Reply {
    let p: Params = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let state = Arc::clone(&call.state);
    let (channel, account, code) = match pairing_target(&state, &p) {
        Ok(t) => t,
        Err(e) => return Reply::Error(e),
    };
    let approved = match state
        .channels
        .pairing()
        .approve(&channel, &code, Some(&account))
        .await
    {
        Ok(a) => a,
        Err(e) => return Reply::Error(pairing_error(e)),
    };
    let bootstrap = if p.bootstrap_command_owner == Some(true) {
        bootstrap_owner(&state, &channel, &approved.id).await
    } else {
        "not-requested"
    };
    let notification = if p.notify == Some(true) {
        notify(&state, &approved).await
    } else {
        "not-requested"
    };
    Reply::json(&json!({
        "requestId": code.trim().to_ascii_uppercase(),
        "senderId": approved.id,
        "notification": notification,
        "commandOwnerBootstrap": bootstrap,
    }))
}

/// Tells the approved sender (a DM on the account that paired them).
async fn notify(state: &Arc<GatewayState>, approved: &PairingEntry) -> &'static str {
    let req = crate::channels::OutboundRequest {
        channel: Some(approved.channel.clone()),
        account_id: Some(approved.account_id.clone()),
        to: Some(match approved.channel.as_str() {
            "discord" => format!("user:{}", approved.id),
            _ => approved.id.clone(),
        }),
        text: "✅ Access approved: you can talk to the assistant now.".into(),
        idempotency_key: format!("pairing-approved:{}:{}", approved.channel, approved.code),
        ..Default::default()
    };
    match state.channels.send(req).await {
        Ok(_) => "sent",
        Err(e) => {
            tracing::warn!(target: "channels", error = %e, "pairing approval notification failed");
            "failed"
        }
    }
}

/// `bootstrapCommandOwner`: the first approved sender becomes `commands.ownerAllowFrom`
/// when no owner is configured (written to the config file, applied live).
async fn bootstrap_owner(state: &Arc<GatewayState>, channel: &str, id: &str) -> &'static str {
    if settings::has_command_owner(&state.config.get().config) {
        return "already-configured";
    }
    let path = state.config.path().to_path_buf();
    let opts = state.config.options().clone();
    let entry = format!("{channel}:{id}");
    let written = tokio::task::spawn_blocking(move || {
        pincer_config::edit::edit(&path, &opts, None, move |doc| {
            let owners = doc
                .pointer("/commands/ownerAllowFrom")
                .and_then(Value::as_array)
                .is_some_and(|a| !a.is_empty());
            if !owners {
                if !doc.is_object() {
                    *doc = json!({});
                }
                let commands = doc
                    .as_object_mut()
                    .map(|o| o.entry("commands").or_insert_with(|| json!({})));
                if let Some(Value::Object(c)) = commands {
                    c.insert("ownerAllowFrom".into(), json!([entry]));
                }
            }
            Ok(())
        })
    })
    .await;
    match written {
        Ok(Ok(outcome)) => {
            let noop = outcome.noop;
            state.apply_config(Arc::new(outcome.loaded), Origin::Rpc);
            if noop {
                "already-configured"
            } else {
                "configured"
            }
        }
        Ok(Err(e)) => {
            tracing::warn!(target: "channels", error = %e, "command owner bootstrap failed");
            "unavailable"
        }
        Err(_) => "unavailable",
    }
}

async fn pairing_dismiss(call: OwnedCall) -> Reply {
    let p: Params = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let state = &call.state;
    let (channel, account, code) = match pairing_target(state, &p) {
        Ok(t) => t,
        Err(e) => return Reply::Error(e),
    };
    match state
        .channels
        .pairing()
        .dismiss(&channel, &code, Some(&account))
        .await
    {
        Ok(d) => Reply::json(&json!({
            "requestId": code.trim().to_ascii_uppercase(),
            "senderId": d.id,
        })),
        Err(e) => Reply::Error(pairing_error(e)),
    }
}
