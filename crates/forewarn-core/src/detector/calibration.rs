//! Calibrates a raw surprise by how often the series itself has been that
//! surprising: the negative log of the empirical tail probability, from a
//! decaying histogram of past surprises, with a Laplace prior.
//!
//! A raw surprise assumes Laplace residuals. Series of mostly zeros with
//! bursts, or with heavy tails, are surprising under that assumption every
//! day; series lighter-tailed than that are almost never. Calibrating against
//! the series' own history makes one threshold mean the same rarity on every
//! series, which is what a default must do. The prior keeps a young series
//! near the raw value and lets a surprise beyond anything seen keep its
//! full weight.

use serde::{Deserialize, Serialize};

/// Bucket upper edges (nats): unit steps to 12, then growing by half; the
/// last bucket has no upper edge.
const EDGES: [f64; BUCKETS] = {
    let mut e = [0.0; BUCKETS];
    let mut i = 0;
    while i < BUCKETS {
        e[i] = if i < 12 {
            (i + 1) as f64
        } else {
            let mut v = 12.0;
            let mut j = 12;
            while j <= i {
                v *= 1.5;
                j += 1;
            }
            v
        };
        i += 1;
    }
    e
};
const BUCKETS: usize = 40;

/// Observations' worth of weight the Laplace prior carries.
const PRIOR: f64 = 200.0;
/// Observations between decays of the histogram.
const DECAY_EVERY: u32 = 64;

/// A decaying histogram of raw surprises.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tail {
    counts: Vec<f32>,
    total: f64,
    since_decay: u32,
}

impl Default for Tail {
    fn default() -> Self {
        Tail {
            counts: vec![0.0; BUCKETS],
            total: 0.0,
            since_decay: 0,
        }
    }
}

fn bucket(s: f64) -> usize {
    EDGES.partition_point(|&e| e <= s).min(BUCKETS - 1)
}

impl Tail {
    /// The calibrated surprise of `raw` (nats), before it is recorded.
    pub fn calibrate(&self, raw: f64) -> f64 {
        if raw <= 0.0 {
            return 0.0;
        }
        let k = bucket(raw);
        let lower = if k == 0 { 0.0 } else { EDGES[k - 1] };
        let upper = EDGES[k];
        // The last bucket is open-ended: all of it counts as at least `raw`.
        let inside = if k == BUCKETS - 1 {
            f64::from(self.counts[k])
        } else if raw >= upper {
            0.0
        } else {
            f64::from(self.counts[k]) * (upper - raw) / (upper - lower)
        };
        let above: f64 = self.counts[k + 1..].iter().map(|&c| f64::from(c)).sum();
        let tail = (above + inside + PRIOR * (-raw).exp()) / (self.total + PRIOR);
        -tail.max(f64::MIN_POSITIVE).ln()
    }

    /// Records `raw`; all weights fade by `1 - 1/memory` per observation.
    pub fn record(&mut self, raw: f64, memory: f64) {
        self.counts[bucket(raw.max(0.0))] += 1.0;
        self.total += 1.0;
        self.since_decay += 1;
        if self.since_decay == DECAY_EVERY {
            let keep = (1.0 - 1.0 / memory.max(2.0)).powi(DECAY_EVERY as i32);
            for c in &mut self.counts {
                *c = (f64::from(*c) * keep) as f32;
            }
            self.total *= keep;
            self.since_decay = 0;
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.counts.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_tail_keeps_the_raw_surprise() {
        let t = Tail::default();
        for raw in [0.5, 3.0, 9.0, 40.0] {
            assert!((t.calibrate(raw) - raw).abs() < 1e-9, "{raw}");
        }
    }

    #[test]
    fn common_surprises_are_discounted_and_monotone() {
        let mut t = Tail::default();
        for i in 0..2000 {
            t.record(if i % 10 == 0 { 50.0 } else { 0.5 }, 5000.0);
        }
        // One in ten reaches 50: about ln 10 nats, not 50.
        assert!(t.calibrate(49.0) < 3.5, "{}", t.calibrate(49.0));
        // Beyond anything seen, the full weight again.
        assert!(t.calibrate(400.0) > 100.0);
        let mut last = 0.0;
        for i in 1..2000 {
            let c = t.calibrate(f64::from(i) * 0.25);
            assert!(c >= last, "not monotone at {}", f64::from(i) * 0.25);
            last = c;
        }
    }
}
