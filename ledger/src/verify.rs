//! The independent verifier: what a supervisor runs and trusts.
//!
//! It takes the entries in seq order (from a database or an export file) plus the signed
//! checkpoints and the log's public key, and recomputes everything:
//!
//! 0. before any entry, the key must be the log's: if the checkpoints carry signatures
//!    but none by the given key (its name and key id), the key does not match the log
//!    ([`FailureKind::KeyMismatch`]): a verifier given the wrong key learns that, not a
//!    "first bad seq";
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
use crate::note::{Checkpoint, NoteError, NoteVerifier, SignedNote, open_checkpoint};

/// A checkpoint as stored: its size and the signed note text.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointRecord {
    /// Tree size the checkpoint commits to.
    pub size: u64,
    /// The signed note.
    pub note: String,
}

/// The first problem found.
///
/// Shown as `first bad seq N: reason`, or, for a [`FailureKind::KeyMismatch`], as the
/// reason alone (`the key does not match this log (origin …): …`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VerifyFailure {
    /// The first seq that cannot be vouched for. For a key mismatch, the last seq the
    /// first checkpoint covers, as a failure of that checkpoint would name.
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
    /// Whether the log is bad or the key is not the log's.
    pub kind: FailureKind,
}

/// What a [`VerifyFailure`] says about the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The log is bad from `seq` on: an entry, a checkpoint or their consistency.
    BadLog,
    /// The checkpoints are signed, but none by the given key: the key is not this log's
    /// (or every checkpoint was re-signed by another key). No entry was checked.
    KeyMismatch,
}

impl std::fmt::Display for VerifyFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            FailureKind::BadLog => write!(f, "first bad seq {}: {}", self.seq, self.reason),
            FailureKind::KeyMismatch => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for VerifyFailure {}

impl VerifyFailure {
    /// A failure of the log itself at `seq`.
    pub(crate) fn bad(seq: u64, reason: impl Into<String>) -> VerifyFailure {
        VerifyFailure {
            seq,
            reason: reason.into(),
            kind: FailureKind::BadLog,
        }
    }
}

/// A [`FailureKind::KeyMismatch`] if `checkpoints` carry signatures but none by `key`.
///
/// Only signature lines are compared (name and key id, as [`SignedNote::verify`] picks
/// the lines it checks), so this costs no signature check. A checkpoint with a line by
/// the key that does not verify is evidence against the log, found when the verifier
/// reaches it; so is one that cannot be parsed: if no checkpoint parses, nothing here
/// says the key is wrong.
fn key_mismatch(key: &NoteVerifier, checkpoints: &[CheckpointRecord]) -> Option<VerifyFailure> {
    let notes: Vec<(u64, SignedNote)> = checkpoints
        .iter()
        .filter_map(|c| Some((c.size, SignedNote::parse(&c.note).ok()?)))
        .collect();
    let by_key = |note: &SignedNote| {
        note.signatures
            .iter()
            .any(|s| s.name == key.name() && s.key_id == key.key_id())
    };
    if notes.iter().any(|(_, note)| by_key(note)) {
        return None;
    }
    let first_size = checkpoints.iter().map(|c| c.size).min()?;
    let (_, first) = notes.iter().min_by_key(|(size, _)| *size)?;
    let origin = match Checkpoint::parse_body(&first.body) {
        Ok(cp) => cp.origin,
        Err(_) => first.body.lines().next().unwrap_or_default().to_string(),
    };
    let mut signers: Vec<String> = first
        .signatures
        .iter()
        .map(|s| format!("{}+{}", s.name, hex::encode(s.key_id)))
        .collect();
    signers.dedup();
    let given = format!("{}+{}", key.name(), hex::encode(key.key_id()));
    let name = if origin == key.name() {
        ""
    } else {
        ", whose name is not the log's origin"
    };
    Some(VerifyFailure {
        seq: first_size.saturating_sub(1),
        reason: format!(
            "the key does not match this log (origin {origin}): its checkpoints are signed by {}, not by the given key {given}{name}",
            signers.join(", ")
        ),
        kind: FailureKind::KeyMismatch,
    })
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
    /// Fails with a [`FailureKind::KeyMismatch`] if the checkpoints are signed, but none
    /// by `key`.
    pub fn new(
        key: NoteVerifier,
        mut checkpoints: Vec<CheckpointRecord>,
    ) -> Result<Self, VerifyFailure> {
        if let Some(mismatch) = key_mismatch(&key, &checkpoints) {
            return Err(mismatch);
        }
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
            return Err(VerifyFailure::bad(
                seq,
                format!(
                    "expected seq {seq}, found seq {} (rows missing or out of order)",
                    entry.seq
                ),
            ));
        }
        checked
            .hashes
            .map_err(|why| VerifyFailure::bad(seq, why.to_string()))?;
        if entry.prev_hash != self.prev_hash {
            return Err(VerifyFailure::bad(
                seq,
                "prev_hash is not the previous entry's hash (chain broken)",
            ));
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
        let at_size = |reason: String| {
            VerifyFailure::bad(
                size.saturating_sub(1),
                format!("checkpoint at size {size}: {reason}"),
            )
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
            return Err(VerifyFailure::bad(
                self.first_unvouched(),
                format!(
                    "entries from seq {} to {} do not match the signed root of the checkpoint at size {size} (rewritten or forked)",
                    self.first_unvouched(),
                    size.saturating_sub(1)
                ),
            ));
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
            return Err(VerifyFailure::bad(
                self.next_seq,
                format!(
                    "a checkpoint is signed at size {} but the ledger ends at {} (tail missing)",
                    cp.record.size, self.next_seq
                ),
            ));
        }
        let root = self
            .tree
            .root()
            .map_err(|e| VerifyFailure::bad(self.next_seq, e.to_string()))?;
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

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::entry::{Actor, EntryKind};
    use crate::export::{EXPORT_FORMAT, ExportLine, verify_export};
    use crate::note::NoteSigner;

    const ORIGIN: &str = "t.pdx/ledger";

    fn signer(name: &str, seed: u8) -> NoteSigner {
        NoteSigner::new(name, SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    /// Six chained entries with checkpoints at sizes 3 and 6, signed by `log`.
    fn log(log: &NoteSigner) -> (Vec<Entry>, Vec<CheckpointRecord>) {
        let (mut entries, mut checkpoints) = (Vec::new(), Vec::new());
        let (mut prev, mut tree) = (Hash32::ZERO, Tree::default());
        for seq in 0..6u64 {
            let actor = Actor {
                org: "org-a".into(),
                key_id: "k".into(),
            };
            let payload = serde_json::json!({ "org": format!("o{seq}") });
            let e = Entry::build(seq, 1_000, EntryKind::Suspension, actor, &payload, prev).unwrap();
            prev = e.entry_hash;
            tree.push(Blake3Hasher::leaf(e.leaf_data()));
            entries.push(e);
            if tree.size() % 3 == 0 {
                let body = Checkpoint {
                    origin: log.name().to_string(),
                    size: tree.size(),
                    root: tree.root().unwrap(),
                    extensions: Vec::new(),
                }
                .body();
                checkpoints.push(CheckpointRecord {
                    size: tree.size(),
                    note: log.sign(&body).unwrap(),
                });
            }
        }
        (entries, checkpoints)
    }

    /// The log as an export file.
    fn export_file(entries: &[Entry], checkpoints: &[CheckpointRecord]) -> Vec<u8> {
        let mut lines = vec![ExportLine::Header {
            format: EXPORT_FORMAT.into(),
            origin: ORIGIN.into(),
            size: entries.len() as u64,
        }];
        lines.extend(checkpoints.iter().cloned().map(ExportLine::Checkpoint));
        lines.extend(entries.iter().cloned().map(ExportLine::Entry));
        let mut file = Vec::new();
        for line in &lines {
            serde_json::to_writer(&mut file, line).unwrap();
            file.push(b'\n');
        }
        file
    }

    #[test]
    fn a_key_that_signed_no_checkpoint_is_a_key_mismatch_not_a_bad_seq() {
        let ours = signer(ORIGIN, 1);
        let (entries, checkpoints) = log(&ours);
        let report = verify_all(&ours.verifier(), &entries, checkpoints.clone()).unwrap();
        assert_eq!((report.entries, report.checkpoints), (6, 2));
        let file = export_file(&entries, &checkpoints);
        let from_file = verify_export(&file[..], &ours.verifier(), |_, _| {}).unwrap();
        assert_eq!(from_file, Ok(report));

        // Another key under the log's name, and a key of another log.
        for (other, renamed) in [
            (signer(ORIGIN, 2), false),
            (signer("o.pdx/ledger", 1), true),
        ] {
            let key = other.verifier();
            let f = verify_all(&key, &entries, checkpoints.clone()).unwrap_err();
            assert_eq!(f.kind, FailureKind::KeyMismatch, "{f}");
            // The seq a failure of the first checkpoint names (size 3).
            assert_eq!(f.seq, 2, "{f}");
            let shown = f.to_string();
            assert!(
                shown.starts_with("the key does not match this log (origin t.pdx/ledger)"),
                "{shown}"
            );
            assert!(!shown.contains("first bad seq"), "{shown}");
            let given = format!("{}+{}", key.name(), hex::encode(key.key_id()));
            let signed_by = hex::encode(ours.verifier().key_id());
            assert!(
                shown.contains(&given) && shown.contains(&signed_by),
                "{shown}"
            );
            assert_eq!(shown.contains("not the log's origin"), renamed, "{shown}");
            let from_file = verify_export(&file[..], &key, |_, _| {}).unwrap();
            assert_eq!(from_file, Err(f), "database and export disagree");
        }

        // The key is checked before any entry: with a bad entry before the first
        // checkpoint, a wrong key is still reported as the key, the right one names it.
        let mut tampered = entries.clone();
        tampered[1].payload = tampered[1].payload.replace("o1", "o9");
        let f = verify_all(
            &signer(ORIGIN, 2).verifier(),
            &tampered,
            checkpoints.clone(),
        )
        .unwrap_err();
        assert_eq!(f.kind, FailureKind::KeyMismatch, "{f}");
        let f = verify_all(&ours.verifier(), &tampered, checkpoints).unwrap_err();
        assert_eq!((f.kind, f.seq), (FailureKind::BadLog, 1), "{f}");
        assert!(f.to_string().starts_with("first bad seq 1: "), "{f}");
    }

    #[test]
    fn bad_checkpoints_of_the_right_key_are_bad_seqs_not_a_key_mismatch() {
        let ours = signer(ORIGIN, 1);
        let (entries, checkpoints) = log(&ours);

        // A signature line by the key that does not verify: the checkpoint is bad.
        let mut altered = checkpoints.clone();
        let mut note = SignedNote::parse(&altered[0].note).unwrap();
        note.signatures[0].signature[5] ^= 0x01;
        altered[0].note = note.to_text();
        let f = verify_all(&ours.verifier(), &entries, altered).unwrap_err();
        assert_eq!((f.kind, f.seq), (FailureKind::BadLog, 2), "{f}");
        assert!(f.reason.contains("signature"), "{f}");

        // The later checkpoint re-signed by another key: the first one vouches for the
        // key, so the later one is evidence against the log.
        let mut resigned = checkpoints.clone();
        let body = SignedNote::parse(&resigned[1].note).unwrap().body;
        resigned[1].note = signer(ORIGIN, 2).sign(&body).unwrap();
        let f = verify_all(&ours.verifier(), &entries, resigned).unwrap_err();
        assert_eq!((f.kind, f.seq), (FailureKind::BadLog, 5), "{f}");

        // Checkpoints that are not signed notes say nothing about the key.
        let mut garbled = checkpoints;
        for cp in &mut garbled {
            cp.note = "not a note".into();
        }
        let f = verify_all(&signer(ORIGIN, 2).verifier(), &entries, garbled).unwrap_err();
        assert_eq!((f.kind, f.seq), (FailureKind::BadLog, 2), "{f}");
    }
}
