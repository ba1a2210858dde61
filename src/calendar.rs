//! Calendar arithmetic on the proleptic Gregorian calendar, in days since 1970-01-01 (UTC):
//! civil dates, weekdays, the logs' `YYYY-MM-DD` days and the HTTP date of `Retry-After`.
//!
//! Own code, not a crate: Howard Hinnant's two algorithms are a dozen lines, and the engine needs
//! no time zones (an event carries its offset). The HTTP date stays ours too: `httpdate` (small,
//! no dependencies) also reads the obsolete RFC 850 and asctime forms, which our `Retry-After`
//! rule refuses, as the tracker does (`www/tracker/retry.js`, tested on the same fixture).

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Civil date (year, month, day) of a day count since 1970-01-01 (Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m, d)
}

/// Days since 1970-01-01 of a date that exists (no 31 February), else `None`.
pub fn days_from_valid_civil(y: i32, m: u32, d: u32) -> Option<i64> {
    let days = days_from_civil(y, m, d);
    (civil_from_days(days) == (y, m, d)).then_some(days)
}

/// ISO weekday (1 = Monday … 7 = Sunday) of a day count since 1970-01-01 (a Thursday).
pub fn weekday(days: i64) -> u32 {
    ((days + 3).rem_euclid(7) + 1) as u32
}

/// The UTC day `YYYY-MM-DD` of a time in ms.
pub fn day_of(ms: i64) -> String {
    let (y, m, d) = civil_from_days(ms.div_euclid(DAY_MS));
    format!("{y:04}-{m:02}-{d:02}")
}

/// A time in ms as ISO 8601 UTC with milliseconds, `YYYY-MM-DDTHH:MM:SS.mmmZ` (what HubSpot's datetime
/// properties and Salesforce's DateTime fields both accept).
pub fn iso_utc(ms: i64) -> String {
    let in_day = ms.rem_euclid(DAY_MS);
    let (h, min, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{}T{h:02}:{min:02}:{s:02}.{milli:03}Z", day_of(ms))
}

/// The first ms of a UTC day written `YYYY-MM-DD`, or `None` if it is not one.
pub fn day_start(day: &str) -> Option<i64> {
    let mut it = day.splitn(3, '-');
    let y: i32 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let d: u32 = it.next()?.parse().ok()?;
    if day.len() != 10 || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let ms = days_from_civil(y, m, d) * DAY_MS;
    (day_of(ms) == day).then_some(ms)
}

/// Milliseconds since the epoch of an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the one
/// HTTP-date form RFC 9110 lets senders use; anything else is `None`.
pub fn parse_imf_fixdate(v: &str) -> Option<i64> {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let b = v.as_bytes();
    // ASCII first: the slices below must fall on character boundaries.
    if b.len() != 29 || !v.is_ascii() {
        return None;
    }
    if &v[3..5] != ", " || &v[25..] != " GMT" || !DAYS.contains(&&v[..3]) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let t = v.get(r)?;
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())?
    };
    let (day, year) = (num(5..7)?, num(12..16)?);
    let month = MONTHS.iter().position(|m| *m == &v[8..11])? as u32 + 1;
    let (h, m, s) = (num(17..19)?, num(20..22)?, num(23..25)?);
    let seps = [(7, b' '), (11, b' '), (16, b' '), (19, b':'), (22, b':')];
    if seps.iter().any(|&(i, c)| b[i] != c) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let days = days_from_valid_civil(i32::try_from(year).ok()?, month, day)?;
    Some(((days * 24 + i64::from(h)) * 60 + i64::from(m)) * 60_000 + i64::from(s) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_utc_writes_ms_and_days_before_the_epoch() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_utc(1_796_591_663_786), "2026-12-06T21:14:23.786Z");
        assert_eq!(iso_utc(-1), "1969-12-31T23:59:59.999Z");
    }

    #[test]
    fn civil_dates_round_trip() {
        for z in [-800_000i64, -1, 0, 1, 17_000, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(z);
            assert_eq!(days_from_civil(y, m, d), z);
        }
        assert_eq!(weekday(days_from_civil(2026, 11, 23)), 1); // a Monday
        assert_eq!(days_from_valid_civil(2026, 2, 31), None);
        assert_eq!(days_from_valid_civil(2024, 2, 29), Some(19_782));
    }

    #[test]
    fn days_round_trip_and_match_known_dates() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(-1), "1969-12-31");
        assert_eq!(day_of(951_782_400_000), "2000-02-29");
        assert_eq!(day_of(1_796_256_000_000), "2026-12-03");
        assert_eq!(day_start("2026-12-03"), Some(1_796_256_000_000));
        assert_eq!(day_start("2026-02-30"), None);
        assert_eq!(day_start("2026-2-3"), None);
        for ms in (946_684_800_000i64..4_102_444_800_000).step_by(86_400_000 * 37 + 12_345) {
            let d = day_of(ms);
            let start = day_start(&d).unwrap();
            assert!(start <= ms && ms < start + DAY_MS, "{d}");
        }
    }

    #[test]
    fn imf_fixdate() {
        assert_eq!(
            parse_imf_fixdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777_000)
        );
        assert_eq!(parse_imf_fixdate("Sun, 31 Feb 1994 08:49:37 GMT"), None);
        assert_eq!(parse_imf_fixdate("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(parse_imf_fixdate("Sun Nov  6 08:49:37 1994"), None);
    }
}
