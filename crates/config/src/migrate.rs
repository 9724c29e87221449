//! Legacy shapes read in their current form, with a warning (never written back silently).

use std::path::PathBuf;

use crate::json5::{Key, Node, NodeValue};
use crate::{Warning, WarningKind};

/// `agents.list: [{id, ...}]` (older OpenClaw) → `agents.entries: {<id>: {...}}`.
pub(crate) fn legacy_agents_list(root: &mut Node, files: &[PathBuf]) -> Vec<Warning> {
    let NodeValue::Object(members) = &mut root.value else {
        return Vec::new();
    };
    let Some((_, agents)) = members.iter_mut().find(|(k, _)| k.name == "agents") else {
        return Vec::new();
    };
    let NodeValue::Object(agent_members) = &mut agents.value else {
        return Vec::new();
    };
    let Some(idx) = agent_members
        .iter()
        .position(|(k, v)| k.name == "list" && matches!(v.value, NodeValue::Array(_)))
    else {
        return Vec::new();
    };
    let (list_key, list) = agent_members.remove(idx);
    let NodeValue::Array(items) = list.value else {
        return Vec::new();
    };
    let entries_pos = list.pos;
    let entries_idx = match agent_members.iter().position(|(k, _)| k.name == "entries") {
        Some(i) => i,
        None => {
            agent_members.push((
                Key {
                    name: "entries".into(),
                    pos: list_key.pos,
                },
                Node::new(NodeValue::Object(Vec::new()), entries_pos),
            ));
            agent_members.len() - 1
        }
    };
    let mut moved = Vec::new();
    for mut item in items {
        let item_pos = item.pos;
        let NodeValue::Object(fields) = &mut item.value else {
            continue;
        };
        let Some(id_idx) = fields
            .iter()
            .position(|(k, v)| k.name == "id" && matches!(v.value, NodeValue::String(_)))
        else {
            continue;
        };
        let (_, id_node) = fields.remove(id_idx);
        let NodeValue::String(id) = id_node.value else {
            continue;
        };
        if let NodeValue::Object(entries) = &mut agent_members[entries_idx].1.value {
            if !entries.iter().any(|(k, _)| k.name == id) {
                moved.push(id.clone());
                entries.push((
                    Key {
                        name: id,
                        pos: item_pos,
                    },
                    item,
                ));
            }
        }
    }
    let file = files
        .get(list_key.pos.file as usize)
        .cloned()
        .unwrap_or_default();
    vec![Warning {
        kind: WarningKind::Legacy,
        message: format!(
            "{}:{}:{} — agents.list: legacy agent roster read as agents.entries ({}); rewrite it as keyed agents.entries.<id>",
            file.display(),
            list_key.pos.line,
            list_key.pos.col,
            moved.join(", ")
        ),
        paths: vec!["agents.list".into()],
    }]
}
