//! What the HTTP endpoint reads of the running pipeline: views the workers
//! publish on demand, so a scrape never touches a worker's state.
//!
//! A reader asks for a new generation and wakes the workers; each worker, between
//! two batches of messages, renders its shards into a [`View`] and publishes
//! it under that generation. The reader waits (bounded) until every worker has
//! published, and merges. A worker that is slow to answer costs the reader a
//! stale view, never the worker a lock.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// One rule's latest evaluation for one group, for the metrics endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupReading {
    /// Rule name.
    pub rule: String,
    /// The rule's signal.
    pub signal: String,
    /// `service` first, then the signal's `group_by` labels.
    pub labels: Vec<(String, String)>,
    /// Latest value (NaN: none).
    pub value: f64,
    /// 0–1 risk score.
    pub risk: f64,
    /// The rule kind's extra gauges (SLO burn rates, budget remaining).
    pub series: Vec<forewarn_core::rules::Series>,
}

/// One worker's view of its shards at one moment.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// Pending and firing alerts, rendered.
    pub alerts: Vec<forewarn_core::Alert>,
    /// The latest value and risk of every (rule, group).
    pub readings: Vec<GroupReading>,
    /// Groups tracked: per shard, the most of any signal, summed.
    pub groups: usize,
}

impl View {
    fn merge(&mut self, other: &View) {
        self.alerts.extend_from_slice(&other.alerts);
        self.readings.extend_from_slice(&other.readings);
        self.groups += other.groups;
    }
}

/// How a worker is woken to answer a request.
pub type Waker = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Slots {
    /// Per worker: the generation and view it published last.
    published: Vec<(u64, Arc<View>)>,
    /// Set when the workers have stopped: readers take what is there.
    closed: bool,
}

/// The views of every worker, and the requests for fresh ones.
pub struct Board {
    wanted: AtomicU64,
    slots: Mutex<Slots>,
    fresh: Condvar,
    wakers: OnceLock<Vec<Waker>>,
}

impl Board {
    /// A board for `workers` workers, none published yet.
    pub fn new(workers: usize) -> Board {
        Board {
            wanted: AtomicU64::new(0),
            slots: Mutex::new(Slots {
                published: vec![(0, Arc::default()); workers],
                closed: false,
            }),
            fresh: Condvar::new(),
            wakers: OnceLock::new(),
        }
    }

    /// How each worker is woken (set once, when the workers start).
    pub fn set_wakers(&self, wakers: Vec<Waker>) {
        let _ = self.wakers.set(wakers);
    }

    /// The generation readers want; a worker that published an older one
    /// should publish again.
    pub fn wanted(&self) -> u64 {
        self.wanted.load(Ordering::Acquire)
    }

    /// Publishes `worker`'s view as of `generation`.
    pub fn publish(&self, worker: usize, generation: u64, view: View) {
        let view = Arc::new(view);
        let mut slots = self.lock();
        if let Some(slot) = slots.published.get_mut(worker) {
            *slot = (generation, view);
        }
        drop(slots);
        self.fresh.notify_all();
    }

    /// Marks the workers stopped: readers no longer wait.
    pub fn close(&self) {
        self.lock().closed = true;
        self.fresh.notify_all();
    }

    /// Every worker's view, merged: fresh ones when every worker answers
    /// within `timeout`, otherwise the latest each has published.
    pub fn read(&self, timeout: Duration) -> View {
        let generation = self.wanted.fetch_add(1, Ordering::AcqRel) + 1;
        for wake in self.wakers.get().into_iter().flatten() {
            wake();
        }
        let deadline = Instant::now() + timeout;
        let mut slots = self.lock();
        while !slots.closed && slots.published.iter().any(|(g, _)| *g < generation) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            slots = self
                .fresh
                .wait_timeout(slots, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let parts: Vec<Arc<View>> = slots.published.iter().map(|(_, s)| Arc::clone(s)).collect();
        drop(slots);
        let mut merged = View::default();
        for part in &parts {
            merged.merge(part);
        }
        merged
    }

    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_waits_for_every_worker_and_merges() {
        let board = Arc::new(Board::new(2));
        let answering = Arc::clone(&board);
        let worker = std::thread::spawn(move || {
            // Answers the first request it sees, as both workers.
            while answering.wanted() == 0 {
                std::thread::yield_now();
            }
            let g = answering.wanted();
            for w in 0..2 {
                answering.publish(
                    w,
                    g,
                    View {
                        groups: w + 1,
                        ..View::default()
                    },
                );
            }
        });
        let got = board.read(Duration::from_secs(30));
        worker.join().unwrap();
        assert_eq!(got.groups, 3, "both workers' groups");
    }

    #[test]
    fn a_silent_worker_costs_the_reader_a_stale_view_not_a_hang() {
        let board = Board::new(2);
        board.publish(
            0,
            0,
            View {
                groups: 5,
                ..View::default()
            },
        );
        let got = board.read(Duration::from_millis(20));
        assert_eq!(got.groups, 5, "the last published views");
        board.close();
        let got = board.read(Duration::from_secs(3600));
        assert_eq!(got.groups, 5, "closed: no wait");
    }
}
