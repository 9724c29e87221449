//! `models.list`: the models this gateway can call (configured `models.providers.*.models`,
//! plus the implicit default of a provider enabled by an environment key).

use pincer_protocol::params::MODELS_LIST_PARAMS;
use pincer_providers::ThinkingLevel;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::dispatch::{CallCtx, MethodRegistry, Reply};

pub fn register(reg: &mut MethodRegistry) {
    reg.sync("models.list", &MODELS_LIST_PARAMS, models_list);
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Params {
    agent_id: Option<String>,
    provider: Option<String>,
}

fn thinking_levels(reasoning: bool) -> (Vec<Value>, &'static str) {
    if reasoning {
        let levels = ThinkingLevel::ALL
            .iter()
            .map(|l| json!({"id": l.as_str(), "label": l.as_str()}))
            .collect();
        (levels, "off")
    } else {
        (vec![json!({"id": "off", "label": "off"})], "off")
    }
}

fn models_list(ctx: &CallCtx<'_>) -> Reply {
    let p: Params = match ctx.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let settings = ctx.state.agent.runtime.settings();
    let agent_id = p
        .agent_id
        .as_deref()
        .map(pincer_sessions::normalize_agent_id)
        .unwrap_or_else(|| settings.default_agent_id());
    let default_ref = settings.configured_model(&agent_id).map(|c| c.primary);
    let mut models: Vec<Value> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for m in settings.registry.models() {
        let model_ref = format!("{}/{}", m.provider, m.id);
        let (levels, default_level) = thinking_levels(m.reasoning);
        let mut v = json!({
            "id": m.id, "name": m.name, "provider": m.provider,
            "contextWindow": m.context_window, "reasoning": m.reasoning,
        });
        if default_ref.as_deref() == Some(model_ref.as_str()) {
            v["tags"] = json!(["default"]);
        }
        v["thinkingLevels"] = json!(levels);
        v["thinkingDefault"] = json!(default_level);
        v["available"] = json!(settings.registry.resolve(&model_ref).is_ok());
        seen.push(model_ref);
        models.push(v);
    }
    // A default that comes from an environment key alone is not in the config's list.
    if let Some(r) = default_ref.filter(|r| !seen.contains(r)) {
        if let Ok(m) = settings.registry.resolve(&r) {
            let (levels, default_level) = thinking_levels(m.reasoning);
            models.push(json!({
                "id": m.model, "name": m.name, "provider": m.provider,
                "contextWindow": m.context_window, "reasoning": m.reasoning,
                "tags": ["default"], "thinkingLevels": levels, "thinkingDefault": default_level,
                "available": true,
            }));
        }
    }
    if let Some(provider) = p.provider.as_deref() {
        models.retain(|m| m["provider"] == provider);
    }
    Reply::json(&json!({"models": models}))
}
