//! Record sets of released values: the memory behind the differencing check across
//! outputs (issue #18; SD22 Art.13, only de-identified aggregates leave).
//!
//! The check itself is `pdx_algorithms::disclosure` (module `record_sets`): a value is
//! withheld when the records it reads differ by 1 to `threshold − 1` from the records
//! of a value the same organisation already holds, or has in review, on the same
//! dataset version. This module owns the tables `record_sets` (each distinct set once
//! per organisation and version: hash, size, block summary, bitmap) and
//! `output_record_sets` (which output holds which set), and hands earlier sets to the
//! check through [`PriorSets`].
//!
//! * **What counts as earlier:** every output of the organisation on the version that
//!   a reviewer has not rejected (quarantined or released), whatever grant or model
//!   made it. Outputs in review count because they may be released later.
//! * **Serialisation:** runs of one organisation on one version check and store under
//!   a lock ([`Locks`]), so two concurrent runs cannot both pass against the sets
//!   before either stored its own. The lock is a process lock and, on PostgreSQL, also
//!   a session advisory lock per `organisation / version` on a connection of its own,
//!   so servers sharing the database (`cluster.rs`) serialise these runs too. The
//!   connection is closed, not returned to the pool, when the lock is released, so a
//!   lock can never stay behind on a pooled connection (nor outlive a killed server:
//!   PostgreSQL ends the session). SQLite serves one server only.
//! * **Cost:** only summaries (about 4 bytes per 65,536 rows of the set's span) are
//!   read for every earlier set; bitmaps are read for the few pairs the summaries
//!   cannot settle.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use pdx_algorithms::disclosure::{
    DisclosureError, Nesting, PriorRecordSets, PriorSummary, RecordSet, ReleasedSets, SetSummary,
    TrackedSet, hash_bytes,
};
use pdx_ids::{OrgId, OutputId, VersionRef};
use sqlx::Row;

use crate::store;
use crate::{Result, SandboxError};

/// Per-process locks, one per `organisation / dataset version`.
#[derive(Default)]
pub(crate) struct Locks {
    /// The lock of each key ever used (a few bytes each).
    map: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Held locks of one run (see [`Locks::lock`]); dropping it releases them.
#[derive(Default)]
pub(crate) struct RecordLocks {
    /// This process's locks.
    _process: Vec<tokio::sync::OwnedMutexGuard<()>>,
    /// On PostgreSQL, the detached connection holding the advisory locks: closed on
    /// drop, which ends the session and with it the locks.
    _database: Option<sqlx::AnyConnection>,
}

/// The advisory-lock key of `key`: the first 8 bytes of its BLAKE3 hash, in a space of
/// its own (domain-separated) so no other use of advisory locks collides with it.
fn advisory_key(key: &str) -> i64 {
    let hash = blake3::derive_key("pdx 2026-12 record-set lock v1", key.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    i64::from_be_bytes(first)
}

impl Locks {
    /// Takes the locks of `org` on every version in `versions` (sorted, so two runs
    /// over the same versions cannot deadlock): this process's, then, on PostgreSQL,
    /// the database's advisory locks, which other servers on the database take too,
    /// waiting at most `wait` for them (then a conflict).
    pub(crate) async fn lock(
        &self,
        db: &pdx_ledger::db::Db,
        org: &OrgId,
        versions: &[VersionRef],
        wait: std::time::Duration,
    ) -> Result<RecordLocks> {
        let mut keys: Vec<String> = versions.iter().map(|v| format!("{org}/{v}")).collect();
        keys.sort();
        keys.dedup();
        let mut process = Vec::with_capacity(keys.len());
        for key in &keys {
            let lock = {
                let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
                Arc::clone(map.entry(key.clone()).or_default())
            };
            process.push(lock.lock_owned().await);
        }
        let database = match db.backend() {
            pdx_ledger::db::Backend::Postgres if !keys.is_empty() => {
                let mut conn = db.pool().acquire().await?.detach();
                // The wait is bounded, and a holder whose machine vanished without
                // closing its connection is found dead within a minute (keepalives)
                // instead of the operating system's two hours.
                let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX).max(1);
                for setting in [
                    format!("SET lock_timeout = {wait_ms}"),
                    "SET tcp_keepalives_idle = 30".to_owned(),
                    "SET tcp_keepalives_interval = 10".to_owned(),
                    "SET tcp_keepalives_count = 3".to_owned(),
                ] {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(setting))
                        .execute(&mut conn)
                        .await?;
                }
                for key in &keys {
                    sqlx::query("SELECT pg_advisory_lock($1)")
                        .bind(advisory_key(key))
                        .execute(&mut conn)
                        .await
                        .map_err(|_| {
                            SandboxError::Conflict(
                                "another run of this organisation on the same dataset version \
                                 is being checked on another server; run it again later"
                                    .into(),
                            )
                        })?;
                }
                Some(conn)
            }
            _ => None,
        };
        Ok(RecordLocks {
            _process: process,
            _database: database,
        })
    }
}

/// Most `organisation / version` unions kept ([`Unions`]); when full, the map starts
/// afresh (a union is rebuilt from the stored sets on its next use).
const MAX_UNIONS: usize = 64;

/// Per process, per `organisation / dataset version`: a set holding every record set
/// stored so far, with the hashes it took in. The differencing check reads it to rule
/// out covers by earlier sets without loading them (`PriorRecordSets::union`).
///
/// It only grows: a set whose outputs were all rejected since stays in it, which keeps
/// it a superset of the sets that count, and a superset is all the bound needs.
/// Servers sharing one database each keep their own and take in what others stored
/// by hash on their next use.
#[derive(Default)]
pub(crate) struct Unions {
    /// `org/version` → (hashes taken in, their union).
    map: Mutex<HashMap<String, (HashSet<String>, RecordSet)>>,
}

/// The earlier sets of one organisation, for the tables of one run.
pub(crate) struct PriorSets {
    /// The database.
    db: pdx_ledger::db::Db,
    /// The organisation.
    org: OrgId,
    /// SQL table name → `dataset_id@version`.
    versions: Vec<(String, VersionRef)>,
    /// `(hash, selection)` behind the last summaries handed out, per table (for `load`
    /// and `nestings`).
    hashes: Mutex<HashMap<String, Vec<(String, String)>>>,
    /// The process's unions of stored sets.
    unions: Arc<Unions>,
}

impl PriorSets {
    /// Earlier sets of `org` on the versions behind `tables` (`(table, version)`).
    pub(crate) fn new(
        db: pdx_ledger::db::Db,
        unions: Arc<Unions>,
        org: &OrgId,
        tables: Vec<(String, VersionRef)>,
    ) -> Self {
        Self {
            db,
            org: org.clone(),
            versions: tables,
            hashes: Mutex::new(HashMap::new()),
            unions,
        }
    }

    /// The stored bitmaps of `hashes` on `version`, in that order.
    async fn bitmaps(
        &self,
        version: &VersionRef,
        hashes: impl IntoIterator<Item = String>,
    ) -> Result<Vec<RecordSet>, DisclosureError> {
        let mut sets = Vec::new();
        for hash in hashes {
            let bytes: Vec<u8> = sqlx::query(
                "SELECT bitmap FROM record_sets \
                 WHERE org_id = $1 AND dataset_version = $2 AND set_hash = $3 LIMIT 1",
            )
            .bind(self.org.clone())
            .bind(version.to_string())
            .bind(hash)
            .fetch_one(self.db.pool())
            .await
            .map_err(read_failed)?
            .try_get("bitmap")
            .map_err(read_failed)?;
            sets.push(RecordSet::from_bytes(&bytes)?);
        }
        Ok(sets)
    }

    /// The version behind `table`.
    fn version_of(&self, table: &str) -> Option<&VersionRef> {
        self.versions
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, v)| v)
    }
}

/// Database failures are logged here and reach the check as an internal error.
fn read_failed(e: sqlx::Error) -> DisclosureError {
    tracing::error!(error = %e, "reading earlier record sets");
    DisclosureError::Internal("the earlier record sets could not be read")
}

impl PriorRecordSets for PriorSets {
    async fn summaries(&self, table: &str) -> Result<Vec<PriorSummary>, DisclosureError> {
        let Some(version) = self.version_of(table) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT s.set_hash, s.selection, s.records, s.summary FROM record_sets s \
             WHERE s.org_id = $1 AND s.dataset_version = $2 AND EXISTS ( \
               SELECT 1 FROM output_record_sets o JOIN outputs u ON u.id = o.output_id \
               WHERE o.org_id = s.org_id AND o.dataset_version = s.dataset_version \
                 AND o.set_hash = s.set_hash AND o.selection = s.selection \
                 AND u.status <> 'rejected') \
             ORDER BY s.set_hash, s.selection",
        )
        .bind(self.org.clone())
        .bind(version.to_string())
        .fetch_all(self.db.pool())
        .await
        .map_err(read_failed)?;
        let mut hashes = Vec::with_capacity(rows.len());
        let mut summaries = Vec::with_capacity(rows.len());
        for row in rows {
            let hash: String = row.try_get("set_hash").map_err(read_failed)?;
            let selection: String = row.try_get("selection").map_err(read_failed)?;
            let records: i64 = row.try_get("records").map_err(read_failed)?;
            let summary: Vec<u8> = row.try_get("summary").map_err(read_failed)?;
            summaries.push(PriorSummary {
                summary: SetSummary::from_bytes(u64::try_from(records).unwrap_or(0), &summary)?,
                selection: selection.clone(),
                hash: hash.clone(),
            });
            hashes.push((hash, selection));
        }
        self.hashes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(table.to_owned(), hashes);
        Ok(summaries)
    }

    async fn nestings(&self, table: &str) -> Result<Vec<(usize, usize)>, DisclosureError> {
        let Some(version) = self.version_of(table) else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT outer_hash, outer_selection, inner_hash, inner_selection \
             FROM record_set_nestings WHERE org_id = $1 AND dataset_version = $2",
        )
        .bind(self.org.clone())
        .bind(version.to_string())
        .fetch_all(self.db.pool())
        .await
        .map_err(read_failed)?;
        let positions: HashMap<(String, String), usize> = {
            let hashes = self.hashes.lock().unwrap_or_else(|p| p.into_inner());
            hashes
                .get(table)
                .map(|known| {
                    known
                        .iter()
                        .enumerate()
                        .map(|(i, id)| (id.clone(), i))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut pairs = Vec::with_capacity(rows.len());
        for row in rows {
            let id = |hash: &str, selection: &str| -> Result<(String, String), DisclosureError> {
                Ok((
                    row.try_get::<String, _>(hash).map_err(read_failed)?,
                    row.try_get::<String, _>(selection).map_err(read_failed)?,
                ))
            };
            let outer = id("outer_hash", "outer_selection")?;
            let inner = id("inner_hash", "inner_selection")?;
            // Both must still count (not only in rejected outputs).
            if let (Some(o), Some(i)) = (positions.get(&outer), positions.get(&inner)) {
                pairs.push((*o, *i));
            }
        }
        Ok(pairs)
    }

    async fn load(
        &self,
        table: &str,
        indices: &[usize],
    ) -> Result<Vec<RecordSet>, DisclosureError> {
        let Some(version) = self.version_of(table) else {
            return Err(DisclosureError::Internal("no version for an earlier set"));
        };
        let wanted: Vec<String> = {
            let hashes = self.hashes.lock().unwrap_or_else(|p| p.into_inner());
            let Some(known) = hashes.get(table) else {
                return Err(DisclosureError::Internal(
                    "earlier sets loaded before summaries",
                ));
            };
            indices
                .iter()
                .map(|i| {
                    known
                        .get(*i)
                        .map(|(hash, _)| hash.clone())
                        .ok_or(DisclosureError::Internal("no such earlier record set"))
                })
                .collect::<Result<_, _>>()?
        };
        self.bitmaps(version, wanted).await
    }

    async fn union(&self, table: &str) -> Result<Option<RecordSet>, DisclosureError> {
        let Some(version) = self.version_of(table) else {
            return Ok(None);
        };
        let counted: Vec<String> = {
            let hashes = self.hashes.lock().unwrap_or_else(|p| p.into_inner());
            match hashes.get(table) {
                Some(known) => known.iter().map(|(hash, _)| hash.clone()).collect(),
                // Asked before the summaries: nothing to bound with.
                None => return Ok(None),
            }
        };
        let key = format!("{}/{version}", self.org);
        // What the kept union lacks, read under the lock without copying its hashes
        // (the usual answer is nothing: the union is handed out as it is).
        let missing = {
            let map = self.unions.map.lock().unwrap_or_else(|p| p.into_inner());
            let kept = map.get(&key);
            let missing: HashSet<String> = counted
                .into_iter()
                .filter(|hash| kept.is_none_or(|(taken, _)| !taken.contains(hash)))
                .collect();
            if missing.is_empty() {
                return Ok(Some(
                    kept.map(|(_, union)| union.clone()).unwrap_or_default(),
                ));
            }
            missing
        };
        let loaded = self.bitmaps(version, missing.iter().cloned()).await?;
        let mut map = self.unions.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_UNIONS && !map.contains_key(&key) {
            map.clear();
        }
        // Into the union kept now (the same one unless the map was cleared meanwhile),
        // so that every hash marked taken is in the set it marks.
        let (taken, kept) = map.entry(key).or_default();
        *kept = RecordSet::union_of(std::iter::once(&*kept).chain(loaded.iter()));
        taken.extend(missing);
        Ok(Some(kept.clone()))
    }
}

/// Records that output `output_id` of `org` holds `released` on `dataset_version`
/// (sets and nestings), in the caller's transaction (the one inserting the output).
pub(crate) async fn save(
    tx: &mut sqlx::AnyConnection,
    output_id: &OutputId,
    org: &OrgId,
    dataset_version: &VersionRef,
    released: &ReleasedSets,
) -> Result<()> {
    for Nesting { outer, inner } in &released.nestings {
        let nesting = store::record_sets::NewNesting {
            org_id: org,
            dataset_version,
            outer_hash: &outer.hash,
            outer_selection: &outer.selection,
            inner_hash: &inner.hash,
            inner_selection: &inner.selection,
            output_id,
        };
        store::record_sets::insert_nesting(&mut *tx, &nesting).await?;
    }
    for TrackedSet { set, selection } in &released.sets {
        let bytes = set.to_bytes();
        let hash = hash_bytes(&bytes);
        let summary = set.summary().to_bytes();
        let record_set = store::record_sets::NewRecordSet {
            org_id: org,
            dataset_version,
            set_hash: &hash,
            selection,
            records: i64::try_from(set.len()).unwrap_or(i64::MAX),
            summary: &summary,
            bitmap: &bytes,
        };
        store::record_sets::insert_record_set(&mut *tx, &record_set).await?;
        let held = store::record_sets::NewOutputRecordSet {
            output_id,
            org_id: org,
            dataset_version,
            set_hash: &hash,
            selection,
        };
        store::record_sets::insert_output_record_set(&mut *tx, &held).await?;
    }
    Ok(())
}
