//! RFC 8785 JSON Canonicalization Scheme (JCS): one byte string per JSON value.
//!
//! Ledger payloads are hashed, so two encoders must turn the same value into the same
//! bytes. JCS fixes that by reusing ECMAScript's `JSON.stringify` rules, which every
//! language can reproduce:
//!
//! - **No whitespace** between tokens.
//! - **Object members sorted by the UTF-16 code units of their names** (RFC 8785 §3.2.3),
//!   not by UTF-8 bytes or code points: a non-BMP character (a surrogate pair, 0xD800..)
//!   sorts *before* U+E000..U+FFFF, whereas its UTF-8 encoding (0xF0..) sorts after.
//! - **Strings** (§3.2.2.2): `"` and `\` escaped; U+0008, U+0009, U+000A, U+000C, U+000D
//!   as `\b \t \n \f \r`; other U+0000..U+001F as `\u00xx` in lowercase hex; everything
//!   else, including `/`, DEL and non-ASCII, as literal UTF-8.
//! - **Numbers** (§3.2.2.3) as ECMAScript `Number.prototype.toString` prints an IEEE 754
//!   double: the shortest digit string that round-trips, laid out as an integer, a
//!   decimal fraction, or `d.ddde±x` when the decimal exponent is >= 21 or <= -7; `-0`
//!   prints as `0`. NaN and infinities are not JSON and are rejected.
//!
//! Integers are a policy choice on top of RFC 8785: a JSON integer outside ±(2^53 - 1)
//! cannot survive a round trip through an IEEE double (every JavaScript and most JSON
//! stacks), so rather than silently hashing a rounded value we reject it; such values must
//! be sent as strings (RFC 8785 §6 / I-JSON RFC 7493 §2.2 give the same advice).
//!
//! The shortest round-trip digits come from Rust's `{:e}` formatting, which (like
//! ECMAScript) produces the shortest digit string that parses back to the same double,
//! choosing the closest one when several are equally short. The one difference is an
//! exact tie between two such strings, where ECMAScript takes the even one and Rust
//! rounds up; that case is detected and corrected. The digits are then laid out per
//! ECMAScript's rules.
//!
//! This module canonicalises a [`serde_json::Value`]; it cannot repair a number that was
//! mis-parsed before it got here. serde_json's default float parser is not correctly
//! rounded (it can be one ULP off, e.g. for `-1.25e25`); enable its `float_roundtrip`
//! feature wherever JSON text with fractional numbers is parsed and then canonicalised.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// The largest integer every IEEE double consumer reads back exactly: 2^53 - 1.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;
/// Nesting deeper than this is refused rather than risking the stack.
pub const MAX_DEPTH: usize = 128;

/// Why a value has no canonical form.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CanonicalError {
    /// NaN or an infinity (not representable in JSON).
    #[error("number is not finite")]
    NonFiniteNumber,
    /// A large integer whose digits are not the canonical text of a double
    /// (e.g. 2^53 + 1): send it as a string.
    #[error("integer is not the canonical text of a double; send it as a string")]
    IntegerOutOfRange,
    /// Arrays and objects nested more than [`MAX_DEPTH`] deep.
    #[error("JSON nesting deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// RFC 8785 bytes of a JSON value.
pub fn to_canonical_vec(value: &serde_json::Value) -> Result<Vec<u8>, CanonicalError> {
    to_canonical_string(value).map(String::into_bytes)
}

/// RFC 8785 text of a JSON value.
pub fn to_canonical_string(value: &serde_json::Value) -> Result<String, CanonicalError> {
    let mut out = String::new();
    write_value(&mut out, value, 0)?;
    Ok(out)
}

fn write_value(out: &mut String, value: &Value, depth: usize) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            let depth = enter(depth)?;
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(out, item, depth)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            let depth = enter(depth)?;
            write_object(out, map, depth)?;
        }
    }
    Ok(())
}

fn enter(depth: usize) -> Result<usize, CanonicalError> {
    if depth >= MAX_DEPTH {
        Err(CanonicalError::TooDeep)
    } else {
        Ok(depth + 1)
    }
}

fn write_object(
    out: &mut String,
    map: &Map<String, Value>,
    depth: usize,
) -> Result<(), CanonicalError> {
    // RFC 8785 §3.2.3: compare names as arrays of UTF-16 code units.
    let mut members: Vec<(Vec<u16>, &String, &Value)> = map
        .iter()
        .map(|(k, v)| (k.encode_utf16().collect(), k, v))
        .collect();
    members.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out.push('{');
    for (i, (_, key, val)) in members.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, key);
        out.push(':');
        write_value(out, val, depth)?;
    }
    out.push('}');
    Ok(())
}

/// ECMAScript QuoteJSONString (RFC 8785 §3.2.2.2).
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if c < ' ' => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// RFC 8785 numbers are IEEE doubles. A large integer is canonical only if its own
// decimal text is what the nearest double prints (ECMAScript rules): then canonical text
// is stable when re-parsed (serde_json reads such digits back as an integer) and no
// accepted value ever changes its digits. Anything else must travel as a string.
fn write_large_integer(
    out: &mut String,
    digits: String,
    nearest: f64,
) -> Result<(), CanonicalError> {
    let mut printed = String::new();
    write_f64(&mut printed, nearest)?;
    if printed != digits {
        return Err(CanonicalError::IntegerOutOfRange);
    }
    out.push_str(&printed);
    Ok(())
}

fn write_number(out: &mut String, n: &Number) -> Result<(), CanonicalError> {
    if let Some(u) = n.as_u64() {
        if u <= MAX_SAFE_INTEGER {
            // |u| < 2^53 < 10^21, so ECMAScript prints it as a plain integer.
            let _ = write!(out, "{u}");
            return Ok(());
        }
        return write_large_integer(out, u.to_string(), u as f64);
    }
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= MAX_SAFE_INTEGER {
            let _ = write!(out, "{i}");
            return Ok(());
        }
        return write_large_integer(out, i.to_string(), i as f64);
    }
    match n.as_f64() {
        Some(x) => write_f64(out, x),
        None => Err(CanonicalError::NonFiniteNumber),
    }
}

/// ECMAScript Number::toString(x) for a double (ECMA-262 §6.1.6.1.20), as RFC 8785
/// §3.2.2.3 requires.
fn write_f64(out: &mut String, x: f64) -> Result<(), CanonicalError> {
    if !x.is_finite() {
        return Err(CanonicalError::NonFiniteNumber);
    }
    // Step 2: +0 and -0 both print "0".
    if x == 0.0 {
        out.push('0');
        return Ok(());
    }
    // Step 3: negative numbers are "-" followed by the magnitude.
    if x < 0.0 {
        out.push('-');
    }
    // Step 5: x = s × 10^(n-k) with s having k digits, k as small as possible.
    let (digits, exp) = shortest_digits(x.abs());
    let k = digits.len() as i32;
    let n = exp + 1;
    if k <= n && n <= 21 {
        // Step 6: integer: the digits then n - k zeros.
        out.push_str(&digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        // Step 7: the decimal point falls inside the digits.
        let (int_part, frac_part) = digits.split_at_checked(n as usize).unwrap_or((&digits, ""));
        out.push_str(int_part);
        out.push('.');
        out.push_str(frac_part);
    } else if -6 < n && n <= 0 {
        // Step 8: "0." then -n zeros then the digits.
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(&digits);
    } else {
        // Steps 9-10: exponential, "e+" or "e-" always signed.
        let Some((first, rest)) = digits.split_at_checked(1) else {
            // `{:e}` of a finite non-zero double always has a digit.
            return Err(CanonicalError::NonFiniteNumber);
        };
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let e = n - 1;
        let sign = if e < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{}", e.unsigned_abs());
    }
    Ok(())
}

/// Shortest round-trip digits of a positive finite double and the exponent of the first
/// digit (`x ≈ d.ddd × 10^exp`), chosen as ECMA-262 Number::toString step 5 requires.
///
/// Rust's `{:e}` yields the shortest digits that round-trip, and the closest such when
/// several exist, so only exact ties need fixing (see [`even_tie`]).
fn shortest_digits(x: f64) -> (String, i32) {
    let (digits, exp) = scientific_digits(&format!("{x:e}"));
    match even_tie(x, &digits, exp) {
        Some(even) => (even, exp),
        None => (digits, exp),
    }
}

/// Splits Rust's `d.ddde±x` output into its digits and exponent.
fn scientific_digits(sci: &str) -> (String, i32) {
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let digits = mantissa.chars().filter(char::is_ascii_digit).collect();
    (digits, exp.parse().unwrap_or(0))
}

/// The even neighbour of `digits` when `x` lies exactly halfway between the two.
///
/// ECMA-262 breaks such ties towards the even digit string; Rust's shortest formatting
/// rounds them up. RFC 8785 Appendix B has one: 0x43143ff3c1cb0959 is exactly
/// 1424953923781206.25, which must print as `1424953923781206.2` where `{:e}` gives
/// `...206.3`. A tie needs the neighbour to round-trip too, which is rare, so the exact
/// (long) expansion of `x` is only computed then.
fn even_tie(x: f64, digits: &str, exp: i32) -> Option<String> {
    let last = digits.bytes().last()?;
    if (last - b'0').is_multiple_of(2) {
        return None;
    }
    // At most 17 digits, so this fits in u64.
    let d: u64 = digits.parse().ok()?;
    for c in [d.checked_sub(1)?, d.checked_add(1)?] {
        let candidate = c.to_string();
        if candidate.len() != digits.len() {
            continue;
        }
        let (head, tail) = candidate.split_at_checked(1)?;
        if format!("{head}.{tail}0e{exp}").parse::<f64>().ok() != Some(x) {
            continue;
        }
        // Equally close means x is exactly the midpoint: the lower string followed by 5.
        let midpoint = format!("{}5", c.min(d));
        if exact_digits(x) == (midpoint, exp) {
            return Some(candidate);
        }
    }
    None
}

/// The exact decimal expansion of `x`, trailing zeros removed. A double has at most 767
/// significant decimal digits, so 800 digits of precision are exact.
fn exact_digits(x: f64) -> (String, i32) {
    let (digits, exp) = scientific_digits(&format!("{x:.800e}"));
    (digits.trim_end_matches('0').to_string(), exp)
}
