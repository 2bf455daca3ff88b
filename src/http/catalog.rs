//! The catalog: datasets, data elements, versions, certificates, dummy data and
//! de-identified downloads; and the job endpoints clients poll.
//!
//! Providers register datasets and upload versions of their own datasets; every
//! authenticated role searches the catalog and reads metadata, reports, certificates
//! and dummy data, except a not-open dataset's dummy data, which only its provider and
//! supervisors get. Rows leave only as de-identified downloads of unconditionally open
//! datasets (the rules live in [`pdx_sandbox::access`]).
//!
//! The catalog life cycle (GD21 Art.10–11; XT Art.12, 14; [`pdx_sandbox::lifecycle`]): a
//! registration is a draft; its provider submits it (`POST /v1/datasets/{id}/submit`)
//! and the data authority approves or returns it (`POST /v1/datasets/{id}/review`).
//! Until it is published, an entry and everything under it (versions, certificates,
//! dummy data, revisions) is "not found" for everyone but its provider, the authority
//! and supervisors. Its provider edits its metadata with `PUT /v1/datasets/{id}` (a
//! catalog revision; the history is `GET /v1/datasets/{id}/revisions`).
//!
//! The open catalog is public (SD22 Art.10): the search, the dataset pages, versions,
//! certificates, dummy data and downloads answer without a key too ([`Visitor`]). The
//! public sees published entries only (anything else is "not found", as for an absent
//! one: [`CatalogReader::Public`]), and takes rows (dummy data and downloads) only of
//! unconditionally open datasets: for any other the answer is a 401
//! ([`PUBLIC_ROWS_REFUSAL`]), since its metadata is public anyway and a key is the
//! first thing more access needs (a conditional dataset is then reached through the
//! sandbox under a grant; a developer's download of it is a 403 as before).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use pdx_algorithms::deid::DataFrame;
use pdx_algorithms::deid::ingest::{TextEncoding, UploadFormat};
use pdx_algorithms::deid::storage::{to_csv_bytes, to_json_rows};
use pdx_ids::{DatasetId, JobId, ObjectionId};
use pdx_sandbox::access::{MAX_DUMMY_ROWS, Reader};
use pdx_sandbox::catalog::{
    CatalogReader, CatalogStatus, DataElement, Dataset, DatasetPage, DatasetQuery, Level,
    NewDataset, OpenAttribute,
};
use pdx_sandbox::lifecycle::{CatalogReview, CatalogRevision, MAX_REASON_CHARS, RevisionNote};
use pdx_sandbox::quality::UpdateFrequency;
use pdx_sandbox::versions::{CertificateWithReceipt, Version};
use pdx_sandbox::workdays::parse_day;
use pdx_sandbox::{Job, SandboxError};
use serde::Deserialize;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, SchemaType, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::auth::Role;
use crate::http::api_doc::RawBytes;
use crate::http::body::discard_rest;
use crate::http::json::{ApiJson, ApiPath, ApiQuery, parse_json};
use crate::http::problem::{ApiError, ApiResult, Problem};
use crate::http::{Caller, Visitor};

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(search_datasets, register_dataset))
        .routes(routes!(get_dataset, edit_dataset))
        .routes(routes!(submit_dataset))
        .routes(routes!(review_dataset))
        .routes(routes!(list_revisions))
        .routes(routes!(list_versions, upload_version))
        .routes(routes!(get_version))
        .routes(routes!(get_certificate))
        .routes(routes!(download_version))
        .routes(routes!(dummy_data))
        .routes(routes!(list_elements, register_element))
        .routes(routes!(list_jobs))
        .routes(routes!(get_job))
}

/// Which catalog entries the caller sees: the data authority and supervisors every one,
/// everyone else published ones and their own organisation's.
pub(crate) fn reader(caller: &Caller) -> CatalogReader<'_> {
    match caller.principal.role {
        Role::Authority | Role::Supervisor => CatalogReader::Overseer,
        _ => CatalogReader::Org(&caller.principal.org_id),
    }
}

/// Which catalog entries a visitor of a public route sees: a caller with a key as
/// [`reader`] says, the public published entries only (SD22 Art.10).
pub(crate) fn visitor_reader(visitor: &Visitor) -> CatalogReader<'_> {
    match visitor {
        Visitor::Key(caller) => reader(caller),
        Visitor::Anonymous => CatalogReader::Public,
    }
}

/// The dataset, if the caller may see it (404 otherwise, as for an absent one).
pub(crate) async fn dataset_or_404(
    app: &App,
    caller: &Caller,
    id: &DatasetId,
) -> ApiResult<Dataset> {
    Ok(app
        .sandbox
        .catalog()
        .visible_dataset(id, reader(caller))
        .await?)
}

/// The dataset, if the caller may see it and the route's policy lets it act on its
/// provider's resources (404 otherwise, as for an absent one; see [`Caller::owns`]).
pub(crate) async fn owned_dataset(
    app: &App,
    caller: &Caller,
    id: &DatasetId,
) -> ApiResult<Dataset> {
    let dataset = dataset_or_404(app, caller, id).await?;
    caller.owns(&dataset.provider_org)?;
    Ok(dataset)
}

/// The dataset, if the visitor may see it (404 otherwise, as for an absent one).
async fn visible_or_404(app: &App, visitor: &Visitor, id: &DatasetId) -> ApiResult<Dataset> {
    Ok(app
        .sandbox
        .catalog()
        .visible_dataset(id, visitor_reader(visitor))
        .await?)
}

/// The 401 of the public asking for rows of a dataset that is not unconditionally open.
pub const PUBLIC_ROWS_REFUSAL: &str = "without a key, rows (downloads and dummy data) are \
    given only for unconditionally open datasets (SD22 Art.8, 10), and this one is not: \
    send an API key (conditional data is reached through the sandbox, under a grant)";

/// Rows for the public only of a published, unconditionally open dataset (401
/// otherwise); a caller with a key is judged by the access rules as before.
fn rows_for(visitor: &Visitor, dataset: &Dataset) -> ApiResult<()> {
    match visitor {
        Visitor::Key(_) => Ok(()),
        Visitor::Anonymous => {
            // A destroyed dataset's data is gone for everyone: the 409 a key would get,
            // not a 401 that suggests a key would help.
            dataset.not_destroyed()?;
            let open = dataset.reachable_by_developers().is_ok()
                && dataset.effective_open_attribute == OpenAttribute::Unconditional;
            if open {
                Ok(())
            } else {
                Err(ApiError::unauthorized(PUBLIC_ROWS_REFUSAL))
            }
        }
    }
}

/// Catalog search filters and paging, as [`DatasetQuery`] has them, with the level and
/// the update frequency checked here so that a wrong one is a 422 naming the accepted
/// values (never the input).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    /// Text contained in the title, description or theme (case-insensitive).
    q: Option<String>,
    /// Exact theme.
    theme: Option<String>,
    /// Open attribute in force (an emergency relaxation's while it lasts).
    open_attribute: Option<OpenAttribute>,
    /// Provider organisation id, or providing department name.
    provider: Option<String>,
    /// Life-cycle status (`submitted` lists the data authority's queue). Callers see
    /// only the entries they may see, whatever they filter on.
    status: Option<CatalogStatus>,
    /// Classification level: `L1`, `L2`, `L3` or `L4` (anything else is a 422).
    #[param(value_type = Option<Level>)]
    level: Option<String>,
    /// Update frequency: `daily`, `weekly`, `monthly`, `quarterly`, `yearly` or
    /// `irregular` (anything else is a 422).
    #[param(value_type = Option<UpdateFrequency>)]
    update_frequency: Option<String>,
    /// Page, from 1 to 2,147,483,647.
    #[param(minimum = 1, maximum = 2147483647)]
    page: Option<u32>,
    /// Items per page, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    per_page: Option<u32>,
}

impl SearchParams {
    /// The catalog's search, every filter applied in its query.
    fn catalog_query(&self) -> ApiResult<DatasetQuery> {
        Ok(DatasetQuery {
            q: self.q.clone(),
            theme: self.theme.clone(),
            open_attribute: self.open_attribute,
            provider: self.provider.clone(),
            status: self.status,
            level: self.level()?,
            update_frequency: self.update_frequency()?,
            page: self.page,
            per_page: self.per_page,
        })
    }

    /// The level asked for, if any (a 422 naming the accepted ones, never the input).
    fn level(&self) -> ApiResult<Option<Level>> {
        let Some(text) = self.level.as_deref() else {
            return Ok(None);
        };
        match text {
            "L1" => Ok(Some(Level::L1)),
            "L2" => Ok(Some(Level::L2)),
            "L3" => Ok(Some(Level::L3)),
            "L4" => Ok(Some(Level::L4)),
            _ => Err(ApiError::invalid_field(
                "level",
                "`level` is one of L1, L2, L3, L4",
            )),
        }
    }

    /// The update frequency asked for, if any (a 422 naming the accepted ones).
    fn update_frequency(&self) -> ApiResult<Option<UpdateFrequency>> {
        Ok(self
            .update_frequency
            .as_deref()
            .map(UpdateFrequency::parse)
            .transpose()?)
    }
}

/// Search the catalog by text, theme, open attribute, provider, classification level and
/// update frequency. Public: without a key, published entries only.
#[utoipa::path(get, path = "/v1/datasets", tag = "catalog", security((), ("bearer" = [])),
    params(SearchParams),
    responses((status = 200, body = DatasetPage), (status = 400, body = Problem), (status = 422, body = Problem)))]
async fn search_datasets(
    State(app): State<App>,
    visitor: Visitor,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> ApiResult<Json<DatasetPage>> {
    let query = params.catalog_query()?;
    Ok(Json(
        app.sandbox
            .catalog()
            .search(&query, visitor_reader(&visitor))
            .await?,
    ))
}

/// Register a dataset (providers) as a draft, claiming its data elements. It is
/// published once submitted and approved by the data authority.
#[utoipa::path(post, path = "/v1/datasets", tag = "catalog", security(("bearer" = [])),
    request_body = NewDataset,
    responses((status = 201, body = Dataset), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn register_dataset(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<NewDataset>,
) -> ApiResult<(StatusCode, Json<Dataset>)> {
    let dataset = app
        .sandbox
        .catalog()
        .register_dataset(&caller.principal.actor(), body)
        .await?;
    tracing::info!(dataset = %dataset.id, org = %dataset.provider_org, "registered dataset");
    Ok((StatusCode::CREATED, Json(dataset)))
}

/// One catalog entry. Public: without a key, a published one only.
#[utoipa::path(get, path = "/v1/datasets/{id}", tag = "catalog", security((), ("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id")),
    responses((status = 200, body = Dataset), (status = 404, body = Problem)))]
async fn get_dataset(
    State(app): State<App>,
    visitor: Visitor,
    ApiPath(id): ApiPath<DatasetId>,
) -> ApiResult<Json<Dataset>> {
    Ok(Json(visible_or_404(&app, &visitor, &id).await?))
}

/// Body of `PUT /v1/datasets/{id}`: the registration's metadata, whole, with why it
/// changes. It is parsed by hand ([`DatasetEdit::parse`]) and its schema is written by
/// hand ([`utoipa::PartialSchema`] below): `NewDataset`'s closed object with the two
/// fields of the edit added. A derived schema would be an `allOf` of the closed
/// `NewDataset` and the edit's fields, which no object can satisfy.
#[derive(Debug)]
struct DatasetEdit {
    /// The new metadata, as at registration.
    metadata: NewDataset,
    /// Why the metadata changes (1 to 4,000 characters).
    reason: String,
    /// The date (`YYYY-MM-DD`) of the legal change that required the edit, if one did:
    /// the edit is late when made more than `catalog_update_working_days` (default 15)
    /// working days after it (GD21 Art.11; XT Art.14).
    legal_change_date: Option<String>,
}

impl utoipa::PartialSchema for DatasetEdit {
    fn schema() -> RefOr<Schema> {
        let mut schema = <NewDataset as utoipa::PartialSchema>::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.description = Some(
                "The registration's metadata, whole, with why it changes (`reason`) and the \
                 legal change that required it, if one did (`legal_change_date`)."
                    .to_string(),
            );
            object.properties.insert(
                "reason".to_string(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("Why the metadata changes (1 to 4,000 characters)."))
                    .min_length(Some(1))
                    .max_length(Some(MAX_REASON_CHARS))
                    // Not blank: the reason is trimmed before its length is checked.
                    .pattern(Some(r"\S"))
                    .into(),
            );
            object.required.push("reason".to_string());
            object.properties.insert(
                "legal_change_date".to_string(),
                ObjectBuilder::new()
                    .schema_type(
                        [Type::String, Type::Null]
                            .into_iter()
                            .collect::<SchemaType>(),
                    )
                    .description(Some(
                        "The date (`YYYY-MM-DD`) of the legal change that required the edit, \
                         if one did (GD21 Art.11; XT Art.14).",
                    ))
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
                    .into(),
            );
        }
        schema
    }
}

impl ToSchema for DatasetEdit {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <NewDataset as ToSchema>::schemas(schemas);
    }
}

impl DatasetEdit {
    /// Splits the body into the metadata (parsed as at registration, naming the field
    /// at fault) and the edit's own fields.
    fn parse(body: serde_json::Value) -> ApiResult<DatasetEdit> {
        let serde_json::Value::Object(mut fields) = body else {
            return Err(ApiError::unprocessable(
                "the body is the dataset's metadata as a JSON object, with `reason`",
            ));
        };
        let reason = match fields.remove("reason") {
            Some(serde_json::Value::String(reason)) => reason,
            Some(_) => {
                return Err(ApiError::invalid_field("reason", "`reason` is a string"));
            }
            None => {
                return Err(ApiError::invalid_field(
                    "reason",
                    "an edit must give its `reason`",
                ));
            }
        };
        let legal_change_date = match fields.remove("legal_change_date") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(date)) => Some(date),
            Some(_) => {
                return Err(ApiError::invalid_field(
                    "legal_change_date",
                    "`legal_change_date` is a date, YYYY-MM-DD",
                ));
            }
        };
        let rest =
            serde_json::to_vec(&serde_json::Value::Object(fields)).map_err(ApiError::internal)?;
        Ok(DatasetEdit {
            metadata: parse_json(&rest)?,
            reason,
            legal_change_date,
        })
    }
}

/// Edit a dataset's metadata (its provider): a new catalog revision, kept as history
/// and recorded on the ledger; versions and their certificates stay as they are. 409
/// while it is under review, for a published entry's open attribute (which has its own
/// procedure), and for the column schema once versions exist.
#[utoipa::path(put, path = "/v1/datasets/{id}", tag = "catalog", security(("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id")),
    request_body = DatasetEdit,
    responses((status = 200, body = Dataset), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 422, body = Problem)))]
async fn edit_dataset(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<DatasetId>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<Json<Dataset>> {
    let dataset = owned_dataset(&app, &caller, &id).await?;
    let edit = DatasetEdit::parse(body)?;
    let legal_change_date = edit
        .legal_change_date
        .as_deref()
        .map(|d| {
            parse_day(d).ok_or_else(|| {
                ApiError::invalid_field(
                    "legal_change_date",
                    "`legal_change_date` is a date, YYYY-MM-DD",
                )
            })
        })
        .transpose()?;
    let note = RevisionNote {
        reason: edit.reason,
        legal_change_date,
    };
    let dataset = app
        .sandbox
        .lifecycle()
        .revise(&caller.principal.actor(), &dataset.id, edit.metadata, note)
        .await?;
    tracing::info!(dataset = %dataset.id, revision = dataset.revision, "edited catalog entry");
    Ok(Json(dataset))
}

/// Submit a draft or returned dataset for publication (its provider). The data
/// authority must answer by `review_due`, in working days.
#[utoipa::path(post, path = "/v1/datasets/{id}/submit", tag = "catalog", security(("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id")),
    responses((status = 200, body = Dataset), (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn submit_dataset(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<DatasetId>,
) -> ApiResult<Json<Dataset>> {
    let dataset = owned_dataset(&app, &caller, &id).await?;
    let dataset = app
        .sandbox
        .lifecycle()
        .submit(&caller.principal.actor(), &dataset.id)
        .await?;
    tracing::info!(dataset = %dataset.id, review_due = ?dataset.review_due, "submitted catalog entry");
    Ok(Json(dataset))
}

/// Approve (publish) or return a submitted dataset (the data authority):
/// `{"decision": "approve"}` or `{"decision": "return", "reason": "…"}`. A decision
/// after the review deadline is accepted, marked late and shown on the compliance
/// report; an entry that is not submitted is a 409.
#[utoipa::path(post, path = "/v1/datasets/{id}/review", tag = "catalog", security(("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id")),
    request_body = CatalogReview,
    responses((status = 200, body = Dataset), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn review_dataset(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<DatasetId>,
    ApiJson(body): ApiJson<CatalogReview>,
) -> ApiResult<Json<Dataset>> {
    let dataset = app
        .sandbox
        .lifecycle()
        .review(&caller.principal.actor(), &id, body)
        .await?;
    tracing::info!(dataset = %dataset.id, status = %dataset.status.as_str(), "reviewed catalog entry");
    Ok(Json(dataset))
}

/// A dataset's catalog revisions, oldest first: number, metadata hash, who, when, why,
/// the metadata itself, and the legal change that required it with its deadline.
#[utoipa::path(get, path = "/v1/datasets/{id}/revisions", tag = "catalog", security(("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id")),
    responses((status = 200, body = Vec<CatalogRevision>), (status = 404, body = Problem)))]
async fn list_revisions(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<DatasetId>,
) -> ApiResult<Json<Vec<CatalogRevision>>> {
    Ok(Json(
        app.sandbox
            .lifecycle()
            .revisions(&id, reader(&caller))
            .await?,
    ))
}

/// Every certified version of a dataset, with its de-identification report. Public.
#[utoipa::path(get, path = "/v1/datasets/{id}/versions", tag = "catalog", security((), ("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id")),
    responses((status = 200, body = Vec<Version>), (status = 404, body = Problem)))]
async fn list_versions(
    State(app): State<App>,
    visitor: Visitor,
    ApiPath(id): ApiPath<DatasetId>,
) -> ApiResult<Json<Vec<Version>>> {
    let dataset = visible_or_404(&app, &visitor, &id).await?;
    Ok(Json(app.sandbox.versions().versions(&dataset.id).await?))
}

/// How the upload body is encoded.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct UploadParams {
    /// `csv` (default) or `parquet`.
    #[param(pattern = "^(csv|parquet)$")]
    format: Option<String>,
    /// CSV delimiter, one ASCII character other than a quote or a newline (default `,`).
    #[param(pattern = r"^[\x00-\x09\x0B-\x21\x23-\x7F]$")]
    delimiter: Option<String>,
    /// CSV text encoding: `utf8` (default) or `gbk`.
    encoding: Option<TextEncoding>,
    /// The accepted objections this version corrects, as comma-separated objection ids
    /// (SD22 Art.13; XT Art.22): each is linked to the version once it is certified.
    #[param(pattern = "^\\s*obj_[0-9a-z_-]{1,64}\\s*(,\\s*obj_[0-9a-z_-]{1,64}\\s*)*$")]
    corrects: Option<String>,
}

impl UploadParams {
    /// The objection ids of `corrects` (none when absent).
    fn corrected_objections(&self) -> ApiResult<Vec<ObjectionId>> {
        let Some(list) = self.corrects.as_deref() else {
            return Ok(Vec::new());
        };
        list.split(',')
            .map(|id| {
                ObjectionId::parse(id.trim()).map_err(|_| {
                    ApiError::invalid_field(
                        "corrects",
                        "`corrects` is a comma-separated list of objection ids",
                    )
                })
            })
            .collect()
    }

    fn to_format(&self) -> ApiResult<UploadFormat> {
        match self.format.as_deref().unwrap_or("csv") {
            "csv" => {
                let delimiter = match self.delimiter.as_deref() {
                    None => ',',
                    Some(d) => {
                        let mut chars = d.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) if c.is_ascii() && c != '"' && c != '\n' => c,
                            _ => {
                                return Err(ApiError::invalid_field(
                                    "delimiter",
                                    "the delimiter must be one ASCII character other than a quote or newline",
                                ));
                            }
                        }
                    }
                };
                Ok(UploadFormat::Csv {
                    delimiter,
                    encoding: self.encoding.unwrap_or(TextEncoding::Utf8),
                })
            }
            "parquet" => {
                if self.delimiter.is_some() || self.encoding.is_some() {
                    return Err(ApiError::invalid_field(
                        "format",
                        "delimiter and encoding apply to CSV only",
                    ));
                }
                Ok(UploadFormat::Parquet)
            }
            _ => Err(ApiError::invalid_field(
                "format",
                "format is csv or parquet",
            )),
        }
    }
}

/// Upload a new version (the owning provider). The body is the raw CSV or Parquet file.
/// It is validated before the answer; a good upload starts an ingest job (202) that
/// de-identifies, stores and certifies it. `corrects=obj_…,obj_…` names the accepted
/// objections to this dataset that the version corrects (SD22 Art.13; XT Art.22): 404
/// for one the provider cannot see, 422 for another dataset's, 409 for one not accepted
/// or already corrected.
#[utoipa::path(post, path = "/v1/datasets/{id}/versions", tag = "catalog", security(("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id"), UploadParams),
    request_body(content = RawBytes, content_type = "application/octet-stream"),
    responses((status = 202, body = Job), (status = 404, body = Problem), (status = 409, body = Problem),
        (status = 413, body = Problem), (status = 422, body = Problem)))]
async fn upload_version(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<DatasetId>,
    ApiQuery(params): ApiQuery<UploadParams>,
    body: Body,
) -> ApiResult<Response> {
    let dataset = owned_dataset(&app, &caller, &id).await?;
    let format = params.to_format()?;
    let corrects = params.corrected_objections()?;
    let mut upload = app.sandbox.versions().start_upload().await?;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::bad_request("the upload was cut off"))?;
        if let Err(e) = upload.write(&chunk).await {
            // Removes the partial file before anything else.
            drop(upload);
            if let SandboxError::TooLarge { limit } = &e {
                // Read the rest (within a bound) so that a client still sending gets
                // the 413 rather than a reset.
                discard_rest(&mut stream, *limit).await;
            }
            return Err(e.into());
        }
    }
    let raw = upload.finish().await?;
    let job = app
        .sandbox
        .versions()
        .submit_correcting_version(&caller.principal.actor(), &dataset, format, raw, &corrects)
        .await?;
    tracing::info!(dataset = %dataset.id, job = %job.id, corrects = corrects.len(), "accepted an upload");
    let location = format!("/v1/jobs/{}", job.id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(job),
    )
        .into_response())
}

/// One version and its report. Public.
#[utoipa::path(get, path = "/v1/datasets/{id}/versions/{version}", tag = "catalog", security((), ("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id"), ("version" = u64, Path, description = "version")),
    responses((status = 200, body = Version), (status = 404, body = Problem)))]
async fn get_version(
    State(app): State<App>,
    visitor: Visitor,
    ApiPath((id, version)): ApiPath<(DatasetId, u64)>,
) -> ApiResult<Json<Version>> {
    visible_or_404(&app, &visitor, &id).await?;
    app.sandbox
        .versions()
        .version(&id, version)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found("no such version"))
}

/// The data asset certificate of a version, with its offline receipt. Public.
#[utoipa::path(get, path = "/v1/datasets/{id}/versions/{version}/certificate", tag = "catalog", security((), ("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id"), ("version" = u64, Path, description = "version")),
    responses((status = 200, body = CertificateWithReceipt), (status = 404, body = Problem)))]
async fn get_certificate(
    State(app): State<App>,
    visitor: Visitor,
    ApiPath((id, version)): ApiPath<(DatasetId, u64)>,
) -> ApiResult<Json<CertificateWithReceipt>> {
    visible_or_404(&app, &visitor, &id).await?;
    Ok(Json(
        app.sandbox.versions().certificate(&id, version).await?,
    ))
}

/// Output format of a version's download.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct DownloadParams {
    /// `parquet` (default), `csv` or `json`.
    #[param(pattern = "^(json|csv|parquet)$")]
    format: Option<String>,
}

/// Output format and size of dummy data.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct RowsParams {
    /// `json` (default) or `csv`.
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
    /// Dummy rows to draw, 1 to 10,000 (default 100; dummy data only).
    #[param(minimum = 1, maximum = 10000)]
    rows: Option<usize>,
    /// Seed for the dummy generator (default 0; dummy data only).
    seed: Option<u64>,
}

/// Download the de-identified rows of a version: only for unconditionally open
/// datasets (403 otherwise; a not-open dataset's 403 names its rule). Public: without a
/// key, a published unconditionally open dataset's (401 for any other).
#[utoipa::path(get, path = "/v1/datasets/{id}/versions/{version}/download", tag = "catalog", security((), ("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id"), ("version" = u64, Path, description = "version"), DownloadParams),
    responses((status = 200, description = "the version's rows: the certified Parquet file (`format=parquet`), \
            or its rows as CSV or as JSON objects",
            content((RawBytes = "application/vnd.apache.parquet"), (String = "text/csv"), (Vec<Object> = "application/json"))),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn download_version(
    State(app): State<App>,
    visitor: Visitor,
    ApiPath((id, version)): ApiPath<(DatasetId, u64)>,
    ApiQuery(params): ApiQuery<DownloadParams>,
) -> ApiResult<Response> {
    let dataset = visible_or_404(&app, &visitor, &id).await?;
    rows_for(&visitor, &dataset)?;
    let format = params.format.as_deref().unwrap_or("parquet");
    if !matches!(format, "parquet" | "csv" | "json") {
        return Err(ApiError::invalid_field(
            "format",
            "format is parquet, csv or json",
        ));
    }
    let path = app
        .sandbox
        .access()
        .download_path(&dataset, version)
        .await?;
    let key_id = visitor
        .principal()
        .map_or_else(|| "-".to_string(), |p| p.key_id.to_string());
    tracing::info!(dataset = %dataset.id, version, key_id = %key_id, format, "download");
    let (content_type, bytes) = if format == "parquet" {
        // The certified bytes themselves, so the buyer can check them against the
        // certificate's content hash.
        let bytes = app.sandbox.read_zone_file(path).await?;
        ("application/vnd.apache.parquet", bytes)
    } else {
        let mut frame = app.sandbox.access().download(&dataset, version).await?;
        crate::http::usage_api::frame_body(&mut frame, format)?
    };
    // Every download is a `DataAccess` ledger entry, written before the bytes leave
    // (GD18 Art.28; XT Art.34(4)).
    app.sandbox
        .usage()
        .record_version_download(
            &crate::http::usage_api::visitor_actor(&visitor),
            &dataset,
            version,
            format,
            &bytes,
        )
        .await?;
    Ok(([(header::CONTENT_TYPE, content_type)], bytes).into_response())
}

/// Synthetic rows in the shape of the de-identified data, drawn from the declared
/// domains and hierarchies, never from real rows. A not-open dataset's only for its
/// provider and supervisors (403 for everyone else; its metadata stays readable).
/// Public: without a key, a published unconditionally open dataset's (401 for any
/// other).
#[utoipa::path(get, path = "/v1/datasets/{id}/dummy", tag = "catalog", security((), ("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id"), RowsParams),
    responses((status = 200, description = "dummy rows as JSON objects or as CSV",
            content((Vec<Object> = "application/json"), (String = "text/csv"))),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn dummy_data(
    State(app): State<App>,
    visitor: Visitor,
    ApiPath(id): ApiPath<DatasetId>,
    ApiQuery(params): ApiQuery<RowsParams>,
) -> ApiResult<Response> {
    let dataset = visible_or_404(&app, &visitor, &id).await?;
    rows_for(&visitor, &dataset)?;
    let format = params.format.as_deref().unwrap_or("json");
    if !matches!(format, "csv" | "json") {
        return Err(ApiError::invalid_field("format", "format is json or csv"));
    }
    let rows = params.rows.unwrap_or(100);
    if rows == 0 || rows > MAX_DUMMY_ROWS {
        return Err(ApiError::invalid_field(
            "rows",
            format!("rows must be between 1 and {MAX_DUMMY_ROWS}"),
        ));
    }
    // Everyone but providers and supervisors reads as a developer (deny by default),
    // the public too (after the rule above).
    let reader = match visitor.principal() {
        Some(p) if p.role == Role::Provider => Reader::Provider(&p.org_id),
        Some(p) if p.role == Role::Supervisor => Reader::Supervisor,
        _ => Reader::Developer,
    };
    let mut frame = app
        .sandbox
        .access()
        .dummy(&dataset, rows, params.seed.unwrap_or(0), reader)
        .await?;
    frame_response(&mut frame, format, rows)
}

fn frame_response(frame: &mut DataFrame, format: &str, limit: usize) -> ApiResult<Response> {
    match format {
        "json" => Ok(Json(to_json_rows(frame, limit)).into_response()),
        _ => {
            let bytes = to_csv_bytes(frame).map_err(ApiError::internal)?;
            Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], bytes).into_response())
        }
    }
}

/// Body of `POST /v1/elements`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct NewElement {
    /// Code, e.g. `enterprise.registration`.
    code: String,
    /// The one source department.
    source_department: String,
    /// What it is.
    #[serde(default)]
    description: String,
}

/// The data-element registry (one data, one source).
#[utoipa::path(get, path = "/v1/elements", tag = "catalog", security(("bearer" = [])),
    responses((status = 200, body = Vec<DataElement>)))]
async fn list_elements(
    State(app): State<App>,
    _caller: Caller,
) -> ApiResult<Json<Vec<DataElement>>> {
    Ok(Json(app.sandbox.catalog().elements().await?))
}

/// Register a data element with its source department (providers); 409 if it already
/// has another.
#[utoipa::path(post, path = "/v1/elements", tag = "catalog", security(("bearer" = [])),
    request_body = NewElement,
    responses((status = 201, body = DataElement), (status = 409, body = Problem), (status = 422, body = Problem)))]
async fn register_element(
    State(app): State<App>,
    caller: Caller,
    ApiJson(body): ApiJson<NewElement>,
) -> ApiResult<(StatusCode, Json<DataElement>)> {
    let element = app
        .sandbox
        .catalog()
        .register_element(
            &caller.principal.actor(),
            &body.code,
            &body.source_department,
            &body.description,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(element)))
}

/// The caller's organisation's jobs, newest first.
#[utoipa::path(get, path = "/v1/jobs", tag = "jobs", security(("bearer" = [])),
    responses((status = 200, body = Vec<Job>)))]
async fn list_jobs(State(app): State<App>, caller: Caller) -> ApiResult<Json<Vec<Job>>> {
    Ok(Json(
        app.sandbox
            .jobs()
            .for_org(&caller.principal.org_id, 100)
            .await?,
    ))
}

/// One job (its organisation, or a supervisor).
#[utoipa::path(get, path = "/v1/jobs/{id}", tag = "jobs", security(("bearer" = [])),
    params(("id" = JobId, Path, description = "job id")),
    responses((status = 200, body = Job), (status = 404, body = Problem)))]
async fn get_job(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<JobId>,
) -> ApiResult<Json<Job>> {
    let job = app
        .sandbox
        .jobs()
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such job"))?;
    caller.owns(&job.org_id)?;
    Ok(Json(job))
}
