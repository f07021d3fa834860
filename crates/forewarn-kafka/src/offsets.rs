//! Which offset of a partition may be committed.
//!
//! Events of a partition are consumed in offset order, but their effects complete
//! out of order (an alert delivery may take longer than a later event that produced
//! nothing). The committable position is the lowest offset whose effects are not
//! done yet — or one past the last offset seen when all are done — so a restart
//! never skips an event whose effects might have been lost.

use std::collections::{BTreeMap, VecDeque};

/// Offsets of one partition between consumption and durable effects.
///
/// Only events with outputs in flight take an entry, so the common event (applied,
/// nothing to send) costs two comparisons and no memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Consumed offsets with outputs in flight, ascending, with how many remain.
    pending: VecDeque<(i64, u32)>,
    /// One past the highest offset seen.
    next: Option<i64>,
    /// The position last returned by [`PartitionOffsets::advance`].
    committed: Option<i64>,
}

impl PartitionOffsets {
    /// Records that `offset` was consumed and that `outputs` deliveries (alerts,
    /// dead letters) must be acknowledged before its effects are durable. Offsets
    /// must increase (gaps are fine: compaction, transaction markers); a repeat or
    /// an older offset is refused with `false`.
    pub fn consume(&mut self, offset: i64, outputs: u32) -> bool {
        if self.next.is_some_and(|n| offset < n) {
            return false;
        }
        if outputs > 0 {
            self.pending.push_back((offset, outputs));
        }
        self.next = Some(offset + 1);
        true
    }

    /// Records that one output of `offset` was acknowledged (or given up on).
    /// `false` when `offset` has no output in flight.
    pub fn finish(&mut self, offset: i64) -> bool {
        match self.pending.binary_search_by_key(&offset, |p| p.0) {
            Ok(i) if self.pending[i].1 > 0 => {
                self.pending[i].1 -= 1;
                true
            }
            _ => false,
        }
    }

    /// The position that may be committed now: the lowest offset with outputs in
    /// flight, or one past the last offset seen.
    pub fn position(&self) -> Option<i64> {
        match self.pending.iter().find(|p| p.1 > 0) {
            Some(&(offset, _)) => Some(offset),
            None => self.next,
        }
    }

    /// Drops the finished prefix and returns the position when it moved since the
    /// last call (what to commit).
    pub fn advance(&mut self) -> Option<i64> {
        while self.pending.front().is_some_and(|p| p.1 == 0) {
            self.pending.pop_front();
        }
        let pos = self.position();
        if pos.is_some() && pos != self.committed {
            self.committed = pos;
            return pos;
        }
        None
    }

    /// One past the highest offset consumed, if any.
    pub fn next_offset(&self) -> Option<i64> {
        self.next
    }

    /// Outputs still in flight.
    pub fn in_flight(&self) -> usize {
        self.pending.iter().map(|p| p.1 as usize).sum()
    }
}

/// [`PartitionOffsets`] for every assigned partition.
#[derive(Debug, Clone, Default)]
pub struct OffsetTracker {
    partitions: BTreeMap<i32, PartitionOffsets>,
}

impl OffsetTracker {
    /// The partition's tracker, created on first use.
    pub fn partition(&mut self, partition: i32) -> &mut PartitionOffsets {
        self.partitions.entry(partition).or_default()
    }

    /// Forgets a revoked partition: its new owner resumes from the last commit.
    pub fn revoke(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// Positions that moved since the last call, by partition.
    pub fn advance(&mut self) -> Vec<(i32, i64)> {
        self.partitions
            .iter_mut()
            .filter_map(|(p, t)| t.advance().map(|o| (*p, o)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn commits_up_to_the_first_unfinished_offset() {
        let mut p = PartitionOffsets::default();
        for o in [10, 11, 13, 14] {
            assert!(p.consume(o, 1));
        }
        assert!(!p.consume(12, 0), "older than the last offset");
        assert_eq!(p.advance(), Some(10));
        assert!(p.finish(11));
        assert_eq!(p.advance(), None, "10 is still pending");
        assert!(p.finish(10));
        assert_eq!(p.advance(), Some(13));
        assert!(!p.finish(10), "already done");
        assert!(p.finish(14) && p.finish(13));
        assert_eq!(p.advance(), Some(15));
        assert_eq!(p.in_flight(), 0);
    }

    #[test]
    fn events_without_outputs_take_no_entry_and_outputs_are_counted() {
        let mut p = PartitionOffsets::default();
        assert!(p.consume(1, 0) && p.consume(2, 2) && p.consume(3, 0));
        assert_eq!(p.in_flight(), 2);
        assert_eq!(p.advance(), Some(2));
        assert!(p.finish(2));
        assert_eq!(p.advance(), None, "one output of 2 is still in flight");
        assert!(p.finish(2));
        assert_eq!(p.advance(), Some(4));
        assert!(!p.finish(2), "nothing left to finish");
        assert!(!p.finish(3), "3 had no outputs");
        assert_eq!(p.in_flight(), 0);
    }

    #[test]
    fn tracker_reports_moved_partitions_and_forgets_revoked_ones() {
        let mut t = OffsetTracker::default();
        t.partition(0).consume(5, 1);
        t.partition(1).consume(7, 1);
        t.partition(1).finish(7);
        assert_eq!(t.advance(), vec![(0, 5), (1, 8)]);
        assert_eq!(t.advance(), vec![]);
        t.revoke(1);
        t.partition(1).consume(3, 1);
        assert_eq!(t.advance(), vec![(1, 3)]);
    }

    proptest! {
        /// Whatever order effects complete in, the committable position never
        /// passes an offset whose effects are pending, and reaches one past the
        /// last offset once all are done.
        #[test]
        fn never_commits_past_pending_work(gaps in prop::collection::vec(1i64..4, 1..60), order in prop::collection::vec(any::<prop::sample::Index>(), 1..60)) {
            let mut p = PartitionOffsets::default();
            let mut offsets = Vec::new();
            let mut o = 100;
            for g in &gaps {
                o += g;
                prop_assert!(p.consume(o, 1));
                offsets.push(o);
            }
            let mut unfinished = offsets.clone();
            for idx in &order {
                if unfinished.is_empty() {
                    break;
                }
                let done = unfinished.remove(idx.index(unfinished.len()));
                prop_assert!(p.finish(done));
                if let Some(pos) = p.advance().or(p.position()) {
                    prop_assert!(unfinished.iter().all(|u| *u >= pos), "position {} passes pending {:?}", pos, unfinished);
                    if let Some(min) = unfinished.iter().min() {
                        prop_assert_eq!(pos, *min);
                    }
                }
            }
            for u in unfinished {
                p.finish(u);
            }
            p.advance();
            prop_assert_eq!(p.position(), Some(*offsets.last().unwrap() + 1));
        }
    }
}
