//! The types the HTTP layer reads and writes.

use std::path::PathBuf;

use pdx_ids::{DatasetId, DownloadId, KeyId, OrderId, OrgId, ProductId, ReleaseId};
use pdx_ledger::Hash32;
use serde::{Deserialize, Serialize};

use crate::error::{ProductsError, Result};
use crate::split::{PayeeKind, RevenueSplit};

/// The only currency products are priced in.
pub const CURRENCY: &str = "CNY";

/// The longest licence term accepted, in days (ten years).
pub const MAX_TERM_DAYS: u32 = 3650;

/// Licence kinds; research-only terms propagate from sources to products, and the
/// kind of each source grant's purpose limits the kinds a product may carry (see
/// [`crate::revenue`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LicenceKind {
    /// Research and public-interest use only (GD21 Art.26).
    ResearchOnly,
    /// Public-interest use (公益), non-commercial; the only licence a product may be
    /// given away under (price 0; GY ch.6).
    PublicInterest,
    /// Commercial use inside the buyer's organisation.
    CommercialInternal,
    /// Commercial use including redistribution to third parties.
    CommercialRedistribution,
}

impl LicenceKind {
    /// The wire name, as written to the ledger.
    pub fn as_str(&self) -> &'static str {
        match self {
            LicenceKind::ResearchOnly => "research_only",
            LicenceKind::PublicInterest => "public_interest",
            LicenceKind::CommercialInternal => "commercial_internal",
            LicenceKind::CommercialRedistribution => "commercial_redistribution",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<LicenceKind> {
        match s {
            "research_only" => Some(LicenceKind::ResearchOnly),
            "public_interest" => Some(LicenceKind::PublicInterest),
            "commercial_internal" => Some(LicenceKind::CommercialInternal),
            "commercial_redistribution" => Some(LicenceKind::CommercialRedistribution),
            _ => None,
        }
    }

    /// True for the commercial kinds.
    pub fn is_commercial(&self) -> bool {
        match self {
            LicenceKind::ResearchOnly | LicenceKind::PublicInterest => false,
            LicenceKind::CommercialInternal | LicenceKind::CommercialRedistribution => true,
        }
    }

    /// The permitted-use text used when a product gives none.
    pub fn default_permitted_use(&self) -> &'static str {
        match self {
            LicenceKind::ResearchOnly => {
                "Research and public-interest use only. No commercial use; no redistribution."
            }
            LicenceKind::PublicInterest => {
                "Public-interest use only (public services, public research, public information). No commercial use."
            }
            LicenceKind::CommercialInternal => {
                "Commercial use within the licensee organisation. No redistribution to third parties."
            }
            LicenceKind::CommercialRedistribution => {
                "Commercial use, including redistribution to third parties with this licence and the provenance manifest attached."
            }
        }
    }
}

/// A licence: kind, term and permitted use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Licence {
    /// Licence kind.
    pub kind: LicenceKind,
    /// Term in days, counted from payment (1 to 3,650).
    pub term_days: u32,
    /// Permitted-use text (the kind's default when empty).
    #[serde(default)]
    pub permitted_use: String,
}

fn default_currency() -> String {
    CURRENCY.to_string()
}

/// What a developer submits to create a product.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewProduct {
    /// Title (1 to 200 characters).
    pub title: String,
    /// Description (up to 10,000 characters).
    #[serde(default)]
    pub description: String,
    /// Licence offered to buyers.
    pub licence: Licence,
    /// Price in fen: > 0, or 0 for a free product under the `public_interest` licence.
    pub price_minor: i64,
    /// Currency; only `CNY`.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// Revenue split, basis points summing to 10,000; a paid product's public-finance
    /// share is at least the configured minimum (default 1,000 bp, 10 %).
    pub split: RevenueSplit,
}

/// The kind of the purpose of the grant a release ran under (the sandbox's grant
/// terms), which limits the licences a product built on it may carry (see
/// [`crate::revenue`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum GrantPurpose {
    /// Research (科研).
    Research,
    /// Public interest (公益).
    PublicInterest,
    /// Industrial or commercial use.
    Commercial,
}

impl GrantPurpose {
    /// The wire name (`research`, `public_interest`, `commercial`).
    pub fn as_str(&self) -> &'static str {
        match self {
            GrantPurpose::Research => "research",
            GrantPurpose::PublicInterest => "public_interest",
            GrantPurpose::Commercial => "commercial",
        }
    }

    /// Parses a wire name.
    pub fn parse(s: &str) -> Option<GrantPurpose> {
        match s {
            "research" => Some(GrantPurpose::Research),
            "public_interest" => Some(GrantPurpose::PublicInterest),
            "commercial" => Some(GrantPurpose::Commercial),
            _ => None,
        }
    }
}

/// A source dataset of a released output, as the sandbox's catalog knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceDataset {
    /// Dataset id.
    pub dataset_id: DatasetId,
    /// Dataset title.
    pub title: String,
    /// The legally designated source department (数源部门).
    pub source_department: String,
    /// Providing organisation.
    pub provider_org: OrgId,
    /// Region of the provider: its public finance receives the provider share.
    pub provider_region: String,
    /// Data asset certificate number of the version read.
    pub certificate_no: String,
    /// BLAKE3 of the de-identified version read.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub content_hash: Hash32,
    /// Acquisition date (the version's date, `YYYY-MM-DD`).
    pub acquired: String,
    /// True if the data is research-only (e.g. shared with a research institute).
    pub research_only: bool,
}

/// A released output a product is built from; the binary fills it from the sandbox.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReleasedSource {
    /// Release id.
    pub release_id: ReleaseId,
    /// Developer organisation that owns the release.
    pub developer_org: OrgId,
    /// BLAKE3 of the released output.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub output_hash: Hash32,
    /// The released Parquet file (server-side; never shown to buyers).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub output_path: PathBuf,
    /// BLAKE3 of the model that produced it.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub model_hash: Hash32,
    /// Reviewers who approved the release (key ids).
    pub reviewers: Vec<KeyId>,
    /// True if the grant the job ran under is research-only.
    pub research_only_grant: bool,
    /// The kind of the purpose of the grant the job ran under (None without a grant, or
    /// when unknown).
    #[serde(default)]
    pub grant_purpose: Option<GrantPurpose>,
    /// Datasets the job read.
    pub datasets: Vec<SourceDataset>,
}

/// One released output in a provenance manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ManifestSource {
    /// Release id.
    pub release_id: ReleaseId,
    /// BLAKE3 of the released output.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub output_hash: Hash32,
    /// BLAKE3 of the model.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub model_hash: Hash32,
    /// Reviewers who approved the release (key ids).
    pub reviewers: Vec<KeyId>,
    /// True if the grant was research-only.
    pub research_only_grant: bool,
    /// The kind of the grant's purpose, when the release ran under a grant. Left out of
    /// the manifest when absent, so manifests without it keep their bytes and hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_purpose: Option<GrantPurpose>,
    /// Source datasets: title, source department, certificate, version hash, date.
    pub datasets: Vec<SourceDataset>,
}

/// The format tag of provenance manifests.
pub const MANIFEST_FORMAT: &str = "pdx-provenance/v1";

/// The provenance manifest of a product (SD22 Art.15), shown on the listing and shipped
/// in every download; its BLAKE3 is `ProductListing.manifest_hash`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProvenanceManifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    /// Product id.
    pub product_id: ProductId,
    /// Product title.
    pub title: String,
    /// Developer organisation.
    pub developer_org: OrgId,
    /// Licence kind offered.
    pub licence: LicenceKind,
    /// When the manifest was generated (RFC 3339, UTC).
    pub generated_at: String,
    /// The released outputs, in the order given.
    pub sources: Vec<ManifestSource>,
}

/// Where a product is in its review and sale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    /// Created; waiting for the exchange's review.
    PendingReview,
    /// Listed: buyers can order it.
    Listed,
    /// Refused by the exchange at review.
    Rejected,
    /// Removed from sale (existing licences continue).
    Delisted,
}

impl ProductStatus {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            ProductStatus::PendingReview => "pending_review",
            ProductStatus::Listed => "listed",
            ProductStatus::Rejected => "rejected",
            ProductStatus::Delisted => "delisted",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<ProductStatus> {
        match s {
            "pending_review" => Ok(ProductStatus::PendingReview),
            "listed" => Ok(ProductStatus::Listed),
            "rejected" => Ok(ProductStatus::Rejected),
            "delisted" => Ok(ProductStatus::Delisted),
            other => Err(ProductsError::Internal(format!("product status {other:?}"))),
        }
    }
}

/// A provider region's weight in the public-finance share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegionShare {
    /// Provider region.
    pub region: String,
    /// Number of distinct source datasets from the region.
    pub datasets: u64,
}

/// A data product as shown to callers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Product {
    /// Product id.
    pub id: ProductId,
    /// Developer organisation.
    pub developer_org: OrgId,
    /// Title.
    pub title: String,
    /// Description.
    pub description: String,
    /// Licence offered.
    pub licence: Licence,
    /// Price in fen.
    pub price_minor: i64,
    /// Currency.
    pub currency: String,
    /// Revenue split.
    pub split: RevenueSplit,
    /// Provider regions sharing the public-finance part.
    pub regions: Vec<RegionShare>,
    /// True if any source is research-only (only a research-only licence is allowed).
    pub research_only_sources: bool,
    /// Review / sale status.
    pub status: ProductStatus,
    /// Reason given for a rejection or delisting.
    pub status_reason: Option<String>,
    /// Registration number (the product registration certificate), once listed.
    pub registration_no: Option<String>,
    /// Ledger seq of the `ProductListing` entry.
    pub listing_seq: Option<u64>,
    /// Ledger seq of the `ProductDelisting` entry.
    pub delisting_seq: Option<u64>,
    /// The provenance manifest.
    pub manifest: ProvenanceManifest,
    /// BLAKE3 of the manifest's canonical JSON bytes (`manifest.json` in downloads).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub manifest_hash: Hash32,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Listed (RFC 3339).
    pub listed_at: Option<String>,
    /// Rejected or delisted (RFC 3339).
    pub closed_at: Option<String>,
}

/// Which products to return.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProductFilter {
    /// Only this status.
    pub status: Option<ProductStatus>,
    /// Only this developer's products.
    pub developer_org: Option<OrgId>,
    /// At most this many (default 100, at most 1,000).
    pub limit: Option<u32>,
    /// Skip this many (oldest first).
    pub offset: Option<u32>,
}

/// An order request; its JSON is what an idempotency key is bound to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewOrder {
    /// The product to buy.
    pub product_id: ProductId,
}

/// Where an order is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, not paid.
    Pending,
    /// Paid; downloadable within the licence term.
    Paid,
    /// Paid and downloaded at least once.
    Delivered,
    /// Refunded; the licence is revoked.
    Refunded,
}

impl OrderStatus {
    /// The stored name.
    pub fn as_str(&self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Refunded => "refunded",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Result<OrderStatus> {
        match s {
            "pending" => Ok(OrderStatus::Pending),
            "paid" => Ok(OrderStatus::Paid),
            "delivered" => Ok(OrderStatus::Delivered),
            "refunded" => Ok(OrderStatus::Refunded),
            other => Err(ProductsError::Internal(format!("order status {other:?}"))),
        }
    }
}

/// An order as shown to its buyer and the exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Order {
    /// Order id.
    pub id: OrderId,
    /// Product id.
    pub product_id: ProductId,
    /// Buyer organisation.
    pub buyer_org: OrgId,
    /// Developer organisation (seller).
    pub developer_org: OrgId,
    /// Price snapshot in fen.
    pub price_minor: i64,
    /// Currency.
    pub currency: String,
    /// Licence kind snapshot.
    pub licence_kind: LicenceKind,
    /// Licence term snapshot, days from payment.
    pub licence_term_days: u32,
    /// Status.
    pub status: OrderStatus,
    /// Placed (RFC 3339).
    pub created_at: String,
    /// Payment reference.
    pub payment_ref: Option<String>,
    /// Paid (RFC 3339).
    pub paid_at: Option<String>,
    /// End of the licence term (RFC 3339).
    pub licence_expires_at: Option<String>,
    /// Ledger seq of the `Transaction` entry.
    pub transaction_seq: Option<u64>,
    /// First downloaded (RFC 3339).
    pub delivered_at: Option<String>,
    /// Refunded (RFC 3339).
    pub refunded_at: Option<String>,
    /// Why it was refunded.
    pub refund_reason: Option<String>,
    /// Ledger seq of the `Refund` entry.
    pub refund_seq: Option<u64>,
}

/// The result of placing an order: the order, and whether this call created it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OrderPlacement {
    /// The order (the existing one for a replayed idempotency key).
    pub order: Order,
    /// False when the idempotency key replayed an earlier request.
    pub created: bool,
}

/// One logged download.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DownloadRecord {
    /// Download id.
    pub id: DownloadId,
    /// Order id.
    pub order_id: OrderId,
    /// Buyer organisation.
    pub buyer_org: OrgId,
    /// API key id used.
    pub actor_key: KeyId,
    /// When (RFC 3339).
    pub downloaded_at: String,
    /// Archive size in bytes.
    pub archive_bytes: u64,
    /// BLAKE3 of the archive, hex.
    pub archive_hash: String,
}

/// A download: a POSIX ustar archive in memory (see the crate docs for its members).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DownloadArchive {
    /// Suggested file name, `<registration no>-<order id>.tar`.
    pub file_name: String,
    /// Media type, `application/x-tar`.
    pub content_type: &'static str,
    /// The archive.
    pub bytes: Vec<u8>,
    /// The download log record.
    pub record: DownloadRecord,
}

/// One payee's remittance for a period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RemittanceLine {
    /// Payee kind.
    pub payee_kind: PayeeKind,
    /// Payee account: `public-finance:<region>`, the developer org, or the platform.
    pub payee: String,
    /// Amount in fen (negative when refunds exceed sales: an adjustment).
    pub amount_minor: i64,
    /// Currency.
    pub currency: String,
    /// Orders contributing.
    pub order_count: u64,
    /// Ledger seq of the `Remittance` entry.
    pub ledger_seq: u64,
}

/// A settled period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Settlement {
    /// Period, `YYYY-MM`.
    pub period: String,
    /// Period start (RFC 3339, inclusive).
    pub from: String,
    /// Period end (RFC 3339, exclusive).
    pub to: String,
    /// When it was settled (RFC 3339).
    pub settled_at: String,
    /// False when this call found the period already settled and changed nothing.
    pub newly_settled: bool,
    /// One line per payee.
    pub remittances: Vec<RemittanceLine>,
}

/// How to group a reconciliation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReconGroupBy {
    /// One row: the totals.
    Total,
    /// By provider region (sales attributed by dataset weight).
    ProviderRegion,
    /// By developer organisation.
    Developer,
    /// By the month money moved in (payment or refund month).
    Period,
}

/// One reconciliation row: paid − refunded = remitted + unsettled, in fen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReconRow {
    /// Group key (`total`, a region, a developer org or `YYYY-MM`).
    pub key: String,
    /// Paid orders, in fen.
    pub paid_minor: i64,
    /// Refunded orders, in fen.
    pub refunded_minor: i64,
    /// Remitted by settlements (net of refund adjustments), in fen.
    pub remitted_minor: i64,
    /// Not yet settled (sales and refunds), in fen.
    pub unsettled_minor: i64,
    /// True if paid − refunded = remitted + unsettled exactly.
    pub exact: bool,
}

impl ReconRow {
    pub(crate) fn new(
        key: String,
        paid_minor: i64,
        refunded_minor: i64,
        remitted_minor: i64,
        unsettled_minor: i64,
    ) -> ReconRow {
        let exact = i128::from(paid_minor) - i128::from(refunded_minor)
            == i128::from(remitted_minor) + i128::from(unsettled_minor);
        ReconRow {
            key,
            paid_minor,
            refunded_minor,
            remitted_minor,
            unsettled_minor,
            exact,
        }
    }
}

/// What the ledger itself says, summed over its `Transaction`, `Refund` and
/// `Remittance` entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerTotals {
    /// `Transaction` entries.
    pub transaction_entries: u64,
    /// Their amounts, in fen.
    pub transactions_minor: i64,
    /// `Refund` entries.
    pub refund_entries: u64,
    /// Their amounts, in fen.
    pub refunds_minor: i64,
    /// `Remittance` entries.
    pub remittance_entries: u64,
    /// Their amounts, in fen.
    pub remittances_minor: i64,
}

/// A reconciliation report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Reconciliation {
    /// Grouping of `rows`.
    pub group_by: ReconGroupBy,
    /// Currency of all amounts.
    pub currency: String,
    /// One row per group, sorted by key.
    pub rows: Vec<ReconRow>,
    /// Totals: paid and refunded from the orders, remitted from the remittances.
    pub total: ReconRow,
    /// The same figures read from the ledger.
    pub ledger: LedgerTotals,
    /// True if every row and the total are exact, the rows add up to the total, and
    /// the ledger agrees with the tables.
    pub exact: bool,
}

/// The payee account of a region's public finance.
pub fn public_finance_account(region: &str) -> String {
    format!("public-finance:{region}")
}

/// The payee of a part of a sale.
pub(crate) fn payee_for(kind: PayeeKind, region: &str, developer_org: &OrgId) -> String {
    match kind {
        PayeeKind::PublicFinance => public_finance_account(region),
        PayeeKind::Developer => developer_org.to_string(),
        PayeeKind::Platform => crate::PLATFORM_ACCOUNT.to_string(),
    }
}
