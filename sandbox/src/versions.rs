//! Dataset versions: upload → validate → de-identify → store → certify.
//!
//! 1. [`Versions::start_upload`] opens a file in the raw zone; the caller streams the
//!    body into it through [`RawUpload::write`], which enforces the size limit.
//! 2. [`Versions::submit_version`] parses and validates the whole file against the
//!    declared schema *before* answering, so a bad upload is a 4xx and never a job.
//! 3. A job then de-identifies the frame, writes the Parquet content-addressed into the
//!    de-identified zone, and in one write transaction takes the next version number,
//!    appends the `AssetCertificate` ledger entry and inserts the version row. Either
//!    all of that commits or none of it does; a failed job leaves no version.
//! 4. The raw file is deleted (and the deletion logged) unless retention is on.
//!
//! An upload may name the accepted objections it corrects
//! ([`Versions::submit_correcting_version`]; SD22 Art.13; XT Art.21–22): they are
//! checked before the job starts, and linked to the version in the certificate's
//! transaction ([`crate::quality`]). The version and its certificate list them
//! ([`Version::corrects`]).
//!
//! The job is durable (see [`crate::jobs`]): the validated upload is renamed out of
//! the partial-upload namespace, and the version row names the ingest job that
//! certified it, so an ingest resumed after a crash either finishes with the version
//! it already certified or de-identifies the kept upload again; never two versions.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use pdx_algorithms::DataFrame;
use pdx_algorithms::deid::ingest::{UploadFormat, read_upload};
use pdx_algorithms::deid::pipeline::deidentify;
use pdx_algorithms::deid::released::{ReleasedDomain, released_domains};
use pdx_algorithms::deid::storage::{schema_hash, store_content_addressed};
use pdx_ids::{DatasetId, JobId, ObjectionId};
use pdx_ledger::db::now_ms;
use pdx_ledger::kinds::AssetCertificate;
use pdx_ledger::{Actor, Hash32, Receipt};
use pdx_seal::{AtRest, ZoneFileWriter};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use time::format_description::well_known::Rfc3339;

use crate::catalog::Dataset;
use crate::jobs::{Job, JobInputs};
use crate::quality::CorrectedObjection;
use crate::store;
use crate::{Result, SandboxError, actor_org, scratch_name};

crate::service! {
    /// Uploads, de-identification and certified versions.
    Versions
}

/// An upload being streamed into the raw zone, sealed as it arrives (the plaintext
/// never touches the disk). Dropped before [`RawUpload::finish`], its temporary is
/// removed, so an aborted or oversized upload leaves nothing behind.
pub struct RawUpload {
    file: Option<ZoneFileWriter>,
    raw: RawFile,
    limit: u64,
}

impl RawUpload {
    /// Appends a chunk; fails once the total passes the limit.
    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.raw.bytes += chunk.len() as u64;
        if self.raw.bytes > self.limit {
            return Err(SandboxError::TooLarge { limit: self.limit });
        }
        let mut file = self
            .file
            .take()
            .ok_or_else(|| SandboxError::Internal("upload already finished".into()))?;
        // Sealing and writing block: off the async threads, as tokio::fs does. A failed
        // write leaves `file` gone, so the upload cannot go on (and its temporary is
        // removed when the writer drops).
        let chunk = chunk.to_vec();
        let file = tokio::task::spawn_blocking(move || file.write_all(&chunk).map(|()| file))
            .await
            .map_err(|e| SandboxError::Internal(format!("upload write task: {e}")))??;
        self.file = Some(file);
        Ok(())
    }

    /// Seals the last segment, syncs the file and puts it in place (as `<…>.upload`).
    pub async fn finish(mut self) -> Result<RawFile> {
        if let Some(file) = self.file.take() {
            let path = self.raw.path.clone();
            tokio::task::spawn_blocking(move || file.commit(&path))
                .await
                .map_err(|e| SandboxError::Internal(format!("upload finish task: {e}")))??;
        }
        Ok(std::mem::replace(
            &mut self.raw,
            RawFile {
                path: PathBuf::new(),
                bytes: 0,
                keep: true,
            },
        ))
    }
}

/// A complete upload in the raw zone; removed on drop unless retained.
pub struct RawFile {
    path: PathBuf,
    bytes: u64,
    keep: bool,
}

impl RawFile {
    /// Size in bytes.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Renames a validated upload to `name` so that it outlives a restart (partial
    /// uploads are discarded at start).
    fn make_durable(&mut self, name: &str) -> Result<()> {
        let target = self.path.with_file_name(name);
        std::fs::rename(&self.path, &target)?;
        self.path = target;
        Ok(())
    }

    /// The durable upload of an interrupted ingest, if it is still there.
    fn durable(raw_dir: &Path, at_rest: &AtRest, name: &str) -> Result<RawFile> {
        // The name comes from our own job row; refuse anything that is not a plain name.
        if name.contains(['/', '\\']) || name.starts_with('.') {
            return Err(SandboxError::Internal(
                "a stored upload name is invalid".into(),
            ));
        }
        let path = raw_dir.join(name);
        let bytes = at_rest.len(&path).map_err(|_| {
            SandboxError::Conflict(
                "the server restarted before the upload was kept; upload it again".into(),
            )
        })?;
        Ok(RawFile {
            path,
            bytes,
            keep: false,
        })
    }

    /// Keeps the file under a name that says which version it became.
    fn retain_as(mut self, name: &str) -> Result<PathBuf> {
        let target = self.path.with_file_name(name);
        std::fs::rename(&self.path, &target)?;
        self.keep = true;
        Ok(target)
    }
}

impl Drop for RawFile {
    fn drop(&mut self) {
        if !self.keep {
            match std::fs::remove_file(&self.path) {
                Ok(()) => tracing::info!(file = %self.path.display(), "deleted raw upload"),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::error!(file = %self.path.display(), error = %e, "could not delete raw upload")
                }
            }
        }
    }
}

/// A certified, de-identified version of a dataset.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Version {
    /// Dataset id.
    pub dataset_id: DatasetId,
    /// Version number, from 1.
    pub version: u64,
    /// Rows in the de-identified file.
    pub rows: u64,
    /// Bytes of the de-identified Parquet file.
    pub bytes: u64,
    /// BLAKE3 of the file, hex.
    pub content_hash: String,
    /// BLAKE3 of the output schema, hex.
    pub schema_hash: String,
    /// The de-identification and risk report.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub report: serde_json::Value,
    /// Data asset certificate number.
    pub certificate_no: String,
    /// Ledger seq of the certificate.
    pub certificate_seq: u64,
    /// Certificate validity start (RFC 3339).
    pub valid_from: String,
    /// Certificate validity end (RFC 3339).
    pub valid_until: String,
    /// Certified, ms since epoch.
    pub created_ms: i64,
    /// What each released column holds in this version (generalised quasi-identifiers
    /// hold bands or hierarchy labels, not raw values), from the schema and the levels
    /// the search chose.
    pub released_domains: Vec<ReleasedDomain>,
    /// The accepted objections this version corrects (SD22 Art.13; XT Art.22), named at
    /// upload and linked when it was certified.
    #[serde(default)]
    pub corrects: Vec<CorrectedObjection>,
    /// Its tombstone once its provider destroyed it (GD21 Art.40;
    /// [`crate::destruction`]); `null` while it lives. The metadata, hashes and
    /// certificate stay; the data is gone.
    #[serde(default)]
    pub destroyed: Option<crate::destruction::Tombstone>,
}

/// A certificate with its offline receipt.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CertificateWithReceipt {
    /// The `AssetCertificate` ledger payload.
    pub certificate: AssetCertificate,
    /// Inclusion proof under a signed checkpoint; check it with
    /// `pdx ledger verify-receipt`.
    pub receipt: Receipt,
    /// The accepted objections the certified version corrects, as on the version.
    #[serde(default)]
    pub corrects: Vec<CorrectedObjection>,
}

const VERSION_COLUMNS: &str = "dataset_id, version, rows_count, bytes, content_hash, schema_hash, \
    file_path, report_json, certificate_no, certificate_seq, valid_from, valid_until, created_ms";

/// The levels the search chose, as a version's report states them.
pub(crate) fn report_levels(report: &serde_json::Value) -> BTreeMap<String, u8> {
    report
        .get("levels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

fn version_from_row(row: &AnyRow) -> Result<Version> {
    let report: String = row.try_get("report_json")?;
    Ok(Version {
        dataset_id: row.try_get("dataset_id")?,
        version: row.try_get::<i64, _>("version")? as u64,
        rows: row.try_get::<i64, _>("rows_count")? as u64,
        bytes: row.try_get::<i64, _>("bytes")? as u64,
        content_hash: row.try_get("content_hash")?,
        schema_hash: row.try_get("schema_hash")?,
        report: serde_json::from_str(&report)
            .map_err(|e| SandboxError::Internal(format!("stored report: {e}")))?,
        certificate_no: row.try_get("certificate_no")?,
        certificate_seq: row.try_get::<i64, _>("certificate_seq")? as u64,
        valid_from: row.try_get("valid_from")?,
        valid_until: row.try_get("valid_until")?,
        created_ms: row.try_get("created_ms")?,
        released_domains: Vec::new(),
        corrects: Vec::new(),
        destroyed: None,
    })
}

/// Reads (unsealing) and checks a whole upload against the dataset's schema.
async fn validate(
    at_rest: &AtRest,
    raw: &RawFile,
    format: &UploadFormat,
    dataset: &Dataset,
) -> Result<DataFrame> {
    let (at_rest, path, format, schema) = (
        at_rest.clone(),
        raw.path.clone(),
        format.clone(),
        dataset.meta.schema.clone(),
    );
    let frame = tokio::task::spawn_blocking(move || read_upload(&at_rest, &path, &format, &schema))
        .await
        .map_err(|e| SandboxError::Internal(format!("validation task: {e}")))??;
    if frame.height() == 0 {
        return Err(SandboxError::Invalid("the upload has no data rows".into()));
    }
    Ok(frame)
}

/// The job kind of an ingest.
pub const INGEST_JOB_KIND: &str = "ingest";

/// What a finished ingest job reports.
fn ingest_result(version: &Version, raw_retained: bool) -> serde_json::Value {
    serde_json::json!({
        "dataset_id": version.dataset_id,
        "version": version.version,
        "certificate_no": version.certificate_no,
        "certificate_seq": version.certificate_seq,
        "rows": version.rows,
        "content_hash": version.content_hash,
        "raw_retained": raw_retained,
        "report": version.report,
    })
}

fn rfc3339(t: time::OffsetDateTime) -> Result<String> {
    t.format(&Rfc3339)
        .map_err(|e| SandboxError::Internal(format!("formatting a date: {e}")))
}

impl Versions {
    /// Opens a new upload in the raw zone.
    pub async fn start_upload(&self) -> Result<RawUpload> {
        let raw_dir = self.zones().raw();
        let path = raw_dir.join(format!("{}.upload", scratch_name("raw")));
        let at_rest = self.zones().at_rest().clone();
        let file = tokio::task::spawn_blocking(move || at_rest.create_in(&raw_dir))
            .await
            .map_err(|e| SandboxError::Internal(format!("upload start task: {e}")))??;
        Ok(RawUpload {
            file: Some(file),
            raw: RawFile {
                path,
                bytes: 0,
                keep: false,
            },
            limit: self.config().upload_limit,
        })
    }

    /// Validates a finished upload against the dataset's schema and, if it is good,
    /// starts the ingest job. The caller has checked that `actor` owns the dataset.
    pub async fn submit_version(
        &self,
        actor: &Actor,
        dataset: &Dataset,
        format: UploadFormat,
        raw: RawFile,
    ) -> Result<Job> {
        self.submit_correcting_version(actor, dataset, format, raw, &[])
            .await
    }

    /// [`Versions::submit_version`] for a version that corrects the accepted objections
    /// `corrects` (SD22 Art.13; XT Art.21–22). They are checked before anything is
    /// written ([`crate::quality::Quality`]: 404 for one the provider cannot see, 422 for
    /// another dataset's, 409 for one not accepted or already corrected), recorded with
    /// the job, and linked to the version when it is certified.
    pub async fn submit_correcting_version(
        &self,
        actor: &Actor,
        dataset: &Dataset,
        format: UploadFormat,
        raw: RawFile,
        corrects: &[ObjectionId],
    ) -> Result<Job> {
        // A destroyed dataset takes no new version (GD21 Art.40).
        dataset.not_destroyed()?;
        if raw.bytes == 0 {
            return Err(SandboxError::Invalid("the upload is empty".into()));
        }
        let corrected = self.quality().check_corrections(dataset, corrects).await?;
        let frame = validate(self.zones().at_rest(), &raw, &format, dataset).await?;
        let org = actor_org(actor)?;
        let job_id = JobId::random();
        let raw_file = format!("{job_id}.pending");
        let inputs = JobInputs::Ingest {
            actor: actor.clone(),
            dataset_id: dataset.id.clone(),
            format,
            raw_file: raw_file.clone(),
        };
        let job = self
            .jobs()
            .create(&job_id, INGEST_JOB_KIND, &org, dataset.id.as_str(), &inputs)
            .await?;
        // Before the job can certify anything, so that the certificate's transaction
        // finds the links.
        if !corrected.is_empty()
            && let Err(e) = self.quality().link_upload(&job.id, &corrected).await
        {
            let cause = SandboxError::Internal(format!("linking the corrected objections: {e}"));
            self.jobs().finish(&job.id, Err(cause)).await;
            return Err(e);
        }
        // Renamed after the row exists: a crash in between leaves a job whose resume
        // asks for the upload again, never a raw file that nothing points at.
        let mut raw = raw;
        if let Err(e) = raw.make_durable(&raw_file) {
            let cause = SandboxError::Internal(format!("keeping the upload: {e}"));
            self.jobs().finish(&job.id, Err(cause)).await;
            return Err(e);
        }
        self.spawn_ingest(&job.id, actor.clone(), dataset.clone(), frame, raw);
        Ok(job)
    }

    /// Runs the ingest job `job_id` over a validated frame.
    fn spawn_ingest(
        &self,
        job_id: &JobId,
        actor: Actor,
        dataset: Dataset,
        frame: DataFrame,
        raw: RawFile,
    ) {
        let sandbox = self.clone();
        let id = job_id.clone();
        self.runner().spawn(job_id, async move {
            sandbox.ingest(&id, &actor, &dataset, frame, raw).await
        });
    }

    /// Resumes an ingest a restart cut off: finishes with the version it already
    /// certified, if any (the version row names its ingest job), or de-identifies the
    /// kept upload again.
    pub(crate) async fn resume_ingest(
        &self,
        job_id: &JobId,
        actor: Actor,
        dataset_id: &DatasetId,
        format: UploadFormat,
        raw_file: &str,
    ) -> Result<()> {
        let raw = RawFile::durable(&self.zones().raw(), self.zones().at_rest(), raw_file);
        if let Some(version) = self.version_of_ingest(job_id).await? {
            // Still there: the crash came before it was disposed of. Gone: it was.
            let retained = match raw {
                Ok(raw) => self.dispose_raw(raw, &version),
                Err(_) => self.config().retain_raw,
            };
            self.jobs()
                .succeed(job_id, &ingest_result(&version, retained))
                .await?;
            return Ok(());
        }
        let raw = raw?;
        let dataset = self
            .catalog()
            .dataset(dataset_id)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))?;
        let frame = validate(self.zones().at_rest(), &raw, &format, &dataset).await?;
        self.spawn_ingest(job_id, actor, dataset, frame, raw);
        Ok(())
    }

    /// The version an ingest job certified, if it got that far.
    async fn version_of_ingest(&self, job_id: &JobId) -> Result<Option<Version>> {
        let row = sqlx::query(
            "SELECT dataset_id, version FROM dataset_versions WHERE ingest_job_id = $1",
        )
        .bind(job_id.clone())
        .fetch_optional(self.db().pool())
        .await?;
        match row {
            Some(row) => {
                let dataset_id: DatasetId = row.try_get("dataset_id")?;
                let version: i64 = row.try_get("version")?;
                self.version(&dataset_id, version as u64).await
            }
            None => Ok(None),
        }
    }

    /// Keeps the raw upload of a certified version (when configured) or deletes it;
    /// returns whether it was kept. The version is certified either way, so a failure
    /// to keep it is logged (and the file deleted), not the job's failure.
    fn dispose_raw(&self, raw: RawFile, version: &Version) -> bool {
        if !self.config().retain_raw {
            drop(raw);
            tracing::info!(dataset = %version.dataset_id, version = version.version, "raw upload deleted after certification");
            return false;
        }
        // Not `.upload`: those are partial uploads, discarded at start.
        match raw.retain_as(&format!("{}-v{}.raw", version.dataset_id, version.version)) {
            Ok(kept) => {
                tracing::info!(dataset = %version.dataset_id, version = version.version, file = %kept.display(), "retained raw upload");
                true
            }
            Err(e) => {
                tracing::error!(dataset = %version.dataset_id, version = version.version, error = %e, "could not retain the raw upload; it was deleted");
                false
            }
        }
    }

    /// The ingest job body: de-identify, store, certify.
    async fn ingest(
        &self,
        job_id: &JobId,
        actor: &Actor,
        dataset: &Dataset,
        frame: DataFrame,
        raw: RawFile,
    ) -> Result<serde_json::Value> {
        let jobs = self.jobs();
        jobs.progress(job_id, "de-identifying", 0.1).await?;
        let key = self.zones().pseudonym_key(&dataset.id);
        let schema = dataset.meta.schema.clone();
        let salt = dataset.id.to_string();
        let (out, key_index) = tokio::task::spawn_blocking(move || {
            // The FHE key index needs the clear identifiers, which exist only here.
            let index = pdx_algorithms::fhe::template::key_index(&frame, &schema, &key, &salt);
            (deidentify(frame, &schema, &key), index)
        })
        .await
        .map_err(|e| SandboxError::Internal(format!("de-identification task: {e}")))?;
        let out = out.map_err(|e| SandboxError::Invalid(format!("de-identification: {e}")))?;
        jobs.progress(job_id, "storing", 0.7).await?;
        let deid_dir = self.zones().deid();
        let at_rest = self.zones().at_rest().clone();
        let mut frame = out.frame;
        let stored = tokio::task::spawn_blocking(move || {
            let schema_hash = schema_hash(frame.schema());
            store_content_addressed(&mut frame, &deid_dir, &at_rest)
                .map(|(p, s)| (p, s, schema_hash, frame.height()))
        })
        .await
        .map_err(|e| SandboxError::Internal(format!("storage task: {e}")))?
        .map_err(|e| SandboxError::Internal(format!("storing the de-identified version: {e}")))?;
        let (file, stored, schema_hash, rows) = stored;
        self.fhe()
            .store_fhe_key_index(&dataset.id, &stored.content_hash, key_index)
            .await?;
        jobs.progress(job_id, "certifying", 0.9).await?;
        let report = serde_json::to_value(&out.report)
            .map_err(|e| SandboxError::Internal(format!("encoding the report: {e}")))?;
        let certified = self
            .certify(
                actor,
                dataset,
                &file,
                stored.bytes,
                stored.content_hash,
                schema_hash,
                rows as u64,
                &report,
                job_id,
            )
            .await;
        let version = match certified {
            Ok(v) => v,
            Err(e) => {
                self.discard_unreferenced(&file, &hex::encode(stored.content_hash))
                    .await;
                return Err(e);
            }
        };
        let retained = self.dispose_raw(raw, &version);
        Ok(ingest_result(&version, retained))
    }

    /// Takes the next version number, appends the certificate and inserts the version
    /// row, all in one write transaction.
    #[allow(clippy::too_many_arguments)]
    async fn certify(
        &self,
        actor: &Actor,
        dataset: &Dataset,
        file: &Path,
        bytes: u64,
        content_hash: [u8; 32],
        schema_hash: [u8; 32],
        rows: u64,
        report: &serde_json::Value,
        job_id: &JobId,
    ) -> Result<Version> {
        let now = time::OffsetDateTime::now_utc();
        let valid_from = rfc3339(now)?;
        let valid_until = rfc3339(
            now + time::Duration::days(i64::from(self.config().certificate_validity_days)),
        )?;
        let relative = file
            .strip_prefix(self.zones().root())
            .map_err(|_| SandboxError::Internal("stored file outside the zones".into()))?
            .to_string_lossy()
            .to_string();
        let mut tx = self.db().begin_write().await?;
        // Touching the dataset row first serialises concurrent certifications of one
        // dataset on PostgreSQL (SQLite writers are already serial).
        store::catalog::touch_dataset(&mut *tx, &dataset.id, now_ms()).await?;
        // A dataset destroyed while this ingest ran gets no version (GD21 Art.40).
        crate::destruction::refuse_destroyed_dataset(&mut *tx, &dataset.id).await?;
        let next: i64 = sqlx::query(
            "SELECT COALESCE(MAX(version), 0) + 1 AS next FROM dataset_versions WHERE dataset_id = $1",
        )
        .bind(dataset.id.clone())
        .fetch_one(&mut *tx)
        .await?
        .try_get("next")?;
        let certificate_no = format!(
            "PDX-CERT-{}-{}-V{next:04}",
            now.year(),
            dataset.id.as_str().trim_start_matches("ds_").to_uppercase()
        );
        let certificate = AssetCertificate {
            certificate_no: certificate_no.clone(),
            dataset_id: dataset.id.to_string(),
            version: next as u64,
            holder_org: dataset.provider_org.to_string(),
            source_department: dataset.meta.source_department.clone(),
            rows,
            bytes,
            content_hash: Hash32(content_hash),
            schema_hash: Hash32(schema_hash),
            level: dataset.meta.level.as_str(),
            open_attribute: dataset.meta.open_attribute.as_str(),
            deid_summary: report.clone(),
            valid_from: valid_from.clone(),
            valid_until: valid_until.clone(),
        };
        let appended = self.ledger().append(&mut tx, actor, &certificate).await?;
        let content_hash = hex::encode(content_hash);
        let schema_hash = hex::encode(schema_hash);
        let report_json = report.to_string();
        let row = store::versions::NewVersion {
            dataset_id: &dataset.id,
            version: next,
            rows_count: rows as i64,
            bytes: bytes as i64,
            content_hash: &content_hash,
            schema_hash: &schema_hash,
            file_path: &relative,
            report_json: &report_json,
            certificate_no: &certificate_no,
            certificate_seq: appended.seq as i64,
            valid_from: &valid_from,
            valid_until: &valid_until,
            created_ms: now_ms(),
            ingest_job_id: job_id,
        };
        store::versions::insert_version(&mut *tx, &row).await?;
        // The objections the upload named as corrected are linked to this version in
        // the certificate's transaction (SD22 Art.13; XT Art.22).
        crate::quality::record_corrections(
            &mut tx,
            self.ledger(),
            actor,
            job_id,
            &dataset.id,
            next as u64,
            &certificate_no,
            appended.seq,
        )
        .await?;
        tx.commit().await?;
        self.version(&dataset.id, next as u64)
            .await?
            .ok_or_else(|| SandboxError::Internal("version vanished after insert".into()))
    }

    /// Removes a content file that no version row points at (after a failed job).
    async fn discard_unreferenced(&self, file: &Path, content_hash: &str) {
        let referenced =
            sqlx::query("SELECT 1 AS one FROM dataset_versions WHERE content_hash = $1")
                .bind(content_hash.to_string())
                .fetch_optional(self.db().pool())
                .await;
        if let Ok(None) = referenced
            && let Err(e) = std::fs::remove_file(file)
        {
            tracing::warn!(file = %file.display(), error = %e, "could not remove an unreferenced version file");
        }
    }

    /// One version.
    pub async fn version(&self, dataset_id: &DatasetId, version: u64) -> Result<Option<Version>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM dataset_versions WHERE dataset_id = $1 AND version = $2"
        )))
        .bind(dataset_id.clone())
        .bind(version as i64)
        .fetch_optional(self.db().pool())
        .await?;
        let Some(version) = row.as_ref().map(version_from_row).transpose()? else {
            return Ok(None);
        };
        Ok(self.with_domains(vec![version]).await?.pop())
    }

    /// Fills in each version's released domains from its dataset's schema.
    async fn with_domains(&self, mut versions: Vec<Version>) -> Result<Vec<Version>> {
        let Some(first) = versions.first() else {
            return Ok(versions);
        };
        let dataset = self
            .catalog()
            .dataset(&first.dataset_id)
            .await?
            .ok_or_else(|| SandboxError::Internal("a version without its dataset".into()))?;
        let mut tombstones = crate::destruction::tombstones(self.db().pool(), &dataset.id).await?;
        for version in &mut versions {
            version.destroyed = tombstones.remove(&version.version);
            version.released_domains =
                released_domains(&dataset.meta.schema, &report_levels(&version.report));
            version.corrects = self
                .quality()
                .corrected_by(&version.dataset_id, version.version)
                .await?;
        }
        Ok(versions)
    }

    /// Every version of a dataset, oldest first.
    pub async fn versions(&self, dataset_id: &DatasetId) -> Result<Vec<Version>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {VERSION_COLUMNS} FROM dataset_versions WHERE dataset_id = $1 ORDER BY version"
        )))
        .bind(dataset_id.clone())
        .fetch_all(self.db().pool())
        .await?;
        let versions = rows
            .iter()
            .map(version_from_row)
            .collect::<Result<Vec<_>>>()?;
        self.with_domains(versions).await
    }

    /// The certificate of a version, read back from the ledger, with its receipt.
    pub async fn certificate(
        &self,
        dataset_id: &DatasetId,
        version: u64,
    ) -> Result<CertificateWithReceipt> {
        let v = self
            .version(dataset_id, version)
            .await?
            .ok_or_else(|| SandboxError::NotFound("no such version".into()))?;
        let entry = self
            .ledger()
            .entry(v.certificate_seq)
            .await?
            .ok_or_else(|| {
                SandboxError::Internal("certificate entry missing from the ledger".into())
            })?;
        let certificate: AssetCertificate = pdx_ledger::kinds::decode(&entry)
            .ok_or_else(|| SandboxError::Internal("ledger entry is not a certificate".into()))?;
        let receipt = self.ledger().receipt(v.certificate_seq).await?;
        Ok(CertificateWithReceipt {
            certificate,
            receipt,
            corrects: v.corrects,
        })
    }

    /// Absolute path of a version's Parquet file.
    pub(crate) async fn version_file(
        &self,
        dataset_id: &DatasetId,
        version: u64,
    ) -> Result<PathBuf> {
        Ok(self.version_file_rows(dataset_id, version).await?.0)
    }

    /// The de-identified file of a version and its row count.
    pub(crate) async fn version_file_rows(
        &self,
        dataset_id: &DatasetId,
        version: u64,
    ) -> Result<(PathBuf, u64)> {
        // A destroyed version's file is opened by nothing (GD21 Art.40).
        crate::destruction::refuse_destroyed(self.db().pool(), dataset_id, version).await?;
        let row = sqlx::query(
            "SELECT file_path, rows_count FROM dataset_versions WHERE dataset_id = $1 AND version = $2",
        )
        .bind(dataset_id.clone())
        .bind(version as i64)
        .fetch_optional(self.db().pool())
        .await?
        .ok_or_else(|| SandboxError::NotFound("no such version".into()))?;
        let relative: String = row.try_get("file_path")?;
        let rows: i64 = row.try_get("rows_count")?;
        Ok((self.zones().root().join(relative), rows.max(0) as u64))
    }
}
