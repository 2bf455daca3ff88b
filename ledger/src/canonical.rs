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
//! A verifier must also check that stored payload text *is* canonical. The definition is
//! "parses, and canonicalises back to the same text"; [`quick_canonical`] decides the
//! common case of that in one pass without building a value, and defers everything else
//! to the definition.
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
    // Room for a typical ledger payload, so the text is not regrown several times.
    let mut out = String::with_capacity(256);
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
    // RFC 8785 §3.2.3: compare names as arrays of UTF-16 code units. The comparison
    // walks both names' code units lazily, so sorting allocates nothing per name.
    let mut members: Vec<(&String, &Value)> = map.iter().collect();
    members.sort_unstable_by(|a, b| utf16_cmp(a.0, b.0));
    out.push('{');
    for (i, (key, val)) in members.into_iter().enumerate() {
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

/// Orders two strings by their UTF-16 code units (RFC 8785 §3.2.3).
///
/// UTF-8 byte order is code point order, which agrees with UTF-16 order except between
/// a supplementary character (surrogate pair) and U+E000..U+FFFF. So where the strings
/// first differ in an ASCII byte on both sides (the common case) the bytes decide;
/// otherwise their UTF-16 code units are compared one by one.
#[inline]
fn utf16_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).position(|(p, q)| p != q) {
        // One is a prefix of the other. Both end on a char boundary, so the shorter is a
        // prefix in UTF-16 as well.
        None => x.len().cmp(&y.len()),
        Some(i) => match (x.get(i), y.get(i)) {
            // Bytes before i are equal and ASCII bytes are whole characters, so both
            // strings have a character boundary at i and these are the next code units.
            (Some(&p), Some(&q)) if p < 0x80 && q < 0x80 => p.cmp(&q),
            _ => a.encode_utf16().cmp(b.encode_utf16()),
        },
    }
}

/// The escape ECMAScript QuoteJSONString uses for a byte, if it needs one (RFC 8785
/// §3.2.2.2): `"` and `\`, the five short control escapes, other controls as `\u00xx`.
/// Every other character, including `/`, DEL and all non-ASCII, is written as is.
fn escape_of(b: u8) -> Option<&'static str> {
    const CONTROL: [&str; 32] = [
        "\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006", "\\u0007",
        "\\b", "\\t", "\\n", "\\u000b", "\\f", "\\r", "\\u000e", "\\u000f", "\\u0010", "\\u0011",
        "\\u0012", "\\u0013", "\\u0014", "\\u0015", "\\u0016", "\\u0017", "\\u0018", "\\u0019",
        "\\u001a", "\\u001b", "\\u001c", "\\u001d", "\\u001e", "\\u001f",
    ];
    match b {
        b'"' => Some("\\\""),
        b'\\' => Some("\\\\"),
        0..=0x1f => CONTROL.get(usize::from(b)).copied(),
        _ => None,
    }
}

/// ECMAScript QuoteJSONString (RFC 8785 §3.2.2.2), see [`escape_of`].
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    // Copy runs of characters that need no escape in one go. Every byte that needs an
    // escape is ASCII, so run boundaries always fall on character boundaries.
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        if let Some(esc) = escape_of(b) {
            out.push_str(s.get(start..i).unwrap_or_default());
            out.push_str(esc);
            start = i + 1;
        }
    }
    out.push_str(s.get(start..).unwrap_or_default());
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

/// Nesting the quick scan follows before it leaves a text to the full check (well below
/// [`MAX_DEPTH`] and serde_json's own limit of 128).
const SCAN_MAX_DEPTH: usize = 64;

/// True only if `text` is certainly the RFC 8785 form of the JSON value it encodes, i.e.
/// `serde_json::from_str` accepts it and [`to_canonical_string`] of the result gives
/// `text` back; decided in one pass, without building the value.
///
/// A verifier checks every stored payload this way, so it is the common case made cheap;
/// it is not a second definition of canonical form. It accepts a text only when every
/// token is one the canonicaliser itself writes and re-parsing cannot change:
///
/// - no whitespace; `null`, `true`, `false`;
/// - strings whose characters are literal except exactly the escapes of
///   the string writer above (`\"`, `\\`, `\b \t \n \f \r`, other controls as `\u00xx` in
///   lowercase hex), and no raw control characters;
/// - integers without sign-zero or leading zeros, within ±(2^53 - 1), which serde_json
///   reads as u64/i64 and the canonicaliser prints back digit for digit;
/// - object names without escapes, in strictly increasing UTF-16 order (so no
///   duplicates, which serde_json would silently merge);
/// - nesting at most 64 deep, and nothing after the value.
///
/// Anything else returns false, including some canonical texts (fractions, exponents,
/// integers beyond 2^53 - 1, names with escapes, deep nesting): those must go through
/// the full parse-and-canonicalise check, which decides them exactly. `false` is never
/// evidence of tampering on its own.
pub fn quick_canonical(text: &str) -> bool {
    let mut scan = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    scan.value(0) && scan.pos == scan.bytes.len()
}

/// Bytes that end a run of literal string characters: the quote, the backslash and the
/// raw controls (which JSON forbids inside strings).
static STRING_STOP: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// The cursor of [`quick_canonical`]. Every method returns false (or None) as soon as
/// the text leaves the recognised subset; `pos` is then meaningless.
struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    #[inline]
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        if self.bytes.get(self.pos..self.pos + word.len()) == Some(word) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> bool {
        match self.peek() {
            Some(b'{') => depth < SCAN_MAX_DEPTH && self.object(depth + 1),
            Some(b'[') => depth < SCAN_MAX_DEPTH && self.array(depth + 1),
            Some(b'"') => self.string().is_some(),
            Some(b'n') => self.literal(b"null"),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'-' | b'0'..=b'9') => self.integer(),
            _ => false,
        }
    }

    fn array(&mut self, depth: usize) -> bool {
        self.pos += 1; // '['
        if self.eat(b']') {
            return true;
        }
        loop {
            if !self.value(depth) {
                return false;
            }
            if self.eat(b']') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    fn object(&mut self, depth: usize) -> bool {
        self.pos += 1; // '{'
        if self.eat(b'}') {
            return true;
        }
        let mut previous: Option<&'a str> = None;
        loop {
            if self.peek() != Some(b'"') {
                return false;
            }
            // A name with an escape would have to be decoded before it could be
            // ordered; such names are left to the full check.
            let Some((start, end, false)) = self.string() else {
                return false;
            };
            // The name lies between two quotes, so it is on char boundaries; `get`
            // checks that rather than assuming it.
            let Some(name) = self.text.get(start..end) else {
                return false;
            };
            if previous.is_some_and(|prev| utf16_cmp(prev, name) != std::cmp::Ordering::Less) {
                return false;
            }
            previous = Some(name);
            if !self.eat(b':') || !self.value(depth) {
                return false;
            }
            if self.eat(b'}') {
                return true;
            }
            if !self.eat(b',') {
                return false;
            }
        }
    }

    /// A string token in canonical escaping; returns where its contents (between the
    /// quotes) start and end, and whether they contain an escape.
    #[inline]
    fn string(&mut self) -> Option<(usize, usize, bool)> {
        self.pos += 1; // '"'
        let start = self.pos;
        let mut escaped = false;
        loop {
            // Skip a run of literal characters: everything but STRING_STOP bytes stands
            // for itself (multi-byte UTF-8 sequences never contain those bytes).
            while let Some(&b) = self.bytes.get(self.pos) {
                if STRING_STOP[usize::from(b)] {
                    break;
                }
                self.pos += 1;
            }
            match self.peek()? {
                b'"' => {
                    let end = self.pos;
                    self.pos += 1;
                    return Some((start, end, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.pos += 1;
                    match self.peek()? {
                        b'"' | b'\\' | b'b' | b't' | b'n' | b'f' | b'r' => self.pos += 1,
                        b'u' => {
                            let hex = self.bytes.get(self.pos + 1..self.pos + 5)?;
                            let code = canonical_control_escape(hex)?;
                            // The five controls with short escapes never use \u.
                            if matches!(code, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                                return None;
                            }
                            self.pos += 5;
                        }
                        _ => return None,
                    }
                }
                // Raw control characters are not JSON (serde_json rejects them).
                _ => return None,
            }
        }
    }

    /// An integer in ±(2^53 - 1) written as the canonicaliser writes it.
    fn integer(&mut self) -> bool {
        let negative = self.eat(b'-');
        let start = self.pos;
        let mut value = 0u64;
        while let Some(d @ b'0'..=b'9') = self.peek() {
            // 2^53 - 1 has 16 digits; longer integers go to the full check (and the
            // bound keeps `value` far from overflow).
            if self.pos - start == 16 {
                return false;
            }
            value = value * 10 + u64::from(d - b'0');
            self.pos += 1;
        }
        let digits = self.pos - start;
        // Fractions and exponents go to the full check too.
        if digits == 0 || matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return false;
        }
        if self.bytes.get(start) == Some(&b'0') {
            // "0" only: no leading zeros, and "-0" (a double, printed "0") is not canonical.
            return digits == 1 && !negative;
        }
        value <= MAX_SAFE_INTEGER
    }
}

/// The code of a canonical `\u00xx` escape's four hex digits (`00` then two lowercase
/// hex digits below 0x20), or None.
fn canonical_control_escape(hex: &[u8]) -> Option<u8> {
    let [b'0', b'0', hi @ (b'0' | b'1'), lo] = *hex else {
        return None;
    };
    let lo = match lo {
        b'0'..=b'9' => lo - b'0',
        b'a'..=b'f' => lo - b'a' + 10,
        _ => return None,
    };
    Some((hi - b'0') * 16 + lo)
}
