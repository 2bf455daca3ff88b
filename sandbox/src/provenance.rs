//! Provenance of released outputs: what a data product built on them must disclose.
//!
//! A developer packages its own released outputs as a data product, and the product's
//! provenance manifest (SD22 Art.15) names, per release, the output and model hashes
//! and the reviewers who approved it, and per source dataset version its title, source
//! department, certificate number, content hash and acquisition date. Licence terms
//! propagate too: a release whose grant or any source dataset is research-only may only
//! be sold under a non-commercial licence, and the kind of the grant's purpose decides
//! the licences a product may carry ([`crate::grant_terms`]; GD21 Art.26).
//!
//! [`Provenance::release_provenance`] reads all of that from the sandbox's own tables,
//! for a [`ReleaseRef`]: a release id or the released output's id.
//! This crate does not depend on `pdx-products`; the binary converts the plain
//! [`ReleaseProvenance`] into the products crate's type.

use std::path::PathBuf;

use pdx_ids::{
    DatasetId, GrantId, JobId, KeyId, ModelId, OrgId, OutputId, ReleaseId, ReleaseRef, VersionRef,
};
use serde::Serialize;
use sqlx::Row;
use time::OffsetDateTime;

use crate::{Result, SandboxError};

crate::service! {
    /// Where a released output came from.
    Provenance
}

/// One certified dataset version a released output was computed from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SourceVersion {
    /// Dataset id.
    pub dataset_id: DatasetId,
    /// Version number.
    pub version: u64,
    /// Dataset title.
    pub title: String,
    /// The legally designated source department.
    pub source_department: String,
    /// Providing organisation.
    pub provider_org: OrgId,
    /// Data asset certificate number of the version.
    pub certificate_no: String,
    /// BLAKE3 of the de-identified version, hex.
    pub content_hash: String,
    /// Acquisition date: the UTC day the version was certified, `YYYY-MM-DD`.
    pub acquired: String,
    /// True if the dataset is research-only.
    pub research_only: bool,
}

/// Everything a data product must disclose about one released output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReleaseProvenance {
    /// Release id.
    pub release_id: ReleaseId,
    /// Output id.
    pub output_id: OutputId,
    /// Developer organisation that owns the output.
    pub developer_org: OrgId,
    /// BLAKE3 of the released Parquet file, hex.
    pub output_hash: String,
    /// The released Parquet file (server-side only).
    #[serde(skip)]
    pub output_path: PathBuf,
    /// BLAKE3 of the model that produced it, hex.
    pub model_hash: String,
    /// Key ids of the reviewers who approved it (empty for an automatic DP release).
    pub reviewers: Vec<KeyId>,
    /// The grant the run used, if the data was conditionally open.
    pub grant_id: Option<GrantId>,
    /// True if that grant is research-only.
    pub research_only_grant: bool,
    /// The kind of that grant's purpose (`research`, `public_interest`, `commercial`;
    /// [`crate::grant_terms::PurposeKind`]), which decides the licences a product built
    /// on the release may carry; None without a grant.
    pub grant_purpose: Option<String>,
    /// The dataset versions the run read, in the order cited.
    pub datasets: Vec<SourceVersion>,
}

/// `YYYY-MM-DD` (UTC) of a timestamp in ms.
fn utc_day(ms: i64) -> Result<String> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|_| SandboxError::Internal("stored timestamp out of range".into()))?;
    let d = t.date();
    Ok(format!(
        "{:04}-{:02}-{:02}",
        d.year(),
        u8::from(d.month()),
        d.day()
    ))
}

/// Parses a cited `dataset_id@version` from a run's row (ours: malformed is internal).
fn parse_cited(cited: &str) -> Result<VersionRef> {
    cited
        .parse()
        .map_err(|_| SandboxError::Internal("a run cites a malformed dataset version".into()))
}

impl Provenance {
    /// The provenance of a released output, named by its release or its output, for the
    /// developer organisation packaging it.
    ///
    /// Unknown ids are `NotFound`; another organisation's output is `Forbidden` (a
    /// developer packages only its own releases); an output that was not released
    /// (quarantined or rejected) is a `Conflict`.
    pub async fn release_provenance(
        &self,
        subject: &ReleaseRef,
        developer_org: &OrgId,
    ) -> Result<ReleaseProvenance> {
        // One of the two is bound; the other is NULL and matches nothing.
        let (by_release, by_output) = match subject {
            ReleaseRef::Release(r) => (Some(r.clone()), None),
            ReleaseRef::Output(o) => (None, Some(o.clone())),
        };
        let row = sqlx::query(
            "SELECT id, job_id, org_id, model_id, file_path, output_hash, status, release_id \
             FROM outputs WHERE release_id = $1 OR id = $2",
        )
        .bind(by_release)
        .bind(by_output)
        .fetch_optional(self.db().pool())
        .await?
        .ok_or_else(|| SandboxError::NotFound(format!("no release {subject}")))?;
        let org: OrgId = row.try_get("org_id")?;
        if org != *developer_org {
            return Err(SandboxError::Forbidden(format!(
                "release {subject} belongs to another developer organisation; a product can only \
                 package the developer's own releases"
            )));
        }
        let status: String = row.try_get("status")?;
        let release_id: Option<ReleaseId> = row.try_get("release_id")?;
        let release_id = match (status.as_str(), release_id) {
            ("released", Some(r)) => r,
            ("released", None) => {
                return Err(SandboxError::Internal(
                    "a released output without a release id".into(),
                ));
            }
            (other, _) => {
                return Err(SandboxError::Conflict(format!(
                    "output {subject} is {other}, not released; only released outputs can be packaged"
                )));
            }
        };
        let output_id: OutputId = row.try_get("id")?;
        let job_id: JobId = row.try_get("job_id")?;
        let model_id: ModelId = row.try_get("model_id")?;
        let file_path: String = row.try_get("file_path")?;
        let output_hash: String = row.try_get("output_hash")?;

        let model_hash: String = sqlx::query("SELECT model_hash FROM models WHERE id = $1")
            .bind(model_id)
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| SandboxError::Internal("a released output without its model".into()))?
            .try_get("model_hash")?;
        let reviewers = sqlx::query(
            "SELECT reviewer_key FROM output_reviews WHERE output_id = $1 AND decision = 'approve' \
             ORDER BY created_ms, reviewer_key",
        )
        .bind(output_id.clone())
        .fetch_all(self.db().pool())
        .await?
        .iter()
        .map(|r| r.try_get::<KeyId, _>("reviewer_key"))
        .collect::<std::result::Result<Vec<_>, _>>()?;

        let run =
            sqlx::query("SELECT grant_id, dataset_versions FROM model_runs WHERE job_id = $1")
                .bind(job_id)
                .fetch_optional(self.db().pool())
                .await?
                .ok_or_else(|| {
                    SandboxError::Internal("a released output without its run".into())
                })?;
        let grant_id: Option<GrantId> = run.try_get("grant_id")?;
        let cited_text: String = run.try_get("dataset_versions")?;
        let cited: Vec<String> = serde_json::from_str(&cited_text)
            .map_err(|e| SandboxError::Internal(format!("run versions: {e}")))?;
        let (research_only_grant, grant_purpose) = match &grant_id {
            None => (false, None),
            Some(g) => {
                let row =
                    sqlx::query("SELECT research_only, purpose_kind FROM grants WHERE id = $1")
                        .bind(g.clone())
                        .fetch_optional(self.db().pool())
                        .await?
                        .ok_or_else(|| SandboxError::Internal("a run without its grant".into()))?;
                let flag: i64 = row.try_get("research_only")?;
                let kind: String = row.try_get("purpose_kind")?;
                (flag != 0, Some(kind))
            }
        };

        let mut datasets = Vec::with_capacity(cited.len());
        for c in &cited {
            let VersionRef {
                dataset: dataset_id,
                version,
            } = parse_cited(c)?;
            let version_i64 = i64::try_from(version)
                .map_err(|_| SandboxError::Internal("version out of range".into()))?;
            let d = sqlx::query(
                "SELECT d.title, d.source_department, d.provider_org, d.research_only, \
                 v.certificate_no, v.content_hash, v.created_ms \
                 FROM datasets d JOIN dataset_versions v ON v.dataset_id = d.id \
                 WHERE d.id = $1 AND v.version = $2",
            )
            .bind(dataset_id.clone())
            .bind(version_i64)
            .fetch_optional(self.db().pool())
            .await?
            .ok_or_else(|| {
                SandboxError::Internal("a run cites a dataset version that does not exist".into())
            })?;
            datasets.push(SourceVersion {
                dataset_id,
                version,
                title: d.try_get("title")?,
                source_department: d.try_get("source_department")?,
                provider_org: d.try_get("provider_org")?,
                certificate_no: d.try_get("certificate_no")?,
                content_hash: d.try_get("content_hash")?,
                acquired: utc_day(d.try_get("created_ms")?)?,
                research_only: d.try_get::<i64, _>("research_only")? != 0,
            });
        }

        Ok(ReleaseProvenance {
            release_id,
            output_id,
            developer_org: org,
            output_hash,
            output_path: self.zones().root().join(file_path),
            model_hash,
            reviewers,
            grant_id,
            research_only_grant,
            grant_purpose,
            datasets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cited_versions_and_days_parse() {
        let ds_ab = DatasetId::parse("ds_ab").unwrap();
        assert_eq!(parse_cited("ds_ab@12").unwrap(), VersionRef::new(ds_ab, 12));
        assert!(parse_cited("ds_ab").is_err());
        assert!(parse_cited("ds_ab@x").is_err());
        // 2026-11-05T10:00:00Z
        assert_eq!(utc_day(1_793_872_800_000).unwrap(), "2026-11-05");
    }
}
