//! The shadow aggregate behind the (n, k) dominance rule.
//!
//! `pdx_dominance_ok(x)` is true when the `n` largest contributions `|x|` of a cell
//! make up at most `p` percent of the cell's total `Σ|x|`. With a contributor column,
//! `pdx_dominance_ok_by_entity(x, entity)` first adds up `|x|` per entity and compares
//! the `n` largest entity totals instead. NULL values of `x` contribute nothing; rows
//! whose entity is NULL are pooled as one contributor (which can only make a cell look
//! more dominated). The result is only a flag: the shares themselves never leave the
//! aggregate, and this function is never offered to the developer's SQL.
//!
//! Memory: the record variant keeps `n + 1` numbers per group; the entity variant keeps
//! one number per distinct entity of the group (like `COUNT(DISTINCT entity)`), and both
//! report their size to the memory pool.

use std::any::Any;
use std::collections::HashMap;
use std::mem::size_of;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::array::{BooleanArray, Float64Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::common::{Result, ScalarValue, internal_err};
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, EmitTo, GroupsAccumulator, Signature, Volatility,
};

/// The dominance flag as an aggregate function.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DominanceOk {
    /// How many of the largest contributors are added up.
    n: u8,
    /// The share (percent of the total) they may reach.
    p_percent: u8,
    /// Whether contributions are summed per entity (second argument) first.
    by_entity: bool,
    /// One argument, or two with `by_entity`; any types (the value is cast to Float64).
    signature: Signature,
}

impl DominanceOk {
    /// The aggregate function for the rule "the `n` largest contributors may not exceed
    /// `p_percent` % of the cell total".
    pub(crate) fn udaf(n: u8, p_percent: u8, by_entity: bool) -> Arc<AggregateUDF> {
        let arity = if by_entity { 2 } else { 1 };
        Arc::new(AggregateUDF::from(Self {
            n,
            p_percent,
            by_entity,
            signature: Signature::any(arity, Volatility::Immutable),
        }))
    }
}

impl AggregateUDFImpl for DominanceOk {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn name(&self) -> &str {
        if self.by_entity {
            "pdx_dominance_ok_by_entity"
        } else {
            "pdx_dominance_ok"
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Boolean)
    }

    fn accumulator(&self, _acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let n = usize::from(self.n.max(1));
        if self.by_entity {
            Ok(Box::new(EntityShares {
                n,
                p_percent: self.p_percent,
                shares: HashMap::new(),
                key_bytes: 0,
            }))
        } else {
            Ok(Box::new(RecordShares {
                n,
                p_percent: self.p_percent,
                total: 0.0,
                top: Vec::new(),
            }))
        }
    }

    fn groups_accumulator_supported(&self, _args: AccumulatorArgs) -> bool {
        // The record variant has a vectorised per-group form; without it DataFusion
        // would run every aggregate of the query through the slow per-group adapter.
        !self.by_entity
    }

    fn create_groups_accumulator(
        &self,
        _args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        if self.by_entity {
            return internal_err!("pdx_dominance_ok_by_entity has no groups accumulator");
        }
        Ok(Box::new(RecordSharesGroups {
            n: usize::from(self.n.max(1)),
            p_percent: self.p_percent,
            totals: Vec::new(),
            tops: Vec::new(),
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        if self.by_entity {
            let list = |item: DataType| DataType::List(Arc::new(Field::new_list_field(item, true)));
            Ok(vec![
                Arc::new(Field::new(
                    format_state_name(args.name, "entities"),
                    list(DataType::Binary),
                    true,
                )),
                Arc::new(Field::new(
                    format_state_name(args.name, "shares"),
                    list(DataType::Float64),
                    true,
                )),
            ])
        } else {
            let mut fields = vec![Arc::new(Field::new(
                format_state_name(args.name, "total"),
                DataType::Float64,
                true,
            ))];
            for i in 0..self.n.max(1) {
                fields.push(Arc::new(Field::new(
                    format_state_name(args.name, &format!("top{i}")),
                    DataType::Float64,
                    true,
                )));
            }
            Ok(fields)
        }
    }

    fn default_value(&self, _data_type: &DataType) -> Result<ScalarValue> {
        // An empty cell has no contributor that could dominate it.
        Ok(ScalarValue::Boolean(Some(true)))
    }
}

/// The rule itself: true when the top-`n` sum is at most `p_percent` % of `total`.
/// A non-finite total (NaN or infinite values) counts as dominated.
fn within_share(top_sum: f64, total: f64, p_percent: u8) -> bool {
    if !total.is_finite() || !top_sum.is_finite() {
        return false;
    }
    if total <= 0.0 {
        return true;
    }
    top_sum * 100.0 <= f64::from(p_percent) * total
}

/// Inserts `value` into `top` (descending, at most `n` long).
fn insert_top(top: &mut Vec<f64>, n: usize, value: f64) {
    if value.is_nan() {
        return;
    }
    if top.len() == n && top.last().is_some_and(|last| *last >= value) {
        return;
    }
    let at = top.iter().position(|t| *t < value).unwrap_or(top.len());
    top.insert(at, value);
    top.truncate(n);
}

/// The values of `array` as Float64.
fn as_f64(array: &ArrayRef) -> Result<ArrayRef> {
    Ok(cast(array, &DataType::Float64)?)
}

/// `array` viewed as Float64 values, or an internal error.
fn floats(array: &dyn Array) -> Result<&datafusion::arrow::array::Float64Array> {
    match array.as_primitive_opt::<Float64Type>() {
        Some(values) => Ok(values),
        None => internal_err!("pdx_dominance_ok: expected Float64 values"),
    }
}

/// Record-level contributors: the running total of `|x|` and the `n` largest `|x|`.
#[derive(Debug)]
struct RecordShares {
    /// How many of the largest contributions count.
    n: usize,
    /// The allowed share in percent.
    p_percent: u8,
    /// `Σ|x|` so far.
    total: f64,
    /// The largest `|x|` so far, descending.
    top: Vec<f64>,
}

impl Accumulator for RecordShares {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(x) = values.first() else {
            return internal_err!("pdx_dominance_ok needs one argument");
        };
        let x = as_f64(x)?;
        for v in floats(&x)?.iter().flatten() {
            let v = v.abs();
            self.total += v;
            insert_top(&mut self.top, self.n, v);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let top_sum: f64 = self.top.iter().sum();
        Ok(ScalarValue::Boolean(Some(within_share(
            top_sum,
            self.total,
            self.p_percent,
        ))))
    }

    fn size(&self) -> usize {
        size_of::<Self>() + self.top.capacity() * size_of::<f64>()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut state = Vec::with_capacity(self.n + 1);
        state.push(ScalarValue::Float64(Some(self.total)));
        for i in 0..self.n {
            state.push(ScalarValue::Float64(self.top.get(i).copied()));
        }
        Ok(state)
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        if states.len() != self.n + 1 {
            return internal_err!("pdx_dominance_ok: unexpected state width");
        }
        for v in floats(&states[0])?.iter().flatten() {
            self.total += v;
        }
        for column in &states[1..] {
            for v in floats(column)?.iter().flatten() {
                insert_top(&mut self.top, self.n, v);
            }
        }
        Ok(())
    }
}

/// [`RecordShares`] for many groups at once: `n` slots per group, `EMPTY` where a group
/// has fewer than `n` contributions yet.
#[derive(Debug)]
struct RecordSharesGroups {
    /// How many of the largest contributions count.
    n: usize,
    /// The allowed share in percent.
    p_percent: u8,
    /// `Σ|x|` per group.
    totals: Vec<f64>,
    /// `n` slots per group, descending; `EMPTY` marks an unused slot.
    tops: Vec<f64>,
}

/// An unused top slot (contributions are `|x| ≥ 0`).
const EMPTY: f64 = -1.0;

impl RecordSharesGroups {
    fn resize(&mut self, groups: usize) {
        self.totals.resize(groups, 0.0);
        self.tops.resize(groups * self.n, EMPTY);
    }

    fn insert(&mut self, group: usize, value: f64) {
        if value.is_nan() {
            return;
        }
        let n = self.n;
        let slots = &mut self.tops[group * n..group * n + n];
        if slots[n - 1] >= value {
            return;
        }
        let at = slots.iter().position(|t| *t < value).unwrap_or(n - 1);
        slots.copy_within(at..n - 1, at + 1);
        slots[at] = value;
    }

    /// Takes the first groups (or all) out of the state.
    fn take(&mut self, emit_to: EmitTo) -> (Vec<f64>, Vec<f64>) {
        let totals = emit_to.take_needed(&mut self.totals);
        let keep_from = totals.len() * self.n;
        let rest = self.tops.split_off(keep_from.min(self.tops.len()));
        let tops = std::mem::replace(&mut self.tops, rest);
        (totals, tops)
    }
}

/// True when row `i` passes the optional FILTER.
pub(super) fn selected(filter: Option<&BooleanArray>, i: usize) -> bool {
    filter.is_none_or(|f| f.is_valid(i) && f.value(i))
}

impl GroupsAccumulator for RecordSharesGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        let Some(x) = values.first() else {
            return internal_err!("pdx_dominance_ok needs one argument");
        };
        self.resize(total_num_groups);
        let x = as_f64(x)?;
        let x = floats(&x)?;
        if x.null_count() == 0 && opt_filter.is_none() {
            // The common case, without per-row option checks.
            for (&group, v) in group_indices.iter().zip(x.values().iter()) {
                let v = v.abs();
                self.totals[group] += v;
                if v > self.tops[group * self.n + self.n - 1] {
                    self.insert(group, v);
                }
            }
            return Ok(());
        }
        for (i, (&group, v)) in group_indices.iter().zip(x.iter()).enumerate() {
            let Some(v) = v else { continue };
            if !selected(opt_filter, i) {
                continue;
            }
            let v = v.abs();
            self.totals[group] += v;
            self.insert(group, v);
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let n = self.n;
        let (totals, tops) = self.take(emit_to);
        let flags: BooleanArray = totals
            .iter()
            .enumerate()
            .map(|(g, total)| {
                let top_sum: f64 = tops[g * n..g * n + n].iter().filter(|t| **t >= 0.0).sum();
                Some(within_share(top_sum, *total, self.p_percent))
            })
            .collect();
        Ok(Arc::new(flags))
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        let n = self.n;
        let (totals, tops) = self.take(emit_to);
        let groups = totals.len();
        let mut state: Vec<ArrayRef> = Vec::with_capacity(n + 1);
        state.push(Arc::new(Float64Array::from(totals)));
        for slot in 0..n {
            let column: Float64Array = (0..groups)
                .map(|g| Some(tops[g * n + slot]).filter(|t| *t >= 0.0))
                .collect();
            state.push(Arc::new(column));
        }
        Ok(state)
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        if values.len() != self.n + 1 {
            return internal_err!("pdx_dominance_ok: unexpected state width");
        }
        self.resize(total_num_groups);
        let totals = floats(&values[0])?;
        for (i, (&group, total)) in group_indices.iter().zip(totals.iter()).enumerate() {
            if let Some(total) = total.filter(|_| selected(opt_filter, i)) {
                self.totals[group] += total;
            }
        }
        for column in &values[1..] {
            let column = floats(column)?;
            for (i, (&group, v)) in group_indices.iter().zip(column.iter()).enumerate() {
                if let Some(v) = v.filter(|_| selected(opt_filter, i)) {
                    self.insert(group, v);
                }
            }
        }
        Ok(())
    }

    fn size(&self) -> usize {
        size_of::<Self>() + (self.totals.capacity() + self.tops.capacity()) * size_of::<f64>()
    }
}

/// Entity-level contributors: `Σ|x|` per entity, keyed by the entity's row encoding.
#[derive(Debug)]
struct EntityShares {
    /// How many of the largest entity totals count.
    n: usize,
    /// The allowed share in percent.
    p_percent: u8,
    /// `Σ|x|` per entity (key: Arrow row encoding of the entity value).
    shares: HashMap<Vec<u8>, f64>,
    /// Bytes held by the keys, for [`Accumulator::size`].
    key_bytes: usize,
}

impl EntityShares {
    /// Adds `share` to the entity `key`.
    fn add(&mut self, key: &[u8], share: f64) {
        if let Some(total) = self.shares.get_mut(key) {
            *total += share;
        } else {
            self.key_bytes += key.len();
            self.shares.insert(key.to_vec(), share);
        }
    }
}

impl Accumulator for EntityShares {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let [x, entity] = values else {
            return internal_err!("pdx_dominance_ok_by_entity needs two arguments");
        };
        let x = as_f64(x)?;
        let x = floats(&x)?;
        let converter = RowConverter::new(vec![SortField::new(entity.data_type().clone())])?;
        let rows = converter.convert_columns(std::slice::from_ref(entity))?;
        for (i, v) in x.iter().enumerate() {
            if let Some(v) = v {
                self.add(rows.row(i).as_ref(), v.abs());
            }
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let mut top = Vec::with_capacity(self.n);
        let mut total = 0.0;
        for share in self.shares.values() {
            total += *share;
            insert_top(&mut top, self.n, *share);
        }
        let top_sum: f64 = top.iter().sum();
        Ok(ScalarValue::Boolean(Some(within_share(
            top_sum,
            total,
            self.p_percent,
        ))))
    }

    fn size(&self) -> usize {
        size_of::<Self>()
            + self.key_bytes
            + self.shares.capacity() * (size_of::<Vec<u8>>() + size_of::<f64>() + size_of::<u64>())
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        let mut keys = Vec::with_capacity(self.shares.len());
        let mut shares = Vec::with_capacity(self.shares.len());
        for (key, share) in &self.shares {
            keys.push(ScalarValue::Binary(Some(key.clone())));
            shares.push(ScalarValue::Float64(Some(*share)));
        }
        Ok(vec![
            ScalarValue::List(ScalarValue::new_list_nullable(&keys, &DataType::Binary)),
            ScalarValue::List(ScalarValue::new_list_nullable(&shares, &DataType::Float64)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [keys, shares] = states else {
            return internal_err!("pdx_dominance_ok_by_entity: unexpected state width");
        };
        let (Some(keys), Some(shares)) = (keys.as_list_opt::<i32>(), shares.as_list_opt::<i32>())
        else {
            return internal_err!("pdx_dominance_ok_by_entity: unexpected state types");
        };
        for row in 0..keys.len().min(shares.len()) {
            if keys.is_null(row) || shares.is_null(row) {
                continue;
            }
            let row_keys = keys.value(row);
            let row_shares = shares.value(row);
            let (Some(row_keys), Some(row_shares)) = (
                row_keys.as_binary_opt::<i32>(),
                row_shares.as_primitive_opt::<Float64Type>(),
            ) else {
                return internal_err!("pdx_dominance_ok_by_entity: unexpected state types");
            };
            for (key, share) in row_keys.iter().zip(row_shares.iter()) {
                if let (Some(key), Some(share)) = (key, share) {
                    self.add(key, share);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Float64Array, Int64Array, StringArray};

    fn flag(acc: &mut dyn Accumulator) -> Result<Option<bool>> {
        match acc.evaluate()? {
            ScalarValue::Boolean(b) => Ok(b),
            _ => internal_err!("not a boolean"),
        }
    }

    fn state_arrays(acc: &mut dyn Accumulator) -> Result<Vec<ArrayRef>> {
        acc.state()?.into_iter().map(|s| s.to_array()).collect()
    }

    /// The per-group form agrees with one plain accumulator per group, directly and
    /// through partial states, with a FILTER, and when groups are emitted in two parts.
    #[test]
    fn groups_accumulator_matches_per_group_accumulators() -> Result<()> {
        let groups = 7usize;
        let rows = 500usize;
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let indices: Vec<usize> = (0..rows)
            .map(|_| (next() % groups as u64) as usize)
            .collect();
        // Group 3 gets one huge value, so at least one flag is false.
        let values: Vec<Option<f64>> = indices
            .iter()
            .map(|&g| match next() % 10 {
                0 => None,
                _ if g == 3 && next() % 50 == 0 => Some(1e9),
                r => Some((r as f64 - 5.0) * (next() % 1000) as f64),
            })
            .collect();
        let filter: BooleanArray = (0..rows).map(|i| Some(i % 5 != 0)).collect();
        let array: ArrayRef = Arc::new(Float64Array::from(values.clone()));
        let udaf = DominanceOk {
            n: 2,
            p_percent: 60,
            by_entity: false,
            signature: Signature::any(1, Volatility::Immutable),
        };
        let expected: Vec<bool> = (0..groups)
            .map(|g| {
                let mut acc = RecordShares {
                    n: 2,
                    p_percent: 60,
                    total: 0.0,
                    top: Vec::new(),
                };
                let mine: Vec<Option<f64>> = (0..rows)
                    .filter(|&i| indices[i] == g && i % 5 != 0)
                    .map(|i| values[i])
                    .collect();
                acc.update_batch(&[Arc::new(Float64Array::from(mine)) as ArrayRef])?;
                Ok(flag(&mut acc)?.unwrap_or(false))
            })
            .collect::<Result<_>>()?;
        assert!(expected.iter().any(|f| !f) && expected.iter().any(|f| *f));

        let new = || RecordSharesGroups {
            n: usize::from(udaf.n),
            p_percent: udaf.p_percent,
            totals: Vec::new(),
            tops: Vec::new(),
        };
        // Directly, emitted in two parts.
        let mut direct = new();
        direct.update_batch(
            std::slice::from_ref(&array),
            &indices,
            Some(&filter),
            groups,
        )?;
        let first = direct.evaluate(EmitTo::First(3))?;
        let rest = direct.evaluate(EmitTo::All)?;
        let got: Vec<bool> = [first, rest]
            .iter()
            .flat_map(|a| {
                a.as_boolean()
                    .iter()
                    .map(|f| f.unwrap_or(false))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(got, expected);

        // Through two partial states merged into a final one.
        let (a, b) = indices.split_at(rows / 2);
        let mut left = new();
        left.update_batch(
            &[array.slice(0, a.len())],
            a,
            Some(&filter.slice(0, a.len())),
            groups,
        )?;
        let mut right = new();
        right.update_batch(
            &[array.slice(a.len(), b.len())],
            b,
            Some(&filter.slice(a.len(), b.len())),
            groups,
        )?;
        let identity: Vec<usize> = (0..groups).collect();
        let mut merged = new();
        merged.merge_batch(&left.state(EmitTo::All)?, &identity, None, groups)?;
        merged.merge_batch(&right.state(EmitTo::All)?, &identity, None, groups)?;
        let got: Vec<bool> = merged
            .evaluate(EmitTo::All)?
            .as_boolean()
            .iter()
            .map(|f| f.unwrap_or(false))
            .collect();
        assert_eq!(got, expected);
        Ok(())
    }

    #[test]
    fn top_two_of_records() -> Result<()> {
        let mut acc = RecordShares {
            n: 2,
            p_percent: 85,
            total: 0.0,
            top: Vec::new(),
        };
        let x: ArrayRef = Arc::new(Int64Array::from(vec![Some(10), Some(-10), None, Some(80)]));
        acc.update_batch(&[x])?;
        // top two = 90 of 100 > 85 %
        assert_eq!(flag(&mut acc)?, Some(false));
        let more: ArrayRef = Arc::new(Float64Array::from(vec![20.0, 20.0]));
        acc.update_batch(&[more])?;
        // top two = 100 of 140 ≈ 71 %
        assert_eq!(flag(&mut acc)?, Some(true));
        Ok(())
    }

    #[test]
    fn merged_states_equal_a_single_pass() -> Result<()> {
        let mut a = RecordShares {
            n: 2,
            p_percent: 50,
            total: 0.0,
            top: Vec::new(),
        };
        let mut b = RecordShares {
            n: 2,
            p_percent: 50,
            total: 0.0,
            top: Vec::new(),
        };
        a.update_batch(&[Arc::new(Int64Array::from(vec![5, 1, 1])) as ArrayRef])?;
        b.update_batch(&[Arc::new(Int64Array::from(vec![4, 1])) as ArrayRef])?;
        let state = state_arrays(&mut b)?;
        a.merge_batch(&state)?;
        // total 12, top two 9 > 6
        assert_eq!(a.total, 12.0);
        assert_eq!(a.top, vec![5.0, 4.0]);
        assert_eq!(flag(&mut a)?, Some(false));
        Ok(())
    }

    #[test]
    fn entities_pool_their_records() -> Result<()> {
        let mut acc = EntityShares {
            n: 1,
            p_percent: 50,
            shares: HashMap::new(),
            key_bytes: 0,
        };
        let x: ArrayRef = Arc::new(Int64Array::from(vec![10, 10, 10, 15]));
        let e: ArrayRef = Arc::new(StringArray::from(vec!["a", "a", "a", "b"]));
        acc.update_batch(&[x, e])?;
        // entity a holds 30 of 45
        assert_eq!(flag(&mut acc)?, Some(false));
        let mut other = EntityShares {
            n: 1,
            p_percent: 50,
            shares: HashMap::new(),
            key_bytes: 0,
        };
        let x: ArrayRef = Arc::new(Int64Array::from(vec![40]));
        let e: ArrayRef = Arc::new(StringArray::from(vec!["c"]));
        other.update_batch(&[x, e])?;
        let state = state_arrays(&mut other)?;
        acc.merge_batch(&state)?;
        // largest entity c: 40 of 85
        assert_eq!(flag(&mut acc)?, Some(true));
        Ok(())
    }

    #[test]
    fn empty_and_zero_cells_are_not_dominated() {
        assert!(within_share(0.0, 0.0, 85));
        assert!(!within_share(f64::NAN, 1.0, 85));
        assert!(!within_share(1.0, f64::INFINITY, 85));
    }
}
