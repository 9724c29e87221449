//! Config → channel accounts: which accounts exist (`channels.<name>` root + `accounts.<id>`,
//! `defaultAccount`), their adapter settings (tokens resolved from SecretRefs, base URLs), their
//! inbound pipeline settings (dmPolicy/allowFrom/groups, mention patterns, debounce, history,
//! session keys) and a fingerprint of everything that needs the account restarted when it
//! changes. Pure apart from secret resolution (file/exec SecretRefs): call it off the async
//! workers.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use pincer_channels::chunk::ChunkMode;
use pincer_channels::pipeline::{KeySettings, PipelineSettings};
use pincer_channels::policy::{AccessPolicy, GroupRule};
use pincer_channels::ReplyToMode;
use pincer_config::model::channels::{
    AllowEntry, ChunkModeConfig, ReplyToMode as ReplyToModeConfig, StreamingMode,
};
use pincer_config::model::SecretInput;
use pincer_config::Config;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// The channels Pincer implements, in display order.
pub const CHANNELS: &[&str] = &["telegram", "discord", "slack"];

/// `channelLabels` / `channelDetailLabels` / `channelSystemImages` of a channel.
pub fn channel_meta(channel: &str) -> (&'static str, &'static str, &'static str) {
    match channel {
        "telegram" => ("Telegram", "Telegram Bot", "paperplane"),
        "discord" => ("Discord", "Discord Bot", "bubble.left.and.bubble.right"),
        _ => ("Slack", "Slack Bot", "number"),
    }
}

/// Where an account's token came from (`tokenSource` in `channels.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Config,
    File,
    Env,
    None,
}

impl TokenSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Config => "config",
            TokenSource::File => "tokenFile",
            TokenSource::Env => "env",
            TokenSource::None => "none",
        }
    }
}

/// The adapter to build for an account.
#[derive(Clone)]
pub enum AdapterSpec {
    #[cfg(feature = "telegram")]
    Telegram(pincer_channels::telegram::TelegramSettings),
    #[cfg(feature = "discord")]
    Discord(pincer_channels::discord::DiscordSettings),
    #[cfg(feature = "slack")]
    Slack(pincer_channels::slack::SlackSettings),
}

/// One configured account.
#[derive(Clone)]
pub struct AccountSpec {
    pub channel: &'static str,
    pub account_id: String,
    pub name: Option<String>,
    pub enabled: bool,
    /// The adapter settings, or why the account cannot run (missing token, bad SecretRef).
    pub adapter: Result<AdapterSpec, String>,
    /// Changes of these need the account restarted (hex digest).
    pub fingerprint: String,
    pub pipeline: PipelineSettings,
    pub reply_mode: ReplyToMode,
    pub chunk_mode: ChunkMode,
    /// Streaming preview edited in place while the model writes.
    pub preview: bool,
    pub mode: &'static str,
    pub dm_policy: &'static str,
    pub allow_from: Vec<String>,
    pub token_source: TokenSource,
    pub app_token_source: Option<TokenSource>,
    pub base_url: String,
    pub webhook_path: Option<String>,
    pub webhook_url: Option<String>,
}

/// Every account of every configured channel, plus `defaultAccount` per channel.
pub struct ChannelSpecs {
    pub accounts: Vec<AccountSpec>,
    pub default_accounts: BTreeMap<String, String>,
}

/// Environment and files the specs may read.
pub struct SpecInputs<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub config_dir: &'a Path,
}

fn entry_text(e: &AllowEntry) -> String {
    match e {
        AllowEntry::Text(s) => s.trim().to_string(),
        AllowEntry::Number(n) => n.to_string(),
    }
}

fn resolve_secret(
    input: &SecretInput,
    field: &str,
    inputs: &SpecInputs<'_>,
) -> Result<String, String> {
    let ctx = pincer_config::secrets::SecretContext {
        env: inputs.env,
        config_dir: inputs.config_dir,
        store: None,
        exec_timeout: Duration::from_secs(10),
    };
    pincer_config::secrets::resolve(input, field, &ctx)
        .map(|s| s.trim().to_string())
        .map_err(|e| e.to_string())
}

/// Root block minus `accounts`/`defaultAccount` merged under one account block. Named
/// accounts do not inherit the root's credentials (two adapters on one token would fight).
fn merged_account(root: &Value, account: Option<&Value>, credential_keys: &[&str]) -> Value {
    let mut base = root.as_object().cloned().unwrap_or_default();
    base.remove("accounts");
    base.remove("defaultAccount");
    if let Some(Value::Object(acc)) = account {
        for k in credential_keys {
            base.remove(*k);
        }
        merge(&mut base, acc);
    }
    Value::Object(base)
}

fn merge(base: &mut Map<String, Value>, over: &Map<String, Value>) {
    for (k, v) in over {
        match (base.get_mut(k), v) {
            (Some(Value::Object(b)), Value::Object(o)) => merge(b, o),
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Account ids of a channel block: `accounts.*`, plus `default` when the root carries a
/// credential (or no accounts are listed at all).
fn account_ids(root: &Value, credential_keys: &[&str], env_token: bool) -> Vec<String> {
    let mut ids: Vec<String> = root
        .get("accounts")
        .and_then(Value::as_object)
        .map(|m| m.keys().map(|k| normalize_account(k)).collect())
        .unwrap_or_default();
    let root_has_credential = credential_keys.iter().any(|k| root.get(*k).is_some()) || env_token;
    let default = pincer_sessions::DEFAULT_ACCOUNT_ID.to_string();
    if (ids.is_empty() || root_has_credential) && !ids.contains(&default) {
        ids.insert(0, default);
    }
    ids
}

fn normalize_account(id: &str) -> String {
    let id = id.trim().to_ascii_lowercase();
    if id.is_empty() {
        pincer_sessions::DEFAULT_ACCOUNT_ID.to_string()
    } else {
        id
    }
}

fn account_block<'a>(root: &'a Value, account_id: &str) -> Option<&'a Value> {
    root.get("accounts")?
        .as_object()?
        .iter()
        .find(|(k, _)| normalize_account(k) == account_id)
        .map(|(_, v)| v)
}

fn sha(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0x1f]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The shared part of every channel block, read from its merged JSON.
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Common {
    enabled: Option<bool>,
    name: Option<String>,
    dm_policy: Option<pincer_config::model::channels::DmPolicy>,
    allow_from: Option<Vec<AllowEntry>>,
    group_policy: Option<pincer_config::model::channels::GroupPolicy>,
    group_allow_from: Option<Vec<AllowEntry>>,
    groups: Option<BTreeMap<String, pincer_config::model::channels::GroupSettings>>,
    history_limit: Option<u32>,
    text_chunk_limit: Option<u32>,
    media_max_mb: Option<f64>,
    reply_to_mode: Option<ReplyToModeConfig>,
    streaming: Option<pincer_config::model::channels::StreamingSettings>,
    require_mention: Option<bool>,
}

fn dm_policy_str(p: Option<pincer_config::model::channels::DmPolicy>) -> &'static str {
    use pincer_config::model::channels::DmPolicy as D;
    match p {
        Some(D::Allowlist) => "allowlist",
        Some(D::Open) => "open",
        Some(D::Disabled) => "disabled",
        Some(D::Pairing) | None => "pairing",
    }
}

/// `messages.groupChat.mentionPatterns` plus every agent's `groupChat.mentionPatterns`,
/// compiled case-insensitively (an invalid pattern is logged and skipped).
fn mention_patterns(config: &Config) -> Vec<regex_lite::Regex> {
    let mut raw: Vec<String> = config
        .messages
        .group_chat
        .as_ref()
        .and_then(|g| g.mention_patterns.clone())
        .unwrap_or_default();
    for entry in config.agents.entries.values() {
        if let Some(p) = entry
            .group_chat
            .as_ref()
            .and_then(|g| g.mention_patterns.as_ref())
        {
            raw.extend(p.iter().cloned());
        }
    }
    raw.iter()
        .filter(|p| !p.trim().is_empty())
        .filter_map(|p| match regex_lite::Regex::new(&format!("(?i){p}")) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(target: "channels", pattern = %p, error = %e, "messages.groupChat.mentionPatterns: invalid pattern skipped");
                None
            }
        })
        .collect()
}

/// Inbound debounce of a channel: `messages.inbound.byChannel.<ch>`, else `.debounceMs`,
/// else the built-in default (Telegram 300 ms, others 0).
fn debounce(config: &Config, channel: &str) -> Duration {
    let inbound = config.messages.inbound.as_ref();
    let ms = inbound
        .and_then(|i| i.by_channel.as_ref())
        .and_then(|m| m.get(channel).copied())
        .or_else(|| inbound.and_then(|i| i.debounce_ms))
        .unwrap_or(if channel == "telegram" { 300 } else { 0 });
    Duration::from_millis(ms.min(60_000))
}

fn key_settings(config: &Config) -> KeySettings {
    KeySettings {
        scope: config.session.scope_mode(),
        dm_scope: config.session.dm_scope(),
        group_scope: config.session.group_scope(),
        identity_links: config.session.identity_links(),
    }
}

struct Built {
    pipeline: PipelineSettings,
    reply_mode: ReplyToMode,
    chunk_mode: ChunkMode,
    preview: bool,
    dm_policy: &'static str,
    allow_from: Vec<String>,
    enabled: bool,
    name: Option<String>,
    text_limit: Option<usize>,
    media_max_mb: Option<f64>,
    debounce: Duration,
    history_limit: usize,
}

fn build_common(
    config: &Config,
    channel: &str,
    merged: &Value,
    extra_groups: Vec<(String, GroupRule)>,
) -> Built {
    let c: Common = serde_json::from_value(merged.clone()).unwrap_or_default();
    let default_group_policy = config
        .channels
        .defaults
        .as_ref()
        .and_then(|d| d.group_policy);
    let mut access = AccessPolicy::from_config(
        c.dm_policy,
        c.allow_from.as_ref(),
        c.group_policy.or(default_group_policy),
        c.group_allow_from.as_ref(),
        c.groups.as_ref(),
        c.require_mention,
    );
    for (id, rule) in extra_groups {
        access.groups.insert(id, rule);
    }
    let implicit = config
        .channels
        .defaults
        .as_ref()
        .and_then(|d| d.implicit_mentions.as_ref());
    let history_limit = c
        .history_limit
        .or_else(|| {
            config
                .messages
                .group_chat
                .as_ref()
                .and_then(|g| g.history_limit)
        })
        .map_or(pincer_channels::history::DEFAULT_HISTORY_LIMIT, |n| {
            n as usize
        })
        .min(pincer_channels::history::MAX_HISTORY_LIMIT);
    let debounce = debounce(config, channel);
    let commands_text = config
        .commands
        .as_ref()
        .and_then(|c| c.text)
        .unwrap_or(true);
    let pipeline = PipelineSettings {
        access,
        mention_patterns: mention_patterns(config),
        debounce,
        history_limit,
        implicit_reply_to_bot: implicit.and_then(|i| i.reply_to_bot).unwrap_or(true),
        implicit_thread_participation: implicit
            .and_then(|i| i.thread_participation)
            .unwrap_or(true),
        keys: key_settings(config),
        commands_text,
        ignore_bots: true,
    };
    let streaming = c.streaming.as_ref();
    let mode = streaming.and_then(|s| s.mode).unwrap_or(match channel {
        // The reference's defaults: Telegram and Slack show progress, Discord does not.
        "discord" => StreamingMode::Off,
        _ => StreamingMode::Progress,
    });
    Built {
        reply_mode: match c.reply_to_mode {
            Some(ReplyToModeConfig::Off) => ReplyToMode::Off,
            Some(ReplyToModeConfig::All) => ReplyToMode::All,
            Some(ReplyToModeConfig::First) | Some(ReplyToModeConfig::Batched) | None => {
                ReplyToMode::First
            }
        },
        chunk_mode: match streaming.and_then(|s| s.chunk_mode) {
            Some(ChunkModeConfig::Newline) => ChunkMode::Newline,
            _ => ChunkMode::Length,
        },
        preview: matches!(mode, StreamingMode::Partial | StreamingMode::Progress),
        dm_policy: dm_policy_str(c.dm_policy),
        allow_from: c.allow_from.iter().flatten().map(entry_text).collect(),
        enabled: c.enabled.unwrap_or(true),
        name: c.name.filter(|n| !n.trim().is_empty()),
        text_limit: c.text_chunk_limit.map(|n| n.max(1) as usize),
        media_max_mb: c.media_max_mb.filter(|m| m.is_finite() && *m > 0.0),
        debounce,
        history_limit,
        pipeline,
    }
}

fn credential(
    merged: &Value,
    key: &str,
    file_key: Option<&str>,
    env_name: Option<&str>,
    field: &str,
    inputs: &SpecInputs<'_>,
) -> (Result<String, String>, TokenSource) {
    if let Some(v) = merged.get(key) {
        let input: Result<SecretInput, _> = serde_json::from_value(v.clone());
        return match input {
            Ok(input) => (
                resolve_secret(&input, field, inputs).and_then(|t| {
                    if t.is_empty() {
                        Err(format!("{field} is empty"))
                    } else {
                        Ok(t)
                    }
                }),
                TokenSource::Config,
            ),
            Err(e) => (Err(format!("{field}: {e}")), TokenSource::Config),
        };
    }
    if let Some(path) = file_key.and_then(|k| merged.get(k)).and_then(Value::as_str) {
        let input = SecretInput::Ref(pincer_config::model::SecretRef {
            source: pincer_config::model::SecretSource::File,
            provider: None,
            id: path.to_string(),
        });
        return (resolve_secret(&input, field, inputs), TokenSource::File);
    }
    if let Some(name) = env_name {
        if let Some(v) = (inputs.env)(name).filter(|v| !v.trim().is_empty()) {
            return (Ok(v.trim().to_string()), TokenSource::Env);
        }
    }
    (
        Err(format!(
            "{field} is not set{}",
            env_name.map_or(String::new(), |e| format!(" (nor {e})"))
        )),
        TokenSource::None,
    )
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// Every account of `config`'s channel blocks.
pub fn build(config: &Config, inputs: &SpecInputs<'_>) -> ChannelSpecs {
    let mut accounts = Vec::new();
    let mut default_accounts = BTreeMap::new();
    let blocks: [(&'static str, Option<Value>); 3] = [
        (
            "telegram",
            config
                .channels
                .telegram
                .as_ref()
                .and_then(|c| serde_json::to_value(c).ok()),
        ),
        (
            "discord",
            config
                .channels
                .discord
                .as_ref()
                .and_then(|c| serde_json::to_value(c).ok()),
        ),
        (
            "slack",
            config
                .channels
                .slack
                .as_ref()
                .and_then(|c| serde_json::to_value(c).ok()),
        ),
    ];
    for (channel, root) in blocks {
        let Some(root) = root else { continue };
        if root.get("enabled").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let (cred_keys, env_token): (&[&str], Option<&str>) = match channel {
            "telegram" => (&["botToken", "tokenFile"], Some("TELEGRAM_BOT_TOKEN")),
            "discord" => (&["token"], Some("DISCORD_BOT_TOKEN")),
            _ => (&["botToken", "appToken"], Some("SLACK_BOT_TOKEN")),
        };
        let has_env = env_token.is_some_and(|e| (inputs.env)(e).is_some_and(|v| !v.is_empty()));
        let ids = account_ids(&root, cred_keys, has_env);
        if let Some(d) = str_field(&root, "defaultAccount") {
            default_accounts.insert(channel.to_string(), normalize_account(&d));
        } else if let Some(first) = ids.first() {
            default_accounts.insert(channel.to_string(), first.clone());
        }
        for account_id in ids {
            let merged = merged_account(&root, account_block(&root, &account_id), cred_keys);
            let is_default = account_id == pincer_sessions::DEFAULT_ACCOUNT_ID;
            let spec = match channel {
                "telegram" => telegram(config, &account_id, &merged, is_default, inputs),
                "discord" => discord(config, &account_id, &merged, is_default, inputs),
                _ => slack(config, &account_id, &merged, is_default, inputs),
            };
            accounts.push(spec);
        }
    }
    ChannelSpecs {
        accounts,
        default_accounts,
    }
}

#[allow(unused_variables)]
fn telegram(
    config: &Config,
    account_id: &str,
    merged: &Value,
    is_default: bool,
    inputs: &SpecInputs<'_>,
) -> AccountSpec {
    let b = build_common(config, "telegram", merged, Vec::new());
    let env = is_default.then_some("TELEGRAM_BOT_TOKEN");
    let (token, source) = credential(
        merged,
        "botToken",
        Some("tokenFile"),
        env,
        "channels.telegram.botToken",
        inputs,
    );
    let api_root =
        str_field(merged, "apiRoot").unwrap_or_else(|| "https://api.telegram.org".into());
    let webhook_url = str_field(merged, "webhookUrl");
    let webhook_path = webhook_url.as_ref().map(|_| {
        let p = str_field(merged, "webhookPath").unwrap_or_else(|| "/telegram-webhook".into());
        if p.starts_with('/') {
            p
        } else {
            format!("/{p}")
        }
    });
    let webhook_secret = match merged.get("webhookSecret") {
        Some(v) => match serde_json::from_value::<SecretInput>(v.clone()) {
            Ok(s) => resolve_secret(&s, "channels.telegram.webhookSecret", inputs).map(Some),
            Err(e) => Err(format!("channels.telegram.webhookSecret: {e}")),
        },
        None => Ok(None),
    };
    let fingerprint = sha(&[
        "telegram",
        token.as_deref().unwrap_or(""),
        &api_root,
        webhook_url.as_deref().unwrap_or(""),
        webhook_secret
            .as_ref()
            .ok()
            .and_then(|s| s.as_deref())
            .unwrap_or(""),
        &format!(
            "{:?}|{:?}|{}|{}",
            b.text_limit,
            b.media_max_mb,
            b.debounce.as_millis(),
            b.history_limit
        ),
    ]);
    #[cfg(feature = "telegram")]
    let adapter = token.and_then(|token| {
        let secret = webhook_secret?;
        let mut s = pincer_channels::telegram::TelegramSettings::new(account_id, &token);
        s.api_root = api_root.clone();
        if let Some(url) = &webhook_url {
            s.mode = pincer_channels::telegram::TelegramMode::Webhook {
                url: url.clone(),
                secret,
            };
        }
        if let Some(l) = b.text_limit {
            s.text_limit = l;
        }
        if let Some(m) = b.media_max_mb {
            s.media_max_mb = m;
        }
        Ok(AdapterSpec::Telegram(s))
    });
    #[cfg(not(feature = "telegram"))]
    let adapter = Err("this build has no telegram support (cargo feature `telegram`)".into());
    AccountSpec {
        channel: "telegram",
        account_id: account_id.to_string(),
        name: b.name,
        enabled: b.enabled,
        adapter,
        fingerprint,
        pipeline: b.pipeline,
        reply_mode: b.reply_mode,
        chunk_mode: b.chunk_mode,
        preview: b.preview,
        mode: if webhook_url.is_some() {
            "webhook"
        } else {
            "polling"
        },
        dm_policy: b.dm_policy,
        allow_from: b.allow_from,
        token_source: source,
        app_token_source: None,
        base_url: api_root,
        webhook_path,
        webhook_url,
    }
}

/// `guilds.<id>` → group rules: a guild without channel entries is allowed as a whole; with
/// channel entries only those channels (and their threads) are.
fn discord_groups(merged: &Value) -> Vec<(String, GroupRule)> {
    let Some(guilds) = merged.get("guilds").cloned().and_then(|g| {
        serde_json::from_value::<BTreeMap<String, pincer_config::model::channels::DiscordGuild>>(g)
            .ok()
    }) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (guild_id, g) in guilds {
        let users: Vec<String> = g.users.iter().flatten().map(entry_text).collect();
        match g.channels.as_ref().filter(|c| !c.is_empty()) {
            None => out.push((
                guild_id.trim().to_string(),
                GroupRule {
                    enabled: true,
                    require_mention: g.require_mention,
                    allow_from: users,
                },
            )),
            Some(channels) => {
                for (channel_id, ch) in channels {
                    let ch_users: Vec<String> = ch.users.iter().flatten().map(entry_text).collect();
                    out.push((
                        channel_id.trim().to_string(),
                        GroupRule {
                            enabled: ch.enabled.unwrap_or(true),
                            require_mention: ch.require_mention.or(g.require_mention),
                            allow_from: if ch_users.is_empty() {
                                users.clone()
                            } else {
                                ch_users
                            },
                        },
                    ));
                }
            }
        }
    }
    out
}

#[allow(unused_variables)]
fn discord(
    config: &Config,
    account_id: &str,
    merged: &Value,
    is_default: bool,
    inputs: &SpecInputs<'_>,
) -> AccountSpec {
    let b = build_common(config, "discord", merged, discord_groups(merged));
    let env = is_default.then_some("DISCORD_BOT_TOKEN");
    let (token, source) = credential(merged, "token", None, env, "channels.discord.token", inputs);
    let api_base =
        str_field(merged, "apiBase").unwrap_or_else(|| "https://discord.com/api/v10".into());
    let gateway_url = str_field(merged, "gatewayUrl");
    let max_lines = merged
        .get("maxLinesPerMessage")
        .and_then(Value::as_u64)
        .map(|n| n.max(1) as usize);
    let fingerprint = sha(&[
        "discord",
        token.as_deref().unwrap_or(""),
        &api_base,
        gateway_url.as_deref().unwrap_or(""),
        &format!(
            "{:?}|{:?}|{:?}|{}|{}",
            b.text_limit,
            b.media_max_mb,
            max_lines,
            b.debounce.as_millis(),
            b.history_limit
        ),
    ]);
    #[cfg(feature = "discord")]
    let adapter = token.map(|token| {
        let mut s = pincer_channels::discord::DiscordSettings::new(account_id, &token);
        s.api_base = api_base.clone();
        s.gateway_url = gateway_url.clone();
        if let Some(l) = b.text_limit {
            s.text_limit = l.min(2000);
        }
        if let Some(m) = b.media_max_mb {
            s.media_max_mb = m;
        }
        if let Some(l) = max_lines {
            s.max_lines = l;
        }
        AdapterSpec::Discord(s)
    });
    #[cfg(not(feature = "discord"))]
    let adapter = Err("this build has no discord support (cargo feature `discord`)".into());
    AccountSpec {
        channel: "discord",
        account_id: account_id.to_string(),
        name: b.name,
        enabled: b.enabled,
        adapter,
        fingerprint,
        pipeline: b.pipeline,
        reply_mode: b.reply_mode,
        chunk_mode: b.chunk_mode,
        preview: b.preview,
        mode: "gateway",
        dm_policy: b.dm_policy,
        allow_from: b.allow_from,
        token_source: source,
        app_token_source: None,
        base_url: api_base,
        webhook_path: None,
        webhook_url: None,
    }
}

/// `channels.<id>` of a Slack block → group rules.
fn slack_groups(merged: &Value) -> Vec<(String, GroupRule)> {
    let Some(channels) = merged.get("channels").cloned().and_then(|c| {
        serde_json::from_value::<BTreeMap<String, pincer_config::model::channels::SlackChannel>>(c)
            .ok()
    }) else {
        return Vec::new();
    };
    channels
        .into_iter()
        .map(|(id, ch)| {
            let mut allow: Vec<String> = ch.users.iter().flatten().map(entry_text).collect();
            allow.extend(ch.allow_from.iter().flatten().map(entry_text));
            (
                id.trim().to_string(),
                GroupRule {
                    enabled: ch.enabled.unwrap_or(true),
                    require_mention: ch.require_mention,
                    allow_from: allow,
                },
            )
        })
        .collect()
}

#[allow(unused_variables)]
fn slack(
    config: &Config,
    account_id: &str,
    merged: &Value,
    is_default: bool,
    inputs: &SpecInputs<'_>,
) -> AccountSpec {
    let b = build_common(config, "slack", merged, slack_groups(merged));
    let (bot, bot_source) = credential(
        merged,
        "botToken",
        None,
        is_default.then_some("SLACK_BOT_TOKEN"),
        "channels.slack.botToken",
        inputs,
    );
    let (app, app_source) = credential(
        merged,
        "appToken",
        None,
        is_default.then_some("SLACK_APP_TOKEN"),
        "channels.slack.appToken",
        inputs,
    );
    let api_base = str_field(merged, "apiBase").unwrap_or_else(|| "https://slack.com/api".into());
    let http_mode = merged.get("mode").and_then(Value::as_str) == Some("http")
        || merged.get("mode").and_then(Value::as_str) == Some("relay");
    let fingerprint = sha(&[
        "slack",
        bot.as_deref().unwrap_or(""),
        app.as_deref().unwrap_or(""),
        &api_base,
        &format!(
            "{:?}|{:?}|{}|{}|{http_mode}",
            b.text_limit,
            b.media_max_mb,
            b.debounce.as_millis(),
            b.history_limit
        ),
    ]);
    #[cfg(feature = "slack")]
    let adapter = if http_mode {
        Err("channels.slack.mode: only \"socket\" (Socket Mode) is implemented by Pincer".into())
    } else {
        bot.and_then(|bot| app.map(|app| (bot, app)))
            .map(|(bot, app)| {
                let mut s = pincer_channels::slack::SlackSettings::new(account_id, &bot, &app);
                s.api_base = api_base.clone();
                if let Some(l) = b.text_limit {
                    s.text_limit = l;
                }
                if let Some(m) = b.media_max_mb {
                    s.media_max_mb = m;
                }
                AdapterSpec::Slack(s)
            })
    };
    #[cfg(not(feature = "slack"))]
    let adapter = Err("this build has no slack support (cargo feature `slack`)".into());
    AccountSpec {
        channel: "slack",
        account_id: account_id.to_string(),
        name: b.name,
        enabled: b.enabled,
        adapter,
        fingerprint,
        pipeline: b.pipeline,
        reply_mode: b.reply_mode,
        chunk_mode: b.chunk_mode,
        preview: b.preview,
        mode: "socket",
        dm_policy: b.dm_policy,
        allow_from: b.allow_from,
        token_source: bot_source,
        app_token_source: Some(app_source),
        base_url: api_base,
        webhook_path: None,
        webhook_url: None,
    }
}

/// The bindings router for the config in force (fail closed with several agents).
pub fn router(
    config: &Config,
    default_accounts: &BTreeMap<String, String>,
) -> pincer_channels::Router {
    let agents: Vec<String> = config
        .agents
        .entries
        .keys()
        .map(|k| pincer_sessions::normalize_agent_id(k))
        .collect();
    let mut router = pincer_channels::Router::new(&config.bindings, &agents, None);
    for (channel, account) in default_accounts {
        router = router.with_default_account(channel, account);
    }
    router
}

/// `commands.ownerAllowFrom` admits `channel:sender` (or the bare id, or `*`).
pub fn is_owner(config: &Config, channel: &str, sender_id: &str) -> bool {
    let Some(owners) = config
        .commands
        .as_ref()
        .and_then(|c| c.owner_allow_from.as_ref())
    else {
        return false;
    };
    owners.iter().map(entry_text).any(|e| {
        e == "*"
            || e.eq_ignore_ascii_case(sender_id)
            || e.split_once(':').is_some_and(|(c, id)| {
                c.eq_ignore_ascii_case(channel) && id.trim().eq_ignore_ascii_case(sender_id)
            })
    })
}

/// `commands.allowFrom` (when set, the only source) admits the sender's commands.
pub fn commands_allowed(config: &Config, channel: &str, sender_id: &str) -> bool {
    let Some(map) = config.commands.as_ref().and_then(|c| c.allow_from.as_ref()) else {
        return true;
    };
    [channel, "*"]
        .iter()
        .filter_map(|k| map.get(*k))
        .flatten()
        .map(entry_text)
        .any(|e| {
            e == "*"
                || e.eq_ignore_ascii_case(sender_id)
                || e.split_once(':').is_some_and(|(c, id)| {
                    c.eq_ignore_ascii_case(channel) && id.eq_ignore_ascii_case(sender_id)
                })
        })
}

/// Whether any command owner is configured (`channels.pairing.list commandOwnerConfigured`).
pub fn has_command_owner(config: &Config) -> bool {
    config
        .commands
        .as_ref()
        .and_then(|c| c.owner_allow_from.as_ref())
        .is_some_and(|o| !o.is_empty())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn cfg(v: Value) -> Config {
        serde_json::from_value(v).unwrap()
    }

    fn specs(c: &Config, env: &[(&str, &str)]) -> ChannelSpecs {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        build(
            c,
            &SpecInputs {
                env: &lookup,
                config_dir: Path::new("/nonexistent"),
            },
        )
    }

    #[test]
    fn root_block_is_the_default_account_and_named_accounts_inherit_policy_not_tokens() {
        let c = cfg(serde_json::json!({"channels": {"telegram": {
            "botToken": "1:root", "dmPolicy": "allowlist", "allowFrom": [42],
            "accounts": {"Work": {"botToken": "2:work"}}
        }}}));
        let s = specs(&c, &[]);
        let ids: Vec<&str> = s.accounts.iter().map(|a| a.account_id.as_str()).collect();
        assert_eq!(ids, vec!["default", "work"]);
        let work = &s.accounts[1];
        assert_eq!(
            (work.dm_policy, work.allow_from.clone()),
            ("allowlist", vec!["42".to_string()])
        );
        assert!(work.adapter.is_ok());
        assert_ne!(s.accounts[0].fingerprint, work.fingerprint);
        assert_eq!(
            s.default_accounts.get("telegram").map(String::as_str),
            Some("default")
        );
    }

    #[test]
    fn missing_tokens_are_clear_errors_and_env_tokens_fill_only_the_default_account() {
        let c =
            cfg(serde_json::json!({"channels": {"slack": {"appToken": "xapp-1"}, "discord": {}}}));
        let s = specs(&c, &[]);
        let slack = s.accounts.iter().find(|a| a.channel == "slack").unwrap();
        let err = slack.adapter.as_ref().err().unwrap();
        assert!(err.contains("channels.slack.botToken is not set"), "{err}");
        let s = specs(
            &c,
            &[("DISCORD_BOT_TOKEN", "abc"), ("SLACK_BOT_TOKEN", "xoxb-1")],
        );
        let discord = s.accounts.iter().find(|a| a.channel == "discord").unwrap();
        assert!(discord.adapter.is_ok());
        assert_eq!(discord.token_source, TokenSource::Env);
        assert!(s
            .accounts
            .iter()
            .find(|a| a.channel == "slack")
            .unwrap()
            .adapter
            .is_ok());
    }

    #[test]
    fn secret_refs_resolve_and_a_missing_env_ref_names_the_field() {
        let c = cfg(serde_json::json!({"channels": {"telegram": {
            "botToken": {"source": "env", "id": "TG_TOKEN"}}}}));
        let s = specs(&c, &[]);
        let err = s.accounts[0].adapter.as_ref().err().unwrap();
        assert!(
            err.contains("channels.telegram.botToken") && err.contains("TG_TOKEN"),
            "{err}"
        );
        let s = specs(&c, &[("TG_TOKEN", "9:abc")]);
        assert!(s.accounts[0].adapter.is_ok());
    }

    #[test]
    fn discord_guild_channels_make_an_allowlist_and_pipeline_settings_follow_config() {
        let c = cfg(serde_json::json!({
        "messages": {"groupChat": {"mentionPatterns": ["\\bclaw\\b"]}, "inbound": {"byChannel": {"discord": 50}}},
        "session": {"dmScope": "per-channel-peer"},
        "channels": {"discord": {"token": "t", "guilds": {
            "G1": {"requireMention": false},
            "G2": {"channels": {"C9": {"users": ["u1"]}}}
        }}}}));
        let s = specs(&c, &[]);
        let p = &s.accounts[0].pipeline;
        assert!(p.access.groups.contains_key("G1") && p.access.groups.contains_key("C9"));
        assert!(
            !p.access.groups.contains_key("G2"),
            "channel entries restrict the guild"
        );
        assert_eq!(p.access.groups["C9"].allow_from, vec!["u1".to_string()]);
        assert_eq!(p.debounce, Duration::from_millis(50));
        assert!(p.mention_patterns[0].is_match("hey CLAW, look"));
        assert_eq!(p.keys.dm_scope, pincer_sessions::DmScope::PerChannelPeer);
        assert!(
            !s.accounts[0].preview,
            "discord streams no preview by default"
        );
    }

    #[test]
    fn owners_and_command_allowlists() {
        let c = cfg(
            serde_json::json!({"commands": {"ownerAllowFrom": ["telegram:42"], "allowFrom": {"discord": ["7"]}}}),
        );
        assert!(is_owner(&c, "telegram", "42") && !is_owner(&c, "discord", "42"));
        assert!(commands_allowed(&c, "discord", "7") && !commands_allowed(&c, "discord", "8"));
        assert!(
            !commands_allowed(&c, "telegram", "42"),
            "allowFrom is the sole source when set"
        );
        assert!(commands_allowed(&Config::default(), "telegram", "1"));
    }
}
