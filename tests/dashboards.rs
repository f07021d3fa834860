//! Every PromQL expression in every shipped Grafana dashboard returns data from
//! a real Prometheus (Debian's package) scraping a real `forewarn run` — no
//! broken panels — and the shipped meta-alert rules load into it.

mod support;

use std::path::Path;

use std::time::Duration;

use serde_json::Value;
use support::{
    base_ms, config, eventually, http_get, percent_encode, requests, Alertmanager, Broker,
    Forewarn, Prometheus, TempDir, Webhook, ESTATE,
};

const WAIT: Duration = Duration::from_secs(60);
const DEPLOY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");

/// What an imported dashboard needs to work on any Grafana: the data source is
/// a template variable (not a uid only our provisioning has), and every panel
/// states its unit.
fn conventions(file: &str, dashboard: &Value) {
    let vars = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        vars.iter().any(|v| v["name"] == "datasource"
            && v["type"] == "datasource"
            && v["query"] == "prometheus"),
        "{file}: no datasource variable"
    );
    for p in dashboard["panels"].as_array().unwrap() {
        let title = p["title"].as_str().unwrap();
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{file} / {title}");
        for t in p["targets"].as_array().unwrap() {
            assert_eq!(t["datasource"]["uid"], "${datasource}", "{file} / {title}");
        }
        let unit = p["fieldConfig"]["defaults"]["unit"].as_str().unwrap_or("");
        assert!(!unit.is_empty(), "{file} / {title}: no unit");
    }
}

/// Every target expression of a dashboard, with Grafana's variables filled in.
fn expressions(dashboard: &Value, service: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().unwrap() {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$service", service);
            out.push((p["title"].as_str().unwrap().to_string(), expr));
        }
    }
    out
}

const SLO_RULE: &str = r#"
[[rules]]
name = "ErrorRateUnusual"
kind = "anomaly"
signal = "error_rate"
direction = "above"

[[rules]]
name = "ErrorRateHeading"
kind = "forecast"
signal = "error_rate"
level = 0.3
history = "160s"
horizon = "10m"

[[rules]]
name = "AvailabilitySLOBurn"
kind = "slo"
total = { kind = "request" }
good = { outcome = "ok" }
objective = 0.99
"#;

#[test]
fn every_dashboard_expression_returns_data() {
    let broker = Broker::start();
    let dir = TempDir::new("dash");
    // With anomaly, forecast and SLO rules, so their panels have series too.
    let estate = format!("{ESTATE}{SLO_RULE}");
    let cfg = config(
        &dir.0,
        &estate,
        &broker.addr,
        "dash",
        "properties = { \"statistics.interval.ms\" = 500 }",
    );
    for (t, p) in [("dash-events", 2), ("dash-alerts", 1), ("dash-dead", 1)] {
        broker.create_topic(t, p);
    }
    // pay fails from 100 s on (its alert is firing at the end), plus one bad event.
    let mut events = requests(base_ms(), &["pay", "cart"], 0, 200, &["pay"], (100, 200));
    events.insert(50, (Some("pay".into()), b"{not json".to_vec()));
    broker.produce("dash-events", &events);
    // Alerts go to a real Alertmanager too, so the notification panels have data.
    let hook = Webhook::start();
    let am = Alertmanager::start(&hook.url);
    let run = Forewarn::start_with(&cfg, &dir.0, "run", &["--alertmanager", &am.url], &[]);
    eventually(WAIT, "consumed", || {
        broker.all_committed("dash-group", "dash-events")
    });
    let target = run.http_addr().unwrap();

    // Prometheus scraping forewarn every second, with the shipped rules loaded.
    let rules = Path::new(DEPLOY).join("prometheus/rules/forewarn-meta.rules.yml");
    let prom = Prometheus::start(
        &format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: forewarn\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        ),
        &dir.0,
    );
    let prom_addr = prom.addr.clone();
    let query = |expr: &str| prom.query(expr);
    eventually(WAIT, "a few scrapes", || {
        query("count_over_time(up{job=\"forewarn\"}[1m]) >= 4")["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
    });

    // The service variable's query has values.
    let (_, series) = http_get(
        &prom_addr,
        &format!(
            "/api/v1/series?match[]={}",
            percent_encode("forewarn_risk_score")
        ),
    );
    assert!(series.contains("\"service\":\"pay\""), "{series}");

    let mut checked = 0;
    for file in [
        "service-risk-overview",
        "service-drilldown",
        "pipeline-health",
    ] {
        let path = Path::new(DEPLOY).join(format!("grafana/dashboards/{file}.json"));
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        conventions(file, &dashboard);
        for (title, expr) in expressions(&dashboard, "pay") {
            let mut last = Value::Null;
            let ok = (0..100).any(|_| {
                last = query(&expr);
                let has = last["data"]["result"]
                    .as_array()
                    .is_some_and(|r| !r.is_empty());
                if !has {
                    std::thread::sleep(Duration::from_millis(200)); // next scrape
                }
                has
            });
            assert!(ok, "{file} / {title}: `{expr}` returned no data: {last}");
            checked += 1;
        }
    }
    assert!(checked >= 35, "only {checked} expressions");

    // The meta-alert rules loaded, every one the file ships.
    let shipped = std::fs::read_to_string(&rules)
        .unwrap()
        .matches("- alert: ")
        .count();
    assert!(shipped >= 9, "only {shipped} meta-alerts in the file");
    let (_, loaded) = http_get(&prom_addr, "/api/v1/rules");
    let loaded: Value = serde_json::from_str(&loaded).unwrap();
    let group = &loaded["data"]["groups"][0];
    assert_eq!(group["name"], "forewarn-meta");
    assert_eq!(group["rules"].as_array().unwrap().len(), shipped);
    run.terminate(WAIT);
}
