//! Masking of Chinese identifiers and personal names, plus generic regex masks.
//!
//! A mask keeps the parts of an identifier that are coarse by design (the region of a
//! resident ID, the registration authority and region of a credit code, the carrier
//! prefix of a mobile number, a surname) and replaces the rest with `*`. A value that
//! does not pass its format's check (length, alphabet, check character) is masked in
//! full, because its "region" part cannot be trusted to be coarse, and is counted as
//! invalid so the report shows data-quality problems without showing data.
//!
//! The generators ([`generate`]) draw *valid* synthetic identifiers for dummy data and
//! tests; they never look at real values.

use rand::Rng;
use regex::Regex;
use serde::{Deserialize, Serialize};

use super::schema::MaskFormat;

/// ISO 7064 MOD 11-2 weights of the first 17 digits of a resident ID (GB 11643-1999).
const RESIDENT_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character by `sum % 11`.
const RESIDENT_CHECK: &[u8; 11] = b"10X98765432";

/// The 31-character alphabet of unified social credit codes (no I, O, S, V, Z).
const CREDIT_ALPHABET: &[u8; 31] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
/// GB 32100-2015 weights of the first 17 characters.
const CREDIT_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Why a mask cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum MaskError {
    /// The regex pattern does not compile (the message is about the pattern, never data).
    #[error("mask pattern does not compile: {0}")]
    InvalidPattern(String),
}

/// The check character of a resident ID from its first 17 digits, if they are digits.
pub fn resident_id_check_char(first17: &str) -> Option<char> {
    let b = first17.as_bytes();
    if b.len() != 17 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = b
        .iter()
        .zip(RESIDENT_WEIGHTS)
        .map(|(&c, w)| u32::from(c - b'0') * w)
        .sum();
    Some(char::from(RESIDENT_CHECK[(sum % 11) as usize]))
}

/// Whether `s` is an 18-character resident ID with a correct MOD 11-2 check character.
///
/// A lowercase `x` is accepted as the check character, as many registers store it so.
pub fn resident_id_valid(s: &str) -> bool {
    if s.len() != 18 || !s.is_ascii() {
        return false;
    }
    let (body, check) = s.split_at(17);
    match resident_id_check_char(body) {
        Some(expected) => check.chars().next().map(|c| c.to_ascii_uppercase()) == Some(expected),
        None => false,
    }
}

fn credit_value(c: u8) -> Option<u32> {
    CREDIT_ALPHABET
        .iter()
        .position(|&a| a == c)
        .map(|p| p as u32)
}

/// The check character of a unified social credit code from its first 17 characters.
pub fn credit_code_check_char(first17: &str) -> Option<char> {
    let b = first17.as_bytes();
    if b.len() != 17 {
        return None;
    }
    let mut sum = 0u32;
    for (&c, w) in b.iter().zip(CREDIT_WEIGHTS) {
        sum += credit_value(c)? * w;
    }
    let check = (31 - sum % 31) % 31;
    Some(char::from(CREDIT_ALPHABET[check as usize]))
}

/// Whether `s` is an 18-character unified social credit code with a correct check character.
pub fn credit_code_valid(s: &str) -> bool {
    if s.len() != 18 || !s.is_ascii() {
        return false;
    }
    let (body, check) = s.split_at(17);
    credit_code_check_char(body).is_some_and(|c| check.as_bytes()[0] == c as u8)
}

/// Whether `s` is a mainland mobile number: 11 digits, `1` then `3`–`9`.
pub fn mobile_valid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 11
        && b.iter().all(u8::is_ascii_digit)
        && b[0] == b'1'
        && (b'3'..=b'9').contains(&b[1])
}

/// Per-column masking counts for the report.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MaskStats {
    /// Non-null values masked.
    pub masked: u64,
    /// Of those, values that failed their format's check and were masked in full.
    pub invalid: u64,
}

/// The result of masking one value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Masked {
    /// The masked text.
    pub value: String,
    /// Whether the input passed its format's check (regex: whether the pattern matched).
    pub valid: bool,
}

#[derive(Debug)]
enum Kind {
    ResidentId,
    Mobile,
    CreditCode,
    PersonName,
    Regex { pattern: Regex, replacement: String },
}

/// A mask for one column, built once (the regex is compiled here, not per value).
#[derive(Debug)]
pub struct Masker {
    kind: Kind,
}

/// `keep_head` characters, then `*` for the middle, then `keep_tail` characters.
fn keep_ends(s: &str, keep_head: usize, keep_tail: usize) -> String {
    let n = s.chars().count();
    s.chars()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_head || i + keep_tail >= n {
                c
            } else {
                '*'
            }
        })
        .collect()
}

fn full_mask(s: &str) -> String {
    "*".repeat(s.chars().count())
}

impl Masker {
    /// Builds the mask for `format`, compiling a regex pattern once.
    pub fn new(format: &MaskFormat) -> Result<Masker, MaskError> {
        let kind = match format {
            MaskFormat::ResidentId => Kind::ResidentId,
            MaskFormat::Mobile => Kind::Mobile,
            MaskFormat::CreditCode => Kind::CreditCode,
            MaskFormat::PersonName => Kind::PersonName,
            MaskFormat::Regex {
                pattern,
                replacement,
            } => Kind::Regex {
                pattern: Regex::new(pattern)
                    .map_err(|e| MaskError::InvalidPattern(e.to_string()))?,
                replacement: replacement.clone(),
            },
        };
        Ok(Masker { kind })
    }

    /// Masks one value; an invalid identifier is masked in full and flagged.
    pub fn mask(&self, s: &str) -> Masked {
        let checked = |valid: bool, keep_head: usize, keep_tail: usize| Masked {
            value: if valid {
                keep_ends(s, keep_head, keep_tail)
            } else {
                full_mask(s)
            },
            valid,
        };
        match &self.kind {
            // Region (6 digits) and the last 4 stay: the common display form.
            Kind::ResidentId => checked(resident_id_valid(s), 6, 4),
            // Carrier prefix and last 4 stay.
            Kind::Mobile => checked(mobile_valid(s), 3, 4),
            // Registration authority, organisation type and 6-digit region stay.
            Kind::CreditCode => checked(credit_code_valid(s), 8, 0),
            // The surname stays (single-character surnames are by far the most common).
            Kind::PersonName => Masked {
                value: keep_ends(s, 1, 0),
                valid: true,
            },
            Kind::Regex {
                pattern,
                replacement,
            } => Masked {
                valid: pattern.is_match(s),
                value: pattern.replace_all(s, replacement.as_str()).into_owned(),
            },
        }
    }
}

/// Region codes (GB/T 2260 county level) used for synthetic identifiers.
const REGIONS: [&str; 12] = [
    "110101", "110105", "310104", "310115", "440103", "440106", "440305", "330106", "510107",
    "420106", "320102", "610113",
];
/// Mobile prefixes of the three carriers.
const MOBILE_PREFIXES: [&str; 12] = [
    "134", "135", "138", "139", "150", "158", "176", "180", "186", "189", "198", "199",
];
/// Common surnames.
const SURNAMES: [&str; 16] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
];
/// Characters used in given names.
const GIVEN: [&str; 20] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平",
];

fn pick<'a, R: Rng + ?Sized>(rng: &mut R, items: &[&'a str]) -> &'a str {
    items[rng.gen_range(0..items.len())]
}

/// GB 11714 check character of a 9-character organisation code's first 8 characters.
fn org_code_check(first8: &[u8]) -> u8 {
    const W: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];
    let value = |c: u8| {
        if c.is_ascii_digit() {
            u32::from(c - b'0')
        } else {
            u32::from(c - b'A') + 10
        }
    };
    let sum: u32 = first8.iter().zip(W).map(|(&c, w)| value(c) * w).sum();
    match 11 - sum % 11 {
        10 => b'X',
        11 => b'0',
        d => b'0' + d as u8,
    }
}

/// Draws a valid synthetic value of `format` (regex formats get a short random token).
pub fn generate<R: Rng + ?Sized>(format: &MaskFormat, rng: &mut R) -> String {
    match format {
        MaskFormat::ResidentId => {
            let year = rng.gen_range(1940..=2005);
            let month = rng.gen_range(1..=12);
            let day = rng.gen_range(1..=28);
            let seq = rng.gen_range(0..1000);
            let body = format!("{}{year:04}{month:02}{day:02}{seq:03}", pick(rng, &REGIONS));
            // The body is 17 ASCII digits by construction, so a check character exists.
            let check = resident_id_check_char(&body).unwrap_or('0');
            format!("{body}{check}")
        }
        MaskFormat::Mobile => {
            let mut s = pick(rng, &MOBILE_PREFIXES).to_owned();
            for _ in 0..8 {
                s.push(char::from(b'0' + rng.gen_range(0..10u8)));
            }
            s
        }
        MaskFormat::CreditCode => {
            // "91": industry-and-commerce authority, enterprise; then a region code and a
            // 9-character organisation code with its own GB 11714 check.
            let mut org: Vec<u8> = (0..8)
                .map(|_| {
                    // Organisation codes use digits and uppercase letters outside I, O, S, V, Z.
                    CREDIT_ALPHABET[rng.gen_range(0..CREDIT_ALPHABET.len())]
                })
                .collect();
            let c = org_code_check(&org);
            org.push(c);
            let body = format!("91{}{}", pick(rng, &REGIONS), String::from_utf8_lossy(&org));
            let check = credit_code_check_char(&body).unwrap_or('0');
            format!("{body}{check}")
        }
        MaskFormat::PersonName => {
            let given = rng.gen_range(1..=2);
            let mut s = pick(rng, &SURNAMES).to_owned();
            for _ in 0..given {
                s.push_str(pick(rng, &GIVEN));
            }
            s
        }
        MaskFormat::Regex { .. } => {
            const ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
            (0..8)
                .map(|_| char::from(ALNUM[rng.gen_range(0..ALNUM.len())]))
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::*;

    #[test]
    fn known_identifiers() {
        // The GB 11643 worked example.
        assert!(resident_id_valid("11010519491231002X"));
        assert!(resident_id_valid("11010519491231002x"));
        assert!(!resident_id_valid("110105194912310021"));
        // Published credit code of a large enterprise (Alibaba (China) Co., Ltd.).
        assert!(credit_code_valid("91330100799655058B"));
        assert!(!credit_code_valid("91330100799655058C"));
        assert!(!credit_code_valid("91330100799655058"));
        assert!(mobile_valid("13812345678"));
        assert!(!mobile_valid("12812345678"));
        assert!(!mobile_valid("1381234567"));
    }

    #[test]
    fn generated_values_are_valid() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for _ in 0..500 {
            assert!(resident_id_valid(&generate(
                &MaskFormat::ResidentId,
                &mut rng
            )));
            assert!(mobile_valid(&generate(&MaskFormat::Mobile, &mut rng)));
            assert!(credit_code_valid(&generate(
                &MaskFormat::CreditCode,
                &mut rng
            )));
        }
        let name = generate(&MaskFormat::PersonName, &mut rng);
        assert!((2..=3).contains(&name.chars().count()));
    }

    #[test]
    fn masks() {
        let id = Masker::new(&MaskFormat::ResidentId).unwrap();
        assert_eq!(
            id.mask("11010519491231002X"),
            Masked {
                value: "110105********002X".into(),
                valid: true
            }
        );
        assert_eq!(
            id.mask("110105194912310021"),
            Masked {
                value: "*".repeat(18),
                valid: false
            }
        );
        assert_eq!(id.mask("abc").value, "***");
        let name = Masker::new(&MaskFormat::PersonName).unwrap();
        assert_eq!(name.mask("张三丰").value, "张**");
        assert_eq!(name.mask("").value, "");
        let re = Masker::new(&MaskFormat::Regex {
            pattern: r"(\d{3})\d+".into(),
            replacement: "$1***".into(),
        })
        .unwrap();
        assert_eq!(
            re.mask("tel 0205551234"),
            Masked {
                value: "tel 020***".into(),
                valid: true
            }
        );
        assert!(!re.mask("none").valid);
        assert!(
            Masker::new(&MaskFormat::Regex {
                pattern: "(".into(),
                replacement: String::new()
            })
            .is_err()
        );
    }
}
