//! The validated configuration: what to compute (signals), when to alert (rules),
//! and the time settings. [`Config::parse`] reads TOML into the `raw` structs, then
//! checks every cross-field rule and refuses the file with its name, line, column and
//! what to fix.

pub mod estimate;
mod identity;
pub mod kafka;
pub(crate) mod raw;
mod rule;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::ops::Range;

use raw::{OneOrMany, RawConfig, RawFilter, RawSignal};
pub use raw::{Op, RawAggregate, ValueField};

pub use crate::lifecycle::{Lifecycle, Trigger};
pub use crate::rules::threshold::{Confidence, Level, Threshold};
pub use crate::rules::RuleSpec;
use toml::Spanned;

use crate::event::{Category, Kind, Outcome};
use crate::time::{format_duration, parse_duration, Millis};

/// Most panes one window may span (window / gcd(window, slide)).
pub const MAX_PANES_PER_WINDOW: i64 = 1440;
/// `[limits] max_memory` when unset.
pub const DEFAULT_MAX_MEMORY: u64 = 4 << 30;
/// Longest `m_of_n` history.
pub const MAX_M_OF_N: u32 = 64;

/// A config file refused at start-up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}\n  help: {help}")]
pub struct ConfigError {
    /// The file as named by the user.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

/// Event-time settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TimeConfig {
    /// Watermark = newest event time − this.
    pub allowed_lateness: Millis,
    /// Wall-clock silence after which the watermark follows the wall clock.
    pub idle_timeout: Millis,
    /// Events further than this ahead of the wall clock are rejected.
    pub max_future_skew: Millis,
    /// A service whose events run more than this ahead of its partition goes
    /// on its own event time (`engine/lead.rs`). Default: the larger of
    /// `allowed_lateness` and `idle_timeout`; at least `allowed_lateness`.
    pub max_service_lead: Millis,
}

/// How a signal aggregates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregate {
    /// Number of matching events.
    Count,
    /// Matching / denominator events.
    Rate,
    /// Sum of the field.
    Sum,
    /// Mean of the field.
    Mean,
    /// The given quantile of the field.
    Quantile(f64),
    /// Largest value of the field.
    Max,
    /// A count of open entities now (see [`crate::timers`]).
    Timer(crate::timers::Measure),
}

/// A compiled event filter. Empty conditions match everything.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Allowed services (empty: any).
    pub services: Vec<String>,
    /// Bit mask of allowed kinds (0: any).
    pub kinds: u8,
    /// Bit mask of allowed outcomes (0: any).
    pub outcomes: u8,
    /// Bit mask of allowed categories (0: any).
    pub categories: u8,
    /// Required complaint flag.
    pub complaint: Option<bool>,
    /// Required SLA-breach state.
    pub sla_breached: Option<bool>,
    /// Label name and allowed values.
    pub labels: Vec<(String, Vec<String>)>,
    /// Fields that must be present.
    pub has: Vec<ValueField>,
    /// Field must be strictly above.
    pub above: Vec<(ValueField, f64)>,
    /// Field must be strictly below.
    pub below: Vec<(ValueField, f64)>,
}

/// A signal: a windowed aggregate over matching events, per group.
#[derive(Debug, Clone, PartialEq)]
pub struct SignalDef {
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The aggregate.
    pub aggregate: Aggregate,
    /// The aggregated field (sum, mean, quantile, max).
    pub field: Option<ValueField>,
    /// Which events count.
    pub filter: Filter,
    /// Rate denominator (None: every event of the group).
    pub of: Option<Filter>,
    /// Labels beyond `service` that split groups.
    pub group_by: Vec<String>,
    /// Window length.
    pub window: Millis,
    /// Window slide.
    pub slide: Millis,
    /// Pane size: gcd(window, slide).
    pub pane: Millis,
    /// For timer signals: the entity table's parameters.
    pub timer: Option<crate::timers::TimerDef>,
}

/// Alert severity.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Needs attention soon.
    Warning,
    /// Page someone.
    Critical,
}

impl Severity {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// A rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleDef {
    /// Unique name (alertname).
    pub name: String,
    /// What it checks: the kind and its parameters.
    pub spec: RuleSpec,
    /// `for` / `m_of_n` and `keep_firing_for`.
    pub lifecycle: Lifecycle,
    /// Time between evaluations (the driving signal's slide, or the kind's own
    /// interval).
    pub period: Millis,
    /// Failure category label.
    pub category: Option<Category>,
    /// Extra labels.
    pub labels: BTreeMap<String, String>,
    /// Summary template.
    pub summary: String,
    /// Extra annotation templates.
    pub annotations: BTreeMap<String, String>,
}

/// A validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Time settings.
    pub time: TimeConfig,
    /// Most groups per grouping, as configured; `group_cap` is what the engine
    /// enforces.
    pub max_groups: usize,
    /// Groups admitted per grouping: `max_groups`, or fewer if that many groups'
    /// fixed window state would not fit in `max_memory`.
    pub group_cap: usize,
    /// Memory for window state (`[limits] max_memory`).
    pub max_memory: u64,
    /// One group's window state, from windows and lateness.
    pub group_state: estimate::GroupState,
    /// Base of generatorURL.
    pub generator_url: String,
    /// Labels added to every alert.
    pub external_labels: BTreeMap<String, String>,
    /// Signals, in file order.
    pub signals: Vec<SignalDef>,
    /// Rules, in file order.
    pub rules: Vec<RuleDef>,
    /// Kafka input and outputs (`forewarn run`).
    pub kafka: kafka::KafkaConfig,
}

/// Placeholders accepted in summary and annotation templates.
pub const TEMPLATE_FIELDS: &[&str] = &[
    "service",
    "value",
    "threshold",
    "severity",
    "rule",
    "signal",
    "window",
    "category",
];

/// Where a config comes from, for located errors.
pub(crate) struct Ctx<'a> {
    file: &'a str,
    src: &'a str,
}

impl Ctx<'_> {
    /// The config file's name as given.
    pub(crate) fn file(&self) -> &str {
        self.file
    }

    pub(crate) fn err(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> ConfigError {
        let at = span.start.min(self.src.len());
        let before = &self.src[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
            help: help.into(),
        }
    }

    fn duration(&self, s: &Spanned<String>, what: &str) -> Result<Millis, ConfigError> {
        parse_duration(s.get_ref()).map_err(|m| {
            self.err(
                s.span(),
                format!("`{what}`: {m}"),
                "durations look like \"500ms\", \"30s\", \"5m\", \"1h30m\"",
            )
        })
    }
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// A `group_by` list: label names, never `service` (always grouped).
pub(crate) fn check_group_by(labels: &[String]) -> Result<(), (String, &'static str)> {
    match labels.iter().find(|g| !is_label_name(g) || *g == "service") {
        Some(g) => Err((
            format!("group_by entry `{g}` is not a label name (service is always grouped)"),
            "list event label names such as \"region\"",
        )),
        None => Ok(()),
    }
}

pub(crate) fn is_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

impl Config {
    /// Parses and validates TOML config text. `file` names it in errors.
    pub fn parse(src: &str, file: &str) -> Result<Config, ConfigError> {
        let cx = Ctx { file, src };
        let raw: RawConfig = toml::from_str(src).map_err(|e| {
            cx.err(
                e.span().unwrap_or(0..0),
                e.message().trim().to_string(),
                "fix the TOML at that position; see deploy/forewarn.example.toml for every field",
            )
        })?;
        validate(&cx, raw)
    }

    /// A human summary of what was understood, for `forewarn check`.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let t = &self.time;
        out.push_str(&format!(
            "time: allowed_lateness={} idle_timeout={} max_future_skew={} max_service_lead={}; max_groups={}\n",
            format_duration(t.allowed_lateness),
            format_duration(t.idle_timeout),
            format_duration(t.max_future_skew),
            format_duration(t.max_service_lead),
            self.max_groups
        ));
        let g = &self.group_state;
        out.push_str(&format!(
            "memory: window state {} per group, at most {} with every sketch full; max_memory={} admits {} groups per grouping{}\n",
            estimate::format_bytes(g.fixed),
            estimate::format_bytes(g.worst),
            estimate::format_bytes(self.max_memory),
            self.group_cap,
            if self.group_cap < self.max_groups { " (fewer than max_groups)" } else { "" },
        ));
        let k = &self.kafka;
        out.push_str(&format!(
            "kafka: brokers={} group={} topics={} alerts={} dead letters={} properties={:?}\n",
            k.brokers,
            k.group_id,
            k.topics.join(","),
            k.alerts_topic,
            k.dead_letter_topic,
            k.redacted_properties()
        ));
        out.push_str(&format!("{} signal(s):\n", self.signals.len()));
        for s in &self.signals {
            let agg = match s.aggregate {
                Aggregate::Quantile(q) => {
                    format!("p{}({})", q * 100.0, s.field.map_or("", |f| f.as_str()))
                }
                Aggregate::Count => "count".into(),
                Aggregate::Rate => "rate".into(),
                Aggregate::Timer(m) => {
                    let t = s.timer.unwrap_or(crate::timers::TimerDef {
                        at_risk: 0.8,
                        max_entities: 0,
                        allowance: None,
                    });
                    format!(
                        "entities {} (at risk after {}% of the allowance, at most {} open{})",
                        format!("{m:?}").to_lowercase(),
                        t.at_risk * 100.0,
                        t.max_entities,
                        t.allowance.map_or(String::new(), |a| format!(
                            ", default allowance {}",
                            format_duration(a)
                        ))
                    )
                }
                a => format!(
                    "{}({})",
                    format!("{a:?}").to_lowercase(),
                    s.field.map_or("", |f| f.as_str())
                ),
            };
            let window = if s.timer.is_some() {
                format!("read every {}", format_duration(s.slide))
            } else if s.slide == s.window {
                format!("tumbling {}", format_duration(s.window))
            } else {
                format!(
                    "sliding {} every {}",
                    format_duration(s.window),
                    format_duration(s.slide)
                )
            };
            let mut by = vec!["service".to_string()];
            by.extend(s.group_by.iter().cloned());
            out.push_str(&format!(
                "  {}: {agg}, {window}, by {}\n",
                s.name,
                by.join("+")
            ));
        }
        out.push_str(&format!("{} rule(s):\n", self.rules.len()));
        for r in &self.rules {
            out.push_str(&format!(
                "  {}: {}{}\n",
                r.name,
                r.spec.describe(&self.signals),
                r.lifecycle_text()
            ));
        }
        out
    }
}

/// `max_service_lead`, defaulted and checked: below `allowed_lateness`,
/// ordinary disorder would put services on their own time.
fn service_lead(cx: &Ctx, raw: &raw::RawTime, t: &TimeConfig) -> Result<Millis, ConfigError> {
    let Some(given) = &raw.max_service_lead else {
        return Ok(t.allowed_lateness.max(t.idle_timeout));
    };
    let lead = cx.duration(given, "max_service_lead")?;
    if lead < t.allowed_lateness || lead == 0 {
        return Err(cx.err(
            given.span(),
            format!(
                "`max_service_lead` ({}) is below `allowed_lateness` ({}): events that are merely out of order would put their service on its own time",
                format_duration(lead),
                format_duration(t.allowed_lateness)
            ),
            format!(
                "give at least \"{}\" (or leave it out: the larger of allowed_lateness and idle_timeout)",
                format_duration(t.allowed_lateness.max(1000))
            ),
        ));
    }
    Ok(lead)
}

fn validate(cx: &Ctx, raw: RawConfig) -> Result<Config, ConfigError> {
    let dur_or =
        |s: &Option<Spanned<String>>, what: &str, default: Millis| -> Result<Millis, ConfigError> {
            s.as_ref().map_or(Ok(default), |s| cx.duration(s, what))
        };
    let mut time = TimeConfig {
        allowed_lateness: dur_or(&raw.time.allowed_lateness, "allowed_lateness", 10_000)?,
        idle_timeout: dur_or(&raw.time.idle_timeout, "idle_timeout", 30_000)?,
        max_future_skew: dur_or(&raw.time.max_future_skew, "max_future_skew", 300_000)?,
        max_service_lead: 0,
    };
    time.max_service_lead = service_lead(cx, &raw.time, &time)?;
    // Defaults are positive, so only a value given in the file can be zero.
    for (val, field, name) in [
        (time.idle_timeout, &raw.time.idle_timeout, "idle_timeout"),
        (
            time.max_future_skew,
            &raw.time.max_future_skew,
            "max_future_skew",
        ),
    ] {
        if let (0, Some(f)) = (val, field) {
            return Err(cx.err(
                f.span(),
                format!("`{name}` must be greater than zero"),
                "give a positive duration such as \"30s\"",
            ));
        }
    }
    let max_groups = match &raw.limits.max_groups {
        None => 100_000,
        Some(m) if *m.get_ref() >= 1 => *m.get_ref() as usize,
        Some(m) => {
            return Err(cx.err(
                m.span(),
                "`max_groups` must be at least 1",
                "set a cap such as 100000",
            ))
        }
    };
    let max_memory =
        match &raw.limits.max_memory {
            None => DEFAULT_MAX_MEMORY,
            Some(m) => match estimate::parse_bytes(m.get_ref()) {
                Ok(n) if n > 0 => n,
                Ok(_) => {
                    return Err(cx.err(
                        m.span(),
                        "`max_memory` must be more than zero",
                        "give a size such as \"4GiB\"",
                    ))
                }
                Err(e) => return Err(cx.err(
                    m.span(),
                    format!("`max_memory`: {e}"),
                    "give a size such as \"4GiB\" (units B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)",
                )),
            },
        };
    for name in raw.alerts.external_labels.keys() {
        if !is_label_name(name) {
            return Err(cx.err(
                0..0,
                format!("external label `{name}` is not a valid label name"),
                "use letters, digits and _; start with a letter",
            ));
        }
    }

    let mut signals = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    for s in &raw.signals {
        let def = signal(cx, s)?;
        if by_name.insert(def.name.clone(), signals.len()).is_some() {
            return Err(cx.err(
                s.span(),
                format!("signal `{}` is defined twice", def.name),
                "give each signal a unique name",
            ));
        }
        signals.push(def);
    }

    let mut rules = Vec::new();
    let mut rule_names = HashMap::new();
    for r in &raw.rules {
        let def = rule::rule(cx, r, &by_name, &signals, time.allowed_lateness)?;
        if rule_names.insert(def.name.clone(), ()).is_some() {
            return Err(cx.err(
                r.span(),
                format!("rule `{}` is defined twice", def.name),
                "give each rule a unique name",
            ));
        }
        rules.push(def);
    }
    if rules.is_empty() {
        return Err(cx.err(
            0..0,
            "no rules defined",
            "add at least one [[rules]] table; see deploy/forewarn.example.toml",
        ));
    }
    let group_state = estimate::group_state(&signals, time.allowed_lateness);
    fits_in_memory(cx, &raw.signals, &signals, &time, &group_state, max_memory)?;
    let kafka = kafka_section(cx, raw.kafka)?;
    Ok(Config {
        kafka,
        time,
        max_groups,
        group_cap: group_cap(max_groups, max_memory, &group_state),
        max_memory,
        group_state,
        generator_url: raw
            .alerts
            .generator_url
            .unwrap_or_else(|| "http://localhost:9898".into()),
        external_labels: raw.alerts.external_labels,
        signals,
        rules,
    })
}

/// `max_groups`, or fewer if that many groups' fixed window state would not
/// fit in `max_memory` (at least one: a group that fits was checked).
fn group_cap(max_groups: usize, max_memory: u64, state: &estimate::GroupState) -> usize {
    let fit = max_memory / state.fixed.max(1);
    max_groups
        .min(usize::try_from(fit).unwrap_or(usize::MAX))
        .max(1)
}

/// Refuses a config one group of which could need more than `max_memory`,
/// naming the signal that costs most.
fn fits_in_memory(
    cx: &Ctx,
    raw: &[Spanned<RawSignal>],
    signals: &[SignalDef],
    time: &TimeConfig,
    state: &estimate::GroupState,
    max_memory: u64,
) -> Result<(), ConfigError> {
    let Some((i, worst)) = state.largest.filter(|_| state.worst > max_memory) else {
        return Ok(());
    };
    let s = &signals[i];
    Err(cx.err(
        raw[i].span(),
        format!(
            "one group's window state could reach {} ({} for signal `{}`: {} pane slots of {} to cover window {} + slide {} + allowed_lateness {}); [limits] max_memory is {}",
            estimate::format_bytes(state.worst),
            estimate::format_bytes(worst),
            s.name,
            s.ring_len(time.allowed_lateness),
            format_duration(s.pane),
            format_duration(s.window),
            format_duration(s.slide),
            format_duration(time.allowed_lateness),
            estimate::format_bytes(max_memory),
        ),
        "shorten [time] allowed_lateness or the signal's window, or raise [limits] max_memory",
    ))
}

fn kafka_section(cx: &Ctx, raw: kafka::RawKafka) -> Result<kafka::KafkaConfig, ConfigError> {
    let mut k = kafka::KafkaConfig::default();
    let nonempty = |s: &Spanned<String>, what: &str| -> Result<String, ConfigError> {
        if s.get_ref().trim().is_empty() {
            return Err(cx.err(
                s.span(),
                format!("`kafka.{what}` is empty"),
                "give a value or remove the line",
            ));
        }
        Ok(s.get_ref().clone())
    };
    if let Some(b) = &raw.brokers {
        k.brokers = nonempty(b, "brokers")?;
    }
    if let Some(g) = &raw.group_id {
        k.group_id = nonempty(g, "group_id")?;
    }
    let topic_help = "Kafka topic names use letters, digits, `.`, `_` and `-`";
    if let Some(t) = &raw.topics {
        if t.get_ref().is_empty() {
            return Err(cx.err(
                t.span(),
                "`kafka.topics` is empty",
                "list the topics of service events, e.g. [\"service-events\"]",
            ));
        }
        for name in t.get_ref() {
            kafka::check_topic(name).map_err(|m| cx.err(t.span(), m, topic_help))?;
        }
        k.topics = t.get_ref().clone();
    }
    for (slot, field, what) in [
        (&mut k.alerts_topic, &raw.alerts_topic, "alerts_topic"),
        (
            &mut k.dead_letter_topic,
            &raw.dead_letter_topic,
            "dead_letter_topic",
        ),
    ] {
        if let Some(t) = field {
            kafka::check_topic(t.get_ref())
                .map_err(|m| cx.err(t.span(), format!("`kafka.{what}`: {m}"), topic_help))?;
            *slot = t.get_ref().clone();
        }
    }
    let span_of = |f: &Option<Spanned<String>>| f.as_ref().map_or(0..0, |s| s.span());
    if k.topics.contains(&k.dead_letter_topic) || k.topics.contains(&k.alerts_topic) {
        let at = span_of(&raw.dead_letter_topic)
            .start
            .max(span_of(&raw.alerts_topic).start);
        return Err(cx.err(
            at..at,
            "an output topic is also an input topic",
            "alerts and dead letters would be consumed again; use topics of their own",
        ));
    }
    if k.alerts_topic == k.dead_letter_topic {
        return Err(cx.err(
            span_of(&raw.dead_letter_topic),
            "`kafka.dead_letter_topic` is the alerts topic",
            "give dead letters a topic of their own",
        ));
    }
    if let Some(t) = raw
        .checkpoint_topic
        .as_ref()
        .filter(|t| !t.get_ref().is_empty())
    {
        kafka::check_topic(t.get_ref()).map_err(|m| {
            cx.err(
                t.span(),
                format!("`kafka.checkpoint_topic`: {m}"),
                topic_help,
            )
        })?;
        let name = t.get_ref();
        if k.topics.contains(name) || *name == k.alerts_topic || *name == k.dead_letter_topic {
            return Err(cx.err(
                t.span(),
                "`kafka.checkpoint_topic` is also an input or output topic",
                "give checkpoints a compacted topic of their own",
            ));
        }
        k.checkpoint_topic = Some(name.clone());
    }
    if let Some(i) = &raw.checkpoint_interval {
        let ms = cx.duration(i, "kafka.checkpoint_interval")?;
        if ms < 100 {
            return Err(cx.err(
                i.span(),
                "`kafka.checkpoint_interval` is below 100ms",
                "checkpoints every few seconds to a minute are usual, e.g. \"30s\"",
            ));
        }
        k.checkpoint_interval = ms;
    }
    for (key, value) in &raw.properties {
        kafka::check_property(key).map_err(|m| {
            cx.err(
                value.span(),
                m,
                "see librdkafka's CONFIGURATION.md for property names",
            )
        })?;
        let text = match value.get_ref() {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            _ => {
                return Err(cx.err(
                    value.span(),
                    format!("property `{key}` must be a string, number or boolean"),
                    "librdkafka properties are scalars",
                ))
            }
        };
        k.properties.insert(key.clone(), text);
    }
    Ok(k)
}

pub(crate) fn filter(
    cx: &Ctx,
    span: Range<usize>,
    f: &RawFilter,
    what: &str,
) -> Result<Filter, ConfigError> {
    fn mask<T: Copy>(v: &Option<OneOrMany<T>>, bit: fn(T) -> u8) -> u8 {
        v.as_ref()
            .map_or(0, |v| v.0.iter().fold(0, |m, x| m | bit(*x)))
    }
    let empty = |name: &str| {
        cx.err(
            span.clone(),
            format!("{what}: `{name}` is an empty list, which would match nothing"),
            "list at least one value or remove the condition",
        )
    };
    macro_rules! nonempty {
        ($opt:expr, $name:literal) => {
            if matches!(&$opt, Some(v) if v.0.is_empty()) {
                return Err(empty($name));
            }
        };
    }
    nonempty!(f.service, "service");
    nonempty!(f.kind, "kind");
    nonempty!(f.outcome, "outcome");
    nonempty!(f.category, "category");
    let mut labels = Vec::new();
    for (k, v) in &f.labels {
        if v.0.is_empty() {
            return Err(empty("labels"));
        }
        labels.push((k.clone(), v.0.clone()));
    }
    for (field, v) in f.above.iter().chain(f.below.iter()) {
        if !v.is_finite() {
            return Err(cx.err(
                span.clone(),
                format!(
                    "{what}: comparison on `{}` is not a finite number",
                    field.as_str()
                ),
                "use a finite number",
            ));
        }
    }
    Ok(Filter {
        services: f.service.as_ref().map_or_else(Vec::new, |s| s.0.clone()),
        kinds: mask(&f.kind, Kind::bit),
        outcomes: mask(&f.outcome, Outcome::bit),
        categories: mask(&f.category, Category::bit),
        complaint: f.complaint,
        sla_breached: f.sla_breached,
        labels,
        has: f.has.as_ref().map_or_else(Vec::new, |h| h.0.clone()),
        above: f.above.iter().map(|(k, v)| (*k, *v)).collect(),
        below: f.below.iter().map(|(k, v)| (*k, *v)).collect(),
    })
}

fn signal(cx: &Ctx, s: &Spanned<RawSignal>) -> Result<SignalDef, ConfigError> {
    let span = s.span();
    let r = s.get_ref();
    let name = &r.name;
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(cx.err(
            span,
            format!("signal name `{name}` must be lowercase letters, digits and _"),
            "rename it, e.g. `checkout_error_rate`",
        ));
    }
    if let Some(measure) = timer_measure(r.aggregate) {
        return timer_signal(cx, s, measure);
    }
    let at = |m: String, h: &str| cx.err(span.clone(), format!("signal `{name}`: {m}"), h);
    for (given, field) in [
        (r.at_risk.is_some(), "at_risk"),
        (r.max_entities.is_some(), "max_entities"),
        (r.allowance.is_some(), "allowance"),
    ] {
        if given {
            return Err(at(
                format!(
                    "`{field}` applies to timer signals (open, overdue, at_risk, overdue_rate, at_risk_rate)"
                ),
                &format!("remove `{field}`"),
            ));
        }
    }
    let Some(window_text) = &r.window else {
        return Err(at(
            "needs a `window`".into(),
            "e.g. window = \"5m\", slide = \"10s\"",
        ));
    };
    let needs_field = !matches!(r.aggregate, RawAggregate::Count | RawAggregate::Rate);
    match (needs_field, r.field) {
        (true, None) => {
            return Err(at(
                format!("aggregate `{:?}` needs a `field`", r.aggregate).to_lowercase(),
                "add field = \"latency_ms\" (or sla_ms, satisfaction, sentiment, sla_ratio)",
            ))
        }
        (false, Some(_)) => {
            return Err(at(
                "`field` only applies to sum, mean, quantile and max".into(),
                "remove `field`, or change `aggregate`",
            ))
        }
        _ => {}
    }
    let aggregate = match r.aggregate {
        RawAggregate::Count => Aggregate::Count,
        RawAggregate::Rate => Aggregate::Rate,
        RawAggregate::Sum => Aggregate::Sum,
        RawAggregate::Mean => Aggregate::Mean,
        RawAggregate::Max => Aggregate::Max,
        RawAggregate::Open
        | RawAggregate::Overdue
        | RawAggregate::AtRisk
        | RawAggregate::OverdueRate
        | RawAggregate::AtRiskRate => match timer_measure(r.aggregate) {
            Some(m) => return timer_signal(cx, s, m),
            None => Aggregate::Count,
        },
        RawAggregate::Quantile => match r.quantile {
            Some(q) if q > 0.0 && q < 1.0 => Aggregate::Quantile(q),
            Some(q) => {
                return Err(at(
                    format!("quantile {q} is outside (0, 1)"),
                    "write e.g. quantile = 0.99 for p99",
                ))
            }
            None => {
                return Err(at(
                    "aggregate `quantile` needs `quantile`".into(),
                    "add quantile = 0.99",
                ))
            }
        },
    };
    if r.quantile.is_some() && !matches!(aggregate, Aggregate::Quantile(_)) {
        return Err(at(
            "`quantile` only applies to aggregate = \"quantile\"".into(),
            "remove `quantile`",
        ));
    }
    if r.of.is_some() && aggregate != Aggregate::Rate {
        return Err(at(
            "`of` only applies to aggregate = \"rate\"".into(),
            "remove `of`, or use aggregate = \"rate\"",
        ));
    }
    check_group_by(&r.group_by).map_err(|(m, h)| at(m, h))?;
    let window = cx.duration(window_text, "window")?;
    let slide = match &r.slide {
        Some(s) => cx.duration(s, "slide")?,
        None => window,
    };
    if window == 0 || slide == 0 {
        return Err(cx.err(
            window_text.span(),
            format!("signal `{name}`: window and slide must be greater than zero"),
            "e.g. window = \"5m\", slide = \"10s\"",
        ));
    }
    if slide > window {
        let sp = r.slide.as_ref().map_or(span.clone(), |s| s.span());
        return Err(cx.err(
            sp,
            format!(
                "signal `{name}`: slide ({}) is longer than the window ({})",
                format_duration(slide),
                format_duration(window)
            ),
            "make slide at most the window; equal means tumbling",
        ));
    }
    let pane = gcd(window, slide);
    if window / pane > MAX_PANES_PER_WINDOW {
        return Err(cx.err(window_text.span(), format!("signal `{name}`: window {} with slide {} needs {} panes (limit {MAX_PANES_PER_WINDOW})", format_duration(window), format_duration(slide), window / pane), "choose a slide that divides the window, e.g. window = \"5m\", slide = \"10s\""));
    }
    Ok(SignalDef {
        name: name.clone(),
        description: r.description.clone(),
        aggregate,
        field: r.field,
        filter: filter(
            cx,
            span.clone(),
            &r.filter,
            &format!("signal `{name}` filter"),
        )?,
        of: r
            .of
            .as_ref()
            .map(|f| filter(cx, span.clone(), f, &format!("signal `{name}` of")))
            .transpose()?,
        group_by: r.group_by.clone(),
        window,
        slide,
        pane,
        timer: None,
    })
}

fn timer_measure(a: RawAggregate) -> Option<crate::timers::Measure> {
    use crate::timers::Measure;
    Some(match a {
        RawAggregate::Open => Measure::Open,
        RawAggregate::Overdue => Measure::Overdue,
        RawAggregate::AtRisk => Measure::AtRisk,
        RawAggregate::OverdueRate => Measure::OverdueRate,
        RawAggregate::AtRiskRate => Measure::AtRiskRate,
        _ => return None,
    })
}

/// A timer signal: entities opened and closed by `entity` + `phase` events
/// matching the filter, read every `slide`.
fn timer_signal(
    cx: &Ctx,
    s: &Spanned<RawSignal>,
    measure: crate::timers::Measure,
) -> Result<SignalDef, ConfigError> {
    let (span, r) = (s.span(), s.get_ref());
    let name = &r.name;
    let at = |m: String, h: &str| cx.err(span.clone(), format!("signal `{name}`: {m}"), h);
    for (given, field) in [
        (r.window.is_some(), "window"),
        (r.field.is_some(), "field"),
        (r.quantile.is_some(), "quantile"),
        (r.of.is_some(), "of"),
    ] {
        if given {
            return Err(at(
                format!("`{field}` does not apply to timer signals: they count the entities open at each evaluation"),
                &format!("remove `{field}`; `slide` says how often the signal is read"),
            ));
        }
    }
    let slide = match &r.slide {
        Some(s) => cx.duration(s, "slide")?,
        None => 30_000,
    };
    if slide == 0 {
        return Err(at(
            "`slide` must be greater than zero".into(),
            "e.g. slide = \"30s\"",
        ));
    }
    let at_risk = r.at_risk.unwrap_or(0.8);
    if !(0.0..=1.0).contains(&at_risk) {
        return Err(at(
            format!("at_risk {at_risk} must be within 0..=1"),
            "e.g. at_risk = 0.8: at risk once 80% of the allowance is used",
        ));
    }
    let max_entities = match &r.max_entities {
        None => 10_000,
        Some(m) if *m.get_ref() >= 1 => *m.get_ref() as usize,
        Some(m) => {
            return Err(cx.err(
                m.span(),
                format!("signal `{name}`: max_entities must be at least 1"),
                "e.g. max_entities = 10000",
            ))
        }
    };
    let allowance = r
        .allowance
        .as_ref()
        .map(|a| cx.duration(a, "allowance"))
        .transpose()?;
    check_group_by(&r.group_by).map_err(|(m, h)| at(m, h))?;
    Ok(SignalDef {
        name: name.clone(),
        description: r.description.clone(),
        aggregate: Aggregate::Timer(measure),
        field: None,
        filter: filter(
            cx,
            span.clone(),
            &r.filter,
            &format!("signal `{name}` filter"),
        )?,
        of: None,
        group_by: r.group_by.clone(),
        window: slide,
        slide,
        pane: slide,
        timer: Some(crate::timers::TimerDef {
            at_risk,
            max_entities,
            allowance,
        }),
    })
}

impl RuleDef {
    /// The signal driving the rule, if it reads one.
    pub fn signal(&self) -> Option<usize> {
        match self.spec.input() {
            crate::rules::Input::Signal(s) => Some(s),
            crate::rules::Input::Own { .. } => None,
        }
    }

    /// The `{signal}` placeholder: the driving signal's name, or the rule's own.
    pub fn signal_name<'a>(&'a self, signals: &'a [SignalDef]) -> &'a str {
        self.signal()
            .map_or(self.name.as_str(), |s| signals[s].name.as_str())
    }

    /// `, for 1m, keep firing 2m` — the shared lifecycle, for `forewarn check`.
    fn lifecycle_text(&self) -> String {
        if !self.spec.has_lifecycle() {
            return String::new();
        }
        let trig = match self.lifecycle.trigger {
            Trigger::For(0) => "at once".into(),
            Trigger::For(d) => format!("for {}", format_duration(d)),
            Trigger::MOfN { m, n } => format!("{m} of the last {n} evaluations"),
        };
        let keep = if self.lifecycle.keep_firing_for > 0 {
            format!(
                ", keep firing {}",
                format_duration(self.lifecycle.keep_firing_for)
            )
        } else {
            String::new()
        };
        format!(", {trig}{keep}")
    }
}

impl fmt::Display for Aggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aggregate::Quantile(q) => write!(f, "quantile({q})"),
            Aggregate::Timer(m) => write!(f, "{}", format!("{m:?}").to_lowercase()),
            other => write!(f, "{}", format!("{other:?}").to_lowercase()),
        }
    }
}

#[cfg(test)]
mod tests;
