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
    gateway_network(root, files, &mut issues);
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

fn str_of(node: Option<&Node>) -> Option<&str> {
    match node.map(|n| &n.value) {
        Some(NodeValue::String(s)) => Some(s.as_str()),
        _ => None,
    }
}

fn bool_of(node: Option<&Node>) -> Option<bool> {
    match node.map(|n| &n.value) {
        Some(NodeValue::Bool(b)) => Some(*b),
        _ => None,
    }
}

fn number_of(node: &Node) -> Option<f64> {
    match &node.value {
        NodeValue::Number(n) => n.as_f64(),
        _ => None,
    }
}

/// Every entry of an address list must be an IP or a CIDR range.
fn address_list(files: &[PathBuf], node: Option<&Node>, path: &str, issues: &mut Vec<Issue>) {
    let Some(NodeValue::Array(items)) = node.map(|n| &n.value) else {
        return;
    };
    for (i, item) in items.iter().enumerate() {
        if let NodeValue::String(text) = &item.value {
            if let Err(reason) = crate::net::IpRange::parse(text) {
                issues.push(issue(files, item, format!("{path}[{i}]"), &reason));
            }
        }
    }
}

/// `gateway.tls`, `gateway.auth.rateLimit`, trusted-proxy auth and the address lists.
fn gateway_network(root: &Node, files: &[PathBuf], issues: &mut Vec<Issue>) {
    let Some(gateway) = child(root, "gateway") else {
        return;
    };
    address_list(
        files,
        child(gateway, "trustedProxies"),
        "gateway.trustedProxies",
        issues,
    );
    address_list(
        files,
        at(gateway, &["nodes", "pairing", "autoApproveCidrs"]),
        "gateway.nodes.pairing.autoApproveCidrs",
        issues,
    );
    if let Some(tls) = child(gateway, "tls") {
        let cert = str_of(child(tls, "certPath")).filter(|s| !s.trim().is_empty());
        let key = str_of(child(tls, "keyPath")).filter(|s| !s.trim().is_empty());
        match (cert, key) {
            (Some(_), None) | (None, Some(_)) => {
                let (missing, present) = if cert.is_some() {
                    ("keyPath", "certPath")
                } else {
                    ("certPath", "keyPath")
                };
                issues.push(issue(
                    files,
                    tls,
                    format!("gateway.tls.{missing}"),
                    &format!("{present} is set but {missing} is not; set both (or neither, to use autoGenerate)"),
                ));
            }
            (None, None)
                if bool_of(child(tls, "enabled")) == Some(true)
                    && bool_of(child(tls, "autoGenerate")) == Some(false) =>
            {
                issues.push(issue(
                    files,
                    tls,
                    "gateway.tls".into(),
                    "TLS is enabled but there is no certificate: set certPath and keyPath, or autoGenerate: true",
                ));
            }
            _ => {}
        }
    }
    if let Some(limit) = at(gateway, &["auth", "rateLimit"]) {
        for key in ["maxAttempts", "windowMs"] {
            if let Some(n) = child(limit, key) {
                if number_of(n).is_some_and(|v| v < 1.0) {
                    issues.push(issue(
                        files,
                        n,
                        format!("gateway.auth.rateLimit.{key}"),
                        "must be at least 1",
                    ));
                }
            }
        }
    }
    if let Some(mode) = at(gateway, &["auth", "mode"]) {
        if str_of(Some(mode)) == Some("trusted-proxy") {
            let header = str_of(at(gateway, &["auth", "trustedProxy", "userHeader"]));
            if header.is_none_or(|h| h.trim().is_empty()) {
                issues.push(issue(
                    files,
                    mode,
                    "gateway.auth.trustedProxy.userHeader".into(),
                    "required when gateway.auth.mode is \"trusted-proxy\" (the header your proxy puts the authenticated user in)",
                ));
            }
            let proxies = match child(gateway, "trustedProxies").map(|n| &n.value) {
                Some(NodeValue::Array(items)) => items.len(),
                _ => 0,
            };
            if proxies == 0 {
                issues.push(issue(
                    files,
                    mode,
                    "gateway.trustedProxies".into(),
                    "gateway.auth.mode \"trusted-proxy\" needs at least one proxy address here (identity headers are believed only from these addresses)",
                ));
            }
        }
    }
}
