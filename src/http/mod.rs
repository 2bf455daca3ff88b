//! The HTTP API, read top-down:
//!
//! 1. [`router`] assembles one router per area ([`system`], [`keys`], [`ledger_api`]),
//!    collecting the OpenAPI document from the handlers' annotations.
//! 2. [`observe`] (outermost) gives each request an id, a timeout, an access-log line
//!    and metrics.
//! 3. [`authorize`] (on `/v1` routes) finds the route's [`Policy`] in [`policies`],
//!    authenticates the bearer key and checks the role; a suspended organisation is
//!    refused every non-GET route and every read not open to it
//!    ([`policies::while_suspended`], XT Art.33). A route without a policy is refused,
//!    so forgetting one fails closed; a test also fails the build. The admission limits
//!    ([`limits`]: rate per key, lock-out of an address after failed keys, rate per
//!    address without a key, concurrent uploads, declared body sizes) are applied here
//!    too, around authentication.
//!    A public route ([`Owner::Public`]: the open catalog, SD22 Art.10) answers a
//!    request that carries no `Authorization` header at all, as the public; one that
//!    carries a header is authenticated like any other, so a bad key is a 401 there too
//!    (and counts towards the address's lock-out), never a quiet fall-back to the public.
//!    The web portal's pages ([`crate::portal`]) call these routes in-process as their
//!    viewer: a signed-in viewer's request carries a `PortalIdentity` (a request
//!    extension no client can set) instead of a header, and is then treated exactly as
//!    a request with that key; an anonymous viewer's carries neither, as the public.
//! 4. Handlers take [`Caller`] and call [`Caller::owns`] for resources owned by an
//!    organisation; that is the one ownership check. Handlers of public routes take
//!    [`Visitor`] instead: a caller with a key, or [`Visitor::Anonymous`]. A handler
//!    that takes [`Caller`] can never be reached without a key (its extractor answers
//!    401), so mounting one on a public route fails closed.
//!
//! Every 413 says `Connection: close` (`close_after_too_large`): the rest of the body
//! may be unread, so the connection ends after the full answer and a keep-alive client
//! opens a new one. The streamed uploads also discard the rest within a bound first
//! ([`body`]).

pub mod api_doc;
pub mod audit_api;
pub mod body;
pub mod catalog;
pub mod classification_api;
pub mod consent_api;
pub mod destruction_api;
pub mod fhe_api;
pub mod governance_api;
pub mod json;
pub mod keys;
pub mod ledger_api;
pub mod limits;
pub mod metrics;
pub mod open_attributes_api;
pub mod open_data_requests_api;
pub mod policies;
pub mod problem;
pub mod products_api;
pub mod revenue_api;
pub mod sandbox_api;
pub mod sharing_api;
pub mod system;
pub mod usage_api;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rand::RngCore;
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use pdx_ids::{
    AttributeChangeId, DatasetId, FheKeyId, FheQueryId, FheTemplateId, FilingId, GrantId, JobId,
    KeyId, ModelId, ObjectionId, OpenDataRequestId, OrderId, OrgId, OutputId, ProductId,
    RelaxationId, ShareRequestId,
};
// The data authority's evaluations and rectification orders (`governance_api`).
use pdx_ids::{EvaluationId, RectificationId};

use crate::app::App;
use crate::auth::{Owner, Policy, Principal};
use problem::{ApiError, REQUEST_ID};

#[derive(OpenApi)]
#[openapi(
    info(title = "pdx", description = "Privacy-preserving public-data product and trading sandbox"),
    modifiers(&BearerAuth),
    // The ids in paths, each a named string schema with its pattern, listed here so that
    // every path parameter's reference resolves even where no body names the kind (utoipa
    // collects the schemas of bodies, not of parameters); so is every other type that
    // only a query parameter names.
    components(schemas(
        problem::Problem,
        pdx_algorithms::deid::ingest::TextEncoding,
        AttributeChangeId,
        DatasetId,
        EvaluationId,
        FheKeyId,
        FheQueryId,
        FheTemplateId,
        FilingId,
        GrantId,
        JobId,
        KeyId,
        ModelId,
        ObjectionId,
        OpenDataRequestId,
        OrderId,
        OrgId,
        OutputId,
        ProductId,
        RectificationId,
        RelaxationId,
        ShareRequestId
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
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        if parts.extensions.get::<AnonymousRequest>().is_some() {
            // A public route whose handler needs a key: fail closed, as without one.
            return Err(ApiError::unauthorized(
                "send Authorization: Bearer <api key>",
            ));
        }
        // Only reachable if a handler is mounted outside the auth layer: fail closed.
        Err(ApiError::forbidden(
            "this route has no authorization policy",
        ))
    }
}

/// Marks a request without a key on a public route (set by [`authorize`] only).
#[derive(Clone, Copy, Debug)]
struct AnonymousRequest;

/// Who calls a public route ([`Owner::Public`]; the open catalog, SD22 Art.10): a caller
/// with a valid key, or the public without one. It is a type of its own, so a handler
/// must decide what the public sees; there is no made-up organisation to forget about.
#[derive(Clone, Debug)]
pub enum Visitor {
    /// A caller with a valid key, authorised as on any other route.
    Key(Caller),
    /// The public: no `Authorization` header at all.
    Anonymous,
}

impl Visitor {
    /// The authenticated caller, if any.
    pub fn caller(&self) -> Option<&Caller> {
        match self {
            Visitor::Key(caller) => Some(caller),
            Visitor::Anonymous => None,
        }
    }

    /// The caller's principal, if any.
    pub fn principal(&self) -> Option<&Principal> {
        self.caller().map(|c| &c.principal)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Visitor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(Visitor::Key(caller.clone()));
        }
        if parts.extensions.get::<AnonymousRequest>().is_some() {
            return Ok(Visitor::Anonymous);
        }
        // Only reachable if a handler is mounted outside the auth layer: fail closed.
        Err(ApiError::forbidden(
            "this route has no authorization policy",
        ))
    }
}

/// Key id of the caller, attached to the response for the access log (by `authorize`
/// for the API, by the portal for a signed-in viewer's page).
#[derive(Clone)]
pub(crate) struct LoggedKey(pub(crate) KeyId);

/// The identity of a web-portal viewer who signed in: [`crate::portal`] puts it on the
/// requests its pages send in-process to the `/v1` router, in place of an
/// `Authorization` header, and [`authorize`] then treats the request as one made with
/// that key (fresh principal, rate limit, role and suspension checks, [`Caller`]).
///
/// It is safe because no client can set it: request extensions exist only inside the
/// process (hyper builds every request off the wire with none, and axum adds only
/// `ConnectInfo`), and the portal sets it only for the key of a session the viewer's
/// cookie names. The key is read afresh on every request
/// ([`crate::accounts::Accounts::principal_of_key`]), so a revoked key's session is
/// refused (401) from its next request on.
#[derive(Clone, Debug)]
pub(crate) struct PortalIdentity(pub(crate) KeyId);

/// The `/v1` API routes with their OpenAPI document (before auth is layered on). The
/// document gets the responses every operation shares once all routes are in
/// ([`api_doc::StandardResponses`]), its nested tagged unions spelled out
/// ([`api_doc::FlatUnions`]) and each integer's range ([`api_doc::IntegerRanges`]).
pub fn api_routes() -> OpenApiRouter<App> {
    let mut routes = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(keys::routes())
        .merge(catalog::routes())
        .merge(open_attributes_api::routes())
        .merge(destruction_api::routes())
        .merge(usage_api::routes())
        .merge(classification_api::routes())
        .merge(open_data_requests_api::routes())
        .merge(governance_api::routes())
        .merge(ledger_api::routes())
        .merge(sandbox_api::routes())
        .merge(sharing_api::routes())
        .merge(fhe_api::routes())
        .merge(consent_api::routes())
        .merge(audit_api::routes())
        .merge(products_api::routes())
        .merge(revenue_api::routes());
    utoipa::Modify::modify(&api_doc::StandardResponses, routes.get_openapi_mut());
    utoipa::Modify::modify(&api_doc::FlatUnions, routes.get_openapi_mut());
    utoipa::Modify::modify(&api_doc::IntegerRanges, routes.get_openapi_mut());
    routes
}

/// The whole application router: the system routes, the `/v1` API and the web portal's
/// pages ([`crate::portal`]), all under [`observe`], the body limit and the panic guard.
pub fn router(app: App) -> Router {
    let (api, openapi) = api_routes().split_for_parts();
    // One set of admission limits per router, so per server process.
    let limits = Arc::new(limits::Limits::new(&app.config));
    let api = api.route_layer(middleware::from_fn_with_state(
        (app.clone(), limits),
        authorize,
    ));
    let body_limit = app.config.body_limit;
    // The portal's pages call this same router in-process, through the same `authorize`
    // and the same limits (one policy table: a page is refused exactly when its API
    // route would be). The body limit is the one the server applies to the API.
    let portal = crate::portal::Portal {
        api: api
            .clone()
            .layer(DefaultBodyLimit::max(body_limit))
            .with_state(app.clone()),
        secure_cookies: app.config.tls_enabled(),
        app: app.clone(),
    };
    Router::new()
        .merge(system::routes(openapi))
        .merge(api)
        .with_state::<()>(app.clone())
        .merge(crate::portal::routes(portal))
        // `/v1/...` keeps the API's problem+json 404; other paths get the portal's page.
        .fallback(crate::portal::not_found)
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(middleware::map_response(close_after_too_large))
        .layer(middleware::from_fn_with_state(app, observe))
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::internal("a handler panicked").into_response()
        }))
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
    let client = limits::client_address(&req);
    // A portal page acting in-process as its signed-in viewer ([`PortalIdentity`]).
    let portal_identity = req.extensions_mut().remove::<PortalIdentity>();
    let carries_key =
        portal_identity.is_some() || req.headers().contains_key(header::AUTHORIZATION);
    // The public, without a key, on a public route (SD22 Art.10): no principal at all,
    // counted per address. Only the absence of the header makes a request anonymous: a
    // header that does not authenticate is a 401 below, on public routes too.
    if !carries_key && policy.owner == Owner::Public {
        let writes = policy.writes || req.method() != axum::http::Method::GET;
        if let Err(refused) = limits.check_anonymous(client, writes) {
            return ApiError::from(refused).into_response();
        }
        req.extensions_mut().insert(AnonymousRequest);
        return limits.run(&route, req, next).await;
    }
    let principal = match portal_identity {
        // The session proved the key at sign-in; its row is read afresh here. The
        // lock-out is not applied: a session is no guess at a key.
        Some(PortalIdentity(key_id)) => match app.accounts.principal_of_key(&key_id).await {
            Ok(Some(p)) => p,
            Ok(None) => {
                return ApiError::unauthorized(
                    "the API key of this portal session is revoked; sign in again",
                )
                .into_response();
            }
            Err(e) => return ApiError::from(e).into_response(),
        },
        None => match bearer_principal(&app, &limits, req.headers(), client).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        },
    };
    let key_id = principal.key_id.clone();
    if let Err(refused) = limits.check_rate(&key_id) {
        let mut resp = ApiError::from(refused).into_response();
        resp.extensions_mut().insert(LoggedKey(key_id));
        return resp;
    }
    // Every route that is not a GET writes, whatever its policy says: a suspended
    // organisation's keys are refused here, centrally, from its next request on, on
    // every write and every read not open to it (XT Art.33; the flag is read with the
    // key on every request; nothing is cached).
    let policy = Policy {
        writes: policy.writes || req.method() != axum::http::Method::GET,
        ..policy
    };
    let while_suspended = policies::while_suspended(req.method(), &route);
    let mut resp = match principal.admit(&policy, while_suspended) {
        Ok(()) => {
            req.extensions_mut().insert(Caller { principal, policy });
            limits.run(&route, req, next).await
        }
        Err(denied) => ApiError::from(denied).into_response(),
    };
    resp.extensions_mut().insert(LoggedKey(key_id));
    resp
}

/// The principal of a request's `Authorization: Bearer` key, under the lock-out of
/// addresses that failed too often ([`limits`]): a locked-out address is refused before
/// its key is looked at, valid or not, and every failure counts towards its lock-out.
async fn bearer_principal(
    app: &App,
    limits: &limits::Limits,
    headers: &HeaderMap,
    client: Option<IpAddr>,
) -> Result<Principal, ApiError> {
    let carries_key = headers.contains_key(header::AUTHORIZATION);
    if carries_key && let Err(refused) = limits.check_address(client) {
        return Err(ApiError::from(refused));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token else {
        if carries_key {
            limits.record_failure(client);
        }
        return Err(ApiError::unauthorized(
            "send Authorization: Bearer <api key>",
        ));
    };
    match app.accounts.authenticate(token).await {
        Ok(Some(p)) => Ok(p),
        Ok(None) => {
            limits.record_failure(client);
            Err(ApiError::unauthorized("the API key is unknown or revoked"))
        }
        Err(e) => Err(ApiError::from(e)),
    }
}
