use super::*;
use forewarn_core::decode;

const START: i64 = 1_795_172_400_000; // 2026-11-20T11:00:00Z, a Friday

fn short(seed: u64) -> Scenario {
    let mut s = default_scenario(seed, START);
    s.duration = 10 * 60_000;
    s.scale = 0.2;
    s
}

#[test]
fn same_seed_same_stream_different_seed_differs() {
    let a: Vec<SimEvent> = Simulator::new(short(42)).collect();
    let b: Vec<SimEvent> = Simulator::new(short(42)).collect();
    let c: Vec<SimEvent> = Simulator::new(short(43)).collect();
    assert!(a.len() > 1000, "{}", a.len());
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(ground_truth(&short(42)), ground_truth(&short(42)));
}

#[test]
fn events_are_valid_and_time_ordered() {
    let events: Vec<SimEvent> = Simulator::new(short(7)).collect();
    let mut last = i64::MIN;
    for e in &events {
        let ev = decode(e.json.as_bytes()).unwrap_or_else(|err| panic!("{err}: {}", e.json));
        assert_eq!(ev.ts, e.ts);
        assert_eq!(&*ev.service, &*e.service);
        assert!(e.ts >= last, "out of order");
        last = e.ts;
    }
    let services: std::collections::BTreeSet<&str> = events.iter().map(|e| &*e.service).collect();
    assert_eq!(
        services.len(),
        retail_services().len(),
        "every service emits"
    );
}

/// Share of `service` requests that failed between `from` and `to` minutes.
fn error_share(events: &[SimEvent], service: &str, from: i64, to: i64) -> f64 {
    let in_range: Vec<_> = events
        .iter()
        .filter(|e| {
            &*e.service == service
                && e.ts >= START + from * 60_000
                && e.ts < START + to * 60_000
                && e.json.contains(r#""kind":"request""#)
        })
        .collect();
    let failed = in_range
        .iter()
        .filter(|e| !e.json.contains(r#""outcome":"ok""#))
        .count();
    failed as f64 / in_range.len().max(1) as f64
}

#[test]
fn incidents_degrade_their_services_and_spikes_do_not() {
    let mut s = default_scenario(1, START);
    s.duration = 60 * 60_000;
    s.scale = 0.5;
    let events: Vec<SimEvent> = Simulator::new(s).collect();
    // Payment: healthy before the precursor, failing at the SLA breach (minute 40).
    let before = error_share(&events, "payment", 0, 20);
    let during = error_share(&events, "payment", 40, 55);
    assert!(before < 0.02, "baseline {before}");
    assert!(during > 0.08, "incident {during}");
    let search = error_share(&events, "search", 0, 60);
    assert!(search < 0.01, "unaffected service {search}");
}

#[test]
fn ground_truth_lists_incidents_in_order() {
    let truth = ground_truth(&default_scenario(3, START));
    let incidents = truth["incidents"].as_array().unwrap();
    assert_eq!(incidents.len(), 6);
    let categories: Vec<&str> = incidents
        .iter()
        .map(|i| i["category"].as_str().unwrap())
        .collect();
    assert_eq!(
        categories,
        [
            "system",
            "execution",
            "execution",
            "information",
            "communication",
            "system"
        ]
    );
    for i in incidents {
        assert!(i["precursor_start_ms"].as_i64() < i["sla_breach_ms"].as_i64());
        assert!(i["sla_breach_ms"].as_i64() < i["end_ms"].as_i64());
    }
    assert_eq!(truth["benign"][0]["id"], "benign-storefront-spike");
}

#[test]
fn scorecard_classifies_early_late_missed_and_false_alarms() {
    let s = default_scenario(1, START);
    let fired = |rule: &str, service: &str, at: i64| Fired {
        at,
        service: service.into(),
        rule: rule.into(),
    };
    let inc = |id: &str| s.incidents.iter().find(|i| i.id == id).unwrap();
    let alerts = vec![
        // Payment: early (5 minutes before breach).
        fired("P99", "payment", inc("system-payment").sla_breach - 300_000),
        // Fulfilment: only after the breach.
        fired(
            "Sla",
            "fulfilment",
            inc("execution-fulfilment").sla_breach + 60_000,
        ),
        // Dispatch stall, storefront information incident and checkout
        // saturation: nothing. Support: early.
        fired(
            "Sentiment",
            "support",
            inc("communication-support").sla_breach - 1_000,
        ),
        // Search is in no incident: a false alarm, counted once.
        fired("Err", "search", START + 1_000),
        fired("Err", "search", START + 2_000),
    ];
    let card = score(&s, &alerts, 0);
    assert_eq!(
        (card.detected_early, card.detected_late, card.missed),
        (2, 1, 3)
    );
    assert_eq!(card.incidents[0].lead_seconds, Some(300.0));
    assert_eq!(card.incidents[3].first_alert, None);
    assert_eq!(
        card.false_alarms,
        vec![("Err".to_string(), "search".to_string(), START + 1_000)]
    );
}

#[test]
fn the_shipped_default_file_is_the_default_scenario() {
    let loaded = load_scenario(
        include_str!("../scenarios/default.toml"),
        "default.toml",
        11,
        START,
    )
    .unwrap();
    assert_eq!(loaded, default_scenario(11, START));
}

#[test]
fn scenario_file_errors_are_located() {
    let e = load_scenario("name = \"x\"\nduration = \"1h\"\n[[spikes]]\nid = \"s\"\nservices = [\"nope\"]\nmultiplier = 2.0\nstart = \"1m\"\nend = \"2m\"\n", "s.toml", 1, START).unwrap_err();
    assert_eq!(e.line, 3, "{e}"); // the [[spikes]] table
    assert!(e.message.contains("unknown service `nope`"), "{e}");
    let e = load_scenario("name = \"x\"\nduration = \"1h\"\n[[incidents]]\nid = \"i\"\ncategory = \"system\"\nservices = [\"payment\"]\nprecursor_start = \"30m\"\nsla_breach = \"10m\"\nend = \"40m\"\n", "s.toml", 1, START).unwrap_err();
    assert!(e.message.contains("start must come before end"), "{e}");
    let e = load_scenario("name = \"x\"\nduraton = \"1h\"\n", "s.toml", 1, START).unwrap_err();
    assert!(e.message.contains("unknown field `duraton`"), "{e}");
}

/// Minutes from open to close of the orders opened in `[from, to)` minutes.
fn order_minutes(events: &[SimEvent], from: i64, to: i64) -> Vec<f64> {
    let mut opened = std::collections::HashMap::new();
    let mut out = Vec::new();
    for e in events {
        let v: serde_json::Value = serde_json::from_str(&e.json).unwrap();
        let Some(id) = v["entity"].as_str() else {
            continue;
        };
        if !id.starts_with("order-") {
            continue;
        }
        match v["phase"].as_str() {
            Some("open") => {
                opened.insert(id.to_string(), e.ts);
            }
            Some("close") => {
                if let Some(o) = opened.get(id) {
                    let m = (o - START) / 60_000;
                    if (from..to).contains(&m) {
                        out.push((e.ts - o) as f64 / 60_000.0);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn a_dispatch_stall_delays_orders_but_no_request() {
    let mut s = default_scenario(2, START);
    s.duration = 60 * 60_000;
    s.scale = 0.5;
    let events: Vec<SimEvent> = Simulator::new(s).collect();
    let late = |v: &[f64]| v.iter().filter(|m| **m > 10.0).count() as f64 / v.len() as f64;
    let before = order_minutes(&events, 5, 25);
    let during = order_minutes(&events, 38, 45);
    assert!(
        before.len() > 100 && late(&before) < 0.01,
        "{} orders, {}",
        before.len(),
        late(&before)
    );
    assert!(
        late(&during) > 0.5,
        "orders opened in the stall: {} late",
        late(&during)
    );
    // Every request of fulfilment stays as fast and successful as before.
    assert!(error_share(&events, "fulfilment", 30, 55) < 0.02);
}

/// A one-service scenario file with one single-symptom incident or blip.
fn single_symptom(extra: &str) -> Scenario {
    let src = format!(
        "name = \"t\"\nduration = \"40m\"\n[[services]]\nname = \"cart\"\nrole = \"requests\"\nrate = 40\nlatency_ms = 90\nsla_ms = 600\nerror_rate = 0.003\n{extra}"
    );
    load_scenario(&src, "t.toml", 3, START).unwrap_or_else(|e| panic!("{e}"))
}

fn requests_between(events: &[SimEvent], from: i64, to: i64) -> usize {
    events
        .iter()
        .filter(|e| e.ts >= START + from * 60_000 && e.ts < START + to * 60_000)
        .count()
}

#[test]
fn single_symptom_effects_change_only_their_symptom() {
    let incident = |effect: &str, magnitude: &str| {
        single_symptom(&format!(
            "[[incidents]]\nid = \"i\"\ncategory = \"system\"\nservices = [\"cart\"]\nprecursor_start = \"20m\"\nsla_breach = \"21m\"\nend = \"40m\"\neffect = \"{effect}\"\n{magnitude}"
        ))
    };
    let errors: Vec<SimEvent> = Simulator::new(incident("errors", "magnitude = 0.1")).collect();
    assert!(error_share(&errors, "cart", 0, 20) < 0.02);
    let during = error_share(&errors, "cart", 22, 40);
    assert!((0.08..0.14).contains(&during), "{during}");
    let lost: Vec<SimEvent> =
        Simulator::new(incident("traffic_loss", "magnitude = 0.75")).collect();
    let (before, after) = (
        requests_between(&lost, 0, 18),
        requests_between(&lost, 22, 40),
    );
    let kept = after as f64 / before as f64;
    assert!((0.15..0.35).contains(&kept), "{kept} of the traffic kept");
    assert!(
        error_share(&lost, "cart", 22, 40) < 0.02,
        "a silent loss fails nothing"
    );
}

#[test]
fn a_deploy_blip_fails_requests_only_while_it_lasts() {
    let blip = single_symptom(
        "[[spikes]]\nid = \"b\"\nservices = [\"cart\"]\nmultiplier = 1.0\nerrors = 0.5\nstart = \"20m\"\nend = \"21m\"\n",
    );
    let events: Vec<SimEvent> = Simulator::new(blip).collect();
    assert!((0.4..0.6).contains(&error_share(&events, "cart", 20, 21)));
    assert!(error_share(&events, "cart", 21, 40) < 0.02);
}

#[test]
fn out_of_range_magnitudes_and_blip_errors_are_refused() {
    let bad = "name = \"t\"\nduration = \"1h\"\n[[spikes]]\nid = \"b\"\nservices = [\"cart\"]\nmultiplier = 1.0\nerrors = 1.5\nstart = \"1m\"\nend = \"2m\"\n";
    let e = load_scenario(bad, "t.toml", 1, START).unwrap_err();
    assert!(e.message.contains("errors a share within 0..=1"), "{e}");
    let bad = "name = \"t\"\nduration = \"1h\"\n[[incidents]]\nid = \"i\"\ncategory = \"system\"\nservices = [\"cart\"]\nprecursor_start = \"1m\"\nsla_breach = \"2m\"\nend = \"3m\"\neffect = \"errors\"\nmagnitude = -1\n";
    let e = load_scenario(bad, "t.toml", 1, START).unwrap_err();
    assert!(e.message.contains("magnitude must be a number >= 0"), "{e}");
}

#[test]
fn the_multiday_scenario_file_loads_with_its_incidents_and_benign_events() {
    let s = load_scenario(
        include_str!("../scenarios/multiday.toml"),
        "multiday.toml",
        1,
        START,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.duration, 62 * 3_600_000);
    let effects: Vec<crate::model::Effect> = s.incidents.iter().map(|i| i.effect).collect();
    use crate::model::Effect::*;
    assert_eq!(effects, [Errors, Errors, LatencyCreep, TrafficLoss]);
    assert_eq!(s.spikes.len(), 2);
    assert!(s
        .spikes
        .iter()
        .any(|sp| sp.errors > 0.0 && sp.multiplier == 1.0));
}

#[test]
fn a_degradations_magnitude_scales_its_symptoms() {
    let incident = |magnitude: &str| {
        single_symptom(&format!(
            "[[incidents]]\nid = \"i\"\ncategory = \"system\"\nservices = [\"cart\"]\nprecursor_start = \"20m\"\nsla_breach = \"21m\"\nend = \"40m\"\n{magnitude}"
        ))
    };
    let share = |magnitude: &str| {
        let events: Vec<SimEvent> = Simulator::new(incident(magnitude)).collect();
        error_share(&events, "cart", 22, 40)
    };
    let (mild, normal) = (share("magnitude = 0.5"), share(""));
    assert!((0.05..0.11).contains(&mild), "{mild}");
    assert!((0.12..0.19).contains(&normal), "{normal}");
}
