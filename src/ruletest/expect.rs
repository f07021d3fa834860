//! What a rule test expects at a time, the alert state the run went through,
//! and a readable difference between the two.

use std::collections::{BTreeMap, HashMap};

use anyhow::bail;
use forewarn_core::lifecycle::TransitionKind;
use forewarn_core::time::{format_rfc3339, Millis};
use forewarn_core::{Alert, Engine, Transition};
use serde::Deserialize;

/// One expectation: the alerts of `alertname` firing (and, if given, pending)
/// at `at`, each matched by the labels and annotations it lists.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    at: String,
    alertname: String,
    #[serde(default)]
    firing: Vec<Wanted>,
    pending: Option<Vec<Wanted>>,
}

/// An expected alert: the labels and annotations it must have (others may be there).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wanted {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// Every transition of a run, rendered, in order.
#[derive(Debug, Default)]
pub struct Timeline {
    transitions: Vec<(Millis, TransitionKind, Alert)>,
    /// The last event's time: the state after it is not known.
    pub end: Millis,
}

impl Timeline {
    /// Records one transition from the driver.
    pub fn record(&mut self, engine: &Engine, t: &Transition) {
        self.transitions.push((t.at, t.kind, engine.render(t)));
    }

    /// The alerts active at `at`, by fingerprint.
    fn state_at(&self, at: Millis) -> HashMap<&str, (TransitionKind, &Alert)> {
        let mut state = HashMap::new();
        for (_, kind, alert) in self.transitions.iter().filter(|(t, ..)| *t <= at) {
            match kind {
                TransitionKind::Pending | TransitionKind::Firing => {
                    state.insert(alert.fingerprint.as_str(), (*kind, alert));
                }
                TransitionKind::Resolved | TransitionKind::Cancelled => {
                    state.remove(alert.fingerprint.as_str());
                }
            }
        }
        state
    }
}

impl Expect {
    /// None when the expectation holds; else what differs.
    pub fn check(&self, timeline: &Timeline, start: Millis) -> anyhow::Result<Option<String>> {
        let at = super::time_of(&self.at, start)?;
        if at > timeline.end {
            bail!(
                "`at = \"{}\"` ({}) is after the last event ({}): the state there is not known; extend the input",
                self.at,
                format_rfc3339(at),
                format_rfc3339(timeline.end)
            );
        }
        let state = timeline.state_at(at);
        let mut diffs = Vec::new();
        for (kind, wanted) in [
            (TransitionKind::Firing, Some(&self.firing)),
            (TransitionKind::Pending, self.pending.as_ref()),
        ] {
            let Some(wanted) = wanted else { continue };
            let mut got: Vec<&Alert> = state
                .values()
                .filter(|(k, a)| *k == kind && a.labels.get("alertname") == Some(&self.alertname))
                .map(|(_, a)| *a)
                .collect();
            got.sort_by(|a, b| a.labels.cmp(&b.labels));
            if let Some(d) = compare(kind.status(), wanted, got) {
                diffs.push(d);
            }
        }
        Ok((!diffs.is_empty()).then(|| {
            format!(
                "at {} ({}), {}:\n{}",
                self.at,
                format_rfc3339(at),
                self.alertname,
                diffs.join("\n")
            )
        }))
    }
}

/// Matches each wanted alert to a distinct actual one; lists the leftovers.
fn compare(status: &str, wanted: &[Wanted], mut got: Vec<&Alert>) -> Option<String> {
    let mut missing = Vec::new();
    for w in wanted {
        match got.iter().position(|a| w.matches(a)) {
            Some(i) => {
                got.remove(i);
            }
            None => missing.push(format!("    missing {status}: {}", w.describe())),
        }
    }
    let unexpected = got
        .iter()
        .map(|a| format!("    unexpected {status}: {}", describe(a)));
    let lines: Vec<String> = missing.into_iter().chain(unexpected).collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

impl Wanted {
    fn matches(&self, a: &Alert) -> bool {
        self.labels.iter().all(|(k, v)| a.labels.get(k) == Some(v))
            && self
                .annotations
                .iter()
                .all(|(k, v)| a.annotations.get(k) == Some(v))
    }

    fn describe(&self) -> String {
        format!("{}{}", braces(&self.labels), annotations(&self.annotations))
    }
}

fn describe(a: &Alert) -> String {
    let labels: BTreeMap<String, String> = a
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let shown: BTreeMap<String, String> = a
        .annotations
        .iter()
        .filter(|(k, _)| matches!(k.as_str(), "summary" | "value"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    format!("{}{}", braces(&labels), annotations(&shown))
}

fn braces(m: &BTreeMap<String, String>) -> String {
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", parts.join(", "))
}

fn annotations(m: &BTreeMap<String, String>) -> String {
    m.iter().map(|(k, v)| format!(" {k}={v:?}")).collect()
}
