//! The method authorization algorithm (spec §3.3) as a pure function.

use serde_json::{json, Value};

use crate::connect::Role;
use crate::errors::ErrorShape;
use crate::methods::{self, MethodScope};
use crate::scopes::{self, ScopeSet};

/// Why a call was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthzError {
    /// The method is not callable by this role (`unauthorized role: <role>`).
    UnauthorizedRole(Role),
    /// A required scope is missing.
    MissingScope {
        missing: String,
        required: Vec<String>,
    },
}

impl AuthzError {
    pub fn to_error_shape(&self) -> ErrorShape {
        match self {
            AuthzError::UnauthorizedRole(role) => {
                ErrorShape::invalid_request(format!("unauthorized role: {}", role.as_str()))
            }
            AuthzError::MissingScope { missing, required } => ErrorShape::new(
                crate::errors::ErrorCode::Forbidden,
                format!("missing scope: {missing}"),
            )
            .with_details(
                json!({"code":"MISSING_SCOPE","missingScope":missing,"requiredScopes":required}),
            ),
        }
    }
}

/// Node commands that need `operator.admin` to invoke or approve.
pub const ADMIN_NODE_COMMANDS: [&str; 8] = [
    "system.run",
    "system.run.prepare",
    "system.which",
    "browser.proxy",
    "browser.proxy.upload.v1",
    "fs.listDir",
    "system.execApprovals.get",
    "system.execApprovals.set",
];

const SESSIONS_PATCH_WRITE_KEYS: [&str; 21] = [
    "key",
    "agentId",
    "expectedSessionId",
    "expectedLifecycleRevision",
    "expectedPermissionMode",
    "expectedMarkedUnreadAt",
    "label",
    "autoLabel",
    "icon",
    "color",
    "category",
    "boardFace",
    "boardPresentation",
    "pinned",
    "archived",
    "unread",
    "model",
    "agentRuntime",
    "thinkingLevel",
    "fastMode",
    "permissionMode",
];

const SESSIONS_DELETE_WRITE_KEYS: [&str; 5] = [
    "key",
    "agentId",
    "deleteTranscript",
    "expectedSessionId",
    "archivedOnly",
];

/// Authorize `method` for a connection with `role` and granted `scopes`.
///
/// `params_json` is the raw params text; it is parsed only for the few dynamic methods.
/// Unknown methods are authorized as `operator.admin` (the reference's fallback); the
/// caller answers `unknown method` afterwards.
pub fn authorize_method(
    role: Role,
    scopes: &ScopeSet,
    method: &str,
    params_json: Option<&str>,
) -> Result<(), AuthzError> {
    if method == "health" {
        return Ok(());
    }
    let spec = methods::lookup(method);
    let is_node_method = spec.is_some_and(|s| s.scope == MethodScope::Node);
    match role {
        Role::Node => {
            return if is_node_method {
                Ok(())
            } else {
                Err(AuthzError::UnauthorizedRole(Role::Node))
            };
        }
        Role::Operator => {
            if is_node_method {
                return Err(AuthzError::UnauthorizedRole(Role::Operator));
            }
        }
    }
    if method == "device.scopes.requestUpgrade" || method == "device.scopes.waitUpgrade" {
        return Ok(());
    }
    if scopes.is_admin() {
        return Ok(());
    }
    // Core table first; reserved prefixes (and the admin default) only for other methods.
    let required: Vec<&'static str> = match spec.map(|s| s.scope) {
        Some(MethodScope::Dynamic) => {
            let params: Value = params_json
                .and_then(|p| serde_json::from_str(p).ok())
                .unwrap_or(Value::Null);
            dynamic_required_scopes(method, &params)
        }
        Some(fixed) => vec![fixed.operator_scope().unwrap_or(scopes::ADMIN)],
        // Not a core method: reserved admin prefixes (`methods::has_admin_only_prefix`) and the
        // plugin default are both `operator.admin`; declared plugin scopes slot in here later.
        None => vec![scopes::ADMIN],
    };
    let session_method = method.starts_with("sessions.") || method.starts_with("session.");
    for req in &required {
        let ok = scopes.satisfies(req)
            || (session_method && *req == scopes::READ && scopes.satisfies(scopes::SESSIONS_READ))
            || (session_method
                && *req == scopes::WRITE
                && scopes.satisfies(scopes::SESSIONS_WRITE));
        if !ok {
            return Err(AuthzError::MissingScope {
                missing: (*req).to_string(),
                required: required.iter().map(|s| s.to_string()).collect(),
            });
        }
    }
    Ok(())
}

fn str_field<'a>(params: &'a Value, key: &str) -> Option<&'a str> {
    params.get(key).and_then(Value::as_str)
}

fn only_keys(params: &Value, allowed: &[&str]) -> bool {
    params
        .as_object()
        .is_none_or(|m| m.keys().all(|k| allowed.contains(&k.as_str())))
}

fn is_reset_command(message: &str) -> bool {
    let lower = message.to_ascii_lowercase();
    ["/new", "/reset"].iter().any(|cmd| {
        lower
            .strip_prefix(cmd)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
    })
}

fn sessions_patch_needs_admin(patch: &Value) -> bool {
    !only_keys(patch, &SESSIONS_PATCH_WRITE_KEYS)
        || str_field(patch, "permissionMode") == Some("full")
        || patch.get("sandboxMode").is_some()
}

/// Required scopes of a `dynamic` method, computed from its params.
pub fn dynamic_required_scopes(method: &str, params: &Value) -> Vec<&'static str> {
    use scopes::{ADMIN, PAIRING, READ, TALK_SECRETS, WRITE};
    match method {
        "agent" => {
            if str_field(params, "message").is_some_and(is_reset_command) {
                vec![ADMIN]
            } else {
                vec![WRITE]
            }
        }
        "node.invoke" => {
            if str_field(params, "command").is_some_and(|c| ADMIN_NODE_COMMANDS.contains(&c)) {
                vec![ADMIN]
            } else {
                vec![WRITE]
            }
        }
        "talk.config" => {
            if params.get("includeSecrets") == Some(&Value::Bool(true)) {
                vec![READ, TALK_SECRETS]
            } else {
                vec![READ]
            }
        }
        "environments.list" => {
            if params.get("runtimeId").is_some() {
                vec![WRITE]
            } else {
                vec![READ]
            }
        }
        "channels.pairing.approve" => {
            if params.get("bootstrapCommandOwner") == Some(&Value::Bool(true)) {
                vec![PAIRING, ADMIN]
            } else {
                vec![PAIRING]
            }
        }
        "fs.listDir" => {
            if params.get("nodeId").is_some() {
                vec![ADMIN]
            } else {
                vec![WRITE]
            }
        }
        "sessions.patch" => {
            if sessions_patch_needs_admin(params) {
                vec![ADMIN]
            } else {
                vec![WRITE]
            }
        }
        "sessions.patchMany" => {
            let patch = params.get("patch").unwrap_or(&Value::Null);
            if sessions_patch_needs_admin(patch) {
                vec![ADMIN]
            } else {
                vec![WRITE]
            }
        }
        "sessions.create" => {
            let admin = params.get("incognito") == Some(&Value::Bool(true))
                || params.get("execNode").is_some()
                || params.get("toolOverrides").is_some()
                || str_field(params, "permissionMode") == Some("full");
            if admin {
                vec![ADMIN]
            } else {
                vec![WRITE]
            }
        }
        "sessions.delete" => {
            let archived_only = params.get("archivedOnly") == Some(&Value::Bool(true));
            if archived_only && only_keys(params, &SESSIONS_DELETE_WRITE_KEYS) {
                vec![WRITE]
            } else {
                vec![ADMIN]
            }
        }
        "sessions.dispatch" => {
            if params.get("deviceId").is_some() || params.get("autoDevice").is_some() {
                vec![WRITE]
            } else {
                vec![ADMIN]
            }
        }
        "sessions.move" => {
            let to_profile = params
                .get("target")
                .and_then(|t| t.get("kind"))
                .and_then(Value::as_str)
                == Some("profile");
            if to_profile {
                vec![ADMIN]
            } else {
                vec![WRITE]
            }
        }
        // Plugin-declared; without a declaration the default is write.
        "plugins.sessionAction" => vec![WRITE],
        _ => vec![ADMIN],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::ErrorCode;

    fn op(scopes: &[&str]) -> ScopeSet {
        ScopeSet::new(scopes.iter().copied())
    }

    fn check(scopes: &[&str], method: &str, params: Option<&str>) -> Result<(), AuthzError> {
        authorize_method(Role::Operator, &op(scopes), method, params)
    }

    #[test]
    fn health_is_open_to_everyone() {
        assert_eq!(
            authorize_method(Role::Node, &ScopeSet::empty(), "health", None),
            Ok(())
        );
        assert_eq!(check(&[], "health", None), Ok(()));
    }

    #[test]
    fn node_role_is_limited_to_node_methods() {
        let node = ScopeSet::empty();
        assert_eq!(
            authorize_method(Role::Node, &node, "node.invoke.result", None),
            Ok(())
        );
        assert_eq!(
            authorize_method(Role::Node, &node, "skills.bins", None),
            Ok(())
        );
        assert_eq!(
            authorize_method(Role::Node, &node, "status", None),
            Err(AuthzError::UnauthorizedRole(Role::Node))
        );
        assert_eq!(
            authorize_method(Role::Node, &node, "no.such.method", None),
            Err(AuthzError::UnauthorizedRole(Role::Node))
        );
        assert_eq!(
            check(&[scopes::ADMIN], "node.invoke.result", None),
            Err(AuthzError::UnauthorizedRole(Role::Operator))
        );
    }

    #[test]
    fn missing_scope_error_matches_golden() {
        let err = check(&[scopes::READ], "chat.inject", Some("{}")).err();
        let shape = err.map(|e| e.to_error_shape());
        let v = serde_json::to_value(shape).unwrap_or_default();
        assert_eq!(
            v,
            json!({"code":"FORBIDDEN","message":"missing scope: operator.admin",
                   "details":{"code":"MISSING_SCOPE","missingScope":"operator.admin","requiredScopes":["operator.admin"]}})
        );
        assert_eq!(
            AuthzError::UnauthorizedRole(Role::Node)
                .to_error_shape()
                .code,
            ErrorCode::InvalidRequest
        );
    }

    #[test]
    fn read_scope_cases() {
        assert_eq!(check(&[scopes::READ], "status", None), Ok(()));
        // config.get is a core read method; only non-core methods under config.* need admin.
        assert_eq!(check(&[scopes::READ], "config.get", None), Ok(()));
        assert_eq!(
            check(&[scopes::READ], "config.set", None),
            Err(AuthzError::MissingScope {
                missing: scopes::ADMIN.into(),
                required: vec![scopes::ADMIN.into()]
            })
        );
        assert!(check(&[scopes::WRITE], "config.plugin.custom", None).is_err());
        assert!(check(&[], "status", None).is_err());
        assert_eq!(check(&[scopes::WRITE], "status", None), Ok(()));
        assert!(check(&[scopes::READ], "send", None).is_err());
        assert_eq!(check(&[scopes::PAIRING], "device.pair.list", None), Ok(()));
    }

    #[test]
    fn admin_prefixes_and_unknown_methods_need_admin() {
        assert!(check(&[scopes::WRITE], "wizard.anything", None).is_err());
        assert!(check(&[scopes::WRITE], "plugin.custom.method", None).is_err());
        assert_eq!(
            check(&[scopes::ADMIN], "plugin.custom.method", None),
            Ok(())
        );
    }

    #[test]
    fn scope_upgrade_requests_are_open_to_operators() {
        assert_eq!(check(&[], "device.scopes.requestUpgrade", None), Ok(()));
        assert_eq!(check(&[], "device.scopes.waitUpgrade", None), Ok(()));
    }

    #[test]
    fn session_methods_accept_session_scopes() {
        assert_eq!(
            check(&[scopes::SESSIONS_READ], "sessions.preview", None),
            Ok(())
        );
        assert_eq!(
            check(&[scopes::SESSIONS_WRITE], "sessions.fork", None),
            Ok(())
        );
        assert!(check(&[scopes::SESSIONS_READ], "sessions.fork", None).is_err());
        assert!(check(&[scopes::SESSIONS_READ], "status", None).is_err());
    }

    #[test]
    fn dynamic_rules() {
        let w = &[scopes::WRITE];
        assert_eq!(check(w, "agent", Some(r#"{"message":"hello"}"#)), Ok(()));
        assert!(check(w, "agent", Some(r#"{"message":"/reset now"}"#)).is_err());
        assert!(check(w, "agent", Some(r#"{"message":"/NEW"}"#)).is_err());
        assert_eq!(check(w, "agent", Some(r#"{"message":"/newer"}"#)), Ok(()));
        assert_eq!(
            check(w, "node.invoke", Some(r#"{"command":"camera.snap"}"#)),
            Ok(())
        );
        assert!(check(w, "node.invoke", Some(r#"{"command":"system.run"}"#)).is_err());
        assert_eq!(check(&[scopes::READ], "talk.config", Some("{}")), Ok(()));
        assert_eq!(
            check(
                &[scopes::READ],
                "talk.config",
                Some(r#"{"includeSecrets":true}"#)
            ),
            Err(AuthzError::MissingScope {
                missing: scopes::TALK_SECRETS.into(),
                required: vec![scopes::READ.into(), scopes::TALK_SECRETS.into()]
            })
        );
        assert_eq!(
            check(w, "sessions.patch", Some(r#"{"key":"k","label":"x"}"#)),
            Ok(())
        );
        assert!(check(
            w,
            "sessions.patch",
            Some(r#"{"key":"k","permissionMode":"full"}"#)
        )
        .is_err());
        assert!(check(
            w,
            "sessions.patch",
            Some(r#"{"key":"k","sandboxMode":"x"}"#)
        )
        .is_err());
        assert!(check(w, "sessions.patch", Some(r#"{"key":"k","execHost":"x"}"#)).is_err());
        assert_eq!(
            check(
                w,
                "sessions.patchMany",
                Some(r#"{"keys":["a"],"patch":{"pinned":true}}"#)
            ),
            Ok(())
        );
        assert_eq!(
            check(
                w,
                "sessions.delete",
                Some(r#"{"key":"k","archivedOnly":true}"#)
            ),
            Ok(())
        );
        assert!(check(w, "sessions.delete", Some(r#"{"key":"k"}"#)).is_err());
        assert!(check(w, "sessions.create", Some(r#"{"incognito":true}"#)).is_err());
        assert_eq!(
            check(w, "sessions.create", Some(r#"{"label":"x"}"#)),
            Ok(())
        );
        assert_eq!(
            check(w, "sessions.dispatch", Some(r#"{"deviceId":"d"}"#)),
            Ok(())
        );
        assert!(check(w, "sessions.dispatch", Some(r#"{}"#)).is_err());
        assert!(check(w, "sessions.move", Some(r#"{"target":{"kind":"profile"}}"#)).is_err());
        assert_eq!(check(w, "fs.listDir", Some(r#"{"path":"/"}"#)), Ok(()));
        assert!(check(w, "fs.listDir", Some(r#"{"nodeId":"n"}"#)).is_err());
        assert_eq!(
            check(&[scopes::READ], "environments.list", Some("{}")),
            Ok(())
        );
        assert!(check(
            &[scopes::READ],
            "environments.list",
            Some(r#"{"runtimeId":"r"}"#)
        )
        .is_err());
        assert_eq!(
            check(&[scopes::PAIRING], "channels.pairing.approve", Some("{}")),
            Ok(())
        );
        assert!(check(
            &[scopes::PAIRING],
            "channels.pairing.approve",
            Some(r#"{"bootstrapCommandOwner":true}"#)
        )
        .is_err());
        // Malformed params fall back to the least-privilege default of the method.
        assert_eq!(check(w, "agent", Some("not json")), Ok(()));
    }
}
