//! The one offline driver: feeds decoded events to engines the way `run` would,
//! so `replay`, `backtest`, the simulator's scorecard and the benches all see
//! what production sees.
//!
//! - **One engine per partition.** Events are split by service key with a
//!   producer's [`Partitioner`], as a keyed producer splits them across a topic's
//!   partitions and `run` gives each partition its own engine.
//! - **An event-time wall clock.** Offline, an event arrives when it happened:
//!   the simulated wall clock is the newest event time fed so far.
//! - **Idle advancement.** Every `tick_interval` of that clock each engine is
//!   ticked as `run`'s workers tick theirs, so a partition whose services fall
//!   silent still closes its windows and its `absent` rules fire.

use crate::alert::Transition;
use crate::config::Config;
use crate::engine::{Engine, Judged, Leaders, Outcome, Stats};
use crate::event::Event;
use crate::partition::Partitioner;
use crate::time::Millis;

/// How an offline run is split and clocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DriveOptions {
    /// Engines (partitions); 1 runs everything through one engine.
    pub partitions: u32,
    /// How services map to partitions.
    pub partitioner: Partitioner,
    /// Events further than `max_future_skew` ahead of this wall-clock time are
    /// refused as `run` would at that time (None: no such check).
    pub skew_reference: Option<Millis>,
    /// How often, in event time, every engine is ticked (`run` ticks every second).
    pub tick_interval: Millis,
}

impl Default for DriveOptions {
    fn default() -> Self {
        DriveOptions {
            partitions: 1,
            partitioner: Partitioner::default(),
            skew_reference: None,
            tick_interval: 1_000,
        }
    }
}

/// Engines for one config, fed events in arrival order.
#[derive(Debug)]
pub struct Driver {
    shards: Vec<Engine>,
    opts: DriveOptions,
    /// The simulated wall clock: the newest event time fed (MIN before any).
    wall: Millis,
    next_tick: Millis,
    /// Events refused as too far ahead of `skew_reference`.
    future: u64,
    /// Reused transition buffer.
    buf: Vec<Transition>,
    /// Services whose clock runs ahead of the wall clock (see `engine::lead`).
    ahead: Leaders,
}

impl Driver {
    /// Engines for `cfg`, split and clocked as `opts` says.
    pub fn new(cfg: Config, opts: DriveOptions) -> Driver {
        let n = opts.partitions.max(1);
        Driver {
            shards: (0..n).map(|_| Engine::new(cfg.clone())).collect(),
            opts: DriveOptions {
                partitions: n,
                tick_interval: opts.tick_interval.max(1),
                ..opts
            },
            wall: Millis::MIN,
            next_tick: Millis::MIN,
            future: 0,
            buf: Vec::new(),
            ahead: Leaders::default(),
        }
    }

    /// The engines, in partition order.
    pub fn shards(&self) -> &[Engine] {
        &self.shards
    }

    /// The engines, mutably (e.g. to take their feature logs).
    pub fn shards_mut(&mut self) -> &mut [Engine] {
        &mut self.shards
    }

    /// The simulated wall clock (MIN before the first event).
    pub fn wall(&self) -> Millis {
        self.wall
    }

    /// Feeds one event; hands every transition it (or a tick it caused) makes to
    /// `sink` with the engine that made it.
    pub fn feed<F: FnMut(&Engine, &Transition)>(&mut self, e: &Event, sink: &mut F) -> Outcome {
        let skew = self.shards[0].config().time.max_future_skew;
        if self
            .opts
            .skew_reference
            .is_some_and(|now| e.ts > now.saturating_add(skew))
        {
            self.future += 1;
            return Outcome::TooFarInFuture;
        }
        // One partition: no key to hash (the hash is most of the driver's cost).
        let p = match self.opts.partitions {
            1 => 0,
            n => self.opts.partitioner.partition(e.service.as_bytes(), n) as usize,
        };
        // A service whose clock runs ahead does not move the wall clock, or
        // idle advancement would close every partition's windows at its time.
        let idle_timeout = self.shards[0].config().time.idle_timeout;
        let lead = self.shards[0].lead();
        let judged = self
            .ahead
            .judge(&e.service, e.ts, self.wall, lead, idle_timeout);
        if !matches!(judged, Judged::Leads { .. }) && e.ts > self.wall {
            self.advance_wall(e.ts, sink);
        }
        let outcome = self.shards[p].ingest(e, self.wall.max(e.ts), &mut self.buf);
        Self::hand_over(&self.shards[p], &mut self.buf, sink);
        outcome
    }

    fn advance_wall<F: FnMut(&Engine, &Transition)>(&mut self, to: Millis, sink: &mut F) {
        self.wall = to;
        self.ahead.rejoin(to, 0);
        if self.wall >= self.next_tick {
            self.tick_all(sink);
        }
    }

    /// End of input: every engine closes its windows up to the newest event time
    /// fed to any of them (its own leaders' included).
    pub fn finish<F: FnMut(&Engine, &Transition)>(&mut self, sink: &mut F) {
        if self.wall == Millis::MIN {
            return;
        }
        for shard in &mut self.shards {
            shard.advance_to(self.wall.max(shard.newest_event()), &mut self.buf);
            Self::hand_over(shard, &mut self.buf, sink);
        }
    }

    /// Every engine's counters added up, with the events refused here as
    /// too far in the future.
    pub fn stats(&self) -> Stats {
        let mut total = Stats {
            future: self.future,
            ..Stats::default()
        };
        for shard in &self.shards {
            total.absorb(&shard.stats());
        }
        total
    }

    /// Ticks every engine at the wall clock, as `run`'s workers do each second.
    fn tick_all<F: FnMut(&Engine, &Transition)>(&mut self, sink: &mut F) {
        let interval = self.opts.tick_interval;
        self.next_tick = (self.wall - self.wall.rem_euclid(interval)).saturating_add(interval);
        if self.shards.len() == 1 {
            // One engine sees every event: its own ingest advances it as far.
            return;
        }
        for shard in &mut self.shards {
            shard.tick(self.wall, &mut self.buf);
            Self::hand_over(shard, &mut self.buf, sink);
        }
    }

    fn hand_over<F: FnMut(&Engine, &Transition)>(
        engine: &Engine,
        buf: &mut Vec<Transition>,
        sink: &mut F,
    ) {
        for t in buf.drain(..) {
            sink(engine, &t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::decode;
    use crate::lifecycle::TransitionKind;

    const CFG: &str = r#"
[time]
allowed_lateness = "0s"
idle_timeout = "30s"

[[signals]]
name = "requests"
aggregate = "count"
window = "1m"

[[rules]]
name = "Silent"
kind = "absent"
signal = "requests"
for = "2m"
"#;

    fn event(service: &str, ts: Millis) -> String {
        format!(r#"{{"v":1,"ts":{ts},"service":"{service}","kind":"request","outcome":"ok"}}"#)
    }

    /// `steady` at one event a second for 10 min; one event of `skewed`, whose
    /// clock runs 4 min ahead, at 10 s. Fired `Silent` alerts and counters.
    fn skewed_neighbour(partitions: u32) -> (Vec<(String, Millis)>, Stats) {
        let cfg = Config::parse(CFG, "t").unwrap();
        let opts = DriveOptions {
            partitions,
            ..DriveOptions::default()
        };
        let mut d = Driver::new(cfg, opts);
        let mut fired = Vec::new();
        let mut sink = |e: &Engine, t: &Transition| {
            if t.kind == TransitionKind::Firing {
                fired.push((e.render(t).labels["service"].clone(), t.at));
            }
        };
        for s in 0..600 {
            let ts = 1_000_000 + s * 1000;
            d.feed(&decode(event("steady", ts).as_bytes()).unwrap(), &mut sink);
            if s == 10 {
                let skewed = event("skewed", ts + 240_000);
                d.feed(&decode(skewed.as_bytes()).unwrap(), &mut sink);
            }
        }
        (fired, d.stats())
    }

    #[test]
    fn a_clock_running_ahead_moves_neither_the_wall_clock_nor_a_neighbour() {
        for partitions in [1, 4] {
            let (fired, stats) = skewed_neighbour(partitions);
            assert_eq!(
                (stats.applied, stats.late),
                (601, 0),
                "{partitions}: {stats:?}"
            );
            assert!(
                fired.iter().all(|(s, _)| s != "steady"),
                "{partitions}: {fired:?}"
            );
        }
    }

    /// Two services, one going silent at 5 min while the other goes on: fired
    /// `Silent` alerts per service.
    fn silent_pages(partitions: u32) -> Vec<(String, Millis)> {
        let cfg = Config::parse(CFG, "t").unwrap();
        let mut d = Driver::new(
            cfg,
            DriveOptions {
                partitions,
                ..DriveOptions::default()
            },
        );
        let mut fired = Vec::new();
        let mut sink = |e: &Engine, t: &Transition| {
            if t.kind == TransitionKind::Firing {
                fired.push((e.render(t).labels["service"].clone(), t.at));
            }
        };
        for s in 0..1200 {
            let ts = 1_000_000 + s * 1000;
            d.feed(&decode(event("steady", ts).as_bytes()).unwrap(), &mut sink);
            if s < 300 {
                d.feed(&decode(event("cart", ts).as_bytes()).unwrap(), &mut sink);
            }
        }
        // No `finish`: the page must come from idle advancement while the
        // other service's events go on.
        assert_eq!(d.stats().applied, 1500);
        fired
    }

    #[test]
    fn a_silent_service_pages_whether_or_not_it_has_a_partition_of_its_own() {
        let p = Partitioner::Crc32;
        assert_ne!(
            p.partition(b"steady", 2),
            p.partition(b"cart", 2),
            "the test needs the two services apart"
        );
        for partitions in [1, 2] {
            let fired = silent_pages(partitions);
            assert_eq!(fired.len(), 1, "{partitions} partitions: {fired:?}");
            assert_eq!(fired[0].0, "cart");
            // Silent from 1 300 s; the window empties a minute later, then `for`.
            let at = fired[0].1;
            assert!((1_300_000..=1_300_000 + 4 * 60_000).contains(&at), "{at}");
        }
    }

    #[test]
    fn events_beyond_the_skew_reference_are_refused_and_counted() {
        let cfg = Config::parse(CFG, "t").unwrap();
        let mut d = Driver::new(
            cfg,
            DriveOptions {
                skew_reference: Some(1_000_000),
                ..DriveOptions::default()
            },
        );
        let (far, near) = (event("a", 1_000_000 + 86_400_000), event("a", 1_000_000));
        let (far, near) = (
            decode(far.as_bytes()).unwrap(),
            decode(near.as_bytes()).unwrap(),
        );
        assert_eq!(d.feed(&far, &mut |_, _| {}), Outcome::TooFarInFuture);
        assert_eq!(d.feed(&near, &mut |_, _| {}), Outcome::Applied);
        let s = d.stats();
        assert_eq!((s.future, s.applied), (1, 1));
    }
}
