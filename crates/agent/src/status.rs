//! The `/status` card and the `session_status` tool (the sessions host the runtime gives its
//! tools; listing and history read the store, cross-session sends arrive with the full tool
//! set).

use std::sync::Weak;

use async_trait::async_trait;
use pincer_sessions::SessionKey;
use pincer_store::{EntryFilter, HistoryQuery};
use pincer_tools::host::{HostError, Requester, SessionsHost};
use serde_json::{json, Value};

use crate::runtime::Inner;
use crate::settings::{queue_mode_str, session_model_override};
use crate::util::now_ms;

/// The facts of a session's status, as JSON (the `session_status` tool result).
pub(crate) async fn status_json(inner: &Inner, key: &SessionKey) -> Value {
    let settings = inner.settings();
    let agent_id = settings.agent_of(key);
    let record = inner.store.get_session(key).await.ok().flatten();
    let entry = record.as_ref().map(|r| &r.entry);
    let choice = settings.model_for_run(&agent_id, entry, None);
    let resolved = choice
        .as_ref()
        .and_then(|c| settings.registry.resolve(&c.primary).ok());
    let window = resolved.as_ref().map_or(0, |m| m.context_window);
    let queue = settings.queue(None, entry, None);
    let key_s = key.to_string();
    let (active, waiting) = {
        let runtime = crate::AgentRuntime {
            inner: match inner.me.upgrade() {
                Some(i) => i,
                None => return json!({"sessionKey": key_s}),
            },
        };
        let runs = runtime.session_runs(&key_s);
        let busy = runtime.is_busy(&key_s);
        (busy, runs.len().saturating_sub(usize::from(busy)))
    };
    let prompt_estimate = entry
        .and_then(|e| e.extra.get("contextBudgetStatus"))
        .and_then(|c| c["estimatedPromptTokens"].as_u64());
    json!({
        "sessionKey": key_s,
        "sessionId": entry.map(|e| e.session_id.clone()),
        "agentId": agent_id,
        "model": choice.as_ref().map(|c| c.primary.clone()),
        "modelPinned": entry.and_then(session_model_override).is_some(),
        "contextWindow": window,
        "promptTokensEstimate": prompt_estimate,
        "inputTokens": entry.and_then(|e| e.input_tokens).unwrap_or(0),
        "outputTokens": entry.and_then(|e| e.output_tokens).unwrap_or(0),
        "cacheRead": entry.and_then(|e| e.cache_read).unwrap_or(0),
        "cacheWrite": entry.and_then(|e| e.cache_write).unwrap_or(0),
        "totals": entry.and_then(|e| e.usage_totals.clone()),
        "estimatedCostUsd": entry.and_then(|e| e.estimated_cost_usd).unwrap_or(0.0),
        "compactionCount": entry.and_then(|e| e.compaction_count).unwrap_or(0),
        "thinkingLevel": entry.and_then(|e| e.thinking_level.clone()).unwrap_or_else(|| settings.thinking_default(&agent_id).as_str().to_owned()),
        "verboseLevel": entry.and_then(|e| e.verbose_level.clone()).unwrap_or_else(|| "off".into()),
        "queue": {"mode": queue_mode_str(queue.mode), "debounceMs": queue.debounce.as_millis() as u64, "cap": queue.cap},
        "running": active,
        "queued": waiting,
        "updatedAt": entry.map(|e| e.updated_at),
        "lastRunStatus": entry.and_then(|e| e.status.clone()),
    })
}

/// The `/status` card text.
pub(crate) async fn card(inner: &Inner, key: &SessionKey) -> String {
    let s = status_json(inner, key).await;
    let settings = inner.settings();
    let model = s["model"].as_str().unwrap_or("none configured");
    let pinned = if s["modelPinned"].as_bool() == Some(true) {
        " (pinned)"
    } else {
        ""
    };
    let auth = match model.split_once('/') {
        Some((provider, _)) if settings.registry.provider_ids().contains(&provider) => "configured",
        _ => "missing",
    };
    let window = s["contextWindow"].as_u64().unwrap_or(0);
    let used = s["promptTokensEstimate"].as_u64().unwrap_or(0);
    let context_line = if window > 0 {
        format!(
            "{}/{} ({}%)",
            compact_number(used),
            compact_number(window),
            used * 100 / window.max(1)
        )
    } else {
        "unknown".to_owned()
    };
    let updated = s["updatedAt"]
        .as_i64()
        .map(|t| ago(now_ms().saturating_sub(u64::try_from(t).unwrap_or(0))))
        .unwrap_or_else(|| "never".into());
    let runtime = if s["running"].as_bool() == Some(true) {
        format!("running, {} queued", s["queued"])
    } else {
        "idle".to_owned()
    };
    let cost = s["estimatedCostUsd"].as_f64().unwrap_or(0.0);
    format!(
        "🦀 Pincer {version}\n\
         🧠 Model: {model}{pinned} · 🔑 {auth}\n\
         🧮 Tokens: {input} in / {output} out · 💾 cache {cr} read / {cw} write · 💵 ${cost:.4}\n\
         📚 Context: {context_line} · 🧹 Compactions: {compactions}\n\
         🧵 Session: {key} · updated {updated}\n\
         ⚙️ Runtime: {runtime} · Think: {think} · Verbose: {verbose} · Queue: {queue} (debounce {debounce}ms, cap {cap})",
        version = env!("CARGO_PKG_VERSION"),
        input = s["inputTokens"],
        output = s["outputTokens"],
        cr = s["cacheRead"],
        cw = s["cacheWrite"],
        compactions = s["compactionCount"],
        key = s["sessionKey"].as_str().unwrap_or(""),
        think = s["thinkingLevel"].as_str().unwrap_or("off"),
        verbose = s["verboseLevel"].as_str().unwrap_or("off"),
        queue = s["queue"]["mode"].as_str().unwrap_or("steer"),
        debounce = s["queue"]["debounceMs"],
        cap = s["queue"]["cap"],
    )
}

fn compact_number(n: u64) -> String {
    if n >= 1_000_000 {
        format!("{:.1}m", n as f64 / 1_000_000.0)
    } else if n >= 1_000 {
        format!("{:.1}k", n as f64 / 1_000.0)
    } else {
        n.to_string()
    }
}

fn ago(ms: u64) -> String {
    let s = ms / 1000;
    match s {
        0..=59 => format!("{s}s ago"),
        60..=3599 => format!("{}m ago", s / 60),
        3600..=86_399 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86_400),
    }
}

/// The sessions host the runtime hands to its tools.
pub(crate) struct SessionsHostImpl {
    inner: Weak<Inner>,
}

impl SessionsHostImpl {
    pub fn new(inner: Weak<Inner>) -> Self {
        SessionsHostImpl { inner }
    }

    fn inner(&self) -> Result<std::sync::Arc<Inner>, HostError> {
        self.inner
            .upgrade()
            .ok_or_else(|| HostError::Unavailable("the agent runtime is shutting down".into()))
    }
}

fn parse_key(inner: &Inner, key: &str) -> Result<SessionKey, HostError> {
    let settings = inner.settings();
    SessionKey::canonicalize(key, &settings.default_agent_id())
        .map_err(|e| HostError::Rejected(format!("invalid session key {key:?}: {e}")))
}

#[async_trait]
impl SessionsHost for SessionsHostImpl {
    async fn list(&self, requester: &Requester, query: Value) -> Result<Value, HostError> {
        let inner = self.inner()?;
        crate::subagents::list(&inner, requester, &query).await
    }

    async fn history(&self, requester: &Requester, query: Value) -> Result<Value, HostError> {
        let inner = self.inner()?;
        let key_text = query["sessionKey"].as_str().unwrap_or("");
        let key = parse_key(&inner, key_text)?;
        crate::subagents::check_visible(&inner, requester, &key).await?;
        let limit = query["limit"].as_u64().unwrap_or(20).clamp(1, 200) as usize;
        let include_tools = query["includeTools"].as_bool() == Some(true);
        let page = inner
            .store
            .history(
                &key,
                HistoryQuery {
                    limit,
                    cursor: None,
                    filter: EntryFilter::Messages,
                },
            )
            .await
            .map_err(|e| HostError::Failed(e.to_string()))?
            .ok_or_else(|| HostError::NotFound(format!("session {key} not found")))?;
        let messages: Vec<Value> = page
            .entries
            .iter()
            .filter_map(|e| e.value().ok())
            .filter_map(|v| {
                let m = &v["message"];
                let role = m["role"].as_str()?;
                if role == "toolResult" && !include_tools {
                    return None;
                }
                let text = match &m["content"] {
                    Value::String(s) => s.clone(),
                    Value::Array(blocks) => blocks
                        .iter()
                        .filter_map(|b| b["text"].as_str())
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => String::new(),
                };
                Some(json!({"role": role, "text": crate::util::preview(&text, 4_000), "timestamp": m["timestamp"]}))
            })
            .collect();
        Ok(json!({"sessionKey": key.to_string(), "messages": messages}))
    }

    async fn send(&self, requester: &Requester, request: Value) -> Result<Value, HostError> {
        let inner = self.inner()?;
        crate::subagents::send(&inner, requester, request).await
    }

    async fn spawn(&self, requester: &Requester, request: Value) -> Result<Value, HostError> {
        let inner = self.inner()?;
        crate::subagents::spawn(&inner, requester, request).await
    }

    async fn status(
        &self,
        requester: &Requester,
        session_key: &str,
        model: Option<&str>,
        _changes_since: Option<u64>,
    ) -> Result<Value, HostError> {
        let inner = self.inner()?;
        let key = parse_key(&inner, session_key)?;
        crate::subagents::check_visible(&inner, requester, &key).await?;
        if model.is_some() && key.agent_id() != Some(requester.agent_id.as_str()) {
            return Err(HostError::Rejected(format!(
                "session {key} belongs to another agent; its model cannot be changed from here"
            )));
        }
        let mut changed = None;
        if let Some(model) = model {
            let arg = if model.trim().eq_ignore_ascii_case("default") {
                "/model default".to_owned()
            } else {
                format!("/model {}", model.trim())
            };
            // Same rules as the chat command: validated, then pinned for the session.
            let cmd = crate::commands::parse(&arg, &[]);
            if let Some(crate::commands::Command::Model { arg: Some(a) }) = cmd {
                let text = crate::commands::model_for_tool(&inner, &key, &a).await;
                changed = Some(text);
            }
        }
        let mut status = status_json(&inner, &key).await;
        status["statusText"] = json!(card(&inner, &key).await);
        if let Some(text) = changed {
            status["modelChange"] = json!(text);
        }
        Ok(status)
    }
}
