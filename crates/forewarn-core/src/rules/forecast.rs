//! `kind = "forecast"`: pages *before* a signal crosses a level — when its
//! trend, projected, crosses within `horizon` with the stated `confidence`.
//!
//! The trend is the Theil–Sen estimate over the last [`SAMPLES`] window values
//! (one per `history / SAMPLES` of event time): the median of the slopes
//! between every pair of samples. Unlike a least-squares fit (`predict_linear`)
//! one outlying window cannot tilt it — up to 29% of the samples may be wild —
//! and the pairwise slopes give its uncertainty without assuming a
//! distribution: the crossing must hold for the slope at the one-sided
//! `confidence` bound of Sen's slope (the pairwise slope whose rank Kendall's
//! S statistic gives), so noise around a flat series, whose slopes straddle
//! zero, does not forecast a crossing.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{
    alerting_score, judge_window, EvalCx, Input, LevelInfo, Prediction, RuleCx, RuleKind, Series,
    Verdict,
};
use crate::alert::format_value;
use crate::config::{ConfigError, Op, Severity, SignalDef};
use crate::lifecycle::{Instance, Reading, State};
use crate::time::{format_duration, Millis};

/// Samples the trend is fitted over.
pub const SAMPLES: usize = 16;
/// Fewest samples before a trend is believed.
const MIN_SAMPLES: usize = 6;
const PAIRS: usize = SAMPLES * (SAMPLES - 1) / 2;

/// The fields of a forecast rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// The signal it projects.
    pub signal: String,
    /// The level it must not cross.
    pub level: f64,
    /// `above` (default: pages when forecast to rise past `level`) or `below`.
    pub op: Option<Op>,
    /// How far ahead to look (default "30m").
    pub horizon: Option<String>,
    /// Event time the trend is fitted over (default "15m"): longer is surer
    /// and slower to see a new trend.
    pub history: Option<String>,
    /// How sure the trend must be, 0.5–0.999 (default 0.95): the one-sided
    /// confidence of the slope the crossing is timed with.
    pub confidence: Option<f64>,
    /// Fewest events in a window to use it (default 20).
    pub min_events: Option<i64>,
    /// Severity of its alert (default "warning").
    pub severity: Option<Severity>,
}

/// A validated forecast rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Index of the projected signal.
    pub signal: usize,
    /// The level.
    pub level: f64,
    /// Direction of the crossing.
    pub op: Op,
    /// Look-ahead.
    pub horizon: Millis,
    /// Event time between samples.
    pub step: Millis,
    /// Required confidence.
    pub confidence: f64,
    /// Windows overlapping each sample (window / step, at least 1): samples
    /// closer than a window share events, so they count as fewer.
    pub overlap: f64,
    /// Fewest events to use a window.
    pub min_events: u64,
    /// Severity of its alert.
    pub severity: Severity,
}

/// Per-group state: the latest samples, oldest first, and the latest
/// projection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Samples {
    /// (time, value) of the latest samples, at most [`SAMPLES`].
    pub points: Vec<(Millis, f64)>,
    /// The latest projection, if a trend was believed.
    pub latest: Option<Projection>,
    /// The open warning: a crossing forecast and not yet settled.
    #[serde(default)]
    pub warning: Option<Warning>,
    /// Past the level since the last settled warning: no new warning until a
    /// clear reading (a series hovering at the level is not re-forecast).
    #[serde(default)]
    pub held: bool,
}

/// A forecast crossing being tracked until it settles: the real crossing
/// (came true) or `horizon` after the last warning without one (did not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    /// First evaluation that forecast the crossing.
    pub since: Millis,
    /// Latest evaluation that still forecast it.
    pub last: Millis,
}

/// A projection toward the level.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// The fitted value now.
    pub now: f64,
    /// Median slope, per minute.
    pub per_minute: f64,
    /// Time to the crossing at the confident slope (0: already past the
    /// level; `None`: not heading there).
    pub eta: Option<Millis>,
}

impl RuleKind for Forecast {
    const NAME: &'static str = "forecast";
    const LIFECYCLE: bool = true;
    const VARS: &'static [&'static str] = &["eta", "trend", "level", "fitted"];
    type Raw = Raw;
    type State = Samples;

    fn validate(raw: Raw, cx: &RuleCx) -> Result<Forecast, ConfigError> {
        let signal = cx.signal("signal", &raw.signal)?;
        if !raw.level.is_finite() {
            return Err(cx.err_at(
                "level",
                "level must be a finite number",
                "e.g. level = 2000",
            ));
        }
        let confidence = raw.confidence.unwrap_or(0.95);
        if !(0.5..=0.999).contains(&confidence) {
            return Err(cx.err_at(
                "confidence",
                format!("confidence {confidence} must be between 0.5 and 0.999"),
                "e.g. confidence = 0.95: time the crossing with a slope the trend exceeds with 95% confidence",
            ));
        }
        let horizon = cx.duration("horizon", raw.horizon.as_deref().unwrap_or("30m"))?;
        let history = cx.duration("history", raw.history.as_deref().unwrap_or("15m"))?;
        let slide = cx.signals[signal].slide;
        if history < slide * SAMPLES as Millis || horizon <= 0 {
            return Err(cx.err_at(
                "history",
                format!(
                    "history {} must hold {SAMPLES} slides of the signal ({} each), and horizon must be positive",
                    format_duration(history),
                    format_duration(slide)
                ),
                format!("e.g. history = \"{}\"", format_duration(slide * SAMPLES as Millis)),
            ));
        }
        Ok(Forecast {
            signal,
            level: raw.level,
            op: raw.op.unwrap_or_default(),
            horizon,
            step: history / SAMPLES as Millis,
            confidence,
            overlap: (cx.signals[signal].window as f64 / (history / SAMPLES as Millis) as f64)
                .max(1.0),
            min_events: cx.min_events(raw.min_events, 20)?,
            severity: raw.severity.unwrap_or(Severity::Warning),
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
            threshold: self.level,
        }
    }

    fn default_summary(&self) -> &'static str {
        "{rule}: {signal} of {service} forecast to pass {level} in {eta} (now {fitted}, {trend}/min)"
    }

    fn evaluate(
        &self,
        cx: &mut EvalCx<'_>,
        st: &mut Samples,
        insts: &[Instance],
    ) -> Option<Verdict> {
        let mut settled = None;
        let verdict = judge_window(cx, self.signal, self.min_events, insts, |at, x, _| {
            self.record(st, at, x);
            st.latest = self.project(&st.points, at);
            let reading = match st.latest.and_then(|p| p.eta) {
                Some(eta) if eta <= self.horizon => Reading::Breach,
                _ => Reading::Clear,
            };
            settled = self.settle(st, at, x, reading);
            reading
        });
        verdict.map(|v| Verdict { settled, ..v })
    }

    fn risk(&self, _value: f64, states: &[State]) -> f64 {
        alerting_score(self, states)
    }

    fn window_text(&self, signals: &[SignalDef]) -> String {
        format_duration(signals[self.signal].window)
    }

    fn annotate(&self, st: &Samples, out: &mut BTreeMap<String, String>) {
        out.insert("level".into(), format_value(self.level));
        if let Some(p) = st.latest {
            let eta = match p.eta {
                None => "no time (the trend no longer points there)".into(),
                Some(0) => "0 min (already past it)".into(),
                Some(e) => format!("~{} min", (e as f64 / 60_000.0).round().max(1.0)),
            };
            out.insert("eta".into(), eta);
            let sign = if p.per_minute >= 0.0 { "+" } else { "" };
            out.insert(
                "trend".into(),
                format!("{sign}{}", format_value(p.per_minute)),
            );
            out.insert("fitted".into(), format_value(p.now));
        }
    }

    fn series(&self, st: &Samples, out: &mut Vec<Series>) {
        let Some(p) = st.latest else { return };
        let minutes = self.horizon as f64 / 60_000.0;
        out.push(Series {
            name: "forecast_at_horizon",
            window: None,
            value: p.now + p.per_minute * minutes,
        });
        if let Some(eta) = p.eta {
            out.push(Series {
                name: "forecast_eta_seconds",
                window: None,
                value: eta as f64 / 1000.0,
            });
        }
    }

    fn describe(&self, signals: &[SignalDef]) -> String {
        let op = if self.op == Op::Above {
            "above"
        } else {
            "below"
        };
        format!(
            "forecast, {} projected {op} {} within {} at {}% confidence (trend over {}), min {} events",
            signals[self.signal].name,
            self.level,
            format_duration(self.horizon),
            self.confidence * 100.0,
            format_duration(self.step * SAMPLES as Millis),
            self.min_events
        )
    }

    fn state_bytes(st: &Samples) -> usize {
        st.points.capacity() * std::mem::size_of::<(Millis, f64)>()
    }
}

impl Forecast {
    /// Tracks the warning in `st` against the real value `x` at `at`;
    /// returns the prediction this evaluation settled, if any.
    fn settle(&self, st: &mut Samples, at: Millis, x: f64, reading: Reading) -> Option<Prediction> {
        let passed = match self.op {
            Op::Above => x >= self.level,
            Op::Below => x <= self.level,
        };
        let mut settled = None;
        if let Some(w) = st.warning.as_mut() {
            if passed {
                settled = Some(Prediction {
                    came_true: true,
                    lead: at - w.since,
                });
            } else if reading == Reading::Breach {
                w.last = at;
            } else if at - w.last > self.horizon {
                settled = Some(Prediction {
                    came_true: false,
                    lead: w.last - w.since,
                });
            }
        }
        if settled.is_some() {
            st.warning = None;
        }
        if passed {
            st.held = true;
        } else if reading == Reading::Clear {
            st.held = false;
        }
        if reading == Reading::Breach && !st.held && st.warning.is_none() {
            st.warning = Some(Warning {
                since: at,
                last: at,
            });
        }
        settled
    }

    /// Keeps `x` as a sample if a step has passed since the latest one.
    fn record(&self, st: &mut Samples, at: Millis, x: f64) {
        if st.points.last().is_some_and(|&(t, _)| at < t + self.step) {
            return;
        }
        if st.points.len() == SAMPLES {
            st.points.remove(0);
        }
        st.points.push((at, x));
    }

    /// The Theil–Sen projection of `points` from `at`.
    pub fn project(&self, points: &[(Millis, f64)], at: Millis) -> Option<Projection> {
        if points.len() < MIN_SAMPLES {
            return None;
        }
        let mut slopes = [0.0f64; PAIRS];
        let mut n = 0;
        for (i, &(ti, yi)) in points.iter().enumerate() {
            for &(tj, yj) in &points[i + 1..] {
                slopes[n] = (yj - yi) / (tj - ti) as f64;
                n += 1;
            }
        }
        let slopes = &mut slopes[..n];
        let median = quantile(slopes, 0.5);
        let mut offsets = [0.0f64; SAMPLES];
        for (o, &(t, y)) in offsets.iter_mut().zip(points) {
            *o = y - median * (t - at) as f64;
        }
        let now = quantile(&mut offsets[..points.len()], 0.5);
        // The slope the crossing must hold for: the one-sided confidence
        // bound of Sen's slope, the order statistic of the pairwise slopes
        // that Kendall's S statistic's spread puts it at — widened for
        // samples whose windows overlap (they are not independent).
        let k = points.len() as f64;
        let spread = (k * (k - 1.0) * (2.0 * k + 5.0) / 18.0 * self.overlap).sqrt();
        let z = crate::confidence::z_for(self.confidence);
        let low = ((n as f64 - z * spread) / 2.0 / (n as f64 - 1.0)).clamp(0.0, 0.5);
        let (toward, gap) = match self.op {
            Op::Above => (quantile(slopes, low), self.level - now),
            Op::Below => (-quantile(slopes, 1.0 - low), now - self.level),
        };
        // Already past it (robustly: the fitted value, not one window): the
        // forecast has come true and holds until the series is back.
        let eta = if gap <= 0.0 {
            Some(0)
        } else {
            (toward > 0.0).then(|| (gap / toward).min(1e15) as Millis)
        };
        Some(Projection {
            now,
            per_minute: median * 60_000.0,
            eta,
        })
    }
}

/// The `q` quantile of `v` (reorders it; nearest rank).
fn quantile(v: &mut [f64], q: f64) -> f64 {
    let k = ((v.len() - 1) as f64 * q).round() as usize;
    *v.select_nth_unstable_by(k, f64::total_cmp).1
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(op: Op, level: f64) -> Forecast {
        Forecast {
            signal: 0,
            level,
            op,
            horizon: 30 * 60_000,
            step: 60_000,
            confidence: 0.95,
            overlap: 1.0,
            min_events: 1,
            severity: Severity::Warning,
        }
    }

    proptest! {
        /// An exact linear series is forecast to cross exactly when it does.
        #[test]
        fn a_linear_series_crosses_when_it_does(
            start in -1e3f64..1e3, per_min in 0.01f64..100.0, n in 6usize..=SAMPLES, gap in 1.0f64..500.0
        ) {
            let r = rule(Op::Above, start + per_min * (n as f64 - 1.0) + gap);
            let points: Vec<_> = (0..n)
                .map(|i| (i as Millis * 60_000, start + per_min * i as f64))
                .collect();
            let at = points[n - 1].0;
            let p = r.project(&points, at).unwrap();
            // Whole milliseconds: within one of the exact crossing.
            let eta = p.eta.unwrap() as f64;
            let exact = gap / per_min * 60_000.0;
            prop_assert!((eta - exact).abs() <= 1.0 + 1e-9 * exact, "{eta} vs {exact}");
            prop_assert!((p.per_minute - per_min).abs() < 1e-9 * per_min.max(1.0));
        }
    }

    #[test]
    fn noise_around_a_flat_series_rarely_forecasts_a_crossing() {
        // Level 2.5 noise half-widths away: at 95% confidence, about one flat
        // stretch in twenty may show a trend; the horizon then rules most out.
        let r = rule(Op::Above, 105.0);
        let mut x = 7u64;
        let mut crossing = 0;
        for _ in 0..400 {
            let points: Vec<_> = (0..SAMPLES)
                .map(|i| {
                    x = x
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                    (i as Millis * 60_000, 100.0 + 4.0 * u - 2.0)
                })
                .collect();
            let p = r.project(&points, points[SAMPLES - 1].0).unwrap();
            crossing += usize::from(p.eta.is_some_and(|e| e <= r.horizon));
        }
        assert!(
            crossing <= 20,
            "{crossing} of 400 flat stretches forecast a crossing"
        );
    }

    #[test]
    fn one_wild_window_does_not_tilt_the_trend() {
        let r = rule(Op::Above, 2000.0);
        let mut points: Vec<_> = (0..SAMPLES)
            .map(|i| (i as Millis * 60_000, 1000.0 + 10.0 * i as f64))
            .collect();
        points[SAMPLES - 1].1 = 1900.0;
        let p = r.project(&points, points[SAMPLES - 1].0).unwrap();
        assert!((p.per_minute - 10.0).abs() < 1e-9, "{p:?}");
    }

    #[test]
    fn below_forecasts_a_fall() {
        let r = rule(Op::Below, 50.0);
        let points: Vec<_> = (0..10)
            .map(|i| (i as Millis * 60_000, 100.0 - 2.0 * i as f64))
            .collect();
        let p = r.project(&points, 9 * 60_000).unwrap();
        assert_eq!(p.eta, Some(16 * 60_000));
        let past = rule(Op::Below, 90.0).project(&points, 9 * 60_000).unwrap();
        assert_eq!(past.eta, Some(0));
    }

    #[test]
    fn its_gauges_are_the_value_at_the_horizon_and_the_time_to_the_level() {
        let r = rule(Op::Below, 50.0);
        let points: Vec<_> = (0..10)
            .map(|i| (i as Millis * 60_000, 100.0 - 2.0 * i as f64))
            .collect();
        let latest = r.project(&points, 9 * 60_000);
        let st = Samples {
            points,
            latest,
            warning: None,
            held: false,
        };
        let mut out = Vec::new();
        r.series(&st, &mut out);
        let got: Vec<(&str, f64)> = out.iter().map(|s| (s.name, s.value)).collect();
        // 82 now, falling 2/min: 22 in 30 min; 50 is 16 min away.
        assert_eq!(
            got,
            [
                ("forecast_at_horizon", 22.0),
                ("forecast_eta_seconds", 960.0)
            ]
        );
        let heading_away = Samples {
            latest: rule(Op::Above, 200.0).project(&st.points, 9 * 60_000),
            ..st
        };
        out.clear();
        rule(Op::Above, 200.0).series(&heading_away, &mut out);
        assert_eq!(out.len(), 1, "no time to a level it is not heading to");
    }
}
