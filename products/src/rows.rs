//! Row decoding, the caller's ids and input checks shared by the modules.

use pdx_ids::{KeyId, OrgId};
use pdx_ledger::Actor;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::error::{ProductsError, Result};

/// The caller's organisation as an id (authentication supplied it, so a malformed one
/// is an internal error).
pub(crate) fn actor_org(actor: &Actor) -> Result<OrgId> {
    OrgId::parse(&actor.org)
        .map_err(|_| ProductsError::Internal("the caller's organisation id is malformed".into()))
}

/// The caller's API key id (malformed: an internal error, as for [`actor_org`]).
pub(crate) fn actor_key(actor: &Actor) -> Result<KeyId> {
    KeyId::parse(&actor.key_id)
        .map_err(|_| ProductsError::Internal("the caller's key id is malformed".into()))
}

/// A non-negative stored integer as `u64`.
pub(crate) fn get_u64(row: &AnyRow, col: &str) -> Result<u64> {
    let v: i64 = row.try_get(col)?;
    u64::try_from(v).map_err(|_| ProductsError::Internal(format!("negative {col}")))
}

/// A nullable non-negative stored integer as `Option<u64>`.
pub(crate) fn get_opt_u64(row: &AnyRow, col: &str) -> Result<Option<u64>> {
    let v: Option<i64> = row.try_get(col)?;
    v.map(|v| u64::try_from(v).map_err(|_| ProductsError::Internal(format!("negative {col}"))))
        .transpose()
}

/// `WHERE column = $1 AND …` for each column a filter narrows (its value `Some`), and
/// the values to bind in that order; no clause when nothing narrows.
pub(crate) fn narrowed<'a>(
    narrowing: impl IntoIterator<Item = (&'a str, Option<String>)>,
) -> (String, Vec<String>) {
    let mut clauses = Vec::new();
    let mut values = Vec::new();
    for (column, value) in narrowing {
        if let Some(value) = value {
            values.push(value);
            clauses.push(format!("{column} = ${}", values.len()));
        }
    }
    let condition = if clauses.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", clauses.join(" AND "))
    };
    (condition, values)
}

/// A `u64` (ledger seq, count) as the `BIGINT` it is stored as.
pub(crate) fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| ProductsError::Internal(format!("{what} out of range")))
}

/// Checks a single-line text field: trimmed length in `1..=max` characters, no control
/// characters; returns it trimmed.
pub(crate) fn line_field(value: &str, what: &str, max: usize) -> Result<String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(ProductsError::Invalid(format!("{what} is empty")));
    }
    if v.chars().count() > max {
        return Err(ProductsError::Invalid(format!(
            "{what} is longer than {max} characters"
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(ProductsError::Invalid(format!(
            "{what} contains control characters"
        )));
    }
    Ok(v.to_string())
}

/// Checks a multi-line text field: at most `max` characters, no control characters
/// other than line breaks and tabs.
pub(crate) fn text_field(value: &str, what: &str, max: usize) -> Result<String> {
    if value.chars().count() > max {
        return Err(ProductsError::Invalid(format!(
            "{what} is longer than {max} characters"
        )));
    }
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(ProductsError::Invalid(format!(
            "{what} contains control characters"
        )));
    }
    Ok(value.trim().to_string())
}
