//! Closed-object validation producing the reference's (ajv-style) error text.
//!
//! The reference validates every frame and params object against TypeBox schemas with
//! `additionalProperties:false` and reports all errors, formatted as
//! `at <json-pointer>: <message>` (no prefix at the root), except unknown properties, which read
//! `at <path|root>: unexpected property '<name>'`; errors are joined with `; `.
//! Error order follows ajv: `required` before unknown properties before per-property errors.

use serde_json::Value;

/// A small static schema language covering what the protocol's TypeBox schemas use.
#[derive(Debug)]
pub enum Schema {
    /// Anything (including absent-by-default optional fields).
    Any,
    Bool,
    /// JSON integer (a number without fractional part), with inclusive bounds.
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    /// Any JSON number, with inclusive bounds.
    Number {
        min: Option<f64>,
        max: Option<f64>,
    },
    /// String with length bounds counted in Unicode scalar values.
    Str {
        min_len: Option<usize>,
        max_len: Option<usize>,
    },
    /// A string literal (`Type.Literal`).
    Const(&'static str),
    /// One of a closed set of strings.
    Enum(&'static [&'static str]),
    Array {
        items: &'static Schema,
        min_items: Option<usize>,
        max_items: Option<usize>,
    },
    /// An object; `closed` rejects unknown properties.
    Object {
        props: &'static [Prop],
        closed: bool,
    },
    /// `Record<string, value>`.
    Record {
        value: &'static Schema,
    },
    /// `Type.Union`: valid if any branch is.
    AnyOf(&'static [Schema]),
    /// Another static schema, so shared sub-schemas are written once.
    Ref(&'static Schema),
}

/// One property of an object schema.
#[derive(Debug)]
pub struct Prop {
    pub name: &'static str,
    pub schema: Schema,
    pub required: bool,
}

impl Prop {
    pub const fn req(name: &'static str, schema: Schema) -> Prop {
        Prop {
            name,
            schema,
            required: true,
        }
    }
    pub const fn opt(name: &'static str, schema: Schema) -> Prop {
        Prop {
            name,
            schema,
            required: false,
        }
    }
}

/// `NonEmptyString`.
pub const NON_EMPTY: Schema = Schema::Str {
    min_len: Some(1),
    max_len: None,
};
/// Plain string.
pub const STRING: Schema = Schema::Str {
    min_len: None,
    max_len: None,
};
/// `NonEmptyString[]`.
pub const NON_EMPTY_LIST: Schema = Schema::Array {
    items: &NON_EMPTY,
    min_items: None,
    max_items: None,
};
/// Closed empty object (`{}` params).
pub const EMPTY_OBJECT: Schema = Schema::Object {
    props: &[],
    closed: true,
};

/// What went wrong at one place.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorKind {
    Type(&'static str),
    Required(&'static str),
    Unexpected(String),
    MinLength(usize),
    MaxLength(usize),
    Minimum(String),
    Maximum(String),
    MinItems(usize),
    MaxItems(usize),
    Const,
    Enum,
    AnyOf,
}

/// One validation error with its JSON-pointer instance path (empty = root).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidationError {
    pub path: String,
    pub kind: ErrorKind,
}

impl ValidationError {
    fn message(&self) -> String {
        match &self.kind {
            ErrorKind::Type(t) => format!("must be {t}"),
            ErrorKind::Required(p) => format!("must have required property '{p}'"),
            ErrorKind::Unexpected(p) => format!("unexpected property '{p}'"),
            ErrorKind::MinLength(n) => format!("must NOT have fewer than {n} characters"),
            ErrorKind::MaxLength(n) => format!("must NOT have more than {n} characters"),
            ErrorKind::Minimum(n) => format!("must be >= {n}"),
            ErrorKind::Maximum(n) => format!("must be <= {n}"),
            ErrorKind::MinItems(n) => format!("must NOT have fewer than {n} items"),
            ErrorKind::MaxItems(n) => format!("must NOT have more than {n} items"),
            ErrorKind::Const => "must be equal to constant".to_string(),
            ErrorKind::Enum => "must be equal to one of the allowed values".to_string(),
            ErrorKind::AnyOf => "must match a schema in anyOf".to_string(),
        }
    }
}

/// Render errors the way the reference does.
pub fn format_errors(errors: &[ValidationError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        match &e.kind {
            ErrorKind::Unexpected(_) => {
                let at = if e.path.is_empty() {
                    "root"
                } else {
                    e.path.as_str()
                };
                out.push_str("at ");
                out.push_str(at);
                out.push_str(": ");
            }
            _ if !e.path.is_empty() => {
                out.push_str("at ");
                out.push_str(&e.path);
                out.push_str(": ");
            }
            _ => {}
        }
        out.push_str(&e.message());
    }
    out
}

/// Validate `value`; on failure return the formatted error text.
pub fn validate(schema: &Schema, value: &Value) -> Result<(), String> {
    let errors = collect_errors(schema, value);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format_errors(&errors))
    }
}

/// Validate `value` and return every error (ajv `allErrors`).
pub fn collect_errors(schema: &Schema, value: &Value) -> Vec<ValidationError> {
    let mut errors = Vec::new();
    let mut path = String::new();
    check(schema, value, &mut path, &mut errors);
    errors
}

fn push(errors: &mut Vec<ValidationError>, path: &str, kind: ErrorKind) {
    errors.push(ValidationError {
        path: path.to_string(),
        kind,
    });
}

fn is_integer(value: &Value) -> bool {
    match value {
        Value::Number(n) => {
            n.is_i64()
                || n.is_u64()
                || n.as_f64()
                    .is_some_and(|f| f.is_finite() && f.fract() == 0.0)
        }
        _ => false,
    }
}

fn fmt_num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

fn push_segment(path: &mut String, segment: &str) {
    path.push('/');
    for c in segment.chars() {
        match c {
            '~' => path.push_str("~0"),
            '/' => path.push_str("~1"),
            c => path.push(c),
        }
    }
}

fn check(schema: &Schema, value: &Value, path: &mut String, errors: &mut Vec<ValidationError>) {
    match schema {
        Schema::Any => {}
        Schema::Bool => {
            if !value.is_boolean() {
                push(errors, path, ErrorKind::Type("boolean"));
            }
        }
        Schema::Int { min, max } => {
            if !is_integer(value) {
                push(errors, path, ErrorKind::Type("integer"));
                return;
            }
            let n = value.as_f64().unwrap_or(0.0);
            if let Some(min) = min {
                if n < *min as f64 {
                    push(errors, path, ErrorKind::Minimum(min.to_string()));
                }
            }
            if let Some(max) = max {
                if n > *max as f64 {
                    push(errors, path, ErrorKind::Maximum(max.to_string()));
                }
            }
        }
        Schema::Number { min, max } => {
            let Some(n) = value.as_f64() else {
                push(errors, path, ErrorKind::Type("number"));
                return;
            };
            if let Some(min) = min {
                if n < *min {
                    push(errors, path, ErrorKind::Minimum(fmt_num(*min)));
                }
            }
            if let Some(max) = max {
                if n > *max {
                    push(errors, path, ErrorKind::Maximum(fmt_num(*max)));
                }
            }
        }
        Schema::Str { min_len, max_len } => {
            let Some(s) = value.as_str() else {
                push(errors, path, ErrorKind::Type("string"));
                return;
            };
            let len = s.chars().count();
            if let Some(max) = max_len {
                if len > *max {
                    push(errors, path, ErrorKind::MaxLength(*max));
                }
            }
            if let Some(min) = min_len {
                if len < *min {
                    push(errors, path, ErrorKind::MinLength(*min));
                }
            }
        }
        Schema::Const(expected) => {
            if value.as_str() != Some(expected) {
                push(errors, path, ErrorKind::Const);
            }
        }
        Schema::Enum(allowed) => {
            let ok = value.as_str().is_some_and(|s| allowed.contains(&s));
            if !ok {
                push(errors, path, ErrorKind::Enum);
            }
        }
        Schema::Array {
            items,
            min_items,
            max_items,
        } => {
            let Some(list) = value.as_array() else {
                push(errors, path, ErrorKind::Type("array"));
                return;
            };
            if let Some(max) = max_items {
                if list.len() > *max {
                    push(errors, path, ErrorKind::MaxItems(*max));
                }
            }
            if let Some(min) = min_items {
                if list.len() < *min {
                    push(errors, path, ErrorKind::MinItems(*min));
                }
            }
            for (i, item) in list.iter().enumerate() {
                let len = path.len();
                push_segment(path, &i.to_string());
                check(items, item, path, errors);
                path.truncate(len);
            }
        }
        Schema::Object { props, closed } => {
            let Some(map) = value.as_object() else {
                push(errors, path, ErrorKind::Type("object"));
                return;
            };
            for prop in props.iter() {
                if prop.required && !map.contains_key(prop.name) {
                    push(errors, path, ErrorKind::Required(prop.name));
                }
            }
            if *closed {
                for key in map.keys() {
                    if !props.iter().any(|p| p.name == key) {
                        push(errors, path, ErrorKind::Unexpected(key.clone()));
                    }
                }
            }
            for prop in props.iter() {
                if let Some(v) = map.get(prop.name) {
                    let len = path.len();
                    push_segment(path, prop.name);
                    check(&prop.schema, v, path, errors);
                    path.truncate(len);
                }
            }
        }
        Schema::Record { value: item } => {
            let Some(map) = value.as_object() else {
                push(errors, path, ErrorKind::Type("object"));
                return;
            };
            for (k, v) in map {
                let len = path.len();
                push_segment(path, k);
                check(item, v, path, errors);
                path.truncate(len);
            }
        }
        Schema::Ref(inner) => check(inner, value, path, errors),
        Schema::AnyOf(branches) => {
            let mut branch_errors = Vec::new();
            for branch in branches.iter() {
                let mut e = Vec::new();
                check(branch, value, path, &mut e);
                if e.is_empty() {
                    return;
                }
                branch_errors.extend(e);
            }
            errors.extend(branch_errors);
            push(errors, path, ErrorKind::AnyOf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    static SAMPLE: Schema = Schema::Object {
        props: &[
            Prop::req("name", NON_EMPTY),
            Prop::opt(
                "count",
                Schema::Int {
                    min: Some(1),
                    max: Some(10),
                },
            ),
            Prop::opt(
                "inner",
                Schema::Object {
                    props: &[Prop::req("kind", Schema::Enum(&["a", "b"]))],
                    closed: true,
                },
            ),
            Prop::opt("tags", NON_EMPTY_LIST),
        ],
        closed: true,
    };

    #[test]
    fn valid_values_pass() {
        assert_eq!(
            validate(
                &SAMPLE,
                &json!({"name":"x","count":3,"inner":{"kind":"a"},"tags":["t"]})
            ),
            Ok(())
        );
        // 2.0 is an integer in JSON/JS terms.
        assert_eq!(validate(&SAMPLE, &json!({"name":"x","count":2.0})), Ok(()));
    }

    #[test]
    fn required_comes_before_unexpected_at_root() {
        assert_eq!(
            validate(&SAMPLE, &json!({"bogus":1})),
            Err("must have required property 'name'; at root: unexpected property 'bogus'".into())
        );
    }

    #[test]
    fn nested_paths_use_json_pointers() {
        assert_eq!(
            validate(&SAMPLE, &json!({"name":"x","inner":{"kind":"c"}})),
            Err("at /inner/kind: must be equal to one of the allowed values".into())
        );
        assert_eq!(
            validate(&SAMPLE, &json!({"name":"x","inner":{}})),
            Err("at /inner: must have required property 'kind'".into())
        );
        assert_eq!(
            validate(&SAMPLE, &json!({"name":"x","inner":{"kind":"a","z":1}})),
            Err("at /inner: unexpected property 'z'".into())
        );
        assert_eq!(
            validate(&SAMPLE, &json!({"name":"x","tags":["ok",""]})),
            Err("at /tags/1: must NOT have fewer than 1 characters".into())
        );
    }

    #[test]
    fn type_and_bound_messages() {
        assert_eq!(
            validate(&SAMPLE, &json!({"name":5})),
            Err("at /name: must be string".into())
        );
        assert_eq!(
            validate(&SAMPLE, &json!({"name":"x","count":0})),
            Err("at /count: must be >= 1".into())
        );
        assert_eq!(
            validate(&SAMPLE, &json!({"name":"x","count":11})),
            Err("at /count: must be <= 10".into())
        );
        assert_eq!(
            validate(&SAMPLE, &json!({"name":"x","count":1.5})),
            Err("at /count: must be integer".into())
        );
        assert_eq!(validate(&SAMPLE, &json!([1])), Err("must be object".into()));
    }

    #[test]
    fn any_of_reports_branches_then_summary() {
        static U: Schema = Schema::AnyOf(&[Schema::Bool, Schema::Const("auto")]);
        assert_eq!(validate(&U, &json!(true)), Ok(()));
        assert_eq!(validate(&U, &json!("auto")), Ok(()));
        assert_eq!(
            validate(&U, &json!(3)),
            Err("must be boolean; must be equal to constant; must match a schema in anyOf".into())
        );
    }

    #[test]
    fn pointer_segments_are_escaped() {
        static R: Schema = Schema::Record {
            value: &Schema::Bool,
        };
        assert_eq!(
            validate(&R, &json!({"a/b~":1})),
            Err("at /a~1b~0: must be boolean".into())
        );
    }
}
