//! Time: the clock business rules read, settlement periods, RFC 3339 rendering.
//!
//! Licence terms and settlement periods depend on "now", so [`Products`](crate::Products)
//! reads it from a [`Clock`] that tests can set. Ledger entry timestamps are the
//! ledger's own and always use the system time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, Time};

use crate::error::{ProductsError, Result};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Where "now" comes from: the system clock, or a manual one (tests, simulations).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A manual clock starting at `ms` (since the Unix epoch, UTC).
    pub fn manual(ms: i64) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicI64::new(ms))),
        }
    }

    /// Now, in ms since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(ms) => ms.load(Ordering::SeqCst),
            None => pdx_ledger::db::now_ms(),
        }
    }

    /// Sets a manual clock (false, and no effect, on the system clock).
    pub fn set_ms(&self, ms: i64) -> bool {
        match &self.manual {
            Some(cell) => {
                cell.store(ms, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }

    /// Moves a manual clock forward by `delta_ms` (false on the system clock).
    pub fn advance_ms(&self, delta_ms: i64) -> bool {
        match &self.manual {
            Some(cell) => {
                cell.fetch_add(delta_ms, Ordering::SeqCst);
                true
            }
            None => false,
        }
    }
}

fn datetime(ms: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| ProductsError::Internal(format!("timestamp {ms} out of range")))
}

fn date_ms(date: Date) -> i64 {
    let nanos = date
        .with_time(Time::MIDNIGHT)
        .assume_utc()
        .unix_timestamp_nanos();
    i64::try_from(nanos / 1_000_000).unwrap_or(i64::MAX)
}

/// RFC 3339 text of a timestamp, in UTC (`Z`); fractional seconds only when non-zero.
pub fn rfc3339(ms: i64) -> String {
    datetime(ms)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{ms}ms"))
}

/// The UTC calendar year of a timestamp.
pub fn year_of(ms: i64) -> Result<i32> {
    Ok(datetime(ms)?.year())
}

/// A settlement period: one UTC calendar month, `[from_ms, to_ms)`, labelled `YYYY-MM`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Period {
    /// `YYYY-MM`.
    pub label: String,
    /// First ms of the month (inclusive).
    pub from_ms: i64,
    /// First ms of the next month (exclusive).
    pub to_ms: i64,
}

impl Period {
    fn of_month(year: i32, month: Month) -> Result<Period> {
        let bad = || ProductsError::Invalid(format!("period {year:04}-{month} is out of range"));
        let start = Date::from_calendar_date(year, month, 1).map_err(|_| bad())?;
        let (ny, nm) = match month {
            Month::December => (year + 1, Month::January),
            m => (year, m.next()),
        };
        let end = Date::from_calendar_date(ny, nm, 1).map_err(|_| bad())?;
        Ok(Period {
            label: format!("{year:04}-{:02}", u8::from(month)),
            from_ms: date_ms(start),
            to_ms: date_ms(end),
        })
    }

    /// Parses `YYYY-MM` (years 2000 to 9998).
    pub fn parse(text: &str) -> Result<Period> {
        let bad = || ProductsError::Invalid(format!("period {text:?} is not YYYY-MM"));
        let b = text.as_bytes();
        if b.len() != 7 || b[4] != b'-' {
            return Err(bad());
        }
        let year: i32 = text[..4].parse().map_err(|_| bad())?;
        let month: u8 = text[5..].parse().map_err(|_| bad())?;
        if !(2000..=9998).contains(&year) || !text[..4].bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        if !text[5..].bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let month = Month::try_from(month).map_err(|_| bad())?;
        Self::of_month(year, month)
    }

    /// The month containing the timestamp.
    pub fn containing(ms: i64) -> Result<Period> {
        let t = datetime(ms)?;
        Self::of_month(t.year(), t.month())
    }
}
