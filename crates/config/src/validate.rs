//! Validation of a positioned JSON5 tree against the JSON Schema generated from the Rust
//! config types (so the types are the single source of truth), producing precise issues:
//! file, line, key path and reason. Keys that the OpenClaw schema has but Pincer does not
//! implement are removed from the tree and collected for one warning.

use std::path::PathBuf;

use serde_json::Value;

use crate::json5::{Node, NodeValue, Pos};
use crate::openclaw::{display_path, knows, Segment};

/// One validation problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub file: PathBuf,
    pub line: u32,
    pub col: u32,
    /// Dotted key path (`gateway.auth.mode`, `bindings[0].agentId`).
    pub path: String,
    pub message: String,
    /// For enum errors: the allowed values.
    pub allowed_values: Option<Vec<String>>,
}

impl std::fmt::Display for Issue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{} — {}: {}",
            self.file.display(),
            self.line,
            self.col,
            self.path,
            self.message
        )
    }
}

pub(crate) struct Validator<'a> {
    root: &'a Value,
    files: &'a [PathBuf],
    pub issues: Vec<Issue>,
    pub unimplemented: Vec<String>,
}

fn type_of(node: &Node) -> &'static str {
    node.type_name()
}

fn type_matches(ty: &str, node: &Node) -> bool {
    match (ty, &node.value) {
        ("null", NodeValue::Null)
        | ("boolean", NodeValue::Bool(_))
        | ("string", NodeValue::String(_))
        | ("array", NodeValue::Array(_))
        | ("object", NodeValue::Object(_)) => true,
        ("number", NodeValue::Number(_)) => true,
        ("integer", NodeValue::Number(n)) => !n.is_f64(),
        _ => false,
    }
}

fn schema_types(schema: &Value) -> Option<Vec<&str>> {
    match schema.get("type")? {
        Value::String(s) => Some(vec![s.as_str()]),
        Value::Array(a) => Some(a.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

fn join_or(items: &[String]) -> String {
    match items.len() {
        0 => String::new(),
        1 => items[0].clone(),
        n => format!("{} or {}", items[..n - 1].join(", "), items[n - 1]),
    }
}

/// Edit distance with adjacent transpositions (optimal string alignment), so `prot` is one
/// edit from `port`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// The closest candidate to `word`, if it is close enough to be a plausible typo.
pub(crate) fn suggest<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let lower = word.to_lowercase();
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let d = if c.to_lowercase() == lower {
            0
        } else {
            distance(&lower, &c.to_lowercase())
        };
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    let limit = (word.chars().count() / 3).clamp(1, 3);
    best.filter(|(d, _)| *d <= limit).map(|(_, c)| c)
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("\"{s}\""),
        other => other.to_string(),
    }
}

impl<'a> Validator<'a> {
    pub(crate) fn new(root: &'a Value, files: &'a [PathBuf]) -> Self {
        Validator {
            root,
            files,
            issues: Vec::new(),
            unimplemented: Vec::new(),
        }
    }

    fn resolve(&self, mut schema: &'a Value) -> &'a Value {
        for _ in 0..32 {
            match schema.get("$ref").and_then(Value::as_str) {
                Some(r) => match r.strip_prefix('#').and_then(|p| self.root.pointer(p)) {
                    Some(target) => schema = target,
                    None => return schema,
                },
                None => return schema,
            }
        }
        schema
    }

    fn issue(&mut self, pos: Pos, path: &[Segment], message: String, allowed: Option<Vec<String>>) {
        self.issues.push(Issue {
            file: self
                .files
                .get(pos.file as usize)
                .cloned()
                .unwrap_or_default(),
            line: pos.line,
            col: pos.col,
            path: display_path(path),
            message,
            allowed_values: allowed,
        });
    }

    pub(crate) fn validate(&mut self, node: &mut Node, schema: &'a Value, path: &mut Vec<Segment>) {
        let schema = self.resolve(schema);
        if schema == &Value::Bool(true) {
            return;
        }
        if schema == &Value::Bool(false) {
            self.issue(node.pos, path, "no value is allowed here".into(), None);
            return;
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for s in all {
                self.validate(node, s, path);
            }
        }
        if let Some(branches) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(Value::as_array)
        {
            self.validate_union(node, branches, path);
            return;
        }
        if let Some(types) = schema_types(schema) {
            if !types.iter().any(|t| type_matches(t, node)) {
                let names: Vec<String> = types
                    .iter()
                    .filter(|t| **t != "null")
                    .map(|t| t.to_string())
                    .collect();
                let msg = format!("expected {}, got {}", join_or(&names), type_of(node));
                self.issue(node.pos, path, msg, None);
                return;
            }
        }
        let allowed: Option<Vec<&Value>> = schema
            .get("enum")
            .and_then(Value::as_array)
            .map(|a| a.iter().collect())
            .or_else(|| schema.get("const").map(|c| vec![c]));
        if let Some(allowed) = allowed {
            if !self.check_allowed(node, &allowed, path) {
                return;
            }
        }
        if matches!(node.value, NodeValue::Object(_)) {
            self.validate_object(node, schema, path);
            return;
        }
        match &mut node.value {
            NodeValue::Number(n) => {
                let pos = node.pos;
                let v = n.as_f64().unwrap_or(0.0);
                if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
                    if v < min {
                        self.issue(
                            pos,
                            path,
                            format!("must be at least {}", Value::from(min_text(min))),
                            None,
                        );
                    }
                }
                if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
                    if v > max {
                        self.issue(
                            pos,
                            path,
                            format!("must be at most {}", Value::from(min_text(max))),
                            None,
                        );
                    }
                }
            }
            NodeValue::Array(items) => {
                if let Some(item_schema) = schema.get("items") {
                    for (i, item) in items.iter_mut().enumerate() {
                        path.push(Segment::Index(i));
                        self.validate(item, item_schema, path);
                        path.pop();
                    }
                }
            }
            _ => {}
        }
    }

    /// Reports an issue unless `node` equals one of `allowed`; returns whether it matched.
    fn check_allowed(&mut self, node: &Node, allowed: &[&Value], path: &[Segment]) -> bool {
        let value = node.to_value();
        if allowed.contains(&&value) {
            return true;
        }
        let texts: Vec<String> = allowed.iter().map(|v| value_text(v)).collect();
        let mut msg = format!(
            "invalid value {}; allowed values: {}",
            value_text(&value),
            texts.join(", ")
        );
        if let Value::String(s) = &value {
            if let Some(hint) = suggest(s, allowed.iter().filter_map(|v| v.as_str())) {
                msg.push_str(&format!(" (did you mean \"{hint}\"?)"));
            }
        }
        let plain: Vec<String> = allowed
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect();
        self.issue(node.pos, path, msg, Some(plain));
        false
    }

    fn validate_object(&mut self, node: &mut Node, schema: &'a Value, path: &mut Vec<Segment>) {
        let obj_pos = node.pos;
        let NodeValue::Object(members) = &mut node.value else {
            return;
        };
        let props = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        let mut keep = vec![true; members.len()];
        for (idx, (key, value)) in members.iter_mut().enumerate() {
            path.push(Segment::Key(key.name.clone()));
            if let Some(prop_schema) = props.and_then(|p| p.get(&key.name)) {
                self.validate(value, prop_schema, path);
            } else {
                match additional {
                    Some(Value::Bool(false)) | None if props.is_some() => {
                        if knows(path) {
                            self.unimplemented.push(display_path(path));
                            keep[idx] = false;
                        } else {
                            let mut msg = format!("unknown key \"{}\"", key.name);
                            if let Some(hint) =
                                props.and_then(|p| suggest(&key.name, p.keys().map(String::as_str)))
                            {
                                msg.push_str(&format!(" (did you mean \"{hint}\"?)"));
                            }
                            let pos = key.pos;
                            self.issue(pos, path, msg, None);
                        }
                    }
                    Some(Value::Bool(false)) => {
                        let pos = key.pos;
                        self.issue(pos, path, format!("unknown key \"{}\"", key.name), None);
                    }
                    Some(extra) if extra.is_object() => self.validate(value, extra, path),
                    _ => {}
                }
            }
            path.pop();
        }
        let mut i = 0;
        members.retain(|_| {
            let k = keep[i];
            i += 1;
            k
        });
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                if !members.iter().any(|(k, _)| k.name == r) {
                    self.issue(obj_pos, path, format!("missing required key \"{r}\""), None);
                }
            }
        }
    }

    fn validate_union(&mut self, node: &mut Node, branches: &'a [Value], path: &mut Vec<Segment>) {
        let resolved: Vec<&'a Value> = branches.iter().map(|b| self.resolve(b)).collect();
        let fits = |s: &Value| match schema_types(s) {
            Some(types) => types.iter().any(|t| type_matches(t, node)),
            None => true,
        };
        let candidates: Vec<&'a Value> = resolved.iter().copied().filter(|s| fits(s)).collect();
        match candidates.len() {
            0 => {
                let mut names: Vec<String> = Vec::new();
                for s in &resolved {
                    for t in schema_types(s).unwrap_or_default() {
                        if t != "null" && !names.iter().any(|n| n == t) {
                            names.push(t.to_string());
                        }
                    }
                }
                let msg = format!("expected {}, got {}", join_or(&names), type_of(node));
                self.issue(node.pos, path, msg, None);
            }
            1 => self.validate(node, candidates[0], path),
            _ if candidates
                .iter()
                .all(|s| s.get("const").is_some() || s.get("enum").is_some()) =>
            {
                // A documented enum (`oneOf` of consts): one message listing every value.
                let mut allowed: Vec<&Value> = Vec::new();
                for s in &candidates {
                    match (s.get("const"), s.get("enum").and_then(Value::as_array)) {
                        (Some(c), _) => allowed.push(c),
                        (None, Some(values)) => allowed.extend(values),
                        _ => {}
                    }
                }
                self.check_allowed(node, &allowed, path);
            }
            _ => {
                // Several shapes fit the JSON type: take the first that validates cleanly,
                // otherwise report the closest one.
                let mut best: Option<(usize, Node, Vec<Issue>, Vec<String>)> = None;
                for s in candidates {
                    let mut trial = node.clone();
                    let mut v = Validator::new(self.root, self.files);
                    v.validate(&mut trial, s, path);
                    let n = v.issues.len();
                    if best.as_ref().is_none_or(|(bn, ..)| n < *bn) {
                        best = Some((n, trial, v.issues, v.unimplemented));
                    }
                    if n == 0 {
                        break;
                    }
                }
                if let Some((_, trial, issues, unimplemented)) = best {
                    *node = trial;
                    self.issues.extend(issues);
                    self.unimplemented.extend(unimplemented);
                }
            }
        }
    }
}

fn min_text(v: f64) -> serde_json::Number {
    if v.fract() == 0.0 && v.abs() < 9.0e15 {
        serde_json::Number::from(v as i64)
    } else {
        serde_json::Number::from_f64(v).unwrap_or_else(|| serde_json::Number::from(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let keys = ["port", "bind", "auth", "customBindHost", "controlUi"];
        assert_eq!(suggest("prot", keys), Some("port"));
        assert_eq!(suggest("Bind", keys), Some("bind"));
        assert_eq!(suggest("custombindhost", keys), Some("customBindHost"));
        assert_eq!(suggest("controlUI", keys), Some("controlUi"));
        assert_eq!(suggest("zzzzzz", keys), None);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("prot", "port"), 1);
    }
}
