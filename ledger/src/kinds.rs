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

/// A provider's decision on a grant application.
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
    /// Approved terms (columns, model kinds, term and expiry, ε, δ, query budget; not
    /// yet the purpose, which is on the grant row), absent on refusal and revocation.
    pub terms: Option<serde_json::Value>,
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
    /// Model kind (`sql`, `dp`, `fhe`).
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

// PAYLOADS-H1 (a helper replaces this line with its payload structs)

// PAYLOADS-H2 (a helper replaces this line with its payload structs)

// PAYLOADS-H3 (a helper replaces this line with its payload structs)

// PAYLOADS-H4 (a helper replaces this line with its payload structs)

// PAYLOADS-H5 (a helper replaces this line with its payload structs)

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
