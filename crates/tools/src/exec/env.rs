//! Environment for exec'd commands: inherited variables minus secrets, plus validated
//! per-call overrides.

use std::collections::BTreeMap;

use crate::error::ToolError;

/// Substrings that mark a variable name as secret (upper-cased comparison).
const SECRET_NAME_PARTS: &[&str] = &[
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "CREDENTIAL",
    "PRIVATE",
    "API_KEY",
    "APIKEY",
    "ACCESS_KEY",
    "AUTH",
    "COOKIE",
    "SESSION_KEY",
    "SIGNING_KEY",
    "ENCRYPTION_KEY",
];

/// Name prefixes that are always dropped (gateway credentials, cloud credentials).
const SECRET_NAME_PREFIXES: &[&str] = &[
    "PINCER_GATEWAY_",
    "OPENCLAW_GATEWAY_",
    "AWS_",
    "AZURE_",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GCP_",
    "OPENAI_",
    "ANTHROPIC_",
    "GITHUB_TOKEN",
    "GH_TOKEN",
    "NPM_TOKEN",
    "SSH_AUTH_SOCK",
];

/// Is this inherited variable a secret the command must not see?
pub fn is_secret_var(name: &str, value: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if upper.ends_with("_KEY") || upper.ends_with("_PAT") || upper.ends_with("_DSN") {
        return true;
    }
    if SECRET_NAME_PARTS.iter().any(|p| upper.contains(p))
        || SECRET_NAME_PREFIXES.iter().any(|p| upper.starts_with(p))
    {
        return true;
    }
    // URLs with embedded credentials (`postgres://user:pass@host/db`).
    url_has_credentials(value)
}

fn url_has_credentials(value: &str) -> bool {
    let Some(idx) = value.find("://") else {
        return false;
    };
    let rest = &value[idx + 3..];
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// Loader and search-path variables the model may not set (binary hijacking).
fn is_forbidden_override(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper == "PATH" || upper.starts_with("LD_") || upper.starts_with("DYLD_")
}

/// Build the child's environment.
///
/// `inherited` is the gateway's environment; `keep` names variables that survive scrubbing
/// even if they look secret (config opt-in); `overrides` are the model's literal `env`.
pub fn build_env<I>(
    inherited: I,
    keep: &[String],
    path_prepend: &[String],
    overrides: &BTreeMap<String, String>,
) -> Result<Vec<(String, String)>, ToolError>
where
    I: IntoIterator<Item = (String, String)>,
{
    for key in overrides.keys() {
        if key.is_empty() || key.contains('=') || key.contains('\0') {
            return Err(ToolError::invalid(
                "exec",
                format!("invalid environment variable name '{key}'"),
            ));
        }
        if is_forbidden_override(key) {
            return Err(ToolError::Denied(format!(
                "exec refuses env override '{key}': PATH and loader variables (LD_*, DYLD_*) \
                 cannot be set by tools."
            )));
        }
    }
    let mut env: BTreeMap<String, String> = inherited
        .into_iter()
        .filter(|(k, v)| {
            let upper = k.to_ascii_uppercase();
            if upper.starts_with("LD_") || upper.starts_with("DYLD_") {
                return false;
            }
            keep.iter().any(|kk| kk == k) || !is_secret_var(k, v)
        })
        .collect();
    if !path_prepend.is_empty() {
        let current = env
            .get("PATH")
            .cloned()
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        let mut parts: Vec<String> = path_prepend.to_vec();
        parts.push(current);
        env.insert("PATH".into(), parts.join(":"));
    }
    env.entry("PATH".into())
        .or_insert_with(|| "/usr/local/bin:/usr/bin:/bin".into());
    // Pagers would wait for a terminal that is not there.
    env.insert("PAGER".into(), "cat".into());
    env.insert("GIT_PAGER".into(), "cat".into());
    for (k, v) in overrides {
        env.insert(k.clone(), v.clone());
    }
    env.insert("OPENCLAW_SHELL".into(), "exec".into());
    Ok(env.into_iter().collect())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_are_recognised() {
        assert!(is_secret_var("GITHUB_TOKEN", "x"));
        assert!(is_secret_var("MY_API_KEY", "x"));
        assert!(is_secret_var("DB_PASSWORD", "x"));
        assert!(is_secret_var("PINCER_GATEWAY_TOKEN", "x"));
        assert!(is_secret_var("DATABASE_URL", "postgres://u:p@h/db"));
        assert!(!is_secret_var("DATABASE_URL", "postgres://h/db"));
        assert!(!is_secret_var("HOME", "/root"));
        assert!(!is_secret_var("LANG", "C.UTF-8"));
    }

    #[test]
    fn overrides_are_validated() {
        let inherited = vec![("HOME".to_owned(), "/h".to_owned())];
        let mut o = BTreeMap::new();
        o.insert("PATH".to_owned(), "/evil".to_owned());
        assert!(matches!(
            build_env(inherited.clone(), &[], &[], &o),
            Err(ToolError::Denied(_))
        ));
        let mut o = BTreeMap::new();
        o.insert("LD_PRELOAD".to_owned(), "x.so".to_owned());
        assert!(build_env(inherited.clone(), &[], &[], &o).is_err());
        let mut o = BTreeMap::new();
        o.insert("FOO".to_owned(), "bar".to_owned());
        let env = build_env(inherited, &[], &["/opt/bin".to_owned()], &o).unwrap();
        assert!(env.contains(&("FOO".into(), "bar".into())));
        assert!(env.contains(&("OPENCLAW_SHELL".into(), "exec".into())));
        let path = env.iter().find(|(k, _)| k == "PATH").unwrap();
        assert!(path.1.starts_with("/opt/bin:"));
    }
}
