//! Duration texts as OpenClaw writes them: `30m`, `1h`, `1h30m`, `10s`, `500ms`, `1d`, `2w`,
//! and bare numbers in a caller-chosen default unit (heartbeat `every` defaults to minutes).

use std::fmt;

/// The unit of a bare number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DurationUnit {
    Milliseconds,
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl DurationUnit {
    fn ms(self) -> f64 {
        match self {
            DurationUnit::Milliseconds => 1.0,
            DurationUnit::Seconds => 1_000.0,
            DurationUnit::Minutes => 60_000.0,
            DurationUnit::Hours => 3_600_000.0,
            DurationUnit::Days => 86_400_000.0,
        }
    }
}

/// Why a duration text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {text:?}: {reason} (expected e.g. \"30m\", \"1h30m\", \"10s\", \"500ms\", \"1d\")")]
pub struct DurationError {
    pub text: String,
    pub reason: &'static str,
}

/// Parses a duration text into milliseconds.
pub fn parse_duration_ms(text: &str, default_unit: DurationUnit) -> Result<u64, DurationError> {
    let err = |reason| DurationError {
        text: text.to_string(),
        reason,
    };
    let s = text.trim().to_ascii_lowercase();
    if s.is_empty() {
        return Err(err("empty"));
    }
    let bytes = s.as_bytes();
    let mut total = 0f64;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if start == i {
            return Err(err("expected a number"));
        }
        let number: f64 = s[start..i].parse().map_err(|_| err("bad number"))?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &s[unit_start..i] {
            "" if start == 0 && i == bytes.len() => default_unit.ms(),
            "" => return Err(err("a unit is missing")),
            "ms" => 1.0,
            "s" | "sec" | "secs" | "second" | "seconds" => 1_000.0,
            "m" | "min" | "mins" | "minute" | "minutes" => 60_000.0,
            "h" | "hr" | "hrs" | "hour" | "hours" => 3_600_000.0,
            "d" | "day" | "days" => 86_400_000.0,
            "w" | "week" | "weeks" => 604_800_000.0,
            _ => return Err(err("unknown unit")),
        };
        total += number * unit;
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
    }
    if !total.is_finite() || !(0.0..=1e15).contains(&total) {
        return Err(err("out of range"));
    }
    Ok(total.round() as u64)
}

/// Formats milliseconds compactly (`30m`, `1h30m`, `45s`, `250ms`).
pub fn format_duration_ms(ms: u64) -> String {
    struct D(u64);
    impl fmt::Display for D {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            let mut rest = self.0;
            if rest == 0 {
                return f.write_str("0m");
            }
            for (unit, size) in [
                ("d", 86_400_000),
                ("h", 3_600_000),
                ("m", 60_000),
                ("s", 1_000),
            ] {
                if rest >= size {
                    write!(f, "{}{unit}", rest / size)?;
                    rest %= size;
                }
            }
            if rest > 0 {
                write!(f, "{rest}ms")?;
            }
            Ok(())
        }
    }
    D(ms).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_forms() {
        let m = DurationUnit::Minutes;
        assert_eq!(parse_duration_ms("30m", m), Ok(1_800_000));
        assert_eq!(parse_duration_ms("1h", m), Ok(3_600_000));
        assert_eq!(parse_duration_ms("1h30m", m), Ok(5_400_000));
        assert_eq!(parse_duration_ms("1h 30m", m), Ok(5_400_000));
        assert_eq!(parse_duration_ms("10s", m), Ok(10_000));
        assert_eq!(parse_duration_ms("500ms", m), Ok(500));
        assert_eq!(parse_duration_ms("1d", m), Ok(86_400_000));
        assert_eq!(parse_duration_ms("1.5h", m), Ok(5_400_000));
        assert_eq!(parse_duration_ms("0m", m), Ok(0));
        assert_eq!(parse_duration_ms("45", m), Ok(2_700_000));
        assert_eq!(parse_duration_ms("45", DurationUnit::Seconds), Ok(45_000));
        assert_eq!(parse_duration_ms(" 2H ", m), Ok(7_200_000));
    }

    #[test]
    fn refuses_garbage() {
        let m = DurationUnit::Minutes;
        for bad in ["", "m", "10x", "1h30", "-5m", "abc", "1e400h"] {
            assert!(parse_duration_ms(bad, m).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn formats_compactly() {
        assert_eq!(format_duration_ms(1_800_000), "30m");
        assert_eq!(format_duration_ms(5_400_000), "1h30m");
        assert_eq!(format_duration_ms(0), "0m");
        assert_eq!(format_duration_ms(1_250), "1s250ms");
    }
}
