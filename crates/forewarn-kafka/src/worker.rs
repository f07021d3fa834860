//! One worker thread: it owns the shards of its partitions (engines, offsets),
//! reads their messages from their own librdkafka queues, sends what they
//! cause through its [`Outbox`], commits its partitions' offsets, and publishes
//! views on request. Nothing it touches per message is shared with another
//! worker; everything reaches it through its [`Inbox`].
//!
//! A partition moves through Consuming (its queue is read) → Draining (revoked:
//! no more messages are taken; its outputs in flight are awaited until the
//! deadline) → Done (its final position goes back to the consumer thread, which
//! commits it, and the shard is dropped).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use forewarn_core::time::Millis;
use forewarn_core::{decode, Config, Outcome, PredictionOutcome, Transition};
use prometheus::{IntCounter, IntGauge};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::message::BorrowedMessage;
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};

use crate::dead_letter::{dead_letter_headers, Source};
use crate::metrics::{EventResult, Metrics};
use crate::options::Options;
use crate::output::{Ack, Outbox, Output, Pending};
use crate::shard::Shard;
use crate::throttle::Throttle;
use crate::view::{Board, GroupReading, View};
use rdkafka::consumer::base_consumer::PartitionQueue;

/// A further destination of every rendered alert transition; called on the
/// worker threads, so it must not block.
pub type AlertSink = Box<dyn Fn(&forewarn_core::Alert) + Send + Sync>;

/// Messages taken from one partition before the worker turns to the next.
const BURST: usize = 64;

/// Longest wait for the inbox when there is nothing to do.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// What a worker reads of a message.
pub trait Record {
    /// Source topic.
    fn topic(&self) -> &str;
    /// Source partition.
    fn partition(&self) -> i32;
    /// Offset in the partition.
    fn offset(&self) -> i64;
    /// Key, if any.
    fn key(&self) -> Option<&[u8]>;
    /// Payload, if any.
    fn payload(&self) -> Option<&[u8]>;
}

macro_rules! record_of_message {
    ($t:ty) => {
        impl Record for $t {
            fn topic(&self) -> &str {
                rdkafka::message::Message::topic(self)
            }
            fn partition(&self) -> i32 {
                rdkafka::message::Message::partition(self)
            }
            fn offset(&self) -> i64 {
                rdkafka::message::Message::offset(self)
            }
            fn key(&self) -> Option<&[u8]> {
                rdkafka::message::Message::key(self)
            }
            fn payload(&self) -> Option<&[u8]> {
                rdkafka::message::Message::payload(self)
            }
        }
    };
}
record_of_message!(BorrowedMessage<'_>);
record_of_message!(OwnedMessage);

/// A message lent from memory (the worker benchmark, tests).
impl Record for &OwnedMessage {
    fn topic(&self) -> &str {
        Record::topic(*self)
    }
    fn partition(&self) -> i32 {
        Record::partition(*self)
    }
    fn offset(&self) -> i64 {
        Record::offset(*self)
    }
    fn key(&self) -> Option<&[u8]> {
        Record::key(*self)
    }
    fn payload(&self) -> Option<&[u8]> {
        Record::payload(*self)
    }
}

/// Where a worker reads one partition's messages: its librdkafka partition
/// queue in production, memory in the worker benchmark.
pub trait MessageQueue: Send + 'static {
    /// The message type it yields.
    type Message<'a>: Record
    where
        Self: 'a;
    /// The next message, if one is ready (never blocks).
    fn next(&self) -> Option<KafkaResult<Self::Message<'_>>>;
}

impl<C: ConsumerContext + 'static> MessageQueue for PartitionQueue<C> {
    type Message<'a> = BorrowedMessage<'a>;
    fn next(&self) -> Option<KafkaResult<BorrowedMessage<'_>>> {
        self.poll(Duration::ZERO)
    }
}

/// What a worker asks of the consumer group: committing its positions and the
/// partition's end (for idle advancement).
pub trait GroupClient: Send + Sync + 'static {
    /// Commits `tpl` without waiting.
    fn commit_async(&self, tpl: &TopicPartitionList) -> KafkaResult<()>;
    /// The partition's high watermark, if the broker answers in time.
    fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64>;
}

impl<C: ConsumerContext + 'static> GroupClient for BaseConsumer<C> {
    fn commit_async(&self, tpl: &TopicPartitionList) -> KafkaResult<()> {
        self.commit(tpl, CommitMode::Async)
    }

    fn high_watermark(&self, topic: &str, partition: i32) -> Option<i64> {
        self.fetch_watermarks(topic, partition, Duration::from_millis(500))
            .ok()
            .map(|(_, high)| high)
    }
}

/// What reaches a worker.
pub enum Inbox<Q: MessageQueue> {
    /// A newly assigned partition and its queue.
    Assign {
        /// Topic.
        topic: Arc<str>,
        /// Partition.
        partition: i32,
        /// The partition's own message queue.
        queue: Q,
        /// Its checkpoint, read before it was handed over (`Ok(None)`: none
        /// yet, or checkpoints are off).
        restored: Result<Option<Box<crate::checkpoint::Restored>>, String>,
    },
    /// Revoked partitions: drain them until `deadline`, then reply with their
    /// final positions and drop them.
    Revoke {
        /// The partitions, all owned by this worker.
        partitions: Vec<(Arc<str>, i32)>,
        /// When to stop waiting for their outputs.
        deadline: Instant,
        /// Where the positions go.
        reply: Sender<Vec<Position>>,
    },
    /// Drain every partition until `deadline`, reply with the positions, exit.
    Stop {
        /// When to stop waiting for outputs.
        deadline: Instant,
        /// Where the positions go.
        reply: Sender<Vec<Position>>,
    },
    /// A message the consumer's main queue returned (fetched before its
    /// partition's queue was split off).
    Stray(OwnedMessage),
    /// A delivery report for a message this worker sent.
    Ack(Ack),
    /// Something is waiting: a partition queue became non-empty, or a view
    /// was requested.
    Wake,
    /// A reloaded config (already checked): every shard switches to it,
    /// keeping the state of what did not change, and new shards start with it.
    Reload(Arc<Config>),
}

/// A partition's committable position when it left its worker.
#[derive(Debug, Clone)]
pub struct Position {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// The offset to commit, if any event was consumed.
    pub offset: Option<i64>,
    /// Outputs still unacknowledged at the deadline (their events are
    /// re-processed by the next owner).
    pub waiting: usize,
}

/// What every worker reads and nobody writes.
pub struct Shared {
    /// The config at start. Its `[kafka]` section holds while running; the
    /// rest may be replaced by reloads (see [`Inbox::Reload`]).
    pub cfg: Config,
    /// The pipeline's metrics (atomic counters and gauges).
    pub metrics: Metrics,
    /// Pipeline tuning.
    pub options: Options,
    /// The alerts topic.
    pub alerts_topic: Arc<str>,
    /// The dead-letter topic.
    pub dead_letter_topic: Arc<str>,
    /// Further alert destinations.
    pub sinks: Vec<AlertSink>,
    /// Where views are published.
    pub board: Arc<Board>,
    /// Incremented on every failed commit: the next commit of every worker
    /// then sends every position, not only the ones that moved.
    pub commit_failures: Arc<AtomicU64>,
    /// The checkpoint topic, when checkpoints are on.
    pub checkpoint_topic: Option<Arc<str>>,
    /// Its partition count, as read at start-up: a partition's checkpoint goes
    /// to its home partition ([`crate::checkpoint::home_partition`]); `None`
    /// (unknown): the key's hash places it.
    pub checkpoint_partitions: Option<i32>,
}

/// A partition owned by a worker.
struct Owned<Q> {
    queue: Q,
    shard: Shard,
}

/// One worker: its partitions and the side effects they cause.
pub struct Worker<Q: MessageQueue, G: GroupClient> {
    consumer: Arc<G>,
    inbox: Receiver<Inbox<Q>>,
    /// Items that arrived while draining, handled next.
    deferred: Vec<Inbox<Q>>,
    owned: Vec<Owned<Q>>,
    effects: Effects,
    next_shard: u64,
    /// The view generation last published.
    published: u64,
    /// Unix seconds of the last tick (readiness fails when a worker stalls).
    heartbeat: Arc<AtomicI64>,
    commits: u64,
    commit_failures_seen: u64,
    last_tick: Instant,
    last_commit: Instant,
    last_checkpoint: Instant,
    /// This worker's `forewarn_worker_messages_total` and `forewarn_worker_partitions`.
    messages: IntCounter,
    partitions: IntGauge,
    /// Whether input is paused for backpressure, and its gauge.
    paused: bool,
    paused_gauge: IntGauge,
}

fn wall_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

impl<Q: MessageQueue, G: GroupClient> Worker<Q, G> {
    /// Worker `index` of the consumer `consumer`, reading `inbox` and sending
    /// through `outbox`.
    pub fn new(
        index: usize,
        shared: Arc<Shared>,
        consumer: Arc<G>,
        inbox: Receiver<Inbox<Q>>,
        outbox: Outbox,
        heartbeat: Arc<AtomicI64>,
    ) -> Worker<Q, G> {
        let now = Instant::now();
        let label = index.to_string();
        let messages = shared.metrics.worker_messages.with_label_values(&[&label]);
        let partitions = shared
            .metrics
            .worker_partitions
            .with_label_values(&[&label]);
        partitions.set(0);
        let paused_gauge = shared.metrics.worker_paused.with_label_values(&[&label]);
        paused_gauge.set(0);
        Worker {
            messages,
            partitions,
            paused: false,
            paused_gauge,
            consumer,
            inbox,
            deferred: Vec::new(),
            owned: Vec::new(),
            effects: Effects {
                index,
                cfg: Arc::new(shared.cfg.clone()),
                shared,
                outbox,
                transitions: Vec::new(),
                failed: Vec::new(),
                settled: Vec::new(),
                processed: 0,
            },
            next_shard: 0,
            published: 0,
            heartbeat,
            commits: 0,
            commit_failures_seen: 0,
            last_tick: now,
            last_commit: now,
            last_checkpoint: now,
        }
    }

    /// Runs until told to stop.
    pub fn run(mut self) {
        self.heartbeat.store(wall_ms() / 1000, Ordering::Relaxed);
        loop {
            for item in std::mem::take(&mut self.deferred) {
                if !self.handle(item) {
                    return;
                }
            }
            while let Ok(item) = self.inbox.try_recv() {
                if !self.handle(item) {
                    return;
                }
            }
            let got = self.consume();
            self.housekeeping();
            if got == 0 {
                let wait = self
                    .effects
                    .outbox
                    .next_due()
                    .map_or(IDLE_WAIT, |due| {
                        due.saturating_duration_since(Instant::now())
                    })
                    .min(IDLE_WAIT);
                match self.inbox.recv_timeout(wait) {
                    Ok(item) => {
                        if !self.handle(item) {
                            return;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        }
    }

    /// Handles one inbox item; `false` when the worker is to exit.
    fn handle(&mut self, item: Inbox<Q>) -> bool {
        match item {
            Inbox::Assign {
                topic,
                partition,
                queue,
                restored,
            } => self.assign(topic, partition, queue, restored),
            Inbox::Revoke {
                partitions,
                deadline,
                reply,
            } => {
                let positions = self.drain(
                    |s| {
                        partitions
                            .iter()
                            .any(|(t, p)| *t == s.topic && *p == s.partition)
                    },
                    deadline,
                );
                let _ = reply.send(positions);
            }
            Inbox::Stop { deadline, reply } => {
                let positions = self.drain(|_| true, deadline);
                let _ = reply.send(positions);
                return false;
            }
            Inbox::Stray(msg) => {
                match self.owned.iter_mut().find(|o| {
                    *o.shard.topic == *msg.topic() && o.shard.partition == msg.partition()
                }) {
                    Some(o) => {
                        self.effects.process(&mut o.shard, &msg, Instant::now());
                        o.shard.counters.flush();
                        self.messages.inc();
                    }
                    None => tracing::debug!(
                        topic = msg.topic(),
                        partition = msg.partition(),
                        offset = msg.offset(),
                        "message for a partition this worker does not own; left to its owner"
                    ),
                }
            }
            Inbox::Ack(ack) => {
                self.effects.outbox.acknowledged();
                self.settle(ack);
            }
            Inbox::Wake => {}
            Inbox::Reload(cfg) => self.reconfigure(cfg),
        }
        true
    }

    /// Switches every shard to `cfg`; the alerts of removed and changed rules
    /// end now.
    fn reconfigure(&mut self, cfg: Arc<Config>) {
        let now = Instant::now();
        for o in &mut self.owned {
            let placeholder = forewarn_core::Engine::new((*cfg).clone());
            let old = std::mem::replace(&mut o.shard.engine, placeholder);
            let (engine, r) = old.reconfigure((*cfg).clone());
            o.shard.engine = engine;
            for alert in r.retired {
                self.effects.send_alert(&o.shard, None, now, &alert);
            }
        }
        self.effects.cfg = cfg;
    }

    fn assign(
        &mut self,
        topic: Arc<str>,
        partition: i32,
        queue: Q,
        restored: Result<Option<Box<crate::checkpoint::Restored>>, String>,
    ) {
        self.next_shard += 1;
        let id = self.next_shard;
        let shared = &self.effects.shared;
        let cfg = (*self.effects.cfg).clone();
        let mut shard = Shard::new(id, topic, partition, cfg, &shared.metrics);
        tracing::debug!(topic = %shard.topic, partition, worker = self.effects.index, shard = id, "engine shard created");
        if shared.checkpoint_topic.is_some() {
            let now = Instant::now();
            for alert in self.restore(&mut shard, restored) {
                self.effects.send_alert(&shard, None, now, &alert);
            }
        }
        self.owned
            .retain(|o| !(o.shard.topic == shard.topic && o.shard.partition == partition));
        self.owned.push(Owned { queue, shard });
        self.partitions.set(self.owned.len() as i64);
    }

    /// Starts `shard`'s checkpointing, from its checkpoint when there is a
    /// usable one; a restored shard's firing alerts go to the sinks again at
    /// once, so Alertmanager never sees them lapse. Returns the ends of the
    /// alerts whose rules changed or went since the checkpoint, to be sent.
    fn restore(
        &self,
        shard: &mut Shard,
        restored: Result<Option<Box<crate::checkpoint::Restored>>, String>,
    ) -> Vec<forewarn_core::Alert> {
        let shared = &self.effects.shared;
        let prefix = crate::checkpoint::key_prefix(
            &shared.cfg.kafka.group_id,
            &shard.topic,
            shard.partition,
        );
        let mut cp = crate::shard::Checkpointing::new(prefix, wall_ms().max(0) as u64);
        let mut retired = Vec::new();
        let restored = restored.and_then(|r| {
            let Some(r) = r else { return Ok(None) };
            let engine = forewarn_core::Engine::restore((*self.effects.cfg).clone(), r.snapshot)
                .map_err(|e| e.to_string())?;
            Ok(Some((engine, r.next_offset, r.generation, r.bytes)))
        });
        let result = match restored {
            Ok(None) => "none",
            Ok(Some(((engine, r), next_offset, generation, bytes))) => {
                let c = &r.carried;
                if c.signals.any() || c.rules.any() {
                    tracing::warn!(topic = %shard.topic, partition = shard.partition, restarted_signals = ?c.signals.restarted, added_signals = ?c.signals.added, removed_signals = ?c.signals.removed, restarted_rules = ?c.rules.restarted, added_rules = ?c.rules.added, removed_rules = ?c.rules.removed, ended_alerts = r.retired.len(), "checkpoint written under another config: what changed starts afresh, the rest is restored");
                }
                shard.engine = engine;
                shard.resync_stats();
                cp.generation = cp.generation.max(generation);
                cp.covered = Some(next_offset);
                cp.skip_below = Some(next_offset);
                tracing::info!(topic = %shard.topic, partition = shard.partition, next_offset = next_offset, bytes, "partition restored from its checkpoint");
                for t in shard.engine.active() {
                    let alert = shard.engine.render(&t);
                    for sink in &shared.sinks {
                        sink(&alert);
                    }
                }
                retired = r.retired;
                "restored"
            }
            Err(e) => {
                tracing::error!(topic = %shard.topic, partition = shard.partition, error = %e, "checkpoint refused; the partition is reprocessed from its committed offset");
                "refused"
            }
        };
        shared.metrics.restores.with_label_values(&[result]).inc();
        shard.checkpoint = Some(cp);
        retired
    }

    /// Sends a checkpoint of every shard `which` selects that has one due and
    /// can take it now.
    fn write_checkpoints(&mut self, which: &dyn Fn(&Shard) -> bool) {
        let Some(topic) = self.effects.shared.checkpoint_topic.clone() else {
            return;
        };
        for o in &mut self.owned {
            if !which(&o.shard) {
                continue;
            }
            let Some((generation, chunks)) = o.shard.take_checkpoint() else {
                continue;
            };
            let bytes: usize = chunks.iter().map(|c| c.payload.len()).sum();
            self.effects
                .shared
                .metrics
                .checkpoint_bytes
                .with_label_values(&[&*o.shard.topic, &o.shard.partition.to_string()])
                .set(bytes as i64);
            // Not held against the outbox bound: at most one checkpoint per
            // partition is in flight, and input must not pause for it.
            for c in chunks {
                let failed = self.effects.outbox.send(Box::new(Pending {
                    output: Output::Checkpoints,
                    topic: Arc::clone(&topic),
                    key: Some(Arc::from(c.key.as_bytes())),
                    partition: self
                        .effects
                        .shared
                        .checkpoint_partitions
                        .map(|n| crate::checkpoint::home_partition(o.shard.partition, n)),
                    payload: Some(Arc::from(c.payload)),
                    headers: c.headers,
                    source: None,
                    caused_at: Instant::now(),
                    attempts: 0,
                    worker: self.effects.index,
                    checkpoint: Some((o.shard.id, generation)),
                }));
                self.effects.failed.extend(failed);
            }
        }
        self.settle_failed();
    }

    /// Takes up to a burst of messages from every partition; returns how many.
    /// Takes none while the outbox is full: deliveries are not keeping up (a
    /// broker outage), so input waits in Kafka instead of output in memory.
    fn consume(&mut self) -> usize {
        let full = self.effects.outbox.is_full();
        if full != self.paused {
            self.paused = full;
            self.paused_gauge.set(i64::from(full));
            if full {
                tracing::warn!(
                    worker = self.effects.index,
                    held_bytes = self.effects.outbox.held_bytes(),
                    outstanding = self.effects.outbox.outstanding(),
                    "deliveries are not keeping up: this worker takes no more input until they settle"
                );
            } else {
                tracing::info!(
                    worker = self.effects.index,
                    "deliveries caught up: taking input again"
                );
            }
        }
        if full {
            return 0;
        }
        let mut got = 0;
        for o in &mut self.owned {
            for _ in 0..BURST {
                match o.queue.next() {
                    None => break,
                    Some(Ok(msg)) => {
                        self.effects.process(&mut o.shard, &msg, Instant::now());
                        got += 1;
                    }
                    Some(Err(e)) => {
                        self.effects.shared.metrics.consumer_errors.inc();
                        static CONSUME_ERRORS: Throttle = Throttle::new();
                        if let Some(held_back) = CONSUME_ERRORS.admit() {
                            tracing::warn!(error = %e, held_back, "consume error");
                        }
                        break;
                    }
                }
            }
            o.shard.counters.flush();
        }
        self.settle_failed();
        self.messages.inc_by(got as u64);
        got
    }

    /// Retries, ticks, commits and views, each when due.
    fn housekeeping(&mut self) {
        let mut failed = std::mem::take(&mut self.effects.failed);
        self.effects.outbox.send_due(&mut failed);
        self.effects.failed = failed;
        self.settle_failed();
        let now = Instant::now();
        let (tick_interval, commit_interval) = {
            let o = &self.effects.shared.options;
            (o.tick_interval, o.commit_interval)
        };
        if now.duration_since(self.last_tick) >= tick_interval {
            self.last_tick = now;
            self.tick();
        }
        let checkpoint_interval =
            Duration::from_millis(self.effects.shared.cfg.kafka.checkpoint_interval.max(0) as u64);
        if self.effects.shared.checkpoint_topic.is_some() {
            if now.duration_since(self.last_checkpoint) >= checkpoint_interval {
                self.last_checkpoint = now;
                for o in &mut self.owned {
                    if let Some(cp) = o.shard.checkpoint.as_mut() {
                        cp.due = true;
                    }
                }
            }
            // A due checkpoint waits for its shard's outputs in flight.
            self.write_checkpoints(&|_| true);
        }
        if now.duration_since(self.last_commit) >= commit_interval {
            self.last_commit = now;
            self.commit();
        }
        let wanted = self.effects.shared.board.wanted();
        if wanted != self.published {
            self.published = wanted;
            self.effects
                .shared
                .board
                .publish(self.effects.index, wanted, self.view());
        }
    }

    /// Reports every shard, and advances the idle ones by the wall clock — only
    /// a partition the broker confirms is caught up: one whose fetch is merely
    /// stalled is not idle, and advancing it would turn its backlog into late
    /// events.
    fn tick(&mut self) {
        let now = wall_ms();
        self.heartbeat.store(now / 1000, Ordering::Relaxed);
        let at = Instant::now();
        let idle_after = self.effects.cfg.time.idle_timeout;
        // At most a few broker round trips per tick, each bounded.
        let mut budget = 4;
        for o in &mut self.owned {
            let shard = &mut o.shard;
            shard.report(
                &self.effects.shared.metrics,
                &mut self.effects.settled,
                now,
                at,
            );
            let Some(next) = shard.idle_since(now, idle_after) else {
                continue;
            };
            if budget == 0 {
                continue;
            }
            budget -= 1;
            let caught_up = self
                .consumer
                .high_watermark(&shard.topic, shard.partition)
                .is_some_and(|high| next >= high);
            if !caught_up {
                tracing::debug!(topic = %shard.topic, partition = shard.partition, "idle but not caught up: not advancing");
                continue;
            }
            let mut transitions = std::mem::take(&mut self.effects.transitions);
            shard.engine.tick(now, &mut transitions);
            self.effects
                .send_transitions(shard, None, at, &mut transitions);
            self.effects.transitions = transitions;
        }
        self.settle_failed();
    }

    /// Commits the positions that moved (every position every tenth time, or
    /// after any failed commit).
    fn commit(&mut self) {
        self.commits += 1;
        let failures = self.effects.shared.commit_failures.load(Ordering::Relaxed);
        let all = failures != self.commit_failures_seen || self.commits % 10 == 0;
        self.commit_failures_seen = failures;
        let mut tpl = TopicPartitionList::new();
        for o in &mut self.owned {
            o.shard.offsets.advance();
            let Some(pos) = o.shard.committable() else {
                continue;
            };
            if !all && o.shard.last_committed == Some(pos) {
                continue;
            }
            o.shard.last_committed = Some(pos);
            let _ =
                tpl.add_partition_offset(&o.shard.topic, o.shard.partition, Offset::Offset(pos));
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = self.consumer.commit_async(&tpl) {
            self.effects
                .shared
                .commit_failures
                .fetch_add(1, Ordering::Relaxed);
            self.effects.shared.metrics.commit_failures.inc();
            tracing::warn!(error = %e, "offset commit failed; will retry");
        }
    }

    /// Draining → Done for the partitions `which` selects: no more of their
    /// messages are taken; their outputs in flight are awaited until
    /// `deadline`; then they leave the worker with their positions.
    fn drain(&mut self, which: impl Fn(&Shard) -> bool, deadline: Instant) -> Vec<Position> {
        // With checkpoints, a last one is taken once the outputs are in, and
        // awaited too.
        let mut final_checkpoint = self.effects.shared.checkpoint_topic.is_none();
        loop {
            let selected = || self.owned.iter().filter(|o| which(&o.shard));
            let waiting: usize = selected().map(|o| o.shard.offsets.in_flight()).sum();
            let writing = selected().any(|o| {
                o.shard
                    .checkpoint
                    .as_ref()
                    .is_some_and(|c| c.writing.is_some())
            });
            let left = deadline.saturating_duration_since(Instant::now());
            if waiting == 0 && !writing && !final_checkpoint {
                final_checkpoint = true;
                for o in self.owned.iter_mut().filter(|o| which(&o.shard)) {
                    if let Some(cp) = o.shard.checkpoint.as_mut() {
                        cp.due = true;
                    }
                }
                self.write_checkpoints(&which);
                continue;
            }
            if (waiting == 0 && !writing) || left.is_zero() {
                break;
            }
            let mut failed = std::mem::take(&mut self.effects.failed);
            self.effects.outbox.send_due(&mut failed);
            self.effects.failed = failed;
            self.settle_failed();
            match self.inbox.recv_timeout(left.min(Duration::from_millis(10))) {
                Ok(Inbox::Ack(ack)) => {
                    self.effects.outbox.acknowledged();
                    self.settle(ack);
                }
                Ok(other) => self.deferred.push(other),
                Err(_) => {}
            }
        }
        let mut positions = Vec::new();
        let metrics = &self.effects.shared.metrics;
        self.owned.retain_mut(|o| {
            if !which(&o.shard) {
                return true;
            }
            o.shard.offsets.advance();
            positions.push(Position {
                topic: Arc::clone(&o.shard.topic),
                partition: o.shard.partition,
                offset: o.shard.committable(),
                waiting: o.shard.offsets.in_flight(),
            });
            metrics.forget_partition(&o.shard.topic, o.shard.partition);
            false
        });
        self.partitions.set(self.owned.len() as i64);
        positions
    }

    /// Handles the sends librdkafka refused outright, like failed deliveries.
    fn settle_failed(&mut self) {
        while let Some(ack) = self.effects.failed.pop() {
            self.settle(ack);
        }
    }

    /// Completes, retries or gives up one delivery; a settled one finishes its
    /// source offset, or its part of a checkpoint.
    fn settle(&mut self, ack: Ack) {
        let Some((pending, delivered)) = self.effects.settle(ack) else {
            return;
        };
        if pending.checkpoint.is_none() {
            self.effects.outbox.settled(&pending);
        }
        if let Some((id, offset)) = pending.source {
            if let Some(o) = self.owned.iter_mut().find(|o| o.shard.id == id) {
                o.shard.offsets.finish(offset);
            }
        }
        let Some((id, generation)) = pending.checkpoint else {
            return;
        };
        let Some(o) = self.owned.iter_mut().find(|o| o.shard.id == id) else {
            return;
        };
        let Some(cp) = o.shard.checkpoint.as_mut() else {
            return;
        };
        let metrics = &self.effects.shared.metrics;
        match cp.chunk_settled(generation, delivered) {
            Some(true) => metrics.checkpoints.with_label_values(&["written"]).inc(),
            Some(false) => {
                metrics.checkpoints.with_label_values(&["failed"]).inc();
                // Every partition fails together when the topic does: one
                // budget for all, so an outage does not flood the log.
                static FAILED: Throttle = Throttle::new();
                if let Some(held_back) = FAILED.admit() {
                    tracing::warn!(topic = %o.shard.topic, partition = o.shard.partition, generation, held_back, "checkpoint not written; offsets stay at the previous one until the next succeeds");
                }
            }
            None => {}
        }
    }

    /// The current alerts and readings of every shard.
    fn view(&self) -> View {
        let mut view = View::default();
        for o in &self.owned {
            let engine = &o.shard.engine;
            view.alerts
                .extend(engine.active().into_iter().map(|t| engine.render(&t)));
            let cfg = engine.config();
            for r in engine.readings() {
                let rule = &cfg.rules[r.rule as usize];
                view.readings.push(GroupReading {
                    rule: rule.name.clone(),
                    signal: rule.signal_name(&cfg.signals).to_string(),
                    labels: engine.rule_group_labels(r.rule, r.group),
                    value: r.value,
                    risk: r.risk,
                    series: engine.series(r.rule, r.group),
                });
            }
            view.groups += o.shard.groups();
        }
        view
    }
}

/// What a worker's events cause: decoding and applying them, and sending
/// alerts and dead letters.
struct Effects {
    index: usize,
    shared: Arc<Shared>,
    /// The config new shards start with: the one at start, or the last
    /// reload's.
    cfg: Arc<Config>,
    outbox: Outbox,
    transitions: Vec<Transition>,
    /// Sends librdkafka refused outright, to be handled like failed deliveries.
    failed: Vec<Ack>,
    /// Reused buffer for the engines' settled forecasts.
    settled: Vec<PredictionOutcome>,
    /// Messages processed (for sampling the processing-time histogram).
    processed: u64,
}

impl Effects {
    /// Decodes and applies one message, sends what it caused, and accounts for it.
    fn process<M: Record>(&mut self, shard: &mut Shard, msg: &M, consumed_at: Instant) {
        let offset = msg.offset();
        if shard
            .checkpoint
            .as_ref()
            .and_then(|c| c.skip_below)
            .is_some_and(|below| offset < below)
        {
            // Applied before the restart: already in the restored state.
            self.shared.metrics.checkpoint_skipped.inc();
            return;
        }
        let payload = msg.payload().unwrap_or_default();
        let mut transitions = std::mem::take(&mut self.transitions);
        let rejected = match decode(payload) {
            Ok(event) => match shard.engine.ingest(&event, wall_ms(), &mut transitions) {
                Outcome::Applied => {
                    shard.counters.count(EventResult::Applied);
                    None
                }
                Outcome::Late => {
                    shard.counters.count(EventResult::Late);
                    None
                }
                Outcome::Refused => {
                    shard.counters.count(EventResult::Refused);
                    None
                }
                Outcome::TooFarInFuture => Some((
                    "too_far_in_future",
                    "event time is more than max_future_skew ahead of the wall clock".to_string(),
                )),
            },
            Err(e) => Some((e.reason(), e.to_string())),
        };
        if rejected.is_some() {
            shard.counters.count(EventResult::DeadLettered);
        }
        let outputs = transitions.len() as u32 + u32::from(rejected.is_some());
        if !shard.offsets.consume(offset, outputs) {
            tracing::warn!(
                topic = %shard.topic,
                partition = shard.partition,
                offset,
                "offset went backwards; not tracked"
            );
        }
        self.send_transitions(shard, Some(offset), consumed_at, &mut transitions);
        self.transitions = transitions;
        self.processed += 1;
        if self.processed % 64 == 0 {
            self.shared
                .metrics
                .processing
                .observe(consumed_at.elapsed().as_secs_f64());
        }
        if let Some((reason, error)) = rejected {
            self.dead_letter(shard, msg, reason, &error, consumed_at);
        }
    }

    fn dead_letter<M: Record>(
        &mut self,
        shard: &Shard,
        msg: &M,
        reason: &'static str,
        error: &str,
        consumed_at: Instant,
    ) {
        let offset = msg.offset();
        self.shared.metrics.dead_letter_reason(reason);
        let headers = dead_letter_headers(
            reason,
            error,
            Source {
                topic: &shard.topic,
                partition: shard.partition,
                offset,
            },
        );
        let failed = self.outbox.send_new(Box::new(Pending {
            output: Output::DeadLetters,
            topic: Arc::clone(&self.shared.dead_letter_topic),
            partition: None,
            key: msg.key().map(Arc::from),
            payload: msg.payload().map(Arc::from),
            headers: headers.to_vec(),
            source: Some((shard.id, offset)),
            caused_at: consumed_at,
            attempts: 0,
            worker: self.index,
            checkpoint: None,
        }));
        self.failed.extend(failed);
    }

    /// Renders and sends `transitions` (from `shard`) to the alerts topic and
    /// the sinks.
    fn send_transitions(
        &mut self,
        shard: &Shard,
        offset: Option<i64>,
        caused_at: Instant,
        transitions: &mut Vec<Transition>,
    ) {
        for t in transitions.drain(..) {
            let alert = shard.engine.render(&t);
            self.send_alert(shard, offset, caused_at, &alert);
        }
    }

    /// Sends one alert (of `shard`, caused by the event at `offset`) to the
    /// alerts topic and the sinks.
    fn send_alert(
        &mut self,
        shard: &Shard,
        offset: Option<i64>,
        caused_at: Instant,
        alert: &forewarn_core::Alert,
    ) {
        let payload = serde_json::to_vec(alert).expect("alerts serialize");
        tracing::info!(
            alertname = alert.labels.get("alertname").map_or("", String::as_str),
            service = alert.labels.get("service").map_or("", String::as_str),
            severity = alert.labels.get("severity").map_or("", String::as_str),
            status = alert.status,
            value = alert.annotations.get("value").map_or("", String::as_str),
            evaluated_at = %alert.evaluated_at,
            fingerprint = %alert.fingerprint,
            "alert transition"
        );
        for sink in &self.shared.sinks {
            sink(alert);
        }
        self.shared.metrics.transition(alert);
        let failed = self.outbox.send_new(Box::new(Pending {
            output: Output::Alerts,
            topic: Arc::clone(&self.shared.alerts_topic),
            partition: None,
            key: Some(Arc::from(alert.fingerprint.as_bytes())),
            payload: Some(Arc::from(payload)),
            headers: Vec::new(),
            source: offset.map(|o| (shard.id, o)),
            caused_at,
            attempts: 0,
            worker: self.index,
            checkpoint: None,
        }));
        self.failed.extend(failed);
    }

    /// Counts one delivery report, retries a failure (or gives it up after the
    /// last attempt); returns the message once settled, and whether it was
    /// delivered.
    fn settle(&mut self, ack: Ack) -> Option<(Box<Pending>, bool)> {
        let metrics = &self.shared.metrics;
        let output = ack.pending.output;
        let done = match ack.error {
            None => {
                metrics.delivered(output);
                if output == Output::Alerts {
                    metrics
                        .detection_latency
                        .observe(ack.pending.caused_at.elapsed().as_secs_f64());
                }
                return Some((ack.pending, true));
            }
            Some(error) => {
                metrics.delivery_error(output);
                let attempts = ack.pending.attempts;
                let p = match self.outbox.retry(ack.pending) {
                    None => {
                        static RETRIES: Throttle = Throttle::new();
                        if let Some(held_back) = RETRIES.admit() {
                            tracing::warn!(output = output.as_str(), %error, attempts, held_back, "delivery failed; will retry");
                        }
                        return None;
                    }
                    Some(p) => p,
                };
                if output == Output::Checkpoints {
                    // Nothing is lost: offsets stay at the last checkpoint
                    // written, and the checkpoint's own warning says so.
                    tracing::debug!(%error, attempts, topic = %p.topic, "checkpoint chunk given up");
                } else {
                    metrics.dropped(output);
                    tracing::error!(
                        output = output.as_str(),
                        %error,
                        attempts,
                        topic = %p.topic,
                        headers = ?p.headers,
                        "delivery failed on the last attempt; message dropped"
                    );
                }
                p
            }
        };
        Some((done, false))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::channel;

    use rdkafka::message::Timestamp;

    use super::*;
    use crate::memory::{MemoryQueue, NoGroup};
    use crate::output::{AckRoute, Producer};

    /// With deliveries that never settle (no broker), a worker fed only
    /// undecodable messages (each a dead letter) stops taking input once its
    /// outbox holds the bound, instead of buffering the whole backlog.
    #[test]
    fn a_worker_stops_taking_input_while_deliveries_do_not_settle() {
        let cfg = Config::parse(
            "[[signals]]\nname = \"n\"\naggregate = \"count\"\nwindow = \"1m\"\nslide = \"10s\"\n[[rules]]\nname = \"R\"\nkind = \"threshold\"\nsignal = \"n\"\nwarning = { value = 1e9 }\n",
            "test.toml",
        )
        .unwrap();
        let metrics = Metrics::new();
        let (tx, inbox) = channel::<Inbox<MemoryQueue>>();
        let route = tx.clone();
        let routes: Vec<AckRoute> = vec![Box::new(move |ack| {
            let _ = route.send(Inbox::Ack(ack));
        })];
        let producer = Arc::new(
            Producer::new(
                rdkafka::ClientConfig::new()
                    .set("bootstrap.servers", "127.0.0.1:9")
                    .set("message.timeout.ms", "600000"),
                routes,
            )
            .unwrap(),
        );
        let shared = Arc::new(Shared {
            cfg,
            metrics: metrics.clone(),
            options: Options::default(),
            alerts_topic: Arc::from("alerts"),
            dead_letter_topic: Arc::from("dead"),
            sinks: Vec::new(),
            board: Arc::new(Board::new(1)),
            commit_failures: Arc::new(AtomicU64::new(0)),
            checkpoint_topic: None,
            checkpoint_partitions: None,
        });
        let max_held = 8 << 10;
        let worker = Worker::new(
            0,
            shared,
            Arc::new(NoGroup),
            inbox,
            Outbox::new(producer, 5, max_held),
            Arc::new(AtomicI64::new(0)),
        );
        let thread = std::thread::spawn(move || worker.run());
        let messages: Vec<OwnedMessage> = (0..10_000)
            .map(|i| {
                OwnedMessage::new(
                    Some(b"not json".to_vec()),
                    None,
                    "events".into(),
                    Timestamp::NotAvailable,
                    0,
                    i,
                    None,
                )
            })
            .collect();
        let _ = tx.send(Inbox::Assign {
            topic: Arc::from("events"),
            partition: 0,
            queue: MemoryQueue::new(Arc::new(messages)),
            restored: Ok(None),
        });
        let paused = metrics.worker_paused.with_label_values(&["0"]);
        let taken = metrics.worker_messages.with_label_values(&["0"]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while paused.get() == 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(paused.get(), 1, "paused");
        let at_pause = taken.get();
        // Each dead letter holds a few hundred bytes: the bound admits dozens,
        // never the backlog. One burst may overshoot before the check.
        assert!(
            (1..=(max_held / 100) as u64 + BURST as u64).contains(&at_pause),
            "took {at_pause} of 10000"
        );
        let (reply, replies) = channel();
        let _ = tx.send(Inbox::Stop {
            deadline: Instant::now(),
            reply,
        });
        let positions = replies.recv().unwrap();
        thread.join().unwrap();
        assert_eq!(taken.get(), at_pause, "nothing more taken while paused");
        assert_eq!(
            positions[0].offset,
            Some(0),
            "nothing delivered: commit nothing"
        );
        let acc = metrics.accounting();
        assert_eq!((acc.consumed, acc.dead_lettered), (at_pause, at_pause));
    }
}
