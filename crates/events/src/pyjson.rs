//! A JSON writer that produces exactly what Python's `json.dumps` produces with its defaults (Rasa's broker
//! bodies and SQL `data` column), plus a compact UTF-8 form for our own files.
//!
//! Rasa style ([`Style::Rasa`]): separators `", "` and `": "`; every character outside printable ASCII
//! (`0x20..=0x7e`) escaped as `\uXXXX` with lowercase hex, astral characters as a UTF-16 surrogate pair;
//! `\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f` as short escapes; floats in Python's `repr` form (`1.0`, `1e-05`,
//! `1e+16`, `0.1`, `1.5e+300`, `-0.0`); integers as integers. Compact style ([`Style::Compact`]): no spaces,
//! UTF-8 text, only `"`, `\` and control characters escaped (Python's `ensure_ascii=False`), same numbers.
//!
//! Keys are written in the order the value holds them (serde_json's `preserve_order` is on): Python never
//! sorts either.
//!
//! Numbers are written as `json.dumps(json.loads(literal))` writes them (serde_json's `arbitrary_precision`
//! keeps each literal as read, so nothing is lost before we decide):
//! - a literal without fraction or exponent is a Python `int`: written exactly, of any size
//!   (`12345678901234567890123` stays so), `-0` as `0`;
//! - any other literal is a Python `float`: written as its `repr` (`1E5` → `100000.0`, `1.0e-7` →
//!   `1e-07`, `0.60` → `0.6`, `-0.0` → `-0.0`, `1e-400` → `0.0`).
//!
//! What Python would not write back as JSON is refused when read (`check_number`, applied by every reader
//! of this crate to every number, typed field or not): a float literal beyond the double range (`1e400`,
//! which Python reads as infinity and writes as the non-JSON `Infinity`) and an integer of more than
//! 4300 digits (Python's `int_max_str_digits` limit: `json.loads` refuses it).

use std::fmt::Write as _;

use serde_json::{Number, Value};

use crate::error::{Error, Result};

/// Which dialect of JSON to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Style {
    /// Byte-identical to Python's `json.dumps(obj)` (what Rasa publishes and stores).
    Rasa,
    /// No spaces, UTF-8 text.
    Compact,
}

/// Writes any JSON value in the given style.
///
/// ```
/// use colloquy_events::pyjson::{to_string, Style};
/// let v = serde_json::json!({"text": "héllo 👋", "n": 1, "x": 1.0, "tiny": 0.00001});
/// assert_eq!(
///     to_string(&v, Style::Rasa),
///     r#"{"text": "h\u00e9llo \ud83d\udc4b", "n": 1, "x": 1.0, "tiny": 1e-05}"#
/// );
/// assert_eq!(to_string(&v, Style::Compact), r#"{"text":"héllo 👋","n":1,"x":1.0,"tiny":1e-05}"#);
/// ```
pub fn to_string(value: &Value, style: Style) -> String {
    let mut w = Writer::new(style);
    w.value(value);
    w.finish()
}

/// Python's `repr(float)` of `value`, or an error for infinities and NaN (`json.dumps` would write the
/// non-JSON tokens `Infinity`/`NaN`; we refuse instead).
///
/// ```
/// use colloquy_events::pyjson::float_repr;
/// assert_eq!(float_repr(1e16).unwrap(), "1e+16");
/// assert_eq!(float_repr(1e15).unwrap(), "1000000000000000.0");
/// assert!(float_repr(f64::NAN).is_err());
/// ```
pub fn float_repr(value: f64) -> Result<String> {
    if !value.is_finite() {
        return Err(Error::NonFiniteNumber {
            path: "$".into(),
            value,
        });
    }
    let mut out = String::new();
    push_float(&mut out, value);
    Ok(out)
}

/// Python's limit on the digits of an integer it converts from or to text (`sys.int_info.default_max_str_digits`).
const MAX_INT_DIGITS: usize = 4300;

/// Whether a JSON number literal is an integer for Python (no fraction, no exponent).
fn is_integer_literal(text: &str) -> bool {
    !text.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
}

/// Whether Python's `json.dumps(json.loads(..))` writes the number `n` back as JSON; `path` locates it in
/// errors. Floats beyond the double range are [`Error::NonFiniteNumber`]; integers of more than 4300 digits
/// are [`Error::IntegerTooLong`].
pub(crate) fn check_number(n: &Number, path: crate::record::Path<'_>) -> Result<()> {
    let text = n.as_str();
    if is_integer_literal(text) {
        let digits = text.strip_prefix('-').unwrap_or(text).len();
        if digits > MAX_INT_DIGITS {
            return Err(Error::IntegerTooLong {
                path: path.to_string(),
                digits,
            });
        }
        return Ok(());
    }
    // Without an exponent, fewer than 309 characters cannot reach `f64::MAX` (about 1.8e308): no need to parse.
    if text.len() < 309 && !text.bytes().any(|b| matches!(b, b'e' | b'E')) {
        return Ok(());
    }
    match text.parse::<f64>() {
        Ok(value) if value.is_finite() => Ok(()),
        Ok(value) => Err(Error::NonFiniteNumber {
            path: path.to_string(),
            value,
        }),
        Err(_) => Err(Error::NonFiniteNumber {
            path: path.to_string(),
            value: f64::NAN,
        }),
    }
}

/// Appends Python's `repr` of a finite float.
fn push_float(out: &mut String, value: f64) {
    let mut buf = ryu::Buffer::new();
    let text = buf.format_finite(value);
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (text, 0),
    };
    // Collect the significant digits and the decimal point position: value = 0.DIGITS × 10^point.
    let mut digits = [0u8; 40];
    let mut len = 0usize;
    let mut point = exponent;
    let mut before_dot = true;
    let mut leading = true;
    for b in mantissa.bytes() {
        if b == b'.' {
            before_dot = false;
            continue;
        }
        if leading && b == b'0' {
            if !before_dot {
                point -= 1;
            }
            continue;
        }
        leading = false;
        if before_dot {
            point += 1;
        }
        if len < digits.len() {
            digits[len] = b;
            len += 1;
        }
    }
    while len > 0 && digits[len - 1] == b'0' {
        len -= 1;
    }
    if negative {
        out.push('-');
    }
    if len == 0 {
        out.push_str("0.0");
        return;
    }
    let digits = &digits[..len];
    if point <= -4 || point > 16 {
        out.push(digits[0] as char);
        if len > 1 {
            out.push('.');
            out.push_str(ascii_digits(&digits[1..]));
        }
        let e = point - 1;
        let _ = write!(
            out,
            "e{}{:02}",
            if e < 0 { '-' } else { '+' },
            e.unsigned_abs()
        );
    } else if point <= 0 {
        out.push_str("0.");
        for _ in 0..-point {
            out.push('0');
        }
        out.push_str(ascii_digits(digits));
    } else {
        let point = point as usize;
        if point >= len {
            out.push_str(ascii_digits(digits));
            for _ in len..point {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(ascii_digits(&digits[..point]));
            out.push('.');
            out.push_str(ascii_digits(&digits[point..]));
        }
    }
}

fn ascii_digits(digits: &[u8]) -> &str {
    std::str::from_utf8(digits).unwrap_or_default()
}

/// A streaming writer; the typed event model writes through it without building a `Value`.
pub(crate) struct Writer {
    out: String,
    style: Style,
    needs_comma: bool,
}

impl Writer {
    pub(crate) fn new(style: Style) -> Self {
        Self {
            out: String::with_capacity(256),
            style,
            needs_comma: false,
        }
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }

    /// The style being written.
    pub(crate) fn style(&self) -> Style {
        self.style
    }

    fn separate(&mut self) {
        if self.needs_comma {
            self.out.push_str(match self.style {
                Style::Rasa => ", ",
                Style::Compact => ",",
            });
        }
    }

    pub(crate) fn begin_object(&mut self) {
        self.separate();
        self.out.push('{');
        self.needs_comma = false;
    }

    pub(crate) fn end_object(&mut self) {
        self.out.push('}');
        self.needs_comma = true;
    }

    pub(crate) fn begin_array(&mut self) {
        self.separate();
        self.out.push('[');
        self.needs_comma = false;
    }

    pub(crate) fn end_array(&mut self) {
        self.out.push(']');
        self.needs_comma = true;
    }

    pub(crate) fn key(&mut self, key: &str) {
        self.separate();
        self.push_string(key);
        self.out.push_str(match self.style {
            Style::Rasa => ": ",
            Style::Compact => ":",
        });
        self.needs_comma = false;
    }

    pub(crate) fn null(&mut self) {
        self.separate();
        self.out.push_str("null");
        self.needs_comma = true;
    }

    pub(crate) fn bool(&mut self, b: bool) {
        self.separate();
        self.out.push_str(if b { "true" } else { "false" });
        self.needs_comma = true;
    }

    pub(crate) fn str(&mut self, s: &str) {
        self.separate();
        self.push_string(s);
        self.needs_comma = true;
    }

    pub(crate) fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.null(),
        }
    }

    /// Writes a number as Python writes what `json.loads` made of it (see the module doc).
    pub(crate) fn number(&mut self, n: &Number) {
        self.separate();
        let text = n.as_str();
        if is_integer_literal(text) {
            // Python's `int`: exact, and `-0` is 0.
            self.out.push_str(if text == "-0" { "0" } else { text });
        } else {
            match text.parse::<f64>() {
                Ok(value) if value.is_finite() => push_float(&mut self.out, value),
                // Only a number built in code past the readers' check (`1e400`): Python would write the
                // non-JSON `Infinity`; we keep the literal, which is JSON.
                _ => self.out.push_str(text),
            }
        }
        self.needs_comma = true;
    }

    pub(crate) fn opt_number(&mut self, n: Option<&Number>) {
        match n {
            Some(n) => self.number(n),
            None => self.null(),
        }
    }

    pub(crate) fn value(&mut self, value: &Value) {
        match value {
            Value::Null => self.null(),
            Value::Bool(b) => self.bool(*b),
            Value::Number(n) => self.number(n),
            Value::String(s) => self.str(s),
            Value::Array(items) => {
                self.begin_array();
                for item in items {
                    self.value(item);
                }
                self.end_array();
            }
            Value::Object(map) => self.map(map),
        }
    }

    pub(crate) fn map(&mut self, map: &serde_json::Map<String, Value>) {
        self.begin_object();
        for (k, v) in map {
            self.key(k);
            self.value(v);
        }
        self.end_object();
    }

    fn push_string(&mut self, s: &str) {
        let ascii_only = self.style == Style::Rasa;
        let out = &mut self.out;
        out.push('"');
        let bytes = s.as_bytes();
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let plain = (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\';
            if plain || (b >= 0x7f && !ascii_only) {
                i += 1;
                continue;
            }
            out.push_str(&s[start..i]);
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                0x08 => out.push_str("\\b"),
                0x0c => out.push_str("\\f"),
                0x00..=0x7f => {
                    let _ = write!(out, "\\u{b:04x}");
                }
                _ => {
                    // Only reached in Rasa style: escape the whole character.
                    let c = s[i..].chars().next().unwrap_or('\u{fffd}');
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        let _ = write!(out, "\\u{unit:04x}");
                    }
                    i += c.len_utf8();
                    start = i;
                    continue;
                }
            }
            i += 1;
            start = i;
        }
        out.push_str(&s[start..]);
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_match_python_repr() {
        let cases: &[(f64, &str)] = &[
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (1e-5, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (1.5e300, "1.5e+300"),
            (1700000000.25, "1700000000.25"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-2.5e-7, "-2.5e-07"),
            (0.94, "0.94"),
            (100.0, "100.0"),
            (1234.5678, "1234.5678"),
            (9999999999999998.0, "9999999999999998.0"),
        ];
        for &(f, want) in cases {
            assert_eq!(float_repr(f).unwrap(), want, "{f:e}");
        }
        assert!(float_repr(f64::INFINITY).is_err());
        assert!(float_repr(f64::NEG_INFINITY).is_err());
    }

    /// `python3 -c 'import json; print(json.dumps(json.loads(LITERAL)))'` for each literal (CPython 3.11).
    #[test]
    fn numbers_match_cpython() {
        let big = format!("-{}", "9".repeat(4300));
        let cases: &[(&str, &str)] = &[
            ("-0", "0"),
            ("0", "0"),
            ("-0.0", "-0.0"),
            ("-0e0", "-0.0"),
            ("1E5", "100000.0"),
            ("1e5", "100000.0"),
            ("1.0e-7", "1e-07"),
            ("1e-400", "0.0"),
            ("0.60", "0.6"),
            ("1e16", "1e+16"),
            ("1.5E+300", "1.5e+300"),
            ("2.50", "2.5"),
            ("12345678901234567890123", "12345678901234567890123"),
            ("-9223372036854775809", "-9223372036854775809"),
            ("18446744073709551616", "18446744073709551616"),
            ("1700000000", "1700000000"),
            (&big, &big),
        ];
        for &(literal, python) in cases {
            let n: Number = serde_json::from_str(literal).unwrap();
            assert!(
                check_number(&n, crate::record::Path::Root).is_ok(),
                "{literal}"
            );
            assert_eq!(
                to_string(&Value::Number(n), Style::Rasa),
                python,
                "{literal}"
            );
        }
    }

    /// What Python writes as `Infinity` (not JSON) or cannot convert at all is refused, with its path.
    #[test]
    fn numbers_python_cannot_write_are_refused() {
        let root = crate::record::Path::Root;
        for literal in ["1e400", "-1e400", "1.5E309"] {
            let n: Number = serde_json::from_str(literal).unwrap();
            let error = check_number(&n, root.key("value")).unwrap_err();
            assert!(
                matches!(&error, Error::NonFiniteNumber { path, value } if path == "$.value" && value.is_infinite()),
                "{literal}: {error:?}"
            );
        }
        let n: Number = serde_json::from_str(&"1".repeat(4301)).unwrap();
        assert_eq!(
            check_number(&n, root.index(3)),
            Err(Error::IntegerTooLong {
                path: "$[3]".into(),
                digits: 4301
            })
        );
    }

    #[test]
    fn strings_match_python_ensure_ascii() {
        let v = Value::String("a\"b\\c\n\t\u{8}\u{c}\r\u{1}\u{7f}é€😀".into());
        assert_eq!(
            to_string(&v, Style::Rasa),
            r#""a\"b\\c\n\t\b\f\r\u0001\u007f\u00e9\u20ac\ud83d\ude00""#
        );
        assert_eq!(
            to_string(&v, Style::Compact),
            "\"a\\\"b\\\\c\\n\\t\\b\\f\\r\\u0001\u{7f}é€😀\""
        );
    }

    #[test]
    fn separators() {
        let v = serde_json::json!({"a": [1, {"b": null}], "c": {}, "d": []});
        assert_eq!(
            to_string(&v, Style::Rasa),
            r#"{"a": [1, {"b": null}], "c": {}, "d": []}"#
        );
        assert_eq!(
            to_string(&v, Style::Compact),
            r#"{"a":[1,{"b":null}],"c":{},"d":[]}"#
        );
    }
}
