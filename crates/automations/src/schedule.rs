//! When a job fires: `at` (one ISO instant), `every` (fixed interval from an anchor) and
//! `cron` (5- or 6-field croner expressions in an IANA time zone, with the reference's
//! top-of-hour stagger).
//!
//! # Cron semantics
//!
//! Expressions are parsed by [croner](https://docs.rs/croner) — the Rust flavour of the
//! library the reference uses — with seconds optional (5 or 6 fields), no year field, and
//! its defaults: names (`MON`, `JAN`), ranges, steps (`*/5`, `1-10/2`; the non-standard `0/10`
//! is refused), lists, `L` (last day / last weekday `5#L`), `W` (nearest weekday), `#` (nth
//! weekday), `?`, `@hourly`-style nicknames, and **OR** between day-of-month and day-of-week
//! when both are restricted (a `+` before the weekday field asks for AND).
//!
//! # Daylight saving time
//!
//! A cron expression names wall-clock times in its zone. Pincer follows Vixie cron (and
//! croner, and the reference):
//!
//! * **Spring forward (gap):** a *fixed-time* job (single values in the second, minute and
//!   hour fields, e.g. `30 2 * * *`) whose time does not exist that day runs once at the
//!   first valid instant after the gap (03:00 when 02:00–03:00 is skipped). Interval jobs
//!   (wildcards or steps in those fields) simply have no occurrences inside the gap.
//! * **Fall back (overlap):** a fixed-time job in the repeated hour runs **once**, at the
//!   first occurrence. Interval jobs run on both passes (every real instant that matches).
//!
//! Occurrences always move forward in real time: successive runs strictly increase.

use std::str::FromStr;

use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::{Timestamp, Zoned};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::duration::{parse_duration_ms, DurationUnit};

/// Top-of-hour recurring expressions get this stagger window by default (5 minutes).
pub const DEFAULT_TOP_OF_HOUR_STAGGER_MS: u64 = 300_000;
/// Largest accepted explicit stagger (one day).
pub const MAX_STAGGER_MS: u64 = 86_400_000;
/// Smallest accepted `every` interval.
pub const MIN_EVERY_MS: u64 = 1_000;

/// A job's schedule as stored and sent on the wire (`schedule` of the spec's CronJob).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Schedule {
    /// One shot at an ISO-8601 instant (`2027-02-01T16:00:00Z`; without an offset: UTC).
    At { at: String },
    /// Every `everyMs` from `anchorMs` (the creation time when omitted at creation).
    Every {
        #[serde(rename = "everyMs")]
        every_ms: u64,
        #[serde(rename = "anchorMs", default, skip_serializing_if = "Option::is_none")]
        anchor_ms: Option<i64>,
    },
    /// A croner expression in `tz` (the gateway's zone when omitted).
    Cron {
        expr: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tz: Option<String>,
        #[serde(rename = "staggerMs", default, skip_serializing_if = "Option::is_none")]
        stagger_ms: Option<u64>,
    },
}

/// Why a schedule is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("schedule.at {0:?} is not an ISO-8601 date-time (e.g. \"2027-02-01T16:00:00Z\") or a relative duration (e.g. \"20m\")")]
    BadAt(String),
    #[error("schedule.everyMs must be at least {MIN_EVERY_MS} (got {0})")]
    EveryTooShort(u64),
    #[error("schedule.anchorMs must not be negative (got {0})")]
    NegativeAnchor(i64),
    #[error("schedule.expr {expr:?} is not a valid cron expression: {reason}")]
    BadCron { expr: String, reason: String },
    #[error("schedule.tz {0:?} is not a known IANA time zone (e.g. \"Europe/Berlin\")")]
    BadTimeZone(String),
    #[error("schedule.staggerMs must be at most {MAX_STAGGER_MS} (got {0})")]
    StaggerTooLarge(u64),
    #[error("cron expression {0:?} has no upcoming run time and would never fire")]
    NeverFires(String),
}

/// A schedule ready to compute occurrences (cron parsed, zone resolved).
#[derive(Debug, Clone)]
pub enum CompiledSchedule {
    At(i64),
    Every {
        every_ms: u64,
        anchor_ms: Option<i64>,
    },
    Cron {
        cron: Box<Cron>,
        tz: TimeZone,
        stagger_ms: u64,
    },
}

fn cron_parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// Parses a cron expression the way schedules do (5 or 6 fields).
pub fn parse_cron(expr: &str) -> Result<Cron, ScheduleError> {
    let trimmed = expr.trim();
    let fields = trimmed.split_whitespace().count();
    if !trimmed.starts_with('@') && !(5..=6).contains(&fields) {
        return Err(ScheduleError::BadCron {
            expr: expr.to_string(),
            reason: format!("expected 5 fields (minute hour day month weekday) or 6 (with seconds first), got {fields}"),
        });
    }
    cron_parser()
        .parse(trimmed)
        .map_err(|e| ScheduleError::BadCron {
            expr: expr.to_string(),
            reason: e.to_string(),
        })
}

/// Resolves an IANA zone name (`UTC` included).
pub fn parse_time_zone(name: &str) -> Result<TimeZone, ScheduleError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ScheduleError::BadTimeZone(name.to_string()));
    }
    TimeZone::get(name).map_err(|_| ScheduleError::BadTimeZone(name.to_string()))
}

/// Parses an `at` value: an ISO instant with `Z` or an offset, an offset-less date-time
/// (UTC, or `tz` when given), or a relative duration (`20m`, `+2h`) counted from `now_ms`.
pub fn parse_at(text: &str, tz: Option<&TimeZone>, now_ms: i64) -> Result<i64, ScheduleError> {
    let bad = || ScheduleError::BadAt(text.to_string());
    let t = text.trim();
    if t.is_empty() {
        return Err(bad());
    }
    if let Ok(ts) = Timestamp::from_str(t) {
        return Ok(ts.as_millisecond());
    }
    if let Ok(dt) = jiff::civil::DateTime::from_str(t) {
        let zone = tz.cloned().unwrap_or(TimeZone::UTC);
        let zoned = zone
            .to_ambiguous_zoned(dt)
            .compatible()
            .map_err(|_| bad())?;
        return Ok(zoned.timestamp().as_millisecond());
    }
    let relative = t.strip_prefix('+').unwrap_or(t);
    if relative.starts_with(|c: char| c.is_ascii_digit()) {
        if let Ok(ms) = parse_duration_ms(relative, DurationUnit::Minutes) {
            return i64::try_from(ms)
                .ok()
                .and_then(|ms| now_ms.checked_add(ms))
                .ok_or_else(bad);
        }
    }
    Err(bad())
}

/// Formats epoch milliseconds as an ISO-8601 UTC instant (`2027-02-01T16:00:00Z`).
pub fn format_iso(ms: i64) -> String {
    match Timestamp::from_millisecond(ms) {
        Ok(ts) => ts.to_string(),
        Err(_) => ms.to_string(),
    }
}

/// Whether `expr` fires recurring jobs exactly at the top of an hour (minute 0, and second 0
/// for 6 fields, with a wildcard in the hour field) — those get the default stagger.
pub fn is_recurring_top_of_hour(expr: &str) -> bool {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    let (minute, hour) = match fields.as_slice() {
        [m, h, _, _, _] => (*m, *h),
        [s, m, h, _, _, _] if *s == "0" => (*m, *h),
        _ => return false,
    };
    minute == "0" && has_recurring_wildcard_hour(hour)
}

fn has_recurring_wildcard_hour(field: &str) -> bool {
    fn digits(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
    }
    fn part_ok(part: &str) -> bool {
        let (base, step) = match part.split_once('/') {
            Some((b, s)) => (b, Some(s)),
            None => (part, None),
        };
        if let Some(step) = step {
            if !digits(step) {
                return false;
            }
        }
        if base == "*" || base == "?" {
            return true;
        }
        match base.split_once('-') {
            Some((a, b)) => digits(a) && digits(b),
            None => digits(base),
        }
    }
    let parts: Vec<&str> = field.split(',').collect();
    parts.iter().all(|p| part_ok(p)) && parts.iter().any(|p| p.starts_with(['*', '?']))
}

/// The stagger window of a cron schedule: the explicit value, else the top-of-hour default,
/// else 0.
pub fn effective_stagger_ms(expr: &str, explicit: Option<u64>) -> u64 {
    match explicit {
        Some(ms) => ms,
        None if is_recurring_top_of_hour(expr) => DEFAULT_TOP_OF_HOUR_STAGGER_MS,
        None => 0,
    }
}

/// The job's fixed offset inside its stagger window: the first four bytes of
/// SHA-256(job id), big-endian, modulo the window (as the reference computes it, so a job
/// keeps its slot across restarts and implementations).
pub fn stable_offset_ms(job_id: &str, stagger_ms: u64) -> u64 {
    if stagger_ms <= 1 {
        return 0;
    }
    let digest = Sha256::digest(job_id.as_bytes());
    let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    u64::from(first) % stagger_ms
}

impl Schedule {
    /// Checks the schedule and prepares it for occurrence computations. `default_tz` is used
    /// by cron schedules without `tz`.
    pub fn compile(&self, default_tz: &TimeZone) -> Result<CompiledSchedule, ScheduleError> {
        match self {
            Schedule::At { at } => Ok(CompiledSchedule::At(parse_at(at, None, 0)?)),
            Schedule::Every {
                every_ms,
                anchor_ms,
            } => {
                if *every_ms < MIN_EVERY_MS {
                    return Err(ScheduleError::EveryTooShort(*every_ms));
                }
                if let Some(a) = anchor_ms.filter(|a| *a < 0) {
                    return Err(ScheduleError::NegativeAnchor(a));
                }
                Ok(CompiledSchedule::Every {
                    every_ms: *every_ms,
                    anchor_ms: *anchor_ms,
                })
            }
            Schedule::Cron {
                expr,
                tz,
                stagger_ms,
            } => {
                if let Some(s) = stagger_ms.filter(|s| *s > MAX_STAGGER_MS) {
                    return Err(ScheduleError::StaggerTooLarge(s));
                }
                let cron = parse_cron(expr)?;
                let zone = match tz.as_deref() {
                    Some(name) => parse_time_zone(name)?,
                    None => default_tz.clone(),
                };
                Ok(CompiledSchedule::Cron {
                    cron: Box::new(cron),
                    tz: zone,
                    stagger_ms: effective_stagger_ms(expr, *stagger_ms),
                })
            }
        }
    }

    /// `true` for `every` and `cron` (they recur); `false` for `at`.
    pub fn is_recurring(&self) -> bool {
        !matches!(self, Schedule::At { .. })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Schedule::At { .. } => "at",
            Schedule::Every { .. } => "every",
            Schedule::Cron { .. } => "cron",
        }
    }
}

impl CompiledSchedule {
    /// The first occurrence strictly after `after_ms` (epoch ms), or `None` when there is
    /// none (an `at` in the past, an expression that never matches again). `job_id` picks
    /// the job's stagger offset.
    pub fn next_after(&self, after_ms: i64, job_id: &str) -> Option<i64> {
        match self {
            CompiledSchedule::At(at) => (*at > after_ms).then_some(*at),
            CompiledSchedule::Every {
                every_ms,
                anchor_ms,
            } => {
                let every = i64::try_from(*every_ms).ok()?.max(1);
                let anchor = anchor_ms.unwrap_or(after_ms).max(0);
                if after_ms < anchor {
                    return Some(anchor);
                }
                let steps = (after_ms - anchor) / every + 1;
                anchor.checked_add(steps.checked_mul(every)?)
            }
            CompiledSchedule::Cron {
                cron,
                tz,
                stagger_ms,
            } => {
                let offset = i64::try_from(stable_offset_ms(job_id, *stagger_ms)).ok()?;
                if offset == 0 {
                    return cron_next(cron, tz, after_ms);
                }
                // Occurrences are base slots shifted by the job's offset: look for the first
                // base slot whose shifted time is after `after_ms`.
                let mut cursor = after_ms.saturating_sub(offset).max(0);
                for _ in 0..4 {
                    let base = cron_next(cron, tz, cursor)?;
                    let shifted = base.checked_add(offset)?;
                    if shifted > after_ms {
                        return Some(shifted);
                    }
                    cursor = (cursor + 1).max(base + 1_000);
                }
                None
            }
        }
    }
}

/// The next croner occurrence strictly after `after_ms`, at whole-second precision.
fn cron_next(cron: &Cron, tz: &TimeZone, after_ms: i64) -> Option<i64> {
    // Search from the start of the current second: croner is second-granular and excludes
    // the start itself, so every result is > after_ms.
    let start_ms = after_ms.div_euclid(1_000) * 1_000;
    let start = Timestamp::from_millisecond(start_ms).ok()?;
    let zoned: Zoned = start.to_zoned(tz.clone());
    let next = cron.find_next_occurrence(&zoned, false).ok()?;
    Some(next.timestamp().as_millisecond())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ms(iso: &str) -> i64 {
        Timestamp::from_str(iso).unwrap().as_millisecond()
    }

    fn zone(name: &str) -> TimeZone {
        TimeZone::get(name).unwrap()
    }

    fn cron(expr: &str, tz: &str) -> CompiledSchedule {
        Schedule::Cron {
            expr: expr.into(),
            tz: Some(tz.into()),
            stagger_ms: Some(0),
        }
        .compile(&TimeZone::UTC)
        .unwrap()
    }

    fn runs(s: &CompiledSchedule, from: &str, n: usize) -> Vec<String> {
        let mut t = ms(from);
        let mut out = Vec::new();
        for _ in 0..n {
            t = s.next_after(t, "job").unwrap();
            out.push(format_iso(t));
        }
        out
    }

    #[test]
    fn at_parses_offsets_offsetless_and_relative() {
        let now = ms("2026-03-01T00:00:00Z");
        assert_eq!(
            parse_at("2027-02-01T16:00:00Z", None, now),
            Ok(ms("2027-02-01T16:00:00Z"))
        );
        assert_eq!(
            parse_at("2027-02-01T17:00:00+01:00", None, now),
            Ok(ms("2027-02-01T16:00:00Z"))
        );
        assert_eq!(
            parse_at("2027-02-01T16:00:00", None, now),
            Ok(ms("2027-02-01T16:00:00Z"))
        );
        assert_eq!(
            parse_at("2027-07-01T16:00:00", Some(&zone("Europe/Berlin")), now),
            Ok(ms("2027-07-01T14:00:00Z"))
        );
        assert_eq!(parse_at("20m", None, now), Ok(now + 1_200_000));
        assert_eq!(parse_at("+2h", None, now), Ok(now + 7_200_000));
        assert!(parse_at("tomorrow", None, now).is_err());
        assert!(parse_at("2027-13-01T00:00:00Z", None, now).is_err());
    }

    #[test]
    fn every_counts_from_the_anchor() {
        let s = CompiledSchedule::Every {
            every_ms: 60_000,
            anchor_ms: Some(1_000),
        };
        assert_eq!(s.next_after(0, "j"), Some(1_000));
        assert_eq!(s.next_after(1_000, "j"), Some(61_000));
        assert_eq!(s.next_after(60_999, "j"), Some(61_000));
        assert_eq!(s.next_after(61_000, "j"), Some(121_000));
    }

    #[test]
    fn cron_accepts_five_and_six_fields_names_ranges_steps_and_extensions() {
        for ok in [
            "*/5 * * * *",
            "0 8 * * MON-FRI",
            "30 0 8 * * mon-fri",
            "0 9 1-7,15 JAN,jul *",
            "0 0 L * *",
            "0 0 15W * *",
            "0 0 * * 5#L",
            "0 0 * * FRI#2",
            "0 0 1 * +MON",
            "@hourly",
            "0 0 ? * *",
        ] {
            assert!(
                parse_cron(ok).is_ok(),
                "{ok} should parse: {:?}",
                parse_cron(ok)
            );
        }
        for bad in [
            "",
            "* * * *",
            "0 0 0 1 1 * 2030",
            "61 * * * *",
            "0/10 * * * *",
            "x * * * *",
        ] {
            assert!(parse_cron(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn dom_and_dow_use_or_unless_plus() {
        // 2026-06-15 is a Monday; June 2026: Mondays 1, 8, 15, 22, 29.
        let or = cron("0 9 15 * 1", "UTC");
        assert_eq!(
            runs(&or, "2026-05-31T12:00:00Z", 3),
            [
                "2026-06-01T09:00:00Z",
                "2026-06-08T09:00:00Z",
                "2026-06-15T09:00:00Z"
            ]
        );
        let and = cron("0 9 15 * +1", "UTC");
        assert_eq!(
            runs(&and, "2026-05-31T12:00:00Z", 1),
            ["2026-06-15T09:00:00Z"]
        );
    }

    #[test]
    fn weekday_job_in_two_zones() {
        let berlin = cron("0 8 * * 1-5", "Europe/Berlin");
        let tokyo = cron("0 8 * * 1-5", "Asia/Tokyo");
        // Friday 2026-07-03 10:00 UTC.
        assert_eq!(
            runs(&berlin, "2026-07-03T10:00:00Z", 2),
            ["2026-07-06T06:00:00Z", "2026-07-07T06:00:00Z"]
        );
        assert_eq!(
            runs(&tokyo, "2026-07-03T10:00:00Z", 2),
            ["2026-07-05T23:00:00Z", "2026-07-06T23:00:00Z"]
        );
    }

    #[test]
    fn spring_forward_runs_a_fixed_time_job_once_after_the_gap() {
        // America/New_York springs forward on 2026-03-08: 02:00 EST -> 03:00 EDT, so 02:30
        // does not exist that day; the job runs at 03:00 EDT (07:00 UTC), once.
        let s = cron("30 2 * * *", "America/New_York");
        assert_eq!(
            runs(&s, "2026-03-07T12:00:00Z", 3),
            [
                "2026-03-08T07:00:00Z",
                "2026-03-09T06:30:00Z",
                "2026-03-10T06:30:00Z"
            ]
        );
        // An interval job has no occurrences inside the gap.
        let every_half_hour = cron("*/30 * * * *", "America/New_York");
        assert_eq!(
            runs(&every_half_hour, "2026-03-08T06:15:00Z", 3),
            [
                "2026-03-08T06:30:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T07:30:00Z"
            ]
        );
    }

    #[test]
    fn fall_back_runs_a_fixed_time_job_once_and_interval_jobs_twice() {
        // America/New_York falls back on 2026-11-01: 02:00 EDT -> 01:00 EST; 01:30 happens
        // at 05:30 UTC (EDT) and again at 06:30 UTC (EST).
        let s = cron("30 1 * * *", "America/New_York");
        assert_eq!(
            runs(&s, "2026-10-31T12:00:00Z", 2),
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]
        );
        let every_half_hour = cron("*/30 * * * *", "America/New_York");
        assert_eq!(
            runs(&every_half_hour, "2026-11-01T04:45:00Z", 5),
            [
                "2026-11-01T05:00:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T06:30:00Z",
                "2026-11-01T07:00:00Z",
            ]
        );
        // Europe/Berlin falls back on 2026-10-25 (03:00 CEST -> 02:00 CET).
        let berlin = cron("15 2 * * *", "Europe/Berlin");
        assert_eq!(
            runs(&berlin, "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:15:00Z", "2026-10-26T01:15:00Z"]
        );
    }

    #[test]
    fn top_of_hour_expressions_are_staggered_by_a_stable_offset() {
        assert!(is_recurring_top_of_hour("0 * * * *"));
        assert!(is_recurring_top_of_hour("0 */2 * * *"));
        assert!(is_recurring_top_of_hour("0 0 * * * *"));
        assert!(!is_recurring_top_of_hour("0 9 * * *"));
        assert!(!is_recurring_top_of_hour("5 * * * *"));
        assert!(!is_recurring_top_of_hour("0 9-17 * * *"));
        assert_eq!(
            effective_stagger_ms("0 * * * *", None),
            DEFAULT_TOP_OF_HOUR_STAGGER_MS
        );
        assert_eq!(effective_stagger_ms("0 * * * *", Some(0)), 0);
        let offset = stable_offset_ms("job-a", DEFAULT_TOP_OF_HOUR_STAGGER_MS);
        assert!(offset < DEFAULT_TOP_OF_HOUR_STAGGER_MS);
        assert_eq!(
            offset,
            stable_offset_ms("job-a", DEFAULT_TOP_OF_HOUR_STAGGER_MS)
        );
        assert_ne!(
            offset,
            stable_offset_ms("job-b", DEFAULT_TOP_OF_HOUR_STAGGER_MS)
        );
        let hourly = Schedule::Cron {
            expr: "0 * * * *".into(),
            tz: Some("UTC".into()),
            stagger_ms: None,
        }
        .compile(&TimeZone::UTC)
        .unwrap();
        let start = ms("2026-05-01T10:00:00Z");
        let first = hourly.next_after(start, "job-a").unwrap();
        assert_eq!(first, start + offset as i64);
        assert_eq!(hourly.next_after(first, "job-a"), Some(first + 3_600_000));
        // Just before the shifted slot, the same slot comes next (not the following hour).
        assert_eq!(hourly.next_after(first - 1, "job-a"), Some(first));
    }

    #[test]
    fn compile_reports_clear_errors() {
        let utc = TimeZone::UTC;
        let e = Schedule::Cron {
            expr: "0 8 * * *".into(),
            tz: Some("Mars/Olympus".into()),
            stagger_ms: None,
        }
        .compile(&utc)
        .unwrap_err();
        assert!(e.to_string().contains("Mars/Olympus"), "{e}");
        let e = Schedule::Every {
            every_ms: 10,
            anchor_ms: None,
        }
        .compile(&utc)
        .unwrap_err();
        assert_eq!(e, ScheduleError::EveryTooShort(10));
        let e = Schedule::Cron {
            expr: "0 8 * *".into(),
            tz: None,
            stagger_ms: None,
        }
        .compile(&utc)
        .unwrap_err();
        assert!(e.to_string().contains("expected 5 fields"), "{e}");
    }

    #[test]
    fn schedule_json_matches_the_wire_shape() {
        let s: Schedule =
            serde_json::from_str(r#"{"kind":"every","everyMs":7200000,"anchorMs":1795236345836}"#)
                .unwrap();
        assert_eq!(
            s,
            Schedule::Every {
                every_ms: 7_200_000,
                anchor_ms: Some(1_795_236_345_836)
            }
        );
        let c: Schedule =
            serde_json::from_str(r#"{"kind":"cron","expr":"0 8 * * 1-5","tz":"Europe/Berlin"}"#)
                .unwrap();
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"kind":"cron","expr":"0 8 * * 1-5","tz":"Europe/Berlin"}"#
        );
        let err =
            serde_json::from_str::<Schedule>(r#"{"kind":"stream","command":["x"]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant"), "{err}");
    }
}
