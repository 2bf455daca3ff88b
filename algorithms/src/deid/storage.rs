//! Parquet storage of de-identified versions, content-addressed by BLAKE3.
//!
//! # Design
//!
//! - **Sealed at rest.** Every read and write goes through a [`pdx_seal::AtRest`]: in
//!   the server the files are sealed (AES-256-GCM segments under the zones' keyring),
//!   for library callers over their own files they are plain. Sizes and hashes are of
//!   the **plaintext** either way, so content addresses and certificates do not depend
//!   on the sealing.
//! - **Atomic writes.** A frame is written to a hidden temporary file in the target
//!   directory, `fsync`ed, then renamed into place, and the directory is `fsync`ed so
//!   the rename survives a crash. A reader therefore sees either no file or a complete
//!   one, and a failed write leaves nothing behind (the temporary is removed).
//! - **Hash while writing.** The plaintext goes through a `HashingWriter` that feeds
//!   BLAKE3 before it is sealed, so the content hash costs no second read of the file.
//! - **Content addressing.** [`store_content_addressed`] files a version under
//!   `dir/ab/<64 hex>.parquet` ([`content_path`]), where `ab` are the first two hex
//!   digits, so equal content lands on one path and directories stay small. Polars'
//!   Parquet writer is deterministic for a given frame, so the same frame gets the same
//!   hash.
//! - **Schema hash.** [`schema_hash`] is BLAKE3 over a canonical text of the frame's
//!   `(name, dtype)` pairs, independent of polars' `Display` for types, so certificates
//!   stay comparable across polars upgrades. The canonical text is
//!
//!   ```text
//!   pdx/schema/v1\n
//!   <byte length of name>:<name>:<dtype>\n      (one line per column, in order)
//!   ```
//!
//!   where `<dtype>` is one of `string`, `int8`..`int64`, `uint8`..`uint64`, `float32`,
//!   `float64`, `boolean`, `date`, `binary`, `null`, or for anything else polars'
//!   `Display` of the type prefixed by `other/`. The length prefix makes names with
//!   `:` or newlines unambiguous.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use pdx_seal::{AtRest, SealError, ZoneFileWriter};
use polars::prelude::*;

use super::ingest::format_iso_date;

/// Why storing or reading a frame failed (always a server-side problem).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// File-system failure.
    #[error("storage I/O error: {0}")]
    Io(#[from] io::Error),
    /// A sealed zone file failed to open or write (tampered, wrong key, …).
    #[error("sealed storage error: {0}")]
    Seal(#[from] SealError),
    /// Parquet or CSV encoding/decoding failure.
    #[error("storage encoding error: {0}")]
    Polars(#[from] PolarsError),
}

/// Plaintext size and BLAKE3 hash of a stored file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredFile {
    /// Plaintext size in bytes.
    pub bytes: u64,
    /// BLAKE3 of the plaintext bytes.
    pub content_hash: [u8; 32],
}

/// A writer that hashes everything written through it (the plaintext, before any
/// sealing), so the content hash costs no second read.
struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes `frame` as Parquet into a new zone file in `dir` (kept as `at_rest` says),
/// not yet placed; returns the writer and the plaintext hash.
fn write_temp(
    frame: &mut DataFrame,
    dir: &Path,
    at_rest: &AtRest,
) -> Result<(ZoneFileWriter, [u8; 32]), StorageError> {
    let file = at_rest.create_in(dir)?;
    let mut writer = HashingWriter {
        inner: BufWriter::with_capacity(256 * 1024, file),
        hasher: blake3::Hasher::new(),
    };
    ParquetWriter::new(&mut writer).finish(frame)?;
    writer.flush()?;
    let HashingWriter { inner, hasher } = writer;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    Ok((file, *hasher.finalize().as_bytes()))
}

/// The directory a path lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Atomically writes `frame` as Parquet to `path` (kept as `at_rest` says) and returns
/// its plaintext size and hash.
pub fn write_parquet(
    frame: &mut DataFrame,
    path: &Path,
    at_rest: &AtRest,
) -> Result<StoredFile, StorageError> {
    let (file, content_hash) = write_temp(frame, parent_dir(path), at_rest)?;
    let bytes = file.commit(path)?;
    Ok(StoredFile {
        bytes,
        content_hash,
    })
}

/// The content-addressed location of a file with `hash` under `dir`: `dir/ab/<hex>.parquet`.
pub fn content_path(dir: &Path, hash: &[u8; 32]) -> PathBuf {
    let hex = hex::encode(hash);
    dir.join(&hex[..2]).join(format!("{hex}.parquet"))
}

/// Writes `frame` under `dir` at its [`content_path`] (of the plaintext); idempotent
/// for equal content.
pub fn store_content_addressed(
    frame: &mut DataFrame,
    dir: &Path,
    at_rest: &AtRest,
) -> Result<(PathBuf, StoredFile), StorageError> {
    let (file, content_hash) = write_temp(frame, dir, at_rest)?;
    let bytes = file.plaintext_written();
    let target = content_path(dir, &content_hash);
    if target.exists() {
        // Same hash, same plaintext: keep the existing file; the dropped writer removes
        // its temporary.
        return Ok((
            target,
            StoredFile {
                bytes,
                content_hash,
            },
        ));
    }
    file.commit(&target)?;
    Ok((
        target,
        StoredFile {
            bytes,
            content_hash,
        },
    ))
}

/// Reads a Parquet file written by this module.
pub fn read_parquet(path: &Path, at_rest: &AtRest) -> Result<DataFrame, StorageError> {
    read_parquet_bytes(at_rest.read_all(path)?)
}

/// A lazy scan of the Parquet file at `path`: polars scans a plain file itself; a
/// sealed one is opened (and authenticated) into memory first, since polars scans only
/// local paths or memory.
pub fn scan_parquet(path: &Path, at_rest: &AtRest) -> Result<LazyFrame, StorageError> {
    Ok(match at_rest {
        AtRest::Plain => LazyFrame::scan_parquet(
            PlPath::Local(std::sync::Arc::from(path)),
            ScanArgsParquet::default(),
        )?,
        AtRest::Sealed(_) => read_parquet(path, at_rest)?.lazy(),
    })
}

/// Reads a Parquet file held in memory (e.g. an engine output encoded as Parquet).
pub fn read_parquet_bytes(bytes: Vec<u8>) -> Result<DataFrame, StorageError> {
    Ok(ParquetReader::new(io::Cursor::new(bytes)).finish()?)
}

/// A frame with no rows and one boolean column named `column` (a placeholder output).
pub fn empty_boolean_frame(column: &str) -> Result<DataFrame, StorageError> {
    Ok(DataFrame::new(vec![Column::new(
        column.into(),
        Vec::<bool>::new(),
    )])?)
}

/// BLAKE3 of a file's plaintext, streamed.
pub fn hash_file(path: &Path, at_rest: &AtRest) -> Result<[u8; 32], StorageError> {
    Ok(at_rest.hash(path)?.0)
}

/// Canonical, polars-version-independent name of a dtype (see module docs).
fn canonical_dtype(dtype: &DataType) -> String {
    use DataType as D;
    let s = match dtype {
        D::String => "string",
        D::Int8 => "int8",
        D::Int16 => "int16",
        D::Int32 => "int32",
        D::Int64 => "int64",
        D::UInt8 => "uint8",
        D::UInt16 => "uint16",
        D::UInt32 => "uint32",
        D::UInt64 => "uint64",
        D::Float32 => "float32",
        D::Float64 => "float64",
        D::Boolean => "boolean",
        D::Date => "date",
        D::Binary => "binary",
        D::Null => "null",
        other => return format!("other/{other}"),
    };
    s.to_owned()
}

/// BLAKE3 over the canonical `(name, dtype)` text of a frame schema (see module docs).
pub fn schema_hash(frame_schema: &Schema) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"pdx/schema/v1\n");
    for (name, dtype) in frame_schema.iter() {
        let line = format!("{}:{}:{}\n", name.len(), name, canonical_dtype(dtype));
        hasher.update(line.as_bytes());
    }
    *hasher.finalize().as_bytes()
}

/// The frame as CSV (comma-separated, header row, dates as `YYYY-MM-DD`).
pub fn to_csv_bytes(frame: &mut DataFrame) -> Result<Vec<u8>, StorageError> {
    let mut out = Vec::new();
    CsvWriter::new(&mut out)
        .include_header(true)
        .finish(frame)?;
    Ok(out)
}

/// One cell as JSON: numbers and booleans natively, dates as `YYYY-MM-DD`, NaN as null.
fn any_value_to_json(value: &AnyValue<'_>) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        AnyValue::Null => J::Null,
        AnyValue::Boolean(b) => J::Bool(*b),
        AnyValue::String(s) => J::String((*s).to_owned()),
        AnyValue::StringOwned(s) => J::String(s.to_string()),
        AnyValue::Int8(v) => J::from(*v),
        AnyValue::Int16(v) => J::from(*v),
        AnyValue::Int32(v) => J::from(*v),
        AnyValue::Int64(v) => J::from(*v),
        AnyValue::UInt8(v) => J::from(*v),
        AnyValue::UInt16(v) => J::from(*v),
        AnyValue::UInt32(v) => J::from(*v),
        AnyValue::UInt64(v) => J::from(*v),
        AnyValue::Float32(v) => {
            serde_json::Number::from_f64(f64::from(*v)).map_or(J::Null, J::Number)
        }
        AnyValue::Float64(v) => serde_json::Number::from_f64(*v).map_or(J::Null, J::Number),
        AnyValue::Date(days) => J::String(format_iso_date(*days)),
        other => match other.get_str() {
            Some(s) => J::String(s.to_owned()),
            None => J::String(other.to_string()),
        },
    }
}

/// The first `limit` rows as a JSON array of `{column: value}` objects.
pub fn to_json_rows(frame: &DataFrame, limit: usize) -> serde_json::Value {
    let n = frame.height().min(limit);
    let columns = frame.get_columns();
    let mut rows = Vec::with_capacity(n);
    for i in 0..n {
        let mut obj = serde_json::Map::with_capacity(columns.len());
        for column in columns {
            let value = column
                .get(i)
                .map_or(serde_json::Value::Null, |v| any_value_to_json(&v));
            obj.insert(column.name().to_string(), value);
        }
        rows.push(serde_json::Value::Object(obj));
    }
    serde_json::Value::Array(rows)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn sample() -> DataFrame {
        let dates = Int32Chunked::new("d".into(), &[Some(0), None, Some(19_000)]).into_date();
        let mut frame = df!(
            "name" => ["a", "b", "c"],
            "age" => [Some(30i64), None, Some(50)],
            "score" => [1.5f64, 2.5, 3.0],
        )
        .unwrap();
        frame.with_column(dates.into_series()).unwrap();
        frame
    }

    fn leftover_temps(dir: &Path) -> usize {
        fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".tmp")
            })
            .count()
    }

    /// A sealing handle with a fresh keyring under `dir`.
    fn sealed(dir: &Path) -> AtRest {
        let kek = pdx_seal::Kek::from_bytes([7; 32]);
        AtRest::sealed(pdx_seal::Keyring::create(&dir.join("keyring.json"), &kek).unwrap())
    }

    #[test]
    fn write_and_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.parquet");
        let mut frame = sample();
        let stored = write_parquet(&mut frame, &path, &AtRest::Plain).unwrap();
        assert_eq!(stored.bytes, fs::metadata(&path).unwrap().len());
        assert_eq!(
            stored.content_hash,
            hash_file(&path, &AtRest::Plain).unwrap()
        );
        let back = read_parquet(&path, &AtRest::Plain).unwrap();
        assert!(back.equals_missing(&frame));
        assert_eq!(leftover_temps(dir.path()), 0);
    }

    #[test]
    fn sealed_files_keep_plaintext_sizes_and_hashes_and_show_no_value() {
        let dir = tempfile::tempdir().unwrap();
        let at_rest = sealed(dir.path());
        let plain =
            write_parquet(&mut sample(), &dir.path().join("p.parquet"), &AtRest::Plain).unwrap();
        let path = dir.path().join("s.parquet");
        let stored = write_parquet(&mut sample(), &path, &at_rest).unwrap();
        // Certificates and release hashes stay over the plaintext.
        assert_eq!(stored, plain);
        assert_eq!(hash_file(&path, &at_rest).unwrap(), plain.content_hash);
        let on_disk = fs::read(&path).unwrap();
        assert!(on_disk.starts_with(pdx_seal::MAGIC));
        assert_ne!(on_disk.len() as u64, plain.bytes);
        // Neither the column names nor the Parquet magic are visible on disk.
        for needle in [&b"score"[..], b"name", b"PAR1"] {
            assert!(!on_disk.windows(needle.len()).any(|w| w == needle));
        }
        assert!(
            read_parquet(&path, &at_rest)
                .unwrap()
                .equals_missing(&sample())
        );
        // Read as plain, the sealed file is not Parquet; read sealed, a plain file is
        // refused as not sealed.
        assert!(read_parquet(&path, &AtRest::Plain).is_err());
        assert!(matches!(
            read_parquet(&dir.path().join("p.parquet"), &at_rest),
            Err(StorageError::Seal(SealError::NotSealed))
        ));
        let (addressed, again) =
            store_content_addressed(&mut sample(), &dir.path().join("deid"), &at_rest).unwrap();
        assert_eq!(again, plain);
        assert_eq!(
            addressed,
            content_path(&dir.path().join("deid"), &plain.content_hash)
        );
    }

    #[test]
    fn content_addressing_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, s1) = store_content_addressed(&mut sample(), dir.path(), &AtRest::Plain).unwrap();
        let (p2, s2) = store_content_addressed(&mut sample(), dir.path(), &AtRest::Plain).unwrap();
        assert_eq!(s1, s2);
        assert_eq!(p1, p2);
        assert_eq!(p1, content_path(dir.path(), &s1.content_hash));
        let hex = hex::encode(s1.content_hash);
        assert_eq!(
            p1.parent().unwrap().file_name().unwrap().to_string_lossy(),
            hex[..2]
        );
        assert_eq!(
            p1.file_name().unwrap().to_string_lossy(),
            format!("{hex}.parquet")
        );
        assert_eq!(hash_file(&p1, &AtRest::Plain).unwrap(), s1.content_hash);
        assert_eq!(leftover_temps(dir.path()), 0);

        let mut other = sample();
        other.rename("name", "who".into()).unwrap();
        let (p3, s3) = store_content_addressed(&mut other, dir.path(), &AtRest::Plain).unwrap();
        assert_ne!(s3.content_hash, s1.content_hash);
        assert_ne!(p3, p1);
    }

    #[test]
    fn schema_hash_tracks_names_and_types() {
        let frame = sample();
        let h = schema_hash(frame.schema());
        assert_eq!(h, schema_hash(sample().schema()));
        let retyped = frame
            .clone()
            .lazy()
            .with_column(col("age").cast(DataType::Float64))
            .collect()
            .unwrap();
        assert_ne!(h, schema_hash(retyped.schema()));
        let mut renamed = frame.clone();
        renamed.rename("age", "years".into()).unwrap();
        assert_ne!(h, schema_hash(renamed.schema()));
        // Pinned: the canonical text must not drift silently (certificates store it).
        let mut expected = blake3::Hasher::new();
        expected.update(b"pdx/schema/v1\n4:name:string\n3:age:int64\n5:score:float64\n1:d:date\n");
        assert_eq!(h, *expected.finalize().as_bytes());
    }

    #[test]
    fn csv_and_json_exports() {
        let mut frame = sample();
        let text = String::from_utf8(to_csv_bytes(&mut frame).unwrap()).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some("name,age,score,d"));
        assert_eq!(lines.next(), Some("a,30,1.5,1970-01-01"));
        let rows = to_json_rows(&frame, 2);
        assert_eq!(
            rows,
            serde_json::json!([
                {"name": "a", "age": 30, "score": 1.5, "d": "1970-01-01"},
                {"name": "b", "age": null, "score": 2.5, "d": null},
            ])
        );
        assert_eq!(to_json_rows(&frame, 100).as_array().unwrap().len(), 3);
        let nan = df!("x" => [f64::NAN]).unwrap();
        assert_eq!(to_json_rows(&nan, 1), serde_json::json!([{"x": null}]));
    }
}
