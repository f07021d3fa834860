//! Fixed partition shares: member `index` of `count` consumes the partitions
//! `p` with `p % count == index`, assigned by the member itself instead of by
//! the consumer group's rebalances (as Flink's Kafka source does).
//!
//! Why: a group member that restarts waits for a join round before it gets its
//! partitions back (Tansu pauses 3 s in JoinGroup and 3 s more in SyncGroup for
//! a static member; a crashed dynamic member holds its partitions for the
//! session timeout). A member with a fixed share needs no coordinator round:
//! after a crash it reads its checkpoints and resumes as soon as it is started
//! again. The trade-off: a member that stays down leaves its share unread until
//! it is back (a StatefulSet restarts it), and changing `count` means restarting
//! every member with the new value. Offsets are still committed under the
//! consumer group, so the group's lag and the checkpoints work as before.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};

/// How often a member with a share looks for partitions it has not taken yet:
/// often while it has none (the topic may not exist yet), rarely once it
/// consumes (partitions added to a topic later).
const LOOK_WHILE_EMPTY: Duration = Duration::from_secs(1);
const LOOK_WHILE_CONSUMING: Duration = Duration::from_secs(30);

/// Which partitions a member takes: `index` of `count` members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// This member's number, from 0.
    pub index: u32,
    /// How many members share the partitions.
    pub count: u32,
}

impl Share {
    /// Whether `partition` belongs to this member.
    pub fn owns(&self, partition: i32) -> bool {
        partition >= 0 && partition as u32 % self.count == self.index
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Share {
    type Err = String;

    /// `INDEX/COUNT`, e.g. `2/3` (the third of three members).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let usage = || format!("`{s}`: expected INDEX/COUNT with 0 <= INDEX < COUNT, e.g. 0/3");
        let (index, count) = s.trim().split_once('/').ok_or_else(usage)?;
        let index: u32 = index.trim().parse().map_err(|_| usage())?;
        let count: u32 = count.trim().parse().map_err(|_| usage())?;
        if count == 0 || index >= count {
            return Err(usage());
        }
        Ok(Share { index, count })
    }
}

/// The partitions a member with a share has taken, and when to look again.
#[derive(Debug)]
pub struct Taken {
    /// The member's share.
    pub share: Share,
    partitions: BTreeSet<(String, i32)>,
    next_look: Instant,
}

impl Taken {
    /// Nothing taken yet; the first look is due at once.
    pub fn new(share: Share) -> Taken {
        Taken {
            share,
            partitions: BTreeSet::new(),
            next_look: Instant::now(),
        }
    }

    /// Whether it is time to look at the topics' partitions again; if so, the
    /// next look is scheduled.
    pub fn look_due(&mut self, now: Instant) -> bool {
        if now < self.next_look {
            return false;
        }
        let every = if self.partitions.is_empty() {
            LOOK_WHILE_EMPTY
        } else {
            LOOK_WHILE_CONSUMING
        };
        self.next_look = now + every;
        true
    }

    /// Of a topic's partition ids, those in the share not taken yet, now
    /// recorded as taken.
    pub fn take(&mut self, topic: &str, ids: impl IntoIterator<Item = i32>) -> Vec<i32> {
        let share = self.share;
        ids.into_iter()
            .filter(|p| share.owns(*p) && self.partitions.insert((topic.to_string(), *p)))
            .collect()
    }

    /// Forgets a partition whose assignment failed, so the next look retries it.
    pub fn release(&mut self, topic: &str, partition: i32) {
        self.partitions.remove(&(topic.to_string(), partition));
    }

    /// How many partitions are taken.
    pub fn count(&self) -> usize {
        self.partitions.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_parse_and_split_partitions_without_overlap() {
        let shares: Vec<Share> = ["0/3", "1/3", " 2 / 3 "]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut seen = vec![0; 8];
        for share in &shares {
            for p in (0..8).filter(|p| share.owns(*p)) {
                seen[p as usize] += 1;
            }
        }
        assert_eq!(seen, [1; 8], "every partition has exactly one owner");
        let second: Vec<i32> = (0..8).filter(|p| shares[1].owns(*p)).collect();
        assert_eq!(second, [1, 4, 7]);
        assert_eq!(shares[2].to_string(), "2/3");
        assert!(!shares[0].owns(-1));
    }

    #[test]
    fn partitions_are_taken_once_and_looked_for_less_often_once_consuming() {
        let mut taken = Taken::new("1/2".parse().unwrap());
        let start = Instant::now();
        assert!(taken.look_due(start));
        assert!(!taken.look_due(start), "scheduled, not due again at once");
        assert_eq!(taken.take("events", 0..4), [1, 3]);
        assert_eq!(taken.take("events", 0..6), [5], "only the new one");
        taken.release("events", 3);
        assert_eq!(taken.take("events", 0..6), [3], "a released one again");
        assert_eq!(taken.count(), 3);
        // Scheduled while empty: due a second later; then every 30 s.
        let next = start + LOOK_WHILE_EMPTY;
        assert!(taken.look_due(next));
        assert!(!taken.look_due(next + LOOK_WHILE_EMPTY));
        assert!(taken.look_due(next + LOOK_WHILE_CONSUMING));
    }

    #[test]
    fn malformed_shares_are_refused_with_the_expected_form() {
        for bad in ["3/3", "0/0", "1", "a/2", "-1/2", "1/2/3", ""] {
            let e = bad.parse::<Share>().unwrap_err();
            assert!(e.contains("INDEX/COUNT"), "{bad}: {e}");
        }
    }
}
