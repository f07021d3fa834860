//! The v1 service event and its decoder.
//!
//! Decoding is one pass over the JSON with a hand-written serde visitor: strings are
//! borrowed from the input buffer when they contain no escapes, labels land in a
//! fixed inline array, and every rejection has its own [`DecodeError`] variant with a
//! stable [`DecodeError::reason`] code for dead-letter headers and metrics.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use crate::time::{parse_rfc3339, Millis, MAX_MILLIS};

/// Longest accepted `service` value, in bytes.
pub const MAX_SERVICE_LEN: usize = 128;
/// Longest accepted `entity` id, in bytes.
pub const MAX_ENTITY_LEN: usize = 128;
/// Most labels one event may carry.
pub const MAX_LABELS: usize = 16;
/// Longest label name, in bytes.
pub const MAX_LABEL_NAME_LEN: usize = 64;
/// Longest label value, in bytes.
pub const MAX_LABEL_VALUE_LEN: usize = 256;
/// Largest accepted encoded event, in bytes.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vm])* $var),+ }
        impl $name {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$var),+];
            /// The wire spelling.
            pub fn as_str(self) -> &'static str { match self { $($name::$var => $s),+ } }
            /// Parses the wire spelling.
            pub fn parse(s: &str) -> Option<Self> { match s { $($s => Some($name::$var),)+ _ => None } }
            /// Bit for this variant in a set mask.
            pub fn bit(self) -> u8 { 1 << (self as u8) }
            /// The accepted spellings, for error messages.
            pub fn expected() -> &'static str { concat!($($s, " "),+) }
        }
    };
}

str_enum!(
    /// What an event describes.
    Kind { /// A served request.
    Request = "request", /// Customer feedback.
    Feedback = "feedback", /// A support ticket.
    Ticket = "ticket", /// A stock / inventory event.
    Stock = "stock", /// Anything else.
    Custom = "custom" }
);
str_enum!(
    /// How a request ended.
    Outcome { /// Success.
    Ok = "ok", /// Failure.
    Error = "error", /// Gave up waiting.
    Timeout = "timeout", /// Abandoned by the caller.
    Cancelled = "cancelled" }
);
str_enum!(
    /// Where an entity event stands in its entity's life (SLA timers).
    Phase { /// The entity (an order, a ticket) starts: its SLA clock runs.
    Open = "open", /// The entity is done (delivered, answered): its clock stops.
    Close = "close" }
);
str_enum!(
    /// The four service-failure categories.
    Category { /// Wrong information shown (price, catalogue).
    Information = "information", /// A promise not kept (delivery, fulfilment).
    Execution = "execution", /// Customer communication failed (support, notifications).
    Communication = "communication", /// A technical system failed (gateway, errors).
    System = "system" }
);

/// A decoded event. Borrows from the buffer it was decoded from where it can.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<'a> {
    /// Event time.
    pub ts: Millis,
    /// The service the event belongs to.
    pub service: Cow<'a, str>,
    /// What it describes (`custom` when absent).
    pub kind: Kind,
    /// Request outcome.
    pub outcome: Option<Outcome>,
    /// Failure category.
    pub category: Option<Category>,
    /// Observed latency.
    pub latency_ms: Option<f64>,
    /// The latency promised by the SLA.
    pub sla_ms: Option<f64>,
    /// Customer satisfaction, 1–5.
    pub satisfaction: Option<f64>,
    /// Sentiment, −1…1.
    pub sentiment: Option<f64>,
    /// Whether this is a complaint.
    pub complaint: Option<bool>,
    /// Small string map of dimensions.
    pub labels: Labels<'a>,
    /// The entity (order, ticket …) an `open`/`close` event is about.
    pub entity: Option<Cow<'a, str>>,
    /// Whether the entity opens or closes.
    pub phase: Option<Phase>,
    /// When the entity's SLA expires (on `open`; else `ts + sla_ms`).
    pub deadline: Option<Millis>,
}

/// Labels stored inline up to [`INLINE_LABELS`] (no heap allocation for the
/// usual event), spilling to the heap beyond that, never past [`MAX_LABELS`].
/// Unused slots are left uninitialised, so an event without labels costs nothing
/// to build or move.
#[derive(Clone, PartialEq, Default)]
pub struct Labels<'a> {
    items: smallvec::SmallVec<[(Cow<'a, str>, Cow<'a, str>); INLINE_LABELS]>,
}

/// Labels an event carries without a heap allocation.
pub const INLINE_LABELS: usize = 6;

impl fmt::Debug for Labels<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> Labels<'a> {
    /// The value of label `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
    /// Labels in the order they appeared.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }
    /// Number of labels.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// True when there are no labels.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
    /// Adds a label; false when full.
    pub fn push(&mut self, k: Cow<'a, str>, v: Cow<'a, str>) -> bool {
        if self.items.len() == MAX_LABELS {
            return false;
        }
        self.items.push((k, v));
        true
    }
}

impl Event<'_> {
    /// True when the request took longer than its SLA.
    pub fn sla_breached(&self) -> Option<bool> {
        Some(self.latency_ms? > self.sla_ms?)
    }
}

/// Event fields the decoder knows, named in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `ts`
    Ts,
    /// `service`
    Service,
    /// `kind`
    Kind,
    /// `outcome`
    Outcome,
    /// `category`
    Category,
    /// `latency_ms`
    LatencyMs,
    /// `sla_ms`
    SlaMs,
    /// `satisfaction`
    Satisfaction,
    /// `sentiment`
    Sentiment,
    /// `complaint`
    Complaint,
    /// `labels`
    Labels,
    /// `entity`
    Entity,
    /// `phase`
    Phase,
    /// `deadline`
    Deadline,
}

impl Field {
    /// Every field, in declaration order.
    pub const ALL: &'static [Field] = &[
        Field::Ts,
        Field::Service,
        Field::Kind,
        Field::Outcome,
        Field::Category,
        Field::LatencyMs,
        Field::SlaMs,
        Field::Satisfaction,
        Field::Sentiment,
        Field::Complaint,
        Field::Labels,
        Field::Entity,
        Field::Phase,
        Field::Deadline,
    ];

    /// JSON name of the field.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Ts => "ts",
            Field::Service => "service",
            Field::Kind => "kind",
            Field::Outcome => "outcome",
            Field::Category => "category",
            Field::LatencyMs => "latency_ms",
            Field::SlaMs => "sla_ms",
            Field::Satisfaction => "satisfaction",
            Field::Sentiment => "sentiment",
            Field::Complaint => "complaint",
            Field::Labels => "labels",
            Field::Entity => "entity",
            Field::Phase => "phase",
            Field::Deadline => "deadline",
        }
    }
    fn from_key(k: &str) -> Option<Field> {
        Some(match k {
            "ts" => Field::Ts,
            "service" => Field::Service,
            "kind" => Field::Kind,
            "outcome" => Field::Outcome,
            "category" => Field::Category,
            "latency_ms" => Field::LatencyMs,
            "sla_ms" => Field::SlaMs,
            "satisfaction" => Field::Satisfaction,
            "sentiment" => Field::Sentiment,
            "complaint" => Field::Complaint,
            "labels" => Field::Labels,
            "entity" => Field::Entity,
            "phase" => Field::Phase,
            "deadline" => Field::Deadline,
            _ => return None,
        })
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an event was rejected. Each variant names the offending field and value.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a JSON document.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    InvalidJson {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's message.
        message: String,
    },
    /// The document is JSON but not an object.
    #[error("event must be a JSON object")]
    NotAnObject,
    /// The payload is empty or only JSON whitespace.
    #[error("event is empty (no bytes, or only whitespace)")]
    Blank,
    /// The encoded event is larger than [`MAX_EVENT_BYTES`].
    #[error("event is {size} bytes; the limit is {MAX_EVENT_BYTES}")]
    TooLarge {
        /// Size of the rejected message.
        size: usize,
    },
    /// A required field is absent.
    #[error("missing required field `{0}`")]
    MissingField(Field),
    /// A field appears twice.
    #[error("field `{0}` appears more than once")]
    DuplicateField(Field),
    /// A field has the wrong JSON type.
    #[error("field `{field}` must be {expected}")]
    WrongType {
        /// The field.
        field: Field,
        /// What it must be.
        expected: &'static str,
    },
    /// `ts` or `deadline` is a string that is not RFC 3339, or a number outside
    /// 1970..=9999.
    #[error("field `{field}` is not an RFC 3339 timestamp or epoch milliseconds in 1970..=9999: {value}")]
    BadTimestamp {
        /// The field.
        field: Field,
        /// What was given (truncated).
        value: String,
    },
    /// A string field is not one of its allowed values.
    #[error("field `{field}` is `{value}`; expected one of: {expected}")]
    UnknownValue {
        /// The field.
        field: Field,
        /// What was given (truncated).
        value: String,
        /// Accepted spellings.
        expected: &'static str,
    },
    /// A number is NaN or infinite.
    #[error("field `{0}` must be a finite number")]
    NotFinite(Field),
    /// A number is outside its allowed range.
    #[error("field `{field}` is {value}; it must be within {range}")]
    OutOfRange {
        /// The field.
        field: Field,
        /// The value given.
        value: f64,
        /// The allowed range.
        range: &'static str,
    },
    /// A string is empty or longer than its limit.
    #[error("field `{field}` is {len} bytes; it must be 1..={max} bytes")]
    BadLength {
        /// The field.
        field: Field,
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// More than [`MAX_LABELS`] labels.
    #[error("more than {MAX_LABELS} labels")]
    TooManyLabels,
    /// A service name or label contains a control character (C0, DEL, C1) or an
    /// invisible one (zero-width, bidirectional formatting, soft hyphen, BOM).
    #[error("field `{0}` contains a control, zero-width or bidirectional-formatting character")]
    ControlCharacter(Field),
    /// A label name appears twice.
    #[error("label `{name}` appears more than once")]
    DuplicateLabel {
        /// The label name (truncated).
        name: String,
    },
}

impl DecodeError {
    /// A short, stable code for dead-letter headers and metric labels.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::InvalidJson { .. } => "invalid_json",
            DecodeError::NotAnObject => "not_an_object",
            DecodeError::Blank => "blank",
            DecodeError::TooLarge { .. } => "too_large",
            DecodeError::MissingField(_) => "missing_field",
            DecodeError::DuplicateField(_) | DecodeError::DuplicateLabel { .. } => {
                "duplicate_field"
            }
            DecodeError::WrongType { .. } => "wrong_type",
            DecodeError::BadTimestamp { .. } => "bad_timestamp",
            DecodeError::UnknownValue { .. } => "unknown_value",
            DecodeError::NotFinite(_) => "not_finite",
            DecodeError::OutOfRange { .. } => "out_of_range",
            DecodeError::BadLength { .. } => "bad_length",
            DecodeError::TooManyLabels => "too_many_labels",
            DecodeError::ControlCharacter(_) => "control_character",
        }
    }
}

fn truncated(s: &str) -> String {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

mod fast;

/// Decodes one v1 event from a message payload.
pub fn decode(bytes: &[u8]) -> Result<Event<'_>, DecodeError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(DecodeError::TooLarge { size: bytes.len() });
    }
    if let Some(ev) = fast::decode(bytes) {
        return Ok(ev);
    }
    decode_slow(bytes)
}

/// The serde path alone, without the fast path: handles every valid event and
/// explains every invalid one. [`decode`] must always agree with it; it is public
/// for differential fuzzing.
#[doc(hidden)]
pub fn decode_slow(bytes: &[u8]) -> Result<Event<'_>, DecodeError> {
    if bytes.len() > MAX_EVENT_BYTES {
        return Err(DecodeError::TooLarge { size: bytes.len() });
    }
    // serde_json skips unknown fields' strings without checking their UTF-8;
    // every byte of an event must be valid, wherever it is.
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(invalid_utf8(bytes, e.valid_up_to()));
    }
    let mut failure = None;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let res = EventSeed {
        failure: &mut failure,
    }
    .deserialize(&mut de)
    .and_then(|ev| de.end().map(|()| ev));
    match res {
        Ok(ev) => Ok(ev),
        Err(_)
            if bytes
                .iter()
                .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r')) =>
        {
            Err(DecodeError::Blank)
        }
        Err(e) => Err(match (e.classify(), failure) {
            // A syntax error wins over a typed failure recorded while reading the
            // broken value: the document is not JSON at all.
            (serde_json::error::Category::Data, Some(typed)) => typed,
            // Every failure inside the object records a typed error, so a data error
            // without one means the document itself was not an object.
            (serde_json::error::Category::Data, None) => DecodeError::NotAnObject,
            _ => {
                // serde_json appends " at line L column C"; we report those separately.
                let full = e.to_string();
                let message = full
                    .rsplit_once(" at line ")
                    .map_or(full.as_str(), |(m, _)| m)
                    .to_string();
                DecodeError::InvalidJson {
                    line: e.line(),
                    column: e.column(),
                    message,
                }
            }
        }),
    }
}

/// The error for bytes that are not UTF-8 from `at` on, located like serde's.
fn invalid_utf8(bytes: &[u8], at: usize) -> DecodeError {
    let before = &bytes[..at];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    DecodeError::InvalidJson {
        line,
        column: at - line_start + 1,
        message: "invalid UTF-8".to_string(),
    }
}

/// Carries the typed failure out of serde, which only knows string errors.
struct EventSeed<'s> {
    failure: &'s mut Option<DecodeError>,
}

impl EventSeed<'_> {
    fn fail<E: de::Error>(&mut self, e: DecodeError) -> E {
        let msg = e.to_string();
        *self.failure = Some(e);
        E::custom(msg)
    }
}

impl<'de> DeserializeSeed<'de> for EventSeed<'_> {
    type Value = Event<'de>;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

/// A string that borrows when it can.
struct CowStr<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for CowStr<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = CowStr<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(CowStr(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, read without judging its type: syntax errors propagate from the
/// parser untouched, and type errors are ours to report against the field.
enum Loose<'de> {
    Str(Cow<'de, str>),
    Num(f64),
    Bool(bool),
    Other,
}

impl<'de> de::Deserialize<'de> for Loose<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loose<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Loose::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Loose::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Loose::Str(Cow::Owned(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Loose::Num(v as f64))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Loose::Num(v as f64))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Loose::Num(v))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
                Ok(Loose::Bool(v))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Loose::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Loose::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// The label map, decoded into the event's inline array.
struct LabelsSeed<'a, 'de> {
    out: &'a mut Labels<'de>,
    failure: &'a mut Option<DecodeError>,
}

impl<'de> DeserializeSeed<'de> for LabelsSeed<'_, 'de> {
    type Value = ();
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        let loose = LooseLabels(self);
        d.deserialize_any(loose)
    }
}

/// Accepts an object of labels; any other JSON type is a typed failure, while
/// syntax errors come from the parser unchanged.
struct LooseLabels<'a, 'de>(LabelsSeed<'a, 'de>);

const LABELS_EXPECTED: &str = "an object whose values are strings";

impl<'de> Visitor<'de> for LooseLabels<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(LABELS_EXPECTED)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        self.0.visit_map(map)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(fail_with(
            self.0.failure,
            DecodeError::WrongType {
                field: Field::Labels,
                expected: LABELS_EXPECTED,
            },
        ))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(fail_with(
            self.0.failure,
            DecodeError::WrongType {
                field: Field::Labels,
                expected: LABELS_EXPECTED,
            },
        ))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(fail_with(
            self.0.failure,
            DecodeError::WrongType {
                field: Field::Labels,
                expected: LABELS_EXPECTED,
            },
        ))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(fail_with(
            self.0.failure,
            DecodeError::WrongType {
                field: Field::Labels,
                expected: LABELS_EXPECTED,
            },
        ))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(fail_with(
            self.0.failure,
            DecodeError::WrongType {
                field: Field::Labels,
                expected: LABELS_EXPECTED,
            },
        ))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(fail_with(
            self.0.failure,
            DecodeError::WrongType {
                field: Field::Labels,
                expected: LABELS_EXPECTED,
            },
        ))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(fail_with(
            self.0.failure,
            DecodeError::WrongType {
                field: Field::Labels,
                expected: LABELS_EXPECTED,
            },
        ))
    }
}

impl<'de> Visitor<'de> for LabelsSeed<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object of string labels")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(CowStr(k)) = map.next_key::<CowStr<'de>>()? {
            let Loose::Str(v) = map.next_value::<Loose<'de>>()? else {
                return Err(fail_with(
                    self.failure,
                    DecodeError::WrongType {
                        field: Field::Labels,
                        expected: LABELS_EXPECTED,
                    },
                ));
            };
            if k.is_empty() || k.len() > MAX_LABEL_NAME_LEN {
                return Err(fail_with(
                    self.failure,
                    DecodeError::BadLength {
                        field: Field::Labels,
                        len: k.len(),
                        max: MAX_LABEL_NAME_LEN,
                    },
                ));
            }
            if v.len() > MAX_LABEL_VALUE_LEN {
                return Err(fail_with(
                    self.failure,
                    DecodeError::BadLength {
                        field: Field::Labels,
                        len: v.len(),
                        max: MAX_LABEL_VALUE_LEN,
                    },
                ));
            }
            if has_control(&k) || has_control(&v) {
                return Err(fail_with(
                    self.failure,
                    DecodeError::ControlCharacter(Field::Labels),
                ));
            }
            if self.out.get(&k).is_some() {
                return Err(fail_with(
                    self.failure,
                    DecodeError::DuplicateLabel {
                        name: truncated(&k),
                    },
                ));
            }
            if !self.out.push(k, v) {
                return Err(fail_with(self.failure, DecodeError::TooManyLabels));
            }
        }
        Ok(())
    }
}

/// Whether `s` holds a character that would let one service or label pass for
/// another: C0 and C1 controls and DEL (C0 can only arrive escaped; they could
/// also make two group keys collide, see `groups.rs`), and the invisible ones —
/// soft hyphen, zero-width characters, word joiners, bidirectional embeddings,
/// overrides and isolates, and the byte-order mark.
pub(crate) fn has_control(s: &str) -> bool {
    s.bytes().any(|b| !(0x20..0x7f).contains(&b)) && s.chars().any(is_lookalike_char)
}

fn is_lookalike_char(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{ad}'
        | '\u{200b}'..='\u{200f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206f}'
        | '\u{feff}')
}

fn fail_with<E: de::Error>(slot: &mut Option<DecodeError>, e: DecodeError) -> E {
    let msg = e.to_string();
    *slot = Some(e);
    E::custom(msg)
}

fn check_number(
    field: Field,
    v: f64,
    lo: f64,
    hi: f64,
    range: &'static str,
) -> Result<f64, DecodeError> {
    if !v.is_finite() {
        return Err(DecodeError::NotFinite(field));
    }
    if v < lo || v > hi {
        return Err(DecodeError::OutOfRange {
            field,
            value: v,
            range,
        });
    }
    Ok(v)
}

impl<'de> Visitor<'de> for EventSeed<'_> {
    type Value = Event<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<Event<'de>, A::Error> {
        let mut ts: Option<Millis> = None;
        let mut service: Option<Cow<'de, str>> = None;
        let mut kind = None;
        let mut outcome = None;
        let mut category = None;
        let mut latency_ms = None;
        let mut sla_ms = None;
        let mut satisfaction = None;
        let mut sentiment = None;
        let mut complaint = None;
        let mut labels = Labels::default();
        let mut seen_labels = false;
        let mut entity: Option<Cow<'de, str>> = None;
        let mut phase = None;
        let mut deadline = None;

        // Each arm reads the value with the type it must have, so a wrong type is
        // reported against the field rather than as a generic parse error.
        macro_rules! once {
            ($slot:expr, $field:expr) => {
                if $slot.is_some() {
                    return Err(self.fail(DecodeError::DuplicateField($field)));
                }
            };
        }
        // Reads the value loosely (a syntax error propagates as is), then insists on
        // one JSON type, reporting any other against the field.
        macro_rules! typed {
            ($variant:ident, $field:expr, $expected:literal) => {
                match map.next_value::<Loose<'de>>()? {
                    Loose::$variant(v) => v,
                    _ => {
                        return Err(self.fail(DecodeError::WrongType {
                            field: $field,
                            expected: $expected,
                        }))
                    }
                }
            };
        }
        macro_rules! enum_field {
            ($slot:expr, $ty:ty, $field:expr) => {{
                once!($slot, $field);
                let s = typed!(Str, $field, "a string");
                match <$ty>::parse(&s) {
                    Some(v) => $slot = Some(v),
                    None => {
                        return Err(self.fail(DecodeError::UnknownValue {
                            field: $field,
                            value: truncated(&s),
                            expected: <$ty>::expected(),
                        }))
                    }
                }
            }};
        }
        macro_rules! number {
            ($slot:expr, $field:expr, $lo:expr, $hi:expr, $range:literal) => {{
                once!($slot, $field);
                let v = typed!(Num, $field, "a number");
                match check_number($field, v, $lo, $hi, $range) {
                    Ok(v) => $slot = Some(v),
                    Err(e) => return Err(self.fail(e)),
                }
            }};
        }

        while let Some(CowStr(key)) = map.next_key::<CowStr<'de>>()? {
            let Some(field) = Field::from_key(&key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            match field {
                Field::Ts => {
                    once!(ts, field);
                    match timestamp(field, map.next_value::<Loose<'de>>()?) {
                        Ok(v) => ts = Some(v),
                        Err(e) => return Err(self.fail(e)),
                    }
                }
                Field::Deadline => {
                    once!(deadline, field);
                    match timestamp(field, map.next_value::<Loose<'de>>()?) {
                        Ok(v) => deadline = Some(v),
                        Err(e) => return Err(self.fail(e)),
                    }
                }
                Field::Entity => {
                    once!(entity, field);
                    let s = typed!(Str, field, "a string");
                    if s.is_empty() || s.len() > MAX_ENTITY_LEN {
                        return Err(self.fail(DecodeError::BadLength {
                            field,
                            len: s.len(),
                            max: MAX_ENTITY_LEN,
                        }));
                    }
                    if has_control(&s) {
                        return Err(self.fail(DecodeError::ControlCharacter(field)));
                    }
                    entity = Some(s);
                }
                Field::Phase => enum_field!(phase, Phase, field),
                Field::Service => {
                    once!(service, field);
                    let s = typed!(Str, field, "a string");
                    if s.is_empty() || s.len() > MAX_SERVICE_LEN {
                        return Err(self.fail(DecodeError::BadLength {
                            field,
                            len: s.len(),
                            max: MAX_SERVICE_LEN,
                        }));
                    }
                    if has_control(&s) {
                        return Err(self.fail(DecodeError::ControlCharacter(field)));
                    }
                    service = Some(s);
                }
                Field::Kind => enum_field!(kind, Kind, field),
                Field::Outcome => enum_field!(outcome, Outcome, field),
                Field::Category => enum_field!(category, Category, field),
                Field::LatencyMs => number!(latency_ms, field, 0.0, 1e12, "0..=1e12"),
                Field::SlaMs => number!(sla_ms, field, 0.0, 1e12, "0..=1e12"),
                Field::Satisfaction => number!(satisfaction, field, 1.0, 5.0, "1..=5"),
                Field::Sentiment => number!(sentiment, field, -1.0, 1.0, "-1..=1"),
                Field::Complaint => {
                    once!(complaint, field);
                    complaint = Some(typed!(Bool, field, "true or false"));
                }
                Field::Labels => {
                    if seen_labels {
                        return Err(self.fail(DecodeError::DuplicateField(field)));
                    }
                    seen_labels = true;
                    let seed = LabelsSeed {
                        out: &mut labels,
                        failure: &mut *self.failure,
                    };
                    map.next_value_seed(seed)?;
                }
            }
        }
        let Some(ts) = ts else {
            return Err(self.fail(DecodeError::MissingField(Field::Ts)));
        };
        let Some(service) = service else {
            return Err(self.fail(DecodeError::MissingField(Field::Service)));
        };
        Ok(Event {
            ts,
            service,
            kind: kind.unwrap_or(Kind::Custom),
            outcome,
            category,
            latency_ms,
            sla_ms,
            satisfaction,
            sentiment,
            complaint,
            labels,
            entity,
            phase,
            deadline,
        })
    }
}

/// Reads an RFC 3339 string or integral epoch milliseconds in 1970..=9999.
fn timestamp(field: Field, raw: Loose<'_>) -> Result<Millis, DecodeError> {
    let parsed = match &raw {
        Loose::Str(s) => parse_rfc3339(s),
        Loose::Num(n) => {
            (n.is_finite() && n.fract() == 0.0 && (0.0..=MAX_MILLIS as f64).contains(n))
                .then_some(*n as i64)
        }
        _ => {
            return Err(DecodeError::WrongType {
                field,
                expected: "an RFC 3339 string or epoch milliseconds",
            })
        }
    };
    parsed.ok_or_else(|| DecodeError::BadTimestamp {
        field,
        value: match raw {
            Loose::Str(s) => format!("\"{}\"", truncated(&s)),
            Loose::Num(n) => n.to_string(),
            _ => String::new(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(s: &str) -> DecodeError {
        decode(s.as_bytes()).unwrap_err()
    }

    #[test]
    fn decodes_the_design_examples() {
        let e = decode(br#"{"ts":"2026-11-22T10:15:02.113Z","service":"checkout","kind":"request","outcome":"error","category":"system","latency_ms":1840,"sla_ms":800,"labels":{"region":"eu-west","channel":"app"}}"#).unwrap();
        assert_eq!(e.ts, 1_795_342_502_113);
        assert_eq!(e.service, "checkout");
        assert!(matches!(e.service, Cow::Borrowed(_)), "service must borrow");
        assert_eq!(e.kind, Kind::Request);
        assert_eq!(e.outcome, Some(Outcome::Error));
        assert_eq!(e.category, Some(Category::System));
        assert_eq!(e.latency_ms, Some(1840.0));
        assert_eq!(e.sla_breached(), Some(true));
        assert_eq!(e.labels.get("channel"), Some("app"));
        assert_eq!(e.labels.len(), 2);

        let f = decode(br#"{"ts":1763806502113,"service":"support","kind":"feedback","satisfaction":2,"sentiment":-0.7,"complaint":true}"#).unwrap();
        assert_eq!(f.ts, 1_763_806_502_113);
        assert_eq!(f.kind, Kind::Feedback);
        assert_eq!(f.sentiment, Some(-0.7));
        assert_eq!(f.complaint, Some(true));
        assert_eq!(f.sla_breached(), None);
    }

    #[test]
    fn decodes_entity_open_and_close() {
        let e = decode(br#"{"ts":1000,"service":"fulfilment","kind":"custom","entity":"order-17","phase":"open","deadline":"2026-11-22T12:00:00Z"}"#).unwrap();
        assert_eq!(e.entity.as_deref(), Some("order-17"));
        assert_eq!(e.phase, Some(Phase::Open));
        assert_eq!(e.deadline, Some(1_795_348_800_000));
        let c =
            decode(br#"{"ts":2000,"service":"fulfilment","entity":"order-17","phase":"close"}"#)
                .unwrap();
        assert_eq!((c.phase, c.deadline), (Some(Phase::Close), None));
    }

    #[test]
    fn ignores_unknown_fields_and_defaults_kind() {
        let e = decode(br#"{"extra":{"deep":[1,2,{"x":null}]},"ts":0,"service":"s"}"#).unwrap();
        assert_eq!(e.kind, Kind::Custom);
    }

    #[test]
    fn escaped_strings_are_decoded() {
        let e = decode(br#"{"ts":0,"service":"a\u00e9b","labels":{"k\"":"v\/"}}"#).unwrap();
        assert_eq!(e.service, "a\u{e9}b");
        assert_eq!(e.labels.get("k\""), Some("v/"));
    }

    #[test]
    fn every_rejection_reason() {
        let cases: &[(&str, &str)] = &[
            ("{", "invalid_json"),
            ("not json", "invalid_json"),
            (r#"{"ts":0,"service":"s"} trailing"#, "invalid_json"),
            ("[1,2]", "not_an_object"),
            ("42", "not_an_object"),
            (r#"{"service":"s"}"#, "missing_field"),
            (r#"{"ts":0}"#, "missing_field"),
            (r#"{"ts":0,"ts":1,"service":"s"}"#, "duplicate_field"),
            (
                r#"{"ts":0,"service":"s","labels":{},"labels":{}}"#,
                "duplicate_field",
            ),
            (r#"{"ts":0,"service":7}"#, "wrong_type"),
            (r#"{"ts":0,"service":"s","latency_ms":"12"}"#, "wrong_type"),
            (r#"{"ts":0,"service":"s","complaint":"yes"}"#, "wrong_type"),
            (r#"{"ts":0,"service":"s","labels":{"a":1}}"#, "wrong_type"),
            (r#"{"ts":0,"service":"s","labels":["a"]}"#, "wrong_type"),
            (r#"{"ts":true,"service":"s"}"#, "wrong_type"),
            (r#"{"ts":"yesterday","service":"s"}"#, "bad_timestamp"),
            (r#"{"ts":-5,"service":"s"}"#, "bad_timestamp"),
            (r#"{"ts":1.5,"service":"s"}"#, "bad_timestamp"),
            (r#"{"ts":0,"service":"s","kind":"bogus"}"#, "unknown_value"),
            (r#"{"ts":0,"service":"s","outcome":"meh"}"#, "unknown_value"),
            (r#"{"ts":0,"service":"s","category":"x"}"#, "unknown_value"),
            (r#"{"ts":0,"service":"s","satisfaction":9}"#, "out_of_range"),
            (r#"{"ts":0,"service":"s","sentiment":-1.5}"#, "out_of_range"),
            (r#"{"ts":0,"service":"s","latency_ms":-1}"#, "out_of_range"),
            // JSON has no NaN or infinity literals; they are syntax errors.
            (r#"{"ts":0,"service":"s","latency_ms":NaN}"#, "invalid_json"),
            (
                r#"{"ts":0,"service":"s","sentiment":-Infinity}"#,
                "invalid_json",
            ),
            (r#"{"ts":0,"service":""}"#, "bad_length"),
            (r#"{"ts":0,"service":"a\u001fb"}"#, "control_character"),
            (
                r#"{"ts":0,"service":"s","labels":{"k":"line\nbreak"}}"#,
                "control_character",
            ),
            (r#"{"ts":0,"service":"s","labels":{"":"v"}}"#, "bad_length"),
            (r#"{"ts":0,"service":"s","phase":"done"}"#, "unknown_value"),
            (r#"{"ts":0,"service":"s","entity":""}"#, "bad_length"),
            (r#"{"ts":0,"service":"s","entity":7}"#, "wrong_type"),
            (
                r#"{"ts":0,"service":"s","entity":"a\u0000"}"#,
                "control_character",
            ),
            (
                r#"{"ts":0,"service":"s","deadline":"soon"}"#,
                "bad_timestamp",
            ),
            (
                r#"{"ts":0,"service":"s","deadline":1,"deadline":2}"#,
                "duplicate_field",
            ),
            // Lookalike services and labels: raw (fast path) and escaped.
            (
                r#"{"ts":0,"service":"s","labels":{"x":"1","x":"2"}}"#,
                "duplicate_field",
            ),
            (r#"{"ts":0,"service":"pay\u0085"}"#, "control_character"),
            ("{\"ts\":0,\"service\":\"pay\u{85}\"}", "control_character"),
            ("{\"ts\":0,\"service\":\"pay\u{7f}\"}", "control_character"),
            (
                "{\"ts\":0,\"service\":\"pay\u{200b}\"}",
                "control_character",
            ),
            (r#"{"ts":0,"service":"\u202epay"}"#, "control_character"),
            (
                "{\"ts\":0,\"service\":\"\u{2067}pay\"}",
                "control_character",
            ),
            (
                "{\"ts\":0,\"service\":\"\u{feff}pay\"}",
                "control_character",
            ),
            (
                "{\"ts\":0,\"service\":\"s\",\"labels\":{\"r\":\"eu\u{200d}\"}}",
                "control_character",
            ),
            (
                "{\"ts\":0,\"service\":\"s\",\"labels\":{\"r\u{ad}\":\"eu\"}}",
                "control_character",
            ),
            // A leap second is 23:59:60 UTC only.
            (
                r#"{"ts":"2026-11-20T10:00:60Z","service":"s"}"#,
                "bad_timestamp",
            ),
            (
                r#"{"ts":"2016-12-31T23:59:60+01:00","service":"s"}"#,
                "bad_timestamp",
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(err(input).reason(), *reason, "{input}: {}", err(input));
        }
        // Invalid UTF-8 is refused wherever it is, unknown fields included, by
        // both paths (the escape sends the second one down the serde path).
        for input in [
            b"{\"ts\":0,\"service\":\"s\",\"x\":\"\xff\"}".as_slice(),
            b"{\"ts\":0,\"service\":\"s\",\"e\":\"\\u00e9\",\"x\":\"\xfe\"}",
        ] {
            let e = decode(input).unwrap_err();
            assert_eq!(e.reason(), "invalid_json", "{e}");
            assert!(e.to_string().contains("invalid UTF-8"), "{e}");
        }
        // Still fine: a real leap second, ordinary non-ASCII names.
        for ok in [
            r#"{"ts":"2016-12-31T23:59:60Z","service":"s"}"#,
            r#"{"ts":"2017-01-01T00:59:60+01:00","service":"s"}"#,
            "{\"ts\":0,\"service\":\"caf\u{e9}\",\"labels\":{\"r\u{e9}gion\":\"\u{4e1c}\u{4eac}\"}}",
        ] {
            assert!(decode(ok.as_bytes()).is_ok(), "{ok}: {:?}", decode(ok.as_bytes()));
        }
        let long = format!(
            r#"{{"ts":0,"service":"{}"}}"#,
            "x".repeat(MAX_SERVICE_LEN + 1)
        );
        assert_eq!(err(&long).reason(), "bad_length");
        let long_label = format!(
            r#"{{"ts":0,"service":"s","labels":{{"k":"{}"}}}}"#,
            "v".repeat(MAX_LABEL_VALUE_LEN + 1)
        );
        assert_eq!(err(&long_label).reason(), "bad_length");
        let many: Vec<String> = (0..=MAX_LABELS).map(|i| format!(r#""k{i}":"v""#)).collect();
        let many = format!(
            r#"{{"ts":0,"service":"s","labels":{{{}}}}}"#,
            many.join(",")
        );
        assert_eq!(err(&many), DecodeError::TooManyLabels);
        let huge = vec![b' '; MAX_EVENT_BYTES + 1];
        assert_eq!(decode(&huge).unwrap_err().reason(), "too_large");
        // serde_json refuses numbers that overflow f64 rather than yielding infinity.
        assert_eq!(
            err(r#"{"ts":0,"service":"s","latency_ms":1e999}"#).reason(),
            "invalid_json"
        );
        // A document cut off inside a value is a syntax error, not a wrong type.
        assert_eq!(
            err(r#"{"ts":0,"service":"s","latency_ms":"#).reason(),
            "invalid_json"
        );
    }

    #[test]
    fn messages_name_the_field() {
        let e = err(r#"{"ts":0,"service":"s","latency_ms":"12"}"#);
        assert_eq!(e.to_string(), "field `latency_ms` must be a number");
        let e = err(r#"{"ts":0,"service":"s","kind":"bogus"}"#);
        assert!(e.to_string().contains("`bogus`"), "{e}");
    }
}
