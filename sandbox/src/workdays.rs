//! Deadlines counted in working days (工作日), as the regulations count them.
//!
//! A working day is Monday to Friday, minus any listed public holiday. The day a request
//! is filed does not count: filed on a Friday with a 5-working-day answer period, the
//! deadline is the next Friday. The official holiday calendar (and its make-up working
//! weekends) changes every year, so it is configuration, not code.
//!
//! The UTC day conversions the modules share live here too: the day of an instant,
//! `YYYY-MM-DD` days, and the instant a day ends.

use std::collections::BTreeSet;

use pdx_ledger::db::now_ms;
use time::{Date, Duration, OffsetDateTime, Weekday};

use crate::{Result, SandboxError};

/// A working-day calendar.
#[derive(Clone, Debug, Default)]
pub struct Calendar {
    holidays: BTreeSet<Date>,
}

impl Calendar {
    /// A calendar whose only days off are the given holidays and weekends.
    pub fn with_holidays(holidays: impl IntoIterator<Item = Date>) -> Calendar {
        Calendar {
            holidays: holidays.into_iter().collect(),
        }
    }

    /// True on Monday to Friday, unless the date is a listed holiday.
    pub fn is_working_day(&self, date: Date) -> bool {
        !matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday)
            && !self.holidays.contains(&date)
    }

    /// The date `days` working days after `from` (which itself does not count).
    pub fn add_working_days(&self, from: Date, days: u32) -> Date {
        let mut date = from;
        let mut left = days;
        while left > 0 {
            date = date.saturating_add(Duration::days(1));
            if self.is_working_day(date) {
                left -= 1;
            }
        }
        date
    }

    /// The deadline for an answer to something filed at `filed_ms` (ms since epoch, UTC).
    pub fn deadline_from_ms(&self, filed_ms: i64, days: u32) -> Date {
        self.add_working_days(day_of_ms(filed_ms), days)
    }
}

/// `YYYY-MM-DD` for a date.
pub fn iso_date(date: Date) -> String {
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

/// The UTC day of `ms` (ms since epoch); the epoch's day for one out of range.
pub(crate) fn day_of_ms(ms: i64) -> Date {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .date()
}

/// The first instant of the UTC day `day`, in ms since epoch (0 for one out of range).
pub(crate) fn midnight_ms(day: Date) -> i64 {
    i64::try_from(day.midnight().assume_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

/// `YYYY-MM-DD` of the UTC day of `ms` (ms since epoch).
pub(crate) fn iso_day_of_ms(ms: i64) -> String {
    iso_date(day_of_ms(ms))
}

/// Today (UTC) as `YYYY-MM-DD`.
pub(crate) fn today_iso() -> String {
    iso_day_of_ms(now_ms())
}

/// A `YYYY-MM-DD` day, if `text` is one.
pub fn parse_day(text: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(text, format).ok()
}

/// The first instant (ms since epoch, UTC) after the day `until`: something that lasts
/// "until" that day ends then. A day with no next one is invalid (`until` too far ahead).
pub(crate) fn end_ms_of(until: Date) -> Result<i64> {
    let next = until
        .next_day()
        .ok_or_else(|| SandboxError::Invalid("`until` is too far ahead".into()))?;
    Ok(next
        .midnight()
        .assume_utc()
        .unix_timestamp()
        .saturating_mul(1000))
}

#[cfg(test)]
mod tests {
    use time::macros::date;

    use super::*;

    #[test]
    fn weekends_and_holidays_do_not_count() {
        let plain = Calendar::default();
        // Friday 2026-11-20 + 5 working days = Friday 2026-11-27.
        assert_eq!(
            plain.add_working_days(date!(2026 - 11 - 20), 5),
            date!(2026 - 11 - 27)
        );
        // Saturday + 1 = Monday.
        assert_eq!(
            plain.add_working_days(date!(2026 - 11 - 21), 1),
            date!(2026 - 11 - 23)
        );
        assert_eq!(
            plain.add_working_days(date!(2026 - 11 - 23), 0),
            date!(2026 - 11 - 23)
        );
        // National Day week: 2026-10-01..07 off, so filing on 30 Sept with 5 days lands on
        // Wednesday 14 October.
        let holidays = Calendar::with_holidays((1..=7).map(|d| {
            Date::from_calendar_date(2026, time::Month::October, d).unwrap_or(date!(2026 - 10 - 01))
        }));
        assert_eq!(
            holidays.add_working_days(date!(2026 - 09 - 30), 5),
            date!(2026 - 10 - 14)
        );
        assert!(!holidays.is_working_day(date!(2026 - 10 - 05)));
        assert_eq!(iso_date(date!(2026 - 03 - 04)), "2026-03-04");
    }

    #[test]
    fn deadlines_skip_every_weekend_they_span() {
        let plain = Calendar::default();
        // Thursday + 3 = Tuesday (Friday, Monday, Tuesday).
        assert_eq!(
            plain.add_working_days(date!(2026 - 11 - 19), 3),
            date!(2026 - 11 - 24)
        );
        // Sunday + 5 = Friday of the same week.
        assert_eq!(
            plain.add_working_days(date!(2026 - 11 - 22), 5),
            date!(2026 - 11 - 27)
        );
        // Wednesday + 10 spans two weekends: Wednesday two weeks on.
        assert_eq!(
            plain.add_working_days(date!(2026 - 11 - 18), 10),
            date!(2026 - 12 - 02)
        );
        // Friday + 15 spans three weekends (GD18 Art.19's longest period).
        assert_eq!(
            plain.add_working_days(date!(2026 - 11 - 20), 15),
            date!(2026 - 12 - 11)
        );
        // For every start in a year and every period the seeds use, the deadline is a
        // working day and exactly `n` working days follow the start up to it.
        let mut day = date!(2026 - 01 - 01);
        while day.year() == 2026 {
            for n in [1u32, 3, 5, 8, 10, 15] {
                let deadline = plain.add_working_days(day, n);
                assert!(plain.is_working_day(deadline), "{day} + {n}");
                let mut counted = 0;
                let mut d = day;
                while d < deadline {
                    d = d.saturating_add(Duration::days(1));
                    counted += u32::from(plain.is_working_day(d));
                }
                assert_eq!(counted, n, "{day} + {n} = {deadline}");
                // At most two weekend days per five working days, plus one for a start
                // on a weekend.
                let span = (deadline - day).whole_days();
                assert!(
                    span <= i64::from(n) + 2 * i64::from(n.div_ceil(5)) + 1,
                    "{day} + {n}"
                );
            }
            day = day.saturating_add(Duration::days(1));
        }
    }

    #[test]
    fn deadlines_start_from_the_filing_date_in_utc() {
        // 2026-11-23T10:00:00Z is a Monday.
        let ms = 1_795_428_000_000;
        assert_eq!(
            Calendar::default().deadline_from_ms(ms, 5),
            date!(2026 - 11 - 30)
        );
    }
}
