//! Status shapes: `channels.status` (protocol §5.2: `channelOrder`, `channelLabels`,
//! `channelDetailLabels`, `channelSystemImages`, `channelMeta`, `channels`, `channelAccounts`,
//! `channelDefaultAccountId`, `statusIssues`), the `health` `channels`/`channelOrder`/
//! `channelLabels` fields and `status.channelSummary`. Account snapshots follow the
//! reference's `ChannelAccountSnapshot` (plus Pincer's `state`).

use pincer_channels::status::{AccountStatus, ConnectionState};
use serde_json::{json, Map, Value};

use super::settings::{channel_meta, CHANNELS};
use super::{ChannelsHub, Slot};

fn state_str(s: ConnectionState) -> &'static str {
    match s {
        ConnectionState::Stopped => "stopped",
        ConnectionState::Starting => "starting",
        ConnectionState::Running => "running",
        ConnectionState::Reconnecting => "reconnecting",
        ConnectionState::Error => "error",
    }
}

/// The reference's `lifecycle`.
fn lifecycle(s: ConnectionState) -> &'static str {
    match s {
        ConnectionState::Stopped => "stopped",
        ConnectionState::Starting => "starting",
        ConnectionState::Running => "ready",
        ConnectionState::Reconnecting => "recovering",
        ConnectionState::Error => "blocked",
    }
}

/// One account's snapshot.
fn account_snapshot(slot: &Slot, live: Option<&AccountStatus>, skipped: bool) -> Value {
    let spec = &slot.spec;
    let mut v = json!({
        "accountId": spec.account_id,
        "enabled": spec.enabled,
        "configured": spec.adapter.is_ok(),
    });
    let o = v.as_object_mut().map(std::mem::take).unwrap_or_default();
    let mut o: Map<String, Value> = o;
    if let Some(n) = &spec.name {
        o.insert("name".into(), json!(n));
    }
    let (state, connected, reconnects) = match live {
        Some(s) => (s.state, s.connected, s.reconnects),
        None => (ConnectionState::Stopped, false, 0),
    };
    let config_error = spec.adapter.as_ref().err();
    let state = if config_error.is_some() {
        ConnectionState::Error
    } else {
        state
    };
    let running = matches!(
        state,
        ConnectionState::Starting | ConnectionState::Running | ConnectionState::Reconnecting
    );
    o.insert("state".into(), json!(state_str(state)));
    o.insert("lifecycle".into(), json!(lifecycle(state)));
    o.insert("running".into(), json!(running));
    o.insert("connected".into(), json!(connected));
    o.insert("reconnectAttempts".into(), json!(reconnects));
    let last_error = config_error
        .cloned()
        .or_else(|| live.and_then(|s| s.last_error.clone()));
    o.insert("lastError".into(), json!(last_error));
    if let Some(s) = live {
        o.insert("lastErrorAt".into(), json!(s.last_error_at));
        o.insert("lastConnectedAt".into(), json!(s.last_connected_at));
        o.insert("lastInboundAt".into(), json!(s.last_inbound_at));
        o.insert("lastOutboundAt".into(), json!(s.last_outbound_at));
        if let Some(id) = &s.bot_id {
            o.insert("bot".into(), json!({"id": id, "username": s.bot_username}));
        }
    } else {
        o.insert("lastInboundAt".into(), Value::Null);
        o.insert("lastOutboundAt".into(), Value::Null);
    }
    o.insert("lastStartAt".into(), json!(slot.last_start_at));
    o.insert("lastStopAt".into(), json!(slot.last_stop_at));
    o.insert("mode".into(), json!(spec.mode));
    o.insert("dmPolicy".into(), json!(spec.dm_policy));
    o.insert("allowFrom".into(), json!(spec.allow_from));
    match spec.app_token_source {
        Some(app) => {
            o.insert("botTokenSource".into(), json!(spec.token_source.as_str()));
            o.insert("appTokenSource".into(), json!(app.as_str()));
        }
        None => {
            o.insert("tokenSource".into(), json!(spec.token_source.as_str()));
        }
    }
    o.insert("baseUrl".into(), json!(spec.base_url));
    if let Some(p) = &spec.webhook_path {
        o.insert("webhookPath".into(), json!(p));
    }
    if let Some(u) = &spec.webhook_url {
        o.insert("webhookUrl".into(), json!(u));
    }
    let stopped_by = if slot.logged_out {
        Some("logged out (channels.logout)")
    } else if slot.manual_stop {
        Some("stopped by an operator (channels.stop)")
    } else if skipped {
        Some("not started: PINCER_SKIP_CHANNELS/OPENCLAW_SKIP_CHANNELS is set")
    } else if !spec.enabled {
        Some("disabled in the config")
    } else {
        None
    };
    if let Some(reason) = stopped_by {
        o.insert("stateReason".into(), json!(reason));
    }
    Value::Object(o)
}

/// Per channel: its accounts' snapshots (ordered) and default account id.
pub struct Snapshot {
    pub channels: Vec<(&'static str, Vec<Value>, String)>,
}

impl ChannelsHub {
    pub fn snapshot(&self) -> Snapshot {
        let live: Vec<AccountStatus> = self.manager.status();
        let slots = self.slots.lock();
        let defaults = self.default_accounts.lock().clone();
        let mut channels = Vec::new();
        for ch in CHANNELS {
            let accounts: Vec<Value> = slots
                .iter()
                .filter(|((c, _), _)| c == ch)
                .map(|((c, a), slot)| {
                    let l = live.iter().find(|s| s.channel == *c && s.account_id == *a);
                    account_snapshot(slot, l, self.skip)
                })
                .collect();
            if accounts.is_empty() {
                continue;
            }
            let default = defaults
                .get(*ch)
                .cloned()
                .unwrap_or_else(|| pincer_sessions::DEFAULT_ACCOUNT_ID.to_string());
            channels.push((*ch, accounts, default));
        }
        Snapshot { channels }
    }

    /// `channels.status`.
    pub fn status_json(&self, only: Option<&str>, event_loop: Option<Value>) -> Value {
        let snap = self.snapshot();
        let mut order = Vec::new();
        let (mut labels, mut details, mut images) = (Map::new(), Map::new(), Map::new());
        let mut meta = Vec::new();
        let (mut channels, mut accounts, mut defaults) = (Map::new(), Map::new(), Map::new());
        let mut issues = Vec::new();
        for (ch, list, default) in &snap.channels {
            if only.is_some_and(|o| !o.eq_ignore_ascii_case(ch)) {
                continue;
            }
            let (label, detail, image) = channel_meta(ch);
            order.push(json!(ch));
            labels.insert(ch.to_string(), json!(label));
            details.insert(ch.to_string(), json!(detail));
            images.insert(ch.to_string(), json!(image));
            meta.push(
                json!({"id": ch, "label": label, "detailLabel": detail, "systemImage": image}),
            );
            let default_snap = list
                .iter()
                .find(|a| a["accountId"] == json!(default))
                .or_else(|| list.first());
            let mut summary = json!({
                "configured": list.iter().any(|a| a["configured"] == true),
                "running": list.iter().any(|a| a["running"] == true),
                "connected": list.iter().any(|a| a["connected"] == true),
            });
            if let Some(d) = default_snap {
                for k in [
                    "mode",
                    "lastError",
                    "lastInboundAt",
                    "lastOutboundAt",
                    "state",
                ] {
                    if !d[k].is_null() {
                        summary[k] = d[k].clone();
                    }
                }
            }
            channels.insert(ch.to_string(), summary);
            for a in list {
                if let Some(err) = a["lastError"].as_str() {
                    let kind = if a["configured"] == false {
                        "config"
                    } else if err.contains("token") || err.contains("auth") {
                        "auth"
                    } else {
                        "runtime"
                    };
                    if issues.len() < 50 && (a["state"] == "error" || kind == "config") {
                        issues.push(json!({
                            "channel": ch,
                            "accountId": a["accountId"],
                            "kind": kind,
                            "message": err,
                        }));
                    }
                }
            }
            accounts.insert(ch.to_string(), json!(list));
            defaults.insert(ch.to_string(), json!(default));
        }
        let mut out = json!({
            "ts": crate::util::now_ms(),
            "channelOrder": order,
            "channelLabels": labels,
            "channelDetailLabels": details,
            "channelSystemImages": images,
            "channelMeta": meta,
            "channels": channels,
            "channelAccounts": accounts,
            "channelDefaultAccountId": defaults,
            "statusIssues": issues,
        });
        if let Some(el) = event_loop {
            out["eventLoop"] = el;
        }
        if self.skip {
            out["warnings"] = json!(["channels are not started automatically: PINCER_SKIP_CHANNELS/OPENCLAW_SKIP_CHANNELS is set"]);
        }
        out
    }

    /// `health.channels` / `channelOrder` / `channelLabels`: per channel the default account's
    /// snapshot plus `accounts` by id.
    pub fn health_json(&self) -> crate::health::ChannelsHealth {
        let snap = self.snapshot();
        let mut channels = Map::new();
        let mut order = Vec::new();
        let mut labels = Map::new();
        for (ch, list, default) in snap.channels {
            order.push(ch.to_string());
            labels.insert(ch.to_string(), json!(channel_meta(ch).0));
            let mut by_id = Map::new();
            for a in &list {
                if let Some(id) = a["accountId"].as_str() {
                    by_id.insert(id.to_string(), a.clone());
                }
            }
            let mut summary = list
                .iter()
                .find(|a| a["accountId"] == json!(default))
                .or_else(|| list.first())
                .cloned()
                .unwrap_or_else(|| json!({}));
            summary["accounts"] = Value::Object(by_id);
            channels.insert(ch.to_string(), summary);
        }
        crate::health::ChannelsHealth {
            channels,
            order,
            labels,
        }
    }

    /// `status.channelSummary`: the reference's lines (`Telegram: configured`, then
    /// `  - default (dm:pairing, token:config, <baseUrl>)`), plus the account's state.
    pub fn summary_lines(&self) -> Vec<String> {
        let snap = self.snapshot();
        let mut out = Vec::new();
        for (ch, list, _) in snap.channels {
            let label = channel_meta(ch).0;
            let any_enabled = list.iter().any(|a| a["enabled"] == true);
            let configured: Vec<&Value> = list.iter().filter(|a| a["configured"] == true).collect();
            let status = if !any_enabled {
                "disabled"
            } else if configured.is_empty() {
                "not configured"
            } else {
                "configured"
            };
            out.push(format!("{label}: {status}"));
            for a in configured {
                let mut details = Vec::new();
                if a["enabled"] == false {
                    details.push("disabled".to_string());
                }
                if let Some(p) = a["dmPolicy"].as_str() {
                    details.push(format!("dm:{p}"));
                }
                for (key, word) in [
                    ("tokenSource", "token"),
                    ("botTokenSource", "bot"),
                    ("appTokenSource", "app"),
                ] {
                    if let Some(src) = a[key].as_str().filter(|s| *s != "none") {
                        details.push(format!("{word}:{src}"));
                    }
                }
                if let Some(u) = a["baseUrl"].as_str() {
                    details.push(u.to_string());
                }
                if let Some(st) = a["state"].as_str() {
                    details.push(format!("state:{st}"));
                }
                let mut name = a["accountId"].as_str().unwrap_or("default").to_string();
                if let Some(n) = a["name"].as_str() {
                    name.push_str(&format!(" ({n})"));
                }
                out.push(format!("  - {name} ({})", details.join(", ")));
            }
        }
        out
    }
}
