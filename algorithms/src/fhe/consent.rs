//! # Auditable consent for private lookups (GD21 Art.41)
//!
//! GD21 Art.41 lets a data subject authorise a third party's use of data about it. A
//! private lookup hides *which* enterprise a bank asks about, so the platform cannot
//! check that enterprise's authorisation when the query arrives without learning who it
//! is. This module makes the authorisation **auditable after the fact** instead:
//!
//! 1. The enterprise (a `subject` organisation) registers an Ed25519 public key with
//!    pdx, and signs a [`ConsentAuthorisation`] naming itself, one bank, one template,
//!    a period and a purpose. It hands the authorisation and the signature to the bank;
//!    pdx never sees them at query time.
//! 2. Each query carries only a **commitment** to the signed authorisation, drawn with
//!    a fresh 32-byte random nonce ([`commitment`]). It is hiding (BLAKE3 over a
//!    256-bit secret nonce: the platform cannot test candidate enterprises against it)
//!    and binding (a second opening would be a BLAKE3 collision). The commitment is
//!    stored with the query and written on its `fhe_query` ledger entry.
//! 3. A supervisor may later ask the bank to open any commitment. The bank sends the
//!    authorisation, the signature and the nonce ([`ConsentOpening`]); pdx checks them
//!    with [`verify_opening`] against the query as recorded, in the order of
//!    [`ConsentCheck`], and records the outcome, which names the first check that
//!    failed.
//!
//! ## The bytes that are signed (rule v1)
//!
//! ```text
//! authorisation bytes = "pdx consent v1" || 0x00 || canonical JSON
//! canonical JSON      = {"bank_org":S,"purpose":S,"subject_org":S,"template_id":S,
//!                        "valid_from_ms":I,"valid_until_ms":I}
//! ```
//!
//! written on one line: exactly these six members, in this (lexicographic) order, no
//! whitespace; every `S` a JSON string in UTF-8 that escapes only `"`, `\` and the
//! control characters U+0000–U+001F (as `\b`, `\t`, `\n`, `\f`, `\r`, otherwise
//! `\u00xx` with lowercase hex); every `I` a decimal integer without sign, leading
//! zeros or exponent, at most 2^53 − 1. That is the RFC 8785 (JCS) form of the object,
//! so any JCS library produces the same bytes. Times are milliseconds since the Unix
//! epoch, UTC; the period is inclusive at both ends. The signature is pure Ed25519
//! (RFC 8032, not prehashed) over the authorisation bytes, checked with
//! `verify_strict`, which refuses non-canonical signatures and small-order keys.
//!
//! ## The commitment (rule v1)
//!
//! ```text
//! commitment = BLAKE3("pdx consent commitment v1" || 0x00 || authorisation bytes
//!                     || signature (64 bytes) || nonce (32 bytes))
//! ```
//!
//! The signature and the nonce have fixed lengths and come last, so the input parses
//! one way only. The nonce must be fresh and uniformly random for every query: reusing
//! one links the queries that share it (pdx refuses a commitment it has already seen).
//!
//! ## Limits
//!
//! - Opening is voluntary: a bank can refuse or fail to open. pdx cannot prevent a
//!   lookup without consent; it makes every lookup on conditional data carry a binding
//!   commitment, so that a bank that cannot open one when asked is on the record.
//! - Opening shows the supervisor (and pdx) which enterprise was looked up. That is the
//!   point of the audit, and it happens only for the queries a supervisor picks.
//! - Rotating a subject's key does not invalidate authorisations already used: each
//!   query is checked under the key the subject had registered when the query was made.
//!   A rotation does stop authorisations signed with the old key from covering later
//!   queries, so it also serves to revoke every outstanding authorisation at once.

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

/// Domain of the authorisation bytes (the signed message).
pub const AUTHORISATION_DOMAIN: &[u8] = b"pdx consent v1";
/// Domain of the commitment hash.
pub const COMMITMENT_DOMAIN: &[u8] = b"pdx consent commitment v1";
/// Bytes of an Ed25519 public key.
pub const PUBLIC_KEY_LEN: usize = 32;
/// Bytes of an Ed25519 signature.
pub const SIGNATURE_LEN: usize = 64;
/// Bytes of the commitment nonce.
pub const NONCE_LEN: usize = 32;
/// Bytes of a commitment.
pub const COMMITMENT_LEN: usize = 32;
/// Longest organisation or template id in an authorisation, in characters.
pub const MAX_ID_CHARS: usize = 200;
/// Longest purpose in an authorisation, in characters.
pub const MAX_PURPOSE_CHARS: usize = 1000;
/// Largest time in an authorisation (2^53 − 1 ms: exact in every JSON reader).
pub const MAX_TIME_MS: i64 = (1 << 53) - 1;

/// What a subject signs: this bank may look this subject up through this template
/// during this period, for this purpose.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConsentAuthorisation {
    /// The subject organisation (the enterprise looked up), as pdx names it.
    pub subject_org: String,
    /// The bank organisation allowed to look it up.
    pub bank_org: String,
    /// The FHE template the bank may use.
    pub template_id: String,
    /// First moment covered, ms since the Unix epoch (inclusive).
    pub valid_from_ms: i64,
    /// Last moment covered, ms since the Unix epoch (inclusive).
    pub valid_until_ms: i64,
    /// What the lookup is for, in the subject's words.
    pub purpose: String,
}

/// A JSON string literal as RFC 8785 writes it (serde_json escapes exactly the
/// characters JCS escapes, with lowercase hex).
fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

impl ConsentAuthorisation {
    /// The canonical JSON of the module docs (rule v1).
    pub fn canonical_json(&self) -> String {
        format!(
            "{{\"bank_org\":{},\"purpose\":{},\"subject_org\":{},\"template_id\":{},\"valid_from_ms\":{},\"valid_until_ms\":{}}}",
            json_string(&self.bank_org),
            json_string(&self.purpose),
            json_string(&self.subject_org),
            json_string(&self.template_id),
            self.valid_from_ms,
            self.valid_until_ms
        )
    }

    /// The signed message: `"pdx consent v1" || 0x00 || canonical JSON`.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let json = self.canonical_json();
        let mut out = Vec::with_capacity(AUTHORISATION_DOMAIN.len() + 1 + json.len());
        out.extend_from_slice(AUTHORISATION_DOMAIN);
        out.push(0);
        out.extend_from_slice(json.as_bytes());
        out
    }

    /// Checks the shape: non-empty ids and purpose within their lengths, times in
    /// `0..=MAX_TIME_MS` and a period that does not end before it starts.
    pub fn check_well_formed(&self) -> Result<(), ConsentError> {
        for (field, value) in [
            ("subject_org", &self.subject_org),
            ("bank_org", &self.bank_org),
            ("template_id", &self.template_id),
        ] {
            if value.trim().is_empty() || value.chars().count() > MAX_ID_CHARS {
                return Err(ConsentError::BadField {
                    field,
                    rule: "1 to 200 characters",
                });
            }
        }
        if self.purpose.trim().is_empty() || self.purpose.chars().count() > MAX_PURPOSE_CHARS {
            return Err(ConsentError::BadField {
                field: "purpose",
                rule: "1 to 1000 characters",
            });
        }
        for (field, value) in [
            ("valid_from_ms", self.valid_from_ms),
            ("valid_until_ms", self.valid_until_ms),
        ] {
            if !(0..=MAX_TIME_MS).contains(&value) {
                return Err(ConsentError::BadField {
                    field,
                    rule: "ms since the epoch, 0 to 2^53 - 1",
                });
            }
        }
        if self.valid_until_ms < self.valid_from_ms {
            return Err(ConsentError::BadField {
                field: "valid_until_ms",
                rule: "not before valid_from_ms",
            });
        }
        Ok(())
    }
}

/// `BLAKE3("pdx consent commitment v1" || 0x00 || authorisation bytes || signature ||
/// nonce)`: what a query carries.
pub fn commitment(
    authorisation: &ConsentAuthorisation,
    signature: &[u8; SIGNATURE_LEN],
    nonce: &[u8; NONCE_LEN],
) -> [u8; COMMITMENT_LEN] {
    let mut hasher = blake3::Hasher::new();
    hasher.update(COMMITMENT_DOMAIN);
    hasher.update(&[0]);
    hasher.update(&authorisation.signing_bytes());
    hasher.update(signature);
    hasher.update(nonce);
    *hasher.finalize().as_bytes()
}

/// What a bank sends to open a commitment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsentOpening {
    /// The authorisation as signed.
    pub authorisation: ConsentAuthorisation,
    /// The subject's Ed25519 signature over its [`ConsentAuthorisation::signing_bytes`].
    pub signature: [u8; SIGNATURE_LEN],
    /// The nonce drawn for this query.
    pub nonce: [u8; NONCE_LEN],
}

impl ConsentOpening {
    /// The commitment this opening opens.
    pub fn commitment(&self) -> [u8; COMMITMENT_LEN] {
        commitment(&self.authorisation, &self.signature, &self.nonce)
    }

    /// The opening with hex signature and nonce, as JSON carries it.
    pub fn to_text(&self) -> OpeningText {
        OpeningText {
            authorisation: self.authorisation.clone(),
            signature: hex::encode(self.signature),
            nonce: hex::encode(self.nonce),
        }
    }
}

/// A signed authorisation as a subject hands it to a bank (the signature in hex).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedConsent {
    /// The authorisation.
    pub authorisation: ConsentAuthorisation,
    /// Ed25519 signature over the authorisation bytes, 128 hex digits.
    pub signature: String,
}

/// An opening as JSON carries it: signature and nonce in hex.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpeningText {
    /// The authorisation.
    pub authorisation: ConsentAuthorisation,
    /// Ed25519 signature over the authorisation bytes, 128 hex digits.
    pub signature: String,
    /// The query's nonce, 64 hex digits.
    pub nonce: String,
}

impl OpeningText {
    /// Decodes the hex fields. Times outside ±(2^53 − 1) are refused here rather than
    /// judged: no JSON reader is sure to read them exactly, so such an opening cannot be
    /// recorded faithfully (in range but negative, or in the wrong order, is judged and
    /// fails [`ConsentCheck::WellFormed`]).
    pub fn parse(&self) -> Result<ConsentOpening, ConsentError> {
        for (field, value) in [
            (
                "authorisation.valid_from_ms",
                self.authorisation.valid_from_ms,
            ),
            (
                "authorisation.valid_until_ms",
                self.authorisation.valid_until_ms,
            ),
        ] {
            if value.unsigned_abs() > MAX_TIME_MS.unsigned_abs() {
                return Err(ConsentError::BadField {
                    field,
                    rule: "an integer within ±(2^53 - 1)",
                });
            }
        }
        Ok(ConsentOpening {
            authorisation: self.authorisation.clone(),
            signature: decode_hex("signature", &self.signature)?,
            nonce: decode_hex("nonce", &self.nonce)?,
        })
    }
}

/// A query as pdx recorded it when it was admitted.
#[derive(Clone, Copy, Debug)]
pub struct CommittedQuery<'a> {
    /// The commitment the query carried.
    pub commitment: &'a [u8; COMMITMENT_LEN],
    /// The organisation that asked.
    pub bank_org: &'a str,
    /// The template it used.
    pub template_id: &'a str,
    /// When it was admitted, ms since the epoch.
    pub queried_ms: i64,
}

/// The checks of an opening, in the order they run; an invalid opening names the
/// first one that failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentCheck {
    /// The authorisation, signature and nonce hash to the query's commitment.
    Commitment,
    /// The authorisation is well formed ([`ConsentAuthorisation::check_well_formed`]).
    WellFormed,
    /// The named subject had a usable consent key registered when the query was made.
    SubjectKey,
    /// The signature verifies under that key.
    Signature,
    /// The authorisation names the organisation that made the query.
    Bank,
    /// The authorisation names the query's template.
    Template,
    /// The query was made within the authorisation's period.
    Period,
}

impl ConsentCheck {
    /// Every check, in the order they run.
    pub const ALL: [ConsentCheck; 7] = [
        ConsentCheck::Commitment,
        ConsentCheck::WellFormed,
        ConsentCheck::SubjectKey,
        ConsentCheck::Signature,
        ConsentCheck::Bank,
        ConsentCheck::Template,
        ConsentCheck::Period,
    ];

    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentCheck::Commitment => "commitment",
            ConsentCheck::WellFormed => "well_formed",
            ConsentCheck::SubjectKey => "subject_key",
            ConsentCheck::Signature => "signature",
            ConsentCheck::Bank => "bank",
            ConsentCheck::Template => "template",
            ConsentCheck::Period => "period",
        }
    }

    /// The check of a wire name.
    pub fn parse(s: &str) -> Option<ConsentCheck> {
        ConsentCheck::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// What failing this check means, for people.
    pub fn describe(self) -> &'static str {
        match self {
            ConsentCheck::Commitment => {
                "the authorisation, signature and nonce do not hash to the query's commitment"
            }
            ConsentCheck::WellFormed => "the authorisation is not well formed",
            ConsentCheck::SubjectKey => {
                "the named subject had no usable consent key registered when the query was made"
            }
            ConsentCheck::Signature => {
                "the signature does not verify under the subject's consent key"
            }
            ConsentCheck::Bank => "the authorisation names another bank than the one that asked",
            ConsentCheck::Template => "the authorisation names another template",
            ConsentCheck::Period => "the query was made outside the authorisation's period",
        }
    }
}

/// Checks an opening against a query, in the order of [`ConsentCheck`].
/// `subject_key` is the key the authorisation's subject had registered when the query
/// was made (`None` if it had none).
pub fn verify_opening(
    opening: &ConsentOpening,
    query: &CommittedQuery<'_>,
    subject_key: Option<&[u8; PUBLIC_KEY_LEN]>,
) -> Result<(), ConsentCheck> {
    if opening.commitment() != *query.commitment {
        return Err(ConsentCheck::Commitment);
    }
    let a = &opening.authorisation;
    if a.check_well_formed().is_err() {
        return Err(ConsentCheck::WellFormed);
    }
    let key = subject_key
        .and_then(|k| parse_public_key_bytes(k).ok())
        .ok_or(ConsentCheck::SubjectKey)?;
    let signature = Signature::from_bytes(&opening.signature);
    if key.verify_strict(&a.signing_bytes(), &signature).is_err() {
        return Err(ConsentCheck::Signature);
    }
    if a.bank_org != query.bank_org {
        return Err(ConsentCheck::Bank);
    }
    if a.template_id != query.template_id {
        return Err(ConsentCheck::Template);
    }
    if !(a.valid_from_ms..=a.valid_until_ms).contains(&query.queried_ms) {
        return Err(ConsentCheck::Period);
    }
    Ok(())
}

fn parse_public_key_bytes(bytes: &[u8; PUBLIC_KEY_LEN]) -> Result<VerifyingKey, ConsentError> {
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| ConsentError::BadKey)?;
    if key.is_weak() {
        return Err(ConsentError::WeakKey);
    }
    Ok(key)
}

/// Parses a consent public key (64 hex digits) and refuses a point that is not on the
/// curve or has small order (under which forged signatures would verify).
pub fn parse_public_key(text: &str) -> Result<[u8; PUBLIC_KEY_LEN], ConsentError> {
    let bytes: [u8; PUBLIC_KEY_LEN] = decode_hex("public_key", text)?;
    parse_public_key_bytes(&bytes)?;
    Ok(bytes)
}

/// Decodes exactly `N` bytes of hex (either case, surrounding whitespace ignored).
pub fn decode_hex<const N: usize>(
    field: &'static str,
    text: &str,
) -> Result<[u8; N], ConsentError> {
    let text = text.trim();
    if text.len() != 2 * N {
        return Err(ConsentError::BadHex {
            field,
            digits: 2 * N,
        });
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| ConsentError::BadHex {
        field,
        digits: 2 * N,
    })?;
    Ok(out)
}

/// Why consent material was refused. Messages name fields and rules, never values.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConsentError {
    /// A hex field of the wrong length or with a non-hex digit.
    #[error("`{field}` must be {digits} hex digits")]
    BadHex {
        /// The field.
        field: &'static str,
        /// Hex digits expected.
        digits: usize,
    },
    /// An authorisation field breaks its rule.
    #[error("`{field}` must be {rule}")]
    BadField {
        /// The field.
        field: &'static str,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// Not an Ed25519 public key.
    #[error("`public_key` is not an Ed25519 public key")]
    BadKey,
    /// A small-order Ed25519 key, under which signatures can be forged.
    #[error("`public_key` is a weak (small-order) Ed25519 key")]
    WeakKey,
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer, SigningKey};

    use super::*;

    const QUERIED: i64 = 1_790_000_000_000;

    fn subject_key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32])
    }

    fn authorisation() -> ConsentAuthorisation {
        ConsentAuthorisation {
            subject_org: "org-widgets".into(),
            bank_org: "org-bank".into(),
            template_id: "ft_1".into(),
            valid_from_ms: QUERIED - 1000,
            valid_until_ms: QUERIED + 1000,
            purpose: "working-capital loan".into(),
        }
    }

    fn sign(key: &SigningKey, a: &ConsentAuthorisation) -> [u8; SIGNATURE_LEN] {
        key.sign(&a.signing_bytes()).to_bytes()
    }

    fn opening(a: ConsentAuthorisation, key: &SigningKey) -> ConsentOpening {
        let signature = sign(key, &a);
        ConsentOpening {
            authorisation: a,
            signature,
            nonce: [9u8; NONCE_LEN],
        }
    }

    fn public(key: &SigningKey) -> [u8; PUBLIC_KEY_LEN] {
        key.verifying_key().to_bytes()
    }

    fn check(
        o: &ConsentOpening,
        commitment: &[u8; 32],
        key: Option<&[u8; 32]>,
    ) -> Result<(), ConsentCheck> {
        let q = CommittedQuery {
            commitment,
            bank_org: "org-bank",
            template_id: "ft_1",
            queried_ms: QUERIED,
        };
        verify_opening(o, &q, key)
    }

    #[test]
    fn the_signed_bytes_are_the_documented_canonical_json() {
        let mut a = authorisation();
        a.purpose = "loan \"A\"\n\u{1}税".into();
        let expected = format!(
            "pdx consent v1\0{{\"bank_org\":\"org-bank\",\"purpose\":\"loan \\\"A\\\"\\n\\u0001税\",\"subject_org\":\"org-widgets\",\"template_id\":\"ft_1\",\"valid_from_ms\":{},\"valid_until_ms\":{}}}",
            QUERIED - 1000,
            QUERIED + 1000
        );
        assert_eq!(String::from_utf8(a.signing_bytes()).unwrap(), expected);
        // The canonical JSON is the object serde reads back.
        let back: ConsentAuthorisation = serde_json::from_str(&a.canonical_json()).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn the_commitment_hashes_the_documented_layout() {
        let o = opening(authorisation(), &subject_key());
        let mut input = b"pdx consent commitment v1\0".to_vec();
        input.extend_from_slice(&o.authorisation.signing_bytes());
        input.extend_from_slice(&o.signature);
        input.extend_from_slice(&o.nonce);
        assert_eq!(o.commitment(), *blake3::hash(&input).as_bytes());
        // A fresh nonce gives an unrelated commitment to the same authorisation.
        let mut other = o.clone();
        other.nonce[0] ^= 1;
        assert_ne!(other.commitment(), o.commitment());
    }

    #[test]
    fn a_valid_opening_verifies_at_both_ends_of_its_period() {
        let key = subject_key();
        for (from, until) in [(QUERIED, QUERIED + 5), (QUERIED - 5, QUERIED)] {
            let mut a = authorisation();
            a.valid_from_ms = from;
            a.valid_until_ms = until;
            let o = opening(a, &key);
            assert_eq!(check(&o, &o.commitment(), Some(&public(&key))), Ok(()));
        }
    }

    /// Every field of the authorisation, changed.
    fn tampered() -> Vec<(&'static str, ConsentAuthorisation)> {
        let a = authorisation();
        vec![
            (
                "subject_org",
                ConsentAuthorisation {
                    subject_org: "org-other".into(),
                    ..a.clone()
                },
            ),
            (
                "bank_org",
                ConsentAuthorisation {
                    bank_org: "org-rival".into(),
                    ..a.clone()
                },
            ),
            (
                "template_id",
                ConsentAuthorisation {
                    template_id: "ft_2".into(),
                    ..a.clone()
                },
            ),
            (
                "valid_from_ms",
                ConsentAuthorisation {
                    valid_from_ms: a.valid_from_ms - 1,
                    ..a.clone()
                },
            ),
            (
                "valid_until_ms",
                ConsentAuthorisation {
                    valid_until_ms: a.valid_until_ms + 1,
                    ..a.clone()
                },
            ),
            (
                "purpose",
                ConsentAuthorisation {
                    purpose: "working-capital loan, and marketing".into(),
                    ..a.clone()
                },
            ),
        ]
    }

    #[test]
    fn tampering_with_any_field_after_committing_breaks_the_commitment() {
        let key = subject_key();
        let good = opening(authorisation(), &key);
        let committed = good.commitment();
        for (field, a) in tampered() {
            let bad = ConsentOpening {
                authorisation: a,
                ..good.clone()
            };
            assert_eq!(
                check(&bad, &committed, Some(&public(&key))),
                Err(ConsentCheck::Commitment),
                "{field}"
            );
        }
        let mut bad = good.clone();
        bad.signature[10] ^= 1;
        assert_eq!(
            check(&bad, &committed, Some(&public(&key))),
            Err(ConsentCheck::Commitment)
        );
        let mut bad = good.clone();
        bad.nonce[31] ^= 1;
        assert_eq!(
            check(&bad, &committed, Some(&public(&key))),
            Err(ConsentCheck::Commitment)
        );
    }

    #[test]
    fn tampering_with_any_field_before_committing_breaks_the_signature() {
        // The bank commits to an altered authorisation under the original signature.
        let key = subject_key();
        let good = opening(authorisation(), &key);
        for (field, a) in tampered() {
            let bad = ConsentOpening {
                authorisation: a,
                ..good.clone()
            };
            assert_eq!(
                check(&bad, &bad.commitment(), Some(&public(&key))),
                Err(ConsentCheck::Signature),
                "{field}"
            );
        }
        let mut bad = good.clone();
        bad.signature[40] ^= 0x20;
        assert_eq!(
            check(&bad, &bad.commitment(), Some(&public(&key))),
            Err(ConsentCheck::Signature)
        );
    }

    #[test]
    fn a_signature_by_another_key_is_refused() {
        let subject = subject_key();
        let forger = SigningKey::from_bytes(&[8u8; 32]);
        let forged = opening(authorisation(), &forger);
        assert_eq!(
            check(&forged, &forged.commitment(), Some(&public(&subject))),
            Err(ConsentCheck::Signature)
        );
        // ...and it does verify under the forger's own key: the key lookup matters.
        assert_eq!(
            check(&forged, &forged.commitment(), Some(&public(&forger))),
            Ok(())
        );
    }

    #[test]
    fn a_subject_without_a_usable_key_fails_the_key_check() {
        let key = subject_key();
        let o = opening(authorisation(), &key);
        assert_eq!(
            check(&o, &o.commitment(), None),
            Err(ConsentCheck::SubjectKey)
        );
        // The identity point: with a lax verifier, R = identity and s = 0 "verify".
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            check(&o, &o.commitment(), Some(&identity)),
            Err(ConsentCheck::SubjectKey)
        );
        assert_eq!(
            parse_public_key(&hex::encode(identity)),
            Err(ConsentError::WeakKey)
        );
    }

    #[test]
    fn an_authorisation_for_another_bank_template_or_period_is_refused() {
        let key = subject_key();
        let cases = [
            (
                ConsentAuthorisation {
                    bank_org: "org-rival".into(),
                    ..authorisation()
                },
                ConsentCheck::Bank,
            ),
            (
                ConsentAuthorisation {
                    template_id: "ft_2".into(),
                    ..authorisation()
                },
                ConsentCheck::Template,
            ),
            (
                ConsentAuthorisation {
                    valid_from_ms: QUERIED - 10,
                    valid_until_ms: QUERIED - 1,
                    ..authorisation()
                },
                ConsentCheck::Period,
            ),
            (
                ConsentAuthorisation {
                    valid_from_ms: QUERIED + 1,
                    valid_until_ms: QUERIED + 10,
                    ..authorisation()
                },
                ConsentCheck::Period,
            ),
        ];
        for (a, want) in cases {
            // Properly signed and committed: only the fit to the query fails.
            let o = opening(a, &key);
            assert_eq!(check(&o, &o.commitment(), Some(&public(&key))), Err(want));
        }
    }

    #[test]
    fn malformed_authorisations_fail_before_the_signature_is_checked() {
        let key = subject_key();
        let cases = [
            ConsentAuthorisation {
                purpose: "  ".into(),
                ..authorisation()
            },
            ConsentAuthorisation {
                subject_org: String::new(),
                ..authorisation()
            },
            ConsentAuthorisation {
                valid_from_ms: QUERIED + 1,
                valid_until_ms: QUERIED,
                ..authorisation()
            },
            ConsentAuthorisation {
                valid_until_ms: MAX_TIME_MS + 1,
                ..authorisation()
            },
        ];
        for a in cases {
            assert!(a.check_well_formed().is_err(), "{a:?}");
            let o = opening(a, &key);
            assert_eq!(
                check(&o, &o.commitment(), Some(&public(&key))),
                Err(ConsentCheck::WellFormed)
            );
        }
    }

    #[test]
    fn hex_fields_and_keys_are_parsed_strictly() {
        let key = subject_key();
        let text = hex::encode(public(&key));
        assert_eq!(parse_public_key(&text), Ok(public(&key)));
        assert_eq!(parse_public_key(&text.to_uppercase()), Ok(public(&key)));
        assert!(matches!(
            parse_public_key(&text[..62]),
            Err(ConsentError::BadHex { .. })
        ));
        assert!(matches!(
            parse_public_key(&format!("{}zz", &text[..62])),
            Err(ConsentError::BadHex { .. })
        ));
        let o = opening(authorisation(), &key);
        let round = o.to_text().parse().unwrap();
        assert_eq!(round, o);
        let mut text = o.to_text();
        text.nonce.pop();
        assert_eq!(
            text.parse(),
            Err(ConsentError::BadHex {
                field: "nonce",
                digits: 64
            })
        );
        let mut huge = o.to_text();
        huge.authorisation.valid_until_ms = i64::MAX;
        assert_eq!(
            huge.parse(),
            Err(ConsentError::BadField {
                field: "authorisation.valid_until_ms",
                rule: "an integer within ±(2^53 - 1)"
            })
        );
        // Messages never carry the value.
        let e = decode_hex::<4>("nonce", "secretvalue")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }

    #[test]
    fn check_names_round_trip() {
        for c in ConsentCheck::ALL {
            assert_eq!(ConsentCheck::parse(c.as_str()), Some(c));
            assert_eq!(
                serde_json::to_value(c).unwrap(),
                serde_json::Value::String(c.as_str().into())
            );
        }
    }
}
