//! Reading a config file: JSON5 parse with positions, `$include` resolution (deep merge,
//! ≤ 10 levels, inside the config dir or an allowed root, ≤ 2 MB per file, no cycles) and
//! `${VAR}` substitution.

use std::path::{Path, PathBuf};

use crate::json5::{self, Key, Node, NodeValue, Pos};
use crate::openclaw::{display_path, Segment};
use crate::{ConfigError, Warning, WarningKind};

/// Deepest `$include` nesting.
pub const MAX_INCLUDE_DEPTH: usize = 10;
/// Largest config or include file.
pub const MAX_FILE_BYTES: u64 = 2 * 1024 * 1024;

pub(crate) struct Loader<'e> {
    pub files: Vec<PathBuf>,
    pub include_roots: Vec<PathBuf>,
    pub env: &'e dyn Fn(&str) -> Option<String>,
    pub warnings: Vec<Warning>,
}

impl<'e> Loader<'e> {
    pub(crate) fn register(&mut self, path: &Path) -> u32 {
        self.files.push(path.to_path_buf());
        (self.files.len() - 1) as u32
    }

    fn file_of(&self, pos: Pos) -> PathBuf {
        self.files
            .get(pos.file as usize)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn read_file(path: &Path) -> Result<String, ConfigError> {
        let meta = std::fs::metadata(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        if !meta.is_file() {
            return Err(ConfigError::NotAFile {
                path: path.to_path_buf(),
            });
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
                size: meta.len(),
                limit: MAX_FILE_BYTES,
            });
        }
        std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Parses `text` (the content of `path`) and resolves its includes.
    pub(crate) fn parse_document(
        &mut self,
        text: &str,
        path: &Path,
        depth: usize,
        chain: &mut Vec<PathBuf>,
    ) -> Result<Node, ConfigError> {
        let file = self.register(path);
        let mut node = json5::parse(text, file).map_err(|e| ConfigError::Syntax {
            file: path.to_path_buf(),
            line: e.line,
            col: e.col,
            message: e.message,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        chain.push(canonical(path));
        let mut seg_path = Vec::new();
        let r = self.resolve_includes(&mut node, &base, depth, chain, &mut seg_path);
        chain.pop();
        r?;
        Ok(node)
    }

    fn resolve_includes(
        &mut self,
        node: &mut Node,
        base: &Path,
        depth: usize,
        chain: &mut Vec<PathBuf>,
        path: &mut Vec<Segment>,
    ) -> Result<(), ConfigError> {
        match &mut node.value {
            NodeValue::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(Segment::Index(i));
                    self.resolve_includes(item, base, depth, chain, path)?;
                    path.pop();
                }
                Ok(())
            }
            NodeValue::Object(members) => {
                for (key, value) in members.iter_mut() {
                    if key.name == "$include" {
                        continue;
                    }
                    path.push(Segment::Key(key.name.clone()));
                    self.resolve_includes(value, base, depth, chain, path)?;
                    path.pop();
                }
                let Some(idx) = members.iter().position(|(k, _)| k.name == "$include") else {
                    return Ok(());
                };
                let (inc_key, inc_value) = members.remove(idx);
                let targets: Vec<(String, Pos)> = match &inc_value.value {
                    NodeValue::String(s) => vec![(s.clone(), inc_value.pos)],
                    NodeValue::Array(items) => {
                        let mut out = Vec::new();
                        for item in items {
                            match &item.value {
                                NodeValue::String(s) => out.push((s.clone(), item.pos)),
                                _ => {
                                    return Err(self.include_error(
                                        item.pos,
                                        path,
                                        "$include entries must be file paths (strings)".into(),
                                    ))
                                }
                            }
                        }
                        out
                    }
                    _ => {
                        return Err(self.include_error(
                            inc_key.pos,
                            path,
                            format!(
                                "$include must be a file path or an array of paths, got {}",
                                inc_value.type_name()
                            ),
                        ))
                    }
                };
                let mut merged: Option<Node> = None;
                for (target, pos) in targets {
                    let included = self.include(&target, pos, base, depth, chain, path)?;
                    merged = Some(match merged {
                        None => included,
                        Some(prev) => deep_merge(prev, included),
                    });
                }
                let siblings = Node::new(NodeValue::Object(std::mem::take(members)), node.pos);
                let result = match merged {
                    None => siblings,
                    Some(m) => {
                        let has_siblings =
                            matches!(&siblings.value, NodeValue::Object(s) if !s.is_empty());
                        if has_siblings && !matches!(m.value, NodeValue::Object(_)) {
                            return Err(self.include_error(
                                inc_key.pos,
                                path,
                                "an included file that is not an object cannot be merged with sibling keys".into(),
                            ));
                        }
                        if has_siblings {
                            deep_merge(m, siblings)
                        } else {
                            m
                        }
                    }
                };
                *node = result;
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn include_error(&self, pos: Pos, path: &[Segment], message: String) -> ConfigError {
        ConfigError::Include {
            file: self.file_of(pos),
            line: pos.line,
            col: pos.col,
            path: display_path(path),
            message,
        }
    }

    fn include(
        &mut self,
        target: &str,
        pos: Pos,
        base: &Path,
        depth: usize,
        chain: &mut Vec<PathBuf>,
        path: &[Segment],
    ) -> Result<Node, ConfigError> {
        if depth + 1 > MAX_INCLUDE_DEPTH {
            return Err(self.include_error(
                pos,
                path,
                format!("$include nesting is deeper than {MAX_INCLUDE_DEPTH} levels"),
            ));
        }
        let expanded = substitute(target, self.env).0;
        let candidate = {
            let p = PathBuf::from(&expanded);
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        };
        let resolved = std::fs::canonicalize(&candidate).map_err(|e| {
            self.include_error(
                pos,
                path,
                format!("cannot read included file {}: {e}", candidate.display()),
            )
        })?;
        let allowed = self
            .include_roots
            .iter()
            .any(|root| resolved.starts_with(canonical(root)));
        if !allowed {
            return Err(self.include_error(
                pos,
                path,
                format!(
                    "included file {} is outside the config directory (allowed roots: {}; add more with PINCER_INCLUDE_ROOTS)",
                    resolved.display(),
                    self.include_roots.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if chain.contains(&resolved) {
            return Err(self.include_error(
                pos,
                path,
                format!("$include cycle: {} includes itself", resolved.display()),
            ));
        }
        let text =
            Self::read_file(&resolved).map_err(|e| self.include_error(pos, path, e.to_string()))?;
        self.parse_document(&text, &resolved, depth + 1, chain)
    }

    /// Replaces `${VAR}` in every string value; `$${VAR}` stays literal `${VAR}`. Missing or
    /// empty variables stay unresolved and produce a warning.
    pub(crate) fn substitute_env(&mut self, node: &mut Node, path: &mut Vec<Segment>) {
        match &mut node.value {
            NodeValue::String(s) if s.contains('$') => {
                let (out, missing) = substitute(s, self.env);
                *s = out;
                for var in missing {
                    let pos = node.pos;
                    self.warnings.push(Warning {
                            kind: WarningKind::MissingEnv,
                            message: format!(
                                "{}:{}:{} — {}: environment variable {var} is not set; \"${{{var}}}\" was left as is",
                                self.file_of(pos).display(),
                                pos.line,
                                pos.col,
                                display_path(path)
                            ),
                            paths: vec![display_path(path)],
                        });
                }
            }
            NodeValue::Array(items) => {
                for (i, item) in items.iter_mut().enumerate() {
                    path.push(Segment::Index(i));
                    self.substitute_env(item, path);
                    path.pop();
                }
            }
            NodeValue::Object(members) => {
                for (key, value) in members.iter_mut() {
                    path.push(Segment::Key(key.name.clone()));
                    self.substitute_env(value, path);
                    path.pop();
                }
            }
            _ => {}
        }
    }
}

fn canonical(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf())
}

fn is_var_start(c: char) -> bool {
    c.is_ascii_uppercase() || c == '_'
}

fn is_var_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
}

/// `${VAR}` substitution on one string; returns the result and the missing variables.
pub fn substitute(input: &str, env: &dyn Fn(&str) -> Option<String>) -> (String, Vec<String>) {
    let chars: Vec<char> = input.chars().collect();
    let mut out = String::with_capacity(input.len());
    let mut missing = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // `$${VAR}` → literal `${VAR}`
        if c == '$' && chars.get(i + 1) == Some(&'$') && chars.get(i + 2) == Some(&'{') {
            if let Some(end) = var_end(&chars, i + 3) {
                out.push('$');
                out.extend(&chars[i + 2..=end]);
                i = end + 1;
                continue;
            }
        }
        if c == '$' && chars.get(i + 1) == Some(&'{') {
            if let Some(end) = var_end(&chars, i + 2) {
                let name: String = chars[i + 2..end].iter().collect();
                match env(&name).filter(|v| !v.is_empty()) {
                    Some(v) => out.push_str(&v),
                    None => {
                        out.extend(&chars[i..=end]);
                        if !missing.contains(&name) {
                            missing.push(name);
                        }
                    }
                }
                i = end + 1;
                continue;
            }
        }
        out.push(c);
        i += 1;
    }
    (out, missing)
}

/// Index of the `}` closing a valid variable name starting at `start`.
fn var_end(chars: &[char], start: usize) -> Option<usize> {
    let first = *chars.get(start)?;
    if !is_var_start(first) {
        return None;
    }
    let mut j = start + 1;
    while j < chars.len() && is_var_char(chars[j]) {
        j += 1;
    }
    (chars.get(j) == Some(&'}')).then_some(j)
}

/// Deep merge: objects merge key by key (recursively); anything else is replaced by `over`.
pub(crate) fn deep_merge(base: Node, over: Node) -> Node {
    match (base.value, over.value) {
        (NodeValue::Object(mut b), NodeValue::Object(o)) => {
            for (k, v) in o {
                match b.iter().position(|(bk, _)| bk.name == k.name) {
                    Some(idx) => {
                        let (old_key, old) = b.remove(idx);
                        let merged = deep_merge(old, v);
                        b.insert(
                            idx,
                            (
                                Key {
                                    name: old_key.name,
                                    pos: k.pos,
                                },
                                merged,
                            ),
                        );
                    }
                    None => b.push((k, v)),
                }
            }
            Node::new(NodeValue::Object(b), over.pos)
        }
        (_, value) => Node::new(value, over.pos),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_table() {
        let env = |k: &str| match k {
            "HOME_DIR" => Some("/home/u".to_string()),
            "EMPTY" => Some(String::new()),
            "A1_B" => Some("x".to_string()),
            _ => None,
        };
        let cases: Vec<(&str, &str, Vec<&str>)> = vec![
            ("${HOME_DIR}/w", "/home/u/w", vec![]),
            ("a${A1_B}b${A1_B}", "axbx", vec![]),
            ("$${HOME_DIR}", "${HOME_DIR}", vec![]),
            ("${MISSING}", "${MISSING}", vec!["MISSING"]),
            ("${EMPTY}", "${EMPTY}", vec!["EMPTY"]),
            ("${lower}", "${lower}", vec![]),
            ("${1BAD}", "${1BAD}", vec![]),
            ("$HOME_DIR", "$HOME_DIR", vec![]),
            ("${UNCLOSED", "${UNCLOSED", vec![]),
            ("price $5 ${A1_B}", "price $5 x", vec![]),
        ];
        for (input, want, missing) in cases {
            let (out, m) = substitute(input, &env);
            assert_eq!(out, want, "{input}");
            assert_eq!(m, missing, "{input}");
        }
    }
}
