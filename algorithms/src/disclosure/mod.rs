//! Automatic disclosure control for SQL outputs on conditional data: the check that
//! "results data produced by algorithm models" (SD22 Art.11) leave the sandbox only as
//! de-identified aggregates (SD22 Art.13), one of the privacy-computing measures XT
//! Art.35–36 require.
//!
//! [`check_and_run`] plans a developer's query in the [`SqlSandbox`], refuses shapes
//! that can release row-level data, rewrites the plan so that the engine computes the
//! checks itself (*shadow aggregates* over the same plan, in the same pass), runs it,
//! and returns the output with unsafe cells removed or nulled, plus a [`CheckReport`].
//! Nothing is checked by a person first; a reviewer sees the report next to the output.
//!
//! # Plan rules (refused before anything runs, [`analyse_plan`])
//!
//! 1. **Aggregate only.** The plan must end in an aggregate. Above the top aggregate only
//!    `Projection`, `Sort` (ORDER BY), `Limit`, `Filter` (HAVING) and `SubqueryAlias` may
//!    appear. No aggregate at all, or a window, join, union or DISTINCT above it, is
//!    row-level output. A global aggregate (no GROUP BY) is one group.
//! 2. **Allowed aggregates, deny by default.** Every aggregate node anywhere in the plan
//!    (derived tables and subqueries included) may only use `COUNT`, `SUM` and `AVG`
//!    (recognised by implementation type, not by name). Refused: `MIN`/`MAX`,
//!    `first_value`/`last_value`/`nth_value`, `array_agg`, `string_agg`, `median`,
//!    `approx_percentile_*`/`approx_median` (they return one record's value),
//!    `bit_*`/`bool_*`, `stddev`/`var`/`covar`/`corr`/`regr_*` (not needed and not covered
//!    by the rules below), and every other or unknown aggregate UDF.
//!    `DISTINCT` is allowed only in `COUNT`: `SUM(DISTINCT x)` can isolate one value among
//!    many equal ones, which the dominance rule (over records) would not see.
//! 3. **Grouping sets only at the top** (`ROLLUP`, `CUBE`, `GROUPING SETS`, at most six
//!    columns, as the one `GROUP BY` clause of the outermost aggregate). A total next to
//!    its released cells gives away a withheld cell by subtraction, so the first stage
//!    withholds complementary cells (`cube.rs`, `secondary.rs`: a line rule in the
//!    spirit of τ-ARGUS's hypercube method, then an exact linear-algebra check that no
//!    withheld cell is determined by the released ones), reported as rule `secondary`.
//!    In a nested aggregate a grouping set would feed totals into the outer one.
//! 4. **No subquery expressions** (scalar, `IN`, `EXISTS`): a scalar subquery can copy
//!    one person's value into every row (`SUM((SELECT income … WHERE id = 7))` over 200
//!    rows passes both rules and reveals the income). Derived tables in `FROM` are fine.
//! 5. **No record-repeating or value-spreading operators below the top aggregate**:
//!    joins, unions, `UNNEST`, window functions, `DISTINCT ON`, extension nodes. A join
//!    with a 10-row table, or a union of one record with itself, would make one record
//!    look like ten. Allowed below: scans, filters, projections, aliases, sorts, limits,
//!    and `VALUES` (rule 11 refuses `DISTINCT` and inner aggregates).
//! 6. Column names starting with `__pdx_` are reserved for the rewrite.
//! 7. **Plain measures.** `SUM`, `AVG` and `COUNT(DISTINCT …)` read their argument's
//!    values, so the argument must be a column (traced down through projections,
//!    aliases and filters to the table), optionally negated or cast to floating point.
//!    `SUM(CASE WHEN id = 7 THEN income ELSE 1000 END)` reads every record (so it passes
//!    the threshold) while its value is one person's income plus a known constant;
//!    `SUM(1 - abs(signum(id - 7)))` is a count of one, and so is the step function
//!    `SUM((id + 158) / 200) - SUM((id + 157) / 200)`; `SUM(income + 1e9)` hides a
//!    dominant contributor from the dominance rule; `SUM(income * 5)` undoes rounding to
//!    base 5. All are refused: scale or shift the aggregate instead (`SUM(x) * 5`), and
//!    write selections as `WHERE` or `FILTER (WHERE …)`, which are record sets the cell
//!    rules below see and check. Plain `COUNT(x)` reads only whether `x` is NULL, which
//!    is exactly its record set, so its argument is free. A value computed by an inner
//!    aggregate is not a plain measure.
//! 8. **Semantics that cannot fail on data** (`safe.rs`). `CAST` becomes `TRY_CAST`
//!    and division or modulo by a value that can be zero gives NULL, so a job cannot
//!    fail only when some record meets a condition (its status would be the answer).
//! 9. **Constant patterns.** Regular expressions and `LIKE` patterns must be constant
//!    strings, and a regular expression must compile (checked here, before any row).
//! 10. **One column per group key** (traced through derived tables). A key combining
//!     columns selects records invisibly: `GROUP BY sex, (id = 7 AND income > 50000)`
//!     isolates person 7 in a group the threshold removes, and the released counts
//!     then add up to the public total minus one exactly when the condition holds.
//!     `GROUP BY age / 10` and `GROUP BY region, sex` are fine.
//! 11. **No nested aggregation.** An aggregate over the result of `GROUP BY` or
//!     `DISTINCT` counts groups or distinct values, not records, and `COUNT(DISTINCT x)`
//!     is only allowed on the contributor column ([`DisclosureRules::contributor_column`]):
//!     such values are not sums over records, so record sets cannot bound them (`COUNT(
//!     DISTINCT diagnosis)` over two selections 10 records apart differs by one exactly
//!     when person 42's diagnosis is new).
//!
//! # Cell rules (computed by the engine, per group)
//!
//! A *cell* is one group (one row of the aggregate); a global aggregate is one cell.
//! Within it, each aggregate value is checked on its own as well.
//!
//! * **Threshold** ([`DisclosureRules::threshold`], default 10). The group must be backed
//!   by at least `threshold` records — with a [`DisclosureRules::contributor_column`],
//!   by that many distinct contributors (`COUNT(DISTINCT id)`; NULL ids do not count).
//!   A group below it is **removed** (the whole row: its group keys can themselves be
//!   the secret, e.g. `GROUP BY id`). Each aggregate value is also backed only by the
//!   records it actually reads: `COUNT(x)`, `SUM(x)`, `AVG(x)` by the rows where `x` is
//!   not NULL and its `FILTER (WHERE …)` holds. A value below the threshold is **set to
//!   NULL** in a kept row (so `COUNT(CASE WHEN id = 7 THEN 1 END)` cannot reveal one
//!   person).
//! * **Dominance** (the (n, k) rule; [`DisclosureRules::dominance_n`] default 2,
//!   [`DisclosureRules::dominance_p_percent`] default 85). For each `SUM` and `AVG`
//!   value, the `n` largest contributions `|x|` may not exceed `p` % of the cell total
//!   `Σ|x|` (absolute values, so negative entries cannot hide a dominant one). With a
//!   contributor column, contributions are first summed per contributor. A dominated
//!   value is **set to NULL**; the group and its other values stay.
//! * **Differencing within the output.** Every aggregate reads a record set: the
//!   group's records that pass its `FILTER` and have its argument not NULL (rule 7 makes
//!   this the whole of what it reads). Any linear combination of a group's values is a
//!   combination of the sums over the *regions* of the Venn diagram of those sets
//!   (records in sets 1 and 3 but not 2, …), so every non-empty region must hold at
//!   least `threshold` records (contributors). Pairs are not enough: `SUM(x) FILTER
//!   (WHERE id BETWEEN 100 AND 119) + SUM(x) FILTER (WHERE id BETWEEN 120 AND 139 OR id =
//!   7) - SUM(x) FILTER (WHERE id BETWEEN 100 AND 139)` differs pairwise by 20 or more
//!   and is person 7's value. Each region is counted exactly in the same pass
//!   (`COUNT(…) FILTER (WHERE in_1 AND NOT in_2 AND in_3)`); when one holds 1 to
//!   `threshold − 1` records, only the value over the largest set (the earliest on a
//!   tie) is released and the others are **set to NULL**, in the guard, so `HAVING`
//!   and `ORDER BY` see only NULL. A query may compare at most five differently
//!   selected sets (31 regions). Values of different groups read disjoint sets.
//!   Equal sets are not enough when two values were *selected differently*: if their
//!   crafted conditions differ (a `FILTER`, or a `COUNT` argument that is not a plain
//!   column down to the table), `COUNT(*)` next to `COUNT(*) FILTER (WHERE NOT (id = 7
//!   AND income > 50000))` would answer the yes/no question by whether the second is
//!   withheld; so such sets must differ by at least `threshold` records, and equal sets
//!   count as too close. Values that differ only in which plain column must not be
//!   NULL (`COUNT(*)` next to `AVG(x)`) may read the same set.
//! * **`COUNT(DISTINCT x)`** counts distinct values, so the value itself must reach the
//!   threshold too: `COUNT(DISTINCT income / 30001) … WHERE income <= 30000 OR id = 7`
//!   is 1 or 2 and says which.
//! * **Differencing against the public total.** The catalog publishes each version's
//!   row count ([`DisclosureRules::public_rows`]). A value whose records are *restricted*
//!   (a `WHERE`, `LIMIT`, `GROUP BY`, nested query or crafted condition) but number more
//!   than `total − threshold` is the total minus fewer than `threshold` records (`WHERE
//!   NOT (id = 7 AND …)`), and is **set to NULL**; so is a group holding all but a few
//!   records. Groups add up, so for a selection (`WHERE`, `FILTER`…) the sum of a set's
//!   sizes over all groups is checked the same way (a window over the aggregate, before
//!   the guard): `… WHERE NOT (id = 7 AND …) GROUP BY sex` gives counts that add up to
//!   the total or the total minus one. An unrestricted value over the whole table is
//!   released. When nothing selects (no `WHERE`, `LIMIT` or nesting), groups removed by
//!   the threshold are what the released groups miss of the total: their records must
//!   number 0 or at least `threshold`, or every value is withheld (a blanket secondary
//!   suppression: `GROUP BY region` with a 3-person region removed would otherwise give
//!   its count as the total minus the rest). With a selection, whether a group was
//!   removed can depend on it, so that case is left to the checks above.
//! * **Differencing across outputs** (`record_sets.rs`, `stages.rs`). The engine also
//!   computes, in the same pass, the *record set* of every value: a bitmap of the row
//!   ordinals it reads in the certified file. Before anything above the aggregate runs,
//!   each value is compared with every set the organisation already holds or has in
//!   review on the same version (the caller supplies them, [`PriorRecordSets`]): when
//!   the two differ, in either direction, by 1 to `threshold − 1` records, or are the
//!   same records selected differently, the new value is **set to NULL**. After the
//!   query's own operators ran, the union of each value's released cells (what the
//!   column total gives away) is compared the same way, and so is whether the column's
//!   released cells and an earlier value give away its withheld cells; such a column is
//!   withheld whole and the query's operators above the aggregate run again, so they
//!   never see its values. The sets of what is released are returned
//!   ([`CheckedOutput::record_sets`]) for the caller to keep. Models outside SQL (a
//!   regression's rows and its levels' rows, `crate::regression`) are checked against
//!   the same earlier sets by [`check_sets_after`], under the fingerprint of a plain
//!   aggregate ([`plain_selection`]).
//! * **Rounding** ([`DisclosureRules::rounding_base`], default none). Every `COUNT` and
//!   `SUM` value that is released is rounded to the nearest multiple of the base; an
//!   `AVG` value is recomputed as rounded sum / rounded count, so `AVG × COUNT` cannot
//!   undo the rounding.
//!
//! # How the shadow rewrite works
//!
//! The top aggregate gets extra (*shadow*) aggregates: `count(1)` or
//! `count(DISTINCT contributor)` for the group, one backing count per aggregate (same
//! arguments not NULL, same FILTER), one `pdx_dominance_ok(x [, contributor])` flag per
//! `SUM`/`AVG` (an internal aggregate keeping the top `n` and the total; see
//! `dominance.rs`), and for rounded `AVG` the plain sum and count. Identical shadows are
//! computed once. Directly above it a **guard projection** replaces every group key by
//! `CASE WHEN keep THEN key END` and every aggregate by `CASE WHEN keep AND
//! threshold_ok AND dominance_ok THEN rounded(value) END`, under the original names, and
//! adds boolean flag columns (`__pdx_keep`, `__pdx_threshold_j`, `__pdx_dominance_j`).
//! The shadow aggregates themselves (counts, sums) never leave the guard; only the
//! flags do. Each `Projection` above re-emits the flags, `Filter`/`Limit`/`SubqueryAlias`
//! pass them through, every `Sort` gets `__pdx_keep DESC` as its first key, and a sort on
//! `__pdx_keep` sits right above the guard. The output is then: original columns, flags.
//! After the run, rows whose `__pdx_keep` is false are removed, output columns computed
//! from a failed aggregate are set to NULL (lineage through the projections), and the
//! flags are dropped.
//!
//! The run has two stages (`stages.rs`): first the plan up to the guard, whose result
//! (one row per group, with the record sets) is checked against earlier outputs and
//! edited; then the query's operators above its aggregate, over that result.
//!
//! **HAVING, ORDER BY and LIMIT** run after the guard and the checks across outputs.
//! They see a suppressed value only as NULL, so they cannot probe it (`HAVING SUM(x) > 1000` on a dominated
//! cell is `NULL`, i.e. the row is dropped; ordering by it learns nothing). A group
//! below the threshold has all keys and values NULL and sorts after every kept group,
//! so `ORDER BY … LIMIT n` is filled with kept groups first; a bare `LIMIT` may still
//! spend slots on groups that are then removed (fewer than `n` rows can come back).
//! Groups that the query's own HAVING drops are not in the result and not reported.
//!
//! # Report
//!
//! [`CheckReport`] names every rule hit per cell: `row` is the index in the engine's
//! result before removal (removed groups come last), `released_row` the index in the
//! returned output, `column` the output column (none for a removed row). Details state
//! the rule and its parameters, never a value of the data: a count below the threshold
//! is "fewer than 10", not the number. `passed` lists the checks that held.
//!
//! # What these rules do not stop (use DP where it matters)
//!
//! * **Combinations of three or more outputs.** The check across outputs compares
//!   pairs (and column totals): `A − B + C` with every pair at least `threshold`
//!   apart can still isolate a record (`id 30–69`, `id 30–49`, then `id 50–69 or id =
//!   42`), as can a value against the difference of two earlier nested ones. The
//!   complete test (every Venn region of every combination) grows exponentially with
//!   the outputs; these cases need DP.
//! * **Across versions and organisations.** Sets are ordinals of one certified file;
//!   a new version renumbers rows, and two organisations' outputs are not compared
//!   (they would have to collude). With a contributor column, sets are rows, so
//!   "`threshold` rows apart" may be fewer contributors.
//! * **Same records, selected differently, are withheld** even when harmless (a
//!   breakdown first, then `WHERE` one of its groups): telling a harmless re-selection
//!   from `… AND NOT (id = 42 AND income > x)` is the yes/no question itself.
//! * **Boundary oracles: suppression decisions are data.** Whether a value is
//!   withheld depends on the records (that is what the rules are for), within one
//!   output and across outputs alike. A query that
//!   pads a selection with exactly `threshold − 1` other records (`FILTER (WHERE id
//!   BETWEEN 50 AND 58 OR (id = 7 AND income % 2 = 1))`) learns a bit about person 7
//!   from whether the value is released, and with several such values or groups in one
//!   query, several bits per run. It needs exact record counts of the padding, which a
//!   sequential or otherwise known identifier, or earlier released counts, provide.
//!   These rules do not stop it; noise does (a perturbation of released counts keyed
//!   to the cell, as in the ABS cell-key method, or DP).
//! * **Runs that fail on data** are hidden from the developer (the sandbox routes them
//!   through review), but a reviewer's rejection and the run's duration remain visible.
//! * **Time.** How long a run takes depends on the data it reads.
//!
//! Differentially private models (`dp`) bound what any combination of outputs can
//! reveal about one record; for data where these limits matter, grant DP only.
//!
//! The dominance aggregate is passed in the plan, not registered by name, so a plan
//! shipped to another engine (Ballista) must register it there.

mod across;
mod analyse;
mod cube;
mod dominance;
mod record_sets;
mod rewrite;
mod safe;
mod secondary;
mod stages;
mod suppress;

pub use across::{Nesting, NoPriors, PriorRecordSets, PriorSummary, PriorsInMemory, SetId};
pub use analyse::{AggregateCell, AggregateKind, PlanShape, analyse_plan};
pub use record_sets::{RecordSet, SetSummary, TrackedSet, hash_bytes, selection_fingerprint};
pub use stages::ReleasedSets;

use std::collections::BTreeMap;

use datafusion::logical_expr::LogicalPlan;
use serde::{Deserialize, Serialize};

use crate::sql::{SqlError, SqlOutput, SqlSandbox};

/// The checks every accepted plan has passed before it reads a row; they depend on
/// the query alone, so they can be shown to its author before release.
pub const PLAN_CHECKS: &[&str] = &[
    "aggregate_only",
    "allowed_aggregates",
    "grouping_sets_outermost_only",
    "no_subquery_expressions",
    "no_row_repeating",
    "plain_measures",
    "safe_semantics",
];

/// Prefix of the column names the rewrite adds (reserved in queries).
pub const SHADOW_PREFIX: &str = "__pdx_";

/// The disclosure rules of a dataset (the sandbox enforces the query budget separately).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DisclosureRules {
    /// Minimum records (or contributors) behind a released cell; default 10.
    pub threshold: u64,
    /// How many of the largest contributors the dominance rule adds up (n); default 2.
    pub dominance_n: u8,
    /// The share of a cell's total the `n` largest may reach, in percent (k); default 85.
    pub dominance_p_percent: u8,
    /// Round released counts and sums to this base (e.g. 5); `None` leaves them exact.
    pub rounding_base: Option<u32>,
    /// Column identifying the contributing entity (person, firm); `None`: each record.
    pub contributor_column: Option<String>,
    /// Rows of each table (by its name in SQL) that are public anyway, e.g. the certified
    /// row count the catalog shows: a value over all but a few of them is a difference
    /// against that public total (see the module documentation).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub public_rows: BTreeMap<String, u64>,
}

impl Default for DisclosureRules {
    fn default() -> Self {
        Self {
            threshold: 10,
            dominance_n: 2,
            dominance_p_percent: 85,
            rounding_base: None,
            contributor_column: None,
            public_rows: BTreeMap::new(),
        }
    }
}

impl DisclosureRules {
    /// Checks that the rules are usable: `n` ≥ 1, `p` ≤ 100, base ≥ 1, a non-empty column.
    pub fn validate(&self) -> Result<(), DisclosureError> {
        if self.dominance_n == 0 {
            return Err(DisclosureError::InvalidRules(
                "dominance_n must be at least 1",
            ));
        }
        if self.dominance_p_percent > 100 {
            return Err(DisclosureError::InvalidRules(
                "dominance_p_percent must be at most 100",
            ));
        }
        if self.rounding_base == Some(0) {
            return Err(DisclosureError::InvalidRules(
                "rounding_base must be at least 1",
            ));
        }
        if self
            .contributor_column
            .as_deref()
            .is_some_and(|c| c.trim().is_empty())
        {
            return Err(DisclosureError::InvalidRules(
                "contributor_column must not be empty",
            ));
        }
        Ok(())
    }
}

/// Which rule a [`RuleHit`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Too few records or contributors behind the group or the value.
    Threshold,
    /// The largest contributors dominate a SUM or AVG value.
    Dominance,
    /// The value was rounded (or computed from rounded counts and sums).
    Rounded,
    /// Two values read record sets that differ by fewer than `threshold` records.
    Differencing,
    /// Withheld as a complement, so a withheld cell of a table with totals cannot be
    /// recomputed (`ROLLUP`, `CUBE`, `GROUPING SETS`).
    Secondary,
}

/// One rule applied to one cell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleHit {
    /// Row index in the engine's result before suppression (removed groups come last).
    pub row: usize,
    /// Row index in the returned output; `None` when the row was removed.
    pub released_row: Option<usize>,
    /// The output column; `None` for a removed row or an aggregate that is not output.
    pub column: Option<String>,
    /// The rule.
    pub rule: Rule,
    /// What happened, without any data value.
    pub detail: String,
}

/// What the automatic checks did to one output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    /// The rules applied.
    pub rules: DisclosureRules,
    /// Cells (groups) in the result before suppression.
    pub cells_total: usize,
    /// Cells (groups) removed by the threshold rule.
    pub cells_suppressed: usize,
    /// Values set to NULL in released rows (threshold per value, dominance, differencing).
    pub values_suppressed: usize,
    /// Values computed from aggregates that left the checks with a value (not NULL).
    pub values_released: usize,
    /// Every rule hit, by row and column.
    pub hits: Vec<RuleHit>,
    /// The checks that held, e.g. `aggregate_only`, `allowed_aggregates`, `threshold>=10`.
    pub passed: Vec<String>,
}

impl CheckReport {
    /// An empty report for `rules`.
    fn new(rules: DisclosureRules) -> Self {
        Self {
            rules,
            cells_total: 0,
            cells_suppressed: 0,
            values_suppressed: 0,
            values_released: 0,
            hits: Vec::new(),
            passed: Vec::new(),
        }
    }

    /// Fills `passed` once the hits are known.
    fn finish(&mut self, shape: &PlanShape) {
        let mut passed: Vec<String> = PLAN_CHECKS.iter().map(|c| (*c).to_owned()).collect();
        if !self.hits.iter().any(|h| h.rule == Rule::Threshold) {
            passed.push(format!("threshold>={}", self.rules.threshold));
        }
        if !self
            .hits
            .iter()
            .any(|h| h.rule == Rule::Differencing && !h.detail.contains("already received"))
        {
            passed.push("differencing_within_output".to_owned());
        }
        if shape.grouping_sets && !self.hits.iter().any(|h| h.rule == Rule::Secondary) {
            passed.push("complementary_suppression".to_owned());
        }
        let magnitudes = shape.aggregates.iter().any(|a| a.kind.is_magnitude());
        if magnitudes && !self.hits.iter().any(|h| h.rule == Rule::Dominance) {
            passed.push(format!(
                "dominance(n={},p={}%)",
                self.rules.dominance_n, self.rules.dominance_p_percent
            ));
        }
        self.passed = passed;
    }
}

/// A checked output: what may leave the sandbox, and why it looks as it does.
#[derive(Debug, Clone)]
pub struct CheckedOutput {
    /// The output: flags stripped, suppressed rows removed and values nulled, rounded.
    pub output: SqlOutput,
    /// What the checks did.
    pub report: CheckReport,
    /// The accepted plan shape.
    pub shape: PlanShape,
    /// The record sets of the released values, for the checks of later outputs
    /// (`None` when the table has no row ordinals).
    pub record_sets: Option<ReleasedSets>,
}

/// Why a query was refused or could not be checked. Messages never contain data values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DisclosureError {
    /// The query would output rows that are not aggregates.
    #[error("row-level output is not allowed: {0}")]
    RowLevel(String),
    /// An aggregate function outside the allow-list (COUNT, SUM, AVG).
    #[error("aggregate {0} is not allowed; only COUNT, SUM and AVG are")]
    DisallowedAggregate(String),
    /// `DISTINCT` in an aggregate other than COUNT.
    #[error("{0}(DISTINCT …) is not allowed; DISTINCT is only allowed in COUNT")]
    DistinctMagnitude(String),
    /// `GROUPING SETS`, `ROLLUP` or `CUBE` other than as the outermost aggregate's one
    /// grouping clause of at most six columns.
    #[error(
        "GROUPING SETS, ROLLUP and CUBE are only allowed as the one GROUP BY clause of the \
         outermost aggregate, over at most 6 columns"
    )]
    GroupingSets,
    /// A scalar, IN or EXISTS subquery.
    #[error(
        "subqueries in expressions (scalar, IN, EXISTS) are not allowed; use a derived table in FROM"
    )]
    Subquery,
    /// An operator that repeats records or spreads values between them.
    #[error("{0} is not allowed in a query on conditional data")]
    Operator(&'static str),
    /// A SUM, AVG or COUNT(DISTINCT) over something other than a plain measure.
    #[error(
        "{0} must read a plain column (optionally negated or cast to DOUBLE); scale the \
         aggregate instead (SUM(x) * 100), and put conditions in WHERE or in FILTER (WHERE …), \
         where the disclosure checks can see them"
    )]
    Measure(String),
    /// A group key that reads more than one column.
    #[error(
        "group key {0} reads more than one column; group by each column separately \
         (GROUP BY a, b) and put conditions in WHERE"
    )]
    GroupKey(String),
    /// `COUNT(DISTINCT …)` of something other than the contributor column.
    #[error(
        "COUNT(DISTINCT {0}) is not allowed on conditional data: distinct values are not \
         records; count DISTINCT only the contributor column the provider declared"
    )]
    DistinctCount(String),
    /// More differently selected values than the differencing check compares.
    #[error(
        "a query may compare at most {0} differently selected record sets (FILTER clauses, \
         COUNT arguments, non-NULL columns); split it into several queries"
    )]
    TooManySelections(usize),
    /// A regular expression or LIKE pattern that is not a valid constant.
    #[error("{0}")]
    Pattern(&'static str),
    /// A column name that the rewrite reserves.
    #[error("column name {0} is reserved (prefix __pdx_)")]
    ReservedName(String),
    /// The declared contributor column does not reach the top aggregate.
    #[error("the contributor column {0} must reach the aggregate (do not project it away)")]
    ContributorColumn(String),
    /// The rules themselves are unusable (a platform configuration error).
    #[error("invalid disclosure rules: {0}")]
    InvalidRules(&'static str),
    /// Planning or running in the SQL sandbox failed.
    #[error(transparent)]
    Sql(#[from] SqlError),
    /// The shadow plan could not be built (names plan expressions, not data).
    #[error("the disclosure checks could not be added to the plan: {0}")]
    Rewrite(String),
    /// A broken invariant of this module.
    #[error("internal error in the disclosure checks: {0}")]
    Internal(&'static str),
}

impl DisclosureError {
    /// True when the developer's query is at fault (or hit a limit); false for platform errors.
    pub fn is_client_error(&self) -> bool {
        match self {
            DisclosureError::RowLevel(_)
            | DisclosureError::DisallowedAggregate(_)
            | DisclosureError::DistinctMagnitude(_)
            | DisclosureError::GroupingSets
            | DisclosureError::Subquery
            | DisclosureError::Operator(_)
            | DisclosureError::Measure(_)
            | DisclosureError::TooManySelections(_)
            | DisclosureError::DistinctCount(_)
            | DisclosureError::GroupKey(_)
            | DisclosureError::Pattern(_)
            | DisclosureError::ReservedName(_)
            | DisclosureError::ContributorColumn(_) => true,
            DisclosureError::Sql(e) => e.is_client_error(),
            DisclosureError::InvalidRules(_)
            | DisclosureError::Rewrite(_)
            | DisclosureError::Internal(_) => false,
        }
    }
}

/// Plans `sql` in the sandbox, checks it, runs it with shadow aggregates and returns the
/// suppressed, rounded output with its report (no earlier outputs to compare with).
pub async fn check_and_run(
    sandbox: &SqlSandbox,
    sql: &str,
    rules: &DisclosureRules,
) -> Result<CheckedOutput, DisclosureError> {
    check_and_run_after(sandbox, sql, rules, &NoPriors).await
}

/// [`check_and_run`], also withholding values too close to the earlier record sets
/// `priors` (differencing across outputs; see `record_sets.rs`).
pub async fn check_and_run_after<P: PriorRecordSets>(
    sandbox: &SqlSandbox,
    sql: &str,
    rules: &DisclosureRules,
    priors: &P,
) -> Result<CheckedOutput, DisclosureError> {
    rules.validate()?;
    let plan = sandbox.plan(sql).await?;
    check_and_run_plan(sandbox, &plan, rules, priors).await
}

/// [`check_and_run`] without record sets: no row ordinals, no check across outputs.
/// Only the baseline that `pdx bench sandbox` measures their cost against; the
/// sandbox never releases through it.
pub async fn check_and_run_untracked(
    sandbox: &SqlSandbox,
    sql: &str,
    rules: &DisclosureRules,
) -> Result<CheckedOutput, DisclosureError> {
    rules.validate()?;
    let plan = sandbox.plan(sql).await?;
    run_checked(sandbox, &plan, rules, &NoPriors, false).await
}

/// [`check_and_run_after`] for a plan already made by [`SqlSandbox::plan`] (not
/// optimised).
pub async fn check_and_run_plan<P: PriorRecordSets>(
    sandbox: &SqlSandbox,
    plan: &LogicalPlan,
    rules: &DisclosureRules,
    priors: &P,
) -> Result<CheckedOutput, DisclosureError> {
    run_checked(sandbox, plan, rules, priors, true).await
}

/// The checks and the two-stage run, with or without record sets. Not generic: the
/// priors are behind a pointer (`across::DynPriors`), so the checks are compiled in
/// this crate (optimised as it is) whoever calls them.
async fn run_checked(
    sandbox: &SqlSandbox,
    plan: &LogicalPlan,
    rules: &DisclosureRules,
    priors: &dyn across::DynPriors,
    record_sets: bool,
) -> Result<CheckedOutput, DisclosureError> {
    rules.validate()?;
    let plan = safe::make_safe(plan.clone())?;
    let analysis = analyse::analyse(&plan)?;
    let lookup = |table: &str| sandbox.ordinal_table(table);
    let ordinals = record_sets.then_some(&lookup as rewrite::OrdinalLookup<'_>);
    let shadowed = rewrite::shadow(&plan, &analysis, rules, ordinals)?;
    let staged = stages::run(sandbox, &plan, &analysis, &shadowed, rules, priors).await?;
    Ok(CheckedOutput {
        output: staged.suppressed.output,
        report: staged.suppressed.report,
        shape: analysis.shape,
        record_sets: staged.released,
    })
}

/// The checks as one plan, for inspection and tests: the original output columns, the
/// `__pdx_` flag columns and the cell column (NULL here). [`check_and_run_plan`] runs the
/// same in two stages, with record sets and the checks across outputs in between.
pub fn shadow_plan(
    plan: &LogicalPlan,
    rules: &DisclosureRules,
) -> Result<LogicalPlan, DisclosureError> {
    rules.validate()?;
    let plan = safe::make_safe(plan.clone())?;
    let analysis = analyse::analyse(&plan)?;
    Ok(rewrite::shadow(&plan, &analysis, rules, None)?.plan)
}

/// Everything [`check_and_run`] checks before it reads a row: parsing, planning, the
/// plan rules, the safe rewrite and the shadow rewrite. The sandbox calls it when a run
/// is submitted, so a refused shape is an immediate refusal that spends no budget.
pub async fn check_query(
    sandbox: &SqlSandbox,
    sql: &str,
    rules: &DisclosureRules,
) -> Result<PlanShape, DisclosureError> {
    rules.validate()?;
    let plan = sandbox.plan(sql).await?;
    let plan = safe::make_safe(plan)?;
    let analysis = analyse::analyse(&plan)?;
    rewrite::shadow(&plan, &analysis, rules, None)?;
    Ok(analysis.shape)
}

/// What [`check_sets_after`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetsVerdict {
    /// Per set, whether it is too close to what the organisation already holds.
    pub close: Vec<bool>,
    /// Nestings between the sets and earlier ones, to keep with them.
    pub nestings: Vec<Nesting>,
}

/// Checks the record sets of values computed outside SQL (a regression's rows and its
/// levels' rows) against the earlier sets `priors` of the organisation on `table`
/// (`table_rows` records when the row count is public), by the rule SQL values are
/// held to across outputs (`across.rs`): a set is too close when it and an earlier set,
/// a difference of two nested ones, or the rest of the table after one, differ by 1 to
/// `threshold − 1` records, are the same records selected differently, or are covered
/// by earlier sets but for a few records.
pub async fn check_sets_after<P: PriorRecordSets>(
    sets: &[TrackedSet],
    priors: &P,
    table: &str,
    table_rows: Option<u64>,
    threshold: u64,
) -> Result<SetsVerdict, DisclosureError> {
    let candidates: Vec<&TrackedSet> = sets.iter().collect();
    let ids: Vec<SetId> = sets.iter().map(SetId::of).collect();
    let verdicts =
        across::check_against_priors(&candidates, &ids, priors, table, table_rows, threshold)
            .await?;
    Ok(SetsVerdict {
        close: verdicts.close,
        nestings: verdicts.nestings,
    })
}

/// The selection fingerprint of a plain aggregate over `table` in `sandbox`: what
/// `SELECT COUNT(*) FROM table` records, and `AVG(x)` too (which plain column must not
/// be NULL is not part of a selection). A model that reads a table whole, as a
/// regression does (its rows are those where its columns are not NULL, its levels'
/// rows a breakdown like `GROUP BY`), records its sets under this fingerprint, so that
/// its sets and a plain SQL aggregate's over the same records count as selected the
/// same way rather than as a crafted re-selection.
pub async fn plain_selection(sandbox: &SqlSandbox, table: &str) -> Result<String, DisclosureError> {
    let plan = sandbox
        .plan(&format!("SELECT COUNT(*) FROM \"{table}\""))
        .await?;
    let plan = safe::make_safe(plan)?;
    let analysis = analyse::analyse(&plan)?;
    // As the rewrite fingerprints a value without a crafted condition.
    Ok(selection_fingerprint(&[
        format!("{:?}", analysis.top.input),
        String::new(),
    ]))
}
