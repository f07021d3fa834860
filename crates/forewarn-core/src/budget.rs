//! Bad/total event counts over windows from minutes to an SLO's whole budget
//! period (30 days), in a few kilobytes per group.
//!
//! Events first land in a small ring of *buckets* (one per evaluation interval)
//! that covers the stretch still open to late events. Once the watermark passes
//! a bucket it is final and is folded into one ring of *panes* per window length,
//! with a pane of about a thirtieth of the window: a 5-minute window keeps
//! 30-second panes, a 30-day window one-day panes. A window ending at an
//! evaluation time is the sum of its panes, the oldest one pro-rated by the share
//! of it the window covers, so the error is at most the events of one pane at the
//! window's far edge (none for traffic spread evenly within a pane) — and memory
//! is bounded by pane count, not by window length.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// Panes per window: the far-edge pane is at most 1/`PANES_PER_WINDOW` of it.
pub const PANES_PER_WINDOW: i64 = 30;

/// The shape of every group's counts for one rule: derived from the config.
#[derive(Debug, Clone, PartialEq)]
pub struct Geometry {
    /// Bucket size and evaluation step.
    pub interval: Millis,
    /// Buckets in the open ring (covers the allowed lateness).
    buckets: usize,
    /// Distinct pane sizes, each with its ring.
    tiers: Vec<Tier>,
    /// Window length → its tier.
    windows: Vec<(Millis, usize)>,
    /// Pane slots of all tiers together.
    slots: usize,
}

#[derive(Debug, Clone, PartialEq)]
struct Tier {
    pane: Millis,
    len: usize,
    offset: usize,
}

/// Bad and total events over one window (fractional where a pane is pro-rated).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Tally {
    /// Events that did not meet the objective.
    pub bad: f64,
    /// Every counted event.
    pub total: f64,
}

impl Geometry {
    /// The geometry for `windows` (each a multiple of `interval`) when events
    /// may arrive up to `lateness` behind the newest.
    pub fn new(interval: Millis, windows: &[Millis], lateness: Millis) -> Geometry {
        let mut tiers: Vec<Tier> = Vec::new();
        let mut map = Vec::new();
        for &w in windows {
            let pane = ((w / PANES_PER_WINDOW) / interval).max(1) * interval;
            let len = (w + pane - 1) / pane + 2;
            let t = match tiers.iter().position(|t| t.pane == pane) {
                Some(i) => {
                    tiers[i].len = tiers[i].len.max(len as usize);
                    i
                }
                None => {
                    tiers.push(Tier {
                        pane,
                        len: len as usize,
                        offset: 0,
                    });
                    tiers.len() - 1
                }
            };
            map.push((w, t));
        }
        let mut offset = 0;
        for t in &mut tiers {
            t.offset = offset;
            offset += t.len;
        }
        Geometry {
            interval,
            buckets: (lateness / interval + 3) as usize,
            tiers,
            windows: map,
            slots: offset,
        }
    }

    /// Bytes of heap one group's [`Counts`] holds.
    pub fn group_bytes(&self) -> usize {
        self.buckets * std::mem::size_of::<Bucket>() + self.slots * std::mem::size_of::<[u32; 2]>()
    }
}

/// Events of one interval not yet folded into panes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Bucket {
    /// `start / interval`; `i64::MIN` when the slot is free.
    idx: i64,
    bad: u32,
    total: u32,
}

const FREE: Bucket = Bucket {
    idx: i64::MIN,
    bad: 0,
    total: 0,
};

/// One group's counts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Counts {
    buckets: Vec<Bucket>,
    /// `[bad, total]` per pane, every tier's ring back to back.
    panes: Vec<[u32; 2]>,
    /// Every event before this time is in `panes`, none after; 0 before the
    /// first event (see `born`).
    folded_to: Millis,
    /// Start of the first bucket ever recorded: nothing before it.
    born: Millis,
    /// Newest event time recorded.
    newest: Millis,
}

impl Counts {
    /// Whether no event was ever recorded.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    /// Newest event time recorded (MIN: none).
    pub fn newest(&self) -> Millis {
        if self.is_empty() {
            Millis::MIN
        } else {
            self.newest
        }
    }

    /// Every event before this time has been folded into the panes (the last
    /// evaluation time).
    pub fn folded_to(&self) -> Millis {
        self.folded_to
    }

    /// How much history the counts hold at `at`: since the first bucket.
    pub fn history(&self, at: Millis) -> Millis {
        if self.is_empty() {
            0
        } else {
            (at - self.born).max(0)
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
            + self.panes.capacity() * std::mem::size_of::<[u32; 2]>()
    }

    /// Records one event at `ts` (never older than a time already folded: the
    /// engine refuses events behind the watermark, and folding stops there).
    pub fn record(&mut self, geo: &Geometry, ts: Millis, bad: bool) {
        let idx = ts.div_euclid(geo.interval);
        if self.is_empty() {
            self.buckets = vec![FREE; geo.buckets];
            self.panes = vec![[0, 0]; geo.slots];
            self.born = idx * geo.interval;
            self.folded_to = self.born;
            self.newest = ts;
        }
        if ts < self.folded_to {
            if self.folded_to != self.born {
                // Behind what is folded: the engine refuses such (late) events.
                return;
            }
            // Nothing folded yet: an out-of-order event moves the start back.
            self.born = idx * geo.interval;
            self.folded_to = self.born;
        }
        self.newest = self.newest.max(ts);
        let slot = idx.rem_euclid(self.buckets.len() as i64) as usize;
        if self.buckets[slot].idx != idx {
            if self.buckets[slot].idx != i64::MIN {
                // The ring spans more than the allowed lateness, so a bucket
                // this far behind is final: fold everything up to it.
                let end = (self.buckets[slot].idx + 1) * geo.interval;
                self.advance(geo, end);
            }
            self.buckets[slot] = Bucket {
                idx,
                bad: 0,
                total: 0,
            };
        }
        let b = &mut self.buckets[slot];
        b.total = b.total.saturating_add(1);
        b.bad = b.bad.saturating_add(u32::from(bad));
    }

    /// Folds every bucket that ends at or before `at` (a multiple of the
    /// interval, at or behind the watermark) into the panes.
    pub fn advance(&mut self, geo: &Geometry, at: Millis) {
        if self.is_empty() || at <= self.folded_to {
            return;
        }
        loop {
            // Oldest final bucket still in the ring (the ring is a handful of slots).
            let next = self
                .buckets
                .iter()
                .enumerate()
                .filter(|(_, b)| b.idx != i64::MIN && (b.idx + 1) * geo.interval <= at)
                .min_by_key(|(_, b)| b.idx)
                .map(|(i, b)| (i, *b));
            let Some((slot, b)) = next else { break };
            let start = b.idx * geo.interval;
            self.enter(geo, start + geo.interval);
            for t in &geo.tiers {
                let pane = &mut self.panes[t.offset + ring_slot(start, t)];
                pane[0] = pane[0].saturating_add(b.bad);
                pane[1] = pane[1].saturating_add(b.total);
            }
            self.buckets[slot] = FREE;
        }
        self.enter(geo, at);
    }

    /// Moves `folded_to` forward to `to`, clearing the pane slots that start
    /// holding new panes.
    fn enter(&mut self, geo: &Geometry, to: Millis) {
        if to <= self.folded_to {
            return;
        }
        for t in &geo.tiers {
            let newest = (self.folded_to - 1).div_euclid(t.pane);
            let last = (to - 1).div_euclid(t.pane);
            let first = (newest + 1).max(last - t.len as i64 + 1);
            for j in first..=last {
                self.panes[t.offset + ring_slot(j * t.pane, t)] = [0, 0];
            }
        }
        self.folded_to = to;
    }

    /// The counts over `[at − window, at)`; [`Counts::advance`] to `at` first.
    pub fn window(&self, geo: &Geometry, window: Millis, at: Millis) -> Tally {
        let Some(&(_, ti)) = geo.windows.iter().find(|(w, _)| *w == window) else {
            return Tally::default();
        };
        if self.is_empty() {
            return Tally::default();
        }
        let t = &geo.tiers[ti];
        let edge = at - window;
        // Before `born` there is nothing: a younger group's panes count whole.
        let from = edge.max(self.born);
        let end = at.min(self.folded_to);
        if from >= end {
            return Tally::default();
        }
        let (first, last) = (from.div_euclid(t.pane), (end - 1).div_euclid(t.pane));
        let mut tally = Tally::default();
        for j in first..=last {
            let p = self.panes[t.offset + ring_slot(j * t.pane, t)];
            // The far-edge pane counts for the share of it inside the window
            // (of the part of it after `born`: nothing was recorded before).
            let share = if j == first && edge > self.born {
                let end = (j + 1) * t.pane;
                (end - edge) as f64 / (end - (j * t.pane).max(self.born)) as f64
            } else {
                1.0
            };
            tally.bad += f64::from(p[0]) * share;
            tally.total += f64::from(p[1]) * share;
        }
        tally
    }
}

fn ring_slot(start: Millis, t: &Tier) -> usize {
    start.div_euclid(t.pane).rem_euclid(t.len as i64) as usize
}

#[cfg(test)]
mod tests;
