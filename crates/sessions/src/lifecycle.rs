//! Session lifecycle rules (runtime spec §3.2 and §2.4 "Reset freshness").
//!
//! * The first message for a key creates a new sessionId (uuid v4) and a transcript header.
//! * Automatic resets: `session.reset.mode` `none` (default: never), `daily` (a new sessionId
//!   on the first message after the local `atHour` boundary, judged on `sessionStartedAt`),
//!   `idle` (a new sessionId when a message arrives more than `idleMinutes` after
//!   `lastInteractionAt`). With `daily` and `idleMinutes` both set, whichever expires first
//!   wins.
//! * `/reset` appends a `reset` entry to the *same* sessionId; `/new` (and `sessions.reset`)
//!   archives the current sessionId and starts a fresh one.
//! * Heartbeat, cron and exec events touch `updatedAt` only, so they never keep a session
//!   "fresh" for idle purposes nor start a daily window.

use crate::entry::SessionEntry;
use crate::time::last_daily_boundary;

/// A new sessionId (uuid v4, lower-case hyphenated like the reference).
pub fn new_session_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// `session.reset.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ResetMode {
    #[default]
    None,
    Daily,
    Idle,
}

/// The effective reset policy of one session (after `resetByChannel` > `resetByType` >
/// `reset` resolution, which the config crate performs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResetPolicy {
    pub mode: ResetMode,
    /// Local hour of the daily boundary, 0–23 (default 4).
    pub at_hour: u8,
    pub idle_minutes: Option<u32>,
}

impl Default for ResetPolicy {
    fn default() -> Self {
        ResetPolicy {
            mode: ResetMode::None,
            at_hour: 4,
            idle_minutes: None,
        }
    }
}

/// Why a transcript window ended / a `reset` entry was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResetReason {
    New,
    Reset,
    Idle,
    Daily,
    CronStale,
}

impl ResetReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ResetReason::New => "new",
            ResetReason::Reset => "reset",
            ResetReason::Idle => "idle",
            ResetReason::Daily => "daily",
            ResetReason::CronStale => "cron-stale",
        }
    }

    pub fn parse(s: &str) -> Option<ResetReason> {
        [
            ResetReason::New,
            ResetReason::Reset,
            ResetReason::Idle,
            ResetReason::Daily,
            ResetReason::CronStale,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// How the store records a window that began because of this reason.
    pub fn window_reason(self) -> WindowReason {
        match self {
            ResetReason::New | ResetReason::Reset => WindowReason::Reset,
            ResetReason::Idle | ResetReason::Daily | ResetReason::CronStale => {
                WindowReason::Rollover
            }
        }
    }
}

/// Why a sessionId (transcript window) began (the reference's `session_windows.reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowReason {
    Initial,
    Reset,
    Rollover,
    Fork,
    Compaction,
}

impl WindowReason {
    pub fn as_str(self) -> &'static str {
        match self {
            WindowReason::Initial => "initial",
            WindowReason::Reset => "reset",
            WindowReason::Rollover => "rollover",
            WindowReason::Fork => "fork",
            WindowReason::Compaction => "compaction",
        }
    }

    pub fn parse(s: &str) -> Option<WindowReason> {
        [
            WindowReason::Initial,
            WindowReason::Reset,
            WindowReason::Rollover,
            WindowReason::Fork,
            WindowReason::Compaction,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// Outcome of checking a session before an inbound message is processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// No entry yet: create the first sessionId.
    Missing,
    /// Keep the current sessionId.
    Fresh,
    /// Start a new sessionId for this reason.
    Stale(ResetReason),
}

/// Decides whether an inbound *message* at `now_ms` continues `entry`'s sessionId.
/// `utc_offset_ms` is the local time zone's offset at `now_ms` (the gateway's clock).
pub fn evaluate_freshness(
    entry: Option<&SessionEntry>,
    policy: &ResetPolicy,
    now_ms: i64,
    utc_offset_ms: i64,
) -> Freshness {
    let Some(entry) = entry else {
        return Freshness::Missing;
    };
    let started = entry
        .session_started_at
        .or(entry.created_at)
        .unwrap_or(entry.updated_at);
    let last_interaction = entry.last_interaction_at.unwrap_or(started);
    let idle_expired = |minutes: u32| now_ms - last_interaction > i64::from(minutes) * 60_000;
    match policy.mode {
        ResetMode::None => Freshness::Fresh,
        ResetMode::Idle => match policy.idle_minutes {
            Some(m) if idle_expired(m) => Freshness::Stale(ResetReason::Idle),
            _ => Freshness::Fresh,
        },
        ResetMode::Daily => {
            let boundary = last_daily_boundary(now_ms, policy.at_hour, utc_offset_ms);
            let daily_expiry = (started < boundary).then_some(boundary);
            let idle_expiry = policy
                .idle_minutes
                .filter(|m| idle_expired(*m))
                .map(|m| last_interaction + i64::from(m) * 60_000);
            match (daily_expiry, idle_expiry) {
                (Some(d), Some(i)) if i < d => Freshness::Stale(ResetReason::Idle),
                (Some(_), _) => Freshness::Stale(ResetReason::Daily),
                (None, Some(_)) => Freshness::Stale(ResetReason::Idle),
                (None, None) => Freshness::Fresh,
            }
        }
    }
}

/// What happened to a session, for deciding which timestamps move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    /// An inbound user message (channel, chat.send, agent): interaction + activity.
    UserMessage,
    /// Agent output, tool activity, a run ending: activity only.
    AgentActivity,
    /// Heartbeat, cron or exec events: `updatedAt` only.
    System,
}

impl Touch {
    /// Moves the timestamps this event owns to `now_ms` (never backwards).
    pub fn apply(self, entry: &mut SessionEntry, now_ms: i64) {
        let bump = |slot: &mut Option<i64>| *slot = Some(slot.map_or(now_ms, |v| v.max(now_ms)));
        entry.updated_at = entry.updated_at.max(now_ms);
        match self {
            Touch::UserMessage => {
                bump(&mut entry.last_interaction_at);
                bump(&mut entry.last_activity_at);
            }
            Touch::AgentActivity => bump(&mut entry.last_activity_at),
            Touch::System => {}
        }
    }
}

/// How a reset is carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResetPlan {
    /// Append a `reset` entry with this reason to the current sessionId (`/reset`).
    InPlace { reason: ResetReason },
    /// Close the current sessionId and open a new one (`/new`, daily, idle,
    /// `sessions.reset`).
    NewSession { reason: ResetReason },
}

/// A reset-like chat command recognised at the start of a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResetCommand {
    /// `/new [model]`: archive and start fresh, optionally on another model.
    New { model: Option<String> },
    /// `/reset`, or a `session.resetTriggers` phrase; `tail` is the follow-up text kept as
    /// the next message.
    Reset { tail: Option<String> },
    /// `/reset soft [message]`: keep the transcript, drop backend session ids, rerun startup.
    ResetSoft { tail: Option<String> },
}

impl ResetCommand {
    pub fn plan(&self) -> ResetPlan {
        match self {
            ResetCommand::New { .. } => ResetPlan::NewSession {
                reason: ResetReason::New,
            },
            ResetCommand::Reset { .. } | ResetCommand::ResetSoft { .. } => ResetPlan::InPlace {
                reason: ResetReason::Reset,
            },
        }
    }
}

/// Recognises `/new`, `/reset`, `/reset soft` and the configured `resetTriggers` phrases
/// (case-insensitive, whole word, follow-up text kept).
pub fn parse_reset_command(text: &str, triggers: &[String]) -> Option<ResetCommand> {
    let trimmed = text.trim_start();
    let tail_of = |rest: &str| {
        let t = rest.trim();
        (!t.is_empty()).then(|| t.to_string())
    };
    if let Some(rest) = strip_word(trimmed, "/new") {
        let model = rest.split_whitespace().next().map(str::to_string);
        return Some(ResetCommand::New { model });
    }
    if let Some(rest) = strip_word(trimmed, "/reset") {
        if let Some(after_soft) = strip_word(rest.trim_start(), "soft") {
            return Some(ResetCommand::ResetSoft {
                tail: tail_of(after_soft),
            });
        }
        return Some(ResetCommand::Reset {
            tail: tail_of(rest),
        });
    }
    triggers.iter().find_map(|trigger| {
        let trigger = trigger.trim();
        if trigger.is_empty() {
            return None;
        }
        strip_word(trimmed, trigger).map(|rest| ResetCommand::Reset {
            tail: tail_of(rest),
        })
    })
}

/// `text` minus a leading `word` (ASCII case-insensitive) that ends at whitespace or the end.
fn strip_word<'a>(text: &'a str, word: &str) -> Option<&'a str> {
    let head = text.get(..word.len())?;
    if !head.eq_ignore_ascii_case(word) {
        return None;
    }
    let rest = &text[word.len()..];
    match rest.chars().next() {
        None => Some(rest),
        Some(c) if c.is_whitespace() => Some(rest),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::time::ms_from_iso8601;

    fn at(iso: &str) -> i64 {
        ms_from_iso8601(iso).unwrap()
    }

    fn entry(started: &str, last_interaction: Option<&str>) -> SessionEntry {
        let mut e = SessionEntry::new("s", at(started));
        e.last_interaction_at = last_interaction.map(at);
        e
    }

    #[test]
    fn freshness_table() {
        let none = ResetPolicy::default();
        let daily = ResetPolicy {
            mode: ResetMode::Daily,
            at_hour: 4,
            idle_minutes: None,
        };
        let idle = ResetPolicy {
            mode: ResetMode::Idle,
            at_hour: 4,
            idle_minutes: Some(30),
        };
        let both = ResetPolicy {
            mode: ResetMode::Daily,
            at_hour: 4,
            idle_minutes: Some(60),
        };
        let idle_without_minutes = ResetPolicy {
            mode: ResetMode::Idle,
            at_hour: 4,
            idle_minutes: None,
        };
        let h = 3_600_000;
        // (name, entry, policy, now, offset_ms, expected)
        type Case = (
            &'static str,
            Option<SessionEntry>,
            ResetPolicy,
            &'static str,
            i64,
            Freshness,
        );
        let cases: Vec<Case> = vec![
            (
                "missing",
                None,
                daily,
                "2026-05-10T10:00:00Z",
                0,
                Freshness::Missing,
            ),
            (
                "none never resets",
                Some(entry("2020-01-01T00:00:00Z", None)),
                none,
                "2026-05-10T10:00:00Z",
                0,
                Freshness::Fresh,
            ),
            (
                "daily same window",
                Some(entry("2026-05-10T05:00:00Z", None)),
                daily,
                "2026-05-10T23:00:00Z",
                0,
                Freshness::Fresh,
            ),
            (
                "daily crossed boundary",
                Some(entry("2026-05-10T03:00:00Z", None)),
                daily,
                "2026-05-10T04:00:01Z",
                0,
                Freshness::Stale(ResetReason::Daily),
            ),
            (
                "daily before boundary same night",
                Some(entry("2026-05-09T22:00:00Z", None)),
                daily,
                "2026-05-10T03:59:00Z",
                0,
                Freshness::Fresh,
            ),
            (
                "daily uses local time",
                Some(entry("2026-05-10T01:00:00Z", None)),
                daily,
                "2026-05-10T02:30:00Z",
                2 * h,
                Freshness::Stale(ResetReason::Daily),
            ),
            (
                "daily not local boundary yet",
                Some(entry("2026-05-10T01:00:00Z", None)),
                daily,
                "2026-05-10T02:30:00Z",
                -2 * h,
                Freshness::Fresh,
            ),
            (
                "idle within",
                Some(entry("2026-05-10T10:00:00Z", Some("2026-05-10T10:10:00Z"))),
                idle,
                "2026-05-10T10:39:00Z",
                0,
                Freshness::Fresh,
            ),
            (
                "idle expired",
                Some(entry("2026-05-10T10:00:00Z", Some("2026-05-10T10:10:00Z"))),
                idle,
                "2026-05-10T10:41:00Z",
                0,
                Freshness::Stale(ResetReason::Idle),
            ),
            (
                "idle falls back to start",
                Some(entry("2026-05-10T10:00:00Z", None)),
                idle,
                "2026-05-10T10:31:00Z",
                0,
                Freshness::Stale(ResetReason::Idle),
            ),
            (
                "idle without minutes never",
                Some(entry("2020-05-10T10:00:00Z", None)),
                idle_without_minutes,
                "2026-05-10T10:31:00Z",
                0,
                Freshness::Fresh,
            ),
            (
                "daily+idle: idle first",
                Some(entry("2026-05-10T05:00:00Z", Some("2026-05-10T06:00:00Z"))),
                both,
                "2026-05-10T08:00:00Z",
                0,
                Freshness::Stale(ResetReason::Idle),
            ),
            (
                "daily+idle: daily first",
                Some(entry("2026-05-10T03:00:00Z", Some("2026-05-10T03:50:00Z"))),
                both,
                "2026-05-10T04:30:00Z",
                0,
                Freshness::Stale(ResetReason::Daily),
            ),
            (
                "daily+idle: idle expired before boundary",
                Some(entry("2026-05-10T01:00:00Z", Some("2026-05-10T01:00:00Z"))),
                both,
                "2026-05-10T04:30:00Z",
                0,
                Freshness::Stale(ResetReason::Idle),
            ),
        ];
        for (name, e, policy, now, off, want) in cases {
            assert_eq!(
                evaluate_freshness(e.as_ref(), &policy, at(now), off),
                want,
                "{name}"
            );
        }
    }

    #[test]
    fn touch_table() {
        let mut e = SessionEntry::new("s", 100);
        Touch::System.apply(&mut e, 200);
        assert_eq!(
            (e.updated_at, e.last_interaction_at, e.last_activity_at),
            (200, None, None)
        );
        Touch::AgentActivity.apply(&mut e, 300);
        assert_eq!(
            (e.updated_at, e.last_interaction_at, e.last_activity_at),
            (300, None, Some(300))
        );
        Touch::UserMessage.apply(&mut e, 400);
        assert_eq!(
            (e.updated_at, e.last_interaction_at, e.last_activity_at),
            (400, Some(400), Some(400))
        );
        // Clocks going backwards never move timestamps backwards.
        Touch::UserMessage.apply(&mut e, 350);
        assert_eq!(
            (e.updated_at, e.last_interaction_at, e.last_activity_at),
            (400, Some(400), Some(400))
        );
        // System events never refresh idle freshness.
        let idle = ResetPolicy {
            mode: ResetMode::Idle,
            at_hour: 4,
            idle_minutes: Some(1),
        };
        Touch::System.apply(&mut e, 400 + 59_000);
        assert_eq!(
            evaluate_freshness(Some(&e), &idle, 400 + 61_000, 0),
            Freshness::Stale(ResetReason::Idle)
        );
    }

    #[test]
    fn reset_command_table() {
        let triggers = vec!["start over".to_string(), "/fresh".to_string()];
        let cases: Vec<(&str, Option<ResetCommand>)> = vec![
            ("/new", Some(ResetCommand::New { model: None })),
            (
                "/NEW openai/gpt-5 extra",
                Some(ResetCommand::New {
                    model: Some("openai/gpt-5".into()),
                }),
            ),
            ("/reset", Some(ResetCommand::Reset { tail: None })),
            (
                "  /Reset   then do this  ",
                Some(ResetCommand::Reset {
                    tail: Some("then do this".into()),
                }),
            ),
            ("/reset soft", Some(ResetCommand::ResetSoft { tail: None })),
            (
                "/reset soft hello",
                Some(ResetCommand::ResetSoft {
                    tail: Some("hello".into()),
                }),
            ),
            ("/resetting", None),
            ("/newer", None),
            ("hello /reset", None),
            (
                "Start Over please",
                Some(ResetCommand::Reset {
                    tail: Some("please".into()),
                }),
            ),
            ("/fresh", Some(ResetCommand::Reset { tail: None })),
            ("start overtime", None),
            ("", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_reset_command(text, &triggers), want, "{text:?}");
        }
        assert_eq!(
            ResetCommand::New { model: None }.plan(),
            ResetPlan::NewSession {
                reason: ResetReason::New
            }
        );
        assert_eq!(
            ResetCommand::Reset { tail: None }.plan(),
            ResetPlan::InPlace {
                reason: ResetReason::Reset
            }
        );
    }

    #[test]
    fn reasons_round_trip() {
        for r in ["new", "reset", "idle", "daily", "cron-stale"] {
            assert_eq!(ResetReason::parse(r).map(ResetReason::as_str), Some(r));
        }
        for r in ["initial", "reset", "rollover", "fork", "compaction"] {
            assert_eq!(WindowReason::parse(r).map(WindowReason::as_str), Some(r));
        }
        assert_eq!(ResetReason::Daily.window_reason(), WindowReason::Rollover);
        assert_eq!(ResetReason::New.window_reason(), WindowReason::Reset);
        let id = new_session_id();
        assert_eq!(id.len(), 36);
        assert_ne!(id, new_session_id());
    }
}
