//! How a provider's data is used (SD22 Art.14), and the record of every download and
//! export (GD18 Art.28: logs retained and traceable; XT Art.34(4): copy and export are
//! recorded).
//!
//! **Every download is a ledger entry.** Each route that lets data or an output leave
//! the platform — a de-identified version's download, a model output's download (its
//! developer's once released, a reviewer's while quarantined), a purchased product's
//! archive and the operator's ledger export — appends one `DataAccess` entry before the
//! bytes go ([`Usage::record_version_download`], [`Usage::record_output_download`],
//! [`Usage::record_product_download`], [`Usage::record_ledger_export`]): who took them
//! (organisation and key), what (the subject's id, the dataset versions it derives
//! from), how much (bytes, and the BLAKE3 of the bytes sent and of the stored source),
//! and under which grant and purpose. One append, one write transaction, per download;
//! if it fails, nothing leaves. The entry is private to its parties: the accessor, the
//! providers of the data and the owner of the output or product (supervisors read every
//! entry). Dummy rows are not recorded: they are generated from the schema with no data
//! input. Encrypted FHE answers are recorded by their `FheQuery` entry, which names the
//! answer ciphertexts' hashes, when they are computed. A department's download of a
//! shared dataset is its `DepartmentShare` access entry ([`crate::sharing`]).
//!
//! **The provider's view** ([`Usage::report`]): per dataset, which grants were filed
//! (applicant, purpose, status), and per version how many model runs read it (by
//! organisation and status), the FHE queries on it, the outputs those runs left (by
//! status) and the releases among them, and the downloads that derive from it (by
//! organisation and kind, with bytes), from the `DataAccess` entries the provider may
//! read and the `access` events of its shares with other departments. Read-only queries over the existing tables and the ledger: no table of its own.
//! The provider sees its own datasets' (another's is "not found"); supervisors and the
//! data authority see every dataset's.

use std::collections::{BTreeMap, BTreeSet};

use pdx_ids::{
    AccessId, DatasetId, GrantId, OrderId, OrgId, OutputId, ProductId, ReleaseId, VersionRef,
};
use pdx_ledger::kinds::{DataAccess, DepartmentShare, decode};
use pdx_ledger::store::Visibility;
use pdx_ledger::{Actor, EntryKind, Hash32};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::catalog::Dataset;
use crate::destruction::Tombstone;
use crate::review::Output;
use crate::runs::cited_versions;
use crate::store::u64_of;
use crate::{Result, SandboxError};

crate::service! {
    /// How a provider's datasets are used, and the record of every download.
    Usage
}

/// Ledger entries read per page when counting downloads.
const PAGE: u32 = 1000;

/// How many of one organisation's items are in one state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tally {
    /// The organisation.
    pub org: String,
    /// The state (a run's `running`, `finished`, `failed` or `cancelled`; an output's
    /// `quarantined`, `released` or `rejected`; an FHE query's `queued`, `running`,
    /// `done` or `failed`).
    pub status: String,
    /// How many.
    pub count: u64,
}

/// The downloads of one organisation of one kind.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DownloadTally {
    /// The organisation that downloaded.
    pub org: String,
    /// `dataset_version`, `output` or `product` (`DataAccess` entries), or
    /// `department_share` (a department's download under a share, its `DepartmentShare`
    /// `access` entry).
    pub what: String,
    /// How many downloads.
    pub count: u64,
    /// Bytes sent, in all.
    pub bytes: u64,
}

/// A grant on the dataset (an open-use agreement or its application).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantUse {
    /// The grant.
    pub grant_id: GrantId,
    /// The applicant.
    pub applicant_org: OrgId,
    /// Its stated purpose.
    pub purpose: String,
    /// `pending`, `approved`, `refused`, `revoked` or `suspended`.
    pub status: String,
    /// Filed, ms since epoch.
    pub applied_ms: i64,
    /// Decided, ms since epoch.
    pub decided_ms: Option<i64>,
    /// Queries run under it (on any version).
    pub queries_used: u64,
}

/// A release of an output that read the version.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleaseUse {
    /// The release.
    pub release_id: ReleaseId,
    /// The output released.
    pub output_id: OutputId,
    /// The developer organisation.
    pub org: OrgId,
    /// When it was released, ms since epoch.
    pub released_ms: Option<i64>,
}

/// How one version was used.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionUse {
    /// The version.
    pub version: u64,
    /// Its data asset certificate.
    pub certificate_no: String,
    /// Its tombstone, once destroyed.
    pub destroyed: Option<Tombstone>,
    /// Model runs that read it, by organisation and status.
    pub runs: Vec<Tally>,
    /// FHE queries on it, by organisation and status.
    pub fhe_queries: Vec<Tally>,
    /// The outputs of those runs, by organisation and status.
    pub outputs: Vec<Tally>,
    /// The releases among them.
    pub releases: Vec<ReleaseUse>,
    /// Downloads that derive from it, by organisation and kind.
    pub downloads: Vec<DownloadTally>,
}

/// How a dataset is used (SD22 Art.14).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageReport {
    /// The dataset.
    pub dataset_id: DatasetId,
    /// Its provider.
    pub provider_org: OrgId,
    /// Its tombstone, once destroyed.
    pub destroyed: Option<Tombstone>,
    /// Its grants, oldest first.
    pub grants: Vec<GrantUse>,
    /// Its versions, oldest first.
    pub versions: Vec<VersionUse>,
}

/// A product download, as the binary describes it from the products crate (which this
/// crate does not depend on).
#[derive(Clone, Debug)]
pub struct ProductAccess<'a> {
    /// The order downloaded.
    pub order_id: &'a OrderId,
    /// Its product.
    pub product_id: &'a ProductId,
    /// The product's developer.
    pub developer_org: &'a OrgId,
    /// The manifest's source datasets: dataset, certificate number of the version read,
    /// and provider.
    pub sources: Vec<(DatasetId, String, OrgId)>,
    /// The archive sent.
    pub body: &'a [u8],
}

/// What left, before it is written as a `DataAccess` entry.
struct NewAccess {
    what: &'static str,
    subject: String,
    release_id: Option<String>,
    product_id: Option<String>,
    dataset_versions: Vec<String>,
    format: String,
    bytes: u64,
    content_hash: Hash32,
    source_hash: Option<Hash32>,
    grant_id: Option<String>,
    purpose: Option<String>,
    ledger_entries: Option<u64>,
    provider_orgs: Vec<String>,
    owner_org: Option<String>,
}

fn hash_of(body: &[u8]) -> Hash32 {
    Hash32(*blake3::hash(body).as_bytes())
}

/// Counts per `(org, status)`, as tallies.
fn tallies(counts: BTreeMap<(String, String), u64>) -> Vec<Tally> {
    counts
        .into_iter()
        .map(|((org, status), count)| Tally { org, status, count })
        .collect()
}

/// What one version collects while the report is built.
#[derive(Default)]
struct Collected {
    runs: BTreeMap<(String, String), u64>,
    fhe: BTreeMap<(String, String), u64>,
    outputs: BTreeMap<(String, String), u64>,
    releases: Vec<ReleaseUse>,
    downloads: BTreeMap<(String, String), (u64, u64)>,
}

impl Usage {
    /// Appends one `DataAccess` entry for `actor`; returns its access id.
    async fn append(&self, actor: &Actor, access: NewAccess) -> Result<AccessId> {
        let id = AccessId::random();
        let mut provider_orgs = access.provider_orgs;
        provider_orgs.sort();
        provider_orgs.dedup();
        let entry = DataAccess {
            access_id: id.to_string(),
            org: actor.org.clone(),
            key_id: actor.key_id.clone(),
            what: access.what.to_string(),
            subject: access.subject,
            release_id: access.release_id,
            product_id: access.product_id,
            dataset_versions: access.dataset_versions,
            format: access.format,
            bytes: access.bytes,
            content_hash: access.content_hash,
            source_hash: access.source_hash,
            grant_id: access.grant_id,
            purpose: access.purpose,
            ledger_entries: access.ledger_entries,
            provider_orgs,
            owner_org: access.owner_org,
        };
        let appended = self.ledger().append_now(actor, &entry).await?;
        tracing::info!(
            access = %id,
            what = access.what,
            org = %actor.org,
            bytes = access.bytes,
            seq = appended.seq,
            "data access recorded"
        );
        Ok(id)
    }

    /// Records the download of version `version` of `dataset` by `actor`, as `format`,
    /// whose bytes are `body` (GD18 Art.28; XT Art.34(4)). Call it after every check
    /// passed and before the bytes leave.
    pub async fn record_version_download(
        &self,
        actor: &Actor,
        dataset: &Dataset,
        version: u64,
        format: &str,
        body: &[u8],
    ) -> Result<AccessId> {
        let stored: Option<String> = sqlx::query(
            "SELECT content_hash FROM dataset_versions WHERE dataset_id = $1 AND version = $2",
        )
        .bind(dataset.id.clone())
        .bind(i64::try_from(version).map_err(|_| SandboxError::NotFound("no such version".into()))?)
        .fetch_optional(self.db().pool())
        .await?
        .map(|row| row.try_get::<String, _>("content_hash"))
        .transpose()?;
        let cited = VersionRef::new(dataset.id.clone(), version).to_string();
        self.append(
            actor,
            NewAccess {
                what: "dataset_version",
                subject: cited.clone(),
                release_id: None,
                product_id: None,
                dataset_versions: vec![cited],
                format: format.to_string(),
                bytes: body.len() as u64,
                content_hash: hash_of(body),
                source_hash: stored.as_deref().and_then(|h| Hash32::from_hex(h).ok()),
                grant_id: None,
                purpose: None,
                ledger_entries: None,
                provider_orgs: vec![dataset.provider_org.to_string()],
                owner_org: None,
            },
        )
        .await
    }

    /// Records the download of `output` by `actor` (its developer once released, or a
    /// reviewer while quarantined), as `format`, whose bytes are `body`: the dataset
    /// versions its run read, their providers, and the grant and purpose it ran under.
    pub async fn record_output_download(
        &self,
        actor: &Actor,
        output: &Output,
        format: &str,
        body: &[u8],
    ) -> Result<AccessId> {
        let row = sqlx::query(
            "SELECT r.dataset_versions, r.grant_id, g.purpose FROM model_runs r \
             LEFT JOIN grants g ON g.id = r.grant_id WHERE r.job_id = $1",
        )
        .bind(output.job_id.clone())
        .fetch_optional(self.db().pool())
        .await?
        .ok_or_else(|| SandboxError::Internal("an output without its run".into()))?;
        let cited = cited_versions(&row.try_get::<String, _>("dataset_versions")?)?;
        let grant_id: Option<String> = row.try_get("grant_id")?;
        let purpose: Option<String> = row.try_get("purpose")?;
        let datasets: BTreeSet<&DatasetId> = cited.iter().map(|c| &c.dataset).collect();
        let mut provider_orgs = Vec::with_capacity(datasets.len());
        for id in datasets {
            let provider: Option<String> =
                sqlx::query("SELECT provider_org FROM datasets WHERE id = $1")
                    .bind(id.clone())
                    .fetch_optional(self.db().pool())
                    .await?
                    .map(|row| row.try_get::<String, _>("provider_org"))
                    .transpose()?;
            provider_orgs.extend(provider);
        }
        self.append(
            actor,
            NewAccess {
                what: "output",
                subject: output.id.to_string(),
                release_id: output.release_id.as_ref().map(ToString::to_string),
                product_id: None,
                dataset_versions: cited.iter().map(ToString::to_string).collect(),
                format: format.to_string(),
                bytes: body.len() as u64,
                content_hash: hash_of(body),
                source_hash: Hash32::from_hex(&output.output_hash).ok(),
                grant_id,
                purpose,
                ledger_entries: None,
                provider_orgs,
                owner_org: Some(output.org_id.to_string()),
            },
        )
        .await
    }

    /// Records the download of a purchased product's archive by its buyer (`actor`):
    /// the dataset versions its manifest names (by certificate), their providers, and
    /// the product's developer.
    pub async fn record_product_download(
        &self,
        actor: &Actor,
        product: &ProductAccess<'_>,
    ) -> Result<AccessId> {
        let mut versions = BTreeSet::new();
        for (_, certificate_no, _) in &product.sources {
            let row = sqlx::query(
                "SELECT dataset_id, version FROM dataset_versions WHERE certificate_no = $1",
            )
            .bind(certificate_no.clone())
            .fetch_optional(self.db().pool())
            .await?;
            if let Some(row) = row {
                let dataset: DatasetId = row.try_get("dataset_id")?;
                let version = u64_of(row.try_get::<i64, _>("version")?);
                versions.insert(VersionRef::new(dataset, version).to_string());
            }
        }
        self.append(
            actor,
            NewAccess {
                what: "product",
                subject: product.order_id.to_string(),
                release_id: None,
                product_id: Some(product.product_id.to_string()),
                dataset_versions: versions.into_iter().collect(),
                format: "tar".into(),
                bytes: product.body.len() as u64,
                content_hash: hash_of(product.body),
                source_hash: None,
                grant_id: None,
                purpose: None,
                ledger_entries: None,
                provider_orgs: product
                    .sources
                    .iter()
                    .map(|(_, _, org)| org.to_string())
                    .collect(),
                owner_org: Some(product.developer_org.to_string()),
            },
        )
        .await
    }

    /// Records an export of the ledger by the operator's command line (`actor`):
    /// `entries` entries, `bytes` bytes whose BLAKE3 is `content_hash`.
    pub async fn record_ledger_export(
        &self,
        actor: &Actor,
        entries: u64,
        bytes: u64,
        content_hash: [u8; 32],
    ) -> Result<AccessId> {
        self.append(
            actor,
            NewAccess {
                what: "ledger_export",
                subject: "ledger".into(),
                release_id: None,
                product_id: None,
                dataset_versions: Vec::new(),
                format: "jsonl".into(),
                bytes,
                content_hash: Hash32(content_hash),
                source_hash: None,
                grant_id: None,
                purpose: None,
                ledger_entries: Some(entries),
                provider_orgs: Vec::new(),
                owner_org: None,
            },
        )
        .await
    }

    /// How dataset `dataset_id` is used (SD22 Art.14): its grants, and per version the
    /// runs, FHE queries, outputs, releases and downloads. `provider_org` is `Some` for a
    /// provider, who sees only its own datasets (another's is "not found"); `None` for
    /// supervisors and the data authority.
    pub async fn report(
        &self,
        dataset_id: &DatasetId,
        provider_org: Option<&OrgId>,
    ) -> Result<UsageReport> {
        let dataset = self
            .catalog()
            .dataset_for_provider(dataset_id, provider_org)
            .await?;
        let versions = self.versions().versions(&dataset.id).await?;
        let mut collected: BTreeMap<u64, Collected> = versions
            .iter()
            .map(|v| (v.version, Collected::default()))
            .collect();

        let grants = sqlx::query(
            "SELECT id, applicant_org, purpose, status, applied_ms, decided_ms, queries_used \
             FROM grants WHERE dataset_id = $1 ORDER BY applied_ms, id",
        )
        .bind(dataset.id.clone())
        .fetch_all(self.db().pool())
        .await?
        .iter()
        .map(|row| -> Result<GrantUse> {
            Ok(GrantUse {
                grant_id: row.try_get("id")?,
                applicant_org: row.try_get("applicant_org")?,
                purpose: row.try_get("purpose")?,
                status: row.try_get("status")?,
                applied_ms: row.try_get("applied_ms")?,
                decided_ms: row.try_get("decided_ms")?,
                queries_used: u64_of(row.try_get::<i64, _>("queries_used")?),
            })
        })
        .collect::<Result<Vec<_>>>()?;

        // The run rows name their versions as `dataset@version` in a JSON list; the LIKE
        // narrows the scan and the parsed list decides.
        let runs = sqlx::query(
            "SELECT r.org_id, r.status, r.dataset_versions, o.id AS output_id, \
             o.status AS output_status, o.release_id, o.decided_ms AS output_decided_ms \
             FROM model_runs r LEFT JOIN outputs o ON o.job_id = r.job_id \
             WHERE r.dataset_versions LIKE $1 ORDER BY r.created_ms, r.job_id",
        )
        .bind(format!("%\"{}@%", dataset.id.as_str()))
        .fetch_all(self.db().pool())
        .await?;
        for row in &runs {
            let cited = cited_versions(&row.try_get::<String, _>("dataset_versions")?)?;
            let read: BTreeSet<u64> = cited
                .iter()
                .filter(|c| c.dataset == dataset.id)
                .map(|c| c.version)
                .collect();
            let org: OrgId = row.try_get("org_id")?;
            let status: String = row.try_get("status")?;
            let output_id: Option<OutputId> = row.try_get("output_id")?;
            let output_status: Option<String> = row.try_get("output_status")?;
            let release_id: Option<ReleaseId> = row.try_get("release_id")?;
            let decided_ms: Option<i64> = row.try_get("output_decided_ms")?;
            for n in read {
                let Some(c) = collected.get_mut(&n) else {
                    continue;
                };
                *c.runs.entry((org.to_string(), status.clone())).or_default() += 1;
                if let Some(s) = &output_status {
                    *c.outputs.entry((org.to_string(), s.clone())).or_default() += 1;
                }
                if let (Some(release_id), Some(output_id)) = (&release_id, &output_id) {
                    c.releases.push(ReleaseUse {
                        release_id: release_id.clone(),
                        output_id: output_id.clone(),
                        org: org.clone(),
                        released_ms: decided_ms,
                    });
                }
            }
        }

        let lookups = sqlx::query(
            "SELECT org_id, status, version, COUNT(*) AS n FROM fhe_queries \
             WHERE dataset_id = $1 GROUP BY org_id, status, version",
        )
        .bind(dataset.id.clone())
        .fetch_all(self.db().pool())
        .await?;
        for row in &lookups {
            let version = u64_of(row.try_get::<i64, _>("version")?);
            if let Some(c) = collected.get_mut(&version) {
                let key = (
                    row.try_get::<String, _>("org_id")?,
                    row.try_get::<String, _>("status")?,
                );
                *c.fhe.entry(key).or_default() += u64_of(row.try_get::<i64, _>("n")?);
            }
        }

        // Every download of this dataset's data names its provider as a party, so the
        // entries the provider may read are all there is to count.
        let who = Visibility::Org(dataset.provider_org.to_string());
        let mut from = 0u64;
        loop {
            let page = self
                .ledger()
                .entries_filtered(from, PAGE, &who, Some(&EntryKind::DataAccess))
                .await?;
            for entry in &page {
                let Some(access) = decode::<DataAccess>(entry) else {
                    continue;
                };
                let read: BTreeSet<u64> = access
                    .dataset_versions
                    .iter()
                    .filter_map(|v| v.parse::<VersionRef>().ok())
                    .filter(|v| v.dataset == dataset.id)
                    .map(|v| v.version)
                    .collect();
                for n in read {
                    if let Some(c) = collected.get_mut(&n) {
                        let tally = c
                            .downloads
                            .entry((access.org.clone(), access.what.clone()))
                            .or_default();
                        tally.0 += 1;
                        tally.1 += access.bytes;
                    }
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => from = last.seq + 1,
                _ => break,
            }
        }
        // A department's download under a share is its `DepartmentShare` `access` entry
        // (`crate::sharing`), of which the owning provider is a party.
        let mut from = 0u64;
        loop {
            let page = self
                .ledger()
                .entries_filtered(from, PAGE, &who, Some(&EntryKind::DepartmentShare))
                .await?;
            for entry in &page {
                let Some(share) = decode::<DepartmentShare>(entry) else {
                    continue;
                };
                if share.event != "access" || share.dataset_id != dataset.id.as_str() {
                    continue;
                }
                let Some(n) = share.version else {
                    continue;
                };
                let Some(c) = collected.get_mut(&n) else {
                    continue;
                };
                let tally = c
                    .downloads
                    .entry((share.requester_org.clone(), "department_share".to_string()))
                    .or_default();
                tally.0 += 1;
                tally.1 += share.bytes.unwrap_or(0);
            }
            match page.last() {
                Some(last) if page.len() == PAGE as usize => from = last.seq + 1,
                _ => break,
            }
        }

        let versions = versions
            .into_iter()
            .map(|v| {
                let c = collected.remove(&v.version).unwrap_or_default();
                VersionUse {
                    version: v.version,
                    certificate_no: v.certificate_no,
                    destroyed: v.destroyed,
                    runs: tallies(c.runs),
                    fhe_queries: tallies(c.fhe),
                    outputs: tallies(c.outputs),
                    releases: c.releases,
                    downloads: c
                        .downloads
                        .into_iter()
                        .map(|((org, what), (count, bytes))| DownloadTally {
                            org,
                            what,
                            count,
                            bytes,
                        })
                        .collect(),
                }
            })
            .collect();
        Ok(UsageReport {
            dataset_id: dataset.id.clone(),
            provider_org: dataset.provider_org.clone(),
            destroyed: dataset.destroyed.clone(),
            grants,
            versions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tallies_keep_org_and_status_apart() {
        let mut counts = BTreeMap::new();
        *counts
            .entry(("org-a".to_string(), "finished".to_string()))
            .or_default() += 2;
        *counts
            .entry(("org-b".to_string(), "finished".to_string()))
            .or_default() += 1;
        let t = tallies(counts);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].org, "org-a");
        assert_eq!(t[0].count, 2);
        assert_eq!(t[1].count, 1);
    }

    #[test]
    fn hashes_are_blake3_of_the_bytes_sent() {
        assert_eq!(
            hash_of(b"abc").to_hex(),
            blake3::hash(b"abc").to_hex().as_str()
        );
    }
}
