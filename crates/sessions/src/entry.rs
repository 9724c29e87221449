//! The per-key session record (`SessionEntry`, runtime spec §2.4), per-session overrides
//! (`sessions.patch`) and usage counters.
//!
//! Known fields are typed; every other field of the reference's shape is kept verbatim in
//! `extra`, so an entry written by a newer peer survives a read-modify-write here.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// Allowed values of the per-session override fields.
pub const THINKING_LEVELS: &[&str] = &[
    "off", "minimal", "low", "medium", "high", "xhigh", "adaptive", "max", "ultra",
];
pub const VERBOSE_LEVELS: &[&str] = &["off", "on", "full"];
pub const REASONING_LEVELS: &[&str] = &["off", "on", "stream"];
pub const ELEVATED_LEVELS: &[&str] = &["off", "on", "ask", "full"];
pub const SEND_POLICIES: &[&str] = &["allow", "deny"];
pub const GROUP_ACTIVATIONS: &[&str] = &["mention", "always"];
pub const RESPONSE_USAGE: &[&str] = &["on", "off", "tokens", "full"];
pub const QUEUE_MODES: &[&str] = &["steer", "followup", "collect", "interrupt"];
pub const MAX_LABEL_LEN: usize = 100;

macro_rules! opt {
    ($($(#[$a:meta])* $name:ident : $ty:ty => $json:literal),* $(,)?) => {
        /// One session key's record (the value of the reference's `session_nodes.entry_json`).
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
        pub struct SessionEntry {
            #[serde(rename = "sessionId")]
            pub session_id: String,
            /// Last change of any kind (epoch ms).
            #[serde(rename = "updatedAt")]
            pub updated_at: i64,
            $(
                $(#[$a])*
                #[serde(rename = $json, default, skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )*
            /// Every field this type does not model, preserved verbatim.
            #[serde(flatten)]
            pub extra: Map<String, Value>,
        }
    };
}

opt! {
    /// When this sessionId started (daily reset freshness).
    session_started_at: i64 => "sessionStartedAt",
    /// Last user interaction (idle reset freshness).
    last_interaction_at: i64 => "lastInteractionAt",
    last_activity_at: i64 => "lastActivityAt",
    created_at: i64 => "createdAt",
    created_via: String => "createdVia",
    display_name: String => "displayName",
    label: String => "label",
    chat_type: String => "chatType",
    channel: String => "channel",
    status: String => "status",
    started_at: i64 => "startedAt",
    ended_at: i64 => "endedAt",
    runtime_ms: i64 => "runtimeMs",
    last_run_id: String => "lastRunId",
    aborted_last_run: bool => "abortedLastRun",
    system_sent: bool => "systemSent",
    model: String => "model",
    model_provider: String => "modelProvider",
    context_tokens: u64 => "contextTokens",
    input_tokens: u64 => "inputTokens",
    output_tokens: u64 => "outputTokens",
    cache_read: u64 => "cacheRead",
    cache_write: u64 => "cacheWrite",
    total_tokens: u64 => "totalTokens",
    total_tokens_fresh: bool => "totalTokensFresh",
    #[serde(serialize_with = "ser_opt_number")]
    estimated_cost_usd: f64 => "estimatedCostUsd",
    thinking_level: String => "thinkingLevel",
    verbose_level: String => "verboseLevel",
    reasoning_level: String => "reasoningLevel",
    elevated_level: String => "elevatedLevel",
    fast_mode: Value => "fastMode",
    provider_override: String => "providerOverride",
    model_override: String => "modelOverride",
    model_override_source: String => "modelOverrideSource",
    group_activation: String => "groupActivation",
    send_policy: String => "sendPolicy",
    queue_mode: String => "queueMode",
    response_usage: String => "responseUsage",
    compaction_count: u64 => "compactionCount",
    spawned_by: String => "spawnedBy",
    parent_session_key: String => "parentSessionKey",
    spawn_depth: u32 => "spawnDepth",
    archived_at: i64 => "archivedAt",
    pinned_at: i64 => "pinnedAt",
    last_read_at: i64 => "lastReadAt",
    marked_unread_at: i64 => "markedUnreadAt",
    /// Pincer extension: cumulative usage over the key's lifetime (the reference's
    /// `inputTokens`/`outputTokens`/... are last-run snapshots).
    usage_totals: UsageTotals => "usageTotals",
}

/// Cumulative usage counters (Pincer extension field `usageTotals`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UsageTotals {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    #[serde(serialize_with = "ser_number")]
    pub cost_usd: f64,
    pub runs: u64,
}

/// Integral floats serialise as integers (`0`, not `0.0`), like the reference's JSON.
fn ser_number<S: serde::Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        s.serialize_i64(*v as i64)
    } else {
        s.serialize_f64(*v)
    }
}

fn ser_opt_number<S: serde::Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => ser_number(v, s),
        None => s.serialize_none(),
    }
}

/// The usage of one finished run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct UsageReport {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    /// Prompt size of the run, when the provider reports it.
    pub total_tokens: Option<u64>,
    pub cost_usd: f64,
}

impl SessionEntry {
    /// A fresh record for a new sessionId, created at `now_ms`.
    pub fn new(session_id: impl Into<String>, now_ms: i64) -> Self {
        SessionEntry {
            session_id: session_id.into(),
            updated_at: now_ms,
            session_started_at: Some(now_ms),
            created_at: Some(now_ms),
            ..SessionEntry::default()
        }
    }

    /// The entry of the next sessionId of the same key (`/new`, daily/idle rollover,
    /// `sessions.reset`): user choices (label, display name, per-session overrides, chat
    /// metadata, lineage, UI flags) carry over; run state (usage snapshot, status, timings,
    /// context budget and other run-derived fields) starts empty.
    pub fn rotated(&self, new_session_id: impl Into<String>, now_ms: i64) -> SessionEntry {
        let mut next = SessionEntry::new(new_session_id, now_ms);
        next.created_at = self.created_at.or(Some(now_ms));
        next.created_via.clone_from(&self.created_via);
        next.display_name.clone_from(&self.display_name);
        next.label.clone_from(&self.label);
        next.chat_type.clone_from(&self.chat_type);
        next.channel.clone_from(&self.channel);
        next.thinking_level.clone_from(&self.thinking_level);
        next.verbose_level.clone_from(&self.verbose_level);
        next.reasoning_level.clone_from(&self.reasoning_level);
        next.elevated_level.clone_from(&self.elevated_level);
        next.fast_mode.clone_from(&self.fast_mode);
        next.provider_override.clone_from(&self.provider_override);
        next.model_override.clone_from(&self.model_override);
        next.model_override_source
            .clone_from(&self.model_override_source);
        next.group_activation.clone_from(&self.group_activation);
        next.send_policy.clone_from(&self.send_policy);
        next.queue_mode.clone_from(&self.queue_mode);
        next.response_usage.clone_from(&self.response_usage);
        next.spawned_by.clone_from(&self.spawned_by);
        next.parent_session_key.clone_from(&self.parent_session_key);
        next.spawn_depth = self.spawn_depth;
        next.pinned_at = self.pinned_at;
        next.usage_totals.clone_from(&self.usage_totals);
        if let Some(delivery) = self.extra.get("delivery") {
            next.extra.insert("delivery".to_string(), delivery.clone());
        }
        next
    }

    /// Records a run's usage: the reference-compatible last-run snapshot fields plus the
    /// cumulative `usageTotals`.
    pub fn record_usage(&mut self, usage: &UsageReport, now_ms: i64) {
        self.input_tokens = Some(usage.input);
        self.output_tokens = Some(usage.output);
        self.cache_read = Some(usage.cache_read);
        self.cache_write = Some(usage.cache_write);
        self.total_tokens = Some(usage.total_tokens.unwrap_or(usage.input + usage.cache_read));
        self.total_tokens_fresh = Some(usage.total_tokens.is_some());
        self.estimated_cost_usd = Some(self.estimated_cost_usd.unwrap_or(0.0) + usage.cost_usd);
        let totals = self.usage_totals.get_or_insert_with(UsageTotals::default);
        totals.input += usage.input;
        totals.output += usage.output;
        totals.cache_read += usage.cache_read;
        totals.cache_write += usage.cache_write;
        totals.cost_usd += usage.cost_usd;
        totals.runs += 1;
        self.updated_at = self.updated_at.max(now_ms);
    }

    /// Applies a `sessions.patch`; returns the names of the fields that changed.
    pub fn apply_patch(
        &mut self,
        patch: &SessionPatch,
        now_ms: i64,
    ) -> Result<Vec<&'static str>, PatchError> {
        patch.validate()?;
        let mut changed = Vec::new();
        fn set<T: PartialEq + Clone>(
            slot: &mut Option<T>,
            value: &Option<Option<T>>,
            name: &'static str,
            changed: &mut Vec<&'static str>,
        ) {
            if let Some(v) = value {
                if slot != v {
                    slot.clone_from(v);
                    changed.push(name);
                }
            }
        }
        let label = patch
            .label
            .as_ref()
            .map(|l| l.as_ref().map(|s| s.trim().to_string()));
        set(&mut self.label, &label, "label", &mut changed);
        set(
            &mut self.display_name,
            &patch.display_name,
            "displayName",
            &mut changed,
        );
        set(
            &mut self.thinking_level,
            &patch.thinking_level,
            "thinkingLevel",
            &mut changed,
        );
        set(
            &mut self.verbose_level,
            &patch.verbose_level,
            "verboseLevel",
            &mut changed,
        );
        set(
            &mut self.reasoning_level,
            &patch.reasoning_level,
            "reasoningLevel",
            &mut changed,
        );
        set(
            &mut self.elevated_level,
            &patch.elevated_level,
            "elevatedLevel",
            &mut changed,
        );
        set(
            &mut self.send_policy,
            &patch.send_policy,
            "sendPolicy",
            &mut changed,
        );
        set(
            &mut self.group_activation,
            &patch.group_activation,
            "groupActivation",
            &mut changed,
        );
        set(
            &mut self.response_usage,
            &patch.response_usage,
            "responseUsage",
            &mut changed,
        );
        set(
            &mut self.queue_mode,
            &patch.queue_mode,
            "queueMode",
            &mut changed,
        );
        set(
            &mut self.fast_mode,
            &patch.fast_mode,
            "fastMode",
            &mut changed,
        );
        if let Some(model) = &patch.model {
            let (provider, model_id) = match model {
                Some(m) => match m.split_once('/') {
                    Some((p, id)) => (Some(p.to_string()), Some(id.to_string())),
                    None => (None, Some(m.clone())),
                },
                None => (None, None),
            };
            let source = model_id.as_ref().map(|_| "user".to_string());
            if self.provider_override != provider || self.model_override != model_id {
                self.provider_override = provider;
                self.model_override = model_id;
                self.model_override_source = source;
                changed.push("model");
            }
        }
        let mut flag = |slot: &mut Option<i64>, value: Option<bool>, name: &'static str| {
            if let Some(on) = value {
                let next = if on { slot.or(Some(now_ms)) } else { None };
                if *slot != next {
                    *slot = next;
                    changed.push(name);
                }
            }
        };
        flag(&mut self.archived_at, patch.archived, "archived");
        flag(&mut self.pinned_at, patch.pinned, "pinned");
        if let Some(unread) = patch.unread {
            if unread {
                self.marked_unread_at = Some(now_ms);
            } else {
                self.marked_unread_at = None;
                self.last_read_at = Some(now_ms);
            }
            changed.push("unread");
        }
        if !changed.is_empty() {
            self.updated_at = self.updated_at.max(now_ms);
        }
        Ok(changed)
    }
}

/// `sessions.patch` params that change the stored entry. Each field is
/// absent (keep), `null` (clear, back to inherited) or a value (set).
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionPatch {
    #[serde(default, deserialize_with = "double_option")]
    pub label: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub thinking_level: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub verbose_level: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub reasoning_level: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub elevated_level: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub send_policy: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub group_activation: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub response_usage: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub queue_mode: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    pub fast_mode: Option<Option<Value>>,
    /// `"provider/model"` (or a bare model id); sets `providerOverride`/`modelOverride`.
    #[serde(default, deserialize_with = "double_option")]
    pub model: Option<Option<String>>,
    #[serde(default)]
    pub archived: Option<bool>,
    #[serde(default)]
    pub pinned: Option<bool>,
    #[serde(default)]
    pub unread: Option<bool>,
}

fn double_option<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// A patch value the entry cannot take.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("invalid {field} {value:?}: allowed values are {allowed}")]
    BadValue {
        field: &'static str,
        value: String,
        allowed: String,
    },
    #[error("label is longer than {MAX_LABEL_LEN} characters")]
    LabelTooLong,
    #[error("label must not be empty (send null to clear it)")]
    EmptyLabel,
    #[error("invalid fastMode: expected true, false or \"auto\"")]
    BadFastMode,
}

impl SessionPatch {
    /// Checks every enum-valued field against the allowed values.
    pub fn validate(&self) -> Result<(), PatchError> {
        fn check(
            field: &'static str,
            v: &Option<Option<String>>,
            allowed: &[&str],
        ) -> Result<(), PatchError> {
            match v {
                Some(Some(value)) if !allowed.contains(&value.as_str()) => {
                    Err(PatchError::BadValue {
                        field,
                        value: value.clone(),
                        allowed: allowed.join(", "),
                    })
                }
                _ => Ok(()),
            }
        }
        check("thinkingLevel", &self.thinking_level, THINKING_LEVELS)?;
        check("verboseLevel", &self.verbose_level, VERBOSE_LEVELS)?;
        check("reasoningLevel", &self.reasoning_level, REASONING_LEVELS)?;
        check("elevatedLevel", &self.elevated_level, ELEVATED_LEVELS)?;
        check("sendPolicy", &self.send_policy, SEND_POLICIES)?;
        check("groupActivation", &self.group_activation, GROUP_ACTIVATIONS)?;
        check("responseUsage", &self.response_usage, RESPONSE_USAGE)?;
        check("queueMode", &self.queue_mode, QUEUE_MODES)?;
        if let Some(Some(label)) = &self.label {
            let t = label.trim();
            if t.is_empty() {
                return Err(PatchError::EmptyLabel);
            }
            if t.chars().count() > MAX_LABEL_LEN {
                return Err(PatchError::LabelTooLong);
            }
        }
        if let Some(Some(fast)) = &self.fast_mode {
            let ok = fast.is_boolean() || fast.as_str() == Some("auto");
            if !ok {
                return Err(PatchError::BadFastMode);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const SAMPLE: &str = include_str!("../../../testdata/spec-samples/session-entry.json");

    #[test]
    fn reference_entry_round_trips() {
        let original: Value = serde_json::from_str(SAMPLE).unwrap();
        let entry: SessionEntry = serde_json::from_str(SAMPLE).unwrap();
        assert_eq!(entry.session_id, "942fae30-28da-4f49-8112-c2d858d7623b");
        assert_eq!(entry.updated_at, 1795236409134);
        assert_eq!(entry.session_started_at, Some(1795236407244));
        assert_eq!(entry.context_tokens, Some(128000));
        assert!(entry.extra.contains_key("contextBudgetStatus"));
        assert!(entry.extra.contains_key("delivery"));
        assert_eq!(serde_json::to_value(&entry).unwrap(), original);
    }

    #[test]
    fn patch_table() {
        let patch = |json: &str| serde_json::from_str::<SessionPatch>(json).unwrap();
        let mut e = SessionEntry::new("s", 10);
        let changed = e
            .apply_patch(&patch(r#"{"label":" Inbox ","thinkingLevel":"high","sendPolicy":"deny","groupActivation":"always","verboseLevel":"full","model":"openai/gpt-5"}"#), 20)
            .unwrap();
        assert_eq!(
            changed,
            vec![
                "label",
                "thinkingLevel",
                "verboseLevel",
                "sendPolicy",
                "groupActivation",
                "model"
            ]
        );
        assert_eq!(e.label.as_deref(), Some("Inbox"));
        assert_eq!(e.provider_override.as_deref(), Some("openai"));
        assert_eq!(e.model_override.as_deref(), Some("gpt-5"));
        assert_eq!(e.model_override_source.as_deref(), Some("user"));
        assert_eq!(e.updated_at, 20);
        // Re-applying is a no-op that leaves updatedAt alone.
        let again = e
            .apply_patch(&patch(r#"{"label":"Inbox","thinkingLevel":"high"}"#), 30)
            .unwrap();
        assert!(again.is_empty());
        assert_eq!(e.updated_at, 20);
        // null clears back to inherited.
        let cleared = e
            .apply_patch(&patch(r#"{"thinkingLevel":null,"model":null}"#), 40)
            .unwrap();
        assert_eq!(cleared, vec!["thinkingLevel", "model"]);
        assert_eq!(e.thinking_level, None);
        assert_eq!(e.model_override, None);
        assert_eq!(e.model_override_source, None);
        // Flags map to timestamps.
        e.apply_patch(&patch(r#"{"pinned":true,"archived":true}"#), 50)
            .unwrap();
        assert_eq!((e.pinned_at, e.archived_at), (Some(50), Some(50)));
        e.apply_patch(&patch(r#"{"pinned":true,"archived":false}"#), 60)
            .unwrap();
        assert_eq!((e.pinned_at, e.archived_at), (Some(50), None));
    }

    #[test]
    fn patch_errors_table() {
        let cases = [
            (r#"{"thinkingLevel":"huge"}"#, "invalid thinkingLevel \"huge\": allowed values are off, minimal, low, medium, high, xhigh, adaptive, max, ultra"),
            (r#"{"sendPolicy":"maybe"}"#, "invalid sendPolicy \"maybe\": allowed values are allow, deny"),
            (r#"{"groupActivation":"never"}"#, "invalid groupActivation \"never\": allowed values are mention, always"),
            (r#"{"verboseLevel":"loud"}"#, "invalid verboseLevel \"loud\": allowed values are off, on, full"),
            (r#"{"label":"   "}"#, "label must not be empty (send null to clear it)"),
            (r#"{"fastMode":"sometimes"}"#, "invalid fastMode: expected true, false or \"auto\""),
        ];
        for (json, msg) in cases {
            let p: SessionPatch = serde_json::from_str(json).unwrap();
            let mut e = SessionEntry::new("s", 0);
            let err = e.apply_patch(&p, 1).unwrap_err();
            assert_eq!(err.to_string(), msg, "{json}");
            assert_eq!(
                e,
                SessionEntry::new("s", 0),
                "failed patch must not change the entry"
            );
        }
        let long = format!(r#"{{"label":"{}"}}"#, "x".repeat(101));
        let p: SessionPatch = serde_json::from_str(&long).unwrap();
        assert_eq!(p.validate(), Err(PatchError::LabelTooLong));
    }

    #[test]
    fn rotation_keeps_choices_drops_run_state() {
        let mut old: SessionEntry = serde_json::from_str(SAMPLE).unwrap();
        old.label = Some("Inbox".into());
        old.thinking_level = Some("high".into());
        old.send_policy = Some("deny".into());
        let next = old.rotated("new-id", 5);
        assert_eq!(next.session_id, "new-id");
        assert_eq!((next.updated_at, next.session_started_at), (5, Some(5)));
        assert_eq!(next.created_at, old.created_at);
        assert_eq!(next.label.as_deref(), Some("Inbox"));
        assert_eq!(next.thinking_level.as_deref(), Some("high"));
        assert_eq!(next.send_policy.as_deref(), Some("deny"));
        assert_eq!(next.display_name, old.display_name);
        assert_eq!(next.input_tokens, None);
        assert_eq!(next.status, None);
        assert_eq!(next.last_run_id, None);
        assert!(next.extra.contains_key("delivery"));
        assert!(!next.extra.contains_key("contextBudgetStatus"));
    }

    #[test]
    fn usage_accumulates() {
        let mut e = SessionEntry::new("s", 0);
        e.record_usage(
            &UsageReport {
                input: 100,
                output: 5,
                total_tokens: Some(105),
                cost_usd: 0.5,
                ..Default::default()
            },
            5,
        );
        e.record_usage(
            &UsageReport {
                input: 10,
                output: 10,
                cache_read: 3,
                cost_usd: 0.25,
                ..Default::default()
            },
            9,
        );
        assert_eq!(e.input_tokens, Some(10));
        assert_eq!(e.output_tokens, Some(10));
        assert_eq!(e.total_tokens, Some(13));
        assert_eq!(e.total_tokens_fresh, Some(false));
        assert_eq!(e.estimated_cost_usd, Some(0.75));
        let t = e.usage_totals.clone().unwrap();
        assert_eq!((t.input, t.output, t.cache_read, t.runs), (110, 15, 3, 2));
        assert_eq!(e.updated_at, 9);
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["usageTotals"]["input"], 110);
    }
}
