//! Masking on generated resident IDs, mobile numbers and credit codes, valid and with
//! broken check characters, and pseudonym linkage. Check characters are computed here
//! from the standards' definitions (weights as powers, not the crate's tables).

use std::collections::BTreeMap;

use pdx_algorithms::deid::mask::{credit_code_valid, mobile_valid, resident_id_valid};
use pdx_algorithms::deid::pipeline::deidentify;
use pdx_algorithms::deid::pseudonym::Pseudonymiser;
use pdx_algorithms::deid::schema::{
    ColumnRole, ColumnSpec, ColumnType, DatasetSchema, DeidRule, MaskFormat, PrivacyModel,
};
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::deid_common::texts;

/// GB 11643: weight of position i (1-based) is 2^(18-i) mod 11; check = (12 - sum % 11) % 11, 10 = X.
fn resident_check(body: &str) -> char {
    let sum: u64 = body
        .bytes()
        .enumerate()
        .map(|(i, c)| u64::from(c - b'0') * ((1u64 << (17 - i)) % 11))
        .sum();
    let c = (12 - sum % 11) % 11;
    if c == 10 {
        'X'
    } else {
        char::from(b'0' + c as u8)
    }
}

const ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";

/// GB 32100: weight of position i (0-based) is 3^i mod 31; check = (31 - sum % 31) % 31.
fn credit_check(body: &str) -> char {
    let mut w = 1u64;
    let mut sum = 0u64;
    for c in body.chars() {
        sum += ALPHABET.find(c).unwrap() as u64 * w;
        w = w * 3 % 31;
    }
    ALPHABET.as_bytes()[((31 - sum % 31) % 31) as usize] as char
}

fn digits(rng: &mut impl Rng, n: usize) -> String {
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// A different character of `alphabet` than `c`.
fn other(rng: &mut impl Rng, c: char, alphabet: &str) -> char {
    loop {
        let o = alphabet.as_bytes()[rng.gen_range(0..alphabet.len())] as char;
        if o != c {
            return o;
        }
    }
}

fn direct(name: &str, rule: DeidRule) -> ColumnSpec {
    ColumnSpec {
        name: name.into(),
        column_type: ColumnType::String,
        role: ColumnRole::DirectIdentifier,
        rule,
        domain: None,
        nullable: true,
    }
}

#[test]
fn identifiers_are_masked_and_invalid_ones_fully() {
    let mut rng = ChaCha20Rng::seed_from_u64(2025);
    let n = 400;
    let (mut ids, mut phones, mut codes) = (Vec::new(), Vec::new(), Vec::new());
    let (mut ids_ok, mut phones_ok, mut codes_ok) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let broken = i % 4 == 0;
        // Resident ID: region, birth date, sequence, check.
        let body = format!(
            "{}{}{:02}{:02}{}",
            ["110101", "440106", "310104"][i % 3],
            rng.gen_range(1950..2005),
            rng.gen_range(1..13),
            rng.gen_range(1..29),
            digits(&mut rng, 3)
        );
        let check = resident_check(&body);
        let check = if broken {
            other(&mut rng, check, "0123456789X")
        } else {
            check
        };
        ids.push(format!("{body}{check}"));
        ids_ok.push(!broken);
        // Mobile: 1[3-9] and 9 digits; broken ones start 12 or are one digit short.
        let phone = format!("1{}{}", rng.gen_range(3..10), digits(&mut rng, 9));
        let phone = if broken {
            if i % 8 == 0 {
                format!("12{}", &phone[2..])
            } else {
                phone[..10].to_owned()
            }
        } else {
            phone
        };
        phones.push(phone);
        phones_ok.push(!broken);
        // Credit code: authority + type, region, 9-character organisation code, check.
        let org: String = (0..9)
            .map(|_| ALPHABET.as_bytes()[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        let body = format!("91{}{org}", ["110108", "440300", "330100"][i % 3]);
        let check = credit_check(&body);
        let check = if broken {
            other(&mut rng, check, ALPHABET)
        } else {
            check
        };
        codes.push(format!("{body}{check}"));
        codes_ok.push(!broken);
    }
    // The crate's validators agree with the independent computation.
    for i in 0..n {
        assert_eq!(resident_id_valid(&ids[i]), ids_ok[i], "{}", ids[i]);
        assert_eq!(mobile_valid(&phones[i]), phones_ok[i], "{}", phones[i]);
        assert_eq!(credit_code_valid(&codes[i]), codes_ok[i], "{}", codes[i]);
    }
    let names: Vec<&str> = (0..n)
        .map(|i| ["张三", "欧阳娜娜", "李四", "王"][i % 4])
        .collect();
    let frame = DataFrame::new(vec![
        Column::new("id".into(), &ids),
        Column::new("phone".into(), &phones),
        Column::new("company".into(), &codes),
        Column::new("name".into(), &names),
    ])
    .unwrap();
    let schema = DatasetSchema {
        columns: vec![
            direct("id", DeidRule::Mask(MaskFormat::ResidentId)),
            direct("phone", DeidRule::Mask(MaskFormat::Mobile)),
            direct("company", DeidRule::Mask(MaskFormat::CreditCode)),
            direct("name", DeidRule::Mask(MaskFormat::PersonName)),
        ],
        hierarchies: BTreeMap::new(),
        privacy: PrivacyModel {
            k: 5,
            l: None,
            max_suppression: 0.0,
            metric: Default::default(),
        },
    };
    let out = deidentify(frame, &schema, &[0; 32]).unwrap();
    // No QIs: nothing suppressed, k is the row count.
    assert_eq!(out.report.records_out, n as u64);
    assert_eq!(out.report.k_achieved, n as u32);
    let (m_ids, m_phones, m_codes, m_names) = (
        texts(&out.frame, "id"),
        texts(&out.frame, "phone"),
        texts(&out.frame, "company"),
        texts(&out.frame, "name"),
    );
    for i in 0..n {
        let (id, phone, code) = (&ids[i], &phones[i], &codes[i]);
        let expect_id = if ids_ok[i] {
            format!("{}********{}", &id[..6], &id[14..])
        } else {
            "*".repeat(id.len())
        };
        assert_eq!(m_ids[i].as_deref(), Some(expect_id.as_str()));
        let expect_phone = if phones_ok[i] {
            format!("{}****{}", &phone[..3], &phone[7..])
        } else {
            "*".repeat(phone.len())
        };
        assert_eq!(m_phones[i].as_deref(), Some(expect_phone.as_str()));
        let expect_code = if codes_ok[i] {
            format!("{}**********", &code[..8])
        } else {
            "*".repeat(18)
        };
        assert_eq!(m_codes[i].as_deref(), Some(expect_code.as_str()));
        let first = names[i].chars().next().unwrap();
        let expect_name = format!("{first}{}", "*".repeat(names[i].chars().count() - 1));
        assert_eq!(m_names[i].as_deref(), Some(expect_name.as_str()));
    }
    let invalid = n as u64 / 4;
    let stats = &out.report.masked;
    for col in ["id", "phone", "company"] {
        assert_eq!(stats[col].masked, n as u64);
        assert_eq!(stats[col].invalid, invalid, "{col}");
    }
    assert_eq!(stats["name"].invalid, 0);
}

#[test]
fn pseudonyms_link_within_a_dataset_only() {
    let values = ["110101199001011234", "alice", "110101199001011234"];
    let frame = || DataFrame::new(vec![Column::new("who".into(), values)]).unwrap();
    let schema = DatasetSchema {
        columns: vec![direct("who", DeidRule::Pseudonymise)],
        hierarchies: BTreeMap::new(),
        privacy: PrivacyModel {
            k: 1,
            l: None,
            max_suppression: 0.0,
            metric: Default::default(),
        },
    };
    let a = texts(
        &deidentify(frame(), &schema, &[1; 32]).unwrap().frame,
        "who",
    );
    let a_again = texts(
        &deidentify(frame(), &schema, &[1; 32]).unwrap().frame,
        "who",
    );
    let b = texts(
        &deidentify(frame(), &schema, &[2; 32]).unwrap().frame,
        "who",
    );
    assert_eq!(a, a_again, "same key, same pseudonyms");
    assert_eq!(a[0], a[2], "same value, same pseudonym within a dataset");
    assert_ne!(a[0], a[1]);
    assert_ne!(a[0], b[0], "same value in two datasets must not link");
    assert_ne!(a[1], b[1]);
    for p in a.iter().chain(&b) {
        let p = p.as_deref().unwrap();
        assert_eq!(p.len(), 32);
        assert!(p.bytes().all(|c| c.is_ascii_hexdigit()));
        assert!(!values.contains(&p));
    }
    // The public type agrees with the pipeline.
    assert_eq!(
        a[1].as_deref(),
        Some(Pseudonymiser::new(&[1; 32]).pseudonym("alice").as_str())
    );
}
