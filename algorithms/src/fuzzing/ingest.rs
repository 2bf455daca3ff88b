//! CSV (UTF-8 and GBK) and Parquet ingest ([`read_upload`]) on arbitrary bytes.
//!
//! The first input byte is the declaration: its low two bits choose the schema (the
//! Adult extract, the PUMS extract with person ids, or an enterprise table with every
//! column type, domains and nullable columns), its next two bits the CSV delimiter
//! (`,` `;` tab `|`); the rest is the upload. Properties:
//!
//! 1. nothing panics, and every refusal is the uploader's (a 4xx, never an I/O or
//!    frame error), names only declared columns and counts data rows from 1;
//! 2. an accepted upload has exactly the declared columns, in order, with the declared
//!    types, at least one row, and no null in a column that is not nullable;
//! 3. CSV bytes are read as UTF-8 and as GBK, and a text reads the same once
//!    transcoded to GBK as it does in UTF-8 (when GBK carries the text exactly).

use std::path::{Path, PathBuf};

use polars::prelude::{DataFrame, DataType};

use crate::deid::ingest::{IngestError, TextEncoding, UploadFormat, read_upload};
use crate::deid::schema::{ColumnRole, ColumnSpec, ColumnType, DatasetSchema, DeidRule, Domain};

/// The delimiters bits 2-3 of the first byte choose from.
const DELIMITERS: [char; 4] = [',', ';', '\t', '|'];

/// Where uploads are written, and the schemas they are declared under.
pub struct IngestFixture {
    upload: PathBuf,
    /// Adult, PUMS with person ids, enterprise.
    schemas: [DatasetSchema; 3],
}

impl IngestFixture {
    /// Uploads are written to `dir/upload`, one at a time.
    pub fn new(dir: &Path) -> IngestFixture {
        IngestFixture {
            upload: dir.join("upload"),
            schemas: [adult_schema(), pums_schema(), enterprise_schema()],
        }
    }

    fn schema(&self, declaration: u8) -> &DatasetSchema {
        let [adult, pums, enterprise] = &self.schemas;
        // 3 is the enterprise table too.
        match declaration % 4 {
            0 => adult,
            1 => pums,
            _ => enterprise,
        }
    }

    fn read(
        &self,
        bytes: &[u8],
        format: &UploadFormat,
        schema: &DatasetSchema,
    ) -> Result<DataFrame, IngestError> {
        if let Err(e) = std::fs::write(&self.upload, bytes) {
            panic!("the fixture directory is not writable: {e}");
        }
        read_upload(&pdx_seal::AtRest::Plain, &self.upload, format, schema)
    }
}

/// A CSV upload, read as UTF-8 and as GBK, and (when it is UTF-8 text that GBK
/// carries exactly) transcoded to GBK and compared.
pub fn ingest_csv(fixture: &IngestFixture, data: &[u8]) {
    let Some((&declaration, upload)) = data.split_first() else {
        return;
    };
    let schema = fixture.schema(declaration);
    let delimiter = DELIMITERS
        .get(usize::from(declaration >> 2) % DELIMITERS.len())
        .copied()
        .unwrap_or(',');
    let utf8 = UploadFormat::Csv {
        delimiter,
        encoding: TextEncoding::Utf8,
    };
    let gbk = UploadFormat::Csv {
        delimiter,
        encoding: TextEncoding::Gbk,
    };
    let as_utf8 = fixture.read(upload, &utf8, schema);
    check_upload(&as_utf8, schema);
    check_upload(&fixture.read(upload, &gbk, schema), schema);

    let Ok(text) = std::str::from_utf8(upload) else {
        return;
    };
    let (encoded, _, unmappable) = encoding_rs::GBK.encode(text);
    let (decoded, _) = encoding_rs::GBK.decode_without_bom_handling(&encoded);
    if unmappable || decoded != text {
        return;
    }
    let as_gbk = fixture.read(&encoded, &gbk, schema);
    match (&as_utf8, &as_gbk) {
        (Ok(a), Ok(b)) => assert!(
            a.equals_missing(b),
            "the same text reads differently in UTF-8 and in GBK"
        ),
        (Err(a), Err(b)) => assert_eq!(
            a.to_string(),
            b.to_string(),
            "the same text is refused differently in UTF-8 and in GBK"
        ),
        _ => panic!(
            "the same text is {} in UTF-8 but {} in GBK",
            outcome(&as_utf8),
            outcome(&as_gbk)
        ),
    }
}

/// A Parquet upload.
pub fn ingest_parquet(fixture: &IngestFixture, data: &[u8]) {
    let Some((&declaration, upload)) = data.split_first() else {
        return;
    };
    let schema = fixture.schema(declaration);
    check_upload(
        &fixture.read(upload, &UploadFormat::Parquet, schema),
        schema,
    );
}

fn outcome(result: &Result<DataFrame, IngestError>) -> String {
    match result {
        Ok(frame) => format!("accepted with {} rows", frame.height()),
        Err(e) => format!("refused ({e})"),
    }
}

/// Properties 1 and 2 of one reading.
fn check_upload(result: &Result<DataFrame, IngestError>, schema: &DatasetSchema) {
    let frame = match result {
        Ok(frame) => frame,
        Err(e) => {
            assert!(
                e.is_client_error(),
                "an upload caused a server error: {e} ({e:?})"
            );
            if let Some(column) = e.column() {
                assert!(
                    schema.column(column).is_some(),
                    "an error names the undeclared column {column}"
                );
            }
            if let IngestError::InvalidValue { row, .. } = e {
                assert!(*row >= 1, "a cell error names the header row");
            }
            return;
        }
    };
    let declared: Vec<&str> = schema.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        frame.get_column_names_str(),
        declared,
        "an accepted upload has other columns than declared"
    );
    assert!(frame.height() > 0, "an accepted upload has no rows");
    for spec in &schema.columns {
        let Ok(column) = frame.column(&spec.name) else {
            panic!("the declared column {} is missing", spec.name);
        };
        assert_eq!(
            column.dtype(),
            &frame_type(spec.column_type),
            "column {} has another type than declared",
            spec.name
        );
        if !spec.nullable {
            assert_eq!(
                column.null_count(),
                0,
                "column {} is not nullable but holds nulls",
                spec.name
            );
        }
    }
}

/// The frame type of a declared column type (the module docs of `deid::ingest`).
fn frame_type(column_type: ColumnType) -> DataType {
    match column_type {
        ColumnType::String => DataType::String,
        ColumnType::Integer => DataType::Int64,
        ColumnType::Float => DataType::Float64,
        ColumnType::Date => DataType::Date,
        ColumnType::Boolean => DataType::Boolean,
    }
}

fn declare(
    name: &str,
    column_type: ColumnType,
    domain: Option<Domain>,
    nullable: bool,
) -> ColumnSpec {
    ColumnSpec {
        name: name.to_owned(),
        column_type,
        role: ColumnRole::Other,
        rule: DeidRule::Keep,
        domain,
        nullable,
    }
}

fn categories(values: &[&str]) -> Option<Domain> {
    Some(Domain::Categories {
        values: values.iter().map(|v| (*v).to_owned()).collect(),
    })
}

fn schema(columns: Vec<ColumnSpec>) -> DatasetSchema {
    DatasetSchema {
        columns,
        hierarchies: Default::default(),
        privacy: Default::default(),
    }
}

/// `../shared/data/adult/adult.csv` (`;`-separated).
fn adult_schema() -> DatasetSchema {
    use ColumnType as T;
    schema(vec![
        declare("sex", T::String, categories(&["Male", "Female"]), false),
        declare(
            "age",
            T::Integer,
            Some(Domain::Range {
                min: 0.0,
                max: 120.0,
            }),
            false,
        ),
        declare("race", T::String, None, false),
        declare("marital-status", T::String, None, false),
        declare("education", T::String, None, false),
        declare("native-country", T::String, None, true),
        declare("workclass", T::String, None, true),
        declare("occupation", T::String, None, true),
        declare(
            "salary-class",
            T::String,
            categories(&["<=50K", ">50K"]),
            false,
        ),
    ])
}

/// `../shared/data/pums/PUMS_pid.csv` (sex and married as 0/1 booleans, income with a
/// decimal point).
fn pums_schema() -> DatasetSchema {
    use ColumnType as T;
    schema(vec![
        declare(
            "age",
            T::Integer,
            Some(Domain::Range {
                min: 0.0,
                max: 100.0,
            }),
            false,
        ),
        declare("sex", T::Boolean, None, false),
        declare("educ", T::Integer, None, false),
        declare(
            "race",
            T::String,
            categories(&["1", "2", "3", "4", "5", "6"]),
            false,
        ),
        declare(
            "income",
            T::Float,
            Some(Domain::Range {
                min: 0.0,
                max: 500_000.0,
            }),
            true,
        ),
        declare("married", T::Boolean, None, false),
        declare("pid", T::Integer, None, false),
    ])
}

/// An enterprise table with every column type, domains and nullable columns.
fn enterprise_schema() -> DatasetSchema {
    use ColumnType as T;
    schema(vec![
        declare("credit_code", T::String, None, false),
        declare("district", T::String, None, false),
        declare(
            "industry",
            T::String,
            categories(&["software", "smelter", "retail", "制造业"]),
            true,
        ),
        declare("kwh_12m", T::Integer, None, true),
        declare(
            "registered",
            T::Date,
            Some(Domain::DateRange {
                min: "1990-01-01".to_owned(),
                max: "2030-12-31".to_owned(),
            }),
            false,
        ),
        declare("listed", T::Boolean, None, true),
        declare("score", T::Float, None, true),
    ])
}
