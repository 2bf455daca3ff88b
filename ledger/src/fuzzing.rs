//! Fuzz-target bodies for the ledger's parsers and verifiers (the light targets of
//! `fuzz/`, issue #25).
//!
//! Each public function takes the bytes libFuzzer generates, runs them through the real
//! entry points and panics when a property fails. The cargo-fuzz targets in
//! `fuzz/fuzz_targets/` only call these functions, and the ledger's integration tests
//! replay every committed seed and regression (`fuzz/seeds/<target>/`,
//! `fuzz/regressions/<target>/`) through the same functions, so an input that once broke
//! a property keeps being checked by the ordinary test run.
//!
//! | function | entry points | property |
//! |---|---|---|
//! | [`canonical_json`] | [`canonical::to_canonical_string`], [`canonical::quick_canonical`] | canonical text re-parses to the same value and re-canonicalises to itself; the quick scan never accepts a text the full check refuses |
//! | [`checkpoint_note`] | [`SignedNote::parse`], [`Checkpoint::parse_body`], [`NoteVerifier::parse`], verification, [`open_checkpoint`] | parsed notes, bodies and keys re-render to the same bytes (keys: the same key); a line that verifies is the one its key writes (Ed25519 is deterministic, so anything else is a forgery) |
//! | [`cosignature`] | [`Ledger::accept_cosignature`] on SQLite | refusals are the submitter's (4xx); what is kept is a witness's own line over a checkpoint the log signed, and the served note verifies with it |
//! | [`receipt`] | [`Receipt::verify`] | a receipt verifies only for an entry the log holds, under a checkpoint the log signed |
//! | [`merkle_proofs`] | [`merkle::verify_inclusion`], [`merkle::verify_consistency`] | accept exactly when the RFC 9162 tree hash, recomputed from the proof by a plain recursion, gives the roots; genuine proofs verify |
//!
//! Random bytes rarely reach the end of a verifier, so most targets read their first
//! byte as a mode: even, the rest is the raw text; odd, the rest steers a *structured*
//! input, a genuine note, receipt or proof from a [`Fixture`] changed field by field
//! and then byte by byte. Past the end of the input every decision reads as zero, so
//! any byte string is a valid input.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use ed25519_dalek::SigningKey;
use serde_json::{Value, json};

use crate::canonical;
use crate::db::{Db, sqlite_url};
use crate::entry::{Actor, Entry, EntryKind, Hash32};
use crate::kinds::Suspension;
use crate::merkle::{self, Blake3Hasher, CompactRange, Hash, MerkleHasher, NodeId};
use crate::note::{
    Checkpoint, KeyType, MAX_COSIGNATURE_TIMESTAMP, NoteSignature, NoteSigner, NoteVerifier,
    SignedNote, open_checkpoint,
};
use crate::receipt::{RECEIPT_FORMAT, Receipt};
use crate::store::{Ledger, LedgerConfig, LedgerError, StoredCheckpoint};
use crate::witness::Cosignature;

/// Name of the fixture log's key: the Go reference's, so its known-answer notes verify.
const LOG_NAME: &str = "PeterNeumann";
/// Seed of that key (`PRIVATE+KEY+PeterNeumann+c74f20a3+…` in `golang.org/x/mod/sumdb/note`).
const LOG_SEED: [u8; 32] = [
    0x81, 0x0a, 0x14, 0x02, 0xd5, 0x14, 0x6c, 0x8d, 0x84, 0xf2, 0x44, 0x33, 0x30, 0xf5, 0x40, 0x80,
    0xeb, 0xf9, 0x8e, 0xe1, 0x7d, 0x9c, 0x74, 0xf6, 0x25, 0x2f, 0xc5, 0xd5, 0xc7, 0x28, 0x31, 0x73,
];
/// Name of the fixture witness.
const WITNESS_NAME: &str = "witness.example/w1";
/// Seed of the fixture witness's key.
const WITNESS_SEED: [u8; 32] = [0x42; 32];
/// Leaves of the tree the proof target checks proofs against.
const PROOF_TREE_LEAVES: u64 = 37;
/// The first entry's timestamp; each next one is a second later.
const FIRST_TIMESTAMP_MS: i64 = 1_700_000_000_000;
/// The table `0002_supervision.sql` of the application creates (the ledger's own
/// migrations do not; see [`crate::witness`]).
const COSIGNATURES_TABLE: &str = "CREATE TABLE ledger_cosignatures (
    size        BIGINT NOT NULL,
    witness_key TEXT   NOT NULL,
    line        TEXT   NOT NULL,
    cosigned_s  BIGINT NOT NULL,
    received_ms BIGINT NOT NULL,
    PRIMARY KEY (size, witness_key)
)";

/// The fuzz input read as a sequence of decisions; past its end every read is zero.
struct Input<'a> {
    rest: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Input { rest: data }
    }

    fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }

    fn byte(&mut self) -> u8 {
        match self.rest.split_first() {
            Some((&b, rest)) => {
                self.rest = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, tail) = self.rest.split_at(n.min(self.rest.len()));
        self.rest = tail;
        head
    }

    fn u64(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        let head = self.take(8);
        buf[..head.len()].copy_from_slice(head);
        u64::from_le_bytes(buf)
    }

    fn hash(&mut self) -> Hash {
        let mut buf = [0u8; 32];
        let head = self.take(32);
        buf[..head.len()].copy_from_slice(head);
        buf
    }

    /// Everything not read yet.
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.rest)
    }

    /// One of `items`, chosen by the next byte; `None` only when `items` is empty.
    fn pick<'t, T>(&mut self, items: &'t [T]) -> Option<&'t T> {
        let choice = usize::from(self.byte());
        items.get(choice % items.len().max(1))
    }
}

/// Applies the rest of `input` to `text` as byte edits, four bytes each: an operation
/// (overwrite, insert, delete), a position (u16, wrapped to the text) and a value.
fn apply_edits(text: &mut Vec<u8>, input: &mut Input<'_>) {
    while !input.is_empty() {
        let op = input.byte();
        let at = usize::from(u16::from_le_bytes([input.byte(), input.byte()]));
        let value = input.byte();
        match op % 3 {
            0 => {
                let len = text.len().max(1);
                if let Some(b) = text.get_mut(at % len) {
                    *b = value;
                }
            }
            1 => text.insert(at % (text.len() + 1), value),
            _ => {
                if !text.is_empty() {
                    text.remove(at % text.len());
                }
            }
        }
    }
}

/// A signer from a fixed seed.
fn fixed_signer(name: &str, seed: &[u8; 32]) -> Result<NoteSigner, LedgerError> {
    Ok(NoteSigner::new(name, SigningKey::from_bytes(seed))?)
}

/// A Merkle tree kept whole: every leaf, every complete subtree and every root.
struct Tree {
    leaves: Vec<Hash>,
    nodes: HashMap<NodeId, Hash>,
    /// `roots[s]`: the root at size `s` (`roots[0]` is the empty tree's).
    roots: Vec<Hash>,
    /// Every hash above, sorted: values a forged proof may borrow.
    hashes: Vec<Hash>,
}

impl Tree {
    fn new(leaves: Vec<Hash>) -> Tree {
        let mut range = CompactRange::<Blake3Hasher>::new();
        let mut recorded = Vec::new();
        let mut roots = vec![range.root()];
        for leaf in &leaves {
            range.append_recording(*leaf, &mut recorded);
            roots.push(range.root());
        }
        let nodes: HashMap<NodeId, Hash> = recorded.into_iter().collect();
        let mut hashes: Vec<Hash> = nodes.values().chain(&roots).copied().collect();
        hashes.sort_unstable();
        hashes.dedup();
        Tree {
            leaves,
            nodes,
            roots,
            hashes,
        }
    }

    fn size(&self) -> u64 {
        self.leaves.len() as u64
    }

    fn root(&self, size: u64) -> Option<Hash> {
        self.roots.get(usize::try_from(size).ok()?).copied()
    }

    fn leaf(&self, index: u64) -> Option<Hash> {
        self.leaves.get(usize::try_from(index).ok()?).copied()
    }

    fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, LedgerError> {
        if size > self.size() {
            return Err(LedgerError::OutOfRange(format!("size {size}")));
        }
        let ranges = merkle::inclusion_path(index, size)?;
        Ok(merkle::build_proof::<Blake3Hasher>(&ranges, &self.nodes)?)
    }

    fn consistency_proof(&self, size1: u64, size2: u64) -> Result<Vec<Hash>, LedgerError> {
        if size2 > self.size() {
            return Err(LedgerError::OutOfRange(format!("size {size2}")));
        }
        let ranges = merkle::consistency_path(size1, size2)?;
        Ok(merkle::build_proof::<Blake3Hasher>(&ranges, &self.nodes)?)
    }
}

/// The in-memory log the pure targets check against: its key (the Go reference's), a
/// witness key, seven entries, a checkpoint note signed at every size, a receipt for
/// every entry at every size, and a separate 37-leaf tree for the proof target.
pub struct Fixture {
    log: NoteSigner,
    witness: NoteSigner,
    entries: Vec<Entry>,
    /// `checkpoints[s - 1]` and `notes[s - 1]`: the checkpoint at size `s`, signed.
    checkpoints: Vec<Checkpoint>,
    notes: Vec<String>,
    /// `receipts[s - 1][seq]`: entry `seq` under the checkpoint at size `s`.
    receipts: Vec<Vec<Receipt>>,
    proof_tree: Tree,
}

impl Fixture {
    /// Builds the fixture (deterministic: fixed keys, entries and timestamps).
    pub fn new() -> Result<Fixture, LedgerError> {
        let log = fixed_signer(LOG_NAME, &LOG_SEED)?;
        let witness = fixed_signer(WITNESS_NAME, &WITNESS_SEED)?;
        let actor = Actor {
            org: "org-fuzz".into(),
            key_id: "key-1".into(),
        };
        let kinds = [
            EntryKind::Suspension,
            EntryKind::Release,
            EntryKind::Refund,
            EntryKind::PrivacySpend,
            EntryKind::Other("future_kind".into()),
            EntryKind::Transaction,
            EntryKind::FheQuery,
        ];
        // Payloads that exercise the canonical form: key order, escapes, non-BMP
        // characters (which sort before U+E000 in UTF-16), fractions and large integers.
        let payloads = [
            json!({"org": "org-a", "action": "suspended", "reason": "fuzz fixture"}),
            json!({"dataset": "ds_1", "version": 3, "rows": 1000}),
            json!({"amount_minor": 12345, "currency": "CNY", "note": "退款 refund"}),
            json!({"ratio": 0.1, "big": 9_007_199_254_740_991_i64, "neg": -5, "nested": [1, [2, {"a": null}]]}),
            json!({"\u{1F600}": "emoji", "\u{E000}": "private use", "esc": "line\nbreak\t\"q\""}),
            json!({}),
            json!({"k": true, "f": false, "x": 1.5e-7}),
        ];
        let mut entries = Vec::with_capacity(kinds.len());
        let mut prev = Hash32::ZERO;
        for (seq, (kind, payload)) in kinds.into_iter().zip(&payloads).enumerate() {
            let entry = Entry::build(
                seq as u64,
                FIRST_TIMESTAMP_MS + 1000 * seq as i64,
                kind,
                actor.clone(),
                payload,
                prev,
            )?;
            prev = entry.entry_hash;
            entries.push(entry);
        }
        let entry_tree = Tree::new(
            entries
                .iter()
                .map(|e| Blake3Hasher::leaf(e.leaf_data()))
                .collect(),
        );
        let mut checkpoints = Vec::with_capacity(entries.len());
        let mut notes = Vec::with_capacity(entries.len());
        let mut receipts = Vec::with_capacity(entries.len());
        for size in 1..=entry_tree.size() {
            let checkpoint = Checkpoint {
                origin: LOG_NAME.into(),
                size,
                root: entry_tree
                    .root(size)
                    .ok_or_else(|| LedgerError::OutOfRange(format!("size {size}")))?,
                extensions: Vec::new(),
            };
            let note = log.sign_checkpoint(&checkpoint)?;
            let mut row = Vec::new();
            for (seq, entry) in entries.iter().enumerate().take(size as usize) {
                let proof = entry_tree.inclusion_proof(seq as u64, size)?;
                row.push(Receipt {
                    format: RECEIPT_FORMAT.into(),
                    entry: entry.clone(),
                    tree_size: size,
                    inclusion_proof: proof.into_iter().map(Hash32).collect(),
                    checkpoint: note.clone(),
                });
            }
            receipts.push(row);
            checkpoints.push(checkpoint);
            notes.push(note);
        }
        let proof_tree = Tree::new(
            (0..PROOF_TREE_LEAVES)
                .map(|i| Blake3Hasher::leaf(&i.to_be_bytes()))
                .collect(),
        );
        Ok(Fixture {
            log,
            witness,
            entries,
            checkpoints,
            notes,
            receipts,
            proof_tree,
        })
    }

    /// A checkpoint note of the log, with up to three cosignature lines by the witness
    /// or the log itself, as the input decides.
    fn cosigned_note(&self, input: &mut Input<'_>) -> String {
        let index = usize::from(input.byte());
        let (Some(checkpoint), Some(note)) = (
            self.checkpoints.get(index % self.checkpoints.len().max(1)),
            self.notes.get(index % self.notes.len().max(1)),
        ) else {
            return String::new();
        };
        let body = checkpoint.body();
        let mut note = note.clone();
        for _ in 0..input.byte() % 4 {
            let signer = if input.byte().is_multiple_of(2) {
                &self.witness
            } else {
                &self.log
            };
            if let Ok(line) = signer.cosign(&body, input.u64() & MAX_COSIGNATURE_TIMESTAMP) {
                note.push_str(&line);
            }
        }
        note
    }

    /// A genuine receipt, as the input decides.
    fn pick_receipt(&self, input: &mut Input<'_>) -> Option<&Receipt> {
        let row = input.pick(&self.receipts)?;
        input.pick(row)
    }
}

/// Canonical JSON (RFC 8785): for any JSON text, its canonical form parses to the same
/// value and canonicalises to itself; a text the one-pass [`canonical::quick_canonical`]
/// accepts is exactly the canonical form of what it parses to.
pub fn canonical_json(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data)
        && canonical::quick_canonical(text)
    {
        let value: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("quick_canonical accepted a text that is not JSON: {e}"));
        assert_eq!(
            canonical::to_canonical_string(&value).as_deref(),
            Ok(text),
            "quick_canonical accepted a text that is not canonical"
        );
    }
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let Ok(text) = canonical::to_canonical_string(&value) else {
        return;
    };
    let reparsed: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("canonical text is not JSON ({e}): {text}"));
    assert!(
        same_value(&value, &reparsed),
        "canonical text reads back as another value: {text}"
    );
    assert_eq!(
        canonical::to_canonical_string(&reparsed).as_ref(),
        Ok(&text),
        "canonical text does not canonicalise to itself"
    );
}

/// JSON value equality with numbers compared as the doubles they denote (canonical
/// form prints `1.0` as `1`, which reads back as an integer).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

/// Signed notes, checkpoints and verifier keys: parsing round-trips, and verification
/// accepts only lines the fixture's keys wrote themselves.
pub fn checkpoint_note(fixture: &Fixture, data: &[u8]) {
    let mut input = Input::new(data);
    let text = if input.byte().is_multiple_of(2) {
        input.rest().to_vec()
    } else {
        let mut text = fixture.cosigned_note(&mut input).into_bytes();
        apply_edits(&mut text, &mut input);
        text
    };
    let Ok(text) = String::from_utf8(text) else {
        return;
    };
    check_note(fixture, &text);
}

fn check_note(fixture: &Fixture, text: &str) {
    if let Ok(checkpoint) = Checkpoint::parse_body(text) {
        assert_eq!(
            checkpoint.body(),
            text,
            "a checkpoint body re-renders to other bytes"
        );
        assert_eq!(checkpoint.validate(), Ok(()));
    }
    if let Ok(key) = NoteVerifier::parse(text) {
        assert_eq!(
            NoteVerifier::parse(&key.to_vkey()),
            Ok(key),
            "a verifier key does not survive its own rendering"
        );
    }
    let log = fixture.log.verifier();
    let opened = open_checkpoint(text, &log);
    let Ok(note) = SignedNote::parse(text) else {
        assert!(
            opened.is_err(),
            "open_checkpoint accepted a note SignedNote::parse refuses"
        );
        return;
    };
    assert_eq!(
        note.to_text(),
        text,
        "a parsed note re-renders to other bytes"
    );
    let body = Checkpoint::parse_body(&note.body);
    assert_eq!(
        opened.is_ok(),
        note.verify(&log).is_ok() && body.is_ok(),
        "open_checkpoint disagrees with verify and parse_body"
    );
    if let (Ok(opened), Ok(body)) = (&opened, &body) {
        assert_eq!(opened, body);
    }
    for signer in [&fixture.log, &fixture.witness] {
        for key in [signer.verifier(), signer.cosigner_verifier()] {
            if note.verify(&key).is_ok() {
                assert_lines_are_genuine(&note, signer, &key);
            }
        }
        let cosigner = signer.cosigner_verifier();
        if let Ok(timestamp) = note.verified_timestamp_cosig(&cosigner) {
            let latest = note
                .signatures
                .iter()
                .filter(|s| s.name == cosigner.name() && s.key_id == cosigner.key_id())
                .filter_map(NoteSignature::cosignature_timestamp)
                .max();
            assert_eq!(
                latest,
                Some(timestamp),
                "the verified cosignature is not the latest"
            );
        }
    }
}

/// Asserts that every line of `note` claiming `key` (one of `signer`'s) is the line
/// `signer` itself writes for the note's text. Ed25519 signing is deterministic, so a
/// different line that verifies would be a forgery.
fn assert_lines_are_genuine(note: &SignedNote, signer: &NoteSigner, key: &NoteVerifier) {
    let claiming = note
        .signatures
        .iter()
        .filter(|s| s.name == key.name() && s.key_id == key.key_id());
    for line in claiming {
        let written = match key.key_type() {
            KeyType::Ed25519 => signer.sign(&note.body),
            KeyType::CosignatureV1 => {
                let Some(timestamp) = line.cosignature_timestamp() else {
                    panic!("a cosignature line without a timestamp verified");
                };
                signer
                    .cosign(&note.body, timestamp)
                    .map(|cosigned| format!("{}\n{cosigned}", note.body))
            }
        };
        let written = written.unwrap_or_else(|e| {
            panic!(
                "a line of {} verified over a text it would refuse to sign: {e}",
                key.name()
            )
        });
        let own = SignedNote::parse(&written)
            .unwrap_or_else(|e| panic!("the signer's own note does not parse: {e}"));
        assert!(
            own.signatures.contains(line),
            "a line claiming {} verified but is not the one its key writes",
            key.name()
        );
    }
}

/// A receipt verifies only for an entry the log holds, at its position, under a
/// checkpoint the log signed; a genuine receipt verifies. The fixture's log key signs
/// no other checkpoint (no seed may carry one), so a receipt that verifies is about the
/// fixture's log.
pub fn receipt(fixture: &Fixture, data: &[u8]) {
    let mut input = Input::new(data);
    let (text, original) = if input.byte().is_multiple_of(2) {
        (input.rest().to_vec(), None)
    } else {
        let Some(original) = fixture.pick_receipt(&mut input) else {
            return;
        };
        let mut changed = original.clone();
        mutate_receipt(fixture, &mut changed, &mut input);
        let Ok(mut text) = serde_json::to_vec(&changed) else {
            return;
        };
        apply_edits(&mut text, &mut input);
        (text, Some(original))
    };
    let Ok(receipt) = serde_json::from_slice::<Receipt>(&text) else {
        return;
    };
    let verified = receipt.verify(&fixture.log.verifier());
    if original == Some(&receipt) {
        assert!(
            verified.is_ok(),
            "a genuine receipt does not verify: {:?}",
            verified.as_ref().err()
        );
    }
    let Ok(checkpoint) = verified else {
        return;
    };
    let held = usize::try_from(receipt.entry.seq)
        .ok()
        .and_then(|seq| fixture.entries.get(seq));
    assert_eq!(
        Some(&receipt.entry),
        held,
        "a receipt verified for an entry the log does not hold at that position"
    );
    assert_eq!(receipt.tree_size, checkpoint.size);
    let signed = usize::try_from(checkpoint.size)
        .ok()
        .and_then(|size| size.checked_sub(1))
        .and_then(|index| fixture.checkpoints.get(index));
    assert_eq!(
        Some(&checkpoint),
        signed,
        "a receipt verified under a checkpoint the log did not sign"
    );
}

/// Changes up to three fields of `receipt`, as the input decides, mostly to values
/// taken from elsewhere in the fixture (so that they pass the earlier checks).
fn mutate_receipt(fixture: &Fixture, receipt: &mut Receipt, input: &mut Input<'_>) {
    for _ in 0..input.byte() % 4 {
        match input.byte() % 10 {
            0 => receipt.entry.seq = u64::from(input.byte() % 9),
            1 => receipt.entry.timestamp_ms ^= i64::from(input.byte()),
            2 => {
                receipt.entry.kind = match input.byte() % 3 {
                    0 => EntryKind::Release,
                    1 => EntryKind::Other("future_kind".into()),
                    _ => EntryKind::Other(format!("kind_{}", input.byte())),
                }
            }
            3 => receipt.entry.actor.org.push(char::from(input.byte())),
            4 => {
                if let Some(other) = input.pick(&fixture.entries) {
                    receipt.entry.payload.clone_from(&other.payload);
                }
            }
            5 => {
                let Some(other) = input.pick(&fixture.entries) else {
                    continue;
                };
                match input.byte() % 3 {
                    0 => receipt.entry.payload_hash = other.payload_hash,
                    1 => receipt.entry.prev_hash = other.entry_hash,
                    _ => receipt.entry.entry_hash = other.entry_hash,
                }
            }
            6 => receipt.tree_size = u64::from(input.byte() % 9),
            7 => match input.byte() % 3 {
                0 => {
                    receipt.inclusion_proof.pop();
                }
                1 => receipt.inclusion_proof.push(Hash32(input.hash())),
                _ => {
                    let at = usize::from(input.byte());
                    let len = receipt.inclusion_proof.len().max(1);
                    let replacement = input.pick(&fixture.entries).map(|e| e.entry_hash);
                    if let (Some(slot), Some(hash)) =
                        (receipt.inclusion_proof.get_mut(at % len), replacement)
                    {
                        *slot = hash;
                    }
                }
            },
            8 => {
                if let Some(note) = input.pick(&fixture.notes) {
                    receipt.checkpoint.clone_from(note);
                }
            }
            _ => {
                if let Some(other) = input.pick(&fixture.entries) {
                    receipt.entry = other.clone();
                }
            }
        }
    }
}

/// Inclusion and consistency proofs against a 37-leaf tree: the verifiers accept
/// exactly when a plain recursion over the RFC 9162 tree shape, fed the proof's hashes,
/// reproduces the roots; genuine proofs are accepted.
pub fn merkle_proofs(fixture: &Fixture, data: &[u8]) {
    let mut input = Input::new(data);
    if input.byte().is_multiple_of(2) {
        inclusion(&fixture.proof_tree, &mut input);
    } else {
        consistency(&fixture.proof_tree, &mut input);
    }
}

/// A tree size or leaf index: mostly near the tree (up to one past its end), sometimes
/// any 64-bit value.
fn position(tree: &Tree, input: &mut Input<'_>) -> u64 {
    let b = input.byte();
    if b < 0xc0 {
        u64::from(b) % (tree.size() + 2)
    } else {
        input.u64()
    }
}

/// A hash for a proof check: the genuine one (when there is one), another hash of the
/// tree, the genuine one with a bit flipped, or raw input bytes. Says whether it is the
/// genuine one.
fn pick_hash(tree: &Tree, genuine: Option<Hash>, input: &mut Input<'_>) -> (Hash, bool) {
    match (input.byte() % 4, genuine) {
        (0, Some(hash)) => (hash, true),
        (1, _) => {
            let other = input.pick(&tree.hashes).copied().unwrap_or_default();
            (other, Some(other) == genuine)
        }
        (2, Some(mut hash)) => {
            let bit = input.byte();
            if let Some(b) = hash.get_mut(usize::from(bit / 8) % 32) {
                *b ^= 1 << (bit % 8);
            }
            (hash, false)
        }
        _ => {
            let raw = input.hash();
            (raw, Some(raw) == genuine)
        }
    }
}

/// A proof: the genuine one (when there is one), it with one hash dropped, added or
/// replaced, or raw input bytes. Says whether it is the genuine one.
fn pick_proof(tree: &Tree, genuine: Option<Vec<Hash>>, input: &mut Input<'_>) -> (Vec<Hash>, bool) {
    let proof = match (input.byte() % 4, genuine.clone()) {
        (0, Some(proof)) => return (proof, true),
        (1, Some(mut proof)) => {
            match input.byte() % 3 {
                0 => {
                    proof.pop();
                }
                1 => proof.push(input.pick(&tree.hashes).copied().unwrap_or_default()),
                _ => {
                    let at = usize::from(input.byte());
                    let len = proof.len().max(1);
                    let replacement = input.pick(&tree.hashes).copied().unwrap_or_default();
                    if let Some(slot) = proof.get_mut(at % len) {
                        *slot = replacement;
                    }
                }
            }
            proof
        }
        _ => (0..input.byte() % 70).map(|_| input.hash()).collect(),
    };
    let is_genuine = Some(&proof) == genuine.as_ref();
    (proof, is_genuine)
}

fn inclusion(tree: &Tree, input: &mut Input<'_>) {
    let size = position(tree, input);
    let index = position(tree, input);
    let (leaf, genuine_leaf) = pick_hash(tree, tree.leaf(index), input);
    let (root, genuine_root) = pick_hash(tree, tree.root(size), input);
    let (proof, genuine_proof) = pick_proof(tree, tree.inclusion_proof(index, size).ok(), input);
    let accepted =
        merkle::verify_inclusion::<Blake3Hasher>(index, size, &leaf, &proof, &root).is_ok();
    assert_eq!(
        accepted,
        reference_inclusion(index, size, &leaf, &proof, &root),
        "verify_inclusion and the reference disagree (index {index}, size {size}, {} hashes)",
        proof.len()
    );
    if genuine_leaf && genuine_root && genuine_proof && index < size {
        assert!(
            accepted,
            "a genuine inclusion proof was refused (index {index}, size {size})"
        );
    }
}

fn consistency(tree: &Tree, input: &mut Input<'_>) {
    let size1 = position(tree, input);
    let size2 = position(tree, input);
    let (root1, genuine1) = pick_hash(tree, tree.root(size1), input);
    let (root2, genuine2) = pick_hash(tree, tree.root(size2), input);
    let (proof, genuine_proof) = pick_proof(tree, tree.consistency_proof(size1, size2).ok(), input);
    let accepted =
        merkle::verify_consistency::<Blake3Hasher>(size1, size2, &proof, &root1, &root2).is_ok();
    assert_eq!(
        accepted,
        reference_consistency(size1, size2, &proof, &root1, &root2),
        "verify_consistency and the reference disagree (sizes {size1} and {size2}, {} hashes)",
        proof.len()
    );
    if genuine1 && genuine2 && genuine_proof && size1 != 0 && size1 <= size2 {
        assert!(
            accepted,
            "a genuine consistency proof was refused (sizes {size1} and {size2})"
        );
    }
}

/// RFC 9162 inclusion, the slow way: the proof's hashes are the subtrees
/// `inclusion_path` names, the leaf fills its own position, and the tree hash of
/// `0..size` recomputed from them must be the root.
fn reference_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    let Ok(ranges) = merkle::inclusion_path(index, size) else {
        return false;
    };
    if ranges.len() != proof.len() {
        return false;
    }
    let mut pieces: Vec<(Range<u64>, Hash)> =
        ranges.into_iter().zip(proof.iter().copied()).collect();
    pieces.push((index..index + 1, *leaf));
    subtree_hash(&pieces, 0..size) == Some(*root)
}

/// RFC 9162 consistency, the slow way: the proof's hashes are the subtrees
/// `consistency_path` names, plus the old root itself when no proof hash lies inside
/// the old tree (it is then a complete subtree, and the proof omits it); both trees'
/// hashes recomputed from them must be the roots.
fn reference_consistency(
    size1: u64,
    size2: u64,
    proof: &[Hash],
    root1: &Hash,
    root2: &Hash,
) -> bool {
    if size1 == 0 || size1 > size2 {
        return false;
    }
    if size1 == size2 {
        return proof.is_empty() && root1 == root2;
    }
    let Ok(ranges) = merkle::consistency_path(size1, size2) else {
        return false;
    };
    if ranges.len() != proof.len() {
        return false;
    }
    let mut pieces: Vec<(Range<u64>, Hash)> =
        ranges.into_iter().zip(proof.iter().copied()).collect();
    if !pieces.iter().any(|(r, _)| r.end <= size1) {
        pieces.push((0..size1, *root1));
    }
    subtree_hash(&pieces, 0..size1) == Some(*root1)
        && subtree_hash(&pieces, 0..size2) == Some(*root2)
}

/// The RFC 9162 tree hash of `range` from known subtree hashes: a piece for exactly
/// this range, else the split at the largest power of two below its length; `None`
/// when the pieces do not cover it.
fn subtree_hash(pieces: &[(Range<u64>, Hash)], range: Range<u64>) -> Option<Hash> {
    if let Some((_, hash)) = pieces.iter().find(|(r, _)| *r == range) {
        return Some(*hash);
    }
    let len = range.end.checked_sub(range.start)?;
    // Nothing inside: not covered (and no descent through an empty part of a huge range).
    if len < 2
        || !pieces
            .iter()
            .any(|(r, _)| range.start <= r.start && r.end <= range.end)
    {
        return None;
    }
    let split = 1u64 << (63 - (len - 1).leading_zeros());
    let mid = range.start + split;
    let left = subtree_hash(pieces, range.start..mid)?;
    let right = subtree_hash(pieces, mid..range.end)?;
    Some(Blake3Hasher::node(&left, &right))
}

/// A ledger on SQLite with three entries and one signed checkpoint, and the
/// cosignature table, for [`cosignature`].
pub struct CosignatureFixture {
    ledger: Ledger,
    log: NoteSigner,
    witness: NoteSigner,
    checkpoint: StoredCheckpoint,
    /// The checkpoint's note text.
    body: String,
}

impl CosignatureFixture {
    /// Creates the database `ledger.db` in `dir` (which must exist and hold no ledger).
    /// The entries carry the current time, so the checkpoint's root differs per run.
    pub async fn new(dir: &Path) -> Result<CosignatureFixture, LedgerError> {
        let db = Db::connect(&sqlite_url(&dir.join("ledger.db"))).await?;
        Ledger::migrate(&db).await?;
        sqlx::query(COSIGNATURES_TABLE).execute(db.pool()).await?;
        let log = fixed_signer(LOG_NAME, &LOG_SEED)?;
        let witness = fixed_signer(WITNESS_NAME, &WITNESS_SEED)?;
        let ledger = Ledger::new(
            db,
            log.clone(),
            LedgerConfig {
                checkpoint_every: 0,
                ..LedgerConfig::default()
            },
        );
        let actor = Actor {
            org: "org-fuzz".into(),
            key_id: "key-1".into(),
        };
        for i in 0..3 {
            let entry = Suspension {
                org: format!("org-{i}"),
                action: "suspended".into(),
                reason: "cosignature fuzzing".into(),
            };
            ledger.append_now(&actor, &entry).await?;
        }
        let checkpoint = ledger.checkpoint().await?;
        let body = SignedNote::parse(&checkpoint.note)?.body;
        Ok(CosignatureFixture {
            ledger,
            log,
            witness,
            checkpoint,
            body,
        })
    }

    /// A witness key and a cosigned note, as the input decides: one of the fixture's
    /// keys; the log's checkpoint, a fork of it or a size it never signed; up to three
    /// cosignature lines by the witness or the log; then byte edits.
    fn structured(&self, input: &mut Input<'_>) -> (Vec<u8>, Vec<u8>) {
        let key = match input.byte() % 4 {
            0 => self.witness.cosigner_verifier(),
            1 => self.witness.verifier(),
            2 => self.log.cosigner_verifier(),
            _ => self.log.verifier(),
        }
        .to_vkey();
        let signed = Checkpoint::parse_body(&self.body);
        let (body, mut note) = match (input.byte() % 3, signed) {
            (0, _) | (_, Err(_)) => (self.body.clone(), self.checkpoint.note.clone()),
            (choice, Ok(mut other)) => {
                if choice == 1 {
                    other.root[0] ^= 1;
                } else {
                    other.size += 1 + u64::from(input.byte());
                }
                match self.log.sign_checkpoint(&other) {
                    Ok(note) => (other.body(), note),
                    Err(_) => (self.body.clone(), self.checkpoint.note.clone()),
                }
            }
        };
        for _ in 0..input.byte() % 4 {
            let signer = if input.byte().is_multiple_of(2) {
                &self.witness
            } else {
                &self.log
            };
            if let Ok(line) = signer.cosign(&body, input.u64() & MAX_COSIGNATURE_TIMESTAMP) {
                note.push_str(&line);
            }
        }
        let mut note = note.into_bytes();
        apply_edits(&mut note, input);
        (key.into_bytes(), note)
    }

    /// What [`Ledger::accept_cosignature`] kept must be a fixture key's own line over
    /// the one checkpoint the log signed, and the served note must verify with it.
    async fn check_accepted(&self, accepted: &Cosignature) {
        assert_eq!(
            accepted.size, self.checkpoint.size,
            "a cosignature of a checkpoint the log did not sign was kept"
        );
        let Some(signer) = [&self.witness, &self.log]
            .into_iter()
            .find(|s| s.cosigner_verifier().to_vkey() == accepted.witness_key)
        else {
            panic!("a cosignature by a key no input holds the secret of was kept");
        };
        let line = signer
            .cosign(&self.body, accepted.timestamp)
            .unwrap_or_else(|e| panic!("a cosignature the witness could not write was kept: {e}"));
        assert_eq!(
            accepted.line, line,
            "the kept line is not the one the witness writes"
        );
        let served = self
            .ledger
            .with_cosignatures(&self.checkpoint)
            .await
            .unwrap_or_else(|e| panic!("serving the cosigned checkpoint failed: {e}"));
        let note = SignedNote::parse(&served)
            .unwrap_or_else(|e| panic!("the served checkpoint does not parse: {e}"));
        assert!(
            note.verify(&self.log.verifier()).is_ok(),
            "the served checkpoint does not verify under the log's key"
        );
        assert_eq!(
            note.verified_timestamp_cosig(&signer.cosigner_verifier()),
            Ok(accepted.timestamp),
            "the served checkpoint does not carry the kept cosignature"
        );
    }
}

/// Witness cosignatures through [`Ledger::accept_cosignature`]: every refusal is the
/// submitter's mistake (never a storage error), and what is kept is checked by
/// [`CosignatureFixture`]. The raw mode reads the witness key up to the first newline
/// and the note after it.
pub async fn cosignature(fixture: &CosignatureFixture, data: &[u8]) {
    let mut input = Input::new(data);
    let (key, note) = if input.byte().is_multiple_of(2) {
        let raw = input.rest();
        match raw.iter().position(|&b| b == b'\n') {
            Some(at) => {
                let (key, rest) = raw.split_at(at);
                (key.to_vec(), rest.get(1..).unwrap_or_default().to_vec())
            }
            None => (raw.to_vec(), Vec::new()),
        }
    } else {
        fixture.structured(&mut input)
    };
    let (Ok(key), Ok(note)) = (String::from_utf8(key), String::from_utf8(note)) else {
        return;
    };
    match fixture.ledger.accept_cosignature(&key, &note).await {
        Ok(accepted) => fixture.check_accepted(&accepted).await,
        Err(e) => assert!(
            e.is_client_error(),
            "a cosignature submission caused a server error: {e}"
        ),
    }
}
