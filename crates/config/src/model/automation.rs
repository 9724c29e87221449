//! `cron` and `hooks`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::secret::SecretInput;

/// A duration text such as `"30d"`, or `false` to disable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RetentionSetting {
    Duration(String),
    Disabled(bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum FailureAlertMode {
    Announce,
    Webhook,
}

section!(FailureAlert {
    enabled: bool,
    after: u32,
    cooldown_ms: u64,
    include_skipped: bool,
    mode: FailureAlertMode,
    channel: String,
    to: String,
    account_id: String,
});

section!(CronTriggers { enabled: bool });

section!(
    /// `cron.webhookSsrfPolicy`: exceptions to the SSRF guard for webhook delivery.
    WebhookSsrfPolicy {
        dangerously_allow_private_network: bool,
        allow_rfc2544_benchmark_range: bool,
        allow_ipv6_unique_local_range: bool,
        allowed_hostnames: Vec<String>,
        blocked_hostnames: Vec<String>,
    }
);

section!(
    /// `cron`
    CronConfig {
        enabled: bool,
        skip_missed_jobs: bool,
        triggers: CronTriggers,
        webhook_token: SecretInput,
        webhook_ssrf_policy: WebhookSsrfPolicy,
        session_retention: RetentionSetting,
        failure_alert: FailureAlert,
    }
);

section!(HookMappingMatch {
    path: String,
    source: String,
});

section!(
    /// `hooks.mappings[].transform` (a JavaScript module in the reference).
    HookTransform {
        module: String,
        export: String,
    }
);

section!(
    /// `hooks.mappings[]`
    HookMapping {
        id: String,
        #[serde(rename = "match")]
        matcher: HookMappingMatch,
        action: String,
        wake_mode: String,
        name: String,
        agent_id: String,
        session_key: String,
        session_mode: String,
        message_template: String,
        text_template: String,
        for_each: String,
        deliver: bool,
        allow_unsafe_external_content: bool,
        channel: String,
        to: String,
        model: String,
        thinking: String,
        timeout_seconds: u64,
        transform: HookTransform,
    }
);

section!(InternalHookEntry { enabled: bool });

section!(InternalHooks {
    enabled: bool,
    entries: BTreeMap<String, InternalHookEntry>,
});

section!(
    /// `hooks`
    HooksConfig {
        enabled: bool,
        path: String,
        token: String,
        default_session_key: String,
        allow_request_session_key: bool,
        allowed_session_key_prefixes: Vec<String>,
        allowed_agent_ids: Vec<String>,
        presets: Vec<String>,
        transforms_dir: String,
        mappings: Vec<HookMapping>,
        internal: InternalHooks,
    }
);
