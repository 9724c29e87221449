//! `agents.list`: the configured agents (`agents.entries`, default agent `main`) with their
//! workspace and model.

use pincer_protocol::params::EMPTY_PARAMS;
use serde_json::{json, Map, Value};

use crate::dispatch::{CallCtx, MethodRegistry, Reply};
use crate::live_config::ownership;

pub fn register(reg: &mut MethodRegistry) {
    reg.sync("agents.list", &EMPTY_PARAMS, agents_list);
}

/// `{defaultId, ownership, selectionRequired, mainKey, scope, agents}`.
pub fn agents_payload(cfg: &pincer_config::Config, state_dir: &std::path::Path) -> Value {
    let default_id = cfg.default_agent_id();
    let agents: Vec<Value> = cfg
        .agent_ids()
        .iter()
        .map(|id| {
            let entry = cfg
                .agents
                .entries
                .iter()
                .find(|(k, _)| pincer_sessions::normalize_agent_id(k) == *id)
                .map(|(_, e)| e);
            let mut a = Map::new();
            a.insert("id".into(), json!(id));
            if let Some(name) = entry.and_then(|e| e.name.as_ref()) {
                a.insert("name".into(), json!(name));
            }
            if let Some(identity) = entry.and_then(|e| e.identity.as_ref()) {
                a.insert("identity".into(), json!(identity));
            }
            a.insert("isDefault".into(), json!(*id == default_id));
            a.insert(
                "workspace".into(),
                json!(cfg.agent_workspace(id, state_dir).display().to_string()),
            );
            if let Some(model) = cfg.agent_model(id) {
                a.insert(
                    "model".into(),
                    json!({"primary": model.primary(), "fallbacks": model.fallbacks()}),
                );
            }
            Value::Object(a)
        })
        .collect();
    let global = cfg.session.scope_mode() == pincer_sessions::SessionScopeMode::Global;
    let explicit = cfg.agents.ownership.is_some();
    json!({
        "defaultId": default_id,
        "ownership": ownership(cfg),
        "selectionRequired": explicit && agents.len() > 1,
        "mainKey": "main",
        "scope": if global { "global" } else { "per-sender" },
        "agents": agents,
    })
}

fn agents_list(ctx: &CallCtx<'_>) -> Reply {
    let loaded = ctx.state.config.get();
    Reply::json(&agents_payload(&loaded.config, &ctx.state.state_dir))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn entries_with_workspace_and_model() {
        let path = std::path::Path::new("/etc/pincer.json");
        let cfg = pincer_config::parse_str(
            "{ agents: { defaults: { model: 'a/b' }, entries: { main: {}, ops: { name: 'Ops', workspace: '/w/ops', model: { primary: 'x/y', fallbacks: ['z/w'] } } } } }",
            path,
            &pincer_config::LoadOptions::with_vars([]),
        )
        .unwrap()
        .config;
        let v = agents_payload(&cfg, std::path::Path::new("/state"));
        assert_eq!(v["defaultId"], "main");
        assert_eq!(v["ownership"], "legacy");
        assert_eq!(v["agents"][0]["id"], "main");
        assert_eq!(v["agents"][0]["workspace"], "/state/workspace");
        assert_eq!(v["agents"][0]["model"]["primary"], "a/b");
        assert_eq!(v["agents"][1]["name"], "Ops");
        assert_eq!(v["agents"][1]["workspace"], "/w/ops");
        assert_eq!(v["agents"][1]["model"]["fallbacks"][0], "z/w");
        let d = agents_payload(
            &pincer_config::Config::default(),
            std::path::Path::new("/s"),
        );
        assert_eq!(d["agents"].as_array().map(Vec::len), Some(1));
        assert_eq!(d["ownership"], "sole");
        assert_eq!(d["scope"], "per-sender");
    }
}
