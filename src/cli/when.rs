//! Times a person reads: `2026-12-05 08:11 UTC (3 days ago)`, from unix seconds.

/// Now, in unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The civil date (year, month, day) of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`, proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `2026-12-05 08:11 UTC`; `never` for 0 or less (unset timestamps).
pub fn date(ts: i64) -> String {
    if ts <= 0 {
        return "never".into();
    }
    let (y, m, d) = civil_from_days(ts.div_euclid(86_400));
    let s = ts.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        s / 3600,
        s / 60 % 60
    )
}

/// How long before `now` `ts` was: `just now`, `5 minutes ago`, `3 days ago`.
pub fn ago(ts: i64, now: i64) -> String {
    let d = now - ts;
    let plural = |n: i64, unit: &str| format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" });
    match d {
        d if d < 0 => "in the future".into(),
        d if d < 60 => "just now".into(),
        d if d < 3600 => plural(d / 60, "minute"),
        d if d < 86_400 => plural(d / 3600, "hour"),
        d if d < 86_400 * 60 => plural(d / 86_400, "day"),
        d if d < 86_400 * 730 => plural(d / (86_400 * 30), "month"),
        d => plural(d / (86_400 * 365), "year"),
    }
}

/// `2026-12-05 08:11 UTC (3 days ago)`.
pub fn date_ago(ts: i64) -> String {
    if ts <= 0 {
        return "never".into();
    }
    format!("{} ({})", date(ts), ago(ts, now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_known_instants() {
        assert_eq!(date(0), "never");
        assert_eq!(date(1), "1970-01-01 00:00 UTC");
        assert_eq!(date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(date(1_796_399_134), "2026-12-04 15:45 UTC");
        assert_eq!(date(4_102_444_799), "2099-12-31 23:59 UTC");
    }

    #[test]
    fn ago_reads_naturally() {
        assert_eq!(ago(100, 130), "just now");
        assert_eq!(ago(0, 60), "1 minute ago");
        assert_eq!(ago(0, 7200), "2 hours ago");
        assert_eq!(ago(0, 86_400 * 3), "3 days ago");
        assert_eq!(ago(0, 86_400 * 90), "3 months ago");
        assert_eq!(ago(0, 86_400 * 365 * 5), "5 years ago");
        assert_eq!(ago(10, 0), "in the future");
    }
}
