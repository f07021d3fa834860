//! The streaming path behind `forewarn run`: a consumer-group member whose
//! assigned partitions are spread over worker threads ([`crate::worker`]), one
//! idempotent producer shared by them ([`crate::output`]), and an offset
//! discipline that commits an offset only once every effect of the events before
//! it is acknowledged by the broker.
//!
//! Threads and what flows between them, all one way:
//! - the **consumer thread** (the caller of [`Pipeline::run`]) polls the
//!   consumer's main queue: rebalances, errors, statistics, commit reports. On an
//!   assignment it splits each partition's queue off and hands it to worker
//!   `partition % workers`; on a revocation it asks the owners to drain, and
//!   commits the positions they return;
//! - each **worker** reads its partitions' queues, runs their engines, sends
//!   alerts and dead letters, and commits its own positions;
//! - the **acknowledgement thread** polls the producer, and librdkafka's
//!   delivery callback hands each report to its worker's inbox;
//! - the HTTP endpoint reads views the workers publish on request
//!   ([`crate::view`]), never a worker's state.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use forewarn_core::config::kafka::KafkaConfig;
use forewarn_core::Config;
use rdkafka::consumer::base_consumer::PartitionQueue;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::checkpoint::{self, Restored};
use crate::client::{consumer_config, log_to_tracing, producer_config};
use crate::metrics::{Accounting, Metrics};
pub use crate::options::Options;
use crate::output::{AckRoute, Outbox, Producer};
use crate::reload::{CurrentConfig, Reloader};
use crate::share::Taken;
use crate::throttle::Throttle;
use crate::view::{Board, View};
pub use crate::worker::AlertSink;
use crate::worker::{Inbox, Position, Shared, Worker};

/// Why the pipeline could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// librdkafka refused the configuration or the subscription.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

/// librdkafka's default `session.timeout.ms`.
const DEFAULT_SESSION_TIMEOUT_MS: u64 = 45_000;

/// How long a view request waits for every worker to answer.
const VIEW_TIMEOUT: Duration = Duration::from_secs(2);

fn wall_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

type Consumer_ = BaseConsumer<SourceContext>;

/// The consumer's context: rebalance handling, commit reports and librdkafka logs.
pub struct SourceContext {
    metrics: Metrics,
    /// Incremented on every failed commit (see [`Shared::commit_failures`]).
    commit_failures: Arc<AtomicU64>,
    /// The consumer itself, to split partition queues off on assignment.
    consumer: OnceLock<Weak<Consumer_>>,
    /// Each worker's inbox.
    workers: Vec<Sender<Inbox<PartitionQueue<SourceContext>>>>,
    /// Longest wait for a revoked partition's outputs.
    drain_timeout: Duration,
    /// Set on shutdown: a revocation then waits no further.
    stopping: AtomicBool,
    /// Where checkpoints are read on assignment, when they are on: the
    /// topic, the consumer group (the key prefix) and the reader's settings.
    checkpoints: Option<(String, String, rdkafka::ClientConfig)>,
}

/// Longest a checkpoint read on assignment may take.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(30);

impl SourceContext {
    fn worker_for(&self, partition: i32) -> usize {
        partition.unsigned_abs() as usize % self.workers.len()
    }

    /// Reads the checkpoints of the assigned partitions (one scan of the
    /// checkpoint topic for all of them), in `tpl` order.
    fn read_checkpoints(
        &self,
        tpl: &TopicPartitionList,
    ) -> Vec<Result<Option<Box<Restored>>, String>> {
        let n = tpl.count();
        let Some((topic, group, reader)) = &self.checkpoints else {
            return (0..n).map(|_| Ok(None)).collect();
        };
        let started = Instant::now();
        let wanted: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| {
                let prefix = checkpoint::key_prefix(group, e.topic(), e.partition());
                (prefix, e.partition())
            })
            .collect();
        let found = match checkpoint::read(reader, topic, &wanted, RESTORE_TIMEOUT) {
            Ok(found) => found
                .into_iter()
                .map(|r| r.map(|o| o.map(Box::new)).map_err(|e| e.to_string()))
                .collect(),
            Err(e) => (0..n).map(|_| Err(e.to_string())).collect(),
        };
        self.metrics
            .restore_seconds
            .set(started.elapsed().as_secs_f64());
        found
    }

    /// Reads the assigned partitions' checkpoints, then splits each one's
    /// queue off and hands both to its worker.
    fn assign(&self, tpl: &TopicPartitionList) {
        let Some(consumer) = self.consumer.get().and_then(Weak::upgrade) else {
            tracing::error!("assignment before the consumer was ready; partitions not consumed");
            return;
        };
        let mut restored = self.read_checkpoints(tpl).into_iter();
        for e in tpl.elements() {
            let restored = restored.next().unwrap_or(Ok(None));
            let (topic, partition) = (e.topic(), e.partition());
            let Some(mut queue) = consumer.split_partition_queue(topic, partition) else {
                tracing::error!(
                    topic,
                    partition,
                    "cannot split the partition's queue; its messages reach the main queue"
                );
                continue;
            };
            let inbox = self.workers[self.worker_for(partition)].clone();
            let wake = inbox.clone();
            queue.set_nonempty_callback(move || {
                let _ = wake.send(Inbox::Wake);
            });
            let _ = inbox.send(Inbox::Assign {
                topic: Arc::from(topic),
                partition,
                queue,
                restored,
            });
        }
    }

    /// Asks the owners of the revoked partitions to drain them (until the
    /// deadline) and returns their final positions.
    fn revoke(&self, revoked: &TopicPartitionList) -> Vec<Position> {
        let deadline = if self.stopping.load(Ordering::Relaxed) {
            Instant::now()
        } else {
            Instant::now() + self.drain_timeout
        };
        let mut by_worker: Vec<Vec<(Arc<str>, i32)>> = vec![Vec::new(); self.workers.len()];
        for e in revoked.elements() {
            by_worker[self.worker_for(e.partition())].push((Arc::from(e.topic()), e.partition()));
        }
        let (reply, replies) = channel();
        let mut asked = 0;
        for (w, partitions) in by_worker.into_iter().enumerate() {
            if partitions.is_empty() {
                continue;
            }
            let sent = self.workers[w].send(Inbox::Revoke {
                partitions,
                deadline,
                reply: reply.clone(),
            });
            asked += usize::from(sent.is_ok());
        }
        collect(&replies, asked, deadline)
    }
}

/// Up to `n` replies of positions, waiting a little past `deadline` (a worker
/// may be finishing a batch when asked).
fn collect(replies: &Receiver<Vec<Position>>, n: usize, deadline: Instant) -> Vec<Position> {
    let give_up = deadline + Duration::from_secs(2);
    let mut positions = Vec::new();
    for _ in 0..n {
        match replies.recv_timeout(give_up.saturating_duration_since(Instant::now())) {
            Ok(p) => positions.extend(p),
            Err(_) => {
                tracing::error!(
                    "a worker did not answer in time; its partitions resume from their last commit"
                );
                break;
            }
        }
    }
    positions
}

/// The positions as a list to commit, and how many outputs were still waiting.
fn to_commit(positions: &[Position]) -> (TopicPartitionList, usize) {
    let mut tpl = TopicPartitionList::new();
    let mut waiting = 0;
    for p in positions {
        waiting += p.waiting;
        if let Some(offset) = p.offset {
            let _ = tpl.add_partition_offset(&p.topic, p.partition, Offset::Offset(offset));
        }
    }
    (tpl, waiting)
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
    fn pre_rebalance(&self, consumer: &Consumer_, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        let (tpl, waiting) = to_commit(&self.revoke(revoked));
        if waiting > 0 {
            tracing::warn!(
                waiting,
                "partitions revoked with deliveries unacknowledged; their events will be re-processed by the next owner"
            );
        }
        if tpl.count() > 0 {
            if let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
                self.metrics.commit_failures.inc();
                tracing::warn!(error = %e, "commit on revocation failed; the next owner resumes from the previous commit");
            }
        }
        for e in revoked.elements() {
            self.metrics.forget_partition(e.topic(), e.partition());
        }
        self.metrics.assigned_partitions.set(0);
        tracing::info!(partitions = %describe(revoked), "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &Consumer_, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.assign(tpl);
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
            self.commit_failures.fetch_add(1, Ordering::Relaxed);
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
    cfg: CurrentConfig,
    board: Arc<Board>,
}

impl ActiveAlerts {
    /// The config the pipeline runs.
    pub fn config(&self) -> Config {
        let current = self.cfg.read().unwrap_or_else(|p| p.into_inner());
        (**current).clone()
    }

    /// Every worker's current view, merged (each worker answers between two
    /// batches of messages; one that does not within 2 s contributes its last).
    pub fn view(&self) -> View {
        self.board.read(VIEW_TIMEOUT)
    }

    /// The pending and firing alerts of every shard, rendered.
    pub fn list(&self) -> Vec<forewarn_core::Alert> {
        self.view().alerts
    }

    /// Groups (services, or services × `group_by` labels) tracked: per shard,
    /// the most of any signal.
    pub fn groups_watched(&self) -> usize {
        self.view().groups
    }

    /// Distinct services some rule has a reading for.
    pub fn services_scored(&self) -> usize {
        let view = self.view();
        let services: std::collections::HashSet<&str> = view
            .readings
            .iter()
            .filter_map(|r| r.labels.first().map(|l| l.1.as_str()))
            .collect();
        services.len()
    }
}

/// A consumer-group member running engine shards on worker threads.
pub struct Pipeline {
    consumer: Arc<Consumer_>,
    producer: Arc<Producer>,
    inboxes: Vec<Receiver<Inbox<PartitionQueue<SourceContext>>>>,
    cfg: CurrentConfig,
    board: Arc<Board>,
    sinks: Mutex<Vec<AlertSink>>,
    commit_failures: Arc<AtomicU64>,
    metrics: Metrics,
    options: Options,
    topics: Vec<String>,
    /// The checkpoint topic's partition count at start-up, if known.
    checkpoint_partitions: Option<i32>,
}

/// The consumer's session timeout, as configured or librdkafka's default.
fn session_timeout(kafka: &KafkaConfig) -> Duration {
    let ms = kafka
        .properties
        .get("session.timeout.ms")
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SESSION_TIMEOUT_MS);
    Duration::from_millis(ms)
}

/// How long a revocation may wait for outputs: the shutdown timeout, but at
/// most half the session timeout, so a member draining its revoked partitions
/// never holds up the group long enough to be expelled from it.
fn revocation_deadline(kafka: &KafkaConfig, shutdown_timeout: Duration) -> Duration {
    let session = session_timeout(kafka);
    if shutdown_timeout < session / 2 {
        return shutdown_timeout;
    }
    tracing::warn!(
        shutdown_timeout_ms = shutdown_timeout.as_millis() as u64,
        session_timeout_ms = session.as_millis() as u64,
        "revocations wait for outputs at most half the session timeout, not the whole shutdown timeout"
    );
    session / 2
}

impl Pipeline {
    /// Creates the consumer and producer for `cfg.kafka`; nothing is consumed
    /// until [`Pipeline::run`].
    pub fn new(
        cfg: Config,
        metrics: Metrics,
        mut options: Options,
    ) -> Result<Pipeline, PipelineError> {
        options.workers = options.workers.max(1);
        let drain_timeout = revocation_deadline(&cfg.kafka, options.shutdown_timeout);
        let kafka = cfg.kafka.clone();
        tracing::info!(
            brokers = %kafka.brokers,
            group = %kafka.group_id,
            topics = ?kafka.topics,
            alerts_topic = %kafka.alerts_topic,
            dead_letter_topic = %kafka.dead_letter_topic,
            properties = ?kafka.redacted_properties(),
            workers = options.workers,
            "kafka settings"
        );
        let (senders, inboxes): (Vec<_>, Vec<_>) = (0..options.workers).map(|_| channel()).unzip();
        let routes: Vec<AckRoute> = senders
            .iter()
            .map(|tx: &Sender<Inbox<PartitionQueue<SourceContext>>>| {
                let tx = tx.clone();
                Box::new(move |ack| {
                    let _ = tx.send(Inbox::Ack(ack));
                }) as AckRoute
            })
            .collect();
        let producer = Arc::new(Producer::new(&producer_config(&kafka), routes)?);
        for (topic, problem) in producer.warm_up(
            &[&kafka.alerts_topic, &kafka.dead_letter_topic],
            Duration::from_secs(5),
        ) {
            tracing::warn!(
                topic,
                problem,
                "output topic not ready; deliveries will be retried"
            );
        }
        let mut checkpoint_partitions = None;
        if let Some(topic) = &kafka.checkpoint_topic {
            checkpoint_partitions = producer.partition_count(topic, Duration::from_secs(5));
            // Offsets commit only up to an acknowledged checkpoint, so a
            // missing topic stalls commits: say so before the first write.
            for (topic, problem) in producer.warm_up(&[topic], Duration::from_secs(5)) {
                tracing::error!(
                    topic,
                    problem,
                    "checkpoint topic not ready: offsets are not committed until a checkpoint is written; create it with cleanup.policy=compact, or remove [kafka] checkpoint_topic"
                );
            }
        }
        let commit_failures = Arc::new(AtomicU64::new(0));
        let board = Arc::new(Board::new(options.workers));
        board.set_wakers(
            senders
                .iter()
                .map(|tx| {
                    let tx = tx.clone();
                    Box::new(move || {
                        let _ = tx.send(Inbox::Wake);
                    }) as crate::view::Waker
                })
                .collect(),
        );
        let consumer: Arc<Consumer_> = Arc::new(
            consumer_config(&kafka).create_with_context(SourceContext {
                metrics: metrics.clone(),
                commit_failures: Arc::clone(&commit_failures),
                consumer: OnceLock::new(),
                workers: senders,
                drain_timeout,
                stopping: AtomicBool::new(false),
                checkpoints: kafka
                    .checkpoint_topic
                    .clone()
                    .map(|t| (t, kafka.group_id.clone(), consumer_config(&kafka))),
            })?,
        );
        let _ = consumer.context().consumer.set(Arc::downgrade(&consumer));
        Ok(Pipeline {
            consumer,
            producer,
            inboxes,
            cfg: Arc::new(std::sync::RwLock::new(Arc::new(cfg))),
            board,
            sinks: Mutex::new(Vec::new()),
            commit_failures,
            metrics,
            options,
            topics: kafka.topics,
            checkpoint_partitions,
        })
    }

    /// Adds a destination for every alert transition (besides the alerts topic).
    pub fn add_alert_sink(&self, sink: AlertSink) {
        self.sinks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(sink);
    }

    /// A view of the current alerts that stays valid while the pipeline runs.
    pub fn active_alerts(&self) -> ActiveAlerts {
        ActiveAlerts {
            cfg: Arc::clone(&self.cfg),
            board: Arc::clone(&self.board),
        }
    }

    /// Replaces the running config (see [`crate::reload`]), from any thread,
    /// for as long as the pipeline runs.
    pub fn reloader(&self) -> Reloader<PartitionQueue<SourceContext>> {
        Reloader::new(
            Arc::clone(&self.cfg),
            self.consumer.context().workers.clone(),
            self.metrics.clone(),
        )
    }

    /// Consumes until `stop` is set, then stops consuming, waits (up to
    /// `shutdown_timeout`) for outstanding deliveries, commits and leaves the
    /// group. Returns the accounting of this run.
    pub fn run(mut self, stop: &AtomicBool) -> Result<Accounting, PipelineError> {
        let cfg = Arc::clone(&self.cfg.read().unwrap_or_else(|p| p.into_inner()));
        let shared = Arc::new(Shared {
            cfg: (*cfg).clone(),
            metrics: self.metrics.clone(),
            options: self.options.clone(),
            alerts_topic: Arc::from(cfg.kafka.alerts_topic.as_str()),
            dead_letter_topic: Arc::from(cfg.kafka.dead_letter_topic.as_str()),
            sinks: std::mem::take(&mut *self.sinks.lock().unwrap_or_else(|p| p.into_inner())),
            board: Arc::clone(&self.board),
            commit_failures: Arc::clone(&self.commit_failures),
            checkpoint_topic: cfg.kafka.checkpoint_topic.as_deref().map(Arc::from),
            checkpoint_partitions: self.checkpoint_partitions,
        });
        let stop_acks = Arc::new(AtomicBool::new(false));
        let acks = {
            let (producer, stop) = (Arc::clone(&self.producer), Arc::clone(&stop_acks));
            std::thread::Builder::new()
                .name("forewarn-acks".into())
                .spawn(move || producer.serve_acks(&stop))
                .expect("spawn the acknowledgement thread")
        };
        let mut heartbeats = Vec::new();
        let mut workers = Vec::new();
        for (index, inbox) in std::mem::take(&mut self.inboxes).into_iter().enumerate() {
            let heartbeat = Arc::new(AtomicI64::new(wall_secs()));
            heartbeats.push(Arc::clone(&heartbeat));
            let worker = Worker::new(
                index,
                Arc::clone(&shared),
                Arc::clone(&self.consumer),
                inbox,
                Outbox::new(
                    Arc::clone(&self.producer),
                    self.options.max_attempts,
                    self.options.max_outstanding_bytes,
                ),
                heartbeat,
            );
            workers.push(
                std::thread::Builder::new()
                    .name(format!("forewarn-worker-{index}"))
                    .spawn(move || worker.run())
                    .expect("spawn a worker thread"),
            );
        }
        let mut taken = self.start_consuming(workers.len())?;
        while !stop.load(Ordering::Relaxed) {
            if let Some(taken) = &mut taken {
                self.take_share(taken);
            }
            self.poll_main_queue();
            // Ready while this thread and every worker keep moving.
            let slowest = heartbeats
                .iter()
                .map(|h| h.load(Ordering::Relaxed))
                .min()
                .unwrap_or(i64::MAX);
            self.metrics.last_poll.set(slowest.min(wall_secs()));
        }
        self.shutdown(workers);
        stop_acks.store(true, Ordering::Relaxed);
        let _ = acks.join();
        let metrics = self.metrics.clone();
        log_summary(&metrics.accounting());
        drop(self);
        Ok(metrics.accounting())
    }

    /// Subscribes to the topics as a consumer-group member, or, with a fixed
    /// share, returns what it has taken (nothing yet: the loop takes it).
    fn start_consuming(&self, workers: usize) -> Result<Option<Taken>, PipelineError> {
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        if let Some(share) = self.options.share {
            tracing::info!(topics = ?topics, workers, %share, "taking a fixed share of the partitions, without group rebalances");
            return Ok(Some(Taken::new(share)));
        }
        self.consumer.subscribe(&topics)?;
        tracing::info!(topics = ?topics, workers, "subscribed");
        Ok(None)
    }

    /// When due, looks up the topics' partitions and assigns those of the
    /// share not taken yet, as a rebalance would (checkpoints read first).
    fn take_share(&self, taken: &mut Taken) {
        if !taken.look_due(Instant::now()) {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for topic in &self.topics {
            match partition_ids(&self.consumer, topic) {
                Ok(ids) => {
                    for p in taken.take(topic, ids) {
                        tpl.add_partition(topic, p);
                    }
                }
                Err(problem) => {
                    static NOT_READY: Throttle = Throttle::new();
                    if let Some(held_back) = NOT_READY.admit() {
                        tracing::warn!(
                            topic,
                            problem,
                            held_back,
                            "cannot list the topic's partitions; looking again shortly"
                        );
                    }
                }
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = self.consumer.incremental_assign(&tpl) {
            tracing::error!(error = %e, partitions = %describe(&tpl), "cannot assign the share's partitions; trying again shortly");
            for e in tpl.elements() {
                taken.release(e.topic(), e.partition());
            }
            return;
        }
        self.consumer.context().assign(&tpl);
        self.metrics.assigned_partitions.set(taken.count() as i64);
        tracing::info!(partitions = %describe(&tpl), share = %taken.share, "partitions assigned");
    }

    /// Serves rebalances and reports; a message here was fetched before its
    /// partition's queue was split off, and goes to the partition's worker.
    fn poll_main_queue(&self) {
        match self.consumer.poll(Duration::from_millis(100)) {
            Some(Ok(msg)) => {
                let ctx = self.consumer.context();
                let inbox = &ctx.workers[ctx.worker_for(msg.partition())];
                let _ = inbox.send(Inbox::Stray(msg.detach()));
            }
            Some(Err(e)) => {
                self.metrics.consumer_errors.inc();
                static CONSUME_ERRORS: Throttle = Throttle::new();
                if let Some(held_back) = CONSUME_ERRORS.admit() {
                    tracing::warn!(error = %e, held_back, "consume error");
                }
            }
            None => {}
        }
    }

    /// Stops every worker (each drains its partitions until the deadline),
    /// commits their positions, and leaves the views as they were.
    fn shutdown(&self, workers: Vec<std::thread::JoinHandle<()>>) {
        let deadline = Instant::now() + self.options.shutdown_timeout;
        let ctx = self.consumer.context();
        ctx.stopping.store(true, Ordering::Relaxed);
        tracing::info!("stopping: waiting for deliveries, then committing");
        self.producer.flush(Duration::ZERO);
        let (reply, replies) = channel();
        let asked = ctx
            .workers
            .iter()
            .filter(|w| {
                w.send(Inbox::Stop {
                    deadline,
                    reply: reply.clone(),
                })
                .is_ok()
            })
            .count();
        let (tpl, waiting) = to_commit(&collect(&replies, asked, deadline));
        for w in workers {
            if w.join().is_err() {
                tracing::error!("a worker panicked");
            }
        }
        self.board.close();
        if waiting > 0 {
            tracing::error!(
                waiting,
                "deliveries still unacknowledged at the shutdown deadline; offsets stay before their events, which are re-processed on restart"
            );
        }
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
    }
}

/// The partition ids of `topic`, from the broker's metadata.
fn partition_ids(consumer: &Consumer_, topic: &str) -> Result<Vec<i32>, String> {
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let t = md.topics().first().ok_or("no metadata for the topic")?;
    if let Some(e) = t.error() {
        return Err(rdkafka::types::RDKafkaErrorCode::from(e).to_string());
    }
    Ok(t.partitions().iter().map(|p| p.id()).collect())
}

fn log_summary(a: &Accounting) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revocation_waits_at_most_half_the_session_timeout() {
        let mut kafka = KafkaConfig::default();
        let ten = Duration::from_secs(10);
        assert_eq!(
            revocation_deadline(&kafka, ten),
            ten,
            "default session 45 s"
        );
        kafka
            .properties
            .insert("session.timeout.ms".into(), "6000".into());
        assert_eq!(revocation_deadline(&kafka, ten), Duration::from_secs(3));
    }
}
