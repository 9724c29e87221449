//! Agent ids: `^[a-z0-9][a-z0-9_-]{0,63}$` (case-insensitive, stored lower-case).

/// The agent every surface falls back to when nothing else names one.
pub const DEFAULT_AGENT_ID: &str = "main";

const MAX_AGENT_ID_LEN: usize = 64;

/// True when `id` is already a valid, normalised agent id.
pub fn is_valid_agent_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_AGENT_ID_LEN {
        return false;
    }
    let first_ok = bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit();
    first_ok
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// Normalises a user-supplied agent id: lower-cases it, replaces invalid characters by `-`,
/// drops leading separators (the first character must be alphanumeric), truncates to 64 characters and falls back to `main` when
/// nothing usable is left.
pub fn normalize_agent_id(raw: &str) -> String {
    let mapped: String = raw
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = mapped.trim_start_matches(['-', '_']);
    let out: String = trimmed.chars().take(MAX_AGENT_ID_LEN).collect();
    if out.is_empty() {
        DEFAULT_AGENT_ID.to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_table() {
        let cases = [
            ("main", "main"),
            ("Main", "main"),
            ("  ops  ", "ops"),
            ("My Agent", "my-agent"),
            ("work_bot-2", "work_bot-2"),
            ("-lead", "lead"),
            ("trail!", "trail-"),
            ("", "main"),
            ("!!!", "main"),
            ("Ünïcode", "n-code"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_agent_id(raw), want, "normalize({raw:?})");
            assert!(is_valid_agent_id(&normalize_agent_id(raw)));
        }
        let long = "a".repeat(100);
        assert_eq!(normalize_agent_id(&long).len(), 64);
    }

    #[test]
    fn validity_table() {
        for ok in ["main", "a", "0x", "a_b-c", &"z".repeat(64)] {
            assert!(is_valid_agent_id(ok), "{ok}");
        }
        for bad in ["", "Main", "-a", "_a", "a b", "a:b", &"z".repeat(65)] {
            assert!(!is_valid_agent_id(bad), "{bad}");
        }
    }
}
