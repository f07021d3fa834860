//! The default scenario replayed through the shipped example config: every
//! incident category is alerted on an affected service before its SLA breach, and
//! nothing fires outside the incidents (the benign traffic spike included).

use forewarn_core::Config;
use forewarn_sim::{default_scenario, fired_alerts, score};

const START: i64 = 1_795_172_400_000; // 2026-11-20T11:00:00Z

#[test]
fn every_incident_is_detected_before_its_sla_breach_without_false_alarms() {
    let cfg = Config::parse(
        include_str!("../../../deploy/forewarn.example.toml"),
        "example",
    )
    .unwrap();
    let mut scenario = default_scenario(1, START);
    scenario.scale = 0.3; // fewer events, same shape: keeps the debug-build test fast
    let fired = fired_alerts(&scenario, cfg);
    let card = score(&scenario, &fired, 15 * 60_000);
    for inc in &card.incidents {
        let lead = inc
            .lead_seconds
            .unwrap_or_else(|| panic!("{} missed: {card:?}", inc.id));
        assert!(
            lead > 0.0,
            "{} alerted {lead}s after its SLA breach",
            inc.id
        );
    }
    assert_eq!(card.detected_early, 6);
    assert!(
        card.false_alarms.is_empty(),
        "false alarms: {:?}",
        card.false_alarms
    );
    let spike = &scenario.spikes[0];
    assert!(
        !fired.iter().any(
            |f| spike.services.contains(&f.service) && (spike.start..spike.end).contains(&f.at)
        ),
        "the benign spike paged"
    );
}

/// Realizations (start times, hence load levels and random draws) in which the
/// example config used to page on noise: small-sample complaint rates on
/// checkout and storefront, and fulfilment's p99 over ~100 night-time requests.
/// With `confidence = 0.95` on those rules none of them pages outside an
/// incident, and every incident is still caught before its breach. Found with
/// `cargo run --release -p forewarn-sim --example sweep`.
#[test]
fn noise_in_small_samples_does_not_page_at_any_time_of_day() {
    let cfg = Config::parse(
        include_str!("../../../deploy/forewarn.example.toml"),
        "example",
    )
    .unwrap();
    for k in [10, 14, 20, 49, 65, 78] {
        let mut scenario = default_scenario(1, START + k * 101 * 60_000);
        scenario.scale = 0.3;
        let fired = fired_alerts(&scenario, cfg.clone());
        let card = score(&scenario, &fired, 15 * 60_000);
        assert!(
            card.false_alarms.is_empty(),
            "realization {k}: false alarms {:?}",
            card.false_alarms
        );
        assert_eq!(card.detected_early, 6, "realization {k}: {card:?}");
    }
}
