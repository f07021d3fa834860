//! Event-time arithmetic: epoch milliseconds, RFC 3339 parsing and formatting, and
//! human durations (`"5m"`, `"1h30m"`) for the config.
//!
//! Written by hand rather than pulled from a date crate because the decoder calls
//! [`parse_rfc3339`] once per event: it must not allocate and must reject anything
//! that is not a valid instant (month 13, February 30th, a missing offset).

/// Milliseconds since the Unix epoch (UTC). All event and evaluation times use it.
pub type Millis = i64;

/// Latest instant accepted anywhere (9999-12-31T23:59:59.999Z): keeps arithmetic far
/// from overflow even after adding windows and lateness.
pub const MAX_MILLIS: Millis = 253_402_300_799_999;

/// Days since 1970-01-01 for a proleptic Gregorian date (valid for years 0..=9999).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Shift the year to start in March so the leap day is the last day of the year.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
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

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        _ => 28,
    }
}

/// Reads `n` ASCII digits starting at `at`.
fn digits(b: &[u8], at: usize, n: usize) -> Option<u32> {
    let s = b.get(at..at + n)?;
    s.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

/// Parses an RFC 3339 timestamp (`2026-11-22T10:15:02.113Z`, `…+01:00`) into epoch
/// milliseconds. Fractions finer than a millisecond are truncated; a leap second
/// (`:60`) is read as the last millisecond of that minute's 59th second.
/// Returns `None` for anything that is not a complete, valid RFC 3339 instant.
pub fn parse_rfc3339(s: &str) -> Option<Millis> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = i64::from(digits(b, 0, 4)?);
    let month = digits(b, 5, 2)?;
    let day = digits(b, 8, 2)?;
    let hour = digits(b, 11, 2)?;
    let minute = digits(b, 14, 2)?;
    let mut second = digits(b, 17, 2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut i = 19;
    let mut millis = 0u32;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + u32::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return None;
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let leap = second == 60;
    if leap {
        second = 59;
        millis = 999;
    }
    let offset_secs: i64 = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let oh = digits(b, i + 1, 2)?;
            let om = digits(b, i + 4, 2)?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 3600 + om * 60);
            if sign == b'+' {
                off
            } else {
                -off
            }
        }
        _ => return None,
    };
    // A leap second is 23:59:60 UTC; a :60 anywhere else is no time at all.
    if leap && (i64::from(hour * 3600 + minute * 60) - offset_secs).rem_euclid(86_400) != 86_340 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_secs;
    let ms = secs * 1000 + i64::from(millis);
    (0..=MAX_MILLIS).contains(&ms).then_some(ms)
}

/// Formats epoch milliseconds as RFC 3339 in UTC with millisecond precision.
pub fn format_rfc3339(ms: Millis) -> String {
    let ms = ms.clamp(0, MAX_MILLIS);
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, frac) = (
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000,
    );
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:03}Z")
}

/// Parses a duration such as `"500ms"`, `"30s"`, `"5m"`, `"1h30m"`, `"2d"`, `"1w"`
/// or `"1y"` (Prometheus's units: a week is 7 days, a year 365) into
/// milliseconds. `"0"` and `"0s"` are zero. Returns a message saying what is wrong.
pub fn parse_duration(s: &str) -> Result<Millis, String> {
    let t = s.trim();
    if t == "0" {
        return Ok(0);
    }
    if t.is_empty() {
        return Err("empty duration; write e.g. \"30s\", \"5m\" or \"1h30m\"".into());
    }
    let b = t.as_bytes();
    let mut i = 0;
    let mut total: i64 = 0;
    while i < b.len() {
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!(
                "`{s}` is not a duration; write a number followed by ms, s, m, h, d, w or y (e.g. \"90s\")"
            ));
        }
        let n: i64 = t[start..i]
            .parse()
            .map_err(|_| format!("`{s}`: number too large"))?;
        let ustart = i;
        while i < b.len() && b[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &t[ustart..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            "" if i == b.len() => return Err(format!("`{s}` lacks a unit; write e.g. \"{n}s\"")),
            "" => {
                return Err(format!(
                    "`{s}` is not a duration; write a number directly followed by ms, s, m, h, d, w or y (e.g. \"{n}s\")"
                ))
            }
            other => {
                return Err(format!(
                    "`{s}` has unknown unit `{other}`; use ms, s, m, h, d, w or y"
                ))
            }
        };
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= 366 * 86_400_000)
            .ok_or_else(|| format!("`{s}` is longer than a year"))?;
    }
    Ok(total)
}

/// Formats milliseconds as the shortest duration string [`parse_duration`] reads back.
pub fn format_duration(ms: Millis) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let mut rest = ms;
    for (unit, name) in [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
        (1, "ms"),
    ] {
        if rest >= unit {
            out.push_str(&format!("{}{name}", rest / unit));
            rest %= unit;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339("2026-11-22T10:15:02.113Z"),
            Some(1_795_342_502_113)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T11:15:02.113+01:00"),
            Some(1_795_342_502_113)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T10:15:02.1134567Z"),
            Some(1_795_342_502_113)
        );
        assert_eq!(
            parse_rfc3339("2026-11-22T10:15:02.1Z"),
            Some(1_795_342_502_100)
        );
        assert_eq!(
            parse_rfc3339("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
    }

    #[test]
    fn rejects_invalid_instants() {
        for bad in [
            "",
            "2026-11-22",
            "2026-11-22T10:15:02",
            "2026-13-01T00:00:00Z",
            "2026-02-29T00:00:00Z",
            "2026-11-22T24:00:00Z",
            "2026-11-22T10:60:00Z",
            "2026-11-22T10:15:02.Z",
            "2026-11-22T10:15:02Zjunk",
            "2026-11-22T10:15:02+0100",
            "1969-12-31T23:59:59Z",
            "2026-11-22X10:15:02Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn format_round_trips() {
        for ms in [0, 1_795_342_502_113, 951_782_400_000, MAX_MILLIS] {
            assert_eq!(parse_rfc3339(&format_rfc3339(ms)), Some(ms));
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(300_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("0"), Ok(0));
        assert!(parse_duration("5").unwrap_err().contains("unit"));
        assert!(parse_duration("5x").unwrap_err().contains("unknown unit"));
        // Prometheus's week and year.
        assert_eq!(parse_duration("1w"), Ok(7 * 86_400_000));
        assert_eq!(parse_duration("1y"), Ok(365 * 86_400_000));
        assert!(parse_duration("2y")
            .unwrap_err()
            .contains("longer than a year"));
        let spaced = parse_duration("10 seconds").unwrap_err();
        assert!(
            spaced.contains("directly followed by") && spaced.contains("\"10s\""),
            "{spaced}"
        );
        assert!(parse_duration("m").is_err());
        assert_eq!(format_duration(5_400_000), "1h30m");
        assert_eq!(parse_duration(&format_duration(90_061_001)), Ok(90_061_001));
    }
}
