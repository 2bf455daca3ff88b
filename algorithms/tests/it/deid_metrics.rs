//! Information-loss metrics of the lattice search (issue #24 §1): ARX's published
//! non-uniform-entropy optima on Adult, and every metric on a six-record table whose
//! values are worked out by hand below (not taken from the code).

use std::collections::BTreeMap;

use pdx_algorithms::deid::generalise::Ladder;
use pdx_algorithms::deid::lattice::{FrequencyTable, LossMetric, Search, SearchResult};
use pdx_algorithms::deid::schema::{ColumnRole, ColumnSpec, ColumnType, DeidRule, Hierarchy};
use polars::prelude::*;

use crate::deid_common::{ADULT_COLUMNS, adult_frame, adult_hierarchy, adult_rows};

fn qi(name: &str, column_type: ColumnType) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        column_type,
        role: ColumnRole::QuasiIdentifier,
        rule: DeidRule::Hierarchy { name: name.into() },
        domain: None,
        nullable: false,
    }
}

/// Adult with all nine columns (file order) as hierarchy-generalised QIs, as in ARX's
/// published benchmark: sex, age, race, marital-status, education, native-country,
/// workclass, occupation, salary-class.
fn adult_ladders() -> (Vec<Ladder>, usize) {
    let rows = adult_rows();
    let frame = adult_frame(&rows);
    let hierarchies: BTreeMap<String, Hierarchy> = ADULT_COLUMNS
        .iter()
        .map(|c| ((*c).to_owned(), adult_hierarchy(c)))
        .collect();
    let ladders = ADULT_COLUMNS
        .iter()
        .map(|c| {
            let t = if *c == "age" {
                ColumnType::Integer
            } else {
                ColumnType::String
            };
            Ladder::build(frame.column(c).unwrap(), &qi(c, t), &hierarchies).unwrap()
        })
        .collect();
    (ladders, rows.len())
}

fn run_adult(
    ladders: &[Ladder],
    table: &FrequencyTable,
    limit: u64,
    metric: LossMetric,
) -> SearchResult {
    Search::new(ladders, table, 5, None, limit)
        .with_metric(metric)
        .run()
        .unwrap()
}

fn two_decimals(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// ARX's published Adult results, k = 5, monotonic non-uniform entropy.
#[test]
fn adult_nue_matches_arx() {
    let (ladders, n) = adult_ladders();
    assert_eq!(n, 30_162);
    let heights: Vec<usize> = ladders.iter().map(Ladder::height).collect();
    assert_eq!(heights, [2, 5, 2, 3, 4, 3, 3, 3, 2]);
    let (table, _) = FrequencyTable::build(&ladders, &[], n).unwrap();

    // 0 % suppression: 407,289.54 at (1,2,1,1,3,2,2,1,1), nothing suppressed.
    let search =
        Search::new(&ladders, &table, 5, None, 0).with_metric(LossMetric::NonUniformEntropy);
    let r = search.run().unwrap();
    assert_eq!(r.node, [1, 2, 1, 1, 3, 2, 2, 1, 1], "{:?}", r.eval);
    assert_eq!(r.eval.suppressed, 0);
    assert_eq!(two_decimals(r.eval.value), 407_289.54, "{}", r.eval.value);
    let il = search.information_loss(&r.node, &search.classify(&r.node));
    assert_eq!(il.optimised, LossMetric::NonUniformEntropy);
    assert_eq!(two_decimals(il.optimised_value), 407_289.54);
    assert_eq!(il.non_uniform_entropy, il.optimised_value);
    assert_eq!(r.stats.nodes, 12_960);
    assert_eq!(
        r.stats.evaluated + r.stats.tagged_by_inference,
        r.stats.nodes
    );
    eprintln!("ADULT NUE k=5 0 %: {:?}", r.stats);

    // 4 % suppression: limit floor(0.04 · 30,162) = 1,206 records; 255,559.85 at
    // (1,0,1,1,3,2,2,0,1) with 906 records suppressed.
    let limit = (0.04 * n as f64).floor() as u64;
    assert_eq!(limit, 1_206);
    let r = run_adult(&ladders, &table, limit, LossMetric::NonUniformEntropy);
    assert_eq!(r.node, [1, 0, 1, 1, 3, 2, 2, 0, 1], "{:?}", r.eval);
    assert_eq!(r.eval.suppressed, 906);
    assert_eq!(two_decimals(r.eval.value), 255_559.85, "{}", r.eval.value);
    // NUE is monotone: the optimum is a minimal node.
    assert!(r.minimal.contains(&r.node));
}

/// The other metrics on the same Adult problem at 4 %, against an independent
/// brute force over all 12,960 nodes (Python, stdlib only). DM's optimum lies above the
/// minimal boundary (the best minimal node has DM 22,034,575).
#[test]
fn adult_other_metrics_at_four_percent() {
    let (ladders, n) = adult_ladders();
    let (table, _) = FrequencyTable::build(&ladders, &[], n).unwrap();
    let limit = 1_206;

    let dm = run_adult(&ladders, &table, limit, LossMetric::Discernibility);
    assert_eq!(dm.node, [0, 0, 1, 2, 3, 2, 2, 1, 1], "{:?}", dm.eval);
    assert_eq!(dm.eval.suppressed, 105);
    assert_eq!(dm.eval.value, 7_220_555.0);
    assert!(!dm.minimal.contains(&dm.node));

    // AECS = 30,162 / (1,046 released classes + 1 for the suppressed records).
    let aecs = run_adult(&ladders, &table, limit, LossMetric::AverageClassSize);
    assert_eq!(aecs.node, [1, 0, 1, 1, 3, 2, 2, 0, 1], "{:?}", aecs.eval);
    assert_eq!(aecs.eval.suppressed, 906);
    assert_eq!(aecs.eval.value, 30_162.0 / 1_047.0);

    // LM (the default) on this nine-QI problem: the brute force's optimum, which is
    // also the best minimal node.
    let lm = Search::new(&ladders, &table, 5, None, limit).run().unwrap();
    assert_eq!(lm.node, [0, 3, 0, 1, 1, 1, 1, 2, 0], "{:?}", lm.eval);
    assert_eq!(lm.eval.suppressed, 1_178);
    assert_eq!(lm.eval.value, lm.eval.loss);
    let explicit = run_adult(&ladders, &table, limit, LossMetric::Loss);
    assert_eq!(explicit.node, lm.node);
    assert_eq!(explicit.stats, lm.stats);
}

/// The six-record table, with k = 2:
///
/// | record | g | s |
/// |--------|---|---|
/// | 1      | a | M |
/// | 2      | a | M |
/// | 3      | b | M |
/// | 4      | b | F |
/// | 5      | c | F |
/// | 6      | c | F |
///
/// Hierarchies: g: a → x → *, b → x → *, c → y → *; s: M → *, F → *.
fn tiny() -> Vec<Ladder> {
    // One `;`-separated line per original value, level 0 first (ARX's layout).
    fn hierarchy(lines: &[&str]) -> Hierarchy {
        Hierarchy {
            rows: lines
                .iter()
                .map(|line| line.split(';').map(str::to_owned).collect())
                .collect(),
        }
    }
    let mut h = BTreeMap::new();
    h.insert("g".to_owned(), hierarchy(&["a;x;*", "b;x;*", "c;y;*"]));
    h.insert("s".to_owned(), hierarchy(&["M;*", "F;*"]));
    let g = Column::new("g".into(), ["a", "a", "b", "b", "c", "c"]);
    let s = Column::new("s".into(), ["M", "M", "M", "F", "F", "F"]);
    vec![
        Ladder::build(&g, &qi("g", ColumnType::String), &h).unwrap(),
        Ladder::build(&s, &qi("s", ColumnType::String), &h).unwrap(),
    ]
}

/// Per node (g level, s level): suppressed, LM, NUE, DM, AECS, worked out by hand
/// (n = 6 records, q = 2 QIs, log2 3 = 1.5849625…):
///
/// - (0,0): classes aM 2, bM 1, bF 1, cF 2; records 3 and 4 suppressed.
///   LM = 4 suppressed cells / 12 = 1/3. NUE = 0. DM = 4 + 6 + 6 + 4 = 20.
///   AECS = 6 / (2 released + 1) = 2.
/// - (1,0): xM 3, xF 1, yF 2; record 4 suppressed. LM: x covers 2 of 3 values,
///   (2−1)/(3−1) = 1/2, on records 1–3 = 1.5, plus record 4's 2 cells at 1 = 3.5 / 12 =
///   7/24. NUE: a and b records −log2(2/4) = 1 each (4), c records −log2(2/2) = 0: 4.
///   DM = 9 + 6 + 4 = 19. AECS = 6 / (2 + 1) = 2.
/// - (0,1): a* 2, b* 2, c* 2; none suppressed. LM = 6 cells at 1 / 12 = 1/2.
///   NUE: each record −log2(3/6) = 1: 6. DM = 12. AECS = 6 / 3 = 2.
/// - (2,0): *M 3, *F 3. LM = 1/2. NUE: each record −log2(2/6) = log2 3: 6·log2 3 =
///   9.5097750…. DM = 18. AECS = 3.
/// - (1,1): x* 4, y* 2. LM = (4·1/2 + 6) / 12 = 2/3. NUE = 4 + 6 = 10. DM = 20. AECS = 3.
/// - (2,1): ** 6. LM = 1. NUE = 6·log2 3 + 6 = 15.5097750…. DM = 36. AECS = 6.
#[test]
fn tiny_table_values_by_hand() {
    let ladders = tiny();
    let (table, _) = FrequencyTable::build(&ladders, &[], 6).unwrap();
    let l3 = 3f64.log2();
    // node, suppressed, LM, NUE, DM, AECS
    let expected: [([u8; 2], u64, f64, f64, f64, f64); 6] = [
        ([0, 0], 2, 1.0 / 3.0, 0.0, 20.0, 2.0),
        ([1, 0], 1, 7.0 / 24.0, 4.0, 19.0, 2.0),
        ([0, 1], 0, 0.5, 6.0, 12.0, 2.0),
        ([2, 0], 0, 0.5, 6.0 * l3, 18.0, 3.0),
        ([1, 1], 0, 2.0 / 3.0, 10.0, 20.0, 3.0),
        ([2, 1], 0, 1.0, 6.0 * l3 + 6.0, 36.0, 6.0),
    ];
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    let search = Search::new(&ladders, &table, 2, None, 6);
    for (node, suppressed, lm, nue, dm, aecs) in expected {
        let cls = search.classify(&node);
        assert_eq!(cls.suppressed, suppressed, "{node:?}");
        let il = search.information_loss(&node, &cls);
        assert!(close(il.value, lm), "{node:?} LM {}", il.value);
        assert!(
            close(il.non_uniform_entropy, nue),
            "{node:?} NUE {}",
            il.non_uniform_entropy
        );
        assert!(
            close(il.discernibility, dm),
            "{node:?} DM {}",
            il.discernibility
        );
        assert!(
            close(il.average_class_size, aecs),
            "{node:?} AECS {}",
            il.average_class_size
        );
        for (metric, want) in [
            (LossMetric::Loss, lm),
            (LossMetric::NonUniformEntropy, nue),
            (LossMetric::Discernibility, dm),
            (LossMetric::AverageClassSize, aecs),
        ] {
            let s = Search::new(&ladders, &table, 2, None, 6).with_metric(metric);
            let e = s.evaluate(&node);
            assert!(close(e.value, want), "{node:?} {metric:?} {}", e.value);
            assert!(e.bound <= e.value + 1e-9, "{node:?} {metric:?}");
        }
    }
}

/// Which node each metric picks, from the hand values above.
///
/// - limit 0: satisfying (0,1), (2,0), (1,1), (2,1); minimal (0,1), (2,0). Every metric
///   prefers (0,1): LM ties at 1/2 and the lower node wins; NUE 6 < 9.5; DM 12 < 18;
///   AECS 2 < 3.
/// - limit 1: (1,0) satisfies too; minimal (1,0), (0,1). LM 7/24 and NUE 4 pick
///   (1,0); DM looks at every satisfying node and picks (0,1) with 12; AECS ties at 2
///   between (1,0) and (0,1), and the one suppressing fewer records, (0,1), wins.
/// - limit 2: (0,0) satisfies and is the only minimal node. LM and NUE pick it (LM
///   chooses among minimal nodes, as before, although (1,0) has the lower 7/24); DM
///   picks (0,1) with 12 < 20, above the boundary; AECS ties at 2 among (0,0), (1,0),
///   (0,1) and picks (0,1), which suppresses nothing.
#[test]
fn tiny_table_choices_by_hand() {
    let ladders = tiny();
    let (table, _) = FrequencyTable::build(&ladders, &[], 6).unwrap();
    let cases: [(u64, [[u8; 2]; 4]); 3] = [
        (0, [[0, 1], [0, 1], [0, 1], [0, 1]]),
        (1, [[1, 0], [1, 0], [0, 1], [0, 1]]),
        (2, [[0, 0], [0, 0], [0, 1], [0, 1]]),
    ];
    for (limit, picks) in cases {
        for (metric, pick) in LossMetric::ALL.into_iter().zip(picks) {
            let r = Search::new(&ladders, &table, 2, None, limit)
                .with_metric(metric)
                .run()
                .unwrap();
            assert_eq!(r.node, pick, "limit {limit}, {metric:?}");
        }
    }
    // The default is LM.
    let r = Search::new(&ladders, &table, 2, None, 2).run().unwrap();
    assert_eq!(r.node, [0, 0]);
    assert!((r.eval.value - 1.0 / 3.0).abs() < 1e-12);
}

/// A provider selects the metric in the dataset's schema (`"privacy": {"metric": "nue"}`);
/// the whole pipeline then releases ARX's NUE optimum and reports what it optimised.
#[test]
fn the_dataset_schema_selects_nue_and_the_pipeline_reaches_arx_optimum() {
    use pdx_algorithms::deid::pipeline::deidentify;
    use pdx_algorithms::deid::schema::DatasetSchema;

    let rows = adult_rows();
    let frame = adult_frame(&rows);
    let mut schema = crate::deid_common::adult_schema(5, None, 0.0);
    for column in &mut schema.columns {
        if column.name == "salary-class" {
            column.role = ColumnRole::QuasiIdentifier;
            column.rule = DeidRule::Hierarchy {
                name: column.name.clone(),
            };
        }
    }
    schema
        .hierarchies
        .insert("salary-class".into(), adult_hierarchy("salary-class"));
    // The choice travels in the schema's JSON, as a provider registers it.
    let mut json = serde_json::to_value(&schema).unwrap();
    json["privacy"]["metric"] = serde_json::json!("nue");
    let schema: DatasetSchema = serde_json::from_value(json).unwrap();
    assert_eq!(schema.privacy.metric, LossMetric::NonUniformEntropy);

    let out = deidentify(frame, &schema, &[7; 32]).unwrap();
    let levels: Vec<u8> = ADULT_COLUMNS
        .iter()
        .map(|c| out.report.levels[*c])
        .collect();
    assert_eq!(levels, [1, 2, 1, 1, 3, 2, 2, 1, 1]);
    let loss = &out.report.information_loss;
    assert_eq!(loss.optimised, LossMetric::NonUniformEntropy);
    assert_eq!(format!("{:.2}", loss.optimised_value), "407289.54");
    assert_eq!(out.report.suppressed, 0);
    // A schema without the field keeps LM.
    let default: DatasetSchema = serde_json::from_value({
        let mut json = serde_json::to_value(&schema).unwrap();
        json["privacy"].as_object_mut().unwrap().remove("metric");
        json
    })
    .unwrap();
    assert_eq!(default.privacy.metric, LossMetric::Loss);
}
