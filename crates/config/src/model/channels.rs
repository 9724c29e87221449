//! `channels.*`: the shared per-channel shape plus Telegram/Discord/Slack specifics.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::secret::SecretInput;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DmPolicy {
    Pairing,
    Allowlist,
    Open,
    Disabled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupPolicy {
    Open,
    Disabled,
    Allowlist,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContextVisibility {
    All,
    Allowlist,
    AllowlistQuote,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplyToMode {
    Off,
    First,
    All,
    Batched,
}

/// Allow-list entry: a platform id as text or number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum AllowEntry {
    Text(String),
    Number(i64),
}

section!(HeartbeatVisibility {
    show_ok: bool,
    show_alerts: bool,
    use_indicator: bool,
});

section!(ImplicitMentions {
    reply_to_bot: bool,
    quoted_bot: bool,
    thread_participation: bool,
});

section!(
    /// `channels.defaults`
    ChannelDefaults {
        group_policy: GroupPolicy,
        context_visibility: ContextVisibility,
        implicit_mentions: ImplicitMentions,
        heartbeat_visibility: HeartbeatVisibility,
    }
);

section!(
    /// `channels.<name>.groups.<id>`
    GroupSettings {
        require_mention: bool,
        allow_from: Vec<AllowEntry>,
        system_prompt: String,
        skills: Vec<String>,
        enabled: bool,
    }
);

section!(DmSettings { history_limit: u32 });

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StreamingMode {
    Off,
    Partial,
    Block,
    Progress,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChunkModeConfig {
    Length,
    Newline,
}

section!(
    /// `channels.<name>.streaming`: the streaming preview (edited in place while the model
    /// writes) and how the final reply is chunked.
    StreamingSettings {
        mode: StreamingMode,
        chunk_mode: ChunkModeConfig,
    }
);

macro_rules! channel_struct {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty),* $(,)? }) => {
        section!($(#[$m])* $name {
            enabled: bool,
            name: String,
            dm_policy: DmPolicy,
            allow_from: Vec<AllowEntry>,
            group_policy: GroupPolicy,
            group_allow_from: Vec<AllowEntry>,
            groups: BTreeMap<String, GroupSettings>,
            context_visibility: ContextVisibility,
            history_limit: u32,
            dm_history_limit: u32,
            dms: BTreeMap<String, DmSettings>,
            text_chunk_limit: u32,
            media_max_mb: f64,
            reply_to_mode: ReplyToMode,
            response_prefix: String,
            config_writes: bool,
            heartbeat_visibility: HeartbeatVisibility,
            join_intro: bool,
            ack_reaction: String,
            default_account: String,
            streaming: StreamingSettings,
            $($(#[$fm])* $field: $ty,)*
        });
    };
}

channel_struct!(
    /// One Telegram account (`channels.telegram.accounts.<id>`).
    TelegramAccount {
        bot_token: SecretInput,
        token_file: String,
        webhook_url: String,
        webhook_secret: SecretInput,
        webhook_path: String,
        webhook_host: String,
        webhook_port: u16,
        api_root: String,
        proxy: String,
    }
);

channel_struct!(
    /// `channels.telegram`
    TelegramConfig {
        bot_token: SecretInput,
        token_file: String,
        webhook_url: String,
        webhook_secret: SecretInput,
        webhook_path: String,
        webhook_host: String,
        webhook_port: u16,
        api_root: String,
        proxy: String,
        accounts: BTreeMap<String, TelegramAccount>,
    }
);

section!(
    /// `channels.discord.guilds.<guildId>.channels.<channelId>`
    DiscordGuildChannel {
        enabled: bool,
        require_mention: bool,
        users: Vec<AllowEntry>,
    }
);

section!(
    /// `channels.discord.guilds.<guildId>`: listing a guild allows it; listing channels
    /// under it restricts the guild to those channels.
    DiscordGuild {
        require_mention: bool,
        users: Vec<AllowEntry>,
        roles: Vec<AllowEntry>,
        slug: String,
        channels: BTreeMap<String, DiscordGuildChannel>,
    }
);

section!(
    /// `channels.slack.channels.<channelId>`
    SlackChannel {
        enabled: bool,
        require_mention: bool,
        users: Vec<AllowEntry>,
        allow_from: Vec<AllowEntry>,
    }
);

channel_struct!(
    /// One Discord account.
    DiscordAccount {
        token: SecretInput,
        application_id: String,
        proxy: String,
        /// Pincer: REST base URL (default `https://discord.com/api/v10`; tests, proxies).
        api_base: String,
        /// Pincer: Gateway WebSocket URL (default: asked from `GET /gateway/bot`).
        gateway_url: String,
        max_lines_per_message: u32,
        guilds: BTreeMap<String, DiscordGuild>,
    }
);

channel_struct!(
    /// `channels.discord`
    DiscordConfig {
        token: SecretInput,
        application_id: String,
        proxy: String,
        /// Pincer: REST base URL (default `https://discord.com/api/v10`; tests, proxies).
        api_base: String,
        /// Pincer: Gateway WebSocket URL (default: asked from `GET /gateway/bot`).
        gateway_url: String,
        max_lines_per_message: u32,
        guilds: BTreeMap<String, DiscordGuild>,
        accounts: BTreeMap<String, DiscordAccount>,
    }
);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SlackMode {
    Socket,
    Http,
    Relay,
}

channel_struct!(
    /// One Slack account.
    SlackAccount {
        mode: SlackMode,
        bot_token: SecretInput,
        app_token: SecretInput,
        signing_secret: SecretInput,
        webhook_path: String,
        require_mention: bool,
        /// Pincer: Web API base URL (default `https://slack.com/api`; tests, proxies).
        api_base: String,
        channels: BTreeMap<String, SlackChannel>,
    }
);

channel_struct!(
    /// `channels.slack`
    SlackConfig {
        mode: SlackMode,
        bot_token: SecretInput,
        app_token: SecretInput,
        signing_secret: SecretInput,
        webhook_path: String,
        require_mention: bool,
        /// Pincer: Web API base URL (default `https://slack.com/api`; tests, proxies).
        api_base: String,
        channels: BTreeMap<String, SlackChannel>,
        accounts: BTreeMap<String, SlackAccount>,
    }
);

section!(
    /// `channels.*`
    ChannelsConfig {
        defaults: ChannelDefaults,
        /// `channels.modelByChannel.<channel>.<peerOrGroupId> = "provider/model"`
        model_by_channel: BTreeMap<String, BTreeMap<String, String>>,
        telegram: TelegramConfig,
        discord: DiscordConfig,
        slack: SlackConfig,
    }
);
