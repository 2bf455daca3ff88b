//! Row ordinals: a granted table seen with one more column, each record's position in
//! the certified file, for the record sets of the disclosure checks.
//!
//! The ordinal of a record is its index in the Parquet file: the rows of row group `g`
//! are numbered from the sum of the row counts of groups `0..g`. It depends only on the
//! certified file, so the same record has the same ordinal in every run on that
//! version. [`OrdinalTable`] is never registered in the session (SQL cannot name it or
//! its column); the disclosure rewrite swaps it in for the granted table's scan.
//!
//! The scan reads whole row groups (no predicate pushdown: skipping rows inside the
//! reader would be fine, but skipping row groups by statistics is the only pruning the
//! listing table did, and a full scan keeps the numbering obviously right). Row groups
//! are split into contiguous runs, one per partition, so scans stay parallel.
//!
//! The file is read through the same zone store as the granted table (a sealed file is
//! decrypted segment by segment as it is read); its footer is read once, when the table
//! is built, and shared by every scan.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, RecordBatchOptions, UInt32Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::object_store::ObjectStore;
use datafusion::object_store::path::Path as ObjectPath;
use datafusion::parquet::arrow::ProjectionMask;
use datafusion::parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use datafusion::parquet::arrow::async_reader::{
    AsyncFileReader, ParquetObjectReader, ParquetRecordBatchStreamBuilder,
};
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::Partitioning;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use futures_util::{StreamExt, TryStreamExt};

/// Name of the ordinal column (reserved: the disclosure checks refuse `__pdx_` names).
pub const ORDINAL_COLUMN: &str = "__pdx_row";

/// What a scan needs to know about the file.
struct OrdinalFile {
    /// The store the file is read through (the table's zone store).
    store: Arc<dyn ObjectStore>,
    /// The file's path in `store`.
    location: ObjectPath,
    /// The file's (plaintext) length.
    size: u64,
    /// The file's Parquet metadata, read once.
    metadata: Arc<ParquetMetaData>,
    /// The whole file's schema as the listing table inferred it (types included).
    file_schema: SchemaRef,
    /// Per granted column, its index in `file_schema`.
    file_indices: Vec<usize>,
    /// Per row group, its first ordinal.
    first_ordinals: Vec<u32>,
    /// The table schema: the granted columns, then [`ORDINAL_COLUMN`].
    schema: SchemaRef,
}

impl fmt::Debug for OrdinalFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the location nor the metadata: its statistics hold data values.
        f.debug_struct("OrdinalFile")
            .field("store", &self.store)
            .field("size", &self.size)
            .field("row_groups", &self.first_ordinals.len())
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// A granted table with its row ordinals (see the module documentation).
#[derive(Debug, Clone)]
pub struct OrdinalTable {
    /// The file and its layout.
    file: Arc<OrdinalFile>,
}

impl OrdinalTable {
    /// The table over the file `location` of `store` exposing `granted` (the listing
    /// table's schema, whose fields all exist in `file_schema`) and the ordinals. Reads
    /// the file footer.
    pub(crate) async fn try_new(
        store: Arc<dyn ObjectStore>,
        location: ObjectPath,
        file_schema: SchemaRef,
        granted: &Schema,
    ) -> Result<Self, &'static str> {
        let file_indices = granted
            .fields()
            .iter()
            .map(|f| file_schema.index_of(f.name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| "a granted column is not in the file")?;
        let size = store
            .head(&location)
            .await
            .map_err(|_| "the file cannot be opened")?
            .size;
        let mut reader =
            ParquetObjectReader::new(Arc::clone(&store), location.clone()).with_file_size(size);
        let metadata = reader
            .get_metadata(None)
            .await
            .map_err(|_| "the file is not Parquet")?;
        let mut first_ordinals = Vec::new();
        let mut next: u64 = 0;
        for group in metadata.row_groups() {
            first_ordinals.push(u32::try_from(next).map_err(|_| "the file has over 2^32 rows")?);
            next += u64::try_from(group.num_rows()).map_err(|_| "a row group is corrupt")?;
        }
        u32::try_from(next).map_err(|_| "the file has over 2^32 rows")?;
        let mut fields: Vec<Field> = granted
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new(ORDINAL_COLUMN, DataType::UInt32, false));
        Ok(Self {
            file: Arc::new(OrdinalFile {
                store,
                location,
                size,
                metadata,
                file_schema,
                file_indices,
                first_ordinals,
                schema: Arc::new(Schema::new(fields)),
            }),
        })
    }
}

#[async_trait::async_trait]
impl TableProvider for OrdinalTable {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.file.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let width = self.file.schema.fields().len();
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..width).collect(),
        };
        let schema = Arc::new(self.file.schema.project(&projection)?);
        let groups = self.file.first_ordinals.len();
        let partitions = state.config().target_partitions().clamp(1, groups.max(1));
        // Contiguous runs of row groups, as even as possible.
        let runs: Vec<Vec<usize>> = (0..partitions)
            .map(|p| (p * groups / partitions..(p + 1) * groups / partitions).collect())
            .collect();
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(runs.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Arc::new(OrdinalScanExec {
            file: Arc::clone(&self.file),
            projection,
            schema,
            runs,
            properties,
        }))
    }
}

/// The scan of an [`OrdinalTable`]: one partition per run of row groups.
#[derive(Debug)]
struct OrdinalScanExec {
    /// The file and its layout.
    file: Arc<OrdinalFile>,
    /// Indices into the table schema (the ordinal is the last).
    projection: Vec<usize>,
    /// The projected schema.
    schema: SchemaRef,
    /// Row groups per partition, ascending and contiguous.
    runs: Vec<Vec<usize>>,
    /// Plan properties.
    properties: PlanProperties,
}

impl DisplayAs for OrdinalScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OrdinalScanExec: partitions={}", self.runs.len())
    }
}

impl ExecutionPlan for OrdinalScanExec {
    fn name(&self) -> &str {
        "OrdinalScanExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &PlanProperties {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "OrdinalScanExec has no children".to_owned(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let Some(run) = self.runs.get(partition).cloned() else {
            return Err(DataFusionError::Internal(
                "OrdinalScanExec: no such partition".to_owned(),
            ));
        };
        let file = Arc::clone(&self.file);
        let ordinal_index = file.schema.fields().len() - 1;
        // Granted columns wanted, as file indices, in projection order.
        let wanted: Vec<usize> = self
            .projection
            .iter()
            .filter(|i| **i != ordinal_index)
            .filter_map(|i| file.file_indices.get(*i).copied())
            .collect();
        let schema = Arc::clone(&self.schema);
        let batch_size = context.session_config().batch_size();
        let first = run
            .first()
            .and_then(|g| file.first_ordinals.get(*g).copied());
        let projection = self.projection.clone();
        let out_schema = Arc::clone(&schema);
        let stream = futures_util::stream::once(async move {
            let Some(first) = first else {
                return Ok::<_, DataFusionError>(
                    futures_util::stream::empty::<Result<RecordBatch>>().boxed(),
                );
            };
            // The footer read when the table was built, seen with the inferred schema.
            let options = ArrowReaderOptions::new().with_schema(Arc::clone(&file.file_schema));
            let metadata = ArrowReaderMetadata::try_new(Arc::clone(&file.metadata), options)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let reader = ParquetObjectReader::new(Arc::clone(&file.store), file.location.clone())
                .with_file_size(file.size);
            let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(reader, metadata);
            // The reader returns columns in file order; map them to projection order.
            // Deduplicated: the reader returns each root column once.
            let mut sorted = wanted;
            sorted.sort_unstable();
            sorted.dedup();
            let mask = ProjectionMask::roots(builder.parquet_schema(), sorted.iter().copied());
            let reader = builder
                .with_row_groups(run)
                .with_projection(mask)
                .with_batch_size(batch_size)
                .build()
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            let mut next = first;
            let batches = reader.map(move |batch| {
                let batch = batch.map_err(|e| DataFusionError::External(Box::new(e)))?;
                let rows = batch.num_rows();
                let start = next;
                next = next.saturating_add(u32::try_from(rows).unwrap_or(u32::MAX));
                let mut columns: Vec<ArrayRef> = Vec::with_capacity(projection.len());
                for index in &projection {
                    if *index == ordinal_index {
                        columns.push(Arc::new(UInt32Array::from_iter_values(
                            (0..rows as u32).map(|r| start + r),
                        )));
                    } else {
                        let Some(file_index) = file.file_indices.get(*index) else {
                            return Err(DataFusionError::Internal(
                                "OrdinalScanExec: projection out of range".to_owned(),
                            ));
                        };
                        let Ok(position) = sorted.binary_search(file_index) else {
                            return Err(DataFusionError::Internal(
                                "OrdinalScanExec: column not read".to_owned(),
                            ));
                        };
                        columns.push(Arc::clone(batch.column(position)));
                    }
                }
                let options = RecordBatchOptions::new().with_row_count(Some(rows));
                RecordBatch::try_new_with_options(Arc::clone(&out_schema), columns, &options)
                    .map_err(DataFusionError::from)
            });
            Ok(batches.boxed())
        })
        .try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
