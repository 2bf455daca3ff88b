//! Baselines and generated data for benchmarks: what raw polars does with the same
//! input, and a large synthetic table with a known shape. Kept here so that only this
//! crate depends on polars.

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::*;

use crate::deid::schema::{
    ColumnRole, ColumnSpec, ColumnType, DatasetSchema, DeidRule, Domain, Hierarchy, PrivacyModel,
};

/// Reads a CSV with polars' own reader (header row, given separator), no validation.
pub fn read_csv_raw(path: &Path, separator: u8) -> PolarsResult<DataFrame> {
    CsvReadOptions::default()
        .with_has_header(true)
        .with_parse_options(CsvParseOptions::default().with_separator(separator))
        .try_into_reader_with_file_path(Some(path.to_path_buf()))?
        .finish()
}

/// The number of equivalence classes over `columns`, counted by a polars group-by.
pub fn raw_class_count(frame: &DataFrame, columns: &[&str]) -> PolarsResult<usize> {
    let cols: Vec<Expr> = columns.iter().map(|c| col(*c)).collect();
    let counted = frame
        .clone()
        .lazy()
        .group_by(cols)
        .agg([len().alias("n")])
        .collect()?;
    Ok(counted.height())
}

/// A generated table: age (binned), sex, region (3-level hierarchy), education and
/// occupation (2-level hierarchies), and a sensitive income.
pub fn generated_table(rows: usize, seed: u64) -> PolarsResult<(DatasetSchema, DataFrame)> {
    let regions: Vec<String> = (0..60).map(|i| format!("R{i:02}")).collect();
    let educations: Vec<String> = (0..16).map(|i| format!("E{i:02}")).collect();
    let occupations: Vec<String> = (0..24).map(|i| format!("O{i:02}")).collect();
    let two_level = |values: &[String], group: usize| Hierarchy {
        rows: values
            .iter()
            .enumerate()
            .map(|(i, v)| vec![v.clone(), format!("G{}", i / group), "*".into()])
            .collect(),
    };
    let mut hierarchies = BTreeMap::new();
    hierarchies.insert("region".to_string(), two_level(&regions, 6));
    hierarchies.insert("education".to_string(), two_level(&educations, 4));
    hierarchies.insert("occupation".to_string(), two_level(&occupations, 6));
    hierarchies.insert(
        "sex".to_string(),
        Hierarchy {
            rows: vec![vec!["F".into(), "*".into()], vec!["M".into(), "*".into()]],
        },
    );
    let qi = |name: &str, t, rule| ColumnSpec {
        name: name.into(),
        column_type: t,
        role: ColumnRole::QuasiIdentifier,
        rule,
        domain: None,
        nullable: false,
    };
    let h = |name: &str| DeidRule::Hierarchy { name: name.into() };
    let schema = DatasetSchema {
        columns: vec![
            qi(
                "age",
                ColumnType::Integer,
                DeidRule::Bin {
                    width: 5.0,
                    levels: 4,
                },
            ),
            qi("sex", ColumnType::String, h("sex")),
            qi("region", ColumnType::String, h("region")),
            qi("education", ColumnType::String, h("education")),
            qi("occupation", ColumnType::String, h("occupation")),
            ColumnSpec {
                name: "income".into(),
                column_type: ColumnType::Integer,
                role: ColumnRole::Sensitive,
                rule: DeidRule::Keep,
                domain: Some(Domain::Range { min: 0.0, max: 1e7 }),
                nullable: false,
            },
        ],
        hierarchies,
        privacy: PrivacyModel {
            k: 5,
            l: None,
            max_suppression: 0.01,
            metric: Default::default(),
        },
    };
    let mut x = seed;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        x >> 33
    };
    let (mut age, mut sex, mut region, mut edu, mut occ, mut income) = (
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
        Vec::with_capacity(rows),
    );
    for _ in 0..rows {
        age.push((next() % 100) as i64);
        sex.push(if next() % 2 == 0 { "F" } else { "M" });
        region.push(regions[(next() % 60) as usize].as_str());
        edu.push(educations[(next() % 16) as usize].as_str());
        occ.push(occupations[(next() % 24) as usize].as_str());
        income.push((next() % 10_000_000) as i64);
    }
    let frame = DataFrame::new(vec![
        Column::new("age".into(), age),
        Column::new("sex".into(), sex),
        Column::new("region".into(), region),
        Column::new("education".into(), edu),
        Column::new("occupation".into(), occ),
        Column::new("income".into(), income),
    ])?;
    Ok((schema, frame))
}
