//! RFC 8785 canonicalisation: the RFC's own examples, its Appendix B number table,
//! UTF-16 key ordering, string escapes and the integer range policy.

use pdx_ledger::canonical::{CanonicalError, to_canonical_string, to_canonical_vec};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

fn canon(text: &str) -> String {
    to_canonical_string(&serde_json::from_str::<Value>(text).unwrap()).unwrap()
}

#[test]
#[allow(clippy::excessive_precision)] // the RFC's literal, digits and all
fn rfc8785_section_3_2_2_sample() {
    // Input and output are the RFC 8785 §3.2.2 example (output as printed in §3.2.2).
    let input = r#"{
      "numbers": [333333333.33333329, 1E30, 4.50,
                  2e-3, 0.000000000000000000000000001],
      "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
      "literals": [null, true, false]
    }"#;
    let expected = r#"{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}"#;
    let mut value: Value = serde_json::from_str(input).unwrap();
    // serde_json's default float parser is not correctly rounded (it reads
    // 333333333.33333329 one ULP off), so the numbers come from rustc's literals, which
    // are; see `serde_json_parses_numbers_exactly`.
    value["numbers"] = json!([
        333333333.33333329_f64,
        1E30_f64,
        4.50_f64,
        2e-3_f64,
        0.000000000000000000000000001_f64
    ]);
    assert_eq!(to_canonical_string(&value).unwrap(), expected);
    assert_eq!(to_canonical_vec(&value).unwrap(), expected.as_bytes());
    // Canonical output is a fixed point.
    assert_eq!(canon(expected), expected);
}

#[test]
fn rfc8785_section_3_2_3_sorting_sample() {
    // RFC 8785 §3.2.3: input members and the sorted order the RFC prints.
    let input = r#"{
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis"
    }"#;
    let expected = "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u{80}\":\"Control\",\
                    \"\u{f6}\":\"Latin Small Letter O With Diaeresis\",\"\u{20ac}\":\"Euro Sign\",\
                    \"\u{1f600}\":\"Emoji: Grinning Face\",\
                    \"\u{fb33}\":\"Hebrew Letter Dalet With Dagesh\"}";
    assert_eq!(canon(input), expected);
}

#[test]
fn non_bmp_keys_sort_before_high_bmp_keys() {
    // UTF-16: U+10000 is D800 DC00 and U+1F600 is D83D DE00, both below E000, so they
    // come before U+E000 and U+FFFF; code-point or UTF-8 order would put them last.
    let value = json!({
        "\u{ffff}": 5, "\u{e000}": 4, "\u{1f600}": 3, "\u{10000}": 2, "a": 1, "": 0, "ab": 1.5
    });
    let expected =
        "{\"\":0,\"a\":1,\"ab\":1.5,\"\u{10000}\":2,\"\u{1f600}\":3,\"\u{e000}\":4,\"\u{ffff}\":5}";
    assert_eq!(to_canonical_string(&value).unwrap(), expected);
    // Sorting applies at every depth, including objects inside arrays.
    let nested =
        json!({"b": [{"z": 1, "\u{10000}": 2, "\u{e000}": 3}], "a": {"y": null, "x": true}});
    assert_eq!(
        to_canonical_string(&nested).unwrap(),
        "{\"a\":{\"x\":true,\"y\":null},\"b\":[{\"z\":1,\"\u{10000}\":2,\"\u{e000}\":3}]}"
    );
}

#[test]
fn rfc8785_appendix_b_numbers() {
    // RFC 8785 Appendix B: IEEE 754 bit patterns and their required serialisation.
    let table = [
        ("0000000000000000", "0"),
        ("8000000000000000", "0"),
        ("0000000000000001", "5e-324"),
        ("8000000000000001", "-5e-324"),
        ("7fefffffffffffff", "1.7976931348623157e+308"),
        ("ffefffffffffffff", "-1.7976931348623157e+308"),
        ("4340000000000000", "9007199254740992"),
        ("c340000000000000", "-9007199254740992"),
        ("4430000000000000", "295147905179352830000"),
        ("44b52d02c7e14af5", "9.999999999999997e+22"),
        ("44b52d02c7e14af6", "1e+23"),
        ("44b52d02c7e14af7", "1.0000000000000001e+23"),
        ("444b1ae4d6e2ef4e", "999999999999999700000"),
        ("444b1ae4d6e2ef4f", "999999999999999900000"),
        ("444b1ae4d6e2ef50", "1e+21"),
        ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
        ("3eb0c6f7a0b5ed8d", "0.000001"),
        ("41b3de4355555553", "333333333.3333332"),
        ("41b3de4355555554", "333333333.33333325"),
        ("41b3de4355555555", "333333333.3333333"),
        ("41b3de4355555556", "333333333.3333334"),
        ("41b3de4355555557", "333333333.33333343"),
        ("becbf647612f3696", "-0.0000033333333333333333"),
        ("43143ff3c1cb0959", "1424953923781206.2"),
    ];
    for (bits, expected) in table {
        let x = f64::from_bits(u64::from_str_radix(bits, 16).unwrap());
        assert_eq!(
            to_canonical_string(&json!(x)).unwrap(),
            expected,
            "0x{bits}"
        );
    }
    // The two non-finite rows (7fffffffffffffff NaN, 7ff0000000000000 Infinity) must be
    // errors; serde_json cannot even hold them in a Value, which turns them into null.
    assert_eq!(json!(f64::NAN), Value::Null);
    assert_eq!(json!(f64::INFINITY), Value::Null);
    assert!(serde_json::from_str::<Value>("1e400").is_err());
}

#[test]
fn ecmascript_number_layout_boundaries() {
    // ECMA-262 Number::toString: plain digits below 10^21, exponent form from 1e21; plain
    // decimals down to 1e-6, exponent form from 1e-7; "e+" / "e-" always signed.
    for (x, expected) in [
        (1.0, "1"),
        (-0.0, "0"),
        (100.0, "100"),
        (1e20, "100000000000000000000"),
        (1e21, "1e+21"),
        (0.000001, "0.000001"),
        (0.0000001, "1e-7"),
        (1.5e-7, "1.5e-7"),
        (-1.25e25, "-1.25e+25"),
        (0.1, "0.1"),
        (123.456, "123.456"),
        // Exact ties (ECMA-262 step 5: "if there are two such possible values of s,
        // choose the one that is even"). Between 2^50 = 1125899906842624 and 2^51 the
        // spacing is 0.25, so these doubles are exact and sit halfway between two
        // 17-digit strings (...624.7/...624.8 and ...625.2/...625.3).
        (2f64.powi(50) + 0.75, "1125899906842624.8"),
        (2f64.powi(50) + 1.25, "1125899906842625.2"),
    ] {
        assert_eq!(to_canonical_string(&json!(x)).unwrap(), expected, "{x:e}");
    }
}

#[test]
fn serde_json_parses_numbers_exactly() {
    // Canonical text of a payload must parse back to the same doubles, or re-checking a
    // stored canonical payload reports it as non-canonical.
    for text in ["-1.25e25", "333333333.33333329", "1424953923781206.2"] {
        let parsed: Value = serde_json::from_str(text).unwrap();
        assert_eq!(parsed.as_f64(), text.parse::<f64>().ok(), "{text}");
    }
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..10_000 {
        let x = f64::from_bits(rng.r#gen());
        if x.is_finite() {
            let text = to_canonical_string(&json!(x)).unwrap();
            assert_eq!(canon(&text), text);
        }
    }
}

#[test]
fn random_doubles_round_trip_through_the_canonical_text() {
    let mut rng = StdRng::seed_from_u64(8785);
    let mut checked = 0;
    while checked < 20_000 {
        let x = f64::from_bits(rng.r#gen());
        if !x.is_finite() {
            continue;
        }
        let text = to_canonical_string(&json!(x)).unwrap();
        // Rust's parser is correctly rounded: the text must name exactly x (or 0 for -0).
        let back: f64 = text.parse().unwrap();
        let same = back.to_bits() == x.to_bits() || (x == 0.0 && back.to_bits() == 0);
        assert!(same, "{x:e} printed as {text}");
        // No more than 17 significant digits (shortest round-trip never needs more).
        let mantissa = text.split('e').next().unwrap();
        let digits = mantissa
            .trim_start_matches(['-', '0', '.'])
            .replace('.', "");
        assert!(digits.trim_end_matches('0').len() <= 17, "{text}");
        checked += 1;
    }
}

#[test]
fn string_escapes_follow_json_stringify() {
    // ECMA-262 QuoteJSONString: the short escapes, \u00xx (lowercase) for the other C0
    // controls, and everything else literal, including '/', DEL and U+2028.
    let cases = [
        ("\u{8}\t\n\u{c}\r", r#""\b\t\n\f\r""#),
        ("\u{0}", r#""\u0000""#),
        ("\u{b}", r#""\u000b""#),
        ("\u{1f}", r#""\u001f""#),
        ("\"\\", r#""\"\\""#),
        ("/", r#""/""#),
        ("\u{7f}", "\"\u{7f}\""),
        ("\u{2028}\u{2029}", "\"\u{2028}\u{2029}\""),
        ("é😀", "\"é😀\""),
    ];
    for (input, expected) in cases {
        assert_eq!(
            to_canonical_string(&json!(input)).unwrap(),
            expected,
            "{input:?}"
        );
    }
    for c in (0u32..0x20).filter_map(char::from_u32) {
        let s = format!("x{c}y");
        let out = to_canonical_string(&json!(s)).unwrap();
        assert!(!out.bytes().any(|b| b < 0x20), "raw control in {out:?}");
        assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s);
    }
}

#[test]
fn integers_outside_the_double_safe_range_are_rejected() {
    let max_safe = (1u64 << 53) - 1;
    assert_eq!(
        to_canonical_string(&json!(max_safe)).unwrap(),
        "9007199254740991"
    );
    assert_eq!(
        to_canonical_string(&json!(-(max_safe as i64))).unwrap(),
        "-9007199254740991"
    );
    // Integers a double holds exactly print as that double (ECMAScript digits).
    assert_eq!(
        to_canonical_string(&json!(max_safe + 1)).unwrap(),
        "9007199254740992"
    );
    assert_eq!(canon("9223372036854776000"), "9223372036854776000");
    assert_eq!(canon("-9223372036854776000"), "-9223372036854776000");
    for bad in [
        // 2^63 is a double, but it prints as 9223372036854776000: digits would change.
        json!(i64::MIN),
        json!(max_safe + 2),
        json!(-(max_safe as i64) - 2),
        json!(u64::MAX),
        json!({"nested": [1, 2, 9007199254740993u64]}),
    ] {
        assert_eq!(
            to_canonical_string(&bad),
            Err(CanonicalError::IntegerOutOfRange),
            "{bad}"
        );
    }
    // Parsed from text, an oversized integer is rejected as well.
    let parsed: Value = serde_json::from_str("[9007199254740993]").unwrap();
    assert_eq!(
        to_canonical_vec(&parsed),
        Err(CanonicalError::IntegerOutOfRange)
    );
}

#[test]
fn nesting_limit() {
    let nest = |depth: usize| {
        let mut v = json!(0);
        for _ in 0..depth {
            v = Value::Array(vec![v]);
        }
        v
    };
    let ok = to_canonical_string(&nest(128)).unwrap();
    assert_eq!(ok.len(), 128 * 2 + 1);
    assert_eq!(
        to_canonical_string(&nest(129)),
        Err(CanonicalError::TooDeep)
    );
}

#[test]
fn whitespace_and_literals() {
    assert_eq!(
        canon(" [ true , false , null , { } , [ ] , \"\" ] "),
        "[true,false,null,{},[],\"\"]"
    );
}

/// The full rule: `text` parses and canonicalises back to itself.
fn is_canonical_by_definition(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| to_canonical_string(&v).ok())
        .is_some_and(|c| c == text)
}

/// Characters that exercise escaping and UTF-16 ordering.
const CHARS: &[char] = &[
    'a',
    'b',
    'z',
    'A',
    '0',
    '9',
    '_',
    '-',
    ' ',
    '/',
    '"',
    '\\',
    '\u{0}',
    '\u{8}',
    '\t',
    '\n',
    '\u{b}',
    '\u{c}',
    '\r',
    '\u{1f}',
    '\u{7f}',
    '\u{80}',
    '\u{e9}',
    '\u{20ac}',
    '\u{e000}',
    '\u{fb33}',
    '\u{ffff}',
    '\u{10000}',
    '\u{1f600}',
];

fn random_string(rng: &mut StdRng) -> String {
    let len = rng.gen_range(0..8);
    (0..len)
        .map(|_| CHARS[rng.gen_range(0..CHARS.len())])
        .collect()
}

fn random_value(rng: &mut StdRng, depth: usize) -> Value {
    let pick = if depth >= 4 {
        rng.gen_range(0..6)
    } else {
        rng.gen_range(0..8)
    };
    match pick {
        0 => Value::Null,
        1 => Value::Bool(rng.r#gen()),
        2 => {
            // Integers around every boundary the scan cares about.
            let max = pdx_ledger::canonical::MAX_SAFE_INTEGER as i64;
            let n = match rng.gen_range(0..5) {
                0 => rng.gen_range(-10..10),
                1 => rng.gen_range(-max..=max),
                2 => max + rng.gen_range(-2..=2),
                3 => -max + rng.gen_range(-2..=2),
                _ => rng.r#gen::<i64>(),
            };
            json!(n)
        }
        3 => json!(rng.r#gen::<f64>() * 10f64.powi(rng.gen_range(-30..30))),
        4 | 5 => Value::String(random_string(rng)),
        6 => Value::Array(
            (0..rng.gen_range(0..4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.gen_range(0..5))
                .map(|_| (random_string(rng), random_value(rng, depth + 1)))
                .collect(),
        ),
    }
}

/// Text edits that usually break canonical form, some subtly.
fn mutate(rng: &mut StdRng, text: &str) -> String {
    let mut s = text.to_string();
    let at = |rng: &mut StdRng, s: &str| {
        let mut i = rng.gen_range(0..=s.len());
        while !s.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    match rng.gen_range(0..12) {
        0 => {
            let i = at(rng, &s);
            s.insert(i, ' ');
        }
        1 => {
            let i = at(rng, &s);
            s.insert(i, CHARS[rng.gen_range(0..CHARS.len())]);
        }
        2 => {
            let i = at(rng, &s);
            if let Some(c) = s[i..].chars().next() {
                s.replace_range(i..i + c.len_utf8(), "");
            }
        }
        3 => s = s.replacen("\\n", "\\u000a", 1),
        4 => s = s.replacen("\\u001f", "\\u001F", 1),
        5 => s = s.replacen('/', "\\/", 1),
        6 => s = s.replacen("a", "\\u0061", 1),
        7 => s = s.replacen(":0", ":-0", 1).replacen(":1", ":01", 1),
        8 => s = s.replacen(":1", ":1.0", 1).replacen(":2", ":2e0", 1),
        9 => s.push_str(&format!("{}", rng.gen_range(0..10))),
        10 => {
            // Duplicate the first member of an object.
            if let Some(i) = s.find('{')
                && let Some(j) = s[i..].find(',')
            {
                let member = s[i + 1..i + j].to_string();
                s.insert_str(i + 1, &format!("{member},"));
            }
        }
        _ => {
            // Two adjacent characters swapped.
            let i = at(rng, &s);
            let mut it = s[i..].chars();
            if let (Some(a), Some(b)) = (it.next(), it.next()) {
                s.replace_range(i..i + a.len_utf8() + b.len_utf8(), &format!("{b}{a}"));
            }
        }
    }
    s
}

/// The verifier's one-pass scan must never accept a text the full rule rejects, and must
/// accept the canonical text of every value without fractions, exponents, big integers
/// or escaped member names (the common case it exists for).
#[test]
fn quick_scan_agrees_with_the_canonicaliser() {
    use pdx_ledger::canonical::quick_canonical;
    let mut rng = StdRng::seed_from_u64(0x5ca1ab1e);
    let (mut accepted, mut mutants_accepted) = (0, 0);
    for _ in 0..20_000 {
        let value = random_value(&mut rng, 0);
        let Ok(text) = to_canonical_string(&value) else {
            continue;
        };
        assert!(is_canonical_by_definition(&text), "{text}");
        if quick_canonical(&text) {
            accepted += 1;
        } else {
            // Only the documented cases may be left to the full check.
            let simple = !text.contains('.')
                && !text.contains('e')
                && !text.contains("\\")
                && !text.contains('E');
            let small_ints = {
                fn ok(v: &Value) -> bool {
                    match v {
                        Value::Number(n) => n.as_i64().is_some_and(|i| {
                            i.unsigned_abs() <= pdx_ledger::canonical::MAX_SAFE_INTEGER
                        }),
                        Value::Array(a) => a.iter().all(ok),
                        Value::Object(o) => o.values().all(ok),
                        _ => true,
                    }
                }
                ok(&value)
            };
            assert!(
                !(simple && small_ints),
                "scan refused a plain canonical text: {text}"
            );
        }
        for _ in 0..3 {
            let m = mutate(&mut rng, &text);
            if quick_canonical(&m) {
                mutants_accepted += 1;
                assert!(
                    is_canonical_by_definition(&m),
                    "scan accepted a non-canonical text: {m:?} (from {text:?})"
                );
            }
        }
    }
    // The generator must actually reach both sides.
    assert!(accepted > 5_000, "{accepted}");
    assert!(mutants_accepted > 1_000, "{mutants_accepted}");
}

#[test]
fn quick_scan_edge_cases() {
    use pdx_ledger::canonical::quick_canonical;
    let yes = [
        "null",
        "0",
        "-1",
        "9007199254740991",
        "-9007199254740991",
        r#""""#,
        r#""\"\\\b\t\n\f\r\u0000\u001f/""#,
        "\"\u{7f}\u{1f600}\"",
        "[]",
        "{}",
        r#"{"":0,"a":[{}],"b":{"c":null}}"#,
        "{\"\u{1f600}\":1,\"\u{e000}\":2}",
    ];
    for text in yes {
        assert!(quick_canonical(text), "{text}");
        assert!(is_canonical_by_definition(text), "{text}");
    }
    let no = [
        "",
        " 0",
        "0 ",
        "-0",
        "01",
        "1.0",
        "1e3",
        "9007199254740992",
        "[1,]",
        "{\"b\":1,\"a\":2}",
        "{\"a\":1,\"a\":1}",
        "{\"\u{e000}\":1,\"\u{1f600}\":2}",
        r#""\u000a""#,
        r#""\u001F""#,
        r#""\/""#,
        "\"\u{1}\"",
        "[1]]",
        "nul",
    ];
    for text in no {
        assert!(!quick_canonical(text), "{text}");
    }
}
