//! RFC 3339 timestamps in UTC, as cloud APIs write them.

use std::time::{Duration, SystemTime};

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+00:00)`: a UTC time as Dropbox
/// (`2026-12-05T12:00:01Z`), Drive (`…:01.123Z`) and Graph (`…:01.1234567Z`)
/// write them. Years 1970 to 9999; a fraction of any length (nanoseconds kept,
/// the rest dropped). Anything else, including another offset, is `None`: never
/// a panic or a wrapped time, whatever the input.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = s.split_once('T')?;
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let [y, m, day] = numbers(date, '-')?;
    let [hh, mm, ss] = numbers(hms, ':')?;
    if !(1970..=9999).contains(&y)
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || hh > 23
        || mm > 59
        || ss > 60
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        let digits = &frac[..frac.len().min(9)];
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    // Days from the civil date (H. Hinnant's algorithm); no overflow for 1970..=9999.
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + day - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = u64::try_from(days * 86_400 + hh * 3600 + mm * 60 + ss).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::new(secs, nanos))
}

/// Exactly three decimal numbers separated by `sep` (digits only: no sign).
fn numbers(s: &str, sep: char) -> Option<[i64; 3]> {
    let mut it = s.split(sep).map(|x| {
        if x.is_empty() || x.len() > 4 || !x.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            x.parse::<i64>().ok()
        }
    });
    let out = [it.next()??, it.next()??, it.next()??];
    it.next().is_none().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> Option<Duration> {
        parse_rfc3339(s).map(|t| t.duration_since(SystemTime::UNIX_EPOCH).unwrap())
    }

    #[test]
    fn the_forms_servers_write() {
        assert_eq!(
            secs("2026-12-05T12:00:01Z"),
            Some(Duration::from_secs(1_796_472_001))
        );
        assert_eq!(
            secs("2015-10-21T07:28:00.123Z"),
            Some(Duration::from_millis(1_445_412_480_123))
        );
        assert_eq!(
            secs("2015-10-21T07:28:00.1234567890Z"),
            Some(Duration::new(1_445_412_480, 123_456_789))
        );
        assert_eq!(
            secs("2015-10-21T07:28:00+00:00"),
            secs("2015-10-21T07:28:00Z")
        );
        assert!(secs("2026-12-05T10:00:00.001Z") < secs("2026-12-05T10:00:00.002Z"));
        assert!(secs("1970-01-01T00:00:00Z").is_some());
        assert!(secs("9999-12-31T23:59:59Z").is_some());
    }

    #[test]
    fn everything_else_is_refused() {
        for bad in [
            "",
            "yesterday",
            "2026-12-05 12:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-12-05T24:00:00Z",
            "x-y-zTa:b:cZ",
            "2026-12-05T10:00:00.x1Z",
            "2026-12-05T10:00:00+01:00",
            "2026-12-05T10:00:00",
            "2026-12-05-01T10:00:00Z",
            "2026-12T10:00:00Z",
            "+2026-12-05T10:00:00Z",
            "1969-12-31T23:59:59Z",
            "10000-01-01T00:00:00Z",
            // Found by fuzzing (Graph): a huge year overflowed the seconds.
            "9223372036854775807-01-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
