//! The ledger over HTTP: entries, checkpoints, the public key, proofs and receipts.
//!
//! Supervisors read every entry. Everyone else reads the public kinds (certificates,
//! listings, suspensions, open-attribute changes, requests to open data, …) and entries
//! their organisation appended or is a party to; any other seq answers 404, as if
//! absent. Checkpoints, proofs between sizes and the public key reveal no entry
//! content, so every role may read them. The reads are public routes (SD22 Art.10): the
//! public, without a key, reads the public kinds only, with their proofs and receipts,
//! so that anyone can check a data asset certificate offline.
//!
//! The list of entries is narrowed by kind, by organisation (the entries it appended or
//! is a party to) and by time range, inside the query, never by filtering a page after
//! it is read: a page always holds up to `limit` matching entries, and every filter
//! applies within what the caller may see.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use pdx_ids::OrgId;
use pdx_ledger::store::{EntryFilter, StoredCheckpoint, Visibility};
use pdx_ledger::{Entry, EntryKind, Hash32, Receipt};

use crate::app::App;
use crate::auth::Role;
use crate::http::json::{ApiPath, ApiQuery};
use crate::http::problem::{ApiError, ApiResult, Problem};
use crate::http::{Caller, Visitor};

/// Routes of this area.
pub fn routes() -> OpenApiRouter<App> {
    OpenApiRouter::new()
        .routes(routes!(list_entries))
        .routes(routes!(get_entry))
        .routes(routes!(get_checkpoint, make_checkpoint))
        .routes(routes!(public_key))
        .routes(routes!(inclusion_proof))
        .routes(routes!(consistency_proof))
        .routes(routes!(receipt))
}

/// Largest page of entries.
pub const MAX_PAGE: u32 = 1000;

fn visibility(visitor: &Visitor) -> Visibility {
    match visitor.principal() {
        Some(p) if p.role == Role::Supervisor => Visibility::All,
        Some(p) => Visibility::Org(p.org_id.to_string()),
        None => Visibility::Public,
    }
}

/// Fetches an entry the visitor may see, or 404.
async fn visible_entry(app: &App, visitor: &Visitor, seq: u64) -> ApiResult<Entry> {
    let entry = app
        .ledger
        .entry(seq)
        .await?
        .ok_or_else(|| ApiError::not_found("no such entry"))?;
    let allowed = match visibility(visitor) {
        Visibility::All => true,
        Visibility::Org(org) => app.ledger.visible_to(&entry, &org).await?,
        Visibility::Public => entry.kind.is_public(),
    };
    if allowed {
        Ok(entry)
    } else {
        Err(ApiError::not_found("no such entry"))
    }
}

/// Paging parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Page {
    /// First seq (default 0).
    pub from: Option<u64>,
    /// Most entries to return (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only entries of this kind (its wire name, e.g. `suspension`); an unknown kind is
    /// a 400 that lists the accepted ones.
    #[param(schema_with = kind_schema)]
    pub kind: Option<String>,
    /// Only entries this organisation (its id, `org-…`) appended or is a party to,
    /// among those the caller may see.
    #[param(value_type = Option<OrgId>)]
    pub org: Option<String>,
    /// Only entries appended at or after this time (RFC 3339, e.g.
    /// `2026-03-01T00:00:00+08:00`).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Only entries appended before this time (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
}

/// The schema of the `kind` filter: the wire names of the entry kinds this build knows.
fn kind_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(EntryKind::known_names()))
        .build()
}

/// A time bound of the entry filter, as ms since epoch: an RFC 3339 time, or a 400 that
/// names the parameter (never the value).
fn time_bound(name: &str, value: Option<&str>) -> ApiResult<Option<i64>> {
    let Some(text) = value else {
        return Ok(None);
    };
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|_| {
            ApiError::bad_request(format!(
                "`{name}` must be an RFC 3339 time, e.g. 2026-03-01T00:00:00+08:00"
            ))
        })?;
    let ms = at.unix_timestamp_nanos() / 1_000_000;
    i64::try_from(ms)
        .map(Some)
        .map_err(|_| ApiError::bad_request(format!("`{name}` is out of range")))
}

/// The organisation filter: a well-formed organisation id, or a 400.
fn org_filter(value: Option<&str>) -> ApiResult<Option<String>> {
    let Some(text) = value else {
        return Ok(None);
    };
    OrgId::parse(text)
        .map(|org| Some(org.into_string()))
        .map_err(|_| ApiError::bad_request("`org` must be an organisation id (org-…)"))
}

/// The kind asked for, if any: a name this build knows, or a 400 listing the known ones.
///
/// An unknown name is refused rather than answered with an empty page, so that a typo
/// (`suspensions`) is not mistaken for "there are none". The name itself is not echoed.
fn requested_kind(kind: Option<&str>) -> ApiResult<Option<EntryKind>> {
    let Some(name) = kind else {
        return Ok(None);
    };
    let kind: EntryKind = match name.parse() {
        Ok(kind) => kind,
        Err(never) => match never {},
    };
    if kind.is_known() {
        Ok(Some(kind))
    } else {
        Err(ApiError::bad_request(format!(
            "kind is not a known entry kind; accepted kinds: {}",
            EntryKind::known_names().join(", ")
        )))
    }
}

/// A page of entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct EntryPage {
    /// Entries visible to the caller, in seq order.
    pub entries: Vec<Entry>,
    /// Where the next page starts, if there may be more.
    pub next_from: Option<u64>,
}

/// Entries visible to the caller, from a seq on, optionally of one kind, of one
/// organisation (appended by it or naming it as a party) and within a time range.
#[utoipa::path(get, path = "/v1/ledger/entries", tag = "ledger", security((), ("bearer" = [])), params(Page),
    responses((status = 200, body = EntryPage), (status = 400, body = Problem)))]
async fn list_entries(
    State(app): State<App>,
    visitor: Visitor,
    ApiQuery(page): ApiQuery<Page>,
) -> ApiResult<Json<EntryPage>> {
    let limit = page.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_PAGE}"
        )));
    }
    let filter = EntryFilter {
        kind: requested_kind(page.kind.as_deref())?,
        org: org_filter(page.org.as_deref())?,
        since_ms: time_bound("since", page.since.as_deref())?,
        until_ms: time_bound("until", page.until.as_deref())?,
    };
    let from = page.from.unwrap_or(0);
    // Seqs are stored as SQL integers: no entry lies beyond i64::MAX.
    if i64::try_from(from).is_err() {
        return Ok(Json(EntryPage {
            entries: Vec::new(),
            next_from: None,
        }));
    }
    let entries = app
        .ledger
        .entries_matching(from, limit, &visibility(&visitor), &filter)
        .await?;
    let next_from = (entries.len() == limit as usize)
        .then(|| entries.last().map(|e| e.seq + 1))
        .flatten();
    Ok(Json(EntryPage { entries, next_from }))
}

/// One entry.
#[utoipa::path(get, path = "/v1/ledger/entries/{seq}", tag = "ledger", security((), ("bearer" = [])),
    params(("seq" = u64, Path, description = "entry seq")),
    responses((status = 200, body = Entry), (status = 404, body = Problem)))]
async fn get_entry(
    State(app): State<App>,
    visitor: Visitor,
    ApiPath(seq): ApiPath<u64>,
) -> ApiResult<Json<Entry>> {
    Ok(Json(visible_entry(&app, &visitor, seq).await?))
}

fn note_response(cp: StoredCheckpoint) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        cp.note,
    )
        .into_response()
}

/// The newest signed checkpoint (C2SP signed note), with every witness cosignature
/// (C2SP tlog-cosignature) received for it.
#[utoipa::path(get, path = "/v1/ledger/checkpoint", tag = "ledger", security((), ("bearer" = [])),
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn get_checkpoint(State(app): State<App>, _visitor: Visitor) -> ApiResult<Response> {
    let mut cp = match app.ledger.latest_checkpoint().await? {
        Some(cp) => cp,
        None => app.ledger.checkpoint().await?,
    };
    // Witnesses' cosignatures ride along as extra signature lines.
    cp.note = app.ledger.with_cosignatures(&cp).await?;
    Ok(note_response(cp))
}

/// Sign a checkpoint at the current size now.
#[utoipa::path(post, path = "/v1/ledger/checkpoint", tag = "ledger", security(("bearer" = [])),
    responses((status = 201, content_type = "text/plain", body = String), (status = 403, body = Problem)))]
async fn make_checkpoint(State(app): State<App>, _caller: Caller) -> ApiResult<Response> {
    let cp = app.ledger.checkpoint().await?;
    let mut resp = note_response(cp);
    *resp.status_mut() = StatusCode::CREATED;
    Ok(resp)
}

/// The log's public key, in signed-note verifier-key format.
#[utoipa::path(get, path = "/v1/ledger/public-key", tag = "ledger", security((), ("bearer" = [])),
    responses((status = 200, content_type = "text/plain", body = String)))]
async fn public_key(State(app): State<App>, _visitor: Visitor) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", app.ledger.verifier().to_vkey()),
    )
        .into_response()
}

/// Inclusion proof parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    /// Entry seq.
    pub seq: u64,
    /// Tree size (default: the newest checkpoint's).
    pub size: Option<u64>,
}

/// An inclusion proof.
#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProof {
    /// Entry seq (leaf index).
    pub seq: u64,
    /// Tree size.
    pub size: u64,
    /// Sibling hashes, bottom-up, hex.
    #[schema(value_type = Vec<String>)]
    pub proof: Vec<Hash32>,
}

/// Inclusion proof of an entry the caller may see.
#[utoipa::path(get, path = "/v1/ledger/proof/inclusion", tag = "ledger", security((), ("bearer" = [])),
    params(InclusionQuery),
    responses((status = 200, body = InclusionProof), (status = 404, body = Problem)))]
async fn inclusion_proof(
    State(app): State<App>,
    visitor: Visitor,
    ApiQuery(q): ApiQuery<InclusionQuery>,
) -> ApiResult<Json<InclusionProof>> {
    visible_entry(&app, &visitor, q.seq).await?;
    let size = match q.size {
        Some(size) => size,
        None => match app.ledger.latest_checkpoint().await? {
            Some(cp) if cp.size > q.seq => cp.size,
            _ => app.ledger.checkpoint().await?.size,
        },
    };
    if q.seq >= size {
        return Err(ApiError::bad_request("seq must be below size"));
    }
    let proof = app.ledger.inclusion_proof(q.seq, size).await?;
    Ok(Json(InclusionProof {
        seq: q.seq,
        size,
        proof,
    }))
}

/// Consistency proof parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// Older tree size.
    pub from: u64,
    /// Newer tree size.
    pub to: u64,
}

/// A consistency proof.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProof {
    /// Older size.
    pub from: u64,
    /// Newer size.
    pub to: u64,
    /// Proof hashes, hex.
    #[schema(value_type = Vec<String>)]
    pub proof: Vec<Hash32>,
}

/// Consistency proof between two tree sizes.
#[utoipa::path(get, path = "/v1/ledger/proof/consistency", tag = "ledger", security((), ("bearer" = [])),
    params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProof), (status = 400, body = Problem), (status = 404, body = Problem)))]
async fn consistency_proof(
    State(app): State<App>,
    _visitor: Visitor,
    ApiQuery(q): ApiQuery<ConsistencyQuery>,
) -> ApiResult<Json<ConsistencyProof>> {
    if q.from > q.to {
        return Err(ApiError::bad_request("from must not exceed to"));
    }
    let proof = app.ledger.consistency_proof(q.from, q.to).await?;
    Ok(Json(ConsistencyProof {
        from: q.from,
        to: q.to,
        proof,
    }))
}

/// An offline receipt (entry + inclusion proof + signed checkpoint) for an entry the
/// caller may see.
#[utoipa::path(get, path = "/v1/ledger/receipt/{seq}", tag = "ledger", security((), ("bearer" = [])),
    params(("seq" = u64, Path, description = "entry seq")),
    responses((status = 200, body = Receipt), (status = 404, body = Problem)))]
async fn receipt(
    State(app): State<App>,
    visitor: Visitor,
    ApiPath(seq): ApiPath<u64>,
) -> ApiResult<Json<Receipt>> {
    visible_entry(&app, &visitor, seq).await?;
    Ok(Json(app.ledger.receipt(seq).await?))
}
