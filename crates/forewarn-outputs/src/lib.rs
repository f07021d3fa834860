//! forewarn's alert outputs beyond Kafka. [`alertmanager`] pushes alerts to
//! Prometheus Alertmanager's v2 API for on-call routing.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod alertmanager;

pub use alertmanager::{AlertmanagerOptions, Auth, Notifier, Tls};
