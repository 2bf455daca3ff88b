//! Record sets: which records of a certified version each released value reads.
//!
//! A *record set* is the set of row ordinals (positions in the certified Parquet file,
//! see [`crate::sql::ORDINAL_COLUMN`]) that one aggregate value reads: the rows of its
//! group that pass its `FILTER` and have its argument not NULL. The engine computes it
//! in the same pass as the value, with the shadow aggregate `pdx_record_set(ordinal)`
//! ([`RecordSetAgg`]), into a [roaring bitmap](https://roaringbitmap.org/).
//!
//! How the sets are compared with earlier outputs is `across.rs`. Each stored set keeps
//! a *summary* for cheap comparisons: its size, smallest and largest ordinal, 64 of its
//! ordinals evenly spaced by rank, and its cardinality in each block of 65,536 ordinals
//! (a roaring container).
//!
//! # Encodings (stored; do not change without a migration)
//!
//! * **Bitmap:** the portable roaring serialisation of the set after run-length
//!   optimisation ([`RecordSet::to_bytes`]).
//! * **Hash:** `BLAKE3("pdx record set v1" || 0x00 || bitmap bytes)`, hex. Equal sets
//!   give equal bytes (the container layout is a function of the set), so equal hashes
//!   mean equal sets and the store keeps each set once per organisation and version.
//! * **Summary** (all little-endian): smallest and largest ordinal (`u32` each), the
//!   sample size (`u16`, at most 64) and the sampled ordinals (`u32` each), then per
//!   non-empty block in ascending order the block number (`ordinal >> 16`, `u16`) and
//!   `cardinality − 1` (`u16`). The size is stored next to it.

use std::any::Any;
use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BinaryArray, BooleanArray};
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, UInt32Type};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};
use roaring::RoaringBitmap;

use super::DisclosureError;
use super::dominance::selected;

/// Domain separation of [`RecordSet::hash`].
const HASH_DOMAIN: &[u8] = b"pdx record set v1";

/// The records one value reads, as row ordinals of the certified version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordSet {
    /// The ordinals.
    bitmap: RoaringBitmap,
}

impl RecordSet {
    /// The set of ordinals `0..rows` (every record of a table).
    pub fn all(rows: u32) -> Self {
        let mut bitmap = RoaringBitmap::new();
        bitmap.insert_range(0..rows);
        bitmap.optimize();
        Self { bitmap }
    }

    /// A set from ordinals (for tests and tools).
    pub fn from_ordinals(ordinals: impl IntoIterator<Item = u32>) -> Self {
        let mut bitmap: RoaringBitmap = ordinals.into_iter().collect();
        bitmap.optimize();
        Self { bitmap }
    }

    /// How many records.
    pub fn len(&self) -> u64 {
        self.bitmap.len()
    }

    /// Whether no record is in the set.
    pub fn is_empty(&self) -> bool {
        self.bitmap.is_empty()
    }

    /// Adds every record of `other`.
    pub fn union_with(&mut self, other: &RecordSet) {
        self.bitmap |= &other.bitmap;
    }

    /// Removes every record of `other`.
    pub fn difference_with(&mut self, other: &RecordSet) {
        self.bitmap -= &other.bitmap;
    }

    /// The stored encoding (see the module documentation).
    ///
    /// Sets are kept run-length optimised (constructors and [`Self::optimize`]), so equal
    /// sets serialise to equal bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.bitmap.serialized_size());
        // Writing into a Vec cannot fail.
        let _ = self.bitmap.serialize_into(&mut bytes);
        bytes
    }

    /// Brings the set back to its canonical (run-length optimised) form after
    /// [`Self::union_with`] or [`Self::difference_with`].
    pub fn optimize(&mut self) {
        self.bitmap.optimize();
    }

    /// Reads the stored encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DisclosureError> {
        RoaringBitmap::deserialize_from(bytes)
            .map(|bitmap| Self { bitmap })
            .map_err(|_| DisclosureError::Internal("a stored record set is corrupt"))
    }

    /// `BLAKE3("pdx record set v1" || 0x00 || to_bytes())`, hex.
    pub fn hash(&self) -> String {
        hash_bytes(&self.to_bytes())
    }

    /// The summary kept for cheap comparisons (see the module documentation).
    pub fn summary(&self) -> SetSummary {
        let mut blocks = Vec::new();
        let (min, max) = (self.bitmap.min(), self.bitmap.max());
        if let (Some(min), Some(max)) = (min, max) {
            for block in (min >> 16)..=(max >> 16) {
                let start = block << 16;
                let cardinality = self.bitmap.range_cardinality(start..=start | 0xFFFF);
                if cardinality > 0 {
                    // A block holds at most 65,536 ordinals, so both fit in u16.
                    blocks.push((block as u16, (cardinality - 1) as u16));
                }
            }
        }
        let len = self.len();
        let taken = len.min(SAMPLE as u64);
        let sample = (0..taken)
            .filter_map(|i| u32::try_from(i * len / taken.max(1)).ok())
            .filter_map(|rank| self.bitmap.select(rank))
            .collect();
        SetSummary {
            records: len,
            min: min.unwrap_or(0),
            max: max.unwrap_or(0),
            sample,
            blocks,
        }
    }

    /// `|self ∩ other|`.
    pub(crate) fn common(&self, other: &RecordSet) -> u64 {
        self.bitmap.intersection_len(&other.bitmap)
    }

    /// How many of its ordinals lie in `first..=last`.
    pub(crate) fn count_within(&self, first: u32, last: u32) -> u64 {
        self.bitmap.range_cardinality(first..=last)
    }

    /// Whether it holds every ordinal of `first..=last`.
    pub(crate) fn holds_span(&self, first: u32, last: u32) -> bool {
        self.bitmap.contains_range(first..=last)
    }

    /// Whether it holds `ordinal`.
    pub(crate) fn holds(&self, ordinal: u32) -> bool {
        self.bitmap.contains(ordinal)
    }
}

/// The hash of a stored bitmap encoding.
pub fn hash_bytes(bytes: &[u8]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(HASH_DOMAIN);
    hasher.update(&[0]);
    hasher.update(bytes);
    hasher.finalize().to_hex().to_string()
}

/// A fingerprint of how a set was selected (the plan below the aggregate and the
/// value's own crafted condition), so equal sets can be told apart by origin.
pub fn selection_fingerprint(parts: &[String]) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"pdx selection v1");
    for part in parts {
        hasher.update(&[0]);
        hasher.update(part.as_bytes());
    }
    hasher.finalize().to_hex().to_string()
}

/// A record set with the fingerprint of its selection.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedSet {
    /// The records.
    pub set: RecordSet,
    /// [`selection_fingerprint`] of how they were selected.
    pub selection: String,
}

/// Ordinals of a set kept in its summary, evenly spaced by rank.
const SAMPLE: usize = 64;

/// What is kept of a stored set for the first, cheap comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSummary {
    /// Cardinality of the set.
    pub records: u64,
    /// Smallest ordinal (0 for an empty set).
    pub(crate) min: u32,
    /// Largest ordinal (0 for an empty set).
    pub(crate) max: u32,
    /// Up to [`SAMPLE`] of its ordinals, evenly spaced by rank.
    pub(crate) sample: Vec<u32>,
    /// `(block, cardinality − 1)` per non-empty block, ascending.
    blocks: Vec<(u16, u16)>,
}

impl SetSummary {
    /// The stored encoding (see the module documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(10 + self.sample.len() * 4 + self.blocks.len() * 4);
        bytes.extend_from_slice(&self.min.to_le_bytes());
        bytes.extend_from_slice(&self.max.to_le_bytes());
        bytes.extend_from_slice(&(self.sample.len() as u16).to_le_bytes());
        for ordinal in &self.sample {
            bytes.extend_from_slice(&ordinal.to_le_bytes());
        }
        for (block, cardinality) in &self.blocks {
            bytes.extend_from_slice(&block.to_le_bytes());
            bytes.extend_from_slice(&cardinality.to_le_bytes());
        }
        bytes
    }

    /// Reads the stored encoding of a set of `records` records.
    pub fn from_bytes(records: u64, bytes: &[u8]) -> Result<Self, DisclosureError> {
        let corrupt = DisclosureError::Internal("a stored set summary is corrupt");
        let u32_at = |at: usize| -> Option<u32> {
            Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
        };
        let (Some(min), Some(max)) = (u32_at(0), u32_at(4)) else {
            return Err(corrupt);
        };
        let Some(taken) = bytes
            .get(8..10)
            .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
        else {
            return Err(corrupt);
        };
        let sample = (0..taken)
            .map(|i| u32_at(10 + 4 * i))
            .collect::<Option<Vec<u32>>>()
            .ok_or(DisclosureError::Internal("a stored set summary is corrupt"))?;
        let rest = bytes.get(10 + 4 * taken..).unwrap_or_default();
        if !rest.len().is_multiple_of(4) || taken > SAMPLE {
            return Err(corrupt);
        }
        let blocks = rest
            .chunks_exact(4)
            .map(|c| {
                (
                    u16::from_le_bytes([c[0], c[1]]),
                    u16::from_le_bytes([c[2], c[3]]),
                )
            })
            .collect();
        Ok(Self {
            records,
            min,
            max,
            sample,
            blocks,
        })
    }

    /// Whether no block holds more of this set than of `other`'s (necessary for
    /// `self ⊆ other`); stops at the first block that does.
    pub(crate) fn fits_within(&self, other: &SetSummary) -> bool {
        let mut theirs = other.blocks.iter().peekable();
        for (block, cardinality) in &self.blocks {
            while theirs.next_if(|(b, _)| b < block).is_some() {}
            match theirs.peek() {
                Some((b, c)) if b == block && c >= cardinality => {}
                _ => return false,
            }
        }
        true
    }

    /// Whether the set is one interval of ordinals.
    pub(crate) fn is_interval(&self) -> bool {
        // `checked_sub`: a corrupt stored summary may have `max < min`.
        self.records > 0
            && self
                .max
                .checked_sub(self.min)
                .is_some_and(|span| self.records == u64::from(span) + 1)
    }
}

/// `pdx_record_set(ordinal)`: the roaring bitmap of the ordinals a group reads, as
/// bytes. Its argument is a row ordinal (`UInt32`); partial states (`Binary`, the
/// bitmaps of partial aggregation) are unioned. Never offered to the developer's SQL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RecordSetAgg {
    /// One argument: `UInt32` or `Binary`.
    signature: Signature,
}

impl RecordSetAgg {
    /// The aggregate function.
    pub(crate) fn udaf() -> Arc<AggregateUDF> {
        Arc::new(AggregateUDF::from(Self {
            signature: Signature::uniform(
                1,
                vec![DataType::UInt32, DataType::Binary],
                Volatility::Immutable,
            ),
        }))
    }
}

impl AggregateUDFImpl for RecordSetAgg {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        "pdx_record_set"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Binary)
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        Ok(Box::new(OneSet::default()))
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        true
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(GroupSets::default()))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "set"),
            DataType::Binary,
            true,
        ))])
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(Some(RecordSet::default().to_bytes())))
    }
}

/// Adds an ordinal; ordinals mostly arrive in ascending order, which `try_push` takes
/// without a search.
fn add(bitmap: &mut RoaringBitmap, ordinal: u32) {
    if bitmap.try_push(ordinal).is_err() {
        bitmap.insert(ordinal);
    }
}

/// Unions a serialised bitmap into `bitmap`.
fn merge_bytes(bitmap: &mut RoaringBitmap, bytes: &[u8]) -> Result<()> {
    match RoaringBitmap::deserialize_from(bytes) {
        Ok(other) => {
            *bitmap |= other;
            Ok(())
        }
        Err(_) => internal_err!("pdx_record_set: a partial set is corrupt"),
    }
}

/// Serialises a bitmap for the result or the state.
fn bitmap_bytes(mut bitmap: RoaringBitmap) -> Vec<u8> {
    bitmap.optimize();
    RecordSet { bitmap }.to_bytes()
}

/// One group's set (aggregates without GROUP BY).
#[derive(Debug, Default)]
struct OneSet {
    /// The ordinals so far.
    bitmap: RoaringBitmap,
    /// Ordinals added, for the memory estimate.
    added: usize,
}

impl Accumulator for OneSet {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(values) = values.first() else {
            return internal_err!("pdx_record_set needs one argument");
        };
        if let Some(ordinals) = values.as_primitive_opt::<UInt32Type>() {
            for ordinal in ordinals.iter().flatten() {
                add(&mut self.bitmap, ordinal);
            }
            self.added += ordinals.len();
            return Ok(());
        }
        match values.as_binary_opt::<i32>() {
            Some(sets) => {
                for bytes in sets.iter().flatten() {
                    merge_bytes(&mut self.bitmap, bytes)?;
                    self.added += bytes.len() / 2;
                }
                Ok(())
            }
            None => internal_err!("pdx_record_set: unexpected argument type"),
        }
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(Some(bitmap_bytes(std::mem::take(
            &mut self.bitmap,
        )))))
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.added.saturating_mul(2)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![self.evaluate()?])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.update_batch(states)
    }
}

/// Sets of many groups at once.
#[derive(Debug, Default)]
struct GroupSets {
    /// One bitmap per group.
    sets: Vec<RoaringBitmap>,
    /// Ordinals added, for the memory estimate.
    added: usize,
}

impl GroupSets {
    /// Adds `values` (ordinals or serialised sets) to the groups `group_indices`.
    fn add_all(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let Some(values) = values.first() else {
            return internal_err!("pdx_record_set needs one argument");
        };
        if self.sets.len() < total_num_groups {
            self.sets.resize_with(total_num_groups, RoaringBitmap::new);
        }
        if let Some(ordinals) = values.as_primitive_opt::<UInt32Type>() {
            if ordinals.null_count() == 0 && opt_filter.is_none() {
                for (&group, &ordinal) in group_indices.iter().zip(ordinals.values().iter()) {
                    add(&mut self.sets[group], ordinal);
                }
            } else {
                for (i, (&group, ordinal)) in group_indices.iter().zip(ordinals.iter()).enumerate()
                {
                    if let Some(ordinal) = ordinal.filter(|_| selected(opt_filter, i)) {
                        add(&mut self.sets[group], ordinal);
                    }
                }
            }
            self.added += ordinals.len();
            return Ok(());
        }
        let Some(sets) = values.as_binary_opt::<i32>() else {
            return internal_err!("pdx_record_set: unexpected argument type");
        };
        for (i, (&group, bytes)) in group_indices.iter().zip(sets.iter()).enumerate() {
            if let Some(bytes) = bytes.filter(|_| selected(opt_filter, i)) {
                merge_bytes(&mut self.sets[group], bytes)?;
                self.added += bytes.len() / 2;
            }
        }
        Ok(())
    }

    /// The first groups (or all), serialised.
    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        let sets = emit_to.take_needed(&mut self.sets);
        let bytes: Vec<Vec<u8>> = sets.into_iter().map(bitmap_bytes).collect();
        Arc::new(BinaryArray::from_iter_values(bytes.iter()))
    }
}

impl GroupsAccumulator for GroupSets {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.add_all(values, group_indices, opt_filter, total_num_groups)
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        Ok(self.emit(emit_to))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![self.emit(emit_to)])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.add_all(values, group_indices, opt_filter, total_num_groups)
    }

    fn size(&self) -> usize {
        size_of::<Self>()
            + self.sets.capacity() * size_of::<RoaringBitmap>()
            + self.added.saturating_mul(2)
    }
}

/// The record set in a `pdx_record_set` result cell (`None` for NULL).
pub(crate) fn set_at(column: &dyn Array, row: usize) -> Result<Option<RecordSet>, DisclosureError> {
    let Some(sets) = column.as_binary_opt::<i32>() else {
        return Err(DisclosureError::Internal(
            "a record-set column is not binary",
        ));
    };
    if row >= sets.len() || sets.is_null(row) {
        return Ok(None);
    }
    RecordSet::from_bytes(sets.value(row)).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_round_trip_and_equal_sets_hash_equal() {
        let a = RecordSet::from_ordinals((0..70_000).chain(100_000..100_005));
        let bytes = a.to_bytes();
        assert_eq!(RecordSet::from_bytes(&bytes).unwrap(), a);
        let b = RecordSet::from_ordinals((100_000..100_005).chain(0..70_000));
        assert_eq!(a.hash(), b.hash());
        assert_ne!(a.hash(), RecordSet::from_ordinals(0..70_000).hash());
        let summary = a.summary();
        assert_eq!(summary.records, 70_005);
        let again = SetSummary::from_bytes(summary.records, &summary.to_bytes()).unwrap();
        assert_eq!(again, summary);
        assert!(RecordSet::from_bytes(b"not a bitmap").is_err());
        assert!(SetSummary::from_bytes(1, b"abc").is_err());
    }

    #[test]
    fn summaries_give_necessary_conditions_for_nesting() {
        let odd = RecordSet::from_ordinals((0..300_000).filter(|o| o % 2 == 1));
        let third = RecordSet::from_ordinals((0..300_000).filter(|o| o % 3 == 1));
        let (a, b) = (odd.summary(), third.summary());
        // The larger set cannot fit in the smaller one; the smaller fits block by
        // block although it is not inside (the condition is only necessary).
        assert!(!a.fits_within(&b));
        assert!(b.fits_within(&a) && third.common(&odd) < third.len());
        let inner = RecordSet::from_ordinals((0..300_000).filter(|o| o % 6 == 1));
        assert!(inner.summary().fits_within(&a) && inner.summary().fits_within(&b));
        assert!(RecordSet::from_ordinals(5..20).summary().is_interval());
        assert!(!third.summary().is_interval());
        assert_eq!(a.sample.len(), 64);
        assert!(a.sample.iter().all(|o| odd.holds(*o)));
    }
}
