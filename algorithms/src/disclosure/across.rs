//! Differencing across outputs: whether a value about to be released, over record set
//! `N`, and what the organisation already holds on the version isolate fewer than
//! `threshold` records.
//!
//! # The rule
//!
//! Two released sums over `N` and `P` give `Σ_N` and `Σ_P`, and from them the sum over
//! a region of their Venn diagram only when one set contains the other: `Σ_P − Σ_N`
//! is the sum over `P ∖ N` when `N ⊆ P`. (Overlapping sets give `Σ_{N∖P} − Σ_{P∖N}`,
//! which mixes two regions.) So `N` is **too close** to a *target* `T` when
//!
//! * one contains the other and they differ by 1 to `threshold − 1` records, or
//! * they are equal but selected differently (whether a crafted condition changes the
//!   records is the answer to it: `WHERE region = 'east'`, then `WHERE region = 'east'
//!   AND NOT (id = 42 AND income > x)`, is withheld whichever way the answer goes).
//!
//! The targets are what the organisation can compute:
//!
//! * every earlier set `P` (values and column totals of outputs released or in review);
//! * `A ∖ B` for every earlier pair with `B ⊂ A` (a *nesting*, recorded when the later
//!   of the two was stored): `Σ_A − Σ_B`. This closes triples such as `id 30–69`, `id
//!   30–49`, then `id 50–69 or id = 42`;
//! * `W ∖ P` for every earlier `P`, `W` being the whole table (its row count is public,
//!   and a whole-table sum is an ordinary release): counts over complements;
//! * *covered* sets: when earlier sets inside `N` together leave out fewer than
//!   `threshold` of its records, their values add up to all of `N`'s but those (a
//!   `GROUP BY` run, then `WHERE region IN ('west', 'north') OR id = 42`); likewise when
//!   `N` and the recorded sets inside an earlier `P` around it leave fewer than
//!   `threshold` of `P`'s records out. Exactly covered counts as too close, as equal
//!   sets selected differently do.
//!
//! A target equal to `N` without being an earlier set with the same selection (a
//! difference or a complement) counts as selected differently.
//!
//! # Cost
//!
//! Nesting with a small difference needs `||N| − |T|| < threshold`, so the sizes alone
//! rule out almost every target: only repeats, near-repeats and attacks reach an exact
//! intersection. Equal hashes settle repeats. What the summaries cannot settle (an
//! interval, disjoint spans, `N` holding `P`'s whole span give `|N ∩ P|` exactly) loads
//! `P`'s bitmap. Finding the nestings to record for the next checks uses necessary
//! conditions first (sizes, spans, per-block counts, `P`'s sampled ordinals inside
//! `N`), then the same exact intersection. Every nesting is recorded (their number grows
//! with pairs of nested outputs; a drill-down of `k` cells under a total adds `k`).
//!
//! # Limits
//!
//! Combinations beyond these targets are not found: overlapping sets none of which
//! nests in another (`A = ids 100–119 ∪ {42}`, `B = ids 120–139 ∪ {42}`, `C = ids
//! 100–139 ∪ {42}`, where `A + B − C` is 42's value) and longer chains. Finding every
//! linear combination that isolates fewer than `threshold` records is an auditing
//! problem that grows with the number of outputs; DP bounds every combination.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;

use super::DisclosureError;
use super::record_sets::{RecordSet, SetSummary, TrackedSet};

/// An earlier set's summary with its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorSummary {
    /// The summary.
    pub summary: SetSummary,
    /// `selection_fingerprint` of how it was selected.
    pub selection: String,
    /// Its hash (`RecordSet::hash`).
    pub hash: String,
}

/// Earlier record sets of one organisation on the versions a query reads, supplied by
/// the caller (the sandbox keeps them; this crate does no I/O).
pub trait PriorRecordSets: Sync {
    /// The summaries of every earlier set on the version behind SQL table `table`.
    fn summaries(
        &self,
        table: &str,
    ) -> impl Future<Output = Result<Vec<PriorSummary>, DisclosureError>> + Send;

    /// Pairs `(outer, inner)` of positions in [`Self::summaries`] where the inner set
    /// lies strictly inside the outer one.
    fn nestings(
        &self,
        table: &str,
    ) -> impl Future<Output = Result<Vec<(usize, usize)>, DisclosureError>> + Send;

    /// The full sets at positions `indices` of [`Self::summaries`], in that order.
    fn load(
        &self,
        table: &str,
        indices: &[usize],
    ) -> impl Future<Output = Result<Vec<RecordSet>, DisclosureError>> + Send;
}

/// No earlier outputs (dry runs, tests, a first query).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPriors;

impl PriorRecordSets for NoPriors {
    async fn summaries(&self, _table: &str) -> Result<Vec<PriorSummary>, DisclosureError> {
        Ok(Vec::new())
    }

    async fn nestings(&self, _table: &str) -> Result<Vec<(usize, usize)>, DisclosureError> {
        Ok(Vec::new())
    }

    async fn load(
        &self,
        _table: &str,
        _indices: &[usize],
    ) -> Result<Vec<RecordSet>, DisclosureError> {
        Ok(Vec::new())
    }
}

/// Earlier sets held in memory (tests, benchmarks), with the nestings found between
/// them as they were added.
#[derive(Debug, Clone, Default)]
pub struct PriorsInMemory {
    /// The sets, for every table.
    sets: Vec<RecordSet>,
    /// Their summaries.
    summaries: Vec<PriorSummary>,
    /// `(outer, inner)` positions.
    nestings: Vec<(usize, usize)>,
}

impl PriorsInMemory {
    /// Earlier sets `sets` (for every table), nestings not recorded.
    pub fn new(sets: Vec<TrackedSet>) -> Self {
        let mut priors = Self::default();
        for set in sets {
            priors.push(set);
        }
        priors
    }

    /// Earlier sets `sets` with every nesting between them (a set inside another),
    /// as storing them one after the other would have found.
    pub fn with_nestings(sets: Vec<TrackedSet>) -> Self {
        let mut priors = Self::new(sets);
        let count = priors.sets.len();
        for outer in 0..count {
            let set = &priors.sets[outer];
            let summary = &priors.summaries[outer].summary;
            for inner in 0..count {
                let candidate = &priors.summaries[inner].summary;
                if inner == outer
                    || candidate.records >= set.len()
                    || !may_nest(set, summary, candidate)
                {
                    continue;
                }
                let shared = common_from_summary(set, summary, candidate)
                    .unwrap_or_else(|| set.common(&priors.sets[inner]));
                if shared == candidate.records {
                    priors.nestings.push((outer, inner));
                }
            }
        }
        priors
    }

    /// Adds one set; returns its position.
    fn push(&mut self, tracked: TrackedSet) -> usize {
        let hash = tracked.set.hash();
        if let Some(at) = self
            .summaries
            .iter()
            .position(|s| s.hash == hash && s.selection == tracked.selection)
        {
            return at;
        }
        self.summaries.push(PriorSummary {
            summary: tracked.set.summary(),
            selection: tracked.selection,
            hash,
        });
        self.sets.push(tracked.set);
        self.sets.len() - 1
    }

    /// Adds what an output released, as the sandbox stores it.
    pub fn add_released(&mut self, released: &super::ReleasedSets) {
        for tracked in &released.sets {
            self.push(tracked.clone());
        }
        for nesting in &released.nestings {
            let find = |id: &SetId| {
                self.summaries
                    .iter()
                    .position(|s| s.hash == id.hash && s.selection == id.selection)
            };
            if let (Some(outer), Some(inner)) = (find(&nesting.outer), find(&nesting.inner)) {
                self.nestings.push((outer, inner));
            }
        }
    }

    /// How many sets.
    pub fn len(&self) -> usize {
        self.sets.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sets.is_empty()
    }
}

impl PriorRecordSets for PriorsInMemory {
    async fn summaries(&self, _table: &str) -> Result<Vec<PriorSummary>, DisclosureError> {
        Ok(self.summaries.clone())
    }

    async fn nestings(&self, _table: &str) -> Result<Vec<(usize, usize)>, DisclosureError> {
        Ok(self.nestings.clone())
    }

    async fn load(
        &self,
        _table: &str,
        indices: &[usize],
    ) -> Result<Vec<RecordSet>, DisclosureError> {
        indices
            .iter()
            .map(|i| {
                self.sets
                    .get(*i)
                    .cloned()
                    .ok_or(DisclosureError::Internal("no such earlier record set"))
            })
            .collect()
    }
}

/// A stored set's identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SetId {
    /// `RecordSet::hash`.
    pub hash: String,
    /// Its selection fingerprint.
    pub selection: String,
}

impl SetId {
    /// The identity of `tracked`.
    pub fn of(tracked: &TrackedSet) -> Self {
        Self {
            hash: tracked.set.hash(),
            selection: tracked.selection.clone(),
        }
    }
}

/// `inner` lies strictly inside `outer`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nesting {
    /// The larger set.
    pub outer: SetId,
    /// The smaller set.
    pub inner: SetId,
}

/// What the check found.
#[derive(Debug, Clone, Default)]
pub(crate) struct Verdicts {
    /// Per candidate, whether it is too close to a target.
    pub close: Vec<bool>,
    /// Nestings between candidates and earlier sets, for the next checks.
    pub nestings: Vec<Nesting>,
    /// Per candidate, the positions (in the priors' summaries) of earlier sets strictly
    /// around it.
    pub around: Vec<Vec<usize>>,
}

/// What a candidate is compared with.
#[derive(Debug, Clone, Copy)]
enum Target {
    /// An earlier set.
    Prior(usize),
    /// `A ∖ B` for a nesting `(A, B)`.
    Difference(usize, usize),
    /// `W ∖ P`.
    Complement(usize),
}

/// The rule for a candidate of `n` records and a target of `size` records sharing
/// `common` of them (see the module documentation).
fn too_close(n: u64, size: u64, common: u64, same_selection: bool, threshold: u64) -> bool {
    let nested = common == n || common == size;
    if !nested {
        return false;
    }
    let difference = n.abs_diff(size);
    if difference == 0 {
        return !same_selection;
    }
    difference < threshold
}

/// `|N ∩ P|` when the summary of `P` gives it without `P`'s bitmap.
fn common_from_summary(new: &RecordSet, summary: &SetSummary, prior: &SetSummary) -> Option<u64> {
    if prior.records == 0 || new.is_empty() {
        return Some(0);
    }
    if summary.max < prior.min || prior.max < summary.min {
        return Some(0);
    }
    if prior.is_interval() {
        return Some(new.count_within(prior.min, prior.max));
    }
    if new.holds_span(prior.min, prior.max) {
        return Some(prior.records);
    }
    None
}

/// Whether `P ⊂ N` or `N ⊂ P` strictly may hold (necessary conditions only, cheapest
/// first).
fn may_nest(new: &RecordSet, summary: &SetSummary, prior: &SetSummary) -> bool {
    let n = new.len();
    let p = prior.records;
    let prior_inside = p < n
        && summary.min <= prior.min
        && prior.max <= summary.max
        && prior.sample.iter().all(|o| new.holds(*o))
        && prior.fits_within(summary);
    let new_inside =
        n < p && prior.min <= summary.min && summary.max <= prior.max && summary.fits_within(prior);
    prior_inside || new_inside
}

/// Loads the earlier sets at `indices` not yet in `cache`.
async fn load_into<P: PriorRecordSets>(
    priors: &P,
    table: &str,
    indices: impl IntoIterator<Item = usize>,
    cache: &mut HashMap<usize, RecordSet>,
) -> Result<(), DisclosureError> {
    let wanted: Vec<usize> = indices
        .into_iter()
        .filter(|i| !cache.contains_key(i))
        .collect::<BTreeSet<usize>>()
        .into_iter()
        .collect();
    if wanted.is_empty() {
        return Ok(());
    }
    let loaded = priors.load(table, &wanted).await?;
    if loaded.len() != wanted.len() {
        return Err(DisclosureError::Internal(
            "earlier record sets were not all loaded",
        ));
    }
    cache.extend(wanted.into_iter().zip(loaded));
    Ok(())
}

/// Checks `candidates` against the earlier sets on `table` (with `table_rows` records
/// when the row count is known): which are too close, and the nestings to record.
pub(crate) async fn check_against_priors<P: PriorRecordSets>(
    candidates: &[TrackedSet],
    ids: &[SetId],
    priors: &P,
    table: &str,
    table_rows: Option<u64>,
    threshold: u64,
) -> Result<Verdicts, DisclosureError> {
    let mut verdicts = Verdicts {
        close: vec![false; candidates.len()],
        nestings: Vec::new(),
        around: vec![Vec::new(); candidates.len()],
    };
    if candidates.is_empty() {
        return Ok(verdicts);
    }
    let summaries = priors.summaries(table).await?;
    if summaries.is_empty() {
        return Ok(verdicts);
    }
    let nestings = priors.nestings(table).await?;
    let mut inside_of: HashMap<usize, Vec<usize>> = HashMap::new();
    for &(outer, inner) in &nestings {
        inside_of.entry(outer).or_default().push(inner);
    }
    let near = |n: u64, size: u64| n.abs_diff(size) < threshold;
    let records = |p: usize| summaries[p].summary.records;

    // What each candidate must be compared with exactly, and `|N ∩ P|` where known.
    let mut commons: HashMap<(usize, usize), u64> = HashMap::new();
    let mut targets: Vec<Vec<Target>> = vec![Vec::new(); candidates.len()];
    let mut nest_checks: Vec<Vec<usize>> = vec![Vec::new(); candidates.len()];
    let mut settled = vec![false; candidates.len()];
    let mut samples: Vec<Vec<u32>> = vec![Vec::new(); candidates.len()];
    let mut needed: BTreeSet<usize> = BTreeSet::new();
    for (c, candidate) in candidates.iter().enumerate() {
        let new = &candidate.set;
        let n = new.len();
        let summary = new.summary();
        samples[c] = summary.sample.clone();
        let hash = ids
            .get(c)
            .map(|id| id.hash.clone())
            .unwrap_or_else(|| new.hash());
        // The same records as an earlier set: fine if selected the same way (that set
        // passed every check against what came before and after it), otherwise not.
        for prior in summaries.iter().filter(|p| p.hash == hash) {
            if prior.selection == candidate.selection {
                settled[c] = true;
            } else {
                verdicts.close[c] = true;
            }
        }
        if settled[c] {
            verdicts.close[c] = false;
            continue;
        }
        let mut need = |p: usize, commons: &mut HashMap<(usize, usize), u64>| {
            if commons.contains_key(&(c, p)) {
                return;
            }
            match common_from_summary(new, &summary, &summaries[p].summary) {
                Some(common) => {
                    commons.insert((c, p), common);
                }
                None => {
                    needed.insert(p);
                }
            }
        };
        for (p, prior) in summaries.iter().enumerate() {
            if prior.hash == hash {
                continue;
            }
            let size = prior.summary.records;
            if near(n, size) {
                targets[c].push(Target::Prior(p));
                need(p, &mut commons);
            }
            if let Some(rows) = table_rows
                && near(n, rows.saturating_sub(size))
            {
                targets[c].push(Target::Complement(p));
                need(p, &mut commons);
            }
            if may_nest(new, &summary, &prior.summary) {
                nest_checks[c].push(p);
                need(p, &mut commons);
            }
        }
        for &(outer, inner) in &nestings {
            if outer >= summaries.len() || inner >= summaries.len() {
                continue;
            }
            if near(n, records(outer).saturating_sub(records(inner))) {
                targets[c].push(Target::Difference(outer, inner));
                need(outer, &mut commons);
                need(inner, &mut commons);
            }
        }
    }

    // Exact intersections with the bitmaps the summaries could not replace.
    let mut cache: HashMap<usize, RecordSet> = HashMap::new();
    load_into(priors, table, needed, &mut cache).await?;
    let common = |c: usize,
                  p: usize,
                  commons: &mut HashMap<(usize, usize), u64>,
                  cache: &HashMap<usize, RecordSet>|
     -> u64 {
        if let Some(known) = commons.get(&(c, p)) {
            return *known;
        }
        let value = cache
            .get(&p)
            .map_or(0, |prior| candidates[c].set.common(prior));
        commons.insert((c, p), value);
        value
    };

    // Per candidate: earlier sets strictly inside it, and strictly around it.
    let mut inside: Vec<Vec<usize>> = vec![Vec::new(); candidates.len()];
    let mut around: Vec<Vec<usize>> = vec![Vec::new(); candidates.len()];
    for (c, candidate) in candidates.iter().enumerate() {
        if settled[c] {
            continue;
        }
        let n = candidate.set.len();
        for target in &targets[c] {
            let close = match *target {
                Target::Prior(p) => {
                    let prior = &summaries[p];
                    let shared = common(c, p, &mut commons, &cache);
                    let same = prior.selection == candidate.selection;
                    too_close(n, prior.summary.records, shared, same, threshold)
                }
                Target::Complement(p) => {
                    let rows = table_rows.unwrap_or(0);
                    let size = rows.saturating_sub(records(p));
                    let shared = n.saturating_sub(common(c, p, &mut commons, &cache));
                    too_close(n, size, shared, false, threshold)
                }
                Target::Difference(outer, inner) => {
                    let size = records(outer).saturating_sub(records(inner));
                    let shared = common(c, outer, &mut commons, &cache).saturating_sub(common(
                        c,
                        inner,
                        &mut commons,
                        &cache,
                    ));
                    too_close(n, size, shared, false, threshold)
                }
            };
            if close {
                verdicts.close[c] = true;
            }
        }
        let id = ids.get(c).cloned().unwrap_or_else(|| SetId::of(candidate));
        for &p in &nest_checks[c] {
            let prior = &summaries[p];
            // Inside a larger earlier set only if every sampled ordinal is in it: most
            // pairs end at the first lookup, without an intersection.
            let known = commons.contains_key(&(c, p));
            if !known
                && n < prior.summary.records
                && let Some(loaded) = cache.get(&p)
                && !samples[c].iter().all(|o| loaded.holds(*o))
            {
                continue;
            }
            let shared = common(c, p, &mut commons, &cache);
            let prior_id = SetId {
                hash: prior.hash.clone(),
                selection: prior.selection.clone(),
            };
            if shared == prior.summary.records && prior.summary.records < n {
                inside[c].push(p);
                verdicts.nestings.push(Nesting {
                    outer: id.clone(),
                    inner: prior_id,
                });
            } else if shared == n && n < prior.summary.records {
                around[c].push(p);
                verdicts.nestings.push(Nesting {
                    outer: prior_id,
                    inner: id.clone(),
                });
            }
        }
    }

    // Covered: earlier sets inside the candidate that together leave fewer than
    // `threshold` of its records (their values add up to all but those), and earlier
    // sets around it whose other known parts leave fewer than `threshold` outside.
    let mut wanted: BTreeSet<usize> = BTreeSet::new();
    for c in 0..candidates.len() {
        if settled[c] || verdicts.close[c] {
            continue;
        }
        let n = candidates[c].set.len();
        let inside_total: u64 = inside[c].iter().map(|p| records(*p)).sum();
        if inside[c].len() >= 2 && inside_total + threshold > n {
            wanted.extend(inside[c].iter().copied());
        }
        for &p in &around[c] {
            let parts = inside_of.get(&p).map(Vec::as_slice).unwrap_or_default();
            let parts_total: u64 = parts.iter().map(|q| records(*q)).sum();
            if !parts.is_empty() && n + parts_total + threshold > records(p) {
                wanted.insert(p);
                wanted.extend(parts.iter().copied());
            }
        }
    }
    load_into(priors, table, wanted, &mut cache).await?;
    verdicts.around = around.clone();
    for (c, candidate) in candidates.iter().enumerate() {
        if settled[c] || verdicts.close[c] {
            continue;
        }
        let n = candidate.set.len();
        let inside_total: u64 = inside[c].iter().map(|p| records(*p)).sum();
        if inside[c].len() >= 2 && inside_total + threshold > n {
            // Only disjoint earlier sets add up to the sum over their union.
            let mut covered = RecordSet::default();
            for p in &inside[c] {
                if let Some(set) = cache.get(p)
                    && covered.common(set) == 0
                {
                    covered.union_with(set);
                }
            }
            covered.optimize();
            let left = n.saturating_sub(candidate.set.common(&covered));
            if left < threshold {
                verdicts.close[c] = true;
                continue;
            }
        }
        for &p in &around[c] {
            let parts = inside_of.get(&p).map(Vec::as_slice).unwrap_or_default();
            let parts_total: u64 = parts.iter().map(|q| records(*q)).sum();
            if parts.is_empty() || n + parts_total + threshold <= records(p) {
                continue;
            }
            let Some(outer) = cache.get(&p) else {
                continue;
            };
            // The candidate and the earlier parts of P disjoint from it and from each
            // other: P's value minus theirs is the sum over the rest of P.
            let mut known = candidate.set.clone();
            for q in parts {
                if let Some(set) = cache.get(q)
                    && known.common(set) == 0
                {
                    known.union_with(set);
                }
            }
            let left = records(p).saturating_sub(outer.common(&known));
            if left < threshold {
                verdicts.close[c] = true;
                break;
            }
        }
    }
    Ok(verdicts)
}

/// Whether one column of an output, with its released cells `released` (disjoint) and
/// the cells it withholds `withheld`, gives away withheld or uncovered records together
/// with the earlier sets on `table`:
///
/// * an earlier `P` with `released ⊊ P ⊆ released ∪ withheld`: `Σ_P` minus the released
///   cells is the sum of withheld cells (a value withheld by the dominance rule, or as
///   a complement in a table with totals);
/// * an earlier `P` strictly around one of the released cells (`around`, positions from
///   [`check_against_priors`]) that the released cells meeting it cover but for fewer
///   than `threshold` records: `east + north − P` after `P = east ∪ north ∖ {42}`.
///   (Cells that each stick out of `P` by a few records, none inside it, are not found.)
pub(crate) async fn column_gives_away<P: PriorRecordSets>(
    priors: &P,
    table: &str,
    threshold: u64,
    released: &[&RecordSet],
    withheld: &[&RecordSet],
    around: &BTreeSet<usize>,
    selection: &str,
) -> Result<bool, DisclosureError> {
    if released.is_empty() {
        return Ok(false);
    }
    let summaries = priors.summaries(table).await?;
    if summaries.is_empty() {
        return Ok(false);
    }
    let mut union = RecordSet::default();
    for cell in released {
        union.union_with(cell);
    }
    union.optimize();
    let mut full = union.clone();
    for cell in withheld {
        full.union_with(cell);
    }
    full.optimize();
    let (n_union, n_full) = (union.len(), full.len());
    let full_summary = full.summary();

    let mut wanted: BTreeSet<usize> = around.clone();
    if n_full > n_union {
        for (p, prior) in summaries.iter().enumerate() {
            let size = prior.summary.records;
            if size > n_union
                && size <= n_full
                && full_summary.min <= prior.summary.min
                && prior.summary.max <= full_summary.max
                && prior.summary.sample.iter().all(|o| full.holds(*o))
                && prior.summary.fits_within(&full_summary)
            {
                wanted.insert(p);
            }
        }
    }
    let mut cache: HashMap<usize, RecordSet> = HashMap::new();
    load_into(priors, table, wanted.iter().copied(), &mut cache).await?;
    for (p, prior) in &cache {
        let size = prior.len();
        let summary = &summaries[*p];
        // Withheld cells recomputable as an earlier set minus the released ones.
        if size > n_union
            && size <= n_full
            && full.common(prior) == size
            && union.common(prior) == n_union
        {
            return Ok(true);
        }
        // Released cells meeting an earlier set around one of them.
        if around.contains(p) {
            let mut meeting = RecordSet::default();
            for cell in released {
                if cell.common(prior) > 0 {
                    meeting.union_with(cell);
                }
            }
            meeting.optimize();
            if meeting.common(prior) == size {
                let left = meeting.len() - size;
                let same = left == 0 && summary.selection == selection;
                if left < threshold && !same {
                    return Ok(true);
                }
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracked(set: RecordSet, selection: &str) -> TrackedSet {
        TrackedSet {
            set,
            selection: selection.to_owned(),
        }
    }

    #[tokio::test]
    async fn a_column_gives_away_withheld_cells_or_a_few_uncovered_records() {
        let tracked_priors = |sets: Vec<RecordSet>| {
            PriorsInMemory::new(sets.into_iter().map(|s| tracked(s, "earlier")).collect())
        };
        let low = RecordSet::from_ordinals(0..50);
        let high = RecordSet::from_ordinals(50..100);
        // An earlier total over both cells, one of which is withheld now.
        let priors = tracked_priors(vec![RecordSet::from_ordinals(0..100)]);
        let none = BTreeSet::new();
        assert!(
            column_gives_away(&priors, "t", 10, &[&low], &[&high], &none, "now")
                .await
                .unwrap()
        );
        // Both released: nothing withheld to give away.
        assert!(
            !column_gives_away(&priors, "t", 10, &[&low, &high], &[], &none, "now")
                .await
                .unwrap()
        );
        // An earlier total over both cells but one record, around one of them.
        let minus_one = RecordSet::from_ordinals((0..100).filter(|o| *o != 42));
        let priors = tracked_priors(vec![minus_one]);
        let around = BTreeSet::from([0]);
        assert!(
            column_gives_away(&priors, "t", 10, &[&low, &high], &[], &around, "now")
                .await
                .unwrap()
        );
        // Ten records short of the cells: fine.
        let minus_ten = RecordSet::from_ordinals(10..100);
        let priors = tracked_priors(vec![minus_ten]);
        assert!(
            !column_gives_away(&priors, "t", 10, &[&low, &high], &[], &around, "now")
                .await
                .unwrap()
        );
    }

    #[test]
    fn only_nested_sets_a_few_records_apart_are_too_close() {
        // Nested, one apart: too close either way round.
        assert!(too_close(100, 99, 99, false, 10));
        assert!(too_close(99, 100, 99, true, 10));
        // Nested, ten apart: fine.
        assert!(!too_close(100, 90, 90, false, 10));
        // Overlapping, neither inside the other: two values cannot isolate a region.
        assert!(!too_close(100, 99, 95, false, 10));
        // Equal: fine only when selected the same way.
        assert!(!too_close(50, 50, 50, true, 10));
        assert!(too_close(50, 50, 50, false, 10));
    }

    #[tokio::test]
    async fn candidates_are_checked_against_priors_differences_and_complements() {
        let mut priors = PriorsInMemory::default();
        let wide = tracked(RecordSet::from_ordinals(30..70), "30-69");
        let low = tracked(RecordSet::from_ordinals(30..50), "30-49");
        let scattered = tracked(
            RecordSet::from_ordinals((0..1000).filter(|o| o % 2 == 0)),
            "evens",
        );
        // Stored one after the other, as the sandbox does, so the nesting of `low` in
        // `wide` is found and recorded.
        for set in [wide.clone(), low.clone(), scattered.clone()] {
            let ids = [SetId::of(&set)];
            let verdicts = check_against_priors(
                std::slice::from_ref(&set),
                &ids,
                &priors,
                "t",
                Some(1000),
                10,
            )
            .await
            .unwrap();
            assert_eq!(verdicts.close, [false]);
            priors.add_released(&crate::disclosure::ReleasedSets {
                table: "t".into(),
                sets: vec![set],
                nestings: verdicts.nestings,
            });
        }
        assert_eq!(priors.nestings.len(), 1, "{:?}", priors.nestings);
        let candidates = vec![
            // One record from an earlier set (a complement of a tiny condition).
            tracked(RecordSet::from_ordinals((30..70).filter(|o| *o != 42)), "a"),
            // The difference of two earlier sets plus one record: the triple.
            tracked(RecordSet::from_ordinals((50..70).chain([42])), "b"),
            // The complement of an earlier set minus one record.
            tracked(
                RecordSet::from_ordinals((0..1000).filter(|o| o % 2 == 1 && *o != 501)),
                "c",
            ),
            // Overlapping without nesting, and far apart: fine.
            tracked(RecordSet::from_ordinals(60..90), "d"),
            // The same records as an earlier set, selected the same way: fine.
            tracked(RecordSet::from_ordinals(30..70), "30-69"),
            // The same records, selected differently: too close.
            tracked(
                RecordSet::from_ordinals(30..70),
                "30-69, written differently",
            ),
            // Exactly the difference of two earlier sets: too close (selected
            // differently by construction).
            tracked(RecordSet::from_ordinals(50..70), "e"),
        ];
        let ids: Vec<SetId> = candidates.iter().map(SetId::of).collect();
        let verdicts = check_against_priors(&candidates, &ids, &priors, "t", Some(1000), 10)
            .await
            .unwrap();
        assert_eq!(verdicts.close, [true, true, true, false, false, true, true]);
        let none = check_against_priors(&candidates, &ids, &NoPriors, "t", Some(1000), 10)
            .await
            .unwrap();
        assert_eq!(none.close, vec![false; candidates.len()]);
    }
}
