//! The streaming path behind `forewarn run`: a consumer-group member that feeds
//! each assigned partition into its own engine shard, sends alert transitions and
//! dead letters through one idempotent producer, and commits an offset only once
//! every effect of the events before it is acknowledged by the broker.
//!
//! One thread does it all: poll a message, decode, apply, send; librdkafka's own
//! threads do the network I/O on both sides, so the engine (a few hundred
//! nanoseconds per event) overlaps with fetching. Rebalance callbacks run inside
//! `poll` on the same thread, which is why the state they touch sits behind a
//! mutex that is never held across `poll` (so it is never contended).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use forewarn_core::time::Millis;
use forewarn_core::{decode, Config, Engine, Outcome, Transition};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::client::{consumer_config, log_to_tracing, producer_config};
use crate::dead_letter::{dead_letter_headers, Source};
use crate::metrics::{Accounting, EventResult, Metrics, Output, TopicCounters};
use crate::offsets::PartitionOffsets;
use crate::output::{Ack, Outputs, Pending};
use crate::snapshot::GroupReading;
use crate::throttle::Throttle;

/// Tuning of the pipeline; the defaults suit production.
#[derive(Debug, Clone)]
pub struct Options {
    /// How often offsets that moved are committed (asynchronously).
    pub commit_interval: Duration,
    /// How often idle shards are advanced by the wall clock.
    pub tick_interval: Duration,
    /// Longest wait for outstanding deliveries on shutdown or revocation.
    pub shutdown_timeout: Duration,
    /// Delivery attempts (each bounded by `message.timeout.ms`) before an alert
    /// or dead letter is given up with an error log and
    /// `forewarn_output_dropped_total`.
    pub max_attempts: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            commit_interval: Duration::from_secs(1),
            tick_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(10),
            max_attempts: 5,
        }
    }
}

/// Why the pipeline could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// librdkafka refused the configuration or the subscription.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

/// At most one "groups refused" warning per shard per this interval.
const REFUSED_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The engine shard of one assigned partition.
struct Shard {
    /// Unique per assignment, so a delivery acknowledged after its partition was
    /// revoked (and perhaps assigned again) cannot complete the wrong offset.
    id: u64,
    engine: Engine,
    offsets: PartitionOffsets,
    counters: TopicCounters,
    /// `refused_groups` and `reclaimed_groups` of the engine at the last tick.
    refused_seen: u64,
    reclaimed_seen: u64,
    /// Entity-event outcomes of the engine at the last tick.
    entities_seen: forewarn_core::timers::EntityStats,
    /// Refusals not yet logged, and when they were last logged: a flood is
    /// reported once a minute, not on every tick.
    refused_unlogged: u64,
    refused_logged_at: Option<Instant>,
}

/// Everything the message loop and the rebalance callbacks share.
struct Core {
    cfg: Config,
    metrics: Metrics,
    options: Options,
    shards: HashMap<String, HashMap<i32, Shard>>,
    /// Shard id → (topic, partition), for acknowledgements.
    locations: HashMap<u64, (String, i32)>,
    next_id: u64,
    outputs: Outputs,
    alerts_topic: Arc<str>,
    dead_letter_topic: Arc<str>,
    transitions: Vec<Transition>,
    acks: Vec<Ack>,
    /// Reused buffer for the engines' settled forecasts.
    settled: Vec<forewarn_core::PredictionOutcome>,
    /// Set on shutdown: revocation then waits no further for deliveries.
    stopping: bool,
    /// Messages processed (for sampling the processing-time histogram).
    processed: u64,
    /// Further destinations of every rendered alert (e.g. Alertmanager).
    sinks: Vec<AlertSink>,
}

/// A further destination of every rendered alert transition; called on the
/// pipeline thread, so it must not block.
pub type AlertSink = Box<dyn Fn(&forewarn_core::Alert) + Send>;

fn wall_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

impl Core {
    fn shard(&mut self, topic: &str, partition: i32) -> &mut Shard {
        if !self
            .shards
            .get(topic)
            .is_some_and(|p| p.contains_key(&partition))
        {
            self.next_id += 1;
            let id = self.next_id;
            let shard = Shard {
                id,
                engine: Engine::new(self.cfg.clone()),
                offsets: PartitionOffsets::default(),
                counters: self.metrics.topic(topic),
                refused_seen: 0,
                entities_seen: Default::default(),
                reclaimed_seen: 0,
                refused_unlogged: 0,
                refused_logged_at: None,
            };
            self.locations.insert(id, (topic.to_string(), partition));
            self.shards
                .entry(topic.to_string())
                .or_default()
                .insert(partition, shard);
            tracing::debug!(topic, partition, shard = id, "engine shard created");
        }
        self.shards
            .get_mut(topic)
            .and_then(|p| p.get_mut(&partition))
            .expect("inserted above")
    }

    /// Decodes and applies one message, sends what it caused, and accounts for it.
    fn process(&mut self, msg: &BorrowedMessage<'_>, consumed_at: Instant) {
        let (topic, partition, offset) = (msg.topic(), msg.partition(), msg.offset());
        let payload = msg.payload().unwrap_or_default();
        let now = wall_ms();
        let mut transitions = std::mem::take(&mut self.transitions);
        let shard = self.shard(topic, partition);
        let rejected = match decode(payload) {
            Ok(event) => match shard.engine.ingest(&event, now, &mut transitions) {
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
        let id = shard.id;
        let outputs = transitions.len() as u32 + u32::from(rejected.is_some());
        if !shard.offsets.consume(offset, outputs) {
            tracing::warn!(
                topic,
                partition,
                offset,
                "offset went backwards; not tracked"
            );
        }
        self.send_transitions(id, Some(offset), consumed_at, &mut transitions);
        self.transitions = transitions;
        self.processed += 1;
        if self.processed % 64 == 0 {
            self.metrics
                .processing
                .observe(consumed_at.elapsed().as_secs_f64());
        }
        if let Some((reason, error)) = rejected {
            self.metrics.dead_letter_reason(reason);
            let headers = dead_letter_headers(
                reason,
                &error,
                Source {
                    topic,
                    partition,
                    offset,
                },
            );
            self.outputs.send(Box::new(Pending {
                output: Output::DeadLetters,
                topic: Arc::clone(&self.dead_letter_topic),
                key: msg.key().map(Arc::from),
                payload: msg.payload().map(Arc::from),
                headers: headers.to_vec(),
                source: Some((id, offset)),
                caused_at: consumed_at,
                attempts: 0,
            }));
        }
    }

    /// Renders and sends `transitions` (from the shard `id`) to the alerts topic.
    fn send_transitions(
        &mut self,
        id: u64,
        offset: Option<i64>,
        caused_at: Instant,
        transitions: &mut Vec<Transition>,
    ) {
        if transitions.is_empty() {
            return;
        }
        let Some((topic, partition)) = self.locations.get(&id) else {
            transitions.clear();
            return;
        };
        let Some(shard) = self.shards.get(topic).and_then(|p| p.get(partition)) else {
            transitions.clear();
            return;
        };
        for t in transitions.drain(..) {
            let alert = shard.engine.render(&t);
            let payload = serde_json::to_vec(&alert).expect("alerts serialize");
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
            for sink in &self.sinks {
                sink(&alert);
            }
            self.metrics.transition(
                alert.labels.get("alertname").map_or("", String::as_str),
                alert.labels.get("severity").map_or("", String::as_str),
                alert.status,
            );
            self.outputs.send(Box::new(Pending {
                output: Output::Alerts,
                topic: Arc::clone(&self.alerts_topic),
                key: Some(Arc::from(alert.fingerprint.as_bytes())),
                payload: Some(Arc::from(payload)),
                headers: Vec::new(),
                source: offset.map(|o| (id, o)),
                caused_at,
                attempts: 0,
            }));
        }
    }

    /// Serves delivery reports: completes offsets, retries failures, gives up
    /// after the last attempt.
    fn poll_outputs(&mut self, timeout: Duration) {
        let mut acks = std::mem::take(&mut self.acks);
        self.outputs.poll(timeout, &mut acks);
        for ack in acks.drain(..) {
            let output = ack.pending.output;
            let done = match ack.error {
                None => {
                    self.metrics.delivered(output);
                    if output == Output::Alerts {
                        self.metrics
                            .detection_latency
                            .observe(ack.pending.caused_at.elapsed().as_secs_f64());
                    }
                    Some(ack.pending)
                }
                Some(error) => {
                    self.metrics.delivery_error(output);
                    let attempts = ack.pending.attempts;
                    match self.outputs.retry(ack.pending) {
                        None => {
                            static RETRIES: Throttle = Throttle::new();
                            if let Some(held_back) = RETRIES.admit() {
                                tracing::warn!(output = output.as_str(), %error, attempts, held_back, "delivery failed; will retry");
                            }
                            None
                        }
                        Some(p) => {
                            self.metrics.dropped(output);
                            tracing::error!(
                                output = output.as_str(),
                                %error,
                                attempts,
                                topic = %p.topic,
                                headers = ?p.headers,
                                "delivery failed on the last attempt; message dropped"
                            );
                            Some(p)
                        }
                    }
                }
            };
            if let Some((id, offset)) = done.and_then(|p| p.source) {
                if let Some((topic, partition)) = self.locations.get(&id) {
                    if let Some(shard) = self
                        .shards
                        .get_mut(topic)
                        .and_then(|p| p.get_mut(partition))
                    {
                        shard.offsets.finish(offset);
                    }
                }
            }
        }
        self.acks = acks;
    }

    /// Idle advancement of every shard by the wall clock — only for a partition
    /// the broker confirms is caught up (`caught_up(topic, partition, next
    /// offset)`): a partition whose fetch is merely stalled is not idle, and
    /// advancing it would turn its delayed backlog into late events.
    fn tick(&mut self, caught_up: &mut dyn FnMut(&str, i32, i64) -> bool) {
        let now = wall_ms();
        let idle_after = self.cfg.time.idle_timeout;
        let at = Instant::now();
        let mut emitted: Vec<(u64, Vec<Transition>)> = Vec::new();
        for (topic, parts) in self.shards.iter_mut() {
            for (partition, shard) in parts.iter_mut() {
                let clock = shard.engine.clock();
                if clock.watermark != Millis::MIN {
                    self.metrics
                        .watermark_delay
                        .with_label_values(&[topic.as_str(), &partition.to_string()])
                        .set((now - clock.watermark) as f64 / 1000.0);
                }
                shard.engine.take_outcomes(&mut self.settled);
                for o in self.settled.drain(..) {
                    let rule = &shard.engine.config().rules[o.rule as usize].name;
                    self.metrics.prediction(rule, o.prediction);
                }
                let stats = shard.engine.stats();
                let new = stats.refused_groups - shard.refused_seen;
                self.metrics.groups_refused.inc_by(new);
                shard.refused_seen = stats.refused_groups;
                shard.refused_unlogged += new;
                let reclaimed = stats.reclaimed_groups - shard.reclaimed_seen;
                self.metrics.groups_reclaimed.inc_by(reclaimed);
                shard.reclaimed_seen = stats.reclaimed_groups;
                let seen = shard.entities_seen.by_result();
                for ((result, now), (_, before)) in stats.entities.by_result().into_iter().zip(seen)
                {
                    self.metrics
                        .entity_events
                        .with_label_values(&[result])
                        .inc_by(now - before);
                }
                if stats.entities.refused > shard.entities_seen.refused {
                    shard.refused_unlogged += stats.entities.refused - shard.entities_seen.refused;
                }
                shard.entities_seen = stats.entities;
                let log_due = shard
                    .refused_logged_at
                    .is_none_or(|t| at.duration_since(t) >= REFUSED_LOG_INTERVAL);
                if shard.refused_unlogged > 0 && log_due {
                    tracing::warn!(
                        topic = %topic,
                        partition,
                        refused = shard.refused_unlogged,
                        reclaimed_so_far = stats.reclaimed_groups,
                        max_groups = self.cfg.group_cap,
                        "events refused: max_groups reached (a flood of distinct service or label values?; idle groups are released as their windows pass) or a timer signal's max_entities open entities"
                    );
                    shard.refused_unlogged = 0;
                    shard.refused_logged_at = Some(at);
                }
            }
        }
        for (topic, parts) in self.shards.iter_mut() {
            for (partition, shard) in parts.iter_mut() {
                let last = shard.engine.clock().last_event_wall;
                if last == Millis::MIN || now - last < idle_after {
                    continue;
                }
                let Some(next) = shard.offsets.next_offset() else {
                    continue;
                };
                if !caught_up(topic, *partition, next) {
                    tracing::debug!(topic = %topic, partition, "idle but not caught up: not advancing");
                    continue;
                }
                let mut transitions = Vec::new();
                shard.engine.tick(now, &mut transitions);
                if !transitions.is_empty() {
                    emitted.push((shard.id, transitions));
                }
            }
        }
        for (id, mut transitions) in emitted {
            self.send_transitions(id, None, at, &mut transitions);
        }
    }

    /// Positions of the given shards (all when `only` is `None`), advanced.
    fn positions(&mut self, only: Option<&TopicPartitionList>) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (topic, parts) in self.shards.iter_mut() {
            for (partition, shard) in parts.iter_mut() {
                if only.is_some_and(|l| l.find_partition(topic, *partition).is_none()) {
                    continue;
                }
                shard.offsets.advance();
                if let Some(pos) = shard.offsets.position() {
                    let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(pos));
                }
            }
        }
        tpl
    }

    /// Positions that moved since the last call.
    fn moved_positions(&mut self) -> TopicPartitionList {
        let mut tpl = TopicPartitionList::new();
        for (topic, parts) in self.shards.iter_mut() {
            for (partition, shard) in parts.iter_mut() {
                if let Some(pos) = shard.offsets.advance() {
                    let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(pos));
                }
            }
        }
        tpl
    }

    /// Deliveries still outstanding for the shards in `tpl`.
    fn in_flight(&self, tpl: &TopicPartitionList) -> usize {
        tpl.elements()
            .iter()
            .filter_map(|e| {
                self.shards
                    .get(e.topic())
                    .and_then(|p| p.get(&e.partition()))
            })
            .map(|s| s.offsets.in_flight())
            .sum()
    }

    /// Waits (bounded) until the outputs of the shards in `tpl` — or of all
    /// shards — are acknowledged. Returns how many are still outstanding.
    fn drain(&mut self, tpl: Option<&TopicPartitionList>, deadline: Instant) -> usize {
        loop {
            let waiting = match tpl {
                Some(l) => self.in_flight(l),
                None => self.outputs.outstanding(),
            };
            if waiting == 0 || Instant::now() >= deadline {
                return waiting;
            }
            self.poll_outputs(Duration::from_millis(10));
        }
    }
}

/// The consumer's context: rebalance handling and librdkafka logs.
struct SourceContext {
    core: Arc<Mutex<Core>>,
    metrics: Metrics,
    /// Set when an asynchronous commit failed: the next commit sends every
    /// position, not only the ones that moved since.
    commit_failed: AtomicBool,
}

fn lock(core: &Mutex<Core>) -> MutexGuard<'_, Core> {
    // A panic while holding the lock would already have ended the run; the
    // state is still the best there is for committing.
    core.lock().unwrap_or_else(|p| p.into_inner())
}

impl ClientContext for SourceContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        log_to_tracing("consumer", level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.metrics.consumer_errors.inc();
        static ERRORS: Throttle = Throttle::new();
        if let Some(held_back) = ERRORS.admit() {
            tracing::warn!(client = "consumer", %error, reason, held_back, "kafka client error");
        }
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        for (name, topic) in &statistics.topics {
            for (id, p) in &topic.partitions {
                // librdkafka reports -1 until it knows; partition -1 is its internal queue.
                if *id >= 0 && p.consumer_lag >= 0 {
                    self.metrics
                        .consumer_lag
                        .with_label_values(&[name.as_str(), &id.to_string()])
                        .set(p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let mut core = lock(&self.core);
        let deadline = if core.stopping {
            Instant::now()
        } else {
            Instant::now() + core.options.shutdown_timeout
        };
        let waiting = core.drain(Some(revoked), deadline);
        if waiting > 0 {
            tracing::warn!(
                waiting,
                "partitions revoked with deliveries unacknowledged; their events will be re-processed by the next owner"
            );
        }
        let tpl = core.positions(Some(revoked));
        if tpl.count() > 0 {
            if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                self.metrics.commit_failures.inc();
                tracing::warn!(error = %e, "commit on revocation failed; the next owner resumes from the previous commit");
            }
        }
        for e in revoked.elements() {
            if let Some(shard) = core
                .shards
                .get_mut(e.topic())
                .and_then(|p| p.remove(&e.partition()))
            {
                core.locations.remove(&shard.id);
            }
            self.metrics.forget_partition(e.topic(), e.partition());
        }
        self.metrics.assigned_partitions.set(0);
        tracing::info!(partitions = %describe(revoked), "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.metrics.assigned_partitions.set(tpl.count() as i64);
                tracing::info!(partitions = %describe(tpl), "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => tracing::error!(error = %e, "rebalance failed"),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, offsets: &TopicPartitionList) {
        // A commit can fail for some partitions with no error on the request.
        let result = result.and_then(|()| offsets.elements().iter().try_for_each(|e| e.error()));
        if let Err(e) = result {
            self.commit_failed.store(true, Ordering::Relaxed);
            self.metrics.commit_failures.inc();
            tracing::warn!(error = %e, "offset commit failed; the next commit supersedes it");
        }
    }
}

fn describe(tpl: &TopicPartitionList) -> String {
    let parts: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| format!("{}/{}", e.topic(), e.partition()))
        .collect();
    parts.join(",")
}

/// A read-only view of the pipeline's current alerts, for the HTTP endpoint.
#[derive(Clone)]
pub struct ActiveAlerts {
    core: Arc<Mutex<Core>>,
}

impl ActiveAlerts {
    /// The config the pipeline runs.
    pub fn config(&self) -> Config {
        lock(&self.core).cfg.clone()
    }

    /// The pending and firing alerts of every shard, rendered.
    pub fn list(&self) -> Vec<forewarn_core::Alert> {
        let core = lock(&self.core);
        core.shards
            .values()
            .flat_map(|p| p.values())
            .flat_map(|shard| {
                shard
                    .engine
                    .active()
                    .into_iter()
                    .map(|t| shard.engine.render(&t))
            })
            .collect()
    }

    /// The latest value and risk of every (rule, group) of every shard.
    pub fn readings(&self) -> Vec<GroupReading> {
        let core = lock(&self.core);
        let mut out = Vec::new();
        for shard in core.shards.values().flat_map(|p| p.values()) {
            let cfg = shard.engine.config();
            for r in shard.engine.readings() {
                let rule = &cfg.rules[r.rule as usize];
                out.push(GroupReading {
                    rule: rule.name.clone(),
                    signal: rule.signal_name(&cfg.signals).to_string(),
                    labels: shard.engine.rule_group_labels(r.rule, r.group),
                    value: r.value,
                    risk: r.risk,
                    series: shard.engine.series(r.rule, r.group),
                });
            }
        }
        out
    }

    /// Groups (services, or services × `group_by` labels) tracked: per shard,
    /// the most of any signal.
    pub fn groups_watched(&self) -> usize {
        let core = lock(&self.core);
        core.shards
            .values()
            .flat_map(|p| p.values())
            .map(|s| {
                (0..s.engine.config().signals.len())
                    .map(|i| s.engine.groups(i))
                    .max()
                    .unwrap_or(0)
            })
            .sum()
    }
}

/// A consumer-group member running engine shards.
pub struct Pipeline {
    consumer: BaseConsumer<SourceContext>,
    core: Arc<Mutex<Core>>,
    metrics: Metrics,
    options: Options,
    topics: Vec<String>,
}

impl Pipeline {
    /// Creates the consumer and producer for `cfg.kafka`; nothing is consumed
    /// until [`Pipeline::run`].
    pub fn new(cfg: Config, metrics: Metrics, options: Options) -> Result<Pipeline, PipelineError> {
        let kafka = cfg.kafka.clone();
        tracing::info!(
            brokers = %kafka.brokers,
            group = %kafka.group_id,
            topics = ?kafka.topics,
            alerts_topic = %kafka.alerts_topic,
            dead_letter_topic = %kafka.dead_letter_topic,
            properties = ?kafka.redacted_properties(),
            "kafka settings"
        );
        let outputs = Outputs::new(&producer_config(&kafka), options.max_attempts)?;
        for (topic, problem) in outputs.warm_up(
            &[&kafka.alerts_topic, &kafka.dead_letter_topic],
            Duration::from_secs(5),
        ) {
            tracing::warn!(
                topic,
                problem,
                "output topic not ready; deliveries will be retried"
            );
        }
        let core = Arc::new(Mutex::new(Core {
            cfg,
            metrics: metrics.clone(),
            options: options.clone(),
            shards: HashMap::new(),
            locations: HashMap::new(),
            next_id: 0,
            outputs,
            alerts_topic: Arc::from(kafka.alerts_topic.as_str()),
            dead_letter_topic: Arc::from(kafka.dead_letter_topic.as_str()),
            transitions: Vec::new(),
            acks: Vec::new(),
            settled: Vec::new(),
            stopping: false,
            processed: 0,
            sinks: Vec::new(),
        }));
        let consumer: BaseConsumer<SourceContext> =
            consumer_config(&kafka).create_with_context(SourceContext {
                core: Arc::clone(&core),
                metrics: metrics.clone(),
                commit_failed: AtomicBool::new(false),
            })?;
        Ok(Pipeline {
            consumer,
            core,
            metrics,
            options,
            topics: kafka.topics,
        })
    }

    /// Adds a destination for every alert transition (besides the alerts topic).
    pub fn add_alert_sink(&self, sink: AlertSink) {
        lock(&self.core).sinks.push(sink);
    }

    /// A view of the current alerts that stays valid while the pipeline runs.
    pub fn active_alerts(&self) -> ActiveAlerts {
        ActiveAlerts {
            core: Arc::clone(&self.core),
        }
    }

    /// Consumes until `stop` is set, then stops consuming, waits (up to
    /// `shutdown_timeout`) for outstanding deliveries, commits and leaves the
    /// group. Returns the accounting of this run.
    pub fn run(self, stop: &AtomicBool) -> Result<Accounting, PipelineError> {
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        self.consumer.subscribe(&topics)?;
        tracing::info!(topics = ?topics, "subscribed");
        let mut last_commit = Instant::now();
        let mut last_tick = Instant::now();
        let mut since_outputs = 0u32;
        let mut commits = 0u64;
        // While deliveries are outstanding the consumer is polled with a short
        // timeout, so their reports (and offsets) are served within a millisecond
        // instead of waiting for the next message.
        let mut waiting_outputs = false;
        while !stop.load(Ordering::Relaxed) {
            let timeout = if waiting_outputs { 1 } else { 100 };
            let polled = self.consumer.poll(Duration::from_millis(timeout));
            let now = Instant::now();
            if polled.is_none() {
                self.metrics.last_poll.set(wall_ms() / 1000);
            }
            let mut core = lock(&self.core);
            let idle = match polled {
                Some(Ok(msg)) => {
                    core.process(&msg, now);
                    false
                }
                Some(Err(e)) => {
                    self.metrics.consumer_errors.inc();
                    static CONSUME_ERRORS: Throttle = Throttle::new();
                    if let Some(held_back) = CONSUME_ERRORS.admit() {
                        tracing::warn!(error = %e, held_back, "consume error");
                    }
                    true
                }
                None => true,
            };
            since_outputs += 1;
            // Delivery reports are served in batches while busy, at once when idle.
            if core.outputs.outstanding() > 0 && (idle || since_outputs >= 64) {
                core.poll_outputs(Duration::ZERO);
                since_outputs = 0;
            }
            waiting_outputs = core.outputs.outstanding() > 0;
            if now.duration_since(last_tick) >= self.options.tick_interval {
                last_tick = now;
                self.metrics.last_poll.set(wall_ms() / 1000);
                // At most a few broker round trips per tick, each bounded.
                let mut budget = 4;
                let consumer = &self.consumer;
                core.tick(&mut |topic, partition, next| {
                    if budget == 0 {
                        return false;
                    }
                    budget -= 1;
                    consumer
                        .fetch_watermarks(topic, partition, Duration::from_millis(500))
                        .is_ok_and(|(_, high)| next >= high)
                });
            }
            if now.duration_since(last_commit) >= self.options.commit_interval {
                last_commit = now;
                commits += 1;
                // Every tenth commit sends every position: it repairs an
                // asynchronous commit that failed without a report (librdkafka
                // does not always deliver one for manual commits).
                let retry = self
                    .consumer
                    .context()
                    .commit_failed
                    .swap(false, Ordering::Relaxed);
                let tpl = if retry || commits % 10 == 0 {
                    core.positions(None)
                } else {
                    core.moved_positions()
                };
                drop(core);
                if tpl.count() > 0 {
                    if let Err(e) = self.consumer.commit(&tpl, CommitMode::Async) {
                        self.consumer
                            .context()
                            .commit_failed
                            .store(true, Ordering::Relaxed);
                        self.metrics.commit_failures.inc();
                        tracing::warn!(error = %e, "offset commit failed; will retry");
                    }
                }
            }
        }
        let metrics = self.metrics.clone();
        self.shutdown();
        Ok(metrics.accounting())
    }

    fn shutdown(self) {
        let deadline = Instant::now() + self.options.shutdown_timeout;
        let mut core = lock(&self.core);
        core.stopping = true;
        tracing::info!(
            outstanding = core.outputs.outstanding(),
            "stopping: waiting for deliveries, then committing"
        );
        core.outputs.flush(Duration::from_millis(0));
        let waiting = core.drain(None, deadline);
        if waiting > 0 {
            tracing::error!(
                waiting,
                "deliveries still unacknowledged at the shutdown deadline; offsets stay before their events, which are re-processed on restart"
            );
        }
        let tpl = core.positions(None);
        drop(core);
        if tpl.count() > 0 {
            match self.consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => {
                    tracing::info!(positions = %describe_positions(&tpl), "offsets committed")
                }
                Err(e) => {
                    self.metrics.commit_failures.inc();
                    tracing::error!(error = %e, "final offset commit failed");
                }
            }
        }
        // Dropping the consumer leaves the group (the revoke callback runs once more).
        drop(self.consumer);
        let a = self.metrics.accounting();
        tracing::info!(
            consumed = a.consumed,
            applied = a.applied,
            dead_lettered = a.dead_lettered,
            late = a.late,
            refused = a.refused,
            alerts_delivered = a.alerts_delivered,
            dead_letters_delivered = a.dead_letters_delivered,
            dropped = a.dropped,
            balanced = a.balanced(),
            "stopped"
        );
    }
}

fn describe_positions(tpl: &TopicPartitionList) -> String {
    let parts: Vec<String> = tpl
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => format!("{}/{}@{o}", e.topic(), e.partition()),
            other => format!("{}/{}@{other:?}", e.topic(), e.partition()),
        })
        .collect();
    parts.join(",")
}
