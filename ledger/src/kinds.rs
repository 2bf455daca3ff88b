//! Typed payloads, one per [`EntryKind`].
//!
//! Callers append a typed payload; the ledger stores its canonical JSON. Readers that know
//! the kind decode it back with [`decode`]; the verifier never needs to (it hashes bytes).
//! Money is integer minor units (fen) with a currency code; ε and δ are decimal strings
//! so that canonical JSON never depends on float formatting.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::entry::{Entry, EntryKind, Hash32};

/// A payload that knows its kind and which organisations it concerns.
pub trait LedgerPayload: Serialize {
    /// The entry kind this payload is written as.
    const KIND: EntryKind;
    /// Organisations (besides the actor's) that may read the entry.
    fn parties(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Decodes an entry's payload as `T`, if the entry is of `T`'s kind.
pub fn decode<T: LedgerPayload + DeserializeOwned>(entry: &Entry) -> Option<T> {
    if entry.kind != T::KIND {
        return None;
    }
    serde_json::from_str(&entry.payload).ok()
}

/// A data asset certificate (公共数据资产凭证) for one de-identified dataset version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AssetCertificate {
    /// Certificate number, e.g. `PDX-CERT-2026-000001`.
    pub certificate_no: String,
    /// Dataset id.
    pub dataset_id: String,
    /// Version number within the dataset.
    pub version: u64,
    /// Holder organisation (the providing agency).
    pub holder_org: String,
    /// The legally designated source department.
    pub source_department: String,
    /// Rows in the de-identified version.
    pub rows: u64,
    /// Bytes of the de-identified Parquet file.
    pub bytes: u64,
    /// BLAKE3 of the de-identified file.
    pub content_hash: Hash32,
    /// BLAKE3 of the canonical schema.
    pub schema_hash: Hash32,
    /// Classification level, L1–L4.
    pub level: String,
    /// Open attribute: unconditional, conditional or not_open.
    pub open_attribute: String,
    /// De-identification summary (k, l, suppressed, risks...).
    pub deid_summary: serde_json::Value,
    /// Validity start, RFC 3339.
    pub valid_from: String,
    /// Validity end, RFC 3339.
    pub valid_until: String,
}
impl LedgerPayload for AssetCertificate {
    const KIND: EntryKind = EntryKind::AssetCertificate;
}

/// A provider's decision on a grant application (an open-use agreement, 开放利用协议;
/// SD22 Art.14; XT Art.30).
///
/// Entries written since grant terms were recorded also carry the stated purpose, its
/// kind and the BLAKE3 of the agreement text the developer accepted when filing, so the
/// ledger alone shows what was agreed to. Those three fields are left out of the
/// canonical JSON when absent (`skip_serializing_if`), so entries written before them
/// encode, hash and verify exactly as they did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GrantDecision {
    /// Grant (application) id.
    pub grant_id: String,
    /// Applicant organisation.
    pub applicant_org: String,
    /// Datasets covered.
    pub dataset_ids: Vec<String>,
    /// `approved`, `refused`, `revoked` (a revocation is written as a decision) or
    /// `suspended` (its dataset became not open).
    pub decision: String,
    /// Reason (required for a refusal).
    pub reason: Option<String>,
    /// Approved terms (columns, model kinds, term and expiry, ε, δ, query budget),
    /// absent on refusal and revocation.
    pub terms: Option<serde_json::Value>,
    /// The purpose the developer stated when filing (absent on suspensions and on
    /// entries written before purposes were recorded here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// The purpose's kind, which decides the product licences the grant's results may
    /// carry: `research`, `public_interest` or `commercial`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose_kind: Option<String>,
    /// BLAKE3 of the agreement text the developer accepted when filing, as stored with
    /// the grant (plain BLAKE3 of its UTF-8 bytes, so anyone holding the text checks it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement_hash: Option<Hash32>,
}
impl LedgerPayload for GrantDecision {
    const KIND: EntryKind = EntryKind::GrantDecision;
    fn parties(&self) -> Vec<String> {
        vec![self.applicant_org.clone()]
    }
}

/// A model submitted by a developer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelRegistration {
    /// Model id.
    pub model_id: String,
    /// Model kind (`sql`, `dp`, `fhe`, `regression`).
    pub model_kind: String,
    /// BLAKE3 of the model text.
    pub model_hash: Hash32,
}
impl LedgerPayload for ModelRegistration {
    const KIND: EntryKind = EntryKind::ModelRegistration;
}

/// A vetted output released from quarantine.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// Release id.
    pub release_id: String,
    /// Job that produced it.
    pub job_id: String,
    /// Developer organisation that owns it.
    pub developer_org: String,
    /// BLAKE3 of the released output.
    pub output_hash: Hash32,
    /// BLAKE3 of the model.
    pub model_hash: Hash32,
    /// Dataset versions read, as `dataset_id@version`.
    pub dataset_versions: Vec<String>,
    /// Disclosure checks passed.
    pub checks: Vec<String>,
    /// Reviewer key ids (empty when policy auto-released a DP output).
    pub reviewers: Vec<String>,
}
impl LedgerPayload for Release {
    const KIND: EntryKind = EntryKind::Release;
    fn parties(&self) -> Vec<String> {
        vec![self.developer_org.clone()]
    }
}

/// Privacy budget spent by one job against one grant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrivacySpend {
    /// Grant charged (or `open:<dataset>` for unconditional data).
    pub grant_id: String,
    /// Job that spent it.
    pub job_id: String,
    /// Organisation charged.
    pub org: String,
    /// ε spent, decimal string.
    pub epsilon: String,
    /// δ spent, decimal string.
    pub delta: String,
}
impl LedgerPayload for PrivacySpend {
    const KIND: EntryKind = EntryKind::PrivacySpend;
    fn parties(&self) -> Vec<String> {
        vec![self.org.clone()]
    }
}

/// A product listed on the exchange.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProductListing {
    /// Product id.
    pub product_id: String,
    /// Registration number: the product registration certificate.
    pub registration_no: String,
    /// Developer organisation.
    pub developer_org: String,
    /// Licence kind.
    pub licence: String,
    /// Price in minor units.
    pub price_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// BLAKE3 of the provenance manifest.
    pub manifest_hash: Hash32,
}
impl LedgerPayload for ProductListing {
    const KIND: EntryKind = EntryKind::ProductListing;
    fn parties(&self) -> Vec<String> {
        vec![self.developer_org.clone()]
    }
}

/// A product removed from sale.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProductDelisting {
    /// Product id.
    pub product_id: String,
    /// Registration number of the listing.
    pub registration_no: String,
    /// Why.
    pub reason: String,
}
impl LedgerPayload for ProductDelisting {
    const KIND: EntryKind = EntryKind::ProductDelisting;
}

/// A paid order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Transaction {
    /// Order id.
    pub order_id: String,
    /// Product id.
    pub product_id: String,
    /// Buyer organisation.
    pub buyer_org: String,
    /// Developer organisation (seller).
    pub seller_org: String,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Payment reference.
    pub payment_ref: String,
}
impl LedgerPayload for Transaction {
    const KIND: EntryKind = EntryKind::Transaction;
    fn parties(&self) -> Vec<String> {
        vec![self.buyer_org.clone(), self.seller_org.clone()]
    }
}

/// A refund of a paid order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Refund {
    /// Order id.
    pub order_id: String,
    /// Buyer organisation.
    pub buyer_org: String,
    /// Seller organisation.
    pub seller_org: String,
    /// Amount refunded in minor units.
    pub amount_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
}
impl LedgerPayload for Refund {
    const KIND: EntryKind = EntryKind::Refund;
    fn parties(&self) -> Vec<String> {
        vec![self.buyer_org.clone(), self.seller_org.clone()]
    }
}

/// Money remitted to one payee for one settlement period.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Remittance {
    /// Settlement period, e.g. `2026-11`.
    pub period: String,
    /// Payee kind: `public_finance`, `developer` or `platform`.
    pub payee_kind: String,
    /// Payee account or organisation.
    pub payee: String,
    /// Amount in minor units (negative for an adjustment).
    pub amount_minor: i64,
    /// ISO 4217 currency code.
    pub currency: String,
    /// Transactions included.
    pub order_ids: Vec<String>,
}
impl LedgerPayload for Remittance {
    const KIND: EntryKind = EntryKind::Remittance;
    fn parties(&self) -> Vec<String> {
        vec![self.payee.clone()]
    }
}

/// An organisation suspended or reinstated by a supervisor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Suspension {
    /// Organisation concerned.
    pub org: String,
    /// `suspended` or `reinstated`.
    pub action: String,
    /// Why.
    pub reason: String,
}
impl LedgerPayload for Suspension {
    const KIND: EntryKind = EntryKind::Suspension;
    fn parties(&self) -> Vec<String> {
        vec![self.org.clone()]
    }
}

/// An objection (异议) to a dataset version for an error or omission (SD22 Art.13; XT
/// Art.21), filed by any authenticated user. The provider must answer it by the deadline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Objection {
    /// Objection id.
    pub objection_id: String,
    /// Dataset id.
    pub dataset_id: String,
    /// Version objected to.
    pub version: u64,
    /// The providing organisation that must answer.
    pub provider_org: String,
    /// Organisation that filed it.
    pub objector_org: String,
    /// `error` or `omission`.
    pub ground: String,
    /// What is wrong or missing.
    pub detail: String,
    /// Answer deadline, `YYYY-MM-DD`, counted in working days from filing.
    pub answer_deadline: String,
}
impl LedgerPayload for Objection {
    const KIND: EntryKind = EntryKind::Objection;
    fn parties(&self) -> Vec<String> {
        vec![self.provider_org.clone()]
    }
}

/// The provider's answer to an objection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectionAnswer {
    /// Objection id.
    pub objection_id: String,
    /// Ledger seq of the `Objection` entry answered.
    pub objection_seq: u64,
    /// Organisation that filed the objection.
    pub objector_org: String,
    /// `accepted` (the data will be corrected) or `rejected` (with reasons).
    pub outcome: String,
    /// The reply.
    pub answer: String,
    /// True if the answer came after the deadline.
    pub late: bool,
}
impl LedgerPayload for ObjectionAnswer {
    const KIND: EntryKind = EntryKind::ObjectionAnswer;
    fn parties(&self) -> Vec<String> {
        vec![self.objector_org.clone()]
    }
}

/// A step in the review of a catalog entry (GD21 Art.10–11; XT Art.12, 14): its
/// provider submits a catalog revision (`submitted`), and the data authority approves it,
/// which publishes the entry (`approved`), or returns it with a reason (`returned`). The
/// entry names the revision and the hash of its metadata, so what the authority approved
/// can be checked against the catalog's revision history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogDecision {
    /// Dataset id.
    pub dataset_id: String,
    /// The providing organisation.
    pub provider_org: String,
    /// `submitted`, `approved` or `returned`.
    pub decision: String,
    /// Why the authority returned the entry (absent otherwise).
    pub reason: Option<String>,
    /// The catalog revision submitted or decided (1 is the registration).
    pub revision: u64,
    /// BLAKE3 of that revision's canonical metadata.
    pub metadata_hash: Hash32,
    /// The authority's answer deadline, `YYYY-MM-DD`, counted in working days from the
    /// submission.
    pub review_due: String,
    /// True for a decision made after the deadline.
    pub late: bool,
}
impl LedgerPayload for CatalogDecision {
    const KIND: EntryKind = EntryKind::CatalogDecision;
    fn parties(&self) -> Vec<String> {
        vec![self.provider_org.clone()]
    }
}

/// A provider's edit of a catalog entry's metadata (GD21 Art.11; XT Art.14): the new
/// catalog revision, the hash of its metadata and why it was made. An edit that follows a
/// legal change names the change's date and is late when made more than the configured
/// working days (15) after it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogRevision {
    /// Dataset id.
    pub dataset_id: String,
    /// The providing organisation (the actor).
    pub provider_org: String,
    /// The new revision number.
    pub revision: u64,
    /// BLAKE3 of the revision's canonical metadata.
    pub metadata_hash: Hash32,
    /// Why the metadata changed.
    pub reason: String,
    /// The date of the legal change that required the edit, `YYYY-MM-DD`, if any.
    pub legal_change_date: Option<String>,
    /// True when made after the deadline that the legal change set.
    pub late: bool,
}
impl LedgerPayload for CatalogRevision {
    const KIND: EntryKind = EntryKind::CatalogRevision;
    fn parties(&self) -> Vec<String> {
        vec![self.provider_org.clone()]
    }
}

/// An effected change of a dataset's open attribute (SD22 Art.8, 10, 20): its provider
/// asked for it with a reason and a legal basis, and the data authority approved it.
/// The change is a new catalog revision; the grants it suspended (when the dataset
/// became not open) are listed, each with its own `GrantDecision` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenAttributeChange {
    /// The change request's id.
    pub change_id: String,
    /// Dataset id.
    pub dataset_id: String,
    /// The providing organisation.
    pub provider_org: String,
    /// The attribute before: `unconditional`, `conditional` or `not_open`.
    pub from: String,
    /// The attribute after.
    pub to: String,
    /// True when the change makes the attribute stricter.
    pub stricter: bool,
    /// Why the provider asked for it.
    pub reason: String,
    /// The legal basis the provider named.
    pub legal_basis: String,
    /// The organisation that asked (the provider).
    pub requester_org: String,
    /// The API key that asked.
    pub requester_key: String,
    /// The organisation that approved it (the data authority), if an approval was
    /// needed.
    pub approver_org: Option<String>,
    /// The API key that approved it.
    pub approver_key: Option<String>,
    /// When it was asked for, ms since epoch.
    pub requested_ms: i64,
    /// The catalog revision the change made.
    pub revision: u64,
    /// BLAKE3 of that revision's canonical metadata.
    pub metadata_hash: Hash32,
    /// Grants suspended because the dataset became not open.
    pub grants_suspended: Vec<String>,
}
impl LedgerPayload for OpenAttributeChange {
    const KIND: EntryKind = EntryKind::OpenAttributeChange;
    fn parties(&self) -> Vec<String> {
        vec![self.provider_org.clone()]
    }
}

/// The data authority's emergency relaxation of a dataset's open attribute (XT
/// Art.23(7)): one entry when it starts (`phase` `started`, written by the authority)
/// and one when it ends (`ended`, written by the platform when the end date has
/// passed), after which the catalog's attribute applies again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmergencyRelaxation {
    /// The relaxation's id.
    pub relaxation_id: String,
    /// `started` or `ended`.
    pub phase: String,
    /// Dataset id.
    pub dataset_id: String,
    /// The providing organisation.
    pub provider_org: String,
    /// The catalog's open attribute, which applies again once the relaxation ends.
    pub open_attribute: String,
    /// The attribute in force while the relaxation lasts.
    pub relaxed_to: String,
    /// The emergency, as the authority stated it.
    pub emergency: String,
    /// The last day the relaxation is in force, `YYYY-MM-DD` (UTC).
    pub until: String,
    /// When it ends, ms since epoch (00:00 UTC of the day after `until`).
    pub ends_ms: i64,
    /// For `ended`: the seq of the `started` entry.
    pub started_seq: Option<u64>,
    /// For `ended`: grants suspended because the dataset is not open again.
    pub grants_suspended: Vec<String>,
}
impl LedgerPayload for EmergencyRelaxation {
    const KIND: EntryKind = EntryKind::EmergencyRelaxation;
    fn parties(&self) -> Vec<String> {
        vec![self.provider_org.clone()]
    }
}

/// A provider's decision on an FHE query template (event `template_decision`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FheTemplateDecision {
    /// Template id.
    pub template_id: String,
    /// The dataset it reads.
    pub dataset_id: String,
    /// Organisation that proposed it.
    pub proposer_org: String,
    /// `approved`, `refused` or `retired`.
    pub decision: String,
    /// Reason (required for a refusal or a retirement).
    pub reason: Option<String>,
    /// `BLAKE3("pdx fhe template v1" || 0x00 || canonical JSON of the template)`.
    pub template_hash: Hash32,
    /// The template as vetted: key column, value rule, output domain, key width, bucket bits.
    pub template: serde_json::Value,
}

/// One evaluated encrypted lookup (event `query`). It names ciphertexts by their hashes
/// (`BLAKE3("pdx fhe ciphertext v1" || 0x00 || bytes)`) and never holds the key, a
/// ciphertext or an answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FheLookup {
    /// Query id.
    pub query_id: String,
    /// Job that evaluated it.
    pub job_id: String,
    /// Template used.
    pub template_id: String,
    /// Hash of the template as approved.
    pub template_hash: Hash32,
    /// Organisation that asked.
    pub org: String,
    /// Grant charged (absent for unconditionally open data).
    pub grant_id: Option<String>,
    /// Dataset version scanned, `dataset_id@version`.
    pub dataset_version: String,
    /// `BLAKE3("pdx fhe server key v1" || 0x00 || bytes)` of the server key used.
    pub server_key_hash: Hash32,
    /// Hash of the encrypted key.
    pub input_hash: Hash32,
    /// Hash of the encrypted value.
    pub value_hash: Hash32,
    /// Hash of the encrypted `found` flag.
    pub found_hash: Hash32,
    /// Rows compared.
    pub rows_scanned: u64,
    /// Public-bucket bits the client revealed (absent when the whole table was scanned).
    pub bucket_bits: Option<u8>,
    /// The revealed bucket.
    pub bucket: Option<u64>,
    /// The commitment to the subject's signed authorisation (GD21 Art.41):
    /// `BLAKE3("pdx consent commitment v1" || 0x00 || authorisation bytes || signature
    /// || nonce)`. Absent on lookups of unconditionally open data without one, and on
    /// entries written before consent commitments existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consent_commitment: Option<Hash32>,
}

/// A subject organisation's consent key (event `consent_key`): from this entry on,
/// authorisations it signs are checked under this Ed25519 key; its previous key still
/// checks the queries made before.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FheConsentKey {
    /// The subject organisation (the actor).
    pub subject_org: String,
    /// Registration id.
    pub key_id: String,
    /// The Ed25519 public key, 64 hex digits.
    pub public_key: String,
    /// The key it replaces, if any.
    pub replaces: Option<String>,
}

/// A supervisor asks the bank to open a query's consent commitment (event
/// `consent_request`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FheConsentRequest {
    /// Request id.
    pub request_id: String,
    /// The query.
    pub query_id: String,
    /// The bank that made the query and must answer.
    pub bank_org: String,
    /// The commitment to open.
    pub consent_commitment: Hash32,
    /// Why the supervisor asks.
    pub reason: String,
    /// Answer deadline, `YYYY-MM-DD`, counted in working days.
    pub answer_deadline: String,
}

/// The bank's answer to a consent request (event `consent_answer`): an opening that
/// verified, an opening that did not (with the first check it failed), or a refusal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FheConsentAnswer {
    /// Request id.
    pub request_id: String,
    /// The query.
    pub query_id: String,
    /// The bank (the actor).
    pub bank_org: String,
    /// The supervisor organisation that asked.
    pub requester_org: String,
    /// The commitment the query carried.
    pub consent_commitment: Hash32,
    /// `verified`, `invalid` or `refused`.
    pub outcome: String,
    /// For `invalid`: the first check that failed (`commitment`, `well_formed`,
    /// `subject_key`, `signature`, `bank`, `template` or `period`).
    pub failed_check: Option<String>,
    /// The subject organisation the opened authorisation names, when the opening
    /// matched the commitment and that organisation has registered a consent key.
    pub subject_org: Option<String>,
    /// The subject's consent key the signature was checked under, hex.
    pub subject_key: Option<String>,
    /// The opening as sent (authorisation, signature and nonce), so that anyone who
    /// may read this entry can check it again offline; absent for a refusal.
    pub opening: Option<serde_json::Value>,
    /// The bank's reason, for a refusal.
    pub refusal: Option<String>,
    /// True if the answer came after the deadline.
    pub late: bool,
}

/// An FHE ledger entry (kind `fhe_query`): a template decision or an evaluated lookup,
/// told apart by the `event` member.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum FheRecord {
    /// A template approved, refused or retired.
    TemplateDecision(FheTemplateDecision),
    /// A lookup evaluated.
    Query(FheLookup),
    /// A subject organisation registered a consent key.
    ConsentKey(FheConsentKey),
    /// A supervisor asked a bank to open a query's consent commitment.
    ConsentRequest(FheConsentRequest),
    /// The bank opened the commitment or refused to.
    ConsentAnswer(FheConsentAnswer),
}
impl LedgerPayload for FheRecord {
    const KIND: EntryKind = EntryKind::FheQuery;
    fn parties(&self) -> Vec<String> {
        match self {
            FheRecord::TemplateDecision(d) => vec![d.proposer_org.clone()],
            FheRecord::Query(q) => vec![q.org.clone()],
            FheRecord::ConsentKey(k) => vec![k.subject_org.clone()],
            FheRecord::ConsentRequest(r) => vec![r.bank_org.clone()],
            FheRecord::ConsentAnswer(a) => {
                let mut parties = vec![a.bank_org.clone(), a.requester_org.clone()];
                parties.extend(a.subject_org.clone());
                parties
            }
        }
    }
}

/// One file a [`Destruction`] deleted (or, when `deleted` is false, left in place because
/// a live version holds the same content: storage is content-addressed).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DestroyedFile {
    /// The version the file belonged to.
    pub version: u64,
    /// The zone: `deid` (the certified de-identified file), `raw` (a retained upload) or
    /// `fhe_index` (the FHE key index built at ingest).
    pub zone: String,
    /// BLAKE3 of the file's bytes (for `deid`, the certified content hash).
    pub content_hash: Hash32,
    /// Its size in bytes.
    pub bytes: u64,
    /// False when the file stays because a live version holds the same content.
    pub deleted: bool,
}

/// A provider's destruction (销毁) of one version of its dataset, or of the whole dataset
/// (GD21 Art.40; XT Art.34(4)): its files are deleted from every zone and named here by
/// their hashes, with the reason and the legal basis. The catalog keeps the entry and the
/// versions' metadata and certificates as a tombstone; products built on earlier outputs
/// keep their manifests. A public kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Destruction {
    /// Dataset id.
    pub dataset_id: String,
    /// The providing organisation (the actor's).
    pub provider_org: String,
    /// `version` (one version) or `dataset` (every remaining version, and the catalog
    /// entry retired).
    pub scope: String,
    /// The versions this act destroyed, ascending.
    pub versions: Vec<u64>,
    /// Their data asset certificate numbers, in the same order.
    pub certificates: Vec<String>,
    /// The files, by zone and hash.
    pub files: Vec<DestroyedFile>,
    /// Why, as the provider stated it.
    pub reason: String,
    /// The legal basis the provider named, if any.
    pub legal_basis: Option<String>,
    /// Grants suspended because their dataset is gone (a whole-dataset destruction).
    pub grants_suspended: Vec<String>,
}
impl LedgerPayload for Destruction {
    const KIND: EntryKind = EntryKind::Destruction;
    fn parties(&self) -> Vec<String> {
        vec![self.provider_org.clone()]
    }
}

/// A download or export: data or an output leaving the platform (GD18 Art.28; XT
/// Art.34(4)), one entry per download, appended before the bytes leave. The providers of
/// the data it derives from, and the owner of the output or product, may read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataAccess {
    /// The access id, `acc_…`.
    pub access_id: String,
    /// The organisation that took the bytes (the actor's).
    pub org: String,
    /// The API key it used (`cli` for the operator's command line).
    pub key_id: String,
    /// `dataset_version` (a de-identified download), `output` (a model output: released
    /// to its developer, or quarantined to a reviewer), `product` (a purchased product's
    /// archive) or `ledger_export`.
    pub what: String,
    /// What left, by id: `dataset_id@version`, an output id, an order id, or `ledger`.
    pub subject: String,
    /// The release, for a released output.
    pub release_id: Option<String>,
    /// The product, for a product download.
    pub product_id: Option<String>,
    /// The dataset versions the bytes derive from, as `dataset_id@version`.
    pub dataset_versions: Vec<String>,
    /// The format sent: `parquet`, `csv`, `json`, `tar` or `jsonl`.
    pub format: String,
    /// Bytes sent.
    pub bytes: u64,
    /// BLAKE3 of the bytes sent.
    pub content_hash: Hash32,
    /// BLAKE3 of the stored source when known (the certified version file, the output
    /// file); for a Parquet download it equals `content_hash`.
    pub source_hash: Option<Hash32>,
    /// The grant the data was used under, when there was one.
    pub grant_id: Option<String>,
    /// That grant's purpose.
    pub purpose: Option<String>,
    /// Entries exported, for a ledger export.
    pub ledger_entries: Option<u64>,
    /// The organisations whose data it derives from (the providers).
    pub provider_orgs: Vec<String>,
    /// The owner of the output or product, when there is one.
    pub owner_org: Option<String>,
}
impl LedgerPayload for DataAccess {
    const KIND: EntryKind = EntryKind::DataAccess;
    fn parties(&self) -> Vec<String> {
        let mut parties = self.provider_orgs.clone();
        parties.extend(self.owner_org.clone());
        parties.sort();
        parties.dedup();
        parties
    }
}

#[cfg(test)]
mod destruction_and_access_tests {
    use super::*;
    use crate::entry::Actor;

    #[test]
    fn destructions_and_data_accesses_round_trip_and_name_their_readers() {
        let destruction = Destruction {
            dataset_id: "ds_1".into(),
            provider_org: "org-power".into(),
            scope: "version".into(),
            versions: vec![1],
            certificates: vec!["PDX-CERT-2026-1-V0001".into()],
            files: vec![DestroyedFile {
                version: 1,
                zone: "deid".into(),
                content_hash: Hash32([3; 32]),
                bytes: 2048,
                deleted: true,
            }],
            reason: "retention period over".into(),
            legal_basis: None,
            grants_suspended: Vec::new(),
        };
        let v = serde_json::to_value(&destruction).unwrap();
        assert_eq!(v["files"][0]["content_hash"], Hash32([3; 32]).to_hex());
        let e = Entry::build(0, 0, Destruction::KIND, Actor::system(), &v, Hash32::ZERO).unwrap();
        assert_eq!(e.kind, EntryKind::Destruction);
        assert!(e.kind.is_public());
        assert_eq!(decode::<Destruction>(&e), Some(destruction));

        let access = DataAccess {
            access_id: "acc_1".into(),
            org: "org-buyer".into(),
            key_id: "k1".into(),
            what: "product".into(),
            subject: "ord_1".into(),
            release_id: None,
            product_id: Some("prd_1".into()),
            dataset_versions: vec!["ds_1@1".into()],
            format: "tar".into(),
            bytes: 10,
            content_hash: Hash32([5; 32]),
            source_hash: None,
            grant_id: None,
            purpose: None,
            ledger_entries: None,
            provider_orgs: vec!["org-power".into(), "org-dev".into()],
            owner_org: Some("org-dev".into()),
        };
        let v = serde_json::to_value(&access).unwrap();
        let e = Entry::build(1, 0, DataAccess::KIND, Actor::system(), &v, Hash32::ZERO).unwrap();
        assert_eq!(e.kind, EntryKind::DataAccess);
        assert!(
            !e.kind.is_public(),
            "downloads are read by their parties only"
        );
        assert_eq!(decode::<DataAccess>(&e), Some(access.clone()));
        assert_eq!(
            access.parties(),
            vec!["org-dev".to_string(), "org-power".to_string()]
        );
    }
}

/// A request to open data was filed (SD22 Art.9, 12; GD21 Art.34): to open a catalogued
/// dataset further (its attribute made less strict) or to publish a new one. Anyone may
/// file one, the public without a key too. The requester's words are committed to by
/// hash only, and the contact never appears: the ledger is public and append-only, and
/// what the public types may hold personal data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenDataRequestFiled {
    /// The request's id.
    pub request_id: String,
    /// `open_dataset` (a catalogued dataset, named) or `new_dataset`.
    pub request: String,
    /// The dataset to open, for `open_dataset`.
    pub dataset_id: Option<String>,
    /// The filing organisation; none for the public without a key.
    pub requester_org: Option<String>,
    /// BLAKE3 of the subject and description as filed (`"pdx open-data request v1" ||
    /// 0x00 || subject || 0x00 || description`).
    pub text_hash: Hash32,
}

/// The data authority routed a request to the provider that must answer it, by a
/// deadline in working days.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenDataRequestRouted {
    /// The request's id.
    pub request_id: String,
    /// Seq of its `filed` entry.
    pub filed_seq: u64,
    /// The provider that must answer.
    pub provider_org: String,
    /// The answer deadline, `YYYY-MM-DD`, counted in working days from the routing.
    pub answer_due: String,
}

/// The provider answered a request: accepted (it will open or publish the data) or
/// refused, with a reason (required for a refusal); late when after the deadline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenDataRequestAnswered {
    /// The request's id.
    pub request_id: String,
    /// Seq of its `routed` entry.
    pub routed_seq: u64,
    /// The provider that answered.
    pub provider_org: String,
    /// `accepted` or `refused`.
    pub outcome: String,
    /// Why (required for a refusal).
    pub reason: Option<String>,
    /// The deadline it answered against, `YYYY-MM-DD`.
    pub answer_due: String,
    /// True for an answer after the deadline.
    pub late: bool,
}

/// One step of a request to open data (event `filed`, `routed` or `answered`). A public
/// kind: everyone reads it, the public without a key too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum OpenDataRequestRecord {
    /// Filed by anyone.
    Filed(OpenDataRequestFiled),
    /// Routed to a provider by the data authority.
    Routed(OpenDataRequestRouted),
    /// Answered by that provider.
    Answered(OpenDataRequestAnswered),
}
impl LedgerPayload for OpenDataRequestRecord {
    const KIND: EntryKind = EntryKind::OpenDataRequest;
    fn parties(&self) -> Vec<String> {
        match self {
            OpenDataRequestRecord::Filed(f) => f.requester_org.clone().into_iter().collect(),
            OpenDataRequestRecord::Routed(r) => vec![r.provider_org.clone()],
            OpenDataRequestRecord::Answered(a) => vec![a.provider_org.clone()],
        }
    }
}

#[cfg(test)]
mod open_data_request_tests {
    use super::*;
    use crate::entry::Actor;

    #[test]
    fn open_data_request_records_carry_their_event_and_round_trip() {
        let filed = OpenDataRequestRecord::Filed(OpenDataRequestFiled {
            request_id: "odr_0123456789abcdef".into(),
            request: "new_dataset".into(),
            dataset_id: None,
            requester_org: None,
            text_hash: Hash32::ZERO,
        });
        let v = serde_json::to_value(&filed).unwrap();
        assert_eq!(v["event"], "filed");
        assert!(v.get("contact").is_none());
        // The public has no organisation to name as a party.
        assert!(filed.parties().is_empty());
        let e = Entry::build(
            0,
            0,
            OpenDataRequestRecord::KIND,
            Actor::system(),
            &v,
            Hash32::ZERO,
        )
        .unwrap();
        assert_eq!(decode::<OpenDataRequestRecord>(&e), Some(filed));
        let answered = OpenDataRequestRecord::Answered(OpenDataRequestAnswered {
            request_id: "odr_0123456789abcdef".into(),
            routed_seq: 1,
            provider_org: "org-p".into(),
            outcome: "refused".into(),
            reason: Some("personal data".into()),
            answer_due: "2026-01-05".into(),
            late: true,
        });
        assert_eq!(
            serde_json::to_value(&answered).unwrap()["event"],
            "answered"
        );
        assert_eq!(answered.parties(), vec!["org-p".to_string()]);
        assert!(OpenDataRequestRecord::KIND.is_public());
    }
}

/// One step of a data share between government departments (GD18; GD21 Art.22–23),
/// told apart by `event`: a providing department asks for another's dataset for its
/// own duty (`requested`); the share is `granted` (at once under an unconditional share
/// type, or by the owning department under a conditional one) or `refused` (by the
/// owner with a reason, or at once under a not-shared type, naming the dataset's legal
/// basis); the owner may end it early (`revoked`); and every download of a
/// de-identified version under it is an `access` (GD18 Art.28). Both departments may
/// read every entry of the share.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepartmentShare {
    /// `requested`, `granted`, `refused`, `revoked` or `access`.
    pub event: String,
    /// The share request's id.
    pub share_id: String,
    /// Dataset id.
    pub dataset_id: String,
    /// The requesting department (organisation).
    pub requester_org: String,
    /// The department that provides the dataset.
    pub owner_org: String,
    /// The dataset's share type when asked: `unconditional`, `conditional` or
    /// `not_shared`.
    pub share_type: String,
    /// The requesting department's duty and the purpose the data serves.
    pub purpose: String,
    /// The legal basis of that duty.
    pub duty_legal_basis: String,
    /// The last day of the share's term, `YYYY-MM-DD` (UTC).
    pub until: String,
    /// The owner's answer deadline for a conditional share, `YYYY-MM-DD`, counted in
    /// working days (GD18 Art.19).
    pub answer_deadline: Option<String>,
    /// Why it was refused or revoked.
    pub reason: Option<String>,
    /// For a refusal under a not-shared type: the legal basis the catalog records for
    /// not sharing the dataset (GD21 Art.12–13).
    pub dataset_legal_basis: Option<String>,
    /// True when the owner decided after the deadline.
    pub late: bool,
    /// True when the platform decided under the catalog's share type, not a person.
    pub automatic: bool,
    /// The seq of the share's `requested` entry (absent on that entry itself).
    pub request_seq: Option<u64>,
    /// For `access`: the dataset version downloaded.
    pub version: Option<u64>,
    /// For `access`: the bytes served.
    pub bytes: Option<u64>,
    /// For `access`: BLAKE3 of the bytes served (the version's certified content hash).
    pub content_hash: Option<Hash32>,
}
impl LedgerPayload for DepartmentShare {
    const KIND: EntryKind = EntryKind::DepartmentShare;
    fn parties(&self) -> Vec<String> {
        vec![self.requester_org.clone(), self.owner_org.clone()]
    }
}

#[cfg(test)]
mod department_share_tests {
    use super::*;
    use crate::entry::Actor;

    #[test]
    fn department_shares_round_trip_and_are_readable_by_both_departments() {
        let access = DepartmentShare {
            event: "access".into(),
            share_id: "shr_1".into(),
            dataset_id: "ds_1".into(),
            requester_org: "org-health".into(),
            owner_org: "org-power".into(),
            share_type: "conditional".into(),
            purpose: "epidemic response".into(),
            duty_legal_basis: "Law on the Prevention of Infectious Diseases Art.5".into(),
            until: "2026-12-31".into(),
            answer_deadline: Some("2026-11-27".into()),
            reason: None,
            dataset_legal_basis: None,
            late: false,
            automatic: false,
            request_seq: Some(3),
            version: Some(1),
            bytes: Some(1024),
            content_hash: Some(Hash32([7; 32])),
        };
        let v = serde_json::to_value(&access).unwrap();
        assert_eq!(v["event"], "access");
        assert_eq!(v["content_hash"], Hash32([7; 32]).to_hex());
        let e = Entry::build(
            0,
            0,
            DepartmentShare::KIND,
            Actor::system(),
            &v,
            Hash32::ZERO,
        )
        .unwrap();
        assert_eq!(e.kind, EntryKind::DepartmentShare);
        assert_eq!(decode::<DepartmentShare>(&e), Some(access.clone()));
        assert_eq!(decode::<Suspension>(&e), None);
        assert_eq!(
            access.parties(),
            vec!["org-health".to_string(), "org-power".to_string()]
        );
    }
}

/// A provider's filing (备案) of a not-shared classification with the data authority
/// (GD21 Art.13): written when a catalog entry is registered with the share type
/// `not_shared`, or edited into it or to another legal basis, in the transaction of the
/// registration or edit. It names the legal basis the catalog records for not sharing
/// and the catalog revision it was filed with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassificationFiling {
    /// The filing's id.
    pub filing_id: String,
    /// Dataset id.
    pub dataset_id: String,
    /// The providing organisation that filed it (the actor).
    pub provider_org: String,
    /// The share type filed: `not_shared`.
    pub share_type: String,
    /// The legal basis for not sharing, as the catalog records it.
    pub legal_basis: String,
    /// The dataset's classification level, L1–L4.
    pub level: String,
    /// The catalog revision the filing was made with (1 is the registration).
    pub revision: u64,
    /// BLAKE3 of that revision's canonical metadata.
    pub metadata_hash: Hash32,
}
impl LedgerPayload for ClassificationFiling {
    const KIND: EntryKind = EntryKind::ClassificationFiling;
    fn parties(&self) -> Vec<String> {
        vec![self.provider_org.clone()]
    }
}

#[cfg(test)]
mod grant_terms_tests {
    use super::*;
    use crate::entry::Actor;

    #[test]
    fn grant_decisions_without_terms_fields_encode_as_before_and_with_them_round_trip() {
        // An entry written before purposes and agreements were recorded: its canonical
        // payload has none of the new fields, decodes, and encodes to the same bytes.
        let old_text = r#"{"applicant_org":"org-dev","dataset_ids":["ds_1"],"decision":"approved","grant_id":"gr_1","reason":null,"terms":{"query_budget":5}}"#;
        let old: GrantDecision = serde_json::from_str(old_text).unwrap();
        assert_eq!(old.purpose, None);
        assert_eq!(old.agreement_hash, None);
        let again =
            crate::canonical::to_canonical_string(&serde_json::to_value(&old).unwrap()).unwrap();
        assert_eq!(again, old_text);

        let new = GrantDecision {
            purpose: Some("district energy study".into()),
            purpose_kind: Some("research".into()),
            agreement_hash: Some(Hash32(*blake3::hash(b"I agree").as_bytes())),
            ..old
        };
        let v = serde_json::to_value(&new).unwrap();
        assert_eq!(v["purpose_kind"], "research");
        assert_eq!(
            v["agreement_hash"],
            blake3::hash(b"I agree").to_hex().as_str()
        );
        let e = Entry::build(0, 0, GrantDecision::KIND, Actor::system(), &v, Hash32::ZERO).unwrap();
        assert_eq!(decode::<GrantDecision>(&e), Some(new));
    }

    #[test]
    fn classification_filings_round_trip_and_are_readable_by_their_provider() {
        let f = ClassificationFiling {
            filing_id: "fil_1".into(),
            dataset_id: "ds_1".into(),
            provider_org: "org-tax".into(),
            share_type: "not_shared".into(),
            legal_basis: "Tax Collection Administration Law Art.8".into(),
            level: "L4".into(),
            revision: 1,
            metadata_hash: Hash32([9; 32]),
        };
        let v = serde_json::to_value(&f).unwrap();
        let e = Entry::build(
            0,
            0,
            ClassificationFiling::KIND,
            Actor::system(),
            &v,
            Hash32::ZERO,
        )
        .unwrap();
        assert_eq!(e.kind, EntryKind::ClassificationFiling);
        assert_eq!(decode::<ClassificationFiling>(&e), Some(f.clone()));
        assert_eq!(f.parties(), vec!["org-tax".to_string()]);
    }
}

/// A corrected version for an accepted objection (SD22 Art.13; XT Art.21–22): the
/// provider uploaded a version naming the objection, and this entry links the two when
/// the version is certified, in the certificate's transaction. It is written under the
/// `objection_answer` kind, as the answer's follow-up; `step` (always `corrected`) tells
/// it from the answer itself. The objector may read it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ObjectionCorrection {
    /// Always `corrected`.
    pub step: String,
    /// Objection id.
    pub objection_id: String,
    /// Ledger seq of the `Objection` entry.
    pub objection_seq: u64,
    /// Organisation that filed the objection.
    pub objector_org: String,
    /// The providing organisation, which corrected the data (the actor).
    pub provider_org: String,
    /// Dataset id.
    pub dataset_id: String,
    /// The corrected version.
    pub version: u64,
    /// Its data asset certificate number.
    pub certificate_no: String,
    /// Ledger seq of its `AssetCertificate` entry.
    pub certificate_seq: u64,
    /// The correction deadline, `YYYY-MM-DD`, counted in working days from the
    /// acceptance.
    pub correction_due: String,
    /// True when the version was certified after the deadline.
    pub late: bool,
}
impl LedgerPayload for ObjectionCorrection {
    const KIND: EntryKind = EntryKind::ObjectionAnswer;
    fn parties(&self) -> Vec<String> {
        vec![self.objector_org.clone()]
    }
}

/// One indicator of a provider's yearly evaluation: a ratio, with its weight in the
/// score (the weights of an evaluation sum to 100).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvaluationIndicator {
    /// `answers_on_time`, `objections_handled`, `corrections_on_time`,
    /// `updates_on_time` or `catalog_completeness`.
    pub name: String,
    /// Weight in the score, out of 100.
    pub weight: u64,
    /// Items that met the indicator.
    pub numerator: u64,
    /// Items counted (0: the indicator does not apply and its weight is shared out).
    pub denominator: u64,
}

/// The data authority's yearly evaluation of a provider (GD21 Art.48–49; GD18 Art.30;
/// XT Art.41), public (SD22 Art.5): every indicator's numerator and denominator and the
/// score they give, under the formula named by `formula`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The evaluation's id.
    pub evaluation_id: String,
    /// The evaluated provider organisation.
    pub provider_org: String,
    /// The year evaluated.
    pub year: i32,
    /// The day (UTC) the counts were taken, `YYYY-MM-DD`.
    pub as_of: String,
    /// The formula's name, e.g. `pdx-evaluation-v1`.
    pub formula: String,
    /// The indicators, in the formula's order.
    pub indicators: Vec<EvaluationIndicator>,
    /// The score, 0–100 (absent when no indicator applies).
    pub score: Option<u64>,
}
impl LedgerPayload for Evaluation {
    const KIND: EntryKind = EntryKind::Evaluation;
    fn parties(&self) -> Vec<String> {
        vec![self.provider_org.clone()]
    }
}

/// One step of a rectification order (GD21 Art.52; GD18 Art.31), public: the data
/// authority issues it to an organisation with findings and a deadline (`issued`), the
/// organisation answers with what it did (`responded`), and the authority closes it
/// (`closed`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rectification {
    /// `issued`, `responded` or `closed`.
    pub step: String,
    /// The order's id.
    pub order_id: String,
    /// The organisation ordered to rectify.
    pub org: String,
    /// The data authority's organisation that issued it.
    pub authority_org: String,
    /// The deadline, `YYYY-MM-DD` (UTC).
    pub deadline: String,
    /// The evaluation the order follows, if any.
    pub evaluation_id: Option<String>,
    /// The step's text: the findings, the response or the closing note.
    pub text: String,
    /// True for a response made after the deadline.
    pub late: bool,
    /// The seq of the order's `issued` entry (absent on that entry itself).
    pub issued_seq: Option<u64>,
}
impl LedgerPayload for Rectification {
    const KIND: EntryKind = EntryKind::Rectification;
    fn parties(&self) -> Vec<String> {
        vec![self.org.clone()]
    }
}

#[cfg(test)]
mod evaluation_tests {
    use super::*;
    use crate::entry::Actor;

    #[test]
    fn corrections_evaluations_and_rectifications_round_trip() {
        let c = ObjectionCorrection {
            step: "corrected".into(),
            objection_id: "obj_1".into(),
            objection_seq: 4,
            objector_org: "org-dev".into(),
            provider_org: "org-power".into(),
            dataset_id: "ds_1".into(),
            version: 2,
            certificate_no: "PDX-CERT-2026-1-V0002".into(),
            certificate_seq: 9,
            correction_due: "2026-12-04".into(),
            late: false,
        };
        let v = serde_json::to_value(&c).unwrap();
        let e = Entry::build(
            0,
            0,
            ObjectionCorrection::KIND,
            Actor::system(),
            &v,
            Hash32::ZERO,
        )
        .unwrap();
        assert_eq!(e.kind, EntryKind::ObjectionAnswer);
        assert_eq!(decode::<ObjectionCorrection>(&e), Some(c.clone()));
        assert_eq!(decode::<ObjectionAnswer>(&e), None, "not an answer");
        assert_eq!(c.parties(), vec!["org-dev".to_string()]);

        let ev = Evaluation {
            evaluation_id: "evl_1".into(),
            provider_org: "org-power".into(),
            year: 2026,
            as_of: "2026-12-31".into(),
            formula: "pdx-evaluation-v1".into(),
            indicators: vec![EvaluationIndicator {
                name: "answers_on_time".into(),
                weight: 30,
                numerator: 3,
                denominator: 4,
            }],
            score: Some(75),
        };
        let v = serde_json::to_value(&ev).unwrap();
        let e = Entry::build(0, 0, Evaluation::KIND, Actor::system(), &v, Hash32::ZERO).unwrap();
        assert!(e.kind.is_public());
        assert_eq!(decode::<Evaluation>(&e), Some(ev));

        let r = Rectification {
            step: "issued".into(),
            order_id: "rct_1".into(),
            org: "org-power".into(),
            authority_org: "org-bureau".into(),
            deadline: "2026-12-31".into(),
            evaluation_id: None,
            text: "late answers to objections".into(),
            late: false,
            issued_seq: None,
        };
        let v = serde_json::to_value(&r).unwrap();
        let e = Entry::build(0, 0, Rectification::KIND, Actor::system(), &v, Hash32::ZERO).unwrap();
        assert!(e.kind.is_public());
        assert_eq!(decode::<Rectification>(&e), Some(r.clone()));
        assert_eq!(r.parties(), vec!["org-power".to_string()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::Actor;

    #[test]
    fn decode_only_matches_its_own_kind() {
        let s = Suspension {
            org: "o1".into(),
            action: "suspended".into(),
            reason: "misuse".into(),
        };
        let v = serde_json::to_value(&s).unwrap();
        let e = Entry::build(0, 0, Suspension::KIND, Actor::system(), &v, Hash32::ZERO).unwrap();
        assert_eq!(decode::<Suspension>(&e), Some(s));
        assert_eq!(decode::<Refund>(&e), None);
    }

    #[test]
    fn fhe_records_carry_their_event_and_round_trip() {
        let q = FheRecord::Query(FheLookup {
            query_id: "fq_1".into(),
            job_id: "job_1".into(),
            template_id: "ft_1".into(),
            template_hash: Hash32([1; 32]),
            org: "bank".into(),
            grant_id: Some("gr_1".into()),
            dataset_version: "ds_1@1".into(),
            server_key_hash: Hash32([2; 32]),
            input_hash: Hash32([3; 32]),
            value_hash: Hash32([4; 32]),
            found_hash: Hash32([5; 32]),
            rows_scanned: 16,
            bucket_bits: None,
            bucket: None,
            consent_commitment: None,
        });
        let v = serde_json::to_value(&q).unwrap();
        assert_eq!(v["event"], "query");
        assert!(
            v.get("consent_commitment").is_none(),
            "an absent commitment is not written, so older entries hash the same"
        );
        let e = Entry::build(0, 0, FheRecord::KIND, Actor::system(), &v, Hash32::ZERO).unwrap();
        assert_eq!(decode::<FheRecord>(&e), Some(q.clone()));
        assert_eq!(q.parties(), vec!["bank".to_string()]);

        let FheRecord::Query(mut lookup) = q else {
            unreachable!()
        };
        lookup.consent_commitment = Some(Hash32([6; 32]));
        let q = FheRecord::Query(lookup);
        let v = serde_json::to_value(&q).unwrap();
        assert_eq!(v["consent_commitment"], Hash32([6; 32]).to_hex());
        let e = Entry::build(0, 0, FheRecord::KIND, Actor::system(), &v, Hash32::ZERO).unwrap();
        assert_eq!(decode::<FheRecord>(&e), Some(q));
    }

    #[test]
    fn catalog_decisions_round_trip_and_are_readable_by_the_provider() {
        let d = CatalogDecision {
            dataset_id: "ds_1".into(),
            provider_org: "org-prov".into(),
            decision: "approved".into(),
            reason: None,
            revision: 2,
            metadata_hash: Hash32([7; 32]),
            review_due: "2026-11-27".into(),
            late: true,
        };
        let v = serde_json::to_value(&d).unwrap();
        let actor = Actor {
            org: "org-bureau".into(),
            key_id: "k".into(),
        };
        let e = Entry::build(0, 0, CatalogDecision::KIND, actor, &v, Hash32::ZERO).unwrap();
        assert_eq!(e.kind.as_str(), "catalog_decision");
        assert_eq!(decode::<CatalogDecision>(&e), Some(d.clone()));
        assert_eq!(decode::<CatalogRevision>(&e), None);
        assert_eq!(d.parties(), ["org-prov"]);
        assert!(!CatalogDecision::KIND.is_public());
        assert!(!CatalogRevision::KIND.is_public());
    }

    #[test]
    fn open_attribute_changes_and_relaxations_round_trip_and_are_public() {
        let change = OpenAttributeChange {
            change_id: "oac_1".into(),
            dataset_id: "ds_1".into(),
            provider_org: "org-prov".into(),
            from: "conditional".into(),
            to: "not_open".into(),
            stricter: true,
            reason: "personal data found".into(),
            legal_basis: "PIPL Art.28".into(),
            requester_org: "org-prov".into(),
            requester_key: "k1".into(),
            approver_org: Some("org-bureau".into()),
            approver_key: Some("k2".into()),
            requested_ms: 1,
            revision: 2,
            metadata_hash: Hash32([8; 32]),
            grants_suspended: vec!["gr_1".into()],
        };
        let v = serde_json::to_value(&change).unwrap();
        let e = Entry::build(
            0,
            0,
            OpenAttributeChange::KIND,
            Actor::system(),
            &v,
            Hash32::ZERO,
        )
        .unwrap();
        assert_eq!(e.kind.as_str(), "open_attribute_change");
        assert_eq!(decode::<OpenAttributeChange>(&e), Some(change.clone()));
        assert_eq!(change.parties(), ["org-prov"]);
        let relaxation = EmergencyRelaxation {
            relaxation_id: "rlx_1".into(),
            phase: "ended".into(),
            dataset_id: "ds_1".into(),
            provider_org: "org-prov".into(),
            open_attribute: "not_open".into(),
            relaxed_to: "conditional".into(),
            emergency: "flood".into(),
            until: "2026-07-31".into(),
            ends_ms: 2,
            started_seq: Some(0),
            grants_suspended: Vec::new(),
        };
        let v = serde_json::to_value(&relaxation).unwrap();
        let e = Entry::build(
            1,
            0,
            EmergencyRelaxation::KIND,
            Actor::system(),
            &v,
            Hash32::ZERO,
        )
        .unwrap();
        assert_eq!(e.kind.as_str(), "emergency_relaxation");
        assert_eq!(decode::<EmergencyRelaxation>(&e), Some(relaxation));
        assert_eq!(decode::<OpenAttributeChange>(&e), None);
        assert!(OpenAttributeChange::KIND.is_public());
        assert!(EmergencyRelaxation::KIND.is_public());
    }

    #[test]
    fn consent_answers_are_readable_by_the_bank_the_supervisor_and_the_subject() {
        let answer = FheRecord::ConsentAnswer(FheConsentAnswer {
            request_id: "cr_1".into(),
            query_id: "fq_1".into(),
            bank_org: "bank".into(),
            requester_org: "regulator".into(),
            consent_commitment: Hash32([1; 32]),
            outcome: "verified".into(),
            failed_check: None,
            subject_org: Some("widgets".into()),
            subject_key: Some("ab".repeat(32)),
            opening: Some(serde_json::json!({"nonce": "00"})),
            refusal: None,
            late: false,
        });
        let v = serde_json::to_value(&answer).unwrap();
        assert_eq!(v["event"], "consent_answer");
        let e = Entry::build(0, 0, FheRecord::KIND, Actor::system(), &v, Hash32::ZERO).unwrap();
        assert_eq!(decode::<FheRecord>(&e), Some(answer.clone()));
        assert_eq!(answer.parties(), ["bank", "regulator", "widgets"]);
    }
}
