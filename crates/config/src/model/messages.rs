//! `messages.*`

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum QueueMode {
    Steer,
    Followup,
    Collect,
    Interrupt,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum QueueDrop {
    Old,
    New,
    Summarize,
}

section!(QueueConfig {
    mode: QueueMode,
    by_channel: BTreeMap<String, QueueMode>,
    debounce_ms_by_channel: BTreeMap<String, u64>,
    cap: u32,
    drop: QueueDrop,
});

section!(InboundConfig {
    debounce_ms: u64,
    by_channel: BTreeMap<String, u64>,
});

section!(GroupChatConfig {
    mention_patterns: Vec<String>,
    #[schemars(range(max = 200))]
    history_limit: u32,
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AckReactionScope {
    GroupMentions,
    GroupAll,
    Direct,
    All,
    Off,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResponseUsage {
    On,
    Off,
    Tokens,
    Full,
}

section!(StatusReactions { enabled: bool });

section!(
    /// `messages.*`
    MessagesConfig {
        queue: QueueConfig,
        inbound: InboundConfig,
        group_chat: GroupChatConfig,
        response_prefix: String,
        ack_reaction: String,
        ack_reaction_scope: AckReactionScope,
        status_reactions: StatusReactions,
        response_usage: ResponseUsage,
    }
);
