//! A worker's inputs without a broker, for the worker benchmark and tests:
//! one partition's messages from memory, and a group that accepts every
//! commit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rdkafka::error::KafkaResult;
use rdkafka::message::OwnedMessage;
use rdkafka::TopicPartitionList;

use crate::worker::{GroupClient, MessageQueue};

/// One partition's messages, in offset order, lent one at a time (the worker
/// frees nothing another thread allocated, as with librdkafka's own buffers).
pub struct MemoryQueue {
    messages: Arc<Vec<OwnedMessage>>,
    next: AtomicUsize,
}

impl MemoryQueue {
    /// A queue over `messages`, from the first.
    pub fn new(messages: Arc<Vec<OwnedMessage>>) -> MemoryQueue {
        MemoryQueue {
            messages,
            next: AtomicUsize::new(0),
        }
    }
}

impl MessageQueue for MemoryQueue {
    type Message<'a> = &'a OwnedMessage;
    fn next(&self) -> Option<KafkaResult<&OwnedMessage>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.messages.get(i).map(Ok)
    }
}

/// A group that accepts every commit and never reports a partition's end.
pub struct NoGroup;

impl GroupClient for NoGroup {
    fn commit_async(&self, _: &TopicPartitionList) -> KafkaResult<()> {
        Ok(())
    }
    fn high_watermark(&self, _: &str, _: i32) -> Option<i64> {
        None
    }
}
