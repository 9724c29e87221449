//! `tools.catalog` (operator.read) and `tools.effective` (operator.read): protocol §5.1/§5.2.
//! The catalog lists the registered tools by group with the profiles that include them; the
//! effective set is what a run of the session would be offered now (the agent runtime resolves
//! it with the same policy, sandbox gate and model layers as a run).

use pincer_protocol::errors::ErrorShape;
use pincer_protocol::params::{TOOLS_CATALOG_PARAMS, TOOLS_EFFECTIVE_PARAMS};
use pincer_sessions::SessionKey;
use pincer_tools::policy::{tool_catalog, ToolProfile, CORE_TOOLS};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::dispatch::{MethodRegistry, OwnedCall, Reply};

pub fn register(reg: &mut MethodRegistry) {
    reg.asynchronous("tools.catalog", &TOOLS_CATALOG_PARAMS, |c| {
        Box::pin(catalog(c))
    });
    reg.asynchronous("tools.effective", &TOOLS_EFFECTIVE_PARAMS, |c| {
        Box::pin(effective(c))
    });
}

/// Catalog groups in display order: (group id, label).
const GROUPS: &[(&str, &str)] = &[
    ("fs", "Files"),
    ("runtime", "Runtime"),
    ("web", "Web"),
    ("sessions", "Sessions"),
    ("memory", "Memory"),
    ("messaging", "Messaging"),
    ("automation", "Automation"),
    ("nodes", "Nodes"),
    ("ui", "Interface"),
    ("media", "Media"),
    ("agents", "Agents"),
];

/// `apply_patch` → `Apply patch`.
fn label(name: &str) -> String {
    let text = name.replace('_', " ");
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => text,
    }
}

fn profile_label(p: ToolProfile) -> &'static str {
    match p {
        ToolProfile::Minimal => "Minimal",
        ToolProfile::Coding => "Coding",
        ToolProfile::Messaging => "Messaging",
        ToolProfile::Full => "Full",
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Params {
    agent_id: Option<String>,
    session_key: Option<String>,
}

fn agent_of(call: &OwnedCall, requested: Option<&str>) -> Result<String, ErrorShape> {
    let config = &call.state.config.get().config;
    match requested {
        None => Ok(config.default_agent_id()),
        Some(raw) => {
            let id = pincer_sessions::normalize_agent_id(raw);
            if config.agent_ids().contains(&id) {
                Ok(id)
            } else {
                Err(ErrorShape::invalid_request(format!(
                    "unknown agent id: {raw}"
                )))
            }
        }
    }
}

async fn catalog(call: OwnedCall) -> Reply {
    let p: Params = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let agent_id = match agent_of(&call, p.agent_id.as_deref()) {
        Ok(a) => a,
        Err(e) => return Reply::Error(e),
    };
    let registry = call.state.agent.runtime.tool_registry();
    let specs = registry.specs();
    let entries = tool_catalog(
        specs
            .iter()
            .map(|s| (s.name.as_str(), s.description.as_str())),
    );
    let mut groups: Vec<(String, String, Vec<Value>)> = Vec::new();
    for e in entries {
        let group = e
            .groups
            .iter()
            .filter_map(|g| g.strip_prefix("group:"))
            .find(|g| GROUPS.iter().any(|(id, _)| id == g))
            .unwrap_or("other")
            .to_owned();
        let tool = json!({
            "id": e.name,
            "label": label(&e.name),
            "description": e.description,
            "source": e.source,
            "defaultProfiles": e.profiles,
        });
        match groups.iter_mut().find(|(id, _, _)| *id == group) {
            Some((_, _, tools)) => tools.push(tool),
            None => {
                let title = GROUPS
                    .iter()
                    .find(|(id, _)| *id == group)
                    .map_or("Other", |(_, l)| l);
                groups.push((group, title.to_owned(), vec![tool]));
            }
        }
    }
    let rank = |id: &str| {
        GROUPS
            .iter()
            .position(|(g, _)| *g == id)
            .unwrap_or(GROUPS.len())
    };
    groups.sort_by_key(|(id, _, _)| rank(id));
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(id, title, tools)| {
            json!({"id": id, "label": title, "source": "core", "tools": tools})
        })
        .collect();
    let profiles: Vec<Value> = ToolProfile::ALL
        .iter()
        .map(|p| json!({"id": p.as_str(), "label": profile_label(*p)}))
        .collect();
    Reply::json(&json!({"agentId": agent_id, "profiles": profiles, "groups": groups}))
}

async fn effective(call: OwnedCall) -> Reply {
    let p: Params = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let raw_key = p.session_key.unwrap_or_default();
    let default_agent = match agent_of(&call, p.agent_id.as_deref()) {
        Ok(a) => a,
        Err(e) => return Reply::Error(e),
    };
    let key = match SessionKey::canonicalize(raw_key.trim(), &default_agent) {
        Ok(k) => k,
        Err(e) => {
            return Reply::Error(ErrorShape::invalid_request(format!(
                "invalid sessionKey {raw_key:?}: {e}"
            )))
        }
    };
    let agent_id = key.agent_id().map(str::to_owned).unwrap_or(default_agent);
    if p.agent_id.is_some()
        && p.agent_id
            .as_deref()
            .map(pincer_sessions::normalize_agent_id)
            != Some(agent_id.clone())
    {
        return Reply::Error(ErrorShape::invalid_request(format!(
            "sessionKey {key} belongs to agent {agent_id}, not {}",
            p.agent_id.unwrap_or_default()
        )));
    }
    let set = call
        .state
        .agent
        .runtime
        .effective_tools(&agent_id, &key)
        .await;
    let tools: Vec<Value> = set
        .tools
        .iter()
        .map(|(name, description)| {
            let first_line = description.lines().next().unwrap_or_default();
            json!({
                "id": name,
                "label": label(name),
                "description": first_line,
                "rawDescription": description,
                "source": if CORE_TOOLS.contains(&name.as_str()) { "core" } else { "plugin" },
            })
        })
        .collect();
    let mut notices = Vec::new();
    match set.sandbox {
        "on" => notices.push(json!({
            "id": "sandbox",
            "severity": "info",
            "message": "This session is sandboxed: exec runs under bubblewrap and file tools see only the workspace.",
        })),
        "unavailable" => notices.push(json!({
            "id": "sandbox-unavailable",
            "severity": "warning",
            "message": set.sandbox_error.unwrap_or_default(),
        })),
        _ => {}
    }
    if !set.removed.is_empty() {
        let list: Vec<String> = set
            .removed
            .iter()
            .map(|r| format!("{} ({})", r.name, r.layer))
            .collect();
        notices.push(json!({
            "id": "policy",
            "severity": "info",
            "message": format!("Removed by the tool policy: {}", list.join(", ")),
        }));
    }
    Reply::json(&json!({
        "agentId": set.agent_id,
        "profile": set.profile,
        "groups": [{"id": "core", "label": "Built-in tools", "source": "core", "tools": tools}],
        "notices": notices,
    }))
}
