//! The operator scope model (spec §3.2).

pub const ADMIN: &str = "operator.admin";
pub const READ: &str = "operator.read";
pub const WRITE: &str = "operator.write";
pub const SESSIONS_READ: &str = "operator.sessions.read";
pub const SESSIONS_WRITE: &str = "operator.sessions.write";
pub const APPROVALS: &str = "operator.approvals";
pub const QUESTIONS: &str = "operator.questions";
pub const PAIRING: &str = "operator.pairing";
pub const TALK: &str = "operator.talk";
pub const TALK_SECRETS: &str = "operator.talk.secrets";

/// The closed set of known operator scopes, in bit order of [`ScopeSet`].
pub const KNOWN_OPERATOR_SCOPES: [&str; 10] = [
    ADMIN,
    READ,
    WRITE,
    SESSIONS_READ,
    SESSIONS_WRITE,
    APPROVALS,
    QUESTIONS,
    PAIRING,
    TALK,
    TALK_SECRETS,
];

/// Scopes the CLI asks for by default (`CLI_DEFAULT_OPERATOR_SCOPES`).
pub const CLI_DEFAULT_OPERATOR_SCOPES: [&str; 7] = [
    ADMIN,
    READ,
    WRITE,
    APPROVALS,
    QUESTIONS,
    PAIRING,
    TALK_SECRETS,
];

/// A set of granted scopes: known operator scopes as bits (checked on every request), anything
/// else kept verbatim and in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopeSet {
    bits: u16,
    /// Every granted scope string in the order granted (what `hello-ok.auth.scopes` shows).
    list: Vec<String>,
}

fn bit_of(scope: &str) -> Option<u16> {
    KNOWN_OPERATOR_SCOPES
        .iter()
        .position(|s| *s == scope)
        .map(|i| 1u16 << i)
}

impl ScopeSet {
    pub fn new<I, S>(scopes: I) -> ScopeSet
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = ScopeSet::default();
        for s in scopes {
            set.insert(s.as_ref());
        }
        set
    }

    pub fn empty() -> ScopeSet {
        ScopeSet::default()
    }

    pub fn insert(&mut self, scope: &str) {
        if self.list.iter().any(|s| s == scope) {
            return;
        }
        if let Some(b) = bit_of(scope) {
            self.bits |= b;
        }
        self.list.push(scope.to_string());
    }

    pub fn as_slice(&self) -> &[String] {
        &self.list
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    fn has_bit(&self, scope: &str) -> bool {
        bit_of(scope).is_some_and(|b| self.bits & b != 0)
    }

    pub fn contains(&self, scope: &str) -> bool {
        match bit_of(scope) {
            Some(b) => self.bits & b != 0,
            None => self.list.iter().any(|s| s == scope),
        }
    }

    pub fn is_admin(&self) -> bool {
        self.has_bit(ADMIN)
    }

    /// `operatorScopeSatisfied(required, granted)`.
    pub fn satisfies(&self, required: &str) -> bool {
        operator_scope_satisfied_by(required, self)
    }
}

fn operator_scope_satisfied_by(required: &str, granted: &ScopeSet) -> bool {
    if !required.starts_with("operator.") {
        return false;
    }
    if granted.contains(required) || granted.has_bit(ADMIN) {
        return true;
    }
    match required {
        READ | TALK | SESSIONS_WRITE => granted.has_bit(WRITE),
        SESSIONS_READ => {
            granted.has_bit(WRITE) || granted.has_bit(READ) || granted.has_bit(SESSIONS_WRITE)
        }
        _ => false,
    }
}

/// The satisfaction rule over plain strings (spec §3.2).
pub fn operator_scope_satisfied<S: AsRef<str>>(required: &str, granted: &[S]) -> bool {
    operator_scope_satisfied_by(required, &ScopeSet::new(granted.iter().map(|s| s.as_ref())))
}

/// Scope check for any role: `operator.*` uses the operator rule, `<role>.x` needs an exact grant.
pub fn scope_satisfied<S: AsRef<str>>(required: &str, granted: &[S]) -> bool {
    if required.starts_with("operator.") {
        operator_scope_satisfied(required, granted)
    } else {
        granted.iter().any(|g| g.as_ref() == required)
    }
}

/// `resolveMissingRequestedScope`: the first requested scope (trimmed; blanks skipped) that
/// the role's `allowed` grant does not cover. Operator scopes use the satisfaction rule, other
/// roles need `<role>.` prefixed scopes granted exactly.
pub fn missing_requested_scope<'a, S: AsRef<str>>(
    role: &str,
    requested: &'a [S],
    allowed: &[S],
) -> Option<&'a str> {
    let role = role.trim();
    let allowed: Vec<&str> = allowed.iter().map(|s| s.as_ref().trim()).collect();
    requested.iter().map(AsRef::as_ref).find(|raw| {
        let scope = raw.trim();
        if scope.is_empty() {
            return false;
        }
        let ok = if role == "operator" {
            operator_scope_satisfied(scope, &allowed)
        } else {
            scope
                .strip_prefix(role)
                .is_some_and(|rest| rest.starts_with('.'))
                && allowed.contains(&scope)
        };
        !ok
    })
}

/// `roleScopesAllow`: every requested scope is covered by the role's grant.
pub fn role_scopes_allow<S: AsRef<str>>(role: &str, requested: &[S], allowed: &[S]) -> bool {
    missing_requested_scope(role, requested, allowed).is_none()
}

/// Trimmed, de-duplicated, sorted scope list (how approved scope baselines are stored).
pub fn normalize_scope_list<S: AsRef<str>>(scopes: &[S]) -> Vec<String> {
    let mut out: Vec<String> = scopes
        .iter()
        .map(|s| s.as_ref().trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_satisfies_everything_operator() {
        for s in KNOWN_OPERATOR_SCOPES {
            assert!(operator_scope_satisfied(s, &[ADMIN]));
        }
        assert!(operator_scope_satisfied("operator.future.thing", &[ADMIN]));
        assert!(!operator_scope_satisfied("node.x", &[ADMIN]));
    }

    #[test]
    fn write_implies_read_talk_and_sessions() {
        for s in [READ, TALK, SESSIONS_READ, SESSIONS_WRITE, WRITE] {
            assert!(operator_scope_satisfied(s, &[WRITE]), "{s}");
        }
        for s in [ADMIN, APPROVALS, PAIRING, QUESTIONS, TALK_SECRETS] {
            assert!(!operator_scope_satisfied(s, &[WRITE]), "{s}");
        }
    }

    #[test]
    fn read_and_sessions_write_imply_sessions_read_only() {
        assert!(operator_scope_satisfied(SESSIONS_READ, &[READ]));
        assert!(operator_scope_satisfied(SESSIONS_READ, &[SESSIONS_WRITE]));
        assert!(!operator_scope_satisfied(READ, &[SESSIONS_WRITE]));
        assert!(!operator_scope_satisfied(WRITE, &[READ]));
        assert!(!operator_scope_satisfied(TALK_SECRETS, &[TALK]));
    }

    #[test]
    fn unknown_operator_scopes_need_exact_match() {
        assert!(operator_scope_satisfied(
            "operator.custom",
            &["operator.custom"]
        ));
        assert!(!operator_scope_satisfied("operator.custom", &[WRITE]));
    }

    #[test]
    fn other_roles_need_exact_grants() {
        assert!(scope_satisfied("node.camera", &["node.camera"]));
        assert!(!scope_satisfied("node.camera", &[ADMIN]));
    }

    #[test]
    fn role_scopes_allow_follows_the_reference() {
        let admin = [ADMIN.to_string()];
        let read = [READ.to_string()];
        let req = [WRITE.to_string(), " ".to_string()];
        assert!(role_scopes_allow("operator", &req, &admin));
        assert_eq!(
            missing_requested_scope("operator", &req, &read),
            Some(WRITE)
        );
        assert!(role_scopes_allow::<String>("operator", &[], &[]));
        let node_req = ["node.camera".to_string()];
        assert!(role_scopes_allow("node", &node_req, &node_req));
        assert!(!role_scopes_allow("node", &node_req, &admin));
        assert!(!role_scopes_allow("node", &admin, &admin));
        assert_eq!(
            normalize_scope_list(&[WRITE, " operator.admin", WRITE, ""]),
            vec![ADMIN.to_string(), WRITE.to_string()]
        );
    }

    #[test]
    fn scope_set_keeps_order_and_dedupes() {
        let s = ScopeSet::new([READ, "x.y", READ, ADMIN]);
        assert_eq!(
            s.as_slice(),
            &[READ.to_string(), "x.y".to_string(), ADMIN.to_string()]
        );
        assert!(s.is_admin());
        assert!(s.contains("x.y"));
    }
}
