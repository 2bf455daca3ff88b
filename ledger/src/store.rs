//! Ledger storage on SQLite or PostgreSQL.
//!
//! # Appending
//!
//! An append runs inside the caller's transaction ([`Ledger::append`] takes the
//! connection), so a business row and its entry commit together or not at all. The
//! first statement locks the single `ledger_head` row (`UPDATE … RETURNING`): on
//! PostgreSQL that is a row lock held to commit; on SQLite the transaction already holds
//! the database write lock (see [`crate::db::Db::begin_write`]). Either way appends are
//! serialised across processes, and the head row hands the writer the previous entry
//! hash and the tree's frontier (the hashes of `complete_subtrees(0..size)`), so no
//! other read is needed.
//!
//! Each append writes the entry, every interior Merkle subtree it completes (amortised
//! one row), the organisations it concerns, and the new head; every `checkpoint_every`
//! entries it also signs a checkpoint in the same transaction.
//!
//! # Reading proofs
//!
//! Every complete subtree is kept: those of height one and more in `ledger_nodes`, and
//! the leaves (height zero) implicitly, since leaf `i` is `H(0x00 || entry_hash)` of
//! entry `i` (RFC 9162 leaf rule, see [`crate::entry`]). Storing the leaves as well would
//! double the node rows written per append for the price of one hash per proof. An
//! inclusion or consistency proof therefore reads its O(log n) nodes with one query on
//! `ledger_nodes` plus, for the few leaves it needs, one on `ledger_entries` (see
//! [`crate::merkle::nodes_for`]); the tree is never rebuilt.
//!
//! Nodes are keyed by `node_pos`, the order in which appends complete them, so every
//! new node row goes at the end of the table: inserting by `(level, idx)` instead put
//! each batch's nodes in a dozen places mid-tree, and cost more than the entries.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::db::{Backend, Db, DbError, now_ms};
use crate::entry::{Actor, Entry, EntryError, EntryKind, EntryView, Hash32};
use crate::kinds::LedgerPayload;
use crate::merkle::{self, Blake3Hasher, CompactRange, MerkleError, MerkleHasher, NodeId};
use crate::note::{Checkpoint, NoteError, NoteSigner, NoteVerifier};
use crate::receipt::{RECEIPT_FORMAT, Receipt};
use crate::sqlite_scan::PageStream;
use crate::verify::{CheckpointRecord, Verifier, VerifyFailure, VerifyReport};

/// Ledger failures. None of them carries key material.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbError),
    /// An entry could not be built (bad payload or actor).
    #[error("invalid entry: {0}")]
    Entry(#[from] EntryError),
    /// The stored tree is missing a node or a proof request is malformed.
    #[error("merkle: {0}")]
    Merkle(#[from] MerkleError),
    /// Signing a checkpoint failed.
    #[error("checkpoint: {0}")]
    Note(#[from] NoteError),
    /// A seq or size is beyond the ledger.
    #[error("{0}")]
    OutOfRange(String),
    /// Stored state does not have the expected shape.
    #[error("corrupt ledger storage: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for LedgerError {
    fn from(e: sqlx::Error) -> Self {
        LedgerError::Db(DbError::Sqlx(e))
    }
}

/// How often checkpoints are signed.
#[derive(Clone, Debug)]
pub struct LedgerConfig {
    /// Sign a checkpoint whenever the size reaches a multiple of this (0: never by count).
    pub checkpoint_every: u64,
    /// The server signs a checkpoint when the newest is older than this and stale.
    pub checkpoint_interval: Duration,
}

impl Default for LedgerConfig {
    fn default() -> Self {
        LedgerConfig {
            checkpoint_every: 1000,
            checkpoint_interval: Duration::from_secs(30),
        }
    }
}

/// What an append returns: enough to fetch a receipt once a checkpoint covers it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Appended {
    /// The entry's seq.
    pub seq: u64,
    /// The entry's hash.
    pub entry_hash: Hash32,
    /// When it was appended (ms since epoch, UTC).
    pub timestamp_ms: i64,
}

/// A signed checkpoint as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct StoredCheckpoint {
    /// Tree size.
    pub size: u64,
    /// When it was signed.
    pub timestamp_ms: i64,
    /// Merkle root at that size.
    pub root: Hash32,
    /// The signed note.
    pub note: String,
}

/// What a page of entries is narrowed to, besides who reads it ([`Ledger::entries_matching`]).
#[derive(Clone, Debug, Default)]
pub struct EntryFilter {
    /// Only entries of this kind.
    pub kind: Option<EntryKind>,
    /// Only entries this organisation appended or is a party to.
    pub org: Option<String>,
    /// Only entries appended at or after this time (ms since epoch, UTC).
    pub since_ms: Option<i64>,
    /// Only entries appended before this time (ms since epoch, UTC).
    pub until_ms: Option<i64>,
}

/// Who is reading: supervisors see all; others see public kinds and their own entries;
/// the public, without a key, public kinds only.
#[derive(Clone, Debug)]
pub enum Visibility {
    /// Every entry.
    All,
    /// Public kinds plus entries the organisation appended or is a party to.
    Org(String),
    /// Public kinds only ([`EntryKind::is_public`]): a reader without an organisation.
    Public,
}

/// One entry to append.
#[derive(Clone, Debug)]
pub struct NewEntry {
    /// Kind.
    pub kind: EntryKind,
    /// Who appends it.
    pub actor: Actor,
    /// Payload (stored canonically).
    pub payload: serde_json::Value,
    /// Other organisations that may read it.
    pub parties: Vec<String>,
}

impl NewEntry {
    /// From a typed payload.
    pub fn typed<P: LedgerPayload>(actor: &Actor, payload: &P) -> Result<Self, LedgerError> {
        let value = serde_json::to_value(payload).map_err(|_| EntryError::NotJson)?;
        Ok(NewEntry {
            kind: P::KIND,
            actor: actor.clone(),
            payload: value,
            parties: payload.parties(),
        })
    }
}

/// The ledger: a database handle plus the checkpoint signer.
#[derive(Clone)]
pub struct Ledger {
    db: Db,
    signer: Arc<NoteSigner>,
    config: LedgerConfig,
}

fn to_i64(v: u64, what: &str) -> Result<i64, LedgerError> {
    i64::try_from(v).map_err(|_| LedgerError::OutOfRange(format!("{what} too large")))
}

fn to_u64(v: i64, what: &str) -> Result<u64, LedgerError> {
    u64::try_from(v).map_err(|_| LedgerError::Corrupt(format!("negative {what}")))
}

fn hash_col(row: &AnyRow, col: &str) -> Result<Hash32, LedgerError> {
    let bytes: Vec<u8> = row.try_get(col)?;
    Hash32::from_slice(&bytes).map_err(|_| LedgerError::Corrupt(format!("{col} is not 32 bytes")))
}

const ENTRY_COLUMNS: &str =
    "seq, timestamp_ms, kind, actor_org, actor_key, payload, payload_hash, prev_hash, entry_hash";

/// "The organisation bound to `$n` is a party to this entry", for a query over
/// `ledger_entries`: a lookup of the entry's row in `ledger_parties` (by its primary
/// key) for each entry the query reads, so that a page costs what it reads. The form
/// `seq IN (SELECT seq FROM ledger_parties WHERE org = $n)` made both backends gather
/// every entry the organisation is a party to (for a busy organisation, a large part of
/// the ledger) for every page.
fn party_of(n: usize) -> String {
    format!(
        "EXISTS (SELECT 1 FROM ledger_parties p WHERE p.org = ${n} \
         AND p.seq = ledger_entries.seq)"
    )
}

/// Entries an organisation may read, built once: the kind list is our own constant
/// names, never input.
static ORG_VISIBLE_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let public = EntryKind::public_names()
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE seq >= $1 AND \
         (kind IN ({public}) OR actor_org = $2 OR {}) ORDER BY seq LIMIT $3",
        party_of(2)
    )
});

/// Entries of the public kinds from a seq on (for [`Visibility::Public`]).
static PUBLIC_SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let public = EntryKind::public_names()
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE seq >= $1 AND kind IN ({public}) \
         ORDER BY seq LIMIT $2"
    )
});

/// The public kinds as an SQL list (`'a', 'b'`), built once from our own constant names,
/// never input.
static PUBLIC_KIND_LIST: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    EntryKind::public_names()
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ")
});

fn entry_from_row(row: &AnyRow) -> Result<Entry, LedgerError> {
    let kind: String = row.try_get("kind")?;
    Ok(Entry {
        seq: to_u64(row.try_get("seq")?, "seq")?,
        timestamp_ms: row.try_get("timestamp_ms")?,
        kind: kind.parse().unwrap_or(EntryKind::Other(kind)),
        actor: Actor {
            org: row.try_get("actor_org")?,
            key_id: row.try_get("actor_key")?,
        },
        payload: row.try_get("payload")?,
        payload_hash: hash_col(row, "payload_hash")?,
        prev_hash: hash_col(row, "prev_hash")?,
        entry_hash: hash_col(row, "entry_hash")?,
    })
}

fn checkpoint_from_row(row: &AnyRow) -> Result<StoredCheckpoint, LedgerError> {
    Ok(StoredCheckpoint {
        size: to_u64(row.try_get("size")?, "size")?,
        timestamp_ms: row.try_get("timestamp_ms")?,
        root: hash_col(row, "root")?,
        note: row.try_get("note")?,
    })
}

/// The head row: size, last entry hash and frontier.
#[derive(Clone)]
pub(crate) struct Head {
    head_hash: Hash32,
    /// The tree's right frontier: the hashes of `complete_subtrees(0..size)`, largest
    /// first, exactly as stored in `ledger_head.frontier`.
    tree: CompactRange<Blake3Hasher>,
}

impl Head {
    fn decode(size: i64, head_hash: &[u8], frontier: &[u8]) -> Result<Head, LedgerError> {
        let size = to_u64(size, "size")?;
        if !frontier.len().is_multiple_of(32) {
            return Err(LedgerError::Corrupt("frontier length".into()));
        }
        let hashes = frontier
            .chunks_exact(32)
            .map(|c| {
                let mut h = [0u8; 32];
                h.copy_from_slice(c);
                h
            })
            .collect();
        Ok(Head {
            head_hash: Hash32::from_slice(head_hash)
                .map_err(|_| LedgerError::Corrupt("head hash".into()))?,
            tree: CompactRange::from_parts(size, hashes)
                .map_err(|_| LedgerError::Corrupt("frontier length".into()))?,
        })
    }

    fn size(&self) -> u64 {
        self.tree.size()
    }

    fn frontier_bytes(&self) -> Vec<u8> {
        self.tree.frontier().concat()
    }

    fn root(&self) -> merkle::Hash {
        self.tree.root()
    }

    /// Adds one leaf; records the complete subtrees it finishes (to store) in `nodes`.
    fn push(&mut self, leaf: merkle::Hash, nodes: &mut Vec<(NodeId, merkle::Hash)>) {
        self.tree.append_recording(leaf, nodes);
    }
}

/// Entries built on a locked head and not yet written ([`Ledger::stage`]).
pub(crate) struct Staged {
    head: Head,
    /// The one timestamp of everything staged together.
    ts: i64,
    entries: Vec<Entry>,
    nodes: Vec<(NodeId, merkle::Hash)>,
    parties: Vec<(String, u64)>,
    checkpoints: Vec<StoredCheckpoint>,
}

/// Where a staging area stood ([`Staged::mark`]), to go back to on a failure.
pub(crate) struct StagedMark {
    head: Head,
    entries: usize,
    nodes: usize,
    parties: usize,
    checkpoints: usize,
}

impl Staged {
    /// Where the staging area stands now.
    pub(crate) fn mark(&self) -> StagedMark {
        StagedMark {
            head: self.head.clone(),
            entries: self.entries.len(),
            nodes: self.nodes.len(),
            parties: self.parties.len(),
            checkpoints: self.checkpoints.len(),
        }
    }

    /// Drops everything staged since `mark`.
    pub(crate) fn reset(&mut self, mark: StagedMark) {
        self.head = mark.head;
        self.entries.truncate(mark.entries);
        self.nodes.truncate(mark.nodes);
        self.parties.truncate(mark.parties);
        self.checkpoints.truncate(mark.checkpoints);
    }
}

/// The `ledger_nodes` key of a complete subtree: the index of its last leaf, times 64,
/// plus its level.
///
/// ```text
/// pos(level, idx) = ((((idx + 1) << level) - 1) << 6) | level
/// ```
///
/// Appending leaf `n` completes the subtrees ending at `n`, lowest level first, so
/// positions only ever grow: new rows go at the end of the table (see the module
/// docs). The mapping is one-to-one ([`node_at`] inverts it) for levels below 64 and
/// last leaves below 2^57, far beyond any ledger.
pub(crate) fn node_pos(id: NodeId) -> Result<i64, LedgerError> {
    let too_large = || LedgerError::OutOfRange(format!("{id} is beyond the node key range"));
    let last = id
        .leaves()
        .and_then(|leaves| leaves.end.checked_sub(1))
        .ok_or_else(too_large)?;
    if last >= 1 << 57 || id.level >= 64 {
        return Err(too_large());
    }
    i64::try_from(last << 6 | u64::from(id.level)).map_err(|_| too_large())
}

/// The subtree a `ledger_nodes` key names (inverse of [`node_pos`]).
pub(crate) fn node_at(pos: i64) -> Result<NodeId, LedgerError> {
    let corrupt = || LedgerError::Corrupt(format!("node key {pos}"));
    let pos = u64::try_from(pos).map_err(|_| corrupt())?;
    let level = (pos & 63) as u8;
    let end = (pos >> 6) + 1;
    // The subtree ends on a multiple of its width.
    if end.trailing_zeros() < u32::from(level) {
        return Err(corrupt());
    }
    let id = NodeId::new(level, (end >> level) - 1);
    match node_pos(id) {
        Ok(p) if p == pos as i64 => Ok(id),
        _ => Err(corrupt()),
    }
}

/// Most rows per multi-row INSERT (256 entry rows are 2,304 bind parameters, well under
/// SQLite's 32,766 and PostgreSQL's 65,535).
const INSERT_CHUNK: usize = 256;

/// Splits `rows` into multi-row INSERT sizes: full chunks of [`INSERT_CHUNK`], then the
/// remainder's binary digits (e.g. 1,000 = 3 × 256 + 128 + 64 + 32 + 8).
///
/// A multi-row INSERT's SQL depends on its row count, and preparing one costs SQLite
/// more than executing it. Drawing sizes from this fixed set of nine means every
/// statement is prepared once per connection and then served from sqlx's statement
/// cache, whatever the batch sizes (Merkle node counts vary from batch to batch).
fn insert_chunks(rows: usize) -> impl Iterator<Item = usize> {
    let full = std::iter::repeat_n(INSERT_CHUNK, rows / INSERT_CHUNK);
    let rest = rows % INSERT_CHUNK;
    let bits = (0..INSERT_CHUNK.trailing_zeros())
        .rev()
        .map(|bit| 1usize << bit)
        .filter(move |size| rest & size != 0);
    full.chain(bits)
}

impl Ledger {
    /// Opens the ledger on a migrated database (see [`Ledger::migrate`]).
    pub fn new(db: Db, signer: NoteSigner, config: LedgerConfig) -> Ledger {
        Ledger {
            db,
            signer: Arc::new(signer),
            config,
        }
    }

    /// Runs the ledger's migrations.
    pub async fn migrate(db: &Db) -> Result<(), LedgerError> {
        db.migrate(crate::db::ledger_migrations()).await?;
        Ok(())
    }

    /// The database handle.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The public key, as a signed-note verifier.
    pub fn verifier(&self) -> NoteVerifier {
        self.signer.verifier()
    }

    /// The checkpoint origin (the signer's name).
    pub fn origin(&self) -> &str {
        self.signer.name()
    }

    /// The configuration.
    pub fn config(&self) -> &LedgerConfig {
        &self.config
    }

    async fn lock_head(conn: &mut AnyConnection) -> Result<Head, LedgerError> {
        let row = sqlx::query(
            "UPDATE ledger_head SET size = size WHERE id = 1 RETURNING size, head_hash, frontier",
        )
        .fetch_one(&mut *conn)
        .await?;
        let size: i64 = row.try_get("size")?;
        let head_hash: Vec<u8> = row.try_get("head_hash")?;
        let frontier: Vec<u8> = row.try_get("frontier")?;
        Head::decode(size, &head_hash, &frontier)
    }

    /// Appends a typed payload inside the caller's transaction.
    pub async fn append<P: LedgerPayload>(
        &self,
        conn: &mut AnyConnection,
        actor: &Actor,
        payload: &P,
    ) -> Result<Appended, LedgerError> {
        let mut out = self
            .append_batch(conn, vec![NewEntry::typed(actor, payload)?])
            .await?;
        out.pop()
            .ok_or_else(|| LedgerError::Corrupt("empty batch result".into()))
    }

    /// Appends a typed payload and returns once it is committed. Concurrent calls share
    /// one transaction and one commit ([`crate::group`]).
    pub async fn append_now<P: LedgerPayload>(
        &self,
        actor: &Actor,
        payload: &P,
    ) -> Result<Appended, LedgerError> {
        self.append_entry_now(NewEntry::typed(actor, payload)?)
            .await
    }

    /// True if `other` appends to the same log with the same checkpoint rule, so their
    /// entries may share one group's staging area.
    pub(crate) fn same_log(&self, other: &Ledger) -> bool {
        Arc::ptr_eq(&self.signer, &other.signer)
            && self.config.checkpoint_every == other.config.checkpoint_every
    }

    /// Appends many entries inside the caller's transaction, in order.
    pub async fn append_batch(
        &self,
        conn: &mut AnyConnection,
        items: Vec<NewEntry>,
    ) -> Result<Vec<Appended>, LedgerError> {
        let mut staged = Self::stage_begin(conn, items.len()).await?;
        let appended = items
            .into_iter()
            .map(|item| self.stage(&mut staged, item))
            .collect::<Result<Vec<_>, _>>()?;
        self.write_staged(conn, staged).await?;
        Ok(appended)
    }

    /// Locks the head (see the module docs) and opens a staging area on it for about
    /// `expected` entries: the first half of an append.
    pub(crate) async fn stage_begin(
        conn: &mut AnyConnection,
        expected: usize,
    ) -> Result<Staged, LedgerError> {
        Ok(Staged {
            head: Self::lock_head(conn).await?,
            ts: now_ms(),
            entries: Vec::with_capacity(expected),
            // An append completes one leaf and, amortised, one interior subtree.
            nodes: Vec::with_capacity(expected * 2 + 64),
            parties: Vec::new(),
            checkpoints: Vec::new(),
        })
    }

    /// Builds one entry on top of the staged head, in memory; on an error the staging
    /// area is as it was.
    pub(crate) fn stage(
        &self,
        staged: &mut Staged,
        item: NewEntry,
    ) -> Result<Appended, LedgerError> {
        let entry = Entry::build(
            staged.head.size(),
            staged.ts,
            item.kind,
            item.actor,
            &item.payload,
            staged.head.head_hash,
        )?;
        // Signing is the one step after the push that can fail: only then is the
        // staging area's state kept to go back to.
        let signs = self.config.checkpoint_every > 0
            && (staged.head.size() + 1).is_multiple_of(self.config.checkpoint_every);
        let mark = signs.then(|| staged.mark());
        staged
            .head
            .push(Blake3Hasher::leaf(entry.leaf_data()), &mut staged.nodes);
        staged.head.head_hash = entry.entry_hash;
        if let Some(mark) = mark {
            match self.sign(staged.head.size(), staged.head.root(), staged.ts) {
                Ok(cp) => staged.checkpoints.push(cp),
                Err(e) => {
                    staged.reset(mark);
                    return Err(e);
                }
            }
        }
        // Only this entry's own parties can repeat one of its rows (they all carry its
        // seq), so the duplicate check looks at those alone, not the whole group's.
        let first = staged.parties.len();
        for org in item.parties {
            if org != entry.actor.org && !staged.parties[first..].iter().any(|(o, _)| *o == org) {
                staged.parties.push((org, entry.seq));
            }
        }
        let appended = Appended {
            seq: entry.seq,
            entry_hash: entry.entry_hash,
            timestamp_ms: entry.timestamp_ms,
        };
        staged.entries.push(entry);
        Ok(appended)
    }

    /// Writes staged entries, their subtrees, parties and checkpoints, and the new head:
    /// the second half of an append.
    pub(crate) async fn write_staged(
        &self,
        conn: &mut AnyConnection,
        staged: Staged,
    ) -> Result<(), LedgerError> {
        let Staged {
            head,
            mut nodes,
            entries,
            parties,
            checkpoints,
            ..
        } = staged;
        // Leaves are implied by the entries (see the module docs); only interior subtrees
        // are stored.
        nodes.retain(|(id, _)| id.level > 0);
        let backend = self.db.backend();
        Self::insert_entries(conn, backend, entries).await?;
        Self::insert_nodes(conn, backend, &nodes).await?;
        Self::insert_parties(conn, backend, parties).await?;
        for cp in &checkpoints {
            Self::insert_checkpoint(conn, cp).await?;
        }
        sqlx::query("UPDATE ledger_head SET size = $1, head_hash = $2, frontier = $3 WHERE id = 1")
            .bind(to_i64(head.size(), "size")?)
            .bind(head.head_hash.0.to_vec())
            .bind(head.frontier_bytes())
            .execute(&mut *conn)
            .await?;
        Ok(())
    }

    fn sign(
        &self,
        size: u64,
        root: merkle::Hash,
        ts: i64,
    ) -> Result<StoredCheckpoint, LedgerError> {
        let body = Checkpoint {
            origin: self.signer.name().to_string(),
            size,
            root,
            extensions: Vec::new(),
        }
        .body();
        Ok(StoredCheckpoint {
            size,
            timestamp_ms: ts,
            root: Hash32(root),
            note: self.signer.sign(&body)?,
        })
    }

    /// Inserts the entries, moving their strings into the statement's arguments (sqlx's
    /// `Any` driver takes arguments by value, so this saves one copy of each).
    async fn insert_entries(
        conn: &mut AnyConnection,
        backend: Backend,
        entries: Vec<Entry>,
    ) -> Result<(), LedgerError> {
        let sizes: Vec<usize> = insert_chunks(entries.len()).collect();
        let mut rows = entries.into_iter();
        for size in sizes {
            let sql = multi_insert(backend, "ledger_entries", ENTRY_COLUMNS, 9, size);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in rows.by_ref().take(size) {
                q = q
                    .bind(to_i64(e.seq, "seq")?)
                    .bind(e.timestamp_ms)
                    .bind(e.kind.as_str())
                    .bind(e.actor.org)
                    .bind(e.actor.key_id)
                    .bind(e.payload)
                    .bind(&e.payload_hash.0[..])
                    .bind(&e.prev_hash.0[..])
                    .bind(&e.entry_hash.0[..]);
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn insert_nodes(
        conn: &mut AnyConnection,
        backend: Backend,
        nodes: &[(NodeId, merkle::Hash)],
    ) -> Result<(), LedgerError> {
        let mut rows = nodes.iter();
        for size in insert_chunks(nodes.len()) {
            let sql = multi_insert(backend, "ledger_nodes", "pos, hash", 2, size);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, h) in rows.by_ref().take(size) {
                q = q.bind(node_pos(*id)?).bind(&h[..]);
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn insert_parties(
        conn: &mut AnyConnection,
        backend: Backend,
        parties: Vec<(String, u64)>,
    ) -> Result<(), LedgerError> {
        let mut rows = parties.into_iter();
        for size in insert_chunks(rows.len()) {
            let sql = multi_insert(backend, "ledger_parties", "org, seq", 2, size);
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (org, seq) in rows.by_ref().take(size) {
                q = q.bind(org).bind(to_i64(seq, "seq")?);
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn insert_checkpoint(
        conn: &mut AnyConnection,
        cp: &StoredCheckpoint,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "INSERT INTO ledger_checkpoints (size, timestamp_ms, root, note) VALUES ($1, $2, $3, $4)",
        )
        .bind(to_i64(cp.size, "size")?)
        .bind(cp.timestamp_ms)
        .bind(cp.root.0.to_vec())
        .bind(cp.note.clone())
        .execute(&mut *conn)
        .await?;
        Ok(())
    }

    /// Signs a checkpoint at the current size now, unless the newest already covers it.
    pub async fn checkpoint(&self) -> Result<StoredCheckpoint, LedgerError> {
        let mut tx = self.db.begin_write().await?;
        let head = Self::lock_head(&mut tx).await?;
        if let Some(latest) = Self::latest_checkpoint_on(&mut tx).await?
            && latest.size == head.size()
        {
            tx.rollback().await?;
            return Ok(latest);
        }
        let cp = self.sign(head.size(), head.root(), now_ms())?;
        Self::insert_checkpoint(&mut tx, &cp).await?;
        tx.commit().await?;
        Ok(cp)
    }

    /// Signs a checkpoint if entries exist past the newest one and it is older than the
    /// configured interval (the server's timer calls this).
    pub async fn checkpoint_if_stale(&self) -> Result<Option<StoredCheckpoint>, LedgerError> {
        let size = self.size().await?;
        let latest = self.latest_checkpoint().await?;
        let interval_ms =
            i64::try_from(self.config.checkpoint_interval.as_millis()).unwrap_or(i64::MAX);
        let stale = match &latest {
            None => true,
            Some(cp) => cp.size < size && now_ms().saturating_sub(cp.timestamp_ms) >= interval_ms,
        };
        if stale {
            Ok(Some(self.checkpoint().await?))
        } else {
            Ok(None)
        }
    }

    async fn latest_checkpoint_on(
        conn: &mut AnyConnection,
    ) -> Result<Option<StoredCheckpoint>, LedgerError> {
        let row = sqlx::query(
            "SELECT size, timestamp_ms, root, note FROM ledger_checkpoints ORDER BY size DESC LIMIT 1",
        )
        .fetch_optional(&mut *conn)
        .await?;
        row.as_ref().map(checkpoint_from_row).transpose()
    }

    /// The newest signed checkpoint.
    pub async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, LedgerError> {
        let mut conn = self.db.pool().acquire().await?;
        Self::latest_checkpoint_on(&mut conn).await
    }

    /// Every checkpoint, smallest first (for the verifier).
    pub async fn checkpoints(&self) -> Result<Vec<StoredCheckpoint>, LedgerError> {
        let rows = sqlx::query(
            "SELECT size, timestamp_ms, root, note FROM ledger_checkpoints ORDER BY size",
        )
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(checkpoint_from_row).collect()
    }

    /// Number of entries committed.
    pub async fn size(&self) -> Result<u64, LedgerError> {
        let row = sqlx::query("SELECT size FROM ledger_head WHERE id = 1")
            .fetch_one(self.db.pool())
            .await?;
        to_u64(row.try_get("size")?, "size")
    }

    /// One entry.
    pub async fn entry(&self, seq: u64) -> Result<Option<Entry>, LedgerError> {
        let sql = format!("SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE seq = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(to_i64(seq, "seq")?)
            .fetch_optional(self.db.pool())
            .await?;
        row.as_ref().map(entry_from_row).transpose()
    }

    /// True if `org` may read the entry at `seq` (public kind, actor or party).
    pub async fn visible_to(&self, entry: &Entry, org: &str) -> Result<bool, LedgerError> {
        if entry.kind.is_public() || entry.actor.org == org {
            return Ok(true);
        }
        let row = sqlx::query("SELECT 1 AS one FROM ledger_parties WHERE org = $1 AND seq = $2")
            .bind(org.to_string())
            .bind(to_i64(entry.seq, "seq")?)
            .fetch_optional(self.db.pool())
            .await?;
        Ok(row.is_some())
    }

    /// A page of entries from `from`, at most `limit`, as `who` may see them.
    pub async fn entries(
        &self,
        from: u64,
        limit: u32,
        who: &Visibility,
    ) -> Result<Vec<Entry>, LedgerError> {
        self.entries_filtered(from, limit, who, None).await
    }

    /// A page of entries from seq `from` on, at most `limit`, in seq order, as `who` may
    /// see them, and only those of `kind` when one is given.
    ///
    /// The kind is part of the query rather than a filter on the page read, so a page
    /// holds up to `limit` entries of that kind and the next page starts after the last
    /// one returned: filtering afterwards would hand back short (even empty) pages in
    /// the middle of the ledger, which callers would take for its end.
    pub async fn entries_filtered(
        &self,
        from: u64,
        limit: u32,
        who: &Visibility,
        kind: Option<&EntryKind>,
    ) -> Result<Vec<Entry>, LedgerError> {
        let rows = match (who, kind) {
            // Supervisors see every entry, and everyone sees every entry of a public
            // kind: the kind alone decides, as in `entries_of_kind`.
            (Visibility::All, Some(kind)) => {
                return self.entries_of_kind(kind, from, limit).await;
            }
            (Visibility::Org(_) | Visibility::Public, Some(kind)) if kind.is_public() => {
                return self.entries_of_kind(kind, from, limit).await;
            }
            // A private kind: the public sees none of it.
            (Visibility::Public, Some(_)) => return Ok(Vec::new()),
            (Visibility::Public, None) => {
                sqlx::query(sqlx::AssertSqlSafe(PUBLIC_SQL.as_str()))
                    .bind(to_i64(from, "from")?)
                    .bind(i64::from(limit))
                    .fetch_all(self.db.pool())
                    .await?
            }
            (Visibility::Org(org), Some(kind)) => {
                // A private kind: only what the organisation appended or is a party to.
                let sql = format!(
                    "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE kind = $1 AND seq >= $2 \
                     AND (actor_org = $3 OR {}) ORDER BY seq LIMIT $4",
                    party_of(3)
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(kind.as_str().to_string())
                    .bind(to_i64(from, "from")?)
                    .bind(org.clone())
                    .bind(i64::from(limit))
                    .fetch_all(self.db.pool())
                    .await?
            }
            (Visibility::All, None) => {
                let sql = format!(
                    "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE seq >= $1 ORDER BY seq LIMIT $2"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(to_i64(from, "from")?)
                    .bind(i64::from(limit))
                    .fetch_all(self.db.pool())
                    .await?
            }
            (Visibility::Org(org), None) => {
                sqlx::query(sqlx::AssertSqlSafe(ORG_VISIBLE_SQL.as_str()))
                    .bind(to_i64(from, "from")?)
                    .bind(org.clone())
                    .bind(i64::from(limit))
                    .fetch_all(self.db.pool())
                    .await?
            }
        };
        rows.iter().map(entry_from_row).collect()
    }

    /// A page of entries from seq `from` on, at most `limit`, in seq order, as `who` may
    /// see them, narrowed by `filter` (kind, organisation, time range).
    ///
    /// As in [`Ledger::entries_filtered`] (which answers when only a kind is given), every
    /// condition is part of the query, so a page holds up to `limit` matching entries
    /// and the next page starts after the last one returned. The organisation matches
    /// the entries it appended and those it is a party to, as visibility does. Every
    /// value is bound, never spliced.
    pub async fn entries_matching(
        &self,
        from: u64,
        limit: u32,
        who: &Visibility,
        filter: &EntryFilter,
    ) -> Result<Vec<Entry>, LedgerError> {
        if filter.org.is_none() && filter.since_ms.is_none() && filter.until_ms.is_none() {
            return self
                .entries_filtered(from, limit, who, filter.kind.as_ref())
                .await;
        }
        /// A value bound to a numbered placeholder.
        enum Bound {
            Int(i64),
            Text(String),
        }
        let mut bound = vec![Bound::Int(to_i64(from, "from")?)];
        let mut conditions = vec!["seq >= $1".to_string()];
        // Pushes a value and returns its placeholder number.
        let mut bind = |value: Bound| {
            bound.push(value);
            bound.len()
        };
        let public = PUBLIC_KIND_LIST.as_str();
        match who {
            Visibility::All => {}
            Visibility::Public => conditions.push(format!("kind IN ({public})")),
            Visibility::Org(org) => {
                let n = bind(Bound::Text(org.clone()));
                conditions.push(format!(
                    "(kind IN ({public}) OR actor_org = ${n} OR {})",
                    party_of(n)
                ));
            }
        }
        if let Some(kind) = &filter.kind {
            let n = bind(Bound::Text(kind.as_str().to_string()));
            conditions.push(format!("kind = ${n}"));
        }
        if let Some(org) = &filter.org {
            let n = bind(Bound::Text(org.clone()));
            conditions.push(format!("(actor_org = ${n} OR {})", party_of(n)));
        }
        if let Some(since) = filter.since_ms {
            let n = bind(Bound::Int(since));
            conditions.push(format!("timestamp_ms >= ${n}"));
        }
        if let Some(until) = filter.until_ms {
            let n = bind(Bound::Int(until));
            conditions.push(format!("timestamp_ms < ${n}"));
        }
        let limit_at = bind(Bound::Int(i64::from(limit)));
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE {} ORDER BY seq LIMIT ${limit_at}",
            conditions.join(" AND ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for value in bound {
            query = match value {
                Bound::Int(v) => query.bind(v),
                Bound::Text(v) => query.bind(v),
            };
        }
        let rows = query.fetch_all(self.db.pool()).await?;
        rows.iter().map(entry_from_row).collect()
    }

    /// A page of entries of one kind from seq `from` on, at most `limit`, in seq order
    /// (every entry: callers decide visibility). Reports use it to sum spends or list
    /// suspensions without walking the whole ledger.
    pub async fn entries_of_kind(
        &self,
        kind: &EntryKind,
        from: u64,
        limit: u32,
    ) -> Result<Vec<Entry>, LedgerError> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE kind = $1 AND seq >= $2 \
             ORDER BY seq LIMIT $3"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(kind.as_str().to_string())
            .bind(to_i64(from, "from")?)
            .bind(i64::from(limit))
            .fetch_all(self.db.pool())
            .await?;
        rows.iter().map(entry_from_row).collect()
    }

    async fn fetch_nodes(
        &self,
        ids: &[NodeId],
    ) -> Result<HashMap<NodeId, merkle::Hash>, LedgerError> {
        let mut out = HashMap::with_capacity(ids.len());
        let (leaves, interior): (Vec<NodeId>, Vec<NodeId>) =
            ids.iter().partition(|id| id.level == 0);
        // Leaves are not in ledger_nodes (see the module docs): hash the entry hashes.
        for chunk in leaves.chunks(200) {
            let mut sql = String::from("SELECT seq, entry_hash FROM ledger_entries WHERE ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(" OR ");
                }
                sql.push_str(&format!("seq = ${}", i + 1));
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(to_i64(id.index, "node index")?);
            }
            for row in q.fetch_all(self.db.pool()).await? {
                let id = NodeId::new(0, to_u64(row.try_get("seq")?, "seq")?);
                let entry_hash = hash_col(&row, "entry_hash")?;
                out.insert(id, Blake3Hasher::leaf(&entry_hash.0));
            }
        }
        for chunk in interior.chunks(200) {
            let mut sql = String::from("SELECT pos, hash FROM ledger_nodes WHERE pos IN (");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&format!("${}", i + 1));
            }
            sql.push(')');
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(node_pos(*id)?);
            }
            for row in q.fetch_all(self.db.pool()).await? {
                let id = node_at(row.try_get("pos")?)?;
                out.insert(id, hash_col(&row, "hash")?.0);
            }
        }
        Ok(out)
    }

    async fn check_size(&self, size: u64) -> Result<(), LedgerError> {
        let current = self.size().await?;
        if size > current {
            return Err(LedgerError::OutOfRange(format!(
                "tree size {size} is beyond the ledger size {current}"
            )));
        }
        Ok(())
    }

    /// RFC 9162 inclusion proof of entry `seq` in the tree of `size` entries.
    pub async fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash32>, LedgerError> {
        if seq >= size {
            return Err(LedgerError::OutOfRange(format!(
                "seq {seq} is not below size {size}"
            )));
        }
        self.check_size(size).await?;
        let ranges = merkle::inclusion_path(seq, size)?;
        let nodes = self.fetch_nodes(&merkle::nodes_for(&ranges)).await?;
        let proof = merkle::build_proof::<Blake3Hasher>(&ranges, &nodes)?;
        Ok(proof.into_iter().map(Hash32).collect())
    }

    /// RFC 9162 consistency proof between sizes `from` and `to`.
    pub async fn consistency_proof(&self, from: u64, to: u64) -> Result<Vec<Hash32>, LedgerError> {
        if from > to {
            return Err(LedgerError::OutOfRange(format!(
                "size {from} is above {to}"
            )));
        }
        self.check_size(to).await?;
        let ranges = merkle::consistency_path(from, to)?;
        let nodes = self.fetch_nodes(&merkle::nodes_for(&ranges)).await?;
        let proof = merkle::build_proof::<Blake3Hasher>(&ranges, &nodes)?;
        Ok(proof.into_iter().map(Hash32).collect())
    }

    /// Merkle root at `size`, from stored subtrees.
    pub async fn root_at(&self, size: u64) -> Result<Hash32, LedgerError> {
        self.check_size(size).await?;
        if size == 0 {
            return Ok(Hash32(Blake3Hasher::empty()));
        }
        let nodes = self
            .fetch_nodes(&merkle::complete_subtrees(0..size))
            .await?;
        Ok(Hash32(merkle::range_hash::<Blake3Hasher>(0..size, &nodes)?))
    }

    /// An offline receipt for `seq` under the newest checkpoint (signing one if none covers it).
    pub async fn receipt(&self, seq: u64) -> Result<Receipt, LedgerError> {
        let entry = self
            .entry(seq)
            .await?
            .ok_or_else(|| LedgerError::OutOfRange(format!("no entry {seq}")))?;
        let cp = match self.latest_checkpoint().await? {
            Some(cp) if cp.size > seq => cp,
            _ => self.checkpoint().await?,
        };
        let inclusion_proof = self.inclusion_proof(seq, cp.size).await?;
        Ok(Receipt {
            format: RECEIPT_FORMAT.to_string(),
            entry,
            tree_size: cp.size,
            inclusion_proof,
            checkpoint: cp.note,
        })
    }

    /// Walks the whole database through the independent verifier, a page of entries at a
    /// time, calling `progress(entries_done, total)` after each page.
    ///
    /// On a SQLite file the entries are read by `sqlite_scan` (a read-only connection
    /// of its own) on a separate thread, overlapping with the hashing; elsewhere, or if
    /// the file cannot be opened that way, they are read in pages through sqlx. The
    /// verifier sees the same entries in the same order either way.
    pub async fn verify_with(
        &self,
        key: &NoteVerifier,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Result<VerifyReport, VerifyFailure>, LedgerError> {
        let records: Vec<CheckpointRecord> = self
            .checkpoints()
            .await?
            .into_iter()
            .map(|c| CheckpointRecord {
                size: c.size,
                note: c.note,
            })
            .collect();
        let total = self.size().await?;
        let mut verifier = match Verifier::new(key.clone(), records) {
            Ok(v) => v,
            Err(f) => return Ok(Err(f)),
        };
        // This function is generic (over `progress`), so it is compiled in the caller's
        // crate and profile: it only moves pages; the per-entry work is in
        // `Verifier::push_all` and the reader, both compiled here.
        let fast = match self.db.sqlite_file().await? {
            Some(path) => PageStream::open(path).await,
            None => None,
        };
        if let Some(mut pages) = fast {
            while let Some(page) = pages.next().await? {
                if let Err(f) = verifier.push_all(&page.views()) {
                    return Ok(Err(f));
                }
                progress(verifier.entries(), total);
                pages.recycle(page);
            }
        } else {
            let mut from = 0u64;
            const PAGE: u32 = 10_000;
            loop {
                let page = self.entries(from, PAGE, &Visibility::All).await?;
                let Some(last) = page.last() else { break };
                from = last.seq + 1;
                let views: Vec<EntryView<'_>> = page.iter().map(Entry::view).collect();
                if let Err(f) = verifier.push_all(&views) {
                    return Ok(Err(f));
                }
                progress(verifier.entries(), total);
            }
        }
        Ok(verifier.finish())
    }
}

/// `INSERT INTO table (cols) VALUES (…), (…)` for `rows` rows of `width` columns.
///
/// PostgreSQL needs numbered placeholders (`$1, $2, …`). SQLite gets anonymous `?`
/// ones, bound in order: sqlx-sqlite looks up the name of every numbered parameter with
/// `sqlite3_bind_parameter_name`, a linear scan, which makes binding a statement with
/// thousands of `$N` quadratic (it was over half of a batch append's time).
fn multi_insert(backend: Backend, table: &str, columns: &str, width: usize, rows: usize) -> String {
    use std::fmt::Write as _;
    let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
    let mut n = 1;
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                // Writing to a String cannot fail.
                Backend::Postgres => {
                    let _ = write!(sql, "${n}");
                }
            }
            n += 1;
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::{INSERT_CHUNK, insert_chunks, multi_insert, node_at, node_pos};
    use crate::db::Backend;
    use crate::merkle::{self, NodeId};

    #[test]
    fn node_positions_follow_completion_order_and_invert() {
        // Replay appends: the nodes each one completes get ever larger positions.
        let mut last = -1i64;
        for n in 0u64..5000 {
            for id in merkle::completed_by_append(n)
                .into_iter()
                .map(|s| NodeId::new(s.level + 1, s.index >> 1))
            {
                let pos = node_pos(id).unwrap();
                assert!(pos > last, "{id} at {pos} after {last}");
                assert_eq!(node_at(pos).unwrap(), id);
                last = pos;
            }
        }
        assert_eq!(node_pos(NodeId::new(1, 0)).unwrap(), 1 << 6 | 1);
        assert_eq!(node_pos(NodeId::new(3, 2)).unwrap(), 23 << 6 | 3);
        // Negative, and subtrees whose last leaf is not on a multiple of their width.
        for bad in [-1, 1, 2 << 6 | 2, 63] {
            assert!(node_at(bad).is_err(), "{bad}");
        }
        assert!(node_pos(NodeId::new(0, (1 << 57) + 5)).is_err());
    }

    #[test]
    fn insert_chunks_cover_the_rows_from_a_fixed_set_of_sizes() {
        for rows in [0, 1, 2, 7, 255, 256, 257, 1000, 2047, 5000] {
            let sizes: Vec<usize> = insert_chunks(rows).collect();
            assert_eq!(sizes.iter().sum::<usize>(), rows, "{rows}");
            assert!(
                sizes
                    .iter()
                    .all(|s| s.is_power_of_two() && *s <= INSERT_CHUNK),
                "{rows}: {sizes:?}"
            );
        }
        assert_eq!(
            insert_chunks(1000).collect::<Vec<_>>(),
            [256, 256, 256, 128, 64, 32, 8]
        );
    }

    #[test]
    fn multi_insert_numbers_placeholders_in_order() {
        assert_eq!(
            multi_insert(Backend::Postgres, "t", "a, b", 2, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            multi_insert(Backend::Sqlite, "t", "a, b", 2, 2),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?)"
        );
    }
}
