//! What left the sandbox, per dataset version and developer organisation: the one view
//! a supervisor or the dataset's provider reads to see how its data was used and what
//! the automatic checks held back (traceable use, GD18 Art.28; recorded exports, XT
//! Art.34(4); the provider sees how its data is used, SD22 Art.14).
//!
//! It is computed from the runs (`model_runs`: the versions each read, the ε and δ each
//! spent) and their outputs (`outputs`: status and check report), so it always agrees
//! with them. Counts per organisation and version:
//! - runs, and outputs by status (quarantined, released, rejected), and runs that
//!   failed on the data after admission (their empty outputs are rejected in review);
//! - values released (non-NULL aggregate values of released SQL outputs, and the cells
//!   of released DP outputs), and values withheld by each rule (`threshold`,
//!   `dominance`, `differencing`, `secondary`) plus cells removed whole by the threshold, over every
//!   output (a value withheld before release never leaves);
//! - the ε and δ spent by DP runs.
//!
//! A run that reads several datasets counts for each of them.

use std::collections::BTreeMap;

use pdx_ids::{DatasetId, OrgId, VersionRef};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{Result, SandboxError};

crate::service! {
    /// What left each dataset version, by rule and organisation.
    DisclosureAudit
}

/// The disclosure record of one dataset.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DisclosureReport {
    /// The dataset.
    pub dataset_id: DatasetId,
    /// One entry per version that any run read, oldest first.
    pub versions: Vec<VersionDisclosure>,
}

/// What left from one dataset version.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VersionDisclosure {
    /// The version number.
    pub version: u64,
    /// Per developer organisation, by organisation id.
    pub organisations: Vec<OrgDisclosure>,
}

/// What one organisation's runs took from one version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrgDisclosure {
    /// The developer organisation.
    pub org_id: OrgId,
    /// Model runs that read the version.
    pub runs: u64,
    /// Outputs waiting for review.
    pub outputs_quarantined: u64,
    /// Outputs released.
    pub outputs_released: u64,
    /// Outputs rejected by reviewers.
    pub outputs_rejected: u64,
    /// Runs on conditional data that failed on the data after admission.
    pub runs_failed_after_admission: u64,
    /// Values that left: non-NULL aggregate values of released SQL outputs and cells of
    /// released DP outputs.
    pub values_released: u64,
    /// Values set to NULL, by rule (`threshold`, `dominance`, `differencing`, `secondary`), over
    /// every output.
    pub values_withheld: BTreeMap<String, u64>,
    /// Cells (groups) removed whole because too few records backed them.
    pub cells_removed: u64,
    /// ε spent by DP runs.
    pub epsilon_spent: f64,
    /// δ spent by DP runs.
    pub delta_spent: f64,
}

/// Integer sums before they are shown (ε in millionths, δ in 10⁻¹²).
struct Tally {
    view: OrgDisclosure,
    epsilon_micro: i64,
    delta_pico: i64,
}

impl Tally {
    /// Nothing counted yet for `org_id`.
    fn new(org_id: OrgId) -> Tally {
        Tally {
            view: OrgDisclosure {
                org_id,
                runs: 0,
                outputs_quarantined: 0,
                outputs_released: 0,
                outputs_rejected: 0,
                runs_failed_after_admission: 0,
                values_released: 0,
                values_withheld: BTreeMap::new(),
                cells_removed: 0,
                epsilon_spent: 0.0,
                delta_spent: 0.0,
            },
            epsilon_micro: 0,
            delta_pico: 0,
        }
    }

    /// Adds one run and, if it has one, its output.
    fn add(&mut self, run: &RunRow) {
        self.view.runs += 1;
        self.epsilon_micro = self.epsilon_micro.saturating_add(run.epsilon_micro);
        self.delta_pico = self.delta_pico.saturating_add(run.delta_pico);
        let Some(status) = run.output_status.as_deref() else {
            return;
        };
        let released = status == "released";
        match status {
            "quarantined" => self.view.outputs_quarantined += 1,
            "released" => self.view.outputs_released += 1,
            _ => self.view.outputs_rejected += 1,
        }
        let report = &run.report;
        if report.get("run_failed") == Some(&serde_json::Value::Bool(true)) {
            self.view.runs_failed_after_admission += 1;
            return;
        }
        if let Some(hits) = report.get("hits").and_then(serde_json::Value::as_array) {
            for hit in hits {
                let rule = hit.get("rule").and_then(serde_json::Value::as_str);
                let removed_row = hit
                    .get("released_row")
                    .is_none_or(serde_json::Value::is_null);
                match rule {
                    Some("threshold") if removed_row => self.view.cells_removed += 1,
                    Some(rule @ ("threshold" | "dominance" | "differencing" | "secondary")) => {
                        *self
                            .view
                            .values_withheld
                            .entry(rule.to_owned())
                            .or_default() += 1;
                    }
                    _ => {}
                }
            }
            if released {
                self.view.values_released += report
                    .get("values_released")
                    .and_then(serde_json::Value::as_u64)
                    .unwrap_or(0);
            }
        } else if released {
            // DP and unconditional outputs: every cell of the released table.
            self.view.values_released += run.output_rows;
        }
    }

    fn finish(mut self) -> OrgDisclosure {
        self.view.epsilon_spent = self.epsilon_micro as f64 / 1e6;
        self.view.delta_spent = self.delta_pico as f64 / 1e12;
        self.view
    }
}

/// One run with its output, as read from the tables.
struct RunRow {
    org_id: OrgId,
    versions: Vec<String>,
    epsilon_micro: i64,
    delta_pico: i64,
    output_status: Option<String>,
    output_rows: u64,
    report: serde_json::Value,
}

impl DisclosureAudit {
    /// The disclosure record of a dataset (see the module documentation). The caller
    /// has checked the role; `provider_org` is `Some` for a provider, who sees only its
    /// own datasets (another's is "not found").
    pub async fn disclosure_report(
        &self,
        dataset_id: &DatasetId,
        provider_org: Option<&OrgId>,
    ) -> Result<DisclosureReport> {
        let dataset = self
            .catalog()
            .dataset_for_provider(dataset_id, provider_org)
            .await?;
        let prefix = format!("{}@", dataset.id);
        // The run rows name their versions as `dataset@version` in a JSON list; the
        // LIKE narrows the scan and the parsed list decides.
        let rows = sqlx::query(
            "SELECT r.org_id, r.dataset_versions, r.epsilon_micro, r.delta_pico, \
             o.status AS output_status, o.rows_count, o.check_report_json \
             FROM model_runs r LEFT JOIN outputs o ON o.job_id = r.job_id \
             WHERE r.dataset_versions LIKE $1 ORDER BY r.created_ms, r.job_id",
        )
        .bind(format!("%\"{prefix}%"))
        .fetch_all(self.db().pool())
        .await?;
        let mut tallies: BTreeMap<(u64, OrgId), Tally> = BTreeMap::new();
        for row in &rows {
            let versions_text: String = row.try_get("dataset_versions")?;
            let report_text: Option<String> = row.try_get("check_report_json")?;
            let run = RunRow {
                org_id: row.try_get("org_id")?,
                versions: serde_json::from_str(&versions_text)
                    .map_err(|e| SandboxError::Internal(format!("run versions: {e}")))?,
                epsilon_micro: row.try_get("epsilon_micro")?,
                delta_pico: row.try_get("delta_pico")?,
                output_status: row.try_get("output_status")?,
                output_rows: row
                    .try_get::<Option<i64>, _>("rows_count")?
                    .and_then(|n| u64::try_from(n).ok())
                    .unwrap_or(0),
                report: report_text
                    .as_deref()
                    .and_then(|t| serde_json::from_str(t).ok())
                    .unwrap_or_default(),
            };
            for cited in &run.versions {
                // Another dataset's version (or a malformed citation) does not count here.
                let Some(version) = cited
                    .parse::<VersionRef>()
                    .ok()
                    .filter(|v| v.dataset == dataset.id)
                    .map(|v| v.version)
                else {
                    continue;
                };
                tallies
                    .entry((version, run.org_id.clone()))
                    .or_insert_with(|| Tally::new(run.org_id.clone()))
                    .add(&run);
            }
        }
        let mut report = DisclosureReport {
            dataset_id: dataset.id,
            versions: Vec::new(),
        };
        for ((version, _), tally) in tallies {
            if report.versions.last().is_none_or(|v| v.version != version) {
                report.versions.push(VersionDisclosure {
                    version,
                    organisations: Vec::new(),
                });
            }
            if let Some(entry) = report.versions.last_mut() {
                entry.organisations.push(tally.finish());
            }
        }
        Ok(report)
    }
}
