//! One engine shard: the state for one input partition.
//!
//! [`Engine::ingest`] takes a decoded event and the wall-clock time (injected, never
//! read here) and appends any alert transitions to a caller-owned buffer. The
//! watermark is the newest event time minus the allowed lateness; every time it
//! passes a window end, the rules driven by that window are evaluated at once, so
//! detection waits for nothing but the watermark.
//!
//! - `wiring.rs`: which signals share storage (families) and groupings, and
//!   which rules each family or rule drives;
//! - `evaluate.rs`: one pass over the groups at a window end, and the shared
//!   lifecycle every rule kind's readings go through;
//! - `reclaim.rs`: releasing idle groups under `max_groups`;
//! - `render.rs`: alerts, readings and active instances for the outside;
//! - `snapshot.rs`: capture and restore;
//! - `carry.rs`: what state a changed config keeps (reloads, restores).

mod carry;
mod evaluate;
mod lead;
mod reclaim;
mod render;
mod snapshot;
mod wiring;

use serde::{Deserialize, Serialize};

pub use carry::{changes, Carried, Changes, Reconfigured};
pub use lead::{Judged, Leaders};
pub use snapshot::{RestoreError, Snapshot, SnapshotV4};

use crate::alert::Transition;
use crate::config::{Aggregate, Config};
use crate::event::Event;
use crate::groups::{GroupKey, Grouping, Lookup};
use crate::lifecycle::{Instance, State};
use crate::rules::KindStates;
use crate::time::Millis;
use crate::timers::Entities;
use crate::window::FamilyStore;
use wiring::Wiring;

/// What happened to an ingested event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Counted in the panes it belongs to.
    Applied,
    /// Older than the watermark: its windows are closed. Counted, not applied.
    Late,
    /// Further ahead of the wall clock than `max_future_skew`: rejected.
    TooFarInFuture,
    /// Counted nowhere: every grouping that would have tracked it was at its
    /// group cap (`max_groups`, or what `max_memory` admits). Not applied.
    Refused,
}

/// Counters that account for every event handed to [`Engine::ingest`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Events applied (to at least one group).
    pub applied: u64,
    /// Events counted nowhere because every grouping that would have tracked
    /// them was at its group cap.
    #[serde(default)]
    pub refused: u64,
    /// Events refused as late.
    pub late: u64,
    /// Events refused as too far in the future.
    pub future: u64,
    /// Events that some signal or rule could not track because a new group
    /// would exceed the group cap (those counted nowhere are also `refused`).
    pub refused_groups: u64,
    /// Idle groups released to make room under `max_groups` (see
    /// [`Engine::reclaim_idle_groups`]).
    #[serde(default)]
    pub reclaimed_groups: u64,
    /// Alert transitions emitted.
    pub transitions: u64,
    /// Outcomes of entity (`open`/`close`) events in timer signals.
    #[serde(default)]
    pub entities: crate::timers::EntityStats,
    /// Prediction outcomes not kept because nobody took them (see
    /// [`Engine::take_outcomes`]).
    #[serde(default)]
    pub outcomes_dropped: u64,
}

impl Stats {
    /// Adds `other`'s counters to these (engines of one run added up).
    pub fn absorb(&mut self, other: &Stats) {
        self.applied += other.applied;
        self.refused += other.refused;
        self.late += other.late;
        self.future += other.future;
        self.refused_groups += other.refused_groups;
        self.reclaimed_groups += other.reclaimed_groups;
        self.transitions += other.transitions;
        self.entities.absorb(&other.entities);
        self.outcomes_dropped += other.outcomes_dropped;
    }
}

/// Most prediction outcomes kept until [`Engine::take_outcomes`]: a pipeline
/// takes them every tick; a caller that never does must not grow memory.
pub const MAX_OUTCOMES: usize = 4096;

/// A prediction of one (rule, group) that an evaluation settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PredictionOutcome {
    /// Rule index.
    pub rule: u32,
    /// Group id within the rule's grouping.
    pub group: u32,
    /// When it settled (event time).
    pub at: Millis,
    /// How it turned out.
    pub prediction: crate::rules::Prediction,
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
pub(crate) struct FamilyState {
    pub(crate) store: FamilyStore,
    /// Timer families: per group, the open entities (panes stay empty).
    pub(crate) entities: Option<Vec<Entities>>,
    /// Next window end to evaluate; MAX while nothing is scheduled.
    next_eval: Millis,
    /// Newest event time recorded by any member.
    newest: Millis,
    /// Per group: the window end through which the group was evaluated on its
    /// service's own time (see `lead.rs`); the partition's passes skip those
    /// windows. Empty while no service ever ran ahead.
    pub(crate) marks: Vec<Millis>,
}

impl FamilyState {
    /// Newest event time group `g` holds (MIN: none).
    fn newest_of(&self, g: usize) -> Millis {
        match &self.entities {
            Some(t) => t.get(g).map_or(Millis::MIN, Entities::newest),
            None => self.store.newest(g),
        }
    }

    /// Empties group `g`.
    fn reset_group(&mut self, g: usize) {
        if let Some(m) = self.marks.get_mut(g) {
            *m = Millis::MIN;
        }
        match &mut self.entities {
            Some(t) => {
                if let Some(e) = t.get_mut(g) {
                    *e = Entities::default();
                }
            }
            None => self.store.reset_group(g),
        }
    }
}

/// One rule's state for every group.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct RuleState {
    /// Per (group, level): lifecycle memory.
    instances: Vec<Instance>,
    /// Instances not inactive; zero lets empty stretches be skipped.
    active: u32,
    /// Per group: the kind's own state.
    states: KindStates,
    /// For rules with their own input: the next evaluation; MAX before any event.
    next_eval: Millis,
}

const UNRESOLVED: u32 = u32::MAX;
const REFUSED: u32 = u32::MAX - 1;

/// One engine shard.
#[derive(Debug)]
pub struct Engine {
    cfg: Config,
    wiring: Wiring,
    groupings: Vec<Grouping>,
    /// A new group was refused since the last reclaim pass.
    reclaim_wanted: bool,
    /// Watermark of the last reclaim pass (passes are at least a slide apart).
    last_reclaim: Millis,
    families: Vec<FamilyState>,
    rules: Vec<RuleState>,
    clock: Clock,
    stats: Stats,
    /// Per event: group id per grouping (reused buffer).
    resolved: Vec<u32>,
    /// When enabled, every window a rule evaluated (tests, debugging).
    trace: Option<Vec<Evaluation>>,
    /// Per rule, per group: the latest evaluated value (NaN: none yet). For
    /// dashboards only, so not part of snapshots; f32 keeps it at 4 bytes.
    latest: Vec<Vec<f32>>,
    /// Prediction outcomes not yet taken (at most [`MAX_OUTCOMES`]).
    outcomes: Vec<PredictionOutcome>,
    /// When enabled, every feature vector a model rule computed (training).
    features: Option<FeatureLog>,
    /// Services whose clock runs ahead of the partition's, on their own time.
    leaders: lead::Leaders,
}

/// Feature vectors computed by model rules, in evaluation order
/// ([`Engine::set_feature_log`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FeatureLog {
    /// Per vector: (rule, group, evaluation time).
    pub rows: Vec<(u32, u32, Millis)>,
    /// The vectors, concatenated (each of its rule's feature count).
    pub values: Vec<f32>,
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
    /// 0–1 risk score ([`crate::rules::RuleKind::risk`]).
    pub risk: f64,
}

/// One window value computed for a rule, recorded when tracing is on.
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
        let wiring = Wiring::new(&cfg);
        let lateness = cfg.time.allowed_lateness;
        let families = wiring
            .family_members
            .iter()
            .map(|m| FamilyState {
                store: FamilyStore::new(
                    &m.iter().map(|&si| &cfg.signals[si]).collect::<Vec<_>>(),
                    lateness,
                ),
                entities: cfg.signals[m[0]].timer.map(|_| Vec::new()),
                next_eval: Millis::MAX,
                newest: Millis::MIN,
                marks: Vec::new(),
            })
            .collect();
        let rules = cfg
            .rules
            .iter()
            .map(|r| RuleState {
                instances: Vec::new(),
                active: 0,
                states: r.spec.new_states(),
                next_eval: Millis::MAX,
            })
            .collect();
        Engine {
            groupings: wiring
                .grouping_labels
                .iter()
                .cloned()
                .map(Grouping::new)
                .collect(),
            resolved: vec![UNRESOLVED; wiring.grouping_labels.len()],
            latest: vec![Vec::new(); cfg.rules.len()],
            rules,
            families,
            wiring,
            reclaim_wanted: false,
            last_reclaim: Millis::MIN,
            clock: Clock::default(),
            stats: Stats::default(),
            trace: None,
            outcomes: Vec::new(),
            features: None,
            leaders: lead::Leaders::default(),
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

    /// Moves the prediction outcomes settled since the last call into `out`
    /// (e.g. for the realised-lead-time histogram).
    pub fn take_outcomes(&mut self, out: &mut Vec<PredictionOutcome>) {
        out.append(&mut self.outcomes);
    }

    /// Starts (or stops) recording every evaluated window; see [`Engine::take_trace`].
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on.then(Vec::new);
    }

    /// The evaluations recorded since the last call.
    pub fn take_trace(&mut self) -> Vec<Evaluation> {
        self.trace.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Starts (or stops) recording the feature vectors model rules compute.
    pub fn set_feature_log(&mut self, on: bool) {
        self.features = on.then(FeatureLog::default);
    }

    /// Moves the feature vectors recorded since the last call into `out`.
    pub fn take_features(&mut self, out: &mut FeatureLog) {
        if let Some(log) = &mut self.features {
            out.rows.append(&mut log.rows);
            out.values.append(&mut log.values);
        }
    }

    /// The key of group `group` in the grouping of `signal`.
    pub fn group_key(&self, signal: usize, group: u32) -> &GroupKey {
        self.groupings[self.wiring.signal_grouping[signal]].key(group)
    }

    /// The key of group `group` in the grouping of rule `rule`.
    pub fn rule_group_key(&self, rule: usize, group: u32) -> &GroupKey {
        self.groupings[self.wiring.rule_grouping[rule]].key(group)
    }

    /// Number of groups tracked by the grouping of `signal`.
    pub fn groups(&self, signal: usize) -> usize {
        self.groupings[self.wiring.signal_grouping[signal]].live()
    }

    /// Takes one event observed at wall-clock time `now`; appends transitions to `out`.
    pub fn ingest(&mut self, e: &Event, now: Millis, out: &mut Vec<Transition>) -> Outcome {
        if e.ts > now.saturating_add(self.cfg.time.max_future_skew) {
            self.stats.future += 1;
            return Outcome::TooFarInFuture;
        }
        if let Some(outcome) = self.ingest_leading(e, out) {
            return outcome;
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
        if self.apply(e) {
            self.stats.applied += 1;
            Outcome::Applied
        } else {
            self.stats.refused += 1;
            Outcome::Refused
        }
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
        let newest = self.newest_event();
        if newest != Millis::MIN {
            self.advance_to(newest, out);
        }
    }

    /// The group of `e` in grouping `gi`, resolved once per event.
    #[inline(always)]
    fn resolve(&mut self, gi: usize, e: &Event) -> Option<usize> {
        resolve(
            &mut self.groupings,
            &mut self.resolved,
            gi,
            e,
            self.cfg.group_cap,
        )
    }

    /// Records `e` everywhere it belongs; false when it was counted nowhere
    /// because every grouping it needed refused a new group.
    fn apply(&mut self, e: &Event) -> bool {
        self.resolved.fill(UNRESOLVED);
        let mut refused = self.apply_windowed(e);
        if e.entity.is_some() {
            for i in 0..self.wiring.timer_signals.len() {
                refused |= self.apply_entity(self.wiring.timer_signals[i], e);
            }
        }
        for i in 0..self.wiring.own_rules.len() {
            let ri = self.wiring.own_rules[i];
            if !self.cfg.rules[ri].spec.matches(e) {
                continue;
            }
            let Some(g) = self.resolve(self.wiring.rule_grouping[ri], e) else {
                refused = true;
                continue;
            };
            let rule = &self.cfg.rules[ri];
            let rs = &mut self.rules[ri];
            rs.states.ensure(g + 1);
            rs.states.observe(&rule.spec, g, e);
            let period = rule.period;
            rs.next_eval = rs.next_eval.min((e.ts.div_euclid(period) + 1) * period);
        }
        if !refused {
            return true;
        }
        self.stats.refused_groups += 1;
        self.reclaim_wanted = true;
        // Some grouping took it (or an entity table was what refused).
        self.resolved.iter().any(|&g| g < REFUSED)
    }

    /// Records `e` in the panes of every windowed signal it matches (the hot
    /// path: one pass over the signals, fields borrowed apart). Returns whether
    /// a new group was refused.
    #[inline]
    fn apply_windowed(&mut self, e: &Event) -> bool {
        let Engine {
            cfg,
            wiring,
            groupings,
            families,
            resolved,
            ..
        } = self;
        let mut refused = false;
        for (si, def) in cfg.signals.iter().enumerate() {
            if def.timer.is_some() {
                continue;
            }
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
            let gi = wiring.signal_grouping[si];
            let Some(g) = resolve(groupings, resolved, gi, e, cfg.group_cap) else {
                refused = true;
                continue;
            };
            let (fi, m) = wiring.signal_family[si];
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
        refused
    }

    /// Opens or closes an entity of timer signal `si` (once per family: its
    /// members share the entity table). Returns whether the group was refused.
    fn apply_entity(&mut self, si: usize, e: &Event) -> bool {
        let (fi, m) = self.wiring.signal_family[si];
        let def = &self.cfg.signals[si];
        let (Some(entity), Some(phase), Some(timer)) = (&e.entity, e.phase, def.timer) else {
            return false;
        };
        if m != 0 || !def.filter.matches(e) {
            return false;
        }
        let slide = def.slide;
        let Some(g) = self.resolve(self.wiring.signal_grouping[si], e) else {
            return true;
        };
        let f = &mut self.families[fi];
        let Some(tables) = f.entities.as_mut() else {
            return false;
        };
        if tables.len() <= g {
            tables.resize_with(g + 1, Entities::default);
        }
        let id = crate::timers::entity_id(entity);
        let stats = &mut self.stats.entities;
        match phase {
            crate::event::Phase::Open => {
                let deadline = e
                    .deadline
                    .or_else(|| e.sla_ms.map(|s| e.ts.saturating_add(s as Millis)));
                tables[g].open(&timer, id, e.ts, deadline, stats);
            }
            crate::event::Phase::Close => tables[g].close(id, e.ts, stats),
        }
        f.newest = f.newest.max(e.ts);
        f.next_eval = f.next_eval.min((e.ts.div_euclid(slide) + 1) * slide);
        false
    }

    /// Moves the watermark to `w` (never backwards), evaluating every window that
    /// ends at or before it, oldest first.
    pub fn advance_to(&mut self, w: Millis, out: &mut Vec<Transition>) {
        if w <= self.clock.watermark {
            return;
        }
        self.clock.watermark = w;
        self.leaders.rejoin(w, self.cfg.time.allowed_lateness);
        while let Some(due) = self.next_due(w) {
            match due {
                Due::Family(fi, at) => {
                    let wake = self.evaluate_family(fi, at, out);
                    let slide = self.cfg.signals[self.wiring.family_signal[fi]].slide;
                    self.families[fi].next_eval = next_after(at, slide, wake);
                }
                Due::Rule(ri, at) => {
                    self.evaluate_own(ri, at, out);
                    self.rules[ri].next_eval = at + self.cfg.rules[ri].period;
                }
            }
        }
        if self.reclaim_wanted && w >= self.last_reclaim.saturating_add(self.wiring.min_period) {
            self.reclaim_idle_groups();
        }
    }

    /// The oldest evaluation due at or before `w`: families first, then rules
    /// with their own input, each in config order.
    fn next_due(&self, w: Millis) -> Option<Due> {
        let family = self
            .families
            .iter()
            .enumerate()
            .filter(|(_, f)| f.next_eval <= w)
            .min_by_key(|(i, f)| (f.next_eval, *i))
            .map(|(i, f)| Due::Family(i, f.next_eval));
        let own = self
            .wiring
            .own_rules
            .iter()
            .map(|&ri| (ri, self.rules[ri].next_eval))
            .filter(|(_, at)| *at <= w)
            .min_by_key(|(ri, at)| (*at, *ri))
            .map(|(ri, at)| Due::Rule(ri, at));
        match (family, own) {
            (Some(Due::Family(fi, fa)), Some(Due::Rule(ri, ra))) => Some(if ra < fa {
                Due::Rule(ri, ra)
            } else {
                Due::Family(fi, fa)
            }),
            (f, o) => f.or(o),
        }
    }

    /// Approximate bytes of state held (panes, sketches, group keys, alert
    /// instances, rule kinds' own state).
    pub fn state_bytes(&self) -> usize {
        self.state_breakdown().iter().sum()
    }

    /// Bytes per part, for the benchmark report: (heads, panes, sketch headers,
    /// sketch buckets, alert instances and rule states, group keys).
    pub fn state_breakdown(&self) -> [usize; 6] {
        let mut parts = [0usize; 6];
        for f in &self.families {
            for (p, b) in parts.iter_mut().zip(f.store.breakdown()) {
                *p += b;
            }
            if let Some(t) = &f.entities {
                parts[1] += t.iter().map(Entities::heap_bytes).sum::<usize>();
            }
        }
        parts[4] = self
            .rules
            .iter()
            .map(|r| {
                r.instances.capacity() * std::mem::size_of::<Instance>() + r.states.heap_bytes()
            })
            .sum();
        parts[5] = self.groupings.iter().map(Grouping::heap_bytes).sum();
        parts
    }
}

/// The group of `e` in grouping `gi`, looked up once per event (`resolved`
/// caches it per grouping).
#[inline(always)]
fn resolve(
    groupings: &mut [Grouping],
    resolved: &mut [u32],
    gi: usize,
    e: &Event,
    cap: usize,
) -> Option<usize> {
    if resolved[gi] == UNRESOLVED {
        resolved[gi] = match groupings[gi].lookup(e, cap) {
            Lookup::Group(id) => id,
            Lookup::Refused => REFUSED,
        };
    }
    (resolved[gi] != REFUSED).then_some(resolved[gi] as usize)
}

/// An evaluation that is due.
enum Due {
    /// Family `.0`'s window ending at `.1`.
    Family(usize, Millis),
    /// Rule `.0` (own input) at `.1`.
    Rule(usize, Millis),
}

/// The next window end after evaluating at `at`: the next slide, or, when
/// nothing can change before `wake`, the first slide boundary at or after it
/// (new data re-schedules its own first window, see `Engine::apply`).
fn next_after(at: Millis, slide: Millis, wake: Option<Millis>) -> Millis {
    let next = at + slide;
    let Some(wake) = wake else {
        return next;
    };
    let wake_boundary = (wake - 1)
        .div_euclid(slide)
        .checked_add(1)
        .and_then(|b| b.checked_mul(slide))
        .unwrap_or(Millis::MAX);
    next.max(wake_boundary)
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
