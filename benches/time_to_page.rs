//! Time to page, side by side, in one run: the same step incident (a service's
//! error rate jumping from 0.5% to 10%) through
//!   (a) forewarn (`forewarn run` on Tansu) → real Alertmanager → webhook, and
//!   (b) the same traffic exposed as counters → real Prometheus (15 s scrape and
//!       evaluation, `rate(...[1m])` rule) → real Alertmanager → webhook,
//! each with Alertmanager `group_wait` 0s and the default 30s (four Alertmanagers,
//! each with its own webhook, so one incident is measured four ways).
//!
//! `cargo bench --bench time_to_page` (env FOREWARN_TTP_TRIALS, default 6, at most 8).
//! Traffic: 8 services × 200 requests/s, event time = wall time; trial k steps
//! service k at T0 and waits until all four webhooks have paged for it.
//!
//! Each trial gets a fresh Tansu and a fresh `forewarn run`: Tansu 0.6.0's
//! in-memory storage starts stalling fetches for 60 s after ~7 minutes of this
//! load, which would measure the broker, not forewarn. The Prometheus path keeps
//! one long-lived Prometheus (it needs a minute of history before a step).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::producer::{BaseProducer, BaseRecord};
use rdkafka::ClientConfig;
use support::{Alertmanager, Broker, Forewarn, Prometheus, TempDir, Webhook};

const SERVICES: usize = 8;
const RATE: u64 = 200; // requests per second per service

/// forewarn's rule: error rate over a 3 s window sliding by 500 ms, with 1 s of
/// allowed lateness (the stream is live: event time = wall time).
const FOREWARN_RULES: &str = r#"
[time]
allowed_lateness = "1s"

[[signals]]
name = "error_rate"
aggregate = "rate"
filter = { outcome = ["error", "timeout"] }
of = { kind = "request" }
window = "3s"
slide = "500ms"

[[rules]]
name = "ErrorRateHigh"
kind = "threshold"
signal = "error_rate"
warning = { value = 0.05, clear = 0.03 }
min_events = 100
category = "system"
"#;

/// Prometheus's equivalent: the same ratio, over the shortest robust range for
/// a 15 s scrape (four samples).
const PROMETHEUS_RULES: &str = r#"groups:
  - name: ttp
    rules:
      - alert: ErrorRateHigh
        expr: sum by (service) (rate(ttp_errors_total[1m])) / sum by (service) (rate(ttp_requests_total[1m])) > 0.05
        labels:
          severity: warning
"#;

#[derive(Default)]
struct Counters {
    requests: u64,
    errors: u64,
}

fn wall_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Serves the counters in Prometheus text format.
fn exporter(counters: Arc<Mutex<BTreeMap<String, Counters>>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let mut body = String::from(
                "# TYPE ttp_requests_total counter\n# TYPE ttp_errors_total counter\n",
            );
            for (svc, c) in counters.lock().unwrap().iter() {
                body.push_str(&format!(
                    "ttp_requests_total{{service=\"{svc}\"}} {}\n",
                    c.requests
                ));
                body.push_str(&format!(
                    "ttp_errors_total{{service=\"{svc}\"}} {}\n",
                    c.errors
                ));
            }
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

/// When the webhook first paged (firing) for `service`, if it has.
fn paged_at(
    hook: &Webhook,
    seen: &Mutex<BTreeMap<(usize, String), Instant>>,
    idx: usize,
    service: &str,
) -> Option<Instant> {
    let mut seen = seen.lock().unwrap();
    if let Some(t) = seen.get(&(idx, service.to_string())) {
        return Some(*t);
    }
    let hit = hook
        .all()
        .iter()
        .any(|n| n["status"] == "firing" && n["groupLabels"]["service"] == service);
    if hit {
        let now = Instant::now();
        seen.insert((idx, service.to_string()), now);
        return Some(now);
    }
    None
}

/// The forewarn path of one trial: its own broker and `forewarn run`.
struct ForewarnPath {
    forewarn: Forewarn,
    broker: Broker,
}

impl ForewarnPath {
    fn start(dir: &TempDir, k: usize, alertmanagers: &str) -> ForewarnPath {
        let broker = Broker::start();
        for (t, p) in [("ttp-events", 2), ("ttp-alerts", 1), ("ttp-dead", 1)] {
            broker.create_topic(t, p);
        }
        let cfg = dir.0.join(format!("forewarn-{k}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "{FOREWARN_RULES}\n[kafka]\nbrokers = \"{}\"\ngroup_id = \"ttp\"\ntopics = [\"ttp-events\"]\nalerts_topic = \"ttp-alerts\"\ndead_letter_topic = \"ttp-dead\"\n",
                broker.addr
            ),
        )
        .unwrap();
        let forewarn = Forewarn::start_with(
            &cfg,
            &dir.0,
            &format!("forewarn-{k}"),
            &["--alertmanager", alertmanagers],
            &[],
        );
        ForewarnPath { forewarn, broker }
    }

    /// Events forewarn has applied so far (from its `/metrics`).
    fn applied(&self) -> f64 {
        let Some(addr) = self.forewarn.http_addr() else {
            return 0.0;
        };
        let (_, m) = support::http_get(&addr, "/metrics");
        m.lines()
            .filter(|l| l.starts_with("forewarn_events_total{") && l.contains("result=\"applied\""))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Prints what forewarn logged and counted, when it missed a page.
    fn diagnose(&self, svc: &str) {
        let log = self.forewarn.stderr();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        println!("forewarn did not page for {svc}; last log lines:");
        for l in tail.iter().rev() {
            println!("  {l}");
        }
        if let Some(addr) = self.forewarn.http_addr() {
            let (_, m) = support::http_get(&addr, "/metrics");
            for l in m.lines().filter(|l| {
                !l.starts_with('#')
                    && (l.contains("transitions")
                        || l.contains("notifications")
                        || l.contains(svc)
                        || l.contains("events_total")
                        || l.contains("watermark"))
            }) {
                println!("  {l}");
            }
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let trials: usize = std::env::var("FOREWARN_TTP_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
        .min(SERVICES);
    let dir = TempDir::new("ttp");
    // Four Alertmanagers: forewarn and Prometheus paths × group_wait 0s and 30s.
    let hooks: Vec<Webhook> = (0..4).map(|_| Webhook::start()).collect();
    let ams: Vec<Alertmanager> = hooks
        .iter()
        .enumerate()
        .map(|(i, h)| {
            Alertmanager::start_with_group_wait(&h.url, if i % 2 == 0 { "0s" } else { "30s" })
        })
        .collect();
    let labels = [
        "forewarn, group_wait 0s",
        "forewarn, group_wait 30s",
        "Prometheus, group_wait 0s",
        "Prometheus, group_wait 30s",
    ];
    let forewarn_ams = format!("{},{}", ams[0].url, ams[1].url);

    let counters: Arc<Mutex<BTreeMap<String, Counters>>> = Arc::default();
    let target = exporter(Arc::clone(&counters));
    std::fs::write(dir.0.join("ttp.rules.yml"), PROMETHEUS_RULES).unwrap();
    let am_host = |u: &str| u.trim_start_matches("http://").to_string();
    let _prometheus = Prometheus::start(
        &format!(
            "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\nrule_files:\n  - {}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{}', '{}']\nscrape_configs:\n  - job_name: ttp\n    static_configs:\n      - targets: ['{target}']\n",
            dir.0.join("ttp.rules.yml").display(),
            am_host(&ams[2].url),
            am_host(&ams[3].url)
        ),
        &dir.0,
    );

    // Traffic: every service at 0.5% errors; `failing` services at 10%. The
    // same requests are counted for Prometheus and, when a trial's broker is
    // up, produced to it for forewarn.
    let failing: Arc<Mutex<Vec<String>>> = Arc::default();
    let brokers: Arc<Mutex<Option<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let generator = {
        let (brokers, counters, failing, stop) = (
            Arc::clone(&brokers),
            Arc::clone(&counters),
            Arc::clone(&failing),
            Arc::clone(&stop),
        );
        std::thread::spawn(move || {
            let mut producer: Option<(String, BaseProducer)> = None;
            let start = Instant::now();
            let mut tick: u64 = 0;
            while !stop.load(Ordering::Relaxed) {
                // 10 ms slices: 2 requests per service per slice = 200/s.
                let due = start + Duration::from_millis(10 * tick);
                if let Some(w) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(w); // pacing, not synchronisation
                }
                let want = brokers.lock().unwrap().clone();
                if want.as_deref() != producer.as_ref().map(|(a, _)| a.as_str()) {
                    // One request in flight: Tansu may append concurrent requests
                    // of one connection out of order (seen as late events).
                    producer = want.map(|addr| {
                        let p: BaseProducer = ClientConfig::new()
                            .set("bootstrap.servers", &addr)
                            .set("linger.ms", "2")
                            .set("max.in.flight.requests.per.connection", "1")
                            .create()
                            .unwrap();
                        (addr, p)
                    });
                }
                let failing = failing.lock().unwrap().clone();
                let mut c = counters.lock().unwrap();
                for s in 0..SERVICES {
                    let svc = format!("svc-{s}");
                    let share = if failing.contains(&svc) { 0.10 } else { 0.005 };
                    for i in 0..(RATE / 100) {
                        let n = tick * (RATE / 100) + i;
                        // Deterministic spread: every (1/share)-th request fails.
                        let bad = ((n as f64 * share).floor() - ((n as f64 - 1.0) * share).floor())
                            >= 1.0;
                        if let Some((_, p)) = &producer {
                            let line = format!(
                                r#"{{"ts":{},"service":"{svc}","kind":"request","outcome":"{}"}}"#,
                                wall_ms(),
                                if bad { "error" } else { "ok" }
                            );
                            let _ = p.send(
                                BaseRecord::<str, str>::to("ttp-events")
                                    .key(&svc)
                                    .payload(&line),
                            );
                        }
                        let e = c.entry(svc.clone()).or_default();
                        e.requests += 1;
                        e.errors += u64::from(bad);
                    }
                }
                drop(c);
                if let Some((_, p)) = &producer {
                    p.poll(Duration::ZERO);
                }
                tick += 1;
            }
        })
    };

    // Warm-up: the Prometheus path needs a minute of healthy history.
    println!("warming up for 75 s (Prometheus needs a full 1m range of healthy samples)");
    std::thread::sleep(Duration::from_secs(75)); // a fixed warm-up, not synchronisation
    let seen = Mutex::new(BTreeMap::new());
    let mut results: Vec<[f64; 4]> = Vec::new();
    for k in 0..trials {
        let svc = format!("svc-{k}");
        let path = ForewarnPath::start(&dir, k, &forewarn_ams);
        *brokers.lock().unwrap() = Some(path.broker.addr.clone());
        // forewarn's window is 3 s: 10 s of healthy traffic applied is history
        // enough (and proves the path is flowing before the step).
        let warm = (SERVICES as u64 * RATE * 10) as f64;
        support::eventually(
            Duration::from_secs(120),
            "forewarn applied 10 s of traffic",
            || path.applied() >= warm,
        );
        // Start each step at a different phase of Prometheus's 15 s scrape and
        // evaluation grid (trials would otherwise align with it).
        std::thread::sleep(Duration::from_millis(500 + (k as u64 * 6_700) % 15_000));
        let t0 = Instant::now();
        failing.lock().unwrap().push(svc.clone());
        let deadline = t0 + Duration::from_secs(240);
        let mut times = [f64::NAN; 4];
        while times.iter().any(|t| t.is_nan()) && Instant::now() < deadline {
            for (i, h) in hooks.iter().enumerate() {
                if times[i].is_nan() {
                    if let Some(at) = paged_at(h, &seen, i, &svc) {
                        times[i] = at.duration_since(t0).as_secs_f64();
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20)); // polling the webhooks
        }
        if times[0].is_nan() || times[1].is_nan() {
            path.diagnose(&svc);
        }
        println!(
            "trial {k} ({svc}): {}",
            labels
                .iter()
                .zip(times)
                .map(|(l, t)| format!("{l}: {t:.1} s"))
                .collect::<Vec<_>>()
                .join("; ")
        );
        results.push(times);
        // Healthy again before the next trial, so each step starts from baseline.
        failing.lock().unwrap().retain(|s| s != &svc);
        *brokers.lock().unwrap() = None;
        drop(path);
    }
    stop.store(true, Ordering::Relaxed);
    generator.join().unwrap();
    println!(
        "\nseconds from the first bad event to the page (mean over {trials} trials, min..max):"
    );
    for (i, l) in labels.iter().enumerate() {
        let v: Vec<f64> = results.iter().map(|r| r[i]).collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let min = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let max = v.iter().cloned().fold(0.0, f64::max);
        println!("  {l:<28} {mean:6.1} s  ({min:.1}..{max:.1})");
    }
    for (w, (a, b)) in [("0s", (0, 2)), ("30s", (1, 3))] {
        let fw: f64 = results.iter().map(|r| r[a]).sum::<f64>();
        let pr: f64 = results.iter().map(|r| r[b]).sum::<f64>();
        println!(
            "  Prometheus path / forewarn path, group_wait {w}: {:.1}x",
            pr / fw
        );
    }
}
