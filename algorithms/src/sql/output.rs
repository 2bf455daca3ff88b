//! The collected result of a job, its size measure and its encodings.

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::json::ArrayWriter as JsonArrayWriter;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;

use super::SqlError;

/// The result of a sandboxed query, within the row and byte caps.
#[derive(Debug, Clone)]
pub struct SqlOutput {
    /// Schema of the result (also valid when there are no batches).
    pub schema: SchemaRef,
    /// The result rows.
    pub batches: Vec<RecordBatch>,
    /// Total number of rows.
    pub rows: usize,
    /// Total size as measured by [`batch_bytes`].
    pub bytes: usize,
}

impl SqlOutput {
    /// Encodes the result as one Parquet file.
    pub fn to_parquet(&self) -> Result<Vec<u8>, SqlError> {
        let fail = |_| SqlError::Encode("Parquet");
        let mut writer =
            ArrowWriter::try_new(Vec::new(), self.schema.clone(), None).map_err(fail)?;
        for batch in &self.batches {
            writer.write(batch).map_err(fail)?;
        }
        writer.into_inner().map_err(fail)
    }

    /// Encodes the result as CSV with a header line.
    pub fn to_csv(&self) -> Result<Vec<u8>, SqlError> {
        let fail = |_| SqlError::Encode("CSV");
        let mut writer = CsvWriterBuilder::new().with_header(true).build(Vec::new());
        if self.batches.is_empty() {
            // The header is written with the first batch, so write an empty one.
            writer
                .write(&RecordBatch::new_empty(self.schema.clone()))
                .map_err(fail)?;
        }
        for batch in &self.batches {
            writer.write(batch).map_err(fail)?;
        }
        Ok(writer.into_inner())
    }

    /// Encodes the result as a JSON array of objects (null fields are omitted).
    pub fn to_json(&self) -> Result<Vec<u8>, SqlError> {
        let fail = |_| SqlError::Encode("JSON");
        let mut writer = JsonArrayWriter::new(Vec::new());
        for batch in &self.batches {
            writer.write(batch).map_err(fail)?;
        }
        writer.finish().map_err(fail)?;
        Ok(writer.into_inner())
    }
}

/// Size of a batch as counted against [`super::SqlLimits::max_output_bytes`]: the Arrow
/// bytes its rows occupy (values, offsets, validity), counting only the slice a batch
/// views. String/binary views count 16 bytes per value plus out-of-line data; nested
/// types holding views count their whole buffers (an over-estimate).
pub fn batch_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| array_bytes(c.as_ref()))
        .sum()
}

/// See [`batch_bytes`].
fn array_bytes(array: &dyn Array) -> usize {
    match array.data_type() {
        DataType::Utf8View => array.as_string_view_opt().map_or_else(
            || array.get_array_memory_size(),
            |a| view_bytes(a.views(), a.nulls()),
        ),
        DataType::BinaryView => array.as_binary_view_opt().map_or_else(
            || array.get_array_memory_size(),
            |a| view_bytes(a.views(), a.nulls()),
        ),
        t if contains_view(t) => array.get_array_memory_size(),
        _ => array
            .to_data()
            .get_slice_memory_size()
            .unwrap_or_else(|_| array.get_array_memory_size()),
    }
}

/// 16 bytes per view, the out-of-line bytes of values longer than 12, and validity.
fn view_bytes(views: &ScalarBuffer<u128>, nulls: Option<&NullBuffer>) -> usize {
    let out_of_line: usize = views
        .iter()
        .map(|v| {
            let len = *v as u32 as usize;
            if len > 12 { len } else { 0 }
        })
        .sum();
    views.len() * 16 + out_of_line + nulls.map_or(0, |n| n.len().div_ceil(8))
}

/// True when a view type appears anywhere inside `t`.
fn contains_view(t: &DataType) -> bool {
    match t {
        DataType::Utf8View
        | DataType::BinaryView
        | DataType::ListView(_)
        | DataType::LargeListView(_) => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => contains_view(f.data_type()),
        DataType::Struct(fields) => fields.iter().any(|f| contains_view(f.data_type())),
        DataType::Union(fields, _) => fields.iter().any(|(_, f)| contains_view(f.data_type())),
        DataType::Dictionary(_, v) => contains_view(v),
        DataType::RunEndEncoded(_, v) => contains_view(v.data_type()),
        _ => false,
    }
}
