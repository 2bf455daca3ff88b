//! The store layer: the only code that writes the sandbox's tables.
//!
//! One module per table group, each the single owner of its tables' `INSERT`,
//! `UPDATE` and `DELETE` statements, with typed rows for what it writes. Every function
//! takes an executor (a pool, a connection or an open transaction), so the callers keep
//! deciding what commits together — a row and its ledger entry, a budget spend and the
//! run it pays for — while the SQL for each table lives in one place.
//!
//! | module | tables |
//! |---|---|
//! | [`catalog`] | `datasets`, `data_elements`, `catalog_reviews`, `catalog_revisions` |
//! | [`versions`] | `dataset_versions` |
//! | [`jobs`] | `jobs` |
//! | [`models`] | `models` |
//! | [`grants`] | `grants` |
//! | [`classification`] | `classification_filings` |
//! | [`runs`] | `model_runs` |
//! | [`outputs`] | `outputs`, `output_reviews` |
//! | [`record_sets`] | `record_sets`, `output_record_sets`, `record_set_nestings` |
//! | [`objections`] | `objections` |
//! | [`quality`] | `correction_duties`, `correction_uploads` |
//! | [`evaluation`] | `evaluations` |
//! | [`rectification`] | `rectification_orders` |
//! | [`open_attributes`] | `open_attribute_changes`, `emergency_relaxations` |
//! | [`open_data_requests`] | `open_data_requests` |
//! | [`fhe`] | `fhe_templates`, `fhe_server_keys`, `fhe_queries` |
//! | [`consent`] | `consent_keys`, `fhe_consent_requests` |
//! | [`sharing`] | `share_requests`, `share_accesses` |
//! | [`destruction`] | `dataset_destructions` |
//!
//! It also holds the few row helpers every module's reads and writes share: integers
//! to and from their `BIGINT` columns, the unique-violation test, a listing's `WHERE`.

pub(crate) mod catalog;
pub(crate) mod classification;
pub(crate) mod consent;
pub(crate) mod destruction;
pub(crate) mod evaluation;
pub(crate) mod fhe;
pub(crate) mod grants;
pub(crate) mod jobs;
pub(crate) mod models;
pub(crate) mod objections;
pub(crate) mod open_attributes;
pub(crate) mod open_data_requests;
pub(crate) mod outputs;
pub(crate) mod quality;
pub(crate) mod record_sets;
pub(crate) mod rectification;
pub(crate) mod runs;
pub(crate) mod sharing;
pub(crate) mod versions;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Result, SandboxError};

/// True when a database error is a unique-constraint violation (a concurrent duplicate).
pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.is_unique_violation())
}

/// A `u64` (ledger seq, revision, count) as the `BIGINT` it is stored as; `what` names
/// it in the internal error ("{what} is out of range").
pub(crate) fn to_i64(n: u64, what: &str) -> Result<i64> {
    i64::try_from(n).map_err(|_| SandboxError::Internal(format!("{what} is out of range")))
}

/// A stored count or seq as `u64` (a negative one, never written, reads as 0).
pub(crate) fn u64_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// A nullable stored seq or count as `Option<u64>` (a negative one, never written, reads
/// as absent).
pub(crate) fn opt_u64(row: &AnyRow, col: &str) -> Result<Option<u64>> {
    Ok(row
        .try_get::<Option<i64>, _>(col)?
        .and_then(|v| u64::try_from(v).ok()))
}

/// `WHERE a AND b …` over a listing's filters, or nothing when there are none.
pub(crate) fn where_clause(filters: &[String]) -> String {
    if filters.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", filters.join(" AND "))
    }
}

/// Most values bound in one `IN (…)` list: lists of ids read together (a review queue's
/// models, runs and reviews) are read this many at a time, well inside both backends'
/// limits on bound values.
pub(crate) const IN_LIST_CHUNK: usize = 500;

/// `$first, $first+1, …`: the placeholders of `count` values bound in that order, for an
/// `IN (…)` list (callers bind each value; none is spliced).
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|n| format!("${n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_number_the_values_from_the_first() {
        assert_eq!(placeholders(1, 3), "$1, $2, $3");
        assert_eq!(placeholders(4, 1), "$4");
        assert_eq!(placeholders(1, 0), "");
    }
}
