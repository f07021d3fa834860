//! The compact series notation of rule tests, and the events it stands for.
//!
//! A series is whitespace-separated terms, one value per time step, expanded as
//! `promtool` expands them: `7` is one value, `7x3` is `7 7 7 7`, `0+10x3` is
//! `0 10 20 30` (`a+bxn` and `a-bxn` are n+1 values), `_` is a step without a
//! value. The event counts (`requests`, `feedback`) end where their series
//! ends; the other columns hold their last value from there. A [`Series`] gives per step how many requests and feedback events a
//! service sends and what they carry.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail};
use forewarn_core::time::{parse_duration, Millis};
use serde::Deserialize;

/// Most values one series may expand to: a month of 10 s steps, and a bound on
/// what a typo (`1x1000000000`) can allocate.
pub const MAX_STEPS: usize = 300_000;
/// Most events one step may generate.
pub const MAX_PER_STEP: f64 = 100_000.0;

/// Expands a series; `None` marks a step without a value.
pub fn expand(text: &str) -> anyhow::Result<Vec<Option<f64>>> {
    let mut out = Vec::new();
    for term in text.split_whitespace() {
        if term == "_" {
            out.push(None);
        } else if let Some((head, n)) = term.split_once('x') {
            let n: usize = n
                .parse()
                .map_err(|_| anyhow!("`{term}`: the count after `x` must be a whole number"))?;
            let (a, b) = split_step(head)
                .ok_or_else(|| anyhow!("`{term}`: write a, axn, a+bxn or a-bxn"))?;
            if out.len() + n + 1 > MAX_STEPS {
                bail!("`{term}`: more than {MAX_STEPS} values");
            }
            out.extend((0..=n).map(|i| Some(a + b * i as f64)));
        } else {
            out.push(Some(
                term.parse()
                    .map_err(|_| anyhow!("`{term}` is not a number"))?,
            ));
        }
        if out.len() > MAX_STEPS {
            bail!("more than {MAX_STEPS} values");
        }
    }
    Ok(out)
}

/// `a`, `a+b` or `a-b` (a may itself be negative) → (a, b).
fn split_step(head: &str) -> Option<(f64, f64)> {
    let cut = head
        .char_indices()
        .skip(1)
        .find(|&(i, c)| (c == '+' || c == '-') && !head[..i].ends_with(['e', 'E']))
        .map(|(i, _)| i);
    match cut {
        None => Some((head.parse().ok()?, 0.0)),
        Some(i) => {
            let b: f64 = head[i + 1..].parse().ok()?;
            let b = if head.as_bytes()[i] == b'-' { -b } else { b };
            Some((head[..i].parse().ok()?, b))
        }
    }
}

/// One service's traffic over time steps.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Series {
    /// The service.
    pub service: String,
    /// Labels on every event.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Step length (default 1m).
    #[serde(default = "one_minute")]
    pub step: String,
    /// Requests per step.
    pub requests: Option<String>,
    /// Share of them failing (`outcome = "error"`), 0–1.
    pub errors: Option<String>,
    /// Their latency (ms).
    pub latency_ms: Option<String>,
    /// Their SLA (ms).
    pub sla_ms: Option<String>,
    /// Feedback events per step.
    pub feedback: Option<String>,
    /// Share of them that are complaints, 0–1.
    pub complaints: Option<String>,
    /// Their sentiment, −1…1.
    pub sentiment: Option<String>,
}

fn one_minute() -> String {
    "1m".into()
}

struct Column {
    name: &'static str,
    values: Vec<Option<f64>>,
}

impl Column {
    fn read(name: &'static str, text: &Option<String>) -> anyhow::Result<Option<Column>> {
        text.as_deref()
            .map(|t| {
                expand(t)
                    .map(|values| Column { name, values })
                    .map_err(|e| anyhow!("`{name}`: {e}"))
            })
            .transpose()
    }

    /// The value at `step`; after the column ends its last value holds, so
    /// `latency_ms = "120"` is a constant beside any `requests`.
    fn at(&self, step: usize) -> Option<f64> {
        self.values
            .get(step)
            .or(self.values.last())
            .copied()
            .flatten()
    }
}

impl Series {
    /// The series' events from `start`, as (time, NDJSON line).
    pub fn events(&self, start: Millis) -> anyhow::Result<Vec<(Millis, String)>> {
        let step = parse_duration(&self.step).map_err(|e| anyhow!("`step`: {e}"))?;
        if step <= 0 {
            bail!("`step` must be positive");
        }
        let col = |name, t: &Option<String>| Column::read(name, t);
        let requests = col("requests", &self.requests)?;
        let feedback = col("feedback", &self.feedback)?;
        let (errors, latency, sla) = (
            col("errors", &self.errors)?,
            col("latency_ms", &self.latency_ms)?,
            col("sla_ms", &self.sla_ms)?,
        );
        let (complaints, sentiment) = (
            col("complaints", &self.complaints)?,
            col("sentiment", &self.sentiment)?,
        );
        if requests.is_none() && feedback.is_none() {
            bail!("give `requests` or `feedback` (events per step)");
        }
        let labels = serde_json::to_string(&self.labels)?;
        let service = serde_json::to_string(&self.service)?;
        let mut out = Vec::new();
        for (count, kind, share, extra) in [
            (&requests, "request", &errors, [&latency, &sla]),
            (&feedback, "feedback", &complaints, [&sentiment, &None]),
        ] {
            let Some(count) = count else { continue };
            for (s, n) in count.values.iter().enumerate() {
                let n = n.unwrap_or(0.0);
                if !(0.0..=MAX_PER_STEP).contains(&n) {
                    bail!(
                        "`{}`: {n} events in a step (0 to {MAX_PER_STEP})",
                        count.name
                    );
                }
                let n = n.round() as i64;
                let flagged = share.as_ref().and_then(|c| c.at(s)).unwrap_or(0.0);
                let k = (flagged.clamp(0.0, 1.0) * n as f64).round() as i64;
                let mut fields = String::new();
                for c in extra.iter().copied().flatten() {
                    if let Some(v) = c.at(s) {
                        fields.push_str(&format!(r#","{}":{v}"#, c.name));
                    }
                }
                let t0 = start + s as Millis * step;
                for i in 0..n {
                    // Spread the flagged ones evenly through the step.
                    let hit = (i + 1) * k / n > i * k / n;
                    let flag = match (kind, hit) {
                        ("request", true) => r#","outcome":"error""#,
                        ("request", false) => r#","outcome":"ok""#,
                        (_, true) => r#","complaint":true"#,
                        (_, false) => r#","complaint":false"#,
                    };
                    let ts = t0 + i * step / n;
                    out.push((
                        ts,
                        format!(r#"{{"v":1,"ts":{ts},"service":{service},"kind":"{kind}"{flag}{fields},"labels":{labels}}}"#),
                    ));
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_expand_as_promtool_expands_them() {
        let v = |t: &str| expand(t).unwrap();
        assert_eq!(v("7"), [Some(7.0)]);
        assert_eq!(v("7x3"), [Some(7.0); 4]);
        assert_eq!(v("0+10x3"), [Some(0.0), Some(10.0), Some(20.0), Some(30.0)]);
        assert_eq!(v("-1-1x2"), [Some(-1.0), Some(-2.0), Some(-3.0)]);
        assert_eq!(v("1e-3x1 _"), [Some(0.001), Some(0.001), None]);
        for bad in ["x3", "1x", "1xy", "abc", "1+x2", "1x999999999"] {
            assert!(expand(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_step_spreads_its_events_and_flags_the_share_asked_for() {
        let s = Series {
            service: "cart".into(),
            labels: BTreeMap::from([("region".into(), "eu".into())]),
            step: "10s".into(),
            requests: Some("10 4".into()),
            errors: Some("0.3 0".into()),
            latency_ms: Some("120".into()),
            sla_ms: None,
            feedback: None,
            complaints: None,
            sentiment: None,
        };
        let ev = s.events(1_000_000).unwrap();
        assert_eq!(ev.len(), 14);
        assert_eq!(ev.iter().filter(|(_, j)| j.contains("error")).count(), 3);
        assert_eq!(ev[1].0, 1_001_000);
        assert_eq!(ev[10].0, 1_010_000);
        // latency holds at its last value; every line is a valid event.
        for (_, line) in &ev {
            let e = forewarn_core::decode(line.as_bytes()).unwrap();
            assert_eq!(e.latency_ms, Some(120.0));
        }
    }
}
