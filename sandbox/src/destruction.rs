//! Destruction (销毁) of a dataset version, or of a whole dataset, by its provider (GD21
//! Art.40: data that should no longer be kept is destroyed; XT Art.34(4): destruction is
//! a sensitive operation and is recorded).
//!
//! **What is deleted.** Every file of the version, from every zone that holds one
//! (`zones.rs`): the certified de-identified Parquet file (`deid/`), the raw upload if
//! retention kept it (`raw/<dataset>-v<n>.raw`), and the FHE key index built at ingest
//! (`fhe/index/<dataset>/<hash>.parquet`, which maps pseudonyms to hashes of the clear
//! identifiers). Dummy data is generated from the schema on request and has no files;
//! model outputs are results, not the data, and stay (products built on them keep their
//! manifests and files, and can still be bought and downloaded). Storage is
//! content-addressed, so a file whose content a live version also holds stays, and the
//! ledger entry says so (`deleted: false`). The record sets of released cells (row
//! ordinals, no values) stay in the database, where no new output can be compared
//! against them.
//!
//! **What is kept: a tombstone.** The catalog entry and the version rows stay, with their
//! hashes and certificates, and each answers with its `destroyed` tombstone (when, why,
//! the legal basis, who, and the seq of the `Destruction` ledger entry); certificates
//! stay readable with their receipts. A `Destruction` entry (a public kind) names the
//! dataset, the versions, their certificate numbers, every file by zone and BLAKE3 hash,
//! the reason and the legal basis.
//!
//! **What is refused afterwards, always 409.** A destroyed version is read by nothing:
//! `refuse_destroyed` is checked where a version's file is opened
//! ([`crate::versions::Versions`] for runs and downloads, [`crate::fhe`] for lookups) and
//! before an output that read it is released ([`crate::review`]): destruction recalls
//! nothing that left, and lets nothing more leave. A destroyed dataset is refused on every
//! developer path by [`crate::catalog::Dataset::reachable_by_developers`] (grants, runs,
//! dry runs, downloads, FHE), its dummy rows to everyone ([`crate::access`]), and its
//! provider's edits, submissions and uploads ([`crate::lifecycle`], [`crate::versions`],
//! which also checks inside the certifying transaction so that an ingest racing the
//! destruction does not certify a version of a tombstone). Its pending and approved
//! grants are suspended with a reason, each a `GrantDecision` entry, in the destruction's
//! transaction. Destroying twice is a 409.
//!
//! **No half-state.** A destruction is refused (409) while a model run or an FHE query
//! reading the version is queued or running, and for a whole dataset while a version is
//! being ingested or the entry is under the data authority's review. The checks, the
//! grant suspensions, the ledger entry and the tombstones commit in one write
//! transaction, which first touches the dataset's row (serialising with certification on
//! PostgreSQL; SQLite writers are serial). Only then are the files deleted: a crash or an
//! I/O error in between leaves a tombstone whose files are still on disk, and the next
//! attempt (a 409) deletes what is left, from the file list kept with the tombstone. A run
//! admitted on PostgreSQL in the instant between the check and the commit fails when it
//! opens the deleted file: its job fails, and nothing is released.
//!
//! Every error message here is safe to show: none echoes a value the caller sent.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use pdx_ids::{DatasetId, GrantId, OrgId};
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::{DestroyedFile as FileEntry, Destruction as DestructionEntry};
use pdx_ledger::{Actor, Hash32};
use pdx_seal::{AtRest, SealError};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::catalog::CatalogStatus;
use crate::lifecycle::MAX_REASON_CHARS;
use crate::runs::cited_versions;
use crate::store::{self, is_unique_violation, to_i64};
use crate::versions::{INGEST_JOB_KIND, Version};
use crate::{Result, SandboxError, actor_key, actor_org, checked_text};

crate::service! {
    /// Destruction of dataset versions and whole datasets, and their tombstones.
    Destructions
}

/// The refusal of anything done with a destroyed dataset.
pub const DESTROYED_DATASET_REFUSAL: &str = "this dataset was destroyed by its provider \
    (GD21 Art.40): its catalog entry remains as a tombstone, its data is gone, and nothing \
    more is done with it";

/// The refusal of anything done with a destroyed version.
pub const DESTROYED_VERSION_REFUSAL: &str = "this version was destroyed by its provider \
    (GD21 Art.40): its certificate and metadata remain as a tombstone, its data is gone";

/// The reason given to the grants a whole-dataset destruction suspends.
const GRANT_SUSPENSION: &str = "suspended: the dataset was destroyed by its provider (GD21 \
    Art.40); its data is gone";

/// What a provider destroyed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum DestructionScope {
    /// One version.
    Version,
    /// The whole dataset: every remaining version, and the catalog entry retired.
    Dataset,
}

impl DestructionScope {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            DestructionScope::Version => "version",
            DestructionScope::Dataset => "dataset",
        }
    }

    fn parse(s: &str) -> Result<DestructionScope> {
        match s {
            "version" => Ok(DestructionScope::Version),
            "dataset" => Ok(DestructionScope::Dataset),
            _ => Err(SandboxError::Internal(
                "a stored destruction scope is unknown".into(),
            )),
        }
    }
}

/// What the catalog keeps of a destroyed version or dataset.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tombstone {
    /// `version` when the provider destroyed this version on its own, `dataset` when it
    /// destroyed the whole dataset.
    pub scope: DestructionScope,
    /// When, ms since epoch.
    pub destroyed_ms: i64,
    /// Why, as the provider stated it.
    pub reason: String,
    /// The legal basis the provider named, if any.
    pub legal_basis: Option<String>,
    /// The organisation that destroyed it (the provider).
    pub destroyed_by: OrgId,
    /// Ledger seq of the `Destruction` entry.
    pub ledger_seq: u64,
}

/// What a provider sends to destroy a version or a dataset.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DestructionRequest {
    /// Why (1 to 4,000 characters).
    pub reason: String,
    /// The legal basis (1 to 4,000 characters when given).
    #[serde(default)]
    pub legal_basis: Option<String>,
}

/// One file a destruction removed (or left, when a live version holds the same content).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DestroyedFileInfo {
    /// The version it belonged to.
    pub version: u64,
    /// `deid`, `raw` or `fhe_index`.
    pub zone: String,
    /// BLAKE3 of its bytes, hex.
    pub content_hash: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// False when it stays because a live version holds the same content.
    pub deleted: bool,
}

/// A destruction, as recorded.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DestructionRecord {
    /// The dataset.
    pub dataset_id: DatasetId,
    /// Its provider.
    pub provider_org: OrgId,
    /// One version, or the whole dataset.
    pub scope: DestructionScope,
    /// The versions destroyed by this act, ascending.
    pub versions: Vec<u64>,
    /// Their files.
    pub files: Vec<DestroyedFileInfo>,
    /// Why.
    pub reason: String,
    /// The legal basis named, if any.
    pub legal_basis: Option<String>,
    /// When, ms since epoch.
    pub destroyed_ms: i64,
    /// Ledger seq of the `Destruction` entry.
    pub ledger_seq: u64,
    /// Grants suspended (a whole-dataset destruction).
    pub grants_suspended: Vec<GrantId>,
}

/// A file as the tombstone keeps it (with its path, for a later clean-up).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredFile {
    version: u64,
    zone: String,
    /// Relative to the zones root.
    path: String,
    content_hash: String,
    bytes: u64,
    deleted: bool,
}

/// A stored hex hash as a [`Hash32`] (an internal fault when it is not one).
fn hash_of_hex(hex: &str) -> Result<Hash32> {
    Hash32::from_hex(hex).map_err(|_| SandboxError::Internal("a stored hash is not hex".into()))
}

/// BLAKE3 and size of a zone file's plaintext (as certificates hash it), or `None`
/// when it does not exist.
async fn hash_file(at_rest: &AtRest, path: PathBuf) -> Result<Option<(String, u64)>> {
    let at_rest = at_rest.clone();
    tokio::task::spawn_blocking(move || match at_rest.hash(&path) {
        Ok((hash, bytes)) => Ok(Some((hex::encode(hash), bytes))),
        Err(SealError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SandboxError::from(e)),
    })
    .await
    .map_err(|e| SandboxError::Internal(format!("hashing task: {e}")))?
}

/// The FHE key index of a version, relative to the zones root (where `crate::fhe`
/// stores it at ingest: `fhe/index/<dataset>/<content hash>.parquet`).
fn key_index_relative(dataset_id: &DatasetId, content_hash: &str) -> String {
    format!("fhe/index/{}/{content_hash}.parquet", dataset_id.as_str())
}

/// A retained raw upload of a version, relative to the zones root (as
/// `crate::versions` names it when retention is on).
fn raw_relative(dataset_id: &DatasetId, version: u64) -> String {
    format!("raw/{}-v{version}.raw", dataset_id.as_str())
}

/// Refuses (409) a destroyed version of `dataset_id`, or any version of a destroyed
/// dataset; anything else passes (an absent version is the caller's "not found").
pub(crate) async fn refuse_destroyed<'e, E>(
    db: E,
    dataset_id: &DatasetId,
    version: u64,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    // A number no version can have (it comes from a path) is the caller's "not found"
    // later, not a 500 here: only the dataset's own tombstone applies to it.
    let Ok(version) = i64::try_from(version) else {
        return refuse_destroyed_dataset(db, dataset_id).await;
    };
    let rows = sqlx::query(
        "SELECT version FROM dataset_destructions WHERE dataset_id = $1 \
         AND (version = $2 OR version = 0)",
    )
    .bind(dataset_id.clone())
    .bind(version)
    .fetch_all(db)
    .await?;
    let mut refusal = None;
    for row in &rows {
        let destroyed: i64 = row.try_get("version")?;
        if destroyed == 0 {
            return Err(SandboxError::Conflict(DESTROYED_DATASET_REFUSAL.into()));
        }
        refusal = Some(SandboxError::Conflict(DESTROYED_VERSION_REFUSAL.into()));
    }
    refusal.map_or(Ok(()), Err)
}

/// Refuses (409) a destroyed dataset. Used inside the certifying transaction, so that
/// an ingest racing a destruction does not certify a version of a tombstone.
pub(crate) async fn refuse_destroyed_dataset<'e, E>(db: E, dataset_id: &DatasetId) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "SELECT version FROM dataset_destructions WHERE dataset_id = $1 AND version = 0",
    )
    .bind(dataset_id.clone())
    .fetch_optional(db)
    .await?;
    match row {
        Some(_) => Err(SandboxError::Conflict(DESTROYED_DATASET_REFUSAL.into())),
        None => Ok(()),
    }
}

const TOMBSTONE_COLUMNS: &str =
    "version, scope, destroyed_ms, reason, legal_basis, actor_org, ledger_seq";

fn tombstone_from_row(row: &AnyRow) -> Result<Tombstone> {
    Ok(Tombstone {
        scope: DestructionScope::parse(&row.try_get::<String, _>("scope")?)?,
        destroyed_ms: row.try_get("destroyed_ms")?,
        reason: row.try_get("reason")?,
        legal_basis: row.try_get("legal_basis")?,
        destroyed_by: row.try_get("actor_org")?,
        ledger_seq: u64::try_from(row.try_get::<i64, _>("ledger_seq")?).unwrap_or(0),
    })
}

/// The tombstones of a dataset's destroyed versions, by version.
pub(crate) async fn tombstones<'e, E>(
    db: E,
    dataset_id: &DatasetId,
) -> Result<BTreeMap<u64, Tombstone>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let sql = format!(
        "SELECT {TOMBSTONE_COLUMNS} FROM dataset_destructions WHERE dataset_id = $1 \
         AND version > 0 ORDER BY version"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(dataset_id.clone())
        .fetch_all(db)
        .await?;
    let mut out = BTreeMap::new();
    for row in &rows {
        let version = u64::try_from(row.try_get::<i64, _>("version")?).unwrap_or(0);
        out.insert(version, tombstone_from_row(row)?);
    }
    Ok(out)
}

/// A dataset's own tombstone from a catalog row, if it was destroyed: the catalog joins
/// the row with version 0 as `tomb` and selects its columns as `tomb_scope`,
/// `tomb_destroyed_ms`, `tomb_reason`, `tomb_legal_basis`, `tomb_actor_org` and
/// `tomb_ledger_seq` (`crate::catalog`'s dataset query).
pub(crate) fn dataset_tombstone(row: &AnyRow) -> Result<Option<Tombstone>> {
    let Some(destroyed_ms) = row.try_get::<Option<i64>, _>("tomb_destroyed_ms")? else {
        return Ok(None);
    };
    let scope: Option<String> = row.try_get("tomb_scope")?;
    let destroyed_by: Option<OrgId> = row.try_get("tomb_actor_org")?;
    let seq: Option<i64> = row.try_get("tomb_ledger_seq")?;
    Ok(Some(Tombstone {
        scope: DestructionScope::parse(scope.as_deref().unwrap_or_default())?,
        destroyed_ms,
        reason: row
            .try_get::<Option<String>, _>("tomb_reason")?
            .unwrap_or_default(),
        legal_basis: row.try_get("tomb_legal_basis")?,
        destroyed_by: destroyed_by
            .ok_or_else(|| SandboxError::Internal("a tombstone without its organisation".into()))?,
        ledger_seq: seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
    }))
}

impl Destructions {
    /// The provider (`actor`) destroys version `version` of its dataset `id`: the
    /// version's files are deleted from every zone, a `Destruction` entry records their
    /// hashes, and the version stays in the catalog as a tombstone. Another
    /// organisation's dataset and an absent version are "not found"; a destroyed one, or
    /// one a model run or FHE query is reading, is a conflict; a missing or blank reason
    /// is invalid.
    pub async fn destroy_version(
        &self,
        actor: &Actor,
        id: &DatasetId,
        version: u64,
        request: DestructionRequest,
    ) -> Result<DestructionRecord> {
        self.destroy(actor, id, Some(version), request).await
    }

    /// The provider (`actor`) destroys its whole dataset `id`: every remaining version
    /// as in [`Destructions::destroy_version`], its grants suspended, and the catalog
    /// entry retired to a tombstone. Refused (409) while it is under the data authority's
    /// review, while a version is being ingested or read by a job, and once destroyed.
    pub async fn destroy_dataset(
        &self,
        actor: &Actor,
        id: &DatasetId,
        request: DestructionRequest,
    ) -> Result<DestructionRecord> {
        self.destroy(actor, id, None, request).await
    }

    async fn destroy(
        &self,
        actor: &Actor,
        id: &DatasetId,
        only: Option<u64>,
        request: DestructionRequest,
    ) -> Result<DestructionRecord> {
        let reason = checked_text("reason", &request.reason, MAX_REASON_CHARS)?;
        let legal_basis = request
            .legal_basis
            .as_deref()
            .map(|b| checked_text("legal_basis", b, MAX_REASON_CHARS))
            .transpose()?;
        let org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let scope = match only {
            Some(_) => DestructionScope::Version,
            None => DestructionScope::Dataset,
        };
        let dataset = self
            .catalog()
            .dataset(id)
            .await?
            .filter(|d| d.provider_org == org)
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
        if dataset.destroyed.is_some() {
            self.purge_leftovers(&dataset.id).await;
            return Err(SandboxError::Conflict(
                "this dataset was destroyed already (GD21 Art.40)".into(),
            ));
        }
        let versions = self.versions().versions(&dataset.id).await?;
        let targets: Vec<&Version> = match only {
            Some(n) => {
                let v = versions
                    .iter()
                    .find(|v| v.version == n)
                    .ok_or_else(|| SandboxError::NotFound("no such version".into()))?;
                if v.destroyed.is_some() {
                    self.purge_leftovers(&dataset.id).await;
                    return Err(SandboxError::Conflict(
                        "this version was destroyed already (GD21 Art.40)".into(),
                    ));
                }
                vec![v]
            }
            None => {
                if dataset.status == CatalogStatus::Submitted {
                    return Err(SandboxError::Conflict(
                        "the entry is under the data authority's review; destroy it once the \
                         review is decided"
                            .into(),
                    ));
                }
                versions.iter().filter(|v| v.destroyed.is_none()).collect()
            }
        };
        let target_numbers: BTreeSet<u64> = targets.iter().map(|v| v.version).collect();
        // The content hashes that live versions of this dataset keep (their FHE key
        // indexes are keyed by dataset and content hash).
        let live_hashes: BTreeSet<&str> = versions
            .iter()
            .filter(|v| v.destroyed.is_none() && !target_numbers.contains(&v.version))
            .map(|v| v.content_hash.as_str())
            .collect();
        let mut files = Vec::new();
        for v in &targets {
            files.extend(
                self.files_of(&dataset.id, v, &target_numbers, &live_hashes)
                    .await?,
            );
        }

        let now = now_ms();
        let files_entry: Vec<FileEntry> = files
            .iter()
            .map(|f| -> Result<FileEntry> {
                Ok(FileEntry {
                    version: f.version,
                    zone: f.zone.clone(),
                    content_hash: hash_of_hex(&f.content_hash)?,
                    bytes: f.bytes,
                    deleted: f.deleted,
                })
            })
            .collect::<Result<_>>()?;
        let mut tx = self.db().begin_write().await?;
        // Touching the dataset's row first serialises with a certification of the same
        // dataset on PostgreSQL (SQLite writers are already serial).
        store::catalog::touch_dataset(&mut *tx, &dataset.id, now).await?;
        self.refuse_busy(&mut tx, &dataset.id, only).await?;
        // Grants first, ledger entries after (see `Grants::suspend_grants_on`).
        let suspended = match scope {
            DestructionScope::Dataset => {
                self.grants()
                    .suspend_grants_on(&mut tx, actor, &dataset.id, GRANT_SUSPENSION)
                    .await?
            }
            DestructionScope::Version => Vec::new(),
        };
        let entry = DestructionEntry {
            dataset_id: dataset.id.to_string(),
            provider_org: dataset.provider_org.to_string(),
            scope: scope.as_str().to_string(),
            versions: target_numbers.iter().copied().collect(),
            certificates: targets.iter().map(|v| v.certificate_no.clone()).collect(),
            files: files_entry,
            reason: reason.to_string(),
            legal_basis: legal_basis.map(str::to_string),
            grants_suspended: suspended.iter().map(ToString::to_string).collect(),
        };
        let appended = self.ledger().append(&mut tx, actor, &entry).await?;
        let seq = to_i64(appended.seq, "a number")?;
        let mut rows: Vec<(i64, String)> = Vec::new();
        for n in &target_numbers {
            let mine: Vec<&StoredFile> = files.iter().filter(|f| f.version == *n).collect();
            let json = serde_json::to_string(&mine)
                .map_err(|e| SandboxError::Internal(format!("encoding a file list: {e}")))?;
            rows.push((to_i64(*n, "a number")?, json));
        }
        if scope == DestructionScope::Dataset {
            rows.push((0, "[]".to_string()));
        }
        for (version, files_json) in &rows {
            let inserted = store::destruction::insert_tombstone(
                &mut *tx,
                &store::destruction::NewTombstoneRow {
                    dataset_id: &dataset.id,
                    version: *version,
                    scope: scope.as_str(),
                    provider_org: &dataset.provider_org,
                    reason,
                    legal_basis,
                    actor_org: &org,
                    actor_key: &key,
                    destroyed_ms: now,
                    files_json,
                    ledger_seq: seq,
                },
            )
            .await;
            match inserted {
                Ok(()) => {}
                Err(SandboxError::Db(e)) if is_unique_violation(&e) => {
                    return Err(SandboxError::Conflict(
                        "this was destroyed concurrently (GD21 Art.40)".into(),
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        tx.commit().await?;
        tracing::info!(
            dataset = %dataset.id,
            scope = scope.as_str(),
            versions = ?target_numbers,
            files = files.len(),
            grants_suspended = suspended.len(),
            seq = appended.seq,
            "destroyed"
        );
        // The tombstone is committed: from here on nothing opens these files, so they go.
        let failed = self.delete_files(&dataset.id, &files).await;
        if scope == DestructionScope::Dataset {
            // Its key-index directory, if now empty (a non-empty one is left alone).
            let dir = self
                .zones()
                .root()
                .join("fhe/index")
                .join(dataset.id.as_str());
            let _ = std::fs::remove_dir(dir);
        }
        if failed > 0 {
            return Err(SandboxError::Internal(format!(
                "{failed} destroyed file(s) could not be deleted; the destruction is recorded, \
                 and destroying again deletes what is left"
            )));
        }
        Ok(DestructionRecord {
            dataset_id: dataset.id.clone(),
            provider_org: dataset.provider_org.clone(),
            scope,
            versions: target_numbers.into_iter().collect(),
            files: files
                .iter()
                .map(|f| DestroyedFileInfo {
                    version: f.version,
                    zone: f.zone.clone(),
                    content_hash: f.content_hash.clone(),
                    bytes: f.bytes,
                    deleted: f.deleted,
                })
                .collect(),
            reason: reason.to_string(),
            legal_basis: legal_basis.map(str::to_string),
            destroyed_ms: now,
            ledger_seq: appended.seq,
            grants_suspended: suspended,
        })
    }

    /// The files of version `v` in every zone, with their hashes, and whether each is
    /// deleted (not when a live version, not being destroyed, holds the same content).
    async fn files_of(
        &self,
        dataset_id: &DatasetId,
        v: &Version,
        targets: &BTreeSet<u64>,
        live_hashes: &BTreeSet<&str>,
    ) -> Result<Vec<StoredFile>> {
        let mut out = Vec::new();
        let row = sqlx::query(
            "SELECT file_path FROM dataset_versions WHERE dataset_id = $1 AND version = $2",
        )
        .bind(dataset_id.clone())
        .bind(to_i64(v.version, "a number")?)
        .fetch_one(self.db().pool())
        .await?;
        let deid: String = row.try_get("file_path")?;
        // Content-addressed: the same file may be another (live) version's, of any dataset.
        let holders = sqlx::query(
            "SELECT v.dataset_id, v.version, \
             (SELECT COUNT(*) FROM dataset_destructions x \
              WHERE x.dataset_id = v.dataset_id AND x.version = v.version) AS destroyed \
             FROM dataset_versions v WHERE v.file_path = $1",
        )
        .bind(deid.clone())
        .fetch_all(self.db().pool())
        .await?;
        let mut shared = false;
        for h in &holders {
            let holder: DatasetId = h.try_get("dataset_id")?;
            let version = u64::try_from(h.try_get::<i64, _>("version")?).unwrap_or(0);
            let destroyed: i64 = h.try_get("destroyed")?;
            let being_destroyed = holder == *dataset_id && targets.contains(&version);
            shared |= destroyed == 0 && !being_destroyed;
        }
        out.push(StoredFile {
            version: v.version,
            zone: "deid".into(),
            path: deid,
            content_hash: v.content_hash.clone(),
            bytes: v.bytes,
            deleted: !shared,
        });
        let raw = raw_relative(dataset_id, v.version);
        if let Some((hash, bytes)) =
            hash_file(self.zones().at_rest(), self.zones().root().join(&raw)).await?
        {
            out.push(StoredFile {
                version: v.version,
                zone: "raw".into(),
                path: raw,
                content_hash: hash,
                bytes,
                deleted: true,
            });
        }
        let index = key_index_relative(dataset_id, &v.content_hash);
        if let Some((hash, bytes)) =
            hash_file(self.zones().at_rest(), self.zones().root().join(&index)).await?
        {
            out.push(StoredFile {
                version: v.version,
                zone: "fhe_index".into(),
                path: index,
                content_hash: hash,
                bytes,
                deleted: !live_hashes.contains(v.content_hash.as_str()),
            });
        }
        Ok(out)
    }

    /// Refuses (409) while a job reads what is being destroyed: a model run or FHE query
    /// on the version (`only`), or on any version of the dataset, and for a whole
    /// dataset an ingest in progress. Run inside the destruction's transaction.
    async fn refuse_busy(
        &self,
        tx: &mut AnyConnection,
        dataset_id: &DatasetId,
        only: Option<u64>,
    ) -> Result<()> {
        // The run rows name their versions as `dataset@version` in a JSON list; the LIKE
        // narrows the scan and the parsed list decides.
        let runs = sqlx::query(
            "SELECT dataset_versions FROM model_runs WHERE status = 'running' \
             AND dataset_versions LIKE $1",
        )
        .bind(format!("%\"{}@%", dataset_id.as_str()))
        .fetch_all(&mut *tx)
        .await?;
        for row in &runs {
            let cited = cited_versions(&row.try_get::<String, _>("dataset_versions")?)?;
            if cited
                .iter()
                .any(|c| c.dataset == *dataset_id && only.is_none_or(|n| n == c.version))
            {
                return Err(SandboxError::Conflict(
                    "a model run reading this data is in progress: destroy it once the run has \
                     finished, so that no job is left half-way"
                        .into(),
                ));
            }
        }
        let mut sql = String::from(
            "SELECT COUNT(*) AS n FROM fhe_queries WHERE dataset_id = $1 \
             AND status IN ('queued', 'running')",
        );
        if only.is_some() {
            sql.push_str(" AND version = $2");
        }
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(dataset_id.clone());
        if let Some(n) = only {
            q = q.bind(to_i64(n, "a number")?);
        }
        let lookups: i64 = q.fetch_one(&mut *tx).await?.try_get("n")?;
        if lookups > 0 {
            return Err(SandboxError::Conflict(
                "an FHE query on this data is in progress: destroy it once the query has \
                 finished, so that no job is left half-way"
                    .into(),
            ));
        }
        if only.is_none() {
            let ingests: i64 = sqlx::query(
                "SELECT COUNT(*) AS n FROM jobs WHERE kind = $1 AND subject = $2 \
                 AND status IN ('queued', 'running')",
            )
            .bind(INGEST_JOB_KIND.to_string())
            .bind(dataset_id.to_string())
            .fetch_one(&mut *tx)
            .await?
            .try_get("n")?;
            if ingests > 0 {
                return Err(SandboxError::Conflict(
                    "a version of this dataset is being ingested: destroy the dataset once the \
                     ingest job has finished"
                        .into(),
                ));
            }
        }
        Ok(())
    }

    /// Deletes the files marked for deletion (an absent one is already gone); returns
    /// how many could not be deleted (each logged).
    async fn delete_files(&self, dataset_id: &DatasetId, files: &[StoredFile]) -> usize {
        let mut failed = 0;
        for f in files.iter().filter(|f| f.deleted) {
            // The path comes from our own rows; refuse anything that climbs out.
            if Path::new(&f.path)
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                tracing::error!(zone = %f.zone, "a destroyed file's stored path is not a plain relative path");
                failed += 1;
                continue;
            }
            // Asked again now, not when the list was made: a version certified since
            // with the same content holds the same content-addressed file (and its key
            // index the same name), and a clean-up after a retry must not delete it.
            match self.needed_by_a_live_version(dataset_id, f).await {
                Ok(false) => {}
                Ok(true) => {
                    tracing::info!(zone = %f.zone, version = f.version, "a destroyed version's file stays: a live version holds the same content");
                    continue;
                }
                Err(e) => {
                    tracing::error!(zone = %f.zone, error = %e, "could not check whether a destroyed version's file is still needed");
                    failed += 1;
                    continue;
                }
            }
            let path = self.zones().root().join(&f.path);
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {
                    tracing::info!(zone = %f.zone, version = f.version, hash = %f.content_hash, "deleted a destroyed version's file");
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "could not delete a destroyed version's file");
                    failed += 1;
                }
            }
        }
        failed
    }

    /// Whether a version without a tombstone holds file `f` of a destroyed version of
    /// `dataset_id`: the same de-identified file (content-addressed, of any dataset), or
    /// the same FHE key index (named by dataset and content hash). A retained raw upload
    /// is named by its version number and belongs to that version only.
    async fn needed_by_a_live_version(
        &self,
        dataset_id: &DatasetId,
        f: &StoredFile,
    ) -> Result<bool> {
        let live = match f.zone.as_str() {
            "deid" => {
                let n: i64 = sqlx::query(
                    "SELECT COUNT(*) AS n FROM dataset_versions v WHERE v.file_path = $1 \
                     AND NOT EXISTS (SELECT 1 FROM dataset_destructions x \
                     WHERE x.dataset_id = v.dataset_id AND x.version = v.version)",
                )
                .bind(f.path.clone())
                .fetch_one(self.db().pool())
                .await?
                .try_get("n")?;
                n > 0
            }
            "fhe_index" => {
                let rows = sqlx::query(
                    "SELECT v.content_hash FROM dataset_versions v WHERE v.dataset_id = $1 \
                     AND NOT EXISTS (SELECT 1 FROM dataset_destructions x \
                     WHERE x.dataset_id = v.dataset_id AND x.version = v.version)",
                )
                .bind(dataset_id.clone())
                .fetch_all(self.db().pool())
                .await?;
                let mut live = false;
                for row in &rows {
                    let hash: String = row.try_get("content_hash")?;
                    live |= key_index_relative(dataset_id, &hash) == f.path;
                }
                live
            }
            _ => false,
        };
        Ok(live)
    }

    /// Deletes whatever a dataset's tombstones list that is still on disk (after a crash
    /// or an I/O error between the commit and the deletion). Failures are logged.
    async fn purge_leftovers(&self, dataset_id: &DatasetId) {
        let rows = sqlx::query("SELECT files_json FROM dataset_destructions WHERE dataset_id = $1")
            .bind(dataset_id.clone())
            .fetch_all(self.db().pool())
            .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(dataset = %dataset_id, error = %e, "could not read the destroyed files to clean up");
                return;
            }
        };
        let mut files: Vec<StoredFile> = Vec::new();
        for row in &rows {
            let parsed = row
                .try_get::<String, _>("files_json")
                .ok()
                .and_then(|text| serde_json::from_str::<Vec<StoredFile>>(&text).ok());
            match parsed {
                Some(list) => files.extend(list),
                None => {
                    tracing::warn!(dataset = %dataset_id, "a tombstone's file list does not parse")
                }
            }
        }
        let failed = self.delete_files(dataset_id, &files).await;
        if failed > 0 {
            tracing::error!(dataset = %dataset_id, failed, "destroyed files are still on disk");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_need_a_reason_and_bound_their_texts() {
        assert!(serde_json::from_value::<DestructionRequest>(serde_json::json!({})).is_err());
        assert!(
            serde_json::from_value::<DestructionRequest>(
                serde_json::json!({"reason": "r", "by": "me"})
            )
            .is_err()
        );
        let ok: DestructionRequest =
            serde_json::from_value(serde_json::json!({"reason": "retention over"})).unwrap();
        assert_eq!(ok.legal_basis, None);
        assert_eq!(
            checked_text("reason", "  over  ", MAX_REASON_CHARS).ok(),
            Some("over")
        );
        let err = checked_text("reason", "   ", MAX_REASON_CHARS)
            .unwrap_err()
            .to_string();
        assert!(err.contains("reason"), "{err}");
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        assert!(
            !checked_text("reason", &long, MAX_REASON_CHARS)
                .unwrap_err()
                .to_string()
                .contains("xxx")
        );
    }

    #[test]
    fn zone_paths_are_plain_and_scopes_round_trip() {
        let id = DatasetId::parse("ds_abc").unwrap();
        assert_eq!(raw_relative(&id, 3), "raw/ds_abc-v3.raw");
        assert_eq!(
            key_index_relative(&id, "ff00"),
            "fhe/index/ds_abc/ff00.parquet"
        );
        for scope in [DestructionScope::Version, DestructionScope::Dataset] {
            assert_eq!(DestructionScope::parse(scope.as_str()).unwrap(), scope);
        }
        assert!(DestructionScope::parse("all").is_err());
    }
}
