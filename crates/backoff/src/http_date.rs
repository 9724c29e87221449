//! HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, plus the obsolete RFC 850 and asctime forms that
//! recipients must still accept.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// Parses an HTTP-date. The weekday name is not cross-checked (senders get it wrong).
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    let value = value.trim();
    let (year, month, day, time) = if let Some((_, rest)) = value.split_once(", ") {
        let parts: Vec<&str> = rest.split_whitespace().collect();
        match parts.as_slice() {
            // IMF-fixdate: "06 Nov 1994 08:49:37 GMT"
            [day, month, year, time, "GMT"] => (
                year.parse::<i64>().ok()?,
                month_index(month)?,
                day.parse::<u32>().ok()?,
                *time,
            ),
            // RFC 850: "06-Nov-94 08:49:37 GMT"
            [date, time, "GMT"] => {
                let mut it = date.split('-');
                let day = it.next()?.parse::<u32>().ok()?;
                let month = month_index(it.next()?)?;
                let year = it.next()?;
                if it.next().is_some() || year.len() != 2 {
                    return None;
                }
                let yy = year.parse::<i64>().ok()?;
                // Two-digit years: RFC 9110 says interpret >50 years in the future as past.
                let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
                (year, month, day, *time)
            }
            _ => return None,
        }
    } else {
        // asctime: "Sun Nov  6 08:49:37 1994"
        let parts: Vec<&str> = value.split_whitespace().collect();
        match parts.as_slice() {
            [_wday, month, day, time, year] => (
                year.parse::<i64>().ok()?,
                month_index(month)?,
                day.parse::<u32>().ok()?,
                *time,
            ),
            _ => return None,
        }
    };
    let mut hms = time.split(':');
    let hour = hms.next()?.parse::<u64>().ok()?;
    let minute = hms.next()?.parse::<u64>().ok()?;
    let second = hms.next()?.parse::<u64>().ok()?;
    if hms.next().is_some()
        || hour > 23
        || minute > 59
        || second > 60
        || !(1..=31).contains(&day)
        || year < 1970
    {
        return None;
    }
    let days = days_from_civil(year, month + 1, day);
    let secs = u64::try_from(days).ok()? * 86_400 + hour * 3600 + minute * 60 + second;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Formats a time as IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`); times before 1970 clamp.
pub fn format_http_date(at: SystemTime) -> String {
    let secs = at
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

fn month_index(name: &str) -> Option<u32> {
    MONTHS
        .iter()
        .position(|m| m.eq_ignore_ascii_case(name))
        .map(|i| i as u32)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Proleptic Gregorian `(year, month 1–12, day 1–31)` of a count of days since
/// 1970-01-01 (inverse of the parser's date arithmetic; shared with other timestamp
/// formatting so the calendar maths exists once).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_imf_fixdate() {
        let at = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(format_http_date(at), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(at));
        for secs in [0u64, 951_782_400, 1_709_251_199, 4_102_444_800] {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            assert_eq!(parse_http_date(&format_http_date(t)), Some(t), "{secs}");
        }
    }

    #[test]
    fn rejects_garbage() {
        for bad in [
            "",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sunday, 06-Nov-1994 08:49:37 GMT",
            "Sun Nov 6 08:49:37",
            "Thu, 01 Jan 1969 00:00:00 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn rfc850_two_digit_years() {
        assert_eq!(
            parse_http_date("Saturday, 01-Jan-00 00:00:00 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(946_684_800))
        );
    }
}
