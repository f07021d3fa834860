//! Rule kinds. Each kind is one module implementing [`RuleKind`]: its own config
//! fields and their validation, the inputs it reads, its per-group state, how it
//! reads one evaluation into a [`Reading`] per severity, its risk contribution and
//! its template variables. What turns readings into pending → firing → resolved
//! ([`crate::lifecycle`]: `for`, `m_of_n`, `keep_firing_for`) is shared by every
//! kind.
//!
//! `rule_kinds!` at the bottom registers the kinds: adding one is a new module
//! plus one line there. Dispatch is a `match` over an enum, so the evaluation
//! loop stays allocation-free and monomorphic per kind.

pub mod absent;
pub mod anomaly;
mod cx;
pub mod forecast;
pub mod model;
pub mod slo;
pub mod threshold;

use std::collections::BTreeMap;
use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use cx::{struct_fields, EvalCx, RuleCx};

use crate::config::{ConfigError, Severity, SignalDef};
use crate::event::Event;
use crate::lifecycle::{Instance, Reading, State};
use crate::time::Millis;
use crate::window::WindowValue;

/// Most alert instances one rule has per group: one per severity.
pub const MAX_LEVELS: usize = 2;

/// What drives a rule's evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// Evaluated with this signal's family, each time its window slides.
    Signal(usize),
    /// Records matching events itself ([`RuleKind::observe`]) and is evaluated
    /// every `interval` of event time.
    Own {
        /// Evaluation period.
        interval: Millis,
    },
}

/// One severity level of a rule: what it is called and the level shown as the
/// alert's `threshold`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LevelInfo {
    /// Severity label of the instance.
    pub severity: Severity,
    /// Shown as `threshold` (NaN: none).
    pub threshold: f64,
}

/// One evaluation of one rule for one group.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verdict {
    /// The value shown in annotations and on dashboards.
    pub value: Option<f64>,
    /// How the evaluation reads for each level, in the rule's level order.
    pub readings: [Reading; MAX_LEVELS],
    /// Earliest event time at which this (rule, group) could change without new
    /// data once its levels are all inactive after this evaluation:
    /// `Millis::MIN` for the next evaluation, `Millis::MAX` for never.
    pub wake_inactive: Millis,
    /// The same while any level is pending or firing.
    pub wake_active: Millis,
    /// The window value behind it, for [`crate::Engine::set_trace`].
    pub window: Option<WindowValue>,
    /// A prediction this evaluation settled (forecast kinds).
    pub settled: Option<Prediction>,
}

/// How a prediction turned out: it came true (the level was really crossed)
/// `lead` after the first warning, or did not and was withdrawn after
/// warning for `lead`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prediction {
    /// Whether the predicted crossing happened.
    pub came_true: bool,
    /// First warning to the crossing (came true) or to the last warning.
    pub lead: Millis,
}

/// A gauge a rule kind exposes per group beyond its value (e.g. an SLO's burn
/// rate per window), exported as `forewarn_<name>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Series {
    /// Metric name without the `forewarn_` prefix.
    pub name: &'static str,
    /// The window it describes, when it has one (a `window` label).
    pub window: Option<Millis>,
    /// The value.
    pub value: f64,
}

/// The interface every rule kind implements.
pub trait RuleKind: Sized + Clone + PartialEq + Debug {
    /// Its `kind = "…"` spelling.
    const NAME: &'static str;
    /// Whether the shared lifecycle fields (`for`, `m_of_n`, `keep_firing_for`)
    /// apply; a kind that gives `for` its own meaning (absent) sets false.
    const LIFECYCLE: bool;
    /// Template placeholders this kind adds to the common ones.
    const VARS: &'static [&'static str] = &[];
    /// Its own config fields (`deny_unknown_fields`, a doc comment per field).
    type Raw: DeserializeOwned;
    /// Per-group state beyond the alert instances; part of snapshots.
    type State: Default + Clone + PartialEq + Debug + Serialize + DeserializeOwned;

    /// Checks the raw fields against each other and the signals.
    fn validate(raw: Self::Raw, cx: &RuleCx) -> Result<Self, ConfigError>;
    /// What drives evaluations.
    fn input(&self) -> Input;
    /// The index of the signal it watches, to rewrite (a kind whose input is
    /// a signal must return it: rule identities compare the signal by
    /// definition, not by index).
    fn signal_mut(&mut self) -> Option<&mut usize>;
    /// Labels beyond `service` that split its groups.
    fn group_by<'a>(&'a self, signals: &'a [SignalDef]) -> &'a [String] {
        match self.input() {
            Input::Signal(s) => &signals[s].group_by,
            Input::Own { .. } => &[],
        }
    }
    /// Number of levels (alert instances per group), 1..=[`MAX_LEVELS`].
    fn levels(&self) -> usize;
    /// Level `i`.
    fn level(&self, i: usize) -> LevelInfo;
    /// The summary used when the rule gives none.
    fn default_summary(&self) -> &'static str;
    /// Whether an empty window breaches (it must then be evaluated even for
    /// groups without data).
    fn breaches_when_empty(&self, _signals: &[SignalDef]) -> bool {
        false
    }
    /// Whether silence is what this rule pages on (its groups are never
    /// reclaimed while idle).
    fn pages_on_silence(&self) -> bool {
        false
    }
    /// For [`Input::Own`] kinds: records one event, if it matches.
    fn observe(&self, _st: &mut Self::State, _e: &Event) {}
    /// For [`Input::Own`] kinds: whether an event concerns this rule at all.
    fn matches(&self, _e: &Event) -> bool {
        false
    }
    /// Newest event time the group's own state holds (idle-group reclaim).
    fn newest(&self, _st: &Self::State) -> Millis {
        Millis::MIN
    }
    /// How long an [`Input::Own`] group keeps influencing alerts after its last
    /// event.
    fn memory(&self) -> Millis {
        0
    }
    /// Evaluates group `cx.group` at `cx.at`; `None` skips it (nothing to judge
    /// and nothing active).
    fn evaluate(
        &self,
        cx: &mut EvalCx<'_>,
        st: &mut Self::State,
        insts: &[Instance],
    ) -> Option<Verdict>;
    /// 0–1 risk from the latest value and the levels' states.
    fn risk(&self, value: f64, states: &[State]) -> f64;
    /// The `{window}` placeholder.
    fn window_text(&self, signals: &[SignalDef]) -> String;
    /// Extra annotations from the group's state (e.g. SLO burn rates).
    fn annotate(&self, _st: &Self::State, _out: &mut BTreeMap<String, String>) {}
    /// Gauges of one group's state (see [`Series`]).
    fn series(&self, _st: &Self::State, _out: &mut Vec<Series>) {}
    /// One line for `forewarn check`.
    fn describe(&self, signals: &[SignalDef]) -> String;
    /// Heap bytes of one group's state.
    fn state_bytes(_st: &Self::State) -> usize {
        0
    }
    /// The feature vector the latest evaluation computed (model kinds), for
    /// [`crate::Engine::set_feature_log`].
    fn features<'a>(&self, _st: &'a Self::State) -> Option<&'a [f32]> {
        None
    }
}

/// Score of one level in `state`: firing critical 1, pending critical 0.7,
/// firing warning 0.5, pending warning 0.3.
pub fn level_score(severity: Severity, state: State) -> f64 {
    match (state, severity) {
        (State::Firing, Severity::Critical) => 1.0,
        (State::Pending, Severity::Critical) => 0.7,
        (State::Firing, Severity::Warning) => 0.5,
        (State::Pending, Severity::Warning) => 0.3,
        (State::Inactive, _) => 0.0,
    }
}

/// The alert-state part of any rule's risk: the largest level score.
pub fn alerting_score<K: RuleKind>(k: &K, states: &[State]) -> f64 {
    states
        .iter()
        .enumerate()
        .map(|(i, s)| level_score(k.level(i).severity, *s))
        .fold(0.0, f64::max)
}

/// Evaluation of a one-level rule judged on its signal's window value (the
/// anomaly and forecast kinds): an idle group with nothing active is skipped,
/// a window under `min_events` reads `Insufficient` (an empty one `Clear`),
/// and otherwise `judge(at, value, events)` gives the reading.
pub fn judge_window(
    cx: &mut EvalCx<'_>,
    signal: usize,
    min_events: u64,
    insts: &[Instance],
    judge: impl FnOnce(Millis, f64, u64) -> Reading,
) -> Option<Verdict> {
    if !cx.has_data(signal) && insts.iter().all(|i| i.state == State::Inactive) {
        return None;
    }
    let w = cx.window(signal);
    let reading = match w.value {
        Some(x) if w.events >= min_events => judge(cx.at, x, w.events),
        _ if w.events == 0 => Reading::Clear,
        _ => Reading::Insufficient,
    };
    let mut readings = [Reading::Clear; MAX_LEVELS];
    readings[0] = reading;
    Some(Verdict {
        value: w.value,
        readings,
        wake_inactive: Millis::MAX,
        wake_active: Millis::MIN,
        window: Some(w),
        settled: None,
    })
}

macro_rules! rule_kinds {
    ($($variant:ident => $module:ident :: $ty:ident),+ $(,)?) => {
        /// What a rule checks: one variant per rule kind.
        // One per rule in the config, never per event: size does not matter,
        // and unboxed variants keep evaluation one indirection shorter.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum RuleSpec {
            $(
                #[doc = concat!("`kind = \"", stringify!($module), "\"`")]
                $variant($module::$ty)
            ),+
        }

        /// Per-group states of one rule, typed by its kind (in snapshots).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        pub enum KindStates {
            $(
                #[doc = concat!("States of a `", stringify!($module), "` rule.")]
                $variant(Vec<<$module::$ty as RuleKind>::State>)
            ),+
        }

        /// Every kind's name and its own fields, for error messages and docs.
        pub fn kinds() -> Vec<(&'static str, bool, &'static [&'static str])> {
            vec![$((
                <$module::$ty as RuleKind>::NAME,
                <$module::$ty as RuleKind>::LIFECYCLE,
                struct_fields::<<$module::$ty as RuleKind>::Raw>(),
            )),+]
        }

        impl RuleSpec {
            /// Validates the fields of a rule of kind `kind`.
            pub fn validate(kind: &str, cx: &RuleCx) -> Result<RuleSpec, ConfigError> {
                $(
                    if kind == <$module::$ty as RuleKind>::NAME {
                        let raw = cx.raw::<$module::$ty>()?;
                        return <$module::$ty as RuleKind>::validate(raw, cx).map(RuleSpec::$variant);
                    }
                )+
                Err(cx.unknown_kind(kind))
            }

            /// Empty per-group state of this rule.
            pub fn new_states(&self) -> KindStates {
                match self { $(RuleSpec::$variant(_) => KindStates::$variant(Vec::new())),+ }
            }

            /// Whether the shared lifecycle fields apply.
            pub fn has_lifecycle(&self) -> bool {
                match self { $(RuleSpec::$variant(_) => <$module::$ty as RuleKind>::LIFECYCLE),+ }
            }

            /// Template placeholders of this kind beyond the common ones.
            pub fn vars(&self) -> &'static [&'static str] {
                match self { $(RuleSpec::$variant(_) => <$module::$ty as RuleKind>::VARS),+ }
            }

            /// See [`RuleKind::input`].
            pub fn input(&self) -> Input {
                match self { $(RuleSpec::$variant(k) => k.input()),+ }
            }

            /// See [`RuleKind::signal_mut`].
            pub fn signal_mut(&mut self) -> Option<&mut usize> {
                match self { $(RuleSpec::$variant(k) => k.signal_mut()),+ }
            }

            /// See [`RuleKind::group_by`].
            pub fn group_by<'a>(&'a self, signals: &'a [SignalDef]) -> &'a [String] {
                match self { $(RuleSpec::$variant(k) => k.group_by(signals)),+ }
            }

            /// Alert instances per group: one per severity level.
            pub fn levels(&self) -> usize {
                match self { $(RuleSpec::$variant(k) => k.levels()),+ }
            }

            /// See [`RuleKind::level`].
            pub fn level(&self, i: usize) -> LevelInfo {
                match self { $(RuleSpec::$variant(k) => k.level(i)),+ }
            }

            /// See [`RuleKind::default_summary`].
            pub fn default_summary(&self) -> &'static str {
                match self { $(RuleSpec::$variant(k) => k.default_summary()),+ }
            }

            /// See [`RuleKind::breaches_when_empty`].
            pub fn breaches_when_empty(&self, signals: &[SignalDef]) -> bool {
                match self { $(RuleSpec::$variant(k) => k.breaches_when_empty(signals)),+ }
            }

            /// See [`RuleKind::pages_on_silence`].
            pub fn pages_on_silence(&self) -> bool {
                match self { $(RuleSpec::$variant(k) => k.pages_on_silence()),+ }
            }

            /// See [`RuleKind::matches`].
            #[inline]
            pub fn matches(&self, e: &Event) -> bool {
                match self { $(RuleSpec::$variant(k) => k.matches(e)),+ }
            }

            /// See [`RuleKind::memory`].
            pub fn memory(&self) -> Millis {
                match self { $(RuleSpec::$variant(k) => k.memory()),+ }
            }

            /// See [`RuleKind::risk`].
            pub fn risk(&self, value: f64, states: &[State]) -> f64 {
                match self { $(RuleSpec::$variant(k) => k.risk(value, states)),+ }
            }

            /// See [`RuleKind::window_text`].
            pub fn window_text(&self, signals: &[SignalDef]) -> String {
                match self { $(RuleSpec::$variant(k) => k.window_text(signals)),+ }
            }

            /// See [`RuleKind::describe`].
            pub fn describe(&self, signals: &[SignalDef]) -> String {
                match self { $(RuleSpec::$variant(k) => k.describe(signals)),+ }
            }
        }

        impl KindStates {
            /// Makes room for `groups` groups.
            pub fn ensure(&mut self, groups: usize) {
                match self {
                    $(KindStates::$variant(v) => {
                        if v.len() < groups {
                            v.resize_with(groups, Default::default);
                        }
                    }),+
                }
            }

            /// Empties group `g`'s state (idle-group reclaim).
            pub fn reset(&mut self, g: usize) {
                match self {
                    $(KindStates::$variant(v) => {
                        if let Some(s) = v.get_mut(g) {
                            *s = Default::default();
                        }
                    }),+
                }
            }

            /// Evaluates group `cx.group` under `spec` (of the same kind).
            #[inline]
            pub fn evaluate(
                &mut self,
                spec: &RuleSpec,
                cx: &mut EvalCx<'_>,
                insts: &[Instance],
            ) -> Option<Verdict> {
                match (spec, self) {
                    $((RuleSpec::$variant(k), KindStates::$variant(v)) => {
                        k.evaluate(cx, &mut v[cx.group], insts)
                    }),+
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }

            /// Records an event for group `g` under `spec`.
            #[inline]
            pub fn observe(&mut self, spec: &RuleSpec, g: usize, e: &Event) {
                match (spec, self) {
                    $((RuleSpec::$variant(k), KindStates::$variant(v)) => k.observe(&mut v[g], e),)+
                    #[allow(unreachable_patterns)]
                    _ => {}
                }
            }

            /// Newest event time group `g`'s own state holds.
            pub fn newest(&self, spec: &RuleSpec, g: usize) -> Millis {
                match (spec, self) {
                    $((RuleSpec::$variant(k), KindStates::$variant(v)) => {
                        v.get(g).map_or(Millis::MIN, |s| k.newest(s))
                    }),+
                    #[allow(unreachable_patterns)]
                    _ => Millis::MIN,
                }
            }

            /// Extra annotations for group `g`.
            pub fn annotate(&self, spec: &RuleSpec, g: usize, out: &mut BTreeMap<String, String>) {
                match (spec, self) {
                    $((RuleSpec::$variant(k), KindStates::$variant(v)) => {
                        if let Some(s) = v.get(g) {
                            k.annotate(s, out);
                        }
                    }),+
                    #[allow(unreachable_patterns)]
                    _ => {}
                }
            }

            /// Gauges of group `g`.
            pub fn series(&self, spec: &RuleSpec, g: usize, out: &mut Vec<Series>) {
                match (spec, self) {
                    $((RuleSpec::$variant(k), KindStates::$variant(v)) => {
                        if let Some(s) = v.get(g) {
                            k.series(s, out);
                        }
                    }),+
                    #[allow(unreachable_patterns)]
                    _ => {}
                }
            }

            /// The latest feature vector of group `g` (see [`RuleKind::features`]).
            pub fn features(&self, spec: &RuleSpec, g: usize) -> Option<&[f32]> {
                match (spec, self) {
                    $((RuleSpec::$variant(k), KindStates::$variant(v)) => v.get(g).and_then(|s| k.features(s)),)+
                    #[allow(unreachable_patterns)]
                    _ => None,
                }
            }

            /// Whether this holds the states of a rule of `spec`'s kind.
            pub fn is_for(&self, spec: &RuleSpec) -> bool {
                match (spec, self) {
                    $((RuleSpec::$variant(_), KindStates::$variant(_)) => true,)+
                    #[allow(unreachable_patterns)]
                    _ => false,
                }
            }

            /// Heap bytes held.
            pub fn heap_bytes(&self) -> usize {
                match self {
                    $(KindStates::$variant(v) => {
                        v.capacity() * std::mem::size_of::<<$module::$ty as RuleKind>::State>()
                            + v.iter().map(<$module::$ty as RuleKind>::state_bytes).sum::<usize>()
                    }),+
                }
            }
        }
    };
}

rule_kinds! {
    Threshold => threshold::Threshold,
    Absent => absent::Absent,
    Slo => slo::Slo,
    Anomaly => anomaly::Anomaly,
    Forecast => forecast::Forecast,
    Model => model::Model,
}
