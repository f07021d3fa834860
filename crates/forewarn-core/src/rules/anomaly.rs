//! `kind = "anomaly"`: a signal unlike its own learned normal, per group, with
//! no level to set: [`crate::detector`] learns each group's daily and weekly
//! rhythm online and pages on a deviation that is rare for that group at
//! that hour.
//!
//! The detector learns once per window length of event time (non-overlapping
//! windows: consecutive overlapping windows share most of their events, and a
//! baseline learned from them would follow a ramp instead of seeing it); in
//! between, every slide's window is judged against the baseline without being
//! learned, so a deviation is seen one slide after its evidence arrives.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    alerting_score, judge_window, EvalCx, Input, LevelInfo, RuleCx, RuleKind, Series, Verdict,
};
use crate::alert::format_value;
use crate::config::{Aggregate, ConfigError, Severity, SignalDef};
use crate::detector::{Detector, DetectorParams, DetectorState, Direction};
use crate::lifecycle::{Instance, Reading, State};
use crate::time::{format_duration, Millis};

/// The fields of an anomaly rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// The signal it watches.
    pub signal: String,
    /// Which deviations page: `above`, `below` or `both` (default).
    pub direction: Option<Direction>,
    /// 0–1 (default 0.5): pages at anomaly score 1 − sensitivity. 0.5 is
    /// about one window in 8,000 of the group's normal.
    pub sensitivity: Option<f64>,
    /// Event time it learns before it may page (default "1d": a day's
    /// rhythm seen once).
    pub warmup: Option<String>,
    /// How long a shift must persist to be accepted as the new normal
    /// (default "2h").
    pub accept_after: Option<String>,
    /// Learn daily and weekly profiles (default true).
    pub seasonality: Option<bool>,
    /// Fewest events in the window to judge it (default 20; for a quantile
    /// signal, enough for five beyond it: 500 for a p99).
    pub min_events: Option<i64>,
    /// Severity of its alert (default "warning").
    pub severity: Option<Severity>,
}

/// A validated anomaly rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    /// Index of the watched signal.
    pub signal: usize,
    /// The detector, its parameters in observations of one window each.
    pub detector: Detector,
    /// Score at which it pages.
    pub threshold: f64,
    /// Length of one learned observation (the signal's window).
    pub step: Millis,
    /// Fewest events to judge a window.
    pub min_events: u64,
    /// Severity of its alert.
    pub severity: Severity,
    /// Whether sampling noise is binomial (rates) or Poisson (counts).
    pub noise: Noise,
}

/// Sampling noise of a signal's window value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Noise {
    /// A share of `events` (rate signals).
    Binomial,
    /// A count of events.
    Poisson,
    /// The `q` quantile of `events` values (latency percentiles).
    Quantile(f64),
    /// Unknown (means): `min_events` guards small samples.
    Unknown,
}

/// Per-group state: what the detector learned, and its latest judgement.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Learned {
    /// The detector's state.
    pub detector: DetectorState,
    /// Window-length bucket of the latest learned observation.
    pub learned_step: Millis,
    /// Latest score, expected value and band (for metrics and annotations).
    pub latest: Option<Judgement>,
}

/// One evaluation's reading of the detector.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Judgement {
    /// The episode's anomaly score.
    pub score: f64,
    /// What was expected.
    pub expected: f64,
    /// The scale deviations were measured in.
    pub scale: f64,
}

impl RuleKind for Anomaly {
    const NAME: &'static str = "anomaly";
    const LIFECYCLE: bool = true;
    const VARS: &'static [&'static str] = &["expected", "anomaly_score"];
    type Raw = Raw;
    type State = Learned;

    fn validate(raw: Raw, cx: &RuleCx) -> Result<Anomaly, ConfigError> {
        let signal = cx.signal("signal", &raw.signal)?;
        let sdef = &cx.signals[signal];
        let sensitivity = raw.sensitivity.unwrap_or(0.5);
        if !(sensitivity > 0.0 && sensitivity < 1.0) {
            return Err(cx.err_at(
                "sensitivity",
                format!("sensitivity {sensitivity} must be between 0 and 1"),
                "e.g. sensitivity = 0.5 (higher pages on smaller deviations)",
            ));
        }
        let step = sdef.window;
        let in_steps = |key: &str, text: Option<&str>, default: &str| {
            let ms = cx.duration(key, text.unwrap_or(default))?;
            Ok::<u32, ConfigError>((ms / step.max(1)).clamp(1, i64::from(u32::MAX)) as u32)
        };
        let seasonal = raw.seasonality.unwrap_or(true);
        let params = DetectorParams {
            direction: raw.direction.unwrap_or_default(),
            warmup: in_steps("warmup", raw.warmup.as_deref(), "1d")?,
            accept_after: in_steps("accept_after", raw.accept_after.as_deref(), "2h")?,
            daily: seasonal,
            weekly: seasonal,
            interval: Some(step),
            ..DetectorParams::default()
        };
        let noise = match sdef.aggregate {
            Aggregate::Rate => Noise::Binomial,
            Aggregate::Count => Noise::Poisson,
            Aggregate::Quantile(q) => Noise::Quantile(q),
            _ => Noise::Unknown,
        };
        Ok(Anomaly {
            signal,
            detector: Detector::new(params),
            threshold: looks_threshold(1.0 - sensitivity, sdef.window, sdef.slide),
            step,
            min_events: cx.min_events(raw.min_events, default_min_events(sdef.aggregate))?,
            severity: raw.severity.unwrap_or(Severity::Warning),
            noise,
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
        "{rule}: {signal} of {service} is {value}, expected {expected} at this hour"
    }

    fn evaluate(
        &self,
        cx: &mut EvalCx<'_>,
        st: &mut Learned,
        insts: &[Instance],
    ) -> Option<Verdict> {
        judge_window(cx, self.signal, self.min_events, insts, |at, x, events| {
            if self.judge(st, at, x, events).score >= self.threshold {
                Reading::Breach
            } else {
                Reading::Clear
            }
        })
    }

    fn risk(&self, _value: f64, states: &[State]) -> f64 {
        alerting_score(self, states)
    }

    fn window_text(&self, signals: &[SignalDef]) -> String {
        format_duration(signals[self.signal].window)
    }

    fn annotate(&self, st: &Learned, out: &mut BTreeMap<String, String>) {
        if let Some(j) = st.latest {
            let (lower, upper) = self.band(&j);
            out.insert(
                "expected".into(),
                format!("{}–{}", format_value(lower), format_value(upper)),
            );
            out.insert("anomaly_score".into(), format!("{:.2}", j.score));
        }
    }

    fn series(&self, st: &Learned, out: &mut Vec<Series>) {
        if let Some(j) = st.latest {
            let (lower, upper) = self.band(&j);
            for (name, value) in [
                ("anomaly_score", j.score),
                ("anomaly_expected_lower", lower),
                ("anomaly_expected_upper", upper),
            ] {
                out.push(Series {
                    name,
                    window: None,
                    value,
                });
            }
        }
    }

    fn describe(&self, signals: &[SignalDef]) -> String {
        let p = &self.detector.params;
        format!(
            "anomaly, {} {:?} its learned normal at score {:.2}{}, warm-up {}, min {} events",
            signals[self.signal].name,
            p.direction,
            self.threshold,
            if p.daily {
                " (daily and weekly rhythm)"
            } else {
                ""
            },
            format_duration(i64::from(p.warmup) * self.step),
            self.min_events
        )
        .to_lowercase()
    }

    fn state_bytes(st: &Learned) -> usize {
        st.detector.heap_bytes()
    }
}

/// Relative deviation of a `q` quantile of `n` values from sampling alone:
/// the order statistic's spread sqrt(q(1−q)/n) over the density at the
/// quantile, for a log-normal tail of log-spread 0.5 (typical of service
/// latencies), and never below the sketch's bucket width. Without it a p99
/// that sits in one sketch bucket for hours has a scale of a few ms, and its
/// first step to the next bucket but one pages.
pub fn quantile_noise(q: f64, n: f64) -> f64 {
    const LOG_SPREAD: f64 = 0.5;
    let z = crate::confidence::z_for(q.max(1.0 - q));
    let density = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
    let sampling = (q * (1.0 - q) / n.max(1.0)).sqrt() * LOG_SPREAD / density;
    sampling.max(2.0 * crate::sketch::RELATIVE_ERROR)
}

/// Fewest events to judge a window by default: 20, and for a quantile
/// enough that five events lie beyond it (500 for a p99): the p99 of 200
/// requests is their second-largest value, and judging that pages on noise.
pub fn default_min_events(aggregate: Aggregate) -> u64 {
    match aggregate {
        Aggregate::Quantile(q) => (5.0 / (1.0 - q)).ceil().max(20.0) as u64,
        _ => 20,
    }
}

/// The score a rule pages at: `score` for one look per learned observation,
/// raised for the `window / slide` looks a sliding window gets (each slide is
/// judged; the calibration counts learned observations). A Bonferroni bound
/// over the looks: their tail probabilities add, so the threshold's surprise
/// grows by ln(looks) nats (30 looks: +3.4 nats, score 0.5 → 0.58).
pub fn looks_threshold(score: f64, window: Millis, slide: Millis) -> f64 {
    let looks = (window as f64 / slide.max(1) as f64).max(1.0);
    crate::detector::score_of(crate::detector::surprise_at(score) + looks.ln())
}

impl Anomaly {
    /// Learns `x` if it completes a new window length of event time, else
    /// judges it without learning; records and returns the judgement.
    fn judge(&self, st: &mut Learned, at: Millis, x: f64, events: u64) -> Judgement {
        let noise = |expected: f64| self.sampling_noise(expected, events);
        let step = at.div_euclid(self.step.max(1));
        let v = if step > st.learned_step {
            st.learned_step = step;
            self.detector
                .observe_with_noise(&mut st.detector, at, x, noise)
        } else {
            self.detector.peek(&st.detector, at, x, noise)
        };
        let j = Judgement {
            score: v.episode,
            expected: v.expected,
            scale: v.scale,
        };
        st.latest = Some(j);
        j
    }

    /// The normal band at this hour (see [`crate::detector::Verdict::band`]),
    /// never below 0 for rates and counts.
    pub fn band(&self, j: &Judgement) -> (f64, f64) {
        let half = crate::detector::BAND_SCALES * j.scale;
        let (lo, hi) = (j.expected - half, j.expected + half);
        match self.noise {
            Noise::Binomial | Noise::Poisson => (lo.max(0.0), hi),
            Noise::Quantile(_) | Noise::Unknown => (lo, hi),
        }
    }

    /// The deviation sampling alone causes around `expected` with `events`
    /// events: a floor under the detector's scale.
    fn sampling_noise(&self, expected: f64, events: u64) -> f64 {
        let n = events.max(1) as f64;
        match self.noise {
            Noise::Binomial => {
                let p = expected.clamp(1.0 / n, 1.0 - 1.0 / n);
                (p * (1.0 - p) / n).sqrt()
            }
            Noise::Poisson => expected.max(1.0).sqrt(),
            Noise::Quantile(q) => expected.abs() * quantile_noise(q, n),
            Noise::Unknown => 0.0,
        }
    }
}
