//! The unified catalog (GD21 Art.10, XT Art.11): dataset metadata, the data-element
//! registry and search.
//!
//! **One data, one source (GD21 Art.14).** A data element such as
//! `enterprise.registration` has exactly one legally designated source department. The
//! first registration fixes it; a later registration (standalone or through a dataset
//! that carries the element) naming another department is a conflict. The check and the
//! insert run in one write transaction, and the primary key settles a race on
//! PostgreSQL.
//!
//! **Life cycle (GD21 Art.10–11; XT Art.12, 14).** A registration is a *draft*; its
//! provider submits it, and the data authority publishes it or returns it with a reason
//! ([`crate::lifecycle`]). Until it is published an entry is in nobody's catalog but its
//! provider's, the authority's and supervisors' ([`CatalogReader`]), and it is
//! unreachable by developers on every path ([`Dataset::reachable_by_developers`]).
//! Every change of its metadata is a catalog revision, kept as history.
//!
//! **Open attributes (SD22 Art.8).** Every published entry, whatever its open
//! attribute, is visible with its schema to every authenticated role. A not-open
//! dataset (不予开放) is otherwise unreachable by developers on every path, through the
//! one check [`Dataset::reachable_by_developers`]; it is opened only as a de-identified
//! derivative registered as a dataset of its own, with its own certificate (SD22
//! Art.8; GD21 Art.32). Level L4 data is never unconditionally open, on any path, and a
//! not-shared classification is filed with the data authority with its legal basis
//! (GD21 Art.13): [`crate::classification`] has the rule per level.
//!
//! **Changes and emergencies (SD22 Art.8, 10, 20; XT Art.23(7)).** A published entry's
//! open attribute changes only through [`crate::open_attributes`], with the data
//! authority's approval. The authority may relax it for a stated emergency until an end
//! date: while the relaxation lasts, [`Dataset::effective_open_attribute`] is the
//! relaxed attribute, and every access rule reads that field. It is computed on every
//! read from the relaxation's end, so the catalog's attribute applies again at the end
//! whether or not the periodic check has recorded it yet.

use pdx_algorithms::deid::schema::DatasetSchema;
use pdx_ids::{DatasetId, OrgId, RelaxationId};
use pdx_ledger::db::now_ms;
use pdx_ledger::{Actor, Hash32};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::store::{self, is_unique_violation, where_clause};
use crate::{Result, SandboxError, actor_key, actor_org};

crate::service! {
    /// Datasets, the data-element registry and catalog search.
    Catalog
}

/// Classification level (分级), L1 (lowest) to L4.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Level {
    /// Level 1.
    L1,
    /// Level 2.
    L2,
    /// Level 3.
    L3,
    /// Level 4.
    L4,
}

/// Share type (GD21 Art.12).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ShareType {
    /// Shared without conditions.
    Unconditional,
    /// Shared under stated conditions.
    Conditional,
    /// Not shared.
    NotShared,
}

/// Open attribute (SD22 Art.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OpenAttribute {
    /// Open to everyone; de-identified downloads allowed.
    Unconditional,
    /// Open under a grant (open-use agreement); only results leave.
    Conditional,
    /// Not open (不予开放): unreachable by developers on every path (see
    /// [`Dataset::reachable_by_developers`]). It can be opened only as a de-identified
    /// derivative registered as a dataset of its own, with its own certificate.
    NotOpen,
}

/// Where a catalog entry is in its life cycle (GD21 Art.10–11; XT Art.12, 14).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CatalogStatus {
    /// Registered by its provider, not yet submitted.
    Draft,
    /// Submitted; the data authority must approve or return it by its review deadline.
    Submitted,
    /// Approved by the data authority: in the public catalog.
    Published,
    /// Returned by the data authority with a reason; its provider may edit and
    /// resubmit it.
    Returned,
}

macro_rules! wire_name {
    ($t:ty) => {
        impl $t {
            /// The wire name.
            pub fn as_str(self) -> String {
                serde_json::to_value(self)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default()
            }

            /// Parses a stored wire name (an internal fault when it is not one).
            pub(crate) fn parse(s: &str) -> Result<Self> {
                serde_json::from_value(serde_json::Value::String(s.to_string())).map_err(|_| {
                    SandboxError::Internal(format!(
                        "stored value {s:?} is not a {}",
                        stringify!($t)
                    ))
                })
            }
        }
    };
}
wire_name!(Level);
wire_name!(ShareType);
wire_name!(OpenAttribute);
wire_name!(CatalogStatus);

impl OpenAttribute {
    /// How strict the attribute is: 0 for unconditional, 1 for conditional, 2 for not
    /// open (SD22 Art.8).
    pub fn strictness(self) -> u8 {
        match self {
            OpenAttribute::Unconditional => 0,
            OpenAttribute::Conditional => 1,
            OpenAttribute::NotOpen => 2,
        }
    }
}

/// What a provider sends to register a dataset.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewDataset {
    /// Title.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = r"\S"))]
    pub title: String,
    /// Description.
    #[serde(default)]
    pub description: String,
    /// Theme, e.g. `census`, `enterprise`, `utilities`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = r"\S"))]
    pub theme: String,
    /// The legally designated source department.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = r"\S"))]
    pub source_department: String,
    /// Collecting department.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = r"\S"))]
    pub collecting_department: String,
    /// Approving department.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = r"\S"))]
    pub approving_department: String,
    /// Providing department.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = r"\S"))]
    pub providing_department: String,
    /// Data form, e.g. `table`.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, pattern = r"\S"))]
    pub data_form: String,
    /// Update frequency: `daily`, `weekly`, `monthly`, `quarterly`, `yearly` or
    /// `irregular` ([`crate::quality::UpdateFrequency`]; anything else is a 422). A
    /// published dataset's next version is due one period after its latest, plus a grace
    /// of 5 working days (GD21 Art.16; XT Art.20).
    #[cfg_attr(feature = "openapi", schema(value_type = crate::quality::UpdateFrequency))]
    pub update_frequency: String,
    /// Classification level.
    pub level: Level,
    /// Share type.
    pub share_type: ShareType,
    /// Conditions of sharing (required for conditional sharing).
    #[serde(default)]
    pub share_conditions: String,
    /// Legal basis (required unless shared unconditionally).
    #[serde(default)]
    pub legal_basis: String,
    /// Open attribute, as the catalog records it (an emergency relaxation does not
    /// change it; see [`Dataset::effective_open_attribute`]).
    pub open_attribute: OpenAttribute,
    /// Results may serve research only: products built on it carry only the
    /// `research_only` licence.
    #[serde(default)]
    pub research_only: bool,
    /// Column schema with roles and de-identification rules.
    pub schema: DatasetSchema,
    /// Data elements carried, e.g. `enterprise.registration`.
    #[serde(default)]
    pub elements: Vec<String>,
}

/// A catalog entry.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Dataset {
    /// Dataset id.
    pub id: DatasetId,
    /// Providing organisation.
    pub provider_org: OrgId,
    /// The registered metadata.
    #[serde(flatten)]
    #[cfg_attr(feature = "openapi", schema(schema_with = open_metadata_schema))]
    pub meta: NewDataset,
    /// Latest certified version not destroyed, if any.
    pub latest_version: Option<u64>,
    /// Registered, ms since epoch.
    pub created_ms: i64,
    /// Last change, ms since epoch.
    pub updated_ms: i64,
    /// Where the entry is in its life cycle: draft, submitted, published or returned.
    pub status: CatalogStatus,
    /// Its current catalog revision (1 at registration; each metadata edit adds one).
    pub revision: u64,
    /// Its last submission for review, ms since epoch.
    pub submitted_ms: Option<i64>,
    /// The data authority's answer deadline for that submission (`YYYY-MM-DD`, UTC),
    /// in working days.
    pub review_due: Option<String>,
    /// The data authority's decision on that submission, ms since epoch.
    pub reviewed_ms: Option<i64>,
    /// Why the data authority returned the entry, while it is returned.
    pub return_reason: Option<String>,
    /// The open attribute in force now, which every access rule reads: the catalog's
    /// `open_attribute`, or an emergency relaxation's while it lasts (XT Art.23(7)).
    pub effective_open_attribute: OpenAttribute,
    /// The emergency relaxation in force now, if any.
    #[serde(default)]
    pub emergency_relaxation: Option<RelaxationInForce>,
    /// Its tombstone once its provider destroyed it (GD21 Art.40;
    /// [`crate::destruction`]); `null` while it lives. A destroyed entry stays readable
    /// with its versions' metadata and certificates, and nothing more is done with it.
    #[serde(default)]
    pub destroyed: Option<crate::destruction::Tombstone>,
}

/// The schema of a [`Dataset`]'s flattened metadata: [`NewDataset`]'s, inline, without
/// its `additionalProperties: false`. A registration is closed (an unknown field is a
/// 422), but in a catalog entry the metadata sits in an `allOf` beside the entry's own
/// fields, and a closed member would refuse those: no entry could match its schema.
#[cfg(feature = "openapi")]
fn open_metadata_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::Schema;
    let mut schema = <NewDataset as utoipa::PartialSchema>::schema();
    if let RefOr::T(Schema::Object(object)) = &mut schema {
        object.additional_properties = None;
    }
    schema
}

/// An emergency relaxation of a dataset's open attribute while it is in force (XT
/// Art.23(7); see [`crate::open_attributes`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RelaxationInForce {
    /// The relaxation's id.
    pub id: RelaxationId,
    /// The attribute in force while it lasts.
    pub relaxed_to: OpenAttribute,
    /// The emergency, as the data authority stated it.
    pub emergency: String,
    /// The last day it is in force, `YYYY-MM-DD` (UTC).
    pub until: String,
    /// When it ends, ms since epoch (00:00 UTC of the day after `until`).
    pub ends_ms: i64,
}

/// The refusal every path gives a developer who reaches for a not-open dataset (see
/// [`Dataset::reachable_by_developers`]).
pub const NOT_OPEN_REFUSAL: &str = "this dataset is not open (不予开放): developers cannot \
    apply for grants on it, run models or dry runs on it, or read its rows; it can be \
    opened only as a de-identified derivative with its own certificate (SD22 Art.8; GD21 \
    Art.32)";

/// The refusal every path gives a developer who reaches for a catalog entry that the
/// data authority has not published (see [`Dataset::reachable_by_developers`]).
pub const NOT_PUBLISHED_REFUSAL: &str = "this catalog entry is not published yet: \
    developers reach a dataset only once the data authority has approved its catalog \
    entry (GD21 Art.10-11)";

impl Dataset {
    /// The one check that keeps unpublished entries and not-open data (不予开放) out of
    /// developers' reach. An entry the data authority has not published (a draft, or
    /// one submitted or returned; GD21 Art.10–11) is a 403 with
    /// [`NOT_PUBLISHED_REFUSAL`]. A not-open dataset (SD22 Art.8: not-open data is not
    /// opened; SD22 Art.8 and GD21 Art.32: it may be opened only once de-identified,
    /// which here means a derivative dataset registered on its own, whose versions get
    /// their own certificate) is a 403 with [`NOT_OPEN_REFUSAL`]. Before both, a dataset
    /// its provider destroyed (GD21 Art.40) is a 409 ([`Dataset::not_destroyed`]).
    ///
    /// Every path by which a developer could touch a dataset's rows, or rows generated
    /// from it, calls this before anything else: filing a grant and approving one
    /// ([`crate::grants`], so a grant filed before the rule cannot be approved), a grant's
    /// use ([`crate::grants::Grants::usable_grant`], so an approved one is unusable), run
    /// admission and resumption ([`crate::runs`], every input whatever its grant), dry
    /// runs and dummy rows ([`crate::runs`], [`crate::access`]; the catalog entry, its
    /// schema and its versions' metadata stay visible), de-identified downloads
    /// ([`crate::access`]), FHE templates and queries ([`crate::fhe`]) and the release of
    /// an output that read such a dataset ([`crate::review`]). The dataset's provider and
    /// supervisors keep their dummy rows ([`crate::access::Reader`]).
    ///
    /// The attribute checked is the one in force now,
    /// [`Dataset::effective_open_attribute`]: while the data authority's emergency
    /// relaxation lasts (XT Art.23(7)) a not-open dataset relaxed to conditional is
    /// reachable under grants, and from its end it is not open again.
    ///
    /// The matches name every status and every attribute: a new one does not compile
    /// until it is decided here whether developers may reach it.
    pub fn reachable_by_developers(&self) -> Result<()> {
        // A destroyed dataset first (409): its data is gone, whatever its status.
        self.not_destroyed()?;
        match self.status {
            CatalogStatus::Published => {}
            CatalogStatus::Draft | CatalogStatus::Submitted | CatalogStatus::Returned => {
                return Err(SandboxError::Forbidden(NOT_PUBLISHED_REFUSAL.into()));
            }
        }
        match self.effective_open_attribute {
            OpenAttribute::Unconditional | OpenAttribute::Conditional => Ok(()),
            OpenAttribute::NotOpen => Err(SandboxError::Forbidden(NOT_OPEN_REFUSAL.into())),
        }
    }
}

impl Dataset {
    /// Refuses (409) a dataset its provider destroyed (GD21 Art.40;
    /// [`crate::destruction`]): every developer path through
    /// [`Dataset::reachable_by_developers`], and its provider's own uses (dummy rows,
    /// edits, submissions, uploads).
    pub fn not_destroyed(&self) -> Result<()> {
        match self.destroyed {
            Some(_) => Err(SandboxError::Conflict(
                crate::destruction::DESTROYED_DATASET_REFUSAL.into(),
            )),
            None => Ok(()),
        }
    }
}

/// Who reads the catalog, which decides the entries they see (GD21 Art.10–11: an entry
/// joins the public catalog when the data authority publishes it). The HTTP layer maps
/// its caller onto this; everyone else sees an unpublished entry as absent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CatalogReader<'a> {
    /// The data authority and supervisors: every entry, in every state.
    Overseer,
    /// Any other caller, of this organisation: published entries, and its own in any
    /// state (a provider sees its drafts).
    Org(&'a OrgId),
    /// The public, without a key (SD22 Art.10): published entries only.
    Public,
}

impl CatalogReader<'_> {
    /// Whether this reader sees `dataset`.
    pub fn sees(self, dataset: &Dataset) -> bool {
        match self {
            CatalogReader::Overseer => true,
            CatalogReader::Public => dataset.status == CatalogStatus::Published,
            CatalogReader::Org(org) => {
                dataset.status == CatalogStatus::Published || dataset.provider_org == *org
            }
        }
    }
}

/// BLAKE3 of a catalog entry's metadata, as its revisions and ledger entries name it:
/// `BLAKE3("pdx catalog metadata v1" || 0x00 || canonical JSON of the metadata)`.
pub fn metadata_hash(meta: &NewDataset) -> Result<Hash32> {
    let value = serde_json::to_value(meta)
        .map_err(|e| SandboxError::Internal(format!("encoding metadata: {e}")))?;
    let canonical = pdx_ledger::canonical::to_canonical_string(&value)
        .map_err(|e| SandboxError::Internal(format!("canonical metadata: {e}")))?;
    let mut h = blake3::Hasher::new();
    h.update(b"pdx catalog metadata v1");
    h.update(&[0]);
    h.update(canonical.as_bytes());
    Ok(Hash32(*h.finalize().as_bytes()))
}

/// A dataset's metadata encoded for the store: enums as wire names, schema and elements
/// as JSON, and the search text.
pub(crate) struct EncodedMeta {
    level: String,
    share_type: String,
    open_attribute: String,
    schema_json: String,
    elements_json: String,
    search_text: String,
}

impl EncodedMeta {
    /// Encodes `meta`.
    pub(crate) fn of(meta: &NewDataset) -> Result<EncodedMeta> {
        Ok(EncodedMeta {
            level: meta.level.as_str(),
            share_type: meta.share_type.as_str(),
            open_attribute: meta.open_attribute.as_str(),
            schema_json: serde_json::to_string(&meta.schema)
                .map_err(|e| SandboxError::Internal(format!("encoding schema: {e}")))?,
            elements_json: serde_json::to_string(&meta.elements)
                .map_err(|e| SandboxError::Internal(format!("encoding elements: {e}")))?,
            search_text: meta.search_text(),
        })
    }

    /// The store's row of `meta` (which must be what this was encoded from).
    pub(crate) fn row<'a>(&'a self, meta: &'a NewDataset) -> store::catalog::MetadataRow<'a> {
        store::catalog::MetadataRow {
            title: &meta.title,
            description: &meta.description,
            theme: &meta.theme,
            source_department: &meta.source_department,
            collecting_department: &meta.collecting_department,
            approving_department: &meta.approving_department,
            providing_department: &meta.providing_department,
            data_form: &meta.data_form,
            update_frequency: &meta.update_frequency,
            level: &self.level,
            share_type: &self.share_type,
            share_conditions: &meta.share_conditions,
            legal_basis: &meta.legal_basis,
            open_attribute: &self.open_attribute,
            schema_json: &self.schema_json,
            elements_json: &self.elements_json,
            search_text: &self.search_text,
            research_only: i64::from(meta.research_only),
        }
    }
}

/// A data element and its one source department.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DataElement {
    /// Code, e.g. `enterprise.registration`.
    pub code: String,
    /// Its source department.
    pub source_department: String,
    /// What it is.
    pub description: String,
    /// Registering organisation.
    pub org_id: OrgId,
    /// First dataset that carries it.
    pub dataset_id: Option<DatasetId>,
    /// Registered, ms since epoch.
    pub created_ms: i64,
}

/// Catalog search filters and paging.
#[derive(Clone, Debug, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
#[serde(deny_unknown_fields)]
pub struct DatasetQuery {
    /// Text contained in the title, description or theme (case-insensitive).
    pub q: Option<String>,
    /// Exact theme.
    pub theme: Option<String>,
    /// Open attribute in force (an emergency relaxation's while it lasts).
    pub open_attribute: Option<OpenAttribute>,
    /// Provider organisation id, or providing department name.
    pub provider: Option<String>,
    /// Life-cycle status (`submitted` lists the data authority's queue). Callers see
    /// only the entries they may see, whatever they filter on.
    pub status: Option<CatalogStatus>,
    /// Classification level.
    pub level: Option<Level>,
    /// Update frequency.
    pub update_frequency: Option<crate::quality::UpdateFrequency>,
    /// Page, from 1 to [`MAX_PAGE`].
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 2147483647))]
    pub page: Option<u32>,
    /// Items per page, 1–100 (default 20).
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub per_page: Option<u32>,
}

/// The last page a listing serves: the largest 32-bit signed integer, the range the
/// OpenAPI document states for page numbers (clients generated from it use `int32`).
pub const MAX_PAGE: u32 = i32::MAX as u32;

/// One page of search results.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DatasetPage {
    /// Matching datasets on this page.
    pub items: Vec<Dataset>,
    /// Matches in all pages.
    pub total: u64,
    /// This page.
    pub page: u32,
    /// Page size.
    pub per_page: u32,
}

const DATASET_COLUMNS: &str = "d.id, d.provider_org, d.title, d.description, d.theme, \
    d.source_department, d.collecting_department, d.approving_department, \
    d.providing_department, d.data_form, d.update_frequency, d.level, d.share_type, \
    d.share_conditions, d.legal_basis, d.open_attribute, d.schema_json, d.elements_json, \
    d.research_only, d.created_ms, d.updated_ms, d.status, d.revision, \
    r.submitted_ms AS review_submitted_ms, r.review_due AS review_due, \
    r.reviewed_ms AS review_reviewed_ms, r.decision AS review_decision, \
    r.reason AS review_reason, \
    e.id AS relaxation_id, e.relaxed_to AS relaxed_to, e.emergency AS relaxation_emergency, \
    e.until_day AS relaxation_until, e.ends_ms AS relaxation_ends_ms, \
    (SELECT MAX(v.version) FROM dataset_versions v WHERE v.dataset_id = d.id \
        AND NOT EXISTS (SELECT 1 FROM dataset_destructions t \
        WHERE t.dataset_id = v.dataset_id AND t.version = v.version)) AS latest_version, \
    tomb.scope AS tomb_scope, tomb.destroyed_ms AS tomb_destroyed_ms, \
    tomb.reason AS tomb_reason, tomb.legal_basis AS tomb_legal_basis, \
    tomb.actor_org AS tomb_actor_org, tomb.ledger_seq AS tomb_ledger_seq";

/// `datasets d` with its latest review `r`, if any, and its emergency relaxation `e`
/// not yet recorded as ended, if any (at most one: a unique index), and its own tombstone
/// `tomb` once destroyed ([`crate::destruction`]; at most one: the primary key), for
/// [`DATASET_COLUMNS`].
const DATASET_FROM: &str = "datasets d LEFT JOIN catalog_reviews r ON r.dataset_id = d.id \
    AND r.round = (SELECT MAX(x.round) FROM catalog_reviews x WHERE x.dataset_id = d.id) \
    LEFT JOIN emergency_relaxations e ON e.dataset_id = d.id AND e.ended_ms IS NULL \
    LEFT JOIN dataset_destructions tomb ON tomb.dataset_id = d.id AND tomb.version = 0";

/// The SQL of the open attribute in force at `now_ms` (for search filters), the same
/// rule as `dataset_from_row`: a relaxation's attribute before its end, else the
/// catalog's.
fn effective_attribute_sql(now_ms: i64) -> String {
    format!("(CASE WHEN e.ends_ms > {now_ms} THEN e.relaxed_to ELSE d.open_attribute END)")
}

fn dataset_from_row(row: &AnyRow) -> Result<Dataset> {
    let schema: String = row.try_get("schema_json")?;
    let elements: String = row.try_get("elements_json")?;
    let corrupt = |what: &str, e: serde_json::Error| {
        SandboxError::Internal(format!("stored dataset {what} does not parse: {e}"))
    };
    let latest: Option<i64> = row.try_get("latest_version")?;
    let decision: Option<String> = row.try_get("review_decision")?;
    let return_reason: Option<String> = row.try_get("review_reason")?;
    let open_attribute = OpenAttribute::parse(&row.try_get::<String, _>("open_attribute")?)?;
    // The relaxation is in force until its end, whether or not the periodic check has
    // recorded the end yet: correctness does not wait for the timer.
    let relaxation_ends: Option<i64> = row.try_get("relaxation_ends_ms")?;
    let emergency_relaxation = match relaxation_ends {
        Some(ends_ms) if now_ms() < ends_ms => Some(RelaxationInForce {
            id: row.try_get("relaxation_id")?,
            relaxed_to: OpenAttribute::parse(&row.try_get::<String, _>("relaxed_to")?)?,
            emergency: row.try_get("relaxation_emergency")?,
            until: row.try_get("relaxation_until")?,
            ends_ms,
        }),
        _ => None,
    };
    let effective_open_attribute = emergency_relaxation
        .as_ref()
        .map_or(open_attribute, |r| r.relaxed_to);
    Ok(Dataset {
        id: row.try_get("id")?,
        provider_org: row.try_get("provider_org")?,
        meta: NewDataset {
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            theme: row.try_get("theme")?,
            source_department: row.try_get("source_department")?,
            collecting_department: row.try_get("collecting_department")?,
            approving_department: row.try_get("approving_department")?,
            providing_department: row.try_get("providing_department")?,
            data_form: row.try_get("data_form")?,
            update_frequency: row.try_get("update_frequency")?,
            level: Level::parse(&row.try_get::<String, _>("level")?)?,
            share_type: ShareType::parse(&row.try_get::<String, _>("share_type")?)?,
            share_conditions: row.try_get("share_conditions")?,
            legal_basis: row.try_get("legal_basis")?,
            open_attribute,
            research_only: row.try_get::<i64, _>("research_only")? != 0,
            schema: serde_json::from_str(&schema).map_err(|e| corrupt("schema", e))?,
            elements: serde_json::from_str(&elements).map_err(|e| corrupt("elements", e))?,
        },
        latest_version: latest.map(|v| v as u64),
        created_ms: row.try_get("created_ms")?,
        updated_ms: row.try_get("updated_ms")?,
        status: CatalogStatus::parse(&row.try_get::<String, _>("status")?)?,
        revision: u64::try_from(row.try_get::<i64, _>("revision")?).unwrap_or(0),
        submitted_ms: row.try_get("review_submitted_ms")?,
        review_due: row.try_get("review_due")?,
        reviewed_ms: row.try_get("review_reviewed_ms")?,
        return_reason: return_reason.filter(|_| decision.as_deref() == Some("returned")),
        effective_open_attribute,
        emergency_relaxation,
        destroyed: crate::destruction::dataset_tombstone(row)?,
    })
}

fn element_from_row(row: &AnyRow) -> Result<DataElement> {
    Ok(DataElement {
        code: row.try_get("code")?,
        source_department: row.try_get("source_department")?,
        description: row.try_get("description")?,
        org_id: row.try_get("org_id")?,
        dataset_id: row.try_get("dataset_id")?,
        created_ms: row.try_get("created_ms")?,
    })
}

fn required(field: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(SandboxError::Invalid(format!("{field} must not be empty")));
    }
    if value.len() > 4096 {
        return Err(SandboxError::Invalid(format!(
            "{field} is longer than 4096 bytes"
        )));
    }
    Ok(())
}

/// Checks an element code: dotted lower-case segments, e.g. `enterprise.registration`.
pub fn validate_element_code(code: &str) -> Result<()> {
    let ok = code.len() <= 128
        && code.contains('.')
        && code.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        });
    if ok {
        Ok(())
    } else {
        Err(SandboxError::Invalid(
            "element codes are dotted lower-case segments, e.g. enterprise.registration".into(),
        ))
    }
}

impl NewDataset {
    /// Checks the metadata rules of REGULATIONS.md and the column schema.
    pub fn validate(&self) -> Result<()> {
        required("title", &self.title)?;
        required("theme", &self.theme)?;
        required("source_department", &self.source_department)?;
        required("collecting_department", &self.collecting_department)?;
        required("approving_department", &self.approving_department)?;
        required("providing_department", &self.providing_department)?;
        required("data_form", &self.data_form)?;
        // One of six words, from which the next version's due date is read (GD21
        // Art.16; XT Art.20; `crate::quality`).
        crate::quality::UpdateFrequency::parse(&self.update_frequency)?;
        if self.share_type != ShareType::Unconditional && self.legal_basis.trim().is_empty() {
            return Err(SandboxError::Invalid(
                "a conditional or not-shared dataset must state its legal_basis (GD21 Art.12; \
                 a not-shared classification is filed with the data authority with it, GD21 \
                 Art.13)"
                    .into(),
            ));
        }
        // Level 4 data is never unconditionally open (`crate::classification`).
        crate::classification::check_open_attribute(self.level, self.open_attribute)?;
        if self.share_type == ShareType::Conditional && self.share_conditions.trim().is_empty() {
            return Err(SandboxError::Invalid(
                "a conditionally shared dataset must state its share_conditions".into(),
            ));
        }
        for code in &self.elements {
            validate_element_code(code)?;
        }
        self.schema
            .validate()
            .map_err(|e| SandboxError::Invalid(format!("schema: {e}")))?;
        Ok(())
    }

    fn search_text(&self) -> String {
        format!("{}\n{}\n{}", self.title, self.description, self.theme).to_lowercase()
    }
}

/// The reason recorded for revision 1, the registration.
pub const REGISTRATION_REASON: &str = "registered";

/// Escapes `%`, `_` and `\` for a LIKE pattern with `ESCAPE '\'`.
fn like_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

impl Catalog {
    /// Registers a dataset for the provider `actor.org` as a draft (GD21 Art.10–11: it
    /// is published only once the data authority approves it, see
    /// [`crate::lifecycle`]), claiming its data elements and recording its metadata as
    /// catalog revision 1.
    pub async fn register_dataset(&self, actor: &Actor, new: NewDataset) -> Result<Dataset> {
        new.validate()?;
        let provider_org = actor_org(actor)?;
        let key = actor_key(actor)?;
        let id = DatasetId::random();
        let now = now_ms();
        let encoded = EncodedMeta::of(&new)?;
        let hash = metadata_hash(&new)?.to_hex();
        let metadata_json = serde_json::to_string(&new)
            .map_err(|e| SandboxError::Internal(format!("encoding metadata: {e}")))?;
        let row = store::catalog::NewDatasetRow {
            id: &id,
            provider_org: &provider_org,
            meta: encoded.row(&new),
            created_ms: now,
        };
        let mut tx = self.db().begin_write().await?;
        store::catalog::insert_dataset(&mut *tx, &row).await?;
        store::catalog::insert_revision(
            &mut *tx,
            &store::catalog::NewRevisionRow {
                dataset_id: &id,
                revision: 1,
                metadata_hash: &hash,
                metadata_json: &metadata_json,
                provider_org: &provider_org,
                actor_key: &key,
                created_ms: now,
                reason: REGISTRATION_REASON,
                legal_change_date: None,
                update_due: None,
                late: 0,
                revision_seq: None,
            },
        )
        .await?;
        for code in &new.elements {
            claim_element(
                &mut tx,
                &provider_org,
                code,
                &new.source_department,
                "",
                Some(&id),
            )
            .await?;
        }
        // A not-shared classification is filed with the data authority (GD21 Art.13).
        self.classification()
            .file_if_not_shared(&mut tx, actor, &id, &new, None, 1)
            .await?;
        tx.commit().await?;
        self.dataset(&id)
            .await?
            .ok_or_else(|| SandboxError::Internal("dataset vanished after insert".into()))
    }

    /// One dataset, whatever its status (for the sandbox's own checks; callers acting
    /// for a user go through [`Catalog::visible_dataset`]).
    pub async fn dataset(&self, id: &DatasetId) -> Result<Option<Dataset>> {
        let sql = format!("SELECT {DATASET_COLUMNS} FROM {DATASET_FROM} WHERE d.id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.clone())
            .fetch_optional(self.db().pool())
            .await?;
        row.as_ref().map(dataset_from_row).transpose()
    }

    /// One dataset for a report scoped to its provider: `provider_org` `Some` for a
    /// provider, who sees only its own datasets (another's is "not found", as an absent
    /// one); `None` for supervisors and the data authority, who see every one.
    pub async fn dataset_for_provider(
        &self,
        id: &DatasetId,
        provider_org: Option<&OrgId>,
    ) -> Result<Dataset> {
        self.dataset(id)
            .await?
            .filter(|d| provider_org.is_none_or(|org| *org == d.provider_org))
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))
    }

    /// One dataset as `reader` sees it: an entry it may not see is "not found", exactly
    /// as an absent one.
    pub async fn visible_dataset(
        &self,
        id: &DatasetId,
        reader: CatalogReader<'_>,
    ) -> Result<Dataset> {
        self.dataset(id)
            .await?
            .filter(|d| reader.sees(d))
            .ok_or_else(|| SandboxError::NotFound("no such dataset".into()))
    }

    /// Searches the catalog as `reader` sees it: published entries for everyone, a
    /// provider's own entries in any state, and every entry for the data authority and
    /// supervisors ([`CatalogReader`]).
    pub async fn search(
        &self,
        query: &DatasetQuery,
        reader: CatalogReader<'_>,
    ) -> Result<DatasetPage> {
        let per_page = query.per_page.unwrap_or(20);
        if !(1..=100).contains(&per_page) {
            return Err(SandboxError::Invalid(
                "per_page must be between 1 and 100".into(),
            ));
        }
        let page = query.page.unwrap_or(1);
        if !(1..=MAX_PAGE).contains(&page) {
            return Err(SandboxError::Invalid(format!(
                "page must be between 1 and {MAX_PAGE}"
            )));
        }
        let mut filters = Vec::new();
        let mut binds: Vec<String> = Vec::new();
        if let Some(q) = query.q.as_deref().filter(|q| !q.trim().is_empty()) {
            binds.push(like_pattern(q.trim()));
            filters.push(format!("d.search_text LIKE ${} ESCAPE '\\'", binds.len()));
        }
        if let Some(theme) = &query.theme {
            binds.push(theme.clone());
            filters.push(format!("d.theme = ${}", binds.len()));
        }
        if let Some(open) = query.open_attribute {
            binds.push(open.as_str());
            filters.push(format!(
                "{} = ${}",
                effective_attribute_sql(now_ms()),
                binds.len()
            ));
        }
        if let Some(provider) = &query.provider {
            binds.push(provider.clone());
            let n = binds.len();
            filters.push(format!(
                "(d.provider_org = ${n} OR d.providing_department = ${n})"
            ));
        }
        if let Some(status) = query.status {
            binds.push(status.as_str());
            filters.push(format!("d.status = ${}", binds.len()));
        }
        if let Some(level) = query.level {
            binds.push(level.as_str());
            filters.push(format!("d.level = ${}", binds.len()));
        }
        if let Some(frequency) = query.update_frequency {
            binds.push(frequency.as_str().to_string());
            filters.push(format!("d.update_frequency = ${}", binds.len()));
        }
        match reader {
            CatalogReader::Overseer => {}
            CatalogReader::Org(org) => {
                binds.push(CatalogStatus::Published.as_str());
                let published = binds.len();
                binds.push(org.to_string());
                let own = binds.len();
                filters.push(format!(
                    "(d.status = ${published} OR d.provider_org = ${own})"
                ));
            }
            CatalogReader::Public => {
                binds.push(CatalogStatus::Published.as_str());
                filters.push(format!("d.status = ${}", binds.len()));
            }
        }
        let filter = where_clause(&filters);
        // The count and the choice of the page's ids read `datasets` alone, joined to its
        // open relaxation only when the open-attribute filter reads it (at most one row:
        // a unique index); in the order of the `datasets_newest` indexes a page is read
        // by walking the index and stopping at it. The page's columns, whose joins and
        // subqueries cost per row, are then read for the page's rows only: selecting
        // them for every match, as before, computed each match's review and latest
        // version before the sort kept one page (10,000 entries: every page paid for
        // all of them).
        let search_from = if query.open_attribute.is_some() {
            "datasets d LEFT JOIN emergency_relaxations e ON e.dataset_id = d.id \
             AND e.ended_ms IS NULL"
        } else {
            "datasets d"
        };
        let count_sql = format!("SELECT COUNT(*) AS n FROM {search_from} {filter}");
        let mut count = sqlx::query(sqlx::AssertSqlSafe(count_sql));
        for b in &binds {
            count = count.bind(b.clone());
        }
        let total: i64 = count.fetch_one(self.db().pool()).await?.try_get("n")?;
        let list_sql = format!(
            "SELECT {DATASET_COLUMNS} FROM {DATASET_FROM} WHERE d.id IN \
             (SELECT d.id FROM {search_from} {filter} ORDER BY d.created_ms DESC, d.id \
             LIMIT ${} OFFSET ${}) ORDER BY d.created_ms DESC, d.id",
            binds.len() + 1,
            binds.len() + 2
        );
        let mut list = sqlx::query(sqlx::AssertSqlSafe(list_sql));
        for b in &binds {
            list = list.bind(b.clone());
        }
        let rows = list
            .bind(i64::from(per_page))
            .bind(i64::from(page - 1) * i64::from(per_page))
            .fetch_all(self.db().pool())
            .await?;
        Ok(DatasetPage {
            items: rows.iter().map(dataset_from_row).collect::<Result<_>>()?,
            total: total as u64,
            page,
            per_page,
        })
    }

    /// Registers a data element with its one source department (idempotent for the
    /// same department, 409 for another).
    pub async fn register_element(
        &self,
        actor: &Actor,
        code: &str,
        source_department: &str,
        description: &str,
    ) -> Result<DataElement> {
        validate_element_code(code)?;
        required("source_department", source_department)?;
        let org = actor_org(actor)?;
        let mut tx = self.db().begin_write().await?;
        claim_element(&mut tx, &org, code, source_department, description, None).await?;
        tx.commit().await?;
        self.element(code)
            .await?
            .ok_or_else(|| SandboxError::Internal("element vanished after insert".into()))
    }

    /// One data element.
    pub async fn element(&self, code: &str) -> Result<Option<DataElement>> {
        let row = sqlx::query(
            "SELECT code, source_department, description, org_id, dataset_id, created_ms \
             FROM data_elements WHERE code = $1",
        )
        .bind(code.to_string())
        .fetch_optional(self.db().pool())
        .await?;
        row.as_ref().map(element_from_row).transpose()
    }

    /// Every data element, by code.
    pub async fn elements(&self) -> Result<Vec<DataElement>> {
        let rows = sqlx::query(
            "SELECT code, source_department, description, org_id, dataset_id, created_ms \
             FROM data_elements ORDER BY code",
        )
        .fetch_all(self.db().pool())
        .await?;
        rows.iter().map(element_from_row).collect()
    }
}

/// Registers `code` for `department`, or checks that it already is (one data, one
/// source: GD21 Art.14).
pub(crate) async fn claim_element(
    conn: &mut AnyConnection,
    org: &OrgId,
    code: &str,
    department: &str,
    description: &str,
    dataset_id: Option<&DatasetId>,
) -> Result<()> {
    let existing: Option<String> =
        sqlx::query("SELECT source_department FROM data_elements WHERE code = $1")
            .bind(code.to_string())
            .fetch_optional(&mut *conn)
            .await?
            .map(|row| row.try_get("source_department"))
            .transpose()?;
    let conflict = || {
        SandboxError::Conflict(format!(
            "data element {code} already has a source department; one data, one source (GD21 Art.14)"
        ))
    };
    match existing {
        Some(dept) if dept == department => Ok(()),
        Some(_) => Err(conflict()),
        None => {
            let row = store::catalog::NewDataElement {
                code,
                source_department: department,
                description,
                org_id: org,
                dataset_id,
                created_ms: now_ms(),
            };
            match store::catalog::insert_data_element(&mut *conn, &row).await {
                Ok(()) => Ok(()),
                Err(SandboxError::Db(e)) if is_unique_violation(&e) => Err(conflict()),
                Err(e) => Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(like_pattern("50%_A"), "%50\\%\\_a%");
    }

    #[test]
    fn element_codes() {
        assert!(validate_element_code("enterprise.registration").is_ok());
        assert!(validate_element_code("a.b_2.c").is_ok());
        for bad in ["enterprise", "Enterprise.x", "a..b", ".a", "a.b-c", ""] {
            assert!(validate_element_code(bad).is_err(), "{bad}");
        }
    }
}
