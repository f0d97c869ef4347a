//! Times a person reads: `2026-12-05 09:11 CET (3 days ago)`, from unix seconds, in
//! the local time zone ($TZ, else /etc/localtime, through the C library), UTC when
//! that is unknown.

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

/// `2026-12-05 09:11 CET` in the local zone (UTC if it cannot be had); `never` for 0
/// or less (unset timestamps).
pub fn date(ts: i64) -> String {
    if ts <= 0 {
        return "never".into();
    }
    local(ts).unwrap_or_else(|| utc(ts))
}

/// The local date, time and zone abbreviation of `ts`, from `localtime_r`.
fn local(ts: i64) -> Option<String> {
    // (time_t is 32 bits on some targets.)
    #[allow(clippy::useless_conversion)]
    let t: libc::time_t = ts.try_into().ok()?;
    // SAFETY: `tm` is a plain C struct for which all-zero bytes are a valid value;
    // `localtime_r` writes only into it (it is reentrant) and returns NULL on failure.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return None;
    }
    let zone = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: glibc points `tm_zone` at a NUL-terminated abbreviation that lives
        // as long as the process's time-zone data.
        unsafe { std::ffi::CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    Some(format!(
        "{:04}-{:02}-{:02} {:02}:{:02} {zone}",
        i64::from(tm.tm_year) + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    ))
}

/// `2026-12-05 08:11 UTC`.
fn utc(ts: i64) -> String {
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
        assert_eq!(utc(1), "1970-01-01 00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(1_796_399_134), "2026-12-04 15:45 UTC");
        assert_eq!(utc(4_102_444_799), "2099-12-31 23:59 UTC");
        // Local time: whatever the zone, the same instant within a day of UTC's date.
        let l = date(1_796_399_134);
        assert!(l.starts_with("2026-12-0"), "{l}");
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
