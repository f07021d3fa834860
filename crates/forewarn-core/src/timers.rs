//! Per-entity SLA timers (Flink's keyed event-time timers, for orders and
//! tickets): an `open` event starts an entity's clock with a deadline, a `close`
//! event stops it. As the watermark passes an entity's at-risk point (a share of
//! its allowance) and then its deadline, it becomes *at risk*, then *overdue*.
//! A timer signal reads, per group, how many entities are open, at risk or
//! overdue at each evaluation.
//!
//! Out-of-order and odd streams have defined outcomes, each counted in
//! [`EntityStats`]: a second `open` of an open entity is a duplicate (the first
//! stands); a `close` before its `open` (within the lateness) is held and
//! completes the entity when the `open` arrives; a `close` nobody opens before
//! the watermark passes it is an unknown close; an `open` beyond the group's cap
//! is refused; an entity still open a day after its deadline is forgotten.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// An overdue entity is forgotten (counted as expired) this long after its
/// deadline, so entities whose `close` never comes cannot fill the cap for good.
pub const FORGET_AFTER: Millis = 86_400_000;

/// What a timer signal reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Measure {
    /// Entities open.
    Open,
    /// Open entities past their deadline.
    Overdue,
    /// Open entities past their at-risk point, not yet overdue.
    AtRisk,
    /// Overdue over open entities.
    OverdueRate,
    /// At risk or overdue over open entities: the leading share.
    AtRiskRate,
}

/// Counters of every entity event's outcome.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntityStats {
    /// Entities opened and tracked.
    pub opened: u64,
    /// Entities closed (incl. the late ones).
    pub closed: u64,
    /// Entities closed after their deadline.
    pub closed_late: u64,
    /// `open` events for an entity already open (ignored).
    pub duplicate_opens: u64,
    /// `close` events that arrived before their `open` and were matched.
    pub early_closes: u64,
    /// `close` events for no open entity (never opened, already closed, forgotten).
    pub unknown_closes: u64,
    /// `open` events refused: the group holds `max_entities` open entities.
    pub refused: u64,
    /// `open` events without a deadline (no `deadline`, `sla_ms` or `allowance`).
    pub without_deadline: u64,
    /// Overdue entities forgotten [`FORGET_AFTER`] past their deadline.
    pub expired: u64,
}

impl EntityStats {
    /// Adds `other`'s counters to these.
    pub fn absorb(&mut self, other: &EntityStats) {
        self.opened += other.opened;
        self.closed += other.closed;
        self.closed_late += other.closed_late;
        self.duplicate_opens += other.duplicate_opens;
        self.early_closes += other.early_closes;
        self.unknown_closes += other.unknown_closes;
        self.refused += other.refused;
        self.without_deadline += other.without_deadline;
        self.expired += other.expired;
    }

    /// Every counter with a metric label value.
    pub fn by_result(&self) -> [(&'static str, u64); 9] {
        [
            ("opened", self.opened),
            ("closed", self.closed),
            ("closed_late", self.closed_late),
            ("duplicate_open", self.duplicate_opens),
            ("close_before_open", self.early_closes),
            ("unknown_close", self.unknown_closes),
            ("refused", self.refused),
            ("without_deadline", self.without_deadline),
            ("expired", self.expired),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Stage {
    Open,
    AtRisk,
    Overdue,
    /// Timer only: the entity's `close` time is reached.
    Closed,
    /// Timer only: an overdue entity is forgotten.
    Forget,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    opened: Millis,
    deadline: Millis,
    risk_at: Millis,
    stage: Stage,
    /// When its `close` says it ended (applied once the watermark passes it).
    closing: Option<Millis>,
}

/// A timer: (when, entity, what happens).
type Timer = (Millis, u64, Stage);

/// One group's open entities.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entities {
    open: HashMap<u64, Entry>,
    timers: BTreeSet<Timer>,
    /// Closes that arrived before their open: entity → close time.
    early: HashMap<u64, Millis>,
    at_risk: u32,
    overdue: u32,
    newest: Millis,
}

/// The parameters of a timer family.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimerDef {
    /// Share of the allowance after which an entity is at risk (0..=1).
    pub at_risk: f64,
    /// Most open entities per group.
    pub max_entities: usize,
    /// Deadline after `open` when the event gives none (and no `sla_ms`).
    pub allowance: Option<Millis>,
}

impl Entities {
    /// Whether nothing is open or held.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.early.is_empty()
    }

    /// Newest event time recorded (MIN: none).
    pub fn newest(&self) -> Millis {
        if self.open.is_empty() && self.early.is_empty() && self.timers.is_empty() {
            Millis::MIN
        } else {
            self.newest
        }
    }

    /// When the next timer fires (MAX: none).
    pub fn next_timer(&self) -> Millis {
        self.timers.first().map_or(Millis::MAX, |t| t.0)
    }

    /// The measure now.
    pub fn read(&self, m: Measure) -> (Option<f64>, u64) {
        let open = self.open.len() as u64;
        let v = match m {
            Measure::Open => Some(open as f64),
            Measure::Overdue => Some(f64::from(self.overdue)),
            Measure::AtRisk => Some(f64::from(self.at_risk)),
            Measure::OverdueRate => (open > 0).then(|| f64::from(self.overdue) / open as f64),
            Measure::AtRiskRate => {
                (open > 0).then(|| f64::from(self.at_risk + self.overdue) / open as f64)
            }
        };
        (v, open)
    }

    /// Starts entity `id`'s clock at `ts`.
    pub fn open(
        &mut self,
        def: &TimerDef,
        id: u64,
        ts: Millis,
        deadline: Option<Millis>,
        stats: &mut EntityStats,
    ) {
        self.newest = self.newest.max(ts);
        let Some(deadline) = deadline.or(def.allowance.map(|a| ts + a)) else {
            stats.without_deadline += 1;
            return;
        };
        if self.open.contains_key(&id) {
            stats.duplicate_opens += 1;
            return;
        }
        match self.early.remove(&id) {
            Some(closed) if closed >= ts => {
                stats.early_closes += 1;
                stats.opened += 1;
                stats.closed += 1;
                stats.closed_late += u64::from(closed > deadline);
                return;
            }
            // Closed before this open in event time: an earlier life's close.
            Some(_) => stats.unknown_closes += 1,
            None => {}
        }
        if self.open.len() >= def.max_entities {
            stats.refused += 1;
            return;
        }
        let allowance = (deadline - ts).max(0) as f64;
        let risk_at = ts + (allowance * def.at_risk) as Millis;
        self.open.insert(
            id,
            Entry {
                opened: ts,
                deadline,
                risk_at,
                stage: Stage::Open,
                closing: None,
            },
        );
        if risk_at < deadline {
            self.timers.insert((risk_at, id, Stage::AtRisk));
        }
        self.timers.insert((deadline, id, Stage::Overdue));
        stats.opened += 1;
    }

    /// Stops entity `id`'s clock at `ts`: it stays counted until the watermark
    /// passes `ts`, so every evaluation before then sees it as it was.
    pub fn close(&mut self, id: u64, ts: Millis, stats: &mut EntityStats) {
        self.newest = self.newest.max(ts);
        match self.open.get_mut(&id) {
            Some(e) if e.closing.is_none() => {
                e.closing = Some(ts);
                self.timers.insert((ts, id, Stage::Closed));
            }
            // A second close of an entity already closing.
            Some(_) => stats.unknown_closes += 1,
            None => {
                if self.early.insert(id, ts).is_some() {
                    // Two closes waiting for one open: the older never matched.
                    stats.unknown_closes += 1;
                }
            }
        }
    }

    /// Fires every timer at or before `at` (the watermark has passed it, so no
    /// event can still change those clocks), and drops held closes older than `at`.
    pub fn advance(&mut self, at: Millis, stats: &mut EntityStats) {
        while let Some(&(when, id, what)) = self.timers.first() {
            if when > at {
                break;
            }
            self.timers.pop_first();
            if let Some(e) = self.open.get(&id).copied() {
                self.fire(id, e, what, stats);
            }
        }
        if !self.early.is_empty() {
            // An open for these would be older than the watermark: late.
            let before = self.early.len();
            self.early.retain(|_, closed| *closed >= at);
            stats.unknown_closes += (before - self.early.len()) as u64;
        }
    }

    fn fire(&mut self, id: u64, e: Entry, what: Stage, stats: &mut EntityStats) {
        match (e.stage, what) {
            (Stage::Open, Stage::AtRisk) => {
                self.set_stage(id, Stage::AtRisk);
            }
            (Stage::Open | Stage::AtRisk, Stage::Overdue) => {
                self.set_stage(id, Stage::Overdue);
                self.timers
                    .insert((e.deadline + FORGET_AFTER, id, Stage::Forget));
            }
            (_, Stage::Closed) => {
                self.remove(id, e);
                stats.closed += 1;
                stats.closed_late += u64::from(e.closing.is_some_and(|c| c > e.deadline));
            }
            (Stage::Overdue, Stage::Forget) => {
                self.remove(id, e);
                stats.expired += 1;
            }
            _ => {}
        }
    }

    fn set_stage(&mut self, id: u64, to: Stage) {
        if let Some(e) = self.open.get_mut(&id) {
            match e.stage {
                Stage::AtRisk => self.at_risk -= 1,
                Stage::Overdue => self.overdue -= 1,
                _ => {}
            }
            match to {
                Stage::AtRisk => self.at_risk += 1,
                Stage::Overdue => self.overdue += 1,
                _ => {}
            }
            e.stage = to;
        }
    }

    fn remove(&mut self, id: u64, e: Entry) {
        self.set_stage(id, Stage::Open);
        self.open.remove(&id);
        self.timers.remove(&(e.risk_at, id, Stage::AtRisk));
        self.timers.remove(&(e.deadline, id, Stage::Overdue));
        self.timers
            .remove(&(e.deadline + FORGET_AFTER, id, Stage::Forget));
        if let Some(c) = e.closing {
            self.timers.remove(&(c, id, Stage::Closed));
        }
    }

    /// Heap bytes held (approximate: entries and tree nodes).
    pub fn heap_bytes(&self) -> usize {
        self.open.capacity() * (std::mem::size_of::<(u64, Entry)>() + 1)
            + self.timers.len() * std::mem::size_of::<Timer>() * 2
            + self.early.capacity() * (std::mem::size_of::<(u64, Millis)>() + 1)
    }
}

/// FNV-1a 64 of an entity id: stable across processes, so snapshots restore.
pub fn entity_id(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests;
