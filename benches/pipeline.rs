//! Kafka pipeline benchmark: the same events, on the same real broker (Tansu
//! 0.6.0 on loopback, memory storage), drained by (a) a bare rdkafka consumer
//! that only touches each payload and (b) the pipeline `forewarn run` drives
//! (decode, per-partition engine shards, alert and dead-letter producer, offset
//! discipline, metrics), in one run. Also reports the detection latency
//! histogram (consuming the event that closed a breaching window → the alert
//! acknowledged by the broker).
//!
//! `cargo bench --bench pipeline` (env: FOREWARN_BENCH_EVENTS, default 2,000,000;
//! FOREWARN_BENCH_PARTITIONS, default 4; FOREWARN_TANSU as for the tests).

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use forewarn_kafka::{Metrics, Options, Pipeline};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message};
use support::Broker;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Simulated retail-estate events (with incidents) ending an hour ago, keyed by
/// service, until `n` are collected.
fn events(n: usize) -> Vec<(Option<String>, Vec<u8>)> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let start = now - 4 * 3_600_000;
    let mut scenario = forewarn_sim::default_scenario(1, start);
    // The default 3 h scenario has about 2.26 M events at scale 1.
    scenario.scale *= (n as f64 / 2_200_000.0).max(0.05);
    forewarn_sim::Simulator::new(scenario)
        .take(n)
        .map(|e| (Some(e.service.to_string()), e.json.into_bytes()))
        .collect()
}

/// Time from the first message to the `n`th for a bare consumer.
fn bare(addr: &str, topic: &str, n: u64) -> Duration {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "bench-bare")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let (mut got, mut bytes) = (0u64, 0usize);
    let mut first = None;
    while got < n {
        if let Some(m) = c.poll(Duration::from_millis(100)) {
            let m = m.unwrap();
            first.get_or_insert_with(Instant::now);
            bytes += m.payload().map_or(0, <[u8]>::len);
            got += 1;
        }
    }
    assert!(bytes > 0);
    first.unwrap().elapsed()
}

/// Time from the first consumed message to the `n`th for the pipeline.
/// With `checkpoint_every`, partitions are checkpointed to a topic that
/// interval.
fn pipeline(
    addr: &str,
    tag: &str,
    workers: usize,
    checkpoint_every: Option<Duration>,
    n: u64,
    feed: impl FnOnce() + Send + 'static,
) -> (Duration, Metrics) {
    let base = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/forewarn.example.toml"
    ))
    .unwrap();
    let text = base.replace("idle_timeout = \"30s\"", "idle_timeout = \"1h\"");
    let mut cfg = forewarn_core::Config::parse(&text, "bench").expect("bench config");
    cfg.kafka.brokers = addr.to_string();
    // A group per run, so each run reads the topic from the start.
    let run = format!(
        "{tag}-forewarn-{workers}{}",
        checkpoint_every.map_or("", |_| "-ck")
    );
    cfg.kafka.group_id = run.clone();
    if let Some(every) = checkpoint_every {
        cfg.kafka.checkpoint_topic = Some(format!("{run}-checkpoints"));
        cfg.kafka.checkpoint_interval = every.as_millis() as i64;
    }
    cfg.kafka.topics = vec![format!("{tag}-events")];
    cfg.kafka.alerts_topic = format!("{tag}-alerts");
    cfg.kafka.dead_letter_topic = format!("{tag}-dead");
    let metrics = Metrics::new();
    let options = Options {
        workers,
        ..Options::default()
    };
    let p = Pipeline::new(cfg, metrics.clone(), options).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let worker = std::thread::spawn(move || p.run(&flag));
    while metrics.assigned_partitions.get() == 0 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let feeder = std::thread::spawn(feed);
    let mut first = None;
    loop {
        let consumed = metrics.accounting().consumed;
        if consumed > 0 {
            first.get_or_insert_with(Instant::now);
        }
        if consumed >= n {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = first.unwrap().elapsed();
    feeder.join().unwrap();
    stop.store(true, Ordering::Relaxed);
    let acc = worker.join().unwrap().unwrap();
    assert!(acc.balanced(), "{acc:?}");
    (took, metrics)
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |r| r.1);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    if f.len() < 13 {
        return f64::NAN;
    }
    (f[11] + f[12]) / 100.0 // USER_HZ is 100 on Linux
}

fn quantile(m: &Metrics, q: f64) -> f64 {
    // Linear interpolation inside the histogram bucket holding the quantile.
    let h = m.detection_latency.clone();
    let fam = prometheus::core::Collector::collect(&h);
    let hist = fam[0].get_metric()[0].get_histogram();
    let total = hist.get_sample_count() as f64;
    let want = q * total;
    let mut prev_bound = 0.0;
    let mut prev_count = 0.0;
    for b in hist.get_bucket() {
        let c = b.cumulative_count() as f64;
        if c >= want {
            let frac = if c > prev_count {
                (want - prev_count) / (c - prev_count)
            } else {
                0.0
            };
            return prev_bound + frac * (b.upper_bound() - prev_bound);
        }
        prev_bound = b.upper_bound();
        prev_count = c;
    }
    f64::INFINITY
}

/// Produces `evs` to `topic` at `rate` events per second (in 10 ms slices).
fn paced(addr: String, topic: String, evs: Vec<(Option<String>, Vec<u8>)>, rate: u64) {
    let p: rdkafka::producer::BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .set("linger.ms", "2")
        .create()
        .unwrap();
    let per_slice = (rate / 100).max(1) as usize;
    let start = Instant::now();
    for (i, chunk) in evs.chunks(per_slice).enumerate() {
        let due = start + Duration::from_millis(10 * i as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait); // pacing, not synchronisation
        }
        for (k, v) in chunk {
            let mut r = rdkafka::producer::BaseRecord::<str, [u8]>::to(&topic).payload(v);
            if let Some(k) = k {
                r = r.key(k.as_str());
            }
            while let Err((_, back)) = p.send(r) {
                p.poll(Duration::from_millis(1));
                r = back;
            }
        }
        p.poll(Duration::ZERO);
    }
    rdkafka::producer::Producer::flush(&p, Duration::from_secs(30)).unwrap();
}

fn report_latency(label: &str, metrics: &Metrics) {
    let h = &metrics.detection_latency;
    println!(
        "{label}: detection latency over {} alerts: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, mean {:.1} ms",
        h.get_sample_count(),
        quantile(metrics, 0.5) * 1e3,
        quantile(metrics, 0.9) * 1e3,
        quantile(metrics, 0.99) * 1e3,
        h.get_sample_sum() / h.get_sample_count().max(1) as f64 * 1e3,
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` lists benchmarks; nothing to list here.
    }
    let n = env_or("FOREWARN_BENCH_EVENTS", 2_000_000);
    let partitions = env_or("FOREWARN_BENCH_PARTITIONS", 4) as u32;
    let broker = Broker::start();
    let tag = "bench";
    broker.create_topic("bench-events", partitions);
    broker.create_topic("bench-alerts", 1);
    broker.create_topic("bench-dead", 1);
    let t = Instant::now();
    let evs = events(n as usize);
    let bytes: usize = evs.iter().map(|e| e.1.len()).sum();
    println!(
        "generated {} events ({:.0} B avg) in {:.1?}",
        evs.len(),
        bytes as f64 / evs.len() as f64,
        t.elapsed()
    );
    let t = Instant::now();
    broker.produce("bench-events", &evs);
    println!("produced to {partitions} partitions in {:.1?}", t.elapsed());
    let n = evs.len() as u64;
    drop(evs);

    let cpu = cpu_seconds();
    let bare_t = bare(&broker.addr, "bench-events", n);
    let bare_cpu = cpu_seconds() - cpu;
    let bare_rate = n as f64 / bare_t.as_secs_f64();
    println!(
        "bare rdkafka consumer: {n} in {bare_t:.2?} = {:.0} msg/s; client CPU {:.2} µs/msg",
        bare_rate,
        bare_cpu / n as f64 * 1e6
    );
    let mut metrics = None;
    let mut one_worker = f64::NAN;
    // Checkpoints every second (the default is 30 s) so a run of a few
    // seconds pays for several: their steady-state cost, beside the run
    // without them.
    let every = Some(Duration::from_secs(1));
    broker.create_topic("bench-forewarn-2-ck-checkpoints", 1);
    for (workers, checkpoints) in [(1, None), (2, None), (2, every)] {
        let cpu = cpu_seconds();
        let (fw_t, m) = pipeline(&broker.addr, tag, workers, checkpoints, n, || {});
        let fw_cpu = cpu_seconds() - cpu;
        let fw_rate = n as f64 / fw_t.as_secs_f64();
        let ck = checkpoints.map_or(String::new(), |e| format!(", checkpoints every {e:?}"));
        println!(
            "forewarn, {workers} worker(s){ck}: {n} in {fw_t:.2?} = {:.0} msg/s; client CPU {:.2} µs/msg; ratio to bare {:.2}",
            fw_rate,
            fw_cpu / n as f64 * 1e6,
            fw_rate / bare_rate
        );
        if checkpoints.is_some() {
            let written = m.checkpoints.with_label_values(&["written"]).get();
            println!("checkpoints written: {written}");
        } else if workers == 1 {
            one_worker = fw_rate;
        } else {
            println!("{workers} workers / 1 worker: {:.2}", fw_rate / one_worker);
            metrics = Some(m);
        }
    }
    let metrics = metrics.expect("ran");
    let acc = metrics.accounting();
    println!(
        "accounting: consumed {} = applied {} + dead-lettered {} + late {}; alerts delivered {}",
        acc.consumed, acc.applied, acc.dead_lettered, acc.late, acc.alerts_delivered
    );
    report_latency("backlog (broker saturated)", &metrics);

    // Live: events arrive at a steady rate while forewarn keeps up.
    let rate = env_or("FOREWARN_BENCH_LIVE_RATE", 20_000);
    let live_n = env_or("FOREWARN_BENCH_LIVE_EVENTS", 400_000) as usize;
    broker.create_topic("live-events", partitions);
    broker.create_topic("live-alerts", 1);
    broker.create_topic("live-dead", 1);
    let evs = events(live_n);
    let live_n = evs.len() as u64;
    let addr = broker.addr.clone();
    let workers = Options::default().workers;
    let (live_t, metrics) = pipeline(&broker.addr, "live", workers, None, live_n, move || {
        paced(addr, "live-events".into(), evs, rate)
    });
    println!(
        "live at {rate} ev/s: {live_n} events consumed in {live_t:.1?}; alerts delivered {}",
        metrics.accounting().alerts_delivered
    );
    report_latency(&format!("live {rate} ev/s"), &metrics);
}
