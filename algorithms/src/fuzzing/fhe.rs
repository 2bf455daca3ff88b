//! The FHE request bodies on arbitrary bytes: query ciphertexts ([`QueryKey::parse`]),
//! server-key uploads ([`check_server_key`]), template proposals ([`TemplateSpec`],
//! validated against a schema and built into a [`LookupTable`] over a small frame) and
//! consent openings ([`OpeningText`], checked with [`verify_opening`]).
//!
//! The first input byte chooses the body (its value modulo 6): a raw ciphertext at the
//! width the next byte chooses; a genuine ciphertext of the fixture's client key, read
//! at a width the input chooses, after byte edits; a raw server key; a raw template;
//! a raw opening; the fixture's genuine opening after byte edits. Properties:
//!
//! 1. nothing panics, and every refusal is the client's (a 4xx), never the engine's;
//! 2. a genuine ciphertext is accepted at its own width and refused at another;
//! 3. a template that validates survives its own JSON, and its table (when it can be
//!    built) holds strictly increasing keys and values within the output domain;
//! 4. an opening survives its own rendering; the genuine one verifies, and no other
//!    does (the commitment binds every field).

use ed25519_dalek::{Signer, SigningKey};
use polars::prelude::{Column, DataFrame};

use super::{FixtureError, Input, credit_code};
use crate::deid::schema::{ColumnRole, ColumnSpec, ColumnType, DatasetSchema, DeidRule};
use crate::fhe::client::ClientSecret;
use crate::fhe::consent::{
    COMMITMENT_LEN, CommittedQuery, ConsentAuthorisation, ConsentOpening, NONCE_LEN, OpeningText,
    PUBLIC_KEY_LEN, verify_opening,
};
use crate::fhe::server::check_server_key;
use crate::fhe::{
    KeySource, KeyWidth, LookupTable, QueryKey, TemplateSpec, lookup_hash, platform_config,
    server_key_hash,
};

/// Seed of the fixture's client key (a fixed key, so ciphertexts keep their shape).
const CLIENT_KEY_SEED: u128 = 0x5eed_f022;
/// Seed of the consent subject's signing key.
const SUBJECT_SEED: [u8; 32] = [0x5a; 32];
/// The dataset id the fixture's keys are hashed with.
const SALT: &str = "ds_fuzz";
/// The bank, template and time of the query the fixture's opening is checked against.
const BANK: &str = "org-bank";
const TEMPLATE: &str = "fhet_fuzz";
const QUERIED_MS: i64 = 1_700_000_000_000;
/// Size cap of a fuzzed server key (the platform's real keys are 60 MB, so none fits:
/// what is fuzzed is the refusal of everything else).
const SERVER_KEY_LIMIT: u64 = 1 << 20;

/// Genuine ciphertexts, the template schema and frame, and a genuine consent opening.
pub struct FheFixture {
    /// One genuine ciphertext per key width.
    ciphertexts: Vec<(KeyWidth, Vec<u8>)>,
    schema: DatasetSchema,
    frame: DataFrame,
    opening: ConsentOpening,
    /// The opening as JSON carries it.
    opening_json: Vec<u8>,
    subject_key: [u8; PUBLIC_KEY_LEN],
    commitment: [u8; COMMITMENT_LEN],
}

impl FheFixture {
    /// Generates the client key (from a fixed seed), encrypts one key hash per width,
    /// and signs and commits to a consent authorisation.
    pub fn new() -> Result<FheFixture, FixtureError> {
        let client = ClientSecret::from_key(tfhe::ClientKey::generate_with_seed(
            platform_config(),
            tfhe::Seed(CLIENT_KEY_SEED),
        ));
        let hash = lookup_hash(SALT, &credit_code(0));
        let mut ciphertexts = Vec::new();
        for width in [KeyWidth::U16, KeyWidth::U32, KeyWidth::U64] {
            ciphertexts.push((width, client.encrypt_key(width, width.truncate(hash))?));
        }
        let subject = SigningKey::from_bytes(&SUBJECT_SEED);
        let authorisation = ConsentAuthorisation {
            subject_org: "org-subject".to_owned(),
            bank_org: BANK.to_owned(),
            template_id: TEMPLATE.to_owned(),
            valid_from_ms: QUERIED_MS - 86_400_000,
            valid_until_ms: QUERIED_MS + 86_400_000,
            purpose: "credit check 信用审查 \"quoted\"".to_owned(),
        };
        let signature = subject.sign(&authorisation.signing_bytes()).to_bytes();
        let opening = ConsentOpening {
            authorisation,
            signature,
            nonce: [0x17; NONCE_LEN],
        };
        let opening_json = serde_json::to_vec(&opening.to_text())
            .map_err(|e| FixtureError::Build(e.to_string()))?;
        Ok(FheFixture {
            ciphertexts,
            schema: template_schema(),
            frame: template_frame()?,
            commitment: opening.commitment(),
            subject_key: subject.verifying_key().to_bytes(),
            opening,
            opening_json,
        })
    }

    /// Property 3 for one template body.
    fn check_template(&self, json: &[u8]) {
        let Ok(spec) = serde_json::from_slice::<TemplateSpec>(json) else {
            return;
        };
        if let Err(e) = spec.validate(&self.schema) {
            assert!(e.is_client_error(), "a template caused a server error: {e}");
            return;
        }
        let again = serde_json::to_vec(&spec)
            .ok()
            .and_then(|text| serde_json::from_slice::<TemplateSpec>(&text).ok());
        assert_eq!(
            again.as_ref(),
            Some(&spec),
            "a valid template does not survive its own JSON"
        );
        match LookupTable::build(&self.frame, &spec, &KeySource::Clear { salt: SALT }) {
            Ok(table) => {
                let max = spec.output.max_value();
                assert!(
                    table.entries().iter().all(|(_, value)| *value <= max),
                    "a table value exceeds the template's output domain"
                );
                assert!(
                    table.entries().windows(2).all(|w| w[0].0 < w[1].0),
                    "the table's keys are not strictly increasing"
                );
                assert_eq!(table.width(), spec.key_width);
            }
            Err(e) => assert!(
                e.is_client_error(),
                "building a valid template's table caused a server error: {e}"
            ),
        }
    }

    /// Property 4 for one opening body; `genuine` when it is the fixture's own.
    fn check_opening(&self, json: &[u8], genuine: bool) {
        let parsed = serde_json::from_slice::<OpeningText>(json)
            .ok()
            .and_then(|text| text.parse().ok());
        let Some(opening) = parsed else {
            assert!(!genuine, "the genuine opening does not parse");
            return;
        };
        assert_eq!(
            opening.to_text().parse().as_ref(),
            Ok(&opening),
            "an opening does not survive its own rendering"
        );
        let query = CommittedQuery {
            commitment: &self.commitment,
            bank_org: BANK,
            template_id: TEMPLATE,
            queried_ms: QUERIED_MS,
        };
        match verify_opening(&opening, &query, Some(&self.subject_key)) {
            Ok(()) => assert_eq!(
                opening, self.opening,
                "an opening other than the genuine one verified"
            ),
            Err(check) => assert!(
                !genuine,
                "the genuine opening failed the {} check",
                check.as_str()
            ),
        }
    }
}

/// What a ciphertext check must conclude.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    Accept,
    Refuse,
    Either,
}

/// One FHE request body (see the module docs).
pub fn fhe_request(fixture: &FheFixture, data: &[u8]) {
    let mut input = Input::new(data);
    match input.byte() % 6 {
        0 => {
            let width = key_width(input.byte());
            check_ciphertext(input.rest(), width, Expect::Either);
        }
        1 => {
            let Some((width, genuine)) = input.pick(&fixture.ciphertexts) else {
                return;
            };
            let asked = key_width(input.byte());
            let mut bytes = genuine.clone();
            input.edit(&mut bytes);
            let expect = match (bytes == *genuine, asked == *width) {
                (true, true) => Expect::Accept,
                (true, false) => Expect::Refuse,
                (false, _) => Expect::Either,
            };
            check_ciphertext(&bytes, asked, expect);
        }
        2 => {
            let bytes = input.rest();
            match check_server_key(bytes, SERVER_KEY_LIMIT) {
                Ok(checked) => {
                    assert_eq!(checked.hash, server_key_hash(bytes));
                    assert_eq!(checked.bytes, bytes.len() as u64);
                }
                Err(e) => assert!(
                    e.is_client_error(),
                    "a server-key upload caused a server error: {e}"
                ),
            }
        }
        3 => fixture.check_template(input.rest()),
        4 => fixture.check_opening(input.rest(), false),
        _ => {
            let mut text = fixture.opening_json.clone();
            input.edit(&mut text);
            fixture.check_opening(&text, text == fixture.opening_json);
        }
    }
}

fn key_width(choice: u8) -> KeyWidth {
    match choice % 3 {
        0 => KeyWidth::U16,
        1 => KeyWidth::U32,
        _ => KeyWidth::U64,
    }
}

/// Properties 1 and 2 for one ciphertext read at `width`.
fn check_ciphertext(bytes: &[u8], width: KeyWidth, expect: Expect) {
    match QueryKey::parse(bytes, width) {
        Ok(key) => {
            assert_eq!(key.width(), width, "a ciphertext was read at another width");
            assert!(
                expect != Expect::Refuse,
                "a ciphertext was accepted at a width it was not encrypted at"
            );
        }
        Err(e) => {
            assert!(
                e.is_client_error(),
                "a ciphertext caused a server error: {e}"
            );
            assert!(
                expect != Expect::Accept,
                "a genuine {}-bit ciphertext was refused: {e}",
                width.bits()
            );
        }
    }
}

fn declare(name: &str, column_type: ColumnType, role: ColumnRole, rule: DeidRule) -> ColumnSpec {
    ColumnSpec {
        name: name.to_owned(),
        column_type,
        role,
        rule,
        domain: None,
        nullable: true,
    }
}

/// A key column, numeric, text and boolean value columns, a quasi-identifier (refused
/// as a value) and a dropped column (not released).
fn template_schema() -> DatasetSchema {
    let kept = |name: &str, column_type: ColumnType| {
        declare(name, column_type, ColumnRole::Other, DeidRule::Keep)
    };
    DatasetSchema {
        columns: vec![
            kept("code", ColumnType::String),
            kept("kwh", ColumnType::Integer),
            kept("grade", ColumnType::String),
            kept("listed", ColumnType::Boolean),
            declare(
                "district",
                ColumnType::String,
                ColumnRole::QuasiIdentifier,
                DeidRule::Keep,
            ),
            declare(
                "secret",
                ColumnType::String,
                ColumnRole::Other,
                DeidRule::Drop,
            ),
        ],
        hierarchies: Default::default(),
        privacy: Default::default(),
    }
}

/// 13 rows: 12 enterprises, one of them twice (a second month), one value missing.
fn template_frame() -> Result<DataFrame, FixtureError> {
    let rows = 13;
    let codes: Vec<String> = (0..rows).map(|i| credit_code((i % 12) as i64)).collect();
    let kwh: Vec<Option<i64>> = (0..rows)
        .map(|i| (i != 5).then_some(1000 * (i as i64 + 1)))
        .collect();
    let grades: Vec<&str> = (0..rows)
        .map(|i| ["A", "B", "C", "D"].get(i % 4).copied().unwrap_or("A"))
        .collect();
    let listed: Vec<bool> = (0..rows).map(|i| i % 3 == 0).collect();
    let districts: Vec<&str> = (0..rows)
        .map(|i| if i % 2 == 0 { "Futian" } else { "Nanshan" })
        .collect();
    let secrets: Vec<String> = (0..rows).map(|i| format!("s{i}")).collect();
    Ok(DataFrame::new(vec![
        Column::new("code".into(), codes),
        Column::new("kwh".into(), kwh),
        Column::new("grade".into(), grades),
        Column::new("listed".into(), listed),
        Column::new("district".into(), districts),
        Column::new("secret".into(), secrets),
    ])?)
}
