//! One engine shard: the state for one input partition.
//!
//! [`Engine::ingest`] takes a decoded event and the wall-clock time (injected, never
//! read here) and appends any alert transitions to a caller-owned buffer. The
//! watermark is the newest event time minus the allowed lateness; every time it
//! passes a window end, the rules of that signal are evaluated at once, so detection
//! waits for nothing but the watermark.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alert::{self, Alert, Transition};
use crate::config::{Aggregate, Config, Op, RuleSpec, SignalDef};
use crate::event::Event;
use crate::groups::{GroupKey, Grouping, Lookup};
use crate::lifecycle::{
    read, read_judged, step, step_absent, Instance, Reading, State, TransitionKind,
};
use crate::time::{format_duration, format_rfc3339, Millis};
use crate::window::{empty_value, grow, FamilyStore};

/// What happened to an ingested event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Counted in the panes it belongs to.
    Applied,
    /// Older than the watermark: its windows are closed. Counted, not applied.
    Late,
    /// Further ahead of the wall clock than `max_future_skew`: rejected.
    TooFarInFuture,
}

/// Counters that account for every event handed to [`Engine::ingest`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Events applied.
    pub applied: u64,
    /// Events refused as late.
    pub late: u64,
    /// Events refused as too far in the future.
    pub future: u64,
    /// Applied events that a signal could not track because a new group would
    /// exceed `max_groups`.
    pub refused_groups: u64,
    /// Idle groups released to make room under `max_groups` (see
    /// [`Engine::reclaim_idle_groups`]).
    #[serde(default)]
    pub reclaimed_groups: u64,
    /// Alert transitions emitted.
    pub transitions: u64,
}

/// Event-time progress of the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Clock {
    /// Newest event time applied.
    pub max_ts: Millis,
    /// Events older than this are late.
    pub watermark: Millis,
    /// Wall-clock time of the last applied event (for idle advancement).
    pub last_event_wall: Millis,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            max_ts: Millis::MIN,
            watermark: Millis::MIN,
            last_event_wall: Millis::MIN,
        }
    }
}

/// The signals that share a grouping and window geometry: stored together
/// (see [`FamilyStore`]) and evaluated together, one pass over the groups per slide.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct FamilyState {
    store: FamilyStore,
    /// Next window end to evaluate; MAX while nothing is scheduled.
    next_eval: Millis,
    /// Newest event time recorded by any member.
    newest: Millis,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
struct RuleState {
    /// Per (group, level): lifecycle memory.
    instances: Vec<Instance>,
    /// Instances not inactive; zero lets empty stretches be skipped.
    active: u32,
}

/// Serialisable engine state; restore it with [`Engine::restore`] under the same config.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Format version.
    pub version: u32,
    signal_names: Vec<String>,
    rule_names: Vec<String>,
    clock: Clock,
    stats: Stats,
    groupings: Vec<Vec<GroupKey>>,
    families: Vec<FamilyState>,
    rules: Vec<RuleState>,
    /// Pending reclaim pass and the watermark of the last one (absent in
    /// snapshots from before idle groups were reclaimed).
    #[serde(default)]
    reclaim_wanted: bool,
    #[serde(default = "min_millis")]
    last_reclaim: Millis,
}

fn min_millis() -> Millis {
    Millis::MIN
}

const SNAPSHOT_VERSION: u32 = 1;

/// Why a snapshot cannot be restored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RestoreError {
    /// Written by another format version.
    #[error("snapshot version {0} is not supported (expected {SNAPSHOT_VERSION})")]
    Version(u32),
    /// Taken under a config with other signals, rules or windows.
    #[error("snapshot does not match the config: {0}")]
    ConfigMismatch(String),
}

const UNRESOLVED: u32 = u32::MAX;
const REFUSED: u32 = u32::MAX - 1;

/// One engine shard.
#[derive(Debug)]
pub struct Engine {
    cfg: Config,
    groupings: Vec<Grouping>,
    /// Signal index → grouping index.
    signal_grouping: Vec<usize>,
    /// Signal index → (family, member).
    signal_family: Vec<(usize, usize)>,
    /// Family → the grouping of its signals.
    family_grouping: Vec<usize>,
    /// Family → a member signal (they share window, slide and pane).
    family_signal: Vec<usize>,
    /// Family → rules on its signals, in config order.
    family_rules: Vec<Vec<usize>>,
    /// Rules whose empty window breaches (e.g. count below N): never skipped.
    breaches_when_empty: Vec<bool>,
    /// Grouping → whether its idle groups may be released. Not when a rule on
    /// it pages on silence (absent, or breaching on an empty window).
    reclaimable: Vec<bool>,
    /// A new group was refused since the last reclaim pass.
    reclaim_wanted: bool,
    /// Watermark of the last reclaim pass (passes are at least a slide apart).
    last_reclaim: Millis,
    /// The shortest slide of any signal.
    min_slide: Millis,
    families: Vec<FamilyState>,
    rules: Vec<RuleState>,
    clock: Clock,
    stats: Stats,
    /// Per event: group id per grouping (reused buffer).
    resolved: Vec<u32>,
    /// When enabled, every window a threshold rule evaluated (tests, debugging).
    trace: Option<Vec<Evaluation>>,
    /// Per rule, per group: the latest evaluated value (NaN: none yet). For
    /// dashboards only, so not part of snapshots; f32 keeps it at 4 bytes.
    latest: Vec<Vec<f32>>,
}

/// The latest evaluation of one rule for one group, with its alert state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleReading {
    /// Rule index.
    pub rule: u32,
    /// Group id within the rule's grouping.
    pub group: u32,
    /// Latest value (NaN when undefined or not evaluated since start/restore).
    pub value: f64,
    /// The most severe state among the rule's levels for this group.
    pub state: State,
    /// 0–1 risk score ([`crate::risk::rule_risk`]).
    pub risk: f64,
}

/// One window value computed for a threshold rule, recorded when tracing is on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Rule index.
    pub rule: u32,
    /// Group id.
    pub group: u32,
    /// Window end.
    pub at: Millis,
    /// The value seen.
    pub value: crate::window::WindowValue,
}

impl Engine {
    /// A fresh engine for `cfg`.
    pub fn new(cfg: Config) -> Engine {
        let mut grouping_labels: Vec<Vec<String>> = Vec::new();
        let signal_grouping: Vec<usize> = cfg
            .signals
            .iter()
            .map(
                |s| match grouping_labels.iter().position(|g| *g == s.group_by) {
                    Some(i) => i,
                    None => {
                        grouping_labels.push(s.group_by.clone());
                        grouping_labels.len() - 1
                    }
                },
            )
            .collect();
        // Signals with the same grouping and geometry form a family.
        let mut family_key: Vec<(usize, Millis, Millis, Millis)> = Vec::new();
        let mut members: Vec<Vec<usize>> = Vec::new();
        let signal_family: Vec<(usize, usize)> = cfg
            .signals
            .iter()
            .enumerate()
            .map(|(si, s)| {
                let key = (signal_grouping[si], s.window, s.slide, s.pane);
                let f = family_key
                    .iter()
                    .position(|k| *k == key)
                    .unwrap_or_else(|| {
                        family_key.push(key);
                        members.push(Vec::new());
                        family_key.len() - 1
                    });
                members[f].push(si);
                (f, members[f].len() - 1)
            })
            .collect();
        let mut family_rules = vec![Vec::new(); members.len()];
        for (i, r) in cfg.rules.iter().enumerate() {
            family_rules[signal_family[r.signal].0].push(i);
        }
        let breaches_when_empty: Vec<bool> = cfg
            .rules
            .iter()
            .map(|r| match &r.spec {
                RuleSpec::Threshold(t) => {
                    let empty = empty_value(cfg.signals[r.signal].aggregate);
                    t.levels
                        .iter()
                        .any(|l| read(t, l, empty) == Reading::Breach)
                }
                RuleSpec::Absent { .. } => false,
            })
            .collect();
        let mut reclaimable = vec![true; grouping_labels.len()];
        for (ri, r) in cfg.rules.iter().enumerate() {
            if breaches_when_empty[ri] || matches!(r.spec, RuleSpec::Absent { .. }) {
                reclaimable[signal_grouping[r.signal]] = false;
            }
        }
        let min_slide = cfg.signals.iter().map(|s| s.slide).min().unwrap_or(1);
        let lateness = cfg.time.allowed_lateness;
        let families = members
            .iter()
            .map(|m| {
                let sigs: Vec<&SignalDef> = m.iter().map(|&si| &cfg.signals[si]).collect();
                FamilyState {
                    store: FamilyStore::new(&sigs, lateness),
                    next_eval: Millis::MAX,
                    newest: Millis::MIN,
                }
            })
            .collect();
        Engine {
            groupings: grouping_labels.into_iter().map(Grouping::new).collect(),
            resolved: vec![UNRESOLVED; cfg.signals.len()],
            rules: vec![RuleState::default(); cfg.rules.len()],
            latest: vec![Vec::new(); cfg.rules.len()],
            family_grouping: family_key.iter().map(|k| k.0).collect(),
            family_signal: members.iter().map(|m| m[0]).collect(),
            signal_grouping,
            signal_family,
            family_rules,
            breaches_when_empty,
            reclaimable,
            reclaim_wanted: false,
            last_reclaim: Millis::MIN,
            min_slide,
            families,
            clock: Clock::default(),
            stats: Stats::default(),
            trace: None,
            cfg,
        }
    }

    /// The config this engine runs.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counters so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Event-time progress.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Starts (or stops) recording every evaluated window; see [`Engine::take_trace`].
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on.then(Vec::new);
    }

    /// The evaluations recorded since the last call.
    pub fn take_trace(&mut self) -> Vec<Evaluation> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The key of group `group` in the grouping of `signal`.
    pub fn group_key(&self, signal: usize, group: u32) -> &GroupKey {
        self.groupings[self.signal_grouping[signal]].key(group)
    }

    /// Number of groups tracked by the grouping of `signal`.
    pub fn groups(&self, signal: usize) -> usize {
        self.groupings[self.signal_grouping[signal]].live()
    }

    /// Takes one event observed at wall-clock time `now`; appends transitions to `out`.
    pub fn ingest(&mut self, e: &Event, now: Millis, out: &mut Vec<Transition>) -> Outcome {
        if e.ts > now.saturating_add(self.cfg.time.max_future_skew) {
            self.stats.future += 1;
            return Outcome::TooFarInFuture;
        }
        if e.ts < self.clock.watermark {
            self.stats.late += 1;
            return Outcome::Late;
        }
        self.clock.last_event_wall = now;
        if e.ts > self.clock.max_ts {
            self.clock.max_ts = e.ts;
            // Close windows before writing: the event's ring slot may still hold a
            // pane that a window ending at or before the new watermark needs.
            self.advance_to(e.ts - self.cfg.time.allowed_lateness, out);
        }
        self.apply(e);
        self.stats.applied += 1;
        Outcome::Applied
    }

    /// Idle advancement: once no event has arrived for `idle_timeout` of wall-clock
    /// time, the watermark follows the wall clock so windows close and absent rules fire.
    pub fn tick(&mut self, now: Millis, out: &mut Vec<Transition>) {
        if self.clock.last_event_wall == Millis::MIN {
            return;
        }
        if now - self.clock.last_event_wall >= self.cfg.time.idle_timeout {
            self.advance_to(now - self.cfg.time.allowed_lateness, out);
        }
    }

    /// End of input: no later events will come, so close every pane up to the newest
    /// event time.
    pub fn finish(&mut self, out: &mut Vec<Transition>) {
        if self.clock.max_ts != Millis::MIN {
            self.advance_to(self.clock.max_ts, out);
        }
    }

    fn apply(&mut self, e: &Event) {
        let Engine {
            cfg,
            groupings,
            signal_grouping,
            signal_family,
            families,
            resolved,
            stats,
            reclaim_wanted,
            ..
        } = self;
        resolved.fill(UNRESOLVED);
        let mut refused = false;
        for (si, def) in cfg.signals.iter().enumerate() {
            let matched = def.filter.matches(e);
            let (num, den) = match def.aggregate {
                // The numerator is kept within the denominator so a rate stays in 0..=1.
                Aggregate::Rate => {
                    let den = def.of.as_ref().is_none_or(|f| f.matches(e));
                    (matched && den, den)
                }
                _ => (matched, false),
            };
            if !num && !den {
                continue;
            }
            let gi = signal_grouping[si];
            if resolved[gi] == UNRESOLVED {
                resolved[gi] = match groupings[gi].lookup(e, cfg.max_groups) {
                    Lookup::Group(id) => id,
                    Lookup::Refused => REFUSED,
                };
            }
            if resolved[gi] == REFUSED {
                refused = true;
                continue;
            }
            let g = resolved[gi] as usize;
            let (fi, m) = signal_family[si];
            let f = &mut families[fi];
            f.store.ensure(g);
            let value = def.field.and_then(|f| f.of(e));
            f.store.record(g, m, e.ts, def, num, den, matched, value);
            f.newest = f.newest.max(e.ts);
            // The first window holding this event must be evaluated, even if an
            // earlier skip-ahead or a newer first event scheduled a later one.
            f.next_eval = f
                .next_eval
                .min((e.ts.div_euclid(def.slide) + 1) * def.slide);
        }
        if refused {
            stats.refused_groups += 1;
            *reclaim_wanted = true;
        }
    }

    /// Moves the watermark to `w` (never backwards), evaluating every window that
    /// ends at or before it, oldest first.
    pub fn advance_to(&mut self, w: Millis, out: &mut Vec<Transition>) {
        if w <= self.clock.watermark {
            return;
        }
        self.clock.watermark = w;
        loop {
            let next = self
                .families
                .iter()
                .enumerate()
                .filter(|(_, f)| f.next_eval <= w)
                .min_by_key(|(i, f)| (f.next_eval, *i))
                .map(|(i, f)| (i, f.next_eval));
            let Some((fi, at)) = next else { break };
            let wake = self.evaluate(fi, at, out);
            let slide = self.cfg.signals[self.family_signal[fi]].slide;
            let mut next_eval = at + slide;
            if let Some(wake) = wake {
                // Nothing can change before `wake` (no data, nothing active): jump
                // over the empty stretch instead of evaluating every slide of it.
                // New data re-schedules its own first window (see `apply`).
                let wake_boundary = (wake - 1)
                    .div_euclid(slide)
                    .checked_add(1)
                    .and_then(|b| b.checked_mul(slide))
                    .unwrap_or(Millis::MAX);
                next_eval = next_eval.max(wake_boundary);
            }
            self.families[fi].next_eval = next_eval;
        }
        if self.reclaim_wanted && w >= self.last_reclaim.saturating_add(self.min_slide) {
            self.reclaim_idle_groups();
        }
    }

    /// Releases every group that can no longer influence an alert: no event in
    /// any window still to be evaluated, and no pending or firing instance. Its
    /// state is emptied and its id reused, so after a flood of distinct services
    /// (or churning label values) real newcomers are tracked again instead of
    /// being refused for ever. Runs when `max_groups` refused a group, at most
    /// once per slide of event time; O(groups × families).
    ///
    /// Groupings with a rule that pages on silence (absent, or breaching on an
    /// empty window) are never reclaimed: there, an idle group is the signal.
    pub fn reclaim_idle_groups(&mut self) {
        self.reclaim_wanted = false;
        self.last_reclaim = self.clock.watermark;
        for gi in 0..self.groupings.len() {
            if !self.reclaimable[gi] {
                continue;
            }
            let fams: Vec<usize> = (0..self.families.len())
                .filter(|&fi| self.family_grouping[fi] == gi)
                .collect();
            for g in 0..self.groupings[gi].len() {
                if self.groupings[gi].is_free(g as u32) || !self.is_idle(&fams, g) {
                    continue;
                }
                self.groupings[gi].release(g as u32);
                for &fi in &fams {
                    self.families[fi].store.reset_group(g);
                    for &ri in &self.family_rules[fi] {
                        let levels = self.cfg.rules[ri].spec.levels();
                        if let Some(insts) = self.rules[ri]
                            .instances
                            .get_mut(g * levels..(g + 1) * levels)
                        {
                            insts.fill(Instance::default());
                        }
                        if let Some(v) = self.latest[ri].get_mut(g) {
                            *v = f32::NAN;
                        }
                    }
                }
                self.stats.reclaimed_groups += 1;
            }
        }
    }

    /// Whether group `g` of the families `fams` holds no data a window still to
    /// be evaluated could see, and no active alert instance. Windows evaluated
    /// from now on end after the watermark, so they start after `watermark − window`.
    fn is_idle(&self, fams: &[usize], g: usize) -> bool {
        fams.iter().all(|&fi| {
            let window = self.cfg.signals[self.family_signal[fi]].window;
            let quiet =
                self.families[fi].store.newest(g) < self.clock.watermark.saturating_sub(window);
            quiet
                && self.family_rules[fi].iter().all(|&ri| {
                    let levels = self.cfg.rules[ri].spec.levels();
                    self.rules[ri]
                        .instances
                        .get(g * levels..(g + 1) * levels)
                        .is_none_or(|i| i.iter().all(|i| i.state == State::Inactive))
                })
        })
    }

    /// Evaluates every rule of family `fi` on the window ending at `at`, one pass
    /// over the groups (each group's state is contiguous). Transitions come out
    /// ordered by group, then rule, then severity. Returns, when nothing can change
    /// until then, the time of the next possible change.
    fn evaluate(&mut self, fi: usize, at: Millis, out: &mut Vec<Transition>) -> Option<Millis> {
        let Engine {
            cfg,
            groupings,
            signal_family,
            family_grouping,
            family_signal,
            family_rules,
            breaches_when_empty,
            families,
            rules,
            stats,
            trace,
            latest,
            ..
        } = self;
        let fam = &mut families[fi];
        let geometry = &cfg.signals[family_signal[fi]];
        let groups = groupings[family_grouping[fi]].len();
        let window_start = at - geometry.window;
        let family_rules = &family_rules[fi];
        let mut always = false;
        for &ri in family_rules {
            let levels = cfg.rules[ri].spec.levels();
            let rs = &mut rules[ri];
            if rs.instances.len() < groups * levels {
                grow(&mut rs.instances, groups * levels, Instance::default);
            }
            if latest[ri].len() < groups {
                grow(&mut latest[ri], groups, || f32::NAN);
            }
            always |= breaches_when_empty[ri];
        }
        // Earliest time at which an absent rule could fire for a group not yet firing.
        let mut absent_wake = Millis::MAX;
        // `g` indexes the store, the instances and the latest values alike.
        #[allow(clippy::needless_range_loop)]
        for g in 0..groups {
            for &ri in family_rules {
                let rule = &cfg.rules[ri];
                let def = &cfg.signals[rule.signal];
                let m = signal_family[rule.signal].1;
                let rs = &mut rules[ri];
                match &rule.spec {
                    RuleSpec::Threshold(spec) => {
                        let levels = spec.levels.len();
                        let has_data = fam
                            .store
                            .head(g, m)
                            .is_some_and(|h| h.last_touch >= window_start);
                        let insts = &mut rs.instances[g * levels..(g + 1) * levels];
                        if !has_data
                            && !breaches_when_empty[ri]
                            && insts.iter().all(|i| i.state == State::Inactive)
                        {
                            continue;
                        }
                        let value = if has_data {
                            fam.store.window(g, m, at, def)
                        } else {
                            empty_value(def.aggregate)
                        };
                        latest[ri][g] = value.value.map_or(f32::NAN, |v| v as f32);
                        if let Some(t) = trace.as_mut() {
                            t.push(Evaluation {
                                rule: ri as u32,
                                group: g as u32,
                                at,
                                value,
                            });
                        }
                        // With `confidence`, the breach is judged on the bound toward
                        // the level: the evidence, not the estimate.
                        let evidence = match (spec.confidence, def.aggregate, value.value) {
                            (Some(c), Aggregate::Rate, Some(p)) if has_data => {
                                let (lo, hi) = crate::confidence::wilson(p, value.events, c.z);
                                Some(if spec.op == Op::Above { lo } else { hi })
                            }
                            (Some(c), Aggregate::Quantile(q), Some(_)) if has_data => {
                                let (lo, hi) =
                                    crate::confidence::quantile_ranks(q, value.events, c.z);
                                let rank = if spec.op == Op::Above { lo } else { hi };
                                fam.store.window_quantile(g, m, rank)
                            }
                            _ => None,
                        };
                        for (level, inst) in spec.levels.iter().zip(insts.iter_mut()) {
                            let before = *inst;
                            let reading = read_judged(spec, level, value, evidence);
                            if let Some(kind) = step(inst, spec, def.slide, at, reading) {
                                track_active(&mut rs.active, before.state, inst.state);
                                stats.transitions += 1;
                                out.push(Transition {
                                    rule: ri as u32,
                                    group: g as u32,
                                    severity: level.severity,
                                    threshold: level.value,
                                    kind,
                                    at,
                                    active_since: if inst.state == State::Inactive {
                                        before.active_since
                                    } else {
                                        inst.active_since
                                    },
                                    value: value.value,
                                });
                            }
                        }
                    }
                    RuleSpec::Absent { for_, severity } => {
                        let seen = fam.store.head(g, m).map_or(Millis::MIN, |h| h.last_seen);
                        if seen == Millis::MIN {
                            continue;
                        }
                        let silent = at - seen >= *for_;
                        latest[ri][g] = ((at - seen) / 1000) as f32;
                        let inst = &mut rs.instances[g];
                        let before = *inst;
                        if let Some(kind) = step_absent(inst, at, silent) {
                            track_active(&mut rs.active, before.state, inst.state);
                            stats.transitions += 1;
                            out.push(Transition {
                                rule: ri as u32,
                                group: g as u32,
                                severity: *severity,
                                threshold: f64::NAN,
                                kind,
                                at,
                                active_since: if kind == TransitionKind::Resolved {
                                    before.active_since
                                } else {
                                    inst.active_since
                                },
                                value: Some(((at - seen) / 1000) as f64),
                            });
                        }
                        if inst.state == State::Inactive {
                            absent_wake = absent_wake.min(seen + for_);
                        }
                    }
                }
            }
        }
        let threshold_active = family_rules.iter().any(|&ri| {
            matches!(cfg.rules[ri].spec, RuleSpec::Threshold(_)) && rules[ri].active > 0
        });
        let next_window_start = at + geometry.slide - geometry.window;
        if always || threshold_active || fam.newest >= next_window_start {
            return None;
        }
        // Only an absent rule can change without new data.
        Some(absent_wake)
    }

    /// Renders a transition as an Alertmanager-shaped alert.
    pub fn render(&self, t: &Transition) -> Alert {
        let rule = &self.cfg.rules[t.rule as usize];
        let sig = &self.cfg.signals[rule.signal];
        let grouping = &self.groupings[self.signal_grouping[rule.signal]];
        let key = grouping.key(t.group);
        let mut labels: BTreeMap<String, String> = self.cfg.external_labels.clone();
        labels.extend(rule.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (name, value) in grouping.labels.iter().zip(&key.labels) {
            if !value.is_empty() {
                labels.insert(name.clone(), value.clone());
            }
        }
        labels.insert("alertname".into(), rule.name.clone());
        labels.insert("service".into(), key.service.clone());
        labels.insert("severity".into(), t.severity.as_str().into());
        if let Some(c) = rule.category {
            labels.insert("category".into(), c.as_str().into());
        }
        let value = t.value.map(alert::format_value).unwrap_or_default();
        let (threshold, window) = match &rule.spec {
            RuleSpec::Threshold(_) => (
                alert::format_value(t.threshold),
                format_duration(sig.window),
            ),
            RuleSpec::Absent { for_, .. } => (String::new(), format_duration(*for_)),
        };
        let vars = [
            ("service", key.service.as_str()),
            ("value", value.as_str()),
            ("threshold", threshold.as_str()),
            ("severity", t.severity.as_str()),
            ("rule", rule.name.as_str()),
            ("signal", sig.name.as_str()),
            ("window", window.as_str()),
            ("category", rule.category.map_or("", |c| c.as_str())),
        ];
        let mut annotations: BTreeMap<String, String> = rule
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), alert::render_template(v, &vars)))
            .collect();
        annotations.insert(
            "summary".into(),
            alert::render_template(&rule.summary, &vars),
        );
        if t.value.is_some() {
            annotations.insert("value".into(), value.clone());
        }
        if !threshold.is_empty() {
            annotations.insert("threshold".into(), threshold.clone());
        }
        annotations.insert("window".into(), window.clone());
        let fp = alert::fingerprint(&labels);
        Alert {
            status: t.kind.status(),
            transition: t.kind,
            labels,
            annotations,
            starts_at: format_rfc3339(t.active_since),
            ends_at: alert::ends_at(t.kind, t.at),
            generator_url: format!(
                "{}/rules/{}",
                self.cfg.generator_url.trim_end_matches('/'),
                rule.name
            ),
            fingerprint: format!("{fp:016x}"),
            episode: format!("{:016x}", alert::episode(fp, t.active_since)),
            evaluated_at: format_rfc3339(t.at),
        }
    }

    /// The latest value, state and risk of every (rule, group) evaluated so far.
    pub fn readings(&self) -> Vec<RuleReading> {
        let mut out = Vec::new();
        for (ri, (rule, rs)) in self.cfg.rules.iter().zip(&self.rules).enumerate() {
            let levels = rule.spec.levels();
            let grouping = &self.groupings[self.signal_grouping[rule.signal]];
            for (g, v) in self.latest[ri].iter().enumerate() {
                if grouping.is_free(g as u32) {
                    continue;
                }
                let Some(states) = rs.instances.get(g * levels..(g + 1) * levels) else {
                    continue;
                };
                let states: Vec<State> = states.iter().map(|i| i.state).collect();
                let value = f64::from(*v);
                out.push(RuleReading {
                    rule: ri as u32,
                    group: g as u32,
                    value,
                    state: states
                        .iter()
                        .copied()
                        .max_by_key(|s| *s as u8)
                        .unwrap_or_default(),
                    risk: crate::risk::rule_risk(&rule.spec, value, &states),
                });
            }
        }
        out
    }

    /// Label pairs identifying `group` of `rule`'s grouping (`service` first).
    pub fn rule_group_labels(&self, rule: u32, group: u32) -> Vec<(String, String)> {
        let r = &self.cfg.rules[rule as usize];
        let key = self.group_key(r.signal, group);
        let names = &self.cfg.signals[r.signal].group_by;
        let mut out = vec![("service".to_string(), key.service.clone())];
        out.extend(names.iter().cloned().zip(key.labels.iter().cloned()));
        out
    }

    /// Current pending and firing instances, as transitions describing their state.
    pub fn active(&self) -> Vec<Transition> {
        let mut out = Vec::new();
        for (ri, (rule, rs)) in self.cfg.rules.iter().zip(&self.rules).enumerate() {
            let levels: Vec<(crate::config::Severity, f64)> = match &rule.spec {
                RuleSpec::Threshold(t) => t.levels.iter().map(|l| (l.severity, l.value)).collect(),
                RuleSpec::Absent { severity, .. } => vec![(*severity, f64::NAN)],
            };
            for (i, inst) in rs.instances.iter().enumerate() {
                let kind = match inst.state {
                    State::Inactive => continue,
                    State::Pending => TransitionKind::Pending,
                    State::Firing => TransitionKind::Firing,
                };
                let (severity, threshold) = levels[i % levels.len()];
                out.push(Transition {
                    rule: ri as u32,
                    group: (i / levels.len()) as u32,
                    severity,
                    threshold,
                    kind,
                    at: inst.fired_at.max(inst.active_since),
                    active_since: inst.active_since,
                    value: None,
                });
            }
        }
        out
    }

    /// Captures the whole state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            signal_names: self.cfg.signals.iter().map(|s| s.name.clone()).collect(),
            rule_names: self.cfg.rules.iter().map(|r| r.name.clone()).collect(),
            clock: self.clock,
            stats: self.stats,
            groupings: self.groupings.iter().map(|g| g.keys().to_vec()).collect(),
            families: self.families.clone(),
            rules: self.rules.clone(),
            reclaim_wanted: self.reclaim_wanted,
            last_reclaim: self.last_reclaim,
        }
    }

    /// Rebuilds an engine from a snapshot taken under the same config.
    pub fn restore(cfg: Config, snap: Snapshot) -> Result<Engine, RestoreError> {
        if snap.version != SNAPSHOT_VERSION {
            return Err(RestoreError::Version(snap.version));
        }
        let mut e = Engine::new(cfg);
        let names: Vec<&str> = e.cfg.signals.iter().map(|s| s.name.as_str()).collect();
        let rules: Vec<&str> = e.cfg.rules.iter().map(|r| r.name.as_str()).collect();
        if names != snap.signal_names || rules != snap.rule_names {
            return Err(RestoreError::ConfigMismatch(
                "signals or rules differ".into(),
            ));
        }
        if snap.groupings.len() != e.groupings.len()
            || snap.families.len() != e.families.len()
            || snap.rules.len() != e.rules.len()
        {
            return Err(RestoreError::ConfigMismatch("groupings differ".into()));
        }
        for (fresh, saved) in e.families.iter().zip(&snap.families) {
            if fresh.store.ring() != saved.store.ring() {
                return Err(RestoreError::ConfigMismatch(
                    "a window, slide or allowed_lateness changed".into(),
                ));
            }
        }
        e.groupings = e
            .groupings
            .iter()
            .zip(snap.groupings)
            .map(|(g, keys)| Grouping::from_keys(g.labels.clone(), keys))
            .collect();
        e.families = snap.families;
        e.rules = snap.rules;
        e.clock = snap.clock;
        e.stats = snap.stats;
        e.reclaim_wanted = snap.reclaim_wanted;
        e.last_reclaim = snap.last_reclaim;
        Ok(e)
    }

    /// Bytes per part, for the benchmark report: (heads, panes, sketch headers,
    /// sketch buckets, alert instances, group keys).
    pub fn state_breakdown(&self) -> [usize; 6] {
        let mut parts = [0usize; 6];
        for f in &self.families {
            for (p, b) in parts.iter_mut().zip(f.store.breakdown()) {
                *p += b;
            }
        }
        parts[4] = self
            .rules
            .iter()
            .map(|r| r.instances.capacity() * std::mem::size_of::<Instance>())
            .sum();
        parts[5] = self.groupings.iter().map(Grouping::heap_bytes).sum();
        parts
    }

    /// Approximate bytes of state held (panes, sketches, group keys, alert instances).
    pub fn state_bytes(&self) -> usize {
        let signals: usize = self.families.iter().map(|f| f.store.heap_bytes()).sum();
        let rules: usize = self
            .rules
            .iter()
            .map(|r| r.instances.capacity() * std::mem::size_of::<Instance>())
            .sum();
        let groups: usize = self.groupings.iter().map(Grouping::heap_bytes).sum();
        signals + rules + groups
    }
}

fn track_active(active: &mut u32, before: State, after: State) {
    match (before == State::Inactive, after == State::Inactive) {
        (true, false) => *active += 1,
        (false, true) => *active -= 1,
        _ => {}
    }
}

#[cfg(test)]
mod tests;
