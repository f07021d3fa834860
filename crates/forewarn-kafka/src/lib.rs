//! forewarn-kafka is the Kafka side of forewarn. Its contract is at-least-once: an
//! offset is committed only once the effects of its event, and of every earlier
//! event of the partition, are safe (alerts acknowledged by the broker, rejected
//! events on the dead-letter topic). This crate starts with the parts of that
//! contract that need no broker — which offset may be committed, and what a dead
//! letter carries — so they are tested on their own; the rdkafka consumer and
//! producers build on them.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod dead_letter;
pub mod offsets;

pub use offsets::{OffsetTracker, PartitionOffsets};
