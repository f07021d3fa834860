//! The engine shard of one assigned partition, and what its worker reports of
//! it on every tick.

use std::sync::Arc;
use std::time::{Duration, Instant};

use forewarn_core::time::Millis;
use forewarn_core::{Config, Engine, PredictionOutcome};

use crate::metrics::{BatchedCounters, Metrics};
use crate::offsets::PartitionOffsets;

/// At most one "groups refused" warning per shard per this interval.
const REFUSED_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// One partition's engine, offsets and counters.
pub struct Shard {
    /// Unique per assignment within its worker, so a delivery acknowledged
    /// after its partition was revoked (and perhaps assigned again) cannot
    /// complete the wrong offset.
    pub id: u64,
    /// The partition's topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The partition's engine.
    pub engine: Engine,
    /// Consumed offsets and their outputs in flight.
    pub offsets: PartitionOffsets,
    /// The topic's result counters, batched.
    pub counters: BatchedCounters,
    /// `refused_groups` and `reclaimed_groups` of the engine at the last tick.
    refused_seen: u64,
    reclaimed_seen: u64,
    /// Entity-event outcomes of the engine at the last tick.
    entities_seen: forewarn_core::timers::EntityStats,
    /// Refusals not yet logged, and when they were last logged: a flood is
    /// reported once a minute, not on every tick.
    refused_unlogged: u64,
    refused_logged_at: Option<Instant>,
    /// Checkpointing, when the pipeline has a checkpoint topic.
    pub checkpoint: Option<Checkpointing>,
    /// The position last committed.
    pub last_committed: Option<i64>,
}

/// Where a shard's checkpoints stand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpointing {
    /// Key prefix of the partition's checkpoints.
    pub prefix: String,
    /// Generation of the last checkpoint started (or restored).
    pub generation: u64,
    /// The next input offset the last acknowledged checkpoint covers: offsets
    /// are committed no further.
    pub covered: Option<i64>,
    /// A checkpoint being written: its generation, offset and chunks still
    /// unacknowledged.
    pub writing: Option<(u64, i64, usize)>,
    /// A checkpoint is wanted at the next chance (its interval passed, or the
    /// partition is being drained).
    pub due: bool,
    /// Messages below this offset are already in the restored state.
    pub skip_below: Option<i64>,
}

impl Checkpointing {
    /// Fresh, for a partition with no checkpoint (generations then start from
    /// the wall clock, so they still increase across restarts).
    pub fn new(prefix: String, base_generation: u64) -> Checkpointing {
        Checkpointing {
            prefix,
            generation: base_generation,
            covered: None,
            writing: None,
            due: false,
            skip_below: None,
        }
    }

    /// What may be committed: the delivery bound `position`, but never past
    /// the last acknowledged checkpoint.
    pub fn bound(&self, position: Option<i64>) -> Option<i64> {
        match (position, self.covered) {
            (Some(p), Some(c)) => Some(p.min(c)),
            _ => None,
        }
    }

    /// A chunk of generation `generation` was acknowledged (`ok`) or given up;
    /// returns whether that completed the checkpoint.
    pub fn chunk_settled(&mut self, generation: u64, ok: bool) -> Option<bool> {
        let (g, offset, left) = self.writing?;
        if g != generation {
            return None;
        }
        if !ok {
            // Its chunks had their attempts: the next try waits for the next
            // interval (or the drain at revocation), not the next loop turn.
            self.writing = None;
            return Some(false);
        }
        if left <= 1 {
            self.writing = None;
            self.covered = Some(offset);
            return Some(true);
        }
        self.writing = Some((g, offset, left - 1));
        None
    }
}

impl Shard {
    /// A fresh shard for `topic`/`partition`.
    pub fn new(id: u64, topic: Arc<str>, partition: i32, cfg: Config, metrics: &Metrics) -> Shard {
        Shard {
            id,
            counters: BatchedCounters::new(metrics.topic(&topic)),
            topic,
            partition,
            engine: Engine::new(cfg),
            offsets: PartitionOffsets::default(),
            refused_seen: 0,
            reclaimed_seen: 0,
            entities_seen: Default::default(),
            refused_unlogged: 0,
            refused_logged_at: None,
            checkpoint: None,
            last_committed: None,
        }
    }

    /// Takes the engine's counters as already reported (after a restore:
    /// the previous run reported them).
    pub fn resync_stats(&mut self) {
        let stats = self.engine.stats();
        self.refused_seen = stats.refused_groups;
        self.reclaimed_seen = stats.reclaimed_groups;
        self.entities_seen = stats.entities;
    }

    /// Publishes what the engine counted since the last tick (watermark delay,
    /// settled forecasts, refused and reclaimed groups, entity outcomes) and
    /// logs refusals at most once a minute.
    pub fn report(
        &mut self,
        metrics: &Metrics,
        settled: &mut Vec<PredictionOutcome>,
        now: Millis,
        at: Instant,
    ) {
        let clock = self.engine.clock();
        if clock.watermark != Millis::MIN {
            metrics
                .watermark_delay
                .with_label_values(&[&*self.topic, &self.partition.to_string()])
                .set((now - clock.watermark) as f64 / 1000.0);
        }
        metrics
            .services_ahead
            .with_label_values(&[&*self.topic, &self.partition.to_string()])
            .set(self.engine.services_ahead() as i64);
        self.engine.take_outcomes(settled);
        for o in settled.drain(..) {
            let rule = &self.engine.config().rules[o.rule as usize].name;
            metrics.prediction(rule, o.prediction);
        }
        let stats = self.engine.stats();
        let new = stats.refused_groups - self.refused_seen;
        metrics.groups_refused.inc_by(new);
        self.refused_seen = stats.refused_groups;
        self.refused_unlogged += new;
        metrics
            .groups_reclaimed
            .inc_by(stats.reclaimed_groups - self.reclaimed_seen);
        self.reclaimed_seen = stats.reclaimed_groups;
        let seen = self.entities_seen.by_result();
        for ((result, now), (_, before)) in stats.entities.by_result().into_iter().zip(seen) {
            metrics
                .entity_events
                .with_label_values(&[result])
                .inc_by(now - before);
        }
        self.refused_unlogged += stats
            .entities
            .refused
            .saturating_sub(self.entities_seen.refused);
        self.entities_seen = stats.entities;
        let log_due = self
            .refused_logged_at
            .is_none_or(|t| at.duration_since(t) >= REFUSED_LOG_INTERVAL);
        if self.refused_unlogged > 0 && log_due {
            tracing::warn!(
                topic = %self.topic,
                partition = self.partition,
                refused = self.refused_unlogged,
                reclaimed_so_far = stats.reclaimed_groups,
                max_groups = self.engine.config().group_cap,
                "events refused: max_groups reached (a flood of distinct service or label values?; idle groups are released as their windows pass) or a timer signal's max_entities open entities"
            );
            self.refused_unlogged = 0;
            self.refused_logged_at = Some(at);
        }
    }

    /// The next offset to consume when the shard has been without events for
    /// `idle_after` of wall time (a candidate for idle advancement).
    pub fn idle_since(&self, now: Millis, idle_after: Millis) -> Option<i64> {
        let last = self.engine.clock().last_event_wall;
        if last == Millis::MIN || now - last < idle_after {
            return None;
        }
        self.offsets.next_offset()
    }

    /// The chunks of a checkpoint, when one is due and can be taken now: none
    /// is being written and no output of an applied event is in flight (the
    /// state must not run ahead of what was delivered).
    pub fn take_checkpoint(&mut self) -> Option<(u64, Vec<crate::checkpoint::Chunk>)> {
        let cp = self.checkpoint.as_mut()?;
        if !cp.due || cp.writing.is_some() || self.offsets.in_flight() > 0 {
            return None;
        }
        cp.due = false;
        let next = self.offsets.next_offset().or(cp.skip_below)?;
        cp.generation += 1;
        let chunks = crate::checkpoint::encode(
            &cp.prefix,
            &self.engine.snapshot(),
            next,
            cp.generation,
            crate::checkpoint::CHUNK_BYTES,
        );
        cp.writing = Some((cp.generation, next, chunks.len()));
        Some((cp.generation, chunks))
    }

    /// What may be committed: the delivery bound, and with checkpoints on,
    /// never past the last acknowledged checkpoint.
    pub fn committable(&self) -> Option<i64> {
        let position = self.offsets.position();
        match &self.checkpoint {
            Some(cp) => cp.bound(position),
            None => position,
        }
    }

    /// Groups tracked: the most of any signal.
    pub fn groups(&self) -> usize {
        (0..self.engine.config().signals.len())
            .map(|i| self.engine.groups(i))
            .max()
            .unwrap_or(0)
    }
}
