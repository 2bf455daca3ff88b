//! CSV ingest of integer columns: integral decimals (`17000.0`, `1.7e4`) as exported by
//! spreadsheets are read as exact integers; fractions and values beyond `i64` are
//! refused with errors that name column and row, never the value.

use pdx_algorithms::deid::ingest::{IngestError, UploadFormat, ValueProblem, read_upload};
use pdx_algorithms::deid::schema::{
    ColumnRole, ColumnSpec, ColumnType, DatasetSchema, DeidRule, Domain,
};
use polars::prelude::*;

fn spec(name: &str, column_type: ColumnType) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        column_type,
        role: ColumnRole::Other,
        rule: DeidRule::Keep,
        domain: None,
        nullable: true,
    }
}

/// An `id` text column and an `income` integer column.
fn income_schema() -> DatasetSchema {
    DatasetSchema {
        columns: vec![
            spec("id", ColumnType::String),
            spec("income", ColumnType::Integer),
        ],
        hierarchies: Default::default(),
        privacy: Default::default(),
    }
}

/// Reads `csv` (UTF-8, comma-separated) under `schema`.
fn read(csv: &str, schema: &DatasetSchema) -> Result<DataFrame, IngestError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upload.csv");
    std::fs::write(&path, csv).unwrap();
    read_upload(
        &pdx_seal::AtRest::Plain,
        &path,
        &UploadFormat::default(),
        schema,
    )
}

fn incomes(frame: &DataFrame) -> Vec<Option<i64>> {
    let column = frame.column("income").unwrap();
    assert_eq!(column.dtype(), &DataType::Int64);
    column
        .as_materialized_series()
        .i64()
        .unwrap()
        .iter()
        .collect()
}

#[test]
fn integral_decimals_in_integer_columns_read_as_exact_integers() {
    let rows = [
        ("17000.0", 17_000),
        ("17000.00", 17_000),
        ("-3.0", -3),
        ("+42.000", 42),
        ("1.7e4", 17_000),
        ("1.7E+4", 17_000),
        ("170000e-1", 17_000),
        ("17000", 17_000),
        ("0.0", 0),
        ("-0.00", 0),
        // Above 2^53: exact, where a detour through f64 would round to ...992.
        ("9007199254740993.0", 9_007_199_254_740_993),
        ("9223372036854775807.0", i64::MAX),
        ("-9223372036854775808.00", i64::MIN),
    ];
    let mut csv = String::from("id,income\n");
    for (i, (text, _)) in rows.iter().enumerate() {
        csv.push_str(&format!("r{i}, {text} \n"));
    }
    csv.push_str("empty,\n");
    let frame = read(&csv, &income_schema()).unwrap();
    let mut want: Vec<Option<i64>> = rows.iter().map(|(_, v)| Some(*v)).collect();
    want.push(None);
    assert_eq!(incomes(&frame), want);
}

#[test]
fn integral_decimals_still_meet_the_declared_domain() {
    let mut schema = income_schema();
    schema.columns[1].domain = Some(Domain::Range {
        min: 0.0,
        max: 120.0,
    });
    let frame = read("id,income\na,120.0\nb,3e1\n", &schema).unwrap();
    assert_eq!(incomes(&frame), vec![Some(120), Some(30)]);
    let err = read("id,income\na,120.0\nb,121.0\n", &schema).unwrap_err();
    assert!(
        matches!(
            err,
            IngestError::InvalidValue {
                row: 2,
                problem: ValueProblem::OutOfRange,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn fractional_decimal_in_integer_column_is_refused_without_quoting_it() {
    for value in ["31337.25", "-31337.5", "3.133725e4", "31337.0000001"] {
        let csv = format!("id,income\na,17000.0\nb,{value}\n");
        let err = read(&csv, &income_schema()).unwrap_err();
        assert!(
            matches!(
                &err,
                IngestError::InvalidValue {
                    column,
                    row: 2,
                    problem: ValueProblem::NotIntegral,
                } if column == "income"
            ),
            "{value}: {err:?}"
        );
        assert!(err.is_client_error());
        let msg = err.to_string();
        assert!(
            msg.starts_with("column \"income\", row 2: "),
            "{value}: {msg}"
        );
        // The fix, in the schema's own words: the column's `type` should be `float`.
        let declare_float = format!("\"type\": \"{}\"", ColumnType::Float.as_str());
        assert!(msg.contains(&declare_float), "{value}: {msg}");
        // Never the value, nor any part of it that would identify it.
        assert!(!msg.contains(value), "{value}: {msg}");
        assert!(!msg.contains("31337"), "{value}: {msg}");
        assert!(!msg.contains("133725"), "{value}: {msg}");
    }
}

#[test]
fn integers_beyond_i64_are_refused_not_wrapped_or_saturated() {
    for value in [
        "9223372036854775808.0",
        "-9223372036854775809.0",
        "9.3e18",
        "1e19",
        "-1e400",
        "99999999999999999999",
    ] {
        let csv = format!("id,income\na,{value}\n");
        let err = read(&csv, &income_schema()).unwrap_err();
        assert!(
            matches!(
                err,
                IngestError::InvalidValue {
                    row: 1,
                    problem: ValueProblem::NotInteger,
                    ..
                }
            ),
            "{value} was not refused as out of range: {err:?}"
        );
        assert!(!err.to_string().contains(value), "{err}");
    }
    // Still not numbers at all.
    for value in ["1.0.0", "1,000.0", "1e", "NaN", "0x10", "."] {
        let csv = format!("id,income\na,\"{value}\"\n");
        let err = read(&csv, &income_schema()).unwrap_err();
        assert!(
            matches!(
                err,
                IngestError::InvalidValue {
                    problem: ValueProblem::NotInteger,
                    ..
                }
            ),
            "{value}: {err:?}"
        );
    }
}
