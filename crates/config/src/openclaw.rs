//! The OpenClaw schema's key tree (generated into `data/openclaw-paths.txt` by
//! `scripts/gen-openclaw-paths.py`), used to tell "a key Pincer does not implement yet"
//! (warning) from "a key that exists nowhere" (error).

use std::collections::BTreeMap;
use std::sync::OnceLock;

const TREE: &str = include_str!("../data/openclaw-paths.txt");

/// One node of the key tree. `*` = any map key, `[]` = array items.
#[derive(Debug, Default)]
pub struct PathNode {
    children: BTreeMap<String, PathNode>,
}

/// A concrete path segment of a config document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl PathNode {
    fn child(&self, seg: &Segment) -> Option<&PathNode> {
        match seg {
            Segment::Key(k) => self
                .children
                .get(k.as_str())
                .or_else(|| self.children.get("*")),
            Segment::Index(_) => self.children.get("[]"),
        }
    }
}

/// The parsed tree (built once).
pub fn tree() -> &'static PathNode {
    static ROOT: OnceLock<PathNode> = OnceLock::new();
    ROOT.get_or_init(|| {
        let mut root = PathNode::default();
        let mut stack: Vec<String> = Vec::new();
        for line in TREE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        {
            let depth = line.len() - line.trim_start_matches(' ').len();
            stack.truncate(depth);
            stack.push(line.trim().to_string());
            let mut node = &mut root;
            for seg in &stack {
                node = node.children.entry(seg.clone()).or_default();
            }
        }
        root
    })
}

/// True when the OpenClaw schema has this path.
pub fn knows(path: &[Segment]) -> bool {
    let mut node = tree();
    for seg in path {
        match node.child(seg) {
            Some(n) => node = n,
            None => return false,
        }
    }
    true
}

/// Renders a path like `agents.entries.main.tools[0].name`.
pub fn display_path(path: &[Segment]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Segment::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    if out.is_empty() {
        "(root)".to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(parts: &[&str]) -> Vec<Segment> {
        parts
            .iter()
            .map(|s| match s.parse::<usize>() {
                Ok(i) => Segment::Index(i),
                Err(_) => Segment::Key((*s).to_string()),
            })
            .collect()
    }

    #[test]
    fn lookup_table() {
        let cases: Vec<(&[&str], bool)> = vec![
            (&["gateway", "port"], true),
            (&["gateway", "prot"], false),
            (&["wizard", "lastRunCommand"], true),
            (&["agents", "entries", "anything", "workspace"], true),
            (&["agents", "defaults", "model", "primary"], true),
            (&["agents", "defaults", "compaction", "mode"], true),
            (&["bindings", "0", "match", "channel"], true),
            (
                &["models", "providers", "x", "models", "3", "contextWindow"],
                true,
            ),
            (&["env", "vars", "FOO"], true),
            (&["nonsense"], false),
            (&[], true),
        ];
        for (path, want) in cases {
            assert_eq!(knows(&p(path)), want, "{path:?}");
        }
        assert_eq!(display_path(&p(&["a", "b", "2", "c"])), "a.b[2].c");
    }
}
