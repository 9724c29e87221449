//! The core method table (spec §5.1) and lookups over it.

use crate::method_table::CORE_METHODS;
use crate::scopes;

/// Descriptor scope of a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodScope {
    Read,
    Write,
    Admin,
    Pairing,
    Approvals,
    Questions,
    Talk,
    SessionsWrite,
    /// Node-role only.
    Node,
    /// Computed from params (spec §3.3 dynamic rules).
    Dynamic,
}

impl MethodScope {
    /// The operator scope string, if this is a fixed operator scope.
    pub fn operator_scope(self) -> Option<&'static str> {
        match self {
            MethodScope::Read => Some(scopes::READ),
            MethodScope::Write => Some(scopes::WRITE),
            MethodScope::Admin => Some(scopes::ADMIN),
            MethodScope::Pairing => Some(scopes::PAIRING),
            MethodScope::Approvals => Some(scopes::APPROVALS),
            MethodScope::Questions => Some(scopes::QUESTIONS),
            MethodScope::Talk => Some(scopes::TALK),
            MethodScope::SessionsWrite => Some(scopes::SESSIONS_WRITE),
            MethodScope::Node | MethodScope::Dynamic => None,
        }
    }
}

/// One row of the core method table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MethodSpec {
    pub name: &'static str,
    pub scope: MethodScope,
    /// `h`: not advertised in `features.methods` (still callable).
    pub hidden: bool,
    /// `s`: `UNAVAILABLE` until startup sidecars are ready.
    pub startup: bool,
    /// `c`: control-plane write, rate limited.
    pub control_plane_write: bool,
}

/// All core methods, sorted by name.
pub fn core_methods() -> &'static [MethodSpec] {
    &CORE_METHODS
}

/// Look a core method up by name (binary search over the sorted table).
pub fn lookup(name: &str) -> Option<&'static MethodSpec> {
    CORE_METHODS
        .binary_search_by(|m| m.name.as_bytes().cmp(name.as_bytes()))
        .ok()
        .map(|i| &CORE_METHODS[i])
}

/// Prefixes that are always `operator.admin`, even for plugin methods.
pub const ADMIN_ONLY_PREFIXES: [&str; 4] = ["config.", "exec.approvals.", "wizard.", "update."];

pub fn has_admin_only_prefix(method: &str) -> bool {
    ADMIN_ONLY_PREFIXES.iter().any(|p| method.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::method_table::CORE_METHOD_COUNT;

    #[test]
    fn table_is_complete_sorted_and_unique() {
        assert_eq!(CORE_METHOD_COUNT, 482);
        for pair in CORE_METHODS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "{} !< {}",
                pair[0].name,
                pair[1].name
            );
        }
    }

    #[test]
    fn lookup_finds_known_rows() {
        let h = lookup("health").map(|m| m.scope);
        assert_eq!(h, Some(MethodScope::Read));
        let c = lookup("connect").copied();
        assert!(c.is_some_and(|c| c.hidden && c.scope == MethodScope::Admin));
        let a = lookup("agent").copied();
        assert!(a.is_some_and(|a| a.scope == MethodScope::Dynamic && a.startup));
        let e = lookup("environments.create").copied();
        assert!(e.is_some_and(|e| e.startup && e.control_plane_write));
        assert_eq!(
            lookup("node.invoke.result").map(|m| m.scope),
            Some(MethodScope::Node)
        );
        assert_eq!(lookup("no.such.method"), None);
        assert_eq!(lookup(""), None);
    }

    #[test]
    fn counts_match_the_spec() {
        let node = CORE_METHODS
            .iter()
            .filter(|m| m.scope == MethodScope::Node)
            .count();
        assert_eq!(node, 11);
        let advertised = CORE_METHODS.iter().filter(|m| !m.hidden).count();
        // Reference: 460 advertised core methods (466 minus plugin methods, plus mcp.authLogin filtering).
        assert!(
            advertised > 440 && advertised < CORE_METHOD_COUNT,
            "{advertised}"
        );
    }

    #[test]
    fn admin_prefixes() {
        assert!(has_admin_only_prefix("config.get"));
        assert!(has_admin_only_prefix("wizard.anything"));
        assert!(!has_admin_only_prefix("configx"));
    }
}
