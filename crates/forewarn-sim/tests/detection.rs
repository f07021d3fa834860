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
    assert_eq!(card.detected_early, 5);
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
