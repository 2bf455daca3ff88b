//! The independent verifier: what a supervisor runs and trusts.
//!
//! It takes the entries in seq order (from a database or an export file) plus the signed
//! checkpoints and the log's public key, and recomputes everything:
//!
//! 1. seqs are contiguous from 0 (a deleted or moved row shows up as a gap);
//! 2. each payload is canonical and hashes to `payload_hash`; each entry hashes to
//!    `entry_hash` (rules in [`crate::entry`]);
//! 3. each `prev_hash` is the previous `entry_hash` (genesis: zero);
//! 4. the Merkle tree over the entry hashes is rebuilt, and at every checkpoint size its
//!    root must equal the signed root;
//! 5. every checkpoint signature verifies (`verify_strict`) under the given key, and the
//!    checkpoint origin is the key's name;
//! 6. successive checkpoints are consistent: an RFC 9162 consistency proof is computed
//!    from the rebuilt tree and checked against the two *signed* roots.
//!
//! It reports the first bad seq. Where the evidence is a checkpoint (a fork that rewrote
//! a chain consistently, or a tail cut off), the first bad seq is the first seq that no
//! earlier verified checkpoint vouches for: the tampering lies between it and the
//! failing checkpoint. Frequent checkpoints narrow that window.
//!
//! The rebuilt tree keeps every complete subtree in memory (2 × 32 bytes per entry) so
//! consistency proofs cost O(log n).
//!
//! Speed: [`Verifier::push_all`] takes a page of entries and computes what depends on
//! one entry alone (step 2's hashes and the Merkle leaf) or one checkpoint alone (its
//! signature) on several threads, then runs everything that links them (steps 1, 3, 4,
//! 6 and the rest of 5) in order over those results. Each check is exactly the one
//! [`Verifier::push`] makes, and failures are reported in the same order, so the first
//! bad seq and its reason do not depend on how the work was split.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::entry::{Entry, EntryCheck, EntryView, Hash32};
use crate::merkle::{self, Blake3Hasher, MerkleHasher, NodeId};
use crate::note::{Checkpoint, NoteError, NoteVerifier, open_checkpoint};

/// A checkpoint as stored: its size and the signed note text.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointRecord {
    /// Tree size the checkpoint commits to.
    pub size: u64,
    /// The signed note.
    pub note: String,
}

/// The first problem found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, serde::Serialize)]
#[error("first bad seq {seq}: {reason}")]
pub struct VerifyFailure {
    /// The first seq that cannot be vouched for.
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
}

/// What a successful verification covered.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VerifyReport {
    /// Entries checked.
    pub entries: u64,
    /// Checkpoints whose signature, root and consistency were checked.
    pub checkpoints: u64,
    /// Merkle root over all entries.
    pub root: Hash32,
}

/// Every complete subtree of the leaves seen so far, by level.
#[derive(Default)]
struct Tree {
    levels: Vec<Vec<merkle::Hash>>,
}

impl Tree {
    fn size(&self) -> u64 {
        self.levels.first().map_or(0, |l| l.len() as u64)
    }

    fn push(&mut self, leaf: merkle::Hash) {
        let mut level = 0usize;
        let mut hash = leaf;
        loop {
            if self.levels.len() <= level {
                self.levels.push(Vec::new());
            }
            self.levels[level].push(hash);
            let index = self.levels[level].len() - 1;
            if index.is_multiple_of(2) {
                break;
            }
            hash = Blake3Hasher::node(&self.levels[level][index - 1], &hash);
            level += 1;
        }
    }

    fn nodes(&self, ids: &[NodeId]) -> HashMap<NodeId, merkle::Hash> {
        ids.iter()
            .filter_map(|id| {
                let index = usize::try_from(id.index).ok()?;
                let hash = self.levels.get(usize::from(id.level))?.get(index)?;
                Some((*id, *hash))
            })
            .collect()
    }

    fn root(&self) -> Result<merkle::Hash, merkle::MerkleError> {
        let size = self.size();
        if size == 0 {
            return Ok(Blake3Hasher::empty());
        }
        let ids = merkle::complete_subtrees(0..size);
        merkle::range_hash::<Blake3Hasher>(0..size, &self.nodes(&ids))
    }

    fn consistency_proof(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<merkle::Hash>, merkle::MerkleError> {
        let ranges = merkle::consistency_path(from, to)?;
        let ids = merkle::nodes_for(&ranges);
        merkle::build_proof::<Blake3Hasher>(&ranges, &self.nodes(&ids))
    }
}

/// A checkpoint not yet reached, with the outcome of opening it (signature and body)
/// once that has been computed ahead of time (see [`Verifier::push_all`]).
struct Pending {
    record: CheckpointRecord,
    opened: Option<Result<Checkpoint, NoteError>>,
}

/// An entry's own checks, which depend on nothing but the entry.
struct Checked {
    /// Canonical payload, payload hash and entry hash.
    hashes: Result<(), EntryCheck>,
    /// Its Merkle leaf hash.
    leaf: merkle::Hash,
}

impl Checked {
    fn of(entry: &EntryView<'_>) -> Checked {
        Checked {
            hashes: entry.check_hashes(),
            leaf: Blake3Hasher::leaf(entry.leaf_data()),
        }
    }
}

/// A streaming verifier: [`Verifier::push`] each entry in order, then [`Verifier::finish`].
pub struct Verifier {
    key: NoteVerifier,
    next_seq: u64,
    prev_hash: Hash32,
    tree: Tree,
    /// Checkpoints not yet reached, largest size first (so `pop` gives the next).
    pending: Vec<Pending>,
    /// Last verified checkpoint: (size, signed root).
    last_good: Option<(u64, merkle::Hash)>,
    checkpoints_ok: u64,
}

impl Verifier {
    /// A verifier for a log signed by `key`, with its stored checkpoints in any order.
    pub fn new(
        key: NoteVerifier,
        mut checkpoints: Vec<CheckpointRecord>,
    ) -> Result<Self, VerifyFailure> {
        checkpoints.sort_by_key(|c| std::cmp::Reverse(c.size));
        let mut v = Verifier {
            key,
            next_seq: 0,
            prev_hash: Hash32::ZERO,
            tree: Tree::default(),
            pending: checkpoints
                .into_iter()
                .map(|record| Pending {
                    record,
                    opened: None,
                })
                .collect(),
            last_good: None,
            checkpoints_ok: 0,
        };
        v.check_due_checkpoints()?;
        Ok(v)
    }

    /// Entries accepted so far.
    pub fn entries(&self) -> u64 {
        self.next_seq
    }

    /// Checks one entry, the next in seq order.
    pub fn push(&mut self, entry: &Entry) -> Result<(), VerifyFailure> {
        self.push_view(&entry.view())
    }

    /// Checks one entry given as borrowed fields, the next in seq order.
    pub fn push_view(&mut self, entry: &EntryView<'_>) -> Result<(), VerifyFailure> {
        self.accept(entry, Checked::of(entry))
    }

    /// Checks a run of entries in seq order, with the same outcome as
    /// [`Verifier::push_view`] on each in turn (the first failure is reported).
    ///
    /// The work that depends on nothing but one entry (canonical payload, payload and
    /// entry hashes, leaf hash), or on nothing but one checkpoint (its signature), is
    /// done first, spread over several threads on a long run; the checks that link them
    /// (seq, chain, tree, roots, consistency) then run in order over those results.
    pub fn push_all(&mut self, entries: &[EntryView<'_>]) -> Result<(), VerifyFailure> {
        let reach = self.next_seq.saturating_add(entries.len() as u64);
        let due: Vec<&mut Pending> = self
            .pending
            .iter_mut()
            .rev()
            .take_while(|p| p.record.size <= reach)
            .collect();
        let checked = check_parallel(entries, due, &self.key);
        for (entry, checked) in entries.iter().zip(checked) {
            self.accept(entry, checked)?;
        }
        Ok(())
    }

    /// The sequential part of checking an entry, given its own checks (which may have
    /// been computed ahead or elsewhere). The order of the checks, and so the reason
    /// reported, is fixed here.
    fn accept(&mut self, entry: &EntryView<'_>, checked: Checked) -> Result<(), VerifyFailure> {
        let seq = self.next_seq;
        if entry.seq != seq {
            return Err(VerifyFailure {
                seq,
                reason: format!(
                    "expected seq {seq}, found seq {} (rows missing or out of order)",
                    entry.seq
                ),
            });
        }
        checked.hashes.map_err(|why| VerifyFailure {
            seq,
            reason: why.to_string(),
        })?;
        if entry.prev_hash != self.prev_hash {
            return Err(VerifyFailure {
                seq,
                reason: "prev_hash is not the previous entry's hash (chain broken)".into(),
            });
        }
        self.prev_hash = entry.entry_hash;
        self.tree.push(checked.leaf);
        self.next_seq += 1;
        self.check_due_checkpoints()
    }

    fn check_due_checkpoints(&mut self) -> Result<(), VerifyFailure> {
        let size = self.tree.size();
        while self.pending.last().is_some_and(|c| c.record.size <= size) {
            let Some(cp) = self.pending.pop() else { break };
            self.check_checkpoint(cp)?;
        }
        Ok(())
    }

    fn first_unvouched(&self) -> u64 {
        self.last_good.map_or(0, |(size, _)| size)
    }

    fn check_checkpoint(&mut self, pending: Pending) -> Result<(), VerifyFailure> {
        let size = pending.record.size;
        let at_size = |reason: String| VerifyFailure {
            seq: size.saturating_sub(1),
            reason: format!("checkpoint at size {size}: {reason}"),
        };
        let opened = pending
            .opened
            .unwrap_or_else(|| open_checkpoint(&pending.record.note, &self.key));
        let cp = opened.map_err(|e| {
            at_size(format!(
                "signature does not verify under the given key ({e})"
            ))
        })?;
        if cp.size != size {
            return Err(at_size(format!("note says size {}", cp.size)));
        }
        if cp.origin != self.key.name() {
            return Err(at_size("origin does not match the key name".into()));
        }
        let root = self.tree.root().map_err(|e| at_size(e.to_string()))?;
        if root != cp.root {
            return Err(VerifyFailure {
                seq: self.first_unvouched(),
                reason: format!(
                    "entries from seq {} to {} do not match the signed root of the checkpoint at size {size} (rewritten or forked)",
                    self.first_unvouched(),
                    size.saturating_sub(1)
                ),
            });
        }
        if let Some((prev_size, prev_root)) = self.last_good
            && prev_size < size
            && prev_size > 0
        {
            let proof = self
                .tree
                .consistency_proof(prev_size, size)
                .map_err(|e| at_size(e.to_string()))?;
            merkle::verify_consistency::<Blake3Hasher>(
                prev_size, size, &proof, &prev_root, &cp.root,
            )
            .map_err(|e| {
                at_size(format!(
                    "not consistent with the checkpoint at size {prev_size}: {e}"
                ))
            })?;
        }
        self.last_good = Some((size, cp.root));
        self.checkpoints_ok += 1;
        Ok(())
    }

    /// Ends the walk: every checkpoint must have been reached.
    pub fn finish(self) -> Result<VerifyReport, VerifyFailure> {
        if let Some(cp) = self.pending.last() {
            return Err(VerifyFailure {
                seq: self.next_seq,
                reason: format!(
                    "a checkpoint is signed at size {} but the ledger ends at {} (tail missing)",
                    cp.record.size, self.next_seq
                ),
            });
        }
        let root = self.tree.root().map_err(|e| VerifyFailure {
            seq: self.next_seq,
            reason: e.to_string(),
        })?;
        Ok(VerifyReport {
            entries: self.next_seq,
            checkpoints: self.checkpoints_ok,
            root: Hash32(root),
        })
    }
}

/// Runs shorter than this are hashed on the calling thread: a thread costs tens of
/// microseconds to start, a few hundred entries' worth of hashing.
const PARALLEL_MIN: usize = 1024;

/// At most this many threads hash one run.
const MAX_THREADS: usize = 4;

/// Entries a thread claims at a time in [`check_parallel`]: small enough that threads
/// finish together, large enough that claiming costs nothing.
const BLOCK: usize = 256;

/// [`Checked::of`] every entry, in order, and the opening of every checkpoint in `due`,
/// spread over up to [`MAX_THREADS`] threads (one of them the caller's), which claim
/// blocks of entries until none are left. If a helper thread cannot be started or
/// fails, the blocks it did not deliver are computed on the calling thread, so the
/// result never depends on threading.
fn check_parallel(
    entries: &[EntryView<'_>],
    due: Vec<&mut Pending>,
    key: &NoteVerifier,
) -> Vec<Checked> {
    let check = |run: &[EntryView<'_>]| -> Vec<Checked> { run.iter().map(Checked::of).collect() };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS);
    if threads < 2 || entries.len() < PARALLEL_MIN {
        // Checkpoints are then opened when reached.
        return check(entries);
    }
    let blocks: Vec<&[EntryView<'_>]> = entries.chunks(BLOCK).collect();
    let next = AtomicUsize::new(0);
    // Claims blocks until there are none left; returns them with their positions.
    let work = || {
        let mut done = Vec::new();
        loop {
            let b = next.fetch_add(1, Ordering::Relaxed);
            let Some(block) = blocks.get(b) else {
                return done;
            };
            done.push((b, check(block)));
        }
    };
    let mut results: Vec<Option<Vec<Checked>>> =
        std::iter::repeat_with(|| None).take(blocks.len()).collect();
    std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads)
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("pdx-verify".into())
                    .spawn_scoped(scope, work)
                    .ok()
            })
            .collect();
        for pending in due {
            if pending.opened.is_none() {
                pending.opened = Some(open_checkpoint(&pending.record.note, key));
            }
        }
        let mut done = work();
        for helper in helpers {
            done.extend(helper.join().unwrap_or_default());
        }
        for (b, checked) in done {
            if let Some(slot) = results.get_mut(b) {
                *slot = Some(checked);
            }
        }
    });
    results
        .into_iter()
        .zip(&blocks)
        .flat_map(|(result, block)| result.unwrap_or_else(|| check(block)))
        .collect()
}

/// Verifies a whole ledger held in memory.
pub fn verify_all(
    key: &NoteVerifier,
    entries: &[Entry],
    checkpoints: Vec<CheckpointRecord>,
) -> Result<VerifyReport, VerifyFailure> {
    let mut v = Verifier::new(key.clone(), checkpoints)?;
    for e in entries {
        v.push(e)?;
    }
    v.finish()
}
