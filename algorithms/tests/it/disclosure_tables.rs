//! Tables with totals (`ROLLUP`, `CUBE`, `GROUPING SETS`): after primary suppression,
//! complementary cells are withheld so that no withheld or removed cell can be
//! recomputed from the released cells and totals. Each test plays the attacker: it
//! builds the linear equations every released value gives (a cell is the sum of the
//! interior cells under it) and checks that no cell that did not come out is
//! determined by them.

use std::collections::BTreeMap;

use pdx_algorithms::disclosure::{CheckedOutput, DisclosureError, DisclosureRules, Rule};

use crate::disclosure::{fixture, ints, strings};

/// Levels of each dimension of a query (the attacker knows them: the catalog's
/// released domains).
struct Dimensions {
    /// Output column and its levels, per dimension.
    columns: Vec<(&'static str, Vec<&'static str>)>,
}

impl Dimensions {
    /// The interior cells: every combination of levels.
    fn interior(&self) -> Vec<Vec<&'static str>> {
        let mut out: Vec<Vec<&'static str>> = vec![Vec::new()];
        for (_, levels) in &self.columns {
            out = out
                .into_iter()
                .flat_map(|prefix| {
                    levels.iter().map(move |level| {
                        let mut key = prefix.clone();
                        key.push(*level);
                        key
                    })
                })
                .collect();
        }
        out
    }

    /// The interior cells under a cell (`None`: total over that dimension).
    fn under(&self, key: &[Option<String>]) -> Vec<f64> {
        self.interior()
            .iter()
            .map(|cell| {
                let inside = cell
                    .iter()
                    .zip(key)
                    .all(|(level, k)| k.as_deref().is_none_or(|k| k == *level));
                if inside { 1.0 } else { 0.0 }
            })
            .collect()
    }
}

/// The rank of `rows` (Gaussian elimination; the entries are small integers).
fn rank(mut rows: Vec<Vec<f64>>) -> usize {
    let width = rows.first().map_or(0, Vec::len);
    let mut rank = 0;
    for column in 0..width {
        let Some(pivot) = (rank..rows.len())
            .max_by(|a, b| rows[*a][column].abs().total_cmp(&rows[*b][column].abs()))
        else {
            break;
        };
        if rows[pivot][column].abs() < 1e-9 {
            continue;
        }
        rows.swap(rank, pivot);
        let pivot_row = rows[rank].clone();
        for (r, row) in rows.iter_mut().enumerate() {
            if r == rank {
                continue;
            }
            let factor = row[column] / pivot_row[column];
            if factor != 0.0 {
                for (cell, p) in row.iter_mut().zip(&pivot_row) {
                    *cell -= factor * p;
                }
            }
        }
        rank += 1;
    }
    rank
}

/// Every cell of the full table (interior and totals) the attacker must not learn, and
/// whether the released cells determine it: cells of 1 to 9 records (whether the query
/// asked for them or not), and cells the output withheld.
fn determined_cells(
    out: &CheckedOutput,
    dims: &Dimensions,
    value: &str,
    true_counts: &BTreeMap<Vec<String>, i64>,
) -> Vec<(Vec<Option<String>>, bool)> {
    let keys: Vec<Vec<Option<String>>> = dims
        .columns
        .iter()
        .map(|(name, _)| strings(out, name))
        .collect();
    let values = ints(out, value);
    let mut released: BTreeMap<Vec<Option<String>>, i64> = BTreeMap::new();
    let mut withheld: Vec<Vec<Option<String>>> = Vec::new();
    for (row, v) in values.iter().enumerate() {
        let key: Vec<Option<String>> = keys.iter().map(|k| k[row].clone()).collect();
        match v {
            Some(v) => {
                released.insert(key, *v);
            }
            None => withheld.push(key),
        }
    }
    let equations: Vec<Vec<f64>> = released.keys().map(|k| dims.under(k)).collect();
    let base = rank(equations.clone());
    // Every cell pattern: each dimension a level or the total.
    let mut patterns: Vec<Vec<Option<String>>> = vec![Vec::new()];
    for (_, levels) in &dims.columns {
        patterns = patterns
            .into_iter()
            .flat_map(|prefix| {
                levels
                    .iter()
                    .map(|l| Some((*l).to_owned()))
                    .chain([None])
                    .map(move |k| {
                        let mut key = prefix.clone();
                        key.push(k);
                        key
                    })
            })
            .collect();
    }
    let records = |key: &[Option<String>]| -> i64 {
        true_counts
            .iter()
            .filter(|(cell, _)| {
                cell.iter()
                    .zip(key)
                    .all(|(level, k)| k.as_deref().is_none_or(|k| k == level))
            })
            .map(|(_, n)| *n)
            .sum()
    };
    patterns
        .into_iter()
        .filter(|key| !released.contains_key(key))
        .filter(|key| {
            let n = records(key);
            (n > 0 && n < 10) || withheld.contains(key)
        })
        .map(|key| {
            let mut with = equations.clone();
            with.push(dims.under(&key));
            let determined = rank(with) == base;
            (key, determined)
        })
        .collect()
}

/// Asserts that no small or withheld cell of `value` can be recomputed.
fn assert_nothing_recomputable(
    sql: &str,
    out: &CheckedOutput,
    dims: &Dimensions,
    value: &str,
    true_counts: &BTreeMap<Vec<String>, i64>,
) {
    let hidden = determined_cells(out, dims, value, true_counts);
    assert!(!hidden.is_empty(), "{sql}: nothing was withheld");
    let exposed: Vec<_> = hidden.iter().filter(|(_, d)| *d).collect();
    assert!(
        exposed.is_empty(),
        "{sql}: {value}: recomputable {exposed:?}"
    );
}

/// The band of an income (the test's third dimension).
fn band(income: i64) -> String {
    if income > 40_000 { "high" } else { "low" }.to_owned()
}

fn regions() -> (&'static str, Vec<&'static str>) {
    ("region", vec!["east", "isle", "north", "south", "west"])
}

fn sexes() -> (&'static str, Vec<&'static str>) {
    ("sex", vec!["F", "M"])
}

fn bands() -> (&'static str, Vec<&'static str>) {
    ("band", vec!["high", "low"])
}

/// The people with an income band (a key that reads one column).
const BANDED: &str = "(SELECT region, sex, income, \
     CASE WHEN income > 40000 THEN 'high' ELSE 'low' END AS band FROM people) t";

#[tokio::test]
async fn a_one_dimensional_total_does_not_give_away_a_small_group() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    let sql = "SELECT region, count(*) AS n FROM people GROUP BY ROLLUP(region)";
    let out = f.run(sql, &rules).await;
    // The small region is removed; without a complement the total minus the other
    // four would be its count.
    let dims = Dimensions {
        columns: vec![regions()],
    };
    let counts = f.counts_by(|region, _, _| vec![region.to_owned()]);
    assert_nothing_recomputable(sql, &out, &dims, "n", &counts);
    let n = ints(&out, "n");
    let released = n.iter().flatten().count();
    assert!(released >= 3, "{sql}: too much withheld: {n:?}");
    assert!(
        out.report.hits.iter().any(|h| h.rule == Rule::Secondary),
        "{:?}",
        out.report.hits
    );
    // The same without the total needs no complement.
    let plain = f
        .run(
            "SELECT region, count(*) AS n FROM people GROUP BY region",
            &rules,
        )
        .await;
    assert_eq!(ints(&plain, "n").iter().flatten().count(), 4);
    assert!(!plain.report.hits.iter().any(|h| h.rule == Rule::Secondary));
}

#[tokio::test]
async fn a_two_dimensional_cube_protects_its_small_cells() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    let dims = Dimensions {
        columns: vec![regions(), sexes()],
    };
    let counts = f.counts_by(|region, sex, _| vec![region.to_owned(), sex.to_owned()]);
    for sql in [
        "SELECT region, sex, count(*) AS n FROM people GROUP BY CUBE(region, sex)",
        "SELECT region, sex, count(*) AS n FROM people GROUP BY ROLLUP(region, sex)",
        "SELECT region, sex, count(*) AS n FROM people \
         GROUP BY GROUPING SETS ((region), (sex), (region, sex), ())",
    ] {
        let out = f.run(sql, &rules).await;
        assert_nothing_recomputable(sql, &out, &dims, "n", &counts);
        assert!(ints(&out, "n").iter().flatten().count() >= 8, "{sql}");
    }
    // Margins only, without the interior: the two margins share their total.
    let sql =
        "SELECT region, sex, count(*) AS n FROM people GROUP BY GROUPING SETS ((region), (sex))";
    let out = f.run(sql, &rules).await;
    assert_nothing_recomputable(sql, &out, &dims, "n", &counts);
}

#[tokio::test]
async fn a_three_dimensional_cube_protects_its_small_cells() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    let dims = Dimensions {
        columns: vec![regions(), sexes(), bands()],
    };
    let sql = format!(
        "SELECT region, sex, band, count(*) AS n FROM {BANDED} GROUP BY CUBE(region, sex, band)"
    );
    let counts =
        f.counts_by(|region, sex, income| vec![region.to_owned(), sex.to_owned(), band(income)]);
    let out = f.run(&sql, &rules).await;
    assert_nothing_recomputable(&sql, &out, &dims, "n", &counts);
    assert!(ints(&out, "n").iter().flatten().count() >= 20, "{sql}");
}

#[tokio::test]
async fn a_dominated_total_and_its_cells_are_protected_as_sums() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    // The dominant earner makes (west, M) and the west and M totals dominated; the
    // sums of the other cells must not give them away.
    let sql = "SELECT region, sex, sum(income) AS s FROM people GROUP BY CUBE(region, sex)";
    let out = f.run(sql, &rules).await;
    let dims = Dimensions {
        columns: vec![regions(), sexes()],
    };
    let counts = f.counts_by(|region, sex, _| vec![region.to_owned(), sex.to_owned()]);
    assert_nothing_recomputable(sql, &out, &dims, "s", &counts);
}

#[tokio::test]
async fn grouping_sets_are_refused_below_the_top_and_beyond_six_columns() {
    let f = fixture().await;
    let e = f
        .refuse(
            "SELECT count(*) FROM (SELECT region, count(*) AS n FROM people \
             GROUP BY ROLLUP(region)) t",
        )
        .await;
    assert!(matches!(e, DisclosureError::GroupingSets), "{e:?}");
    let e = f
        .refuse(
            "SELECT count(*) FROM people GROUP BY CUBE(region, sex, id, income, \
             region || 'a', sex || 'b', region || 'c')",
        )
        .await;
    assert!(matches!(e, DisclosureError::GroupingSets), "{e:?}");
}

#[tokio::test]
async fn a_filtered_total_cannot_isolate_a_record_through_known_zero_cells() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    // Person 42 lives in the east. The filter leaves east with one record and west and
    // isle with none (known zeros to the attacker), so total − north − south would be
    // 42's income.
    let sql = "SELECT region, sum(income) FILTER (WHERE id = 42 OR region IN ('north', 'south')) AS s \
               FROM people GROUP BY ROLLUP(region)";
    let out = f.run(sql, &rules).await;
    let regions = strings(&out, "region");
    let sums = ints(&out, "s");
    let value = |name: Option<&str>| {
        regions
            .iter()
            .zip(&sums)
            .find(|(r, _)| r.as_deref() == name)
            .and_then(|(_, s)| *s)
    };
    let (total, north, south) = (value(None), value(Some("north")), value(Some("south")));
    assert!(
        total.is_none() || north.is_none() || south.is_none(),
        "{sql}: total {total:?}, north {north:?}, south {south:?} give person 42 away"
    );
    assert_eq!(value(Some("east")), None);
}
