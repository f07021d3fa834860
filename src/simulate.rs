//! `forewarn simulate`: writes a simulated scenario as NDJSON events, and its
//! ground truth as JSON, for replay, backtests and the demo.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use forewarn_core::time::{parse_duration, parse_rfc3339};
use forewarn_sim::{default_scenario, ground_truth, load_scenario, varied_scenario, Simulator};

/// Options of `forewarn simulate`.
#[derive(clap::Args)]
pub struct Args {
    /// Scenario name (`default`: three hours, one incident of each failure
    /// category, a promotion and a benign traffic spike; `varied`: three hours
    /// whose incidents, benign events and their times are drawn from the seed).
    #[arg(long, default_value = "default", conflicts_with = "scenario_file")]
    scenario: String,
    /// A scenario file (TOML; see crates/forewarn-sim/scenarios/default.toml).
    #[arg(long)]
    scenario_file: Option<PathBuf>,
    /// RNG seed: the same seed gives the same events and ground truth.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Simulated start time: RFC 3339, `now`, or `now-DURATION` (e.g. `now-3h`:
    /// with `--speed 10` the whole scenario plays in about 20 minutes and never
    /// runs ahead of the wall clock).
    #[arg(long, default_value = "2026-11-20T11:00:00Z")]
    start: String,
    /// Simulated duration, e.g. "3h" (default: the scenario's).
    #[arg(long)]
    duration: Option<String>,
    /// Multiplies every service's event rate.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Where to write the events ("-" for stdout).
    #[arg(long, default_value = "-")]
    out: PathBuf,
    /// Where to write the ground truth (JSON).
    #[arg(long)]
    truth: Option<PathBuf>,
    /// Play in (accelerated) real time: simulated seconds per wall-clock second
    /// (1 = real time, 1440 = a simulated day per minute). Default: as fast as possible.
    #[arg(long)]
    speed: Option<f64>,
    /// At most this many events per wall-clock second (for load tests).
    #[arg(long)]
    rate: Option<f64>,
    /// Produce to Kafka at these brokers (keyed by service) instead of writing NDJSON.
    #[arg(long)]
    brokers: Option<String>,
    /// The topic to produce to, with `--brokers`.
    #[arg(long, default_value = "service-events", requires = "brokers")]
    topic: String,
}

/// Where simulated events go.
enum Sink {
    Lines(BufWriter<Box<dyn Write>>),
    Kafka(rdkafka::producer::BaseProducer, String),
}

impl Sink {
    fn send(&mut self, service: &str, json: &str, live: bool) -> anyhow::Result<()> {
        match self {
            Sink::Lines(out) => {
                out.write_all(json.as_bytes())?;
                out.write_all(b"\n")?;
                if live {
                    // A live consumer (e.g. `forewarn replay -`) should see events as they are due.
                    out.flush()?;
                }
            }
            Sink::Kafka(p, topic) => {
                let mut record = rdkafka::producer::BaseRecord::<str, str>::to(topic.as_str())
                    .key(service)
                    .payload(json);
                loop {
                    match p.send(record) {
                        Ok(()) => break,
                        Err((
                            rdkafka::error::KafkaError::MessageProduction(
                                rdkafka::types::RDKafkaErrorCode::QueueFull,
                            ),
                            back,
                        )) => {
                            p.poll(Duration::from_millis(5));
                            record = back;
                        }
                        Err((e, _)) => bail!("cannot produce to {topic}: {e}"),
                    }
                }
                p.poll(Duration::ZERO);
            }
        }
        Ok(())
    }

    fn finish(self) -> anyhow::Result<()> {
        match self {
            Sink::Lines(mut out) => out.flush()?,
            Sink::Kafka(p, topic) => {
                use rdkafka::producer::Producer;
                p.flush(Duration::from_secs(60))
                    .with_context(|| format!("not every event reached {topic}"))?;
            }
        }
        Ok(())
    }
}

/// Holds output back to a pace: simulated time scaled by `speed`, and/or a cap of
/// `rate` events per second. Waits with `std::thread::sleep`; the engine never
/// sees this clock.
pub(crate) struct Pacer {
    started: Instant,
    sim_start: i64,
    speed: Option<f64>,
    rate: Option<f64>,
    sent: u64,
}

impl Pacer {
    /// A pacer whose simulated clock starts at `sim_start`, now.
    pub(crate) fn new(sim_start: i64, speed: Option<f64>, rate: Option<f64>) -> Pacer {
        Pacer {
            started: Instant::now(),
            sim_start,
            speed,
            rate,
            sent: 0,
        }
    }

    /// Sleeps until the event at simulated time `ts` is due.
    pub(crate) fn wait(&mut self, ts: i64) {
        let mut due = Duration::ZERO;
        if let Some(speed) = self.speed {
            due = due.max(Duration::from_secs_f64(
                ((ts - self.sim_start).max(0) as f64 / 1000.0) / speed,
            ));
        }
        if let Some(rate) = self.rate {
            due = due.max(Duration::from_secs_f64(self.sent as f64 / rate));
        }
        self.sent += 1;
        if let Some(left) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(left);
        }
    }
}

/// `--start`: RFC 3339, `now` or `now-DURATION`.
fn parse_start(s: &str) -> anyhow::Result<i64> {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    };
    match s.strip_prefix("now") {
        Some("") => Ok(now()),
        Some(rest) => {
            let ago = rest.strip_prefix('-').ok_or_else(|| {
                crate::Usage(format!("--start `{s}`: expected now or now-DURATION"))
            })?;
            let d = parse_duration(ago).map_err(|e| crate::Usage(format!("--start `{s}`: {e}")))?;
            Ok(now() - d)
        }
        None => parse_rfc3339(s).ok_or_else(|| {
            crate::Usage(format!(
                "--start `{s}` is neither RFC 3339 nor now[-DURATION]"
            ))
            .into()
        }),
    }
}

/// Runs the simulation to completion.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let start = parse_start(&args.start)?;
    let mut scenario = match (&args.scenario_file, args.scenario.as_str()) {
        (Some(path), _) => {
            let name = path.display().to_string();
            let src =
                std::fs::read_to_string(path).with_context(|| format!("cannot read {name}"))?;
            load_scenario(&src, &name, args.seed, start)?
        }
        (None, "default") => default_scenario(args.seed, start),
        (None, "varied") => varied_scenario(args.seed, start),
        (None, other) => {
            return Err(crate::Usage(format!(
                "unknown scenario `{other}`; available: default, varied (or --scenario-file)"
            ))
            .into())
        }
    };
    if let Some(d) = &args.duration {
        scenario.duration =
            parse_duration(d).map_err(|e| crate::Usage(format!("--duration: {e}")))?;
        // The ground truth lists only incidents that begin within the period.
        let end = scenario.start + scenario.duration;
        scenario.incidents.retain(|i| i.precursor_start < end);
    }
    if !(args.scale > 0.0 && args.scale.is_finite()) {
        return Err(crate::Usage("--scale must be a positive number".to_string()).into());
    }
    scenario.scale *= args.scale;
    for (value, flag) in [(args.speed, "--speed"), (args.rate, "--rate")] {
        if value.is_some_and(|v| !(v > 0.0 && v.is_finite())) {
            return Err(crate::Usage(format!("{flag} must be a positive number")).into());
        }
    }
    let mut pacer = Pacer::new(scenario.start, args.speed, args.rate);
    let paced = args.speed.is_some() || args.rate.is_some();
    if let Some(path) = &args.truth {
        let f = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        serde_json::to_writer_pretty(f, &ground_truth(&scenario))?;
    }
    let mut sink = match &args.brokers {
        Some(brokers) => Sink::Kafka(
            rdkafka::ClientConfig::new()
                .set("bootstrap.servers", brokers)
                .set("enable.idempotence", "true")
                .set("linger.ms", "5")
                .create()
                .context("cannot create the Kafka producer")?,
            args.topic.clone(),
        ),
        None => {
            let out: Box<dyn Write> = if args.out.as_os_str() == "-" {
                Box::new(io::stdout().lock())
            } else {
                Box::new(
                    File::create(&args.out)
                        .with_context(|| format!("cannot create {}", args.out.display()))?,
                )
            };
            Sink::Lines(BufWriter::new(out))
        }
    };
    let mut count = 0u64;
    for e in Simulator::new(scenario) {
        if paced {
            pacer.wait(e.ts);
        }
        sink.send(&e.service, &e.json, paced)?;
        count += 1;
    }
    sink.finish()?;
    note!("simulate: {count} events");
    Ok(())
}
