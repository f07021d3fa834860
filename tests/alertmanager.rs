//! forewarn → a real Alertmanager (Debian's package) → a webhook: the firing
//! page arrives with the right labels and grouping, an Alertmanager outage
//! during the incident loses nothing, and the resolved notification follows;
//! with an HA set, every instance is notified and one that is down or hung holds
//! back none of the others.

mod support;

use std::io::Read;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::{
    base_ms, config, eventually, http_get, requests, Alertmanager, Broker, Forewarn, TempDir,
    Webhook, ESTATE,
};

const WAIT: Duration = Duration::from_secs(60);

/// Webhook notifications for `service` with `status` ("firing"/"resolved").
fn notified(hook: &Webhook, service: &str, status: &str) -> Vec<Value> {
    hook.all()
        .into_iter()
        .filter(|n| n["status"] == status && n["groupLabels"]["service"] == service)
        .collect()
}

fn metric(addr: &str, prefix: &str) -> f64 {
    http_get(addr, "/metrics")
        .1
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn alertmanager_pages_through_an_outage_then_resolves() {
    let broker = Broker::start();
    let hook = Webhook::start();
    let mut am = Alertmanager::start(&hook.url);
    let dir = TempDir::new("am");
    let cfg = config(&dir.0, ESTATE, &broker.addr, "am", "");
    for (t, p) in [("am-events", 2), ("am-alerts", 1), ("am-dead", 1)] {
        broker.create_topic(t, p);
    }
    let run = Forewarn::start_with(
        &cfg,
        &dir.0,
        "run",
        &["--alertmanager", &am.url, "--alertmanager-resend", "1s"],
        &[],
    );
    let base = base_ms();
    let services = ["pay", "cart"];
    broker.produce("am-events", &requests(base, &services, 0, 90, &[], (0, 0)));
    eventually(WAIT, "healthy traffic consumed", || {
        broker.all_committed("am-group", "am-events")
    });
    let addr = run.http_addr().unwrap();

    // Alertmanager goes down; pay starts failing at 100 s and its alert fires.
    am.stop();
    broker.produce(
        "am-events",
        &requests(base, &services, 90, 170, &["pay"], (100, 200)),
    );
    eventually(WAIT, "alert fired and delivery failed", || {
        metric(&addr, "forewarn_transitions_total{alertname=\"ErrorRateHigh\",category=\"system\",severity=\"critical\",status=\"firing\"}") >= 1.0
            && metric(&addr, "forewarn_notifications_failed_total") >= 1.0
    });
    assert!(notified(&hook, "pay", "firing").is_empty());

    // Back up: the queued firing alert is delivered and pages.
    am.restart();
    // The warning and the critical instance may reach Alertmanager in
    // separate resends, so its first page may hold only one: wait for the
    // critical one.
    let has_critical = |page: &Value| {
        page["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["labels"]["severity"] == "critical"))
    };
    eventually(WAIT, "firing page with the critical alert", || {
        notified(&hook, "pay", "firing").iter().any(has_critical)
    });
    let pages = notified(&hook, "pay", "firing");
    let page = pages.iter().find(|p| has_critical(p)).unwrap();
    assert_eq!(page["groupLabels"]["alertname"], "ErrorRateHigh");
    let alerts = page["alerts"].as_array().unwrap();
    assert!(alerts.iter().all(|a| a["labels"]["service"] == "pay"
        && a["labels"]["alertname"] == "ErrorRateHigh"
        && a["status"] == "firing"));
    assert!(alerts.iter().any(|a| a["labels"]["severity"] == "critical"
        && a["labels"]["category"] == "system"
        && a["annotations"]["summary"].is_string()));

    // pay recovers at 200 s: the resolved notification follows.
    broker.produce(
        "am-events",
        &requests(base, &services, 170, 400, &["pay"], (100, 200)),
    );
    eventually(WAIT, "resolved notification", || {
        !notified(&hook, "pay", "resolved").is_empty()
    });
    assert!(
        notified(&hook, "cart", "firing").is_empty(),
        "healthy cart never paged"
    );
    run.terminate(WAIT);
}

/// An alert stamped two minutes ahead (a producer's clock, within
/// `max_future_skew`) with a 1 s resend: its `endsAt` (now + 4 s) would be
/// before its `startsAt`, which Alertmanager refuses. forewarn starts it now, so
/// a real Alertmanager accepts it and nothing is rejected.
#[test]
fn an_alert_from_a_clock_ahead_is_accepted_by_a_real_alertmanager() {
    let hook = Webhook::start();
    let am = Alertmanager::start(&hook.url);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let registry = prometheus::Registry::new();
    let n = forewarn_outputs::Notifier::start(
        forewarn_outputs::AlertmanagerOptions {
            urls: vec![am.url.clone()],
            resend_interval: Duration::from_secs(1),
            ..Default::default()
        },
        &registry,
        runtime.handle(),
    )
    .unwrap();
    let ahead = forewarn_core::time::format_rfc3339(base_ms_now() + 120_000);
    n.notify(&forewarn_core::Alert {
        status: "firing",
        transition: forewarn_core::lifecycle::TransitionKind::Firing,
        labels: [
            ("alertname".to_string(), "ClockAhead".to_string()),
            ("service".to_string(), "ahead".to_string()),
        ]
        .into(),
        annotations: Default::default(),
        starts_at: ahead,
        ends_at: None,
        generator_url: String::new(),
        fingerprint: "ahead".into(),
        episode: "ahead-1".into(),
        evaluated_at: String::new(),
    });
    let addr = am.url.trim_start_matches("http://").to_string();
    eventually(WAIT, "Alertmanager holds the alert", || {
        http_get(&addr, "/api/v2/alerts").1.contains("ClockAhead")
    });
    runtime.block_on(n.close(Duration::from_secs(1)));
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        text.lines()
            .filter(|l| l.starts_with("forewarn_notifications_rejected_total"))
            .all(|l| l.ends_with(" 0")),
        "{text}"
    );
}

fn base_ms_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A self-signed certificate for 127.0.0.1 (openssl), as (cert, key) paths.
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

/// bcrypt of "forewarn-test-secret" (cost 4), for Alertmanager's web config.
const SECRET_HASH: &str = "$2a$04$LWJhXpM5B/v1T4ezxdsLb.fQI/RQXU9bONGkbDAkZsR4eMMYjBkoi";

/// An Alertmanager behind HTTPS (a private CA) and basic auth: forewarn trusts
/// the CA it is given, sends the password from its file, and the page arrives
/// with no failed request. Without either, Alertmanager would refuse every
/// request and nothing would page.
#[test]
fn alertmanager_over_tls_with_basic_auth() {
    let broker = Broker::start();
    let hook = Webhook::start();
    let dir = TempDir::new("am-tls");
    let (cert, key) = self_signed(&dir.0);
    let am = Alertmanager::start_secured(&hook.url, &cert, &key, "forewarn", SECRET_HASH);
    let password = dir.0.join("password");
    std::fs::write(&password, "forewarn-test-secret\n").unwrap();
    let cfg = config(&dir.0, ESTATE, &broker.addr, "amtls", "");
    for (t, p) in [("amtls-events", 1), ("amtls-alerts", 1), ("amtls-dead", 1)] {
        broker.create_topic(t, p);
    }
    let (cert_arg, password_arg) = (cert.display().to_string(), password.display().to_string());
    let run = Forewarn::start_with(
        &cfg,
        &dir.0,
        "run",
        &[
            "--alertmanager",
            &am.url,
            "--alertmanager-ca-file",
            &cert_arg,
            "--alertmanager-user",
            "forewarn",
            "--alertmanager-password-file",
            &password_arg,
        ],
        &[],
    );
    broker.produce(
        "amtls-events",
        &requests(base_ms(), &["pay"], 0, 200, &["pay"], (100, 200)),
    );
    eventually(WAIT, "firing page through TLS and auth", || {
        !notified(&hook, "pay", "firing").is_empty()
    });
    let addr = run.http_addr().unwrap();
    assert_eq!(metric(&addr, "forewarn_notifications_failed_total"), 0.0);
    assert!(metric(&addr, "forewarn_notifications_sent_total") >= 1.0);
    run.terminate(WAIT);
}

/// A secret file that does not exist is refused at start-up, naming the flag
/// and the path.
#[test]
fn unreadable_alertmanager_secret_is_refused_at_start() {
    let dir = TempDir::new("am-secret");
    let cfg = config(&dir.0, ESTATE, "127.0.0.1:9", "amsecret", "");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_forewarn"))
        .args(["run", "--config"])
        .arg(&cfg)
        .args(["--alertmanager", "https://127.0.0.1:9"])
        .args(["--alertmanager-bearer-token-file", "/nonexistent/token"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--alertmanager-bearer-token-file")
            && stderr.contains("/nonexistent/token"),
        "{stderr}"
    );
}

/// An "Alertmanager" that accepts connections and never answers (a hung
/// instance). Counts connections the client has closed (its timeout).
struct Hung {
    url: String,
    closed: Arc<AtomicUsize>,
}

impl Hung {
    fn start() -> Hung {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let closed = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&closed);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let seen = Arc::clone(&seen);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    // Read and never answer, until the client gives up.
                    while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                    seen.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Hung { url, closed }
    }
}

/// An HA set of three: one hung, one down until mid-incident, one healthy. The
/// healthy one pages before the hung one's request has even timed out; the one
/// that was down gets the firing alert once it is back; both live ones get the
/// resolved notification.
#[test]
fn every_alertmanager_of_an_ha_set_is_notified_and_none_holds_back_another() {
    let broker = Broker::start();
    let hung = Hung::start();
    let (hook_a, hook_b) = (Webhook::start(), Webhook::start());
    let am_a = Alertmanager::start(&hook_a.url);
    let mut am_b = Alertmanager::start(&hook_b.url);
    am_b.stop();
    let dir = TempDir::new("am-ha");
    let cfg = config(&dir.0, ESTATE, &broker.addr, "amha", "");
    for (t, p) in [("amha-events", 2), ("amha-alerts", 1), ("amha-dead", 1)] {
        broker.create_topic(t, p);
    }
    // The hung instance first: a sequential client would wait out its 10 s
    // request timeout before trying the others.
    let urls = format!("{},{},{}", hung.url, am_a.url, am_b.url);
    let run = Forewarn::start_with(
        &cfg,
        &dir.0,
        "run",
        &["--alertmanager", &urls, "--alertmanager-resend", "1s"],
        &[],
    );
    let base = base_ms();
    let services = ["pay", "cart"];
    broker.produce(
        "amha-events",
        &requests(base, &services, 0, 170, &["pay"], (100, 200)),
    );
    eventually(WAIT, "firing page through the healthy instance", || {
        !notified(&hook_a, "pay", "firing").is_empty()
    });
    assert_eq!(
        hung.closed.load(Ordering::SeqCst),
        0,
        "the healthy instance paged while the hung one's first request was still open"
    );
    assert!(notified(&hook_b, "pay", "firing").is_empty());
    let addr = run.http_addr().unwrap();
    eventually(WAIT, "the down instance's failures counted", || {
        metric(
            &addr,
            &format!(
                "forewarn_notifications_failed_total{{alertmanager=\"{}/api/v2/alerts\"}}",
                am_b.url
            ),
        ) >= 1.0
    });

    am_b.restart();
    eventually(WAIT, "firing page through the restarted instance", || {
        !notified(&hook_b, "pay", "firing").is_empty()
    });
    broker.produce(
        "amha-events",
        &requests(base, &services, 170, 400, &["pay"], (100, 200)),
    );
    eventually(WAIT, "resolved through both live instances", || {
        !notified(&hook_a, "pay", "resolved").is_empty()
            && !notified(&hook_b, "pay", "resolved").is_empty()
    });
    for hook in [&hook_a, &hook_b] {
        assert!(
            notified(hook, "cart", "firing").is_empty(),
            "cart never paged"
        );
    }
    run.terminate(WAIT);
}

/// `service`'s active alerts at Alertmanager: (severity, startsAt), sorted.
fn active_at(am: &Alertmanager, service: &str) -> Vec<(String, String)> {
    let filter = support::percent_encode(&format!("service=\"{service}\""));
    let addr = am.url.trim_start_matches("http://");
    let (code, body) = http_get(addr, &format!("/api/v2/alerts?active=true&filter={filter}"));
    assert_eq!(code, 200, "{body}");
    let alerts: Vec<Value> = serde_json::from_str(&body).unwrap();
    let mut v: Vec<(String, String)> = alerts
        .iter()
        .filter(|a| a["status"]["state"] == "active")
        .map(|a| {
            let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
            (s(&a["labels"]["severity"]), s(&a["startsAt"]))
        })
        .collect();
    v.sort();
    v
}

/// The shipped deployment (checkpoints, static membership) crashed with
/// `kill -9` mid-incident, then restarted gracefully (a rolling restart), with
/// a 4 s resend (so `endsAt` 16 s ahead, the shape of the default 1 m / 4 m):
/// a real Alertmanager keeps the alert active with its original `startsAt`
/// across both, sends no RESOLVED and no second page, and every run's
/// messages are accounted for. (With a 1 s resend, `endsAt` 4 s ahead is
/// shorter than Tansu's 6.4 s static rejoin, and this test fails: RESOLVED.)
#[test]
fn a_crash_and_a_rolling_restart_neither_resolve_nor_page_again() {
    let tag = "amkeep";
    let broker = Broker::start();
    let hook = Webhook::start();
    let am = Alertmanager::start(&hook.url);
    let dir = TempDir::new(tag);
    let extra = format!("checkpoint_topic = \"{tag}-checkpoints\"\ncheckpoint_interval = \"500ms\"\nproperties = {{ \"group.instance.id\" = \"{tag}-0\" }}");
    let cfg = config(&dir.0, ESTATE, &broker.addr, tag, &extra);
    for (t, p) in [
        ("events", 2),
        ("alerts", 1),
        ("dead", 1),
        ("checkpoints", 1),
    ] {
        broker.create_topic(&format!("{tag}-{t}"), p);
    }
    let (events, group) = (format!("{tag}-events"), format!("{tag}-group"));
    let args = ["--alertmanager", &am.url, "--alertmanager-resend", "4s"];
    let start = |name: &str| Forewarn::start_with(&cfg, &dir.0, name, &args, &[]);
    let base = base_ms();
    let services = ["pay", "cart"];
    // pay fails from 100 s on, through every run.
    let phase = |from, to| requests(base, &services, from, to, &["pay"], (100, 400));
    let first = phase(0, 200);
    broker.produce(&events, &first);
    let run = start("first");
    eventually(WAIT, "both of pay's alerts active at Alertmanager", || {
        active_at(&am, "pay").len() == 2
    });
    // One group (alertname, service): its page lists both once both arrived.
    eventually(WAIT, "the page with both alerts sent", || {
        notified(&hook, "pay", "firing")
            .iter()
            .any(|p| p["alerts"].as_array().is_some_and(|a| a.len() == 2))
    });
    eventually(WAIT, "first run committed (so checkpointed)", || {
        broker.all_committed(&group, &events)
    });
    let addr = run.http_addr().unwrap();
    let consumed_first = metric(&addr, "forewarn_events_consumed_total") as u64;
    assert_eq!(consumed_first, first.len() as u64);
    let active = active_at(&am, "pay");
    let pages = hook.all().len();
    run.kill();

    let mut produced = first.len();
    let mut consumed = consumed_first;
    for (name, from) in [("after-crash", 200), ("after-rollout", 300)] {
        let more = phase(from, from + 100);
        produced += more.len();
        broker.produce(&events, &more);
        let run = start(name);
        eventually(WAIT, "the endpoint's address logged", || {
            run.http_addr().is_some()
        });
        let addr = run.http_addr().unwrap();
        // The restored alerts are sent at once, then every 4 s: by the third
        // post, a lapse of the previous run's endsAt would have been resolved
        // and notified (group_interval 1 s).
        eventually(WAIT, "three posts from the new run", || {
            metric(&addr, "forewarn_notifications_sent_total") >= 3.0
        });
        assert_eq!(
            active_at(&am, "pay"),
            active,
            "{name}: same alerts, same startsAt"
        );
        eventually(WAIT, "everything committed", || {
            broker.all_committed(&group, &events)
        });
        let stderr = run.terminate(WAIT);
        let [c, applied, dead, late, refused, ..] = support::accounting(&stderr);
        assert_eq!(c, applied + dead + late + refused, "{stderr}");
        consumed += c;
    }
    assert!(
        consumed >= produced as u64,
        "every produced message consumed by some run: {consumed} of {produced}"
    );
    assert!(notified(&hook, "pay", "resolved").is_empty(), "no RESOLVED");
    assert_eq!(hook.all().len(), pages, "no second page: {:?}", hook.all());
    assert!(
        notified(&hook, "cart", "firing").is_empty(),
        "cart never paged"
    );
}
