//! Re-identification risk of a released table, from its equivalence-class sizes.
//!
//! Three attacker models (El Emam; as in ARX and sdcMicro):
//! - **prosecutor**: knows the target is in the data; the risk of a record is
//!   1 / (size of its class). Highest = 1 / smallest class; average over records =
//!   classes / records.
//! - **journalist**: does not know whether the target is in the data, so the risk
//!   is 1 / (size of the matching class in the *population*). pdx has no population
//!   table for uploads, so the released sample is taken as its own population and the
//!   journalist risk equals the prosecutor risk (an upper bound: population classes are
//!   never smaller than sample classes).
//! - **marketer**: wants to re-identify as many records as possible; the expected
//!   share of correct matches is classes / records.
//!
//! The share of records unique in their class is reported before (level 0, no
//! suppression) and after de-identification.

use serde::{Deserialize, Serialize};

/// Re-identification risk before and after de-identification.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RiskReport {
    /// Highest prosecutor risk: 1 / smallest released class.
    pub prosecutor_max: f64,
    /// Average prosecutor risk over released records: classes / records.
    pub prosecutor_avg: f64,
    /// Highest journalist risk (sample taken as population, so = prosecutor).
    pub journalist_max: f64,
    /// Average journalist risk (sample taken as population, so = prosecutor).
    pub journalist_avg: f64,
    /// Marketer risk: expected share of records re-identified, classes / records.
    pub marketer_avg: f64,
    /// Share of input records unique on their original quasi-identifiers.
    pub unique_share_before: f64,
    /// Share of released records unique on their released quasi-identifiers.
    pub unique_share_after: f64,
}

/// Risk from class sizes: `before` over the input records at level 0, `after` the
/// released classes. Empty inputs give zero risk.
pub fn assess(
    before: impl IntoIterator<Item = u64>,
    after: impl IntoIterator<Item = u64>,
) -> RiskReport {
    let (mut n_before, mut uniques_before) = (0u64, 0u64);
    for size in before {
        n_before += size;
        uniques_before += u64::from(size == 1);
    }
    let (mut n_after, mut classes, mut uniques_after, mut smallest) = (0u64, 0u64, 0u64, u64::MAX);
    for size in after.into_iter().filter(|&s| s > 0) {
        n_after += size;
        classes += 1;
        uniques_after += u64::from(size == 1);
        smallest = smallest.min(size);
    }
    let share = |a: u64, b: u64| if b > 0 { a as f64 / b as f64 } else { 0.0 };
    let max = if classes > 0 {
        1.0 / smallest as f64
    } else {
        0.0
    };
    let avg = share(classes, n_after);
    RiskReport {
        prosecutor_max: max,
        prosecutor_avg: avg,
        journalist_max: max,
        journalist_avg: avg,
        marketer_avg: avg,
        unique_share_before: share(uniques_before, n_before),
        unique_share_after: share(uniques_after, n_after),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn risk_from_sizes() {
        let r = assess([1, 1, 2, 4], [4, 4]);
        assert_eq!(r.unique_share_before, 2.0 / 8.0);
        assert_eq!(r.prosecutor_max, 0.25);
        assert_eq!(r.prosecutor_avg, 2.0 / 8.0);
        assert_eq!(r.marketer_avg, 0.25);
        assert_eq!(r.unique_share_after, 0.0);
        assert_eq!(assess([], []), RiskReport::default());
    }
}
