//! The config file as written: serde structs that mirror the TOML, one doc comment
//! per field. Nothing here is checked beyond types; `validate` does the rest.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use crate::event::Category;
use crate::event::{Kind, Outcome};

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Event-time settings.
    #[serde(default)]
    pub time: RawTime,
    /// Resource caps.
    #[serde(default)]
    pub limits: RawLimits,
    /// How alerts are labelled and linked.
    #[serde(default)]
    pub alerts: RawAlerts,
    /// What to compute.
    #[serde(default)]
    pub signals: Vec<Spanned<RawSignal>>,
    /// When to alert.
    #[serde(default)]
    pub rules: Vec<Spanned<RawRule>>,
    /// Kafka input and outputs.
    #[serde(default)]
    pub kafka: super::kafka::RawKafka,
}

/// `[time]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTime {
    /// How far behind the newest event time an event may arrive and still count.
    pub allowed_lateness: Option<Spanned<String>>,
    /// Wall-clock silence after which a partition's watermark follows the clock.
    pub idle_timeout: Option<Spanned<String>>,
    /// How far ahead of the wall clock an event time may be before it is rejected.
    pub max_future_skew: Option<Spanned<String>>,
    /// How far ahead of its partition a service may run before it goes on its
    /// own event time.
    pub max_service_lead: Option<Spanned<String>>,
}

/// `[limits]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Most distinct groups (service + group_by labels) tracked per grouping.
    pub max_groups: Option<Spanned<i64>>,
    /// Memory for window state, e.g. "2GiB": caps groups at this over one
    /// group's fixed state, and refuses a config one group of which could not fit.
    pub max_memory: Option<Spanned<String>>,
}

/// `[alerts]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// Base URL put in each alert's generatorURL (the rule name is appended).
    pub generator_url: Option<String>,
    /// Labels added to every alert (e.g. `env = "prod"`).
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
}

/// How a signal aggregates the events that match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RawAggregate {
    /// Number of matching events.
    Count,
    /// Matching events / events matching `of` (or all events of the group).
    Rate,
    /// Sum of `field`.
    Sum,
    /// Mean of `field`.
    Mean,
    /// `quantile` of `field`.
    Quantile,
    /// Largest `field`.
    Max,
    /// Entities open now (SLA timers: `entity` + `phase` events).
    Open,
    /// Open entities past their deadline.
    Overdue,
    /// Open entities past `at_risk` of their allowance, not yet overdue.
    #[serde(rename = "at_risk")]
    AtRisk,
    /// Overdue over open entities.
    #[serde(rename = "overdue_rate")]
    OverdueRate,
    /// At risk or overdue over open entities.
    #[serde(rename = "at_risk_rate")]
    AtRiskRate,
}

/// A numeric event field a signal can aggregate or a filter can compare.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum ValueField {
    /// `latency_ms`
    LatencyMs,
    /// `sla_ms`
    SlaMs,
    /// `satisfaction`
    Satisfaction,
    /// `sentiment`
    Sentiment,
    /// `latency_ms / sla_ms`: above 1 means the SLA was missed.
    SlaRatio,
}

impl ValueField {
    /// Config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueField::LatencyMs => "latency_ms",
            ValueField::SlaMs => "sla_ms",
            ValueField::Satisfaction => "satisfaction",
            ValueField::Sentiment => "sentiment",
            ValueField::SlaRatio => "sla_ratio",
        }
    }
}

/// `[[signals]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSignal {
    /// Unique name, `[a-z0-9_]`; rules refer to it.
    pub name: String,
    /// Free text shown in `forewarn check` and alerts.
    pub description: Option<String>,
    /// count | rate | sum | mean | quantile | max.
    pub aggregate: RawAggregate,
    /// The field for sum, mean, quantile and max.
    pub field: Option<ValueField>,
    /// For `quantile`: which one, in (0, 1).
    pub quantile: Option<f64>,
    /// Which events count (the numerator for `rate`).
    #[serde(default)]
    pub filter: RawFilter,
    /// For `rate`: the denominator's filter (default: every event of the group).
    pub of: Option<RawFilter>,
    /// Labels that split the signal beyond `service`.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Window length (not for timer signals: open, overdue, at_risk, overdue_rate).
    pub window: Option<Spanned<String>>,
    /// How often the window moves (default: `window`, i.e. tumbling); for timer
    /// signals, how often they are read (default 30s).
    pub slide: Option<Spanned<String>>,
    /// Timer signals: share of an entity's allowance after which it is at risk
    /// (default 0.8).
    pub at_risk: Option<f64>,
    /// Timer signals: most open entities per group (default 10000); further
    /// opens are refused and counted.
    pub max_entities: Option<Spanned<i64>>,
    /// Timer signals: the deadline after `open` when the event has neither
    /// `deadline` nor `sla_ms`.
    pub allowance: Option<Spanned<String>>,
}

/// Event filter; every given condition must hold.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFilter {
    /// Service name(s).
    pub service: Option<OneOrMany<String>>,
    /// Event kind(s).
    pub kind: Option<OneOrMany<Kind>>,
    /// Outcome(s); events without an outcome do not match.
    pub outcome: Option<OneOrMany<Outcome>>,
    /// Category(ies); events without a category do not match.
    pub category: Option<OneOrMany<Category>>,
    /// Complaint flag.
    pub complaint: Option<bool>,
    /// Whether latency_ms exceeded sla_ms (events lacking either do not match).
    pub sla_breached: Option<bool>,
    /// Label equality: `labels = { region = "eu-west", channel = ["app", "web"] }`.
    #[serde(default)]
    pub labels: BTreeMap<String, OneOrMany<String>>,
    /// Fields that must be present.
    pub has: Option<OneOrMany<ValueField>>,
    /// Fields that must be strictly above a value: `above = { latency_ms = 1000 }`.
    #[serde(default)]
    pub above: BTreeMap<ValueField, f64>,
    /// Fields that must be strictly below a value: `below = { sentiment = -0.3 }`.
    #[serde(default)]
    pub below: BTreeMap<ValueField, f64>,
}

/// Direction of a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// Breach when the value is above the level.
    #[default]
    Above,
    /// Breach when the value is below the level.
    Below,
}

/// A severity level: `0.05` or `{ value = 0.10, clear = 0.08 }`.
#[derive(Debug, Clone, Copy)]
pub struct RawLevel {
    /// Breach level.
    pub value: f64,
    /// Recovery level (hysteresis); defaults to `value`.
    pub clear: Option<f64>,
}

/// `[[rules]]`: every field, in file order, with the span of its value. The
/// common fields are read by `config::rule`, the rest by the rule's kind
/// (`crate::rules`), each with its own serde struct.
#[derive(Debug)]
pub struct RawRule(pub Vec<(String, Spanned<toml::Value>)>);

impl<'de> Deserialize<'de> for RawRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawRule;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a rule table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawRule, A::Error> {
                let mut fields = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    fields.push((k, map.next_value::<Spanned<toml::Value>>()?));
                }
                Ok(RawRule(fields))
            }
        }
        d.deserialize_map(V)
    }
}

/// A single value or a list of them.
#[derive(Debug, Clone)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value or a list of values")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(de::value::StrDeserializer::<E>::new(v)).map(|t| OneOrMany(vec![t]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(t) = seq.next_element()? {
                    out.push(t);
                }
                Ok(OneOrMany(out))
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

impl<'de> Deserialize<'de> for RawLevel {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            value: f64,
            clear: Option<f64>,
        }
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RawLevel;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number or a table { value = N, clear = N }")
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawLevel, E> {
                Ok(RawLevel {
                    value: v,
                    clear: None,
                })
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawLevel, E> {
                Ok(RawLevel {
                    value: v as f64,
                    clear: None,
                })
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawLevel, E> {
                Ok(RawLevel {
                    value: v as f64,
                    clear: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawLevel, A::Error> {
                let t = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(RawLevel {
                    value: t.value,
                    clear: t.clear,
                })
            }
        }
        d.deserialize_any(V)
    }
}
