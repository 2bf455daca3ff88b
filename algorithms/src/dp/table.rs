//! The public description of a table that DP queries run over: which columns exist, their
//! clipping bounds and category sets, how many rows the table may hold, and the privacy unit.
//!
//! Everything here is public knowledge (it comes from the provider's declaration in the
//! catalog, never from the data), so it may shape the OpenDP plan without spending budget.

use crate::deid::schema::{ColumnSpec, ColumnType, DeidRule, Domain};

use super::DpError;

/// What is publicly known about one column's values.
#[derive(Clone, Debug, PartialEq)]
pub enum ColumnKind {
    /// 64-bit integers; `bounds` is the public clipping range for SUM, AVG and QUANTILE.
    Integer {
        /// Inclusive `(min, max)`, if declared.
        bounds: Option<(i64, i64)>,
    },
    /// 64-bit floats; `bounds` is the public clipping range for SUM, AVG and QUANTILE.
    Float {
        /// Inclusive `(min, max)`, if declared.
        bounds: Option<(f64, f64)>,
    },
    /// Text; `categories` is the public value set that makes the column a public GROUP BY key.
    Text {
        /// The declared values, if the domain is a closed set.
        categories: Option<Vec<String>>,
    },
}

/// One declared column.
#[derive(Clone, Debug, PartialEq)]
pub struct DpColumn {
    /// Column name as it appears in the data and in queries.
    pub name: String,
    /// Type and public domain.
    pub kind: ColumnKind,
}

/// Whose privacy a query protects: one record, or one person who may own several records.
#[derive(Clone, Debug, PartialEq)]
pub enum PrivacyUnit {
    /// Each record belongs to a different person: neighbouring tables differ by one record.
    Record,
    /// Records sharing `identifier` belong to one person; neighbouring tables differ by all
    /// records of one person, and each person's records are truncated to `max_contributions`.
    User {
        /// The column naming the person (never selected, grouped or aggregated).
        identifier: String,
        /// The declared bound on records per person (the truncation length).
        max_contributions: u32,
    },
}

/// The declared, public description of the one table a DP query reads.
#[derive(Clone, Debug, PartialEq)]
pub struct DpTable {
    /// The table name the query must name in `FROM`.
    pub name: String,
    /// The columns that queries may refer to.
    pub columns: Vec<DpColumn>,
    /// A public upper bound on the number of rows (OpenDP needs it to bound sums).
    pub max_rows: u32,
    /// The privacy unit.
    pub unit: PrivacyUnit,
}

impl DpTable {
    /// An empty record-level description of table `name` holding at most `max_rows` rows.
    pub fn new(name: impl Into<String>, max_rows: u32) -> Self {
        DpTable {
            name: name.into(),
            columns: Vec::new(),
            max_rows,
            unit: PrivacyUnit::Record,
        }
    }

    /// Adds an integer column clipped to `[min, max]`.
    pub fn integer(self, name: impl Into<String>, min: i64, max: i64) -> Self {
        self.with_column(
            name,
            ColumnKind::Integer {
                bounds: Some((min, max)),
            },
        )
    }

    /// Adds a float column clipped to `[min, max]`.
    pub fn float(self, name: impl Into<String>, min: f64, max: f64) -> Self {
        self.with_column(
            name,
            ColumnKind::Float {
                bounds: Some((min, max)),
            },
        )
    }

    /// Adds a text column whose values come from the public set `values`.
    pub fn categorical<S: Into<String>>(
        self,
        name: impl Into<String>,
        values: impl IntoIterator<Item = S>,
    ) -> Self {
        let categories = values.into_iter().map(Into::into).collect();
        self.with_column(
            name,
            ColumnKind::Text {
                categories: Some(categories),
            },
        )
    }

    /// Adds a column with the given kind.
    pub fn with_column(mut self, name: impl Into<String>, kind: ColumnKind) -> Self {
        self.columns.push(DpColumn {
            name: name.into(),
            kind,
        });
        self
    }

    /// Makes the table user-level: `identifier` names the person, who owns at most
    /// `max_contributions` records (more are truncated away before aggregation).
    pub fn user_level(mut self, identifier: impl Into<String>, max_contributions: u32) -> Self {
        self.unit = PrivacyUnit::User {
            identifier: identifier.into(),
            max_contributions,
        };
        self
    }

    /// Describes a de-identified catalog table from its column declarations.
    ///
    /// `Domain::Range` (or else a `TopBottom` rule's codes) becomes clipping bounds, with
    /// integer bounds rounded inwards; `Domain::Categories` becomes a public key set (the
    /// column is then read as text, so integer codes become `"0"`, `"1"`, ...). Dropped
    /// columns are left out. Columns whose values de-identification rewrites (pseudonyms,
    /// masks, generalisation ladders) become text without a domain, because the released
    /// values no longer come from the declared one. `max_rows` is the public row bound (for
    /// instance the row count recorded with the dataset version).
    pub fn from_catalog(name: impl Into<String>, columns: &[ColumnSpec], max_rows: u32) -> Self {
        let mut table = DpTable::new(name, max_rows);
        for spec in columns {
            let (rewritten, coded) = match &spec.rule {
                DeidRule::Drop => continue,
                DeidRule::Keep => (false, None),
                DeidRule::TopBottom { lower, upper } => (false, Some((*lower, *upper))),
                DeidRule::Pseudonymise
                | DeidRule::Mask(_)
                | DeidRule::Hierarchy { .. }
                | DeidRule::Bin { .. }
                | DeidRule::DateTruncate { .. } => (true, None),
            };
            let range = match (&spec.domain, coded) {
                (Some(Domain::Range { min, max }), _) => Some((*min, *max)),
                (_, coded) => coded,
            };
            let kind = match (rewritten, &spec.domain, spec.column_type) {
                (true, _, _) => ColumnKind::Text { categories: None },
                (false, Some(Domain::Categories { values }), _) => ColumnKind::Text {
                    categories: Some(values.clone()),
                },
                (false, _, ColumnType::Integer) => ColumnKind::Integer {
                    bounds: range.and_then(|(a, b)| integer_bounds(a, b)),
                },
                (false, _, ColumnType::Float) => ColumnKind::Float {
                    bounds: range.filter(|(a, b)| a.is_finite() && b.is_finite() && a <= b),
                },
                (false, _, _) => ColumnKind::Text { categories: None },
            };
            table.columns.push(DpColumn {
                name: spec.name.clone(),
                kind,
            });
        }
        table
    }

    /// The declared column called `name`, if any.
    pub fn column(&self, name: &str) -> Option<&DpColumn> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Checks the declaration itself (a provider-side problem, not the query's).
    pub(crate) fn validate(&self) -> Result<(), DpError> {
        let bad = |reason: String| Err(DpError::InvalidTable { reason });
        if self.max_rows == 0 {
            return bad("max_rows must be positive".into());
        }
        for (i, c) in self.columns.iter().enumerate() {
            if c.name.is_empty() {
                return bad(format!("column {} has an empty name", i + 1));
            }
            if self.columns[..i].iter().any(|o| o.name == c.name) {
                return bad(format!("column `{}` is declared twice", c.name));
            }
            match &c.kind {
                ColumnKind::Integer {
                    bounds: Some((lo, hi)),
                } if lo > hi => {
                    return bad(format!("column `{}` has min > max", c.name));
                }
                ColumnKind::Float {
                    bounds: Some((lo, hi)),
                } if !(lo.is_finite() && hi.is_finite() && lo <= hi) => {
                    return bad(format!("column `{}` has invalid bounds", c.name));
                }
                ColumnKind::Text {
                    categories: Some(values),
                } if values.is_empty() => {
                    return bad(format!("column `{}` declares no categories", c.name));
                }
                _ => {}
            }
        }
        if let PrivacyUnit::User {
            identifier,
            max_contributions,
        } = &self.unit
        {
            if self.column(identifier).is_none() {
                return bad(format!("identifier column `{identifier}` is not declared"));
            }
            if *max_contributions == 0 {
                return bad("max_contributions must be positive".into());
            }
        }
        Ok(())
    }
}

/// Rounds a declared real range inwards to integers; `None` if it holds no integer.
fn integer_bounds(min: f64, max: f64) -> Option<(i64, i64)> {
    const LIMIT: f64 = 9.0e15; // exactly representable, far from overflow in sums
    let (lo, hi) = (min.ceil(), max.floor());
    (lo.is_finite() && hi.is_finite() && lo <= hi && lo.abs() <= LIMIT && hi.abs() <= LIMIT)
        .then_some((lo as i64, hi as i64))
}
