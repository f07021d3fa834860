//! `backtest --recorded`: scores alert transitions that were recorded (the
//! alerts topic's messages, or what `replay` printed) instead of running the
//! config's rules, so what production actually paged is measured against the
//! incident file with the same figures as a backtest.
//!
//! Each line is one alert transition as forewarn publishes it: `transition`
//! (`firing` and `resolved` count; `pending` and `cancelled` are skipped),
//! `fingerprint`, `labels` (`alertname` names a rule of the config; `severity`,
//! `service`) and `evaluatedAt` (RFC 3339), the event time of the transition.
//! Repeats, as an at-least-once topic may hold after a crash, count once.

use std::collections::BTreeMap;

use anyhow::{anyhow, Context};
use forewarn_core::config::Severity;
use forewarn_core::time::{parse_rfc3339, Millis};
use forewarn_core::Config;
use serde::Deserialize;

use super::score::{Page, Scorer};
use crate::lines::{Line, Lines};

/// The members of a published alert the scorer reads.
#[derive(Deserialize)]
struct Recorded {
    transition: String,
    fingerprint: String,
    labels: BTreeMap<String, String>,
    #[serde(rename = "evaluatedAt")]
    evaluated_at: String,
}

/// What the recorded lines held.
#[derive(Debug, Default)]
pub struct Span {
    /// Lines read.
    pub lines: u64,
    /// Firing and resolved transitions scored.
    pub scored: u64,
    /// First and last `evaluatedAt` (the report's span).
    pub first: Millis,
    /// See `first`.
    pub last: Millis,
}

/// Feeds every recorded transition of `lines` to `scorer`; a line that is not
/// a published alert, or names a rule the config lacks, is an error naming
/// `file` and the line.
pub fn score<R: std::io::Read>(
    cfg: &Config,
    file: &str,
    lines: &mut Lines<R>,
    scorer: &mut Scorer<'_>,
    span: &mut Span,
) -> anyhow::Result<()> {
    let rules: BTreeMap<&str, usize> = cfg
        .rules
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    while let Some(line) = lines
        .next_line()
        .with_context(|| format!("cannot read {file}"))?
    {
        span.lines += 1;
        let at_line = || format!("{file}:{}", span.lines);
        let Line::Text(text) = line else {
            return Err(anyhow!("{}: line too long for an alert", at_line()));
        };
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let r: Recorded = serde_json::from_slice(text)
            .with_context(|| format!("{}: not a published alert", at_line()))?;
        let firing = match r.transition.as_str() {
            "firing" => true,
            "resolved" => false,
            _ => continue,
        };
        let label = |name: &str| r.labels.get(name).map_or("", String::as_str);
        let rule = *rules.get(label("alertname")).ok_or_else(|| {
            anyhow!(
                "{}: alert of rule `{}`, which the config does not have (score it with the config that produced it)",
                at_line(),
                label("alertname")
            )
        })?;
        let severity = match label("severity") {
            "critical" => Severity::Critical,
            "warning" => Severity::Warning,
            other => return Err(anyhow!("{}: unknown severity `{other}`", at_line())),
        };
        let at = parse_rfc3339(&r.evaluated_at)
            .ok_or_else(|| anyhow!("{}: evaluatedAt is not RFC 3339", at_line()))?;
        if span.scored == 0 {
            (span.first, span.last) = (at, at);
        }
        (span.first, span.last) = (span.first.min(at), span.last.max(at));
        span.scored += 1;
        scorer.page(&Page {
            fingerprint: &r.fingerprint,
            rule,
            service: label("service"),
            severity,
            firing,
            at,
        });
    }
    Ok(())
}
