//! forewarn-core is the pure heart of forewarn: it decodes service events, keeps
//! event-time windowed signals per service, evaluates alert rules as soon as the
//! watermark closes a pane, and tracks each alert's pending → firing → resolved
//! lifecycle. It never reads the clock ("now" is an argument) and does no I/O
//! beyond reading the model files a config names, so
//! the Kafka pipeline, file replay, the simulator, tests and benchmarks all drive
//! the same deterministic code.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod alert;
pub mod budget;
pub mod confidence;
pub mod config;
pub mod detector;
pub mod drive;
pub mod engine;
pub mod event;
pub mod filter;
pub mod groups;
pub mod lifecycle;
pub mod model;
pub mod partition;
pub mod risk;
pub mod rules;
pub mod sketch;
pub mod time;
pub mod timers;
pub mod window;

pub use alert::{Alert, Transition};
pub use config::{Config, ConfigError};
pub use drive::{DriveOptions, Driver};
pub use engine::{
    Engine, Evaluation, FeatureLog, Outcome, PredictionOutcome, Snapshot, SnapshotV4, Stats,
};
pub use event::{decode, DecodeError, Event, MAX_EVENT_BYTES};
