//! Where a series has never been: a coarse map of the values it has visited.
//!
//! After a warm-up the range it covered is cut into [`BINS`] equal bins (the
//! grid extends beyond the range, clamped at [`LEVELS`] bins in all). Every
//! observation marks its bin visited; one in a bin never visited before is
//! *novel*. A residual test judges a value against a recent scale, which an
//! earlier incident of the same kind or a noisy week has widened, and its
//! calibration discounts surprises the series has had before. Novelty asks a
//! plainer question, with a memory as long as the series: has it ever been
//! here? A spike beyond every earlier one, a drop to a floor never reached, a
//! plateau in a gap between the usual levels are all novel.
//!
//! A value in an unvisited bin next to a visited one only stretches the
//! known range ([`Ground::Edge`]): on its own that is weak evidence (a daily
//! peak a little higher than yesterday's), so the detector takes it as new
//! ground only where the residual test finds it surprising too.
//!
//! After a novel value the next [`REST`] observations are not judged novel:
//! one excursion into new ground is one warning, not one per new bin.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// Bins the warm-up range is cut into.
const BINS: f64 = 8.0;
/// Observations the warm-up range is taken over, unless a week passes first
/// (an hourly series has seen its weekly rhythm by then).
pub const WARMUP: usize = 300;
/// Longest warm-up in time, when the series has [`WARMUP`] observations.
const WEEK: Millis = 7 * 86_400_000;
/// Bins the grid holds: the warm-up range's [`BINS`], and room around it.
const LEVELS: usize = 256;
/// Bins below the warm-up range's lowest value that the grid holds.
const BELOW: i64 = 96;
/// Observations after a novel value during which none is novel.
const REST: u32 = 100;

/// How new the ground under a value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ground {
    /// Visited before (or not judged: warming up or resting).
    Known,
    /// Not visited, but next to a visited bin: the known range, stretched.
    Edge,
    /// Not visited, and neither are the bins on either side.
    New,
}

/// The visited bins of one series.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Novelty {
    /// A sample of at most [`WARMUP`] warm-up values (a reservoir once more
    /// have come), until the grid is laid: then empty, no heap.
    warmup: Vec<f32>,
    /// Warm-up values seen.
    #[serde(default)]
    count: u32,
    /// The warm-up's highest value (its lowest is `lo`).
    #[serde(default)]
    hi: f64,
    /// Time of the first observation.
    since: Millis,
    /// Lower edge of bin 0 (the warm-up's lowest value, so far while warming
    /// up).
    lo: f64,
    /// Bin width; 0 while warming up.
    width: f64,
    /// One bit per bin: visited.
    visited: [u64; LEVELS / 64],
    /// Observations left in the rest after a novel value.
    rest: u32,
}

impl Novelty {
    /// How new the ground under `x` is now (learns nothing).
    pub fn ground(&self, x: f64) -> Ground {
        if self.width == 0.0 || self.rest > 0 {
            return Ground::Known;
        }
        let bin = self.bin(x);
        if self.has_visited(bin) {
            return Ground::Known;
        }
        let beside = |d: isize| {
            bin.checked_add_signed(d)
                .is_some_and(|n| n < LEVELS && self.has_visited(n))
        };
        if beside(-1) || beside(1) {
            Ground::Edge
        } else {
            Ground::New
        }
    }

    /// Learns `x` observed at `t`, which was counted as `novel` (see
    /// [`Novelty::ground`]). The grid is laid once [`WARMUP`] values or a
    /// week, and at least `span` of time, have been seen (a day for a series
    /// with a daily rhythm, so its peak is not new ground).
    pub fn learn(&mut self, t: Millis, x: f64, novel: bool, span: Millis) {
        if self.width == 0.0 {
            self.sample(t, x);
            let elapsed = t - self.since;
            if (self.count as usize >= WARMUP || elapsed >= WEEK) && elapsed >= span {
                self.lay_grid();
            }
            return;
        }
        self.rest = if novel {
            REST
        } else {
            self.rest.saturating_sub(1)
        };
        self.visit(self.bin(x));
    }

    /// Keeps `x` in the warm-up sample: the first [`WARMUP`] values, then a
    /// reservoir (each of the `count` values so far equally likely to be
    /// kept, by a fixed hash so a replay samples the same), so a warm-up of a
    /// day of minutes holds 300 values, allocated once.
    fn sample(&mut self, t: Millis, x: f64) {
        if self.count == 0 {
            self.since = t;
            self.lo = x;
            self.hi = x;
            self.warmup.reserve_exact(WARMUP);
        }
        self.lo = self.lo.min(x);
        self.hi = self.hi.max(x);
        self.count = self.count.saturating_add(1);
        if self.warmup.len() < WARMUP {
            self.warmup.push(x as f32);
            return;
        }
        let slot = (u64::from(self.count).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32)
            % u64::from(self.count);
        if let Some(v) = self.warmup.get_mut(slot as usize) {
            *v = x as f32;
        }
    }

    fn lay_grid(&mut self) {
        let (lo, hi) = (self.lo, self.hi);
        let range = hi - lo;
        // A flat warm-up: bins a fraction of its level (or of 1 at zero).
        let range = if range > 0.0 {
            range
        } else {
            lo.abs().max(1.0)
        };
        self.lo = lo;
        self.width = range / BINS;
        for v in std::mem::take(&mut self.warmup) {
            self.visit(self.bin(f64::from(v)));
        }
        // The extremes are visited, whether or not the sample kept them.
        self.visit(self.bin(lo));
        self.visit(self.bin(hi));
    }

    fn bin(&self, x: f64) -> usize {
        let level = ((x - self.lo) / self.width).floor();
        // Saturating float-to-int conversion, then clamped onto the grid.
        ((level as i64).saturating_add(BELOW)).clamp(0, LEVELS as i64 - 1) as usize
    }

    fn has_visited(&self, bin: usize) -> bool {
        self.visited[bin / 64] & (1 << (bin % 64)) != 0
    }

    fn visit(&mut self, bin: usize) {
        self.visited[bin / 64] |= 1 << (bin % 64);
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.warmup.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Novelty {
        fn is_novel(&self, x: f64) -> bool {
            self.ground(x) != Ground::Known
        }
    }

    fn warmed(values: impl Iterator<Item = f64>) -> Novelty {
        let mut n = Novelty::default();
        for (i, x) in values.enumerate() {
            n.learn(i as Millis, x, false, 0);
        }
        n
    }

    #[test]
    fn nothing_is_novel_during_the_warm_up() {
        let mut n = Novelty::default();
        for i in 0..WARMUP - 1 {
            assert!(!n.is_novel(1e9));
            n.learn(i as Millis, (i % 10) as f64, false, 0);
        }
        assert!(!n.is_novel(1e9));
        assert_eq!(n.heap_bytes(), n.warmup.capacity() * 4);
    }

    #[test]
    fn new_ground_is_novel_once_then_visited() {
        let mut n = warmed((0..WARMUP).map(|i| (i % 10) as f64));
        assert_eq!(n.heap_bytes(), 0, "the warm-up buffer is freed");
        assert!(!n.is_novel(4.5), "inside the warm-up's bins");
        assert_eq!(n.ground(30.0), Ground::New, "far above");
        assert_eq!(n.ground(10.5), Ground::Edge, "just above");
        assert!(n.is_novel(-30.0), "far below");
        n.learn(1_000, 30.0, true, 0);
        // Resting: nothing is novel for a while after a novel value.
        assert!(!n.is_novel(-30.0));
        for i in 0..REST {
            n.learn(2_000 + Millis::from(i), 5.0, false, 0);
        }
        assert!(n.is_novel(-30.0));
        assert!(!n.is_novel(30.0), "visited now");
    }

    #[test]
    fn a_gap_between_usual_levels_is_new_ground() {
        // Two levels, 0 and 8: the bins between them were never visited.
        let mut n = warmed((0..WARMUP).map(|i| if i % 2 == 0 { 0.0 } else { 8.0 }));
        assert!(n.is_novel(4.0));
        assert!(!n.is_novel(8.0));
        n.learn(10_000, 0.0, false, 0);
        assert!(n.is_novel(4.0));
    }

    #[test]
    fn a_long_warm_up_keeps_a_bounded_sample_and_its_extremes() {
        let mut n = Novelty::default();
        let minute = 60_000;
        // A day of minutes: 1,440 values, a single low of -5 early on.
        for i in 0..1_440 {
            let x = if i == 3 {
                -5.0
            } else {
                (i % 100) as f64 / 10.0
            };
            n.learn(i * minute, x, false, 1_439 * minute);
            if n.width == 0.0 {
                assert!(n.heap_bytes() <= WARMUP * 4, "{}", n.heap_bytes());
            }
        }
        assert!(n.width > 0.0, "laid after the day");
        assert_eq!(n.heap_bytes(), 0);
        assert!(!n.is_novel(-5.0), "the lowest value is visited");
        assert!(!n.is_novel(9.9), "the highest value is visited");
        assert!(n.is_novel(30.0));
    }

    #[test]
    fn the_grid_waits_for_the_span_and_handles_extremes() {
        let mut n = Novelty::default();
        for i in 0..WARMUP * 2 {
            n.learn(i as Millis, 5.0, false, 10_000);
        }
        assert!(!n.is_novel(100.0), "the span has not passed");
        n.learn(10_000, 5.0, false, 10_000);
        assert!(
            n.is_novel(100.0),
            "a flat series: bins an eighth of its level"
        );
        assert!(!n.is_novel(5.1));
        for x in [f64::MAX, f64::MIN, 1e300] {
            let _ = n.is_novel(x);
        }
    }
}
