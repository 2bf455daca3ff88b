//! Test fixtures: the Adult data set loaded with the `csv` crate (independently of the
//! crate's own ingest), its hierarchies, and independent counting helpers.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use pdx_algorithms::deid::schema::{
    ColumnRole, ColumnSpec, ColumnType, DatasetSchema, DeidRule, Hierarchy, PrivacyModel,
};
use polars::prelude::*;

/// The Adult columns in file order.
pub const ADULT_COLUMNS: [&str; 9] = [
    "sex",
    "age",
    "race",
    "marital-status",
    "education",
    "native-country",
    "workclass",
    "occupation",
    "salary-class",
];

/// The quasi-identifiers: every column but `salary-class`.
pub const ADULT_QIS: [&str; 8] = [
    "sex",
    "age",
    "race",
    "marital-status",
    "education",
    "native-country",
    "workclass",
    "occupation",
];

fn adult_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/adult")
}

/// The raw Adult records, as text, in file order.
pub fn adult_rows() -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(true)
        .from_path(adult_dir().join("adult.csv"))
        .unwrap();
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(header, ADULT_COLUMNS);
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// Adult as a frame: `age` as Int64, everything else as String.
pub fn adult_frame(rows: &[Vec<String>]) -> DataFrame {
    let columns: Vec<Column> = ADULT_COLUMNS
        .iter()
        .enumerate()
        .map(|(j, name)| {
            if *name == "age" {
                let v: Vec<i64> = rows.iter().map(|r| r[j].parse().unwrap()).collect();
                Column::new((*name).into(), v)
            } else {
                let v: Vec<&str> = rows.iter().map(|r| r[j].as_str()).collect();
                Column::new((*name).into(), v)
            }
        })
        .collect();
    DataFrame::new(columns).unwrap()
}

/// The hierarchy file of `column` (`;`-separated, no header).
pub fn adult_hierarchy(column: &str) -> Hierarchy {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .has_headers(false)
        .from_path(adult_dir().join(format!("adult_hierarchy_{column}.csv")))
        .unwrap();
    Hierarchy {
        rows: reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect(),
    }
}

/// Adult's schema: every QI generalised by its hierarchy, `salary-class` sensitive.
pub fn adult_schema(k: u32, l: Option<u32>, max_suppression: f64) -> DatasetSchema {
    let mut hierarchies = BTreeMap::new();
    let columns = ADULT_COLUMNS
        .iter()
        .map(|name| {
            let qi = *name != "salary-class";
            if qi {
                hierarchies.insert((*name).to_owned(), adult_hierarchy(name));
            }
            ColumnSpec {
                name: (*name).to_owned(),
                column_type: if *name == "age" {
                    ColumnType::Integer
                } else {
                    ColumnType::String
                },
                role: if qi {
                    ColumnRole::QuasiIdentifier
                } else {
                    ColumnRole::Sensitive
                },
                rule: if qi {
                    DeidRule::Hierarchy {
                        name: (*name).to_owned(),
                    }
                } else {
                    DeidRule::Keep
                },
                domain: None,
                nullable: false,
            }
        })
        .collect();
    DatasetSchema {
        columns,
        hierarchies,
        privacy: PrivacyModel {
            k,
            l,
            max_suppression,
            metric: Default::default(),
        },
    }
}

/// The text of every cell of `column`, nulls as `None`.
pub fn texts(frame: &DataFrame, column: &str) -> Vec<Option<String>> {
    let c = frame
        .column(column)
        .unwrap()
        .cast(&DataType::String)
        .unwrap();
    c.str()
        .unwrap()
        .iter()
        .map(|v| v.map(str::to_owned))
        .collect()
}

/// Equivalence classes of `frame` over `columns`, counted with a plain `HashMap`.
pub fn class_sizes(frame: &DataFrame, columns: &[&str]) -> HashMap<Vec<Option<String>>, usize> {
    let cols: Vec<Vec<Option<String>>> = columns.iter().map(|c| texts(frame, c)).collect();
    let mut sizes = HashMap::new();
    for i in 0..frame.height() {
        *sizes
            .entry(cols.iter().map(|c| c[i].clone()).collect())
            .or_insert(0) += 1;
    }
    sizes
}

/// Generalises a raw Adult record to `levels` using the hierarchy files directly.
pub struct AdultGeneraliser {
    maps: Vec<HashMap<String, Vec<String>>>,
}

impl AdultGeneraliser {
    /// Loads the eight QI hierarchies.
    pub fn new() -> Self {
        let maps = ADULT_QIS
            .iter()
            .map(|c| {
                adult_hierarchy(c)
                    .rows
                    .into_iter()
                    .map(|r| (r[0].clone(), r))
                    .collect()
            })
            .collect();
        AdultGeneraliser { maps }
    }

    /// The QI tuple of raw record `row` (file column order) at `levels`.
    pub fn tuple(&self, row: &[String], levels: &[u8]) -> Vec<String> {
        ADULT_QIS
            .iter()
            .enumerate()
            .map(|(j, name)| {
                let col = ADULT_COLUMNS.iter().position(|c| c == name).unwrap();
                self.maps[j][&row[col]][levels[j] as usize].clone()
            })
            .collect()
    }

    /// Records that k-anonymity at `levels` would suppress (classes smaller than `k`).
    pub fn suppressed(&self, rows: &[Vec<String>], levels: &[u8], k: usize) -> usize {
        let mut sizes: HashMap<Vec<String>, usize> = HashMap::new();
        for r in rows {
            *sizes.entry(self.tuple(r, levels)).or_insert(0) += 1;
        }
        sizes.values().filter(|&&s| s < k).sum()
    }
}
