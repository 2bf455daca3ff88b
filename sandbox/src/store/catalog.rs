//! The `datasets` and `data_elements` tables, written for the
//! [`Catalog`](crate::catalog::Catalog) sub-service (and, for a dataset's output
//! policy and its last change, for [`Runs`](crate::runs::Runs) and
//! [`Versions`](crate::versions::Versions)).

use pdx_ids::{DatasetId, OrgId};

use crate::Result;

/// A dataset to register, its enums as wire names and its schema as JSON.
pub(crate) struct NewDatasetRow<'a> {
    /// Dataset id.
    pub(crate) id: &'a DatasetId,
    /// The providing organisation.
    pub(crate) provider_org: &'a OrgId,
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
    /// Created (and last changed), ms since epoch.
    pub(crate) created_ms: i64,
}

/// Inserts a dataset.
pub(crate) async fn insert_dataset<'e, E>(db: E, row: &NewDatasetRow<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO datasets (id, provider_org, title, description, theme, source_department, \
         collecting_department, approving_department, providing_department, data_form, \
         update_frequency, level, share_type, share_conditions, legal_basis, open_attribute, \
         schema_json, elements_json, search_text, research_only, created_ms, updated_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $21)",
    )
    .bind(row.id.clone())
    .bind(row.provider_org.clone())
    .bind(row.title.to_string())
    .bind(row.description.to_string())
    .bind(row.theme.to_string())
    .bind(row.source_department.to_string())
    .bind(row.collecting_department.to_string())
    .bind(row.approving_department.to_string())
    .bind(row.providing_department.to_string())
    .bind(row.data_form.to_string())
    .bind(row.update_frequency.to_string())
    .bind(row.level.to_string())
    .bind(row.share_type.to_string())
    .bind(row.share_conditions.to_string())
    .bind(row.legal_basis.to_string())
    .bind(row.open_attribute.to_string())
    .bind(row.schema_json.to_string())
    .bind(row.elements_json.to_string())
    .bind(row.search_text.to_string())
    .bind(row.research_only)
    .bind(row.created_ms)
    .execute(db)
    .await?;
    Ok(())
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
