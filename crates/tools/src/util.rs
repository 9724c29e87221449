//! Small shared helpers.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Largest suffix of `s` with at most `max` bytes, cut on a char boundary.
pub(crate) fn tail_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while start < s.len() && !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// First `max` chars of `s`.
pub(crate) fn truncate_chars(s: &str, max: usize) -> (&str, bool) {
    match s.char_indices().nth(max) {
        Some((idx, _)) => (&s[..idx], true),
        None => (s, false),
    }
}

/// Glob match with `*` (any run, including `/` when `slash_star` is true), `**` (any run) and `?`.
/// Case handling is the caller's (lower-case both sides for case-insensitive matching).
pub(crate) fn glob_match(pattern: &str, text: &str, star_crosses_slash: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_inner(&p, &t, star_crosses_slash)
}

fn glob_inner(p: &[char], t: &[char], star_crosses_slash: bool) -> bool {
    // Iterative matcher with backtracking on the last star (classic wildcard algorithm),
    // extended so a single `*` can be barred from crossing `/`.
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize, bool)> = None; // (pattern idx after star, text idx, crosses)
    while ti < t.len() {
        if pi < p.len() && p[pi] == '*' {
            let double = pi + 1 < p.len() && p[pi + 1] == '*';
            let crosses = star_crosses_slash || double;
            pi += if double { 2 } else { 1 };
            // `**/` also matches zero directories.
            if double
                && pi < p.len()
                && p[pi] == '/'
                && glob_inner(&p[pi + 1..], &t[ti..], star_crosses_slash)
            {
                return true;
            }
            star = Some((pi, ti, crosses));
            continue;
        }
        if pi < p.len() && (p[pi] == '?' && t[ti] != '/' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
            continue;
        }
        match star {
            Some((sp, st, crosses)) if crosses || t[st] != '/' => {
                star = Some((sp, st + 1, crosses));
                pi = sp;
                ti = st + 1;
            }
            _ => return false,
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// Deserialize validated arguments into the tool's argument struct.
pub(crate) fn parse_args<T: serde::de::DeserializeOwned>(
    tool: &str,
    args: serde_json::Value,
) -> Result<T, crate::ToolError> {
    serde_json::from_value(args).map_err(|e| crate::ToolError::invalid(tool, e.to_string()))
}

/// Run blocking work (file I/O) off the async workers.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, crate::ToolError>
where
    F: FnOnce() -> Result<T, crate::ToolError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| crate::ToolError::Failed(format!("internal task failed: {e}")))?
}

/// A non-negative JSON number as usize (floats truncated; negative/NaN → 0).
pub(crate) fn num_to_usize(n: f64) -> usize {
    if n.is_finite() && n > 0.0 {
        // Saturating float→int conversion is the intent here.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let v = n as usize;
        v
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("*", "anything/at/all", true));
        assert!(glob_match("web_*", "web_fetch", true));
        assert!(!glob_match("web_*", "webfetch", true));
        assert!(glob_match("/usr/bin/*", "/usr/bin/rg", false));
        assert!(!glob_match("/usr/*", "/usr/bin/rg", false));
        assert!(glob_match("/usr/**", "/usr/bin/rg", false));
        assert!(glob_match("/opt/**/bin/rg", "/opt/bin/rg", false));
        assert!(glob_match("/opt/**/bin/rg", "/opt/a/b/bin/rg", false));
        assert!(glob_match("r?", "rg", false));
        assert!(!glob_match("rg", "rgx", false));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(tail_bytes("héllo", 4), "llo");
        assert_eq!(truncate_chars("héllo", 2), ("hé", true));
    }
}
