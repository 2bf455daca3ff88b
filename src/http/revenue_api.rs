//! Remittances to public finance over HTTP (GY ch.6; [`pdx_products::revenue`]).
//!
//! A provider region's public finance is the payee `public-finance:<region>` of every
//! sale's split. Its public-finance bureau (财政部门) is an organisation of that region
//! with a `finance` key, and it reads the remittances settled to its own region's
//! account: `GET /v1/public-finance/remittances` (every settled period, oldest first)
//! and `GET /v1/public-finance/remittances/{period}` (one period, `YYYY-MM`; 404 when
//! nothing was remitted to its account then, so another region's remittances are never
//! shown). Supervisors read every public-finance account's (`?region=` narrows). Every
//! other role is refused by the policy table (403). Amounts are integer fen; free
//! public-interest products remit nothing and so never appear.

use axum::Json;
use axum::extract::State;
use pdx_products::{PayeeKind, PayeeRemittance, RemittanceFilter, public_finance_account};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::App;
use crate::auth::Role;
use crate::http::Caller;
use crate::http::json::{ApiPath, ApiQuery};
use crate::http::problem::{ApiError, ApiResult, Problem};

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_remittances))
        .routes(routes!(period_remittances))
}

/// Which public-finance account to read.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RemittanceQuery {
    /// Supervisors only: only this region's account (a public-finance bureau reads its
    /// own region's, always).
    pub region: Option<String>,
}

/// The public-finance account the caller reads: its own organisation's region's for a
/// public-finance bureau; the one `region` names, or every one (None), for a supervisor.
async fn account_of(
    app: &App,
    caller: &Caller,
    region: Option<String>,
) -> ApiResult<Option<String>> {
    match caller.principal.role {
        Role::Supervisor => Ok(region.map(|r| public_finance_account(&r))),
        Role::Finance => {
            if region.is_some() {
                return Err(ApiError::bad_request(
                    "`region` is for supervisors: a public-finance bureau reads its own \
                     region's account",
                ));
            }
            let org = app
                .accounts
                .org(&caller.principal.org_id)
                .await?
                .ok_or_else(|| ApiError::internal("the caller's organisation does not exist"))?;
            // The account belongs to the bureau's own organisation and region.
            caller.owns(&org.id)?;
            Ok(Some(public_finance_account(&org.region)))
        }
        // The policy table lets no other role in; should it change, fail closed.
        _ => Err(ApiError::forbidden(
            "only a public-finance bureau and supervisors read remittances to public finance",
        )),
    }
}

/// Remittances to public finance, oldest period first: a public-finance bureau's own
/// region's account, or every account for supervisors (`region` narrows).
#[utoipa::path(get, path = "/v1/public-finance/remittances", tag = "products", security(("bearer" = [])),
    params(RemittanceQuery),
    responses((status = 200, body = Vec<PayeeRemittance>), (status = 400, body = Problem), (status = 403, body = Problem)))]
async fn list_remittances(
    State(app): State<App>,
    caller: Caller,
    ApiQuery(q): ApiQuery<RemittanceQuery>,
) -> ApiResult<Json<Vec<PayeeRemittance>>> {
    let payee = account_of(&app, &caller, q.region).await?;
    let filter = RemittanceFilter {
        payee_kind: Some(PayeeKind::PublicFinance),
        payee,
        period: None,
    };
    Ok(Json(app.products.remittances(&filter).await?))
}

/// The remittances to public finance of one settled period (`YYYY-MM`): a public-finance
/// bureau's own account's (404 when nothing was remitted to it then), or every
/// account's for supervisors (404 when none).
#[utoipa::path(get, path = "/v1/public-finance/remittances/{period}", tag = "products", security(("bearer" = [])),
    params(("period" = String, Path, description = "period, YYYY-MM (UTC)", pattern = r"^(2\d{3}|[3-8]\d{3}|9[0-8]\d{2}|99[0-8]\d|999[0-8])-(0[1-9]|1[0-2])$"), RemittanceQuery),
    responses((status = 200, body = Vec<PayeeRemittance>), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 422, body = Problem)))]
async fn period_remittances(
    State(app): State<App>,
    caller: Caller,
    ApiPath(period): ApiPath<String>,
    ApiQuery(q): ApiQuery<RemittanceQuery>,
) -> ApiResult<Json<Vec<PayeeRemittance>>> {
    let payee = account_of(&app, &caller, q.region).await?;
    let filter = RemittanceFilter {
        payee_kind: Some(PayeeKind::PublicFinance),
        payee,
        period: Some(period),
    };
    let lines = app.products.remittances(&filter).await?;
    if lines.is_empty() {
        return Err(ApiError::not_found(
            "no remittance to this public-finance account in that period",
        ));
    }
    Ok(Json(lines))
}
