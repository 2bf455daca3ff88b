//! Searching the generalisation lattice for the least-lossy k-anonymous (and
//! l-diverse) node within the suppression limit.
//!
//! **Lattice.** A node picks one level per quasi-identifier; its direct
//! generalisations raise one level by one. The lattice has `∏ heights` nodes.
//!
//! **Privacy model at a node.** Records are grouped by their generalised QI tuple. A
//! class is *safe* if it has at least `k` records and, when `l` is set, at least `l`
//! distinct values in every sensitive column (distinct l-diversity). Records in unsafe
//! classes are suppressed; the node *satisfies* the model if at most
//! `floor(max_suppression · n)` records are suppressed. Because ladders are trees, a
//! class of a generalisation is a union of classes of the node, and a union of safe
//! classes is safe: satisfaction is monotone (every generalisation of a satisfying node
//! satisfies; every specialisation of a failing node fails).
//!
//! **Frequency table.** Nodes are never evaluated over rows: the rows are compressed
//! once into the distinct level-0 QI tuples with their counts (and, for l-diversity,
//! the distinct (class, sensitive value) pairs). Evaluating a node groups those
//! classes by their generalised codes, using a dense array when the node's code space
//! is small and a hash map otherwise.
//!
//! **Search (Flash/OLA-style predictive tagging).** Nodes are visited bottom-up by
//! height and, within a height, by increasing monotone loss (the metric's
//! level-only part: LM without suppression, or NUE). From each untagged node a path is
//! built upwards through untagged nodes (always taking the successor with the lowest
//! such loss), and a binary search along the path finds where it starts to satisfy.
//! Each evaluated node tags its whole upward closure (if it satisfies) or downward
//! closure (if it fails), so most nodes are decided without evaluation. When every
//! node is tagged, the *minimal* satisfying nodes (all direct specialisations fail)
//! are exactly those on the boundary; each of them was evaluated, because a node
//! tagged by inference has a satisfying specialisation.
//!
//! **Information loss ([`LossMetric`]).** With n input records, q quasi-identifiers,
//! and a node's equivalence classes E (suppressed = unsafe classes):
//! - **LM** (`loss`, Iyengar's loss metric, ARX "Loss"; the default): each value
//!   costs (leaves − 1)/(domain − 1) of its generalised label, where leaves are the
//!   distinct level-0 values the label covers and domain the distinct level-0 values of
//!   the column; averaged over the n·q cells, every cell of a suppressed record costing 1.
//!   0 = nothing lost, 1 = everything.
//! - **NUE** (`non_uniform_entropy`, ARX's monotonic non-uniform entropy,
//!   `MetricMDNUEntropyPrecomputed`): Σ over quasi-identifiers j and records r of
//!   −log2(a / b), where a = records whose original value of j equals r's and
//!   b = records whose value of j generalises to the same label at the node's level.
//!   Suppressed records are counted as if released at the node's levels (the
//!   "monotonic" variant: suppression is free), so NUE depends on the levels only and
//!   never decreases upwards. Reproduces ARX's published Adult optima (407,289.54 at
//!   k = 5 without suppression, 255,559.85 with 4 %).
//! - **DM** (`discernibility`, ARX's non-monotonic "Discernability",
//!   `MetricSDNMDiscernability`): Σ over released classes |E|² + Σ over suppressed
//!   classes n·|E| (each suppressed record costs n).
//! - **AECS** (`average_class_size`, ARX's "Average equivalence class size",
//!   `MetricSDAECS`, not normalised by k): n / (released classes + 1 if any record is
//!   suppressed), i.e. the suppressed records form one extra class.
//!
//! **Choosing the node.** NUE never decreases upwards, so its optimum lies on the
//! minimal boundary and is chosen among the minimal nodes. LM with suppression is not
//! monotone; as before (and as OLA does) it is chosen among the minimal nodes. DM and
//! AECS with a positive suppression limit are not monotone either, and on real data
//! their optimum can lie above the boundary (Adult, k = 5, 4 %: DM 7,220,555 above vs
//! 22,034,575 on it), so every satisfying node is considered, pruned by a monotone
//! lower bound: DM ≥ DM* = Σ over all classes |E|², and AECS ≥ n / (all classes); both
//! bounds never decrease upwards, so a node whose predecessors' bound already exceeds
//! the best value found is skipped without evaluation. Without suppression DM = DM* and
//! AECS = n / classes are monotone and the minimal nodes suffice. Ties go to fewer
//! suppressed records, then the lower node, then the lower index.

use std::collections::BTreeMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

use super::generalise::{FastMap, Ladder};

/// Largest lattice searched; beyond it the declared ladders must be shortened.
pub const MAX_NODES: u64 = 1 << 22;

/// Name of the information-loss metric, as written in reports.
pub const LOSS_METRIC: &str = "LM (Iyengar loss metric, ARX \"Loss\"): mean over records and quasi-identifiers of (leaves-1)/(domain-1); suppressed records count 1";

/// The information-loss metric the search minimises (see the module doc for formulas).
///
/// Serialised in snake_case (`loss`, `non_uniform_entropy`, `discernibility`,
/// `average_class_size`); the short names `lm`, `nue`, `dm`, `aecs` are accepted too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LossMetric {
    /// Iyengar's LM (ARX "Loss"), suppressed records costing 1: today's default.
    #[default]
    #[serde(alias = "lm")]
    Loss,
    /// ARX's monotonic non-uniform entropy (NUE), suppressed records at the node's levels.
    #[serde(alias = "nue")]
    NonUniformEntropy,
    /// ARX's (non-monotonic) discernibility DM, suppressed records costing n each.
    #[serde(alias = "dm")]
    Discernibility,
    /// ARX's average equivalence class size (AECS), suppressed records one extra class.
    #[serde(alias = "aecs", alias = "c_avg")]
    AverageClassSize,
}

impl LossMetric {
    /// Every metric, in declaration order.
    pub const ALL: [LossMetric; 4] = [
        LossMetric::Loss,
        LossMetric::NonUniformEntropy,
        LossMetric::Discernibility,
        LossMetric::AverageClassSize,
    ];

    /// The serialised (snake_case) name.
    pub fn as_str(self) -> &'static str {
        match self {
            LossMetric::Loss => "loss",
            LossMetric::NonUniformEntropy => "non_uniform_entropy",
            LossMetric::Discernibility => "discernibility",
            LossMetric::AverageClassSize => "average_class_size",
        }
    }

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            LossMetric::Loss => "LM",
            LossMetric::NonUniformEntropy => "NUE",
            LossMetric::Discernibility => "DM",
            LossMetric::AverageClassSize => "AECS",
        }
    }

    /// One-line definition for reports.
    pub fn description(self) -> &'static str {
        match self {
            LossMetric::Loss => LOSS_METRIC,
            LossMetric::NonUniformEntropy => {
                "NUE (ARX monotonic non-uniform entropy): sum over quasi-identifiers and records of -log2(records with the original value / records with the same generalised value); suppressed records count at the node's levels"
            }
            LossMetric::Discernibility => {
                "DM (ARX discernibility): sum over released classes of size^2, plus n per suppressed record"
            }
            LossMetric::AverageClassSize => {
                "AECS (ARX average equivalence class size): records / (released classes + 1 if any record is suppressed)"
            }
        }
    }

    /// Whether, under a suppression limit of `limit` records, the search picks among
    /// the minimal satisfying nodes only (true for LM as before, and for NUE, which is
    /// monotone); otherwise every satisfying node is considered.
    pub fn chosen_among_minimal(self, limit: u64) -> bool {
        match self {
            LossMetric::Loss | LossMetric::NonUniformEntropy => true,
            LossMetric::Discernibility | LossMetric::AverageClassSize => limit == 0,
        }
    }
}

impl std::fmt::Display for LossMetric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A metric name that is not one of [`LossMetric`]'s.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown information-loss metric; expected one of loss, non_uniform_entropy, discernibility, average_class_size"
)]
pub struct UnknownLossMetric;

impl std::str::FromStr for LossMetric {
    type Err = UnknownLossMetric;

    /// Accepts the snake_case names and the short names (case-insensitive).
    fn from_str(s: &str) -> Result<LossMetric, UnknownLossMetric> {
        match s.trim().to_ascii_lowercase().as_str() {
            "loss" | "lm" => Ok(LossMetric::Loss),
            "non_uniform_entropy" | "nue" => Ok(LossMetric::NonUniformEntropy),
            "discernibility" | "dm" => Ok(LossMetric::Discernibility),
            "average_class_size" | "aecs" | "c_avg" => Ok(LossMetric::AverageClassSize),
            _ => Err(UnknownLossMetric),
        }
    }
}

/// Why the search has no answer.
#[derive(Debug, thiserror::Error)]
pub enum LatticeError {
    /// The product of ladder heights is too large to search exhaustively.
    #[error(
        "the generalisation lattice has {nodes} nodes, more than the {max} that can be searched; use fewer quasi-identifiers or shorter ladders"
    )]
    TooLarge {
        /// Nodes in the lattice (saturating).
        nodes: u64,
        /// The limit.
        max: u64,
    },
    /// Even the fully generalised node suppresses too many records.
    #[error("no generalisation reaches k={k}{l} with at most {limit} suppressed records")]
    NoSolution {
        /// Target k.
        k: u32,
        /// ", l=…" when l-diversity was requested.
        l: String,
        /// Suppression limit in records.
        limit: u64,
    },
    /// More records than class identifiers can address.
    #[error("too many records for one de-identification run")]
    TooManyRecords,
}

/// How much of the lattice was searched.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct LatticeStats {
    /// Nodes in the lattice.
    pub nodes: u64,
    /// Nodes whose classes were actually computed.
    pub evaluated: u64,
    /// Nodes decided by monotonicity without evaluation.
    pub tagged_by_inference: u64,
}

/// Information loss of the released data.
///
/// `metric`/`value`/`per_column` are always LM (comparable across runs); the metric
/// that chose the node is `optimised`, and every metric's value is reported.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct InformationLoss {
    /// The metric of `value` and `per_column`: always LM ([`LOSS_METRIC`]).
    pub metric: String,
    /// LM over all input records (suppressed records count 1), 0 = none, 1 = all.
    pub value: f64,
    /// Mean over quasi-identifiers of level / top level (ARX "generalisation intensity").
    pub generalisation_intensity: f64,
    /// Suppressed records / input records.
    pub suppressed_share: f64,
    /// LM per quasi-identifier (suppressed records count 1).
    pub per_column: BTreeMap<String, f64>,
    /// The metric the search minimised to choose the node.
    #[serde(default)]
    pub optimised: LossMetric,
    /// The value of `optimised` at the chosen node.
    #[serde(default)]
    pub optimised_value: f64,
    /// ARX's monotonic non-uniform entropy (suppressed records at the node's levels).
    #[serde(default)]
    pub non_uniform_entropy: f64,
    /// ARX's discernibility DM (suppressed records cost n each).
    #[serde(default)]
    pub discernibility: f64,
    /// ARX's average equivalence class size (suppressed records one extra class).
    #[serde(default)]
    pub average_class_size: f64,
}

/// The records compressed to their distinct level-0 quasi-identifier tuples.
#[derive(Clone, Debug)]
pub struct FrequencyTable {
    /// Number of quasi-identifiers.
    pub qis: usize,
    /// Level-0 codes of each class, class-major (`qis` per class).
    pub tuples: Vec<u32>,
    /// Records per class.
    pub counts: Vec<u32>,
    /// Per sensitive column, the distinct pairs `class << 32 | value code`, sorted.
    pub sensitive: Vec<Vec<u64>>,
    /// Number of records.
    pub records: u64,
}

/// Groups `n` items by their codes in `cards.len()` dimensions.
struct Grouping {
    /// Group of each item.
    ids: Vec<u32>,
    /// First item of each group.
    firsts: Vec<u32>,
}

fn group_hashed<K: Hash + Eq>(n: usize, key: impl Fn(usize) -> K) -> Grouping {
    let mut index: FastMap<K, u32> = FastMap::default();
    let mut ids = Vec::with_capacity(n);
    let mut firsts = Vec::new();
    for i in 0..n {
        let next = firsts.len() as u32;
        let id = *index.entry(key(i)).or_insert_with(|| {
            firsts.push(i as u32);
            next
        });
        ids.push(id);
    }
    Grouping { ids, firsts }
}

/// Groups items by a mixed-radix key over `cards`; `code(i, j)` is item i's code in dimension j.
fn group(n: usize, cards: &[u32], code: impl Fn(usize, usize) -> u32) -> Grouping {
    let q = cards.len();
    // Mixed-radix strides, with the total key space (None if it overflows u128).
    let mut space: Option<u128> = Some(1);
    let mut strides = Vec::with_capacity(q);
    for &c in cards {
        strides.push(space.unwrap_or(0));
        space = space.and_then(|s| s.checked_mul(u128::from(c.max(1))));
    }
    let dense_limit = (4 * n as u128).clamp(1 << 12, 1 << 24);
    match space {
        Some(s) if s <= dense_limit => {
            // Small key space: direct addressing, no hashing at all.
            let strides: Vec<usize> = strides.iter().map(|&s| s as usize).collect();
            let mut slot = vec![u32::MAX; s as usize];
            let mut ids = Vec::with_capacity(n);
            let mut firsts = Vec::new();
            for i in 0..n {
                let mut k = 0usize;
                for (j, st) in strides.iter().enumerate() {
                    k += code(i, j) as usize * st;
                }
                if slot[k] == u32::MAX {
                    slot[k] = firsts.len() as u32;
                    firsts.push(i as u32);
                }
                ids.push(slot[k]);
            }
            Grouping { ids, firsts }
        }
        Some(s) if s <= u128::from(u64::MAX) => {
            let strides: Vec<u64> = strides.iter().map(|&s| s as u64).collect();
            group_hashed(n, |i| {
                strides
                    .iter()
                    .enumerate()
                    .fold(0u64, |k, (j, st)| k + u64::from(code(i, j)) * st)
            })
        }
        Some(_) => group_hashed(n, |i| {
            strides
                .iter()
                .enumerate()
                .fold(0u128, |k, (j, st)| k + u128::from(code(i, j)) * st)
        }),
        None => group_hashed(n, |i| (0..q).map(|j| code(i, j)).collect::<Vec<u32>>()),
    }
}

impl FrequencyTable {
    /// Compresses the rows; also returns the class of every row.
    ///
    /// `sensitive` holds one code per row for each sensitive column.
    pub fn build(
        ladders: &[Ladder],
        sensitive: &[Vec<u32>],
        rows: usize,
    ) -> Result<(FrequencyTable, Vec<u32>), LatticeError> {
        if rows > u32::MAX as usize {
            return Err(LatticeError::TooManyRecords);
        }
        let cards: Vec<u32> = ladders.iter().map(|l| l.distinct).collect();
        let grouping = group(rows, &cards, |i, j| ladders[j].codes[i]);
        let q = ladders.len();
        let mut tuples = Vec::with_capacity(grouping.firsts.len() * q);
        for &r in &grouping.firsts {
            tuples.extend(ladders.iter().map(|l| l.codes[r as usize]));
        }
        let mut counts = vec![0u32; grouping.firsts.len()];
        for &id in &grouping.ids {
            counts[id as usize] += 1;
        }
        let sensitive = sensitive
            .iter()
            .map(|codes| {
                let mut pairs: Vec<u64> = grouping
                    .ids
                    .iter()
                    .zip(codes)
                    .map(|(&c, &v)| (u64::from(c) << 32) | u64::from(v))
                    .collect();
                pairs.sort_unstable();
                pairs.dedup();
                pairs
            })
            .collect();
        let table = FrequencyTable {
            qis: q,
            tuples,
            counts,
            sensitive,
            records: rows as u64,
        };
        Ok((table, grouping.ids))
    }

    /// Number of distinct level-0 tuples.
    pub fn classes(&self) -> usize {
        self.counts.len()
    }
}

/// The equivalence classes of one node.
#[derive(Clone, Debug)]
pub struct Classification {
    /// Node class of each level-0 class.
    pub ids: Vec<u32>,
    /// Records per node class.
    pub sizes: Vec<u64>,
    /// Fewest distinct values over the sensitive columns, per node class (empty without sensitive columns).
    pub distinct: Vec<u32>,
    /// Whether each node class is released (safe) or suppressed.
    pub safe: Vec<bool>,
    /// Records suppressed.
    pub suppressed: u64,
}

/// The outcome of evaluating one node.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodeEval {
    /// Records in unsafe classes.
    pub suppressed: u64,
    /// Whether `suppressed` is within the limit.
    pub satisfied: bool,
    /// LM with suppressed records counting 1.
    pub loss: f64,
    /// The search's metric ([`Search::metric`]); equal to `loss` for LM.
    pub value: f64,
    /// A lower bound of `value` that never decreases upwards in the lattice (over all
    /// nodes, not only satisfying ones): LM without suppression for LM, `value` itself
    /// for NUE, DM* = Σ |E|² over all classes for DM, n / classes for AECS.
    pub bound: f64,
}

/// The chosen node and how it was found.
#[derive(Clone, Debug)]
pub struct SearchResult {
    /// The level of each quasi-identifier.
    pub node: Vec<u8>,
    /// Its evaluation.
    pub eval: NodeEval,
    /// Search effort.
    pub stats: LatticeStats,
    /// Every minimal satisfying node (the chosen one is among them unless the metric
    /// considers every satisfying node, see [`LossMetric::chosen_among_minimal`]).
    pub minimal: Vec<Vec<u8>>,
}

/// A k-anonymity (+ distinct l-diversity) problem over a frequency table.
pub struct Search<'a> {
    ladders: &'a [Ladder],
    table: &'a FrequencyTable,
    k: u32,
    l: Option<u32>,
    limit: u64,
    metric: LossMetric,
    /// NUE summed over records, per quasi-identifier and level.
    nue: Vec<Vec<f64>>,
}

/// NUE per quasi-identifier and level: Σ over records of −log2(a / b), with a the
/// records sharing the original value and b those sharing the generalised label.
fn entropy_table(ladders: &[Ladder], table: &FrequencyTable) -> Vec<Vec<f64>> {
    let q = table.qis;
    ladders
        .iter()
        .enumerate()
        .map(|(j, ladder)| {
            // Records per level-0 code, from the frequency table.
            let mut a = vec![0u64; ladder.distinct as usize];
            for (c, &count) in table.counts.iter().enumerate() {
                a[table.tuples[c * q + j] as usize] += u64::from(count);
            }
            (0..ladder.height())
                .map(|lv| {
                    if lv == 0 {
                        return 0.0;
                    }
                    let map = &ladder.levels[lv - 1].map;
                    let mut b = vec![0u64; ladder.cardinality(lv) as usize];
                    for (v, &av) in a.iter().enumerate() {
                        b[map[v] as usize] += av;
                    }
                    a.iter()
                        .enumerate()
                        .filter(|&(_, &av)| av > 0)
                        .map(|(v, &av)| {
                            let av = av as f64;
                            -av * (av / b[map[v] as usize] as f64).log2()
                        })
                        .sum::<f64>()
                })
                .collect()
        })
        .collect()
}

const UNKNOWN: u8 = 0;
const SATISFIED: u8 = 1;
const FAILED: u8 = 2;

impl<'a> Search<'a> {
    /// Sets up a search; `limit` is the number of records that may be suppressed.
    ///
    /// Without quasi-identifiers k is vacuous (nothing links a record), so only l applies.
    pub fn new(
        ladders: &'a [Ladder],
        table: &'a FrequencyTable,
        k: u32,
        l: Option<u32>,
        limit: u64,
    ) -> Search<'a> {
        let k = if ladders.is_empty() { 1 } else { k };
        Search {
            ladders,
            table,
            k,
            l,
            limit,
            metric: LossMetric::Loss,
            nue: entropy_table(ladders, table),
        }
    }

    /// Chooses the information-loss metric to minimise (LM by default).
    pub fn with_metric(mut self, metric: LossMetric) -> Search<'a> {
        self.metric = metric;
        self
    }

    /// The metric the search minimises.
    pub fn metric(&self) -> LossMetric {
        self.metric
    }

    /// NUE of `node` (suppressed records at the node's levels): depends on the levels only.
    pub fn non_uniform_entropy(&self, node: &[u8]) -> f64 {
        self.nue
            .iter()
            .zip(node)
            .map(|(per_level, &lv)| per_level[lv as usize])
            .sum()
    }

    /// DM of a classification (suppressed records cost n each) and DM* (Σ |E|² over all
    /// classes, its monotone lower bound).
    fn discernibility(&self, cls: &Classification) -> (f64, f64) {
        let n = u128::from(self.table.records);
        let (mut dm, mut dm_star) = (0u128, 0u128);
        for (&size, &safe) in cls.sizes.iter().zip(&cls.safe) {
            let size = u128::from(size);
            dm_star += size * size;
            dm += if safe { size * size } else { n * size };
        }
        (dm as f64, dm_star as f64)
    }

    /// AECS of a classification (suppressed records form one extra class) and n / classes
    /// (its monotone lower bound).
    fn average_class_size(&self, cls: &Classification) -> (f64, f64) {
        let n = self.table.records as f64;
        let released = cls.safe.iter().filter(|&&ok| ok).count() as u64;
        let groups = released + u64::from(cls.suppressed > 0);
        let all = cls.sizes.iter().filter(|&&s| s > 0).count() as u64;
        let per = |classes: u64| if classes > 0 { n / classes as f64 } else { 0.0 };
        (per(groups), per(all))
    }

    /// Computes the classes of `node` and which of them are safe.
    pub fn classify(&self, node: &[u8]) -> Classification {
        let t = self.table;
        let q = t.qis;
        let maps: Vec<Option<&[u32]>> = self
            .ladders
            .iter()
            .zip(node)
            .map(|(ladder, &lv)| (lv > 0).then(|| ladder.levels[lv as usize - 1].map.as_slice()))
            .collect();
        let cards: Vec<u32> = self
            .ladders
            .iter()
            .zip(node)
            .map(|(l, &lv)| l.cardinality(lv as usize))
            .collect();
        let grouping = group(t.classes(), &cards, |c, j| {
            let code0 = t.tuples[c * q + j];
            match maps[j] {
                Some(m) => m[code0 as usize],
                None => code0,
            }
        });
        let groups = grouping.firsts.len();
        let mut sizes = vec![0u64; groups];
        for (c, &g) in grouping.ids.iter().enumerate() {
            sizes[g as usize] += u64::from(t.counts[c]);
        }
        let mut distinct: Vec<u32> = Vec::new();
        for pairs in &t.sensitive {
            let mut mapped: Vec<u64> = pairs
                .iter()
                .map(|&p| (u64::from(grouping.ids[(p >> 32) as usize]) << 32) | (p & 0xffff_ffff))
                .collect();
            mapped.sort_unstable();
            mapped.dedup();
            let mut count = vec![0u32; groups];
            for p in mapped {
                count[(p >> 32) as usize] += 1;
            }
            if distinct.is_empty() {
                distinct = count;
            } else {
                distinct
                    .iter_mut()
                    .zip(count)
                    .for_each(|(d, c)| *d = (*d).min(c));
            }
        }
        let l = self.l.unwrap_or(1);
        let safe: Vec<bool> = (0..groups)
            .map(|g| {
                sizes[g] >= u64::from(self.k)
                    && (self.l.is_none() || distinct.get(g).is_some_and(|&d| d >= l))
            })
            .collect();
        let suppressed = sizes
            .iter()
            .zip(&safe)
            .filter(|(_, ok)| !**ok)
            .map(|(s, _)| s)
            .sum();
        Classification {
            ids: grouping.ids,
            sizes,
            distinct,
            safe,
            suppressed,
        }
    }

    /// LM of `node` with its suppressed records counting 1, per quasi-identifier (sums over records).
    fn loss_sums(&self, node: &[u8], cls: &Classification) -> Vec<f64> {
        let q = self.table.qis;
        let mut sums: Vec<f64> = self
            .ladders
            .iter()
            .zip(node)
            .map(|(l, &lv)| l.row_loss[lv as usize])
            .collect();
        if cls.suppressed > 0 {
            for (c, &g) in cls.ids.iter().enumerate() {
                if !cls.safe[g as usize] {
                    let count = f64::from(self.table.counts[c]);
                    for (j, ladder) in self.ladders.iter().enumerate() {
                        let lost = ladder.loss_at(node[j] as usize, self.table.tuples[c * q + j]);
                        sums[j] += count * (1.0 - lost);
                    }
                }
            }
        }
        sums
    }

    /// Evaluates one node.
    pub fn evaluate(&self, node: &[u8]) -> NodeEval {
        let cls = self.classify(node);
        self.eval_of(node, &cls)
    }

    fn eval_of(&self, node: &[u8], cls: &Classification) -> NodeEval {
        let denom = self.table.records as f64 * self.ladders.len() as f64;
        let loss = if denom > 0.0 {
            self.loss_sums(node, cls).iter().sum::<f64>() / denom
        } else {
            0.0
        };
        let (value, bound) = match self.metric {
            LossMetric::Loss => {
                let unsuppressed: f64 = self
                    .ladders
                    .iter()
                    .zip(node)
                    .map(|(l, &lv)| l.row_loss[lv as usize])
                    .sum();
                let bound = if denom > 0.0 {
                    unsuppressed / denom
                } else {
                    0.0
                };
                (loss, bound.min(loss))
            }
            LossMetric::NonUniformEntropy => {
                let v = self.non_uniform_entropy(node);
                (v, v)
            }
            LossMetric::Discernibility => self.discernibility(cls),
            LossMetric::AverageClassSize => self.average_class_size(cls),
        };
        NodeEval {
            suppressed: cls.suppressed,
            satisfied: cls.suppressed <= self.limit,
            loss,
            value,
            bound,
        }
    }

    /// Information loss of `node`, given its classification.
    pub fn information_loss(&self, node: &[u8], cls: &Classification) -> InformationLoss {
        let n = self.table.records as f64;
        let sums = self.loss_sums(node, cls);
        let q = self.ladders.len() as f64;
        let per_column: BTreeMap<String, f64> = self
            .ladders
            .iter()
            .zip(&sums)
            .map(|(l, s)| (l.column.clone(), if n > 0.0 { s / n } else { 0.0 }))
            .collect();
        let intensity = self
            .ladders
            .iter()
            .zip(node)
            .map(|(l, &lv)| {
                if l.height() > 1 {
                    f64::from(lv) / (l.height() - 1) as f64
                } else {
                    0.0
                }
            })
            .sum::<f64>();
        let lm = if n > 0.0 && q > 0.0 {
            sums.iter().sum::<f64>() / (n * q)
        } else {
            0.0
        };
        let non_uniform_entropy = self.non_uniform_entropy(node);
        let (discernibility, _) = self.discernibility(cls);
        let (average_class_size, _) = self.average_class_size(cls);
        InformationLoss {
            metric: LOSS_METRIC.to_owned(),
            value: lm,
            generalisation_intensity: if q > 0.0 { intensity / q } else { 0.0 },
            suppressed_share: if n > 0.0 {
                cls.suppressed as f64 / n
            } else {
                0.0
            },
            per_column,
            optimised: self.metric,
            optimised_value: match self.metric {
                LossMetric::Loss => lm,
                LossMetric::NonUniformEntropy => non_uniform_entropy,
                LossMetric::Discernibility => discernibility,
                LossMetric::AverageClassSize => average_class_size,
            },
            non_uniform_entropy,
            discernibility,
            average_class_size,
        }
    }

    /// Searches the lattice for the satisfying node with the lowest value of the metric
    /// (among the minimal nodes unless [`LossMetric::chosen_among_minimal`] says otherwise).
    pub fn run(&self) -> Result<SearchResult, LatticeError> {
        let heights: Vec<usize> = self.ladders.iter().map(Ladder::height).collect();
        let total = heights
            .iter()
            .try_fold(1u64, |acc, &h| acc.checked_mul(h as u64))
            .unwrap_or(u64::MAX);
        if total > MAX_NODES {
            return Err(LatticeError::TooLarge {
                nodes: total,
                max: MAX_NODES,
            });
        }
        let lattice = Lattice::new(heights);
        let total = total as usize;
        // Monotone, level-only loss per node, used to order the traversal: NUE for NUE,
        // LM without suppression otherwise.
        let level_cost: Vec<&[f64]> = match self.metric {
            LossMetric::NonUniformEntropy => self.nue.iter().map(Vec::as_slice).collect(),
            _ => self.ladders.iter().map(|l| l.row_loss.as_slice()).collect(),
        };
        let mloss = |idx: usize| -> f64 {
            let mut levels = vec![0u8; lattice.heights.len()];
            lattice.decode(idx, &mut levels);
            level_cost
                .iter()
                .zip(&levels)
                .map(|(cost, &lv)| cost[lv as usize])
                .sum()
        };
        let mut order: Vec<u32> = (0..total as u32).collect();
        order.sort_by_cached_key(|&i| (lattice.height_of(i as usize), mloss(i as usize).to_bits()));

        let mut state = vec![UNKNOWN; total];
        let mut evals: FastMap<usize, NodeEval> = FastMap::default();
        let mut levels = vec![0u8; lattice.heights.len()];
        let mut evaluate =
            |idx: usize, state: &mut Vec<u8>, evals: &mut FastMap<usize, NodeEval>| -> bool {
                lattice.decode(idx, &mut levels);
                let e = self.evaluate(&levels);
                evals.insert(idx, e);
                if e.satisfied {
                    lattice.tag(idx, SATISFIED, state);
                } else {
                    lattice.tag(idx, FAILED, state);
                }
                e.satisfied
            };

        for &start in &order {
            let start = start as usize;
            if state[start] != UNKNOWN {
                continue;
            }
            // A path upwards through untagged nodes, cheapest successor first.
            let mut path = vec![start];
            let mut cur = start;
            loop {
                let next = lattice
                    .successors(cur)
                    .filter(|&s| state[s] == UNKNOWN)
                    .min_by(|&a, &b| mloss(a).total_cmp(&mloss(b)).then(a.cmp(&b)));
                match next {
                    Some(s) => {
                        path.push(s);
                        cur = s;
                    }
                    None => break,
                }
            }
            // Binary search for the first satisfying node on the (monotone) path.
            let (mut lo, mut hi) = (0usize, path.len());
            while lo < hi {
                let mid = lo + (hi - lo) / 2;
                let tagged = state[path[mid]];
                let sat = match tagged {
                    SATISFIED => true,
                    FAILED => false,
                    _ => evaluate(path[mid], &mut state, &mut evals),
                };
                if sat {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
        }

        let top = total - 1;
        if state[top] != SATISFIED {
            return Err(LatticeError::NoSolution {
                k: self.k,
                l: self.l.map(|l| format!(", l={l}")).unwrap_or_default(),
                limit: self.limit,
            });
        }
        let mut minimal = Vec::new();
        for idx in 0..total {
            if state[idx] == SATISFIED && lattice.predecessors(idx).all(|p| state[p] == FAILED) {
                minimal.push(idx);
            }
        }
        // Lower value, then fewer suppressed records, then the lower node, then the lower index.
        let better = |idx: usize, e: &NodeEval, best: &Option<(usize, NodeEval)>| match best {
            None => true,
            Some((b, be)) => e
                .value
                .total_cmp(&be.value)
                .then(e.suppressed.cmp(&be.suppressed))
                .then(lattice.height_of(idx).cmp(&lattice.height_of(*b)))
                .then(idx.cmp(b))
                .is_lt(),
        };
        let mut best: Option<(usize, NodeEval)> = None;
        let mut extra = 0u64;
        for &idx in &minimal {
            let e = match evals.get(&idx) {
                Some(e) => *e,
                None => {
                    // Unreachable when satisfaction is monotone; evaluate rather than guess.
                    extra += 1;
                    lattice.decode(idx, &mut levels);
                    self.evaluate(&levels)
                }
            };
            if better(idx, &e, &best) {
                best = Some((idx, e));
            }
        }
        if !self.metric.chosen_among_minimal(self.limit) {
            // The optimum may lie above the boundary: consider every satisfying node,
            // skipping those whose monotone lower bound (propagated from below) already
            // exceeds the best value. Index order visits predecessors (idx − stride) first.
            let mut bound = vec![f64::NEG_INFINITY; total];
            for idx in 0..total {
                let mut lb = lattice
                    .predecessors(idx)
                    .map(|p| bound[p])
                    .fold(f64::NEG_INFINITY, f64::max);
                if let Some(e) = evals.get(&idx) {
                    lb = lb.max(e.bound);
                }
                let promising = match &best {
                    None => true,
                    Some((_, be)) => lb <= be.value,
                };
                if state[idx] == SATISFIED && promising {
                    let e = if let Some(e) = evals.get(&idx).copied() {
                        e
                    } else {
                        lattice.decode(idx, &mut levels);
                        let e = self.evaluate(&levels);
                        evals.insert(idx, e);
                        e
                    };
                    lb = lb.max(e.bound);
                    if better(idx, &e, &best) {
                        best = Some((idx, e));
                    }
                }
                bound[idx] = lb;
            }
        }
        let Some((chosen, eval)) = best else {
            return Err(LatticeError::NoSolution {
                k: self.k,
                l: self.l.map(|l| format!(", l={l}")).unwrap_or_default(),
                limit: self.limit,
            });
        };
        let decode = |idx: usize| {
            let mut v = vec![0u8; lattice.heights.len()];
            lattice.decode(idx, &mut v);
            v
        };
        let evaluated = evals.len() as u64 + extra;
        Ok(SearchResult {
            node: decode(chosen),
            eval,
            stats: LatticeStats {
                nodes: total as u64,
                evaluated,
                tagged_by_inference: (total as u64).saturating_sub(evaluated),
            },
            minimal: minimal.into_iter().map(decode).collect(),
        })
    }
}

/// Node indexing: mixed radix over the ladder heights, QI 0 most significant.
struct Lattice {
    heights: Vec<usize>,
    strides: Vec<usize>,
}

impl Lattice {
    fn new(heights: Vec<usize>) -> Lattice {
        let mut strides = vec![1usize; heights.len()];
        for j in (0..heights.len().saturating_sub(1)).rev() {
            strides[j] = strides[j + 1] * heights[j + 1];
        }
        Lattice { heights, strides }
    }

    fn level(&self, idx: usize, j: usize) -> usize {
        (idx / self.strides[j]) % self.heights[j]
    }

    fn decode(&self, idx: usize, out: &mut [u8]) {
        for (j, o) in out.iter_mut().enumerate() {
            *o = self.level(idx, j) as u8;
        }
    }

    fn height_of(&self, idx: usize) -> usize {
        (0..self.heights.len()).map(|j| self.level(idx, j)).sum()
    }

    fn successors(&self, idx: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.heights.len())
            .filter(move |&j| self.level(idx, j) + 1 < self.heights[j])
            .map(move |j| idx + self.strides[j])
    }

    fn predecessors(&self, idx: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.heights.len())
            .filter(move |&j| self.level(idx, j) > 0)
            .map(move |j| idx - self.strides[j])
    }

    /// Tags `idx` and its upward (SATISFIED) or downward (FAILED) closure.
    ///
    /// Tagged sets stay closed, so the walk stops at nodes that already carry the tag.
    fn tag(&self, idx: usize, tag: u8, state: &mut [u8]) {
        let mut stack = vec![idx];
        while let Some(x) = stack.pop() {
            if state[x] == tag {
                continue;
            }
            debug_assert_eq!(state[x], UNKNOWN, "satisfaction must be monotone");
            state[x] = tag;
            if tag == SATISFIED {
                stack.extend(self.successors(x));
            } else {
                stack.extend(self.predecessors(x));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use polars::prelude::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::deid::schema::{ColumnRole, ColumnSpec, ColumnType, DeidRule};

    fn ladders(rows: usize, seed: u64) -> (Vec<Ladder>, Vec<Vec<u32>>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let specs = [(100.0, 4u8), (3.0, 2), (10.0, 3)];
        let ladders = specs
            .iter()
            .enumerate()
            .map(|(j, &(width, levels))| {
                let values: Vec<Option<i64>> = (0..rows)
                    .map(|_| {
                        (rng.gen_range(0..20) > 0).then(|| rng.gen_range(0..(width as i64 * 6)))
                    })
                    .collect();
                let spec = ColumnSpec {
                    name: format!("q{j}"),
                    column_type: ColumnType::Integer,
                    role: ColumnRole::QuasiIdentifier,
                    rule: DeidRule::Bin {
                        width: width / 4.0,
                        levels,
                    },
                    domain: None,
                    nullable: true,
                };
                Ladder::build(
                    &Column::new(spec.name.as_str().into(), values),
                    &spec,
                    &BTreeMap::new(),
                )
                .unwrap()
            })
            .collect();
        let sensitive = vec![(0..rows).map(|_| rng.gen_range(0..3)).collect()];
        (ladders, sensitive)
    }

    /// Brute force: evaluate every node, compare the minimal set with the search's.
    #[test]
    fn tagging_matches_exhaustive_evaluation() {
        for (seed, k, l, limit) in [
            (1, 3, None, 5),
            (2, 10, Some(2), 20),
            (3, 1, None, 0),
            (4, 25, Some(3), 0),
        ] {
            let rows = 600;
            let (ladders, sensitive) = ladders(rows, seed);
            let (table, _) = FrequencyTable::build(&ladders, &sensitive, rows).unwrap();
            let search = Search::new(&ladders, &table, k, l, limit);
            let heights: Vec<usize> = ladders.iter().map(Ladder::height).collect();
            let lattice = Lattice::new(heights.clone());
            let total: usize = heights.iter().product();
            let mut sat = vec![false; total];
            for (idx, s) in sat.iter_mut().enumerate() {
                let mut node = vec![0u8; heights.len()];
                lattice.decode(idx, &mut node);
                *s = search.evaluate(&node).satisfied;
            }
            // Monotone: every successor of a satisfying node satisfies.
            for idx in 0..total {
                if sat[idx] {
                    assert!(lattice.successors(idx).all(|s| sat[s]));
                }
            }
            let expected: Vec<Vec<u8>> = (0..total)
                .filter(|&i| sat[i] && lattice.predecessors(i).all(|p| !sat[p]))
                .map(|i| {
                    let mut node = vec![0u8; heights.len()];
                    lattice.decode(i, &mut node);
                    node
                })
                .collect();
            match search.run() {
                Ok(result) => {
                    assert_eq!(result.minimal, expected, "seed {seed}");
                    assert!(expected.contains(&result.node));
                    let best = expected
                        .iter()
                        .map(|n| search.evaluate(n).loss)
                        .fold(f64::INFINITY, f64::min);
                    assert_eq!(result.eval.loss, best);
                    assert!(result.stats.evaluated < total as u64);
                }
                Err(LatticeError::NoSolution { .. }) => assert!(expected.is_empty()),
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// Brute force per metric: the search's node is the best satisfying node (among the
    /// minimal ones for LM, as before), and every bound is monotone and below its value.
    #[test]
    fn every_metric_finds_the_exhaustive_optimum() {
        for (seed, k, l, limit) in [
            (1, 3, None, 5),
            (2, 10, Some(2), 20),
            (3, 1, None, 0),
            (4, 25, Some(3), 0),
            (5, 5, None, 40),
            (6, 8, None, 0),
        ] {
            let rows = 600;
            let (ladders, sensitive) = ladders(rows, seed);
            let (table, _) = FrequencyTable::build(&ladders, &sensitive, rows).unwrap();
            let heights: Vec<usize> = ladders.iter().map(Ladder::height).collect();
            let lattice = Lattice::new(heights.clone());
            let total: usize = heights.iter().product();
            let decode = |i: usize| {
                let mut node = vec![0u8; heights.len()];
                lattice.decode(i, &mut node);
                node
            };
            for metric in LossMetric::ALL {
                let search = Search::new(&ladders, &table, k, l, limit).with_metric(metric);
                assert_eq!(search.metric(), metric);
                let evals: Vec<NodeEval> =
                    (0..total).map(|i| search.evaluate(&decode(i))).collect();
                for (i, e) in evals.iter().enumerate() {
                    assert!(
                        e.bound <= e.value * (1.0 + 1e-12) + 1e-12,
                        "{metric:?} {e:?}"
                    );
                    for s in lattice.successors(i) {
                        assert!(
                            evals[s].bound >= e.bound * (1.0 - 1e-12) - 1e-12,
                            "{metric:?}: bound decreases upwards"
                        );
                    }
                    if metric == LossMetric::NonUniformEntropy {
                        assert_eq!(e.value, search.non_uniform_entropy(&decode(i)));
                    }
                    if metric == LossMetric::Loss {
                        assert_eq!(e.value, e.loss);
                    }
                }
                let minimal: Vec<usize> = (0..total)
                    .filter(|&i| {
                        evals[i].satisfied && lattice.predecessors(i).all(|p| !evals[p].satisfied)
                    })
                    .collect();
                let candidates: Vec<usize> = if metric.chosen_among_minimal(limit) {
                    minimal.clone()
                } else {
                    (0..total).filter(|&i| evals[i].satisfied).collect()
                };
                let key = |i: usize| (evals[i].value, evals[i].suppressed, lattice.height_of(i), i);
                let expected = candidates.iter().copied().min_by(|&a, &b| {
                    let (ka, kb) = (key(a), key(b));
                    ka.0.total_cmp(&kb.0)
                        .then(ka.1.cmp(&kb.1))
                        .then(ka.2.cmp(&kb.2))
                        .then(ka.3.cmp(&kb.3))
                });
                match (search.run(), expected) {
                    (Ok(result), Some(best)) => {
                        assert_eq!(result.node, decode(best), "seed {seed}, {metric:?}");
                        assert_eq!(result.eval, evals[best]);
                        assert!(result.stats.evaluated <= total as u64, "{metric:?}");
                        if metric.chosen_among_minimal(limit) {
                            assert!(result.stats.evaluated < total as u64, "{metric:?}");
                        }
                        if metric == LossMetric::NonUniformEntropy {
                            // Monotone: the best minimal node is the best satisfying node.
                            let global = (0..total)
                                .filter(|&i| evals[i].satisfied)
                                .map(|i| evals[i].value)
                                .fold(f64::INFINITY, f64::min);
                            assert_eq!(result.eval.value, global);
                        }
                        let cls = search.classify(&result.node);
                        let il = search.information_loss(&result.node, &cls);
                        assert_eq!(il.optimised, metric);
                        assert_eq!(il.optimised_value, result.eval.value);
                        assert_eq!(il.value, result.eval.loss);
                    }
                    (Err(LatticeError::NoSolution { .. }), None) => {}
                    (r, e) => panic!("seed {seed}, {metric:?}: {:?} vs {e:?}", r.map(|r| r.node)),
                }
            }
        }
    }

    #[test]
    fn metric_names() {
        assert_eq!(LossMetric::default(), LossMetric::Loss);
        for m in LossMetric::ALL {
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(json, format!("\"{}\"", m.as_str()));
            assert_eq!(serde_json::from_str::<LossMetric>(&json).unwrap(), m);
            assert_eq!(m.as_str().parse::<LossMetric>().unwrap(), m);
            assert_eq!(m.name().parse::<LossMetric>().unwrap(), m);
            assert!(m.description().starts_with(m.name()));
        }
        assert_eq!(
            serde_json::from_str::<LossMetric>("\"nue\"").unwrap(),
            LossMetric::NonUniformEntropy
        );
        assert!("entropy".parse::<LossMetric>().is_err());
        // Reports written before the metrics existed still read back, as LM.
        let old = r#"{"metric":"LM","value":0.5,"generalisation_intensity":0.2,"suppressed_share":0.0,"per_column":{}}"#;
        let il: InformationLoss = serde_json::from_str(old).unwrap();
        assert_eq!(il.optimised, LossMetric::Loss);
    }

    #[test]
    fn loss_bounds() {
        let (ladders, sensitive) = ladders(200, 9);
        let (table, _) = FrequencyTable::build(&ladders, &sensitive, 200).unwrap();
        let search = Search::new(&ladders, &table, 1, None, 0);
        let bottom = vec![0u8; 3];
        let top: Vec<u8> = ladders.iter().map(|l| (l.height() - 1) as u8).collect();
        assert_eq!(search.evaluate(&bottom).loss, 0.0);
        assert!((search.evaluate(&top).loss - 1.0).abs() < 1e-12);
    }
}
