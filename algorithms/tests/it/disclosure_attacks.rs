//! The privacy boundary under attack, by class: each test plays an attacker who wants
//! one person's exact value (person 42 of the fixture) or a yes/no answer about it, and
//! asserts that the inference the attack relies on is not available from what comes
//! out: either the query is refused, or a value the inference needs is withheld, or the
//! output is the same whichever way the answer goes.
//!
//! Classes: (1) arithmetic across aggregates of one run, written with `FILTER`,
//! `CASE`, `NULLIF`, complements and near-complements; (2) values that hide a record
//! selection inside a `SUM`/`AVG` argument; (3) outcome oracles (a run that fails only
//! when a record meets a condition) and filters that see a withheld value.

use pdx_algorithms::disclosure::{CheckedOutput, DisclosureError, DisclosureRules, Rule};

use crate::disclosure::{fixture, floats, ints, strings};

/// The target: person 42 (east, F), whose income is 32 598.
const TARGET_INCOME: i64 = 20_000 + (42 * 7_919) % 40_000;

/// True when the report withheld some value by the differencing rule.
fn differencing_hit(out: &CheckedOutput) -> bool {
    out.report.hits.iter().any(|h| h.rule == Rule::Differencing)
}

#[tokio::test]
async fn one_run_pairs_that_differ_by_fewer_than_threshold_records_are_not_both_released() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    // Each query releases `a` and `b` over record sets that differ by person 42 alone
    // (or by 9 people): `a - b` (or `a·|A| - b·|B|` for means) would be their value.
    let pairs = [
        "SELECT count(*) AS a, count(*) FILTER (WHERE id <> 42) AS b FROM people",
        "SELECT sum(income) FILTER (WHERE id <> 7) AS a, \
         sum(income) FILTER (WHERE id <> 7 AND id <> 42) AS b FROM people",
        "SELECT avg(income) FILTER (WHERE id <> 7) AS a, \
         avg(income) FILTER (WHERE id NOT IN (7, 42)) AS b FROM people",
        "SELECT count(*) AS a, count(NULLIF(id, 42)) AS b FROM people",
        "SELECT count(*) AS a, count(CASE WHEN id <> 42 THEN 1 END) AS b FROM people",
        "SELECT count(*) AS a, count(*) FILTER (WHERE NOT (id = 42 AND income > 30000)) AS b FROM people",
        "SELECT sum(income) FILTER (WHERE region = 'east') AS a, \
         sum(income) FILTER (WHERE region = 'east' AND id <> 42) AS b FROM people",
        // Nine people apart (threshold 10): still too close.
        "SELECT count(*) AS a, count(*) FILTER (WHERE id > 9) AS b FROM people",
        // Grouped: in the target's group the two differ by one.
        "SELECT region, count(*) AS a, count(*) FILTER (WHERE id <> 42) AS b FROM people GROUP BY region",
    ];
    for sql in pairs {
        let out = f.run(sql, &rules).await;
        let a = floats(&out, "a");
        let b = floats(&out, "b");
        let both = a.iter().zip(&b).filter(|(a, b)| a.is_some() && b.is_some());
        let differing = both.filter(|(a, b)| a != b).count();
        assert_eq!(differing, 0, "{sql}: a = {a:?}, b = {b:?}");
        assert!(differencing_hit(&out), "{sql}: {:?}", out.report.hits);
        // The value over the larger set stays.
        assert!(a.iter().any(Option::is_some), "{sql}: {a:?}");
    }
    // Ten people apart is far enough: both values are released.
    let out = f
        .run(
            "SELECT count(*) AS a, count(*) FILTER (WHERE id > 10) AS b FROM people",
            &rules,
        )
        .await;
    assert_eq!(ints(&out, "a"), [Some(200)]);
    assert_eq!(ints(&out, "b"), [Some(190)]);
    assert!(!differencing_hit(&out));
    // In the other groups the filter selects the same records, yet `b` is withheld
    // there too: were it released where it changes nothing, its absence would say
    // which group holds the target (or whether a condition on them holds).
    let out = f
        .run(
            "SELECT region, count(*) AS a, count(*) FILTER (WHERE id <> 42) AS b \
             FROM people WHERE region <> 'isle' GROUP BY region ORDER BY region",
            &rules,
        )
        .await;
    assert_eq!(ints(&out, "a").iter().flatten().count(), 4);
    assert_eq!(ints(&out, "b"), [None, None, None, None]);
    // The yes/no form: whether the target earns more than x, for x on both sides of
    // their income, gives the same output.
    let mut answers = Vec::new();
    for x in [TARGET_INCOME - 1, TARGET_INCOME] {
        let sql = format!(
            "SELECT count(*) AS a, count(*) FILTER (WHERE NOT (id = 42 AND income > {x})) AS b FROM people"
        );
        let out = f.run(&sql, &rules).await;
        answers.push((ints(&out, "a"), ints(&out, "b")));
    }
    assert_eq!(answers[0], answers[1], "the answer came out: {answers:?}");
    // Values that differ only in which plain column must not be NULL may read the same
    // records: a count next to a mean is released.
    let out = f
        .run(
            "SELECT region, count(*) AS n, avg(income) AS mean FROM people \
             WHERE region = 'north' GROUP BY region",
            &rules,
        )
        .await;
    assert!(ints(&out, "n")[0].is_some() && floats(&out, "mean")[0].is_some());
}

#[tokio::test]
async fn values_within_threshold_of_the_public_total_are_withheld() {
    let f = fixture().await;
    let mut rules = DisclosureRules::default();
    rules.public_rows.insert("people".to_owned(), 200);
    // The catalog says the version has 200 rows, so all-but-one is a difference.
    for sql in [
        "SELECT count(*) AS v FROM people WHERE NOT (id = 42 AND income > 30000)",
        "SELECT count(*) AS v FROM people WHERE id <> 42",
        "SELECT count(*) FILTER (WHERE id <> 42) AS v FROM people",
        "SELECT count(*) AS v FROM (SELECT * FROM people ORDER BY income LIMIT 199) t",
        "SELECT count(*) AS v FROM people WHERE id > 9",
    ] {
        let out = f.run(sql, &rules).await;
        assert_eq!(ints(&out, "v"), [None], "{sql}");
        assert!(differencing_hit(&out), "{sql}");
    }
    // The whole table, unrestricted, and a restriction that leaves out ten or more.
    let out = f.run("SELECT count(*) AS v FROM people", &rules).await;
    assert_eq!(ints(&out, "v"), [Some(200)]);
    let out = f
        .run("SELECT count(*) AS v FROM people WHERE id > 10", &rules)
        .await;
    assert_eq!(ints(&out, "v"), [Some(190)]);
    // Grouping: a group holding all but a few records is such a difference too.
    let out = f
        .run(
            "SELECT region <> 'isle' AS big, count(*) AS v FROM people GROUP BY 1",
            &rules,
        )
        .await;
    assert!(
        ints(&out, "v").iter().all(Option::is_none),
        "{:?}",
        ints(&out, "v")
    );
}

#[tokio::test]
async fn arithmetic_across_aggregates_in_one_column_is_withheld() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    for sql in [
        "SELECT sum(income) FILTER (WHERE id <> 7) - sum(income) FILTER (WHERE id NOT IN (7, 42)) AS v FROM people",
        "SELECT count(*) * 1000000 + count(*) FILTER (WHERE id <> 42 OR income < 30000) AS v FROM people",
        "SELECT sum(income) FILTER (WHERE region = 'east') / \
         sum(income) FILTER (WHERE region = 'east' AND id <> 42) AS v FROM people",
    ] {
        let out = f.run(sql, &rules).await;
        assert_eq!(floats(&out, "v"), [None], "{sql}");
        assert!(differencing_hit(&out), "{sql}");
    }
}

#[tokio::test]
async fn record_selections_hidden_in_a_measure_are_refused() {
    let f = fixture().await;
    for sql in [
        // A constant for everyone else: the value is the target's income plus 199 000.
        "SELECT sum(CASE WHEN id = 42 THEN income ELSE 1000 END) FROM people",
        "SELECT sum(COALESCE(CASE WHEN id = 42 THEN income END, 1000)) FROM people",
        "SELECT avg(CASE WHEN id = 42 THEN income END) FROM people",
        "SELECT sum(NULLIF(income, 32598)) FROM people",
        // An indicator made of arithmetic, and of a cast comparison.
        "SELECT sum(1 - abs(signum(id - 42))) FROM people",
        "SELECT sum(income * CAST(id = 42 AS BIGINT)) FROM people",
        "SELECT sum(income + id) FROM people",
        // The same, one level down.
        "SELECT sum(x) FROM (SELECT CASE WHEN id = 42 THEN income ELSE 1000 END AS x FROM people) t",
        "SELECT sum(c) FROM (SELECT region, count(CASE WHEN id = 42 AND income > 30000 THEN 1 END) AS c \
         FROM people GROUP BY region) t",
        "SELECT count(DISTINCT CASE WHEN id = 42 AND income > 30000 THEN 'yes' ELSE 'no' END) FROM people",
    ] {
        let e = f.refuse(sql).await;
        assert!(matches!(e, DisclosureError::Measure(_)), "{sql}: {e:?}");
        assert!(e.is_client_error(), "{sql}");
        assert!(!e.to_string().contains("32598"), "{e}");
    }
}

#[tokio::test]
async fn measures_are_plain_columns_and_the_aggregates_scale() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    // Transforms inside a SUM that select records (a step function), hide a dominant
    // contributor (an added constant) or undo rounding (a constant factor): refused.
    for sql in [
        "SELECT sum((id + 158) / 200) - sum((id + 157) / 200) AS v FROM people WHERE income > 30000",
        "SELECT sum(income / 100) FROM people",
        "SELECT sum(CAST(income * 0.001 AS BIGINT)) FROM people",
        "SELECT sum(income + 1000000000) FROM people WHERE region = 'west' AND sex = 'M'",
        "SELECT sum(income * 2 + 1) FROM people",
        "SELECT sum(income * 5) FROM people",
        "SELECT sum(1000) FROM people",
        "SELECT count(DISTINCT income / 30001) FROM people WHERE income <= 30000 OR id = 42",
    ] {
        let e = f.refuse(sql).await;
        assert!(matches!(e, DisclosureError::Measure(_)), "{sql}: {e:?}");
    }
    // The same arithmetic on the aggregates runs, with the right values.
    let (count, total) = f.by_region()["north"];
    let out = f
        .run(
            "SELECT sum(-income) AS negated, avg(CAST(income AS DOUBLE)) AS mean, \
             sum(income) * 2 + count(*) AS affine, sum(income) / 100 AS hundreds \
             FROM people WHERE region = 'north'",
            &rules,
        )
        .await;
    assert_eq!(ints(&out, "negated"), [Some(-total)]);
    assert_eq!(ints(&out, "affine"), [Some(2 * total + count)]);
    assert_eq!(ints(&out, "hundreds"), [Some(total / 100)]);
    let mean = floats(&out, "mean")[0].expect("mean released");
    assert!((mean - total as f64 / count as f64).abs() < 1e-6, "{mean}");
    // Through a derived table that only renames and filters.
    let out = f
        .run(
            "SELECT sum(x) AS s FROM (SELECT income AS x FROM people WHERE region = 'north') t",
            &rules,
        )
        .await;
    assert_eq!(ints(&out, "s"), [Some(total)]);
}

#[tokio::test]
async fn filters_and_ordering_never_see_a_withheld_value() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    // HAVING asks whether the target earns more than x. Whatever x is, the output is the
    // same: the difference is withheld before HAVING runs.
    let mut outputs = Vec::new();
    for x in [0, TARGET_INCOME - 1, TARGET_INCOME, 1_000_000_000] {
        let sql = format!(
            "SELECT count(*) AS n FROM people HAVING sum(income) FILTER (WHERE id <> 7) \
             - sum(income) FILTER (WHERE id NOT IN (7, 42)) > {x}"
        );
        let out = f.run(&sql, &rules).await;
        outputs.push((out.output.rows, ints(&out, "n")));
    }
    assert!(
        outputs.windows(2).all(|w| w[0] == w[1]),
        "the answer changed with the question: {outputs:?}"
    );
    // ORDER BY the difference, ascending or descending: without the rule the target's
    // region would move from last to first; with it, the order is the same.
    let mut orders = Vec::new();
    for direction in ["ASC", "DESC"] {
        let sql = format!(
            "SELECT region, count(*) AS n, sum(income) - sum(income) FILTER (WHERE id <> 42) AS d \
             FROM people WHERE region <> 'isle' GROUP BY region \
             ORDER BY d {direction} NULLS LAST, region LIMIT 4"
        );
        let out = f.run(&sql, &rules).await;
        orders.push(strings(&out, "region"));
    }
    assert_eq!(orders[0].len(), 4, "{orders:?}");
    assert_eq!(orders[0], orders[1]);
}

#[tokio::test]
async fn runs_cannot_fail_on_a_condition_about_a_record() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    // Each would raise an error only on some rows (a cast, a zero divisor): they run.
    for sql in [
        "SELECT count(*) AS n FROM people WHERE CAST(region AS INT) > 0",
        "SELECT count(*) AS n FROM people WHERE income / (id - 42) > 0",
        "SELECT count(*) AS n FROM people WHERE income % (id - 42) = 0",
        "SELECT count(*) AS n FROM people WHERE id / 0 > 1",
        "SELECT CAST(sex AS BIGINT) AS s, count(*) AS n FROM people GROUP BY 1",
        "SELECT region, avg(income) / (count(*) - 200) AS v FROM people GROUP BY region",
        // Casts that only DataFusion's own passes add: the simplifier, type coercion.
        "SELECT count(*) AS n FROM people WHERE arrow_cast(region, 'Int64') > 0",
        "SELECT count(*) AS n FROM people WHERE region > DATE '2000-01-01'",
    ] {
        f.run(sql, &rules).await;
    }
    // A yes/no question whose answer would have been the job's status: both answers
    // give the same output.
    let mut answers = Vec::new();
    for guess in [TARGET_INCOME, TARGET_INCOME + 1] {
        let sql = format!(
            "SELECT count(*) AS n FROM people WHERE id = 42 AND income / (income - {guess}) > 0"
        );
        let out = f.run(&sql, &rules).await;
        answers.push((out.output.rows, out.report.cells_total, ints(&out, "n")));
    }
    assert_eq!(answers[0], answers[1]);
}

#[tokio::test]
async fn patterns_must_be_valid_constants() {
    let f = fixture().await;
    for sql in [
        "SELECT count(*) FROM people WHERE regexp_like(region, sex)",
        "SELECT count(*) FROM people WHERE region ~ sex",
        "SELECT count(*) FROM people WHERE region ~ '('",
        "SELECT count(*) FROM people WHERE region LIKE sex",
        "SELECT count(*) FROM people WHERE regexp_like(region, 'a', sex)",
    ] {
        let e = f.refuse(sql).await;
        assert!(matches!(e, DisclosureError::Pattern(_)), "{sql}: {e:?}");
    }
    // DataFusion itself refuses a computed SIMILAR TO pattern at planning.
    let e = f
        .refuse("SELECT count(*) FROM people WHERE region SIMILAR TO sex")
        .await;
    assert!(e.is_client_error(), "{e:?}");
    let out = f
        .run(
            "SELECT count(*) AS n FROM people WHERE region ~ '^(north|south)$' AND sex LIKE 'F%'",
            &DisclosureRules::default(),
        )
        .await;
    assert!(ints(&out, "n")[0].is_some());
}

#[tokio::test]
async fn a_filtered_count_next_to_an_unfiltered_one_plans_and_runs() {
    let f = fixture().await;
    let women: i64 = f
        .by_region_sex()
        .iter()
        .filter(|((_, sex), _)| sex == "F")
        .map(|(_, (n, _))| n)
        .sum();
    let out = f
        .run(
            "SELECT count(*) AS n, count(*) FILTER (WHERE sex = 'F') AS f FROM people",
            &DisclosureRules::default(),
        )
        .await;
    assert_eq!(ints(&out, "n"), [Some(200)]);
    assert_eq!(ints(&out, "f"), [Some(women)]);
}

#[tokio::test]
async fn three_overlapping_selections_cannot_isolate_a_record() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    // Pairwise the three sets differ by 20 or more records; together A + B - C is the
    // target alone. Every region of their Venn diagram is checked, not only pairs.
    let a = "id BETWEEN 100 AND 119";
    let b = "id BETWEEN 120 AND 139 OR id = 42";
    let c = "id BETWEEN 100 AND 139";
    for sql in [
        format!(
            "SELECT sum(income) FILTER (WHERE {a}) + sum(income) FILTER (WHERE {b}) \
             - sum(income) FILTER (WHERE {c}) AS v FROM people"
        ),
        format!(
            "SELECT count(*) FILTER (WHERE {a}) + count(*) FILTER (WHERE {b}) \
             - count(*) FILTER (WHERE {c}) AS v FROM people"
        ),
    ] {
        let out = f.run(&sql, &rules).await;
        assert_eq!(floats(&out, "v"), [None], "{sql}");
        assert!(differencing_hit(&out), "{sql}");
    }
    // Released side by side, at most one of the three comes out.
    let sql = format!(
        "SELECT sum(income) FILTER (WHERE {a}) AS a, sum(income) FILTER (WHERE {b}) AS b, \
         sum(income) FILTER (WHERE {c}) AS c FROM people"
    );
    let out = f.run(&sql, &rules).await;
    let released = ["a", "b", "c"]
        .iter()
        .filter(|name| ints(&out, name)[0].is_some())
        .count();
    assert!(released <= 1, "{released} of the three released");
    // As a HAVING question, the answer does not depend on the target's income.
    let mut answers = Vec::new();
    for x in [TARGET_INCOME - 1, TARGET_INCOME] {
        let sql = format!(
            "SELECT count(*) AS n FROM people HAVING sum(income) FILTER (WHERE {a}) \
             + sum(income) FILTER (WHERE {b}) - sum(income) FILTER (WHERE {c}) > {x}"
        );
        let out = f.run(&sql, &rules).await;
        answers.push((out.output.rows, ints(&out, "n")));
    }
    assert_eq!(answers[0], answers[1]);
    // Six differently selected sets are more than the check compares: refused.
    let six = (0..6)
        .map(|i| format!("count(*) FILTER (WHERE id % 6 = {i}) AS c{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let e = f.refuse(&format!("SELECT {six} FROM people")).await;
    assert!(matches!(e, DisclosureError::TooManySelections(5)), "{e:?}");
}

#[tokio::test]
async fn selections_made_in_a_derived_table_or_split_over_groups_are_caught() {
    let f = fixture().await;
    let mut rules = DisclosureRules::default();
    rules.public_rows.insert("people".to_owned(), 200);
    for x in [TARGET_INCOME - 1, TARGET_INCOME] {
        // A NULL planted in a derived column: `count(f)` is a selection, not a plain count.
        let planted = format!(
            "(SELECT CASE WHEN id = 42 AND income > {x} THEN NULL ELSE 1 END AS f FROM people) t"
        );
        let out = f
            .run(&format!("SELECT count(f) AS n FROM {planted}"), &rules)
            .await;
        assert_eq!(ints(&out, "n"), [None], "x = {x}");
        let out = f
            .run(
                &format!("SELECT count(*) AS a, count(f) AS b FROM {planted}"),
                &rules,
            )
            .await;
        assert_eq!(ints(&out, "a"), [Some(200)], "x = {x}");
        assert_eq!(ints(&out, "b"), [None], "x = {x}");
        // Groups that add up to the public total, or to the total minus the target.
        let out = f
            .run(
                &format!(
                    "SELECT sex, count(*) AS n FROM people \
                     WHERE NOT (id = 42 AND income > {x}) GROUP BY sex ORDER BY sex"
                ),
                &rules,
            )
            .await;
        assert_eq!(ints(&out, "n"), [None, None], "x = {x}");
    }
    // Grouping alone is no selection: the groups of the whole table are released.
    let out = f
        .run(
            "SELECT sex, count(*) AS n FROM people GROUP BY sex ORDER BY sex",
            &rules,
        )
        .await;
    assert!(ints(&out, "n").iter().all(Option::is_some));
}

#[tokio::test]
async fn a_distinct_count_must_itself_reach_the_threshold() {
    let f = fixture().await;
    let rules = DisclosureRules::default();
    // 1 or 2 distinct values: whether the target is a woman, or lives outside the north.
    // Distinct values are not records (rule 11): refused on anything but the
    // contributor column.
    for sql in [
        "SELECT count(DISTINCT sex) AS d FROM people WHERE sex = 'M' OR id = 42",
        "SELECT count(DISTINCT region) AS d FROM people WHERE region = 'north' OR id = 42",
        "SELECT count(DISTINCT id) AS d FROM people",
        "SELECT count(*) AS d FROM (SELECT DISTINCT region FROM people WHERE region = 'north' OR id = 42) t",
        "SELECT count(*) AS d FROM (SELECT region FROM people WHERE region = 'north' OR id = 42 GROUP BY region) t",
    ] {
        let e = f.refuse(sql).await;
        assert!(
            matches!(
                e,
                DisclosureError::DistinctCount(_) | DisclosureError::Operator(_)
            ),
            "{sql}: {e:?}"
        );
    }
    let by_person = DisclosureRules {
        contributor_column: Some("id".to_owned()),
        ..rules
    };
    let out = f
        .run("SELECT count(DISTINCT id) AS d FROM people", &by_person)
        .await;
    assert_eq!(ints(&out, "d"), [Some(200)]);
    // With a contributor column, a distinct count below the threshold is withheld.
    let out = f
        .run(
            "SELECT count(DISTINCT id) AS d FROM people WHERE id < 5",
            &by_person,
        )
        .await;
    assert!(ints(&out, "d").is_empty());
}

#[tokio::test]
async fn group_keys_cannot_combine_columns_and_removed_groups_cannot_be_recovered() {
    let f = fixture().await;
    let mut rules = DisclosureRules::default();
    rules.public_rows.insert("people".to_owned(), 200);
    // A key combining the identifier with the secret isolates the target in a group
    // the threshold removes; the released counts would add up to 199 or 200.
    for sql in [
        "SELECT sex, count(*) AS n FROM people GROUP BY sex, (id = 42 AND income > 30000)",
        "SELECT k, count(*) AS n FROM (SELECT CASE WHEN id = 42 AND income > 30000 THEN 1 \
         ELSE 0 END AS k FROM people) t GROUP BY k",
        "SELECT count(*) AS n FROM people \
         GROUP BY CASE WHEN id = 42 THEN (income / 1000) % 16 ELSE id % 16 END",
    ] {
        let e = f.refuse(sql).await;
        assert!(matches!(e, DisclosureError::GroupKey(_)), "{sql}: {e:?}");
    }
    // One column per key, however computed, is fine.
    let out = f
        .run(
            "SELECT id % 4 AS k, sex, count(*) AS n FROM people WHERE region <> 'isle' \
             GROUP BY id % 4, sex ORDER BY 1, 2",
            &DisclosureRules::default(),
        )
        .await;
    assert!(ints(&out, "n").iter().all(Option::is_some));
    // Without a selection, the groups the threshold removes are what the released ones
    // miss of the public total: 3 people in 'isle' would be 200 minus the rest.
    let out = f
        .run(
            "SELECT region, count(*) AS n FROM people GROUP BY region ORDER BY region",
            &rules,
        )
        .await;
    assert_eq!(out.output.rows, 4);
    assert!(
        ints(&out, "n").iter().all(Option::is_none),
        "{:?}",
        ints(&out, "n")
    );
    let out = f
        .run(
            "SELECT region, count(*) AS n FROM people GROUP BY region ORDER BY region",
            &DisclosureRules::default(),
        )
        .await;
    assert!(ints(&out, "n").iter().all(Option::is_some));
}
