//! The HTTP API, read top-down:
//!
//! 1. [`router`] assembles one router per area ([`system`], [`keys`], [`ledger_api`]),
//!    collecting the OpenAPI document from the handlers' annotations.
//! 2. [`observe`] (outermost) gives each request an id, a timeout, an access-log line
//!    and metrics.
//! 3. [`authorize`] (on `/v1` routes) finds the route's [`Policy`] in [`policies`],
//!    authenticates the bearer key and checks the role; every non-GET route of a
//!    suspended organisation is refused. A route without a policy is refused, so
//!    forgetting one fails closed; a test also fails the build. The admission limits
//!    ([`limits`]: rate per key, lock-out of an address after failed keys, concurrent
//!    uploads, declared body sizes) are applied here too, around authentication.
//! 4. Handlers take [`Caller`] and call [`Caller::owns`] for resources owned by an
//!    organisation; that is the one ownership check.
//!
//! Every 413 says `Connection: close` (`close_after_too_large`): the rest of the body
//! may be unread, so the connection ends after the full answer and a keep-alive client
//! opens a new one. The streamed uploads also discard the rest within a bound first
//! ([`body`]).

pub mod audit_api;
pub mod body;
pub mod catalog;
pub mod consent_api;
pub mod fhe_api;
pub mod json;
pub mod keys;
pub mod ledger_api;
pub mod limits;
pub mod metrics;
pub mod open_attributes_api;
pub mod policies;
pub mod problem;
pub mod products_api;
pub mod sandbox_api;
pub mod system;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use pdx_ids::{
    AttributeChangeId, DatasetId, FheKeyId, FheQueryId, FheTemplateId, GrantId, JobId, KeyId,
    ModelId, ObjectionId, OrderId, OrgId, OutputId, ProductId, RelaxationId,
};

use crate::app::App;
use crate::auth::{Policy, Principal};
use problem::{ApiError, REQUEST_ID};

#[derive(OpenApi)]
#[openapi(
    info(title = "pdx", description = "Privacy-preserving public-data product and trading sandbox"),
    modifiers(&BearerAuth),
    // The ids in paths, each a named string schema with its pattern, listed here so that
    // every path parameter's reference resolves even where no body names the kind.
    components(schemas(
        problem::Problem,
        AttributeChangeId,
        DatasetId,
        FheKeyId,
        FheQueryId,
        FheTemplateId,
        GrantId,
        JobId,
        KeyId,
        ModelId,
        ObjectionId,
        OrderId,
        OrgId,
        OutputId,
        ProductId,
        RelaxationId
    ))
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The authenticated caller and the policy of the route being served.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Who is calling.
    pub principal: Principal,
    /// The route's policy.
    pub policy: Policy,
}

impl Caller {
    /// Checks that the caller may touch a resource owned by `owner_org` under this
    /// route's policy (404 if not, so other organisations' ids cannot be probed).
    pub fn owns(&self, owner_org: &OrgId) -> Result<(), ApiError> {
        self.principal
            .authorize(&self.policy, Some(owner_org))
            .map_err(ApiError::from)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            // Only reachable if a handler is mounted outside the auth layer: fail closed.
            .ok_or_else(|| ApiError::forbidden("this route has no authorization policy"))
    }
}

/// Key id of the caller, attached to the response for the access log.
#[derive(Clone)]
struct LoggedKey(KeyId);

/// The `/v1` API routes with their OpenAPI document (before auth is layered on).
pub fn api_routes() -> OpenApiRouter<App> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(keys::routes())
        .merge(catalog::routes())
        .merge(open_attributes_api::routes())
        .merge(ledger_api::routes())
        .merge(sandbox_api::routes())
        .merge(fhe_api::routes())
        .merge(consent_api::routes())
        .merge(audit_api::routes())
        .merge(products_api::routes())
}

/// The whole application router.
pub fn router(app: App) -> Router {
    let (api, openapi) = api_routes().split_for_parts();
    // One set of admission limits per router, so per server process.
    let limits = Arc::new(limits::Limits::new(&app.config));
    let api = api.route_layer(middleware::from_fn_with_state(
        (app.clone(), limits),
        authorize,
    ));
    let body_limit = app.config.body_limit;
    Router::new()
        .merge(system::routes(openapi))
        .merge(api)
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::map_response(close_after_too_large))
        .layer(middleware::from_fn_with_state(app.clone(), observe))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a handler panicked").into_response()
        }))
        .with_state(app)
}

fn new_request_id() -> String {
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// Marks every 413 with `Connection: close`, whoever built it (the problems of
/// [`ApiError`] already are; this catches any other, e.g. a body-limit rejection that
/// did not go through [`ApiError`]). The rest of such a request's body may be unread,
/// so hyper closes the connection after writing the whole answer; the header tells a
/// keep-alive client beforehand not to reuse it. (Over HTTP/2 hyper drops the header.)
async fn close_after_too_large(mut resp: Response) -> Response {
    if resp.status() == StatusCode::PAYLOAD_TOO_LARGE {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// Request id, timeout, access log and metrics.
async fn observe(State(app): State<App>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let id = new_request_id();
    let method = req.method().as_str().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let timeout: Duration = app.config.request_timeout;
    let mut resp = REQUEST_ID
        .scope(id.clone(), async move {
            match tokio::time::timeout(timeout, next.run(req)).await {
                Ok(resp) => resp,
                Err(_) => ApiError::unavailable("the request took longer than the server allows")
                    .into_response(),
            }
        })
        .await;
    let latency = started.elapsed();
    let status = resp.status().as_u16();
    let key_id = resp
        .extensions()
        .get::<LoggedKey>()
        .map(|k| k.0.to_string())
        .unwrap_or_else(|| "-".into());
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    tracing::info!(
        target: "pdx::access",
        request_id = %id,
        key_id = %key_id,
        method = %method,
        route = %route,
        status,
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request"
    );
    app.metrics.observe(&route, &method, status, latency);
    resp
}

/// Authentication, the admission limits and the role check, for every `/v1` route.
async fn authorize(
    State((app, limits)): State<(App, Arc<limits::Limits>)>,
    mut req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    let Some(policy) = policies::policy_for(req.method(), &route) else {
        tracing::error!(%route, "route has no authorization policy; refusing");
        return ApiError::forbidden("this route has no authorization policy").into_response();
    };
    // A locked-out address is refused before its key is looked at, valid or not.
    let client = limits::client_address(&req);
    let carries_key = req.headers().contains_key(header::AUTHORIZATION);
    if carries_key && let Err(refused) = limits.check_address(client) {
        return ApiError::from(refused).into_response();
    }
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        if carries_key {
            limits.record_failure(client);
        }
        return ApiError::unauthorized("send Authorization: Bearer <api key>").into_response();
    };
    let principal = match app.accounts.authenticate(token).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            limits.record_failure(client);
            return ApiError::unauthorized("the API key is unknown or revoked").into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let key_id = principal.key_id.clone();
    if let Err(refused) = limits.check_rate(&key_id) {
        let mut resp = ApiError::from(refused).into_response();
        resp.extensions_mut().insert(LoggedKey(key_id));
        return resp;
    }
    // Every route that is not a GET writes, whatever its policy says: a suspended
    // organisation's keys are refused here, centrally, from its next request on (the
    // flag is read with the key on every request; nothing is cached).
    let policy = Policy {
        writes: policy.writes || req.method() != axum::http::Method::GET,
        ..policy
    };
    let mut resp = match principal.authorize(&policy, None) {
        Ok(()) => {
            req.extensions_mut().insert(Caller { principal, policy });
            limits.run(&route, req, next).await
        }
        Err(denied) => ApiError::from(denied).into_response(),
    };
    resp.extensions_mut().insert(LoggedKey(key_id));
    resp
}
