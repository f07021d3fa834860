//! `kind = "absent"`: a group that has sent matching events before goes silent
//! for `for`. It fires at once when the silence reaches `for` and resolves with
//! the next matching event; its `for` is the silence, not a lifecycle delay.
//!
//! Only *established* groups are watched: ones whose matching events span at
//! least `established_after` (default: one slide of the signal). A flood of
//! one-off service names never establishes, so it neither pages a storm of
//! silences nor pins its groups against reclaim.

use serde::Deserialize;

use super::{alerting_score, EvalCx, Input, LevelInfo, RuleCx, RuleKind, Verdict, MAX_LEVELS};
use crate::config::{ConfigError, Severity, SignalDef};
use crate::lifecycle::{Instance, Reading, State};
use crate::time::{format_duration, Millis};

/// The fields of an absent rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// The signal whose matching events are watched.
    pub signal: String,
    /// The silence that fires, e.g. "5m".
    #[serde(rename = "for")]
    pub for_: Option<String>,
    /// `warning` or `critical` (default critical).
    pub severity: Option<String>,
    /// How long a group must have been sending before its silence pages, e.g.
    /// "10m" (default: the signal's slide).
    pub established_after: Option<String>,
}

/// A validated absent rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Absent {
    /// Index of the watched signal.
    pub signal: usize,
    /// Silence that fires.
    pub for_: Millis,
    /// Severity of the alert.
    pub severity: Severity,
    /// History a group needs before it is watched.
    pub established_after: Millis,
}

impl Absent {
    /// Whether a group with this head is watched for silence.
    pub fn watches(&self, head: &crate::window::Head) -> bool {
        head.last_seen != Millis::MIN && head.history() >= self.established_after
    }
}

impl RuleKind for Absent {
    const NAME: &'static str = "absent";
    const LIFECYCLE: bool = false;
    type Raw = Raw;
    type State = ();

    fn validate(raw: Raw, cx: &RuleCx) -> Result<Absent, ConfigError> {
        let signal = cx.signal("signal", &raw.signal)?;
        let pane = cx.signals[signal].pane;
        let severity = match raw.severity.as_deref() {
            None | Some("critical") => Severity::Critical,
            Some("warning") => Severity::Warning,
            Some(other) => {
                return Err(cx.err_at(
                    "severity",
                    format!("severity `{other}` is not warning or critical"),
                    "write severity = \"warning\" or \"critical\"",
                ))
            }
        };
        let Some(text) = raw.for_ else {
            return Err(cx.err(
                "absent rules need `for`, the silence that fires",
                "add for = \"5m\"",
            ));
        };
        let for_ = cx.duration("for", &text)?;
        if for_ < pane {
            return Err(cx.err_at(
                "for",
                format!(
                    "`for` is shorter than the signal's pane ({})",
                    format_duration(pane)
                ),
                "silence is measured in whole panes; use a longer `for`",
            ));
        }
        let established_after = match raw.established_after {
            Some(text) => cx.duration("established_after", &text)?,
            None => cx.signals[signal].slide,
        };
        Ok(Absent {
            signal,
            for_,
            severity,
            established_after,
        })
    }

    fn input(&self) -> Input {
        Input::Signal(self.signal)
    }

    fn signal_mut(&mut self) -> Option<&mut usize> {
        Some(&mut self.signal)
    }

    fn levels(&self) -> usize {
        1
    }

    fn level(&self, _i: usize) -> LevelInfo {
        LevelInfo {
            severity: self.severity,
            threshold: f64::NAN,
        }
    }

    fn default_summary(&self) -> &'static str {
        "{rule}: no {signal} events from {service} for {window}"
    }

    fn pages_on_silence(&self) -> bool {
        true
    }

    fn evaluate(&self, cx: &mut EvalCx<'_>, _st: &mut (), _insts: &[Instance]) -> Option<Verdict> {
        let head = cx.head(self.signal)?;
        if !self.watches(head) {
            return None;
        }
        let seen = head.last_seen;
        // An event newer than the evaluation time (within the lateness) is no silence.
        let silence = (cx.at - seen).max(0);
        let reading = if silence >= self.for_ {
            Reading::Breach
        } else {
            Reading::Clear
        };
        Some(Verdict {
            value: Some((silence / 1000) as f64),
            readings: [reading; MAX_LEVELS],
            // Only the silence reaching `for` can fire it; only new data resolves it.
            wake_inactive: seen + self.for_,
            wake_active: Millis::MAX,
            window: None,
            settled: None,
        })
    }

    fn risk(&self, _value: f64, states: &[State]) -> f64 {
        alerting_score(self, states)
    }

    fn window_text(&self, _signals: &[SignalDef]) -> String {
        format_duration(self.for_)
    }

    fn describe(&self, signals: &[SignalDef]) -> String {
        format!(
            "absent, {} when no {} event for {}",
            self.severity.as_str(),
            signals[self.signal].name,
            format_duration(self.for_)
        )
    }
}
