//! Capturing the whole state of a shard, and restoring it under the same
//! config exactly, or under an edited one keeping what did not change
//! (see [`super::carry`]).

use serde::{Deserialize, Serialize};

use super::carry::{retire, Carry, Ending, Lineage, Reconfigured};
use super::{Clock, Engine, FamilyState, RuleState, Stats};
use crate::alert::Alert;
use crate::config::Config;
use crate::groups::{GroupKey, Grouping};
use crate::time::Millis;

/// Serialisable engine state; restore it with [`Engine::restore`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Snapshot {
    /// Format version.
    pub version: u32,
    lineage: Lineage,
    clock: Clock,
    stats: Stats,
    /// Per grouping: its labels and its groups' keys by id.
    groupings: Vec<(Vec<String>, Vec<GroupKey>)>,
    /// Per family: its member signals.
    family_members: Vec<Vec<usize>>,
    families: Vec<FamilyState>,
    rules: Vec<RuleState>,
    /// How each active alert would end, should its rule be gone at restore.
    endings: Vec<Ending>,
    /// Pending reclaim pass and the watermark of the last one.
    reclaim_wanted: bool,
    last_reclaim: Millis,
    /// Services on their own event time.
    leaders: super::lead::Leaders,
}

/// Version 5: services on their own event time (leaders, per-group marks);
/// 4: signals and rules carried by identity (3), active alerts' endings kept.
const SNAPSHOT_VERSION: u32 = 5;

/// A version 4 snapshot, as written before per-service event time; it
/// converts to the current one (no service leads). Binary formats such as
/// postcard are not self-describing, so a reader of older checkpoints decodes
/// this when [`Snapshot`] does not fit.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SnapshotV4 {
    version: u32,
    lineage: Lineage,
    clock: Clock,
    stats: Stats,
    groupings: Vec<(Vec<String>, Vec<GroupKey>)>,
    family_members: Vec<Vec<usize>>,
    families: Vec<FamilyStateV4>,
    rules: Vec<RuleState>,
    endings: Vec<Ending>,
    reclaim_wanted: bool,
    last_reclaim: Millis,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct FamilyStateV4 {
    store: crate::window::FamilyStore,
    entities: Option<Vec<crate::timers::Entities>>,
    next_eval: Millis,
    newest: Millis,
}

impl From<SnapshotV4> for Snapshot {
    fn from(v: SnapshotV4) -> Snapshot {
        let families = v
            .families
            .into_iter()
            .map(|f| FamilyState {
                store: f.store,
                entities: f.entities,
                next_eval: f.next_eval,
                newest: f.newest,
                marks: Vec::new(),
            })
            .collect();
        Snapshot {
            version: if v.version == 4 {
                SNAPSHOT_VERSION
            } else {
                v.version
            },
            lineage: v.lineage,
            clock: v.clock,
            stats: v.stats,
            groupings: v.groupings,
            family_members: v.family_members,
            families,
            rules: v.rules,
            endings: v.endings,
            reclaim_wanted: v.reclaim_wanted,
            last_reclaim: v.last_reclaim,
            leaders: Default::default(),
        }
    }
}

impl SnapshotV4 {
    /// `snap` as version 4 wrote it (what it knows of leaders is dropped):
    /// for tests of readers of older checkpoints.
    pub fn of(snap: Snapshot) -> SnapshotV4 {
        SnapshotV4 {
            version: 4,
            lineage: snap.lineage,
            clock: snap.clock,
            stats: snap.stats,
            groupings: snap.groupings,
            family_members: snap.family_members,
            families: snap
                .families
                .into_iter()
                .map(|f| FamilyStateV4 {
                    store: f.store,
                    entities: f.entities,
                    next_eval: f.next_eval,
                    newest: f.newest,
                })
                .collect(),
            rules: snap.rules,
            endings: snap.endings,
            reclaim_wanted: snap.reclaim_wanted,
            last_reclaim: snap.last_reclaim,
        }
    }
}

/// Why a snapshot cannot be restored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RestoreError {
    /// Written by another format version.
    #[error("snapshot version {0} is not supported (expected {SNAPSHOT_VERSION})")]
    Version(u32),
}

impl Engine {
    /// Captures the whole state.
    pub fn snapshot(&self) -> Snapshot {
        let endings = self.endings();
        self.snapshot_of(self.families.clone(), self.rules.clone(), endings)
    }

    /// Captures the whole state without copying it (a reconfiguration), and
    /// hands back the latest values (per rule, per group), which snapshots
    /// leave out.
    pub(super) fn into_snapshot(mut self) -> (Snapshot, Vec<Vec<f32>>) {
        let endings = self.endings();
        let (families, rules) = (
            std::mem::take(&mut self.families),
            std::mem::take(&mut self.rules),
        );
        let latest = std::mem::take(&mut self.latest);
        (self.snapshot_of(families, rules, endings), latest)
    }

    fn snapshot_of(
        &self,
        families: Vec<FamilyState>,
        rules: Vec<RuleState>,
        endings: Vec<Ending>,
    ) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            lineage: Lineage::of(&self.cfg),
            clock: self.clock,
            stats: self.stats,
            groupings: self
                .groupings
                .iter()
                .map(|g| (g.labels.clone(), g.keys().to_vec()))
                .collect(),
            family_members: self.wiring.family_members.clone(),
            families,
            rules,
            endings,
            reclaim_wanted: self.reclaim_wanted,
            last_reclaim: self.last_reclaim,
            leaders: self.leaders.clone(),
        }
    }

    /// Rebuilds an engine for `cfg` from a snapshot: exactly, when it was
    /// taken under the same config; otherwise the signals and rules whose
    /// definition is unchanged keep their state and the others start afresh
    /// (the returned [`Reconfigured`] names them, and ends the active alerts
    /// of the rules that changed or are gone). The event-time clock and the
    /// counters are always kept.
    pub fn restore(cfg: Config, snap: Snapshot) -> Result<(Engine, Reconfigured), RestoreError> {
        let (e, carry, retired) = Engine::restore_carrying(cfg, snap)?;
        let carried = carry.carried;
        Ok((e, Reconfigured { carried, retired }))
    }

    /// Restores, and returns the ends of alerts whose rules did not carry.
    pub(super) fn restore_carrying(
        cfg: Config,
        snap: Snapshot,
    ) -> Result<(Engine, Carry, Vec<Alert>), RestoreError> {
        if snap.version != SNAPSHOT_VERSION {
            return Err(RestoreError::Version(snap.version));
        }
        let mut e = Engine::new(cfg);
        let carry = snap.lineage.carry(&Lineage::of(&e.cfg));
        let mut groupings: Vec<_> = snap.groupings.into_iter().map(Some).collect();
        for g in &mut e.groupings {
            if let Some(old) = groupings
                .iter_mut()
                .find(|o| o.as_ref().is_some_and(|(labels, _)| *labels == g.labels))
            {
                let (labels, keys) = old.take().expect("found");
                *g = Grouping::from_keys(labels, keys);
            }
        }
        e.clock = snap.clock;
        e.stats = snap.stats;
        e.reclaim_wanted = snap.reclaim_wanted;
        e.last_reclaim = snap.last_reclaim;
        e.leaders = snap.leaders;
        e.carry_families(&carry, &snap.family_members, snap.families);
        let mut rules: Vec<Option<RuleState>> = snap.rules.into_iter().map(Some).collect();
        for (ri, from) in carry.rule_from.iter().enumerate() {
            let Some(old) = from.and_then(|f| rules.get_mut(f)?.take()) else {
                continue;
            };
            if old.states.is_for(&e.cfg.rules[ri].spec) {
                e.rules[ri] = old;
            }
        }
        let retired = retire(snap.endings, &carry.carried.rules.kept, e.clock.watermark);
        Ok((e, carry, retired))
    }

    /// Moves each old family's state to the new family holding its carried
    /// signals (signals of one geometry always share a family, so the kept
    /// members of a new family all come from one old family).
    fn carry_families(&mut self, carry: &Carry, old_members: &[Vec<usize>], old: Vec<FamilyState>) {
        let mut place = Vec::new();
        for (f, members) in old_members.iter().enumerate() {
            for (m, &si) in members.iter().enumerate() {
                if place.len() <= si {
                    place.resize(si + 1, (0, 0));
                }
                place[si] = (f, m);
            }
        }
        let mut old: Vec<Option<FamilyState>> = old.into_iter().map(Some).collect();
        for fi in 0..self.families.len() {
            let members = &self.wiring.family_members[fi];
            let from: Vec<Option<(usize, usize)>> = members
                .iter()
                .map(|&si| carry.signal_from[si].and_then(|o| place.get(o).copied()))
                .collect();
            let Some(source) = from.iter().flatten().map(|(f, _)| *f).next() else {
                continue;
            };
            let Some(state) = old.get_mut(source).and_then(Option::take) else {
                continue;
            };
            let member_from: Vec<Option<usize>> = from
                .iter()
                .map(|x| x.filter(|(f, _)| *f == source).map(|(_, m)| m))
                .collect();
            let sigs: Vec<_> = members.iter().map(|&si| &self.cfg.signals[si]).collect();
            let slide = sigs[0].slide;
            let mut next_eval = state.next_eval;
            let rules_restarted = self.wiring.family_rules[fi]
                .iter()
                .any(|&ri| carry.rule_from[ri].is_none());
            if rules_restarted && next_eval != Millis::MAX && self.clock.watermark != Millis::MIN {
                // Its new or restarted rules may need the slides its old rules
                // let it skip: evaluate from the next one on.
                let next_slide = (self.clock.watermark.div_euclid(slide) + 1).saturating_mul(slide);
                next_eval = next_eval.min(next_slide);
            }
            self.families[fi] = FamilyState {
                store: state.store.remap(&sigs, &member_from),
                entities: state.entities,
                next_eval,
                newest: state.newest,
                marks: state.marks,
            };
        }
    }
}
