//! Calendar arithmetic on epoch milliseconds (UTC), without a date-time dependency (the
//! civil-date conversion is `pincer-backoff`'s, so the calendar maths exists once).

use pincer_backoff::{civil_from_days, days_from_civil};

const MS_PER_DAY: i64 = 86_400_000;

/// Renders epoch milliseconds as RFC 3339 UTC with millisecond precision
/// (`2026-11-21T04:43:18.656Z`), the transcript's `timestamp` format.
pub fn iso8601_from_ms(ms: i64) -> String {
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (y, m, d) = civil_from_days(days);
    let h = in_day / 3_600_000;
    let min = (in_day / 60_000) % 60;
    let s = (in_day / 1000) % 60;
    let milli = in_day % 1000;
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Parses the subset of RFC 3339 the transcript uses (`YYYY-MM-DDTHH:MM:SS[.fff]Z` or with a
/// `±HH:MM` offset) back to epoch milliseconds.
pub fn ms_from_iso8601(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut idx = 19;
    let mut millis = 0i64;
    if b.get(idx) == Some(&b'.') {
        idx += 1;
        let start = idx;
        while idx < b.len() && b[idx].is_ascii_digit() {
            idx += 1;
        }
        let frac = s.get(start..idx)?;
        let padded: String = frac.chars().chain("000".chars()).take(3).collect();
        millis = padded.parse().ok()?;
    }
    let offset_ms = match s.get(idx..)? {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) => {
            let oh: i64 = tz.get(1..3)?.parse().ok()?;
            let om: i64 = tz.get(4..6)?.parse().ok()?;
            let v = (oh * 60 + om) * 60_000;
            if tz.starts_with('-') {
                -v
            } else {
                v
            }
        }
        _ => return None,
    };
    let days = days_from_civil(y, u32::try_from(mo).ok()?, u32::try_from(d).ok()?);
    Some(days * MS_PER_DAY + h * 3_600_000 + mi * 60_000 + se * 1000 + millis - offset_ms)
}

/// Start (epoch ms, UTC) of the most recent local `at_hour:00` at or before `now_ms`, for a
/// local time `utc_offset_ms` ahead of UTC.
pub fn last_daily_boundary(now_ms: i64, at_hour: u8, utc_offset_ms: i64) -> i64 {
    let local = now_ms + utc_offset_ms;
    let day_start = local.div_euclid(MS_PER_DAY) * MS_PER_DAY;
    let mut boundary = day_start + i64::from(at_hour.min(23)) * 3_600_000;
    if boundary > local {
        boundary -= MS_PER_DAY;
    }
    boundary - utc_offset_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip_table() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_795_236_198_656, "2026-11-21T04:43:18.656Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
        ];
        for (ms, iso) in cases {
            assert_eq!(iso8601_from_ms(ms), iso);
            assert_eq!(ms_from_iso8601(iso), Some(ms));
        }
        assert_eq!(
            ms_from_iso8601("2026-11-21T05:43:18.656+01:00"),
            Some(1_795_236_198_656)
        );
        assert_eq!(
            ms_from_iso8601("2026-11-21T04:43:18Z"),
            Some(1_795_236_198_000)
        );
        assert_eq!(ms_from_iso8601("nonsense"), None);
        assert_eq!(ms_from_iso8601("2026-13-21T04:43:18Z"), None);
    }

    #[test]
    fn daily_boundary_table() {
        let day = |iso: &str| ms_from_iso8601(iso).unwrap_or(i64::MIN);
        // (now, at_hour, offset_hours, expected boundary)
        let cases = [
            ("2026-05-10T10:00:00Z", 4, 0, "2026-05-10T04:00:00Z"),
            ("2026-05-10T03:59:59Z", 4, 0, "2026-05-09T04:00:00Z"),
            ("2026-05-10T04:00:00Z", 4, 0, "2026-05-10T04:00:00Z"),
            ("2026-05-10T00:30:00Z", 0, 0, "2026-05-10T00:00:00Z"),
            // 02:00 UTC is 04:00 at UTC+2: boundary reached exactly.
            ("2026-05-10T02:00:00Z", 4, 2, "2026-05-10T02:00:00Z"),
            // 23:00 UTC on the 9th is 18:00 at UTC-5 → boundary 04:00 local on the 9th.
            ("2026-05-09T23:00:00Z", 4, -5, "2026-05-09T09:00:00Z"),
            ("2026-05-10T23:30:00Z", 23, 0, "2026-05-10T23:00:00Z"),
        ];
        for (now, hour, off, want) in cases {
            assert_eq!(
                last_daily_boundary(day(now), hour, off * 3_600_000),
                day(want),
                "now={now} hour={hour} off={off}"
            );
        }
    }
}
