//! The `datasets` and `data_elements` tables, written for the
//! [`Catalog`](crate::catalog::Catalog) sub-service (and, for a dataset's output
//! policy and its last change, for [`Runs`](crate::runs::Runs) and
//! [`Versions`](crate::versions::Versions)); and the catalog life cycle's
//! `catalog_reviews` and `catalog_revisions`, with each dataset's status and revision,
//! for [`Lifecycle`](crate::lifecycle::Lifecycle) (GD21 Art.10–11; XT Art.12, 14).

use pdx_ids::{DatasetId, KeyId, OrgId};

use crate::Result;

/// A dataset's catalog metadata, its enums as wire names and its schema as JSON: the
/// columns a registration inserts and an edit replaces.
pub(crate) struct MetadataRow<'a> {
    /// Title.
    pub(crate) title: &'a str,
    /// Description.
    pub(crate) description: &'a str,
    /// Theme.
    pub(crate) theme: &'a str,
    /// Source department.
    pub(crate) source_department: &'a str,
    /// Collecting department.
    pub(crate) collecting_department: &'a str,
    /// Approving department.
    pub(crate) approving_department: &'a str,
    /// Providing department.
    pub(crate) providing_department: &'a str,
    /// Data form.
    pub(crate) data_form: &'a str,
    /// Update frequency.
    pub(crate) update_frequency: &'a str,
    /// Level (wire name).
    pub(crate) level: &'a str,
    /// Share type (wire name).
    pub(crate) share_type: &'a str,
    /// Share conditions.
    pub(crate) share_conditions: &'a str,
    /// Legal basis.
    pub(crate) legal_basis: &'a str,
    /// Open attribute (wire name).
    pub(crate) open_attribute: &'a str,
    /// The schema, as JSON.
    pub(crate) schema_json: &'a str,
    /// The data-element codes, as JSON.
    pub(crate) elements_json: &'a str,
    /// Lower-cased text for catalog search.
    pub(crate) search_text: &'a str,
    /// 1 when research use only, else 0.
    pub(crate) research_only: i64,
}

/// A dataset to register: a draft at catalog revision 1.
pub(crate) struct NewDatasetRow<'a> {
    /// Dataset id.
    pub(crate) id: &'a DatasetId,
    /// The providing organisation.
    pub(crate) provider_org: &'a OrgId,
    /// Its metadata.
    pub(crate) meta: MetadataRow<'a>,
    /// Created (and last changed), ms since epoch.
    pub(crate) created_ms: i64,
}

/// Inserts a dataset as a `draft` at revision 1 (GD21 Art.10–11: published only once
/// the data authority approves it).
pub(crate) async fn insert_dataset<'e, E>(db: E, row: &NewDatasetRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let m = &row.meta;
    sqlx::query(
        "INSERT INTO datasets (id, provider_org, title, description, theme, source_department, \
         collecting_department, approving_department, providing_department, data_form, \
         update_frequency, level, share_type, share_conditions, legal_basis, open_attribute, \
         schema_json, elements_json, search_text, research_only, created_ms, updated_ms, \
         status, revision) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $21, 'draft', 1)",
    )
    .bind(row.id.clone())
    .bind(row.provider_org.clone())
    .bind(m.title.to_string())
    .bind(m.description.to_string())
    .bind(m.theme.to_string())
    .bind(m.source_department.to_string())
    .bind(m.collecting_department.to_string())
    .bind(m.approving_department.to_string())
    .bind(m.providing_department.to_string())
    .bind(m.data_form.to_string())
    .bind(m.update_frequency.to_string())
    .bind(m.level.to_string())
    .bind(m.share_type.to_string())
    .bind(m.share_conditions.to_string())
    .bind(m.legal_basis.to_string())
    .bind(m.open_attribute.to_string())
    .bind(m.schema_json.to_string())
    .bind(m.elements_json.to_string())
    .bind(m.search_text.to_string())
    .bind(m.research_only)
    .bind(row.created_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// Replaces a dataset's metadata and sets its catalog revision to `revision`, if it is
/// still at `expected_revision` in `expected_status`; returns the rows updated (0 when
/// an edit, a submission or a decision came first).
pub(crate) async fn update_metadata<'e, E>(
    db: E,
    dataset_id: &DatasetId,
    meta: &MetadataRow<'_>,
    revision: i64,
    expected_revision: i64,
    expected_status: &str,
    updated_ms: i64,
) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE datasets SET title = $1, description = $2, theme = $3, source_department = $4, \
         collecting_department = $5, approving_department = $6, providing_department = $7, \
         data_form = $8, update_frequency = $9, level = $10, share_type = $11, \
         share_conditions = $12, legal_basis = $13, open_attribute = $14, schema_json = $15, \
         elements_json = $16, search_text = $17, research_only = $18, revision = $19, \
         updated_ms = $20 \
         WHERE id = $21 AND revision = $22 AND status = $23",
    )
    .bind(meta.title.to_string())
    .bind(meta.description.to_string())
    .bind(meta.theme.to_string())
    .bind(meta.source_department.to_string())
    .bind(meta.collecting_department.to_string())
    .bind(meta.approving_department.to_string())
    .bind(meta.providing_department.to_string())
    .bind(meta.data_form.to_string())
    .bind(meta.update_frequency.to_string())
    .bind(meta.level.to_string())
    .bind(meta.share_type.to_string())
    .bind(meta.share_conditions.to_string())
    .bind(meta.legal_basis.to_string())
    .bind(meta.open_attribute.to_string())
    .bind(meta.schema_json.to_string())
    .bind(meta.elements_json.to_string())
    .bind(meta.search_text.to_string())
    .bind(meta.research_only)
    .bind(revision)
    .bind(updated_ms)
    .bind(dataset_id.clone())
    .bind(expected_revision)
    .bind(expected_status.to_string())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// Moves a dataset from one life-cycle status to another (`draft` or `returned` to
/// `submitted` on submission, `submitted` to `published` or `returned` on the
/// authority's decision) if it is still in `from` at `expected_revision`; returns the
/// rows updated (0 when an edit or another step came first).
pub(crate) async fn set_status<'e, E>(
    db: E,
    dataset_id: &DatasetId,
    from: &str,
    to: &str,
    expected_revision: i64,
    updated_ms: i64,
) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE datasets SET status = $1, updated_ms = $2 \
         WHERE id = $3 AND status = $4 AND revision = $5",
    )
    .bind(to.to_string())
    .bind(updated_ms)
    .bind(dataset_id.clone())
    .bind(from.to_string())
    .bind(expected_revision)
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// A catalog revision to record: the registration (revision 1) or an edit.
pub(crate) struct NewRevisionRow<'a> {
    /// Dataset id.
    pub(crate) dataset_id: &'a DatasetId,
    /// Revision number.
    pub(crate) revision: i64,
    /// Hex BLAKE3 of the canonical metadata.
    pub(crate) metadata_hash: &'a str,
    /// The metadata, as JSON.
    pub(crate) metadata_json: &'a str,
    /// The providing organisation (the actor).
    pub(crate) provider_org: &'a OrgId,
    /// The actor's API key id.
    pub(crate) actor_key: &'a KeyId,
    /// Made, ms since epoch.
    pub(crate) created_ms: i64,
    /// Why.
    pub(crate) reason: &'a str,
    /// The legal change that required it, `YYYY-MM-DD`.
    pub(crate) legal_change_date: Option<&'a str>,
    /// The update deadline that change set, `YYYY-MM-DD`.
    pub(crate) update_due: Option<&'a str>,
    /// 1 when made after `update_due`, else 0.
    pub(crate) late: i64,
    /// Ledger seq of its `CatalogRevision` entry (none for the registration).
    pub(crate) revision_seq: Option<i64>,
}

/// Inserts a catalog revision.
pub(crate) async fn insert_revision<'e, E>(db: E, row: &NewRevisionRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO catalog_revisions (dataset_id, revision, metadata_hash, metadata_json, \
         provider_org, actor_key, created_ms, reason, legal_change_date, update_due, late, \
         revision_seq) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(row.dataset_id.clone())
    .bind(row.revision)
    .bind(row.metadata_hash.to_string())
    .bind(row.metadata_json.to_string())
    .bind(row.provider_org.clone())
    .bind(row.actor_key.clone())
    .bind(row.created_ms)
    .bind(row.reason.to_string())
    .bind(row.legal_change_date.map(str::to_string))
    .bind(row.update_due.map(str::to_string))
    .bind(row.late)
    .bind(row.revision_seq)
    .execute(db)
    .await?;
    Ok(())
}

/// A submission of a catalog entry for the data authority's review.
pub(crate) struct NewReviewRow<'a> {
    /// Dataset id.
    pub(crate) dataset_id: &'a DatasetId,
    /// The submission's round (1 for the first).
    pub(crate) round: i64,
    /// The catalog revision submitted.
    pub(crate) revision: i64,
    /// Hex BLAKE3 of its canonical metadata.
    pub(crate) metadata_hash: &'a str,
    /// The providing organisation.
    pub(crate) provider_org: &'a OrgId,
    /// The submitting API key id.
    pub(crate) submitted_key: &'a KeyId,
    /// Submitted, ms since epoch.
    pub(crate) submitted_ms: i64,
    /// The authority's answer deadline, `YYYY-MM-DD`.
    pub(crate) review_due: &'a str,
    /// Ledger seq of the `submitted` decision entry.
    pub(crate) submission_seq: i64,
}

/// Inserts a pending review (no decision yet).
pub(crate) async fn insert_review<'e, E>(db: E, row: &NewReviewRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO catalog_reviews (dataset_id, round, revision, metadata_hash, provider_org, \
         submitted_key, submitted_ms, review_due, submission_seq) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(row.dataset_id.clone())
    .bind(row.round)
    .bind(row.revision)
    .bind(row.metadata_hash.to_string())
    .bind(row.provider_org.clone())
    .bind(row.submitted_key.clone())
    .bind(row.submitted_ms)
    .bind(row.review_due.to_string())
    .bind(row.submission_seq)
    .execute(db)
    .await?;
    Ok(())
}

/// The data authority's decision on a pending review.
pub(crate) struct ReviewDecisionRow<'a> {
    /// Dataset id.
    pub(crate) dataset_id: &'a DatasetId,
    /// The round decided.
    pub(crate) round: i64,
    /// `approved` or `returned`.
    pub(crate) decision: &'a str,
    /// Why it was returned.
    pub(crate) reason: Option<&'a str>,
    /// The authority's organisation.
    pub(crate) reviewer_org: &'a OrgId,
    /// The authority's API key id.
    pub(crate) reviewer_key: &'a KeyId,
    /// Decided, ms since epoch.
    pub(crate) reviewed_ms: i64,
    /// 1 when decided after the deadline, else 0.
    pub(crate) reviewed_late: i64,
    /// Ledger seq of the decision entry.
    pub(crate) decision_seq: i64,
}

/// Records the decision on a still-pending review; returns the rows updated (0 if it
/// was decided concurrently).
pub(crate) async fn decide_review<'e, E>(db: E, row: &ReviewDecisionRow<'_>) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE catalog_reviews SET decision = $1, reason = $2, reviewer_org = $3, \
         reviewer_key = $4, reviewed_ms = $5, reviewed_late = $6, decision_seq = $7 \
         WHERE dataset_id = $8 AND round = $9 AND decision IS NULL",
    )
    .bind(row.decision.to_string())
    .bind(row.reason.map(str::to_string))
    .bind(row.reviewer_org.clone())
    .bind(row.reviewer_key.clone())
    .bind(row.reviewed_ms)
    .bind(row.reviewed_late)
    .bind(row.decision_seq)
    .bind(row.dataset_id.clone())
    .bind(row.round)
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// Sets a dataset's output policy (JSON) and its last change.
pub(crate) async fn set_output_policy<'e, E>(
    db: E,
    dataset_id: &DatasetId,
    policy_json: String,
    updated_ms: i64,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE datasets SET output_policy_json = $1, updated_ms = $2 WHERE id = $3")
        .bind(policy_json)
        .bind(updated_ms)
        .bind(dataset_id.clone())
        .execute(db)
        .await?;
    Ok(())
}

/// Sets a dataset's last change; inside a transaction this also locks its row on
/// PostgreSQL, which serialises concurrent certifications of one dataset.
pub(crate) async fn touch_dataset<'e, E>(
    db: E,
    dataset_id: &DatasetId,
    updated_ms: i64,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE datasets SET updated_ms = $1 WHERE id = $2")
        .bind(updated_ms)
        .bind(dataset_id.clone())
        .execute(db)
        .await?;
    Ok(())
}

/// A data element to register for its source department.
pub(crate) struct NewDataElement<'a> {
    /// The element code, e.g. `enterprise.registration`.
    pub(crate) code: &'a str,
    /// Its one source department.
    pub(crate) source_department: &'a str,
    /// Description.
    pub(crate) description: &'a str,
    /// The registering organisation.
    pub(crate) org_id: &'a OrgId,
    /// The dataset that carried it, if any.
    pub(crate) dataset_id: Option<&'a DatasetId>,
    /// Created, ms since epoch.
    pub(crate) created_ms: i64,
}

/// Inserts a data element; a code already registered fails with the database's
/// unique violation (as [`SandboxError::Db`](crate::SandboxError::Db)).
pub(crate) async fn insert_data_element<'e, E>(db: E, row: &NewDataElement<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO data_elements (code, source_department, description, org_id, dataset_id, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(row.code.to_string())
    .bind(row.source_department.to_string())
    .bind(row.description.to_string())
    .bind(row.org_id.clone())
    .bind(row.dataset_id.cloned())
    .bind(row.created_ms)
    .execute(db)
    .await?;
    Ok(())
}
