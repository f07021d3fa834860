//! Scorecards over many realizations of a scenario (start times spread over a
//! week, so the daily and weekly load cycle vary, and a new seed per run):
//! `cargo run --release -p forewarn-sim --example sweep -- CONFIG [SCALE] [RUNS] [SCENARIO_FILE]`.
//! Without a scenario file, the default three-hour scenario.

use std::collections::BTreeMap;

use forewarn_core::Config;
use forewarn_sim::{default_scenario, fired_alerts, load_scenario, score, Scenario};

/// 2026-11-19T00:00:00Z, a Thursday.
const MIDNIGHT: i64 = 1_795_046_400_000;

fn scenario(file: Option<&(String, String)>, seed: u64, start: i64) -> Scenario {
    match file {
        None => default_scenario(seed, start),
        Some((path, src)) => {
            load_scenario(src, path, seed, start).unwrap_or_else(|e| panic!("{e}"))
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .expect("usage: sweep CONFIG [SCALE] [RUNS] [SCENARIO_FILE]");
    let scale: f64 = args.next().map_or(0.3, |s| s.parse().expect("SCALE"));
    let runs: i64 = args.next().map_or(100, |s| s.parse().expect("RUNS"));
    let file = args.next().map(|p| {
        (
            p.clone(),
            std::fs::read_to_string(&p).expect("readable scenario"),
        )
    });
    let src = std::fs::read_to_string(&path).expect("readable config");
    let cfg = Config::parse(&src, &path).unwrap_or_else(|e| panic!("{e}"));
    let (mut early, mut late, mut missed) = (0, 0, 0);
    let mut false_alarms: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut runs_with_false_alarm = 0;
    let mut caught: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut min_lead: BTreeMap<String, f64> = BTreeMap::new();
    let mut sum_lead: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut first_rules: BTreeMap<(String, String), usize> = BTreeMap::new();
    for k in 0..runs {
        // Whole minutes, 101 minutes apart: every hour of the day and week.
        // The default scenario starts at 11:00 on a Friday, a file at midnight on a Thursday.
        let base = if file.is_some() {
            MIDNIGHT
        } else {
            MIDNIGHT + 35 * 3_600_000
        };
        let start = base + k * 101 * 60_000;
        let mut scenario = scenario(file.as_ref(), k as u64 + 1, start);
        scenario.scale = scale;
        let fired = fired_alerts(&scenario, cfg.clone());
        let card = score(&scenario, &fired, 15 * 60_000);
        early += card.detected_early;
        late += card.detected_late;
        missed += card.missed;
        if !card.false_alarms.is_empty() {
            runs_with_false_alarm += 1;
        }
        for (rule, svc, at) in &card.false_alarms {
            if std::env::var("SWEEP_VERBOSE").is_ok() {
                let hour_of_day = start.rem_euclid(86_400_000) / 3_600_000;
                println!(
                    "run {k} (start hour {hour_of_day}): {rule} on {svc} at +{} min",
                    (at - start) / 60_000
                );
            }
            *false_alarms.entry((rule.clone(), svc.clone())).or_default() += 1;
        }
        for inc in &card.incidents {
            let c = caught.entry(inc.id.clone()).or_default();
            c.1 += 1;
            if let Some((rule, _, _)) = &inc.first_alert {
                c.0 += 1;
                *first_rules
                    .entry((inc.id.clone(), rule.clone()))
                    .or_default() += 1;
            }
            if let Some(l) = inc.lead_seconds {
                let e = min_lead.entry(inc.id.clone()).or_insert(f64::INFINITY);
                *e = e.min(l);
                let s = sum_lead.entry(inc.id.clone()).or_default();
                *s = (s.0 + l, s.1 + 1);
            }
        }
    }
    println!("runs {runs} at scale {scale}: early {early}, late {late}, missed {missed}; runs with a false alarm {runs_with_false_alarm}");
    println!("false alarms by (rule, service): {false_alarms:?}");
    println!("caught per incident (caught, of): {caught:?}");
    println!("first alert per incident by rule: {first_rules:?}");
    println!("shortest lead per incident (s): {min_lead:?}");
    let mean: BTreeMap<&String, i64> = sum_lead
        .iter()
        .map(|(k, (s, n))| (k, (s / *n as f64).round() as i64))
        .collect();
    println!("mean lead per incident (s): {mean:?}");
}
