//! Masked, recursive comparison of a server frame against the reference's, driven by rules.
//!
//! By default everything is compared: object key sets (recursively), array lengths and
//! elements, and every scalar value. [`Rule`]s relax this at given places only:
//!
//! | action | meaning |
//! |---|---|
//! | [`Action::Mask`] | the value varies (clock, ids, host, measurements): it must be present with the same JSON type (`null` matches any type); nothing below it is compared |
//! | [`Action::Absent`] | the key may be missing in Pincer's frame (a documented reference-only field) |
//! | [`Action::Extra`] | the key may be present only in Pincer's frame (a documented Pincer addition) |
//! | [`Action::Subset`] | an array of scalars: every element Pincer sends must occur in the reference's array |
//! | [`Action::Shape`] | arrays of objects whose length depends on the environment: every element Pincer sends is compared (keys and values) against the reference's first element |
//!
//! A rule is `frames` + `path`:
//! * `frames`: `|`-separated globs over frame labels (`res:connect`, `res:health`,
//!   `event:tick`, `close`, `*` for all; see [`crate::golden::frame_label`]).
//! * `path`: `.`-separated segments from the frame root (`payload.snapshot.uptimeMs`); `[]`
//!   stands for any array index (`payload.snapshot.presence[].ts`); `*` inside a segment is a
//!   glob (`*AtMs`); a `**` segment matches any number of segments (`**.ts`).
//!
//! Every rule says *why*. Allowlist rules (intentional differences) are also checked for
//! staleness: a rule that met a place where Pincer already agrees with the reference (the key
//! is there after all, the values or arrays are equal) and never a place where it was needed is
//! reported, so the list shrinks when Pincer catches up.

use std::cell::Cell;
use std::fmt;

use serde_json::Value;

/// What a rule allows at its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Mask,
    Absent,
    Extra,
    Subset,
    Shape,
}

/// One relaxation of the comparison, with its reason.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    pub frames: &'static str,
    pub path: &'static str,
    pub action: Action,
    pub why: &'static str,
}

impl Rule {
    pub const fn new(
        frames: &'static str,
        path: &'static str,
        action: Action,
        why: &'static str,
    ) -> Rule {
        Rule {
            frames,
            path,
            action,
            why,
        }
    }
}

/// Where a rule came from (only allowlists are checked for staleness).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Volatile fields (clock, ids, host facts): generic, not expected to fire everywhere.
    Volatile,
    /// A documented intentional difference of one test.
    Allowlist,
}

struct Entry {
    rule: Rule,
    origin: Origin,
    segments: Vec<String>,
    /// The rule excused a real difference at least once.
    needed: Cell<bool>,
    /// The rule met a place where Pincer already agrees with the reference.
    redundant: Cell<bool>,
}

/// Split a path pattern or a concrete path into segments (`a.b[].c` → `a`, `b`, `[]`, `c`).
pub fn split_path(path: &str) -> Vec<String> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut name = part;
        let mut indices = 0;
        while let Some(stripped) = name.strip_suffix("[]") {
            name = stripped;
            indices += 1;
        }
        if !name.is_empty() {
            out.push(name.to_string());
        }
        out.extend(std::iter::repeat_n(String::from("[]"), indices));
    }
    out
}

/// `*` glob within one segment.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == t[ti]) && p[pi] != '*' {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

fn path_matches(pattern: &[String], path: &[String]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => {
            (0..=path.len()).any(|skip| path_matches(rest, &path[skip..]))
        }
        Some((first, rest)) => match path.split_first() {
            Some((seg, path_rest)) => glob(first, seg) && path_matches(rest, path_rest),
            None => false,
        },
    }
}

fn frames_match(frames: &str, label: &str) -> bool {
    frames.split('|').any(|f| glob(f.trim(), label))
}

/// One difference found.
#[derive(Debug, Clone, PartialEq)]
pub struct Diff {
    /// Golden line of the expected frame (0 when not tied to one).
    pub line: usize,
    pub conn: String,
    pub label: String,
    pub path: String,
    pub kind: DiffKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum DiffKind {
    /// Key present in the reference, missing in Pincer's frame.
    Missing {
        reference: String,
    },
    /// Key only in Pincer's frame.
    Unexpected {
        pincer: String,
    },
    /// Masked value of another JSON type.
    TypeDiffers {
        reference: String,
        pincer: String,
    },
    ValueDiffers {
        reference: String,
        pincer: String,
    },
    LengthDiffers {
        reference: usize,
        pincer: usize,
    },
    /// (`Subset` arrays) an element the reference never sends.
    NotInReference {
        pincer: String,
    },
    /// Something about the frame sequence (missing frame, unexpected frame, close…).
    Sequence(String),
    /// An allowlist rule that had nothing to do.
    StaleRule(String),
}

/// Compact JSON, cut to a readable length.
pub fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 160 {
        let cut: String = s.chars().take(157).collect();
        format!("{cut}…")
    } else {
        s
    }
}

impl fmt::Display for Diff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.line > 0 {
            format!("line {} ", self.line)
        } else {
            String::new()
        };
        write!(f, "{at}[{} {}] ", self.conn, self.label)?;
        let path = if self.path.is_empty() {
            "(frame)"
        } else {
            &self.path
        };
        match &self.kind {
            DiffKind::Missing { reference } => {
                write!(f, "{path}: missing in Pincer (reference: {reference})")
            }
            DiffKind::Unexpected { pincer } => {
                write!(f, "{path}: not in the reference (Pincer: {pincer})")
            }
            DiffKind::TypeDiffers { reference, pincer } => write!(
                f,
                "{path}: type differs (reference: {reference}, Pincer: {pincer})"
            ),
            DiffKind::ValueDiffers { reference, pincer } => {
                write!(
                    f,
                    "{path}:\n      - reference: {reference}\n      + pincer:    {pincer}"
                )
            }
            DiffKind::LengthDiffers { reference, pincer } => write!(
                f,
                "{path}: array length differs (reference {reference}, Pincer {pincer})"
            ),
            DiffKind::NotInReference { pincer } => {
                write!(f, "{path}: element {pincer} is not in the reference's list")
            }
            DiffKind::Sequence(text) => write!(f, "{text}"),
            DiffKind::StaleRule(text) => write!(f, "stale allowlist rule: {text}"),
        }
    }
}

/// Render diffs as one readable report.
pub fn render(title: &str, diffs: &[Diff]) -> String {
    let mut out = format!("{title}: {} difference(s)\n", diffs.len());
    for d in diffs {
        out.push_str("  ");
        out.push_str(&d.to_string());
        out.push('\n');
    }
    out
}

/// A set of rules with usage tracking.
#[derive(Default)]
pub struct RuleSet {
    entries: Vec<Entry>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The frame being compared (for diff records).
pub struct FrameCtx<'a> {
    pub line: usize,
    pub conn: &'a str,
    pub label: &'a str,
}

impl RuleSet {
    pub fn new() -> RuleSet {
        RuleSet::default()
    }

    pub fn add(&mut self, rules: &[Rule], origin: Origin) {
        for rule in rules {
            self.entries.push(Entry {
                rule: *rule,
                origin,
                segments: split_path(rule.path),
                needed: Cell::new(false),
                redundant: Cell::new(false),
            });
        }
    }

    fn find(&self, label: &str, path: &[String], actions: &[Action]) -> Option<&Entry> {
        self.entries.iter().find(|e| {
            actions.contains(&e.rule.action)
                && frames_match(e.rule.frames, label)
                && path_matches(&e.segments, path)
        })
    }

    /// Compare `pincer` against `reference` (whole frames); append differences to `out`.
    pub fn compare(
        &self,
        ctx: &FrameCtx<'_>,
        reference: &Value,
        pincer: &Value,
        out: &mut Vec<Diff>,
    ) {
        let mut path = Vec::new();
        self.walk(ctx, &mut path, reference, pincer, out);
    }

    fn diff(&self, ctx: &FrameCtx<'_>, path: &[String], kind: DiffKind) -> Diff {
        Diff {
            line: ctx.line,
            conn: ctx.conn.to_string(),
            label: ctx.label.to_string(),
            path: join_path(path),
            kind,
        }
    }

    fn walk(
        &self,
        ctx: &FrameCtx<'_>,
        path: &mut Vec<String>,
        reference: &Value,
        pincer: &Value,
        out: &mut Vec<Diff>,
    ) {
        if let Some(e) = self.find(ctx.label, path, &[Action::Mask]) {
            e.mark(values_equal(reference, pincer));
            let same_type = type_name(reference) == type_name(pincer)
                || reference.is_null()
                || pincer.is_null();
            if !same_type {
                out.push(self.diff(
                    ctx,
                    path,
                    DiffKind::TypeDiffers {
                        reference: format!("{} {}", type_name(reference), short(reference)),
                        pincer: format!("{} {}", type_name(pincer), short(pincer)),
                    },
                ));
            }
            return;
        }
        match (reference, pincer) {
            (Value::Object(r), Value::Object(p)) => {
                for (k, rv) in r {
                    path.push(k.clone());
                    let absent_rule = self.find(ctx.label, path, &[Action::Absent]);
                    match p.get(k) {
                        Some(pv) => {
                            if let Some(e) = absent_rule {
                                e.mark(true);
                            }
                            self.walk(ctx, path, rv, pv, out)
                        }
                        None => match absent_rule {
                            Some(e) => e.mark(false),
                            None => out.push(self.diff(
                                ctx,
                                path,
                                DiffKind::Missing {
                                    reference: short(rv),
                                },
                            )),
                        },
                    }
                    path.pop();
                }
                for (k, pv) in p {
                    path.push(k.clone());
                    let extra_rule = self.find(ctx.label, path, &[Action::Extra]);
                    if r.contains_key(k) {
                        if let Some(e) = extra_rule {
                            e.mark(true);
                        }
                        path.pop();
                        continue;
                    }
                    match extra_rule {
                        Some(e) => e.mark(false),
                        None => out.push(self.diff(
                            ctx,
                            path,
                            DiffKind::Unexpected { pincer: short(pv) },
                        )),
                    }
                    path.pop();
                }
            }
            (Value::Array(r), Value::Array(p)) => {
                if let Some(e) = self.find(ctx.label, path, &[Action::Subset]) {
                    e.mark(r == p);
                    for item in p {
                        if !r.contains(item) {
                            out.push(self.diff(
                                ctx,
                                path,
                                DiffKind::NotInReference {
                                    pincer: short(item),
                                },
                            ));
                        }
                    }
                    return;
                }
                let shape = self.find(ctx.label, path, &[Action::Shape]);
                path.push("[]".to_string());
                match shape {
                    Some(e) => {
                        e.mark(r.len() == p.len());
                        if let Some(first) = r.first() {
                            for item in p {
                                self.walk(ctx, path, first, item, out);
                            }
                        }
                    }
                    None => {
                        if r.len() != p.len() {
                            path.pop();
                            out.push(self.diff(
                                ctx,
                                path,
                                DiffKind::LengthDiffers {
                                    reference: r.len(),
                                    pincer: p.len(),
                                },
                            ));
                            path.push("[]".to_string());
                        }
                        for (rv, pv) in r.iter().zip(p) {
                            self.walk(ctx, path, rv, pv, out);
                        }
                    }
                }
                path.pop();
            }
            (r, p) => {
                if !values_equal(r, p) {
                    let kind = if type_name(r) == type_name(p) {
                        DiffKind::ValueDiffers {
                            reference: short(r),
                            pincer: short(p),
                        }
                    } else {
                        DiffKind::TypeDiffers {
                            reference: format!("{} {}", type_name(r), short(r)),
                            pincer: format!("{} {}", type_name(p), short(p)),
                        }
                    };
                    out.push(self.diff(ctx, path, kind));
                }
            }
        }
    }

    /// Allowlist rules that met agreement and were never needed.
    pub fn stale(&self) -> Vec<Diff> {
        self.entries
            .iter()
            .filter(|e| e.origin == Origin::Allowlist && e.redundant.get() && !e.needed.get())
            .map(|e| Diff {
                line: 0,
                conn: "-".into(),
                label: e.rule.frames.to_string(),
                path: String::new(),
                kind: DiffKind::StaleRule(format!(
                    "{:?} {} ({}) is not needed: Pincer matches the reference here; remove the rule",
                    e.rule.action, e.rule.path, e.rule.why
                )),
            })
            .collect()
    }

    /// Is there a rule of `action` for this frame label and path? (for frame-level decisions)
    pub fn has(&self, label: &str, path: &str, action: Action) -> bool {
        let segs = split_path(path);
        match self.find(label, &segs, &[action]) {
            Some(e) => {
                e.mark(false);
                true
            }
            None => false,
        }
    }
}

impl Entry {
    /// Record one application: `agrees` = Pincer already matched the reference there.
    fn mark(&self, agrees: bool) {
        if agrees {
            self.redundant.set(true);
        } else {
            self.needed.set(true);
        }
    }
}

fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn join_path(path: &[String]) -> String {
    let mut s = String::new();
    for seg in path {
        if seg == "[]" {
            s.push_str("[]");
        } else {
            if !s.is_empty() {
                s.push('.');
            }
            s.push_str(seg);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(rules: &[Rule]) -> RuleSet {
        let mut s = RuleSet::new();
        s.add(rules, Origin::Allowlist);
        s
    }

    fn run(rules: &RuleSet, r: Value, p: Value) -> Vec<Diff> {
        let mut out = Vec::new();
        let ctx = FrameCtx {
            line: 3,
            conn: "op",
            label: "res:health",
        };
        rules.compare(&ctx, &r, &p, &mut out);
        out
    }

    #[test]
    fn paths_and_globs() {
        assert_eq!(split_path("a.b[].c"), ["a", "b", "[]", "c"]);
        assert_eq!(split_path("payload[][]"), ["payload", "[]", "[]"]);
        assert!(glob("*AtMs", "issuedAtMs"));
        assert!(!glob("*AtMs", "issuedAt"));
        assert!(glob("res:*", "res:connect"));
        let p = split_path("**.ts");
        assert!(path_matches(
            &p,
            &split_path("payload.snapshot.presence[].ts")
        ));
        assert!(path_matches(&p, &split_path("ts")));
        assert!(!path_matches(&p, &split_path("payload.tsx")));
        assert!(frames_match("res:connect|event:*", "event:tick"));
    }

    #[test]
    fn strict_by_default() {
        let none = set(&[]);
        let d = run(
            &none,
            json!({"a":1,"b":[1,2],"c":{"d":"x"}}),
            json!({"a":1,"b":[1,2],"c":{"d":"x"}}),
        );
        assert!(d.is_empty());
        let d = run(
            &none,
            json!({"a":1,"b":[1,2],"c":{"d":"x"},"gone":true}),
            json!({"a":2,"b":[1],"c":{"d":"y"},"new":0}),
        );
        let paths: Vec<&str> = d.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(paths, ["a", "b", "c.d", "gone", "new"], "{d:?}");
        assert!(render("x", &d).contains("missing in Pincer"));
    }

    #[test]
    fn rules_relax_only_where_they_say() {
        let rules = set(&[
            Rule::new("res:*", "payload.**.ts", Action::Mask, "clock"),
            Rule::new(
                "res:health",
                "payload.plugins",
                Action::Absent,
                "reference-only",
            ),
            Rule::new(
                "res:health",
                "payload.uptimeMs",
                Action::Extra,
                "pincer extra",
            ),
            Rule::new("res:health", "payload.methods", Action::Subset, "subset"),
            Rule::new("res:health", "payload.list", Action::Shape, "env-dependent"),
            Rule::new("event:tick", "payload.never", Action::Absent, "other frame"),
        ]);
        let d = run(
            &rules,
            json!({"payload":{"ts":1,"x":{"ts":2},"plugins":[],"methods":["a","b"],"list":[{"k":1}]}}),
            json!({"payload":{"ts":9,"x":{"ts":"s"},"uptimeMs":5,"methods":["b","c"],"list":[{"k":1},{"k":1},{"k":2,"z":0}]}}),
        );
        let texts: Vec<String> = d.iter().map(ToString::to_string).collect();
        assert_eq!(d.len(), 4, "{texts:#?}");
        let all = texts.join("\n");
        assert!(all.contains("payload.x.ts: type differs"), "{all}");
        assert!(all.contains("\"c\" is not in the reference"), "{all}");
        assert!(all.contains("payload.list[].k"), "{all}");
        assert!(all.contains("payload.list[].z"), "{all}");
        // Every rule excused a real difference (or never met its frame): none is stale.
        assert!(rules.stale().is_empty());
        let rules2 = set(&[
            Rule::new("res:health", "payload.a", Action::Absent, "why"),
            Rule::new("res:health", "payload.b", Action::Mask, "why"),
            Rule::new("res:health", "payload.c", Action::Absent, "why"),
        ]);
        run(
            &rules2,
            json!({"payload":{"a":1,"b":2}}),
            json!({"payload":{"a":1,"b":2}}),
        );
        let stale = rules2.stale();
        assert_eq!(stale.len(), 2, "{stale:?}");
        assert!(stale[0].to_string().contains("remove the rule"));
    }
}
