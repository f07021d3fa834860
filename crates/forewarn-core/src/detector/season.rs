//! A seasonal profile: one learned offset per slot of a period (the 5-minute
//! slots of a day, the hours of a week), learned robustly online.
//!
//! Stored as `f32` with a `u8` count per slot so a weekly profile stays a few
//! KiB per (group, rule): the offsets are differences from a level, and their
//! noise is far above `f32` rounding.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// Periods a slot's running mean covers before it becomes an exponential
/// average of about that many periods.
const SETTLE_PERIODS: u8 = 4;

/// Milliseconds from the epoch (a Thursday) to the first Monday, so weekly
/// slot 0 is Monday 00:00 UTC.
const MONDAY_SHIFT: Millis = 4 * 86_400_000;

/// One offset per slot of a repeating period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Length of the period (a day, a week).
    period: Millis,
    /// Length of one slot.
    slot_len: Millis,
    /// Learned offset per slot.
    offsets: Vec<f32>,
    /// Observations folded into each slot, saturating at the learning memory.
    counts: Vec<u8>,
    /// Slots that hold at least one observation.
    filled: u32,
}

impl Profile {
    /// A profile of `period` in slots of at least `min_slot` (and at most
    /// `max_slots` of them).
    pub fn new(period: Millis, min_slot: Millis, max_slots: usize) -> Profile {
        let by_slot = (period / min_slot.max(1)).max(1) as usize;
        let slots = by_slot.min(max_slots).max(1);
        Profile {
            period,
            slot_len: period / slots as Millis,
            offsets: vec![0.0; slots],
            counts: vec![0; slots],
            filled: 0,
        }
    }

    /// The period it repeats over.
    pub fn period(&self) -> Millis {
        self.period
    }

    /// Which slot `t` falls in.
    pub fn slot(&self, t: Millis) -> usize {
        let phase = (t + MONDAY_SHIFT).rem_euclid(self.period);
        ((phase / self.slot_len) as usize).min(self.offsets.len() - 1)
    }

    /// The learned offset at `slot`, if it has one.
    pub fn offset(&self, slot: usize) -> Option<f64> {
        (self.counts[slot] > 0).then(|| f64::from(self.offsets[slot]))
    }

    /// Share of slots that hold an observation.
    pub fn coverage(&self) -> f64 {
        f64::from(self.filled) / self.offsets.len() as f64
    }

    /// Folds `target` (the offset this observation shows) into `slot`: the
    /// first observation sets it, later ones a running mean until `memory`
    /// observations, then an exponential average over about that many (old
    /// days fade; a changed rhythm is learned within a few periods).
    pub fn learn(&mut self, slot: usize, target: f64, memory: u8) {
        let count = self.counts[slot];
        if count == 0 {
            self.offsets[slot] = target as f32;
            self.counts[slot] = 1;
            self.filled += 1;
            return;
        }
        let n = count.min(memory.max(1));
        let old = f64::from(self.offsets[slot]);
        self.offsets[slot] = (old + (target - old) / f64::from(n + 1)) as f32;
        self.counts[slot] = n.saturating_add(1).min(memory.max(1));
    }

    /// The `memory` for [`Profile::learn`] when observations arrive every
    /// `interval`: [`SETTLE_PERIODS`] periods' worth of this slot's visits.
    pub fn memory(&self, interval: Millis) -> u8 {
        let per_slot = (self.slot_len / interval.max(1)).max(1);
        (per_slot * Millis::from(SETTLE_PERIODS)).min(255) as u8
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.offsets.capacity() * 4 + self.counts.capacity()
    }
}
