//! Evaluation: one pass over the groups at a window end. Each rule kind reads
//! the evaluation into one [`Reading`](crate::lifecycle::Reading) per level; the
//! shared lifecycle ([`step`]) turns readings into transitions, here, for every
//! kind alike.

use super::{
    track_active, Engine, Evaluation, FeatureLog, PredictionOutcome, RuleState, Stats, MAX_OUTCOMES,
};
use crate::alert::Transition;
use crate::config::RuleDef;
use crate::lifecycle::{step, Instance, State};
use crate::rules::EvalCx;
use crate::time::Millis;
use crate::window::grow;

/// Where one rule's evaluation writes its results.
struct Sink<'a> {
    rule: usize,
    latest: &'a mut Vec<f32>,
    trace: &'a mut Option<Vec<Evaluation>>,
    stats: &'a mut Stats,
    out: &'a mut Vec<Transition>,
    outcomes: &'a mut Vec<PredictionOutcome>,
    features: &'a mut Option<FeatureLog>,
}

impl Engine {
    /// Evaluates every rule driven by family `fi` on the window ending at `at`,
    /// one pass over the groups (each group's state is contiguous). Transitions
    /// come out ordered by group, then rule, then severity. Returns, when nothing
    /// can change until then, the time of the next possible change.
    pub(super) fn evaluate_family(
        &mut self,
        fi: usize,
        at: Millis,
        out: &mut Vec<Transition>,
    ) -> Option<Millis> {
        let groups = self.prepare_family(fi);
        let mut wake = Millis::MAX;
        if let Some(tables) = self.families[fi].entities.as_mut() {
            // The watermark has passed `at`: fire every entity timer up to it.
            for t in tables.iter_mut() {
                t.advance(at, &mut self.stats.entities);
                wake = wake.min(t.next_timer());
            }
        }
        let marks = std::mem::take(&mut self.families[fi].marks);
        for g in 0..groups {
            if marks.get(g).is_some_and(|&m| m >= at) {
                // Evaluated already, on its service's own time (see `lead.rs`).
                continue;
            }
            wake = wake.min(self.judge_group(fi, g, at, out));
        }
        self.families[fi].marks = marks;
        let geometry = &self.cfg.signals[self.wiring.family_signal[fi]];
        let next_window_start = at + geometry.slide - geometry.window;
        if wake <= at || self.families[fi].newest >= next_window_start {
            return None;
        }
        Some(wake)
    }

    /// Evaluates every rule driven by family `fi` for group `g` alone on the
    /// window ending at `at` (a service on its own time, see `lead.rs`).
    pub(super) fn evaluate_group(
        &mut self,
        fi: usize,
        g: usize,
        at: Millis,
        out: &mut Vec<Transition>,
    ) {
        self.prepare_family(fi);
        if let Some(t) = self.families[fi]
            .entities
            .as_mut()
            .and_then(|t| t.get_mut(g))
        {
            t.advance(at, &mut self.stats.entities);
        }
        self.judge_group(fi, g, at, out);
    }

    /// Sizes the per-group vectors of family `fi`'s rules for all its
    /// grouping's groups; returns how many there are.
    fn prepare_family(&mut self, fi: usize) -> usize {
        let groups = self.groupings[self.wiring.family_grouping[fi]].len();
        for &ri in &self.wiring.family_rules[fi] {
            let rule = &self.cfg.rules[ri];
            prepare(rule, &mut self.rules[ri], &mut self.latest[ri], groups);
        }
        groups
    }

    /// Runs every rule driven by family `fi` for group `g` at `at` (their
    /// vectors sized by [`prepare`]). Returns the earliest time a change could
    /// happen without new data.
    #[inline]
    fn judge_group(
        &mut self,
        fi: usize,
        g: usize,
        at: Millis,
        out: &mut Vec<Transition>,
    ) -> Millis {
        let mut wake = Millis::MAX;
        for k in 0..self.wiring.family_rules[fi].len() {
            let ri = self.wiring.family_rules[fi][k];
            wake = wake.min(self.judge_rule(ri, g, at, fi, out));
        }
        wake
    }

    /// Runs rule `ri` for group `g` at `at`, reading from family `driver`
    /// (`usize::MAX`: a rule with its own input). Returns the earliest time a
    /// change could happen without new data.
    #[inline]
    fn judge_rule(
        &mut self,
        ri: usize,
        g: usize,
        at: Millis,
        driver: usize,
        out: &mut Vec<Transition>,
    ) -> Millis {
        let Engine {
            cfg,
            wiring,
            families,
            rules,
            stats,
            trace,
            latest,
            outcomes,
            features,
            ..
        } = self;
        let mut cx = EvalCx {
            at,
            group: g,
            signals: &cfg.signals,
            families: &mut families[..],
            signal_family: &wiring.signal_family,
            driver,
        };
        let sink = Sink {
            rule: ri,
            latest: &mut latest[ri],
            trace,
            stats,
            out,
            outcomes,
            features,
        };
        judge(&cfg.rules[ri], &mut rules[ri], &mut cx, sink)
    }

    /// Evaluates rule `ri` (which records events itself) for every live group at `at`.
    pub(super) fn evaluate_own(&mut self, ri: usize, at: Millis, out: &mut Vec<Transition>) {
        let gi = self.wiring.rule_grouping[ri];
        let groups = self.groupings[gi].len();
        let rule = &self.cfg.rules[ri];
        prepare(rule, &mut self.rules[ri], &mut self.latest[ri], groups);
        for g in 0..groups {
            if !self.groupings[gi].is_free(g as u32) {
                self.judge_rule(ri, g, at, usize::MAX, out);
            }
        }
    }
}
/// Sizes a rule's per-group vectors for `groups` groups.
fn prepare(rule: &RuleDef, rs: &mut RuleState, latest: &mut Vec<f32>, groups: usize) {
    let levels = rule.spec.levels();
    if rs.instances.len() < groups * levels {
        grow(&mut rs.instances, groups * levels, Instance::default);
    }
    rs.states.ensure(groups);
    if latest.len() < groups {
        grow(latest, groups, || f32::NAN);
    }
}

/// Evaluates one rule for one group and runs each level's lifecycle on the
/// verdict. Returns the earliest time a change could happen without new data.
#[inline]
fn judge(rule: &RuleDef, rs: &mut RuleState, cx: &mut EvalCx<'_>, sink: Sink<'_>) -> Millis {
    let (g, at) = (cx.group, cx.at);
    let levels = rule.spec.levels();
    let RuleState {
        instances,
        active,
        states,
        ..
    } = rs;
    let insts = &mut instances[g * levels..(g + 1) * levels];
    let Some(v) = states.evaluate(&rule.spec, cx, insts) else {
        return Millis::MAX;
    };
    sink.latest[g] = v.value.map_or(f32::NAN, |x| x as f32);
    if let (Some(log), Some(f)) = (sink.features.as_mut(), states.features(&rule.spec, g)) {
        log.rows.push((sink.rule as u32, g as u32, at));
        log.values.extend_from_slice(f);
    }
    if let Some(prediction) = v.settled {
        if sink.outcomes.len() < MAX_OUTCOMES {
            sink.outcomes.push(PredictionOutcome {
                rule: sink.rule as u32,
                group: g as u32,
                at,
                prediction,
            });
        } else {
            sink.stats.outcomes_dropped += 1;
        }
    }
    if let (Some(t), Some(value)) = (sink.trace.as_mut(), v.window) {
        t.push(Evaluation {
            rule: sink.rule as u32,
            group: g as u32,
            at,
            value,
        });
    }
    let mut any_active = false;
    for (i, inst) in insts.iter_mut().enumerate() {
        let before = *inst;
        if let Some(kind) = step(inst, &rule.lifecycle, rule.period, at, v.readings[i]) {
            track_active(active, before.state, inst.state);
            sink.stats.transitions += 1;
            let level = rule.spec.level(i);
            sink.out.push(Transition {
                rule: sink.rule as u32,
                group: g as u32,
                severity: level.severity,
                threshold: level.threshold,
                kind,
                at,
                active_since: if inst.state == State::Inactive {
                    before.active_since
                } else {
                    inst.active_since
                },
                value: v.value,
            });
        }
        any_active |= inst.state != State::Inactive;
    }
    if any_active {
        v.wake_active
    } else {
        v.wake_inactive
    }
}
