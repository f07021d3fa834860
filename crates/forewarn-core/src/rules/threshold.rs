//! `kind = "threshold"`: a signal beyond a warning and/or critical level, each
//! with its own `clear` level (hysteresis), a minimum event count and optionally
//! a confidence bound, so a small sample's noise does not breach.

use serde::Deserialize;

use super::{alerting_score, EvalCx, Input, LevelInfo, RuleCx, RuleKind, Verdict, MAX_LEVELS};
use crate::config::raw::RawLevel;
use crate::config::{Aggregate, ConfigError, Op, Severity, SignalDef};
use crate::lifecycle::{Instance, Reading, State};
use crate::time::{format_duration, Millis};
use crate::window::{empty_value, WindowValue};

/// The fields of a threshold rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// The signal it watches.
    pub signal: String,
    /// Direction: `above` (default) or `below`.
    pub op: Option<Op>,
    /// Warning level: `0.05` or `{ value = 0.05, clear = 0.03 }`.
    pub warning: Option<RawLevel>,
    /// Critical level, same forms.
    pub critical: Option<RawLevel>,
    /// Fewest events in the window for the value to count (default 1).
    pub min_events: Option<i64>,
    /// Breach only when the one-sided confidence bound (not just the estimate)
    /// is beyond the level, e.g. 0.95: rate and quantile signals.
    pub confidence: Option<f64>,
}

/// One severity level.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// Which severity.
    pub severity: Severity,
    /// Breach when beyond this.
    pub value: f64,
    /// Recover only when back on the good side of this.
    pub clear: f64,
}

/// A rule's required confidence and its normal quantile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidence {
    /// E.g. 0.95.
    pub level: f64,
    /// One-sided standard normal quantile of `level`.
    pub z: f64,
}

/// A validated threshold rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// Index of the watched signal.
    pub signal: usize,
    /// Direction.
    pub op: Op,
    /// Levels, lowest severity first.
    pub levels: Vec<Level>,
    /// Fewest events for the value to count.
    pub min_events: u64,
    /// When set, a level is breached only if the one-sided confidence bound of
    /// the signal is beyond it (see [`crate::confidence`]); recovery still reads
    /// the estimate against `clear`.
    pub confidence: Option<Confidence>,
    /// Whether an empty window reads as a breach (e.g. count below N).
    pub empty_breaches: bool,
}

impl RuleKind for Threshold {
    const NAME: &'static str = "threshold";
    const LIFECYCLE: bool = true;
    type Raw = Raw;
    type State = ();

    fn validate(raw: Raw, cx: &RuleCx) -> Result<Threshold, ConfigError> {
        let signal = cx.signal("signal", &raw.signal)?;
        let sdef = &cx.signals[signal];
        let op = raw.op.unwrap_or_default();
        let levels = levels(cx, op, raw.warning, raw.critical)?;
        let min_events = cx.min_events(raw.min_events, 1)?;
        let confidence = raw
            .confidence
            .map(|c| confidence(cx, sdef, c))
            .transpose()?;
        let mut t = Threshold {
            signal,
            op,
            levels,
            min_events,
            confidence,
            empty_breaches: false,
        };
        let empty = empty_value(sdef.aggregate);
        t.empty_breaches = t.levels.iter().any(|l| t.read(l, empty) == Reading::Breach);
        Ok(t)
    }

    fn input(&self) -> Input {
        Input::Signal(self.signal)
    }

    fn signal_mut(&mut self) -> Option<&mut usize> {
        Some(&mut self.signal)
    }

    fn levels(&self) -> usize {
        self.levels.len()
    }

    fn level(&self, i: usize) -> LevelInfo {
        LevelInfo {
            severity: self.levels[i].severity,
            threshold: self.levels[i].value,
        }
    }

    fn default_summary(&self) -> &'static str {
        "{rule}: {signal} of {service} is {value} (threshold {threshold})"
    }

    fn breaches_when_empty(&self, _signals: &[SignalDef]) -> bool {
        self.empty_breaches
    }

    #[inline]
    fn evaluate(&self, cx: &mut EvalCx<'_>, _st: &mut (), insts: &[Instance]) -> Option<Verdict> {
        let s = self.signal;
        let has_data = cx.has_data(s);
        if !has_data && !self.empty_breaches && insts.iter().all(|i| i.state == State::Inactive) {
            return None;
        }
        let aggregate = cx.signals[s].aggregate;
        let value = if has_data {
            cx.window(s)
        } else {
            empty_value(aggregate)
        };
        let evidence = match (self.confidence, has_data) {
            (Some(c), true) => self.evidence(cx, c, aggregate, value),
            _ => None,
        };
        let mut readings = [Reading::Clear; MAX_LEVELS];
        for (r, level) in readings.iter_mut().zip(&self.levels) {
            *r = self.read_judged(level, value, evidence);
        }
        Some(Verdict {
            value: value.value,
            readings,
            wake_inactive: if self.empty_breaches {
                Millis::MIN
            } else {
                Millis::MAX
            },
            wake_active: Millis::MIN,
            window: Some(value),
            settled: None,
        })
    }

    fn risk(&self, value: f64, states: &[State]) -> f64 {
        let near = match self.levels.first() {
            Some(l) if value.is_finite() => 0.25 * self.proximity(l.value, value),
            _ => 0.0,
        };
        alerting_score(self, states).max(near)
    }

    fn window_text(&self, signals: &[SignalDef]) -> String {
        format_duration(signals[self.signal].window)
    }

    fn describe(&self, signals: &[SignalDef]) -> String {
        let sig = &signals[self.signal].name;
        let op = if self.op == Op::Above { ">" } else { "<" };
        let levels: Vec<String> = self
            .levels
            .iter()
            .map(|l| {
                let clear = if l.clear == l.value {
                    String::new()
                } else {
                    format!(" (clears at {})", l.clear)
                };
                format!("{} {sig} {op} {}{clear}", l.severity.as_str(), l.value)
            })
            .collect();
        let conf = self.confidence.map_or(String::new(), |c| {
            format!(", breach at {}% confidence", c.level * 100.0)
        });
        format!(
            "threshold, {}, min {} events{conf}",
            levels.join("; "),
            self.min_events
        )
    }
}

impl Threshold {
    /// Reads a window value against a level.
    pub fn read(&self, level: &Level, w: WindowValue) -> Reading {
        self.read_judged(level, w, None)
    }

    /// Reads a window value against a level, judging the breach on `evidence`
    /// (the confidence bound toward the level) when given, and recovery on the
    /// value.
    #[inline]
    pub fn read_judged(&self, level: &Level, w: WindowValue, evidence: Option<f64>) -> Reading {
        let Some(v) = w.value else {
            return if w.events == 0 {
                Reading::Clear
            } else {
                Reading::Insufficient
            };
        };
        if w.events < self.min_events {
            return if w.events == 0 {
                Reading::Clear
            } else {
                Reading::Insufficient
            };
        }
        let e = evidence.unwrap_or(v);
        let (beyond, healthy) = match self.op {
            Op::Above => (e > level.value, v <= level.clear),
            Op::Below => (e < level.value, v >= level.clear),
        };
        if beyond {
            Reading::Breach
        } else if healthy {
            Reading::Clear
        } else {
            Reading::Elevated
        }
    }

    /// With `confidence`, the bound toward the level: the evidence, not the
    /// estimate (Wilson for rates; for quantiles the window sketch read at the
    /// bounding rank).
    fn evidence(
        &self,
        cx: &EvalCx<'_>,
        c: Confidence,
        aggregate: Aggregate,
        value: WindowValue,
    ) -> Option<f64> {
        let p = value.value?;
        match aggregate {
            Aggregate::Rate => {
                let (lo, hi) = crate::confidence::wilson(p, value.events, c.z);
                Some(if self.op == Op::Above { lo } else { hi })
            }
            Aggregate::Quantile(q) => {
                let (lo, hi) = crate::confidence::quantile_ranks(q, value.events, c.z);
                let rank = if self.op == Op::Above { lo } else { hi };
                cx.window_quantile(self.signal, rank)
            }
            _ => None,
        }
    }

    /// How close `value` is to breaching `level` (0..=1; 1 at or beyond it): 0 at
    /// a distance of one level's magnitude or more.
    fn proximity(&self, level: f64, value: f64) -> f64 {
        let distance = match self.op {
            Op::Above => level - value,
            Op::Below => value - level,
        };
        let scale = if level.abs() > f64::EPSILON {
            level.abs()
        } else {
            1.0
        };
        (1.0 - distance / scale).clamp(0.0, 1.0)
    }
}

fn levels(
    cx: &RuleCx,
    op: Op,
    warning: Option<RawLevel>,
    critical: Option<RawLevel>,
) -> Result<Vec<Level>, ConfigError> {
    let mut levels = Vec::new();
    for (sev, lvl) in [(Severity::Warning, warning), (Severity::Critical, critical)] {
        let Some(RawLevel { value, clear }) = lvl else {
            continue;
        };
        let key = sev.as_str();
        let clear = clear.unwrap_or(value);
        if !value.is_finite() || !clear.is_finite() {
            return Err(cx.err_at(
                key,
                format!("{key} level must be a finite number"),
                "use a number",
            ));
        }
        let wrong_side = match op {
            Op::Above => clear > value,
            Op::Below => clear < value,
        };
        if wrong_side {
            let side = if op == Op::Above {
                "at or below"
            } else {
                "at or above"
            };
            return Err(cx.err_at(
                key,
                format!("{key} clear level {clear} must be {side} its value {value} (op = {op:?})")
                    .to_lowercase(),
                "the clear level is where the alert recovers; put it on the healthy side of the breach level",
            ));
        }
        levels.push(Level {
            severity: sev,
            value,
            clear,
        });
    }
    if levels.is_empty() {
        return Err(cx.err(
            "threshold rules need `warning`, `critical` or both",
            "add e.g. critical = 0.05",
        ));
    }
    if let [w, c] = levels.as_slice() {
        let inverted = match op {
            Op::Above => c.value < w.value,
            Op::Below => c.value > w.value,
        };
        if inverted {
            return Err(cx.err_at(
                "critical",
                format!(
                    "critical level {} is less severe than warning level {} for op = {op:?}",
                    c.value, w.value
                )
                .to_lowercase(),
                "swap them, or change `op`",
            ));
        }
    }
    Ok(levels)
}

fn confidence(cx: &RuleCx, sdef: &SignalDef, level: f64) -> Result<Confidence, ConfigError> {
    if !(0.5..1.0).contains(&level) {
        return Err(cx.err_at(
            "confidence",
            format!("confidence {level} must be at least 0.5 and below 1"),
            "e.g. confidence = 0.95: breach only when 95% sure the true value is beyond the level",
        ));
    }
    if !matches!(sdef.aggregate, Aggregate::Rate | Aggregate::Quantile(_)) {
        return Err(cx.err_at(
            "confidence",
            format!(
                "confidence applies to rate and quantile signals, and `{}` is {}",
                sdef.name, sdef.aggregate
            ),
            "remove `confidence` (use `min_events` against small samples), or put the rule on a rate or quantile signal",
        ));
    }
    Ok(Confidence {
        level,
        z: crate::confidence::z_for(level),
    })
}
