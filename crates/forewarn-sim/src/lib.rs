//! forewarn-sim generates realistic retail service-estate traffic as v1 events,
//! deterministically from a seed, together with the ground truth of the incidents
//! it injects: when each one's precursors begin, when its SLA is breached, when it
//! ends, and which traffic spikes are benign. It exists so that detection (lead time
//! before SLA breach, missed incidents, false alarms) can be measured, by tests and
//! by `forewarn demo`, against known answers.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod file;
mod generate;
mod model;
mod rng;
mod score;
mod varied;

pub use file::{load_scenario, ScenarioError};
pub use generate::{SimEvent, Simulator};
pub use model::{
    default_scenario, load_cycle, retail_services, Incident, Role, Scenario, Service, Spike,
};
pub use rng::Rng;
pub use score::{fired_alerts, score, Fired, IncidentScore, Scorecard};
pub use varied::varied_scenario;

use forewarn_core::time::format_rfc3339;

/// The scenario's ground truth as JSON: incidents and benign spikes with their
/// times (epoch ms and RFC 3339).
pub fn ground_truth(s: &Scenario) -> serde_json::Value {
    let incidents: Vec<serde_json::Value> = s
        .incidents
        .iter()
        .map(|i| {
            let mut v = serde_json::to_value(i).expect("incident serialises");
            v["precursor_start"] = format_rfc3339(i.precursor_start).into();
            v["sla_breach"] = format_rfc3339(i.sla_breach).into();
            v["end"] = format_rfc3339(i.end).into();
            v
        })
        .collect();
    serde_json::json!({
        "scenario": s.name,
        "seed": s.seed,
        "start": format_rfc3339(s.start),
        "end": format_rfc3339(s.start + s.duration),
        "incidents": incidents,
        "benign": s.spikes,
    })
}

#[cfg(test)]
mod tests;
