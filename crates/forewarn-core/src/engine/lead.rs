//! Services on their own event time.
//!
//! A partition's event time is the newest event time of the services that keep
//! pace with it. An event more than the *lead* (`time.max_service_lead`; by
//! default the larger of `allowed_lateness` and `idle_timeout`, so that a
//! sparse partition's ordinary gaps between events put nobody on their own
//! time) ahead of that comes from a service whose clock runs
//! ahead, or whose stream jumped: the service *leads*. Its groups are then
//! evaluated on its own stream, one by one, as its events pass their window
//! ends; its events are judged late against its own watermark; and it does not
//! move the partition's clock, so no other service in the partition has its
//! windows closed early or its events made late by that clock (Kafka Streams and
//! Flink keep one clock per partition, where a single skewed producer does both).
//!
//! A leader rejoins the partition's time once the partition's watermark reaches
//! its own (its clock was right and the others caught up, or idle advancement
//! passed it). Its time becomes the partition's (a real jump, e.g. after a quiet
//! spell) once it has advanced by `idle_timeout` on its own with no other
//! service's event in between: nobody is left to protect. At most
//! [`MAX_LEADERS`] services lead at once; beyond, an event moves the
//! partition's clock as before.

use serde::{Deserialize, Serialize};

use super::{Engine, Outcome};
use crate::alert::Transition;
use crate::event::Event;
use crate::time::Millis;

/// Most services on their own time in one partition (bounds the state and the
/// per-event search; a flood of skewed clocks falls back to one clock).
pub const MAX_LEADERS: usize = 64;

/// The services of a partition that run ahead of it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Leaders {
    leaders: Vec<Leader>,
    /// Events that kept pace with the partition, ever (tells a leader whether
    /// anyone else is still sending).
    paced: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Leader {
    service: Box<str>,
    /// Newest event time of the service.
    newest: Millis,
    /// The watermark its groups were evaluated through.
    evaluated: Millis,
    /// Its newest event time when another service was last seen keeping pace.
    since: Millis,
    /// `Leaders::paced` at `since`.
    paced: u64,
}

/// What [`Leaders::judge`] made of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judged {
    /// It keeps pace: the partition's clock takes it.
    Paces,
    /// Its service leads (leader `index`; `newest` before this event).
    Leads {
        /// The leader.
        index: usize,
        /// Its newest event time before this one (MIN: it just began to lead).
        newest: Millis,
    },
    /// Its service led for an idle timeout of its own time with nobody else
    /// keeping pace: its time is the partition's now.
    Confirmed,
}

impl Leaders {
    fn find(&self, service: &str) -> Option<usize> {
        self.leaders.iter().position(|l| &*l.service == service)
    }

    /// Judges an event of `service` at `ts` against the partition's time
    /// `frontier`, given the `lead` it may run ahead and the `idle_timeout`.
    pub fn judge(
        &mut self,
        service: &str,
        ts: Millis,
        frontier: Millis,
        lead: Millis,
        idle_timeout: Millis,
    ) -> Judged {
        let found = if self.leaders.is_empty() {
            None
        } else {
            self.find(service)
        };
        let index = match found {
            Some(i) => i,
            None if frontier == Millis::MIN
                || ts <= frontier.saturating_add(lead)
                || self.leaders.len() >= MAX_LEADERS =>
            {
                self.paced += 1;
                return Judged::Paces;
            }
            None => {
                self.leaders.push(Leader {
                    service: service.into(),
                    newest: Millis::MIN,
                    evaluated: Millis::MIN,
                    since: ts,
                    paced: self.paced,
                });
                self.leaders.len() - 1
            }
        };
        let l = &mut self.leaders[index];
        let newest = l.newest;
        if l.paced != self.paced {
            // Someone kept pace since: count its own time from here.
            (l.since, l.paced) = (ts.max(newest), self.paced);
        }
        if ts > newest && newest != Millis::MIN && ts - l.since >= idle_timeout {
            self.leaders.swap_remove(index);
            return Judged::Confirmed;
        }
        l.newest = l.newest.max(ts);
        Judged::Leads { index, newest }
    }

    /// Newest event time of any leader (MIN: none).
    pub(crate) fn newest(&self) -> Millis {
        self.leaders
            .iter()
            .map(|l| l.newest)
            .max()
            .unwrap_or(Millis::MIN)
    }

    /// Returns to the partition's time every leader whose own watermark
    /// (newest − `lateness`) the partition's watermark `w` has reached.
    pub fn rejoin(&mut self, w: Millis, lateness: Millis) {
        if !self.leaders.is_empty() {
            self.leaders
                .retain(|l| l.newest.saturating_sub(lateness) > w);
        }
    }
}

impl Engine {
    /// How far ahead of the partition an event may be and still keep its pace
    /// (`time.max_service_lead`).
    pub fn lead(&self) -> Millis {
        self.cfg.time.max_service_lead
    }

    /// The partition's time: its newest event, or where idle advancement took it.
    fn frontier(&self) -> Millis {
        if self.clock.watermark == Millis::MIN {
            return self.clock.max_ts;
        }
        let idle = self
            .clock
            .watermark
            .saturating_add(self.cfg.time.allowed_lateness);
        self.clock.max_ts.max(idle)
    }

    /// Services on their own event time (their clock runs ahead).
    pub fn services_ahead(&self) -> usize {
        self.leaders.leaders.len()
    }

    /// Newest event time taken, a leader's included (MIN: none).
    pub fn newest_event(&self) -> Millis {
        self.clock.max_ts.max(self.leaders.newest())
    }

    /// Takes `e` on its service's own time if its service leads; None: the
    /// partition's clock takes it.
    #[inline]
    pub(super) fn ingest_leading(
        &mut self,
        e: &Event,
        out: &mut Vec<Transition>,
    ) -> Option<Outcome> {
        // The hot path: nobody leads and the event keeps pace with the newest
        // (pace is only counted while someone leads).
        if self.leaders.leaders.is_empty() && e.ts <= self.clock.max_ts.saturating_add(self.lead())
        {
            return None;
        }
        self.judge_leading(e, out)
    }

    #[inline(never)]
    fn judge_leading(&mut self, e: &Event, out: &mut Vec<Transition>) -> Option<Outcome> {
        let (frontier, lead) = (self.frontier(), self.lead());
        let (lateness, idle_timeout) = (self.cfg.time.allowed_lateness, self.cfg.time.idle_timeout);
        let (index, newest) =
            match self
                .leaders
                .judge(&e.service, e.ts, frontier, lead, idle_timeout)
            {
                Judged::Paces => return None,
                Judged::Confirmed => {
                    self.clock.max_ts = e.ts;
                    self.advance_to(e.ts - lateness, out);
                    return None;
                }
                Judged::Leads { index, newest } => (index, newest),
            };
        if newest == Millis::MIN {
            self.leaders.leaders[index].evaluated = self.clock.watermark;
        }
        if e.ts < newest.saturating_sub(lateness) {
            self.stats.late += 1;
            return Some(Outcome::Late);
        }
        if e.ts > newest {
            self.catch_up(index, e.ts - lateness, false, out);
        }
        let live = self.live_groups();
        let applied = self.apply(e);
        if self.live_groups() != live {
            // A new group of the service: bring it to the service's time too.
            let to = self.leaders.leaders[index].evaluated;
            self.catch_up(index, to, true, out);
        }
        Some(if applied {
            self.stats.applied += 1;
            Outcome::Applied
        } else {
            self.stats.refused += 1;
            Outcome::Refused
        })
    }

    fn live_groups(&self) -> usize {
        self.groupings.iter().map(|g| g.live()).sum()
    }

    /// Evaluates leader `i`'s groups on every window ending by `to` they have
    /// not been evaluated on (`force`: look even when no window end was passed,
    /// for a new group).
    fn catch_up(&mut self, i: usize, to: Millis, force: bool, out: &mut Vec<Transition>) {
        let l = &mut self.leaders.leaders[i];
        let from = l.evaluated;
        let to = to.max(from);
        l.evaluated = to;
        let service = l.service.clone();
        for fi in 0..self.families.len() {
            let slide = self.cfg.signals[self.wiring.family_signal[fi]].slide;
            if !force && to.div_euclid(slide) == from.div_euclid(slide) {
                continue; // no window end in (from, to]
            }
            let grouping = &self.groupings[self.wiring.family_grouping[fi]];
            let groups: Vec<usize> = (0..grouping.len())
                .filter(|&g| {
                    !grouping.is_free(g as u32) && *grouping.key(g as u32).service == *service
                })
                .collect();
            let n = grouping.len();
            let marks = &mut self.families[fi].marks;
            if marks.len() < n {
                marks.resize(n, Millis::MIN);
            }
            for g in groups {
                let done = self.families[fi].marks[g].max(self.clock.watermark);
                let mut at = (done.div_euclid(slide) + 1).saturating_mul(slide);
                while at <= to {
                    self.evaluate_group(fi, g, at, out);
                    at += slide;
                }
                let m = &mut self.families[fi].marks[g];
                *m = (*m).max(to);
            }
        }
    }
}
