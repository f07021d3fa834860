//! forewarn-kafka is the Kafka side of forewarn: a consumer-group member that
//! feeds each assigned partition to its own engine shard ([`pipeline`]), an
//! idempotent producer for alerts and dead letters ([`output`]), and the offset
//! discipline between them ([`offsets`]).
//!
//! Its contract is at-least-once: an offset is committed only once the effects of
//! its event, and of every earlier event of the partition, are safe (alerts
//! acknowledged by the broker, rejected events on the dead-letter topic). Every
//! consumed message is counted under exactly one result ([`metrics`]).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod client;
pub mod dead_letter;
pub mod memory;
pub mod metrics;
pub mod offsets;
pub mod options;
pub mod output;
pub mod pipeline;
pub mod reload;
pub mod shard;
pub mod share;
pub mod throttle;
pub mod view;
pub mod worker;

pub use metrics::{Accounting, Metrics};
pub use offsets::{OffsetTracker, PartitionOffsets};
pub use pipeline::{ActiveAlerts, AlertSink, Options, Pipeline, PipelineError};
pub use share::Share;
pub use view::{GroupReading, View};
