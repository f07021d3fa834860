//! Alerts in Alertmanager's shape, with a stable fingerprint and an episode id.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Severity;
use crate::lifecycle::TransitionKind;
use crate::time::{format_rfc3339, Millis};

/// A state change of one alert instance, as the engine emits it. Cheap and `Copy`;
/// [`crate::Engine::render`] turns it into an [`Alert`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transition {
    /// Rule index.
    pub rule: u32,
    /// Group id within the rule's grouping.
    pub group: u32,
    /// Severity of the instance.
    pub severity: Severity,
    /// The threshold of that severity (NaN for absent rules).
    pub threshold: f64,
    /// What happened.
    pub kind: TransitionKind,
    /// Evaluation time (window end).
    pub at: Millis,
    /// Start of the episode (first breach).
    pub active_since: Millis,
    /// The signal value at `at`, if defined.
    pub value: Option<f64>,
}

/// An alert as sent to Alertmanager and to the alerts topic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// firing | resolved | pending | inactive.
    pub status: &'static str,
    /// The transition that produced this message.
    pub transition: TransitionKind,
    /// Identifying labels (alertname, service, severity, …).
    pub labels: BTreeMap<String, String>,
    /// Summary, value, threshold and rule annotations.
    pub annotations: BTreeMap<String, String>,
    /// Start of the episode.
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// Set when resolved.
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<String>,
    /// Link back to the rule.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// Hash of the labels: the same for every episode of this alert.
    pub fingerprint: String,
    /// Identifies one pending→…→resolved episode: deduplicates repeated deliveries.
    pub episode: String,
    /// Event time of the evaluation that made the transition.
    #[serde(rename = "evaluatedAt")]
    pub evaluated_at: String,
}

impl TransitionKind {
    /// The status an alert has after this transition.
    pub fn status(self) -> &'static str {
        match self {
            TransitionKind::Pending => "pending",
            TransitionKind::Firing => "firing",
            TransitionKind::Resolved => "resolved",
            TransitionKind::Cancelled => "inactive",
        }
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a 64 of `bytes` from the standard offset.
pub(crate) fn fnv1a_bytes(bytes: &[u8]) -> u64 {
    fnv1a(FNV_OFFSET, bytes)
}

fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// FNV-1a 64 over the sorted label pairs, each part followed by 0xff (a byte that
/// never occurs in UTF-8), so `{a="bc"}` and `{ab="c"}` differ.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> u64 {
    labels.iter().fold(FNV_OFFSET, |h, (k, v)| {
        let h = fnv1a(fnv1a(h, k.as_bytes()), &[0xff]);
        fnv1a(fnv1a(h, v.as_bytes()), &[0xff])
    })
}

/// Episode id: the fingerprint and the episode's start time, hashed.
pub fn episode(fingerprint: u64, active_since: Millis) -> u64 {
    fnv1a(
        fnv1a(FNV_OFFSET, &fingerprint.to_be_bytes()),
        &active_since.to_be_bytes(),
    )
}

/// Short, stable rendering of a signal value for annotations.
pub fn format_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        return format!("{}", v as i64);
    }
    let s = if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.4}")
    };
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Fills `{name}` placeholders from `vars`.
pub fn render_template(t: &str, vars: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(t.len() + 32);
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match vars.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(name);
                        out.push('}');
                    }
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// Formats the `endsAt` of a resolved alert.
pub(crate) fn ends_at(kind: TransitionKind, at: Millis) -> Option<String> {
    matches!(kind, TransitionKind::Resolved | TransitionKind::Cancelled).then(|| format_rfc3339(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_is_stable_and_separates_parts() {
        let mut a = BTreeMap::new();
        a.insert("a".to_string(), "bc".to_string());
        let mut b = BTreeMap::new();
        b.insert("ab".to_string(), "c".to_string());
        assert_ne!(fingerprint(&a), fingerprint(&b));
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(episode(1, 5), episode(1, 6));
    }

    #[test]
    fn values_and_templates() {
        assert_eq!(format_value(12.0), "12");
        assert_eq!(format_value(0.123456), "0.1235");
        assert_eq!(format_value(1840.25), "1840.2");
        assert_eq!(format_value(0.5), "0.5");
        assert_eq!(
            render_template(
                "{service} at {value} {x}",
                &[("service", "cart"), ("value", "3")]
            ),
            "cart at 3 {x}"
        );
        assert_eq!(render_template("open { brace", &[]), "open { brace");
    }
}
