//! The producer for alerts and dead letters: one idempotent librdkafka producer
//! shared by every worker, with forewarn's own bounded retry on top of
//! librdkafka's (each attempt is bounded by `message.timeout.ms`).
//!
//! Every message sent carries a [`Pending`] record as its delivery opaque, so the
//! acknowledgement says which worker and partition offset it completes. A
//! dedicated thread polls the producer; librdkafka's delivery callback hands each
//! acknowledgement to its worker's route (a channel), so a worker never polls
//! the producer and never takes a lock shared with other workers. Each worker's
//! [`Outbox`] counts what it has in flight and schedules its own retries.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer as _, ProducerContext};
use rdkafka::ClientContext;

use crate::client::log_to_tracing;
use crate::throttle::Throttle;

/// Which producer output a delivery belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Alert transitions to the alerts topic.
    Alerts,
    /// Rejected events to the dead-letter topic.
    DeadLetters,
    /// Chunks of partition state to the checkpoint topic.
    Checkpoints,
}

impl Output {
    /// The `output` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Output::Alerts => "alerts",
            Output::DeadLetters => "dead_letters",
            Output::Checkpoints => "checkpoints",
        }
    }
}

/// One message on its way to the broker, and what its acknowledgement completes.
#[derive(Debug)]
pub struct Pending {
    /// Alerts or dead letters.
    pub output: Output,
    /// Destination topic.
    pub topic: Arc<str>,
    /// Message key.
    pub key: Option<Arc<[u8]>>,
    /// The partition to write to; `None`: the key's hash chooses.
    pub partition: Option<i32>,
    /// Message value.
    pub payload: Option<Arc<[u8]>>,
    /// Headers (dead letters).
    pub headers: Vec<(&'static str, String)>,
    /// The shard (unique per assignment of a partition) and source offset whose
    /// commit waits for this delivery; `None` for output not tied to an event
    /// (idle advancement).
    pub source: Option<(u64, i64)>,
    /// When the event that caused it was consumed.
    pub caused_at: Instant,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// The worker whose inbox gets the acknowledgement.
    pub worker: usize,
    /// For a checkpoint chunk: the shard and the checkpoint's generation.
    pub checkpoint: Option<(u64, u64)>,
}

/// A delivery report.
#[derive(Debug)]
pub struct Ack {
    /// What was sent.
    pub pending: Box<Pending>,
    /// Why it failed, if it did.
    pub error: Option<KafkaError>,
}

/// Where the acknowledgements of one worker go.
pub type AckRoute = Box<dyn Fn(Ack) + Send + Sync>;

/// Routes delivery reports to their workers; librdkafka calls it from
/// [`BaseProducer::poll`] on the polling thread.
pub struct OutputContext {
    routes: Vec<AckRoute>,
}

impl ClientContext for OutputContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, message: &str) {
        log_to_tracing("producer", level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        static ERRORS: Throttle = Throttle::new();
        if let Some(held_back) = ERRORS.admit() {
            tracing::warn!(client = "producer", %error, reason, held_back, "kafka client error");
        }
    }
}

impl ProducerContext for OutputContext {
    type DeliveryOpaque = Box<Pending>;

    fn delivery(&self, result: &DeliveryResult<'_>, pending: Box<Pending>) {
        let error = result.as_ref().err().map(|(e, _)| e.clone());
        if let Some(route) = self.routes.get(pending.worker) {
            route(Ack { pending, error });
        }
    }
}

/// The alert and dead-letter producer, shared by the workers.
pub struct Producer {
    inner: BaseProducer<OutputContext>,
}

impl Producer {
    /// A producer from `config` (forewarn's settings already applied) whose
    /// acknowledgements for worker `i` go to `routes[i]`.
    pub fn new(config: &ClientConfig, routes: Vec<AckRoute>) -> Result<Producer, KafkaError> {
        Ok(Producer {
            inner: config.create_with_context(OutputContext { routes })?,
        })
    }

    /// Serves delivery reports until `stop` is set (run on its own thread): each
    /// report reaches its worker as soon as librdkafka has it.
    pub fn serve_acks(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::Relaxed) {
            self.inner.poll(Duration::from_millis(100));
        }
        self.inner.poll(Duration::ZERO);
    }

    /// Connects to the cluster and checks that each of `topics` exists, so the
    /// first alert does not pay for connection set-up and a missing topic is
    /// reported at start-up. Returns, per topic, what is wrong with it.
    pub fn warm_up(&self, topics: &[&str], timeout: Duration) -> Vec<(String, String)> {
        let md = match self.inner.client().fetch_metadata(None, timeout) {
            Ok(md) => md,
            Err(e) => {
                return topics
                    .iter()
                    .map(|t| (t.to_string(), e.to_string()))
                    .collect()
            }
        };
        topics
            .iter()
            .filter_map(|topic| {
                let problem = match md.topics().iter().find(|t| t.name() == *topic) {
                    None => "no such topic (it is created on first write only if the cluster auto-creates topics)".to_string(),
                    Some(t) => match t.error() {
                        Some(e) => RDKafkaErrorCode::from(e).to_string(),
                        None if t.partitions().is_empty() => "topic has no partitions".into(),
                        None => return None,
                    },
                };
                Some((topic.to_string(), problem))
            })
            .collect()
    }

    /// How many partitions `topic` has, from the broker's metadata (`None`
    /// when it cannot be read within `timeout` or the topic does not exist).
    pub fn partition_count(&self, topic: &str, timeout: Duration) -> Option<i32> {
        let md = self
            .inner
            .client()
            .fetch_metadata(Some(topic), timeout)
            .ok()?;
        let t = md.topics().iter().find(|t| t.name() == topic)?;
        let n = t.partitions().len() as i32;
        (t.error().is_none() && n > 0).then_some(n)
    }

    /// Asks librdkafka to send everything queued now (used before shutdown).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.inner.flush(timeout);
    }
}

/// Backoff before attempt `n + 1`: 100 ms doubling to 10 s.
fn backoff(attempts: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempts.min(7))).min(Duration::from_secs(10))
}

/// One worker's side of the producer: what it has in flight and what waits
/// for another attempt.
pub struct Outbox {
    producer: Arc<Producer>,
    /// Failed deliveries waiting for their next attempt, in due order.
    retries: VecDeque<(Instant, Box<Pending>)>,
    /// Sent, not yet acknowledged.
    in_flight: usize,
    /// Attempts before a delivery is given up.
    max_attempts: u32,
    /// Bytes of the messages not yet settled (delivered or given up).
    held: usize,
    /// Above this many held bytes the outbox is full: its worker stops taking
    /// messages until deliveries settle (backpressure).
    max_held: usize,
}

/// What a message holds in memory until it is settled.
fn size_of(p: &Pending) -> usize {
    std::mem::size_of::<Pending>()
        + p.key.as_ref().map_or(0, |k| k.len())
        + p.payload.as_ref().map_or(0, |v| v.len())
        + p.headers.iter().map(|(_, v)| v.len() + 32).sum::<usize>()
}

impl Outbox {
    /// A worker's outbox on the shared `producer`, full above `max_held` bytes.
    pub fn new(producer: Arc<Producer>, max_attempts: u32, max_held: usize) -> Outbox {
        Outbox {
            producer,
            retries: VecDeque::new(),
            in_flight: 0,
            max_attempts: max_attempts.max(1),
            held: 0,
            max_held,
        }
    }

    /// Sends a new message (see [`Outbox::send`]), holding its bytes until
    /// [`Outbox::settled`].
    pub fn send_new(&mut self, pending: Box<Pending>) -> Option<Ack> {
        self.held += size_of(&pending);
        self.send(pending)
    }

    /// Releases a message delivered or given up.
    pub fn settled(&mut self, pending: &Pending) {
        self.held = self.held.saturating_sub(size_of(pending));
    }

    /// Whether the unsettled messages exceed the bound: take no more input.
    pub fn is_full(&self) -> bool {
        self.held > self.max_held
    }

    /// Bytes held by unsettled messages.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Sends `pending` (now, or as soon as librdkafka's queue has room). A
    /// message librdkafka refuses outright (e.g. the topic is not writable) is
    /// returned as a failed attempt, to be handled like a failed delivery.
    pub fn send(&mut self, mut pending: Box<Pending>) -> Option<Ack> {
        pending.attempts += 1;
        let topic = Arc::clone(&pending.topic);
        let key = pending.key.clone();
        let partition = pending.partition;
        let payload = pending.payload.clone();
        let pending_headers_empty = pending.headers.is_empty();
        let mut headers = OwnedHeaders::new_with_capacity(pending.headers.len());
        for (k, v) in &pending.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_str()),
            });
        }
        let mut record: BaseRecord<'_, [u8], [u8], Box<Pending>> =
            BaseRecord::with_opaque_to(&topic, pending);
        if let Some(k) = key.as_deref() {
            record = record.key(k);
        }
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Some(p) = payload.as_deref() {
            record = record.payload(p);
        }
        if !pending_headers_empty {
            record = record.headers(headers);
        }
        match self.producer.inner.send(record) {
            Ok(()) => {
                self.in_flight += 1;
                None
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                // Not an attempt: librdkafka's queue is full; try again shortly.
                let mut pending = record.delivery_opaque;
                pending.attempts -= 1;
                self.retries
                    .push_back((Instant::now() + Duration::from_millis(10), pending));
                None
            }
            Err((error, record)) => Some(Ack {
                pending: record.delivery_opaque,
                error: Some(error),
            }),
        }
    }

    /// Records that a message this outbox sent was acknowledged (or failed).
    pub fn acknowledged(&mut self) {
        self.in_flight = self.in_flight.saturating_sub(1);
    }

    /// Schedules another attempt after a failed delivery, or returns the message
    /// when it has had its last attempt.
    pub fn retry(&mut self, pending: Box<Pending>) -> Option<Box<Pending>> {
        if pending.attempts >= self.max_attempts {
            return Some(pending);
        }
        let due = Instant::now() + backoff(pending.attempts);
        self.retries.push_back((due, pending));
        None
    }

    /// Sends the retries that are due; appends refusals to `failed`.
    pub fn send_due(&mut self, failed: &mut Vec<Ack>) {
        let now = Instant::now();
        while self.retries.front().is_some_and(|(due, _)| *due <= now) {
            let (_, p) = self.retries.pop_front().expect("checked");
            failed.extend(self.send(p));
        }
    }

    /// When the next retry is due, if any.
    pub fn next_due(&self) -> Option<Instant> {
        self.retries.front().map(|r| r.0)
    }

    /// Messages not yet acknowledged or given up (in flight or waiting to retry).
    pub fn outstanding(&self) -> usize {
        self.in_flight + self.retries.len()
    }
}
