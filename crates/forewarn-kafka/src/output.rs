//! The producer for alerts and dead letters: one idempotent librdkafka producer,
//! polled by the pipeline's thread, with forewarn's own bounded retry on top of
//! librdkafka's (each attempt is bounded by `message.timeout.ms`).
//!
//! Every message sent carries a [`Pending`] record as its delivery opaque, so the
//! acknowledgement says which partition offset it completes; the pipeline turns
//! acknowledgements into committable offsets.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
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
}

impl Output {
    /// The `output` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Output::Alerts => "alerts",
            Output::DeadLetters => "dead_letters",
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
}

/// A delivery report.
#[derive(Debug)]
pub struct Ack {
    /// What was sent.
    pub pending: Box<Pending>,
    /// Why it failed, if it did.
    pub error: Option<KafkaError>,
}

/// Collects delivery reports; librdkafka calls it from [`BaseProducer::poll`].
#[derive(Default)]
pub struct OutputContext {
    acks: Mutex<Vec<Ack>>,
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
        self.acks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Ack { pending, error });
    }
}

/// The alert and dead-letter producer.
pub struct Outputs {
    producer: BaseProducer<OutputContext>,
    /// Failed deliveries waiting for their next attempt, in due order.
    retries: VecDeque<(Instant, Box<Pending>)>,
    /// Sent, not yet acknowledged.
    in_flight: usize,
    /// Refused by librdkafka when sent: reported with the next poll.
    refused: Vec<Ack>,
    /// Attempts before a delivery is given up.
    pub max_attempts: u32,
}

/// Backoff before attempt `n + 1`: 100 ms doubling to 10 s.
fn backoff(attempts: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1 << attempts.min(7))).min(Duration::from_secs(10))
}

impl Outputs {
    /// A producer from `config` (forewarn's settings already applied).
    pub fn new(config: &ClientConfig, max_attempts: u32) -> Result<Outputs, KafkaError> {
        Ok(Outputs {
            producer: config.create_with_context(OutputContext::default())?,
            retries: VecDeque::new(),
            in_flight: 0,
            refused: Vec::new(),
            max_attempts: max_attempts.max(1),
        })
    }

    /// Sends `pending` (now, or as soon as librdkafka's queue has room).
    pub fn send(&mut self, mut pending: Box<Pending>) {
        pending.attempts += 1;
        let topic = Arc::clone(&pending.topic);
        let key = pending.key.clone();
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
        if let Some(p) = payload.as_deref() {
            record = record.payload(p);
        }
        if !pending_headers_empty {
            record = record.headers(headers);
        }
        match self.producer.send(record) {
            Ok(()) => self.in_flight += 1,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), record)) => {
                // Not an attempt: librdkafka's queue is full; try again shortly.
                let mut pending = record.delivery_opaque;
                pending.attempts -= 1;
                self.retries
                    .push_back((Instant::now() + Duration::from_millis(10), pending));
            }
            Err((error, record)) => {
                // Refused outright (e.g. the topic is not writable): a failed
                // attempt, reported like a failed delivery.
                self.refused.push(Ack {
                    pending: record.delivery_opaque,
                    error: Some(error),
                });
            }
        }
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

    /// Serves delivery reports (waiting up to `timeout` for one) and sends retries
    /// that are due; appends the reports to `acks`.
    pub fn poll(&mut self, timeout: Duration, acks: &mut Vec<Ack>) {
        let now = Instant::now();
        while self.retries.front().is_some_and(|(due, _)| *due <= now) {
            let (_, p) = self.retries.pop_front().expect("checked");
            self.send(p);
        }
        self.producer.poll(timeout);
        let mut got = self
            .producer
            .context()
            .acks
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.in_flight -= got.len().min(self.in_flight);
        acks.append(&mut got);
        acks.append(&mut self.refused);
    }

    /// Messages not yet acknowledged or given up (in flight or waiting to retry).
    pub fn outstanding(&self) -> usize {
        self.in_flight + self.retries.len() + self.refused.len()
    }

    /// Connects to the cluster and checks that each of `topics` exists, so the
    /// first alert does not pay for connection set-up and a missing topic is
    /// reported at start-up. Returns, per topic, what is wrong with it.
    pub fn warm_up(&self, topics: &[&str], timeout: Duration) -> Vec<(String, String)> {
        let md = match self.producer.client().fetch_metadata(None, timeout) {
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

    /// Asks librdkafka to send everything queued now (used before shutdown).
    pub fn flush(&self, timeout: Duration) {
        let _ = self.producer.flush(timeout);
    }
}
