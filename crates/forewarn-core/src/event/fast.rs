//! The fast path of the decoder: a hand-written scanner for the common event shape
//! (strings without escapes, no nested values in unknown fields). It only ever
//! accepts: anything unusual or invalid returns `None`, and [`super::decode`] falls
//! back to the serde path, which is the one place rejections are explained. A
//! property test checks that whenever this path accepts, the serde path produces
//! the identical event.

use std::borrow::Cow;

use super::{
    check_number, has_control, Category, Event, Kind, Labels, Outcome, MAX_LABEL_NAME_LEN,
    MAX_LABEL_VALUE_LEN, MAX_SERVICE_LEN,
};
use crate::time::{parse_rfc3339, MAX_MILLIS};

struct Scan<'a> {
    /// The whole message, validated as UTF-8 once so that slicing at the ASCII
    /// delimiters below yields `&str` without per-string validation.
    text: &'a str,
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// A string with no escapes and no control characters, as valid UTF-8.
    #[inline]
    fn string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        self.i = string_end(self.b, start)?;
        let s = self.text.get(start..self.i)?;
        self.i += 1;
        Some(s)
    }

    /// A JSON number, read the way serde_json reads it: non-negative integers as
    /// u64, negative ones as i64, anything else as a correctly rounded f64.
    #[inline]
    fn number(&mut self) -> Option<f64> {
        let start = self.i;
        let neg = self.eat(b'-').is_some();
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => {
                while let Some(b'0'..=b'9') = self.peek() {
                    self.i += 1;
                }
            }
            _ => return None,
        }
        let int_end = self.i;
        let mut float = false;
        if self.eat(b'.').is_some() {
            float = true;
            let d = self.i;
            while let Some(b'0'..=b'9') = self.peek() {
                self.i += 1;
            }
            if self.i == d {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            float = true;
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            let d = self.i;
            while let Some(b'0'..=b'9') = self.peek() {
                self.i += 1;
            }
            if self.i == d {
                return None;
            }
        }
        if float {
            let body = &self.b[start + usize::from(neg)..self.i];
            if let Some(v) = short_decimal(body) {
                return Some(if neg { -v } else { v });
            }
            let v: f64 = self.text.get(start..self.i)?.parse().ok()?;
            return v.is_finite().then_some(v);
        }
        let digits = &self.b[start + usize::from(neg)..int_end];
        if digits.len() > 18 {
            return None; // may overflow; leave the edge cases to serde_json
        }
        let n = digits
            .iter()
            .fold(0i64, |acc, c| acc * 10 + i64::from(c - b'0'));
        Some(if neg { -n } else { n } as f64)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        (self.b.get(self.i..self.i + word.len())? == word).then(|| self.i += word.len())
    }

    /// Skips an unknown field's value; nested objects and arrays are left to serde.
    fn skip_scalar(&mut self) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(drop),
        }
    }

    fn bool(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => None,
        }
    }

    fn labels(&mut self, out: &mut Labels<'a>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.eat(b'}').is_some() {
            return Some(());
        }
        loop {
            self.ws();
            let k = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let v = self.string()?;
            if k.is_empty()
                || k.len() > MAX_LABEL_NAME_LEN
                || v.len() > MAX_LABEL_VALUE_LEN
                || has_control(k)
                || has_control(v)
                || out.get(k).is_some()
            {
                return None;
            }
            if !out.push(Cow::Borrowed(k), Cow::Borrowed(v)) {
                return None;
            }
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

/// A decimal `digits.digits` (no exponent) of at most 15 significant digits,
/// exactly: the digits form an integer below 2^53 and the power of ten is exact,
/// so one IEEE division rounds correctly, as a full parser would (Clinger's fast
/// path). `None` for anything else, which the caller parses in full.
#[inline]
fn short_decimal(body: &[u8]) -> Option<f64> {
    const POW10: [f64; 16] = [
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
    ];
    if body.len() > 16 {
        return None;
    }
    let dot = body.iter().position(|&c| c == b'.')?;
    let mut mantissa = 0u64;
    for &c in &body[..dot] {
        mantissa = mantissa * 10 + u64::from(c.wrapping_sub(b'0'));
    }
    for &c in &body[dot + 1..] {
        if !c.is_ascii_digit() {
            return None; // an exponent
        }
        mantissa = mantissa * 10 + u64::from(c - b'0');
    }
    Some(mantissa as f64 / POW10[body.len() - dot - 1])
}

/// The index of the `"` closing a string whose content starts at `i`, or `None`
/// if a backslash, a control character or the end comes first. Eight bytes at a
/// time: each mask below flags the lowest matching byte of the word exactly
/// (borrows only spoil the bytes above a match), so the lowest flag of their
/// union is the first byte that ends the plain run.
#[inline]
fn string_end(b: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let zero_byte = |w: u64| w.wrapping_sub(ONES) & !w & HIGH;
    while let Some(word) = b.get(i..i + 8) {
        let w = u64::from_le_bytes(word.try_into().ok()?);
        let quote = zero_byte(w ^ (ONES * u64::from(b'"')));
        let backslash = zero_byte(w ^ (ONES * u64::from(b'\\')));
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH;
        let stops = quote | backslash | control;
        if stops != 0 {
            let at = i + (stops.trailing_zeros() / 8) as usize;
            return (b[at] == b'"').then_some(at);
        }
        i += 8;
    }
    loop {
        match *b.get(i)? {
            b'"' => return Some(i),
            b'\\' | 0..=0x1f => return None,
            _ => i += 1,
        }
    }
}

/// Decodes `b` if it has the common shape and is valid; `None` otherwise.
pub(super) fn decode(b: &[u8]) -> Option<Event<'_>> {
    let text = std::str::from_utf8(b).ok()?;
    let mut p = Scan { text, b, i: 0 };
    p.ws();
    p.eat(b'{')?;
    let mut ts: Option<i64> = None;
    let mut service: Option<&str> = None;
    let (mut kind, mut outcome, mut category) = (None, None, None);
    let (mut latency_ms, mut sla_ms, mut satisfaction, mut sentiment) = (None, None, None, None);
    let mut complaint = None;
    let mut labels = Labels::default();
    let mut seen_labels = false;
    p.ws();
    if p.peek()? == b'}' {
        return None; // no fields: missing `ts`; serde explains
    }
    macro_rules! once {
        ($slot:expr, $value:expr) => {{
            if $slot.is_some() {
                return None;
            }
            $slot = Some($value);
        }};
    }
    loop {
        p.ws();
        let key = p.string()?;
        p.ws();
        p.eat(b':')?;
        p.ws();
        match key {
            "ts" => {
                let v = if p.peek()? == b'"' {
                    parse_rfc3339(p.string()?)?
                } else {
                    let n = p.number()?;
                    if n.fract() != 0.0 || !(0.0..=MAX_MILLIS as f64).contains(&n) {
                        return None;
                    }
                    n as i64
                };
                once!(ts, v);
            }
            "service" => {
                let s = p.string()?;
                if s.is_empty() || s.len() > MAX_SERVICE_LEN || has_control(s) {
                    return None;
                }
                once!(service, s);
            }
            "kind" => once!(kind, Kind::parse(p.string()?)?),
            "outcome" => once!(outcome, Outcome::parse(p.string()?)?),
            "category" => once!(category, Category::parse(p.string()?)?),
            "latency_ms" => once!(
                latency_ms,
                check_number(super::Field::LatencyMs, p.number()?, 0.0, 1e12, "").ok()?
            ),
            "sla_ms" => once!(
                sla_ms,
                check_number(super::Field::SlaMs, p.number()?, 0.0, 1e12, "").ok()?
            ),
            "satisfaction" => once!(
                satisfaction,
                check_number(super::Field::Satisfaction, p.number()?, 1.0, 5.0, "").ok()?
            ),
            "sentiment" => once!(
                sentiment,
                check_number(super::Field::Sentiment, p.number()?, -1.0, 1.0, "").ok()?
            ),
            "complaint" => once!(complaint, p.bool()?),
            // Entity events are rarer: the serde path reads and checks them.
            "entity" | "phase" | "deadline" => return None,
            "labels" => {
                if seen_labels {
                    return None;
                }
                seen_labels = true;
                p.labels(&mut labels)?;
            }
            _ => p.skip_scalar()?,
        }
        p.ws();
        match p.peek()? {
            b',' => p.i += 1,
            b'}' => {
                p.i += 1;
                break;
            }
            _ => return None,
        }
    }
    p.ws();
    if p.i != b.len() {
        return None;
    }
    Some(Event {
        ts: ts?,
        service: Cow::Borrowed(service?),
        kind: kind.unwrap_or(Kind::Custom),
        outcome,
        category,
        latency_ms,
        sla_ms,
        satisfaction,
        sentiment,
        complaint,
        labels,
        entity: None,
        phase: None,
        deadline: None,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::decode_slow;

    fn ws() -> impl Strategy<Value = String> {
        prop_oneof![4 => Just(String::new()), 1 => Just(" ".to_string()), 1 => Just("\n\t ".to_string()), 1 => Just("\r".to_string())]
    }

    fn number() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u64..2_000_000_000_000_000).prop_map(|n| n.to_string()),
            any::<i64>().prop_map(|n| n.to_string()),
            (-2.0f64..6.0).prop_map(|f| f.to_string()),
            any::<f64>().prop_map(|f| format!("{f:e}")),
            Just("-0".to_string()),
            Just("-0.0".to_string()),
            Just("01".to_string()),
            Just("1.".to_string()),
            Just("1e".to_string()),
            Just("1E+2".to_string()),
            Just("1e999".to_string()),
            Just("99999999999999999999".to_string()),
            Just("1763806502113".to_string()),
            Just("1763806502113.0".to_string()),
        ]
    }

    fn string() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z_-]{0,12}".prop_map(|s| format!("\"{s}\"")),
            Just("\"checkout\"".to_string()),
            Just("\"a\\\"b\"".to_string()),
            Just("\"caf\\u00e9\"".to_string()),
            Just("\"tab\there\"".to_string()),
            Just("\"\u{e9}t\u{e9}\"".to_string()),
            prop::sample::select(vec![
                "request",
                "feedback",
                "ticket",
                "stock",
                "custom",
                "ok",
                "error",
                "timeout",
                "cancelled",
                "information",
                "execution",
                "communication",
                "system",
                "bogus"
            ])
            .prop_map(|s| format!("\"{s}\"")),
            (0i64..253_402_300_799_999)
                .prop_map(|ms| format!("\"{}\"", crate::time::format_rfc3339(ms))),
            Just("\"2026-11-22T11:15:02.113+01:00\"".to_string()),
            Just("\"2026-02-30T00:00:00Z\"".to_string()),
        ]
    }

    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            number(),
            string(),
            Just("true".into()),
            Just("false".into()),
            Just("null".into())
        ]
    }

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => scalar(),
            1 => prop::collection::vec(scalar(), 0..3).prop_map(|v| format!("[{}]", v.join(","))),
            1 => prop::collection::vec((string(), scalar()), 0..3)
                .prop_map(|v| format!("{{{}}}", v.into_iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(","))),
            2 => prop::collection::vec((string(), string(), ws()), 0..4)
                .prop_map(|v| format!("{{{}}}", v.into_iter().map(|(k, v, w)| format!("{w}{k}{w}:{w}{v}{w}")).collect::<Vec<_>>().join(","))),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            8 => prop::sample::select(vec!["ts", "service", "kind", "outcome", "category", "latency_ms", "sla_ms", "satisfaction", "sentiment", "complaint", "labels"]).prop_map(|k| format!("\"{k}\"")),
            1 => "[a-z]{1,6}".prop_map(|k| format!("\"{k}\"")),
            1 => Just("\"t\\u0073\"".to_string()),
        ]
    }

    /// A known field with a value of the right type (valid or just out of range).
    fn typed_field() -> impl Strategy<Value = (String, String)> {
        let enum_of = |k: &'static str, vals: Vec<&'static str>| {
            prop::sample::select(vals).prop_map(move |v| (format!("\"{k}\""), format!("\"{v}\"")))
        };
        let num = |k: &'static str, lo: f64, hi: f64| {
            prop_oneof![
                (lo..hi).prop_map(|f| f.to_string()),
                (lo as i64..=hi as i64).prop_map(|n| n.to_string()),
                (lo..hi).prop_map(|f| format!("{f:e}"))
            ]
            .prop_map(move |v| (format!("\"{k}\""), v))
        };
        prop_oneof![
            enum_of(
                "kind",
                vec!["request", "feedback", "ticket", "stock", "custom"]
            ),
            enum_of("outcome", vec!["ok", "error", "timeout", "cancelled"]),
            enum_of(
                "category",
                vec!["information", "execution", "communication", "system"]
            ),
            num("latency_ms", 0.0, 5000.0),
            num("sla_ms", 0.0, 5000.0),
            num("satisfaction", 1.0, 5.0),
            num("sentiment", -1.0, 1.0),
            any::<bool>().prop_map(|b| ("\"complaint\"".to_string(), b.to_string())),
            prop::collection::vec(("[a-z]{1,5}", "[a-z0-9 ]{0,8}"), 0..4).prop_map(|v| (
                "\"labels\"".to_string(),
                format!(
                    "{{{}}}",
                    v.into_iter()
                        .map(|(k, v)| format!("\"{k}\":\"{v}\""))
                        .collect::<Vec<_>>()
                        .join(",")
                )
            )),
            "[a-z]{1,6}".prop_map(|k| (format!("\"x_{k}\""), "\"v\"".to_string())),
        ]
    }

    fn timestamp() -> impl Strategy<Value = String> {
        prop_oneof![
            (0i64..253_402_300_799_999)
                .prop_map(|ms| format!("\"{}\"", crate::time::format_rfc3339(ms))),
            (0i64..253_402_300_799_999).prop_map(|ms| ms.to_string()),
            (0i64..253_402_300_799).prop_map(|s| format!("{s}000.0")),
        ]
    }

    fn document() -> impl Strategy<Value = String> {
        prop_oneof![
            1 => any_document(),
            1 => (prop::collection::vec((typed_field(), ws()), 0..8), timestamp(), ws()).prop_map(|(fields, ts, w)| {
                let mut parts = vec![format!("\"ts\":{ts}"), "\"service\":\"svc\"".to_string()];
                parts.extend(fields.into_iter().map(|((k, v), w)| format!("{w}{k}{w}:{w}{v}{w}")));
                format!("{{{}}}{w}", parts.join(","))
            }),
        ]
    }

    fn any_document() -> impl Strategy<Value = String> {
        (
            prop::collection::vec((key(), value(), ws(), ws()), 0..12),
            ws(),
            prop_oneof![8 => Just(None), 1 => (0usize..200).prop_map(Some)],
            any::<bool>(),
        )
            .prop_map(|(fields, w, cut, base)| {
                let mut parts: Vec<String> = Vec::new();
                if base {
                    parts.push("\"ts\":1795168800000".into());
                    parts.push("\"service\":\"svc\"".into());
                }
                parts.extend(
                    fields
                        .into_iter()
                        .map(|(k, v, a, b)| format!("{a}{k}{b}:{a}{v}{b}")),
                );
                let mut s = format!("{w}{{{}}}{w}", parts.join(","));
                if let Some(c) = cut {
                    let mut c = c.min(s.len());
                    while !s.is_char_boundary(c) {
                        c -= 1;
                    }
                    s.truncate(c);
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Whenever the fast path accepts, the serde path yields the same event.
        #[test]
        fn fast_path_agrees_with_serde(doc in document()) {
            if let Some(fast) = super::decode(doc.as_bytes()) {
                prop_assert_eq!(decode_slow(doc.as_bytes()), Ok(fast), "{}", doc);
            }
        }
    }

    proptest! {
        /// The short-decimal shortcut is the correctly rounded value.
        #[test]
        fn short_decimals_round_like_the_full_parser(m in 0u64..1_000_000_000_000_000, frac in 1usize..16) {
            let digits = format!("{m:0>width$}", width = frac + 1);
            let (int, fraction) = digits.split_at(digits.len() - frac);
            let text = format!("{int}.{fraction}");
            let want: f64 = text.parse().unwrap();
            let short = text.len() <= 16; // longer ones are left to the full parser
            prop_assert_eq!(
                super::short_decimal(text.as_bytes()).map(f64::to_bits),
                short.then_some(want.to_bits()),
                "{}",
                text
            );
        }
    }

    #[test]
    fn string_ends_are_found_at_every_offset() {
        for len in 0..40 {
            for stop in ["\"", "\\", "\u{1}", "\n"] {
                let doc = format!(
                    "{}{stop}tail\"",
                    "a\u{e9}".repeat(len).chars().take(len).collect::<String>()
                );
                let b = doc.as_bytes();
                let first = b
                    .iter()
                    .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
                    .unwrap();
                let want = (b[first] == b'"').then_some(first);
                assert_eq!(super::string_end(b, 0), want, "{doc:?}");
            }
        }
    }

    #[test]
    fn common_events_take_the_fast_path() {
        for doc in [
            r#"{"ts":"2026-11-22T10:15:02.113Z","service":"checkout","kind":"request","outcome":"error","category":"system","latency_ms":1840,"sla_ms":800,"labels":{"region":"eu-west","channel":"app"}}"#,
            r#"{"ts":1763806502113,"service":"support","kind":"feedback","satisfaction":2,"sentiment":-0.7,"complaint":true}"#,
            " { \"ts\" : 0 , \"service\" : \"s\" , \"trace_id\" : \"abc\" , \"extra\" : null }\n",
        ] {
            let fast = super::decode(doc.as_bytes());
            assert!(fast.is_some(), "{doc}");
            assert_eq!(decode_slow(doc.as_bytes()), Ok(fast.unwrap()));
        }
        for slow_only in [
            r#"{"ts":0,"service":"a\"b"}"#,
            r#"{"ts":0,"service":"s","extra":{"nested":1}}"#,
            r#"{"ts":0,"service":"s","latency_ms":"12"}"#,
            r#"{"ts":0,"service":"s","latency_ms":01}"#,
        ] {
            assert!(super::decode(slow_only.as_bytes()).is_none(), "{slow_only}");
        }
    }
}
