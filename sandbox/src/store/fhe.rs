//! The `fhe_templates`, `fhe_server_keys` and `fhe_queries` tables: private lookups'
//! vetted templates, uploaded server keys and encrypted queries, written for the
//! [`crate::fhe::Fhe`] sub-service.

use pdx_ids::{DatasetId, FheKeyId, FheQueryId, FheTemplateId, GrantId, JobId, OrgId};

use crate::Result;

/// A proposed template (status `pending`).
pub(crate) struct NewFheTemplate<'a> {
    /// Template id.
    pub id: &'a FheTemplateId,
    /// The dataset.
    pub dataset_id: &'a DatasetId,
    /// The dataset's provider, who decides.
    pub provider_org: &'a OrgId,
    /// The proposing developer organisation.
    pub proposer_org: &'a OrgId,
    /// Name.
    pub name: &'a str,
    /// Purpose.
    pub purpose: &'a str,
    /// Canonical JSON of the spec.
    pub spec_json: &'a str,
    /// Template hash, hex.
    pub template_hash: &'a str,
    /// Proposed, ms since epoch.
    pub created_ms: i64,
}

/// An accepted server key.
pub(crate) struct NewServerKey<'a> {
    /// Key id.
    pub id: &'a FheKeyId,
    /// Owning organisation.
    pub org_id: &'a OrgId,
    /// Key hash, hex.
    pub key_hash: &'a str,
    /// Size of the compressed key.
    pub bytes: i64,
    /// The parameter set it was checked against.
    pub parameters: &'a str,
    /// File path relative to the zones' root.
    pub file_path: &'a str,
    /// Uploaded, ms since epoch.
    pub created_ms: i64,
}

/// An admitted query (status `queued`).
pub(crate) struct NewFheQuery<'a> {
    /// Query id.
    pub id: &'a FheQueryId,
    /// Its job.
    pub job_id: &'a JobId,
    /// Querying organisation.
    pub org_id: &'a OrgId,
    /// The template.
    pub template_id: &'a FheTemplateId,
    /// The grant that paid, if any.
    pub grant_id: Option<&'a GrantId>,
    /// The server key.
    pub server_key_id: &'a FheKeyId,
    /// The dataset.
    pub dataset_id: &'a DatasetId,
    /// The dataset version scanned.
    pub version: i64,
    /// Hash of the input ciphertext, hex.
    pub input_hash: &'a str,
    /// Revealed bucket bits, if any.
    pub bucket_bits: Option<i64>,
    /// Revealed bucket, if any.
    pub bucket: Option<i64>,
    /// Rows the scan covers.
    pub rows_scanned: i64,
    /// Admitted, ms since epoch.
    pub created_ms: i64,
    /// Consent commitment, hex, if any.
    pub consent_commitment: Option<&'a str>,
}

/// Inserts a proposed template with status `pending`.
pub(crate) async fn insert_template<'e, E>(db: E, row: &NewFheTemplate<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO fhe_templates (id, dataset_id, provider_org, proposer_org, name, purpose, \
         spec_json, template_hash, status, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', $9)",
    )
    .bind(row.id.clone())
    .bind(row.dataset_id.clone())
    .bind(row.provider_org.clone())
    .bind(row.proposer_org.clone())
    .bind(row.name.to_string())
    .bind(row.purpose.to_string())
    .bind(row.spec_json.to_string())
    .bind(row.template_hash.to_string())
    .bind(row.created_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// Moves a template from status `expected` to `status` with its reason; returns the
/// rows updated (0 if it changed concurrently).
pub(crate) async fn decide_template<'e, E>(
    db: E,
    id: &FheTemplateId,
    expected: &str,
    status: &str,
    reason: Option<&str>,
    decided_ms: i64,
) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE fhe_templates SET status = $1, reason = $2, decided_ms = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(status)
    .bind(reason.map(str::to_string))
    .bind(decided_ms)
    .bind(id.clone())
    .bind(expected)
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// Records the ledger seq of a template's decision.
pub(crate) async fn set_template_decision_seq<'e, E>(
    db: E,
    id: &FheTemplateId,
    seq: i64,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE fhe_templates SET decision_seq = $1 WHERE id = $2")
        .bind(seq)
        .bind(id.clone())
        .execute(db)
        .await?;
    Ok(())
}

/// Inserts an accepted server key (fails on a duplicate key of the organisation).
pub(crate) async fn insert_server_key<'e, E>(db: E, row: &NewServerKey<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO fhe_server_keys (id, org_id, key_hash, bytes, parameters, file_path, created_ms) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(row.id.clone())
    .bind(row.org_id.clone())
    .bind(row.key_hash.to_string())
    .bind(row.bytes)
    .bind(row.parameters)
    .bind(row.file_path.to_string())
    .bind(row.created_ms)
    .execute(db)
    .await?;
    Ok(())
}

/// Deletes one of an organisation's server keys.
pub(crate) async fn delete_server_key<'e, E>(db: E, id: &FheKeyId, org_id: &OrgId) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("DELETE FROM fhe_server_keys WHERE id = $1 AND org_id = $2")
        .bind(id.clone())
        .bind(org_id.clone())
        .execute(db)
        .await?;
    Ok(())
}

/// Inserts an admitted query with status `queued`.
pub(crate) async fn insert_query<'e, E>(db: E, row: &NewFheQuery<'_>) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "INSERT INTO fhe_queries (id, job_id, org_id, template_id, grant_id, server_key_id, \
         dataset_id, version, input_hash, bucket_bits, bucket, rows_scanned, status, created_ms, \
         consent_commitment) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'queued', $13, $14)",
    )
    .bind(row.id.clone())
    .bind(row.job_id.clone())
    .bind(row.org_id.clone())
    .bind(row.template_id.clone())
    .bind(row.grant_id.cloned())
    .bind(row.server_key_id.clone())
    .bind(row.dataset_id.clone())
    .bind(row.version)
    .bind(row.input_hash.to_string())
    .bind(row.bucket_bits)
    .bind(row.bucket)
    .bind(row.rows_scanned)
    .bind(row.created_ms)
    .bind(row.consent_commitment.map(str::to_string))
    .execute(db)
    .await?;
    Ok(())
}

/// Marks a query `running`.
pub(crate) async fn mark_query_running<'e, E>(db: E, id: &FheQueryId) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query("UPDATE fhe_queries SET status = 'running' WHERE id = $1")
        .bind(id.clone())
        .execute(db)
        .await?;
    Ok(())
}

/// Marks an unfinished query `done` with the hashes of its answer and its ledger seq;
/// returns the rows updated (0 when it had already ended).
pub(crate) async fn finish_query<'e, E>(
    db: E,
    id: &FheQueryId,
    value_hash: &str,
    found_hash: &str,
    ledger_seq: i64,
    finished_ms: i64,
) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let updated = sqlx::query(
        "UPDATE fhe_queries SET status = 'done', value_hash = $1, found_hash = $2, \
         ledger_seq = $3, finished_ms = $4 WHERE id = $5 AND status IN ('queued', 'running')",
    )
    .bind(value_hash.to_string())
    .bind(found_hash.to_string())
    .bind(ledger_seq)
    .bind(finished_ms)
    .bind(id.clone())
    .execute(db)
    .await?;
    Ok(updated.rows_affected())
}

/// Marks a query whose evaluation failed `failed`, unless it is already `done` (its
/// answer and ledger entry committed before a later step failed).
pub(crate) async fn fail_query<'e, E>(db: E, id: &FheQueryId, finished_ms: i64) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    sqlx::query(
        "UPDATE fhe_queries SET status = 'failed', finished_ms = $1 \
         WHERE id = $2 AND status IN ('queued', 'running')",
    )
    .bind(finished_ms)
    .bind(id.clone())
    .execute(db)
    .await?;
    Ok(())
}

/// Marks `failed` every unfinished query whose job failed (ended at a start without
/// being resumed); returns how many.
pub(crate) async fn fail_unresumed<'e, E>(db: E, finished_ms: i64) -> Result<u64>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let done = sqlx::query(
        "UPDATE fhe_queries SET status = 'failed', finished_ms = $1 WHERE status IN ('queued', 'running') \
         AND job_id IN (SELECT id FROM jobs WHERE status = 'failed')",
    )
    .bind(finished_ms)
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
