//! Private lookups: decrypted answers equal the clear answers for present and absent
//! keys (under every strategy, in chunks and in public buckets), template rules compute
//! what they document, and the server refuses what it must: client keys, keys under
//! other parameters, oversized or malformed keys and ciphertexts.
//!
//! Tables are small (12 rows) and keys 16 bits wide, so that each lookup takes about a
//! second on two cores; one key pair serves every test.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use pdx_algorithms::deid::pseudonym::Pseudonymiser;
use pdx_algorithms::deid::schema::{
    ColumnRole, ColumnSpec, ColumnType, DatasetSchema, DeidRule, PrivacyModel,
};
use pdx_algorithms::fhe::server::{check_server_key, chunk_rows};
use pdx_algorithms::fhe::template::{key_index, read_key_index};
use pdx_algorithms::fhe::{
    Aggregate, Answer, ClientSecret, Comparison, EvaluationKey, Evaluator, FheError, KeyPair,
    KeySource, KeyWidth, LookupTable, OutputDomain, QueryKey, Strategy, TemplateSpec, ValueRule,
    client, lookup_hash, testing,
};
use polars::prelude::*;

const SALT: &str = "ds_fhe_test";
const LIMIT: u64 = pdx_algorithms::fhe::DEFAULT_SERVER_KEY_LIMIT;

struct Keys {
    pair: KeyPair,
    secret: ClientSecret,
    server: EvaluationKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pair = client::generate_keys().unwrap();
        let secret = ClientSecret::from_bytes(&pair.client).unwrap();
        let server = EvaluationKey::from_bytes(&pair.server, LIMIT).unwrap();
        Keys {
            pair,
            secret,
            server,
        }
    })
}

fn code(i: usize) -> String {
    format!("91440300MA5F{i:05}X")
}

/// 12 enterprises: kWh, a credit grade, one missing value.
fn frame() -> DataFrame {
    let codes: Vec<String> = (0..12).map(code).collect();
    let kwh: Vec<Option<i64>> = (0..12)
        .map(|i| {
            if i == 5 {
                None
            } else {
                Some(1000 * (i as i64 + 1))
            }
        })
        .collect();
    let grades: Vec<&str> = (0..12).map(|i| ["A", "B", "C", "D"][i % 4]).collect();
    DataFrame::new(vec![
        Column::new("code".into(), codes),
        Column::new("kwh".into(), kwh),
        Column::new("grade".into(), grades),
    ])
    .unwrap()
}

fn col(name: &str, t: ColumnType, rule: DeidRule) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        column_type: t,
        role: ColumnRole::Other,
        rule,
        domain: None,
        nullable: true,
    }
}

fn schema(key_rule: DeidRule) -> DatasetSchema {
    DatasetSchema {
        columns: vec![
            ColumnSpec {
                role: ColumnRole::DirectIdentifier,
                ..col("code", ColumnType::String, key_rule)
            },
            col("kwh", ColumnType::Integer, DeidRule::Keep),
            col("grade", ColumnType::String, DeidRule::Keep),
        ],
        hierarchies: Default::default(),
        privacy: PrivacyModel::default(),
    }
}

fn spec(value: ValueRule, output: OutputDomain) -> TemplateSpec {
    TemplateSpec {
        key_column: "code".into(),
        value,
        aggregate: None,
        output,
        key_width: KeyWidth::U16,
        bucket_bits: 0,
    }
}

fn quartiles() -> TemplateSpec {
    spec(
        ValueRule::Quantile {
            column: "kwh".into(),
            buckets: 4,
            at_least: None,
        },
        OutputDomain::Uint { bits: 2 },
    )
}

fn table(spec: &TemplateSpec) -> LookupTable {
    spec.validate(&schema(DeidRule::Keep)).unwrap();
    LookupTable::build(&frame(), spec, &KeySource::Clear { salt: SALT }).unwrap()
}

fn hashed(key: &str, width: KeyWidth) -> u64 {
    width.truncate(lookup_hash(SALT, key))
}

/// Encrypts `key`, evaluates over `rows`, decrypts: `(value, found)`.
fn ask(rows: &[(u64, u8)], key: &str, strategy: Strategy, chunk: usize) -> (u8, bool) {
    let k = keys();
    let ct = k
        .secret
        .encrypt_key(KeyWidth::U16, hashed(key, KeyWidth::U16))
        .unwrap();
    let query = QueryKey::parse(&ct, KeyWidth::U16).unwrap();
    let evaluator = Evaluator::new(&k.server, 2).unwrap();
    let done = AtomicUsize::new(0);
    let answer = evaluator
        .lookup(&query, rows, strategy, chunk, &done)
        .unwrap();
    assert_eq!(
        done.load(Ordering::Relaxed),
        rows.len(),
        "progress covers every row"
    );
    k.secret.decrypt(&answer).unwrap()
}

fn clear(table: &LookupTable, key: &str) -> (u8, bool) {
    match table.get(hashed(key, table.width())) {
        Some(v) => (v, true),
        None => (0, false),
    }
}

#[test]
fn fhe_template_rules_compute_the_documented_values() {
    // kWh 1000..12000 without the 6th (missing): 11 keys with a value.
    let q = table(&quartiles());
    assert_eq!(q.len(), 11);
    assert_eq!(q.excluded_rows, 1);
    assert_eq!(q.source_rows, 12);
    // floor(4 × (values below) / 11): 1000 → 0, 4000 → 1 (3 below), 7000 → 1 (5 below),
    // 8000 → 2 (6 below), 12000 → 3 (10 below).
    assert_eq!(clear(&q, &code(0)), (0, true));
    assert_eq!(clear(&q, &code(3)), (1, true));
    assert_eq!(clear(&q, &code(6)), (1, true));
    assert_eq!(clear(&q, &code(7)), (2, true));
    assert_eq!(clear(&q, &code(11)), (3, true));
    assert_eq!(
        clear(&q, &code(5)),
        (0, false),
        "a missing value reads as absent"
    );

    let top = table(&spec(
        ValueRule::Quantile {
            column: "kwh".into(),
            buckets: 4,
            at_least: Some(3),
        },
        OutputDomain::Bool,
    ));
    assert_eq!(clear(&top, &code(11)), (1, true));
    assert_eq!(clear(&top, &code(0)), (0, true));

    let threshold = table(&spec(
        ValueRule::Threshold {
            column: "kwh".into(),
            op: Comparison::Ge,
            value: 6000.0,
        },
        OutputDomain::Bool,
    ));
    assert_eq!(clear(&threshold, &code(4)), (0, true));
    assert_eq!(clear(&threshold, &code(6)), (1, true));

    let bucket = table(&spec(
        ValueRule::Bucket {
            column: "kwh".into(),
            edges: vec![2000.0, 5000.0, 9000.0],
        },
        OutputDomain::Uint { bits: 2 },
    ));
    assert_eq!(clear(&bucket, &code(0)), (0, true));
    assert_eq!(
        clear(&bucket, &code(1)),
        (1, true),
        "an edge belongs to the bucket above"
    );
    assert_eq!(clear(&bucket, &code(11)), (3, true));

    let better_than_c = table(&spec(
        ValueRule::InSet {
            column: "grade".into(),
            values: vec!["A".into(), "B".into()],
        },
        OutputDomain::Bool,
    ));
    assert_eq!(clear(&better_than_c, &code(1)), (1, true));
    assert_eq!(clear(&better_than_c, &code(2)), (0, true));
    // The grade is there even where kWh is missing.
    assert_eq!(clear(&better_than_c, &code(5)), (1, true));

    let rank = table(&spec(
        ValueRule::Rank {
            column: "grade".into(),
            order: vec!["A".into(), "B".into(), "C".into()],
        },
        OutputDomain::Uint { bits: 2 },
    ));
    assert_eq!(clear(&rank, &code(2)), (2, true));
    assert_eq!(
        clear(&rank, &code(3)),
        (0, false),
        "an unranked grade reads as absent"
    );

    let clamped = table(&spec(
        ValueRule::Integer {
            column: "kwh".into(),
        },
        OutputDomain::Uint { bits: 8 },
    ));
    assert_eq!(clear(&clamped, &code(0)), (255, true));
}

#[test]
fn fhe_aggregates_fold_repeated_keys_and_are_required_for_them() {
    let codes = vec![code(1), code(1), code(2), code(1)];
    let kwh = vec![Some(10i64), Some(20), Some(5), None];
    let df = DataFrame::new(vec![
        Column::new("code".into(), codes),
        Column::new("kwh".into(), kwh),
        Column::new("grade".into(), vec!["A"; 4]),
    ])
    .unwrap();
    let mut s = spec(
        ValueRule::Integer {
            column: "kwh".into(),
        },
        OutputDomain::Uint { bits: 8 },
    );
    let err = LookupTable::build(&df, &s, &KeySource::Clear { salt: SALT }).unwrap_err();
    assert!(err.to_string().contains("aggregate"), "{err}");
    s.aggregate = Some(Aggregate::Sum);
    let t = LookupTable::build(&df, &s, &KeySource::Clear { salt: SALT }).unwrap();
    assert_eq!(clear(&t, &code(1)), (30, true));
    s.aggregate = Some(Aggregate::Count);
    let t = LookupTable::build(&df, &s, &KeySource::Clear { salt: SALT }).unwrap();
    assert_eq!(
        clear(&t, &code(1)),
        (2, true),
        "missing values are not counted"
    );
    s.aggregate = Some(Aggregate::Max);
    let t = LookupTable::build(&df, &s, &KeySource::Clear { salt: SALT }).unwrap();
    assert_eq!(clear(&t, &code(1)), (20, true));
}

#[test]
fn fhe_templates_that_cannot_be_vetted_are_refused() {
    let keep = schema(DeidRule::Keep);
    let too_many_buckets = spec(
        ValueRule::Bucket {
            column: "kwh".into(),
            edges: vec![1.0, 2.0, 3.0, 4.0],
        },
        OutputDomain::Uint { bits: 2 },
    );
    assert!(
        too_many_buckets.validate(&keep).is_err(),
        "5 buckets need 3 bits"
    );
    let unsorted = spec(
        ValueRule::Bucket {
            column: "kwh".into(),
            edges: vec![2.0, 1.0],
        },
        OutputDomain::Uint { bits: 2 },
    );
    assert!(unsorted.validate(&keep).is_err());
    let text_as_number = spec(
        ValueRule::Threshold {
            column: "grade".into(),
            op: Comparison::Gt,
            value: 1.0,
        },
        OutputDomain::Bool,
    );
    assert!(text_as_number.validate(&keep).is_err());
    let mut masked_key = quartiles();
    masked_key.key_column = "kwh".into();
    assert!(
        masked_key.validate(&keep).is_err(),
        "key and value must differ"
    );
    let masked = schema(DeidRule::Mask(
        pdx_algorithms::deid::schema::MaskFormat::CreditCode,
    ));
    assert!(
        quartiles().validate(&masked).is_err(),
        "a masked key cannot be matched"
    );
    let mut wide_bucket = quartiles();
    wide_bucket.bucket_bits = 11;
    assert!(wide_bucket.validate(&keep).is_err());
    assert!(
        quartiles()
            .validate(&schema(DeidRule::Pseudonymise))
            .is_ok()
    );
}

#[test]
fn fhe_colliding_key_hashes_are_refused() {
    // 2,000 keys in 16 bits collide with near certainty (birthday bound).
    let codes: Vec<String> = (0..2000).map(code).collect();
    let df = DataFrame::new(vec![
        Column::new("code".into(), codes),
        Column::new("kwh".into(), vec![1i64; 2000]),
        Column::new("grade".into(), vec!["A"; 2000]),
    ])
    .unwrap();
    let s = quartiles();
    let err = LookupTable::build(&df, &s, &KeySource::Clear { salt: SALT }).unwrap_err();
    assert!(err.to_string().contains("16-bit"), "{err}");
    let mut wide = s;
    wide.key_width = KeyWidth::U64;
    assert_eq!(
        LookupTable::build(&df, &wide, &KeySource::Clear { salt: SALT })
            .unwrap()
            .len(),
        2000
    );
}

#[test]
fn fhe_key_index_maps_pseudonyms_to_the_clients_hash() {
    let secret = [9u8; 32];
    let raw = frame();
    let index = key_index(&raw, &schema(DeidRule::Pseudonymise), &secret, SALT)
        .unwrap()
        .expect("a pseudonymised column has an index");
    let map: HashMap<String, u64> = read_key_index(&index, "code").unwrap();
    let p = Pseudonymiser::new(&secret);
    for i in 0..12 {
        assert_eq!(map[&p.pseudonym(&code(i))], lookup_hash(SALT, &code(i)));
    }
    // The de-identified frame holds pseudonyms; the table built through the index is
    // the one built from the clear keys.
    let pseudonyms: Vec<String> = (0..12).map(|i| p.pseudonym(&code(i))).collect();
    let mut deid = raw.clone();
    deid.with_column(Column::new("code".into(), pseudonyms))
        .unwrap();
    let s = quartiles();
    let via_index = LookupTable::build(&deid, &s, &KeySource::Index(&map)).unwrap();
    let via_clear = LookupTable::build(&raw, &s, &KeySource::Clear { salt: SALT }).unwrap();
    assert_eq!(via_index, via_clear);
    assert!(
        key_index(&raw, &schema(DeidRule::Keep), &secret, SALT)
            .unwrap()
            .is_none()
    );
}

/// One test for every FHE evaluation (each test runs in its own process under nextest,
/// and a key pair costs seconds to generate and load on two cores). Scans are kept to
/// a handful of rows: a lookup costs a few bootstraps per row.
#[test]
fn fhe_encrypted_lookups_equal_the_clear_answers() {
    let t = table(&quartiles());
    // The codes of the table, by hashed key, and the first six rows as the scanned table.
    let by_hash: HashMap<u64, String> = (0..12)
        .map(code)
        .map(|c| (hashed(&c, KeyWidth::U16), c))
        .collect();
    let rows = &t.entries()[..6];
    let scanned: Vec<&str> = rows.iter().map(|(h, _)| by_hash[h].as_str()).collect();
    let elsewhere = t.entries()[6..]
        .iter()
        .map(|(h, _)| by_hash[h].as_str())
        .next()
        .unwrap();
    let absent = "91440300MA5F99999X";
    assert_eq!(
        t.get(hashed(absent, KeyWidth::U16)),
        None,
        "test key collides"
    );
    let answer_over_rows =
        |key: &str| match rows.iter().find(|(h, _)| *h == hashed(key, KeyWidth::U16)) {
            Some((_, v)) => (*v, true),
            None => (0, false),
        };

    // match_value in chunks of 4: two chunks, answers combined across them.
    for key in [scanned[0], scanned[5], elsewhere, absent] {
        let got = ask(rows, key, Strategy::MatchValue, 4);
        assert_eq!(got, answer_over_rows(key), "match_value, key {key}");
    }
    assert_eq!(answer_over_rows(scanned[5]), clear(&t, scanned[5]));

    // The other strategies agree, on four rows.
    let few = &rows[..4];
    let in_few = |key: &str| match few.iter().find(|(h, _)| *h == hashed(key, KeyWidth::U16)) {
        Some((_, v)) => (*v, true),
        None => (0, false),
    };
    for (strategy, key) in [
        (Strategy::KvStore, scanned[1]),
        (Strategy::EqSelectSum, scanned[2]),
        (Strategy::EqSelectSum, absent),
    ] {
        let got = ask(few, key, strategy, few.len());
        assert_eq!(got, in_few(key), "{} key {key}", strategy.as_str());
    }

    // Public buckets partition the table; a key is found scanning only its bucket.
    let sizes = t.bucket_sizes(2);
    assert_eq!(sizes.len(), 4);
    assert_eq!(sizes.iter().sum::<u64>(), t.len() as u64);
    for (b, size) in sizes.iter().enumerate() {
        assert_eq!(t.bucket(2, b as u64).len() as u64, *size);
    }
    let key = scanned[3];
    let b = KeyWidth::U16.bucket_of(hashed(key, KeyWidth::U16), 2);
    let bucket = t.bucket(2, b);
    assert!(bucket.len() < t.len(), "buckets narrow the scan");
    assert_eq!(
        ask(bucket, key, Strategy::MatchValue, chunk_rows(bucket.len())),
        clear(&t, key)
    );
    // An empty scan answers "absent" without evaluating anything.
    assert_eq!(ask(&[], key, Strategy::MatchValue, 64), (0, false));
}

#[test]
fn fhe_server_keys_are_checked_before_use() {
    let k = keys();
    let ok = check_server_key(&k.pair.server, LIMIT).unwrap();
    assert_eq!(ok.bytes, k.pair.server.len() as u64);
    assert_eq!(
        ok.hash,
        pdx_algorithms::fhe::server_key_hash(&k.pair.server)
    );
    // The platform's compressed key is 60.2 MB: the default cap (96 MiB) leaves room.
    assert!(ok.bytes > 10 << 20 && ok.bytes < pdx_algorithms::fhe::DEFAULT_SERVER_KEY_LIMIT);

    // Oversized.
    assert!(matches!(
        check_server_key(&k.pair.server, 1 << 20),
        Err(FheError::TooLarge { .. })
    ));
    // The secret half, refused by name.
    assert!(matches!(
        check_server_key(&k.pair.client, LIMIT),
        Err(FheError::SecretKeySent)
    ));
    // Other parameters.
    let foreign = testing::server_key_with_other_parameters().unwrap();
    assert!(matches!(
        check_server_key(&foreign, LIMIT),
        Err(FheError::WrongParameters)
    ));
    // Malformed: truncated, corrupted, or not TFHE at all.
    let truncated = &k.pair.server[..k.pair.server.len() / 2];
    assert!(matches!(
        check_server_key(truncated, LIMIT),
        Err(FheError::Malformed { .. })
    ));
    assert!(matches!(
        check_server_key(b"definitely not a key", LIMIT),
        Err(FheError::Malformed { .. })
    ));
    for e in [
        check_server_key(truncated, LIMIT).unwrap_err(),
        check_server_key(&k.pair.client, LIMIT).unwrap_err(),
    ] {
        assert!(e.is_client_error());
    }
}

#[test]
fn fhe_query_ciphertexts_and_answers_are_checked_before_use() {
    let k = keys();
    let ct16 = k.secret.encrypt_key(KeyWidth::U16, 0xBEEF).unwrap();
    assert!(ct16.len() < 4096, "a compressed 16-bit key is small");
    assert!(QueryKey::parse(&ct16, KeyWidth::U16).is_ok());
    // Another width than the template's.
    assert!(matches!(
        QueryKey::parse(&ct16, KeyWidth::U32),
        Err(FheError::WrongCiphertext(_))
    ));
    let ct32 = k.secret.encrypt_key(KeyWidth::U32, 0xBEEF).unwrap();
    assert!(matches!(
        QueryKey::parse(&ct32, KeyWidth::U16),
        Err(FheError::WrongCiphertext(_))
    ));
    // Malformed: truncated, flipped header, garbage.
    assert!(matches!(
        QueryKey::parse(&ct16[..ct16.len() - 3], KeyWidth::U16),
        Err(FheError::Malformed { .. })
    ));
    let mut flipped = ct16.clone();
    flipped[0] ^= 0xff;
    assert!(matches!(
        QueryKey::parse(&flipped, KeyWidth::U16),
        Err(FheError::Malformed { .. })
    ));
    assert!(QueryKey::parse(&[0u8; 100], KeyWidth::U16).is_err());
    // A client key or a server key in place of a ciphertext.
    assert!(matches!(
        QueryKey::parse(&k.pair.client, KeyWidth::U16),
        Err(FheError::TooLarge { .. }) | Err(FheError::SecretKeySent)
    ));
    // Encrypted under other parameters.
    let other = tfhe::ClientKey::generate(
        tfhe::ConfigBuilder::with_custom_parameters(
            tfhe::shortint::parameters::v1_8::V1_8_PARAM_MESSAGE_1_CARRY_1_KS_PBS_TUNIFORM_2M128,
        )
        .build(),
    );
    use tfhe::prelude::FheEncrypt;
    let foreign = tfhe::CompressedFheUint16::encrypt(7u16, &other);
    let mut bytes = Vec::new();
    tfhe::safe_serialization::safe_serialize(&foreign, &mut bytes, 1 << 20).unwrap();
    assert!(matches!(
        QueryKey::parse(&bytes, KeyWidth::U16),
        Err(FheError::WrongCiphertext(_))
    ));
    // An uncompressed ciphertext is not what the API takes.
    let plain = tfhe::FheUint16::encrypt(7u16, &other);
    let mut bytes = Vec::new();
    tfhe::safe_serialization::safe_serialize(&plain, &mut bytes, 1 << 20).unwrap();
    assert!(QueryKey::parse(&bytes, KeyWidth::U16).is_err());

    // A forged answer (garbage) is refused by the client's conformance check.
    let forged = Answer {
        value: b"garbage".to_vec(),
        found: b"garbage".to_vec(),
    };
    assert!(k.secret.decrypt(&forged).is_err());
}

#[test]
fn fhe_server_code_never_names_the_client_key_type() {
    // The server module has no code path that could build a client key: it refuses one
    // by its serialised name, which it takes from a constant defined elsewhere.
    let source = include_str!("../../src/fhe/server.rs");
    assert!(!source.contains("ClientKey"));
    assert!(!source.contains("ClientSecret"));
    assert!(!source.contains("client::"));
}
