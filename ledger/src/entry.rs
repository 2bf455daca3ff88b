//! Ledger entries and the exact bytes every hash covers.
//!
//! # Hash rules (version 1)
//!
//! All hashes are BLAKE3 (32 bytes). Each hash input begins with an ASCII
//! domain-separation tag and a 0x00 byte, so a payload can never be confused with an
//! entry, nor either with a Merkle leaf (which has its own 0x00/0x01 prefixes, see
//! [`crate::merkle`]).
//!
//! ```text
//! payload_bytes = RFC 8785 canonical JSON of the payload          (crate::canonical)
//! payload_hash  = BLAKE3("pdx-ledger/payload/v1" || 0x00 || payload_bytes)
//! entry_hash    = BLAKE3("pdx-ledger/entry/v1"   || 0x00
//!                        || u64_be(seq)
//!                        || i64_be(timestamp_ms)
//!                        || u32_be(len(kind))      || kind      (UTF-8)
//!                        || u32_be(len(actor.org)) || actor.org (UTF-8)
//!                        || u32_be(len(actor.key)) || actor.key (UTF-8)
//!                        || payload_hash           (32 bytes)
//!                        || prev_hash              (32 bytes))
//! prev_hash(seq 0) = 32 zero bytes; prev_hash(seq n) = entry_hash(seq n-1)
//! merkle leaf n    = BLAKE3(0x00 || entry_hash(seq n))   (RFC 9162 leaf rule)
//! ```
//!
//! Strings are length-prefixed so that moving bytes between adjacent fields changes the
//! hash. The kind is hashed as a string, which is why a verifier that does not know a
//! kind still verifies it: nothing in these rules depends on what a kind means.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::canonical::{self, CanonicalError};

/// Domain-separation tag of payload hashes.
pub const PAYLOAD_DOMAIN: &[u8] = b"pdx-ledger/payload/v1";
/// Domain-separation tag of entry hashes.
pub const ENTRY_DOMAIN: &[u8] = b"pdx-ledger/entry/v1";

/// The value of each hex digit (`0-9`, `a-f`, `A-F`); 0xff for any other byte.
static HEX_VALUE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0u8;
    while i < 10 {
        table[(b'0' + i) as usize] = i;
        i += 1;
    }
    let mut i = 0u8;
    while i < 6 {
        table[(b'a' + i) as usize] = 10 + i;
        table[(b'A' + i) as usize] = 10 + i;
        i += 1;
    }
    table
};

/// A 32-byte hash, shown and serialised as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// The all-zero hash: `prev_hash` of the genesis entry.
    pub const ZERO: Hash32 = Hash32([0u8; 32]);

    /// Lowercase hex form.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters (either case, as the `hex` crate accepts).
    pub fn from_hex(s: &str) -> Result<Self, EntryError> {
        Self::from_hex_bytes(s.as_bytes())
    }

    /// [`Hash32::from_hex`] of ASCII digits given as bytes.
    pub(crate) fn from_hex_bytes(digits: &[u8]) -> Result<Self, EntryError> {
        // Every hash of every exported entry goes through here, so this is a table
        // lookup per digit rather than the `hex` crate's general decoder.
        if digits.len() != 64 {
            return Err(EntryError::BadHash);
        }
        let mut out = [0u8; 32];
        // Invalid digits map to 0xff; OR-ing every digit's value together and checking
        // the high bits once at the end rejects them without a branch per digit.
        let mut seen = 0u8;
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            let (hi, lo) = (
                HEX_VALUE[usize::from(pair[0])],
                HEX_VALUE[usize::from(pair[1])],
            );
            seen |= hi | lo;
            *byte = hi << 4 | lo;
        }
        if seen > 0xf {
            return Err(EntryError::BadHash);
        }
        Ok(Hash32(out))
    }

    /// Takes exactly 32 bytes, as read from a BLOB/BYTEA column.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, EntryError> {
        <[u8; 32]>::try_from(bytes)
            .map(Hash32)
            .map_err(|_| EntryError::BadHash)
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash32({})", self.to_hex())
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Accepts what `String` accepts (a string, or UTF-8 bytes), without copying it.
        struct HexVisitor;
        impl serde::de::Visitor<'_> for HexVisitor {
            type Value = Hash32;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Hash32, E> {
                Hash32::from_hex(s).map_err(E::custom)
            }
            fn visit_bytes<E: serde::de::Error>(self, b: &[u8]) -> Result<Hash32, E> {
                match std::str::from_utf8(b) {
                    Ok(s) => self.visit_str(s),
                    Err(_) => Err(E::invalid_value(serde::de::Unexpected::Bytes(b), &self)),
                }
            }
        }
        d.deserialize_string(HexVisitor)
    }
}

/// Errors in building or checking a single entry.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    /// A hash was not 32 bytes / 64 hex characters.
    #[error("hash is not 32 bytes of hex")]
    BadHash,
    /// The payload could not be canonicalised.
    #[error("payload is not canonicalisable JSON: {0}")]
    Canonical(#[from] CanonicalError),
    /// The payload text is not JSON.
    #[error("payload is not JSON")]
    NotJson,
    /// The stored payload text is not in canonical form.
    #[error("payload is not in RFC 8785 canonical form")]
    NotCanonical,
    /// A kind or actor field is empty, too long or has control characters.
    #[error("invalid {0}")]
    BadField(&'static str),
}

/// Who appended an entry: the organisation and the public id of the API key used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Actor {
    /// Organisation id (or the reserved `pdx` for the platform itself).
    pub org: String,
    /// Public key id of the API key (never the key).
    pub key_id: String,
}

impl Actor {
    /// An actor for entries the platform writes on its own account.
    pub fn system() -> Self {
        Actor {
            org: "pdx".into(),
            key_id: "system".into(),
        }
    }
}

/// The kinds of entry pdx writes. Unknown kinds round-trip as [`EntryKind::Other`], so an
/// old verifier still verifies a newer ledger.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A data asset certificate for one dataset version.
    AssetCertificate,
    /// A change to a dataset's open attribute, naming its requester, its approver, the
    /// reason and the legal basis (SD22 Art.8, 10, 20).
    OpenAttributeChange,
    /// A provider's approval, refusal or revocation of a grant.
    GrantDecision,
    /// A grant revoked before its term (reserved: revocations are written as a
    /// [`EntryKind::GrantDecision`] with decision `revoked`).
    GrantRevocation,
    /// A model and its hash.
    ModelRegistration,
    /// A vetted output leaving the sandbox.
    Release,
    /// Privacy budget spent by a DP job.
    PrivacySpend,
    /// A product listed, with its registration number.
    ProductListing,
    /// A product delisted.
    ProductDelisting,
    /// A paid order.
    Transaction,
    /// A refund.
    Refund,
    /// Money remitted to a payee for a period.
    Remittance,
    /// An organisation suspended or reinstated.
    Suspension,
    /// An objection to a dataset version.
    Objection,
    /// A provider's answer to an objection.
    ObjectionAnswer,
    /// An FHE template approval or an FHE query.
    FheQuery,
    /// A catalog entry submitted for review, or the data authority's approval or return
    /// of it (GD21 Art.10–11; XT Art.12, 14).
    CatalogDecision,
    /// A provider's edit of a catalog entry's metadata: a new catalog revision (GD21
    /// Art.11; XT Art.14).
    CatalogRevision,
    /// The data authority's emergency relaxation of a dataset's open attribute, when
    /// it starts and when it ends (XT Art.23(7)).
    EmergencyRelaxation,
    /// A provider's destruction of a dataset version or a whole dataset: files deleted from
    /// every zone, hashes and reason kept (GD21 Art.40; XT Art.34(4)).
    Destruction,
    /// A download or export of data or of an output leaving the platform (GD18 Art.28;
    /// XT Art.34(4)).
    DataAccess,
    /// A request to open a dataset or publish a new one, its routing to a provider by the
    /// data authority, and the provider's answer (SD22 Art.9, 12; GD21 Art.34).
    OpenDataRequest,
    /// A government department's request to share another provider's dataset, and its
    /// grant or refusal (GD18; GD21 Art.22-23).
    DepartmentShare,
    /// The data authority's yearly evaluation of a provider (GD21 Art.48-49; GD18
    /// Art.30).
    Evaluation,
    /// The data authority's rectification order to an organisation, and its closing
    /// (GD21 Art.52; GD18 Art.31).
    Rectification,
    /// A provider's filing (备案) of a not-shared classification with the data authority,
    /// with its legal basis (GD21 Art.13).
    ClassificationFiling,
    /// A kind this build does not know.
    Other(String),
}

impl EntryKind {
    const KNOWN: [(EntryKind, &'static str); 26] = [
        (EntryKind::AssetCertificate, "asset_certificate"),
        (EntryKind::OpenAttributeChange, "open_attribute_change"),
        (EntryKind::GrantDecision, "grant_decision"),
        (EntryKind::GrantRevocation, "grant_revocation"),
        (EntryKind::ModelRegistration, "model_registration"),
        (EntryKind::Release, "release"),
        (EntryKind::PrivacySpend, "privacy_spend"),
        (EntryKind::ProductListing, "product_listing"),
        (EntryKind::ProductDelisting, "product_delisting"),
        (EntryKind::Transaction, "transaction"),
        (EntryKind::Refund, "refund"),
        (EntryKind::Remittance, "remittance"),
        (EntryKind::Suspension, "suspension"),
        (EntryKind::Objection, "objection"),
        (EntryKind::ObjectionAnswer, "objection_answer"),
        (EntryKind::FheQuery, "fhe_query"),
        (EntryKind::CatalogDecision, "catalog_decision"),
        (EntryKind::CatalogRevision, "catalog_revision"),
        (EntryKind::EmergencyRelaxation, "emergency_relaxation"),
        (EntryKind::Destruction, "destruction"),
        (EntryKind::DataAccess, "data_access"),
        (EntryKind::OpenDataRequest, "open_data_request"),
        (EntryKind::DepartmentShare, "department_share"),
        (EntryKind::Evaluation, "evaluation"),
        (EntryKind::Rectification, "rectification"),
        (EntryKind::ClassificationFiling, "classification_filing"),
    ];

    /// The wire name, as hashed.
    pub fn as_str(&self) -> &str {
        // A match rather than a search of KNOWN: this runs for every entry hashed. The
        // `unknown_kinds_round_trip` test keeps the two tables in step.
        match self {
            EntryKind::AssetCertificate => "asset_certificate",
            EntryKind::OpenAttributeChange => "open_attribute_change",
            EntryKind::GrantDecision => "grant_decision",
            EntryKind::GrantRevocation => "grant_revocation",
            EntryKind::ModelRegistration => "model_registration",
            EntryKind::Release => "release",
            EntryKind::PrivacySpend => "privacy_spend",
            EntryKind::ProductListing => "product_listing",
            EntryKind::ProductDelisting => "product_delisting",
            EntryKind::Transaction => "transaction",
            EntryKind::Refund => "refund",
            EntryKind::Remittance => "remittance",
            EntryKind::Suspension => "suspension",
            EntryKind::Objection => "objection",
            EntryKind::ObjectionAnswer => "objection_answer",
            EntryKind::FheQuery => "fhe_query",
            EntryKind::CatalogDecision => "catalog_decision",
            EntryKind::CatalogRevision => "catalog_revision",
            EntryKind::EmergencyRelaxation => "emergency_relaxation",
            EntryKind::Destruction => "destruction",
            EntryKind::DataAccess => "data_access",
            EntryKind::OpenDataRequest => "open_data_request",
            EntryKind::DepartmentShare => "department_share",
            EntryKind::Evaluation => "evaluation",
            EntryKind::Rectification => "rectification",
            EntryKind::ClassificationFiling => "classification_filing",
            EntryKind::Other(s) => s,
        }
    }

    /// Kinds every authenticated role may read (certificates, open-attribute changes
    /// and emergency relaxations, listings, suspensions, destructions, open-data
    /// requests, evaluations and rectification orders).
    pub fn is_public(&self) -> bool {
        matches!(
            self,
            EntryKind::AssetCertificate
                | EntryKind::OpenAttributeChange
                | EntryKind::EmergencyRelaxation
                | EntryKind::ProductListing
                | EntryKind::ProductDelisting
                | EntryKind::Suspension
                | EntryKind::Destruction
                | EntryKind::OpenDataRequest
                | EntryKind::Evaluation
                | EntryKind::Rectification
        )
    }

    /// Wire names of every kind this build knows, in declaration order (for messages
    /// that list the accepted kinds).
    pub fn known_names() -> Vec<&'static str> {
        Self::KNOWN.iter().map(|(_, s)| *s).collect()
    }

    /// True for a kind this build knows (anything but [`EntryKind::Other`]).
    pub fn is_known(&self) -> bool {
        !matches!(self, EntryKind::Other(_))
    }

    /// Wire names of the public kinds.
    pub fn public_names() -> Vec<&'static str> {
        Self::KNOWN
            .iter()
            .filter(|(k, _)| k.is_public())
            .map(|(_, s)| *s)
            .collect()
    }
}

impl FromStr for EntryKind {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::KNOWN
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(k, _)| k.clone())
            .unwrap_or_else(|| EntryKind::Other(s.to_string())))
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EntryKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EntryKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(s.parse().unwrap_or(EntryKind::Other(s)))
    }
}

/// One ledger entry, as stored, exported and put in receipts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entry {
    /// Position in the ledger, from 0, contiguous.
    pub seq: u64,
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamp_ms: i64,
    /// What the entry records.
    pub kind: EntryKind,
    /// Who appended it.
    pub actor: Actor,
    /// The payload as RFC 8785 canonical JSON text: these exact bytes are hashed.
    pub payload: String,
    /// BLAKE3 of the payload, see the module docs.
    pub payload_hash: Hash32,
    /// `entry_hash` of the previous entry (zero for seq 0).
    pub prev_hash: Hash32,
    /// BLAKE3 of this entry's fields, see the module docs.
    pub entry_hash: Hash32,
}

/// The longest kind, org or key id accepted (bytes).
pub const MAX_FIELD_LEN: usize = 256;

fn check_field(value: &str, name: &'static str) -> Result<(), EntryError> {
    // Printable ASCII (the usual case) has no control characters; anything else is
    // decoded and checked character by character.
    let printable_ascii = value.bytes().all(|b| (0x20..0x7f).contains(&b));
    if value.is_empty()
        || value.len() > MAX_FIELD_LEN
        || (!printable_ascii && value.chars().any(char::is_control))
    {
        return Err(EntryError::BadField(name));
    }
    Ok(())
}

/// Canonical payload bytes of a JSON value.
pub fn canonical_payload(value: &serde_json::Value) -> Result<String, EntryError> {
    Ok(canonical::to_canonical_string(value)?)
}

/// BLAKE3 of the concatenation of `parts`.
///
/// Exactly `blake3::hash(&parts.concat())`: the rules above are defined on the
/// concatenated bytes, and BLAKE3 gives the same digest however they are fed in. Inputs
/// up to one 1 KiB chunk (every entry and almost every payload) are gathered on the
/// stack and hashed in one call, which costs far less than a `Hasher` fed piece by
/// piece; longer ones are streamed.
#[inline]
fn hash_concat<const N: usize>(parts: [&[u8]; N]) -> Hash32 {
    const STACK: usize = 1024;
    let total: usize = parts.iter().map(|p| p.len()).sum();
    if total > STACK {
        let mut h = blake3::Hasher::new();
        for part in parts {
            h.update(part);
        }
        return Hash32(*h.finalize().as_bytes());
    }
    let mut buf = [0u8; STACK];
    let mut len = 0usize;
    for part in parts {
        let end = len + part.len();
        // end <= total <= STACK, so this always succeeds.
        if let Some(dst) = buf.get_mut(len..end) {
            dst.copy_from_slice(part);
        }
        len = end;
    }
    Hash32(*blake3::hash(buf.get(..len).unwrap_or_default()).as_bytes())
}

/// `payload_hash` of canonical payload bytes.
pub fn payload_hash(canonical_payload: &[u8]) -> Hash32 {
    hash_concat([PAYLOAD_DOMAIN, &[0], canonical_payload])
}

/// `entry_hash` over the fields of an entry, see the module docs.
pub fn entry_hash(
    seq: u64,
    timestamp_ms: i64,
    kind: &str,
    actor: &Actor,
    payload_hash: &Hash32,
    prev_hash: &Hash32,
) -> Hash32 {
    entry_hash_of(
        seq,
        timestamp_ms,
        kind,
        &actor.org,
        &actor.key_id,
        payload_hash,
        prev_hash,
    )
}

/// The length prefix of a hashed string. Lengths are bounded by MAX_FIELD_LEN on the way
/// in; a longer string from an export is still hashed unambiguously because u32 covers
/// any line we would read.
fn len_prefix(s: &str) -> [u8; 4] {
    u32::try_from(s.len()).unwrap_or(u32::MAX).to_be_bytes()
}

/// `entry_hash` from the individual fields (the byte layout in the module docs).
fn entry_hash_of(
    seq: u64,
    timestamp_ms: i64,
    kind: &str,
    org: &str,
    key_id: &str,
    payload_hash: &Hash32,
    prev_hash: &Hash32,
) -> Hash32 {
    hash_concat([
        ENTRY_DOMAIN,
        &[0],
        &seq.to_be_bytes(),
        &timestamp_ms.to_be_bytes(),
        &len_prefix(kind),
        kind.as_bytes(),
        &len_prefix(org),
        org.as_bytes(),
        &len_prefix(key_id),
        key_id.as_bytes(),
        &payload_hash.0,
        &prev_hash.0,
    ])
}

/// An entry's fields borrowed from wherever they were read (a database page, an export
/// line, an [`Entry`]): what the verifier checks, without copying strings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryView<'a> {
    /// Position in the ledger.
    pub seq: u64,
    /// Milliseconds since the Unix epoch, UTC.
    pub timestamp_ms: i64,
    /// Kind wire name, as hashed.
    pub kind: &'a str,
    /// Actor organisation.
    pub actor_org: &'a str,
    /// Actor key id.
    pub actor_key: &'a str,
    /// The payload text as stored.
    pub payload: &'a str,
    /// Stored payload hash.
    pub payload_hash: Hash32,
    /// Stored previous entry hash.
    pub prev_hash: Hash32,
    /// Stored entry hash.
    pub entry_hash: Hash32,
}

impl EntryView<'_> {
    /// Recomputes both hashes from the fields and says which one is wrong, if any; see
    /// [`Entry::check_hashes`].
    pub fn check_hashes(&self) -> Result<(), EntryCheck> {
        // The payload must be in canonical form, or two encodings of one value could carry
        // different hashes. The one-pass scan proves the common case; anything it does
        // not prove is decided by parsing and re-canonicalising, as the rule is defined.
        if !canonical::quick_canonical(self.payload) {
            let value: serde_json::Value =
                serde_json::from_str(self.payload).map_err(|_| EntryCheck::PayloadNotJson)?;
            let canonical =
                canonical_payload(&value).map_err(|_| EntryCheck::PayloadNotCanonical)?;
            if canonical != self.payload {
                return Err(EntryCheck::PayloadNotCanonical);
            }
        }
        if payload_hash(self.payload.as_bytes()) != self.payload_hash {
            return Err(EntryCheck::PayloadHash);
        }
        let expect = entry_hash_of(
            self.seq,
            self.timestamp_ms,
            self.kind,
            self.actor_org,
            self.actor_key,
            &self.payload_hash,
            &self.prev_hash,
        );
        if expect != self.entry_hash {
            return Err(EntryCheck::EntryHash);
        }
        Ok(())
    }

    /// The Merkle leaf data of this entry: its entry hash.
    pub fn leaf_data(&self) -> &[u8; 32] {
        &self.entry_hash.0
    }

    /// An owned copy.
    pub fn to_entry(&self) -> Entry {
        Entry {
            seq: self.seq,
            timestamp_ms: self.timestamp_ms,
            kind: self
                .kind
                .parse()
                .unwrap_or_else(|_| EntryKind::Other(self.kind.to_string())),
            actor: Actor {
                org: self.actor_org.to_string(),
                key_id: self.actor_key.to_string(),
            },
            payload: self.payload.to_string(),
            payload_hash: self.payload_hash,
            prev_hash: self.prev_hash,
            entry_hash: self.entry_hash,
        }
    }
}

impl Entry {
    /// Builds the entry that follows `prev_hash` at `seq`, computing both hashes.
    pub fn build(
        seq: u64,
        timestamp_ms: i64,
        kind: EntryKind,
        actor: Actor,
        payload: &serde_json::Value,
        prev_hash: Hash32,
    ) -> Result<Entry, EntryError> {
        check_field(kind.as_str(), "kind")?;
        check_field(&actor.org, "actor org")?;
        check_field(&actor.key_id, "actor key id")?;
        let payload = canonical_payload(payload)?;
        let payload_hash = payload_hash(payload.as_bytes());
        let entry_hash = entry_hash(
            seq,
            timestamp_ms,
            kind.as_str(),
            &actor,
            &payload_hash,
            &prev_hash,
        );
        Ok(Entry {
            seq,
            timestamp_ms,
            kind,
            actor,
            payload,
            payload_hash,
            prev_hash,
            entry_hash,
        })
    }

    /// The payload parsed as JSON.
    pub fn payload_json(&self) -> Result<serde_json::Value, EntryError> {
        serde_json::from_str(&self.payload).map_err(|_| EntryError::NotJson)
    }

    /// Recomputes both hashes from the stored fields and says which one is wrong, if any.
    /// The payload must also be in canonical form, or two encodings of one value could
    /// carry different hashes.
    pub fn check_hashes(&self) -> Result<(), EntryCheck> {
        self.view().check_hashes()
    }

    /// The entry's fields, borrowed.
    pub fn view(&self) -> EntryView<'_> {
        EntryView {
            seq: self.seq,
            timestamp_ms: self.timestamp_ms,
            kind: self.kind.as_str(),
            actor_org: &self.actor.org,
            actor_key: &self.actor.key_id,
            payload: &self.payload,
            payload_hash: self.payload_hash,
            prev_hash: self.prev_hash,
            entry_hash: self.entry_hash,
        }
    }

    /// The Merkle leaf data of this entry: its entry hash.
    pub fn leaf_data(&self) -> &[u8; 32] {
        &self.entry_hash.0
    }
}

/// Why a single entry fails its own hash check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryCheck {
    /// The payload is not JSON.
    #[error("payload is not JSON")]
    PayloadNotJson,
    /// The payload is JSON but not in canonical form.
    #[error("payload is not in canonical form")]
    PayloadNotCanonical,
    /// The payload does not hash to `payload_hash`.
    #[error("payload hash mismatch")]
    PayloadHash,
    /// The fields do not hash to `entry_hash`.
    #[error("entry hash mismatch")]
    EntryHash,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seq: u64, prev: Hash32) -> Entry {
        Entry::build(
            seq,
            1_700_000_000_000,
            EntryKind::Release,
            Actor {
                org: "org-a".into(),
                key_id: "k1".into(),
            },
            &serde_json::json!({"b": 1, "a": "x"}),
            prev,
        )
        .unwrap()
    }

    #[test]
    fn payload_is_stored_canonically_and_hash_checks_pass() {
        let e = sample(0, Hash32::ZERO);
        assert_eq!(e.payload, r#"{"a":"x","b":1}"#);
        e.check_hashes().unwrap();
    }

    #[test]
    fn every_field_is_covered_by_the_entry_hash() {
        let e = sample(3, Hash32([7; 32]));
        let mut m = e.clone();
        m.seq = 4;
        assert_eq!(m.check_hashes(), Err(EntryCheck::EntryHash));
        let mut m = e.clone();
        m.timestamp_ms += 1;
        assert_eq!(m.check_hashes(), Err(EntryCheck::EntryHash));
        let mut m = e.clone();
        m.kind = EntryKind::Transaction;
        assert_eq!(m.check_hashes(), Err(EntryCheck::EntryHash));
        let mut m = e.clone();
        m.actor.key_id = "k2".into();
        assert_eq!(m.check_hashes(), Err(EntryCheck::EntryHash));
        let mut m = e.clone();
        m.prev_hash = Hash32::ZERO;
        assert_eq!(m.check_hashes(), Err(EntryCheck::EntryHash));
        let mut m = e.clone();
        m.payload = r#"{"a":"y","b":1}"#.into();
        assert_eq!(m.check_hashes(), Err(EntryCheck::PayloadHash));
        let mut m = e;
        m.payload = r#"{"b":1,"a":"x"}"#.into();
        assert_eq!(m.check_hashes(), Err(EntryCheck::PayloadNotCanonical));
    }

    #[test]
    fn length_prefixes_separate_adjacent_fields() {
        let p = payload_hash(b"{}");
        let a = entry_hash(
            0,
            0,
            "ab",
            &Actor {
                org: "c".into(),
                key_id: "d".into(),
            },
            &p,
            &Hash32::ZERO,
        );
        let b = entry_hash(
            0,
            0,
            "a",
            &Actor {
                org: "bc".into(),
                key_id: "d".into(),
            },
            &p,
            &Hash32::ZERO,
        );
        assert_ne!(a, b);
    }

    #[test]
    fn hex_hashes_parse_as_the_hex_crate_parses_them() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        const DIGITS: &[u8] = b"0123456789abcdefABCDEFgG/:@`-+ ";
        for _ in 0..20_000 {
            let len = if rng.gen_bool(0.8) {
                64
            } else {
                rng.gen_range(0..70)
            };
            let text: String = (0..len)
                .map(|_| {
                    let pool = if rng.gen_bool(0.97) {
                        &DIGITS[..22]
                    } else {
                        DIGITS
                    };
                    char::from(pool[rng.gen_range(0..pool.len())])
                })
                .collect();
            let mut want = [0u8; 32];
            let want = hex::decode_to_slice(&text, &mut want).map(|()| Hash32(want));
            assert_eq!(Hash32::from_hex(&text).ok(), want.ok(), "{text}");
        }
        assert!(Hash32::from_hex("é").is_err());
    }

    #[test]
    fn unknown_kinds_round_trip() {
        let k: EntryKind = "future_kind".parse().unwrap();
        assert_eq!(k, EntryKind::Other("future_kind".into()));
        assert_eq!(k.as_str(), "future_kind");
        let k: EntryKind = "release".parse().unwrap();
        assert_eq!(k, EntryKind::Release);
        for (kind, name) in EntryKind::KNOWN.iter() {
            assert_eq!(kind.as_str(), *name);
        }
        assert!(!EntryKind::Other("future_kind".into()).is_known());
        let names = EntryKind::known_names();
        assert_eq!(names.len(), EntryKind::KNOWN.len());
        for name in names {
            assert!(name.parse::<EntryKind>().unwrap().is_known(), "{name}");
        }
    }
}
