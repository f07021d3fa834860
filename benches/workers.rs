//! Worker scaling: the worker threads of `forewarn run`, fed from memory at
//! their maximum rate (every partition's messages are queued before the clock
//! starts), with 1 worker and with 2, alternately, in one run. A broker on the
//! same machine cannot feed them that fast (Tansu serves ~125k msg/s here; see
//! `benches/pipeline.rs`), so this measures the workers themselves: decode,
//! per-partition engines, alert rendering, offset tracking, metrics.
//!
//! `cargo bench --bench workers` (env: FOREWARN_BENCH_EVENTS, default
//! 2,000,000; FOREWARN_BENCH_PARTITIONS, default 4; FOREWARN_BENCH_ROUNDS,
//! default 3).

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicI64, AtomicU64};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use forewarn_kafka::memory::{MemoryQueue, NoGroup};
use forewarn_kafka::output::{AckRoute, Outbox, Producer};
use forewarn_kafka::view::Board;
use forewarn_kafka::worker::{Inbox, Shared, Worker};
use forewarn_kafka::{Metrics, Options};
use rdkafka::message::{OwnedMessage, Timestamp};
use rdkafka::ClientConfig;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Simulated retail-estate events (with incidents) ending an hour ago,
/// partitioned by service as a keyed producer would.
fn partitions(n: usize, count: usize) -> Vec<Arc<Vec<OwnedMessage>>> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut scenario = forewarn_sim::default_scenario(1, now - 4 * 3_600_000);
    scenario.scale *= (n as f64 / 2_200_000.0).max(0.05) * 2.5;
    let mut parts: Vec<Vec<OwnedMessage>> = vec![Vec::new(); count];
    for e in forewarn_sim::Simulator::new(scenario).take(n) {
        let mut h = DefaultHasher::new();
        e.service.hash(&mut h);
        let p = (h.finish() % count as u64) as usize;
        let offset = parts[p].len() as i64;
        parts[p].push(OwnedMessage::new(
            Some(e.json.into_bytes()),
            Some(e.service.as_bytes().to_vec()),
            "bench-events".into(),
            Timestamp::NotAvailable,
            p as i32,
            offset,
            None,
        ));
    }
    parts.into_iter().map(Arc::new).collect()
}

/// Time for `workers` workers to take every message of `parts`.
fn run(cfg: &forewarn_core::Config, workers: usize, parts: &[Arc<Vec<OwnedMessage>>]) -> Duration {
    let metrics = Metrics::new();
    let (senders, inboxes): (Vec<_>, Vec<_>) = (0..workers).map(|_| channel()).unzip();
    let routes: Vec<AckRoute> = senders
        .iter()
        .map(|tx: &std::sync::mpsc::Sender<Inbox<MemoryQueue>>| {
            let tx = tx.clone();
            Box::new(move |ack| {
                let _ = tx.send(Inbox::Ack(ack));
            }) as AckRoute
        })
        .collect();
    // Alerts go nowhere: no broker listens there, and the run ends before
    // librdkafka gives up on them.
    let producer = Arc::new(
        Producer::new(
            ClientConfig::new().set("bootstrap.servers", "127.0.0.1:9"),
            routes,
        )
        .unwrap(),
    );
    let shared = Arc::new(Shared {
        cfg: cfg.clone(),
        metrics: metrics.clone(),
        options: Options {
            workers,
            ..Options::default()
        },
        alerts_topic: Arc::from("bench-alerts"),
        dead_letter_topic: Arc::from("bench-dead"),
        sinks: Vec::new(),
        board: Arc::new(Board::new(workers)),
        commit_failures: Arc::new(AtomicU64::new(0)),
        checkpoint_topic: None,
        checkpoint_partitions: None,
    });
    let group = Arc::new(NoGroup);
    let threads: Vec<_> = inboxes
        .into_iter()
        .enumerate()
        .map(|(i, inbox)| {
            let worker = Worker::new(
                i,
                Arc::clone(&shared),
                Arc::clone(&group),
                inbox,
                Outbox::new(Arc::clone(&producer), 1, usize::MAX),
                Arc::new(AtomicI64::new(0)),
            );
            std::thread::spawn(move || worker.run())
        })
        .collect();
    let queues: Vec<MemoryQueue> = parts
        .iter()
        .map(|p| MemoryQueue::new(Arc::clone(p)))
        .collect();
    let n: u64 = parts.iter().map(|p| p.len() as u64).sum();
    let start = Instant::now();
    for (p, queue) in queues.into_iter().enumerate() {
        let _ = senders[p % workers].send(Inbox::Assign {
            topic: Arc::from("bench-events"),
            partition: p as i32,
            queue,
            restored: Ok(None),
        });
    }
    // When each worker took its last message (its share: partitions p % workers).
    let share: Vec<u64> = (0..workers)
        .map(|w| {
            parts
                .iter()
                .enumerate()
                .filter(|(p, _)| p % workers == w)
                .map(|(_, m)| m.len() as u64)
                .sum()
        })
        .collect();
    let counters: Vec<_> = (0..workers)
        .map(|w| metrics.worker_messages.with_label_values(&[&w.to_string()]))
        .collect();
    let mut finished: Vec<Option<Duration>> = vec![None; workers];
    while finished.iter().any(Option::is_none) {
        for w in 0..workers {
            if finished[w].is_none() && counters[w].get() >= share[w] {
                finished[w] = Some(start.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(1)); // measuring, not synchronising
    }
    let took = start.elapsed();
    if workers > 1 {
        let each: Vec<String> = finished
            .iter()
            .zip(&share)
            .map(|(t, s)| format!("{s} in {:.2?}", t.unwrap_or_default()))
            .collect();
        println!("  per worker: {}", each.join(", "));
    }
    let (reply, replies) = channel();
    for tx in &senders {
        let _ = tx.send(Inbox::Stop {
            deadline: Instant::now(),
            reply: reply.clone(),
        });
    }
    for _ in 0..workers {
        let _ = replies.recv();
    }
    for t in threads {
        t.join().unwrap();
    }
    let acc = metrics.accounting();
    assert!(acc.balanced() && acc.consumed == n, "{acc:?}");
    took
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n = env_or("FOREWARN_BENCH_EVENTS", 2_000_000) as usize;
    let count = env_or("FOREWARN_BENCH_PARTITIONS", 4) as usize;
    let rounds = env_or("FOREWARN_BENCH_ROUNDS", 3);
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/forewarn.example.toml"
    ))
    .unwrap();
    let cfg = forewarn_core::Config::parse(&text, "forewarn.example.toml").expect("example config");
    let parts = partitions(n, count);
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let sizes: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    println!("{total} events in {count} partitions {sizes:?}, example config");
    let mut rates: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        for (i, workers) in [1, 2].into_iter().enumerate() {
            let took = run(&cfg, workers, &parts);
            let rate = total as f64 / took.as_secs_f64();
            println!("round {round}: {workers} worker(s): {took:.2?} = {rate:.0} ev/s");
            rates[i].push(rate);
        }
    }
    let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "best: 1 worker {:.0} ev/s, 2 workers {:.0} ev/s, ratio {:.2}",
        best(&rates[0]),
        best(&rates[1]),
        best(&rates[1]) / best(&rates[0])
    );
    println!(
        "median: 1 worker {:.0} ev/s, 2 workers {:.0} ev/s, ratio {:.2}",
        median(&rates[0]),
        median(&rates[1]),
        median(&rates[1]) / median(&rates[0])
    );
}
