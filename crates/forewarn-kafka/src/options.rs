//! Tuning of the pipeline; the defaults suit production.

use std::time::Duration;

use crate::share::Share;

/// Tuning of the pipeline; the defaults suit production.
#[derive(Debug, Clone)]
pub struct Options {
    /// Worker threads, each owning a share of the assigned partitions
    /// (partition `p` goes to worker `p % workers`). Default: the available cores.
    pub workers: usize,
    /// How often offsets that moved are committed (asynchronously).
    pub commit_interval: Duration,
    /// How often idle shards are advanced by the wall clock.
    pub tick_interval: Duration,
    /// Longest wait for outstanding deliveries on shutdown or revocation; must
    /// be below the consumer's `session.timeout.ms`.
    pub shutdown_timeout: Duration,
    /// Delivery attempts (each bounded by `message.timeout.ms`) before an alert
    /// or dead letter is given up with an error log and
    /// `forewarn_output_dropped_total`.
    pub max_attempts: u32,
    /// Bytes of undelivered alerts and dead letters a worker may hold; above
    /// it the worker takes no more input until deliveries settle.
    pub max_outstanding_bytes: usize,
    /// A fixed share of the partitions to take instead of joining the consumer
    /// group's rebalances ([`crate::share`]); `None`: the group assigns.
    pub share: Option<Share>,
}

impl Options {
    /// The default number of workers: one per available core.
    pub fn default_workers() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers: Options::default_workers(),
            commit_interval: Duration::from_secs(1),
            tick_interval: Duration::from_secs(1),
            shutdown_timeout: Duration::from_secs(10),
            max_attempts: 5,
            max_outstanding_bytes: 64 << 20,
            share: None,
        }
    }
}
