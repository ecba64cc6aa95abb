//! `yyyy-MM-dd HH:mm:ss` in Beijing time (UTC+8), the only time format on the wire (§4.3).

use time::macros::offset;
use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use crate::error::ProtocolError;

/// Parses a wire time as Beijing time; returns Unix seconds. Exactly 19 characters, ASCII
/// digits where the format has them.
pub fn parse_beijing(text: &str) -> Option<i64> {
    // Read digit by digit: every request's `timestamp` and every time in a load file is parsed
    // here, and `time`'s format-description parser costs several times this per call. `time`
    // still checks the date (the month's length, leap years) and the time of day.
    let b: &[u8; 19] = text.as_bytes().try_into().ok()?;
    let number = |from: usize, to: usize| {
        b[from..to].iter().try_fold(0u16, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u16::from(d - b'0'))
        })
    };
    let small = |from: usize| number(from, from + 2).and_then(|n| u8::try_from(n).ok());
    if [(4, b'-'), (7, b'-'), (10, b' '), (13, b':'), (16, b':')]
        .iter()
        .any(|&(i, c)| b[i] != c)
    {
        return None;
    }
    let month = Month::try_from(small(5)?).ok()?;
    let date = Date::from_calendar_date(i32::from(number(0, 4)?), month, small(8)?).ok()?;
    let time = Time::from_hms(small(11)?, small(14)?, small(17)?).ok()?;
    Some(
        PrimitiveDateTime::new(date, time)
            .assume_offset(offset!(+8))
            .unix_timestamp(),
    )
}

/// Formats Unix seconds as a Beijing wire time. Years outside 0000–9999 are clamped to the range.
pub fn format_beijing(unix: i64) -> String {
    const MIN: i64 = -62_167_248_000; // 0000-01-01 00:00:00 +08:00
    const MAX: i64 = 253_402_271_999; // 9999-12-31 23:59:59 +08:00
    let at = OffsetDateTime::from_unix_timestamp(unix.clamp(MIN, MAX))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .to_offset(offset!(+8));
    // Written digit by digit: an answer formats each agreement's times, and `time`'s
    // format-description formatter costs several times this per call.
    let mut text = *b"0000-00-00 00:00:00";
    let fields = [
        (0, 4, at.year().unsigned_abs()),
        (5, 2, u32::from(u8::from(at.month()))),
        (8, 2, u32::from(at.day())),
        (11, 2, u32::from(at.hour())),
        (14, 2, u32::from(at.minute())),
        (17, 2, u32::from(at.second())),
    ];
    for (start, width, mut value) in fields {
        for digit in text[start..start + width].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    text.iter().map(|&b| char::from(b)).collect()
}

/// Checks a request `timestamp` against `now` (Unix seconds): well-formed, and within
/// `window_secs` either way. A window of `None` accepts any well-formed time.
pub fn check(text: &str, now: i64, window_secs: Option<u64>) -> Result<(), ProtocolError> {
    let at = parse_beijing(text).ok_or_else(|| ProtocolError::InvalidTimestamp {
        detail: format!(
            "{:?} is not yyyy-MM-dd HH:mm:ss",
            crate::error::echo(text.as_bytes())
        ),
    })?;
    if let Some(window) = window_secs
        && at.abs_diff(now) > window
    {
        return Err(ProtocolError::InvalidTimestamp {
            detail: format!(
                "{text} is more than {} minutes from the gateway time {} (Beijing time, UTC+8); check the client clock and time zone",
                window / 60,
                format_beijing(now)
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use time::macros::format_description;

    use super::*;

    /// The format's description, what the hand-written parser and formatter are held to.
    const FORMAT: &[time::format_description::FormatItem<'static>] =
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");

    fn parse_by_description(text: &str) -> Option<i64> {
        if text.len() != 19 {
            return None;
        }
        let local = PrimitiveDateTime::parse(text, FORMAT).ok()?;
        Some(local.assume_offset(offset!(+8)).unix_timestamp())
    }

    #[test]
    fn wire_times_are_beijing_time() {
        assert_eq!(parse_beijing("1970-01-01 08:00:00"), Some(0));
        assert_eq!(format_beijing(0), "1970-01-01 08:00:00");
        assert_eq!(parse_beijing("2024-05-20 13:14:15"), Some(1_716_182_055));
        assert_eq!(format_beijing(1_716_182_055), "2024-05-20 13:14:15");
    }

    #[test]
    fn malformed_times_are_rejected() {
        for bad in [
            "",
            "2024-05-20",
            "2024-05-20T13:14:15",
            "2024-13-20 13:14:15",
            "2024-05-20 13:14:15 ",
            "２024-05-20 13:14:1",
        ] {
            assert_eq!(parse_beijing(bad), None, "{bad}");
        }
    }

    #[test]
    fn edges_parse_as_the_format_description_parses_them() {
        for text in [
            "0000-01-01 00:00:00",
            "9999-12-31 23:59:59",
            "2024-02-29 23:59:59",
            "2023-02-29 00:00:00",
            "2024-04-31 00:00:00",
            "2024-00-10 00:00:00",
            "2024-01-00 00:00:00",
            "2024-01-01 24:00:00",
            "2024-01-01 23:60:00",
            "2024-06-30 23:59:60",
            "+999-01-01 00:00:00",
            "-999-01-01 00:00:00",
            "2024-1-01 00:00:000",
            "2024-01-01T00:00:00",
        ] {
            assert_eq!(parse_beijing(text), parse_by_description(text), "{text}");
        }
        assert_eq!(parse_beijing("2024-02-29 23:59:59"), Some(1_709_222_399));
        assert_eq!(parse_beijing("2023-02-29 00:00:00"), None);
    }

    #[test]
    fn window_is_checked_both_ways() {
        let now = 1_716_182_055;
        assert!(check("2024-05-20 13:14:15", now + 900, Some(900)).is_ok());
        assert!(check("2024-05-20 13:14:15", now + 901, Some(900)).is_err());
        assert!(check("2024-05-20 13:14:15", now - 901, Some(900)).is_err());
        assert!(check("2024-05-20 13:14:15", now + 86_400, None).is_ok());
    }

    #[test]
    fn extreme_times_format_without_panicking() {
        assert_eq!(format_beijing(i64::MAX), "9999-12-31 23:59:59");
        assert_eq!(format_beijing(i64::MIN), "0000-01-01 00:00:00");
    }

    proptest::proptest! {
        #[test]
        fn formatting_round_trips(unix in -62_167_248_000i64..253_402_271_999) {
            proptest::prop_assert_eq!(parse_beijing(&format_beijing(unix)), Some(unix));
        }

        #[test]
        fn parsing_matches_the_format_description_on_any_fields(
            fields in (0u32..=10_999, 0u32..=99, 0u32..=99, 0u32..=99, 0u32..=99, 0u32..=99)
        ) {
            let (y, mo, d, h, mi, s) = fields;
            let text = format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}");
            proptest::prop_assert_eq!(parse_beijing(&text), parse_by_description(&text), "{}", text);
        }

        #[test]
        fn parsing_matches_the_format_description_on_any_text(
            text in "[0-9+ :T-]{17,21}|[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}|.{0,24}"
        ) {
            proptest::prop_assert_eq!(parse_beijing(&text), parse_by_description(&text), "{:?}", text);
        }

        #[test]
        fn formatting_matches_the_format_description(unix in -62_167_248_000i64..253_402_271_999) {
            let at = OffsetDateTime::from_unix_timestamp(unix).unwrap().to_offset(offset!(+8));
            proptest::prop_assert_eq!(format_beijing(unix), at.format(FORMAT).unwrap());
        }
    }
}
