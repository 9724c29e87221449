//! The wire shape of a session (`SessionRow` of `sessions.list`, `sessions.describe`,
//! `sessions.changed`; `sessionInfo` of `chat.history`) and the model `defaults` object,
//! built from a stored [`SessionRecord`] and the config in force.
//!
//! Keys follow the reference's order. Fields that describe a run (`status`, `startedAt`,
//! usage, `contextBudgetStatus`, `participants` ...) appear when the stored entry has them.

use pincer_config::Config;
use pincer_sessions::{SessionEntry, SessionKey};
use pincer_store::SessionRecord;
use serde_json::{json, Map, Value};

use crate::live_config::{agent_model_ref, model_context_tokens, model_reasons};

/// Which variant of the row to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    /// `sessions.list` / `sessions.describe` / `sessions.changed` rows.
    List,
    /// `chat.history.sessionInfo`.
    History,
}

/// Run state the agent loop knows about (none until the agent loop reports runs).
#[derive(Debug, Clone, Default)]
pub struct RunFacts {
    pub active_run_ids: Vec<String>,
    /// Id of the newest transcript entry (`chat.history.sessionInfo.activeLeafEntryId`).
    pub active_leaf_entry_id: Option<String>,
}

/// The `kind` of a key: `direct`, `group`, `global` or `unknown`.
pub fn row_kind(key: &SessionKey) -> &'static str {
    match key {
        SessionKey::Global => "global",
        SessionKey::Unknown => "unknown",
        SessionKey::Agent { .. } => match key.chat_type() {
            Some(pincer_sessions::ChatType::Group | pincer_sessions::ChatType::Channel) => "group",
            _ => "direct",
        },
    }
}

fn is_background(key: &SessionKey) -> bool {
    matches!(
        key.classification(),
        "cron" | "hook" | "subagent" | "acp" | "boot"
    )
}

/// Thinking levels offered for a model: `off` only unless the model reasons.
pub fn thinking_levels(reasons: bool) -> Vec<&'static str> {
    if reasons {
        vec!["off", "minimal", "low", "medium", "high"]
    } else {
        vec!["off"]
    }
}

fn agent_runtime() -> Value {
    json!({"id": "auto", "cloudPlacementSupported": false, "devicePlacementSupported": false, "source": "implicit"})
}

/// The model defaults of an agent: `{modelProvider, model, contextTokens, agentRuntime,
/// [thinkingLevels, thinkingOptions, thinkingDefault], modelSelectionTarget}`.
pub fn model_defaults(cfg: &Config, agent_id: &str, kind: RowKind) -> Value {
    let model = agent_model_ref(cfg, agent_id);
    let (provider, model_id) = match &model {
        Some((p, m)) => (Value::from(p.clone()), Value::from(m.clone())),
        None => (Value::Null, Value::Null),
    };
    let context = model
        .as_ref()
        .and_then(|(p, m)| model_context_tokens(cfg, p, m))
        .map_or(Value::Null, Value::from);
    let mut out = Map::new();
    out.insert("modelProvider".into(), provider);
    out.insert("model".into(), model_id);
    out.insert("contextTokens".into(), context);
    out.insert("agentRuntime".into(), agent_runtime());
    if kind == RowKind::List {
        let reasons = model
            .as_ref()
            .is_some_and(|(p, m)| model_reasons(cfg, p, m));
        insert_thinking(&mut out, cfg, reasons);
    }
    out.insert("modelSelectionTarget".into(), json!("session"));
    Value::Object(out)
}

fn insert_thinking(out: &mut Map<String, Value>, cfg: &Config, reasons: bool) {
    let levels = thinking_levels(reasons);
    out.insert(
        "thinkingLevels".into(),
        Value::Array(
            levels
                .iter()
                .map(|l| json!({"id": l, "label": l}))
                .collect(),
        ),
    );
    out.insert("thinkingOptions".into(), json!(levels));
    let default = cfg
        .agents
        .defaults
        .thinking_default
        .map(|t| t.as_str().to_string())
        .filter(|t| levels.contains(&t.as_str()))
        .unwrap_or_else(|| "off".to_string());
    out.insert("thinkingDefault".into(), json!(default));
}

/// A session row for `key` (canonical). `record` is `None` when the key has no session yet
/// (`chat.history` of a fresh key).
pub fn session_row(
    cfg: &Config,
    key: &SessionKey,
    record: Option<&SessionRecord>,
    kind: RowKind,
    runs: &RunFacts,
    now_ms: u64,
) -> Value {
    let entry: Option<&SessionEntry> = record.map(|r| &r.entry);
    let agent_id = key
        .agent_id()
        .map(str::to_string)
        .unwrap_or_else(|| cfg.default_agent_id());
    let mut row = Map::new();
    let mut put = |k: &str, v: Value| {
        row.insert(k.to_string(), v);
    };
    let extra = |name: &str| entry.and_then(|e| e.extra.get(name)).cloned();
    put("key", json!(key.to_string()));
    if entry.is_some() {
        put("visibility", extra("visibility").unwrap_or(json!("shared")));
    }
    put("permissionModePending", json!(false));
    if let Some(e) = entry {
        if let Some(v) = &e.created_via {
            put("createdVia", json!(v));
        }
        for name in ["participants", "expandedParticipants", "participantCount"] {
            if let Some(v) = extra(name) {
                put(name, v);
            }
        }
        if let Some(v) = e.created_at {
            put("createdAt", json!(v));
        }
    }
    put("kind", json!(row_kind(key)));
    put("classification", json!(key.classification()));
    put("agentId", json!(agent_id));
    put("isMain", json!(key.is_main()));
    put("isBackground", json!(is_background(key)));
    if let Some(e) = entry {
        let chat_type = e
            .chat_type
            .clone()
            .or_else(|| key.chat_type().map(|c| c.as_str().to_string()));
        if let Some(c) = chat_type {
            put("chatType", json!(c));
        }
        for (name, v) in [
            ("label", e.label.as_ref()),
            ("displayName", e.display_name.as_ref()),
            ("channel", e.channel.as_ref()),
        ] {
            if let Some(v) = v {
                put(name, json!(v));
            }
        }
        put("updatedAt", json!(e.updated_at));
    } else {
        put("updatedAt", Value::Null);
    }
    put(
        "archived",
        json!(entry.is_some_and(|e| e.archived_at.is_some())),
    );
    put(
        "pinned",
        json!(entry.is_some_and(|e| e.pinned_at.is_some())),
    );
    let unread = entry.is_some_and(|e| {
        e.marked_unread_at.is_some()
            || e.last_activity_at
                .or(e.last_interaction_at)
                .is_some_and(|a| a > e.last_read_at.unwrap_or(0))
    });
    put("unread", json!(unread));
    if let Some(e) = entry {
        for (name, v) in [
            ("lastInteractionAt", e.last_interaction_at),
            ("lastActivityAt", e.last_activity_at),
        ] {
            if let Some(v) = v {
                put(name, json!(v));
            }
        }
        put("sessionId", json!(e.session_id));
        if let Some(v) = e.system_sent {
            put("systemSent", json!(v));
        }
        if let Some(v) = e.aborted_last_run {
            put("abortedLastRun", json!(v));
        }
        for (name, v) in [
            ("thinkingLevel", e.thinking_level.as_ref()),
            ("verboseLevel", e.verbose_level.as_ref()),
            ("reasoningLevel", e.reasoning_level.as_ref()),
            ("elevatedLevel", e.elevated_level.as_ref()),
            ("sendPolicy", e.send_policy.as_ref()),
            ("groupActivation", e.group_activation.as_ref()),
            ("spawnedBy", e.spawned_by.as_ref()),
            ("parentSessionKey", e.parent_session_key.as_ref()),
        ] {
            if let Some(v) = v {
                put(name, json!(v));
            }
        }
        if let Some(depth) = e.spawn_depth {
            put("spawnDepth", json!(depth));
        }
    }
    let model = match entry.and_then(|e| e.model_override.clone()) {
        Some(m) => Some((
            entry
                .and_then(|e| e.provider_override.clone())
                .unwrap_or_default(),
            m,
        )),
        None => match entry.and_then(|e| e.model.clone()) {
            Some(m) => Some((
                entry
                    .and_then(|e| e.model_provider.clone())
                    .unwrap_or_default(),
                m,
            )),
            None => agent_model_ref(cfg, &agent_id),
        },
    };
    if kind == RowKind::List {
        let reasons = model
            .as_ref()
            .is_some_and(|(p, m)| model_reasons(cfg, p, m));
        insert_thinking(&mut row, cfg, reasons);
    }
    let mut put = |k: &str, v: Value| {
        row.insert(k.to_string(), v);
    };
    let fast = entry.and_then(|e| e.fast_mode.clone());
    put(
        "effectiveFastMode",
        json!(fast.as_ref().and_then(Value::as_bool).unwrap_or(false)),
    );
    put(
        "effectiveFastModeSource",
        json!(if fast.is_some() { "session" } else { "default" }),
    );
    put("fastAutoOnSeconds", json!(60));
    if let Some(e) = entry {
        for (name, v) in [
            ("inputTokens", e.input_tokens),
            ("outputTokens", e.output_tokens),
            ("totalTokens", e.total_tokens),
        ] {
            if let Some(v) = v {
                put(name, json!(v));
            }
        }
    }
    put(
        "totalTokensFresh",
        json!(entry.and_then(|e| e.total_tokens_fresh).unwrap_or(false)),
    );
    if let Some(e) = entry {
        if let Some(cost) = e.estimated_cost_usd {
            put("estimatedCostUsd", number(cost));
        }
        if let Some(v) = &e.status {
            put("status", json!(v));
        }
        for (name, v) in [
            ("startedAt", e.started_at),
            ("endedAt", e.ended_at),
            ("runtimeMs", e.runtime_ms),
        ] {
            if let Some(v) = v {
                put(name, json!(v));
            }
        }
        if let Some(v) = &e.last_run_id {
            put("lastRunId", json!(v));
        }
    }
    put("hasAutomation", json!(key.is_main()));
    put(
        "effectiveResponseUsage",
        json!(entry
            .and_then(|e| e.response_usage.clone())
            .unwrap_or_else(|| "off".into())),
    );
    let queue_default = cfg
        .messages
        .queue
        .as_ref()
        .and_then(|q| q.mode)
        .and_then(|m| serde_json::to_value(m).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "steer".into());
    put(
        "effectiveQueueMode",
        json!(entry
            .and_then(|e| e.queue_mode.clone())
            .unwrap_or(queue_default)),
    );
    let (provider, model_id) = match &model {
        Some((p, m)) => (json!(p), json!(m)),
        None => (Value::Null, Value::Null),
    };
    put("modelProvider", provider);
    put("model", model_id);
    put(
        "modelOverrideSource",
        entry
            .and_then(|e| e.model_override_source.clone())
            .map_or(Value::Null, Value::from),
    );
    put("runtimeSelectionLocked", json!(false));
    put("agentRuntime", agent_runtime());
    let context = entry
        .and_then(|e| e.context_tokens)
        .or_else(|| {
            model
                .as_ref()
                .and_then(|(p, m)| model_context_tokens(cfg, p, m))
        })
        .map_or(Value::Null, Value::from);
    put("contextTokens", context);
    if let Some(v) = extra("contextBudgetStatus") {
        put("contextBudgetStatus", v);
    }
    put("snapshotAt", json!(now_ms));
    if let Some(e) = entry {
        let created = e.created_at.unwrap_or(e.updated_at);
        put(
            "placement",
            json!({"state": "local", "generation": 0, "createdAtMs": created,
                   "updatedAtMs": e.updated_at, "stateChangedAtMs": created}),
        );
        if kind == RowKind::History {
            put(
                "activitySummary",
                json!({"state": "unavailable", "canEnsure": false}),
            );
        }
        put("sharingRole", json!("admin"));
    }
    put("hasActiveRun", json!(!runs.active_run_ids.is_empty()));
    put("activeRunIds", json!(runs.active_run_ids));
    if kind == RowKind::History {
        put(
            "activeLeafEntryId",
            runs.active_leaf_entry_id
                .clone()
                .map_or(Value::Null, Value::from),
        );
    }
    Value::Object(row)
}

/// Integral floats as integers (`0`, not `0.0`), like the reference's JSON.
fn number(v: f64) -> Value {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        json!(v as i64)
    } else {
        json!(v)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn cfg(text: &str) -> Config {
        let path = std::path::Path::new("/tmp/pincer.json");
        pincer_config::parse_str(text, path, &pincer_config::LoadOptions::with_vars([]))
            .unwrap()
            .config
    }

    const MOCK: &str = "{ agents: { defaults: { model: { primary: 'mock/mock-model' } } }, models: { mode: 'replace', providers: { mock: { baseUrl: 'http://127.0.0.1:9/v1', api: 'openai-completions', models: [ { id: 'mock-model', reasoning: false, contextWindow: 32000 } ] } } } }";

    #[test]
    fn empty_history_session_info_matches_the_reference_keys() {
        let c = cfg(MOCK);
        let key = SessionKey::canonicalize("main", "main").unwrap();
        let row = session_row(&c, &key, None, RowKind::History, &RunFacts::default(), 1);
        // Key order follows serde_json's map (insertion order only with `preserve_order`).
        let mut keys: Vec<&str> = row
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut want = vec![
            "key",
            "permissionModePending",
            "kind",
            "classification",
            "agentId",
            "isMain",
            "isBackground",
            "updatedAt",
            "archived",
            "pinned",
            "unread",
            "effectiveFastMode",
            "effectiveFastModeSource",
            "fastAutoOnSeconds",
            "totalTokensFresh",
            "hasAutomation",
            "effectiveResponseUsage",
            "effectiveQueueMode",
            "modelProvider",
            "model",
            "modelOverrideSource",
            "runtimeSelectionLocked",
            "agentRuntime",
            "contextTokens",
            "snapshotAt",
            "hasActiveRun",
            "activeRunIds",
            "activeLeafEntryId",
        ];
        want.sort_unstable();
        assert_eq!(keys, want);
        assert_eq!(row["key"], "agent:main:main");
        assert_eq!(row["kind"], "direct");
        assert_eq!(row["classification"], "main");
        assert_eq!(row["model"], "mock-model");
        assert_eq!(row["contextTokens"], 32000);
    }

    #[test]
    fn defaults_object() {
        let d = model_defaults(&cfg(MOCK), "main", RowKind::List);
        assert_eq!(
            d,
            json!({"modelProvider": "mock", "model": "mock-model", "contextTokens": 32000,
                   "agentRuntime": {"id": "auto", "cloudPlacementSupported": false, "devicePlacementSupported": false, "source": "implicit"},
                   "thinkingLevels": [{"id": "off", "label": "off"}], "thinkingOptions": ["off"],
                   "thinkingDefault": "off", "modelSelectionTarget": "session"})
        );
        let none = model_defaults(&cfg("{}"), "main", RowKind::History);
        assert_eq!(none["model"], Value::Null);
        assert!(none.get("thinkingLevels").is_none());
    }

    #[test]
    fn kinds() {
        let k = |s: &str| SessionKey::canonicalize(s, "main").unwrap();
        assert_eq!(row_kind(&k("agent:main:telegram:group:-100")), "group");
        assert_eq!(row_kind(&k("agent:main:discord:channel:1")), "group");
        assert_eq!(row_kind(&k("agent:main:direct:bob")), "direct");
        assert_eq!(row_kind(&k("global")), "global");
        assert!(is_background(&k("agent:main:cron:job")));
    }
}
