//! `GET /api/v1/risk`: per service, its risk score and what makes it up, so
//! on-call sees why a service is at risk before anything pages.
//!
//! A service's score is the largest risk of its rules
//! ([`forewarn_core::risk`]: firing critical 1, pending critical 0.7, firing
//! warning 0.5, pending warning 0.3, a threshold's proximity up to 0.25);
//! its contributions are every rule group with a risk above zero, largest
//! first. Services come highest score first; `?service=NAME` keeps one.

use std::collections::BTreeMap;

use forewarn_kafka::GroupReading;
use serde_json::{json, Value};

/// The API document for `readings`, optionally for one service only.
pub fn document(readings: &[GroupReading], only: Option<&str>) -> Value {
    let mut by_service: BTreeMap<&str, Vec<&GroupReading>> = BTreeMap::new();
    for r in readings {
        let service = r.labels.first().map_or("", |l| l.1.as_str());
        if only.is_none_or(|s| s == service) {
            by_service.entry(service).or_default().push(r);
        }
    }
    let mut services: Vec<(f64, Value)> = by_service
        .into_iter()
        .map(|(service, mut rs)| {
            rs.retain(|r| r.risk > 0.0);
            rs.sort_by(|a, b| b.risk.total_cmp(&a.risk).then_with(|| a.rule.cmp(&b.rule)));
            let score = rs.first().map_or(0.0, |r| r.risk);
            let contributions: Vec<Value> = rs.iter().map(|r| contribution(r)).collect();
            (
                score,
                json!({"service": service, "score": score, "contributions": contributions}),
            )
        })
        .collect();
    services.sort_by(|a, b| b.0.total_cmp(&a.0));
    json!({
        "status": "success",
        "data": { "services": services.into_iter().map(|(_, v)| v).collect::<Vec<_>>() },
    })
}

fn contribution(r: &GroupReading) -> Value {
    let labels: BTreeMap<&str, &str> = r
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    json!({
        "rule": r.rule,
        "signal": r.signal,
        "labels": labels,
        "risk": r.risk,
        "value": r.value.is_finite().then_some(r.value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(rule: &str, service: &str, value: f64, risk: f64) -> GroupReading {
        GroupReading {
            rule: rule.into(),
            signal: "s".into(),
            labels: vec![("service".into(), service.into())],
            value,
            risk,
            series: Vec::new(),
        }
    }

    #[test]
    fn services_rank_by_their_largest_rule_and_list_contributions_in_order() {
        let readings = [
            reading("ErrorRate", "cart", 0.04, 0.2),
            reading("Latency", "cart", 3100.0, 1.0),
            reading("Silent", "cart", f64::NAN, 0.0),
            reading("ErrorRate", "search", 0.01, 0.05),
            reading("Latency", "idle", f64::NAN, 0.0),
        ];
        let doc = document(&readings, None);
        let services = doc["data"]["services"].as_array().unwrap();
        let names: Vec<&str> = services
            .iter()
            .map(|s| s["service"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["cart", "search", "idle"]);
        assert_eq!(services[0]["score"], 1.0);
        let rules: Vec<&str> = services[0]["contributions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["rule"].as_str().unwrap())
            .collect();
        assert_eq!(
            rules,
            ["Latency", "ErrorRate"],
            "zero-risk rules are left out"
        );
        assert_eq!(services[2]["score"], 0.0);
        let one = document(&readings, Some("search"));
        assert_eq!(one["data"]["services"].as_array().unwrap().len(), 1);
        assert_eq!(
            one["data"]["services"][0]["contributions"][0]["value"],
            0.01
        );
    }
}
