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
//! Each append writes the entry, every Merkle subtree it completes (amortised two
//! rows), the organisations it concerns, and the new head; every `checkpoint_every`
//! entries it also signs a checkpoint in the same transaction.
//!
//! # Reading proofs
//!
//! Because every complete subtree is stored, an inclusion or consistency proof is one
//! query for O(log n) nodes (see [`crate::merkle::nodes_for`]); the tree is never rebuilt.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::db::{Db, DbError, now_ms};
use crate::entry::{Actor, Entry, EntryError, EntryKind, Hash32};
use crate::kinds::LedgerPayload;
use crate::merkle::{self, Blake3Hasher, MerkleError, MerkleHasher, NodeId};
use crate::note::{Checkpoint, NoteError, NoteSigner, NoteVerifier};
use crate::receipt::{RECEIPT_FORMAT, Receipt};
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

/// Who is reading: supervisors see all; others see public kinds and their own entries.
#[derive(Clone, Debug)]
pub enum Visibility {
    /// Every entry.
    All,
    /// Public kinds plus entries the organisation appended or is a party to.
    Org(String),
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
         (kind IN ({public}) OR actor_org = $2 OR seq IN \
         (SELECT seq FROM ledger_parties WHERE org = $2)) ORDER BY seq LIMIT $3"
    )
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
struct Head {
    size: u64,
    head_hash: Hash32,
    frontier: HashMap<NodeId, merkle::Hash>,
}

impl Head {
    fn decode(size: i64, head_hash: &[u8], frontier: &[u8]) -> Result<Head, LedgerError> {
        let size = to_u64(size, "size")?;
        let ids = merkle::complete_subtrees(0..size);
        if frontier.len() != ids.len() * 32 {
            return Err(LedgerError::Corrupt("frontier length".into()));
        }
        let mut map = HashMap::with_capacity(ids.len());
        for (id, chunk) in ids.into_iter().zip(frontier.chunks_exact(32)) {
            let mut h = [0u8; 32];
            h.copy_from_slice(chunk);
            map.insert(id, h);
        }
        Ok(Head {
            size,
            head_hash: Hash32::from_slice(head_hash)
                .map_err(|_| LedgerError::Corrupt("head hash".into()))?,
            frontier: map,
        })
    }

    fn frontier_bytes(&self) -> Result<Vec<u8>, LedgerError> {
        let ids = merkle::complete_subtrees(0..self.size);
        let mut out = Vec::with_capacity(ids.len() * 32);
        for id in ids {
            let h = self.frontier.get(&id).ok_or(MerkleError::MissingNode(id))?;
            out.extend_from_slice(h);
        }
        Ok(out)
    }

    fn root(&self) -> Result<merkle::Hash, LedgerError> {
        if self.size == 0 {
            return Ok(Blake3Hasher::empty());
        }
        Ok(merkle::range_hash::<Blake3Hasher>(
            0..self.size,
            &self.frontier,
        )?)
    }

    /// Adds one leaf; returns the nodes to store.
    fn push(&mut self, leaf: merkle::Hash) -> Result<Vec<(NodeId, merkle::Hash)>, LedgerError> {
        let index = self.size;
        let new_nodes = merkle::nodes_after_append::<Blake3Hasher>(index, leaf, &self.frontier)?;
        self.size += 1;
        // The new frontier is a subset of old frontier ∪ new nodes.
        let keep = merkle::complete_subtrees(0..self.size);
        let mut next = HashMap::with_capacity(keep.len());
        for id in keep {
            let h = self
                .frontier
                .get(&id)
                .copied()
                .or_else(|| new_nodes.iter().find(|(n, _)| *n == id).map(|(_, h)| *h))
                .ok_or(MerkleError::MissingNode(id))?;
            next.insert(id, h);
        }
        self.frontier = next;
        Ok(new_nodes)
    }
}

/// Most rows per multi-row INSERT (keeps bind parameters under both backends' limits).
const INSERT_CHUNK: usize = 500;

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

    /// Appends a typed payload in a transaction of its own, and commits.
    pub async fn append_now<P: LedgerPayload>(
        &self,
        actor: &Actor,
        payload: &P,
    ) -> Result<Appended, LedgerError> {
        let mut tx = self.db.begin_write().await?;
        let out = self.append(&mut tx, actor, payload).await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Appends many entries inside the caller's transaction, in order.
    pub async fn append_batch(
        &self,
        conn: &mut AnyConnection,
        items: Vec<NewEntry>,
    ) -> Result<Vec<Appended>, LedgerError> {
        let mut head = Self::lock_head(conn).await?;
        let ts = now_ms();
        let mut entries = Vec::with_capacity(items.len());
        let mut nodes = Vec::with_capacity(items.len() * 2);
        let mut parties = Vec::new();
        let mut checkpoints = Vec::new();
        for item in items {
            let entry = Entry::build(
                head.size,
                ts,
                item.kind,
                item.actor,
                &item.payload,
                head.head_hash,
            )?;
            nodes.extend(head.push(Blake3Hasher::leaf(entry.leaf_data()))?);
            head.head_hash = entry.entry_hash;
            for org in item.parties {
                if org != entry.actor.org && !parties.contains(&(org.clone(), entry.seq)) {
                    parties.push((org, entry.seq));
                }
            }
            if self.config.checkpoint_every > 0 && head.size % self.config.checkpoint_every == 0 {
                checkpoints.push(self.sign(head.size, head.root()?, ts)?);
            }
            entries.push(entry);
        }
        Self::insert_entries(conn, &entries).await?;
        Self::insert_nodes(conn, &nodes).await?;
        Self::insert_parties(conn, &parties).await?;
        for cp in &checkpoints {
            Self::insert_checkpoint(conn, cp).await?;
        }
        sqlx::query("UPDATE ledger_head SET size = $1, head_hash = $2, frontier = $3 WHERE id = 1")
            .bind(to_i64(head.size, "size")?)
            .bind(head.head_hash.0.to_vec())
            .bind(head.frontier_bytes()?)
            .execute(&mut *conn)
            .await?;
        Ok(entries
            .into_iter()
            .map(|e| Appended {
                seq: e.seq,
                entry_hash: e.entry_hash,
                timestamp_ms: e.timestamp_ms,
            })
            .collect())
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

    async fn insert_entries(
        conn: &mut AnyConnection,
        entries: &[Entry],
    ) -> Result<(), LedgerError> {
        for chunk in entries.chunks(INSERT_CHUNK) {
            let sql = multi_insert("ledger_entries", ENTRY_COLUMNS, 9, chunk.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for e in chunk {
                q = q
                    .bind(to_i64(e.seq, "seq")?)
                    .bind(e.timestamp_ms)
                    .bind(e.kind.as_str().to_string())
                    .bind(e.actor.org.clone())
                    .bind(e.actor.key_id.clone())
                    .bind(e.payload.clone())
                    .bind(e.payload_hash.0.to_vec())
                    .bind(e.prev_hash.0.to_vec())
                    .bind(e.entry_hash.0.to_vec());
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn insert_nodes(
        conn: &mut AnyConnection,
        nodes: &[(NodeId, merkle::Hash)],
    ) -> Result<(), LedgerError> {
        for chunk in nodes.chunks(INSERT_CHUNK) {
            let sql = multi_insert("ledger_nodes", "level, idx, hash", 3, chunk.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (id, h) in chunk {
                q = q
                    .bind(i64::from(id.level))
                    .bind(to_i64(id.index, "node index")?)
                    .bind(h.to_vec());
            }
            q.execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn insert_parties(
        conn: &mut AnyConnection,
        parties: &[(String, u64)],
    ) -> Result<(), LedgerError> {
        for chunk in parties.chunks(INSERT_CHUNK) {
            let sql = multi_insert("ledger_parties", "org, seq", 2, chunk.len());
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (org, seq) in chunk {
                q = q.bind(org.clone()).bind(to_i64(*seq, "seq")?);
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
            && latest.size == head.size
        {
            tx.rollback().await?;
            return Ok(latest);
        }
        let cp = self.sign(head.size, head.root()?, now_ms())?;
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
        let rows = match who {
            Visibility::All => {
                let sql = format!(
                    "SELECT {ENTRY_COLUMNS} FROM ledger_entries WHERE seq >= $1 ORDER BY seq LIMIT $2"
                );
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(to_i64(from, "from")?)
                    .bind(i64::from(limit))
                    .fetch_all(self.db.pool())
                    .await?
            }
            Visibility::Org(org) => {
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

    async fn fetch_nodes(
        &self,
        ids: &[NodeId],
    ) -> Result<HashMap<NodeId, merkle::Hash>, LedgerError> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(200) {
            let mut sql = String::from("SELECT level, idx, hash FROM ledger_nodes WHERE ");
            for i in 0..chunk.len() {
                if i > 0 {
                    sql.push_str(" OR ");
                }
                sql.push_str(&format!(
                    "(level = ${} AND idx = ${})",
                    2 * i + 1,
                    2 * i + 2
                ));
            }
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
            for id in chunk {
                q = q
                    .bind(i64::from(id.level))
                    .bind(to_i64(id.index, "node index")?);
            }
            for row in q.fetch_all(self.db.pool()).await? {
                let level: i64 = row.try_get("level")?;
                let idx: i64 = row.try_get("idx")?;
                let id = NodeId {
                    level: u8::try_from(level)
                        .map_err(|_| LedgerError::Corrupt("node level".into()))?,
                    index: to_u64(idx, "node index")?,
                };
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

    /// Walks the whole database through the independent verifier, `page` entries at a
    /// time, calling `progress(entries_done, total)` after each page.
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
        let mut from = 0u64;
        const PAGE: u32 = 10_000;
        loop {
            let page = self.entries(from, PAGE, &Visibility::All).await?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            for e in &page {
                if let Err(f) = verifier.push(e) {
                    return Ok(Err(f));
                }
            }
            progress(verifier.entries(), total);
        }
        Ok(verifier.finish())
    }
}

/// `INSERT INTO table (cols) VALUES ($1, …), (…)` for `rows` rows of `width` columns.
fn multi_insert(table: &str, columns: &str, width: usize, rows: usize) -> String {
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
            sql.push('$');
            sql.push_str(&n.to_string());
            n += 1;
        }
        sql.push(')');
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::multi_insert;

    #[test]
    fn multi_insert_numbers_placeholders_in_order() {
        assert_eq!(
            multi_insert("t", "a, b", 2, 2),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
    }
}
