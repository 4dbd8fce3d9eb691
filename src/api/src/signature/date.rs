//! Minimal UTC date handling for SigV4: the `YYYYMMDDTHHMMSSZ` form of `x-amz-date` and
//! `X-Amz-Date`, and the IMF-fixdate form of the HTTP `Date` header. Times are whole seconds
//! since the Unix epoch; only years 1970..=9999 are accepted, so every value fits in a `u64`
//! and no arithmetic here can overflow. The civil-date conversions are Howard Hinnant's
//! `days_from_civil` / `civil_from_days` algorithms, kept private so the module stays
//! standalone.

/// Days since 1970-01-01 of a proleptic Gregorian date (`month` 1..=12, `day` 1..=31).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = i64::from((month + 9) % 12); // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: `(year, month, day)` of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    // Both casts are lossless: the ranges are given in the comments above.
    (year, month as u32, day as u32)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses a run of ASCII digits (no sign, no spaces).
fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
}

/// Seconds since the epoch of a validated civil date and time.
fn to_epoch(year: u32, month: u32, day: u32, hour: u32, min: u32, sec: u32) -> Option<u64> {
    let year = i64::from(year);
    if !(1970..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || min > 59
        || sec > 59
    {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    Some(days * 86_400 + u64::from(hour) * 3600 + u64::from(min) * 60 + u64::from(sec))
}

/// Parses the SigV4 timestamp form `YYYYMMDDTHHMMSSZ` into seconds since the epoch.
pub(crate) fn parse_amz_date(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    to_epoch(
        digits(&b[0..4])?,
        digits(&b[4..6])?,
        digits(&b[6..8])?,
        digits(&b[9..11])?,
        digits(&b[11..13])?,
        digits(&b[13..15])?,
    )
}

/// Parses an HTTP `Date` header in IMF-fixdate form (`Sun, 06 Nov 1994 08:49:37 GMT`).
/// The obsolete RFC 850 and asctime forms are not accepted.
pub(crate) fn parse_http_date(s: &str) -> Option<u64> {
    const MONTHS: [&[u8]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    const WEEKDAYS: [&[u8]; 7] = [b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"];
    let b = s.trim().as_bytes();
    if b.len() != 29
        || !WEEKDAYS.contains(&&b[0..3])
        || &b[3..5] != b", "
        || b[7] != b' '
        || b[11] != b' '
        || b[16] != b' '
        || b[19] != b':'
        || b[22] != b':'
        || &b[25..29] != b" GMT"
    {
        return None;
    }
    let month = MONTHS.iter().position(|m| *m == &b[8..11])?;
    to_epoch(
        digits(&b[12..16])?,
        u32::try_from(month + 1).ok()?,
        digits(&b[5..7])?,
        digits(&b[17..19])?,
        digits(&b[20..22])?,
        digits(&b[23..25])?,
    )
}

/// Formats seconds since the epoch as `YYYYMMDDTHHMMSSZ`.
pub(crate) fn format_amz_date(secs: u64) -> String {
    // u64 seconds / 86400 always fits in i64.
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let (year, month, day) = civil_from_days(days);
    let rem = secs % 86_400;
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20150830T123600Z"), Some(1_440_938_160));
        assert_eq!(parse_amz_date("20000229T235959Z"), Some(951_868_799));
        assert_eq!(format_amz_date(1_440_938_160), "20150830T123600Z");
        assert_eq!(format_amz_date(951_868_799), "20000229T235959Z");
        assert_eq!(
            parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT"),
            Some(1_440_938_160)
        );
    }

    #[test]
    fn invalid_dates() {
        for s in [
            "",
            "20150830T123600",
            "20150830 123600Z",
            "2015083aT123600Z",
            "20150230T123600Z",
            "19000228T000000Z",
            "20150830T243600Z",
            "20150830T126000Z",
            "20150830T123660Z",
            "+0150830T123600Z",
            "20151330T123600Z",
            "20150800T123600Z",
            "20150830T123600Zx",
            "2015-08-30T12:36:00Z",
        ] {
            assert_eq!(parse_amz_date(s), None, "{s}");
        }
        for s in [
            "Sun, 30 Aug 2015 12:36:00 UTC",
            "Sun, 30 Foo 2015 12:36:00 GMT",
            "Sunday, 30-Aug-15 12:36:00 GMT",
            "Sun Aug 30 12:36:00 2015",
            "Sun, 31 Sep 2015 12:36:00 GMT",
        ] {
            assert_eq!(parse_http_date(s), None, "{s}");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in (0..2_932_896).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert!((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m));
            assert_eq!(days_from_civil(y, m, d), days);
        }
        let max = parse_amz_date("99991231T235959Z");
        assert_eq!(
            max.map(format_amz_date).as_deref(),
            Some("99991231T235959Z")
        );
    }
}
