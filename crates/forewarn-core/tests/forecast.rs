//! Forecast rules end to end through the engine: a p99 latency creeping toward
//! its SLA pages well before it gets there, saying when and how fast; a flat,
//! noisy latency never does; the realised lead of a forecast that came true
//! is reported.

use forewarn_core::lifecycle::TransitionKind;
use forewarn_core::{decode, Config, Engine, PredictionOutcome, Transition};

const T0: i64 = 1_795_168_800_000; // 2026-11-20T10:00:00Z
const MIN: i64 = 60_000;

const CONFIG: &str = r#"
[[signals]]
name = "p99"
aggregate = "quantile"
quantile = 0.99
field = "latency_ms"
filter = { kind = "request" }
window = "5m"
slide = "30s"

[[rules]]
name = "LatencyHeadingForSla"
kind = "forecast"
signal = "p99"
level = 2000
horizon = "15m"
"#;

/// Two requests a second for `minutes`, latency `base(t)` plus up to 5% noise.
fn requests(minutes: i64, base: impl Fn(i64) -> f64) -> Vec<String> {
    (0..minutes * 120)
        .map(|i| {
            let t = i * 500;
            let noise = ((i as u64).wrapping_mul(2_654_435_761) % 1000) as f64 / 1000.0;
            let latency = base(t) * (0.95 + 0.05 * noise);
            format!(
                r#"{{"ts":{},"service":"checkout","kind":"request","outcome":"ok","latency_ms":{latency:.1}}}"#,
                T0 + t
            )
        })
        .collect()
}

/// Transitions, each with its summary rendered as it happened, and the
/// settled forecasts.
fn run(lines: &[String]) -> (Vec<(Transition, String)>, Vec<PredictionOutcome>) {
    let cfg = Config::parse(CONFIG, "forecast.toml").unwrap_or_else(|e| panic!("{e}"));
    let mut engine = Engine::new(cfg);
    let (mut out, mut seen, mut settled) = (Vec::new(), Vec::new(), Vec::new());
    for l in lines {
        engine.ingest(&decode(l.as_bytes()).unwrap(), T0 + 1000 * MIN, &mut out);
        for t in out.drain(..) {
            let summary = engine.render(&t).annotations["summary"].clone();
            seen.push((t, summary));
        }
        engine.take_outcomes(&mut settled);
    }
    (seen, settled)
}

#[test]
fn a_latency_creep_pages_before_it_reaches_the_level() {
    // Flat at 800 ms for an hour, then +50 ms a minute: 2000 ms at minute 84.
    let ramp = 60 * MIN;
    let base = |t: i64| 800.0 + 50.0 * ((t - ramp).max(0) as f64 / MIN as f64);
    let (out, settled) = run(&requests(90, base));
    let fired: Vec<_> = out
        .iter()
        .filter(|(t, _)| t.kind == TransitionKind::Firing)
        .collect();
    assert_eq!(fired.len(), 1, "{out:?}");
    let (t, summary) = fired[0];
    let at = t.at - T0;
    // Not before the creep, and at least ten minutes before 2000 ms.
    assert!(at > ramp && at < 74 * MIN, "fired at minute {}", at / MIN);
    eprintln!("fired at minute {}: {summary}", at / MIN);
    assert!(summary.contains("forecast to pass 2000 in ~"), "{summary}");
    assert!(summary.contains("/min)"), "{summary}");
    // The p99 really passes 2000 ms around minute 84: one forecast came
    // true, its lead measured from its first warning (the page, `for` = 0).
    assert_eq!(settled.len(), 1, "{settled:?}");
    let p = settled[0];
    assert!(p.prediction.came_true, "{p:?}");
    assert_eq!(p.at - p.prediction.lead, t.at, "{p:?}");
    assert!(p.at > 80 * MIN + T0 && p.at < 88 * MIN + T0, "{p:?}");
}

#[test]
fn a_creep_that_levels_off_is_a_forecast_that_did_not_come_true() {
    // The same creep, stopping at 1700 ms (minute 74) and staying there.
    let ramp = 60 * MIN;
    let base = |t: i64| 800.0 + 50.0 * ((t - ramp).clamp(0, 18 * MIN) as f64 / MIN as f64);
    let (out, settled) = run(&requests(130, base));
    let fired = out
        .iter()
        .find(|(t, _)| t.kind == TransitionKind::Firing)
        .expect("the creep pages");
    assert_eq!(settled.len(), 1, "{settled:?}");
    let p = settled[0];
    assert!(!p.prediction.came_true, "{p:?}");
    // Settled a horizon (15 min) after its last warning, not before.
    assert!(p.at >= fired.0.at + p.prediction.lead + 15 * MIN, "{p:?}");
}

#[test]
fn noise_around_a_flat_latency_never_pages() {
    let (out, settled) = run(&requests(120, |_| 1500.0));
    assert!(out.is_empty(), "{out:?}");
    assert!(settled.is_empty(), "{settled:?}");
}
