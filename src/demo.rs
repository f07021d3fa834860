//! `forewarn demo`: forewarn working end to end in one command, with nothing to
//! install. An in-process Kafka (librdkafka's mock cluster, or a real broker with
//! `--brokers`), the retail-estate simulator producing in accelerated time, the
//! same pipeline `forewarn run` drives, a live view of the alerts as they arrive
//! on the alerts topic, and a scorecard against the simulator's ground truth.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use forewarn_core::time::{format_rfc3339, parse_duration, parse_rfc3339, Millis};
use forewarn_core::Config;
use forewarn_kafka::{Metrics, Options, Pipeline};
use forewarn_sim::{default_scenario, score, Fired, Scenario, Scorecard, Simulator};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

use crate::simulate::Pacer;

/// The example config the demo scores with unless `--config` is given.
const EXAMPLE_CONFIG: &str = include_str!("../deploy/forewarn.example.toml");

/// Options of `forewarn demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Simulated duration (the default scenario has incidents up to 2h55m).
    #[arg(long, default_value = "3h")]
    duration: String,
    /// Simulated seconds per wall-clock second (0: as fast as possible).
    #[arg(long, default_value_t = 120.0)]
    speed: f64,
    /// Simulator seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Traffic scale (1.0 is about 200 events/s of simulated time).
    #[arg(long, default_value_t = 0.3)]
    scale: f64,
    /// Config to score with (default: the bundled deploy/forewarn.example.toml).
    #[arg(long)]
    config: Option<std::path::PathBuf>,
    /// Use this Kafka cluster instead of the in-process mock (topics
    /// `forewarn-demo-events`, `-alerts`, `-dead-letter` must exist or be auto-created).
    #[arg(long)]
    brokers: Option<String>,
    /// Partitions of the events topic on the in-process cluster.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Keep consuming after the simulation ends (for a Grafana session) until Ctrl-C.
    #[arg(long)]
    keep_running: bool,
    /// Address of the HTTP endpoint (falls back to a free port when taken).
    #[arg(long, default_value = "127.0.0.1:9898")]
    listen: String,
    /// Seconds between status lines.
    #[arg(long, default_value_t = 5)]
    status_every: u64,
    /// Also print the scorecard as one line of JSON (`scorecard-json {…}`),
    /// for scripts.
    #[arg(long)]
    json: bool,
}

/// Most messages produced and not yet consumed.
const MAX_AHEAD: u64 = 10_000;

const EVENTS: &str = "forewarn-demo-events";
const ALERTS: &str = "forewarn-demo-alerts";
const DEAD: &str = "forewarn-demo-dead-letter";

fn wall_ms() -> Millis {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// One readable line for an alert read from the alerts topic.
fn alert_line(a: &Value) -> String {
    let label = |k: &str| a["labels"][k].as_str().unwrap_or("").to_string();
    let note = |k: &str| a["annotations"][k].as_str().unwrap_or("").to_string();
    format!(
        "{}  {:<9} {:<8} {:<26} service={:<13} category={:<13} value={:<8} | {}",
        a["evaluatedAt"].as_str().unwrap_or(""),
        a["status"].as_str().unwrap_or("").to_uppercase(),
        label("severity"),
        label("alertname"),
        label("service"),
        label("category"),
        note("value"),
        note("summary"),
    )
}

/// What the alert watcher has seen.
#[derive(Default)]
struct Seen {
    fired: Vec<Fired>,
    alerts: u64,
    firing: std::collections::BTreeSet<String>,
}

/// Reads the alerts topic from the beginning, printing each alert and recording
/// firing ones for the scorecard, until `stop`.
fn watch_alerts(brokers: &str, seen: &Mutex<Seen>, stop: &AtomicBool) -> anyhow::Result<()> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "forewarn-demo-viewer")
        .set("enable.auto.commit", "false")
        .create()?;
    let md = c.fetch_metadata(Some(ALERTS), Duration::from_secs(10))?;
    let mut tpl = TopicPartitionList::new();
    for p in md.topics().iter().flat_map(|t| t.partitions()) {
        tpl.add_partition_offset(ALERTS, p.id(), Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    while !stop.load(Ordering::Relaxed) {
        let Some(msg) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let msg = msg?;
        let Ok(a) = serde_json::from_slice::<Value>(msg.payload().unwrap_or_default()) else {
            continue;
        };
        println!("{}", alert_line(&a));
        let mut s = seen.lock().unwrap_or_else(|p| p.into_inner());
        s.alerts += 1;
        let fp = a["fingerprint"].as_str().unwrap_or("").to_string();
        match a["status"].as_str() {
            Some("firing") => {
                s.firing.insert(fp);
                if let Some(at) = a["evaluatedAt"].as_str().and_then(parse_rfc3339) {
                    s.fired.push(Fired {
                        at,
                        service: a["labels"]["service"].as_str().unwrap_or("").into(),
                        rule: a["labels"]["alertname"].as_str().unwrap_or("").into(),
                    });
                }
            }
            Some("resolved") => {
                s.firing.remove(&fp);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Produces the scenario's events keyed by service, paced by `speed`; records
/// the simulated clock and the count.
fn produce(
    brokers: &str,
    scenario: Scenario,
    speed: f64,
    clock: &AtomicI64,
    produced: &AtomicU64,
    consumed: impl Fn() -> u64,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let p: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .create()?;
    let mut pacer = Pacer::new(scenario.start, (speed > 0.0).then_some(speed), None);
    for e in Simulator::new(scenario) {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if speed > 0.0 {
            pacer.wait(e.ts);
        }
        // Stay within reach of the consumer: the in-process cluster keeps only
        // the newest 5 MB (or 100,000 messages) of a partition.
        let sent = produced.load(Ordering::Relaxed);
        if sent % 1024 == 0 {
            while sent.saturating_sub(consumed()) > MAX_AHEAD && !stop.load(Ordering::Relaxed) {
                p.poll(Duration::from_millis(5));
            }
        }
        let mut record = BaseRecord::<str, str>::to(EVENTS)
            .key(&*e.service)
            .payload(&e.json);
        loop {
            match p.send(record) {
                Ok(()) => break,
                Err((_, back)) => {
                    // Queue full: let librdkafka drain it.
                    p.poll(Duration::from_millis(5));
                    record = back;
                }
            }
        }
        clock.store(e.ts, Ordering::Relaxed);
        produced.fetch_add(1, Ordering::Relaxed);
    }
    p.flush(Duration::from_secs(30))?;
    Ok(())
}

/// Creates the demo's topics on a real cluster (those that exist are kept).
async fn create_topics(brokers: &str, partitions: i32) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()?;
    let topics = [
        NewTopic::new(EVENTS, partitions, TopicReplication::Fixed(1)),
        NewTopic::new(ALERTS, 1, TopicReplication::Fixed(1)),
        NewTopic::new(DEAD, 1, TopicReplication::Fixed(1)),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&topics, &opts).await? {
        match result {
            Ok(_) => {}
            Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, e)) => bail!("cannot create topic {topic}: {e}"),
        }
    }
    Ok(())
}

/// Calls `f` on the first SIGINT or SIGTERM (from a small runtime thread).
fn ctrlc_like(f: impl FnOnce() + Send + 'static) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::spawn(move || {
        rt.block_on(async {
            crate::run::shutdown_signal().await;
            f();
        })
    });
    Ok(())
}

fn print_scorecard(card: &Scorecard, scenario: &Scenario, reached: Millis) {
    println!("\n=== scorecard (ground truth of the simulated scenario) ===");
    for (inc, s) in scenario.incidents.iter().zip(&card.incidents) {
        let outcome = match (&s.first_alert, s.lead_seconds) {
            (Some((rule, svc, _)), Some(lead)) if lead > 0.0 => {
                format!(
                    "detected {:.0} s before SLA breach by {rule} on {svc}",
                    lead
                )
            }
            (Some((rule, svc, _)), Some(lead)) => {
                format!(
                    "detected {:.0} s after SLA breach by {rule} on {svc}",
                    -lead
                )
            }
            _ if inc.sla_breach > reached => "not reached: the demo ended first".into(),
            _ => "MISSED".into(),
        };
        println!(
            "  {:<28} {:<13} breach {}  {}",
            s.id,
            s.category,
            format_rfc3339(inc.sla_breach),
            outcome
        );
    }
    println!(
        "  injected {}, detected early {}, detected late {}, missed {}, false alarms {}",
        scenario.incidents.len(),
        card.detected_early,
        card.detected_late,
        card.missed,
        card.false_alarms.len()
    );
    for (rule, svc, at) in &card.false_alarms {
        println!("  false alarm: {rule} on {svc} at {}", format_rfc3339(*at));
    }
    // The scenario is laid on the wall clock's last hours, so the estate's
    // daily rhythm under each incident (and the leads) differ run to run.
    println!(
        "  (leads vary with the time of day the demo starts at: the simulated hours are the last {} before now; --seed changes the traffic)",
        forewarn_core::time::format_duration(scenario.duration)
    );
}

/// Runs the demo; returns the scorecard.
pub fn run(args: &Args) -> anyhow::Result<()> {
    crate::logging::init(crate::logging::LogFormat::Text, "warn")?;
    let duration =
        parse_duration(&args.duration).map_err(|e| crate::Usage(format!("--duration: {e}")))?;
    let valid = |v: f64, min: f64| v.is_finite() && v >= min;
    if !valid(args.scale, f64::MIN_POSITIVE) || !valid(args.speed, 0.0) {
        return Err(crate::Usage(
            "--scale must be positive and --speed zero or positive".to_string(),
        )
        .into());
    }
    let mut cfg = match &args.config {
        Some(path) => crate::load_config(path)?,
        None => Config::parse(EXAMPLE_CONFIG, "deploy/forewarn.example.toml (bundled)")?,
    };
    // Keep the mock cluster alive for the whole demo.
    let mock = match &args.brokers {
        Some(_) => None,
        None => {
            let m = rdkafka::mocking::MockCluster::new(1)
                .context("cannot start the in-process Kafka")?;
            m.create_topic(EVENTS, args.partitions, 1)?;
            m.create_topic(ALERTS, 1, 1)?;
            m.create_topic(DEAD, 1, 1)?;
            Some(m)
        }
    };
    let brokers = match (&args.brokers, &mock) {
        (Some(b), _) => b.clone(),
        (None, Some(m)) => m.bootstrap_servers(),
        (None, None) => unreachable!("a mock cluster exists when no brokers are given"),
    };
    let http_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    if args.brokers.is_some() {
        http_runtime.block_on(create_topics(&brokers, args.partitions))?;
    }
    cfg.kafka.brokers = brokers.clone();
    cfg.kafka.group_id = "forewarn-demo".into();
    cfg.kafka.topics = vec![EVENTS.into()];
    cfg.kafka.alerts_topic = ALERTS.into();
    cfg.kafka.dead_letter_topic = DEAD.into();

    // The simulated period ends now, so no event is ahead of the wall clock.
    let start = (wall_ms() - duration) / 60_000 * 60_000; // whole minutes read better
    let mut scenario = default_scenario(args.seed, start);
    scenario.duration = duration;
    scenario.scale *= args.scale;
    let end = scenario.start + duration;
    // A shorter demo injects only the incidents that begin within it.
    scenario.incidents.retain(|i| i.precursor_start < end);
    println!(
        "forewarn demo: {} simulated ({} to {}) at {}, Kafka {}",
        args.duration,
        format_rfc3339(scenario.start),
        format_rfc3339(end),
        if args.speed > 0.0 {
            format!("{}x", args.speed)
        } else {
            "full speed".into()
        },
        if mock.is_some() {
            format!("in-process at {brokers}")
        } else {
            brokers.clone()
        }
    );
    println!(
        "incidents injected: {}",
        scenario
            .incidents
            .iter()
            .map(|i| format!("{} ({})", i.id, i.category.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let stop = Arc::new(AtomicBool::new(false));
    let stop_all = Arc::new(AtomicBool::new(false));
    {
        let (stop, stop_all) = (Arc::clone(&stop), Arc::clone(&stop_all));
        ctrlc_like(move || {
            stop.store(true, Ordering::Relaxed);
            stop_all.store(true, Ordering::Relaxed);
        })?;
    }
    let metrics = Metrics::for_config(&cfg);
    crate::http::register_build_info(&metrics);
    let pipeline = Pipeline::new(cfg, metrics.clone(), Options::default())?;
    let watched = pipeline.active_alerts();
    let endpoint = crate::http::Endpoint {
        metrics: metrics.clone(),
        alerts: pipeline.active_alerts(),
        reload: None,
    };
    let bound = http_runtime.block_on(async {
        match crate::http::serve(&args.listen, endpoint.clone()).await {
            Ok(a) => Ok(a),
            Err(e) => {
                note!("-- {e}; using a free port instead");
                crate::http::serve("127.0.0.1:0", endpoint).await
            }
        }
    })?;
    println!(
        "open http://{bound}/metrics (Prometheus) and http://{bound}/api/v1/alerts (current alerts){}",
        if args.keep_running {
            ""
        } else {
            "; they close with the scorecard (--keep-running keeps them up)"
        }
    );
    let pipeline_stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let flag = Arc::clone(&pipeline_stop);
        std::thread::spawn(move || pipeline.run(&flag))
    };
    let seen = Arc::new(Mutex::new(Seen::default()));
    let watcher_stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (b, s, f) = (
            brokers.clone(),
            Arc::clone(&seen),
            Arc::clone(&watcher_stop),
        );
        std::thread::spawn(move || watch_alerts(&b, &s, &f))
    };
    let clock = Arc::new(AtomicI64::new(scenario.start));
    let produced = Arc::new(AtomicU64::new(0));
    let producer = {
        let (b, sc, c, p, s) = (
            brokers.clone(),
            scenario.clone(),
            Arc::clone(&clock),
            Arc::clone(&produced),
            Arc::clone(&stop),
        );
        let speed = args.speed;
        let m = metrics.clone();
        std::thread::spawn(move || {
            // Produce once the pipeline has joined the group and been assigned.
            while m.assigned_partitions.get() == 0 && !s.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(20));
            }
            produce(&b, sc, speed, &c, &p, || m.accounting().consumed, &s)
        })
    };

    // Status lines until everything produced has been consumed.
    let started = Instant::now();
    let mut last = (Instant::now(), 0u64);
    let mut next_status = Instant::now() + Duration::from_secs(args.status_every);
    loop {
        std::thread::sleep(Duration::from_millis(50)); // the status line's pace
        let acc = metrics.accounting();
        let done = producer.is_finished() && acc.consumed >= produced.load(Ordering::Relaxed);
        if Instant::now() >= next_status || done {
            let rate = (acc.consumed - last.1) as f64 / last.0.elapsed().as_secs_f64().max(1e-3);
            last = (Instant::now(), acc.consumed);
            next_status = Instant::now() + Duration::from_secs(args.status_every);
            let firing = seen.lock().map(|s| s.firing.len()).unwrap_or(0);
            note!(
                "-- simulated {}  produced {}  consumed {} ({:.0}/s)  services scored {}  dead-lettered {}  late {}  alerts {}  firing now {}",
                format_rfc3339(clock.load(Ordering::Relaxed)),
                produced.load(Ordering::Relaxed),
                acc.consumed,
                rate,
                watched.services_scored(),
                acc.dead_lettered,
                acc.late,
                acc.alerts_delivered,
                firing
            );
        }
        if done || stop_all.load(Ordering::Relaxed) {
            break;
        }
    }
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the simulator thread panicked"))??;
    if args.keep_running && !stop_all.load(Ordering::Relaxed) {
        note!("-- simulation finished; still consuming (Ctrl-C to stop)");
        while !stop_all.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(200)); // waiting for Ctrl-C
        }
    }
    pipeline_stop.store(true, Ordering::Relaxed);
    let acc = runner
        .join()
        .map_err(|_| anyhow::anyhow!("the pipeline thread panicked"))??;
    // Let the viewer catch up with every alert the pipeline delivered.
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().map(|s| s.alerts).unwrap_or(0) < acc.alerts_delivered
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    watcher_stop.store(true, Ordering::Relaxed);
    watcher
        .join()
        .map_err(|_| anyhow::anyhow!("the alert viewer panicked"))??;
    note!(
        "-- {:.1} s: consumed {} = applied {} + dead-lettered {} + late {} + refused {}; alerts delivered {}",
        started.elapsed().as_secs_f64(),
        acc.consumed,
        acc.applied,
        acc.dead_lettered,
        acc.late,
        acc.refused,
        acc.alerts_delivered
    );
    let reached = clock.load(Ordering::Relaxed);
    let fired = std::mem::take(&mut seen.lock().unwrap_or_else(|p| p.into_inner()).fired);
    let mut card = score(&scenario, &fired, 15 * 60_000);
    // An incident whose SLA breach lies beyond the end of the demo (or of a
    // Ctrl-C) could not be judged: it is reported, not counted as missed.
    let not_reached = scenario
        .incidents
        .iter()
        .zip(&card.incidents)
        .filter(|(i, s)| i.sla_breach > reached && s.first_alert.is_none())
        .count();
    card.missed -= not_reached;
    print_scorecard(&card, &scenario, reached);
    if args.json {
        println!(
            "scorecard-json {}",
            serde_json::json!({ "scorecard": card, "not_reached": not_reached })
        );
    }
    drop(http_runtime);
    drop(mock);
    Ok(())
}
