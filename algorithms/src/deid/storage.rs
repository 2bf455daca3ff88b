//! Parquet storage of de-identified versions, content-addressed by BLAKE3.
//!
//! # Design
//!
//! - **Atomic writes.** A frame is written to a hidden temporary file in the target
//!   directory, `fsync`ed, then renamed into place, and the directory is `fsync`ed so
//!   the rename survives a crash. A reader therefore sees either no file or a complete
//!   one, and a failed write leaves nothing behind (the temporary is removed).
//! - **Hash while writing.** The bytes go through a [`HashingWriter`] that feeds BLAKE3
//!   and counts them, so the content hash costs no second read of the file.
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

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rand::RngCore;

use super::ingest::format_iso_date;

/// Why storing or reading a frame failed (always a server-side problem).
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// File-system failure.
    #[error("storage I/O error: {0}")]
    Io(#[from] io::Error),
    /// Parquet or CSV encoding/decoding failure.
    #[error("storage encoding error: {0}")]
    Polars(#[from] PolarsError),
}

/// Size and BLAKE3 hash of a stored file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredFile {
    /// File size in bytes.
    pub bytes: u64,
    /// BLAKE3 of the file's bytes.
    pub content_hash: [u8; 32],
}

/// A writer that hashes and counts everything written through it.
struct HashingWriter<W> {
    inner: W,
    hasher: blake3::Hasher,
    bytes: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Deletes the temporary file on drop unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = fs::remove_file(path);
        }
    }
}

/// Creates a fresh hidden temporary file in `dir`.
fn create_temp(dir: &Path) -> io::Result<(File, PathBuf)> {
    let mut rng = rand::thread_rng();
    loop {
        let path = dir.join(format!(".pdx-{:016x}.parquet.tmp", rng.next_u64()));
        match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((file, path)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes `frame` as Parquet to a new temporary file in `dir`, fsynced and hashed.
fn write_temp(frame: &mut DataFrame, dir: &Path) -> Result<(TempGuard, StoredFile), StorageError> {
    let (file, path) = create_temp(dir)?;
    let guard = TempGuard(Some(path));
    let mut writer = HashingWriter {
        inner: BufWriter::new(file),
        hasher: blake3::Hasher::new(),
        bytes: 0,
    };
    ParquetWriter::new(&mut writer).finish(frame)?;
    writer.flush()?;
    let HashingWriter {
        inner,
        hasher,
        bytes,
    } = writer;
    let file = inner.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok((
        guard,
        StoredFile {
            bytes,
            content_hash: *hasher.finalize().as_bytes(),
        },
    ))
}

/// Fsyncs a directory so that renames into it are durable (no-op where unsupported).
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()?;
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
    }
    Ok(())
}

/// The directory a path lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Atomically writes `frame` as Parquet to `path` and returns its size and hash.
pub fn write_parquet(frame: &mut DataFrame, path: &Path) -> Result<StoredFile, StorageError> {
    let dir = parent_dir(path);
    let (mut guard, stored) = write_temp(frame, dir)?;
    if let Some(temp) = guard.0.as_deref() {
        fs::rename(temp, path)?;
    }
    guard.0 = None;
    sync_dir(dir)?;
    Ok(stored)
}

/// The content-addressed location of a file with `hash` under `dir`: `dir/ab/<hex>.parquet`.
pub fn content_path(dir: &Path, hash: &[u8; 32]) -> PathBuf {
    let hex = hex::encode(hash);
    dir.join(&hex[..2]).join(format!("{hex}.parquet"))
}

/// Writes `frame` under `dir` at its [`content_path`]; idempotent for equal content.
pub fn store_content_addressed(
    frame: &mut DataFrame,
    dir: &Path,
) -> Result<(PathBuf, StoredFile), StorageError> {
    fs::create_dir_all(dir)?;
    let (mut guard, stored) = write_temp(frame, dir)?;
    let target = content_path(dir, &stored.content_hash);
    let shard = parent_dir(&target);
    fs::create_dir_all(shard)?;
    if target.exists() {
        // Same hash, same bytes: keep the existing file, drop the temporary.
        return Ok((target, stored));
    }
    if let Some(temp) = guard.0.as_deref() {
        fs::rename(temp, &target)?;
    }
    guard.0 = None;
    sync_dir(shard)?;
    sync_dir(dir)?;
    Ok((target, stored))
}

/// Reads a Parquet file written by this module.
pub fn read_parquet(path: &Path) -> Result<DataFrame, StorageError> {
    let file = File::open(path)?;
    Ok(ParquetReader::new(file).finish()?)
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

/// BLAKE3 of a file's bytes, streamed in 64 KiB chunks.
pub fn hash_file(path: &Path) -> Result<[u8; 32], StorageError> {
    let mut file = File::open(path)?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        hasher.update(&buf[..n]);
    }
    Ok(*hasher.finalize().as_bytes())
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

    #[test]
    fn write_and_read_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.parquet");
        let mut frame = sample();
        let stored = write_parquet(&mut frame, &path).unwrap();
        assert_eq!(stored.bytes, fs::metadata(&path).unwrap().len());
        assert_eq!(stored.content_hash, hash_file(&path).unwrap());
        let back = read_parquet(&path).unwrap();
        assert!(back.equals_missing(&frame));
        assert_eq!(leftover_temps(dir.path()), 0);
    }

    #[test]
    fn content_addressing_is_stable() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, s1) = store_content_addressed(&mut sample(), dir.path()).unwrap();
        let (p2, s2) = store_content_addressed(&mut sample(), dir.path()).unwrap();
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
        assert_eq!(hash_file(&p1).unwrap(), s1.content_hash);
        assert_eq!(leftover_temps(dir.path()), 0);

        let mut other = sample();
        other.rename("name", "who".into()).unwrap();
        let (p3, s3) = store_content_addressed(&mut other, dir.path()).unwrap();
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
