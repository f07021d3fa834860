//! forewarn → a real Alertmanager (Debian's package) → a webhook: the firing
//! page arrives with the right labels and grouping, an Alertmanager outage
//! during the incident loses nothing, and the resolved notification follows.

mod support;

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
        metric(&addr, "forewarn_transitions_total{alertname=\"ErrorRateHigh\",severity=\"critical\",status=\"firing\"}") >= 1.0
            && metric(&addr, "forewarn_notifications_failed_total") >= 1.0
    });
    assert!(notified(&hook, "pay", "firing").is_empty());

    // Back up: the queued firing alert is delivered and pages.
    am.restart();
    eventually(WAIT, "firing page", || {
        !notified(&hook, "pay", "firing").is_empty()
    });
    let page = &notified(&hook, "pay", "firing")[0];
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
