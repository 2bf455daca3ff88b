//! Lineage of a released output, for supervisors: release → job → model → dataset
//! versions → certificates → provider and source department.
//!
//! Every hop that the ledger records carries its seq and an offline receipt (entry +
//! inclusion proof + signed checkpoint), so a supervisor can check each one on their
//! own machine with nothing but the public key. The server also compares each ledger
//! payload with the row it stands for (the release's output, job, model hash and
//! dataset versions; the model registration's hash; the certificate's dataset,
//! version, number and content hash; the grant decision) and lists every mismatch in
//! `problems`: an empty list means the tables and the ledger tell the same story.
//!
//! The binary adds the product hop on top (the products crate owns products) and the
//! provider organisation's name and region (accounts are the binary's).

use pdx_ids::{DatasetId, GrantId, JobId, KeyId, ModelId, OrgId, OutputId, ReleaseId, VersionRef};
use pdx_ledger::kinds::{
    AssetCertificate, GrantDecision, LedgerPayload, ModelRegistration, PrivacySpend, Release,
    decode,
};
use pdx_ledger::{EntryKind, Ledger, LedgerError, Receipt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::store::opt_u64;
use crate::{Result, SandboxError};

crate::service! {
    /// Release lineage with a receipt per hop.
    Lineage
}

/// One ledger entry on the path, with its receipt.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerHop {
    /// Ledger seq.
    pub seq: u64,
    /// Entry kind.
    pub kind: String,
    /// Offline receipt: check it with `pdx ledger verify-receipt`.
    pub receipt: Receipt,
}

/// The job that produced a released output.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JobLineage {
    /// Job id.
    pub job_id: JobId,
    /// Final job status.
    pub status: String,
    /// Started, ms since epoch.
    pub created_ms: i64,
    /// The grant it ran under (conditional data).
    pub grant_id: Option<GrantId>,
    /// The grant's `GrantDecision` entry.
    pub grant_decision: Option<LedgerHop>,
    /// `PrivacySpend` entries of the job (DP runs).
    pub privacy_spends: Vec<LedgerHop>,
}

/// The model a job ran.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ModelLineage {
    /// Model id.
    pub model_id: ModelId,
    /// Model kind.
    pub kind: String,
    /// BLAKE3 model hash, hex.
    pub model_hash: String,
    /// The `ModelRegistration` entry.
    pub registration: Option<LedgerHop>,
}

/// A dataset version read by the job, with its certificate and provider.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionLineage {
    /// Dataset id.
    pub dataset_id: DatasetId,
    /// Version.
    pub version: u64,
    /// Dataset title.
    pub title: String,
    /// BLAKE3 of the de-identified version, hex.
    pub content_hash: String,
    /// Data asset certificate number.
    pub certificate_no: String,
    /// Certificate validity end (RFC 3339).
    pub valid_until: String,
    /// Providing organisation (certificate holder).
    pub provider_org: OrgId,
    /// The legally designated source department.
    pub source_department: String,
    /// The `AssetCertificate` entry.
    pub certificate: Option<LedgerHop>,
}

/// The lineage of one release.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseLineage {
    /// Release id.
    pub release_id: ReleaseId,
    /// Output id.
    pub output_id: OutputId,
    /// Developer organisation.
    pub developer_org: OrgId,
    /// BLAKE3 of the released output, hex.
    pub output_hash: String,
    /// Approving reviewer keys.
    pub reviewers: Vec<KeyId>,
    /// The `Release` entry.
    pub release: Option<LedgerHop>,
    /// The job.
    pub job: JobLineage,
    /// The model.
    pub model: ModelLineage,
    /// The dataset versions read.
    pub datasets: Vec<VersionLineage>,
    /// Every disagreement between a row and its ledger entry, or a missing hop.
    pub problems: Vec<String>,
}

/// The ledger hop at `seq`, whose entry must be of `T`'s kind: the hop and the typed
/// payload, or `None` with the reason added to `problems`. `what` names the hop in
/// that reason.
pub async fn ledger_hop<T: LedgerPayload + DeserializeOwned>(
    ledger: &Ledger,
    seq: u64,
    what: &str,
    problems: &mut Vec<String>,
) -> std::result::Result<Option<(LedgerHop, T)>, LedgerError> {
    let receipt = match ledger.receipt(seq).await {
        Ok(r) => r,
        Err(LedgerError::OutOfRange(_)) => {
            problems.push(format!("{what}: ledger entry {seq} does not exist"));
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let Some(payload) = decode::<T>(&receipt.entry) else {
        problems.push(format!(
            "{what}: ledger entry {seq} is a {}, not a {}",
            receipt.entry.kind,
            T::KIND
        ));
        return Ok(None);
    };
    let hop = LedgerHop {
        seq,
        kind: receipt.entry.kind.to_string(),
        receipt,
    };
    Ok(Some((hop, payload)))
}

impl Lineage {
    /// The lineage of a release, by release id.
    pub async fn release_lineage(&self, release_id: &ReleaseId) -> Result<ReleaseLineage> {
        let row = sqlx::query(
            "SELECT id, job_id, org_id, model_id, output_hash, release_seq FROM outputs \
             WHERE release_id = $1 AND status = 'released'",
        )
        .bind(release_id.clone())
        .fetch_optional(self.db().pool())
        .await?
        .ok_or_else(|| SandboxError::NotFound(format!("no release {release_id}")))?;
        let output_id: OutputId = row.try_get("id")?;
        let job_id: JobId = row.try_get("job_id")?;
        let developer_org: OrgId = row.try_get("org_id")?;
        let model_id: ModelId = row.try_get("model_id")?;
        let output_hash: String = row.try_get("output_hash")?;
        let mut problems = Vec::new();

        let reviewers: Vec<KeyId> = sqlx::query(
            "SELECT reviewer_key FROM output_reviews WHERE output_id = $1 AND decision = 'approve' \
             ORDER BY created_ms, reviewer_key",
        )
        .bind(output_id.clone())
        .fetch_all(self.db().pool())
        .await?
        .iter()
        .map(|r| r.try_get::<KeyId, _>("reviewer_key"))
        .collect::<std::result::Result<_, _>>()?;

        let run = sqlx::query(
            "SELECT r.grant_id, r.dataset_versions, j.status, j.created_ms FROM model_runs r \
             JOIN jobs j ON j.id = r.job_id WHERE r.job_id = $1",
        )
        .bind(job_id.clone())
        .fetch_optional(self.db().pool())
        .await?
        .ok_or_else(|| SandboxError::Internal("a released output without its run".into()))?;
        let grant_id: Option<GrantId> = run.try_get("grant_id")?;
        let cited: Vec<String> =
            serde_json::from_str(&run.try_get::<String, _>("dataset_versions")?)
                .map_err(|e| SandboxError::Internal(format!("run versions: {e}")))?;
        let model = self.models().model_any(&model_id).await?;

        // The release.
        let release = match opt_u64(&row, "release_seq")? {
            None => {
                problems.push("release: no ledger seq recorded".into());
                None
            }
            Some(seq) => {
                match ledger_hop::<Release>(self.ledger(), seq, "release", &mut problems).await? {
                    None => None,
                    Some((hop, entry)) => {
                        let mut check = |field: &str, ok: bool| {
                            if !ok {
                                problems.push(format!(
                                    "release: the ledger's {field} differs from the row"
                                ));
                            }
                        };
                        check("release id", entry.release_id == release_id.as_str());
                        check("job", entry.job_id == job_id.as_str());
                        check("developer", entry.developer_org == developer_org.as_str());
                        check("output hash", entry.output_hash.to_hex() == output_hash);
                        check("model hash", entry.model_hash.to_hex() == model.model_hash);
                        check("dataset versions", entry.dataset_versions == cited);
                        check("reviewers", reviewers.iter().eq(&entry.reviewers));
                        Some(hop)
                    }
                }
            }
        };

        // The grant decision and the privacy spends.
        let grant_decision = match &grant_id {
            None => None,
            Some(gid) => {
                let seq = sqlx::query("SELECT decision_seq FROM grants WHERE id = $1")
                    .bind(gid.clone())
                    .fetch_optional(self.db().pool())
                    .await?
                    .map(|r| opt_u64(&r, "decision_seq"))
                    .transpose()?
                    .flatten();
                match seq {
                    None => {
                        problems.push(format!("grant {gid}: no decision on the ledger"));
                        None
                    }
                    Some(seq) => match ledger_hop::<GrantDecision>(
                        self.ledger(),
                        seq,
                        "grant decision",
                        &mut problems,
                    )
                    .await?
                    {
                        Some((hop, entry)) => {
                            if entry.grant_id != gid.as_str()
                                || entry.applicant_org != developer_org.as_str()
                            {
                                problems.push(
                                    "grant decision: the ledger names another grant or applicant"
                                        .into(),
                                );
                            }
                            Some(hop)
                        }
                        None => None,
                    },
                }
            }
        };
        let privacy_spends = self.spends_of_job(&job_id).await?;

        // The model.
        let registration = match ledger_hop::<ModelRegistration>(
            self.ledger(),
            model.registration_seq,
            "model",
            &mut problems,
        )
        .await?
        {
            Some((hop, entry)) => {
                if entry.model_id != model.id.as_str()
                    || entry.model_hash.to_hex() != model.model_hash
                {
                    problems
                        .push("model: the ledger's model id or hash differs from the row".into());
                }
                Some(hop)
            }
            None => None,
        };

        // The dataset versions, their certificates and providers.
        let mut datasets = Vec::with_capacity(cited.len());
        for c in &cited {
            let Ok(VersionRef {
                dataset: dataset_id,
                version,
            }) = c.parse::<VersionRef>()
            else {
                problems.push(format!("run cites a malformed dataset version {c:?}"));
                continue;
            };
            let (Some(dataset), Some(v)) = (
                self.catalog().dataset(&dataset_id).await?,
                self.versions().version(&dataset_id, version).await?,
            ) else {
                problems.push(format!("dataset version {c} is not in the catalog"));
                continue;
            };
            let certificate = match ledger_hop::<AssetCertificate>(
                self.ledger(),
                v.certificate_seq,
                "certificate",
                &mut problems,
            )
            .await?
            {
                Some((hop, cert)) => {
                    let agrees = cert.dataset_id == dataset_id.as_str()
                        && cert.version == version
                        && cert.certificate_no == v.certificate_no
                        && cert.content_hash.to_hex() == v.content_hash
                        && cert.holder_org == dataset.provider_org.as_str();
                    if !agrees {
                        problems.push(format!(
                            "certificate of {c}: the ledger differs from the catalog"
                        ));
                    }
                    Some(hop)
                }
                None => None,
            };
            datasets.push(VersionLineage {
                dataset_id,
                version,
                title: dataset.meta.title.clone(),
                content_hash: v.content_hash,
                certificate_no: v.certificate_no,
                valid_until: v.valid_until,
                provider_org: dataset.provider_org.clone(),
                source_department: dataset.meta.source_department.clone(),
                certificate,
            });
        }

        Ok(ReleaseLineage {
            release_id: release_id.clone(),
            output_id,
            developer_org,
            output_hash,
            reviewers,
            release,
            job: JobLineage {
                job_id,
                status: run.try_get("status")?,
                created_ms: run.try_get("created_ms")?,
                grant_id,
                grant_decision,
                privacy_spends,
            },
            model: ModelLineage {
                model_id: model.id,
                kind: model.kind.as_str().to_string(),
                model_hash: model.model_hash,
                registration,
            },
            datasets,
            problems,
        })
    }

    /// The `PrivacySpend` entries of one job, with receipts.
    async fn spends_of_job(&self, job_id: &JobId) -> Result<Vec<LedgerHop>> {
        const PAGE: u32 = 1000;
        let mut seqs = Vec::new();
        let mut from = 0u64;
        loop {
            let page = self
                .ledger()
                .entries_of_kind(&EntryKind::PrivacySpend, from, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            from = last.seq + 1;
            seqs.extend(
                page.iter()
                    .filter(|e| {
                        decode::<PrivacySpend>(e).is_some_and(|s| s.job_id == job_id.as_str())
                    })
                    .map(|e| e.seq),
            );
            if page.len() < PAGE as usize {
                break;
            }
        }
        let mut hops = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let receipt = self.ledger().receipt(seq).await?;
            hops.push(LedgerHop {
                seq,
                kind: receipt.entry.kind.to_string(),
                receipt,
            });
        }
        Ok(hops)
    }
}

#[cfg(test)]
mod tests {
    use pdx_ids::{DatasetId, VersionRef};

    #[test]
    fn cited_versions_parse_as_version_refs() {
        let ds_1 = DatasetId::parse("ds_1").unwrap();
        assert_eq!(
            "ds_1@3".parse::<VersionRef>().ok(),
            Some(VersionRef::new(ds_1, 3))
        );
        // A dataset id holds no `@`, so a second one makes the citation malformed.
        assert_eq!("a@b@12".parse::<VersionRef>().ok(), None);
        assert_eq!("ds_1".parse::<VersionRef>().ok(), None);
        assert_eq!("ds_1@x".parse::<VersionRef>().ok(), None);
    }
}
