//! Scores alerts against a scenario's ground truth: which incidents were detected
//! and how long before their SLA breach, which were missed, and which alerts were
//! false alarms.

use std::collections::BTreeSet;

use forewarn_core::lifecycle::TransitionKind;
use forewarn_core::time::Millis;
use forewarn_core::{decode, Config, DriveOptions, Driver, Engine, Transition};
use serde::Serialize;

use crate::generate::Simulator;
use crate::model::Scenario;

/// Runs `scenario` through the offline driver for `config` (one engine, events
/// arriving when they happen) and returns every alert that started firing.
pub fn fired_alerts(scenario: &Scenario, config: Config) -> Vec<Fired> {
    let mut driver = Driver::new(config, DriveOptions::default());
    let mut fired = Vec::new();
    let mut sink = |engine: &Engine, t: &Transition| {
        if t.kind == TransitionKind::Firing {
            let a = engine.render(t);
            fired.push(Fired {
                at: t.at,
                service: a.labels["service"].clone(),
                rule: a.labels["alertname"].clone(),
            });
        }
    };
    for e in Simulator::new(scenario.clone()) {
        let event = decode(e.json.as_bytes()).expect("the simulator writes valid events");
        driver.feed(&event, &mut sink);
    }
    fired
}

/// An alert that started firing, as the scorer needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fired {
    /// When it started firing (event time).
    pub at: Millis,
    /// The alert's `service` label.
    pub service: String,
    /// The alert's `alertname`.
    pub rule: String,
}

/// The outcome for one incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentScore {
    /// Incident id.
    pub id: String,
    /// Its category.
    pub category: String,
    /// First alert firing on an affected service between the precursor start and
    /// the end, if any: (rule, service, time).
    pub first_alert: Option<(String, String, Millis)>,
    /// SLA breach time minus first alert time, in seconds (negative: late).
    pub lead_seconds: Option<f64>,
}

/// The whole scorecard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scorecard {
    /// One entry per injected incident.
    pub incidents: Vec<IncidentScore>,
    /// Incidents with an alert before their SLA breach.
    pub detected_early: usize,
    /// Incidents with an alert only after their SLA breach.
    pub detected_late: usize,
    /// Incidents with no alert at all.
    pub missed: usize,
    /// Alerts (rule, service) that fired outside every incident on that service.
    pub false_alarms: Vec<(String, String, Millis)>,
}

/// Scores `fired` against `scenario`. An alert belongs to an incident when it fires
/// on one of the incident's services between its precursor start and `grace` after
/// its end; any other firing is a false alarm (benign spikes included).
pub fn score(scenario: &Scenario, fired: &[Fired], grace: Millis) -> Scorecard {
    let mut incidents = Vec::new();
    let (mut early, mut late, mut missed) = (0, 0, 0);
    for inc in &scenario.incidents {
        let first = fired
            .iter()
            .filter(|f| {
                inc.services.contains(&f.service)
                    && f.at >= inc.precursor_start
                    && f.at < inc.end + grace
            })
            .min_by_key(|f| f.at);
        let lead = first.map(|f| (inc.sla_breach - f.at) as f64 / 1000.0);
        match lead {
            Some(l) if l > 0.0 => early += 1,
            Some(_) => late += 1,
            None => missed += 1,
        }
        incidents.push(IncidentScore {
            id: inc.id.clone(),
            category: inc.category.as_str().to_string(),
            first_alert: first.map(|f| (f.rule.clone(), f.service.clone(), f.at)),
            lead_seconds: lead,
        });
    }
    let mut seen = BTreeSet::new();
    let false_alarms = fired
        .iter()
        .filter(|f| {
            !scenario.incidents.iter().any(|i| {
                i.services.contains(&f.service) && f.at >= i.precursor_start && f.at < i.end + grace
            })
        })
        .filter(|f| seen.insert((f.rule.clone(), f.service.clone())))
        .map(|f| (f.rule.clone(), f.service.clone(), f.at))
        .collect();
    Scorecard {
        incidents,
        detected_early: early,
        detected_late: late,
        missed,
        false_alarms,
    }
}
