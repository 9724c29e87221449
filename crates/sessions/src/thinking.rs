//! The reasoning-effort level (`/think <level>`, `thinkingDefault`, `sessions.patch
//! thinkingLevel`, a run's request shaping). One enum for the whole workspace: the config
//! crate re-exports it for `agents.*.thinkingDefault`, the providers crate maps it onto each
//! wire API's effort/budget knobs.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Reasoning effort, in the reference's spelling.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ThinkingLevel {
    #[default]
    Off,
    Minimal,
    Low,
    Medium,
    High,
    Xhigh,
    Adaptive,
    Max,
    Ultra,
}

impl ThinkingLevel {
    /// Every level, weakest first.
    pub const ALL: [ThinkingLevel; 9] = [
        ThinkingLevel::Off,
        ThinkingLevel::Minimal,
        ThinkingLevel::Low,
        ThinkingLevel::Medium,
        ThinkingLevel::High,
        ThinkingLevel::Xhigh,
        ThinkingLevel::Adaptive,
        ThinkingLevel::Max,
        ThinkingLevel::Ultra,
    ];

    /// The wire/config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ThinkingLevel::Off => "off",
            ThinkingLevel::Minimal => "minimal",
            ThinkingLevel::Low => "low",
            ThinkingLevel::Medium => "medium",
            ThinkingLevel::High => "high",
            ThinkingLevel::Xhigh => "xhigh",
            ThinkingLevel::Adaptive => "adaptive",
            ThinkingLevel::Max => "max",
            ThinkingLevel::Ultra => "ultra",
        }
    }

    /// Parses the spelling (ASCII case-insensitive).
    pub fn parse(value: &str) -> Option<ThinkingLevel> {
        let value = value.trim();
        Self::ALL
            .into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(value))
    }
}

impl fmt::Display for ThinkingLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_match_the_entry_constants() {
        for level in ThinkingLevel::ALL {
            assert_eq!(ThinkingLevel::parse(level.as_str()), Some(level));
            let json = serde_json::to_string(&level).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", level.as_str()));
        }
        let names: Vec<&str> = ThinkingLevel::ALL.iter().map(|l| l.as_str()).collect();
        assert_eq!(names, crate::entry::THINKING_LEVELS);
        assert_eq!(ThinkingLevel::parse(" HIGH "), Some(ThinkingLevel::High));
        assert_eq!(ThinkingLevel::parse("default"), None);
    }
}
