//! Differencing across outputs: the attacker runs several queries on the same version
//! and subtracts. Each test keeps the record sets of what earlier runs produced (as the
//! sandbox does for an organisation and version) and asserts that the value the
//! subtraction needs is withheld, or that the outputs are the same whichever way the
//! answer about person 42 goes.

use pdx_algorithms::disclosure::{
    CheckedOutput, DisclosureRules, PriorsInMemory, Rule, check_and_run_after,
};

use crate::disclosure::{Fixture, fixture, floats, ints, strings};

/// Person 42 (east, F): income 32 598.
const TARGET_INCOME: i64 = 20_000 + (42 * 7_919) % 40_000;

/// One attacker's sequence of runs on one version.
struct Attacker {
    f: Fixture,
    priors: PriorsInMemory,
    rules: DisclosureRules,
}

impl Attacker {
    async fn new() -> Self {
        Self {
            f: fixture().await,
            priors: PriorsInMemory::default(),
            rules: DisclosureRules::default(),
        }
    }

    /// Runs `sql` against everything run before, then remembers what it released.
    async fn run(&mut self, sql: &str) -> CheckedOutput {
        let out = check_and_run_after(&self.f.sandbox, sql, &self.rules, &self.priors)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let released = out.record_sets.as_ref().expect("record sets are tracked");
        assert_eq!(released.table, "people");
        self.priors.add_released(released);
        out
    }
}

/// True when some value was withheld for being too close to an earlier output.
fn across_hit(out: &CheckedOutput) -> bool {
    out.report
        .hits
        .iter()
        .any(|h| h.rule == Rule::Differencing && h.detail.contains("already received"))
}

#[tokio::test]
async fn a_second_run_one_record_apart_is_withheld_in_either_order() {
    let pairs = [
        // The complement of a tiny condition, as a sum and as a count.
        (
            "SELECT sum(income) AS v FROM people WHERE region = 'east'",
            "SELECT sum(income) AS v FROM people WHERE region = 'east' AND id <> 42",
        ),
        (
            "SELECT count(*) AS v FROM people WHERE region <> 'north'",
            "SELECT count(*) AS v FROM people WHERE region <> 'north' AND NOT (id = 42)",
        ),
        // The smaller set first.
        (
            "SELECT avg(income) AS v FROM people WHERE region = 'east' AND id <> 42",
            "SELECT avg(income) AS v FROM people WHERE region = 'east'",
        ),
        // Prefix buckets of an identifier: the bucket, then the bucket without one.
        (
            "SELECT sum(income) AS v FROM people WHERE CAST(id AS VARCHAR) LIKE '4%'",
            "SELECT sum(income) AS v FROM people WHERE CAST(id AS VARCHAR) LIKE '4%' AND id <> 42",
        ),
        // Nine records apart (threshold 10) is still too close.
        (
            "SELECT sum(income) AS v FROM people WHERE id > 100",
            "SELECT sum(income) AS v FROM people WHERE id > 109",
        ),
        // A FILTER in one run, a WHERE in the other.
        (
            "SELECT sum(income) FILTER (WHERE region = 'east') AS v FROM people",
            "SELECT sum(income) AS v FROM people WHERE region = 'east' AND id <> 42",
        ),
    ];
    for (first, second) in pairs {
        let mut a = Attacker::new().await;
        let one = a.run(first).await;
        assert!(
            floats(&one, "v")[0].is_some(),
            "{first}: {:?}",
            one.report.hits
        );
        let two = a.run(second).await;
        assert_eq!(floats(&two, "v"), [None], "{second} after {first}");
        assert!(across_hit(&two), "{second}: {:?}", two.report.hits);
        assert!(
            !two.report
                .passed
                .contains(&"differencing_across_outputs".to_owned())
        );
    }
}

#[tokio::test]
async fn runs_far_enough_apart_or_repeated_are_released() {
    let mut a = Attacker::new().await;
    let east = "SELECT count(*) AS v FROM people WHERE region = 'east'";
    let first = a.run(east).await;
    assert!(
        first
            .report
            .passed
            .contains(&"differencing_across_outputs".to_owned())
    );
    // The same query again reads the same records, selected the same way.
    let again = a.run(east).await;
    assert_eq!(ints(&again, "v"), ints(&first, "v"));
    // Ten or more records apart: released.
    let part = a
        .run("SELECT count(*) AS v FROM people WHERE region = 'east' AND id > 100")
        .await;
    assert!(ints(&part, "v")[0].is_some(), "{:?}", part.report.hits);
    // Unrelated selections.
    let west = a
        .run("SELECT region, sum(income) AS s FROM people WHERE region IN ('south', 'north') GROUP BY region")
        .await;
    assert_eq!(floats(&west, "s").iter().flatten().count(), 2);
    // The same records selected differently are withheld: whether the condition
    // changed them would otherwise be the answer to it.
    let same = a
        .run("SELECT count(*) AS v FROM people WHERE region = 'east' AND income > 0")
        .await;
    assert_eq!(ints(&same, "v"), [None]);
    assert!(across_hit(&same));
}

#[tokio::test]
async fn yes_no_questions_across_runs_give_the_same_output() {
    // Whether person 42 earns more than x: the second run's records equal the first's
    // when the answer is no, and lack one record when it is yes.
    let mut outcomes = Vec::new();
    for x in [TARGET_INCOME - 1, TARGET_INCOME] {
        let mut a = Attacker::new().await;
        let first = a
            .run("SELECT count(*) AS n, sum(income) AS s FROM people WHERE region = 'east'")
            .await;
        let second = a
            .run(&format!(
                "SELECT count(*) AS n, sum(income) AS s FROM people \
                 WHERE region = 'east' AND NOT (id = 42 AND income > {x})"
            ))
            .await;
        outcomes.push((
            ints(&first, "n"),
            floats(&first, "s"),
            ints(&second, "n"),
            floats(&second, "s"),
        ));
    }
    assert_eq!(outcomes[0], outcomes[1], "the answer came out");
    assert_eq!(outcomes[0].2, [None]);
}

#[tokio::test]
async fn a_column_total_one_record_from_an_earlier_value_is_withheld() {
    let mut a = Attacker::new().await;
    let both = a
        .run("SELECT count(*) AS n, sum(income) AS s FROM people WHERE region IN ('east', 'north')")
        .await;
    assert!(ints(&both, "n")[0].is_some());
    // Each group alone is far from the earlier set, but the groups add up to it
    // minus person 42.
    let split = a
        .run(
            "SELECT region, count(*) AS n, sum(income) AS s FROM people \
             WHERE region IN ('east', 'north') AND id <> 42 GROUP BY region ORDER BY region",
        )
        .await;
    assert_eq!(ints(&split, "n"), [None, None], "{:?}", split.report.hits);
    assert_eq!(floats(&split, "s"), [None, None]);
    assert!(
        split
            .report
            .hits
            .iter()
            .any(|h| h.detail.contains("column total")),
        "{:?}",
        split.report.hits
    );
    // The groups themselves (keys) still come out: they say nothing about person 42.
    assert_eq!(split.output.rows, 2);
}

#[tokio::test]
async fn a_filter_never_sees_a_value_withheld_across_outputs() {
    let mut a = Attacker::new().await;
    a.run("SELECT sum(income) AS s FROM people WHERE region = 'east'")
        .await;
    // HAVING on the would-be difference: the value is NULL before HAVING runs, so the
    // row is dropped (had HAVING seen the value, the row would be there).
    let probe = a
        .run(
            "SELECT sum(income) AS s FROM people WHERE region = 'east' AND id <> 42 \
             HAVING sum(income) > 0",
        )
        .await;
    assert_eq!(probe.output.rows, 0);
    // ORDER BY the withheld value against a released one: both groups come back, the
    // withheld value as NULL, so the order says nothing about it.
    let ordered = a
        .run(
            "SELECT region, sum(income) AS s FROM people \
             WHERE region IN ('east', 'south') AND id <> 42 GROUP BY region ORDER BY s",
        )
        .await;
    let s = floats(&ordered, "s");
    assert_eq!(s.len(), 2);
    assert_eq!(s.iter().filter(|v| v.is_none()).count(), 1, "{s:?}");
}

#[tokio::test]
async fn triples_and_complements_are_caught_across_models() {
    // A and B are twenty records apart and nested; C is their difference plus person
    // 42, so C − (A − B) would be 42's income. No pair is one record apart.
    let mut a = Attacker::new().await;
    let wide = a
        .run("SELECT sum(income) AS v FROM people WHERE id BETWEEN 30 AND 69")
        .await;
    let low = a
        .run("SELECT sum(income) AS v FROM people WHERE id BETWEEN 30 AND 49")
        .await;
    assert!(floats(&wide, "v")[0].is_some() && floats(&low, "v")[0].is_some());
    let c = a
        .run("SELECT sum(income) AS v FROM people WHERE id BETWEEN 50 AND 69 OR id = 42")
        .await;
    assert_eq!(floats(&c, "v"), [None], "{:?}", c.report.hits);
    assert!(across_hit(&c));
    // A pair one record apart, through different models: caught as a pair.
    let d = a
        .run("SELECT sum(income) AS v FROM people WHERE id BETWEEN 30 AND 69 AND id <> 42")
        .await;
    assert_eq!(floats(&d, "v"), [None]);

    // Counts over complements: the table's row count is public, so after the count of
    // one region, the count of everyone else but person 42 is a difference.
    let mut b = Attacker::new().await;
    b.rules.public_rows.insert("people".to_owned(), 200);
    let east = b
        .run("SELECT count(*) AS n FROM people WHERE region = 'east'")
        .await;
    assert!(ints(&east, "n")[0].is_some());
    let rest = b
        .run("SELECT count(*) AS n FROM people WHERE region <> 'east' AND id <> 43")
        .await;
    assert_eq!(ints(&rest, "n"), [None], "{:?}", rest.report.hits);
    // The plain complement is the same records as the difference: withheld too (it
    // adds nothing to the row count, and whether a condition makes it so is the
    // question a crafted query would ask).
    let plain = b
        .run("SELECT count(*) AS n FROM people WHERE region <> 'east'")
        .await;
    assert_eq!(ints(&plain, "n"), [None]);
    // Unrelated selections still come out.
    let other = b
        .run("SELECT count(*) AS n FROM people WHERE region = 'north'")
        .await;
    assert!(ints(&other, "n")[0].is_some());
}

#[tokio::test]
async fn nested_values_of_one_output_count_as_a_difference_later() {
    // One run releases A (ids 30–69) and B (ids 30–49) side by side; the next asks for
    // A − B plus person 42.
    let mut a = Attacker::new().await;
    let both = a
        .run(
            "SELECT sum(income) AS a, sum(income) FILTER (WHERE id BETWEEN 30 AND 49) AS b \
             FROM people WHERE id BETWEEN 30 AND 69",
        )
        .await;
    assert!(floats(&both, "a")[0].is_some() && floats(&both, "b")[0].is_some());
    let c = a
        .run("SELECT sum(income) AS v FROM people WHERE id BETWEEN 50 AND 69 OR id = 42")
        .await;
    assert_eq!(floats(&c, "v"), [None], "{:?}", c.report.hits);
}

#[tokio::test]
async fn other_breakdowns_and_drill_downs_after_a_full_breakdown_are_released() {
    let mut a = Attacker::new().await;
    // The small region is left out: its three people would otherwise be the difference
    // between the region total and any other breakdown's total (and are: see below).
    let regions = a
        .run(
            "SELECT region, count(*) AS n, sum(income) AS s FROM people \
             WHERE region <> 'isle' GROUP BY region",
        )
        .await;
    assert_eq!(ints(&regions, "n").iter().flatten().count(), 4);
    // Every sex cell lies inside the earlier column total and overlaps every region:
    // nothing adds up to a small difference.
    let sexes = a
        .run("SELECT sex, count(*) AS n FROM people WHERE region <> 'isle' GROUP BY sex")
        .await;
    let n = ints(&sexes, "n");
    assert_eq!(n.iter().flatten().count(), 2, "{:?}", sexes.report.hits);
    let both = a
        .run(
            "SELECT region, sex, count(*) AS n FROM people WHERE region <> 'isle' \
             GROUP BY region, sex",
        )
        .await;
    assert_eq!(
        ints(&both, "n").iter().flatten().count(),
        8,
        "{:?}",
        both.report.hits
    );
    // The same records as an earlier cell, selected differently: withheld.
    let part = a
        .run("SELECT count(*) AS n FROM people WHERE region = 'north' AND sex = 'F'")
        .await;
    assert_eq!(ints(&part, "n"), [None]);
    // Everyone by sex: the total is the region total plus the three islanders.
    let everyone = a
        .run("SELECT sex, count(*) AS n FROM people GROUP BY sex")
        .await;
    assert_eq!(
        ints(&everyone, "n"),
        [None, None],
        "{:?}",
        everyone.report.hits
    );
}

#[tokio::test]
async fn a_breakdown_cannot_recompute_a_value_withheld_or_an_earlier_total_minus_one() {
    // An earlier total over two regions without person 42, then the breakdown: east +
    // north − the total would be 42's income.
    let mut a = Attacker::new().await;
    let total = a
        .run("SELECT sum(income) AS s FROM people WHERE region IN ('east', 'north') AND id <> 42")
        .await;
    assert!(floats(&total, "s")[0].is_some());
    let split = a
        .run("SELECT region, sum(income) AS s FROM people WHERE region <> 'isle' GROUP BY region")
        .await;
    let s = floats(&split, "s");
    let regions = strings(&split, "region");
    let of = |name: &str| {
        regions
            .iter()
            .zip(&s)
            .find(|(r, _)| r.as_deref() == Some(name))
            .and_then(|(_, v)| *v)
    };
    assert!(
        of("east").is_none() || of("north").is_none(),
        "{regions:?} {s:?} {:?}",
        split.report.hits
    );
}

#[tokio::test]
async fn having_never_sees_a_column_withheld_for_its_total() {
    let mut a = Attacker::new().await;
    a.run("SELECT sum(income) AS s FROM people WHERE region IN ('east', 'north')")
        .await;
    // The groups add up to the earlier total minus person 42, so the column is withheld;
    // HAVING runs again over the withheld values and keeps no group (had it seen the
    // sums, both groups would be there).
    let probe = a
        .run(
            "SELECT region, sum(income) AS s FROM people \
             WHERE region IN ('east', 'north') AND id <> 42 GROUP BY region HAVING sum(income) > 0",
        )
        .await;
    assert_eq!(probe.output.rows, 0, "{:?}", probe.report.hits);
}
