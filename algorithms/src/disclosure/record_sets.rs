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
use roaring::{MultiOps, RoaringBitmap};

use super::DisclosureError;
use super::dominance::selected;

/// Domain separation of [`RecordSet::hash`].
const HASH_DOMAIN: &[u8] = b"pdx record set v1";

/// The records one value reads, as row ordinals of the certified version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordSet {
    /// The ordinals; shared, so that copies (earlier sets handed out, released sets
    /// returned) cost nothing: a change copies first unless this is the only one.
    bitmap: Arc<RoaringBitmap>,
}

impl RecordSet {
    /// The set of a bitmap.
    fn of(bitmap: RoaringBitmap) -> Self {
        Self {
            bitmap: Arc::new(bitmap),
        }
    }

    /// The set of ordinals `0..rows` (every record of a table).
    pub fn all(rows: u32) -> Self {
        let mut bitmap = RoaringBitmap::new();
        bitmap.insert_range(0..rows);
        bitmap.optimize();
        Self::of(bitmap)
    }

    /// A set from ordinals (for tests and tools).
    pub fn from_ordinals(ordinals: impl IntoIterator<Item = u32>) -> Self {
        let mut bitmap: RoaringBitmap = ordinals.into_iter().collect();
        bitmap.optimize();
        Self::of(bitmap)
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
        *Arc::make_mut(&mut self.bitmap) |= &*other.bitmap;
    }

    /// The union of `sets`, in canonical form. One pass over all of them (roaring's
    /// `MultiOps`: a block shared by several sets becomes one bitmap container that each
    /// ORs into), where adding them one by one would merge ever longer arrays per block.
    pub fn union_of<'a>(sets: impl IntoIterator<Item = &'a RecordSet>) -> Self {
        let mut bitmap = sets.into_iter().map(|set| &*set.bitmap).union();
        bitmap.optimize();
        Self::of(bitmap)
    }

    /// Removes every record of `other`.
    pub fn difference_with(&mut self, other: &RecordSet) {
        *Arc::make_mut(&mut self.bitmap) -= &*other.bitmap;
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
        Arc::make_mut(&mut self.bitmap).optimize();
    }

    /// Reads the stored encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DisclosureError> {
        RoaringBitmap::deserialize_from(bytes)
            .map(Self::of)
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

    /// Whether either set has run containers. roaring's tests that stop early walk a
    /// bitmap container record by record against a run container, which can cost far
    /// more than counting the intersection; with runs, the tests below count instead.
    fn has_runs(&self) -> bool {
        self.bitmap.statistics().n_run_containers > 0
    }

    /// `common(other) == 0`, stopping at the first shared record (without run
    /// containers on either side).
    pub(crate) fn is_disjoint(&self, other: &RecordSet) -> bool {
        match (
            self.bitmap.min().zip(self.bitmap.max()),
            other.bitmap.min().zip(other.bitmap.max()),
        ) {
            (Some((first, last)), Some((other_first, other_last))) => {
                if last < other_first || other_last < first {
                    return true;
                }
            }
            // An empty set shares nothing.
            _ => return true,
        }
        if self.has_runs() || other.has_runs() {
            self.common(other) == 0
        } else {
            self.bitmap.is_disjoint(&other.bitmap)
        }
    }

    /// `common(other) == len()` (every record of `self` is in `other`), stopping at the
    /// first record outside (without run containers on either side).
    pub(crate) fn is_subset(&self, other: &RecordSet) -> bool {
        if self.has_runs() || other.has_runs() {
            self.common(other) == self.len()
        } else {
            self.bitmap.is_subset(&other.bitmap)
        }
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

    /// Its ordinals, ascending (for tests).
    #[cfg(test)]
    pub(crate) fn bitmap_ordinals(&self) -> Vec<u32> {
        self.bitmap.iter().collect()
    }

    /// Smallest and largest ordinal (none for an empty set).
    pub(crate) fn bounds(&self) -> Option<(u32, u32)> {
        self.bitmap.min().zip(self.bitmap.max())
    }

    /// The ordinals of the bits set in `bits`: bit `i` of byte `j` is ordinal
    /// `offset + 8j + i` (`offset + 8 · bits.len() − 1` must fit in `u32`).
    pub(crate) fn from_bits(offset: u32, bits: &[u8]) -> Self {
        Self::of(RoaringBitmap::from_lsb0_bytes(offset, bits))
    }
}

/// A set as one bit per ordinal over its span, for counting its intersection with many
/// much smaller sets: each count then reads only the small set's ordinals (a bit test
/// each), where roaring's intersection of two arrays walks both, the large one whole,
/// every time. Exact either way; only the cost differs.
#[derive(Debug)]
pub(crate) struct DenseSet {
    /// The ordinal of bit 0 (the first ordinal of the set's first block).
    first: u32,
    /// The bits, 64 ordinals a word.
    words: Vec<u64>,
}

impl DenseSet {
    /// The dense form of `set` (one bit per ordinal from its first block to its last).
    pub(crate) fn of(set: &RecordSet) -> Self {
        let Some((min, max)) = set.bounds() else {
            return Self {
                first: 0,
                words: Vec::new(),
            };
        };
        let first = min & !0xFFFF;
        let span = (max - first) as usize + 1;
        let mut words = vec![0u64; span.div_ceil(64)];
        for ordinal in set.bitmap.iter() {
            let at = (ordinal - first) as usize;
            words[at >> 6] |= 1u64 << (at & 63);
        }
        Self { first, words }
    }

    /// `|self ∩ other|`.
    pub(crate) fn common(&self, other: &RecordSet) -> u64 {
        let mut shared = 0u64;
        for ordinal in other.bitmap.iter() {
            let Some(at) = ordinal.checked_sub(self.first) else {
                continue;
            };
            let at = at as usize;
            match self.words.get(at >> 6) {
                Some(word) => shared += (word >> (at & 63)) & 1,
                // Ordinals come in ascending order: the rest lie beyond too.
                None => break,
            }
        }
        shared
    }

    /// Whether counting `small` against the dense form beats roaring's intersection
    /// with `large`: `small` much smaller, `large` without run containers (a run
    /// container's intersection is a few binary searches).
    pub(crate) fn pays_off(large: &RecordSet, small_records: u64) -> bool {
        small_records.saturating_mul(16) < large.len() && !large.has_runs()
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

    /// For `inner ⊆ self`: whether no block holds more of `self ∖ inner` (there,
    /// `self`'s count minus `inner`'s) than of `other`'s (necessary for
    /// `self ∖ inner ⊆ other`); stops at the first block that does.
    pub(crate) fn difference_fits_within(&self, inner: &SetSummary, other: &SetSummary) -> bool {
        let mut inside = inner.blocks.iter().peekable();
        let mut theirs = other.blocks.iter().peekable();
        for (block, cardinality) in &self.blocks {
            let here = u32::from(*cardinality) + 1;
            while inside.next_if(|(b, _)| b < block).is_some() {}
            let taken = match inside.peek() {
                Some((b, c)) if b == block => u32::from(*c) + 1,
                _ => 0,
            };
            let left = here.saturating_sub(taken);
            if left == 0 {
                continue;
            }
            while theirs.next_if(|(b, _)| b < block).is_some() {}
            match theirs.peek() {
                Some((b, c)) if b == block && u32::from(*c) + 1 >= left => {}
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

/// Values of a roaring block kept as a sorted array (above: a bitmap).
const ARRAY_LIMIT: usize = 4096;

/// One block of 65,536 ordinals of a set under construction, as roaring keeps it
/// before `optimize`: its low 16 bits, sorted, up to [`ARRAY_LIMIT`] values, a bitmap
/// above.
#[derive(Debug)]
enum Block {
    /// Up to [`ARRAY_LIMIT`] values.
    Array(u16, Vec<u16>),
    /// More: the bits and how many.
    Bitmap(u16, Box<[u64; 1024]>, u32),
}

impl Block {
    /// The block of `values` (strictly ascending low bits) of block `key`.
    fn of(key: u16, values: &[u16]) -> Self {
        if values.len() <= ARRAY_LIMIT {
            return Block::Array(key, values.to_vec());
        }
        let mut words = Box::new([0u64; 1024]);
        for &value in values {
            words[usize::from(value >> 6)] |= 1u64 << (value & 63);
        }
        Block::Bitmap(key, words, values.len() as u32)
    }

    /// Its key and cardinality.
    fn head(&self) -> (u16, usize) {
        match self {
            Block::Array(key, values) => (*key, values.len()),
            Block::Bitmap(key, _, cardinality) => (*key, *cardinality as usize),
        }
    }

    /// Its maximal runs of consecutive values, as `(first, last)`.
    fn runs(&self) -> Vec<(u16, u16)> {
        let mut runs: Vec<(u16, u16)> = Vec::new();
        let mut extend = |value: u16| match runs.last_mut() {
            Some((_, last)) if u32::from(*last) + 1 == u32::from(value) => *last = value,
            _ => runs.push((value, value)),
        };
        match self {
            Block::Array(_, values) => values.iter().for_each(|v| extend(*v)),
            Block::Bitmap(_, words, _) => {
                for (w, &word) in words.iter().enumerate() {
                    let mut bits = word;
                    while bits != 0 {
                        let bit = bits.trailing_zeros() as u16;
                        extend(((w as u16) << 6) | bit);
                        bits &= bits - 1;
                    }
                }
            }
        }
        runs
    }

    /// Whether its runs take fewer bytes than its container (`2 + 4r` against `2c` for
    /// an array of `c` values, 8,192 for a bitmap; a tie keeps the container), as
    /// roaring's `optimize` decides. Runs are counted (as roaring's `count_runs`) only
    /// until they reach that size: scattered ordinals, the usual case, settle it after
    /// half of an array instead of all of it.
    fn runs_pay(&self) -> bool {
        match self {
            Block::Array(_, values) => {
                // Runs pay while `r < limit`; `r` starts at 1 and grows at each gap.
                let limit = (2 * values.len()).saturating_sub(2).div_ceil(4);
                let mut runs = 1usize;
                for pair in values.windows(2) {
                    if pair[1] != pair[0] + 1 {
                        runs += 1;
                        if runs >= limit {
                            return false;
                        }
                    }
                }
                runs < limit
            }
            Block::Bitmap(_, words, _) => {
                // `2 + 4r < 8192` is `r ≤ 2047`. A run starts at each set bit whose
                // predecessor is clear.
                const LIMIT: u64 = 2048;
                let mut carry = 0u64;
                let mut runs = 0u64;
                for &word in words.iter() {
                    let starts = word & !((word << 1) | carry);
                    runs += u64::from(starts.count_ones());
                    if runs >= LIMIT {
                        return false;
                    }
                    carry = word >> 63;
                }
                true
            }
        }
    }

    /// Appends its values as a container of the portable serialisation (array or
    /// bitmap).
    fn write(&self, bytes: &mut Vec<u8>) {
        match self {
            Block::Array(_, values) => {
                let start = bytes.len();
                bytes.resize(start + 2 * values.len(), 0);
                for (slot, value) in bytes[start..].chunks_exact_mut(2).zip(values) {
                    slot.copy_from_slice(&value.to_le_bytes());
                }
            }
            Block::Bitmap(_, words, _) => {
                let start = bytes.len();
                bytes.resize(start + 8 * words.len(), 0);
                for (slot, word) in bytes[start..].chunks_exact_mut(8).zip(words.iter()) {
                    slot.copy_from_slice(&word.to_le_bytes());
                }
            }
        }
    }
}

/// A set under construction. Ordinals mostly arrive in ascending order (a scan numbers
/// its rows in order): those fill the current block, kept as plain low bits, and each
/// block is closed when a later one starts, so adding an ordinal is a push instead of a
/// call into a bitmap. An ordinal out of that order, and merged partial sets, go to a
/// roaring bitmap beside.
///
/// Exactness: the set is the union of the three. Its bytes are [`bitmap_bytes`] of
/// the set with the container kinds inserting one by one gives (blocks as roaring keeps
/// them before `optimize`; run containers only where a merged partial set brought one,
/// as before), written directly when nothing went beside ([`blocks_bytes`] applies
/// roaring's `optimize` rules and serialisation), otherwise through roaring.
#[derive(Debug, Default)]
struct SetBuilder {
    /// Closed blocks, ascending.
    blocks: Vec<Block>,
    /// The current block's key, while `current` is not empty.
    key: u16,
    /// The current block's low bits, strictly ascending.
    current: Vec<u16>,
    /// Ordinals out of order and merged partial sets.
    beside: RoaringBitmap,
}

impl SetBuilder {
    /// Adds `ordinal` when it continues the current block and the buffer has room (no
    /// allocation, so nothing for the memory estimate); otherwise changes nothing and
    /// says so ([`Self::add`] then does the rest).
    #[inline(always)]
    fn push_fast(&mut self, ordinal: u32) -> bool {
        let (key, low) = ((ordinal >> 16) as u16, ordinal as u16);
        match self.current.last() {
            Some(&last)
                if key == self.key
                    && low > last
                    && self.current.len() < self.current.capacity() =>
            {
                self.current.push(low);
                true
            }
            _ => false,
        }
    }

    /// Adds an ordinal.
    #[inline]
    fn add(&mut self, ordinal: u32) {
        let (key, low) = ((ordinal >> 16) as u16, ordinal as u16);
        match self.current.last() {
            Some(&last) if key == self.key && low > last => self.current.push(low),
            _ => self.start(key, low, ordinal),
        }
    }

    /// `add` where the ordinal does not continue the current block.
    #[inline(never)]
    fn start(&mut self, key: u16, low: u16, ordinal: u32) {
        let after = match (self.current.is_empty(), self.blocks.last()) {
            (false, _) => key > self.key,
            (true, Some(block)) => key > block.head().0,
            (true, None) => true,
        };
        if !after {
            self.beside.insert(ordinal);
            return;
        }
        self.close();
        self.key = key;
        self.current.push(low);
    }

    /// Closes the current block (its buffer keeps its capacity).
    fn close(&mut self) {
        if !self.current.is_empty() {
            self.blocks.push(Block::of(self.key, &self.current));
            self.current.clear();
        }
    }

    /// Unions a serialised (partial) set.
    fn merge(&mut self, bytes: &[u8]) -> Result<()> {
        merge_bytes(&mut self.beside, bytes)
    }

    /// Bytes the current block's buffer holds on to.
    fn buffered(&self) -> usize {
        self.current.capacity() * size_of::<u16>()
    }

    /// The stored encoding of the set ([`bitmap_bytes`]).
    fn into_bytes(mut self) -> Vec<u8> {
        self.close();
        if self.beside.is_empty() {
            return blocks_bytes(&self.blocks);
        }
        let mut bitmap = blocks_bitmap(&self.blocks);
        bitmap |= self.beside;
        bitmap_bytes(bitmap)
    }
}

/// The bitmap of `blocks` (ascending keys), with their container kinds: written in the
/// portable serialisation without run containers and read back.
fn blocks_bitmap(blocks: &[Block]) -> RoaringBitmap {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&12346u32.to_le_bytes());
    bytes.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
    for block in blocks {
        let (key, cardinality) = block.head();
        bytes.extend_from_slice(&key.to_le_bytes());
        bytes.extend_from_slice(&((cardinality - 1) as u16).to_le_bytes());
    }
    let mut offset = 8 + 8 * blocks.len();
    for block in blocks {
        bytes.extend_from_slice(&(offset as u32).to_le_bytes());
        offset += match block {
            Block::Array(_, values) => 2 * values.len(),
            Block::Bitmap(..) => 8192,
        };
    }
    for block in blocks {
        block.write(&mut bytes);
    }
    // The reader checks what it reads, so a block that is not as described cannot give
    // a wrong set: it fails, and the values are inserted instead.
    RoaringBitmap::deserialize_from(bytes.as_slice()).unwrap_or_else(|_| {
        let mut bitmap = RoaringBitmap::new();
        for block in blocks {
            let base = u32::from(block.head().0) << 16;
            match block {
                Block::Array(_, values) => {
                    bitmap.extend(values.iter().map(|v| base | u32::from(*v)));
                }
                Block::Bitmap(_, words, _) => {
                    for (w, &word) in words.iter().enumerate() {
                        for bit in 0..64 {
                            if (word >> bit) & 1 == 1 {
                                bitmap.insert(base | ((w as u32) << 6) | bit);
                            }
                        }
                    }
                }
            }
        }
        bitmap
    })
}

/// [`bitmap_bytes`] of the set of `blocks` (ascending keys, as roaring keeps them before
/// `optimize`), written directly: `optimize` turns a block into runs when they take
/// fewer bytes (an array of `c` values takes `2c`, a bitmap 8,192, `r` runs `2 + 4r`;
/// a tie keeps the array or bitmap), then roaring's portable serialisation (with run
/// containers: the cookie holds the count, a bitset marks the runs, offsets only from
/// four containers on).
fn blocks_bytes(blocks: &[Block]) -> Vec<u8> {
    // Per block: its runs when it becomes a run container.
    let runs: Vec<Option<Vec<(u16, u16)>>> = blocks
        .iter()
        .map(|block| block.runs_pay().then(|| block.runs()))
        .collect();
    let size = blocks.len();
    let with_runs = runs.iter().any(Option::is_some);
    let data: usize = blocks
        .iter()
        .zip(&runs)
        .map(|(block, run)| match (block, run) {
            (_, Some(run)) => 2 + 4 * run.len(),
            (Block::Array(_, values), None) => 2 * values.len(),
            (Block::Bitmap(..), None) => 8192,
        })
        .sum();
    let mut bytes = Vec::with_capacity(8 + 9 * size + data);
    if with_runs {
        let cookie = 12347u32 | ((size as u32 - 1) << 16);
        bytes.extend_from_slice(&cookie.to_le_bytes());
        let mut marks = vec![0u8; size.div_ceil(8)];
        for (i, run) in runs.iter().enumerate() {
            if run.is_some() {
                marks[i / 8] |= 1 << (i % 8);
            }
        }
        bytes.extend_from_slice(&marks);
    } else {
        bytes.extend_from_slice(&12346u32.to_le_bytes());
        bytes.extend_from_slice(&(size as u32).to_le_bytes());
    }
    for block in blocks {
        let (key, cardinality) = block.head();
        bytes.extend_from_slice(&key.to_le_bytes());
        bytes.extend_from_slice(&((cardinality - 1) as u16).to_le_bytes());
    }
    if !with_runs || size >= 4 {
        let mut offset = if with_runs {
            4 + 8 * size + size.div_ceil(8)
        } else {
            8 + 8 * size
        };
        for (block, run) in blocks.iter().zip(&runs) {
            bytes.extend_from_slice(&(offset as u32).to_le_bytes());
            offset += match (block, run) {
                (_, Some(run)) => 2 + 4 * run.len(),
                (Block::Array(_, values), None) => 2 * values.len(),
                (Block::Bitmap(..), None) => 8192,
            };
        }
    }
    for (block, run) in blocks.iter().zip(&runs) {
        match run {
            Some(run) => {
                bytes.extend_from_slice(&(run.len() as u16).to_le_bytes());
                for (first, last) in run {
                    bytes.extend_from_slice(&first.to_le_bytes());
                    bytes.extend_from_slice(&(last - first).to_le_bytes());
                }
            }
            None => block.write(&mut bytes),
        }
    }
    bytes
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
    RecordSet::of(bitmap).to_bytes()
}

/// One group's set (aggregates without GROUP BY).
#[derive(Debug, Default)]
struct OneSet {
    /// The ordinals so far.
    set: SetBuilder,
    /// Ordinals added, for the memory estimate.
    added: usize,
}

impl Accumulator for OneSet {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(values) = values.first() else {
            return internal_err!("pdx_record_set needs one argument");
        };
        if let Some(ordinals) = values.as_primitive_opt::<UInt32Type>() {
            if ordinals.null_count() == 0 {
                for &ordinal in ordinals.values().iter() {
                    self.set.add(ordinal);
                }
            } else {
                for ordinal in ordinals.iter().flatten() {
                    self.set.add(ordinal);
                }
            }
            self.added += ordinals.len();
            return Ok(());
        }
        match values.as_binary_opt::<i32>() {
            Some(sets) => {
                for bytes in sets.iter().flatten() {
                    self.set.merge(bytes)?;
                    self.added += bytes.len() / 2;
                }
                Ok(())
            }
            None => internal_err!("pdx_record_set: unexpected argument type"),
        }
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Binary(Some(
            std::mem::take(&mut self.set).into_bytes(),
        )))
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.added.saturating_mul(2) + self.set.buffered()
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
    /// One set per group.
    sets: Vec<SetBuilder>,
    /// Ordinals added, for the memory estimate.
    added: usize,
    /// Bytes the sets' buffers hold on to ([`SetBuilder::buffered`]).
    buffered: usize,
}

impl GroupSets {
    /// Adds `ordinal` to group `group` (in range: `add_all` sized `sets`).
    #[inline]
    fn add_one(&mut self, group: usize, ordinal: u32) {
        let set = &mut self.sets[group];
        let before = set.current.capacity();
        set.add(ordinal);
        let after = set.current.capacity();
        if after != before {
            // A buffer only grows until its set is emitted.
            self.buffered += (after - before) * size_of::<u16>();
        }
    }

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
            self.sets.resize_with(total_num_groups, SetBuilder::default);
        }
        if let Some(ordinals) = values.as_primitive_opt::<UInt32Type>() {
            match opt_filter {
                None if ordinals.null_count() == 0 => {
                    for (&group, &ordinal) in group_indices.iter().zip(ordinals.values().iter()) {
                        if !self.sets[group].push_fast(ordinal) {
                            self.add_one(group, ordinal);
                        }
                    }
                }
                None => {
                    for (&group, ordinal) in group_indices.iter().zip(ordinals.iter()) {
                        if let Some(ordinal) = ordinal {
                            self.add_one(group, ordinal);
                        }
                    }
                }
                // No row passes the FILTER (e.g. the rows where a NOT NULL column is
                // NULL): nothing to add.
                Some(filter) if filter.true_count() == 0 => {}
                // Only the rows whose FILTER is true (valid and set), as `selected`.
                Some(filter) => {
                    let rows = group_indices.len().min(ordinals.len());
                    for i in filter.values().set_indices() {
                        // Ascending; rows beyond the batch are not rows.
                        if i >= rows {
                            break;
                        }
                        if filter.is_valid(i) && ordinals.is_valid(i) {
                            self.add_one(group_indices[i], ordinals.value(i));
                        }
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
                self.sets[group].merge(bytes)?;
                self.added += bytes.len() / 2;
            }
        }
        Ok(())
    }

    /// The first groups (or all), serialised.
    fn emit(&mut self, emit_to: EmitTo) -> ArrayRef {
        let sets = emit_to.take_needed(&mut self.sets);
        let released: usize = sets.iter().map(SetBuilder::buffered).sum();
        self.buffered = self.buffered.saturating_sub(released);
        let bytes: Vec<Vec<u8>> = sets.into_iter().map(SetBuilder::into_bytes).collect();
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
            + self.sets.capacity() * size_of::<SetBuilder>()
            + self.added.saturating_mul(2)
            + self.buffered
    }
}

/// The record set in a `pdx_record_set` result cell with its stored encoding (`None`
/// for NULL). The bytes are what [`RecordSet::to_bytes`] gives for the set: roaring
/// wrote them (`bitmap_bytes`, or `blocks_bytes`, which writes the same), and reading
/// keeps every container as written.
pub(crate) fn set_and_bytes_at(
    column: &dyn Array,
    row: usize,
) -> Result<Option<(RecordSet, &[u8])>, DisclosureError> {
    let Some(sets) = column.as_binary_opt::<i32>() else {
        return Err(DisclosureError::Internal(
            "a record-set column is not binary",
        ));
    };
    if row >= sets.len() || sets.is_null(row) {
        return Ok(None);
    }
    let bytes = sets.value(row);
    RecordSet::from_bytes(bytes).map(|set| Some((set, bytes)))
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
    use datafusion::arrow::array::UInt32Array;

    /// A fixed xorshift generator for the randomised comparisons.
    struct Draws(u64);

    impl Draws {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n.max(1)
        }

        /// Mostly ascending ordinals of a random density, with runs, a few out of
        /// order and a few repeated (as a scan, a filter or a merge may give them).
        fn ordinals(&mut self, len: usize) -> Vec<u32> {
            let mode = self.below(5);
            let mut at = self.below(200_000) as u32;
            let mut out = Vec::with_capacity(len);
            for _ in 0..len {
                let step = match mode {
                    0 => 1,
                    1 => 1 + self.below(3) as u32,
                    2 => 1 + self.below(40) as u32,
                    3 if self.below(10) == 0 => 1 + self.below(5000) as u32,
                    _ => 1 + self.below(2) as u32,
                };
                at = at.saturating_add(step);
                let ordinal = if self.below(500) == 0 {
                    at.saturating_sub(self.below(3000) as u32)
                } else {
                    at
                };
                out.push(ordinal);
                if self.below(1000) == 0 {
                    out.push(ordinal);
                }
            }
            out
        }
    }

    #[test]
    fn a_dense_set_counts_every_intersection_as_roaring_does() {
        let mut draws = Draws(0x2545_F491_4F6C_DD1D);
        for _ in 0..200 {
            let lengths = [0, 1, 40, 700, 5000, 70_000];
            let (large_len, small_len) = (draws.below(6) as usize, draws.below(6) as usize);
            let large = RecordSet::from_ordinals(draws.ordinals(lengths[large_len]));
            let small = RecordSet::from_ordinals(draws.ordinals(lengths[small_len]));
            let dense = DenseSet::of(&large);
            assert_eq!(dense.common(&small), large.common(&small));
            assert_eq!(DenseSet::of(&small).common(&large), small.common(&large));
        }
        // Sets far apart, and the empty set on either side.
        let low = RecordSet::from_ordinals(0..100);
        let high = RecordSet::from_ordinals(1_000_000..1_000_100);
        assert_eq!(DenseSet::of(&high).common(&low), 0);
        assert_eq!(DenseSet::of(&low).common(&high), 0);
        assert_eq!(DenseSet::of(&RecordSet::default()).common(&low), 0);
        assert_eq!(DenseSet::of(&low).common(&RecordSet::default()), 0);
    }

    /// How sets were built before `SetBuilder`: one ordinal at a time.
    fn add_one_by_one(bitmap: &mut RoaringBitmap, ordinal: u32) {
        if bitmap.try_push(ordinal).is_err() {
            bitmap.insert(ordinal);
        }
    }

    #[test]
    fn a_set_builder_gives_the_bytes_of_inserting_one_by_one() {
        let mut draws = Draws(0x9E37_79B9_7F4A_7C15);
        for round in 0..300 {
            let len = [0, 1, 3, 50, 700, 4096, 4097, 9000, 70_000][draws.below(9) as usize];
            let (mut merged_before, mut merged_now) = (RoaringBitmap::new(), SetBuilder::default());
            let (mut mixed_before, mut mixed_now) = (RoaringBitmap::new(), SetBuilder::default());
            for _ in 0..1 + draws.below(3) {
                // A partial state, as `state` serialises it.
                let ordinals = draws.ordinals(len);
                let mut before = RoaringBitmap::new();
                let mut now = SetBuilder::default();
                for &o in &ordinals {
                    add_one_by_one(&mut before, o);
                    now.add(o);
                }
                let (before, now) = (bitmap_bytes(before), now.into_bytes());
                assert_eq!(before, now, "round {round}");
                // States merged, alone and between ordinals.
                merge_bytes(&mut merged_before, &before).unwrap();
                merged_now.merge(&now).unwrap();
                let extra = draws.ordinals(300);
                for &o in &extra {
                    add_one_by_one(&mut mixed_before, o);
                    mixed_now.add(o);
                }
                merge_bytes(&mut mixed_before, &before).unwrap();
                mixed_now.merge(&now).unwrap();
            }
            assert_eq!(
                bitmap_bytes(merged_before),
                merged_now.into_bytes(),
                "round {round}"
            );
            let tail = draws.ordinals(2000);
            for &o in &tail {
                add_one_by_one(&mut mixed_before, o);
                mixed_now.add(o);
            }
            assert_eq!(
                bitmap_bytes(mixed_before),
                mixed_now.into_bytes(),
                "round {round}"
            );
        }
        // Blocks where a run and an array take the same bytes ({k, k+1, k+2}), alone
        // and next to a merged run container: the kind chosen is the same.
        for shape in 0..40u32 {
            let ordinals: Vec<u32> = (0..1 + shape % 9)
                .flat_map(|r| {
                    let first = r * 100 + shape * 65_536;
                    [first, first + 1, first + 2]
                })
                .collect();
            let mut runs = RoaringBitmap::new();
            runs.insert_range(shape * 65_536 + 5000..shape * 65_536 + 5100);
            let runs = bitmap_bytes(runs);
            for merge_first in [false, true] {
                let (mut before, mut now) = (RoaringBitmap::new(), SetBuilder::default());
                if merge_first {
                    merge_bytes(&mut before, &runs).unwrap();
                    now.merge(&runs).unwrap();
                }
                for &o in &ordinals {
                    add_one_by_one(&mut before, o);
                    now.add(o);
                }
                assert_eq!(bitmap_bytes(before), now.into_bytes());
            }
        }
    }

    #[test]
    fn blocks_give_the_bitmap_and_bytes_of_their_set() {
        let mut draws = Draws(7);
        let runs_of_three = |runs: u32| (0..runs).flat_map(|r| [4 * r, 4 * r + 1, 4 * r + 2]);
        for round in 0..300 {
            let len = draws.below(100_000) as usize;
            let mut ordinals = draws.ordinals(len);
            match round % 5 {
                // Long runs, full blocks.
                0 => {
                    let first = draws.below(1 << 20) as u32;
                    ordinals.extend(first..first + draws.below(140_000) as u32);
                }
                // A run and an array of equal size ({k, k+1, k+2}; 5 values in 2 runs).
                1 => ordinals.extend([5 << 16, (5 << 16) + 1, (5 << 16) + 2, 6 << 16]),
                2 => ordinals.extend([7 << 16, (7 << 16) + 1, (7 << 16) + 2, (7 << 16) + 9]),
                // Bitmaps just below and at the size of 2,047 and 2,048 runs.
                3 => {
                    ordinals.extend(runs_of_three(2047).map(|o| (9 << 16) + o));
                    ordinals.extend(runs_of_three(2048).map(|o| (10 << 16) + o));
                }
                // Every other ordinal of a block: a bitmap that stays one.
                _ => ordinals.extend((0..32_768).map(|o| (11 << 16) + 2 * o)),
            }
            ordinals.sort_unstable();
            ordinals.dedup();
            let mut builder = SetBuilder::default();
            for &o in &ordinals {
                builder.add(o);
            }
            builder.close();
            assert!(builder.beside.is_empty());
            let inserted: RoaringBitmap = ordinals.iter().copied().collect();
            assert_eq!(blocks_bitmap(&builder.blocks), inserted, "round {round}");
            assert_eq!(
                blocks_bytes(&builder.blocks),
                bitmap_bytes(inserted),
                "round {round}"
            );
        }
        assert_eq!(blocks_bytes(&[]), bitmap_bytes(RoaringBitmap::new()));
    }

    #[test]
    fn stored_bytes_read_back_write_the_same_bytes() {
        // The hash of a stored cell is taken from its bytes as they are
        // (`set_and_bytes_at`): reading and writing again must give them back.
        let mut draws = Draws(5);
        for round in 0..200 {
            let len = draws.below(60_000) as usize;
            let mut ordinals = draws.ordinals(len);
            if round % 3 == 0 {
                let first = draws.below(1 << 20) as u32;
                ordinals.extend(first..first + draws.below(140_000) as u32);
            }
            let mut builder = SetBuilder::default();
            for &o in &ordinals {
                builder.add(o);
            }
            for bytes in [
                builder.into_bytes(),
                bitmap_bytes(ordinals.iter().copied().collect()),
            ] {
                let set = RecordSet::from_bytes(&bytes).unwrap();
                assert_eq!(set.to_bytes(), bytes, "round {round}");
                assert_eq!(set.hash(), hash_bytes(&bytes));
            }
        }
    }

    #[test]
    fn group_sets_read_the_rows_their_filter_selects() {
        let mut draws = Draws(11);
        for round in 0..40 {
            let rows = 1 + draws.below(20_000) as usize;
            let groups = 1 + draws.below(8) as usize;
            let first = draws.below(1_000_000) as u32;
            let ordinals: Vec<Option<u32>> = (0..rows as u32)
                .map(|i| (draws.below(50) != 0).then_some(first + 2 * i))
                .collect();
            let group_indices: Vec<usize> = (0..rows)
                .map(|_| draws.below(groups as u64) as usize)
                .collect();
            let filter: Option<BooleanArray> = match round % 4 {
                0 => None,
                1 => Some((0..rows).map(|_| Some(false)).collect()),
                _ => Some(
                    (0..rows)
                        .map(|_| match draws.below(4) {
                            0 => None,
                            1 => Some(false),
                            _ => Some(true),
                        })
                        .collect(),
                ),
            };
            let values: ArrayRef = Arc::new(UInt32Array::from(ordinals.clone()));
            let mut sets = GroupSets::default();
            sets.update_batch(&[values], &group_indices, filter.as_ref(), groups)
                .unwrap();
            let emitted = sets.evaluate(EmitTo::All).unwrap();
            let mut expected = vec![RoaringBitmap::new(); groups];
            for (i, ordinal) in ordinals.iter().enumerate() {
                if let Some(ordinal) = ordinal
                    && selected(filter.as_ref(), i)
                {
                    add_one_by_one(&mut expected[group_indices[i]], *ordinal);
                }
            }
            let emitted = emitted.as_binary::<i32>();
            for (g, bitmap) in expected.into_iter().enumerate() {
                assert_eq!(
                    emitted.value(g),
                    bitmap_bytes(bitmap).as_slice(),
                    "round {round}"
                );
            }
        }
    }

    #[test]
    fn early_exit_tests_agree_with_counts() {
        let mut draws = Draws(3);
        let set = |draws: &mut Draws| {
            let len = draws.below(20_000) as usize;
            let mut ordinals = draws.ordinals(len);
            if draws.below(3) == 0 {
                let first = draws.below(300_000) as u32;
                ordinals.extend(first..first + draws.below(70_000) as u32);
            }
            RecordSet::from_ordinals(ordinals)
        };
        for _ in 0..300 {
            let a = set(&mut draws);
            let b = if draws.below(3) == 0 {
                let mut b = a.clone();
                b.difference_with(&RecordSet::from_ordinals(
                    (0..300_000).filter(|o| o % 7 == 0),
                ));
                b.optimize();
                b
            } else {
                set(&mut draws)
            };
            let common = a.common(&b);
            assert_eq!(a.is_disjoint(&b), common == 0);
            assert_eq!(b.is_disjoint(&a), common == 0);
            assert_eq!(a.is_subset(&b), common == a.len());
            assert_eq!(b.is_subset(&a), common == b.len());
        }
        let empty = RecordSet::default();
        let some = RecordSet::from_ordinals([4, 9]);
        assert!(some.is_disjoint(&empty) && empty.is_disjoint(&some) && empty.is_subset(&some));
    }

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
