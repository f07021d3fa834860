//! The data's sampling interval, estimated from the first gaps between
//! observations (the median, so a missing sample or a burst does not skew it).

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// Gaps the estimate is taken over; fixed after that.
const SAMPLES: usize = 15;

/// The median of the first [`SAMPLES`] positive gaps.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cadence {
    gaps: Vec<Millis>,
}

impl Cadence {
    /// Records the gap between two consecutive observations.
    pub fn record(&mut self, gap: Millis) {
        if gap > 0 && self.gaps.len() < SAMPLES {
            self.gaps.push(gap);
        }
    }

    /// Whether the estimate is final.
    pub fn settled(&self) -> bool {
        self.gaps.len() == SAMPLES
    }

    /// The median gap so far, if any.
    pub fn interval(&self) -> Option<Millis> {
        let mut g: smallvec::SmallVec<[Millis; SAMPLES]> = self.gaps.iter().copied().collect();
        g.sort_unstable();
        g.get(g.len() / 2).copied()
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.gaps.capacity() * 8
    }
}
