//! `config.get`, `config.set`, `config.patch`, `config.apply`, `config.schema`,
//! `config.schema.lookup`.
//!
//! `config.get` reads the file as it is on disk now (so a rejected edit shows up as
//! `valid:false` with its issues while the last good config stays in force), with every
//! credential redacted. Writes are validated first, guarded by `baseHash` (optimistic
//! concurrency), written atomically by `pincer-config`, and then go through the same reload
//! path as a file edit ([`crate::reload`]).

use std::path::Path;
use std::sync::Arc;

use pincer_config::edit::{self, EditOutcome};
use pincer_config::json5::{self, Node, NodeValue};
use pincer_config::redact::{is_sensitive_key, redact, REDACTED};
use pincer_config::{ConfigError, Loaded, WarningKind};
use pincer_protocol::errors::ErrorShape;
use pincer_protocol::params::{
    CONFIG_PATCH_PARAMS, CONFIG_SCHEMA_LOOKUP_PARAMS, CONFIG_SET_PARAMS, EMPTY_PARAMS,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::dispatch::{CallCtx, MethodRegistry, OwnedCall, Reply};
use crate::live_config::Installed;
use crate::reload::Origin;
use crate::state::GatewayState;

pub fn register(reg: &mut MethodRegistry) {
    reg.asynchronous("config.get", &EMPTY_PARAMS, |c| Box::pin(config_get(c)));
    reg.asynchronous("config.set", &CONFIG_SET_PARAMS, |c| {
        Box::pin(config_write(c, WriteKind::Set))
    });
    reg.asynchronous("config.patch", &CONFIG_PATCH_PARAMS, |c| {
        Box::pin(config_write(c, WriteKind::Patch))
    });
    reg.asynchronous("config.apply", &CONFIG_PATCH_PARAMS, |c| {
        Box::pin(config_write(c, WriteKind::Apply))
    });
    reg.sync("config.schema", &EMPTY_PARAMS, config_schema);
    reg.sync(
        "config.schema.lookup",
        &CONFIG_SCHEMA_LOOKUP_PARAMS,
        config_schema_lookup,
    );
}

/// Error of a failed config operation: the library's precise message, INVALID_REQUEST for
/// the caller's mistakes (syntax, validation, stale `baseHash`, bad path).
fn config_error(e: &ConfigError) -> ErrorShape {
    match e {
        ConfigError::Invalid { issues } => ErrorShape::invalid_request(e.to_string())
            .with_details(json!({"reason": "INVALID_CONFIG", "issues": issues_json(issues)})),
        ConfigError::Conflict { expected, actual } => ErrorShape::invalid_request(e.to_string())
            .with_details(json!({"reason": "BASE_HASH_MISMATCH", "baseHash": expected, "currentHash": actual})),
        ConfigError::Syntax { .. }
        | ConfigError::Include { .. }
        | ConfigError::BadPath { .. }
        | ConfigError::NotAnObject
        | ConfigError::TooLarge { .. } => ErrorShape::invalid_request(e.to_string()),
        other => ErrorShape::unavailable(other.to_string()),
    }
}

fn issues_json(issues: &[pincer_config::Issue]) -> Vec<Value> {
    issues
        .iter()
        .map(|i| {
            let mut v = json!({
                "path": i.path,
                "message": i.message,
                "file": i.file.display().to_string(),
                "line": i.line,
                "col": i.col,
            });
            if let Some(allowed) = &i.allowed_values {
                v["allowedValues"] = json!(allowed);
            }
            v
        })
        .collect()
}

/// The raw text with every credential string literal replaced by the redaction marker,
/// keeping comments and layout. `None` when the text does not parse.
pub fn redact_raw(raw: &str) -> Option<String> {
    let root = json5::parse(raw, 0).ok()?;
    let mut spots: Vec<(u32, u32)> = Vec::new();
    collect_secret_positions(&root, false, &mut spots);
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(raw.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for (line, col) in spots {
        let start_of_line = *line_starts.get(line.checked_sub(1)? as usize)?;
        let start = raw[start_of_line..]
            .char_indices()
            .nth(col.checked_sub(1)? as usize)
            .map(|(i, _)| start_of_line + i)?;
        let end = string_literal_end(raw, start)?;
        ranges.push((start, end));
    }
    ranges.sort_unstable();
    let mut out = String::with_capacity(raw.len());
    let mut at = 0;
    for (start, end) in ranges {
        if start < at {
            continue;
        }
        out.push_str(&raw[at..start]);
        out.push('"');
        out.push_str(REDACTED);
        out.push('"');
        at = end;
    }
    out.push_str(&raw[at..]);
    Some(out)
}

fn collect_secret_positions(node: &Node, force: bool, out: &mut Vec<(u32, u32)>) {
    match &node.value {
        NodeValue::Object(entries) => {
            for (key, child) in entries {
                match &child.value {
                    NodeValue::String(_) if force || is_sensitive_key(&key.name) => {
                        out.push((child.pos.line, child.pos.col));
                    }
                    NodeValue::Object(_) if key.name == "vars" || key.name == "headers" => {
                        collect_secret_positions(child, true, out)
                    }
                    _ => collect_secret_positions(child, force, out),
                }
            }
        }
        NodeValue::Array(items) => {
            for i in items {
                collect_secret_positions(i, force, out);
            }
        }
        NodeValue::String(_) if force => out.push((node.pos.line, node.pos.col)),
        _ => {}
    }
}

/// Byte index just past the string literal starting at `start` (quote `"` or `'`).
fn string_literal_end(text: &str, start: usize) -> Option<usize> {
    let mut chars = text[start..].char_indices();
    let (_, quote) = chars.next()?;
    if quote != '"' && quote != '\'' {
        return None;
    }
    let mut escaped = false;
    for (i, c) in chars {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == quote {
            return Some(start + i + c.len_utf8());
        }
    }
    None
}

fn warnings_json(loaded: &Loaded, kind: Option<WarningKind>) -> Vec<Value> {
    loaded
        .warnings
        .iter()
        .filter(|w| kind.is_none_or(|k| w.kind == k))
        .map(|w| json!({"message": w.message, "paths": w.paths}))
        .collect()
}

async fn config_get(call: OwnedCall) -> Reply {
    let state = Arc::clone(&call.state);
    let result = tokio::task::spawn_blocking(move || config_get_payload(&state)).await;
    match result {
        Ok(v) => Reply::json(&v),
        Err(e) => Reply::Error(ErrorShape::unavailable(format!("config.get failed: {e}"))),
    }
}

/// `config.get` (blocking: reads the file).
pub fn config_get_payload(state: &GatewayState) -> Value {
    let live = &state.config;
    let in_force = live.current();
    let path = live.path().to_path_buf();
    let opts = live.options();
    let disk = pincer_config::load(&path, opts);
    let raw_text: Option<String> = std::fs::read_to_string(&path).ok();
    let exists = raw_text.is_some();
    let hash = pincer_config::config_hash(raw_text.as_deref().unwrap_or(""), &opts.hash_key);
    let parsed = raw_text
        .as_deref()
        .and_then(|t| json5::parse(t, 0).ok())
        .map(|n| redact(&n.to_value()))
        .unwrap_or(Value::Null);
    let raw = raw_text
        .as_deref()
        .map(|t| redact_raw(t).map_or(Value::Null, Value::from))
        .unwrap_or(Value::Null);
    let (valid, issues, source, resolved, warnings, legacy, included) = match &disk {
        Ok(l) => (
            true,
            Vec::new(),
            redact(&l.source),
            redact(&l.resolved),
            warnings_json(l, None),
            warnings_json(l, Some(WarningKind::Legacy)),
            l.included_paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>(),
        ),
        Err(e) => {
            let issues = match e {
                ConfigError::Invalid { issues } => issues_json(issues),
                other => vec![json!({"path": "(root)", "message": other.to_string()})],
            };
            (
                false,
                issues,
                parsed.clone(),
                Value::Null,
                Vec::new(),
                Vec::new(),
                Vec::new(),
            )
        }
    };
    let mut runtime = redact(&serde_json::to_value(&in_force.config).unwrap_or(Value::Null));
    prune_empty(&mut runtime);
    json!({
        "path": path.display().to_string(),
        "includedPaths": included,
        "includeProvenance": [],
        "agentRosterIncludeOwned": false,
        "bindingsIncludeOwned": false,
        "exists": exists,
        "raw": raw,
        "parsed": parsed,
        "sourceConfig": source,
        "resolved": resolved,
        "valid": valid,
        "runtimeConfig": runtime,
        "config": runtime,
        "hash": hash,
        "issues": issues,
        "warnings": warnings,
        "legacyIssues": legacy,
        "configRevisionHash": in_force.hash,
        "appliedConfigHash": in_force.hash,
    })
}

/// Drops empty objects (sections the typed config serialises as `{}` when unset).
fn prune_empty(v: &mut Value) {
    if let Value::Object(map) = v {
        for child in map.values_mut() {
            prune_empty(child);
        }
        map.retain(|_, child| !matches!(child, Value::Object(m) if m.is_empty()));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteKind {
    Set,
    Patch,
    Apply,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WriteParams {
    raw: String,
    base_hash: Option<String>,
    replace_paths: Option<Vec<String>>,
}

fn write_blocking(
    path: &Path,
    opts: &pincer_config::LoadOptions,
    kind: WriteKind,
    p: &WriteParams,
) -> Result<EditOutcome, ConfigError> {
    let base = p.base_hash.as_deref().filter(|h| !h.is_empty());
    match kind {
        WriteKind::Set | WriteKind::Apply => {
            // Validate the client's own text first so line numbers point into it.
            pincer_config::parse_str(&p.raw, path, opts)?;
            edit::replace(path, opts, base, &p.raw)
        }
        WriteKind::Patch => {
            let replace: Vec<String> = p.replace_paths.clone().unwrap_or_default();
            if replace.is_empty() {
                return edit::patch(path, opts, base, &p.raw);
            }
            let patch_doc = json5::parse(&p.raw, 0)
                .map_err(|e| ConfigError::Syntax {
                    file: "(request)".into(),
                    line: e.line,
                    col: e.col,
                    message: e.message,
                })?
                .to_value();
            let mut segments = Vec::new();
            for r in &replace {
                segments.push(edit::parse_path(r)?);
            }
            edit::edit(path, opts, base, move |doc| {
                let mut patch = patch_doc;
                pincer_config::redact::restore_redacted(&mut patch, doc);
                for segs in &segments {
                    let mut cur = Some(&patch);
                    for seg in segs {
                        cur = cur.and_then(|v| match seg {
                            pincer_config::openclaw::Segment::Key(k) => v.get(k.as_str()),
                            pincer_config::openclaw::Segment::Index(i) => v.get(*i),
                        });
                    }
                    match cur.cloned() {
                        Some(v) => edit::set_path(doc, segs, v)?,
                        None => {
                            edit::unset_path(doc, segs);
                        }
                    }
                }
                edit::merge_patch(doc, &patch);
                Ok(())
            })
        }
    }
}

async fn config_write(call: OwnedCall, kind: WriteKind) -> Reply {
    let p: WriteParams = match call.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    let state = Arc::clone(&call.state);
    let path = state.config.path().to_path_buf();
    let opts = state.config.options().clone();
    let written = tokio::task::spawn_blocking(move || write_blocking(&path, &opts, kind, &p)).await;
    let outcome = match written {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => return Reply::Error(config_error(&e)),
        Err(e) => {
            return Reply::Error(ErrorShape::unavailable(format!("config write failed: {e}")))
        }
    };
    let noop = outcome.noop;
    let changed = outcome.changed_paths.clone();
    let hash = outcome.loaded.hash.clone();
    let installed = state.apply_config(Arc::new(outcome.loaded), Origin::Rpc);
    let (restart, applied) = match &installed {
        Installed::Applied(plan) => (plan.needs_restart(), true),
        Installed::Deferred(_) => (true, false),
        Installed::Unchanged => (false, !noop),
    };
    let mut config =
        redact(&serde_json::to_value(&state.config.current().config).unwrap_or(Value::Null));
    prune_empty(&mut config);
    let path = state.config.path().display().to_string();
    let mut out = json!({"ok": true, "path": path, "hash": hash, "config": config});
    if kind != WriteKind::Set || noop {
        out["changedPaths"] = json!(changed);
        out["restart"] = json!(restart);
        out["applied"] = json!(applied);
        out["sentinel"] = Value::Null;
        if noop {
            out["noop"] = json!(true);
        }
    }
    Reply::json(&out)
}

fn config_schema(ctx: &CallCtx<'_>) -> Reply {
    Reply::json(&json!({
        "schema": pincer_config::json_schema(),
        "uiHints": {},
        "version": ctx.state.version,
    }))
}

#[derive(Deserialize)]
struct LookupParams {
    path: String,
}

/// Follows `$ref` (`#/definitions/X`) within the root schema.
fn deref<'a>(root: &'a Value, node: &'a Value) -> &'a Value {
    let mut cur = node;
    for _ in 0..16 {
        let Some(r) = cur.get("$ref").and_then(Value::as_str) else {
            break;
        };
        let Some(name) = r
            .strip_prefix("#/definitions/")
            .or_else(|| r.strip_prefix("#/$defs/"))
        else {
            break;
        };
        match root
            .get("definitions")
            .or_else(|| root.get("$defs"))
            .and_then(|d| d.get(name))
        {
            Some(n) => cur = n,
            None => break,
        }
    }
    // Draft-07 `$ref` with siblings is wrapped as `allOf: [{$ref}]`.
    if let Some([one]) = cur
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        return deref(root, one);
    }
    // `Option<T>` fields are `anyOf: [T, null]`: look through to T.
    if let Some(any) = cur.get("anyOf").and_then(Value::as_array) {
        let non_null: Vec<&Value> = any
            .iter()
            .filter(|v| v.get("type").and_then(Value::as_str) != Some("null"))
            .collect();
        if let [one] = non_null.as_slice() {
            return deref(root, one);
        }
    }
    cur
}

fn type_of(node: &Value) -> Value {
    node.get("type").cloned().unwrap_or_else(|| {
        if node.get("anyOf").is_some() || node.get("oneOf").is_some() {
            json!("union")
        } else if node.get("enum").is_some() {
            json!("enum")
        } else {
            Value::Null
        }
    })
}

/// Shallow node of the config schema at a dotted path.
pub fn schema_lookup(path: &str) -> Result<Value, ErrorShape> {
    let root = pincer_config::json_schema();
    let mut node = deref(root, root);
    let trimmed = path.trim();
    if !trimmed.is_empty() && trimmed != "." {
        let segs =
            edit::parse_path(trimmed).map_err(|e| ErrorShape::invalid_request(e.to_string()))?;
        for seg in &segs {
            let next = match seg {
                pincer_config::openclaw::Segment::Key(k) => node
                    .get("properties")
                    .and_then(|p| p.get(k.as_str()))
                    .or_else(|| node.get("additionalProperties").filter(|a| a.is_object())),
                pincer_config::openclaw::Segment::Index(_) => node.get("items"),
            };
            node = match next {
                Some(n) => deref(root, n),
                None => {
                    return Err(ErrorShape::invalid_request(format!(
                        "config.schema.lookup: no config key at {trimmed:?}"
                    )))
                }
            };
        }
    }
    let children: Vec<Value> = node
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(k, v)| {
                    let d = deref(root, v);
                    let mut c = json!({"key": k, "type": type_of(d)});
                    if let Some(desc) = d.get("description").or_else(|| v.get("description")) {
                        c["description"] = desc.clone();
                    }
                    c
                })
                .collect()
        })
        .unwrap_or_default();
    let mut shallow = serde_json::Map::new();
    if let Some(obj) = node.as_object() {
        for (k, v) in obj {
            if k != "properties" && k != "definitions" && k != "$defs" {
                shallow.insert(k.clone(), v.clone());
            }
        }
    }
    Ok(json!({
        "path": trimmed,
        "schema": Value::Object(shallow),
        "hint": Value::Null,
        "children": children,
    }))
}

fn config_schema_lookup(ctx: &CallCtx<'_>) -> Reply {
    let p: LookupParams = match ctx.parse() {
        Ok(p) => p,
        Err(e) => return Reply::Error(e),
    };
    match schema_lookup(&p.path) {
        Ok(v) => Reply::json(&v),
        Err(e) => Reply::Error(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn raw_redaction_keeps_layout_and_comments() {
        let raw = "{\n  // the gateway\n  gateway: { auth: { mode: 'token', token: 'se\\'cret' } },\n  models: { providers: { m: { apiKey: \"sk-1\", headers: { 'X-A': 'h' }, baseUrl: 'http://x' } } },\n}\n";
        let out = redact_raw(raw).unwrap();
        assert!(out.contains("// the gateway"));
        assert!(!out.contains("cret") && !out.contains("sk-1") && !out.contains("'h'"));
        assert!(out.contains("mode: 'token'"));
        assert!(out.contains("baseUrl: 'http://x'"));
        assert_eq!(out.matches(REDACTED).count(), 3);
        assert!(json5::parse(&out, 0).is_ok());
    }

    #[test]
    fn schema_lookup_walks_refs_and_lists_children() {
        let root = schema_lookup("").unwrap();
        let keys: Vec<&str> = root["children"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["key"].as_str())
            .collect();
        assert!(keys.contains(&"gateway") && keys.contains(&"session"));
        let port = schema_lookup("gateway.port").unwrap();
        assert_eq!(port["path"], "gateway.port");
        assert!(port["schema"]["type"].to_string().contains("integer"));
        let entry = schema_lookup("agents.entries.ops.workspace").unwrap();
        assert!(entry["schema"]["type"].to_string().contains("string"));
        assert!(schema_lookup("gateway.nope").is_err());
    }
}
