//! Releasing idle groups so that `max_groups` refuses a flood, not the real
//! newcomers after it.

use super::Engine;
use crate::lifecycle::{Instance, State};

impl Engine {
    /// Releases every group that can no longer influence an alert: no event in
    /// any window still to be evaluated, and no pending or firing instance. Its
    /// state is emptied and its id reused, so after a flood of distinct services
    /// (or churning label values) real newcomers are tracked again instead of
    /// being refused for ever. Runs when `max_groups` refused a group, at most
    /// once per slide of event time; O(groups × families).
    ///
    /// A group an absent rule watches (established: it has been sending for
    /// the rule's `established_after`) is kept, since there an idle group is the
    /// signal; groupings with a rule that breaches on an empty window are never
    /// reclaimed.
    pub fn reclaim_idle_groups(&mut self) {
        self.reclaim_wanted = false;
        self.last_reclaim = self.clock.watermark;
        for gi in 0..self.groupings.len() {
            if !self.wiring.reclaimable[gi] {
                continue;
            }
            let fams: Vec<usize> = (0..self.families.len())
                .filter(|&fi| self.wiring.family_grouping[fi] == gi)
                .collect();
            let rules: Vec<usize> = (0..self.cfg.rules.len())
                .filter(|&ri| self.wiring.rule_grouping[ri] == gi)
                .collect();
            for g in 0..self.groupings[gi].len() {
                if self.groupings[gi].is_free(g as u32)
                    || self.watched_for_silence(gi, g)
                    || !self.is_idle(&fams, &rules, g)
                {
                    continue;
                }
                self.groupings[gi].release(g as u32);
                for &fi in &fams {
                    self.families[fi].reset_group(g);
                }
                for &ri in &rules {
                    self.reset_rule_group(ri, g);
                }
                self.stats.reclaimed_groups += 1;
            }
        }
    }

    fn watched_for_silence(&self, gi: usize, g: usize) -> bool {
        self.wiring.silence_watches[gi]
            .iter()
            .any(|(absent, f, m)| {
                self.families[*f]
                    .store
                    .head(g, *m)
                    .is_some_and(|h| absent.watches(h))
            })
    }

    fn reset_rule_group(&mut self, ri: usize, g: usize) {
        let levels = self.cfg.rules[ri].spec.levels();
        let rs = &mut self.rules[ri];
        if let Some(insts) = rs.instances.get_mut(g * levels..(g + 1) * levels) {
            insts.fill(Instance::default());
        }
        rs.states.reset(g);
        if let Some(v) = self.latest[ri].get_mut(g) {
            *v = f32::NAN;
        }
    }

    /// Whether group `g` holds no data a window still to be evaluated could see
    /// (in the families `fams` and the own state of `rules`), and no active alert
    /// instance of `rules`. Windows evaluated from now on end after the
    /// watermark, so they start after `watermark − window`.
    fn is_idle(&self, fams: &[usize], rules: &[usize], g: usize) -> bool {
        let w = self.clock.watermark;
        let quiet_families = fams.iter().all(|&fi| {
            let window = self.cfg.signals[self.wiring.family_signal[fi]].window;
            self.families[fi].newest_of(g) < w.saturating_sub(window)
        });
        quiet_families
            && rules.iter().all(|&ri| {
                let spec = &self.cfg.rules[ri].spec;
                let levels = spec.levels();
                let rs = &self.rules[ri];
                rs.states.newest(spec, g) < w.saturating_sub(spec.memory())
                    && rs
                        .instances
                        .get(g * levels..(g + 1) * levels)
                        .is_none_or(|i| i.iter().all(|i| i.state == State::Inactive))
            })
    }
}
