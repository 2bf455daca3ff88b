//! How a provider's data is used, and the record of every download
//! ([`pdx_sandbox::usage`]).
//!
//! - `GET /v1/datasets/{id}/usage` (SD22 Art.14): the dataset's grants (applicant,
//!   purpose, status) and, per version, the model runs and FHE queries that read it (by
//!   organisation and status), their outputs and releases, and the downloads that derive
//!   from it (by organisation and kind). For the dataset's provider (another
//!   organisation's dataset is "not found"), supervisors and the data authority; every
//!   other role is refused by the policy table (403).
//! - The download routes (a version's de-identified rows, an output, a product's
//!   archive) record each download as a `DataAccess` ledger entry before the bytes leave
//!   (GD18 Art.28; XT Art.34(4)), through the helpers here: one append per download.

use axum::Json;
use axum::extract::State;
use pdx_algorithms::deid::DataFrame;
use pdx_algorithms::deid::storage::{to_csv_bytes, to_json_rows};
use pdx_ids::DatasetId;
use pdx_ledger::Actor;
use pdx_sandbox::usage::UsageReport;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::auth::Role;
use crate::http::catalog::dataset_or_404;
use crate::http::json::ApiPath;
use crate::http::problem::{ApiError, ApiResult, Problem};
use crate::http::{Caller, Visitor};

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new().routes(routes!(dataset_usage))
}

/// The organisation the ledger names for a download without a key (the public reads
/// unconditionally open data, SD22 Art.10).
pub const PUBLIC_ACTOR_ORG: &str = "public";

/// The ledger actor of a download: the caller, or the public.
pub(crate) fn visitor_actor(visitor: &Visitor) -> Actor {
    match visitor.principal() {
        Some(principal) => principal.actor(),
        None => Actor {
            org: PUBLIC_ACTOR_ORG.into(),
            key_id: "anonymous".into(),
        },
    }
}

/// Rows as the bytes of a `json` or `csv` answer, with their media type, so that a
/// download can be recorded with its size and hash before it is sent.
pub(crate) fn frame_body(
    frame: &mut DataFrame,
    format: &str,
) -> ApiResult<(&'static str, Vec<u8>)> {
    match format {
        "json" => {
            let bytes =
                serde_json::to_vec(&to_json_rows(frame, usize::MAX)).map_err(ApiError::internal)?;
            Ok(("application/json", bytes))
        }
        _ => {
            let bytes = to_csv_bytes(frame).map_err(ApiError::internal)?;
            Ok(("text/csv; charset=utf-8", bytes))
        }
    }
}

/// How a dataset is used (SD22 Art.14): its grants with applicant, purpose and status;
/// per version, model runs and FHE queries by organisation and status, their outputs and
/// releases, and downloads by organisation and kind. Its provider, supervisors and the
/// data authority.
#[utoipa::path(get, path = "/v1/datasets/{id}/usage", tag = "catalog", security(("bearer" = [])),
    params(("id" = DatasetId, Path, description = "dataset id")),
    responses((status = 200, body = UsageReport), (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn dataset_usage(
    State(app): State<App>,
    caller: Caller,
    ApiPath(id): ApiPath<DatasetId>,
) -> ApiResult<Json<UsageReport>> {
    let dataset = dataset_or_404(&app, &caller, &id).await?;
    // Supervisors and the data authority read every dataset's; a provider its own.
    let provider = match caller.principal.role {
        Role::Supervisor | Role::Authority => None,
        _ => {
            caller.owns(&dataset.provider_org)?;
            Some(&caller.principal.org_id)
        }
    };
    Ok(Json(
        app.sandbox.usage().report(&dataset.id, provider).await?,
    ))
}
