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
//! sorts either. Integers beyond the 64-bit range are a known limit: serde_json (without
//! `arbitrary_precision`) reads them as floats, so they come back in float form.

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

    pub(crate) fn number(&mut self, n: &Number) {
        self.separate();
        if let Some(i) = n.as_u64() {
            let _ = write!(self.out, "{i}");
        } else if let Some(i) = n.as_i64() {
            let _ = write!(self.out, "{i}");
        } else if let Some(digits) = integer_literal(n) {
            // Beyond 64 bits: Python keeps integers exact, and so do we (serde_json keeps the literal).
            self.out.push_str(&digits);
        } else {
            // A Number built by serde_json is always finite.
            push_float(&mut self.out, n.as_f64().unwrap_or(0.0));
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

/// The digits of an integer too large for 64 bits, as read (serde_json's `arbitrary_precision` keeps them).
fn integer_literal(n: &Number) -> Option<String> {
    let text = n.to_string();
    let digits = text.strip_prefix('-').unwrap_or(&text);
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then_some(text)
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
