//! `kind = "slo"`: an objective over good/total events with an error budget over
//! a period, paged on by multiwindow, multi-burn-rate pairs (the SRE Workbook's
//! "alerting on SLOs", as Sloth and Pyrra generate them): a pair burns when both
//! its long and its short window consume the budget at least `burn` times faster
//! than the period allows. The long window makes the alert significant, the
//! short one makes it reset as soon as the burn stops.
//!
//! The rule records its own events ([`crate::budget`]: bounded panes from minutes
//! to the 30-day period) and is evaluated every `interval` of event time.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{alerting_score, EvalCx, Input, LevelInfo, RuleCx, RuleKind, Verdict, MAX_LEVELS};
use crate::alert::format_value;
use crate::budget::{Counts, Geometry, Tally};
use crate::config::raw::RawFilter;
use crate::config::{ConfigError, Filter, Severity, SignalDef};
use crate::event::Event;
use crate::lifecycle::{Instance, Reading, State};
use crate::time::{format_duration, Millis};

const DAY: Millis = 86_400_000;
const HOUR: Millis = 3_600_000;
const MINUTE: Millis = 60_000;

/// The fields of an SLO rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// Events the SLO counts (its denominator), e.g. `{ kind = "request" }`.
    pub total: RawFilter,
    /// Among `total`, the events that meet the objective, e.g.
    /// `{ outcome = "ok" }` or `{ below = { latency_ms = 300 } }`.
    pub good: RawFilter,
    /// Target share of good events, below 1: 0.999 for 99.9%.
    pub objective: f64,
    /// Error-budget period (default "30d").
    pub period: Option<String>,
    /// Labels beyond `service` that split the SLO.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Alerting window pairs (default: the SRE Workbook's page and ticket pairs).
    pub pairs: Option<Vec<RawPair>>,
    /// Fewest events in each window of a pair for the pair to count (default 10):
    /// one failure in three requests does not page.
    pub min_events: Option<i64>,
    /// How often it is evaluated (default: a tenth of the shortest window,
    /// between 10 s and 1 min); every window must be a multiple of it.
    pub interval: Option<String>,
    /// Burn only on evidence: each window's error ratio is read at the lower
    /// bound of this one-sided confidence (Wilson), default 0.95; 0.5 reads the
    /// estimate. A single early error in a young or quiet window does not page.
    pub confidence: Option<f64>,
    /// Judge each window against the error budget it spends rather than its
    /// error ratio: a window with less traffic than the period's average needs a
    /// proportionally higher ratio to page (Pyrra's dynamic burn rate).
    pub traffic_aware: Option<bool>,
}

/// One `pairs` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPair {
    /// The long window, e.g. "1h".
    pub long: String,
    /// The short window, e.g. "5m"; shorter than `long`.
    pub short: String,
    /// Burn-rate factor both windows must reach, e.g. 14.4.
    pub burn: f64,
    /// `critical` (page) or `warning` (ticket).
    pub severity: Option<String>,
}

/// A validated alerting pair.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pair {
    /// Long window.
    pub long: Millis,
    /// Short window.
    pub short: Millis,
    /// Burn-rate factor.
    pub burn: f64,
    /// Severity of its alert.
    pub severity: Severity,
}

/// The SRE Workbook's defaults for a 30-day period: 2% of the budget in 1 h,
/// 5% in 6 h (page), 10% in 1 d, 10% in 3 d (ticket).
pub const WORKBOOK_PAIRS: [Pair; 4] = [
    Pair {
        long: HOUR,
        short: 5 * MINUTE,
        burn: 14.4,
        severity: Severity::Critical,
    },
    Pair {
        long: 6 * HOUR,
        short: 30 * MINUTE,
        burn: 6.0,
        severity: Severity::Critical,
    },
    Pair {
        long: DAY,
        short: 2 * HOUR,
        burn: 3.0,
        severity: Severity::Warning,
    },
    Pair {
        long: 3 * DAY,
        short: 6 * HOUR,
        burn: 1.0,
        severity: Severity::Warning,
    },
];

/// A validated SLO rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Slo {
    /// The denominator.
    pub total: Filter,
    /// The good events among `total`.
    pub good: Filter,
    /// E.g. 0.999.
    pub objective: f64,
    /// Budget period.
    pub period: Millis,
    /// Labels beyond `service`.
    pub group_by: Vec<String>,
    /// Alerting pairs, in config order.
    pub pairs: Vec<Pair>,
    /// Fewest events per window of a pair.
    pub min_events: u64,
    /// Evaluation interval.
    pub interval: Millis,
    /// See [`Raw::traffic_aware`].
    pub traffic_aware: bool,
    /// One-sided normal quantile of the required confidence (0: the estimate).
    pub z: f64,
    /// Severities of the pairs, warning first: the alert levels.
    pub severities: Vec<Severity>,
    /// Every distinct window (pairs' and the period), shortest first.
    pub windows: Vec<Millis>,
    /// Shape of every group's counts.
    pub geometry: Geometry,
}

/// One window's burn, as annotations and metrics show it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Burn {
    /// Window length.
    pub window: Millis,
    /// Error ratio over the budget's ratio (NaN: no events).
    pub rate: f64,
    /// Events in the window.
    pub events: f64,
}

impl RuleKind for Slo {
    const NAME: &'static str = "slo";
    const LIFECYCLE: bool = true;
    const VARS: &'static [&'static str] =
        &["objective", "error_budget_remaining", "budget_exhausted_in"];
    type Raw = Raw;
    type State = Counts;

    fn validate(raw: Raw, cx: &RuleCx) -> Result<Slo, ConfigError> {
        let objective = objective(cx, raw.objective)?;
        let period = match &raw.period {
            Some(p) => cx.duration("period", p)?,
            None => 30 * DAY,
        };
        let pairs = match raw.pairs {
            Some(p) => pairs(cx, p)?,
            None => WORKBOOK_PAIRS.to_vec(),
        };
        let shortest = pairs.iter().map(|p| p.short).min().unwrap_or(5 * MINUTE);
        let interval = match &raw.interval {
            Some(i) => cx.duration("interval", i)?,
            None => default_interval(shortest),
        };
        let mut windows: Vec<Millis> = pairs.iter().flat_map(|p| [p.long, p.short]).collect();
        windows.push(period);
        windows.sort_unstable();
        windows.dedup();
        check_geometry(cx, interval, period, &windows, &pairs)?;
        let min_events = cx.min_events(raw.min_events, 10)?;
        cx.group_by(&raw.group_by)?;
        let mut severities: Vec<Severity> = pairs.iter().map(|p| p.severity).collect();
        severities.sort();
        severities.dedup();
        Ok(Slo {
            total: cx.filter("total", &raw.total)?,
            good: cx.filter("good", &raw.good)?,
            objective,
            period,
            group_by: raw.group_by,
            pairs,
            min_events,
            interval,
            traffic_aware: raw.traffic_aware.unwrap_or(false),
            z: confidence_z(cx, raw.confidence)?,
            severities,
            geometry: Geometry::new(interval, &windows, cx.lateness()),
            windows,
        })
    }

    fn input(&self) -> Input {
        Input::Own {
            interval: self.interval,
        }
    }

    fn signal_mut(&mut self) -> Option<&mut usize> {
        None
    }

    fn group_by<'a>(&'a self, _signals: &'a [SignalDef]) -> &'a [String] {
        &self.group_by
    }

    fn levels(&self) -> usize {
        self.severities.len()
    }

    fn level(&self, i: usize) -> LevelInfo {
        let severity = self.severities[i];
        let threshold = self
            .pairs
            .iter()
            .filter(|p| p.severity == severity)
            .map(|p| p.burn)
            .fold(f64::INFINITY, f64::min);
        LevelInfo {
            severity,
            threshold,
        }
    }

    fn default_summary(&self) -> &'static str {
        "{rule}: {service} is spending its error budget {value}x too fast ({error_budget_remaining} left, exhausted in {budget_exhausted_in})"
    }

    #[inline]
    fn matches(&self, e: &Event) -> bool {
        self.total.matches(e)
    }

    #[inline]
    fn observe(&self, st: &mut Counts, e: &Event) {
        st.record(&self.geometry, e.ts, !self.good.matches(e));
    }

    fn newest(&self, st: &Counts) -> Millis {
        st.newest()
    }

    fn memory(&self) -> Millis {
        self.pairs.iter().map(|p| p.long).max().unwrap_or(0)
    }

    fn evaluate(
        &self,
        cx: &mut EvalCx<'_>,
        st: &mut Counts,
        _insts: &[Instance],
    ) -> Option<Verdict> {
        if st.is_empty() {
            return None;
        }
        st.advance(&self.geometry, cx.at);
        let period = if self.traffic_aware {
            st.window(&self.geometry, self.period, cx.at)
        } else {
            Tally::default()
        };
        let mut readings = [Reading::Clear; MAX_LEVELS];
        for (level, sev) in self.severities.iter().enumerate() {
            let mut any_judged = false;
            let mut burning = false;
            for p in self.pairs.iter().filter(|p| p.severity == *sev) {
                if let Some(b) = self.pair_burns(st, p, cx.at, period) {
                    any_judged = true;
                    burning |= b;
                }
            }
            readings[level] = if burning {
                Reading::Breach
            } else if any_judged {
                Reading::Clear
            } else {
                Reading::Insufficient
            };
        }
        let value = self.window_burn(st, self.lead_pair().long, cx.at);
        Some(Verdict {
            value: value.is_finite().then_some(value),
            readings,
            // Old good events leaving a window can raise its ratio: every interval.
            wake_inactive: Millis::MIN,
            wake_active: Millis::MIN,
            window: None,
            settled: None,
        })
    }

    fn risk(&self, value: f64, states: &[State]) -> f64 {
        let near = if value.is_finite() {
            0.25 * (value / self.lead_pair().burn).clamp(0.0, 1.0)
        } else {
            0.0
        };
        alerting_score(self, states).max(near)
    }

    fn window_text(&self, _signals: &[SignalDef]) -> String {
        let lead = self.lead_pair();
        format_duration(lead.long)
    }

    fn annotate(&self, st: &Counts, out: &mut BTreeMap<String, String>) {
        out.insert("objective".into(), percent(self.objective));
        for b in self.burns(st) {
            let v = if b.rate.is_finite() {
                format_value(b.rate)
            } else {
                "no events".into()
            };
            out.insert(format!("burn_rate_{}", format_duration(b.window)), v);
        }
        let at = st.folded_to();
        let period = st.window(&self.geometry, self.period, at);
        let burning: Vec<String> = self
            .pairs
            .iter()
            .filter(|p| self.pair_burns(st, p, at, period) == Some(true))
            .map(|p| {
                format!(
                    "{}/{} at {}x ({})",
                    format_duration(p.long),
                    format_duration(p.short),
                    p.burn,
                    p.severity.as_str()
                )
            })
            .collect();
        out.insert(
            "burning_pairs".into(),
            if burning.is_empty() {
                "none".into()
            } else {
                burning.join(", ")
            },
        );
        let (remaining, exhaustion) = self.budget(st);
        out.insert(
            "error_budget_remaining".into(),
            remaining.map_or("unknown".into(), percent),
        );
        out.insert("budget_exhausted_in".into(), exhaustion);
    }

    fn series(&self, st: &Counts, out: &mut Vec<super::Series>) {
        if st.is_empty() {
            return;
        }
        for b in self.burns(st) {
            if b.rate.is_finite() {
                out.push(super::Series {
                    name: "slo_burn_rate",
                    window: Some(b.window),
                    value: b.rate,
                });
            }
        }
        if let (Some(r), _) = self.budget(st) {
            out.push(super::Series {
                name: "slo_error_budget_remaining_ratio",
                window: None,
                value: r,
            });
        }
    }

    fn describe(&self, _signals: &[SignalDef]) -> String {
        let pairs: Vec<String> = self
            .pairs
            .iter()
            .map(|p| {
                format!(
                    "{} {}x over {} and {}",
                    p.severity.as_str(),
                    p.burn,
                    format_duration(p.long),
                    format_duration(p.short)
                )
            })
            .collect();
        format!(
            "slo, {} good over {}, evaluated every {}; {}; min {} events per window, burn on the {:.0}% lower bound{}",
            percent(self.objective),
            format_duration(self.period),
            format_duration(self.interval),
            pairs.join("; "),
            self.min_events,
            if self.z == 0.0 { 50.0 } else { 100.0 * (1.0 - tail(self.z)) },
            if self.traffic_aware {
                ", traffic-aware"
            } else {
                ""
            }
        )
    }

    fn state_bytes(st: &Counts) -> usize {
        if st.is_empty() {
            0
        } else {
            st.heap_bytes()
        }
    }
}

impl Slo {
    /// The pair whose long window is shortest: the fastest burn, shown as `value`.
    fn lead_pair(&self) -> Pair {
        *self
            .pairs
            .iter()
            .min_by_key(|p| p.long)
            .unwrap_or(&WORKBOOK_PAIRS[0])
    }

    /// Error ratio over the budget's ratio.
    pub fn burn(&self, t: Tally) -> f64 {
        if t.total <= 0.0 {
            return f64::NAN;
        }
        (t.bad / t.total) / (1.0 - self.objective)
    }

    /// Whether pair `p` burns at `at`; `None` when a window has too few events.
    fn pair_burns(&self, st: &Counts, p: &Pair, at: Millis, period: Tally) -> Option<bool> {
        let mut all = true;
        for w in [p.long, p.short] {
            let t = st.window(&self.geometry, w, at);
            if t.total < self.min_events as f64 || t.total <= 0.0 {
                return None;
            }
            let mut factor = p.burn;
            if self.traffic_aware && period.total > 0.0 {
                // The window's expected share of the period's traffic over its
                // actual traffic: a quiet window needs a higher ratio.
                let expected = period.total * w as f64 / self.period as f64;
                factor *= expected / t.total;
            }
            let (lower, _) =
                crate::confidence::wilson(t.bad / t.total, t.total.round() as u64, self.z);
            all &= lower * coverage(st, w, at) / (1.0 - self.objective) >= factor;
            if !all {
                // The long window does not burn: the pair does not, whatever the short.
                return Some(false);
            }
        }
        Some(all)
    }

    /// The burn over window `w` at `at`: the error ratio over the budget's, the
    /// part of the window before the group's first event counted as good
    /// traffic at the observed rate (see [`coverage`]).
    pub fn window_burn(&self, st: &Counts, w: Millis, at: Millis) -> f64 {
        self.burn(st.window(&self.geometry, w, at)) * coverage(st, w, at)
    }

    /// Burn rates of every window as of the last evaluation.
    pub fn burns(&self, st: &Counts) -> Vec<Burn> {
        let at = st.folded_to();
        self.windows
            .iter()
            .map(|&w| Burn {
                window: w,
                rate: self.window_burn(st, w, at),
                events: st.window(&self.geometry, w, at).total,
            })
            .collect()
    }

    /// Share of the period's error budget left (None: no events), and when it
    /// runs out at the current burn (the lead pair's short window).
    pub fn budget(&self, st: &Counts) -> (Option<f64>, String) {
        let at = st.folded_to();
        let spent = self.window_burn(st, self.period, at);
        if !spent.is_finite() {
            return (None, "unknown".into());
        }
        let remaining = 1.0 - spent;
        // The current burn: the lead pair's short window, the most recent.
        let now = self.window_burn(st, self.lead_pair().short, at);
        let text = if remaining <= 0.0 {
            "already exhausted".to_string()
        } else if !now.is_finite() || now <= 0.0 {
            "never at the current burn".to_string()
        } else {
            human_duration(remaining * self.period as f64 / now)
        };
        (Some(remaining), text)
    }
}

/// The share of window `w` the group's history covers. A window longer than the
/// history counts the missing stretch as good traffic at the observed rate, so
/// a young group (a new service, or one after a restart without state) needs
/// the ratio a full window would need to reach the same budget spend: one early
/// error or a short blip in its first hours does not read as a burn over days,
/// while a real outage still pages within minutes.
fn coverage(st: &Counts, w: Millis, at: Millis) -> f64 {
    (st.history(at) as f64 / w as f64).min(1.0)
}

/// Upper-tail probability of the standard normal at `z` (for display).
fn tail(z: f64) -> f64 {
    // Abramowitz & Stegun 7.1.26 through erfc.
    let x = z / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    0.5 * poly * (-x * x).exp()
}

/// "~3 h 10 min", "~2 d 4 h", "~45 min", "< 1 min".
pub fn human_duration(ms: f64) -> String {
    let min = (ms / MINUTE as f64).round() as i64;
    if min < 1 {
        return "< 1 min".into();
    }
    let (d, h, m) = (min / 1440, min / 60 % 24, min % 60);
    if d > 0 {
        format!("~{d} d {h} h")
    } else if h > 0 {
        format!("~{h} h {m} min")
    } else {
        format!("~{m} min")
    }
}

fn percent(x: f64) -> String {
    let p = x * 100.0;
    let s = format!("{p:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}%")
}

/// Default interval: a tenth of the shortest window, 10 s to 1 min, rounded
/// down to a divisor of it.
fn default_interval(shortest: Millis) -> Millis {
    let want = (shortest / 10).clamp(10_000, MINUTE);
    (1..=want / 1000)
        .rev()
        .map(|s| s * 1000)
        .find(|i| shortest % i == 0)
        .unwrap_or(1000)
}

fn confidence_z(cx: &RuleCx, c: Option<f64>) -> Result<f64, ConfigError> {
    let c = c.unwrap_or(0.95);
    if !(0.5..1.0).contains(&c) {
        return Err(cx.err_at(
            "confidence",
            format!("confidence {c} must be at least 0.5 and below 1"),
            "e.g. confidence = 0.95; 0.5 judges the estimate itself",
        ));
    }
    Ok(if c == 0.5 {
        0.0
    } else {
        crate::confidence::z_for(c)
    })
}

fn objective(cx: &RuleCx, o: f64) -> Result<f64, ConfigError> {
    if o > 0.0 && o < 1.0 {
        return Ok(o);
    }
    let help = if o > 1.0 && o < 100.0 {
        format!("write it as a share: objective = {} for {o}%", o / 100.0)
    } else {
        "e.g. objective = 0.999 for 99.9% (an objective of 100% has no error budget)".into()
    };
    Err(cx.err_at(
        "objective",
        format!("objective {o} must be above 0 and below 1 (100%)"),
        help,
    ))
}

fn pairs(cx: &RuleCx, raw: Vec<RawPair>) -> Result<Vec<Pair>, ConfigError> {
    if raw.is_empty() {
        return Err(cx.err_at(
            "pairs",
            "`pairs` is empty",
            "remove it for the SRE Workbook's four pairs, or list at least one",
        ));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, p)| {
            let n = i + 1;
            let long = cx.duration("pairs", &p.long)?;
            let short = cx.duration("pairs", &p.short)?;
            if short >= long {
                return Err(cx.err_at(
                    "pairs",
                    format!(
                        "pair {n}: the short window ({}) must be shorter than the long one ({})",
                        format_duration(short),
                        format_duration(long)
                    ),
                    "e.g. { long = \"1h\", short = \"5m\", burn = 14.4, severity = \"critical\" }",
                ));
            }
            if !(p.burn.is_finite() && p.burn > 0.0) {
                return Err(cx.err_at(
                    "pairs",
                    format!("pair {n}: burn {} must be a positive number", p.burn),
                    "1 spends the budget exactly over the period; 14.4 spends 2% of 30 days in 1 h",
                ));
            }
            let severity = match p.severity.as_deref() {
                Some("critical") => Severity::Critical,
                Some("warning") => Severity::Warning,
                Some(other) => {
                    return Err(cx.err_at(
                        "pairs",
                        format!("pair {n}: severity `{other}` is not warning or critical"),
                        "severity = \"critical\" pages, \"warning\" opens a ticket",
                    ))
                }
                None => {
                    return Err(cx.err_at(
                        "pairs",
                        format!("pair {n} has no severity"),
                        "add severity = \"critical\" (page) or \"warning\" (ticket)",
                    ))
                }
            };
            Ok(Pair {
                long,
                short,
                burn: p.burn,
                severity,
            })
        })
        .collect()
}

fn check_geometry(
    cx: &RuleCx,
    interval: Millis,
    period: Millis,
    windows: &[Millis],
    pairs: &[Pair],
) -> Result<(), ConfigError> {
    if interval < 1000 {
        return Err(cx.err_at(
            "interval",
            "`interval` must be at least 1s",
            "e.g. interval = \"30s\"",
        ));
    }
    if let Some(w) = windows.iter().find(|w| *w % interval != 0) {
        return Err(cx.err_at(
            "interval",
            format!(
                "window {} is not a multiple of the evaluation interval {}",
                format_duration(*w),
                format_duration(interval)
            ),
            "choose an interval that divides every window, e.g. \"30s\"",
        ));
    }
    if let Some(p) = pairs.iter().find(|p| p.long > period) {
        return Err(cx.err_at(
            "period",
            format!(
                "the long window {} is longer than the period {}",
                format_duration(p.long),
                format_duration(period)
            ),
            "use a longer period (e.g. \"30d\") or shorter windows",
        ));
    }
    Ok(())
}
