//! Structural checks on an uploaded Parquet file, before polars decodes it.
//!
//! polars 0.52 (the version OpenDP pins) believes the counts and sizes a Parquet file
//! declares and allocates by them. A data page that claims a negative number of values
//! makes it reserve 2^61 bytes for a validity bitmap, and a failed allocation aborts
//! the process: no `catch_unwind` can turn that into an error (found by the
//! `ingest_parquet` fuzz target; the input is in `fuzz/regressions/ingest_parquet/`).
//! So [`check_structure`] first reads every count and size the decoder allocates by,
//! from the footer and from each page header (with polars-parquet's own footer reader
//! and its Thrift types, a header's allocations bounded by its chunk), and refuses the
//! file unless:
//!
//! - every column is a flat, top-level primitive column of a physical type pdx reads
//!   (boolean, 32- and 64-bit integers and floats, byte arrays): polars sizes a
//!   fixed-length byte array's buffer by its declared width before reading any page;
//! - the row groups hold at most [`MAX_ROWS`] rows together (polars decodes each, so
//!   the footer's own total is not trusted), and their decoded columns at most
//!   [`MAX_DECODED_BYTES`] (polars reserves each column's buffer for its row group's
//!   rows before it reads a page);
//! - each column chunk lies inside the file and declares exactly as many values as its
//!   row group has rows (a flat column has one value, or null, per row);
//! - in each chunk, the pages polars would read, read as its `PageReader` does (a
//!   dictionary page only first, then data pages, each counted by the header its type
//!   names, until the chunk's values are seen), are all there and have headers that
//!   parse, sizes between 0 and [`MAX_PAGE_BYTES`], a body inside the chunk, value,
//!   null and row counts between 0 and the row group's rows, and at most [`MAX_ROWS`]
//!   dictionary entries (a dictionary may hold entries no row uses: polars writes an
//!   enum's whole category list).
//!
//! A file that passes may still be malformed inside a page (its values); polars
//! returns an error or panics on those. polars-parquet's footer reader panics on some
//! footers too (a column chunk whose end overflows a `u64`), so the caller runs these
//! checks and the decode under `catch_unwind` (see `super::ingest`). What this module
//! bounds is the declared sizes that polars allocates by, whose failure aborts.

use std::io::Cursor;

use polars_parquet::parquet::metadata::FileMetadata;
use polars_parquet::parquet::read::read_metadata;
use polars_parquet::parquet::schema::types::PhysicalType;
use polars_parquet_format::thrift::protocol::TCompactInputProtocol;
use polars_parquet_format::{PageHeader, PageType};

/// Most rows an uploaded Parquet file may hold: as many as the default 1 GiB upload
/// limit allows in CSV, where a row takes at least two bytes.
pub const MAX_ROWS: u64 = 1 << 29;

/// Most bytes the decoded columns may take, counted at their widths in memory (a byte
/// array as polars' 16-byte view).
pub const MAX_DECODED_BYTES: u64 = 8 << 30;

/// Largest compressed or uncompressed page body accepted (writers use about 1 MiB;
/// polars zero-fills the uncompressed size before it decompresses).
pub const MAX_PAGE_BYTES: u64 = 256 << 20;

/// Why a Parquet file was refused before decoding. The reasons name no value of the
/// file, only which declared size was out of bounds.
#[derive(Debug, thiserror::Error)]
pub enum StructureError {
    /// The footer could not be read.
    #[error("the footer cannot be read")]
    Footer,
    /// A column is nested, repeated or of a physical type pdx does not read.
    #[error("a column is nested, repeated or of an unsupported physical type")]
    NotFlat,
    /// The row groups declare more rows, or more decoded bytes, than accepted.
    #[error("it declares more than {MAX_ROWS} rows or {MAX_DECODED_BYTES} decoded bytes")]
    TooManyRows,
    /// A column chunk lies (partly) outside the file.
    #[error("a column chunk lies outside the file")]
    ChunkOutsideFile,
    /// A column chunk or a page declares a count out of bounds.
    #[error("a column chunk or page declares an impossible number of values")]
    BadCount,
    /// A page header cannot be parsed, or declares a size out of bounds.
    #[error("a page header is unreadable or declares an impossible size")]
    BadPage,
}

/// Checks the footer and every page header of `bytes` (a whole Parquet file) as the
/// module doc lists.
pub fn check_structure(bytes: &[u8]) -> Result<(), StructureError> {
    let metadata = read_metadata(&mut Cursor::new(bytes)).map_err(|_| StructureError::Footer)?;
    let row_width = row_width(&metadata)?;
    let mut total_rows: u64 = 0;
    for row_group in &metadata.row_groups {
        let rows = row_group.num_rows() as u64;
        total_rows = total_rows.saturating_add(rows);
        if total_rows > MAX_ROWS || total_rows.saturating_mul(row_width) > MAX_DECODED_BYTES {
            return Err(StructureError::TooManyRows);
        }
        for chunk in row_group.parquet_columns() {
            if u64::try_from(chunk.num_values()).ok() != Some(rows) {
                return Err(StructureError::BadCount);
            }
            let start = chunk
                .dictionary_page_offset()
                .unwrap_or_else(|| chunk.data_page_offset());
            let body = chunk_bytes(bytes, start, chunk.compressed_size())?;
            check_pages(body, rows)?;
        }
    }
    Ok(())
}

/// Bytes one row takes once decoded, when every column is a flat, top-level primitive
/// of a physical type pdx reads.
fn row_width(metadata: &FileMetadata) -> Result<u64, StructureError> {
    let mut width: u64 = 0;
    for column in metadata.schema_descr.columns() {
        if column.path_in_schema.len() != 1 || column.descriptor.max_rep_level != 0 {
            return Err(StructureError::NotFlat);
        }
        width += match column.descriptor.primitive_type.physical_type {
            PhysicalType::Boolean => 1,
            PhysicalType::Int32 | PhysicalType::Float => 4,
            PhysicalType::Int64 | PhysicalType::Double => 8,
            PhysicalType::ByteArray => 16,
            PhysicalType::Int96 | PhysicalType::FixedLenByteArray(_) => {
                return Err(StructureError::NotFlat);
            }
        };
    }
    Ok(width)
}

/// The bytes of a column chunk that starts at `start` and is `len` bytes long, when
/// both are non-negative and it ends inside the file.
fn chunk_bytes(bytes: &[u8], start: i64, len: i64) -> Result<&[u8], StructureError> {
    let start = usize::try_from(start).map_err(|_| StructureError::ChunkOutsideFile)?;
    let len = usize::try_from(len).map_err(|_| StructureError::ChunkOutsideFile)?;
    let end = start
        .checked_add(len)
        .ok_or(StructureError::ChunkOutsideFile)?;
    bytes
        .get(start..end)
        .ok_or(StructureError::ChunkOutsideFile)
}

/// Walks the pages of one column chunk as polars' page reader does: a dictionary page
/// only first, then data pages, each counted by the header its type names, until they
/// have declared the chunk's `rows` values; a chunk that ends first is refused.
fn check_pages(mut chunk: &[u8], rows: u64) -> Result<(), StructureError> {
    let mut seen: u64 = 0;
    let mut first = true;
    while seen < rows {
        // A header's allocations (its statistics) are bytes read from the chunk, so the
        // chunk bounds them.
        let budget = chunk.len();
        let mut protocol = TCompactInputProtocol::new(&mut chunk, budget);
        let header = PageHeader::read_from_in_protocol(&mut protocol)
            .map_err(|_| StructureError::BadPage)?;
        let body = page_size(header.compressed_page_size)?;
        page_size(header.uncompressed_page_size)?;
        seen = seen.saturating_add(page_values(&header, rows, first)?);
        first = false;
        let body = usize::try_from(body).map_err(|_| StructureError::BadPage)?;
        chunk = chunk.get(body..).ok_or(StructureError::BadPage)?;
    }
    Ok(())
}

/// A declared page size, when it is between 0 and [`MAX_PAGE_BYTES`].
fn page_size(declared: i32) -> Result<u64, StructureError> {
    u64::try_from(declared)
        .ok()
        .filter(|&size| size <= MAX_PAGE_BYTES)
        .ok_or(StructureError::BadPage)
}

/// The values a page adds to its chunk's count, as polars counts them: a v1 or v2 data
/// page its own header's, a dictionary page (allowed only `first`) none. Every count of
/// every header present is checked against the row group's `rows`.
fn page_values(header: &PageHeader, rows: u64, first: bool) -> Result<u64, StructureError> {
    let at_most = |declared: i32, bound: u64| {
        u64::try_from(declared)
            .ok()
            .filter(|&n| n <= bound)
            .ok_or(StructureError::BadCount)
    };
    let count = |declared: i32| at_most(declared, rows);
    if let Some(dictionary) = &header.dictionary_page_header {
        at_most(dictionary.num_values, MAX_ROWS)?;
    }
    let v1 = match &header.data_page_header {
        Some(data) => Some(count(data.num_values)?),
        None => None,
    };
    let v2 = match &header.data_page_header_v2 {
        Some(data) => {
            count(data.num_nulls)?;
            count(data.num_rows)?;
            let levels = count(data.definition_levels_byte_length)?
                .saturating_add(count(data.repetition_levels_byte_length)?);
            if levels > page_size(header.compressed_page_size)? {
                return Err(StructureError::BadPage);
            }
            Some(count(data.num_values)?)
        }
        None => None,
    };
    match header.type_ {
        PageType::DATA_PAGE => v1.ok_or(StructureError::BadPage),
        PageType::DATA_PAGE_V2 => v2.ok_or(StructureError::BadPage),
        PageType::DICTIONARY_PAGE if first && header.dictionary_page_header.is_some() => Ok(0),
        _ => Err(StructureError::BadPage),
    }
}

#[cfg(test)]
mod tests {
    use polars::prelude::*;

    use super::*;

    /// A small flat file as polars writes it (dictionary-encoded strings, nulls).
    fn written() -> Vec<u8> {
        let mut frame = df!(
            "region" => ["north", "south", "north", "east"],
            "income" => [Some(10_i64), None, Some(30), Some(40)],
        )
        .unwrap();
        let mut bytes = Vec::new();
        ParquetWriter::new(&mut bytes).finish(&mut frame).unwrap();
        bytes
    }

    #[test]
    fn a_file_polars_wrote_passes() {
        check_structure(&written()).unwrap();
    }

    #[test]
    fn a_truncated_file_is_refused_at_its_footer() {
        let bytes = written();
        assert!(matches!(
            check_structure(&bytes[..bytes.len() - 9]),
            Err(StructureError::Footer)
        ));
    }

    #[test]
    fn the_fuzzers_aborting_files_are_refused() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fuzz/regressions/ingest_parquet"
        );
        let mut checked = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            // The aborting inputs. The `frame_error_after_decode` ones pass these checks:
            // they are refused when their columns' heights differ (`super::ingest`).
            let refused = name.starts_with("negative_page_value_count");
            if !refused {
                continue;
            }
            let input = std::fs::read(&path).unwrap();
            // The first byte of a fuzz input chooses the schema; the file follows.
            assert!(
                check_structure(&input[1..]).is_err(),
                "{name} passes the checks"
            );
            checked += 1;
        }
        assert_eq!(checked, 4);
    }

    #[test]
    fn counts_beyond_the_row_group_are_refused() {
        use polars_parquet_format::{DataPageHeader, Encoding};
        let header = |num_values| PageHeader {
            type_: PageType::DATA_PAGE,
            uncompressed_page_size: 8,
            compressed_page_size: 8,
            crc: None,
            data_page_header: Some(DataPageHeader {
                num_values,
                encoding: Encoding::PLAIN,
                definition_level_encoding: Encoding::RLE,
                repetition_level_encoding: Encoding::RLE,
                statistics: None,
            }),
            index_page_header: None,
            dictionary_page_header: None,
            data_page_header_v2: None,
        };
        assert_eq!(page_values(&header(4), 4, false).unwrap(), 4);
        assert!(matches!(
            page_values(&header(5), 4, false),
            Err(StructureError::BadCount)
        ));
        assert!(matches!(
            page_values(&header(-1), 4, false),
            Err(StructureError::BadCount)
        ));
        // A page typed as a dictionary that also carries a data header counts nothing,
        // as polars counts it, and is refused unless it is the chunk's first page with
        // a dictionary header (which may hold more entries than rows).
        let mut disguised = header(4);
        disguised.type_ = PageType::DICTIONARY_PAGE;
        assert!(matches!(
            page_values(&disguised, 4, true),
            Err(StructureError::BadPage)
        ));
        disguised.dictionary_page_header = Some(polars_parquet_format::DictionaryPageHeader {
            num_values: 9,
            encoding: Encoding::PLAIN,
            is_sorted: None,
        });
        assert_eq!(page_values(&disguised, 4, true).unwrap(), 0);
        assert!(matches!(
            page_values(&disguised, 4, false),
            Err(StructureError::BadPage)
        ));
    }

    #[test]
    fn sizes_out_of_bounds_are_refused() {
        assert_eq!(page_size(0).unwrap(), 0);
        assert!(page_size(-1).is_err());
        assert!(page_size(i32::MAX).is_err());
        assert!(page_size(256 << 20).is_ok());
        assert!(page_size((256 << 20) + 1).is_err());
        assert!(chunk_bytes(&[0; 8], 4, 5).is_err());
        assert!(chunk_bytes(&[0; 8], -1, 2).is_err());
        assert!(chunk_bytes(&[0; 8], i64::MAX, i64::MAX).is_err());
        assert_eq!(chunk_bytes(&[0; 8], 4, 4).unwrap().len(), 4);
    }
}
