//! Rules the schema cannot express (runtime spec §1.2), reported like schema issues.

use std::path::PathBuf;

use crate::json5::{Node, NodeValue};
use crate::validate::Issue;

fn child<'n>(node: &'n Node, key: &str) -> Option<&'n Node> {
    node.get(key)
}

fn at<'n>(root: &'n Node, path: &[&str]) -> Option<&'n Node> {
    path.iter().try_fold(root, |n, k| child(n, k))
}

fn issue(files: &[PathBuf], node: &Node, path: String, message: &str) -> Issue {
    Issue {
        file: files
            .get(node.pos.file as usize)
            .cloned()
            .unwrap_or_default(),
        line: node.pos.line,
        col: node.pos.col,
        path,
        message: message.to_string(),
        allowed_values: None,
    }
}

pub(crate) fn check(root: &Node, files: &[PathBuf]) -> Vec<Issue> {
    let mut issues = Vec::new();
    if let Some(auth) = at(root, &["gateway", "auth"]) {
        if child(auth, "token").is_some()
            && child(auth, "password").is_some()
            && child(auth, "mode").is_none()
        {
            issues.push(issue(
                files,
                auth,
                "gateway.auth".into(),
                "both token and password are set; choose one with gateway.auth.mode (\"token\" or \"password\")",
            ));
        }
    }
    let mut scopes: Vec<(String, &Node)> = Vec::new();
    if let Some(tools) = child(root, "tools") {
        scopes.push(("tools".into(), tools));
        if let Some(NodeValue::Object(providers)) = child(tools, "byProvider").map(|n| &n.value) {
            for (k, v) in providers {
                scopes.push((format!("tools.byProvider.{}", k.name), v));
            }
        }
    }
    for (path, scope) in scopes {
        if let (Some(_), Some(also)) = (child(scope, "allow"), child(scope, "alsoAllow")) {
            issues.push(issue(
                files,
                also,
                format!("{path}.alsoAllow"),
                "allow and alsoAllow cannot be used in the same scope; list everything in allow",
            ));
        }
    }
    issues
}
