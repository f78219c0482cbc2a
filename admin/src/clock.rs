//! UTC calendar arithmetic on unix milliseconds: enough for showing times and for the date
//! filters, without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

const DAY_MS: i64 = 86_400_000;

/// Unix time in milliseconds; also the host application's clock (Parley re-exports it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// Howard Hinnant's days_from_civil / civil_from_days (proleptic Gregorian calendar).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// `2026-11-25 19:49:03` (UTC).
pub fn format_ms(ms: i64) -> String {
    let days = ms.div_euclid(DAY_MS);
    let secs = ms.rem_euclid(DAY_MS) / 1000;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// Reads `YYYY-MM-DD`, `YYYY-MM-DD HH:MM` or `YYYY-MM-DD HH:MM:SS` (UTC; a `T` may separate).
pub fn parse_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, t.trim()),
        None => (s, ""),
    };
    let mut dp = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (dp.next()??, dp.next()??, dp.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1..=9999).contains(&y) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    if civil_from_days(days) != (y, m, d) {
        return None;
    }
    let mut secs = 0;
    if !time.is_empty() {
        let parts: Vec<_> = time.split(':').map(|p| p.parse::<i64>().ok()).collect();
        let [h, mi, rest @ ..] = parts.as_slice() else {
            return None;
        };
        let sec = match rest {
            [] => Some(0),
            [s] => *s,
            _ => None,
        };
        let (h, mi, sec) = ((*h)?, (*mi)?, sec?);
        if !(0..24).contains(&h) || !(0..60).contains(&mi) || !(0..60).contains(&sec) {
            return None;
        }
        secs = h * 3600 + mi * 60 + sec;
    }
    Some(days * DAY_MS + secs * 1000)
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
        let today = now_ms.div_euclid(DAY_MS);
        let tomorrow = (today + 1) * DAY_MS;
        let (y, m, _) = civil_from_days(today);
        let from = match self {
            DateRange::Today => today * DAY_MS,
            DateRange::Past7Days => (today - 7) * DAY_MS,
            DateRange::ThisMonth => days_from_civil(y, m, 1) * DAY_MS,
            DateRange::ThisYear => days_from_civil(y, 1, 1) * DAY_MS,
        };
        (from, tomorrow)
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
