//! Anomaly rules end to end through the engine, on two days of a daily
//! rhythm: a night-time error bump far below any static level pages, with the
//! band it expected; the daily peak (six times the night's traffic, the same
//! error share) does not; nothing pages during the warm-up.

use forewarn_core::lifecycle::TransitionKind;
use forewarn_core::{decode, Config, Engine, Transition};

const T0: i64 = 1_795_132_800_000; // 2026-11-20T00:00:00Z
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

const CONFIG: &str = r#"
[[signals]]
name = "error_rate"
aggregate = "rate"
filter = { kind = "request", outcome = "error" }
of = { kind = "request" }
window = "5m"
slide = "1m"

[[rules]]
name = "ErrorRateUnusual"
kind = "anomaly"
signal = "error_rate"
direction = "above"
summary = "{service} error rate {value}, expected {expected} at this hour"
"#;

/// Requests per second at `t`: 0.5 at 04:00, 3 at 16:00.
fn rate(t: i64) -> f64 {
    let phase = ((t - 4 * HOUR).rem_euclid(DAY)) as f64 / DAY as f64 * std::f64::consts::TAU;
    1.75 - 1.25 * phase.cos()
}

/// Requests from `from` to `to` (ms after T0); `error_share(t)` of them fail,
/// spread deterministically.
fn requests(from: i64, to: i64, error_share: impl Fn(i64) -> f64) -> Vec<String> {
    let mut out = Vec::new();
    let (mut t, mut i) = (from, 0u64);
    while t < to {
        let draw = (i.wrapping_mul(2_654_435_761) % 10_000) as f64 / 10_000.0;
        let outcome = if draw < error_share(t) { "error" } else { "ok" };
        out.push(format!(
            r#"{{"ts":{},"service":"checkout","kind":"request","outcome":"{outcome}"}}"#,
            T0 + t
        ));
        t += (1000.0 / rate(t)) as i64;
        i += 1;
    }
    out
}

fn run(lines: &[String]) -> (Engine, Vec<Transition>) {
    let cfg = Config::parse(CONFIG, "anomaly.toml").unwrap_or_else(|e| panic!("{e}"));
    let mut engine = Engine::new(cfg);
    let mut out = Vec::new();
    for l in lines {
        engine.ingest(&decode(l.as_bytes()).unwrap(), T0 + 10 * DAY, &mut out);
    }
    engine.finish(&mut out);
    (engine, out)
}

fn firing(out: &[Transition]) -> Vec<&Transition> {
    out.iter()
        .filter(|t| t.kind == TransitionKind::Firing)
        .collect()
}

#[test]
fn rate_has_a_night_and_a_peak() {
    assert!((rate(4 * HOUR) - 0.5).abs() < 0.01, "{}", rate(4 * HOUR));
    assert!((rate(16 * HOUR) - 3.0).abs() < 0.01, "{}", rate(16 * HOUR));
}

#[test]
fn a_night_error_bump_below_static_levels_pages_with_the_expected_band() {
    // Two normal days at 0.3% errors; on the third night, 4% from 03:00.
    let bump = 2 * DAY + 3 * HOUR;
    let lines = requests(0, bump + 40 * MIN, |t| if t >= bump { 0.04 } else { 0.003 });
    let (engine, out) = run(&lines);
    let fired = firing(&out);
    assert_eq!(fired.len(), 1, "{out:?}");
    let t = fired[0];
    assert!(
        t.at > T0 + bump && t.at <= T0 + bump + 15 * MIN,
        "fired at {}",
        t.at
    );
    let alert = engine.render(t);
    let summary = &alert.annotations["summary"];
    assert!(summary.starts_with("checkout error rate 0.0"), "{summary}");
    let expected = &alert.annotations["expected"];
    let (lo, hi) = expected.split_once('–').expect(expected);
    let (lo, hi): (f64, f64) = (lo.parse().unwrap(), hi.parse().unwrap());
    assert!(lo < 0.003 && 0.003 < hi && hi < 0.04, "{expected}");
}

#[test]
fn the_daily_peak_and_the_warmup_do_not_page() {
    // The first day (warm-up) and a second day of the same rhythm.
    let lines = requests(0, 2 * DAY + 6 * HOUR, |_| 0.003);
    let (_, out) = run(&lines);
    assert!(firing(&out).is_empty(), "{:?}", firing(&out));
}

#[test]
fn a_bad_sensitivity_is_refused_at_its_line() {
    let bad = CONFIG.replace("direction = \"above\"", "sensitivity = 1.5");
    let e = Config::parse(&bad, "anomaly.toml").unwrap_err().to_string();
    assert!(e.starts_with("anomaly.toml:14:"), "{e}");
    assert!(e.contains("sensitivity 1.5 must be between 0 and 1"), "{e}");
    let unknown = CONFIG.replace("direction = \"above\"", "sensitivty = 0.4");
    let e = Config::parse(&unknown, "anomaly.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("sensitivty"), "{e}");
}

#[test]
fn a_restored_engine_goes_on_exactly() {
    let bump = 2 * DAY + 3 * HOUR;
    let lines = requests(0, bump + 40 * MIN, |t| if t >= bump { 0.04 } else { 0.003 });
    let cut = lines.len() * 3 / 4;
    let cfg = Config::parse(CONFIG, "anomaly.toml").unwrap();
    let mut a = Engine::new(cfg.clone());
    let mut out_a = Vec::new();
    for l in &lines[..cut] {
        a.ingest(&decode(l.as_bytes()).unwrap(), T0 + 10 * DAY, &mut out_a);
    }
    let (mut b, _) = Engine::restore(cfg, a.snapshot()).unwrap();
    let mut out_b = Vec::new();
    for l in &lines[cut..] {
        a.ingest(&decode(l.as_bytes()).unwrap(), T0 + 10 * DAY, &mut out_a);
        b.ingest(&decode(l.as_bytes()).unwrap(), T0 + 10 * DAY, &mut out_b);
    }
    // Debug text: an anomaly alert's threshold is NaN, which never equals itself.
    let after = format!("{:?}", &out_a[out_a.len() - out_b.len()..]);
    assert!(!firing(&out_b).is_empty());
    assert_eq!(after, format!("{out_b:?}"));
    assert_eq!(format!("{:?}", a.snapshot()), format!("{:?}", b.snapshot()));
}

#[test]
fn thresholds_and_floors_follow_the_window_and_the_sample() {
    use forewarn_core::config::Aggregate;
    use forewarn_core::rules::anomaly::{default_min_events, looks_threshold, quantile_noise};
    // One look per learning: the score as given; 30 looks: +ln 30 nats.
    assert!((looks_threshold(0.5, 60_000, 60_000) - 0.5).abs() < 1e-12);
    let raised = looks_threshold(0.5, 300_000, 10_000);
    assert!(
        (raised - (9.0 + 30f64.ln()) / (18.0 + 30f64.ln())).abs() < 1e-12,
        "{raised}"
    );
    // A p99 is judged with five events beyond it; other aggregates with 20.
    assert_eq!(default_min_events(Aggregate::Quantile(0.99)), 500);
    assert_eq!(default_min_events(Aggregate::Quantile(0.5)), 20);
    assert_eq!(default_min_events(Aggregate::Rate), 20);
    // The p99's sampling spread shrinks with the sample, down to the sketch's
    // bucket width: ~3% over 3,600 requests, ~8% over 500.
    let (few, many) = (quantile_noise(0.99, 500.0), quantile_noise(0.99, 3600.0));
    assert!(few > many && (0.07..0.10).contains(&few) && (0.025..0.04).contains(&many));
    assert_eq!(quantile_noise(0.99, 1e12), 0.02);
}
