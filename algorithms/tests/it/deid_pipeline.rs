//! Pipeline behaviour beyond Adult: error messages that never quote data, empty
//! frames, nulls, binning, date truncation, top/bottom coding, drops.

use std::collections::BTreeMap;

use pdx_algorithms::deid::pipeline::{DeidError, deidentify};
use pdx_algorithms::deid::schema::{
    ColumnRole, ColumnSpec, ColumnType, DatasetSchema, DateUnit, DeidRule, Hierarchy, PrivacyModel,
};
use polars::prelude::*;

use crate::deid_common::{class_sizes, texts};

const SECRET_VALUE: &str = "Zhang-San-13812345678";

fn spec(name: &str, column_type: ColumnType, role: ColumnRole, rule: DeidRule) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        column_type,
        role,
        rule,
        domain: None,
        nullable: true,
    }
}

fn schema(
    columns: Vec<ColumnSpec>,
    hierarchies: BTreeMap<String, Hierarchy>,
    k: u32,
) -> DatasetSchema {
    DatasetSchema {
        columns,
        hierarchies,
        privacy: PrivacyModel {
            k,
            l: None,
            max_suppression: 0.0,
            metric: Default::default(),
        },
    }
}

fn city_hierarchy() -> BTreeMap<String, Hierarchy> {
    let rows = [
        ["Tianhe", "Guangzhou", "*"],
        ["Yuexiu", "Guangzhou", "*"],
        ["Futian", "Shenzhen", "*"],
    ];
    let rows = rows
        .iter()
        .map(|r| r.iter().map(|s| (*s).to_owned()).collect())
        .collect();
    BTreeMap::from([("city".to_owned(), Hierarchy { rows })])
}

fn assert_no_value(err: &DeidError) {
    let msg = err.to_string();
    assert!(
        !msg.contains(SECRET_VALUE) && !msg.contains("13812345678"),
        "message leaks a value: {msg}"
    );
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        assert!(
            !s.to_string().contains(SECRET_VALUE),
            "source leaks a value: {s}"
        );
        source = s.source();
    }
}

#[test]
fn errors_never_quote_cell_values() {
    // A value outside the hierarchy.
    let frame = DataFrame::new(vec![Column::new(
        "city".into(),
        ["Tianhe", SECRET_VALUE, "Futian"],
    )])
    .unwrap();
    let s = schema(
        vec![spec(
            "city",
            ColumnType::String,
            ColumnRole::QuasiIdentifier,
            DeidRule::Hierarchy {
                name: "city".into(),
            },
        )],
        city_hierarchy(),
        1,
    );
    let err = deidentify(frame, &s, &[0; 32]).unwrap_err();
    assert_no_value(&err);
    assert!(
        err.to_string().contains("city") && err.to_string().contains("record 2"),
        "{err}"
    );

    // A text column where an integer is declared.
    let frame = DataFrame::new(vec![Column::new("age".into(), [SECRET_VALUE])]).unwrap();
    let s = schema(
        vec![spec(
            "age",
            ColumnType::Integer,
            ColumnRole::QuasiIdentifier,
            DeidRule::Bin {
                width: 5.0,
                levels: 2,
            },
        )],
        BTreeMap::new(),
        1,
    );
    let err = deidentify(frame, &s, &[0; 32]).unwrap_err();
    assert_no_value(&err);
    assert!(matches!(err, DeidError::WrongType { .. }), "{err}");

    // A NaN to bin.
    let frame = DataFrame::new(vec![Column::new("x".into(), [1.0, f64::NAN])]).unwrap();
    let s = schema(
        vec![spec(
            "x",
            ColumnType::Float,
            ColumnRole::QuasiIdentifier,
            DeidRule::Bin {
                width: 1.0,
                levels: 1,
            },
        )],
        BTreeMap::new(),
        1,
    );
    let err = deidentify(frame, &s, &[0; 32]).unwrap_err();
    assert!(err.to_string().contains("record 2"), "{err}");

    // k larger than the table: no solution, and the message says why without data.
    let frame = DataFrame::new(vec![Column::new(
        "city".into(),
        ["Tianhe", "Yuexiu", "Futian"],
    )])
    .unwrap();
    let s = schema(
        vec![spec(
            "city",
            ColumnType::String,
            ColumnRole::QuasiIdentifier,
            DeidRule::Hierarchy {
                name: "city".into(),
            },
        )],
        city_hierarchy(),
        5,
    );
    let err = deidentify(frame, &s, &[0; 32]).unwrap_err();
    assert!(err.to_string().contains("k=5"), "{err}");
    assert!(!err.to_string().contains("Tianhe"), "{err}");

    // Missing column and an invalid schema.
    let frame = DataFrame::new(vec![Column::new("other".into(), [SECRET_VALUE])]).unwrap();
    let s = schema(
        vec![spec(
            "city",
            ColumnType::String,
            ColumnRole::Other,
            DeidRule::Keep,
        )],
        BTreeMap::new(),
        1,
    );
    let err = deidentify(frame.clone(), &s, &[0; 32]).unwrap_err();
    assert!(matches!(err, DeidError::MissingColumn { .. }));
    assert_no_value(&err);
    let s = schema(
        vec![spec(
            "other",
            ColumnType::String,
            ColumnRole::DirectIdentifier,
            DeidRule::Keep,
        )],
        BTreeMap::new(),
        1,
    );
    let err = deidentify(frame, &s, &[0; 32]).unwrap_err();
    assert!(matches!(err, DeidError::Schema(_)), "{err}");
    assert_no_value(&err);
}

#[test]
fn empty_frame_is_fine() {
    let frame = DataFrame::new(vec![
        Column::new("city".into(), Vec::<String>::new()),
        Column::new("income".into(), Vec::<f64>::new()),
    ])
    .unwrap();
    let s = schema(
        vec![
            spec(
                "city",
                ColumnType::String,
                ColumnRole::QuasiIdentifier,
                DeidRule::Hierarchy {
                    name: "city".into(),
                },
            ),
            spec(
                "income",
                ColumnType::Float,
                ColumnRole::Sensitive,
                DeidRule::TopBottom {
                    lower: 0.0,
                    upper: 1e6,
                },
            ),
        ],
        city_hierarchy(),
        5,
    );
    let out = deidentify(frame, &s, &[0; 32]).unwrap();
    assert_eq!(out.frame.height(), 0);
    assert_eq!(out.frame.get_column_names_str(), ["city", "income"]);
    assert_eq!(out.report.records_in, 0);
    assert_eq!(out.report.k_achieved, 0);
    assert_eq!(out.report.risk.prosecutor_max, 0.0);
    assert_eq!(out.report.levels["city"], 0);
}

#[test]
fn bins_dates_nulls_and_coding() {
    // 60 records: ages spread over 20..80, join dates over two years, some nulls.
    let n = 60;
    let ages: Vec<Option<i64>> = (0..n)
        .map(|i| {
            if i % 15 == 0 {
                None
            } else {
                Some(20 + (i * 7 % 60) as i64)
            }
        })
        .collect();
    let days: Vec<Option<i32>> = (0..n).map(|i| Some(18_000 + (i * 11 % 700))).collect();
    let income: Vec<f64> = (0..n).map(|i| (i as f64) * 1000.0 - 5000.0).collect();
    let phone: Vec<String> = (0..n).map(|i| format!("1380000{i:04}")).collect();
    let frame = DataFrame::new(vec![
        Column::new("age".into(), ages),
        Int32Chunked::from_iter(days)
            .into_date()
            .into_column()
            .with_name("joined".into()),
        Column::new("income".into(), income),
        Column::new("phone".into(), phone),
    ])
    .unwrap();
    let s = schema(
        vec![
            spec(
                "age",
                ColumnType::Integer,
                ColumnRole::QuasiIdentifier,
                DeidRule::Bin {
                    width: 5.0,
                    levels: 3,
                },
            ),
            spec(
                "joined",
                ColumnType::Date,
                ColumnRole::QuasiIdentifier,
                DeidRule::DateTruncate {
                    finest: DateUnit::Month,
                },
            ),
            spec(
                "income",
                ColumnType::Float,
                ColumnRole::Sensitive,
                DeidRule::TopBottom {
                    lower: 0.0,
                    upper: 40_000.0,
                },
            ),
            spec(
                "phone",
                ColumnType::String,
                ColumnRole::DirectIdentifier,
                DeidRule::Drop,
            ),
        ],
        BTreeMap::new(),
        3,
    );
    let out = deidentify(frame, &s, &[0; 32]).unwrap();
    assert_eq!(
        out.frame.get_column_names_str(),
        ["age", "joined", "income"]
    );
    assert_eq!(out.report.dropped, ["phone"]);
    for (_, size) in class_sizes(&out.frame, &["age", "joined"]) {
        assert!(size >= 3);
    }
    let age_level = out.report.levels["age"];
    let ages = texts(&out.frame, "age");
    for a in ages.iter().flatten() {
        match age_level {
            0 => assert!(a.parse::<i64>().is_ok()),
            1..=3 => assert!(a.starts_with('[') && a.ends_with(')'), "{a}"),
            _ => assert_eq!(a, "*"),
        }
    }
    let joined = texts(&out.frame, "joined");
    let pattern_len = match out.report.levels["joined"] {
        0 => 10,
        1 => 7,
        2 => 4,
        _ => 1,
    };
    assert!(joined.iter().flatten().all(|j| j.len() == pattern_len));
    let income = out.frame.column("income").unwrap().f64().unwrap().clone();
    assert!(
        income
            .into_iter()
            .flatten()
            .all(|x| (0.0..=40_000.0).contains(&x))
    );
    assert_eq!(out.report.l_achieved.map(|l| l >= 1), Some(true));
}

#[test]
fn report_serialises() {
    let frame = DataFrame::new(vec![Column::new(
        "city".into(),
        ["Tianhe", "Yuexiu", "Futian", "Tianhe"],
    )])
    .unwrap();
    let mut s = schema(
        vec![spec(
            "city",
            ColumnType::String,
            ColumnRole::QuasiIdentifier,
            DeidRule::Hierarchy {
                name: "city".into(),
            },
        )],
        city_hierarchy(),
        2,
    );
    // One record may go: Futian is alone in Shenzhen, so level 1 suppresses it.
    s.privacy.max_suppression = 0.25;
    let out = deidentify(frame, &s, &[0; 32]).unwrap();
    assert_eq!(out.report.suppressed, 1);
    let json = serde_json::to_string(&out.report).unwrap();
    let back: pdx_algorithms::deid::pipeline::DeidReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, out.report);
    assert_eq!(out.report.levels["city"], 1);
    assert_eq!(
        texts(&out.frame, "city"),
        [Some("Guangzhou"); 3].map(|s| s.map(str::to_owned))
    );
}
