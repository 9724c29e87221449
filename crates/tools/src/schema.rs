//! Tool JSON schemas and a small compiled validator.
//!
//! The built-in schemas are the reference's, byte for byte (`schemas/builtin.json`, checked
//! against `testdata/spec-samples/builtin-tool-schemas.json` by a test). Validation compiles a
//! schema once at registration into a tree of checks so a call costs a walk over the arguments,
//! not a schema interpretation. Only the keywords the tool schemas use are enforced; unknown
//! keywords are ignored (like annotations).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{Map, Value};

use crate::registry::ToolSpec;

const BUILTIN_SCHEMAS: &str = include_str!("../schemas/builtin.json");

fn builtin_table() -> &'static BTreeMap<String, ToolSpec> {
    static TABLE: OnceLock<BTreeMap<String, ToolSpec>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = BTreeMap::new();
        // The file is compiled into the binary and covered by tests; an unparsable file would
        // simply yield an empty table (and fail those tests), never a panic at run time.
        if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(BUILTIN_SCHEMAS) {
            for item in items {
                let name = item.get("name").and_then(Value::as_str).unwrap_or_default();
                let description = item
                    .get("description")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let parameters = item.get("parameters").cloned().unwrap_or(Value::Null);
                if !name.is_empty() {
                    table.insert(
                        name.to_owned(),
                        ToolSpec::new(name, description, parameters),
                    );
                }
            }
        }
        table
    })
}

/// The reference's spec (name, description, parameters) of a built-in tool.
pub fn builtin_spec(name: &str) -> Option<ToolSpec> {
    builtin_table().get(name).cloned()
}

/// Names of every built-in tool whose schema this crate carries.
pub fn builtin_names() -> impl Iterator<Item = &'static str> {
    builtin_table().keys().map(String::as_str)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonType {
    Object,
    Array,
    String,
    Number,
    Integer,
    Boolean,
    Null,
}

impl JsonType {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "object" => Self::Object,
            "array" => Self::Array,
            "string" => Self::String,
            "number" => Self::Number,
            "integer" => Self::Integer,
            "boolean" => Self::Boolean,
            "null" => Self::Null,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Object => "an object",
            Self::Array => "an array",
            Self::String => "a string",
            Self::Number => "a number",
            Self::Integer => "an integer",
            Self::Boolean => "a boolean",
            Self::Null => "null",
        }
    }

    fn matches(self, value: &Value) -> bool {
        match self {
            Self::Object => value.is_object(),
            Self::Array => value.is_array(),
            Self::String => value.is_string(),
            Self::Number => value.is_number(),
            Self::Integer => match value {
                Value::Number(n) => {
                    n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
                }
                _ => false,
            },
            Self::Boolean => value.is_boolean(),
            Self::Null => value.is_null(),
        }
    }
}

/// A compiled schema node.
#[derive(Debug, Default)]
pub struct Validator {
    types: Vec<JsonType>,
    required: Vec<String>,
    properties: Vec<(String, Validator)>,
    pattern_properties: Vec<(Option<regex_lite::Regex>, Validator)>,
    additional_properties: bool,
    enum_values: Option<Vec<Value>>,
    const_value: Option<Value>,
    minimum: Option<f64>,
    maximum: Option<f64>,
    exclusive_minimum: Option<f64>,
    min_length: Option<usize>,
    max_length: Option<usize>,
    pattern: Option<regex_lite::Regex>,
    items: Option<Box<Validator>>,
    min_items: Option<usize>,
    max_items: Option<usize>,
    any_of: Vec<Validator>,
}

impl Validator {
    /// Compile a JSON schema. Malformed parts are ignored rather than rejected: the schemas are
    /// ours, and a permissive validator is better than a tool that cannot be registered.
    pub fn compile(schema: &Value) -> Self {
        let Some(obj) = schema.as_object() else {
            return Self {
                additional_properties: true,
                ..Self::default()
            };
        };
        let mut v = Self {
            additional_properties: true,
            ..Self::default()
        };
        match obj.get("type") {
            Some(Value::String(t)) => v.types.extend(JsonType::parse(t)),
            Some(Value::Array(ts)) => v.types.extend(
                ts.iter()
                    .filter_map(Value::as_str)
                    .filter_map(JsonType::parse),
            ),
            _ => {}
        }
        if let Some(Value::Array(req)) = obj.get("required") {
            v.required = req
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect();
        }
        if let Some(Value::Object(props)) = obj.get("properties") {
            v.properties = props
                .iter()
                .map(|(k, s)| (k.clone(), Self::compile(s)))
                .collect();
        }
        if let Some(Value::Object(props)) = obj.get("patternProperties") {
            v.pattern_properties = props
                .iter()
                .map(|(k, s)| {
                    // `^.*$` matches every key; skip the regex for it.
                    let re = if k == "^.*$" {
                        None
                    } else {
                        regex_lite::Regex::new(k).ok()
                    };
                    (re, Self::compile(s))
                })
                .collect();
        }
        if let Some(Value::Bool(false)) = obj.get("additionalProperties") {
            v.additional_properties = false;
        }
        if let Some(Value::Array(values)) = obj.get("enum") {
            v.enum_values = Some(values.clone());
        }
        v.const_value = obj.get("const").cloned();
        v.minimum = obj.get("minimum").and_then(Value::as_f64);
        v.maximum = obj.get("maximum").and_then(Value::as_f64);
        v.exclusive_minimum = obj.get("exclusiveMinimum").and_then(Value::as_f64);
        v.min_length = obj.get("minLength").and_then(as_usize);
        v.max_length = obj.get("maxLength").and_then(as_usize);
        v.pattern = obj
            .get("pattern")
            .and_then(Value::as_str)
            .and_then(|p| regex_lite::Regex::new(p).ok());
        v.items = obj.get("items").map(|s| Box::new(Self::compile(s)));
        v.min_items = obj.get("minItems").and_then(as_usize);
        v.max_items = obj.get("maxItems").and_then(as_usize);
        if let Some(Value::Array(alts)) = obj.get("anyOf") {
            v.any_of = alts.iter().map(Self::compile).collect();
        }
        v
    }

    /// Validate `value`; the error names the offending location, e.g. `edits[0].oldText: must be
    /// a string`.
    pub fn validate(&self, value: &Value) -> Result<(), String> {
        let mut path = String::new();
        self.check(value, &mut path)
    }

    fn check(&self, value: &Value, path: &mut String) -> Result<(), String> {
        if !self.types.is_empty() && !self.types.iter().any(|t| t.matches(value)) {
            let expected: Vec<&str> = self.types.iter().map(|t| t.name()).collect();
            return Err(format!(
                "{}must be {} (got {})",
                at(path),
                expected.join(" or "),
                describe(value)
            ));
        }
        if let Some(c) = &self.const_value {
            if c != value {
                return Err(format!("{}must be {}", at(path), c));
            }
        }
        if let Some(values) = &self.enum_values {
            if !values.contains(value) {
                let allowed: Vec<String> = values.iter().map(Value::to_string).collect();
                return Err(format!(
                    "{}must be one of {} (got {})",
                    at(path),
                    allowed.join(", "),
                    value
                ));
            }
        }
        match value {
            Value::Object(map) => self.check_object(map, path)?,
            Value::Array(items) => self.check_array(items, path)?,
            Value::String(s) => self.check_string(s, path)?,
            Value::Number(n) => self.check_number(n.as_f64().unwrap_or(0.0), path)?,
            _ => {}
        }
        if !self.any_of.is_empty() {
            let mut first_err = None;
            for alt in &self.any_of {
                let mut sub = path.clone();
                match alt.check(value, &mut sub) {
                    Ok(()) => return Ok(()),
                    Err(e) => {
                        first_err.get_or_insert(e);
                    }
                }
            }
            return Err(format!(
                "{}does not match any allowed form ({})",
                at(path),
                first_err.unwrap_or_default()
            ));
        }
        Ok(())
    }

    fn check_object(&self, map: &Map<String, Value>, path: &mut String) -> Result<(), String> {
        for key in &self.required {
            if !map.contains_key(key) {
                return Err(format!(
                    "{}missing required property \"{key}\"",
                    at_obj(path)
                ));
            }
        }
        for (key, val) in map {
            let len = path.len();
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(key);
            let mut known = false;
            if let Some((_, schema)) = self.properties.iter().find(|(k, _)| k == key) {
                known = true;
                schema.check(val, path)?;
            }
            for (re, schema) in &self.pattern_properties {
                if re.as_ref().is_none_or(|re| re.is_match(key)) {
                    known = true;
                    schema.check(val, path)?;
                }
            }
            path.truncate(len);
            if !known && !self.additional_properties {
                return Err(format!("{}unknown property \"{key}\"", at_obj(path)));
            }
        }
        Ok(())
    }

    fn check_array(&self, items: &[Value], path: &mut String) -> Result<(), String> {
        if let Some(min) = self.min_items {
            if items.len() < min {
                return Err(format!("{}must have at least {min} item(s)", at(path)));
            }
        }
        if let Some(max) = self.max_items {
            if items.len() > max {
                return Err(format!("{}must have at most {max} item(s)", at(path)));
            }
        }
        if let Some(schema) = &self.items {
            for (i, item) in items.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                schema.check(item, path)?;
                path.truncate(len);
            }
        }
        Ok(())
    }

    fn check_string(&self, s: &str, path: &str) -> Result<(), String> {
        if self.min_length.is_some() || self.max_length.is_some() {
            let n = s.chars().count();
            if let Some(min) = self.min_length {
                if n < min {
                    return Err(format!(
                        "{}must be at least {min} character(s) long",
                        at(path)
                    ));
                }
            }
            if let Some(max) = self.max_length {
                if n > max {
                    return Err(format!("{}must be at most {max} characters long", at(path)));
                }
            }
        }
        if let Some(re) = &self.pattern {
            if !re.is_match(s) {
                return Err(format!(
                    "{}must match the pattern {}",
                    at(path),
                    re.as_str()
                ));
            }
        }
        Ok(())
    }

    fn check_number(&self, n: f64, path: &str) -> Result<(), String> {
        if let Some(min) = self.minimum {
            if n < min {
                return Err(format!("{}must be >= {min}", at(path)));
            }
        }
        if let Some(max) = self.maximum {
            if n > max {
                return Err(format!("{}must be <= {max}", at(path)));
            }
        }
        if let Some(min) = self.exclusive_minimum {
            if n <= min {
                return Err(format!("{}must be > {min}", at(path)));
            }
        }
        Ok(())
    }
}

fn as_usize(v: &Value) -> Option<usize> {
    v.as_u64().and_then(|n| usize::try_from(n).ok())
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "arguments ".to_owned()
    } else {
        format!("{path}: ")
    }
}

fn at_obj(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_missing_required_and_wrong_types() {
        let v = Validator::compile(
            &builtin_spec("edit")
                .map(|s| s.parameters)
                .unwrap_or_default(),
        );
        assert_eq!(
            v.validate(&json!({"edits": []})).unwrap_err(),
            "missing required property \"path\""
        );
        assert_eq!(
            v.validate(&json!({"path": "a", "edits": [{"oldText": 1, "newText": "x"}]}))
                .unwrap_err(),
            "edits[0].oldText: must be a string (got a number)"
        );
        assert!(v
            .validate(&json!({"path": "a", "edits": [{"oldText": "a", "newText": "b"}]}))
            .is_ok());
        assert!(v.validate(&json!("nope")).is_err());
    }

    #[test]
    fn enforces_enum_bounds_and_additional_properties() {
        let v = Validator::compile(
            &builtin_spec("memory_get")
                .map(|s| s.parameters)
                .unwrap_or_default(),
        );
        assert!(v.validate(&json!({"path": "MEMORY.md", "from": 1})).is_ok());
        assert!(v
            .validate(&json!({"path": "MEMORY.md", "from": 0}))
            .unwrap_err()
            .contains("from: must be >= 1"));
        assert!(v
            .validate(&json!({"path": "MEMORY.md", "corpus": "x"}))
            .unwrap_err()
            .contains("corpus: must be one of"));
        assert!(v
            .validate(&json!({"path": "MEMORY.md", "bogus": true}))
            .unwrap_err()
            .contains("unknown property \"bogus\""));
        assert!(v
            .validate(&json!({"path": "MEMORY.md", "from": 1.5}))
            .unwrap_err()
            .contains("must be an integer"));
    }

    #[test]
    fn any_of_and_const() {
        let v = Validator::compile(
            &builtin_spec("sessions_send")
                .map(|s| s.parameters)
                .unwrap_or_default(),
        );
        assert!(v
            .validate(&json!({"message": "hi", "mode": "steer"}))
            .is_ok());
        assert!(v
            .validate(&json!({"message": "hi", "mode": "bogus"}))
            .unwrap_err()
            .contains("mode: does not match any allowed form"));
        let read = Validator::compile(
            &builtin_spec("read")
                .map(|s| s.parameters)
                .unwrap_or_default(),
        );
        assert!(read
            .validate(&json!({"path": "a", "optional": true}))
            .is_ok());
        assert!(read
            .validate(&json!({"path": "a", "optional": false}))
            .is_err());
    }
}
