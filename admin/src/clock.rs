//! UTC times on unix milliseconds, for showing times and for the date filters (the `time`
//! crate does the calendar).

use std::time::{SystemTime, UNIX_EPOCH};

use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, PrimitiveDateTime, Time};

/// Unix time in milliseconds; also the host application's clock (Parley re-exports it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn utc(ms: i64) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + Duration::milliseconds(ms)
}

fn ms_of(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

fn midnight(date: Date) -> i64 {
    ms_of(date.midnight().assume_utc())
}

/// `2026-11-25 19:49:03` (UTC).
pub fn format_ms(ms: i64) -> String {
    utc(ms)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]"
        ))
        .unwrap_or_default()
}

/// Reads `YYYY-MM-DD`, `YYYY-MM-DD HH:MM` or `YYYY-MM-DD HH:MM:SS` (UTC; a `T` may separate).
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, t.trim()),
        None => (s, ""),
    };
    let date = Date::parse(date, format_description!("[year]-[month]-[day]")).ok()?;
    let time = match time.len() {
        0 => Time::MIDNIGHT,
        5 => Time::parse(time, format_description!("[hour]:[minute]")).ok()?,
        _ => Time::parse(time, format_description!("[hour]:[minute]:[second]")).ok()?,
    };
    Some(ms_of(PrimitiveDateTime::new(date, time).assume_utc()))
}

/// The date filters of the change list, as half-open ranges [from, to) of milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateRange {
    Today,
    Past7Days,
    ThisMonth,
    ThisYear,
}

impl DateRange {
    pub const ALL: [DateRange; 4] = [
        DateRange::Today,
        DateRange::Past7Days,
        DateRange::ThisMonth,
        DateRange::ThisYear,
    ];

    pub fn param(self) -> &'static str {
        match self {
            DateRange::Today => "today",
            DateRange::Past7Days => "past7",
            DateRange::ThisMonth => "month",
            DateRange::ThisYear => "year",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DateRange::Today => "Today",
            DateRange::Past7Days => "Past 7 days",
            DateRange::ThisMonth => "This month",
            DateRange::ThisYear => "This year",
        }
    }

    pub fn from_param(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.param() == s)
    }

    /// Like Django's date filter, each range ends at the start of tomorrow.
    pub fn bounds(self, now_ms: i64) -> (i64, i64) {
        let today = utc(now_ms).date();
        let tomorrow = midnight(today) + Duration::DAY.whole_milliseconds() as i64;
        let from = match self {
            DateRange::Today => today,
            DateRange::Past7Days => today - Duration::days(7),
            DateRange::ThisMonth => today.replace_day(1).unwrap_or(today),
            DateRange::ThisYear => today.replace_ordinal(1).unwrap_or(today),
        };
        (midnight(from), tomorrow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_utc_times() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00");
        let ms = parse_datetime("2026-11-25 19:49:03").unwrap();
        assert_eq!(format_ms(ms), "2026-11-25 19:49:03");
        assert_eq!(
            parse_datetime("2024-02-29T10:00"),
            Some(parse_datetime("2024-02-29").unwrap() + 36_000_000)
        );
        assert_eq!(parse_datetime("2023-02-29"), None);
        assert_eq!(parse_datetime("2023-13-01"), None);
        assert_eq!(parse_datetime("yesterday"), None);
        assert_eq!(parse_datetime("2023-01-01 25:00"), None);
    }

    #[test]
    fn date_ranges_end_tomorrow_and_start_where_expected() {
        let now = parse_datetime("2026-11-25 19:49:03").unwrap();
        let tomorrow = parse_datetime("2026-11-26").unwrap();
        assert_eq!(
            DateRange::Today.bounds(now),
            (parse_datetime("2026-11-25").unwrap(), tomorrow)
        );
        assert_eq!(
            DateRange::Past7Days.bounds(now).0,
            parse_datetime("2026-11-18").unwrap()
        );
        assert_eq!(
            DateRange::ThisMonth.bounds(now).0,
            parse_datetime("2026-11-01").unwrap()
        );
        assert_eq!(
            DateRange::ThisYear.bounds(now).0,
            parse_datetime("2026-01-01").unwrap()
        );
    }
}
